/*
 * proto.c: framing for the inter-process record protocol (proto.h).
 * The parser never trusts a length before checking it against the
 * limits, and copies fields into one buffer so that each is
 * NUL-terminated for the caller.
 */
#include "proto.h"
#include "util.h"
#include "conf.h"
#include "queue_file.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define HDR_LEN 12

void
proto_msg_init(struct proto_msg *m)
{
	m->type = 0;
	m->nfields = 0;
	m->fields = NULL;
	buf_init(&m->raw);
}

void
proto_msg_free(struct proto_msg *m)
{
	free(m->fields);
	buf_free(&m->raw);
	proto_msg_init(m);
}

const char *
proto_field(const struct proto_msg *m, size_t i)
{
	return i < m->nfields ? m->fields[i].data : "";
}

void
proto_build_start(struct proto_builder *b, int type)
{
	buf_init(&b->out);
	buf_add(&b->out, "\0\0\0\0\0\0\0\0\0\0\0\0", HDR_LEN);
	b->nfields = 0;
	b->type = type;
}

void
proto_build_add(struct proto_builder *b, const void *p, size_t n)
{
	unsigned char len[4];

	if (n > PROTO_MAX_PAYLOAD)
		msg_panic("proto_build_add: field too large");
	be32_put(len, (uint32_t)n);
	buf_add(&b->out, len, 4);
	buf_add(&b->out, p, n);
	b->nfields++;
}

void
proto_build_adds(struct proto_builder *b, const char *s)
{
	proto_build_add(b, s, strlen(s));
}

void
proto_build_addf(struct proto_builder *b, const char *fmt, ...)
{
	struct buf tmp = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&tmp, fmt, ap);
	va_end(ap);
	proto_build_add(b, tmp.data, tmp.len);
	buf_free(&tmp);
}

void
proto_build_finish(struct proto_builder *b)
{
	unsigned char *h = (unsigned char *)b->out.data;
	size_t payload = b->out.len - HDR_LEN;

	if (payload > PROTO_MAX_PAYLOAD || b->nfields > PROTO_MAX_FIELDS)
		msg_panic("proto_build_finish: message too large");
	h[0] = 'H';
	h[1] = 'M';
	h[2] = PROTO_VERSION;
	h[3] = (unsigned char)b->type;
	be32_put(h + 4, b->nfields);
	be32_put(h + 8, (uint32_t)payload);
}

void
proto_build_free(struct proto_builder *b)
{
	buf_free(&b->out);
}

int
proto_send(int fd, struct proto_builder *b)
{
	int rc;

	proto_build_finish(b);
	rc = write_full(fd, b->out.data, b->out.len);
	proto_build_free(b);
	return rc;
}

int
proto_send_strs(int fd, int type, ...)
{
	struct proto_builder b;
	const char *s;
	va_list ap;

	proto_build_start(&b, type);
	va_start(ap, type);
	while ((s = va_arg(ap, const char *)) != NULL)
		proto_build_adds(&b, s);
	va_end(ap);
	return proto_send(fd, &b);
}

/* Validate a header; returns payload length or -1. */
static long
check_header(const unsigned char *h, int *type, uint32_t *nf)
{
	uint32_t len;

	if (h[0] != 'H' || h[1] != 'M' || h[2] != PROTO_VERSION)
		return -1;
	if (h[3] == 0 || h[3] >= PROTO_TYPE_MAX)
		return -1;
	*type = h[3];
	*nf = be32_get(h + 4);
	len = be32_get(h + 8);
	if (*nf > PROTO_MAX_FIELDS || len > PROTO_MAX_PAYLOAD || (uint64_t)*nf * 4 > len)
		return -1;
	return (long)len;
}

/* Split payload p[0..len) into fields, copying into m->raw. */
static int
split_fields(struct proto_msg *m, int type, uint32_t nf, const unsigned char *p, size_t len)
{
	size_t off = 0, i, *offs;

	proto_msg_free(m);
	m->type = type;
	m->fields = xcalloc(nf ? nf : 1, sizeof(*m->fields));
	offs = xcalloc(nf ? nf : 1, sizeof(*offs));
	for (i = 0; i < nf; i++) {
		uint32_t flen;

		if (len - off < 4)
			goto bad;
		flen = be32_get(p + off);
		off += 4;
		if (flen > len - off)
			goto bad;
		offs[i] = m->raw.len;
		buf_add(&m->raw, p + off, flen);
		buf_addc(&m->raw, 0);
		m->fields[i].len = flen;
		off += flen;
	}
	if (off != len)
		goto bad;
	for (i = 0; i < nf; i++)
		m->fields[i].data = m->raw.data + offs[i];
	m->nfields = nf;
	free(offs);
	return 0;
bad:
	free(offs);
	proto_msg_free(m);
	return -1;
}

int
proto_parse(struct buf *in, struct proto_msg *m)
{
	uint32_t nf;
	int type;
	long len;

	if (in->len < HDR_LEN)
		return 0;
	if ((len = check_header((unsigned char *)in->data, &type, &nf)) < 0)
		return -1;
	if (in->len < HDR_LEN + (size_t)len)
		return 0;
	if (split_fields(m, type, nf, (unsigned char *)in->data + HDR_LEN, (size_t)len) < 0)
		return -1;
	buf_consume(in, HDR_LEN + (size_t)len);
	return 1;
}

