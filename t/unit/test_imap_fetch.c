/*
 * test_imap_fetch: FETCH responses (imapd/imap_fetch.c) of messages in a
 * box made in memory (its own ibox_ops, the cache filled in), for real
 * FETCH commands read by the parser: exact response bytes for BODY[]
 * and its sections (HEADER, TEXT, MIME, HEADER.FIELDS[.NOT], nested
 * parts, partial ranges), RFC822*, BINARY and BINARY.SIZE (base64,
 * quoted-printable, NUL, unknown encodings), the item order, UID in UID
 * FETCH, FLAGS with \Recent, INTERNALDATE, MODSEQ, and a message gone.
 */
#include "imap_fetch.h"
#include "imap_parse.h"
#include "mime.h"
#include "util.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char msg1[] =
	"From: A <a@x.test>\n"
	"Subject: Hi\n"
	"To: b@y.test\n"
	"\n"
	"Hello\n"
	"World\n";

static const char msg2[] =
	"From: a@x.test\n"
	"Subject: multi\n"
	"MIME-Version: 1.0\n"
	"Content-Type: multipart/mixed; boundary=\"XX\"\n"
	"\n"
	"preamble\n"
	"--XX\n"
	"Content-Type: text/plain; charset=utf-8\n"
	"Content-Transfer-Encoding: quoted-printable\n"
	"\n"
	"caf=C3=A9 =\n"
	"done\n"
	"--XX\n"
	"Content-Type: multipart/alternative; boundary=\"YY\"\n"
	"\n"
	"--YY\n"
	"Content-Type: text/plain\n"
	"\n"
	"alt text\n"
	"--YY\n"
	"Content-Type: application/octet-stream\n"
	"Content-Transfer-Encoding: base64\n"
	"\n"
	"AAECAw==\n"
	"--YY\n"
	"Content-Type: text/plain\n"
	"Content-Transfer-Encoding: base64\n"
	"\n"
	"aGVs\n"
	"bG8=\n"
	"--YY--\n"
	"--XX\n"
	"Content-Type: message/rfc822\n"
	"\n"
	"From: c@z.test\n"
	"Subject: inner\n"
	"\n"
	"inner body\n"
	"--XX\n"
	"Content-Type: text/plain\n"
	"Content-Transfer-Encoding: x-unknown\n"
	"\n"
	"zzz\n"
	"--XX--\n";

/* stored with CRLF already: BODY[] must be its bytes exactly */
static const char msg3[] = "Subject: crlf\r\n\r\nline\r\n";

static const char *const data[] = { msg1, msg2, msg3 };
static int gone[3];
static int loads;

static int
t_load(struct imap_box *b, size_t i, const char **p, size_t *n, struct buf *err)
{
	(void)b;
	loads++;
	if (gone[i]) {
		buf_sets(err, "gone");
		return IBOX_GONE;
	}
	*p = data[i];
	*n = strlen(data[i]);
	return IBOX_OK;
}

static int
t_sync(struct imap_box *b, int allow_expunge, struct ibox_changes *ch, struct buf *err)
{
	(void)b;
	(void)allow_expunge;
	(void)ch;
	(void)err;
	return IBOX_OK;
}

static const struct ibox_ops t_ops = { t_sync, t_load, NULL, NULL, NULL, NULL };

static struct imap_box box;
static struct ibox_msg msgs[3];
static struct buf out = BUF_INIT;

