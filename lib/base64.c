/*
 * base64.c: see base64.h.  One implementation for smtpd's AUTH, popd's
 * AUTH PLAIN and sendmail's encoded-words; its alphabet also serves
 * lib/mime.c's lenient decoder and IMAP's modified base64.
 */
#include "base64.h"

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
base64_value(int c, int c63)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == c63)
		return 63;
	return -1;
}

static int
b64val(int c)
{
	return base64_value(c, '/');
}

int
base64_decode(const char *in, size_t n, struct buf *out)
{
	size_t i;

	if (n % 4)
		return -1;
	for (i = 0; i < n; i += 4) {
		int a = b64val((unsigned char)in[i]), b = b64val((unsigned char)in[i + 1]);
		int c, d;
		int last = i + 4 == n;

		if (a < 0 || b < 0)
			return -1;
		buf_addc(out, (a << 2) | (b >> 4));
		if (last && in[i + 2] == '=') {
			if (in[i + 3] != '=' || (b & 0x0f))
				return -1;
			break;
		}
		if ((c = b64val((unsigned char)in[i + 2])) < 0)
			return -1;
		buf_addc(out, ((b & 0x0f) << 4) | (c >> 2));
		if (last && in[i + 3] == '=') {
			if (c & 0x03)
				return -1;
			break;
		}
		if ((d = b64val((unsigned char)in[i + 3])) < 0)
			return -1;
		buf_addc(out, ((c & 0x03) << 6) | d);
	}
	return 0;
}

void
base64_encode(const void *in, size_t n, struct buf *out)
{
	const unsigned char *p = in;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		buf_addc(out, b64[p[i] >> 2]);
		buf_addc(out, b64[((p[i] & 3) << 4) | (p[i + 1] >> 4)]);
		buf_addc(out, b64[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)]);
		buf_addc(out, b64[p[i + 2] & 63]);
	}
	if (n - i == 1) {
		buf_addc(out, b64[p[i] >> 2]);
		buf_addc(out, b64[(p[i] & 3) << 4]);
		buf_adds(out, "==");
	} else if (n - i == 2) {
		buf_addc(out, b64[p[i] >> 2]);
		buf_addc(out, b64[((p[i] & 3) << 4) | (p[i + 1] >> 4)]);
		buf_addc(out, b64[(p[i + 1] & 15) << 2]);
		buf_addc(out, '=');
	}
}
