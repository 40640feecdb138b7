/*
 * mbox: appending one message to a Unix mbox file the way sendmail's
 * mail.local and Postfix's local do, so that every mail reader on the
 * system (mutt, mailx, Dovecot, procmail) agrees on the locks.
 *
 *   lock     NAME.lock dotlock (O_CREAT|O_EXCL; a lock older than
 *            stale_lock_time is removed) and then an fcntl write lock on
 *            the mailbox, both retried for lock_attempts * lock_delay.
 *            When the directory does not allow creating the dotlock
 *            (EACCES, EPERM, EROFS) the fcntl lock alone is used.
 *   open     O_APPEND|O_NOFOLLOW; created 0600 when missing; refused
 *            when it is a symbolic link, not a regular file, has more
 *            than one link, or is owned by another user than expected.
 *   write    "From SENDER DATE\n", the message with every line that
 *            starts with "From " quoted as ">From " (mboxo, as sendmail
 *            and Postfix write it), a final newline if the message lacks
 *            one, and an empty line.
 *   commit   fsync before success; on any failure the file is truncated
 *            back to its size before the append, so a reader never sees
 *            half a message.
 *
 * Errors are returned as -1 with errno and a message: EAGAIN the mailbox
 * stayed locked; ELOOP, EMLINK, EPERM, EINVAL a refused mailbox (symlink,
 * hard link, other owner, not a regular file); ENOSPC, EDQUOT, EFBIG the
 * disk, quota or size limit; anything else from the system.
 */
#ifndef HERMOD_MBOX_H
#define HERMOD_MBOX_H

#include <stddef.h>
#include <time.h>
#include <sys/types.h>
#include "buf.h"

#ifndef HERMOD_MAIL_SOURCE
#define HERMOD_MAIL_SOURCE
/*
 * A message to store, shared by the mbox and Maildir writers: prefix
 * (header fields added at delivery, e.g. Return-Path: and Delivered-To:)
 * followed by what copy() produces.  copy() calls sink with pieces of the
 * message (LF line endings) and returns 0, or -1 with errno, or the
 * non-zero value sink returned.
 */
typedef int (*mail_sink_fn)(void *sctx, const char *p, size_t n);
struct mail_source {
	const char *prefix;
	size_t prefix_len;
	int (*copy)(void *ctx, mail_sink_fn sink, void *sctx);
	void *ctx;
};
#endif

struct mbox_opts {
	uid_t owner;		/* the required owner, (uid_t)-1: any */
	uid_t create_uid;	/* fchown a new mailbox to these, (uid_t)-1: no */
	gid_t create_gid;
	int dotlock;		/* 1: take NAME.lock as well */
	int lock_attempts;	/* deliver_lock_attempts */
	long lock_delay_ms;	/* deliver_lock_delay */
	long stale_lock_sec;	/* stale_lock_time */
};

/* Defaults from hermod.conf (call after conf_load). */
void mbox_opts_from_conf(struct mbox_opts *o);

struct mbox {
	int fd;
	char *path;
	char *lockpath;		/* NULL when no dotlock is held */
	off_t start;		/* size when locked: where the append begins */
};

/* Open (creating if missing) and lock.  0 ok, -1 errno + err. */
int mbox_open(struct mbox *mb, const char *path, const struct mbox_opts *o, struct buf *err);
/* Append one message.  sender "" is written as MAILER-DAEMON.  0 ok
 * (fsynced), -1 errno + err (the file is truncated back). */
int mbox_append(struct mbox *mb, const char *sender, time_t when,
    const struct mail_source *src, struct buf *err);
/* Unlock (removing the dotlock) and close. */
void mbox_close(struct mbox *mb);

/* All three in one. */
int mbox_deliver(const char *path, const struct mbox_opts *o, const char *sender,
    time_t when, const struct mail_source *src, struct buf *err);

/* The quoting writer on its own (tests): copies src into out as mbox
 * message text (">From " quoting, final newline, empty line). */
void mbox_quote_to_buf(const struct mail_source *src, struct buf *out);

#endif
