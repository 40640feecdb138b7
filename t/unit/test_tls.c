/*
 * test_tls.c: unit tests for lib/tls.c: a self-signed certificate made
 * in /tmp (modes, subject, subjectAltName, P-256 key, validity), a
 * server context built from it, a TLS handshake over a socketpair with a
 * client context (TLS 1.3, then TLS 1.2 with the configured ciphers),
 * tls_describe, and the failures: a key that does not match, missing
 * files, a bad tls_protocols value, a bad common name, a client that
 * offers only TLS 1.1.
 */
#include "test.h"
#include "conf.h"
#include "tls.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

static char dir[] = "/tmp/test_tls.XXXXXX";

static char *
path(const char *name)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "%s/%s", dir, name);
	return buf_steal(&b);
}

static X509 *
load_cert(const char *p)
{
	FILE *f = fopen(p, "r");
	X509 *x;

	if (!f)
		return NULL;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return x;
}

/*
 * Handshake: the server runs in a child on one end of a socketpair, the
 * client here on the other.  The child writes its tls_describe line
 * through the TLS channel, so the parent can check both sides agree.
 * Returns 1 when the handshake succeeded; desc gets the server's line,
 * cdesc the client's.
 */
static int
handshake(SSL_CTX *sctx, SSL_CTX *cctx, struct buf *desc, struct buf *cdesc)
{
	int sv[2], status, ok_ = 0, n;
	pid_t pid;
	char tmp[512];
	SSL *c;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	fflush(stdout);
	if ((pid = fork()) == 0) {
		SSL *s = SSL_new(sctx);
		struct buf d = BUF_INIT;

		close(sv[0]);
		SSL_set_fd(s, sv[1]);
		if (SSL_accept(s) != 1)
			_exit(1);
		tls_describe(s, &d);
		if (SSL_write(s, d.data, (int)d.len) != (int)d.len)
			_exit(2);
		SSL_shutdown(s);
		_exit(0);
	}
	close(sv[1]);
	c = SSL_new(cctx);
	SSL_set_fd(c, sv[0]);
	if (SSL_connect(c) == 1) {
		tls_describe(c, cdesc);
		while ((n = SSL_read(c, tmp, sizeof(tmp))) > 0)
			buf_add(desc, tmp, (size_t)n);
		ok_ = desc->len > 0;
	}
	ERR_clear_error();
	SSL_free(c);
	close(sv[0]);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		ok_ = 0;
	return ok_;
}

