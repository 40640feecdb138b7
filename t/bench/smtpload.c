/*
 * smtpload.c: the SMTP load client of t/bench/smtp-ingest.  It keeps
 * CONC SMTP sessions to HOST:PORT busy until N messages are accepted,
 * one command at a time per session (no pipelining), and watches the
 * Maildir's new/ folder with inotify in the same poll loop, so that the
 * time from each "250" after DATA to that message's arrival in the
 * Maildir is measured in C with CLOCK_MONOTONIC.  Messages carry
 * "X-Bench-Seq: N" so that arrivals are matched to replies.
 *
 *   smtpload -n N -c CONC -p PORT [-H HOST] -f FROM -t TO -s SIZE -w MAILDIR/new
 *   smtpload -n N -w MAILDIR/new -x -- COMMAND ARGS...
 *
 * The second form runs COMMAND (e.g. smtp-source) and only counts the
 * first N files that appear in new/, for a pure throughput figure.
 * Prints one line of results: sent, arrived, failed, seconds (first
 * connection to last arrival), rate, and the p50/p90/p99/max latency
 * from 250 to arrival.  Every wait is bounded: 60 s with no progress
 * ends the run.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum st { S_BANNER, S_EHLO, S_MAIL, S_RCPT, S_DATA, S_DOT, S_QUIT, S_DONE };

struct sess {
	int fd;
	enum st st;
	int seq;		/* message in flight, -1 none */
	char in[8192];
	size_t inlen;
	char *out;		/* pending output */
	size_t outlen, outoff;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int n, conc = 20, size = 5000, next_seq, failed, accepted;
static const char *from = "bench@example.org", *to, *helo = "smtpload.example";
static double *t250, *tarr;

static void
queue_out(struct sess *s, const char *fmt, ...)
{
	va_list ap;
	char *p;
	int len;

	va_start(ap, fmt);
	len = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (len < 0) {
		perror("vasprintf");
		exit(71);
	}
	free(s->out);
	s->out = p;
	s->outlen = len;
	s->outoff = 0;
}

static void
queue_message(struct sess *s)
{
	static const char line[] = "The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklm\r\n";
	size_t ll = sizeof(line) - 1, cap, len;
	char *p;

	cap = size + 512;
	p = malloc(cap);
	if (!p)
		exit(71);
	len = snprintf(p, cap, "From: <%s>\r\nTo: <%s>\r\nSubject: bench %d\r\nX-Bench-Seq: %d\r\n"
	    "Message-ID: <bench-%d-%ld@smtpload.example>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n",
	    from, to, s->seq, s->seq, s->seq, (long)getpid());
	while (len + ll < (size_t)size && len + ll + 8 < cap) {
		memcpy(p + len, line, ll);
		len += ll;
	}
	memcpy(p + len, ".\r\n", 3);
	len += 3;
	free(s->out);
	s->out = p;
	s->outlen = len;
	s->outoff = 0;
}

static int
connect_to(const char *host, int port)
{
	struct sockaddr_in sin;
	int fd, one = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
		fprintf(stderr, "bad host %s\n", host);
		exit(64);
	}
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		perror("connect");
		exit(69);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* a complete reply in s->in: its code (consumed), 0 if incomplete */
static int
take_reply(struct sess *s)
{
	size_t pos = 0;

	for (;;) {
		char *nl = memchr(s->in + pos, '\n', s->inlen - pos);
		size_t l;

		if (!nl)
			return 0;
		l = nl - (s->in + pos) + 1;
		if (l >= 4 && s->in[pos + 3] == '-') {
			pos += l;
			continue;
		}
		{
			int code = atoi(s->in + pos);

			memmove(s->in, s->in + pos + l, s->inlen - pos - l);
			s->inlen -= pos + l;
			return code ? code : -1;
		}
	}
}

static void
start_message(struct sess *s)
{
	if (next_seq >= n) {
		queue_out(s, "QUIT\r\n");
		s->st = S_QUIT;
		return;
	}
	s->seq = next_seq++;
	queue_out(s, "MAIL FROM:<%s>\r\n", from);
	s->st = S_MAIL;
}

