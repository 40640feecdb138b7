/*
 * test_imap_box_mbox: the mbox back end of imap_box (imapd/imap_box_mbox.c)
 * on temporary files: a missing mbox is an empty INBOX, APPEND creates
 * it (0600); UIDs given at SELECT are written and stay across reopen;
 * popd's UIDLs (lib/mstore) are the same before and after our rewrites;
 * our headers are hidden from load, ">From " is shown as stored; STORE
 * in place and with keywords; EXPUNGE; mail appended by local during a
 * session is seen at sync without a rewrite; a lock held by another
 * process gives IBOX_INUSE; UW's X-IMAP pseudo-message; untrusted
 * X-UIDs; garbage and truncated files.
 */
#include "imap_box.h"
#include "imap_parse.h"
#include "mbox.h"
#include "mstore.h"
#include "util.h"
#include "test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/test_imap_box_mbox.XXXXXX";
static char path[256];

static void
put(const char *s)
{
	if (write_file_atomic(path, s, strlen(s), 0600) < 0) {
		perror(path);
		exit(2);
	}
}

static char *
slurp(void)
{
	struct buf b = BUF_INIT;

	if (read_file(path, &b, 1 << 26) < 0)
		return xstrdup("");
	buf_addc(&b, '\0');
	return buf_steal(&b);
}

/* popd's UIDLs, "a b c" */
static char *
pop_uidls(void)
{
	struct mstore ms;
	struct buf err = BUF_INIT, out = BUF_INIT;
	size_t i;

	if (mstore_open(&ms, path, 0, &err) != MSTORE_OK)
		buf_printf(&out, "ERR %s", buf_str(&err));
	else
		for (i = 0; i < ms.n; i++)
			buf_printf(&out, "%s%s", i ? " " : "", ms.msgs[i].uidl);
	mstore_close(&ms);
	buf_free(&err);
	buf_addc(&out, '\0');
	return buf_steal(&out);
}

static int
open_box(struct imap_box *b, int ro)
{
	struct buf err = BUF_INIT;
	int r;

	memset(b, 0, sizeof(*b));
	r = ibox_open(b, path, 0, ro, &err);
	if (r != IBOX_OK)
		printf("# open: %d %s\n", r, buf_str(&err));
	buf_free(&err);
	return r;
}

static char *
load(struct imap_box *b, size_t i)
{
	struct buf err = BUF_INIT;
	const char *p;
	size_t n;

	if (ibox_load(b, i, &p, &n, &err) != IBOX_OK) {
		printf("# load: %s\n", buf_str(&err));
		buf_free(&err);
		return xstrdup("(error)");
	}
	buf_free(&err);
	return xstrndup(p, n);
}

static int
deliver(const char *msg)
{
	struct mbox_opts o;
	struct mail_source src;
	struct buf err = BUF_INIT;
	int r;

	mbox_opts_from_conf(&o);
	memset(&src, 0, sizeof(src));
	src.prefix = msg;
	src.prefix_len = strlen(msg);
	r = mbox_deliver(path, &o, "someone@example.test", time(NULL), &src, &err);
	if (r < 0)
		printf("# deliver: %s\n", buf_str(&err));
	buf_free(&err);
	return r;
}

static ino_t
inode(void)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_ino : 0;
}

