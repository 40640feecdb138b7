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
 *
 * Duplicate destinations (doc/local.8): the recipients of one request
 * share a filter of the destinations delivered so far (leaf_dest_key:
 * a mailbox, Maildir, file or command with the privileges it runs with,
 * a forwarded address), so a destination that two recipients reach --
 * "alice" and "team: alice, bob", two lists, a .forward back to another
 * recipient -- is delivered once, and the second recipient gets the
 * first one's outcome.  A forward to a remote address that is itself a
 * recipient of the message is left to that recipient.  The filter also
 * holds the destinations that the queue file says were delivered in an
 * earlier attempt (QF_ATTR_DELIVERED), and local reports the ones it
 * delivers to qmgr (digests after the four fields of a status), which
 * keeps them when it defers the message: so a retried list does not
 * deliver again to the members that already have it.
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
#include <openssl/evp.h>
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

/*
 * The duplicate filter of one request.
 */
#define LOCAL_DUP_LIMIT	1000	/* new destinations remembered per request */

struct dup_dest {
	char digest[QF_DIGEST_LEN + 1];
	int earlier;		/* delivered in an earlier attempt (queue file) */
	struct lstatus st;	/* the outcome in this request */
	char *rcpt;		/* the recipient it was delivered for */
};

struct dupfilter {
	const char *id;
	struct dup_dest *v;
	size_t n, nnew;
	int full;
};

/* Destination digests one recipient delivered, for its status. */
struct digests {
	char **v;
	size_t n;
};

static void
digests_add(struct digests *d, const char *digest)
{
	if (d->n >= QF_DELIVERED_MAX)
		return;		/* qmgr would not keep more */
	d->v = xreallocarray(d->v, d->n + 1, sizeof(char *));
	d->v[d->n++] = xstrdup(digest);
}

static void
digests_free(struct digests *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		free(d->v[i]);
	free(d->v);
	d->v = NULL;
	d->n = 0;
}

/* SHA-256 of the leaf's destination in hex.  0 ok, -1 none (a failure
 * that stays here, or no digest: then the leaf is simply not filtered). */
