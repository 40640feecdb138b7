/*
 * access_proxy: the login process's side of a session that is not handed
 * to the mail process (TLS, whose keys the mail process must not hold,
 * and inetd's separate pipes): writing to the client, the byte proxy
 * between the client and the mail process, and the lingering close.
 * popd and imapd share it (access.h).
 */
#include "access.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void
on_alarm(int sig)
{
	(void)sig;
	_exit(0);	/* stuck in a TLS read or write: the session is dropped */
}

void
access_watchdog(const struct access_conn *c)
{
	static int installed;

	if (!installed) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_alarm;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGALRM, &sa, NULL) == 0)
			installed = 1;
	}
	/* a backstop for blocking TLS calls: twice the idle time */
	alarm((unsigned)(c->idle_ms / 1000 * 2 + 10));
}

int
access_client_write(const struct access_conn *c, const char *p, size_t n)
{
	size_t off = 0;

	access_watchdog(c);
	while (off < n) {
		if (c->ssl) {
			int w = SSL_write(c->ssl, p + off, (int)(n - off > INT32_MAX ? INT32_MAX : n - off));

			if (w <= 0)
				return -1;
			off += (size_t)w;
		} else {
			ssize_t w = write(c->wfd, p + off, n - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return -1;
			off += (size_t)w;
		}
	}
	return 0;
}

int
access_handable(const struct access_conn *c)
{
	struct stat a, b;

	if (c->ssl || fstat(c->rfd, &a) < 0 || !S_ISSOCK(a.st_mode))
		return 0;
	return c->rfd == c->wfd || (fstat(c->wfd, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino);
}

/*
 * The proxy never waits for the mail process to take bytes: it may be
 * waiting itself for its replies to be taken (a client that pipelines
 * more commands than the socketpair holds, while the replies to the
 * first ones fill the other direction, deadlocked both processes in
 * write()).  Client bytes the mail process has not taken yet wait in
 * tomail, and no more is read from the client until they are gone, so
 * the buffer stays bounded and the client is slowed down by TCP itself.
 *
 * The end of the client's input (EOF on a pipe, a TCP half-close, a TLS
 * close_notify) is not the end of the session: inetd scripts and "nc -q"
 * clients send every command and then half-close.  Once tomail is
 * empty it is passed on as a half-close of the socketpair, so the mail
 * process still reads, answers and carries out every command sent
 * before it, then sees EOF itself; the proxy carries the answers to the
 * client until the mail process closes its end.  Likewise, when the
 * mail process is gone (QUIT/LOGOUT, [IN-USE], autologout) while client
 * bytes are still to be passed on, what it wrote before it closed is
 * still in the socketpair and goes to the client first.  Only a client
 * that cannot be written to any more ends the proxy at once.
 *
 * Each blocking write to the client runs under the watchdog; the mail
 * process does the autologout, the poll timeout here is only a
 * backstop.
 */
int
access_proxy(const struct access_conn *c, int data, const char *pending, size_t plen,
    int *client_eof)
{
	char tmp[65536];
	struct pollfd p[2];
	struct buf tomail = BUF_INIT;
	int tmo = (int)(c->idle_ms > INT32_MAX / 4 ? -1 : c->idle_ms * 2 + 10000);
	int client_done = 0;	/* nothing more comes from the client */
	int shut = 0;		/* ... and the mail process was told so */
	int ret = 0;

	*client_eof = 0;
	if (plen)
		buf_add(&tomail, pending, plen);
	for (;;) {
		int want, ready, pr;

		if (tomail.len) {
			ssize_t w = send(data, tomail.data, tomail.len, MSG_DONTWAIT | MSG_NOSIGNAL);

			if (w > 0)
				buf_consume(&tomail, (size_t)w);
			else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				/* mail process gone; relay what it said */
				buf_reset(&tomail);
				client_done = 1;
			}
		}
		if (client_done && !tomail.len && !shut) {
			shut = 1;
			if (shutdown(data, SHUT_WR) < 0 && errno != ENOTCONN) {
				msg_warn("client %s: shutdown: %s", c->client, strerror(errno));
				ret = -1;
				break;
			}
		}
		want = !client_done && !tomail.len;
		ready = want && c->ssl && SSL_pending(c->ssl) > 0;
		alarm(0);
		/* a negative fd is skipped by poll */
		p[0].fd = want ? c->rfd : -1;
		p[0].events = POLLIN;
		p[0].revents = 0;
		p[1].fd = data;
		p[1].events = POLLIN | (tomail.len ? POLLOUT : 0);
		p[1].revents = 0;
		do
			pr = poll(p, 2, ready ? 0 : tmo);
		while (pr < 0 && errno == EINTR);
		if (pr < 0 || (pr == 0 && !ready)) {
			if (pr == 0)
				msg_info("client %s: session idle for too long", c->client);
			ret = -1;
			break;
		}
		if (ready || p[0].revents) {
			ssize_t r;

			access_watchdog(c);
			if (c->ssl) {
				int n = SSL_read(c->ssl, tmp, sizeof(tmp));

				/* 0 with ZERO_RETURN: close_notify (or, with
				 * SSL_OP_IGNORE_UNEXPECTED_EOF, a bare TCP
				 * EOF); anything else is a broken connection */
				r = n > 0 ? n : SSL_get_error(c->ssl, n) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
			} else {
				do
					r = read(c->rfd, tmp, sizeof(tmp));
				while (r < 0 && errno == EINTR);
			}
			if (r < 0) {	/* client gone: the mail process sees EOF */
				ret = -1;
				break;
			}
			if (r == 0)
				client_done = *client_eof = 1;
			else
				buf_add(&tomail, tmp, (size_t)r);
		}
		/* POLLOUT alone: the top of the loop passes tomail on */
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r;

			do
				r = read(data, tmp, sizeof(tmp));
			while (r < 0 && errno == EINTR);
			if (r <= 0)
				break;	/* the mail process ended the session */
			if (access_client_write(c, tmp, (size_t)r) < 0) {
				ret = -1;
				break;
			}
		}
	}
	alarm(0);
	buf_free(&tomail);
	return ret;
}

/*
 * A socket closed with input still unread sends the client a TCP reset,
 * and the reset can destroy replies still on their way (a client that
 * pipelined past QUIT, past a refusal or past the last failed login).
 * So our FIN goes after the last reply, and what the client still sends
 * is read and dropped until it closes too or linger_ms passes, as in
 * Apache's lingering close.  Not a socket (a pipe from inetd's caller):
 * a pipe has no reset, nothing to do.
 */
void
access_linger_close(const struct access_conn *c, long long linger_ms)
{
	char tmp[4096];
	struct pollfd p = { .fd = c->rfd, .events = POLLIN };
	int64_t end = mono_ms() + linger_ms;

	if (shutdown(c->wfd, SHUT_WR) < 0)
		return;
	for (;;) {
		int64_t left = end - mono_ms();
		ssize_t r;
		int pr;

		if (left <= 0)
			return;
		pr = poll(&p, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			return;
		r = read(c->rfd, tmp, sizeof(tmp));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
	}
}