int
main(void)
{
	struct buf err = BUF_INIT, conf = BUF_INIT, d = BUF_INIT, cd = BUF_INIT;
	char *cert, *key, *cert2, *key2, *cfile, *cmd;
	SSL_CTX *sctx, *cctx;
	struct stat st;
	X509 *x;
	EVP_PKEY *pk;
	GENERAL_NAMES *sans;
	char cn[256];
	int r;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	umask(022);
	cfile = path("hermod.conf");
	buf_printf(&conf, "queue_directory = %s\n", dir);
	if (write_file_atomic(cfile, conf.data, conf.len, 0644) < 0 || conf_load(dir, &err) < 0) {
		printf("# conf: %s\n", buf_str(&err));
		return 2;
	}
	cert = path("cert.pem");
	key = path("key.pem");
	cert2 = path("cert2.pem");
	key2 = path("key2.pem");

	/* the certificate */
	r = tls_make_selfsigned(cert, key, "mail.example.test", &err);
	is_int(r, 0, "tls_make_selfsigned");
	if (r < 0)
		printf("# %s\n", buf_str(&err));
	ok(stat(key, &st) == 0 && (st.st_mode & 07777) == 0600, "key is mode 0600");
	ok(stat(cert, &st) == 0 && (st.st_mode & 07777) == 0644, "certificate is mode 0644");
	x = load_cert(cert);
	ok(x != NULL, "certificate is PEM");
	cn[0] = 0;
	if (x)
		X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
	is_str(cn, "mail.example.test", "subject CN");
	ok(x && X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0, "self-issued");
	ok(x && X509_get_version(x) == X509_VERSION_3, "X.509 v3");
	sans = x ? X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL) : NULL;
	ok(sans && sk_GENERAL_NAME_num(sans) == 1, "one subjectAltName");
	if (sans) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, 0);

		ok(g->type == GEN_DNS &&
		    !strcmp((const char *)ASN1_STRING_get0_data(g->d.dNSName), "mail.example.test"),
		    "subjectAltName DNS:mail.example.test");
		GENERAL_NAMES_free(sans);
	} else
		ok(0, "subjectAltName DNS:mail.example.test");
	ok(x && X509_check_host(x, "mail.example.test", 0, 0, NULL) == 1, "X509_check_host matches");
	pk = x ? X509_get0_pubkey(x) : NULL;
	ok(pk && EVP_PKEY_is_a(pk, "EC") && EVP_PKEY_get_bits(pk) == 256, "P-256 key");
	ok(x && X509_cmp_current_time(X509_get0_notBefore(x)) < 0 &&
	    X509_cmp_timeframe(NULL, X509_get0_notBefore(x), X509_get0_notAfter(x)) == 0,
	    "valid now");
	{
		time_t in9y = time(NULL) + 9 * 365 * 86400L;

		ok(x && X509_cmp_time(X509_get0_notAfter(x), &in9y) > 0, "valid for years");
	}
	ok(x && X509_verify(x, pk) == 1, "signature verifies with its own key");
	X509_free(x);
	cmd = NULL;
	if (access("/usr/bin/openssl", X_OK) == 0) {
		struct buf c = BUF_INIT;

		buf_printf(&c, "/usr/bin/openssl x509 -in %s -noout -subject | grep -q 'CN *= *mail.example.test'", cert);
		ok(system(buf_str(&c)) == 0, "openssl x509 reads it");
		buf_free(&c);
	}

	/* bad names are refused and nothing is written */
	buf_reset(&err);
	ok(tls_make_selfsigned(cert2, key2, "a,DNS:evil.test", &err) < 0, "comma in CN refused");
	ok(access(key2, F_OK) < 0 && access(cert2, F_OK) < 0, "nothing written for a refused name");
	buf_reset(&err);
	ok(tls_make_selfsigned(cert2, key2, "", &err) < 0, "empty CN refused");
	buf_reset(&err);
	ok(tls_make_selfsigned("/nonexistent/dir/c.pem", "/nonexistent/dir/k.pem", "h", &err) < 0 &&
	    strstr(buf_str(&err), "/nonexistent/dir/k.pem") != NULL, "unwritable path reported: %s", buf_str(&err));

	/* server contexts */
	buf_reset(&err);
	sctx = tls_server_ctx(cert, key, &err);
	ok(sctx != NULL, "tls_server_ctx");
	if (!sctx)
		printf("# %s\n", buf_str(&err));
	ok(sctx && SSL_CTX_get_min_proto_version(sctx) == TLS1_2_VERSION, "minimum TLS 1.2");
	ok(sctx && (SSL_CTX_get_options(sctx) & (SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET)) == (SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET),
	    "options: no compression, renegotiation, tickets; server preference");

	buf_reset(&err);
	cctx = tls_client_ctx(NULL, &err);
	ok(cctx != NULL, "tls_client_ctx (opportunistic)");
	ok(sctx && cctx && handshake(sctx, cctx, &d, &cd), "handshake over a socketpair");
	ok(!strncmp(buf_str(&d), "TLSv1.3 with cipher TLS_", 24) && strstr(buf_str(&d), " bits)"),
	    "tls_describe: %s", buf_str(&d));
	is_str(buf_str(&cd), buf_str(&d), "both sides describe the same session");
	SSL_CTX_free(cctx);

	/* a client that verifies against the certificate itself */
	buf_reset(&err);
	cctx = tls_client_ctx(cert, &err);
	ok(cctx != NULL, "tls_client_ctx with a CA file");
	buf_reset(&d);
	buf_reset(&cd);
	ok(cctx && handshake(sctx, cctx, &d, &cd), "verified handshake");
	SSL_CTX_free(cctx);
	buf_reset(&err);
	ok(tls_client_ctx("/nonexistent/ca.pem", &err) == NULL && err.len, "missing CA file refused");

	/* TLS 1.2 with the configured cipher list */
	buf_reset(&err);
	cctx = tls_client_ctx(NULL, &err);
	SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
	buf_reset(&d);
	buf_reset(&cd);
	ok(handshake(sctx, cctx, &d, &cd), "TLS 1.2 handshake");
	ok(!strncmp(buf_str(&d), "TLSv1.2 with cipher ECDHE-ECDSA-", 32), "TLS 1.2 ECDHE: %s", buf_str(&d));
	SSL_CTX_free(cctx);

	/* a client limited to TLS 1.1 fails */
	cctx = tls_client_ctx(NULL, &err);
	SSL_CTX_set_min_proto_version(cctx, TLS1_VERSION);
	SSL_CTX_set_max_proto_version(cctx, TLS1_1_VERSION);
	SSL_CTX_set_security_level(cctx, 0);
	buf_reset(&d);
	buf_reset(&cd);
	ok(!handshake(sctx, cctx, &d, &cd), "TLS 1.1 refused");
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);

	/* TLS 1.3 only */
	conf_set("tls_protocols", ">=TLSv1.3");
	buf_reset(&err);
	sctx = tls_server_ctx(cert, key, &err);
	ok(sctx && SSL_CTX_get_min_proto_version(sctx) == TLS1_3_VERSION, "tls_protocols >=TLSv1.3");
	cctx = tls_client_ctx(NULL, &err);
	SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
	ok(!handshake(sctx, cctx, &d, &cd), "TLS 1.2 refused by a TLS 1.3 server");
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	conf_set("tls_protocols", "TLSv1.0");
	buf_reset(&err);
	ok(tls_server_ctx(cert, key, &err) == NULL && strstr(buf_str(&err), "tls_protocols"),
	    "bad tls_protocols: %s", buf_str(&err));
	conf_set("tls_protocols", ">=TLSv1.2");
	conf_set("tls_ciphers", "NO-SUCH-CIPHER");
	buf_reset(&err);
	ok(tls_server_ctx(cert, key, &err) == NULL && strstr(buf_str(&err), "tls_ciphers"),
	    "bad tls_ciphers: %s", buf_str(&err));
	conf_set("tls_ciphers", "ECDHE+AESGCM");

	/* mismatched key, missing files */
	buf_reset(&err);
	r = tls_make_selfsigned(cert2, key2, "other.example.test", &err);
	is_int(r, 0, "a second certificate");
	buf_reset(&err);
	ok(tls_server_ctx(cert, key2, &err) == NULL && strstr(buf_str(&err), "does not match"),
	    "key that does not match the certificate: %s", buf_str(&err));
	buf_reset(&err);
	ok(tls_server_ctx(cert, "/nonexistent/key.pem", &err) == NULL && err.len, "missing key: %s", buf_str(&err));
	buf_reset(&err);
	ok(tls_server_ctx("/nonexistent/cert.pem", key, &err) == NULL && err.len, "missing certificate");
	ok(ERR_peek_error() == 0, "OpenSSL error queue left empty");

	/* replacing a certificate is atomic: a new inode, key still 0600 */
	{
		struct stat a, b;

		stat(key, &a);
		buf_reset(&err);
		r = tls_make_selfsigned(cert, key, "mail.example.test", &err);
		stat(key, &b);
		ok(r == 0 && a.st_ino != b.st_ino && (b.st_mode & 07777) == 0600, "rewritten atomically");
	}

	tls_describe(NULL, &err);
	buf_reset(&d);
	tls_describe(NULL, &d);
	is_str(buf_str(&d), "no TLS", "tls_describe without a session");

	buf_reset(&conf);
	buf_printf(&conf, "rm -rf %s", dir);
	(void)!system(buf_str(&conf));
	free(cert);
	free(key);
	free(cert2);
	free(key2);
	free(cfile);
	free(cmd);
	buf_free(&err);
	buf_free(&conf);
	buf_free(&d);
	buf_free(&cd);
	return done_testing();
}
