/*
 * test_mstore_index: the Maildir UID index (lib/mstore_index.c) in a
 * temporary Maildir: UIDs in arrival order, kept across new/ -> cur/
 * moves and flag renames, never reused after an expunge; flags and
 * keywords across a reopen; corrupt and deleted index files and the
 * UIDVALIDITY rule; two handles syncing in turn; MODSEQ growth.
 */
#include "mstore_index.h"
#include "log.h"
#include "util.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static void
put(const char *sub, const char *name)
{
	struct buf p = BUF_INIT;
	int fd;

	buf_printf(&p, "%s/%s/%s", dir, sub, name);
	fd = open(buf_str(&p), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write_full(fd, "Subject: x\n\nbody\n", 17) < 0 || close(fd) < 0)
		printf("# put %s: %s\n", buf_str(&p), strerror(errno));
	buf_free(&p);
}

static int
mv(const char *from, const char *to)
{
	struct buf a = BUF_INIT, b = BUF_INIT;
	int rc;

	buf_printf(&a, "%s/%s", dir, from);
	buf_printf(&b, "%s/%s", dir, to);
	rc = rename(buf_str(&a), buf_str(&b));
	buf_free(&a);
	buf_free(&b);
	return rc;
}

static int
rm(const char *rel)
{
	struct buf a = BUF_INIT;
	int rc;

	buf_printf(&a, "%s/%s", dir, rel);
	rc = unlink(buf_str(&a));
	buf_free(&a);
	return rc;
}

static int
exists(const char *rel)
{
	struct buf a = BUF_INIT;
	struct stat st;
	int rc;

	buf_printf(&a, "%s/%s", dir, rel);
	rc = stat(buf_str(&a), &st) == 0;
	buf_free(&a);
	return rc;
}

static void
write_index_file(const char *content)
{
	struct buf a = BUF_INIT;

	buf_printf(&a, "%s/%s", dir, MIDX_FILE);
	if (write_file_atomic(buf_str(&a), content, strlen(content), 0600) < 0)
		printf("# write index: %s\n", strerror(errno));
	buf_free(&a);
}

static const char *
base_of(struct mstore_index *ix, uint32_t uid)
{
	struct mstore_index_msg *m = mstore_index_find(ix, uid);

	return m ? m->base : NULL;
}

