/*
 * sendmail.c: sendmail(8), mailq(1) and newaliases(8), one program that
 * looks at argv[0].
 *
 * sendmail [options] [--] [recipient ...] reads a message on standard
 * input, adds the From:, Date: and Message-ID: fields it lacks, and
 * stores it as one queue-format file in maildrop/ (directly when the
 * caller may write there, else through the setgid postdrop helper).
 * It exits 0 only once the file is fsynced and renamed into place and
 * the directory fsynced; 75 (EX_TEMPFAIL) only when nothing was stored;
 * other sysexits.h codes for permanent errors.  Then pickup is woken.
 * See doc/sendmail.8 for every flag.
 *
 * Invariants:
 * - Option parsing stops at the first non-option or "--" (sendmail's
 *   "+" getopt on GNU systems, and Postfix's); a recipient that starts
 *   with '-' is refused unless it comes after "--".
 * - No envelope field (sender, recipient, full name, ENVID) ever holds
 *   CR, LF or NUL; every address passes addr_valid before it is
 *   written.  The queue file writer checks again.
 * - The common path loads nothing it does not need (no OpenSSL, no
 *   libevent, no syslog connection) and does one fsync of the file and
 *   one of the directory.
 * - This program is never setuid or setgid; postdrop is the only
 *   privileged helper and it trusts none of what it is given.
 */
#include "addr.h"
#include "conf.h"
#include "base64.h"
#include "flow.h"
#include "header.h"
#include "log.h"
#include "map.h"
#include "proto.h"
#include "qlist.h"
#include "queue_file.h"
#include "sendmail_store.h"
#include "util.h"
#include "vuser.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum mode {
	MODE_DELIVER,		/* -bm, the default */
	MODE_PRINTQ,		/* -bp, mailq */
	MODE_NEWALIASES,	/* -bi, -I, newaliases */
	MODE_VERIFY,		/* -bv */
	MODE_SMTP,		/* -bs: smtpd -S on stdin/stdout */
	MODE_DAEMON,		/* -bd, -bD: use hermod start */
	MODE_FLUSH		/* -q */
};

struct opts {
	enum mode mode;
	int mode_set;
	int qflag;
	const char *prog;	/* sendmail, mailq, newaliases */
	const char *confdir;	/* -C */
	const char *sender;	/* -f / -r as given */
	const char *fullname;	/* -F */
	const char *envid;	/* -V */
	const char *ret;	/* -R: FULL or HDRS */
	const char *alias_file;	/* -oA / -O AliasFile= */
	const char *flush_id;	/* -qI<id> */
	unsigned notify;	/* -N */
	int extract;		/* -t */
	int ignore_dots;	/* -i, -oi, -O IgnoreDots */
	int verbose;		/* -v */
	int json;		/* --json with -bp / mailq */
	char **rcpt;		/* command-line recipients */
	int nrcpt;
};

static const char *progname = "sendmail";

static void __attribute__((format(printf, 1, 2)))
warn(const char *fmt, ...)
{
	char text[2048];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(text, sizeof(text), fmt, ap) < 0)
		snprintf(text, sizeof(text), "(warning)");
	va_end(ap);
	fprintf(stderr, "%s: warning: %s\n", progname, text);
}

static void __attribute__((noreturn))
usage(const char *why)
{
	if (why)
		fprintf(stderr, "%s: %s\n", progname, why);
	fprintf(stderr,
	    "usage: sendmail [-t] [-i] [-f sender] [-F fullname] [-N dsn] [-R full|hdrs]\n"
	    "                [-V envid] [-B type] [-C dir] [-bm|-bp|-bi|-bv] [-q] [-v]\n"
	    "                [-o option] [--] [recipient ...]\n"
	    "       mailq [-C dir] [--json]\n"
	    "       newaliases [-C dir]\n");
	exit(EX_USAGE);
}

/* An option value or recipient from the command line must not hold a
 * line end: it may end up in an envelope field. */
static void
check_arg(int opt, const char *v)
{
	if (strchr(v, '\r') || strchr(v, '\n')) {
		if (opt)
			msg_die(EX_USAGE, "the argument of -%c contains a CR or LF character", opt);
		msg_die(EX_USAGE, "a recipient argument contains a CR or LF character");
	}
}

static unsigned
parse_notify(const char *v)
{
	char **f = str_split(v, ", \t");
	unsigned n = 0;
	size_t i;

	for (i = 0; f[i]; i++) {
		if (!strcasecmp(f[i], "never"))
			n |= DSN_NOTIFY_NEVER;
		else if (!strcasecmp(f[i], "success"))
			n |= DSN_NOTIFY_SUCCESS;
		else if (!strcasecmp(f[i], "failure"))
			n |= DSN_NOTIFY_FAILURE;
		else if (!strcasecmp(f[i], "delay"))
			n |= DSN_NOTIFY_DELAY;
		else {
			strv_free(f);
			msg_die(EX_USAGE, "-N %s: want never, or one or more of success,failure,delay", v);
		}
	}
	strv_free(f);
	if (n == 0 || ((n & DSN_NOTIFY_NEVER) && n != DSN_NOTIFY_NEVER))
		msg_die(EX_USAGE, "-N %s: never cannot be combined with other values", v);
	return n;
}