static void
setup(void)
{
	size_t i;

	memset(&box, 0, sizeof(box));
	box.ops = &t_ops;
	box.msgs = msgs;
	box.n = 3;
	box.uidvalidity = 1;
	box.uidnext = 20;
	box.highestmodseq = 9;
	for (i = 0; i < 3; i++) {
		struct mime_message *mm = mime_parse(data[i], strlen(data[i]), NULL);
		struct buf s = BUF_INIT;

		msgs[i].uid = (uint32_t)(7 + i * 3);
		msgs[i].modseq = 5 + i;
		msgs[i].size = mime_crlf_size(data[i], strlen(data[i]), NULL);
		msgs[i].idate = 1764777600 + 3600 * (int64_t)i;	/* 2025-12-03 16:00:00 UTC */
		msgs[i].izone = i == 1 ? -(4 * 60 + 30) : 60;
		mime_imap_envelope(mm->parts[0], &s);
		msgs[i].envelope = buf_steal(&s);
		mime_imap_bodystructure(mm->parts[0], 1, &s);
		msgs[i].bodystructure = buf_steal(&s);
		mime_imap_bodystructure(mm->parts[0], 0, &s);
		msgs[i].body = buf_steal(&s);
		msgs[i].have = IBOX_META_SIZE | IBOX_META_IDATE | IBOX_META_ENVELOPE |
		    IBOX_META_BODYSTRUCTURE;
		mime_free(&mm);
	}
	msgs[0].flags = IMAP_FLAG_SEEN | IBOX_RECENT;
	msgs[0].keywords = xstrdup("$Forwarded,Work");
	msgs[1].flags = IMAP_FLAG_ANSWERED | IMAP_FLAG_DRAFT;
}

static struct imap_cmd *
parse(const char *line)
{
	struct imap_parser *p = imap_parser_new(NULL);
	struct imap_result res;
	struct imap_cmd *c = NULL;

	imap_parser_set_state(p, IMAP_STATE_SELECTED);
	imap_parser_feed(p, line, strlen(line), &res);
	if (res.kind == IMAP_R_COMMAND)
		c = res.cmd;
	else
		printf("# parse %s: %d %s\n", line, res.kind, res.text ? res.text : "");
	imap_parser_free(&p);
	return c;
}

/* Run "a FETCH seq (items)" (or UID FETCH) on message seq; rc and the
 * output in out. */
static int
run(const char *line, int add_flags, int modseq)
{
	struct imap_cmd *c = parse(line);
	struct buf err = BUF_INIT;
	size_t i;
	int rc;

	buf_reset(&out);
	if (!c)
		return -99;
	if (c->fetch.set.n < 1) {
		imap_cmd_free(&c);
		return -98;
	}
	i = c->fetch.set.r[0].lo - 1;
	if (c->uid)
		for (i = 0; i < box.n && msgs[i].uid != c->fetch.set.r[0].lo; i++)
			;
	rc = imap_fetch_msg(&box, i, &c->fetch, c->uid, add_flags, modseq,
	    &out, &err);
	imap_cmd_free(&c);
	buf_free(&err);
	return rc;
}

/* out as a C string with NUL and other controls shown, for is_str */
static const char *
shown(const struct buf *b)
{
	static struct buf s = BUF_INIT;
	size_t i;

	buf_reset(&s);
	for (i = 0; i < b->len; i++) {
		unsigned char c = (unsigned char)b->data[i];

		if (c == '\r')
			buf_adds(&s, "\\r");
		else if (c == '\n')
			buf_adds(&s, "\\n");
		else if (c < 0x20 || c >= 0x7f)
			buf_printf(&s, "\\x%02x", c);
		else
			buf_addc(&s, (int)c);
	}
	return buf_str(&s);
}

static void
check(const char *line, const char *want, const char *what)
{
	struct buf w = BUF_INIT;
	int rc = run(line, 0, 0);

	is_int(rc, IBOX_OK, "%s: rc", what);
	buf_adds(&w, want);
	{
		/* shown() reuses one buffer: copy the first result */
		char *g = xstrdup(shown(&out));

		is_str(g, shown(&w), "%s", what);
		free(g);
	}
	buf_free(&w);
}

