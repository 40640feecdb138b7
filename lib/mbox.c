/*
 * mbox.c: append one message to an mbox file (see mbox.h).
 *
 * Invariants: the mailbox is never opened through a symbolic link
 * (O_NOFOLLOW), never written unless both locks are held (or the dotlock
 * is impossible in that directory), never left with a partial message
 * (ftruncate back to the size seen under the lock on any failure), and
 * success is reported only after fsync.  Lock waits start at 10 ms and
 * double up to lock_delay, for a total of lock_attempts * lock_delay,
 * so a briefly held lock costs milliseconds, not a whole delay.
 */
#include "mbox.h"
#include "conf.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MBOX_WBUF	65536

void
mbox_opts_from_conf(struct mbox_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->owner = (uid_t)-1;
	o->create_uid = (uid_t)-1;
	o->create_gid = (gid_t)-1;
	o->dotlock = 1;
	o->lock_attempts = (int)conf_int("deliver_lock_attempts");
	o->lock_delay_ms = (long)conf_time("deliver_lock_delay") * 1000;
	o->stale_lock_sec = (long)conf_time("stale_lock_time");
}

static void
sleep_ms(long ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The waiting policy shared by both locks. */
struct lock_wait {
	int64_t deadline;	/* mono_ms */
	long step, max;
};

static void
wait_init(struct lock_wait *w, const struct mbox_opts *o)
{
	long attempts = o->lock_attempts > 0 ? o->lock_attempts : 1;
	long delay = o->lock_delay_ms > 0 ? o->lock_delay_ms : 1;

	w->deadline = mono_ms() + attempts * delay;
	w->step = delay < 10 ? delay : 10;
	w->max = delay;
}

/* Sleep before the next try; 0 when the time is up. */
static int
wait_more(struct lock_wait *w)
{
	int64_t now = mono_ms();
	long s = w->step;

	if (now >= w->deadline)
		return 0;
	if (now + s > w->deadline)
		s = (long)(w->deadline - now);
	sleep_ms(s);
	if (w->step < w->max)
		w->step = w->step * 2 > w->max ? w->max : w->step * 2;
	return 1;
}

static int
dotlock(struct mbox *mb, const struct mbox_opts *o, struct buf *err)
{
	struct buf lp = BUF_INIT;
	struct lock_wait w;
	int fd, saved;

	buf_printf(&lp, "%s.lock", mb->path);
	wait_init(&w, o);
	for (;;) {
		fd = open(buf_str(&lp), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0) {
			struct buf pid = BUF_INIT;

			buf_printf(&pid, "%ld\n", (long)getpid());
			(void)write_full(fd, pid.data, pid.len);
			buf_free(&pid);
			close(fd);
			mb->lockpath = buf_steal(&lp);
			return 0;
		}
		if (errno == EACCES || errno == EPERM || errno == EROFS) {
			/* Not ours to create here: the fcntl lock must do. */
			msg_debug("%s: no dotlock (%s), using the fcntl lock only",
			    buf_str(&lp), strerror(errno));
			buf_free(&lp);
			return 0;
		}
		if (errno != EEXIST) {
			saved = errno;
			buf_printf(err, "create dotlock %s: %s", buf_str(&lp), strerror(saved));
			buf_free(&lp);
			errno = saved;
			return -1;
		}
		{
			struct stat st;

			if (lstat(buf_str(&lp), &st) == 0 && o->stale_lock_sec > 0 &&
			    time(NULL) - st.st_mtime > o->stale_lock_sec) {
				if (unlink(buf_str(&lp)) == 0) {
					msg_warn("%s: removed a stale dotlock (older than %lds)",
					    buf_str(&lp), o->stale_lock_sec);
					continue;
				}
			}
		}
		if (!wait_more(&w)) {
			buf_printf(err, "mailbox %s is locked (dotlock %s)", mb->path, buf_str(&lp));
			buf_free(&lp);
			errno = EAGAIN;
			return -1;
		}
	}
}

static int
fcntl_lock(struct mbox *mb, const struct mbox_opts *o, struct buf *err)
{
	struct lock_wait w;
	struct flock fl;
	int saved;

	wait_init(&w, o);
	for (;;) {
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(mb->fd, F_SETLK, &fl) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EACCES) {
			saved = errno;
			buf_printf(err, "lock %s: %s", mb->path, strerror(saved));
			errno = saved;
			return -1;
		}
		if (!wait_more(&w)) {
			buf_printf(err, "mailbox %s is locked by another process", mb->path);
			errno = EAGAIN;
			return -1;
		}
	}
}