static void
set_mode(struct opts *o, enum mode m)
{
	o->mode = m;
	o->mode_set = 1;
}

static void
opt_b(struct opts *o, const char *v)
{
	if (strlen(v) != 1)
		msg_die(EX_USAGE, "-b%s: invalid operation mode", v);
	switch (v[0]) {
	case 'm':
		set_mode(o, MODE_DELIVER);
		break;
	case 'p':
		set_mode(o, MODE_PRINTQ);
		break;
	case 'i':
		set_mode(o, MODE_NEWALIASES);
		break;
	case 'v':
		set_mode(o, MODE_VERIFY);
		break;
	case 's':
		set_mode(o, MODE_SMTP);
		break;
	case 'd':
	case 'D':
		set_mode(o, MODE_DAEMON);
		break;
	default:
		msg_die(EX_USAGE, "-b%s: operation mode not supported", v);
	}
}

/* -o X value (sendmail's one-letter options) */
static void
opt_o(struct opts *o, const char *v)
{
	switch (v[0]) {
	case 'i':
		o->ignore_dots = !(v[1] && strchr("fFnN0", v[1]));
		break;
	case 'A':
		if (v[1])
			o->alias_file = v + 1;
		break;
	default:
		/* -oem, -odi, -odb, -oQdir, -om, -oL... mean nothing here */
		break;
	}
}

/* -O Name=value (sendmail's long options) */
static void
opt_O(struct opts *o, const char *v)
{
	size_t n = strcspn(v, "=");
	const char *val = v[n] == '=' ? v + n + 1 : "";

	while (n && v[n - 1] == ' ')
		n--;
	while (*val == ' ')
		val++;
	if (n == 10 && !strncasecmp(v, "IgnoreDots", 10))
		o->ignore_dots = !*val || !strchr("fFnN0", *val);
	else if (n == 9 && !strncasecmp(v, "AliasFile", 9) && *val)
		o->alias_file = val;
}

static void
opt_q(struct opts *o, const char *v)
{
	o->qflag = 1;
	if (v[0] == 'I' && queue_id_valid(v + 1))
		o->flush_id = v + 1;
	/* -q, -q1h, -qR.., -qS.., -qf, -qp...: all mean "flush now" here */
}

static void
opt_with_arg(struct opts *o, int c, const char *v)
{
	check_arg(c, v);
	switch (c) {
	case 'B':		/* body type: 7BIT, 8BITMIME, BINARYMIME */
	case 'A':		/* -Ac / -Am: which sendmail.cf */
	case 'L':		/* syslog label */
	case 'M':		/* macro */
	case 'Q':		/* quarantine reason */
	case 'd':		/* debug */
	case 'e':		/* error mode (obsolete) */
	case 'h':		/* hop count */
	case 'p':		/* protocol */
		break;
	case 'C':
		o->confdir = v;
		break;
	case 'F':
		if (strlen(v) > 1024)
			msg_die(EX_USAGE, "-F: full name longer than 1024 bytes");
		o->fullname = v;
		break;
	case 'N':
		o->notify = parse_notify(v);
		break;
	case 'O':
		opt_O(o, v);
		break;
	case 'R':
		if (!strcasecmp(v, "full"))
			o->ret = "FULL";
		else if (!strcasecmp(v, "hdrs"))
			o->ret = "HDRS";
		else
			msg_die(EX_USAGE, "-R %s: want full or hdrs", v);
		break;
	case 'V': {
		size_t i, n = strlen(v);

		if (n == 0 || n > 100)
			msg_die(EX_USAGE, "-V: the envelope ID must be 1 to 100 characters");
		for (i = 0; i < n; i++)
			if ((unsigned char)v[i] < 33 || (unsigned char)v[i] > 126)
				msg_die(EX_USAGE, "-V: the envelope ID must be printable ASCII without spaces");
		o->envid = v;
		break;
	}
	case 'X':
		msg_die(EX_USAGE, "-X option refused (uid=%ld): logging to a file is not supported",
		    (long)getuid());
	case 'b':
		opt_b(o, v);
		break;
	case 'f':
	case 'r':
		o->sender = v;
		break;
	case 'o':
		opt_o(o, v);
		break;
	}
}

#define FLAGS_NOARG	"GIUcimnstvx"
#define FLAGS_ARG	"ABCFLMNOQRVXbdefhopr"

