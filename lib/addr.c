/*
 * addr.c: RFC 5321 envelope addresses and RFC 5322 address lists.
 *
 * Two jobs.  First, checking and normalising envelope addresses (the
 * strings that go into queue files): addr_valid accepts RFC 5321
 * Mailbox syntax (section 4.1.2: dot-string or quoted-string local part,
 * domain or address literal) plus the unambiguous obsolete forms real
 * mail still carries (dots at the ends of a local part, '_' in host
 * names), and UTF-8 per RFC 6531.  Second, addr_parse_list turns an
 * RFC 5322 address-list (section 3.4: display names, angle addresses,
 * comments that nest, quoted strings with commas, groups, obsolete
 * routes) into envelope addresses in internal form.
 *
 * Invariants: nothing produced here contains CR, LF, NUL or another
 * control character; every string returned passes addr_valid; every
 * loop is bounded by the input length (no recursion, so nested comments
 * cannot exhaust the stack); no output exceeds ADDR_MAX_LEN.
 */
#include "addr.h"
#include "util.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DOMAIN_MAX	255
#define LABEL_MAX	63

/* RFC 5322 atext, ASCII part. */
static int
is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* 1 if local (len bytes) is a dot-atom: atoms of atext/UTF-8 joined by
 * single dots, nothing else. */
static int
is_dot_atom(const char *local, size_t len)
{
	const unsigned char *s = (const unsigned char *)local;
	size_t i = 0, k;
	int need = 1;

	if (len == 0)
		return 0;
	while (i < len) {
		if (s[i] == '.') {
			if (need)
				return 0;
			need = 1;
			i++;
		} else if (is_atext(s[i])) {
			need = 0;
			i++;
		} else if (s[i] >= 0x80 && (k = utf8_char_len(s + i, len - i))) {
			need = 0;
			i += k;
		} else
			return 0;
	}
	return !need;
}

/*
 * Check an address literal "[...]" (RFC 5321 4.1.3): IPv4, IPv6:...,
 * or a general literal tag:content.
 */
static int
literal_valid(const char *d, size_t len)
{
	char tmp[80];
	unsigned char a6[16];
	size_t i, inner = len - 2;
	const char *in = d + 1;

	if (len < 3 || d[0] != '[' || d[len - 1] != ']' || inner >= sizeof(tmp))
		return 0;
	memcpy(tmp, in, inner);
	tmp[inner] = 0;
	if (inner > 5 && strncasecmp(tmp, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, tmp + 5, a6) == 1;
	if (strspn(tmp, "0123456789.") == inner)
		return inet_pton(AF_INET, tmp, a6) == 1;
	/* General-address-literal: Standardized-tag ":" 1*dcontent */
	for (i = 0; i < inner && tmp[i] != ':'; i++)
		if (!((tmp[i] >= 'a' && tmp[i] <= 'z') || (tmp[i] >= 'A' && tmp[i] <= 'Z') ||
		    (tmp[i] >= '0' && tmp[i] <= '9') || tmp[i] == '-'))
			return 0;
	if (i == 0 || i >= inner - 1 || tmp[0] == '-' || tmp[i - 1] == '-')
		return 0;
	for (i++; i < inner; i++) {
		unsigned char c = (unsigned char)tmp[i];

		if (c < 33 || c > 126 || c == '[' || c == ']' || c == '\\')
			return 0;
	}
	return 1;
}

/* A domain: labels of letters, digits, '-', '_' or UTF-8, not starting
 * or ending with '-', joined by single dots; or an address literal. */
static int
domain_valid(const char *d, size_t len)
{
	const unsigned char *s = (const unsigned char *)d;
	size_t i = 0, label = 0, k;

	if (len == 0)
		return 0;
	if (d[0] == '[')
		return literal_valid(d, len);
	if (len > DOMAIN_MAX)
		return 0;
	while (i < len) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			i++;
			continue;
		}
		if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_')
			k = 1;
		else if (s[i] == '-') {
			if (label == 0)
				return 0;
			k = 1;
		} else if (s[i] >= 0x80 && (k = utf8_char_len(s + i, len - i)))
			;
		else
			return 0;
		label += k;
		if (label > LABEL_MAX)
			return 0;
		i += k;
	}
	return label > 0 && s[len - 1] != '-';
}

/*
 * Scan the local part at the start of addr.  Returns its length in
 * bytes (including quotes) or (size_t)-1 when it is malformed.
 * Accepted: a quoted-string (RFC 5321 qtextSMTP / quoted-pairSMTP, and
 * UTF-8), or an unquoted run of atext/UTF-8 and dots with at least one
 * non-dot character.
 */
