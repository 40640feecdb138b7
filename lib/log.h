/*
 * log: one line per event, to syslog facility mail as "hermod/NAME[pid]"
 * or, in the foreground (or with HERMOD_LOG_STDERR=1 in the environment),
 * to stderr in the same layout.  Log once, where the decision is made.
 *
 * With maillog_file set, a daemon (lib/service.c) and the master send
 * each line as one datagram to postlogd(8) on $queue_directory/
 * LOG_POSTLOG_SOCKET instead of syslog; postlogd is the one writer of
 * the file.  When postlogd does not take a line within
 * LOG_POSTLOG_WAIT_MS the line is appended to the file directly (if
 * this process can open it), else written to stderr; the socket is then
 * left alone for LOG_POSTLOG_RETRY_MS so that a dead postlogd does not
 * slow every line down.  The wire format and the file layout live here
 * too, so that postlogd and the direct fallback write the same lines.
 */
#ifndef HERMOD_LOG_H
#define HERMOD_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"

#define LOG_FLAG_STDERR	0x01	/* log to stderr instead of syslog */
#define LOG_FLAG_BOTH	0x02	/* syslog and stderr (command-line tools) */

extern int msg_verbose;

void log_init(const char *name, int flags);
const char *log_name(void);
/* 1 when stderr is the log (--foreground, HERMOD_LOG_STDERR=1): then
 * maillog_file is not used. */
int log_stderr_only(void);
void msg_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void msg_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Fatal: an impossible state or a setup error; exits with EX_TEMPFAIL
 * unless msg_fatal_status was changed. */
void msg_fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
void msg_fatal_status(int status, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
/* A command-line tool's last word: to stderr and syslog (whatever
 * log_init said), then exit(status). */
void msg_die(int status, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
/* Panic: a programming error; aborts for a core dump. */
void msg_panic(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

/* ---- maillog_file and postlogd ---------------------------------- */

#define LOG_POSTLOG_SOCKET	"public/postlog"	/* in queue_directory */
#define LOG_POSTLOG_MAX		8192	/* the largest datagram postlogd takes */
#define LOG_IDENT_MAX		64	/* "hermod/NAME" */
#define LOG_POSTLOG_WAIT_MS	250	/* how long a line waits for room */
#define LOG_POSTLOG_RETRY_MS	1000	/* after a failure, direct for so long */
#define LOG_FILE_MODE		0640

/* Send every later line to the postlog socket sock (a full path; the
 * socket is connected now, so call this before any chroot) on behalf
 * of file (maillog_file, absolute).  uid and gid, when not -1, are
 * whom a file that this process creates in the fallback is given to (a
 * root process passes mail_owner, so that postlogd can still open it);
 * a root process without them never creates the file.  Does nothing in
 * stderr mode.  0, or -1 with err set (file is not an absolute path). */
int log_postlog_open(const char *sock, const char *file, uid_t uid, gid_t gid,
    struct buf *err);
/* Back to syslog (or stderr). */
void log_postlog_close(void);
/* Before a chroot: open the fallback file now and keep it, since its
 * path will not resolve inside.  After a rotation it may name the old
 * file: lines land there rather than nowhere. */
void log_postlog_keep_file(void);
/* postlogd: its own lines are handed to fn (ident, text) instead. */
void log_set_sink(void (*fn)(const char *ident, const char *text));
/* Called with the text of a fatal or panic message just before the
 * process ends (a daemon tells the master why it could not go on). */
void log_set_fatal_hook(void (*fn)(const char *text));

/* The datagrams:
 *     "L1 " IDENT " " TEXT	a log line (IDENT as LOG_IDENT_CHARS)
 *     "C1 " COMMAND		a command; postlogd answers "ok ..." or
 *				"error ..." to the sender's address
 * The sender's pid and uid come from the kernel (SCM_CREDENTIALS), not
 * from the datagram.  Returns 0 with the parts set, -1 when malformed. */
#define LOG_DGRAM_LINE	'L'
#define LOG_DGRAM_CMD	'C'
struct log_dgram {
	int kind;		/* LOG_DGRAM_LINE or LOG_DGRAM_CMD */
	const char *ident;	/* LINE: the sender's name, not terminated */
	size_t identlen;
	const char *text;	/* LINE: the text; CMD: the command word */
	size_t textlen;
};
int log_dgram_decode(const char *p, size_t n, struct log_dgram *d);
/* "L1 IDENT TEXT", cut to LOG_POSTLOG_MAX bytes. */
void log_dgram_line(struct buf *out, const char *ident, const char *text);

/* Append text with every control character (C0, DEL, C1) and every byte
 * that is not part of well-formed UTF-8 written as #ooo (octal, as
 * rsyslog does), so that one datagram can never become two lines or
 * move a terminal's cursor. */
void log_sanitize(struct buf *out, const char *p, size_t n);
/* One file line in syslog's layout:
 *     "Dec  3 12:00:00 HOST IDENT[PID]: NOTETEXT\n"
 * with ident and text sanitised; note (may be "") is put before the
 * text unchanged. */
void log_file_line(struct buf *out, const struct tm *tm, const char *host,
    const char *ident, size_t identlen, long pid, const char *note,
    const char *text, size_t textlen);
/* The short host name (up to the first dot), for file lines. */
const char *log_hostname(void);
/* Open path for appending: no symbolic link (O_NOFOLLOW), a regular
 * file with one link, owned by this user (or, for root, by uid or
 * root); created LOG_FILE_MODE when missing and create is set (given to
 * uid:gid when uid is not -1).  The descriptor, or -1 with err set. */
int log_file_open(const char *path, int create, uid_t uid, gid_t gid, struct buf *err);

#endif