static void
parse_args(int argc, char **argv, struct opts *o)
{
	int i, dashdash = 0;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *p;

		if (!strcmp(a, "--")) {
			dashdash = 1;
			i++;
			break;
		}
		if (!strcmp(a, "--json")) {
			o->json = 1;
			continue;
		}
		if (a[0] != '-' || a[1] == 0)
			break;
		if (a[1] == '-')
			usage("unknown option");
		for (p = a + 1; *p; p++) {
			int c = (unsigned char)*p;

			if (c == 'q') {
				opt_q(o, p + 1);
				break;
			}
			if (strchr(FLAGS_NOARG, c)) {
				if (c == 'I')
					set_mode(o, MODE_NEWALIASES);
				else if (c == 'i')
					o->ignore_dots = 1;
				else if (c == 't')
					o->extract = 1;
				else if (c == 'v')
					o->verbose++;
				/* -G -U -c -m -n -s -x: accepted, ignored */
				continue;
			}
			if (strchr(FLAGS_ARG, c)) {
				const char *v;

				if (p[1])
					v = p + 1;
				else if (i + 1 < argc)
					v = argv[++i];
				else {
					char why[64];

					snprintf(why, sizeof(why), "option requires an argument -- '%c'", c);
					usage(why);
				}
				opt_with_arg(o, c, v);
				break;
			}
			{
				char why[64];

				if (isprint(c))
					snprintf(why, sizeof(why), "invalid option -- '%c'", c);
				else
					snprintf(why, sizeof(why), "invalid option");
				usage(why);
			}
		}
	}
	o->rcpt = argv + i;
	o->nrcpt = argc - i;
	for (; i < argc; i++) {
		check_arg(0, argv[i]);
		if (!dashdash && argv[i][0] == '-')
			msg_die(EX_USAGE, "recipient %s: an address may not begin with '-' (put -- before the recipients)",
			    argv[i]);
	}
	if (o->qflag) {
		if (o->mode == MODE_DAEMON)
			;
		else if (!o->mode_set || o->mode == MODE_DELIVER)
			o->mode = MODE_FLUSH;
	}
	if (o->json && o->mode != MODE_PRINTQ)
		usage("--json goes with mailq or -bp");
}

/*
 * Who is calling.
 */
struct caller {
	uid_t uid;
	char *login;
	char *gecos;		/* the full name from the password file, or NULL */
};

static void
caller_get(struct caller *c)
{
	struct passwd *pw;

	c->uid = getuid();
	c->gecos = NULL;
	if ((pw = getpwuid(c->uid)) != NULL && pw->pw_name && *pw->pw_name) {
		c->login = xstrdup(pw->pw_name);
		if (pw->pw_gecos && *pw->pw_gecos) {
			struct buf g = BUF_INIT;
			const char *s;

			/* the first comma-separated field; & is the login, capitalised */
			for (s = pw->pw_gecos; *s && *s != ',' && g.len < 256; s++) {
				if (*s == '&') {
					buf_addc(&g, toupper((unsigned char)c->login[0]));
					buf_adds(&g, c->login + 1);
				} else if ((unsigned char)*s >= 32 && *s != 127)
					buf_addc(&g, *s);
			}
			if (g.len)
				c->gecos = buf_steal(&g);
			buf_free(&g);
		}
	} else {
		struct buf b = BUF_INIT;

		buf_printf(&b, "uid%ld", (long)c->uid);
		c->login = buf_steal(&b);
	}
}

/*
 * Reading the message: LF or CRLF line ends are stored as LF; a lone
 * "." ends the input unless -i; a leading "From " line is dropped; lines
 * over line_length_limit are broken (in the header section as a fold at
 * white space where possible).
 */
struct reader {
	struct buf out;		/* processed message */
	size_t limit;		/* line_length_limit */
	size_t max;		/* message_size_limit, 0: none */
	int ignore_dots;
	int first;		/* no line seen yet */
	int in_header;
	int done;		/* "." seen */
	int too_big;
};

static void
put_line(struct reader *r, const char *s, size_t n)
{
	if (r->in_header) {
		if (n == 0)
			r->in_header = 0;
		else if (s[0] != ' ' && s[0] != '\t') {
			size_t i = 0;

			while (i < n && (unsigned char)s[i] > 32 && (unsigned char)s[i] < 127 && s[i] != ':')
				i++;
			while (i < n && (s[i] == ' ' || s[i] == '\t'))
				i++;
			if (i == 0 || i >= n || s[i] != ':')
				r->in_header = 0;
		}
	}
	while (n > r->limit) {
		size_t cut = r->limit, k;

		if (r->in_header) {
			/* fold before the last white space, keeping it */
			for (k = cut; k > 1; k--)
				if (s[k - 1] == ' ' || s[k - 1] == '\t')
					break;
			if (k > 1) {
				cut = k - 1;
				buf_add(&r->out, s, cut);
				buf_addc(&r->out, '\n');
			} else {
				buf_add(&r->out, s, cut);
				buf_adds(&r->out, "\n ");
			}
		} else {
			buf_add(&r->out, s, cut);
			buf_addc(&r->out, '\n');
		}
		s += cut;
		n -= cut;
	}
	buf_add(&r->out, s, n);
	buf_addc(&r->out, '\n');
	if (r->max && r->out.len > r->max)
		r->too_big = 1;
}

