/*
 * access: the session runner of the mailbox access daemons (popd,
 * imapd): the privilege split described in access.h, the credential
 * question between the login process and its parent, and the hand-off
 * of the client descriptor to the mail process.
 */
#include "access.h"
#include "conf.h"
#include "log.h"
#include "service.h"
#include "tls.h"
#include "util.h"
#include "proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static struct access_opts opts;
static const struct access_daemon *dmn;

static void
client_info(int fd, struct buf *name, int *loopback)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char a[INET6_ADDRSTRLEN];

	*loopback = 0;
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) {
		/* a pipe (popd -i started by hand or by a test): this host */
		buf_adds(name, "local");
		*loopback = errno == ENOTSOCK;
		return;
	}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		buf_printf(name, "%s", a);
		*loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		buf_printf(name, "%s", a);
		*loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && s6->sin6_addr.s6_addr[12] == 127);
	} else {
		buf_adds(name, "local");
		*loopback = ss.ss_family == AF_UNIX;
	}
}

/* Each daemon writes a whole answer at once (and the TLS proxy a whole
 * record), so Nagle's algorithm only delays the last segment of an
 * answer until the client's delayed ACK: one RETR or FETCH at a time
 * over TLS ran 18 times slower with it (t/bench/pop3-retr). */
static void
client_nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 &&
	    errno != ENOTSOCK && errno != EOPNOTSUPP && errno != ENOPROTOOPT)
		msg_warn("TCP_NODELAY: %s", strerror(errno));
}

static int inetd;
/* the service process's report pipe (see report_session) */
static int report_fd = -1;

/* Descriptors a session child must not keep: the master's listener and
 * status pipe (not ours under inetd). */
static void
close_service_fds(void)
{
	static int closed;

	/* once: the numbers are reused (socketpair) after the first close */
	if (inetd || closed)
		return;
	close(SERVICE_LISTEN_FD);
	close(SERVICE_STATUS_FD);
	closed = 1;
}

/* The ids are uid/gid for real, effective and saved, and 0 is out of
 * reach.  0 ok, -1 not so. */
static int
check_ids(uid_t uid, gid_t gid)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return -1;
	if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid)
		return -1;
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
		return -1;
	return 0;
}

/* Keep fd's number, but let it point at /dev/null. */
static void
devnull_over(int fd)
{
	int n = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (n < 0)
		msg_fatal("/dev/null: %s", strerror(errno));
	if (n != fd) {
		if (dup2(n, fd) < 0)
			msg_fatal("dup2: %s", strerror(errno));
		close(n);
	}
}

/*
 * inetd and xinetd pass the client's socket as stderr too.  Kept there,
 * the root parent and the mail process would hold the client connection
 * (against the privilege separation above, and a process that lives on
 * would keep the client from seeing the end of the session), and
 * anything written to stderr would reach the client inside the POP3
 * stream.  So stderr that is the same file as stdin or stdout points at
 * /dev/null; the log goes to syslog.
 */
static void
stderr_off_client(void)
{
	struct stat e, c;
	int fd;

	if (fstat(2, &e) < 0)
		return;
	for (fd = 0; fd <= 1; fd++)
		if (fstat(fd, &c) == 0 && c.st_dev == e.st_dev && c.st_ino == e.st_ino) {
			devnull_over(2);
			return;
		}
}

/* The certificate and key files (checked at start), read again by each
 * login process. */
static char *tls_cert, *tls_key;