static int
dest_digest(const struct leaf *lf, char out[QF_DIGEST_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0, i;
	char *key = leaf_dest_key(lf);
	int ok;

	if (!key)
		return -1;
	ok = EVP_Digest(key, strlen(key), md, &mdlen, EVP_sha256(), NULL) == 1 &&
	    mdlen * 2 == QF_DIGEST_LEN;
	free(key);
	if (!ok) {
		msg_warn("SHA-256 is not available: a destination is not checked for duplicates");
		return -1;
	}
	for (i = 0; i < mdlen; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* 1 + the index of digest in the filter, 0 if it is not there (an
 * index, not a pointer: dup_add may move the array). */
static size_t
dup_find(struct dupfilter *df, const char *digest)
{
	size_t i;

	for (i = 0; i < df->n; i++)
		if (!memcmp(df->v[i].digest, digest, QF_DIGEST_LEN))
			return i + 1;
	return 0;
}

static void
dup_add(struct dupfilter *df, const char *digest, const struct lstatus *st,
    const char *rcpt, int earlier)
{
	struct dup_dest *d;

	if (!earlier && df->nnew >= LOCAL_DUP_LIMIT) {
		if (!df->full)
			msg_info("%s: more than %d destinations in one request: "
			    "the others are not checked for duplicates", df->id, LOCAL_DUP_LIMIT);
		df->full = 1;
		return;
	}
	if ((df->n & (df->n - 1)) == 0)
		df->v = xreallocarray(df->v, df->n ? 2 * df->n : 1, sizeof(*df->v));
	d = &df->v[df->n++];
	memcpy(d->digest, digest, QF_DIGEST_LEN + 1);
	d->earlier = earlier;
	lstatus_init(&d->st);
	lstatus_copy(&d->st, st);
	d->rcpt = xstrdup(rcpt);
	if (!earlier)
		df->nnew++;
}

/* The destinations the queue file says an earlier attempt delivered. */
static void
dup_load(struct dupfilter *df, const struct lmsg *m)
{
	size_t i, plen = strlen(QF_ATTR_DELIVERED);
	struct lstatus st;

	lstatus_init(&st);
	for (i = 0; m->env.attrs && m->env.attrs[i]; i++) {
		const char *a = m->env.attrs[i];

		if (!strncmp(a, QF_ATTR_DELIVERED, plen) && qf_digest_valid(a + plen) &&
		    !dup_find(df, a + plen))
			dup_add(df, a + plen, &st, "", 1);
	}
	lstatus_free(&st);
}

static void
dup_free(struct dupfilter *df)
{
	size_t i;

	for (i = 0; i < df->n; i++) {
		lstatus_free(&df->v[i].st);
		free(df->v[i].rcpt);
	}
	free(df->v);
	df->v = NULL;
	df->n = df->nnew = 0;
}

/* The outcome of a destination already done in this request. */
static void
dup_status(struct lstatus *ls, const struct dup_dest *d)
{
	if (d->st.status != LS_SENT)
		lstatus_copy(ls, &d->st);
	else if (d->earlier)
		lstatus_set(ls, LS_SENT, "2.0.0", "duplicate: delivered in an earlier attempt");
	else
		lstatus_set(ls, LS_SENT, "2.0.0", "duplicate: already delivered for <%s>", d->rcpt);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 1 if addr (a remote address) is itself a recipient of the message:
 * then qmgr delivers it with the message, and a forward adds nothing. */
static int
message_has_rcpt(struct lmsg *m, const char *addr)
{
	char *key;
	int found;
	size_t i;

	if (!m->rcpt_keys) {
		m->rcpt_keys = xcalloc(m->env.nrcpt + 1, sizeof(char *));
		for (i = 0; i < m->env.nrcpt; i++)
			m->rcpt_keys[i] = qf_rcpt_key(m->env.rcpt[i].addr, NULL);
		m->nrcpt_keys = m->env.nrcpt;
		qsort(m->rcpt_keys, m->nrcpt_keys, sizeof(char *), cmp_str);
	}
	key = qf_rcpt_key(addr, NULL);
	found = bsearch(&key, m->rcpt_keys, m->nrcpt_keys, sizeof(char *), cmp_str) != NULL;
	free(key);
	return found;
}

/* A status for qmgr, with the digests of the destinations delivered. */
static int
send_status(int fd, const char *offset, const struct lstatus *st, const struct digests *dg)
{
	struct proto_builder b;
	size_t i;

	proto_build_start(&b, PROTO_DELIVER_STATUS);
	proto_build_adds(&b, offset);
	proto_build_adds(&b, lstatus_word(st->status));
	proto_build_adds(&b, st->dsn);
	proto_build_adds(&b, buf_str(&st->text));
	for (i = 0; dg && i < dg->n; i++)
		proto_build_adds(&b, dg->v[i]);
	return proto_send(fd, &b);
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

/* What deliver_rcpt knows about each leaf of one recipient. */
struct leafinfo {
	int take;		/* re-queued rather than delivered here */
	int has_digest;
	char digest[QF_DIGEST_LEN + 1];
	size_t seen;		/* dup_find: already done in this request or before */
	int also_rcpt;		/* a remote address that the message has as a recipient */
	int same;		/* forwarded as an earlier leaf of this recipient */
};

/* The expansion keeps a forwarded address once per envelope sender
 * (owner- lists); it is still one destination: forward it once, with
 * the first sender. */
static void
mark_same_forwards(const struct leaves *l, struct leafinfo *li)
{
	char **keys = xcalloc(l->n, sizeof(char *));
	size_t *at = xcalloc(l->n, sizeof(size_t));
	unsigned char *dup;
	size_t i, n = 0;

	for (i = 0; i < l->n; i++)
		if (li[i].take && li[i].has_digest && !li[i].seen && !li[i].also_rcpt) {
			keys[n] = li[i].digest;
			at[n++] = i;
		}
	dup = xcalloc(n ? n : 1, 1);
	strv_mark_dups(keys, n, dup);
	for (i = 0; i < n; i++)
		li[at[i]].same = dup[i];
	free(dup);
	free(at);
	free(keys);
}

/* Re-queue leaves (remote ones, and failures naming an address) grouped
 * by envelope sender; each one that is safely queued goes into the
 * duplicate filter and dg.  0 ok (ids appended), -1 st deferred. */
static int
requeue(struct lmsg *m, const char *rcpt, const char *orcpt, unsigned notify,
    struct leaves *l, const struct leafinfo *li, struct dupfilter *df, struct digests *dg,
    struct buf *ids, struct lstatus *st)
{
	struct buf dto = BUF_INIT, oc = BUF_INIT;
	char *done = xcalloc(l->n, 1);
	char **rcpts = xcalloc(l->n + 1, sizeof(char *));
	size_t *grp = xcalloc(l->n, sizeof(size_t));
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

		if (!li[i].take || done[i])
			continue;
		for (j = i, k = 0; j < l->n; j++)
			if (li[j].take && !done[j] && !strcmp(l->v[j].sender, l->v[i].sender)) {
				rcpts[k] = l->v[j].kind == LEAF_REMOTE ? l->v[j].target : l->v[j].addr;
				grp[k++] = j;
				done[j] = 1;
			}
		rcpts[k] = NULL;
		if (local_inject(m, l->v[i].sender, buf_str(&dto), rcpts, buf_str(&oc), notify, id, st) < 0) {
			rc = -1;
			break;
		}
		lstatus_init(&ls);
		lstatus_set(&ls, LS_SENT, "2.0.0", "forwarded as %s", id);
		for (j = 0; j < k; j++) {
			log_leaf(m, rcpt, rcpts[j], &ls);
			if (li[grp[j]].has_digest) {
				dup_add(df, li[grp[j]].digest, &ls, rcpt, 0);
				digests_add(dg, li[grp[j]].digest);
			}
		}
		lstatus_free(&ls);
		if (ids->len)
			buf_adds(ids, ", ");
		buf_adds(ids, id);
	}
	free(grp);
	free(rcpts);
	free(done);
	buf_free(&dto);
	buf_free(&oc);
	return rc;
}

static void
deliver_rcpt(struct lmsg *m, struct dupfilter *df, const char *rcpt, const char *orcpt,
    unsigned notify, struct lstatus *st, struct digests *dg)
{
	struct leaves l = { NULL, 0 };
	struct leafinfo *li = NULL;
	struct lstatus ls;
	struct buf ids = BUF_INIT;
	int have_defer = 0, have_bounce = 0, have_sent = 0;
	size_t i, nsent = 0, ntake = 0, ndup = 0;

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
	li = xcalloc(l.n, sizeof(*li));
	for (i = 0; i < l.n; i++) {
		li[i].take = l.v[i].kind == LEAF_REMOTE || (l.n > 1 && l.v[i].kind == LEAF_FAIL && l.v[i].reinject);
		if (l.v[i].kind == LEAF_FAIL && !li[i].take)
			continue;	/* each recipient reports its own failure */
		if (dest_digest(&l.v[i], li[i].digest) == 0) {
			li[i].has_digest = 1;
			li[i].seen = dup_find(df, li[i].digest);
		}
		if (!li[i].seen && l.v[i].kind == LEAF_REMOTE && message_has_rcpt(m, l.v[i].target))
			li[i].also_rcpt = 1;
	}
	/* local leaves first: a deferral here means no re-queueing yet */
	for (i = 0; i < l.n; i++) {
		if (li[i].take)
			continue;
		lstatus_init(&ls);
		if (li[i].seen) {
			dup_status(&ls, &df->v[li[i].seen - 1]);
			ndup++;
		} else {
			deliver_leaf(m, &l.v[i], &ls);
			if (li[i].has_digest) {
				dup_add(df, li[i].digest, &ls, rcpt, 0);
				if (ls.status == LS_SENT)
					digests_add(dg, li[i].digest);
			}
			if (ls.status == LS_SENT)
				nsent++;
		}
		log_leaf(m, rcpt, l.v[i].addr, &ls);
		if (ls.status == LS_DEFER && !have_defer) {
			have_defer = 1;
			lstatus_copy(st, &ls);
		} else if (ls.status == LS_BOUNCE && !have_defer && !have_bounce) {
			have_bounce = 1;
			lstatus_copy(st, &ls);
		} else if (ls.status == LS_SENT && !have_sent && !have_defer && !have_bounce) {
			have_sent = 1;
			lstatus_copy(st, &ls);
		}
		lstatus_free(&ls);
	}
	if (have_defer)
		goto out;
	/* forwards: what another recipient (or an earlier attempt) already
	 * forwarded, or that the message itself goes to, is not sent again;
	 * nor an address that two owner- lists of this expansion share */
	mark_same_forwards(&l, li);
	for (i = 0; i < l.n; i++) {
		if (!li[i].take)
			continue;
		if (!li[i].seen && !li[i].also_rcpt && !li[i].same) {
			ntake++;
			continue;
		}
		lstatus_init(&ls);
		if (li[i].seen)
			dup_status(&ls, &df->v[li[i].seen - 1]);
		else if (li[i].same)
			lstatus_set(&ls, LS_SENT, "2.0.0", "duplicate: forwarded once for all its lists");
		else
			lstatus_set(&ls, LS_SENT, "2.0.0", "duplicate: <%s> is a recipient of this message",
			    l.v[i].target);
		log_leaf(m, rcpt, l.v[i].kind == LEAF_REMOTE ? l.v[i].target : l.v[i].addr, &ls);
		if (!have_sent && !have_bounce) {
			have_sent = 1;
			lstatus_copy(st, &ls);
		}
		lstatus_free(&ls);
		li[i].take = 0;
		ndup++;
	}
	if (ntake) {
		if (requeue(m, rcpt, orcpt, notify, &l, li, df, dg, &ids, st) < 0) {
			log_leaf(m, rcpt, NULL, st);
			goto out;
		}
	}
	if (have_bounce)
		goto out;
	if (l.n == 1) {
		if (ids.len)
			lstatus_set(st, LS_SENT, "2.0.0", "forwarded as %s", buf_str(&ids));
	} else if (ndup == 0) {
		if (ids.len && nsent)
			lstatus_set(st, LS_SENT, "2.0.0", "delivered to %zu destinations, forwarded as %s",
			    nsent, buf_str(&ids));
		else if (ids.len)
			lstatus_set(st, LS_SENT, "2.0.0", "forwarded as %s", buf_str(&ids));
		else if (nsent > 1)
			lstatus_set(st, LS_SENT, "2.0.0", "delivered to %zu destinations", nsent);
	} else {
		struct buf t = BUF_INIT;

		if (nsent)
			buf_printf(&t, "delivered to %zu destination%s", nsent, nsent == 1 ? "" : "s");
		if (ids.len)
			buf_printf(&t, "%sforwarded as %s", nsent ? ", " : "", buf_str(&ids));
		if (t.len)
			buf_printf(&t, "; %zu duplicate destination%s not delivered again",
			    ndup, ndup == 1 ? "" : "s");
		else
			buf_printf(&t, "duplicate: all %zu destinations already delivered", ndup);
		lstatus_set(st, LS_SENT, "2.0.0", "%s", buf_str(&t));
		buf_free(&t);
	}
out:
	free(li);
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
	struct dupfilter df;
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
	memset(&df, 0, sizeof(df));
	df.id = m.id;
	if (st.status == LS_SENT)
		dup_load(&df, &m);
	for (i = 0; i < nrcpt && rc == 0; i++) {
		const char *off = proto_field(r, 4 + 4 * i);
		struct lstatus rs;
		struct digests dg = { NULL, 0 };

		if (st.status != LS_SENT) {
			if (send_status(fd, off, &st, NULL) < 0)
				rc = -1;
			continue;
		}
		lstatus_init(&rs);
		deliver_rcpt(&m, &df, proto_field(r, 5 + 4 * i), proto_field(r, 6 + 4 * i),
		    (unsigned)atoi(proto_field(r, 7 + 4 * i)), &rs, &dg);
		if (send_status(fd, off, &rs, &dg) < 0)
			rc = -1;
		lstatus_free(&rs);
		digests_free(&dg);
	}
	dup_free(&df);
	if (rc == 0 && proto_send_strs(fd, PROTO_DELIVER_DONE, (const char *)NULL) < 0)
		rc = -1;
	if (rc < 0)
		msg_warn("%s: cannot send the results to qmgr: %s", m.id, strerror(errno));
	if (m.fd >= 0)
		close(m.fd);
	qf_envelope_free(&m.env);
	buf_free(&m.content);
	strv_free(m.delivered_to);
	for (i = 0; i < m.nrcpt_keys; i++)
		free(m.rcpt_keys[i]);
	free(m.rcpt_keys);
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
