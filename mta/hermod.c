/*
 * hermod.c: the admin command.
 *
 *   hermod [-C DIR] [-v] COMMAND [ARGS]
 *     init DIR [--domain D] [--port-base N] [--rootless] [--force]
 *     start [--foreground] | stop | status | reload
 *     log reopen            (postlogd reopens maillog_file, for logrotate)
 *     config [-n] [NAME ...]
 *     user add NAME | user del NAME | user list
 *     map build TYPE:PATH [--aliases] | map lookup TYPE:PATH KEY
 *     queue list|show ID|hold ID|release ID|delete ID|ALL|requeue ID|ALL|flush
 *                          (hermod_queue.c)
 *     version | help
 *
 * The instance is the configuration directory: -C DIR, else
 * $HERMOD_CONFIG, else the compiled-in default (conf.h).  start runs
 * hermod-master (found next to this program, else in
 * $command_directory) and returns once the master says it is ready;
 * stop, status and reload find the master through the lock it holds on
 * $queue_directory/pid/master.pid (hermod_spool.h), never through a pid
 * that may be stale.  Exit statuses follow sysexits.h; status exits 1
 * when the instance is not running, as the init scripts expect.
 */
#include "config.h"
#include "hermod.h"
#include "hermod_spool.h"
#include "conf.h"
#include "map.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define START_TIMEOUT_MS	10000
#define STOP_TIMEOUT_MS		15000
#define LOG_REOPEN_TIMEOUT_MS	5000

static char *opt_confdir;


