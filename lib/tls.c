/*
 * tls.c: OpenSSL 3 glue (see tls.h): server and client contexts with
 * hermod's policy, the self-signed certificate that "hermod init" makes,
 * and the one-line description of a session.
 *
 * Invariants:
 * - a server context never allows less than TLS 1.2, compression,
 *   renegotiation or session tickets, and is only returned once the
 *   certificate chain and the key have loaded and match;
 * - a key file is only ever created with mode 0600 and replaced whole
 *   (temporary file, fsync, rename), never left half-written;
 * - every OpenSSL failure is reported in err with OpenSSL's own reason,
 *   and the thread's OpenSSL error queue is left empty.
 */
#include "tls.h"
#include "conf.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define TLS_CERT_DAYS	3650
#define TLS_CN_MAX	253

/* Append OpenSSL's reasons (the whole error queue, emptied) to err. */
static void
ssl_reason(struct buf *err)
{
	unsigned long e;
	char tmp[256];
	int first = 1;

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, tmp, sizeof(tmp));
		buf_printf(err, "%s%s", first ? ": " : "; ", tmp);
		first = 0;
	}
}

/* ">=TLSv1.2", "TLSv1.2", ">=TLSv1.3", "TLSv1.3"; -1 when unknown. */
static int
min_version(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	if (s[0] == '>' && s[1] == '=')
		s += 2;
	if (!strcasecmp(s, "TLSv1.2"))
		return TLS1_2_VERSION;
	if (!strcasecmp(s, "TLSv1.3"))
		return TLS1_3_VERSION;
	return -1;
}

