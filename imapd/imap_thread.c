/*
 * imap_thread: THREAD (RFC 5256 sections 4 and 5): ORDEREDSUBJECT and
 * REFERENCES, over a search result, written as "(1 2)(3 (4)(5))".
 *
 * Both build one tree of containers (a message, or a dummy standing for
 * a referenced message that is not in the result) linked by indices,
 * then share the final sort by sent date and the output.  REFERENCES
 * follows the RFC's steps in order: link by Message-ID / References /
 * In-Reply-To without loops, prune dummies, merge roots by base
 * subject, sort.
 */
#include "imap_search.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct tmsg {
	uint32_t seq, num;	/* num: what is written (UID or sequence number) */
	int64_t date;
	char *subj;		/* base subject, folded */
	int reply;
};

struct cont {
	int msg;		/* index into msgs, -1 for a dummy */
	char *id;		/* Message-ID, or NULL */
	int parent, child, next;	/* -1: none */
	int hnext;		/* hash chain */
	int deleted;
};

struct thr {
	struct tmsg *msgs;
	size_t nmsgs;
	struct cont *c;
	size_t n, cap;
	int *hash;
	size_t hsize;
};

static uint32_t
str_hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

static int
new_cont(struct thr *t, int msg, const char *id)
{
	struct cont *c;

	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->c = xreallocarray(t->c, t->cap, sizeof(*t->c));
	}
	c = &t->c[t->n];
	memset(c, 0, sizeof(*c));
	c->msg = msg;
	c->id = id ? xstrdup(id) : NULL;
	c->parent = c->child = c->next = c->hnext = -1;
	if (id) {
		uint32_t h = str_hash(id) % t->hsize;

		c->hnext = t->hash[h];
		t->hash[h] = (int)t->n;
	}
	return (int)t->n++;
}

static int
find_id(struct thr *t, const char *id)
{
	int i;

	for (i = t->hash[str_hash(id) % t->hsize]; i >= 0; i = t->c[i].hnext)
		if (strcmp(t->c[i].id, id) == 0)
			return i;
	return -1;
}

static int
get_id(struct thr *t, const char *id)
{
	int i = find_id(t, id);

	return i >= 0 ? i : new_cont(t, -1, id);
}

/* 1 when a is b or one of b's ancestors */
static int
ancestor(const struct thr *t, int a, int b)
{
	for (; b >= 0; b = t->c[b].parent)
		if (a == b)
			return 1;
	return 0;
}

static void
unlink_cont(struct thr *t, int c)
{
	int p = t->c[c].parent, *pp;

	if (p < 0)
		return;
	for (pp = &t->c[p].child; *pp >= 0; pp = &t->c[*pp].next)
		if (*pp == c) {
			*pp = t->c[c].next;
			break;
		}
	t->c[c].parent = -1;
	t->c[c].next = -1;
}

static void
link_cont(struct thr *t, int p, int c)
{
	int *pp;

	unlink_cont(t, c);
	for (pp = &t->c[p].child; *pp >= 0; pp = &t->c[*pp].next)
		;
	*pp = c;
	t->c[c].parent = p;
	t->c[c].next = -1;
}

/* The msg-ids "<...>" of a header value, in order, into v (strings). */
static size_t
msg_ids(const char *s, char ***v)
{
	size_t n = 0;

	*v = NULL;
	while (s && (s = strchr(s, '<')) != NULL) {
		const char *e = strchr(s + 1, '>');

		if (e == NULL)
			break;
		if (e > s + 1 && memchr(s + 1, '<', (size_t)(e - s - 1)) == NULL) {
			*v = xreallocarray(*v, n + 1, sizeof(**v));
			(*v)[n++] = xstrndup(s + 1, (size_t)(e - s - 1));
		}
		s = e + 1;
	}
	return n;
}

