/*
 * test_imap_parse: the IMAP command reader and parser (imapd/imap_parse.c)
 * and sequence sets (imapd/imap_seq.c).  Every input is fed whole and
 * again one byte at a time (and in a few other splits); the transcripts
 * of results must be the same.  A transcript is a string of results:
 *   "C tag VERB;"  a command       "+;"  a continuation request
 *   "E tag STATUS [CODE] text;"    "X tag STATUS [CODE] text;" (close)
 *   "D tag;" the DONE of IDLE      "S tag n;" / "S tag cancel;" SASL
 * Like a server, the harness expects DONE after IDLE and one SASL line
 * after an AUTHENTICATE without an initial response.
 */
#include "test.h"
#include "imap_parse.h"
#include "imap_seq.h"
#include "buf.h"

#include <stdint.h>
#include <stdlib.h>

static struct imap_limits lim;
static int state = IMAP_STATE_SELECTED;
static int utf8_mode;

struct run {
	struct buf log;
	struct imap_cmd *first;	/* the first command, kept */
	int ncmd;
};

static void
log_result(struct imap_parser *p, struct run *r, struct imap_result *res)
{
	switch (res->kind) {
	case IMAP_R_MORE:
		return;
	case IMAP_R_COMMAND:
		buf_printf(&r->log, "C %s %s%s;", res->cmd->tag,
		    res->cmd->uid ? "UID " : "", imap_cmd_name(res->cmd->verb));
		if (res->cmd->verb == IMAP_CMD_IDLE)
			imap_parser_expect(p, IMAP_EXPECT_DONE, res->cmd->tag);
		if (res->cmd->verb == IMAP_CMD_AUTHENTICATE && !res->cmd->auth.has_ir)
			imap_parser_expect(p, IMAP_EXPECT_SASL, res->cmd->tag);
		r->ncmd++;
		if (!r->first)
			r->first = res->cmd;
		else
			imap_cmd_free(&res->cmd);
		return;
	case IMAP_R_CONTINUE:
		buf_adds(&r->log, "+;");
		return;
	case IMAP_R_ERROR:
	case IMAP_R_CLOSE:
		buf_printf(&r->log, "%c %s %s ", res->kind == IMAP_R_ERROR ? 'E' : 'X',
		    res->tag, res->status);
		if (res->code)
			buf_printf(&r->log, "[%s] ", res->code);
		buf_printf(&r->log, "%s;", res->text);
		return;
	case IMAP_R_DONE:
		buf_printf(&r->log, "D %s;", res->tag);
		return;
	case IMAP_R_SASL:
		if (res->cancel)
			buf_printf(&r->log, "S %s cancel;", res->tag);
		else
			buf_printf(&r->log, "S %s %zu;", res->tag, res->sasl->len);
		return;
	}
	buf_adds(&r->log, "?;");
}

/* Feed s[0..n) in pieces of step bytes (0: at once). */
static void
feed(struct imap_parser *p, const char *s, size_t n, size_t step, struct run *r)
{
	size_t off = 0;

	while (off < n) {
		size_t chunk = step && step < n - off ? step : n - off;
		const char *d = s + off;
		size_t left = chunk;

		while (left) {
			struct imap_result res;
			size_t used = imap_parser_feed(p, d, left, &res);

			if (used == 0 || used > left) {
				buf_adds(&r->log, "!progress;");
				return;
			}
			d += used;
			left -= used;
			log_result(p, r, &res);
		}
		off += chunk;
	}
}

static struct imap_parser *
new_parser(void)
{
	struct imap_parser *p = imap_parser_new(&lim);

	imap_parser_set_state(p, state);
	imap_parser_set_utf8(p, utf8_mode);
	return p;
}

static void
run_free(struct run *r)
{
	buf_free(&r->log);
	imap_cmd_free(&r->first);
}

static int split_mismatches;

/* The transcript of s fed whole; the same input fed in other splits
 * must give the same transcript.  *cmd (if not NULL) gets the first
 * command of the whole run. */
static const char *
transcript_n(const char *s, size_t n, struct imap_cmd **cmd)
{
	static struct buf out;
	static const size_t steps[] = { 1, 2, 3, 7, 64 };
	struct imap_parser *p = new_parser();
	struct run r;
	size_t i;

	memset(&r, 0, sizeof(r));
	feed(p, s, n, 0, &r);
	imap_parser_free(&p);
	buf_sets(&out, buf_str(&r.log));
	if (cmd) {
		*cmd = r.first;
		r.first = NULL;
	}
	run_free(&r);
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		memset(&r, 0, sizeof(r));
		p = new_parser();
		feed(p, s, n, steps[i], &r);
		imap_parser_free(&p);
		if (!buf_eq(&r.log, buf_str(&out))) {
			split_mismatches++;
			printf("# split %zu differs for '%.60s'\n#   whole: %s\n#   split: %s\n",
			    steps[i], s, buf_str(&out), buf_str(&r.log));
		}
		run_free(&r);
	}
	return buf_str(&out);
}

static const char *
transcript(const char *s)
{
	return transcript_n(s, strlen(s), NULL);
}

/* s must give exactly one command; returns it (free it) or NULL. */
static struct imap_cmd *
cmd_of(const char *s)
{
	struct imap_cmd *c = NULL;
	const char *t = transcript_n(s, strlen(s), &c);

	if (!c || strncmp(t, "C ", 2) != 0 || strchr(t, ';')[1] != 0) {
		printf("# '%.70s' -> %s\n", s, t);
		imap_cmd_free(&c);
		return NULL;
	}
	return c;
}

#define T(in, want, what) is_str(transcript(in), want, what)
/* for string literals holding NUL */
#define TN(in, want, what) is_str(transcript_n(in, sizeof(in) - 1, NULL), want, what)

/* The first error text of s (after "E tag "), for invalid commands. */
static const char *
err_of(const char *s)
{
	const char *t = transcript(s);

	return strncmp(t, "E ", 2) == 0 ? t : NULL;
}

#define BAD(in, what) do { \
	const char *bad_t_ = err_of(in); \
	ok(bad_t_ != NULL, "invalid: %s", what); \
	if (!bad_t_) \
		printf("#   input: %s\n#   got: %s\n", in, transcript(in)); \
} while (0)

static size_t
nkeys(const struct imap_search_key *k)
{
	size_t n = 0;

	for (; k; k = k->next)
		n++;
	return n;
}

/* ---- the reader ---- */

static void
test_basic(void)
{
	T("a NOOP\r\n", "C a NOOP;", "NOOP");
	T("a noop\r\n", "C a NOOP;", "command names are case-insensitive");
	T("A1 CAPABILITY\r\nA2 LOGOUT\r\n", "C A1 CAPABILITY;C A2 LOGOUT;", "two pipelined commands");
	T("\r\n\r\na NOOP\r\n", "C a NOOP;", "empty lines are ignored");
	T("a NOOP\nb NOOP\n", "C a NOOP;C b NOOP;", "bare LF accepted by default");
	T("a FOO\r\n", "E a BAD Unknown command FOO;", "unknown command");
	T("a FOO bar baz\r\nb NOOP\r\n", "E a BAD Unknown command FOO;C b NOOP;", "unknown command, then the next");
	T("a\r\n", "E * BAD Missing command;", "tag only");
	T(" NOOP\r\n", "E * BAD Missing or invalid tag;", "no tag");
	T("+ NOOP\r\n", "E * BAD Missing or invalid tag;", "+ is not a tag character");
	T("a* NOOP\r\n", "E * BAD Missing or invalid tag;", "* is not a tag character");
	T("a] NOOP\r\n", "C a] NOOP;", "] is a tag character");
	T("a NOOP extra\r\n", "E a BAD Unexpected characters at the end of the command;", "NOOP takes no argument");
	T("a NOOP \r\n", "E a BAD Unexpected characters at the end of the command;", "trailing space");
	T("a  NOOP\r\n", "E a BAD Expected a command name;", "two spaces");
	T("a UID NOOP\r\n", "E a BAD Unknown command UID NOOP;", "UID NOOP");
	T("a UID\r\n", "E a BAD Missing argument;", "UID alone");
	TN("a NOOP\0\r\nb NOOP\r\n", "E a BAD NUL in command line;C b NOOP;", "NUL in the line");
	TN("a\0 NOOP\r\n", "E * BAD NUL in command line;", "NUL in the tag: untagged");
	T("a NO\rOP\r\nb NOOP\r\n", "E a BAD CR inside a line;C b NOOP;", "CR inside a line");
	T("a NOOP\r\r\n", "E a BAD CR inside a line;", "CR CR LF");
	T("a CAPABILITY\r\na STARTTLS\r\na NAMESPACE\r\na CHECK\r\na CLOSE\r\na UNSELECT\r\n",
	    "C a CAPABILITY;C a STARTTLS;C a NAMESPACE;C a CHECK;C a CLOSE;C a UNSELECT;",
	    "commands without arguments");
	T("a CHECK now\r\n", "E a BAD Unexpected characters at the end of the command;", "CHECK takes no argument");
	T("a EXPUNGE\r\n", "C a EXPUNGE;", "EXPUNGE");
	T("a EXPUNGE 1\r\n", "E a BAD Unexpected characters at the end of the command;", "EXPUNGE takes no set");

	{
		struct imap_parser *p;
		struct run r;

		lim.strict_crlf = 1;
		T("a NOOP\nb NOOP\r\n", "E a BAD Line not ended by CRLF;C b NOOP;", "strict CRLF refuses a bare LF");
		lim.strict_crlf = 0;

		/* busy and memory */
		p = new_parser();
		memset(&r, 0, sizeof(r));
		ok(!imap_parser_busy(p), "not busy at start");
		feed(p, "a NO", 4, 0, &r);
		ok(imap_parser_busy(p), "busy inside a command");
		feed(p, "OP\r\n", 4, 0, &r);
		ok(!imap_parser_busy(p), "not busy after it");
		is_str(buf_str(&r.log), "C a NOOP;", "command across two feeds");
		imap_parser_free(&p);
		ok(p == NULL, "imap_parser_free clears the pointer");
		run_free(&r);
	}
}