/* One input line (without its LF). */
static void
reader_line(struct reader *r, const char *s, size_t n)
{
	if (n && s[n - 1] == '\r')
		n--;
	if (r->first) {
		r->first = 0;
		if (n >= 5 && !memcmp(s, "From ", 5))
			return;
	}
	if (!r->ignore_dots && n == 1 && s[0] == '.') {
		r->done = 1;
		return;
	}
	put_line(r, s, n);
}

static void
read_message(struct reader *r, int fd)
{
	struct buf in = BUF_INIT;
	size_t pos = 0, scanned = 0;

	for (;;) {
		ssize_t got;
		char *nl;

		buf_reserve(&in, 65536);
		got = read(fd, in.data + in.len, in.cap - in.len - 1);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			msg_die(EX_TEMPFAIL, "read the message from standard input: %s", strerror(errno));
		}
		if (got == 0)
			break;
		in.len += (size_t)got;
		in.data[in.len] = 0;
		while (!r->done && !r->too_big &&
		    (nl = memchr(in.data + scanned, '\n', in.len - scanned)) != NULL) {
			reader_line(r, in.data + pos, (size_t)(nl - (in.data + pos)));
			pos = scanned = (size_t)(nl - in.data) + 1;
		}
		if (r->done || r->too_big)
			break;
		/* keep the unfinished line (never rescanned); bound it so
		 * memory stays in check */
		scanned = in.len;
		if (pos > 0) {
			buf_consume(&in, pos);
			scanned -= pos;
			pos = 0;
		}
		if (r->max && in.len > 2 * r->max + 2) {
			r->too_big = 1;
			break;
		}
	}
	if (!r->done && !r->too_big && pos < in.len)
		reader_line(r, in.data + pos, in.len - pos);
	buf_free(&in);
}

/*
 * Header fields that sendmail adds.
 */
/* A display name: as is when it is atoms, quoted when it has specials,
 * RFC 2047 encoded words when it is not ASCII. */
static void
add_phrase(struct buf *out, const char *name)
{
	const unsigned char *s = (const unsigned char *)name;
	size_t n = strlen(name), i;
	int eight = 0, special = 0;

	for (i = 0; i < n; i++) {
		if (s[i] >= 0x80)
			eight = 1;
		else if (s[i] < 32 || s[i] == 127 || strchr("()<>[]:;@\\,.\"", s[i]))
			special = 1;
	}
	if (eight) {
		/* encoded words of at most 45 bytes, cut at character starts */
		size_t start = 0;

		while (start < n) {
			size_t end = start + 45 > n ? n : start + 45;

			while (end < n && end > start + 1 && (s[end] & 0xc0) == 0x80)
				end--;
			if (start)
				buf_addc(out, ' ');
			buf_adds(out, "=?UTF-8?B?");
			base64_encode(s + start, end - start, out);
			buf_adds(out, "?=");
			start = end;
		}
		return;
	}
	if (!special) {
		buf_add(out, name, n);
		return;
	}
	buf_addc(out, '"');
	for (i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_addc(out, '\\');
		if (s[i] >= 32 && s[i] != 127)
			buf_addc(out, s[i]);
	}
	buf_addc(out, '"');
}

static void
message_id(struct buf *out)
{
	unsigned char r[8];
	time_t t = time(NULL);
	struct tm tm;
	char ts[32];
	size_t i;

	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		uint64_t v = (uint64_t)now_us() ^ ((uint64_t)getpid() << 40);

		memcpy(r, &v, sizeof(r));
	}
	gmtime_r(&t, &tm);
	if (!strftime(ts, sizeof(ts), "%Y%m%d%H%M%S", &tm))
		snprintf(ts, sizeof(ts), "%lld", (long long)t);
	buf_printf(out, "Message-ID: <%s.", ts);
	for (i = 0; i < sizeof(r); i++)
		buf_printf(out, "%02X", r[i]);
	buf_printf(out, "@%s>\n", conf_str("myhostname"));
}

/*
 * Recipients.
 */
struct rcpts {
	char **v;
	size_t n, cap;
	size_t limit;
};

static void
rcpt_add(struct rcpts *r, const char *addr)
{
	if (r->n >= r->limit)
		msg_die(EX_UNAVAILABLE, "too many recipients (recipient_limit = %zu)", r->limit);
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->v = xreallocarray(r->v, r->cap, sizeof(*r->v));
	}
	r->v[r->n++] = xstrdup(addr);
}

/* Parse an address list (a command-line argument or a header value),
 * qualify each address and add it.  Returns the number of bad ones. */
