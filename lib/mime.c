/*
 * mime.c: the MIME tree of a stored message (RFC 2045 for the Content-*
 * fields, RFC 2046 for multipart bodies and the defaults, RFC 2231 for
 * parameter continuations and charsets), BODY[section] ranges and
 * header filtering (RFC 3501 6.4.5), transfer decoding (RFC 2045 6.7,
 * 6.8) and RFC 2047 encoded-words.  The IMAP renderings are in
 * mime_imap.c; doc/mime.md describes the model and the rules.
 *
 * One pass over the message, no recursion: the open parts form a path
 * from the root to the current part, the boundaries of the open
 * multiparts a stack.  At each line start the line is checked against
 * that stack (a delimiter line is "--" and a boundary as a prefix; the
 * longest match wins, the innermost among equals, as in Dovecot); a
 * delimiter ends every open part below the multipart that owns it, the
 * line end before it belonging to the delimiter (RFC 2046 5.1.1).
 * Header sections are split by lib/header.c.  Sizes and line counts are
 * computed afterwards in one more pass.
 *
 * Invariants (checked by t/fuzz/fuzz_mime.c): every part's ranges lie
 * inside the buffer and inside its parent's body, in document order;
 * header fields lie inside their part's header; the work is linear in
 * the input (times the log of the part count), memory linear in it.
 */
#include "mime.h"
#include "base64.h"
#include "util.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- structured field values (RFC 2045 5.1 with RFC 822 comments) ---- */

struct lex {
	const char *s;
	size_t n, i;
};

static int
is_ws(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Skip white space and (nested) comments. */
static void
lex_cfws(struct lex *x)
{
	while (x->i < x->n) {
		if (is_ws((unsigned char)x->s[x->i])) {
			x->i++;
		} else if (x->s[x->i] == '(') {
			size_t depth = 0;

			/* an unclosed comment swallows the rest, as readers do */
			for (; x->i < x->n; x->i++) {
				char c = x->s[x->i];

				if (c == '\\' && x->i + 1 < x->n)
					x->i++;
				else if (c == '(')
					depth++;
				else if (c == ')' && --depth == 0) {
					x->i++;
					break;
				}
			}
		} else
			break;
	}
}

static int
is_tspecial(int c)
{
	return c && strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

/* An RFC 2045 token (8-bit bytes tolerated), appended lower-cased when
 * lower is set; its length. */
static size_t
lex_token(struct lex *x, struct buf *out, int lower)
{
	size_t start = x->i;

	while (x->i < x->n) {
		unsigned char c = (unsigned char)x->s[x->i];

		if (c <= 32 || c == 127 || is_tspecial(c))
			break;
		buf_addc(out, lower && c >= 'A' && c <= 'Z' ? c + 32 : c);
		x->i++;
	}
	return x->i - start;
}

/* A quoted string at x->i (the opening quote), unescaped; an unclosed
 * one runs to the end. */
static void
lex_qstring(struct lex *x, struct buf *out)
{
	for (x->i++; x->i < x->n; x->i++) {
		char c = x->s[x->i];

		if (c == '"') {
			x->i++;
			return;
		}
		if (c == '\\' && x->i + 1 < x->n)
			c = x->s[++x->i];
		buf_addc(out, c);
	}
}

/* Skip to just after the next ';' (or the end): resynchronise after junk. */
static void
lex_skip_param(struct lex *x)
{
	while (x->i < x->n && x->s[x->i] != ';') {
		if (x->s[x->i] == '"') {
			struct buf junk = BUF_INIT;

			lex_qstring(x, &junk);
			buf_free(&junk);
		} else
			x->i++;
	}
}

/* ---- parameters and RFC 2231 ---- */

struct raw_param {
	char *name;		/* lower-cased, as written otherwise */
	char *value;
};

struct raw_params {
	struct raw_param *v;
	size_t n, cap;
};

static void
raw_add(struct raw_params *r, struct buf *name, struct buf *value)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 8;
		r->v = xreallocarray(r->v, r->cap, sizeof(*r->v));
	}
	r->v[r->n].name = xstrndup(buf_str(name), name->len);
	r->v[r->n].value = xstrndup(buf_str(value), value->len);
	r->n++;
}

static void
raw_free(struct raw_params *r)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		free(r->v[i].name);
		free(r->v[i].value);
	}
	free(r->v);
	memset(r, 0, sizeof(*r));
}

/*
 * *(";" attribute "=" value).  Lenient as mail readers are: a value
 * that is neither a token nor a quoted string runs to white space or
 * ';' ("name=a/b.pdf"), a parameter without '=' or a name is skipped,
 * empty ones (";;") too.
 */
static void
parse_params(struct lex *x, struct raw_params *r)
{
	struct buf name = BUF_INIT, value = BUF_INIT;

	for (;;) {
		lex_cfws(x);
		if (x->i >= x->n)
			break;
		if (x->s[x->i] != ';') {
			lex_skip_param(x);
			continue;
		}
		x->i++;
		lex_cfws(x);
		buf_reset(&name);
		buf_reset(&value);
		if (lex_token(x, &name, 1) == 0)
			continue;
		lex_cfws(x);
		if (x->i >= x->n || x->s[x->i] != '=')
			continue;
		x->i++;
		lex_cfws(x);
		if (x->i < x->n && x->s[x->i] == '"')
			lex_qstring(x, &value);
		else
			while (x->i < x->n && x->s[x->i] != ';' && x->s[x->i] != '"' &&
			    !is_ws((unsigned char)x->s[x->i]))
				buf_addc(&value, x->s[x->i++]);
		raw_add(r, &name, &value);
	}
	buf_free(&name);
	buf_free(&value);
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 2231 %XX decoding; a bad escape stays as written, a NUL is
 * dropped (no string of the model holds one). */
static void
pct_decode(const char *s, struct buf *out)
{
	for (; *s; s++) {
		int h, l;

		if (*s == '%' && (h = hexval((unsigned char)s[1])) >= 0 &&
		    (l = hexval((unsigned char)s[2])) >= 0) {
			if (h || l)
				buf_addc(out, h * 16 + l);
			s += 2;
		} else
			buf_addc(out, *s);
	}
}

/* Append with '%' escaped: a plain section inside an extended value. */
static void
pct_escape(const char *s, struct buf *out)
{
	for (; *s; s++) {
		if (*s == '%')
			buf_adds(out, "%25");
		else
			buf_addc(out, *s);
	}
}

struct sect {
	const char *base;	/* the name without "*n*" (points into a copy) */
	size_t baselen;
	unsigned long num;
	int ext;
	size_t pos;		/* index in the raw list */
};

static int
sect_cmp(const void *a, const void *b)
{
	const struct sect *x = a, *y = b;
	size_t n = x->baselen < y->baselen ? x->baselen : y->baselen;
	int c = memcmp(x->base, y->base, n);

	if (c)
		return c;
	if (x->baselen != y->baselen)
		return x->baselen < y->baselen ? -1 : 1;
	if (x->num != y->num)
		return x->num < y->num ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* If name is an RFC 2231 form (base*, base*N, base*N*), fill s. */
static int
sect_of(const char *name, size_t pos, struct sect *s)
{
	const char *star = strchr(name, '*'), *p;
	unsigned long num = 0;
	size_t digits = 0;

	if (!star || star == name)
		return 0;
	p = star + 1;
	s->base = name;
	s->baselen = (size_t)(star - name);
	s->pos = pos;
	if (*p == 0) {
		s->num = 0;
		s->ext = 1;
		return 1;
	}
	while (*p >= '0' && *p <= '9') {
		if (++digits > 6)
			return 0;	/* nobody splits a value in a million */
		num = num * 10 + (unsigned long)(*p++ - '0');
	}
	if (digits == 0)
		return 0;
	s->num = num;
	s->ext = 0;
	if (*p == '*') {
		s->ext = 1;
		p++;
	}
	return *p == 0;
}

struct outparam {
	size_t key;		/* the position of its first raw parameter */
	struct mime_param p;
};

static int
outparam_cmp(const void *a, const void *b)
{
	const struct outparam *x = a, *y = b;

	return x->key < y->key ? -1 : x->key > y->key;
}

static void
out_add(struct outparam **v, size_t *n, size_t *cap, size_t key,
    const struct mime_param *p)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		*v = xreallocarray(*v, *cap, sizeof(**v));
	}
	(*v)[*n].key = key;
	(*v)[*n].p = *p;
	(*n)++;
}

