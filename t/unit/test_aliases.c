/*
 * test_aliases: the aliases(5) parser (lib/aliases.c): entries,
 * continuation lines, comments, quoting, destination forms, errors with
 * line numbers, limits, and :include:/.forward list files.
 */
#include "aliases.h"
#include "util.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static struct alias_list l;

static size_t
parse(const char *s)
{
	aliases_free(&l);
	return aliases_parse(s, strlen(s), 0, &l);
}

/* The destinations of a value joined with '|' ("a|b|c"), or "ERR: why". */
static char *
split(const char *v)
{
	static struct buf out;
	struct buf err = BUF_INIT;
	char **d = aliases_split(v, &err);
	size_t i;

	buf_reset(&out);
	if (!d) {
		buf_printf(&out, "ERR: %s", buf_str(&err));
	} else {
		for (i = 0; d[i]; i++)
			buf_printf(&out, "%s%s", i ? "|" : "", d[i]);
		strv_free(d);
	}
	buf_free(&err);
	return (char *)buf_str(&out);
}

static void
test_basic(void)
{
	is_int(parse("root: alice\n"), 0, "one entry: no error");
	is_int(l.n, 1, "one entry");
	is_str(l.v[0].name, "root", "name");
	is_str(l.v[0].value, "alice", "value");
	is_int(l.v[0].line, 1, "line");

	is_int(parse("# comment\n\nPostmaster:   root  \nteam : alice, bob,\n\tcarol\n  , dave\nx:y"), 0,
	    "several entries");
	is_int(l.n, 3, "three entries");
	is_str(l.v[0].name, "postmaster", "names are lower-cased");
	is_str(l.v[0].value, "root", "value trimmed");
	is_int(l.v[0].line, 3, "line of postmaster");
	is_str(l.v[1].name, "team", "white space before the colon");
	is_str(l.v[1].value, "alice, bob, carol , dave", "continuation lines joined with one space");
	is_int(l.v[1].line, 4, "line where team starts");
	is_str(l.v[2].name, "x", "last line without newline");
	is_str(l.v[2].value, "y", "its value");

	is_int(parse("a: b,\n# comment between\n c\n"), 0, "comment inside a continued entry");
	is_str(l.v[0].value, "b, c", "comment skipped, continuation kept (Postfix)");

	is_int(parse("a: b\r\nc: d\r\n"), 0, "CRLF lines");
	is_str(l.v[0].value, "b", "CR stripped");
	is_str(l.v[1].name, "c", "second CRLF entry");

	is_int(parse("\"quoted name\": x\n"), 0, "quoted alias name");
	is_str(l.v[0].name, "quoted name", "quoted name unquoted");

	is_int(parse("a: x # not a comment\n"), 1, "# inside a value is text: white space error");
	is_int(parse("a: \"|echo # y\"\n"), 0, "but fine inside quotes");
}

