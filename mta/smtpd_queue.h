/*
 * smtpd_queue.h: smtpd's message store (smtpd_queue.c): queue files
 * written while the message arrives, committed by a worker thread in
 * batches under the durability rule.
 */
#ifndef HERMOD_SMTPD_QUEUE_H
#define HERMOD_SMTPD_QUEUE_H

#include <event2/event.h>

#include "smtpd.h"

struct smtpd_store;

/* Start the commit thread (daemon mode); without it commits are
 * synchronous (stdio mode).  0 ok, -1 errno. */
int smtpd_store_init(struct event_base *base);
struct smtpd_store *smtpd_store_new(void);
/* stdio mode for a caller who may not write the queue (sendmail -bs by
 * a user of a privileged instance): messages go into maildrop/ like
 * sendmail's, through postdrop, and pickup takes them from there.  The
 * id is then empty until the commit names the file (when it is known:
 * postdrop does not say). */
void smtpd_store_use_maildrop(struct smtpd_store *st);
void smtpd_store_free(struct smtpd_store *st);
/* New queue file with the session's envelope.  0 ok (id set), -1 logged. */
int smtpd_store_open(struct smtpd_store *st, struct smtpd_session *s, char id[QUEUE_ID_MAX]);
void smtpd_store_write(struct smtpd_store *st, const char *p, size_t n);
/* Commit; done(arg, ok, id) is called later from the event loop (or at
 * once without the thread).  The store is empty afterwards. */
void smtpd_store_commit(struct smtpd_store *st, int hold,
    void (*done)(void *arg, int ok, const char *id), void *arg);
void smtpd_store_abort(struct smtpd_store *st);

#endif