static void
test_missing_and_append(void)
{
	struct imap_box b;
	struct ibox_changes ch;
	struct ibox_append a;
	struct buf err = BUF_INIT;
	struct stat st;
	uint32_t uv = 0, uid[2] = { 0, 0 };
	char *s;

	snprintf(path, sizeof(path), "%s/new", dir);
	ok(open_box(&b, 0) == IBOX_OK && b.n == 0, "a missing mbox opens as an empty INBOX");
	memset(&a, 0, sizeof(a));
	a.data = "Subject: one\r\n\r\nFrom me\r\nbody\r\n";
	a.len = strlen(a.data);
	a.flags = IMAP_FLAG_SEEN;
	ok(ibox_append(path, 0, &a, 1, &uv, uid, &err) == IBOX_OK, "append creates it (%s)", buf_str(&err));
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "created with mode 0600");
	is_int(uid[0], 1, "first UID is 1");
	is_int(uv, b.uidvalidity, "the open box's UIDVALIDITY is kept");
	s = slurp();
	ok(strstr(s, "X-IMAPbase: ") && strstr(s, "X-UID: 1\n") && strstr(s, "Status: R \n") &&
	    strstr(s, "\n>From me\n"), "append writes X-IMAPbase, X-UID, Status, quotes From");
	free(s);
	memset(&ch, 0, sizeof(ch));
	ok(ibox_sync(&b, 1, &ch, &err) == IBOX_OK && ch.exists && b.n == 1 && b.msgs[0].uid == 1 &&
	    (b.msgs[0].flags & IMAP_FLAG_SEEN) && (b.msgs[0].flags & IBOX_RECENT),
	    "sync sees the appended message, \\Seen and \\Recent");
	ibox_changes_free(&ch);
	s = load(&b, 0);
	is_str(s, "Subject: one\n\n>From me\nbody\n", "load hides our headers, shows >From as stored");
	free(s);
	a.data = "Subject: two\r\n\r\nx\r\n";
	a.len = strlen(a.data);
	a.flags = 0;
	a.keywords = "Work,$Label1";
	ok(ibox_append(path, 0, &a, 1, &uv, &uid[1], &err) == IBOX_OK && uid[1] == 2,
	    "second append gets UID 2");
	memset(&ch, 0, sizeof(ch));
	ok(ibox_sync(&b, 1, &ch, &err) == IBOX_OK && b.n == 2 && b.msgs[1].keywords &&
	    !strcmp(b.msgs[1].keywords, "Work,$Label1"), "keywords of the append are read back");
	ibox_changes_free(&ch);
	ok(b.uidnext == 3, "UIDNEXT 3");
	ibox_close(&b);
	buf_free(&err);
}

static const char local3[] =
	"From a@example.test Sat Jan  3 00:00:00 2026\n"
	"Subject: first\n"
	"\n"
	"hello\n"
	"\n"
	"From b@example.test Sat Jan  3 00:00:01 2026\n"
	"Subject: second\n"
	"X-UIDL: keep-me-exactly\n"
	"\n"
	">From the body\n"
	"\n"
	"From c@example.test Sat Jan  3 00:00:02 2026\n"
	"Subject: third\n"
	"Status: O\n"
	"\n"
	"bye\n"
	"\n";

