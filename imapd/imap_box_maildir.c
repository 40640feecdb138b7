/*
 * imap_box_maildir: the Maildir back end of imap_box.  UIDs, MODSEQs and
 * keywords come from lib/mstore_index (FOLDER/hermod-uidlist), flags
 * from the file names, which stay the truth.  No lock is held between
 * operations: each index call takes the index lock for its own length,
 * so sessions run side by side.  New mail is noticed by inotify on new/
 * and cur/.
 */
#include "imap_box.h"
#include "imap_cache.h"
#include "imap_parse.h"
#include "maildir.h"
#include "mstore.h"
#include "mstore_index.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

struct mdpriv {
	struct mstore_index ix;
	int ino;
	struct imap_cache *cache;	/* loaded at the first FETCH that needs it */
};

static unsigned
to_imap(unsigned f)
{
	return (f & MIDX_SEEN ? IMAP_FLAG_SEEN : 0) | (f & MIDX_REPLIED ? IMAP_FLAG_ANSWERED : 0) |
	    (f & MIDX_FLAGGED ? IMAP_FLAG_FLAGGED : 0) | (f & MIDX_TRASHED ? IMAP_FLAG_DELETED : 0) |
	    (f & MIDX_DRAFT ? IMAP_FLAG_DRAFT : 0);
}

static unsigned
to_midx(unsigned f, unsigned old)
{
	return (old & MIDX_PASSED) | (f & IMAP_FLAG_SEEN ? MIDX_SEEN : 0) |
	    (f & IMAP_FLAG_ANSWERED ? MIDX_REPLIED : 0) | (f & IMAP_FLAG_FLAGGED ? MIDX_FLAGGED : 0) |
	    (f & IMAP_FLAG_DELETED ? MIDX_TRASHED : 0) | (f & IMAP_FLAG_DRAFT ? MIDX_DRAFT : 0);
}

static int
same_str(const char *a, const char *b)
{
	return !strcmp(a ? a : "", b ? b : "");
}

static void
set_from_ix(struct ibox_msg *m, const struct mstore_index_msg *x)
{
	m->uid = x->uid;
	m->modseq = x->modseq;
	m->flags = (m->flags & IBOX_RECENT) | to_imap(x->flags);
	if (!same_str(m->keywords, x->keywords)) {
		free(m->keywords);
		m->keywords = x->keywords ? xstrdup(x->keywords) : NULL;
	}
	if (!m->name || strcmp(m->name, x->name)) {
		free(m->name);
		m->name = xstrdup(x->name);
	}
}

/* Every keyword in use, for FLAGS and PERMANENTFLAGS. */
static void
make_kwlist(struct imap_box *b)
{
	struct buf out = BUF_INIT;
	size_t i;

	for (i = 0; i < b->n; i++) {
		char **v, **q;

		if (!b->msgs[i].keywords)
			continue;
		v = str_split(b->msgs[i].keywords, ",");
		for (q = v; *q; q++) {
			struct buf probe = BUF_INIT;
			const char *s = buf_str(&out);
			size_t l = strlen(*q);
			int have = 0;

			while (*s) {
				const char *e = strchr(s, ',');
				size_t sl = e ? (size_t)(e - s) : strlen(s);

				if (sl == l && !strncasecmp(s, *q, l))
					have = 1;
				s += sl + (e ? 1 : 0);
			}
			if (!have)
				buf_printf(&out, "%s%s", out.len ? "," : "", *q);
			buf_free(&probe);
		}
		strv_free(v);
	}
	free(b->kwlist);
	b->kwlist = buf_steal(&out);
}

/* A message in new/ is \Recent for the first session that sees it, which
 * moves it to cur/ so that no other session claims it too. */
static void
claim_recent(struct imap_box *b, struct mdpriv *d, struct ibox_msg *m)
{
	struct mstore_index_msg *x;
	struct buf err = BUF_INIT;

	if (strncmp(m->name, "new/", 4))
		return;
	m->flags |= IBOX_RECENT;
	b->recent++;
	if (b->readonly)
		return;
	if (!(x = mstore_index_find(&d->ix, m->uid)))
		return;
	if (mstore_index_set_flags(&d->ix, m->uid, x->flags, &err) == 0 &&
	    (x = mstore_index_find(&d->ix, m->uid)))
		set_from_ix(m, x);
	buf_free(&err);
}

static int md_sync(struct imap_box *b, int allow_expunge, struct ibox_changes *ch, struct buf *err);

