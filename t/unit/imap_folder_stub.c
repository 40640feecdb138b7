/*
 * imap_folder_stub: ibox_status for test_imap_folder without the real
 * imap_box: counts the files in new/ and cur/ (new/ ones are \Recent),
 * UIDVALIDITY 42, UIDNEXT one past the count; mbox paths fail.  And
 * an mbox INBOX of two messages for RENAME INBOX (ibox_open, ibox_copy,
 * ibox_store, ibox_expunge, ibox_close).
 */
#include "imap_box.h"
#include "imap_parse.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int
count(const char *path, const char *sub, uint32_t *n, struct buf *err)
{
	struct buf p = BUF_INIT;
	DIR *d;
	struct dirent *e;

	buf_printf(&p, "%s%s", path, sub);
	d = opendir(buf_str(&p));
	buf_free(&p);
	if (d == NULL) {
		buf_sets(err, strerror(errno));
		return errno == ENOENT ? IBOX_NONEXIST : IBOX_ERR;
	}
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			(*n)++;
	closedir(d);
	return IBOX_OK;
}

int
ibox_status(const char *path, int maildir, struct ibox_status *st, struct buf *err)
{
	uint32_t cur = 0;
	int rc;

	memset(st, 0, sizeof(*st));
	if (!maildir) {
		buf_sets(err, "mbox not in the stub");
		return IBOX_ERR;
	}
	if ((rc = count(path, "new", &st->recent, err)) != IBOX_OK ||
	    (rc = count(path, "cur", &cur, err)) != IBOX_OK)
		return rc;
	st->messages = st->recent + cur;
	st->unseen = st->messages;
	st->uidnext = st->messages + 1;
	st->uidvalidity = 42;
	st->highestmodseq = 7;
	st->size = 100ull * st->messages;
	return IBOX_OK;
}

/* An mbox INBOX for RENAME INBOX: two messages; what happened to them
 * is in stub_copied / stub_expunged. */
extern int stub_copied, stub_expunged, stub_closed;
int stub_copied, stub_expunged, stub_closed;

int
ibox_open(struct imap_box *b, const char *path, int maildir, int readonly, struct buf *err)
{
	(void)readonly;
	if (maildir) {
		buf_sets(err, "maildir not in the stub");
		return IBOX_ERR;
	}
	b->path = xstrdup(path);
	b->n = 2;
	b->msgs = xcalloc(2, sizeof(*b->msgs));
	b->msgs[0].uid = 1;
	b->msgs[0].flags = IMAP_FLAG_SEEN | IBOX_RECENT;
	b->msgs[1].uid = 2;
	b->msgs[1].keywords = xstrdup("$Label1");
	return IBOX_OK;
}

int
ibox_copy(struct imap_box *b, const size_t *idx, size_t n, const char *path, int maildir,
    uint32_t *uidvalidity, uint32_t *uids, struct buf *err)
{
	size_t i;

	(void)b;
	(void)idx;
	(void)maildir;
	*uidvalidity = 42;
	for (i = 0; i < n; i++) {
		struct buf p = BUF_INIT;
		int fd;

		buf_printf(&p, "%scur/copy%zu", path, i);
		fd = open(buf_str(&p), O_WRONLY | O_CREAT | O_TRUNC, 0600);
		buf_free(&p);
		if (fd < 0 || close(fd) < 0) {
			buf_sets(err, strerror(errno));
			return IBOX_ERR;
		}
		uids[i] = (uint32_t)i + 1;
		stub_copied++;
	}
	return IBOX_OK;
}

int
ibox_store(struct imap_box *b, size_t i, unsigned flags, const char *keywords, struct buf *err)
{
	(void)err;
	b->msgs[i].flags = flags;
	if (keywords != b->msgs[i].keywords) {
		free(b->msgs[i].keywords);
		b->msgs[i].keywords = keywords ? xstrdup(keywords) : NULL;
	}
	return IBOX_OK;
}

int
ibox_expunge(struct imap_box *b, const struct imap_seqset *uids, struct ibox_changes *ch, struct buf *err)
{
	size_t i, k = 0;

	(void)uids;
	(void)ch;
	(void)err;
	for (i = 0; i < b->n; i++) {
		if (b->msgs[i].flags & IMAP_FLAG_DELETED) {
			free(b->msgs[i].keywords);
			stub_expunged++;
		} else {
			b->msgs[k++] = b->msgs[i];
		}
	}
	b->n = k;
	return IBOX_OK;
}

void
ibox_changes_free(struct ibox_changes *ch)
{
	free(ch->expunged);
	free(ch->changed);
	imap_seq_free(&ch->vanished);
	memset(ch, 0, sizeof(*ch));
}

void
ibox_close(struct imap_box *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		free(b->msgs[i].keywords);
	free(b->msgs);
	free(b->path);
	memset(b, 0, sizeof(*b));
	stub_closed++;
}
