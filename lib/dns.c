/*
 * dns: mail routing lookups with c-ares (see dns.h).
 *
 * Invariants: answers are parsed only by c-ares' own parsers
 * (ares_parse_mx_reply, ares_parse_a_reply, ares_parse_aaaa_reply) on
 * packets of at most 65535 bytes; host lists are bounded (DNS_MX_MAX
 * hosts, DNS_ADDR_MAX addresses per family); a lookup never outlives
 * its deadline (pending queries are cancelled and count as TEMPFAIL).
 */
#include "dns.h"
#include "util.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <netinet/in.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DNS_PKT_MAX	65535

void
dns_hosts_free(struct dns_hosts *h)
{
	size_t i;

	for (i = 0; i < h->n; i++) {
		free(h->v[i].name);
		free(h->v[i].addr);
	}
	free(h->v);
	h->v = NULL;
	h->n = 0;
}

void
dns_addr_str(const struct dns_addr *a, struct buf *out)
{
	char s[INET6_ADDRSTRLEN];

	if (!inet_ntop(a->family, a->a, s, sizeof(s)))
		snprintf(s, sizeof(s), "?");
	buf_adds(out, s);
}

const char *
dns_status_text(int status)
{
	switch (status) {
	case DNS_OK:
		return "ok";
	case DNS_NXDOMAIN:
		return "Host or domain name not found";
	case DNS_NODATA:
		return "no address records";
	case DNS_NULLMX:
		return "the domain accepts no mail (null MX)";
	case DNS_TEMPFAIL:
		return "temporary DNS failure";
	default:
		return "malformed DNS answer";
	}
}

int
dns_rcode(const unsigned char *pkt, size_t len)
{
	if (len < 12)
		return -1;
	return pkt[3] & 0x0f;
}

/* Status from the header, or -1 to go on parsing. */
static int
header_status(const unsigned char *pkt, size_t len)
{
	int rc;

	if (len > DNS_PKT_MAX || (rc = dns_rcode(pkt, len)) < 0)
		return DNS_MALFORMED;
	if (rc == 3)
		return DNS_NXDOMAIN;
	if (rc != 0)
		return DNS_TEMPFAIL;
	return -1;
}

/* Records of a type in the answer section, or -1 when it does not
 * parse (used when c-ares refuses an answer without records of the type
 * asked for, e.g. only a CNAME: that is no data, not a broken answer). */
static int
count_type(const unsigned char *pkt, size_t len, int type)
{
	const unsigned char *p;
	size_t an, i, n = 0;
	long el;
	int k;

	if (len < 12)
		return -1;
	p = pkt + 12;
	an = ((size_t)pkt[6] << 8) | pkt[7];
	if ((((size_t)pkt[4] << 8) | pkt[5]) != 1)
		return -1;
	for (k = 0; k < 1 + (int)an; k++) {
		char *nm = NULL;
		size_t rdl;

		if (ares_expand_name(p, pkt, (int)len, &nm, &el) != ARES_SUCCESS)
			return -1;
		ares_free_string(nm);
		p += el;
		if (k == 0) {
			if ((size_t)(pkt + len - p) < 4)
				return -1;
			p += 4;
			continue;
		}
		if ((size_t)(pkt + len - p) < 10)
			return -1;
		i = ((size_t)p[0] << 8) | p[1];
		rdl = ((size_t)p[8] << 8) | p[9];
		p += 10;
		if ((size_t)(pkt + len - p) < rdl)
			return -1;
		p += rdl;
		if ((int)i == type)
			n++;
	}
	return (int)n;
}

static char *
clean_name(const char *s)
{
	char *n = xstrdup(s);
	size_t l = strlen(n);

	while (l > 0 && n[l - 1] == '.')
		n[--l] = 0;
	str_lower(n);
	return n;
}

static int
cmp_pref(const void *a, const void *b)
{
	const struct dns_host *x = a, *y = b;

	return x->pref < y->pref ? -1 : x->pref > y->pref;
}

