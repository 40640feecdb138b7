/*
 * showq.c: the daemon on public/showq that lists the queue for users
 * who cannot read the spool (mailq through postdrop -p).
 *
 * A client sends one PROTO_OK record whose first field is "text" or
 * "json"; showq writes the qlist rendering (lib/qlist.h) and closes.
 * The socket is reachable by local users, so a client that sends
 * anything else, or nothing within SHOWQ_TIMEOUT seconds, is dropped
 * with a log line and never affects the daemon.  Runs as mail_owner.
 */
#include "conf.h"
#include "log.h"
#include "proto.h"
#include "qlist.h"
#include "service.h"
#include "util.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define SHOWQ_TIMEOUT	10

static void
showq_client(int fd, void *ctx)
{
	struct proto_msg m;
	struct buf out = BUF_INIT, err = BUF_INIT;
	struct timeval tv = { SHOWQ_TIMEOUT, 0 };
	int json = 0;

	(void)ctx;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	tv.tv_sec = 60;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	proto_msg_init(&m);
	if (proto_recv(fd, &m) != 1 || m.type != PROTO_OK ||
	    (strcmp(proto_field(&m, 0), "text") && strcmp(proto_field(&m, 0), "json"))) {
		msg_warn("dropping a client that sent no valid request");
		proto_msg_free(&m);
		return;
	}
	json = !strcmp(proto_field(&m, 0), "json");
	proto_msg_free(&m);
	if (qlist_render(&out, json ? QLIST_JSON : QLIST_TEXT, &err) < 0) {
		msg_warn("%s", buf_str(&err));
		buf_reset(&out);
		buf_printf(&out, "mailq: cannot read the queue: %s\n", buf_str(&err));
	}
	if (write_full(fd, out.data ? out.data : "", out.len) < 0)
		msg_debug("write to client: %s", strerror(errno));
	buf_free(&out);
	buf_free(&err);
}

int
main(int argc, char **argv)
{
	sane_fds();
	(void)service_init("showq", argc, argv);
	priv_drop_to_owner();
	service_accept_loop(showq_client, NULL, 0);
	return 0;
}
