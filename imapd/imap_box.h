/*
 * imap_box: one IMAP mailbox as a session sees it (RFC 3501 5.2, 7.4;
 * RFC 7162 for MODSEQ), on the mail store that popd uses too.
 *
 * Two back ends behind one view:
 *   - a Maildir or Maildir++ folder (imap_box_maildir.c): UIDs, MODSEQs
 *     and keywords from lib/mstore_index (FOLDER/hermod-uidlist), flags
 *     from the ":2," suffix of the file name (the truth);
 *   - an mbox file, the INBOX of system users (imap_box_mbox.c): UIDs in
 *     the messages' headers as UW-IMAP and Dovecot keep them (X-IMAPbase
 *     on the first message: UIDVALIDITY UIDNEXT; X-UID; Status: RO;
 *     X-Status: ADFT; X-Keywords:), rewritten under local's dotlock +
 *     fcntl lock (lib/mbox.h) through a temporary file, fsync, rename.
 *     No persistent MODSEQ (RFC 7162 3.1.2.2 NOMODSEQ).
 * and a per-folder cache (imap_cache.c, FOLDER/hermod-cache) of what a
 * FETCH of a large folder would otherwise reopen every message for:
 * size, internal date, ENVELOPE, BODYSTRUCTURE, BODY.
 *
 * The view is the session's: msgs[i] is message sequence number i + 1.
 * It changes only in ibox_sync and ibox_expunge, so that the session
 * decides when the client hears of changes (never an EXPUNGE during
 * FETCH, STORE or SEARCH: RFC 3501 7.4.1).  Sessions never hold a lock
 * between commands; every operation takes the folder's lock for as long
 * as it needs it, so IMAP sessions run side by side, and beside popd
 * (which holds its lock for a whole session: an IMAP operation that
 * needs a lock popd holds fails with IBOX_INUSE, and the session says
 * [INUSE] and tries again at its next sync).
 */
#ifndef HERMOD_IMAP_BOX_H
#define HERMOD_IMAP_BOX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "quota.h"
#include "imap_seq.h"

/* Flag bits: the IMAP_FLAG_* of imap_parse.h, and \Recent. */
#define IBOX_RECENT	0x100

/* ibox_meta() items */
#define IBOX_META_SIZE		0x01	/* size (RFC822.SIZE: CRLF line ends) */
#define IBOX_META_IDATE		0x02	/* idate, izone */
#define IBOX_META_ENVELOPE	0x04
#define IBOX_META_BODYSTRUCTURE	0x08	/* bodystructure and body */
#define IBOX_META_HEADER	0x10	/* header: the header section, for SEARCH */
/* a larger header section (or one with a NUL) is not kept: SEARCH reads
 * the message for it */
#define IBOX_HEADER_KEEP_MAX	16384

struct ibox_msg {
	uint32_t uid;
	uint64_t modseq;	/* 1 when the box has NOMODSEQ */
	unsigned flags;		/* IMAP_FLAG_* | IBOX_RECENT */
	char *keywords;		/* "kw1,kw2" or NULL */
	int expunged;		/* gone on disk, not yet told to the client */
	/* back end */
	char *name;		/* Maildir: "cur/FILE" or "new/FILE" as last seen */
	off_t off;		/* mbox: offset of the message (after From_) */
	size_t len;		/* mbox: stored length */
	/* cache: valid when the IBOX_META_* bit is in `have' */
	unsigned have;
	uint64_t size;
	int64_t idate;		/* seconds since the epoch, UTC */
	int izone;		/* minutes east of UTC */
	char *envelope;		/* "(...)" as FETCH sends it */
	char *bodystructure;	/* "(...)" extensible */
	char *body;		/* "(...)" non-extensible (FETCH BODY) */
	char *header;		/* the header section as stored, blank line included */
};

struct imap_box;

/* What ibox_sync/ibox_expunge found, for the untagged responses. */
struct ibox_changes {
	uint32_t *expunged;	/* sequence numbers in the order to send
				 * "* N EXPUNGE" (each valid after the previous) */
	size_t nexpunged;
	struct imap_seqset vanished;	/* the same messages' UIDs (QRESYNC VANISHED) */
	size_t *changed;	/* indices into msgs[] whose flags/keywords/modseq changed */
	size_t nchanged;
	int exists;		/* the number of messages changed: send EXISTS (and RECENT) */
	int uidvalidity;	/* UIDVALIDITY changed: the session must end (BYE) */
};

