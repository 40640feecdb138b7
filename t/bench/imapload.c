/*
 * imapload.c: the mixed-load IMAP client of t/bench/imap (mode e).
 * It forks CLIENTS processes; each logs in, SELECTs INBOX and then, for
 * SECS seconds (all clients start together), sends one command at a
 * time and awaits its tagged reply, the command drawn from a fixed mix
 * by a per-client PRNG seeded from SEED (so the same seed gives every
 * client the same sequence of commands on every server):
 *
 *   weight  command
 *     10    NOOP
 *      3    SELECT INBOX
 *     20    UID FETCH a:b (FLAGS ENVELOPE)           (1-50 messages)
 *     12    UID FETCH a:b (UID RFC822.SIZE BODY.PEEK[HEADER])  (1-20)
 *     15    UID FETCH u BODY[]                       (one message)
 *     15    UID STORE a:b [+-]FLAGS[.SILENT] (\Seen|\Flagged)  (1-10)
 *      8    APPEND INBOX (\Seen) {1-4 KB}            (synchronizing literal)
 *      8    UID STORE u +FLAGS.SILENT (\Deleted), then UID EXPUNGE u, on
 *           one of this client's own appended messages (an APPEND when it
 *           has none)
 *      3    SEARCH UNSEEN
 *      3    UID SEARCH FROM "sN@example.test"
 *      3    SEARCH SINCE d-Mon-yyyy
 *
 * a:b and u are drawn from the UIDs 1..UIDNEXT-1 seen at the first
 * SELECT: the original messages, which no client ever expunges.
 *
 * Every reply is read whole: literals ({n} then n bytes) are skipped by
 * their length and the line goes on after them.  A protocol error is a
 * tagged reply other than OK, an untagged BYE, a continuation request
 * where none is due, a line that starts neither with "* ", "+" nor the
 * tag, an APPEND OK without [APPENDUID v u], a UID FETCH u BODY[] without
 * a FETCH with a BODY[] literal, a UID EXPUNGE of an own message without
 * any untagged EXPUNGE, a closed connection or a 60 s timeout.  After a closed
 * connection or a timeout the client logs in again and goes on.
 *
 *   imapload -p PORT [-H HOST] -u USER -w PASS -c CLIENTS -t SECS -s SEED
 *
 * Prints per command kind: count, errors, mean latency; then one line
 * "RESULT commands=N seconds=S rate=R errors=E" and the first protocol
 * errors (command sent, reply received).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum op {
	OP_NOOP, OP_SELECT, OP_FETCH_ENV, OP_FETCH_HDR, OP_FETCH_BODY, OP_STORE,
	OP_APPEND, OP_DEL_STORE, OP_EXPUNGE, OP_SEARCH_UNSEEN, OP_SEARCH_FROM,
	OP_SEARCH_SINCE, OP_LOGIN, NOP
};

static const char *opname[NOP] = {
	"NOOP", "SELECT", "FETCH ENVELOPE", "FETCH HEADER", "FETCH BODY[]",
	"STORE flags", "APPEND", "STORE \\Deleted", "UID EXPUNGE",
	"SEARCH UNSEEN", "SEARCH FROM", "SEARCH SINCE", "LOGIN (reconnect)"
};

#define NSAMPLE 4

struct sample {
	char cmd[200];
	char reply[400];
	char why[80];
};

struct stats {
	uint64_t n[NOP], err[NOP];
	double lat[NOP];
	uint64_t litbytes;
	double t_end;
	int nsample;
	struct sample s[NSAMPLE];
};

static const char *host = "127.0.0.1";
static int port, nclients = 10, secs = 20;
static unsigned long seed = 1;
static const char *user = "bench", *pass = "secret";

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "imapload: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

/* xorshift64* */
static uint64_t rs;

static uint64_t
rnd(void)
{
	rs ^= rs >> 12;
	rs ^= rs << 25;
	rs ^= rs >> 27;
	return rs * 2685821657736338717ULL;
}

