/*
 * smtpd_tls.c: STARTTLS (RFC 3207) and implicit TLS (RFC 8314) for smtpd
 * with libevent_openssl on non-blocking sockets.  The context comes
 * from lib/tls.h (TLS 1.2+, modern ciphers, no renegotiation or
 * compression).  A STARTTLS switch replaces the plain bufferevent by a
 * TLS one on the same descriptor, so nothing the plain one had buffered
 * (input pipelined after STARTTLS, CVE-2011-0411) survives the switch.
 */
#include "smtpd_tls.h"
#include "conf.h"
#include "log.h"
#include "tls.h"

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

SSL_CTX *
smtpd_tls_ctx(void)
{
	struct buf err = BUF_INIT;
	SSL_CTX *ctx;

	ctx = tls_server_ctx(conf_str("smtpd_tls_cert_file"), conf_str("smtpd_tls_key_file"), &err);
	if (!ctx)
		msg_warn("TLS is not available: %s", buf_str(&err));
	buf_free(&err);
	return ctx;
}

struct bufferevent *
smtpd_tls_bev(struct event_base *base, SSL_CTX *ctx, int fd)
{
	SSL *ssl = SSL_new(ctx);
	struct bufferevent *bev;

	if (!ssl)
		return NULL;
	bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl);
		return NULL;
	}
	return bev;
}

void
smtpd_tls_describe(struct bufferevent *bev, struct buf *out)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	buf_reset(out);
	if (ssl)
		tls_describe(ssl, out);
	if (!out->len)
		buf_adds(out, "TLS");
}

void
smtpd_tls_error(struct bufferevent *bev, struct buf *out)
{
	unsigned long e;
	char tmp[256];

	buf_reset(out);
	while ((e = bufferevent_get_openssl_error(bev))) {
		ERR_error_string_n(e, tmp, sizeof(tmp));
		if (out->len)
			buf_adds(out, "; ");
		buf_adds(out, tmp);
	}
	if (!out->len)
		buf_adds(out, "handshake failed");
}