static size_t
rcpt_add_list(struct rcpts *r, const char *value, const char *origin)
{
	struct buf q = BUF_INIT;
	size_t bad = 0, i;
	char **v = addr_parse_list(value, &bad);

	for (i = 0; v[i]; i++) {
		addr_qualify(v[i], origin, &q);
		if (!addr_valid_rcpt(buf_str(&q)))
			bad++;
		else
			rcpt_add(r, buf_str(&q));
	}
	strv_free(v);
	buf_free(&q);
	return bad;
}

/* Drop duplicates, keeping the first of each in the original order
 * (the comparison of qf_rcpt_key: local parts of our own domains
 * without case, of other domains exactly). */
static void
rcpt_dedupe(struct rcpts *r)
{
	char **keys, **local;
	unsigned char *drop;
	size_t i, n = 0;

	if (r->n < 2)
		return;
	keys = xcalloc(r->n, sizeof(*keys));
	drop = xcalloc(r->n, 1);
	local = conf_list("mydestination");
	for (i = 0; i < r->n; i++)
		keys[i] = qf_rcpt_key(r->v[i], local);
	strv_free(local);
	strv_mark_dups(keys, r->n, drop);
	for (i = 0; i < r->n; i++) {
		free(keys[i]);
		if (drop[i])
			free(r->v[i]);
		else
			r->v[n++] = r->v[i];
	}
	r->n = n;
	free(keys);
	free(drop);
}

/* The sender as given with -f / -r: "", "<>" (white space allowed)
 * is the null sender. */
static void
sender_parse(const char *given, const char *origin, struct buf *out)
{
	const char *s = given + strspn(given, " \t");
	size_t bad = 0, n = strlen(s);
	char **v;

	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	buf_reset(out);
	if (n == 0 || (n == 2 && !memcmp(s, "<>", 2)))
		return;
	v = addr_parse_list(given, &bad);
	if (bad || strv_len(v) != 1) {
		strv_free(v);
		msg_die(EX_USAGE, "-f %s: malformed sender address", given);
	}
	addr_qualify(v[0], origin, out);
	strv_free(v);
	if (!addr_valid(buf_str(out)))
		msg_die(EX_USAGE, "-f %s: malformed sender address", given);
}

/* Start postdrop with extra arguments; fatal when it cannot run. */
static pid_t
spawn_helper(const struct opts *o, const char *const *extra, int *in_fd, int out_fd)
{
	struct buf err = BUF_INIT;
	pid_t pid = postdrop_spawn(o->confdir, extra, in_fd, out_fd, &err);

	if (pid < 0)
		msg_die(EX_TEMPFAIL, "%s", buf_str(&err));
	buf_free(&err);
	return pid;
}

static void
block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGTSTP);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

static int
is_bcc(const char *name)
{
	return !strcasecmp(name, "Bcc") || !strcasecmp(name, "Resent-Bcc");
}

