/*
 * pop3_session: one POP3 session (RFC 1939 states AUTHORIZATION,
 * TRANSACTION, UPDATE), split over two processes (privilege separation,
 * see popd.c and popd(8)):
 *
 *   pop3_login  the "login" process: owns the client descriptors and
 *               the TLS state, runs AUTHORIZATION, asks its parent to
 *               check credentials, and after a successful login proxies
 *               bytes between the client and the mail process.
 *   pop3_mail   the "mail" process: TRANSACTION and UPDATE on the
 *               mailbox, talking plaintext POP3 over a socketpair to the
 *               login process.
 *
 * Parent <-> login process (the "ctl" socketpair, lib/proto.h records):
 *   login -> parent  PROTO_AUTH_REQ   [user, password, "tls" | "plaintext"]
 *   parent -> login  PROTO_AUTH_REPLY [result "ok" | "fail" | "tempfail",
 *                                      canonical user name]
 * The parent itself asks authd and keeps authd's answer; the login
 * process never tells it who the user is.
 */
#ifndef HERMOD_POP3_SESSION_H
#define HERMOD_POP3_SESSION_H

#include <openssl/ssl.h>
#include "access.h"
#include "authc.h"


/* The login side: serve AUTHORIZATION on rfd/wfd; credentials go to the
 * parent over ctl; after a successful login everything the client sent
 * after the login command, and all that follows, goes to the mail
 * process over data, and its replies to the client.  Returns when the
 * session is over (the caller exits). */
void pop3_login(int rfd, int wfd, const struct access_opts *o, int ctl, int data);

/* The mail side: open the mailbox of au (already running as that user),
 * answer the login command (+OK or -ERR [IN-USE] ...) and serve
 * TRANSACTION/UPDATE on fd.  tls: the client uses TLS (for the log).
 * Takes ownership of au. */
void pop3_mail(int fd, const struct access_opts *o, struct auth_user *au, int tls);

#endif