static void
test_literals(void)
{
	struct imap_cmd *c;

	/* LOGIN takes literals only before authentication */
	state = IMAP_STATE_NOT_AUTH;
	c = NULL;
	is_str(transcript_n("a LOGIN {5}\r\nalice {6}\r\nsecret\r\n", 32, &c),
	    "+;+;C a LOGIN;", "synchronising literals get continuations");
	if (c) {
		is_str(c->login.user, "alice", "literal user");
		is_str(c->login.pass, "secret", "literal password");
		imap_cmd_free(&c);
	}
	c = cmd_of("a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n");
	ok(c != NULL, "LITERAL+ needs no continuation");
	if (c) {
		is_str(c->login.pass, "secret", "LITERAL+ password");
		imap_cmd_free(&c);
	}
	T("a LOGIN {0}\r\n {0}\r\n\r\n", "+;+;C a LOGIN;", "zero-length literals");
	T("a LOGIN {05}\r\nalice bob\r\n", "+;C a LOGIN;", "leading zero in a literal length");
	c = cmd_of("a LOGIN {3+}\r\na\"\\ {2+}\r\n\r\n\r\n");
	ok(c && !strcmp(c->login.user, "a\"\\") && !strcmp(c->login.pass, "\r\n"),
	    "literal data is not interpreted (quotes, CRLF)");
	imap_cmd_free(&c);

	/* refusals before the data */
	lim.literal_max = 10;
	T("a LOGIN {11}\r\nb NOOP\r\n", "E a BAD [TOOBIG] Literal too large;C b NOOP;",
	    "sync literal over literal_max refused, no data read");
	T("a LOGIN {10}\r\n0123456789 x\r\n", "+;C a LOGIN;", "literal at literal_max accepted");
	T("a LOGIN {11+}\r\n01234567890 x\r\nb NOOP\r\n",
	    "E a BAD [TOOBIG] Literal too large;C b NOOP;",
	    "non-sync literal over the limit read and dropped");
	T("a LOGIN {11+}\r\n01234567890 {3+}\r\nabc\r\nb NOOP\r\n",
	    "E a BAD [TOOBIG] Literal too large;C b NOOP;",
	    "later non-sync literals of a refused command dropped too");
	T("a LOGIN {11+}\r\n01234567890 {3}\r\nb NOOP\r\n",
	    "E a BAD [TOOBIG] Literal too large;C b NOOP;",
	    "a later sync literal of a refused command ends it");
	T("a LOGIN {99999999999999999999999}\r\nb NOOP\r\n",
	    "E a BAD [TOOBIG] Literal too large;C b NOOP;", "huge literal length");
	lim.discard_max = 20;
	T("a LOGIN {21+}\r\n", "X a BAD [TOOBIG] Literal too large;",
	    "non-sync literal over discard_max closes");
	{
		struct imap_parser *p = new_parser();
		struct imap_result res;
		struct run r;
		const char *s = "a LOGIN {21+}\r\nb NOOP\r\n";

		memset(&r, 0, sizeof(r));
		feed(p, s, strlen(s), 0, &r);
		is_str(buf_str(&r.log), "X a BAD [TOOBIG] Literal too large;", "CLOSE is said once");
		ok(imap_parser_feed(p, "x", 1, &res) == 1 && res.kind == IMAP_R_MORE, "then input is dropped");
		ok(!imap_parser_busy(p), "and the parser is not busy");
		imap_parser_free(&p);
		run_free(&r);
	}
	T("a LOGIN {11+}\r\n01234567890 {11+}\r\n01234567890\r\nb NOOP\r\n",
	    "X a BAD [TOOBIG] Literal too large;", "discard_max counts all of the command");
	lim.discard_max = 16777216;
	lim.literal_max = 65536;

	/* LITERAL- and no LITERAL+ */
	lim.literal_plus = IMAP_LITERAL_MINUS;
	{
		static char big[4200];

		memcpy(big, "a LOGIN {4096+}\r\n", 17);
		memset(big + 17, 'x', 4096);
		memcpy(big + 17 + 4096, " y\r\n", 5);
		T(big, "C a LOGIN;", "LITERAL-: 4096 bytes accepted");
		memcpy(big, "a LOGIN {4097+}\r\n", 17);
		memset(big + 17, 'x', 4097);
		memcpy(big + 17 + 4097, " y\r\n", 5);
		T(big, "E a BAD [TOOBIG] Non-synchronizing literal larger than 4096 bytes (LITERAL-);",
		    "LITERAL-: 4097 bytes refused and dropped");
	}
	T("a LOGIN {4097}\r\n", "+;", "LITERAL-: large sync literal fine");
	lim.literal_plus = IMAP_LITERAL_NONE;
	T("a LOGIN {3+}\r\nabc b\r\nc NOOP\r\n",
	    "E a BAD Non-synchronizing literals are not supported;C c NOOP;", "no LITERAL+: refused, dropped");
	lim.literal_plus = IMAP_LITERAL_PLUS;

	/* a bad command is refused before its literal */
	T("a FOO {5}\r\nb NOOP\r\n", "E a BAD Unknown command FOO;C b NOOP;", "unknown command with a literal");
	T("a LOGIN ( {5}\r\nb NOOP\r\n", "E a BAD Expected a user name;C b NOOP;", "syntax error before a literal");
	T("a NOOP {5}\r\n", "E a BAD Unexpected characters at the end of the command;", "literal where none fits");
	T("a LOGIN \"abc{5}\r\nb NOOP\r\n", "E a BAD Unterminated quoted string;C b NOOP;",
	    "announcement inside an unterminated quote");
	T("a LOGIN {3}\r\nabc{3}\r\nb NOOP\r\n", "+;E a BAD Expected a space;C b NOOP;",
	    "two literals without a space");
	T("a LOGIN a {3} b\r\n", "E a BAD Expected a password;", "{3} inside a line is no literal");
	T("a LOGIN {3\r\n", "E a BAD Expected a user name;", "unclosed literal length");
	T("a LOGIN {}\r\n", "E a BAD Expected a user name;", "empty literal length");
	T("a LOGIN {3}}\r\n", "E a BAD Expected a user name;", "junk after the literal length");
	T("a APPEND INBOX {5}\r\nb NOOP\r\n", "E a BAD APPEND is not valid in this state;C b NOOP;",
	    "APPEND before login refused before its literal");
	T("a LOGIN {3}\r\nabc def\r\n", "+;C a LOGIN;", "LOGIN literal before login");
	state = IMAP_STATE_SELECTED;
	T("a LOGIN {3}\r\n", "E a BAD LOGIN is not valid in this state;", "LOGIN literal after login refused");
	state = IMAP_STATE_NOT_AUTH;

	/* NUL, binary */
	TN("a LOGIN {3}\r\na\0b {1}\r\nb NOOP\r\n", "+;E a BAD NUL in literal;C b NOOP;",
	    "NUL in a literal");
	TN("a LOGIN {3+}\r\na\0b x\r\nb NOOP\r\n", "E a BAD NUL in literal;C b NOOP;",
	    "NUL in a non-sync literal");
	T("a LOGIN ~{3}\r\nb NOOP\r\n",
	    "E a BAD Binary literals are only allowed for APPEND messages;C b NOOP;", "binary literal for LOGIN");
	state = IMAP_STATE_SELECTED;
	T("a SEARCH TEXT ~{3+}\r\nabc\r\nb NOOP\r\n",
	    "E a BAD Binary literals are only allowed for APPEND messages;C b NOOP;", "binary literal in SEARCH");

	/* count and size limits */
	lim.literals_max = 2;
	T("a SEARCH TEXT {1+}\r\na TEXT {1+}\r\nb TEXT {1+}\r\nc\r\nb NOOP\r\n",
	    "E a BAD Too many literals in one command;C b NOOP;", "literals_max");
	lim.literals_max = 256;
	lim.command_max = 100;
	T("a SEARCH TEXT {60+}\r\n012345678901234567890123456789012345678901234567890123456789 TEXT {60}\r\nb NOOP\r\n",
	    "E a BAD [TOOBIG] Command too large;C b NOOP;", "command_max counts literals");
	lim.command_max = 1048576;
}

static void
test_limits(void)
{
	struct buf b = BUF_INIT;
	size_t i;

	lim.line_max = 100;
	buf_adds(&b, "a LOGIN ");
	for (i = 0; i < 200; i++)
		buf_addc(&b, 'x');
	buf_adds(&b, " y\r\nb NOOP\r\n");
	T(buf_str(&b), "E a BAD Command line too long;C b NOOP;", "line_max, then resync");
	buf_reset(&b);
	buf_adds(&b, "a LOGIN ");
	for (i = 0; i < 200; i++)
		buf_addc(&b, 'x');
	buf_adds(&b, " {5+}\r\nabcde\r\nb NOOP\r\n");
	T(buf_str(&b), "E a BAD Command line too long;C b NOOP;", "over-long line ending in {n+}: literal dropped");
	buf_reset(&b);
	buf_adds(&b, "a LOGIN ");
	for (i = 0; i < 200; i++)
		buf_addc(&b, 'x');
	buf_adds(&b, " {5}\r\nb NOOP\r\n");
	T(buf_str(&b), "E a BAD Command line too long;C b NOOP;", "over-long line ending in {n}: refused");
	T("a SEARCH TEXT {3}\r\nabc 0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890\r\nb NOOP\r\n",
	    "+;E a BAD Command line too long;C b NOOP;", "line_max counts all the lines, not the literal");
	lim.line_max = 65536;

	/* memory stays bounded on an endless line */
	{
		struct imap_parser *p = new_parser();
		struct run r;
		size_t maxmem = 0;

		memset(&r, 0, sizeof(r));
		buf_reset(&b);
		for (i = 0; i < 65536; i++)
			buf_addc(&b, 'x');
		for (i = 0; i < 160; i++) {
			feed(p, b.data, b.len, 0, &r);
			if (imap_parser_memory(p) > maxmem)
				maxmem = imap_parser_memory(p);
		}
		ok(maxmem <= 2 * 65536 + 4096, "10 MB line: at most %zu bytes held", maxmem);
		feed(p, "\r\nb NOOP\r\n", 10, 0, &r);
		is_str(buf_str(&r.log), "E * BAD Command line too long;C b NOOP;", "and the session goes on");
		imap_parser_free(&p);
		run_free(&r);
	}
	buf_free(&b);
}

