/*
 * test_addr.c: unit tests for lib/addr.c: envelope address syntax
 * (addr_valid), splitting, qualifying, quoting, unwrapping command-line
 * and MAIL FROM forms, and RFC 5322 address lists with display names,
 * nested comments, groups, quoted commas, routes and hostile input.
 */
#include "addr.h"
#include "util.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* The list parsed from value, joined with " | ", and the bad count. */
static void
list_is(const char *value, const char *want, size_t want_bad, const char *what)
{
	struct buf b = BUF_INIT;
	size_t bad = 99, i;
	char **v = addr_parse_list(value, &bad);

	for (i = 0; v[i]; i++) {
		if (i)
			buf_adds(&b, " | ");
		buf_adds(&b, v[i]);
		ok(addr_valid_rcpt(v[i]), "%s: result %zu is valid", what, i);
	}
	is_str(buf_str(&b), want, "%s", what);
	is_int(bad, want_bad, "%s: bad count", what);
	strv_free(v);
	buf_free(&b);
}

static void
test_valid(void)
{
	static const char *good[] = {
		"user@example.com", "user", "postmaster", "a.b.c@d.e",
		"first.last+tag@sub.example.co.uk", "\"john doe\"@example.com",
		"\"a@b\"@example.com", "\"quoted\\\"quote\"@x.y", "\"\"@x.y",
		"!#$%&'*+-/=?^_`{|}~@example.com", "user@[192.0.2.1]",
		"user@[IPv6:2001:db8::1]", "user@[tag:content]", "u@localhost",
		"foo.@docomo.ne.jp", ".foo@x.y", "a..b@x.y", "u@host_name.example",
		"j\xc3\xb6rg@m\xc3\xbcnchen.de", "\"sp ace\"", "u@1.2.3.4",
		"u@a-b.c", "x@xn--bcher-kva.example", "",
		NULL
	};
	static const char *bad[] = {
		"user@", "@example.com", "user@@example.com", "a b@c.d",
		"user@exa mple.com", "user@.example.com", "user@example..com",
		"user@example.com.", "user@-x.com", "user@x-.com", "\"open@x.y",
		"\"a\"b@x.y", "user@[300.1.1.1]", "user@[IPv6:zz::1]", "user@[1.2.3]",
		"user@[]", "u\r@x.y", "u\n@x.y", "u@x\t.y", "\"u\001\"@x.y",
		"\"u\\\001\"@x.y", "user@x.y>", "<user@x.y>", "u@x.y@z", "u(c)@x.y",
		"u@" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
		"\xff@x.y", "u@\xc0\xaf.y", "u\xc2\x85@x.y", "u@x.y\xed\xa0\x80",
		".", "..", "u@[tag:]", "u@[-tag:x]", "\\@x.y",
		NULL
	};
	struct buf big = BUF_INIT;
	size_t i;

	for (i = 0; good[i]; i++)
		ok(addr_valid(good[i]), "valid: %s", good[i]);
	for (i = 0; bad[i]; i++)
		ok(!addr_valid(bad[i]), "invalid: %s", bad[i]);
	ok(!addr_valid(NULL), "invalid: NULL");
	ok(!addr_valid_rcpt(""), "empty recipient refused");
	ok(addr_valid_rcpt("a@b.c"), "addr_valid_rcpt accepts a@b.c");

	/* length limits: local part may be long (SRS), total is bounded */
	for (i = 0; i < 4000; i++)
		buf_addc(&big, 'a');
	buf_adds(&big, "@example.com");
	ok(addr_valid(buf_str(&big)), "4012-byte address accepted");
	buf_reset(&big);
	for (i = 0; i < ADDR_MAX_LEN; i++)
		buf_addc(&big, 'a');
	buf_adds(&big, "@x.y");
	ok(!addr_valid(buf_str(&big)), "address over ADDR_MAX_LEN refused");
	buf_reset(&big);
	buf_adds(&big, "u@");
	for (i = 0; i < 64; i++)
		buf_adds(&big, "abc.");
	buf_adds(&big, "com");
	ok(!addr_valid(buf_str(&big)), "domain over 255 bytes refused");
	buf_reset(&big);
	buf_adds(&big, "u@");
	for (i = 0; i < 63; i++)
		buf_addc(&big, 'd');
	buf_adds(&big, ".com");
	ok(addr_valid(buf_str(&big)), "63-byte label accepted");
	buf_free(&big);
}