struct ibox_ops;

struct imap_box {
	char *path;		/* Maildir folder (ends in '/') or mbox file */
	int maildir;
	int readonly;		/* EXAMINE, or the files are not writable */
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
	uint64_t modseq_floor;	/* unpacked: msgs[] without MODSEQs, each at most this */
	int force_list;		/* the next sync lists the folder: 1 a watch woke
				 * us, 2 after our own change (write-locked) */
	int nomodseq;
	struct ibox_msg *msgs;	/* the session's view; msgs[i] is sequence number i + 1 */
	size_t n;
	size_t recent;		/* messages with IBOX_RECENT */
	char *kwlist;		/* every keyword in use, "a,b" (for FLAGS / PERMANENTFLAGS) */
	const struct ibox_ops *ops;
	void *priv;		/* back end state */
	struct buf mapbuf;	/* the last message loaded (back ends may use it) */
	char *stamp;		/* ibox_poll_changed's last look */
	/* ibox_release'd (Maildir): msgs[] in short form, about a byte a
	 * message, unpacked at the next box operation */
	struct ibox_packed *packed;
};

/* A released box's view: what a sync needs to tell the changes.  UIDs
 * as runs (a folder's UIDs are mostly consecutive); per message one byte
 * of IBOX_PK_* bits; MODSEQs not at all: each message's was at most
 * floor, the HIGHESTMODSEQ told, and a sync after the unpack takes the
 * index's without telling it when it is still at most floor (a change
 * since has a higher one). */
struct ibox_packed {
	struct { uint32_t first, count; } *runs;
	size_t nruns;
	uint8_t *bits;
	uint64_t floor;
	struct { size_t i; char *keywords; } *kw;	/* msgs[i] has keywords */
	size_t nkw;
};
#define IBOX_PK_FLAGS		0x1f	/* IMAP_FLAG_* */
#define IBOX_PK_RECENT		0x20
#define IBOX_PK_EXPUNGED	0x40

/* Results */
#define IBOX_OK		0
#define IBOX_ERR	(-1)	/* system error: NO [SERVERBUG]/[UNAVAILABLE] with err */
#define IBOX_INUSE	(-2)	/* locked by popd: NO [INUSE] */
#define IBOX_NONEXIST	(-3)	/* no such mailbox: NO [NONEXISTENT] */
#define IBOX_GONE	1	/* that message was expunged meanwhile */
#define IBOX_MODIFIED	2	/* STORE UNCHANGEDSINCE failed for it */
#define IBOX_OVERQUOTA	(-4)	/* APPEND/COPY over the quota: NO [OVERQUOTA] */

/* The back end, for ibox_* and for tests that make a box in memory. */
struct ibox_ops {
	int (*sync)(struct imap_box *b, int allow_expunge, struct ibox_changes *ch, struct buf *err);
	int (*load)(struct imap_box *b, size_t i, const char **p, size_t *n, struct buf *err);
	int (*store)(struct imap_box *b, size_t i, unsigned flags, const char *keywords, struct buf *err);
	int (*expunge)(struct imap_box *b, const struct imap_seqset *uids, struct ibox_changes *ch, struct buf *err);
	int (*watch)(struct imap_box *b);
	void (*close)(struct imap_box *b);
};

/* Open the folder (Maildir when maildir, else mbox), sync once, and
 * claim \Recent for the messages no session has seen (Maildir: those in
 * new/, moved to cur/ unless readonly; mbox: those without Status: O).
 * IBOX_OK or an error with err; ibox_close either way. */
int ibox_open(struct imap_box *b, const char *path, int maildir, int readonly, struct buf *err);
/* Take in what changed on disk since the last sync: new messages
 * (appended to msgs, ch->exists), flag/keyword changes (ch->changed),
 * messages gone (removed from msgs and listed in ch->expunged when
 * allow_expunge, else only marked expunged).  IBOX_OK, IBOX_INUSE (try
 * later, nothing changed) or IBOX_ERR. */