static size_t
local_scan(const char *addr, size_t len)
{
	const unsigned char *s = (const unsigned char *)addr;
	size_t i, k;
	int atoms = 0;

	if (len == 0)
		return (size_t)-1;
	if (s[0] == '"') {
		for (i = 1; i < len; ) {
			if (s[i] == '"')
				return i + 1;
			if (s[i] == '\\') {
				if (i + 1 >= len || s[i + 1] < 32 || s[i + 1] > 126)
					return (size_t)-1;
				i += 2;
			} else if (s[i] >= 32 && s[i] <= 126)
				i++;
			else if (s[i] >= 0x80 && (k = utf8_char_len(s + i, len - i)))
				i += k;
			else
				return (size_t)-1;
		}
		return (size_t)-1;
	}
	for (i = 0; i < len && s[i] != '@'; ) {
		if (s[i] == '.')
			i++;
		else if (is_atext(s[i])) {
			atoms = 1;
			i++;
		} else if (s[i] >= 0x80 && (k = utf8_char_len(s + i, len - i))) {
			atoms = 1;
			i += k;
		} else
			return (size_t)-1;
	}
	return atoms ? i : (size_t)-1;
}

int
addr_valid(const char *addr)
{
	size_t len, l;

	if (!addr)
		return 0;
	len = strlen(addr);
	if (len == 0)
		return 1;
	if (len > ADDR_MAX_LEN)
		return 0;
	if ((l = local_scan(addr, len)) == (size_t)-1)
		return 0;
	if (l == len)
		return 1;
	if (addr[l] != '@')
		return 0;
	return domain_valid(addr + l + 1, len - l - 1);
}

int
addr_valid_rcpt(const char *addr)
{
	return addr && *addr && addr_valid(addr);
}

/* Append the content of a quoted-string (without its quotes), with
 * quoted-pairs resolved. */
static void
unquote_into(struct buf *out, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n)
			i++;
		buf_addc(out, s[i]);
	}
}

int
addr_split(const char *addr, struct buf *local, struct buf *domain)
{
	size_t len, l, i;

	buf_reset(local);
	buf_reset(domain);
	if (!addr_valid(addr))
		return -1;
	len = strlen(addr);
	if (len == 0)
		return 0;
	l = local_scan(addr, len);
	if (addr[0] == '"')
		unquote_into(local, addr + 1, l - 2);
	else
		buf_add(local, addr, l);
	if (l < len) {
		buf_add(domain, addr + l + 1, len - l - 1);
		for (i = 0; i < domain->len; i++)
			if (domain->data[i] >= 'A' && domain->data[i] <= 'Z')
				domain->data[i] = (char)(domain->data[i] - 'A' + 'a');
	}
	return 0;
}

/* Offset of the last '@' outside quotes, or (size_t)-1 if none. */
static size_t
domain_at(const char *addr)
{
	size_t i, at = (size_t)-1;
	int q = 0;

	for (i = 0; addr[i]; i++) {
		if (q && addr[i] == '\\' && addr[i + 1])
			i++;
		else if (addr[i] == '"')
			q = !q;
		else if (!q && addr[i] == '@')
			at = i;
	}
	return at;
}

void
addr_qualify(const char *addr, const char *origin, struct buf *out)
{
	struct buf tmp = BUF_INIT;

	buf_adds(&tmp, addr ? addr : "");
	if (tmp.len && origin && *origin && domain_at(tmp.data) == (size_t)-1) {
		buf_addc(&tmp, '@');
		buf_adds(&tmp, origin);
	}
	buf_reset(out);
	buf_add(out, tmp.data ? tmp.data : "", tmp.len);
	buf_free(&tmp);
}

void
addr_quote_local(const char *local, struct buf *out)
{
	size_t len = strlen(local), i;

	if (is_dot_atom(local, len)) {
		buf_add(out, local, len);
		return;
	}
	buf_addc(out, '"');
	for (i = 0; i < len; i++) {
		if (local[i] == '"' || local[i] == '\\')
			buf_addc(out, '\\');
		buf_addc(out, local[i]);
	}
	buf_addc(out, '"');
}

/*
 * Build the internal form from a local part (unquoted text) and a
 * domain (may be NULL for an unqualified address) into out; strip one
 * trailing dot of the domain.  0 if the result is a valid address.
 */
static int
addr_build(struct buf *out, const char *local, size_t llen,
    const char *domain, size_t dlen)
{
	struct buf l = BUF_INIT;
	int rc;

	buf_reset(out);
	buf_add(&l, local, llen);
	if (memchr(local, 0, llen)) {
		buf_free(&l);
		return -1;
	}
	addr_quote_local(buf_str(&l), out);
	buf_free(&l);
	if (domain) {
		if (dlen > 1 && domain[dlen - 1] == '.' && domain[0] != '[')
			dlen--;
		buf_addc(out, '@');
		buf_add(out, domain, dlen);
	}
	rc = out->len <= ADDR_MAX_LEN && addr_valid_rcpt(buf_str(out)) ? 0 : -1;
	return rc;
}