/* ---- commands ---- */

static void
test_auth(void)
{
	struct imap_cmd *c;

	state = IMAP_STATE_NOT_AUTH;
	c = cmd_of("a LOGIN alice \"p a\\\"s\\\\s\"\r\n");
	ok(c && c->verb == IMAP_CMD_LOGIN, "LOGIN atom and quoted");
	if (c) {
		is_str(c->login.user, "alice", "user");
		is_str(c->login.pass, "p a\"s\\s", "quoted escapes");
		imap_cmd_free(&c);
	}
	c = cmd_of("a LOGIN NIL \"\"\r\n");
	ok(c && !strcmp(c->login.user, "NIL") && !strcmp(c->login.pass, ""), "NIL is an atom here; empty quoted");
	imap_cmd_free(&c);
	c = cmd_of("a LOGIN \"caf\xc3\xa9\" x]y\r\n");
	ok(c && !strcmp(c->login.user, "caf\xc3\xa9") && !strcmp(c->login.pass, "x]y"), "8-bit quoted; ] in astring");
	imap_cmd_free(&c);
	BAD("a LOGIN alice\r\n", "LOGIN one argument");
	BAD("a LOGIN alice b c\r\n", "LOGIN three arguments");
	BAD("a LOGIN \"alice\r\n", "unterminated quoted");
	BAD("a LOGIN \"a\\b\" x\r\n", "bad escape");
	BAD("a LOGIN (a) b\r\n", "parenthesis");
	BAD("a LOGIN a\xc3\xa9 b\r\n", "8-bit atom");
	BAD("a LOGIN a% b\r\n", "wildcard in atom");

	c = cmd_of("a AUTHENTICATE plain\r\n");
	ok(c && !c->auth.has_ir && !strcmp(c->auth.mech, "PLAIN"), "AUTHENTICATE without initial response");
	imap_cmd_free(&c);
	T("a AUTHENTICATE plain\r\nAGFsaWNlAHNlY3JldA==\r\nb NOOP\r\n", "C a AUTHENTICATE;S a 13;C b NOOP;",
	    "AUTHENTICATE then one response");
	T("a AUTHENTICATE PLAIN\r\n*\r\n", "C a AUTHENTICATE;S a cancel;", "SASL cancel");
	T("a AUTHENTICATE PLAIN\r\n\r\n", "C a AUTHENTICATE;S a 0;", "empty SASL response");
	T("a AUTHENTICATE PLAIN\r\nnot base64!\r\nb NOOP\r\n",
	    "C a AUTHENTICATE;E a BAD Invalid base64 in the SASL response;C b NOOP;", "bad SASL response");
	T("a AUTHENTICATE PLAIN\r\n{5}\r\n", "C a AUTHENTICATE;E a BAD Invalid base64 in the SASL response;",
	    "no literals in SASL lines");
	c = cmd_of("a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	ok(c && c->auth.has_ir && c->auth.ir.len == 13 && !memcmp(c->auth.ir.data, "\0alice\0secret", 13),
	    "SASL-IR initial response decoded");
	ok(c && !strcmp(c->auth.mech, "PLAIN"), "mechanism");
	imap_cmd_free(&c);
	c = cmd_of("a AUTHENTICATE external =\r\n");
	ok(c && c->auth.has_ir && c->auth.ir.len == 0 && !strcmp(c->auth.mech, "EXTERNAL"),
	    "\"=\" is an empty initial response; mechanism upper-cased");
	imap_cmd_free(&c);
	BAD("a AUTHENTICATE PLAIN AGFsaWNl!\r\n", "bad initial response");
	BAD("a AUTHENTICATE PLAIN AGF\r\n", "unpadded initial response");
	BAD("a AUTHENTICATE\r\n", "AUTHENTICATE without mechanism");
	BAD("a AUTHENTICATE PLAIN = x\r\n", "two initial responses");
	state = IMAP_STATE_SELECTED;

	c = cmd_of("a ID (\"name\" \"sodr\" \"version\" NIL)\r\n");
	ok(c && c->id.n == 2 && !strcmp(c->id.field[1], "version") && c->id.value[1] == NULL &&
	    !strcmp(c->id.value[0], "sodr"), "ID pairs");
	imap_cmd_free(&c);
	c = cmd_of("a ID NIL\r\n");
	ok(c && c->id.nil, "ID NIL");
	imap_cmd_free(&c);
	c = cmd_of("a ID ()\r\n");
	ok(c && !c->id.nil && c->id.n == 0, "ID ()");
	imap_cmd_free(&c);
	BAD("a ID (name \"x\")\r\n", "ID field must be a string");
	BAD("a ID (\"name\")\r\n", "ID field without value");
	BAD("a ID (\"0123456789012345678901234567890\" \"x\")\r\n", "ID field over 30 bytes");
	BAD("a ID\r\n", "ID without argument");
	{
		struct buf b = BUF_INIT;
		int i;

		buf_adds(&b, "a ID (");
		for (i = 0; i < 31; i++)
			buf_printf(&b, "%s\"f%d\" \"v\"", i ? " " : "", i);
		buf_adds(&b, ")\r\n");
		BAD(buf_str(&b), "31 ID pairs");
		buf_free(&b);
	}

	state = IMAP_STATE_AUTH;
	c = cmd_of("a ENABLE condstore QRESYNC\r\n");
	ok(c && c->enable.n == 2 && !strcmp(c->enable.cap[0], "CONDSTORE") && !strcmp(c->enable.cap[1], "QRESYNC"),
	    "ENABLE upper-cases");
	imap_cmd_free(&c);
	BAD("a ENABLE\r\n", "ENABLE without capability");
	c = cmd_of("a COMPRESS deflate\r\n");
	ok(c && c->verb == IMAP_CMD_COMPRESS, "COMPRESS DEFLATE");
	imap_cmd_free(&c);
	BAD("a COMPRESS LZ4\r\n", "COMPRESS unknown");
	BAD("a COMPRESS\r\n", "COMPRESS without mechanism");
	T("a IDLE\r\nDONE\r\nb NOOP\r\n", "C a IDLE;D a;C b NOOP;", "IDLE and DONE");
	T("a IDLE\r\ndone\r\n", "C a IDLE;D a;", "done in lower case");
	T("a IDLE\r\nb NOOP\r\nc NOOP\r\n", "C a IDLE;E a BAD Expected DONE;C c NOOP;", "anything but DONE");
	T("a IDLE\r\nDONE \r\n", "C a IDLE;E a BAD Expected DONE;", "DONE with a space");
	T("a IDLE x\r\n", "E a BAD Unexpected characters at the end of the command;", "IDLE takes nothing");
	state = IMAP_STATE_SELECTED;
}

