/*
 * queue_file: the on-disk queue file format and queue IDs (DESIGN.md,
 * "The spool"; doc/queue.md has the full description).
 *
 * A queue file is a sequence of records: 1 type byte, a 4-byte
 * big-endian payload length, the payload.  It starts with a VERSION
 * record and ends with an END record; nothing may follow END.  A file
 * that does not parse completely is corrupt and is never half-trusted.
 * Envelope payloads never contain CR, LF or NUL (refused by the writer
 * and by the reader).  The message content follows the envelope as DATA
 * records (each at most QF_CHUNK bytes) with LF line endings.
 *
 * Recipients are RCPT records; when a recipient is done (delivered or
 * bounced) qmgr overwrites the type byte of its record in place with
 * QREC_RCPT_DONE and fsyncs, as Postfix does, so nothing is appended to
 * a finished file.
 *
 * The same format is used for files in maildrop/, written by sendmail
 * from untrusted input; pickup reads them with the same validating reader
 * and writes a fresh queue file.
 */
#ifndef HERMOD_QUEUE_FILE_H
#define HERMOD_QUEUE_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "buf.h"

#define QF_CHUNK		65536
#define QUEUE_ID_MAX		32	/* bytes including the NUL */

/* Record types. */
#define QREC_VERSION	'V'	/* "hermod-queue 1" */
#define QREC_TIME	'T'	/* arrival time, decimal microseconds since the epoch */
#define QREC_SENDER	'S'	/* envelope sender, "" for <> */
#define QREC_FULLNAME	'F'	/* sender full name (sendmail -F) */
#define QREC_CLIENT	'C'	/* where it came from: "local uid=N user=NAME" or "smtp ..." */
#define QREC_ENVID	'E'	/* DSN ENVID (xtext-decoded) */
#define QREC_RET	'N'	/* DSN RET: "FULL" or "HDRS" */
#define QREC_ATTR	'A'	/* "name=value" extra attribute */
#define QREC_RCPT	'R'	/* recipient: addr NUL orcpt NUL notify(decimal) */
#define QREC_RCPT_DONE	'r'	/* a recipient record that is finished */
#define QREC_DEFER	'W'	/* last temporary error: offset-of-rcpt NUL dsn NUL text (deferred files) */
#define QREC_RETRY	'Y'	/* attempts NUL next-retry-time (seconds), deferred files */
#define QREC_WARNED	'w'	/* a delay warning was sent */
#define QREC_CONTENT	'M'	/* start of content (empty payload); DATA records follow */
#define QREC_DATA	'D'	/* a chunk of message content */
#define QREC_END	'Z'	/* end of file, payload "end" */

/* DSN NOTIFY flags (RFC 3461). 0 means not given (default: FAILURE). */
#define DSN_NOTIFY_NEVER	0x01
#define DSN_NOTIFY_SUCCESS	0x02
#define DSN_NOTIFY_FAILURE	0x04
#define DSN_NOTIFY_DELAY	0x08

struct qf_rcpt {
	char *addr;
	char *orcpt;		/* "" when not given */
	unsigned notify;
	off_t offset;		/* of its record, for qf_mark_done */
	int done;
	char *defer_dsn;	/* last temporary error, or NULL */
	char *defer_text;
};

struct qf_envelope {
	int64_t arrival_us;
	char *sender;
	char *fullname;		/* may be NULL */
	char *client;		/* may be NULL */
	char *envid;		/* may be NULL */
	char *ret;		/* may be NULL */
	char **attrs;		/* NULL-terminated "name=value" */
	struct qf_rcpt *rcpt;
	size_t nrcpt;
	int attempts;
	int64_t next_retry;	/* seconds since the epoch; 0: now */
	int warned;
	off_t content_offset;	/* offset of the first DATA record */
	off_t content_size;	/* bytes of content */
	off_t file_size;
};

void qf_envelope_free(struct qf_envelope *env);