/* Every message of the view gets its file name as the index has it now
 * (both lists ascend by UID). */
static void
take_names(struct imap_box *b, struct mdpriv *d)
{
	size_t i, j = 0;

	for (i = 0; i < b->n; i++) {
		struct ibox_msg *m = &b->msgs[i];

		while (j < d->ix.n && d->ix.msgs[j].uid < m->uid)
			j++;
		if (j < d->ix.n && d->ix.msgs[j].uid == m->uid && d->ix.msgs[j].name &&
		    (!m->name || strcmp(m->name, d->ix.msgs[j].name))) {
			free(m->name);
			m->name = xstrdup(d->ix.msgs[j].name);
		}
	}
}

static int
md_load(struct imap_box *b, size_t i, const char **p, size_t *n, struct buf *err)
{
	struct mdpriv *d = b->priv;
	struct ibox_msg *m = &b->msgs[i];
	int tries, fd = -1;

	/* no name: released in IDLE and gone from the folder since */
	if (!m->name)
		return IBOX_GONE;
	for (tries = 0; tries < 3; tries++) {
		fd = openat(d->ix.dirfd, m->name, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT)
			break;
		/* renamed by someone else: the index has its new name when a
		 * session of ours renamed it (then the others it renamed too:
		 * a STORE of a range, so every name is taken at once), else
		 * only a listing finds it (popd, another program) */
		if ((tries == 0 ? mstore_index_sync(&d->ix, err) : mstore_index_sync_listed(&d->ix, err)) < 0)
			return IBOX_ERR;
		if (!mstore_index_find(&d->ix, m->uid))
			return IBOX_GONE;
		take_names(b, d);
	}
	if (fd < 0) {
		if (errno == ENOENT)
			return IBOX_GONE;
		buf_printf(err, "%s%s: %s", b->path, m->name, strerror(errno));
		return IBOX_ERR;
	}
	buf_reset(&b->mapbuf);
	if (read_fd(fd, &b->mapbuf, (size_t)-1 / 2) < 0) {
		buf_printf(err, "%s%s: read: %s", b->path, m->name, strerror(errno));
		close(fd);
		return IBOX_ERR;
	}
	close(fd);
	*p = b->mapbuf.data ? b->mapbuf.data : "";
	*n = b->mapbuf.len;
	return IBOX_OK;
}

static int
md_store(struct imap_box *b, size_t i, unsigned flags, const char *keywords, struct buf *err)
{
	struct mdpriv *d = b->priv;
	struct ibox_msg *m = &b->msgs[i];
	struct mstore_index_msg *x;
	int r;

	if (!(x = mstore_index_find(&d->ix, m->uid)))
		return IBOX_GONE;
	r = mstore_index_set_flags(&d->ix, m->uid, to_midx(flags, x->flags), err);
	if (r == 0 && !same_str(keywords, m->keywords))
		r = mstore_index_set_keywords(&d->ix, m->uid, keywords && *keywords ? keywords : NULL, err);
	if (r == 1)
		return IBOX_GONE;
	if (r < 0)
		return IBOX_ERR;
	if (!(x = mstore_index_find(&d->ix, m->uid)))
		return IBOX_GONE;
	set_from_ix(m, x);
	b->highestmodseq = d->ix.highestmodseq;
	if (keywords && *keywords)
		make_kwlist(b);
	return IBOX_OK;
}

int
ibox_maildir_store_many(struct imap_box *b, const size_t *idx, const unsigned *flags,
    char *const *keywords, size_t n, int *res, struct buf *err)
{
	struct mdpriv *d = b->priv;
	struct mstore_index_change *c = xcalloc(n ? n : 1, sizeof(*c));
	size_t k, nc = 0, *where = xcalloc(n ? n : 1, sizeof(*where));
	int r, kw = 0;

	for (k = 0; k < n; k++) {
		struct ibox_msg *m = &b->msgs[idx[k]];
		struct mstore_index_msg *x;

		res[k] = IBOX_GONE;
		if (idx[k] >= b->n || m->expunged || !(x = mstore_index_find(&d->ix, m->uid)))
			continue;
		c[nc].uid = m->uid;
		c[nc].flags = to_midx(flags[k] & ~IBOX_RECENT, x->flags);
		c[nc].set_keywords = !same_str(keywords[k], m->keywords);
		c[nc].keywords = keywords[k] && *keywords[k] ? keywords[k] : NULL;
		kw |= c[nc].set_keywords && c[nc].keywords;
		where[nc++] = k;
	}
	r = nc ? mstore_index_change(&d->ix, c, nc, err) : 0;
	for (k = 0; r == 0 && k < nc; k++) {
		struct ibox_msg *m = &b->msgs[idx[where[k]]];
		struct mstore_index_msg *x;

		if (c[k].result || !(x = mstore_index_find(&d->ix, m->uid)))
			continue;
		set_from_ix(m, x);
		res[where[k]] = IBOX_OK;
	}
	b->highestmodseq = d->ix.highestmodseq;
	if (kw)
		make_kwlist(b);
	free(c);
	free(where);
	return r < 0 ? IBOX_ERR : IBOX_OK;
}

