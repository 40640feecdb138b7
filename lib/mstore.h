/*
 * mstore: the mailbox store that the access daemons (popd today, imapd
 * next) read and change: one mailbox opened for the length of a
 * session, the list of its messages as it was when the session locked
 * it, the stored bytes of each, and the step that removes the messages
 * marked deleted (POP3 UPDATE, IMAP EXPUNGE).  Two back ends: Maildir
 * (mstore_maildir.c) and mbox (mstore_mbox.c); local (deliver/) writes
 * both formats through lib/maildir.h and lib/mbox.h.
 *
 * The truth is on disk, nowhere else: a Maildir message is its file in
 * cur/ (or new/), named "UNIQUE,W=SIZE:2,FLAGS"; UNIQUE never changes
 * while the message exists and is its unique id (hashed when it is not
 * valid id syntax or longer than 60), W= caches its size.  An mbox
 * message is its bytes between From_ lines; its unique id is its valid
 * X-UIDL: field when it has one, else a hash of its From_ line and
 * bytes, and a rewrite through a temporary file stores that id in an
 * X-UIDL: field.  Equal ids get ".2", ".3"... in message order.  These ids
 * are what popd shows as UIDLs, so they must never change across
 * releases.
 *
 * Locking: an open Maildir holds flock(DIR/.hermod-pop3.lock); an open
 * mbox holds the NAME.lock dotlock and the fcntl write lock of
 * lib/mbox.h (the protocol local uses) from open to close.  A second
 * opener gets MSTORE_INUSE.  Mail that arrives while a mailbox is open
 * is not seen until it is opened again.
 */
#ifndef HERMOD_MSTORE_H
#define HERMOD_MSTORE_H

#include <stddef.h>
#include <sys/types.h>
#include "buf.h"
#include "mbox.h"

struct mstore_msg {
	char *uidl;		/* unique id (RFC 1939 UIDL syntax) */
	char *name;		/* Maildir: "cur/FILE" */
	off_t off;		/* mbox: offset of the From_ line */
	off_t body;		/* mbox: offset of the message (after From_) */
	size_t len;		/* mbox: stored length of the message */
	size_t size;		/* the size with CRLF line ends (mstore_wire_size) */
	int has_uidl_hdr;	/* mbox: X-UIDL: stored in the message */
	int deleted;		/* set by the caller; acted on by mstore_update */
};

struct mstore {
	int maildir;
	char *path;
	struct mstore_msg *msgs;
	size_t n;
	int dirfd;		/* Maildir */
	int lockfd;		/* Maildir lock file */
	struct mbox mb;		/* mbox: lock holder */
	int mb_open;
	int rfd;		/* mbox: read/write descriptor */
	char *map;
	size_t maplen;
};

#define MSTORE_OK	0
#define MSTORE_ERR	(-1)	/* a system error (POP3 [SYS/TEMP]) */
#define MSTORE_INUSE	(-2)	/* another session has it locked ([IN-USE]) */
#define MSTORE_PERM	(-3)	/* the mailbox is unusable ([SYS/PERM]) */

/* Lock and list the mailbox at path (a Maildir folder ending in '/'
 * when maildir, else an mbox file).  MSTORE_OK or one of the errors
 * above with the reason in err; mstore_close is needed either way. */
int mstore_open(struct mstore *b, const char *path, int maildir, struct buf *err);
/* The stored bytes of message i (0-based): *p and *n point into b->map or
 * into tmp.  0 ok, -1 err. */
int mstore_get(struct mstore *b, size_t i, const char **p, size_t *n,
    struct buf *tmp, struct buf *err);
/* Remove the messages marked deleted, durably. 0 ok, -1 err. */
int mstore_update(struct mstore *b, struct buf *err);
/* Unlock and free; b may then be opened again. */
void mstore_close(struct mstore *b);

/* 1 if s is a valid unique id: 1..70 characters 0x21..0x7E (RFC 1939
 * UIDL syntax, which every id of the store follows). */
int mstore_uidl_valid(const char *s);
/* The size of a stored message (LF or CRLF line ends) once every line
 * ends in CRLF and a last line without a line end gets one: what POP3
 * LIST/STAT report and the Maildir W= field caches. */
size_t mstore_wire_size(const char *p, size_t n);

/* For the back ends only (mstore_maildir.c, mstore_mbox.c). */
int mstore_maildir_open(struct mstore *b, struct buf *err);
int mstore_maildir_get(struct mstore *b, size_t i, struct buf *tmp, struct buf *err);
int mstore_maildir_update(struct mstore *b, struct buf *err);
void mstore_maildir_close(struct mstore *b);
int mstore_mbox_open(struct mstore *b, struct buf *err);
int mstore_mbox_update(struct mstore *b, struct buf *err);
void mstore_mbox_close(struct mstore *b);
/* A 32-hex-digit id from bytes (two independent 64-bit FNV-1a hashes),
 * and making equal ids unique by appending ".2", ".3"... in message
 * order. */
void mstore_hash_uidl(const void *p, size_t n, struct buf *out);
void mstore_uniq_uidls(struct mstore *b);

#endif
