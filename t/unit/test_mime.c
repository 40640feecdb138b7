/*
 * test_mime.c: unit tests for lib/mime.c and lib/mime_imap.c: the part
 * tree, offsets and IMAP sizes (LF and CRLF), Content-* fields and
 * defaults, RFC 2231 parameters, the malformed shapes of doc/mime.md
 * (missing close delimiter, boundaries that are prefixes of each
 * other, junk around delimiters, NUL bytes, long lines, no final line
 * end, empty message, header without body, CR-only line ends), the
 * limits, BODYSTRUCTURE / BODY / ENVELOPE strings (the expected ones
 * were checked against Dovecot 2.3.19; deliberate differences are noted
 * where they occur), BODY[section] ranges, header filtering, transfer
 * and RFC 2047 decoding, and every prefix of a message parsing into a
 * consistent tree.
 */
#include "mime.h"
#include "util.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static struct mime_message *
parse(const char *s)
{
	return mime_parse(s, strlen(s), NULL);
}

static struct buf out = BUF_INIT;

static const char *
bodystructure(const struct mime_message *m, int ext)
{
	buf_reset(&out);
	mime_imap_bodystructure(m->parts[0], ext, &out);
	return buf_str(&out);
}

static const char *
envelope(const struct mime_part *p)
{
	buf_reset(&out);
	mime_imap_envelope(p, &out);
	return buf_str(&out);
}

/* The range of a section spec like "1.2.MIME", CRLF-normalised, or
 * "NOSECTION". */
static const char *
section(const struct mime_message *m, const char *spec)
{
	unsigned int path[32];
	size_t n = 0;
	enum mime_sect suf = MIME_SECT_NONE;
	struct mime_range r;
	char *end;

	while (*spec >= '0' && *spec <= '9' && n < 32) {
		path[n++] = (unsigned int)strtoul(spec, &end, 10);
		spec = end;
		if (*spec == '.')
			spec++;
	}
	if (strcmp(spec, "HEADER") == 0)
		suf = MIME_SECT_HEADER;
	else if (strcmp(spec, "TEXT") == 0)
		suf = MIME_SECT_TEXT;
	else if (strcmp(spec, "MIME") == 0)
		suf = MIME_SECT_MIME;
	buf_reset(&out);
	if (mime_section(m, path, n, suf, &r, NULL) < 0)
		return "NOSECTION";
	mime_crlf_append(&out, m->data + r.offset, r.len);
	return buf_str(&out);
}

/* Tree invariants (the fuzz harness checks the same); the number broken. */
static int
check_tree(const struct mime_message *m)
{
	size_t i, j;
	int bad = 0;

	if (m->nparts == 0 || m->parts[0]->parent || m->parts[0]->offset != 0 ||
	    mime_part_end(m->parts[0]) != m->len)
		return 1;
	for (i = 0; i < m->nparts; i++) {
		const struct mime_part *p = m->parts[i], *c;
		size_t n = 0;

		if (p->index != i || p->body_offset != p->offset + p->header_len ||
		    mime_part_end(p) > m->len)
			bad++;
		if (i && m->parts[i - 1]->offset > p->offset)
			bad++;
		if (p->parent && (p->offset < p->parent->body_offset ||
		    mime_part_end(p) > mime_part_end(p->parent) ||
		    p->depth != p->parent->depth + 1))
			bad++;
		for (c = p->child; c; c = c->next) {
			if (c->parent != p)
				bad++;
			if (c->next && mime_part_end(c) > c->next->offset)
				bad++;
			n++;
		}
		if (p->kind == MIME_MESSAGE && n != 1)
			bad++;
		if (p->kind == MIME_LEAF && n != 0)
			bad++;
		for (j = 0; j < p->header.n; j++) {
			const struct header_field *f = &p->header.f[j];

			if (f->raw < m->data + p->offset ||
			    f->raw + f->raw_len > m->data + p->body_offset)
				bad++;
		}
		if (p->header_size != mime_crlf_size(m->data + p->offset, p->header_len, NULL))
			bad++;
		{
			size_t lines;

			if (p->body_size != mime_crlf_size(m->data + p->body_offset,
			    p->body_len, &lines) || lines != p->body_lines)
				bad++;
		}
	}
	return bad;
}

static const char simple[] =
    "From: Ann <ann@example.test>\n"
    "To: bob@example.test\n"
    "Subject: hi\n"
    "\n"
    "hello\n"
    "world\n";

static void
test_simple(void)
{
	struct mime_message *m = parse(simple);
	const struct mime_part *p = m->parts[0];

	is_int(m->nparts, 1, "simple: one part");
	ok(p->kind == MIME_LEAF && !p->parent && !p->child, "simple: a leaf root");
	is_str(p->type, "text", "simple: default type");
	is_str(p->subtype, "plain", "simple: default subtype");
	is_str(p->charset, "us-ascii", "simple: default charset");
	ok(p->cte == MIME_CTE_7BIT && !p->cte_name, "simple: default 7bit");
	is_int(p->header_len, 63, "simple: header length with the empty line");
	is_int(p->header_size, 67, "simple: header IMAP size");
	is_int(p->header_lines, 4, "simple: header lines");
	is_int(p->body_offset, 63, "simple: body offset");
	is_int(p->body_len, 12, "simple: body length");
	is_int(p->body_size, 14, "simple: body IMAP size");
	is_int(p->body_lines, 2, "simple: body lines");
	is_str(bodystructure(m, 1),
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2 NIL NIL NIL NIL)",
	    "simple: BODYSTRUCTURE");
	is_str(bodystructure(m, 0),
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2)",
	    "simple: BODY");
	is_str(envelope(p),
	    "(NIL \"hi\" ((\"Ann\" NIL \"ann\" \"example.test\")) ((\"Ann\" NIL \"ann\" \"example.test\")) "
	    "((\"Ann\" NIL \"ann\" \"example.test\")) ((NIL NIL \"bob\" \"example.test\")) NIL NIL NIL NIL)",
	    "simple: ENVELOPE, Sender and Reply-To from From");
	is_str(section(m, ""), "From: Ann <ann@example.test>\r\nTo: bob@example.test\r\n"
	    "Subject: hi\r\n\r\nhello\r\nworld\r\n", "simple: BODY[]");
	is_str(section(m, "1"), "hello\r\nworld\r\n", "simple: part 1 is the body");
	is_str(section(m, "TEXT"), "hello\r\nworld\r\n", "simple: TEXT");
	is_str(section(m, "HEADER"), "From: Ann <ann@example.test>\r\nTo: bob@example.test\r\n"
	    "Subject: hi\r\n\r\n", "simple: HEADER");
	is_str(section(m, "2"), "NOSECTION", "simple: no part 2");
	is_str(section(m, "1.1"), "NOSECTION", "simple: no part 1.1");
	is_str(section(m, "1.HEADER"), "NOSECTION", "simple: 1.HEADER needs message/rfc822");
	is_str(section(m, "MIME"), "NOSECTION", "simple: MIME needs a part number");
	is_str(section(m, "0"), "NOSECTION", "simple: no part 0");
	is_int(check_tree(m), 0, "simple: tree invariants");
	mime_free(&m);
	ok(m == NULL, "mime_free resets the pointer");
	mime_free(&m);
}

