/*
 * imap_box: the generic layer of the IMAP mailbox view (imap_box.h):
 * dispatch to the back end, the metadata that FETCH and SEARCH need
 * (computed from the message with lib/mime and kept for the session),
 * the folder operations that need no open box, and COPY between any two
 * back ends.
 */
#include "imap_box.h"
#include "imap_cache.h"
#include "imap_parse.h"
#include "mime.h"
#include "mstore_index.h"
#include "util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

static void msg_free(struct ibox_msg *m);
static void unpack(struct imap_box *b);

int
ibox_open(struct imap_box *b, const char *path, int maildir, int readonly, struct buf *err)
{
	b->path = xstrdup(path);
	b->maildir = maildir;
	b->readonly = readonly;
	return maildir ? ibox_maildir_open(b, err) : ibox_mbox_open(b, err);
}

int
ibox_sync(struct imap_box *b, int allow_expunge, struct ibox_changes *ch, struct buf *err)
{
	unpack(b);
	return b->ops && b->ops->sync ? b->ops->sync(b, allow_expunge, ch, err) : IBOX_OK;
}

int
ibox_load(struct imap_box *b, size_t i, const char **p, size_t *n, struct buf *err)
{
	unpack(b);
	if (i >= b->n)
		return IBOX_GONE;
	return b->ops->load(b, i, p, n, err);
}

int
ibox_store(struct imap_box *b, size_t i, unsigned flags, const char *keywords, struct buf *err)
{
	unpack(b);
	if (i >= b->n || b->msgs[i].expunged)
		return IBOX_GONE;
	if (!b->ops->store)
		return IBOX_ERR;
	return b->ops->store(b, i, flags & ~IBOX_RECENT, keywords, err);
}

int
ibox_store_many(struct imap_box *b, const size_t *idx, const unsigned *flags,
    char *const *keywords, size_t n, int *res, struct buf *err)
{
	size_t k;

	unpack(b);
	if (b->maildir && b->ops && b->ops->store)
		return ibox_maildir_store_many(b, idx, flags, keywords, n, res, err);
	for (k = 0; k < n; k++) {
		res[k] = ibox_store(b, idx[k], flags[k], keywords[k], err);
		if (res[k] != IBOX_OK && res[k] != IBOX_GONE)
			return res[k];
	}
	return IBOX_OK;
}

int
ibox_expunge(struct imap_box *b, const struct imap_seqset *uids, struct ibox_changes *ch, struct buf *err)
{
	unpack(b);
	if (!b->ops->expunge)
		return IBOX_ERR;
	return b->ops->expunge(b, uids, ch, err);
}

int
ibox_watch(struct imap_box *b)
{
	return b->ops && b->ops->watch ? b->ops->watch(b) : -1;
}

