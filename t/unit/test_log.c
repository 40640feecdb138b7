/*
 * test_log.c: unit tests for the postlog side of lib/log.c: the datagram
 * parser (every malformed shape refused, byte by byte truncations
 * included), the sanitiser (no datagram becomes two lines), the file
 * line layout, the careful file open (symbolic links and hard links
 * refused, mode 0640), and the unix-dgram type of master.conf.
 */
#include "buf.h"
#include "conf.h"
#include "log.h"
#include "util.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/hermod-test-log-XXXXXX";

static int
decodes(const char *s)
{
	struct log_dgram d;

	return log_dgram_decode(s, strlen(s), &d) == 0;
}

static void
test_decode(void)
{
	struct log_dgram d;
	struct buf b = BUF_INIT;
	size_t i;
	int bad = 0;

	ok(log_dgram_decode("L1 hermod/smtpd hello world", 27, &d) == 0 && d.kind == LOG_DGRAM_LINE,
	    "a log line decodes");
	ok(d.identlen == 12 && !memcmp(d.ident, "hermod/smtpd", 12), "its ident");
	ok(d.textlen == 11 && !memcmp(d.text, "hello world", 11), "its text");
	ok(log_dgram_decode("L1 x ", 5, &d) == 0 && d.textlen == 0, "an empty text is a line");
	ok(decodes("L1 a.b_c-d/E9 t"), "ident characters . _ - / and digits");
	ok(!decodes("L1 hermod/smtpd"), "no text separator: refused");
	ok(!decodes("L1  text"), "empty ident refused");
	ok(!decodes("L1 bad[1] text"), "ident with [ refused");
	ok(!decodes("L1 bad\nid text"), "ident with a newline refused");
	ok(!decodes("L2 hermod/x text"), "unknown version refused");
	ok(!decodes("X1 hermod/x text"), "unknown kind refused");
	ok(!decodes("L1hermod/x text"), "missing space after the version refused");
	ok(!decodes(""), "empty datagram refused");
	buf_adds(&b, "L1 ");
	for (i = 0; i < LOG_IDENT_MAX; i++)
		buf_addc(&b, 'a');
	buf_adds(&b, " text");
	ok(!decodes(buf_str(&b)), "ident of %d characters refused", LOG_IDENT_MAX);
	ok(log_dgram_decode("C1 reopen", 9, &d) == 0 && d.kind == LOG_DGRAM_CMD &&
	    d.textlen == 6 && !memcmp(d.text, "reopen", 6), "a command decodes");
	ok(!decodes("C1 reopen now") && !decodes("C1 REOPEN") && !decodes("C1 "),
	    "commands are one lower-case word");
	/* every prefix of a good datagram either decodes or is refused,
	 * without reading past its end (the sanitizer build checks that) */
	for (i = 0; i < 20; i++) {
		char *p = xmalloc(i ? i : 1);

		memcpy(p, "L1 hermod/qmgr text", i);
		if (log_dgram_decode(p, i, &d) == 0 && (d.ident + d.identlen > p + i || d.text + d.textlen > p + i))
			bad++;
		free(p);
	}
	ok(!bad, "truncated datagrams stay inside their bytes");
	buf_reset(&b);
	log_dgram_line(&b, "hermod/smtpd", "ABC: from=<a@b>");
	is_str(buf_str(&b), "L1 hermod/smtpd ABC: from=<a@b>", "log_dgram_line");
	ok(log_dgram_decode(b.data, b.len, &d) == 0, "what log_dgram_line makes decodes");
	buf_reset(&b);
	{
		char *big = xmalloc(3 * LOG_POSTLOG_MAX);

		memset(big, 'x', 3 * LOG_POSTLOG_MAX - 1);
		big[3 * LOG_POSTLOG_MAX - 1] = 0;
		log_dgram_line(&b, "hermod/smtpd", big);
		is_int(b.len, LOG_POSTLOG_MAX, "a long line is cut to LOG_POSTLOG_MAX");
		free(big);
	}
	buf_free(&b);
}

static void
test_sanitize(void)
{
	struct buf b = BUF_INIT;

	log_sanitize(&b, "plain text", 10);
	is_str(buf_str(&b), "plain text", "printable ASCII unchanged");
	buf_reset(&b);
	log_sanitize(&b, "a\nDec  3 12:00:00 h hermod/master[1]: forged", 44);
	ok(!strchr(buf_str(&b), '\n'), "a newline never survives");
	is_str(buf_str(&b), "a#012Dec  3 12:00:00 h hermod/master[1]: forged", "newline written as #012");
	buf_reset(&b);
	log_sanitize(&b, "\r\t\033[2J\177\0z", 9);
	is_str(buf_str(&b), "#015#011#033[2J#177#000z", "CR, tab, ESC, DEL, NUL escaped");
	buf_reset(&b);
	log_sanitize(&b, "caf\xc3\xa9 \xe2\x82\xac", 9);
	is_str(buf_str(&b), "caf\xc3\xa9 \xe2\x82\xac", "well-formed UTF-8 kept");
	buf_reset(&b);
	log_sanitize(&b, "\xc2\x9b" "1m \xff \xc3", 8);
	is_str(buf_str(&b), "#302#2331m #377 #303", "C1 controls and bad UTF-8 escaped");
	buf_free(&b);
}

