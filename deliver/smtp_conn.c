/*
 * smtp_conn.c: connections of the smtp agent (see smtp.h): non-blocking
 * connect, buffered writes and reply reads that never wait past their
 * deadline (poll), STARTTLS with OpenSSL on the same descriptor, and the
 * one-slot connection cache.
 *
 * Invariants: input buffered before STARTTLS is discarded; a connection
 * that saw an I/O error, a timeout or a malformed reply is marked broken
 * and never reused; replies are bounded by smtp_reply.h's limits.
 */
#include "smtp.h"
#include "conf.h"
#include "log.h"
#include "tls.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct sconn *
sconn_new(const char *key, const char *host)
{
	struct sconn *c = xcalloc(1, sizeof(*c));

	c->fd = -1;
	buf_init(&c->in);
	buf_init(&c->out);
	buf_init(&c->tls);
	c->key = xstrdup(key);
	c->host = xstrdup(host);
	return c;
}

/* Wait for events on c->fd until the deadline: 1 ready, 0 timeout. */
static int
wait_fd(int fd, short ev, int64_t deadline)
{
	struct pollfd p;

	for (;;) {
		int64_t left = deadline - mono_ms();
		int rc;

		if (left <= 0)
			return 0;
		p.fd = fd;
		p.events = ev;
		p.revents = 0;
		rc = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (rc > 0)
			return 1;
		if (rc < 0 && errno != EINTR)
			return 1;	/* let the I/O call report it */
	}
}

static int
finish_connect(struct sconn *c, int64_t deadline, struct buf *err)
{
	int e = 0;
	socklen_t el = sizeof(e);

	if (!wait_fd(c->fd, POLLOUT, deadline)) {
		buf_printf(err, "connect to %s: timed out", c->relay);
		return -1;
	}
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
		e = errno;
	if (e) {
		buf_printf(err, "connect to %s: %s", c->relay, strerror(e));
		return -1;
	}
	return 0;
}

int
sconn_connect_tcp(struct sconn *c, const struct dns_addr *a, int port, int64_t deadline, struct buf *err)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct buf r = BUF_INIT;
	int one = 1;

	memset(&ss, 0, sizeof(ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		memcpy(&s4->sin_addr, a->a, 4);
		sl = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		memcpy(&s6->sin6_addr, a->a, 16);
		sl = sizeof(*s6);
	}
	buf_printf(&r, "%s[", c->host);
	dns_addr_str(a, &r);
	buf_printf(&r, "]:%d", port);
	free(c->relay);
	c->relay = buf_steal(&r);
	c->fd = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0) {
		buf_printf(err, "socket: %s", strerror(errno));
		return -1;
	}
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&ss, sl) < 0) {
		if (errno != EINPROGRESS) {
			buf_printf(err, "connect to %s: %s", c->relay, strerror(errno));
			return -1;
		}
		return finish_connect(c, deadline, err);
	}
	return 0;
}

int
sconn_connect_unix(struct sconn *c, const char *path, int64_t deadline, struct buf *err)
{
	struct sockaddr_un su;

	free(c->relay);
	c->relay = xstrdup(path);
	memset(&su, 0, sizeof(su));
	su.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(su.sun_path)) {
		buf_printf(err, "socket path too long: %s", path);
		return -1;
	}
	memcpy(su.sun_path, path, strlen(path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0) {
		buf_printf(err, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(c->fd, (struct sockaddr *)&su, sizeof(su)) < 0) {
		if (errno != EINPROGRESS && errno != EAGAIN) {
			buf_printf(err, "connect to %s: %s", path, strerror(errno));
			return -1;
		}
		return finish_connect(c, deadline, err);
	}
	return 0;
}

void
sconn_send(struct sconn *c, const char *p, size_t n)
{
	buf_add(&c->out, p, n);
}

void
sconn_printf(struct sconn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&c->out, fmt, ap);
	va_end(ap);
}

static void
ssl_err(struct buf *err)
{
	unsigned long e = ERR_get_error();
	char s[256];

	if (e) {
		ERR_error_string_n(e, s, sizeof(s));
		buf_printf(err, ": %s", s);
	}
	ERR_clear_error();
}

int
sconn_flush(struct sconn *c, int64_t deadline, struct buf *err)
{
	size_t off = 0;

	while (off < c->out.len) {
		ssize_t n;
		short ev = POLLOUT;

		if (c->ssl) {
			int r;

			ERR_clear_error();
			r = SSL_write(c->ssl, c->out.data + off, (int)(c->out.len - off > 1 << 20 ?
			    1 << 20 : c->out.len - off));
			if (r > 0) {
				off += (size_t)r;
				continue;
			}
			switch (SSL_get_error(c->ssl, r)) {
			case SSL_ERROR_WANT_READ:
				ev = POLLIN;
				break;
			case SSL_ERROR_WANT_WRITE:
				break;
			default:
				buf_printf(err, "TLS write to %s failed", c->relay);
				ssl_err(err);
				goto fail;
			}
		} else {
			n = send(c->fd, c->out.data + off, c->out.len - off, MSG_NOSIGNAL);
			if (n > 0) {
				off += (size_t)n;
				continue;
			}
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				buf_printf(err, "write to %s: %s", c->relay, strerror(errno));
				goto fail;
			}
		}
		if (!wait_fd(c->fd, ev, deadline)) {
			buf_printf(err, "timeout sending to %s", c->relay);
			goto fail;
		}
	}
	buf_reset(&c->out);
	return 0;
fail:
	buf_reset(&c->out);
	c->broken = 1;
	return -1;
}

