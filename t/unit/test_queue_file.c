/*
 * test_queue_file: the queue file reader and writer, queue IDs and the
 * commit into active/.  The reader must refuse every torn or malformed
 * file: each test builds a valid file and breaks it in one way.
 */
#include "queue_file.h"
#include "conf.h"
#include "util.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/test_queue_file.XXXXXX";

/* Append one raw record. */
static void
rec(struct buf *b, int type, const void *p, size_t n)
{
	unsigned char h[5];

	h[0] = (unsigned char)type;
	h[1] = (unsigned char)(n >> 24);
	h[2] = (unsigned char)(n >> 16);
	h[3] = (unsigned char)(n >> 8);
	h[4] = (unsigned char)n;
	buf_add(b, h, 5);
	buf_add(b, p, n);
}

static void
recs(struct buf *b, int type, const char *s)
{
	rec(b, type, s, strlen(s));
}

static void
rcpt(struct buf *b, int type, const char *addr, const char *orcpt, const char *notify)
{
	struct buf p = BUF_INIT;

	buf_adds(&p, addr);
	buf_addc(&p, 0);
	buf_adds(&p, orcpt);
	buf_addc(&p, 0);
	buf_adds(&p, notify);
	rec(b, type, p.data, p.len);
	buf_free(&p);
}

/* A small valid file built by hand, with hooks to break it. */
enum breakage {
	B_NONE, B_NO_VERSION, B_TWO_VERSIONS, B_BAD_VERSION, B_NO_TIME,
	B_NO_SENDER, B_NO_RCPT, B_TWO_SENDERS, B_CR_SENDER, B_LF_SENDER,
	B_NUL_SENDER, B_CR_RCPT, B_LF_ORCPT, B_BAD_NOTIFY, B_NEVER_PLUS,
	B_BAD_TIME, B_UNKNOWN_TYPE, B_DATA_IN_ENV, B_ENV_AFTER_CONTENT,
	B_AFTER_END, B_NO_END, B_BAD_END, B_BAD_RET, B_DEFER_NOWHERE,
	B_BAD_DEFER_DSN, B_LONG_ADDR, B_EMPTY_RCPT, B_RCPT_FIELDS,
	B_BAD_ATTR, B_CONTENT_PAYLOAD, B_EMPTY_DATA, B_BIG_DATA, B_END_IN_ENV,
	B_TWO_RETRY, B_BAD_RETRY, B_WARNED_PAYLOAD, B_CR_CLIENT, B_LEADING_ZERO,
	B_MAX
};

