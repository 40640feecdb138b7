/*
 * qmgr_deliver.c: routing recipients to transports, and the connections
 * to the delivery agents (see qmgr.h).
 *
 * Routing (doc/transport.5): a recipient whose domain is in
 * mydestination, or that has no domain, goes to the "local" transport
 * (private/local); the local part $double_bounce_sender there is
 * discarded.  Any other recipient is looked up in transport_maps (the
 * full address, the domain, then each parent domain as ".parent"); the
 * value names a route: local, error:X.Y.Z text (bounce or defer at
 * once), or a next hop for the smtp agent ("smtp:DOMAIN",
 * "smtp:[HOST]:PORT", "smtp:HOST:PORT", "lmtp:unix:/PATH",
 * "lmtp:[HOST]:PORT").  Without a map entry, relayhost is the next hop
 * when set, else default_transport with the recipient's domain.  The
 * recipients of a message that share a next hop go into requests of at
 * most smtp_destination_recipient_limit; smtp and lmtp requests both go
 * to private/smtp.  While no smtp service exists, they are deferred
 * with 4.4.0.  All the local recipients of a message go into one
 * request (up to LOCAL_BATCH of them), so that local can deliver to a
 * destination that two of them share only once.  Before routing, a
 * recipient equal to an earlier one is done as its duplicate.
 *
 * Scheduling: every transport has one queue per destination (next hop)
 * and a round-robin list of the destinations that may start a request
 * now; a destination has at most smtp_destination_concurrency_limit
 * requests in flight (local: local_destination_concurrency_limit), and
 * a transport at most as many connections as its agent's process limit
 * in master.conf.
 *
 * Connections: each transport keeps up to its connection limit of
 * connections open and reuses them, one request at a time per
 * connection (PROTO_DELIVER_REQ; the agent answers one
 * PROTO_DELIVER_STATUS per recipient and PROTO_DELIVER_DONE).  All I/O
 * is non-blocking inside qmgr's poll loop, so a stuck agent never stops
 * qmgr.  An agent is trusted but not believed: a status for a recipient
 * that is not in the request, a second status for one, a bad status code
 * or DONE before every recipient is answered is a protocol error that
 * closes the connection and defers what is unanswered (4.3.0).  When a
 * connection dies (the agent crashed or was restarted) the unanswered
 * recipients are sent once more on a new connection before they are
 * deferred, so killing local costs a duplicate at worst, never a
 * retry delay; a request that times out (local_delivery_timeout) is
 * deferred at once.
 */
#include "qmgr.h"
#include "conf.h"
#include "map.h"
#include "proto.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* All the local recipients of a message go in one request when they
 * fit, so that local's duplicate filter sees them together (doc/qmgr.8):
 * at most this many, and half the protocol's payload limit. */
#define LOCAL_BATCH	1000
#define LOCAL_BATCH_BYTES	(PROTO_MAX_PAYLOAD / 2)
#define SMTP_BATCH	50	/* default smtp_destination_recipient_limit */
#define SMTP_CONNS	20	/* agent connections when master.conf does not say */
#define NEXTHOP_MAX	1024	/* longest next hop accepted from a map */
#define DEST_HSIZE	4096
#define CONN_IDLE_MS	10000	/* close agent connections idle this long */
#define READ_CHUNK	65536

struct dest;

struct req {
	struct qmsg *m;
	char *nexthop;
	struct dest *d;
	size_t *idx;		/* recipient indexes, ascending */
	size_t n;
	unsigned char *answered;
	size_t nanswered;
	int tries;
	struct req *next;
};

struct conn {
	int fd;			/* -1: closed, to be freed */
	struct transport *t;
	struct buf in, out;
	struct req *req;	/* the request in progress, or NULL: idle */
	int64_t deadline;	/* ms, while busy */
	int64_t idle_since;	/* ms, while idle */
	unsigned nreq;		/* requests sent on it */
};

/* A destination: the requests of one transport for one next hop. */
struct dest {
	struct transport *t;
	char *nexthop;
	struct req *head, *tail;	/* waiting */
	size_t inflight;		/* sent, not finished */
	int ready;			/* on t's ready list */
	struct dest *rnext;		/* ready list */
	struct dest *hnext;		/* hash chain */
};

