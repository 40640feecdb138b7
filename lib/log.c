/*
 * log.c: logging to syslog (facility mail) or stderr.  Messages are
 * formatted into a bounded stack buffer with vsnprintf (truncation is
 * acceptable for a log line; a format string never comes from input).
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sysexits.h>
#include <unistd.h>

int msg_verbose;

static char log_ident[64] = "hermod";
static int log_flags = LOG_FLAG_STDERR;
static int log_opened;

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
	if (!(flags & LOG_FLAG_STDERR) || (flags & LOG_FLAG_BOTH)) {
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

static void __attribute__((format(printf, 3, 0)))
vlog(int prio, const char *label, const char *fmt, va_list ap)
{
	char line[4096];
	int saved = errno;

	if (vsnprintf(line, sizeof(line), fmt, ap) < 0)
		snprintf(line, sizeof(line), "(bad log format)");
	if (log_opened)
		syslog(prio, "%s%s", label, line);
	if ((log_flags & LOG_FLAG_STDERR) || (log_flags & LOG_FLAG_BOTH)) {
		if (log_flags & LOG_FLAG_BOTH)
			fprintf(stderr, "%s: %s%s\n", log_ident, label, line);
		else
			fprintf(stderr, "%s[%ld]: %s%s\n", log_ident,
			    (long)getpid(), label, line);
	}
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
msg_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, "fatal: ", fmt, ap);
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
	abort();
}