/* Read and validate a whole queue file (every record up to and including
 * END, content included, so that a torn file is always detected).
 * 0 ok; -1 corrupt or unreadable with the reason in err. */
int qf_read(int fd, struct qf_envelope *env, struct buf *err);
/* The same on a memory image (used by the fuzz harness and tests). */
int qf_parse(const char *data, size_t len, struct qf_envelope *env, struct buf *err);

/* Stream the message content to cb in pieces; cb returns 0 to go on,
 * non-zero to stop (returned).  -1 on a read error. */
int qf_content(int fd, const struct qf_envelope *env,
    int (*cb)(void *ctx, const char *p, size_t n), void *ctx);

/* The first max bytes of the content (all of it when shorter) into out,
 * replacing what it held.  0 ok, -1 on a read error. */
int qf_content_head(int fd, const struct qf_envelope *env, size_t max, struct buf *out);

/* Writer: buffered, refuses CR/LF/NUL in envelope records. */
struct qf_writer {
	int fd;
	int error;		/* errno of the first failure, or EINVAL for bad data */
	struct buf out;
	off_t offset;		/* bytes handed to the kernel so far */
	off_t content_size;
	int in_content;
	size_t data_open;	/* 1 + position in out of the open DATA record, 0: none */
};
void qf_writer_init(struct qf_writer *w, int fd);	/* writes VERSION */
void qf_put(struct qf_writer *w, int type, const char *p, size_t n);
void qf_put_str(struct qf_writer *w, int type, const char *s);
void qf_put_rcpt(struct qf_writer *w, const char *addr, const char *orcpt, unsigned notify);
void qf_put_time(struct qf_writer *w, int64_t arrival_us);
/* Content: start, then any number of writes (split into DATA records of
 * at most QF_CHUNK bytes); readers sum the DATA records. */
void qf_content_start(struct qf_writer *w);
void qf_content_write(struct qf_writer *w, const char *p, size_t n);
/* Flush and write END.  0 ok, -1 with errno (the file must be discarded).
 * Does not fsync: the caller fsyncs before rename (the durability rule). */
int qf_finish(struct qf_writer *w);
void qf_writer_free(struct qf_writer *w);

/* Mark the recipient whose record is at offset as done (in place). The
 * caller fsyncs (once for several). 0 ok, -1 errno. */
int qf_mark_done(int fd, off_t offset);

/* A new queue ID: unique on this spool, sortable by arrival time, only
 * [0-9A-Za-z], shorter than QUEUE_ID_MAX.  ino is the inode of the file
 * being created (or 0), which makes IDs unique across processes. */
void queue_id_new(char out[QUEUE_ID_MAX], ino_t ino);
/* 1 if s is a well-formed queue ID (safe as a file name). */
int queue_id_valid(const char *s);
/* Relative path of a queue file: "active/ID", "deferred/H/ID" (H is a
 * one-character hash subfolder), "hold/ID", "incoming/ID", "corrupt/ID". */
void queue_path(struct buf *out, const char *queue, const char *id);

/*
 * Committing a new queue file, the durability rule in one call:
 * create incoming/ID (mode 0600), let the caller write it, then
 * qf_commit() flushes, fsyncs, renames into active/ and fsyncs active/.
 */
struct qf_new {
	char id[QUEUE_ID_MAX];
	int fd;
	struct qf_writer w;
	struct buf incoming;	/* absolute path */
	struct buf active;	/* absolute path */
};
int qf_new_open(struct qf_new *q);	/* 0 ok, -1 (logged) */
int qf_commit(struct qf_new *q);	/* 0 ok, -1 (logged; file removed) */
void qf_new_abort(struct qf_new *q);	/* remove and free */

/*
 * Additions (helper "queue").
 */

/* Format limits: the reader refuses a file beyond any of them, the
 * writer refuses to write such a record (error EINVAL). */