static const char nested[] =
    "From: Ann <ann@example.test>\n"
    "To: bob@example.test\n"
    "Subject: test\n"
    "Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
    "Message-ID: <m1@example.test>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\n"
    "\n"
    "This is the preamble.\n"
    "--outer\n"
    "Content-Type: multipart/alternative; boundary=alt\n"
    "\n"
    "--alt\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "caf=C3=A9\n"
    "--alt\n"
    "Content-Type: text/html; charset=utf-8\n"
    "\n"
    "<p>cafe</p>\n"
    "--alt--\n"
    "--outer\n"
    "Content-Type: message/rfc822\n"
    "Content-Description: forwarded\n"
    "Content-Disposition: inline\n"
    "\n"
    "From: Carl <carl@example.test>\n"
    "Subject: inner\n"
    "Content-Type: multipart/mixed; boundary=inner\n"
    "\n"
    "--inner\n"
    "Content-Type: text/plain\n"
    "\n"
    "inner text\n"
    "--inner\n"
    "Content-Type: application/octet-stream; name=x.bin\n"
    "Content-Transfer-Encoding: base64\n"
    "Content-Disposition: attachment; filename=\"x.bin\"\n"
    "\n"
    "AAECAw==\n"
    "--inner--\n"
    "--outer\n"
    "Content-Type: image/gif; name*0*=utf-8''%E2%82%AC; name*1=\".gif\"\n"
    "Content-ID: <gif1@example.test>\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    "Content-Language: en, de\n"
    "Content-Location: http://example.test/x.gif\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "R0lGODlh\n"
    "--outer--\n"
    "This is the epilogue.\n";

/* Dovecot 2.3.19 gives exactly this (compared case-insensitively). */
static const char nested_bs[] =
    "(((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 9 0 NIL NIL NIL NIL)"
    "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 11 0 NIL NIL NIL NIL) \"alternative\" "
    "(\"boundary\" \"alt\") NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL \"forwarded\" \"7bit\" 316 "
    "(NIL \"inner\" ((\"Carl\" NIL \"carl\" \"example.test\")) ((\"Carl\" NIL \"carl\" \"example.test\")) "
    "((\"Carl\" NIL \"carl\" \"example.test\")) NIL NIL NIL NIL NIL) ((\"text\" \"plain\" (\"charset\" "
    "\"us-ascii\") NIL NIL \"7bit\" 10 0 NIL NIL NIL NIL)(\"application\" \"octet-stream\" (\"name\" "
    "\"x.bin\") NIL NIL \"base64\" 8 NIL (\"attachment\" (\"filename\" \"x.bin\")) NIL NIL) \"mixed\" "
    "(\"boundary\" \"inner\") NIL NIL NIL) 15 NIL (\"inline\" NIL) NIL NIL)(\"image\" \"gif\" "
    "(\"name*\" \"utf-8''%E2%82%AC.gif\") \"<gif1@example.test>\" NIL \"base64\" 8 "
    "\"Q2hlY2sgSW50ZWdyaXR5IQ==\" NIL (\"en\" \"de\") \"http://example.test/x.gif\") \"mixed\" "
    "(\"boundary\" \"outer\") NIL NIL NIL)";

static const char nested_body[] =
    "(((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 9 0)"
    "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 11 0) \"alternative\")"
    "(\"message\" \"rfc822\" NIL NIL \"forwarded\" \"7bit\" 316 (NIL \"inner\" ((\"Carl\" NIL \"carl\" "
    "\"example.test\")) ((\"Carl\" NIL \"carl\" \"example.test\")) ((\"Carl\" NIL \"carl\" "
    "\"example.test\")) NIL NIL NIL NIL NIL) ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
    "\"7bit\" 10 0)(\"application\" \"octet-stream\" (\"name\" \"x.bin\") NIL NIL \"base64\" 8) "
    "\"mixed\") 15)(\"image\" \"gif\" (\"name*\" \"utf-8''%E2%82%AC.gif\") \"<gif1@example.test>\" "
    "NIL \"base64\" 8) \"mixed\")";

static void
test_nested(void)
{
	struct mime_message *m = parse(nested);
	const struct mime_part *p;
	const struct mime_param *pa;
	struct buf crlf = BUF_INIT;
	struct mime_message *mc;
	size_t i;
	int same = 1;

	is_int(m->nparts, 9, "nested: nine parts");
	is_int(check_tree(m), 0, "nested: tree invariants");
	is_str(bodystructure(m, 1), nested_bs, "nested: BODYSTRUCTURE");
	is_str(bodystructure(m, 0), nested_body, "nested: BODY");
	is_str(envelope(m->parts[0]),
	    "(\"Mon, 1 Jan 2024 00:00:00 +0000\" \"test\" ((\"Ann\" NIL \"ann\" \"example.test\")) "
	    "((\"Ann\" NIL \"ann\" \"example.test\")) ((\"Ann\" NIL \"ann\" \"example.test\")) "
	    "((NIL NIL \"bob\" \"example.test\")) NIL NIL NIL \"<m1@example.test>\")",
	    "nested: ENVELOPE");

	p = m->parts[4];
	ok(p->kind == MIME_MESSAGE && p->child == m->parts[5], "nested: message/rfc822 has the message as child");
	ok(p->child->kind == MIME_MULTIPART && p->child->child == m->parts[6], "nested: its multipart body");
	is_int(p->body_offset, p->child->offset, "nested: the child starts at the body");
	is_int(mime_part_end(p), mime_part_end(p->child), "nested: and ends with it");
	is_str(p->description, "forwarded", "nested: Content-Description");
	is_str(p->disposition, "inline", "nested: Content-Disposition");
	is_str(m->parts[2]->cte_name, "quoted-printable", "nested: Content-Transfer-Encoding");
	ok(m->parts[2]->cte == MIME_CTE_QP, "nested: QP");
	is_str(m->parts[2]->charset, "utf-8", "nested: charset parameter");

	p = m->parts[8];
	is_str(p->id, "<gif1@example.test>", "nested: Content-ID");
	is_str(p->md5, "Q2hlY2sgSW50ZWdyaXR5IQ==", "nested: Content-MD5");
	is_str(p->location, "http://example.test/x.gif", "nested: Content-Location");
	ok(p->nlanguage == 2 && strcmp(p->language[0], "en") == 0 &&
	    strcmp(p->language[1], "de") == 0, "nested: Content-Language list");
	pa = mime_param_get(p->params, p->nparams, "NAME");
	ok(pa && pa->extended, "nested: RFC 2231 continuation merged");
	is_str(pa ? pa->value : NULL, "\xe2\x82\xac.gif", "nested: decoded value");
	is_str(pa ? pa->charset : NULL, "utf-8", "nested: its charset");
	is_str(pa ? pa->wire : NULL, "utf-8''%E2%82%AC.gif", "nested: wire form (plain section kept)");
	ok(p->charset == NULL, "nested: no charset for image/gif");

	is_str(section(m, "1"), "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n--alt\r\n"
	    "Content-Type: text/html; charset=utf-8\r\n\r\n<p>cafe</p>\r\n--alt--\r\n",
	    "nested: 1 is the multipart's body (with its close line's end, as Dovecot)");
	is_str(section(m, "1.1"), "caf=C3=A9", "nested: 1.1 ends before the delimiter's line end");
	is_str(section(m, "1.2"), "<p>cafe</p>", "nested: 1.2");
	is_str(section(m, "1.1.MIME"), "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n", "nested: 1.1.MIME");
	is_str(section(m, "1.3"), "NOSECTION", "nested: no 1.3");
	is_str(section(m, "2.HEADER"), "From: Carl <carl@example.test>\r\nSubject: inner\r\n"
	    "Content-Type: multipart/mixed; boundary=inner\r\n\r\n",
	    "nested: 2.HEADER is the encapsulated header");
	is_str(section(m, "2.MIME"), "Content-Type: message/rfc822\r\nContent-Description: forwarded\r\n"
	    "Content-Disposition: inline\r\n\r\n", "nested: 2.MIME is the part's own header");
	is_str(section(m, "2.1"), "inner text", "nested: 2.1 inside the encapsulated multipart");
	is_str(section(m, "2.2"), "AAECAw==", "nested: 2.2");
	is_str(section(m, "2.2.MIME"), "Content-Type: application/octet-stream; name=x.bin\r\n"
	    "Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"x.bin\"\r\n\r\n",
	    "nested: 2.2.MIME");
	ok(strncmp(section(m, "2.TEXT"), "--inner\r\n", 9) == 0, "nested: 2.TEXT is the encapsulated body");
	ok(strncmp(section(m, "2"), "From: Carl", 10) == 0, "nested: 2 is the whole message");
	is_str(section(m, "3"), "R0lGODlh", "nested: 3");
	is_str(section(m, "3.HEADER"), "NOSECTION", "nested: 3.HEADER on image/gif");
	is_str(section(m, "4"), "NOSECTION", "nested: no part 4");
	ok(strncmp(section(m, "TEXT"), "This is the preamble.\r\n", 23) == 0, "nested: TEXT has the preamble");
	{
		const char *t = section(m, "TEXT");
		size_t n = strlen(t);

		ok(n > 25 && strcmp(t + n - 25, "\r\nThis is the epilogue.\r\n") == 0,
		    "nested: TEXT has the epilogue");
	}
	{
		struct buf d = BUF_INIT;

		is_int(mime_part_decode(m, m->parts[2], &d), 0, "nested: decode QP part");
		is_str(buf_str(&d), "caf\xc3\xa9", "nested: QP decoded");
		buf_reset(&d);
		is_int(mime_part_decode(m, m->parts[7], &d), 0, "nested: decode base64 part");
		ok(d.len == 4 && memcmp(d.data, "\0\1\2\3", 4) == 0, "nested: base64 decoded");
		buf_reset(&d);
		is_int(mime_part_decode(m, m->parts[3], &d), 0, "nested: decode 7bit part");
		is_str(buf_str(&d), "<p>cafe</p>", "nested: 7bit copied");
		buf_free(&d);
	}

	/* the same message with CRLF: same IMAP sizes and strings */
	for (i = 0; nested[i]; i++) {
		if (nested[i] == '\n')
			buf_addc(&crlf, '\r');
		buf_addc(&crlf, nested[i]);
	}
	mc = mime_parse(crlf.data, crlf.len, NULL);
	is_int(mc->nparts, m->nparts, "nested CRLF: same part count");
	for (i = 0; i < m->nparts && i < mc->nparts; i++) {
		const struct mime_part *a = m->parts[i], *b = mc->parts[i];

		if (a->header_size != b->header_size || a->body_size != b->body_size ||
		    a->header_lines != b->header_lines || a->body_lines != b->body_lines ||
		    b->header_size != b->header_len || b->body_size != b->body_len)
			same = 0;
	}
	ok(same, "nested CRLF: IMAP sizes equal, and equal to the raw CRLF sizes");
	ok(m->parts[8]->body_len != mc->parts[8]->body_len || m->parts[8]->offset != mc->parts[8]->offset,
	    "nested CRLF: raw offsets differ");
	is_str(bodystructure(mc, 1), nested_bs, "nested CRLF: same BODYSTRUCTURE");
	is_int(check_tree(mc), 0, "nested CRLF: tree invariants");
	mime_free(&mc);
	buf_free(&crlf);
	mime_free(&m);
}