static void
free_ids(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- sort and output ---- */

struct key {
	int64_t date;
	uint32_t seq;
	int idx;
};

static int
cmp_key(const void *va, const void *vb)
{
	const struct key *a = va, *b = vb;

	if (a->date != b->date)
		return a->date < b->date ? -1 : 1;
	return (a->seq > b->seq) - (a->seq < b->seq);
}

static void sort_children(struct thr *t, int p);

/* Sort a list (by next) of containers by sent date; the head back. */
static int
sort_list(struct thr *t, int head)
{
	struct key *k = NULL;
	size_t n = 0, i;
	int c;

	for (c = head; c >= 0; c = t->c[c].next) {
		int src;

		sort_children(t, c);
		src = t->c[c].msg >= 0 ? c : t->c[c].child;
		k = xreallocarray(k, n + 1, sizeof(*k));
		k[n].idx = c;
		k[n].date = src >= 0 && t->c[src].msg >= 0 ? t->msgs[t->c[src].msg].date : 0;
		k[n].seq = src >= 0 && t->c[src].msg >= 0 ? t->msgs[t->c[src].msg].seq : 0;
		n++;
	}
	if (n == 0)
		return -1;
	qsort(k, n, sizeof(*k), cmp_key);
	for (i = 0; i < n; i++)
		t->c[k[i].idx].next = i + 1 < n ? k[i + 1].idx : -1;
	head = k[0].idx;
	free(k);
	return head;
}

static void
sort_children(struct thr *t, int p)
{
	t->c[p].child = sort_list(t, t->c[p].child);
}

static void
emit(const struct thr *t, int c, struct buf *out)
{
	const struct cont *x = &t->c[c];
	int k;

	if (x->msg >= 0)
		buf_printf(out, "%u", t->msgs[x->msg].num);
	if (x->child < 0)
		return;
	if (x->msg >= 0 && t->c[x->child].next < 0) {
		buf_addc(out, ' ');
		emit(t, x->child, out);
		return;
	}
	if (x->msg >= 0)
		buf_addc(out, ' ');
	for (k = x->child; k >= 0; k = t->c[k].next) {
		buf_addc(out, '(');
		emit(t, k, out);
		buf_addc(out, ')');
	}
}

/* ---- ORDEREDSUBJECT ---- */

struct subj_key {
	const struct tmsg *m;
	int idx;
};

static int
cmp_subj(const void *va, const void *vb)
{
	const struct subj_key *a = va, *b = vb;
	int d = strcmp(a->m->subj, b->m->subj);

	if (d != 0)
		return d;
	if (a->m->date != b->m->date)
		return a->m->date < b->m->date ? -1 : 1;
	return (a->m->seq > b->m->seq) - (a->m->seq < b->m->seq);
}

/* ---- REFERENCES ---- */

/* Prune the dummies below p (RFC 5256 4, step 4). */
static void
prune(struct thr *t, int p)
{
	int c = t->c[p].child;

	while (c >= 0) {
		int next = t->c[c].next;

		prune(t, c);
		if (t->c[c].msg < 0) {
			int k = t->c[c].child;

			unlink_cont(t, c);
			t->c[c].deleted = 1;
			while (k >= 0) {
				int kn = t->c[k].next;

				link_cont(t, p, k);
				k = kn;
			}
		}
		c = next;
	}
}

static const struct tmsg *
subject_msg(const struct thr *t, int r)
{
	if (t->c[r].msg >= 0)
		return &t->msgs[t->c[r].msg];
	if (t->c[r].child >= 0 && t->c[t->c[r].child].msg >= 0)
		return &t->msgs[t->c[t->c[r].child].msg];
	return NULL;
}

static void
references(struct thr *t, int **rootsp, size_t *nrootsp)
{
	size_t i, j, nroots = 0;
	int *roots = NULL;
	struct {
		char *subj;
		int root;
		int hnext;
	} *tab = NULL;
	size_t ntab = 0, hsize, h;
	int *hash, ti;

	/* step 2: the root set (step 1 was done while reading) */
	for (i = 0; i < t->n; i++)
		if (t->c[i].parent < 0) {
			roots = xreallocarray(roots, nroots + 1, sizeof(*roots));
			roots[nroots++] = (int)i;
		}
	/* step 4 */
	for (i = 0; i < nroots; i++) {
		int r = roots[i];

		prune(t, r);
		if (t->c[r].msg < 0) {
			int k = t->c[r].child;

			if (k < 0)
				t->c[r].deleted = 1;
			else if (t->c[k].next < 0) {
				unlink_cont(t, k);
				t->c[r].deleted = 1;
				t->c[r].child = -1;
				roots[i] = k;
			}
		}
	}
	/* step 5 */
	hsize = nroots * 2 + 1;
	hash = xmalloc(hsize * sizeof(*hash));
	for (h = 0; h < hsize; h++)
		hash[h] = -1;
	for (i = 0; i < nroots; i++) {
		const struct tmsg *m;

		if (t->c[roots[i]].deleted)
			continue;
		sort_children(t, roots[i]);
		m = subject_msg(t, roots[i]);
		if (m == NULL || m->subj[0] == '\0')
			continue;
		h = str_hash(m->subj) % hsize;
		for (ti = hash[h]; ti >= 0; ti = tab[ti].hnext)
			if (strcmp(tab[ti].subj, m->subj) == 0)
				break;
		j = ti >= 0 ? (size_t)ti : ntab;
		if (j == ntab) {
			tab = xreallocarray(tab, ntab + 1, sizeof(*tab));
			tab[ntab].subj = m->subj;
			tab[ntab].hnext = hash[h];
			hash[h] = (int)ntab;
			tab[ntab++].root = roots[i];
		} else {
			int old = tab[j].root;
			const struct tmsg *om = subject_msg(t, old);

			if ((t->c[old].msg >= 0 && t->c[roots[i]].msg < 0) ||
			    (t->c[old].msg >= 0 && t->c[roots[i]].msg >= 0 && om && om->reply &&
			    !m->reply))
				tab[j].root = roots[i];
		}
	}
	for (i = 0; i < nroots; i++) {
		int r = roots[i], o;
		const struct tmsg *m, *om;

		if (t->c[r].deleted || t->c[r].parent >= 0)
			continue;
		m = subject_msg(t, r);
		if (m == NULL || m->subj[0] == '\0')
			continue;
		for (ti = hash[str_hash(m->subj) % hsize]; ti >= 0; ti = tab[ti].hnext)
			if (strcmp(tab[ti].subj, m->subj) == 0)
				break;
		j = (size_t)ti;
		if (ti < 0 || (o = tab[j].root) == r)
			continue;
		om = subject_msg(t, o);
		if (t->c[o].msg < 0 && t->c[r].msg < 0) {
			int k = t->c[r].child;

			while (k >= 0) {
				int kn = t->c[k].next;

				link_cont(t, o, k);
				k = kn;
			}
			t->c[r].deleted = 1;
		} else if (t->c[o].msg < 0)
			link_cont(t, o, r);
		else if (m->reply && om && !om->reply)
			link_cont(t, o, r);
		else {
			int d = new_cont(t, -1, NULL);

			link_cont(t, d, o);
			link_cont(t, d, r);
			tab[j].root = d;
			roots = xreallocarray(roots, nroots + 1, sizeof(*roots));
			roots[nroots++] = d;
		}
	}
	free(tab);
	free(hash);
	*rootsp = roots;
	*nrootsp = nroots;
}

int
imap_thread_run(struct imap_box *b, const struct imap_search *s,
    const uint32_t *seqs, size_t n, int uid, struct buf *out, struct buf *err)
{
	struct thr t;
	size_t i, nroots = 0;
	int *roots = NULL, top = -1, rc = IBOX_OK, root;

	memset(&t, 0, sizeof(t));
	t.hsize = n * 2 + 1;
	t.hash = xmalloc(t.hsize * sizeof(*t.hash));
	for (i = 0; i < t.hsize; i++)
		t.hash[i] = -1;
	t.msgs = xcalloc(n ? n : 1, sizeof(*t.msgs));
	for (i = 0; i < n && rc == IBOX_OK; i++) {
		struct tmsg *m = &t.msgs[i];
		const struct header_field *f;
		struct header h;
		struct buf sb = BUF_INIT;
		char **ids = NULL, **refs = NULL;
		size_t nids, nrefs, j;
		int self;

		if (seqs[i] == 0 || seqs[i] > b->n) {
			buf_sets(err, "thread: sequence number out of range");
			rc = IBOX_ERR;
			break;
		}
		m->seq = seqs[i];
		m->num = uid ? b->msgs[seqs[i] - 1].uid : seqs[i];
		rc = isearch_header(b, seqs[i] - 1, &h, err);
		if (rc == IBOX_GONE)
			rc = IBOX_OK;
		if (rc == IBOX_OK)
			rc = isearch_sent(b, seqs[i] - 1, &h, &m->date, err);
		if (rc == IBOX_GONE)
			rc = IBOX_OK;
		f = header_get(&h, "Subject");
		m->reply = isearch_base_subject(f ? f->value : "", &sb);
		buf_addc(&sb, '\0');
		m->subj = buf_steal(&sb);
		if (s->thread == IMAP_THREAD_REFERENCES) {
			/* step 1 A */
			f = header_get(&h, "Message-ID");
			nids = msg_ids(f ? f->value : NULL, &ids);
			self = nids > 0 ? find_id(&t, ids[0]) : -1;
			if (self >= 0 && t.c[self].msg < 0)
				t.c[self].msg = (int)i;
			else
				self = new_cont(&t, (int)i, self < 0 && nids > 0 ? ids[0] : NULL);
			/* step 1 B */
			f = header_get(&h, "References");
			nrefs = msg_ids(f ? f->value : NULL, &refs);
			if (nrefs == 0) {
				f = header_get(&h, "In-Reply-To");
				nrefs = msg_ids(f ? f->value : NULL, &refs);
				if (nrefs > 1) {
					for (j = 1; j < nrefs; j++)
						free(refs[j]);
					nrefs = 1;
				}
			}
			for (j = 0; j + 1 < nrefs; j++) {
				int a = get_id(&t, refs[j]), c = get_id(&t, refs[j + 1]);

				/* c has no parent, so a is above c only if a == c; c is
				 * above a only if c has children */
				if (a != c && t.c[c].parent < 0 &&
				    (t.c[c].child < 0 || !ancestor(&t, c, a)))
					link_cont(&t, a, c);
			}
			/* step 1 C */
			unlink_cont(&t, self);
			if (nrefs > 0) {
				int p = get_id(&t, refs[nrefs - 1]);

				if (p != self && (t.c[self].child < 0 || !ancestor(&t, self, p)))
					link_cont(&t, p, self);
			}
			free_ids(ids, nids);
			free_ids(refs, nrefs);
		}
		header_free(&h);
		t.nmsgs = i + 1;
	}
	if (rc != IBOX_OK)
		goto out;
	if (s->thread == IMAP_THREAD_REFERENCES)
		references(&t, &roots, &nroots);
	else {
		/* ORDEREDSUBJECT: by base subject, then sent date; the first
		 * of each subject is the parent of the others */
		struct subj_key *ord = xcalloc(n ? n : 1, sizeof(*ord));
		int last = -1;

		for (i = 0; i < n; i++) {
			(void)new_cont(&t, (int)i, NULL);
			ord[i].m = &t.msgs[i];
			ord[i].idx = (int)i;
		}
		qsort(ord, n, sizeof(*ord), cmp_subj);
		for (i = 0; i < n; i++) {
			if (last >= 0 && strcmp(t.msgs[t.c[last].msg].subj, ord[i].m->subj) == 0)
				link_cont(&t, last, ord[i].idx);
			else {
				last = ord[i].idx;
				roots = xreallocarray(roots, nroots + 1, sizeof(*roots));
				roots[nroots++] = last;
			}
		}
		free(ord);
	}
	/* step 6: one list of the roots, sorted with everything below */
	{
		int *tail = &top;

		for (i = 0; i < nroots; i++) {
			root = roots[i];
			if (t.c[root].deleted || t.c[root].parent >= 0)
				continue;
			*tail = root;
			t.c[root].next = -1;
			tail = &t.c[root].next;
		}
	}
	top = sort_list(&t, top);
	for (root = top; root >= 0; root = t.c[root].next) {
		buf_addc(out, '(');
		emit(&t, root, out);
		buf_addc(out, ')');
	}
out:
	for (i = 0; i < t.n; i++)
		free(t.c[i].id);
	for (i = 0; i < t.nmsgs; i++)
		free(t.msgs[i].subj);
	free(t.c);
	free(t.msgs);
	free(t.hash);
	free(roots);
	return rc;
}
