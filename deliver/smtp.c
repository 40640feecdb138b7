/*
 * smtp: the outbound SMTP/LMTP delivery agent (DESIGN.md "smtp";
 * doc/smtp.8).
 *
 * A service of hermod-master on private/smtp.  qmgr keeps a connection
 * and sends PROTO_DELIVER_REQ messages on it, all recipients of one
 * request sharing the next hop (field 3):
 *     smtp:DOMAIN  smtp:HOST:PORT     MX lookup (implicit MX if none)
 *     smtp:[HOST]  smtp:[HOST]:PORT   A/AAAA of HOST (or an IP literal)
 *     lmtp:unix:/PATH  lmtp:[HOST]:PORT  LMTP (RFC 2033)
 * The agent answers exactly one PROTO_DELIVER_STATUS per recipient, in
 * order, then PROTO_DELIVER_DONE.  One request at a time per process;
 * DNS (c-ares) and every network wait are bounded by deadlines (poll),
 * so nothing blocks forever.  After a delivery the connection is kept
 * (smtp_connection_cache_time) for the next request to the same next
 * hop; while it waits for qmgr the agent closes it when its time is up.
 *
 * Outcomes: "sent" only after the server's 2xx for that recipient;
 * "bounced" only for a permanent answer (remote 5xx, null MX 5.1.10,
 * NXDOMAIN 5.1.2, message too big 5.3.4); everything else "deferred".
 */
#include "smtp.h"
#include "conf.h"
#include "log.h"
#include "proto.h"
#include "service.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static struct dns_resolver *resolver;

void
nexthop_free(struct nexthop *nh)
{
	free(nh->host);
	free(nh->path);
	memset(nh, 0, sizeof(*nh));
}

static int
valid_hostname(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > DNS_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_' &&
		    s[i] != ':')
			return 0;
	return 1;
}

int
nexthop_parse(const char *s, int dflt_port, struct nexthop *nh, struct buf *err)
{
	const char *p, *colon;
	long long port = dflt_port;

	memset(nh, 0, sizeof(*nh));
	if (!strncmp(s, "smtp:", 5))
		p = s + 5;
	else if (!strncmp(s, "lmtp:", 5)) {
		nh->lmtp = 1;
		p = s + 5;
		if (!strncmp(p, "unix:", 5)) {
			if (p[5] != '/') {
				buf_printf(err, "LMTP socket path is not absolute: %s", s);
				return -1;
			}
			nh->path = xstrdup(p + 5);
			return 0;
		}
	} else {
		buf_printf(err, "unknown next hop %s", s);
		return -1;
	}
	if (*p == '[') {
		const char *end = strchr(p, ']');

		if (!end || end == p + 1) {
			buf_printf(err, "bad next hop %s", s);
			return -1;
		}
		nh->host = xstrndup(p + 1, (size_t)(end - p - 1));
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] && !colon) {
			buf_printf(err, "bad next hop %s", s);
			goto fail;
		}
	} else {
		if (nh->lmtp) {
			buf_printf(err, "LMTP next hop needs [host]: %s", s);
			return -1;
		}
		nh->mx = 1;
		colon = strrchr(p, ':');
		nh->host = colon ? xstrndup(p, (size_t)(colon - p)) : xstrdup(p);
	}
	if (colon && parse_ll(colon + 1, 1, 65535, &port) < 0) {
		buf_printf(err, "bad port in next hop %s", s);
		goto fail;
	}
	nh->port = (int)port;
	if (!valid_hostname(nh->host) || (nh->mx && strchr(nh->host, ':'))) {
		buf_printf(err, "bad host name in next hop %s", s);
		goto fail;
	}
	return 0;
fail:
	nexthop_free(nh);
	return -1;
}

static int
scan8(void *ctx, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80) {
			*(int *)ctx = 1;
			return 1;
		}
	return 0;
}

static void
log_rcpt(struct sreq *q, struct srcpt *rc, const char *tls)
{
	int64_t d = now_us() - q->env.arrival_us;

	msg_info("%s: to=<%s>, relay=%s, delay=%.2f, %s%s%sdsn=%s, status=%s (%s)", q->id, rc->addr,
	    rc->relay ? rc->relay : "none", d > 0 ? (double)d / 1e6 : 0.0,
	    tls && *tls ? "tls=" : "", tls && *tls ? tls : "", tls && *tls ? ", " : "",
	    rc->res.dsn, rc->res.status == R_SENT ? "sent" : rc->res.status == R_DEFER ? "deferred" :
	    "bounced", buf_str(&rc->res.text));
}

/* Deliver over c (fresh or cached).  TX_DONE or TX_NEXT (fail set). */
static int
over(struct sconn *c, struct sreq *q, struct sres *fail, struct buf *tlsinfo)
{
	int rc = smtp_transaction(c, q, fail);
	size_t i;

	for (i = 0; i < q->n; i++)
		if (q->r[i].res.status != R_NONE && q->r[i].relay && !strcmp(q->r[i].relay, c->relay) &&
		    c->tls.len)
			buf_sets(tlsinfo, buf_str(&c->tls));
	return rc;
}

