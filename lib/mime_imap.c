/*
 * mime_imap.c: the IMAP4rev1 views of a parsed message (RFC 3501
 * 7.4.2, grammar in 9): ENVELOPE, BODY and BODYSTRUCTURE, and the
 * string forms they are written in.
 *
 * ENVELOPE shows header values as they are (RFC 2047 encoded-words
 * undecoded, as IMAP wants); address lists are split into (name adl
 * mailbox host) with RFC 3501's group markers, leniently: what does not
 * parse gets Dovecot's MISSING_MAILBOX / MISSING_DOMAIN rather than
 * being dropped.  lib/addr.h is for envelope addresses (it drops
 * display names and groups), so the phrase-keeping parse is here.
 *
 * Every output is well-formed whatever the input: strings that cannot
 * be quoted become literals, NUL bytes are dropped, a multipart without
 * parts shows one empty text/plain part (as Dovecot does).
 */
#include "mime.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
mime_imap_string(struct buf *out, const char *s, size_t n)
{
	size_t i, len = 0;
	int literal = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == 0)
			continue;
		len++;
		if (c >= 0x80 || c == '\r' || c == '\n')
			literal = 1;
	}
	if (literal || len > MIME_IMAP_QUOTED_MAX) {
		buf_printf(out, "{%zu}\r\n", len);
		for (i = 0; i < n; i++)
			if (s[i])
				buf_addc(out, s[i]);
		return;
	}
	buf_addc(out, '"');
	for (i = 0; i < n; i++) {
		if (s[i] == 0)
			continue;
		if (s[i] == '"' || s[i] == '\\')
			buf_addc(out, '\\');
		buf_addc(out, s[i]);
	}
	buf_addc(out, '"');
}

void
mime_imap_nstring(struct buf *out, const char *s)
{
	if (!s)
		buf_adds(out, "NIL");
	else
		mime_imap_string(out, s, strlen(s));
}

/* ---- addresses (RFC 5322 3.4, with the obsolete forms of 4.4) ---- */

enum atok_type { A_ATOM, A_QSTR, A_DLIT, A_COMMENT, A_SPECIAL, A_BAD };

struct atok {
	enum atok_type type;
	char c;			/* A_SPECIAL */
	int sp;			/* white space or a comment before it */
	size_t off, len;	/* raw text (inside quotes or parentheses) */
};

struct atoks {
	struct atok *v;
	size_t n, cap;
};

static void
atok_add(struct atoks *t, enum atok_type type, char c, int sp, size_t off, size_t len)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 32;
		t->v = xreallocarray(t->v, t->cap, sizeof(*t->v));
	}
	t->v[t->n].type = type;
	t->v[t->n].c = c;
	t->v[t->n].sp = sp;
	t->v[t->n].off = off;
	t->v[t->n].len = len;
	t->n++;
}

static void
atokenize(const char *s, size_t n, struct atoks *t)
{
	size_t i = 0, start;
	int sp = 0;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			sp = 1;
			i++;
			continue;
		}
		if (c == '(') {
			size_t depth = 1;

			start = ++i;
			for (; i < n; i++) {
				if (s[i] == '\\' && i + 1 < n)
					i++;
				else if (s[i] == '(')
					depth++;
				else if (s[i] == ')' && --depth == 0)
					break;
			}
			atok_add(t, A_COMMENT, 0, sp, start, (i < n ? i : n) - start);
			if (i < n)
				i++;
			sp = 1;
			continue;
		}
		if (c == '"') {
			start = ++i;
			while (i < n && s[i] != '"') {
				if (s[i] == '\\' && i + 1 < n)
					i++;
				i++;
			}
			/* an unclosed one is junk to its end, as in Dovecot */
			atok_add(t, i < n ? A_QSTR : A_BAD, 0, sp, start, (i < n ? i : n) - start);
			if (i < n)
				i++;
		} else if (c == '[') {
			start = i++;
			while (i < n && s[i] != ']' && s[i] != '[') {
				if (s[i] == '\\' && i + 1 < n)
					i++;
				i++;
			}
			if (i < n && s[i] == ']') {
				i++;
				atok_add(t, A_DLIT, 0, sp, start, i - start);
			} else
				atok_add(t, A_BAD, 0, sp, start, i - start);
		} else if (strchr("<>:;@,.)]\\", c)) {
			atok_add(t, A_SPECIAL, (char)c, sp, i, 1);
			i++;
		} else {
			start = i;
			while (i < n) {
				c = (unsigned char)s[i];
				if (c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
				    strchr("()<>[]:;@,.\\\"", c))
					break;
				i++;
			}
			atok_add(t, A_ATOM, 0, sp, start, i - start);
		}
		sp = 0;
	}
}

