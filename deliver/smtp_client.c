/*
 * smtp_client.c: the SMTP/LMTP protocol state machine of the smtp agent
 * (RFC 5321, 2033, 3207, 1870, 6152, 2920, 3461).
 *
 * smtp_session_open: greeting, EHLO (HELO when EHLO is refused; LHLO for
 * LMTP), STARTTLS per smtp_tls_security_level and EHLO again.
 * smtp_transaction: MAIL, RCPT for each recipient without a result and
 * DATA -- sent together when the server offers PIPELINING -- then the
 * content streamed from the queue file (LF -> CRLF, dot-stuffed) and the
 * final reply (LMTP: one per accepted recipient).
 *
 * Invariants: every recipient ends with exactly one result; a host-level
 * failure (4xx greeting/EHLO/MAIL, lost connection before the content
 * was sent) leaves the recipients without a result so that the caller
 * tries the next host; once the content may have been received nothing
 * is tried elsewhere (a duplicate is possible only if the server took
 * the mail and then failed to say so).
 */
#include "smtp.h"
#include "conf.h"
#include "log.h"
#include "smtp_cmd.h"
#include "tls.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static SSL_CTX *tls_ctx;
static int tls_level;		/* 0 none, 1 may, 2 encrypt, 3 verify */

int64_t
smtp_deadline(const char *param)
{
	long long t = conf_time(param);

	return mono_ms() + (t > 0 ? t * 1000 : 300000);
}

void
smtp_client_init(void)
{
	const char *lvl = conf_str("smtp_tls_security_level");
	struct buf err = BUF_INIT;

	if (!strcasecmp(lvl, "none"))
		tls_level = 0;
	else if (!strcasecmp(lvl, "may"))
		tls_level = 1;
	else if (!strcasecmp(lvl, "encrypt"))
		tls_level = 2;
	else if (!strcasecmp(lvl, "verify") || !strcasecmp(lvl, "secure"))
		tls_level = 3;
	else {
		msg_warn("smtp_tls_security_level = %s: unknown, using encrypt", lvl);
		tls_level = 2;
	}
	if (tls_level) {
		const char *ca = conf_str("smtp_tls_CAfile");

		tls_ctx = tls_client_ctx(tls_level == 3 && *ca ? ca : NULL, &err);
		if (!tls_ctx) {
			msg_error("TLS client context: %s; STARTTLS disabled", buf_str(&err));
			if (tls_level == 1)
				tls_level = 0;
		} else if (tls_level == 3 && !*ca && SSL_CTX_set_default_verify_paths(tls_ctx) != 1)
			msg_warn("cannot load the system's CA certificates");
	}
	buf_free(&err);
}

void
sres_set(struct sres *r, int status, const char *dsn, const char *fmt, ...)
{
	struct buf t = BUF_INIT;
	va_list ap;
	size_t i;

	r->status = status;
	snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
	va_start(ap, fmt);
	buf_vprintf(&t, fmt, ap);
	va_end(ap);
	buf_reset(&r->text);
	for (i = 0; i < t.len && i < SMTP_TEXT_MAX; i++) {
		unsigned char c = (unsigned char)t.data[i];

		buf_addc(&r->text, c < 0x20 || c == 0x7f ? ' ' : (int)c);
	}
	buf_free(&t);
}

/* A result from a server reply: "CODE ESC text (relay=R)". */
static void
sres_reply(struct sres *res, const struct smtp_reply *r, const char *relay, const char *dflt)
{
	struct buf t = BUF_INIT;
	char dsn[16];

	smtp_reply_dsn(r, dflt, dsn);
	smtp_reply_oneline(r, SMTP_TEXT_MAX - 100, &t);
	sres_set(res, r->code < 400 ? R_SENT : r->code < 500 ? R_DEFER : R_BOUNCE, dsn,
	    "%s (relay=%s)", buf_str(&t), relay);
	buf_free(&t);
}

/* A host-level failure from an error text (not a reply). */
static void
sres_err(struct sres *res, const char *dsn, const struct buf *err)
{
	sres_set(res, R_DEFER, dsn, "%s", buf_str(err));
}

static int
hello(struct sconn *c, struct smtp_reply *r, struct sres *fail, struct buf *err)
{
	const char *helo = conf_str("smtp_helo_name");

	sconn_printf(c, "%s %s\r\n", c->lmtp ? "LHLO" : "EHLO", helo);
	if (sconn_flush(c, smtp_deadline("smtp_helo_timeout"), err) < 0 ||
	    sconn_reply(c, r, smtp_deadline("smtp_helo_timeout"), err) < 0) {
		sres_err(fail, "4.4.2", err);
		return -1;
	}
	if (r->code / 100 == 2) {
		smtp_ehlo_parse(r, &c->ext);
		return 0;
	}
	if (r->code / 100 == 5 && !c->lmtp) {
		memset(&c->ext, 0, sizeof(c->ext));
		sconn_printf(c, "HELO %s\r\n", helo);
		if (sconn_flush(c, smtp_deadline("smtp_helo_timeout"), err) < 0 ||
		    sconn_reply(c, r, smtp_deadline("smtp_helo_timeout"), err) < 0) {
			sres_err(fail, "4.4.2", err);
			return -1;
		}
		if (r->code / 100 == 2)
			return 0;
	}
	sres_reply(fail, r, c->relay, "X.5.0");
	if (r->code == 421)
		c->broken = 1;
	return -1;
}

