/*
 * pop3_session.c: the POP3 state machine (RFC 1939) with CAPA and
 * response codes (RFC 2449), STLS (RFC 2595) and AUTH PLAIN (RFC 5034).
 *
 * Invariants: the mailbox is changed only in the UPDATE state, reached
 * by QUIT from TRANSACTION; a dropped connection, a timeout or an error
 * leaves it as it was.  Commands are read up to pop3_line_length_limit;
 * input buffered before STLS is thrown away.  Replies are buffered and
 * written when no complete command is waiting (pipelining, RFC 2449).
 * Plaintext credentials are taken only over TLS, or from loopback
 * clients when pop3_plaintext_auth = loopback, or always when yes.
 * Failed logins are answered after auth_failure_delay and the client is
 * dropped after auth_failure_limit of them.
 *
 * Two processes share this file (pop3_session.h): the login process
 * (AUTHORIZATION, TLS, then a byte proxy) never opens a mailbox and
 * never learns more about the user than "ok"; the mail process
 * (TRANSACTION, UPDATE) never sees the network or a password.  Pipelined
 * input that follows the login command is handed to the mail process
 * unchanged, so the order of commands and replies is kept.
 *
 * The end of the client's input ends the session only once every
 * command received before it has been answered (popd -i on a pipe,
 * clients that half-close after sending everything): before login the
 * buffered lines are served first, including the delayed answer to a
 * failed login; after login the end is passed on to the mail process
 * behind the bytes that preceded it (proxy()).
 */
#include "pop3_session.h"
#include "pop3_cmd.h"
#include "mstore.h"
#include "authc.h"
#include "conf.h"
#include "proto.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>

#define OUT_FLUSH	(256 * 1024)
#define MAX_BAD_CMDS	20

enum { ST_AUTH, ST_TRANS };

struct sess {
	const struct access_opts *o;
	int rfd, wfd;
	SSL *ssl;
	struct buf in, out;
	int eof;		/* client gone or I/O error */
	int in_eof;		/* login process: the client's input has ended */
	size_t line_limit;
	long idle_ms;
	int state;
	char *user;		/* from USER */
	struct auth_user au;
	int au_valid;
	struct mstore box;
	int box_open;
	int ctl, data;		/* login process: to the parent, to the mail process */
	int proxy;		/* login process: logged in, proxy from now on */
	int client_tls;		/* mail process: the client uses TLS */
	int fails, bad;
	unsigned long last;	/* LAST */
	unsigned long nretr, ndele;
	unsigned long long bytes;
};

/* The client side as lib/access_proxy.c sees it. */
static struct access_conn
conn(const struct sess *s)
{
	struct access_conn c = { s->rfd, s->wfd, s->ssl, s->idle_ms, s->o->client };

	return c;
}

static void
watchdog(const struct sess *s)
{
	struct access_conn c = conn(s);

	access_watchdog(&c);
}

static int
client_write(const struct sess *s, const char *p, size_t n)
{
	struct access_conn c = conn(s);

	return access_client_write(&c, p, n);
}

static int
flush_out(struct sess *s)
{
	if (s->eof == 1) {	/* 2: we are closing, the last reply still goes */
		buf_reset(&s->out);
		return -1;
	}
	if (s->out.len && client_write(s, s->out.data, s->out.len) < 0)
		s->eof = 1;
	buf_reset(&s->out);
	return s->eof == 1 ? -1 : 0;
}

static void reply(struct sess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
reply(struct sess *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	buf_add(&s->out, "\r\n", 2);
	if (s->out.len >= OUT_FLUSH)
		flush_out(s);
}

/* ---- input ----------------------------------------------------------- */

/* Read more input; 0 got some, -1 EOF/error, -2 idle timeout. */
static int
fill(struct sess *s)
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
	watchdog(s);
	if (s->ssl) {
		int n = SSL_read(s->ssl, tmp, sizeof(tmp));

		if (n <= 0) {
			s->in_eof = SSL_get_error(s->ssl, n) == SSL_ERROR_ZERO_RETURN;
			return -1;
		}
		r = n;
	} else {
		do
			r = read(s->rfd, tmp, sizeof(tmp));
		while (r < 0 && errno == EINTR);
		if (r <= 0) {
			s->in_eof = r == 0;
			return -1;
		}
	}
	buf_add(&s->in, tmp, (size_t)r);
	return 0;
}

/* One command line into line (without CRLF).  1 line, 0 too long (the
 * line was skipped), -1 EOF, -2 timeout. */
