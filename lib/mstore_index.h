/*
 * mstore_index: the IMAP UID state of one Maildir folder (issue 10), kept
 * in FOLDER/hermod-uidlist as a cache that can always be rebuilt: the
 * messages and their flags are the files of new/ and cur/ (flags in the
 * ":2," suffix of the name), the index only adds what a file name cannot
 * hold: UIDVALIDITY, UIDNEXT, each message's UID and MODSEQ, keywords.
 * The format, the rebuild rules and the locking are in doc/mstore-index.md.
 *
 * Invariants: UIDs ascending in msgs[], never given twice under one
 * UIDVALIDITY (UIDNEXT only grows); MODSEQs at most HIGHESTMODSEQ, which
 * grows with every change; the file is replaced only by an atomic rename,
 * under an fcntl write lock on FOLDER/hermod-uidlist.lock.
 */
#ifndef HERMOD_MSTORE_INDEX_H
#define HERMOD_MSTORE_INDEX_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

#define MIDX_FILE		"hermod-uidlist"
#define MIDX_LOCK		"hermod-uidlist.lock"
#define MIDX_STAMP_FILE		"hermod-uidlist.stamp"
#define MIDX_LOG_FILE		"hermod-uidlist.log"
/* the change log is folded into a new file when it grows past both */
#define MIDX_LOG_MIN		(64L * 1024)
#define MIDX_LOG_SHARE		2		/* ... and past the file's size / this */
#define MIDX_MAX_LINE		4096		/* bytes of one line, LF included */
#define MIDX_MAX_MSGS		1000000		/* entries kept from a file */
#define MIDX_MAX_FILE		(128L * 1024 * 1024)
#define MIDX_MAX_BASE		255		/* bytes of a BASENAME */
#define MIDX_MAX_KEYWORD	64		/* bytes of one keyword */
#define MIDX_MAX_KEYWORDS	64		/* keywords of one message */
#define MIDX_MAX_NAME_REST	255		/* bytes of a file name after its BASENAME */
/* MODSEQs read from the file: far below 2^63 (RFC 7162), so that
 * counting up from a hostile value cannot overflow */
#define MIDX_MAX_MODSEQ		(1ULL << 62)

/* Maildir flags (the ":2," letters) as bits. */
#define MIDX_DRAFT	0x01	/* D: \Draft */
#define MIDX_FLAGGED	0x02	/* F: \Flagged */
#define MIDX_PASSED	0x04	/* P: passed (forwarded), no IMAP flag */
#define MIDX_REPLIED	0x08	/* R: \Answered */
#define MIDX_SEEN	0x10	/* S: \Seen */
#define MIDX_TRASHED	0x20	/* T: \Deleted */
#define MIDX_ALL	0x3f

struct mstore_index_msg {
	uint32_t uid;
	uint64_t modseq;
	char *base;		/* the file name up to its first ',' or ':' */
	char *name;		/* "new/FILE" or "cur/FILE"; from the parser only with N: */
	unsigned flags;		/* MIDX_* from the name (parser: the F: field) */
	char *keywords;		/* "kw1,kw2" or NULL */
};

struct mstore_index {
	char *path;		/* the folder, as given */
	int dirfd;
	int lockfd;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	struct mstore_index_msg *msgs;	/* UID ascending */
	size_t n;
	uint32_t *expunged;	/* UIDs found gone by the last sync, ascending */
	size_t nexpunged;
	int rebuilt;		/* the last sync had to rebuild the file */
	/* what the last full sync saw of new/, cur/ and the file (see
	 * sync_locked: a sync with the same stamps has nothing to do) */
	struct midx_stamp {
		struct timespec mtim, ctim;
		unsigned long long ino, size;
	} stamp[3];
	int stamp_ok;
	/* the file as this handle last read or wrote it: when it is still
	 * so, msgs[] is its content and a sync need not parse it again */
	struct midx_stamp file_stamp;
	int file_ok;
	/* the last sync found the folder as hermod-uidlist.stamp describes
	 * it, or described it itself; as of a listing at `listed' */
	int described;
	long long listed;
	int force_list;		/* the next sync lists the folder */
	/* the change log (hermod-uidlist.log): a change of a few messages
	 * appends their entries to it instead of writing the file again, so
	 * that the other sessions read only what changed.  msgs[] is the
	 * file as file_stamp says and the log's batches up to log_off. */
	long long log_off;
	unsigned long long log_ino;
	int log_bad;		/* unusable after log_off: the next change writes the file */
	struct buf pending;	/* the log records of a change being made */
};

/* One change of mstore_index_change. */
struct mstore_index_change {
	uint32_t uid;
	unsigned flags;		/* MIDX_* bits: the whole new set */
	int set_keywords;	/* also replace the keywords with: */
	const char *keywords;	/* "kw1,kw2", "" or NULL for none */
	int result;		/* out: 0 done, 1 no such UID */
};

/* What mstore_index_parse found. */
#define MIDX_PARSE_OK		0	/* consistent: taken as is */
#define MIDX_PARSE_SALVAGED	1	/* header good, bad entries dropped */
#define MIDX_PARSE_BAD		2	/* header unusable: nothing kept */

/* Open the Maildir folder at path (tmp/, new/, cur/ are created if
 * missing) and sync it.  0 ok, -1 with the reason in err; close either way. */