#define QF_VERSION_STRING	"hermod-queue 1"
#define QF_MAX_RCPT		100000	/* RCPT + RCPT_DONE records */
#define QF_MAX_ATTR		1000
#define QF_ADDR_MAX		4096	/* sender, recipient, ORCPT */
#define QF_TEXT_MAX		4096	/* full name, client, ENVID, attribute, error text */
#define QF_ENVELOPE_MAX		(32 * 1024 * 1024)	/* all envelope records together */
#define QF_CONTENT_MAX		((off_t)1 << 40)

/* qf_read and qf_parse set errno to EBADMSG when the file is corrupt
 * (move it to corrupt/); any other errno is an I/O error (try later). */

/* Offset at which the next record will start (for QREC_DEFER). */
off_t qf_tell(const struct qf_writer *w);
/* QREC_DEFER for the recipient whose record starts at rcpt_offset. */
void qf_put_defer(struct qf_writer *w, off_t rcpt_offset, const char *dsn, const char *text);
/* QREC_RETRY: attempts so far and the next retry time (seconds). */
void qf_put_retry(struct qf_writer *w, int attempts, int64_t next_retry);
/* 1 if s is an RFC 3463 status code "C.S.D" with C in 2, 4, 5 and S and
 * D of 1 to 3 digits. */
int qf_dsn_valid(const char *s);

/*
 * Duplicate recipients (doc/queue.md, "Duplicate recipients").  Two
 * recipients of one message are the same one when their keys are
 * equal: the domain is compared without case, the local part exactly (RFC 5321 section 2.4: it belongs to the
 * domain's own server) unless the domain is one whose mailboxes hermod
 * decides -- no domain at all, or one of local_domains (mydestination,
 * NULL for none) -- where local parts are looked up without ASCII case
 * and so compared without it.  Quoting does not matter ("a"@b is a@b).
 * The key is allocated; an address that does not parse is its own key.
 */
char *qf_rcpt_key(const char *addr, char *const *local_domains);

/*
 * Destinations already delivered (doc/queue.md, "Duplicate recipients").
 * When a message is deferred, qmgr keeps in the new file what local
 * reported delivered in the attempts so far -- final destinations
 * (mailbox, Maildir, file, command with its uid, forwarded address), as
 * SHA-256 digests in lower-case hex -- as ATTR records
 * "delivered=DIGEST", at most QF_DELIVERED_MAX of them; local does not
 * deliver to those again on a retry.  Only qmgr writes them: pickup
 * and local_inject never copy them from elsewhere.
 */
#define QF_ATTR_DELIVERED	"delivered="
#define QF_DELIVERED_MAX	900	/* leaves room in QF_MAX_ATTR */
#define QF_DIGEST_LEN		64
/* 1 if s is QF_DIGEST_LEN lower-case hex digits. */
int qf_digest_valid(const char *s);

/* Group commit: qf_commit for n files with a single fsync of active/.
 * result[i] is 0 when file i is safely in active/, -1 (logged, removed)
 * when not.  Returns the number of failures.  After qf_commit or
 * qf_commit_many only q->id remains meaningful (everything is freed). */
int qf_commit_many(struct qf_new *q, size_t n, int *result);
/*
 * The same, calling renamed(ctx, q, n, result) once when the files are
 * fsynced and renamed into active/ but before active/ itself is fsynced,
 * so that a caller can announce them to qmgr while that fsync runs.  An
 * announced file is complete and fsynced; only its name may not survive a
 * crash yet, which is why the caller still keeps its own copy (the
 * maildrop file) until this returns 0 for it: a crash can then cause a
 * duplicate delivery, never a loss.  If the final fsync fails the file
 * is removed from active/ and result[i] becomes -1 as usual.
 */
int qf_commit_many_early(struct qf_new *q, size_t n, int *result,
    void (*renamed)(void *ctx, struct qf_new *q, size_t n, const int *result), void *ctx);

#endif