static void
login_child(int rfd, int wfd, const struct access_opts *o0, int ctl, int data)
{
	struct access_opts lo = *o0;
	const struct access_opts *o = &lo;
	uid_t uid;
	gid_t gid;

	close_service_fds();
	if (report_fd >= 0) {	/* only the session parent reports */
		close(report_fd);
		report_fd = -1;
	}
	/*
	 * Only the login process holds the TLS key: it reads it itself,
	 * before it drops root.  The service process, the session parent
	 * and the mail process (forked from them) never had it, so none of
	 * them has to free a context, which rewrites the pages it shares
	 * with its parent (an IDLE session's mail process was 90 KB larger).
	 */
	if (tls_cert) {
		struct buf err = BUF_INIT;

		if (!(lo.tls = tls_server_ctx(tls_cert, tls_key, &err))) {
			msg_error("client %s: TLS disabled: %s", o->client, buf_str(&err));
			if (lo.wrapper)
				_exit(0);
		}
		buf_free(&err);
	}
	if (o->privileged) {
		priv_drop_to_owner();
		if (priv_owner(&uid, &gid) < 0 || check_ids(uid, gid) < 0)
			msg_fatal("login process: privileges not dropped to %s", conf_str("mail_owner"));
	}
	/* holds the TLS key: no core dumps, no ptrace by the same uid */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	dmn->login(rfd, wfd, o, ctl, data);
	_exit(0);
}

static void
mail_child(int data, const struct access_opts *o, struct auth_user *au, int tls)
{
	struct access_opts mo = *o;
	struct passwd *pw;

	close_service_fds();
	if (report_fd >= 0) {	/* only the session parent reports */
		close(report_fd);
		report_fd = -1;
	}
	/* the mail process never talks TLS (and never had the key) */
	mo.tls = NULL;
	if (o->privileged) {
		pw = getpwnam(au->name);
		if (priv_drop_to(au->uid, au->gid, pw && pw->pw_uid == au->uid ? au->name : NULL) < 0 ||
		    check_ids(au->uid, au->gid) < 0) {
			msg_error("client %s: user=<%s>: cannot switch to uid %lu: %s", o->client,
			    au->name, (unsigned long)au->uid, strerror(errno));
			(void)write_full(data, dmn->uid_fail, strlen(dmn->uid_fail));
			_exit(75);
		}
	}
	dmn->mail(data, &mo, au, tls);
	_exit(0);
}

/*
 * PREFIX_max_connections_per_user: a session holds one of its user's
 * slots, QUEUE/pid/sessions/PREFIX.HASH.K for K below the cap, by an
 * flock that its mail process inherits, so the kernel drops it when
 * that process ends, however it ends: no count can go stale.  Sessions
 * of every listener of the daemon (imap and imaps), of every service
 * process and of inetd count together.  HASH is FNV-1a of the user name
 * (two users whose names collide would share a cap).  Returns the
 * descriptor; -1 when every slot is taken; -2 when the cap is off or
 * the slots cannot be looked at (said in the log: the session goes on
 * rather than fail every login).
 */
