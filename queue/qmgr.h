/*
 * qmgr.h: the private interface between the parts of qmgr.
 *
 *   qmgr.c          main, the poll loop, the qmgr socket, timers, spool scans
 *   qmgr_queue.c    messages in memory: loading, outcomes, bounces,
 *                   deferral and removal, the retry schedule
 *   qmgr_deliver.c  routing, transports, delivery agent connections
 *
 * Life of a message in qmgr: qmgr_load() reads active/ID and routes
 * every recipient that is not done into delivery requests; each request
 * is sent to an agent over a kept-open connection and answers with one
 * status per recipient; qmgr_rcpt_result() records each outcome (and
 * marks a delivered recipient done in the file at once), and
 * qmgr_delivered() the destinations local reports; when the last
 * request of the message is finished, qmgr_finish() sends the bounces
 * and notices, then removes the file or moves it to deferred/.
 */
#ifndef HERMOD_QMGR_H
#define HERMOD_QMGR_H

#include <stddef.h>
#include <stdint.h>
#include <poll.h>

#include "buf.h"
#include "queue_file.h"

/* Outcome of a recipient in this delivery attempt. */
#define RS_PENDING	0
#define RS_SENT		1
#define RS_DEFERRED	2
#define RS_BOUNCED	3

#define QMGR_TEXT_MAX	1000	/* longest status text kept */

struct rstate {
	unsigned char result;
	unsigned char marked;	/* its record is marked done in the file */
	unsigned char relayed;	/* sent to a next hop without DSN ("relayed: ") */
	unsigned char dup;	/* the same as an earlier recipient: no notice of its own */
	char dsn[16];
	char *text;
	const char *relay;
	int64_t when;		/* seconds */
};

struct qmsg {
	char id[QUEUE_ID_MAX];
	struct qf_envelope env;
	int fd;			/* active/ID, read-write */
	struct rstate *rs;	/* one per env.rcpt */
	size_t outstanding;	/* delivery requests not finished */
	int dirty;		/* done marks not yet fsynced */
	char **delivered;	/* destination digests local reported in this attempt */
	size_t ndelivered;
	int delivered_full;	/* more than QF_DELIVERED_MAX: the rest is not kept */
	struct qmsg *hnext;	/* hash chain */
};

struct transport;

/* qmgr.c */
extern int64_t qmgr_now_ms;		/* monotonic, updated every loop */
void qmgr_want_rescan(void);		/* active/ has files not in memory */

/* qmgr_queue.c */
void qmgr_queue_init(void);
size_t qmgr_active_count(void);
size_t qmgr_active_limit(void);
struct qmsg *qmgr_find(const char *id);
/* Read active/ID and start its delivery.  Returns 0 when handled (or
 * nothing to do), -1 when it must wait (memory full: rescan later). */
int qmgr_load(const char *id);
/* Queue an ID to load at the next turn of the loop (NEW, own bounces). */
void qmgr_load_later(const char *id);
void qmgr_load_pending(void);
/* Record the outcome of recipient i (text is cleaned here). */
void qmgr_rcpt_result(struct qmsg *m, size_t i, int result, const char *dsn,
    const char *text, const char *relay);
/* local delivered a destination (a QF_DIGEST_LEN digest) for m: kept
 * for the deferred file, so that a retry does not deliver it again. */
void qmgr_delivered(struct qmsg *m, const char *digest);
/* A request for m is finished (all its recipients have a result). */
void qmgr_request_done(struct qmsg *m);
/* The retry schedule of messages this qmgr deferred. */
int64_t qmgr_next_retry(void);		/* seconds, 0: none */
void qmgr_run_retries(void);
/* Move deferred/H/ID (one, or all when id is NULL) to active/ now, or
 * only those whose retry time has come when due_only is set. */
void qmgr_scan_deferred(const char *id, int due_only);
void qmgr_scan_active(int startup);
void qmgr_scan_incoming(void);

/* qmgr_deliver.c */
void qmgr_deliver_init(void);
/* Route the recipients of m that have no result yet into requests. */
void qmgr_route(struct qmsg *m);
/* Start whatever requests can start now. */
void qmgr_dispatch(void);
/* poll() support for the agent connections. */
size_t qmgr_conn_pollfds(struct pollfd *p, size_t max);
void qmgr_conn_events(struct pollfd *p, size_t n);
int64_t qmgr_conn_timeout(void);	/* ms until the next deadline, -1 none */
size_t qmgr_conn_count(void);

#endif
