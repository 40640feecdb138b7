/*
 * test_imap_utf7: modified UTF-7 (imapd/imap_utf7.c): the RFC 3501
 * example, every kind of non-canonical input refused, invalid UTF-8
 * refused, and round trips over a spread of code points.
 */
#include "test.h"
#include "imap_utf7.h"
#include "buf.h"

#include <stdint.h>

static const char *
dec(const char *s)
{
	static struct buf b;

	buf_reset(&b);
	if (imap_utf7_decode(s, strlen(s), &b) < 0)
		return NULL;
	return buf_str(&b);
}

static const char *
enc(const char *s)
{
	static struct buf b;

	buf_reset(&b);
	if (imap_utf7_encode(s, strlen(s), &b) < 0)
		return NULL;
	return buf_str(&b);
}

static void
put_utf8(struct buf *b, uint32_t cp)
{
	if (cp < 0x80)
		buf_addc(b, (int)cp);
	else if (cp < 0x800) {
		buf_addc(b, (int)(0xc0 | (cp >> 6)));
		buf_addc(b, (int)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		buf_addc(b, (int)(0xe0 | (cp >> 12)));
		buf_addc(b, (int)(0x80 | ((cp >> 6) & 0x3f)));
		buf_addc(b, (int)(0x80 | (cp & 0x3f)));
	} else {
		buf_addc(b, (int)(0xf0 | (cp >> 18)));
		buf_addc(b, (int)(0x80 | ((cp >> 12) & 0x3f)));
		buf_addc(b, (int)(0x80 | ((cp >> 6) & 0x3f)));
		buf_addc(b, (int)(0x80 | (cp & 0x3f)));
	}
}

static void
test_valid(void)
{
	/* RFC 3501 section 5.1.3 */
	is_str(dec("~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
	    "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
	    "RFC 3501 example decodes");
	is_str(enc("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"),
	    "~peter/mail/&U,BTFw-/&ZeVnLIqe-", "RFC 3501 example encodes");
	is_str(dec(""), "", "empty name");
	is_str(dec("INBOX"), "INBOX", "plain ASCII");
	is_str(dec("&-"), "&", "&- is an ampersand");
	is_str(dec("A&-B&-"), "A&B&", "ampersands inside");
	is_str(enc("A&B"), "A&-B", "encode ampersand");
	is_str(dec("Entw&APw-rfe"), "Entw\xc3\xbcrfe", "German u-umlaut");
	is_str(enc("Entw\xc3\xbcrfe"), "Entw&APw-rfe", "encode u-umlaut");
	is_str(enc("\xc3\xa4\xc3\xa4"), "&AOQA5A-", "two characters, one run");
	is_str(dec("&AOQA5A-"), "\xc3\xa4\xc3\xa4", "decode a two-character run");
	is_str(enc("\xc3\xa4&"), "&AOQ-&-", "run then ampersand");
	is_str(dec("&AOQ-&-"), "\xc3\xa4&", "run then &- is canonical");
	is_str(enc("\xf0\x9f\x98\x80"), "&2D3eAA-", "astral character as a surrogate pair");
	is_str(dec("&2D3eAA-"), "\xf0\x9f\x98\x80", "surrogate pair decodes");
	is_str(enc("a\tb"), "a&AAk-b", "TAB is encoded");
	is_str(dec("a&AAk-b"), "a\tb", "encoded TAB decodes");
	is_str(enc(" ~"), " ~", "space and tilde stand for themselves");
	is_str(enc("\xc2\x80"), "&AIA-", "U+0080");
	is_str(enc("\xef\xbf\xbf"), "&,,8-", "U+FFFF");
	is_str(dec("&,,8-"), "\xef\xbf\xbf", "U+FFFF decodes");
}

static void
test_invalid(void)
{
	ok(dec("&AGE-") == NULL, "encoded printable 'a' refused");
	ok(dec("&ACY-") == NULL, "encoded '&' refused");
	ok(dec("&AAA-") == NULL, "encoded NUL refused");
	ok(dec("&") == NULL, "lone & refused");
	ok(dec("a&U,BTFw") == NULL, "unterminated run refused");
	ok(dec("&U,BTFw-&ZeVnLIqe-") == NULL, "adjacent runs refused");
	ok(dec("&*-") == NULL, "bad base64 character refused");
	ok(dec("&U/BTFw-") == NULL, "standard base64 '/' refused");
	ok(dec("&U,BTFw=-") == NULL, "padding refused");
	ok(dec("&APx-") == NULL, "non-zero leftover bits refused");
	ok(dec("&APwA-") == NULL, "an extra base64 character refused");
	ok(dec("&AP-") == NULL, "a partial unit refused");
	ok(dec("&2D0-") == NULL, "lone high surrogate refused");
	ok(dec("&3gA-") == NULL, "lone low surrogate refused");
	ok(dec("&2D3YPQ-") == NULL, "two high surrogates refused");
	ok(dec("&2D0AQQ-") == NULL, "high surrogate then a BMP character refused");
	ok(dec("Entw\xc3\xbcrfe") == NULL, "raw 8-bit refused");
	ok(dec("a\tb") == NULL, "raw control character refused");
	ok(dec("a\x7f") == NULL, "raw DEL refused");
	{
		static const char nul[] = "a\0b";
		struct buf b = BUF_INIT;

		ok(imap_utf7_decode(nul, 3, &b) < 0, "raw NUL refused");
		ok(imap_utf7_encode(nul, 3, &b) < 0, "NUL cannot be encoded");
		ok(!imap_utf7_valid(nul, 3), "imap_utf7_valid says no");
		ok(imap_utf7_valid("&U,BTFw-", 8), "imap_utf7_valid says yes");
		buf_free(&b);
	}
	ok(enc("\xc0\x80") == NULL, "overlong UTF-8 refused");
	ok(enc("\xe0\x80\xaf") == NULL, "overlong 3-byte refused");
	ok(enc("\xed\xa0\x80") == NULL, "UTF-8 surrogate refused");
	ok(enc("\xf4\x90\x80\x80") == NULL, "above U+10FFFF refused");
	ok(enc("\xe6\x97") == NULL, "truncated UTF-8 refused");
	ok(enc("\x80") == NULL, "stray continuation byte refused");
	ok(enc("\xff") == NULL, "0xFF refused");
}

static void
test_roundtrip(void)
{
	static const uint32_t starts[] = {
		0x01, 0x7f, 0x80, 0xff, 0x100, 0x7ff, 0x800, 0xd7ff, 0xe000,
		0xfffd, 0x10000, 0x1f600, 0x10fff0,
	};
	size_t i;
	int bad = 0, n = 0;

	for (i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
		uint32_t cp;

		for (cp = starts[i]; cp < starts[i] + 16 && cp <= 0x10ffff; cp++) {
			struct buf u = BUF_INIT, m = BUF_INIT, back = BUF_INIT, again = BUF_INIT;
			size_t len;

			if (cp >= 0xd800 && cp <= 0xdfff)
				continue;
			/* one, two and three in a row, between ASCII */
			for (len = 1; len <= 3; len++) {
				size_t k;

				buf_reset(&u);
				buf_adds(&u, "x");
				for (k = 0; k < len; k++)
					put_utf8(&u, cp);
				buf_adds(&u, "&y");
				buf_reset(&m);
				buf_reset(&back);
				buf_reset(&again);
				n++;
				if (imap_utf7_encode(u.data, u.len, &m) < 0 ||
				    imap_utf7_decode(m.data, m.len, &back) < 0 ||
				    back.len != u.len || memcmp(back.data, u.data, u.len) != 0 ||
				    imap_utf7_encode(back.data, back.len, &again) < 0 ||
				    !buf_eq(&again, buf_str(&m))) {
					bad++;
					printf("# round trip failed for U+%04lX x%zu\n", (unsigned long)cp, len);
				}
			}
			buf_free(&u);
			buf_free(&m);
			buf_free(&back);
			buf_free(&again);
		}
	}
	ok(bad == 0, "%d round trips UTF-8 -> mUTF-7 -> UTF-8 -> mUTF-7", n);
}

int
main(void)
{
	test_valid();
	test_invalid();
	test_roundtrip();
	return done_testing();
}
