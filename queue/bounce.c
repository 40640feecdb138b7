/*
 * bounce.c: compose RFC 3464 delivery status notifications and put them
 * into the queue (see bounce.h).
 *
 * The notice is a multipart/report (RFC 6522) with three parts: a
 * text/plain explanation for people, a message/delivery-status part
 * (RFC 3464 sections 2.2 and 2.3: Reporting-MTA, Arrival-Date, and per
 * recipient Final-Recipient, Original-Recipient, Action, Status,
 * Diagnostic-Code, Last-Attempt-Date), and the original message: in full
 * as message/rfc822 when it is no larger than bounce_size_limit and the
 * sender did not ask for RET=HDRS, else its header section as
 * text/rfc822-headers.  Delay warnings and success notices always carry
 * the header only.
 *
 * Invariants: every text that comes from elsewhere (agent diagnostics,
 * ENVID, addresses) is reduced to printable characters on one line, so
 * nothing can inject header fields or MIME structure; the boundary is
 * checked not to occur in the returned content.
 */
#include "bounce.h"
#include "conf.h"
#include "util.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define TEXT_MAX	900	/* longest diagnostic text put in a notice */

/* Append s as one printable line of at most max bytes: control
 * characters become spaces; 8-bit bytes are kept (UTF-8 addresses). */
static void
add_clean(struct buf *out, const char *s, size_t max)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; s[i] && i < max; i++) {
		unsigned char c = (unsigned char)s[i];

		buf_addc(out, c < 0x20 || c == 0x7f ? ' ' : c);
	}
	if (s[i])
		buf_adds(out, "...");
}

/* The same for ASCII-only fields (ENVID, diagnostic texts). */
static void
add_ascii(struct buf *out, const char *s, size_t max)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; s[i] && i < max; i++) {
		unsigned char c = (unsigned char)s[i];

		buf_addc(out, c < 0x20 || c >= 0x7f ? (c == '\t' ? ' ' : '?') : c);
	}
	if (s[i])
		buf_adds(out, "...");
}

static void
add_date(struct buf *out, int64_t t)
{
	rfc5322_date(out, (time_t)t);
}

/* Length of the header section of content[0..len), including the empty
 * line that ends it (or everything when there is none). */
static size_t
header_len(const char *c, size_t len)
{
	size_t i;

	if (len && c[0] == '\n')
		return 1;
	for (i = 0; i + 1 < len; i++)
		if (c[i] == '\n' && c[i + 1] == '\n')
			return i + 2;
	return len;
}

static int
has_8bit(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] & 0x80)
			return 1;
	return 0;
}

static void
make_boundary(struct buf *bd, const struct bounce_msg *b, const char *inc, size_t inclen)
{
	unsigned char r[8];
	int tries;

	for (tries = 0; ; tries++) {
		size_t i;

		if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
			uint64_t v = (uint64_t)now_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)tries;

			memcpy(r, &v, sizeof(r));
		}
		buf_reset(bd);
		buf_printf(bd, "=_%s.", b->dsn_id ? b->dsn_id : "x");
		for (i = 0; i < sizeof(r); i++)
			buf_printf(bd, "%02x", r[i]);
		buf_printf(bd, "/%s", b->hostname);
		if (!inclen || !memmem(inc, inclen, bd->data, bd->len) || tries > 10)
			break;
	}
}

static void
add_orcpt(struct buf *out, const char *orcpt)
{
	const char *semi = strchr(orcpt, ';');

	buf_adds(out, "Original-Recipient: ");
	if (semi) {
		/* addr-type ";" address, as given with ORCPT= */
		const char *t;

		for (t = orcpt; t < semi && t - orcpt < 32; t++)
			if (*t > 0x20 && *t < 0x7f)
				buf_addc(out, *t);
		buf_adds(out, "; ");
		add_clean(out, semi + 1 + strspn(semi + 1, " "), QF_ADDR_MAX);
	} else {
		buf_adds(out, "rfc822; ");
		add_clean(out, orcpt, QF_ADDR_MAX);
	}
	buf_addc(out, '\n');
}

