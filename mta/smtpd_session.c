/*
 * smtpd_session.c: the SMTP server state machine (RFC 5321 with
 * PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8, DSN,
 * CHUNKING, STARTTLS and AUTH PLAIN/LOGIN).
 *
 * The session does no I/O: the transport feeds it bytes
 * (smtpd_session_feed), it appends replies to s->out, and everything
 * else (TLS, authd, the queue, maps) goes through s->ops.  That is what
 * lets t/fuzz/fuzz_smtpd.c drive whole sessions without sockets.
 *
 * Invariants: commands are processed strictly in order, one at a time;
 * while the session waits for an asynchronous operation (auth, commit,
 * TLS, a delay) it consumes no input.  A command line is at most
 * line_length_limit bytes including CRLF; a longer one is discarded up
 * to the next LF and answered with one 500.  Every reply carries an
 * enhanced status code.  Nothing taken from the client reaches the
 * queue file's envelope with a CR, LF or NUL in it (the parser refuses
 * them).  Input after STARTTLS is discarded by the transport.
 */
#include "smtpd.h"
#include "addr.h"
#include "base64.h"
#include "log.h"
#include "util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AUTH_LINE_MAX	12288	/* RFC 4954 section 4 */
#define AUTH_USER_MAX	256

void
smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
	va_list ap;
	size_t start = s->out.len;

	va_start(ap, fmt);
	buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	buf_adds(&s->out, "\r\n");
	if (s->out.len > start && (s->out.data[start] == '4' || s->out.data[start] == '5'))
		s->last_error = 1;
}

/* An error reply that is logged: rejections of HELO, MAIL, RCPT, DATA. */
static void
reject(struct smtpd_session *s, const char *cmd, const char *reply)
{
	msg_info("%s: reject: %s from %s: %s; from=<%s> proto=%s helo=<%s>",
	    s->msg_open && s->queue_id[0] ? s->queue_id : "NOQUEUE", cmd, s->client_desc, reply,
	    s->sender ? s->sender : "", smtpd_proto_name(s), s->helo ? s->helo : "");
	smtpd_reply(s, "%s", reply);
}

void
smtpd_txn_reset(struct smtpd_session *s)
{
	size_t i;

	if (s->msg_open && s->ops->msg_abort)
		s->ops->msg_abort(s->ctx);
	s->msg_open = 0;
	s->queue_id[0] = 0;
	free(s->sender);
	s->sender = NULL;
	free(s->envid);
	s->envid = NULL;
	for (i = 0; i < s->nrcpt; i++) {
		free(s->rcpt[i].addr);
		free(s->rcpt[i].orcpt);
		free(s->rcpt[i].key);
	}
	free(s->rcpt);
	s->rcpt = NULL;
	s->nrcpt = s->arcpt = 0;
	s->nrcpt_cmds = 0;
	s->in_mail = 0;
	s->declared_size = -1;
	s->body = s->smtputf8 = s->ret = 0;
	s->hold = s->sess_hold;
	s->discard = s->sess_discard;
	s->bdat_active = s->bdat_fail = s->bdat_last = 0;
	s->bdat_left = 0;
	buf_free(&s->bdat_err);
	buf_free(&s->stage);
}

void
smtpd_session_init(struct smtpd_session *s, const struct smtpd_conf *cf,
    const struct smtpd_ops *ops, void *ctx, const char *client_addr,
    const char *server_addr, int mynetworks, int loopback)
{
	struct buf d = BUF_INIT;

	memset(s, 0, sizeof(*s));
	s->cf = cf;
	s->ops = ops;
	s->ctx = ctx;
	s->client_addr = xstrdup(client_addr ? client_addr : "");
	s->client_name = xstrdup("unknown");
	buf_printf(&d, "%s[%s]", s->client_name, s->client_addr);
	s->client_desc = buf_steal(&d);
	s->server_addr = xstrdup(server_addr ? server_addr : "");
	s->mynetworks = mynetworks;
	s->loopback = loopback;
	s->declared_size = -1;
	s->mode = MODE_CMD;
}

int
smtpd_session_start(struct smtpd_session *s)
{
	struct buf reply = BUF_INIT;

	if (s->local_user)
		msg_info("connect from local user %s", s->local_user);
	else
		msg_info("connect from %s", s->client_desc);
	if (smtpd_check_client(s, &reply) < 0) {
		reject(s, "CONNECT", buf_str(&reply));
		buf_free(&reply);
		s->closing = 1;
		s->paused = PAUSE_CLOSE;
		return -1;
	}
	buf_free(&reply);
	smtpd_reply(s, "220 %s", s->cf->banner);
	s->last_error = 0;
	return 0;
}