static unsigned
rndn(unsigned n)
{
	return n ? (unsigned)(rnd() % n) : 0;
}

/* ---- connection ------------------------------------------------------ */

struct conn {
	int fd;
	char *buf;
	size_t len, pos, cap;
	char *text;		/* the current response, literals left out */
	size_t tlen, tcap;
	int nlit;
	size_t litbytes;
	unsigned tagn;
	char tag[16];
};

static struct stats *st;
static int counting;	/* only the timed run is counted */
#define ERR(o) do { if (counting) st->err[o]++; } while (0)

static void
sample(const char *why, const char *cmd, const char *reply)
{
	struct sample *s;

	if (!counting || st->nsample >= NSAMPLE)
		return;
	s = &st->s[st->nsample++];
	snprintf(s->why, sizeof s->why, "%s", why);
	snprintf(s->cmd, sizeof s->cmd, "%s", cmd);
	snprintf(s->reply, sizeof s->reply, "%s", reply ? reply : "");
}

/* -1: closed or timeout */
static int
fill(struct conn *c)
{
	ssize_t r;

	if (c->pos > 0 && c->pos == c->len)
		c->pos = c->len = 0;
	else if (c->pos > (1 << 20)) {
		memmove(c->buf, c->buf + c->pos, c->len - c->pos);
		c->len -= c->pos;
		c->pos = 0;
	}
	if (c->cap - c->len < 65536) {
		c->cap = c->cap * 2 + 65536;
		if (!(c->buf = realloc(c->buf, c->cap)))
			die("out of memory");
	}
	do
		r = read(c->fd, c->buf + c->len, c->cap - c->len);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return -1;
	c->len += r;
	return 0;
}

static void
tadd(struct conn *c, const char *p, size_t n)
{
	if (c->tlen + n + 1 > c->tcap) {
		c->tcap = (c->tlen + n + 1) * 2;
		if (!(c->text = realloc(c->text, c->tcap)))
			die("out of memory");
	}
	memcpy(c->text + c->tlen, p, n);
	c->tlen += n;
	c->text[c->tlen] = 0;
}

/*
 * Read one whole response into c->text: a line, and if it ends in {n},
 * n bytes of literal (skipped) and the rest of the line, and so on.
 * 0 ok, -1 closed/timeout, -2 malformed literal.
 */
static int
response(struct conn *c)
{
	c->tlen = 0;
	c->nlit = 0;
	c->litbytes = 0;
	tadd(c, "", 0);
	for (;;) {
		char *b, *e, *q;
		size_t l;
		unsigned long long n;

		while (!(e = memmem(c->buf + c->pos, c->len - c->pos, "\r\n", 2)))
			if (fill(c) < 0)
				return -1;
		b = c->buf + c->pos;
		l = e - b;
		tadd(c, b, l);
		c->pos += l + 2;
		if (l < 3 || b[l - 1] != '}')
			return 0;
		q = b + l - 2;
		if (*q == '+')
			q--;
		while (q > b && *q >= '0' && *q <= '9')
			q--;
		if (*q != '{' || q == b + l - 2)
			return 0;	/* "...}" but not a literal */
		n = strtoull(q + 1, NULL, 10);
		if (n > (1ULL << 31))
			return -2;
		c->nlit++;
		c->litbytes += n;
		while (c->len - c->pos < n) {
			size_t have = c->len - c->pos;

			n -= have;
			c->pos = c->len;
			if (fill(c) < 0)
				return -1;
		}
		c->pos += n;
	}
}

static int
xwrite(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t r = write(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= r;
	}
	return 0;
}

static int
dial(struct conn *c)
{
	struct sockaddr_in sa;
	struct timeval tv = { 60, 0 };
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0)
		die("socket: %s", strerror(errno));
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		die("bad host %s", host);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(c->fd);
		return -1;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	c->len = c->pos = 0;
	return 0;
}

