/*
 * qmgr_deliver.c: routing recipients to transports, and the connections
 * to the delivery agents (see qmgr.h).
 *
 * Routing: a recipient whose domain is in mydestination, or that has no
 * domain, goes to the "local" transport (private/local); the local part
 * $double_bounce_sender there is discarded; everything else goes to
 * "smtp" (private/smtp), one request per domain.  While no smtp service
 * exists, its recipients are deferred with 4.4.0.
 *
 * Connections: each transport keeps up to its concurrency limit of
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
#include "proto.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOCAL_BATCH	50	/* recipients per local request */
#define SMTP_BATCH	50	/* recipients per smtp request (one domain) */
#define SMTP_LIMIT	20	/* until conf says otherwise (smtp_destination_concurrency_limit) */
#define CONN_IDLE_MS	10000	/* close agent connections idle this long */
#define READ_CHUNK	65536

struct req {
	struct qmsg *m;
	char *nexthop;
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

struct transport {
	const char *name;
	const char *socket;	/* relative to the queue directory (our cwd) */
	size_t limit;
	int64_t timeout_ms;
	size_t batch;
	const char *down_dsn;	/* status when the agent cannot be reached */
	const char *down_text;
	struct req *head, *tail;
	size_t nconns;
	int64_t last_warn;
};

static struct transport tr_local = {
	"local", "private/local", 8, 3600000, LOCAL_BATCH,
	"4.3.0", "local delivery agent not available", NULL, NULL, 0, 0
};
static struct transport tr_smtp = {
	"smtp", "private/smtp", SMTP_LIMIT, 3600000, SMTP_BATCH,
	"4.4.0", "no route: smtp transport not available", NULL, NULL, 0, 0
};
static struct transport *transports[] = { &tr_local, &tr_smtp };
#define NTRANSPORTS (sizeof(transports) / sizeof(transports[0]))

static struct conn **conns;
static size_t nconns, conns_cap;
static struct conn **polled;		/* conns in the last pollfd array */
static size_t npolled;

static char **mydest;
static const char *double_bounce;

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
	v = conf_time("ipc_timeout");
	tr_smtp.timeout_ms = v > 0 ? v * 1000 : 3600000;
	v = conf_int("smtp_destination_concurrency_limit");
	tr_smtp.limit = v > 0 ? (size_t)v : 1;
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

static struct req *
req_new(struct qmsg *m, const char *nexthop, size_t cap)
{
	struct req *r = xcalloc(1, sizeof(*r));

	r->m = m;
	r->nexthop = xstrdup(nexthop);
	r->idx = xcalloc(cap, sizeof(*r->idx));
	r->answered = xcalloc(cap, 1);
	return r;
}

static void
enqueue(struct transport *t, struct req *r, int front)
{
	r->next = NULL;
	if (front) {
		r->next = t->head;
		t->head = r;
		if (!t->tail)
			t->tail = r;
		return;
	}
	if (t->tail)
		t->tail->next = r;
	else
		t->head = r;
	t->tail = r;
}

void
qmgr_route(struct qmsg *m)
{
	size_t n = m->env.nrcpt, i, j;
	/* 0 none, 1 local, 2 smtp */
	unsigned char *where = xcalloc(n ? n : 1, 1);
	char **dom = xcalloc(n ? n : 1, sizeof(char *));
	struct req *r = NULL;

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
		} else {
			where[i] = 2;
			dom[i] = xstrdup(at + 1);
			str_lower(dom[i]);
		}
	}
	/* local: batches in file order */
	for (i = 0; i < n; i++) {
		if (where[i] != 1)
			continue;
		if (!r)
			r = req_new(m, "", tr_local.batch);
		r->idx[r->n++] = i;
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
	/* smtp: one request per domain (and batch) */
	for (i = 0; i < n; i++) {
		if (where[i] != 2)
			continue;
		r = req_new(m, dom[i], tr_smtp.batch);
		for (j = i; j < n && r->n < tr_smtp.batch; j++) {
			if (where[j] == 2 && !strcmp(dom[j], dom[i])) {
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
		free(dom[i]);
	free(dom);
	free(where);
}

/* Every unanswered recipient of r gets this result; the request ends. */
static void
req_fail(struct transport *t, struct req *r, const char *dsn, const char *text)
{
	struct qmsg *m = r->m;
	size_t k;

	for (k = 0; k < r->n; k++)
		if (!r->answered[k])
			qmgr_rcpt_result(m, r->idx[k], RS_DEFERRED, dsn, text, t->name);
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
		return;
	}
	msg_warn("%s: %s delivery agent: %s", r->m->id, t->name, why);
	buf_printf(&text, "delivery agent failed: %s", why);
	req_fail(t, r, "4.3.0", buf_str(&text));
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

		while (t->head) {
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
					while ((r = t->head) != NULL) {
						t->head = r->next;
						if (!t->head)
							t->tail = NULL;
						req_fail(t, r, t->down_dsn, t->down_text);
					}
					break;
				}
			}
			r = t->head;
			t->head = r->next;
			if (!t->head)
				t->tail = NULL;
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
	int result;

	if (!r)
		return "message while no request is open";
	if (pm->type == PROTO_DELIVER_DONE) {
		struct qmsg *m = r->m;

		if (r->nanswered < r->n)
			return "end of statuses before every recipient was answered";
		c->req = NULL;
		c->idle_since = qmgr_now_ms;
		req_free(r);
		qmgr_request_done(m);
		return NULL;
	}
	if (pm->type != PROTO_DELIVER_STATUS)
		return "unexpected message type";
	if (pm->nfields != 4)
		return "status with the wrong number of fields";
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