void
hermod_say(const char *fmt, ...)
{
	va_list ap;

	fputs("hermod: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
usage(FILE *fp)
{
	fputs("usage: hermod [-C DIR] [-v] COMMAND [ARGS]\n"
	    "  init DIR [--domain D] [--port-base N] [--rootless] [--force]\n"
	    "                        make an instance in DIR\n"
	    "  start [--foreground]  start hermod-master\n"
	    "  stop | status | reload\n"
	    "  log reopen            postlogd reopens maillog_file (after logrotate)\n"
	    "  config [-n] [NAME ...]\n"
	    "                        print parameters (-n: only those set in hermod.conf)\n"
	    "  user add NAME         add a virtual user (password: first line of stdin)\n"
	    "  user del NAME | user list\n"
	    "  map build TYPE:PATH [--aliases]\n"
	    "  map lookup TYPE:PATH KEY\n"
	    "  queue list [--json] | show ID | hold ID | release ID\n"
	    "  queue delete ID|ALL | requeue ID|ALL | flush [ID]\n"
	    "  version\n", fp);
}

const char *
hermod_self_dir(void)
{
	static char dir[PATH_MAX];
	static int done;
	ssize_t n;
	char *slash;

	if (done)
		return dir;
	done = 1;
	n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	if (n <= 0) {
		dir[0] = 0;
		return dir;
	}
	dir[n] = 0;
	if ((slash = strrchr(dir, '/')) != NULL)
		*(slash == dir ? slash + 1 : slash) = 0;
	else
		dir[0] = 0;
	return dir;
}

int
hermod_build_tree(struct buf *out)
{
	const char *d = hermod_self_dir();
	size_t n = strlen(d);
	struct buf p = BUF_INIT;
	int rc = 0;

	if (n < 5 || strcmp(d + n - 4, "/mta"))
		return 0;
	buf_add(&p, d, n - 4);
	buf_adds(&p, "/config.status");
	if (access(buf_str(&p), F_OK) == 0)
		rc = 1;
	buf_truncate(&p, n - 4);
	buf_adds(&p, "/queue/pickup");
	if (access(buf_str(&p), F_OK) == 0)
		rc = 1;
	if (rc) {
		buf_reset(out);
		buf_add(out, d, n - 4);
	}
	buf_free(&p);
	return rc;
}

void
hermod_abspath(struct buf *out, const char *path)
{
	char cwd[PATH_MAX];
	size_t n;

	buf_reset(out);
	if (*path != '/' && getcwd(cwd, sizeof(cwd))) {
		buf_adds(out, cwd);
		if (strcmp(cwd, "/"))
			buf_addc(out, '/');
	}
	buf_adds(out, path);
	/* no trailing slash (except for "/") and no "/./" */
	while ((n = out->len) > 1 && out->data[n - 1] == '/')
		buf_truncate(out, n - 1);
	while ((n = out->len) > 2 && !strcmp(out->data + n - 2, "/."))
		buf_truncate(out, n > 2 ? n - 2 : 1);
}

int
hermod_load_conf(void)
{
	struct buf err = BUF_INIT, p = BUF_INIT;
	const char *dir = opt_confdir;
	struct stat st;

	if (!dir || !*dir)
		dir = getenv("HERMOD_CONFIG");
	if (dir && *dir) {
		hermod_abspath(&p, dir);
		errno = 0;
		if (stat(buf_str(&p), &st) < 0 || !S_ISDIR(st.st_mode)) {
			hermod_say("configuration directory %s: %s", buf_str(&p),
			    errno ? strerror(errno) : "not a directory");
			buf_free(&p);
			return EX_CONFIG;
		}
	}
	if (conf_load(p.len ? buf_str(&p) : NULL, &err) < 0) {
		hermod_say("%s", buf_str(&err));
		buf_free(&err);
		buf_free(&p);
		return EX_CONFIG;
	}
	buf_free(&err);
	buf_free(&p);
	return 0;
}

/* hermod-master: next to this program (the same build or installation),
 * else in $command_directory. */
static int
find_master(struct buf *out)
{
	const char *d = hermod_self_dir();

	buf_reset(out);
	if (*d) {
		buf_printf(out, "%s/hermod-master", d);
		if (access(buf_str(out), X_OK) == 0)
			return 0;
	}
	buf_reset(out);
	buf_printf(out, "%s/hermod-master", conf_str("command_directory"));
	if (access(buf_str(out), X_OK) == 0)
		return 0;
	hermod_say("cannot find hermod-master next to this program or in command_directory %s",
	    conf_str("command_directory"));
	return -1;
}

static long
master_pid_or_say(void)
{
	struct buf err = BUF_INIT;
	long pid = spool_master_pid(&err);

	if (pid < 0)
		hermod_say("%s", buf_str(&err));
	buf_free(&err);
	return pid;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int
cmd_start(int argc, char **argv)
{
	struct buf master = BUF_INIT;
	char *margv[8];
	int foreground = 0, i, n = 0, status;
	long pid;
	pid_t child;
	int64_t deadline;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--foreground") || !strcmp(argv[i], "-f"))
			foreground = 1;
		else {
			hermod_say("start: unknown argument %s", argv[i]);
			return EX_USAGE;
		}
	}
	if ((i = hermod_load_conf()) != 0)
		return i;
	if ((pid = master_pid_or_say()) < 0)
		return EX_TEMPFAIL;
	if (pid > 0) {
		hermod_say("hermod is already running (pid %ld)", pid);
		return EX_TEMPFAIL;
	}
	if (conf_privileged() && geteuid() != 0) {
		hermod_say("this is a privileged instance: start it as root");
		return EX_NOPERM;
	}
	if (conf_privileged()) {
		int bad = hermod_reach_daemons(conf_str("mail_owner"), conf_dir(),
		    conf_str("queue_directory"), conf_str("virtual_mailbox_base"),
		    conf_str("maillog_file"));

		if (bad != 0) {
			if (bad > 0)
				hermod_say("start: not starting an instance whose daemons cannot reach their folders");
			return EX_CONFIG;
		}
		(void)hermod_reach_users(conf_str("default_privs"), conf_dir(), conf_str("queue_directory"));
	}
	if (find_master(&master) < 0)
		return EX_UNAVAILABLE;
	margv[n++] = (char *)buf_str(&master);
	margv[n++] = "-C";
	margv[n++] = (char *)conf_dir();
	if (foreground)
		margv[n++] = "-f";
	if (msg_verbose)
		margv[n++] = "-v";
	margv[n] = NULL;
	fflush(NULL);
	if (foreground) {
		execv(margv[0], margv);
		hermod_say("exec %s: %s", margv[0], strerror(errno));
		return EX_UNAVAILABLE;
	}
	/* In the background the master's first process exits once the
	 * daemon is ready (0) or has failed (its status). */
	if ((child = fork()) < 0) {
		hermod_say("fork: %s", strerror(errno));
		return EX_TEMPFAIL;
	}
	if (child == 0) {
		execv(margv[0], margv);
		hermod_say("exec %s: %s", margv[0], strerror(errno));
		_exit(EX_UNAVAILABLE);
	}
	deadline = mono_ms() + START_TIMEOUT_MS;
	for (;;) {
		pid_t r = waitpid(child, &status, WNOHANG);

		if (r == child)
			break;
		if (r < 0 && errno != EINTR) {
			hermod_say("waitpid: %s", strerror(errno));
			return EX_TEMPFAIL;
		}
		if (mono_ms() > deadline) {
			hermod_say("hermod-master did not report ready within %d s", START_TIMEOUT_MS / 1000);
			return EX_TEMPFAIL;
		}
		sleep_ms(20);
	}
	buf_free(&master);
	if (WIFSIGNALED(status)) {
		hermod_say("hermod-master killed by signal %d", WTERMSIG(status));
		return EX_SOFTWARE;
	}
	if (WEXITSTATUS(status) != 0)
		return WEXITSTATUS(status);	/* it said why */
	pid = master_pid_or_say();
	if (pid <= 0) {
		hermod_say("hermod-master exited at once");
		return EX_TEMPFAIL;
	}
	if (*conf_str("maillog_file"))
		hermod_say("started (pid %ld); log: %s", pid, conf_str("maillog_file"));
	else
		hermod_say("started (pid %ld); log: syslog, facility mail%s", pid,
		    access("/dev/log", F_OK) == 0 ? "" :
		    " (but this machine has no /dev/log: set maillog_file in hermod.conf)");
	return 0;
}

static int
signal_master(int sig, long *pidp)
{
	long pid;
	int rc;

	if ((rc = hermod_load_conf()) != 0)
		return rc;
	if ((pid = master_pid_or_say()) < 0)
		return EX_TEMPFAIL;
	if (pid == 0) {
		hermod_say("hermod is not running");
		return 1;
	}
	*pidp = pid;
	if (kill((pid_t)pid, sig) < 0) {
		hermod_say("kill %ld: %s", pid, strerror(errno));
		return errno == EPERM ? EX_NOPERM : EX_TEMPFAIL;
	}
	return 0;
}

/* 1 while pid is a live process (a zombie is not), 0 when it is gone. */
static int
process_alive(long pid)
{
	struct buf path = BUF_INIT, st = BUF_INIT;
	const char *p;
	int alive;

	buf_printf(&path, "/proc/%ld/stat", pid);
	if (read_file(buf_str(&path), &st, 4096) < 0) {
		if (errno == ENOENT && access("/proc/self/stat", F_OK) == 0)
			alive = 0;	/* /proc works, and it is not there */
		else
			alive = kill((pid_t)pid, 0) == 0 || errno == EPERM;
	} else {
		buf_adds(&st, "");
		p = strrchr(buf_str(&st), ')');
		alive = !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
	}
	buf_free(&path);
	buf_free(&st);
	return alive;
}

static int
cmd_stop(int argc, char **argv)
{
	int64_t deadline;
	long pid = 0, now;
	int rc;

	if (argc > 1) {
		hermod_say("stop: unexpected argument %s", argv[1]);
		return EX_USAGE;
	}
	if ((rc = signal_master(SIGTERM, &pid)) != 0)
		return rc;
	deadline = mono_ms() + STOP_TIMEOUT_MS;
	while ((now = master_pid_or_say()) == pid) {
		if (mono_ms() > deadline) {
			hermod_say("hermod-master (pid %ld) has not stopped after %d s",
			    pid, STOP_TIMEOUT_MS / 1000);
			return EX_TEMPFAIL;
		}
		sleep_ms(20);
	}
	if (now < 0)
		return EX_TEMPFAIL;
	/* the lock goes a moment before the process */
	while (process_alive(pid) && mono_ms() < deadline)
		sleep_ms(10);
	hermod_say("stopped (pid %ld)", pid);
	return 0;
}

static int
cmd_reload(int argc, char **argv)
{
	long pid = 0;
	int rc;

	if (argc > 1) {
		hermod_say("reload: unexpected argument %s", argv[1]);
		return EX_USAGE;
	}
	if ((rc = signal_master(SIGHUP, &pid)) != 0)
		return rc;
	hermod_say("reloading (pid %ld)", pid);
	return 0;
}

static int
cmd_status(int argc, char **argv)
{
	long pid;
	int rc;

	if (argc > 1) {
		hermod_say("status: unexpected argument %s", argv[1]);
		return EX_USAGE;
	}
	if ((rc = hermod_load_conf()) != 0)
		return rc;
	if ((pid = master_pid_or_say()) < 0)
		return EX_TEMPFAIL;
	if (pid == 0) {
		printf("hermod is not running\n");
		return 1;
	}
	printf("hermod is running (pid %ld)\n", pid);
	return 0;
}

/* "log reopen": a "C1 reopen" datagram on the postlog socket.  postlogd
 * takes it only from root or its own user, as the kernel tells it
 * (SCM_CREDENTIALS), and answers to our autobound address; the request
 * waits in the socket behind the lines sent before it, so those are in
 * the old file. */
static int
cmd_log(int argc, char **argv)
{
	struct buf sock = BUF_INIT;
	struct sockaddr_un sun;
	struct pollfd p;
	char answer[512];
	const char *req = "C1 reopen";
	ssize_t n;
	long pid;
	int fd, rc, r;

	if (argc != 2 || strcmp(argv[1], "reopen")) {
		hermod_say("log: want: log reopen");
		return EX_USAGE;
	}
	if ((rc = hermod_load_conf()) != 0)
		return rc;
	if (!*conf_str("maillog_file")) {
		hermod_say("maillog_file is not set: the log goes to syslog, there is no file to reopen");
		return EX_CONFIG;
	}
	conf_queue_path(&sock, LOG_POSTLOG_SOCKET);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (sock.len >= sizeof(sun.sun_path)) {
		hermod_say("%s: socket path too long", buf_str(&sock));
		buf_free(&sock);
		return EX_CONFIG;
	}
	memcpy(sun.sun_path, sock.data, sock.len);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		hermod_say("socket: %s", strerror(errno));
		buf_free(&sock);
		return EX_OSERR;
	}
	/* an address of our own (autobind: a unique abstract name), so
	 * that postlogd can answer */
	{
		struct sockaddr_un me = { .sun_family = AF_UNIX };

		if (bind(fd, (struct sockaddr *)&me, sizeof(sa_family_t)) < 0) {
			hermod_say("bind: %s", strerror(errno));
			rc = EX_OSERR;
			goto out;
		}
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int saved = errno;

		if (saved == EACCES || saved == EPERM) {
			hermod_say("%s: %s (run it as root or as mail_owner)", buf_str(&sock), strerror(saved));
			rc = EX_NOPERM;
		} else if ((pid = master_pid_or_say()) == 0) {
			hermod_say("hermod is not running");
			rc = 1;
		} else if (pid > 0) {
			hermod_say("%s: %s: master.conf has no postlogd service (unix-dgram on %s)",
			    buf_str(&sock), strerror(saved), LOG_POSTLOG_SOCKET);
			rc = EX_UNAVAILABLE;
		} else
			rc = EX_TEMPFAIL;
		goto out;
	}
	/* a busy instance may have filled the queue for a moment: wait
	 * for room, as long as for the answer */
	{
		struct timeval tv = { LOG_REOPEN_TIMEOUT_MS / 1000, 0 };

		if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
			hermod_say("setsockopt: %s", strerror(errno));
			rc = EX_OSERR;
			goto out;
		}
	}
	if (send(fd, req, strlen(req), 0) != (ssize_t)strlen(req)) {
		hermod_say("send to %s: %s", buf_str(&sock), errno == EAGAIN ?
		    "postlogd is not reading (its queue is full)" : strerror(errno));
		rc = EX_TEMPFAIL;
		goto out;
	}
	p.fd = fd;
	p.events = POLLIN;
	while ((r = poll(&p, 1, LOG_REOPEN_TIMEOUT_MS)) < 0 && errno == EINTR)
		;
	if (r <= 0) {
		hermod_say("postlogd did not answer within %d s (it reopens the file when it reads the request)",
		    LOG_REOPEN_TIMEOUT_MS / 1000);
		rc = EX_TEMPFAIL;
		goto out;
	}
	if ((n = recv(fd, answer, sizeof(answer) - 1, 0)) < 0) {
		hermod_say("recv: %s", strerror(errno));
		rc = EX_TEMPFAIL;
		goto out;
	}
	answer[n] = 0;
	/* the answer is postlogd's, but printed safely all the same */
	for (r = 0; r < n; r++)
		if ((unsigned char)answer[r] < 0x20 || answer[r] == 0x7f)
			answer[r] = '?';
	if (!strncmp(answer, "ok ", 3)) {
		hermod_say("%s", answer + 3);
		rc = 0;
	} else {
		hermod_say("postlogd: %s", !strncmp(answer, "error ", 6) ? answer + 6 : answer);
		rc = strstr(answer, "only root") ? EX_NOPERM : EX_TEMPFAIL;
	}
out:
	close(fd);
	buf_free(&sock);
	return rc;
}