static void
build(struct buf *b, enum breakage k)
{
	char big[QF_ADDR_MAX + 2];
	size_t rcpt_off;
	struct buf p = BUF_INIT;

	buf_reset(b);
	if (k != B_NO_VERSION)
		recs(b, QREC_VERSION, k == B_BAD_VERSION ? "hermod-queue 2" : QF_VERSION_STRING);
	if (k == B_TWO_VERSIONS)
		recs(b, QREC_VERSION, QF_VERSION_STRING);
	if (k != B_NO_TIME)
		recs(b, QREC_TIME, k == B_BAD_TIME ? "12x" : k == B_LEADING_ZERO ? "0123" : "1700000000000000");
	if (k == B_END_IN_ENV)
		recs(b, QREC_END, "end");
	if (k != B_NO_SENDER) {
		if (k == B_CR_SENDER)
			recs(b, QREC_SENDER, "a\rb@example.test");
		else if (k == B_LF_SENDER)
			recs(b, QREC_SENDER, "a\nRCPT:b@example.test");
		else if (k == B_NUL_SENDER)
			rec(b, QREC_SENDER, "a\0b", 3);
		else
			recs(b, QREC_SENDER, "sender@example.test");
	}
	if (k == B_TWO_SENDERS)
		recs(b, QREC_SENDER, "other@example.test");
	recs(b, QREC_CLIENT, k == B_CR_CLIENT ? "local\r uid=1" : "local uid=1000 user=u");
	recs(b, QREC_ENVID, "env-1");
	recs(b, QREC_RET, k == B_BAD_RET ? "ALL" : "HDRS");
	recs(b, QREC_ATTR, k == B_BAD_ATTR ? "=novalue" : "body=8BITMIME");
	if (k == B_UNKNOWN_TYPE)
		recs(b, 'Q', "what");
	if (k == B_DATA_IN_ENV)
		recs(b, QREC_DATA, "data");
	rcpt_off = b->len;
	if (k != B_NO_RCPT) {
		rcpt(b, QREC_RCPT, k == B_CR_RCPT ? "a\r@example.test" : "a@example.test",
		    k == B_LF_ORCPT ? "rfc822;a\n" : "rfc822;a@example.test",
		    k == B_BAD_NOTIFY ? "16" : k == B_NEVER_PLUS ? "3" : "6");
		rcpt(b, QREC_RCPT_DONE, "b@example.test", "", "0");
	}
	if (k == B_LONG_ADDR) {
		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = 0;
		rcpt(b, QREC_RCPT, big, "", "0");
	}
	if (k == B_EMPTY_RCPT)
		rcpt(b, QREC_RCPT, "", "", "0");
	if (k == B_RCPT_FIELDS)
		recs(b, QREC_RCPT, "c@example.test");
	if (k != B_NO_RCPT) {
		buf_printf(&p, "%zu", k == B_DEFER_NOWHERE ? rcpt_off + 1 : rcpt_off);
		buf_addc(&p, 0);
		buf_adds(&p, k == B_BAD_DEFER_DSN ? "4.4" : "4.4.1");
		buf_addc(&p, 0);
		buf_adds(&p, "connection refused");
		rec(b, QREC_DEFER, p.data, p.len);
	}
	rec(b, QREC_RETRY, k == B_BAD_RETRY ? "x\0001700000300" : "3\0001700000300", 12);
	if (k == B_TWO_RETRY)
		rec(b, QREC_RETRY, "3\0001700000300", 12);
	if (k == B_WARNED_PAYLOAD)
		recs(b, QREC_WARNED, "x");
	else
		rec(b, QREC_WARNED, "", 0);
	rec(b, QREC_CONTENT, k == B_CONTENT_PAYLOAD ? "x" : "", k == B_CONTENT_PAYLOAD ? 1 : 0);
	if (k == B_ENV_AFTER_CONTENT)
		recs(b, QREC_SENDER, "late@example.test");
	recs(b, QREC_DATA, "Subject: hi\n\nbody\n");
	if (k == B_EMPTY_DATA)
		rec(b, QREC_DATA, "", 0);
	if (k == B_BIG_DATA) {
		char *d = xcalloc(1, QF_CHUNK + 1);

		rec(b, QREC_DATA, d, QF_CHUNK + 1);
		free(d);
	}
	recs(b, QREC_DATA, "more\n");
	if (k != B_NO_END)
		recs(b, QREC_END, k == B_BAD_END ? "eNd" : "end");
	if (k == B_AFTER_END)
		buf_addc(b, 'x');
	buf_free(&p);
}

static const char *
bname(enum breakage k)
{
	static const char *names[] = {
		"none", "no version", "two versions", "bad version", "no time",
		"no sender", "no rcpt", "two senders", "CR in sender", "LF in sender",
		"NUL in sender", "CR in rcpt", "LF in orcpt", "bad notify", "NEVER+SUCCESS",
		"bad time", "unknown type", "DATA in envelope", "envelope after content",
		"byte after END", "no END", "bad END", "bad RET", "DEFER for no rcpt",
		"bad DEFER dsn", "address too long", "empty rcpt", "rcpt without fields",
		"bad attribute", "CONTENT with payload", "empty DATA", "DATA over QF_CHUNK",
		"END in envelope", "two RETRY", "bad RETRY", "WARNED with payload",
		"CR in client", "leading zero in time",
	};
	return names[k];
}