struct imap_cache *
ibox_maildir_cache(struct imap_box *b)
{
	struct mdpriv *d = b->priv;

	if (!d->cache)
		d->cache = imap_cache_load(b->path);
	return d->cache;
}

/* Write the cache when it grew, keeping only the folder's messages (so
 * it cannot grow without end), and drop it from memory.  A cache that
 * cannot be written (a read-only folder) is simply not kept. */
static void
save_cache(struct imap_box *b, struct mdpriv *d)
{
	struct buf base = BUF_INIT;
	char **keep;
	size_t i, k = 0;

	if (!d->cache)
		return;
	keep = xcalloc(b->n + 1, sizeof(*keep));
	for (i = 0; i < b->n; i++)
		if (b->msgs[i].name) {
			imap_cache_base(b->msgs[i].name, &base);
			keep[k++] = xstrdup(buf_str(&base));
		}
	if (imap_cache_save(d->cache, b->path, keep, k) < 0 && errno != EACCES &&
	    errno != EPERM && errno != EROFS)
		msg_warn("%s%s: %s", b->path, IMAP_CACHE_FILE, strerror(errno));
	for (i = 0; i < k; i++)
		free(keep[i]);
	free(keep);
	buf_free(&base);
	imap_cache_free(&d->cache);
}

void
ibox_maildir_release(struct imap_box *b)
{
	struct mdpriv *d = b->priv;
	size_t i;

	save_cache(b, d);

	/* the next sync reads the index file again, and gives every
	 * message its file name back */
	mstore_index_clear(&d->ix);
	for (i = 0; i < b->n; i++) {
		free(b->msgs[i].name);
		b->msgs[i].name = NULL;
	}
}

static int
md_sync(struct imap_box *b, int allow_expunge, struct ibox_changes *ch, struct buf *err)
{
	struct mdpriv *d = b->priv;
	struct mstore_index *ix = &d->ix;
	struct ibox_msg *nm;
	size_t i, j = 0, k = 0, cap;
	uint32_t last;

	/* a watch that woke us saw a change; a program that takes no lock
	 * may have made it, so the description is not enough */
	if ((b->force_list == 2 ? mstore_index_sync_changed(ix, err) : b->force_list ?
	    mstore_index_sync_listed(ix, err) : mstore_index_sync(ix, err)) < 0)
		return IBOX_ERR;
	b->force_list = 0;
	if (ix->uidvalidity != b->uidvalidity) {
		ch->uidvalidity = 1;
		return IBOX_OK;
	}
	cap = b->n + ix->n + 1;
	nm = xcalloc(cap, sizeof(*nm));
	ch->expunged = xcalloc(b->n + 1, sizeof(*ch->expunged));
	ch->changed = xcalloc(cap, sizeof(*ch->changed));
	last = b->n ? b->msgs[b->n - 1].uid : 0;
	for (i = 0; i < b->n; i++) {
		struct ibox_msg *m = &b->msgs[i];

		while (j < ix->n && ix->msgs[j].uid < m->uid)
			j++;
		if (j < ix->n && ix->msgs[j].uid == m->uid) {
			const struct mstore_index_msg *x = &ix->msgs[j];

			/* an unpacked view (modseq 0) takes the MODSEQs it
			 * was told without telling them again */
			if (!m->modseq && x->modseq <= b->modseq_floor)
				m->modseq = x->modseq;
			if (x->modseq != m->modseq || to_imap(x->flags) != (m->flags & ~IBOX_RECENT) ||
			    !same_str(x->keywords, m->keywords)) {
				set_from_ix(m, x);
				ch->changed[ch->nchanged++] = k;
			} else if (!m->name || strcmp(m->name, x->name)) {
				free(m->name);
				m->name = xstrdup(x->name);
			}
			nm[k++] = *m;
			continue;
		}
		if (!allow_expunge) {
			m->expunged = 1;
			nm[k++] = *m;
			continue;
		}
		ibox_gone(b, m, k + 1, ch);
	}
	free(b->msgs);
	b->msgs = nm;
	b->n = k;
	for (j = 0; j < ix->n; j++) {
		struct ibox_msg *m;

		if (ix->msgs[j].uid <= last)
			continue;
		m = &b->msgs[b->n++];
		memset(m, 0, sizeof(*m));
		set_from_ix(m, &ix->msgs[j]);
		claim_recent(b, d, m);
		ch->exists = 1;
	}
	if (ch->vanished.n)
		imap_seq_normalize(&ch->vanished);
	b->uidnext = ix->uidnext;
	b->highestmodseq = ix->highestmodseq;
	b->modseq_floor = 0;
	if (ch->exists || ch->nchanged)
		make_kwlist(b);
	return IBOX_OK;
}