static void
test_mailboxes(void)
{
	struct imap_cmd *c;

	c = cmd_of("a SELECT inbox\r\n");
	ok(c && c->verb == IMAP_CMD_SELECT && c->select.mbox.inbox && !strcmp(c->select.mbox.name, "INBOX"),
	    "INBOX is case-insensitive");
	imap_cmd_free(&c);
	c = cmd_of("a SELECT inbox.sub\r\n");
	ok(c && !c->select.mbox.inbox && !strcmp(c->select.mbox.name, "inbox.sub"), "only the whole name");
	imap_cmd_free(&c);
	c = cmd_of("a EXAMINE \"Entw&APw-rfe\"\r\n");
	ok(c && c->verb == IMAP_CMD_EXAMINE && !strcmp(c->select.mbox.utf8, "Entw\xc3\xbcrfe") &&
	    !strcmp(c->select.mbox.name, "Entw&APw-rfe"), "mUTF-7 name decoded");
	imap_cmd_free(&c);
	BAD("a SELECT &AGE-\r\n", "non-canonical mUTF-7");
	BAD("a SELECT &U,BTFw\r\n", "unterminated mUTF-7");
	BAD("a SELECT \"Entw\xc3\xbcrfe\"\r\n", "8-bit name without UTF8=ACCEPT");
	BAD("a SELECT\r\n", "SELECT without name");
	BAD("a SELECT a b\r\n", "SELECT two names");
	c = cmd_of("a SELECT INBOX (CONDSTORE)\r\n");
	ok(c && c->select.condstore && !c->select.qresync, "SELECT (CONDSTORE)");
	imap_cmd_free(&c);
	c = cmd_of("a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n");
	ok(c && c->select.qresync && c->select.uidvalidity == 67890007 &&
	    c->select.modseq == 20050715194045000ULL && c->select.known_uids.n == 3 &&
	    c->select.match_seq.n == 0, "QRESYNC with known UIDs");
	imap_cmd_free(&c);
	c = cmd_of("a SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973)))\r\n");
	ok(c && c->select.known_uids.n == 1 && c->select.match_seq.n == 4 && c->select.match_uids.n == 5,
	    "QRESYNC with sequence match data (RFC 7162 example)");
	imap_cmd_free(&c);
	c = cmd_of("a SELECT INBOX (QRESYNC (1 2) CONDSTORE)\r\n");
	ok(c && c->select.qresync && c->select.condstore && c->select.known_uids.n == 0, "minimal QRESYNC, two params");
	imap_cmd_free(&c);
	BAD("a SELECT INBOX (QRESYNC (0 2))\r\n", "UIDVALIDITY 0");
	BAD("a SELECT INBOX (QRESYNC (1 0))\r\n", "mod-sequence 0");
	BAD("a SELECT INBOX (QRESYNC (1 2 1:*))\r\n", "* in known UIDs");
	BAD("a SELECT INBOX (QRESYNC (1 2 $))\r\n", "$ in known UIDs");
	BAD("a SELECT INBOX (QRESYNC (1 2 1:5 (1:2)))\r\n", "incomplete sequence match");
	BAD("a SELECT INBOX (QRESYNC (1 9223372036854775808))\r\n", "mod-sequence over 63 bits");
	BAD("a SELECT INBOX (QRESYNC (1 2) QRESYNC (1 2))\r\n", "QRESYNC twice");
	BAD("a SELECT INBOX (FOO)\r\n", "unknown SELECT parameter");
	BAD("a SELECT INBOX ()\r\n", "empty SELECT parameters");

	c = cmd_of("a CREATE \"a b/c\"\r\n");
	ok(c && c->verb == IMAP_CMD_CREATE && !strcmp(c->mbox.name, "a b/c"), "CREATE");
	imap_cmd_free(&c);
	c = cmd_of("a DELETE {3+}\r\nx y\r\n");
	ok(c && c->verb == IMAP_CMD_DELETE && !strcmp(c->mbox.name, "x y"), "DELETE literal");
	imap_cmd_free(&c);
	c = cmd_of("a RENAME old new\r\n");
	ok(c && !strcmp(c->rename.from.name, "old") && !strcmp(c->rename.to.name, "new"), "RENAME");
	imap_cmd_free(&c);
	BAD("a RENAME old\r\n", "RENAME one name");
	c = cmd_of("a SUBSCRIBE x\r\n");
	ok(c && c->verb == IMAP_CMD_SUBSCRIBE, "SUBSCRIBE");
	imap_cmd_free(&c);
	c = cmd_of("a UNSUBSCRIBE x\r\n");
	ok(c && c->verb == IMAP_CMD_UNSUBSCRIBE, "UNSUBSCRIBE");
	imap_cmd_free(&c);
	c = cmd_of("a GETQUOTAROOT INBOX\r\n");
	ok(c && c->verb == IMAP_CMD_GETQUOTAROOT && c->mbox.inbox, "GETQUOTAROOT");
	imap_cmd_free(&c);
	c = cmd_of("a GETQUOTA \"\"\r\n");
	ok(c && c->verb == IMAP_CMD_GETQUOTA && !strcmp(c->quota_root, ""), "GETQUOTA");
	imap_cmd_free(&c);

	utf8_mode = 1;
	c = cmd_of("a CREATE \"Entw\xc3\xbcrfe\"\r\n");
	ok(c && !strcmp(c->mbox.name, "Entw&APw-rfe") && !strcmp(c->mbox.utf8, "Entw\xc3\xbcrfe"),
	    "UTF8=ACCEPT: UTF-8 name, mUTF-7 form made");
	imap_cmd_free(&c);
	c = cmd_of("a CREATE \"a&b\"\r\n");
	ok(c && !strcmp(c->mbox.name, "a&-b"), "UTF8=ACCEPT: & is plain");
	imap_cmd_free(&c);
	BAD("a CREATE \"\xc3\x28\"\r\n", "UTF8=ACCEPT: invalid UTF-8");
	utf8_mode = 0;

	c = cmd_of("a LIST \"\" *\r\n");
	ok(c && c->verb == IMAP_CMD_LIST && !c->list.extended && c->list.npat == 1 &&
	    !strcmp(c->list.pat[0].name, "*") && !strcmp(c->list.ref.name, ""), "LIST \"\" *");
	imap_cmd_free(&c);
	c = cmd_of("a LIST ~/Mail/ %\r\n");
	ok(c && !strcmp(c->list.ref.name, "~/Mail/") && !strcmp(c->list.pat[0].name, "%"), "LIST atoms");
	imap_cmd_free(&c);
	c = cmd_of("a LIST \"\" foo/*/%bar]\r\n");
	ok(c && !strcmp(c->list.pat[0].name, "foo/*/%bar]"), "list-char pattern");
	imap_cmd_free(&c);
	c = cmd_of("a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (INBOX \"Sent*\" %) RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n");
	ok(c && c->list.extended &&
	    c->list.sel == (IMAP_LIST_SEL_SUBSCRIBED | IMAP_LIST_SEL_RECURSIVEMATCH) &&
	    c->list.ret == (IMAP_LIST_RET_CHILDREN | IMAP_LIST_RET_SPECIAL_USE | IMAP_LIST_RET_STATUS) &&
	    c->list.status == (IMAP_STATUS_MESSAGES | IMAP_STATUS_UNSEEN) && c->list.npat == 3 &&
	    c->list.pat[0].inbox, "LIST-EXTENDED with everything");
	imap_cmd_free(&c);
	c = cmd_of("a LIST () \"\" % RETURN ()\r\n");
	ok(c && c->list.extended && c->list.sel == 0 && c->list.ret == 0, "empty option lists");
	imap_cmd_free(&c);
	c = cmd_of("a LIST (SPECIAL-USE) \"\" * RETURN (SUBSCRIBED)\r\n");
	ok(c && c->list.sel == IMAP_LIST_SEL_SPECIAL_USE && c->list.ret == IMAP_LIST_RET_SUBSCRIBED,
	    "SPECIAL-USE selection");
	imap_cmd_free(&c);
	BAD("a LIST (RECURSIVEMATCH) \"\" *\r\n", "RECURSIVEMATCH alone");
	BAD("a LIST (REMOTE RECURSIVEMATCH) \"\" *\r\n", "RECURSIVEMATCH with REMOTE only");
	BAD("a LIST (FOO) \"\" *\r\n", "unknown selection option");
	BAD("a LIST \"\" * RETURN (FOO)\r\n", "unknown return option");
	BAD("a LIST \"\" * RETURN (STATUS ())\r\n", "empty STATUS return");
	BAD("a LIST \"\" * (CHILDREN)\r\n", "return options without RETURN");
	BAD("a LIST \"\"\r\n", "LIST without pattern");
	BAD("a LIST \"\" ()\r\n", "empty pattern list");
	c = cmd_of("a LSUB \"\" *\r\n");
	ok(c && c->verb == IMAP_CMD_LSUB && c->list.npat == 1, "LSUB");
	imap_cmd_free(&c);
	BAD("a LSUB \"\" (a b)\r\n", "LSUB with several patterns");

	c = cmd_of("a STATUS INBOX (MESSAGES UIDNEXT uidvalidity UNSEEN RECENT HIGHESTMODSEQ SIZE DELETED)\r\n");
	ok(c && c->status.items == 0xff && c->status.mbox.inbox, "STATUS all items");
	imap_cmd_free(&c);
	BAD("a STATUS INBOX ()\r\n", "STATUS no items");
	BAD("a STATUS INBOX (MESSAGES FOO)\r\n", "STATUS unknown item");
	BAD("a STATUS INBOX MESSAGES\r\n", "STATUS items without parentheses");
}

