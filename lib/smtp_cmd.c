/*
 * smtp_cmd.c: SMTP command parsing without I/O (see smtp_cmd.h).
 *
 * Invariants: every function bounds its work by the length of its
 * input; nothing returned ever contains CR, LF or NUL; replies produced
 * for errors carry an RFC 3463 enhanced status code.
 */
#include "smtp_cmd.h"
#include "addr.h"
#include "queue_file.h"
#include "util.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	int verb;
} verbs[] = {
	{ "HELO", SMTP_HELO }, { "EHLO", SMTP_EHLO }, { "MAIL", SMTP_MAIL },
	{ "RCPT", SMTP_RCPT }, { "DATA", SMTP_DATA }, { "BDAT", SMTP_BDAT },
	{ "RSET", SMTP_RSET }, { "NOOP", SMTP_NOOP }, { "QUIT", SMTP_QUIT },
	{ "VRFY", SMTP_VRFY }, { "EXPN", SMTP_EXPN }, { "HELP", SMTP_HELP },
	{ "STARTTLS", SMTP_STARTTLS }, { "AUTH", SMTP_AUTH },
	{ NULL, 0 }
};

int
smtp_cmd_verb(const char *line, size_t len, const char **arg)
{
	size_t i, vl;

	for (vl = 0; vl < len && line[vl] != ' '; vl++)
		;
	for (i = 0; verbs[i].name; i++) {
		if (strlen(verbs[i].name) == vl && !strncasecmp(line, verbs[i].name, vl)) {
			const char *a = line + vl;

			while (a < line + len && *a == ' ')
				a++;
			*arg = a;
			return verbs[i].verb;
		}
	}
	*arg = line + len;
	return SMTP_UNKNOWN;
}

const char *
smtp_verb_name(int verb)
{
	size_t i;

	for (i = 0; verbs[i].name; i++)
		if (verbs[i].verb == verb)
			return verbs[i].name;
	return "UNKNOWN";
}

void
smtp_path_init(struct smtp_path *p)
{
	memset(p, 0, sizeof(*p));
	buf_init(&p->addr);
	buf_init(&p->raw);
	buf_init(&p->envid);
	buf_init(&p->orcpt);
	buf_init(&p->auth);
	p->size = -1;
}

void
smtp_path_free(struct smtp_path *p)
{
	buf_free(&p->addr);
	buf_free(&p->raw);
	buf_free(&p->envid);
	buf_free(&p->orcpt);
	buf_free(&p->auth);
	smtp_path_init(p);
}

static int
is_hex_upper(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static int
hexval(int c)
{
	return c <= '9' ? c - '0' : c - 'A' + 10;
}

int
smtp_xtext_decode(const char *in, size_t n, struct buf *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '+') {
			int v;

			if (i + 2 >= n || !is_hex_upper(in[i + 1]) || !is_hex_upper(in[i + 2]))
				return -1;
			v = hexval(in[i + 1]) * 16 + hexval(in[i + 2]);
			if (v == 0 || v == '\r' || v == '\n')
				return -1;
			buf_addc(out, v);
			i += 2;
		} else if (c < 33 || c > 126 || c == '=')
			return -1;
		else
			buf_addc(out, c);
	}
	return 0;
}

void
smtp_xtext_encode(const char *in, size_t n, struct buf *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c < 33 || c > 126 || c == '+' || c == '=')
			buf_printf(out, "+%02X", c);
		else
			buf_addc(out, c);
	}
}



int
smtp_sasl_plain(const char *msg, size_t n, struct buf *user, struct buf *pass)
{
	const char *z1, *z2;
	size_t zl, ul, pl;

	buf_reset(user);
	buf_reset(pass);
	if (!(z1 = memchr(msg, 0, n)))
		return -1;
	zl = (size_t)(z1 - msg);
	if (!(z2 = memchr(z1 + 1, 0, n - zl - 1)))
		return -1;
	ul = (size_t)(z2 - z1 - 1);
	pl = n - zl - ul - 2;
	if (memchr(z2 + 1, 0, pl) || ul == 0 || pl == 0)
		return -1;
	if (zl && (zl != ul || memcmp(msg, z1 + 1, ul)))
		return -1;
	if (has_crlfnul(z1 + 1, ul) || has_crlfnul(z2 + 1, pl))
		return -1;
	buf_add(user, z1 + 1, ul);
	buf_add(pass, z2 + 1, pl);
	return 0;
}