/* One merged parameter from the sections s[0..k) (sorted, numbered 0..k-1). */
static void
merge_sections(const struct raw_params *r, const struct sect *s, size_t k,
    struct mime_param *p)
{
	struct buf bytes = BUF_INIT, wire = BUF_INIT, val = BUF_INIT;
	size_t i;
	int any_ext = 0;

	memset(p, 0, sizeof(*p));
	p->name = xstrndup(s[0].base, s[0].baselen);
	for (i = 0; i < k; i++)
		any_ext |= s[i].ext;
	if (!any_ext) {
		for (i = 0; i < k; i++)
			buf_adds(&val, r->v[s[i].pos].value);
		p->value = buf_steal(&val);
		return;
	}
	p->extended = 1;
	for (i = 0; i < k; i++) {
		const char *v = r->v[s[i].pos].value;

		if (i == 0 && s[i].ext) {
			const char *q1 = strchr(v, '\''), *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;

			buf_adds(&wire, v);
			if (q2) {
				p->charset = xstrndup(v, (size_t)(q1 - v));
				p->language = xstrndup(q1 + 1, (size_t)(q2 - q1 - 1));
				v = q2 + 1;
			}
			pct_decode(v, &bytes);
		} else if (s[i].ext) {
			buf_adds(&wire, v);
			pct_decode(v, &bytes);
		} else {
			if (i == 0)
				buf_adds(&wire, "''");
			pct_escape(v, &wire);
			buf_adds(&bytes, v);
		}
	}
	if (!p->charset) {
		p->charset = xstrdup("");
		p->language = xstrdup("");
	}
	/* the charset's verdict does not matter here: unknown ones were
	 * kept as UTF-8, and there is no output bound to be cut at */
	(void)mime_to_utf8(p->charset, buf_str(&bytes), bytes.len,
	    bytes.len * 4 + 16, &val);
	p->value = buf_steal(&val);
	p->wire = buf_steal(&wire);
	buf_free(&bytes);
}

/*
 * Turn the raw list into parameters: RFC 2231 sections of one name are
 * merged when they are numbered 0..k-1 without gaps or repeats; else
 * each is kept under its own name ("name*2"), as Dovecot does.  The
 * order is that of the first appearance.
 */
static void
build_params(struct raw_params *r, struct mime_param **pv, size_t *pn)
{
	struct sect *s = NULL;
	struct outparam *o = NULL;
	size_t ns = 0, no = 0, ocap = 0, i, j;

	if (r->n)
		s = xcalloc(r->n, sizeof(*s));
	for (i = 0; i < r->n; i++) {
		if (sect_of(r->v[i].name, i, &s[ns])) {
			ns++;
		} else {
			struct mime_param p;

			memset(&p, 0, sizeof(p));
			p.name = xstrdup(r->v[i].name);
			p.value = xstrdup(r->v[i].value);
			out_add(&o, &no, &ocap, i, &p);
		}
	}
	if (ns)
		qsort(s, ns, sizeof(*s), sect_cmp);
	for (i = 0; i < ns; i = j) {
		size_t first = s[i].pos;
		int ok = 1;

		for (j = i; j < ns && s[j].baselen == s[i].baselen &&
		    memcmp(s[j].base, s[i].base, s[i].baselen) == 0; j++) {
			if (s[j].num != j - i)
				ok = 0;
			if (s[j].pos < first)
				first = s[j].pos;
		}
		if (ok) {
			struct mime_param p;

			merge_sections(r, s + i, j - i, &p);
			out_add(&o, &no, &ocap, first, &p);
		} else {
			size_t t;

			for (t = i; t < j; t++) {
				struct mime_param p;

				memset(&p, 0, sizeof(p));
				p.name = xstrdup(r->v[s[t].pos].name);
				p.value = xstrdup(r->v[s[t].pos].value);
				out_add(&o, &no, &ocap, s[t].pos, &p);
			}
		}
	}
	free(s);
	if (no)
		qsort(o, no, sizeof(*o), outparam_cmp);
	*pn = no;
	*pv = no ? xcalloc(no, sizeof(**pv)) : NULL;
	for (i = 0; i < no; i++)
		(*pv)[i] = o[i].p;
	free(o);
}

static void
params_free(struct mime_param *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].value);
		free(v[i].charset);
		free(v[i].language);
		free(v[i].wire);
	}
	free(v);
}