int mstore_index_open(struct mstore_index *ix, const char *path, struct buf *err);
/* Under the lock: re-read the file, rescan new/ and cur/, give UIDs to
 * new files (arrival order), drop entries whose file is gone (their UIDs
 * in ix->expunged), write the file back if anything changed.  The caller
 * must compare ix->uidvalidity with what it had before: when it changed,
 * every UID it knew is void.  0 ok, -1 err. */
int mstore_index_sync(struct mstore_index *ix, struct buf *err);
/* Every program of ours that adds, removes or renames files in new/ or
 * cur/ without the index (local, popd, APPEND, EXPUNGE) calls this after
 * the change: it removes the description (hermod-uidlist.stamp), so that
 * the next sync of every process lists the folder.  (A directory's stamp
 * would show the change too, but not one made in the same clock tick as
 * the description.)  folder: the Maildir, with or without a final '/'. */
void mstore_index_undescribe(const char *folder);
/* A sync that lists new/ and cur/ whatever the stamps say: for a file
 * name that turned out wrong (renamed by a program that takes no lock). */
int mstore_index_sync_listed(struct mstore_index *ix, struct buf *err);
/* The same under the write lock from the start, for a change of our
 * own to new/ or cur/ made outside the index (APPEND, EXPUNGE): one
 * listing, and the folder described again before any other sync. */
int mstore_index_sync_changed(struct mstore_index *ix, struct buf *err);
/* The message with this UID, or NULL (binary search). */
struct mstore_index_msg *mstore_index_find(struct mstore_index *ix, uint32_t uid);
/* Give message uid the Maildir flags `flags' (MIDX_* bits, the whole new
 * set; other letters of the name are kept): sync, rename the file into
 * cur/ with the new suffix, bump its MODSEQ, write the index.  0 ok, 1 no
 * such UID (expunged), -1 err. */
int mstore_index_set_flags(struct mstore_index *ix, uint32_t uid, unsigned flags,
    struct buf *err);
/* Replace the keywords of message uid ("kw1,kw2", "" or NULL for none):
 * 0 ok, 1 no such UID, -1 err (a bad keyword list included). */
int mstore_index_set_keywords(struct mstore_index *ix, uint32_t uid,
    const char *keywords, struct buf *err);
/* Several changes under one lock, one sync and one write of the file
 * (STORE of a range): each change's result is set; 0 ok, -1 err (a bad
 * keyword list included, then nothing is changed). */
int mstore_index_change(struct mstore_index *ix, struct mstore_index_change *c, size_t n,
    struct buf *err);
/*
 * A change of the folder's files by the caller (APPEND, EXPUNGE), made
 * under the write lock so that the other sessions need no listing to see
 * it: begin takes the lock and syncs (0 ok, -1 err, and then no lock is
 * held); the caller then moves its files into new/ or cur/ and tells
 * each with mstore_index_add (0 with *uid, -1 a name the index cannot
 * hold: the next listing finds the file), or removes files and tells
 * mstore_index_drop; commit writes the change (the log, or the file when
 * the log is full), describes the folder again and unlocks, whatever it
 * returns (0 ok, -1 err).
 */
int mstore_index_begin(struct mstore_index *ix, struct buf *err);
int mstore_index_add(struct mstore_index *ix, const char *name, const char *keywords,
    uint32_t *uid);
void mstore_index_drop(struct mstore_index *ix, uint32_t uid);
int mstore_index_commit(struct mstore_index *ix, struct buf *err);
/*
 * The records of change-log batches (what follows the log's header) on
 * ix: each batch ("+ ENTRY" and "- UID" lines, then "C UIDNEXT
 * HIGHESTMODSEQ") is checked whole and then applied, so that a batch
 * torn by a crash is never half taken.  *used: the bytes of the batches
 * applied.  0: all complete batches applied; -1: a malformed one, where
 * *used stops.  UIDs removed go to ix->expunged.  (Public for the fuzz
 * harness.)
 */
int mstore_index_apply_log(struct mstore_index *ix, const char *p, size_t n, size_t *used);
void mstore_index_close(struct mstore_index *ix);

/* "DFRS" <-> bits, and the letter string for bits (out gets at most 6). */
unsigned mstore_index_flags_parse(const char *letters);
void mstore_index_flags_str(unsigned flags, struct buf *out);
/* 1 if s is a valid keyword list: 1..MIDX_MAX_KEYWORDS IMAP atoms of at
 * most MIDX_MAX_KEYWORD bytes, not starting with '\', separated by ','. */
int mstore_index_keywords_valid(const char *s);

/* For the sync and the fuzzer: parse file content (p, n) into ix's
 * uidvalidity, uidnext, highestmodseq, msgs and n (which must be empty).
 * MIDX_PARSE_BAD sets uidvalidity to the header's value when that much
 * was readable, else 0.  mstore_index_format writes what would be
 * stored, which parses back MIDX_PARSE_OK to the same bytes. */
int mstore_index_parse(struct mstore_index *ix, const char *p, size_t n);
void mstore_index_format(const struct mstore_index *ix, struct buf *out);
/* For the sync and the fuzzer: the description file's content (one line
 * "S1 LISTED TRUSTED" and three stamps): 0 with st[3], *listed and
 * *trusted (0 or 1) filled, -1 not one. */
int mstore_index_parse_description(const char *p, size_t n, struct midx_stamp *st, long long *listed,
    int *trusted);
/* Free msgs and expunged, keeping the folder open. */
void mstore_index_clear(struct mstore_index *ix);

#endif
