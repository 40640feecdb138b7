/*
 * mstore_maildir.c: the Maildir back end of mstore.h (for popd, the
 * RFC 1939 maildrop).
 *
 * Open: flock(DIR/.hermod-pop3.lock) without waiting (held: MSTORE_INUSE),
 * then every file of new/ moves to cur/ as "BASE,W=SIZE:2," (W= is the
 * size as sent, read by later sessions instead of the file, as Dovecot
 * does), then cur/ is listed once: files delivered later wait for the
 * next session.  Messages are ordered by their unique name (delivery
 * time first).  UIDL = the unique part of the file name (up to the
 * first ',' or ':'), which never changes while the message exists;
 * a name that is not a valid UIDL is hashed.  UPDATE unlinks the
 * deleted files and fsyncs cur/.
 */
#include "mstore.h"
#include "maildir.h"
#include "mstore_index.h"
#include "quota.h"
#include "util.h"

#include <dirent.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAILDIR_MAX_MSGS	1000000
#define MAILDIR_MAX_MSG_SIZE	(1024LL * 1024 * 1024)

static int
read_at(int dirfd, const char *name, struct buf *out, struct buf *err)
{
	struct stat st;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	ssize_t r;

	if (fd < 0) {
		buf_printf(err, "open %s: %s", name, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > MAILDIR_MAX_MSG_SIZE) {
		buf_printf(err, "%s: not a regular file or too large", name);
		close(fd);
		return -1;
	}
	buf_reserve(out, (size_t)st.st_size + 1);
	for (;;) {
		buf_reserve(out, 65536);
		r = read(fd, out->data + out->len, out->cap - out->len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			buf_printf(err, "read %s: %s", name, strerror(errno));
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		out->len += (size_t)r;
		if (out->len > MAILDIR_MAX_MSG_SIZE) {
			buf_printf(err, "%s: too large", name);
			close(fd);
			return -1;
		}
	}
	out->data[out->len] = 0;
	close(fd);
	return 0;
}

/* ",W=123" before the ':' of a cur/ name; 0 with the value, -1 none */
static int
name_wsize(const char *name, size_t *out)
{
	const char *colon = strchr(name, ':');
	const char *p = name;
	size_t lim = colon ? (size_t)(colon - name) : strlen(name);

	while ((p = memmem(p, lim - (size_t)(p - name), ",W=", 3)) != NULL) {
		unsigned long long v = 0;
		const char *q = p + 3;

		if (*q < '0' || *q > '9')
			return -1;
		while (*q >= '0' && *q <= '9' && v < (1ULL << 40))
			v = v * 10 + (unsigned long long)(*q++ - '0');
		if (*q && *q != ',' && *q != ':')
			return -1;
		*out = (size_t)v;
		return 0;
	}
	return -1;
}

static char *
unique_part(const char *name)
{
	size_t n = strcspn(name, ",:");

	return xstrndup(name, n);
}

static int
cmp_msg(const void *a, const void *b)
{
	const struct mstore_msg *x = a, *y = b;

	return strverscmp(x->uidl, y->uidl);
}

static int
scan(struct mstore *b, const char *sub, int move, struct buf *err)
{
	int fd = openat(b->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct buf data = BUF_INIT, nm = BUF_INIT, e2 = BUF_INIT;
	size_t cap = b->n;
	struct dirent *de;
	DIR *d;

	if (fd < 0 || !(d = fdopendir(fd))) {
		buf_printf(err, "%s%s: %s", b->path, sub, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		struct mstore_msg *m;
		size_t ws;
		int have_w;

		if (de->d_name[0] == '.')
			continue;
		if (b->n >= MAILDIR_MAX_MSGS)
			break;
		buf_reset(&nm);
		buf_printf(&nm, "%s/%s", sub, de->d_name);
		have_w = name_wsize(de->d_name, &ws) == 0;
		if (!have_w) {
			buf_reset(&data);
			buf_reset(&e2);
			if (read_at(b->dirfd, buf_str(&nm), &data, &e2) < 0) {
				msg_warn("%s%s: skipped: %s", b->path, buf_str(&nm), buf_str(&e2));
				continue;
			}
			ws = mstore_wire_size(data.data ? data.data : "", data.len);
		}
		if (move && !strchr(de->d_name, ':')) {
			struct buf to = BUF_INIT;

			if (have_w)
				buf_printf(&to, "cur/%s:2,", de->d_name);
			else
				buf_printf(&to, "cur/%s,W=%zu:2,", de->d_name, ws);
			if (renameat(b->dirfd, buf_str(&nm), b->dirfd, buf_str(&to)) == 0) {
				buf_reset(&nm);
				buf_add(&nm, to.data, to.len);
			} else
				msg_warn("%s%s: rename to cur/: %s", b->path, buf_str(&nm), strerror(errno));
			buf_free(&to);
		}
		if (b->n == cap) {
			cap = cap ? cap * 2 : 64;
			b->msgs = xreallocarray(b->msgs, cap, sizeof(*b->msgs));
		}
		m = &b->msgs[b->n++];
		memset(m, 0, sizeof(*m));
		m->name = buf_steal(&nm);
		m->uidl = unique_part(strchr(m->name, '/') + 1);
		m->size = ws;
	}
	closedir(d);
	buf_free(&data);
	buf_free(&nm);
	buf_free(&e2);
	return 0;
}

int
mstore_maildir_open(struct mstore *b, struct buf *err)
{
	struct buf lp = BUF_INIT;
	size_t i;

	if (maildir_create(b->path) < 0) {
		buf_printf(err, "maildir %s: %s", b->path, strerror(errno));
		return MSTORE_ERR;
	}
	if ((b->dirfd = open(b->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		buf_printf(err, "maildir %s: %s", b->path, strerror(errno));
		return MSTORE_ERR;
	}
	b->lockfd = openat(b->dirfd, ".hermod-pop3.lock",
	    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (b->lockfd < 0) {
		buf_printf(err, "lock file %s.hermod-pop3.lock: %s", b->path, strerror(errno));
		buf_free(&lp);
		return MSTORE_ERR;
	}
	if (flock(b->lockfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK) {
			buf_printf(err, "maildir %s is in use by another session", b->path);
			return MSTORE_INUSE;
		}
		buf_printf(err, "lock %s: %s", b->path, strerror(errno));
		return MSTORE_ERR;
	}
	if (scan(b, "new", 1, err) < 0 || scan(b, "cur", 0, err) < 0)
		return MSTORE_ERR;
	/* (the scan of new/ moved files to cur/) */
	mstore_index_undescribe(b->path);
	/* a message moved from new/ was listed twice when cur/ was read
	 * after the rename: drop the second entry */
	if (b->n > 1)
		qsort(b->msgs, b->n, sizeof(*b->msgs), cmp_msg);
	for (i = 1; i < b->n; ) {
		if (!strcmp(b->msgs[i].name, b->msgs[i - 1].name)) {
			free(b->msgs[i].name);
			free(b->msgs[i].uidl);
			memmove(&b->msgs[i], &b->msgs[i + 1], (b->n - i - 1) * sizeof(*b->msgs));
			b->n--;
		} else
			i++;
	}
	for (i = 0; i < b->n; i++)
		if (!mstore_uidl_valid(b->msgs[i].uidl) || strlen(b->msgs[i].uidl) > 60) {
			struct buf u = BUF_INIT;

			mstore_hash_uidl(b->msgs[i].uidl, strlen(b->msgs[i].uidl), &u);
			free(b->msgs[i].uidl);
			b->msgs[i].uidl = buf_steal(&u);
		}
	mstore_uniq_uidls(b);
	buf_free(&lp);
	return MSTORE_OK;
}

int
mstore_maildir_get(struct mstore *b, size_t i, struct buf *tmp, struct buf *err)
{
	return read_at(b->dirfd, b->msgs[i].name, tmp, err);
}

int
mstore_maildir_update(struct mstore *b, struct buf *err)
{
	size_t i;
	long long bytes = 0, removed = 0;
	int rc = 0;

	for (i = 0; i < b->n; i++) {
		long long sz;
		struct stat st;

		if (!b->msgs[i].deleted)
			continue;
		if ((sz = quota_name_size(b->msgs[i].name)) < 0)
			sz = fstatat(b->dirfd, b->msgs[i].name, &st, 0) == 0 ? (long long)st.st_size : 0;
		if (unlinkat(b->dirfd, b->msgs[i].name, 0) < 0) {
			if (errno != ENOENT) {
				buf_printf(err, "unlink %s%s: %s", b->path, b->msgs[i].name, strerror(errno));
				rc = -1;
			}
			continue;
		}
		bytes += sz;
		removed++;
	}
	/* the POP3 mailbox is the Maildir of INBOX, the quota root */
	quota_add(b->path, -bytes, -removed);
	mstore_index_undescribe(b->path);
	{
		int cfd = openat(b->dirfd, "cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (cfd < 0 || fsync(cfd) < 0) {
			if (!err->len)
				buf_printf(err, "fsync %scur: %s", b->path, strerror(errno));
			rc = -1;
		}
		if (cfd >= 0)
			close(cfd);
	}
	return rc;
}

void
mstore_maildir_close(struct mstore *b)
{
	if (b->lockfd >= 0)
		close(b->lockfd);
	if (b->dirfd >= 0)
		close(b->dirfd);
	b->lockfd = b->dirfd = -1;
}