void
smtpd_session_free(struct smtpd_session *s)
{
	struct buf c = BUF_INIT;
	unsigned long total = 0;
	int v;

	smtpd_txn_reset(s);
	for (v = 1; v < SMTP_VERB_MAX; v++) {
		if (!s->count[v])
			continue;
		total += s->count[v];
		buf_printf(&c, " %s=", smtp_verb_name(v));
		if (s->fails[v])
			buf_printf(&c, "%lu/%lu", s->count[v] - s->fails[v], s->count[v]);
		else
			buf_printf(&c, "%lu", s->count[v]);
	}
	if (s->count[SMTP_UNKNOWN]) {
		total += s->count[SMTP_UNKNOWN];
		buf_printf(&c, " unknown=0/%lu", s->count[SMTP_UNKNOWN]);
	}
	str_lower(c.data ? c.data : (char *)"");
	msg_info("disconnect from %s%s commands=%lu", s->local_user ? "local" : s->client_desc,
	    buf_str(&c), total);
	buf_free(&c);
	free(s->client_addr);
	free(s->client_name);
	free(s->client_desc);
	free(s->server_addr);
	free(s->helo);
	free(s->tls_desc);
	free(s->auth_user);
	free(s->local_user);
	free(s->pending_arg);
	free(s->lookup_name);
	smtpd_lookups_clear(s);
	buf_free(&s->auth_name);
	buf_free(&s->line);
	buf_free(&s->out);
	memset(s, 0, sizeof(*s));
}

/* After an error reply: count it, throttle, and hang up when there were
 * too many. */
static void
account_error(struct smtpd_session *s)
{
	if (!s->last_error)
		return;
	s->last_error = 0;
	if (s->closing)
		return;
	s->errors++;
	if (s->cf->hard_errors > 0 && s->errors >= s->cf->hard_errors) {
		msg_info("too many errors from %s", s->client_desc);
		smtpd_reply(s, "421 4.7.0 %s Error: too many errors", s->cf->hostname);
		s->last_error = 0;
		s->closing = 1;
		s->paused = PAUSE_CLOSE;
		return;
	}
	if (s->cf->soft_errors > 0 && s->errors >= s->cf->soft_errors &&
	    s->cf->error_sleep_ms > 0 && s->paused == PAUSE_NONE && s->ops->delay) {
		s->paused = PAUSE_DELAY;
		s->ops->delay(s->ctx, s->cf->error_sleep_ms);
	}
}

const char *
smtpd_proto_name(const struct smtpd_session *s)
{
	static const char *names[] = {
		"ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA",
		"UTF8SMTP", "UTF8SMTPS", "UTF8SMTPA", "UTF8SMTPSA"
	};

	if (!s->esmtp)
		return "SMTP";
	return names[(s->tls ? 1 : 0) | (s->auth_user ? 2 : 0) | (s->smtputf8 ? 4 : 0)];
}

static int
starttls_offered(const struct smtpd_session *s)
{
	return s->cf->tls_level != TLS_LEVEL_NONE && s->cf->tls_available &&
	    !s->tls && !s->cf->local_submit;
}

static int
auth_offered(const struct smtpd_session *s)
{
	return s->cf->auth_enable && !s->cf->local_submit && !s->auth_user &&
	    (s->tls || (s->loopback && s->cf->auth_loopback));
}

static int
has_8bit(const char *p)
{
	for (; *p; p++)
		if ((unsigned char)*p >= 0x80)
			return 1;
	return 0;
}

static void
cmd_helo(struct smtpd_session *s, int verb, const char *arg)
{
	struct buf reply = BUF_INIT;

	if (!*arg) {
		reject(s, verb == SMTP_EHLO ? "EHLO" : "HELO",
		    verb == SMTP_EHLO ? "501 5.5.4 Syntax: EHLO hostname" : "501 5.5.4 Syntax: HELO hostname");
		return;
	}
	if (smtpd_check_helo(s, arg, &reply) < 0) {
		reject(s, verb == SMTP_EHLO ? "EHLO" : "HELO", buf_str(&reply));
		buf_free(&reply);
		return;
	}
	buf_free(&reply);
	smtpd_txn_reset(s);
	free(s->helo);
	s->helo = xstrdup(arg);
	s->esmtp = verb == SMTP_EHLO;
	if (!s->esmtp) {
		smtpd_reply(s, "250 %s", s->cf->hostname);
		return;
	}
	smtpd_reply(s, "250-%s", s->cf->hostname);
	smtpd_reply(s, "250-PIPELINING");
	if (s->cf->size_limit > 0)
		smtpd_reply(s, "250-SIZE %lld", s->cf->size_limit);
	else
		smtpd_reply(s, "250-SIZE");
	if (s->cf->vrfy)
		smtpd_reply(s, "250-VRFY");
	if (starttls_offered(s))
		smtpd_reply(s, "250-STARTTLS");
	if (auth_offered(s))
		smtpd_reply(s, "250-AUTH PLAIN LOGIN");
	smtpd_reply(s, "250-ENHANCEDSTATUSCODES");
	smtpd_reply(s, "250-8BITMIME");
	smtpd_reply(s, "250-DSN");
	smtpd_reply(s, "250-SMTPUTF8");
	smtpd_reply(s, "250 CHUNKING");
}