static void
test_body_sections(void)
{
	check("a FETCH 1 (BODY[])\r\n",
	    "* 1 FETCH (BODY[] {63}\r\n"
	    "From: A <a@x.test>\r\nSubject: Hi\r\nTo: b@y.test\r\n\r\nHello\r\nWorld\r\n)\r\n",
	    "BODY[] of an LF message is its bytes with CRLF");
	is_int(msgs[0].size, 63, "RFC822.SIZE in the cache is the CRLF size");
	check("a FETCH 3 (BODY[])\r\n",
	    "* 3 FETCH (BODY[] {23}\r\nSubject: crlf\r\n\r\nline\r\n)\r\n",
	    "BODY[] of a CRLF message is its bytes");
	check("a FETCH 1 (BODY.PEEK[HEADER])\r\n",
	    "* 1 FETCH (BODY[HEADER] {49}\r\n"
	    "From: A <a@x.test>\r\nSubject: Hi\r\nTo: b@y.test\r\n\r\n)\r\n",
	    "BODY.PEEK[HEADER] answered as BODY[HEADER]");
	check("a FETCH 1 (BODY[TEXT])\r\n",
	    "* 1 FETCH (BODY[TEXT] {14}\r\nHello\r\nWorld\r\n)\r\n", "BODY[TEXT]");
	check("a FETCH 1 (BODY[1])\r\n",
	    "* 1 FETCH (BODY[1] {14}\r\nHello\r\nWorld\r\n)\r\n",
	    "BODY[1] of a single-part message is its body");
	check("a FETCH 1 (BODY.PEEK[HEADER.FIELDS (From subject)])\r\n",
	    "* 1 FETCH (BODY[HEADER.FIELDS (FROM SUBJECT)] {35}\r\n"
	    "From: A <a@x.test>\r\nSubject: Hi\r\n\r\n)\r\n",
	    "HEADER.FIELDS: fields as written, names echoed upper-cased");
	check("a FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (From Subject)])\r\n",
	    "* 1 FETCH (BODY[HEADER.FIELDS.NOT (FROM SUBJECT)] {16}\r\n"
	    "To: b@y.test\r\n\r\n)\r\n", "HEADER.FIELDS.NOT");
	check("a FETCH 1 (BODY.PEEK[HEADER.FIELDS (X-None)])\r\n",
	    "* 1 FETCH (BODY[HEADER.FIELDS (X-NONE)] {2}\r\n\r\n)\r\n",
	    "HEADER.FIELDS matching nothing is the empty line");
	check("a FETCH 1 (BODY[]<0.10>)\r\n",
	    "* 1 FETCH (BODY[]<0> {10}\r\nFrom: A <a)\r\n", "partial <0.10> named by origin");
	check("a FETCH 1 (BODY[TEXT]<5.100>)\r\n",
	    "* 1 FETCH (BODY[TEXT]<5> {9}\r\n\r\nWorld\r\n)\r\n",
	    "partial counts CRLF bytes and stops at the end");
	check("a FETCH 1 (BODY[]<63.10>)\r\n",
	    "* 1 FETCH (BODY[]<63> \"\")\r\n", "partial past the end is \"\"");
	check("a FETCH 1 (BODY[2])\r\n",
	    "* 1 FETCH (BODY[2] \"\")\r\n", "missing part is \"\"");
	check("a FETCH 1 (BODY[1.HEADER])\r\n",
	    "* 1 FETCH (BODY[1.HEADER] \"\")\r\n", "HEADER of a non-message part is \"\"");
}

static void
test_nested(void)
{
	check("a FETCH 2 (BODY[1])\r\n",
	    "* 2 FETCH (BODY[1] {17}\r\ncaf=C3=A9 =\r\ndone)\r\n", "BODY[1] of a multipart");
	check("a FETCH 2 (BODY[1.MIME])\r\n",
	    "* 2 FETCH (BODY[1.MIME] {88}\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n)\r\n", "BODY[1.MIME]");
	check("a FETCH 2 (BODY[2.1.MIME] BODY[2.1])\r\n",
	    "* 2 FETCH (BODY[2.1.MIME] {28}\r\nContent-Type: text/plain\r\n\r\n"
	    " BODY[2.1] {8}\r\nalt text)\r\n", "BODY[2.1.MIME] and BODY[2.1] in order");
	check("a FETCH 2 (BODY[2.2])\r\n",
	    "* 2 FETCH (BODY[2.2] {8}\r\nAAECAw==)\r\n", "BODY[2.2] is the encoded body");
	check("a FETCH 2 (BODY[3.HEADER] BODY[3.TEXT])\r\n",
	    "* 2 FETCH (BODY[3.HEADER] {34}\r\nFrom: c@z.test\r\nSubject: inner\r\n\r\n"
	    " BODY[3.TEXT] {10}\r\ninner body)\r\n", "HEADER and TEXT of message/rfc822");
	check("a FETCH 2 (BODY[3])\r\n",
	    "* 2 FETCH (BODY[3] {44}\r\nFrom: c@z.test\r\nSubject: inner\r\n\r\ninner body)\r\n",
	    "BODY[3] of message/rfc822 is the whole inner message");
	check("a FETCH 2 (BODY.PEEK[3.HEADER.FIELDS (SUBJECT)])\r\n",
	    "* 2 FETCH (BODY[3.HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: inner\r\n\r\n)\r\n",
	    "HEADER.FIELDS of the inner message");
	check("a FETCH 2 (BODY[2.3.1] BODY[9])\r\n",
	    "* 2 FETCH (BODY[2.3.1] \"\" BODY[9] \"\")\r\n", "missing nested parts are \"\"");
}