int ibox_sync(struct imap_box *b, int allow_expunge, struct ibox_changes *ch, struct buf *err);
/* The stored bytes of msgs[i] (LF or CRLF line ends): valid until the
 * next ibox_load or ibox_sync.  IBOX_OK, IBOX_GONE or IBOX_ERR. */
int ibox_load(struct imap_box *b, size_t i, const char **p, size_t *n, struct buf *err);
/* Fill the IBOX_META_* items `what' of msgs[i] from the cache, or by
 * reading the message (and remember them in the cache).  IBOX_OK,
 * IBOX_GONE, IBOX_ERR. */
int ibox_meta(struct imap_box *b, size_t i, unsigned what, struct buf *err);
/* Give msgs[i] these flags (IMAP_FLAG_*; IBOX_RECENT ignored) and
 * keywords ("a,b", "" or NULL for none): the whole new set.  The MODSEQ
 * grows when anything changed.  IBOX_OK, IBOX_GONE, IBOX_ERR. */
int ibox_store(struct imap_box *b, size_t i, unsigned flags, const char *keywords, struct buf *err);
/* The same for several messages at once (STORE of a range: one lock,
 * one sync, one index write for all of them): msgs[idx[k]] gets flags[k]
 * and keywords[k]; res[k] is IBOX_OK or IBOX_GONE.  IBOX_OK or IBOX_ERR
 * (then some may have been changed; the next sync tells). */
int ibox_store_many(struct imap_box *b, const size_t *idx, const unsigned *flags,
    char *const *keywords, size_t n, int *res, struct buf *err);
/* Remove the messages with \Deleted (and, when uids is not NULL, a UID
 * in uids: UID EXPUNGE), durably; the removed ones leave msgs and are
 * listed in ch.  IBOX_OK or IBOX_ERR. */
int ibox_expunge(struct imap_box *b, const struct imap_seqset *uids, struct ibox_changes *ch, struct buf *err);
/* A descriptor that becomes readable when the folder may have changed
 * (inotify on new/ and cur/, or on the mbox file and its directory);
 * -1 when there is none (then the session polls).  ibox_watch_drain
 * reads it empty and says what it saw: 0 nothing that matters (our own
 * side files in a Maildir's root), else IBOX_WATCH_* bits (always DIRS
 * without a watch, and for an mbox). */
#define IBOX_WATCH_INDEX	1	/* the Maildir's index was replaced */
#define IBOX_WATCH_DIRS		2	/* anything else: an entry of new/ or cur/ */
int ibox_watch(struct imap_box *b);
int ibox_watch_drain(struct imap_box *b);
/* Drop what the next ibox_sync can rebuild: the back end's copy of the
 * index and the FETCH caches of msgs[] (an IDLE session of a
 * 10,000-message folder sits on megabytes of them otherwise).  The
 * caller must ibox_sync before it uses the box again. */
void ibox_release(struct imap_box *b);
/* Without a watch descriptor (no inotify instance left: the per-user
 * fs.inotify.max_user_instances, 128 by default, is shared by all of a
 * user's sessions): 1 if the stamps (mtime, ctime, size, inode) of
 * new/, cur/ and the index, or of the mbox file, moved since the last
 * call (or this is the first), else 0.  Three stat() calls, so an IDLE
 * session can look every second. */
int ibox_poll_changed(struct imap_box *b);
void ibox_close(struct imap_box *b);

void ibox_changes_free(struct ibox_changes *ch);

/* Sequence number (1-based) of the message with this UID in the view,
 * 0 if none (binary search: UIDs ascend). */
uint32_t ibox_seq_of_uid(const struct imap_box *b, uint32_t uid);

/* ---- folders that are not open ---- */

struct ibox_status {
	uint32_t messages, recent, unseen, deleted;
	uint32_t uidnext, uidvalidity;
	uint64_t highestmodseq;	/* 0 for NOMODSEQ */
	uint64_t size;		/* sum of RFC822.SIZE */
};