const struct mime_param *
mime_param_get(const struct mime_param *v, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

/* ---- the Content-* fields of one part ---- */

/* type "/" subtype *(";" parameter); 0, or -1 if type or subtype is missing. */
static int
parse_content_type(const char *value, struct mime_part *p)
{
	struct lex x = { value, strlen(value), 0 };
	struct buf type = BUF_INIT, sub = BUF_INIT;
	struct raw_params r = { NULL, 0, 0 };
	int rc = -1;

	lex_cfws(&x);
	if (lex_token(&x, &type, 1) == 0)
		goto out;
	lex_cfws(&x);
	if (x.i >= x.n || x.s[x.i] != '/')
		goto out;
	x.i++;
	lex_cfws(&x);
	if (lex_token(&x, &sub, 1) == 0)
		goto out;
	parse_params(&x, &r);
	build_params(&r, &p->params, &p->nparams);
	p->type = buf_steal(&type);
	p->subtype = buf_steal(&sub);
	rc = 0;
out:
	buf_free(&type);
	buf_free(&sub);
	raw_free(&r);
	return rc;
}

static void
set_type(struct mime_part *p, const char *type, const char *sub)
{
	free(p->type);
	free(p->subtype);
	p->type = xstrdup(type);
	p->subtype = xstrdup(sub);
}

static void
parse_disposition(const char *value, struct mime_part *p)
{
	struct lex x = { value, strlen(value), 0 };
	struct buf type = BUF_INIT;
	struct raw_params r = { NULL, 0, 0 };

	lex_cfws(&x);
	if (lex_token(&x, &type, 1) == 0) {
		buf_free(&type);
		return;
	}
	parse_params(&x, &r);
	build_params(&r, &p->disp_params, &p->ndisp_params);
	raw_free(&r);
	p->disposition = buf_steal(&type);
}

/* 1#Language-tag (RFC 3282), tags as written. */
static void
parse_language(const char *value, struct mime_part *p)
{
	struct lex x = { value, strlen(value), 0 };
	struct buf tag = BUF_INIT;
	size_t cap = 0;

	for (;;) {
		lex_cfws(&x);
		if (x.i >= x.n)
			break;
		if (x.s[x.i] == ',') {
			x.i++;
			continue;
		}
		buf_reset(&tag);
		while (x.i < x.n && x.s[x.i] != ',' && x.s[x.i] != '(' &&
		    !is_ws((unsigned char)x.s[x.i]))
			buf_addc(&tag, x.s[x.i++]);
		if (p->nlanguage == cap) {
			cap = cap ? cap * 2 : 4;
			p->language = xreallocarray(p->language, cap, sizeof(*p->language));
		}
		p->language[p->nlanguage++] = xstrndup(buf_str(&tag), tag.len);
	}
	buf_free(&tag);
}

static char *
field_dup(const struct header *h, const char *name)
{
	const struct header_field *f = header_get(h, name);

	return f ? xstrdup(f->value) : NULL;
}

/* The Content-* fields; the first of each name counts (as in Dovecot). */
static void
content_fields(struct mime_part *p)
{
	const struct header_field *f;
	int digest = p->parent && p->parent->kind == MIME_MULTIPART &&
	    strcmp(p->parent->subtype, "digest") == 0;

	f = header_get(&p->header, "Content-Type");
	if (!f || parse_content_type(f->value, p) < 0) {
		if (f)
			p->flags |= MIME_PART_BAD_TYPE;
		/* absent: the context's default (RFC 2046 5.1.5); invalid:
		 * text/plain as RFC 2045 5.2 recommends */
		if (!f && digest)
			set_type(p, "message", "rfc822");
		else
			set_type(p, "text", "plain");
	}
	if ((f = header_get(&p->header, "Content-Transfer-Encoding")) != NULL) {
		struct lex x = { f->value, strlen(f->value), 0 };
		struct buf tok = BUF_INIT;

		lex_cfws(&x);
		if (lex_token(&x, &tok, 1) > 0)
			p->cte_name = buf_steal(&tok);
		buf_free(&tok);
	}
	if (!p->cte_name || strcmp(p->cte_name, "7bit") == 0)
		p->cte = MIME_CTE_7BIT;
	else if (strcmp(p->cte_name, "8bit") == 0)
		p->cte = MIME_CTE_8BIT;
	else if (strcmp(p->cte_name, "binary") == 0)
		p->cte = MIME_CTE_BINARY;
	else if (strcmp(p->cte_name, "quoted-printable") == 0)
		p->cte = MIME_CTE_QP;
	else if (strcmp(p->cte_name, "base64") == 0)
		p->cte = MIME_CTE_BASE64;
	else
		p->cte = MIME_CTE_UNKNOWN;
	if ((f = header_get(&p->header, "Content-Disposition")) != NULL)
		parse_disposition(f->value, p);
	if ((f = header_get(&p->header, "Content-Language")) != NULL)
		parse_language(f->value, p);
	p->id = field_dup(&p->header, "Content-ID");
	p->description = field_dup(&p->header, "Content-Description");
	p->location = field_dup(&p->header, "Content-Location");
	p->md5 = field_dup(&p->header, "Content-MD5");
}

static void
set_charset(struct mime_part *p)
{
	const struct mime_param *cs;

	free(p->charset);
	p->charset = NULL;
	if (strcmp(p->type, "text") != 0)
		return;
	cs = mime_param_get(p->params, p->nparams, "charset");
	p->charset = xstrdup(cs ? cs->value : "us-ascii");
}

/* ---- the parser ---- */

struct bnd {
	const char *s;		/* the boundary (the owner's parameter value) */
	size_t len;
	uint64_t hash;		/* prefix_hash() of it */
	struct mime_part *owner;
};

struct frame {
	struct mime_part *part;
	struct mime_part *last;	/* its last child so far */
};

struct parser {
	struct mime_message *m;
	const char *d;
	size_t len;
	struct bnd *b;		/* boundaries of the open multiparts, innermost last */
	size_t nb, capb;
	uint64_t *lh;		/* a line's prefix hashes, by length */
	size_t lhcap;
	struct frame *path;	/* the open parts by depth */
	size_t pcap;
	size_t partcap;		/* room in m->parts */
	size_t region;		/* a line end before a delimiter at or before this
				 * is not the current part's to give up */
	int frozen;		/* max_parts reached: no delimiter is recognised */
};

static struct mime_part *
part_new(struct parser *ps, struct mime_part *parent, size_t offset)
{
	struct mime_message *m = ps->m;
	struct mime_part *p = xcalloc(1, sizeof(*p));

	if (m->nparts == ps->partcap) {
		ps->partcap = ps->partcap ? ps->partcap * 2 : 4;
		m->parts = xreallocarray(m->parts, ps->partcap, sizeof(*m->parts));
	}
	p->index = m->nparts;
	m->parts[m->nparts++] = p;
	p->parent = parent;
	p->depth = parent ? parent->depth + 1 : 0;
	p->offset = p->body_offset = offset;
	if (p->depth >= ps->pcap) {
		ps->pcap = p->depth + 8;
		ps->path = xreallocarray(ps->path, ps->pcap, sizeof(*ps->path));
	}
	if (parent) {
		struct frame *f = &ps->path[parent->depth];

		if (f->last)
			f->last->next = p;
		else
			parent->child = p;
		f->last = p;
	}
	ps->path[p->depth].part = p;
	ps->path[p->depth].last = NULL;
	return p;
}

/* FNV-1a, extended one byte at a time, so that one pass over a line
 * gives the hash of each of its prefixes. */
#define FNV_START	UINT64_C(1469598103934665603)

static uint64_t
fnv_step(uint64_t h, unsigned char c)
{
	return (h ^ c) * UINT64_C(1099511628211);
}

/*
 * If the line at p is a delimiter line of an open multipart, the index
 * of its boundary in ps->b (the longest that matches; the innermost of
 * equal ones), with *close set for a close delimiter; else -1.  Only
 * the prefix has to match, as in Dovecot: RFC 2046 allows white space
 * after the boundary, and mailers have been seen to put more.  The
 * prefix hashes make a line cost its length plus one comparison per
 * open boundary, not a memcmp each (100 nested 70-byte boundaries and
 * lines that almost match them all would be slow otherwise).
 */
static long
boundary_at(struct parser *ps, size_t p, int *close)
{
	const char *d = ps->d, *nl;
	size_t avail, want, i, blen;
	long best = -1;
	uint64_t h = FNV_START;

	if (ps->frozen || ps->nb == 0 || ps->len - p < 2 || d[p] != '-' || d[p + 1] != '-')
		return -1;
	p += 2;
	want = ps->m->limits.max_boundary + 2;
	avail = ps->len - p < want ? ps->len - p : want;
	if ((nl = memchr(d + p, '\n', avail)) != NULL)
		avail = (size_t)(nl - (d + p));
	if (avail + 1 > ps->lhcap) {
		ps->lhcap = avail + 1;
		ps->lh = xreallocarray(ps->lh, ps->lhcap, sizeof(*ps->lh));
	}
	ps->lh[0] = h;
	for (i = 0; i < avail; i++)
		ps->lh[i + 1] = h = fnv_step(h, (unsigned char)d[p + i]);
	for (i = ps->nb; i-- > 0; ) {
		const struct bnd *b = &ps->b[i];

		if (b->len <= avail && ps->lh[b->len] == b->hash &&
		    (best < 0 || b->len > ps->b[best].len) &&
		    memcmp(d + p, b->s, b->len) == 0)
			best = (long)i;
	}
	if (best >= 0) {
		blen = ps->b[best].len;
		*close = avail >= blen + 2 && d[p + blen] == '-' && d[p + blen + 1] == '-';
	}
	return best;
}

/* The first delimiter line at or after the line start p (its offset),
 * or len with *which -1. */
static size_t
next_delimiter(struct parser *ps, size_t p, long *which, int *close)
{
	const char *nl;

	*which = -1;
	if (ps->frozen || ps->nb == 0)
		return ps->len;
	while (p < ps->len) {
		if ((*which = boundary_at(ps, p, close)) >= 0)
			return p;
		if ((nl = memchr(ps->d + p, '\n', ps->len - p)) == NULL)
			break;
		p = (size_t)(nl - ps->d) + 1;
	}
	*which = -1;
	return ps->len;
}

static void
header_keep(struct header *h, size_t n)
{
	size_t i;

	for (i = n; i < h->n; i++) {
		free(h->f[i].name);
		free(h->f[i].value);
	}
	h->n = n;
}

/* 1 if the header section was ended by a field holding a NUL byte
 * (header_parse stops there) at line start s. */
static int
stopped_at_nul(const char *d, size_t len, size_t s)
{
	const char *nl;
	size_t e = s;

	if (s >= len)
		return 0;
	do {
		nl = memchr(d + e, '\n', len - e);
		e = nl ? (size_t)(nl - d) + 1 : len;
	} while (e < len && (d[e] == ' ' || d[e] == '\t'));
	return memchr(d + s, 0, e - s) != NULL;
}

/*
 * header_parse on a copy of the header section with each NUL made
 * 0x80, as Dovecot reads such headers: a stray NUL must not cost the
 * fields after it (a Content-Type among them).  The copy runs to the
 * first empty line, or one line past max bytes; raw pointers are moved
 * back into the message.
 */
static int
header_parse_nul(const char *d, size_t len, size_t off, size_t max, struct header *h)
{
	struct buf copy = BUF_INIT;
	size_t e = off, i;
	const char *nl;
	int rc;

	while (e < len) {
		size_t ls = e;

		nl = memchr(d + e, '\n', len - e);
		e = nl ? (size_t)(nl - d) + 1 : len;
		if (e - ls == 1 || (e - ls == 2 && d[ls] == '\r') || (max && e - off > max))
			break;
	}
	buf_add(&copy, d + off, e - off);
	for (i = 0; i < copy.len; i++)
		if (copy.data[i] == 0)
			copy.data[i] = (char)0x80;
	header_free(h);
	rc = header_parse(copy.data, copy.len, max, h);
	for (i = 0; i < h->n; i++)
		h->f[i].raw = d + off + (h->f[i].raw - copy.data);
	buf_free(&copy);
	return rc;
}

/* Split the part's header section.  A delimiter line that looks like a
 * field ("--a:b" for the boundary "a:b") ends it; one that does not
 * already ends it in header_parse. */
static void
part_header(struct parser *ps, struct mime_part *p)
{
	struct header *h = &p->header;
	size_t hl, i, max = ps->m->limits.max_header;
	int close, rc;

	rc = header_parse(ps->d + p->offset, ps->len - p->offset, max, h);
	if (!h->has_blank && !h->truncated &&
	    stopped_at_nul(ps->d, ps->len, p->offset + (rc < 0 ? 0 : h->body_offset)))
		rc = header_parse_nul(ps->d, ps->len, p->offset, max, h);
	hl = rc < 0 ? 0 : h->body_offset;
	if (h->truncated) {
		p->flags |= MIME_PART_HEADER_CUT;
		ps->m->limited = 1;
	}
	for (i = 0; i < h->n; i++) {
		size_t at = (size_t)(h->f[i].raw - ps->d);

		if (h->f[i].raw[0] == '-' && boundary_at(ps, at, &close) >= 0) {
			header_keep(h, i);
			h->has_blank = 0;
			h->truncated = 0;
			p->flags &= ~MIME_PART_HEADER_CUT;
			hl = at - p->offset;
			h->body_offset = hl;
			break;
		}
	}
	p->header_len = hl;
	p->body_offset = p->offset + hl;
}

static void
push_boundary(struct parser *ps, struct mime_part *p, const char *s)
{
	if (ps->nb == ps->capb) {
		ps->capb = ps->capb ? ps->capb * 2 : 8;
		ps->b = xreallocarray(ps->b, ps->capb, sizeof(*ps->b));
	}
	ps->b[ps->nb].s = s;
	ps->b[ps->nb].len = strlen(s);
	ps->b[ps->nb].hash = FNV_START;
	for (; *s; s++)
		ps->b[ps->nb].hash = fnv_step(ps->b[ps->nb].hash, (unsigned char)*s);
	ps->b[ps->nb].owner = p;
	ps->nb++;
}

/* A container that may not have children: kept whole, shown as
 * application/octet-stream (Dovecot does the same). */
static void
make_opaque(struct parser *ps, struct mime_part *p)
{
	p->flags |= MIME_PART_OPAQUE;
	p->kind = MIME_LEAF;
	set_type(p, "application", "octet-stream");
	ps->m->limited = 1;
}

/* The header, the Content-* fields and what the body is. */
static void
part_start(struct parser *ps, struct mime_part *p)
{
	const struct mime_limits *lim = &ps->m->limits;
	int room = p->depth + 1 < lim->max_depth && ps->m->nparts < lim->max_parts;
	struct mime_part *q;

	part_header(ps, p);
	content_fields(p);
	p->kind = MIME_LEAF;
	if (strcmp(p->type, "multipart") == 0) {
		const struct mime_param *b = mime_param_get(p->params, p->nparams, "boundary");

		if (!b || !*b->value || strlen(b->value) > lim->max_boundary) {
			/* nothing to split on: the body is one text */
			p->flags |= MIME_PART_NO_BOUNDARY;
			set_type(p, "text", "plain");
			params_free(p->params, p->nparams);
			p->params = NULL;
			p->nparams = 0;
		} else if (!room) {
			make_opaque(ps, p);
		} else {
			p->kind = MIME_MULTIPART;
			push_boundary(ps, p, b->value);
		}
	} else if (strcmp(p->type, "message") == 0 && strcmp(p->subtype, "rfc822") == 0) {
		if (room)
			p->kind = MIME_MESSAGE;
		else
			make_opaque(ps, p);
	}
	set_charset(p);
	/*
	 * The line end before a delimiter belongs to it (RFC 2046 5.1.1),
	 * even when it is the one of the header's last line or of the empty
	 * line after it (so "X: 1\n\n--b" is a header "X: 1\n" and no body,
	 * as in Dovecot); for an empty encapsulated message it is its
	 * message/rfc822 part's.
	 */
	ps->region = p->offset;
	for (q = p; ps->region == q->offset && q->parent &&
	    q->parent->kind == MIME_MESSAGE; q = q->parent)
		ps->region = q->parent->offset;
}

/* End the part at end (it may have to give up its header's last line end). */
static void
part_end(struct mime_part *p, size_t end)
{
	if (p->offset > end)
		p->offset = end;
	if (p->body_offset > end) {
		/* the header lost its last line end: no empty line any more */
		p->body_offset = end;
		p->header_len = end - p->offset;
		p->header.body_offset = p->header_len;
		p->header.has_blank = 0;
	}
	p->body_len = end - p->body_offset;
}

/* Keep header fields inside the (possibly shortened) header section. */
static void
fields_clip(const char *d, struct mime_part *p)
{
	const char *hend = d + p->offset + p->header_len;
	size_t i, keep = p->header.n;

	for (i = 0; i < p->header.n; i++) {
		struct header_field *f = &p->header.f[i];

		if (f->raw >= hend) {
			keep = i;
			break;
		}
		if (f->raw + f->raw_len > hend)
			f->raw_len = (size_t)(hend - f->raw);
	}
	header_keep(&p->header, keep);
}

/* Close the open parts from cur up to (not including) owner at end. */
static void
close_below(struct parser *ps, struct mime_part *cur, struct mime_part *owner, size_t end)
{
	struct mime_part *q;

	for (q = cur; q && q != owner; q = q->parent) {
		part_end(q, end);
		fields_clip(ps->d, q);
	}
}

/* Where the current part ends for a delimiter at line start at. */
static size_t
end_before(const struct parser *ps, size_t at)
{
	size_t e = at;

	if (e > ps->region && ps->d[e - 1] == '\n') {
		e--;
		if (e > ps->region && ps->d[e - 1] == '\r')
			e--;
	}
	return e;
}

/* ---- sizes: LF counts at every part edge, in one pass ---- */

struct cut {
	size_t off, lf, bare;
};

static int
size_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

static const struct cut *
cut_find(const struct cut *c, size_t n, size_t off)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return &c[lo];	/* every looked-up offset is in the table */
}