static void
test_handmade(void)
{
	struct qf_envelope env;
	struct buf b = BUF_INIT, err = BUF_INIT;
	int k;
	size_t cut;
	int all_refused = 1;

	build(&b, B_NONE);
	is_int(qf_parse(b.data, b.len, &env, &err), 0, "hand-made file parses (%s)", buf_str(&err));
	is_str(env.sender, "sender@example.test", "sender");
	is_int(env.arrival_us, 1700000000000000LL, "arrival time");
	is_int(env.nrcpt, 2, "two recipients");
	is_str(env.rcpt[0].addr, "a@example.test", "rcpt 0 address");
	is_str(env.rcpt[0].orcpt, "rfc822;a@example.test", "rcpt 0 orcpt");
	is_int(env.rcpt[0].notify, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE, "rcpt 0 notify");
	is_int(env.rcpt[0].done, 0, "rcpt 0 not done");
	is_int(env.rcpt[1].done, 1, "rcpt 1 done");
	is_str(env.rcpt[0].defer_dsn, "4.4.1", "defer dsn attached to rcpt 0");
	is_str(env.rcpt[0].defer_text, "connection refused", "defer text");
	ok(env.rcpt[1].defer_dsn == NULL, "no defer on rcpt 1");
	is_int(env.attempts, 3, "attempts");
	is_int(env.next_retry, 1700000300, "next retry");
	is_int(env.warned, 1, "warned");
	is_str(env.ret, "HDRS", "RET");
	is_str(env.envid, "env-1", "ENVID");
	ok(env.attrs && env.attrs[0] && !strcmp(env.attrs[0], "body=8BITMIME") && !env.attrs[1], "attrs");
	is_int(env.content_size, strlen("Subject: hi\n\nbody\n") + 5, "content size");
	is_int(env.file_size, b.len, "file size");
	qf_envelope_free(&env);

	for (k = 1; k < B_MAX; k++) {
		build(&b, (enum breakage)k);
		errno = 0;
		is_int(qf_parse(b.data, b.len, &env, &err), -1, "refused: %s (%s)", bname((enum breakage)k), buf_str(&err));
		is_int(errno, EBADMSG, "errno EBADMSG for %s", bname((enum breakage)k));
	}

	/* every truncation of the valid file is refused */
	build(&b, B_NONE);
	for (cut = 0; cut < b.len; cut++) {
		if (qf_parse(b.data, cut, &env, &err) == 0) {
			all_refused = 0;
			qf_envelope_free(&env);
			printf("# truncation at %zu accepted\n", cut);
		}
	}
	ok(all_refused, "every truncation (0..%zu bytes) is refused", b.len - 1);

	/* every single-byte type change is refused or still consistent */
	{
		size_t off = 0;
		int bad = 0;

		while (off + 5 <= b.len) {
			unsigned char *p = (unsigned char *)b.data + off;
			size_t len = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) | p[4];
			unsigned char save = p[0];

			p[0] = 0;
			if (qf_parse(b.data, b.len, &env, &err) == 0) {
				bad = 1;
				qf_envelope_free(&env);
			}
			p[0] = 0xff;
			if (qf_parse(b.data, b.len, &env, &err) == 0) {
				bad = 1;
				qf_envelope_free(&env);
			}
			p[0] = save;
			off += 5 + len;
		}
		ok(!bad, "unknown type byte in any record is refused");
	}

	/* a length one too long or short in any record is refused */
	{
		size_t off = 0;
		int bad = 0;

		while (off + 5 <= b.len) {
			unsigned char *p = (unsigned char *)b.data + off;
			size_t len = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) | p[4];

			p[4]++;
			if (qf_parse(b.data, b.len, &env, &err) == 0) {
				bad = 1;
				qf_envelope_free(&env);
			}
			p[4] -= 2;
			if (qf_parse(b.data, b.len, &env, &err) == 0) {
				bad = 1;
				qf_envelope_free(&env);
			}
			p[4]++;
			p[1] = 0xff;
			if (qf_parse(b.data, b.len, &env, &err) == 0) {
				bad = 1;
				qf_envelope_free(&env);
			}
			p[1] = 0;
			off += 5 + len;
		}
		ok(!bad, "a wrong length in any record is refused");
	}

	/* random damage never crashes */
	{
		unsigned seed = 1;
		int i, j;
		struct buf c = BUF_INIT;

		for (i = 0; i < 20000; i++) {
			buf_reset(&c);
			buf_add(&c, b.data, b.len);
			for (j = 0; j < 3; j++) {
				seed = seed * 1103515245u + 12345u;
				c.data[(seed >> 8) % c.len] = (char)(seed >> 24);
			}
			if (qf_parse(c.data, c.len, &env, &err) == 0)
				qf_envelope_free(&env);
		}
		buf_free(&c);
		ok(1, "20000 randomly damaged files did not crash the reader");
	}
	ok(qf_parse(NULL, 0, &env, &err) == -1, "empty input refused");
	buf_free(&b);
	buf_free(&err);
}