static int
do_deliver(struct opts *o)
{
	struct caller c;
	struct reader r;
	struct header h;
	struct rcpts rc = { NULL, 0, 0, 0 };
	struct buf sender = BUF_INIT, added = BUF_INIT, err = BUF_INIT, client = BUF_INIT;
	struct buf login = BUF_INIT;
	struct qf_writer w;
	struct maildrop_sink s;
	const char *origin = conf_str("myorigin");
	const char *fullname, *content;
	char id[QUEUE_ID_MAX];
	long long lim;
	size_t i, hend;
	int hrc, status;

	if (!o->extract && o->nrcpt == 0)
		msg_die(EX_USAGE, "Recipient addresses must be specified on the command line or via the -t option");
	caller_get(&c);
	addr_quote_local(c.login, &login);	/* the login as a local part */
	if (o->sender)
		sender_parse(o->sender, origin, &sender);
	else
		addr_qualify(buf_str(&login), origin, &sender);
	if (!addr_valid(buf_str(&sender)))
		msg_die(EX_USAGE, "sender address %s is malformed", buf_str(&sender));
	fullname = o->fullname;
	if (!fullname && (fullname = getenv("NAME")) != NULL &&
	    (strlen(fullname) > 1024 || has_crlfnul(fullname, strlen(fullname)) || !*fullname))
		fullname = NULL;
	if (!fullname && !o->sender)
		fullname = c.gecos;

	lim = conf_int("recipient_limit");
	rc.limit = lim > 0 ? (size_t)lim : (size_t)-1;
	for (i = 0; i < (size_t)o->nrcpt; i++)
		if (rcpt_add_list(&rc, o->rcpt[i], origin))
			msg_die(EX_USAGE, "%s: malformed recipient address", o->rcpt[i]);

	/* the message */
	memset(&r, 0, sizeof(r));
	lim = conf_int("line_length_limit");
	r.limit = lim > 0 ? (size_t)lim : 2048;
	r.max = (size_t)conf_size("message_size_limit");
	r.ignore_dots = o->ignore_dots;
	r.first = 1;
	r.in_header = 1;
	read_message(&r, 0);
	if (r.too_big)
		msg_die(EX_UNAVAILABLE, "5.3.4 message file too big (message_size_limit = %zu bytes)", r.max);

	content = r.out.data ? r.out.data : "";
	hrc = header_parse(content, r.out.len,
	    (size_t)conf_size("header_size_limit"), &h);
	if (o->extract) {
		static const char *plain[] = { "To", "Cc", "Bcc", NULL };
		static const char *resent[] = { "Resent-To", "Resent-Cc", "Resent-Bcc", NULL };
		const char **names = plain;
		size_t j, bad = 0;

		if (header_get(&h, "Resent-To") || header_get(&h, "Resent-Cc") ||
		    header_get(&h, "Resent-Bcc"))
			names = resent;
		for (j = 0; j < h.n; j++) {
			const char **nm;

			for (nm = names; *nm; nm++)
				if (!strcasecmp(h.f[j].name, *nm))
					bad += rcpt_add_list(&rc, h.f[j].value, origin);
		}
		if (bad)
			warn("%zu malformed address%s in the message header ignored",
			    bad, bad == 1 ? "" : "es");
	}
	rcpt_dedupe(&rc);
	if (rc.n == 0)
		msg_die(EX_USAGE, "No recipient addresses found%s", o->extract ? " in message header" : "");

	/* fields to add */
	if (hrc < 0 || !header_get(&h, "From")) {
		const char *from = sender.len ? buf_str(&sender) : NULL;
		struct buf def = BUF_INIT;

		if (!from) {
			addr_qualify(buf_str(&login), origin, &def);
			from = buf_str(&def);
		}
		buf_adds(&added, "From: ");
		if (fullname && *fullname) {
			add_phrase(&added, fullname);
			buf_printf(&added, " <%s>\n", from);
		} else
			buf_printf(&added, "%s\n", from);
		buf_free(&def);
	}
	if (hrc < 0 || !header_get(&h, "Date")) {
		buf_adds(&added, "Date: ");
		rfc5322_date(&added, time(NULL));
		buf_addc(&added, '\n');
	}
	if (hrc < 0 || !header_get(&h, "Message-ID"))
		message_id(&added);

	/* store */
	block_signals();
	if (maildrop_sink_open(&s, o->confdir, &err) < 0)
		msg_die(EX_TEMPFAIL, "%s", buf_str(&err));
	qf_writer_init(&w, s.fd);
	qf_put_time(&w, now_us());
	qf_put_str(&w, QREC_SENDER, buf_str(&sender));
	if (fullname && *fullname)
		qf_put_str(&w, QREC_FULLNAME, fullname);
	buf_printf(&client, "local uid=%ld user=%s", (long)c.uid, c.login);
	qf_put_str(&w, QREC_CLIENT, buf_str(&client));
	if (o->envid)
		qf_put_str(&w, QREC_ENVID, o->envid);
	if (o->ret)
		qf_put_str(&w, QREC_RET, o->ret);
	for (i = 0; i < rc.n; i++)
		qf_put_rcpt(&w, rc.v[i], "", o->notify);
	qf_content_start(&w);
	if (hrc < 0) {
		qf_content_write(&w, added.data, added.len);
		qf_content_write(&w, "\n", 1);
		qf_content_write(&w, content, r.out.len);
	} else {
		for (i = 0; i < h.n; i++)
			if (!is_bcc(h.f[i].name))
				qf_content_write(&w, h.f[i].raw, h.f[i].raw_len);
		hend = h.n ? (size_t)(h.f[h.n - 1].raw - content) + h.f[h.n - 1].raw_len : 0;
		if (added.len)
			qf_content_write(&w, added.data, added.len);
		if (!h.has_blank && !h.truncated)
			qf_content_write(&w, "\n", 1);
		qf_content_write(&w, content + hend, r.out.len - hend);
	}
	status = maildrop_sink_commit(&s, &w, &err, id);
	qf_writer_free(&w);
	if (status != 0) {
		maildrop_sink_abort(&s);
		msg_die(status, "message not stored: %s", buf_str(&err));
	}
	if (id[0]) {
		maildrop_wake(id);
		(void)flow_wait();
		if (o->verbose)
			fprintf(stderr, "%s: queued as maildrop/%s\n", progname, id);
	} else if (o->verbose)
		fprintf(stderr, "%s: queued through postdrop\n", progname);
	header_free(&h);
	for (i = 0; i < rc.n; i++)
		free(rc.v[i]);
	free(rc.v);
	buf_free(&r.out);
	buf_free(&sender);
	buf_free(&added);
	buf_free(&err);
	buf_free(&client);
	buf_free(&login);
	free(c.login);
	free(c.gecos);
	return EX_OK;
}

/*
 * mailq: render the queue ourselves when we can read it, else ask the
 * showq daemon (directly, or through postdrop, whose group may reach
 * public/).
 */