static void
range_size(const char *d, const struct cut *c, size_t n, size_t a, size_t b,
    size_t *size, size_t *lines)
{
	const struct cut *x = cut_find(c, n, a), *y = cut_find(c, n, b);
	size_t bare = y->bare - x->bare;

	/* an LF at the start of a range counts as bare (see mime_crlf_size) */
	if (a < b && d[a] == '\n' && a > 0 && d[a - 1] == '\r')
		bare++;
	*size = (b - a) + bare;
	*lines = y->lf - x->lf;
}

static void
compute_sizes(struct mime_message *m)
{
	size_t n = m->nparts * 3, i, k, u = 0, lf = 0, bare = 0, pos = 0;
	size_t *offs = xcalloc(n, sizeof(*offs));
	struct cut *c;
	const char *nl;

	for (i = 0; i < m->nparts; i++) {
		offs[3 * i] = m->parts[i]->offset;
		offs[3 * i + 1] = m->parts[i]->body_offset;
		offs[3 * i + 2] = mime_part_end(m->parts[i]);
	}
	qsort(offs, n, sizeof(*offs), size_cmp);
	c = xcalloc(n, sizeof(*c));
	for (i = 0; i < n; i++)
		if (u == 0 || c[u - 1].off != offs[i])
			c[u++].off = offs[i];
	free(offs);
	k = 0;
	while (k < u) {
		nl = pos < m->len ? memchr(m->data + pos, '\n', m->len - pos) : NULL;
		if (!nl) {
			for (; k < u; k++) {
				c[k].lf = lf;
				c[k].bare = bare;
			}
			break;
		}
		pos = (size_t)(nl - m->data);
		for (; k < u && c[k].off <= pos; k++) {
			c[k].lf = lf;
			c[k].bare = bare;
		}
		lf++;
		if (pos == 0 || m->data[pos - 1] != '\r')
			bare++;
		pos++;
	}
	for (i = 0; i < m->nparts; i++) {
		struct mime_part *p = m->parts[i];

		range_size(m->data, c, u, p->offset, p->body_offset,
		    &p->header_size, &p->header_lines);
		range_size(m->data, c, u, p->body_offset, mime_part_end(p),
		    &p->body_size, &p->body_lines);
	}
	free(c);
}

