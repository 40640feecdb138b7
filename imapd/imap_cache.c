/*
 * imap_cache: FOLDER/hermod-cache, what FETCH of a large folder would
 * otherwise reopen every message for (imap_cache.h).  Entries are kept
 * in a hash table on BASENAME; the file is read at the first FETCH that
 * needs it and written (write_file_atomic) when entries were added, at
 * close and when the session goes IDLE, keeping only those of messages
 * still in the folder, so it cannot grow without end.  Written by the
 * user's own mail process in the user's folder, it is still parsed as
 * untrusted input (t/fuzz/fuzz_imap_cache.c).
 *
 * File: "HC2\n", then per entry one header line
 *   BASENAME HAVE SIZE IDATE IZONE LENV LBS LBODY LHDR\n
 * followed by LENV + LBS + LBODY + LHDR bytes (ENVELOPE, BODYSTRUCTURE,
 * BODY, which may hold CRLF in literals, and the header section SEARCH
 * reads) and "\n".  An "HC1" file (written before the header section
 * was kept) has no LHDR.  Anything that does not parse ends the
 * reading: what came before it is kept.
 */
#include "imap_cache.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_MAGIC	"HC2\n"
#define CACHE_MAGIC_V1	"HC1\n"
#define CACHE_MAX_ITEM	(16L * 1024 * 1024)	/* bytes of one ENVELOPE/BODYSTRUCTURE */

struct centry {
	char *base;
	unsigned have;
	uint64_t size;
	int64_t idate;
	int izone;
	char *envelope, *bodystructure, *body, *header;
	struct centry *next;
};

struct imap_cache {
	struct centry **tab;
	size_t ntab, n;
	int dirty;
};

static size_t
hash(const char *s)
{
	return (size_t)hash_fnv1a(s, strlen(s));
}

static struct centry *
find(struct imap_cache *c, const char *base)
{
	struct centry *e;

	for (e = c->tab[hash(base) % c->ntab]; e; e = e->next)
		if (!strcmp(e->base, base))
			return e;
	return NULL;
}

static void
grow(struct imap_cache *c)
{
	struct centry **nt;
	size_t nn = c->ntab * 2, i;

	nt = xcalloc(nn, sizeof(*nt));
	for (i = 0; i < c->ntab; i++) {
		struct centry *e = c->tab[i], *nx;

		for (; e; e = nx) {
			size_t h = hash(e->base) % nn;

			nx = e->next;
			e->next = nt[h];
			nt[h] = e;
		}
	}
	free(c->tab);
	c->tab = nt;
	c->ntab = nn;
}

static struct centry *
get_or_add(struct imap_cache *c, const char *base)
{
	struct centry *e = find(c, base);
	size_t h;

	if (e)
		return e;
	if (c->n >= c->ntab)
		grow(c);
	e = xcalloc(1, sizeof(*e));
	e->base = xstrdup(base);
	h = hash(base) % c->ntab;
	e->next = c->tab[h];
	c->tab[h] = e;
	c->n++;
	return e;
}

static void
set_str(char **dst, const char *s)
{
	free(*dst);
	*dst = s ? xstrdup(s) : NULL;
}

void
imap_cache_base(const char *name, struct buf *out)
{
	const char *s = strrchr(name, '/');

	s = s ? s + 1 : name;
	buf_reset(out);
	buf_add(out, s, strcspn(s, ",:"));
}

/* The next space-separated field of [*p, end): 0 with *f and *fl set and
 * *p past it (and past one space), -1 when there is none. */
static int
field(const char **p, const char *end, const char **f, size_t *fl)
{
	const char *q = *p;

	while (q < end && *q != ' ')
		q++;
	if (q == *p)
		return -1;
	*f = *p;
	*fl = (size_t)(q - *p);
	*p = q < end ? q + 1 : q;
	return 0;
}