static int
is_sp(const struct atok *k, char c)
{
	return k->type == A_SPECIAL && k->c == c;
}

/* Append a quoted string's or comment's content with quoted-pairs undone. */
static void
unquote(struct buf *out, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n)
			i++;
		buf_addc(out, s[i]);
	}
}

struct eaddr {
	char *name, *adl, *mailbox, *host;	/* NULL is NIL */
};

struct eaddrs {
	struct eaddr *v;
	size_t n, cap;
};

static void
eaddr_add(struct eaddrs *l, struct buf *name, struct buf *adl, struct buf *mbox,
    struct buf *host)
{
	struct eaddr *a;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	a = &l->v[l->n++];
	a->name = name && name->len ? xstrdup(buf_str(name)) : NULL;
	a->adl = adl && adl->len ? xstrdup(buf_str(adl)) : NULL;
	a->mailbox = mbox ? xstrdup(buf_str(mbox)) : NULL;
	a->host = host ? xstrdup(buf_str(host)) : NULL;
}

static void
eaddrs_free(struct eaddrs *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].adl);
		free(l->v[i].mailbox);
		free(l->v[i].host);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* A display name from the word tokens in [a, b), one space where the
 * input had white space; comments and other tokens are left out. */
static void
phrase(const char *s, const struct atok *v, size_t a, size_t b, struct buf *out)
{
	size_t i;

	for (i = a; i < b; i++) {
		const struct atok *k = &v[i];

		if (k->type != A_ATOM && k->type != A_QSTR && !is_sp(k, '.'))
			continue;
		if (out->len && k->sp)
			buf_addc(out, ' ');
		if (k->type == A_QSTR)
			unquote(out, s + k->off, k->len);
		else
			buf_add(out, s + k->off, k->len);
	}
}

/* local-part "@" domain from [a, b): words and dots on each side of the
 * first '@', comments dropped. */
static void
addr_spec(const char *s, const struct atok *v, size_t a, size_t b,
    struct buf *mbox, struct buf *host, int *has_host)
{
	size_t i;

	*has_host = 0;
	for (i = a; i < b && !is_sp(&v[i], '@'); i++) {
		if (v[i].type == A_QSTR)
			unquote(mbox, s + v[i].off, v[i].len);
		else if (v[i].type == A_ATOM || is_sp(&v[i], '.'))
			buf_add(mbox, s + v[i].off, v[i].len);
	}
	if (i == b)
		return;
	*has_host = 1;
	for (i++; i < b; i++) {
		if (v[i].type == A_ATOM || v[i].type == A_DLIT || is_sp(&v[i], '.'))
			buf_add(host, s + v[i].off, v[i].len);
	}
}

/* One mailbox from tokens [a, b) (name-addr or addr-spec). */
static void
mailbox(const char *s, const struct atok *v, size_t a, size_t b, struct eaddrs *out)
{
	struct buf name = BUF_INIT, adl = BUF_INIT, mbox = BUF_INIT, host = BUF_INIT;
	size_t i, lt = b, gt, last_comment = b;
	int has_host = 0, content = 0;

	for (i = a; i < b; i++) {
		if (v[i].type == A_COMMENT)
			last_comment = i;
		else
			content = 1;
		if (lt == b && is_sp(&v[i], '<'))
			lt = i;
	}
	if (!content)
		return;		/* only comments: nothing there */
	if (lt < b) {
		phrase(s, v, a, lt, &name);
		for (gt = lt + 1; gt < b && !is_sp(&v[gt], '>'); gt++)
			;
		i = lt + 1;
		if (i < gt && is_sp(&v[i], '@')) {
			/* obs-route: "@a,@b:" kept as Dovecot writes it */
			size_t colon = i;

			while (colon < gt && !is_sp(&v[colon], ':'))
				colon++;
			if (colon == gt) {
				/* "<@a b@c>": Dovecot's INVALID_ROUTE, then the address */
				size_t dom = ++i;

				buf_sets(&adl, "INVALID_ROUTE");
				/* the route's domain ends where white space does */
				while (i < gt && (v[i].type == A_ATOM || v[i].type == A_DLIT ||
				    is_sp(&v[i], '.')) && (i == dom || !v[i].sp))
					i++;
			} else {
				for (; i < colon; i++) {
					if (is_sp(&v[i], '@')) {
						if (adl.len)
							buf_addc(&adl, ',');
						buf_addc(&adl, '@');
					} else if (v[i].type == A_ATOM || v[i].type == A_DLIT ||
					    is_sp(&v[i], '.'))
						buf_add(&adl, s + v[i].off, v[i].len);
				}
				i = colon + 1;
			}
		}
		addr_spec(s, v, i, gt, &mbox, &host, &has_host);
	} else {
		addr_spec(s, v, a, b, &mbox, &host, &has_host);
		/* "a@b (Name)": the comment is the only name there is */
		if (last_comment < b)
			unquote(&name, s + v[last_comment].off, v[last_comment].len);
	}
	if (mbox.len == 0)
		buf_sets(&mbox, "MISSING_MAILBOX");
	if (!has_host || host.len == 0)
		buf_sets(&host, "MISSING_DOMAIN");
	eaddr_add(out, &name, &adl, &mbox, &host);
	buf_free(&name);
	buf_free(&adl);
	buf_free(&mbox);
	buf_free(&host);
}

