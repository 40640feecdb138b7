/*
 * test_imap_cache: the IMAP metadata cache (imapd/imap_cache.c): items
 * kept per BASENAME, a save/load round trip that keeps only the folder's
 * messages, and files that are torn, foreign or hostile read as far as
 * they are sound and no further.
 */
#include "test.h"
#include "imap_cache.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void
write_cache(const char *content, size_t n)
{
	struct buf p = BUF_INIT;

	buf_printf(&p, "%s%s", dir, IMAP_CACHE_FILE);
	if (write_file_atomic(buf_str(&p), content, n, 0600) < 0)
		printf("# write: %s\n", buf_str(&p));
	buf_free(&p);
}

static void
msg_clear(struct ibox_msg *m)
{
	free(m->envelope);
	free(m->bodystructure);
	free(m->body);
	memset(m, 0, sizeof(*m));
}

int
main(void)
{
	struct imap_cache *c;
	struct ibox_msg m;
	struct buf base = BUF_INIT;
	char *keep[2];
	static const char torn[] = "HC1\nA 15 10 100 60 3 3 3\n(e)(b)(o)\nB 15 10 100 60 3 3 3\n(e)(b";
	static const char bad[] = "HC1\nA 15 10 100 60 3 3 3\n(e)(b)(o)\nB 99 10 100 60 0 0 0\n\n"
	    "C 1 5 0 0 0 0 0\n\n";

	log_init("test_imap_cache", LOG_FLAG_STDERR);
	snprintf(dir, sizeof(dir), "/tmp/hermod-cache.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	strcat(dir, "/");

	imap_cache_base("cur/1700000000.M1P2.host,S=10,W=11:2,S", &base);
	is_str(buf_str(&base), "1700000000.M1P2.host", "BASENAME of a cur/ name");
	imap_cache_base("new/1700000001.M1P2.host", &base);
	is_str(buf_str(&base), "1700000001.M1P2.host", "BASENAME of a new/ name");

	c = imap_cache_load(dir);
	is_int((long)imap_cache_count(c), 0, "no file: an empty cache");
	memset(&m, 0, sizeof(m));
	m.have = IBOX_META_SIZE | IBOX_META_IDATE | IBOX_META_ENVELOPE;
	m.size = 1234;
	m.idate = 1700000000;
	m.izone = -300;
	m.envelope = xstrdup("(\"Thu, 1 Jan 2026\" \"s\" NIL NIL NIL NIL NIL NIL NIL NIL)");
	imap_cache_put(c, "one", &m);
	msg_clear(&m);
	m.have = IBOX_META_SIZE | IBOX_META_BODYSTRUCTURE;
	m.size = 77;
	m.bodystructure = xstrdup("(\"text\" \"plain\" NIL NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)");
	m.body = xstrdup("(\"text\" \"plain\" NIL NIL NIL \"7bit\" 3 1)");
	imap_cache_put(c, "two", &m);
	msg_clear(&m);
	imap_cache_put(c, "gone", &m);	/* nothing to keep */
	is_int((long)imap_cache_get(c, "one", &m), IBOX_META_SIZE | IBOX_META_IDATE | IBOX_META_ENVELOPE,
	    "get gives the items put");
	ok(m.size == 1234 && m.idate == 1700000000 && m.izone == -300 && m.envelope &&
	    !strncmp(m.envelope, "(\"Thu", 5), "the values are the ones put");
	is_int((long)imap_cache_get(c, "one", &m), 0, "get adds nothing a message already has");
	msg_clear(&m);
	keep[0] = "one";
	keep[1] = "two";
	is_int(imap_cache_save(c, dir, keep, 1), 0, "save keeping one message");
	imap_cache_free(&c);
	c = imap_cache_load(dir);
	is_int((long)imap_cache_count(c), 1, "load: only the kept message");
	is_int((long)imap_cache_get(c, "one", &m), IBOX_META_SIZE | IBOX_META_IDATE | IBOX_META_ENVELOPE,
	    "load: its items");
	ok(m.izone == -300 && m.size == 1234, "load: its values");
	msg_clear(&m);
	is_int((long)imap_cache_get(c, "two", &m), 0, "load: the other was left out");
	imap_cache_free(&c);

	write_cache(torn, sizeof(torn) - 1);
	c = imap_cache_load(dir);
	is_int((long)imap_cache_count(c), 1, "a torn file: the entries before the tear");
	imap_cache_free(&c);
	write_cache(bad, sizeof(bad) - 1);
	c = imap_cache_load(dir);
	is_int((long)imap_cache_count(c), 1, "unknown item bits end the reading");
	imap_cache_free(&c);
	write_cache("HC2\nA 1 5 0 0 0 0 0\n\n", 21);
	c = imap_cache_load(dir);
	is_int((long)imap_cache_count(c), 0, "another format version: ignored");
	imap_cache_free(&c);
	write_cache("HC1\nA 4 0 0 0 99999999999 0 0\n\n", 32);
	c = imap_cache_load(dir);
	is_int((long)imap_cache_count(c), 0, "a length past the file: nothing");
	imap_cache_free(&c);
	write_cache("HC1\nA 4 0 0 2000 1 0 0\nx\n", 25);
	c = imap_cache_load(dir);
	is_int((long)imap_cache_count(c), 0, "a zone out of range: nothing");
	imap_cache_free(&c);
	{
		static const char nul[] = "HC1\nA 4 0 0 0 3 0 0\n(\0)\n";

		write_cache(nul, sizeof(nul) - 1);
		c = imap_cache_load(dir);
		is_int((long)imap_cache_count(c), 0, "an item with a NUL: nothing");
		imap_cache_free(&c);
	}

	{
		struct buf cmd = BUF_INIT;

		buf_printf(&cmd, "rm -rf '%s'", dir);
		if (system(buf_str(&cmd)) != 0)
			printf("# cleanup failed\n");
		buf_free(&cmd);
	}
	buf_free(&base);
	return done_testing();
}