static void
test_append(void)
{
	struct imap_cmd *c = NULL;
	const char *t;
	static const char bin[] = "a APPEND Drafts ~{5}\r\nab\0cd\r\n";
	static const char app1[] =
	    "a APPEND saved-messages (\\Seen $Junk) \"17-Jul-1996 02:44:25 -0700\" {5}\r\nhello\r\n";
	static const char app2[] =
	    "a APPEND INBOX {3}\r\nabc (\\Draft) {2}\r\nde \" 1-Jan-2000 00:00:00 +0000\" {1+}\r\nf\r\n";

	t = transcript_n(app1, sizeof(app1) - 1, &c);
	is_str(t, "+;C a APPEND;", "APPEND with flags and date");
	if (c) {
		ok(c->append.n == 1 && c->append.msg[0].len == 5 &&
		    !memcmp(c->append.msg[0].data, "hello", 5), "message data");
		ok(c->append.msg[0].flags.sys == IMAP_FLAG_SEEN && c->append.msg[0].flags.nkw == 1 &&
		    !strcmp(c->append.msg[0].flags.kw[0], "$Junk"), "message flags");
		ok(c->append.msg[0].has_date && c->append.msg[0].date.t == 837596665 &&
		    c->append.msg[0].date.zone == -420, "date-time in UTC seconds and zone");
		imap_cmd_free(&c);
	}
	t = transcript_n(app2, sizeof(app2) - 1, &c);
	is_str(t, "+;+;C a APPEND;", "MULTIAPPEND");
	if (c) {
		ok(c->append.n == 3 && c->append.msg[1].flags.sys == IMAP_FLAG_DRAFT &&
		    c->append.msg[1].len == 2 && c->append.msg[2].date.t == 946684800 &&
		    !c->append.msg[0].has_date, "three messages");
		imap_cmd_free(&c);
	}
	t = transcript_n(bin, sizeof(bin) - 1, &c);
	is_str(t, "+;C a APPEND;", "binary literal APPEND");
	ok(c && c->append.msg[0].binary && c->append.msg[0].len == 5 &&
	    !memcmp(c->append.msg[0].data, "ab\0cd", 5), "binary data with NUL");
	imap_cmd_free(&c);
	TN("a APPEND INBOX ~{3+}\r\na\0b\r\n", "C a APPEND;", "non-synchronising binary literal");
	TN("a APPEND INBOX {3+}\r\na\0b\r\nb NOOP\r\n", "E a BAD NUL in literal;C b NOOP;",
	    "NUL in a plain message literal");
	T("a APPEND INBOX {0}\r\n\r\n", "+;C a APPEND;", "empty message (the server decides)");
	T("a APPEND INBOX \"7-Jul-1996 02:44:25 +0100\" {1+}\r\nx\r\n", "C a APPEND;", "one-digit day");
	BAD("a APPEND INBOX \"17-Jul-96 02:44:25 -0700\" {1+}\r\nx\r\n", "two-digit year");
	BAD("a APPEND INBOX \"17-Jul-1996 24:44:25 -0700\" {1+}\r\nx\r\n", "hour 24");
	BAD("a APPEND INBOX \"17-Jul-1996 02:44:25\" {1+}\r\nx\r\n", "no zone");
	BAD("a APPEND INBOX \"31-Jun-1996 02:44:25 +0000\" {1+}\r\nx\r\n", "31 June");
	BAD("a APPEND INBOX \"17-Jux-1996 02:44:25 +0000\" {1+}\r\nx\r\n", "bad month");
	BAD("a APPEND INBOX \"17-Jul-1996 02:44:25 +0060\" {1+}\r\nx\r\n", "zone minutes 60");
	BAD("a APPEND INBOX 17-Jul-1996 {1+}\r\nx\r\n", "unquoted date-time");
	BAD("a APPEND INBOX (\\Recent) {1+}\r\nx\r\n", "\\Recent in APPEND");
	BAD("a APPEND INBOX \"hello\"\r\n", "message as a quoted string");
	BAD("a APPEND INBOX\r\n", "APPEND without message");
	BAD("a APPEND INBOX {1+}\r\nx \r\n", "trailing space after a message");
	lim.append_max = 10;
	T("a APPEND INBOX {11}\r\nb NOOP\r\n", "E a NO [TOOBIG] Message too large;C b NOOP;",
	    "message over append_max refused before reading");
	T("a APPEND INBOX {10}\r\n0123456789\r\n", "+;C a APPEND;", "message at append_max");
	lim.append_total_max = 15;
	T("a APPEND INBOX {10}\r\n0123456789 {6}\r\nb NOOP\r\n", "+;E a NO [TOOBIG] Messages too large in total;C b NOOP;",
	    "MULTIAPPEND over append_total_max");
	lim.append_max = lim.append_total_max = 67108864;
	/* a message literal is not bound by literal_max */
	lim.literal_max = 4;
	T("a APPEND INBOX {10}\r\n0123456789\r\n", "+;C a APPEND;", "literal_max does not apply to messages");
	lim.literal_max = 65536;
}

static void
test_fetch(void)
{
	struct imap_cmd *c;

	c = cmd_of("a FETCH 1:* ALL\r\n");
	ok(c && c->fetch.macro == IMAP_FETCH_MACRO_ALL && c->fetch.n == 4 &&
	    c->fetch.items[3].att == IMAP_FETCH_ENVELOPE, "ALL macro expanded");
	imap_cmd_free(&c);
	c = cmd_of("a FETCH 1 fast\r\n");
	ok(c && c->fetch.macro == IMAP_FETCH_MACRO_FAST && c->fetch.n == 3, "FAST macro");
	imap_cmd_free(&c);
	c = cmd_of("a FETCH 1 FULL\r\n");
	ok(c && c->fetch.macro == IMAP_FETCH_MACRO_FULL && c->fetch.n == 5 &&
	    c->fetch.items[4].att == IMAP_FETCH_BODY, "FULL macro");
	imap_cmd_free(&c);
	c = cmd_of("a FETCH 1 UID\r\n");
	ok(c && c->fetch.n == 1 && c->fetch.items[0].att == IMAP_FETCH_UID, "single item without parentheses");
	imap_cmd_free(&c);
	c = cmd_of("a FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (From To)] BODY.PEEK[1.2.MIME] BODY[]<0.100> "
	    "BINARY.PEEK[1]<5.10> BINARY.SIZE[2] RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY INTERNALDATE MODSEQ "
	    "RFC822 RFC822.HEADER RFC822.TEXT BODY[1.2.3] BODY[3.HEADER.FIELDS.NOT (X-A)] BODY[TEXT] BINARY[])\r\n");
	ok(c && c->fetch.n == 19, "nineteen items");
	if (c && c->fetch.n == 19) {
		struct imap_fetch_item *it = c->fetch.items;

		ok(it[1].att == IMAP_FETCH_BODY_SECTION && !it[1].peek &&
		    it[1].sec.text == IMAP_SECTION_HEADER_FIELDS && it[1].sec.nfields == 2 &&
		    !strcmp(it[1].sec.fields[1], "To"), "BODY[HEADER.FIELDS (From To)]");
		ok(it[2].peek && it[2].sec.npart == 2 && it[2].sec.part[1] == 2 &&
		    it[2].sec.text == IMAP_SECTION_MIME, "BODY.PEEK[1.2.MIME]");
		ok(it[3].partial && it[3].offset == 0 && it[3].length == 100 && it[3].sec.npart == 0 &&
		    it[3].sec.text == IMAP_SECTION_ALL, "BODY[]<0.100>");
		ok(it[4].att == IMAP_FETCH_BINARY && it[4].peek && it[4].partial && it[4].offset == 5 &&
		    it[4].sec.npart == 1, "BINARY.PEEK[1]<5.10>");
		ok(it[5].att == IMAP_FETCH_BINARY_SIZE && it[5].sec.part[0] == 2, "BINARY.SIZE[2]");
		ok(it[9].att == IMAP_FETCH_BODY && it[11].att == IMAP_FETCH_MODSEQ &&
		    it[14].att == IMAP_FETCH_RFC822_TEXT, "plain items");
		ok(it[15].sec.npart == 3 && it[15].sec.part[2] == 3 && it[15].sec.text == IMAP_SECTION_ALL,
		    "BODY[1.2.3]");
		ok(it[16].sec.npart == 1 && it[16].sec.text == IMAP_SECTION_HEADER_FIELDS_NOT, "part HEADER.FIELDS.NOT");
		ok(it[17].sec.text == IMAP_SECTION_TEXT && it[18].att == IMAP_FETCH_BINARY, "TEXT, BINARY[]");
	}
	imap_cmd_free(&c);
	T("a FETCH 1 (BODY[HEADER.FIELDS {4+}\r\n(Fro m)])\r\nb NOOP\r\n", "E a BAD Expected \"(\";C b NOOP;",
	    "header list cannot be a literal");
	c = cmd_of("a FETCH 1 (BODY[HEADER.FIELDS ({4+}\r\nFrom To)])\r\n");
	ok(c && c->fetch.items[0].sec.nfields == 2 && !strcmp(c->fetch.items[0].sec.fields[0], "From"),
	    "header field name as a literal");
	imap_cmd_free(&c);
	c = cmd_of("a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n");
	ok(c && c->uid && c->fetch.changedsince_set && c->fetch.changedsince == 12345 && c->fetch.vanished,
	    "CHANGEDSINCE and VANISHED");
	imap_cmd_free(&c);
	c = cmd_of("a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775807)\r\n");
	ok(c && c->fetch.changedsince == 9223372036854775807ULL, "largest mod-sequence");
	imap_cmd_free(&c);
	BAD("a FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n", "VANISHED without UID");
	BAD("a UID FETCH 1:* FLAGS (VANISHED)\r\n", "VANISHED without CHANGEDSINCE");
	BAD("a FETCH 1 FLAGS (CHANGEDSINCE 0)\r\n", "CHANGEDSINCE 0");
	BAD("a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)\r\n", "CHANGEDSINCE over 63 bits");
	BAD("a FETCH 1 FLAGS (FOO)\r\n", "unknown modifier");
	BAD("a FETCH 1 FLAGS ()\r\n", "empty modifiers");
	BAD("a FETCH 1 (ALL)\r\n", "macro in parentheses");
	BAD("a FETCH 1 ()\r\n", "no items");
	BAD("a FETCH 1 (FLAGS\r\n", "unclosed list");
	BAD("a FETCH 1 (FLAGS )\r\n", "space before )");
	BAD("a FETCH 1 FOO\r\n", "unknown item");
	BAD("a FETCH 1 BODY[MIME]\r\n", "MIME without part");
	BAD("a FETCH 1 BODY[HEADER.FIELDS]\r\n", "HEADER.FIELDS without list");
	BAD("a FETCH 1 BODY[HEADER.FIELDS ()]\r\n", "empty header list");
	BAD("a FETCH 1 BODY[HEADER.FIELDS (Fr:om)]\r\n", "colon in a field name");
	BAD("a FETCH 1 BODY[]<0.0>\r\n", "partial length 0");
	BAD("a FETCH 1 BODY[]<0>\r\n", "partial without length");
	BAD("a FETCH 1 BODY[0]\r\n", "part 0");
	BAD("a FETCH 1 BODY[1.]\r\n", "part then dot");
	BAD("a FETCH 1 BODY[1.FOO]\r\n", "unknown section text");
	BAD("a FETCH 1 BODY[\r\n", "unclosed section");
	BAD("a FETCH 1 BODY.PEEK\r\n", "BODY.PEEK without section");
	BAD("a FETCH 1 BINARY[TEXT]\r\n", "BINARY with a text section");
	BAD("a FETCH 1 BINARY.SIZE[1]<0.1>\r\n", "BINARY.SIZE with partial");
	BAD("a FETCH 1 BINARY\r\n", "BINARY without section");
	BAD("a FETCH 1 FLAGS[]\r\n", "section after FLAGS");
	BAD("a FETCH 1\r\n", "no items at all");
	BAD("a FETCH FLAGS\r\n", "no set");
}

