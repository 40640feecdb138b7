/*
 * access: the session runner that the mailbox access daemons (popd,
 * imapd) share: the privilege split of popd(8)/imapd(8) SECURITY, as in
 * Dovecot and OpenSSH.  For each client the session's parent (the
 * service process, or the daemon itself under inetd; root in a
 * privileged instance) makes two socketpairs and forks
 *   - the login process: mail_owner for good before it reads a byte; it
 *     owns the client and the TLS state and runs the pre-login protocol,
 *     sending credentials to the parent over "ctl";
 *   - the parent asks authd and acts only on its answer (uid 0 and gid 0
 *     refused); on success it forks
 *   - the mail process: the user's uid, gid and groups for good; it
 *     serves the mailbox on the "data" socketpair, over which the login
 *     process either hands it the client descriptor itself (plaintext:
 *     no byte-copying hop, access_handoff_*) or proxies the client's
 *     bytes (TLS).
 * Parent <-> login process (ctl, lib/proto.h records):
 *   login -> parent  PROTO_AUTH_REQ   [user, password, "tls" | "plaintext"]
 *   parent -> login  PROTO_AUTH_REPLY ["ok" | "fail" | "tempfail", canonical name]
 */
#ifndef HERMOD_ACCESS_H
#define HERMOD_ACCESS_H

#include <stddef.h>
#include <openssl/ssl.h>
#include "authc.h"
#include "buf.h"

struct access_opts {
	SSL_CTX *tls;		/* login process only (it loads it); NULL: no STARTTLS/STLS */
	int wrapper;		/* implicit TLS from the first byte */
	int loopback;		/* the client is on this host */
	const char *client;	/* for the log */
	int privileged;		/* parent root; login as mail_owner, mail as the user */
};

struct access_daemon {
	const char *name;	/* "popd": the log and authd's service name */
	const char *prefix;	/* "pop3": PREFIX_tls_cert_file, _tls_key_file, _tls_wrappermode */
	void (*login)(int rfd, int wfd, const struct access_opts *o, int ctl, int data);
	void (*mail)(int data, const struct access_opts *o, struct auth_user *au, int tls);
	const char *uid_fail;	/* written on data when the mail process cannot become the user */
	const char *busy;	/* sent to a client refused for PREFIX_max_connections(_per_ip) */
};

/* The daemon's main(): options (-i for inetd, the common ones), TLS
 * context, then sessions until the master stops us. */
int access_main(const struct access_daemon *d, int argc, char **argv);

/* Longest user name / password the parent accepts from a login process. */
#define ACCESS_MAX_CRED	1024

/* Login process: ask the parent; AUTHC_OK, AUTHC_FAIL, AUTHC_TEMPFAIL or
 * ACCESS_USER_LIMIT (the password was right, but the user has
 * PREFIX_max_connections_per_user sessions already). */
#define ACCESS_USER_LIMIT	(-2)
int access_ask_parent(int ctl, const char *user, const char *pass, int tls);

/* Login process, after a successful login: give the mail process the
 * client descriptor cfd (-1: none, the login process will proxy), a
 * short record for the mail process (meta, e.g. the IMAP tag) and the
 * bytes the client sent after the login command.  0 ok, -1 err. */
int access_handoff_send(int data, int cfd, const void *meta, size_t mlen,
    const void *pending, size_t plen);
/* Mail process: receive it; *cfd is the client (or -1: talk on data).
 * 0 ok, -1 err. */
int access_handoff_recv(int data, int *cfd, struct buf *meta, struct buf *pending);

/* ---- the login process's client side (access_proxy.c) ---- */

struct access_conn {
	int rfd, wfd;		/* the client (the same socket, or inetd's pipes) */
	SSL *ssl;		/* or NULL */
	long long idle_ms;	/* the daemon's idle time: the watchdog is twice it */
	const char *client;	/* for the log */
};

/* Arm the watchdog (SIGALRM ends the process) before a blocking TLS call. */
void access_watchdog(const struct access_conn *c);
/* Write all of p/n to the client under the watchdog.  0 ok, -1 gone. */
int access_client_write(const struct access_conn *c, const char *p, size_t n);
/* 1 if the client can go to the mail process (plaintext, one socket for
 * both directions), else 0: then the login process proxies. */
int access_handable(const struct access_conn *c);
/* Proxy between the client and the mail process on data (after the
 * pending bytes, which go to the mail process first) until the mail
 * process closes: 0, or -1 when the client is gone or timed out.
 * *client_eof tells whether the client ended its input itself. */
int access_proxy(const struct access_conn *c, int data, const char *pending, size_t plen,
    int *client_eof);
/* Half-close towards the client, then read and drop what it still
 * sends for up to linger_ms, so that no reset destroys the last replies. */
void access_linger_close(const struct access_conn *c, long long linger_ms);

#endif
