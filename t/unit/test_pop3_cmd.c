/*
 * test_pop3_cmd: the POP3 command parser and helpers (popd/pop3_cmd.c)
 * and the mailbox store (lib/mstore*.c) on files in /tmp.
 */
#include "test.h"
#include "pop3_cmd.h"
#include "mstore.h"
#include "conf.h"
#include "util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int
parse(const char *s, struct pop3_cmd *c, char *store)
{
	size_t n = strlen(s);

	memcpy(store, s, n + 1);
	return pop3_cmd_parse(store, n, c);
}

static void
test_parser(void)
{
	struct pop3_cmd c;
	char st[2048];
	char big[1024];

	is_int(parse("USER alice", &c, st), POP3_USER, "USER");
	is_str(c.args[0], "alice", "USER argument");
	is_int(parse("user alice", &c, st), POP3_USER, "keywords are case-insensitive");
	is_int(parse("PASS my secret pass", &c, st), POP3_PASS, "PASS with spaces");
	is_str(c.rest, "my secret pass", "PASS keeps the whole rest");
	is_int(parse("PASS a b c d", &c, st), POP3_PASS, "PASS with many words is fine");
	is_int(parse("TOP 1 10", &c, st), POP3_TOP, "TOP");
	is_int(c.nargs, 2, "TOP has two arguments");
	is_str(c.args[1], "10", "TOP line count");
	is_int(parse("TOP 1 10 3", &c, st), POP3_BAD, "too many arguments");
	is_int(parse("STAT", &c, st), POP3_STAT, "STAT");
	is_int(c.nargs, 0, "STAT no arguments");
	is_int(parse("XYZZY", &c, st), POP3_BAD, "5-letter keyword is bad");
	is_int(parse("FOO", &c, st), POP3_UNKNOWN, "unknown keyword");
	is_int(parse("", &c, st), POP3_BAD, "empty line");
	is_int(parse("RE", &c, st), POP3_BAD, "2 letters");
	is_int(parse("RETR\x01" "1", &c, st), POP3_BAD, "control byte");
	is_int(parse("RETR1", &c, st), POP3_BAD, "no space after keyword");
	is_int(parse("LIST  2", &c, st), POP3_LIST, "repeated spaces");
	is_str(c.args[0], "2", "argument after repeated spaces");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	memcpy(st, "USER ", 5);
	memcpy(st + 5, big, sizeof(big));
	is_int(pop3_cmd_parse(st, strlen(st), &c), POP3_BAD, "over-long argument");
	{
		char nul[] = "USER a\0b";

		is_int(pop3_cmd_parse(nul, 8, &c), POP3_BAD, "NUL inside the line");
	}
	is_str(pop3_verb_name(POP3_UIDL), "UIDL", "verb name");
}

static void
test_numbers(void)
{
	unsigned long v;

	is_int(pop3_msgnum("1", 5, &v), 0, "msgnum 1");
	is_int(v, 1, "value");
	is_int(pop3_msgnum("5", 5, &v), 0, "msgnum max");
	is_int(pop3_msgnum("6", 5, &v), -2, "msgnum out of range");
	is_int(pop3_msgnum("0", 5, &v), -2, "msgnum 0");
	is_int(pop3_msgnum("-1", 5, &v), -1, "msgnum sign");
	is_int(pop3_msgnum("1a", 5, &v), -1, "msgnum junk");
	is_int(pop3_msgnum("99999999999999999999", 5, &v), -1, "msgnum huge");
	is_int(pop3_msgnum("", 5, &v), -1, "msgnum empty");
	is_int(pop3_count("0", 100, &v), 0, "count 0");
	is_int(pop3_count("99999999999999999999999", 100, &v), 0, "count huge is capped");
	is_int(v, 100, "capped value");
	is_int(pop3_count("x", 100, &v), -1, "count junk");
}

