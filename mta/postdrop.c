/*
 * postdrop.c: the small setgid-hermodrop helper behind sendmail and
 * mailq for users who may not write maildrop/ or reach public/.
 *
 *   postdrop [-C dir]              store the queue file on stdin
 *   postdrop [-C dir] -p [--json]  copy the showq listing to stdout
 *
 * It is the only privileged part of the sendmail command, so it trusts
 * nothing it is given:
 * - When it runs setgid for a caller other than root and the caller
 *   names a configuration (-C or HERMOD_CONFIG), it gives the group up
 *   for good BEFORE reading that configuration (DESIGN.md, Interfaces):
 *   a configuration of the caller's choosing then reaches only what the
 *   caller could reach anyway.  The one exception is a configuration
 *   that only root can have made: when the real path of the folder and
 *   every folder above it, and its hermod.conf, belong to root and are
 *   writable by nobody else (sticky folders like /tmp excepted), the
 *   caller cannot have chosen its content, so the group is kept (this
 *   is how users reach a privileged instance made with hermod init DIR).
 * - The environment is cleared except for a few harmless variables.
 * - The input is bounded (message_size_limit plus room for the
 *   envelope) and must be a complete, well-formed queue file (qf_parse)
 *   before anything is stored; pickup validates it again as hostile.
 * - The stored file is owned by the caller's real uid, which is what
 *   pickup reports as the sender's identity.
 * Exit status: 0 stored; 75 nothing stored (temporary); 65 the input is
 * not a queue file; 64 usage.
 */
#include "conf.h"
#include "flow.h"
#include "log.h"
#include "proto.h"
#include "queue_file.h"
#include "sendmail_store.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

/* A sanitizer build: LeakSanitizer stops the process with ptrace at exit,
 * which a setgid (hence not dumpable) process does not allow; it would
 * turn every run into exit 1.  Leaks are checked in the runs that are
 * not setgid. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HERMOD_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define HERMOD_ASAN 1
#endif
#ifdef HERMOD_ASAN
#include <sys/prctl.h>
int __lsan_is_turned_off(void);
int
__lsan_is_turned_off(void)
{
	return prctl(PR_GET_DUMPABLE) != 1;
}
#endif

/*
 * 1 if path (already resolved by realpath) is a folder that only root
 * controls: it and every folder above it owned by root and not writable
 * by group or others unless sticky, and path/hermod.conf (if present)
 * a root-owned regular file writable only by root.
 */
static int
root_controlled(const char *path)
{
	struct buf p = BUF_INIT;
	struct stat st;
	const char *s;
	int ok = 1;

	if (path[0] != '/')
		return 0;
	for (s = path; ok; s++) {
		if (*s == '/' || *s == 0) {
			buf_reset(&p);
			buf_add(&p, path, s == path ? 1 : (size_t)(s - path));
			if (lstat(buf_str(&p), &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != 0)
				ok = 0;
			else if ((st.st_mode & 022) && !((st.st_mode & S_ISVTX) && *s))
				ok = 0;	/* a sticky world-writable folder is fine above, not as the config folder */
		}
		if (*s == 0)
			break;
	}
	if (ok) {
		buf_reset(&p);
		buf_printf(&p, "%s/hermod.conf", path);
		if (lstat(buf_str(&p), &st) == 0 &&
		    (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022)))
			ok = 0;
	}
	buf_free(&p);
	return ok;
}

/* Keep only variables that cannot change how a setgid program behaves
 * beyond what it is told. */
static void
clean_env(void)
{
	static const char *keep[] = { "HERMOD_CONFIG", "HERMOD_LOG_STDERR", "TZ", NULL };
	char *saved[3] = { NULL, NULL, NULL };
	size_t i;

	for (i = 0; keep[i]; i++) {
		const char *v = getenv(keep[i]);

		if (v && strlen(v) < 4096)
			saved[i] = xstrdup(v);
	}
	if (clearenv() != 0)
		msg_die(EX_OSERR, "cannot clear the environment");
	for (i = 0; keep[i]; i++)
		if (saved[i]) {
			setenv(keep[i], saved[i], 1);
			free(saved[i]);
		}
	setenv("PATH", "/usr/bin:/bin", 1);
}

int
main(int argc, char **argv)
{
	struct buf err = BUF_INIT, in = BUF_INIT;
	struct qf_envelope env;
	struct maildrop md;
	const char *dir = NULL;
	long long msize, rlim;
	size_t max;
	int i, printq = 0, json = 0;

	sane_fds();
	close_from(3);
	umask(022);
	log_init("postdrop", LOG_FLAG_STDERR);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-C") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "-p"))
			printq = 1;
		else if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "-v"))
			msg_verbose = 1;
		else {
			fprintf(stderr, "usage: postdrop [-C dir] [-p [--json]] (run by sendmail and mailq)\n");
			return EX_USAGE;
		}
	}
	if (getegid() != getgid() && getuid() != 0) {
		const char *env_dir = getenv("HERMOD_CONFIG");
		const char *named = dir && *dir ? dir : env_dir && *env_dir ? env_dir : NULL;
		char *real = named ? realpath(named, NULL) : NULL;

		if (named && (!real || !root_controlled(real))) {
			gid_t g = getgid();

			if (setgid(g) < 0 || setregid(g, g) < 0 || getegid() != g)
				msg_die(EX_OSERR, "cannot give up the group: %s", strerror(errno));
		} else if (real) {
			/* read the checked path, not one the caller may still change */
			dir = real;
			unsetenv("HERMOD_CONFIG");
		}
		clean_env();
	}
	if (conf_load(dir, &err) < 0)
		msg_die(EX_TEMPFAIL, "%s", buf_str(&err));
	if (printq) {
		if (showq_copy(json) < 0)
			msg_die(EX_UNAVAILABLE, "cannot list the queue: the mail system is down (showq: %s)",
			    strerror(errno));
		return EX_OK;
	}

	msize = conf_size("message_size_limit");
	rlim = conf_int("recipient_limit");
	if (rlim < 0)
		rlim = 0;
	/* content plus the envelope: each recipient record is bounded */
	max = msize > 0 ? (size_t)msize + 4 * 1024 * 1024 + (size_t)rlim * 8300 : (size_t)-1;
	for (;;) {
		ssize_t n;

		buf_reserve(&in, 65536);
		n = read(0, in.data + in.len, in.cap - in.len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			msg_die(EX_TEMPFAIL, "read standard input: %s", strerror(errno));
		}
		if (n == 0)
			break;
		in.len += (size_t)n;
		in.data[in.len] = 0;
		if (in.len > max)
			msg_die(EX_UNAVAILABLE, "input larger than message_size_limit allows");
	}
	memset(&env, 0, sizeof(env));
	if (qf_parse(in.data ? in.data : "", in.len, &env, &err) < 0)
		msg_die(EX_DATAERR, "the input is not a complete queue file: %s", buf_str(&err));
	qf_envelope_free(&env);
	buf_reset(&err);
	if (maildrop_open(&md, &err) < 0)
		msg_die(EX_TEMPFAIL, "%s", buf_str(&err));
	if (write_full(md.fd, in.data, in.len) < 0) {
		int e = errno;

		maildrop_abort(&md);
		msg_die(EX_TEMPFAIL, "write maildrop/%s: %s", md.tmp, strerror(e));
	}
	if (maildrop_commit(&md, &err) < 0)
		msg_die(EX_TEMPFAIL, "%s", buf_str(&err));
	maildrop_wake(md.id);
	(void)flow_wait();
	buf_free(&in);
	buf_free(&err);
	return EX_OK;
}