/* End of the path starting at '<': the index of the matching '>' outside
 * quoted strings, or (size_t)-1. */
static size_t
path_end(const char *s, size_t n)
{
	size_t i;
	int q = 0;

	for (i = 1; i < n; i++) {
		if (q && s[i] == '\\' && i + 1 < n)
			i++;
		else if (s[i] == '"')
			q = !q;
		else if (!q && s[i] == '>')
			return i;
		else if (!q && s[i] == '<')
			return (size_t)-1;
	}
	return (size_t)-1;
}

static int
param_is(const char *k, size_t kl, const char *name)
{
	return strlen(name) == kl && !strncasecmp(k, name, kl);
}

static int
parse_param(const char *k, size_t kl, const char *v, size_t vl, int has_v,
    int is_rcpt, struct smtp_path *p, unsigned *seen, struct buf *reply)
{
	size_t i;

#define ONCE(bit) do { if (*seen & (bit)) { buf_sets(reply, "501 5.5.4 Duplicate parameter"); return -1; } *seen |= (bit); } while (0)
	if (!is_rcpt && param_is(k, kl, "SIZE")) {
		long long sz = 0;

		ONCE(1);
		if (!has_v || vl == 0 || vl > 20)
			goto bad;
		for (i = 0; i < vl; i++) {
			if (v[i] < '0' || v[i] > '9')
				goto bad;
			if (sz > (LLONG_MAX - 9) / 10)
				sz = LLONG_MAX;
			else
				sz = sz * 10 + (v[i] - '0');
		}
		p->size = sz;
		return 0;
	}
	if (!is_rcpt && param_is(k, kl, "BODY")) {
		ONCE(2);
		if (has_v && param_is(v, vl, "7BIT"))
			p->body = SMTP_BODY_7BIT;
		else if (has_v && param_is(v, vl, "8BITMIME"))
			p->body = SMTP_BODY_8BITMIME;
		else if (has_v && param_is(v, vl, "BINARYMIME")) {
			buf_sets(reply, "555 5.5.4 BODY=BINARYMIME is not supported");
			return -1;
		} else
			goto bad;
		return 0;
	}
	if (!is_rcpt && param_is(k, kl, "SMTPUTF8")) {
		ONCE(4);
		if (has_v)
			goto bad;
		p->smtputf8 = 1;
		return 0;
	}
	if (!is_rcpt && param_is(k, kl, "RET")) {
		ONCE(8);
		if (has_v && param_is(v, vl, "FULL"))
			p->ret = SMTP_RET_FULL;
		else if (has_v && param_is(v, vl, "HDRS"))
			p->ret = SMTP_RET_HDRS;
		else
			goto bad;
		return 0;
	}
	if (!is_rcpt && param_is(k, kl, "ENVID")) {
		ONCE(16);
		if (!has_v || vl == 0 || vl > 100 || smtp_xtext_decode(v, vl, &p->envid) < 0)
			goto bad;
		return 0;
	}
	if (!is_rcpt && param_is(k, kl, "AUTH")) {
		ONCE(32);
		if (!has_v || vl == 0 || vl > 500)
			goto bad;
		if (!(vl == 2 && !memcmp(v, "<>", 2)) && smtp_xtext_decode(v, vl, &p->auth) < 0)
			goto bad;
		return 0;
	}
	if (is_rcpt && param_is(k, kl, "NOTIFY")) {
		size_t s = 0;

		ONCE(64);
		if (!has_v || vl == 0)
			goto bad;
		if (param_is(v, vl, "NEVER")) {
			p->notify = DSN_NOTIFY_NEVER;
			return 0;
		}
		while (s < vl) {
			size_t e = s;

			while (e < vl && v[e] != ',')
				e++;
			if (param_is(v + s, e - s, "SUCCESS"))
				p->notify |= DSN_NOTIFY_SUCCESS;
			else if (param_is(v + s, e - s, "FAILURE"))
				p->notify |= DSN_NOTIFY_FAILURE;
			else if (param_is(v + s, e - s, "DELAY"))
				p->notify |= DSN_NOTIFY_DELAY;
			else
				goto bad;
			s = e + 1;
			if (e < vl && s == vl)
				goto bad;	/* trailing comma */
		}
		return 0;
	}
	if (is_rcpt && param_is(k, kl, "ORCPT")) {
		const char *semi;
		size_t tl;

		ONCE(128);
		if (!has_v || vl == 0 || vl > 500 || !(semi = memchr(v, ';', vl)))
			goto bad;
		tl = (size_t)(semi - v);
		if (tl == 0)
			goto bad;
		for (i = 0; i < tl; i++)
			if (!((v[i] >= 'A' && v[i] <= 'Z') || (v[i] >= 'a' && v[i] <= 'z') ||
			    (v[i] >= '0' && v[i] <= '9') || v[i] == '-'))
				goto bad;
		buf_add(&p->orcpt, v, tl + 1);
		if (smtp_xtext_decode(semi + 1, vl - tl - 1, &p->orcpt) < 0 ||
		    p->orcpt.len == tl + 1 || p->orcpt.len > QF_ADDR_MAX)
			goto bad;
		return 0;
	}
	buf_printf(reply, "555 5.5.4 Unsupported parameter %.*s", (int)(kl > 40 ? 40 : kl), k);
	return -1;
bad:
	buf_printf(reply, "501 5.5.4 Bad %.*s parameter", (int)(kl > 40 ? 40 : kl), k);
	return -1;
#undef ONCE
}