/* STATUS: counts without claiming \Recent or changing anything but the
 * index.  IBOX_OK, IBOX_NONEXIST, IBOX_INUSE, IBOX_ERR. */
int ibox_status(const char *path, int maildir, struct ibox_status *st, struct buf *err);

struct ibox_append {
	const char *data;	/* the message as the client sent it (CRLF) */
	size_t len;
	unsigned flags;		/* IMAP_FLAG_* */
	const char *keywords;	/* or NULL */
	int64_t idate;		/* INTERNALDATE; 0: now */
	int izone;
};

/* APPEND (and the copy step of COPY/MOVE): add n messages to the folder
 * at path, all or none, each durable before the call returns; uids[]
 * gets their UIDs and *uidvalidity the folder's (UIDPLUS APPENDUID).
 * Maildir: tmp/, fsync, link into cur/ (new/ when it has no flags),
 * index updated under its lock.  mbox: appended under local's locks with
 * X-UID/X-IMAPbase.  IBOX_OK, IBOX_NONEXIST, IBOX_INUSE, IBOX_OVERQUOTA,
 * IBOX_ERR. */
int ibox_append(const char *path, int maildir, const struct ibox_append *m, size_t n,
    uint32_t *uidvalidity, uint32_t *uids, struct buf *err);
/* COPY: msgs[idx[0..n)] of b into the folder at path (hard links for
 * Maildir to Maildir when possible), keeping flags and keywords, not
 * \Recent; uids[] gets the new UIDs in the same order.  Results as
 * ibox_append (IBOX_GONE when one of them was expunged meanwhile:
 * nothing copied). */
int ibox_copy(struct imap_box *b, const size_t *idx, size_t n, const char *path, int maildir,
    uint32_t *uidvalidity, uint32_t *uids, struct buf *err);

/* ---- the quota (lib/quota.h, imapd(8) QUOTA) ---- */

/* The session's quota root, the Maildir of INBOX, which holds every
 * folder of the user, and its limit; root NULL: no accounting (an mbox
 * INBOX).  APPEND and COPY into a Maildir then check the limit
 * (IBOX_OVERQUOTA) and, like EXPUNGE, keep ROOT/maildirsize right. */
void ibox_quota_init(const char *root, const struct quota_limit *q);
/* GETQUOTA: 1 usage and limit set, 0 the user has no quota, -1 error. */
int ibox_quota_get(struct quota_usage *u, struct quota_limit *q, struct buf *err);
/* While on, a copy is the first step of a MOVE inside the account:
 * usage does not grow, so it is not refused (a user over quota can
 * still move mail to Trash). */
void ibox_quota_moving(int on);
/* A folder was deleted: the next use recomputes. */
void ibox_quota_invalidate(void);

/* ---- for the back ends only ---- */

/* Messages of bytes on disk were removed from a Maildir folder. */
void ibox_quota_removed(long long bytes, long long n);

/* A sync found msgs[] entry m gone, at sequence number seq of the view
 * being built: tell it (EXPUNGE and VANISHED), count \Recent down and
 * free m. */
void ibox_gone(struct imap_box *b, struct ibox_msg *m, size_t seq, struct ibox_changes *ch);

/* imap_box_maildir.c (b->path, b->readonly set; fill the rest, set
 * b->ops and b->priv) */
int ibox_maildir_open(struct imap_box *b, struct buf *err);
int ibox_maildir_status(const char *path, struct ibox_status *st, struct buf *err);
int ibox_maildir_store_many(struct imap_box *b, const size_t *idx, const unsigned *flags,
    char *const *keywords, size_t n, int *res, struct buf *err);
void ibox_maildir_release(struct imap_box *b);
int ibox_maildir_append(const char *path, const struct ibox_append *m, size_t n,
    uint32_t *uidvalidity, uint32_t *uids, struct buf *err);
/* imap_box_mbox.c */
int ibox_mbox_open(struct imap_box *b, struct buf *err);
int ibox_mbox_status(const char *path, struct ibox_status *st, struct buf *err);
int ibox_mbox_append(const char *path, const struct ibox_append *m, size_t n,
    uint32_t *uidvalidity, uint32_t *uids, struct buf *err);

#endif
