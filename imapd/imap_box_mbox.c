/*
 * imap_box_mbox: the mbox back end of imap_box (imap_box.h), the INBOX
 * of system users (/var/mail/NAME) that local (lib/mbox.h) appends to
 * and popd (lib/mstore_mbox.c) reads.
 *
 * Format, as UW-IMAP and Dovecot keep it, so that either can take over:
 *   X-IMAPbase: UIDVALIDITY UIDNEXT [KEYWORD...]  on the first message
 *              (UIDNEXT written with 10 digits so that it can be raised
 *              in place; a UW/Dovecot "X-IMAP:" pseudo-message is read
 *              too, and replaced by X-IMAPbase at the next rewrite)
 *   X-UID: N   strictly ascending through the file; one that is not is
 *              not trusted and the message gets a new UID
 *   Status: RO R = \Seen, O = a session has seen it (not \Recent)
 *   X-Status: ADFT  \Answered \Deleted \Flagged \Draft
 *   X-Keywords: a b
 * We write Status and X-Status with fixed widths (2 and 4, padded with
 * spaces) so that a STORE of system flags is a pwrite of a few bytes in
 * place; anything else (keywords, UIDs to add, EXPUNGE) rewrites the
 * file: a temporary file in the same directory, fsync, fcntl lock,
 * rename over the mailbox, fsync of the directory, all under local's
 * dotlock + fcntl lock (lib/mbox.h), the way popd does.  Where the
 * directory allows no new file, a rewrite that does not grow the file
 * is done in place (as popd does); one that grows it fails.
 *
 * These headers, and X-UIDL:, are not shown to IMAP clients (as Dovecot
 * hides them): a message's bytes stay the same whatever its flags.
 * X-UIDL: (popd's POP3 UIDL) is kept byte for byte; a message without
 * one gets one at its first rewrite, holding the UIDL popd shows for it
 * now (the hash of lib/mstore_mbox.c, made unique the same way), so a
 * rewrite never changes a POP3 UIDL.  ">From " lines are shown as
 * stored, as popd does (mboxo quoting, which local writes, cannot be
 * undone reliably).
 *
 * UIDs: a message without a trusted X-UID gets the next UID after the
 * X-IMAPbase UIDNEXT and every X-UID, in file order, so every session
 * that reads the same file gives it the same UID; it is written by the
 * next rewrite (at once at SELECT, lazily when mail arrives during a
 * session, so that new mail costs no rewrite).  UIDVALIDITY changes only
 * when X-IMAPbase is missing and the X-UIDs cannot be trusted; a fresh
 * mbox gets time().
 *
 * Locking: every operation takes the locks for its own length, never
 * between commands.  popd holds them for a whole POP3 session: then
 * we answer IBOX_INUSE.  Between operations the file is watched by
 * stat (device, inode, size, mtime): an unchanged file is not reread.
 */
#include "imap_box.h"
#include "imap_parse.h"
#include "mbox.h"
#include "mstore.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MB_MAX_MSGS	1000000
#define MB_MAX_SIZE	((size_t)-1 / 4)
#define MB_LOCK_TRIES	10	/* x MB_LOCK_DELAY: a delivery is waited for */
#define MB_LOCK_DELAY	100	/* ms */
#define MB_ST_W		2	/* width of our Status: value */
#define MB_XS_W		4	/* width of our X-Status: value */
#define MB_NEXT_W	10	/* digits of our X-IMAPbase UIDNEXT */

/* A message as the file holds it. */
struct dmsg {
	off_t from;		/* its From_ line */
	off_t off;		/* the message after the From_ line */
	size_t len;		/* without the empty line before the next From_ */
	uint32_t xuid;		/* X-UID as stored, 0 none */
	uint32_t uid;		/* trusted X-UID, else the one it gets */
	int has_uid;		/* uid is stored in the file */
	unsigned flags;		/* IMAP_FLAG_* */
	int o;			/* Status: O */
	char *keywords;		/* "a,b" or NULL */
	char *uidl;		/* what popd shows as its UIDL */
	int has_uidl;		/* from its X-UIDL: field */
	int64_t idate;
	int izone;
	off_t st_voff, xs_voff;	/* Status/X-Status values, -1 none */
	size_t st_vlen, xs_vlen;
};

/* The file as one read saw it. */
struct scan {
	struct buf data;	/* its bytes (freed once parsed, unless needed) */
	struct dmsg *m;
	size_t n;
	int pseudo;		/* m[0] is the X-IMAP pseudo-message */
	int base;		/* an X-IMAPbase or X-IMAP was found */
	uint32_t uidvalidity, uidnext;
	off_t next_voff;	/* UIDNEXT digits of X-IMAPbase, -1 none */
	size_t next_vlen;
	int untrusted;		/* an X-UID out of order */
	int pending;		/* a rewrite would add something */
	int exists;		/* the file exists */
	struct stat st;
};

struct mbpriv {
	int ino;		/* inotify, -1 not yet, -2 none */
	int fd;			/* the file as last scanned (load, in-place STORE) */
	struct scan s;		/* the last scan (without data) */
	struct imap_seqset claimed;	/* UIDs we wrote O for before the view had them */
};

/* The open box of this process, so that an APPEND to an mbox left
 * empty by its own EXPUNGE keeps its UIDVALIDITY. */
static struct imap_box *open_box;

/* ---- parsing ------------------------------------------------------------ */

static void
scan_free(struct scan *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		free(s->m[i].keywords);
		free(s->m[i].uidl);
	}
	free(s->m);
	buf_free(&s->data);
	memset(s, 0, sizeof(*s));
	s->next_voff = -1;
}

static int
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	    a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Header fields kept by this back end, hidden from IMAP clients. */
enum { F_OTHER, F_BASE, F_IMAP, F_UID, F_STATUS, F_XSTATUS, F_KEYWORDS, F_UIDL };

static int
field_kind(const char *p, size_t n)
{
	static const struct {
		const char *name;
		int kind;
	} tab[] = {
		{ "X-IMAPbase", F_BASE }, { "X-IMAP", F_IMAP }, { "X-UID", F_UID },
		{ "Status", F_STATUS }, { "X-Status", F_XSTATUS }, { "X-Keywords", F_KEYWORDS },
		{ "X-UIDL", F_UIDL },
	};
	const char *c = memchr(p, ':', n);
	size_t i, l;

	if (!c)
		return F_OTHER;
	l = (size_t)(c - p);
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strlen(tab[i].name) == l && !strncasecmp(p, tab[i].name, l))
			return tab[i].kind;
	return F_OTHER;
}

/* The end of the header: the offset of its empty line (or n). */
static size_t
header_end(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		const char *nl = memchr(p + i, '\n', n - i);
		size_t le = nl ? (size_t)(nl - p) : n;

		if (le == i || (le == i + 1 && p[i] == '\r'))
			return i;
		i = nl ? le + 1 : n;
	}
	return n;
}

/* One header line [*i, end of line) with its continuation lines:
 * returns its length including the line ends. */
static size_t
field_len(const char *p, size_t n, size_t i)
{
	size_t j = i;

	for (;;) {
		const char *nl = memchr(p + j, '\n', n - j);

		j = nl ? (size_t)(nl - p) + 1 : n;
		if (j >= n || (p[j] != ' ' && p[j] != '\t'))
			return j - i;
	}
}

