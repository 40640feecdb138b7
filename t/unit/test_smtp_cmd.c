/*
 * test_smtp_cmd: the SMTP command parser (lib/smtp_cmd.c): verbs, MAIL
 * and RCPT paths with every ESMTP parameter, xtext, base64 and SASL
 * PLAIN, with malformed input and limits.
 */
#include "base64.h"
#include "smtp_cmd.h"
#include "queue_file.h"
#include "test.h"
#include "util.h"

#include <stdlib.h>

static int
verb(const char *line, const char **arg)
{
	return smtp_cmd_verb(line, strlen(line), arg);
}

static int
path(const char *arg, int rcpt, struct smtp_path *p, struct buf *reply)
{
	return smtp_parse_path(arg, rcpt, p, reply);
}

int
main(void)
{
	const char *arg;
	struct smtp_path p;
	struct buf r = BUF_INIT, o = BUF_INIT, u = BUF_INIT, pw = BUF_INIT;
	char big[6000];

	/* verbs */
	is_int(verb("EHLO example.com", &arg), SMTP_EHLO, "EHLO");
	is_str(arg, "example.com", "EHLO argument");
	is_int(verb("ehlo   x", &arg), SMTP_EHLO, "lower case, several spaces");
	is_str(arg, "x", "spaces skipped");
	is_int(verb("QUIT", &arg), SMTP_QUIT, "QUIT");
	is_str(arg, "", "no argument");
	is_int(verb("QUITX", &arg), SMTP_UNKNOWN, "QUITX is not QUIT");
	is_int(verb("STARTTLS", &arg), SMTP_STARTTLS, "STARTTLS");
	is_int(verb("bdat 10 LAST", &arg), SMTP_BDAT, "BDAT");
	is_int(verb("", &arg), SMTP_UNKNOWN, "empty line");
	is_str(smtp_verb_name(SMTP_RCPT), "RCPT", "verb name");

	smtp_path_init(&p);
	/* MAIL FROM */
	ok(path("FROM:<a@example.com>", 0, &p, &r) == 0, "MAIL FROM plain");
	is_str(buf_str(&p.addr), "a@example.com", "sender");
	is_int(p.size, -1, "no SIZE");
	ok(path("from: <a@example.com> SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=ab+2Bc", 0, &p, &r) == 0,
	    "all MAIL parameters");
	is_int(p.size, 1000, "SIZE");
	is_int(p.body, SMTP_BODY_8BITMIME, "BODY");
	is_int(p.smtputf8, 1, "SMTPUTF8");
	is_int(p.ret, SMTP_RET_HDRS, "RET");
	is_str(buf_str(&p.envid), "ab+c", "ENVID xtext-decoded");
	ok(path("FROM:<>", 0, &p, &r) == 0 && p.addr.len == 0, "null sender");
	ok(path("FROM:<> SIZE=99999999999999999999", 0, &p, &r) == 0 && p.size > 0,
	    "huge SIZE saturates");
	ok(path("FROM:<a@b> SIZE=12x", 0, &p, &r) < 0, "bad SIZE");
	is_str(buf_str(&r), "501 5.5.4 Bad SIZE parameter", "bad SIZE reply");
	ok(path("FROM:<a@b> SIZE=1 SIZE=2", 0, &p, &r) < 0, "duplicate SIZE");
	ok(path("FROM:<a@b> FOO=bar", 0, &p, &r) < 0 && !strncmp(buf_str(&r), "555 5.5.4", 9),
	    "unknown parameter 555");
	ok(path("FROM:<a@b> BODY=BINARYMIME", 0, &p, &r) < 0, "BINARYMIME refused");
	ok(path("FROM:<a@b> SMTPUTF8=yes", 0, &p, &r) < 0, "SMTPUTF8 takes no value");
	ok(path("FROM:<a@b> NOTIFY=NEVER", 0, &p, &r) < 0, "NOTIFY only on RCPT");
	ok(path("FROM:<a@b> ENVID=a+0D+0Ab", 0, &p, &r) < 0, "CRLF in ENVID refused");
	ok(path("FROM:<a@b> ENVID=a+00b", 0, &p, &r) < 0, "NUL in ENVID refused");
	ok(path("FROM:<a@b> AUTH=<>", 0, &p, &r) == 0, "AUTH=<>");
	ok(path("FROM:a@b", 0, &p, &r) < 0, "path without <>");
	ok(path("FROM:<a@b", 0, &p, &r) < 0, "unterminated path");
	ok(path("TO:<a@b>", 0, &p, &r) < 0, "TO: for MAIL");
	ok(path("FROM:<a@b>x", 0, &p, &r) < 0, "junk after path");
	ok(path("FROM:<a\r@b>", 0, &p, &r) < 0, "CR in path");
	ok(path("FROM:<\"a>b\"@example.com>", 0, &p, &r) == 0, "quoted > in local part");
	is_str(buf_str(&p.addr), "\"a>b\"@example.com", "quoted local part kept quoted");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	memcpy(big, "FROM:<", 6);
	big[sizeof(big) - 2] = '>';
	ok(path(big, 0, &p, &r) < 0, "overlong address");

	/* RCPT TO */
	ok(path("TO:<b@example.com> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+40example.com", 1, &p, &r) == 0,
	    "RCPT with DSN parameters");
	is_int(p.notify, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY, "NOTIFY flags");
	is_str(buf_str(&p.orcpt), "rfc822;b@example.com", "ORCPT decoded");
	ok(path("TO:<b@example.com> NOTIFY=NEVER", 1, &p, &r) == 0 && p.notify == DSN_NOTIFY_NEVER, "NEVER");
	ok(path("TO:<b@example.com> NOTIFY=NEVER,SUCCESS", 1, &p, &r) < 0, "NEVER with others");
	ok(path("TO:<b@example.com> NOTIFY=SUCCESS,", 1, &p, &r) < 0, "trailing comma");
	ok(path("TO:<b@example.com> ORCPT=rfc822", 1, &p, &r) < 0, "ORCPT without ;");
	ok(path("TO:<b@example.com> ORCPT=rfc822;", 1, &p, &r) < 0, "empty ORCPT");
	ok(path("TO:<b@example.com> SIZE=10", 1, &p, &r) < 0, "SIZE only on MAIL");
	ok(path("TO:<>", 1, &p, &r) < 0, "empty recipient");
	ok(path("TO:<@relay.example:b@example.com>", 1, &p, &r) == 0 && p.route == 1,
	    "source route seen");
	is_str(buf_str(&p.addr), "b@example.com", "source route removed");
	ok(path("TO:<@relay.example>", 1, &p, &r) < 0, "route without mailbox");
	ok(path("TO:<postmaster>", 1, &p, &r) == 0, "unqualified postmaster parses");
	ok(path("TO:<user@remote@local>", 1, &p, &r) < 0, "two @ refused by the parser");
	ok(path("TO:<\"user@remote\"@local.test>", 1, &p, &r) == 0 && p.route == 0,
	    "quoted @ parses (the relay check refuses it)");

	/* xtext */
	buf_reset(&o);
	ok(smtp_xtext_decode("a+2Bb", 5, &o) == 0, "xtext decode");
	is_str(buf_str(&o), "a+b", "xtext value");
	buf_reset(&o);
	ok(smtp_xtext_decode("a+2b", 4, &o) < 0, "lower-case hex refused");
	buf_reset(&o);
	ok(smtp_xtext_decode("a+2", 3, &o) < 0, "short escape refused");
	buf_reset(&o);
	ok(smtp_xtext_decode("a=b", 3, &o) < 0, "= refused");
	buf_reset(&o);
	smtp_xtext_encode("a+b=c d", 7, &o);
	is_str(buf_str(&o), "a+2Bb+3Dc+20d", "xtext encode");

	/* base64 */
	buf_reset(&o);
	ok(base64_decode("AHVzZXIAcGFzcw==", 16, &o) == 0 && o.len == 10, "base64 decode");
	ok(smtp_sasl_plain(o.data, o.len, &u, &pw) == 0, "PLAIN parse");
	is_str(buf_str(&u), "user", "PLAIN user");
	is_str(buf_str(&pw), "pass", "PLAIN password");
	buf_reset(&o);
	ok(base64_decode("AHVzZXIAcGFzcw=", 15, &o) < 0, "bad length");
	buf_reset(&o);
	ok(base64_decode("AH*zZXIA", 8, &o) < 0, "bad character");
	buf_reset(&o);
	ok(base64_decode("", 0, &o) == 0 && o.len == 0, "empty");
	buf_reset(&o);
	base64_encode("\0user\0pass", 10, &o);
	is_str(buf_str(&o), "AHVzZXIAcGFzcw==", "base64 encode");
	ok(smtp_sasl_plain("a\0b\0c", 5, &u, &pw) < 0, "authzid different from authcid");
	ok(smtp_sasl_plain("b\0b\0c", 5, &u, &pw) == 0, "authzid equal to authcid");
	ok(smtp_sasl_plain("\0b", 2, &u, &pw) < 0, "no password");
	ok(smtp_sasl_plain("\0b\0c\0d", 6, &u, &pw) < 0, "extra NUL");
	ok(smtp_sasl_plain("\0\0c", 3, &u, &pw) < 0, "empty user");

	smtp_path_free(&p);
	buf_free(&r);
	buf_free(&o);
	buf_free(&u);
	buf_free(&pw);
	return done_testing();
}