static int
user_slot(const char *user)
{
	struct buf key = BUF_INIT, path = BUF_INIT;
	long long max, k;
	int fd = -2;

	buf_printf(&key, "%s_max_connections_per_user", dmn->prefix);
	max = conf_int(buf_str(&key));
	buf_free(&key);
	if (max <= 0)
		return -2;
	conf_queue_path(&path, "pid/sessions");
	if (mkdir(buf_str(&path), 0700) < 0 && errno != EEXIST) {
		msg_warn("%s: mkdir: %s (no per-user cap)", buf_str(&path), strerror(errno));
		buf_free(&path);
		return -2;
	}
	for (k = 0; k < max; k++) {
		buf_reset(&path);
		conf_queue_path(&path, "pid/sessions/");
		buf_printf(&path, "%s.%016llx.%lld", dmn->prefix,
		    (unsigned long long)hash_fnv1a(user, strlen(user)), k);
		if ((fd = open(buf_str(&path), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0) {
			msg_warn("%s: open: %s (no per-user cap)", buf_str(&path), strerror(errno));
			fd = -2;
			break;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno != EWOULDBLOCK) {
			msg_warn("%s: flock: %s (no per-user cap)", buf_str(&path), strerror(errno));
			close(fd);
			fd = -2;
			break;
		}
		close(fd);
		fd = -1;
	}
	buf_free(&path);
	return fd;
}

/* A credential field from the login process: bounded, no NUL. */
static int
cred_ok(const struct proto_msg *m, size_t i)
{
	return m->fields[i].len <= ACCESS_MAX_CRED && strlen(m->fields[i].data) == m->fields[i].len;
}

/*
 * The parent's side of a session: answer the login process's
 * credential checks (asking authd) until one succeeds, then fork the
 * mail process.  Returns its pid, or -1 when there is none.
 */
static pid_t
monitor(int ctl, int data, const struct access_opts *o)
{
	struct proto_msg m;
	struct auth_user au;
	const char *res;
	long fails = 0, limit = conf_int("auth_failure_limit");
	pid_t pid = -1;
	int r, tls, slot = -2;

	for (;;) {
		proto_msg_init(&m);
		r = proto_recv(ctl, &m);
		if (r != 1) {
			if (r < 0 && errno == EPROTO)
				msg_warn("client %s: malformed record from the login process", o->client);
			proto_msg_free(&m);
			return -1;
		}
		if (m.type != PROTO_AUTH_REQ || m.nfields != 3 || !cred_ok(&m, 0) || !cred_ok(&m, 1)) {
			msg_warn("client %s: unexpected record from the login process", o->client);
			explicit_bzero(m.raw.data, m.raw.len);
			proto_msg_free(&m);
			return -1;
		}
		tls = !strcmp(proto_field(&m, 2), "tls");
		memset(&au, 0, sizeof(au));
		r = authc_check(dmn->name, proto_field(&m, 0), proto_field(&m, 1), o->client, &au);
		explicit_bzero(m.raw.data, m.raw.len);
		proto_msg_free(&m);
		if (r == AUTHC_OK && o->privileged && (au.uid == 0 || au.gid == 0)) {
			msg_warn("client %s: user=<%s>: uid or gid 0 may not log in", o->client, au.name);
			auth_user_free(&au);
			r = AUTHC_FAIL;
		}
		if (r == AUTHC_OK && (slot = user_slot(au.name)) == -1) {
			msg_warn("client %s: user=<%s>: refused: %s_max_connections_per_user sessions "
			    "of this user already", o->client, au.name, dmn->prefix);
			auth_user_free(&au);
			r = ACCESS_USER_LIMIT;
		}
		if (r == AUTHC_OK) {
			if ((pid = fork()) < 0) {
				msg_error("fork: %s", strerror(errno));
				r = AUTHC_TEMPFAIL;
			} else if (pid == 0) {
				close(ctl);
				mail_child(data, o, &au, tls);
			}
			/* the mail process holds the slot (and only it) */
			if (slot >= 0)
				close(slot);
		}
		res = r == AUTHC_OK ? "ok" : r == AUTHC_FAIL ? "fail" : r == ACCESS_USER_LIMIT ? "limit" :
		    "tempfail";
		if (proto_send_strs(ctl, PROTO_AUTH_REPLY, res, r == AUTHC_OK ? au.name : "", (char *)NULL) < 0 &&
		    r != AUTHC_OK)
			return -1;
		if (r == AUTHC_OK) {
			auth_user_free(&au);
			return pid;
		}
		/* the login process drops the client at the limit; so do we */
		if (r == AUTHC_FAIL && ++fails >= limit)
			return -1;
	}
}

static void
reap(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}

/*
 * Under the master the session parent does not stay: once the mail
 * process runs it has nothing left to do but wait, and a process per
 * session is most of an IDLE session's memory.  The service process is
 * the subreaper of its sessions, so the mail and login processes become
 * its children when the session parent exits, and the session parent
 * tells it, before exiting, which process the session lives on in now
 * (a record {session parent, mail process} on the report pipe; atomic,
 * being shorter than PIPE_BUF).  1: told, the caller exits; 0: the
 * caller waits for its children itself (inetd, no mail process, a full
 * pipe).
 */
struct report {
	pid_t parent, mail;
};

static int
report_session(pid_t mail)
{
	struct report r;

	if (report_fd < 0 || mail <= 0)
		return 0;
	r.parent = getpid();
	r.mail = mail;
	return write(report_fd, &r, sizeof(r)) == (ssize_t)sizeof(r);
}

static void
serve(int rfd, int wfd)
{
	struct buf client = BUF_INIT;
	struct access_opts o = opts;
	int ctl[2], data[2];
	pid_t login, mail;

	client_info(rfd, &client, &o.loopback);
	if (wfd == rfd)
		client_nodelay(rfd);
	o.client = buf_str(&client);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) < 0)
		goto fail;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, data) < 0) {
		close(ctl[0]);
		close(ctl[1]);
		goto fail;
	}
	if ((login = fork()) < 0) {
		close(ctl[0]);
		close(ctl[1]);
		close(data[0]);
		close(data[1]);
		goto fail;
	}
	if (login == 0) {
		close(ctl[1]);
		close(data[1]);
		login_child(rfd, wfd, &o, ctl[0], data[0]);
	}
	close(ctl[0]);
	close(data[0]);
	/* the client belongs to the login process now */
	devnull_over(rfd);
	if (wfd != rfd)
		devnull_over(wfd);
	mail = monitor(ctl[1], data[1], &o);
	close(ctl[1]);
	close(data[1]);
	buf_free(&client);
	if (report_session(mail))
		return;	/* the service process has them now */
	/* from here on this process only waits */
	release_memory();
	reap(login);
	if (mail > 0)
		reap(mail);
	return;
