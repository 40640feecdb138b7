/*
 * authc.c: the client side of authd (see authc.h for the wire format).
 *
 * Invariants:
 * - a reply is trusted only when it is complete and well-formed: an
 *   "ok" must name the user, a uid, a gid and an absolute mailbox path
 *   (a Maildir path ends in '/'); anything else is a temporary failure,
 *   never a success;
 * - the password is wiped from every buffer this module filled;
 * - no call waits longer than ipc_timeout for authd.
 */
#include "authc.h"
#include "conf.h"
#include "log.h"
#include "proto.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* Field limits; authd applies the same ones. */
#define AUTHC_FIELD_MAX	1024

static void
set_timeouts(int fd)
{
	long long t = conf_time("ipc_timeout");
	struct timeval tv;

	if (t <= 0 || t > 86400)
		t = 86400;
	tv.tv_sec = (time_t)t;
	tv.tv_usec = 0;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Connect to authd and send the finished request b (wiped afterwards:
 * it may hold a password).  The descriptor, or -1 with errno. */
static int
send_request(struct proto_builder *b)
{
	struct buf path = BUF_INIT;
	int fd, rc, saved;

	conf_queue_path(&path, conf_str("authd_socket"));
	fd = proto_connect(buf_str(&path));
	saved = errno;
	buf_free(&path);
	if (fd >= 0) {
		set_timeouts(fd);
		rc = write_full(fd, b->out.data, b->out.len);
		saved = errno;
		if (rc < 0) {
			close(fd);
			fd = -1;
		}
	}
	if (b->out.data)
		explicit_bzero(b->out.data, b->out.cap);
	proto_build_free(b);
	errno = saved;
	return fd;
}

int
authc_send(const char *service, const char *user, const char *password,
    const char *client)
{
	struct proto_builder b;

	if (!service || !user || !password || !client ||
	    strlen(service) > AUTHC_FIELD_MAX || strlen(user) > AUTHC_FIELD_MAX ||
	    strlen(password) > AUTHC_FIELD_MAX || strlen(client) > AUTHC_FIELD_MAX) {
		errno = EINVAL;
		return -1;
	}
	proto_build_start(&b, PROTO_AUTH_REQ);
	proto_build_adds(&b, service);
	proto_build_adds(&b, user);
	proto_build_adds(&b, password);
	proto_build_adds(&b, client);
	proto_build_finish(&b);
	return send_request(&b);
}

int
authc_user_send(const char *service, const char *name)
{
	struct proto_builder b;

	if (!service || !name || strlen(service) > AUTHC_FIELD_MAX ||
	    strlen(name) > AUTHC_FIELD_MAX) {
		errno = EINVAL;
		return -1;
	}
	proto_build_start(&b, PROTO_USER_REQ);
	proto_build_adds(&b, service);
	proto_build_adds(&b, name);
	proto_build_finish(&b);
	return send_request(&b);
}

int
authc_user_recv(int fd)
{
	struct proto_msg m;
	const char *res;
	int rc = AUTHC_TEMPFAIL, r;

	set_timeouts(fd);
	proto_msg_init(&m);
	if ((r = proto_recv(fd, &m)) != 1) {
		msg_warn("authd: %s", r == 0 ? "connection closed without a reply" :
		    errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : strerror(errno));
		goto out;
	}
	if (m.type != PROTO_USER_REPLY || m.nfields != 1) {
		msg_warn("authd: unexpected reply (type %d)", m.type);
		goto out;
	}
	res = proto_field(&m, 0);
	if (!strcmp(res, "ok"))
		rc = AUTHC_OK;
	else if (!strcmp(res, "fail"))
		rc = AUTHC_FAIL;
	else if (strcmp(res, "tempfail"))
		msg_warn("authd: unknown result in reply");
out:
	proto_msg_free(&m);
	return rc;
}

static int
dup_field(const struct proto_msg *m, size_t i, char **out)
{
	if (i >= m->nfields || memchr(m->fields[i].data, 0, m->fields[i].len))
		return -1;
	*out = xstrdup(m->fields[i].data);
	return 0;
}

/* "BYTES MESSAGES" */
static int
parse_quota(const char *s, struct auth_user *u)
{
	char **v = str_split(s, " ");
	int r = strv_len(v) == 2 && parse_ll(v[0], 0, 1LL << 62, &u->quota_bytes) == 0 &&
	    parse_ll(v[1], 0, 1LL << 62, &u->quota_messages) == 0 ? 0 : -1;

	strv_free(v);
	return r;
}

int
authc_recv(int fd, struct auth_user *u)
{
	struct proto_msg m;
	const char *res, *type;
	long long uid, gid;
	int rc = AUTHC_TEMPFAIL, r;

	memset(u, 0, sizeof(*u));
	set_timeouts(fd);
	proto_msg_init(&m);
	if ((r = proto_recv(fd, &m)) != 1) {
		msg_warn("authd: %s", r == 0 ? "connection closed without a reply" :
		    errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : strerror(errno));
		goto out;
	}
	if (m.type != PROTO_AUTH_REPLY || m.nfields < 1) {
		msg_warn("authd: unexpected reply (type %d)", m.type);
		goto out;
	}
	res = proto_field(&m, 0);
	if (!strcmp(res, "fail")) {
		rc = AUTHC_FAIL;
		goto out;
	}
	if (strcmp(res, "ok")) {
		if (strcmp(res, "tempfail"))
			msg_warn("authd: unknown result in reply");
		goto out;
	}
	type = proto_field(&m, 5);
	if (m.nfields < 7 || parse_ll(proto_field(&m, 2), 0, 0x7fffffff, &uid) < 0 ||
	    parse_ll(proto_field(&m, 3), 0, 0x7fffffff, &gid) < 0 ||
	    (strcmp(type, "maildir") && strcmp(type, "mbox")) ||
	    dup_field(&m, 1, &u->name) < 0 || !*u->name ||
	    dup_field(&m, 4, &u->home) < 0 ||
	    dup_field(&m, 6, &u->mailbox) < 0 || u->mailbox[0] != '/') {
		msg_warn("authd: malformed ok reply");
		auth_user_free(u);
		goto out;
	}
	u->uid = (uid_t)uid;
	u->gid = (gid_t)gid;
	u->maildir = !strcmp(type, "maildir");
	if (m.nfields >= 9 && parse_quota(proto_field(&m, 8), u) < 0) {
		msg_warn("authd: malformed quota in reply");
		auth_user_free(u);
		goto out;
	}
	if (u->maildir && u->mailbox[strlen(u->mailbox) - 1] != '/') {
		msg_warn("authd: Maildir path without a trailing slash");
		auth_user_free(u);
		goto out;
	}
	rc = AUTHC_OK;
out:
	proto_msg_free(&m);
	return rc;
}

int
authc_check(const char *service, const char *user, const char *password,
    const char *client, struct auth_user *u)
{
	struct pollfd p;
	long long t = conf_time("ipc_timeout");
	int64_t end;
	int fd, r, rc;

	memset(u, 0, sizeof(*u));
	if ((fd = authc_send(service, user, password, client)) < 0) {
		if (errno == EINVAL)
			return AUTHC_FAIL;	/* over-long input: cannot be right */
		msg_warn("authd: cannot reach %s: %s", conf_str("authd_socket"), strerror(errno));
		return AUTHC_TEMPFAIL;
	}
	if (t <= 0 || t > 86400)
		t = 86400;
	end = mono_ms() + t * 1000;
	for (;;) {
		int64_t left = end - mono_ms();

		if (left <= 0) {
			msg_warn("authd: no reply within %llds", t);
			close(fd);
			return AUTHC_TEMPFAIL;
		}
		p.fd = fd;
		p.events = POLLIN;
		p.revents = 0;
		r = poll(&p, 1, left > 0x7fffffff ? 0x7fffffff : (int)left);
		if (r > 0)
			break;
		if (r < 0 && errno != EINTR) {
			msg_warn("authd: poll: %s", strerror(errno));
			close(fd);
			return AUTHC_TEMPFAIL;
		}
	}
	rc = authc_recv(fd, u);
	close(fd);
	return rc;
}

void
auth_user_free(struct auth_user *u)
{
	if (!u)
		return;
	free(u->name);
	free(u->home);
	free(u->mailbox);
	u->name = u->home = u->mailbox = NULL;
}
