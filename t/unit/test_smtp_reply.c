/*
 * test_smtp_reply: the SMTP/LMTP reply parser and EHLO keywords
 * (lib/smtp_reply.c): single and multiline replies, enhanced codes,
 * replies fed in small pieces, and malformed or overlong input.
 */
#include "smtp_reply.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static int
parse(const char *s, struct smtp_reply *r, size_t *used)
{
	return smtp_reply_parse(s, strlen(s), r, used);
}

int
main(void)
{
	struct smtp_reply r;
	struct smtp_ext e;
	struct buf b = BUF_INIT, big = BUF_INIT;
	size_t used = 0, i, n;
	char dsn[16];
	const char *multi = "250-mx.example Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n"
	    "250-8BITMIME\r\n250-DSN\r\n250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\nNEXT";
	int rc;

	smtp_reply_init(&r);
	is_int(parse("250 2.1.0 Ok\r\n", &r, &used), 1, "simple reply");
	is_int(r.code, 250, "code");
	is_str(r.esc, "2.1.0", "enhanced code");
	is_str(buf_str(&r.text), "Ok", "text");
	is_int(used, 14, "consumed");
	is_int(parse("220\r\n", &r, &used), 1, "bare code");
	is_str(buf_str(&r.text), "", "no text");
	is_int(parse("550 5.1.1\r\n", &r, &used), 1, "code and esc only");
	is_str(r.esc, "5.1.1", "esc without text");
	is_int(parse("550 4.1.1 mismatch\r\n", &r, &used), 1, "class mismatch parses");
	is_str(r.esc, "", "mismatched esc not taken");
	smtp_reply_dsn(&r, "X.1.1", dsn);
	is_str(dsn, "5.1.1", "default detail with the reply class");
	is_int(parse("451 try later\n", &r, &used), 1, "bare LF line end accepted");
	smtp_reply_dsn(&r, NULL, dsn);
	is_str(dsn, "4.0.0", "class default");

	is_int(parse(multi, &r, &used), 1, "multiline");
	is_int(r.nlines, 7, "7 lines");
	is_int(used, strlen(multi) - 4, "stops after the last line");
	smtp_ehlo_parse(&r, &e);
	ok(e.flags & SMTP_EXT_PIPELINING, "PIPELINING");
	ok(e.flags & SMTP_EXT_8BITMIME, "8BITMIME");
	ok(e.flags & SMTP_EXT_DSN, "DSN");
	ok(e.flags & SMTP_EXT_STARTTLS, "STARTTLS");
	ok(e.flags & SMTP_EXT_ENHANCEDSTATUSCODES, "ENHANCEDSTATUSCODES");
	ok(!(e.flags & SMTP_EXT_SMTPUTF8), "no SMTPUTF8");
	is_int(e.size, 1000, "SIZE value");

	/* in small pieces: 0 until complete, nothing consumed */
	n = strlen(multi) - 4;
	for (i = 0; i < n; i++)
		if (smtp_reply_parse(multi, i, &r, &used) != 0)
			break;
	is_int(i, n, "incomplete prefixes need more");
	is_int(smtp_reply_parse(multi, n, &r, &used), 1, "complete at the end");

	/* malformed */
	is_int(parse("25 x\r\n", &r, &used), -1, "short code");
	is_int(parse("abc x\r\n", &r, &used), -1, "not digits");
	is_int(parse("150 x\r\n", &r, &used), -1, "code below 200");
	is_int(parse("250x\r\n", &r, &used), -1, "no separator");
	is_int(parse("250-a\r\n550 b\r\n", &r, &used), -1, "codes differ");
	is_int(parse("250 a\rb\r\n", &r, &used), -1, "bare CR inside");
	is_int(smtp_reply_parse("250 a\0b\r\n", 9, &r, &used), -1, "NUL inside");
	for (i = 0; i < SMTP_REPLY_LINE_MAX + 10; i++)
		buf_addc(&big, 'x');
	is_int(smtp_reply_parse(big.data, big.len, &r, &used), -1, "overlong line without end");
	buf_reset(&big);
	for (i = 0; i <= SMTP_REPLY_LINES_MAX; i++)
		buf_adds(&big, "250-x\r\n");
	buf_adds(&big, "250 x\r\n");
	is_int(smtp_reply_parse(big.data, big.len, &r, &used), -1, "too many lines");

	/* one line form */
	rc = parse("550-5.7.1 first\r\n550 5.7.1 sec\tond\r\n", &r, &used);
	is_int(rc, 1, "two lines");
	smtp_reply_oneline(&r, 200, &b);
	is_str(buf_str(&b), "550 5.7.1 first sec ond", "one line, controls replaced");
	buf_reset(&b);
	smtp_reply_oneline(&r, 10, &b);
	is_str(buf_str(&b), "550 5.7...", "truncated");
	buf_free(&b);
	buf_free(&big);
	smtp_reply_free(&r);
	return done_testing();
}