static void
test_limits(void)
{
	struct qf_envelope env;
	struct buf b = BUF_INIT, err = BUF_INIT, a = BUF_INIT;
	size_t i;
	int rc;

	/* exactly QF_MAX_RCPT recipients are fine, one more is not */
	recs(&b, QREC_VERSION, QF_VERSION_STRING);
	recs(&b, QREC_TIME, "1");
	recs(&b, QREC_SENDER, "");
	for (i = 0; i < QF_MAX_RCPT; i++) {
		buf_reset(&a);
		buf_printf(&a, "u%zu@example.test", i);
		rcpt(&b, QREC_RCPT, buf_str(&a), "", "0");
	}
	{
		struct buf c = BUF_INIT;

		buf_add(&c, b.data, b.len);
		rec(&c, QREC_CONTENT, "", 0);
		recs(&c, QREC_END, "end");
		rc = qf_parse(c.data, c.len, &env, &err);
		is_int(rc, 0, "%d recipients accepted (%s)", QF_MAX_RCPT, buf_str(&err));
		if (rc == 0) {
			is_int(env.nrcpt, QF_MAX_RCPT, "all recipients read");
			is_str(env.rcpt[QF_MAX_RCPT - 1].addr, "u99999@example.test", "last recipient");
			is_str(env.sender, "", "null sender");
			is_int(env.content_size, 0, "empty content");
			qf_envelope_free(&env);
		}
		buf_free(&c);
	}
	rcpt(&b, QREC_RCPT, "one-more@example.test", "", "0");
	rec(&b, QREC_CONTENT, "", 0);
	recs(&b, QREC_END, "end");
	is_int(qf_parse(b.data, b.len, &env, &err), -1, "%d recipients refused (%s)", QF_MAX_RCPT + 1, buf_str(&err));

	/* address of QF_ADDR_MAX is fine */
	buf_reset(&b);
	buf_reset(&a);
	for (i = 0; i < QF_ADDR_MAX; i++)
		buf_addc(&a, 'x');
	recs(&b, QREC_VERSION, QF_VERSION_STRING);
	recs(&b, QREC_TIME, "1");
	recs(&b, QREC_SENDER, buf_str(&a));
	rcpt(&b, QREC_RCPT, buf_str(&a), buf_str(&a), "1");
	rec(&b, QREC_CONTENT, "", 0);
	recs(&b, QREC_END, "end");
	is_int(qf_parse(b.data, b.len, &env, &err), 0, "addresses of %d bytes accepted", QF_ADDR_MAX);
	qf_envelope_free(&env);
	buf_free(&a);
	buf_free(&b);
	buf_free(&err);
}

struct collect {
	struct buf b;
	size_t calls;
	size_t stop_after;
};

static int
collect_cb(void *ctx, const char *p, size_t n)
{
	struct collect *c = ctx;

	buf_add(&c->b, p, n);
	c->calls++;
	if (c->stop_after && c->calls >= c->stop_after)
		return 7;
	return 0;
}