static int
cmd_config(int argc, char **argv)
{
	int nondefault = 0, i, rc;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-n"))
			nondefault = 1;
		else if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else {
			hermod_say("config: unknown option %s", argv[i]);
			return EX_USAGE;
		}
	}
	if ((rc = hermod_load_conf()) != 0)
		return rc;
	if (conf_print(stdout, nondefault, argv + i) < 0)
		return EX_USAGE;
	if (fflush(stdout) == EOF || ferror(stdout)) {
		hermod_say("write: %s", strerror(errno));
		return EX_IOERR;
	}
	return 0;
}

static int
cmd_map(int argc, char **argv)
{
	struct buf err = BUF_INIT, val = BUF_INIT;
	const char *spec = NULL;
	int aliases = 0, i, rc;

	if (argc < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	if (!strcmp(argv[1], "build")) {
		long n;

		for (i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--aliases") || !strcmp(argv[i], "-a"))
				aliases = 1;
			else if (argv[i][0] == '-' || spec) {
				hermod_say("map build: unexpected argument %s", argv[i]);
				return EX_USAGE;
			} else
				spec = argv[i];
		}
		if (!spec || !strchr(spec, ':')) {
			hermod_say("map build: want TYPE:PATH, e.g. hash:/etc/hermod/aliases");
			return EX_USAGE;
		}
		/* maps may use $config_directory-relative names in hermod.conf,
		 * but here the path is the administrator's; the configuration
		 * is still loaded for the logging and owner settings */
		if ((rc = hermod_load_conf()) != 0)
			return rc;
		n = map_build(spec, aliases ? MAP_FMT_ALIASES : MAP_FMT_TABLE, &err);
		if (n < 0) {
			hermod_say("map build %s: %s", spec, buf_str(&err));
			buf_free(&err);
			return EX_DATAERR;
		}
		hermod_say("%s: %ld entries", spec, n);
		return 0;
	}
	if (!strcmp(argv[1], "lookup") || !strcmp(argv[1], "query")) {
		struct map *m;

		if (argc != 4) {
			hermod_say("map lookup: want TYPE:PATH KEY");
			return EX_USAGE;
		}
		if ((rc = hermod_load_conf()) != 0)
			return rc;
		if (!(m = map_open(argv[2], &err))) {
			hermod_say("%s", buf_str(&err));
			buf_free(&err);
			return EX_UNAVAILABLE;
		}
		rc = map_lookup(m, argv[3], &val);
		map_close(m);
		if (rc < 0)
			return EX_TEMPFAIL;
		if (rc == 0)
			return 1;	/* not found, as postmap -q */
		printf("%s\n", buf_str(&val));
		buf_free(&val);
		return 0;
	}
	hermod_say("map: unknown command %s (build, lookup)", argv[1]);
	return EX_USAGE;
}

int
main(int argc, char **argv)
{
	static const struct cmd {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "init", hermod_init },
		{ "start", cmd_start },
		{ "stop", cmd_stop },
		{ "status", cmd_status },
		{ "reload", cmd_reload },
		{ "log", cmd_log },
		{ "config", cmd_config },
		{ "user", hermod_user },
		{ "map", cmd_map },
		{ NULL, NULL }
	};
	const struct cmd *c;
	int i;

	sane_fds();
	log_init("hermod", LOG_FLAG_STDERR);
	signal(SIGPIPE, SIG_IGN);
	umask(022);
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-C") && i + 1 < argc)
			opt_confdir = argv[++i];
		else if (!strncmp(argv[i], "-C", 2) && argv[i][2])
			opt_confdir = argv[i] + 2;
		else if (!strcmp(argv[i], "-v"))
			msg_verbose = 1;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) {
			printf("hermod %s\n", PACKAGE_VERSION);
			return 0;
		} else {
			hermod_say("unknown option %s", argv[i]);
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return EX_USAGE;
	}
	if (!strcmp(argv[i], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[i], "version")) {
		printf("hermod %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (!strcmp(argv[i], "queue"))
		return hermod_queue(argc - i, argv + i);
	for (c = cmds; c->name; c++)
		if (!strcmp(argv[i], c->name))
			return c->fn(argc - i, argv + i);
	hermod_say("unknown command %s", argv[i]);
	usage(stderr);
	return EX_USAGE;
}