static void
test_params(void)
{
	struct mime_message *m;
	const struct mime_part *p;
	const struct mime_param *pa;

	/* RFC 2231 section 4.1's example, and charset conversion */
	m = parse("Content-Type: application/x-stuff;\n"
	    " title*0*=us-ascii'en'This%20is%20even%20more%20;\n"
	    " title*1*=%2A%2A%2Afun%2A%2A%2A%20; title*2=\"isn't it!\"\n"
	    "Content-Disposition: attachment; filename*=iso-8859-1''caf%E9.txt; size=10\n\nx\n");
	p = m->parts[0];
	pa = mime_param_get(p->params, p->nparams, "title");
	is_str(pa ? pa->value : NULL, "This is even more ***fun*** isn't it!", "2231: continuations");
	is_str(pa ? pa->language : NULL, "en", "2231: language");
	is_str(pa ? pa->charset : NULL, "us-ascii", "2231: charset");
	pa = mime_param_get(p->disp_params, p->ndisp_params, "filename");
	is_str(pa ? pa->value : NULL, "caf\xc3\xa9.txt", "2231: latin-1 to UTF-8");
	is_str(pa ? pa->wire : NULL, "iso-8859-1''caf%E9.txt", "2231: wire form");
	is_str(bodystructure(m, 1), "(\"application\" \"x-stuff\" (\"title*\" \"us-ascii'en'This%20is%20even"
	    "%20more%20%2A%2A%2Afun%2A%2A%2A%20isn't it!\") NIL NIL \"7bit\" 3 NIL (\"attachment\" "
	    "(\"filename*\" \"iso-8859-1''caf%E9.txt\" \"size\" \"10\")) NIL NIL)",
	    "2231: BODYSTRUCTURE keeps the encoded form under name* (Dovecot lists name* last)");
	mime_free(&m);

	/* a gap in the numbering: kept apart, as Dovecot does */
	m = parse("Content-Type: application/pdf; name*0=a; name*2=b; x*1=y\n\n");
	p = m->parts[0];
	ok(p->nparams == 3 && strcmp(p->params[0].name, "name*0") == 0 &&
	    strcmp(p->params[1].name, "name*2") == 0 && strcmp(p->params[2].name, "x*1") == 0,
	    "2231: sections with gaps kept under their own names");
	mime_free(&m);

	/* sections out of order, plain only; a repeated section */
	m = parse("Content-Type: text/plain; n*1=\"b c\"; n*0=a; d*0=1; d*0=2\n\n");
	p = m->parts[0];
	pa = mime_param_get(p->params, p->nparams, "n");
	is_str(pa ? pa->value : NULL, "ab c", "2231: plain sections merged in order");
	ok(pa && !pa->extended && !pa->wire, "2231: not extended");
	ok(mime_param_get(p->params, p->nparams, "d*0") != NULL, "2231: repeated section kept apart");
	mime_free(&m);

	/* odd parameter syntax */
	m = parse("Content-Type: TEXT/Plain (comment) ; CHARSET = \"UTF-8\" ; name=a/b=c.txt ;;"
	    " junk ; x=\"q\\\"uote\" ; =v ; y\n\n");
	p = m->parts[0];
	is_str(p->type, "text", "params: type lower-cased");
	is_str(p->subtype, "plain", "params: subtype lower-cased");
	is_str(p->charset, "UTF-8", "params: value kept, name case-insensitive");
	pa = mime_param_get(p->params, p->nparams, "name");
	is_str(pa ? pa->value : NULL, "a/b=c.txt", "params: lenient unquoted value");
	pa = mime_param_get(p->params, p->nparams, "x");
	is_str(pa ? pa->value : NULL, "q\"uote", "params: quoted-pair");
	is_int(p->nparams, 3, "params: junk skipped");
	is_str(bodystructure(m, 0), "(\"text\" \"plain\" (\"charset\" \"UTF-8\" \"name\" \"a/b=c.txt\" "
	    "\"x\" \"q\\\"uote\") NIL NIL \"7bit\" 0 0)", "params: quoting in BODY");
	mime_free(&m);

	/* percent-encoded NUL and a bad escape; unknown charset */
	m = parse("Content-Type: application/x; a*=x-unknown''%00ok%zz%C3%A9\n\n");
	pa = mime_param_get(m->parts[0]->params, m->parts[0]->nparams, "a");
	is_str(pa ? pa->value : NULL, "ok%zz\xc3\xa9", "2231: NUL dropped, bad escape kept, unknown charset as UTF-8");
	mime_free(&m);

	/* no charset: the default is added after the others (as Dovecot) */
	m = parse("Content-Type: text/plain; format=flowed\n\nx");
	is_str(bodystructure(m, 0), "(\"text\" \"plain\" (\"format\" \"flowed\" \"charset\" \"us-ascii\") "
	    "NIL NIL \"7bit\" 1 0)", "params: default charset appended");
	mime_free(&m);
}

