/*
 * proto: the one typed, versioned record protocol between hermod
 * processes over Unix stream sockets.
 *
 * A message on the wire: a 12-byte header (magic "HM", version, type,
 * field count, payload length, all big-endian) followed by the fields,
 * each a 4-byte big-endian length and that many bytes.  Limits: at most
 * PROTO_MAX_FIELDS fields and PROTO_MAX_PAYLOAD bytes.  A reader that
 * sees a bad magic, version, type or length returns -1 (EPROTO): between
 * trusted daemons the caller drops the connection with a log line; on a
 * socket local users reach, it drops only that client.
 */
#ifndef HERMOD_PROTO_H
#define HERMOD_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"

#define PROTO_VERSION		1
#define PROTO_MAX_FIELDS	100000
#define PROTO_MAX_PAYLOAD	(16 * 1024 * 1024)

enum proto_type {
	PROTO_OK = 1,		/* [text] */
	PROTO_ERR,		/* [dsn code, text] */
	PROTO_PICKUP_WAKE,	/* sendmail/postdrop -> pickup: [maildrop file name] (may be empty: scan) */
	PROTO_QMGR_NEW,		/* pickup/smtpd -> qmgr: [queue id] */
	PROTO_QMGR_FLUSH,	/* sendmail -q, hermod queue flush -> qmgr: [] or [queue id] */
	PROTO_DELIVER_REQ,	/* qmgr -> agent: see below */
	PROTO_DELIVER_STATUS,	/* agent -> qmgr: [rcpt offset, status, dsn code, text]; local may add
				 * up to 900 SHA-256 hex digests of the destinations it
				 * delivered to (duplicate filter across retries) */
	PROTO_DELIVER_DONE,	/* agent -> qmgr: [] end of statuses for one request */
	PROTO_AUTH_REQ,		/* server -> authd: see lib/authc.h */
	PROTO_AUTH_REPLY,	/* authd -> server: see lib/authc.h */
	PROTO_USER_REQ,		/* smtpd -> authd: see lib/authc.h */
	PROTO_USER_REPLY,	/* authd -> smtpd: see lib/authc.h */
	PROTO_TYPE_MAX
};

/*
 * PROTO_DELIVER_REQ fields:
 *   0 queue id
 *   1 queue file path relative to queue_directory ("active/ID")
 *   2 envelope sender ("" for <>)
 *   3 transport next-hop information ("" for local)
 *   then 4 fields per recipient:
 *     recipient record offset (decimal), address, original recipient
 *     (ORCPT, may be ""), DSN notify flags (decimal, see queue_file.h)
 *
 * The agent answers with exactly one PROTO_DELIVER_STATUS per recipient
 * and then PROTO_DELIVER_DONE.  status is "sent", "deferred" or "bounced";
 * dsn code is an RFC 3463 code such as "2.0.0", "4.2.0", "5.1.1".
 */

struct proto_msg;
/* NULL when m is a well-formed PROTO_DELIVER_REQ (field count, no CR, LF
 * or NUL in any field, a valid queue ID and "active/ID" path, numeric
 * offsets and notify flags), else why not.  Every agent checks this
 * before acting on a request. */
const char *proto_deliver_req_check(const struct proto_msg *m);

struct proto_field {
	const char *data;	/* NUL-terminated copy inside the message */
	size_t len;
};

struct proto_msg {
	int type;
	size_t nfields;
	struct proto_field *fields;
	struct buf raw;		/* owns the field storage */
};

void proto_msg_init(struct proto_msg *m);
void proto_msg_free(struct proto_msg *m);
/* Field i as a string, "" when missing. */
const char *proto_field(const struct proto_msg *m, size_t i);

/* Building a message: start, add fields, then send or take the bytes. */
struct proto_builder {
	struct buf out;
	uint32_t nfields;
	int type;
};
void proto_build_start(struct proto_builder *b, int type);
void proto_build_add(struct proto_builder *b, const void *p, size_t n);
void proto_build_adds(struct proto_builder *b, const char *s);
void proto_build_addf(struct proto_builder *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Finish the header; the bytes are in b->out. */
void proto_build_finish(struct proto_builder *b);
void proto_build_free(struct proto_builder *b);
/* Finish and write to fd (blocking, complete).  0 ok, -1 errno. */
int proto_send(int fd, struct proto_builder *b);
/* Convenience: send a message of string fields (NULL-terminated list). */
int proto_send_strs(int fd, int type, ...);

/* Blocking read of one message.  1 got one, 0 clean EOF before a header,
 * -1 error (errno EPROTO for a malformed message). */
int proto_recv(int fd, struct proto_msg *m);
/* Non-blocking use: try to parse one message from the front of in.
 * 1 parsed (and consumed), 0 need more bytes, -1 malformed. */
int proto_parse(struct buf *in, struct proto_msg *m);

/* Server side, non-blocking: read what a client sent on fd into in and
 * hand each complete message to cb (which returns -1 to drop the
 * client).  1 read and handled, 0 nothing to read yet, -1 drop the
 * client: end of input, a read error, cb said so, a malformed message
 * (errno EPROTO), or more than max bytes buffered or announced by the
 * next message's header (errno EMSGSIZE). */
int proto_read_msgs(int fd, struct buf *in, size_t max,
    int (*cb)(void *ctx, struct proto_msg *m), void *ctx);

/* A delivery agent's side of a connection from qmgr (blocking): read
 * requests until qmgr closes it or a read fails (logged), handing each
 * to handle, which returns -1 to close.  idle, when not NULL, runs
 * before each read (it may wait for input and tidy up meanwhile). */
void proto_agent_loop(int fd, int (*handle)(int fd, struct proto_msg *m),
    void (*idle)(int fd));

/* Client helper: connect to a Unix socket path; -1 with errno. */
int proto_connect(const char *path);
/* Connect to a socket in the queue directory ("private/qmgr"), send one
 * message of string fields, and do not wait for a reply.  For wake-ups:
 * failure is returned, not logged. */
int proto_notify(const char *rel, int type, const char *field);

/* Descriptor passing alongside a one-byte message. */
int proto_send_fd(int sock, int fd);
int proto_recv_fd(int sock);

#endif
