/*
 * header.c: splitting the RFC 5322 header section (section 2.2) into
 * fields, with unfolding (2.2.3) and the obsolete "Name : value" form
 * (4.5: white space before the colon).
 *
 * The header section ends at the first empty line (has_blank, the body
 * starts after it), at the end of the input, at the first line that is
 * neither a field nor a continuation (the body starts with that line),
 * or where a limit is reached (truncated; the rest counts as body).
 * A field containing a NUL byte also ends the header section.
 *
 * Invariants: body_offset <= len; every raw pointer lies inside the
 * input; every name passes header_name_valid; values contain neither
 * line ends nor NUL; work is linear in the input.
 */
#include "header.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

int
header_name_valid(const char *name, size_t len)
{
	size_t i;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 33 || c > 126 || c == ':')
			return 0;
	}
	return 1;
}

/* End of the line starting at p (one past its LF, or len). */
static size_t
line_end(const char *msg, size_t len, size_t p)
{
	const char *nl = memchr(msg + p, '\n', len - p);

	return nl ? (size_t)(nl - msg) + 1 : len;
}

/* Length of the line's text without its LF or CRLF. */
static size_t
line_text(const char *msg, size_t start, size_t end)
{
	size_t n = end - start;

	if (n && msg[end - 1] == '\n') {
		n--;
		if (n && msg[start + n - 1] == '\r')
			n--;
	}
	return n;
}

/*
 * If the line at [start, start+n) is a field line, return the length
 * of its name and set *colon to the offset of the colon; else 0.
 */
static size_t
field_name(const char *msg, size_t start, size_t n, size_t *colon)
{
	size_t i = 0, name;

	while (i < n) {
		unsigned char c = (unsigned char)msg[start + i];

		if (c < 33 || c > 126 || c == ':')
			break;
		i++;
	}
	name = i;
	if (name == 0)
		return 0;
	while (i < n && (msg[start + i] == ' ' || msg[start + i] == '\t'))
		i++;
	if (i >= n || msg[start + i] != ':')
		return 0;
	*colon = start + i;
	return name;
}

static void
add_field(struct header *h, size_t *cap, const char *msg, size_t start,
    size_t name_len, size_t colon, size_t end)
{
	struct header_field *f;
	struct buf v = BUF_INIT;
	size_t p, s, e;

	if (h->n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		h->f = xreallocarray(h->f, *cap, sizeof(*h->f));
	}
	f = &h->f[h->n++];
	f->name = xstrndup(msg + start, name_len);
	f->raw = msg + start;
	f->raw_len = end - start;
	/* unfold: drop each line end, keep the white space that follows */
	for (p = colon + 1; p < end; ) {
		size_t le = line_end(msg, end, p);

		buf_add(&v, msg + p, line_text(msg, p, le));
		p = le;
	}
	s = 0;
	e = v.len;
	while (s < e && (v.data[s] == ' ' || v.data[s] == '\t'))
		s++;
	while (e > s && (v.data[e - 1] == ' ' || v.data[e - 1] == '\t' ||
	    v.data[e - 1] == '\r'))
		e--;
	f->value = xstrndup(v.data ? v.data + s : "", e - s);
	buf_free(&v);
}

int
header_parse(const char *msg, size_t len, size_t max_bytes, struct header *h)
{
	size_t p = 0, cap = 0, total = 0;

	memset(h, 0, sizeof(*h));
	while (p < len) {
		size_t le = line_end(msg, len, p), n = line_text(msg, p, le);
		size_t name_len, colon = 0, end;

		if (n == 0) {
			h->has_blank = 1;
			h->body_offset = le;
			return 0;
		}
		name_len = field_name(msg, p, n, &colon);
		if (name_len == 0) {
			/* not a field (a continuation here has no field to continue) */
			if (h->n == 0 && p == 0)
				return -1;
			h->body_offset = p;
			return 0;
		}
		/* the field's continuation lines */
		end = le;
		while (end < len && (msg[end] == ' ' || msg[end] == '\t')) {
			end = line_end(msg, len, end);
		}
		if (memchr(msg + p, 0, end - p)) {
			if (h->n == 0 && p == 0)
				return -1;
			h->body_offset = p;
			return 0;
		}
		if ((max_bytes && total + (end - p) > max_bytes) ||
		    h->n >= HEADER_MAX_FIELDS) {
			h->truncated = 1;
			h->body_offset = p;
			return 0;
		}
		total += end - p;
		add_field(h, &cap, msg, p, name_len, colon, end);
		p = end;
	}
	h->body_offset = len;
	return 0;
}

void
header_free(struct header *h)
{
	size_t i;

	for (i = 0; i < h->n; i++) {
		free(h->f[i].name);
		free(h->f[i].value);
	}
	free(h->f);
	memset(h, 0, sizeof(*h));
}

const struct header_field *
header_get(const struct header *h, const char *name)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (strcasecmp(h->f[i].name, name) == 0)
			return &h->f[i];
	return NULL;
}

size_t
header_count(const struct header *h, const char *name)
{
	size_t i, c = 0;

	for (i = 0; i < h->n; i++)
		if (strcasecmp(h->f[i].name, name) == 0)
			c++;
	return c;
}