int
dns_mx_answer(const unsigned char *pkt, size_t len, struct dns_hosts *out,
    unsigned (*rnd)(void *), void *rctx)
{
	struct ares_mx_reply *mx = NULL, *m;
	size_t i, j, n = 0, nnull = 0, total = 0;
	int st;

	out->v = NULL;
	out->n = 0;
	if ((st = header_status(pkt, len)) >= 0)
		return st;
	st = ares_parse_mx_reply(pkt, (int)len, &mx);
	if (st == ARES_ENODATA || (st != ARES_SUCCESS && count_type(pkt, len, 15) == 0))
		return DNS_NODATA;
	if (st != ARES_SUCCESS)
		return DNS_MALFORMED;
	if (!mx)
		return DNS_NODATA;
	for (m = mx; m; m = m->next)
		total++;
	out->v = xcalloc(total ? total : 1, sizeof(*out->v));
	for (m = mx; m && n < DNS_MX_MAX; m = m->next) {
		char *name;
		int dup = 0;

		if (!m->host || !*m->host || !strcmp(m->host, ".")) {
			nnull++;
			continue;
		}
		name = clean_name(m->host);
		if (!*name || strlen(name) > DNS_NAME_MAX) {
			free(name);
			continue;
		}
		for (j = 0; j < n; j++)
			if (!strcmp(out->v[j].name, name)) {
				/* the same host twice: keep the better preference */
				if (m->priority < out->v[j].pref)
					out->v[j].pref = m->priority;
				dup = 1;
			}
		if (dup) {
			free(name);
			continue;
		}
		out->v[n].name = name;
		out->v[n].pref = m->priority;
		out->v[n].status = DNS_NODATA;
		n++;
	}
	ares_free_data(mx);
	out->n = n;
	if (n == 0) {
		free(out->v);
		out->v = NULL;
		/* RFC 7505: a null MX alone means no mail; an answer whose
		 * names were all unusable is malformed */
		return nnull ? DNS_NULLMX : DNS_MALFORMED;
	}
	/* shuffle, then a stable sort by preference keeps the random order
	 * among equals (insertion sort: n is small) */
	if (rnd)
		for (i = n - 1; i > 0; i--) {
			struct dns_host t;

			j = rnd(rctx) % (i + 1);
			t = out->v[i];
			out->v[i] = out->v[j];
			out->v[j] = t;
		}
	for (i = 1; i < n; i++) {
		struct dns_host t = out->v[i];

		for (j = i; j > 0 && cmp_pref(&out->v[j - 1], &t) > 0; j--)
			out->v[j] = out->v[j - 1];
		out->v[j] = t;
	}
	return DNS_OK;
}

static void
add_addr(struct dns_host *h, int family, const void *a, size_t alen)
{
	size_t i, have = 0;

	for (i = 0; i < h->naddr; i++) {
		if (h->addr[i].family != family)
			continue;
		have++;
		if (!memcmp(h->addr[i].a, a, alen))
			return;
	}
	if (have >= DNS_ADDR_MAX)
		return;
	h->addr = xreallocarray(h->addr, h->naddr + 1, sizeof(*h->addr));
	memset(&h->addr[h->naddr], 0, sizeof(h->addr[0]));
	h->addr[h->naddr].family = family;
	memcpy(h->addr[h->naddr].a, a, alen);
	h->naddr++;
}

int
dns_addr_answer(const unsigned char *pkt, size_t len, int family, struct dns_host *h)
{
	struct hostent *he = NULL;
	int st, n = DNS_ADDR_MAX, i;

	if ((st = header_status(pkt, len)) >= 0)
		return st;
	if (family == AF_INET) {
		struct ares_addrttl t[DNS_ADDR_MAX];

		st = ares_parse_a_reply(pkt, (int)len, &he, t, &n);
		if (st == ARES_SUCCESS)
			for (i = 0; i < n && i < DNS_ADDR_MAX; i++)
				add_addr(h, AF_INET, &t[i].ipaddr, 4);
	} else if (family == AF_INET6) {
		struct ares_addr6ttl t[DNS_ADDR_MAX];

		st = ares_parse_aaaa_reply(pkt, (int)len, &he, t, &n);
		if (st == ARES_SUCCESS)
			for (i = 0; i < n && i < DNS_ADDR_MAX; i++)
				add_addr(h, AF_INET6, &t[i].ip6addr, 16);
	} else
		return DNS_MALFORMED;
	if (he)
		ares_free_hostent(he);
	if (st == ARES_ENODATA || (st != ARES_SUCCESS &&
	    count_type(pkt, len, family == AF_INET ? 1 : 28) == 0))
		return DNS_NODATA;
	if (st != ARES_SUCCESS)
		return DNS_MALFORMED;
	return n > 0 ? DNS_OK : DNS_NODATA;
}

/*
 * The resolver.
 */
struct dns_resolver {
	ares_channel ch;
	long timeout_ms;
};

struct query {
	int done;
	int status;		/* ares status */
	struct buf pkt;
};

static int lib_ready;