static const char *
bs_of(const char *msg)
{
	struct mime_message *m = parse(msg);
	static struct buf keep = BUF_INIT;

	buf_reset(&keep);
	mime_imap_bodystructure(m->parts[0], 0, &keep);
	if (check_tree(m))
		buf_adds(&keep, " BROKEN TREE");
	mime_free(&m);
	return buf_str(&keep);
}

#define TP "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" "

static void
test_malformed(void)
{
	struct mime_message *m;
	const char *s;

	/* every one of these BODY strings is Dovecot's unless noted */
	is_str(bs_of("Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n"
	    "Content-Type: text/html\n\ntwo\n"),
	    "(" TP "3 0)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 1) \"mixed\")",
	    "no close delimiter: the last part runs to the end");
	m = parse("Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n");
	ok(m->parts[0]->flags & MIME_PART_UNCLOSED, "no close delimiter: flagged");
	mime_free(&m);
	is_str(bs_of("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/mixed;"
	    " boundary=c\n\n--c\n\nc1\n--b\n\nb2\n--b--\n"),
	    "((" TP "2 0) \"mixed\")" TP "2 0) \"mixed\")",
	    "an outer delimiter ends an unclosed inner multipart");
	is_str(bs_of("Content-Type: multipart/mixed; boundary=ab\n\n--ab\nContent-Type: multipart/mixed;"
	    " boundary=abc\n\n--abc\n\nx\n--abc\n\ny\n--ab\n\nz\n--ab--\n"),
	    "((" TP "1 0)" TP "1 0) \"mixed\")" TP "1 0) \"mixed\")",
	    "the parent's boundary a prefix of the child's");
	is_str(bs_of("Content-Type: multipart/mixed; boundary=abc\n\n--abc\nContent-Type: multipart/mixed;"
	    " boundary=ab\n\n--ab\n\nx\n--abc\n\ny\n--abc--\n"),
	    "((" TP "1 0) \"mixed\")" TP "1 0) \"mixed\")",
	    "the child's boundary a prefix of the parent's: the longer match wins");
	is_str(bs_of("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/mixed;"
	    " boundary=b\n\n--b\n\nx\n--b--\n\n--b\n\ny\n--b--\n"),
	    "((" TP "1 0) \"mixed\")" TP "1 0) \"mixed\")",
	    "the same boundary nested: the innermost wins");
	is_str(bs_of("Content-Type: multipart/mixed; boundary=b\n\n--b  \t\n\none\n--b \n"
	    "Content-Type: text/html\n\ntwo\n--b--   \n"),
	    "(" TP "3 0)(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0) \"mixed\")",
	    "white space after delimiters");
	is_str(bs_of("Content-Type: multipart/mixed; boundary=b\n\n--bxyz\n\none\n--b--junk\nepi\n"),
	    "(" TP "3 0) \"mixed\")", "junk after a delimiter: a prefix match still counts (as Dovecot)");
	m = parse("Content-Type: multipart/mixed; boundary=b\n\npre1\npre2\n--b\n\none\n--b--\nepi1\nepi2\n");
	is_str(section(m, "1"), "one", "preamble and epilogue are not parts");
	is_str(section(m, "TEXT"), "pre1\r\npre2\r\n--b\r\n\r\none\r\n--b--\r\nepi1\r\nepi2\r\n",
	    "preamble and epilogue in the multipart's body");
	is_int(m->nparts, 2, "preamble and epilogue: two parts");
	mime_free(&m);

	/* NUL bytes: in the body kept; in a header read as 0x80 (Dovecot) */
	{
		static const char nul[] = "Subject: a\0b\nContent-Type: multipart/mixed; boundary=b\n\n"
		    "--b\n\no\0ne\n--b--\n";
		struct buf d = BUF_INIT;

		m = mime_parse(nul, sizeof(nul) - 1, NULL);
		is_int(m->nparts, 2, "NUL in a header does not hide the fields after it");
		is_str(m->parts[0]->header.f[0].value, "a\x80" "b", "NUL in a header value is 0x80");
		is_int(m->parts[1]->body_len, 4, "NUL in a body is content");
		ok(strcmp(envelope(m->parts[0]), "(NIL {3}\r\na\x80" "b NIL NIL NIL NIL NIL NIL NIL NIL)") == 0,
		    "NUL in ENVELOPE: a literal");
		mime_crlf_append(&d, m->data + m->parts[1]->body_offset, m->parts[1]->body_len);
		ok(d.len == 4 && memcmp(d.data, "o\x80ne", 4) == 0, "NUL sent as 0x80");
		is_int(check_tree(m), 0, "NUL: tree invariants");
		buf_free(&d);
		mime_free(&m);
	}

	/* long lines, 8-bit */
	{
		struct buf b = BUF_INIT;
		size_t i;

		buf_adds(&b, "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n");
		for (i = 0; i < 200000; i++)
			buf_addc(&b, i % 80 ? 'x' : '-');
		buf_adds(&b, "\n--b\nContent-Type: text/plain; charset=iso-8859-1\n\ncaf\xe9\n--b--\n");
		m = mime_parse(b.data, b.len, NULL);
		is_int(m->nparts, 3, "a 200000-byte line");
		is_int(m->parts[1]->body_len, 200000, "the long line is the body");
		is_int(m->parts[2]->body_len, 4, "8-bit body");
		is_int(check_tree(m), 0, "long line: tree invariants");
		mime_free(&m);
		buf_free(&b);
	}

	/* no final line end, empty message, header only */
	is_str(bs_of("Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b--"),
	    "(" TP "3 0) \"mixed\")", "no final line end after the close delimiter");
	is_str(bs_of("Subject: x\n\nbody"), TP "4 0)", "no final line end in the body");
	m = mime_parse("", 0, NULL);
	is_int(m->nparts, 1, "empty message: one part");
	ok(m->parts[0]->header_len == 0 && m->parts[0]->body_len == 0, "empty message: empty");
	is_str(bodystructure(m, 1), TP "0 0 NIL NIL NIL NIL)", "empty message: BODYSTRUCTURE");
	is_str(envelope(m->parts[0]), "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)", "empty message: ENVELOPE");
	is_str(section(m, "1"), "", "empty message: part 1 is empty");
	mime_free(&m);
	m = mime_parse(NULL, 5, NULL);
	ok(m->len == 0 && m->nparts == 1, "NULL buffer is an empty message");
	mime_free(&m);
	m = parse("Subject: x\nFrom: a@b");
	is_int(m->parts[0]->header_len, 20, "header only: all header");
	is_int(m->parts[0]->body_len, 0, "header only: no body");
	is_str(section(m, "HEADER"), "Subject: x\r\nFrom: a@b", "header only: HEADER as it is");
	mime_free(&m);

	/* a delimiter inside a part's header section ends the part there */
	m = parse("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\n--b\n"
	    "Content-Type: text/plain\n\nx\n--b--\n");
	is_str(section(m, "1.MIME"), "Content-Type: text/html", "delimiter after a header: it takes the line end");
	is_str(section(m, "2"), "x", "delimiter after a header: next part");
	mime_free(&m);
	m = parse("Content-Type: multipart/mixed; boundary=\"a:b\"\n\n--a:b\nContent-Type: text/html\n"
	    "--a:b\nContent-Type: text/plain\n\nx\n--a:b--\n");
	is_int(m->nparts, 3, "a delimiter that looks like a field (\"--a:b\") is a delimiter");
	is_int(m->parts[1]->header.n, 1, "... and not a field of the part before");
	mime_free(&m);
	m = parse("Content-Type: multipart/mixed; boundary=b\n\n--b\nX-A: 1\n\n--b\n\n--b\n\n\n--b\n\nx\n--b--\n");
	is_str(section(m, "1.MIME"), "X-A: 1\r\n", "empty body: the empty line goes to the delimiter (Dovecot)");
	is_str(section(m, "2.MIME"), "", "empty part: nothing");
	is_str(section(m, "3.MIME"), "\r\n", "two line ends: one each");
	is_str(section(m, "4"), "x", "and a body");
	ok(!m->parts[1]->header.has_blank, "a header that lost its empty line says so");
	mime_free(&m);

	/* multipart/digest: message/rfc822 by default */
	m = parse("Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: d1\n\nbody1\n--d\n"
	    "Content-Type: text/plain\n\nplain\n--d--\n");
	ok(m->parts[1]->kind == MIME_MESSAGE && strcmp(m->parts[1]->type, "message") == 0,
	    "digest: default message/rfc822");
	is_str(section(m, "1.HEADER"), "Subject: d1\r\n\r\n", "digest: 1.HEADER");
	is_str(section(m, "1.1"), "body1", "digest: 1.1 is the body of the message");
	ok(m->parts[3]->kind == MIME_LEAF, "digest: explicit text/plain");
	mime_free(&m);

	/* boundary problems: the part is text/plain (deliberately unlike
	 * Dovecot, which shows an empty multipart and hides the body) */
	s = "Content-Type: multipart/mixed\n\n--b\n\none\n--b--\n";
	is_str(bs_of(s), TP "19 4)", "no boundary parameter: text/plain");
	m = parse(s);
	ok(m->parts[0]->flags & MIME_PART_NO_BOUNDARY, "no boundary: flagged");
	is_str(section(m, "1"), "--b\r\n\r\none\r\n--b--\r\n", "no boundary: the body is part 1");
	mime_free(&m);
	is_str(bs_of("Content-Type: multipart/mixed; boundary=\"\"\n\n--\n\none\n----\n"), TP "17 4)",
	    "empty boundary: text/plain");
	{
		struct buf b = BUF_INIT;

		buf_printf(&b, "Content-Type: multipart/mixed; boundary=%071d\n\n--%071d\n\none\n", 0, 0);
		is_str(bs_of(b.data), TP "82 3)", "boundary of 71 bytes: text/plain");
		buf_reset(&b);
		buf_printf(&b, "Content-Type: multipart/mixed; boundary=%070d\n\n--%070d\n\none\n", 0, 0);
		is_str(bs_of(b.data), "(" TP "5 1) \"mixed\")", "boundary of 70 bytes: fine");
		buf_free(&b);
	}
	is_str(bs_of("Content-Type: multipart/mixed; boundary=b\n\n--b--\n--b\n\nafter\n"),
	    "(" TP "0 0) \"mixed\")", "close first: no parts, an empty one shown (as Dovecot)");
	is_str(bs_of("Content-Type: multipart/alternative; boundary=b\n\nno delimiter at all\n"),
	    "(" TP "0 0) \"alternative\")", "no delimiter: no parts");
	is_str(bs_of("Content-Type: text\n\none"), TP "3 0)",
	    "invalid Content-Type: text/plain (Dovecot shows \"text\" \"\")");
	m = parse("Content-Type: garbage\n\none");
	ok((m->parts[0]->flags & MIME_PART_BAD_TYPE) && strcmp(m->parts[0]->subtype, "plain") == 0,
	    "invalid Content-Type: flagged, defaulted");
	mime_free(&m);
	is_str(bs_of("Content-Type: text/html\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\n"),
	    "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 17 4)", "the first Content-Type counts");

	/* CR-only line ends: one long line, no structure (as Dovecot) */
	m = parse("Content-Type: multipart/mixed; boundary=b\r\r--b\r\rone\r--b--\r");
	is_int(m->nparts, 1, "CR only: no line ends, one part");
	is_int(m->parts[0]->body_len, 0, "CR only: all header");
	is_int(check_tree(m), 0, "CR only: tree invariants");
	mime_free(&m);

	/* mixed line ends: sizes count each bare LF once */
	m = parse("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\nnone\r\n--b\n"
	    "Content-Type: text/html\r\n\r\ntwo\r\n\r\n--b--\r\n");
	is_str(section(m, "1"), "none", "mixed line ends: 1");
	is_str(section(m, "2"), "two\r\n", "mixed line ends: 2");
	is_int(m->parts[2]->body_size, 5, "mixed line ends: size");
	mime_free(&m);

	/* message/rfc822 at the top and empty ones */
	m = parse("Subject: outer\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner body\n");
	is_str(section(m, "1"), "Subject: inner\r\n\r\ninner body\r\n", "top message/rfc822: 1 is the message");
	is_str(section(m, "1.HEADER"), "Subject: inner\r\n\r\n", "top message/rfc822: 1.HEADER");
	is_str(section(m, "1.TEXT"), "inner body\r\n", "top message/rfc822: 1.TEXT");
	is_str(section(m, "1.1"), "inner body\r\n", "top message/rfc822: 1.1 is the inner body");
	is_str(section(m, "TEXT"), "Subject: inner\r\n\r\ninner body\r\n", "top message/rfc822: TEXT");
	mime_free(&m);
	m = parse("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\n"
	    "--b\nContent-Type: message/rfc822\n--b--\n");
	is_int(m->nparts, 5, "empty message/rfc822 parts still have their message");
	is_str(bodystructure(m, 0), "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 0 (NIL NIL NIL NIL NIL NIL "
	    "NIL NIL NIL NIL) " TP "0 0) 0)(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 0 (NIL NIL NIL NIL NIL "
	    "NIL NIL NIL NIL NIL) " TP "0 0) 0) \"mixed\")", "empty message/rfc822: BODY");
	is_int(check_tree(m), 0, "empty message/rfc822: tree invariants");
	mime_free(&m);
}