static void
deliver(struct sreq *q, const char *hop)
{
	struct nexthop nh;
	struct sres fail = { R_DEFER, "4.4.1", BUF_INIT };
	struct buf err = BUF_INIT, tlsinfo = BUF_INIT;
	struct dns_hosts hosts = { NULL, 0 };
	struct sconn *c;
	long long lim = conf_int("smtp_mx_address_limit");
	size_t tried = 0, i, j;
	int st, done = 0;

	sres_set(&fail, R_DEFER, "4.4.1", "no server could be reached");
	if (nexthop_parse(hop, (int)conf_int("smtp_destination_port"), &nh, &err) < 0) {
		sres_set(&fail, R_DEFER, "4.3.5", "%s", buf_str(&err));
		msg_error("%s: %s", q->id, buf_str(&err));
		goto out;
	}
	/* a cached connection to the same next hop first */
	if ((c = cache_take(hop)) != NULL) {
		if (smtp_rset(c) == 0 && over(c, q, &fail, &tlsinfo) == TX_DONE) {
			cache_put(c);
			goto out;
		}
		sconn_close(c, 0);
	}
	if (nh.path) {
		c = sconn_new(hop, nh.path);
		c->lmtp = 1;
		buf_reset(&err);
		if (sconn_connect_unix(c, nh.path, smtp_deadline("smtp_connect_timeout"), &err) < 0)
			sres_set(&fail, R_DEFER, "4.4.1", "%s", buf_str(&err));
		else if (smtp_session_open(c, NULL, &fail) == 0 && over(c, q, &fail, &tlsinfo) == TX_DONE) {
			cache_put(c);
			goto out;
		}
		sconn_close(c, 0);
		goto out;
	}
	/* the hosts */
	{
		struct in6_addr a6;
		struct in_addr a4;
		struct dns_host *h;

		if (!nh.mx && (inet_pton(AF_INET, nh.host, &a4) == 1 || inet_pton(AF_INET6, nh.host, &a6) == 1)) {
			hosts.v = xcalloc(1, sizeof(*hosts.v));
			hosts.n = 1;
			h = &hosts.v[0];
			h->name = xstrdup(nh.host);
			h->addr = xcalloc(1, sizeof(*h->addr));
			h->naddr = 1;
			if (inet_pton(AF_INET, nh.host, &a4) == 1) {
				h->addr[0].family = AF_INET;
				memcpy(h->addr[0].a, &a4, 4);
			} else {
				h->addr[0].family = AF_INET6;
				memcpy(h->addr[0].a, &a6, 16);
			}
		} else {
			buf_reset(&err);
			st = dns_resolve(resolver, nh.host, nh.mx, &hosts, &err);
			switch (st) {
			case DNS_OK:
				break;
			case DNS_NULLMX:
				sres_set(&fail, R_BOUNCE, "5.1.10", "Recipient address rejected: domain %s does not accept mail (nullMX)",
				    nh.host);
				goto out;
			case DNS_NXDOMAIN:
			case DNS_NODATA:
				sres_set(&fail, R_BOUNCE, "5.1.2", "Host or domain name not found. Name service error for name=%s type=%s",
				    nh.host, st == DNS_NXDOMAIN && nh.mx ? "MX" : "A/AAAA");
				goto out;
			default:
				sres_set(&fail, R_DEFER, "4.4.3", "%s", buf_str(&err));
				goto out;
			}
		}
	}
	for (i = 0; i < hosts.n && !done; i++) {
		struct dns_host *h = &hosts.v[i];

		for (j = 0; j < h->naddr && !done; j++) {
			int notls_retry = 0;

			if (lim > 0 && tried >= (size_t)lim)
				goto out;
			tried++;
again:
			c = sconn_new(hop, h->name);
			c->lmtp = nh.lmtp;
			buf_reset(&err);
			if (sconn_connect_tcp(c, &h->addr[j], nh.port, smtp_deadline("smtp_connect_timeout"), &err) < 0) {
				sres_set(&fail, R_DEFER, "4.4.1", "%s", buf_str(&err));
				sconn_close(c, 0);
				continue;
			}
			c->notls = notls_retry;
			if (smtp_session_open(c, nh.mx ? h->name : nh.host, &fail) < 0) {
				sconn_close(c, fail.status == R_DEFER && !c->broken);
				if (fail.dsn[0] == 'T') {
					/* may: the handshake failed; once more in clear */
					fail.dsn[0] = '4';
					if (!notls_retry) {
						notls_retry = 1;
						goto again;
					}
				}
				continue;
			}
			if (over(c, q, &fail, &tlsinfo) == TX_DONE) {
				done = 1;
				cache_put(c);
			} else
				sconn_close(c, !c->broken);
		}
	}
out:
	for (i = 0; i < q->n; i++) {
		struct srcpt *rc = &q->r[i];

		if (rc->res.status == R_NONE) {
			rc->res.status = fail.status;
			memcpy(rc->res.dsn, fail.dsn, sizeof(rc->res.dsn));
			buf_sets(&rc->res.text, buf_str(&fail.text));
		}
		log_rcpt(q, rc, buf_str(&tlsinfo));
	}
	dns_hosts_free(&hosts);
	nexthop_free(&nh);
	buf_free(&fail.text);
	buf_free(&err);
	buf_free(&tlsinfo);
}