static void
test_sasl(void)
{
	struct buf b = BUF_INIT;
	const char *a, *u, *p;

	is_int(pop3_b64_decode("AGFsaWNlAHNlY3JldA==", 20, &b), 0, "base64");
	is_int(b.len, 13, "decoded length");
	is_int(pop3_sasl_plain(buf_str(&b), b.len, &a, &u, &p), 0, "PLAIN parsed");
	is_str(a, "", "authzid empty");
	is_str(u, "alice", "authcid");
	is_str(p, "secret", "password");
	buf_reset(&b);
	is_int(pop3_b64_decode("AGFsaWNl", 8, &b), 0, "base64 no pad");
	is_int(pop3_sasl_plain(buf_str(&b), b.len, &a, &u, &p), -1, "PLAIN without password field");
	buf_reset(&b);
	is_int(pop3_b64_decode("AGFsaWNlAHNlY3JldA=", 19, &b), -1, "bad length");
	is_int(pop3_b64_decode("AG=saWNl", 8, &b), -1, "pad inside");
	is_int(pop3_b64_decode("AG*s", 4, &b), -1, "bad char");
	buf_reset(&b);
	is_int(pop3_b64_decode("=", 1, &b), 0, "'=' is empty");
	is_int(b.len, 0, "empty");
	buf_reset(&b);
	buf_add(&b, "a\0b\0c\0d", 7);
	is_int(pop3_sasl_plain(buf_str(&b), b.len, &a, &u, &p), -1, "three NULs");
	buf_free(&b);
	ok(mstore_uidl_valid("abc.123"), "uidl valid");
	ok(!mstore_uidl_valid(""), "uidl empty");
	ok(!mstore_uidl_valid("a b"), "uidl space");
	ok(!mstore_uidl_valid("0123456789012345678901234567890123456789012345678901234567890123456789x"),
	    "uidl 71 chars");
}

static void
wire(const char *in, long top, const char *want, const char *name)
{
	struct buf out = BUF_INIT;

	pop3_wire_out(in, strlen(in), top, &out);
	is_str(buf_str(&out), want, "%s", name);
	if (top < 0) {
		/* size = CRLF message without dot-stuffing */
		size_t dots = 0, i;

		for (i = 0; i < out.len; i++)
			if (out.data[i] == '.' && (i == 0 || out.data[i - 1] == '\n'))
				dots++;
		is_int(mstore_wire_size(in, strlen(in)), out.len - dots, "%s: size", name);
	}
	buf_free(&out);
}

static void
test_wire(void)
{
	wire("a\nb\n", -1, "a\r\nb\r\n", "LF to CRLF");
	wire("a\r\nb\r\n", -1, "a\r\nb\r\n", "CRLF kept");
	wire("a\nb", -1, "a\r\nb\r\n", "missing final newline");
	wire(".\n..x\n.y\n", -1, "..\r\n...x\r\n..y\r\n", "dot-stuffing");
	wire("H: 1\n\nb1\nb2\nb3\n", 2, "H: 1\r\n\r\nb1\r\nb2\r\n", "TOP 2");
	wire("H: 1\n\nb1\n", 0, "H: 1\r\n\r\n", "TOP 0");
	wire("H: 1\nH: 2\n", 0, "H: 1\r\nH: 2\r\n", "TOP without body");
	wire("", -1, "", "empty message");
	wire("\n", -1, "\r\n", "one empty line");
	wire("a\rb\n", -1, "a\rb\r\n", "bare CR kept");
}