static void
test_rfc822(void)
{
	check("a FETCH 1 (RFC822.HEADER RFC822.TEXT)\r\n",
	    "* 1 FETCH (RFC822.HEADER {49}\r\n"
	    "From: A <a@x.test>\r\nSubject: Hi\r\nTo: b@y.test\r\n\r\n"
	    " RFC822.TEXT {14}\r\nHello\r\nWorld\r\n)\r\n", "RFC822.HEADER and RFC822.TEXT");
	check("a FETCH 3 (RFC822 RFC822.SIZE)\r\n",
	    "* 3 FETCH (RFC822 {23}\r\nSubject: crlf\r\n\r\nline\r\n RFC822.SIZE 23)\r\n",
	    "RFC822 and RFC822.SIZE");
}

static void
test_binary(void)
{
	int rc;

	/* a C string stops at NUL: compare the bytes */
	rc = run("a FETCH 2 (BINARY.PEEK[2.2])\r\n", 0, 0);
	{
		static const char want[] = "* 2 FETCH (BINARY[2.2] ~{4}\r\n\0\1\2\3)\r\n";

		ok(rc == IBOX_OK && out.len == sizeof(want) - 1 &&
		    memcmp(out.data, want, out.len) == 0, "BINARY.PEEK[2.2] bytes: %s", shown(&out));
	}
	check("a FETCH 2 (BINARY.SIZE[2.2] BINARY.SIZE[2.3] BINARY[2.3])\r\n",
	    "* 2 FETCH (BINARY.SIZE[2.2] 4 BINARY.SIZE[2.3] 5 BINARY[2.3] {5}\r\nhello)\r\n",
	    "BINARY.SIZE and BINARY of base64 without NUL");
	check("a FETCH 2 (BINARY[1] BINARY.SIZE[1])\r\n",
	    "* 2 FETCH (BINARY[1] {10}\r\ncaf\xc3\xa9 done BINARY.SIZE[1] 10)\r\n",
	    "BINARY of quoted-printable");
	check("a FETCH 2 (BINARY[2.1])\r\n",
	    "* 2 FETCH (BINARY[2.1] {8}\r\nalt text)\r\n", "BINARY of 7bit");
	check("a FETCH 2 (BINARY[2.2]<1.2>)\r\n",
	    "* 2 FETCH (BINARY[2.2]<1> {2}\r\n\x01\x02)\r\n", "BINARY partial");
	check("a FETCH 1 (BINARY[1] BINARY[5])\r\n",
	    "* 1 FETCH (BINARY[1] {14}\r\nHello\r\nWorld\r\n BINARY[5] \"\")\r\n",
	    "BINARY of a single-part message; missing part");
	buf_reset(&out);
	buf_adds(&out, "keep");
	{
		struct imap_cmd *c = parse("a FETCH 2 (FLAGS BINARY[4])\r\n");
		struct buf err = BUF_INIT;

		rc = c ? imap_fetch_msg(&box, 1, &c->fetch, 0, 0, 0, &out, &err) : -99;
		is_int(rc, IMAP_FETCH_UNKNOWN_CTE, "BINARY of an unknown encoding");
		is_str(buf_str(&out), "keep", "nothing appended for UNKNOWN-CTE");
		imap_cmd_free(&c);
		buf_free(&err);
	}
	rc = run("a FETCH 2 (BINARY.SIZE[4])\r\n", 0, 0);
	is_int(rc, IMAP_FETCH_UNKNOWN_CTE, "BINARY.SIZE of an unknown encoding");
	rc = run("a FETCH 2 (BODY[4])\r\n", 0, 0);
	is_int(rc, IBOX_OK, "BODY[4] of an unknown encoding is fine");
}