int
addr_unwrap(const char *in, struct buf *out)
{
	const char *s = in, *e, *at;
	struct buf local = BUF_INIT;
	size_t len, l;
	int rc = -1;

	buf_reset(out);
	if (!in)
		return -1;
	len = strlen(in);
	if (len > ADDR_MAX_LEN + 1024 || has_crlfnul(in, len))
		return -1;
	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (s < e && *s == '<') {
		if (e[-1] != '>' || e - s < 2)
			return -1;
		s++;
		e--;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
	} else if (s < e && e[-1] == '>')
		return -1;
	if (s == e)
		return 0;		/* <> */
	if (*s == '@') {
		/* obsolete source route: @a,@b:addr */
		const char *colon = memchr(s, ':', (size_t)(e - s));

		if (!colon)
			return -1;
		s = colon + 1;
		if (s == e)
			return -1;
	}
	len = (size_t)(e - s);
	if ((l = local_scan(s, len)) == (size_t)-1)
		return -1;
	if (*s == '"')
		unquote_into(&local, s + 1, l - 2);
	else
		buf_add(&local, s, l);
	at = s + l;
	if (at == e)
		rc = addr_build(out, local.data ? local.data : "", local.len, NULL, 0);
	else if (*at == '@')
		rc = addr_build(out, local.data ? local.data : "", local.len, at + 1,
		    (size_t)(e - at - 1));
	buf_free(&local);
	if (rc < 0)
		buf_reset(out);
	return rc;
}

/*
 * RFC 5322 address lists.  The tokenizer turns the value into atoms,
 * quoted strings, domain literals and specials; comments and white
 * space are dropped.  The parser then cuts the token list into
 * addresses at top-level commas, handles groups and angle addresses,
 * and rebuilds each addr-spec in internal form.
 */
enum tok_type { T_ATOM, T_QSTR, T_DLIT, T_SPECIAL, T_BAD };

struct tok {
	enum tok_type type;
	char c;			/* for T_SPECIAL */
	size_t off, len;	/* content in the input (inside the quotes for T_QSTR) */
};

struct toks {
	struct tok *v;
	size_t n, cap;
};

static void
tok_add(struct toks *t, enum tok_type type, char c, size_t off, size_t len)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 32;
		t->v = xreallocarray(t->v, t->cap, sizeof(*t->v));
	}
	t->v[t->n].type = type;
	t->v[t->n].c = c;
	t->v[t->n].off = off;
	t->v[t->n].len = len;
	t->n++;
}

static void
tokenize(const char *s, struct toks *t)
{
	size_t i = 0, start;
	unsigned char c;

	while ((c = (unsigned char)s[i]) != 0) {
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			i++;
		} else if (c == '(') {
			/* comment, nesting counted, quoted-pairs skipped */
			size_t depth = 1;

			for (i++; s[i] && depth; i++) {
				if (s[i] == '\\' && s[i + 1])
					i++;
				else if (s[i] == '(')
					depth++;
				else if (s[i] == ')')
					depth--;
			}
			if (depth)
				tok_add(t, T_BAD, 0, i, 0);
		} else if (c == '"') {
			start = ++i;
			while (s[i] && s[i] != '"') {
				if (s[i] == '\\' && s[i + 1])
					i++;
				i++;
			}
			if (s[i] == '"') {
				tok_add(t, T_QSTR, 0, start, i - start);
				i++;
			} else
				tok_add(t, T_BAD, 0, start, i - start);
		} else if (c == '[') {
			start = i++;
			while (s[i] && s[i] != ']' && s[i] != '[') {
				if (s[i] == '\\' && s[i + 1])
					i++;
				i++;
			}
			if (s[i] == ']') {
				i++;
				tok_add(t, T_DLIT, 0, start, i - start);
			} else
				tok_add(t, T_BAD, 0, start, i - start);
		} else if (strchr(")<>]:;@\\,.", c)) {
			tok_add(t, T_SPECIAL, (char)c, i, 1);
			i++;
		} else if (is_atext(c) || c >= 0x80) {
			start = i;
			while (s[i] && (is_atext((unsigned char)s[i]) || (unsigned char)s[i] >= 0x80))
				i++;
			tok_add(t, T_ATOM, 0, start, i - start);
		} else {
			/* a control character */
			tok_add(t, T_BAD, 0, i, 1);
			i++;
		}
	}
}

static int
is_sp(const struct tok *k, char c)
{
	return k->type == T_SPECIAL && k->c == c;
}

/*
 * An addr-spec from tokens [a, b): word *("." word) ["@" domain].
 * Words next to each other without a dot ("John Doe") are refused;
 * stray dots (obs-local-part) are kept.
 */
