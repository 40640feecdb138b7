/*
 * test_mailbox: the mbox and Maildir writers (lib/mbox.c, lib/maildir.c):
 * From_ line and ">From " quoting across piece boundaries, locking
 * against a concurrent writer (fcntl lock and dotlock held by a forked
 * child: the append waits, then succeeds), lock time-out, stale
 * dotlocks, refused mailboxes (symlink, hard link, other owner, not a
 * file), truncation after a failed append, Maildir names and content.
 */
#include "mbox.h"
#include "maildir.h"
#include "log.h"
#include "util.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/test_mailbox.XXXXXX";

/* A source that hands out text in pieces of a given size. */
struct pieces {
	const char *text;
	size_t step;
	int fail_after;		/* fail (EIO) after this many pieces, -1 never */
};

static int
pieces_copy(void *ctx, mail_sink_fn sink, void *sctx)
{
	struct pieces *p = ctx;
	size_t off = 0, len = strlen(p->text);
	int n = 0, r;

	while (off < len) {
		size_t k = len - off < p->step ? len - off : p->step;

		if (p->fail_after >= 0 && n++ >= p->fail_after) {
			errno = EIO;
			return -1;
		}
		if ((r = sink(sctx, p->text + off, k)) != 0)
			return r;
		off += k;
	}
	return 0;
}

static void
source(struct mail_source *s, struct pieces *p, const char *prefix, const char *text, size_t step)
{
	p->text = text;
	p->step = step;
	p->fail_after = -1;
	s->prefix = prefix;
	s->prefix_len = prefix ? strlen(prefix) : 0;
	s->copy = pieces_copy;
	s->ctx = p;
}

static char *
path(const char *name)
{
	static struct buf b[4];
	static int i;
	struct buf *p = &b[i++ % 4];

	buf_reset(p);
	buf_printf(p, "%s/%s", dir, name);
	return (char *)buf_str(p);
}

static char *
slurp(const char *p)
{
	struct buf b = BUF_INIT;

	if (read_file(p, &b, 1 << 24) < 0)
		return xstrdup("(unreadable)");
	buf_adds(&b, "");
	return buf_steal(&b);
}

static void
opts(struct mbox_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->owner = (uid_t)-1;
	o->create_uid = (uid_t)-1;
	o->create_gid = (gid_t)-1;
	o->dotlock = 1;
	o->lock_attempts = 20;
	o->lock_delay_ms = 100;
	o->stale_lock_sec = 500;
}

static void
test_quoting(void)
{
	const char *in = "Subject: x\n\nFrom here\nFrom\n>From there\nFrom: not a From_ line? yes it is\nFro\nFROM x\n From y\nend";
	const char *want = "Subject: x\n\n>From here\nFrom\n>From there\nFrom: not a From_ line? yes it is\nFro\nFROM x\n From y\nend\n\n";
	struct mail_source s;
	struct pieces p;
	struct buf out = BUF_INIT;
	size_t step;
	int all = 1;

	for (step = 1; step <= strlen(in); step++) {
		source(&s, &p, NULL, in, step);
		buf_reset(&out);
		mbox_quote_to_buf(&s, &out);
		if (strcmp(buf_str(&out), want)) {
			all = 0;
			printf("# step %zu: got '%s'\n", step, buf_str(&out));
		}
	}
	ok(all, "From quoting is the same for every piece size");
	source(&s, &p, NULL, "From start\nbody\n", 3);
	buf_reset(&out);
	mbox_quote_to_buf(&s, &out);
	is_str(buf_str(&out), ">From start\nbody\n\n", "From at the very start is quoted; ends in a blank line");
	source(&s, &p, NULL, "", 3);
	buf_reset(&out);
	mbox_quote_to_buf(&s, &out);
	is_str(buf_str(&out), "\n", "empty message: only the separator");
	source(&s, &p, "Return-Path: <a@b>\n", "From", 2);
	buf_reset(&out);
	mbox_quote_to_buf(&s, &out);
	is_str(buf_str(&out), "Return-Path: <a@b>\nFrom\n\n", "a lone 'From' at the end is not quoted");
	buf_free(&out);
}