static void
test_local_mbox(void)
{
	struct imap_box b, b2;
	struct ibox_changes ch;
	struct ibox_status st;
	struct buf err = BUF_INIT;
	char *u0, *u1, *s;
	uint32_t uv;
	ino_t ino;
	size_t i;

	snprintf(path, sizeof(path), "%s/local", dir);
	put(local3);
	u0 = pop_uidls();
	ok(open_box(&b, 0) == IBOX_OK && b.n == 3, "SELECT of local's mbox: 3 messages");
	ok(b.msgs[0].uid == 1 && b.msgs[1].uid == 2 && b.msgs[2].uid == 3, "UIDs 1 2 3");
	is_int(b.recent, 2, "the two without Status: O are \\Recent");
	ok(b.nomodseq && b.msgs[0].modseq == 1, "NOMODSEQ, modseq 1");
	s = slurp();
	ok(strstr(s, "X-IMAPbase: ") && strstr(s, "X-UID: 3\n") && strstr(s, "X-UIDL: keep-me-exactly\n"),
	    "SELECT wrote the UIDs, kept X-UIDL");
	free(s);
	u1 = pop_uidls();
	is_str(u1, u0, "POP3 UIDLs unchanged by the rewrite");
	free(u1);
	s = load(&b, 1);
	is_str(s, "Subject: second\n\n>From the body\n", "load: X-UIDL and ours hidden");
	free(s);
	ok(ibox_meta(&b, 1, IBOX_META_SIZE | IBOX_META_IDATE, &err) == IBOX_OK &&
	    b.msgs[1].size == strlen("Subject: second\r\n\r\n>From the body\r\n"),
	    "RFC822.SIZE is that of what is sent");
	ok(b.msgs[0].idate > 1700000000, "INTERNALDATE from the From_ line");
	uv = b.uidvalidity;
	ibox_close(&b);

	ok(open_box(&b, 0) == IBOX_OK && b.n == 3 && b.uidvalidity == uv && b.recent == 0 &&
	    b.msgs[2].uid == 3, "reopen: same UIDVALIDITY and UIDs, nothing \\Recent");
	ino = inode();
	ok(ibox_store(&b, 1, IMAP_FLAG_SEEN | IMAP_FLAG_FLAGGED, NULL, &err) == IBOX_OK, "STORE flags");
	is_int(inode(), ino, "system flags are stored in place");
	s = slurp();
	ok(strstr(s, "Status: RO\nX-Status: F   \n") != NULL, "Status RO, X-Status F");
	free(s);
	ok(ibox_store(&b, 2, IMAP_FLAG_ANSWERED, "Todo", &err) == IBOX_OK, "STORE a keyword");
	ok(inode() != ino, "keywords rewrite the file");
	ok(b.kwlist && !strcmp(b.kwlist, "Todo"), "kwlist");
	u1 = pop_uidls();
	is_str(u1, u0, "POP3 UIDLs unchanged by STORE");
	free(u1);
	ibox_close(&b);

	ok(open_box(&b, 0) == IBOX_OK && b.msgs[1].flags == (IMAP_FLAG_SEEN | IMAP_FLAG_FLAGGED) &&
	    b.msgs[2].flags == IMAP_FLAG_ANSWERED && b.msgs[2].keywords &&
	    !strcmp(b.msgs[2].keywords, "Todo"), "flags and keywords persist");
	/* local appends while the session is open */
	ino = inode();
	ok(deliver("Subject: late\n\nFrom here\n") == 0, "local appends");
	memset(&ch, 0, sizeof(ch));
	ok(ibox_sync(&b, 1, &ch, &err) == IBOX_OK && ch.exists && b.n == 4 && b.msgs[3].uid == 4 &&
	    (b.msgs[3].flags & IBOX_RECENT), "sync: EXISTS, UID 4, \\Recent");
	ibox_changes_free(&ch);
	is_int(inode(), ino, "no rewrite at sync");
	s = load(&b, 3);
	is_str(s, "Subject: late\n\n>From here\n", "the new message loads");
	free(s);
	ok(open_box(&b2, 1) == IBOX_OK && b2.n == 4 && b2.msgs[3].uid == 4,
	    "another (read-only) session gives it the same UID");
	ibox_close(&b2);
	/* expunge */
	ok(ibox_store(&b, 0, IMAP_FLAG_DELETED, NULL, &err) == IBOX_OK, "STORE \\Deleted");
	memset(&ch, 0, sizeof(ch));
	ok(ibox_expunge(&b, NULL, &ch, &err) == IBOX_OK && ch.nexpunged == 1 && ch.expunged[0] == 1 &&
	    b.n == 3, "EXPUNGE removes it (%s)", buf_str(&err));
	ibox_changes_free(&ch);
	ok(b.msgs[0].uid == 2 && b.msgs[1].uid == 3 && b.msgs[2].uid == 4, "the others keep UIDs");
	u1 = pop_uidls();
	ok(!strncmp(u1, strchr(u0, ' ') + 1, strlen(strchr(u0, ' ') + 1)),
	    "POP3 UIDLs of the kept messages unchanged");
	free(u1);
	s = slurp();
	ok(!strstr(s, "Subject: first") && strstr(s, "X-UID: 4\n"), "the file lost it, UID 4 written");
	free(s);
	for (i = 0; i < b.n; i++) {
		s = load(&b, i);
		ok(!strstr(s, "X-UID") && !strstr(s, "Status:"), "message %zu has no status headers", i + 1);
		free(s);
	}
	ibox_close(&b);
	ok(ibox_status(path, 0, &st, &err) == IBOX_OK && st.messages == 3 && st.uidnext == 5 &&
	    st.uidvalidity == uv && st.highestmodseq == 0, "STATUS");
	free(u0);
	buf_free(&err);
}

