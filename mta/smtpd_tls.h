/*
 * smtpd_tls.h: TLS for smtpd's transport (smtpd_tls.c): the server
 * context and TLS bufferevents over a client socket.
 */
#ifndef HERMOD_SMTPD_TLS_H
#define HERMOD_SMTPD_TLS_H

#include <event2/bufferevent.h>
#include <openssl/ssl.h>

#include "buf.h"

/* The server context from smtpd_tls_cert_file/smtpd_tls_key_file, or
 * NULL (logged) when TLS cannot be offered. */
SSL_CTX *smtpd_tls_ctx(void);
/* A bufferevent doing the server side of TLS on fd (it owns fd and the
 * SSL afterwards).  NULL on failure (fd untouched). */
struct bufferevent *smtpd_tls_bev(struct event_base *base, SSL_CTX *ctx, int fd);
/* The negotiated protocol and cipher, for Received: and the log. */
void smtpd_tls_describe(struct bufferevent *bev, struct buf *out);
/* The last TLS error, for the log. */
void smtpd_tls_error(struct bufferevent *bev, struct buf *out);

#endif