int
smtp_session_open(struct sconn *c, const char *verify_host, struct sres *fail)
{
	struct smtp_reply r;
	struct buf err = BUF_INIT;
	int rc = -1;

	smtp_reply_init(&r);
	if (sconn_reply(c, &r, smtp_deadline("smtp_helo_timeout"), &err) < 0) {
		sres_err(fail, "4.4.2", &err);
		goto out;
	}
	if (r.code != 220) {
		sres_reply(fail, &r, c->relay, "X.3.0");
		if (fail->status == R_BOUNCE)
			fail->status = R_DEFER;	/* another MX may take it */
		c->broken = 1;
		goto out;
	}
	if (hello(c, &r, fail, &err) < 0)
		goto out;
	if (tls_level && tls_ctx && !c->notls && !c->lmtp && (c->ext.flags & SMTP_EXT_STARTTLS)) {
		sconn_send(c, "STARTTLS\r\n", 10);
		if (sconn_flush(c, smtp_deadline("smtp_helo_timeout"), &err) < 0 ||
		    sconn_reply(c, &r, smtp_deadline("smtp_helo_timeout"), &err) < 0) {
			sres_err(fail, "4.4.2", &err);
			goto out;
		}
		if (r.code != 220) {
			if (tls_level >= 2) {
				sres_reply(fail, &r, c->relay, "X.7.4");
				fail->status = R_DEFER;
				goto out;
			}
		} else {
			if (sconn_starttls(c, tls_ctx, tls_level == 3 ? verify_host : NULL,
			    smtp_deadline("smtp_helo_timeout"), &err) < 0) {
				sres_set(fail, R_DEFER, tls_level == 3 ? "4.7.5" : "4.7.0", "%s", buf_str(&err));
				if (tls_level == 1)
					fail->dsn[0] = 'T';	/* marker: retry without TLS */
				goto out;
			}
			if (hello(c, &r, fail, &err) < 0)
				goto out;
		}
	} else if (tls_level >= 2 && !c->lmtp) {
		sres_set(fail, R_DEFER, "4.7.4", "TLS is required, but was not offered by host %s", c->relay);
		goto out;
	}
	rc = 0;
out:
	smtp_reply_free(&r);
	buf_free(&err);
	return rc;
}

int
smtp_rset(struct sconn *c)
{
	struct smtp_reply r;
	struct buf err = BUF_INIT;
	int rc = -1;

	smtp_reply_init(&r);
	sconn_send(c, "RSET\r\n", 6);
	if (sconn_flush(c, smtp_deadline("smtp_command_timeout"), &err) == 0 &&
	    sconn_reply(c, &r, smtp_deadline("smtp_command_timeout"), &err) == 0 && r.code / 100 == 2)
		rc = 0;
	smtp_reply_free(&r);
	buf_free(&err);
	return rc;
}

static void
notify_param(struct sconn *c, unsigned n)
{
	const char *sep = "";

	if (!n)
		return;
	sconn_send(c, " NOTIFY=", 8);
	if (n & DSN_NOTIFY_NEVER) {
		sconn_send(c, "NEVER", 5);
		return;
	}
	if (n & DSN_NOTIFY_SUCCESS) {
		sconn_printf(c, "%sSUCCESS", sep);
		sep = ",";
	}
	if (n & DSN_NOTIFY_FAILURE) {
		sconn_printf(c, "%sFAILURE", sep);
		sep = ",";
	}
	if (n & DSN_NOTIFY_DELAY)
		sconn_printf(c, "%sDELAY", sep);
}

static void
xtext_param(struct sconn *c, const char *name, const char *v)
{
	struct buf x = BUF_INIT;

	smtp_xtext_encode(v, strlen(v), &x);
	sconn_printf(c, " %s=%s", name, buf_str(&x));
	buf_free(&x);
}

