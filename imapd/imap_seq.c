/*
 * imap_seq.c: sequence sets (RFC 3501 section 9, RFC 5182 "$").
 *
 * Grammar: seq-number = nz-number / "*", seq-range = seq-number ":"
 * seq-number, sequence-set = (seq-number / seq-range) *("," ...).
 * nz-number has no leading zero and fits 32 bits; anything else is
 * refused here, so a range never holds 0 except as IMAP_SEQ_STAR.
 * "$" is accepted only as the whole set (RFC 5182 uses it "in place of"
 * a set; "1,$" is not worth the ambiguity).
 */
#include "imap_seq.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static int
seq_number(const char *s, size_t n, size_t *pos, unsigned flags,
    uint32_t *out, const char **why)
{
	size_t i = *pos;
	uint64_t v = 0;

	if (i < n && s[i] == '*') {
		if (flags & IMAP_SEQ_NO_STAR) {
			*why = "\"*\" is not allowed in this sequence set";
			return -1;
		}
		*pos = i + 1;
		*out = IMAP_SEQ_STAR;
		return 0;
	}
	if (i >= n || s[i] < '0' || s[i] > '9') {
		*why = "Invalid sequence set";
		return -1;
	}
	if (s[i] == '0') {
		*why = "Invalid sequence set: 0 is not a valid number";
		return -1;
	}
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > UINT32_MAX) {
			*why = "Invalid sequence set: number too large";
			return -1;
		}
	}
	*pos = i;
	*out = (uint32_t)v;
	return 0;
}

void
imap_seq_add(struct imap_seqset *s, uint32_t lo, uint32_t hi)
{
	/* "*" sorts above every number, so order with that in mind */
	if (lo == IMAP_SEQ_STAR || (hi != IMAP_SEQ_STAR && lo > hi)) {
		uint32_t t = lo;

		lo = hi;
		hi = t;
	}
	if (lo == IMAP_SEQ_STAR)
		hi = IMAP_SEQ_STAR;
	s->r = xreallocarray(s->r, s->n + 1, sizeof(*s->r));
	s->r[s->n].lo = lo;
	s->r[s->n].hi = hi;
	s->n++;
}

int
imap_seq_parse(const char *s, size_t n, unsigned flags, size_t *budget,
    struct imap_seqset *out, const char **why)
{
	size_t pos = 0;

	memset(out, 0, sizeof(*out));
	if (n == 1 && s[0] == '$') {
		if (!(flags & IMAP_SEQ_ALLOW_SAVED)) {
			*why = "\"$\" is not allowed here";
			return -1;
		}
		out->saved = 1;
		return 0;
	}
	for (;;) {
		uint32_t a, b;

		if (seq_number(s, n, &pos, flags, &a, why) < 0)
			goto bad;
		b = a;
		if (pos < n && s[pos] == ':') {
			pos++;
			if (seq_number(s, n, &pos, flags, &b, why) < 0)
				goto bad;
		}
		if (*budget == 0) {
			*why = "Too many ranges in sequence sets";
			goto bad;
		}
		(*budget)--;
		imap_seq_add(out, a, b);
		if (pos == n)
			return 0;
		if (s[pos] != ',') {
			*why = "Invalid sequence set";
			goto bad;
		}
		pos++;
	}
bad:
	imap_seq_free(out);
	return -1;
}

void
imap_seq_free(struct imap_seqset *s)
{
	free(s->r);
	memset(s, 0, sizeof(*s));
}

static int
range_cmp(const void *a, const void *b)
{
	const struct imap_range *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	return 0;
}

void
imap_seq_normalize(struct imap_seqset *s)
{
	size_t i, k;

	if (s->n < 2)
		return;
	qsort(s->r, s->n, sizeof(*s->r), range_cmp);
	for (i = 1, k = 0; i < s->n; i++) {
		/* overlapping or adjacent (hi + 1 == lo, no overflow as hi < lo) */
		if (s->r[i].lo <= s->r[k].hi || s->r[i].lo - 1 == s->r[k].hi) {
			if (s->r[i].hi > s->r[k].hi)
				s->r[k].hi = s->r[i].hi;
		} else
			s->r[++k] = s->r[i];
	}
	s->n = k + 1;
}

void
imap_seq_resolve(const struct imap_seqset *in, uint32_t max,
    struct imap_seqset *out)
{
	size_t i;

	memset(out, 0, sizeof(*out));
	if (max == 0)
		return;
	for (i = 0; i < in->n; i++) {
		uint32_t lo = in->r[i].lo == IMAP_SEQ_STAR ? max : in->r[i].lo;
		uint32_t hi = in->r[i].hi == IMAP_SEQ_STAR ? max : in->r[i].hi;

		if (lo > hi) {
			uint32_t t = lo;

			lo = hi;
			hi = t;
		}
		if (lo > max)
			continue;
		if (hi > max)
			hi = max;
		imap_seq_add(out, lo, hi);
	}
	imap_seq_normalize(out);
}

int
imap_seq_contains(const struct imap_seqset *s, uint32_t v)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v < s->r[mid].lo)
			hi = mid;
		else if (v > s->r[mid].hi)
			lo = mid + 1;
		else
			return 1;
	}
	return 0;
}

uint64_t
imap_seq_count(const struct imap_seqset *s)
{
	uint64_t c = 0;
	size_t i;

	for (i = 0; i < s->n; i++)
		c += (uint64_t)s->r[i].hi - s->r[i].lo + 1;
	return c;
}

uint32_t
imap_seq_highest(const struct imap_seqset *s)
{
	uint32_t m = 0;
	size_t i;

	for (i = 0; i < s->n; i++) {
		if (s->r[i].lo > m)
			m = s->r[i].lo;
		if (s->r[i].hi != IMAP_SEQ_STAR && s->r[i].hi > m)
			m = s->r[i].hi;
	}
	return m;
}

static void
write_num(struct buf *out, uint32_t v)
{
	if (v == IMAP_SEQ_STAR)
		buf_addc(out, '*');
	else
		buf_printf(out, "%lu", (unsigned long)v);
}

void
imap_seq_write(struct buf *out, const struct imap_seqset *s)
{
	size_t i;

	if (s->saved) {
		buf_addc(out, '$');
		return;
	}
	for (i = 0; i < s->n; i++) {
		if (i)
			buf_addc(out, ',');
		write_num(out, s->r[i].lo);
		if (s->r[i].hi != s->r[i].lo) {
			buf_addc(out, ':');
			write_num(out, s->r[i].hi);
		}
	}
}