static void
test_store_copy(void)
{
	struct imap_cmd *c;

	c = cmd_of("a STORE 1:3 +FLAGS.SILENT (\\Deleted \\seen $Forwarded)\r\n");
	ok(c && c->store.op == IMAP_STORE_ADD && c->store.silent &&
	    c->store.flags.sys == (IMAP_FLAG_DELETED | IMAP_FLAG_SEEN) && c->store.flags.nkw == 1,
	    "+FLAGS.SILENT");
	imap_cmd_free(&c);
	c = cmd_of("a STORE 1 FLAGS ()\r\n");
	ok(c && c->store.op == IMAP_STORE_SET && !c->store.silent && c->store.flags.sys == 0, "FLAGS ()");
	imap_cmd_free(&c);
	c = cmd_of("a UID STORE 7 -flags \\Answered \\Flagged \\Draft kw\r\n");
	ok(c && c->uid && c->store.op == IMAP_STORE_REMOVE &&
	    c->store.flags.sys == (IMAP_FLAG_ANSWERED | IMAP_FLAG_FLAGGED | IMAP_FLAG_DRAFT) &&
	    c->store.flags.nkw == 1, "-FLAGS without parentheses");
	imap_cmd_free(&c);
	c = cmd_of("a STORE 1:* (UNCHANGEDSINCE 0) +FLAGS (\\Seen)\r\n");
	ok(c && c->store.unchangedsince_set && c->store.unchangedsince == 0, "UNCHANGEDSINCE 0 is allowed");
	imap_cmd_free(&c);
	BAD("a STORE 1 +FLAGS (\\Recent)\r\n", "\\Recent");
	BAD("a STORE 1 +FLAGS (\\Foo)\r\n", "unknown system flag");
	BAD("a STORE 1 +FLAGS (\\)\r\n", "backslash alone");
	BAD("a STORE 1 +FLAGS.LOUD (x)\r\n", "unknown FLAGS suffix");
	BAD("a STORE 1 *FLAGS (x)\r\n", "bad operator");
	BAD("a STORE 1 +FLAGS\r\n", "no flags");
	BAD("a STORE 1 +FLAGS (a b\r\n", "unclosed flag list");
	BAD("a STORE 1 (UNCHANGEDSINCE) FLAGS (a)\r\n", "UNCHANGEDSINCE without value");
	BAD("a STORE 1 (FOO 1) FLAGS (a)\r\n", "unknown STORE modifier");
	BAD("a STORE 1 FLAGS (a) x\r\n", "junk after flag list");

	c = cmd_of("a COPY 1:3,5 \"Sent Items\"\r\n");
	ok(c && c->verb == IMAP_CMD_COPY && c->copy.set.n == 2 && !strcmp(c->copy.mbox.name, "Sent Items"), "COPY");
	imap_cmd_free(&c);
	c = cmd_of("a UID MOVE $ Trash\r\n");
	ok(c && c->uid && c->verb == IMAP_CMD_MOVE && c->copy.set.saved, "UID MOVE $");
	imap_cmd_free(&c);
	c = cmd_of("a UID EXPUNGE 3000:3002,3005\r\n");
	ok(c && c->uid && c->expunge.n == 2 && c->expunge.r[0].lo == 3000 && c->expunge.r[0].hi == 3002,
	    "UID EXPUNGE");
	imap_cmd_free(&c);
	BAD("a UID EXPUNGE\r\n", "UID EXPUNGE without set");
	BAD("a COPY 1\r\n", "COPY without mailbox");
	BAD("a MOVE x INBOX\r\n", "MOVE bad set");
}

