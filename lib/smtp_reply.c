/*
 * smtp_reply: SMTP/LMTP reply parsing and EHLO keywords (see
 * smtp_reply.h).  Pure: no I/O, no global state.  Invariants: nothing is
 * consumed unless a whole reply parsed; a line longer than
 * SMTP_REPLY_LINE_MAX, more than SMTP_REPLY_LINES_MAX lines, a NUL or a
 * bare CR inside a line, a bad code or codes that differ between lines
 * make the reply malformed.
 */
#include "smtp_reply.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
smtp_reply_init(struct smtp_reply *r)
{
	r->code = 0;
	r->esc[0] = 0;
	buf_init(&r->text);
	r->nlines = 0;
}

void
smtp_reply_free(struct smtp_reply *r)
{
	buf_free(&r->text);
	r->code = 0;
	r->esc[0] = 0;
	r->nlines = 0;
}

/* Length of an enhanced status code "C.S.D" at p (class cls) followed
 * by a space or the end, or 0. */
static size_t
esc_len(const char *p, size_t n, int cls)
{
	size_t i = 0, d;
	int part;

	if (n < 5 || p[0] != cls)
		return 0;
	i = 1;
	for (part = 0; part < 2; part++) {
		if (i >= n || p[i] != '.')
			return 0;
		i++;
		for (d = 0; i < n && d < 4 && isdigit((unsigned char)p[i]); i++, d++)
			;
		if (d < 1 || d > 3)
			return 0;
	}
	if (i < n && p[i] != ' ')
		return 0;
	return i;
}

int
smtp_reply_parse(const char *p, size_t n, struct smtp_reply *r, size_t *used)
{
	size_t pos = 0, lines = 0;
	int code = 0;

	buf_reset(&r->text);
	r->esc[0] = 0;
	r->code = 0;
	r->nlines = 0;
	for (;;) {
		const char *line = p + pos, *nl;
		size_t len, tl, el;
		int c, last;

		nl = memchr(line, '\n', n - pos);
		if (!nl)
			return n - pos > SMTP_REPLY_LINE_MAX ? -1 : 0;
		len = (size_t)(nl - line);
		if (len > SMTP_REPLY_LINE_MAX)
			return -1;
		pos += len + 1;
		if (len && line[len - 1] == '\r')
			len--;
		if (memchr(line, '\r', len) || memchr(line, '\0', len))
			return -1;
		if (len < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
		    !isdigit((unsigned char)line[2]))
			return -1;
		c = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		if (c < 200 || c > 599)
			return -1;
		if (lines && c != code)
			return -1;
		code = c;
		if (len == 3)
			last = 1;
		else if (line[3] == ' ')
			last = 1;
		else if (line[3] == '-')
			last = 0;
		else
			return -1;
		if (++lines > SMTP_REPLY_LINES_MAX)
			return -1;
		tl = len > 4 ? len - 4 : 0;
		line += 4;
		el = esc_len(line, tl, '0' + code / 100);
		if (el) {
			if (lines == 1)
				snprintf(r->esc, sizeof(r->esc), "%.*s", (int)el, line);
			line += el;
			tl -= el;
			if (tl && *line == ' ') {
				line++;
				tl--;
			}
		}
		if (lines > 1)
			buf_addc(&r->text, '\n');
		buf_add(&r->text, line, tl);
		if (last)
			break;
	}
	r->code = code;
	r->nlines = lines;
	*used = pos;
	return 1;
}

void
smtp_reply_dsn(const struct smtp_reply *r, const char *dflt, char out[16])
{
	int cls = r->code / 100;

	if (r->esc[0] && r->esc[0] - '0' == cls) {
		snprintf(out, 16, "%s", r->esc);
		return;
	}
	if (dflt && strlen(dflt) >= 5 && strlen(dflt) < 16) {
		snprintf(out, 16, "%d%s", cls, dflt + 1);
		return;
	}
	snprintf(out, 16, "%d.0.0", cls);
}

void
smtp_reply_oneline(const struct smtp_reply *r, size_t max, struct buf *out)
{
	size_t i, start = out->len, n;

	buf_printf(out, "%d", r->code);
	if (r->esc[0])
		buf_printf(out, " %s", r->esc);
	if (r->text.len)
		buf_addc(out, ' ');
	for (i = 0; i < r->text.len; i++) {
		unsigned char c = (unsigned char)r->text.data[i];

		buf_addc(out, c < 0x20 || c == 0x7f ? ' ' : (int)c);
	}
	if (max > 3 && out->len - start > max) {
		n = start + max - 3;
		/* do not cut a UTF-8 sequence in two */
		while (n > start && ((unsigned char)out->data[n] & 0xc0) == 0x80)
			n--;
		buf_truncate(out, n);
		buf_adds(out, "...");
	}
}

void
smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ext *e)
{
	const char *p = buf_str(&r->text), *end = p + r->text.len, *nl;

	e->flags = 0;
	e->size = 0;
	/* the first line is the greeting name */
	nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl)
		return;
	for (p = nl + 1; p < end; p = nl + 1) {
		size_t len, kl;

		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		len = (size_t)(nl - p);
		for (kl = 0; kl < len && p[kl] != ' ' && p[kl] != '='; kl++)
			;
#define KW(s) (kl == sizeof(s) - 1 && !strncasecmp(p, s, kl))
		if (KW("PIPELINING"))
			e->flags |= SMTP_EXT_PIPELINING;
		else if (KW("8BITMIME"))
			e->flags |= SMTP_EXT_8BITMIME;
		else if (KW("DSN"))
			e->flags |= SMTP_EXT_DSN;
		else if (KW("STARTTLS"))
			e->flags |= SMTP_EXT_STARTTLS;
		else if (KW("SMTPUTF8"))
			e->flags |= SMTP_EXT_SMTPUTF8;
		else if (KW("ENHANCEDSTATUSCODES"))
			e->flags |= SMTP_EXT_ENHANCEDSTATUSCODES;
		else if (KW("SIZE")) {
			long long v = 0;
			size_t i = kl;

			e->flags |= SMTP_EXT_SIZE;
			while (i < len && p[i] == ' ')
				i++;
			for (; i < len && isdigit((unsigned char)p[i]); i++) {
				if (v > (1LL << 50))
					break;
				v = v * 10 + (p[i] - '0');
			}
			e->size = v;
		}
#undef KW
		if (nl == end)
			break;
	}
}
