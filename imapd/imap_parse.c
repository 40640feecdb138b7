/*
 * imap_parse.c: the IMAP command reader (an explicit byte-driven state
 * machine) and the command grammar (recursive descent over what the
 * reader collected).  RFC 3501 section 9 is the grammar; the extension
 * RFCs are listed in imap_parse.h; doc/imap-parser.md explains the
 * decisions.
 *
 * Invariants:
 * - Memory held for one command is at most line_max + command_max +
 *   append_total_max plus the parsed arguments, whatever the input.
 * - The reader never sends "+" for a literal the command could not use:
 *   each time a line ends in a literal announcement the command so far
 *   is parsed, and a syntax error, a command not valid in this state or
 *   a literal over its limit is refused before the data is read.
 * - After any error the reader drops input up to the end of that
 *   command (a line end not inside a literal, or a "{n}" the client
 *   will not send, or after reading and dropping a refused "{n+}"), so
 *   the next command is read normally.
 * - Parse errors carry printable ASCII text only (the parts of the input
 *   they quote are atoms), so the server can write them as they are.
 */
#include "imap_parse.h"
#include "imap_utf7.h"
#include "base64.h"
#include "util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
imap_limits_default(struct imap_limits *l)
{
	memset(l, 0, sizeof(*l));
	l->line_max = 65536;
	l->literal_max = 65536;
	l->command_max = 1048576;
	l->append_max = 67108864;
	l->append_total_max = 67108864;
	l->literals_max = 256;
	l->discard_max = 16777216;
	l->depth_max = 100;
	l->ranges_max = 10000;
	l->search_keys_max = 1000;
	l->items_max = 1000;
	l->literal_plus = IMAP_LITERAL_PLUS;
	l->strict_crlf = 0;
}

/* ---- the command table ---- */

#define S_ANY	(IMAP_STATE_NOT_AUTH | IMAP_STATE_AUTH | IMAP_STATE_SELECTED)
#define S_NA	IMAP_STATE_NOT_AUTH
#define S_AU	(IMAP_STATE_AUTH | IMAP_STATE_SELECTED)
#define S_SEL	IMAP_STATE_SELECTED

static const struct {
	const char *name;
	unsigned states;
	int uid_ok;
} cmdtab[IMAP_CMD_COUNT] = {
	[IMAP_CMD_CAPABILITY] = { "CAPABILITY", S_ANY, 0 },
	[IMAP_CMD_NOOP] = { "NOOP", S_ANY, 0 },
	[IMAP_CMD_LOGOUT] = { "LOGOUT", S_ANY, 0 },
	[IMAP_CMD_ID] = { "ID", S_ANY, 0 },
	[IMAP_CMD_STARTTLS] = { "STARTTLS", S_NA, 0 },
	[IMAP_CMD_AUTHENTICATE] = { "AUTHENTICATE", S_NA, 0 },
	[IMAP_CMD_LOGIN] = { "LOGIN", S_NA, 0 },
	[IMAP_CMD_SELECT] = { "SELECT", S_AU, 0 },
	[IMAP_CMD_EXAMINE] = { "EXAMINE", S_AU, 0 },
	[IMAP_CMD_CREATE] = { "CREATE", S_AU, 0 },
	[IMAP_CMD_DELETE] = { "DELETE", S_AU, 0 },
	[IMAP_CMD_RENAME] = { "RENAME", S_AU, 0 },
	[IMAP_CMD_SUBSCRIBE] = { "SUBSCRIBE", S_AU, 0 },
	[IMAP_CMD_UNSUBSCRIBE] = { "UNSUBSCRIBE", S_AU, 0 },
	[IMAP_CMD_LIST] = { "LIST", S_AU, 0 },
	[IMAP_CMD_LSUB] = { "LSUB", S_AU, 0 },
	[IMAP_CMD_STATUS] = { "STATUS", S_AU, 0 },
	[IMAP_CMD_APPEND] = { "APPEND", S_AU, 0 },
	[IMAP_CMD_NAMESPACE] = { "NAMESPACE", S_AU, 0 },
	[IMAP_CMD_ENABLE] = { "ENABLE", IMAP_STATE_AUTH, 0 },
	[IMAP_CMD_IDLE] = { "IDLE", S_AU, 0 },
	[IMAP_CMD_COMPRESS] = { "COMPRESS", S_AU, 0 },
	[IMAP_CMD_GETQUOTA] = { "GETQUOTA", S_AU, 0 },
	[IMAP_CMD_GETQUOTAROOT] = { "GETQUOTAROOT", S_AU, 0 },
	[IMAP_CMD_SETQUOTA] = { "SETQUOTA", S_AU, 0 },
	[IMAP_CMD_CHECK] = { "CHECK", S_SEL, 0 },
	[IMAP_CMD_CLOSE] = { "CLOSE", S_SEL, 0 },
	[IMAP_CMD_UNSELECT] = { "UNSELECT", S_SEL, 0 },
	[IMAP_CMD_EXPUNGE] = { "EXPUNGE", S_SEL, 1 },
	[IMAP_CMD_SEARCH] = { "SEARCH", S_SEL, 1 },
	[IMAP_CMD_FETCH] = { "FETCH", S_SEL, 1 },
	[IMAP_CMD_STORE] = { "STORE", S_SEL, 1 },
	[IMAP_CMD_COPY] = { "COPY", S_SEL, 1 },
	[IMAP_CMD_MOVE] = { "MOVE", S_SEL, 1 },
	[IMAP_CMD_SORT] = { "SORT", S_SEL, 1 },
	[IMAP_CMD_THREAD] = { "THREAD", S_SEL, 1 },
};

unsigned
imap_cmd_states(int verb, int uid)
{
	if (verb <= IMAP_CMD_NONE || verb >= IMAP_CMD_COUNT)
		return 0;
	if (uid)
		return cmdtab[verb].uid_ok ? IMAP_STATE_SELECTED : 0;
	return cmdtab[verb].states;
}

int
imap_cmd_allowed(int verb, int uid, int state)
{
	return (imap_cmd_states(verb, uid) & (unsigned)state) != 0;
}

const char *
imap_cmd_name(int verb)
{
	if (verb <= IMAP_CMD_NONE || verb >= IMAP_CMD_COUNT)
		return "?";
	return cmdtab[verb].name;
}

/* ---- characters ---- */

