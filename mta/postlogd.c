/*
 * postlogd.c: the one writer of maillog_file (postlogd(8)).
 *
 *   postlogd -C DIR -s NAME        (started by hermod-master)
 *
 * The master hands it the datagram socket $queue_directory/public/
 * postlog, with SO_PASSCRED set, on SERVICE_LISTEN_FD.  Each datagram
 * "L1 IDENT TEXT" (lib/log.h) becomes one line
 *     Mmm dd hh:mm:ss HOST IDENT[PID]: TEXT
 * appended to maillog_file with one write(), in the order the datagrams
 * arrive, so lines of all daemons are in one order and each sender's in
 * its own.  Invariants:
 *   - PID is what the kernel says (SCM_CREDENTIALS), never a claim;
 *   - a sender that is neither root nor postlogd's own user (mail_owner,
 *     or the owner of a rootless instance) gets "(uid N) " before its
 *     text, so that nobody else can write a line that looks like a
 *     daemon's;
 *   - control characters and bad UTF-8 are written as #ooo: one datagram
 *     is at most one line;
 *   - a datagram that is too long, malformed or without credentials is
 *     dropped (counted, reported at most once a minute); descriptors
 *     passed along (SCM_RIGHTS) are closed.  Nothing from a sender can
 *     stop the loop.
 *
 * "C1 reopen" (hermod log reopen) from root or postlogd's user reopens
 * the file and answers "ok ..." or "error ..." to the sender; lines that
 * arrived before it are in the old file, lines after in the new.  SIGHUP
 * reopens too.  A failed reopen keeps the old file, so lines go on there
 * rather than nowhere.  SIGTERM (the master stops postlogd after every
 * other process): write what is queued, then exit.
 */
#include "conf.h"
#include "service.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_BATCH		64	/* datagrams between looks at signals */
#define DRAIN_AT_EXIT		100000	/* at most, after SIGTERM */
#define DROP_REPORT_MS		60000
#define OPEN_RETRY_MS		1000

static int logfd = -1;
static char *logfile;		/* maillog_file; "" when not set */
static int64_t open_retry_at;
static uid_t my_uid;
static long dropped;
static const char *drop_reason;
static int64_t drop_reported_at = -DROP_REPORT_MS;
static volatile sig_atomic_t got_hup, got_term;

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else
		got_term = 1;
}

/* mkdir the folder of the file when it is missing (postlogd can when
 * it owns the parent, as in a rootless instance; otherwise the master
 * has made it) */
static void
make_folder(const char *path)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	struct stat st;

	if (slash && slash != dir) {
		*slash = 0;
		if (stat(dir, &st) < 0 && errno == ENOENT)
			(void)mkdir_p(dir, 0750);	/* the open says why not */
	}
	free(dir);
}

static int
log_reopen(struct buf *err)
{
	int fd;

	if (!*logfile) {
		buf_adds(err, "maillog_file is not set");
		return -1;
	}
	make_folder(logfile);
	if ((fd = log_file_open(logfile, 1, (uid_t)-1, (gid_t)-1, err)) < 0)
		return -1;
	if (logfd >= 0)
		close(logfd);
	logfd = fd;
	return 0;
}

/* One whole line, or if the disk fails half-way, a line ended there so
 * that the next one starts clean. */