static void
test_limits(void)
{
	struct mime_limits lim = MIME_LIMITS_DEFAULT;
	struct mime_message *m;
	struct buf b = BUF_INIT;
	size_t i;

	is_int(lim.max_depth, 100, "default depth 100");
	is_int(lim.max_parts, 10000, "default parts 10000");
	is_int(lim.max_boundary, 70, "default boundary 70");

	/* depth: levels 1..3; the container at level 3 is kept whole */
	lim.max_depth = 3;
	buf_adds(&b, "Content-Type: multipart/mixed; boundary=a\n\n--a\n"
	    "Content-Type: message/rfc822\n\n"
	    "Content-Type: multipart/mixed; boundary=c\n\n--c\n\ndeep\n--c--\n--a--\n");
	m = mime_parse(b.data, b.len, &lim);
	is_int(m->nparts, 3, "depth limit: three levels");
	ok(m->parts[2]->flags & MIME_PART_OPAQUE, "depth limit: the third level is opaque");
	is_str(m->parts[2]->type, "application", "depth limit: shown as application/octet-stream (Dovecot)");
	ok(m->limited, "depth limit: limited");
	is_str(section(m, "1.1"), "--c\r\n\r\ndeep\r\n--c--", "depth limit: the content is kept");
	is_int(check_tree(m), 0, "depth limit: tree invariants");
	mime_free(&m);

	/* parts: after the limit the rest is the last part's */
	lim = (struct mime_limits)MIME_LIMITS_DEFAULT;
	lim.max_parts = 3;
	buf_reset(&b);
	buf_adds(&b, "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n1\n--b\n\n2\n--b\n\n3\n--b--\nepi\n");
	m = mime_parse(b.data, b.len, &lim);
	is_int(m->nparts, 3, "part limit: three parts");
	is_str(section(m, "2"), "2\r\n--b\r\n\r\n3\r\n--b--\r\nepi\r\n", "part limit: the rest is the last part");
	ok(m->parts[0]->flags & MIME_PART_LIMIT, "part limit: flagged");
	is_int(check_tree(m), 0, "part limit: tree invariants");
	mime_free(&m);
	lim.max_parts = 1;
	buf_reset(&b);
	buf_adds(&b, "Content-Type: message/rfc822\n\nSubject: x\n\n");
	m = mime_parse(b.data, b.len, &lim);
	ok(m->nparts == 1 && (m->parts[0]->flags & MIME_PART_OPAQUE), "part limit 1: message/rfc822 opaque");
	mime_free(&m);

	/* header section size */
	lim = (struct mime_limits)MIME_LIMITS_DEFAULT;
	lim.max_header = 40;
	buf_reset(&b);
	buf_adds(&b, "Subject: 1234567890\nContent-Type: text/html\n\nbody\n");
	m = mime_parse(b.data, b.len, &lim);
	ok(m->parts[0]->flags & MIME_PART_HEADER_CUT, "header limit: cut");
	is_int(m->parts[0]->header_len, 20, "header limit: the fields that fit");
	is_str(m->parts[0]->subtype, "plain", "header limit: Content-Type beyond it is body");
	is_str(section(m, "TEXT"), "Content-Type: text/html\r\n\r\nbody\r\n", "header limit: kept as body");
	mime_free(&m);

	/* boundary length */
	lim = (struct mime_limits)MIME_LIMITS_DEFAULT;
	lim.max_boundary = 3;
	buf_reset(&b);
	buf_adds(&b, "Content-Type: multipart/mixed; boundary=abcd\n\n--abcd\n\nx\n--abcd--\n");
	m = mime_parse(b.data, b.len, &lim);
	ok(m->nparts == 1 && (m->parts[0]->flags & MIME_PART_NO_BOUNDARY), "boundary limit: text/plain");
	mime_free(&m);

	/* Dovecot's depth cut: 103 nested multiparts, the 100th is opaque
	 * (boundaries that are no prefixes of each other: b1 and b10 are) */
	buf_reset(&b);
	for (i = 0; i < 103; i++)
		buf_printf(&b, "Content-Type: multipart/mixed; boundary=b%zu=\n\n--b%zu=\n", i, i);
	buf_adds(&b, "Content-Type: text/plain\n\nleaf\n");
	for (i = 103; i-- > 0; )
		buf_printf(&b, "--b%zu=--\n", i);
	m = mime_parse(b.data, b.len, NULL);
	is_int(m->nparts, 100, "default depth: 100 levels");
	ok(m->parts[99]->flags & MIME_PART_OPAQUE, "default depth: level 100 opaque");
	is_int(check_tree(m), 0, "default depth: tree invariants");
	mime_free(&m);

	/* zero limits are taken as 1; depth is capped */
	memset(&lim, 0, sizeof(lim));
	lim.max_depth = 1000000;
	m = mime_parse(b.data, b.len, &lim);
	is_int(m->limits.max_parts, 1, "zero part limit is 1");
	is_int(m->limits.max_depth, MIME_DEPTH_HARD_MAX, "depth capped");
	is_int(m->nparts, 1, "one part");
	mime_free(&m);
	buf_free(&b);
}