/* The value of a field without leading blanks and trailing line end. */
static void
field_value(const char *p, size_t n, const char **v, size_t *vl)
{
	const char *c = memchr(p, ':', n), *e = p + n;

	c = c ? c + 1 : e;
	while (c < e && (*c == ' ' || *c == '\t'))
		c++;
	while (e > c && (e[-1] == '\n' || e[-1] == '\r'))
		e--;
	*v = c;
	*vl = (size_t)(e - c);
}

static uint32_t
parse_u32(const char *p, size_t n, size_t *used)
{
	unsigned long long v = 0;
	size_t i = 0;

	while (i < n && p[i] >= '0' && p[i] <= '9' && v <= UINT32_MAX)
		v = v * 10 + (unsigned)(p[i++] - '0');
	*used = i;
	return v > UINT32_MAX || i == 0 ? 0 : (uint32_t)v;
}

static void
add_keywords(struct dmsg *d, const char *v, size_t vl)
{
	struct buf kw = BUF_INIT;
	size_t i = 0;

	if (d->keywords)
		buf_adds(&kw, d->keywords);
	while (i < vl) {
		size_t j;

		while (i < vl && (v[i] == ' ' || v[i] == '\t' || v[i] == ',' || v[i] == '\r' ||
		    v[i] == '\n'))
			i++;
		for (j = i; j < vl && v[j] != ' ' && v[j] != '\t' && v[j] != ',' && v[j] != '\r' &&
		    v[j] != '\n'; j++)
			;
		if (j > i) {
			if (kw.len)
				buf_addc(&kw, ',');
			buf_add(&kw, v + i, j - i);
		}
		i = j;
	}
	free(d->keywords);
	d->keywords = kw.len ? buf_steal(&kw) : NULL;
	buf_free(&kw);
}

/* The date of "From SENDER Www Mmm dd hh:mm:ss yyyy", local time as
 * local writes it; 0 when it has none. */
static void
from_date(struct dmsg *d, const char *p, size_t n)
{
	struct buf line = BUF_INIT;
	const char *s;
	struct tm tm;
	time_t t;

	buf_add(&line, p, n);
	s = buf_str(&line);
	if (!strncmp(s, "From ", 5) && (s = strchr(s + 5, ' ')) != NULL) {
		while (*s == ' ')
			s++;
		memset(&tm, 0, sizeof(tm));
		if (strptime(s, "%a %b %d %H:%M:%S %Y", &tm)) {
			tm.tm_isdst = -1;
			if ((t = mktime(&tm)) != (time_t)-1 && localtime_r(&t, &tm)) {
				d->idate = (int64_t)t;
				d->izone = (int)(tm.tm_gmtoff / 60);
			}
		}
	}
	buf_free(&line);
}

/* The X-UIDL: value popd takes (the first field, when valid). */
static char *
xuidl_value(const char *v, size_t vl)
{
	char *s;

	while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	if (vl == 0 || vl > 70)
		return NULL;
	s = xstrndup(v, vl);
	if (mstore_uidl_valid(s))
		return s;
	free(s);
	return NULL;
}

static void
parse_header(struct scan *s, size_t k)
{
	struct dmsg *d = &s->m[k];
	const char *p = s->data.data + d->off;
	size_t n = header_end(p, d->len), i = 0;
	int seen_uidl = 0;

	d->st_voff = d->xs_voff = -1;
	while (i < n) {
		size_t fl = field_len(p, n, i), vl, used;
		const char *v;
		int kind = field_kind(p + i, fl);

		field_value(p + i, fl, &v, &vl);
		if (kind == F_STATUS || kind == F_XSTATUS) {
			/* the value as we write it: after ": ", blanks included,
			 * so that our padded fields keep their width */
			const char *c = (const char *)memchr(p + i, ':', fl) + 1, *e = p + i + fl;

			if (c < e && *c == ' ')
				c++;
			while (e > c && (e[-1] == '\n' || e[-1] == '\r'))
				e--;
			v = c;
			vl = (size_t)(e - c);
		}
		switch (kind) {
		case F_BASE:
		case F_IMAP:
			if (k != 0 || s->base)
				break;
			s->uidvalidity = parse_u32(v, vl, &used);
			if (used && used < vl && v[used] == ' ') {
				const char *w = v + used + 1;
				size_t wl = vl - used - 1;

				s->uidnext = parse_u32(w, wl, &used);
				if (kind == F_BASE && used) {
					s->next_voff = (off_t)(d->off + (off_t)(w - p));
					s->next_vlen = used;
				}
			}
			if (s->uidvalidity && s->uidnext)
				s->base = 1;
			else
				s->uidvalidity = s->uidnext = 0;
			if (kind == F_IMAP)
				s->pseudo = 1;
			break;
		case F_UID:
			if (!d->xuid)
				d->xuid = parse_u32(v, vl, &used);
			break;
		case F_STATUS:
			for (used = 0; used < vl; used++) {
				if (v[used] == 'R')
					d->flags |= IMAP_FLAG_SEEN;
				else if (v[used] == 'O')
					d->o = 1;
			}
			d->st_voff = (off_t)(d->off + (off_t)(v - p));
			d->st_vlen = vl;
			break;
		case F_XSTATUS:
			for (used = 0; used < vl; used++) {
				if (v[used] == 'A')
					d->flags |= IMAP_FLAG_ANSWERED;
				else if (v[used] == 'D')
					d->flags |= IMAP_FLAG_DELETED;
				else if (v[used] == 'F')
					d->flags |= IMAP_FLAG_FLAGGED;
				else if (v[used] == 'T')
					d->flags |= IMAP_FLAG_DRAFT;
			}
			d->xs_voff = (off_t)(d->off + (off_t)(v - p));
			d->xs_vlen = vl;
			break;
		case F_KEYWORDS:
			add_keywords(d, v, vl);
			break;
		case F_UIDL:
			if (!seen_uidl && (d->uidl = xuidl_value(v, vl)) != NULL)
				d->has_uidl = 1;
			seen_uidl = 1;
			break;
		}
		i += fl;
	}
}

/* Split the file into messages exactly as lib/mstore_mbox.c does, so
 * that the UIDLs computed here are the ones popd shows. */
static int
split(struct scan *s, const char *path, struct buf *err)
{
	const char *m = s->data.data, *end, *p;
	size_t cap = 0;

	if (s->data.len == 0)
		return 0;
	end = m + s->data.len;
	p = m;
	if (s->data.len < 5 || memcmp(m, "From ", 5)) {
		buf_printf(err, "%s is not an mbox file (no From_ line at its start)", path);
		return -1;
	}
	while (p < end) {
		const char *fl_end = memchr(p, '\n', (size_t)(end - p));
		const char *body = fl_end ? fl_end + 1 : end, *next = NULL, *f;
		struct dmsg *d;
		size_t len;

		if ((f = memmem(body, (size_t)(end - body), "\n\nFrom ", 7)) != NULL)
			next = f + 2;
		if (next)
			len = (size_t)(next - body) - 1;
		else {
			len = (size_t)(end - body);
			if (len >= 2 && end[-1] == '\n' && end[-2] == '\n')
				len--;
			else if (len == 1 && end[-1] == '\n')
				len = 0;
		}
		if (s->n >= MB_MAX_MSGS) {
			buf_printf(err, "%s: more than %d messages", path, MB_MAX_MSGS);
			return -1;
		}
		if (s->n == cap) {
			cap = cap ? cap * 2 : 64;
			s->m = xreallocarray(s->m, cap, sizeof(*s->m));
		}
		d = &s->m[s->n++];
		memset(d, 0, sizeof(*d));
		d->from = p - m;
		d->off = body - m;
		d->len = len;
		from_date(d, p, (size_t)(body - p));
		parse_header(s, s->n - 1);
		if (!d->uidl) {
			struct buf u = BUF_INIT;

			mstore_hash_uidl(p, (size_t)(body - p) + len, &u);
			d->uidl = buf_steal(&u);
		}
		p = next ? next : end;
	}
	return 0;
}