/* what a command's untagged responses showed */
struct seen {
	int bye, exists, expunge, fetch, body;
	unsigned long uidnext, appenduid;
};

/*
 * Send "TAG cmd\r\n" (and, for APPEND, the literal after the "+") and
 * read to the tagged reply.  Returns 0 OK, 1 protocol error (counted,
 * sampled), -1 connection lost (counted, sampled).
 */
static int
command(struct conn *c, enum op op, const char *cmd, const char *lit, size_t litlen, struct seen *sn)
{
	char *out;
	int n, waitcont = lit != NULL, r;
	size_t tl;
	double t0 = now();

	memset(sn, 0, sizeof *sn);
	snprintf(c->tag, sizeof c->tag, "A%u", ++c->tagn);
	tl = strlen(c->tag);
	n = asprintf(&out, "%s %s\r\n", c->tag, cmd);
	if (n < 0)
		die("out of memory");
	if (counting)
		st->n[op]++;
	r = xwrite(c->fd, out, n);
	free(out);
	if (r < 0) {
		ERR(op);
		sample("write failed", cmd, strerror(errno));
		return -1;
	}
	for (;;) {
		const char *t;

		r = response(c);
		if (r == -1) {
			ERR(op);
			sample(errno == EAGAIN ? "timeout (60 s)" : "connection closed", cmd,
			    c->tlen ? c->text : NULL);
			return -1;
		}
		if (r == -2) {
			ERR(op);
			sample("malformed literal", cmd, c->text);
			return -1;
		}
		if (counting)
			st->litbytes += c->litbytes;
		t = c->text;
		if (!strncmp(t, c->tag, tl) && t[tl] == ' ') {
			if (counting)
				st->lat[op] += now() - t0;
			if (waitcont || strncmp(t + tl + 1, "OK", 2) || (t[tl + 3] != ' ' && t[tl + 3] != 0)) {
				ERR(op);
				sample("tagged reply not OK", cmd, t);
				return 1;
			}
			if (sn->bye) {
				ERR(op);
				sample("untagged BYE", cmd, t);
				return -1;
			}
			if (op == OP_APPEND) {
				const char *a = strstr(t, "[APPENDUID ");
				unsigned long v, u;

				if (!a || sscanf(a, "[APPENDUID %lu %lu]", &v, &u) != 2) {
					ERR(op);
					sample("APPEND OK without [APPENDUID v u]", cmd, t);
					return 1;
				}
				sn->appenduid = u;
			}
			return 0;
		}
		if (t[0] == '+' && (t[1] == ' ' || t[1] == 0)) {
			if (!waitcont) {
				ERR(op);
				sample("continuation request not due", cmd, t);
				return -1;
			}
			waitcont = 0;
			if (xwrite(c->fd, lit, litlen) < 0 || xwrite(c->fd, "\r\n", 2) < 0) {
				ERR(op);
				sample("write failed", cmd, strerror(errno));
				return -1;
			}
			continue;
		}
		if (t[0] != '*' || t[1] != ' ') {
			ERR(op);
			sample("unparseable response", cmd, t);
			return -1;
		}
		if (!strncmp(t, "* BYE", 5)) {
			sn->bye = 1;
			ERR(op);
			sample("untagged BYE", cmd, t);
			return -1;
		} else {
			const char *p = t + 2;
			char *e;

			if (!strncmp(p, "OK [UIDNEXT ", 12))
				sn->uidnext = strtoul(p + 12, NULL, 10);
			strtoul(p, &e, 10);
			if (e != p && *e == ' ') {
				e++;
				if (!strncmp(e, "EXISTS", 6))
					sn->exists++;
				else if (!strncmp(e, "EXPUNGE", 7))
					sn->expunge++;
				else if (!strncmp(e, "FETCH", 5)) {
					sn->fetch++;
					/* others' flag changes come as FETCH (FLAGS ...) too */
					if (c->nlit && strstr(e, "BODY[]"))
						sn->body++;
				}
			}
		}
	}
}

