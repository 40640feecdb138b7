/*
 * log.c: logging to syslog (facility mail), stderr, or postlogd.
 * Messages are formatted into a bounded stack buffer with vsnprintf
 * (truncation is acceptable for a log line; a format string never comes
 * from input).
 *
 * The postlog client keeps one connected datagram socket.  A connected
 * socket survives a chroot and a postlogd restart: the master owns the
 * bound socket, so datagrams sent while postlogd is away wait in it.
 * Only when its queue is full for LOG_POSTLOG_WAIT_MS (SO_SNDTIMEO), or
 * the master is gone, does a line take the fallback (the file itself,
 * else stderr); such a line may then land before lines still queued.
 * Both descriptors (the socket, the file kept across a chroot) are
 * checked (fstat) before each use, because a child that closed every
 * descriptor and opened others must not send log lines into an
 * unrelated file or connection.  A mutex keeps the
 * state consistent for threaded daemons (smtpd's commit thread); a
 * per-thread depth counter sends a message logged while logging (out
 * of memory, say) to stderr instead of deadlocking.
 */
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <syslog.h>
#include <sysexits.h>
#include <unistd.h>

int msg_verbose;

static char log_ident[LOG_IDENT_MAX] = "hermod";
static int log_flags = LOG_FLAG_STDERR;
static int log_opened;
static void (*log_sink)(const char *, const char *);
static void (*log_fatal_hook)(const char *);

static struct {
	char *sock;		/* NULL: not in use */
	char *file;
	uid_t uid;
	gid_t gid;
	int fd;			/* connected socket, -1 when not */
	dev_t dev;		/* what fd was when we opened it */
	ino_t ino;
	int keepfd;		/* fallback file held across a chroot */
	dev_t keepdev;
	ino_t keepino;
	int64_t down_until;	/* mono_ms: skip the socket until then */
} pl = { NULL, NULL, (uid_t)-1, (gid_t)-1, -1, 0, 0, -1, 0, 0, 0 };
static pthread_mutex_t pl_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int log_depth;

void
log_init(const char *name, int flags)
{
	const char *e = getenv("HERMOD_LOG_STDERR");
	int n;

	n = snprintf(log_ident, sizeof(log_ident), "hermod/%s", name);
	if (n < 0 || (size_t)n >= sizeof(log_ident))
		log_ident[sizeof(log_ident) - 1] = 0;
	if (e && *e == '1')
		flags = (flags & ~LOG_FLAG_BOTH) | LOG_FLAG_STDERR;
	log_flags = flags;
	/* with postlogd in use, syslog stays closed */
	if (!pl.sock && (!(flags & LOG_FLAG_STDERR) || (flags & LOG_FLAG_BOTH))) {
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
		log_opened = 1;
	}
	if ((e = getenv("HERMOD_VERBOSE")) && *e == '1')
		msg_verbose = 1;
}

const char *
log_name(void)
{
	return log_ident;
}

int
log_stderr_only(void)
{
	return (log_flags & LOG_FLAG_STDERR) && !(log_flags & LOG_FLAG_BOTH);
}

/* ---------------------------------------------------------------- */
/* the wire format and the file layout */

int
log_dgram_decode(const char *p, size_t n, struct log_dgram *d)
{
	size_t i;

	memset(d, 0, sizeof(*d));
	if (n < 4 || (p[0] != LOG_DGRAM_LINE && p[0] != LOG_DGRAM_CMD) || p[1] != '1' || p[2] != ' ')
		return -1;
	d->kind = p[0];
	p += 3;
	n -= 3;
	if (d->kind == LOG_DGRAM_CMD) {
		for (i = 0; i < n; i++)
			if (p[i] < 'a' || p[i] > 'z')
				return -1;
		if (n > 32)
			return -1;
		d->text = p;
		d->textlen = n;
		return 0;
	}
	for (i = 0; i < n && p[i] != ' '; i++) {
		unsigned char c = (unsigned char)p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '_' || c == '-' || c == '/'))
			return -1;
	}
	if (i == 0 || i >= LOG_IDENT_MAX || i == n)
		return -1;
	d->ident = p;
	d->identlen = i;
	d->text = p + i + 1;
	d->textlen = n - i - 1;
	return 0;
}

void
log_dgram_line(struct buf *out, const char *ident, const char *text)
{
	buf_printf(out, "%c1 %s %s", LOG_DGRAM_LINE, ident, text);
	if (out->len > LOG_POSTLOG_MAX)
		buf_truncate(out, LOG_POSTLOG_MAX);
}

