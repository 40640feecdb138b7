/*
 * mailbox: popd's view of one mailbox for the length of a session
 * (RFC 1939 "maildrop"): the list of messages as it was when the session
 * locked it, the stored bytes of each, and the UPDATE step that removes
 * the messages marked deleted.  Two back ends: Maildir
 * (mailbox_maildir.c) and mbox (mailbox_mbox.c).
 *
 * Locking: a Maildir session holds flock(DIR/.hermod-pop3.lock); an mbox
 * session holds the NAME.lock dotlock and the fcntl write lock of
 * lib/mbox.h (the protocol local uses) from open to close.  Mail that
 * arrives during a session is not seen until the next one.
 */
#ifndef HERMOD_POPD_MAILBOX_H
#define HERMOD_POPD_MAILBOX_H

#include <stddef.h>
#include <sys/types.h>
#include "buf.h"
#include "mbox.h"

struct pop_msg {
	char *uidl;
	char *name;		/* Maildir: "cur/FILE" */
	off_t off;		/* mbox: offset of the From_ line */
	off_t body;		/* mbox: offset of the message (after From_) */
	size_t len;		/* mbox: stored length of the message */
	size_t size;		/* the size as sent (CRLF, no dot-stuffing) */
	int has_uidl_hdr;	/* mbox: X-UIDL: stored in the message */
	int deleted;
};

struct pop_box {
	int maildir;
	char *path;
	struct pop_msg *msgs;
	size_t n;
	int dirfd;		/* Maildir */
	int lockfd;		/* Maildir lock file */
	struct mbox mb;		/* mbox: lock holder */
	int mb_open;
	int rfd;		/* mbox: read/write descriptor */
	char *map;
	size_t maplen;
};

#define BOX_OK		0
#define BOX_ERR		(-1)	/* a system error: [SYS/TEMP] */
#define BOX_INUSE	(-2)	/* another session has it: [IN-USE] */
#define BOX_PERM	(-3)	/* the mailbox is unusable: [SYS/PERM] */

int box_open(struct pop_box *b, const char *path, int maildir, struct buf *err);
/* The stored bytes of message i (0-based): *p and *n point into b->map or
 * into tmp.  0 ok, -1 err. */
int box_get(struct pop_box *b, size_t i, const char **p, size_t *n,
    struct buf *tmp, struct buf *err);
/* UPDATE: remove the messages marked deleted, durably. 0 ok, -1 err. */
int box_update(struct pop_box *b, struct buf *err);
void box_close(struct pop_box *b);

int maildir_box_open(struct pop_box *b, struct buf *err);
int maildir_box_get(struct pop_box *b, size_t i, struct buf *tmp, struct buf *err);
int maildir_box_update(struct pop_box *b, struct buf *err);
void maildir_box_close(struct pop_box *b);
int mbox_box_open(struct pop_box *b, struct buf *err);
int mbox_box_update(struct pop_box *b, struct buf *err);
void mbox_box_close(struct pop_box *b);

/* Shared: a 32-hex-digit UIDL from bytes (two independent 64-bit FNV-1a
 * hashes), and making equal UIDLs unique by appending ".2", ".3"... in
 * message order. */
void box_hash_uidl(const void *p, size_t n, struct buf *out);
void box_uniq_uidls(struct pop_box *b);

#endif