static void
test_search(void)
{
	struct imap_cmd *c;
	struct imap_search_key *k;

	c = cmd_of("a SEARCH ALL\r\n");
	ok(c && c->search.key && c->search.key->type == IMAP_SK_AND && c->search.key->child &&
	    c->search.key->child->type == IMAP_SK_ALL && !c->search.charset && !c->search.ret_set, "SEARCH ALL");
	imap_cmd_free(&c);
	c = cmd_of("a SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n");
	if (c && nkeys(c->search.key->child) == 3) {
		k = c->search.key->child;
		ok(k->type == IMAP_SK_FLAGGED && k->next->type == IMAP_SK_SINCE &&
		    k->next->date.year == 1994 && k->next->date.mon == 2 && k->next->date.day == 1,
		    "RFC 3501 example: FLAGGED SINCE");
		k = k->next->next;
		ok(k->type == IMAP_SK_NOT && k->child->type == IMAP_SK_FROM && !strcmp(k->child->str, "Smith"),
		    "NOT FROM");
	} else
		ok(0, "RFC 3501 search example");
	imap_cmd_free(&c);
	c = cmd_of("a SEARCH OR (FROM a TO b) SUBJECT \"x y\" 1:5,7\r\n");
	if (c && nkeys(c->search.key->child) == 2) {
		k = c->search.key->child;
		ok(k->type == IMAP_SK_OR && k->child->type == IMAP_SK_AND && nkeys(k->child->child) == 2 &&
		    k->child->next->type == IMAP_SK_SUBJECT && !strcmp(k->child->next->str, "x y"),
		    "OR of a group and a key");
		ok(k->next->type == IMAP_SK_SEQSET && k->next->set.n == 2, "sequence set key");
	} else
		ok(0, "OR search");
	imap_cmd_free(&c);
	c = cmd_of("a SEARCH CHARSET utf-8 TEXT {4+}\r\n\xc3\xa4\xc3\xb6\r\n");
	ok(c && !strcmp(c->search.charset, "UTF-8") && !strcmp(c->search.key->child->str, "\xc3\xa4\xc3\xb6"),
	    "CHARSET and a literal");
	imap_cmd_free(&c);
	c = cmd_of("a SEARCH RETURN (MIN MAX COUNT) UNSEEN\r\n");
	ok(c && c->search.ret_set &&
	    c->search.ret == (IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX | IMAP_SEARCH_RET_COUNT), "ESEARCH RETURN");
	imap_cmd_free(&c);
	c = cmd_of("a SEARCH RETURN () CHARSET US-ASCII ALL\r\n");
	ok(c && c->search.ret == IMAP_SEARCH_RET_ALL && !strcmp(c->search.charset, "US-ASCII"),
	    "RETURN () is ALL, with CHARSET");
	imap_cmd_free(&c);
	c = cmd_of("a UID SEARCH RETURN (SAVE ALL) UID 1:* $\r\n");
	ok(c && c->uid && c->search.ret == (IMAP_SEARCH_RET_SAVE | IMAP_SEARCH_RET_ALL) &&
	    c->search.key->child->type == IMAP_SK_UID && c->search.key->child->next->set.saved, "SAVE and $");
	imap_cmd_free(&c);
	c = cmd_of("a SEARCH LARGER 1000 SMALLER 2000 HEADER X-Foo bar KEYWORD $Junk UNKEYWORD x "
	    "BEFORE \"1-Feb-1994\" ON 29-Feb-2000 SENTON 1-Jan-2001 SENTBEFORE 2-Jan-2001 "
	    "SENTSINCE 3-jan-2001 BCC a CC b BODY c TEXT d TO e ANSWERED DELETED DRAFT NEW OLD RECENT SEEN "
	    "UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN OLDER 60 YOUNGER 30 FLAGGED FROM f SUBJECT s "
	    "SINCE 1-Jan-2000\r\n");
	ok(c && nkeys(c->search.key->child) == 33, "every RFC 3501 key and WITHIN");
	if (c && nkeys(c->search.key->child) == 33) {
		k = c->search.key->child;
		ok(k->num == 1000 && k->next->num == 2000, "LARGER SMALLER");
		k = k->next->next;
		ok(k->type == IMAP_SK_HEADER && !strcmp(k->field, "X-Foo") && !strcmp(k->str, "bar"), "HEADER");
		ok(k->next->type == IMAP_SK_KEYWORD && !strcmp(k->next->str, "$Junk"), "KEYWORD");
	}
	imap_cmd_free(&c);
	c = cmd_of("a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n");
	ok(c && c->search.key->child->type == IMAP_SK_MODSEQ && c->search.key->child->num == 620162338 &&
	    !strcmp(c->search.key->child->entry, "/flags/\\draft") &&
	    c->search.key->child->entry_type == IMAP_ENTRY_ALL, "MODSEQ with entry (RFC 7162 example)");
	imap_cmd_free(&c);
	c = cmd_of("a SEARCH MODSEQ 0\r\n");
	ok(c && c->search.key->child->num == 0 && !c->search.key->child->entry, "MODSEQ 0");
	imap_cmd_free(&c);
	c = cmd_of("a SEARCH HEADER Subject \"\"\r\n");
	ok(c && !strcmp(c->search.key->child->str, ""), "empty HEADER value");
	imap_cmd_free(&c);
	c = cmd_of("a SEARCH ON 29-Feb-2004\r\n");
	ok(c != NULL, "leap day 2004");
	imap_cmd_free(&c);
	BAD("a SEARCH ON 29-Feb-1900\r\n", "no leap day in 1900");
	BAD("a SEARCH SINCE 30-Feb-2001\r\n", "30 February");
	BAD("a SEARCH SINCE 1-Feb-94\r\n", "2-digit year");
	BAD("a SEARCH SINCE 001-Feb-1994\r\n", "3-digit day");
	BAD("a SEARCH SINCE \"1-Feb-1994\r\n", "unterminated quoted date");
	BAD("a SEARCH\r\n", "SEARCH without keys");
	BAD("a SEARCH \r\n", "SEARCH with a space only");
	BAD("a SEARCH FOO\r\n", "unknown key");
	BAD("a SEARCH ()\r\n", "empty group");
	BAD("a SEARCH (ALL\r\n", "unclosed group");
	BAD("a SEARCH OR ALL\r\n", "OR with one key");
	BAD("a SEARCH NOT\r\n", "NOT without key");
	BAD("a SEARCH HEADER \"\" x\r\n", "empty header name");
	BAD("a SEARCH LARGER x\r\n", "LARGER not a number");
	BAD("a SEARCH OLDER 0\r\n", "OLDER 0");
	BAD("a SEARCH KEYWORD \\Seen\r\n", "KEYWORD takes a keyword");
	BAD("a SEARCH MODSEQ \"/flags/\\\\draft\" none 5\r\n", "bad entry type");
	BAD("a SEARCH MODSEQ \"/other\" all 5\r\n", "bad entry name");
	BAD("a SEARCH RETURN (FOO) ALL\r\n", "unknown RETURN option");
	BAD("a SEARCH RETURN ALL\r\n", "RETURN without list");
	BAD("a SEARCH CHARSET\r\n", "CHARSET without name");
	BAD("a SEARCH CHARSET UTF-8\r\n", "CHARSET without keys");
	BAD("a SEARCH ALL  ALL\r\n", "two spaces");
	BAD("a SEARCH 0\r\n", "sequence number 0");
	BAD("a SEARCH UID 1:0\r\n", "UID 0");

	/* nesting and counting */
	{
		struct buf b = BUF_INIT;
		unsigned i;

		lim.depth_max = 10;
		buf_adds(&b, "a SEARCH ");
		for (i = 0; i < 10; i++)
			buf_addc(&b, '(');
		buf_adds(&b, "ALL");
		for (i = 0; i < 10; i++)
			buf_addc(&b, ')');
		buf_adds(&b, "\r\n");
		c = cmd_of(buf_str(&b));
		ok(c != NULL, "nesting at depth_max");
		imap_cmd_free(&c);
		buf_reset(&b);
		buf_adds(&b, "a SEARCH ");
		for (i = 0; i < 11; i++)
			buf_addc(&b, '(');
		buf_adds(&b, "ALL");
		for (i = 0; i < 11; i++)
			buf_addc(&b, ')');
		buf_adds(&b, "\r\n");
		is_str(transcript(buf_str(&b)), "E a BAD Search keys nested too deeply;", "nesting past depth_max");
		buf_reset(&b);
		buf_adds(&b, "a SEARCH ");
		for (i = 0; i < 11; i++)
			buf_adds(&b, "NOT ");
		buf_adds(&b, "ALL\r\n");
		is_str(transcript(buf_str(&b)), "E a BAD Search keys nested too deeply;", "NOT chain past depth_max");
		buf_reset(&b);
		buf_adds(&b, "a SEARCH ");
		for (i = 0; i < 10; i++)
			buf_adds(&b, "OR ");
		buf_adds(&b, "ALL");
		for (i = 0; i < 10; i++)
			buf_adds(&b, " SEEN");
		buf_adds(&b, "\r\n");
		c = cmd_of(buf_str(&b));
		ok(c != NULL, "OR chain at depth_max");
		imap_cmd_free(&c);
		lim.depth_max = 100;
		/* a deep input against the default limit: no stack trouble */
		buf_reset(&b);
		buf_adds(&b, "a SEARCH ");
		for (i = 0; i < 20000; i++)
			buf_addc(&b, '(');
		buf_adds(&b, "\r\n");
		is_str(transcript(buf_str(&b)), "E a BAD Search keys nested too deeply;", "20000 parentheses");

		lim.search_keys_max = 5;
		T("a SEARCH ALL ALL ALL ALL ALL\r\n", "C a SEARCH;", "search_keys_max keys");
		T("a SEARCH ALL ALL ALL ALL ALL ALL\r\n", "E a BAD Too many search keys;", "search_keys_max exceeded");
		T("a SEARCH (ALL ALL) (ALL ALL)\r\n", "E a BAD Too many search keys;", "groups count as keys");
		lim.search_keys_max = 1000;
		buf_free(&b);
	}

	c = cmd_of("a SORT (REVERSE DATE subject) UTF-8 ALL\r\n");
	ok(c && c->verb == IMAP_CMD_SORT && c->search.nsort == 2 && c->search.sort[0].reverse &&
	    c->search.sort[0].key == IMAP_SORT_DATE && c->search.sort[1].key == IMAP_SORT_SUBJECT &&
	    !strcmp(c->search.charset, "UTF-8"), "SORT");
	imap_cmd_free(&c);
	c = cmd_of("a UID SORT RETURN (COUNT) (ARRIVAL DISPLAYFROM) US-ASCII SINCE 1-Jan-2020 UNSEEN\r\n");
	ok(c && c->uid && c->search.ret == IMAP_SEARCH_RET_COUNT && c->search.nsort == 2 &&
	    nkeys(c->search.key->child) == 2, "UID SORT with RETURN (ESORT)");
	imap_cmd_free(&c);
	BAD("a SORT () UTF-8 ALL\r\n", "SORT no criteria");
	BAD("a SORT (FOO) UTF-8 ALL\r\n", "SORT unknown criterion");
	BAD("a SORT (REVERSE) UTF-8 ALL\r\n", "REVERSE alone");
	BAD("a SORT (DATE) ALL\r\n", "SORT without charset");
	BAD("a SORT (DATE) UTF-8\r\n", "SORT without keys");
	c = cmd_of("a THREAD REFERENCES UTF-8 ALL\r\n");
	ok(c && c->search.thread == IMAP_THREAD_REFERENCES, "THREAD REFERENCES");
	imap_cmd_free(&c);
	c = cmd_of("a UID THREAD orderedsubject US-ASCII SEEN NOT DELETED\r\n");
	ok(c && c->uid && c->search.thread == IMAP_THREAD_ORDEREDSUBJECT, "UID THREAD ORDEREDSUBJECT");
	imap_cmd_free(&c);
	BAD("a THREAD REFS UTF-8 ALL\r\n", "unknown thread algorithm");
	BAD("a THREAD REFERENCES ALL\r\n", "THREAD without charset");
}

static void
test_counts(void)
{
	struct buf b = BUF_INIT;
	int i;

	lim.items_max = 3;
	T("a STORE 1 FLAGS (a b c)\r\n", "C a STORE;", "items_max flags");
	T("a STORE 1 FLAGS (a b c d)\r\n", "E a BAD Too many flags;", "items_max exceeded");
	T("a FETCH 1 (UID FLAGS ENVELOPE MODSEQ)\r\n", "E a BAD Too many FETCH items;", "items_max FETCH items");
	T("a LIST \"\" (a b c d)\r\n", "E a BAD Too many patterns;", "items_max patterns");
	lim.items_max = 1000;
	lim.ranges_max = 4;
	T("a FETCH 1,2,3,4 FLAGS\r\n", "C a FETCH;", "ranges_max ranges");
	T("a FETCH 1,2,3,4,5 FLAGS\r\n", "E a BAD Too many ranges in sequence sets;", "ranges_max exceeded");
	T("a SEARCH 1,2 UID 3,4 5\r\n", "E a BAD Too many ranges in sequence sets;", "ranges_max is per command");
	lim.ranges_max = 10000;
	buf_adds(&b, "a FETCH ");
	for (i = 0; i < 5000; i++)
		buf_printf(&b, "%s%d", i ? "," : "", i * 2 + 1);
	buf_adds(&b, " FLAGS\r\n");
	T(buf_str(&b), "C a FETCH;", "5000 ranges");
	buf_free(&b);
}

static void
test_states(void)
{
	ok(imap_cmd_allowed(IMAP_CMD_LOGIN, 0, IMAP_STATE_NOT_AUTH), "LOGIN before auth");
	ok(!imap_cmd_allowed(IMAP_CMD_LOGIN, 0, IMAP_STATE_AUTH), "not LOGIN after");
	ok(!imap_cmd_allowed(IMAP_CMD_STARTTLS, 0, IMAP_STATE_SELECTED), "not STARTTLS when selected");
	ok(imap_cmd_allowed(IMAP_CMD_NOOP, 0, IMAP_STATE_NOT_AUTH) && imap_cmd_allowed(IMAP_CMD_NOOP, 0, IMAP_STATE_SELECTED),
	    "NOOP anywhere");
	ok(!imap_cmd_allowed(IMAP_CMD_NOOP, 0, IMAP_STATE_LOGOUT), "nothing in logout");
	ok(imap_cmd_allowed(IMAP_CMD_SELECT, 0, IMAP_STATE_AUTH) && imap_cmd_allowed(IMAP_CMD_SELECT, 0, IMAP_STATE_SELECTED),
	    "SELECT when authenticated or selected");
	ok(!imap_cmd_allowed(IMAP_CMD_SELECT, 0, IMAP_STATE_NOT_AUTH), "not SELECT before auth");
	ok(imap_cmd_allowed(IMAP_CMD_ENABLE, 0, IMAP_STATE_AUTH) && !imap_cmd_allowed(IMAP_CMD_ENABLE, 0, IMAP_STATE_SELECTED),
	    "ENABLE only before SELECT");
	ok(imap_cmd_allowed(IMAP_CMD_FETCH, 1, IMAP_STATE_SELECTED) && !imap_cmd_allowed(IMAP_CMD_FETCH, 0, IMAP_STATE_AUTH),
	    "FETCH when selected");
	ok(!imap_cmd_allowed(IMAP_CMD_SELECT, 1, IMAP_STATE_SELECTED), "no UID SELECT");
	ok(imap_cmd_allowed(IMAP_CMD_EXPUNGE, 1, IMAP_STATE_SELECTED), "UID EXPUNGE");
	ok(imap_cmd_states(IMAP_CMD_COUNT, 0) == 0 && imap_cmd_states(IMAP_CMD_NONE, 0) == 0, "out of range");
	is_str(imap_cmd_name(IMAP_CMD_GETQUOTAROOT), "GETQUOTAROOT", "names");
	is_str(imap_cmd_name(-1), "?", "bad name");
	{
		int v, bad = 0;

		for (v = IMAP_CMD_NONE + 1; v < IMAP_CMD_COUNT; v++)
			if (imap_cmd_states(v, 0) == 0 || !strcmp(imap_cmd_name(v), "?"))
				bad++;
		ok(bad == 0, "every command has a name and states");
	}
}