static int
md_expunge(struct imap_box *b, const struct imap_seqset *uids, struct ibox_changes *ch, struct buf *err)
{
	struct mdpriv *d = b->priv;
	struct buf path = BUF_INIT;
	uint32_t *gone = NULL;
	size_t i, ngone = 0;
	long long bytes = 0, removed = 0;
	int rc = IBOX_OK;

	/* under the write lock from the sync to the index's record of the
	 * removals, so that the other sessions see them without a listing */
	if (mstore_index_begin(&d->ix, err) < 0)
		return IBOX_ERR;
	for (i = 0; i < d->ix.n; i++) {
		struct mstore_index_msg *x = &d->ix.msgs[i];
		long long sz;
		struct stat sb;

		if (!(x->flags & MIDX_TRASHED))
			continue;
		if (uids && !imap_seq_contains(uids, x->uid))
			continue;
		/* only messages this session knows (RFC 3501: those it was told) */
		if (!ibox_seq_of_uid(b, x->uid))
			continue;
		if ((sz = quota_name_size(x->name)) < 0)
			sz = fstatat(d->ix.dirfd, x->name, &sb, 0) == 0 ? (long long)sb.st_size : 0;
		if (unlinkat(d->ix.dirfd, x->name, 0) < 0) {
			if (errno != ENOENT) {
				buf_printf(err, "%s%s: unlink: %s", b->path, x->name, strerror(errno));
				rc = IBOX_ERR;
				break;
			}
			/* someone else's removal, counted by them */
		} else {
			bytes += sz;
			removed++;
		}
		if (!gone)
			gone = xreallocarray(NULL, d->ix.n, sizeof(*gone));
		gone[ngone++] = x->uid;
	}
	ibox_quota_removed(bytes, removed);
	if (ngone) {
		buf_printf(&path, "%scur", b->path);
		if (fsync_dir(buf_str(&path)) < 0 && rc == IBOX_OK) {
			buf_printf(err, "%s: fsync: %s", buf_str(&path), strerror(errno));
			rc = IBOX_ERR;
		}
		buf_free(&path);
	}
	/* what is gone is gone: recorded even after an error */
	for (i = 0; i < ngone; i++)
		mstore_index_drop(&d->ix, gone[i]);
	free(gone);
	/* (after an error, the first one is the one the client hears of) */
	buf_reset(&path);
	if (mstore_index_commit(&d->ix, rc == IBOX_OK ? err : &path) < 0 && rc == IBOX_OK)
		rc = IBOX_ERR;
	if (rc != IBOX_OK && path.len)
		msg_warn("%s: %s", b->path, buf_str(&path));
	buf_free(&path);
	if (rc != IBOX_OK)
		return rc;
	return md_sync(b, 1, ch, err);
}

static int
md_watch(struct imap_box *b)
{
	struct mdpriv *d = b->priv;

	struct buf p = BUF_INIT;

	if (d->ino == -1) {
		const char *sub[] = { "new", "cur" };
		size_t i;

		d->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (d->ino < 0) {
			d->ino = -2;
			return -1;
		}
		for (i = 0; i < 2; i++) {
			buf_reset(&p);
			buf_printf(&p, "%s%s", b->path, sub[i]);
			if (inotify_add_watch(d->ino, buf_str(&p), IN_CREATE | IN_MOVED_TO |
			    IN_MOVED_FROM | IN_DELETE | IN_ATTRIB) < 0)
				goto nowatch;
		}
		/* the index itself: keywords and MODSEQs live only there */
		if (inotify_add_watch(d->ino, b->path, IN_MOVED_TO | IN_CREATE | IN_DELETE |
		    IN_CLOSE_WRITE) < 0)
			goto nowatch;
		buf_free(&p);
	}
	return d->ino >= 0 ? d->ino : -1;
nowatch:
	/* without a full watch the session syncs after every command */
	buf_free(&p);
	close(d->ino);
	d->ino = -2;
	return -1;
}

