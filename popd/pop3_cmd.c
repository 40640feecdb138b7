/*
 * pop3_cmd.c: POP3 command parsing and the pure helpers of pop3_cmd.h.
 *
 * Invariants: the parser never reads past len, never writes outside
 * line[0..len], and rejects NUL and control bytes other than the space
 * separators, so no later step sees them.  Keywords are 3 or 4 letters
 * (RFC 1939 section 3) and matched case-insensitively.
 */
#include "base64.h"
#include "pop3_cmd.h"

#include <ctype.h>
#include <string.h>

static const struct {
	const char *name;
	int verb;
} verbs[] = {
	{ "USER", POP3_USER }, { "PASS", POP3_PASS }, { "APOP", POP3_APOP },
	{ "AUTH", POP3_AUTH }, { "QUIT", POP3_QUIT }, { "STAT", POP3_STAT },
	{ "LIST", POP3_LIST }, { "RETR", POP3_RETR }, { "DELE", POP3_DELE },
	{ "NOOP", POP3_NOOP }, { "RSET", POP3_RSET }, { "TOP", POP3_TOP },
	{ "UIDL", POP3_UIDL }, { "LAST", POP3_LAST }, { "CAPA", POP3_CAPA },
	{ "STLS", POP3_STLS },
	{ NULL, 0 }
};

const char *
pop3_verb_name(int verb)
{
	size_t i;

	for (i = 0; verbs[i].name; i++)
		if (verbs[i].verb == verb)
			return verbs[i].name;
	return verb == POP3_UNKNOWN ? "unknown" : "bad";
}

int
pop3_cmd_parse(char *line, size_t len, struct pop3_cmd *c)
{
	size_t i, k;
	char *p;

	memset(c, 0, sizeof(*c));
	c->verb = POP3_BAD;
	line[len] = 0;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		/* printable ASCII, space, and 8-bit (passwords may be UTF-8) */
		if (ch < 0x20 && ch != '\t')
			return c->verb;
		if (ch == 0x7f)
			return c->verb;
	}
	for (k = 0; k < len && isalpha((unsigned char)line[k]); k++)
		;
	if (k < 3 || k > 4 || (k < len && line[k] != ' '))
		return c->verb;
	for (i = 0; i < k; i++)
		c->keyword[i] = (char)toupper((unsigned char)line[i]);
	c->keyword[k] = 0;
	c->verb = POP3_UNKNOWN;
	for (i = 0; verbs[i].name; i++)
		if (!strcmp(verbs[i].name, c->keyword)) {
			c->verb = verbs[i].verb;
			break;
		}
	if (k == len) {
		c->rest = line + len;
		return c->verb;
	}
	c->rest = line + k + 1;
	if (c->verb == POP3_PASS) {
		/* RFC 1939: the password may contain spaces */
		if (*c->rest)
			c->args[c->nargs++] = c->rest;
		return c->verb;
	}
	/* split the arguments on single or repeated spaces */
	p = c->rest;
	for (;;) {
		char *s;

		while (*p == ' ')
			p++;
		if (!*p)
			break;
		s = p;
		while (*p && *p != ' ')
			p++;
		if (c->nargs >= POP3_MAX_ARGS || (size_t)(p - s) > POP3_ARG_MAX) {
			c->verb = POP3_BAD;
			return c->verb;
		}
		c->args[c->nargs++] = s;
		if (*p)
			*p++ = 0;
	}
	return c->verb;
}

int
pop3_msgnum(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	const char *p;

	if (!s || !*s || strlen(s) > 10)
		return -1;
	for (p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v < 1 || v > max)
		return -2;
	*out = v;
	return 0;
}

int
pop3_count(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	const char *p;

	if (!s || !*s)
		return -1;
	for (p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		if (v < max)
			v = v * 10 + (unsigned long)(*p - '0');
	}
	*out = v > max ? max : v;
	return 0;
}

/* RFC 5034: a lone "=" is an empty initial response. */
int
pop3_b64_decode(const char *in, size_t n, struct buf *out)
{
	if (n == 1 && in[0] == '=')
		return 0;
	return base64_decode(in, n, out);
}

int
pop3_sasl_plain(const char *msg, size_t len, const char **authz,
    const char **user, const char **pass)
{
	const char *a, *u, *p, *end = msg + len;

	a = msg;
	u = memchr(a, 0, len);
	if (!u)
		return -1;
	u++;
	p = memchr(u, 0, (size_t)(end - u));
	if (!p)
		return -1;
	p++;
	if (memchr(p, 0, (size_t)(end - p)))
		return -1;	/* a third NUL */
	if (!*u || u - a > 256 || p - u > 256 || end - p > 1024)
		return -1;
	*authz = a;
	*user = u;
	*pass = p;
	return 0;
}

void
pop3_wire_out(const char *p, size_t n, long top, struct buf *out)
{
	const char *end = p + n;
	int in_body = 0;
	long body_lines = 0;

	buf_reserve(out, n + n / 32 + 16);
	buf_add(out, "", 0);	/* terminated even when nothing follows */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;	/* line end (exclusive) */
		size_t ll;

		if (top >= 0 && in_body && body_lines >= top)
			break;
		if (le > p && le[-1] == '\r' && nl)
			le--;
		ll = (size_t)(le - p);
		if (ll && *p == '.')
			buf_addc(out, '.');
		buf_add(out, p, ll);
		buf_add(out, "\r\n", 2);
		if (in_body)
			body_lines++;
		else if (ll == 0)
			in_body = 1;
		p = nl ? nl + 1 : end;
	}
}