/* advance the session on a reply; returns -1 if the session is over */
static int
on_reply(struct sess *s, int code)
{
	switch (s->st) {
	case S_BANNER:
		if (code != 220)
			goto bad;
		queue_out(s, "EHLO %s\r\n", helo);
		s->st = S_EHLO;
		break;
	case S_EHLO:
		if (code != 250)
			goto bad;
		start_message(s);
		break;
	case S_MAIL:
		if (code != 250)
			goto fail_msg;
		queue_out(s, "RCPT TO:<%s>\r\n", to);
		s->st = S_RCPT;
		break;
	case S_RCPT:
		if (code != 250)
			goto fail_msg;
		queue_out(s, "DATA\r\n");
		s->st = S_DATA;
		break;
	case S_DATA:
		if (code != 354)
			goto fail_msg;
		queue_message(s);
		s->st = S_DOT;
		break;
	case S_DOT:
		if (code != 250)
			goto fail_msg;
		t250[s->seq] = now();
		accepted++;
		start_message(s);
		break;
	case S_QUIT:
	case S_DONE:
		s->st = S_DONE;
		return -1;
	}
	return 0;
fail_msg:
	fprintf(stderr, "message %d: reply %d in state %d\n", s->seq, code, s->st);
	failed++;
	queue_out(s, "RSET\r\n");
	s->st = S_EHLO;		/* RSET's 250 starts the next message */
	return 0;
bad:
	fprintf(stderr, "session: reply %d in state %d\n", code, s->st);
	if (s->seq >= 0 && s->st != S_EHLO)
		failed++;
	s->st = S_DONE;
	return -1;
}

static int
watch_arrivals(int ifd, const char *watch, int count_only, int *arrived, double *tlast)
{
	char evbuf[65536], path[4096], head[4097];
	ssize_t r;
	int got = 0;

	while ((r = read(ifd, evbuf, sizeof(evbuf))) > 0) {
		double t = now();
		char *q = evbuf;

		while (q < evbuf + r) {
			struct inotify_event *ev = (struct inotify_event *)q;

			q += sizeof(*ev) + ev->len;
			if (!ev->len)
				continue;
			if (count_only) {
				(*arrived)++;
				*tlast = t;
				got++;
				continue;
			}
			snprintf(path, sizeof(path), "%s/%s", watch, ev->name);
			{
				int fd = open(path, O_RDONLY);
				ssize_t hn;
				char *s;

				if (fd < 0)
					continue;
				hn = read(fd, head, 4096);
				close(fd);
				if (hn <= 0)
					continue;
				head[hn] = 0;
				if ((s = strstr(head, "X-Bench-Seq: "))) {
					int seq = atoi(s + 13);

					if (seq >= 0 && seq < n && tarr[seq] < 0) {
						tarr[seq] = t;
						(*arrived)++;
						*tlast = t;
						got++;
					}
				}
			}
		}
	}
	return got;
}

