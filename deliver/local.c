/*
 * local: the local delivery agent (DESIGN.md, "local"; doc/local.8).
 *
 * A service of hermod-master on private/local.  qmgr keeps a connection
 * and sends PROTO_DELIVER_REQ messages on it; for each request local
 * answers exactly one PROTO_DELIVER_STATUS per recipient, in order, and
 * then PROTO_DELIVER_DONE.  A malformed request is logged and the
 * connection closed (qmgr is trusted: a bad record is a bug, not input).
 *
 * Per recipient: the address is resolved into leaves (local_resolve.c),
 * each leaf is delivered, and the outcomes are folded into the one status
 * qmgr records for that recipient:
 *   - one leaf: its outcome;
 *   - several leaves (a list): remote addresses, and local addresses
 *     that are unknown, are re-queued as one new message per envelope
 *     sender (owner-NAME when the list has an owner), so qmgr retries
 *     and bounces them on their own, to the right sender; the other
 *     leaves are delivered here; if any of them is deferred the whole
 *     recipient is deferred (and the list is expanded again on retry,
 *     so members that already got it may get a duplicate -- never a
 *     loss); otherwise the first permanent failure, or sent.
 * A recipient is reported "sent" only after every byte is fsynced.
 */
#include "local.h"
#include "addr.h"
#include "conf.h"
#include "header.h"
#include "proto.h"
#include "service.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void
lstatus_init(struct lstatus *s)
{
	s->status = LS_SENT;
	snprintf(s->dsn, sizeof(s->dsn), "2.0.0");
	buf_init(&s->text);
}

void
lstatus_free(struct lstatus *s)
{
	buf_free(&s->text);
}

void
local_clean_text(struct buf *out, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		buf_addc(out, c < 0x20 || c == 0x7f ? ' ' : (int)c);
	}
}

void
lstatus_set(struct lstatus *s, int status, const char *dsn, const char *fmt, ...)
{
	struct buf t = BUF_INIT;
	va_list ap;

	s->status = status;
	snprintf(s->dsn, sizeof(s->dsn), "%s", dsn);
	va_start(ap, fmt);
	buf_vprintf(&t, fmt, ap);
	va_end(ap);
	buf_reset(&s->text);
	local_clean_text(&s->text, buf_str(&t), t.len);
	buf_free(&t);
	if (s->text.len > LOCAL_TEXT_MAX) {
		size_t n = LOCAL_TEXT_MAX;

		/* do not cut a UTF-8 sequence in two */
		while (n > 0 && ((unsigned char)s->text.data[n] & 0xc0) == 0x80)
			n--;
		buf_truncate(&s->text, n);
		buf_adds(&s->text, "...");
	}
}

void
lstatus_copy(struct lstatus *to, const struct lstatus *from)
{
	to->status = from->status;
	memcpy(to->dsn, from->dsn, sizeof(to->dsn));
	buf_reset(&to->text);
	buf_add(&to->text, from->text.data ? from->text.data : "", from->text.len);
}

const char *
lstatus_word(int status)
{
	return status == LS_SENT ? "sent" : status == LS_DEFER ? "deferred" : "bounced";
}

void
lstatus_from_errno(struct lstatus *s, int e, const char *text)
{
	switch (e) {
	case EAGAIN:
		lstatus_set(s, LS_DEFER, "4.2.0", "%s", text);
		break;
	case ENOSPC:
		lstatus_set(s, LS_DEFER, "4.3.1", "%s", text);
		break;
	case EDQUOT:
	case EFBIG:
		lstatus_set(s, LS_DEFER, "4.2.2", "%s", text);
		break;
	case ELOOP:
	case EMLINK:
	case EPERM:
	case EINVAL:
		/* a mailbox refused for safety: an administrator must look */
		msg_warn("%s", text);
		lstatus_set(s, LS_DEFER, "4.3.0", "%s", text);
		break;
	default:
		lstatus_set(s, LS_DEFER, "4.3.0", "%s", text);
		break;
	}
}

