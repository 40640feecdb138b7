/*
 * test_quota: lib/quota.c: limit values, the S= of names, the usage
 * computed from a Maildir with Maildir++ folders, the maildirsize file
 * (its format, appended changes, and each reason to compute it again:
 * missing, another limit, too long, garbled, negative, over quota and
 * older than 15 minutes), and per-user limits from a hash: map.
 */
#include "quota.h"
#include "conf.h"
#include "log.h"
#include "map.h"
#include "util.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static char dir[] = "/tmp/test_quota.XXXXXX";
static struct buf root;

static void
put(const char *rel, const char *text)
{
	struct buf p = BUF_INIT;

	buf_printf(&p, "%s%s", buf_str(&root), rel);
	if (write_file_atomic_nosync(buf_str(&p), text, strlen(text), 0600) < 0)
		msg_fatal("write %s: %s", buf_str(&p), strerror(errno));
	buf_free(&p);
}

static char *
slurp(const char *rel)
{
	struct buf p = BUF_INIT, b = BUF_INIT;

	buf_printf(&p, "%s%s", buf_str(&root), rel);
	if (read_file(buf_str(&p), &b, 1 << 20) < 0) {
		buf_free(&p);
		return xstrdup("(none)");
	}
	buf_free(&p);
	return buf_steal(&b);
}

static void
age(const char *rel, int secs)
{
	struct buf p = BUF_INIT;
	struct timeval tv[2];

	buf_printf(&p, "%s%s", buf_str(&root), rel);
	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec -= secs;
	tv[1] = tv[0];
	if (utimes(buf_str(&p), tv) < 0)
		msg_fatal("utimes %s: %s", buf_str(&p), strerror(errno));
	buf_free(&p);
}

static void
test_parse(void)
{
	struct quota_limit q;

	ok(quota_parse("1g", &q) == 0 && q.bytes == 1073741824LL && q.messages == 0, "1g");
	ok(quota_parse("500m 20000", &q) == 0 && q.bytes == 500LL * 1048576 && q.messages == 20000,
	    "500m 20000");
	ok(quota_parse("none 100", &q) == 0 && q.bytes == 0 && q.messages == 100, "none 100");
	ok(quota_parse("0", &q) == 0 && !quota_limited(&q), "0 limits nothing");
	ok(quota_parse("", &q) < 0, "empty refused");
	ok(quota_parse("lots", &q) < 0, "a word refused");
	ok(quota_parse("1g 2 3", &q) < 0, "three values refused");
	ok(quota_parse("1g -5", &q) < 0, "negative count refused");
	is_int(quota_name_size("1700000000.M1P2Q3.host,S=1234,W=1260:2,S"), 1234, "S= with W= and flags");
	is_int(quota_name_size("1700000000.M1P2Q3.host,S=99"), 99, "S= at the end");
	is_int(quota_name_size("1700000000.M1P2Q3.host:2,S"), -1, "no S=");
	is_int(quota_name_size("x,S=12abc"), -1, "garbled S=");
}