static int
read_line(struct sess *s, struct buf *line)
{
	int toolong = 0;

	for (;;) {
		char *nl = s->in.len ? memchr(s->in.data, '\n', s->in.len) : NULL;

		if (nl) {
			size_t n = (size_t)(nl - s->in.data);
			size_t full = n + 1;

			if (toolong || full > s->line_limit) {
				buf_consume(&s->in, full);
				return 0;
			}
			if (n && s->in.data[n - 1] == '\r')
				n--;
			buf_reset(line);
			buf_add(line, s->in.data, n);
			buf_consume(&s->in, full);
			return 1;
		}
		if (s->in.len > s->line_limit) {
			toolong = 1;
			buf_reset(&s->in);
		}
		/* nothing complete is waiting: the replies go out now */
		if (s->out.len && flush_out(s) < 0)
			return -1;
		switch (fill(s)) {
		case -1:
			return -1;
		case -2:
			return -2;
		}
	}
}

/* ---- helpers --------------------------------------------------------- */

static int
plaintext_ok(struct sess *s)
{
	const char *m = conf_str("pop3_plaintext_auth");

	if (s->ssl)
		return 1;
	if (!strcmp(m, "yes"))
		return 1;
	if (!strcmp(m, "loopback"))
		return s->o->loopback;
	return 0;
}

static void
capa(struct sess *s)
{
	reply(s, "+OK Capability list follows");
	reply(s, "TOP");
	if (s->state == ST_AUTH && plaintext_ok(s)) {
		reply(s, "USER");
		reply(s, "SASL PLAIN");
	}
	reply(s, "UIDL");
	reply(s, "PIPELINING");
	reply(s, "RESP-CODES");
	reply(s, "AUTH-RESP-CODE");
	if (s->state == ST_AUTH && s->o->tls && !s->ssl)
		reply(s, "STLS");
	reply(s, "EXPIRE NEVER");
	reply(s, "IMPLEMENTATION hermod");
	reply(s, ".");
}

/* A TLS object on the client's descriptors, or NULL.  A TCP EOF without
 * close_notify ends the client's input like close_notify does (proxy):
 * it can cut nothing short that the server relies on, as a command is
 * acted on only once its whole line has arrived, and either way the
 * session ends without UPDATE unless QUIT came. */
static SSL *
client_ssl(struct sess *s)
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

static void
start_tls(struct sess *s)
{
	reply(s, "+OK Begin TLS negotiation");
	if (flush_out(s) < 0)
		return;
	/* RFC 2595 / no command injection: nothing read before TLS counts */
	buf_reset(&s->in);
	if (!(s->ssl = client_ssl(s))) {
		msg_warn("client %s: TLS setup failed", s->o->client);
		s->eof = 1;
		return;
	}
	watchdog(s);
	if (SSL_accept(s->ssl) != 1) {
		unsigned long e = ERR_get_error();

		msg_info("client %s: TLS handshake failed: %s", s->o->client,
		    e ? ERR_reason_error_string(e) : "connection closed");
		SSL_free(s->ssl);
		s->ssl = NULL;
		s->eof = 1;
		return;
	}
	msg_debug("client %s: TLS established", s->o->client);
}

