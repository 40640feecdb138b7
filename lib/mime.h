/*
 * mime: a bounded MIME parser (RFC 2045, 2046, 2231) for messages as
 * stored in a mailbox, and the views of it that IMAP (RFC 3501) needs:
 * BODYSTRUCTURE and BODY, ENVELOPE, BODY[section] byte ranges, header
 * field filtering; transfer decoding (base64, quoted-printable) and
 * RFC 2047 encoded-word decoding into UTF-8 for SEARCH and BINARY.
 *
 * mime_parse() never fails: every input, however broken, gives a tree
 * of parts whose byte ranges cover the message (the rules for broken
 * input, the limits and what happens past each are in doc/mime.md).
 * Lines may end in LF or CRLF.  The tree points into the caller's
 * buffer, which must outlive it.  Offsets are raw offsets into that
 * buffer; the *_size and *_lines fields are what IMAP counts: the size
 * with every bare LF counted as CRLF, and the number of LFs.
 */
#ifndef HERMOD_MIME_H
#define HERMOD_MIME_H

#include <stddef.h>
#include "buf.h"
#include "header.h"

/*
 * Limits, a field each, so that the caller (imapd's configuration)
 * can set them.  Past a limit nothing is lost: the content that would
 * have been parsed further stays in the body of the last part.
 */
struct mime_limits {
	unsigned int max_depth;	/* levels of parts, the message itself being level 1 */
	size_t max_parts;	/* parts in all, the message itself included */
	size_t max_header;	/* bytes of one part's header section (0: no limit) */
	size_t max_boundary;	/* longest usable boundary parameter */
};

/* Dovecot's nesting and part limits; RFC 2046's 70-byte boundaries. */
#define MIME_LIMITS_DEFAULT	{ 100, 10000, 256 * 1024, 70 }
/* max_depth is capped at this (the renderers recurse once per level). */
#define MIME_DEPTH_HARD_MAX	1000

enum mime_kind {
	MIME_LEAF,		/* anything that is not a container */
	MIME_MULTIPART,		/* a multipart type with a usable boundary: children are the body parts */
	MIME_MESSAGE		/* message/rfc822: one child, the encapsulated message */
};

enum mime_cte {
	MIME_CTE_7BIT, MIME_CTE_8BIT, MIME_CTE_BINARY,
	MIME_CTE_QP, MIME_CTE_BASE64, MIME_CTE_UNKNOWN
};

/* mime_part.flags: what was wrong or cut (diagnostics; the tree is valid) */
#define MIME_PART_HEADER_CUT	0x01	/* header over max_header (or HEADER_MAX_FIELDS): rest is body */
#define MIME_PART_OPAQUE	0x02	/* container past max_depth/max_parts: a leaf, application/octet-stream */
#define MIME_PART_NO_BOUNDARY	0x04	/* multipart without a usable boundary: taken as text/plain */
#define MIME_PART_BAD_TYPE	0x08	/* Content-Type unparsable: the default type is used */
#define MIME_PART_UNCLOSED	0x10	/* multipart whose close delimiter never came */
#define MIME_PART_LIMIT		0x20	/* max_parts reached in here: no boundary recognised after this */

/*
 * A Content-Type or Content-Disposition parameter, RFC 2231 sections
 * merged.  For an extended ("name*") parameter, value is the decoded
 * value converted to UTF-8 (invalid bytes as U+FFFD), charset and
 * language are as given ("" when empty), and wire is the merged value
 * still encoded (charset'language'%XX...), which is what BODYSTRUCTURE
 * shows (as Dovecot and Cyrus do) under the name "name*".  For others
 * charset, language and wire are NULL.  Names are lower-cased.
 */
struct mime_param {
	char *name;
	char *value;
	char *charset;
	char *language;
	char *wire;
	int extended;
};

struct mime_part {
	struct mime_part *parent, *child, *next;	/* the tree; child is the first child */
	size_t index;		/* position in mime_message.parts (document order) */
	unsigned int depth;	/* 0 for the message itself */
	enum mime_kind kind;
	unsigned int flags;	/* MIME_PART_* */

	/* raw ranges; header_len includes the empty line that ends it */
	size_t offset, header_len, body_offset, body_len;
	/* IMAP sizes (bare LF counted as CRLF) and line counts (LFs) */
	size_t header_size, header_lines, body_size, body_lines;

	struct header header;	/* the fields of this part's header section */

	/* Content-Type: lower-cased, defaults applied (RFC 2045 5.2,
	 * RFC 2046 5.1.5); charset is the charset parameter, or "us-ascii"
	 * for text/ without one, or NULL */
	char *type, *subtype;
	struct mime_param *params;
	size_t nparams;
	char *charset;
	/* Content-Transfer-Encoding (lower-cased token; NULL when absent,
	 * which means 7bit) */
	char *cte_name;
	enum mime_cte cte;
	/* Content-Disposition (type lower-cased), Content-Language (tags as
	 * written); the rest are the unfolded field values; NULL if absent */
	char *disposition;
	struct mime_param *disp_params;
	size_t ndisp_params;
	char **language;
	size_t nlanguage;
	char *id, *description, *location, *md5;
};

struct mime_message {
	const char *data;	/* the caller's buffer */
	size_t len;
	struct mime_part **parts;	/* document (pre-)order; parts[0] is the message */
	size_t nparts;
	struct mime_limits limits;	/* as used (zeros replaced by 1) */
	int limited;		/* some limit was reached */
};