/* popd's ".2", ".3" for equal UIDLs, through lib/mstore itself. */
static void
uniq_uidls(struct scan *s)
{
	struct mstore ms;
	size_t i;

	if (s->n < 2)
		return;
	memset(&ms, 0, sizeof(ms));
	ms.msgs = xcalloc(s->n, sizeof(*ms.msgs));
	ms.n = s->n;
	for (i = 0; i < s->n; i++)
		ms.msgs[i].uidl = s->m[i].uidl;
	mstore_uniq_uidls(&ms);
	for (i = 0; i < s->n; i++)
		s->m[i].uidl = ms.msgs[i].uidl;
	free(ms.msgs);
}

/* UIDs for every message, from the X-UIDs that can be trusted and
 * UIDNEXT; keep_v/keep_next are the UIDVALIDITY and UIDNEXT the caller
 * already uses (0: none), kept when the file gives no reason to change. */
static void
assign_uids(struct scan *s, uint32_t keep_v, uint32_t keep_next)
{
	size_t i, first = s->pseudo ? 1 : 0;
	uint32_t prev = 0, next;
	int trust = 1;

	/* UIDs must ascend through the file: after the first message
	 * without a usable X-UID, every later one is numbered anew */
	for (i = first; i < s->n; i++) {
		struct dmsg *d = &s->m[i];

		if (trust && d->xuid && d->xuid > prev && d->xuid < UINT32_MAX) {
			d->has_uid = 1;
			d->uid = prev = d->xuid;
			continue;
		}
		if (d->xuid)
			s->untrusted = 1;
		trust = 0;
	}
	if (!s->base) {
		s->pending = s->n > first;
		if (s->untrusted || !keep_v) {
			uint32_t t = (uint32_t)time(NULL);

			s->uidvalidity = t == keep_v ? t + 1 : t;
			s->uidnext = 1;
			keep_next = 0;
		} else
			s->uidvalidity = keep_v;
		if (s->untrusted) {
			for (i = first; i < s->n; i++)
				s->m[i].has_uid = 0;
			prev = 0;
		}
		if (keep_next > s->uidnext)
			s->uidnext = keep_next;
	}
	next = s->uidnext > prev ? s->uidnext : prev + 1;
	if (!next)
		next = 1;
	for (i = first; i < s->n; i++) {
		struct dmsg *d = &s->m[i];

		if (!d->has_uid) {
			d->uid = next < UINT32_MAX ? next++ : next;
			s->pending = 1;
		}
		if (!d->o || !d->has_uidl || d->st_vlen != MB_ST_W || d->xs_vlen != MB_XS_W)
			s->pending = 1;
	}
	s->uidnext = next;
	if (s->pseudo || (s->base && s->next_vlen != MB_NEXT_W))
		s->pending = 1;
}

static int
parse_scan(struct scan *s, const char *path, uint32_t keep_v, uint32_t keep_next, struct buf *err)
{
	if (split(s, path, err) < 0)
		return -1;
	uniq_uidls(s);
	assign_uids(s, keep_v, keep_next);
	return 0;
}

/* ---- locking and reading ---------------------------------------------- */

static int
lock_box(const char *path, struct mbox *mb, struct buf *err)
{
	struct mbox_opts o;

	mbox_opts_from_conf(&o);
	/* local holds the locks for one delivery: wait for it; popd holds
	 * them for a session: say [INUSE] soon */
	o.lock_attempts = MB_LOCK_TRIES;
	o.lock_delay_ms = MB_LOCK_DELAY;
	o.owner = geteuid() == 0 ? (uid_t)-1 : geteuid();
	if (mbox_open(mb, path, &o, err) < 0) {
		mb->fd = -1;
		return errno == EAGAIN ? IBOX_INUSE : errno == ENOENT ? IBOX_NONEXIST : IBOX_ERR;
	}
	return IBOX_OK;
}

/* Read the file (locked by mb, or unlocked when mb is NULL) into s.
 * *fdp gets a descriptor of the same file (read/write when writable),
 * which the caller must close only after unlocking: closing any
 * descriptor of the file drops the fcntl lock. */
static int
read_box(const char *path, struct mbox *mb, int writable, struct scan *s, int *fdp, struct buf *err)
{
	struct stat st2;
	int fd;

	*fdp = -1;
	fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 && writable && (errno == EACCES || errno == EPERM || errno == EROFS))
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT && !mb) {
			s->exists = 0;
			return IBOX_OK;
		}
		buf_printf(err, "open %s: %s", path, strerror(errno));
		return IBOX_ERR;
	}
	*fdp = fd;
	if (fstat(fd, &s->st) < 0 || (mb && fstat(mb->fd, &st2) < 0)) {
		buf_printf(err, "fstat %s: %s", path, strerror(errno));
		return IBOX_ERR;
	}
	if (!S_ISREG(s->st.st_mode)) {
		buf_printf(err, "%s is not a regular file", path);
		return IBOX_ERR;
	}
	if (mb && (s->st.st_ino != st2.st_ino || s->st.st_dev != st2.st_dev)) {
		buf_printf(err, "%s changed while it was opened", path);
		return IBOX_ERR;
	}
	s->exists = 1;
	if (read_fd(fd, &s->data, MB_MAX_SIZE) < 0 || fstat(fd, &s->st) < 0) {
		buf_printf(err, "read %s: %s", path, strerror(errno));
		return IBOX_ERR;
	}
	return IBOX_OK;
}

/* After mbox_close: the fcntl lock that replace_file took on the new
 * file is held through fd, which stays open for loads; drop it, or
 * local would wait for us until the session ends. */
static void
unlock_fd(int fd)
{
	struct flock fl;

	if (fd < 0)
		return;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_UNLCK;
	fl.l_whence = SEEK_SET;
	(void)fcntl(fd, F_SETLK, &fl);
}

/* ---- writing ------------------------------------------------------------ */

static void
status_letters(unsigned flags, int o, struct buf *st, struct buf *xs)
{
	size_t l;

	buf_reset(st);
	buf_reset(xs);
	if (flags & IMAP_FLAG_SEEN)
		buf_addc(st, 'R');
	if (o)
		buf_addc(st, 'O');
	for (l = st->len; l < MB_ST_W; l++)
		buf_addc(st, ' ');
	if (flags & IMAP_FLAG_ANSWERED)
		buf_addc(xs, 'A');
	if (flags & IMAP_FLAG_DELETED)
		buf_addc(xs, 'D');
	if (flags & IMAP_FLAG_FLAGGED)
		buf_addc(xs, 'F');
	if (flags & IMAP_FLAG_DRAFT)
		buf_addc(xs, 'T');
	for (l = xs->len; l < MB_XS_W; l++)
		buf_addc(xs, ' ');
}

