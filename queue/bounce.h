/*
 * bounce: RFC 3464 delivery status notifications (multipart/report;
 * report-type=delivery-status) for failed, delayed and delivered
 * recipients, and their injection into the queue as new mail from <>.
 * Used by qmgr (bounces, delay warnings, NOTIFY=SUCCESS notices) and by
 * pickup (messages refused at pickup).
 */
#ifndef HERMOD_BOUNCE_H
#define HERMOD_BOUNCE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "queue_file.h"

enum bounce_action {
	BOUNCE_FAILED,		/* Action: failed (non-delivery report) */
	BOUNCE_DELAYED,		/* Action: delayed (delay warning) */
	BOUNCE_DELIVERED,	/* Action: delivered (NOTIFY=SUCCESS) */
	BOUNCE_RELAYED		/* Action: relayed (NOTIFY=SUCCESS, next hop without DSN) */
};

struct bounce_rcpt {
	const char *addr;
	const char *orcpt;	/* "" or NULL when not given */
	const char *dsn;	/* RFC 3463 code, e.g. "5.1.1" */
	const char *text;	/* diagnostic text */
	int64_t last_attempt;	/* seconds since the epoch */
};

struct bounce_msg {
	enum bounce_action action;
	const char *queue_id;	/* of the original message */
	const char *dsn_id;	/* the notice's own queue ID (for Message-ID) */
	const char *sender;	/* the original envelope sender (To: of the notice) */
	const char *envid;	/* DSN ENVID of the original, or NULL */
	int ret_hdrs;		/* RET=HDRS: return the header only */
	int64_t arrival_us;	/* of the original */
	int64_t now;		/* seconds */
	int64_t retry_until;	/* BOUNCE_DELAYED: when delivery attempts end */
	const char *hostname;	/* myhostname */
	const char *mail_name;	/* mail_name */
	const struct bounce_rcpt *rcpt;
	size_t nrcpt;
	const char *content;	/* the start of the original content ... */
	size_t content_len;	/* ... at least min(size, size_limit + 1) bytes of it */
	off_t content_size;	/* the size of the whole original content */
	size_t size_limit;	/* bounce_size_limit */
};

/* Compose the notice (header and body, LF line ends) into out. */
void bounce_compose(struct buf *out, const struct bounce_msg *b);

/* Read the start of a queue file's content (at most limit + 1 bytes)
 * into out, for bounce_msg.content.  0 ok, -1 read error. */
int bounce_read_content(int fd, const struct qf_envelope *env, size_t limit, struct buf *out);

/* Write the notice as a new queue file (sender <>, one recipient: the
 * original sender, NOTIFY=NEVER) and commit it.  b->dsn_id is set to
 * the new ID, which is also copied to id.  0 ok, -1 (logged). */
int bounce_queue(struct bounce_msg *b, char id[QUEUE_ID_MAX]);

#endif
