/*
 * fuzz_smtpd: whole SMTP sessions through smtpd's state machine with a
 * fake transport: no sockets, no queue files.  The input is split into
 * pieces at 0xff bytes (fed one after the other, as separate reads);
 * asynchronous operations (AUTH, commit, STARTTLS, delays) complete at
 * once, alternately as success and failure; recipient lookups of some
 * names (carol, dave, tempfail2) are answered later, as authd's are,
 * from the feeding loop.  The session sources are
 * compiled into the harness (they use only lib/ and libc).
 */
#include "../../mta/smtpd_session.c"
#include "../../mta/smtpd_data.c"
#include "../../mta/smtpd_relay.c"

#include <stdint.h>

struct fake {
	struct smtpd_session *s;
	int open;
	size_t written;
	unsigned flip;
	int pending, answer;
};

static void
f_auth(void *ctx, const char *user, const char *pass)
{
	struct fake *f = ctx;

	smtpd_session_auth_done(f->s, (f->flip++ % 3) - 1, user);
}

static void
f_starttls(void *ctx)
{
	struct fake *f = ctx;

	smtpd_session_tls_done(f->s, "TLSv1.3 with cipher FAKE");
}

static void
f_delay(void *ctx, long long ms)
{
	struct fake *f = ctx;

	smtpd_session_resume(f->s);
}

static int
f_open(void *ctx, struct smtpd_session *s, char id[QUEUE_ID_MAX])
{
	struct fake *f = ctx;

	if (f->flip++ % 7 == 6)
		return -1;
	memcpy(id, "FUZZID", 7);
	f->open = 1;
	f->written = 0;
	return 0;
}

static void
f_write(void *ctx, const char *p, size_t n)
{
	struct fake *f = ctx;

	if (!f->open)
		__builtin_trap();	/* writing to a message that is not open */
	f->written += n;
}

static void
f_commit(void *ctx, int hold)
{
	struct fake *f = ctx;
	size_t i, j;

	if (!f->open)
		__builtin_trap();
	/* what is stored has no two equal recipients, and never more
	 * than the RCPTs that were accepted */
	if (f->s->nrcpt > f->s->nrcpt_cmds)
		__builtin_trap();
	for (i = 0; i < f->s->nrcpt; i++)
		for (j = i + 1; j < f->s->nrcpt; j++)
			if (!strcmp(f->s->rcpt[i].key, f->s->rcpt[j].key))
				__builtin_trap();
	f->open = 0;
	smtpd_session_commit_done(f->s, f->flip++ % 5 != 4);
}

static void
f_abort(void *ctx)
{
	struct fake *f = ctx;

	f->open = 0;
}

static int
f_local_user(void *ctx, const char *name)
{
	struct fake *f = ctx;

	if (!strcmp(name, "alice") || !strcmp(name, "bob"))
		return 1;
	if (!strcmp(name, "tempfail"))
		return -1;
	if (!strcmp(name, "carol") || !strcmp(name, "dave") || !strcmp(name, "tempfail2")) {
		if (f->pending)
			__builtin_trap();	/* a second lookup while one is under way */
		f->pending = 1;
		f->answer = name[0] == 't' ? -1 : name[0] == 'c';
		return SMTPD_PENDING;
	}
	return 0;
}

static int
f_access(void *ctx, const char *key, struct buf *val)
{
	static const char *tab[][2] = {
		{ "reject.test", "REJECT go away" }, { "defer.test", "DEFER" },
		{ "hold.test", "HOLD" }, { "discard.test", "DISCARD" },
		{ "ok.test", "OK" }, { "bad.test", "FROB" }, { "10.0.0", "REJECT" },
	};
	size_t i;

	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (!strcmp(key, tab[i][0])) {
			buf_sets(val, tab[i][1]);
			return 1;
		}
	return 0;
}

static const struct smtpd_ops fops = {
	.auth = f_auth, .starttls = f_starttls, .delay = f_delay,
	.msg_open = f_open, .msg_write = f_write, .msg_commit = f_commit,
	.msg_abort = f_abort, .local_user = f_local_user, .access = f_access,
	.data_timer = NULL,
};

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static char *dest[] = { "example.test", "localhost", NULL };
	static char *relay[] = { "relay.test", NULL };
	static struct smtpd_conf cf = {
		.hostname = "mx.example.test", .banner = "mx.example.test ESMTP hermod",
		.mail_name = "hermod", .mydestination = dest, .relay_domains = relay,
		.recipient_delimiter = "+", .myorigin = "example.test",
		.size_limit = 4000, .rcpt_limit = 5, .line_limit = 200,
		.soft_errors = 5, .hard_errors = 40, .error_sleep_ms = 1,
		.hop_limit = 3, .auth_fail_limit = 3, .tls_level = TLS_LEVEL_MAY,
		.auth_enable = 1, .auth_loopback = 1, .tls_available = 1,
	};
	struct smtpd_session s;
	struct fake f;
	size_t i = 0;
	static int quiet;

	if (!quiet++)
		log_init("fuzz_smtpd", 0);
	if (n && (d[0] & 1))
		cf.bare_lf_normalize = !cf.bare_lf_normalize;
	memset(&f, 0, sizeof(f));
	f.s = &s;
	smtpd_session_init(&s, &cf, &fops, &f, n && (d[0] & 2) ? "10.0.0.1" : "192.0.2.1",
	    "192.0.2.25", n && (d[0] & 4), n && (d[0] & 8));
	smtpd_session_start(&s);
	while (i < n && !s.closing) {
		const uint8_t *e = memchr(d + i, 0xff, n - i);
		size_t len = e ? (size_t)(e - (d + i)) : n - i;
		size_t off = 0;

		while (off < len && !s.closing) {
			size_t k = smtpd_session_feed(&s, (const char *)d + i + off, len - off);

			off += k;
			while (s.paused == PAUSE_LOOKUP && f.pending) {
				f.pending = 0;
				smtpd_session_lookup_done(&s, f.answer);
			}
			if (s.paused != PAUSE_NONE && !s.closing) {
				if (k == 0)
					__builtin_trap();	/* paused with nothing to resume it */
			}
		}
		if (s.out.len > 1 << 20)
			buf_reset(&s.out);
		i += len + (e ? 1 : 0);
	}
	smtpd_session_free(&s);
	return 0;
}