void
log_sanitize(struct buf *out, const char *p, size_t n)
{
	const unsigned char *s = (const unsigned char *)p;
	size_t i = 0, k;

	while (i < n) {
		if (s[i] >= 0x20 && s[i] < 0x7f) {
			for (k = i; k < n && s[k] >= 0x20 && s[k] < 0x7f; k++)
				;
			buf_add(out, s + i, k - i);
			i = k;
		} else if (s[i] >= 0x80 && (k = utf8_char_len(s + i, n - i)) > 0) {
			buf_add(out, s + i, k);
			i += k;
		} else {
			buf_printf(out, "#%03o", s[i]);
			i++;
		}
	}
}

void
log_file_line(struct buf *out, const struct tm *tm, const char *host, const char *ident,
    size_t identlen, long pid, const char *note, const char *text, size_t textlen)
{
	static const char mon[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

	/* month names fixed: the layout must not follow the locale */
	buf_printf(out, "%s %2d %02d:%02d:%02d %s ", mon[tm->tm_mon >= 0 && tm->tm_mon < 12 ? tm->tm_mon : 0],
	    tm->tm_mday, tm->tm_hour, tm->tm_min, tm->tm_sec, host);
	log_sanitize(out, ident, identlen);
	buf_printf(out, "[%ld]: %s", pid, note);
	log_sanitize(out, text, textlen);
	buf_addc(out, '\n');
}

const char *
log_hostname(void)
{
	static char host[256];
	size_t i;

	if (host[0])
		return host;
	if (gethostname(host, sizeof(host) - 1) < 0)
		host[0] = 0;
	host[sizeof(host) - 1] = 0;
	for (i = 0; host[i] && host[i] != '.'; i++) {
		char c = host[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
			break;
	}
	if (host[i] && host[i] != '.')
		i = 0;		/* a strange name: not in every line */
	host[i] = 0;
	if (!host[0])
		snprintf(host, sizeof(host), "localhost");
	return host;
}

int
log_file_open(const char *path, int create, uid_t uid, gid_t gid, struct buf *err)
{
	int flags = O_WRONLY | O_APPEND | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC | O_NONBLOCK;
	int fd, created = 0, saved;
	struct stat st;

	fd = open(path, flags);
	if (fd < 0 && errno == ENOENT && create) {
		/* O_EXCL: only the creator sets the owner; a race loser opens */
		fd = open(path, flags | O_CREAT | O_EXCL, LOG_FILE_MODE);
		if (fd >= 0)
			created = 1;
		else if (errno == EEXIST)
			fd = open(path, flags);
	}
	if (fd < 0) {
		if (err)
			buf_printf(err, "open %s: %s", path, errno == ELOOP ?
			    "is a symbolic link" : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		if (err)
			buf_printf(err, "fstat %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		if (err)
			buf_printf(err, "%s: %s", path, !S_ISREG(st.st_mode) ?
			    "not a regular file" : "has more than one link");
		goto fail;
	}
	/* root must not append to a file that someone else may have
	 * pointed somewhere (mail_owner owns the folder) */
	if (!created && st.st_uid != geteuid() && geteuid() == 0 &&
	    (uid == (uid_t)-1 || st.st_uid != uid)) {
		if (err)
			buf_printf(err, "%s: owned by uid %ld", path, (long)st.st_uid);
		goto fail;
	}
	if (created && ((uid != (uid_t)-1 && fchown(fd, uid, gid) < 0) || fchmod(fd, LOG_FILE_MODE) < 0)) {
		if (err)
			buf_printf(err, "set owner and mode of %s: %s", path, strerror(errno));
		goto fail;
	}
	if (set_nonblock(fd, 0) < 0) {
		if (err)
			buf_printf(err, "fcntl %s: %s", path, strerror(errno));
		goto fail;
	}
	return fd;
fail:
	saved = errno;
	close(fd);
	if (created)
		(void)unlink(path);
	errno = saved;
	return -1;
}

/* ---------------------------------------------------------------- */
/* the postlog client */

static void
pl_connect(void)
{
	struct sockaddr_un sun;
	struct timeval tv = { LOG_POSTLOG_WAIT_MS / 1000, (LOG_POSTLOG_WAIT_MS % 1000) * 1000 };
	struct stat st;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(pl.sock) >= sizeof(sun.sun_path))
		return;
	memcpy(sun.sun_path, pl.sock, strlen(pl.sock));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || fstat(fd, &st) < 0) {
		close(fd);
		return;
	}
	pl.fd = fd;
	pl.dev = st.st_dev;
	pl.ino = st.st_ino;
}

/* Is fd still what we opened?  (Not closed and its number reused.) */
static int
fd_is(int fd, dev_t dev, ino_t ino)
{
	struct stat st;

	return fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

static int
pl_fd_ours(void)
{
	return fd_is(pl.fd, pl.dev, pl.ino);
}

static void
pl_forget_keepfd(void)
{
	if (fd_is(pl.keepfd, pl.keepdev, pl.keepino))
		close(pl.keepfd);
	pl.keepfd = -1;
}

static void
pl_forget_fd(void)
{
	if (pl_fd_ours())
		close(pl.fd);
	pl.fd = -1;
}

int
log_postlog_open(const char *sock, const char *file, uid_t uid, gid_t gid, struct buf *err)
{
	char *nsock, *nfile;

	if (*file != '/') {
		buf_printf(err, "maillog_file %s: not an absolute path", file);
		return -1;
	}
	if (log_stderr_only())
		return 0;
	/* allocated before the lock: a failure here logs */
	nsock = xstrdup(sock);
	nfile = xstrdup(file);
	pthread_mutex_lock(&pl_lock);
	pl_forget_fd();
	free(pl.sock);
	free(pl.file);
	pl.sock = nsock;
	pl.file = nfile;
	pl.uid = uid;
	pl.gid = gid;
	pl.down_until = 0;
	pl_forget_keepfd();
	pl_connect();
	pthread_mutex_unlock(&pl_lock);
	if (log_opened) {
		closelog();
		log_opened = 0;
	}
	return 0;
}

void
log_postlog_close(void)
{
	pthread_mutex_lock(&pl_lock);
	pl_forget_fd();
	pl_forget_keepfd();
	free(pl.sock);
	free(pl.file);
	pl.sock = pl.file = NULL;
	pthread_mutex_unlock(&pl_lock);
}

/* A root process without an owner to give it to never creates the
 * file: postlogd (mail_owner) could not open a root-owned one. */
static int
pl_may_create(void)
{
	return geteuid() != 0 || pl.uid != (uid_t)-1;
}

void
log_postlog_keep_file(void)
{
	struct stat st;

	pthread_mutex_lock(&pl_lock);
	if (pl.file && pl.keepfd < 0 &&
	    (pl.keepfd = log_file_open(pl.file, pl_may_create(), pl.uid, pl.gid, NULL)) >= 0) {
		if (fstat(pl.keepfd, &st) == 0) {
			pl.keepdev = st.st_dev;
			pl.keepino = st.st_ino;
		} else {
			close(pl.keepfd);
			pl.keepfd = -1;
		}
	}
	pthread_mutex_unlock(&pl_lock);
}

void
log_set_sink(void (*fn)(const char *, const char *))
{
	log_sink = fn;
}

/* The line did not go to postlogd: append it ourselves, else say it
 * on stderr (unless vlog prints it there anyway). */
static void
pl_fallback(const char *text)
{
	struct buf line = BUF_INIT;
	struct tm tm;
	time_t now = time(NULL);
	int fd, written = 0;

	if (pl.keepfd >= 0 && !fd_is(pl.keepfd, pl.keepdev, pl.keepino))
		pl.keepfd = -1;	/* closed by someone else: not ours to close */
	fd = pl.keepfd;
	if (fd < 0)
		fd = log_file_open(pl.file, pl_may_create(), pl.uid, pl.gid, NULL);
	if (fd >= 0) {
		localtime_r(&now, &tm);
		log_file_line(&line, &tm, log_hostname(), log_ident, strlen(log_ident),
		    (long)getpid(), "", text, strlen(text));
		/* one write: O_APPEND keeps a line whole beside postlogd's */
		written = write(fd, line.data, line.len) == (ssize_t)line.len;
		if (fd != pl.keepfd)
			close(fd);
	}
	if (!written && !(log_flags & (LOG_FLAG_STDERR | LOG_FLAG_BOTH)))
		fprintf(stderr, "%s[%ld]: %s\n", log_ident, (long)getpid(), text);
	buf_free(&line);
}

static void
pl_send(const char *text)
{
	struct buf dg = BUF_INIT;
	int64_t now;

	pthread_mutex_lock(&pl_lock);
	now = mono_ms();
	if (pl.fd >= 0 && !pl_fd_ours())
		pl.fd = -1;	/* closed by someone else: not ours to close */
	if (now >= pl.down_until) {
		if (pl.fd < 0)
			pl_connect();
		if (pl.fd >= 0) {
			log_dgram_line(&dg, log_ident, text);
			if (send(pl.fd, dg.data, dg.len, MSG_NOSIGNAL) == (ssize_t)dg.len) {
				pthread_mutex_unlock(&pl_lock);
				buf_free(&dg);
				return;
			}
			/* EAGAIN: postlogd away and its queue full;
			 * ECONNREFUSED: the master (which owns the socket)
			 * is gone */
			if (errno != EAGAIN && errno != EINTR)
				pl_forget_fd();
		}
		pl.down_until = now + LOG_POSTLOG_RETRY_MS;
	}
	pl_fallback(text);
	pthread_mutex_unlock(&pl_lock);
	buf_free(&dg);
}

/* ---------------------------------------------------------------- */

static void __attribute__((format(printf, 3, 0)))
vlog(int prio, const char *label, const char *fmt, va_list ap)
{
	char line[4096], text[4096 + 32];
	int saved = errno;

	if (vsnprintf(line, sizeof(line), fmt, ap) < 0)
		snprintf(line, sizeof(line), "(bad log format)");
	if (snprintf(text, sizeof(text), "%s%s", label, line) < 0)
		text[0] = 0;
	if (log_depth > 0) {
		/* logging while logging: the simplest place that works */
		fprintf(stderr, "%s[%ld]: %s\n", log_ident, (long)getpid(), text);
		errno = saved;
		return;
	}
	log_depth++;
	if (log_sink && !log_stderr_only())
		log_sink(log_ident, text);
	else if (pl.sock && !log_stderr_only())
		pl_send(text);
	else if (log_opened)
		syslog(prio, "%s", text);
	if ((log_flags & LOG_FLAG_STDERR) || (log_flags & LOG_FLAG_BOTH)) {
		if (log_flags & LOG_FLAG_BOTH)
			fprintf(stderr, "%s: %s\n", log_ident, text);
		else
			fprintf(stderr, "%s[%ld]: %s\n", log_ident, (long)getpid(), text);
	}
	log_depth--;
	errno = saved;
}

#define LOGFN(fn, prio, label) \
void fn(const char *fmt, ...) \
{ \
	va_list ap; \
	va_start(ap, fmt); \
	vlog(prio, label, fmt, ap); \
	va_end(ap); \
}

LOGFN(msg_info, LOG_INFO, "")
LOGFN(msg_warn, LOG_WARNING, "warning: ")
LOGFN(msg_error, LOG_ERR, "error: ")

void
msg_debug(const char *fmt, ...)
{
	va_list ap;

	if (!msg_verbose)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, "debug: ", fmt, ap);
	va_end(ap);
}

void
log_set_fatal_hook(void (*fn)(const char *))
{
	log_fatal_hook = fn;
}

/* The last words, for the fatal hook: formatted again, since vlog's
 * line is gone. */
static void __attribute__((format(printf, 1, 0)))
fatal_hook(const char *fmt, va_list ap)
{
	char text[512];
	void (*fn)(const char *) = log_fatal_hook;

	if (!fn)
		return;
	log_fatal_hook = NULL;	/* once, and never recursively */
	if (vsnprintf(text, sizeof(text), fmt, ap) < 0)
		snprintf(text, sizeof(text), "(bad log format)");
	fn(text);
}

void
msg_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, "fatal: ", fmt, ap);
	va_end(ap);
	va_start(ap, fmt);
	fatal_hook(fmt, ap);
	va_end(ap);
	exit(EX_TEMPFAIL);
}

void
msg_fatal_status(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, "fatal: ", fmt, ap);
	va_end(ap);
	va_start(ap, fmt);
	fatal_hook(fmt, ap);
	va_end(ap);
	exit(status);
}

void
msg_die(int status, const char *fmt, ...)
{
	char name[sizeof(log_ident)];
	const char *n = log_ident;
	va_list ap;

	if (!strncmp(n, "hermod/", 7))
		n += 7;
	snprintf(name, sizeof(name), "%s", n);
	log_init(name, LOG_FLAG_BOTH);
	va_start(ap, fmt);
	vlog(LOG_CRIT, "fatal: ", fmt, ap);
	va_end(ap);
	exit(status);
}

void
msg_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, "panic: ", fmt, ap);
	va_end(ap);
	va_start(ap, fmt);
	fatal_hook(fmt, ap);
	va_end(ap);
	abort();
}