fail:
	msg_error("client %s: cannot start a session: %s", o.client, strerror(errno));
	buf_free(&client);
}

/*
 * The service process: one per listener, for as long as the master runs
 * it.  Each client gets a session parent forked from it, so that the
 * sessions share the pages the service process set up (configuration,
 * TLS context, code) instead of each exec'ing and building its own:
 * that is most of the memory of an IDLE session.  The service process
 * never waits for a session; it counts the live ones, in all and per
 * client address, against PREFIX_max_connections and
 * PREFIX_max_connections_per_ip, and reaps them at the next accept.
 */
struct live {
	pid_t pid;
	char addr[INET6_ADDRSTRLEN + 8];
};

static struct live *lives;
static size_t nlives, alives;

static int report_rfd = -1;

/* The sessions' reports: a session now lives on in its mail process. */
static void
read_reports(void)
{
	struct report r;
	size_t i;

	while (read(report_rfd, &r, sizeof(r)) == (ssize_t)sizeof(r))
		for (i = 0; i < nlives; i++)
			if (lives[i].pid == r.parent) {
				lives[i].pid = r.mail;
				break;
			}
}

/*
 * A session parent writes its report before it exits, so once waitpid
 * has returned it, the report is in the pipe: reading the reports
 * before forgetting a pid never loses a session that moved on to its
 * mail process.  Login processes (orphaned too) are reaped and ignored.
 */
static void
reap_sessions(void)
{
	pid_t pid;
	size_t i;

	read_reports();
	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
		read_reports();
		for (i = 0; i < nlives; i++)
			if (lives[i].pid == pid) {
				lives[i] = lives[--nlives];
				break;
			}
	}
}

