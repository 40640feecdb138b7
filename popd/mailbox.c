/*
 * mailbox.c: the back-end independent part of mailbox.h (dispatch,
 * UIDL hashing and de-duplication).
 */
#include "mailbox.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int
box_open(struct pop_box *b, const char *path, int maildir, struct buf *err)
{
	memset(b, 0, sizeof(*b));
	b->dirfd = b->lockfd = b->rfd = -1;
	b->mb.fd = -1;
	b->maildir = maildir;
	b->path = xstrdup(path);
	return maildir ? maildir_box_open(b, err) : mbox_box_open(b, err);
}

int
box_get(struct pop_box *b, size_t i, const char **p, size_t *n,
    struct buf *tmp, struct buf *err)
{
	if (i >= b->n)
		return -1;
	if (b->maildir) {
		buf_reset(tmp);
		if (maildir_box_get(b, i, tmp, err) < 0)
			return -1;
		*p = tmp->data ? tmp->data : "";
		*n = tmp->len;
		return 0;
	}
	*p = b->map + b->msgs[i].body;
	*n = b->msgs[i].len;
	return 0;
}

int
box_update(struct pop_box *b, struct buf *err)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		if (b->msgs[i].deleted)
			break;
	if (i == b->n)
		return 0;
	return b->maildir ? maildir_box_update(b, err) : mbox_box_update(b, err);
}

void
box_close(struct pop_box *b)
{
	size_t i;

	if (b->maildir)
		maildir_box_close(b);
	else
		mbox_box_close(b);
	for (i = 0; i < b->n; i++) {
		free(b->msgs[i].uidl);
		free(b->msgs[i].name);
	}
	free(b->msgs);
	free(b->path);
	b->msgs = NULL;
	b->path = NULL;
	b->n = 0;
}

void
box_hash_uidl(const void *p, size_t n, struct buf *out)
{
	const unsigned char *s = p;
	uint64_t h1 = 0xcbf29ce484222325ULL, h2 = 0x84222325cbf29ce4ULL;
	size_t i;

	for (i = 0; i < n; i++) {
		h1 = (h1 ^ s[i]) * 0x100000001b3ULL;
		h2 = (h2 ^ s[n - 1 - i]) * 0x100000001b3ULL;
	}
	h2 ^= n;
	buf_printf(out, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
}

static struct pop_box *sort_box;

static int
cmp_uidl(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = strcmp(sort_box->msgs[x].uidl, sort_box->msgs[y].uidl);

	if (c)
		return c;
	return x < y ? -1 : x > y;
}

void
box_uniq_uidls(struct pop_box *b)
{
	size_t *ix, i, run = 1;
	char *prev = NULL;

	if (b->n < 2)
		return;
	ix = xcalloc(b->n, sizeof(*ix));
	for (i = 0; i < b->n; i++)
		ix[i] = i;
	sort_box = b;
	qsort(ix, b->n, sizeof(*ix), cmp_uidl);
	for (i = 0; i < b->n; i++) {
		struct pop_msg *m = &b->msgs[ix[i]];
		struct buf u = BUF_INIT;

		if (!prev || strcmp(m->uidl, prev)) {
			free(prev);
			prev = xstrdup(m->uidl);
			run = 1;
			continue;
		}
		run++;
		if (strlen(m->uidl) > 60) {
			box_hash_uidl(m->uidl, strlen(m->uidl), &u);
			buf_printf(&u, ".%zu", run);
		} else
			buf_printf(&u, "%s.%zu", m->uidl, run);
		free(m->uidl);
		m->uidl = buf_steal(&u);
	}
	free(prev);
	free(ix);
}