static void
test_writer(void)
{
	struct buf path = BUF_INIT, content = BUF_INIT, err = BUF_INIT, img = BUF_INIT;
	struct qf_writer w;
	struct qf_envelope env, env2;
	struct collect c = { BUF_INIT, 0, 0 };
	off_t r1;
	size_t i, n;
	unsigned seed = 42;
	int fd;

	buf_printf(&path, "%s/w1", tmpdir);
	fd = open(buf_str(&path), O_RDWR | O_CREAT | O_TRUNC, 0600);
	ok(fd >= 0, "create test file");
	/* 300 KB of content, written in pieces of 1..5000 bytes */
	for (i = 0; i < 300000; i++)
		buf_addc(&content, i % 80 == 79 ? '\n' : 'a' + (int)(i % 26));
	qf_writer_init(&w, fd);
	qf_put_time(&w, 1234567890123456LL);
	qf_put_str(&w, QREC_SENDER, "s@example.test");
	qf_put_str(&w, QREC_FULLNAME, "Some One");
	qf_put_str(&w, QREC_CLIENT, "local uid=7 user=x");
	qf_put_str(&w, QREC_ATTR, "a=b");
	qf_put_str(&w, QREC_ATTR, "c=");
	r1 = qf_tell(&w);
	qf_put_rcpt(&w, "r1@example.test", "rfc822;R1@example.test", DSN_NOTIFY_SUCCESS);
	qf_put_rcpt(&w, "r2", NULL, DSN_NOTIFY_NEVER);
	qf_put_defer(&w, r1, "4.2.2", "mailbox full");
	qf_put_retry(&w, 2, 1700000000);
	qf_content_start(&w);
	for (i = 0; i < content.len; i += n) {
		seed = seed * 1103515245u + 12345u;
		n = 1 + (seed >> 16) % 5000;
		if (n > content.len - i)
			n = content.len - i;
		qf_content_write(&w, content.data + i, n);
	}
	is_int(qf_finish(&w), 0, "writer finishes");
	is_int(w.content_size, content.len, "writer counted the content");
	qf_writer_free(&w);

	is_int(qf_read(fd, &env, &err), 0, "qf_read of the written file (%s)", buf_str(&err));
	is_str(env.sender, "s@example.test", "sender round trip");
	is_str(env.fullname, "Some One", "full name round trip");
	is_str(env.client, "local uid=7 user=x", "client round trip");
	is_int(env.arrival_us, 1234567890123456LL, "time round trip");
	is_int(env.nrcpt, 2, "two recipients");
	is_int(env.rcpt[0].offset, r1, "qf_tell gave the offset of the first recipient");
	is_str(env.rcpt[0].orcpt, "rfc822;R1@example.test", "orcpt round trip");
	is_str(env.rcpt[1].orcpt, "", "missing orcpt is empty");
	is_int(env.rcpt[1].notify, DSN_NOTIFY_NEVER, "notify round trip");
	is_str(env.rcpt[0].defer_dsn, "4.2.2", "defer round trip");
	is_int(env.attempts, 2, "retry attempts");
	is_int(env.content_size, content.len, "content size");
	ok(env.attrs && !strcmp(env.attrs[1], "c="), "empty attribute value");
	is_int(qf_content(fd, &env, collect_cb, &c), 0, "qf_content");
	ok(c.b.len == content.len && !memcmp(c.b.data, content.data, content.len), "content round trip");
	ok(c.calls == (content.len + QF_CHUNK - 1) / QF_CHUNK, "content in full chunks (%zu calls)", c.calls);
	buf_reset(&c.b);
	c.calls = 0;
	c.stop_after = 2;
	is_int(qf_content(fd, &env, collect_cb, &c), 7, "qf_content stops with the callback's value");

	/* the memory parser agrees */
	ok(read_file(buf_str(&path), &img, 1 << 24) == 0, "read image");
	is_int(qf_parse(img.data, img.len, &env2, &err), 0, "qf_parse of the image");
	is_int(env2.content_offset, env.content_offset, "same content offset");
	is_int(env2.nrcpt, env.nrcpt, "same recipients");
	qf_envelope_free(&env2);

	/* mark_done */
	is_int(qf_mark_done(fd, env.rcpt[1].offset), 0, "mark recipient 2 done");
	is_int(qf_mark_done(fd, env.rcpt[1].offset), 0, "marking twice is fine");
	errno = 0;
	is_int(qf_mark_done(fd, env.rcpt[1].offset + 1), -1, "mark_done at a wrong offset refused");
	is_int(errno, EINVAL, "errno EINVAL");
	qf_envelope_free(&env);
	is_int(qf_read(fd, &env, &err), 0, "re-read after mark_done");
	ok(env.rcpt[0].done == 0 && env.rcpt[1].done == 1, "only recipient 2 is done");
	qf_envelope_free(&env);
	close(fd);

	/* the writer refuses CR, LF, NUL in envelope fields */
	{
		static const struct { int type; const char *p; size_t n; } bad[] = {
			{ QREC_SENDER, "a\r\nb", 4 },
			{ QREC_SENDER, "a\nb", 3 },
			{ QREC_SENDER, "a\0b", 3 },
			{ QREC_FULLNAME, "x\ry", 3 },
			{ QREC_CLIENT, "x\ny", 3 },
			{ QREC_ENVID, "x\0y", 3 },
			{ QREC_ATTR, "noequals", 8 },
			{ QREC_RET, "FULLX", 5 },
			{ QREC_TIME, "-1", 2 },
			{ QREC_END, "end", 3 },
			{ QREC_VERSION, QF_VERSION_STRING, sizeof(QF_VERSION_STRING) - 1 },
			{ 'Q', "", 0 },
		};
		size_t j;

		for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
			fd = open(buf_str(&path), O_RDWR | O_CREAT | O_TRUNC, 0600);
			qf_writer_init(&w, fd);
			qf_put_time(&w, 1);
			qf_put(&w, bad[j].type, bad[j].p, bad[j].n);
			qf_put_rcpt(&w, "x@y", "", 0);
			errno = 0;
			is_int(qf_finish(&w), -1, "writer refuses bad record %zu (type %c)", j, bad[j].type);
			is_int(errno, EINVAL, "errno EINVAL");
			qf_writer_free(&w);
			close(fd);
		}
		fd = open(buf_str(&path), O_RDWR | O_CREAT | O_TRUNC, 0600);
		qf_writer_init(&w, fd);
		qf_put_rcpt(&w, "a\n@b", "", 0);
		is_int(qf_finish(&w), -1, "writer refuses LF in a recipient");
		qf_writer_free(&w);
		qf_writer_init(&w, fd);
		qf_put_rcpt(&w, "a@b", "x\r", 0);
		is_int(qf_finish(&w), -1, "writer refuses CR in an ORCPT");
		qf_writer_free(&w);
		qf_writer_init(&w, fd);
		qf_put_rcpt(&w, "a@b", "", DSN_NOTIFY_NEVER | DSN_NOTIFY_DELAY);
		is_int(qf_finish(&w), -1, "writer refuses NEVER with other flags");
		qf_writer_free(&w);
		qf_writer_init(&w, fd);
		qf_put_defer(&w, 5, "4.4", "x");
		is_int(qf_finish(&w), -1, "writer refuses a bad status code");
		qf_writer_free(&w);
		qf_writer_init(&w, fd);
		qf_content_start(&w);
		qf_put_str(&w, QREC_SENDER, "late@x");
		is_int(qf_finish(&w), -1, "writer refuses envelope after content");
		qf_writer_free(&w);
		close(fd);
	}
	/* a write error is reported by qf_finish */
	{
		int p[2];

		ok(pipe(p) == 0, "pipe");
		close(p[0]);
		qf_writer_init(&w, p[1]);
		qf_put_time(&w, 1);
		qf_put_str(&w, QREC_SENDER, "");
		qf_put_rcpt(&w, "x@y", "", 0);
		errno = 0;
		is_int(qf_finish(&w), -1, "write error reported");
		is_int(errno, EPIPE, "with its errno");
		qf_writer_free(&w);
		close(p[1]);
	}
	buf_free(&c.b);
	buf_free(&path);
	buf_free(&content);
	buf_free(&err);
	buf_free(&img);
}