static void
rcpt_cmd(struct sconn *c, const struct srcpt *rc)
{
	sconn_printf(c, "RCPT TO:<%s>", rc->addr);
	if (c->ext.flags & SMTP_EXT_DSN) {
		notify_param(c, rc->notify);
		if (*rc->orcpt) {
			const char *semi = strchr(rc->orcpt, ';');

			if (semi) {
				struct buf x = BUF_INIT;

				smtp_xtext_encode(semi + 1, strlen(semi + 1), &x);
				sconn_printf(c, " ORCPT=%.*s;%s", (int)(semi - rc->orcpt), rc->orcpt, buf_str(&x));
				buf_free(&x);
			} else {
				struct buf x = BUF_INIT;

				smtp_xtext_encode(rc->orcpt, strlen(rc->orcpt), &x);
				sconn_printf(c, " ORCPT=rfc822;%s", buf_str(&x));
				buf_free(&x);
			}
		}
	}
	sconn_send(c, "\r\n", 2);
}

/* Content streaming: LF -> CRLF, a CR before LF dropped, dot-stuffing. */
struct dot {
	struct sconn *c;
	int bol;
	int64_t deadline;
	struct buf *err;
	int failed;
};

static int
dot_cb(void *ctx, const char *p, size_t n)
{
	struct dot *d = ctx;
	struct sconn *c = d->c;

	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t seg = nl ? (size_t)(nl - p) : n;

		if (d->bol && seg && *p == '.')
			buf_addc(&c->out, '.');
		if (nl) {
			size_t keep = seg;

			if (keep && p[keep - 1] == '\r')
				keep--;
			buf_add(&c->out, p, keep);
			buf_add(&c->out, "\r\n", 2);
			d->bol = 1;
			p += seg + 1;
			n -= seg + 1;
		} else {
			buf_add(&c->out, p, seg);
			if (seg)
				d->bol = 0;
			p += seg;
			n = 0;
		}
	}
	if (c->out.len >= 65536 && sconn_flush(c, d->deadline, d->err) < 0) {
		d->failed = 1;
		return 1;
	}
	return 0;
}

/* Set the result of every recipient still without one. */
static void
rest(struct sreq *q, const struct sres *res, const char *relay, int accepted_only)
{
	size_t i;

	for (i = 0; i < q->n; i++) {
		struct srcpt *rc = &q->r[i];

		if (rc->res.status != R_NONE || (accepted_only && !rc->accepted))
			continue;
		rc->res.status = res->status;
		memcpy(rc->res.dsn, res->dsn, sizeof(rc->res.dsn));
		buf_sets(&rc->res.text, buf_str(&res->text));
		free(rc->relay);
		rc->relay = relay ? xstrdup(relay) : NULL;
	}
}

static void
rcpt_result(struct srcpt *rc, const struct smtp_reply *r, const struct sconn *c, const char *dflt)
{
	sres_reply(&rc->res, r, c->relay, dflt);
	free(rc->relay);
	rc->relay = xstrdup(c->relay);
	if (rc->res.status == R_SENT && !(c->ext.flags & SMTP_EXT_DSN) &&
	    (rc->notify & DSN_NOTIFY_SUCCESS))
		rc->relayed = 1;
}

