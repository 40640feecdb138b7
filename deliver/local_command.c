/*
 * local_command.c: delivery to "|command" destinations.
 *
 * The command is the administrator's (aliases) or the user's (.forward,
 * :include:) text, run as execve("/bin/sh", {"sh", "-c", command}) --
 * never text built from envelope data.  The child: a new session (so a
 * time-out kills the whole process group), stdin = Return-Path: +
 * Delivered-To: + the message (from a memfd, so no pipe deadlock),
 * stdout and stderr into one pipe, every other descriptor closed, umask
 * 077, a clean environment (PATH=/usr/bin:/bin HOME USER LOGNAME
 * SHELL=/bin/sh SENDER RECIPIENT LOCAL DOMAIN EXTENSION), and in a
 * privileged instance the leaf's uid/gid (never root: default_privs).
 * The first command_output_limit bytes of output go into the status.
 *
 * Exit status (sysexits.h, as sendmail and Postfix map it): 0 sent;
 * 75 EX_TEMPFAIL, 71 EX_OSERR, a signal, or the time limit: deferred;
 * 67 EX_NOUSER 5.1.1; 68 EX_NOHOST 5.1.2; 65 EX_DATAERR 5.6.0; 73
 * EX_CANTCREAT 5.2.0; 76 EX_PROTOCOL 5.5.0; 77 EX_NOPERM 5.7.0; 72, 78
 * 5.3.5; any other non-zero status bounced 5.3.0.
 */
#include "local.h"
#include "conf.h"
#include "service.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

struct fdsink {
	int fd;
	struct buf out;
	int error;
};

static int
fd_sink(void *ctx, const char *p, size_t n)
{
	struct fdsink *s = ctx;

	if (s->error)
		return -1;
	buf_add(&s->out, p, n);
	if (s->out.len >= 65536) {
		if (write_full(s->fd, s->out.data, s->out.len) < 0) {
			s->error = errno;
			return -1;
		}
		buf_reset(&s->out);
	}
	return 0;
}

/* The message for stdin, in an anonymous file at offset 0. */
static int
message_fd(struct lmsg *m, struct leaf *lf, struct buf *why)
{
	struct fdsink s;
	int r;

	memset(&s, 0, sizeof(s));
	if ((s.fd = memfd_create("hermod-local", MFD_CLOEXEC)) < 0) {
		buf_printf(why, "memfd_create: %s", strerror(errno));
		return -1;
	}
	local_prefix(&s.out, lf->sender, lf->addr);
	r = lmsg_copy(m, fd_sink, &s);
	if (r == 0 && !s.error && s.out.len && write_full(s.fd, s.out.data, s.out.len) < 0)
		s.error = errno;
	if (r != 0 && !s.error)
		s.error = errno ? errno : EIO;
	buf_free(&s.out);
	if (s.error || lseek(s.fd, 0, SEEK_SET) < 0) {
		buf_printf(why, "cannot prepare the message for the command: %s",
		    strerror(s.error ? s.error : errno));
		close(s.fd);
		return -1;
	}
	return s.fd;
}

static void
add_env(char ***envp, size_t *n, const char *name, const char *value)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "%s=%s", name, value ? value : "");
	*envp = xreallocarray(*envp, *n + 2, sizeof(char *));
	(*envp)[(*n)++] = buf_steal(&b);
	(*envp)[*n] = NULL;
}

/* In the child, after fork: never returns. */
static void __attribute__((noreturn))
child(struct leaf *lf, int in, int out)
{
	char **envp = NULL;
	size_t n = 0;
	char *argv[4];
	sigset_t all;
	const char *home = lf->pv.home && *lf->pv.home ? lf->pv.home : "/";
	const char *user = lf->pv.user ? lf->pv.user : "";
	int sig;

	setsid();
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(EX_OSERR);
	close_from(3);
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	umask(077);
	if (geteuid() == 0 && conf_privileged()) {
		if (!lf->pv.set || lf->pv.uid == 0) {
			fprintf(stderr, "refusing to run a command as root\n");
			_exit(EX_TEMPFAIL);
		}
		if (local_priv_drop(&lf->pv) < 0) {
			fprintf(stderr, "cannot switch to uid %ld: %s\n", (long)lf->pv.uid, strerror(errno));
			_exit(EX_TEMPFAIL);
		}
	}
	if (chdir(home) < 0 && chdir("/") < 0)
		_exit(EX_OSERR);
	add_env(&envp, &n, "PATH", "/usr/bin:/bin");
	add_env(&envp, &n, "HOME", home);
	add_env(&envp, &n, "USER", user);
	add_env(&envp, &n, "LOGNAME", user);
	add_env(&envp, &n, "SHELL", "/bin/sh");
	add_env(&envp, &n, "SENDER", lf->sender);
	add_env(&envp, &n, "RECIPIENT", lf->env_rcpt);
	add_env(&envp, &n, "LOCAL", lf->env_local);
	add_env(&envp, &n, "DOMAIN", lf->env_domain);
	add_env(&envp, &n, "EXTENSION", lf->env_ext);
	argv[0] = (char *)"sh";
	argv[1] = (char *)"-c";
	argv[2] = lf->target;
	argv[3] = NULL;
	execve("/bin/sh", argv, envp);
	fprintf(stderr, "execve /bin/sh: %s\n", strerror(errno));
	_exit(EX_TEMPFAIL);
}

