/*
 * inject.c: the load driver of t/bench/local-inject.  It keeps CONC
 * sendmail processes running until N messages are sent, each with one
 * prepared message file as stdin, and watches the Maildir's new/ folder
 * with inotify in the same poll loop, so that the time from a sendmail's
 * exit to its message's arrival is measured in C with CLOCK_MONOTONIC,
 * not through an interpreter's scheduling.  Messages carry
 * "X-Bench-Seq: N" so that arrivals are matched to exits.
 *
 *   inject -n N -c CONC -d MSGDIR -w MAILDIR/new -- SENDMAIL ARGS...
 *
 * MSGDIR holds msg-0 .. msg-(N-1).  Prints one line of results.  With
 * -w - nothing is watched: it only runs the callers (to measure them).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

int
main(int argc, char **argv)
{
	int n = 0, conc = 8, opt, ifd, sfd, running = 0, next = 0, failed = 0;
	const char *msgdir = NULL, *watch = NULL;
	double *exit_t, *arr_t, t0, tlast = 0;
	pid_t *pid_seq;
	int npid = 1 << 22, arrived = 0, i;
	sigset_t ss;
	char evbuf[65536], path[4096];

	while ((opt = getopt(argc, argv, "n:c:d:w:")) != -1) {
		switch (opt) {
		case 'n': n = atoi(optarg); break;
		case 'c': conc = atoi(optarg); break;
		case 'd': msgdir = optarg; break;
		case 'w': watch = optarg; break;
		default: return 64;
		}
	}
	if (n <= 0 || !msgdir || !watch || optind >= argc) {
		fprintf(stderr, "usage: inject -n N -c CONC -d MSGDIR -w MAILDIR/new -- SENDMAIL ARGS...\n");
		return 64;
	}
	exit_t = calloc(n, sizeof(double));
	arr_t = calloc(n, sizeof(double));
	pid_seq = calloc(npid, sizeof(pid_t));
	if (!exit_t || !arr_t || !pid_seq)
		return 71;
	for (i = 0; i < n; i++)
		exit_t[i] = arr_t[i] = -1;
	if ((ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 ||
	    (strcmp(watch, "-") && inotify_add_watch(ifd, watch, IN_CREATE | IN_MOVED_TO) < 0)) {
		perror("inotify");
		return 71;
	}
	sigemptyset(&ss);
	sigaddset(&ss, SIGCHLD);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	sfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	t0 = now();
	while (strcmp(watch, "-") ? arrived < n - failed : next < n || running > 0) {
		struct pollfd p[2] = { { ifd, POLLIN, 0 }, { sfd, POLLIN, 0 } };

		while (running < conc && next < n) {
			pid_t pid;

			snprintf(path, sizeof(path), "%s/msg-%d", msgdir, next);
			pid = fork();
			if (pid == 0) {
				int fd = open(path, O_RDONLY);

				sigprocmask(SIG_UNBLOCK, &ss, NULL);
				if (fd < 0 || dup2(fd, 0) < 0)
					_exit(71);
				execv(argv[optind], argv + optind);
				_exit(72);
			}
			if (pid < 0) {
				perror("fork");
				return 71;
			}
			pid_seq[pid % npid] = next + 1;
			running++;
			next++;
		}
		if (poll(p, 2, next >= n && running == 0 ? 60000 : 1000) == 0 && next >= n && running == 0)
			break;	/* nothing arrived for a minute */
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			int st;
			pid_t w;

			while (read(sfd, &si, sizeof(si)) > 0)
				;
			while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
				int seq = pid_seq[w % npid] - 1;
				double t = now();

				running--;
				if (seq >= 0)
					exit_t[seq] = t;
				if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
					failed++;
					fprintf(stderr, "message %d: sendmail status %d\n", seq, st);
				}
			}
		}
		if (p[0].revents & POLLIN) {
			ssize_t r;

			while ((r = read(ifd, evbuf, sizeof(evbuf))) > 0) {
				double t = now();
				char *q = evbuf;

				while (q < evbuf + r) {
					struct inotify_event *ev = (struct inotify_event *)q;

					if (ev->len) {
						char head[4097];
						int fd;
						ssize_t hn;
						char *s;

						snprintf(path, sizeof(path), "%s/%s", watch, ev->name);
						if ((fd = open(path, O_RDONLY)) >= 0) {
							hn = read(fd, head, 4096);
							close(fd);
							if (hn > 0) {
								head[hn] = 0;
								if ((s = strstr(head, "X-Bench-Seq: "))) {
									int seq = atoi(s + 13);

									if (seq >= 0 && seq < n && arr_t[seq] < 0) {
										arr_t[seq] = t;
										arrived++;
										tlast = t;
									}
								}
							}
						}
					}
					q += sizeof(*ev) + ev->len;
				}
			}
		}
	}
	{
		double *lat = calloc(n, sizeof(double));
		int m = 0, neg = 0;

		for (i = 0; i < n; i++)
			if (arr_t[i] >= 0 && exit_t[i] >= 0) {
				lat[m] = arr_t[i] - exit_t[i];
				if (lat[m] < 0) {
					neg++;
					lat[m] = 0;
				}
				m++;
			}
		qsort(lat, m, sizeof(double), cmp);
		if (!strcmp(watch, "-"))
			tlast = now(), arrived = n - failed;
		printf("sent=%d arrived=%d failed=%d seconds=%.3f rate=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f before_exit=%d\n",
		    n, arrived, failed, tlast - t0, arrived / (tlast - t0),
		    m ? lat[m / 2] * 1000 : -1, m ? lat[(int)(m * 0.90)] * 1000 : -1,
		    m ? lat[(int)(m * 0.99)] * 1000 : -1, m ? lat[m - 1] * 1000 : -1, neg);
	}
	return failed ? 1 : 0;
}
