/*
 * tls: OpenSSL glue shared by the servers (smtpd, popd, imapd) and by
 * hermod init: a server context with the configured protocols and
 * ciphers, a self-signed certificate for new instances, and the line
 * that describes a session in a Received: header or a log line.
 * Programs that use it link $(OPENSSL_LIBS).
 */
#ifndef HERMOD_TLS_H
#define HERMOD_TLS_H

#include <openssl/ssl.h>
#include "buf.h"

/* A server context: TLS 1.2+ (tls_protocols), tls_ciphers for 1.2,
 * no compression, no renegotiation, server cipher preference, session
 * tickets off.  NULL with the reason in err. */
SSL_CTX *tls_server_ctx(const char *cert_file, const char *key_file, struct buf *err);
/* A client context for outbound use (later issues); verify_ca may be NULL. */
SSL_CTX *tls_client_ctx(const char *verify_ca, struct buf *err);
/* Write a new self-signed certificate (RSA 2048 or P-256, 10 years,
 * CN and subjectAltName = cn) and its key (mode 0600). 0 ok, -1 err. */
int tls_make_selfsigned(const char *cert_path, const char *key_path,
    const char *cn, struct buf *err);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" */
void tls_describe(SSL *ssl, struct buf *out);

#endif