static void
map_exit(struct lstatus *st, struct leaf *lf, int code, const struct buf *output)
{
	static const struct {
		int code;
		const char *dsn;
		const char *what;
	} table[] = {
		{ EX_USAGE, "5.3.0", "command line usage error" },
		{ EX_DATAERR, "5.6.0", "data format error" },
		{ EX_NOINPUT, "5.3.0", "cannot open input" },
		{ EX_NOUSER, "5.1.1", "user unknown" },
		{ EX_NOHOST, "5.1.2", "host name unknown" },
		{ EX_UNAVAILABLE, "5.3.0", "service unavailable" },
		{ EX_SOFTWARE, "5.3.0", "internal software error" },
		{ EX_OSERR, "4.3.0", "system resource problem" },
		{ EX_OSFILE, "5.3.5", "critical OS file missing" },
		{ EX_CANTCREAT, "5.2.0", "cannot create output file" },
		{ EX_IOERR, "5.3.0", "input/output error" },
		{ EX_TEMPFAIL, "4.3.0", "temporary failure" },
		{ EX_PROTOCOL, "5.5.0", "remote error in protocol" },
		{ EX_NOPERM, "5.7.0", "permission denied" },
		{ EX_CONFIG, "5.3.5", "local configuration error" },
	};
	const char *dsn = "5.3.0", *what = NULL;
	size_t i;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].code == code) {
			dsn = table[i].dsn;
			what = table[i].what;
		}
	lstatus_set(st, dsn[0] == '4' ? LS_DEFER : LS_BOUNCE, dsn,
	    "Command died with status %d%s%s%s: \"%s\"%s%s", code,
	    what ? " (" : "", what ? what : "", what ? ")" : "", lf->target,
	    output->len ? ". Command output: " : "", buf_str(output));
}

void
local_deliver_command(struct lmsg *m, struct leaf *lf, struct lstatus *st)
{
	struct buf why = BUF_INIT, output = BUF_INIT, clean = BUF_INIT;
	long long limit = conf_time("command_time_limit");
	size_t outmax = (size_t)conf_size("command_output_limit");
	int64_t deadline;
	int in, p[2], wstatus = 0, exited = 0, timedout = 0, eof = 0, pidfd;
	int64_t drain_until = 0;
	pid_t pid;

	if (lf->pv.set && geteuid() == 0)
		(void)local_priv_prepare(&lf->pv);
	if ((in = message_fd(m, lf, &why)) < 0) {
		lstatus_set(st, LS_DEFER, "4.3.0", "%s", buf_str(&why));
		goto out;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		lstatus_set(st, LS_DEFER, "4.3.0", "pipe: %s", strerror(errno));
		close(in);
		goto out;
	}
	if ((pid = fork()) < 0) {
		lstatus_set(st, LS_DEFER, "4.3.0", "fork: %s", strerror(errno));
		close(in);
		close(p[0]);
		close(p[1]);
		goto out;
	}
	if (pid == 0)
		child(lf, in, p[1]);
	close(in);
	close(p[1]);
	set_nonblock(p[0], 1);
	deadline = mono_ms() + (limit > 0 ? limit : 1) * 1000;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	for (;;) {
		struct pollfd pf[2];
		int64_t now = mono_ms(), timeout;
		nfds_t nf = 0;
		int r;

		if (exited && eof)
			break;
		if (now >= deadline) {
			timedout = 1;
			break;
		}
		timeout = deadline - now;
		if (exited) {
			/* a background process keeps the output open: drain briefly */
			if (!drain_until)
				drain_until = now + 50;
			if (now >= drain_until)
				break;
			if (timeout > drain_until - now)
				timeout = drain_until - now;
		} else if (pidfd < 0 && timeout > 10)
			timeout = 10;
		if (!eof) {
			pf[nf].fd = p[0];
			pf[nf].events = POLLIN;
			pf[nf++].revents = 0;
		}
		if (!exited && pidfd >= 0) {
			pf[nf].fd = pidfd;
			pf[nf].events = POLLIN;
			pf[nf++].revents = 0;
		}
		r = poll(pf, nf, (int)timeout);
		if (r < 0 && errno != EINTR) {
			msg_warn("poll: %s", strerror(errno));
			timedout = 1;
			break;
		}
		if (r > 0 && !eof && pf[0].revents) {
			char tmp[4096];
			ssize_t n = read(p[0], tmp, sizeof(tmp));

			if (n > 0) {
				if (output.len < outmax)
					buf_add(&output, tmp, (size_t)n > outmax - output.len ?
					    outmax - output.len : (size_t)n);
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR))
				eof = 1;
		}
		if (!exited && waitpid(pid, &wstatus, WNOHANG) == pid)
			exited = 1;
	}
	if (pidfd >= 0)
		close(pidfd);
	close(p[0]);
	if (timedout) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		if (!exited)
			while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
				;
		lstatus_set(st, LS_DEFER, "4.3.0", "command time limit exceeded: \"%s\"", lf->target);
		goto out;
	}
	local_clean_text(&clean, buf_str(&output), output.len);
	str_trim(clean.data ? clean.data : (char *)"");
	clean.len = strlen(buf_str(&clean));
	if (WIFSIGNALED(wstatus))
		lstatus_set(st, LS_DEFER, "4.3.0", "Command died with signal %d: \"%s\"%s%s",
		    WTERMSIG(wstatus), lf->target, clean.len ? ". Command output: " : "", buf_str(&clean));
	else if (WEXITSTATUS(wstatus) == 0)
		lstatus_set(st, LS_SENT, "2.0.0", "delivered to command: %s", lf->target);
	else
		map_exit(st, lf, WEXITSTATUS(wstatus), &clean);
out:
	buf_free(&why);
	buf_free(&output);
	buf_free(&clean);
}