/* 0 ok, -1: drop the connection to qmgr. */
static int
handle_request(int fd, struct proto_msg *m)
{
	struct sreq q;
	struct buf path = BUF_INIT, err = BUF_INIT, t = BUF_INIT;
	const char *why;
	size_t i;
	int rc = 0, bad = 0;

	if ((why = proto_deliver_req_check(m)) != NULL) {
		msg_error("malformed delivery request from qmgr: %s", why);
		return -1;
	}
	memset(&q, 0, sizeof(q));
	q.id = proto_field(m, 0);
	q.sender = proto_field(m, 2);
	q.n = (m->nfields - 4) / 4;
	q.r = xcalloc(q.n, sizeof(*q.r));
	for (i = 0; i < q.n; i++) {
		q.r[i].offset = proto_field(m, 4 + 4 * i);
		q.r[i].addr = proto_field(m, 5 + 4 * i);
		q.r[i].orcpt = proto_field(m, 6 + 4 * i);
		q.r[i].notify = (unsigned)atoi(proto_field(m, 7 + 4 * i));
		buf_init(&q.r[i].res.text);
	}
	conf_queue_path(&path, proto_field(m, 1));
	q.fd = open(buf_str(&path), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (q.fd < 0) {
		msg_error("%s: open %s: %s", q.id, buf_str(&path), strerror(errno));
		buf_printf(&t, "cannot open queue file: %s", strerror(errno));
		bad = 1;
	} else if (qf_read(q.fd, &q.env, &err) < 0) {
		msg_error("%s: read %s: %s", q.id, buf_str(&path), buf_str(&err));
		buf_printf(&t, "cannot read queue file: %s", buf_str(&err));
		bad = 1;
	} else if (qf_content(q.fd, &q.env, scan8, &q.eightbit) < 0) {
		msg_error("%s: read content of %s: %s", q.id, buf_str(&path), strerror(errno));
		buf_printf(&t, "cannot read queue file content");
		bad = 1;
	}
	if (bad) {
		for (i = 0; i < q.n; i++)
			sres_set(&q.r[i].res, R_DEFER, "4.3.0", "%s", buf_str(&t));
	} else
		deliver(&q, proto_field(m, 3));
	for (i = 0; i < q.n && rc == 0; i++) {
		struct srcpt *r = &q.r[i];

		buf_reset(&t);
		if (r->relayed)
			buf_adds(&t, "relayed: ");
		buf_adds(&t, buf_str(&r->res.text));
		if (proto_send_strs(fd, PROTO_DELIVER_STATUS, r->offset,
		    r->res.status == R_SENT ? "sent" : r->res.status == R_BOUNCE ? "bounced" : "deferred",
		    r->res.dsn, buf_str(&t), (const char *)NULL) < 0)
			rc = -1;
	}
	if (rc == 0 && proto_send_strs(fd, PROTO_DELIVER_DONE, (const char *)NULL) < 0)
		rc = -1;
	if (rc < 0)
		msg_warn("%s: cannot send the results to qmgr: %s", q.id, strerror(errno));
	for (i = 0; i < q.n; i++) {
		buf_free(&q.r[i].res.text);
		free(q.r[i].relay);
	}
	free(q.r);
	if (q.fd >= 0)
		close(q.fd);
	qf_envelope_free(&q.env);
	buf_free(&path);
	buf_free(&err);
	buf_free(&t);
	return rc;
}

/* Wait for qmgr's next request while the cached connection lives. */
static void
wait_request(int fd)
{
	int64_t left;

	while ((left = cache_left_ms()) >= 0) {
		struct pollfd p = { fd, POLLIN, 0 };
		int rc = poll(&p, 1, left > 60000 ? 60000 : (int)left);

		if (rc > 0)
			return;
		if (rc < 0 && errno != EINTR)
			return;
		if (rc == 0)
			cache_expire(0);
	}
}

static void
handle_conn(int fd, void *ctx)
{
	(void)ctx;
	proto_agent_loop(fd, handle_request, wait_request);
	cache_expire(1);
}

int
main(int argc, char **argv)
{
	struct buf err = BUF_INIT;
	long long t;

	sane_fds();
	service_init("smtp", argc, argv);
	priv_drop_to_owner();
	umask(077);
	srandom((unsigned)(now_us() ^ getpid()));
	t = conf_time("dns_timeout");
	resolver = dns_resolver_new(conf_str("dns_resolvers"), t > 0 ? (long)t * 1000 : 10000, &err);
	if (!resolver)
		msg_fatal("DNS: %s", buf_str(&err));
	smtp_client_init();
	service_accept_loop(handle_conn, NULL, 0);
	dns_resolver_free(resolver);
	buf_free(&err);
	return 0;
}