struct mime_message *
mime_parse(const char *data, size_t len, const struct mime_limits *lim)
{
	static const struct mime_limits def = MIME_LIMITS_DEFAULT;
	struct mime_message *m = xcalloc(1, sizeof(*m));
	struct parser ps;
	struct mime_part *cur;
	size_t scan, i;

	m->data = data ? data : "";
	m->len = data ? len : 0;
	m->limits = lim ? *lim : def;
	if (m->limits.max_depth == 0)
		m->limits.max_depth = 1;
	if (m->limits.max_depth > MIME_DEPTH_HARD_MAX)
		m->limits.max_depth = MIME_DEPTH_HARD_MAX;
	if (m->limits.max_parts == 0)
		m->limits.max_parts = 1;
	if (m->limits.max_boundary == 0)
		m->limits.max_boundary = 1;
	memset(&ps, 0, sizeof(ps));
	ps.m = m;
	ps.d = m->data;
	ps.len = m->len;

	cur = part_new(&ps, NULL, 0);
	for (;;) {
		long k;
		int close = 0;
		size_t at, after;
		struct mime_part *owner;
		const char *nl;

		part_start(&ps, cur);
		if (cur->kind == MIME_MESSAGE) {
			cur = part_new(&ps, cur, cur->body_offset);
			continue;
		}
		scan = cur->body_offset;
	again:
		at = next_delimiter(&ps, scan, &k, &close);
		if (k < 0)
			break;
		owner = ps.b[k].owner;
		nl = memchr(ps.d + at, '\n', ps.len - at);
		after = nl ? (size_t)(nl - ps.d) + 1 : ps.len;
		if (!close && m->nparts >= m->limits.max_parts) {
			/* no room for the next part: the rest is the current one's */
			owner->flags |= MIME_PART_LIMIT;
			m->limited = 1;
			ps.frozen = 1;
			break;
		}
		if (cur != owner)
			close_below(&ps, cur, owner, end_before(&ps, at));
		/* the multiparts closed above lost their boundaries unclosed */
		while (ps.nb > (size_t)k + 1) {
			ps.b[ps.nb - 1].owner->flags |= MIME_PART_UNCLOSED;
			ps.nb--;
		}
		if (close) {
			/* the epilogue: the owner's body up to an outer delimiter */
			ps.nb--;
			cur = owner;
			ps.region = scan = after;
			goto again;
		}
		cur = part_new(&ps, owner, after);
	}
	/* the end of the message ends every open part */
	for (; cur; cur = cur->parent)
		part_end(cur, m->len);
	for (i = 0; i < ps.nb; i++)
		ps.b[i].owner->flags |= MIME_PART_UNCLOSED;
	free(ps.b);
	free(ps.lh);
	free(ps.path);
	compute_sizes(m);
	return m;
}