static void
test_errors(void)
{
	is_int(parse("good: a\nnocolon\nalso good: b\n"), 2, "two errors");
	is_int(l.err[0].line, 2, "missing colon on line 2");
	ok(strstr(l.err[0].msg, "missing ':'") != NULL, "message says missing ':' (%s)", l.err[0].msg);
	is_int(l.err[1].line, 3, "white space in the name on line 3");
	is_int(l.n, 1, "the good entry is kept");

	is_int(parse("  leading: x\n"), 1, "continuation without an entry");
	is_int(l.err[0].line, 1, "... on line 1");
	is_int(parse(": x\n"), 1, "empty name");
	is_int(parse("a:\n"), 1, "empty value");
	is_int(parse("a:   \n# c\n\n"), 1, "value only white space");
	is_int(parse("a@example.com: x\n"), 1, "name with a domain");
	is_int(parse("a: \"|cmd\n"), 1, "unbalanced quote");
	ok(strstr(l.err[0].msg, "quote") != NULL, "message names the quote (%s)", l.err[0].msg);
	is_int(parse("\"a: x\n"), 1, "unbalanced quote in the name");
	is_int(parse("a: alice bob\n"), 1, "missing comma");
	is_int(parse("a: :include:relative\n"), 1, "relative include");
	is_int(parse("a: |\n"), 1, "empty command");
	is_int(parse("a: ,,,\n"), 1, "no destinations");
	{
		const char in[] = "a: b\nc\0d: e\nf: g\n";

		aliases_free(&l);
		is_int(aliases_parse(in, sizeof(in) - 1, 0, &l), 1, "NUL in a line");
		is_int(l.err[0].line, 2, "NUL on line 2");
		is_int(l.n, 2, "the others kept");
	}
	{
		struct buf b = BUF_INIT;
		size_t i;

		buf_adds(&b, "big: a");
		for (i = 0; i < ALIASES_MAX_LINE / 8; i++)
			buf_adds(&b, "\n\tx,x,x");
		buf_adds(&b, "\nafter: ok\n");
		aliases_free(&l);
		is_int(aliases_parse(b.data, b.len, 0, &l), 1, "logical line too long");
		is_int(l.err[0].line, 1, "reported where it starts");
		is_int(l.n, 1, "the next entry still parsed");
		is_str(l.n ? l.v[0].name : "", "after", "... it is 'after'");
		buf_free(&b);
	}
	{
		struct buf b = BUF_INIT;
		size_t i;

		buf_adds(&b, "long: ");
		for (i = 0; i < 20000; i++)
			buf_printf(&b, "user%zu, ", i);
		buf_adds(&b, "\n");
		aliases_free(&l);
		is_int(aliases_parse(b.data, b.len, 0, &l), 0, "a long single line (20000 members)");
		buf_free(&b);
	}
}

static void
test_split(void)
{
	is_str(split("a, b ,c"), "a|b|c", "simple list");
	is_str(split(" a ,, , b, "), "a|b", "empty members skipped");
	is_str(split("\"|/usr/bin/prog -x a, b\", c"), "|/usr/bin/prog -x a, b|c", "quoted command with a comma");
	is_str(split("|/bin/echo a, b"), "|/bin/echo a|b", "unquoted command ends at a comma");
	is_str(split("\"/var/log/a file\""), "/var/log/a file", "quoted file with a space");
	is_str(split("\"john doe\"@example.com"), "\"john doe\"@example.com", "quoted local part kept");
	is_str(split("\"a\\\"b\""), "a\"b", "backslash escapes a quote");
	is_str(split("Alice Example <alice@example.com>, bob"), "alice@example.com|bob", "display name form");
	is_str(split("\"Doe, John\" <jd@example.com>"), "jd@example.com", "comma in a quoted display name");
	ok(!strncmp(split("alice bob"), "ERR: white space", 16), "white space in an address is an error");
	ok(!strncmp(split("\"abc"), "ERR: unbalanced", 15), "unbalanced quote");
	is_str(split(":include:/etc/list, error:5.1.1 gone away"), ":include:/etc/list|error:5.1.1 gone away",
	    "include and error keep their spaces");
	is_str(split("\\bob, bob@other.example"), "\\bob|bob@other.example", "backslash name");
	is_str(split(""), "", "empty value: no destinations");
	{
		struct buf b = BUF_INIT, err = BUF_INIT;
		size_t i;
		char **v;

		for (i = 0; i <= ALIASES_MAX_DESTS; i++)
			buf_adds(&b, "a,");
		v = aliases_split(buf_str(&b), &err);
		ok(v == NULL, "more than ALIASES_MAX_DESTS destinations refused");
		strv_free(v);
		buf_free(&b);
		buf_free(&err);
	}
}

