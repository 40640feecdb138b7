/*
 * mstore_mbox.c: the mbox back end of mstore.h (for popd, the RFC 1939
 * maildrop).
 *
 * Locking: mbox_open() of lib/mbox.h takes the NAME.lock dotlock and the
 * fcntl write lock exactly as local does, and both are held until the
 * session ends, so local waits (and defers) rather than append during a
 * session.  A second descriptor (read/write) is kept open for the whole
 * session: closing any descriptor of the file would drop this process's
 * fcntl locks.
 *
 * Parsing: a message starts with a "From " line at the start of the file
 * or after an empty line; the empty line before the next "From " line
 * (written by every mbox writer) is not part of the message.  ">From "
 * lines are sent as stored (mboxo quoting cannot be undone reliably).
 *
 * UIDL: the value of the message's X-UIDL: header field when it has one
 * that is a valid UIDL, otherwise a hash of the From_ line and the
 * message, which cannot change while the message sits in the mailbox.
 * Equal values get ".2", ".3"...  When UPDATE rewrites the mailbox, each
 * kept message without an X-UIDL: field gets one holding the UIDL it was
 * shown under, so UIDLs stay the same across sessions even when an
 * earlier duplicate is deleted.
 *
 * UPDATE: the kept messages are written to a temporary file in the same
 * folder, which is fsynced, locked and renamed over the mailbox (the
 * folder is fsynced too); where the folder does not allow creating a file
 * (a /var/mail that is not writable by users), the file is compacted in
 * place instead, under the same locks, then truncated and fsynced.
 */
#include "mstore.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MBOX_MAX_MSGS	1000000

/* The X-UIDL: value in the header of a message, or NULL. */
static char *
find_xuidl(const char *p, size_t n)
{
	const char *end = p + n, *q = p;

	while (q < end) {
		const char *nl = memchr(q, '\n', (size_t)(end - q));
		const char *le = nl ? nl : end;

		if (le == q || (le == q + 1 && *q == '\r'))
			break;	/* end of the header */
		if (le - q > 7 && !strncasecmp(q, "X-UIDL:", 7)) {
			const char *v = q + 7;

			while (v < le && (*v == ' ' || *v == '\t'))
				v++;
			while (le > v && (le[-1] == '\r' || le[-1] == ' ' || le[-1] == '\t'))
				le--;
			if (le > v && le - v <= 70) {
				char *s = xstrndup(v, (size_t)(le - v));

				if (mstore_uidl_valid(s))
					return s;
				free(s);
			}
			return NULL;
		}
		q = nl ? nl + 1 : end;
	}
	return NULL;
}

static int
parse(struct mstore *b, struct buf *err)
{
	const char *m = b->map, *end = b->map + b->maplen, *p = m;
	size_t cap = 0;

	if (b->maplen == 0)
		return 0;
	if (b->maplen < 5 || memcmp(m, "From ", 5)) {
		buf_printf(err, "%s is not an mbox file (no From_ line at its start)", b->path);
		return -1;
	}
	while (p < end) {
		const char *fl_end = memchr(p, '\n', (size_t)(end - p));
		const char *body, *next, *q;
		struct mstore_msg *msg;
		size_t len;

		body = fl_end ? fl_end + 1 : end;
		/* the next "\n\nFrom " */
		next = NULL;
		for (q = body; q < end; ) {
			const char *f = memmem(q, (size_t)(end - q), "\n\nFrom ", 7);

			if (!f)
				break;
			next = f + 2;
			break;
		}
		if (next) {
			len = (size_t)(next - body) - 1;	/* drop the empty line */
		} else {
			len = (size_t)(end - body);
			if (len >= 2 && end[-1] == '\n' && end[-2] == '\n')
				len--;
			else if (len == 1 && end[-1] == '\n')
				len = 0;
		}
		if (body == next)	/* "From x\n\nFrom y": empty message */
			len = 0;
		if (b->n >= MBOX_MAX_MSGS) {
			buf_printf(err, "%s: more than %d messages", b->path, MBOX_MAX_MSGS);
			return -1;
		}
		if (b->n == cap) {
			cap = cap ? cap * 2 : 64;
			b->msgs = xreallocarray(b->msgs, cap, sizeof(*b->msgs));
		}
		msg = &b->msgs[b->n++];
		memset(msg, 0, sizeof(*msg));
		msg->off = p - m;
		msg->body = body - m;
		msg->len = len;
		msg->size = mstore_wire_size(body, len);
		if ((msg->uidl = find_xuidl(body, len)) != NULL)
			msg->has_uidl_hdr = 1;
		else {
			struct buf u = BUF_INIT;

			mstore_hash_uidl(p, (size_t)(body - p) + len, &u);
			msg->uidl = buf_steal(&u);
		}
		p = next ? next : end;
	}
	mstore_uniq_uidls(b);
	return 0;
}