static void
test_line(void)
{
	struct buf b = BUF_INIT;
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	tm.tm_mon = 11;
	tm.tm_mday = 3;
	tm.tm_hour = 12;
	tm.tm_min = 0;
	tm.tm_sec = 7;
	log_file_line(&b, &tm, "mx", "hermod/smtpd", 12, 123, "", "ABC: from=<a@b>", 15);
	is_str(buf_str(&b), "Dec  3 12:00:07 mx hermod/smtpd[123]: ABC: from=<a@b>\n", "syslog layout");
	buf_reset(&b);
	tm.tm_mon = 0;
	tm.tm_mday = 21;
	log_file_line(&b, &tm, "mx", "hermod/local", 12, 9, "(uid 1001) ", "x\ny", 3);
	is_str(buf_str(&b), "Jan 21 12:00:07 mx hermod/local[9]: (uid 1001) x#012y\n",
	    "note before the text, text sanitised");
	ok(*log_hostname() && !strchr(log_hostname(), '.') && !strchr(log_hostname(), ' '),
	    "log_hostname is a short name");
	buf_free(&b);
}

static void
test_open(void)
{
	struct buf p = BUF_INIT, q = BUF_INIT, err = BUF_INIT;
	struct stat st;
	int fd;

	buf_printf(&p, "%s/maillog", tmpdir);
	fd = log_file_open(buf_str(&p), 0, (uid_t)-1, (gid_t)-1, &err);
	ok(fd < 0 && errno == ENOENT, "no create: a missing file is not made");
	umask(077);
	fd = log_file_open(buf_str(&p), 1, (uid_t)-1, (gid_t)-1, &err);
	ok(fd >= 0, "create: made");
	ok(fd >= 0 && fstat(fd, &st) == 0 && (st.st_mode & 07777) == LOG_FILE_MODE,
	    "mode 0640 whatever the umask");
	ok(fd >= 0 && write(fd, "a\n", 2) == 2, "writable");
	if (fd >= 0)
		close(fd);
	fd = log_file_open(buf_str(&p), 1, (uid_t)-1, (gid_t)-1, &err);
	ok(fd >= 0 && write(fd, "b\n", 2) == 2, "opened again: appends");
	if (fd >= 0)
		close(fd);
	buf_reset(&err);
	ok(read_file(buf_str(&p), &err, 100) == 0 && buf_eq(&err, "a\nb\n"), "both lines there");
	buf_printf(&q, "%s/link", tmpdir);
	ok(symlink(buf_str(&p), buf_str(&q)) == 0, "symlink made");
	buf_reset(&err);
	fd = log_file_open(buf_str(&q), 1, (uid_t)-1, (gid_t)-1, &err);
	ok(fd < 0 && strstr(buf_str(&err), "symbolic link"), "a symbolic link is refused");
	unlink(buf_str(&q));
	ok(link(buf_str(&p), buf_str(&q)) == 0, "hard link made");
	buf_reset(&err);
	fd = log_file_open(buf_str(&p), 1, (uid_t)-1, (gid_t)-1, &err);
	ok(fd < 0 && strstr(buf_str(&err), "more than one link"), "a file with two links is refused");
	unlink(buf_str(&q));
	ok(mkfifo(buf_str(&q), 0600) == 0, "fifo made");
	buf_reset(&err);
	fd = log_file_open(buf_str(&q), 1, (uid_t)-1, (gid_t)-1, &err);
	ok(fd < 0, "a fifo is refused without blocking");
	unlink(buf_str(&q));
	unlink(buf_str(&p));
	buf_free(&p);
	buf_free(&q);
	buf_free(&err);
}

static void
test_master_conf(void)
{
	struct buf p = BUF_INIT, err = BUF_INIT;
	struct master_service *s = NULL;
	size_t n = 0;
	FILE *fp;

	buf_printf(&p, "%s/master.conf", tmpdir);
	fp = fopen(buf_str(&p), "w");
	ok(fp != NULL, "master.conf written");
	if (!fp)
		return;
	fputs("postlog     public/postlog  unix-dgram n  1  postlogd\n"
	    "pickup      public/pickup   unix n       1     pickup\n", fp);
	fclose(fp);
	ok(master_conf_load(buf_str(&p), &s, &n, &err) == 0 && n == 2, "unix-dgram is a service type");
	if (n == 2)
		ok(!strcmp(s[0].type, "unix-dgram") && s[0].proclimit == 1 && !strcmp(s[0].argv[0], "postlogd"),
		    "its fields");
	master_conf_free(s, n);
	fp = fopen(buf_str(&p), "w");
	if (fp) {
		fputs("postlog public/postlog unix-stream n 1 postlogd\n", fp);
		fclose(fp);
	}
	buf_reset(&err);
	ok(master_conf_load(buf_str(&p), &s, &n, &err) < 0 && strstr(buf_str(&err), "unix-dgram"),
	    "other types still refused, and the message lists unix-dgram");
	unlink(buf_str(&p));
	buf_free(&p);
	buf_free(&err);
}

int
main(void)
{
	log_init("test_log", LOG_FLAG_STDERR);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_decode();
	test_sanitize();
	test_line();
	test_open();
	test_master_conf();
	rmdir(tmpdir);
	return done_testing();
}