void
bounce_compose(struct buf *out, const struct bounce_msg *b)
{
	static const char *subject[] = {
		"Undelivered Mail Returned to Sender",
		"Delayed Mail (still being retried)",
		"Successful Mail Delivery Report",
		"Successful Mail Delivery Report",
	};
	static const char *action[] = { "failed", "delayed", "delivered", "relayed" };
	struct buf bd = BUF_INIT;
	const char *inc = b->content ? b->content : "";
	size_t inclen = b->content_len, i;
	int full, eightbit, textbit;

	/* What part of the original goes back. */
	full = b->action == BOUNCE_FAILED && !b->ret_hdrs &&
	    b->content_size <= (off_t)b->size_limit && (off_t)inclen >= b->content_size;
	if (full)
		inclen = (size_t)b->content_size;
	else {
		inclen = header_len(inc, inclen);
		if (inclen > b->size_limit) {
			/* cut at the last line end within the limit */
			inclen = b->size_limit;
			while (inclen > 0 && inc[inclen - 1] != '\n')
				inclen--;
		}
		/* the empty line ending the header is not part of it */
		while (inclen > 0 && inc[inclen - 1] == '\n' &&
		    (inclen == 1 || inc[inclen - 2] == '\n'))
			inclen--;
	}
	eightbit = has_8bit(inc, inclen);
	textbit = b->sender && has_8bit(b->sender, strlen(b->sender));
	for (i = 0; i < b->nrcpt; i++)
		if (has_8bit(b->rcpt[i].addr, strlen(b->rcpt[i].addr)) ||
		    (b->rcpt[i].text && has_8bit(b->rcpt[i].text, strlen(b->rcpt[i].text))))
			textbit = 1;
	make_boundary(&bd, b, inc, inclen);

	/* Header. */
	buf_printf(out, "From: Mail Delivery System <MAILER-DAEMON@%s>\n", b->hostname);
	buf_adds(out, "To: <");
	add_clean(out, b->sender, QF_ADDR_MAX);
	buf_adds(out, ">\n");
	buf_printf(out, "Subject: %s\n", subject[b->action]);
	buf_adds(out, "Date: ");
	add_date(out, b->now);
	buf_addc(out, '\n');
	buf_printf(out, "Message-ID: <%s.%lld@%s>\n", b->dsn_id ? b->dsn_id : b->queue_id,
	    (long long)b->now, b->hostname);
	buf_adds(out, "Auto-Submitted: auto-replied\n");
	buf_adds(out, "MIME-Version: 1.0\n");
	buf_printf(out, "Content-Type: multipart/report; report-type=delivery-status;\n"
	    "\tboundary=\"%s\"\n", buf_str(&bd));
	buf_printf(out, "Content-Transfer-Encoding: %s\n", eightbit || textbit ? "8bit" : "7bit");
	buf_adds(out, "\nThis is a MIME-encapsulated message.\n\n");

	/* Part 1: for people. */
	buf_printf(out, "--%s\n", buf_str(&bd));
	buf_printf(out, "Content-Description: Notification\n"
	    "Content-Type: text/plain; charset=%s\n"
	    "Content-Transfer-Encoding: %s\n\n", textbit ? "utf-8" : "us-ascii",
	    textbit ? "8bit" : "7bit");
	buf_printf(out, "This is the %s mail system at host %s.\n\n", b->mail_name, b->hostname);
	switch (b->action) {
	case BOUNCE_FAILED:
		buf_adds(out,
		    "Your message could not be delivered to one or more of its\n"
		    "recipients.  The reasons are listed below, and the message\n"
		    "(or its header) is attached.\n\n"
		    "If you need help, forward this whole report to your postmaster.\n");
		break;
	case BOUNCE_DELAYED:
		buf_adds(out,
		    "####################################################################\n"
		    "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
		    "####################################################################\n\n"
		    "Your message could not be delivered yet to the recipients below.\n"
		    "The mail system will keep trying until ");
		add_date(out, b->retry_until);
		buf_adds(out, ".\n");
		break;
	case BOUNCE_DELIVERED:
		buf_adds(out,
		    "Your message was delivered to the recipients below, as you\n"
		    "asked with a delivery status notification request.\n");
		break;
	case BOUNCE_RELAYED:
		buf_adds(out,
		    "Your message was relayed to the recipients' mail systems below,\n"
		    "which do not offer delivery status notifications: you will\n"
		    "get no further notice from them.\n");
		break;
	}
	buf_addc(out, '\n');
	for (i = 0; i < b->nrcpt; i++) {
		buf_addc(out, '<');
		add_clean(out, b->rcpt[i].addr, QF_ADDR_MAX);
		buf_adds(out, ">: ");
		add_clean(out, b->rcpt[i].text, TEXT_MAX);
		buf_addc(out, '\n');
	}
	buf_addc(out, '\n');

	/* Part 2: for programs (RFC 3464). */
	buf_printf(out, "--%s\n", buf_str(&bd));
	buf_adds(out, "Content-Description: Delivery report\n"
	    "Content-Type: message/delivery-status\n\n");
	buf_printf(out, "Reporting-MTA: dns; %s\n", b->hostname);
	buf_printf(out, "X-Hermod-Queue-ID: %s\n", b->queue_id);
	if (b->envid && *b->envid) {
		buf_adds(out, "Original-Envelope-Id: ");
		add_ascii(out, b->envid, 100);
		buf_addc(out, '\n');
	}
	buf_adds(out, "X-Hermod-Sender: rfc822; ");
	add_clean(out, b->sender, QF_ADDR_MAX);
	buf_adds(out, "\nArrival-Date: ");
	add_date(out, b->arrival_us / 1000000);
	buf_addc(out, '\n');
	for (i = 0; i < b->nrcpt; i++) {
		const struct bounce_rcpt *r = &b->rcpt[i];

		buf_adds(out, "\nFinal-Recipient: rfc822; ");
		add_clean(out, r->addr, QF_ADDR_MAX);
		buf_addc(out, '\n');
		if (r->orcpt && *r->orcpt)
			add_orcpt(out, r->orcpt);
		buf_printf(out, "Action: %s\n", action[b->action]);
		buf_printf(out, "Status: %s\n", r->dsn && qf_dsn_valid(r->dsn) ? r->dsn :
		    b->action == BOUNCE_FAILED ? "5.0.0" : b->action == BOUNCE_DELAYED ? "4.0.0" : "2.0.0");
		buf_adds(out, "Diagnostic-Code: X-hermod; ");
		add_ascii(out, r->text, TEXT_MAX);
		buf_addc(out, '\n');
		buf_adds(out, "Last-Attempt-Date: ");
		add_date(out, r->last_attempt ? r->last_attempt : b->now);
		buf_addc(out, '\n');
		if (b->action == BOUNCE_DELAYED) {
			buf_adds(out, "Will-Retry-Until: ");
			add_date(out, b->retry_until);
			buf_addc(out, '\n');
		}
	}
	buf_addc(out, '\n');

	/* Part 3: the original. */
	buf_printf(out, "--%s\n", buf_str(&bd));
	if (full)
		buf_printf(out, "Content-Description: %s\nContent-Type: message/rfc822\n",
		    b->action == BOUNCE_FAILED ? "Undelivered Message" : "Message");
	else
		buf_printf(out, "Content-Description: %s\nContent-Type: text/rfc822-headers\n",
		    b->action == BOUNCE_FAILED ? "Undelivered Message Headers" : "Message Headers");
	buf_printf(out, "Content-Transfer-Encoding: %s\n\n", eightbit ? "8bit" : "7bit");
	buf_add(out, inc, inclen);
	if (inclen && inc[inclen - 1] != '\n')
		buf_addc(out, '\n');
	buf_printf(out, "\n--%s--\n", buf_str(&bd));
	buf_free(&bd);
}

int
bounce_read_content(int fd, const struct qf_envelope *env, size_t limit, struct buf *out)
{
	return qf_content_head(fd, env, limit + 1, out);
}

int
bounce_queue(struct bounce_msg *b, char id[QUEUE_ID_MAX])
{
	struct qf_new q;
	struct buf body = BUF_INIT;

	if (qf_new_open(&q) < 0)
		return -1;
	b->dsn_id = q.id;
	bounce_compose(&body, b);
	qf_put_time(&q.w, now_us());
	qf_put_str(&q.w, QREC_SENDER, "");
	qf_put_str(&q.w, QREC_CLIENT, "local bounce");
	qf_put_rcpt(&q.w, b->sender, "", DSN_NOTIFY_NEVER);
	qf_content_start(&q.w);
	qf_content_write(&q.w, body.data, body.len);
	buf_free(&body);
	memcpy(id, q.id, QUEUE_ID_MAX);
	b->dsn_id = NULL;
	if (qf_commit(&q) < 0)
		return -1;
	return 0;
}
