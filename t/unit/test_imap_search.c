/*
 * test_imap_search: SEARCH, SORT and THREAD (imapd/imap_search.c,
 * imap_sort.c, imap_thread.c) on boxes held in memory (a struct
 * ibox_ops whose load hands out test messages), with commands parsed
 * by the real parser: every kind of search key, charsets, "$", the
 * cheap-keys-first rule, SORT orders, base subjects, dates, and
 * THREAD REFERENCES / ORDEREDSUBJECT trees with dummies and subject
 * merging.
 */
#include "imap_search.h"
#include "imap_parse.h"
#include "mime.h"
#include "util.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static const char *const *texts;
static size_t loads;

static int
t_load(struct imap_box *b, size_t i, const char **p, size_t *n, struct buf *err)
{
	(void)b;
	(void)err;
	loads++;
	*p = texts[i];
	*n = strlen(texts[i]);
	return IBOX_OK;
}

static const struct ibox_ops t_ops = { NULL, t_load, NULL, NULL, NULL, NULL };

static const char *const box1[] = {
	"From: \"Alice Smith\" <alice@example.org>\r\nTo: bob@example.com\r\n"
	"Subject: Hello world\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
	"Message-ID: <1@x>\r\n\r\nplain text body one\r\n",
	"From: =?UTF-8?Q?J=C3=BCrgen?= <jurgen@example.de>\r\nTo: zed@example.com\r\n"
	"Subject: Re: Hello world\r\nDate: Tue, 2 Jan 2024 08:00:00 +0000\r\n"
	"Message-ID: <2@x>\r\nIn-Reply-To: <1@x>\r\nMIME-Version: 1.0\r\n"
	"Content-Type: text/plain; charset=iso-8859-1\r\n"
	"Content-Transfer-Encoding: quoted-printable\r\n\r\nViele Gr=FC=DFe\r\n",
	"From: carol@example.net\r\nCc: Dave <dave@example.com>\r\nTo: amy@example.com\r\n"
	"Subject: [list] Other topic (fwd)\r\nDate: Sun, 31 Dec 2023 23:30:00 -0500\r\n"
	"Message-ID: <3@x>\r\nMIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=BB\r\n\r\n"
	"--BB\r\nContent-Type: text/plain\r\n\r\nneedle in multipart\r\n"
	"--BB\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	"aGlkZGVu\r\n--BB--\r\n",
	"From: bob <bob@example.com>\r\nSubject: Fwd: Re: other topic\r\n"
	"Message-ID: <4@x>\r\nReferences: <3@x>\r\n\r\n"
	"a longer body, a longer body, a longer body, a longer body\r\n",
};

static void
box_init(struct imap_box *b, const char *const *msgs, size_t n)
{
	size_t i;

	memset(b, 0, sizeof(*b));
	texts = msgs;
	b->ops = &t_ops;
	b->msgs = xcalloc(n, sizeof(*b->msgs));
	b->n = n;
	b->uidnext = (uint32_t)(n * 10 + 10);
	for (i = 0; i < n; i++) {
		b->msgs[i].uid = (uint32_t)(i + 1) * 10;
		b->msgs[i].modseq = i + 1;
		b->msgs[i].have = IBOX_META_SIZE | IBOX_META_IDATE;
		b->msgs[i].size = mime_crlf_size(msgs[i], strlen(msgs[i]), NULL);
		b->msgs[i].idate = 1704067200 + (int64_t)i * 86400;
	}
}

static void
box_free(struct imap_box *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		free(b->msgs[i].keywords);
	free(b->msgs);
}

