/*
 * log: one line per event, to syslog facility mail as "hermod/NAME[pid]"
 * or, in the foreground (or with HERMOD_LOG_STDERR=1 in the environment),
 * to stderr in the same layout.  Log once, where the decision is made.
 */
#ifndef HERMOD_LOG_H
#define HERMOD_LOG_H

#include <stdarg.h>

#define LOG_FLAG_STDERR	0x01	/* log to stderr instead of syslog */
#define LOG_FLAG_BOTH	0x02	/* syslog and stderr (command-line tools) */

extern int msg_verbose;

void log_init(const char *name, int flags);
const char *log_name(void);
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

#endif