static void
cmd_mail(struct smtpd_session *s, const char *arg)
{
	struct smtp_path p;
	struct buf reply = BUF_INIT;

	if (!s->helo) {
		reject(s, "MAIL", "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->in_mail) {
		reject(s, "MAIL", "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (s->cf->tls_level == TLS_LEVEL_ENCRYPT && !s->tls && !s->cf->local_submit) {
		reject(s, "MAIL", "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (s->cf->auth_required && !s->auth_user && !s->cf->local_submit) {
		reject(s, "MAIL", "530 5.7.0 Authentication required");
		return;
	}
	smtp_path_init(&p);
	if (smtp_parse_path(arg, 0, &p, &reply) < 0)
		goto rej;
	if (!p.smtputf8 && has_8bit(buf_str(&p.addr))) {
		buf_sets(&reply, "553 5.6.7 Error: non-ASCII sender address needs SMTPUTF8");
		goto rej;
	}
	if (p.size >= 0 && s->cf->size_limit > 0 && p.size > s->cf->size_limit) {
		buf_sets(&reply, "552 5.3.4 Message size exceeds fixed limit");
		goto rej;
	}
	s->hold = s->sess_hold;
	s->discard = s->sess_discard;
	if (smtpd_check_sender(s, &p, &reply) < 0)
		goto rej;
	s->in_mail = 1;
	s->sender = xstrdup(buf_str(&p.addr));
	s->declared_size = p.size;
	s->body = p.body;
	s->smtputf8 = p.smtputf8;
	s->ret = p.ret;
	s->envid = p.envid.len ? xstrdup(buf_str(&p.envid)) : NULL;
	smtpd_reply(s, "250 2.1.0 Ok");
	smtp_path_free(&p);
	buf_free(&reply);
	return;
rej:
	reject(s, "MAIL", buf_str(&reply));
	smtp_path_free(&p);
	buf_free(&reply);
}

/* Park a command until its lookup is answered (smtpd_session_lookup_done). */
static void
wait_lookup(struct smtpd_session *s, int verb, const char *arg)
{
	s->paused = PAUSE_LOOKUP;
	s->pending_verb = verb;
	free(s->pending_arg);
	s->pending_arg = xstrdup(arg);
}

/* An address trick in a RCPT argument that did not even parse. */
static int
looks_like_trick(const char *arg)
{
	const char *at = strchr(arg, '@');

	return strpbrk(arg, "%!") || (at && strchr(at + 1, '@'));
}

/*
 * Keep an accepted recipient, unless the transaction has it already
 * (doc/smtpd.8, "Duplicate recipients"): as Postfix does, the client
 * still gets its 250, and the first RCPT's NOTIFY and ORCPT stay.
 * Linear, but bounded by smtpd_recipient_limit.
 */
static void
rcpt_store(struct smtpd_session *s, const struct smtp_path *p)
{
	char *key = qf_rcpt_key(buf_str(&p->addr), s->cf->mydestination);
	size_t i;

	for (i = 0; i < s->nrcpt; i++)
		if (!strcmp(s->rcpt[i].key, key)) {
			msg_debug("%s: duplicate recipient <%s> (as <%s>) stored once",
			    s->client_desc, buf_str(&p->addr), s->rcpt[i].addr);
			free(key);
			return;
		}
	if (s->nrcpt == s->arcpt) {
		s->arcpt = s->arcpt ? 2 * s->arcpt : 4;
		s->rcpt = xreallocarray(s->rcpt, s->arcpt, sizeof(*s->rcpt));
	}
	s->rcpt[s->nrcpt].addr = xstrdup(buf_str(&p->addr));
	s->rcpt[s->nrcpt].orcpt = xstrdup(buf_str(&p->orcpt));
	s->rcpt[s->nrcpt].notify = p->notify;
	s->rcpt[s->nrcpt].key = key;
	s->nrcpt++;
}

static void
cmd_rcpt(struct smtpd_session *s, const char *arg)
{
	struct smtp_path p;
	struct buf reply = BUF_INIT;

	if (!s->in_mail) {
		reject(s, "RCPT", "503 5.5.1 Error: need MAIL command");
		return;
	}
	if ((long long)s->nrcpt_cmds >= s->cf->rcpt_limit) {
		reject(s, "RCPT", "452 4.5.3 Error: too many recipients");
		return;
	}
	smtp_path_init(&p);
	if (smtp_parse_path(arg, 1, &p, &reply) < 0) {
		if (looks_like_trick(arg) && !(s->mynetworks || s->auth_user ||
		    s->client_ok || s->cf->local_submit))
			buf_sets(&reply, "554 5.7.1 Relay access denied");
		goto rej;
	}
	if (!s->smtputf8 && has_8bit(buf_str(&p.addr))) {
		buf_sets(&reply, "553 5.6.7 Error: non-ASCII recipient address needs SMTPUTF8");
		goto rej;
	}
	switch (smtpd_check_rcpt(s, &p, &reply)) {
	case 0:
		break;
	case SMTPD_PENDING:
		wait_lookup(s, SMTP_RCPT, arg);
		smtp_path_free(&p);
		buf_free(&reply);
		return;
	default:
		goto rej;
	}
	s->nrcpt_cmds++;
	rcpt_store(s, &p);
	smtpd_reply(s, "250 2.1.5 Ok");
	smtp_path_free(&p);
	buf_free(&reply);
	return;
rej:
	reject(s, "RCPT", buf_str(&reply));
	smtp_path_free(&p);
	buf_free(&reply);
}

/* Open the message in the store and write its first bytes. */
static int
message_open(struct smtpd_session *s, const char *cmd)
{
	struct buf r = BUF_INIT;

	smtpd_data_begin(s);
	if (s->discard)
		return 0;
	if (s->ops->msg_open(s->ctx, s, s->queue_id) < 0) {
		reject(s, cmd, "451 4.3.0 Error: queue file write error");
		smtpd_txn_reset(s);
		return -1;
	}
	s->msg_open = 1;
	smtpd_received(s, &r);
	s->ops->msg_write(s->ctx, r.data, r.len);
	buf_free(&r);
	return 0;
}

/* The end of DATA or of the last BDAT chunk. */
static void
message_end(struct smtpd_session *s, const char *cmd)
{
	const char *err = NULL;

	if (s->ops->data_timer)
		s->ops->data_timer(s->ctx, 0);
	if (s->stage.len && s->msg_open && !s->too_big && !s->bare_bad)
		s->ops->msg_write(s->ctx, s->stage.data, s->stage.len);
	buf_free(&s->stage);
	if (s->too_big)
		err = "552 5.3.4 Error: message file too big";
	else if (s->bare_bad)
		err = "550 5.5.2 Error: bare <CR> or <LF> received; lines must end with <CR><LF>";
	else if (s->cf->hop_limit > 0 && s->hops > s->cf->hop_limit)
		err = "554 5.4.6 Error: too many hops (mail loop?)";
	if (err) {
		reject(s, cmd, err);
		smtpd_txn_reset(s);
		return;
	}
	if (s->discard) {
		msg_info("NOQUEUE: discard: %s from %s: from=<%s> size=%lld nrcpt=%zu",
		    cmd, s->client_desc, s->sender, s->msg_size, s->nrcpt);
		smtpd_reply(s, "250 2.0.0 Ok: discarded");
		smtpd_txn_reset(s);
		return;
	}
	s->paused = PAUSE_COMMIT;
	s->ops->msg_commit(s->ctx, s->hold);
}

void
smtpd_session_commit_done(struct smtpd_session *s, int ok)
{
	if (s->paused == PAUSE_COMMIT)
		s->paused = PAUSE_NONE;
	s->msg_open = 0;	/* the store has finished with it either way */
	if (ok) {
		s->nmsgs++;
		msg_info("%s: client=%s, from=<%s>, size=%lld, nrcpt=%zu%s%s%s",
		    s->queue_id[0] ? s->queue_id : "maildrop", s->local_user ? s->local_user : s->client_desc,
		    s->sender, s->msg_size, s->nrcpt,
		    s->auth_user ? ", sasl_username=" : "", s->auth_user ? s->auth_user : "",
		    s->hold ? " (queue hold)" : "");
		if (s->queue_id[0])
			smtpd_reply(s, "250 2.0.0 Ok: queued as %s", s->queue_id);
		else
			smtpd_reply(s, "250 2.0.0 Ok: queued in maildrop/");
	} else
		reject(s, "END-OF-MESSAGE", "451 4.3.0 Error: queue file write error");
	smtpd_txn_reset(s);
	account_error(s);
}

static void
cmd_data(struct smtpd_session *s, const char *arg)
{
	if (*arg) {
		reject(s, "DATA", "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!s->in_mail) {
		reject(s, "DATA", "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->bdat_active) {
		reject(s, "DATA", "503 5.5.1 Error: DATA after BDAT");
		return;
	}
	if (!s->nrcpt) {
		reject(s, "DATA", "554 5.5.1 Error: no valid recipients");
		return;
	}
	if (message_open(s, "DATA") < 0)
		return;
	s->mode = MODE_DATA;
	if (s->ops->data_timer)
		s->ops->data_timer(s->ctx, 1);
	smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
cmd_bdat(struct smtpd_session *s, const char *arg)
{
	long long n = 0;
	const char *p = arg;
	int digits = 0, last = 0;

	while (*p >= '0' && *p <= '9' && digits < 18) {
		n = n * 10 + (*p++ - '0');
		digits++;
	}
	if (*p == ' ') {
		while (*p == ' ')
			p++;
		if (!strcasecmp(p, "LAST"))
			last = 1, p += 4;
	}
	if (!digits || *p) {
		reject(s, "BDAT", "501 5.5.4 Syntax: BDAT count [LAST]");
		return;
	}
	s->mode = MODE_BDAT;
	s->bdat_left = n;
	s->bdat_last = last;
	if (!s->bdat_fail) {
		const char *err = NULL;

		if (!s->in_mail)
			err = "503 5.5.1 Error: need MAIL command";
		else if (!s->nrcpt)
			err = "554 5.5.1 Error: no valid recipients";
		if (err) {
			s->bdat_fail = 1;
			buf_sets(&s->bdat_err, err);
		} else if (!s->bdat_active) {
			if (message_open(s, "BDAT") < 0) {
				/* message_open replied and reset: swallow the chunk */
				s->mode = MODE_BDAT;
				s->bdat_left = n;
				s->bdat_last = last;
				s->bdat_fail = 2;	/* already answered for this chunk */
				buf_sets(&s->bdat_err, "451 4.3.0 Error: queue file write error");
			} else {
				s->bdat_active = 1;
				if (s->ops->data_timer)
					s->ops->data_timer(s->ctx, 1);
			}
		}
	}
	if (s->bdat_fail == 0 && s->cf->size_limit > 0 &&
	    n > s->cf->size_limit - s->msg_size)
		s->too_big = 1;
}

/* All octets of a BDAT chunk are in. */
static void
bdat_chunk_done(struct smtpd_session *s)
{
	s->mode = MODE_CMD;
	if (s->bdat_fail) {
		if (s->bdat_fail == 2)
			s->bdat_fail = 1;	/* the 451 was the reply to this chunk */
		else
			reject(s, "BDAT", buf_str(&s->bdat_err));
		if (s->bdat_last) {
			smtpd_txn_reset(s);
		} else if (!s->in_mail) {
			/* no transaction to fail: a later MAIL starts afresh */
			s->bdat_fail = 0;
			buf_reset(&s->bdat_err);
		}
		return;
	}
	if (!s->bdat_last) {
		smtpd_reply(s, "250 2.0.0 Ok: chunk received");
		return;
	}
	smtpd_bdat_end(s);
	message_end(s, "BDAT");
}

/* AUTH: the credentials are complete. */
static void
auth_check(struct smtpd_session *s, const char *user, const char *pass)
{
	if (!*user || strlen(user) > AUTH_USER_MAX || has_crlfnul(user, strlen(user))) {
		s->mode = MODE_CMD;
		smtpd_session_auth_done(s, 0, NULL);
		return;
	}
	s->paused = PAUSE_AUTH;
	s->ops->auth(s->ctx, user, pass);
}

static void
wipe(struct buf *b)
{
	if (b->data)
		explicit_bzero(b->data, b->len);
	buf_free(b);
}

static void
auth_response(struct smtpd_session *s, const char *line)
{
	struct buf dec = BUF_INIT, user = BUF_INIT, pass = BUF_INIT;

	if (!strcmp(line, "*")) {
		s->mode = MODE_CMD;
		wipe(&s->auth_name);
		smtpd_reply(s, "501 5.7.0 Authentication aborted");
		return;
	}
	if (base64_decode(line, strlen(line), &dec) < 0) {
		s->mode = MODE_CMD;
		wipe(&dec);
		wipe(&s->auth_name);
		smtpd_reply(s, "501 5.5.2 Cannot decode response");
		return;
	}
	if (s->auth_mech == 1) {
		s->mode = MODE_CMD;
		if (smtp_sasl_plain(dec.data ? dec.data : "", dec.len, &user, &pass) < 0) {
			wipe(&dec);
			smtpd_reply(s, "501 5.5.2 Invalid PLAIN response");
			return;
		}
		auth_check(s, buf_str(&user), buf_str(&pass));
	} else if (s->auth_step == 1) {
		if (!dec.len || dec.len > AUTH_USER_MAX || has_crlfnul(dec.data, dec.len)) {
			s->mode = MODE_CMD;
			wipe(&dec);
			smtpd_reply(s, "501 5.5.2 Invalid user name");
			return;
		}
		buf_reset(&s->auth_name);
		buf_add(&s->auth_name, dec.data, dec.len);
		s->auth_step = 2;
		smtpd_reply(s, "334 UGFzc3dvcmQ6");
	} else {
		s->mode = MODE_CMD;
		if (has_crlfnul(dec.data ? dec.data : "", dec.len)) {
			wipe(&dec);
			wipe(&s->auth_name);
			smtpd_reply(s, "501 5.5.2 Invalid password");
			return;
		}
		auth_check(s, buf_str(&s->auth_name), buf_str(&dec));
		wipe(&s->auth_name);
	}
	wipe(&dec);
	wipe(&user);
	wipe(&pass);
}

static void
cmd_auth(struct smtpd_session *s, const char *arg)
{
	char mech[16];
	const char *ir;
	size_t ml;

	if (!s->cf->auth_enable || s->cf->local_submit) {
		smtpd_reply(s, "503 5.5.1 Error: authentication not enabled");
		return;
	}
	if (s->auth_user) {
		smtpd_reply(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->in_mail) {
		smtpd_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (!s->helo) {
		smtpd_reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (!auth_offered(s)) {
		smtpd_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
		return;
	}
	for (ml = 0; arg[ml] && arg[ml] != ' '; ml++)
		;
	if (ml == 0 || ml >= sizeof(mech)) {
		smtpd_reply(s, "501 5.5.4 Syntax: AUTH mechanism");
		return;
	}
	memcpy(mech, arg, ml);
	mech[ml] = 0;
	ir = arg + ml;
	while (*ir == ' ')
		ir++;
	buf_reset(&s->auth_name);
	if (!strcasecmp(mech, "PLAIN")) {
		s->auth_mech = 1;
		s->mode = MODE_AUTH;
		if (*ir)
			auth_response(s, !strcmp(ir, "=") ? "" : ir);
		else
			smtpd_reply(s, "334 ");
	} else if (!strcasecmp(mech, "LOGIN")) {
		s->auth_mech = 2;
		s->auth_step = 1;
		s->mode = MODE_AUTH;
		if (*ir)
			auth_response(s, ir);
		else
			smtpd_reply(s, "334 VXNlcm5hbWU6");
	} else
		smtpd_reply(s, "504 5.5.4 Unsupported authentication mechanism");
}

void
smtpd_session_auth_done(struct smtpd_session *s, int result, const char *user)
{
	if (s->paused == PAUSE_AUTH)
		s->paused = PAUSE_NONE;
	s->mode = MODE_CMD;
	if (result == 1 && user) {
		free(s->auth_user);
		s->auth_user = xstrdup(user);
		msg_info("%s: sasl_method=%s, sasl_username=%s", s->client_desc,
		    s->auth_mech == 1 ? "PLAIN" : "LOGIN", user);
		smtpd_reply(s, "235 2.7.0 Authentication successful");
		return;
	}
	if (result < 0) {
		msg_warn("%s: authentication temporarily unavailable", s->client_desc);
		smtpd_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	s->auth_failures++;
	s->fails[SMTP_AUTH]++;
	msg_warn("%s: %s authentication failed", s->client_desc,
	    s->auth_mech == 1 ? "PLAIN" : "LOGIN");
	if (s->cf->auth_fail_limit > 0 && s->auth_failures >= s->cf->auth_fail_limit) {
		smtpd_reply(s, "421 4.7.0 %s Error: too many failed authentication attempts",
		    s->cf->hostname);
		s->last_error = 0;
		s->closing = 1;
		s->paused = PAUSE_CLOSE;
		return;
	}
	smtpd_reply(s, "535 5.7.8 Error: authentication failed");
}

static void
cmd_starttls(struct smtpd_session *s, const char *arg)
{
	if (s->tls) {
		smtpd_reply(s, "554 5.5.1 Error: TLS already active");
		return;
	}
	if (!starttls_offered(s)) {
		smtpd_reply(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (*arg) {
		smtpd_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->in_mail) {
		smtpd_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	smtpd_reply(s, "220 2.0.0 Ready to start TLS");
	s->paused = PAUSE_TLS;
	buf_reset(&s->line);
	s->ops->starttls(s->ctx);
}

void
smtpd_session_tls_done(struct smtpd_session *s, const char *desc)
{
	if (s->paused == PAUSE_TLS)
		s->paused = PAUSE_NONE;
	smtpd_txn_reset(s);
	s->tls = 1;
	free(s->tls_desc);
	s->tls_desc = xstrdup(desc ? desc : "TLS");
	/* RFC 3207: forget everything learnt before TLS */
	free(s->helo);
	s->helo = NULL;
	s->esmtp = 0;
	buf_reset(&s->line);
	s->mode = MODE_CMD;
	msg_info("%s: TLS established: %s", s->client_desc, s->tls_desc);
}

void
smtpd_session_resume(struct smtpd_session *s)
{
	if (s->paused == PAUSE_DELAY)
		s->paused = PAUSE_NONE;
}

void
smtpd_session_timeout(struct smtpd_session *s, const char *what)
{
	if (s->closing)
		return;
	msg_info("%s after %s from %s", what,
	    s->mode == MODE_DATA || s->mode == MODE_BDAT ? "DATA" : "command",
	    s->local_user ? "local" : s->client_desc);
	if (strcmp(what, "lost connection"))
		smtpd_reply(s, "421 4.4.2 %s Error: %s", s->cf->hostname, what);
	s->last_error = 0;
	s->closing = 1;
	s->paused = PAUSE_CLOSE;
}

static void
cmd_vrfy(struct smtpd_session *s, const char *arg)
{
	struct smtp_path p;
	struct buf reply = BUF_INIT, tmp = BUF_INIT;
	int r;

	if (!*arg) {
		smtpd_reply(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	if (!s->cf->vrfy) {
		smtpd_reply(s, "252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery");
		return;
	}
	smtp_path_init(&p);
	buf_adds(&tmp, "TO:");
	if (*arg != '<')
		buf_addc(&tmp, '<');
	buf_adds(&tmp, arg);
	if (*arg != '<')
		buf_addc(&tmp, '>');
	if (smtp_parse_path(buf_str(&tmp), 1, &p, &reply) < 0)
		smtpd_reply(s, "%s", buf_str(&reply));
	else if ((r = smtpd_check_rcpt(s, &p, &reply)) == SMTPD_PENDING)
		wait_lookup(s, SMTP_VRFY, arg);
	else if (r < 0)
		smtpd_reply(s, "%s", buf_str(&reply));
	else
		smtpd_reply(s, "250 2.1.5 <%s>", buf_str(&p.addr));
	smtp_path_free(&p);
	buf_free(&reply);
	buf_free(&tmp);
}

static void dispatch(struct smtpd_session *s, int verb, const char *arg);

/* One complete command line (without its line end). */
static void
process_line(struct smtpd_session *s, const char *line, size_t len)
{
	const char *arg;
	int verb;

	if (s->mode == MODE_AUTH) {
		if (memchr(line, 0, len) || memchr(line, '\r', len)) {
			s->mode = MODE_CMD;
			smtpd_reply(s, "501 5.5.2 Cannot decode response");
		} else
			auth_response(s, line);
		return;
	}
	verb = smtp_cmd_verb(line, len, &arg);
	s->count[verb]++;
	s->last_error = 0;
	smtpd_lookups_clear(s);
	if (memchr(line, 0, len) || memchr(line, '\r', len))
		smtpd_reply(s, "500 5.5.2 Error: bad character in command");
	else
		dispatch(s, verb, arg);
	if (s->last_error)
		s->fails[verb]++;
	if (s->mode != MODE_BDAT)
		account_error(s);
}

void
smtpd_session_lookup_done(struct smtpd_session *s, int found)
{
	char *arg;
	int verb = s->pending_verb;

	if (s->paused != PAUSE_LOOKUP || !s->lookup_name || !s->pending_arg)
		return;
	if (s->nlookups == SMTPD_LOOKUP_CACHE) {
		/* cannot happen with today's callers (two names at most) */
		free(s->lookups[--s->nlookups].name);
	}
	s->lookups[s->nlookups].name = s->lookup_name;
	s->lookups[s->nlookups].found = found;
	s->nlookups++;
	s->lookup_name = NULL;
	s->paused = PAUSE_NONE;
	arg = s->pending_arg;
	s->pending_arg = NULL;
	s->last_error = 0;
	dispatch(s, verb, arg);
	free(arg);
	if (s->paused == PAUSE_LOOKUP)
		return;		/* the next name */
	if (s->last_error)
		s->fails[verb]++;
	account_error(s);
}

/* Run one command (again, after a lookup). */
static void
dispatch(struct smtpd_session *s, int verb, const char *arg)
{
	switch (verb) {
	case SMTP_HELO:
	case SMTP_EHLO:
		cmd_helo(s, verb, arg);
		break;
	case SMTP_MAIL:
		cmd_mail(s, arg);
		break;
	case SMTP_RCPT:
		cmd_rcpt(s, arg);
		break;
	case SMTP_DATA:
		cmd_data(s, arg);
		break;
	case SMTP_BDAT:
		cmd_bdat(s, arg);
		break;
	case SMTP_RSET:
		smtpd_txn_reset(s);
		smtpd_reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_NOOP:
		smtpd_reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_QUIT:
		smtpd_reply(s, "221 2.0.0 Bye");
		s->closing = 1;
		s->paused = PAUSE_CLOSE;
		break;
	case SMTP_VRFY:
		cmd_vrfy(s, arg);
		break;
	case SMTP_EXPN:
		smtpd_reply(s, "502 5.5.1 Error: EXPN is not available");
		break;
	case SMTP_HELP:
		smtpd_reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
		break;
	case SMTP_STARTTLS:
		cmd_starttls(s, arg);
		break;
	case SMTP_AUTH:
		cmd_auth(s, arg);
		break;
	default:
		smtpd_reply(s, "500 5.5.2 Error: command not recognized");
		break;
	}
}

size_t
smtpd_session_feed(struct smtpd_session *s, const char *p, size_t n)
{
	size_t used = 0;

	while (used < n && s->paused == PAUSE_NONE && !s->closing) {
		const char *nl;
		size_t k, limit;
		int end;

		switch (s->mode) {
		case MODE_CMD:
		case MODE_AUTH:
			limit = s->mode == MODE_AUTH ? AUTH_LINE_MAX : (size_t)s->cf->line_limit;
			nl = memchr(p + used, '\n', n - used);
			k = nl ? (size_t)(nl - (p + used)) + 1 : n - used;
			if (s->line.len + k > limit) {
				/* too long: drop it, answer once the line ends */
				buf_reset(&s->line);
				used += k;
				if (!nl) {
					s->mode = MODE_LONGLINE;
					break;
				}
				s->mode = MODE_CMD;
				s->count[SMTP_UNKNOWN]++;
				smtpd_reply(s, "500 5.5.2 Error: line too long");
				account_error(s);
				break;
			}
			buf_add(&s->line, p + used, k);
			used += k;
			if (!nl)
				break;
			/* a command line ends in CRLF; a lone LF is tolerated
			 * here (never in DATA) for interactive sendmail -bs */
			k = s->line.len - 1;
			if (k && s->line.data[k - 1] == '\r')
				k--;
			s->line.data[k] = 0;
			{
				char *l = s->line.data;

				s->line.data = NULL;
				s->line.len = s->line.cap = 0;
				process_line(s, l, k);
				if (l) {
					if (s->mode == MODE_AUTH || s->auth_mech)
						explicit_bzero(l, k);
					free(l);
				}
			}
			break;
		case MODE_LONGLINE:
			nl = memchr(p + used, '\n', n - used);
			if (!nl) {
				used = n;
				break;
			}
			used = (size_t)(nl - p) + 1;
			s->mode = MODE_CMD;
			s->count[SMTP_UNKNOWN]++;
			smtpd_reply(s, "500 5.5.2 Error: line too long");
			account_error(s);
			break;
		case MODE_DATA:
			end = 0;
			used += smtpd_data_feed(s, p + used, n - used, &end);
			if (end) {
				s->mode = MODE_CMD;
				s->last_error = 0;
				message_end(s, "DATA");
				if (s->last_error)
					s->fails[SMTP_DATA]++;
				account_error(s);
			}
			break;
		case MODE_BDAT:
			k = n - used;
			if ((long long)k > s->bdat_left)
				k = (size_t)s->bdat_left;
			if (k) {
				if (!s->bdat_fail)
					smtpd_bdat_feed(s, p + used, k);
				used += k;
				s->bdat_left -= (long long)k;
			}
			if (s->bdat_left == 0) {
				s->last_error = 0;
				bdat_chunk_done(s);
				if (s->last_error)
					s->fails[SMTP_BDAT]++;
				account_error(s);
			}
			break;
		}
	}
	/* a BDAT 0 chunk needs no input to complete */
	if (s->mode == MODE_BDAT && s->bdat_left == 0 && s->paused == PAUSE_NONE && !s->closing) {
		s->last_error = 0;
		bdat_chunk_done(s);
		if (s->last_error)
			s->fails[SMTP_BDAT]++;
		account_error(s);
	}
	/* decoded DATA content goes out in large pieces */
	if (s->stage.len >= 16384 && s->msg_open && !s->too_big && !s->bare_bad) {
		s->ops->msg_write(s->ctx, s->stage.data, s->stage.len);
		buf_reset(&s->stage);
	}
	if (s->paused == PAUSE_TLS)
		return n;	/* whatever followed STARTTLS is discarded */
	return used;
}