static void
write_line(const char *p, size_t n)
{
	struct buf err = BUF_INIT;
	size_t off = 0;
	ssize_t w;

	if (logfd < 0 && *logfile && mono_ms() >= open_retry_at && log_reopen(&err) < 0) {
		open_retry_at = mono_ms() + OPEN_RETRY_MS;
		fprintf(stderr, "%s[%ld]: error: %s\n", log_name(), (long)getpid(), buf_str(&err));
	}
	buf_free(&err);
	if (logfd < 0) {
		(void)!fwrite(p, 1, n, stderr);
		return;
	}
	while (off < n) {
		w = write(logfd, p + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	if (off < n) {
		int saved = errno;

		if (off > 0)
			(void)!write(logfd, "\n", 1);
		fprintf(stderr, "%s[%ld]: error: write %s: %s\n", log_name(), (long)getpid(),
		    logfile, strerror(saved));
		(void)!fwrite(p, 1, n, stderr);
	}
}

static void
put_line(const char *ident, size_t identlen, long pid, const char *note,
    const char *text, size_t textlen)
{
	struct buf line = BUF_INIT;
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	log_file_line(&line, &tm, log_hostname(), ident, identlen, pid, note, text, textlen);
	write_line(line.data, line.len);
	buf_free(&line);
}

/* postlogd's own lines: straight into the file it writes */
static void
own_line(const char *ident, const char *text)
{
	put_line(ident, strlen(ident), (long)getpid(), "", text, strlen(text));
}

static void
drop(const char *why)
{
	dropped++;
	drop_reason = why;
}

static void
report_drops(void)
{
	int64_t now = mono_ms();

	if (!dropped || now - drop_reported_at < DROP_REPORT_MS)
		return;
	msg_warn("dropped %ld datagram%s (the last one: %s)", dropped, dropped == 1 ? "" : "s",
	    drop_reason);
	dropped = 0;
	drop_reported_at = now;
}

static void __attribute__((format(printf, 4, 5)))
reply(int sfd, const struct sockaddr_un *to, socklen_t tolen, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	/* an unnamed sender cannot be answered; one that went away or does
	 * not read is not waited for */
	if (tolen <= (socklen_t)sizeof(sa_family_t))
		return;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	(void)sendto(sfd, b.data, b.len, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)to, tolen);
	buf_free(&b);
}

static void
command(int sfd, const struct log_dgram *d, const struct ucred *cr,
    const struct sockaddr_un *from, socklen_t fromlen)
{
	struct buf err = BUF_INIT;

	if (cr->uid != 0 && cr->uid != my_uid) {
		msg_warn("command from uid %lu pid %ld refused", (unsigned long)cr->uid, (long)cr->pid);
		reply(sfd, from, fromlen, "error only root or the mail_owner may do that");
		return;
	}
	if (d->textlen == 6 && !memcmp(d->text, "reopen", 6)) {
		if (log_reopen(&err) < 0) {
			msg_error("reopen: %s%s", buf_str(&err), logfd >= 0 ? "; still writing the old file" : "");
			reply(sfd, from, fromlen, "error %s", buf_str(&err));
		} else
			reply(sfd, from, fromlen, "ok reopened %s", logfile);
		buf_free(&err);
		return;
	}
	reply(sfd, from, fromlen, "error unknown command");
}

static void
datagram(int sfd, const char *p, size_t n, const struct ucred *cr,
    const struct sockaddr_un *from, socklen_t fromlen)
{
	struct log_dgram d;
	char note[48];

	if (log_dgram_decode(p, n, &d) < 0) {
		drop("malformed");
		return;
	}
	if (d.kind == LOG_DGRAM_CMD) {
		command(sfd, &d, cr, from, fromlen);
		return;
	}
	if (!*logfile) {
		drop("maillog_file is not set");
		return;
	}
	note[0] = 0;
	if (cr->uid != 0 && cr->uid != my_uid &&
	    snprintf(note, sizeof(note), "(uid %lu) ", (unsigned long)cr->uid) >= (int)sizeof(note))
		note[0] = 0;	/* cannot happen: 20 digits fit */
	if (d.textlen > 0 && d.text[d.textlen - 1] == '\n')
		d.textlen--;
	put_line(d.ident, d.identlen, (long)cr->pid, note, d.text, d.textlen);
}

/* Read up to max datagrams; returns when none is waiting. */
static void
drain(int sfd, long max)
{
	static char dg[LOG_POSTLOG_MAX + 1];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(32 * sizeof(int))];
	} ctl;
	long i;

	for (i = 0; i < max; i++) {
		struct sockaddr_un from;
		struct iovec iov = { dg, sizeof(dg) };
		struct msghdr mh;
		struct cmsghdr *c;
		struct ucred cr;
		int have_cred = 0;
		ssize_t n;

		memset(&mh, 0, sizeof(mh));
		memset(&from, 0, sizeof(from));
		mh.msg_name = &from;
		mh.msg_namelen = sizeof(from);
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = ctl.b;
		mh.msg_controllen = sizeof(ctl.b);
		n = recvmsg(sfd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				msg_error("recvmsg: %s", strerror(errno));
			return;
		}
		for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET)
				continue;
			if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(cr))) {
				memcpy(&cr, CMSG_DATA(c), sizeof(cr));
				have_cred = 1;
			} else if (c->cmsg_type == SCM_RIGHTS) {
				size_t k, nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

				for (k = 0; k < nfd; k++) {
					int fd;

					memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
					close(fd);
				}
			}
		}
		if ((mh.msg_flags & MSG_TRUNC) || (size_t)n > LOG_POSTLOG_MAX)
			drop("longer than 8192 bytes");
		else if (!have_cred)
			drop("no sender credentials");
		else
			datagram(sfd, dg, (size_t)n, &cr, &from, mh.msg_namelen);
	}
}