static struct imap_cmd *
parse(const char *line)
{
	struct imap_parser *p = imap_parser_new(NULL);
	struct imap_result r;
	size_t len = strlen(line), off = 0;
	struct imap_cmd *cmd = NULL;

	imap_parser_set_state(p, IMAP_STATE_SELECTED);
	while (off < len) {
		off += imap_parser_feed(p, line + off, len - off, &r);
		if (r.kind == IMAP_R_COMMAND) {
			cmd = r.cmd;
			break;
		}
		if (r.kind == IMAP_R_ERROR || r.kind == IMAP_R_CLOSE) {
			printf("# parse error: %s\n", r.text);
			break;
		}
	}
	imap_parser_free(&p);
	return cmd;
}

static struct imap_seqset saved_set;
static int64_t now_t = 1704326400;	/* 2024-01-04 00:00 UTC */

/* "a SEARCH ..." -> "1 2 3", "ERR" on failure */
static char *
run(struct imap_box *b, const char *cmdline)
{
	struct imap_cmd *cmd = parse(cmdline);
	struct buf out = BUF_INIT, err = BUF_INIT;
	uint32_t *seqs = NULL;
	size_t n = 0, i;

	if (cmd == NULL)
		return xstrdup("PARSE");
	if (imap_search_run(b, &cmd->search, &saved_set, now_t, &seqs, &n, &err) != IBOX_OK)
		buf_printf(&out, "ERR %s", buf_str(&err));
	else if (cmd->verb == IMAP_CMD_SORT &&
	    imap_sort_run(b, &cmd->search, seqs, n, &err) != IBOX_OK)
		buf_printf(&out, "ERR %s", buf_str(&err));
	else if (cmd->verb == IMAP_CMD_THREAD) {
		if (imap_thread_run(b, &cmd->search, seqs, n, cmd->uid, &out, &err) != IBOX_OK)
			buf_printf(&out, "ERR %s", buf_str(&err));
	} else
		for (i = 0; i < n; i++)
			buf_printf(&out, "%s%u", i ? " " : "", seqs[i]);
	free(seqs);
	buf_free(&err);
	imap_cmd_free(&cmd);
	buf_addc(&out, '\0');
	return buf_steal(&out);
}

/* The command as a one-line test name (TAP lines cannot hold CR/LF). */
static const char *
name(const char *cmd)
{
	static char n[128];
	size_t i;

	for (i = 0; cmd[i] && i + 1 < sizeof(n); i++)
		n[i] = (cmd[i] == '\r' || cmd[i] == '\n' || (unsigned char)cmd[i] >= 0x80) ?
		    '.' : cmd[i];
	n[i] = '\0';
	return n;
}

#define S(b, cmd, want) do { \
	char *got_ = run((b), "a " cmd "\r\n"); \
	is_str(got_, (want), "%s", name(cmd)); \
	free(got_); \
} while (0)

