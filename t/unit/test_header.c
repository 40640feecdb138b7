/*
 * test_header.c: unit tests for lib/header.c: field splitting,
 * unfolding, LF and CRLF line ends, the end of the header section
 * (empty line, non-header line, end of input, NUL), obsolete
 * "Name : value", the byte and field-count limits, and inputs cut at
 * every length (a parse of any prefix must be consistent).
 */
#include "header.h"
#include "util.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static void
test_basic(void)
{
	const char *m = "From: a@x.y\nTo: b@x.y,\n  c@x.y\nSubject:  hi there  \n\nbody\n";
	struct header h;

	is_int(header_parse(m, strlen(m), 0, &h), 0, "basic parse");
	is_int(h.n, 3, "three fields");
	is_str(h.f[0].name, "From", "name");
	is_str(h.f[0].value, "a@x.y", "value");
	is_str(h.f[1].value, "b@x.y,  c@x.y", "unfolded, white space kept");
	is_str(h.f[2].value, "hi there", "leading and trailing white space removed");
	is_int(h.f[1].raw_len, strlen("To: b@x.y,\n  c@x.y\n"), "raw covers folding");
	ok(h.f[1].raw == m + strlen("From: a@x.y\n"), "raw points into the input");
	ok(h.has_blank, "blank line seen");
	is_str(m + h.body_offset, "body\n", "body offset after the blank line");
	ok(!h.truncated, "not truncated");
	ok(header_get(&h, "subject") != NULL, "header_get is case-insensitive");
	ok(header_get(&h, "Cc") == NULL, "header_get missing");
	is_int(header_count(&h, "TO"), 1, "header_count");
	header_free(&h);
	ok(h.n == 0 && h.f == NULL, "header_free resets");
}

static void
test_crlf(void)
{
	const char *m = "From: a@x.y\r\nTo: b@x.y,\r\n\tc@x.y\r\n\r\nbody\r\n";
	struct header h;

	is_int(header_parse(m, strlen(m), 0, &h), 0, "CRLF parse");
	is_int(h.n, 2, "CRLF: two fields");
	is_str(h.f[0].value, "a@x.y", "CRLF: CR not in value");
	is_str(h.f[1].value, "b@x.y,\tc@x.y", "CRLF: unfolded");
	is_str(m + h.body_offset, "body\r\n", "CRLF: body offset");
	ok(h.has_blank, "CRLF: blank line");
	header_free(&h);
}

static void
test_ends(void)
{
	struct header h;
	const char *m;

	m = "Subject: x\nnot a header line\nmore\n";
	is_int(header_parse(m, strlen(m), 0, &h), 0, "non-header line ends the section");
	is_int(h.n, 1, "one field before it");
	ok(!h.has_blank, "no blank line");
	is_str(m + h.body_offset, "not a header line\nmore\n", "body starts with that line");
	header_free(&h);

	m = "Subject: x\nTo: y";
	is_int(header_parse(m, strlen(m), 0, &h), 0, "no final line end");
	is_int(h.n, 2, "two fields");
	is_str(h.f[1].value, "y", "last value");
	is_int(h.body_offset, strlen(m), "body offset at end");
	header_free(&h);

	m = "hello world\nSubject: x\n";
	is_int(header_parse(m, strlen(m), 0, &h), -1, "no header section");
	ok(h.n == 0 && h.body_offset == 0, "-1: n 0, body_offset 0");
	header_free(&h);

	m = " folded first\nSubject: x\n";
	is_int(header_parse(m, strlen(m), 0, &h), -1, "continuation first: not a header");
	header_free(&h);

	m = "From someone@x.y Mon Jan  1 00:00:00 2024\nSubject: x\n";
	is_int(header_parse(m, strlen(m), 0, &h), -1, "mbox From_ line is not a field");
	header_free(&h);

	m = "\nbody\n";
	is_int(header_parse(m, 6, 0, &h), 0, "empty header section");
	ok(h.n == 0 && h.has_blank && h.body_offset == 1, "empty section, body after 1 byte");
	header_free(&h);

	is_int(header_parse("", 0, 0, &h), 0, "empty input");
	ok(h.n == 0 && h.body_offset == 0, "empty input: nothing");
	header_free(&h);

	m = "Subject : obsolete\n: no name\n";
	is_int(header_parse(m, strlen(m), 0, &h), 0, "obsolete space before colon");
	is_str(h.f[0].name, "Subject", "name without the space");
	is_str(h.f[0].value, "obsolete", "obsolete value");
	is_int(h.n, 1, "empty name is not a field");
	header_free(&h);

	m = "X-Empty:\nX-Spaces:   \n\n";
	is_int(header_parse(m, strlen(m), 0, &h), 0, "empty values");
	is_str(h.f[0].value, "", "empty value");
	is_str(h.f[1].value, "", "white space value");
	header_free(&h);

	m = "A: 1\n   \nB: 2\n\nx";
	is_int(header_parse(m, strlen(m), 0, &h), 0, "white-space-only line");
	is_int(h.n, 2, "white-space line continues the field");
	header_free(&h);

	{
		static const char nul[] = "A: 1\nB: x\0y\nC: 3\n\nbody";

		is_int(header_parse(nul, sizeof(nul) - 1, 0, &h), 0, "NUL in a field");
		is_int(h.n, 1, "NUL field ends the section");
		is_int(h.body_offset, 5, "body starts at the NUL field");
		header_free(&h);
		is_int(header_parse(nul + 5, sizeof(nul) - 6, 0, &h), -1, "NUL in the first field");
		header_free(&h);
	}

	m = "Bad\001Name: x\n";
	is_int(header_parse(m, strlen(m), 0, &h), -1, "control character in name");
	header_free(&h);

	m = "Subject: a\rb\n\n";
	is_int(header_parse(m, strlen(m), 0, &h), 0, "bare CR inside a value");
	is_str(h.f[0].value, "a\rb", "bare CR kept (not a line end)");
	header_free(&h);
}