int
mstore_mbox_open(struct mstore *b, struct buf *err)
{
	struct mbox_opts o;
	struct stat st, st2;
	int e;

	mbox_opts_from_conf(&o);
	/* a session holding the mailbox answers [IN-USE] quickly; a
	 * delivery in progress is waited for briefly */
	o.lock_attempts = 10;
	o.lock_delay_ms = 200;
	o.owner = geteuid() == 0 ? (uid_t)-1 : geteuid();
	if (mbox_open(&b->mb, b->path, &o, err) < 0) {
		e = errno;
		b->mb.fd = -1;
		if (e == EAGAIN)
			return MSTORE_INUSE;
		if (e == ELOOP || e == EMLINK || e == EPERM || e == EINVAL)
			return MSTORE_PERM;
		return MSTORE_ERR;
	}
	b->mb_open = 1;
	b->rfd = open(b->path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (b->rfd < 0 || fstat(b->rfd, &st) < 0 || fstat(b->mb.fd, &st2) < 0) {
		buf_printf(err, "open %s: %s", b->path, strerror(errno));
		return MSTORE_ERR;
	}
	if (st.st_ino != st2.st_ino || st.st_dev != st2.st_dev) {
		buf_printf(err, "%s changed while it was opened", b->path);
		return MSTORE_ERR;
	}
	b->maplen = (size_t)b->mb.start;
	if (b->maplen) {
		b->map = mmap(NULL, b->maplen, PROT_READ, MAP_SHARED, b->rfd, 0);
		if (b->map == MAP_FAILED) {
			b->map = NULL;
			buf_printf(err, "mmap %s: %s", b->path, strerror(errno));
			return MSTORE_ERR;
		}
	}
	if (parse(b, err) < 0)
		return MSTORE_PERM;
	return MSTORE_OK;
}

static int
wr(int fd, off_t *pos, const void *p, size_t n)
{
	const char *s = p;

	while (n) {
		ssize_t w = pwrite(fd, s, n, *pos);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
		*pos += w;
	}
	return 0;
}

/* Write the kept messages to fd from position 0; with add_uidl, an
 * X-UIDL: field for those that have none.  The end offset in *endp. */
static int
write_kept(struct mstore *b, int fd, int add_uidl, int in_place, off_t *endp)
{
	struct buf tmp = BUF_INIT;
	off_t pos = 0;
	size_t i;
	int first = 1;

	for (i = 0; i < b->n; i++) {
		struct mstore_msg *m = &b->msgs[i];
		const char *fl = b->map + m->off;
		size_t fl_len = (size_t)(m->body - m->off);

		if (m->deleted)
			continue;
		buf_reset(&tmp);
		if (!first)
			buf_addc(&tmp, '\n');
		first = 0;
		buf_add(&tmp, fl, fl_len);
		if (add_uidl && !m->has_uidl_hdr)
			buf_printf(&tmp, "X-UIDL: %s\n", m->uidl);
		buf_add(&tmp, b->map + m->body, m->len);
		if (m->len && b->map[m->body + m->len - 1] != '\n')
			buf_addc(&tmp, '\n');
		/* in place, the copy is taken before anything is written over
		 * it, and the write position never passes the read position */
		(void)in_place;
		if (wr(fd, &pos, tmp.data, tmp.len) < 0) {
			buf_free(&tmp);
			return -1;
		}
	}
	if (!first && wr(fd, &pos, "\n", 1) < 0) {
		buf_free(&tmp);
		return -1;
	}
	buf_free(&tmp);
	*endp = pos;
	return 0;
}

int
mstore_mbox_update(struct mstore *b, struct buf *err)
{
	struct buf tp = BUF_INIT;
	struct stat st;
	struct flock fl;
	off_t end;
	int fd;

	if (fstat(b->rfd, &st) < 0) {
		buf_printf(err, "fstat %s: %s", b->path, strerror(errno));
		return -1;
	}
	buf_printf(&tp, "%s.popd.%ld", b->path, (long)getpid());
	fd = open(buf_str(&tp), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EACCES || errno == EPERM || errno == EROFS)) {
		/* compact in place: only ever shorter, so no X-UIDL: added */
		buf_free(&tp);
		if (write_kept(b, b->rfd, 0, 1, &end) < 0 || ftruncate(b->rfd, end) < 0 ||
		    fsync(b->rfd) < 0) {
			buf_printf(err, "rewrite %s in place: %s", b->path, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (fd < 0) {
		buf_printf(err, "create %s: %s", buf_str(&tp), strerror(errno));
		buf_free(&tp);
		return -1;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	(void)fchmod(fd, st.st_mode & 07777);
	if (geteuid() == 0 || st.st_gid != getegid())
		(void)!fchown(fd, st.st_uid, st.st_gid);
	if (fcntl(fd, F_SETLK, &fl) < 0 || write_kept(b, fd, 1, 0, &end) < 0 ||
	    fsync(fd) < 0 || rename(buf_str(&tp), b->path) < 0) {
		buf_printf(err, "rewrite %s: %s", b->path, strerror(errno));
		unlink(buf_str(&tp));
		close(fd);
		buf_free(&tp);
		return -1;
	}
	if (fsync_parent(b->path) < 0)
		msg_warn("fsync the folder of %s: %s", b->path, strerror(errno));
	/* keep the new file locked until the dotlock goes (mstore_mbox_close) */
	if (b->rfd >= 0 && b->map) {
		munmap(b->map, b->maplen);
		b->map = NULL;
	}
	close(b->rfd);
	b->rfd = fd;
	buf_free(&tp);
	return 0;
}

void
mstore_mbox_close(struct mstore *b)
{
	if (b->map)
		munmap(b->map, b->maplen);
	b->map = NULL;
	if (b->mb_open)
		mbox_close(&b->mb);
	b->mb_open = 0;
	if (b->rfd >= 0)
		close(b->rfd);
	b->rfd = -1;
}
