/*
 * popd: the POP3 server (RFC 1939, 2449, 2595, 5034).
 *
 *   under hermod-master:  popd -C DIR -s pop3 [-o name=value ...]
 *                          (listener on fd 3, one client per process at a
 *                          time, each session in a child process)
 *   from inetd & co.:     popd -i [-C DIR] [-o name=value ...]
 *                          (one session on stdin/stdout)
 *
 * Privileges (privileged instance started as root): the TLS key is read
 * as root at start; each session runs in its own process which, before
 * reading a byte from the client, takes mail_owner's ids as effective
 * ids (keeping root only as the saved id) and after a successful login
 * switches to the mail user's uid and gid for good (priv_drop_to) before
 * the mailbox is opened.  In a rootless instance there is nothing to
 * switch.
 */
#include "pop3_session.h"
#include "conf.h"
#include "service.h"
#include "tls.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct pop3_opts opts;

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

/* Before the first byte from the client: effective ids of mail_owner. */
static void
preauth_drop(void)
{
	uid_t uid;
	gid_t gid;

	if (!opts.privileged)
		return;
	if (priv_owner(&uid, &gid) < 0)
		_exit(75);
	if (setgroups(1, &gid) < 0 || setegid(gid) < 0 || seteuid(uid) < 0)
		msg_fatal("cannot take the ids of %s: %s", conf_str("mail_owner"), strerror(errno));
}

static void
serve(int rfd, int wfd)
{
	struct buf client = BUF_INIT;
	struct pop3_opts o = opts;

	client_info(rfd, &client, &o.loopback);
	o.client = buf_str(&client);
	preauth_drop();
	pop3_session(rfd, wfd, &o);
	buf_free(&client);
}

static void
handler(int fd, void *ctx)
{
	pid_t pid;
	int st;

	(void)ctx;
	if ((pid = fork()) < 0) {
		msg_error("fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		close(SERVICE_LISTEN_FD);
		serve(fd, fd);
		_exit(0);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}

int
main(int argc, char **argv)
{
	struct buf err = BUF_INIT;
	int inetd = 0, i, j;
	const char *cert, *key;

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
	i = service_init("popd", argc, argv);
	if (i < argc)
		msg_fatal("usage: popd [-i] [-C dir] [-s name] [-o name=value] [-v]");
	opts.privileged = conf_privileged() && geteuid() == 0;
	opts.wrapper = conf_bool("pop3_tls_wrappermode");
	cert = conf_str("pop3_tls_cert_file");
	key = conf_str("pop3_tls_key_file");
	if (*cert && access(cert, R_OK) == 0) {
		if (!(opts.tls = tls_server_ctx(cert, key, &err)))
			msg_warn("TLS disabled: %s", buf_str(&err));
	} else if (opts.wrapper)
		msg_warn("TLS certificate %s not readable", cert);
	if (opts.wrapper && !opts.tls)
		msg_fatal("pop3_tls_wrappermode = yes needs a usable certificate (pop3_tls_cert_file)");
	buf_free(&err);
	if (inetd) {
		serve(0, 1);
		return 0;
	}
	service_accept_loop(handler, NULL, 0);
	return 0;
}