static void
part_free(struct mime_part *p)
{
	size_t i;

	header_free(&p->header);
	free(p->type);
	free(p->subtype);
	params_free(p->params, p->nparams);
	free(p->charset);
	free(p->cte_name);
	free(p->disposition);
	params_free(p->disp_params, p->ndisp_params);
	for (i = 0; i < p->nlanguage; i++)
		free(p->language[i]);
	free(p->language);
	free(p->id);
	free(p->description);
	free(p->location);
	free(p->md5);
	free(p);
}

void
mime_free(struct mime_message **mp)
{
	struct mime_message *m = *mp;
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->nparts; i++)
		part_free(m->parts[i]);
	free(m->parts);
	free(m);
	*mp = NULL;
}

size_t
mime_part_end(const struct mime_part *p)
{
	return p->body_offset + p->body_len;
}

/* ---- CRLF sizes ---- */

size_t
mime_crlf_size(const char *p, size_t n, size_t *lines)
{
	size_t i = 0, lf = 0, bare = 0;
	const char *nl;

	while (i < n && (nl = memchr(p + i, '\n', n - i)) != NULL) {
		i = (size_t)(nl - p);
		lf++;
		if (i == 0 || p[i - 1] != '\r')
			bare++;
		i++;
	}
	if (lines)
		*lines = lf;
	return n + bare;
}

/* Append n bytes with each NUL made 0x80. */
static void
add_nonul(struct buf *out, const char *p, size_t n)
{
	const char *z;

	while (n && (z = memchr(p, 0, n)) != NULL) {
		size_t k = (size_t)(z - p);

		buf_add(out, p, k);
		buf_addc(out, 0x80);
		p += k + 1;
		n -= k + 1;
	}
	buf_add(out, p, n);
}

void
mime_crlf_append(struct buf *out, const char *p, size_t n)
{
	size_t i = 0;
	const char *nl;

	while (i < n && (nl = memchr(p + i, '\n', n - i)) != NULL) {
		size_t at = (size_t)(nl - p);

		add_nonul(out, p + i, at - i);
		if (at == 0 || p[at - 1] != '\r')
			buf_addc(out, '\r');
		buf_addc(out, '\n');
		i = at + 1;
	}
	add_nonul(out, p + i, n - i);
}

/* ---- transfer decoding ---- */

static int
b64val(int c)
{
	return base64_value(c, '/');
}

/* Emit what a partial group of k sextets holds (k 2 or 3). */
static void
b64_flush(struct buf *out, uint32_t acc, int k)
{
	if (k == 2)
		buf_addc(out, (int)((acc >> 4) & 0xff));
	else if (k == 3) {
		buf_addc(out, (int)((acc >> 10) & 0xff));
		buf_addc(out, (int)((acc >> 2) & 0xff));
	}
}

void
mime_base64_decode(const char *in, size_t n, struct buf *out)
{
	uint32_t acc = 0;
	int k = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		int v = b64val((unsigned char)in[i]);

		if (v >= 0) {
			acc = (acc << 6) | (uint32_t)v;
			if (++k == 4) {
				buf_addc(out, (int)((acc >> 16) & 0xff));
				buf_addc(out, (int)((acc >> 8) & 0xff));
				buf_addc(out, (int)(acc & 0xff));
				acc = 0;
				k = 0;
			}
		} else if (in[i] == '=') {
			b64_flush(out, acc, k);
			acc = 0;
			k = 0;
		}
	}
	b64_flush(out, acc, k);
}

/* Length of the line end at p (LF or CRLF), or 0. */
static size_t
eol_at(const char *in, size_t n, size_t p)
{
	if (p < n && in[p] == '\n')
		return 1;
	if (p + 1 < n && in[p] == '\r' && in[p + 1] == '\n')
		return 2;
	return 0;
}

