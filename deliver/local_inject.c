/*
 * local_inject.c: forwarding by re-injection.  Addresses that an alias,
 * .forward or :include: sends elsewhere (and, for lists, members that
 * must be retried or bounced on their own) become the recipients of a
 * new queue file with the same content, written with the durability
 * rule (qf_new_open/qf_commit: incoming/, fsync, rename to active/,
 * fsync), and qmgr is told about it.  The original recipient is done
 * only once that file is safe.
 *
 * The new content starts with "Delivered-To: <the forwarding address>"
 * so that a message that comes back to the same address is recognised
 * as a loop (5.4.6) instead of circling forever; the envelope keeps the
 * sender (or owner-LIST), ENVID, RET, and the original recipient as
 * ORCPT.
 */
#include "local.h"
#include "conf.h"
#include "proto.h"
#include "util.h"

#include <errno.h>
#include <string.h>

static int
to_queue(void *ctx, const char *p, size_t n)
{
	struct qf_writer *w = ctx;

	qf_content_write(w, p, n);
	return w->error ? -1 : 0;
}

int
local_inject(struct lmsg *m, const char *sender, const char *delivered_to,
    char **rcpts, const char *orcpt, unsigned notify, char id[QUEUE_ID_MAX],
    struct lstatus *st)
{
	struct qf_new q;
	struct buf b = BUF_INIT;
	size_t i;

	if (qf_new_open(&q) < 0) {
		lstatus_set(st, LS_DEFER, "4.3.0", "cannot create a queue file to forward the message");
		return -1;
	}
	qf_put_time(&q.w, now_us());
	qf_put_str(&q.w, QREC_SENDER, sender);
	buf_printf(&b, "local forward of %s", m->id);
	qf_put_str(&q.w, QREC_CLIENT, buf_str(&b));
	if (m->env.envid)
		qf_put_str(&q.w, QREC_ENVID, m->env.envid);
	if (m->env.ret)
		qf_put_str(&q.w, QREC_RET, m->env.ret);
	for (i = 0; rcpts[i]; i++)
		qf_put_rcpt(&q.w, rcpts[i], orcpt, notify);
	qf_content_start(&q.w);
	buf_reset(&b);
	buf_printf(&b, "Delivered-To: %s\n", delivered_to);
	qf_content_write(&q.w, b.data, b.len);
	if (lmsg_copy(m, to_queue, &q.w) != 0 && !q.w.error)
		q.w.error = EIO;
	buf_free(&b);
	if (q.w.error) {
		msg_error("%s: writing the forwarded copy %s: %s", m->id, q.id, strerror(q.w.error));
		qf_new_abort(&q);
		lstatus_set(st, LS_DEFER, "4.3.0", "cannot write a queue file to forward the message");
		return -1;
	}
	memcpy(id, q.id, QUEUE_ID_MAX);
	if (qf_commit(&q) < 0) {
		lstatus_set(st, LS_DEFER, "4.3.0", "cannot commit a queue file to forward the message");
		return -1;
	}
	msg_info("%s: forwarded as %s", m->id, id);
	/* qmgr also rescans active/, so a failed wake-up only delays it */
	(void)proto_notify("private/qmgr", PROTO_QMGR_NEW, id);
	return 0;
}
