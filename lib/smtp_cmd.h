/*
 * smtp_cmd: the pure parts of the SMTP server protocol (RFC 5321 and
 * its extensions), kept free of I/O so they can be unit tested and
 * fuzzed: command verbs, MAIL FROM / RCPT TO paths with their ESMTP
 * parameters (SIZE, BODY, SMTPUTF8, RET, ENVID, NOTIFY, ORCPT, AUTH),
 * xtext (RFC 3461).  base64 for AUTH is lib/base64.h.
 *
 * Lines are given without their CRLF.  Nothing here accepts CR, LF or
 * NUL inside a line: such a line is a syntax error.
 */
#ifndef HERMOD_SMTP_CMD_H
#define HERMOD_SMTP_CMD_H

#include <stddef.h>
#include "buf.h"

enum smtp_verb {
	SMTP_UNKNOWN = 0,
	SMTP_HELO, SMTP_EHLO, SMTP_MAIL, SMTP_RCPT, SMTP_DATA, SMTP_BDAT,
	SMTP_RSET, SMTP_NOOP, SMTP_QUIT, SMTP_VRFY, SMTP_EXPN, SMTP_HELP,
	SMTP_STARTTLS, SMTP_AUTH,
	SMTP_VERB_MAX
};

/* The verb of a command line (case-insensitive) and its argument: *arg
 * points after the verb and the spaces that follow it ("" when none).
 * A verb must be followed by a space or the end of the line. */
int smtp_cmd_verb(const char *line, size_t len, const char **arg);
/* "MAIL", "RCPT", ... for logs; "UNKNOWN" for SMTP_UNKNOWN. */
const char *smtp_verb_name(int verb);

#define SMTP_BODY_NONE		0
#define SMTP_BODY_7BIT		1
#define SMTP_BODY_8BITMIME	2

#define SMTP_RET_NONE		0
#define SMTP_RET_FULL		1
#define SMTP_RET_HDRS		2

/* A parsed MAIL FROM or RCPT TO. */
struct smtp_path {
	struct buf addr;	/* internal form (lib/addr.h), "" for <> */
	struct buf raw;		/* what was between < and >, source route removed */
	int route;		/* 1: the path had a source route (@a,@b:) */
	long long size;		/* SIZE=, -1 when not given */
	int body;		/* SMTP_BODY_* */
	int smtputf8;
	int ret;		/* SMTP_RET_* */
	struct buf envid;	/* ENVID, xtext-decoded ("" when not given) */
	unsigned notify;	/* NOTIFY flags (queue_file.h DSN_NOTIFY_*), 0 none */
	struct buf orcpt;	/* ORCPT "rfc822;addr", decoded ("" when not given) */
	struct buf auth;	/* AUTH=, decoded */
};

void smtp_path_init(struct smtp_path *p);
void smtp_path_free(struct smtp_path *p);

/*
 * Parse the argument of MAIL ("FROM:<a> params") or RCPT ("TO:<a>
 * params").  is_rcpt selects the keyword and the parameters allowed.
 * 0 ok; -1 with an SMTP reply ("501 5.5.4 ...", "555 5.5.4 ...",
 * "553 5.1.3 ...") in reply (no CRLF).  An unqualified address is
 * accepted (the caller decides: RCPT TO:<postmaster> is legal).
 */
int smtp_parse_path(const char *arg, int is_rcpt, struct smtp_path *p,
    struct buf *reply);

/* xtext (RFC 3461 section 4): "+HH" escapes.  Appends; 0 ok, -1 bad
 * (a '+' without two upper-case hex digits, a character outside
 * 33..126 or '=', or a decoded CR, LF or NUL). */
int smtp_xtext_decode(const char *in, size_t n, struct buf *out);
void smtp_xtext_encode(const char *in, size_t n, struct buf *out);


/*
 * RFC 4616 PLAIN: authzid NUL authcid NUL passwd.  The authzid must be
 * empty or equal to authcid; no other NUL.  0 ok (user and pass set),
 * -1 malformed.
 */
int smtp_sasl_plain(const char *msg, size_t n, struct buf *user, struct buf *pass);

#endif