SSL_CTX *
tls_server_ctx(const char *cert_file, const char *key_file, struct buf *err)
{
	SSL_CTX *ctx;
	const char *protos = conf_str("tls_protocols");
	const char *ciphers = conf_str("tls_ciphers");
	int minv = min_version(protos);

	ERR_clear_error();
	if (minv < 0) {
		buf_printf(err, "tls_protocols = %s: want >=TLSv1.2 or >=TLSv1.3", protos);
		return NULL;
	}
	if (!cert_file || !*cert_file || !key_file || !*key_file) {
		buf_printf(err, "no TLS certificate or key file configured");
		return NULL;
	}
	if (!(ctx = SSL_CTX_new(TLS_server_method()))) {
		buf_printf(err, "SSL_CTX_new");
		ssl_reason(err);
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, minv)) {
		buf_printf(err, "tls_protocols = %s", protos);
		goto fail;
	}
	if (*ciphers && !SSL_CTX_set_cipher_list(ctx, ciphers)) {
		buf_printf(err, "tls_ciphers = %s: no usable cipher", ciphers);
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* one-shot servers: no session cache to share between processes */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* built-in RFC 7919 groups for the DHE suites of tls_ciphers */
	SSL_CTX_set_dh_auto(ctx, 1);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		buf_printf(err, "certificate %s", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
			buf_printf(err, "private key %s does not match certificate %s", key_file, cert_file);
		else
			buf_printf(err, "private key %s", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		buf_printf(err, "private key %s does not match certificate %s", key_file, cert_file);
		goto fail;
	}
	return ctx;
fail:
	ssl_reason(err);
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *
tls_client_ctx(const char *verify_ca, struct buf *err)
{
	SSL_CTX *ctx;
	struct stat st;
	int r;

	ERR_clear_error();
	if (!(ctx = SSL_CTX_new(TLS_client_method()))) {
		buf_printf(err, "SSL_CTX_new");
		ssl_reason(err);
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		buf_printf(err, "TLS 1.2 unavailable");
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (verify_ca && *verify_ca) {
		/* a CA file or a hashed CA folder; the peer must verify */
		if (stat(verify_ca, &st) < 0) {
			buf_printf(err, "CA %s: %s", verify_ca, strerror(errno));
			SSL_CTX_free(ctx);
			return NULL;
		}
		r = S_ISDIR(st.st_mode) ? SSL_CTX_load_verify_dir(ctx, verify_ca) :
		    SSL_CTX_load_verify_file(ctx, verify_ca);
		if (r != 1) {
			buf_printf(err, "CA %s", verify_ca);
			goto fail;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		/* opportunistic: the handshake succeeds whatever the
		 * certificate; the caller reads SSL_get_verify_result() */
		if (SSL_CTX_set_default_verify_paths(ctx) != 1)
			ERR_clear_error();
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
fail:
	ssl_reason(err);
	SSL_CTX_free(ctx);
	return NULL;
}

/* A host name we put into a certificate (and a subjectAltName string,
 * where a comma would start another name). */
static int
cn_valid(const char *cn)
{
	size_t n = strlen(cn), i;

	if (n == 0 || n > TLS_CN_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		char c = cn[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
			return 0;
	}
	return 1;
}

static int
add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	if (!(ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)))
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* The PEM text of a BIO written to path atomically with mode. */
static int
write_bio(BIO *b, const char *path, mode_t mode, struct buf *err)
{
	char *data;
	long n = BIO_get_mem_data(b, &data);

	if (n <= 0) {
		buf_printf(err, "%s: nothing to write", path);
		return -1;
	}
	if (write_file_atomic(path, data, (size_t)n, mode) < 0) {
		buf_printf(err, "write %s: %s", path, strerror(errno));
		return -1;
	}
	/* open() applied the umask: make the mode exact */
	if (chmod(path, mode) < 0) {
		buf_printf(err, "chmod %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int
tls_make_selfsigned(const char *cert_path, const char *key_path,
    const char *cn, struct buf *err)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	X509_NAME *name;
	BIGNUM *serial = NULL;
	BIO *kb = NULL, *cb = NULL;
	struct buf san = BUF_INIT;
	int rc = -1;

	ERR_clear_error();
	if (!cn_valid(cn)) {
		buf_printf(err, "certificate name \"%s\": not a host name", cn);
		return -1;
	}
	if (!(pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"))) {
		buf_printf(err, "EC P-256 key generation");
		goto ssl_fail;
	}
	if (!(x = X509_new()) || !X509_set_version(x, X509_VERSION_3)) {
		buf_printf(err, "X509_new");
		goto ssl_fail;
	}
	/* a random positive 127-bit serial (RFC 5280: at most 20 octets) */
	if (!(serial = BN_new()) || !BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
	    !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x))) {
		buf_printf(err, "certificate serial number");
		goto ssl_fail;
	}
	/* valid from an hour ago (clock skew) for ten years */
	if (!X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), TLS_CERT_DAYS, 0, NULL)) {
		buf_printf(err, "certificate validity");
		goto ssl_fail;
	}
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) ||
	    !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, pkey)) {
		buf_printf(err, "certificate name");
		goto ssl_fail;
	}
	buf_printf(&san, "DNS:%s", cn);
	if (add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, NID_key_usage, "critical,digitalSignature") < 0 ||
	    add_ext(x, NID_ext_key_usage, "serverAuth") < 0 ||
	    add_ext(x, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(x, NID_subject_alt_name, buf_str(&san)) < 0) {
		buf_printf(err, "certificate extensions");
		goto ssl_fail;
	}
	if (X509_sign(x, pkey, EVP_sha256()) <= 0) {
		buf_printf(err, "certificate signature");
		goto ssl_fail;
	}
	if (!(kb = BIO_new(BIO_s_mem())) || !(cb = BIO_new(BIO_s_mem())) ||
	    !PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL) ||
	    !PEM_write_bio_X509(cb, x)) {
		buf_printf(err, "PEM encoding");
		goto ssl_fail;
	}
	/* the key first: a certificate on disk always has its key */
	if (write_bio(kb, key_path, 0600, err) < 0 || write_bio(cb, cert_path, 0644, err) < 0)
		goto out;
	rc = 0;
	goto out;
ssl_fail:
	ssl_reason(err);
out:
	ERR_clear_error();
	if (kb) {
		char *data;
		long n = BIO_get_mem_data(kb, &data);

		if (n > 0)
			OPENSSL_cleanse(data, (size_t)n);
		BIO_free(kb);
	}
	BIO_free(cb);
	BN_free(serial);
	X509_free(x);
	EVP_PKEY_free(pkey);
	buf_free(&san);
	return rc;
}

void
tls_describe(SSL *ssl, struct buf *out)
{
	const SSL_CIPHER *c = ssl ? SSL_get_current_cipher(ssl) : NULL;
	int alg = 0, bits;

	if (!c) {
		buf_adds(out, "no TLS");
		return;
	}
	bits = SSL_CIPHER_get_bits(c, &alg);
	buf_printf(out, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
	    SSL_CIPHER_get_name(c), bits, alg);
}