static void
test_split(void)
{
	struct buf l = BUF_INIT, d = BUF_INIT;

	is_int(addr_split("User@Example.COM", &l, &d), 0, "split simple");
	is_str(buf_str(&l), "User", "local part keeps case");
	is_str(buf_str(&d), "example.com", "domain lower-cased");
	is_int(addr_split("\"a@b\"@c.d", &l, &d), 0, "split quoted @");
	is_str(buf_str(&l), "a@b", "quoted local part unquoted");
	is_str(buf_str(&d), "c.d", "domain after the last @");
	is_int(addr_split("\"x\\\"y\\\\z\"@q", &l, &d), 0, "split quoted pairs");
	is_str(buf_str(&l), "x\"y\\z", "quoted pairs resolved");
	is_int(addr_split("alice", &l, &d), 0, "split unqualified");
	is_str(buf_str(&l), "alice", "unqualified local");
	is_str(buf_str(&d), "", "unqualified: empty domain");
	is_int(addr_split("", &l, &d), 0, "split null sender");
	is_str(buf_str(&l), "", "null sender: empty local");
	is_int(addr_split("a@b@c", &l, &d), -1, "split malformed");
	is_str(buf_str(&l), "", "malformed: local cleared");
	is_int(addr_split("\"unterminated@x", &l, &d), -1, "split unterminated quote");
	is_int(addr_split("u@[IPv6:::1]", &l, &d), 0, "split literal");
	is_str(buf_str(&d), "[ipv6:::1]", "literal lower-cased");
	buf_free(&l);
	buf_free(&d);
}

static void
test_qualify_quote(void)
{
	struct buf b = BUF_INIT;

	addr_qualify("alice", "example.test", &b);
	is_str(buf_str(&b), "alice@example.test", "qualify unqualified");
	addr_qualify("alice@other.test", "example.test", &b);
	is_str(buf_str(&b), "alice@other.test", "qualified unchanged");
	addr_qualify("", "example.test", &b);
	is_str(buf_str(&b), "", "null sender unchanged");
	addr_qualify("\"a@b\"", "example.test", &b);
	is_str(buf_str(&b), "\"a@b\"@example.test", "quoted @ is not a domain");
	buf_sets(&b, "junk");
	addr_qualify("x", "", &b);
	is_str(buf_str(&b), "x", "empty origin leaves it unqualified, replaces out");

	buf_reset(&b);
	addr_quote_local("john.doe", &b);
	is_str(buf_str(&b), "john.doe", "dot-atom not quoted");
	buf_reset(&b);
	addr_quote_local("john doe", &b);
	is_str(buf_str(&b), "\"john doe\"", "space quoted");
	buf_reset(&b);
	addr_quote_local("a\"b\\c", &b);
	is_str(buf_str(&b), "\"a\\\"b\\\\c\"", "quote and backslash escaped");
	buf_reset(&b);
	addr_quote_local("foo.", &b);
	is_str(buf_str(&b), "\"foo.\"", "trailing dot quoted");
	buf_reset(&b);
	addr_quote_local("", &b);
	is_str(buf_str(&b), "\"\"", "empty quoted");
	buf_sets(&b, "<");
	addr_quote_local("x", &b);
	is_str(buf_str(&b), "<x", "quote_local appends");
	buf_free(&b);
}

static void
unwrap_is(const char *in, int rc, const char *want)
{
	struct buf b = BUF_INIT;
	int r = addr_unwrap(in, &b);

	is_int(r, rc, "unwrap rc: %s", in);
	if (rc == 0)
		is_str(buf_str(&b), want, "unwrap: %s", in);
	else
		is_str(buf_str(&b), "", "unwrap failure leaves out empty: %s", in);
	buf_free(&b);
}