/* connect, greeting, LOGIN, SELECT INBOX; the UIDNEXT seen */
static int
session(struct conn *c, unsigned long *uidnext)
{
	char cmd[256];
	struct seen sn;
	int r;

	if (dial(c) < 0) {
		if (counting)
			st->n[OP_LOGIN]++;
		ERR(OP_LOGIN);
		sample("connect failed", "(connect)", strerror(errno));
		return -1;
	}
	r = response(c);
	if (r < 0 || strncmp(c->text, "* OK", 4)) {
		if (counting)
			st->n[OP_LOGIN]++;
		ERR(OP_LOGIN);
		sample("bad greeting", "(connect)", r < 0 ? "(closed)" : c->text);
		close(c->fd);
		return -1;
	}
	snprintf(cmd, sizeof cmd, "LOGIN %s %s", user, pass);
	if (command(c, OP_LOGIN, cmd, NULL, 0, &sn)) {
		close(c->fd);
		return -1;
	}
	if (command(c, OP_SELECT, "SELECT INBOX", NULL, 0, &sn)) {
		close(c->fd);
		return -1;
	}
	if (uidnext && sn.uidnext)
		*uidnext = sn.uidnext;
	return 0;
}

static const char *words[] = {
	"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
	"iota", "kappa", "lambda", "mu", "From", ".dotted"
};
static const char *mon[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

static size_t
mkmsg(char *m, size_t cap, int client, unsigned seq)
{
	size_t want = 1024 + rndn(3073), l;

	l = snprintf(m, cap,
	    "From: mixed%d@example.test\r\nTo: bench@example.test\r\n"
	    "Subject: mixed load %d/%u\r\nMessage-ID: <mixed.%d.%u.%lu@bench>\r\n"
	    "Date: Wed, 15 Nov 2023 10:00:00 +0000\r\n\r\n",
	    client, client, seq, client, seq, seed);
	while (l + 2 < want && l + 100 < cap) {
		int k;

		for (k = 0; k < 9 && l + 2 < want; k++)
			l += snprintf(m + l, cap - l, "%s%s", k ? " " : "", words[rndn(14)]);
		l += snprintf(m + l, cap - l, "\r\n");
	}
	return l;
}

static void
client(int id, int gofd, int readyfd)
{
	struct conn c;
	unsigned long uidnext = 0, maxuid;
	unsigned long own[4096];
	int nown = 0, w, i;
	unsigned seq = 0;
	char go, cmd[512], msg[8192], q[200];
	struct seen sn;
	double end;
	static const int weight[] = { 10, 3, 20, 12, 15, 15, 8, 8, 3, 3, 3 };
	static const enum op wop[] = { OP_NOOP, OP_SELECT, OP_FETCH_ENV, OP_FETCH_HDR,
		OP_FETCH_BODY, OP_STORE, OP_APPEND, OP_DEL_STORE, OP_SEARCH_UNSEEN,
		OP_SEARCH_FROM, OP_SEARCH_SINCE };
	int wsum = 0;

	for (i = 0; i < (int)(sizeof weight / sizeof weight[0]); i++)
		wsum += weight[i];
	memset(&c, 0, sizeof c);
	rs = (seed * 1000003ULL + id + 1) * 0x9E3779B97F4A7C15ULL;
	if (!rs)
		rs = 1;
	if (session(&c, &uidnext) < 0 || uidnext < 2)
		die("client %d: no session (uidnext %lu): %s", id, uidnext, c.text ? c.text : "");
	maxuid = uidnext - 1;
	/* ready, wait for go */
	if (write(readyfd, "r", 1) != 1)
		die("ready: %s", strerror(errno));
	close(readyfd);
	if (read(gofd, &go, 1) < 0)
		die("go: %s", strerror(errno));
	end = now() + secs;
	counting = 1;
	while (now() < end) {
		enum op op;
		int r = 0;

		w = rndn(wsum);
		for (i = 0; w >= weight[i]; i++)
			w -= weight[i];
		op = wop[i];
		if (op == OP_DEL_STORE && !nown)
			op = OP_APPEND;
		switch (op) {
		case OP_NOOP:
			r = command(&c, op, "NOOP", NULL, 0, &sn);
			break;
		case OP_SELECT:
			r = command(&c, op, "SELECT INBOX", NULL, 0, &sn);
			break;
		case OP_FETCH_ENV:
		case OP_FETCH_HDR: {
			unsigned long lo = 1 + rndn(maxuid), hi;

			hi = lo + rndn(op == OP_FETCH_ENV ? 50 : 20);
			if (hi > maxuid)
				hi = maxuid;
			snprintf(cmd, sizeof cmd, "UID FETCH %lu:%lu %s", lo, hi,
			    op == OP_FETCH_ENV ? "(FLAGS ENVELOPE)" : "(UID RFC822.SIZE BODY.PEEK[HEADER])");
			r = command(&c, op, cmd, NULL, 0, &sn);
			break;
		}
		case OP_FETCH_BODY:
			snprintf(cmd, sizeof cmd, "UID FETCH %lu BODY[]", 1 + (unsigned long)rndn(maxuid));
			r = command(&c, op, cmd, NULL, 0, &sn);
			if (!r && sn.body == 0) {
				ERR(op);
				sample("UID FETCH u BODY[] of an existing UID: no FETCH with a BODY[] literal",
				    cmd, c.text);
			}
			break;
		case OP_STORE: {
			unsigned long lo = 1 + rndn(maxuid), hi = lo + rndn(10);

			if (hi > maxuid)
				hi = maxuid;
			snprintf(cmd, sizeof cmd, "UID STORE %lu:%lu %cFLAGS%s (%s)", lo, hi,
			    rndn(2) ? '+' : '-', rndn(2) ? ".SILENT" : "",
			    rndn(2) ? "\\Seen" : "\\Flagged");
			r = command(&c, op, cmd, NULL, 0, &sn);
			break;
		}
		case OP_APPEND: {
			size_t l = mkmsg(msg, sizeof msg, id, ++seq);

			snprintf(cmd, sizeof cmd, "APPEND INBOX (\\Seen) {%zu}", l);
			r = command(&c, op, cmd, msg, l, &sn);
			if (!r && nown < 4096)
				own[nown++] = sn.appenduid;
			break;
		}
		case OP_DEL_STORE: {
			int k = rndn(nown);
			unsigned long u = own[k];

			own[k] = own[--nown];
			snprintf(cmd, sizeof cmd, "UID STORE %lu +FLAGS.SILENT (\\Deleted)", u);
			r = command(&c, op, cmd, NULL, 0, &sn);
			if (r)
				break;
			snprintf(cmd, sizeof cmd, "UID EXPUNGE %lu", u);
			r = command(&c, OP_EXPUNGE, cmd, NULL, 0, &sn);
			/* others' expunges are announced too: at least ours */
			if (!r && sn.expunge < 1) {
				ERR(OP_EXPUNGE);
				snprintf(q, sizeof q, "UID EXPUNGE of an own message: %d untagged EXPUNGE",
				    sn.expunge);
				sample(q, cmd, c.text);
			}
			break;
		}
		case OP_SEARCH_UNSEEN:
			r = command(&c, op, "SEARCH UNSEEN", NULL, 0, &sn);
			break;
		case OP_SEARCH_FROM:
			snprintf(q, sizeof q, "s%lu@example.test", (unsigned long)rndn(maxuid));
			snprintf(cmd, sizeof cmd, "UID SEARCH FROM \"%s\"", q);
			r = command(&c, op, cmd, NULL, 0, &sn);
			break;
		case OP_SEARCH_SINCE:
			snprintf(cmd, sizeof cmd, "SEARCH SINCE %u-%s-%u", 1 + rndn(28), mon[rndn(12)],
			    2023 + rndn(5));
			r = command(&c, op, cmd, NULL, 0, &sn);
			break;
		default:
			break;
		}
		if (r < 0) {
			close(c.fd);
			while (now() < end && session(&c, NULL) < 0)
				usleep(100000);
		}
	}
	st->t_end = now();
	counting = 0;
	command(&c, OP_LOGIN, "LOGOUT", NULL, 0, &sn);
	close(c.fd);
	exit(0);
}

int
main(int argc, char **argv)
{
	struct stats *all, tot;
	int ch, i, gop[2], rdp[2];
	char rb;
	double t0, el = 0;
	uint64_t cmds = 0, errs = 0;

	while ((ch = getopt(argc, argv, "H:p:u:w:c:t:s:")) != -1)
		switch (ch) {
		case 'H': host = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'u': user = optarg; break;
		case 'w': pass = optarg; break;
		case 'c': nclients = atoi(optarg); break;
		case 't': secs = atoi(optarg); break;
		case 's': seed = strtoul(optarg, NULL, 10); break;
		default:
			die("usage: imapload -p PORT [-H HOST] -u USER -w PASS -c CLIENTS -t SECS -s SEED");
		}
	if (!port || nclients < 1 || secs < 1)
		die("usage: imapload -p PORT [-H HOST] -u USER -w PASS -c CLIENTS -t SECS -s SEED");
	signal(SIGPIPE, SIG_IGN);
	all = mmap(NULL, nclients * sizeof *all, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (all == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	memset(all, 0, nclients * sizeof *all);
	if (pipe(gop) < 0 || pipe(rdp) < 0)
		die("pipe: %s", strerror(errno));
	for (i = 0; i < nclients; i++) {
		pid_t p = fork();

		if (p < 0)
			die("fork: %s", strerror(errno));
		if (p == 0) {
			close(gop[1]);
			close(rdp[0]);
			st = &all[i];
			client(i, gop[0], rdp[1]);
		}
	}
	close(gop[0]);
	close(rdp[1]);
	/* every client logged in and SELECTed (or one died: EOF) */
	for (i = 0; i < nclients; i++)
		if (read(rdp[0], &rb, 1) != 1)
			die("a client did not get ready");
	t0 = now();
	close(gop[1]);		/* go: every read() returns 0 */
	for (i = 0; i < nclients; i++) {
		int status;

		if (wait(&status) < 0)
			die("wait: %s", strerror(errno));
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			die("a client failed (status %d)", status);
	}
	memset(&tot, 0, sizeof tot);
	for (i = 0; i < nclients; i++) {
		int k;

		for (k = 0; k < NOP; k++) {
			tot.n[k] += all[i].n[k];
			tot.err[k] += all[i].err[k];
			tot.lat[k] += all[i].lat[k];
		}
		tot.litbytes += all[i].litbytes;
		if (all[i].t_end - t0 > el)
			el = all[i].t_end - t0;
	}
	for (i = 0; i < NOP; i++) {
		if (!tot.n[i] && !tot.err[i])
			continue;
		printf("  %-18s %8llu commands %4llu errors  %8.2f ms mean\n", opname[i],
		    (unsigned long long)tot.n[i], (unsigned long long)tot.err[i],
		    tot.n[i] ? 1000 * tot.lat[i] / tot.n[i] : 0);
		if (i != OP_LOGIN)
			cmds += tot.n[i];
		errs += tot.err[i];
	}
	printf("RESULT commands=%llu seconds=%.3f rate=%.1f errors=%llu literal_mb=%.1f\n",
	    (unsigned long long)cmds, el, el > 0 ? cmds / el : 0, (unsigned long long)errs,
	    tot.litbytes / 1e6);
	for (i = 0; i < nclients; i++) {
		int k;

		for (k = 0; k < all[i].nsample; k++)
			printf("ERROR client %d: %s\n  sent:     %s\n  received: %s\n", i,
			    all[i].s[k].why, all[i].s[k].cmd, all[i].s[k].reply);
	}
	return 0;
}