static void
test_envelope(void)
{
	struct mime_message *m;

	m = parse("From: \"Joe Q. Public\" <john.q.public@example.com>\n"
	    "To: Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>\n"
	    "Cc: <boss@nil.test>, \"Giant; \\\"Big\\\" Box\" <sysservices@example.net>\n"
	    "Bcc: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;, Undisclosed recipients:;\n"
	    "Reply-To: Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>\n"
	    "Sender: Mary <mary@x.test>\n"
	    "In-Reply-To: <a@b>\n\nx\n");
	is_str(envelope(m->parts[0]),
	    "(NIL NIL ((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\")) ((\"Mary\" NIL \"mary\" "
	    "\"x.test\")) ((\"Pete\" NIL \"pete\" \"silly.test\")) ((\"Mary Smith\" NIL \"mary\" \"x.test\")"
	    "(NIL NIL \"jdoe\" \"example.org\")(\"Who?\" NIL \"one\" \"y.test\")) ((NIL NIL \"boss\" "
	    "\"nil.test\")(\"Giant; \\\"Big\\\" Box\" NIL \"sysservices\" \"example.net\")) ((NIL NIL "
	    "\"A Group\" NIL)(\"Ed Jones\" NIL \"c\" \"a.test\")(NIL NIL \"joe\" \"where.test\")(\"John\" "
	    "NIL \"jdoe\" \"one.test\")(NIL NIL NIL NIL)(NIL NIL \"Undisclosed recipients\" NIL)(NIL NIL "
	    "NIL NIL)) \"<a@b>\" NIL)", "ENVELOPE: RFC 5322 appendix A addresses, groups (as Dovecot)");
	mime_free(&m);

	m = parse("Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\n"
	    "From: \"Fred \\\"the\\\" Foobar\" <foobar@Blurdybloop.example>\n"
	    "Subject: =?utf-8?Q?caf=C3=A9?= \"quoted\" \\ back\n"
	    "To: mooch@owatagu.example, Group: a@b.c, \"x y\" <c@d.e>;, undisclosed-recipients:;\n"
	    "Cc: foo, <@r1,@r2:u@h>, u2@h2 (Comment Name), \"quoted local\"@h3, [bad\n"
	    "Bcc:\nReply-To: \n"
	    "Message-Id: <B27397-0100000@Blurdybloop.example> (c)\n"
	    "In-Reply-To: <x@y> <z@w>\n"
	    "Sender: Name <s@s.s>\n\nbody\n");
	is_str(envelope(m->parts[0]),
	    "(\"Mon, 7 Feb 1994 21:52:25 -0800 (PST)\" \"=?utf-8?Q?caf=C3=A9?= \\\"quoted\\\" \\\\ back\" "
	    "((\"Fred \\\"the\\\" Foobar\" NIL \"foobar\" \"Blurdybloop.example\")) ((\"Name\" NIL \"s\" "
	    "\"s.s\")) ((\"Fred \\\"the\\\" Foobar\" NIL \"foobar\" \"Blurdybloop.example\")) ((NIL NIL "
	    "\"mooch\" \"owatagu.example\")(NIL NIL \"Group\" NIL)(NIL NIL \"a\" \"b.c\")(\"x y\" NIL \"c\" "
	    "\"d.e\")(NIL NIL NIL NIL)(NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) ((NIL NIL "
	    "\"foo\" \"MISSING_DOMAIN\")(NIL \"@r1,@r2\" \"u\" \"h\")(\"Comment Name\" NIL \"u2\" \"h2\")"
	    "(NIL NIL \"quoted local\" \"h3\")(NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) NIL "
	    "\"<x@y> <z@w>\" \"<B27397-0100000@Blurdybloop.example> (c)\")",
	    "ENVELOPE: escapes, encoded-words as they are, routes, comments as names, empty Reply-To "
	    "(same as Dovecot, which sends literals instead of escapes)");
	mime_free(&m);

	m = parse("From: caf\xc3\xa9 <a@b>\nSubject: first\nSubject: second\n"
	    "To: a@b (c (nested) d) , \"\" <e@f>, g@[1.2.3.4], @h, i@, (only a comment)\n\n");
	is_str(envelope(m->parts[0]),
	    "(NIL \"first\" (({5}\r\ncaf\xc3\xa9 NIL \"a\" \"b\")) (({5}\r\ncaf\xc3\xa9 NIL \"a\" \"b\")) "
	    "(({5}\r\ncaf\xc3\xa9 NIL \"a\" \"b\")) ((\"c (nested) d\" NIL \"a\" \"b\")(NIL NIL \"e\" \"f\")"
	    "(NIL NIL \"g\" \"[1.2.3.4]\")(NIL NIL \"MISSING_MAILBOX\" \"h\")(NIL NIL \"i\" "
	    "\"MISSING_DOMAIN\")) NIL NIL NIL NIL)",
	    "ENVELOPE: 8-bit as literals, the first Subject (Dovecot takes the last), broken addresses");
	mime_free(&m);

	m = parse("From: a:b@c\nTo: \"foo:bar\" <a@b>, <@a b@c>, =?utf-8?q?x?= <x@y>, \"unclosed <q@r>\n"
	    "Cc: (c1) a@b (c2), Name (cmt) <n@m>\n\n");
	is_str(envelope(m->parts[0]),
	    "(NIL NIL ((NIL NIL \"a\" NIL)(NIL NIL \"b\" \"c\")(NIL NIL NIL NIL)) ((NIL NIL \"a\" NIL)"
	    "(NIL NIL \"b\" \"c\")(NIL NIL NIL NIL)) ((NIL NIL \"a\" NIL)(NIL NIL \"b\" \"c\")(NIL NIL "
	    "NIL NIL)) ((\"foo:bar\" NIL \"a\" \"b\")(NIL \"INVALID_ROUTE\" \"b\" \"c\")"
	    "(\"=?utf-8?q?x?=\" NIL \"x\" \"y\")(NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) "
	    "((\"c2\" NIL \"a\" \"b\")(\"Name\" NIL \"n\" \"m\")) NIL NIL NIL)",
	    "ENVELOPE: a group without ';', a bad route, an unclosed quote (as Dovecot)");
	mime_free(&m);

	m = parse("From: a@b\nTo: ,,;, (x)\nCc: g: ;\nBcc: h:a@b\n\n");
	is_str(envelope(m->parts[0]),
	    "(NIL NIL ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) NIL "
	    "((NIL NIL \"g\" NIL)(NIL NIL NIL NIL)) ((NIL NIL \"h\" NIL)(NIL NIL \"a\" \"b\")(NIL NIL NIL NIL)) "
	    "NIL NIL)", "ENVELOPE: empty lists are NIL, an unclosed group is closed");
	mime_free(&m);
}