struct transport {
	const char *name;
	const char *socket;	/* relative to the queue directory (our cwd) */
	size_t limit;		/* connections to the agent */
	size_t dest_limit;	/* requests in flight per destination */
	int64_t timeout_ms;
	size_t batch;
	const char *down_dsn;	/* status when the agent cannot be reached */
	const char *down_text;
	struct dest *rhead, *rtail;	/* destinations that may start a request */
	size_t nwaiting;	/* requests waiting in all destinations */
	size_t nconns;
	int64_t last_warn;
};

static struct transport tr_local = {
	"local", "private/local", 8, 8, 3600000, LOCAL_BATCH,
	"4.3.0", "local delivery agent not available", NULL, NULL, 0, 0, 0
};
static struct transport tr_smtp = {
	"smtp", "private/smtp", SMTP_CONNS, 20, 3600000, SMTP_BATCH,
	"4.4.0", "no route: smtp transport not available", NULL, NULL, 0, 0, 0
};
static struct transport *transports[] = { &tr_local, &tr_smtp };
#define NTRANSPORTS (sizeof(transports) / sizeof(transports[0]))

static struct conn **conns;
static size_t nconns, conns_cap;
static struct conn **polled;		/* conns in the last pollfd array */
static size_t npolled;

static struct dest *dtab[DEST_HSIZE];

static char **mydest;
static const char *double_bounce;
static const char *relayhost, *default_transport;
static struct map **tmaps;
static char **tmap_specs;
static size_t ntmaps;

/* The process limit of the service listening on sock in master.conf,
 * or 0 when it cannot be told. */
static size_t
agent_proclimit(const char *sock)
{
	struct master_service *svcs = NULL;
	struct buf path = BUF_INIT, err = BUF_INIT;
	size_t n = 0, i, lim = 0;

	buf_printf(&path, "%s/master.conf", conf_dir());
	if (master_conf_load(buf_str(&path), &svcs, &n, &err) == 0) {
		for (i = 0; i < n; i++)
			if (svcs[i].listen && !strcmp(svcs[i].listen, sock) && svcs[i].proclimit > 0)
				lim = (size_t)svcs[i].proclimit;
		master_conf_free(svcs, n);
	}
	buf_free(&path);
	buf_free(&err);
	return lim;
}

static void
tmaps_open(void)
{
	struct buf err = BUF_INIT;
	size_t i;

	tmap_specs = conf_list("transport_maps");
	ntmaps = strv_len(tmap_specs);
	tmaps = xcalloc(ntmaps ? ntmaps : 1, sizeof(*tmaps));
	for (i = 0; i < ntmaps; i++) {
		buf_reset(&err);
		if ((tmaps[i] = map_open(tmap_specs[i], &err)) == NULL)
			msg_error("transport_maps: %s", buf_str(&err));
	}
	buf_free(&err);
}

void
qmgr_deliver_init(void)
{
	size_t i;
	long long v;

	mydest = conf_list("mydestination");
	for (i = 0; mydest[i]; i++)
		str_lower(mydest[i]);
	double_bounce = conf_str("double_bounce_sender");
	v = conf_int("local_destination_concurrency_limit");
	tr_local.limit = v > 0 ? (size_t)v : 1;
	v = conf_time("local_delivery_timeout");
	tr_local.timeout_ms = v > 0 ? v * 1000 : 3600000;
	tr_local.dest_limit = tr_local.limit;
	v = conf_time("ipc_timeout");
	tr_smtp.timeout_ms = v > 0 ? v * 1000 : 3600000;
	v = conf_int("smtp_destination_concurrency_limit");
	tr_smtp.dest_limit = v > 0 ? (size_t)v : 1;
	v = conf_int("smtp_destination_recipient_limit");
	tr_smtp.batch = v > 0 ? (size_t)v : SMTP_BATCH;
	if ((tr_smtp.limit = agent_proclimit(tr_smtp.socket)) == 0)
		tr_smtp.limit = SMTP_CONNS;
	relayhost = conf_str("relayhost");
	default_transport = conf_str("default_transport");
	if (!*default_transport)
		default_transport = "smtp";
	tmaps_open();
}

static int
local_domain(const char *d)
{
	size_t i, n = strlen(d);

	if (n && d[n - 1] == '.')
		n--;
	for (i = 0; mydest[i]; i++)
		if (strlen(mydest[i]) == n && !strncasecmp(mydest[i], d, n))
			return 1;
	return 0;
}