static void
test_cached(void)
{
	struct buf want = BUF_INIT;

	check("a FETCH 1 (FLAGS RFC822.SIZE UID)\r\n",
	    "* 1 FETCH (FLAGS (\\Seen \\Recent $Forwarded Work) RFC822.SIZE 63 UID 7)\r\n",
	    "items in the order asked; FLAGS with \\Recent and keywords");
	check("a UID FETCH 7 (RFC822.SIZE FLAGS)\r\n",
	    "* 1 FETCH (UID 7 RFC822.SIZE 63 FLAGS (\\Seen \\Recent $Forwarded Work))\r\n",
	    "UID FETCH puts UID first");
	check("a FETCH 2 (FLAGS INTERNALDATE)\r\n",
	    "* 2 FETCH (FLAGS (\\Answered \\Draft) INTERNALDATE \"03-Dec-2025 12:30:00 -0430\")\r\n",
	    "INTERNALDATE in the message's zone");
	check("a FETCH 1 (INTERNALDATE)\r\n",
	    "* 1 FETCH (INTERNALDATE \"03-Dec-2025 17:00:00 +0100\")\r\n", "INTERNALDATE +0100");
	check("a FETCH 3 (FLAGS)\r\n", "* 3 FETCH (FLAGS ())\r\n", "no flags");
	buf_printf(&want, "* 2 FETCH (ENVELOPE %s BODYSTRUCTURE %s BODY %s)\r\n",
	    msgs[1].envelope, msgs[1].bodystructure, msgs[1].body);
	check("a FETCH 2 (ENVELOPE BODYSTRUCTURE BODY)\r\n", buf_str(&want),
	    "ENVELOPE, BODYSTRUCTURE, BODY from the cache");
	buf_reset(&want);
	buf_printf(&want, "* 1 FETCH (FLAGS (\\Seen \\Recent $Forwarded Work) INTERNALDATE "
	    "\"03-Dec-2025 17:00:00 +0100\" RFC822.SIZE 63 ENVELOPE %s BODY %s)\r\n",
	    msgs[0].envelope, msgs[0].body);
	check("a FETCH 1 FULL\r\n", buf_str(&want), "FULL macro");
	buf_free(&want);

	loads = 0;
	check("a FETCH 1 (FLAGS UID RFC822.SIZE ENVELOPE)\r\n",
	    "* 1 FETCH (FLAGS (\\Seen \\Recent $Forwarded Work) UID 7 RFC822.SIZE 63 ENVELOPE "
	    "(NIL \"Hi\" ((\"A\" NIL \"a\" \"x.test\")) ((\"A\" NIL \"a\" \"x.test\")) "
	    "((\"A\" NIL \"a\" \"x.test\")) ((NIL NIL \"b\" \"y.test\")) NIL NIL NIL NIL))\r\n",
	    "ENVELOPE");
	is_int(loads, 0, "cached items do not load the message");
	check("a FETCH 1 (BODY[TEXT] BODY.PEEK[HEADER])\r\n",
	    "* 1 FETCH (BODY[TEXT] {14}\r\nHello\r\nWorld\r\n BODY[HEADER] {49}\r\n"
	    "From: A <a@x.test>\r\nSubject: Hi\r\nTo: b@y.test\r\n\r\n)\r\n", "two sections");
	is_int(loads, 1, "the message is loaded once for two sections");
}