static int
do_printq(struct opts *o)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	const char *extra[3] = { "-p", o->json ? "--json" : NULL, NULL };

	if (qlist_render(&out, o->json ? QLIST_JSON : QLIST_TEXT, &err) == 0) {
		if (write_full(1, out.data ? out.data : "", out.len) < 0)
			msg_die(EX_IOERR, "write: %s", strerror(errno));
		buf_free(&out);
		buf_free(&err);
		return EX_OK;
	}
	if (errno != EACCES && errno != EPERM)
		msg_die(EX_TEMPFAIL, "cannot read the queue: %s", buf_str(&err));
	if (showq_copy(o->json) == 0)
		return EX_OK;
	if (errno != EACCES && errno != EPERM)
		msg_die(EX_UNAVAILABLE, "cannot list the queue: the mail system is down (showq: %s)",
		    strerror(errno));
	fflush(stdout);
	return postdrop_wait(spawn_helper(o, extra, NULL, -1));
}

/* newaliases: rebuild each alias database. */
static int
do_newaliases(struct opts *o)
{
	struct buf err = BUF_INIT, spec = BUF_INIT;
	char **specs;
	size_t i;
	int status = EX_OK;

	if (o->alias_file) {
		specs = xcalloc(2, sizeof(char *));
		buf_printf(&spec, "%s%s", strchr(o->alias_file, ':') ? "" : "hash:", o->alias_file);
		specs[0] = buf_steal(&spec);
	} else
		specs = conf_list("alias_database");
	for (i = 0; specs[i]; i++) {
		const char *colon = strchr(specs[i], ':');
		long n;

		if (!colon || colon == specs[i] || !colon[1]) {
			warn("alias_database %s: want type:path, e.g. hash:/etc/hermod/aliases", specs[i]);
			status = EX_CONFIG;
			continue;
		}
		if (access(colon + 1, R_OK) < 0) {
			warn("%s: %s", colon + 1, strerror(errno));
			status = EX_CONFIG;
			continue;
		}
		buf_reset(&err);
		errno = 0;
		n = map_build(specs[i], MAP_FMT_ALIASES, &err);
		if (n < 0) {
			int e = errno;

			warn("%s: %s", specs[i], err.len ? buf_str(&err) : "cannot build the database");
			if (status == EX_OK)
				status = e == EACCES || e == EPERM ? EX_NOPERM : EX_TEMPFAIL;
			continue;
		}
		printf("%s: %ld alias%s\n", colon + 1, n, n == 1 ? "" : "es");
	}
	strv_free(specs);
	buf_free(&err);
	return status;
}

/* -bv: for each recipient, say whether it could be delivered. */
static int
local_exists(const char *local, char **maps, struct map **open_maps)
{
	struct buf val = BUF_INIT, key = BUF_INIT, md = BUF_INIT, err = BUF_INIT;
	const char *delim = conf_str("recipient_delimiter");
	size_t i, cut;
	int found = 0, pass;

	buf_adds(&key, local);
	str_lower(key.data);
	for (pass = 0; pass < 2 && !found; pass++) {
		if (pass == 1) {
			/* without the extension: user+ext -> user */
			if (!*delim || (cut = strcspn(buf_str(&key), delim)) == key.len || cut == 0)
				break;
			buf_truncate(&key, cut);
		}
		for (i = 0; maps[i] && !found; i++) {
			if (!open_maps[i]) {
				buf_reset(&err);
				open_maps[i] = map_open(maps[i], &err);
				if (!open_maps[i])
					continue;
			}
			if (map_lookup(open_maps[i], buf_str(&key), &val) == 1)
				found = 1;
		}
		if (!found && vuser_name_valid(buf_str(&key)) && vuser_lookup(buf_str(&key), &md) == 1)
			found = 1;
		if (!found && getpwnam(buf_str(&key)))
			found = 1;
	}
	buf_free(&val);
	buf_free(&key);
	buf_free(&md);
	buf_free(&err);
	return found;
}