static void
test_strings(void)
{
	struct buf b = BUF_INIT;
	struct buf big = BUF_INIT;
	size_t i;

	mime_imap_string(&b, "a\"b\\c", 5);
	is_str(buf_str(&b), "\"a\\\"b\\\\c\"", "quoted with escapes");
	buf_reset(&b);
	mime_imap_string(&b, "", 0);
	is_str(buf_str(&b), "\"\"", "empty string");
	buf_reset(&b);
	mime_imap_string(&b, "a\r\nb", 4);
	is_str(buf_str(&b), "{4}\r\na\r\nb", "CR LF: literal");
	buf_reset(&b);
	mime_imap_string(&b, "\xc3\xa9", 2);
	is_str(buf_str(&b), "{2}\r\n\xc3\xa9", "8-bit: literal");
	buf_reset(&b);
	mime_imap_string(&b, "a\0b", 3);
	is_str(buf_str(&b), "\"ab\"", "NUL dropped");
	buf_reset(&b);
	mime_imap_nstring(&b, NULL);
	is_str(buf_str(&b), "NIL", "NULL is NIL");
	buf_reset(&b);
	for (i = 0; i < MIME_IMAP_QUOTED_MAX + 1; i++)
		buf_addc(&big, 'x');
	mime_imap_string(&b, big.data, big.len);
	ok(strncmp(b.data, "{1025}\r\nxxx", 11) == 0, "long: literal");
	buf_reset(&b);
	mime_imap_string(&b, big.data, big.len - 1);
	ok(b.data[0] == '"' && b.len == MIME_IMAP_QUOTED_MAX + 2, "up to the limit: quoted");
	buf_free(&b);
	buf_free(&big);
}

static void
test_decode(void)
{
	struct buf b = BUF_INIT;

	mime_base64_decode("aGVs bG8=\n!!d29y\r\nbGQ=", 22, &b);
	is_str(buf_str(&b), "helloworld", "base64: junk skipped, '=' ends a group");
	buf_reset(&b);
	mime_base64_decode("aGk=aGk=", 8, &b);
	is_str(buf_str(&b), "hihi", "base64: concatenated encodings");
	buf_reset(&b);
	mime_base64_decode("aGVsbG8", 7, &b);
	is_str(buf_str(&b), "hello", "base64: missing padding");
	buf_reset(&b);
	mime_base64_decode("a", 1, &b);
	is_int(b.len, 0, "base64: a lone sextet is nothing");
	buf_reset(&b);
	mime_base64_decode("", 0, &b);
	is_int(b.len, 0, "base64: empty");

	buf_reset(&b);
	{
		static const char qp[] = "soft=\nbreak =3D =xx =4 end  \ncrlf=\r\nx=  \nq=C3=a9\t\r\nlast=";

		mime_qp_decode(qp, sizeof(qp) - 1, &b);
	}
	is_str(buf_str(&b), "softbreak = =xx =4 end\ncrlfxq\xc3\xa9\r\nlast",
	    "QP: soft breaks, bad escapes kept, lower-case hex, trailing white space removed");
	buf_reset(&b);
	mime_qp_decode("a =\r\n b", 7, &b);
	is_str(buf_str(&b), "a  b", "QP: white space before a soft break is content");
	buf_reset(&b);
	{
		static const char crlf_end[] = "x\r";

		mime_qp_decode(crlf_end, 2, &b);
		is_str(buf_str(&b), "x\r", "QP: a lone CR stays");
	}

	{
		struct mime_message *m = parse("Content-Transfer-Encoding: x-uuencode\n\nbegin\n");

		buf_reset(&b);
		buf_adds(&b, "keep");
		is_int(mime_part_decode(m, m->parts[0], &b), -1, "unknown encoding: -1");
		is_str(buf_str(&b), "keep", "unknown encoding: out untouched");
		ok(m->parts[0]->cte == MIME_CTE_UNKNOWN, "unknown encoding: MIME_CTE_UNKNOWN");
		mime_free(&m);
	}
	buf_free(&b);
}

static const char *
hdec(const char *s, size_t max)
{
	buf_reset(&out);
	if (mime_header_decode(s, strlen(s), max, &out) == 2)
		buf_adds(&out, "<CUT>");
	return buf_str(&out);
}

static const char *
conv(const char *cs, const char *s, size_t n, size_t max, int *rc)
{
	buf_reset(&out);
	*rc = mime_to_utf8(cs, s, n, max, &out);
	return buf_str(&out);
}