void
mime_qp_decode(const char *in, size_t n, struct buf *out)
{
	size_t i = 0, j;
	int h, l;

	while (i < n) {
		char c = in[i];

		if (c == '=') {
			if (i + 2 < n && (h = hexval((unsigned char)in[i + 1])) >= 0 &&
			    (l = hexval((unsigned char)in[i + 2])) >= 0) {
				buf_addc(out, h * 16 + l);
				i += 3;
				continue;
			}
			for (j = i + 1; j < n && (in[j] == ' ' || in[j] == '\t'); j++)
				;
			if (j == n) {
				i = n;		/* soft break at the very end */
			} else if (eol_at(in, n, j)) {
				i = j + eol_at(in, n, j);
			} else {
				buf_addc(out, '=');
				i++;
			}
		} else if (c == ' ' || c == '\t') {
			for (j = i; j < n && (in[j] == ' ' || in[j] == '\t'); j++)
				;
			/* white space at a line end was added in transport */
			if (j < n && !eol_at(in, n, j))
				buf_add(out, in + i, j - i);
			i = j;
		} else {
			buf_addc(out, c);
			i++;
		}
	}
}

int
mime_part_decode(const struct mime_message *m, const struct mime_part *p,
    struct buf *out)
{
	const char *b = m->data + p->body_offset;

	switch (p->cte) {
	case MIME_CTE_BASE64:
		mime_base64_decode(b, p->body_len, out);
		return 0;
	case MIME_CTE_QP:
		mime_qp_decode(b, p->body_len, out);
		return 0;
	case MIME_CTE_UNKNOWN:
		return -1;
	default:
		buf_add(out, b, p->body_len);
		return 0;
	}
}

/* ---- charsets ---- */

/* Length of the valid UTF-8 character at s (n > 0 bytes), or 0. */
static size_t
u8len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t k, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] < 0xc2)
		return 0;
	if (s[0] < 0xe0) {
		k = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] < 0xf0) {
		k = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] < 0xf5) {
		k = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n < k)
		return 0;
	for (i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return k;
}

#define REPLACEMENT	"\xef\xbf\xbd"

/* Append valid UTF-8, U+FFFD for each bad byte, within *room; 1 if cut. */
static int
utf8_emit(struct buf *out, const char *s, size_t n, size_t *room)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		size_t k = u8len(u + i, n - i);
		const char *src = k ? s + i : REPLACEMENT;
		size_t len = k ? k : 3;

		if (len > *room)
			return 1;
		buf_add(out, src, len);
		*room -= len;
		i += k ? k : 1;
	}
	return 0;
}

static void
latin1_emit(struct buf *out, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x80)
			buf_addc(out, c);
		else {
			buf_addc(out, 0xc0 | (c >> 6));
			buf_addc(out, 0x80 | (c & 0x3f));
		}
	}
}

/* A name iconv may be asked about: short, no "//" suffixes or paths. */
static int
charset_name_ok(const char *cs)
{
	size_t i;

	for (i = 0; cs[i]; i++) {
		unsigned char c = (unsigned char)cs[i];

		if (i >= 64 || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("-_.:+", c)))
			return 0;
	}
	return i > 0;
}

/* Cut what was appended since start to at most max bytes, at a
 * character boundary; 1 if something was cut. */
static int
cut_utf8(struct buf *out, size_t start, size_t max)
{
	size_t e;

	if (out->len - start <= max)
		return 0;
	e = start + max;
	while (e > start && ((unsigned char)out->data[e] & 0xc0) == 0x80)
		e--;
	buf_truncate(out, e);
	return 1;
}

static int
iconv_emit(iconv_t cd, const char *in, size_t n, size_t max, struct buf *out)
{
	size_t start = out->len, il = n;
	char *ip = (char *)(uintptr_t)in;

	while (il > 0 && out->len - start <= max) {
		char *op;
		size_t ol, r;

		buf_reserve(out, 4096);
		op = out->data + out->len;
		ol = out->cap - out->len - 1;
		r = iconv(cd, &ip, &il, &op, &ol);
		out->len = (size_t)(op - out->data);
		out->data[out->len] = 0;
		if (r != (size_t)-1 || errno == E2BIG)
			continue;
		buf_adds(out, REPLACEMENT);
		if (errno != EILSEQ)
			break;		/* EINVAL: incomplete at the end */
		ip++;
		il--;
	}
	{
		char *op;
		size_t ol;

		buf_reserve(out, 64);
		op = out->data + out->len;
		ol = out->cap - out->len - 1;
		/* back to the initial shift state; failure only loses that */
		if (iconv(cd, NULL, NULL, &op, &ol) == (size_t)-1) {
			/* nothing more to write */
		}
		out->len = (size_t)(op - out->data);
		out->data[out->len] = 0;
	}
	return cut_utf8(out, start, max) ? 2 : 0;
}

int
mime_to_utf8(const char *charset, const char *in, size_t n, size_t max,
    struct buf *out)
{
	size_t room = max, start = out->len;
	iconv_t cd;
	int rc;

	if (!charset)
		charset = "";
	if (strcasecmp(charset, "utf-8") == 0 || strcasecmp(charset, "utf8") == 0 ||
	    strcasecmp(charset, "us-ascii") == 0 || strcasecmp(charset, "ascii") == 0)
		return utf8_emit(out, in, n, &room) ? 2 : 0;
	if (strcasecmp(charset, "iso-8859-1") == 0 || strcasecmp(charset, "latin1") == 0) {
		latin1_emit(out, in, n);
		return cut_utf8(out, start, max) ? 2 : 0;
	}
	if (!charset_name_ok(charset) ||
	    (cd = iconv_open("UTF-8", charset)) == (iconv_t)-1)
		return utf8_emit(out, in, n, &room) ? 2 : 1;
	rc = iconv_emit(cd, in, n, max, out);
	if (iconv_close(cd) < 0) {
		/* the conversion is done; nothing depends on the close */
	}
	return rc;
}

/* ---- RFC 2047 ---- */

struct eword {
	const char *cs;		/* charset (without an RFC 2231 "*lang") */
	size_t cslen;
	int b64;
	const char *text;
	size_t textlen;
};

/* An encoded-word at s ("=?cs?B|Q?text?="): its length, or 0. */
static size_t
eword_at(const char *s, size_t n, struct eword *w)
{
	size_t i = 2, t;

	if (n < 8 || s[0] != '=' || s[1] != '?')
		return 0;
	while (i < n && i < 2 + 256 && s[i] != '?' && (unsigned char)s[i] > 32 &&
	    (unsigned char)s[i] < 127)
		i++;
	if (i == 2 || i + 1 >= n || s[i] != '?')
		return 0;
	w->cs = s + 2;
	w->cslen = i - 2;
	{
		const char *star = memchr(w->cs, '*', w->cslen);

		if (star)
			w->cslen = (size_t)(star - w->cs);
	}
	if (w->cslen == 0)
		return 0;
	i++;
	if (s[i] == 'B' || s[i] == 'b')
		w->b64 = 1;
	else if (s[i] == 'Q' || s[i] == 'q')
		w->b64 = 0;
	else
		return 0;
	if (i + 1 >= n || s[i + 1] != '?')
		return 0;
	t = i + 2;
	for (i = t; i < n && s[i] != '?'; i++)
		if (is_ws((unsigned char)s[i]))
			return 0;
	if (i + 1 >= n || s[i + 1] != '=')
		return 0;
	w->text = s + t;
	w->textlen = i - t;
	return i + 2;
}