/* The end of the mailbox starting at i: the next ',' (or ';' in a group)
 * outside angle brackets. */
static size_t
mailbox_end(const struct atok *v, size_t i, size_t n, int in_group)
{
	int angle = 0;

	for (; i < n; i++) {
		if (is_sp(&v[i], '<'))
			angle = 1;
		else if (is_sp(&v[i], '>'))
			angle = 0;
		else if (!angle && (is_sp(&v[i], ',') || (in_group && is_sp(&v[i], ';'))))
			break;
	}
	return i;
}

static void
parse_addresses(const char *s, struct eaddrs *out)
{
	struct atoks t = { NULL, 0, 0 };
	size_t i = 0, j;

	atokenize(s, strlen(s), &t);
	while (i < t.n) {
		if (is_sp(&t.v[i], ',') || is_sp(&t.v[i], ';')) {
			i++;
			continue;
		}
		/* group: phrase ":" [mailbox-list] ";" */
		for (j = i; j < t.n && (t.v[j].type == A_ATOM || t.v[j].type == A_QSTR ||
		    t.v[j].type == A_COMMENT || is_sp(&t.v[j], '.')); j++)
			;
		if (j < t.n && is_sp(&t.v[j], ':')) {
			struct buf gname = BUF_INIT;

			phrase(s, t.v, i, j, &gname);
			eaddr_add(out, NULL, NULL, &gname, NULL);
			buf_free(&gname);
			i = j + 1;
			while (i < t.n && !is_sp(&t.v[i], ';')) {
				if (is_sp(&t.v[i], ',')) {
					i++;
					continue;
				}
				j = mailbox_end(t.v, i, t.n, 1);
				mailbox(s, t.v, i, j, out);
				i = j;
			}
			if (i < t.n)
				i++;	/* the ';' */
			eaddr_add(out, NULL, NULL, NULL, NULL);
			continue;
		}
		j = mailbox_end(t.v, i, t.n, 0);
		mailbox(s, t.v, i, j, out);
		i = j;
	}
	free(t.v);
}

static void
write_addresses(const struct eaddrs *l, struct buf *out)
{
	size_t i;

	if (l->n == 0) {
		buf_adds(out, "NIL");
		return;
	}
	buf_addc(out, '(');
	for (i = 0; i < l->n; i++) {
		buf_addc(out, '(');
		mime_imap_nstring(out, l->v[i].name);
		buf_addc(out, ' ');
		mime_imap_nstring(out, l->v[i].adl);
		buf_addc(out, ' ');
		mime_imap_nstring(out, l->v[i].mailbox);
		buf_addc(out, ' ');
		mime_imap_nstring(out, l->v[i].host);
		buf_addc(out, ')');
	}
	buf_addc(out, ')');
}

static void
field_addresses(const struct header *h, const char *name, struct eaddrs *l)
{
	const struct header_field *f = header_get(h, name);

	if (f)
		parse_addresses(f->value, l);
}

static void
field_nstring(const struct header *h, const char *name, struct buf *out)
{
	const struct header_field *f = header_get(h, name);

	mime_imap_nstring(out, f ? f->value : NULL);
}

/*
 * The first field of each name counts (Dovecot takes the last Subject;
 * readers show the first).  Sender and Reply-To default to From when
 * absent or empty (RFC 3501 7.4.2).
 */
void
mime_imap_envelope(const struct mime_part *msg, struct buf *out)
{
	const struct header *h = &msg->header;
	struct eaddrs from = { NULL, 0, 0 }, l = { NULL, 0, 0 };
	static const char *const rest[] = { "To", "Cc", "Bcc" };
	size_t i;

	buf_addc(out, '(');
	field_nstring(h, "Date", out);
	buf_addc(out, ' ');
	field_nstring(h, "Subject", out);
	field_addresses(h, "From", &from);
	buf_addc(out, ' ');
	write_addresses(&from, out);
	buf_addc(out, ' ');
	field_addresses(h, "Sender", &l);
	write_addresses(l.n ? &l : &from, out);
	eaddrs_free(&l);
	buf_addc(out, ' ');
	field_addresses(h, "Reply-To", &l);
	write_addresses(l.n ? &l : &from, out);
	eaddrs_free(&l);
	for (i = 0; i < sizeof(rest) / sizeof(rest[0]); i++) {
		buf_addc(out, ' ');
		field_addresses(h, rest[i], &l);
		write_addresses(&l, out);
		eaddrs_free(&l);
	}
	buf_addc(out, ' ');
	field_nstring(h, "In-Reply-To", out);
	buf_addc(out, ' ');
	field_nstring(h, "Message-ID", out);
	buf_addc(out, ')');
	eaddrs_free(&from);
}