static void
test_modseq_flags(void)
{
	struct buf want = BUF_INIT;
	int rc;

	check("a FETCH 2 (MODSEQ FLAGS)\r\n",
	    "* 2 FETCH (MODSEQ (6) FLAGS (\\Answered \\Draft))\r\n", "MODSEQ asked");
	rc = run("a UID FETCH 10 (FLAGS)\r\n", 0, 1);
	is_int(rc, IBOX_OK, "modseq on: rc");
	is_str(buf_str(&out), "* 2 FETCH (UID 10 MODSEQ (6) FLAGS (\\Answered \\Draft))\r\n",
	    "CONDSTORE on: UID then MODSEQ in every response");
	rc = run("a FETCH 2 (RFC822.SIZE MODSEQ)\r\n", 0, 1);
	buf_reset(&want);
	buf_printf(&want, "* 2 FETCH (RFC822.SIZE %llu MODSEQ (6))\r\n",
	    (unsigned long long)msgs[1].size);
	is_str(buf_str(&out), buf_str(&want), "MODSEQ asked is not repeated");
	buf_free(&want);
	box.nomodseq = 1;
	rc = run("a FETCH 2 (UID)\r\n", 0, 1);
	is_str(buf_str(&out), "* 2 FETCH (UID 10)\r\n", "NOMODSEQ box: no MODSEQ unless asked");
	box.nomodseq = 0;
	rc = run("a FETCH 3 (BODY[TEXT])\r\n", 1, 0);
	is_int(rc, IBOX_OK, "add_flags: rc");
	is_str(buf_str(&out), "* 3 FETCH (BODY[TEXT] {6}\r\nline\r\n FLAGS ())\r\n",
	    "add_flags puts FLAGS last");
	rc = run("a FETCH 3 (FLAGS BODY[TEXT])\r\n", 1, 0);
	is_str(buf_str(&out), "* 3 FETCH (FLAGS () BODY[TEXT] {6}\r\nline\r\n)\r\n",
	    "add_flags: FLAGS asked is not repeated");
}

static void
test_predicates(void)
{
	static const struct {
		const char *line;
		int body, seen;
	} t[] = {
		{ "a FETCH 1 (FLAGS UID)\r\n", 0, 0 },
		{ "a FETCH 1 ALL\r\n", 0, 0 },
		{ "a FETCH 1 (BODYSTRUCTURE ENVELOPE)\r\n", 0, 0 },
		{ "a FETCH 1 (BODY.PEEK[])\r\n", 1, 0 },
		{ "a FETCH 1 (BODY[HEADER])\r\n", 1, 1 },
		{ "a FETCH 1 (RFC822.HEADER)\r\n", 1, 0 },
		{ "a FETCH 1 (RFC822.TEXT)\r\n", 1, 1 },
		{ "a FETCH 1 (RFC822)\r\n", 1, 1 },
		{ "a FETCH 1 (BINARY.PEEK[1])\r\n", 1, 0 },
		{ "a FETCH 1 (BINARY[1])\r\n", 1, 1 },
		{ "a FETCH 1 (BINARY.SIZE[1])\r\n", 1, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct imap_cmd *c = parse(t[i].line);

		if (!c) {
			ok(0, "parse %s", t[i].line);
			continue;
		}
		is_int(imap_fetch_needs_body(&c->fetch), t[i].body, "needs_body %.*s",
		    (int)strlen(t[i].line) - 2, t[i].line);
		is_int(imap_fetch_sets_seen(&c->fetch), t[i].seen, "sets_seen %.*s",
		    (int)strlen(t[i].line) - 2, t[i].line);
		imap_cmd_free(&c);
	}
}

static void
test_gone(void)
{
	struct imap_cmd *c = parse("a FETCH 1 (FLAGS BODY[])\r\n");
	struct buf err = BUF_INIT;
	int rc;

	gone[0] = 1;
	buf_reset(&out);
	buf_adds(&out, "keep");
	rc = c ? imap_fetch_msg(&box, 0, &c->fetch, 0, 0, 0, &out, &err) : -99;
	is_int(rc, IBOX_GONE, "a message gone: IBOX_GONE");
	is_str(buf_str(&out), "keep", "nothing appended for a message gone");
	gone[0] = 0;
	imap_cmd_free(&c);
	buf_free(&err);
}

int
main(void)
{
	size_t i;

	setup();
	test_body_sections();
	test_nested();
	test_rfc822();
	test_binary();
	test_cached();
	test_modseq_flags();
	test_predicates();
	test_gone();
	for (i = 0; i < 3; i++) {
		free(msgs[i].envelope);
		free(msgs[i].bodystructure);
		free(msgs[i].body);
		free(msgs[i].keywords);
	}
	buf_free(&out);
	return done_testing();
}