/* Every keyword in use, "a,b" (case-insensitively distinct), or "". */
static char *
keyword_union(const struct dmsg *m, size_t n, const struct ibox_msg *v, size_t vn)
{
	struct buf out = BUF_INIT;
	size_t i;

	for (i = 0; i < n + vn; i++) {
		const char *k = i < n ? m[i].keywords : v[i - n].keywords;
		char **w, **q;

		if (!k)
			continue;
		w = str_split(k, ",");
		for (q = w; *q; q++) {
			const char *s = buf_str(&out);
			size_t l = strlen(*q);
			int have = 0;

			while (*s && !have) {
				const char *e = strchr(s, ',');
				size_t sl = e ? (size_t)(e - s) : strlen(s);

				if (sl == l && !strncasecmp(s, *q, l))
					have = 1;
				s += sl + (e ? 1 : 0);
			}
			if (!have && l)
				buf_printf(&out, "%s%s", out.len ? "," : "", *q);
		}
		strv_free(w);
	}
	buf_addc(&out, '\0');
	return buf_steal(&out);
}

static void
add_spaced(struct buf *out, const char *kw)
{
	for (; *kw; kw++)
		buf_addc(out, *kw == ',' ? ' ' : *kw);
}

/* The mailbox as we write it, from s: the messages with keep[i] (all
 * when keep is NULL), each with our fields first (X-IMAPbase on the
 * first), its own fields but ours, its body; O is written for all. */
static void
render(const struct scan *s, const unsigned char *keep, struct buf *out)
{
	struct buf st = BUF_INIT, xs = BUF_INIT;
	const char *data = s->data.data;
	char *kwall = keyword_union(s->m, s->n, NULL, 0);
	size_t i, first = s->pseudo ? 1 : 0, kept = 0;

	for (i = first; i < s->n; i++)
		if (!keep || keep[i])
			kept++;
	if (!kept && s->pseudo) {
		/* nothing left to carry X-IMAPbase: keep the pseudo-message */
		buf_add(out, data + s->m[0].from, (size_t)(s->m[0].off - s->m[0].from) + s->m[0].len);
		if (!s->m[0].len || data[s->m[0].off + (off_t)s->m[0].len - 1] != '\n')
			buf_addc(out, '\n');
		buf_addc(out, '\n');
	}
	kept = 0;
	for (i = first; i < s->n; i++) {
		const struct dmsg *d = &s->m[i];
		const char *p = data + d->off;
		size_t hn = header_end(p, d->len), j = 0;

		if (keep && !keep[i])
			continue;
		if (kept++)
			buf_addc(out, '\n');
		buf_add(out, data + d->from, (size_t)(d->off - d->from));
		if (kept == 1) {
			buf_printf(out, "X-IMAPbase: %u %0*u", s->uidvalidity, MB_NEXT_W, s->uidnext);
			if (*kwall) {
				buf_addc(out, ' ');
				add_spaced(out, kwall);
			}
			buf_addc(out, '\n');
		}
		if (!d->has_uidl)
			buf_printf(out, "X-UIDL: %s\n", d->uidl);
		status_letters(d->flags, 1, &st, &xs);
		buf_printf(out, "X-UID: %u\nStatus: %s\nX-Status: %s\n", d->uid, buf_str(&st), buf_str(&xs));
		if (d->keywords && *d->keywords) {
			buf_adds(out, "X-Keywords: ");
			add_spaced(out, d->keywords);
			buf_addc(out, '\n');
		}
		while (j < hn) {
			size_t fl = field_len(p, hn, j);
			int kind = field_kind(p + j, fl);

			if (kind == F_OTHER || kind == F_UIDL)
				buf_add(out, p + j, fl);
			j += fl;
		}
		buf_add(out, p + hn, d->len - hn);
		if (d->len && p[d->len - 1] != '\n')
			buf_addc(out, '\n');
	}
	if (kept)
		buf_addc(out, '\n');
	free(kwall);
	buf_free(&st);
	buf_free(&xs);
}

/* Replace the locked mailbox (read through *rfd) with out: a temporary
 * file, fsync, lock, rename, fsync of the directory; in place when the
 * directory allows no new file and out is not longer.  *rfd becomes a
 * descriptor of the new file; the old one goes to *oldfd (to be closed
 * after unlocking). */
static int
replace_file(const char *path, const struct stat *cur, int *rfd, int *oldfd, const struct buf *out,
    struct buf *err)
{
	struct buf tp = BUF_INIT;
	struct flock fl;
	int fd;

	*oldfd = -1;
	buf_printf(&tp, "%s.imapd.%ld", path, (long)getpid());
	fd = open(buf_str(&tp), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EACCES || errno == EPERM || errno == EROFS)) {
		buf_free(&tp);
		if ((off_t)out->len > cur->st_size) {
			buf_printf(err, "rewrite %s: its directory allows no temporary file, and the "
			    "mailbox would grow: not rewritten in place", path);
			return IBOX_ERR;
		}
		/* compaction in place: a crash leaves a readable mailbox
		 * up to the point reached, as popd's does */
		if (pwrite(*rfd, out->data ? out->data : "", out->len, 0) != (ssize_t)out->len ||
		    ftruncate(*rfd, (off_t)out->len) < 0 || fsync(*rfd) < 0) {
			buf_printf(err, "rewrite %s in place: %s", path, strerror(errno));
			return IBOX_ERR;
		}
		return IBOX_OK;
	}
	if (fd < 0) {
		buf_printf(err, "create %s: %s", buf_str(&tp), strerror(errno));
		buf_free(&tp);
		return IBOX_ERR;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	(void)fchmod(fd, cur->st_mode & 07777);
	if (geteuid() == 0 || cur->st_gid != getegid())
		(void)!fchown(fd, cur->st_uid, cur->st_gid);
	if (fcntl(fd, F_SETLK, &fl) < 0 || write_full(fd, out->data ? out->data : "", out->len) < 0 ||
	    fsync(fd) < 0 || rename(buf_str(&tp), path) < 0) {
		buf_printf(err, "rewrite %s: %s", path, strerror(errno));
		unlink(buf_str(&tp));
		close(fd);
		buf_free(&tp);
		return IBOX_ERR;
	}
	if (fsync_parent(path) < 0)
		msg_warn("fsync the directory of %s: %s", path, strerror(errno));
	buf_free(&tp);
	*oldfd = *rfd;
	*rfd = fd;
	return IBOX_OK;
}

/* Rewrite the locked mailbox from s (keeping keep[]), and make s the
 * scan of what was written. */
static int
rewrite(const char *path, struct scan *s, const unsigned char *keep, int *rfd, int *oldfd,
    struct buf *err)
{
	struct buf out = BUF_INIT;
	struct scan ns;
	uint32_t v = s->uidvalidity, next = s->uidnext;
	int r;

	render(s, keep, &out);
	if ((r = replace_file(path, &s->st, rfd, oldfd, &out, err)) != IBOX_OK) {
		buf_free(&out);
		return r;
	}
	memset(&ns, 0, sizeof(ns));
	ns.next_voff = -1;
	ns.data = out;
	ns.exists = 1;
	if (fstat(*rfd, &ns.st) < 0 || parse_scan(&ns, path, v, next, err) < 0) {
		if (!err->len)
			buf_printf(err, "fstat %s: %s", path, strerror(errno));
		scan_free(&ns);
		return IBOX_ERR;
	}
	scan_free(s);
	*s = ns;
	return IBOX_OK;
}