int
main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *watch = NULL;
	int port = 0, opt, ifd, i, arrived = 0, count_only = 0, live;
	double t0, tlast = 0, tprogress;
	struct sess *ss;
	struct pollfd *pf;
	pid_t child = -1;

	signal(SIGPIPE, SIG_IGN);
	while ((opt = getopt(argc, argv, "n:c:p:H:f:t:s:w:x")) != -1) {
		switch (opt) {
		case 'n': n = atoi(optarg); break;
		case 'c': conc = atoi(optarg); break;
		case 'p': port = atoi(optarg); break;
		case 'H': host = optarg; break;
		case 'f': from = optarg; break;
		case 't': to = optarg; break;
		case 's': size = atoi(optarg); break;
		case 'w': watch = optarg; break;
		case 'x': count_only = 1; break;
		default: return 64;
		}
	}
	if (n <= 0 || !watch || (count_only ? optind >= argc : (!port || !to || conc <= 0))) {
		fprintf(stderr, "usage: smtpload -n N -c CONC -p PORT [-H HOST] -f FROM -t TO -s SIZE -w MAILDIR/new\n"
		    "       smtpload -n N -w MAILDIR/new -x -- COMMAND ARGS...\n");
		return 64;
	}
	t250 = calloc(n, sizeof(double));
	tarr = calloc(n, sizeof(double));
	ss = calloc(conc, sizeof(*ss));
	pf = calloc(conc + 1, sizeof(*pf));
	if (!t250 || !tarr || !ss || !pf)
		return 71;
	for (i = 0; i < n; i++)
		t250[i] = tarr[i] = -1;
	if ((ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 ||
	    inotify_add_watch(ifd, watch, IN_CREATE | IN_MOVED_TO) < 0) {
		perror("inotify");
		return 71;
	}
	t0 = tprogress = now();
	if (count_only) {
		int st;

		if ((child = fork()) == 0) {
			execvp(argv[optind], argv + optind);
			_exit(127);
		}
		while (arrived < n && now() - tprogress < 60) {
			struct pollfd p = { ifd, POLLIN, 0 };

			if (poll(&p, 1, 1000) > 0 && watch_arrivals(ifd, watch, 1, &arrived, &tlast))
				tprogress = now();
		}
		if (waitpid(child, &st, WNOHANG) == 0) {
			sleep(1);
			kill(child, SIGTERM);
			waitpid(child, &st, 0);
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			fprintf(stderr, "%s: status %d\n", argv[optind], st);
		printf("sent=%d arrived=%d failed=%d seconds=%.3f rate=%.1f\n", n, arrived, n - arrived,
		    tlast - t0, arrived / (tlast > t0 ? tlast - t0 : 1));
		return arrived == n ? 0 : 1;
	}
	for (i = 0; i < conc; i++) {
		ss[i].fd = connect_to(host, port);
		ss[i].st = S_BANNER;
		ss[i].seq = -1;
	}
	live = conc;
	while ((live > 0 || arrived < accepted) && now() - tprogress < 60) {
		int np = 0;

		pf[np++] = (struct pollfd){ ifd, POLLIN, 0 };
		for (i = 0; i < conc; i++) {
			struct sess *s = &ss[i];

			if (s->st == S_DONE)
				continue;
			pf[np++] = (struct pollfd){ s->fd,
			    (short)(POLLIN | (s->outoff < s->outlen ? POLLOUT : 0)), 0 };
		}
		if (poll(pf, np, 1000) <= 0)
			continue;
		if (pf[0].revents & POLLIN && watch_arrivals(ifd, watch, 0, &arrived, &tlast))
			tprogress = now();
		for (np = 1, i = 0; i < conc; i++) {
			struct sess *s = &ss[i];
			short re;

			if (s->st == S_DONE)
				continue;
			re = pf[np++].revents;
			if (re & POLLOUT) {
				ssize_t w = write(s->fd, s->out + s->outoff, s->outlen - s->outoff);

				if (w > 0)
					s->outoff += w;
				else if (w < 0 && errno != EAGAIN) {
					perror("write");
					goto dead;
				}
			}
			if (re & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t r = read(s->fd, s->in + s->inlen, sizeof(s->in) - 1 - s->inlen);
				int code;

				if (r == 0 || (r < 0 && errno != EAGAIN)) {
					if (s->st != S_QUIT)
						fprintf(stderr, "session %d: connection lost in state %d\n", i, s->st);
					goto dead;
				}
				if (r > 0)
					s->inlen += r;
				while ((code = take_reply(s)) != 0) {
					tprogress = now();
					if (on_reply(s, code) < 0)
						goto dead;
				}
				if (s->inlen >= sizeof(s->in) - 1) {
					fprintf(stderr, "session %d: overlong reply\n", i);
					goto dead;
				}
			}
			continue;
dead:
			if (s->st != S_QUIT && s->st != S_DONE && s->seq >= 0 && s->st != S_EHLO && t250[s->seq] < 0)
				failed++;
			close(s->fd);
			s->st = S_DONE;
			live--;
		}
	}
	{
		double *lat = calloc(n, sizeof(double));
		int m = 0, neg = 0;

		for (i = 0; i < n; i++)
			if (tarr[i] >= 0 && t250[i] >= 0) {
				lat[m] = tarr[i] - t250[i];
				if (lat[m] < 0) {
					neg++;
					lat[m] = 0;
				}
				m++;
			}
		qsort(lat, m, sizeof(double), cmp);
		printf("sent=%d accepted=%d arrived=%d failed=%d seconds=%.3f rate=%.1f p50_ms=%.3f p90_ms=%.3f "
		    "p99_ms=%.3f max_ms=%.3f before_250=%d\n",
		    n, accepted, arrived, failed, tlast - t0, arrived / (tlast > t0 ? tlast - t0 : 1),
		    m ? lat[m / 2] * 1000 : -1, m ? lat[(int)(m * 0.90)] * 1000 : -1,
		    m ? lat[(int)(m * 0.99)] * 1000 : -1, m ? lat[m - 1] * 1000 : -1, neg);
	}
	return failed || arrived < n ? 1 : 0;
}
