/*
 * imap_session: the mail process of an IMAP session, running as the
 * user: the authenticated and selected states (RFC 3501 6.3-6.4) and
 * the extensions of imapd(8).  One command at a time from the parser;
 * after each command the selected mailbox is synced and the changes
 * told as untagged EXISTS/RECENT/EXPUNGE/FETCH, except that EXPUNGE is
 * held back during FETCH, STORE and SEARCH (RFC 3501 7.4.1).  IDLE waits
 * on the box's inotify descriptor, so new mail is pushed at once.
 */
#include "config.h"
#include "imap_session.h"
#include "imap_compress.h"
#include "imap_box.h"
#include "imap_fetch.h"
#include "imap_folder.h"
#include "imap_search.h"
#include "conf.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#define OUT_FLUSH	65536

struct sess {
	const struct access_opts *o;
	struct auth_user *au;
	int tls;
	int fd;
	struct imap_parser *p;
	struct buf in, out;
	int state;
	int eof, in_eof, werr;
	struct imap_ns ns;
	struct imap_box box;
	int selected;
	int box_dirty;		/* sync even if the watch saw nothing */
	int synced_expunge;	/* the last sync could tell expunges */
	int condstore, utf8;
	int qresync;		/* ENABLE QRESYNC: VANISHED instead of EXPUNGE */
	struct imap_seqset saved;	/* SEARCHRES, as UIDs */
	long bad;
	long long idle_ms;
	int idling;
	struct buf idle_tag;
	int64_t rate_start;
	long rate_n;
	struct imap_compress *z;	/* COMPRESS=DEFLATE once active */
	struct buf zraw, zout;		/* its wire bytes, in and out */
};

/* ---- capabilities ---------------------------------------------------- */

void
imap_capabilities(struct buf *out, int state, int starttls, int logindisabled)
{
	buf_adds(out, "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE");
	if (state == IMAP_STATE_NOT_AUTH) {
		if (starttls)
			buf_adds(out, " STARTTLS");
		buf_adds(out, logindisabled ? " LOGINDISABLED" : " AUTH=PLAIN");
		return;
	}
	buf_adds(out, " NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN LIST-EXTENDED LIST-STATUS"
	    " SPECIAL-USE ESEARCH SEARCHRES CONDSTORE QRESYNC SORT THREAD=ORDEREDSUBJECT"
	    " THREAD=REFERENCES BINARY UTF8=ACCEPT WITHIN COMPRESS=DEFLATE QUOTA");
	if (conf_int("message_size_limit") > 0)
		buf_printf(out, " APPENDLIMIT=%lld", (long long)conf_int("message_size_limit"));
}

void
imap_limits_from_conf(struct imap_limits *l)
{
	long long msl = conf_int("message_size_limit");

	imap_limits_default(l);
	l->line_max = (size_t)conf_int("imap_line_length_limit");
	l->literal_max = (size_t)conf_int("imap_literal_size_limit");
	l->command_max = (size_t)conf_int("imap_command_size_limit");
	l->depth_max = (unsigned)conf_int("imap_nesting_limit");
	l->ranges_max = (size_t)conf_int("imap_sequence_ranges_limit");
	l->search_keys_max = (size_t)conf_int("imap_search_keys_limit");
	if (msl > 0) {
		l->append_max = (uint64_t)msl;
		l->append_total_max = (uint64_t)msl;
	} else {
		l->append_max = UINT32_MAX;
		l->append_total_max = UINT32_MAX;
	}
}

/* ---- output ---------------------------------------------------------- */

static int
flush_out(struct sess *s)
{
	int r = 0;

	if (s->out.len && !s->werr && s->z) {
		r = imap_compress_deflate(s->z, s->out.data, s->out.len, &s->zout);
		if (r < 0)
			msg_warn("user=<%s>: deflate failed", s->au->name);
		else
			r = write_full(s->fd, s->zout.data, s->zout.len);
		/* a large response's buffer is not kept for an IDLE */
		if (s->zout.cap > OUT_FLUSH * 2)
			buf_free(&s->zout);
		buf_reset(&s->zout);
	} else if (s->out.len && !s->werr)
		r = write_full(s->fd, s->out.data, s->out.len);
	buf_reset(&s->out);
	if (r < 0)
		s->eof = s->werr = 1;
	return r;
}

static void
maybe_flush(struct sess *s)
{
	if (s->out.len >= OUT_FLUSH)
		flush_out(s);
}