/* ---- the view ----------------------------------------------------------- */

static struct dmsg *
find_uid(struct scan *s, uint32_t uid)
{
	size_t lo = s->pseudo ? 1 : 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->m[mid].uid == uid)
			return &s->m[mid];
		if (s->m[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int
same_str(const char *a, const char *b)
{
	return !strcmp(a ? a : "", b ? b : "");
}

static void
set_from_disk(struct ibox_msg *m, const struct dmsg *d)
{
	m->uid = d->uid;
	m->modseq = 1;
	m->flags = (m->flags & IBOX_RECENT) | d->flags;
	if (!same_str(m->keywords, d->keywords)) {
		free(m->keywords);
		m->keywords = d->keywords && *d->keywords ? xstrdup(d->keywords) : NULL;
	}
	m->off = d->off;
	m->len = d->len;
	m->idate = d->idate;
	m->izone = d->izone;
	m->have |= IBOX_META_IDATE;
}

static void
make_kwlist(struct imap_box *b)
{
	free(b->kwlist);
	b->kwlist = keyword_union(NULL, 0, b->msgs, b->n);
}

/* Adopt a new scan (its data is dropped: loads read the file). */
static void
adopt(struct mbpriv *d, struct scan *s, int fd, int *oldfd)
{
	buf_free(&s->data);
	scan_free(&d->s);
	d->s = *s;
	memset(s, 0, sizeof(*s));
	if (d->fd >= 0 && d->fd != fd) {
		if (*oldfd < 0)
			*oldfd = d->fd;
		else
			close(d->fd);	/* not the locked file: see read_box */
	}
	d->fd = fd;
}

/* Bring the view up to the last scan (md_sync's counterpart). */
static int
merge(struct imap_box *b, int allow_expunge, struct ibox_changes *ch)
{
	struct mbpriv *d = b->priv;
	struct scan *s = &d->s;
	struct ibox_msg *nm;
	size_t i, j, k = 0, cap, first = s->pseudo ? 1 : 0;
	uint32_t last;

	if (s->exists && s->n > first && s->uidvalidity != b->uidvalidity) {
		ch->uidvalidity = 1;
		return IBOX_OK;
	}
	cap = b->n + s->n + 1;
	nm = xcalloc(cap, sizeof(*nm));
	ch->expunged = xcalloc(b->n + 1, sizeof(*ch->expunged));
	ch->changed = xcalloc(cap, sizeof(*ch->changed));
	last = b->n ? b->msgs[b->n - 1].uid : 0;
	j = first;
	for (i = 0; i < b->n; i++) {
		struct ibox_msg *m = &b->msgs[i];

		while (j < s->n && s->m[j].uid < m->uid)
			j++;
		if (j < s->n && s->m[j].uid == m->uid) {
			const struct dmsg *x = &s->m[j];

			if (x->flags != (m->flags & ~IBOX_RECENT) || !same_str(x->keywords, m->keywords))
				ch->changed[ch->nchanged++] = k;
			set_from_disk(m, x);
			m->expunged = 0;
			nm[k++] = *m;
			continue;
		}
		if (!allow_expunge) {
			m->expunged = 1;
			m->off = -1;	/* load: IBOX_GONE */
			nm[k++] = *m;
			continue;
		}
		ibox_gone(b, m, k + 1, ch);
	}
	free(b->msgs);
	b->msgs = nm;
	b->n = k;
	for (j = first; j < s->n; j++) {
		struct ibox_msg *m;

		if (s->m[j].uid <= last)
			continue;
		m = &b->msgs[b->n++];
		memset(m, 0, sizeof(*m));
		set_from_disk(m, &s->m[j]);
		if (!s->m[j].o || imap_seq_contains(&d->claimed, m->uid)) {
			m->flags |= IBOX_RECENT;
			b->recent++;
		}
		ch->exists = 1;
	}
	if (ch->vanished.n)
		imap_seq_normalize(&ch->vanished);
	if (s->uidnext > b->uidnext)
		b->uidnext = s->uidnext;
	if (ch->exists || ch->nchanged)
		make_kwlist(b);
	return IBOX_OK;
}

/* Before a rewrite writes O for every message: remember those that the
 * view has not been given yet, so that they are \Recent for us. */
static void
note_claims(struct imap_box *b, const struct scan *s)
{
	struct mbpriv *d = b->priv;
	uint32_t last = b->n ? b->msgs[b->n - 1].uid : 0;
	size_t i;
	int any = 0;

	for (i = s->pseudo ? 1 : 0; i < s->n; i++)
		if (!s->m[i].o && s->m[i].uid > last) {
			imap_seq_add(&d->claimed, s->m[i].uid, s->m[i].uid);
			any = 1;
		}
	if (any)
		imap_seq_normalize(&d->claimed);
}

static int
writable(struct imap_box *b)
{
	return !b->readonly;
}

/* Read the file again if it changed since the last scan: locked,
 * without writing.  With need_lock 0, a lock held by popd is read
 * through (popd changes nothing until its session ends).  IBOX_OK,
 * IBOX_INUSE, IBOX_ERR. */
static int
refresh(struct imap_box *b, int need_lock, struct buf *err)
{
	struct mbpriv *d = b->priv;
	struct stat st;
	struct scan s;
	struct mbox mb;
	int r, fd = -1, oldfd = -1, locked = 0;

	if (stat(b->path, &st) < 0) {
		if (errno != ENOENT) {
			buf_printf(err, "stat %s: %s", b->path, strerror(errno));
			return IBOX_ERR;
		}
		if (!d->s.exists)
			return IBOX_OK;
		/* gone: an empty INBOX */
		memset(&s, 0, sizeof(s));
		s.next_voff = -1;
		adopt(d, &s, -1, &oldfd);
		if (oldfd >= 0)
			close(oldfd);
		return IBOX_OK;
	}
	if (d->s.exists && same_file(&st, &d->s.st))
		return IBOX_OK;
	memset(&s, 0, sizeof(s));
	s.next_voff = -1;
	mb.fd = -1;
	r = lock_box(b->path, &mb, err);
	if (r == IBOX_OK)
		locked = 1;
	else if (r == IBOX_INUSE && !need_lock) {
		buf_reset(err);
		r = IBOX_OK;
	} else
		return r;
	r = read_box(b->path, locked ? &mb : NULL, writable(b), &s, &fd, err);
	if (r == IBOX_OK && s.exists &&
	    parse_scan(&s, b->path, b->uidvalidity, b->uidnext, err) < 0)
		r = IBOX_ERR;
	if (r == IBOX_OK)
		adopt(d, &s, fd, &oldfd);
	else if (fd >= 0)
		oldfd = fd;
	if (locked)
		mbox_close(&mb);
	if (oldfd >= 0)
		close(oldfd);
	scan_free(&s);
	return r;
}

static int
mb_sync(struct imap_box *b, int allow_expunge, struct ibox_changes *ch, struct buf *err)
{
	int r;

	if ((r = refresh(b, 1, err)) != IBOX_OK)
		return r;
	return merge(b, allow_expunge, ch);
}

/* Drop what we hide from clients: our header fields and X-UIDL:. */
static void
strip(const char *p, size_t n, struct buf *out)
{
	size_t hn = header_end(p, n), j = 0;

	buf_reset(out);
	while (j < hn) {
		size_t fl = field_len(p, hn, j);

		if (field_kind(p + j, fl) == F_OTHER)
			buf_add(out, p + j, fl);
		j += fl;
	}
	buf_add(out, p + hn, n - hn);
}

static int
pread_all(int fd, char *p, size_t n, off_t off)
{
	while (n) {
		ssize_t r = pread(fd, p, n, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		p += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

/* Where the view's messages are in the last scan (after a refresh that
 * was not a sync: only positions change, not what the client saw). */
static void
relocate(struct imap_box *b)
{
	struct mbpriv *d = b->priv;
	size_t i;

	for (i = 0; i < b->n; i++) {
		struct dmsg *x = find_uid(&d->s, b->msgs[i].uid);

		if (x) {
			b->msgs[i].off = x->off;
			b->msgs[i].len = x->len;
		} else
			b->msgs[i].off = -1;
	}
}

static int
mb_load(struct imap_box *b, size_t i, const char **p, size_t *n, struct buf *err)
{
	struct mbpriv *d = b->priv;
	struct buf raw = BUF_INIT;
	struct ibox_msg *m;
	struct stat st;
	int tries, r;

	for (tries = 0; tries < 3; tries++) {
		m = &b->msgs[i];
		if (d->fd < 0 || fstat(d->fd, &st) < 0 || !same_file(&st, &d->s.st) ||
		    (stat(b->path, &st) == 0 && !same_file(&st, &d->s.st))) {
			/* the file changed: find the message again */
			if ((r = refresh(b, 0, err)) != IBOX_OK) {
				buf_free(&raw);
				return r;
			}
			relocate(b);
			m = &b->msgs[i];
		}
		if (m->off < 0 || d->fd < 0) {
			buf_free(&raw);
			return IBOX_GONE;
		}
		buf_reset(&raw);
		buf_reserve(&raw, m->len + 1);
		if (pread_all(d->fd, raw.data, m->len, m->off) < 0) {
			buf_printf(err, "read %s: %s", b->path, strerror(errno));
			buf_free(&raw);
			return IBOX_ERR;
		}
		raw.len = m->len;
		/* changed while we read: read it again */
		if (fstat(d->fd, &st) == 0 && same_file(&st, &d->s.st))
			break;
	}
	strip(raw.data, raw.len, &b->mapbuf);
	buf_free(&raw);
	*p = b->mapbuf.data ? b->mapbuf.data : "";
	*n = b->mapbuf.len;
	return IBOX_OK;
}

/* STORE of system flags in place: our fixed-width fields, in the file
 * as read through fd (locked, unchanged since; *stp its stat, updated).
 * 1 done, 0 not possible, -1 error. */
static int
store_in_place(int fd, struct stat *stp, struct dmsg *x, unsigned flags, const char *path,
    struct buf *err)
{
	struct buf st = BUF_INIT, xs = BUF_INIT;
	struct stat sb;
	int ok, fl;

	if (x->st_vlen != MB_ST_W || x->xs_vlen != MB_XS_W || !x->has_uid || !x->has_uidl || !x->o ||
	    fd < 0 || (fl = fcntl(fd, F_GETFL)) < 0 || (fl & O_ACCMODE) != O_RDWR)
		return 0;
	status_letters(flags, 1, &st, &xs);
	ok = pwrite(fd, st.data, st.len, x->st_voff) == (ssize_t)st.len &&
	    pwrite(fd, xs.data, xs.len, x->xs_voff) == (ssize_t)xs.len && fsync(fd) == 0 &&
	    fstat(fd, &sb) == 0;
	buf_free(&st);
	buf_free(&xs);
	if (!ok) {
		buf_printf(err, "write %s: %s", path, strerror(errno));
		return -1;
	}
	x->flags = flags;
	*stp = sb;
	return 1;
}

static int
mb_store(struct imap_box *b, size_t i, unsigned flags, const char *keywords, struct buf *err)
{
	struct mbpriv *d = b->priv;
	struct ibox_msg *m = &b->msgs[i];
	struct scan s;
	struct mbox mb;
	struct stat sb;
	struct dmsg *x;
	int r, fd = -1, oldfd = -1;

	if (!writable(b)) {
		buf_printf(err, "%s is read-only", b->path);
		return IBOX_ERR;
	}
	if (keywords && !*keywords)
		keywords = NULL;
	if ((r = lock_box(b->path, &mb, err)) != IBOX_OK)
		return r == IBOX_NONEXIST ? IBOX_GONE : r;
	memset(&s, 0, sizeof(s));
	s.next_voff = -1;
	/* nothing changed since our last read: the positions we know hold */
	if (d->s.exists && stat(b->path, &sb) == 0 && same_file(&sb, &d->s.st) &&
	    (x = find_uid(&d->s, m->uid)) != NULL && same_str(x->keywords, keywords)) {
		r = store_in_place(d->fd, &d->s.st, x, flags, b->path, err);
		if (r != 0) {
			mbox_close(&mb);
			if (r < 0)
				return IBOX_ERR;
			m->flags = (m->flags & IBOX_RECENT) | flags;
			return IBOX_OK;
		}
	}
	r = read_box(b->path, &mb, 1, &s, &fd, err);
	if (r == IBOX_OK && parse_scan(&s, b->path, b->uidvalidity, b->uidnext, err) < 0)
		r = IBOX_ERR;
	if (r == IBOX_OK && s.uidvalidity != b->uidvalidity)
		r = IBOX_GONE;
	if (r == IBOX_OK && !(x = find_uid(&s, m->uid)))
		r = IBOX_GONE;
	/* changed by another session (its own in-place STORE, say): in
	 * place still, at the positions just read */
	if (r == IBOX_OK) {
		int ip = same_str(x->keywords, keywords) ?
		    store_in_place(fd, &s.st, x, flags, b->path, err) : 0;

		if (ip < 0)
			r = IBOX_ERR;
		else if (ip == 0) {
			x->flags = flags;
			if (!same_str(x->keywords, keywords)) {
				free(x->keywords);
				x->keywords = keywords ? xstrdup(keywords) : NULL;
			}
			note_claims(b, &s);
			r = rewrite(b->path, &s, NULL, &fd, &oldfd, err);
		}
	}
	if (r == IBOX_OK) {
		int o2 = -1;

		adopt(d, &s, fd, &o2);
		fd = o2;
		m->flags = (m->flags & IBOX_RECENT) | flags;
		if (!same_str(m->keywords, keywords)) {
			free(m->keywords);
			m->keywords = keywords ? xstrdup(keywords) : NULL;
		}
		if (keywords)
			make_kwlist(b);
		relocate(b);
	}
	mbox_close(&mb);
	unlock_fd(d->fd);
	if (fd >= 0)
		close(fd);
	if (oldfd >= 0)
		close(oldfd);
	scan_free(&s);
	return r;
}

/* The end of a change under the locks: a successful one makes its scan
 * (and the file it describes) the box's; then the locks go. */
static void
end_change(struct mbpriv *d, struct mbox *mb, struct scan *s, int ok, int fd, int oldfd)
{
	if (ok) {
		int o2 = -1;

		adopt(d, s, fd, &o2);
		fd = o2;
	}
	mbox_close(mb);
	unlock_fd(d->fd);
	if (fd >= 0)
		close(fd);
	if (oldfd >= 0)
		close(oldfd);
}

static int
mb_expunge(struct imap_box *b, const struct imap_seqset *uids, struct ibox_changes *ch, struct buf *err)
{
	struct mbpriv *d = b->priv;
	unsigned char *keep = NULL;
	struct scan s;
	struct mbox mb;
	size_t i, gone = 0;
	int r, fd = -1, oldfd = -1;

	if (!writable(b)) {
		buf_printf(err, "%s is read-only", b->path);
		return IBOX_ERR;
	}
	if (access(b->path, F_OK) < 0 && errno == ENOENT)
		return mb_sync(b, 1, ch, err);
	if ((r = lock_box(b->path, &mb, err)) != IBOX_OK)
		return r;
	memset(&s, 0, sizeof(s));
	s.next_voff = -1;
	r = read_box(b->path, &mb, 1, &s, &fd, err);
	if (r == IBOX_OK && parse_scan(&s, b->path, b->uidvalidity, b->uidnext, err) < 0)
		r = IBOX_ERR;
	if (r == IBOX_OK && s.uidvalidity == b->uidvalidity) {
		keep = xcalloc(s.n + 1, 1);
		for (i = 0; i < s.n; i++) {
			struct dmsg *x = &s.m[i];

			keep[i] = 1;
			if (s.pseudo && i == 0)
				continue;
			if (!(x->flags & IMAP_FLAG_DELETED))
				continue;
			if (uids && !imap_seq_contains(uids, x->uid))
				continue;
			/* only messages this session knows (RFC 3501: those it was told) */
			if (!ibox_seq_of_uid(b, x->uid))
				continue;
			keep[i] = 0;
			gone++;
		}
		if (gone || s.pending) {
			note_claims(b, &s);
			r = rewrite(b->path, &s, keep, &fd, &oldfd, err);
		}
	}
	end_change(d, &mb, &s, r == IBOX_OK, fd, oldfd);
	free(keep);
	scan_free(&s);
	if (r != IBOX_OK)
		return r;
	return merge(b, 1, ch);
}

static int
mb_watch(struct imap_box *b)
{
	struct mbpriv *d = b->priv;
	struct buf dir = BUF_INIT;
	const char *sl;

	if (d->ino == -1) {
		d->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (d->ino < 0) {
			d->ino = -2;
			return -1;
		}
		sl = strrchr(b->path, '/');
		if (sl)
			buf_add(&dir, b->path, sl == b->path ? 1 : (size_t)(sl - b->path));
		else
			buf_adds(&dir, ".");
		/* the directory sees local create the file and our renames
		 * over it; the file sees appends */
		if (inotify_add_watch(d->ino, buf_str(&dir), IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO |
		    IN_CREATE) < 0) {
			/* without a watch the session syncs after every command */
			close(d->ino);
			d->ino = -2;
			buf_free(&dir);
			return -1;
		}
		(void)inotify_add_watch(d->ino, b->path, IN_MODIFY | IN_CLOSE_WRITE);
		buf_free(&dir);
	}
	return d->ino >= 0 ? d->ino : -1;
}

static void
mb_close(struct imap_box *b)
{
	struct mbpriv *d = b->priv;

	if (open_box == b)
		open_box = NULL;
	if (!d)
		return;
	if (d->ino >= 0)
		close(d->ino);
	if (d->fd >= 0)
		close(d->fd);
	scan_free(&d->s);
	imap_seq_free(&d->claimed);
	free(d);
	b->priv = NULL;
}

static const struct ibox_ops mb_ops = {
	mb_sync, mb_load, mb_store, mb_expunge, mb_watch, mb_close,
};

int
ibox_mbox_open(struct imap_box *b, struct buf *err)
{
	struct mbpriv *d = xcalloc(1, sizeof(*d));
	struct ibox_changes ch;
	struct scan s;
	struct mbox mb;
	int r, fd = -1, oldfd = -1;
	size_t i;

	d->ino = -1;
	d->fd = -1;
	d->s.next_voff = -1;
	b->priv = d;
	b->ops = &mb_ops;
	b->nomodseq = 1;
	b->highestmodseq = 1;
	b->uidnext = 1;
	memset(&s, 0, sizeof(s));
	s.next_voff = -1;
	if (access(b->path, F_OK) < 0) {
		if (errno != ENOENT) {
			buf_printf(err, "%s: %s", b->path, strerror(errno));
			return IBOX_ERR;
		}
		/* no file yet: an empty INBOX (APPEND or local creates it) */
		b->uidvalidity = (uint32_t)time(NULL);
		open_box = b;
		return IBOX_OK;
	}
	if (!b->readonly && access(b->path, W_OK) < 0)
		b->readonly = 1;
	if ((r = lock_box(b->path, &mb, err)) != IBOX_OK)
		return r;
	r = read_box(b->path, &mb, writable(b), &s, &fd, err);
	if (r == IBOX_OK && parse_scan(&s, b->path, 0, 0, err) < 0)
		r = IBOX_ERR;
	if (r == IBOX_OK) {
		b->uidvalidity = s.uidvalidity;
		/* \Recent: what no session has seen; claimed by writing O */
		note_claims(b, &s);
		if (writable(b) && s.pending) {
			r = rewrite(b->path, &s, NULL, &fd, &oldfd, err);
			if (r != IBOX_OK) {
				/* e.g. a directory that allows no growth: the UIDs
				 * cannot be kept, so nothing is written at all */
				msg_warn("%s: used read-only: %s", b->path, buf_str(err));
				buf_reset(err);
				b->readonly = 1;
				r = IBOX_OK;
			}
		}
	}
	end_change(d, &mb, &s, r == IBOX_OK, fd, oldfd);
	scan_free(&s);
	if (r != IBOX_OK)
		return r;
	b->uidvalidity = d->s.uidvalidity ? d->s.uidvalidity : (uint32_t)time(NULL);
	memset(&ch, 0, sizeof(ch));
	r = merge(b, 1, &ch);
	ibox_changes_free(&ch);
	imap_seq_free(&d->claimed);
	for (i = 0; i < b->n; i++)
		b->msgs[i].modseq = 1;
	make_kwlist(b);
	open_box = b;
	return r;
}

int
ibox_mbox_status(const char *path, struct ibox_status *st, struct buf *err)
{
	struct scan s;
	struct mbox mb;
	struct buf t = BUF_INIT;
	size_t i;
	int r, fd = -1;

	memset(&s, 0, sizeof(s));
	s.next_voff = -1;
	if (access(path, F_OK) < 0 && errno == ENOENT) {
		st->uidnext = 1;
		st->uidvalidity = (uint32_t)time(NULL);
		return IBOX_OK;
	}
	if ((r = lock_box(path, &mb, err)) != IBOX_OK)
		return r;
	r = read_box(path, &mb, 0, &s, &fd, err);
	mbox_close(&mb);
	if (fd >= 0)
		close(fd);
	if (r == IBOX_OK && parse_scan(&s, path, open_box && !strcmp(open_box->path, path) ?
	    open_box->uidvalidity : 0, 0, err) < 0)
		r = IBOX_ERR;
	if (r == IBOX_OK) {
		for (i = s.pseudo ? 1 : 0; i < s.n; i++) {
			const struct dmsg *x = &s.m[i];

			st->messages++;
			if (!x->o)
				st->recent++;
			if (!(x->flags & IMAP_FLAG_SEEN))
				st->unseen++;
			if (x->flags & IMAP_FLAG_DELETED)
				st->deleted++;
			strip(s.data.data + x->off, x->len, &t);
			st->size += mstore_wire_size(t.data ? t.data : "", t.len);
		}
		st->uidnext = s.uidnext;
		st->uidvalidity = s.uidvalidity;
		st->highestmodseq = 0;
	}
	buf_free(&t);
	scan_free(&s);
	return r;
}

/* The client's message (CRLF) as mbox text (LF), for lib/mbox's
 * quoting writer. */
struct lf_src {
	const char *p;
	size_t n;
};

static int
lf_copy(void *ctx, mail_sink_fn sink, void *sctx)
{
	const struct lf_src *l = ctx;
	size_t i = 0;
	int r;

	while (i < l->n) {
		const char *cr = memchr(l->p + i, '\r', l->n - i);
		size_t e = cr ? (size_t)(cr - l->p) : l->n;

		if (e > i && (r = sink(sctx, l->p + i, e - i)) != 0)
			return r;
		if (!cr)
			break;
		/* a lone CR stays; CRLF becomes LF */
		if (e + 1 < l->n && l->p[e + 1] == '\n')
			i = e + 1;
		else {
			if ((r = sink(sctx, "\r", 1)) != 0)
				return r;
			i = e + 1;
		}
	}
	return 0;
}

/* Our fields of an appended message: X-IMAPbase when it is the first,
 * an X-UIDL: so that the POP3 UIDL is fixed from the start, X-UID,
 * Status without O (\Recent for the next session), X-Status,
 * X-Keywords.  Headers the client sent with our names are dropped. */
static void
append_prefix(const struct ibox_append *a, uint32_t uid, uint32_t v, uint32_t next, int first,
    struct buf *out)
{
	struct buf st = BUF_INIT, xs = BUF_INIT, h = BUF_INIT;

	if (first) {
		buf_printf(out, "X-IMAPbase: %u %0*u", v, MB_NEXT_W, next);
		if (a->keywords && *a->keywords) {
			buf_addc(out, ' ');
			add_spaced(out, a->keywords);
		}
		buf_addc(out, '\n');
	}
	buf_printf(&h, "%u %u %zu %lld ", v, uid, a->len, (long long)time(NULL));
	buf_add(&h, a->data, a->len);
	buf_adds(out, "X-UIDL: ");
	mstore_hash_uidl(h.data, h.len, out);
	status_letters(a->flags, 0, &st, &xs);
	buf_printf(out, "\nX-UID: %u\nStatus: %s\nX-Status: %s\n", uid, buf_str(&st), buf_str(&xs));
	if (a->keywords && *a->keywords) {
		buf_adds(out, "X-Keywords: ");
		add_spaced(out, a->keywords);
		buf_addc(out, '\n');
	}
	buf_free(&st);
	buf_free(&xs);
	buf_free(&h);
}

/* The client's header without fields that would be taken for ours. */
static void
clean_client(const struct ibox_append *a, struct buf *out)
{
	size_t hn = header_end(a->data, a->len), j = 0;

	while (j < hn) {
		size_t fl = field_len(a->data, hn, j);

		if (field_kind(a->data + j, fl) == F_OTHER)
			buf_add(out, a->data + j, fl);
		j += fl;
	}
	buf_add(out, a->data + hn, a->len - hn);
}

int
ibox_mbox_append(const char *path, const struct ibox_append *m, size_t n,
    uint32_t *uidvalidity, uint32_t *uids, struct buf *err)
{
	struct scan s;
	struct mbox mb;
	struct buf pre = BUF_INIT, body = BUF_INIT, dg = BUF_INIT;
	uint32_t keep_v = 0, keep_next = 0, next;
	size_t k;
	int r, fd = -1, oldfd = -1, empty;

	if (open_box && !strcmp(open_box->path, path)) {
		keep_v = open_box->uidvalidity;
		keep_next = open_box->uidnext;
	}
	memset(&s, 0, sizeof(s));
	s.next_voff = -1;
	if ((r = lock_box(path, &mb, err)) != IBOX_OK)
		return r;
	r = read_box(path, &mb, 1, &s, &fd, err);
	if (r == IBOX_OK && parse_scan(&s, path, keep_v, keep_next, err) < 0)
		r = IBOX_ERR;
	empty = s.n == (s.pseudo ? 1u : 0u);
	if (r == IBOX_OK && empty && !s.pseudo && s.data.len) {
		buf_printf(err, "%s: no message in a non-empty file", path);
		r = IBOX_ERR;
	}
	/* UIDs to write first, and UIDNEXT where it can be raised in place */
	if (r == IBOX_OK && !empty && s.pending) {
		if (open_box && !strcmp(open_box->path, path) && open_box->priv)
			note_claims(open_box, &s);
		r = rewrite(path, &s, NULL, &fd, &oldfd, err);
	}
	if (r != IBOX_OK)
		goto out;
	if (oldfd >= 0) {
		/* append to the new file, under its lock (taken in replace_file) */
		close(mb.fd);
		mb.fd = fd;
		fd = -1;
	}
	if (fstat(mb.fd, &s.st) < 0 || lseek(mb.fd, 0, SEEK_END) < 0) {
		buf_printf(err, "%s: %s", path, strerror(errno));
		r = IBOX_ERR;
		goto out;
	}
	mb.start = s.st.st_size;
	*uidvalidity = s.uidvalidity;
	next = s.uidnext;
	if (!empty) {
		/* raise UIDNEXT first: a crash then leaves a gap, never a reuse */
		buf_printf(&dg, "%0*u", MB_NEXT_W, next + (uint32_t)n);
		if (s.next_vlen != MB_NEXT_W || dg.len != MB_NEXT_W ||
		    pwrite(fd >= 0 ? fd : mb.fd, dg.data, dg.len, s.next_voff) != (ssize_t)dg.len) {
			buf_printf(err, "%s: cannot raise UIDNEXT: %s", path,
			    s.next_vlen != MB_NEXT_W ? "no X-IMAPbase" : strerror(errno));
			r = IBOX_ERR;
			goto out;
		}
	}
	for (k = 0; k < n; k++) {
		struct mail_source src;
		struct lf_src l;
		time_t when = m[k].idate > 0 ? (time_t)m[k].idate : time(NULL);

		uids[k] = next + (uint32_t)k;
		buf_reset(&pre);
		buf_reset(&body);
		append_prefix(&m[k], uids[k], s.uidvalidity, next + (uint32_t)n, empty && k == 0, &pre);
		clean_client(&m[k], &body);
		l.p = body.data ? body.data : "";
		l.n = body.len;
		memset(&src, 0, sizeof(src));
		src.prefix = pre.data;
		src.prefix_len = pre.len;
		src.copy = lf_copy;
		src.ctx = &l;
		/* on failure mbox_append truncates back to mb.start: none of
		 * the n messages stays */
		if (mbox_append(&mb, "MAILER-DAEMON", when, &src, err) < 0) {
			r = errno == ENOSPC || errno == EDQUOT || errno == EFBIG ? IBOX_OVERQUOTA : IBOX_ERR;
			goto out;
		}
	}
	r = IBOX_OK;
out:
	mbox_close(&mb);
	if (fd >= 0)
		close(fd);
	if (oldfd >= 0)
		close(oldfd);
	scan_free(&s);
	buf_free(&pre);
	buf_free(&body);
	buf_free(&dg);
	return r;
}