static void
test_inuse(void)
{
	struct imap_box b;
	struct ibox_changes ch;
	struct ibox_append a;
	struct buf err = BUF_INIT;
	int pfd[2], qfd[2];
	pid_t pid;
	char c;
	uint32_t uv, uid;

	snprintf(path, sizeof(path), "%s/local", dir);
	ok(open_box(&b, 0) == IBOX_OK, "open before popd");
	if (pipe(pfd) < 0 || pipe(qfd) < 0)
		exit(2);
	if ((pid = fork()) == 0) {
		struct mstore ms;
		struct buf e = BUF_INIT;

		/* popd: the locks for the whole session */
		if (mstore_open(&ms, path, 0, &e) != MSTORE_OK) {
			printf("# child: %s\n", buf_str(&e));
			_exit(1);
		}
		(void)!write(pfd[1], "x", 1);
		close(qfd[1]);
		(void)!read(qfd[0], &c, 1);	/* until the parent says QUIT */
		mstore_close(&ms);
		_exit(0);
	}
	close(pfd[1]);
	close(qfd[0]);
	ok(read(pfd[0], &c, 1) == 1, "popd-like child holds the lock");
	ok(ibox_store(&b, 0, IMAP_FLAG_FLAGGED, NULL, &err) == IBOX_INUSE, "STORE: IBOX_INUSE");
	memset(&a, 0, sizeof(a));
	a.data = "Subject: y\r\n\r\n";
	a.len = strlen(a.data);
	ok(ibox_append(path, 0, &a, 1, &uv, &uid, &err) == IBOX_INUSE, "APPEND: IBOX_INUSE");
	memset(&ch, 0, sizeof(ch));
	ok(ibox_sync(&b, 1, &ch, &err) == IBOX_OK, "sync of an unchanged file needs no lock");
	ibox_changes_free(&ch);
	close(qfd[1]);
	waitpid(pid, NULL, 0);
	close(pfd[0]);
	ok(ibox_store(&b, 0, IMAP_FLAG_FLAGGED, NULL, &err) == IBOX_OK, "STORE after popd left");
	ok(ibox_store(&b, 0, IMAP_FLAG_FLAGGED, "Rewrite", &err) == IBOX_OK, "STORE that rewrites");
	if ((pid = fork()) == 0) {
		struct mbox_opts o;
		struct mbox mb;
		struct buf e = BUF_INIT;

		/* local, after our rewrite: no lock of ours may stay */
		mbox_opts_from_conf(&o);
		o.lock_attempts = 2;
		o.lock_delay_ms = 50;
		if (mbox_open(&mb, path, &o, &e) < 0)
			_exit(1);
		mbox_close(&mb);
		_exit(0);
	}
	{
		int stv = -1;

		waitpid(pid, &stv, 0);
		ok(WIFEXITED(stv) && WEXITSTATUS(stv) == 0, "another process can lock the rewritten file");
	}
	ibox_close(&b);
	buf_free(&err);
}

