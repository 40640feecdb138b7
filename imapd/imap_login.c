/*
 * imap_login: the login process of an IMAP session (not-authenticated
 * state, RFC 3501 6.1-6.2): greeting, CAPABILITY, NOOP, LOGOUT, ID,
 * STARTTLS, LOGIN, AUTHENTICATE PLAIN (SASL-IR).  It runs as mail_owner
 * and holds the TLS key; the parent checks credentials with authd.
 * After a successful login the client descriptor itself goes to the mail
 * process (no copying hop); with TLS the login process stays and
 * proxies, since the mail process must not hold the key.
 */
#include "config.h"
#include "imap_session.h"
#include "conf.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>

struct lsess {
	const struct access_opts *o;
	int rfd, wfd, ctl, data;
	SSL *ssl;
	struct imap_parser *p;
	struct buf in, out;
	int eof;
	long bad, fails;
	long long idle_ms;
};

/* The client side as lib/access_proxy.c sees it. */
static struct access_conn
conn(const struct lsess *s)
{
	struct access_conn c = { s->rfd, s->wfd, s->ssl, s->idle_ms, s->o->client };

	return c;
}

static int
lwrite(struct lsess *s, const char *p, size_t n)
{
	struct access_conn c = conn(s);

	return access_client_write(&c, p, n);
}

static int
lflush(struct lsess *s)
{
	int r = 0;

	if (s->out.len)
		r = lwrite(s, s->out.data, s->out.len);
	buf_reset(&s->out);
	if (r < 0)
		s->eof = 1;
	return r;
}

/* 0 got bytes, -1 EOF or error, -2 timeout. */
static int
lfill(struct lsess *s)
{
	char tmp[16384];
	ssize_t r;

	if (!s->ssl || SSL_pending(s->ssl) == 0) {
		struct pollfd p = { .fd = s->rfd, .events = POLLIN };
		int pr;

		do
			pr = poll(&p, 1, s->idle_ms > INT32_MAX ? -1 : (int)s->idle_ms);
		while (pr < 0 && errno == EINTR);
		if (pr == 0)
			return -2;
		if (pr < 0)
			return -1;
	}
	if (s->ssl) {
		int n = SSL_read(s->ssl, tmp, sizeof(tmp));

		if (n <= 0)
			return -1;
		r = n;
	} else {
		do
			r = read(s->rfd, tmp, sizeof(tmp));
		while (r < 0 && errno == EINTR);
		if (r <= 0)
			return -1;
	}
	buf_add(&s->in, tmp, (size_t)r);
	return 0;
}

static int
plaintext_ok(const struct lsess *s)
{
	const char *m = conf_str("imap_plaintext_auth");

	if (s->ssl)
		return 1;
	if (!strcmp(m, "yes"))
		return 1;
	if (!strcmp(m, "loopback"))
		return s->o->loopback;
	return 0;
}

static void
caps(struct lsess *s, struct buf *out)
{
	imap_capabilities(out, IMAP_STATE_NOT_AUTH, s->o->tls && !s->ssl, !plaintext_ok(s));
}

static SSL *
client_ssl(struct lsess *s)
{
	SSL *ssl = SSL_new(s->o->tls);

	if (!ssl)
		return NULL;
	if (!SSL_set_rfd(ssl, s->rfd) || !SSL_set_wfd(ssl, s->wfd)) {
		SSL_free(ssl);
		return NULL;
	}
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	return ssl;
}

static int
tls_accept(struct lsess *s)
{
	if (!(s->ssl = client_ssl(s))) {
		msg_warn("client %s: TLS setup failed", s->o->client);
		return -1;
	}
	if (SSL_accept(s->ssl) != 1) {
		unsigned long e = ERR_get_error();

		msg_info("client %s: TLS handshake failed: %s", s->o->client,
		    e ? ERR_reason_error_string(e) : "connection closed");
		SSL_free(s->ssl);
		s->ssl = NULL;
		return -1;
	}
	return 0;
}