static void
test_classify(void)
{
	const char *arg;

	is_int(aliases_classify("|/bin/cat", &arg), ALIAS_DEST_COMMAND, "command");
	is_str(arg, "/bin/cat", "command text");
	is_int(aliases_classify("| /bin/cat", &arg), ALIAS_DEST_COMMAND, "command after blank");
	is_str(arg, "/bin/cat", "blank skipped");
	is_int(aliases_classify("/var/mail/x", &arg), ALIAS_DEST_FILE, "file");
	is_int(aliases_classify("/srv/maildir/", &arg), ALIAS_DEST_MAILDIR, "maildir");
	is_int(aliases_classify(":include:/etc/l", &arg), ALIAS_DEST_INCLUDE, "include");
	is_str(arg, "/etc/l", "include path");
	is_int(aliases_classify(":INCLUDE: /etc/l", &arg), ALIAS_DEST_INCLUDE, "include, any case, blank");
	is_int(aliases_classify(":include:etc", &arg), ALIAS_DEST_BAD, "relative include");
	is_int(aliases_classify("error:5.1.1 moved", &arg), ALIAS_DEST_ERROR, "error");
	is_str(arg, "5.1.1 moved", "error text");
	is_int(aliases_classify("\\bob", &arg), ALIAS_DEST_NOEXPAND, "backslash");
	is_str(arg, "bob", "backslash name");
	is_int(aliases_classify("bob@example.com", &arg), ALIAS_DEST_ADDRESS, "address");
	is_int(aliases_classify("", &arg), ALIAS_DEST_BAD, "empty");
	is_int(aliases_classify("a\nb", &arg), ALIAS_DEST_BAD, "LF");
	{
		size_t n;

		ok(aliases_dsn_code("5.1.1 x", &n) && n == 5, "dsn code 5.1.1");
		ok(aliases_dsn_code("4.2.22", &n) && n == 6, "dsn code 4.2.22");
		ok(!aliases_dsn_code("2.0.0 ok", &n), "2.x.x is not an error code");
		ok(!aliases_dsn_code("5.1.1x", &n), "code must end");
		ok(!aliases_dsn_code("5.1", &n), "short code");
		ok(!aliases_dsn_code("5.1111.1", &n), "too many digits");
	}
}

static void
test_list(void)
{
	const char *f = "# members\nalice, bob\n\n  carol\n\"|/usr/bin/log, x\"\nbad one\n/tmp/file, :include:/etc/more\n";

	aliases_free(&l);
	is_int(aliases_parse_list(f, strlen(f), &l), 1, "list file: one bad line");
	is_int(l.err[0].line, 6, "bad line number");
	is_int(l.n, 6, "six destinations");
	is_str(l.v[0].name, "alice", "first");
	is_int(l.v[0].line, 2, "its line");
	is_str(l.v[2].name, "carol", "indented line is just another line");
	is_int(l.v[2].line, 4, "carol on line 4");
	is_str(l.v[3].name, "|/usr/bin/log, x", "quoted command");
	is_str(l.v[5].name, ":include:/etc/more", "include in a list");
	aliases_free(&l);
	is_int(aliases_parse_list("", 0, &l), 0, "empty file");
	is_int(l.n, 0, "no destinations");
}

static void
test_table(void)
{
	const char *t = "Key1 value one\nkey2\tv2\n  continued\nnovalue\n";

	aliases_free(&l);
	is_int(aliases_parse(t, strlen(t), ALIASES_TABLE, &l), 1, "table: one error");
	is_int(l.n, 2, "two keys");
	is_str(l.v[0].name, "key1", "key lower-cased");
	is_str(l.v[0].value, "value one", "value");
	is_str(l.v[1].value, "v2 continued", "continued value");
	is_int(l.err[0].line, 4, "key without value");
}

/* Feed a file in every split position: parsing is on whole text, but the
 * same text must always give the same result (no state leaks). */
static void
test_stable(void)
{
	const char *f = "a: b, \"|c, d\",\n\tef\nx: y\n";
	size_t i;
	int same = 1;

	for (i = 0; i < 5; i++) {
		aliases_free(&l);
		aliases_parse(f, strlen(f), 0, &l);
		same &= l.n == 2 && !strcmp(l.v[0].value, "b, \"|c, d\", ef");
	}
	ok(same, "repeatable");
}

int
main(void)
{
	test_basic();
	test_errors();
	test_split();
	test_classify();
	test_list();
	test_table();
	test_stable();
	aliases_free(&l);
	return done_testing();
}