static void
test_two_sessions(void)
{
	struct imap_box b1, b2;
	struct ibox_changes ch;
	struct buf err = BUF_INIT;
	const char *p;
	size_t n;
	ino_t ino;
	int r1, r2;

	snprintf(path, sizeof(path), "%s/local", dir);
	r1 = open_box(&b1, 0);
	r2 = open_box(&b2, 0);
	ok(r1 == IBOX_OK && r2 == IBOX_OK && b1.n == 3 && b2.n == 3, "two sessions on one mbox");
	if (r1 != IBOX_OK || r2 != IBOX_OK || b1.n != 3 || b2.n != 3) {
		ibox_close(&b1);
		ibox_close(&b2);
		return;
	}
	ino = inode();
	ok(ibox_store(&b1, 0, IMAP_FLAG_ANSWERED, b1.msgs[0].keywords, &err) == IBOX_OK &&
	    ibox_store(&b2, 1, IMAP_FLAG_DRAFT, b2.msgs[1].keywords, &err) == IBOX_OK,
	    "each STOREs a flag");
	is_int(inode(), ino, "both in place, though the other changed the file");
	memset(&ch, 0, sizeof(ch));
	ok(ibox_sync(&b2, 1, &ch, &err) == IBOX_OK && ch.nchanged == 1 && ch.changed[0] == 0 &&
	    b2.msgs[0].flags == IMAP_FLAG_ANSWERED, "the other session hears of the change");
	ibox_changes_free(&ch);
	ok(ibox_store(&b1, 0, IMAP_FLAG_DELETED, b1.msgs[0].keywords, &err) == IBOX_OK, "\\Deleted");
	memset(&ch, 0, sizeof(ch));
	ok(ibox_expunge(&b1, NULL, &ch, &err) == IBOX_OK && ch.nexpunged == 1, "session 1 expunges");
	ibox_changes_free(&ch);
	memset(&ch, 0, sizeof(ch));
	ok(ibox_sync(&b2, 0, &ch, &err) == IBOX_OK && ch.nexpunged == 0 && b2.n == 3 && b2.msgs[0].expunged,
	    "session 2, no EXPUNGE allowed: marked expunged");
	ibox_changes_free(&ch);
	is_int(ibox_load(&b2, 0, &p, &n, &err), IBOX_GONE, "its load: IBOX_GONE");
	ok(ibox_load(&b2, 1, &p, &n, &err) == IBOX_OK && n > 0 && !memcmp(p, "Subject: third", 14),
	    "the next message still loads");
	memset(&ch, 0, sizeof(ch));
	ok(ibox_sync(&b2, 1, &ch, &err) == IBOX_OK && ch.nexpunged == 1 && ch.expunged[0] == 1 && b2.n == 2,
	    "then told at a sync that allows it");
	ibox_changes_free(&ch);
	ibox_close(&b1);
	ibox_close(&b2);
	buf_free(&err);
}

static void
test_odd_files(void)
{
	struct imap_box b;
	char *s;

	snprintf(path, sizeof(path), "%s/odd", dir);
	put("this is not an mbox\n");
	ok(open_box(&b, 0) == IBOX_ERR, "garbage: an error, no crash");
	ibox_close(&b);
	put("From x Sat Jan  3 00:00:00 2026\nSubject: cut\n\nhalf a li");
	ok(open_box(&b, 0) == IBOX_OK && b.n == 1, "truncated: one message");
	s = b.n ? load(&b, 0) : xstrdup("");
	is_str(s, "Subject: cut\n\nhalf a li\n", "truncated message loads (a line end added)");
	free(s);
	ibox_close(&b);
	put("From x\n");
	ok(open_box(&b, 0) == IBOX_OK && b.n == 1, "a bare From_ line");
	s = b.n ? load(&b, 0) : xstrdup("x");
	is_str(s, "", "loads empty");
	free(s);
	ibox_close(&b);
	put("From x Sat Jan  3 00:00:00 2026\nX-UID: 9\nX-IMAPbase: junk\n\na\n\n"
	    "From x Sat Jan  3 00:00:00 2026\nX-UID: 3\n\nb\n\n");
	ok(open_box(&b, 0) == IBOX_OK && b.n == 2 && b.msgs[0].uid == 1 && b.msgs[1].uid == 2,
	    "no X-IMAPbase and X-UIDs out of order: renumbered");
	ibox_close(&b);
	/* UW-IMAP / Dovecot pseudo-message */
	put("From MAILER-DAEMON Sat Jan  3 00:00:00 2026\nSubject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
	    "X-IMAP: 1234567 20 Junk\nStatus: RO\n\nThis text is part of the internal format\n\n"
	    "From x Sat Jan  3 00:00:00 2026\nX-UID: 7\nStatus: RO\n\nreal\n\n");
	ok(open_box(&b, 0) == IBOX_OK && b.n == 1 && b.uidvalidity == 1234567 && b.msgs[0].uid == 7 &&
	    b.uidnext == 20 && (b.msgs[0].flags & IMAP_FLAG_SEEN), "X-IMAP pseudo-message read");
	ibox_close(&b);
	s = slurp();
	ok(!strstr(s, "INTERNAL DATA") && strstr(s, "X-IMAPbase: 1234567 0000000020"),
	    "pseudo-message replaced by X-IMAPbase");
	free(s);
	put("From x Sat Jan  3 00:00:00 2026\nX-IMAPbase: 1000 0000000005\nX-UID: 2\n\na\n\n"
	    "From x Sat Jan  3 00:00:00 2026\nX-UID: 4\n\nb\n\n");
	ok(open_box(&b, 1) == IBOX_OK && b.readonly && b.uidvalidity == 1000 && b.msgs[1].uid == 4 &&
	    b.uidnext == 5, "EXAMINE: X-IMAPbase read");
	ibox_close(&b);
	s = slurp();
	ok(!strstr(s, "Status:"), "EXAMINE writes nothing");
	free(s);
}