/* ---- sequence sets ---- */

static const char *
seq(const char *s, unsigned flags)
{
	static struct buf out;
	struct imap_seqset set;
	const char *why = NULL;
	size_t budget = 100;

	buf_reset(&out);
	if (imap_seq_parse(s, strlen(s), flags, &budget, &set, &why) < 0) {
		buf_printf(&out, "error: %s", why);
		return buf_str(&out);
	}
	imap_seq_write(&out, &set);
	imap_seq_free(&set);
	return buf_str(&out);
}

static const char *
resolved(const char *s, uint32_t max)
{
	static struct buf out;
	struct imap_seqset set, r;
	const char *why = NULL;
	size_t budget = 100;

	buf_reset(&out);
	if (imap_seq_parse(s, strlen(s), IMAP_SEQ_ALLOW_SAVED, &budget, &set, &why) < 0)
		return "error";
	imap_seq_resolve(&set, max, &r);
	imap_seq_write(&out, &r);
	imap_seq_free(&set);
	imap_seq_free(&r);
	return buf_str(&out);
}

static void
test_seq(void)
{
	struct imap_seqset set, r;
	const char *why;
	size_t budget;

	is_str(seq("1:*,5,7:9", 0), "1:*,5,7:9", "RFC style set");
	is_str(seq("*", 0), "*", "star");
	is_str(seq("*:5", 0), "5:*", "*:5 is 5:*");
	is_str(seq("5:2", 0), "2:5", "reversed range normalised");
	is_str(seq("*:*", 0), "*", "*:*");
	is_str(seq("3:3", 0), "3", "3:3");
	is_str(seq("4294967295", 0), "4294967295", "largest number");
	is_str(seq("4294967295:1", 0), "1:4294967295", "largest number, reversed");
	is_str(seq("4294967296", 0), "error: Invalid sequence set: number too large", "uint32 overflow");
	is_str(seq("99999999999999999999999", 0), "error: Invalid sequence set: number too large", "big overflow");
	is_str(seq("0", 0), "error: Invalid sequence set: 0 is not a valid number", "0 invalid");
	is_str(seq("1:0", 0), "error: Invalid sequence set: 0 is not a valid number", "range to 0 invalid");
	is_str(seq("01", 0), "error: Invalid sequence set: 0 is not a valid number", "leading zero invalid");
	is_str(seq("", 0), "error: Invalid sequence set", "empty");
	is_str(seq("1,", 0), "error: Invalid sequence set", "trailing comma");
	is_str(seq(",1", 0), "error: Invalid sequence set", "leading comma");
	is_str(seq("1::2", 0), "error: Invalid sequence set", "double colon");
	is_str(seq("1:", 0), "error: Invalid sequence set", "open range");
	is_str(seq("1*", 0), "error: Invalid sequence set", "number then star");
	is_str(seq("$", 0), "error: \"$\" is not allowed here", "$ needs the flag");
	is_str(seq("$", IMAP_SEQ_ALLOW_SAVED), "$", "$ allowed");
	is_str(seq("1,$", IMAP_SEQ_ALLOW_SAVED), "error: Invalid sequence set", "$ only alone");
	is_str(seq("1:*", IMAP_SEQ_NO_STAR), "error: \"*\" is not allowed in this sequence set", "NO_STAR");
	budget = 2;
	ok(imap_seq_parse("1,2,3", 5, 0, &budget, &set, &why) < 0 && set.n == 0 && set.r == NULL,
	    "budget exceeded, nothing left allocated");
	budget = 3;
	ok(imap_seq_parse("1,2,3", 5, 0, &budget, &set, &why) == 0 && budget == 0, "budget used up exactly");
	ok(imap_seq_highest(&set) == 3, "highest");
	imap_seq_free(&set);

	is_str(resolved("5:*", 3), "3", "5:* with 3 messages includes 3");
	is_str(resolved("1:*,2", 10), "1:10", "merged");
	is_str(resolved("7,1:3,4", 10), "1:4,7", "sorted and adjacent merged");
	is_str(resolved("*", 0), "", "empty mailbox");
	is_str(resolved("*", 9), "9", "* is the last");
	is_str(resolved("20:30", 10), "", "range above max disappears");
	is_str(resolved("8:30", 10), "8:10", "clipped");
	is_str(resolved("4294967295,1", 4294967295u), "1,4294967295", "extremes");
	is_str(resolved("1:4294967295,5", 4294967295u), "1:4294967295", "whole range");
	is_str(resolved("$", 10), "", "$ resolves empty (the caller substitutes)");
	budget = 10;
	ok(imap_seq_parse("1:3,7,10:*", 10, 0, &budget, &set, &why) == 0, "parse for resolve");
	imap_seq_resolve(&set, 12, &r);
	ok(imap_seq_contains(&r, 1) && imap_seq_contains(&r, 3) && !imap_seq_contains(&r, 4) &&
	    imap_seq_contains(&r, 7) && imap_seq_contains(&r, 12) && !imap_seq_contains(&r, 13) &&
	    !imap_seq_contains(&r, 0), "contains");
	is_int(imap_seq_count(&r), 7, "count");
	is_int(imap_seq_highest(&set), 10, "highest ignores *");
	imap_seq_free(&set);
	imap_seq_free(&r);
	memset(&set, 0, sizeof(set));
	imap_seq_add(&set, 9, 5);
	imap_seq_add(&set, 1, 1);
	imap_seq_add(&set, 2, 3);
	imap_seq_normalize(&set);
	{
		struct buf b = BUF_INIT;

		imap_seq_write(&b, &set);
		is_str(buf_str(&b), "1:3,5:9", "builder and normalise");
		buf_free(&b);
	}
	imap_seq_free(&set);
	ok(set.r == NULL && set.n == 0, "free clears");
}

static void
test_write(void)
{
	struct buf b = BUF_INIT;
	struct buf big = BUF_INIT;
	size_t i;

#define W(fn, s, n, want, what) do { buf_reset(&b); fn(&b, s, n); is_str(buf_str(&b), want, what); } while (0)
	W(imap_write_string, "abc", 3, "\"abc\"", "quoted");
	W(imap_write_string, "a\"b\\c", 5, "\"a\\\"b\\\\c\"", "quoted with escapes");
	W(imap_write_string, "", 0, "\"\"", "empty quoted");
	W(imap_write_string, "a\r\nb", 4, "{4}\r\na\r\nb", "CRLF needs a literal");
	W(imap_write_string, "caf\xc3\xa9", 5, "{5}\r\ncaf\xc3\xa9", "8-bit needs a literal");
	W(imap_write_nstring, NULL, 0, "NIL", "NIL");
	W(imap_write_nstring, "x", 1, "\"x\"", "nstring");
	W(imap_write_astring, "INBOX", 5, "INBOX", "atom");
	W(imap_write_astring, "a]b", 3, "a]b", "] in astring");
	W(imap_write_astring, "nil", 3, "\"nil\"", "NIL must be quoted");
	W(imap_write_astring, "", 0, "\"\"", "empty astring");
	W(imap_write_astring, "a b", 3, "\"a b\"", "space needs quotes");
	W(imap_write_astring, "a*", 2, "\"a*\"", "wildcard needs quotes");
	for (i = 0; i < 1025; i++)
		buf_addc(&big, 'x');
	buf_reset(&b);
	imap_write_string(&b, big.data, 1024);
	ok(b.len == 1026 && b.data[0] == '"', "1024 bytes still quoted");
	buf_reset(&b);
	imap_write_string(&b, big.data, 1025);
	ok(strncmp(buf_str(&b), "{1025}\r\n", 8) == 0, "1025 bytes as a literal");
	buf_free(&big);

	/* what is written parses back */
	{
		static const char *const vals[] = { "plain", "with space", "q\"uo\\te", "", "NIL", "a\r\nb", "\xc3\xa9t\xc3\xa9" };
		size_t k;
		int bad = 0;

		state = IMAP_STATE_NOT_AUTH;
		for (k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
			struct imap_cmd *c;

			buf_sets(&b, "a LOGIN ");
			imap_write_astring(&b, vals[k], strlen(vals[k]));
			buf_adds(&b, " ");
			imap_write_astring(&b, vals[k], strlen(vals[k]));
			buf_adds(&b, "\r\n");
			transcript_n(buf_str(&b), b.len, &c);
			if (!c || strcmp(c->login.user, vals[k]) || strcmp(c->login.pass, vals[k])) {
				bad++;
				printf("# '%s' did not come back\n", vals[k]);
			}
			imap_cmd_free(&c);
		}
		ok(bad == 0, "written astrings parse back as the same strings");
		state = IMAP_STATE_SELECTED;
	}
	buf_free(&b);
}

int
main(void)
{
	imap_limits_default(&lim);
	test_basic();
	test_literals();
	test_limits();
	test_auth();
	test_mailboxes();
	test_append();
	test_fetch();
	test_store_copy();
	test_search();
	test_counts();
	test_states();
	test_seq();
	test_write();
	ok(split_mismatches == 0, "every input gave the same results whole and split (%d mismatches)",
	    split_mismatches);
	return done_testing();
}