static void
test_append(void)
{
	struct mail_source s;
	struct pieces p;
	struct mbox_opts o;
	struct buf err = BUF_INIT;
	struct stat st;
	char *got;
	char *mb = xstrdup(path("mbox1"));

	opts(&o);
	source(&s, &p, "Return-Path: <s@example.org>\nDelivered-To: u@example.test\n", "Subject: hi\n\nFrom me\nbye\n", 7);
	is_int(mbox_deliver(mb, &o, "s@example.org", 0, &s, &err), 0, "append to a new mbox (%s)", buf_str(&err));
	ok(stat(mb, &st) == 0 && (st.st_mode & 0777) == 0600, "created 0600");
	ok(access(path("mbox1.lock"), F_OK) < 0, "dotlock removed");
	source(&s, &p, NULL, "Subject: two", 4);
	is_int(mbox_deliver(mb, &o, "", 0, &s, &err), 0, "second append, null sender");
	got = slurp(mb);
	ok(!strncmp(got, "From s@example.org ", 19), "From_ line with the sender");
	ok(strstr(got, "\nReturn-Path: <s@example.org>\nDelivered-To: u@example.test\nSubject: hi\n\n>From me\nbye\n\nFrom MAILER-DAEMON ")
	    != NULL, "content, quoting, separator, null sender as MAILER-DAEMON");
	ok(strstr(got, "\nSubject: two\n\n") != NULL && got[strlen(got) - 1] == '\n', "final newline added");
	{
		/* date in ctime layout: "From x Www Mmm dd hh:mm:ss yyyy\n" */
		const char *nl = strchr(got, '\n');
		const char *sp = strchr(got + 5, ' ');

		ok(nl && sp && nl - sp == 25, "asctime-style date on the From_ line");
	}
	free(got);
	buf_free(&err);
	free(mb);
}

static void
test_refused(void)
{
	struct mail_source s;
	struct pieces p;
	struct mbox_opts o;
	struct buf err = BUF_INIT;

	opts(&o);
	source(&s, &p, NULL, "x\n", 10);
	write_file_atomic(path("target"), "", 0, 0600);
	if (symlink(path("target"), path("link")) < 0)
		msg_fatal("symlink: %s", strerror(errno));
	errno = 0;
	ok(mbox_deliver(path("link"), &o, "a", 0, &s, &err) < 0 && errno == ELOOP, "symlink refused (%s)", buf_str(&err));
	ok(access(path("link.lock"), F_OK) < 0, "no dotlock left behind");
	buf_reset(&err);
	if (link(path("target"), path("hard")) < 0)
		msg_fatal("link: %s", strerror(errno));
	ok(mbox_deliver(path("hard"), &o, "a", 0, &s, &err) < 0 && errno == EMLINK, "hard link refused (%s)",
	    buf_str(&err));
	ok(mbox_deliver(path("target"), &o, "a", 0, &s, &err) < 0 && errno == EMLINK, "... from both names");
	buf_reset(&err);
	mkdir(path("adir"), 0700);
	ok(mbox_deliver(path("adir"), &o, "a", 0, &s, &err) < 0, "a directory refused (%s)", buf_str(&err));
	buf_reset(&err);
	write_file_atomic(path("owned"), "", 0, 0600);
	o.owner = geteuid() + 1;
	ok(mbox_deliver(path("owned"), &o, "a", 0, &s, &err) < 0 && errno == EPERM, "other owner refused (%s)",
	    buf_str(&err));
	o.owner = geteuid();
	buf_reset(&err);
	ok(mbox_deliver(path("owned"), &o, "a", 0, &s, &err) == 0, "right owner accepted");
	buf_free(&err);
}

static void
test_truncate(void)
{
	struct mail_source s;
	struct pieces p;
	struct mbox_opts o;
	struct buf err = BUF_INIT, big = BUF_INIT;
	struct stat st1, st2;
	char *mb = xstrdup(path("trunc"));
	size_t i;

	opts(&o);
	source(&s, &p, NULL, "first\n", 10);
	mbox_deliver(mb, &o, "a", 0, &s, &err);
	stat(mb, &st1);
	for (i = 0; i < 20000; i++)
		buf_adds(&big, "a line of the second message\n");
	source(&s, &p, NULL, buf_str(&big), 1000);
	p.fail_after = 300;	/* after ~300 KB, more than the write buffer */
	ok(mbox_deliver(mb, &o, "a", 0, &s, &err) < 0, "failing source: append fails (%s)", buf_str(&err));
	stat(mb, &st2);
	is_int(st2.st_size, st1.st_size, "the mbox is truncated back to its old size");
	ok(access(path("trunc.lock"), F_OK) < 0, "dotlock removed after the failure");

	/* EFBIG from RLIMIT_FSIZE in a child: the disk-full kind of error */
	{
		pid_t pid = fork();
		int ws;

		if (pid == 0) {
			struct rlimit rl = { 200000, 200000 };

			signal(SIGXFSZ, SIG_IGN);
			setrlimit(RLIMIT_FSIZE, &rl);
			source(&s, &p, NULL, buf_str(&big), 4096);
			buf_reset(&err);
			if (mbox_deliver(mb, &o, "a", 0, &s, &err) == 0)
				_exit(1);
			_exit(errno == EFBIG ? 0 : 2);
		}
		waitpid(pid, &ws, 0);
		ok(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "file size limit: EFBIG reported");
		stat(mb, &st2);
		is_int(st2.st_size, st1.st_size, "... and the mbox truncated back");
	}
	buf_free(&big);
	buf_free(&err);
	free(mb);
}