static void
md_close(struct imap_box *b)
{
	struct mdpriv *d = b->priv;

	if (!d)
		return;
	save_cache(b, d);
	if (d->ino >= 0)
		close(d->ino);
	mstore_index_close(&d->ix);
	free(d);
	b->priv = NULL;
}

static const struct ibox_ops md_ops = {
	md_sync, md_load, md_store, md_expunge, md_watch, md_close,
};

int
ibox_maildir_open(struct imap_box *b, struct buf *err)
{
	struct mdpriv *d = xcalloc(1, sizeof(*d));
	size_t i;

	d->ino = -1;
	b->priv = d;
	b->ops = &md_ops;
	if (mstore_index_open(&d->ix, b->path, err) < 0)
		return errno == ENOENT ? IBOX_NONEXIST : IBOX_ERR;
	if (!b->readonly && access(b->path, W_OK) < 0)
		b->readonly = 1;
	b->uidvalidity = d->ix.uidvalidity;
	b->msgs = xcalloc(d->ix.n + 1, sizeof(*b->msgs));
	b->n = d->ix.n;
	for (i = 0; i < b->n; i++)
		set_from_ix(&b->msgs[i], &d->ix.msgs[i]);
	for (i = 0; i < b->n; i++)
		claim_recent(b, d, &b->msgs[i]);
	b->uidnext = d->ix.uidnext;
	b->highestmodseq = d->ix.highestmodseq;
	make_kwlist(b);
	return IBOX_OK;
}

/* The size with CRLF line ends from the ",W=" field of the name when
 * local or popd wrote one, else from the file. */