/* A decimal number of at most max (neg: a leading '-' is allowed). */
static int
number(const char *f, size_t fl, int neg, uint64_t max, int64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	int minus = 0;

	if (neg && fl && f[0] == '-') {
		minus = 1;
		i = 1;
	}
	if (i == fl || fl - i > 19)
		return -1;
	for (; i < fl; i++) {
		if (f[i] < '0' || f[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(f[i] - '0');
	}
	if (v > max)
		return -1;
	*out = minus ? -(int64_t)v : (int64_t)v;
	return 0;
}

/* One entry from p[0..n); bytes used, 0 when it does not parse.
 * nf: 8 (HC1) or 9 fields (HC2). */
static size_t
parse_entry(struct imap_cache *c, const char *p, size_t n, size_t nf)
{
	const char *nl = memchr(p, '\n', n), *q = p, *f[9];
	size_t fl[9], hl, need, k;
	int64_t v[9];
	unsigned have, known = IBOX_META_SIZE | IBOX_META_IDATE | IBOX_META_ENVELOPE |
	    IBOX_META_BODYSTRUCTURE;
	struct centry *e;

	if (!nl || (hl = (size_t)(nl - p)) > 1024)
		return 0;
	v[8] = 0;
	for (k = 0; k < nf; k++)
		if (field(&q, nl, &f[k], &fl[k]) < 0)
			return 0;
	if (nf == 9) {
		known |= IBOX_META_HEADER;
		if (number(f[8], fl[8], 0, IBOX_HEADER_KEEP_MAX, &v[8]) < 0)
			return 0;
	}
	if (q != nl || fl[0] > 255 || memchr(f[0], '\0', fl[0]))
		return 0;
	if (number(f[1], fl[1], 0, 0xff, &v[1]) < 0 || number(f[2], fl[2], 0, INT64_MAX, &v[2]) < 0 ||
	    number(f[3], fl[3], 1, INT64_MAX, &v[3]) < 0 || number(f[4], fl[4], 1, 1440, &v[4]) < 0 ||
	    number(f[5], fl[5], 0, CACHE_MAX_ITEM, &v[5]) < 0 ||
	    number(f[6], fl[6], 0, CACHE_MAX_ITEM, &v[6]) < 0 ||
	    number(f[7], fl[7], 0, CACHE_MAX_ITEM, &v[7]) < 0)
		return 0;
	have = (unsigned)v[1];
	if (!have || have & ~known || v[4] < -1440)
		return 0;
	need = hl + 1 + (size_t)(v[5] + v[6] + v[7] + v[8]) + 1;
	if (need > n || p[need - 1] != '\n')
		return 0;
	if (!(have & IBOX_META_ENVELOPE) && v[5])
		return 0;
	if (!(have & IBOX_META_BODYSTRUCTURE) && (v[6] || v[7]))
		return 0;
	if (!(have & IBOX_META_HEADER) && v[8])
		return 0;
	p = nl + 1;
	/* the items are C strings in memory: one with a NUL is not ours */
	if (memchr(p, '\0', (size_t)(v[5] + v[6] + v[7] + v[8])))
		return 0;
	{
		char *b = xstrndup(f[0], fl[0]);

		e = get_or_add(c, b);
		free(b);
	}
	e->have = have;
	e->size = (uint64_t)v[2];
	e->idate = v[3];
	e->izone = (int)v[4];
	free(e->envelope);
	free(e->bodystructure);
	free(e->body);
	free(e->header);
	e->envelope = (have & IBOX_META_ENVELOPE) ? xstrndup(p, (size_t)v[5]) : NULL;
	e->bodystructure = (have & IBOX_META_BODYSTRUCTURE) ? xstrndup(p + v[5], (size_t)v[6]) : NULL;
	e->body = (have & IBOX_META_BODYSTRUCTURE) ? xstrndup(p + v[5] + v[6], (size_t)v[7]) : NULL;
	e->header = (have & IBOX_META_HEADER) ? xstrndup(p + v[5] + v[6] + v[7], (size_t)v[8]) : NULL;
	return need;
}

struct imap_cache *
imap_cache_parse(const char *p, size_t n)
{
	struct imap_cache *c = xcalloc(1, sizeof(*c));
	size_t off, k;

	c->ntab = 64;
	c->tab = xcalloc(c->ntab, sizeof(*c->tab));
	if (n >= 4 && (!memcmp(p, CACHE_MAGIC, 4) || !memcmp(p, CACHE_MAGIC_V1, 4))) {
		size_t nf = !memcmp(p, CACHE_MAGIC, 4) ? 9 : 8;

		for (off = 4; off < n; off += k)
			if (!(k = parse_entry(c, p + off, n - off, nf)))
				break;
	}
	return c;
}

struct imap_cache *
imap_cache_load(const char *folder)
{
	struct buf path = BUF_INIT, data = BUF_INIT;
	struct imap_cache *c;

	buf_printf(&path, "%s%s", folder, IMAP_CACHE_FILE);
	if (read_file(buf_str(&path), &data, IMAP_CACHE_MAX_FILE) < 0)
		buf_reset(&data);
	c = imap_cache_parse(data.data ? data.data : "", data.len);
	buf_free(&path);
	buf_free(&data);
	return c;
}

unsigned
imap_cache_get(struct imap_cache *c, const char *base, struct ibox_msg *m)
{
	struct centry *e = find(c, base);
	unsigned got;

	if (!e)
		return 0;
	got = e->have & ~m->have;
	if (got & IBOX_META_SIZE)
		m->size = e->size;
	if (got & IBOX_META_IDATE) {
		m->idate = e->idate;
		m->izone = e->izone;
	}
	if (got & IBOX_META_ENVELOPE)
		set_str(&m->envelope, e->envelope);
	if (got & IBOX_META_BODYSTRUCTURE) {
		set_str(&m->bodystructure, e->bodystructure);
		set_str(&m->body, e->body);
	}
	if (got & IBOX_META_HEADER)
		set_str(&m->header, e->header);
	m->have |= got;
	return got;
}

void
imap_cache_put(struct imap_cache *c, const char *base, const struct ibox_msg *m)
{
	struct centry *e;
	unsigned add;

	if (!*base || strlen(base) > 255 || strpbrk(base, " \n"))
		return;
	e = get_or_add(c, base);
	add = m->have & ~e->have;
	if (!add)
		return;
	if (add & IBOX_META_SIZE)
		e->size = m->size;
	if (add & IBOX_META_IDATE) {
		e->idate = m->idate;
		e->izone = m->izone;
	}
	if (add & IBOX_META_ENVELOPE)
		set_str(&e->envelope, m->envelope ? m->envelope : "");
	if (add & IBOX_META_BODYSTRUCTURE) {
		set_str(&e->bodystructure, m->bodystructure ? m->bodystructure : "");
		set_str(&e->body, m->body ? m->body : "");
	}
	if (add & IBOX_META_HEADER) {
		if (!m->header || strlen(m->header) > IBOX_HEADER_KEEP_MAX)
			add &= ~(unsigned)IBOX_META_HEADER;
		else
			set_str(&e->header, m->header);
	}
	if (!add)
		return;
	e->have |= add;
	c->dirty = 1;
}

int
imap_cache_save(struct imap_cache *c, const char *folder, char *const *keep, size_t n)
{
	struct buf out = BUF_INIT, path = BUF_INIT;
	size_t i;
	int rc;

	if (!c->dirty)
		return 0;
	buf_adds(&out, CACHE_MAGIC);
	for (i = 0; i < n; i++) {
		struct centry *e = find(c, keep[i]);
		const char *en, *bs, *bo, *hd;

		if (!e || !e->have)
			continue;
		en = e->envelope ? e->envelope : "";
		bs = e->bodystructure ? e->bodystructure : "";
		bo = e->body ? e->body : "";
		hd = e->header ? e->header : "";
		buf_printf(&out, "%s %u %" PRIu64 " %" PRId64 " %d %zu %zu %zu %zu\n", e->base,
		    e->have, e->size, e->idate, e->izone, strlen(en), strlen(bs), strlen(bo),
		    strlen(hd));
		buf_adds(&out, en);
		buf_adds(&out, bs);
		buf_adds(&out, bo);
		buf_adds(&out, hd);
		buf_addc(&out, '\n');
	}
	buf_printf(&path, "%s%s", folder, IMAP_CACHE_FILE);
	rc = write_file_atomic(buf_str(&path), out.data, out.len, 0600);
	if (rc == 0)
		c->dirty = 0;
	buf_free(&out);
	buf_free(&path);
	return rc;
}

size_t
imap_cache_count(const struct imap_cache *c)
{
	return c->n;
}

void
imap_cache_free(struct imap_cache **cp)
{
	struct imap_cache *c = *cp;
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->ntab; i++) {
		struct centry *e = c->tab[i], *nx;

		for (; e; e = nx) {
			nx = e->next;
			free(e->base);
			free(e->envelope);
			free(e->bodystructure);
			free(e->body);
			free(e->header);
			free(e);
		}
	}
	free(c->tab);
	free(c);
	*cp = NULL;
}