/* Tell a client that there is no room, without waiting for it. */
static void
refuse(int fd, const char *client, const char *why)
{
	const char *m = dmn->busy;

	msg_warn("client %s: refused: %s", client, why);
	set_nonblock(fd, 1);
	(void)send(fd, m, strlen(m), MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void
handler(int fd, void *ctx)
{
	struct buf name = BUF_INIT, key = BUF_INIT;
	long long max, maxip;
	size_t i, same = 0;
	pid_t pid;
	int lb;

	(void)ctx;
	reap_sessions();
	client_info(fd, &name, &lb);
	buf_printf(&key, "%s_max_connections", dmn->prefix);
	max = conf_int(buf_str(&key));
	buf_reset(&key);
	buf_printf(&key, "%s_max_connections_per_ip", dmn->prefix);
	maxip = conf_int(buf_str(&key));
	for (i = 0; i < nlives; i++)
		if (!strcmp(lives[i].addr, buf_str(&name)))
			same++;
	if (max > 0 && (long long)nlives >= max)
		refuse(fd, buf_str(&name), "too many connections");
	else if (maxip > 0 && (long long)same >= maxip)
		refuse(fd, buf_str(&name), "too many connections from this address");
	else if ((pid = fork()) < 0)
		msg_error("client %s: fork: %s", buf_str(&name), strerror(errno));
	else if (pid == 0) {
		close_service_fds();
		close(report_rfd);
		serve(fd, fd);
		_exit(0);
	} else {
		if (nlives == alives) {
			alives = alives ? alives * 2 : 64;
			lives = xreallocarray(lives, alives, sizeof(*lives));
		}
		lives[nlives].pid = pid;
		snprintf(lives[nlives].addr, sizeof(lives[nlives].addr), "%s", buf_str(&name));
		nlives++;
	}
	buf_free(&name);
	buf_free(&key);
}

int
access_main(const struct access_daemon *d, int argc, char **argv)
{
	struct buf name = BUF_INIT;
	struct buf err = BUF_INIT;
	int i, j;
	const char *cert, *key;

	dmn = d;
	sane_fds();
	/* -i may come anywhere among the common options */
	for (i = j = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-i"))
			inetd = 1;
		else
			argv[j++] = argv[i];
	}
	argv[j] = NULL;
	argc = j;
	i = service_init(d->name, argc, argv);
	if (i < argc)
		msg_fatal("usage: %s [-i] [-C dir] [-s name] [-o name=value] [-v]", d->name);
	opts.privileged = conf_privileged() && geteuid() == 0;
	buf_printf(&name, "%s_tls_wrappermode", d->prefix);
	opts.wrapper = conf_bool(buf_str(&name));
	buf_reset(&name);
	buf_printf(&name, "%s_tls_cert_file", d->prefix);
	cert = conf_str(buf_str(&name));
	buf_reset(&name);
	buf_printf(&name, "%s_tls_key_file", d->prefix);
	key = conf_str(buf_str(&name));
	if (*cert && access(cert, R_OK) == 0) {
		if (!(opts.tls = tls_server_ctx(cert, key, &err)))
			msg_warn("TLS disabled: %s", buf_str(&err));
	} else if (opts.wrapper)
		msg_warn("TLS certificate %s not readable", cert);
	if (opts.wrapper && !opts.tls)
		msg_fatal("%s_tls_wrappermode = yes needs a usable certificate (%s_tls_cert_file)", d->prefix, d->prefix);
	if (opts.tls) {
		/* usable: each login process loads it for itself */
		SSL_CTX_free(opts.tls);
		opts.tls = NULL;
		tls_cert = xstrdup(cert);
		tls_key = xstrdup(key);
	}
	buf_free(&err);
	buf_free(&name);
	if (inetd) {
		stderr_off_client();
		serve(0, 1);
		return 0;
	}
	{
		int rp[2];

		if (pipe2(rp, O_CLOEXEC | O_NONBLOCK) < 0)
			msg_fatal("pipe: %s", strerror(errno));
		report_rfd = rp[0];
		report_fd = rp[1];
		if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
			msg_fatal("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	}
	/* the mail processes look their users up (getpwnam, initgroups):
	 * the NSS modules (libnss_systemd and what it links) loaded here
	 * are shared with every session; loaded in each, they were some
	 * 50 KB of relocated pages per IDLE session */
	if (opts.privileged)
		nss_preload(conf_str("mail_owner"));
	/* forever: the sessions are children of this process, counted here */
	service_accept_loop(handler, NULL, 1);
	return 0;
}

int
access_ask_parent(int ctl, const char *user, const char *pass, int tls)
{
	struct proto_builder b;
	struct proto_msg m;
	const char *res;
	int r, ret = AUTHC_TEMPFAIL;

	proto_build_start(&b, PROTO_AUTH_REQ);
	proto_build_adds(&b, user);
	proto_build_adds(&b, pass);
	proto_build_adds(&b, tls ? "tls" : "plaintext");
	r = proto_send(ctl, &b);
	if (b.out.data)
		explicit_bzero(b.out.data, b.out.len);
	proto_build_free(&b);
	if (r < 0)
		return AUTHC_TEMPFAIL;
	proto_msg_init(&m);
	if (proto_recv(ctl, &m) == 1 && m.type == PROTO_AUTH_REPLY) {
		res = proto_field(&m, 0);
		if (!strcmp(res, "ok"))
			ret = AUTHC_OK;
		else if (!strcmp(res, "fail"))
			ret = AUTHC_FAIL;
		else if (!strcmp(res, "limit"))
			ret = ACCESS_USER_LIMIT;
	}
	proto_msg_free(&m);
	return ret;
}

/*
 * The hand-off record on the data socketpair: 8 bytes (the lengths of
 * meta and pending, big-endian 32 bits each) carrying the client
 * descriptor as SCM_RIGHTS when there is one, then meta and pending.
 * Bounded, so that a broken login process cannot make the mail process
 * allocate without limit.
 */
#define HANDOFF_MAX	(1024 * 1024)

int
access_handoff_send(int data, int cfd, const void *meta, size_t mlen,
    const void *pending, size_t plen)
{
	unsigned char hdr[8];
	struct iovec iov = { hdr, sizeof(hdr) };
	struct msghdr mh;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	ssize_t w;

	if (mlen > HANDOFF_MAX || plen > HANDOFF_MAX)
		return -1;
	be32_put(hdr, (uint32_t)mlen);
	be32_put(hdr + 4, (uint32_t)plen);
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (cfd >= 0) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &cfd, sizeof(int));
	}
	do
		w = sendmsg(data, &mh, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)sizeof(hdr))
		return -1;
	if (write_full(data, meta, mlen) < 0 || write_full(data, pending, plen) < 0)
		return -1;
	return 0;
}

int
access_handoff_recv(int data, int *cfd, struct buf *meta, struct buf *pending)
{
	unsigned char hdr[8];
	struct iovec iov = { hdr, sizeof(hdr) };
	struct msghdr mh;
	struct cmsghdr *c;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	uint32_t mlen, plen;
	ssize_t r;

	*cfd = -1;
	memset(&mh, 0, sizeof(mh));
	memset(&cm, 0, sizeof(cm));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	do
		r = recvmsg(data, &mh, MSG_WAITALL | MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)) && *cfd < 0)
			memcpy(cfd, CMSG_DATA(c), sizeof(int));
	if (r != (ssize_t)sizeof(hdr) || (mh.msg_flags & MSG_CTRUNC))
		goto fail;
	mlen = be32_get(hdr);
	plen = be32_get(hdr + 4);
	if (mlen > HANDOFF_MAX || plen > HANDOFF_MAX)
		goto fail;
	buf_reserve(meta, mlen + 1);
	if (read_full(data, meta->data + meta->len, mlen) != (ssize_t)mlen)
		goto fail;
	meta->len += mlen;
	meta->data[meta->len] = '\0';
	buf_reserve(pending, plen + 1);
	if (read_full(data, pending->data + pending->len, plen) != (ssize_t)plen)
		goto fail;
	pending->len += plen;
	pending->data[pending->len] = '\0';
	return 0;
fail:
	if (*cfd >= 0)
		close(*cfd);
	*cfd = -1;
	return -1;
}