static void
eword_decode(const struct eword *w, struct buf *out)
{
	size_t i;
	int h, l;

	if (w->b64) {
		mime_base64_decode(w->text, w->textlen, out);
		return;
	}
	for (i = 0; i < w->textlen; i++) {
		char c = w->text[i];

		if (c == '_')
			buf_addc(out, ' ');
		else if (c == '=' && i + 2 < w->textlen &&
		    (h = hexval((unsigned char)w->text[i + 1])) >= 0 &&
		    (l = hexval((unsigned char)w->text[i + 2])) >= 0) {
			buf_addc(out, h * 16 + l);
			i += 2;
		} else
			buf_addc(out, c);
	}
}

struct hdec {
	struct buf *out;
	size_t room;
	int cut;
	struct buf cs;		/* the pending group's charset */
	struct buf bytes;	/* its decoded bytes */
	int pending;
};

static void
hdec_flush(struct hdec *h)
{
	size_t before = h->out->len;
	int rc;

	if (!h->pending)
		return;
	h->pending = 0;
	if (h->cut)
		return;
	rc = mime_to_utf8(buf_str(&h->cs), buf_str(&h->bytes), h->bytes.len,
	    h->room, h->out);
	h->room -= h->out->len - before;
	if (rc == 2)
		h->cut = 1;
}

static void
hdec_raw(struct hdec *h, const char *s, size_t n)
{
	if (!h->cut && utf8_emit(h->out, s, n, &h->room))
		h->cut = 1;
}

int
mime_header_decode(const char *in, size_t n, size_t max, struct buf *out)
{
	struct hdec h;
	size_t i = 0, ws = 0, wl;
	int held = 0;		/* white space [ws, i) after an encoded-word is held */
	struct eword w;

	memset(&h, 0, sizeof(h));
	h.out = out;
	h.room = max;
	while (i < n && !h.cut) {
		if (in[i] == '=' && (wl = eword_at(in + i, n - i, &w)) > 0) {
			int same = h.pending && h.cs.len == w.cslen &&
			    strncasecmp(h.cs.data, w.cs, w.cslen) == 0;

			/* white space between two encoded-words goes (6.2) */
			held = 0;
			if (!same) {
				hdec_flush(&h);
				buf_reset(&h.cs);
				buf_reset(&h.bytes);
				buf_add(&h.cs, w.cs, w.cslen);
			}
			eword_decode(&w, &h.bytes);
			h.pending = 1;
			i += wl;
			continue;
		}
		if (h.pending && (in[i] == ' ' || in[i] == '\t')) {
			if (!held) {
				held = 1;
				ws = i;
			}
			i++;
			continue;
		}
		hdec_flush(&h);
		if (held) {
			hdec_raw(&h, in + ws, i - ws);
			held = 0;
		}
		{
			size_t j = i + 1;

			while (j < n && in[j] != '=')
				j++;
			hdec_raw(&h, in + i, j - i);
			i = j;
		}
	}
	hdec_flush(&h);
	if (held)
		hdec_raw(&h, in + ws, i - ws);
	buf_free(&h.cs);
	buf_free(&h.bytes);
	return h.cut ? 2 : 0;
}

/* ---- BODY[section] ---- */

static const struct mime_part *
nth_child(const struct mime_part *p, unsigned int n)
{
	const struct mime_part *c = p->child;

	while (c && --n > 0)
		c = c->next;
	return c;
}

/* Part n of the message whose top part is e. */
static const struct mime_part *
msg_sub(const struct mime_part *e, unsigned int n)
{
	if (e->kind == MIME_MULTIPART)
		return nth_child(e, n);
	return n == 1 ? e : NULL;
}

/* Part n inside part p. */
static const struct mime_part *
part_sub(const struct mime_part *p, unsigned int n)
{
	if (p->kind == MIME_MULTIPART)
		return nth_child(p, n);
	if (p->kind == MIME_MESSAGE && p->child)
		return msg_sub(p->child, n);
	return NULL;
}

int
mime_section(const struct mime_message *m, const unsigned int *path,
    size_t npath, enum mime_sect suffix, struct mime_range *r,
    const struct mime_part **part)
{
	const struct mime_part *p = m->parts[0], *e;
	size_t i;

	if (npath == 0) {
		switch (suffix) {
		case MIME_SECT_NONE:
			r->offset = 0;
			r->len = m->len;
			break;
		case MIME_SECT_HEADER:
			r->offset = p->offset;
			r->len = p->header_len;
			break;
		case MIME_SECT_TEXT:
			r->offset = p->body_offset;
			r->len = p->body_len;
			break;
		default:
			return -1;
		}
		if (part)
			*part = p;
		return 0;
	}
	for (i = 0; i < npath; i++) {
		if (path[i] == 0)
			return -1;
		p = i == 0 ? msg_sub(p, path[0]) : part_sub(p, path[i]);
		if (!p)
			return -1;
	}
	switch (suffix) {
	case MIME_SECT_NONE:
		r->offset = p->body_offset;
		r->len = p->body_len;
		break;
	case MIME_SECT_MIME:
		r->offset = p->offset;
		r->len = p->header_len;
		break;
	case MIME_SECT_HEADER:
	case MIME_SECT_TEXT:
		if (p->kind != MIME_MESSAGE || !(e = p->child))
			return -1;
		p = e;
		r->offset = suffix == MIME_SECT_HEADER ? e->offset : e->body_offset;
		r->len = suffix == MIME_SECT_HEADER ? e->header_len : e->body_len;
		break;
	default:
		return -1;
	}
	if (part)
		*part = p;
	return 0;
}

void
mime_header_filter(const struct mime_part *p, const char *const *names,
    size_t nnames, int exclude, struct buf *out)
{
	size_t i, j;

	for (i = 0; i < p->header.n; i++) {
		const struct header_field *f = &p->header.f[i];
		int hit = 0;

		for (j = 0; j < nnames && !hit; j++)
			hit = strcasecmp(f->name, names[j]) == 0;
		if (hit == !!exclude)
			continue;
		mime_crlf_append(out, f->raw, f->raw_len);
		if (f->raw_len == 0 || f->raw[f->raw_len - 1] != '\n')
			buf_adds(out, "\r\n");
	}
	if (p->header.has_blank || p->body_len > 0)
		buf_adds(out, "\r\n");
}