static void
test_mbox(void)
{
	char dir[] = "/tmp/test_pop3_XXXXXX";
	struct buf p = BUF_INIT, err = BUF_INIT, tmp = BUF_INIT, data = BUF_INIT;
	struct mstore b, b2;
	const char *m;
	size_t n;
	static const char box[] =
	    "From a@x Sat Jan  1 00:00:00 2026\nSubject: one\n\nbody1\n>From quoted\n\n"
	    "From b@x Sat Jan  1 00:00:01 2026\nSubject: two\nX-UIDL: stored-uidl\n\nbody2\n\n"
	    "From c@x Sat Jan  1 00:00:02 2026\nSubject: three\n\nbody3\n\n";

	ok(mkdtemp(dir) != NULL, "temp dir");
	buf_printf(&p, "%s/mbox", dir);
	ok(write_file_atomic(buf_str(&p), box, sizeof(box) - 1, 0600) == 0, "write mbox");
	is_int(mstore_open(&b, buf_str(&p), 0, &err), MSTORE_OK, "mbox open");
	is_int(b.n, 3, "3 messages");
	is_int(mstore_get(&b, 0, &m, &n, &tmp, &err), 0, "get 1");
	buf_add(&data, m, n);
	is_str(buf_str(&data), "Subject: one\n\nbody1\n>From quoted\n", "message 1 content");
	is_str(b.msgs[1].uidl, "stored-uidl", "X-UIDL used");
	is_int(mstore_open(&b2, buf_str(&p), 0, &err), MSTORE_INUSE, "second open: in use");
	mstore_close(&b2);
	{
		char *u3 = xstrdup(b.msgs[2].uidl);
		char *u1 = xstrdup(b.msgs[0].uidl);

		b.msgs[1].deleted = 1;
		is_int(mstore_update(&b, &err), 0, "update");
		mstore_close(&b);
		is_int(mstore_open(&b, buf_str(&p), 0, &err), MSTORE_OK, "reopen");
		is_int(b.n, 2, "2 messages left");
		is_str(b.msgs[0].uidl, u1, "uidl 1 stable");
		is_str(b.msgs[1].uidl, u3, "uidl 3 stable");
		buf_reset(&data);
		mstore_get(&b, 1, &m, &n, &tmp, &err);
		buf_add(&data, m, n);
		ok(strstr(buf_str(&data), "body3\n") != NULL, "message 3 kept");
		mstore_close(&b);
		free(u1);
		free(u3);
	}
	buf_reset(&data);
	/* garbage is refused */
	ok(write_file_atomic(buf_str(&p), "junk\n", 5, 0600) == 0, "write junk");
	is_int(mstore_open(&b, buf_str(&p), 0, &err), MSTORE_PERM, "not an mbox");
	mstore_close(&b);
	/* Maildir */
	{
		struct buf md = BUF_INIT, f = BUF_INIT;

		buf_printf(&md, "%s/Maildir/", dir);
		mkdir(buf_str(&md), 0700);
		buf_printf(&f, "%snew", buf_str(&md));
		mkdir(buf_str(&f), 0700);
		buf_reset(&f);
		buf_printf(&f, "%snew/1700000000.M1P1Q1.h,S=6", buf_str(&md));
		write_file_atomic(buf_str(&f), "a\n\nb\n", 5, 0600);
		buf_reset(&f);
		buf_printf(&f, "%snew/1700000001.M1P1Q1.h", buf_str(&md));
		write_file_atomic(buf_str(&f), "c\n", 2, 0600);
		is_int(mstore_open(&b, buf_str(&md), 1, &err), MSTORE_OK, "maildir open: %s", buf_str(&err));
		is_int(b.n, 2, "2 messages");
		is_str(b.msgs[0].uidl, "1700000000.M1P1Q1.h", "uidl from the name");
		is_int(b.msgs[0].size, 8, "size");
		is_int(mstore_open(&b2, buf_str(&md), 1, &err), MSTORE_INUSE, "maildir in use");
		mstore_close(&b2);
		b.msgs[0].deleted = 1;
		is_int(mstore_update(&b, &err), 0, "maildir update");
		mstore_close(&b);
		is_int(mstore_open(&b, buf_str(&md), 1, &err), MSTORE_OK, "maildir reopen");
		is_int(b.n, 1, "1 message");
		is_str(b.msgs[0].uidl, "1700000001.M1P1Q1.h", "uidl kept");
		is_int(b.msgs[0].size, 3, "size from W=");
		mstore_close(&b);
		buf_free(&md);
		buf_free(&f);
	}
	{
		struct buf cmd = BUF_INIT;

		buf_printf(&cmd, "rm -rf %s", dir);
		(void)!system(buf_str(&cmd));
		buf_free(&cmd);
	}
	buf_free(&p);
	buf_free(&err);
	buf_free(&tmp);
	buf_free(&data);
}

int
main(void)
{
	struct buf err = BUF_INIT;

	setenv("HERMOD_CONFIG", "/nonexistent-hermod-test", 1);
	(void)conf_load("/nonexistent-hermod-test", &err);
	conf_set("deliver_lock_attempts", "1");
	buf_free(&err);
	test_parser();
	test_numbers();
	test_sasl();
	test_wire();
	test_mbox();
	return done_testing();
}
