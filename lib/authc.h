/*
 * authc: the client side of authd (DESIGN.md: network-facing processes
 * never read password files; authd, running as root, answers "is this
 * user/password right, and who is it").
 *
 * Wire format (lib/proto.h):
 *   PROTO_AUTH_REQ   [service ("smtpd", "popd", ...), user, password,
 *                     client address (for the log; may be "")]
 *   PROTO_AUTH_REPLY [result "ok" | "fail" | "tempfail", canonical user
 *                     name, uid, gid, home, mailbox type "maildir" |
 *                     "mbox", mailbox path (Maildir with trailing '/'),
 *                     text for the log, quota "BYTES MESSAGES" (0: no
 *                     limit; absent from an older authd: none)]
 *   PROTO_USER_REQ   [service, local part]
 *   PROTO_USER_REPLY [result "ok" | "fail" | "tempfail"]
 *     "is there a mailbox user of this name" without a password: smtpd's
 *     recipient check, which must not read the users file or passwd
 *     itself (it is chrooted into the spool and runs as mail_owner).
 * A user is a virtual user of the instance (lib/vuser.h) or, in a
 * privileged instance, a system user (shadow, crypt_r).  The reply never
 * says which part was wrong.  authd applies no delay: the server that
 * talks to the client delays failures (auth_failure_delay) and counts
 * them (auth_failure_limit).
 */
#ifndef HERMOD_AUTHC_H
#define HERMOD_AUTHC_H

#include <sys/types.h>
#include "buf.h"

struct auth_user {
	char *name;
	uid_t uid;
	gid_t gid;
	char *home;
	char *mailbox;		/* path; a Maildir path ends in '/' */
	int maildir;		/* 1 Maildir, 0 mbox */
	long long quota_bytes;	/* lib/quota.h; 0: no limit */
	long long quota_messages;
};

#define AUTHC_OK	1
#define AUTHC_FAIL	0
#define AUTHC_TEMPFAIL	(-1)

/* Asynchronous use (event loops): authc_send connects to authd_socket
 * and sends the request, returning the connected descriptor (or -1 with
 * errno: authd unreachable, a temporary failure); when the descriptor is
 * readable, authc_recv reads the reply (blocking until complete) and
 * returns AUTHC_OK (u filled), AUTHC_FAIL or AUTHC_TEMPFAIL.  The caller
 * closes the descriptor. */
int authc_send(const char *service, const char *user, const char *password,
    const char *client);
int authc_recv(int fd, struct auth_user *u);
/* Blocking convenience: send, wait (with ipc_timeout), receive, close. */
int authc_check(const char *service, const char *user, const char *password,
    const char *client, struct auth_user *u);
void auth_user_free(struct auth_user *u);

/* The user question, asynchronously like authc_send/authc_recv:
 * authc_user_send returns the connected descriptor or -1 (errno);
 * authc_user_recv returns AUTHC_OK (the user exists), AUTHC_FAIL or
 * AUTHC_TEMPFAIL. */
int authc_user_send(const char *service, const char *name);
int authc_user_recv(int fd);

#endif