static int
cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_ids(void)
{
	enum { N = 100000 };
	char **ids = xcalloc(N, sizeof(char *));
	char id[QUEUE_ID_MAX];
	struct buf p = BUF_INIT;
	int i, sorted = 1, valid = 1, unique = 1;

	for (i = 0; i < N; i++) {
		queue_id_new(id, (ino_t)(i % 3 == 0 ? 0 : i % 3 == 1 ? 12345 : 0xffffffffffffULL));
		ids[i] = xstrdup(id);
		if (!queue_id_valid(id))
			valid = 0;
		if (i > 0 && strcmp(ids[i - 1], ids[i]) >= 0 &&
		    strncmp(ids[i - 1], ids[i], 10) >= 0)
			sorted = 0;
	}
	ok(valid, "%d queue IDs are valid (e.g. %s)", N, ids[0]);
	ok(sorted, "queue IDs sort by creation time");
	qsort(ids, N, sizeof(char *), cmpstr);
	for (i = 1; i < N; i++)
		if (!strcmp(ids[i - 1], ids[i]))
			unique = 0;
	ok(unique, "queue IDs are unique");
	for (i = 0; i < N; i++)
		free(ids[i]);
	free(ids);

	ok(!queue_id_valid(""), "empty ID invalid");
	ok(!queue_id_valid("../etc/passwd"), "path invalid");
	ok(!queue_id_valid("abc"), "short ID invalid");
	ok(!queue_id_valid("0123456789a.b"), "dot invalid");
	ok(!queue_id_valid("0123456789abcdefghijklmnopqrstuvwxyz"), "overlong ID invalid");
	ok(queue_id_valid("0123456789a"), "11 characters valid");

	queue_path(&p, "deferred", "0123456789a");
	ok(p.len == strlen("deferred/X/0123456789a") && !strncmp(p.data, "deferred/", 9) &&
	    p.data[10] == '/' && !strcmp(p.data + 11, "0123456789a"), "deferred path %s", buf_str(&p));
	buf_reset(&p);
	queue_path(&p, "active", "0123456789a");
	is_str(buf_str(&p), "active/0123456789a", "active path");
	buf_free(&p);

	ok(qf_dsn_valid("2.0.0") && qf_dsn_valid("5.1.1") && qf_dsn_valid("4.999.999"), "dsn codes valid");
	ok(!qf_dsn_valid("3.0.0") && !qf_dsn_valid("5.1") && !qf_dsn_valid("5.1.1 ") &&
	    !qf_dsn_valid("5.1111.1") && !qf_dsn_valid("") && !qf_dsn_valid("5..1"), "bad dsn codes refused");
}