static void
test_search(void)
{
	struct imap_box b;

	box_init(&b, box1, 4);
	b.msgs[0].flags = IMAP_FLAG_SEEN;
	b.msgs[0].keywords = xstrdup("$Work,other");
	b.msgs[1].flags = IMAP_FLAG_ANSWERED | IMAP_FLAG_FLAGGED | IMAP_FLAG_DRAFT;
	b.msgs[2].flags = IMAP_FLAG_DELETED | IBOX_RECENT;
	b.msgs[3].flags = IBOX_RECENT;
	b.msgs[0].idate = 1704110400;
	b.msgs[1].idate = 1704186000;
	b.msgs[2].idate = 1704083400;
	b.msgs[3].idate = 1704240000;

	S(&b, "SEARCH ALL", "1 2 3 4");
	S(&b, "SEARCH SEEN", "1");
	S(&b, "SEARCH UNSEEN", "2 3 4");
	S(&b, "SEARCH NEW", "3 4");
	S(&b, "SEARCH OLD", "1 2");
	S(&b, "SEARCH RECENT", "3 4");
	S(&b, "SEARCH DELETED", "3");
	S(&b, "SEARCH UNDELETED", "1 2 4");
	S(&b, "SEARCH ANSWERED", "2");
	S(&b, "SEARCH UNANSWERED", "1 3 4");
	S(&b, "SEARCH FLAGGED", "2");
	S(&b, "SEARCH UNFLAGGED", "1 3 4");
	S(&b, "SEARCH DRAFT", "2");
	S(&b, "SEARCH UNDRAFT", "1 3 4");
	S(&b, "SEARCH KEYWORD $work", "1");
	S(&b, "SEARCH KEYWORD other", "1");
	S(&b, "SEARCH KEYWORD oth", "");
	S(&b, "SEARCH UNKEYWORD $Work", "2 3 4");
	S(&b, "SEARCH 2:3", "2 3");
	S(&b, "SEARCH 3:*", "3 4");
	S(&b, "SEARCH UID 20:30", "2 3");
	S(&b, "SEARCH UID *", "4");
	S(&b, "SEARCH UID 15,40", "4");
	S(&b, "SEARCH MODSEQ 3", "3 4");
	S(&b, "SEARCH MODSEQ \"/flags/\\\\Seen\" all 4", "4");
	/* saved result: UIDs 10 and 30 */
	imap_seq_add(&saved_set, 10, 10);
	imap_seq_add(&saved_set, 30, 30);
	S(&b, "SEARCH $", "1 3");
	S(&b, "SEARCH UID $ SEEN", "1");
	imap_seq_free(&saved_set);
	S(&b, "SEARCH $", "");

	/* header keys */
	S(&b, "SEARCH FROM alice", "1");
	S(&b, "SEARCH FROM ALICE", "1");
	S(&b, "SEARCH FROM \"smith\"", "1");
	S(&b, "SEARCH CHARSET UTF-8 FROM {7+}\r\nJ\xc3\x9cRGEN", "2");
	S(&b, "SEARCH CHARSET ISO-8859-1 FROM {6+}\r\nj\xfcrgen", "2");
	S(&b, "SEARCH TO zed", "2");
	S(&b, "SEARCH CC dave", "3");
	S(&b, "SEARCH BCC dave", "");
	S(&b, "SEARCH SUBJECT \"other topic\"", "3 4");
	S(&b, "SEARCH HEADER Message-ID \"<2@x>\"", "2");
	S(&b, "SEARCH HEADER Cc \"\"", "3");
	S(&b, "SEARCH HEADER references 3@X", "4");
	/* bodies */
	S(&b, "SEARCH BODY plain", "1");
	S(&b, "SEARCH CHARSET UTF-8 BODY {6+}\r\ngr\xc3\xbc\xc3\x9f", "2");
	S(&b, "SEARCH CHARSET UTF-8 BODY {7+}\r\nGR\xc3\x9c\xc3\x9f" "E", "2");
	S(&b, "SEARCH BODY needle", "3");
	S(&b, "SEARCH BODY hidden", "");
	S(&b, "SEARCH BODY example.net", "");
	S(&b, "SEARCH TEXT example.net", "3");
	S(&b, "SEARCH TEXT needle", "3");
	S(&b, "SEARCH CHARSET BOGUS-CHARSET-X BODY x", "ERR BADCHARSET");
	ok(imap_search_charset_ok("utf-8") && imap_search_charset_ok("ISO-8859-2") &&
	    !imap_search_charset_ok("NO-SUCH-CHARSET-X"), "imap_search_charset_ok");

	/* dates: internal (UTC day) and sent (the day as written) */
	S(&b, "SEARCH ON 1-Jan-2024", "1 3");
	S(&b, "SEARCH BEFORE 2-Jan-2024", "1 3");
	S(&b, "SEARCH SINCE 2-Jan-2024", "2 4");
	S(&b, "SEARCH SENTON 31-Dec-2023", "3");
	S(&b, "SEARCH SENTBEFORE 1-Jan-2024", "3");
	S(&b, "SEARCH SENTSINCE 2-Jan-2024", "2 4");
	S(&b, "SEARCH SENTON 3-Jan-2024", "4");	/* no Date: the internal date */
	S(&b, "SEARCH OLDER 172800", "1 3");
	S(&b, "SEARCH YOUNGER 100000", "4");
	S(&b, "SEARCH LARGER 304", "3");
	S(&b, "SEARCH SMALLER 200", "1 4");

	/* nesting */
	S(&b, "SEARCH OR SEEN FLAGGED", "1 2");
	S(&b, "SEARCH NOT SEEN", "2 3 4");
	S(&b, "SEARCH NOT (OR SEEN OR ANSWERED DELETED)", "4");
	S(&b, "SEARCH OR (FROM alice) (BODY needle)", "1 3");
	S(&b, "SEARCH NOT NOT BODY needle", "3");
	S(&b, "SEARCH (SUBJECT hello) (NOT FROM alice)", "2");

	/* cheap keys first: no message is read when flags decide */
	loads = 0;
	S(&b, "SEARCH SEEN BODY plain", "1");
	is_int(loads, 1, "only the message the flags let through is loaded");
	loads = 0;
	S(&b, "SEARCH OR SEEN BODY zzz", "1");
	is_int(loads, 3, "OR loads only the messages SEEN did not decide");

	/* expunged never match */
	b.msgs[0].expunged = 1;
	S(&b, "SEARCH ALL", "2 3 4");
	b.msgs[0].expunged = 0;

	/* SORT */
	S(&b, "SORT (SUBJECT) UTF-8 ALL", "1 2 3 4");
	S(&b, "SORT (REVERSE SUBJECT) UTF-8 ALL", "3 4 1 2");
	S(&b, "SORT (FROM) UTF-8 ALL", "1 4 3 2");
	S(&b, "SORT (DATE) UTF-8 ALL", "3 1 2 4");
	S(&b, "SORT (REVERSE DATE) UTF-8 ALL", "4 2 1 3");
	S(&b, "SORT (ARRIVAL) UTF-8 ALL", "3 1 2 4");
	S(&b, "SORT (SIZE) UTF-8 ALL", "4 1 2 3");
	S(&b, "SORT (CC) UTF-8 ALL", "1 2 4 3");
	S(&b, "SORT (TO) UTF-8 ALL", "4 3 1 2");
	S(&b, "SORT (DISPLAYFROM) UTF-8 ALL", "1 4 3 2");
	S(&b, "SORT (DISPLAYTO) UTF-8 ALL", "4 3 1 2");
	S(&b, "SORT (SUBJECT REVERSE DATE) UTF-8 ALL", "2 1 4 3");
	S(&b, "SORT (REVERSE ARRIVAL) UTF-8 UNSEEN", "4 2 3");

	/* THREAD */
	S(&b, "THREAD REFERENCES UTF-8 ALL", "(3 4)(1 2)");
	S(&b, "THREAD ORDEREDSUBJECT UTF-8 ALL", "(3 4)(1 2)");
	S(&b, "UID THREAD REFERENCES UTF-8 ALL", "(30 40)(10 20)");
	S(&b, "THREAD REFERENCES UTF-8 2:4", "(3 4)(2)");
	box_free(&b);
}