static void
test_limits(void)
{
	struct buf b = BUF_INIT;
	struct header h;
	size_t i;

	buf_adds(&b, "A: 12345\nB: 12345\nC: 12345\n\nbody");
	is_int(header_parse(b.data, b.len, 20, &h), 0, "byte limit");
	is_int(h.n, 2, "two fields fit in 20 bytes");
	ok(h.truncated, "truncated set");
	is_str(b.data + h.body_offset, "C: 12345\n\nbody", "rest is body");
	header_free(&h);

	is_int(header_parse(b.data, b.len, 27, &h), 0, "exact byte limit");
	is_int(h.n, 3, "27 bytes hold three fields");
	ok(!h.truncated && h.has_blank, "exact fit not truncated");
	header_free(&h);

	buf_reset(&b);
	for (i = 0; i < HEADER_MAX_FIELDS + 5; i++)
		buf_adds(&b, "X: y\n");
	buf_adds(&b, "\nbody");
	is_int(header_parse(b.data, b.len, 0, &h), 0, "field count limit");
	is_int(h.n, HEADER_MAX_FIELDS, "HEADER_MAX_FIELDS fields kept");
	ok(h.truncated, "count limit truncates");
	is_int(h.body_offset, HEADER_MAX_FIELDS * 5, "body at the first field beyond");
	header_free(&h);

	/* a field folded over 100000 lines */
	buf_reset(&b);
	buf_adds(&b, "To: a");
	for (i = 0; i < 100000; i++)
		buf_adds(&b, "\n b");
	buf_adds(&b, "\n\nx");
	is_int(header_parse(b.data, b.len, 0, &h), 0, "100000 continuation lines");
	is_int(h.n, 1, "one field");
	is_int(strlen(h.f[0].value), 1 + 2 * 100000, "unfolded length");
	header_free(&h);
	buf_free(&b);

	ok(header_name_valid("X-Foo", 5), "name valid");
	ok(!header_name_valid("X Foo", 5), "space in name");
	ok(!header_name_valid("X:Foo", 5), "colon in name");
	ok(!header_name_valid("", 0), "empty name");
	ok(!header_name_valid("X\x80", 2), "8-bit name");
}

/* Every prefix of a message parses consistently. */
static void
test_prefixes(void)
{
	const char *m = "From: a@x.y\r\nTo: b@x.y,\r\n c@x.y\nSubject: s\n\nbody\n";
	size_t len = strlen(m), cut, i;
	int bad = 0;

	for (cut = 0; cut <= len; cut++) {
		struct header h;
		char *copy = xmalloc(cut ? cut : 1);

		memcpy(copy, m, cut);
		/* "", "F".."From" have no colon yet: not a header section */
		if ((header_parse(copy, cut, 0, &h) < 0) != (cut >= 1 && cut <= 4))
			bad++;
		if (h.body_offset > cut)
			bad++;
		for (i = 0; i < h.n; i++) {
			if (h.f[i].raw < copy || h.f[i].raw + h.f[i].raw_len > copy + cut)
				bad++;
			if (!header_name_valid(h.f[i].name, strlen(h.f[i].name)))
				bad++;
			if (strchr(h.f[i].value, '\n'))
				bad++;
		}
		header_free(&h);
		free(copy);
	}
	is_int(bad, 0, "every prefix parses consistently");
}

int
main(void)
{
	test_basic();
	test_crlf();
	test_ends();
	test_limits();
	test_prefixes();
	return done_testing();
}