int
sconn_reply(struct sconn *c, struct smtp_reply *r, int64_t deadline, struct buf *err)
{
	char tmp[16384];

	for (;;) {
		size_t used;
		ssize_t n;
		short ev = POLLIN;
		int rc = smtp_reply_parse(c->in.data ? c->in.data : "", c->in.len, r, &used);

		if (rc > 0) {
			buf_consume(&c->in, used);
			return 0;
		}
		if (rc < 0) {
			buf_printf(err, "malformed reply from %s", c->relay);
			break;
		}
		if (c->ssl) {
			int x;

			ERR_clear_error();
			x = SSL_read(c->ssl, tmp, sizeof(tmp));
			if (x > 0) {
				buf_add(&c->in, tmp, (size_t)x);
				continue;
			}
			switch (SSL_get_error(c->ssl, x)) {
			case SSL_ERROR_WANT_READ:
				break;
			case SSL_ERROR_WANT_WRITE:
				ev = POLLOUT;
				break;
			case SSL_ERROR_ZERO_RETURN:
				buf_printf(err, "lost connection with %s", c->relay);
				goto fail;
			default:
				buf_printf(err, "lost connection with %s (TLS)", c->relay);
				ssl_err(err);
				goto fail;
			}
		} else {
			n = recv(c->fd, tmp, sizeof(tmp), 0);
			if (n > 0) {
				buf_add(&c->in, tmp, (size_t)n);
				continue;
			}
			if (n == 0) {
				buf_printf(err, "lost connection with %s", c->relay);
				goto fail;
			}
			if (errno != EAGAIN && errno != EINTR) {
				buf_printf(err, "lost connection with %s: %s", c->relay, strerror(errno));
				goto fail;
			}
		}
		if (!wait_fd(c->fd, ev, deadline)) {
			buf_printf(err, "timeout waiting for a reply from %s", c->relay);
			goto fail;
		}
	}
fail:
	c->broken = 1;
	return -1;
}

int
sconn_starttls(struct sconn *c, SSL_CTX *ctx, const char *verify_host, int64_t deadline, struct buf *err)
{
	struct in6_addr ip;

	buf_reset(&c->in);	/* nothing read before TLS is kept */
	if (!(c->ssl = SSL_new(ctx)) || SSL_set_fd(c->ssl, c->fd) != 1) {
		buf_printf(err, "TLS setup failed");
		ssl_err(err);
		goto fail;
	}
	if (c->host[0] && inet_pton(AF_INET, c->host, &ip) != 1 && inet_pton(AF_INET6, c->host, &ip) != 1)
		(void)SSL_set_tlsext_host_name(c->ssl, c->host);
	if (verify_host) {
		SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
		SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(c->ssl, verify_host) != 1) {
			buf_printf(err, "TLS: cannot check name %s", verify_host);
			goto fail;
		}
	}
	for (;;) {
		int r, e;
		short ev;

		ERR_clear_error();
		r = SSL_connect(c->ssl);
		if (r == 1)
			break;
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ)
			ev = POLLIN;
		else if (e == SSL_ERROR_WANT_WRITE)
			ev = POLLOUT;
		else {
			long v = SSL_get_verify_result(c->ssl);

			buf_printf(err, "TLS handshake with %s failed", c->relay);
			if (v != X509_V_OK)
				buf_printf(err, ": certificate: %s", X509_verify_cert_error_string(v));
			else
				ssl_err(err);
			goto fail;
		}
		if (!wait_fd(c->fd, ev, deadline)) {
			buf_printf(err, "TLS handshake with %s: timed out", c->relay);
			goto fail;
		}
	}
	c->verified = verify_host != NULL && SSL_get_verify_result(c->ssl) == X509_V_OK;
	buf_reset(&c->tls);
	tls_describe(c->ssl, &c->tls);
	return 0;
fail:
	c->broken = 1;
	return -1;
}

void
sconn_close(struct sconn *c, int polite)
{
	if (!c)
		return;
	if (polite && !c->broken && c->fd >= 0) {
		struct buf err = BUF_INIT;
		struct smtp_reply r;
		int64_t dl = mono_ms() + 2000;

		smtp_reply_init(&r);
		sconn_send(c, "QUIT\r\n", 6);
		if (sconn_flush(c, dl, &err) == 0)
			(void)sconn_reply(c, &r, dl, &err);
		smtp_reply_free(&r);
		buf_free(&err);
	}
	if (c->ssl) {
		if (!c->broken)
			(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->tls);
	free(c->key);
	free(c->host);
	free(c->relay);
	free(c);
}

/*
 * The cache: one idle connection, kept smtp_connection_cache_time after
 * its last use, at most smtp_connection_reuse_limit transactions.
 */
static struct sconn *cached;

static int64_t
cache_ms(void)
{
	long long t = conf_time("smtp_connection_cache_time");

	return t > 0 ? t * 1000 : 0;
}

struct sconn *
cache_take(const char *key)
{
	struct sconn *c;

	cache_expire(0);
	if (!cached || strcmp(cached->key, key))
		return NULL;
	c = cached;
	cached = NULL;
	return c;
}

void
cache_put(struct sconn *c)
{
	long long lim = conf_int("smtp_connection_reuse_limit");

	if (c->broken || cache_ms() == 0 || (lim > 0 && c->used >= lim)) {
		sconn_close(c, 1);
		return;
	}
	cache_expire(1);
	c->idle_since = mono_ms();
	cached = c;
}

int64_t
cache_left_ms(void)
{
	int64_t left;

	if (!cached)
		return -1;
	left = cached->idle_since + cache_ms() - mono_ms();
	return left < 0 ? 0 : left;
}

void
cache_expire(int all)
{
	if (cached && (all || cache_left_ms() == 0)) {
		sconn_close(cached, 1);
		cached = NULL;
	}
}