int
ibox_watch_drain(struct imap_box *b)
{
	/* aligned for struct inotify_event, as inotify(7) shows */
	char tmp[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int fd = ibox_watch(b), what = 0;
	ssize_t r;

	if (fd < 0)
		return IBOX_WATCH_DIRS;
	while ((r = read(fd, tmp, sizeof(tmp))) > 0) {
		const char *p = tmp;

		while (p + sizeof(struct inotify_event) <= tmp + r) {
			const struct inotify_event *e = (const struct inotify_event *)(const void *)p;

			/* in a Maildir's root our own side files come and go
			 * (the description a listing writes, the index's temp
			 * file, the FETCH cache; the quota's maildirsize): seeing them as changes made
			 * every IDLE session of a folder list it whenever
			 * another did; the index's rename and a batch written to
			 * its change log are a change */
			if (b->maildir && e->len && (!strncmp(e->name, "hermod-", 7) ||
			    !strncmp(e->name, "maildirsize", 11)))
				what |= !strcmp(e->name, MIDX_FILE) || !strcmp(e->name, MIDX_LOG_FILE) ?
				    IBOX_WATCH_INDEX : 0;
			else
				what |= IBOX_WATCH_DIRS;
			p += sizeof(struct inotify_event) + e->len;
		}
	}
	return what;
}

/* The change stamp of one file: what a write, rename or new link into
 * it alters (a directory's mtime moves when an entry comes or goes). */
static void
stamp_add(struct buf *st, const char *path)
{
	struct stat sb;

	if (stat(path, &sb) < 0)
		buf_printf(st, "-|");
	else
		buf_printf(st, "%llu.%ld.%lld.%lu.%llu|", (unsigned long long)sb.st_mtim.tv_sec,
		    (long)sb.st_mtim.tv_nsec, (long long)sb.st_size, (unsigned long)sb.st_ino,
		    (unsigned long long)sb.st_ctim.tv_sec * 1000000000ULL + (unsigned long long)sb.st_ctim.tv_nsec);
}

int
ibox_poll_changed(struct imap_box *b)
{
	struct buf st = BUF_INIT, p = BUF_INIT;
	int changed;

	if (b->maildir) {
		static const char *const sub[] = { "new", "cur", MIDX_FILE, MIDX_LOG_FILE };
		size_t i;

		for (i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
			buf_reset(&p);
			buf_printf(&p, "%s%s", b->path, sub[i]);
			stamp_add(&st, buf_str(&p));
		}
	} else
		stamp_add(&st, b->path);
	changed = !b->stamp || strcmp(b->stamp, buf_str(&st)) != 0;
	free(b->stamp);
	b->stamp = buf_steal(&st);
	buf_free(&p);
	return changed;
}

/* A released box gets its full msgs[] back (without names, MODSEQs and
 * caches: the sync that follows gives the names and MODSEQs back, FETCH
 * the rest). */
static void
unpack(struct imap_box *b)
{
	struct ibox_packed *pk = b->packed;
	size_t i = 0, r;

	if (!pk)
		return;
	b->msgs = xcalloc(b->n ? b->n : 1, sizeof(*b->msgs));
	for (r = 0; r < pk->nruns; r++) {
		uint32_t k;

		for (k = 0; k < pk->runs[r].count && i < b->n; k++, i++)
			b->msgs[i].uid = pk->runs[r].first + k;
	}
	for (i = 0; i < b->n; i++) {
		unsigned v = pk->bits[i];

		b->msgs[i].flags = (v & IBOX_PK_FLAGS) | (v & IBOX_PK_RECENT ? IBOX_RECENT : 0);
		b->msgs[i].expunged = (v & IBOX_PK_EXPUNGED) != 0;
	}
	for (i = 0; i < pk->nkw; i++)
		b->msgs[pk->kw[i].i].keywords = pk->kw[i].keywords;
	b->modseq_floor = pk->floor;
	free(pk->runs);
	free(pk->bits);
	free(pk->kw);
	free(pk);
	b->packed = NULL;
}

void
ibox_release(struct imap_box *b)
{
	struct ibox_packed *pk;
	size_t i;

	for (i = 0; i < b->n; i++) {
		struct ibox_msg *m = &b->msgs[i];

		free(m->envelope);
		free(m->bodystructure);
		free(m->body);
		free(m->header);
		m->envelope = m->bodystructure = m->body = m->header = NULL;
		m->have &= ~(unsigned)(IBOX_META_ENVELOPE | IBOX_META_BODYSTRUCTURE | IBOX_META_HEADER);
	}
	buf_free(&b->mapbuf);
	if (!b->maildir || !b->ops || !b->priv || b->packed)
		return;
	ibox_maildir_release(b);
	/* about a byte a message instead of msgs[] (a 10,000-message
	 * folder's IDLE session is otherwise a megabyte of it) */
	pk = xcalloc(1, sizeof(*pk));
	pk->bits = xcalloc(b->n ? b->n : 1, 1);
	pk->floor = b->highestmodseq;
	for (i = 0; i < b->n; i++) {
		struct ibox_msg *m = &b->msgs[i];

		if (!pk->nruns || m->uid != pk->runs[pk->nruns - 1].first + pk->runs[pk->nruns - 1].count) {
			if (!(pk->nruns & (pk->nruns - 1)))
				pk->runs = xreallocarray(pk->runs, pk->nruns ? pk->nruns * 2 : 1,
				    sizeof(*pk->runs));
			pk->runs[pk->nruns].first = m->uid;
			pk->runs[pk->nruns++].count = 0;
		}
		pk->runs[pk->nruns - 1].count++;
		pk->bits[i] = (uint8_t)((m->flags & IBOX_PK_FLAGS) | (m->flags & IBOX_RECENT ? IBOX_PK_RECENT : 0) |
		    (m->expunged ? IBOX_PK_EXPUNGED : 0));
		if (m->keywords) {
			pk->kw = xreallocarray(pk->kw, pk->nkw + 1, sizeof(*pk->kw));
			pk->kw[pk->nkw].i = i;
			pk->kw[pk->nkw++].keywords = m->keywords;
			m->keywords = NULL;
		}
		msg_free(m);
	}
	free(b->msgs);
	b->msgs = NULL;
	b->packed = pk;
}

void
ibox_gone(struct imap_box *b, struct ibox_msg *m, size_t seq, struct ibox_changes *ch)
{
	ch->expunged[ch->nexpunged++] = (uint32_t)seq;
	imap_seq_add(&ch->vanished, m->uid, m->uid);
	if (m->flags & IBOX_RECENT)
		b->recent--;
	msg_free(m);
}

static void
msg_free(struct ibox_msg *m)
{
	free(m->keywords);
	free(m->name);
	free(m->envelope);
	free(m->bodystructure);
	free(m->body);
	free(m->header);
}

void
ibox_close(struct imap_box *b)
{
	size_t i;

	unpack(b);
	if (b->ops && b->ops->close)
		b->ops->close(b);
	for (i = 0; i < b->n; i++)
		msg_free(&b->msgs[i]);
	free(b->msgs);
	free(b->path);
	free(b->kwlist);
	free(b->stamp);
	buf_free(&b->mapbuf);
	b->stamp = NULL;
	b->msgs = NULL;
	b->n = 0;
	b->path = NULL;
	b->kwlist = NULL;
	b->ops = NULL;
	b->priv = NULL;
}

void
ibox_changes_free(struct ibox_changes *ch)
{
	free(ch->expunged);
	free(ch->changed);
	imap_seq_free(&ch->vanished);
	memset(ch, 0, sizeof(*ch));
}

uint32_t
ibox_seq_of_uid(const struct imap_box *b, uint32_t uid)
{
	size_t lo = 0, hi = b->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (b->msgs[mid].uid == uid)
			return (uint32_t)(mid + 1);
		if (b->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* The internal date of a Maildir message: its file's mtime (APPEND sets
 * it to the date the client gave). */
static int
maildir_idate(struct imap_box *b, struct ibox_msg *m)
{
	struct buf p = BUF_INIT;
	struct stat st;
	int r;

	buf_printf(&p, "%s%s", b->path, m->name);
	r = stat(buf_str(&p), &st);
	buf_free(&p);
	if (r < 0)
		return -1;
	m->idate = (int64_t)st.st_mtime;
	m->izone = 0;
	return 0;
}

static int meta_compute(struct imap_box *b, size_t i, unsigned what, struct buf *err);

int
ibox_meta(struct imap_box *b, size_t i, unsigned what, struct buf *err)
{
	struct ibox_msg *m;
	struct imap_cache *c = NULL;
	struct buf base = BUF_INIT;
	unsigned before;
	int r;

	unpack(b);
	if (i >= b->n)
		return IBOX_GONE;
	m = &b->msgs[i];
	what &= IBOX_META_SIZE | IBOX_META_IDATE | IBOX_META_ENVELOPE | IBOX_META_BODYSTRUCTURE |
	    IBOX_META_HEADER;
	if (!(what & ~m->have))
		return IBOX_OK;
	/* the folder's cache first: what another session (or an earlier
	 * one) worked out, keyed by the BASENAME, which names unchanging
	 * content; whatever is worked out here goes into it */
	if (b->maildir && b->priv && m->name && (c = ibox_maildir_cache(b))) {
		imap_cache_base(m->name, &base);
		(void)imap_cache_get(c, buf_str(&base), m);
	}
	before = m->have;
	r = meta_compute(b, i, what, err);
	m = &b->msgs[i];
	if (c && r == IBOX_OK && m->have != before)
		imap_cache_put(c, buf_str(&base), m);
	buf_free(&base);
	return r;
}

static int
meta_compute(struct imap_box *b, size_t i, unsigned what, struct buf *err)
{
	struct ibox_msg *m = &b->msgs[i];
	struct mime_message *mm;
	const char *p;
	size_t n;
	int r;

	if ((what & IBOX_META_IDATE) && !(m->have & IBOX_META_IDATE)) {
		if (b->maildir && b->priv && m->name && maildir_idate(b, m) == 0)
			m->have |= IBOX_META_IDATE;
		else if (!b->maildir || !b->priv) {
			/* other back ends fill it when they list the message */
			m->have |= IBOX_META_IDATE;
		}
	}
	what &= ~m->have;
	if (!what)
		return IBOX_OK;
	if ((r = ibox_load(b, i, &p, &n, err)) != IBOX_OK)
		return r;
	m = &b->msgs[i];
	if (what & IBOX_META_IDATE) {
		m->idate = 0;
		m->have |= IBOX_META_IDATE;
	}
	m->size = mime_crlf_size(p, n, NULL);
	m->have |= IBOX_META_SIZE;
	if (what & (IBOX_META_ENVELOPE | IBOX_META_BODYSTRUCTURE | IBOX_META_HEADER)) {
		struct buf o = BUF_INIT;

		mm = mime_parse(p, n, NULL);
		if (what & IBOX_META_HEADER) {
			const struct header *h = &mm->parts[0]->header;
			size_t hl = h->body_offset <= n ? h->body_offset : n;

			/* what SEARCH parses of the message is these bytes
			 * alone: the header section, as the MIME parser ends it */
			if (!h->truncated && hl <= IBOX_HEADER_KEEP_MAX && !memchr(p, '\0', hl)) {
				free(m->header);
				m->header = xstrndup(p, hl);
				m->have |= IBOX_META_HEADER;
			}
		}
		/* (BODYSTRUCTURE's parse gives the ENVELOPE for nothing) */
		if ((what & (IBOX_META_ENVELOPE | IBOX_META_BODYSTRUCTURE)) &&
		    !(m->have & IBOX_META_ENVELOPE)) {
			mime_imap_envelope(mm->parts[0], &o);
			free(m->envelope);
			m->envelope = buf_steal(&o);
			m->have |= IBOX_META_ENVELOPE;
		}
		if ((what & IBOX_META_BODYSTRUCTURE) && !(m->have & IBOX_META_BODYSTRUCTURE)) {
			mime_imap_bodystructure(mm->parts[0], 1, &o);
			free(m->bodystructure);
			m->bodystructure = buf_steal(&o);
			mime_imap_bodystructure(mm->parts[0], 0, &o);
			free(m->body);
			m->body = buf_steal(&o);
			m->have |= IBOX_META_BODYSTRUCTURE;
		}
		mime_free(&mm);
		buf_free(&o);
	}
	return IBOX_OK;
}

int
ibox_status(const char *path, int maildir, struct ibox_status *st, struct buf *err)
{
	memset(st, 0, sizeof(*st));
	return maildir ? ibox_maildir_status(path, st, err) : ibox_mbox_status(path, st, err);
}

/* The session's quota: one user, one root, for the process's life. */
static char *quota_root;
static struct quota_limit quota_lim;
static int quota_moving;

void
ibox_quota_init(const char *root, const struct quota_limit *q)
{
	free(quota_root);
	quota_root = root ? xstrdup(root) : NULL;
	quota_lim = *q;
}

int
ibox_quota_get(struct quota_usage *u, struct quota_limit *q, struct buf *err)
{
	*q = quota_lim;
	if (!quota_root || !quota_limited(&quota_lim))
		return 0;
	return quota_usage(quota_root, &quota_lim, u, err) < 0 ? -1 : 1;
}

void
ibox_quota_moving(int on)
{
	quota_moving = on;
}

void
ibox_quota_invalidate(void)
{
	if (quota_root)
		quota_invalidate(quota_root);
}

void
ibox_quota_removed(long long bytes, long long n)
{
	if (quota_root)
		quota_add(quota_root, -bytes, -n);
}

int
ibox_append(const char *path, int maildir, const struct ibox_append *m, size_t n,
    uint32_t *uidvalidity, uint32_t *uids, struct buf *err)
{
	long long bytes = 0;
	size_t i;
	int r;

	if (!maildir)
		return ibox_mbox_append(path, m, n, uidvalidity, uids, err);
	for (i = 0; i < n; i++)
		bytes += (long long)m[i].len;	/* stored as sent: S= is len */
	if (quota_root && !quota_moving) {
		struct quota_usage u;

		r = quota_room(quota_root, &quota_lim, bytes, (long long)n, &u, err);
		if (r < 0)
			return IBOX_ERR;
		if (r == 0) {
			quota_describe(&quota_lim, &u, err);
			return IBOX_OVERQUOTA;
		}
	}
	r = ibox_maildir_append(path, m, n, uidvalidity, uids, err);
	if (r == IBOX_OK && quota_root)
		quota_add(quota_root, bytes, (long long)n);
	return r;
}

/* COPY one message at a time: a loaded message is valid only until the
 * next load, and each copy is durable before the next begins. */
int
ibox_copy(struct imap_box *b, const size_t *idx, size_t n, const char *path, int maildir,
    uint32_t *uidvalidity, uint32_t *uids, struct buf *err)
{
	size_t k;
	int r;

	unpack(b);
	for (k = 0; k < n; k++) {
		struct ibox_append a;
		struct ibox_msg *m;
		const char *p;
		size_t len;

		if (idx[k] >= b->n || b->msgs[idx[k]].expunged)
			return IBOX_GONE;
		if ((r = ibox_meta(b, idx[k], IBOX_META_IDATE, err)) != IBOX_OK)
			return r;
		if ((r = ibox_load(b, idx[k], &p, &len, err)) != IBOX_OK)
			return r;
		m = &b->msgs[idx[k]];
		memset(&a, 0, sizeof(a));
		a.data = p;
		a.len = len;
		a.flags = m->flags & ~IBOX_RECENT;
		a.keywords = m->keywords;
		a.idate = m->idate;
		a.izone = m->izone;
		if ((r = ibox_append(path, maildir, &a, 1, uidvalidity, &uids[k], err)) != IBOX_OK)
			return r;
	}
	return IBOX_OK;
}
