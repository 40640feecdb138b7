/*
 * imap_utf7.c: modified UTF-7 <-> UTF-8 (RFC 3501 section 5.1.3).
 *
 * Printable US-ASCII (0x20..0x7e) stands for itself, "&" is written
 * "&-", everything else is UTF-16BE in base64 with "," for "/", no
 * padding, between "&" and "-".  The encoder emits the shortest form
 * (one run per stretch of non-printables); the decoder accepts only what
 * the encoder would emit, which makes decode(encode(x)) == x and
 * encode(decode(y)) == y for every valid x and y.
 */
#include "imap_utf7.h"
#include "base64.h"

#include <stdint.h>

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int
b64val(int c)
{
	return base64_value(c, ',');
}

static void
put_utf8(struct buf *out, uint32_t cp)
{
	if (cp < 0x80)
		buf_addc(out, (int)cp);
	else if (cp < 0x800) {
		buf_addc(out, (int)(0xc0 | (cp >> 6)));
		buf_addc(out, (int)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		buf_addc(out, (int)(0xe0 | (cp >> 12)));
		buf_addc(out, (int)(0x80 | ((cp >> 6) & 0x3f)));
		buf_addc(out, (int)(0x80 | (cp & 0x3f)));
	} else {
		buf_addc(out, (int)(0xf0 | (cp >> 18)));
		buf_addc(out, (int)(0x80 | ((cp >> 12) & 0x3f)));
		buf_addc(out, (int)(0x80 | ((cp >> 6) & 0x3f)));
		buf_addc(out, (int)(0x80 | (cp & 0x3f)));
	}
}

/* One base64 run starting after "&" at in[*pos]; on success *pos is
 * past the closing "-". */
static int
decode_run(const char *in, size_t n, size_t *pos, struct buf *out)
{
	size_t i = *pos;
	uint32_t bits = 0, hi_sur = 0;
	unsigned nbits = 0, units = 0;

	for (; i < n && in[i] != '-'; i++) {
		int v = b64val((unsigned char)in[i]);
		uint32_t u;

		if (v < 0)
			return -1;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		u = (bits >> nbits) & 0xffff;
		bits &= (1u << nbits) - 1;
		units++;
		if (hi_sur) {
			if (u < 0xdc00 || u > 0xdfff)
				return -1;
			put_utf8(out, 0x10000 + ((hi_sur - 0xd800) << 10) + (u - 0xdc00));
			hi_sur = 0;
		} else if (u >= 0xd800 && u <= 0xdbff)
			hi_sur = u;
		else if (u >= 0xdc00 && u <= 0xdfff)
			return -1;
		else if (u == 0 || (u >= 0x20 && u <= 0x7e))
			return -1;	/* must have been written directly */
		else
			put_utf8(out, u);
	}
	if (i >= n || units == 0 || hi_sur)
		return -1;
	/* the shortest encoding leaves fewer than 6 bits, all zero */
	if (nbits >= 6 || bits != 0)
		return -1;
	*pos = i + 1;
	return 0;
}

int
imap_utf7_decode(const char *in, size_t n, struct buf *out)
{
	size_t i = 0;
	int after_run = 0;

	while (i < n) {
		unsigned char c = (unsigned char)in[i];

		if (c == '&') {
			if (i + 1 < n && in[i + 1] == '-') {
				buf_addc(out, '&');
				i += 2;
				after_run = 0;
				continue;
			}
			/* "&..-&..-" would be one run in the canonical form */
			if (after_run)
				return -1;
			i++;
			if (decode_run(in, n, &i, out) < 0)
				return -1;
			after_run = 1;
		} else if (c >= 0x20 && c <= 0x7e) {
			buf_addc(out, c);
			i++;
			after_run = 0;
		} else
			return -1;
	}
	return 0;
}

int
imap_utf7_valid(const char *in, size_t n)
{
	struct buf b = BUF_INIT;
	int r = imap_utf7_decode(in, n, &b);

	buf_free(&b);
	return r == 0;
}

/* Decode one UTF-8 character at s (n > 0 bytes); its length, or 0 if
 * not well formed. */
static size_t
utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t len, i;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		c &= 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		c &= 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		c &= 0x07;
		min = 0x10000;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

static void
flush_bits(struct buf *out, uint32_t *bits, unsigned *nbits)
{
	while (*nbits >= 6) {
		*nbits -= 6;
		buf_addc(out, b64chars[(*bits >> *nbits) & 0x3f]);
	}
	*bits &= (1u << *nbits) - 1;
}

int
imap_utf7_encode(const char *in, size_t n, struct buf *out)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0;
	int in_run = 0;
	uint32_t bits = 0;
	unsigned nbits = 0;

	while (i < n) {
		uint32_t cp;
		size_t len = utf8_next(s + i, n - i, &cp);

		if (len == 0 || cp == 0)
			return -1;
		i += len;
		if (cp >= 0x20 && cp <= 0x7e) {
			if (in_run) {
				if (nbits)
					buf_addc(out, b64chars[(bits << (6 - nbits)) & 0x3f]);
				buf_addc(out, '-');
				in_run = 0;
				bits = 0;
				nbits = 0;
			}
			if (cp == '&')
				buf_adds(out, "&-");
			else
				buf_addc(out, (int)cp);
			continue;
		}
		if (!in_run) {
			buf_addc(out, '&');
			in_run = 1;
		}
		if (cp >= 0x10000) {
			uint32_t v = cp - 0x10000;

			bits = (bits << 16) | (0xd800 + (v >> 10));
			nbits += 16;
			flush_bits(out, &bits, &nbits);
			bits = (bits << 16) | (0xdc00 + (v & 0x3ff));
		} else
			bits = (bits << 16) | cp;
		nbits += 16;
		flush_bits(out, &bits, &nbits);
	}
	if (in_run) {
		if (nbits)
			buf_addc(out, b64chars[(bits << (6 - nbits)) & 0x3f]);
		buf_addc(out, '-');
	}
	return 0;
}
