/*
 * imap_sort: SORT (RFC 5256 section 3, DISPLAYFROM/DISPLAYTO RFC 5957)
 * of a search result.  Every sort key of every message is computed once
 * (each message read at most once, and only when a key needs its
 * header), then the entries are sorted; equal entries keep sequence
 * number order, as RFC 5256 asks.
 */
#include "imap_search.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct sort_ent {
	uint32_t seq;
	int64_t arrival, date;
	uint64_t size;
	char *str[IMAP_SORT_DISPLAYTO + 1];	/* string keys by enum imap_sort_key, folded */
	const struct imap_search *s;
};

static int
is_string_key(int key)
{
	return key == IMAP_SORT_CC || key == IMAP_SORT_FROM || key == IMAP_SORT_SUBJECT ||
	    key == IMAP_SORT_TO || key == IMAP_SORT_DISPLAYFROM || key == IMAP_SORT_DISPLAYTO;
}

static int
cmp_ent(const void *va, const void *vb)
{
	const struct sort_ent *a = va, *b = vb;
	size_t k;

	for (k = 0; k < a->s->nsort; k++) {
		int key = a->s->sort[k].key, c = 0;

		if (is_string_key(key))
			c = strcmp(a->str[key], b->str[key]);
		else if (key == IMAP_SORT_ARRIVAL)
			c = (a->arrival > b->arrival) - (a->arrival < b->arrival);
		else if (key == IMAP_SORT_DATE)
			c = (a->date > b->date) - (a->date < b->date);
		else if (key == IMAP_SORT_SIZE)
			c = (a->size > b->size) - (a->size < b->size);
		if (c != 0)
			return a->s->sort[k].reverse ? -c : c;
	}
	return (a->seq > b->seq) - (a->seq < b->seq);
}

/* The folded key of an address field: the first mailbox (FROM, TO, CC)
 * or the display name, else the addr-spec (DISPLAYFROM, DISPLAYTO). */
static char *
addr_key(const struct header *h, const char *field, int display)
{
	const struct header_field *f = header_get(h, field);
	struct buf name = BUF_INIT, mbox = BUF_INIT, host = BUF_INIT, out = BUF_INIT;

	if (f && isearch_first_addr(f->value, &name, &mbox, &host) == 0) {
		if (!display)
			isearch_fold(buf_str(&mbox), mbox.len, &out);
		else if (name.len > 0)
			isearch_fold(buf_str(&name), name.len, &out);
		else {
			buf_addc(&mbox, '@');
			buf_add(&mbox, buf_str(&host), host.len);
			if (host.len == 0)
				buf_truncate(&mbox, mbox.len - 1);
			isearch_fold(buf_str(&mbox), mbox.len, &out);
		}
	}
	buf_free(&name);
	buf_free(&mbox);
	buf_free(&host);
	buf_addc(&out, '\0');	/* so that steal never gives NULL */
	return buf_steal(&out);
}

static int
fill(struct imap_box *b, const struct imap_search *s, struct sort_ent *e, struct buf *err)
{
	size_t i = e->seq - 1, k;
	int need_hdr = 0, need_meta = 0, rc;
	struct header h;

	memset(&h, 0, sizeof(h));
	for (k = 0; k < s->nsort; k++) {
		int key = s->sort[k].key;

		if (key == IMAP_SORT_ARRIVAL || key == IMAP_SORT_SIZE)
			need_meta |= key == IMAP_SORT_SIZE ? IBOX_META_SIZE : IBOX_META_IDATE;
		else
			need_hdr = 1;
	}
	if (need_meta) {
		rc = ibox_meta(b, i, (unsigned)need_meta, err);
		if (rc == IBOX_ERR)
			return rc;
		if (rc == IBOX_OK) {
			e->arrival = b->msgs[i].idate;
			e->size = b->msgs[i].size;
		}
	}
	if (need_hdr) {
		rc = isearch_header(b, i, &h, err);
		if (rc == IBOX_ERR) {
			header_free(&h);
			return rc;
		}
		/* a message gone meanwhile sorts with empty keys */
	}
	for (k = 0; k < s->nsort; k++) {
		int key = s->sort[k].key;
		const struct header_field *f;
		struct buf tmp = BUF_INIT;

		if (!is_string_key(key) && key != IMAP_SORT_DATE)
			continue;
		if (key != IMAP_SORT_DATE && e->str[key])
			continue;
		switch (key) {
		case IMAP_SORT_DATE:
			rc = isearch_sent(b, i, &h, &e->date, err);
			if (rc == IBOX_ERR) {
				header_free(&h);
				return rc;
			}
			break;
		case IMAP_SORT_SUBJECT:
			f = header_get(&h, "Subject");
			(void)isearch_base_subject(f ? f->value : "", &tmp);
			buf_addc(&tmp, '\0');
			e->str[key] = buf_steal(&tmp);
			break;
		case IMAP_SORT_FROM: e->str[key] = addr_key(&h, "From", 0); break;
		case IMAP_SORT_TO: e->str[key] = addr_key(&h, "To", 0); break;
		case IMAP_SORT_CC: e->str[key] = addr_key(&h, "Cc", 0); break;
		case IMAP_SORT_DISPLAYFROM: e->str[key] = addr_key(&h, "From", 1); break;
		case IMAP_SORT_DISPLAYTO: e->str[key] = addr_key(&h, "To", 1); break;
		}
		buf_free(&tmp);
	}
	header_free(&h);
	return IBOX_OK;
}

int
imap_sort_run(struct imap_box *b, const struct imap_search *s,
    uint32_t *seqs, size_t n, struct buf *err)
{
	struct sort_ent *e;
	size_t i, k;
	int rc = IBOX_OK;

	if (n < 2 || s->nsort == 0)
		return IBOX_OK;
	e = xcalloc(n, sizeof(*e));
	for (i = 0; i < n && rc == IBOX_OK; i++) {
		e[i].seq = seqs[i];
		e[i].s = s;
		if (seqs[i] == 0 || seqs[i] > b->n) {
			buf_sets(err, "sort: sequence number out of range");
			rc = IBOX_ERR;
			break;
		}
		rc = fill(b, s, &e[i], err);
	}
	if (rc == IBOX_OK) {
		qsort(e, n, sizeof(*e), cmp_ent);
		for (i = 0; i < n; i++)
			seqs[i] = e[i].seq;
	}
	for (i = 0; i < n; i++)
		for (k = 0; k <= IMAP_SORT_DISPLAYTO; k++)
			free(e[i].str[k]);
	free(e);
	return rc;
}