static void
test_commit(void)
{
	struct buf d = BUF_INIT, err = BUF_INIT;
	struct qf_new q, qs[3];
	struct qf_envelope env;
	struct stat st;
	char id[QUEUE_ID_MAX];
	int fd, res[3], i;

	conf_set("queue_directory", tmpdir);
	conf_set("privileged", "no");
	buf_printf(&d, "%s/incoming", tmpdir);
	mkdir(buf_str(&d), 0700);
	buf_reset(&d);
	buf_printf(&d, "%s/active", tmpdir);
	mkdir(buf_str(&d), 0700);

	is_int(qf_new_open(&q), 0, "qf_new_open");
	ok(queue_id_valid(q.id), "new file has a valid ID %s", q.id);
	ok(stat(buf_str(&q.incoming), &st) == 0 && (st.st_mode & 0777) == 0600, "incoming/ID exists with mode 0600");
	qf_put_time(&q.w, now_us());
	qf_put_str(&q.w, QREC_SENDER, "a@b");
	qf_put_rcpt(&q.w, "c@d", "", 0);
	qf_content_write(&q.w, "x\n", 2);
	snprintf(id, sizeof(id), "%s", q.id);
	is_int(qf_commit(&q), 0, "qf_commit");
	buf_reset(&d);
	buf_printf(&d, "%s/active/%s", tmpdir, id);
	fd = open(buf_str(&d), O_RDONLY);
	ok(fd >= 0, "file is in active/");
	is_int(qf_read(fd, &env, &err), 0, "committed file reads back");
	qf_envelope_free(&env);
	close(fd);
	unlink(buf_str(&d));
	buf_reset(&d);
	buf_printf(&d, "%s/incoming/%s", tmpdir, id);
	ok(access(buf_str(&d), F_OK) < 0, "nothing left in incoming/");

	/* bad data: commit fails and removes the file */
	is_int(qf_new_open(&q), 0, "qf_new_open 2");
	snprintf(id, sizeof(id), "%s", q.id);
	qf_put_time(&q.w, now_us());
	qf_put_str(&q.w, QREC_SENDER, "a\r\n@b");
	is_int(qf_commit(&q), -1, "commit of bad data fails");
	buf_reset(&d);
	buf_printf(&d, "%s/incoming/%s", tmpdir, id);
	ok(access(buf_str(&d), F_OK) < 0, "refused file removed from incoming/");
	buf_reset(&d);
	buf_printf(&d, "%s/active/%s", tmpdir, id);
	ok(access(buf_str(&d), F_OK) < 0, "and not in active/");

	/* abort */
	is_int(qf_new_open(&q), 0, "qf_new_open 3");
	buf_reset(&d);
	buf_add(&d, q.incoming.data, q.incoming.len);
	qf_new_abort(&q);
	ok(access(buf_str(&d), F_OK) < 0, "aborted file removed");

	/* group commit */
	for (i = 0; i < 3; i++) {
		is_int(qf_new_open(&qs[i]), 0, "group open %d", i);
		qf_put_time(&qs[i].w, now_us());
		qf_put_str(&qs[i].w, QREC_SENDER, "");
		if (i != 1)
			qf_put_rcpt(&qs[i].w, "c@d", "", 0);
		else
			qf_put_str(&qs[i].w, QREC_SENDER, "x\n");
	}
	is_int(qf_commit_many(qs, 3, res), 1, "group commit: one failure");
	ok(res[0] == 0 && res[1] == -1 && res[2] == 0, "the bad one failed");
	for (i = 0; i < 3; i += 2) {
		buf_reset(&d);
		buf_printf(&d, "%s/active/%s", tmpdir, qs[i].id);
		ok(access(buf_str(&d), F_OK) == 0, "group file %d in active/", i);
		unlink(buf_str(&d));
	}
	/* a larger batch takes the one-syncfs path */
	{
		struct qf_new qb[6];
		int rb[6], j, good = 1;

		for (j = 0; j < 6; j++) {
			is_int(qf_new_open(&qb[j]), 0, "batch open %d", j);
			qf_put_time(&qb[j].w, now_us());
			qf_put_str(&qb[j].w, QREC_SENDER, j == 4 ? "bad\r" : "");
			qf_put_rcpt(&qb[j].w, "c@d", "", 0);
			qf_content_write(&qb[j].w, "x\n", 2);
		}
		is_int(qf_commit_many(qb, 6, rb), 1, "batch of 6: one failure");
		for (j = 0; j < 6; j++) {
			buf_reset(&d);
			buf_printf(&d, "%s/active/%s", tmpdir, qb[j].id);
			if ((j == 4) != (rb[j] == -1) || (access(buf_str(&d), F_OK) == 0) != (j != 4))
				good = 0;
			unlink(buf_str(&d));
		}
		ok(good, "batch of 6: the good files are in active/, the bad one is not");
	}
	/* missing spool: error, not a crash */
	conf_set("queue_directory", "/nonexistent/spool");
	is_int(qf_new_open(&q), -1, "qf_new_open without a spool fails");
	buf_free(&d);
	buf_free(&err);
}