int
smtp_transaction(struct sconn *c, struct sreq *q, struct sres *fail)
{
	struct smtp_reply r;
	struct buf err = BUF_INIT;
	size_t i, todo = 0, naccepted = 0;
	int pipe = (c->ext.flags & SMTP_EXT_PIPELINING) != 0;
	int rc = TX_DONE, content_sent = 0;
	int64_t dl;

	smtp_reply_init(&r);
	for (i = 0; i < q->n; i++) {
		q->r[i].accepted = 0;
		todo += q->r[i].res.status == R_NONE;
	}
	if (!todo)
		goto out;
	if ((c->ext.flags & SMTP_EXT_SIZE) && c->ext.size > 0 && q->env.content_size > c->ext.size) {
		struct sres s = { 0, "", BUF_INIT };

		sres_set(&s, R_BOUNCE, "5.3.4", "message size %lld exceeds size limit %lld of server %s",
		    (long long)q->env.content_size, c->ext.size, c->relay);
		rest(q, &s, c->relay, 0);
		buf_free(&s.text);
		goto out;
	}
	c->used++;
	sconn_printf(c, "MAIL FROM:<%s>", q->sender);
	if (c->ext.flags & SMTP_EXT_SIZE)
		sconn_printf(c, " SIZE=%lld", (long long)q->env.content_size);
	if (q->eightbit && (c->ext.flags & SMTP_EXT_8BITMIME))
		sconn_send(c, " BODY=8BITMIME", 14);
	if (c->ext.flags & SMTP_EXT_DSN) {
		if (q->env.ret && *q->env.ret)
			sconn_printf(c, " RET=%s", !strcasecmp(q->env.ret, "HDRS") ? "HDRS" : "FULL");
		if (q->env.envid && *q->env.envid)
			xtext_param(c, "ENVID", q->env.envid);
	}
	sconn_send(c, "\r\n", 2);
	if (pipe) {
		for (i = 0; i < q->n; i++)
			if (q->r[i].res.status == R_NONE)
				rcpt_cmd(c, &q->r[i]);
		sconn_send(c, "DATA\r\n", 6);
	}
	dl = smtp_deadline("smtp_command_timeout");
	if (sconn_flush(c, dl, &err) < 0 || sconn_reply(c, &r, dl, &err) < 0)
		goto lost;
	if (r.code / 100 != 2) {
		sres_reply(fail, &r, c->relay, "X.0.0");
		if (r.code == 421)
			c->broken = 1;
		if (r.code / 100 == 4) {
			rc = TX_NEXT;
			/* with pipelining the RCPT and DATA replies follow */
			if (pipe && !c->broken)
				c->broken = 1;
			goto out;
		}
		rest(q, fail, c->relay, 0);
		if (pipe)
			c->broken = 1;	/* simpler than reading the rest */
		goto out;
	}
	for (i = 0; i < q->n; i++) {
		struct srcpt *rp = &q->r[i];

		if (rp->res.status != R_NONE)
			continue;
		if (!pipe) {
			rcpt_cmd(c, rp);
			if (sconn_flush(c, dl, &err) < 0)
				goto lost;
		}
		if (sconn_reply(c, &r, dl, &err) < 0)
			goto lost;
		if (r.code / 100 == 2) {
			rp->accepted = 1;
			naccepted++;
		} else {
			rcpt_result(rp, &r, c, r.code / 100 == 5 ? "X.1.1" : "X.0.0");
			if (r.code == 421)
				c->broken = 1;
		}
	}
	if (!pipe && naccepted) {
		sconn_send(c, "DATA\r\n", 6);
		if (sconn_flush(c, dl, &err) < 0)
			goto lost;
	}
	if (pipe || naccepted) {
		if (sconn_reply(c, &r, dl, &err) < 0)
			goto lost;
	}
	if (!naccepted) {
		if (pipe && r.code == 354) {
			/* a server that accepts DATA without recipients */
			sconn_send(c, ".\r\n", 3);
			if (sconn_flush(c, dl, &err) < 0 || sconn_reply(c, &r, dl, &err) < 0)
				goto lost;
		}
		goto out;
	}
	if (r.code != 354) {
		struct sres s = { 0, "", BUF_INIT };

		sres_reply(&s, &r, c->relay, "X.0.0");
		if (s.status == R_SENT)
			s.status = R_DEFER;
		if (r.code == 421)
			c->broken = 1;
		rest(q, &s, c->relay, 1);
		buf_free(&s.text);
		goto out;
	}
	{
		struct dot d = { c, 1, smtp_deadline("smtp_data_timeout"), &err, 0 };
		int x;

		content_sent = 1;
		x = qf_content(q->fd, &q->env, dot_cb, &d);
		if (d.failed)
			goto lost;
		if (x != 0) {
			/* cannot read our own file: give up the connection */
			struct sres s = { 0, "", BUF_INIT };

			sres_set(&s, R_DEFER, "4.3.0", "cannot read the queue file");
			rest(q, &s, NULL, 1);
			buf_free(&s.text);
			c->broken = 1;
			goto out;
		}
		if (!d.bol)
			sconn_send(c, "\r\n", 2);
		sconn_send(c, ".\r\n", 3);
		if (sconn_flush(c, d.deadline, &err) < 0)
			goto lost;
		for (i = 0; i < q->n; i++) {
			struct srcpt *rp = &q->r[i];

			if (!rp->accepted || rp->res.status != R_NONE)
				continue;
			if (sconn_reply(c, &r, d.deadline, &err) < 0)
				goto lost;
			rcpt_result(rp, &r, c, "X.0.0");
			if (r.code == 421)
				c->broken = 1;
			if (!c->lmtp) {
				/* SMTP: one reply for all */
				size_t j;

				for (j = i + 1; j < q->n; j++)
					if (q->r[j].accepted && q->r[j].res.status == R_NONE)
						rcpt_result(&q->r[j], &r, c, "X.0.0");
				break;
			}
		}
	}
	goto out;
lost:
	c->broken = 1;
	if (!content_sent) {
		/* nothing delivered yet: the next host may take all */
		for (i = 0; i < q->n; i++)
			if (q->r[i].accepted)
				q->r[i].accepted = 0;
		sres_err(fail, "4.4.2", &err);
		rc = TX_NEXT;
	} else {
		struct sres s = { 0, "", BUF_INIT };

		sres_set(&s, R_DEFER, "4.4.2", "%s while sending the message", buf_str(&err));
		rest(q, &s, c->relay, 1);
		buf_free(&s.text);
	}
out:
	/* recipients the server did not decide on (a 4xx on MAIL sends them
	 * on; anything else that is left is deferred here) */
	smtp_reply_free(&r);
	buf_free(&err);
	return rc;
}
