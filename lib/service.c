/*
 * service.c: see service.h.  The loop is deliberately simple: one client
 * at a time per process, with more processes for concurrency, as in
 * Postfix's single_server.
 */
#include "service.h"
#include "conf.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char *svc_name;

/* maillog_file: from now on this daemon's lines go to postlogd.  The
 * socket is connected here, before any chroot, as syslog's would be. */
static void
service_log_setup(void)
{
	const char *file = conf_str("maillog_file");
	struct buf sock = BUF_INIT, err = BUF_INIT;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;

	if (!*file || log_stderr_only())
		return;
	/* a root daemon that has to create the file gives it to
	 * mail_owner, the user postlogd runs as */
	if (geteuid() == 0 && conf_privileged() && priv_owner(&uid, &gid) < 0) {
		uid = (uid_t)-1;
		gid = (gid_t)-1;
	}
	conf_queue_path(&sock, LOG_POSTLOG_SOCKET);
	if (log_postlog_open(buf_str(&sock), file, uid, gid, &err) < 0)
		msg_warn("%s; logging to syslog", buf_str(&err));
	buf_free(&sock);
	buf_free(&err);
}

/* A daemon's last words go to the master too ("F" TEXT "\n" on the
 * status pipe, one write of at most PIPE_BUF bytes, so it is never
 * interleaved with B/I), which shows them in mailq when the service
 * keeps failing: the log alone may be where nobody looks. */
static void
fatal_to_master(const char *text)
{
	struct buf m = BUF_INIT;
	size_t i;

	buf_addc(&m, 'F');
	for (i = 0; text[i] && m.len < 400; i++)
		buf_addc(&m, (unsigned char)text[i] < ' ' ? ' ' : text[i]);
	buf_addc(&m, '\n');
	(void)!write(SERVICE_STATUS_FD, m.data, m.len);
	buf_free(&m);
}

int
service_init(const char *progname, int argc, char **argv)
{
	const char *dir = NULL;
	struct buf err = BUF_INIT;
	int i;

	int first_o = 0, j;

	svc_name = xstrdup(progname);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-C") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "-s") && i + 1 < argc) {
			free(svc_name);
			svc_name = xstrdup(argv[++i]);
		} else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
			if (!first_o)
				first_o = i;
			i++;
		} else if (!strcmp(argv[i], "-v"))
			msg_verbose = 1;
		else
			break;
	}
	log_init(progname, 0);
	{
		const char *m = getenv("HERMOD_MASTER");

		if (m && *m == '1')
			log_set_fatal_hook(fatal_to_master);
	}
	signal(SIGPIPE, SIG_IGN);
	if (conf_load(dir, &err) < 0)
		msg_fatal("%s", buf_str(&err));
	buf_free(&err);
	/* master.conf "-o name=value": per-service overrides, as in Postfix */
	for (j = first_o; first_o && j < i; j++) {
		char *eq, *name;

		if (strcmp(argv[j], "-o") || j + 1 >= i)
			continue;
		name = xstrdup(argv[++j]);
		if (!(eq = strchr(name, '=')))
			msg_fatal("-o %s: want name=value", name);
		*eq = 0;
		if (!conf_known(name))
			msg_fatal("-o %s: unknown parameter", name);
		conf_set(name, eq + 1);
		free(name);
	}
	service_log_setup();
	return i;
}

const char *
service_name(void)
{
	return svc_name ? svc_name : "unknown";
}

/* Outside the master (development, tests): HERMOD_STANDALONE_LISTEN=path
 * makes the program bind that Unix socket itself. */
static int
standalone_listen(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		msg_fatal("%s: socket path too long", path);
	memcpy(sun.sun_path, path, strlen(path));
	unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 128) < 0)
		msg_fatal("listen on %s: %s", path, strerror(errno));
	return fd;
}