static void idle_release(struct sess *s);
static void tagged(struct sess *s, const char *tag, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
tagged(struct sess *s, const char *tag, const char *status, const char *fmt, ...)
{
	va_list ap;

	buf_printf(&s->out, "%s %s ", tag, status);
	va_start(ap, fmt);
	buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	buf_adds(&s->out, "\r\n");
	/* errors in a row count, as in Dovecot: a good command forgives */
	if (!strcmp(status, "BAD"))
		s->bad++;
	else if (!strcmp(status, "OK"))
		s->bad = 0;
}

static void
box_error(struct sess *s, const char *tag, int r, const struct buf *err)
{
	switch (r) {
	case IBOX_INUSE:
		tagged(s, tag, "NO", "[INUSE] The mailbox is locked by another session, try again later");
		break;
	case IBOX_NONEXIST:
		tagged(s, tag, "NO", "[NONEXISTENT] No such mailbox");
		break;
	case IBOX_OVERQUOTA:
		msg_info("user=<%s>: over quota: %s", s->au->name, buf_str(err));
		tagged(s, tag, "NO", "[OVERQUOTA] Quota exceeded");
		break;
	case IBOX_GONE:
		tagged(s, tag, "NO", "[EXPUNGEISSUED] Some of the messages were expunged");
		break;
	default:
		msg_error("user=<%s>: %s", s->au->name, buf_str(err));
		tagged(s, tag, "NO", "[SERVERBUG] Internal error, see the server log");
		break;
	}
}

/* ---- the selected mailbox --------------------------------------------- */

static void
flags_response(struct sess *s, size_t i, int uid)
{
	const struct ibox_msg *m = &s->box.msgs[i];

	buf_printf(&s->out, "* %zu FETCH (", i + 1);
	if (uid)
		buf_printf(&s->out, "UID %u ", m->uid);
	buf_adds(&s->out, "FLAGS ");
	imap_fetch_flags(m, &s->out);
	if (s->condstore && !s->box.nomodseq)
		buf_printf(&s->out, " MODSEQ (%llu)", (unsigned long long)m->modseq);
	buf_adds(&s->out, ")\r\n");
}

static void
tell_changes(struct sess *s, const struct ibox_changes *ch)
{
	size_t i;

	/* RFC 7162 3.2.10: once QRESYNC is on, VANISHED replaces EXPUNGE */
	if (s->qresync && ch->vanished.n) {
		buf_adds(&s->out, "* VANISHED ");
		imap_seq_write(&s->out, &ch->vanished);
		buf_adds(&s->out, "\r\n");
	} else
		for (i = 0; i < ch->nexpunged; i++)
			buf_printf(&s->out, "* %u EXPUNGE\r\n", ch->expunged[i]);
	for (i = 0; i < ch->nchanged; i++)
		if (ch->changed[i] < s->box.n)
			flags_response(s, ch->changed[i], 0);
	/* each EXPUNGE already lowers the count: EXISTS only for growth */
	if (ch->exists)
		buf_printf(&s->out, "* %zu EXISTS\r\n* %zu RECENT\r\n", s->box.n, s->box.recent);
}

static void
close_box(struct sess *s)
{
	if (!s->selected)
		return;
	ibox_close(&s->box);
	memset(&s->box, 0, sizeof(s->box));
	s->selected = 0;
	imap_seq_free(&s->saved);
	s->state = IMAP_STATE_AUTH;
	imap_parser_set_state(s->p, s->state);
}

/* Sync the selected box and tell the client. */
static void
sync_box(struct sess *s, int allow_expunge)
{
	struct ibox_changes ch;
	struct buf err = BUF_INIT;
	int r;

	if (!s->selected)
		return;
	/* nothing happened in the folder since the last sync (the watch
	 * reports every change of new/, cur/ and the index, ours too): a
	 * rescan of a large folder after every command would cost more
	 * than the command.  Messages marked expunged wait for a sync
	 * that may tell them. */
	if (!s->box_dirty && allow_expunge <= s->synced_expunge) {
		int fd = ibox_watch(&s->box);
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (fd >= 0 && (poll(&p, 1, 0) == 0 || ibox_watch_drain(&s->box) == 0))
			return;
	}
	ibox_watch_drain(&s->box);
	s->box_dirty = 0;
	s->synced_expunge = allow_expunge;
	memset(&ch, 0, sizeof(ch));
	r = ibox_sync(&s->box, allow_expunge, &ch, &err);
	if (r == IBOX_OK) {
		if (ch.uidvalidity) {
			buf_adds(&s->out, "* BYE [UIDVALIDITY] The mailbox was rebuilt, please log in again\r\n");
			s->eof = 1;
		} else
			tell_changes(s, &ch);
	} else if (r != IBOX_INUSE)
		msg_warn("user=<%s>: sync: %s", s->au->name, buf_str(&err));
	ibox_changes_free(&ch);
	buf_free(&err);
}

/* VANISHED (EARLIER): the UIDs of `set' (every UID below UIDNEXT when
 * NULL) that are not in the box.  Without a record of when each message
 * went, this is every such UID, also those the client already knew to
 * be gone; RFC 7162 3.2.5.1 and 3.2.6 allow that. */
static void
vanished_earlier(struct sess *s, const struct imap_seqset *set)
{
	struct imap_seqset gone = IMAP_SEQ_INIT, want = IMAP_SEQ_INIT;
	size_t i, j = 0;

	if (s->box.uidnext <= 1)
		return;
	if (set)
		imap_seq_resolve(set, s->box.uidnext - 1, &want);
	else
		imap_seq_add(&want, 1, s->box.uidnext - 1);
	imap_seq_normalize(&want);
	/* the ranges of want minus the UIDs present (msgs ascend by UID) */
	for (i = 0; i < want.n; i++) {
		uint32_t lo = want.r[i].lo, hi = want.r[i].hi > s->box.uidnext - 1 ?
		    s->box.uidnext - 1 : want.r[i].hi;

		while (lo <= hi && lo != 0) {
			while (j < s->box.n && (s->box.msgs[j].uid < lo || s->box.msgs[j].expunged))
				j++;
			if (j >= s->box.n || s->box.msgs[j].uid > hi) {
				imap_seq_add(&gone, lo, hi);
				break;
			}
			if (s->box.msgs[j].uid > lo)
				imap_seq_add(&gone, lo, s->box.msgs[j].uid - 1);
			if (s->box.msgs[j].uid == UINT32_MAX)
				break;
			lo = s->box.msgs[j].uid + 1;
		}
	}
	if (gone.n) {
		imap_seq_normalize(&gone);
		buf_adds(&s->out, "* VANISHED (EARLIER) ");
		imap_seq_write(&s->out, &gone);
		buf_adds(&s->out, "\r\n");
	}
	imap_seq_free(&gone);
	imap_seq_free(&want);
}

/* Indices of the messages a set names (UIDs when uid).  0 ok; -1 a
 * sequence number past the end (BAD). */
static int
resolve(struct sess *s, const struct imap_seqset *set, int uid, size_t **idx, size_t *n)
{
	struct imap_seqset r = IMAP_SEQ_INIT;
	const struct imap_seqset *in = set;
	size_t i, k;

	*idx = NULL;
	*n = 0;
	if (set->saved)
		in = &s->saved;
	if (!uid && !set->saved && imap_seq_highest(set) > s->box.n)
		return -1;
	if (set->saved || uid) {
		uint32_t max = s->box.n ? s->box.msgs[s->box.n - 1].uid : 0;

		if (set->saved) {
			/* already UIDs, normalised */
			for (k = 0; k < in->n; k++)
				imap_seq_add(&r, in->r[k].lo, in->r[k].hi);
			imap_seq_normalize(&r);
		} else
			imap_seq_resolve(in, max, &r);
		*idx = xcalloc(s->box.n ? s->box.n : 1, sizeof(**idx));
		for (i = 0; i < s->box.n; i++)
			if (imap_seq_contains(&r, s->box.msgs[i].uid))
				(*idx)[(*n)++] = i;
		imap_seq_free(&r);
		if (set->saved && !uid) {
			/* "$" in a sequence-number command still names the
			 * saved messages (RFC 5182 2.1) */
		}
		return 0;
	}
	imap_seq_resolve(in, (uint32_t)s->box.n, &r);
	*idx = xcalloc((size_t)imap_seq_count(&r) + 1, sizeof(**idx));
	for (k = 0; k < r.n; k++) {
		uint32_t v;

		for (v = r.r[k].lo; v >= 1 && v <= r.r[k].hi; v++) {
			(*idx)[(*n)++] = v - 1;
			if (v == UINT32_MAX)
				break;
		}
	}
	imap_seq_free(&r);
	return 0;
}

static void
do_select(struct sess *s, const struct imap_cmd *c)
{
	struct buf path = BUF_INIT, err = BUF_INIT;
	struct imap_folder_res fr;
	const struct imap_select *sel = &c->select;
	int maildir, exists, r, ro = c->verb == IMAP_CMD_EXAMINE;
	size_t i, unseen = 0;

	if (sel->qresync && !s->qresync) {
		tagged(s, c->tag, "BAD", "QRESYNC parameter without ENABLE QRESYNC");
		return;
	}
	if (s->selected) {
		close_box(s);
		buf_adds(&s->out, "* OK [CLOSED] Previous mailbox closed\r\n");
	}
	imap_folder_res_init(&fr);
	if (imap_folder_path(&s->ns, &sel->mbox, &path, &maildir, &exists, &fr) < 0) {
		tagged(s, c->tag, fr.status, "%s%s%s%s", fr.code ? "[" : "", fr.code ? fr.code : "",
		    fr.code ? "] " : "", buf_str(&fr.text));
		goto out;
	}
	if (!exists) {
		tagged(s, c->tag, "NO", "[NONEXISTENT] No such mailbox");
		goto out;
	}
	memset(&s->box, 0, sizeof(s->box));
	r = ibox_open(&s->box, buf_str(&path), maildir, ro, &err);
	if (r != IBOX_OK) {
		ibox_close(&s->box);
		memset(&s->box, 0, sizeof(s->box));
		box_error(s, c->tag, r, &err);
		goto out;
	}
	s->selected = 1;
	s->synced_expunge = 1;
	/* the watch starts now, so that every later change is seen */
	(void)ibox_watch(&s->box);
	s->state = IMAP_STATE_SELECTED;
	imap_parser_set_state(s->p, s->state);
	if (sel->condstore)
		s->condstore = 1;
	{
		struct buf kw = BUF_INIT;

		if (s->box.kwlist && *s->box.kwlist) {
			char **v = str_split(s->box.kwlist, ","), **q;

			for (q = v; *q; q++)
				buf_printf(&kw, " %s", *q);
			strv_free(v);
		}
		buf_printf(&s->out, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft%s)\r\n", buf_str(&kw));
		buf_printf(&s->out, "* OK [PERMANENTFLAGS (%s\\Answered \\Flagged \\Deleted \\Seen \\Draft%s%s)] Flags permitted\r\n",
		    "", buf_str(&kw), s->box.readonly ? "" : " \\*");
		buf_free(&kw);
	}
	buf_printf(&s->out, "* %zu EXISTS\r\n* %zu RECENT\r\n", s->box.n, s->box.recent);
	for (i = 0; i < s->box.n; i++)
		if (!(s->box.msgs[i].flags & IMAP_FLAG_SEEN)) {
			unseen = i + 1;
			break;
		}
	if (unseen)
		buf_printf(&s->out, "* OK [UNSEEN %zu] First unseen\r\n", unseen);
	buf_printf(&s->out, "* OK [UIDVALIDITY %u] UIDs valid\r\n* OK [UIDNEXT %u] Predicted next UID\r\n",
	    s->box.uidvalidity, s->box.uidnext);
	if (s->box.nomodseq)
		buf_adds(&s->out, "* OK [NOMODSEQ] No persistent modification sequences\r\n");
	else
		buf_printf(&s->out, "* OK [HIGHESTMODSEQ %llu] Highest\r\n", (unsigned long long)s->box.highestmodseq);
	/* RFC 7162 3.2.5: the client's cache is brought up to date: what
	 * went (VANISHED (EARLIER)), then what changed since its MODSEQ */
	if (sel->qresync && sel->uidvalidity == s->box.uidvalidity && !s->box.nomodseq) {
		vanished_earlier(s, sel->known_uids.n ? &sel->known_uids : NULL);
		for (i = 0; i < s->box.n; i++) {
			const struct ibox_msg *m = &s->box.msgs[i];

			if (m->modseq > sel->modseq &&
			    (!sel->known_uids.n || imap_seq_contains(&sel->known_uids, m->uid)))
				flags_response(s, i, 1);
		}
	}
	tagged(s, c->tag, "OK", "[%s] %s completed", s->box.readonly ? "READ-ONLY" : "READ-WRITE",
	    ro ? "EXAMINE" : "SELECT");
out:
	imap_folder_res_free(&fr);
	buf_free(&path);
	buf_free(&err);
}

static void
folder_done(struct sess *s, const char *tag, struct imap_folder_res *fr, const char *what)
{
	if (!strcmp(fr->status, "OK") && !fr->text.len)
		buf_printf(&fr->text, "%s completed", what);
	tagged(s, tag, fr->status, "%s%s%s%s", fr->code ? "[" : "", fr->code ? fr->code : "",
	    fr->code ? "] " : "", buf_str(&fr->text));
}

static void
do_fetch(struct sess *s, const struct imap_cmd *c)
{
	const struct imap_fetch *f = &c->fetch;
	struct buf err = BUF_INIT;
	size_t *idx, n, k;
	int sets_seen = imap_fetch_sets_seen(f), gone = 0, r;

	if (f->vanished && !s->qresync) {
		tagged(s, c->tag, "BAD", "VANISHED without ENABLE QRESYNC");
		return;
	}
	if (resolve(s, &f->set, c->uid, &idx, &n) < 0) {
		tagged(s, c->tag, "BAD", "Invalid message sequence number");
		return;
	}
	/* RFC 7162 3.2.6: the UIDs of the set that are gone come first */
	if (f->vanished)
		vanished_earlier(s, f->set.saved ? &s->saved : &f->set);
	for (k = 0; k < n && !s->eof; k++) {
		struct ibox_msg *m = &s->box.msgs[idx[k]];
		int add_flags = 0;

		if (m->expunged) {
			gone = 1;
			continue;
		}
		if (f->changedsince_set && m->modseq <= f->changedsince)
			continue;
		if (sets_seen && !s->box.readonly && !(m->flags & IMAP_FLAG_SEEN)) {
			if (ibox_store(&s->box, idx[k], (m->flags & ~IBOX_RECENT) | IMAP_FLAG_SEEN,
			    m->keywords, &err) == IBOX_OK)
				add_flags = 1;
		}
		r = imap_fetch_msg(&s->box, idx[k], f, c->uid, add_flags, s->condstore || f->changedsince_set,
		    &s->out, &err);
		if (r == IBOX_GONE)
			gone = 1;
		else if (r == IMAP_FETCH_UNKNOWN_CTE) {
			free(idx);
			tagged(s, c->tag, "NO", "[UNKNOWN-CTE] Unknown content transfer encoding");
			buf_free(&err);
			return;
		} else if (r != IBOX_OK) {
			free(idx);
			box_error(s, c->tag, r, &err);
			buf_free(&err);
			return;
		}
		maybe_flush(s);
	}
	free(idx);
	if (f->changedsince_set)
		s->condstore = 1;
	sync_box(s, c->uid);
	if (gone)
		tagged(s, c->tag, "NO", "[EXPUNGEISSUED] Some messages were expunged before they could be fetched");
	else
		tagged(s, c->tag, "OK", "FETCH completed");
	buf_free(&err);
}

/* The keyword list of a message after STORE: "a,b" (caller frees). */
static char *
merge_keywords(const char *old, const struct imap_flags *fl, int op)
{
	char **v = old && *old ? str_split(old, ",") : NULL;
	struct buf out = BUF_INIT;
	size_t i, j, nv = v ? strv_len(v) : 0;

	if (op == IMAP_STORE_SET) {
		for (i = 0; i < fl->nkw; i++) {
			for (j = 0; j < i; j++)
				if (!strcasecmp(fl->kw[i], fl->kw[j]))
					break;
			if (j == i)
				buf_printf(&out, "%s%s", out.len ? "," : "", fl->kw[i]);
		}
	} else {
		for (i = 0; i < nv; i++) {
			int drop = 0;

			if (op == IMAP_STORE_REMOVE)
				for (j = 0; j < fl->nkw; j++)
					if (!strcasecmp(v[i], fl->kw[j]))
						drop = 1;
			if (!drop)
				buf_printf(&out, "%s%s", out.len ? "," : "", v[i]);
		}
		if (op == IMAP_STORE_ADD)
			for (i = 0; i < fl->nkw; i++) {
				int have = 0;

				for (j = 0; j < nv; j++)
					if (!strcasecmp(v[j], fl->kw[i]))
						have = 1;
				for (j = 0; j < i; j++)
					if (!strcasecmp(fl->kw[j], fl->kw[i]))
						have = 1;
				if (!have)
					buf_printf(&out, "%s%s", out.len ? "," : "", fl->kw[i]);
			}
	}
	if (v)
		strv_free(v);
	return buf_steal(&out);
}

static void
do_store(struct sess *s, const struct imap_cmd *c)
{
	const struct imap_store *st = &c->store;
	struct imap_seqset modified = IMAP_SEQ_INIT;
	struct buf err = BUF_INIT;
	size_t *idx, n, k, *sidx, ns = 0;
	unsigned *sflags;
	char **skw, *tell;
	int gone = 0, r, *sres;

	if (s->box.readonly) {
		tagged(s, c->tag, "NO", "[READ-ONLY] The mailbox is read-only");
		return;
	}
	if (resolve(s, &st->set, c->uid, &idx, &n) < 0) {
		tagged(s, c->tag, "BAD", "Invalid message sequence number");
		return;
	}
	if (st->unchangedsince_set)
		s->condstore = 1;
	/* first what changes, then all of it at once (ibox_store_many) */
	sidx = xcalloc(n ? n : 1, sizeof(*sidx));
	sflags = xcalloc(n ? n : 1, sizeof(*sflags));
	skw = xcalloc(n ? n : 1, sizeof(*skw));
	sres = xcalloc(n ? n : 1, sizeof(*sres));
	tell = xcalloc(n ? n : 1, 1);
	for (k = 0; k < n; k++) {
		struct ibox_msg *m = &s->box.msgs[idx[k]];
		unsigned nf, old = m->flags & ~IBOX_RECENT;
		char *kw;

		if (m->expunged) {
			gone = 1;
			continue;
		}
		if (st->unchangedsince_set && m->modseq > st->unchangedsince) {
			imap_seq_add(&modified, c->uid ? m->uid : (uint32_t)(idx[k] + 1),
			    c->uid ? m->uid : (uint32_t)(idx[k] + 1));
			continue;
		}
		tell[k] = 1;
		nf = st->op == IMAP_STORE_SET ? st->flags.sys :
		    st->op == IMAP_STORE_ADD ? old | st->flags.sys : old & ~st->flags.sys;
		kw = merge_keywords(m->keywords, &st->flags, st->op);
		if (nf != old || strcmp(kw, m->keywords ? m->keywords : "")) {
			sidx[ns] = idx[k];
			sflags[ns] = nf;
			skw[ns++] = kw;
		} else
			free(kw);
	}
	r = ns ? ibox_store_many(&s->box, sidx, sflags, skw, ns, sres, &err) : IBOX_OK;
	for (k = 0; k < ns; k++) {
		if (r == IBOX_OK && sres[k] == IBOX_GONE)
			gone = 1;
		free(skw[k]);
	}
	free(sidx);
	free(sflags);
	free(skw);
	free(sres);
	if (r != IBOX_OK) {
		free(tell);
		free(idx);
		imap_seq_free(&modified);
		box_error(s, c->tag, r, &err);
		buf_free(&err);
		return;
	}
	for (k = 0; k < n; k++)
		if (tell[k] && !s->box.msgs[idx[k]].expunged &&
		    (!st->silent || (s->condstore && st->unchangedsince_set)))
			flags_response(s, idx[k], c->uid);
	free(tell);
	free(idx);
	sync_box(s, c->uid);
	if (modified.n) {
		struct buf ms = BUF_INIT;

		imap_seq_normalize(&modified);
		imap_seq_write(&ms, &modified);
		tagged(s, c->tag, "OK", "[MODIFIED %s] Conditional STORE failed", buf_str(&ms));
		buf_free(&ms);
	} else if (gone)
		tagged(s, c->tag, "NO", "[EXPUNGEISSUED] Some messages were expunged");
	else
		tagged(s, c->tag, "OK", "STORE completed");
	imap_seq_free(&modified);
	buf_free(&err);
}

static void
write_uids(struct buf *out, const uint32_t *u, size_t n)
{
	struct imap_seqset set = IMAP_SEQ_INIT;
	size_t i;

	/* COPYUID pairs the two lists in order: no merging of ranges that
	 * would reorder them */
	for (i = 0; i < n; i++) {
		if (set.n && set.r[set.n - 1].hi + 1 == u[i])
			set.r[set.n - 1].hi = u[i];
		else
			imap_seq_add(&set, u[i], u[i]);
	}
	for (i = 0; i < set.n; i++) {
		if (i)
			buf_addc(out, ',');
		if (set.r[i].lo == set.r[i].hi)
			buf_printf(out, "%u", set.r[i].lo);
		else
			buf_printf(out, "%u:%u", set.r[i].lo, set.r[i].hi);
	}
	imap_seq_free(&set);
}

static void
do_copy(struct sess *s, const struct imap_cmd *c)
{
	const struct imap_copy *cp = &c->copy;
	struct buf path = BUF_INIT, err = BUF_INIT, code = BUF_INIT;
	struct imap_folder_res fr;
	size_t *idx, n, k;
	uint32_t uidv = 0, *src = NULL, *dst = NULL;
	int maildir, exists, r, move = c->verb == IMAP_CMD_MOVE;

	imap_folder_res_init(&fr);
	if (resolve(s, &cp->set, c->uid, &idx, &n) < 0) {
		tagged(s, c->tag, "BAD", "Invalid message sequence number");
		goto out0;
	}
	if (move && s->box.readonly) {
		tagged(s, c->tag, "NO", "[READ-ONLY] The mailbox is read-only");
		goto out;
	}
	if (imap_folder_path(&s->ns, &cp->mbox, &path, &maildir, &exists, &fr) < 0) {
		folder_done(s, c->tag, &fr, "COPY");
		goto out;
	}
	if (!exists) {
		tagged(s, c->tag, "NO", "[TRYCREATE] No such mailbox");
		goto out;
	}
	if (!n) {
		sync_box(s, c->uid);
		tagged(s, c->tag, "OK", "No messages %s", move ? "moved" : "copied");
		goto out;
	}
	dst = xcalloc(n, sizeof(*dst));
	src = xcalloc(n, sizeof(*src));
	for (k = 0; k < n; k++)
		src[k] = s->box.msgs[idx[k]].uid;
	ibox_quota_moving(move);
	r = ibox_copy(&s->box, idx, n, buf_str(&path), maildir, &uidv, dst, &err);
	ibox_quota_moving(0);
	if (r != IBOX_OK) {
		box_error(s, c->tag, r, &err);
		goto out;
	}
	buf_printf(&code, "COPYUID %u ", uidv);
	write_uids(&code, src, n);
	buf_addc(&code, ' ');
	write_uids(&code, dst, n);
	if (move) {
		struct imap_seqset us = IMAP_SEQ_INIT;
		struct ibox_changes ch;

		for (k = 0; k < n; k++) {
			struct ibox_msg *m = &s->box.msgs[idx[k]];

			imap_seq_add(&us, m->uid, m->uid);
			if (!(m->flags & IMAP_FLAG_DELETED))
				(void)ibox_store(&s->box, idx[k], (m->flags & ~IBOX_RECENT) | IMAP_FLAG_DELETED,
				    m->keywords, &err);
		}
		imap_seq_normalize(&us);
		buf_printf(&s->out, "* OK [%s] Moved\r\n", buf_str(&code));
		memset(&ch, 0, sizeof(ch));
		r = ibox_expunge(&s->box, &us, &ch, &err);
		imap_seq_free(&us);
		if (r == IBOX_OK)
			tell_changes(s, &ch);
		ibox_changes_free(&ch);
		if (r != IBOX_OK) {
			box_error(s, c->tag, r, &err);
			goto out;
		}
		sync_box(s, 1);
		tagged(s, c->tag, "OK", "MOVE completed");
	} else {
		sync_box(s, 1);
		tagged(s, c->tag, "OK", "[%s] COPY completed", buf_str(&code));
	}
out:
	free(idx);
out0:
	free(src);
	free(dst);
	imap_folder_res_free(&fr);
	buf_free(&path);
	buf_free(&err);
	buf_free(&code);
}

static void
do_append(struct sess *s, const struct imap_cmd *c)
{
	const struct imap_append *a = &c->append;
	struct buf path = BUF_INIT, err = BUF_INIT;
	struct imap_folder_res fr;
	struct ibox_append *m;
	char **kw;
	uint32_t uidv = 0, *uids;
	size_t i, j;
	int maildir, exists, r;

	imap_folder_res_init(&fr);
	if (imap_folder_path(&s->ns, &a->mbox, &path, &maildir, &exists, &fr) < 0) {
		folder_done(s, c->tag, &fr, "APPEND");
		goto out0;
	}
	if (!exists) {
		tagged(s, c->tag, "NO", "[TRYCREATE] No such mailbox");
		goto out0;
	}
	m = xcalloc(a->n, sizeof(*m));
	kw = xcalloc(a->n, sizeof(*kw));
	uids = xcalloc(a->n, sizeof(*uids));
	for (i = 0; i < a->n; i++) {
		struct buf k = BUF_INIT;

		m[i].data = a->msg[i].data;
		m[i].len = a->msg[i].len;
		m[i].flags = a->msg[i].flags.sys;
		for (j = 0; j < a->msg[i].flags.nkw; j++)
			buf_printf(&k, "%s%s", j ? "," : "", a->msg[i].flags.kw[j]);
		kw[i] = buf_steal(&k);
		m[i].keywords = *kw[i] ? kw[i] : NULL;
		if (a->msg[i].has_date) {
			m[i].idate = a->msg[i].date.t;
			m[i].izone = a->msg[i].date.zone;
		}
		if (!m[i].len || memchr(m[i].data, '\0', m[i].len)) {
			tagged(s, c->tag, "NO", "[CANNOT] The message is empty or holds NUL bytes");
			goto out;
		}
	}
	r = ibox_append(buf_str(&path), maildir, m, a->n, &uidv, uids, &err);
	if (r != IBOX_OK) {
		box_error(s, c->tag, r, &err);
		goto out;
	}
	sync_box(s, 1);
	buf_printf(&s->out, "%s OK [APPENDUID %u ", c->tag, uidv);
	write_uids(&s->out, uids, a->n);
	buf_adds(&s->out, "] APPEND completed\r\n");
out:
	for (i = 0; i < a->n; i++)
		free(kw[i]);
	free(kw);
	free(m);
	free(uids);
out0:
	imap_folder_res_free(&fr);
	buf_free(&path);
	buf_free(&err);
}

static void
do_expunge(struct sess *s, const struct imap_cmd *c, int silent)
{
	struct imap_seqset us = IMAP_SEQ_INIT;
	struct ibox_changes ch;
	struct buf err = BUF_INIT;
	int r;

	if (s->box.readonly) {
		if (!silent)
			tagged(s, c->tag, "NO", "[READ-ONLY] The mailbox is read-only");
		return;
	}
	if (c->uid) {
		uint32_t max = s->box.n ? s->box.msgs[s->box.n - 1].uid : 0;

		imap_seq_resolve(&c->expunge, max, &us);
	}
	memset(&ch, 0, sizeof(ch));
	r = ibox_expunge(&s->box, c->uid ? &us : NULL, &ch, &err);
	if (r == IBOX_OK && !silent)
		tell_changes(s, &ch);
	ibox_changes_free(&ch);
	imap_seq_free(&us);
	if (!silent) {
		if (r != IBOX_OK)
			box_error(s, c->tag, r, &err);
		else {
			sync_box(s, 1);
			tagged(s, c->tag, "OK", "EXPUNGE completed");
		}
	}
	buf_free(&err);
}

/* RFC 9208: one quota root, "", for all the folders of a Maildir user
 * (the Maildir++ maildirsize of INBOX); none for a user without a
 * limit or with an mbox INBOX.  STORAGE is in units of 1024 octets. */
static void
quota_response(struct sess *s, const struct quota_usage *u, const struct quota_limit *q)
{
	const char *sp = "";

	buf_adds(&s->out, "* QUOTA \"\" (");
	if (q->bytes > 0) {
		buf_printf(&s->out, "STORAGE %lld %lld", (u->bytes + 1023) / 1024, q->bytes / 1024);
		sp = " ";
	}
	if (q->messages > 0)
		buf_printf(&s->out, "%sMESSAGE %lld %lld", sp, u->messages, q->messages);
	buf_adds(&s->out, ")\r\n");
}

static void
do_getquota(struct sess *s, const struct imap_cmd *c)
{
	struct buf path = BUF_INIT, err = BUF_INIT;
	struct imap_folder_res fr;
	struct quota_usage u;
	struct quota_limit q;
	int maildir, exists, r;

	imap_folder_res_init(&fr);
	if (c->verb == IMAP_CMD_GETQUOTAROOT) {
		if (imap_folder_path(&s->ns, &c->mbox, &path, &maildir, &exists, &fr) < 0) {
			folder_done(s, c->tag, &fr, "GETQUOTAROOT");
			goto out;
		}
		if (!exists) {
			tagged(s, c->tag, "NO", "[NONEXISTENT] No such mailbox");
			goto out;
		}
	}
	if ((r = ibox_quota_get(&u, &q, &err)) < 0) {
		box_error(s, c->tag, IBOX_ERR, &err);
		goto out;
	}
	if (c->verb == IMAP_CMD_GETQUOTA && (r == 0 || *c->quota_root)) {
		tagged(s, c->tag, "NO", "[NONEXISTENT] No such quota root");
		goto out;
	}
	if (c->verb == IMAP_CMD_GETQUOTAROOT) {
		buf_adds(&s->out, "* QUOTAROOT ");
		imap_folder_write_name(&s->ns, c->mbox.utf8, &s->out);
		buf_adds(&s->out, r ? " \"\"\r\n" : "\r\n");
	}
	if (r)
		quota_response(s, &u, &q);
	sync_box(s, 1);
	tagged(s, c->tag, "OK", "%s completed", imap_cmd_name(c->verb));
out:
	imap_folder_res_free(&fr);
	buf_free(&path);
	buf_free(&err);
}

/* RFC 7162 3.1.5: a SEARCH with a MODSEQ key answers the highest
 * MODSEQ of what it found. */
static int
has_modseq_key(const struct imap_search_key *k)
{
	for (; k; k = k->next)
		if (k->type == IMAP_SK_MODSEQ || has_modseq_key(k->child))
			return 1;
	return 0;
}

static void
do_search(struct sess *s, const struct imap_cmd *c)
{
	const struct imap_search *se = &c->search;
	struct buf err = BUF_INIT;
	uint32_t *seqs = NULL;
	size_t n = 0, i;
	int r;

	if (se->charset && !imap_search_charset_ok(se->charset)) {
		tagged(s, c->tag, "NO", "[BADCHARSET (UTF-8 US-ASCII)] Unknown charset");
		return;
	}
	r = imap_search_run(&s->box, se, &s->saved, (int64_t)time(NULL), &seqs, &n, &err);
	if (r != IBOX_OK) {
		tagged(s, c->tag, "NO", "%s", err.len ? buf_str(&err) : "SEARCH failed");
		buf_free(&err);
		return;
	}
	if (c->verb == IMAP_CMD_SORT && imap_sort_run(&s->box, se, seqs, n, &err) != IBOX_OK) {
		free(seqs);
		box_error(s, c->tag, IBOX_ERR, &err);
		buf_free(&err);
		return;
	}
	if (c->verb == IMAP_CMD_THREAD) {
		buf_adds(&s->out, "* THREAD ");
		if (imap_thread_run(&s->box, se, seqs, n, c->uid, &s->out, &err) != IBOX_OK) {
			free(seqs);
			buf_adds(&s->out, "\r\n");
			box_error(s, c->tag, IBOX_ERR, &err);
			buf_free(&err);
			return;
		}
		buf_adds(&s->out, "\r\n");
	} else if (se->ret_set && c->verb == IMAP_CMD_SEARCH) {
		unsigned ret = se->ret ? se->ret : IMAP_SEARCH_RET_ALL;

		if (ret & IMAP_SEARCH_RET_SAVE) {
			imap_seq_free(&s->saved);
			for (i = 0; i < n; i++)
				imap_seq_add(&s->saved, s->box.msgs[seqs[i] - 1].uid, s->box.msgs[seqs[i] - 1].uid);
			imap_seq_normalize(&s->saved);
		}
		if (ret & ~IMAP_SEARCH_RET_SAVE) {
			buf_printf(&s->out, "* ESEARCH (TAG \"%s\")%s", c->tag, c->uid ? " UID" : "");
			if (n && (ret & IMAP_SEARCH_RET_MIN))
				buf_printf(&s->out, " MIN %u", c->uid ? s->box.msgs[seqs[0] - 1].uid : seqs[0]);
			if (n && (ret & IMAP_SEARCH_RET_MAX))
				buf_printf(&s->out, " MAX %u", c->uid ? s->box.msgs[seqs[n - 1] - 1].uid : seqs[n - 1]);
			if (ret & IMAP_SEARCH_RET_COUNT)
				buf_printf(&s->out, " COUNT %zu", n);
			if (n && (ret & IMAP_SEARCH_RET_ALL)) {
				struct imap_seqset all = IMAP_SEQ_INIT;

				for (i = 0; i < n; i++) {
					uint32_t v = c->uid ? s->box.msgs[seqs[i] - 1].uid : seqs[i];

					imap_seq_add(&all, v, v);
				}
				imap_seq_normalize(&all);
				buf_adds(&s->out, " ALL ");
				imap_seq_write(&s->out, &all);
				imap_seq_free(&all);
			}
			buf_adds(&s->out, "\r\n");
		}
	} else {
		uint64_t top = 0;

		buf_adds(&s->out, c->verb == IMAP_CMD_SORT ? "* SORT" : "* SEARCH");
		for (i = 0; i < n; i++) {
			const struct ibox_msg *m = &s->box.msgs[seqs[i] - 1];

			buf_printf(&s->out, " %u", c->uid ? m->uid : seqs[i]);
			if (m->modseq > top)
				top = m->modseq;
			maybe_flush(s);
		}
		if (n && has_modseq_key(se->key)) {
			s->condstore = 1;
			buf_printf(&s->out, " (MODSEQ %llu)", (unsigned long long)top);
		}
		buf_adds(&s->out, "\r\n");
	}
	free(seqs);
	sync_box(s, c->uid);
	tagged(s, c->tag, "OK", "%s completed", imap_cmd_name(c->verb));
	buf_free(&err);
}

static void
do_enable(struct sess *s, const struct imap_cmd *c)
{
	struct buf on = BUF_INIT;
	size_t i;

	for (i = 0; i < c->enable.n; i++) {
		const char *cap = c->enable.cap[i];

		if (!strcmp(cap, "CONDSTORE") && !s->condstore) {
			s->condstore = 1;
			buf_adds(&on, " CONDSTORE");
		} else if (!strcmp(cap, "QRESYNC") && !s->qresync) {
			/* QRESYNC implies CONDSTORE (RFC 7162 3.2.3) */
			s->qresync = s->condstore = 1;
			buf_adds(&on, " QRESYNC");
		} else if (!strcmp(cap, "UTF8=ACCEPT") && !s->utf8) {
			s->utf8 = 1;
			s->ns.utf8 = 1;
			imap_parser_set_utf8(s->p, 1);
			buf_adds(&on, " UTF8=ACCEPT");
		}
	}
	buf_printf(&s->out, "* ENABLED%s\r\n", buf_str(&on));
	tagged(s, c->tag, "OK", "ENABLE completed");
	buf_free(&on);
}

static void
handle(struct sess *s, struct imap_cmd *c)
{
	struct imap_folder_res fr;

	if (!imap_cmd_allowed(c->verb, c->uid, s->state)) {
		tagged(s, c->tag, "BAD", "%s%s is not valid in this state", c->uid ? "UID " : "",
		    imap_cmd_name(c->verb));
		return;
	}
	imap_folder_res_init(&fr);
	switch (c->verb) {
	case IMAP_CMD_CAPABILITY:
		buf_adds(&s->out, "* CAPABILITY ");
		imap_capabilities(&s->out, s->state, 0, 0);
		buf_adds(&s->out, "\r\n");
		sync_box(s, 1);
		tagged(s, c->tag, "OK", "CAPABILITY completed");
		break;
	case IMAP_CMD_NOOP:
	case IMAP_CMD_CHECK:
		sync_box(s, 1);
		tagged(s, c->tag, "OK", "%s completed", imap_cmd_name(c->verb));
		break;
	case IMAP_CMD_LOGOUT:
		buf_adds(&s->out, "* BYE Logging out\r\n");
		tagged(s, c->tag, "OK", "LOGOUT completed");
		s->eof = 1;
		break;
	case IMAP_CMD_ID:
		buf_printf(&s->out, "* ID (\"name\" \"hermod\" \"version\" \"%s\")\r\n", PACKAGE_VERSION);
		tagged(s, c->tag, "OK", "ID completed");
		break;
	case IMAP_CMD_ENABLE:
		do_enable(s, c);
		break;
	case IMAP_CMD_NAMESPACE:
		buf_adds(&s->out, "* NAMESPACE ((\"\" \".\")) NIL NIL\r\n");
		tagged(s, c->tag, "OK", "NAMESPACE completed");
		break;
	case IMAP_CMD_SELECT:
	case IMAP_CMD_EXAMINE:
		do_select(s, c);
		break;
	case IMAP_CMD_CREATE:
		imap_folder_create(&s->ns, &c->mbox, &fr);
		sync_box(s, 1);
		folder_done(s, c->tag, &fr, "CREATE");
		break;
	case IMAP_CMD_DELETE:
		imap_folder_delete(&s->ns, &c->mbox, &fr);
		if (!strcmp(fr.status, "OK"))
			ibox_quota_invalidate();
		sync_box(s, 1);
		folder_done(s, c->tag, &fr, "DELETE");
		break;
	case IMAP_CMD_RENAME:
		imap_folder_rename(&s->ns, &c->rename.from, &c->rename.to, &fr);
		sync_box(s, 1);
		folder_done(s, c->tag, &fr, "RENAME");
		break;
	case IMAP_CMD_SUBSCRIBE:
	case IMAP_CMD_UNSUBSCRIBE:
		imap_folder_subscribe(&s->ns, &c->mbox, c->verb == IMAP_CMD_SUBSCRIBE, &fr);
		sync_box(s, 1);
		folder_done(s, c->tag, &fr, imap_cmd_name(c->verb));
		break;
	case IMAP_CMD_LIST:
	case IMAP_CMD_LSUB:
		imap_folder_list(&s->ns, &c->list, c->verb == IMAP_CMD_LSUB, &s->out, &fr);
		sync_box(s, 1);
		folder_done(s, c->tag, &fr, imap_cmd_name(c->verb));
		break;
	case IMAP_CMD_STATUS:
		imap_folder_status(&s->ns, &c->status, &s->out, &fr);
		sync_box(s, 1);
		folder_done(s, c->tag, &fr, "STATUS");
		break;
	case IMAP_CMD_APPEND:
		do_append(s, c);
		break;
	case IMAP_CMD_GETQUOTA:
	case IMAP_CMD_GETQUOTAROOT:
		do_getquota(s, c);
		break;
	case IMAP_CMD_SETQUOTA:
		tagged(s, c->tag, "NO", "[NOPERM] Quotas are set by the administrator");
		break;
	case IMAP_CMD_COMPRESS:
		/* RFC 4978: both sides compress from right after the OK */
		if (s->z)
			tagged(s, c->tag, "NO", "[COMPRESSIONACTIVE] DEFLATE is active already");
		else if (!(s->z = imap_compress_new()))
			tagged(s, c->tag, "NO", "[UNAVAILABLE] Cannot start compression");
		else {
			struct imap_compress *z = s->z;

			s->z = NULL;
			tagged(s, c->tag, "OK", "DEFLATE active");
			flush_out(s);
			s->z = z;
			/* what the client sent after the command is compressed */
			imap_compress_feed(z, s->in.data ? s->in.data : "", s->in.len);
			buf_reset(&s->in);
		}
		break;
	case IMAP_CMD_IDLE:
		buf_adds(&s->out, "+ idling\r\n");
		buf_sets(&s->idle_tag, c->tag);
		s->idling = 1;
		imap_parser_expect(s->p, IMAP_EXPECT_DONE, c->tag);
		sync_box(s, 1);
		idle_release(s);
		break;
	case IMAP_CMD_CLOSE:
		do_expunge(s, c, 1);
		close_box(s);
		tagged(s, c->tag, "OK", "CLOSE completed");
		break;
	case IMAP_CMD_UNSELECT:
		close_box(s);
		tagged(s, c->tag, "OK", "UNSELECT completed");
		break;
	case IMAP_CMD_EXPUNGE:
		do_expunge(s, c, 0);
		break;
	case IMAP_CMD_SEARCH:
	case IMAP_CMD_SORT:
	case IMAP_CMD_THREAD:
		do_search(s, c);
		break;
	case IMAP_CMD_FETCH:
		do_fetch(s, c);
		break;
	case IMAP_CMD_STORE:
		do_store(s, c);
		break;
	case IMAP_CMD_COPY:
	case IMAP_CMD_MOVE:
		do_copy(s, c);
		break;
	case IMAP_CMD_STARTTLS:
	case IMAP_CMD_LOGIN:
	case IMAP_CMD_AUTHENTICATE:
		tagged(s, c->tag, "BAD", "Already logged in");
		break;
	default:
		tagged(s, c->tag, "BAD", "%s is not supported", imap_cmd_name(c->verb));
		break;
	}
	imap_folder_res_free(&fr);
}

/* An IDLE session may wait for hours: it keeps only its view of the
 * folder (sequence numbers, UIDs, flags, names) and gives the rest back
 * (ibox_release, then the heap's free pages to the kernel). */
static void
idle_release(struct sess *s)
{
	if (s->selected)
		ibox_release(&s->box);
	release_memory();
}

/* ---- the loop ---------------------------------------------------------- */

/* 0 got bytes, -1 EOF/error, -2 idle timeout; while idling, mailbox
 * changes are told as they come. */
static int
fill_raw(struct sess *s, struct buf *in)
{
	ssize_t r;
	int64_t end = mono_ms() + s->idle_ms;

	for (;;) {
		struct pollfd p[2];
		int np = 1, pr, wfd = s->idling && s->selected ? ibox_watch(&s->box) : -1;
		int64_t left = end - mono_ms();

		if (left <= 0)
			return -2;
		p[0].fd = s->fd;
		p[0].events = POLLIN;
		p[0].revents = 0;
		if (wfd >= 0) {
			p[1].fd = wfd;
			p[1].events = POLLIN;
			p[1].revents = 0;
			np = 2;
		}
		/* without a watch descriptor an idling session looks every
		 * second (three stat calls; a rescan only when they moved) */
		do
			pr = poll(p, (nfds_t)np, s->idling && wfd < 0 && left > 1000 ? 1000 :
			    left > INT32_MAX ? INT32_MAX : (int)left);
		while (pr < 0 && errno == EINTR);
		if (pr < 0)
			return -1;
		if (s->idling && np == 2 && p[1].revents) {
			int what = ibox_watch_drain(&s->box);

			if (!what)
				continue;	/* only our side files */
			/* a change of new/ or cur/ may come from a program
			 * that takes no lock: list the folder */
			if (what & IBOX_WATCH_DIRS)
				s->box.force_list = 1;
			s->box_dirty = 1;
			sync_box(s, 1);
			idle_release(s);
			if (flush_out(s) < 0)
				return -1;
			if (s->eof)
				return -1;
		} else if (s->idling && pr == 0 && wfd < 0 && s->selected && ibox_poll_changed(&s->box)) {
			s->box_dirty = 1;
			s->box.force_list = 1;
			sync_box(s, 1);
			idle_release(s);
			if (flush_out(s) < 0)
				return -1;
			if (s->eof)
				return -1;
		}
		if (p[0].revents)
			break;
	}
	/* straight into the input buffer: a 64 KB array on the stack stayed
	 * in every IDLE session's memory */
	buf_reserve(in, 16384);
	do
		r = read(s->fd, in->data + in->len, in->cap - in->len - 1);
	while (r < 0 && errno == EINTR);
	if (r <= 0) {
		s->in_eof = r == 0;
		return -1;
	}
	in->len += (size_t)r;
	in->data[in->len] = '\0';
	return 0;
}

/* Like fill_raw into s->in, through inflate once COMPRESS is active: at
 * most 16 KB of commands a time, however well they compress. */
static int
fill(struct sess *s)
{
	for (;;) {
		long k;
		int r;

		if (!s->z)
			return fill_raw(s, &s->in);
		if ((k = imap_compress_inflate(s->z, &s->in, 16384)) < 0) {
			msg_warn("user=<%s>: client %s: compressed input is not DEFLATE", s->au->name,
			    s->o->client);
			return -1;
		}
		if (k > 0)
			return 0;
		if ((r = fill_raw(s, &s->zraw)) < 0)
			return r;
		imap_compress_feed(s->z, s->zraw.data, s->zraw.len);
		buf_reset(&s->zraw);
	}
}

static int
rate_ok(struct sess *s)
{
	long long lim = conf_int("imap_command_rate_limit");
	int64_t now = mono_ms();

	if (lim <= 0)
		return 1;
	if (now - s->rate_start >= 1000) {
		s->rate_start = now;
		s->rate_n = 0;
	}
	return ++s->rate_n <= lim;
}

static void
command_loop(struct sess *s)
{
	while (!s->eof) {
		struct imap_result res;
		size_t used;

		if (!s->in.len) {
			int r;

			if (flush_out(s) < 0)
				break;
			if (s->in_eof)
				break;
			r = fill(s);
			if (r == -2) {
				buf_adds(&s->out, "* BYE Autologout: idle for too long\r\n");
				msg_info("user=<%s>: autologout", s->au->name);
				break;
			}
			if (r < 0)
				break;
		}
		used = imap_parser_feed(s->p, s->in.data, s->in.len, &res);
		buf_consume(&s->in, used);
		switch (res.kind) {
		case IMAP_R_CONTINUE:
			buf_printf(&s->out, "+ %s\r\n", res.text ? res.text : "Ready");
			flush_out(s);
			break;
		case IMAP_R_ERROR:
			buf_printf(&s->out, "%s %s %s%s%s%s\r\n", res.tag, res.status,
			    res.code ? "[" : "", res.code ? res.code : "", res.code ? "] " : "", res.text);
			s->bad++;
			break;
		case IMAP_R_CLOSE:
			buf_printf(&s->out, "%s %s %s%s%s%s\r\n* BYE Closing the connection\r\n", res.tag,
			    res.status, res.code ? "[" : "", res.code ? res.code : "", res.code ? "] " : "",
			    res.text);
			s->eof = 1;
			break;
		case IMAP_R_DONE:
			s->idling = 0;
			/* what idle_release dropped is read again */
			s->box_dirty = 1;
			sync_box(s, 1);
			tagged(s, buf_str(&s->idle_tag), "OK", "IDLE terminated");
			break;
		case IMAP_R_COMMAND:
			if (res.cmd->verb != IMAP_CMD_LOGOUT && !rate_ok(s)) {
				tagged(s, res.cmd->tag, "NO", "[LIMIT] Too many commands per second");
				s->bad++;	/* imap_error_limit such answers end the session */
			} else
				handle(s, res.cmd);
			imap_cmd_free(&res.cmd);
			break;
		default:
			break;
		}
		if (s->bad >= conf_int("imap_error_limit") && !s->eof) {
			buf_adds(&s->out, "* BYE Too many bad commands\r\n");
			s->eof = 1;
		}
	}
	flush_out(s);
}

static void
setup_ns(struct sess *s)
{
	struct buf root = BUF_INIT, err = BUF_INIT;

	s->ns.inbox = xstrdup(s->au->mailbox);
	s->ns.inbox_maildir = s->au->maildir;
	{
		/* quota (lib/quota.h): a Maildir INBOX is the root of all
		 * the user's folders; an mbox user's are not counted */
		struct quota_limit q = { s->au->quota_bytes, s->au->quota_messages };

		ibox_quota_init(s->au->maildir ? s->au->mailbox : NULL, &q);
	}
	if (s->au->maildir)
		buf_sets(&root, s->au->mailbox);
	else {
		const char *d = conf_str("imap_folder_directory");

		if (!strncmp(d, "~/", 2))
			buf_printf(&root, "%s/%s", s->au->home ? s->au->home : "", d + 2);
		else
			buf_sets(&root, d);
		if (!root.len || root.data[root.len - 1] != '/')
			buf_addc(&root, '/');
	}
	s->ns.root = buf_steal(&root);
	if (imap_folder_autocreate(&s->ns, &err) < 0)
		msg_warn("user=<%s>: cannot make the folders: %s", s->au->name, buf_str(&err));
	buf_free(&err);
}

void
imap_mail(int data, const struct access_opts *o, struct auth_user *au, int tls)
{
	struct sess s;
	struct buf meta = BUF_INIT;
	struct imap_limits lim;
	int cfd;

	memset(&s, 0, sizeof(s));
	s.o = o;
	s.au = au;
	s.tls = tls;
	if (access_handoff_recv(data, &cfd, &meta, &s.in) < 0) {
		msg_warn("client %s: user=<%s>: no session from the login process", o->client, au->name);
		return;
	}
	if (cfd >= 0) {
		close(data);
		s.fd = cfd;
	} else
		s.fd = data;
	s.idle_ms = (long long)conf_time("imap_idle_timeout") * 1000;
	imap_limits_from_conf(&lim);
	s.p = imap_parser_new(&lim);
	s.state = IMAP_STATE_AUTH;
	imap_parser_set_state(s.p, s.state);
	setup_ns(&s);
	msg_info("login: user=<%s>, client=%s, %s%s", au->name, o->client, tls ? "tls" : "plaintext",
	    cfd >= 0 ? "" : ", proxied");
	buf_printf(&s.out, "%s OK [CAPABILITY ", buf_str(&meta));
	imap_capabilities(&s.out, IMAP_STATE_AUTH, 0, 0);
	buf_adds(&s.out, "] Logged in\r\n");
	command_loop(&s);
	close_box(&s);
	msg_info("logout: user=<%s>, client=%s", au->name, o->client);
	if (s.fd != data)
		close(s.fd);
	imap_parser_free(&s.p);
	free(s.ns.inbox);
	free(s.ns.root);
	buf_free(&s.in);
	buf_free(&s.out);
	buf_free(&s.idle_tag);
	buf_free(&s.zraw);
	buf_free(&s.zout);
	imap_compress_free(&s.z);
	buf_free(&meta);
	auth_user_free(au);
}