static uint64_t
msg_size(int dirfd, const char *name)
{
	const char *w = strstr(name, ",W=");
	struct buf b = BUF_INIT;
	uint64_t n = 0;
	int fd;

	if (w)
		return strtoull(w + 3, NULL, 10);
	if ((fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	if (read_fd(fd, &b, (size_t)-1 / 2) == 0)
		n = mstore_wire_size(b.data ? b.data : "", b.len);
	close(fd);
	buf_free(&b);
	return n;
}

int
ibox_maildir_status(const char *path, struct ibox_status *st, struct buf *err)
{
	struct mstore_index ix;
	struct stat sb;
	size_t i;

	if (stat(path, &sb) < 0)
		return errno == ENOENT ? IBOX_NONEXIST : IBOX_ERR;
	if (mstore_index_open(&ix, path, err) < 0) {
		mstore_index_close(&ix);
		return IBOX_ERR;
	}
	st->messages = (uint32_t)ix.n;
	for (i = 0; i < ix.n; i++) {
		const struct mstore_index_msg *x = &ix.msgs[i];

		if (!strncmp(x->name, "new/", 4))
			st->recent++;
		if (!(x->flags & MIDX_SEEN))
			st->unseen++;
		if (x->flags & MIDX_TRASHED)
			st->deleted++;
		st->size += msg_size(ix.dirfd, x->name);
	}
	st->uidnext = ix.uidnext;
	st->uidvalidity = ix.uidvalidity;
	st->highestmodseq = ix.highestmodseq;
	mstore_index_close(&ix);
	return IBOX_OK;
}

static int
write_tmp(int dirfd, const char *tmpname, const struct ibox_append *m, struct buf *err)
{
	int fd = openat(dirfd, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0) {
		buf_printf(err, "%s: %s", tmpname, strerror(errno));
		return -1;
	}
	if (write_full(fd, m->data, m->len) < 0 || fsync(fd) < 0) {
		buf_printf(err, "%s: write: %s", tmpname, strerror(errno));
		close(fd);
		unlinkat(dirfd, tmpname, 0);
		return -1;
	}
	if (m->idate > 0) {
		struct timespec ts[2];

		ts[0].tv_sec = ts[1].tv_sec = (time_t)m->idate;
		ts[0].tv_nsec = ts[1].tv_nsec = 0;
		(void)futimens(fd, ts);
	}
	if (close(fd) < 0) {
		buf_printf(err, "%s: close: %s", tmpname, strerror(errno));
		unlinkat(dirfd, tmpname, 0);
		return -1;
	}
	return 0;
}

int
ibox_maildir_append(const char *path, const struct ibox_append *m, size_t n,
    uint32_t *uidvalidity, uint32_t *uids, struct buf *err)
{
	struct mstore_index ix;
	struct buf *base, *dst, tmp = BUF_INIT, letters = BUF_INIT, dp = BUF_INIT, e2 = BUF_INIT;
	struct stat sb;
	size_t i, moved = 0;
	int dirfd, rc = IBOX_ERR, locked = 0;

	if (stat(path, &sb) < 0)
		return errno == ENOENT ? IBOX_NONEXIST : IBOX_ERR;
	if ((dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		buf_printf(err, "%s: %s", path, strerror(errno));
		return IBOX_ERR;
	}
	base = xcalloc(n, sizeof(*base));
	dst = xcalloc(n, sizeof(*dst));
	memset(&ix, 0, sizeof(ix));
	ix.dirfd = ix.lockfd = -1;
	for (i = 0; i < n; i++) {
		unsigned f = to_midx(m[i].flags, 0);

		buf_reset(&tmp);
		buf_reset(&letters);
		maildir_unique_name(&base[i]);
		buf_printf(&tmp, "tmp/%s", buf_str(&base[i]));
		if (write_tmp(dirfd, buf_str(&tmp), &m[i], err) < 0)
			goto out;
		mstore_index_flags_str(f, &letters);
		if (f)
			buf_printf(&dst[i], "cur/%s,S=%zu,W=%zu:2,%s", buf_str(&base[i]), m[i].len,
			    mstore_wire_size(m[i].data, m[i].len), buf_str(&letters));
		else
			buf_printf(&dst[i], "new/%s,S=%zu,W=%zu", buf_str(&base[i]), m[i].len,
			    mstore_wire_size(m[i].data, m[i].len));
	}
	/* the files go into new/ and cur/ under the index's write lock, and
	 * the index gives them their UIDs (in this order) before it is
	 * released: the other sessions see them without a listing */
	if (mstore_index_open(&ix, path, err) < 0 || mstore_index_begin(&ix, err) < 0)
		goto out;
	locked = 1;
	for (moved = 0; moved < n; moved++) {
		buf_reset(&tmp);
		buf_printf(&tmp, "tmp/%s", buf_str(&base[moved]));
		if (renameat(dirfd, buf_str(&tmp), dirfd, buf_str(&dst[moved])) < 0) {
			buf_printf(err, "%s%s: rename: %s", path, buf_str(&dst[moved]), strerror(errno));
			goto out;
		}
	}
	buf_printf(&dp, "%snew", path);
	if (fsync_dir(buf_str(&dp)) < 0)
		goto syserr;
	buf_reset(&dp);
	buf_printf(&dp, "%scur", path);
	if (fsync_dir(buf_str(&dp)) < 0)
		goto syserr;
	*uidvalidity = ix.uidvalidity;
	for (i = 0; i < n; i++)
		if (mstore_index_add(&ix, buf_str(&dst[i]), m[i].keywords, &uids[i]) < 0)
			uids[i] = 0;	/* (the next listing gives it one) */
	locked = 0;
	if (mstore_index_commit(&ix, err) < 0)
		goto out;
	rc = IBOX_OK;
	goto out;
syserr:
	buf_printf(err, "%s: fsync: %s", buf_str(&dp), strerror(errno));
out:
	/* (after an error, the files moved keep their place: the next
	 * listing indexes them) */
	if (locked && mstore_index_commit(&ix, &e2) < 0)
		msg_warn("%s: %s", path, buf_str(&e2));
	mstore_index_close(&ix);
	for (i = moved; rc != IBOX_OK && i < n && base[i].len; i++) {
		buf_reset(&tmp);
		buf_printf(&tmp, "tmp/%s", buf_str(&base[i]));
		(void)unlinkat(dirfd, buf_str(&tmp), 0);
	}
	for (i = 0; i < n; i++) {
		buf_free(&base[i]);
		buf_free(&dst[i]);
	}
	free(base);
	free(dst);
	buf_free(&tmp);
	buf_free(&e2);
	buf_free(&letters);
	buf_free(&dp);
	close(dirfd);
	return rc;
}
