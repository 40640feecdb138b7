/*
 * maildir.c: deliver one message into a Maildir (see maildir.h).
 *
 * Invariants: a file appears in new/ only complete and fsynced (it is
 * linked there from tmp/ after fsync), success is reported only after
 * new/ itself is fsynced, and a name is never reused (link() fails on an
 * existing name instead of replacing it).  Cost per delivery: one fsync
 * of the file and one of new/.
 */
#include "maildir.h"
#include "mstore_index.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAILDIR_WBUF	65536

static const char *
hostname(void)
{
	static char *host;
	char h[256];
	struct buf b = BUF_INIT;
	const char *s;

	if (host)
		return host;
	if (gethostname(h, sizeof(h)) < 0 || !h[0])
		snprintf(h, sizeof(h), "localhost");
	h[sizeof(h) - 1] = 0;
	for (s = h; *s; s++) {
		if (*s == '/')
			buf_adds(&b, "\\057");
		else if (*s == ':')
			buf_adds(&b, "\\072");
		else if (*s == ',')
			buf_adds(&b, "\\054");
		else
			buf_addc(&b, *s);
	}
	host = buf_steal(&b);
	return host;
}

void
maildir_unique_name(struct buf *out)
{
	static unsigned long counter;
	static pid_t counter_pid;
	int64_t us = now_us();
	pid_t pid = getpid();

	if (pid != counter_pid) {
		counter_pid = pid;	/* a forked child starts its own count */
		counter = 0;
	}
	buf_printf(out, "%lld.M%06lldP%ldQ%lu.%s", (long long)(us / 1000000),
	    (long long)(us % 1000000), (long)pid, ++counter, hostname());
}

int
maildir_create(const char *dir)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	struct buf p = BUF_INIT;
	struct stat st;
	int made = 0, made_top = 0, i, saved;

	if (stat(dir, &st) < 0) {
		if (errno != ENOENT || mkdir_p(dir, 0700) < 0)
			return -1;
		made_top = 1;
	}
	for (i = 0; i < 3; i++) {
		buf_reset(&p);
		buf_printf(&p, "%s/%s", dir, sub[i]);
		if (mkdir(buf_str(&p), 0700) == 0)
			made = 1;
		else if (errno != EEXIST)
			goto fail;
	}
	if ((made && fsync_dir(dir) < 0) || (made_top && fsync_parent(dir) < 0))
		goto fail;
	buf_free(&p);
	return 0;
fail:
	saved = errno;
	buf_free(&p);
	errno = saved;
	return -1;
}

struct writer {
	int fd;
	struct buf out;
	off_t size;
	int error;
};

static int
w_sink(void *ctx, const char *p, size_t n)
{
	struct writer *w = ctx;

	if (w->error)
		return -1;
	w->size += (off_t)n;
	if (w->out.len + n < MAILDIR_WBUF) {
		buf_add(&w->out, p, n);
		return 0;
	}
	if ((w->out.len && write_full(w->fd, w->out.data, w->out.len) < 0) ||
	    write_full(w->fd, p, n) < 0) {
		w->error = errno;
		return -1;
	}
	buf_reset(&w->out);
	return 0;
}

int
maildir_deliver(const char *dirarg, const struct mail_source *src,
    struct buf *path_out, struct buf *err)
{
	struct buf dir = BUF_INIT, name = BUF_INIT, tmp = BUF_INIT, fin = BUF_INIT;
	struct writer w;
	int tries, created = 0, saved, r, linked;

	memset(&w, 0, sizeof(w));
	w.fd = -1;
	buf_adds(&dir, dirarg);
	while (dir.len > 1 && dir.data[dir.len - 1] == '/')
		buf_truncate(&dir, dir.len - 1);
	for (tries = 0; ; tries++) {
		buf_reset(&name);
		maildir_unique_name(&name);
		buf_reset(&tmp);
		buf_printf(&tmp, "%s/tmp/%s", buf_str(&dir), buf_str(&name));
		w.fd = open(buf_str(&tmp), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
		if (w.fd >= 0)
			break;
		saved = errno;
		if (saved == ENOENT && !created) {
			created = 1;
			if (maildir_create(buf_str(&dir)) < 0) {
				saved = errno;
				buf_printf(err, "create maildir %s: %s", buf_str(&dir), strerror(saved));
				goto fail;
			}
			continue;
		}
		if (saved != EEXIST || tries > 10) {
			buf_printf(err, "create %s: %s", buf_str(&tmp), strerror(saved));
			goto fail;
		}
	}
	if (src->prefix_len)
		w_sink(&w, src->prefix, src->prefix_len);
	if (src->copy && !w.error) {
		r = src->copy(src->ctx, w_sink, &w);
		if (r != 0 && !w.error)
			w.error = r < 0 && errno ? errno : EIO;
	}
	if (!w.error && w.out.len && write_full(w.fd, w.out.data, w.out.len) < 0)
		w.error = errno;
	if (!w.error && fsync(w.fd) < 0)
		w.error = errno;
	if (close(w.fd) < 0 && !w.error)
		w.error = errno;
	w.fd = -1;
	if (w.error) {
		saved = w.error;
		buf_printf(err, "write %s: %s", buf_str(&tmp), strerror(saved));
		unlink(buf_str(&tmp));
		goto fail;
	}
	for (tries = 0; ; tries++) {
		buf_reset(&fin);
		buf_printf(&fin, "%s/new/%s,S=%lld", buf_str(&dir), buf_str(&name), (long long)w.size);
		/* name is now free to change: tmp keeps the tmp/ path */
		linked = 1;
		if (link(buf_str(&tmp), buf_str(&fin)) == 0)
			break;
		saved = errno;
		if (saved == EEXIST && tries < 10) {
			buf_reset(&name);
			maildir_unique_name(&name);
			continue;
		}
		if (saved == EPERM || saved == ENOSYS || saved == EXDEV || saved == EOPNOTSUPP || saved == EMLINK) {
			/* no hard links here: the unique name makes rename safe */
			linked = 0;
			if (rename(buf_str(&tmp), buf_str(&fin)) == 0)
				break;
			saved = errno;
		}
		buf_printf(err, "link %s to %s: %s", buf_str(&tmp), buf_str(&fin), strerror(saved));
		unlink(buf_str(&tmp));
		goto fail;
	}
	if (!linked)
		buf_reset(&tmp);	/* renamed: nothing left in tmp/ */
	{
		struct buf nd = BUF_INIT;

		buf_printf(&nd, "%s/new", buf_str(&dir));
		if (fsync_dir(buf_str(&nd)) < 0) {
			saved = errno;
			buf_printf(err, "fsync %s: %s", buf_str(&nd), strerror(saved));
			buf_free(&nd);
			unlink(buf_str(&fin));
			if (tmp.len)
				unlink(buf_str(&tmp));
			goto fail;
		}
		buf_free(&nd);
	}
	if (tmp.len && unlink(buf_str(&tmp)) < 0)
		msg_warn("remove %s: %s", buf_str(&tmp), strerror(errno));
	/* IMAP sessions must list new/ again to see it */
	mstore_index_undescribe(buf_str(&dir));
	if (path_out) {
		buf_reset(path_out);
		buf_adds(path_out, buf_str(&fin));
	}
	buf_free(&dir);
	buf_free(&name);
	buf_free(&tmp);
	buf_free(&fin);
	buf_free(&w.out);
	return 0;
fail:
	if (w.fd >= 0)
		close(w.fd);
	buf_free(&dir);
	buf_free(&name);
	buf_free(&tmp);
	buf_free(&fin);
	buf_free(&w.out);
	errno = saved;
	return -1;
}
