/*
 * imap_box_mbox: the mbox back end of imap_box (a placeholder until it
 * is written: every entry point fails).
 */
#include "imap_box.h"

int
ibox_mbox_open(struct imap_box *b, struct buf *err)
{
	(void)b;
	buf_sets(err, "mbox folders are not supported yet");
	return IBOX_ERR;
}

int
ibox_mbox_status(const char *path, struct ibox_status *st, struct buf *err)
{
	(void)path;
	(void)st;
	buf_sets(err, "mbox folders are not supported yet");
	return IBOX_ERR;
}

int
ibox_mbox_append(const char *path, const struct ibox_append *m, size_t n,
    uint32_t *uidvalidity, uint32_t *uids, struct buf *err)
{
	(void)path;
	(void)m;
	(void)n;
	(void)uidvalidity;
	(void)uids;
	buf_sets(err, "mbox folders are not supported yet");
	return IBOX_ERR;
}