struct dns_resolver *
dns_resolver_new(const char *servers, long timeout_ms, struct buf *err)
{
	struct dns_resolver *r;
	struct ares_options o;
	struct buf csv = BUF_INIT;
	const char *p;
	int st;

	if (!lib_ready) {
		if ((st = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
			buf_printf(err, "c-ares: %s", ares_strerror(st));
			return NULL;
		}
		lib_ready = 1;
	}
	if (timeout_ms <= 0)
		timeout_ms = 10000;
	r = xcalloc(1, sizeof(*r));
	r->timeout_ms = timeout_ms;
	memset(&o, 0, sizeof(o));
	o.timeout = (int)(timeout_ms / 3 > 500 ? timeout_ms / 3 : 500);
	o.tries = 3;
	o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_EDNS;
	o.ednspsz = 1232;
	st = ares_init_options(&r->ch, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	    ARES_OPT_FLAGS | ARES_OPT_EDNSPSZ);
	if (st != ARES_SUCCESS) {
		buf_printf(err, "c-ares init: %s", ares_strerror(st));
		free(r);
		return NULL;
	}
	for (p = servers ? servers : ""; *p; p++)
		if (*p != ' ' && *p != '\t')
			buf_addc(&csv, *p);
	if (csv.len && (st = ares_set_servers_ports_csv(r->ch, buf_str(&csv))) != ARES_SUCCESS) {
		buf_printf(err, "dns_resolvers \"%s\": %s", servers, ares_strerror(st));
		buf_free(&csv);
		ares_destroy(r->ch);
		free(r);
		return NULL;
	}
	buf_free(&csv);
	return r;
}

void
dns_resolver_free(struct dns_resolver *r)
{
	if (!r)
		return;
	ares_destroy(r->ch);
	free(r);
}

static void
query_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct query *q = arg;

	(void)timeouts;
	q->done = 1;
	q->status = status;
	if (abuf && alen > 0 && alen <= DNS_PKT_MAX)
		buf_add(&q->pkt, abuf, (size_t)alen);
}

/* Run the channel until every query in q[0..n) is done or the deadline
 * (mono ms) passes (then the rest are cancelled). */
static void
run(struct dns_resolver *r, struct query *q, size_t n, int64_t deadline)
{
	for (;;) {
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct pollfd pfd[ARES_GETSOCK_MAXNUM];
		struct timeval tv, *tvp, maxtv;
		size_t i, left = 0, np = 0;
		int64_t now = mono_ms(), wait;
		int bits, k, rc;

		for (i = 0; i < n; i++)
			left += !q[i].done;
		if (!left)
			return;
		if (now >= deadline) {
			ares_cancel(r->ch);
			for (i = 0; i < n; i++)
				if (!q[i].done) {
					q[i].done = 1;
					q[i].status = ARES_ETIMEOUT;
				}
			return;
		}
		bits = ares_getsock(r->ch, socks, ARES_GETSOCK_MAXNUM);
		for (k = 0; k < ARES_GETSOCK_MAXNUM; k++) {
			short ev = 0;

			/* c-ares's ARES_GETSOCK_WRITABLE shifts an int 1 by
			 * up to 31 places (undefined): test the bits unsigned */
			if ((unsigned)bits & (1u << k))
				ev |= POLLIN;
			if ((unsigned)bits & (1u << (k + ARES_GETSOCK_MAXNUM)))
				ev |= POLLOUT;
			if (!ev)
				continue;
			pfd[np].fd = socks[k];
			pfd[np].events = ev;
			pfd[np].revents = 0;
			np++;
		}
		wait = deadline - now;
		maxtv.tv_sec = wait / 1000;
		maxtv.tv_usec = (wait % 1000) * 1000;
		tvp = ares_timeout(r->ch, &maxtv, &tv);
		wait = (int64_t)tvp->tv_sec * 1000 + tvp->tv_usec / 1000;
		if (np == 0 && wait > 100)
			wait = 100;	/* nothing to wait on: let c-ares retry */
		rc = poll(pfd, np, (int)(wait < 0 ? 0 : wait));
		if (rc <= 0) {
			ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
			continue;
		}
		for (i = 0; i < np; i++) {
			ares_socket_t rd = ARES_SOCKET_BAD, wr = ARES_SOCKET_BAD;

			if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
				rd = pfd[i].fd;
			if (pfd[i].revents & POLLOUT)
				wr = pfd[i].fd;
			if (rd != ARES_SOCKET_BAD || wr != ARES_SOCKET_BAD)
				ares_process_fd(r->ch, rd, wr);
		}
	}
}

