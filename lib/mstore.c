/*
 * mstore.c: the back-end independent part of mstore.h (dispatch, the
 * unique id checks, hashing and de-duplication, the CRLF size).
 */
#include "mstore.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int
mstore_open(struct mstore *b, const char *path, int maildir, struct buf *err)
{
	memset(b, 0, sizeof(*b));
	b->dirfd = b->lockfd = b->rfd = -1;
	b->mb.fd = -1;
	b->maildir = maildir;
	b->path = xstrdup(path);
	return maildir ? mstore_maildir_open(b, err) : mstore_mbox_open(b, err);
}

int
mstore_get(struct mstore *b, size_t i, const char **p, size_t *n,
    struct buf *tmp, struct buf *err)
{
	if (i >= b->n)
		return -1;
	if (b->maildir) {
		buf_reset(tmp);
		if (mstore_maildir_get(b, i, tmp, err) < 0)
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
mstore_update(struct mstore *b, struct buf *err)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		if (b->msgs[i].deleted)
			break;
	if (i == b->n)
		return 0;
	return b->maildir ? mstore_maildir_update(b, err) : mstore_mbox_update(b, err);
}

void
mstore_close(struct mstore *b)
{
	size_t i;

	if (b->maildir)
		mstore_maildir_close(b);
	else
		mstore_mbox_close(b);
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
mstore_hash_uidl(const void *p, size_t n, struct buf *out)
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

static struct mstore *sort_store;

static int
cmp_uidl(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = strcmp(sort_store->msgs[x].uidl, sort_store->msgs[y].uidl);

	if (c)
		return c;
	return x < y ? -1 : x > y;
}

void
mstore_uniq_uidls(struct mstore *b)
{
	size_t *ix, i, run = 1;
	char *prev = NULL;

	if (b->n < 2)
		return;
	ix = xcalloc(b->n, sizeof(*ix));
	for (i = 0; i < b->n; i++)
		ix[i] = i;
	sort_store = b;
	qsort(ix, b->n, sizeof(*ix), cmp_uidl);
	for (i = 0; i < b->n; i++) {
		struct mstore_msg *m = &b->msgs[ix[i]];
		struct buf u = BUF_INIT;

		if (!prev || strcmp(m->uidl, prev)) {
			free(prev);
			prev = xstrdup(m->uidl);
			run = 1;
			continue;
		}
		run++;
		if (strlen(m->uidl) > 60) {
			mstore_hash_uidl(m->uidl, strlen(m->uidl), &u);
			buf_printf(&u, ".%zu", run);
		} else
			buf_printf(&u, "%s.%zu", m->uidl, run);
		free(m->uidl);
		m->uidl = buf_steal(&u);
	}
	free(prev);
	free(ix);
}

int
mstore_uidl_valid(const char *s)
{
	size_t n = 0;

	for (; *s; s++, n++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			return 0;
	return n >= 1 && n <= 70;
}

size_t
mstore_wire_size(const char *p, size_t n)
{
	const char *end = p + n, *q = p;
	size_t size = n;

	while (q < end) {
		const char *nl = memchr(q, '\n', (size_t)(end - q));

		if (!nl) {
			size += 2;	/* a line end is added to the last line */
			break;
		}
		if (nl == q || nl[-1] != '\r')
			size++;
		q = nl + 1;
	}
	return size;
}