static void
test_parse(void)
{
	struct mstore_index ix;
	struct buf out = BUF_INIT;
	const char *good = "V2 100 5 9\n1 3 a F:FS K:$Junk,x N:c,S=12:2,FS\n3 9 b N:n\n4 2 c F:T\n";
	const char *v1 = "V1 100 5 9\n1 3 a F:FS K:$Junk,x\n3 9 b\n";
	const char *badn[] = { "V2 1 5 1\n1 1 a N:x\n", "V2 1 5 1\n1 1 a N:c/x\n", "V2 1 5 1\n1 1 a N:cx\n",
	    "V2 1 5 1\n1 1 a N:\n", "V2 1 5 1\n1 1 a N:c:2,S K:x\n", "V2 1 5 1\n1 1 a N:c\x01\n" };
	size_t i;

	memset(&ix, 0, sizeof(ix));
	is_int(mstore_index_parse(&ix, good, strlen(good)), MIDX_PARSE_OK, "parse: good file");
	is_int(ix.n, 3, "parse: 3 entries");
	mstore_index_format(&ix, &out);
	is_str(buf_str(&out), good, "parse: format gives the same bytes");
	is_int(ix.msgs[0].flags, MIDX_FLAGGED | MIDX_SEEN, "parse: F: field");
	is_str(ix.msgs[0].keywords, "$Junk,x", "parse: K: field");
	is_str(ix.msgs[0].name, "cur/a,S=12:2,FS", "parse: N: gives the file name (cur/)");
	is_str(ix.msgs[1].name, "new/b", "parse: N: gives the file name (new/, nothing after the BASENAME)");
	ok(ix.msgs[2].name == NULL, "parse: no N:, no name");
	mstore_index_clear(&ix);
	buf_reset(&out);
	is_int(mstore_index_parse(&ix, v1, strlen(v1)), MIDX_PARSE_OK, "parse: a V1 file (no names)");
	mstore_index_format(&ix, &out);
	is_str(buf_str(&out), "V2 100 5 9\n1 3 a F:FS K:$Junk,x\n3 9 b\n", "parse: a V1 file is written as V2");
	mstore_index_clear(&ix);
	for (i = 0; i < sizeof(badn) / sizeof(badn[0]); i++) {
		is_int(mstore_index_parse(&ix, badn[i], strlen(badn[i])), MIDX_PARSE_SALVAGED,
		    "parse: bad N: field %zu drops the entry", i);
		mstore_index_clear(&ix);
	}

	memset(&ix, 0, sizeof(ix));
	is_int(mstore_index_parse(&ix, "V1 100 5 9\n3 1 a\n2 1 b\n", 23), MIDX_PARSE_SALVAGED,
	    "parse: UIDs not ascending salvaged");
	is_int(ix.n, 1, "parse: the out-of-order entry dropped");
	mstore_index_clear(&ix);

	memset(&ix, 0, sizeof(ix));
	is_int(mstore_index_parse(&ix, "V1 100 5 9\n7 1 a\n", 17), MIDX_PARSE_SALVAGED,
	    "parse: UID >= UIDNEXT salvaged");
	is_int(ix.n, 0, "parse: that entry dropped");
	is_int(ix.uidnext, 8, "parse: UIDNEXT passes every UID seen");
	mstore_index_clear(&ix);

	memset(&ix, 0, sizeof(ix));
	is_int(mstore_index_parse(&ix, "V1 100 5 9\n1 1 a\n2 1 a\n", 23), MIDX_PARSE_SALVAGED,
	    "parse: duplicate basename salvaged");
	is_int(ix.n, 1, "parse: the second one dropped");
	mstore_index_clear(&ix);

	memset(&ix, 0, sizeof(ix));
	is_int(mstore_index_parse(&ix, "V1 100 x 9\n", 11), MIDX_PARSE_BAD, "parse: bad UIDNEXT");
	is_int(ix.uidvalidity, 100, "parse: old UIDVALIDITY still read");
	mstore_index_clear(&ix);

	memset(&ix, 0, sizeof(ix));
	is_int(mstore_index_parse(&ix, "garbage\n", 8), MIDX_PARSE_BAD, "parse: garbage");
	is_int(ix.uidvalidity, 0, "parse: no UIDVALIDITY from garbage");
	mstore_index_clear(&ix);

	memset(&ix, 0, sizeof(ix));
	is_int(mstore_index_parse(&ix, "V1 100 5 9\n1 1 a\n2 1 b", 22), MIDX_PARSE_SALVAGED,
	    "parse: torn last line");
	is_int(ix.n, 1, "parse: torn line dropped");
	mstore_index_clear(&ix);
	buf_free(&out);

	ok(mstore_index_keywords_valid("a,$b"), "keywords: valid");
	ok(!mstore_index_keywords_valid("a,,b") && !mstore_index_keywords_valid("\\Seen")
	    && !mstore_index_keywords_valid("a b"), "keywords: invalid refused");
}

/* Two processes (fcntl locks exclude processes, not handles of one
 * process) each deliver and sync in a loop; every UID either saw given
 * to its own file must be that file's UID in the end, and no UID twice. */