int
service_listen_fd(void)
{
	static int standalone = -1;
	const char *m = getenv("HERMOD_MASTER");
	const char *sl = getenv("HERMOD_STANDALONE_LISTEN");
	struct stat st;

	if (m && *m == '1') {
		if (fstat(SERVICE_LISTEN_FD, &st) < 0 || !S_ISSOCK(st.st_mode))
			return -1;
		return SERVICE_LISTEN_FD;
	}
	if (sl && *sl) {
		if (standalone < 0)
			standalone = standalone_listen(sl);
		return standalone;
	}
	return -1;
}

static void
status(char c)
{
	const char *m = getenv("HERMOD_MASTER");

	if (m && *m == '1')
		(void)!write(SERVICE_STATUS_FD, &c, 1);
}

void
service_busy(void)
{
	status('B');
}

void
service_idle(void)
{
	status('I');
}

void
service_accept_loop(void (*handler)(int fd, void *ctx), void *ctx, int forever)
{
	int lfd = service_listen_fd();
	long long max_use = conf_int("max_use");
	long long max_idle = conf_time("max_idle");
	long long used = 0;

	if (lfd < 0)
		msg_fatal("no listening socket: this program is started by hermod-master");
	set_nonblock(lfd, 1);
	service_idle();
	for (;;) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		int r, cfd;

		r = poll(&p, 1, forever || max_idle <= 0 ? -1 : (int)(max_idle * 1000));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			msg_fatal("poll: %s", strerror(errno));
		if (r == 0)
			exit(0);	/* idle for max_idle */
		/* Several processes share the socket; losing the race is normal. */
		cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
				continue;
			msg_fatal("accept: %s", strerror(errno));
		}
		set_nonblock(cfd, 0);
		if (!forever)
			service_busy();
		handler(cfd, ctx);
		close(cfd);
		if (!forever)
			service_idle();
		if (!forever && max_use > 0 && ++used >= max_use)
			exit(0);
	}
}

int
priv_owner(uid_t *uid, gid_t *gid)
{
	struct passwd *pw = getpwnam(conf_str("mail_owner"));

	if (!pw) {
		msg_error("mail_owner %s: no such user", conf_str("mail_owner"));
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

/* The gid and uid part of a drop, and the check that it holds. */
static int
set_ids(uid_t uid, gid_t gid)
{
	if (setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return -1;
	if (setuid(0) == 0 || seteuid(0) == 0) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

int
priv_drop_to(uid_t uid, gid_t gid, const char *name)
{
	if (uid == 0) {
		errno = EPERM;
		return -1;
	}
	if (geteuid() == 0) {
		if (name) {
			if (initgroups(name, gid) < 0)
				return -1;
		} else if (setgroups(1, &gid) < 0)
			return -1;
	}
	return set_ids(uid, gid);
}

int
priv_drop_to_owner_chroot(const char *dir)
{
	const char *owner = conf_str("mail_owner");
	uid_t uid;
	gid_t gid;

	if (!conf_privileged() || geteuid() != 0)
		return 0;
	if (priv_owner(&uid, &gid) < 0)
		exit(75);
	if (uid == 0)
		msg_fatal("mail_owner %s has uid 0", owner);
	if (initgroups(owner, gid) < 0)
		msg_fatal("initgroups %s: %s", owner, strerror(errno));
	/* the postlog socket is connected already; the file for the
	 * fallback cannot be opened from inside */
	log_postlog_keep_file();
	if (chroot(dir) < 0 || chdir("/") < 0)
		msg_fatal("chroot %s: %s", dir, strerror(errno));
	if (set_ids(uid, gid) < 0)
		msg_fatal("cannot drop privileges to %s: %s", owner, strerror(errno));
	return 1;
}

void
priv_drop_to_owner(void)
{
	uid_t uid;
	gid_t gid;

	if (!conf_privileged() || geteuid() != 0)
		return;
	if (priv_owner(&uid, &gid) < 0)
		exit(75);
	if (priv_drop_to(uid, gid, conf_str("mail_owner")) < 0)
		msg_fatal("cannot drop privileges to %s: %s", conf_str("mail_owner"), strerror(errno));
}