static void
test_maildirsize(void)
{
	struct quota_limit q = { 10000, 5 };
	struct quota_usage u;
	struct buf err = BUF_INIT;
	char *s;
	int i;

	buf_printf(&root, "%s/Maildir/", dir);
	ok(mkdir_p(buf_str(&root), 0700) == 0, "Maildir made");
	{
		static const char *const dirs[] = { "new", "cur", "tmp", ".Sent", ".Sent/cur",
			".Sent/new", ".a.b", ".a.b/cur" };
		struct buf p = BUF_INIT;

		for (i = 0; i < 8; i++) {
			buf_reset(&p);
			buf_printf(&p, "%s%s", buf_str(&root), dirs[i]);
			mkdir(buf_str(&p), 0700);
		}
		buf_free(&p);
	}
	put("new/1.M1P1Q1.h,S=1000", "x");
	put("cur/2.M1P1Q2.h,S=2000:2,S", "x");
	put("cur/3.M1P1Q3.h:2,", "0123456789");		/* no S=: its size, 10 */
	put(".Sent/cur/4.M1P1Q4.h,S=500:2,S", "x");
	put(".a.b/cur/5.M1P1Q5.h,S=7:2,", "x");
	put("tmp/6.M1P1Q6.h,S=100000", "x");	/* tmp/ is not mail yet */

	ok(quota_usage(buf_str(&root), &q, &u, &err) == 0, "usage computed: %s", buf_str(&err));
	is_int(u.bytes, 3517, "bytes of INBOX and every folder, from S= or the size");
	is_int(u.messages, 5, "5 messages");
	s = slurp("maildirsize");
	is_str(s, "10000S,5C\n3517 5\n", "maildirsize written as Maildir++ does");
	free(s);

	quota_add(buf_str(&root), 300, 1);
	quota_add(buf_str(&root), -1000, -1);
	s = slurp("maildirsize");
	is_str(s, "10000S,5C\n3517 5\n300 1\n-1000 -1\n", "changes appended");
	free(s);
	ok(quota_usage(buf_str(&root), &q, &u, &err) == 0 && u.bytes == 2817 && u.messages == 5,
	    "usage is the sum of the lines (%lld, %lld)", u.bytes, u.messages);

	is_int(quota_room(buf_str(&root), &q, 7183, 0, NULL, &err), 1, "exactly up to the limit fits");
	is_int(quota_room(buf_str(&root), &q, 7184, 0, NULL, &err), 0, "a byte more does not");
	is_int(quota_room(buf_str(&root), &q, 1, 1, &u, &err), 0, "a sixth message does not");
	is_int(u.messages, 5, "room tells the usage it used");

	/* over quota and young: the file is believed */
	quota_add(buf_str(&root), 100000, 0);
	is_int(quota_room(buf_str(&root), &q, 1, 0, NULL, &err), 0, "young file over quota: believed");
	/* over quota and 16 minutes old: computed again (mail removed by
	 * hand is seen) */
	age("maildirsize", 16 * 60);
	is_int(quota_room(buf_str(&root), &q, 1, 0, &u, &err), 1, "old file over quota: recomputed, and there is room");
	is_int(u.bytes, 3517, "recomputed bytes");
	s = slurp("maildirsize");
	is_str(s, "10000S,5C\n3517 5\n", "recomputed file replaces the old");
	free(s);

	/* another limit: computed again for it */
	q.bytes = 20000;
	q.messages = 0;
	ok(quota_usage(buf_str(&root), &q, &u, &err) == 0, "usage for another limit");
	s = slurp("maildirsize");
	is_str(s, "20000S\n3517 5\n", "definition line follows the limit");
	free(s);

	/* garbled, negative, too long: computed again */
	put("maildirsize", "20000S\n3517 5\nbanana\n");
	ok(quota_usage(buf_str(&root), &q, &u, &err) == 0 && u.bytes == 3517, "garbled line: recomputed");
	put("maildirsize", "20000S\n3517 5\n-9000 -1\n");
	ok(quota_usage(buf_str(&root), &q, &u, &err) == 0 && u.bytes == 3517 && u.messages == 5,
	    "negative total: recomputed");
	put("maildirsize", "20000S\n3517 5");
	ok(quota_usage(buf_str(&root), &q, &u, &err) == 0 && u.bytes == 3517, "no final newline: recomputed");
	{
		struct buf big = BUF_INIT;

		buf_adds(&big, "20000S\n3517 5\n");
		while (big.len <= 5120)
			buf_adds(&big, "1 0\n");
		put("maildirsize", buf_str(&big));
		buf_free(&big);
	}
	ok(quota_usage(buf_str(&root), &q, &u, &err) == 0 && u.bytes == 3517, "over 5120 bytes: recomputed");
	s = slurp("maildirsize");
	ok(strlen(s) < 100, "and shrunk");
	free(s);

	/* no file: quota_add does not make one; the next reader does */
	quota_invalidate(buf_str(&root));
	quota_add(buf_str(&root), 5, 1);
	s = slurp("maildirsize");
	is_str(s, "(none)", "quota_add makes no file");
	free(s);
	ok(quota_usage(buf_str(&root), &q, &u, &err) == 0 && u.bytes == 3517, "missing file: recomputed");
	q.bytes = q.messages = 0;
	is_int(quota_room(buf_str(&root), &q, 1LL << 40, 1000000, NULL, &err), 1, "no limit: always room");
	buf_free(&err);
}

static void
test_lookup(void)
{
	struct buf p = BUF_INIT, sp = BUF_INIT, err = BUF_INIT;
	struct quota_limit q;
	const char *text = "alice 20k 8\nbob none\nbad lots of\n";

	conf_set("mailbox_quota", "5k");
	conf_set("mailbox_quota_messages", "0");
	ok(quota_lookup("carol", &q) == 0 && q.bytes == 5120 && q.messages == 0, "no maps: the default");
	buf_printf(&p, "%s/quota", dir);
	write_file_atomic(buf_str(&p), text, strlen(text), 0644);
	buf_printf(&sp, "hash:%s", buf_str(&p));
	ok(map_build(buf_str(&sp), MAP_FMT_TABLE, &err) == 3, "map built: %s", buf_str(&err));
	conf_set("mailbox_quota_maps", buf_str(&sp));
	ok(quota_lookup("alice", &q) == 0 && q.bytes == 20480 && q.messages == 8, "alice from the map");
	ok(quota_lookup("bob", &q) == 0 && !quota_limited(&q), "bob: none overrides the default");
	ok(quota_lookup("carol", &q) == 0 && q.bytes == 5120, "carol: not in the map, the default");
	ok(quota_lookup("bad", &q) < 0, "a malformed value is an error, not no limit");
	conf_set("mailbox_quota_maps", "hash:/nonexistent/quota");
	ok(quota_lookup("alice", &q) < 0, "an unreadable map is an error");
	conf_set("mailbox_quota_maps", "");
	buf_free(&p);
	buf_free(&sp);
	buf_free(&err);
}

int
main(void)
{
	struct buf cmd = BUF_INIT;

	if (!mkdtemp(dir))
		msg_fatal("mkdtemp: %s", strerror(errno));
	test_parse();
	test_maildirsize();
	test_lookup();
	buf_printf(&cmd, "rm -rf %s", dir);
	if (system(buf_str(&cmd)) != 0)
		msg_warn("cleanup failed");
	buf_free(&cmd);
	buf_free(&root);
	return done_testing();
}