static int
addr_spec(const char *s, const struct tok *v, size_t a, size_t b, struct buf *out)
{
	struct buf local = BUF_INIT, dom = BUF_INIT;
	size_t i;
	int need_word = 1, words = 0, rc = -1, at = 0;

	for (i = a; i < b && !is_sp(&v[i], '@'); i++) {
		if (v[i].type == T_ATOM || v[i].type == T_QSTR) {
			if (!need_word)
				goto out;
			if (v[i].type == T_QSTR)
				unquote_into(&local, s + v[i].off, v[i].len);
			else
				buf_add(&local, s + v[i].off, v[i].len);
			need_word = 0;
			words++;
		} else if (is_sp(&v[i], '.')) {
			buf_addc(&local, '.');
			need_word = 1;
		} else
			goto out;
		if (local.len > ADDR_MAX_LEN)
			goto out;
	}
	if (words == 0)
		goto out;
	if (i < b) {
		at = 1;
		need_word = 1;
		for (i++; i < b; i++) {
			if (v[i].type == T_ATOM && need_word) {
				buf_add(&dom, s + v[i].off, v[i].len);
				need_word = 0;
			} else if (v[i].type == T_DLIT && dom.len == 0 && i + 1 == b) {
				buf_add(&dom, s + v[i].off, v[i].len);
				need_word = 0;
			} else if (is_sp(&v[i], '.') && !need_word) {
				buf_addc(&dom, '.');
				need_word = 1;
			} else
				goto out;
			if (dom.len > ADDR_MAX_LEN)
				goto out;
		}
		/* a trailing dot is removed by addr_build */
		if (dom.len == 0)
			goto out;
	}
	rc = addr_build(out, local.data ? local.data : "", local.len,
	    at ? buf_str(&dom) : NULL, dom.len);
out:
	buf_free(&local);
	buf_free(&dom);
	return rc;
}

/* One address (mailbox) from tokens [a, b).  1 made one, 0 empty, -1 bad. */
static int
mailbox(const char *s, const struct tok *v, size_t a, size_t b, struct buf *out)
{
	size_t i, lt = b, gt = b;

	if (a == b)
		return 0;
	for (i = a; i < b; i++)
		if (v[i].type == T_BAD)
			return -1;
	for (i = a; i < b; i++)
		if (is_sp(&v[i], '<')) {
			lt = i;
			break;
		}
	if (lt == b)
		return addr_spec(s, v, a, b, out) == 0 ? 1 : -1;
	/* name-addr: the display name before '<' is ignored */
	for (i = lt + 1; i < b; i++)
		if (is_sp(&v[i], '>')) {
			gt = i;
			break;
		}
	if (gt == b || gt + 1 != b)
		return -1;	/* no '>' or something after it */
	i = lt + 1;
	if (i < gt && is_sp(&v[i], '@')) {
		/* obs-route: "@a,@b:" */
		while (i < gt && !is_sp(&v[i], ':'))
			i++;
		if (i == gt)
			return -1;
		i++;
	}
	if (i == gt)
		return -1;	/* <> is no recipient */
	return addr_spec(s, v, i, gt, out) == 0 ? 1 : -1;
}

char **
addr_parse_list(const char *value, size_t *bad)
{
	struct toks t = { NULL, 0, 0 };
	struct buf one = BUF_INIT;
	char **vec;
	size_t n = 0, cap = 4, i, start, nbad = 0;
	int in_group = 0;

	vec = xcalloc(cap, sizeof(*vec));
	if (!value)
		goto done;
	tokenize(value, &t);
	i = 0;
	while (i < t.n) {
		int angle = 0, r;

		start = i;
		for (; i < t.n; i++) {
			const struct tok *k = &t.v[i];

			if (is_sp(k, '<'))
				angle++;
			else if (is_sp(k, '>') && angle > 0)
				angle--;
			else if (angle == 0 && is_sp(k, ','))
				break;
			else if (angle == 0 && is_sp(k, ';'))
				break;
			else if (angle == 0 && is_sp(k, ':') && !in_group) {
				/* group: the display name before ':' is dropped */
				in_group = 1;
				start = i + 1;
			}
		}
		r = mailbox(value, t.v, start, i, &one);
		if (r > 0) {
			if (n + 1 >= cap) {
				cap *= 2;
				vec = xreallocarray(vec, cap, sizeof(*vec));
			}
			vec[n++] = xstrdup(buf_str(&one));
		} else if (r < 0)
			nbad++;
		if (i < t.n && is_sp(&t.v[i], ';'))
			in_group = 0;	/* also tolerates ';' used as a separator */
		i++;
	}
done:
	vec[n] = NULL;
	free(t.v);
	buf_free(&one);
	if (bad)
		*bad = nbad;
	return vec;
}
