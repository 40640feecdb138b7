/*
 * smtp_reply: the pure SMTP/LMTP reply parser (RFC 5321 section 4.2,
 * RFC 2034 enhanced status codes) and the EHLO capability reader, free
 * of I/O so that they can be unit tested and fuzzed.
 *
 * A reply is one or more lines "CCC-text" ending with a line "CCC text"
 * (or just "CCC"), each ending in CRLF (a bare LF is accepted at the end
 * of a line, never inside one).  Every line of one reply must carry the
 * same code.  Limits: SMTP_REPLY_LINE_MAX bytes per line,
 * SMTP_REPLY_LINES_MAX lines per reply; beyond them the reply is
 * malformed (the caller drops the connection and defers).
 */
#ifndef HERMOD_SMTP_REPLY_H
#define HERMOD_SMTP_REPLY_H

#include <stddef.h>
#include "buf.h"

#define SMTP_REPLY_LINE_MAX	4096
#define SMTP_REPLY_LINES_MAX	200

struct smtp_reply {
	int code;		/* 200..599 */
	char esc[16];		/* enhanced status code of the first line ("" none) */
	struct buf text;	/* the lines' texts (code and esc removed), joined by "\n" */
	size_t nlines;
};

void smtp_reply_init(struct smtp_reply *r);
void smtp_reply_free(struct smtp_reply *r);

/*
 * Parse one complete reply from the front of p[0..n).  1: a reply is in
 * r and *used bytes were consumed; 0: need more bytes (nothing
 * consumed; when n already exceeds what a reply may hold this returns
 * -1 instead); -1: malformed.
 */
int smtp_reply_parse(const char *p, size_t n, struct smtp_reply *r, size_t *used);

/* The RFC 3463 code for a reply: its own enhanced code when it has one
 * of the same class, else C.0.0 from the reply class (dflt_detail
 * "X.Y.Z" is used instead when not NULL, with its class replaced). */
void smtp_reply_dsn(const struct smtp_reply *r, const char *dflt, char out[16]);

/* A one-line form for logs and status texts: "CODE ESC text text ...",
 * control characters replaced, at most max bytes (then "..."). */
void smtp_reply_oneline(const struct smtp_reply *r, size_t max, struct buf *out);

/* EHLO capabilities. */
#define SMTP_EXT_PIPELINING	0x01
#define SMTP_EXT_SIZE		0x02
#define SMTP_EXT_8BITMIME	0x04
#define SMTP_EXT_DSN		0x08
#define SMTP_EXT_STARTTLS	0x10
#define SMTP_EXT_SMTPUTF8	0x20
#define SMTP_EXT_ENHANCEDSTATUSCODES 0x40

struct smtp_ext {
	unsigned flags;
	long long size;		/* SIZE limit, 0: none given */
};
/* Read the keywords of an EHLO (or LHLO) reply (lines after the first). */
void smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ext *e);

#endif
