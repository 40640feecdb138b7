/*
 * fuzz_mime.c: libFuzzer harness for lib/mime.c and lib/mime_imap.c.
 * The first two input bytes pick small limits (so that every limit is
 * reached), the rest is a message.  Checked invariants (a failure
 * aborts): the root covers the buffer; every part's ranges lie inside
 * the buffer and its parent's body, parts are in document order and
 * siblings do not overlap; header fields lie inside their part's
 * header; the IMAP sizes and line counts equal mime_crlf_size of the
 * ranges and mime_crlf_append produces exactly that many bytes; the
 * limits hold; BODYSTRUCTURE, BODY and every ENVELOPE are one
 * well-formed IMAP value (strings, literals of the announced size, NIL,
 * numbers, balanced lists); every section range lies inside the buffer
 * and agrees with its part; decoding every part and every header value
 * terminates, within the output bound for RFC 2047.
 */
#include "mime.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One IMAP value at s[*i] (RFC 3501 9); 0 ok, -1 malformed. */
static int
imap_value(const char *s, size_t n, size_t *i, unsigned int depth)
{
	size_t k;

	if (depth > 4 * MIME_DEPTH_HARD_MAX || *i >= n)
		return -1;
	if (s[*i] == '(') {
		(*i)++;
		if (*i < n && s[*i] == ')') {
			(*i)++;
			return 0;	/* "()" is not written, but it is syntax */
		}
		for (;;) {
			if (imap_value(s, n, i, depth + 1) < 0)
				return -1;
			if (*i < n && s[*i] == ')') {
				(*i)++;
				return 0;
			}
			/* nested bodies follow each other without a space */
			if (*i < n && s[*i] == ' ')
				(*i)++;
			else if (!(*i < n && s[*i] == '('))
				return -1;
		}
	}
	if (s[*i] == '"') {
		for ((*i)++; *i < n && s[*i] != '"'; (*i)++) {
			unsigned char c = (unsigned char)s[*i];

			if (c == '\\') {
				(*i)++;
				if (*i >= n || (s[*i] != '"' && s[*i] != '\\'))
					return -1;
			} else if (c == 0 || c == '\r' || c == '\n' || c >= 0x80)
				return -1;
		}
		if (*i >= n)
			return -1;
		(*i)++;
		return 0;
	}
	if (s[*i] == '{') {
		size_t len = 0;

		for ((*i)++; *i < n && s[*i] >= '0' && s[*i] <= '9'; (*i)++)
			len = len * 10 + (size_t)(s[*i] - '0');
		if (*i + 3 > n || memcmp(s + *i, "}\r\n", 3) != 0)
			return -1;
		*i += 3;
		if (len > n - *i || memchr(s + *i, 0, len))
			return -1;
		*i += len;
		return 0;
	}
	if (n - *i >= 3 && memcmp(s + *i, "NIL", 3) == 0) {
		*i += 3;
		return 0;
	}
	for (k = *i; k < n && s[k] >= '0' && s[k] <= '9'; k++)
		;
	if (k == *i)
		return -1;
	*i = k;
	return 0;
}

static void
check_imap(const struct buf *b)
{
	size_t i = 0;

	if (imap_value(b->data, b->len, &i, 0) < 0 || i != b->len)
		abort();
}

