/*
 * test_bounce: the RFC 3464 notices are parsed back (header, MIME
 * boundaries, the delivery-status fields of each recipient, the
 * returned original) rather than compared byte for byte, so that the
 * test checks the structure a mail client or a DSN parser relies on.
 */
#include "bounce.h"
#include "conf.h"
#include "util.h"
#include "test.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct part {
	char *header;		/* header section of the part */
	char *body;
};

struct parsed {
	char *header;		/* top-level header section */
	char *boundary;
	struct part parts[8];
	size_t nparts;
	int closed;		/* the close delimiter was seen */
	int clean;		/* no CR, no NUL, no over-long line */
};

/* Value of a header field (unfolded) from a header section, or NULL. */
static char *
field(const char *hdr, const char *name)
{
	size_t nl = strlen(name);
	const char *p = hdr;
	struct buf v = BUF_INIT;

	while (p && *p) {
		if (!strncasecmp(p, name, nl) && p[nl] == ':') {
			const char *s = p + nl + 1;

			for (;;) {
				const char *e = strchr(s, '\n');

				if (!e)
					e = s + strlen(s);
				buf_add(&v, s, (size_t)(e - s));
				if (*e == '\n' && (e[1] == ' ' || e[1] == '\t')) {
					s = e + 1;
					continue;
				}
				break;
			}
			{
				char *r = xstrdup(str_trim(v.data ? v.data : (char *)""));

				buf_free(&v);
				return r;
			}
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	buf_free(&v);
	return NULL;
}

static void
parse(const char *msg, struct parsed *r)
{
	const char *body = strstr(msg, "\n\n"), *p, *ct;
	struct buf delim = BUF_INIT;
	char *ctv, *b;

	memset(r, 0, sizeof(*r));
	r->clean = !strchr(msg, '\r');
	{
		const char *l = msg;

		while (l && *l) {
			const char *e = strchr(l, '\n');

			if ((e ? (size_t)(e - l) : strlen(l)) > 998)
				r->clean = 0;
			l = e ? e + 1 : NULL;
		}
	}
	if (!body)
		return;
	r->header = xstrndup(msg, (size_t)(body - msg + 1));
	body += 2;
	ctv = field(r->header, "Content-Type");
	if (!ctv)
		return;
	ct = strstr(ctv, "boundary=\"");
	if (ct) {
		ct += 10;
		r->boundary = xstrndup(ct, strcspn(ct, "\""));
	}
	free(ctv);
	if (!r->boundary)
		return;
	buf_printf(&delim, "\n--%s", r->boundary);
	/* the body starts with a preamble; find the first delimiter line */
	p = strstr(body - 1, buf_str(&delim));
	while (p) {
		const char *start = p + delim.len, *next, *ph;

		if (!strncmp(start, "--", 2)) {
			r->closed = 1;
			break;
		}
		if (*start != '\n' || r->nparts >= 8)
			break;
		start++;
		next = strstr(start - 1, buf_str(&delim));
		if (!next)
			break;
		ph = strstr(start, "\n\n");
		if (!ph || ph > next) {
			r->parts[r->nparts].header = xstrndup(start, (size_t)(next - start));
			r->parts[r->nparts].body = xstrdup("");
		} else {
			r->parts[r->nparts].header = xstrndup(start, (size_t)(ph - start + 1));
			/* the LF before a delimiter belongs to the delimiter */
			b = xstrndup(ph + 2, (size_t)(next - ph - 2));
			r->parts[r->nparts].body = b;
		}
		r->nparts++;
		p = next;
	}
	buf_free(&delim);
}

static void
parsed_free(struct parsed *r)
{
	size_t i;

	free(r->header);
	free(r->boundary);
	for (i = 0; i < r->nparts; i++) {
		free(r->parts[i].header);
		free(r->parts[i].body);
	}
}

/* The blocks of a message/delivery-status body (separated by empty lines). */
static char **
ds_blocks(const char *body, size_t *n)
{
	char **v = NULL;
	const char *p = body;

	*n = 0;
	while (*p) {
		const char *e = strstr(p, "\n\n");
		size_t len = e ? (size_t)(e - p + 1) : strlen(p);

		if (len > 1) {
			v = xreallocarray(v, *n + 1, sizeof(char *));
			v[(*n)++] = xstrndup(p, len);
		}
		if (!e)
			break;
		p = e + 2;
	}
	return v;
}

static int
has_field(const char *hdr, const char *name, const char *want)
{
	char *v = field(hdr, name);
	int r = v && (!want || !strcmp(v, want));

	if (v && want && !r)
		printf("#   %s: got '%s', want '%s'\n", name, v, want);
	free(v);
	return r;
}

static const char original[] =
    "From: Alice <alice@example.test>\n"
    "To: nobody@example.test\n"
    "Subject: test message\n"
    "Message-ID: <orig-1@example.test>\n"
    "\n"
    "Hello,\n"
    "this is the body.\n";

static void
base(struct bounce_msg *b, struct bounce_rcpt *r)
{
	memset(b, 0, sizeof(*b));
	memset(r, 0, 2 * sizeof(*r));
	r[0].addr = "nobody@example.test";
	r[0].orcpt = "rfc822;Nobody@Example.TEST";
	r[0].dsn = "5.1.1";
	r[0].text = "unknown user: \"nobody\"";
	r[0].last_attempt = 1700000100;
	r[1].addr = "other@example.test";
	r[1].orcpt = "";
	r[1].dsn = "5.2.2";
	r[1].text = "mailbox full";
	r[1].last_attempt = 1700000100;
	b->action = BOUNCE_FAILED;
	b->queue_id = "0AbCdEfGhIj42";
	b->dsn_id = "0AbCdEfGhIk43";
	b->sender = "alice@example.test";
	b->envid = "ENV-123";
	b->arrival_us = 1700000000000000LL;
	b->now = 1700000200;
	b->retry_until = 1700432000;
	b->hostname = "mx.example.test";
	b->mail_name = "hermod";
	b->rcpt = r;
	b->nrcpt = 2;
	b->content = original;
	b->content_len = strlen(original);
	b->content_size = (off_t)strlen(original);
	b->size_limit = 50000;
}

static void
test_failed_notice(void)
{
	struct bounce_msg b;
	struct bounce_rcpt r[2];
	struct buf out = BUF_INIT;
	struct parsed p;
	char **blk;
	size_t nblk, i;

	base(&b, r);
	bounce_compose(&out, &b);
	parse(buf_str(&out), &p);
	ok(p.header != NULL, "notice has a header section");
	ok(p.clean, "no CR and no line over 998 bytes");
	ok(has_field(p.header, "From", "Mail Delivery System <MAILER-DAEMON@mx.example.test>"), "From:");
	ok(has_field(p.header, "To", "<alice@example.test>"), "To: the sender");
	ok(has_field(p.header, "Subject", "Undelivered Mail Returned to Sender"), "Subject:");
	ok(has_field(p.header, "Date", NULL), "Date:");
	ok(has_field(p.header, "Message-ID", NULL), "Message-ID:");
	ok(has_field(p.header, "Auto-Submitted", "auto-replied"), "Auto-Submitted: auto-replied");
	ok(has_field(p.header, "MIME-Version", "1.0"), "MIME-Version:");
	{
		char *ct = field(p.header, "Content-Type");

		ok(ct && !strncmp(ct, "multipart/report;", 17) && strstr(ct, "report-type=delivery-status"),
		    "multipart/report; report-type=delivery-status (%s)", ct ? ct : "none");
		free(ct);
	}
	ok(p.boundary && strlen(p.boundary) <= 70, "boundary of at most 70 characters");
	is_int(p.nparts, 3, "three parts");
	ok(p.closed, "closing delimiter present");
	if (p.nparts != 3) {
		parsed_free(&p);
		buf_free(&out);
		return;
	}
	ok(has_field(p.parts[0].header, "Content-Type", "text/plain; charset=us-ascii"), "part 1 text/plain");
	ok(strstr(p.parts[0].body, "<nobody@example.test>: unknown user: \"nobody\"") != NULL, "part 1 names recipient 1 and the reason");
	ok(strstr(p.parts[0].body, "<other@example.test>: mailbox full") != NULL, "part 1 names recipient 2");
	ok(has_field(p.parts[1].header, "Content-Type", "message/delivery-status"), "part 2 message/delivery-status");
	blk = ds_blocks(p.parts[1].body, &nblk);
	is_int(nblk, 3, "per-message block and two per-recipient blocks");
	if (nblk == 3) {
		ok(has_field(blk[0], "Reporting-MTA", "dns; mx.example.test"), "Reporting-MTA");
		ok(has_field(blk[0], "X-Hermod-Queue-ID", "0AbCdEfGhIj42"), "X-Hermod-Queue-ID");
		ok(has_field(blk[0], "Original-Envelope-Id", "ENV-123"), "Original-Envelope-Id");
		ok(has_field(blk[0], "Arrival-Date", NULL), "Arrival-Date");
		ok(has_field(blk[1], "Final-Recipient", "rfc822; nobody@example.test"), "Final-Recipient 1");
		ok(has_field(blk[1], "Original-Recipient", "rfc822; Nobody@Example.TEST"), "Original-Recipient 1");
		ok(has_field(blk[1], "Action", "failed"), "Action 1");
		ok(has_field(blk[1], "Status", "5.1.1"), "Status 1");
		ok(has_field(blk[1], "Diagnostic-Code", "X-hermod; unknown user: \"nobody\""), "Diagnostic-Code 1");
		ok(has_field(blk[1], "Last-Attempt-Date", NULL), "Last-Attempt-Date 1");
		ok(has_field(blk[2], "Final-Recipient", "rfc822; other@example.test"), "Final-Recipient 2");
		ok(!has_field(blk[2], "Original-Recipient", NULL), "no Original-Recipient without ORCPT");
		ok(has_field(blk[2], "Status", "5.2.2"), "Status 2");
	}
	for (i = 0; i < nblk; i++)
		free(blk[i]);
	free(blk);
	ok(has_field(p.parts[2].header, "Content-Type", "message/rfc822"), "part 3 message/rfc822");
	is_str(p.parts[2].body, original, "part 3 is the original message");
	parsed_free(&p);
	buf_free(&out);
}

static void
test_variants(void)
{
	struct bounce_msg b;
	struct bounce_rcpt r[2];
	struct buf out = BUF_INIT, big = BUF_INIT;
	struct parsed p;
	char **blk;
	size_t nblk, i;

	/* RET=HDRS: header only */
	base(&b, r);
	b.ret_hdrs = 1;
	bounce_compose(&out, &b);
	parse(buf_str(&out), &p);
	is_int(p.nparts, 3, "RET=HDRS: three parts");
	if (p.nparts == 3) {
		ok(has_field(p.parts[2].header, "Content-Type", "text/rfc822-headers"), "RET=HDRS: text/rfc822-headers");
		ok(strstr(p.parts[2].body, "Subject: test message\n") && !strstr(p.parts[2].body, "Hello"),
		    "RET=HDRS: header without the body");
	}
	parsed_free(&p);

	/* too big: header only, and the header itself is cut */
	base(&b, r);
	buf_adds(&big, "Subject: big\n");
	for (i = 0; i < 2000; i++)
		buf_printf(&big, "X-Filler-%zu: 0123456789012345678901234567890123456789\n", i);
	buf_adds(&big, "\n");
	for (i = 0; i < 10000; i++)
		buf_adds(&big, "body line body line body line\n");
	b.content = big.data;
	b.content_len = 50001;
	b.content_size = (off_t)big.len;
	buf_reset(&out);
	bounce_compose(&out, &b);
	parse(buf_str(&out), &p);
	is_int(p.nparts, 3, "too big: three parts");
	ok(p.closed, "too big: closed");
	if (p.nparts == 3) {
		ok(has_field(p.parts[2].header, "Content-Type", "text/rfc822-headers"), "too big: header only");
		ok(strlen(p.parts[2].body) <= 50001, "too big: at most bounce_size_limit returned (%zu)", strlen(p.parts[2].body));
		ok(!strstr(p.parts[2].body, "body line"), "too big: no body");
	}
	parsed_free(&p);

	/* delay warning */
	base(&b, r);
	b.action = BOUNCE_DELAYED;
	r[0].dsn = "4.4.1";
	r[0].text = "connect to mx: Connection refused";
	r[1].dsn = "4.2.2";
	buf_reset(&out);
	bounce_compose(&out, &b);
	parse(buf_str(&out), &p);
	ok(has_field(p.header, "Subject", "Delayed Mail (still being retried)"), "delay: Subject");
	is_int(p.nparts, 3, "delay: three parts");
	if (p.nparts == 3) {
		ok(strstr(p.parts[0].body, "WARNING ONLY") != NULL, "delay: says it is a warning");
		blk = ds_blocks(p.parts[1].body, &nblk);
		ok(nblk == 3 && has_field(blk[1], "Action", "delayed") && has_field(blk[1], "Status", "4.4.1") &&
		    has_field(blk[1], "Will-Retry-Until", NULL), "delay: Action delayed, Status 4.4.1, Will-Retry-Until");
		for (i = 0; i < nblk; i++)
			free(blk[i]);
		free(blk);
		ok(has_field(p.parts[2].header, "Content-Type", "text/rfc822-headers"), "delay: header only");
	}
	parsed_free(&p);

	/* success notice */
	base(&b, r);
	b.action = BOUNCE_DELIVERED;
	b.nrcpt = 1;
	r[0].dsn = "2.0.0";
	r[0].text = "delivered to maildir";
	b.envid = NULL;
	buf_reset(&out);
	bounce_compose(&out, &b);
	parse(buf_str(&out), &p);
	ok(has_field(p.header, "Subject", "Successful Mail Delivery Report"), "success: Subject");
	if (p.nparts == 3) {
		blk = ds_blocks(p.parts[1].body, &nblk);
		ok(nblk == 2 && has_field(blk[1], "Action", "delivered") && has_field(blk[1], "Status", "2.0.0"),
		    "success: Action delivered, Status 2.0.0");
		ok(nblk == 2 && !has_field(blk[0], "Original-Envelope-Id", NULL), "no ENVID: no Original-Envelope-Id");
		for (i = 0; i < nblk; i++)
			free(blk[i]);
		free(blk);
	} else
		ok(0, "success: three parts");
	parsed_free(&p);

	/* hostile diagnostic text and ENVID cannot inject fields or parts */
	base(&b, r);
	r[0].text = "bad\r\nStatus: 2.0.0\n\n--x--\nAction: delivered";
	r[1].dsn = "9.9.9";
	b.envid = "e\nX-Evil: 1";
	buf_reset(&out);
	bounce_compose(&out, &b);
	parse(buf_str(&out), &p);
	ok(p.clean, "hostile text: no CR in the notice");
	is_int(p.nparts, 3, "hostile text: still three parts");
	if (p.nparts == 3) {
		blk = ds_blocks(p.parts[1].body, &nblk);
		is_int(nblk, 3, "hostile text: still three blocks");
		if (nblk == 3) {
			ok(has_field(blk[1], "Status", "5.1.1"), "hostile text: Status unchanged");
			ok(has_field(blk[1], "Action", "failed"), "hostile text: Action unchanged");
			ok(has_field(blk[2], "Status", "5.0.0"), "invalid status code replaced by 5.0.0");
			ok(!has_field(blk[0], "X-Evil", NULL), "ENVID cannot add a field");
		}
		for (i = 0; i < nblk; i++)
			free(blk[i]);
		free(blk);
	}
	parsed_free(&p);

	/* content without a final newline, and without a header */
	base(&b, r);
	b.content = "no header and no newline";
	b.content_len = b.content_size = 24;
	buf_reset(&out);
	bounce_compose(&out, &b);
	parse(buf_str(&out), &p);
	ok(p.nparts == 3 && p.closed && !strcmp(p.parts[2].body, "no header and no newline\n"),
	    "content without newline still closed properly");
	parsed_free(&p);

	/* 8-bit content: Content-Transfer-Encoding 8bit */
	base(&b, r);
	b.content = "Subject: caf\xc3\xa9\n\nbody\n";
	b.content_len = b.content_size = (off_t)strlen(b.content);
	buf_reset(&out);
	bounce_compose(&out, &b);
	parse(buf_str(&out), &p);
	ok(has_field(p.header, "Content-Transfer-Encoding", "8bit"), "8-bit original: top-level 8bit");
	ok(p.nparts == 3 && has_field(p.parts[2].header, "Content-Transfer-Encoding", "8bit"), "8-bit original: part 3 8bit");
	parsed_free(&p);
	buf_free(&out);
	buf_free(&big);
}

static void
test_queue(void)
{
	char dir[] = "/tmp/test_bounce.XXXXXX";
	struct buf d = BUF_INIT, err = BUF_INIT, content = BUF_INIT;
	struct bounce_msg b;
	struct bounce_rcpt r[2];
	struct qf_envelope env;
	char id[QUEUE_ID_MAX];
	int fd;

	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp");
		return;
	}
	conf_set("queue_directory", dir);
	conf_set("privileged", "no");
	buf_printf(&d, "%s/incoming", dir);
	mkdir(buf_str(&d), 0700);
	buf_reset(&d);
	buf_printf(&d, "%s/active", dir);
	mkdir(buf_str(&d), 0700);
	base(&b, r);
	b.dsn_id = NULL;
	is_int(bounce_queue(&b, id), 0, "bounce_queue");
	ok(queue_id_valid(id), "notice has a queue ID");
	buf_reset(&d);
	buf_printf(&d, "%s/active/%s", dir, id);
	fd = open(buf_str(&d), O_RDONLY);
	ok(fd >= 0, "notice is in active/");
	is_int(qf_read(fd, &env, &err), 0, "notice is a valid queue file");
	is_str(env.sender, "", "notice is from <>");
	ok(env.nrcpt == 1 && !strcmp(env.rcpt[0].addr, "alice@example.test"), "notice goes to the original sender");
	ok(env.nrcpt == 1 && env.rcpt[0].notify == DSN_NOTIFY_NEVER, "notice has NOTIFY=NEVER");
	is_int(bounce_read_content(fd, &env, 100000, &content), 0, "read content back");
	{
		char want[128];

		snprintf(want, sizeof(want), "Message-ID: <%s.", id);
		ok(strstr(buf_str(&content), want) != NULL, "Message-ID uses the notice's queue ID");
	}
	is_int(bounce_read_content(fd, &env, 10, &content), 0, "read 11 bytes");
	is_int(content.len, 11, "bounce_read_content reads limit + 1 bytes");
	qf_envelope_free(&env);
	close(fd);
	unlink(buf_str(&d));
	buf_reset(&d);
	buf_printf(&d, "rm -rf %s", dir);
	if (system(buf_str(&d)) != 0)
		printf("# cleanup failed\n");
	buf_free(&d);
	buf_free(&err);
	buf_free(&content);
}

int
main(void)
{
	log_init("test_bounce", LOG_FLAG_STDERR);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_failed_notice();
	test_variants();
	test_queue();
	return done_testing();
}