static void
test_unwrap(void)
{
	unwrap_is("user@example.com", 0, "user@example.com");
	unwrap_is("<user@example.com>", 0, "user@example.com");
	unwrap_is("  < user@example.com >  ", 0, "user@example.com");
	unwrap_is("<>", 0, "");
	unwrap_is("", 0, "");
	unwrap_is("<@a.example,@b.example:user@c.example>", 0, "user@c.example");
	unwrap_is("@a.example:user@c.example", 0, "user@c.example");
	unwrap_is("<\"john\"@x.y>", 0, "john@x.y");
	unwrap_is("<\"john doe\"@x.y>", 0, "\"john doe\"@x.y");
	unwrap_is("user@example.com.", 0, "user@example.com");
	unwrap_is("alice", 0, "alice");
	unwrap_is("foo.@docomo.ne.jp", 0, "\"foo.\"@docomo.ne.jp");
	unwrap_is("<user@example.com", -1, "");
	unwrap_is("user@example.com>", -1, "");
	unwrap_is("<@a.example>", -1, "");
	unwrap_is("<@a.example:>", -1, "");
	unwrap_is("a b@c.d", -1, "");
	unwrap_is("user@x.y\r\nRCPT TO:<evil@x.y>", -1, "");
	unwrap_is("user@x.y\n", -1, "");
	unwrap_is("Name <user@x.y>", -1, "");
	unwrap_is("<<user@x.y>>", -1, "");
	unwrap_is("user@", -1, "");
}