static void
check_part(const struct mime_message *m, const struct mime_part *p, size_t i)
{
	const struct mime_part *c;
	size_t j, lines, nchild = 0;
	struct buf b = BUF_INIT;

	if (p->index != i || p->body_offset != p->offset + p->header_len ||
	    p->body_offset > m->len || p->body_len > m->len - p->body_offset)
		abort();
	if (i && m->parts[i - 1]->offset > p->offset)
		abort();
	if (p->parent) {
		if (p->offset < p->parent->body_offset ||
		    mime_part_end(p) > mime_part_end(p->parent) ||
		    p->depth != p->parent->depth + 1 || p->parent->index >= i)
			abort();
	} else if (i != 0)
		abort();
	if (p->depth >= m->limits.max_depth)
		abort();
	for (c = p->child; c; c = c->next) {
		if (c->parent != p || (c->next && mime_part_end(c) > c->next->offset))
			abort();
		nchild++;
	}
	if ((p->kind == MIME_MESSAGE && nchild != 1) || (p->kind == MIME_LEAF && nchild))
		abort();
	if (p->kind == MIME_MESSAGE && (p->child->offset != p->body_offset ||
	    mime_part_end(p->child) != mime_part_end(p)))
		abort();
	for (j = 0; j < p->header.n; j++) {
		const struct header_field *f = &p->header.f[j];

		if (f->raw < m->data + p->offset || f->raw + f->raw_len > m->data + p->body_offset)
			abort();
	}
	if (!p->type || !p->subtype || (strcmp(p->type, "text") == 0) != (p->charset != NULL))
		abort();
	if (p->header_size != mime_crlf_size(m->data + p->offset, p->header_len, &lines) ||
	    lines != p->header_lines)
		abort();
	if (p->body_size != mime_crlf_size(m->data + p->body_offset, p->body_len, &lines) ||
	    lines != p->body_lines)
		abort();
	mime_crlf_append(&b, m->data + p->body_offset, p->body_len);
	if (b.len != p->body_size || memchr(b.data ? b.data : "", 0, b.len))
		abort();

	/* decoding terminates and stays within what the input allows */
	buf_reset(&b);
	if (mime_part_decode(m, p, &b) == 0 && b.len > p->body_len)
		abort();
	for (j = 0; j < p->header.n && j < 8; j++) {
		const char *v = p->header.f[j].value;

		buf_reset(&b);
		if (mime_header_decode(v, strlen(v), 100, &b) < 0 || b.len > 100)
			abort();
	}
	{
		static const char *const names[] = { "subject", "Content-Type" };

		buf_reset(&b);
		mime_header_filter(p, names, 2, (int)(i & 1), &b);
	}
	if (p->kind == MIME_MESSAGE) {
		buf_reset(&b);
		mime_imap_envelope(p->child, &b);
		check_imap(&b);
	}
	buf_free(&b);
}

/* Walk sections 1, 1.1, ... as far as they exist; check each range. */
static void
check_sections(const struct mime_message *m, const uint8_t *sel, size_t nsel)
{
	unsigned int path[8];
	size_t k, depth, d;
	struct mime_range r;
	const struct mime_part *p;
	enum mime_sect suf;

	for (k = 0; k < nsel; k++) {
		depth = 1 + (sel[k] & 7) % 8;
		for (d = 0; d < depth && d < 8; d++)
			path[d] = 1 + ((sel[k] >> (d % 5)) & 3);
		for (suf = MIME_SECT_NONE; suf <= MIME_SECT_MIME; suf++) {
			if (mime_section(m, path, depth, suf, &r, &p) < 0)
				continue;
			if (r.offset > m->len || r.len > m->len - r.offset)
				abort();
			if (suf == MIME_SECT_MIME && (r.offset != p->offset || r.len != p->header_len))
				abort();
			if (suf != MIME_SECT_MIME && suf != MIME_SECT_HEADER &&
			    (r.offset != p->body_offset || r.len != p->body_len))
				abort();
		}
	}
	if (mime_section(m, NULL, 0, MIME_SECT_NONE, &r, NULL) < 0 || r.offset || r.len != m->len)
		abort();
	if (mime_section(m, NULL, 0, MIME_SECT_MIME, &r, NULL) == 0)
		abort();
	p = m->parts[0];
	if (mime_section(m, NULL, 0, MIME_SECT_HEADER, &r, NULL) < 0 ||
	    r.offset != 0 || r.len != p->header_len)
		abort();
	if (mime_section(m, NULL, 0, MIME_SECT_TEXT, &r, NULL) < 0 ||
	    r.offset != p->body_offset || r.len != p->body_len)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
	struct mime_limits lim;
	struct mime_message *m;
	struct buf b = BUF_INIT;
	size_t i;

	if (n < 2)
		return 0;
	lim.max_depth = 1 + (data[0] & 7);
	lim.max_parts = 1 + (size_t)(data[0] >> 3) * 2;
	lim.max_header = data[1] & 0x80 ? (size_t)(data[1] & 0x7f) * 16 : 0;
	lim.max_boundary = 1 + (data[1] & 0x7f);
	m = mime_parse((const char *)data + 2, n - 2, &lim);
	if (m->nparts == 0 || m->nparts > lim.max_parts || m->parts[0]->offset != 0 ||
	    mime_part_end(m->parts[0]) != m->len)
		abort();
	for (i = 0; i < m->nparts; i++)
		check_part(m, m->parts[i], i);
	check_sections(m, data, n < 16 ? n : 16);
	mime_imap_bodystructure(m->parts[0], 1, &b);
	check_imap(&b);
	buf_reset(&b);
	mime_imap_bodystructure(m->parts[0], 0, &b);
	check_imap(&b);
	buf_reset(&b);
	mime_imap_envelope(m->parts[0], &b);
	check_imap(&b);
	buf_free(&b);
	mime_free(&m);
	return 0;
}
