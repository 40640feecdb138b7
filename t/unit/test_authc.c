/*
 * test_authc.c: unit tests for lib/authc.c against a fake authd (a
 * child process on a socket in /tmp): the request it sends, ok / fail /
 * tempfail replies, and every malformed or missing reply, which must be
 * a temporary failure and never a success: too few fields, a bad uid, a
 * relative mailbox, a Maildir without its slash, a wrong record type,
 * garbage bytes, a closed connection, no reply within ipc_timeout, no
 * authd at all.
 */
#include "test.h"
#include "authc.h"
#include "conf.h"
#include "proto.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/test_authc.XXXXXX";
static struct buf sock = BUF_INIT;

/* Start a fake authd that answers one request with the given reply
 * ("ok", "fail", ... see below).  Returns its pid. */
static pid_t
fake_authd(const char *mode)
{
	struct sockaddr_un sun;
	int lfd, fd;
	pid_t pid;

	unlink(buf_str(&sock));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", buf_str(&sock));
	if ((lfd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(lfd, 5) < 0) {
		perror("fake authd");
		exit(2);
	}
	fflush(stdout);
	if ((pid = fork()) != 0) {
		close(lfd);
		return pid;
	}
	if ((fd = accept(lfd, NULL, NULL)) < 0)
		_exit(3);
	{
		struct proto_msg m;
		int good;

		proto_msg_init(&m);
		good = proto_recv(fd, &m) == 1 && m.type == PROTO_AUTH_REQ && m.nfields == 4 &&
		    !strcmp(proto_field(&m, 0), "smtpd") && !strcmp(proto_field(&m, 1), "alice") &&
		    !strcmp(proto_field(&m, 2), "pw") && !strcmp(proto_field(&m, 3), "192.0.2.1");
		if (!strcmp(mode, "ok"))
			proto_send_strs(fd, PROTO_AUTH_REPLY, "ok", "alice", "1001", "1002",
			    "/srv/mail/alice", "maildir", "/srv/mail/alice/Maildir/", "virtual user", NULL);
		else if (!strcmp(mode, "mbox"))
			proto_send_strs(fd, PROTO_AUTH_REPLY, "ok", "bob", "1003", "100",
			    "/home/bob", "mbox", "/var/mail/bob", "system user", NULL);
		else if (!strcmp(mode, "fail"))
			proto_send_strs(fd, PROTO_AUTH_REPLY, "fail", "", "", "", "", "", "", "x", NULL);
		else if (!strcmp(mode, "tempfail"))
			proto_send_strs(fd, PROTO_AUTH_REPLY, "tempfail", "", "", "", "", "", "", "x", NULL);
		else if (!strcmp(mode, "short"))
			proto_send_strs(fd, PROTO_AUTH_REPLY, "ok", "alice", "1001", NULL);
		else if (!strcmp(mode, "baduid"))
			proto_send_strs(fd, PROTO_AUTH_REPLY, "ok", "alice", "-1", "1002",
			    "/h", "maildir", "/h/Maildir/", "", NULL);
		else if (!strcmp(mode, "relative"))
			proto_send_strs(fd, PROTO_AUTH_REPLY, "ok", "alice", "1", "1",
			    "/h", "mbox", "mail/alice", "", NULL);
		else if (!strcmp(mode, "noslash"))
			proto_send_strs(fd, PROTO_AUTH_REPLY, "ok", "alice", "1", "1",
			    "/h", "maildir", "/h/Maildir", "", NULL);
		else if (!strcmp(mode, "badtype"))
			proto_send_strs(fd, PROTO_AUTH_REPLY, "ok", "alice", "1", "1",
			    "/h", "mh", "/h/Mail/", "", NULL);
		else if (!strcmp(mode, "noname"))
			proto_send_strs(fd, PROTO_AUTH_REPLY, "ok", "", "1", "1",
			    "/h", "mbox", "/h/mbox", "", NULL);
		else if (!strcmp(mode, "wrongrec"))
			proto_send_strs(fd, PROTO_OK, "ok", NULL);
		else if (!strcmp(mode, "weird"))
			proto_send_strs(fd, PROTO_AUTH_REPLY, "maybe", NULL);
		else if (!strcmp(mode, "garbage"))
			(void)!write(fd, "HELLO THERE, GENERAL KENOBI\r\n", 29);
		else if (!strcmp(mode, "silent"))
			sleep(5);
		/* "close": nothing */
		close(fd);
		_exit(good ? 0 : 1);
	}
}

static int
reap(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int
check_mode(const char *mode, struct auth_user *u)
{
	pid_t pid = fake_authd(mode);
	int r = authc_check("smtpd", "alice", "pw", "192.0.2.1", u);

	if (!strcmp(mode, "silent"))
		kill(pid, SIGKILL);
	if (reap(pid) != 0 && strcmp(mode, "silent"))
		printf("# fake authd for %s saw an unexpected request\n", mode);
	return r;
}

int
main(void)
{
	struct buf conf = BUF_INIT, err = BUF_INIT, cf = BUF_INIT;
	struct auth_user u;
	static const char *bad[] = { "short", "baduid", "relative", "noslash", "badtype",
		"noname", "wrongrec", "weird", "garbage", "close", NULL };
	char big[2000];
	int64_t t0;
	pid_t pid;
	int i, fd, r;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	buf_printf(&cf, "%s/hermod.conf", dir);
	buf_printf(&conf, "queue_directory = %s\nauthd_socket = authd.sock\nipc_timeout = 1s\n", dir);
	if (write_file_atomic(buf_str(&cf), conf.data, conf.len, 0644) < 0 || conf_load(dir, &err) < 0) {
		printf("# conf: %s\n", buf_str(&err));
		return 2;
	}
	buf_printf(&sock, "%s/authd.sock", dir);

	/* no authd */
	r = authc_check("smtpd", "alice", "pw", "192.0.2.1", &u);
	is_int(r, AUTHC_TEMPFAIL, "no authd: tempfail");
	ok(u.name == NULL && u.mailbox == NULL, "nothing filled in");

	r = check_mode("ok", &u);
	is_int(r, AUTHC_OK, "ok reply");
	is_str(u.name, "alice", "name");
	is_int(u.uid, 1001, "uid");
	is_int(u.gid, 1002, "gid");
	is_str(u.home, "/srv/mail/alice", "home");
	is_str(u.mailbox, "/srv/mail/alice/Maildir/", "mailbox");
	is_int(u.maildir, 1, "maildir");
	auth_user_free(&u);
	ok(u.name == NULL, "auth_user_free resets");
	auth_user_free(&u);	/* twice is harmless */

	r = check_mode("mbox", &u);
	is_int(r, AUTHC_OK, "ok reply (mbox)");
	is_str(u.mailbox, "/var/mail/bob", "mbox path");
	is_int(u.maildir, 0, "not maildir");
	auth_user_free(&u);

	is_int(check_mode("fail", &u), AUTHC_FAIL, "fail reply");
	ok(u.name == NULL, "fail fills nothing");
	is_int(check_mode("tempfail", &u), AUTHC_TEMPFAIL, "tempfail reply");
	for (i = 0; bad[i]; i++) {
		r = check_mode(bad[i], &u);
		is_int(r, AUTHC_TEMPFAIL, "malformed reply (%s): tempfail", bad[i]);
		ok(u.name == NULL && u.home == NULL && u.mailbox == NULL, "%s: nothing left filled in", bad[i]);
		auth_user_free(&u);
	}

	t0 = mono_ms();
	r = check_mode("silent", &u);
	is_int(r, AUTHC_TEMPFAIL, "no reply: tempfail");
	ok(mono_ms() - t0 >= 900 && mono_ms() - t0 < 4000, "after ipc_timeout (%lld ms)",
	    (long long)(mono_ms() - t0));

	/* over-long input never reaches authd */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	is_int(authc_check("smtpd", "alice", big, "", &u), AUTHC_FAIL, "over-long password: fail");
	is_int(authc_check("smtpd", big, "pw", "", &u), AUTHC_FAIL, "over-long user: fail");

	/* asynchronous use */
	pid = fake_authd("ok");
	fd = authc_send("smtpd", "alice", "pw", "192.0.2.1");
	ok(fd >= 0, "authc_send");
	r = fd >= 0 ? authc_recv(fd, &u) : -2;
	is_int(r, AUTHC_OK, "authc_recv");
	is_str(u.name, "alice", "authc_recv name");
	auth_user_free(&u);
	if (fd >= 0)
		close(fd);
	is_int(reap(pid), 0, "fake authd saw the request fields");
	unlink(buf_str(&sock));
	ok(authc_send("smtpd", "alice", "pw", "") < 0, "authc_send without authd: -1");

	buf_reset(&conf);
	buf_printf(&conf, "rm -rf %s", dir);
	(void)!system(buf_str(&conf));
	buf_free(&conf);
	buf_free(&err);
	buf_free(&cf);
	buf_free(&sock);
	return done_testing();
}