static void
test_list(void)
{
	struct buf big = BUF_INIT;
	size_t i, bad;
	char **v;

	list_is("alice@example.test", "alice@example.test", 0, "single");
	list_is("a@x.y, b@x.y,c@x.y", "a@x.y | b@x.y | c@x.y", 0, "three");
	list_is("John Doe <john@x.y>", "john@x.y", 0, "display name");
	list_is("\"Doe, John\" <john@x.y>, jane@x.y", "john@x.y | jane@x.y", 0,
	    "quoted comma in display name");
	list_is("john@x.y (John (the \"man\") Doe), jane@x.y (J, D)",
	    "john@x.y | jane@x.y", 0, "nested comments with commas and quotes");
	list_is("(c1)john(c2)@(c3)x.y(c4)", "john@x.y", 0, "comments everywhere");
	list_is("team: a@x.y, \"B\" <b@x.y>;, c@x.y", "a@x.y | b@x.y | c@x.y", 0, "group");
	list_is("undisclosed-recipients:;", "", 0, "empty group");
	list_is("Team:a@x.y;", "a@x.y", 0, "group without spaces");
	list_is("a@x.y; b@x.y", "a@x.y | b@x.y", 0, "semicolon as separator");
	list_is("<@r1.example,@r2.example:u@x.y>", "u@x.y", 0, "obsolete route");
	list_is("\"john doe\"@x.y", "\"john doe\"@x.y", 0, "quoted local kept quoted");
	list_is("\"john\"@x.y", "john@x.y", 0, "needless quotes dropped");
	list_is("\"a,b\"@x.y, c@x.y", "\"a,b\"@x.y | c@x.y", 0, "quoted comma in local part");
	list_is("alice, bob", "alice | bob", 0, "unqualified");
	list_is("Alice <alice>", "alice", 0, "unqualified in angle");
	list_is("john . doe @ x . y", "john.doe@x.y", 0, "obsolete spaces around dots");
	list_is("u@[192.0.2.1]", "u@[192.0.2.1]", 0, "domain literal");
	list_is("u@x.y.", "u@x.y", 0, "trailing dot of domain removed");
	list_is(",, a@x.y,,", "a@x.y", 0, "empty list elements skipped");
	list_is("", "", 0, "empty value");
	list_is("   ", "", 0, "white space only");
	list_is("=?utf-8?q?J=C3=B6rg?= <j@x.y>", "j@x.y", 0, "encoded-word display name");
	list_is("j@x.y <j@x.y>", "j@x.y", 0, "unquoted @ in display name tolerated");
	list_is("John Doe john@x.y", "", 1, "phrase without angle brackets is bad");
	list_is("John Doe, a@x.y", "a@x.y", 1, "two words bad, next one kept");
	list_is("<>", "", 1, "empty angle address is bad");
	list_is("a@x.y <b@x.y>", "b@x.y", 0, "address as display name");
	list_is("<a@x.y> <b@x.y>", "", 1, "two angle addresses bad");
	list_is("<a@x.y> junk", "", 1, "junk after angle address bad");
	list_is("<a@x.y", "", 1, "unclosed angle bad");
	list_is("a@x.y (unclosed comment", "", 1, "unclosed comment bad");
	list_is("\"unclosed@x.y, b@x.y", "", 1, "unclosed quote eats the rest");
	list_is("a@x.y, b@@x.y, c@x.y", "a@x.y | c@x.y", 1, "double @");
	list_is("a\001b@x.y, c@x.y", "c@x.y", 1, "control character");
	list_is("a@x.y\r\n\t, b@x.y", "a@x.y | b@x.y", 0, "unfolding leftovers are white space");
	list_is("a@[1.2.3.4", "", 1, "unclosed literal");
	list_is("a@x.y)", "", 1, "stray close paren");
	list_is("a@b.c@d.e", "", 1, "two @");
	list_is("@x.y", "", 1, "no local part");
	list_is("u@", "", 1, "no domain");
	list_is("a@-x.y", "", 1, "bad domain");
	list_is("grp: a@x.y, grp2: b@x.y;", "a@x.y", 1, "nested group refused");
	list_is("a@x.y (c) (d) , (e) b@x.y", "a@x.y | b@x.y", 0, "comments between elements");
	list_is("\"\\\"q\\\\\"@x.y", "\"\\\"q\\\\\"@x.y", 0, "escaped quote and backslash");
	list_is("j\xc3\xb6rg@x.y", "j\xc3\xb6rg@x.y", 0, "UTF-8 local part");
	list_is("\xff\xfe@x.y", "", 1, "bad UTF-8");

	{
		char **e = addr_parse_list(NULL, &bad);

		ok(e[0] == NULL && bad == 0, "NULL value: empty, no bad");
		strv_free(e);
	}

	/* hostile: deep comment nesting, huge lists, huge address */
	for (i = 0; i < 100000; i++)
		buf_addc(&big, '(');
	buf_adds(&big, "a@x.y");
	for (i = 0; i < 100000; i++)
		buf_addc(&big, ')');
	buf_adds(&big, " b@x.y");
	v = addr_parse_list(buf_str(&big), &bad);
	is_str(v[0], "b@x.y", "100000 nested comments: no recursion");
	ok(v[0] && !v[1], "nested comment hides its content");
	strv_free(v);

	buf_reset(&big);
	for (i = 0; i < 20000; i++)
		buf_printf(&big, "%su%zu@x.y", i ? ", " : "", i);
	v = addr_parse_list(buf_str(&big), &bad);
	is_int(strv_len(v), 20000, "20000 addresses");
	is_str(v[19999], "u19999@x.y", "last of 20000");
	strv_free(v);

	buf_reset(&big);
	for (i = 0; i < 5000; i++)
		buf_addc(&big, 'a');
	buf_adds(&big, "@x.y, ok@x.y");
	v = addr_parse_list(buf_str(&big), &bad);
	is_str(v[0], "ok@x.y", "over-long address skipped");
	is_int(bad, 1, "over-long address counted bad");
	strv_free(v);

	buf_reset(&big);
	for (i = 0; i < 50000; i++)
		buf_adds(&big, "<");
	v = addr_parse_list(buf_str(&big), &bad);
	ok(v[0] == NULL && bad == 1, "50000 '<' is one bad address");
	strv_free(v);

	buf_reset(&big);
	for (i = 0; i < 50000; i++)
		buf_adds(&big, ":;,");
	v = addr_parse_list(buf_str(&big), &bad);
	ok(v[0] == NULL, "50000 empty groups");
	strv_free(v);
	buf_free(&big);
}

int
main(void)
{
	test_valid();
	test_split();
	test_qualify_quote();
	test_unwrap();
	test_list();
	return done_testing();
}