/* qf_rcpt_key: which recipients of one message are the same one. */
static void
test_rcpt_key(void)
{
	char *local[] = { "example.test", "Other.Test", NULL };
	static const struct { const char *a, *b; int same; } c[] = {
		{ "alice@example.test", "alice@EXAMPLE.test", 1 },
		{ "alice@example.test", "Alice@example.test", 1 },	/* hermod's own mailbox */
		{ "alice@example.test", "ALICE@Example.Test", 1 },
		{ "bob@other.test", "BOB@other.test", 1 },
		{ "alice", "ALICE", 1 },				/* unqualified: local */
		{ "u@remote.test", "u@REMOTE.TEST", 1 },
		{ "u@remote.test", "U@remote.test", 0 },		/* RFC 5321 2.4 */
		{ "\"u\"@remote.test", "u@remote.test", 1 },		/* quoting does not matter */
		{ "alice@example.test", "alice@remote.test", 0 },
		{ "alice+x@example.test", "alice@example.test", 0 },	/* local decides later */
		{ "\"a@b\"@c.test", "a@\"b@c.test\"", 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char *ka = qf_rcpt_key(c[i].a, local), *kb = qf_rcpt_key(c[i].b, local);

		ok((strcmp(ka, kb) == 0) == c[i].same, "rcpt key: %s %s %s", c[i].a,
		    c[i].same ? "==" : "!=", c[i].b);
		free(ka);
		free(kb);
	}
	{
		char *ka = qf_rcpt_key("Alice@example.test", NULL), *kb = qf_rcpt_key("alice@example.test", NULL);

		ok(strcmp(ka, kb) != 0, "rcpt key: no local domains, local parts keep their case");
		free(ka);
		free(kb);
	}
	ok(qf_digest_valid("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
	    "digest: 64 lower-case hex digits");
	ok(!qf_digest_valid("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"),
	    "digest: upper case refused");
	ok(!qf_digest_valid("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"),
	    "digest: too short");
	ok(!qf_digest_valid("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0"),
	    "digest: too long");
	ok(!qf_digest_valid(""), "digest: empty");
}

int
main(void)
{
	struct buf cmd = BUF_INIT;

	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	log_init("test_queue_file", LOG_FLAG_STDERR);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_handmade();
	test_limits();
	test_writer();
	test_ids();
	test_commit();
	test_rcpt_key();
	buf_printf(&cmd, "rm -rf %s", tmpdir);
	if (system(buf_str(&cmd)) != 0)
		printf("# cleanup of %s failed\n", tmpdir);
	buf_free(&cmd);
	return done_testing();
}
