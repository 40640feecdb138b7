/*
 * pop3_session: one POP3 session (RFC 1939 states AUTHORIZATION,
 * TRANSACTION, UPDATE) on a pair of descriptors, plain or TLS.
 */
#ifndef HERMOD_POP3_SESSION_H
#define HERMOD_POP3_SESSION_H

#include <openssl/ssl.h>

struct pop3_opts {
	SSL_CTX *tls;		/* NULL: no STLS, no implicit TLS */
	int wrapper;		/* implicit TLS from the first byte */
	int loopback;		/* the client is on this host */
	const char *client;	/* for the log */
	/* privileged: pre-auth euid/egid are mail_owner's, root stays the
	 * saved id so that the login can switch to the mail user for good */
	int privileged;
};

/* Serve one session; returns when it is over (the caller closes). */
void pop3_session(int rfd, int wfd, const struct pop3_opts *o);

#endif
