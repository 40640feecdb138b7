/*
 * qmgr: the queue manager (DESIGN.md "qmgr"; doc/qmgr.8, doc/queue.md).
 *
 * One process (process limit 1) with one poll() loop.  It listens on
 * private/qmgr for PROTO_QMGR_NEW (a queue ID that pickup, smtpd or
 * local just committed to active/) and PROTO_QMGR_FLUSH (retry deferred
 * mail now: all of it, or one ID).  A new ID is loaded and its delivery
 * requests are sent on the same turn of the loop: there is no polling
 * delay on the normal path.
 *
 * Because an announcement can be lost (qmgr restarting, a full socket
 * backlog), qmgr also scans the spool: at start active/ (removing an
 * active/ID that also exists in deferred/, see qmgr_queue.c), incoming/
 * (files older than a day were never acknowledged and are removed) and
 * the due part of deferred/; then active/ and incoming/ every
 * qmgr_rescan_interval, and deferred/ every queue_run_delay.  Messages
 * it deferred itself are also retried exactly when they are due.
 *
 * Clients of private/qmgr are trusted daemons, but a malformed message
 * only closes that connection.
 */
#include "qmgr.h"
#include "conf.h"
#include "flow.h"
#include "proto.h"
#include "service.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS		256
#define CLIENT_IDLE_MS		60000
#define CLIENT_BUF_MAX		65536
#define RESCAN_MIN_MS		1000	/* at most one rescan of active/ per second when full */
#define MAX_POLL		(1 + MAX_CLIENTS + 4096)

int64_t qmgr_now_ms;

static int rescan_wanted;
static int64_t last_rescan;

struct client {
	int fd;
	int64_t last;
	struct buf in;
};

static struct client clients[MAX_CLIENTS];
static size_t nclients;

void
qmgr_want_rescan(void)
{
	rescan_wanted = 1;
}

static void
client_close(size_t i)
{
	close(clients[i].fd);
	buf_free(&clients[i].in);
	clients[i] = clients[--nclients];
}

/* One request: 0 keep the client, -1 drop it. */
static int
client_msg(void *ctx, struct proto_msg *m)
{
	const char *id = proto_field(m, 0);

	(void)ctx;
	if (m->type == PROTO_QMGR_NEW && m->nfields == 1 && queue_id_valid(id)) {
		qmgr_load_later(id);
	} else if (m->type == PROTO_QMGR_FLUSH && m->nfields == 0) {
		msg_info("flush: retrying all deferred mail now");
		qmgr_scan_deferred(NULL, 0);
	} else if (m->type == PROTO_QMGR_FLUSH && m->nfields == 1 &&
	    (!*id || queue_id_valid(id))) {
		if (*id)
			msg_info("%s: flush: retrying now", id);
		else
			msg_info("flush: retrying all deferred mail now");
		qmgr_scan_deferred(*id ? id : NULL, 0);
	} else {
		msg_warn("malformed request on the qmgr socket (type %d, %zu fields): connection closed",
		    m->type, m->nfields);
		return -1;
	}
	return 0;
}

/* 0 keep the client, -1 drop it. */
static int
client_read(struct client *c)
{
	int r = proto_read_msgs(c->fd, &c->in, CLIENT_BUF_MAX, client_msg, NULL);

	if (r < 0 && errno == EPROTO)
		msg_warn("malformed message on the qmgr socket: connection closed");
	if (r > 0)
		c->last = qmgr_now_ms;
	return r < 0 ? -1 : 0;
}

static void
accept_clients(int lfd)
{
	while (nclients < MAX_CLIENTS) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				msg_warn("accept: %s", strerror(errno));
			return;
		}
		clients[nclients].fd = fd;
		clients[nclients].last = qmgr_now_ms;
		buf_init(&clients[nclients].in);
		/* the announcement is usually there already */
		if (client_read(&clients[nclients]) < 0) {
			close(fd);
			buf_free(&clients[nclients].in);
			continue;
		}
		nclients++;
	}
}