#define M(id, refs, subj, day) "Message-ID: <" id ">\r\n" refs "Subject: " subj \
	"\r\nDate: " day " Feb 2024 10:00:00 +0000\r\n\r\nx\r\n"

static const char *const box2[] = {
	M("a", "", "foo", "1"),
	M("b", "References: <a>\r\n", "Re: foo", "2"),
	M("c", "References: <a> <b>\r\n", "Re: foo", "3"),
	M("d", "References: <a>\r\n", "RE: Foo", "4"),
	M("e", "References: <zz>\r\n", "bar", "5"),
	M("f", "References: <zz>\r\n", "Re: bar", "6"),
	M("g", "", "Re: foo", "7"),
	M("h", "", "baz", "8"),
	M("i", "", "baz", "9"),
	M("k", "References: <k> <j>\r\nIn-Reply-To: <k>\r\n", "loop", "10"),
	M("j", "References: <k>\r\n", "Re: loop", "11"),
	M("a", "", "duplicate id", "12"),
	M("m", "In-Reply-To: <b> <c>\r\n", "Re: foo", "13"),
};

static void
test_thread(void)
{
	struct imap_box b;

	box_init(&b, box2, sizeof(box2) / sizeof(box2[0]));
	S(&b, "THREAD REFERENCES UTF-8 1:9",
	    "(1 (2 3)(4)(7))((5)(6))((8)(9))");
	S(&b, "THREAD ORDEREDSUBJECT UTF-8 1:9",
	    "(1 (2)(3)(4)(7))(5 6)(8 9)");
	S(&b, "THREAD REFERENCES UTF-8 3:4", "((3)(4))");
	S(&b, "THREAD REFERENCES UTF-8 ALL",
	    "(1 (2 (3)(13))(4)(7))((5)(6))((8)(9))(10 11)(12)");
	box_free(&b);
}