static void
sleep_sec(long long sec)
{
	struct timespec ts = { .tv_sec = (time_t)sec, .tv_nsec = 0 };

	while (sec > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Ask the parent (which asks authd) whether user/pass are right.
 * AUTHC_OK, AUTHC_FAIL or AUTHC_TEMPFAIL (parent gone or confused). */
/* Login process: check the credentials; on success switch to proxying
 * (the mail process answers the login command itself). */
static void
login(struct sess *s, const char *user, const char *pass)
{
	int r;

	r = access_ask_parent(s->ctl, user, pass, s->ssl != NULL);
	if (r == AUTHC_TEMPFAIL) {
		msg_warn("client %s: user=<%s>: authentication service unavailable", s->o->client, user);
		reply(s, "-ERR [SYS/TEMP] Authentication service unavailable, try again later");
		return;
	}
	if (r == ACCESS_USER_LIMIT) {
		reply(s, "-ERR [IN-USE] Too many sessions of this user (pop3_max_connections_per_user)");
		return;
	}
	if (r != AUTHC_OK) {
		s->fails++;
		msg_info("client %s: user=<%s>: authentication failed", s->o->client, user);
		flush_out(s);
		sleep_sec(conf_time("auth_failure_delay"));
		if (s->fails >= conf_int("auth_failure_limit")) {
			reply(s, "-ERR [AUTH] Authentication failed; too many failures, goodbye");
			s->eof = 2;
			return;
		}
		reply(s, "-ERR [AUTH] Authentication failed");
		return;
	}
	s->proxy = 1;
}

/* Mail process: open the mailbox and answer the login command. */
static int
open_mailbox(struct sess *s)
{
	struct buf err = BUF_INIT;
	unsigned long long tot = 0;
	size_t i;
	int r;

	r = mstore_open(&s->box, s->au.mailbox, s->au.maildir, &err);
	if (r != MSTORE_OK) {
		mstore_close(&s->box);
		if (r == MSTORE_INUSE) {
			msg_info("client %s: user=<%s>: %s", s->o->client, s->au.name, buf_str(&err));
			reply(s, "-ERR [IN-USE] Mailbox is locked by another session");
		} else {
			msg_error("client %s: user=<%s>: %s", s->o->client, s->au.name, buf_str(&err));
			reply(s, "-ERR [SYS/%s] Cannot open the mailbox", r == MSTORE_PERM ? "PERM" : "TEMP");
		}
		buf_free(&err);
		return -1;
	}
	s->box_open = 1;
	s->state = ST_TRANS;
	for (i = 0; i < s->box.n; i++)
		tot += s->box.msgs[i].size;
	msg_info("login: user=<%s>, client=%s, %s, messages=%zu, size=%llu",
	    s->au.name, s->o->client, s->client_tls ? "tls" : "plaintext", s->box.n, tot);
	reply(s, "+OK Logged in, %zu messages (%llu octets)", s->box.n, tot);
	buf_free(&err);
	return 0;
}

static void
auth_cmd(struct sess *s, struct pop3_cmd *c)
{
	struct buf resp = BUF_INIT, dec = BUF_INIT, line = BUF_INIT;
	const char *authz, *user, *pass, *b64;

	if (c->nargs == 0) {
		reply(s, "+OK Supported mechanisms follow");
		if (plaintext_ok(s))
			reply(s, "PLAIN");
		reply(s, ".");
		return;
	}
	if (strcasecmp(c->args[0], "PLAIN")) {
		reply(s, "-ERR Unsupported authentication mechanism");
		return;
	}
	if (!plaintext_ok(s)) {
		reply(s, "-ERR [AUTH] Plaintext authentication requires TLS (use STLS)");
		return;
	}
	if (c->nargs > 1)
		b64 = c->args[1];
	else {
		int r;

		reply(s, "+ ");
		r = read_line(s, &line);
		if (r < 0) {
			s->eof = 1;
			goto out;
		}
		if (r == 0) {
			reply(s, "-ERR Line too long");
			goto out;
		}
		b64 = buf_str(&line);
		if (!strcmp(b64, "*")) {
			reply(s, "-ERR Authentication cancelled");
			goto out;
		}
	}
	if (pop3_b64_decode(b64, strlen(b64), &dec) < 0 ||
	    pop3_sasl_plain(buf_str(&dec), dec.len, &authz, &user, &pass) < 0) {
		reply(s, "-ERR Malformed AUTH PLAIN response");
		goto out;
	}
	if (*authz && strcmp(authz, user)) {
		s->fails++;
		reply(s, "-ERR [AUTH] Authorization identity not allowed");
		goto out;
	}
	login(s, user, pass);
out:
	if (dec.data)
		explicit_bzero(dec.data, dec.len);
	if (line.data)
		explicit_bzero(line.data, line.len);
	buf_free(&dec);
	buf_free(&line);
	buf_free(&resp);
}

/* message number argument in TRANSACTION; NULL after an error reply */
static struct mstore_msg *
msg_arg(struct sess *s, const char *arg, unsigned long *num)
{
	int r = pop3_msgnum(arg, s->box.n, num);

	if (r == -1) {
		reply(s, "-ERR Invalid message number");
		return NULL;
	}
	if (r == -2 || s->box.msgs[*num - 1].deleted) {
		reply(s, "-ERR No such message");
		return NULL;
	}
	return &s->box.msgs[*num - 1];
}

static void
send_msg(struct sess *s, unsigned long num, long top)
{
	struct buf tmp = BUF_INIT, err = BUF_INIT;
	const char *p;
	size_t n;

	if (mstore_get(&s->box, num - 1, &p, &n, &tmp, &err) < 0) {
		msg_warn("user=<%s>: message %lu: %s", s->au.name, num, buf_str(&err));
		reply(s, "-ERR [SYS/TEMP] Message %lu cannot be read", num);
	} else {
		if (top < 0)
			reply(s, "+OK %zu octets", s->box.msgs[num - 1].size);
		else
			reply(s, "+OK Top of message follows");
		pop3_wire_out(p, n, top, &s->out);
		buf_add(&s->out, ".\r\n", 3);
		if (top < 0) {
			s->nretr++;
			s->bytes += s->box.msgs[num - 1].size;
		}
		if (num > s->last)
			s->last = num;
		if (s->out.len >= OUT_FLUSH)
			flush_out(s);
	}
	buf_free(&tmp);
	buf_free(&err);
}

static void
list_like(struct sess *s, struct pop3_cmd *c, int uidl)
{
	unsigned long num;
	struct mstore_msg *m;
	size_t i;

	if (c->nargs > 1) {
		reply(s, "-ERR Too many arguments");
		return;
	}
	if (c->nargs == 1) {
		if (!(m = msg_arg(s, c->args[0], &num)))
			return;
		if (uidl)
			reply(s, "+OK %lu %s", num, m->uidl);
		else
			reply(s, "+OK %lu %zu", num, m->size);
		return;
	}
	reply(s, uidl ? "+OK Unique-ID listing follows" : "+OK Scan listing follows");
	for (i = 0; i < s->box.n; i++) {
		m = &s->box.msgs[i];
		if (m->deleted)
			continue;
		if (uidl)
			reply(s, "%zu %s", i + 1, m->uidl);
		else
			reply(s, "%zu %zu", i + 1, m->size);
	}
	reply(s, ".");
}

static void
quit_trans(struct sess *s)
{
	struct buf err = BUF_INIT;
	size_t i, left = 0;

	for (i = 0; i < s->box.n; i++)
		if (!s->box.msgs[i].deleted)
			left++;
	if (mstore_update(&s->box, &err) < 0) {
		msg_error("user=<%s>: update: %s", s->au.name, buf_str(&err));
		reply(s, "-ERR [SYS/TEMP] Some deleted messages were not removed");
	} else
		reply(s, "+OK Logging out, %zu messages left", left);
	msg_info("logout: user=<%s>, retr=%lu, dele=%lu, bytes=%llu%s", s->au.name,
	    s->nretr, s->ndele, s->bytes, err.len ? ", update failed" : "");
	mstore_close(&s->box);
	s->box_open = 0;
	buf_free(&err);
}

/* ---- the command loop -------------------------------------------------- */

static int
handle(struct sess *s, struct pop3_cmd *c)
{
	unsigned long num, cnt;
	struct mstore_msg *m;
	size_t i;

	/* commands valid in both states */
	switch (c->verb) {
	case POP3_CAPA:
		capa(s);
		return 0;
	case POP3_QUIT:
		if (s->state == ST_TRANS)
			quit_trans(s);
		else
			reply(s, "+OK Bye");
		return 1;
	}
	if (s->state == ST_AUTH) {
		switch (c->verb) {
		case POP3_STLS:
			if (!s->o->tls || s->ssl)
				reply(s, "-ERR %s", s->ssl ? "TLS already active" : "STLS not available");
			else if (c->nargs)
				reply(s, "-ERR STLS takes no argument");
			else
				start_tls(s);
			return 0;
		case POP3_USER:
			if (!plaintext_ok(s)) {
				reply(s, "-ERR [AUTH] Plaintext authentication requires TLS (use STLS)");
				return 0;
			}
			if (c->nargs != 1) {
				reply(s, "-ERR Usage: USER name");
				return 0;
			}
			free(s->user);
			s->user = xstrdup(c->args[0]);
			reply(s, "+OK Send your password");
			return 0;
		case POP3_PASS:
			if (!plaintext_ok(s)) {
				reply(s, "-ERR [AUTH] Plaintext authentication requires TLS (use STLS)");
				return 0;
			}
			if (!s->user) {
				reply(s, "-ERR USER first");
				return 0;
			}
			if (!*c->rest) {
				reply(s, "-ERR Usage: PASS password");
				return 0;
			}
			login(s, s->user, c->rest);
			explicit_bzero(c->rest, strlen(c->rest));
			free(s->user);
			s->user = NULL;
			return 0;
		case POP3_AUTH:
			auth_cmd(s, c);
			return 0;
		case POP3_APOP:
			reply(s, "-ERR APOP not supported (no plaintext secrets are stored)");
			return 0;
		default:
			s->bad++;
			reply(s, "-ERR %s", c->verb == POP3_UNKNOWN || c->verb == POP3_BAD ?
			    "Unknown command" : "Not allowed before login");
			return 0;
		}
	}
	switch (c->verb) {
	case POP3_STAT: {
		unsigned long long tot = 0;
		size_t n = 0;

		if (c->nargs) {
			reply(s, "-ERR STAT takes no argument");
			return 0;
		}
		for (i = 0; i < s->box.n; i++)
			if (!s->box.msgs[i].deleted) {
				n++;
				tot += s->box.msgs[i].size;
			}
		reply(s, "+OK %zu %llu", n, tot);
		return 0;
	}
	case POP3_LIST:
		list_like(s, c, 0);
		return 0;
	case POP3_UIDL:
		list_like(s, c, 1);
		return 0;
	case POP3_RETR:
		if (c->nargs != 1) {
			reply(s, "-ERR Usage: RETR msg");
			return 0;
		}
		if (msg_arg(s, c->args[0], &num))
			send_msg(s, num, -1);
		return 0;
	case POP3_TOP:
		if (c->nargs != 2) {
			reply(s, "-ERR Usage: TOP msg lines");
			return 0;
		}
		if (!(m = msg_arg(s, c->args[0], &num)))
			return 0;
		if (pop3_count(c->args[1], 100000000, &cnt) < 0) {
			reply(s, "-ERR Invalid line count");
			return 0;
		}
		send_msg(s, num, (long)cnt);
		return 0;
	case POP3_DELE:
		if (c->nargs != 1) {
			reply(s, "-ERR Usage: DELE msg");
			return 0;
		}
		if (!(m = msg_arg(s, c->args[0], &num)))
			return 0;
		m->deleted = 1;
		s->ndele++;
		if (num > s->last)
			s->last = num;
		reply(s, "+OK Message %lu deleted", num);
		return 0;
	case POP3_NOOP:
		reply(s, "+OK");
		return 0;
	case POP3_RSET:
		for (i = 0; i < s->box.n; i++)
			s->box.msgs[i].deleted = 0;
		s->ndele = 0;
		s->last = 0;
		reply(s, "+OK %zu messages", s->box.n);
		return 0;
	case POP3_LAST:
		reply(s, "+OK %lu", s->last);
		return 0;
	case POP3_USER: case POP3_PASS: case POP3_APOP: case POP3_AUTH: case POP3_STLS:
		s->bad++;
		reply(s, "-ERR Already logged in");
		return 0;
	default:
		s->bad++;
		reply(s, "-ERR Unknown command");
		return 0;
	}
}

static void
sess_init(struct sess *s, const struct access_opts *o, int rfd, int wfd)
{
	memset(s, 0, sizeof(*s));
	s->o = o;
	s->rfd = rfd;
	s->wfd = wfd;
	s->ctl = s->data = -1;
	s->line_limit = (size_t)conf_int("pop3_line_length_limit");
	if (s->line_limit < 64)
		s->line_limit = 64;
	s->idle_ms = (long)conf_time("pop3_idle_timeout") * 1000;
	if (s->idle_ms <= 0)
		s->idle_ms = 600000;
	s->state = ST_AUTH;
}

/* Read and answer commands until QUIT, EOF, an error or (login
 * process) a successful login. */
static void
command_loop(struct sess *s)
{
	struct buf line = BUF_INIT;
	struct pop3_cmd c;

	while (!s->eof && !s->proxy) {
		int r = read_line(s, &line);

		if (r == -1)
			break;
		if (r == -2) {
			reply(s, "-ERR [SYS/TEMP] Autologout; idle for too long");
			msg_info("client %s: autologout after %lds idle", s->o->client, s->idle_ms / 1000);
			break;
		}
		if (r == 0) {
			s->bad++;
			reply(s, "-ERR Line too long");
		} else {
			/* buf has room for the NUL the parser writes */
			buf_reserve(&line, 1);
			if (pop3_cmd_parse(line.data ? line.data : (char *)"", line.len, &c) == POP3_BAD &&
			    line.len == 0) {
				s->bad++;
				reply(s, "-ERR Empty command");
			} else if (handle(s, &c))
				break;
		}
		if (line.data)
			explicit_bzero(line.data, line.len);
		if (s->bad >= MAX_BAD_CMDS) {
			reply(s, "-ERR Too many bad commands, goodbye");
			break;
		}
	}
	if (line.data)
		explicit_bzero(line.data, line.len);
	buf_free(&line);
}

static void
sess_end(struct sess *s)
{
	if (!s->proxy)
		flush_out(s);
	if (s->box_open) {
		/* dropped connection: no UPDATE */
		msg_info("disconnect: user=<%s>, client=%s, retr=%lu, no changes made",
		    s->au.name, s->o->client, s->nretr);
		mstore_close(&s->box);
	}
	if (s->ssl) {
		if (!s->eof)
			SSL_shutdown(s->ssl);
		SSL_free(s->ssl);
	}
	alarm(0);
	if (s->au_valid)
		auth_user_free(&s->au);
	free(s->user);
	buf_free(&s->in);
	buf_free(&s->out);
}

/* Login process after a successful login that keeps the client (TLS,
 * pipes): the replies still buffered go to the client, then whatever
 * the client sent after the login command goes to the mail process,
 * then the byte proxy of access.h until the mail process closes. */
static void
proxy(struct sess *s)
{
	struct access_conn c = conn(s);
	int ceof;

	if (flush_out(s) < 0)
		return;
	if (access_proxy(&c, s->data, s->in.data, s->in.len, &ceof) < 0)
		s->eof = 1;
	if (ceof)
		s->in_eof = 1;
	buf_free(&s->in);
}

/* Last: our FIN after the last reply (access_linger_close). */
static void
linger_close(const struct sess *s)
{
	struct access_conn c = conn(s);

	access_linger_close(&c, (long long)conf_time("pop3_linger_time") * 1000);
}

void
pop3_login(int rfd, int wfd, const struct access_opts *o, int ctl, int data)
{
	struct sess s;

	sess_init(&s, o, rfd, wfd);
	s.ctl = ctl;
	s.data = data;
	if (o->wrapper) {
		if (!o->tls) {
			msg_error("pop3_tls_wrappermode is set but no TLS certificate is usable");
			return;
		}
		if (!(s.ssl = client_ssl(&s))) {
			msg_error("TLS setup failed");
			return;
		}
		watchdog(&s);
		if (SSL_accept(s.ssl) != 1) {
			msg_info("client %s: TLS handshake failed", o->client);
			SSL_free(s.ssl);
			return;
		}
	}
	reply(&s, "+OK hermod POP3 server ready");
	command_loop(&s);
	if (s.proxy) {
		/* no more logins: the parent stops listening */
		close(s.ctl);
		s.ctl = -1;
		struct access_conn c = conn(&s);

		if (access_handable(&c)) {
			/* plaintext on a socket: the mail process takes the
			 * client itself, with the bytes read past the login
			 * command; no copying hop (access.h) */
			if (flush_out(&s) == 0 &&
			    access_handoff_send(s.data, s.rfd, "", 0, s.in.data, s.in.len) < 0)
				msg_warn("client %s: cannot hand the session over: %s", o->client,
				    strerror(errno));
			buf_reset(&s.in);
			s.proxy = 0;
			sess_end(&s);
			return;
		}
		if (access_handoff_send(s.data, -1, "", 0, "", 0) < 0)
			s.eof = 1;
		else
			proxy(&s);
	}
	sess_end(&s);
	/* eof 2: the goodbye after too many failures went out */
	if (s.eof != 1 && !s.in_eof)
		linger_close(&s);
}

void
pop3_mail(int fd, const struct access_opts *o, struct auth_user *au, int tls)
{
	struct sess s;
	struct buf meta = BUF_INIT, pending = BUF_INIT;
	int cfd;

	if (access_handoff_recv(fd, &cfd, &meta, &pending) < 0) {
		msg_warn("client %s: user=<%s>: no session from the login process", o->client, au->name);
		auth_user_free(au);
		return;
	}
	if (cfd >= 0)
		close(fd);
	sess_init(&s, o, cfd >= 0 ? cfd : fd, cfd >= 0 ? cfd : fd);
	buf_add(&s.in, pending.data ? pending.data : "", pending.len);
	s.au = *au;
	memset(au, 0, sizeof(*au));
	s.au_valid = 1;
	s.client_tls = tls;
	if (open_mailbox(&s) == 0)
		command_loop(&s);
	sess_end(&s);
	/* the client is ours: the login process's lingering close is ours too */
	if (cfd >= 0 && !s.in_eof)
		linger_close(&s);
	buf_free(&meta);
	buf_free(&pending);
}
