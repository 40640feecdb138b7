/*
 * flow.c: see flow.h.  The count is a fixed-width decimal at offset 0 of
 * public/flow, rewritten in place with pwrite (no fsync: it is advice,
 * not state); its mtime says whether qmgr is alive.  The reader counts
 * maildrop/ itself when it may list it (rootless instances, root); a
 * setgid postdrop cannot, and then only qmgr's count applies.
 */
#include "flow.h"
#include "conf.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FLOW_STALE_S	2
#define FLOW_POLL_US	2000

void
flow_publish(long count)
{
	static int fd = -1;
	static long last = -1;
	static int64_t last_ms;
	char text[24];
	int64_t now = mono_ms();
	int n;

	/* refresh at least every half second so that readers see qmgr alive */
	if (count == last && now - last_ms < 500)
		return;
	if (fd < 0) {
		struct buf path = BUF_INIT;

		conf_queue_path(&path, "public/flow");
		fd = open(buf_str(&path), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		buf_free(&path);
		if (fd < 0)
			return;
		(void)fchmod(fd, 0644);
	}
	n = snprintf(text, sizeof(text), "%-22ld\n", count);
	if (n > 0 && (size_t)n < sizeof(text) && pwrite(fd, text, (size_t)n, 0) == n) {
		last = count;
		last_ms = now;
	}
}

static long
qmgr_count(void)
{
	struct buf path = BUF_INIT;
	struct stat st;
	char text[24];
	ssize_t r;
	int fd;

	conf_queue_path(&path, "public/flow");
	fd = open(buf_str(&path), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	buf_free(&path);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0 || time(NULL) - st.st_mtime > FLOW_STALE_S) {
		close(fd);
		return 0;
	}
	r = pread(fd, text, sizeof(text) - 1, 0);
	close(fd);
	if (r <= 0)
		return 0;
	text[r] = 0;
	return strtol(text, NULL, 10);
}

static long
maildrop_count(void)
{
	struct buf path = BUF_INIT;
	struct dirent *de;
	long n = 0;
	DIR *d;

	conf_queue_path(&path, "maildrop");
	d = opendir(buf_str(&path));
	buf_free(&path);
	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

long
flow_wait(void)
{
	long long limit = conf_int("in_flow_limit");
	long long delay = conf_time("in_flow_delay");
	int64_t start = mono_ms(), now = start;

	if (limit <= 0 || delay <= 0)
		return 0;
	for (;;) {
		if (qmgr_count() + maildrop_count() <= limit)
			break;
		now = mono_ms();
		if (now - start >= delay * 1000)
			break;
		usleep(FLOW_POLL_US);
	}
	return (long)(now - start);
}
