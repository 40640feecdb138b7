/*
 * imap_session: one IMAP session (RFC 3501 states), split over the two
 * processes of lib/access.h:
 *   imap_login  the login process (imap_login.c): not-authenticated
 *               state, STARTTLS and implicit TLS, LOGIN and AUTHENTICATE
 *               PLAIN checked by the parent; then the client descriptor
 *               goes to the mail process (plaintext), or the login
 *               process stays as a TLS proxy;
 *   imap_mail   the mail process (imap_session.c): authenticated and
 *               selected states, as the user.
 * The hand-off meta record is "TAG SP tls|plaintext SP USER": the mail
 * process answers the login command with that tag.
 */
#ifndef HERMOD_IMAP_SESSION_H
#define HERMOD_IMAP_SESSION_H

#include "access.h"
#include "buf.h"
#include "imap_parse.h"

void imap_login(int rfd, int wfd, const struct access_opts *o, int ctl, int data);
void imap_mail(int data, const struct access_opts *o, struct auth_user *au, int tls);

/* The CAPABILITY list (without "* CAPABILITY " and CRLF) for a state:
 * starttls: STARTTLS may be offered; logindisabled: LOGINDISABLED. */
void imap_capabilities(struct buf *out, int state, int starttls, int logindisabled);

/* The parser limits from hermod.conf (imap_*_limit, message_size_limit). */
void imap_limits_from_conf(struct imap_limits *l);

#endif