int
smtp_parse_path(const char *arg, int is_rcpt, struct smtp_path *p, struct buf *reply)
{
	const char *kw = is_rcpt ? "TO:" : "FROM:";
	size_t kwl = strlen(kw), n = strlen(arg), i, e;
	const char *s, *path;
	size_t plen;
	struct buf tmp = BUF_INIT;
	unsigned seen = 0;

	buf_reset(reply);
	smtp_path_free(p);
	if (has_crlfnul(arg, n)) {
		buf_sets(reply, "501 5.5.2 Syntax error");
		return -1;
	}
	if (n < kwl || strncasecmp(arg, kw, kwl)) {
		buf_printf(reply, "501 5.5.4 Syntax: %s <address>", is_rcpt ? "RCPT TO:" : "MAIL FROM:");
		return -1;
	}
	s = arg + kwl;
	n -= kwl;
	while (n && *s == ' ') {
		s++;
		n--;
	}
	if (!n || *s != '<' || (e = path_end(s, n)) == (size_t)-1) {
		buf_printf(reply, "501 5.5.4 Syntax: %s <address>", is_rcpt ? "RCPT TO:" : "MAIL FROM:");
		return -1;
	}
	path = s + 1;
	plen = e - 1;
	if (plen && *path == '@') {
		/* source route @a,@b:mailbox (RFC 5321 C: accepted, ignored) */
		const char *colon = memchr(path, ':', plen);

		if (!colon || colon + 1 == path + plen) {
			buf_sets(reply, "501 5.1.3 Bad address syntax");
			return -1;
		}
		p->route = 1;
		plen -= (size_t)(colon + 1 - path);
		path = colon + 1;
	}
	if (plen > ADDR_MAX_LEN) {
		buf_sets(reply, "501 5.1.3 Address too long");
		return -1;
	}
	buf_add(&p->raw, path, plen);
	buf_addc(&tmp, '<');
	buf_add(&tmp, path, plen);
	buf_addc(&tmp, '>');
	if (addr_unwrap(buf_str(&tmp), &p->addr) < 0 || (is_rcpt && p->addr.len == 0)) {
		buf_free(&tmp);
		buf_sets(reply, is_rcpt ? "501 5.1.3 Bad recipient address syntax" :
		    "501 5.1.7 Bad sender address syntax");
		return -1;
	}
	buf_free(&tmp);
	/* parameters */
	i = e + 1;
	n = strlen(s);
	if (i < n && s[i] != ' ') {
		buf_sets(reply, "501 5.5.4 Syntax error after the address");
		return -1;
	}
	while (i < n) {
		size_t ks, kl, vs = 0, vl = 0;
		int has_v = 0;

		while (i < n && s[i] == ' ')
			i++;
		if (i >= n)
			break;
		ks = i;
		while (i < n && s[i] != ' ' && s[i] != '=')
			i++;
		kl = i - ks;
		if (i < n && s[i] == '=') {
			has_v = 1;
			vs = ++i;
			while (i < n && s[i] != ' ')
				i++;
			vl = i - vs;
		}
		if (kl == 0) {
			buf_sets(reply, "501 5.5.4 Bad parameter syntax");
			return -1;
		}
		if (parse_param(s + ks, kl, s + vs, vl, has_v, is_rcpt, p, &seen, reply) < 0)
			return -1;
	}
	return 0;
}
