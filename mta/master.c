/*
 * master.c: hermod-master, the supervisor of an instance (Postfix
 * master style).
 *
 *   hermod-master [-C DIR] [-f] [-v]
 *
 * It reads hermod.conf and master.conf, makes or repairs the spool
 * (hermod_spool.c), takes an fcntl lock on pid/master.pid (a second
 * master on the same spool is refused), binds every listening socket
 * itself and starts each service as
 *     PROGRAM -C DIR -s NAME [args]
 * with the listener on fd 3, the write end of a per-process status pipe
 * on fd 4 (lib/service.h), every other descriptor closed and a small
 * clean environment (HERMOD_MASTER=1, HERMOD_LOG_STDERR=1 in the
 * foreground).  The program is looked up in the colon-separated
 * $daemon_directory unless master.conf names an absolute path.
 *
 * Supervision: one process of each service runs at all times; another
 * is started whenever none is idle ('B'/'I' bytes on the status pipes),
 * up to the process limit.  A process that dies within
 * QUICK_DEATH_MS of its start without having served a client (or by a
 * crash) is a start-up failure; the first one is restarted at once,
 * then the service is throttled: 1 s, 2 s, 4 s ... up to
 * $service_throttle_time, so a broken service never fork-loops and
 * never affects the others.  A process that ran longer resets the count.
 *
 * A unix-dgram service (postlogd on public/postlog) gets a datagram
 * socket with SO_PASSCRED set, is started before the others and stopped
 * after them.  With maillog_file set the master makes the file (and its
 * folder, for mail_owner) before it detaches, and once detached sends
 * its own lines to postlogd (lib/log.h); the socket it owns outlives a
 * postlogd restart, so lines sent meanwhile wait in it.
 *
 * Signals (all through a self-pipe into one poll() loop): SIGCHLD reaps;
 * SIGHUP re-reads both files (validated first in a child, so a broken
 * file keeps the old configuration), starts new services, stops removed
 * ones and sends SIGTERM to idle processes (busy ones when they become
 * idle) so that they restart with the new configuration; SIGTERM and
 * SIGINT stop every process (SIGTERM, SIGKILL after STOP_GRACE_MS),
 * remove the sockets and the pid file, and exit 0.
 *
 * Without -f the master detaches (fork, setsid) and its first process
 * exits 0 only once the daemon is ready (lock held, sockets bound, pid
 * file written, processes started), or with the daemon's exit status.
 */
#include "config.h"
#include "hermod_spool.h"
#include "conf.h"
#include "service.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define QUICK_DEATH_MS		3000	/* dying sooner is a start-up failure */
#define STOP_GRACE_MS		10000	/* SIGTERM, then SIGKILL */
#define KILL_WAIT_MS		5000	/* after SIGKILL, give up waiting */
#define MAX_SERVICES		1000

struct proc {
	pid_t pid;
	int statfd;		/* read end of its status pipe, -1 at EOF */
	int avail;		/* idle, as far as we know */
	int ever_busy;		/* it took a client once */
	int retiring;		/* we told it to stop */
	int gen;		/* configuration generation it was started with */
	int64_t start_ms;
	char *path;
	struct buf fatal;	/* its last words ("F" on the status pipe) */
	int in_fatal;		/* reading them */
	struct proc *next;
};

struct svc {
	struct master_service c;
	int lfd;		/* listening socket, -1 for none */
	int broken;		/* could not bind: not started until a reload */
	int removed;		/* gone from master.conf: stopping */
	int nproc;		/* live processes, retiring ones included */
	int navail;		/* idle processes that are not retiring */
	int fails;		/* start-up failures in a row */
	char *last_fatal;	/* what the last process that failed said */
	long long trouble_since; /* failing at start-up since (time()), 0: fine */
	int gen;
	int64_t throttle_until;
	struct proc *procs;
	struct svc *next;
};

static struct svc *services;
static char *confdir;
static char *queue_dir;
static struct spool_owner owner;
static int foreground;
static int sigpipe_fds[2] = { -1, -1 };
static int stopping, killed;
static int log_stop_pending;	/* the datagram services stop last */
static int64_t stop_deadline;
static int lockfd = -1;

/* ---------------------------------------------------------------- */

static void
on_signal(int sig)
{
	int saved = errno;
	unsigned char c = (unsigned char)sig;

	(void)!write(sigpipe_fds[1], &c, 1);
	errno = saved;
}

static void
setup_signals(void)
{
	struct sigaction sa;
	static const int sigs[] = { SIGCHLD, SIGHUP, SIGTERM, SIGINT, 0 };
	int i;

	if (pipe2(sigpipe_fds, O_CLOEXEC | O_NONBLOCK) < 0)
		msg_fatal("pipe: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (i = 0; sigs[i]; i++) {
		sa.sa_flags = SA_RESTART | (sigs[i] == SIGCHLD ? SA_NOCLDSTOP : 0);
		if (sigaction(sigs[i], &sa, NULL) < 0)
			msg_fatal("sigaction: %s", strerror(errno));
	}
	signal(SIGPIPE, SIG_IGN);
}

/* ---------------------------------------------------------------- */
/* listening sockets */

static int
is_dgram(const struct svc *s)
{
	return !strcmp(s->c.type, "unix-dgram");
}

