/*
 * quota: per-user mailbox quotas, kept the Maildir++ way (the
 * "maildirsize" file of Courier, read and written the same way by
 * Dovecot's maildir quota), so that a Maildir moved between hermod and
 * those servers keeps its accounting.
 *
 * The limit of a user comes from authd's answer (imapd, popd) or from
 * quota_lookup (local, authd): the first of $mailbox_quota_maps that
 * has the user's name ("NAME STORAGE [MESSAGES]", "none" or 0 for no
 * limit), else $mailbox_quota and $mailbox_quota_messages.
 *
 * ROOT/maildirsize (ROOT is the Maildir of INBOX, its Maildir++
 * folders are counted with it): the first line is the limit it was
 * computed for ("1000000S,1000C"), every further line a change "BYTES
 * COUNT" (negative for removals), appended with one write(2) by
 * whoever changed the mailbox.  The file is a cache of what the folders
 * hold: it is recomputed from the folders (the S= of each name, else
 * the file's size) when it is missing, unreadable, longer than 5120
 * bytes, made for another limit, or says the user is over quota and is
 * older than 15 minutes (mail removed by a program that does not
 * update it).  Nothing else depends on it; deleting it loses nothing.
 */
#ifndef HERMOD_QUOTA_H
#define HERMOD_QUOTA_H

#include "buf.h"

struct quota_limit {
	long long bytes;	/* 0: no limit */
	long long messages;	/* 0: no limit */
};

struct quota_usage {
	long long bytes;
	long long messages;
};

/* The limit of user NAME.  0 ok, -1 a map could not be read or holds a
 * malformed value (logged: the caller defers rather than lifting the
 * limit). */
int quota_lookup(const char *name, struct quota_limit *q);
/* "STORAGE [MESSAGES]" (sizes as in hermod.conf, "none" or 0: none).
 * 0 ok, -1 malformed. */
int quota_parse(const char *s, struct quota_limit *q);
/* 1 if q limits anything. */
int quota_limited(const struct quota_limit *q);

/* What the mailbox rooted at root (ends in '/') holds, recomputed when
 * maildirsize cannot be trusted.  0 ok, -1 error (message in err). */
int quota_usage(const char *root, const struct quota_limit *q, struct quota_usage *u,
    struct buf *err);
/* 1 if bytes and msgs more fit within q (always when q limits
 * nothing), 0 if not, -1 error (message in err).  u (may be NULL)
 * gets the usage the answer was made from. */
int quota_room(const char *root, const struct quota_limit *q, long long bytes,
    long long msgs, struct quota_usage *u, struct buf *err);
/* The sums of a maildirsize file's data for limit q: 1 usable (u set),
 * 0 it must be recomputed (made for another limit, garbled, too long,
 * a negative total). */
int quota_parse_file(const char *data, size_t len, const struct quota_limit *q,
    struct quota_usage *u);
/* "9552 of 20480 bytes, 8 of 8 messages in use" (only what q limits),
 * for logs and bounces. */
void quota_describe(const struct quota_limit *q, const struct quota_usage *u, struct buf *out);
/* Tell maildirsize of a change (negative: removed).  Does nothing when
 * the file does not exist (the next reader recomputes); failures are
 * logged, never fatal: the file is only a cache. */
void quota_add(const char *root, long long bytes, long long msgs);
/* Make the next reader recompute (a folder was deleted). */
void quota_invalidate(const char *root);
/* The on-disk size of a Maildir message from its name's ",S=", -1 if
 * it has none. */
long long quota_name_size(const char *name);

#endif