static double
elapsed(const struct timeval *a)
{
	struct timeval b;

	gettimeofday(&b, NULL);
	return (double)(b.tv_sec - a->tv_sec) + (double)(b.tv_usec - a->tv_usec) / 1e6;
}

static void
test_locks(void)
{
	struct mail_source s;
	struct pieces p;
	struct mbox_opts o;
	struct buf err = BUF_INIT;
	struct timeval t0;
	char *mb = xstrdup(path("locked"));
	int sync[2], ws, fd;
	pid_t pid;
	char c;
	char *got;

	opts(&o);
	source(&s, &p, NULL, "waited\n", 10);
	write_file_atomic(mb, "", 0, 0600);

	/* a child holds the fcntl lock for 400 ms */
	if (pipe(sync) < 0)
		msg_fatal("pipe");
	if ((pid = fork()) == 0) {
		struct flock fl;

		fd = open(mb, O_WRONLY | O_APPEND);
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fd < 0 || fcntl(fd, F_SETLK, &fl) < 0)
			_exit(1);
		(void)!write(sync[1], "L", 1);
		usleep(400000);
		(void)!write(fd, "child\n", 6);
		_exit(0);
	}
	(void)!read(sync[0], &c, 1);
	gettimeofday(&t0, NULL);
	is_int(mbox_deliver(mb, &o, "a", 0, &s, &err), 0, "append waits for the fcntl lock (%s)", buf_str(&err));
	ok(elapsed(&t0) > 0.3, "... it waited (%.3fs)", elapsed(&t0));
	waitpid(pid, &ws, 0);
	got = slurp(mb);
	ok(!strncmp(got, "child\nFrom a ", 13), "the holder's write came first, ours after it, whole");
	free(got);

	/* a child holds the dotlock for 400 ms */
	buf_reset(&err);
	if ((pid = fork()) == 0) {
		fd = open(path("locked.lock"), O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd < 0)
			_exit(1);
		(void)!write(sync[1], "L", 1);
		usleep(400000);
		unlink(path("locked.lock"));
		_exit(0);
	}
	(void)!read(sync[0], &c, 1);
	gettimeofday(&t0, NULL);
	is_int(mbox_deliver(mb, &o, "b", 0, &s, &err), 0, "append waits for the dotlock (%s)", buf_str(&err));
	ok(elapsed(&t0) > 0.3, "... it waited (%.3fs)", elapsed(&t0));
	waitpid(pid, &ws, 0);

	/* a lock that stays: time out with EAGAIN, mailbox untouched */
	{
		struct stat st1, st2;

		stat(mb, &st1);
		write_file_atomic(path("locked.lock"), "", 0, 0600);
		o.lock_attempts = 3;
		o.lock_delay_ms = 50;
		buf_reset(&err);
		gettimeofday(&t0, NULL);
		ok(mbox_deliver(mb, &o, "c", 0, &s, &err) < 0 && errno == EAGAIN, "held dotlock: EAGAIN (%s)",
		    buf_str(&err));
		ok(elapsed(&t0) >= 0.14 && elapsed(&t0) < 1.0, "after about attempts x delay (%.3fs)", elapsed(&t0));
		ok(access(path("locked.lock"), F_OK) == 0, "someone else's dotlock is not removed");
		stat(mb, &st2);
		is_int(st2.st_size, st1.st_size, "mailbox untouched");
	}
	/* a stale dotlock is removed */
	{
		struct timeval old[2] = { { time(NULL) - 1000, 0 }, { time(NULL) - 1000, 0 } };

		utimes(path("locked.lock"), old);
		buf_reset(&err);
		is_int(mbox_deliver(mb, &o, "d", 0, &s, &err), 0, "stale dotlock removed (%s)", buf_str(&err));
		ok(access(path("locked.lock"), F_OK) < 0, "and ours is gone too");
	}
	/* the fcntl lock held for longer than the budget */
	if ((pid = fork()) == 0) {
		struct flock fl;

		fd = open(mb, O_WRONLY | O_APPEND);
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fd < 0 || fcntl(fd, F_SETLK, &fl) < 0) {
			fprintf(stderr, "child lock: %s\n", strerror(errno));
			(void)!write(sync[1], "E", 1);
			_exit(1);
		}
		(void)!write(sync[1], "L", 1);
		usleep(1000000);
		_exit(0);
	}
	(void)!read(sync[0], &c, 1);
	buf_reset(&err);
	ok(mbox_deliver(mb, &o, "e", 0, &s, &err) < 0 && errno == EAGAIN, "held fcntl lock: EAGAIN (%s)",
	    buf_str(&err));
	ok(access(path("locked.lock"), F_OK) < 0, "our dotlock released after the failure");
	kill(pid, SIGKILL);
	waitpid(pid, &ws, 0);
	close(sync[0]);
	close(sync[1]);
	buf_free(&err);
	free(mb);
}