static void
test_charsets(void)
{
	int rc;

	is_str(hdec("=?utf-8?B?w6k=?= =?iso-8859-1?Q?=E9?= plain \"q\"", 100),
	    "\xc3\xa9\xc3\xa9 plain \"q\"", "2047: B and Q, white space between words dropped");
	is_str(hdec("=?UTF-8?Q?a_b?=  c", 100), "a b  c", "2047: '_' is a space, text spacing kept");
	is_str(hdec("x =?utf-8?q?y?=z", 100), "x yz", "2047: decoded inside words too");
	is_str(hdec("=?utf-8?B?4oI=?= =?utf-8?B?rA==?=", 100), "\xe2\x82\xac",
	    "2047: a character split over two words");
	is_str(hdec("=?utf-8*en?Q?hi?=", 100), "hi", "2047: RFC 2231 language dropped");
	is_str(hdec("=?koi8-r?B?8NLJ18XU?=", 100), "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",
	    "2047: iconv charset (KOI8-R)");
	is_str(hdec("=?iso-2022-jp?B?GyRCJUYlOSVIGyhC?=", 100), "\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88",
	    "2047: stateful charset (ISO-2022-JP)");
	is_str(hdec("=?utf-8?Q?bad=FF?=", 100), "bad\xef\xbf\xbd", "2047: invalid UTF-8 is U+FFFD");
	is_str(hdec("=?no-such-charset?Q?ok=C3=A9?=", 100), "ok\xc3\xa9", "2047: unknown charset as UTF-8");
	is_str(hdec("=?utf-8?X?abc?= =?utf-8?Q?unclosed =?", 100), "=?utf-8?X?abc?= =?utf-8?Q?unclosed =?",
	    "2047: junk left as it is");
	is_str(hdec("=??Q?x?= =?a b?Q?x?= =?../../x?Q?y?=", 100), "=??Q?x?= =?a b?Q?x?= y",
	    "2047: bad charset names are not given to iconv");
	is_str(hdec("raw caf\xe9 \xc3\xa9", 100), "raw caf\xef\xbf\xbd \xc3\xa9", "2047: raw 8-bit kept if UTF-8");
	is_str(hdec("=?utf-8?Q?=E2=82=AC=E2=82=AC?=", 4), "\xe2\x82\xac<CUT>", "2047: bounded at a character");
	is_str(hdec("abcdef", 3), "abc<CUT>", "2047: bounded plain text");
	is_str(hdec("", 10), "", "2047: empty");

	is_str(conv("ISO-8859-1", "caf\xe9", 4, 100, &rc), "caf\xc3\xa9", "latin-1");
	is_int(rc, 0, "latin-1: 0");
	is_str(conv("windows-1252", "\x80", 1, 100, &rc), "\xe2\x82\xac", "windows-1252 by iconv");
	is_str(conv("us-ascii", "a\xffz", 3, 100, &rc), "a\xef\xbf\xbdz", "us-ascii with 8-bit: U+FFFD");
	is_str(conv("x-bogus", "ok", 2, 100, &rc), "ok", "unknown charset");
	is_int(rc, 1, "unknown charset: 1");
	is_str(conv("utf-16le", "a\0b", 3, 100, &rc), "a\xef\xbf\xbd", "incomplete sequence at the end: U+FFFD");
	is_str(conv("utf-8", "\xe2\x82\xac\xe2\x82\xac", 6, 5, &rc), "\xe2\x82\xac", "bounded output");
	is_int(rc, 2, "bounded: 2");
	is_str(conv("iso-8859-1", "\xe9\xe9\xe9", 3, 5, &rc), "\xc3\xa9\xc3\xa9", "latin-1 bounded");
	is_str(conv("koi8-r", "\xf0\xf0\xf0", 3, 3, &rc), "\xd0\x9f", "iconv bounded at a character");
	is_str(conv("utf-8", "\xed\xa0\x80\xc0\xaf\xf4\x90\x80\x80", 9, 100, &rc),
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
	    "\xef\xbf\xbd\xef\xbf\xbd", "surrogates, overlong forms, > U+10FFFF refused");
	is_str(conv("utf-8", "\xc2\x85", 2, 100, &rc), "\xc2\x85", "C1 controls are valid UTF-8");
}

static void
test_filter(void)
{
	struct mime_message *m = parse("From: a@b\nSubject: folded\n  line\nX-A: 1\nsubject: again\n\nbody\n");
	static const char *const names[] = { "SUBJECT", "x-nope" };
	struct buf b = BUF_INIT;
	struct mime_range r;
	const struct mime_part *p;

	is_int(mime_section(m, NULL, 0, MIME_SECT_HEADER, &r, &p), 0, "filter: header of the message");
	mime_header_filter(p, names, 2, 0, &b);
	is_str(buf_str(&b), "Subject: folded\r\n  line\r\nsubject: again\r\n\r\n",
	    "HEADER.FIELDS: case-insensitive, folding kept, every occurrence, empty line");
	buf_reset(&b);
	mime_header_filter(p, names, 2, 1, &b);
	is_str(buf_str(&b), "From: a@b\r\nX-A: 1\r\n\r\n", "HEADER.FIELDS.NOT");
	buf_reset(&b);
	mime_header_filter(p, NULL, 0, 0, &b);
	is_str(buf_str(&b), "\r\n", "HEADER.FIELDS (): only the empty line");
	mime_free(&m);

	m = parse("Subject: x\nFrom: a@b");
	buf_reset(&b);
	mime_header_filter(m->parts[0], names, 1, 0, &b);
	is_str(buf_str(&b), "Subject: x\r\n",
	    "no empty line and no body: none added (RFC 3501 6.4.5; Dovecot adds one)");
	buf_reset(&b);
	mime_header_filter(m->parts[0], names, 1, 1, &b);
	is_str(buf_str(&b), "From: a@b\r\n", "a last field without a line end gets one");
	mime_free(&m);

	m = parse("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\n"
	    "Subject: inner\nX-B: 2\n\ntext\n--b--\n");
	{
		unsigned int path[] = { 1 };

		is_int(mime_section(m, path, 1, MIME_SECT_HEADER, &r, &p), 0, "filter: 1.HEADER");
		buf_reset(&b);
		mime_header_filter(p, names, 1, 0, &b);
		is_str(buf_str(&b), "Subject: inner\r\n\r\n", "HEADER.FIELDS of an encapsulated message");
	}
	mime_free(&m);
	buf_free(&b);
}

/* Every prefix, and the CR-only and CRLF forms, give consistent trees. */
static void
test_prefixes(void)
{
	size_t len = strlen(nested), cut, i;
	struct mime_limits small = { 3, 5, 64, 8 };
	int bad = 0;
	struct buf b = BUF_INIT;

	for (cut = 0; cut <= len; cut++) {
		char *copy = xmalloc(cut ? cut : 1);
		struct mime_message *m;

		memcpy(copy, nested, cut);
		m = mime_parse(copy, cut, NULL);
		bad += check_tree(m);
		buf_reset(&b);
		mime_imap_bodystructure(m->parts[0], 1, &b);
		mime_imap_envelope(m->parts[0], &b);
		mime_free(&m);
		m = mime_parse(copy, cut, &small);
		bad += check_tree(m);
		if (m->nparts > 5)
			bad++;
		mime_free(&m);
		free(copy);
	}
	is_int(bad, 0, "every prefix of the nested message (default and small limits)");

	bad = 0;
	buf_reset(&b);
	for (i = 0; i < len; i++)
		buf_addc(&b, nested[i] == '\n' ? '\r' : nested[i]);
	{
		struct mime_message *m = mime_parse(b.data, b.len, NULL);

		bad += check_tree(m);
		mime_free(&m);
	}
	is_int(bad, 0, "CR-only form");
	buf_free(&b);
}

int
main(void)
{
	test_simple();
	test_nested();
	test_params();
	test_malformed();
	test_limits();
	test_envelope();
	test_strings();
	test_decode();
	test_charsets();
	test_filter();
	test_prefixes();
	buf_free(&out);
	return done_testing();
}