int
proto_read_msgs(int fd, struct buf *in, size_t max,
    int (*cb)(void *ctx, struct proto_msg *m), void *ctx)
{
	struct proto_msg m;
	char tmp[4096];
	ssize_t r;
	int rc;

	r = read(fd, tmp, sizeof(tmp));
	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
	if (r == 0)
		return -1;
	buf_add(in, tmp, (size_t)r);
	proto_msg_init(&m);
	while ((rc = proto_parse(in, &m)) == 1) {
		int keep = cb(ctx, &m);

		proto_msg_free(&m);
		if (keep < 0) {
			errno = 0;
			return -1;
		}
	}
	proto_msg_free(&m);
	if (rc < 0) {
		errno = EPROTO;
		return -1;
	}
	/* do not wait for a payload larger than we would keep */
	if (in->len > max || (in->len >= HDR_LEN &&
	    be32_get((const unsigned char *)in->data + 8) > max)) {
		errno = EMSGSIZE;
		return -1;
	}
	return 1;
}

void
proto_agent_loop(int fd, int (*handle)(int fd, struct proto_msg *m), void (*idle)(int fd))
{
	struct proto_msg r;
	int n;

	for (;;) {
		if (idle)
			idle(fd);
		proto_msg_init(&r);
		n = proto_recv(fd, &r);
		if (n <= 0) {
			if (n < 0 && errno == EPROTO)
				msg_error("malformed message from qmgr: connection closed");
			else if (n < 0 && errno != ECONNRESET)
				msg_warn("read from qmgr: %s", strerror(errno));
			proto_msg_free(&r);
			return;
		}
		n = handle(fd, &r);
		proto_msg_free(&r);
		if (n < 0)
			return;
	}
}

int
proto_recv(int fd, struct proto_msg *m)
{
	unsigned char h[HDR_LEN];
	struct buf payload = BUF_INIT;
	uint32_t nf;
	int type;
	long len;
	ssize_t r;

	r = read_full(fd, h, HDR_LEN);
	if (r == 0)
		return 0;
	if (r < 0)
		return -1;
	if (r < HDR_LEN || (len = check_header(h, &type, &nf)) < 0) {
		errno = EPROTO;
		return -1;
	}
	buf_reserve(&payload, (size_t)len);
	r = read_full(fd, payload.data, (size_t)len);
	if (r < 0 || r < len) {
		buf_free(&payload);
		if (r >= 0)
			errno = EPROTO;
		return -1;
	}
	if (split_fields(m, type, nf, (unsigned char *)payload.data, (size_t)len) < 0) {
		buf_free(&payload);
		errno = EPROTO;
		return -1;
	}
	buf_free(&payload);
	return 1;
}

int
proto_connect(const char *path)
{
	struct sockaddr_un sun;
	int fd, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

int
proto_notify(const char *rel, int type, const char *field)
{
	struct buf path = BUF_INIT;
	int fd, rc;

	conf_queue_path(&path, rel);
	fd = proto_connect(buf_str(&path));
	buf_free(&path);
	if (fd < 0)
		return -1;
	rc = proto_send_strs(fd, type, field, (const char *)NULL);
	close(fd);
	return rc;
}

int
proto_send_fd(int sock, int fd)
{
	struct msghdr mh;
	struct iovec iov;
	char c = 'F';
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct cmsghdr *ch;

	memset(&mh, 0, sizeof(mh));
	memset(&cm, 0, sizeof(cm));
	iov.iov_base = &c;
	iov.iov_len = 1;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	ch = CMSG_FIRSTHDR(&mh);
	ch->cmsg_level = SOL_SOCKET;
	ch->cmsg_type = SCM_RIGHTS;
	ch->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(ch), &fd, sizeof(int));
	for (;;) {
		if (sendmsg(sock, &mh, 0) == 1)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

int
proto_recv_fd(int sock)
{
	struct msghdr mh;
	struct iovec iov;
	char c;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct cmsghdr *ch;
	int fd = -1;
	ssize_t r;

	memset(&mh, 0, sizeof(mh));
	iov.iov_base = &c;
	iov.iov_len = 1;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	do
		r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r != 1)
		return -1;
	for (ch = CMSG_FIRSTHDR(&mh); ch; ch = CMSG_NXTHDR(&mh, ch))
		if (ch->cmsg_level == SOL_SOCKET && ch->cmsg_type == SCM_RIGHTS &&
		    ch->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(ch), sizeof(int));
	if (fd < 0)
		errno = EPROTO;
	return fd;
}

/* The checks every delivery agent makes of a PROTO_DELIVER_REQ. */
const char *
proto_deliver_req_check(const struct proto_msg *r)
{
	size_t i;
	const char *path;

	if (r->type != PROTO_DELIVER_REQ)
		return "not a delivery request";
	if (r->nfields < 4 || (r->nfields - 4) % 4 != 0)
		return "wrong number of fields";
	for (i = 0; i < r->nfields; i++)
		if (strlen(r->fields[i].data) != r->fields[i].len ||
		    has_crlfnul(r->fields[i].data, r->fields[i].len))
			return "CR, LF or NUL in a field";
	if (!queue_id_valid(proto_field(r, 0)))
		return "bad queue id";
	path = proto_field(r, 1);
	if (strncmp(path, "active/", 7) || strcmp(path + 7, proto_field(r, 0)))
		return "queue file path is not active/ID";
	for (i = 4; i < r->nfields; i += 4) {
		long long v;

		if (parse_ll(proto_field(r, i), 0, (long long)1 << 50, &v) < 0)
			return "bad recipient offset";
		if (!*proto_field(r, i + 1))
			return "empty recipient";
		if (parse_ll(proto_field(r, i + 3), 0, 255, &v) < 0)
			return "bad notify flags";
	}
	return NULL;
}