static int
is_unix(const struct svc *s)
{
	return !strcmp(s->c.type, "unix") || is_dgram(s);
}

static int
bind_unix(struct svc *s, struct buf *err)
{
	const char *path = s->c.listen;
	struct sockaddr_un sun;
	struct stat st;
	mode_t old, mode;
	int fd, one = 1;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		buf_printf(err, "%s: socket path too long", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	/* we run in queue_directory: relative paths are inside it */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			buf_printf(err, "%s/%s exists and is not a socket", queue_dir, path);
			return -1;
		}
		if (unlink(path) < 0) {
			buf_printf(err, "unlink stale socket %s/%s: %s", queue_dir, path, strerror(errno));
			return -1;
		}
	}
	if ((fd = socket(AF_UNIX, (is_dgram(s) ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0)) < 0) {
		buf_printf(err, "socket: %s", strerror(errno));
		return -1;
	}
	/* a datagram service learns each sender's pid and uid from the
	 * kernel; set here, before the first datagram can arrive */
	if (is_dgram(s) && setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
		buf_printf(err, "setsockopt SO_PASSCRED: %s", strerror(errno));
		close(fd);
		return -1;
	}
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		umask(old);
		buf_printf(err, "bind %s/%s: %s", queue_dir, path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	/* public/ is reachable by local users (its directory mode decides
	 * who); every other socket is for the daemons only */
	mode = !strncmp(path, "public/", 7) ? 0666 : 0600;
	if ((owner.privileged && geteuid() == 0 && lchown(path, owner.uid, owner.gid) < 0) ||
	    chmod(path, mode) < 0) {
		buf_printf(err, "set owner and mode of %s/%s: %s", queue_dir, path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	if (!is_dgram(s) && listen(fd, SOMAXCONN) < 0) {
		buf_printf(err, "listen %s/%s: %s", queue_dir, path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}

/* "host:port", "[v6addr]:port", "*:port" or "port" (on the first of
 * $inet_interfaces; "all" means every address). */
static int
bind_inet(struct svc *s, struct buf *err)
{
	struct addrinfo hints, *res = NULL;
	char *host = NULL, *port, *copy = xstrdup(s->c.listen), *colon;
	char **ifs = NULL;
	int fd = -1, one = 1, r;

	if (copy[0] == '[' && (colon = strstr(copy, "]:")) != NULL) {
		*colon = 0;
		host = copy + 1;
		port = colon + 2;
	} else if ((colon = strrchr(copy, ':')) != NULL) {
		*colon = 0;
		host = copy;
		port = colon + 1;
	} else {
		port = copy;
		ifs = conf_list("inet_interfaces");
		host = ifs[0];
	}
	if (host && (!*host || !strcmp(host, "*") || !strcmp(host, "all")))
		host = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		buf_printf(err, "%s: %s", s->c.listen, gai_strerror(r));
		goto out;
	}
	if ((fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		buf_printf(err, "socket: %s", strerror(errno));
		goto out;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
		buf_printf(err, "bind %s: %s", s->c.listen, strerror(errno));
		close(fd);
		fd = -1;
	}
out:
	if (res)
		freeaddrinfo(res);
	strv_free(ifs);
	free(copy);
	return fd;
}

static int
svc_bind(struct svc *s, struct buf *err)
{
	s->lfd = -1;
	if (!strcmp(s->c.type, "none") || !strcmp(s->c.listen, "-"))
		return 0;
	s->lfd = is_unix(s) ? bind_unix(s, err) : bind_inet(s, err);
	return s->lfd < 0 ? -1 : 0;
}

static void
svc_unbind(struct svc *s)
{
	if (s->lfd < 0)
		return;
	close(s->lfd);
	s->lfd = -1;
	if (is_unix(s))
		(void)unlink(s->c.listen);
}

/* ---------------------------------------------------------------- */
/* processes */

/* The program of a service: an absolute path, or the first executable
 * of that name in $daemon_directory. */
static int
find_program(const char *prog, struct buf *out)
{
	buf_reset(out);
	if (strchr(prog, '/')) {
		buf_adds(out, prog);
		return *prog == '/' && access(prog, X_OK) == 0 ? 0 : -1;
	}
	return conf_daemon_program(prog, out);
}

static int
env_passed(const char *e)
{
	static const char *pass[] = { "TZ=", "LANG=", "LC_", "ASAN_OPTIONS=", "UBSAN_OPTIONS=",
	    "LSAN_OPTIONS=", "MSAN_OPTIONS=", "TSAN_OPTIONS=", "HERMOD_", NULL };
	static const char *never[] = { "HERMOD_MASTER=", "HERMOD_LOG_STDERR=", "HERMOD_CONFIG=",
	    "HERMOD_STANDALONE_LISTEN=", NULL };
	size_t i;

	for (i = 0; never[i]; i++)
		if (!strncmp(e, never[i], strlen(never[i])))
			return 0;
	for (i = 0; pass[i]; i++)
		if (!strncmp(e, pass[i], strlen(pass[i])))
			return 1;
	return 0;
}

/* The children's environment: a fixed PATH, the time zone and locale,
 * sanitizer options and HERMOD_* test settings; nothing else. */
static char **
child_env(void)
{
	extern char **environ;
	const char *stderr_env = getenv("HERMOD_LOG_STDERR");
	char **env = NULL;
	size_t n = 0, i;

	env = xreallocarray(env, n + 1, sizeof(*env));
	env[n++] = xstrdup("PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin");
	env = xreallocarray(env, n + 1, sizeof(*env));
	env[n++] = xstrdup("HERMOD_MASTER=1");
	if (foreground || (stderr_env && *stderr_env == '1')) {
		env = xreallocarray(env, n + 1, sizeof(*env));
		env[n++] = xstrdup("HERMOD_LOG_STDERR=1");
	}
	for (i = 0; environ && environ[i] && n < 200; i++) {
		if (!env_passed(environ[i]))
			continue;
		env = xreallocarray(env, n + 1, sizeof(*env));
		env[n++] = xstrdup(environ[i]);
	}
	env = xreallocarray(env, n + 1, sizeof(*env));
	env[n] = NULL;
	return env;
}

static int64_t
throttle_delay(const struct svc *s)
{
	long long cap = conf_time("service_throttle_time") * 1000;
	int64_t d;

	if (s->fails < 2)
		return 0;
	if (cap < 1000)
		cap = 1000;
	d = s->fails - 2 >= 20 ? cap : (int64_t)1000 << (s->fails - 2);
	return d > cap ? cap : d;
}

/*
 * $queue_directory/pid/trouble: one line per service that keeps failing
 * at start-up, "NAME TAB SINCE TAB FAILURES TAB WHY", read by mailq
 * (lib/qlist.c), so that mail that cannot move on says why where the
 * administrator looks, not only in a log that may go nowhere.  Removed
 * when every service is fine again and when the master stops.
 */
static void
trouble_write(void)
{
	struct buf path = BUF_INIT, t = BUF_INIT;
	struct svc *s;

	buf_printf(&path, "%s/pid/trouble", queue_dir);
	for (s = services; s; s = s->next)
		if (s->trouble_since)
			buf_printf(&t, "%s\t%lld\t%d\t%s\n", s->c.name, s->trouble_since, s->fails,
			    s->last_fatal ? s->last_fatal : "exits at once (see the log)");
	if (t.len == 0) {
		if (unlink(buf_str(&path)) < 0 && errno != ENOENT)
			msg_warn("unlink %s: %s", buf_str(&path), strerror(errno));
	} else if (write_file_atomic(buf_str(&path), t.data, t.len, 0644) < 0)
		msg_warn("write %s: %s", buf_str(&path), strerror(errno));
	buf_free(&path);
	buf_free(&t);
}

/* A service started normally (or was reconfigured): out of trouble. */
static void
start_ok(struct svc *s)
{
	s->fails = 0;
	if (s->trouble_since) {
		s->trouble_since = 0;
		msg_info("service %s: running again", s->c.name);
		trouble_write();
	}
}

/* A start-up failure: count it and throttle from the second one on. */
static void
start_failed(struct svc *s, int64_t now, int at_least_1s)
{
	int64_t d;

	s->fails++;
	if (s->fails >= 2) {
		/* say it once, in the words of the process that failed */
		if (!s->trouble_since) {
			s->trouble_since = (long long)time(NULL);
			msg_warn("service %s cannot start: %s; mail that needs it waits in the queue "
			    "(mailq shows this) until it is fixed", s->c.name,
			    s->last_fatal ? s->last_fatal : "it exits at once (see its lines above)");
		}
		trouble_write();
	}
	d = throttle_delay(s);
	if (d == 0 && at_least_1s)
		d = 1000;
	if (d > 0) {
		s->throttle_until = now + d;
		msg_warn("service %s: failed %d time%s in a row at start-up; next start in %lld s",
		    s->c.name, s->fails, s->fails == 1 ? "" : "s", (long long)((d + 999) / 1000));
	}
}

static void
proc_retire(struct svc *s, struct proc *p)
{
	if (p->retiring)
		return;
	p->retiring = 1;
	if (p->avail)
		s->navail--;
	if (kill(p->pid, SIGTERM) < 0 && errno != ESRCH)
		msg_warn("kill %ld: %s", (long)p->pid, strerror(errno));
}

static int
spawn(struct svc *s, int64_t now)
{
	struct buf path = BUF_INIT;
	struct proc *p;
	char **argv, **env;
	int sp[2];
	size_t n, i;
	pid_t pid;

	if (find_program(s->c.argv[0], &path) < 0) {
		msg_error("service %s: no program %s in daemon_directory %s", s->c.name,
		    s->c.argv[0], conf_str("daemon_directory"));
		buf_free(&path);
		start_failed(s, now, 1);
		return -1;
	}
	if (pipe2(sp, O_CLOEXEC) < 0) {
		msg_error("service %s: pipe: %s", s->c.name, strerror(errno));
		buf_free(&path);
		start_failed(s, now, 1);
		return -1;
	}
	set_nonblock(sp[0], 1);
	n = strv_len(s->c.argv);
	argv = xcalloc(n + 5, sizeof(*argv));
	argv[0] = (char *)buf_str(&path);
	argv[1] = "-C";
	argv[2] = confdir;
	argv[3] = "-s";
	argv[4] = s->c.name;
	for (i = 1; i < n; i++)
		argv[4 + i] = s->c.argv[i];
	argv[4 + n] = NULL;
	env = child_env();
	if ((pid = fork()) < 0) {
		msg_error("service %s: fork: %s", s->c.name, strerror(errno));
		close(sp[0]);
		close(sp[1]);
		free(argv);
		strv_free(env);
		buf_free(&path);
		start_failed(s, now, 1);
		return -1;
	}
	if (pid == 0) {
		sigset_t all;
		int l = -1, w;

		signal(SIGCHLD, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		/* move both out of the way before putting them at 3 and 4 */
		if (s->lfd >= 0 && (l = fcntl(s->lfd, F_DUPFD, 10)) < 0)
			_exit(EX_OSERR);
		if ((w = fcntl(sp[1], F_DUPFD, 10)) < 0)
			_exit(EX_OSERR);
		if (l >= 0) {
			if (dup2(l, SERVICE_LISTEN_FD) < 0)
				_exit(EX_OSERR);
		} else
			close(SERVICE_LISTEN_FD);
		if (dup2(w, SERVICE_STATUS_FD) < 0)
			_exit(EX_OSERR);
		close_from(SERVICE_STATUS_FD + 1);
		execve(argv[0], argv, env);
		msg_error("exec %s: %s", argv[0], strerror(errno));
		_exit(EX_UNAVAILABLE);
	}
	close(sp[1]);
	free(argv);
	strv_free(env);
	p = xcalloc(1, sizeof(*p));
	p->pid = pid;
	p->statfd = sp[0];
	p->avail = 1;
	p->gen = s->gen;
	p->start_ms = now;
	p->path = buf_steal(&path);
	p->next = s->procs;
	s->procs = p;
	s->nproc++;
	s->navail++;
	msg_debug("service %s: started %s pid %ld", s->c.name, p->path, (long)pid);
	return 0;
}

/* Start what is missing: one process per service, and another when
 * none is idle, up to the limit.  Datagram services (postlogd) go
 * first, so that the others' first lines find their reader. */
static void
maintain(int64_t now)
{
	struct svc *s;
	int pass;

	if (stopping)
		return;
	for (pass = 0; pass < 2; pass++)
		for (s = services; s; s = s->next) {
			if (is_dgram(s) != (pass == 0))
				continue;
			if (s->removed || s->broken || s->c.proclimit <= 0 || now < s->throttle_until)
				continue;
			if (s->nproc < s->c.proclimit && (s->nproc == 0 || s->navail == 0))
				(void)spawn(s, now);
		}
}

/* One byte of the status pipe, if it belongs to last words ("F" TEXT
 * "\n", lib/service.c): 1 when consumed. */
static int
fatal_byte(struct svc *s, struct proc *p, char c)
{
	if (p->in_fatal) {
		if (c == '\n') {
			p->in_fatal = 0;
			free(s->last_fatal);
			s->last_fatal = xstrdup(buf_str(&p->fatal));
		} else if (p->fatal.len < 400)
			buf_addc(&p->fatal, c);
		return 1;
	}
	if (c == 'F') {
		p->in_fatal = 1;
		buf_reset(&p->fatal);
		return 1;
	}
	return 0;
}

static void
read_status(struct svc *s, struct proc *p)
{
	char b[256];
	ssize_t n, i;

	n = read(p->statfd, b, sizeof(b));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close(p->statfd);
		p->statfd = -1;
		return;
	}
	for (i = 0; i < n; i++) {
		if (fatal_byte(s, p, b[i]))
			continue;
		if (b[i] == 'B') {
			p->ever_busy = 1;
			if (p->avail && !p->retiring)
				s->navail--;
			p->avail = 0;
		} else if (b[i] == 'I') {
			if (!p->avail && !p->retiring)
				s->navail++;
			p->avail = 1;
		}
	}
	/* started with an older configuration: now that it is idle, stop
	 * it; it is replaced with the new one */
	if (p->avail && p->gen != s->gen && !p->retiring)
		proc_retire(s, p);
}

/* A process is gone: its last words may still be in its status pipe
 * (it exits right after writing them).  Only those are read here: the
 * B/I bookkeeping of a dead process is already undone by reap. */
static void
drain_fatal(struct svc *s, struct proc *p)
{
	char b[512];
	ssize_t n, i;
	int rounds;

	(void)fcntl(p->statfd, F_SETFL, O_NONBLOCK);
	for (rounds = 0; rounds < 8; rounds++) {
		n = read(p->statfd, b, sizeof(b));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (i = 0; i < n; i++)
			(void)fatal_byte(s, p, b[i]);
	}
}

static void
svc_free(struct svc *s)
{
	free(s->last_fatal);
	free(s->c.name);
	free(s->c.listen);
	free(s->c.type);
	strv_free(s->c.argv);
	free(s);
}

static void
reap(void)
{
	int64_t now = mono_ms();
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct svc *s, **sp;
		struct proc *p = NULL, **pp = NULL;
		int abnormal, expected;
		int64_t age;

		for (s = services; s; s = s->next) {
			for (pp = &s->procs; *pp; pp = &(*pp)->next)
				if ((*pp)->pid == pid)
					break;
			if (*pp) {
				p = *pp;
				break;
			}
		}
		if (!p)
			continue;
		*pp = p->next;
		s->nproc--;
		if (p->avail && !p->retiring)
			s->navail--;
		if (p->statfd >= 0) {
			drain_fatal(s, p);
			close(p->statfd);
		}
		age = now - p->start_ms;
		abnormal = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
		expected = p->retiring || stopping || s->removed;
		if (abnormal && !(expected && WIFSIGNALED(status) &&
		    (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGKILL))) {
			if (WIFSIGNALED(status))
				msg_warn("process %s pid %ld killed by signal %d", p->path, (long)pid, WTERMSIG(status));
			else
				msg_warn("process %s pid %ld exit status %d", p->path, (long)pid, WEXITSTATUS(status));
		}
		if (!expected) {
			if (age < QUICK_DEATH_MS && (abnormal || !p->ever_busy))
				start_failed(s, now, 0);
			else
				start_ok(s);
		}
		buf_free(&p->fatal);
		free(p->path);
		free(p);
		if (s->removed && s->nproc == 0) {
			for (sp = &services; *sp != s; sp = &(*sp)->next)
				;
			*sp = s->next;
			svc_free(s);
		}
	}
}

/* ---------------------------------------------------------------- */
/* maillog_file */

/* The folder and the file, made before postlogd needs them: postlogd
 * runs as mail_owner and may not be able to create them itself.  A
 * folder made here belongs to mail_owner (so that postlogd can create
 * the file again after a rotation); one that exists is left as it is.
 * 0 ok, -1 with err set. */
static int
maillog_prepare(struct buf *err)
{
	const char *file = conf_str("maillog_file");
	uid_t uid = owner.privileged && geteuid() == 0 ? owner.uid : (uid_t)-1;
	gid_t gid = owner.privileged && geteuid() == 0 ? owner.gid : (gid_t)-1;
	char *dir, *slash;
	struct stat st;
	int fd, rc = 0;

	if (!*file)
		return 0;
	if (*file != '/') {
		buf_printf(err, "maillog_file %s: not an absolute path", file);
		return -1;
	}
	dir = xstrdup(file);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		if (stat(dir, &st) < 0 && errno == ENOENT) {
			if (mkdir_p(dir, 0755) < 0 ||
			    (uid != (uid_t)-1 && chown(dir, uid, gid) < 0) || chmod(dir, 0750) < 0) {
				buf_printf(err, "maillog_file: make %s: %s", dir, strerror(errno));
				rc = -1;
			}
		}
	}
	free(dir);
	if (rc == 0) {
		if ((fd = log_file_open(file, 1, uid, gid, err)) < 0)
			return -1;
		/* a file root made (touch, an old logrotate "create") would
		 * shut postlogd out: give it to mail_owner, as the spool's
		 * folders are repaired */
		if (uid != (uid_t)-1 && fstat(fd, &st) == 0 && st.st_uid != uid) {
			msg_warn("%s: owner %ld:%ld, setting %ld:%ld", file, (long)st.st_uid,
			    (long)st.st_gid, (long)uid, (long)gid);
			if (fchown(fd, uid, gid) < 0) {
				buf_printf(err, "chown %s: %s", file, strerror(errno));
				rc = -1;
			}
		}
		close(fd);
	}
	return rc;
}

/* The master's own lines go to postlogd like everyone's (when postlogd
 * is away, the master appends them itself: as root it always can). */
static void
master_log_setup(void)
{
	const char *file = conf_str("maillog_file");
	struct buf sock = BUF_INIT, err = BUF_INIT;
	struct svc *s;

	if (log_stderr_only())
		return;
	if (!*file) {
		log_postlog_close();
		log_init("master", 0);
		return;
	}
	buf_printf(&sock, "%s/%s", queue_dir, LOG_POSTLOG_SOCKET);
	if (log_postlog_open(buf_str(&sock), file,
	    owner.privileged && geteuid() == 0 ? owner.uid : (uid_t)-1,
	    owner.privileged && geteuid() == 0 ? owner.gid : (gid_t)-1, &err) < 0) {
		log_postlog_close();
		log_init("master", 0);
		msg_error("%s; logging to syslog", buf_str(&err));
	}
	for (s = services; s; s = s->next)
		if (!s->removed && !s->broken && is_dgram(s) && !strcmp(s->c.listen, LOG_POSTLOG_SOCKET))
			break;
	if (!s)
		msg_warn("maillog_file is set, but master.conf has no unix-dgram service on %s "
		    "(postlogd): each daemon appends to %s itself, and a chrooted smtpd cannot",
		    LOG_POSTLOG_SOCKET, file);
	buf_free(&sock);
	buf_free(&err);
}

/* ---------------------------------------------------------------- */
/* configuration */

static struct svc *
svc_new(struct master_service *c)
{
	struct svc *s = xcalloc(1, sizeof(*s));

	s->c = *c;		/* takes the strings */
	s->lfd = -1;
	return s;
}

static int
load_master_conf(struct master_service **v, size_t *n, struct buf *err)
{
	struct buf path = BUF_INIT;
	size_t i;
	int rc;

	buf_printf(&path, "%s/master.conf", confdir);
	rc = master_conf_load(buf_str(&path), v, n, err);
	if (rc == 0 && *n > MAX_SERVICES) {
		buf_printf(err, "%s: more than %d services", buf_str(&path), MAX_SERVICES);
		master_conf_free(*v, *n);
		rc = -1;
	}
	for (i = 0; rc == 0 && i < *n; i++) {
		const char *l = (*v)[i].listen;

		if (!strncmp((*v)[i].type, "unix", 4) && (!strcmp(l, "-") || strstr(l, ".."))) {
			buf_printf(err, "%s:%d: service %s: want a socket path inside queue_directory",
			    buf_str(&path), (*v)[i].line, (*v)[i].name);
			master_conf_free(*v, *n);
			rc = -1;
		}
	}
	buf_free(&path);
	return rc;
}

/* Check hermod.conf and master.conf in a child, so that a broken file
 * can not leave the master half-configured. */
static int
reload_check(void)
{
	pid_t pid;
	int status;

	if ((pid = fork()) < 0) {
		msg_error("reload: fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		struct buf err = BUF_INIT;
		struct master_service *v;
		size_t n;

		if (conf_load(confdir, &err) < 0) {
			msg_error("reload: %s; keeping the running configuration", buf_str(&err));
			_exit(EX_CONFIG);
		}
		(void)conf_time("service_throttle_time");	/* fatal when bad */
		(void)conf_bool("privileged");
		if (*conf_str("maillog_file") && *conf_str("maillog_file") != '/') {
			msg_error("reload: maillog_file %s: not an absolute path; keeping the running configuration",
			    conf_str("maillog_file"));
			_exit(EX_CONFIG);
		}
		if (load_master_conf(&v, &n, &err) < 0) {
			msg_error("reload: %s; keeping the running configuration", buf_str(&err));
			_exit(EX_CONFIG);
		}
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void
svc_stop(struct svc *s)
{
	struct proc *p;

	s->removed = 1;
	svc_unbind(s);
	for (p = s->procs; p; p = p->next)
		proc_retire(s, p);
}

static void
reload(void)
{
	struct buf err = BUF_INIT;
	struct master_service *v;
	struct svc *s, **sp;
	size_t n, i;
	int was_privileged = owner.privileged;

	msg_info("reload -- version %s, configuration %s", PACKAGE_VERSION, confdir);
	if (reload_check() < 0)
		return;
	if (conf_load(confdir, &err) < 0 || load_master_conf(&v, &n, &err) < 0) {
		msg_error("reload: %s", buf_str(&err));
		buf_free(&err);
		return;
	}
	if (strcmp(conf_str("queue_directory"), queue_dir)) {
		msg_warn("reload: queue_directory changed to %s: that takes a restart; still using %s",
		    conf_str("queue_directory"), queue_dir);
		conf_set("queue_directory", queue_dir);
	}
	if (conf_privileged() != was_privileged)
		msg_warn("reload: privileged changed: that takes a restart");
	/* removed services, and the new settings of those that stay */
	for (s = services; s; s = s->next) {
		struct proc *p;

		if (s->removed)
			continue;
		for (i = 0; i < n; i++)
			if (v[i].name && !strcmp(v[i].name, s->c.name))
				break;
		if (i == n) {
			msg_info("service %s: removed", s->c.name);
			svc_stop(s);
			continue;
		}
		if (strcmp(v[i].listen, s->c.listen) || strcmp(v[i].type, s->c.type) || s->broken) {
			svc_unbind(s);
			free(s->c.listen);
			free(s->c.type);
			s->c.listen = v[i].listen;
			s->c.type = v[i].type;
			v[i].listen = v[i].type = NULL;
			s->broken = 0;
			buf_reset(&err);
			if (svc_bind(s, &err) < 0) {
				msg_error("service %s: %s; not started", s->c.name, buf_str(&err));
				s->broken = 1;
			}
		}
		strv_free(s->c.argv);
		s->c.argv = v[i].argv;
		v[i].argv = NULL;
		s->c.proclimit = v[i].proclimit;
		s->c.private_ = v[i].private_;
		s->c.line = v[i].line;
		start_ok(s);
		s->throttle_until = 0;
		s->gen++;
		/* idle processes go now, busy ones when they are done */
		for (p = s->procs; p; p = p->next)
			if (p->avail)
				proc_retire(s, p);
		free(v[i].name);
		v[i].name = NULL;
	}
	/* new services, at the end in master.conf order */
	for (sp = &services; *sp; sp = &(*sp)->next)
		;
	for (i = 0; i < n; i++) {
		if (!v[i].name)
			continue;
		for (s = services; s; s = s->next)
			if (s->removed && !strcmp(s->c.name, v[i].name))
				break;
		if (s)	/* its old processes still finish their work */
			msg_warn("service %s: still stopping from an earlier reload; added again", v[i].name);
		s = svc_new(&v[i]);
		memset(&v[i], 0, sizeof(v[i]));
		buf_reset(&err);
		if (svc_bind(s, &err) < 0) {
			msg_error("service %s: %s; not started", s->c.name, buf_str(&err));
			s->broken = 1;
		} else
			msg_info("service %s: added", s->c.name);
		*sp = s;
		sp = &s->next;
	}
	master_conf_free(v, n);
	buf_reset(&err);
	/* postlogd, restarted like every process, reopens the file */
	if (!log_stderr_only() && maillog_prepare(&err) < 0)
		msg_error("reload: %s", buf_str(&err));
	master_log_setup();
	buf_free(&err);
}

/* ---------------------------------------------------------------- */
/* start and stop */

static void
stop_procs(int dgram)
{
	struct svc *s;
	struct proc *p;

	for (s = services; s; s = s->next) {
		if (is_dgram(s) != dgram)
			continue;
		for (p = s->procs; p; p = p->next) {
			p->retiring = 0;	/* proc_retire sends again */
			if (p->avail)
				s->navail++;
			proc_retire(s, p);
		}
	}
}

/* postlogd is told last, once every other process has gone, so that
 * their last lines (and ours) are still written. */
static void
begin_stop(int sig)
{
	msg_info("terminating on signal %d", sig);
	stopping = 1;
	stop_deadline = mono_ms() + STOP_GRACE_MS;
	stop_procs(0);
	log_stop_pending = 1;
}

static int
nprocs(void)
{
	struct svc *s;
	int n = 0;

	for (s = services; s; s = s->next)
		n += s->nproc;
	return n;
}

static int
nprocs_not_dgram(void)
{
	struct svc *s;
	int n = 0;

	for (s = services; s; s = s->next)
		if (!is_dgram(s))
			n += s->nproc;
	return n;
}

static void
finish(void)
{
	struct buf p = BUF_INIT;
	struct svc *s;

	for (s = services; s; s = s->next)
		svc_unbind(s);
	spool_pid_path(&p);
	(void)unlink(buf_str(&p));
	buf_reset(&p);
	buf_printf(&p, "%s/pid/trouble", queue_dir);
	(void)unlink(buf_str(&p));
	buf_free(&p);
	exit(0);		/* releases the lock */
}

static void
kill_all(void)
{
	struct svc *s;
	struct proc *p;

	for (s = services; s; s = s->next)
		for (p = s->procs; p; p = p->next) {
			msg_warn("process %s pid %ld did not stop: killing it", p->path, (long)p->pid);
			(void)kill(p->pid, SIGKILL);
		}
}

static void
lock_pid_file(void)
{
	struct buf p = BUF_INIT, err = BUF_INIT;
	struct flock fl;

	spool_pid_path(&p);
	lockfd = open(buf_str(&p), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (lockfd < 0)
		msg_fatal("open %s: %s", buf_str(&p), strerror(errno));
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(lockfd, F_SETLK, &fl) < 0) {
		long pid;

		if (errno != EAGAIN && errno != EACCES)
			msg_fatal("lock %s: %s", buf_str(&p), strerror(errno));
		pid = spool_master_pid(&err);
		msg_fatal_status(EX_TEMPFAIL, "hermod-master is already running (pid %ld)", pid > 0 ? pid : 0L);
	}
	buf_free(&p);
	buf_free(&err);
}

static void
write_pid(void)
{
	struct buf line = BUF_INIT;

	buf_printf(&line, "%ld\n", (long)getpid());
	if (ftruncate(lockfd, 0) < 0 || pwrite(lockfd, line.data, line.len, 0) != (ssize_t)line.len)
		msg_fatal("write %s/%s: %s", queue_dir, SPOOL_PID_FILE, strerror(errno));
	buf_free(&line);
}

static void
devnull_to(int fd)
{
	int n = open("/dev/null", O_RDWR);

	if (n < 0)
		msg_fatal("open /dev/null: %s", strerror(errno));
	if (n != fd) {
		if (dup2(n, fd) < 0)
			msg_fatal("dup2: %s", strerror(errno));
		close(n);
	}
}

/* Detach.  The first process waits until the daemon writes one byte to
 * the pipe (ready) or exits (its status is ours).  Returns the write
 * end of that pipe in the daemon. */
static int
daemonize(void)
{
	int p[2], status;
	pid_t pid;
	char c;
	ssize_t r;

	if (pipe2(p, O_CLOEXEC) < 0)
		msg_fatal("pipe: %s", strerror(errno));
	fflush(NULL);
	if ((pid = fork()) < 0)
		msg_fatal("fork: %s", strerror(errno));
	if (pid > 0) {
		close(p[1]);
		while ((r = read(p[0], &c, 1)) < 0 && errno == EINTR)
			;
		if (r == 1)
			_exit(0);
		while (waitpid(pid, &status, 0) < 0)
			if (errno != EINTR)
				_exit(EX_OSERR);
		if (WIFEXITED(status))
			_exit(WEXITSTATUS(status) ? WEXITSTATUS(status) : EX_SOFTWARE);
		_exit(EX_SOFTWARE);
	}
	close(p[0]);
	if (setsid() < 0)
		msg_fatal("setsid: %s", strerror(errno));
	return p[1];
}

static void
usage(void)
{
	fprintf(stderr, "usage: hermod-master [-C DIR] [-f] [-v]\n");
	exit(EX_USAGE);
}

int
main(int argc, char **argv)
{
	struct buf err = BUF_INIT, dir = BUF_INIT;
	struct master_service *v;
	const char *cdir = NULL, *e;
	struct svc **tail;
	size_t n, i;
	int opt, readyfd = -1;

	sane_fds();
	while ((opt = getopt(argc, argv, "C:fv")) != -1) {
		switch (opt) {
		case 'C':
			cdir = optarg;
			break;
		case 'f':
			foreground = 1;
			break;
		case 'v':
			msg_verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	log_init("master", foreground ? LOG_FLAG_STDERR : LOG_FLAG_BOTH);
	if (!cdir || !*cdir)
		cdir = getenv("HERMOD_CONFIG");
	if (cdir && *cdir) {
		char cwd[PATH_MAX];

		if (*cdir != '/' && getcwd(cwd, sizeof(cwd)))
			buf_printf(&dir, "%s/", cwd);
		buf_adds(&dir, cdir);
		cdir = buf_str(&dir);
	}
	if (conf_load(cdir, &err) < 0)
		msg_fatal_status(EX_CONFIG, "%s", buf_str(&err));
	confdir = xstrdup(conf_dir());
	queue_dir = xstrdup(conf_str("queue_directory"));
	(void)conf_time("service_throttle_time");	/* fatal when bad */
	if (load_master_conf(&v, &n, &err) < 0)
		msg_fatal_status(EX_CONFIG, "%s", buf_str(&err));
	if (conf_privileged() && geteuid() != 0)
		msg_fatal_status(EX_NOPERM, "%s is a privileged instance: start it as root", confdir);
	if (spool_owner_get(&owner, &err) < 0)
		msg_fatal_status(EX_CONFIG, "%s", buf_str(&err));
	umask(022);
	/* said to the caller of hermod start, before it is detached */
	e = getenv("HERMOD_LOG_STDERR");
	if (!foreground && !(e && *e == '1') && maillog_prepare(&err) < 0)
		msg_fatal_status(EX_CANTCREAT, "%s", buf_str(&err));
	if (!foreground)
		readyfd = daemonize();
	devnull_to(0);
	if (spool_make(&owner, 1, &err) < 0)
		msg_fatal("%s", buf_str(&err));
	lock_pid_file();
	if (chdir(queue_dir) < 0)
		msg_fatal("chdir %s: %s", queue_dir, strerror(errno));

	tail = &services;
	for (i = 0; i < n; i++) {
		struct svc *s = svc_new(&v[i]);

		if (svc_bind(s, &err) < 0)
			msg_fatal("service %s: %s", s->c.name, buf_str(&err));
		*tail = s;
		tail = &s->next;
	}
	free(v);		/* the strings now belong to the services */
	write_pid();
	setup_signals();
	if (readyfd >= 0) {
		/* detached: from now on syslog only, and no child may hold
		 * the caller's output open */
		e = getenv("HERMOD_LOG_STDERR");
		if (!(e && *e == '1')) {
			log_init("master", 0);
			master_log_setup();
			devnull_to(2);
		}
		devnull_to(1);
	}
	maintain(mono_ms());
	msg_info("daemon started -- version %s, configuration %s", PACKAGE_VERSION, confdir);
	if (readyfd >= 0) {
		if (write(readyfd, "R", 1) != 1)
			msg_warn("ready pipe: %s", strerror(errno));
		close(readyfd);
	}
	buf_free(&err);
	buf_free(&dir);

	for (;;) {
		struct pollfd *pfd;
		struct proc **who;
		struct svc **whose;
		struct svc *s;
		struct proc *p;
		size_t np = 1, k;
		int64_t now = mono_ms(), wake = -1;
		int r, got_chld = 0, got_hup = 0, got_term = 0;

		for (s = services; s; s = s->next)
			for (p = s->procs; p; p = p->next)
				np++;
		pfd = xcalloc(np, sizeof(*pfd));
		who = xcalloc(np, sizeof(*who));
		whose = xcalloc(np, sizeof(*whose));
		pfd[0].fd = sigpipe_fds[0];
		pfd[0].events = POLLIN;
		k = 1;
		for (s = services; s; s = s->next) {
			if (!stopping && !s->removed && !s->broken && s->throttle_until > now &&
			    (wake < 0 || s->throttle_until < wake))
				wake = s->throttle_until;
			for (p = s->procs; p; p = p->next) {
				pfd[k].fd = p->statfd;	/* -1 is ignored by poll */
				pfd[k].events = POLLIN;
				who[k] = p;
				whose[k] = s;
				k++;
			}
		}
		if (stopping)
			wake = stop_deadline;
		r = poll(pfd, np, wake < 0 ? -1 : (int)(wake > now ? (wake - now < INT_MAX ? wake - now : INT_MAX) : 0));
		if (r < 0 && errno != EINTR)
			msg_fatal("poll: %s", strerror(errno));
		if (r > 0 && (pfd[0].revents & POLLIN)) {
			unsigned char sigs[64];
			ssize_t m, j;

			while ((m = read(sigpipe_fds[0], sigs, sizeof(sigs))) > 0)
				for (j = 0; j < m; j++) {
					if (sigs[j] == SIGCHLD)
						got_chld = 1;
					else if (sigs[j] == SIGHUP)
						got_hup = 1;
					else
						got_term = sigs[j];
				}
		}
		for (k = 1; r > 0 && k < np; k++)
			if (pfd[k].fd >= 0 && (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
				read_status(whose[k], who[k]);
		free(pfd);
		free(who);
		free(whose);
		if (got_chld)
			reap();
		if (got_term && !stopping)
			begin_stop(got_term);
		if (got_hup && !stopping)
			reload();
		now = mono_ms();
		if (stopping) {
			if (log_stop_pending && nprocs_not_dgram() == 0) {
				log_stop_pending = 0;
				stop_procs(1);
			}
			if (nprocs() == 0)
				finish();
			if (now >= stop_deadline) {
				if (killed) {
					msg_warn("%d processes did not exit after SIGKILL", nprocs());
					finish();
				}
				kill_all();
				killed = 1;
				stop_deadline = now + KILL_WAIT_MS;
			}
			continue;
		}
		maintain(now);
	}
}