static int64_t
min_timeout(int64_t a, int64_t b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

int
main(int argc, char **argv)
{
	static struct pollfd pfd[MAX_POLL];
	int64_t next_active, next_deferred, rescan_ms, run_ms;
	long long v;
	int lfd;
	size_t i;

	sane_fds();
	service_init("qmgr", argc, argv);
	priv_drop_to_owner();
	if ((lfd = service_listen_fd()) < 0)
		msg_fatal("no listening socket: qmgr is started by hermod-master");
	if (chdir(conf_str("queue_directory")) < 0)
		msg_fatal("chdir %s: %s", conf_str("queue_directory"), strerror(errno));
	umask(077);
	if (set_nonblock(lfd, 1) < 0)
		msg_fatal("listening socket: %s", strerror(errno));
	v = conf_time("qmgr_rescan_interval");
	rescan_ms = (v > 0 ? v : 60) * 1000;
	v = conf_time("queue_run_delay");
	run_ms = (v > 0 ? v : 300) * 1000;
	qmgr_queue_init();
	qmgr_deliver_init();
	service_idle();

	qmgr_now_ms = mono_ms();
	qmgr_scan_incoming();
	qmgr_scan_active(1);
	qmgr_scan_deferred(NULL, 1);
	next_active = qmgr_now_ms + rescan_ms;
	next_deferred = qmgr_now_ms + run_ms;
	last_rescan = qmgr_now_ms;

	for (;;) {
		int64_t timeout, retry;
		size_t n, nc;
		int r;

		qmgr_now_ms = mono_ms();
		qmgr_load_pending();
		if (rescan_wanted && qmgr_active_count() < qmgr_active_limit() &&
		    qmgr_now_ms - last_rescan >= RESCAN_MIN_MS) {
			rescan_wanted = 0;
			last_rescan = qmgr_now_ms;
			qmgr_scan_active(0);
		}
		qmgr_run_retries();
		qmgr_dispatch();
		/* dispatching can finish messages whose notices must load */
		qmgr_load_pending();
		qmgr_dispatch();
		flow_publish((long)qmgr_active_count());

		timeout = min_timeout(next_active - qmgr_now_ms, next_deferred - qmgr_now_ms);
		timeout = min_timeout(timeout, qmgr_conn_timeout());
		if ((retry = qmgr_next_retry()) > 0) {
			int64_t d = (retry - time(NULL)) * 1000;

			timeout = min_timeout(timeout, d < 0 ? 0 : d + 5);
		}
		if (rescan_wanted)
			timeout = min_timeout(timeout, RESCAN_MIN_MS);
		for (i = 0; i < nclients; i++)
			timeout = min_timeout(timeout, clients[i].last + CLIENT_IDLE_MS - qmgr_now_ms);
		if (timeout < 0)
			timeout = 0;
		if (timeout > 3600000)
			timeout = 3600000;

		pfd[0].fd = lfd;
		pfd[0].events = nclients < MAX_CLIENTS ? POLLIN : 0;
		pfd[0].revents = 0;
		for (i = 0; i < nclients; i++) {
			pfd[1 + i].fd = clients[i].fd;
			pfd[1 + i].events = POLLIN;
			pfd[1 + i].revents = 0;
		}
		n = 1 + nclients;
		nc = qmgr_conn_pollfds(pfd + n, MAX_POLL - n);
		r = poll(pfd, n + nc, (int)timeout);
		if (r < 0 && errno != EINTR)
			msg_fatal("poll: %s", strerror(errno));
		qmgr_now_ms = mono_ms();
		if (r < 0)
			continue;

		/* agents first: their results free room for new mail */
		qmgr_conn_events(pfd + n, nc);
		for (i = nclients; i-- > 0; ) {
			if (pfd[1 + i].revents & (POLLIN | POLLHUP | POLLERR)) {
				if (client_read(&clients[i]) < 0)
					client_close(i);
			} else if (qmgr_now_ms - clients[i].last >= CLIENT_IDLE_MS)
				client_close(i);
		}
		if (pfd[0].revents & POLLIN)
			accept_clients(lfd);

		if (qmgr_now_ms >= next_active) {
			next_active = qmgr_now_ms + rescan_ms;
			last_rescan = qmgr_now_ms;
			rescan_wanted = 0;
			qmgr_scan_active(0);
			qmgr_scan_incoming();
		}
		if (qmgr_now_ms >= next_deferred) {
			next_deferred = qmgr_now_ms + run_ms;
			qmgr_scan_deferred(NULL, 1);
		}
	}
}