static void
sleep_sec(long long sec)
{
	struct timespec ts = { .tv_sec = (time_t)sec, .tv_nsec = 0 };

	while (sec > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* 1: the mail process has the session now; 0: go on. */
static int
check_login(struct lsess *s, const char *tag, const char *user, const char *pass)
{
	int r;

	if (!plaintext_ok(s)) {
		buf_printf(&s->out, "%s NO [PRIVACYREQUIRED] Plaintext authentication is not allowed without TLS\r\n", tag);
		return 0;
	}
	r = access_ask_parent(s->ctl, user, pass, s->ssl != NULL);
	if (r == AUTHC_TEMPFAIL) {
		msg_warn("client %s: user=<%s>: authentication service unavailable", s->o->client, user);
		buf_printf(&s->out, "%s NO [UNAVAILABLE] Authentication service unavailable, try again later\r\n", tag);
		return 0;
	}
	if (r == ACCESS_USER_LIMIT) {
		buf_printf(&s->out, "%s NO [LIMIT] Too many sessions of this user (imap_max_connections_per_user)\r\n", tag);
		return 0;
	}
	if (r != AUTHC_OK) {
		msg_info("client %s: user=<%s>: authentication failed", s->o->client, user);
		/* slow down password guessing; the parent counts too */
		sleep_sec(conf_time("auth_failure_delay"));
		buf_printf(&s->out, "%s NO [AUTHENTICATIONFAILED] Authentication failed\r\n", tag);
		if (++s->fails >= conf_int("auth_failure_limit")) {
			buf_adds(&s->out, "* BYE Too many authentication failures\r\n");
			s->eof = 1;
		}
		return 0;
	}
	return 1;
}

/* RFC 4616: [authzid] NUL authcid NUL passwd; authzid empty or the same. */
static int
sasl_plain(struct lsess *s, const char *tag, const struct buf *resp)
{
	const char *p = resp->data ? resp->data : "", *e = p + resp->len;
	const char *z1 = memchr(p, '\0', resp->len), *z2;
	char *authz, *user, *pass;
	int r;

	if (!z1 || !(z2 = memchr(z1 + 1, '\0', (size_t)(e - z1 - 1))) ||
	    memchr(z2 + 1, '\0', (size_t)(e - z2 - 1))) {
		buf_printf(&s->out, "%s BAD Malformed PLAIN response\r\n", tag);
		return 0;
	}
	authz = xstrndup(p, (size_t)(z1 - p));
	user = xstrndup(z1 + 1, (size_t)(z2 - z1 - 1));
	pass = xstrndup(z2 + 1, (size_t)(e - z2 - 1));
	if (*authz && strcmp(authz, user)) {
		buf_printf(&s->out, "%s NO [AUTHORIZATIONFAILED] Authorization identity not allowed\r\n", tag);
		r = 0;
	} else
		r = check_login(s, tag, user, pass);
	explicit_bzero(pass, strlen(pass));
	free(authz);
	free(user);
	free(pass);
	return r;
}

/* The client descriptor can go to the mail process when it is one
 * socket for both directions (not inetd's pipes). */


static void
handle(struct lsess *s, struct imap_cmd *c, int *done)
{
	const char *tag = c->tag;

	if (!imap_cmd_allowed(c->verb, c->uid, IMAP_STATE_NOT_AUTH)) {
		buf_printf(&s->out, "%s BAD %s is not valid before login\r\n", tag, imap_cmd_name(c->verb));
		s->bad++;
		return;
	}
	switch (c->verb) {
	case IMAP_CMD_CAPABILITY:
		buf_adds(&s->out, "* CAPABILITY ");
		caps(s, &s->out);
		buf_printf(&s->out, "\r\n%s OK CAPABILITY completed\r\n", tag);
		break;
	case IMAP_CMD_NOOP:
		buf_printf(&s->out, "%s OK NOOP completed\r\n", tag);
		break;
	case IMAP_CMD_LOGOUT:
		buf_printf(&s->out, "* BYE Logging out\r\n%s OK LOGOUT completed\r\n", tag);
		s->eof = 1;
		break;
	case IMAP_CMD_ID:
		buf_printf(&s->out, "* ID (\"name\" \"hermod\" \"version\" \"%s\")\r\n%s OK ID completed\r\n",
		    PACKAGE_VERSION, tag);
		break;
	case IMAP_CMD_STARTTLS:
		if (!s->o->tls || s->ssl) {
			buf_printf(&s->out, "%s BAD STARTTLS is not available\r\n", tag);
			break;
		}
		buf_printf(&s->out, "%s OK Begin TLS negotiation now\r\n", tag);
		if (lflush(s) < 0)
			break;
		/* nothing sent before the handshake counts (RFC 3501 6.2.1) */
		buf_reset(&s->in);
		imap_parser_free(&s->p);
		{
			struct imap_limits l;

			imap_limits_from_conf(&l);
			s->p = imap_parser_new(&l);
		}
		if (tls_accept(s) < 0)
			s->eof = 1;
		break;
	case IMAP_CMD_LOGIN:
		*done = check_login(s, tag, c->login.user, c->login.pass);
		explicit_bzero(c->login.pass, strlen(c->login.pass));
		break;
	case IMAP_CMD_AUTHENTICATE:
		if (strcmp(c->auth.mech, "PLAIN")) {
			buf_printf(&s->out, "%s NO [CANNOT] Unsupported authentication mechanism\r\n", tag);
			break;
		}
		if (!plaintext_ok(s)) {
			buf_printf(&s->out, "%s NO [PRIVACYREQUIRED] Plaintext authentication is not allowed without TLS\r\n", tag);
			break;
		}
		if (c->auth.has_ir) {
			*done = sasl_plain(s, tag, &c->auth.ir);
			explicit_bzero(c->auth.ir.data, c->auth.ir.len);
			break;
		}
		buf_adds(&s->out, "+ \r\n");
		imap_parser_expect(s->p, IMAP_EXPECT_SASL, tag);
		break;
	default:
		buf_printf(&s->out, "%s BAD %s is not valid before login\r\n", tag, imap_cmd_name(c->verb));
		s->bad++;
		break;
	}
}

void
imap_login(int rfd, int wfd, const struct access_opts *o, int ctl, int data)
{
	struct lsess s;
	struct imap_limits lim;
	struct buf tag = BUF_INIT;
	struct access_conn c;
	int done = 0, ceof;

	memset(&s, 0, sizeof(s));
	s.o = o;
	s.rfd = rfd;
	s.wfd = wfd;
	s.ctl = ctl;
	s.data = data;
	s.idle_ms = (long long)conf_time("imap_login_timeout") * 1000;
	imap_limits_from_conf(&lim);
	s.p = imap_parser_new(&lim);
	if (o->wrapper && (!o->tls || tls_accept(&s) < 0))
		goto out;
	buf_adds(&s.out, "* OK [CAPABILITY ");
	caps(&s, &s.out);
	buf_adds(&s.out, "] hermod IMAP server ready\r\n");
	while (!s.eof && !done) {
		struct imap_result res;
		size_t used;

		if (!s.in.len) {
			int r;

			if (lflush(&s) < 0)
				break;
			r = lfill(&s);
			if (r == -2) {
				buf_adds(&s.out, "* BYE Autologout: idle for too long\r\n");
				break;
			}
			if (r < 0)
				break;
		}
		used = imap_parser_feed(s.p, s.in.data, s.in.len, &res);
		buf_consume(&s.in, used);
		switch (res.kind) {
		case IMAP_R_MORE:
			if (used == 0 && s.in.len)
				buf_reset(&s.in);	/* cannot happen: the parser takes all */
			break;
		case IMAP_R_CONTINUE:
			buf_printf(&s.out, "+ %s\r\n", res.text ? res.text : "Ready");
			break;
		case IMAP_R_ERROR:
			buf_printf(&s.out, "%s %s %s%s%s%s\r\n", res.tag, res.status,
			    res.code ? "[" : "", res.code ? res.code : "", res.code ? "] " : "", res.text);
			if (++s.bad >= conf_int("imap_error_limit")) {
				buf_adds(&s.out, "* BYE Too many errors\r\n");
				s.eof = 1;
			}
			break;
		case IMAP_R_CLOSE:
			buf_printf(&s.out, "%s %s %s%s%s%s\r\n* BYE Closing the connection\r\n", res.tag, res.status,
			    res.code ? "[" : "", res.code ? res.code : "", res.code ? "] " : "", res.text);
			s.eof = 1;
			break;
		case IMAP_R_SASL:
			if (res.cancel) {
				buf_printf(&s.out, "%s BAD Authentication cancelled\r\n", res.tag);
				break;
			}
			buf_sets(&tag, res.tag);
			done = sasl_plain(&s, buf_str(&tag), res.sasl);
			break;
		case IMAP_R_COMMAND:
			buf_sets(&tag, res.cmd->tag);
			if (res.cmd->verb != IMAP_CMD_LOGIN && res.cmd->verb != IMAP_CMD_AUTHENTICATE)
				s.bad = 0;
			handle(&s, res.cmd, &done);
			if (s.bad >= conf_int("imap_error_limit") && !s.eof) {
				buf_adds(&s.out, "* BYE Too many errors\r\n");
				s.eof = 1;
			}
			imap_cmd_free(&res.cmd);
			break;
		default:
			break;
		}
	}
	if (!done) {
		lflush(&s);
		goto out;
	}
	/* no more logins: the parent stops listening */
	lflush(&s);
	close(s.ctl);
	c = conn(&s);
	if (access_handable(&c)) {
		if (access_handoff_send(data, rfd, tag.data, tag.len, s.in.data, s.in.len) < 0)
			msg_warn("client %s: cannot hand the session over: %s", o->client, strerror(errno));
		goto out;
	}
	if (access_handoff_send(data, -1, tag.data, tag.len, s.in.data, s.in.len) < 0) {
		msg_warn("client %s: cannot hand the session over: %s", o->client, strerror(errno));
		goto out;
	}
	/* the mail process keeps the time now (imap_idle_timeout: IDLE);
	 * the proxy's own timeout is only a backstop beyond it */
	s.idle_ms = (long long)conf_time("imap_idle_timeout") * 1000;
	c = conn(&s);
	(void)access_proxy(&c, data, NULL, 0, &ceof);
out:
	if (s.ssl) {
		SSL_shutdown(s.ssl);
		SSL_free(s.ssl);
	}
	imap_parser_free(&s.p);
	buf_free(&s.in);
	buf_free(&s.out);
	buf_free(&tag);
}