#define RACE_N	40
static void
test_two_processes(void)
{
	uint32_t seen[2][RACE_N];
	int pfd[2][2], k, i, status, good = 1;
	pid_t pid[2];
	struct mstore_index ix;
	struct buf err = BUF_INIT, nm = BUF_INIT;

	for (k = 0; k < 2; k++) {
		if (pipe(pfd[k]) < 0 || (pid[k] = fork()) < 0) {
			ok(0, "fork: %s", strerror(errno));
			return;
		}
		if (pid[k] == 0) {
			struct mstore_index c;
			uint32_t u[RACE_N];

			close(pfd[k][0]);
			if (mstore_index_open(&c, dir, &err) < 0)
				_exit(2);
			for (i = 0; i < RACE_N; i++) {
				struct mstore_index_msg *m;
				size_t j;

				buf_reset(&nm);
				buf_printf(&nm, "1800000000.M%dP%dQ1.race", i, k);
				put("new", buf_str(&nm));
				if (mstore_index_sync(&c, &err) < 0)
					_exit(3);
				for (j = 0, m = NULL; j < c.n; j++)
					if (!strcmp(c.msgs[j].base, buf_str(&nm)))
						m = &c.msgs[j];
				u[i] = m ? m->uid : 0;
			}
			mstore_index_close(&c);
			_exit(write_full(pfd[k][1], u, sizeof(u)) < 0 ? 4 : 0);
		}
		close(pfd[k][1]);
	}
	for (k = 0; k < 2; k++) {
		if (read_full(pfd[k][0], seen[k], sizeof(seen[k])) != (ssize_t)sizeof(seen[k]))
			good = 0;
		close(pfd[k][0]);
		if (waitpid(pid[k], &status, 0) != pid[k] || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			good = 0;
	}
	ok(good, "two processes delivered and synced %d times each", RACE_N);
	is_int(mstore_index_open(&ix, dir, &err), 0, "open after the race");
	for (k = 0; k < 2; k++)
		for (i = 0; i < RACE_N; i++) {
			const char *b = base_of(&ix, seen[k][i]);

			buf_reset(&nm);
			buf_printf(&nm, "1800000000.M%dP%dQ1.race", i, k);
			if (!seen[k][i] || !b || strcmp(b, buf_str(&nm)))
				good = 0;
		}
	ok(good, "every UID a process saw given is its file's UID in the end (so none twice)");
	mstore_index_close(&ix);
	buf_free(&err);
	buf_free(&nm);
}

/* A description (hermod-uidlist.stamp) as describe() writes it, of the
 * folder as it is now: made by the test to show that a sync believes
 * one without listing the folder. */
static void
forge_description(long long listed, int trusted)
{
	static const char *const names[3] = { "new", "cur", MIDX_FILE };
	struct buf out = BUF_INIT, p = BUF_INIT;
	size_t i;

	buf_printf(&out, "S1 %lld %d", listed, trusted);
	for (i = 0; i < 3; i++) {
		struct stat st;

		buf_reset(&p);
		buf_printf(&p, "%s/%s", dir, names[i]);
		if (stat(buf_str(&p), &st) < 0)
			printf("# stat %s: %s\n", buf_str(&p), strerror(errno));
		buf_printf(&out, " %lld.%09ld/%lld.%09ld/%llu/%llu", (long long)st.st_mtim.tv_sec,
		    (long)st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec, (long)st.st_ctim.tv_nsec,
		    (unsigned long long)st.st_ino, (unsigned long long)st.st_size);
	}
	buf_addc(&out, '\n');
	buf_reset(&p);
	buf_printf(&p, "%s/%s", dir, MIDX_STAMP_FILE);
	if (write_file_atomic(buf_str(&p), out.data, out.len, 0600) < 0)
		printf("# write description: %s\n", strerror(errno));
	buf_free(&out);
	buf_free(&p);
}

static int
read_rel(const char *rel, struct buf *out)
{
	struct buf p = BUF_INIT;
	int rc;

	buf_reset(out);
	buf_printf(&p, "%s/%s", dir, rel);
	rc = read_file(buf_str(&p), out, 4096);
	buf_free(&p);
	return rc;
}

/* The description: a listing writes it, a change of ours under the lock
 * keeps it (with the new names in the file's N: fields, so another
 * process finds renamed messages without a listing), a sync believes a
 * young one without listing, an old or removed one makes it list. */
static void
test_described(void)
{
	struct mstore_index a, b;
	struct buf err = BUF_INIT, d = BUF_INIT;
	struct mstore_index_msg *m;
	size_t n0;
	uint32_t u;
	int fd;

	usleep(120000);
	is_int(mstore_index_open(&a, dir, &err), 0, "described: open: %s", buf_str(&err));
	ok(read_rel(MIDX_STAMP_FILE, &d) == 0 && !strncmp(buf_str(&d), "S1 ", 3),
	    "a listing writes the description");
	ok(strstr(buf_str(&d), " 1 ") != NULL, "of a quiet folder: trusted (%s)", buf_str(&d));
	is_int(mstore_index_open(&b, dir, &err), 0, "a second handle: %s", buf_str(&err));
	n0 = b.n;
	u = a.msgs[0].uid;
	is_int(mstore_index_set_flags(&a, u, MIDX_SEEN | MIDX_DRAFT, &err), 0, "a flag change: %s", buf_str(&err));
	ok(read_rel(MIDX_STAMP_FILE, &d) == 0 && strstr(buf_str(&d), " 0 ") != NULL,
	    "after a change of ours: described again, not trusted (%s)", buf_str(&d));
	is_int(mstore_index_sync(&b, &err), 0, "the other handle syncs");
	m = mstore_index_find(&b, u);
	ok(m && m->name && !strcmp(m->name, mstore_index_find(&a, u)->name) && m->flags == (MIDX_SEEN | MIDX_DRAFT),
	    "it has the new name and flags (%s)", m && m->name ? m->name : "-");
	if (m && m->name) {
		struct buf p = BUF_INIT;

		buf_printf(&p, "%s/%s", dir, m->name);
		fd = open(buf_str(&p), O_RDONLY);
		ok(fd >= 0, "and the file opens under it");
		if (fd >= 0)
			close(fd);
		buf_free(&p);
	}
	/* a young description is believed: a file put there by a program
	 * that takes no lock, described away, is not seen... */
	put("cur", "1900000001.M1P1Q1.forged:2,");
	forge_description((long long)time(NULL), 0);
	is_int(mstore_index_sync(&b, &err), 0, "sync under a forged young description");
	is_int(b.n, n0, "a young description is believed without a listing");
	/* ... until a listing is asked for */
	is_int(mstore_index_sync_listed(&b, &err), 0, "mstore_index_sync_listed");
	is_int(b.n, n0 + 1, "a listing finds the file");
	/* an old untrusted description is not believed */
	put("cur", "1900000002.M1P1Q1.forged:2,");
	forge_description((long long)time(NULL) - 5, 0);
	usleep(20000);
	is_int(mstore_index_sync(&b, &err), 0, "sync under an old untrusted description");
	is_int(b.n, n0 + 2, "an old untrusted description makes the sync list");
	/* mstore_index_undescribe (what local and popd call) removes it */
	ok(exists(MIDX_STAMP_FILE), "described again by that listing");
	mstore_index_undescribe(dir);
	ok(!exists(MIDX_STAMP_FILE), "mstore_index_undescribe removes the description");
	put("cur", "1900000003.M1P1Q1.forged:2,");
	is_int(mstore_index_sync(&a, &err), 0, "sync after an undescribed change");
	is_int(a.n, n0 + 3, "it lists and sees the new file");
	mstore_index_close(&a);
	mstore_index_close(&b);
	buf_free(&err);
	buf_free(&d);
}

/* The sync's fast path (stamps) never hides a change, however soon
 * after the last sync it comes; mstore_index_change does several
 * changes under one lock. */
static void
test_fast_path(void)
{
	struct mstore_index a;
	struct mstore_index_change c[3];
	struct buf err = BUF_INIT;
	struct mstore_index_msg *m;
	uint32_t u1, u2;
	int i;

	is_int(mstore_index_open(&a, dir, &err), 0, "fast path: open: %s", buf_str(&err));
	usleep(120000);
	is_int(mstore_index_sync(&a, &err), 0, "a sync after a quiet spell");
	ok(a.stamp_ok, "quiet folder: the stamps are taken");
	is_int(mstore_index_sync(&a, &err), 0, "a sync with nothing changed");
	ok(a.stamp_ok && a.nexpunged == 0, "nothing changed: fast path, nothing expunged");
	u1 = a.msgs[0].uid;
	u2 = a.msgs[1].uid;
	/* a rename by another program right after a sync (the same clock
	 * tick as the directory's stamp) is seen by the next sync */
	for (i = 0; i < 20; i++) {
		struct buf to = BUF_INIT, from = BUF_INIT;
		unsigned want = i % 2 ? MIDX_SEEN : (MIDX_SEEN | MIDX_FLAGGED);

		m = mstore_index_find(&a, u1);
		if (!m)
			break;
		buf_adds(&from, m->name);
		buf_printf(&to, "cur/%s:2,%s", m->base, i % 2 ? "S" : "FS");
		(void)mstore_index_sync(&a, &err);
		if (mv(buf_str(&from), buf_str(&to)) < 0)
			printf("# mv: %s\n", strerror(errno));
		is_int(mstore_index_sync(&a, &err), 0, "sync %d", i);
		m = mstore_index_find(&a, u1);
		ok(m && m->flags == want && !strcmp(m->name, buf_str(&to)),
		    "an outside rename right after a sync is seen (%d)", i);
		buf_free(&to);
		buf_free(&from);
	}
	/* and after a quiet spell, when the stamps are trusted */
	usleep(120000);
	(void)mstore_index_sync(&a, &err);
	ok(a.stamp_ok, "trusted stamps again");
	m = mstore_index_find(&a, u2);
	if (m) {
		struct buf from = BUF_INIT;

		buf_adds(&from, m->name);
		ok(rm(buf_str(&from)) == 0, "remove a message from outside");
		buf_free(&from);
	}
	is_int(mstore_index_sync(&a, &err), 0, "sync after the removal");
	ok(!mstore_index_find(&a, u2) && a.nexpunged == 1 && a.expunged[0] == u2,
	    "the removal is seen through trusted stamps");
	/* several changes under one lock */
	memset(c, 0, sizeof(c));
	c[0].uid = u1;
	c[0].flags = MIDX_SEEN | MIDX_REPLIED;
	c[0].set_keywords = 1;
	c[0].keywords = "$Forwarded,work";
	c[1].uid = u2;		/* gone */
	c[1].flags = MIDX_SEEN;
	c[2].uid = a.msgs[a.n - 1].uid;
	c[2].flags = MIDX_TRASHED;
	is_int(mstore_index_change(&a, c, 3, &err), 0, "mstore_index_change of three: %s", buf_str(&err));
	ok(c[0].result == 0 && c[1].result == 1 && c[2].result == 0, "results: done, gone, done");
	m = mstore_index_find(&a, u1);
	ok(m && m->flags == (MIDX_SEEN | MIDX_REPLIED) && m->keywords && !strcmp(m->keywords, "$Forwarded,work") &&
	    strstr(m->name, ":2,RS"), "flags renamed into the name, keywords kept");
	mstore_index_close(&a);
	is_int(mstore_index_open(&a, dir, &err), 0, "reopen");
	m = mstore_index_find(&a, u1);
	ok(m && m->keywords && !strcmp(m->keywords, "$Forwarded,work") && m->flags == (MIDX_SEEN | MIDX_REPLIED),
	    "the changes are in the file");
	m = mstore_index_find(&a, c[2].uid);
	ok(m && m->flags == MIDX_TRASHED, "the third change too");
	memset(c, 0, sizeof(c));
	c[0].uid = u1;
	c[0].set_keywords = 1;
	c[0].keywords = "bad keyword";
	is_int(mstore_index_change(&a, c, 1, &err), -1, "a bad keyword list is refused");
	mstore_index_close(&a);
	buf_free(&err);
}

int
main(void)
{
	struct mstore_index a, b;
	struct buf err = BUF_INIT;
	struct mstore_index_msg *m;
	uint32_t uv, uv2;
	uint64_t ms;
	struct buf cmd = BUF_INIT;

	log_init("test_mstore_index", LOG_FLAG_STDERR);
	test_parse();

	snprintf(dir, sizeof(dir), "/tmp/hermod-midx.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	/* listed out of arrival order on purpose */
	is_int(mstore_index_open(&a, dir, &err), 0, "open an empty Maildir: %s", buf_str(&err));
	mstore_index_close(&a);
	put("new", "1700000300.M1P1Q1.h,S=17");
	put("new", "1700000100.M1P1Q1.h,S=17");
	put("cur", "1700000200.M1P1Q1.h,S=17:2,S");
	is_int(mstore_index_open(&a, dir, &err), 0, "first sync: %s", buf_str(&err));
	is_int(a.n, 3, "three messages");
	is_str(base_of(&a, 1), "1700000100.M1P1Q1.h", "UID 1 is the oldest");
	is_str(base_of(&a, 2), "1700000200.M1P1Q1.h", "UID 2 is the next");
	is_str(base_of(&a, 3), "1700000300.M1P1Q1.h", "UID 3 is the newest");
	is_int(a.uidnext, 4, "UIDNEXT 4");
	m = mstore_index_find(&a, 2);
	ok(m && m->flags == MIDX_SEEN && !strcmp(m->name, "cur/1700000200.M1P1Q1.h,S=17:2,S"),
	    "flags and name from the file name");
	uv = a.uidvalidity;
	ok(uv > 0, "UIDVALIDITY set");

	/* a new delivery */
	ms = a.highestmodseq;
	put("new", "1700000400.M1P1Q1.h,S=17");
	is_int(mstore_index_sync(&a, &err), 0, "sync after a delivery");
	is_str(base_of(&a, 4), "1700000400.M1P1Q1.h", "the new message gets UID 4");
	ok(a.highestmodseq > ms, "MODSEQ grows with a delivery");

	/* moved to cur/ by popd (which adds W=) and given flags */
	ok(mv("new/1700000100.M1P1Q1.h,S=17", "cur/1700000100.M1P1Q1.h,S=17,W=18:2,RS") == 0,
	    "move new -> cur with flags");
	ms = a.highestmodseq;
	is_int(mstore_index_sync(&a, &err), 0, "sync after the move");
	m = mstore_index_find(&a, 1);
	ok(m && !strcmp(m->name, "cur/1700000100.M1P1Q1.h,S=17,W=18:2,RS"), "UID 1 kept after the move");
	ok(m && m->flags == (MIDX_REPLIED | MIDX_SEEN), "its new flags seen");
	ok(m && m->modseq > ms && a.highestmodseq > ms, "MODSEQ grows with an outside flag change");
	is_int(a.nexpunged, 0, "nothing expunged by a move");

	/* expunged by someone else */
	ok(rm("new/1700000300.M1P1Q1.h,S=17") == 0, "expunge UID 3 outside");
	ms = a.highestmodseq;
	is_int(mstore_index_sync(&a, &err), 0, "sync after the expunge");
	ok(a.nexpunged == 1 && a.expunged[0] == 3, "UID 3 reported expunged");
	ok(mstore_index_find(&a, 3) == NULL, "UID 3 gone");
	ok(a.highestmodseq > ms, "MODSEQ grows with an expunge");
	put("new", "1600000000.M1P1Q1.h");	/* an old time, delivered late */
	is_int(mstore_index_sync(&a, &err), 0, "sync after another delivery");
	is_str(base_of(&a, 5), "1600000000.M1P1Q1.h", "UID 3 not reused: 5 given");
	is_int(a.nexpunged, 0, "expunged list is per sync");
	is_int(mstore_index_open(&b, dir, &err), 0, "a second handle");
	ok(rm("new/1600000000.M1P1Q1.h") == 0 && mstore_index_sync(&b, &err) == 0 &&
	    b.nexpunged == 1 && b.expunged[0] == 5, "b drops UID 5");
	is_int(mstore_index_sync(&a, &err), 0, "a syncs after b dropped it");
	ok(a.nexpunged == 1 && a.expunged[0] == 5, "a reports UID 5 expunged too");
	mstore_index_close(&b);
	put("new", "1600000000.M1P1Q1.h");	/* the same name again: a new message */
	is_int(mstore_index_sync(&a, &err), 0, "sync after a redelivery");
	is_str(base_of(&a, 6), "1600000000.M1P1Q1.h", "a re-used name gets a new UID");

	/* flags through the API */
	ms = a.highestmodseq;
	is_int(mstore_index_set_flags(&a, 4, MIDX_FLAGGED | MIDX_TRASHED, &err), 0, "set flags: %s", buf_str(&err));
	ok(exists("cur/1700000400.M1P1Q1.h,S=17:2,FT") && !exists("new/1700000400.M1P1Q1.h,S=17"),
	    "set flags renamed the file into cur/");
	m = mstore_index_find(&a, 4);
	ok(m && m->modseq > ms && a.highestmodseq == m->modseq, "set flags bumps MODSEQ");
	is_int(mstore_index_set_flags(&a, 3, MIDX_SEEN, &err), 1, "set flags on an expunged UID");
	ok(mv("cur/1700000200.M1P1Q1.h,S=17:2,S", "cur/1700000200.M1P1Q1.h,S=17:2,Sab") == 0,
	    "a name with other letters");
	is_int(mstore_index_set_flags(&a, 2, MIDX_DRAFT | MIDX_SEEN, &err), 0, "set flags keeps other letters");
	ok(exists("cur/1700000200.M1P1Q1.h,S=17:2,DSab"), "letters in ASCII order");

	/* keywords */
	ms = a.highestmodseq;
	is_int(mstore_index_set_keywords(&a, 1, "$Forwarded,work", &err), 0, "set keywords");
	m = mstore_index_find(&a, 1);
	ok(m && m->modseq > ms, "set keywords bumps MODSEQ");
	is_int(mstore_index_set_keywords(&a, 1, "bad word", &err), -1, "bad keywords refused");
	ms = a.highestmodseq;
	mstore_index_close(&a);

	is_int(mstore_index_open(&a, dir, &err), 0, "reopen");
	is_int(a.uidvalidity, uv, "same UIDVALIDITY after a reopen");
	m = mstore_index_find(&a, 4);
	ok(m && m->flags == (MIDX_FLAGGED | MIDX_TRASHED), "flags survive a reopen");
	m = mstore_index_find(&a, 1);
	ok(m && m->keywords && !strcmp(m->keywords, "$Forwarded,work"), "keywords survive a reopen");
	is_int(a.highestmodseq, ms, "HIGHESTMODSEQ survives a reopen");
	is_int(a.rebuilt, 0, "no rebuild of a good file");

	/* two handles syncing in turn */
	is_int(mstore_index_open(&b, dir, &err), 0, "second handle");
	put("new", "1700000500.M1P1Q1.h");
	is_int(mstore_index_sync(&a, &err), 0, "handle a syncs");
	put("new", "1700000600.M1P1Q1.h");
	is_int(mstore_index_sync(&b, &err), 0, "handle b syncs");
	is_str(base_of(&b, 7), "1700000500.M1P1Q1.h", "b sees a's UID 7");
	is_str(base_of(&b, 8), "1700000600.M1P1Q1.h", "b gives 8 to its new file");
	put("new", "1700000700.M1P1Q1.h");
	is_int(mstore_index_sync(&a, &err), 0, "handle a syncs again");
	is_str(base_of(&a, 8), "1700000600.M1P1Q1.h", "a agrees on UID 8");
	is_str(base_of(&a, 9), "1700000700.M1P1Q1.h", "a gives 9");
	is_int(a.uidnext, 10, "UIDNEXT 10");
	mstore_index_close(&b);

	/* corrupt shapes that keep the UIDVALIDITY */
	{
		struct buf s = BUF_INIT;

		buf_printf(&s, "V1 %u 10 %llu\n1 1 1700000100.M1P1Q1.h\n"
		    "2 1 1700000200.M1P1Q1.h\n2 1 1700000400.M1P1Q1.h\n", (unsigned)uv,
		    (unsigned long long)a.highestmodseq);
		write_index_file(buf_str(&s));
		buf_free(&s);
	}
	ms = a.highestmodseq;
	is_int(mstore_index_sync(&a, &err), 0, "sync with a salvageable file");
	ok(a.rebuilt && a.uidvalidity == uv, "salvaged: UIDVALIDITY kept");
	is_str(base_of(&a, 1), "1700000100.M1P1Q1.h", "salvaged: UID 1 kept");
	is_str(base_of(&a, 2), "1700000200.M1P1Q1.h", "salvaged: UID 2 kept");
	ok(a.uidnext > 10 && mstore_index_find(&a, 9) == NULL, "salvaged: lost entries get new UIDs >= 10");
	ok(a.highestmodseq >= ms, "salvaged: HIGHESTMODSEQ not lower");

	/* unusable header: a new, greater UIDVALIDITY */
	{
		struct buf s = BUF_INIT;

		buf_printf(&s, "V1 %u oops\n1 1 x\n", (unsigned)a.uidvalidity);
		write_index_file(buf_str(&s));
		buf_free(&s);
	}
	uv = a.uidvalidity;
	mstore_index_close(&a);
	is_int(mstore_index_open(&a, dir, &err), 0, "open with a bad header");
	ok(a.rebuilt && a.uidvalidity > uv, "bad header: UIDVALIDITY greater than the old");
	is_int(a.n, 7, "bad header: every file listed again");
	is_str(base_of(&a, 1), "1600000000.M1P1Q1.h", "bad header: UIDs in arrival order");
	m = mstore_index_find(&a, 4);
	ok(m && m->flags == (MIDX_FLAGGED | MIDX_TRASHED), "bad header: flags kept (they are in the names)");
	uv = a.uidvalidity;
	mstore_index_close(&a);

	write_index_file("\001\002 binary\n\n\n");
	is_int(mstore_index_open(&a, dir, &err), 0, "open with garbage");
	ok(a.rebuilt && a.uidvalidity > uv, "garbage: UIDVALIDITY greater (from the lock file)");
	uv = a.uidvalidity;
	mstore_index_close(&a);

	write_index_file("");
	is_int(mstore_index_open(&a, dir, &err), 0, "open with an empty file");
	ok(a.rebuilt && a.uidvalidity > uv, "empty: UIDVALIDITY greater");
	uv = a.uidvalidity;
	mstore_index_close(&a);

	/* deleted index */
	ok(rm(MIDX_FILE) == 0, "delete the index");
	is_int(mstore_index_open(&a, dir, &err), 0, "open without the index");
	ok(a.uidvalidity > uv, "deleted: a new UIDVALIDITY");
	is_int(a.n, 7, "deleted: no mail lost");
	uv2 = a.uidvalidity;
	ok(rm(MIDX_FILE) == 0 && mstore_index_sync(&a, &err) == 0 && a.uidvalidity > uv2,
	    "deleted under an open handle: a new UIDVALIDITY");
	mstore_index_close(&a);

	test_two_processes();
	test_fast_path();
	test_described();

	buf_printf(&cmd, "rm -rf '%s'", dir);
	if (system(buf_str(&cmd)) != 0)
		printf("# cleanup of %s failed\n", dir);
	buf_free(&cmd);
	buf_free(&err);
	return done_testing();
}