static void
req_free(struct req *r)
{
	free(r->nexthop);
	free(r->idx);
	free(r->answered);
	free(r);
}

static unsigned
dest_hash(const struct transport *t, const char *s)
{
	uint32_t h = t == &tr_local ? 7u : 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % DEST_HSIZE;
}

static struct dest *
dest_get(struct transport *t, const char *nexthop)
{
	unsigned h = dest_hash(t, nexthop);
	struct dest *d;

	for (d = dtab[h]; d; d = d->hnext)
		if (d->t == t && !strcmp(d->nexthop, nexthop))
			return d;
	d = xcalloc(1, sizeof(*d));
	d->t = t;
	d->nexthop = xstrdup(nexthop);
	d->hnext = dtab[h];
	dtab[h] = d;
	return d;
}

/* Forget d when nothing refers to it any more. */
static void
dest_maybe_free(struct dest *d)
{
	struct dest **pp;

	if (d->head || d->inflight || d->ready)
		return;
	for (pp = &dtab[dest_hash(d->t, d->nexthop)]; *pp; pp = &(*pp)->hnext)
		if (*pp == d) {
			*pp = d->hnext;
			break;
		}
	free(d->nexthop);
	free(d);
}

/* Put d on its transport's ready list if it may start a request. */
static void
dest_ready(struct dest *d)
{
	struct transport *t = d->t;

	if (d->ready || !d->head || d->inflight >= t->dest_limit)
		return;
	d->ready = 1;
	d->rnext = NULL;
	if (t->rtail)
		t->rtail->rnext = d;
	else
		t->rhead = d;
	t->rtail = d;
}

static struct req *
req_new(struct qmsg *m, struct transport *t, const char *nexthop, size_t cap)
{
	struct req *r = xcalloc(1, sizeof(*r));

	r->m = m;
	r->nexthop = xstrdup(nexthop);
	r->d = dest_get(t, nexthop);
	r->idx = xcalloc(cap, sizeof(*r->idx));
	r->answered = xcalloc(cap, 1);
	return r;
}

static void
enqueue(struct transport *t, struct req *r, int front)
{
	struct dest *d = r->d;

	r->next = NULL;
	if (front) {
		r->next = d->head;
		d->head = r;
		if (!d->tail)
			d->tail = r;
	} else {
		if (d->tail)
			d->tail->next = r;
		else
			d->head = r;
		d->tail = r;
	}
	t->nwaiting++;
	dest_ready(d);
}

/* r is no longer in flight (finished, failed or to be sent again). */
static void
req_detach(struct req *r)
{
	struct dest *d = r->d;

	if (d->inflight > 0)
		d->inflight--;
	dest_ready(d);
	dest_maybe_free(d);
}

/* The next request t may start, round-robin over its destinations. */
static struct req *
next_req(struct transport *t)
{
	struct dest *d;
	struct req *r;

	while ((d = t->rhead) != NULL) {
		t->rhead = d->rnext;
		if (!t->rhead)
			t->rtail = NULL;
		d->ready = 0;
		if (!d->head || d->inflight >= t->dest_limit) {
			dest_maybe_free(d);
			continue;
		}
		r = d->head;
		d->head = r->next;
		if (!d->head)
			d->tail = NULL;
		t->nwaiting--;
		d->inflight++;
		dest_ready(d);	/* back at the end: round-robin */
		return r;
	}
	return NULL;
}

/*
 * Routes.  A route value (transport_maps, default_transport) is one of
 *   local | error:X.Y.Z text | smtp | smtp: | smtp:NEXTHOP | lmtp:NEXTHOP
 */
#define ROUTE_LOCAL	1
#define ROUTE_SMTP	2
#define ROUTE_ERROR	3

struct route {
	int kind;
	struct buf nexthop;	/* ROUTE_SMTP: "smtp:..." or "lmtp:..." */
	char dsn[16];		/* ROUTE_ERROR */
	struct buf text;
};

