/*
 * header: the RFC 5322 header section of a message.
 *
 * header_parse() splits the header section (up to the first empty line,
 * or all of it when there is none) into fields, unfolding continuation
 * lines into the field value.  Input lines end in LF or CRLF.  Limits:
 * at most max_bytes of header section and HEADER_MAX_FIELDS fields;
 * beyond that the rest is treated as body (and *truncated set).
 * max_bytes 0 means no byte limit.  A line that is neither a field nor
 * a continuation ends the header section: the body starts with it
 * (has_blank 0).  A line of white space only continues the field.
 */
#ifndef HERMOD_HEADER_H
#define HERMOD_HEADER_H

#include <stddef.h>
#include "buf.h"

#define HEADER_MAX_FIELDS	10000

struct header_field {
	char *name;		/* as written, without the colon */
	char *value;		/* unfolded, leading white space removed */
	const char *raw;	/* the raw field text in the input (with folding and line end) */
	size_t raw_len;
};

struct header {
	struct header_field *f;
	size_t n;
	size_t body_offset;	/* offset of the body in the input (after the empty line) */
	int truncated;
	int has_blank;		/* 1 if an empty line ended the header section */
};

/* 0 ok; -1 if the input does not start with a header section at all
 * (then body_offset is 0 and n is 0). */
int header_parse(const char *msg, size_t len, size_t max_bytes, struct header *h);
void header_free(struct header *h);
/* First field with this name (case-insensitive), or NULL. */
const struct header_field *header_get(const struct header *h, const char *name);
size_t header_count(const struct header *h, const char *name);
/* 1 if name is a valid field name (printable ASCII except ':'). */
int header_name_valid(const char *name, size_t len);

#endif