static void
base(const char *in, const char *want, int reply)
{
	struct buf out = BUF_INIT;
	int r = isearch_base_subject(in, &out);

	is_str(buf_str(&out), want, "base subject of '%s'", in);
	is_int(r, reply, "reply flag of '%s'", in);
	buf_free(&out);
}

static void
test_helpers(void)
{
	int64_t t = 0, d = 0;
	struct buf name = BUF_INIT, mbox = BUF_INIT, host = BUF_INIT;

	base("Hello", "hello", 0);
	base("Re: [list] Fwd: Hello (fwd)", "hello", 1);
	base("[fwd: Re: test]", "test", 1);
	base("[blob]", "[blob]", 0);
	base("[blob] x", "x", 0);
	base("Re:   re: RE[2]: x", "x", 1);
	base("  a \t  b  ", "a b", 0);
	base("=?UTF-8?Q?R=C3=89SUM=C3=89?=", "r\xc3\xa9sum\xc3\xa9", 0);
	base("", "", 0);
	base("Re:", "", 1);

	ok(isearch_parse_date("Tue, 1 Jul 2003 10:52:37 +0200", &t, &d) == 0 &&
	    t == 1057049557 && d == isearch_days(2003, 7, 1), "RFC 5322 date");
	ok(isearch_parse_date("1 Jul 03 10:52 GMT", &t, NULL) == 0 && t == 1057056720,
	    "two-digit year, no seconds");
	ok(isearch_parse_date("Tue, 31 Dec 2023 23:30:00 -0500 (EST)", &t, &d) == 0 &&
	    d == isearch_days(2023, 12, 31) && t == 1704083400, "zone west");
	ok(isearch_parse_date("garbage", &t, NULL) < 0, "garbage date");
	is_int(isearch_days(1970, 1, 1), 0, "epoch day");
	is_int(isearch_days(2024, 3, 1), 19783, "leap year day");

	ok(isearch_first_addr("\"Smith, Alice\" <alice@example.org>, bob@x", &name, &mbox,
	    &host) == 0, "first address");
	is_str(buf_str(&name), "Smith, Alice", "display name");
	is_str(buf_str(&mbox), "alice", "mailbox");
	is_str(buf_str(&host), "example.org", "host");
	ok(isearch_first_addr("undisclosed: a (c) <u@h>;", &name, &mbox, &host) == 0 &&
	    strcmp(buf_str(&mbox), "u") == 0 && strcmp(buf_str(&name), "a") == 0, "group");
	ok(isearch_first_addr("plain@example.com (Comment)", &name, &mbox, &host) == 0 &&
	    strcmp(buf_str(&mbox), "plain") == 0 && name.len == 0, "bare addr-spec");
	ok(isearch_first_addr("", &name, &mbox, &host) < 0, "no address");
	buf_free(&name);
	buf_free(&mbox);
	buf_free(&host);
}

int
main(void)
{
	test_helpers();
	test_search();
	test_thread();
	return done_testing();
}