static int
count_dir(const char *d, char **first)
{
	DIR *dp = opendir(d);
	struct dirent *de;
	int n = 0;

	if (!dp)
		return -1;
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (first && !*first)
			*first = xstrdup(de->d_name);
		n++;
	}
	closedir(dp);
	return n;
}

static void
test_maildir(void)
{
	struct mail_source s;
	struct pieces p;
	struct buf err = BUF_INIT, out = BUF_INIT, name = BUF_INIT;
	const char *md = path("home/Maildir/");
	const char *msg = "Subject: m\n\nFrom here, no quoting in Maildir\n";
	const char *prefix = "Return-Path: <x@y>\nDelivered-To: u@example.test\n";
	char *first = NULL, *got;
	char **names;
	int i, uniq = 1;

	source(&s, &p, prefix, msg, 5);
	is_int(maildir_deliver(md, &s, &out, &err), 0, "deliver into a missing Maildir (%s)", buf_str(&err));
	is_int(count_dir(path("home/Maildir/new"), &first), 1, "one file in new/");
	is_int(count_dir(path("home/Maildir/tmp"), NULL), 0, "tmp/ is empty");
	is_int(count_dir(path("home/Maildir/cur"), NULL), 0, "cur/ exists and is empty");
	got = slurp(buf_str(&out));
	{
		struct buf want = BUF_INIT;

		buf_printf(&want, "%s%s", prefix, msg);
		is_str(got, buf_str(&want), "content exact, no From_ and no quoting");
		ok(first && strstr(first, ",S=") && atol(strstr(first, ",S=") + 3) == (long)want.len,
		    "S= is the size (%s)", first ? first : "");
		buf_free(&want);
	}
	free(got);
	free(first);
	{
		struct stat st;

		ok(stat(buf_str(&out), &st) == 0 && (st.st_mode & 0777) == 0600, "message file 0600");
		ok(stat(path("home/Maildir"), &st) == 0 && (st.st_mode & 0777) == 0700, "Maildir 0700");
	}
	for (i = 0; i < 20; i++)
		maildir_deliver(md, &s, NULL, &err);
	is_int(count_dir(path("home/Maildir/new"), NULL), 21, "21 deliveries, 21 files");

	names = xcalloc(1001, sizeof(char *));
	for (i = 0; i < 1000; i++) {
		buf_reset(&name);
		maildir_unique_name(&name);
		names[i] = xstrdup(buf_str(&name));
	}
	for (i = 1; i < 1000; i++)
		if (!strcmp(names[i], names[i - 1]))
			uniq = 0;
	ok(uniq, "1000 names in a row are unique (%s)", names[999]);
	ok(strstr(names[0], ".M") && strstr(names[0], "P") && strstr(names[0], "Q"), "name layout time.MusecPpidQn.host");
	ok(!strchr(names[0], '/') && !strchr(names[0], ':'), "no / or : in a name");
	strv_free(names);
	/* failure: unwritable tmp leaves nothing in new/ */
	{
		struct pieces fp;
		struct mail_source fs;

		source(&fs, &fp, NULL, msg, 5);
		fp.fail_after = 2;
		buf_reset(&err);
		ok(maildir_deliver(md, &fs, NULL, &err) < 0, "failing source: error (%s)", buf_str(&err));
		is_int(count_dir(path("home/Maildir/new"), NULL), 21, "nothing new in new/");
		is_int(count_dir(path("home/Maildir/tmp"), NULL), 0, "tmp/ cleaned");
	}
	buf_free(&err);
	buf_free(&out);
	buf_free(&name);
}

int
main(void)
{
	struct buf cmd = BUF_INIT;

	log_init("test_mailbox", LOG_FLAG_STDERR);
	if (!mkdtemp(dir))
		msg_fatal("mkdtemp: %s", strerror(errno));
	test_quoting();
	test_append();
	test_refused();
	test_truncate();
	test_locks();
	test_maildir();
	buf_printf(&cmd, "rm -rf '%s'", dir);
	if (system(buf_str(&cmd)) != 0)
		fprintf(stderr, "cleanup failed\n");
	buf_free(&cmd);
	return done_testing();
}