static int
nexthop_ok(const char *s)
{
	size_t i;

	if (!*s || strlen(s) > NEXTHOP_MAX)
		return 0;
	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* Interpret value for domain.  0 ok, -1 (logged) when it makes no sense. */
static int
route_parse(struct route *rt, const char *value, const char *domain, const char *where)
{
	const char *v = value + strspn(value, " \t");
	size_t n = strcspn(v, " \t");

	buf_reset(&rt->nexthop);
	buf_reset(&rt->text);
	if (n == 5 && !strncasecmp(v, "local", 5) && !v[5 + strspn(v + 5, " \t")]) {
		rt->kind = ROUTE_LOCAL;
		return 0;
	}
	if (!strncasecmp(v, "error:", 6)) {
		const char *code = v + 6, *text;
		size_t cl = strcspn(code, " \t");

		snprintf(rt->dsn, sizeof(rt->dsn), "%.*s", (int)(cl < 15 ? cl : 15), code);
		if (cl >= sizeof(rt->dsn) || !qf_dsn_valid(rt->dsn) || rt->dsn[0] == '2')
			snprintf(rt->dsn, sizeof(rt->dsn), "5.0.0");
		text = code + cl;
		text += strspn(text, " \t");
		rt->kind = ROUTE_ERROR;
		buf_adds(&rt->text, *text ? text : "delivery refused by the transport map");
		return 0;
	}
	if ((n == 4 || (n > 4 && v[4] == ':')) &&
	    (!strncasecmp(v, "smtp", 4) || !strncasecmp(v, "lmtp", 4)) &&
	    !v[n + strspn(v + n, " \t")]) {
		int lmtp = !strncasecmp(v, "lmtp", 4);

		buf_adds(&rt->nexthop, lmtp ? "lmtp:" : "smtp:");
		if (n > 5)
			buf_add(&rt->nexthop, v + 5, n - 5);
		else if (!lmtp && domain && *domain)
			buf_adds(&rt->nexthop, domain);
		else {
			msg_warn("%s: route \"%s\" has no next hop", where, value);
			return -1;
		}
		if (!nexthop_ok(buf_str(&rt->nexthop) + 5)) {
			msg_warn("%s: bad next hop in \"%s\"", where, value);
			return -1;
		}
		rt->kind = ROUTE_SMTP;
		return 0;
	}
	msg_warn("%s: unknown route \"%s\" (local, error:, smtp:, lmtp:)", where, value);
	return -1;
}

/* transport_maps: 1 found (into val), 0 not, -1 lookup error. */
static int
tmap_find(const char *key, struct buf *val)
{
	size_t i;
	int r;

	for (i = 0; i < ntmaps; i++) {
		if (!tmaps[i])
			return -1;
		if (map_stale(tmaps[i])) {
			struct buf err = BUF_INIT;
			struct map *nm = map_open(tmap_specs[i], &err);

			if (nm) {
				map_close(tmaps[i]);
				tmaps[i] = nm;
			} else
				msg_error("transport_maps: %s", buf_str(&err));
			buf_free(&err);
		}
		buf_reset(val);
		if ((r = map_lookup(tmaps[i], key, val)) != 0)
			return r;
	}
	return 0;
}

/*
 * Route a non-local recipient whose domain is dom (lower case).  Sets
 * rt; ROUTE_ERROR with a 4.x.x code when the route cannot be told now.
 */
static void
route_remote(struct route *rt, const char *addr, const char *dom)
{
	struct buf key = BUF_INIT, val = BUF_INIT;
	const char *p;
	int r;

	if (ntmaps) {
		buf_adds(&key, addr);
		str_lower(key.data);
		r = tmap_find(buf_str(&key), &val);
		if (r == 0)
			r = tmap_find(dom, &val);
		for (p = strchr(dom, '.'); r == 0 && p; p = strchr(p + 1, '.')) {
			r = tmap_find(p, &val);
		}
		if (r < 0) {
			rt->kind = ROUTE_ERROR;
			snprintf(rt->dsn, sizeof(rt->dsn), "4.3.0");
			buf_reset(&rt->text);
			buf_adds(&rt->text, "transport_maps lookup failed");
			goto out;
		}
		if (r > 0) {
			if (route_parse(rt, buf_str(&val), dom, "transport_maps") < 0) {
				rt->kind = ROUTE_ERROR;
				snprintf(rt->dsn, sizeof(rt->dsn), "4.3.5");
				buf_reset(&rt->text);
				buf_adds(&rt->text, "bad transport_maps entry");
			}
			goto out;
		}
	}
	if (*relayhost) {
		buf_reset(&rt->nexthop);
		buf_printf(&rt->nexthop, "smtp:%s", relayhost);
		rt->kind = ROUTE_SMTP;
		if (!nexthop_ok(relayhost)) {
			rt->kind = ROUTE_ERROR;
			snprintf(rt->dsn, sizeof(rt->dsn), "4.3.5");
			buf_reset(&rt->text);
			buf_adds(&rt->text, "bad relayhost");
		}
		goto out;
	}
	if (route_parse(rt, default_transport, dom, "default_transport") < 0) {
		rt->kind = ROUTE_ERROR;
		snprintf(rt->dsn, sizeof(rt->dsn), "4.3.5");
		buf_reset(&rt->text);
		buf_adds(&rt->text, "bad default_transport");
	}
out:
	buf_free(&key);
	buf_free(&val);
}

/*
 * Duplicate recipients (doc/queue.md): smtpd and sendmail store each
 * recipient once, but a queue file may come from elsewhere (an older
 * hermod, a tool).  A recipient with the key of an earlier one
 * (qf_rcpt_key; done or not) is that one: it is done at once, without a
 * delivery or a notice of its own, so the first one's NOTIFY and ORCPT
 * decide what the sender hears -- as if it had been dropped on arrival.
 */
static void
dedupe(struct qmsg *m)
{
	size_t n = m->env.nrcpt, i;
	char **keys;
	unsigned char *dup;

	if (n < 2)
		return;
	keys = xcalloc(n, sizeof(char *));
	dup = xcalloc(n, 1);
	for (i = 0; i < n; i++)
		keys[i] = qf_rcpt_key(m->env.rcpt[i].addr, mydest);
	strv_mark_dups(keys, n, dup);
	for (i = 0; i < n; i++) {
		if (dup[i] && !m->env.rcpt[i].done && m->rs[i].result == RS_PENDING) {
			m->rs[i].dup = 1;
			qmgr_rcpt_result(m, i, RS_SENT, "2.0.0",
			    "duplicate of an earlier recipient: delivered once", "none");
		}
		free(keys[i]);
	}
	free(keys);
	free(dup);
}

void
qmgr_route(struct qmsg *m)
{
	size_t n = m->env.nrcpt, i, j;
	/* 0 none, 1 local, 2 smtp */
	unsigned char *where = xcalloc(n ? n : 1, 1);
	char **hop = xcalloc(n ? n : 1, sizeof(char *));
	struct route rt;
	struct req *r = NULL;
	size_t bytes = 0;

	dedupe(m);
	memset(&rt, 0, sizeof(rt));
	buf_init(&rt.nexthop);
	buf_init(&rt.text);
	for (i = 0; i < n; i++) {
		const char *addr = m->env.rcpt[i].addr, *at = strrchr(addr, '@');
		size_t llen = at ? (size_t)(at - addr) : strlen(addr);

		if (m->env.rcpt[i].done || m->rs[i].result != RS_PENDING)
			continue;
		if (!at || local_domain(at + 1)) {
			if (llen == strlen(double_bounce) && !strncasecmp(addr, double_bounce, llen)) {
				qmgr_rcpt_result(m, i, RS_SENT, "2.0.0", "discarded", "none");
				continue;
			}
			where[i] = 1;
			continue;
		}
		{
			char *dom = xstrdup(at + 1);
			size_t dl = strlen(dom);

			str_lower(dom);
			if (dl && dom[dl - 1] == '.')
				dom[dl - 1] = 0;
			route_remote(&rt, addr, dom);
			free(dom);
		}
		switch (rt.kind) {
		case ROUTE_LOCAL:
			where[i] = 1;
			break;
		case ROUTE_ERROR:
			qmgr_rcpt_result(m, i, rt.dsn[0] == '4' ? RS_DEFERRED : RS_BOUNCED,
			    rt.dsn, buf_str(&rt.text), "error");
			break;
		default:
			where[i] = 2;
			hop[i] = xstrdup(buf_str(&rt.nexthop));
			break;
		}
	}
	buf_free(&rt.nexthop);
	buf_free(&rt.text);
	/* local: batches in file order */
	for (i = 0; i < n; i++) {
		size_t need;

		if (where[i] != 1)
			continue;
		/* the fields of one recipient, with their length prefixes */
		need = 48 + strlen(m->env.rcpt[i].addr) + strlen(m->env.rcpt[i].orcpt);
		if (r && bytes + need > LOCAL_BATCH_BYTES) {
			enqueue(&tr_local, r, 0);
			m->outstanding++;
			r = NULL;
		}
		if (!r) {
			r = req_new(m, &tr_local, "", tr_local.batch);
			bytes = 0;
		}
		r->idx[r->n++] = i;
		bytes += need;
		if (r->n == tr_local.batch) {
			enqueue(&tr_local, r, 0);
			m->outstanding++;
			r = NULL;
		}
	}
	if (r) {
		enqueue(&tr_local, r, 0);
		m->outstanding++;
		r = NULL;
	}
	/* smtp and lmtp: one request per next hop (and batch) */
	for (i = 0; i < n; i++) {
		if (where[i] != 2)
			continue;
		r = req_new(m, &tr_smtp, hop[i], tr_smtp.batch);
		for (j = i; j < n && r->n < tr_smtp.batch; j++) {
			if (where[j] == 2 && !strcmp(hop[j], hop[i])) {
				r->idx[r->n++] = j;
				if (j != i)
					where[j] = 0;
			}
		}
		where[i] = 0;
		enqueue(&tr_smtp, r, 0);
		m->outstanding++;
		r = NULL;
	}
	for (i = 0; i < n; i++)
		free(hop[i]);
	free(hop);
	free(where);
}

/* Every unanswered recipient of r gets this result; the request ends.
 * inflight: r was sent (its destination counts it). */
static void
req_fail(struct transport *t, struct req *r, const char *dsn, const char *text, int inflight)
{
	struct qmsg *m = r->m;
	size_t k;

	for (k = 0; k < r->n; k++)
		if (!r->answered[k])
			qmgr_rcpt_result(m, r->idx[k], RS_DEFERRED, dsn, text, t->name);
	if (inflight)
		req_detach(r);
	else
		dest_maybe_free(r->d);
	req_free(r);
	qmgr_request_done(m);
}

static void
conn_close(struct conn *c)
{
	if (c->fd < 0)
		return;
	close(c->fd);
	c->fd = -1;
	c->t->nconns--;
}

/* The connection failed; retry or defer its request. */
static void
conn_fail(struct conn *c, const char *why, int retry)
{
	struct transport *t = c->t;
	struct req *r = c->req;
	int reused = c->nreq > 1;
	struct buf text = BUF_INIT;
	size_t k, n;

	c->req = NULL;
	conn_close(c);
	if (!r)
		return;
	if (retry && r->nanswered < r->n && (r->tries == 0 || (reused && r->nanswered == 0))) {
		/* keep only the unanswered recipients and send them again */
		for (k = 0, n = 0; k < r->n; k++)
			if (!r->answered[k])
				r->idx[n++] = r->idx[k];
		r->n = n;
		memset(r->answered, 0, n);
		r->nanswered = 0;
		if (!(reused && r->tries == 0))
			r->tries++;
		else
			r->tries = 1;
		msg_warn("%s: %s delivery agent: %s; sending %zu recipient%s again",
		    r->m->id, t->name, why, n, n == 1 ? "" : "s");
		enqueue(t, r, 1);
		req_detach(r);
		return;
	}
	msg_warn("%s: %s delivery agent: %s", r->m->id, t->name, why);
	buf_printf(&text, "delivery agent failed: %s", why);
	req_fail(t, r, "4.3.0", buf_str(&text), 1);
	buf_free(&text);
}

static int
conn_flush(struct conn *c)
{
	while (c->out.len) {
		ssize_t w = write(c->fd, c->out.data, c->out.len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		buf_consume(&c->out, (size_t)w);
	}
	return 0;
}

static void
conn_send(struct conn *c, struct req *r)
{
	struct proto_builder b;
	struct qmsg *m = r->m;
	struct buf path = BUF_INIT;
	size_t k;

	queue_path(&path, "active", m->id);
	proto_build_start(&b, PROTO_DELIVER_REQ);
	proto_build_adds(&b, m->id);
	proto_build_adds(&b, buf_str(&path));
	proto_build_adds(&b, m->env.sender);
	proto_build_adds(&b, r->nexthop);
	for (k = 0; k < r->n; k++) {
		const struct qf_rcpt *rc = &m->env.rcpt[r->idx[k]];

		proto_build_addf(&b, "%lld", (long long)rc->offset);
		proto_build_adds(&b, rc->addr);
		proto_build_adds(&b, rc->orcpt);
		proto_build_addf(&b, "%u", rc->notify);
	}
	proto_build_finish(&b);
	buf_add(&c->out, b.out.data, b.out.len);
	proto_build_free(&b);
	buf_free(&path);
	c->req = r;
	c->nreq++;
	c->deadline = qmgr_now_ms + c->t->timeout_ms;
	if (conn_flush(c) < 0)
		conn_fail(c, strerror(errno), 1);
}

static struct conn *
conn_open(struct transport *t)
{
	struct conn *c;
	int fd = proto_connect(t->socket);

	if (fd < 0) {
		/* no smtp service yet is normal: say so once a while */
		if (t != &tr_smtp)
			msg_warn("connect to %s: %s", t->socket, strerror(errno));
		else if (t->last_warn == 0 || qmgr_now_ms - t->last_warn > 600000) {
			msg_info("connect to %s: %s: remote mail is deferred", t->socket, strerror(errno));
			t->last_warn = qmgr_now_ms;
		}
		return NULL;
	}
	if (set_nonblock(fd, 1) < 0) {
		close(fd);
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->t = t;
	buf_init(&c->in);
	buf_init(&c->out);
	c->idle_since = qmgr_now_ms;
	if (nconns == conns_cap) {
		conns_cap = conns_cap ? 2 * conns_cap : 16;
		conns = xreallocarray(conns, conns_cap, sizeof(*conns));
	}
	conns[nconns++] = c;
	t->nconns++;
	return c;
}

void
qmgr_dispatch(void)
{
	size_t ti, i;

	for (ti = 0; ti < NTRANSPORTS; ti++) {
		struct transport *t = transports[ti];

		while (t->rhead) {
			struct conn *c = NULL;
			struct req *r;

			for (i = 0; i < nconns; i++)
				if (conns[i]->t == t && conns[i]->fd >= 0 && !conns[i]->req) {
					c = conns[i];
					break;
				}
			if (!c) {
				if (t->nconns >= t->limit)
					break;
				if ((c = conn_open(t)) == NULL) {
					/* the agent is not there: nothing queued for it can go */
					while ((r = next_req(t)) != NULL) {
						req_fail(t, r, t->down_dsn, t->down_text, 1);
					}
					break;
				}
			}
			if ((r = next_req(t)) == NULL)
				break;
			conn_send(c, r);
		}
	}
}

/* Find recipient position k in r by its record offset. */
static long
req_find(const struct req *r, long long off)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		long long o = (long long)r->m->env.rcpt[r->idx[mid]].offset;

		if (o == off)
			return (long)mid;
		if (o < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* One message from an agent.  NULL ok, else the protocol error. */
static const char *
conn_message(struct conn *c, const struct proto_msg *pm)
{
	struct req *r = c->req;
	const char *st, *dsn;
	long long off;
	long k;
	size_t j;
	int result;

	if (!r)
		return "message while no request is open";
	if (pm->type == PROTO_DELIVER_DONE) {
		struct qmsg *m = r->m;

		if (r->nanswered < r->n)
			return "end of statuses before every recipient was answered";
		c->req = NULL;
		c->idle_since = qmgr_now_ms;
		req_detach(r);
		req_free(r);
		qmgr_request_done(m);
		return NULL;
	}
	if (pm->type != PROTO_DELIVER_STATUS)
		return "unexpected message type";
	/* local may add the digests of the destinations it delivered */
	if (pm->nfields < 4 || pm->nfields > 4 + (c->t == &tr_local ? QF_DELIVERED_MAX : 0))
		return "status with the wrong number of fields";
	for (j = 4; j < pm->nfields; j++)
		if (!qf_digest_valid(proto_field(pm, j)))
			return "malformed destination digest in a status";
	if (parse_ll(proto_field(pm, 0), 0, (long long)1 << 50, &off) < 0 ||
	    (k = req_find(r, off)) < 0)
		return "status for a recipient not in the request";
	if (r->answered[k])
		return "second status for a recipient";
	st = proto_field(pm, 1);
	dsn = proto_field(pm, 2);
	if (!strcmp(st, "sent"))
		result = RS_SENT;
	else if (!strcmp(st, "deferred"))
		result = RS_DEFERRED;
	else if (!strcmp(st, "bounced"))
		result = RS_BOUNCED;
	else
		return "unknown status";
	if (!qf_dsn_valid(dsn) || dsn[0] != (result == RS_SENT ? '2' : result == RS_DEFERRED ? '4' : '5'))
		return "status code does not match the status";
	r->answered[k] = 1;
	r->nanswered++;
	for (j = 4; j < pm->nfields; j++)
		qmgr_delivered(r->m, proto_field(pm, j));
	qmgr_rcpt_result(r->m, r->idx[k], result, dsn, proto_field(pm, 3), c->t->name);
	return NULL;
}

static void
conn_read(struct conn *c)
{
	struct proto_msg pm;
	const char *why = NULL;
	ssize_t n;
	int rc;

	buf_reserve(&c->in, READ_CHUNK);
	n = read(c->fd, c->in.data + c->in.len, READ_CHUNK);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_fail(c, strerror(errno), 1);
		return;
	}
	if (n == 0) {
		if (c->req)
			conn_fail(c, "connection closed", 1);
		else
			conn_close(c);
		return;
	}
	c->in.len += (size_t)n;
	c->in.data[c->in.len] = 0;
	proto_msg_init(&pm);
	while (c->fd >= 0 && (rc = proto_parse(&c->in, &pm)) != 0) {
		if (rc < 0) {
			why = "malformed message";
			break;
		}
		why = conn_message(c, &pm);
		proto_msg_free(&pm);
		if (why)
			break;
	}
	proto_msg_free(&pm);
	if (why) {
		msg_error("%s delivery agent protocol error: %s; connection closed", c->t->name, why);
		conn_fail(c, why, 0);
	}
}

size_t
qmgr_conn_pollfds(struct pollfd *p, size_t max)
{
	size_t i, n = 0;

	polled = xreallocarray(polled, nconns ? nconns : 1, sizeof(*polled));
	for (i = 0; i < nconns && n < max; i++) {
		struct conn *c = conns[i];

		if (c->fd < 0)
			continue;
		p[n].fd = c->fd;
		p[n].events = POLLIN | (c->out.len ? POLLOUT : 0);
		p[n].revents = 0;
		polled[n++] = c;
	}
	npolled = n;
	return n;
}

static void
conn_reap(void)
{
	size_t i, n = 0;

	for (i = 0; i < nconns; i++) {
		if (conns[i]->fd < 0) {
			buf_free(&conns[i]->in);
			buf_free(&conns[i]->out);
			free(conns[i]);
		} else
			conns[n++] = conns[i];
	}
	nconns = n;
}

void
qmgr_conn_events(struct pollfd *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && i < npolled; i++) {
		struct conn *c = polled[i];

		if (c->fd < 0 || p[i].fd != c->fd)
			continue;
		if ((p[i].revents & POLLOUT) && conn_flush(c) < 0) {
			conn_fail(c, strerror(errno), 1);
			continue;
		}
		if (p[i].revents & (POLLIN | POLLHUP | POLLERR))
			conn_read(c);
	}
	/* deadlines */
	for (i = 0; i < nconns; i++) {
		struct conn *c = conns[i];

		if (c->fd < 0)
			continue;
		if (c->req && qmgr_now_ms >= c->deadline) {
			struct buf why = BUF_INIT;

			buf_printf(&why, "delivery timed out after %llds",
			    (long long)(c->t->timeout_ms / 1000));
			conn_fail(c, buf_str(&why), 0);
			buf_free(&why);
		} else if (!c->req && qmgr_now_ms - c->idle_since >= CONN_IDLE_MS)
			conn_close(c);
	}
	conn_reap();
}

int64_t
qmgr_conn_timeout(void)
{
	int64_t best = -1, d;
	size_t i;

	for (i = 0; i < nconns; i++) {
		struct conn *c = conns[i];

		if (c->fd < 0)
			continue;
		d = c->req ? c->deadline - qmgr_now_ms : c->idle_since + CONN_IDLE_MS - qmgr_now_ms;
		if (d < 0)
			d = 0;
		if (best < 0 || d < best)
			best = d;
	}
	return best;
}

size_t
qmgr_conn_count(void)
{
	return nconns;
}