static int
ieq(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

static int
is_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

static int
is_alpha(int ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

/* ATOM-CHAR: CHAR except atom-specials "(" ")" "{" SP CTL "%" "*"
 * quoted-specials and "]" */
static int
is_atom_char(int ch)
{
	return ch > 0x20 && ch < 0x7f && ch != '(' && ch != ')' && ch != '{' &&
	    ch != '%' && ch != '*' && ch != '"' && ch != '\\' && ch != ']';
}

static int
is_astring_char(int ch)
{
	return is_atom_char(ch) || ch == ']';
}

static int
is_tag_char(int ch)
{
	return is_astring_char(ch) && ch != '+';
}

static int
is_list_char(int ch)
{
	return is_astring_char(ch) || ch == '%' || ch == '*';
}

static int
is_seq_char(int ch)
{
	return is_digit(ch) || ch == ':' || ch == ',' || ch == '*' || ch == '$';
}

static int
is_name_char(int ch)
{
	return is_alpha(ch) || is_digit(ch) || ch == '.' || ch == '-';
}

static int
is_b64_char(int ch)
{
	return is_alpha(ch) || is_digit(ch) || ch == '+' || ch == '/' || ch == '=';
}

static int
cmd_lookup(const char *s, size_t n)
{
	int v;

	for (v = IMAP_CMD_NONE + 1; v < IMAP_CMD_COUNT; v++)
		if (ieq(s, n, cmdtab[v].name))
			return v;
	return IMAP_CMD_NONE;
}

/* ---- the reader ---- */

struct lit {
	size_t mark;		/* offset of "{" (or "~") in text */
	size_t data;		/* offset of the literal data */
	uint64_t len;
	int binary, plus;
};

enum reader_state {
	RS_LINE,		/* command text, up to LF */
	RS_LITERAL,		/* literal data, kept */
	RS_DISCARD,		/* refused {n+} data, dropped */
	RS_DEAD,		/* after IMAP_R_CLOSE */
};

/* md: the trailing literal-announcement detector, ~?{digits+?} at the
 * end of a line, updated per byte so that a discarded line is watched
 * too. */
enum {
	MD_NONE, MD_OPEN, MD_DIGITS, MD_PLUS, MD_CLOSED,
};

struct imap_parser {
	struct imap_limits lim;
	int state;		/* session state, for early refusals */
	int utf8;
	int expect;		/* enum imap_expect */
	struct buf expect_tag;
	int rs;			/* enum reader_state */
	struct buf text;	/* the command: lines without CRLF, literal data inline */
	struct lit *lits;
	size_t nlits, alits;
	size_t line_bytes;	/* text bytes that are not literal data */
	uint64_t remain;	/* bytes left of the literal read or dropped */
	uint64_t discarded;
	int cur_binary;
	int busy;
	int cr;			/* the previous byte was a CR */
	int md, md_plus, md_bin, prev;
	uint64_t md_n;
	size_t md_off;
	/* the refusal of the command being read, sent when it has ended */
	int err;
	const char *err_status, *err_code;
	struct buf err_text;
	/* what results point to */
	struct buf rtag, rtext, sasl;
};

static void
md_reset(struct imap_parser *p)
{
	p->md = MD_NONE;
	p->prev = 0;
}

static void
md_step(struct imap_parser *p, int c)
{
	if (c == '{') {
		p->md = MD_OPEN;
		p->md_n = 0;
		p->md_plus = 0;
		p->md_bin = p->prev == '~';
		/* only meaningful while text is kept (no error yet) */
		p->md_off = p->text.len - (p->md_bin && p->text.len ? 1 : 0);
	} else if ((p->md == MD_OPEN || p->md == MD_DIGITS) && is_digit(c)) {
		p->md = MD_DIGITS;
		if (p->md_n > (UINT64_MAX - 9) / 10)
			p->md_n = UINT64_MAX;	/* saturate: over every limit */
		else
			p->md_n = p->md_n * 10 + (uint64_t)(c - '0');
	} else if (p->md == MD_DIGITS && c == '+') {
		p->md = MD_PLUS;
		p->md_plus = 1;
	} else if ((p->md == MD_DIGITS || p->md == MD_PLUS) && c == '}')
		p->md = MD_CLOSED;
	else
		p->md = MD_NONE;
	p->prev = c;
}

static void
cmd_reset(struct imap_parser *p)
{
	/* don't keep a big literal's allocation for the next NOOP */
	if (p->text.cap > p->lim.line_max + 1 && p->text.cap > 65536)
		buf_free(&p->text);
	else
		buf_reset(&p->text);
	p->nlits = 0;
	p->line_bytes = 0;
	p->remain = 0;
	p->discarded = 0;
	p->cur_binary = 0;
	p->busy = 0;
	p->cr = 0;
	p->err = 0;
	p->err_status = p->err_code = NULL;
	md_reset(p);
	if (p->rs != RS_DEAD)
		p->rs = RS_LINE;
}

static void
reject(struct imap_parser *p, const char *status, const char *code,
    const char *text)
{
	if (p->err)
		return;
	p->err = 1;
	p->err_status = status;
	p->err_code = code;
	buf_sets(&p->err_text, text);
}

/* The tag and command of what has been read, for a refusal: "*" unless
 * a tag followed by a space is there (RFC 3501 7.1.3: untagged BAD when
 * the tag cannot be found). */
static void
peek_tag(struct imap_parser *p, int *verb, int *uid)
{
	const char *t = buf_str(&p->text);
	size_t n = p->nlits ? p->lits[0].mark : p->text.len;
	size_t k = 0, s, e;

	*verb = IMAP_CMD_NONE;
	*uid = 0;
	while (k < n && is_tag_char((unsigned char)t[k]))
		k++;
	if (k == 0 || k >= n || t[k] != ' ') {
		buf_sets(&p->rtag, "*");
		return;
	}
	buf_reset(&p->rtag);
	buf_add(&p->rtag, t, k);
	s = e = k + 1;
	while (e < n && is_atom_char((unsigned char)t[e]))
		e++;
	if (ieq(t + s, e - s, "UID") && e < n && t[e] == ' ') {
		int v;

		s = e = e + 1;
		while (e < n && is_atom_char((unsigned char)t[e]))
			e++;
		v = cmd_lookup(t + s, e - s);
		if (v && cmdtab[v].uid_ok) {
			*verb = v;
			*uid = 1;
		}
		return;
	}
	*verb = cmd_lookup(t + s, e - s);
}

/* Fill res with the pending refusal (p->err_*); tag NULL: the command's. */
static void
result_error(struct imap_parser *p, struct imap_result *res, int kind,
    const char *tag)
{
	int verb = IMAP_CMD_NONE, uid = 0;

	if (tag)
		buf_sets(&p->rtag, tag);
	else
		peek_tag(p, &verb, &uid);
	buf_sets(&p->rtext, buf_str(&p->err_text));
	res->kind = kind;
	res->tag = buf_str(&p->rtag);
	res->verb = verb;
	res->uid = uid;
	res->status = p->err_status ? p->err_status : "BAD";
	res->code = p->err_code;
	res->text = buf_str(&p->rtext);
}

static struct imap_cmd *run_parse(struct imap_parser *p, int prefix,
    int *incomplete);

static void
finish(struct imap_parser *p, struct imap_result *res)
{
	if (!p->err) {
		int inc = 0;
		struct imap_cmd *cmd = run_parse(p, 0, &inc);

		if (cmd) {
			if (cmd->verb == IMAP_CMD_APPEND) {
				/* the messages point into the text: hand it over */
				cmd->raw = p->text;
				buf_init(&p->text);
			}
			res->kind = IMAP_R_COMMAND;
			res->cmd = cmd;
			cmd_reset(p);
			return;
		}
		p->err = 1;
	}
	result_error(p, res, IMAP_R_ERROR, NULL);
	cmd_reset(p);
}

static int
expect_line(struct imap_parser *p, struct imap_result *res)
{
	int what = p->expect;
	const char *t = buf_str(&p->text);

	p->expect = IMAP_EXPECT_COMMAND;
	if (what == IMAP_EXPECT_DONE) {
		if (!p->err && ieq(t, p->text.len, "DONE")) {
			buf_sets(&p->rtag, buf_str(&p->expect_tag));
			res->kind = IMAP_R_DONE;
			res->tag = buf_str(&p->rtag);
		} else {
			/* RFC 2177: anything else ends IDLE with a BAD */
			p->err = 0;
			reject(p, "BAD", NULL, "Expected DONE");
			result_error(p, res, IMAP_R_ERROR, buf_str(&p->expect_tag));
		}
	} else if (!p->err && p->text.len == 1 && t[0] == '*') {
		buf_sets(&p->rtag, buf_str(&p->expect_tag));
		res->kind = IMAP_R_SASL;
		res->tag = buf_str(&p->rtag);
		res->cancel = 1;
	} else {
		buf_reset(&p->sasl);
		if (!p->err && base64_decode(t, p->text.len, &p->sasl) < 0)
			reject(p, "BAD", NULL, "Invalid base64 in the SASL response");
		if (p->err)
			result_error(p, res, IMAP_R_ERROR, buf_str(&p->expect_tag));
		else {
			buf_sets(&p->rtag, buf_str(&p->expect_tag));
			res->kind = IMAP_R_SASL;
			res->tag = buf_str(&p->rtag);
			res->sasl = &p->sasl;
		}
	}
	cmd_reset(p);
	return 1;
}

static void
go_dead(struct imap_parser *p, struct imap_result *res)
{
	result_error(p, res, IMAP_R_CLOSE, NULL);
	p->rs = RS_DEAD;
	cmd_reset(p);
	buf_free(&p->text);
}

/* A line ended in "{n}", "{n+}", "~{n}" or "~{n+}". */
static int
literal_announced(struct imap_parser *p, struct imap_result *res)
{
	uint64_t n = p->md_n;
	int plus = p->md_plus, bin = p->md_bin;
	size_t mark = p->md_off;

	md_reset(p);
	if (!p->err) {
		if (plus && p->lim.literal_plus == IMAP_LITERAL_NONE)
			reject(p, "BAD", NULL, "Non-synchronizing literals are not supported");
		else if (plus && p->lim.literal_plus == IMAP_LITERAL_MINUS && n > 4096)
			reject(p, "BAD", "TOOBIG", "Non-synchronizing literal larger than 4096 bytes (LITERAL-)");
		else if (p->nlits >= p->lim.literals_max)
			reject(p, "BAD", NULL, "Too many literals in one command");
	}
	if (!p->err) {
		struct imap_cmd *cmd;
		struct lit *l;
		int inc = 0;

		if (p->nlits == p->alits) {
			p->alits = p->alits ? p->alits * 2 : 4;
			p->lits = xreallocarray(p->lits, p->alits, sizeof(*p->lits));
		}
		l = &p->lits[p->nlits++];
		l->mark = mark;
		l->data = p->text.len;
		l->len = n;
		l->binary = bin;
		l->plus = plus;
		cmd = run_parse(p, 1, &inc);
		if (cmd) {
			/* cannot happen: the literal is at the end; be safe */
			imap_cmd_free(&cmd);
			reject(p, "BAD", NULL, "Unexpected literal");
		} else if (!inc)
			p->err = 1;	/* run_parse left the reason in err_* */
	}
	if (p->err) {
		if (!plus) {
			/* the client waits for "+", so the command ends here */
			finish(p, res);
			return 1;
		}
		/* RFC 7888 section 4: the client sends the data anyway, so
		 * read and drop it, or close when it is too much */
		if (n > p->lim.discard_max - p->discarded) {
			go_dead(p, res);
			return 1;
		}
		p->discarded += n;
		p->remain = n;
		p->rs = n ? RS_DISCARD : RS_LINE;
		return 0;
	}
	p->cur_binary = bin;
	p->remain = n;
	p->rs = n ? RS_LITERAL : RS_LINE;
	if (!plus) {
		res->kind = IMAP_R_CONTINUE;
		res->text = "Ready for literal data";
		return 1;
	}
	return 0;
}

static int
line_end(struct imap_parser *p, struct imap_result *res)
{
	int had_cr = p->cr;

	p->cr = 0;
	if (!had_cr && p->lim.strict_crlf)
		reject(p, "BAD", NULL, "Line not ended by CRLF");
	if (p->expect != IMAP_EXPECT_COMMAND)
		return expect_line(p, res);
	if (p->md == MD_CLOSED)
		return literal_announced(p, res);
	if (!p->err && p->text.len == 0 && p->nlits == 0) {
		/* an empty line between commands: ignored, as clients send
		 * stray CRLFs and nothing was asked */
		cmd_reset(p);
		return 0;
	}
	finish(p, res);
	return 1;
}

size_t
imap_parser_feed(struct imap_parser *p, const void *data, size_t n,
    struct imap_result *res)
{
	const unsigned char *d = data;
	size_t i = 0;

	memset(res, 0, sizeof(*res));
	res->kind = IMAP_R_MORE;
	if (p->rs == RS_DEAD)
		return n;	/* IMAP_R_CLOSE was said once; the rest is dropped */
	while (i < n) {
		int c;

		if (p->rs == RS_LITERAL || p->rs == RS_DISCARD) {
			size_t take = n - i;

			if (take > p->remain)
				take = (size_t)p->remain;
			if (p->rs == RS_LITERAL && !p->err) {
				if (!p->cur_binary && memchr(d + i, 0, take))
					reject(p, "BAD", NULL, "NUL in literal");
				else
					buf_add(&p->text, d + i, take);
			}
			p->remain -= take;
			i += take;
			if (p->remain == 0) {
				p->rs = RS_LINE;
				md_reset(p);
			}
			continue;
		}
		c = d[i++];
		p->busy = 1;
		if (c == '\n') {
			if (line_end(p, res))
				return i;
			continue;
		}
		if (p->cr) {
			p->cr = 0;
			reject(p, "BAD", NULL, "CR inside a line");
		}
		if (c == '\r') {
			p->cr = 1;
			continue;
		}
		if (c == 0)
			reject(p, "BAD", NULL, "NUL in command line");
		md_step(p, c);
		if (++p->line_bytes > p->lim.line_max)
			reject(p, "BAD", NULL, "Command line too long");
		if (!p->err)
			buf_addc(&p->text, c);
	}
	return i;
}

struct imap_parser *
imap_parser_new(const struct imap_limits *lim)
{
	struct imap_parser *p = xcalloc(1, sizeof(*p));

	if (lim)
		p->lim = *lim;
	else
		imap_limits_default(&p->lim);
	p->state = IMAP_STATE_NOT_AUTH;
	p->rs = RS_LINE;
	return p;
}

void
imap_parser_free(struct imap_parser **pp)
{
	struct imap_parser *p = *pp;

	if (!p)
		return;
	buf_free(&p->expect_tag);
	buf_free(&p->text);
	free(p->lits);
	buf_free(&p->err_text);
	buf_free(&p->rtag);
	buf_free(&p->rtext);
	buf_free(&p->sasl);
	free(p);
	*pp = NULL;
}

void
imap_parser_set_state(struct imap_parser *p, int state)
{
	p->state = state;
}

void
imap_parser_set_utf8(struct imap_parser *p, int on)
{
	p->utf8 = on;
}

void
imap_parser_expect(struct imap_parser *p, int what, const char *tag)
{
	p->expect = what;
	buf_sets(&p->expect_tag, tag ? tag : "*");
}

int
imap_parser_busy(const struct imap_parser *p)
{
	return p->busy || p->rs == RS_LITERAL || p->rs == RS_DISCARD;
}

size_t
imap_parser_memory(const struct imap_parser *p)
{
	return p->text.cap + p->alits * sizeof(*p->lits) + p->err_text.cap +
	    p->rtag.cap + p->rtext.cap + p->sasl.cap + p->expect_tag.cap;
}

/* ---- the grammar: a cursor over the collected command ---- */

enum { ROLE_STRING, ROLE_MESSAGE };

#define CH_END	(-1)	/* end of the command */
#define CH_LIT	(-2)	/* a literal starts here */

struct cur {
	struct imap_parser *p;
	const char *t;
	size_t len, pos;
	const struct lit *lits;
	size_t nlits, li;	/* li: the next literal */
	int prefix;		/* the last literal's data is not here yet */
	int failed, incomplete;
	const char *status, *code;
	struct buf *why;
	unsigned depth;
	size_t ranges_left, keys_left;
	uint64_t other_sum, msg_sum;
};

static int fail(struct cur *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
fail(struct cur *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->failed) {
		c->failed = 1;
		c->status = "BAD";
		c->code = NULL;
		buf_reset(c->why);
		va_start(ap, fmt);
		buf_vprintf(c->why, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int
fail_code(struct cur *c, const char *status, const char *code,
    const char *text)
{
	if (!c->failed) {
		c->failed = 1;
		c->status = status;
		c->code = code;
		buf_sets(c->why, text);
	}
	return -1;
}

/* Where the current line segment ends: the next literal or the end. */
static size_t
seg_end(const struct cur *c)
{
	return c->li < c->nlits ? c->lits[c->li].mark : c->len;
}

static int
peek(const struct cur *c)
{
	if (c->pos < seg_end(c))
		return (unsigned char)c->t[c->pos];
	return c->li < c->nlits ? CH_LIT : CH_END;
}

/* The second byte from here, inside the segment, or CH_END. */
static int
peek2(const struct cur *c)
{
	if (c->pos + 1 < seg_end(c))
		return (unsigned char)c->t[c->pos + 1];
	return CH_END;
}

static size_t
span(const struct cur *c, int (*ok)(int))
{
	size_t end = seg_end(c), i = c->pos;

	while (i < end && ok((unsigned char)c->t[i]))
		i++;
	return i - c->pos;
}

static int
sp(struct cur *c)
{
	int ch = peek(c);

	if (ch == ' ') {
		c->pos++;
		return 0;
	}
	if (ch == CH_END)
		return fail(c, "Missing argument");
	return fail(c, "Expected a space");
}

static int
expect_ch(struct cur *c, int want)
{
	if (peek(c) == want) {
		c->pos++;
		return 0;
	}
	return fail(c, "Expected \"%c\"", want);
}

static int
end_of_command(struct cur *c)
{
	if (peek(c) == CH_END)
		return 0;
	return fail(c, "Unexpected characters at the end of the command");
}

/* A run of characters that pred accepts, at least one. */
static int
word_of(struct cur *c, int (*pred)(int), const char **s, size_t *n, const char *what)
{
	size_t k = span(c, pred);

	/* set even on failure: callers' compilers cannot see fail() is -1 */
	*s = c->t + c->pos;
	*n = k;
	if (k == 0)
		return fail(c, "Expected %s", what);
	c->pos += k;
	return 0;
}

static int
atom(struct cur *c, const char **s, size_t *n, const char *what)
{
	return word_of(c, is_atom_char, s, n, what);
}

/* A word made of letters, digits, "." and "-" (FETCH items, section
 * names, STORE keywords: their names hold "." and they touch "[" or
 * "<", which are atom characters). */
static int
name(struct cur *c, const char **s, size_t *n, const char *what)
{
	return word_of(c, is_name_char, s, n, what);
}

/* Consume the atom word if it is there (case-insensitive). */
static int
accept_word(struct cur *c, const char *word)
{
	size_t k = span(c, is_atom_char);

	if (ieq(c->t + c->pos, k, word)) {
		c->pos += k;
		return 1;
	}
	return 0;
}

static int
literal(struct cur *c, int role, const char **s, size_t *n, int *binary)
{
	const struct lit *l = &c->lits[c->li];
	const struct imap_limits *lim = &c->p->lim;

	*s = NULL;
	*n = 0;
	if (l->binary && role != ROLE_MESSAGE)
		return fail(c, "Binary literals are only allowed for APPEND messages");
	if (role == ROLE_MESSAGE) {
		if (l->len > lim->append_max)
			return fail_code(c, "NO", "TOOBIG", "Message too large");
		c->msg_sum += l->len;
		if (c->msg_sum > lim->append_total_max)
			return fail_code(c, "NO", "TOOBIG", "Messages too large in total");
	} else {
		if (l->len > lim->literal_max)
			return fail_code(c, "BAD", "TOOBIG", "Literal too large");
		c->other_sum += l->len;
	}
	if (c->other_sum + c->p->line_bytes > lim->command_max)
		return fail_code(c, "BAD", "TOOBIG", "Command too large");
	if (c->prefix && c->li + 1 == c->nlits) {
		c->incomplete = 1;
		return fail(c, "Incomplete");
	}
	*s = c->t + l->data;
	*n = (size_t)l->len;
	if (binary)
		*binary = l->binary;
	c->pos = l->data + (size_t)l->len;
	c->li++;
	return 0;
}

/* quoted = DQUOTE *QUOTED-CHAR DQUOTE, with \" and \\ the only escapes.
 * 8-bit bytes are taken (clients send UTF-8 search strings). */
static int
quoted(struct cur *c, struct buf *out)
{
	size_t end = seg_end(c), i;

	for (i = c->pos + 1; i < end; i++) {
		char ch = c->t[i];

		if (ch == '"') {
			c->pos = i + 1;
			return 0;
		}
		if (ch == '\\') {
			if (i + 1 >= end || (c->t[i + 1] != '"' && c->t[i + 1] != '\\'))
				return fail(c, "Invalid escape in a quoted string");
			ch = c->t[++i];
		}
		buf_addc(out, ch);
	}
	return fail(c, "Unterminated quoted string");
}

/* A string (quoted or literal), or with atomc also a bare word of those
 * characters (astring, list-mailbox).  out is replaced. */
static int
get_string(struct cur *c, struct buf *out, int (*atomc)(int),
    const char *what)
{
	int ch = peek(c);

	buf_reset(out);
	if (ch == '"')
		return quoted(c, out);
	if (ch == CH_LIT) {
		const char *s;
		size_t n;

		if (literal(c, ROLE_STRING, &s, &n, NULL) < 0)
			return -1;
		buf_add(out, s, n);
		return 0;
	}
	if (atomc) {
		size_t k = span(c, atomc);

		if (k) {
			buf_add(out, c->t + c->pos, k);
			c->pos += k;
			return 0;
		}
	}
	return fail(c, "Expected %s", what);
}

static int
astring(struct cur *c, char **out, const char *what)
{
	struct buf b = BUF_INIT;

	if (get_string(c, &b, is_astring_char, what) < 0) {
		buf_free(&b);
		return -1;
	}
	*out = buf_steal(&b);
	return 0;
}

static int
string(struct cur *c, char **out, size_t *n, const char *what)
{
	struct buf b = BUF_INIT;

	if (get_string(c, &b, NULL, what) < 0) {
		buf_free(&b);
		return -1;
	}
	*n = b.len;
	*out = buf_steal(&b);
	return 0;
}

/* nstring: NIL gives *out NULL */
static int
nstring(struct cur *c, char **out, size_t *n, const char *what)
{
	size_t k = span(c, is_atom_char);

	if (ieq(c->t + c->pos, k, "NIL")) {
		c->pos += k;
		*out = NULL;
		*n = 0;
		return 0;
	}
	return string(c, out, n, what);
}

static int
number(struct cur *c, uint64_t max, int nz, uint64_t *out, const char *what)
{
	size_t end = seg_end(c), i = c->pos;
	uint64_t v = 0;

	*out = 0;
	if (i >= end || !is_digit((unsigned char)c->t[i]))
		return fail(c, "Expected %s", what);
	for (; i < end && is_digit((unsigned char)c->t[i]); i++) {
		uint64_t dg = (uint64_t)(c->t[i] - '0');

		if (v > (max - dg) / 10)
			return fail(c, "Number too large for %s", what);
		v = v * 10 + dg;
	}
	if (nz && v == 0)
		return fail(c, "Expected %s, not 0", what);
	c->pos = i;
	*out = v;
	return 0;
}

static int
number32(struct cur *c, int nz, uint32_t *out, const char *what)
{
	uint64_t v;

	if (number(c, UINT32_MAX, nz, &v, what) < 0)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* mod-sequence-value (nz) / mod-sequence-valzer: 63 bits (RFC 7162) */
static int
modseq(struct cur *c, int nz, uint64_t *out)
{
	return number(c, INT64_MAX, nz, out, "a mod-sequence");
}

static int
seqset(struct cur *c, struct imap_seqset *set, unsigned flags)
{
	size_t k = span(c, is_seq_char);
	const char *why = NULL;

	if (k == 0)
		return fail(c, "Expected a sequence set");
	imap_seq_free(set);
	if (imap_seq_parse(c->t + c->pos, k, flags, &c->ranges_left, set, &why) < 0)
		return fail(c, "%s", why);
	c->pos += k;
	return 0;
}

/* ---- mailbox names ---- */

static int
mailbox_from(struct cur *c, const char *s, size_t n, struct imap_mailbox *mb)
{
	struct buf b = BUF_INIT;

	free(mb->name);
	free(mb->utf8);
	mb->name = mb->utf8 = NULL;
	mb->inbox = 0;
	if (ieq(s, n, "INBOX")) {
		mb->name = xstrdup("INBOX");
		mb->utf8 = xstrdup("INBOX");
		mb->inbox = 1;
		return 0;
	}
	if (c->p->utf8) {
		if (imap_utf7_encode(s, n, &b) < 0) {
			buf_free(&b);
			return fail(c, "Mailbox name is not valid UTF-8");
		}
		mb->name = buf_steal(&b);
		mb->utf8 = xstrndup(s, n);
	} else {
		if (imap_utf7_decode(s, n, &b) < 0) {
			buf_free(&b);
			return fail(c, "Mailbox name is not valid modified UTF-7");
		}
		mb->utf8 = buf_steal(&b);
		mb->name = xstrndup(s, n);
	}
	return 0;
}

static int
mailbox(struct cur *c, struct imap_mailbox *mb, int pattern)
{
	struct buf b = BUF_INIT;
	int r;

	r = get_string(c, &b, pattern ? is_list_char : is_astring_char,
	    pattern ? "a mailbox pattern" : "a mailbox name");
	if (r == 0)
		r = mailbox_from(c, buf_str(&b), b.len, mb);
	buf_free(&b);
	return r;
}

/* ---- flags ---- */

static const struct {
	const char *name;
	unsigned bit;
} sysflags[] = {
	{ "Answered", IMAP_FLAG_ANSWERED }, { "Flagged", IMAP_FLAG_FLAGGED },
	{ "Deleted", IMAP_FLAG_DELETED }, { "Seen", IMAP_FLAG_SEEN },
	{ "Draft", IMAP_FLAG_DRAFT },
};

static int
add_str(struct cur *c, char ***v, size_t *n, const char *s, size_t len,
    const char *what)
{
	if (*n >= c->p->lim.items_max)
		return fail(c, "Too many %s", what);
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[(*n)++] = xstrndup(s, len);
	return 0;
}

/* flag: a system flag or a keyword; \Recent cannot be set (RFC 3501
 * 2.3.2) and unknown \Flags are refused rather than stored. */
static int
flag(struct cur *c, struct imap_flags *f)
{
	const char *s;
	size_t n, i;

	if (peek(c) == '\\') {
		c->pos++;
		if (atom(c, &s, &n, "a flag name") < 0)
			return -1;
		for (i = 0; i < sizeof(sysflags) / sizeof(sysflags[0]); i++)
			if (ieq(s, n, sysflags[i].name)) {
				f->sys |= sysflags[i].bit;
				return 0;
			}
		if (ieq(s, n, "Recent"))
			return fail(c, "\\Recent cannot be set");
		return fail(c, "Unknown system flag \\%.*s", n > 40 ? 40 : (int)n, s);
	}
	if (atom(c, &s, &n, "a flag") < 0)
		return -1;
	return add_str(c, &f->kw, &f->nkw, s, n, "flags");
}

static int
flag_list(struct cur *c, struct imap_flags *f)
{
	if (expect_ch(c, '(') < 0)
		return -1;
	if (peek(c) == ')') {
		c->pos++;
		return 0;
	}
	for (;;) {
		if (flag(c, f) < 0)
			return -1;
		if (peek(c) == ')') {
			c->pos++;
			return 0;
		}
		if (sp(c) < 0)
			return -1;
	}
}

/* ---- dates ---- */

static const char *const months[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

static int
month(const char *s)
{
	int i;

	for (i = 0; i < 12; i++)
		if (strncasecmp(s, months[i], 3) == 0)
			return i + 1;
	return 0;
}

static int
days_in(int y, int m)
{
	static const int d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return d[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t
days_from_civil(int y, int m, int d)
{
	int64_t yy = y - (m <= 2);
	int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
	int64_t yoe = yy - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

static int
digits(const char *s, size_t n, size_t *i, size_t count, int *out)
{
	int v = 0;
	size_t k;

	for (k = 0; k < count; k++) {
		if (*i >= n || !is_digit((unsigned char)s[*i]))
			return -1;
		v = v * 10 + (s[(*i)++] - '0');
	}
	*out = v;
	return 0;
}

/* "d-Mon-yyyy" (day 1 or 2 digits) into *d; at *i, moved past it */
static int
date_at(const char *s, size_t n, size_t *i, struct imap_date *d)
{
	int day;

	if (digits(s, n, i, 1, &day) < 0)
		return -1;
	if (*i < n && is_digit((unsigned char)s[*i]))
		day = day * 10 + (s[(*i)++] - '0');
	if (*i + 5 > n || s[*i] != '-' || (d->mon = month(s + *i + 1)) == 0 ||
	    s[*i + 4] != '-')
		return -1;
	*i += 5;
	if (digits(s, n, i, 4, &d->year) < 0)
		return -1;
	if (day < 1 || day > days_in(d->year, d->mon))
		return -1;
	d->day = day;
	return 0;
}

static int
date_arg(struct cur *c, struct imap_date *d)
{
	struct buf b = BUF_INIT;
	size_t i = 0;
	int r = 0;

	/* date = date-text / DQUOTE date-text DQUOTE */
	if (peek(c) == '"')
		r = quoted(c, &b);
	else {
		size_t k = span(c, is_atom_char);

		buf_add(&b, c->t + c->pos, k);
		c->pos += k;
	}
	if (r == 0 && (date_at(b.data ? b.data : "", b.len, &i, d) < 0 || i != b.len))
		r = fail(c, "Invalid date");
	buf_free(&b);
	return r;
}

/* date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time
 * SP zone DQUOTE.  The day may also be one digit without the space
 * (clients do send that). */
static int
datetime_text(const char *s, size_t n, struct imap_datetime *dt)
{
	struct imap_date d;
	size_t i = 0;
	int h, mi, se, zh, zm, sign;

	if (n && s[0] == ' ') {
		i = 1;
		if (n < 3 || !is_digit((unsigned char)s[1]) || is_digit((unsigned char)s[2]))
			return -1;
	}
	if (date_at(s, n, &i, &d) < 0)
		return -1;
	if (i >= n || s[i++] != ' ' || digits(s, n, &i, 2, &h) < 0 ||
	    i >= n || s[i++] != ':' || digits(s, n, &i, 2, &mi) < 0 ||
	    i >= n || s[i++] != ':' || digits(s, n, &i, 2, &se) < 0 ||
	    i >= n || s[i++] != ' ' || i >= n)
		return -1;
	if (s[i] != '+' && s[i] != '-')
		return -1;
	sign = s[i++] == '-' ? -1 : 1;
	if (digits(s, n, &i, 2, &zh) < 0 || digits(s, n, &i, 2, &zm) < 0 || i != n)
		return -1;
	if (h > 23 || mi > 59 || se > 60 || zh > 23 || zm > 59)
		return -1;
	dt->zone = sign * (zh * 60 + zm);
	dt->t = days_from_civil(d.year, d.mon, d.day) * 86400 +
	    h * 3600 + mi * 60 + se - (int64_t)dt->zone * 60;
	return 0;
}

static int
datetime(struct cur *c, struct imap_datetime *dt)
{
	struct buf b = BUF_INIT;
	int r;

	if (peek(c) != '"')
		return fail(c, "Expected a quoted date-time");
	r = quoted(c, &b);
	if (r == 0 && datetime_text(buf_str(&b), b.len, dt) < 0)
		r = fail(c, "Invalid date-time");
	buf_free(&b);
	return r;
}

/* ---- word tables ---- */

struct word {
	const char *name;
	int val;
};

static int
word_val(const struct word *w, const char *s, size_t n)
{
	for (; w->name; w++)
		if (ieq(s, n, w->name))
			return w->val;
	return 0;
}

static const struct word status_words[] = {
	{ "MESSAGES", IMAP_STATUS_MESSAGES }, { "RECENT", IMAP_STATUS_RECENT },
	{ "UIDNEXT", IMAP_STATUS_UIDNEXT }, { "UIDVALIDITY", IMAP_STATUS_UIDVALIDITY },
	{ "UNSEEN", IMAP_STATUS_UNSEEN }, { "HIGHESTMODSEQ", IMAP_STATUS_HIGHESTMODSEQ },
	{ "SIZE", IMAP_STATUS_SIZE }, { "DELETED", IMAP_STATUS_DELETED },
	{ NULL, 0 }
};

static const struct word list_sel_words[] = {
	{ "SUBSCRIBED", IMAP_LIST_SEL_SUBSCRIBED }, { "REMOTE", IMAP_LIST_SEL_REMOTE },
	{ "RECURSIVEMATCH", IMAP_LIST_SEL_RECURSIVEMATCH },
	{ "SPECIAL-USE", IMAP_LIST_SEL_SPECIAL_USE },
	{ NULL, 0 }
};

static const struct word list_ret_words[] = {
	{ "SUBSCRIBED", IMAP_LIST_RET_SUBSCRIBED }, { "CHILDREN", IMAP_LIST_RET_CHILDREN },
	{ "SPECIAL-USE", IMAP_LIST_RET_SPECIAL_USE }, { "STATUS", IMAP_LIST_RET_STATUS },
	{ NULL, 0 }
};

static const struct word search_ret_words[] = {
	{ "MIN", IMAP_SEARCH_RET_MIN }, { "MAX", IMAP_SEARCH_RET_MAX },
	{ "ALL", IMAP_SEARCH_RET_ALL }, { "COUNT", IMAP_SEARCH_RET_COUNT },
	{ "SAVE", IMAP_SEARCH_RET_SAVE },
	{ NULL, 0 }
};

static const struct word sort_words[] = {
	{ "ARRIVAL", IMAP_SORT_ARRIVAL }, { "CC", IMAP_SORT_CC },
	{ "DATE", IMAP_SORT_DATE }, { "FROM", IMAP_SORT_FROM },
	{ "SIZE", IMAP_SORT_SIZE }, { "SUBJECT", IMAP_SORT_SUBJECT },
	{ "TO", IMAP_SORT_TO }, { "DISPLAYFROM", IMAP_SORT_DISPLAYFROM },
	{ "DISPLAYTO", IMAP_SORT_DISPLAYTO },
	{ NULL, 0 }
};

static const struct word thread_words[] = {
	{ "ORDEREDSUBJECT", IMAP_THREAD_ORDEREDSUBJECT },
	{ "REFERENCES", IMAP_THREAD_REFERENCES },
	{ NULL, 0 }
};

/* "(" word *(SP word) ")" of a table into a bit mask; empty_ok allows
 * "()".  Unknown words are a BAD (RFC 5258 3: unknown options MUST be
 * refused). */
static int
word_list(struct cur *c, const struct word *tab, unsigned *mask, int empty_ok,
    const char *what)
{
	const char *s;
	size_t n;
	int v;

	if (expect_ch(c, '(') < 0)
		return -1;
	if (peek(c) == ')') {
		if (!empty_ok)
			return fail(c, "Expected %s", what);
		c->pos++;
		return 0;
	}
	for (;;) {
		if (atom(c, &s, &n, what) < 0)
			return -1;
		if ((v = word_val(tab, s, n)) == 0)
			return fail(c, "Unknown %s %.*s", what, n > 40 ? 40 : (int)n, s);
		*mask |= (unsigned)v;
		if (peek(c) == ')') {
			c->pos++;
			return 0;
		}
		if (sp(c) < 0)
			return -1;
	}
}

/* ---- commands ---- */

static int
p_authenticate(struct cur *c, struct imap_cmd *cmd)
{
	const char *s;
	size_t n, i;

	if (sp(c) < 0 || atom(c, &s, &n, "a SASL mechanism") < 0)
		return -1;
	cmd->auth.mech = xstrndup(s, n);
	for (i = 0; i < n; i++)
		if (cmd->auth.mech[i] >= 'a' && cmd->auth.mech[i] <= 'z')
			cmd->auth.mech[i] = (char)(cmd->auth.mech[i] - 'a' + 'A');
	if (peek(c) != ' ')
		return 0;
	/* RFC 4959: SP (base64 / "="), "=" being the empty response */
	if (sp(c) < 0)
		return -1;
	n = span(c, is_b64_char);
	if (n == 0)
		return fail(c, "Expected an initial response");
	cmd->auth.has_ir = 1;
	if (!(n == 1 && c->t[c->pos] == '=') &&
	    base64_decode(c->t + c->pos, n, &cmd->auth.ir) < 0)
		return fail(c, "Invalid base64 in the initial response");
	c->pos += n;
	return 0;
}

static int
p_login(struct cur *c, struct imap_cmd *cmd)
{
	if (sp(c) < 0 || astring(c, &cmd->login.user, "a user name") < 0 ||
	    sp(c) < 0 || astring(c, &cmd->login.pass, "a password") < 0)
		return -1;
	return 0;
}

/* select-params (RFC 4466): (CONDSTORE) and (QRESYNC (uidvalidity
 * modseq [known-uids [(seq-set uid-set)]])) of RFC 7162 */
static int
p_qresync(struct cur *c, struct imap_select *s)
{
	uint64_t v;

	if (s->qresync)
		return fail(c, "QRESYNC given twice");
	s->qresync = 1;
	if (sp(c) < 0 || expect_ch(c, '(') < 0 ||
	    number32(c, 1, &s->uidvalidity, "a UIDVALIDITY") < 0 ||
	    sp(c) < 0 || modseq(c, 1, &v) < 0)
		return -1;
	s->modseq = v;
	/* [SP known-uids [SP "(" known-seq-set SP known-uid-set ")"]] */
	if (peek(c) == ' ') {
		if (sp(c) < 0 || seqset(c, &s->known_uids, IMAP_SEQ_NO_STAR) < 0)
			return -1;
		if (peek(c) == ' ') {
			if (sp(c) < 0 || expect_ch(c, '(') < 0 ||
			    seqset(c, &s->match_seq, IMAP_SEQ_NO_STAR) < 0 ||
			    sp(c) < 0 ||
			    seqset(c, &s->match_uids, IMAP_SEQ_NO_STAR) < 0 ||
			    expect_ch(c, ')') < 0)
				return -1;
		}
	}
	return expect_ch(c, ')');
}

static int
p_select(struct cur *c, struct imap_cmd *cmd)
{
	struct imap_select *s = &cmd->select;
	const char *w;
	size_t n;

	if (sp(c) < 0 || mailbox(c, &s->mbox, 0) < 0)
		return -1;
	if (peek(c) != ' ')
		return 0;
	if (sp(c) < 0 || expect_ch(c, '(') < 0)
		return -1;
	for (;;) {
		if (atom(c, &w, &n, "a SELECT parameter") < 0)
			return -1;
		if (ieq(w, n, "CONDSTORE"))
			s->condstore = 1;
		else if (ieq(w, n, "QRESYNC")) {
			if (p_qresync(c, s) < 0)
				return -1;
		} else
			return fail(c, "Unknown SELECT parameter %.*s", n > 40 ? 40 : (int)n, w);
		if (peek(c) == ')') {
			c->pos++;
			return 0;
		}
		if (sp(c) < 0)
			return -1;
	}
}

static int
p_mailbox(struct cur *c, struct imap_cmd *cmd)
{
	return sp(c) < 0 ? -1 : mailbox(c, &cmd->mbox, 0);
}

static int
p_rename(struct cur *c, struct imap_cmd *cmd)
{
	if (sp(c) < 0 || mailbox(c, &cmd->rename.from, 0) < 0 || sp(c) < 0 ||
	    mailbox(c, &cmd->rename.to, 0) < 0)
		return -1;
	return 0;
}

static int
add_pattern(struct cur *c, struct imap_list *l)
{
	if (l->npat >= c->p->lim.items_max)
		return fail(c, "Too many patterns");
	l->pat = xreallocarray(l->pat, l->npat + 1, sizeof(*l->pat));
	memset(&l->pat[l->npat], 0, sizeof(l->pat[0]));
	l->npat++;
	return mailbox(c, &l->pat[l->npat - 1], 1);
}

/* RFC 5258: LIST [SP (sel-opts)] SP ref SP (pat / (pats)) [SP RETURN (opts)] */
static int
p_list(struct cur *c, struct imap_cmd *cmd)
{
	struct imap_list *l = &cmd->list;

	if (sp(c) < 0)
		return -1;
	if (peek(c) == '(') {
		l->extended = 1;
		if (word_list(c, list_sel_words, &l->sel, 1, "LIST selection option") < 0 ||
		    sp(c) < 0)
			return -1;
		if ((l->sel & IMAP_LIST_SEL_RECURSIVEMATCH) &&
		    !(l->sel & (IMAP_LIST_SEL_SUBSCRIBED | IMAP_LIST_SEL_SPECIAL_USE)))
			return fail(c, "RECURSIVEMATCH needs another selection option");
	}
	if (mailbox(c, &l->ref, 0) < 0 || sp(c) < 0)
		return -1;
	if (peek(c) == '(') {
		c->pos++;
		l->extended = 1;
		for (;;) {
			if (add_pattern(c, l) < 0)
				return -1;
			if (peek(c) == ')') {
				c->pos++;
				break;
			}
			if (sp(c) < 0)
				return -1;
		}
	} else if (add_pattern(c, l) < 0)
		return -1;
	if (peek(c) != ' ')
		return 0;
	if (sp(c) < 0)
		return -1;
	if (!accept_word(c, "RETURN"))
		return fail(c, "Expected RETURN");
	l->extended = 1;
	if (sp(c) < 0 || expect_ch(c, '(') < 0)
		return -1;
	if (peek(c) == ')') {
		c->pos++;
		return 0;
	}
	for (;;) {
		const char *w;
		size_t n;
		int v;

		if (atom(c, &w, &n, "a LIST return option") < 0)
			return -1;
		if ((v = word_val(list_ret_words, w, n)) == 0)
			return fail(c, "Unknown LIST return option %.*s", n > 40 ? 40 : (int)n, w);
		l->ret |= (unsigned)v;
		if (v == IMAP_LIST_RET_STATUS) {
			/* RFC 5819 */
			if (sp(c) < 0 || word_list(c, status_words, &l->status, 0, "STATUS item") < 0)
				return -1;
		}
		if (peek(c) == ')') {
			c->pos++;
			return 0;
		}
		if (sp(c) < 0)
			return -1;
	}
}

static int
p_lsub(struct cur *c, struct imap_cmd *cmd)
{
	if (sp(c) < 0 || mailbox(c, &cmd->list.ref, 0) < 0 || sp(c) < 0)
		return -1;
	return add_pattern(c, &cmd->list);
}

static int
p_status(struct cur *c, struct imap_cmd *cmd)
{
	if (sp(c) < 0 || mailbox(c, &cmd->status.mbox, 0) < 0 || sp(c) < 0)
		return -1;
	return word_list(c, status_words, &cmd->status.items, 0, "STATUS item");
}

/* APPEND mailbox 1*(SP [flag-list SP] [date-time SP] literal): more than
 * one message is MULTIAPPEND (RFC 3502); ~{n} is RFC 3516. */
static int
p_append(struct cur *c, struct imap_cmd *cmd)
{
	struct imap_append *a = &cmd->append;

	if (sp(c) < 0 || mailbox(c, &a->mbox, 0) < 0)
		return -1;
	do {
		struct imap_append_msg *m;

		if (sp(c) < 0)
			return -1;
		a->msg = xreallocarray(a->msg, a->n + 1, sizeof(*a->msg));
		m = &a->msg[a->n++];
		memset(m, 0, sizeof(*m));
		if (peek(c) == '(' && (flag_list(c, &m->flags) < 0 || sp(c) < 0))
			return -1;
		if (peek(c) == '"') {
			if (datetime(c, &m->date) < 0 || sp(c) < 0)
				return -1;
			m->has_date = 1;
		}
		if (peek(c) != CH_LIT)
			return fail(c, "Expected a message literal");
		if (literal(c, ROLE_MESSAGE, &m->data, &m->len, &m->binary) < 0)
			return -1;
	} while (peek(c) == ' ');
	return 0;
}

static int
p_enable(struct cur *c, struct imap_cmd *cmd)
{
	do {
		const char *s;
		size_t n, i;
		char *w;

		if (sp(c) < 0 || atom(c, &s, &n, "a capability") < 0 ||
		    add_str(c, &cmd->enable.cap, &cmd->enable.n, s, n, "capabilities") < 0)
			return -1;
		w = cmd->enable.cap[cmd->enable.n - 1];
		for (i = 0; i < n; i++)
			if (w[i] >= 'a' && w[i] <= 'z')
				w[i] = (char)(w[i] - 'a' + 'A');
	} while (peek(c) == ' ');
	return 0;
}

/* RFC 2971: at most 30 pairs, fields up to 30 and values up to 1024
 * bytes */
static int
p_id(struct cur *c, struct imap_cmd *cmd)
{
	if (sp(c) < 0)
		return -1;
	if (accept_word(c, "NIL")) {
		cmd->id.nil = 1;
		return 0;
	}
	if (expect_ch(c, '(') < 0)
		return -1;
	if (peek(c) == ')') {
		c->pos++;
		return 0;
	}
	for (;;) {
		size_t n, vn, i = cmd->id.n;

		if (i >= 30)
			return fail(c, "Too many ID fields");
		cmd->id.field = xreallocarray(cmd->id.field, i + 1, sizeof(char *));
		cmd->id.value = xreallocarray(cmd->id.value, i + 1, sizeof(char *));
		cmd->id.field[i] = cmd->id.value[i] = NULL;
		cmd->id.n++;
		if (string(c, &cmd->id.field[i], &n, "an ID field") < 0)
			return -1;
		if (n > 30)
			return fail(c, "ID field name too long");
		if (sp(c) < 0 || nstring(c, &cmd->id.value[i], &vn, "an ID value") < 0)
			return -1;
		if (vn > 1024)
			return fail(c, "ID value too long");
		if (peek(c) == ')') {
			c->pos++;
			return 0;
		}
		if (sp(c) < 0)
			return -1;
	}
}

static int
p_compress(struct cur *c, struct imap_cmd *cmd)
{
	const char *s;
	size_t n;

	if (sp(c) < 0 || atom(c, &s, &n, "a compression mechanism") < 0)
		return -1;
	if (!ieq(s, n, "DEFLATE"))
		return fail(c, "Unknown compression mechanism");
	return 0;
}

static int
p_getquota(struct cur *c, struct imap_cmd *cmd)
{
	return sp(c) < 0 ? -1 : astring(c, &cmd->quota_root, "a quota root");
}

/* RFC 9208 4.3: SETQUOTA root (resource limit ...).  Parsed in full
 * so that a malformed one is BAD; the session refuses a well-formed
 * one (limits are the administrator's). */
static int
p_setquota(struct cur *c, struct imap_cmd *cmd)
{
	const char *s;
	size_t n;
	uint64_t v;

	if (p_getquota(c, cmd) < 0 || sp(c) < 0 || expect_ch(c, '(') < 0)
		return -1;
	while (peek(c) != ')') {
		if (atom(c, &s, &n, "a resource name") < 0 || sp(c) < 0 ||
		    number(c, UINT64_MAX >> 1, 0, &v, "a limit") < 0)
			return -1;
		if (peek(c) != ')' && sp(c) < 0)
			return -1;
	}
	return expect_ch(c, ')');
}

static int
p_expunge(struct cur *c, struct imap_cmd *cmd)
{
	if (!cmd->uid)
		return 0;
	if (sp(c) < 0)
		return -1;
	return seqset(c, &cmd->expunge, IMAP_SEQ_ALLOW_SAVED);
}

/* ---- SEARCH keys ---- */

enum {
	A_NONE, A_STR, A_DATE, A_NUM, A_NZ, A_HEADER, A_KEYWORD, A_NOT, A_OR,
	A_SET, A_MODSEQ,
};

static const struct {
	const char *name;
	int type, arg;
} sktab[] = {
	{ "ALL", IMAP_SK_ALL, A_NONE }, { "ANSWERED", IMAP_SK_ANSWERED, A_NONE },
	{ "DELETED", IMAP_SK_DELETED, A_NONE }, { "DRAFT", IMAP_SK_DRAFT, A_NONE },
	{ "FLAGGED", IMAP_SK_FLAGGED, A_NONE }, { "NEW", IMAP_SK_NEW, A_NONE },
	{ "OLD", IMAP_SK_OLD, A_NONE }, { "RECENT", IMAP_SK_RECENT, A_NONE },
	{ "SEEN", IMAP_SK_SEEN, A_NONE }, { "UNANSWERED", IMAP_SK_UNANSWERED, A_NONE },
	{ "UNDELETED", IMAP_SK_UNDELETED, A_NONE }, { "UNDRAFT", IMAP_SK_UNDRAFT, A_NONE },
	{ "UNFLAGGED", IMAP_SK_UNFLAGGED, A_NONE }, { "UNSEEN", IMAP_SK_UNSEEN, A_NONE },
	{ "KEYWORD", IMAP_SK_KEYWORD, A_KEYWORD }, { "UNKEYWORD", IMAP_SK_UNKEYWORD, A_KEYWORD },
	{ "BCC", IMAP_SK_BCC, A_STR }, { "BODY", IMAP_SK_BODY, A_STR },
	{ "CC", IMAP_SK_CC, A_STR }, { "FROM", IMAP_SK_FROM, A_STR },
	{ "SUBJECT", IMAP_SK_SUBJECT, A_STR }, { "TEXT", IMAP_SK_TEXT, A_STR },
	{ "TO", IMAP_SK_TO, A_STR }, { "HEADER", IMAP_SK_HEADER, A_HEADER },
	{ "BEFORE", IMAP_SK_BEFORE, A_DATE }, { "ON", IMAP_SK_ON, A_DATE },
	{ "SINCE", IMAP_SK_SINCE, A_DATE }, { "SENTBEFORE", IMAP_SK_SENTBEFORE, A_DATE },
	{ "SENTON", IMAP_SK_SENTON, A_DATE }, { "SENTSINCE", IMAP_SK_SENTSINCE, A_DATE },
	{ "LARGER", IMAP_SK_LARGER, A_NUM }, { "SMALLER", IMAP_SK_SMALLER, A_NUM },
	{ "OLDER", IMAP_SK_OLDER, A_NZ }, { "YOUNGER", IMAP_SK_YOUNGER, A_NZ },
	{ "UID", IMAP_SK_UID, A_SET }, { "NOT", IMAP_SK_NOT, A_NOT },
	{ "OR", IMAP_SK_OR, A_OR }, { "MODSEQ", IMAP_SK_MODSEQ, A_MODSEQ },
};

static int
valid_field_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == ':')
			return 0;
	return 1;
}

static int search_key(struct cur *c, struct imap_search_key **out);

static int
sk_modseq(struct cur *c, struct imap_search_key *k)
{
	/* MODSEQ [SP entry-name SP entry-type-req] SP mod-sequence-valzer */
	if (peek(c) == '"') {
		const char *s;
		size_t n, len;
		struct buf b = BUF_INIT;

		if (quoted(c, &b) < 0) {
			buf_free(&b);
			return -1;
		}
		len = b.len;
		k->entry = buf_steal(&b);
		if (len <= 7 || strncmp(k->entry, "/flags/", 7) != 0)
			return fail(c, "Invalid MODSEQ entry name");
		if (sp(c) < 0 || atom(c, &s, &n, "an entry type") < 0)
			return -1;
		if (ieq(s, n, "priv"))
			k->entry_type = IMAP_ENTRY_PRIV;
		else if (ieq(s, n, "shared"))
			k->entry_type = IMAP_ENTRY_SHARED;
		else if (ieq(s, n, "all"))
			k->entry_type = IMAP_ENTRY_ALL;
		else
			return fail(c, "Invalid MODSEQ entry type");
		if (sp(c) < 0)
			return -1;
	}
	return modseq(c, 0, &k->num);
}

static int
sk_args(struct cur *c, struct imap_search_key *k, int arg)
{
	const char *s;
	size_t n;

	switch (arg) {
	case A_NONE:
		return 0;
	case A_STR:
		return sp(c) < 0 ? -1 : astring(c, &k->str, "a search string");
	case A_KEYWORD:
		if (sp(c) < 0 || atom(c, &s, &n, "a keyword") < 0)
			return -1;
		k->str = xstrndup(s, n);
		return 0;
	case A_HEADER:
		if (sp(c) < 0 || astring(c, &k->field, "a header field name") < 0)
			return -1;
		if (!valid_field_name(k->field, strlen(k->field)))
			return fail(c, "Invalid header field name");
		return sp(c) < 0 ? -1 : astring(c, &k->str, "a search string");
	case A_DATE:
		return sp(c) < 0 ? -1 : date_arg(c, &k->date);
	case A_NUM:
		return sp(c) < 0 ? -1 : number(c, INT64_MAX, 0, &k->num, "a size");
	case A_NZ:
		return sp(c) < 0 ? -1 : number(c, UINT32_MAX, 1, &k->num, "an interval");
	case A_SET:
		return sp(c) < 0 ? -1 : seqset(c, &k->set, IMAP_SEQ_ALLOW_SAVED);
	case A_MODSEQ:
		return sp(c) < 0 ? -1 : sk_modseq(c, k);
	case A_NOT:
	case A_OR:
		if (++c->depth > c->p->lim.depth_max)
			return fail(c, "Search keys nested too deeply");
		if (sp(c) < 0 || search_key(c, &k->child) < 0)
			return -1;
		if (arg == A_OR && (sp(c) < 0 || search_key(c, &k->child->next) < 0))
			return -1;
		c->depth--;
		return 0;
	}
	return fail(c, "Internal error: search key argument %d", arg);
}

static int
search_key(struct cur *c, struct imap_search_key **out)
{
	struct imap_search_key *k;
	const char *s;
	size_t n, i;
	int ch;

	if (c->keys_left == 0)
		return fail(c, "Too many search keys");
	c->keys_left--;
	k = xcalloc(1, sizeof(*k));
	*out = k;
	ch = peek(c);
	if (ch == '(') {
		struct imap_search_key **tail = &k->child;

		if (++c->depth > c->p->lim.depth_max)
			return fail(c, "Search keys nested too deeply");
		c->pos++;
		k->type = IMAP_SK_AND;
		for (;;) {
			if (search_key(c, tail) < 0)
				return -1;
			tail = &(*tail)->next;
			if (peek(c) == ')')
				break;
			if (sp(c) < 0)
				return -1;
		}
		c->pos++;
		c->depth--;
		return 0;
	}
	if (ch == '*' || ch == '$' || (ch >= '0' && ch <= '9')) {
		k->type = IMAP_SK_SEQSET;
		return seqset(c, &k->set, IMAP_SEQ_ALLOW_SAVED);
	}
	if (atom(c, &s, &n, "a search key") < 0)
		return -1;
	for (i = 0; i < sizeof(sktab) / sizeof(sktab[0]); i++)
		if (ieq(s, n, sktab[i].name)) {
			k->type = sktab[i].type;
			return sk_args(c, k, sktab[i].arg);
		}
	return fail(c, "Unknown search key %.*s", n > 40 ? 40 : (int)n, s);
}

/* 1*(SP search-key) under a root AND */
static int
search_keys(struct cur *c, struct imap_search *s)
{
	struct imap_search_key **tail;

	s->key = xcalloc(1, sizeof(*s->key));
	s->key->type = IMAP_SK_AND;
	tail = &s->key->child;
	do {
		if (sp(c) < 0 || search_key(c, tail) < 0)
			return -1;
		tail = &(*tail)->next;
	} while (peek(c) == ' ');
	return 0;
}

static int
search_return(struct cur *c, struct imap_search *s)
{
	s->ret_set = 1;
	if (sp(c) < 0 || word_list(c, search_ret_words, &s->ret, 1, "RETURN option") < 0)
		return -1;
	if (s->ret == 0)
		s->ret = IMAP_SEARCH_RET_ALL;	/* RFC 4731: "RETURN ()" is ALL */
	return 0;
}

static int
charset(struct cur *c, struct imap_search *s)
{
	size_t i;

	if (astring(c, &s->charset, "a charset") < 0)
		return -1;
	for (i = 0; s->charset[i]; i++)
		if (s->charset[i] >= 'a' && s->charset[i] <= 'z')
			s->charset[i] = (char)(s->charset[i] - 'a' + 'A');
	return 0;
}

/* SEARCH [RETURN (...)] [CHARSET x] keys (RFC 3501, 4731) */
static int
p_search(struct cur *c, struct imap_cmd *cmd)
{
	struct imap_search *s = &cmd->search;
	size_t save = c->pos;

	/* "SEARCH" [SP "RETURN" ...] [SP "CHARSET" SP astring] 1*(SP key):
	 * neither word is a search key, so look ahead for them */
	if (peek(c) == ' ') {
		c->pos++;
		if (!accept_word(c, "RETURN"))
			c->pos = save;
		else if (search_return(c, s) < 0)
			return -1;
	}
	save = c->pos;
	if (peek(c) == ' ') {
		c->pos++;
		if (!accept_word(c, "CHARSET"))
			c->pos = save;
		else if (sp(c) < 0 || charset(c, s) < 0)
			return -1;
	}
	return search_keys(c, s);
}

/* SORT [RETURN (...)] (criteria) charset keys (RFC 5256, 5267) */
static int
p_sort(struct cur *c, struct imap_cmd *cmd)
{
	struct imap_search *s = &cmd->search;

	if (sp(c) < 0)
		return -1;
	if (accept_word(c, "RETURN") && (search_return(c, s) < 0 || sp(c) < 0))
		return -1;
	if (expect_ch(c, '(') < 0)
		return -1;
	for (;;) {
		const char *w;
		size_t n;
		int reverse = 0, v;

		if (atom(c, &w, &n, "a sort criterion") < 0)
			return -1;
		if (ieq(w, n, "REVERSE")) {
			reverse = 1;
			if (sp(c) < 0 || atom(c, &w, &n, "a sort criterion") < 0)
				return -1;
		}
		if ((v = word_val(sort_words, w, n)) == 0)
			return fail(c, "Unknown sort criterion %.*s", n > 40 ? 40 : (int)n, w);
		if (s->nsort >= c->p->lim.items_max)
			return fail(c, "Too many sort criteria");
		s->sort = xreallocarray(s->sort, s->nsort + 1, sizeof(*s->sort));
		s->sort[s->nsort].key = v;
		s->sort[s->nsort].reverse = reverse;
		s->nsort++;
		if (peek(c) == ')') {
			c->pos++;
			break;
		}
		if (sp(c) < 0)
			return -1;
	}
	if (sp(c) < 0 || charset(c, s) < 0)
		return -1;
	return search_keys(c, s);
}

static int
p_thread(struct cur *c, struct imap_cmd *cmd)
{
	const char *w;
	size_t n;

	if (sp(c) < 0 || atom(c, &w, &n, "a threading algorithm") < 0)
		return -1;
	if ((cmd->search.thread = word_val(thread_words, w, n)) == 0)
		return fail(c, "Unknown threading algorithm %.*s", n > 40 ? 40 : (int)n, w);
	if (sp(c) < 0 || charset(c, &cmd->search) < 0)
		return -1;
	return search_keys(c, &cmd->search);
}

/* ---- FETCH ---- */

static struct imap_fetch_item *
add_item(struct cur *c, struct imap_fetch *f, int att)
{
	struct imap_fetch_item *it;

	if (f->n >= c->p->lim.items_max) {
		(void)fail(c, "Too many FETCH items");
		return NULL;
	}
	f->items = xreallocarray(f->items, f->n + 1, sizeof(*f->items));
	it = &f->items[f->n++];
	memset(it, 0, sizeof(*it));
	it->att = att;
	return it;
}

static int
header_list(struct cur *c, struct imap_section *sec)
{
	if (sp(c) < 0 || expect_ch(c, '(') < 0)
		return -1;
	for (;;) {
		char *f = NULL;

		if (astring(c, &f, "a header field name") < 0)
			return -1;
		if (!valid_field_name(f, strlen(f))) {
			free(f);
			return fail(c, "Invalid header field name");
		}
		if (add_str(c, &sec->fields, &sec->nfields, f, strlen(f), "header fields") < 0) {
			free(f);
			return -1;
		}
		free(f);
		if (peek(c) == ')') {
			c->pos++;
			return 0;
		}
		if (sp(c) < 0)
			return -1;
	}
}

/* section = "[" [section-spec] "]"; for BINARY only part numbers */
static int
section(struct cur *c, struct imap_section *sec, int binary)
{
	const char *w;
	size_t n;

	if (expect_ch(c, '[') < 0)
		return -1;
	while (is_digit(peek(c))) {
		uint32_t v;

		if (number32(c, 1, &v, "a part number") < 0)
			return -1;
		if (sec->npart >= c->p->lim.items_max)
			return fail(c, "Too many section parts");
		sec->part = xreallocarray(sec->part, sec->npart + 1, sizeof(*sec->part));
		sec->part[sec->npart++] = v;
		if (peek(c) == '.' && is_digit(peek2(c)))
			c->pos++;
		else
			break;
	}
	if (binary || peek(c) == ']')
		return expect_ch(c, ']');
	if (sec->npart && expect_ch(c, '.') < 0)
		return -1;
	if (name(c, &w, &n, "a section") < 0)
		return -1;
	if (ieq(w, n, "HEADER"))
		sec->text = IMAP_SECTION_HEADER;
	else if (ieq(w, n, "HEADER.FIELDS"))
		sec->text = IMAP_SECTION_HEADER_FIELDS;
	else if (ieq(w, n, "HEADER.FIELDS.NOT"))
		sec->text = IMAP_SECTION_HEADER_FIELDS_NOT;
	else if (ieq(w, n, "TEXT"))
		sec->text = IMAP_SECTION_TEXT;
	else if (ieq(w, n, "MIME") && sec->npart)
		sec->text = IMAP_SECTION_MIME;	/* only of a part */
	else
		return fail(c, "Invalid section");
	if ((sec->text == IMAP_SECTION_HEADER_FIELDS ||
	    sec->text == IMAP_SECTION_HEADER_FIELDS_NOT) && header_list(c, sec) < 0)
		return -1;
	return expect_ch(c, ']');
}

/* "<" number "." nz-number ">" */
static int
partial(struct cur *c, struct imap_fetch_item *it)
{
	if (peek(c) != '<')
		return 0;
	c->pos++;
	it->partial = 1;
	if (number32(c, 0, &it->offset, "a partial offset") < 0 ||
	    expect_ch(c, '.') < 0 ||
	    number32(c, 1, &it->length, "a partial length") < 0)
		return -1;
	return expect_ch(c, '>');
}

static const struct word fetch_simple[] = {
	{ "ENVELOPE", IMAP_FETCH_ENVELOPE }, { "FLAGS", IMAP_FETCH_FLAGS },
	{ "INTERNALDATE", IMAP_FETCH_INTERNALDATE }, { "RFC822", IMAP_FETCH_RFC822 },
	{ "RFC822.HEADER", IMAP_FETCH_RFC822_HEADER }, { "RFC822.SIZE", IMAP_FETCH_RFC822_SIZE },
	{ "RFC822.TEXT", IMAP_FETCH_RFC822_TEXT }, { "BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE },
	{ "UID", IMAP_FETCH_UID }, { "MODSEQ", IMAP_FETCH_MODSEQ },
	{ NULL, 0 }
};

static int
fetch_att(struct cur *c, struct imap_fetch *f)
{
	struct imap_fetch_item *it;
	const char *w;
	size_t n;
	int v;

	if (name(c, &w, &n, "a FETCH item") < 0)
		return -1;
	if ((v = word_val(fetch_simple, w, n)) != 0)
		return add_item(c, f, v) ? 0 : -1;
	if (ieq(w, n, "BODY") && peek(c) != '[')
		return add_item(c, f, IMAP_FETCH_BODY) ? 0 : -1;
	if (ieq(w, n, "BODY") || ieq(w, n, "BODY.PEEK")) {
		if ((it = add_item(c, f, IMAP_FETCH_BODY_SECTION)) == NULL)
			return -1;
		it->peek = n > 4;
		if (section(c, &it->sec, 0) < 0)
			return -1;
		return partial(c, it);
	}
	if (ieq(w, n, "BINARY") || ieq(w, n, "BINARY.PEEK")) {
		if ((it = add_item(c, f, IMAP_FETCH_BINARY)) == NULL)
			return -1;
		it->peek = n > 6;
		if (section(c, &it->sec, 1) < 0)
			return -1;
		return partial(c, it);
	}
	if (ieq(w, n, "BINARY.SIZE")) {
		if ((it = add_item(c, f, IMAP_FETCH_BINARY_SIZE)) == NULL)
			return -1;
		return section(c, &it->sec, 1);
	}
	return fail(c, "Unknown FETCH item %.*s", n > 40 ? 40 : (int)n, w);
}

static int
fetch_macro(struct cur *c, struct imap_fetch *f, int macro)
{
	static const int all[] = {
		IMAP_FETCH_FLAGS, IMAP_FETCH_INTERNALDATE, IMAP_FETCH_RFC822_SIZE,
		IMAP_FETCH_ENVELOPE, IMAP_FETCH_BODY,
	};
	size_t k = macro == IMAP_FETCH_MACRO_FAST ? 3 :
	    macro == IMAP_FETCH_MACRO_ALL ? 4 : 5, i;

	f->macro = macro;
	for (i = 0; i < k; i++)
		if (!add_item(c, f, all[i]))
			return -1;
	return 0;
}

static int
p_fetch(struct cur *c, struct imap_cmd *cmd)
{
	struct imap_fetch *f = &cmd->fetch;

	if (sp(c) < 0 || seqset(c, &f->set, IMAP_SEQ_ALLOW_SAVED) < 0 || sp(c) < 0)
		return -1;
	if (peek(c) == '(') {
		c->pos++;
		for (;;) {
			if (fetch_att(c, f) < 0)
				return -1;
			if (peek(c) == ')') {
				c->pos++;
				break;
			}
			if (sp(c) < 0)
				return -1;
		}
	} else {
		size_t k = span(c, is_name_char);
		const char *w = c->t + c->pos;

		if (ieq(w, k, "ALL") || ieq(w, k, "FAST") || ieq(w, k, "FULL")) {
			c->pos += k;
			if (fetch_macro(c, f, ieq(w, k, "ALL") ? IMAP_FETCH_MACRO_ALL :
			    ieq(w, k, "FAST") ? IMAP_FETCH_MACRO_FAST :
			    IMAP_FETCH_MACRO_FULL) < 0)
				return -1;
		} else if (fetch_att(c, f) < 0)
			return -1;
	}
	if (peek(c) != ' ')
		return 0;
	/* fetch modifiers (RFC 4466, 7162) */
	if (sp(c) < 0 || expect_ch(c, '(') < 0)
		return -1;
	for (;;) {
		const char *w;
		size_t n;

		if (atom(c, &w, &n, "a FETCH modifier") < 0)
			return -1;
		if (ieq(w, n, "CHANGEDSINCE")) {
			if (sp(c) < 0 || modseq(c, 1, &f->changedsince) < 0)
				return -1;
			f->changedsince_set = 1;
		} else if (ieq(w, n, "VANISHED"))
			f->vanished = 1;
		else
			return fail(c, "Unknown FETCH modifier %.*s", n > 40 ? 40 : (int)n, w);
		if (peek(c) == ')') {
			c->pos++;
			break;
		}
		if (sp(c) < 0)
			return -1;
	}
	if (f->vanished && !cmd->uid)
		return fail(c, "VANISHED is only allowed with UID FETCH");
	if (f->vanished && !f->changedsince_set)
		return fail(c, "VANISHED needs CHANGEDSINCE");
	return 0;
}

/* STORE set [(UNCHANGEDSINCE n)] [+-]FLAGS[.SILENT] (flags) */
static int
p_store(struct cur *c, struct imap_cmd *cmd)
{
	struct imap_store *s = &cmd->store;
	const char *w;
	size_t n;

	if (sp(c) < 0 || seqset(c, &s->set, IMAP_SEQ_ALLOW_SAVED) < 0 || sp(c) < 0)
		return -1;
	if (peek(c) == '(') {
		c->pos++;
		if (!accept_word(c, "UNCHANGEDSINCE"))
			return fail(c, "Unknown STORE modifier");
		if (sp(c) < 0 || modseq(c, 0, &s->unchangedsince) < 0 ||
		    expect_ch(c, ')') < 0 || sp(c) < 0)
			return -1;
		s->unchangedsince_set = 1;
	}
	if (peek(c) == '+') {
		s->op = IMAP_STORE_ADD;
		c->pos++;
	} else if (peek(c) == '-') {
		s->op = IMAP_STORE_REMOVE;
		c->pos++;
	}
	if (name(c, &w, &n, "FLAGS") < 0)
		return -1;
	if (ieq(w, n, "FLAGS.SILENT"))
		s->silent = 1;
	else if (!ieq(w, n, "FLAGS"))
		return fail(c, "Expected FLAGS, +FLAGS or -FLAGS");
	if (sp(c) < 0)
		return -1;
	if (peek(c) == '(')
		return flag_list(c, &s->flags);
	for (;;) {
		if (flag(c, &s->flags) < 0)
			return -1;
		if (peek(c) != ' ')
			return 0;
		c->pos++;
	}
}

static int
p_copy(struct cur *c, struct imap_cmd *cmd)
{
	if (sp(c) < 0 || seqset(c, &cmd->copy.set, IMAP_SEQ_ALLOW_SAVED) < 0 ||
	    sp(c) < 0 || mailbox(c, &cmd->copy.mbox, 0) < 0)
		return -1;
	return 0;
}

static int
p_none(struct cur *c, struct imap_cmd *cmd)
{
	return 0;
}

static int (*const handlers[IMAP_CMD_COUNT])(struct cur *, struct imap_cmd *) = {
	[IMAP_CMD_CAPABILITY] = p_none, [IMAP_CMD_NOOP] = p_none,
	[IMAP_CMD_LOGOUT] = p_none, [IMAP_CMD_ID] = p_id,
	[IMAP_CMD_STARTTLS] = p_none, [IMAP_CMD_AUTHENTICATE] = p_authenticate,
	[IMAP_CMD_LOGIN] = p_login, [IMAP_CMD_SELECT] = p_select,
	[IMAP_CMD_EXAMINE] = p_select, [IMAP_CMD_CREATE] = p_mailbox,
	[IMAP_CMD_DELETE] = p_mailbox, [IMAP_CMD_RENAME] = p_rename,
	[IMAP_CMD_SUBSCRIBE] = p_mailbox, [IMAP_CMD_UNSUBSCRIBE] = p_mailbox,
	[IMAP_CMD_LIST] = p_list, [IMAP_CMD_LSUB] = p_lsub,
	[IMAP_CMD_STATUS] = p_status, [IMAP_CMD_APPEND] = p_append,
	[IMAP_CMD_NAMESPACE] = p_none, [IMAP_CMD_ENABLE] = p_enable,
	[IMAP_CMD_IDLE] = p_none, [IMAP_CMD_COMPRESS] = p_compress,
	[IMAP_CMD_GETQUOTA] = p_getquota, [IMAP_CMD_GETQUOTAROOT] = p_mailbox,
	[IMAP_CMD_SETQUOTA] = p_setquota,
	[IMAP_CMD_CHECK] = p_none, [IMAP_CMD_CLOSE] = p_none,
	[IMAP_CMD_UNSELECT] = p_none, [IMAP_CMD_EXPUNGE] = p_expunge,
	[IMAP_CMD_SEARCH] = p_search, [IMAP_CMD_FETCH] = p_fetch,
	[IMAP_CMD_STORE] = p_store, [IMAP_CMD_COPY] = p_copy,
	[IMAP_CMD_MOVE] = p_copy, [IMAP_CMD_SORT] = p_sort,
	[IMAP_CMD_THREAD] = p_thread,
};

static int
parse_command(struct cur *c, struct imap_cmd *cmd)
{
	const char *w;
	size_t n = span(c, is_tag_char);
	int verb;

	if (n == 0 || (c->pos + n < c->len && c->t[c->pos + n] != ' '))
		return fail(c, "Missing or invalid tag");
	cmd->tag = xstrndup(c->t, n);
	c->pos = n;
	if (peek(c) == CH_END)
		return fail(c, "Missing command");
	if (sp(c) < 0 || atom(c, &w, &n, "a command name") < 0)
		return -1;
	if (ieq(w, n, "UID")) {
		cmd->uid = 1;
		if (sp(c) < 0 || atom(c, &w, &n, "a command name") < 0)
			return -1;
		verb = cmd_lookup(w, n);
		if (!verb || !cmdtab[verb].uid_ok)
			return fail(c, "Unknown command UID %.*s", n > 40 ? 40 : (int)n, w);
	} else if ((verb = cmd_lookup(w, n)) == IMAP_CMD_NONE)
		return fail(c, "Unknown command %.*s", n > 40 ? 40 : (int)n, w);
	cmd->verb = verb;
	if (c->prefix && !imap_cmd_allowed(verb, cmd->uid, c->p->state))
		return fail(c, "%s is not valid in this state", cmdtab[verb].name);
	if (handlers[verb](c, cmd) < 0)
		return -1;
	return end_of_command(c);
}

static struct imap_cmd *
run_parse(struct imap_parser *p, int prefix, int *incomplete)
{
	struct cur c;
	struct imap_cmd *cmd;

	memset(&c, 0, sizeof(c));
	c.p = p;
	c.t = buf_str(&p->text);
	c.len = p->text.len;
	c.lits = p->lits;
	c.nlits = p->nlits;
	c.prefix = prefix;
	c.why = &p->err_text;
	c.ranges_left = p->lim.ranges_max;
	c.keys_left = p->lim.search_keys_max;
	cmd = xcalloc(1, sizeof(*cmd));
	if (parse_command(&c, cmd) == 0 && !c.failed)
		return cmd;
	*incomplete = c.incomplete;
	p->err_status = c.status;
	p->err_code = c.code;
	imap_cmd_free(&cmd);
	return NULL;
}

/* ---- freeing ---- */

static void
mailbox_free(struct imap_mailbox *m)
{
	free(m->name);
	free(m->utf8);
}

static void
strv_freen(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
search_key_free(struct imap_search_key *k)
{
	while (k) {
		struct imap_search_key *next = k->next;

		/* depth is bounded by depth_max, so this recursion is too */
		search_key_free(k->child);
		free(k->str);
		free(k->field);
		free(k->entry);
		imap_seq_free(&k->set);
		free(k);
		k = next;
	}
}

void
imap_cmd_free(struct imap_cmd **cp)
{
	struct imap_cmd *c = *cp;
	size_t i;

	if (!c)
		return;
	free(c->tag);
	free(c->auth.mech);
	buf_free(&c->auth.ir);
	free(c->login.user);
	free(c->login.pass);
	mailbox_free(&c->select.mbox);
	imap_seq_free(&c->select.known_uids);
	imap_seq_free(&c->select.match_seq);
	imap_seq_free(&c->select.match_uids);
	mailbox_free(&c->mbox);
	mailbox_free(&c->rename.from);
	mailbox_free(&c->rename.to);
	mailbox_free(&c->list.ref);
	for (i = 0; i < c->list.npat; i++)
		mailbox_free(&c->list.pat[i]);
	free(c->list.pat);
	mailbox_free(&c->status.mbox);
	mailbox_free(&c->append.mbox);
	for (i = 0; i < c->append.n; i++)
		strv_freen(c->append.msg[i].flags.kw, c->append.msg[i].flags.nkw);
	free(c->append.msg);
	strv_freen(c->enable.cap, c->enable.n);
	strv_freen(c->id.field, c->id.n);
	strv_freen(c->id.value, c->id.n);
	free(c->quota_root);
	imap_seq_free(&c->expunge);
	free(c->search.charset);
	search_key_free(c->search.key);
	free(c->search.sort);
	imap_seq_free(&c->fetch.set);
	for (i = 0; i < c->fetch.n; i++) {
		free(c->fetch.items[i].sec.part);
		strv_freen(c->fetch.items[i].sec.fields, c->fetch.items[i].sec.nfields);
	}
	free(c->fetch.items);
	imap_seq_free(&c->store.set);
	strv_freen(c->store.flags.kw, c->store.flags.nkw);
	imap_seq_free(&c->copy.set);
	mailbox_free(&c->copy.mbox);
	buf_free(&c->raw);
	free(c);
	*cp = NULL;
}

/* ---- writing ---- */

void
imap_write_string(struct buf *out, const char *s, size_t n)
{
	size_t i;
	int q = n <= 1024;

	for (i = 0; q && i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == 0 || ch == '\r' || ch == '\n' || ch >= 0x80)
			q = 0;
	}
	if (!q) {
		buf_printf(out, "{%zu}\r\n", n);
		buf_add(out, s, n);
		return;
	}
	buf_addc(out, '"');
	for (i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_addc(out, '\\');
		buf_addc(out, s[i]);
	}
	buf_addc(out, '"');
}

void
imap_write_nstring(struct buf *out, const char *s, size_t n)
{
	if (!s)
		buf_adds(out, "NIL");
	else
		imap_write_string(out, s, n);
}

void
imap_write_astring(struct buf *out, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!is_astring_char((unsigned char)s[i]))
			break;
	if (n && i == n && !ieq(s, n, "NIL"))
		buf_add(out, s, n);
	else
		imap_write_string(out, s, n);
}
