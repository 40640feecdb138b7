/*
 * pop3_cmd: the POP3 command parser (RFC 1939, 2449, 2595, 5034) and the
 * small pure helpers the session needs: message numbers, SASL PLAIN,
 * base64 and the RETR/TOP output transformation (UIDL syntax and the
 * LIST size are the store's: mstore_uidl_valid, mstore_wire_size).  No I/O,
 * no global state: everything here is fed hostile bytes by the fuzzer.
 */
#ifndef HERMOD_POP3_CMD_H
#define HERMOD_POP3_CMD_H

#include <stddef.h>
#include "buf.h"

enum pop3_verb {
	POP3_BAD = 0,		/* syntax error (empty line, NUL, bad bytes) */
	POP3_UNKNOWN,		/* a well-formed but unknown keyword */
	POP3_USER, POP3_PASS, POP3_APOP, POP3_AUTH, POP3_QUIT,
	POP3_STAT, POP3_LIST, POP3_RETR, POP3_DELE, POP3_NOOP,
	POP3_RSET, POP3_TOP, POP3_UIDL, POP3_LAST, POP3_CAPA,
	POP3_STLS,
};

#define POP3_MAX_ARGS	2
#define POP3_ARG_MAX	255	/* RFC 2449: arguments up to 40 chars; SASL more */

struct pop3_cmd {
	int verb;
	char keyword[5];	/* upper-cased, "" for POP3_BAD */
	int nargs;		/* number of space-separated arguments */
	char *args[POP3_MAX_ARGS];
	char *rest;		/* everything after "KEYWORD " (PASS allows spaces) */
};

/* Parse one command line in place (line without its CRLF, len bytes;
 * line[len] must be writable and becomes NUL).  Returns the verb (also
 * stored in c->verb).  Too many arguments or an over-long argument give
 * POP3_BAD. */
int pop3_cmd_parse(char *line, size_t len, struct pop3_cmd *c);
const char *pop3_verb_name(int verb);

/* A message number 1..max (decimal, no sign, no leading junk).
 * 0 ok, -1 syntax, -2 out of range. */
int pop3_msgnum(const char *s, unsigned long max, unsigned long *out);
/* A non-negative line count for TOP (capped at max).  0 ok, -1 syntax. */
int pop3_count(const char *s, unsigned long max, unsigned long *out);

/* Base64 decode (RFC 4648, padding required, no white space).  0 ok,
 * -1 invalid.  "=" alone decodes to the empty string (RFC 5034). */
int pop3_b64_decode(const char *in, size_t n, struct buf *out);
/* SASL PLAIN message "authzid\0authcid\0passwd": 0 ok (authz may be
 * empty), -1 malformed.  The pointers point into msg, which must be
 * NUL-terminated one past len (struct buf is). */
int pop3_sasl_plain(const char *msg, size_t len, const char **authz,
    const char **user, const char **pass);

/*
 * The message transformation for RETR and TOP: the stored message (LF
 * or CRLF line ends) becomes network text: every line ends in CRLF, a
 * line starting with '.' gets another '.', a last line without a line
 * end gets one.  With top >= 0 only the header, the empty line and the
 * first top body lines are sent.  The terminating ".\r\n" is not
 * added.  mstore_wire_size (lib/mstore.h) gives the size of the CRLF
 * message without the dot-stuffing (what LIST and STAT report).
 */
void pop3_wire_out(const char *p, size_t n, long top, struct buf *out);

#endif