int
lmsg_copy(void *ctx, mail_sink_fn sink, void *sctx)
{
	struct lmsg *m = ctx;

	if (m->in_memory)
		return m->content.len ? sink(sctx, m->content.data, m->content.len) : 0;
	return qf_content(m->fd, &m->env, sink, sctx);
}

void
leaf_free(struct leaf *lf)
{
	free(lf->addr);
	free(lf->target);
	free(lf->sender);
	free(lf->pv.user);
	free(lf->pv.home);
	free(lf->env_rcpt);
	free(lf->env_local);
	free(lf->env_ext);
	free(lf->env_domain);
	lstatus_free(&lf->fail);
	memset(lf, 0, sizeof(*lf));
}

void
leaves_free(struct leaves *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		leaf_free(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/*
 * Reading the request's message.
 */
static int
collect(void *ctx, const char *p, size_t n)
{
	buf_add(ctx, p, n);
	return 0;
}

/* The Delivered-To: values and the hop count, from the header section. */
static void
scan_header(struct lmsg *m)
{
	struct buf head = BUF_INIT;
	struct header h;
	const char *p;
	size_t len, i, n = 0;
	long long max = conf_size("header_size_limit");

	if (m->in_memory) {
		p = m->content.data ? m->content.data : "";
		len = m->content.len;
	} else {
		(void)qf_content_head(m->fd, &m->env, max > 0 ? (size_t)max : 1024 * 1024, &head);
		p = buf_str(&head);
		len = head.len;
	}
	memset(&h, 0, sizeof(h));
	if (header_parse(p, len, max > 0 ? (size_t)max : 0, &h) == 0) {
		for (i = 0; i < h.n; i++) {
			if (!strcasecmp(h.f[i].name, "received"))
				m->hops++;
			else if (!strcasecmp(h.f[i].name, "delivered-to")) {
				char *v = xstrdup(h.f[i].value), *s = str_trim(v);
				size_t l = strlen(s);

				m->hops++;
				if (l >= 2 && s[0] == '<' && s[l - 1] == '>') {
					s[l - 1] = 0;
					s++;
				}
				str_lower(s);
				m->delivered_to = xreallocarray(m->delivered_to, n + 2, sizeof(char *));
				m->delivered_to[n++] = xstrdup(s);
				m->delivered_to[n] = NULL;
				free(v);
			}
		}
	}
	header_free(&h);
	buf_free(&head);
}

static int
send_status(int fd, const char *offset, const struct lstatus *st)
{
	return proto_send_strs(fd, PROTO_DELIVER_STATUS, offset, lstatus_word(st->status),
	    st->dsn, buf_str(&st->text), (const char *)NULL);
}

static void
log_leaf(struct lmsg *m, const char *rcpt, const char *to, const struct lstatus *st)
{
	if (to && strcasecmp(to, rcpt))
		msg_info("%s: to=<%s>, orig_to=<%s>, relay=local, status=%s (%s)", m->id,
		    to, rcpt, lstatus_word(st->status), buf_str(&st->text));
	else
		msg_info("%s: to=<%s>, relay=local, status=%s (%s)", m->id,
		    rcpt, lstatus_word(st->status), buf_str(&st->text));
}

/* Deliver one leaf that stays here (not re-queued). */
static void
deliver_leaf(struct lmsg *m, struct leaf *lf, struct lstatus *st)
{
	switch (lf->kind) {
	case LEAF_FAIL:
		lstatus_copy(st, &lf->fail);
		break;
	case LEAF_COMMAND:
		local_deliver_command(m, lf, st);
		break;
	case LEAF_REMOTE:
		lstatus_set(st, LS_DEFER, "4.3.0", "internal error: remote leaf");
		break;
	default:
		local_deliver_store(m, lf, st);
		break;
	}
}

/* Re-queue leaves (remote ones, and failures naming an address) grouped
 * by envelope sender.  0 ok (ids appended), -1 st deferred. */
static int
requeue(struct lmsg *m, const char *rcpt, const char *orcpt, unsigned notify,
    struct leaves *l, const int *take, struct buf *ids, struct lstatus *st)
{
	struct buf dto = BUF_INIT, oc = BUF_INIT;
	char *done = xcalloc(l->n, 1);
	char **rcpts = xcalloc(l->n + 1, sizeof(char *));
	size_t i, j, k;
	int rc = 0;

	buf_adds(&dto, rcpt);
	str_lower(dto.data);
	if (*orcpt)
		buf_adds(&oc, orcpt);
	else
		buf_printf(&oc, "rfc822;%s", rcpt);
	for (i = 0; i < l->n && rc == 0; i++) {
		char id[QUEUE_ID_MAX];
		struct lstatus ls;

		if (!take[i] || done[i])
			continue;
		for (j = i, k = 0; j < l->n; j++)
			if (take[j] && !done[j] && !strcmp(l->v[j].sender, l->v[i].sender)) {
				rcpts[k++] = l->v[j].kind == LEAF_REMOTE ? l->v[j].target : l->v[j].addr;
				done[j] = 1;
			}
		rcpts[k] = NULL;
		if (local_inject(m, l->v[i].sender, buf_str(&dto), rcpts, buf_str(&oc), notify, id, st) < 0) {
			rc = -1;
			break;
		}
		lstatus_init(&ls);
		lstatus_set(&ls, LS_SENT, "2.0.0", "forwarded as %s", id);
		for (j = 0; j < k; j++)
			log_leaf(m, rcpt, rcpts[j], &ls);
		lstatus_free(&ls);
		if (ids->len)
			buf_adds(ids, ", ");
		buf_adds(ids, id);
	}
	free(rcpts);
	free(done);
	buf_free(&dto);
	buf_free(&oc);
	return rc;
}

static void
deliver_rcpt(struct lmsg *m, const char *rcpt, const char *orcpt, unsigned notify,
    struct lstatus *st)
{
	struct leaves l = { NULL, 0 };
	struct lstatus ls;
	struct buf ids = BUF_INIT;
	int *take, have_defer = 0, have_bounce = 0;
	size_t i, nsent = 0, nlocal = 0;

	lstatus_init(&ls);
	if ((long long)m->hops > conf_int("hopcount_limit")) {
		lstatus_set(st, LS_BOUNCE, "5.4.6", "mail forwarding loop for %s (%zu Received:/Delivered-To: fields)",
		    rcpt, m->hops);
		log_leaf(m, rcpt, NULL, st);
		return;
	}
	local_resolve(m, rcpt, &l);
	if (l.n == 0) {
		lstatus_set(st, LS_BOUNCE, "5.4.6", "mail forwarding loop for %s: the expansion is empty", rcpt);
		log_leaf(m, rcpt, NULL, st);
		return;
	}
	take = xcalloc(l.n, sizeof(int));
	for (i = 0; i < l.n; i++)
		take[i] = l.v[i].kind == LEAF_REMOTE || (l.n > 1 && l.v[i].kind == LEAF_FAIL && l.v[i].reinject);
	/* local leaves first: a deferral here means no re-queueing yet */
	for (i = 0; i < l.n; i++) {
		if (take[i])
			continue;
		nlocal++;
		lstatus_init(&ls);
		deliver_leaf(m, &l.v[i], &ls);
		log_leaf(m, rcpt, l.v[i].addr, &ls);
		if (ls.status == LS_DEFER && !have_defer) {
			have_defer = 1;
			lstatus_copy(st, &ls);
		} else if (ls.status == LS_BOUNCE && !have_defer && !have_bounce) {
			have_bounce = 1;
			lstatus_copy(st, &ls);
		} else if (ls.status == LS_SENT) {
			nsent++;
			if (nsent == 1 && !have_defer && !have_bounce)
				lstatus_copy(st, &ls);
		}
		lstatus_free(&ls);
	}
	if (have_defer)
		goto out;
	if (nlocal < l.n) {
		if (requeue(m, rcpt, orcpt, notify, &l, take, &ids, st) < 0) {
			log_leaf(m, rcpt, NULL, st);
			goto out;
		}
	}
	if (have_bounce)
		goto out;
	if (l.n == 1) {
		if (ids.len)
			lstatus_set(st, LS_SENT, "2.0.0", "forwarded as %s", buf_str(&ids));
	} else if (ids.len && nsent)
		lstatus_set(st, LS_SENT, "2.0.0", "delivered to %zu destinations, forwarded as %s",
		    nsent, buf_str(&ids));
	else if (ids.len)
		lstatus_set(st, LS_SENT, "2.0.0", "forwarded as %s", buf_str(&ids));
	else if (nsent > 1)
		lstatus_set(st, LS_SENT, "2.0.0", "delivered to %zu destinations", nsent);
out:
	free(take);
	buf_free(&ids);
	leaves_free(&l);
}

/* 0 ok, -1: drop the connection. */
static int
handle_request(int fd, struct proto_msg *r)
{
	struct lmsg m;
	struct buf path = BUF_INIT, err = BUF_INIT;
	struct lstatus st;
	const char *why;
	size_t i, nrcpt;
	int rc = 0;

	if ((why = proto_deliver_req_check(r)) != NULL) {
		msg_error("malformed delivery request from qmgr: %s", why);
		return -1;
	}
	nrcpt = (r->nfields - 4) / 4;
	memset(&m, 0, sizeof(m));
	m.id = proto_field(r, 0);
	m.sender = proto_field(r, 2);
	buf_init(&m.content);
	conf_queue_path(&path, proto_field(r, 1));
	lstatus_init(&st);
	m.fd = open(buf_str(&path), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (m.fd < 0) {
		lstatus_set(&st, LS_DEFER, "4.3.0", "cannot open queue file: %s", strerror(errno));
		msg_error("%s: open %s: %s", m.id, buf_str(&path), strerror(errno));
	} else if (qf_read(m.fd, &m.env, &err) < 0) {
		lstatus_set(&st, LS_DEFER, "4.3.0", "cannot read queue file: %s", buf_str(&err));
		msg_error("%s: read %s: %s", m.id, buf_str(&path), buf_str(&err));
	} else {
		if (m.env.content_size <= LOCAL_MEM_MAX) {
			if (qf_content(m.fd, &m.env, collect, &m.content) != 0) {
				lstatus_set(&st, LS_DEFER, "4.3.0", "cannot read the queue file content: %s",
				    strerror(errno));
				msg_error("%s: read content of %s: %s", m.id, buf_str(&path), strerror(errno));
			} else
				m.in_memory = 1;
		}
		if (st.status == LS_SENT)
			scan_header(&m);
	}
	local_maps_refresh();
	for (i = 0; i < nrcpt && rc == 0; i++) {
		const char *off = proto_field(r, 4 + 4 * i);
		struct lstatus rs;

		if (st.status != LS_SENT) {
			if (send_status(fd, off, &st) < 0)
				rc = -1;
			continue;
		}
		lstatus_init(&rs);
		deliver_rcpt(&m, proto_field(r, 5 + 4 * i), proto_field(r, 6 + 4 * i),
		    (unsigned)atoi(proto_field(r, 7 + 4 * i)), &rs);
		if (send_status(fd, off, &rs) < 0)
			rc = -1;
		lstatus_free(&rs);
	}
	if (rc == 0 && proto_send_strs(fd, PROTO_DELIVER_DONE, (const char *)NULL) < 0)
		rc = -1;
	if (rc < 0)
		msg_warn("%s: cannot send the results to qmgr: %s", m.id, strerror(errno));
	if (m.fd >= 0)
		close(m.fd);
	qf_envelope_free(&m.env);
	buf_free(&m.content);
	strv_free(m.delivered_to);
	buf_free(&path);
	buf_free(&err);
	lstatus_free(&st);
	return rc;
}

static void
handle_conn(int fd, void *ctx)
{
	(void)ctx;
	proto_agent_loop(fd, handle_request, NULL);
}

int
main(int argc, char **argv)
{
	sane_fds();
	service_init("local", argc, argv);
	umask(077);
	if (conf_privileged() && geteuid() != 0)
		msg_warn("privileged instance but not running as root: every delivery runs as uid %ld",
		    (long)geteuid());

	service_accept_loop(handle_conn, NULL, 0);
	return 0;
}