/* The DNS_* status of a finished query whose packet was not parsed. */
static int
query_status(const struct query *q)
{
	switch (q->status) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENOTFOUND:
		return DNS_NXDOMAIN;
	case ARES_ENODATA:
		return DNS_NODATA;
	case ARES_EBADRESP:
		return DNS_MALFORMED;
	default:
		return DNS_TEMPFAIL;
	}
}

static void
query_init(struct query *q)
{
	q->done = 0;
	q->status = ARES_ENODATA;
	buf_init(&q->pkt);
}

static unsigned
rnd_random(void *ctx)
{
	(void)ctx;
	return (unsigned)random();
}

/* "a" better than "b" for the final outcome of a host's lookups */
static int
merge_status(int a, int b)
{
	static const int rank[] = {
		[DNS_OK] = 5, [DNS_TEMPFAIL] = 4, [DNS_MALFORMED] = 3,
		[DNS_NODATA] = 2, [DNS_NXDOMAIN] = 1, [DNS_NULLMX] = 0
	};

	return rank[a] >= rank[b] ? a : b;
}

int
dns_resolve(struct dns_resolver *r, const char *name, int mx,
    struct dns_hosts *out, struct buf *err)
{
	int64_t deadline = mono_ms() + r->timeout_ms;
	struct query *q = NULL;
	size_t i, nq, have = 0;
	int st, worst = DNS_NXDOMAIN;

	out->v = NULL;
	out->n = 0;
	if (mx) {
		struct query m;

		query_init(&m);
		ares_query(r->ch, name, ns_c_in, ns_t_mx, query_cb, &m);
		run(r, &m, 1, deadline);
		if (m.status == ARES_SUCCESS)
			st = dns_mx_answer((const unsigned char *)m.pkt.data, m.pkt.len, out,
			    rnd_random, NULL);
		else
			st = query_status(&m);
		buf_free(&m.pkt);
		if (st == DNS_NXDOMAIN || st == DNS_NULLMX || st == DNS_TEMPFAIL ||
		    st == DNS_MALFORMED) {
			buf_printf(err, "%s: %s%s", name, dns_status_text(st),
			    st == DNS_TEMPFAIL && m.status == ARES_ETIMEOUT ? " (timeout)" :
			    st == DNS_TEMPFAIL ? " (MX lookup)" : "");
			return st;
		}
		mx = st == DNS_OK;
	}
	if (!mx) {
		/* implicit MX, or a host named directly */
		out->v = xcalloc(1, sizeof(*out->v));
		out->v[0].name = clean_name(name);
		out->v[0].pref = 0;
		out->n = 1;
	}
	nq = out->n * 2;
	q = xcalloc(nq, sizeof(*q));
	for (i = 0; i < out->n; i++) {
		query_init(&q[2 * i]);
		query_init(&q[2 * i + 1]);
		ares_query(r->ch, out->v[i].name, ns_c_in, ns_t_a, query_cb, &q[2 * i]);
		ares_query(r->ch, out->v[i].name, ns_c_in, ns_t_aaaa, query_cb, &q[2 * i + 1]);
	}
	run(r, q, nq, deadline);
	for (i = 0; i < out->n; i++) {
		struct dns_host *h = &out->v[i];
		int s4, s6;

		s4 = q[2 * i].status == ARES_SUCCESS ? dns_addr_answer((const unsigned char *)q[2 * i].pkt.data,
		    q[2 * i].pkt.len, AF_INET, h) : query_status(&q[2 * i]);
		s6 = q[2 * i + 1].status == ARES_SUCCESS ? dns_addr_answer((const unsigned char *)q[2 * i + 1].pkt.data,
		    q[2 * i + 1].pkt.len, AF_INET6, h) : query_status(&q[2 * i + 1]);
		h->status = h->naddr ? DNS_OK : merge_status(s4, s6);
		if (h->naddr)
			have++;
		worst = merge_status(worst, h->status);
		buf_free(&q[2 * i].pkt);
		buf_free(&q[2 * i + 1].pkt);
	}
	free(q);
	if (have)
		return DNS_OK;
	if (mx && (worst == DNS_NXDOMAIN || worst == DNS_NODATA)) {
		/* MX hosts that do not exist: a broken domain, try later */
		buf_printf(err, "%s: no address for any MX host (%s)", name, out->v[0].name);
		dns_hosts_free(out);
		return DNS_TEMPFAIL;
	}
	buf_printf(err, "%s: %s", name, worst == DNS_NODATA ? "Host or domain name not found (no A/AAAA record)" :
	    dns_status_text(worst));
	dns_hosts_free(out);
	return worst;
}
