/*
 * maildir: delivering one message into a Maildir (the qmail/Dovecot
 * layout: tmp/, new/, cur/).
 *
 * The message is written to tmp/NAME, fsynced, hard-linked (or renamed,
 * where the file system has no hard links) to new/NAME,S=SIZE, and new/
 * is fsynced before success is reported; tmp/NAME is then removed.  NAME
 * is "SECONDS.MmicrosecondsPpidQcounter.HOST" (HOST with '/' and ':'
 * written as \057 and \072), unique per host even for several deliveries
 * in the same microsecond by one process.  S= is the size in bytes of
 * the file (LF line endings), which IMAP and POP3 servers read to skip
 * a stat.  Missing tmp/, new/ and cur/ (and the Maildir itself) are
 * created with mode 0700.
 */
#ifndef HERMOD_MAILDIR_H
#define HERMOD_MAILDIR_H

#include "buf.h"
#include "mbox.h"	/* struct mail_source */

/* 0 ok (the path of the new file in path_out, may be NULL); -1 with
 * errno and a message in err. */
int maildir_deliver(const char *dir, const struct mail_source *src,
    struct buf *path_out, struct buf *err);
/* The unique base name ("1700000000.M123456P99Q1.host"), for tests. */
void maildir_unique_name(struct buf *out);
/* Make dir, dir/tmp, dir/new, dir/cur (0700) as needed. 0 ok, -1 errno. */
int maildir_create(const char *dir);

#endif