/* (The Maildir back end's watch, here because this program links both
 * back ends.)  What a sync writes beside the index - the description of
 * the folder, the index's temporary file, the FETCH cache - is no change
 * to the watch: read as one, it made every IDLE session of a folder list
 * it whenever another had. */
static void
touch_rel(const char *folder, const char *rel)
{
	struct buf p = BUF_INIT;

	buf_printf(&p, "%s/%s", folder, rel);
	if (write_file_atomic_nosync(buf_str(&p), "x\n", 2, 0600) < 0)
		printf("# write %s: %s\n", buf_str(&p), strerror(errno));
	buf_free(&p);
}

static void
test_maildir_watch(void)
{
	struct imap_box b;
	struct buf err = BUF_INIT, folder = BUF_INIT, a = BUF_INIT, c = BUF_INIT;
	int fd;

	buf_printf(&folder, "%s/md/", dir);
	memset(&b, 0, sizeof(b));
	is_int(ibox_open(&b, buf_str(&folder), 1, 0, &err), IBOX_OK, "maildir watch: open: %s", buf_str(&err));
	fd = ibox_watch(&b);
	ok(fd >= 0, "a watch descriptor");
	is_int(ibox_watch_drain(&b), 0, "nothing yet");
	touch_rel(buf_str(&folder), "hermod-uidlist.stamp");
	touch_rel(buf_str(&folder), "hermod-cache");
	touch_rel(buf_str(&folder), "hermod-uidlist.tmp.1");
	is_int(ibox_watch_drain(&b), 0, "the description, the cache, a temporary file: no change");
	touch_rel(buf_str(&folder), "hermod-uidlist");
	is_int(ibox_watch_drain(&b), IBOX_WATCH_INDEX, "the index replaced: INDEX");
	touch_rel(buf_str(&folder), "new/1900000000.M1P1Q1.w");
	is_int(ibox_watch_drain(&b), IBOX_WATCH_DIRS, "a file in new/: DIRS");
	buf_printf(&a, "%s/new/1900000000.M1P1Q1.w", buf_str(&folder));
	buf_printf(&c, "%s/cur/1900000000.M1P1Q1.w:2,S", buf_str(&folder));
	ok(rename(buf_str(&a), buf_str(&c)) == 0, "move it to cur/");
	is_int(ibox_watch_drain(&b), IBOX_WATCH_DIRS, "a rename into cur/: DIRS");
	ibox_close(&b);
	buf_free(&err);
	buf_free(&folder);
	buf_free(&a);
	buf_free(&c);
}

int
main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	setenv("TZ", "UTC", 1);
	test_missing_and_append();
	test_local_mbox();
	test_inuse();
	test_two_sessions();
	test_odd_files();
	test_maildir_watch();
	{
		struct buf cmd = BUF_INIT;

		buf_printf(&cmd, "rm -rf %s", dir);
		(void)!system(buf_str(&cmd));
		buf_free(&cmd);
	}
	return done_testing();
}