static int
fail(struct mbox *mb, struct buf *err, int e, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
fail(struct mbox *mb, struct buf *err, int e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(err, fmt, ap);
	va_end(ap);
	mbox_close(mb);
	errno = e;
	return -1;
}

int
mbox_open(struct mbox *mb, const char *path, const struct mbox_opts *o, struct buf *err)
{
	struct stat st;
	int created = 0, tries;

	mb->fd = -1;
	mb->lockpath = NULL;
	mb->start = 0;
	mb->path = xstrdup(path);
	if (o->dotlock && dotlock(mb, o, err) < 0) {
		int saved = errno;

		mbox_close(mb);
		errno = saved;
		return -1;
	}
	for (tries = 0; ; tries++) {
		mb->fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (mb->fd >= 0)
			break;
		if (errno == ELOOP)
			return fail(mb, err, ELOOP, "mailbox %s is a symbolic link: refused", path);
		if (errno != ENOENT || tries > 10)
			return fail(mb, err, errno, "open mailbox %s: %s", path, strerror(errno));
		mb->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
		if (mb->fd >= 0) {
			created = 1;
			break;
		}
		if (errno != EEXIST)
			return fail(mb, err, errno, "create mailbox %s: %s", path, strerror(errno));
	}
	if (set_nonblock(mb->fd, 0) < 0 || fstat(mb->fd, &st) < 0)
		return fail(mb, err, errno, "fstat mailbox %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(mb, err, EINVAL, "mailbox %s is not a regular file: refused", path);
	if (st.st_nlink != 1)
		return fail(mb, err, EMLINK, "mailbox %s has %lu hard links: refused", path,
		    (unsigned long)st.st_nlink);
	if (created && o->create_uid != (uid_t)-1) {
		if (fchown(mb->fd, o->create_uid, o->create_gid) < 0) {
			int saved = errno;

			unlink(path);
			return fail(mb, err, saved, "chown new mailbox %s: %s", path, strerror(saved));
		}
		st.st_uid = o->create_uid;
	}
	if (o->owner != (uid_t)-1 && st.st_uid != o->owner)
		return fail(mb, err, EPERM, "mailbox %s is owned by uid %lu, not %lu: refused", path,
		    (unsigned long)st.st_uid, (unsigned long)o->owner);
	if (fcntl_lock(mb, o, err) < 0) {
		int saved = errno;

		mbox_close(mb);
		errno = saved;
		return -1;
	}
	if (fstat(mb->fd, &st) < 0)
		return fail(mb, err, errno, "fstat mailbox %s: %s", path, strerror(errno));
	mb->start = st.st_size;
	return 0;
}

void
mbox_close(struct mbox *mb)
{
	if (mb->fd >= 0)
		close(mb->fd);	/* releases the fcntl lock */
	mb->fd = -1;
	if (mb->lockpath) {
		if (unlink(mb->lockpath) < 0 && errno != ENOENT)
			msg_warn("remove dotlock %s: %s", mb->lockpath, strerror(errno));
		free(mb->lockpath);
		mb->lockpath = NULL;
	}
	free(mb->path);
	mb->path = NULL;
}

/* The quoting writer: ">From " quoting across piece boundaries. */
struct qw {
	int fd;			/* -1: collect in to */
	struct buf *to;
	struct buf out;
	int bol;		/* at the beginning of a line */
	size_t held;		/* bytes of "From " matched at bol, not yet written */
	char last;		/* last byte emitted */
	int error;		/* errno of the first write failure */
};

static void
qw_emit(struct qw *q, const char *p, size_t n)
{
	if (n == 0 || q->error)
		return;
	q->last = p[n - 1];
	if (q->fd < 0) {
		buf_add(q->to, p, n);
		return;
	}
	buf_add(&q->out, p, n);
	if (q->out.len >= MBOX_WBUF) {
		if (write_full(q->fd, q->out.data, q->out.len) < 0)
			q->error = errno;
		buf_reset(&q->out);
	}
}

static int
qw_sink(void *ctx, const char *p, size_t n)
{
	static const char from[] = "From ";
	struct qw *q = ctx;
	size_t i = 0;

	while (i < n) {
		if (q->bol) {
			if (p[i] == from[q->held]) {
				q->held++;
				i++;
				if (q->held == 5) {
					qw_emit(q, ">From ", 6);
					q->held = 0;
					q->bol = 0;
				}
				continue;
			}
			qw_emit(q, from, q->held);
			q->held = 0;
			q->bol = 0;
			continue;	/* the same byte, now not at bol */
		}
		{
			const char *nl = memchr(p + i, '\n', n - i);
			size_t m = nl ? (size_t)(nl - (p + i)) + 1 : n - i;

			qw_emit(q, p + i, m);
			i += m;
			q->bol = nl != NULL;
		}
	}
	return q->error ? -1 : 0;
}

/* Write prefix + message + separator through the writer. 0 ok, -1 errno. */
static int
qw_message(struct qw *q, const struct mail_source *src)
{
	int r;

	if (src->prefix_len)
		qw_sink(q, src->prefix, src->prefix_len);
	if (src->copy) {
		r = src->copy(src->ctx, qw_sink, q);
		if (r != 0 && !q->error) {
			q->error = r < 0 && errno ? errno : EIO;
		}
	}
	if (q->held) {
		qw_emit(q, "From ", q->held);
		q->held = 0;
	}
	if (q->last != '\n')
		qw_emit(q, "\n", 1);
	qw_emit(q, "\n", 1);
	if (q->fd >= 0 && !q->error && q->out.len) {
		if (write_full(q->fd, q->out.data, q->out.len) < 0)
			q->error = errno;
		buf_reset(&q->out);
	}
	if (q->error) {
		errno = q->error;
		return -1;
	}
	return 0;
}

void
mbox_quote_to_buf(const struct mail_source *src, struct buf *out)
{
	struct qw q;

	memset(&q, 0, sizeof(q));
	q.fd = -1;
	q.to = out;
	q.bol = 1;
	q.last = '\n';
	(void)qw_message(&q, src);
}

/* "From sender Thu Nov 21 06:34:27 2026\n" */
static void
from_line(struct buf *b, const char *sender, time_t when)
{
	char date[64];
	struct tm tm;
	const char *s;

	buf_adds(b, "From ");
	if (!sender || !*sender)
		buf_adds(b, "MAILER-DAEMON");
	for (s = sender ? sender : ""; *s; s++)
		buf_addc(b, (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') ? '_' : *s);
	if (!localtime_r(&when, &tm) || !strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm))
		snprintf(date, sizeof(date), "Thu Jan  1 00:00:00 1970");
	buf_printf(b, " %s\n", date);
}

int
mbox_append(struct mbox *mb, const char *sender, time_t when,
    const struct mail_source *src, struct buf *err)
{
	struct qw q;
	int saved;

	memset(&q, 0, sizeof(q));
	q.fd = mb->fd;
	from_line(&q.out, sender, when);
	q.last = '\n';
	q.bol = 1;
	if (qw_message(&q, src) < 0) {
		saved = errno;
		buf_printf(err, "write mailbox %s: %s", mb->path, strerror(saved));
		goto undo;
	}
	if (fsync(mb->fd) < 0) {
		saved = errno;
		buf_printf(err, "fsync mailbox %s: %s", mb->path, strerror(saved));
		goto undo;
	}
	buf_free(&q.out);
	return 0;
undo:
	buf_free(&q.out);
	if (ftruncate(mb->fd, mb->start) < 0)
		msg_error("%s: cannot truncate back to %lld bytes after a failed delivery: %s",
		    mb->path, (long long)mb->start, strerror(errno));
	else
		(void)fsync(mb->fd);
	errno = saved;
	return -1;
}

int
mbox_deliver(const char *path, const struct mbox_opts *o, const char *sender,
    time_t when, const struct mail_source *src, struct buf *err)
{
	struct mbox mb;
	int rc, saved;

	if (mbox_open(&mb, path, o, err) < 0)
		return -1;
	rc = mbox_append(&mb, sender, when, src, err);
	saved = errno;
	mbox_close(&mb);
	errno = saved;
	return rc;
}