int
main(int argc, char **argv)
{
	struct buf err = BUF_INIT;
	struct sigaction sa;
	sigset_t block, orig;
	socklen_t len;
	int sfd, type = 0, one = 1;

	sane_fds();
	if (service_init("postlogd", argc, argv) < argc)
		msg_fatal("usage: postlogd [-C dir] [-s name] [-o name=value] [-v]");
	/* postlogd is the reader: its own lines must not wait for itself */
	log_postlog_close();
	if ((sfd = service_listen_fd()) < 0)
		msg_fatal("no socket: postlogd is started by hermod-master (a unix-dgram service)");
	len = sizeof(type);
	if (getsockopt(sfd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_DGRAM)
		msg_fatal("the master.conf service of postlogd must be of type unix-dgram");
	/* the master has set it already; without it there is no sender pid */
	if (setsockopt(sfd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
		msg_fatal("setsockopt SO_PASSCRED: %s", strerror(errno));
	priv_drop_to_owner();
	my_uid = geteuid();
	umask(027);
	tzset();
	(void)log_hostname();
	logfile = xstrdup(conf_str("maillog_file"));
	if (*logfile && *logfile != '/')
		msg_fatal("maillog_file %s: not an absolute path", logfile);
	/* in the foreground every daemon logs to stderr: the file is only
	 * opened if a line comes after all */
	if (*logfile && !log_stderr_only()) {
		log_set_sink(own_line);
		if (log_reopen(&err) < 0) {
			open_retry_at = mono_ms() + OPEN_RETRY_MS;
			msg_error("%s", buf_str(&err));
		}
	}
	buf_free(&err);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	/* blocked except inside ppoll: a signal is never missed between
	 * the flag test and the wait */
	if (sigprocmask(SIG_BLOCK, &block, &orig) < 0 || sigaction(SIGHUP, &sa, NULL) < 0 ||
	    sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
		msg_fatal("signals: %s", strerror(errno));
	service_idle();
	for (;;) {
		struct pollfd p = { .fd = sfd, .events = POLLIN };

		if (ppoll(&p, 1, NULL, &orig) < 0 && errno != EINTR)
			msg_fatal("poll: %s", strerror(errno));
		if (got_hup) {
			got_hup = 0;
			buf_reset(&err);
			if (*logfile && log_reopen(&err) < 0)
				msg_error("reopen: %s", buf_str(&err));
		}
		drain(sfd, got_term ? DRAIN_AT_EXIT : DRAIN_BATCH);
		report_drops();
		if (got_term) {
			buf_free(&err);
			exit(0);
		}
	}
}