static int
do_verify(struct opts *o)
{
	char **dest = conf_list("mydestination"), **maps = conf_list("alias_maps");
	struct map **open_maps = xcalloc(strv_len(maps) + 1, sizeof(*open_maps));
	struct buf q = BUF_INIT, l = BUF_INIT, d = BUF_INIT;
	const char *origin = conf_str("myorigin");
	int all = 1, i;
	size_t j, k;

	if (o->nrcpt == 0)
		msg_die(EX_USAGE, "-bv: no recipients given");
	for (j = 0; dest[j]; j++)
		str_lower(dest[j]);
	for (i = 0; i < o->nrcpt; i++) {
		size_t bad = 0;
		char **v = addr_parse_list(o->rcpt[i], &bad);

		if (bad || !v[0]) {
			printf("%s... Syntax error in address\n", o->rcpt[i]);
			all = 0;
		}
		for (j = 0; v[j]; j++) {
			int local = 0;

			addr_qualify(v[j], origin, &q);
			if (addr_split(buf_str(&q), &l, &d) < 0) {
				printf("%s... Syntax error in address\n", v[j]);
				all = 0;
				continue;
			}
			for (k = 0; dest[k]; k++)
				if (!strcmp(dest[k], buf_str(&d)))
					local = 1;
			if (!local)
				printf("%s... deliverable: mailer smtp, host %s, user %s\n",
				    buf_str(&q), buf_str(&d), buf_str(&q));
			else if (local_exists(buf_str(&l), maps, open_maps))
				printf("%s... deliverable: mailer local, user %s\n",
				    buf_str(&q), buf_str(&l));
			else {
				printf("%s... User unknown\n", buf_str(&q));
				all = 0;
			}
		}
		strv_free(v);
	}
	for (j = 0; maps[j]; j++)
		if (open_maps[j])
			map_close(open_maps[j]);
	free(open_maps);
	strv_free(maps);
	strv_free(dest);
	buf_free(&q);
	buf_free(&l);
	buf_free(&d);
	return all ? EX_OK : EX_NOUSER;
}

/* -q: ask qmgr to retry deferred mail now. */
static int
do_flush(struct opts *o)
{
	struct buf path = BUF_INIT;
	int fd, rc;

	conf_queue_path(&path, "private/qmgr");
	fd = proto_connect(buf_str(&path));
	if (fd < 0) {
		int e = errno;

		if (e == EACCES || e == EPERM)
			msg_die(EX_NOPERM, "-q: permission denied (only the mail system's owner may flush the queue)");
		msg_die(EX_UNAVAILABLE, "-q: the mail system is down (%s: %s)", buf_str(&path), strerror(e));
	}
	buf_free(&path);
	if (o->flush_id)
		rc = proto_send_strs(fd, PROTO_QMGR_FLUSH, o->flush_id, (const char *)NULL);
	else
		rc = proto_send_strs(fd, PROTO_QMGR_FLUSH, (const char *)NULL);
	close(fd);
	if (rc < 0)
		msg_die(EX_UNAVAILABLE, "-q: send to qmgr: %s", strerror(errno));
	if (o->verbose)
		fprintf(stderr, "%s: queue flush requested\n", progname);
	return EX_OK;
}

/* -bs: the SMTP server's session on stdin/stdout (smtpd -S, local
 * submission as the calling user), found in daemon_directory. */
static int
do_smtp(void)
{
	char **dirs = str_split(conf_str("daemon_directory"), ":");
	struct buf path = BUF_INIT;
	size_t i;

	for (i = 0; dirs && dirs[i]; i++) {
		if (!*dirs[i])
			continue;
		buf_reset(&path);
		buf_printf(&path, "%s/smtpd", dirs[i]);
		if (access(buf_str(&path), X_OK) == 0) {
			char *argv[] = { "smtpd", "-C", (char *)conf_dir(), "-S", NULL };

			fflush(stdout);
			execv(buf_str(&path), argv);
			msg_error("exec %s: %s", buf_str(&path), strerror(errno));
			break;
		}
	}
	strv_free(dirs);
	buf_free(&path);
	printf("421 4.3.0 %s -bs: the SMTP server is not available\r\n", progname);
	fflush(stdout);
	return EX_UNAVAILABLE;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct buf err = BUF_INIT;
	const char *base;

	sane_fds();
	umask(022);
	memset(&o, 0, sizeof(o));
	base = argc > 0 && argv[0] ? strrchr(argv[0], '/') : NULL;
	base = base ? base + 1 : (argc > 0 && argv[0] ? argv[0] : "sendmail");
	if (!strcmp(base, "mailq")) {
		/* mailq -q...: sendmail's queue selection, not a flush */
		progname = "mailq";
		set_mode(&o, MODE_PRINTQ);
	} else if (!strcmp(base, "newaliases")) {
		progname = "newaliases";
		set_mode(&o, MODE_NEWALIASES);
	}
	o.prog = progname;
	log_init(progname, LOG_FLAG_STDERR);
	if (argc < 1)
		usage(NULL);
	parse_args(argc, argv, &o);
	if (o.mode == MODE_DAEMON)
		msg_die(EX_UNAVAILABLE, "-bd: this sendmail does not run as a daemon; start the mail system with: hermod start");
	if (conf_load(o.confdir, &err) < 0)
		msg_die(EX_TEMPFAIL, "%s", buf_str(&err));
	buf_free(&err);
	if (o.mode == MODE_SMTP)
		return do_smtp();
	switch (o.mode) {
	case MODE_PRINTQ:
		return do_printq(&o);
	case MODE_NEWALIASES:
		return do_newaliases(&o);
	case MODE_VERIFY:
		return do_verify(&o);
	case MODE_FLUSH:
		return do_flush(&o);
	default:
		return do_deliver(&o);
	}
}