/* Parse; lim NULL means MIME_LIMITS_DEFAULT.  Never NULL. */
struct mime_message *mime_parse(const char *data, size_t len,
    const struct mime_limits *lim);
/* Free the tree and set *m to NULL. */
void mime_free(struct mime_message **m);
/* The first parameter of that name (case-insensitive), or NULL. */
const struct mime_param *mime_param_get(const struct mime_param *v, size_t n,
    const char *name);
/* The part's end offset (body_offset + body_len). */
size_t mime_part_end(const struct mime_part *p);

/* IMAP size of a raw range (bare LFs counted as CRLF); *lines (may be
 * NULL) gets the number of LFs.  An LF at p[0] counts as bare. */
size_t mime_crlf_size(const char *p, size_t n, size_t *lines);
/* Append the range ready to send in an IMAP literal: every bare LF
 * made CRLF and every NUL 0x80 (literals cannot hold NUL; Dovecot does
 * the same): exactly mime_crlf_size() bytes. */
void mime_crlf_append(struct buf *out, const char *p, size_t n);

/*
 * Transfer decoding, appending to out.  Both are lenient, as mail
 * readers are: base64 skips every character outside its alphabet, and
 * "=" ends a group (so concatenated encodings decode); quoted-printable
 * keeps a bad "=" escape as it is, removes soft line breaks ("=" at
 * the end of a line, white space allowed after it) and the white space
 * at the end of lines, and keeps line ends as they are.
 */
void mime_base64_decode(const char *in, size_t n, struct buf *out);
void mime_qp_decode(const char *in, size_t n, struct buf *out);
/* Append the part's body with its transfer encoding undone: 0, or -1
 * (out untouched) when the encoding is unknown (BINARY's UNKNOWN-CTE). */
int mime_part_decode(const struct mime_message *m, const struct mime_part *p,
    struct buf *out);

/*
 * Charsets.  mime_to_utf8 appends in (in charset) as UTF-8, at most
 * max bytes (cut at a character boundary); invalid or incomplete
 * sequences become U+FFFD.  utf-8, us-ascii (taken as UTF-8, since
 * mislabelled 8-bit mail is common) and iso-8859-1 are converted here,
 * others by iconv(3); an unknown charset is taken as UTF-8.  Returns 0,
 * 1 if the charset was unknown, 2 if the output was cut at max.
 */
int mime_to_utf8(const char *charset, const char *in, size_t n, size_t max,
    struct buf *out);
/*
 * Decode a header value's RFC 2047 encoded-words (also in the middle
 * of words, as readers do) into UTF-8, appending at most max bytes;
 * white space between two encoded-words is dropped, adjacent words of
 * one charset are decoded together (a character split across them
 * survives), and raw 8-bit text is kept if it is UTF-8, else U+FFFD.
 * Returns 0, or 2 if cut at max.
 */
int mime_header_decode(const char *in, size_t n, size_t max, struct buf *out);

/*
 * BODY[section] (RFC 3501 6.4.5).  path holds the section numbers
 * ("1.2.3" is {1, 2, 3}, npath 3; "" is npath 0); suffix what follows.
 * MIME_SECT_NONE with numbers is the part's body (for message/rfc822
 * the whole encapsulated message), without numbers the whole message.
 * HEADER and TEXT need no numbers or a message/rfc822 part, and then
 * address the encapsulated message's header and body; MIME needs
 * numbers and gives that part's own header.  HEADER.FIELDS[.NOT] use
 * MIME_SECT_HEADER to find the header, then mime_header_filter.
 * A non-multipart message has one part, 1, which is its body.
 * On success *r is the raw range and *part (may be NULL) the part
 * whose header or body it is; -1 when there is no such part or the
 * suffix does not apply.
 */
enum mime_sect { MIME_SECT_NONE, MIME_SECT_HEADER, MIME_SECT_TEXT, MIME_SECT_MIME };

struct mime_range {
	size_t offset, len;
};

int mime_section(const struct mime_message *m, const unsigned int *path,
    size_t npath, enum mime_sect suffix, struct mime_range *r,
    const struct mime_part **part);

/*
 * HEADER.FIELDS (exclude 0) / HEADER.FIELDS.NOT (exclude 1) of a part's header
 * section: appends the fields whose names are (not) in names, matched
 * case-insensitively, each as written (folded lines kept), then the
 * empty line unless the header had none and the part has no body, all
 * with CRLF line ends and NUL as 0x80 (see mime_crlf_append).
 */
void mime_header_filter(const struct mime_part *p, const char *const *names,
    size_t nnames, int exclude, struct buf *out);

/*
 * IMAP renderings (lib/mime_imap.c).  mime_imap_string appends s as a
 * quoted string, or as a literal {n}CRLF when it holds CR, LF or 8-bit
 * bytes or is longer than MIME_IMAP_QUOTED_MAX; NUL bytes are dropped
 * (IMAP strings cannot hold them).  mime_imap_nstring: NIL for NULL.
 */
#define MIME_IMAP_QUOTED_MAX	1024

void mime_imap_string(struct buf *out, const char *s, size_t n);
void mime_imap_nstring(struct buf *out, const char *s);
/* ENVELOPE of the message whose header is msg's (the root, or the child
 * of a message/rfc822 part), with the parentheses. */
void mime_imap_envelope(const struct mime_part *msg, struct buf *out);
/* BODYSTRUCTURE (extended 1) or BODY (extended 0) of part p. */
void mime_imap_bodystructure(const struct mime_part *p, int extended,
    struct buf *out);

#endif