/* ---- BODY / BODYSTRUCTURE ---- */

static void
write_params(const struct mime_param *v, size_t n, const char *def_charset,
    struct buf *out)
{
	size_t i;

	if (n == 0 && !def_charset) {
		buf_adds(out, "NIL");
		return;
	}
	buf_addc(out, '(');
	for (i = 0; i < n; i++) {
		if (i)
			buf_addc(out, ' ');
		if (v[i].extended) {
			struct buf name = BUF_INIT;

			buf_printf(&name, "%s*", v[i].name);
			mime_imap_string(out, name.data, name.len);
			buf_free(&name);
			buf_addc(out, ' ');
			mime_imap_nstring(out, v[i].wire);
		} else {
			mime_imap_nstring(out, v[i].name);
			buf_addc(out, ' ');
			mime_imap_nstring(out, v[i].value);
		}
	}
	if (def_charset) {
		if (n)
			buf_addc(out, ' ');
		buf_adds(out, "\"charset\" ");
		mime_imap_nstring(out, def_charset);
	}
	buf_addc(out, ')');
}

/* body-fld-dsp SP body-fld-lang SP body-fld-loc */
static void
write_dsp_lang_loc(const struct mime_part *p, struct buf *out)
{
	size_t i;

	buf_addc(out, ' ');
	if (!p->disposition)
		buf_adds(out, "NIL");
	else {
		buf_addc(out, '(');
		mime_imap_nstring(out, p->disposition);
		buf_addc(out, ' ');
		write_params(p->disp_params, p->ndisp_params, NULL, out);
		buf_addc(out, ')');
	}
	buf_addc(out, ' ');
	if (p->nlanguage == 0)
		buf_adds(out, "NIL");
	else {
		buf_addc(out, '(');
		for (i = 0; i < p->nlanguage; i++) {
			if (i)
				buf_addc(out, ' ');
			mime_imap_nstring(out, p->language[i]);
		}
		buf_addc(out, ')');
	}
	buf_addc(out, ' ');
	mime_imap_nstring(out, p->location);
}

#define EMPTY_PART	"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0"

static void
write_body(const struct mime_part *p, int ext, struct buf *out)
{
	const struct mime_part *c;

	buf_addc(out, '(');
	if (p->kind == MIME_MULTIPART) {
		if (!p->child)
			buf_adds(out, ext ? EMPTY_PART " NIL NIL NIL NIL)" : EMPTY_PART ")");
		for (c = p->child; c; c = c->next)
			write_body(c, ext, out);
		buf_addc(out, ' ');
		mime_imap_nstring(out, p->subtype);
		if (ext) {
			buf_addc(out, ' ');
			write_params(p->params, p->nparams, NULL, out);
			write_dsp_lang_loc(p, out);
		}
		buf_addc(out, ')');
		return;
	}
	mime_imap_nstring(out, p->type);
	buf_addc(out, ' ');
	mime_imap_nstring(out, p->subtype);
	buf_addc(out, ' ');
	write_params(p->params, p->nparams,
	    p->charset && !mime_param_get(p->params, p->nparams, "charset") ?
	    p->charset : NULL, out);
	buf_addc(out, ' ');
	mime_imap_nstring(out, p->id);
	buf_addc(out, ' ');
	mime_imap_nstring(out, p->description);
	buf_addc(out, ' ');
	mime_imap_nstring(out, p->cte_name ? p->cte_name : "7bit");
	buf_printf(out, " %zu", p->body_size);
	if (p->kind == MIME_MESSAGE && p->child) {
		buf_addc(out, ' ');
		mime_imap_envelope(p->child, out);
		buf_addc(out, ' ');
		write_body(p->child, ext, out);
		buf_printf(out, " %zu", p->body_lines);
	} else if (strcmp(p->type, "text") == 0)
		buf_printf(out, " %zu", p->body_lines);
	if (ext) {
		buf_addc(out, ' ');
		mime_imap_nstring(out, p->md5);
		write_dsp_lang_loc(p, out);
	}
	buf_addc(out, ')');
}

void
mime_imap_bodystructure(const struct mime_part *p, int extended, struct buf *out)
{
	write_body(p, extended, out);
}
