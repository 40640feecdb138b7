/*
 * flow: in-flow control, after Postfix's in_flow_delay.  qmgr publishes
 * how many messages it holds in public/flow; a process that has just put
 * a message into maildrop/ (sendmail, postdrop) then waits, at most
 * in_flow_delay, while that count plus the maildrop/ backlog is above
 * in_flow_limit.  A flood of submissions thus slows to the rate at which
 * mail leaves the queue instead of growing the queue (and every
 * message's delivery time).  The message is already safe when the wait
 * starts: only the caller's exit is delayed.  A count that qmgr has not
 * refreshed for two seconds (qmgr stopped) is ignored.
 */
#ifndef HERMOD_FLOW_H
#define HERMOD_FLOW_H

/* qmgr: publish the number of messages it holds (cheap; call often). */
void flow_publish(long count);
/* sendmail/postdrop: wait as described above; returns the milliseconds
 * waited. */
long flow_wait(void);

#endif
