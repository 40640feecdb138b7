/*
 * local.h: private interface between the parts of the local delivery
 * agent (deliver/local*.c); nothing outside deliver/ includes it.
 *
 *   local.c          the service: requests, per-recipient policy, statuses
 *   local_resolve.c  recipient -> leaves (aliases, virtual users, system
 *                    users, .forward, :include:)
 *   local_deliver.c  mailbox, Maildir and file leaves, with the privilege
 *                    switch (a child per delivery in a privileged instance)
 *   local_command.c  |command leaves
 *   local_inject.c   re-injection of forwarded addresses as a new queue file
 */
#ifndef HERMOD_LOCAL_H
#define HERMOD_LOCAL_H

#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "quota.h"
#include "mbox.h"
#include "queue_file.h"

#define LS_SENT		0
#define LS_DEFER	1
#define LS_BOUNCE	2

/* Content kept in memory up to this size; larger messages are streamed
 * from the queue file for every delivery. */
#define LOCAL_MEM_MAX	(16 * 1024 * 1024)

/* Longest status text: it must fit a queue file DEFER record (qmgr keeps
 * it) with room to spare. */
#define LOCAL_TEXT_MAX	(QF_TEXT_MAX - 200)

struct lstatus {
	int status;
	char dsn[16];
	struct buf text;	/* no CR, LF or NUL */
};

void lstatus_init(struct lstatus *s);
void lstatus_free(struct lstatus *s);
void lstatus_set(struct lstatus *s, int status, const char *dsn, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void lstatus_copy(struct lstatus *to, const struct lstatus *from);
/* "sent" / "deferred" / "bounced" */
const char *lstatus_word(int status);
/* Map an errno from a mailbox write to a status (all temporary). */
void lstatus_from_errno(struct lstatus *s, int e, const char *text);

/* One message: the request's queue file. */
struct lmsg {
	const char *id;
	const char *sender;	/* from the request; "" is the null sender */
	int fd;			/* queue file, read-only */
	struct qf_envelope env;
	struct buf content;	/* the whole content when in_memory */
	int in_memory;
	char **delivered_to;	/* lower-cased Delivered-To: addresses */
	size_t hops;		/* Received: + Delivered-To: fields */
	char **rcpt_keys;	/* qf_rcpt_key of every recipient in the file, sorted
				 * (made when first needed) */
	size_t nrcpt_keys;
};

/* Stream the content (in memory or from the queue file) to sink. */
int lmsg_copy(void *ctx, mail_sink_fn sink, void *sctx);

/* Whose privileges a leaf runs with (privileged instance only). */
struct lprivs {
	int set;		/* 0: as local itself (rootless, or a root mailbox) */
	uid_t uid;
	gid_t gid;
	char *user;		/* for initgroups, USER, LOGNAME */
	char *home;		/* HOME, the command's directory */
};

enum leaf_kind {
	LEAF_MAILDIR,		/* target: Maildir path (ends in /) */
	LEAF_MBOX,		/* target: mbox path */
	LEAF_FILE,		/* target: file from /path (mbox format) */
	LEAF_DEVNULL,		/* /dev/null: nothing to write */
	LEAF_COMMAND,		/* target: the shell command */
	LEAF_REMOTE,		/* target: an address to forward to */
	LEAF_FAIL		/* fail: why */
};

struct leaf {
	enum leaf_kind kind;
	char *addr;		/* for Delivered-To: and to=<> in the log */
	char *target;
	char *sender;		/* envelope sender for this leaf */
	struct lprivs pv;
	int spool;		/* mbox in mail_spool_directory */
	uid_t owner;		/* required owner of the mbox, (uid_t)-1 any */
	/* a user's own Maildir: its quota (lib/quota.h), kept in target */
	int quota_set;
	struct quota_limit quota;
	/* command environment */
	char *env_rcpt, *env_local, *env_ext, *env_domain;
	struct lstatus fail;
	int reinject;		/* a failure that names an address: may be re-queued */
};

struct leaves {
	struct leaf *v;
	size_t n;
};

void leaf_free(struct leaf *lf);
void leaves_free(struct leaves *l);

/* local_resolve.c: the destination of a leaf for the duplicate filter
 * of local.c (kind, target and privileges; a remote address with its
 * domain's case folded), allocated; NULL for a failure that stays here
 * (each recipient reports its own). */
char *leaf_dest_key(const struct leaf *lf);
/* local_resolve.c: expand one recipient.  Leaves are appended to out. */
void local_resolve(struct lmsg *m, const char *rcpt, struct leaves *out);
/* Reopen alias maps rebuilt since the last request. */
void local_maps_refresh(void);

/* local_deliver.c: a mailbox, Maildir, file or /dev/null leaf. */
void local_deliver_store(struct lmsg *m, struct leaf *lf, struct lstatus *st);
/* The header fields prepended at delivery (Return-Path, Delivered-To). */
void local_prefix(struct buf *out, const char *sender, const char *addr);

/* Switch for good to pv's uid, gid and supplementary groups (looked up
 * by local_priv_prepare in the parent before fork, cached).  Refuses uid
 * 0 and checks that root cannot be regained.  0 ok, -1 errno. */
int local_priv_prepare(const struct lprivs *pv);
int local_priv_drop(const struct lprivs *pv);

/* local_command.c: a |command leaf. */
void local_deliver_command(struct lmsg *m, struct leaf *lf, struct lstatus *st);

/* local_inject.c: queue a new message with the same content for rcpts.
 * delivered_to is prepended as a Delivered-To: field.  0 ok (id set),
 * -1 with st set to a temporary failure. */
int local_inject(struct lmsg *m, const char *sender, const char *delivered_to,
    char **rcpts, const char *orcpt, unsigned notify, char id[QUEUE_ID_MAX],
    struct lstatus *st);

/* Sanitize text for a status (no control characters), appending to out. */
void local_clean_text(struct buf *out, const char *p, size_t n);

#endif
