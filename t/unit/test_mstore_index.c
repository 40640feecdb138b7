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

/* The change log's records applied to an index parsed from BASE_FILE:
 * rc of mstore_index_apply_log, with *used. */
#define BASE_FILE	"V2 100 5 9\n1 3 a F:S N:c:2,S\n3 9 b N:n\n"

static int
apply(struct mstore_index *ix, const char *log, size_t *used)
{
	memset(ix, 0, sizeof(*ix));
	if (mstore_index_parse(ix, BASE_FILE, strlen(BASE_FILE)) != MIDX_PARSE_OK)
		printf("# the base file does not parse\n");
	*used = (size_t)-1;
	return mstore_index_apply_log(ix, log, strlen(log), used);
}

/* ix is BASE_FILE as parsed: nothing of a refused batch was applied */
static int
untouched(struct mstore_index *ix)
{
	struct buf out = BUF_INIT;
	int rc;

	mstore_index_format(ix, &out);
	rc = !strcmp(buf_str(&out), BASE_FILE) && ix->nexpunged == 0;
	buf_free(&out);
	return rc;
}

static void
test_apply_log(void)
{
	struct mstore_index ix;
	struct mstore_index_msg *m;
	size_t used;
	const char *l;
	static const char *const bad[] = { "x 1\nC 5 9\n", "+ garbage\nC 5 9\n", "- 0\nC 5 9\n",
	    "- x\nC 5 9\n", "C 5\n", "C 5 9 1\n", "C 0 9\n", "C 5 09\n", "-  3\nC 5 9\n", "+\nC 5 9\n",
	    "- 3 \nC 5 9\n", "\nC 5 9\n", "+ 1 10 a F:SF N:c\nC 5 10\n" };
	size_t i;

	/* an update of an existing UID */
	l = "+ 1 10 a F:FS K:x,$y N:c,S=3:2,FS\nC 5 10\n";
	is_int(apply(&ix, l, &used), 0, "log: an update applies");
	is_int(used, strlen(l), "log: used is the whole batch");
	m = mstore_index_find(&ix, 1);
	ok(m && m->flags == (MIDX_FLAGGED | MIDX_SEEN) && m->modseq == 10 && m->keywords &&
	    !strcmp(m->keywords, "x,$y") && m->name &&
	    !strcmp(m->name, "cur/a,S=3:2,FS"), "log: the entry is replaced (flags, keywords, MODSEQ, name)");
	ok(ix.n == 2 && ix.highestmodseq == 10 && ix.uidnext == 5 && ix.nexpunged == 0,
	    "log: n 2, HIGHESTMODSEQ 10, UIDNEXT 5, nothing expunged");
	mstore_index_clear(&ix);

	/* an add with a new, higher UID */
	l = "+ 7 11 c N:n,S=9\nC 8 11\n";
	is_int(apply(&ix, l, &used), 0, "log: an add applies");
	m = mstore_index_find(&ix, 7);
	ok(ix.n == 3 && m && m == &ix.msgs[2] && !strcmp(m->base, "c") && !strcmp(m->name, "new/c,S=9"),
	    "log: the new entry is last, with its name");
	ok(ix.uidnext == 8 && ix.highestmodseq == 11, "log: UIDNEXT 8, HIGHESTMODSEQ 11");
	mstore_index_clear(&ix);
	/* ... whose C line lags behind it: UIDNEXT still passes the UID */
	is_int(apply(&ix, "+ 7 11 c N:n\nC 5 9\n", &used), 0, "log: an add with a low C line");
	ok(ix.uidnext == 8 && ix.highestmodseq == 11, "log: UIDNEXT and HIGHESTMODSEQ pass the entry");
	mstore_index_clear(&ix);

	/* a drop */
	l = "- 3\nC 5 10\n";
	is_int(apply(&ix, l, &used), 0, "log: a drop applies");
	ok(ix.n == 1 && !mstore_index_find(&ix, 3) && ix.nexpunged == 1 && ix.expunged[0] == 3,
	    "log: UID 3 gone, in expunged");
	ok(ix.highestmodseq == 10 && ix.uidnext == 5, "log: HIGHESTMODSEQ from the C line");
	mstore_index_clear(&ix);
	is_int(apply(&ix, "- 4\nC 5 9\n", &used), 0, "log: a drop of an unknown UID is no error");
	ok(ix.n == 2 && ix.nexpunged == 0, "log: and changes nothing");
	mstore_index_clear(&ix);

	/* C alone raises, never lowers */
	is_int(apply(&ix, "C 20 30\n", &used), 0, "log: an empty batch");
	ok(ix.uidnext == 20 && ix.highestmodseq == 30 && ix.n == 2, "log: C raises UIDNEXT and HIGHESTMODSEQ");
	is_int(mstore_index_apply_log(&ix, "C 2 3\n", 6, &used), 0, "log: a C line below");
	ok(ix.uidnext == 20 && ix.highestmodseq == 30 && used == 6, "log: does not lower them");
	mstore_index_clear(&ix);

	/* several batches, the last torn */
	{
		const char *b1 = "+ 1 10 a N:c:2,\nC 5 10\n", *b2 = "- 1\nC 5 11\n";
		struct buf lg = BUF_INIT;

		buf_printf(&lg, "%s%s+ 3 12 b F:S N:c:2,S\n- 1\n", b1, b2);
		is_int(apply(&ix, buf_str(&lg), &used), 0, "log: a torn last batch is no error");
		is_int(used, strlen(b1) + strlen(b2), "log: used stops after the last C line");
		m = mstore_index_find(&ix, 3);
		ok(m && m->flags == 0 && m->modseq == 9 && ix.highestmodseq == 11,
		    "log: nothing of the torn batch applied");
		ok(!mstore_index_find(&ix, 1) && ix.nexpunged == 1, "log: the whole batches applied");
		mstore_index_clear(&ix);
		buf_reset(&lg);
		buf_printf(&lg, "%s- 3\nC 5 1", b1);
		is_int(apply(&ix, buf_str(&lg), &used), 0, "log: a C line without its LF");
		ok(used == strlen(b1) && mstore_index_find(&ix, 3), "log: is torn too");
		mstore_index_clear(&ix);
		buf_free(&lg);
	}

	/* malformed */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = apply(&ix, bad[i], &used);

		ok(rc == -1 && used == 0 && untouched(&ix), "log: malformed %zu refused, nothing applied", i);
		mstore_index_clear(&ix);
	}
	l = "- 3\nC 5 10\n";
	{
		struct buf lg = BUF_INIT;

		buf_printf(&lg, "%s+ 1 11 a N:c:2,\nbad\nC 5 11\n", l);
		is_int(apply(&ix, buf_str(&lg), &used), -1, "log: a malformed line after a good batch");
		ok(used == strlen(l) && !mstore_index_find(&ix, 3) && mstore_index_find(&ix, 1)->modseq == 3,
		    "log: used stops after the good batch, which is applied");
		mstore_index_clear(&ix);
		buf_free(&lg);
	}

	/* refused batches */
	is_int(apply(&ix, "+ 2 10 z N:n\nC 5 10\n", &used), -1, "log: an add below the last UID refused");
	ok(used == 0 && untouched(&ix), "log: nothing applied");
	mstore_index_clear(&ix);
	is_int(apply(&ix, "+ 7 10 z N:n\n+ 6 10 y N:n\nC 8 10\n", &used), -1,
	    "log: adds not ascending refused");
	ok(used == 0 && untouched(&ix), "log: nothing applied");
	mstore_index_clear(&ix);
	is_int(apply(&ix, "+ 6 10 a N:n\nC 7 10\n", &used), -1, "log: an add with an existing BASENAME refused");
	ok(used == 0 && untouched(&ix), "log: nothing applied");
	mstore_index_clear(&ix);
	is_int(apply(&ix, "+ 6 10 z N:n\n+ 7 10 z N:n\nC 8 10\n", &used), -1,
	    "log: two adds with one BASENAME refused");
	mstore_index_clear(&ix);
	is_int(apply(&ix, "+ 1 10 zz N:c:2,\nC 5 10\n", &used), -1, "log: an update changing the BASENAME refused");
	ok(used == 0 && untouched(&ix), "log: nothing applied");
	mstore_index_clear(&ix);
	is_int(apply(&ix, "+ 1 10 a F:S\nC 5 10\n", &used), -1, "log: an entry without N: refused");
	ok(used == 0 && untouched(&ix), "log: nothing applied");
	mstore_index_clear(&ix);
	is_int(apply(&ix, "+ 4294967295 10 z N:n\nC 5 10\n", &used), -1, "log: an add of UID 2^32-1 refused");
	mstore_index_clear(&ix);

	/* a drop, then an update of the same UID in one batch: the drop wins
	 * (the entry is gone, not put back), whether or not the UID was the
	 * last one */
	is_int(apply(&ix, "- 1\n+ 1 10 a N:c:2,\nC 5 10\n", &used), 0, "log: drop then update (not the last UID)");
	ok(!mstore_index_find(&ix, 1) && ix.n == 1 && ix.nexpunged == 1 && ix.expunged[0] == 1,
	    "log: UID 1 stays dropped");
	mstore_index_clear(&ix);
	is_int(apply(&ix, "- 3\n+ 3 10 b N:c:2,\nC 5 10\n", &used), 0, "log: drop then update (the last UID)");
	ok(!mstore_index_find(&ix, 3) && ix.n == 1 && ix.nexpunged == 1 && ix.expunged[0] == 3,
	    "log: UID 3 stays dropped (n %zu, expunged %zu)", ix.n, ix.nexpunged);
	mstore_index_clear(&ix);
	/* a UID once dropped never comes back, not even in a later batch:
	 * a writer gives UIDNEXT and up, so an add below UIDNEXT is refused */
	l = "- 3\nC 5 10\n";
	{
		struct buf lg = BUF_INIT;

		buf_printf(&lg, "%s+ 3 11 b N:n\nC 5 11\n", l);
		is_int(apply(&ix, buf_str(&lg), &used), -1, "log: an add of a UID dropped by an earlier batch refused");
		ok(used == strlen(l) && !mstore_index_find(&ix, 3), "log: UID 3 stays dropped");
		mstore_index_clear(&ix);
		buf_free(&lg);
	}
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
read_rel_max(const char *rel, struct buf *out, size_t max)
{
	struct buf p = BUF_INIT;
	int rc;

	buf_reset(out);
	buf_printf(&p, "%s/%s", dir, rel);
	rc = read_file(buf_str(&p), out, max);
	buf_free(&p);
	return rc;
}

static int
read_rel(const char *rel, struct buf *out)
{
	return read_rel_max(rel, out, 4096);
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

/* --- the change log on disk ----------------------------------------- */

static int
stat_rel(const char *rel, struct stat *st)
{
	struct buf a = BUF_INIT;
	int rc;

	buf_printf(&a, "%s/%s", dir, rel);
	rc = stat(buf_str(&a), st);
	if (rc < 0)
		memset(st, 0, sizeof(*st));
	buf_free(&a);
	return rc;
}

/* the index file is the one stamped in st (not written again) */
static int
same_index_file(const struct stat *st)
{
	struct stat now;

	return stat_rel(MIDX_FILE, &now) == 0 && now.st_ino == st->st_ino &&
	    now.st_mtim.tv_sec == st->st_mtim.tv_sec && now.st_mtim.tv_nsec == st->st_mtim.tv_nsec;
}

static void
write_rel(const char *rel, const char *data, size_t n, int append)
{
	struct buf a = BUF_INIT;
	int fd;

	buf_printf(&a, "%s/%s", dir, rel);
	fd = open(buf_str(&a), O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0600);
	if (fd < 0 || write_full(fd, data, n) < 0 || close(fd) < 0)
		printf("# write %s: %s\n", buf_str(&a), strerror(errno));
	buf_free(&a);
}

static int
read_big(const char *rel, struct buf *out)
{
	return read_rel_max(rel, out, MIDX_MAX_FILE);
}

static const char *
str0(const char *s)
{
	return s ? s : "";
}

/* Two handles agree on everything the index holds; else a diagnostic. */
static int
same_state(struct mstore_index *x, struct mstore_index *y, const char *what)
{
	size_t i;

	if (x->uidvalidity != y->uidvalidity || x->uidnext != y->uidnext ||
	    x->highestmodseq != y->highestmodseq || x->n != y->n) {
		printf("# %s: header %u/%u/%llu/%zu vs %u/%u/%llu/%zu\n", what, (unsigned)x->uidvalidity,
		    (unsigned)x->uidnext, (unsigned long long)x->highestmodseq, x->n, (unsigned)y->uidvalidity,
		    (unsigned)y->uidnext, (unsigned long long)y->highestmodseq, y->n);
		return 0;
	}
	for (i = 0; i < x->n; i++) {
		struct mstore_index_msg *a = &x->msgs[i], *b = &y->msgs[i];

		if (a->uid != b->uid || a->modseq != b->modseq || a->flags != b->flags ||
		    strcmp(a->base, b->base) || strcmp(str0(a->name), str0(b->name)) ||
		    strcmp(str0(a->keywords), str0(b->keywords))) {
			printf("# %s: UID %u %llu %s %s %x %s vs UID %u %llu %s %s %x %s\n", what,
			    (unsigned)a->uid, (unsigned long long)a->modseq, a->base, str0(a->name), a->flags,
			    str0(a->keywords), (unsigned)b->uid, (unsigned long long)b->modseq, b->base,
			    str0(b->name), b->flags, str0(b->keywords));
			return 0;
		}
	}
	return 1;
}

/* Every entry's name is a file of the folder with the entry's flags,
 * and every file of the folder is an entry. */
static int
matches_folder(struct mstore_index *ix, size_t files, const char *what)
{
	size_t i;

	for (i = 0; i < ix->n; i++) {
		struct mstore_index_msg *m = &ix->msgs[i];
		const char *info = m->name ? strstr(m->name, ":2,") : NULL;

		if (!m->name || !exists(m->name) ||
		    m->flags != (info ? mstore_index_flags_parse(info + 3) : 0)) {
			printf("# %s: UID %u name %s flags %x: not what is on disk\n", what,
			    (unsigned)m->uid, str0(m->name), m->flags);
			return 0;
		}
	}
	if (ix->n != files)
		printf("# %s: %zu entries, %zu files\n", what, ix->n, files);
	return ix->n == files;
}

static const char *
log_rel(void)
{
	return MIDX_LOG_FILE;
}

/*
 * FOLDER/hermod-uidlist.log: changes of a few messages are appended to
 * it and the index file stays; another handle reads them; APPEND and
 * EXPUNGE through begin/add/drop/commit; the fold into a new file when
 * the log grows; a torn batch, a stale log, a log removed by hand and an
 * index removed under a log.
 */
static void
test_log_folder(void)
{
	char saved[sizeof(dir)];
	struct mstore_index a, b, c;
	struct mstore_index_change ch[3];
	struct mstore_index_msg *m, *mb;
	struct buf err = BUF_INIT, lg = BUF_INIT, kw = BUF_INIT, cmd = BUF_INIT;
	struct stat st, st2;
	uint32_t u[3], un, uv;
	uint64_t ms;
	size_t files = 3, i, off;
	int k, folded;

	memcpy(saved, dir, sizeof(dir));
	snprintf(dir, sizeof(dir), "/tmp/hermod-midxlog.XXXXXX");
	if (!mkdtemp(dir)) {
		ok(0, "log: mkdtemp: %s", strerror(errno));
		memcpy(dir, saved, sizeof(dir));
		return;
	}
	is_int(mstore_index_open(&a, dir, &err), 0, "log: make the Maildir: %s", buf_str(&err));
	mstore_index_close(&a);
	put("new", "1700000100.M1P1Q1.l,S=17");
	put("new", "1700000200.M1P1Q1.l,S=17");
	put("new", "1700000300.M1P1Q1.l,S=17");
	is_int(mstore_index_open(&a, dir, &err), 0, "log: open a: %s", buf_str(&err));
	is_int(mstore_index_open(&b, dir, &err), 0, "log: open b: %s", buf_str(&err));
	is_int(a.n, 3, "log: three messages");
	if (a.n != 3) {
		mstore_index_close(&a);
		mstore_index_close(&b);
		memcpy(dir, saved, sizeof(dir));
		return;
	}
	for (i = 0; i < 3; i++)
		u[i] = a.msgs[i].uid;
	ok(!exists(log_rel()), "log: none after a listing");

	/* flags and keywords go to the log, the index file stays */
	stat_rel(MIDX_FILE, &st);
	ms = a.highestmodseq;
	is_int(mstore_index_set_flags(&a, u[0], MIDX_SEEN, &err), 0, "log: set flags: %s", buf_str(&err));
	is_int(mstore_index_set_keywords(&a, u[1], "work,$Junk", &err), 0, "log: set keywords: %s", buf_str(&err));
	memset(ch, 0, sizeof(ch));
	ch[0].uid = u[2];
	ch[0].flags = MIDX_FLAGGED | MIDX_REPLIED;
	ch[0].set_keywords = 1;
	ch[0].keywords = "$Forwarded";
	ch[1].uid = u[0];
	ch[1].flags = MIDX_SEEN | MIDX_DRAFT;
	is_int(mstore_index_change(&a, ch, 2, &err), 0, "log: change of two: %s", buf_str(&err));
	ok(same_index_file(&st), "log: the index file is not written again (same inode and mtime)");
	ok(exists(log_rel()), "log: %s exists", MIDX_LOG_FILE);
	ok(read_big(log_rel(), &lg) == 0 && !strncmp(buf_str(&lg), "L1 ", 3) &&
	    lg.len && lg.data[lg.len - 1] == '\n', "log: it starts with its header and ends with a line");
	ok(a.highestmodseq == ms + 4, "log: four changes, four MODSEQs");

	/* b reads the log */
	is_int(mstore_index_sync(&b, &err), 0, "log: b syncs: %s", buf_str(&err));
	m = mstore_index_find(&b, u[0]);
	ok(m && m->flags == (MIDX_SEEN | MIDX_DRAFT) && m->name && exists(m->name),
	    "log: b sees the new flags and name of UID %u", (unsigned)u[0]);
	m = mstore_index_find(&b, u[1]);
	ok(m && m->keywords && !strcmp(m->keywords, "work,$Junk"), "log: b sees the keywords");
	m = mstore_index_find(&b, u[2]);
	ok(m && m->flags == (MIDX_FLAGGED | MIDX_REPLIED) && m->keywords && !strcmp(m->keywords, "$Forwarded"),
	    "log: b sees the change of both");
	ok(same_state(&a, &b, "a/b") && b.highestmodseq == ms + 4, "log: b agrees with a, MODSEQs included");
	ok(same_index_file(&st), "log: b's sync wrote nothing either");

	/* APPEND: a file moved into new/ under the lock, told to the index */
	un = a.uidnext;
	put("tmp", "1700000400.M1P1Q1.l,S=17");
	is_int(mstore_index_begin(&a, &err), 0, "log: begin: %s", buf_str(&err));
	ok(mv("tmp/1700000400.M1P1Q1.l,S=17", "new/1700000400.M1P1Q1.l,S=17") == 0, "log: the file into new/");
	u[0] = 0;
	is_int(mstore_index_add(&a, "new/1700000400.M1P1Q1.l,S=17", "kw", &u[0]), 0, "log: add");
	is_int(mstore_index_commit(&a, &err), 0, "log: commit: %s", buf_str(&err));
	files++;
	is_int(u[0], un, "log: the added message gets UIDNEXT (%u)", (unsigned)un);
	is_int(a.uidnext, un + 1, "log: UIDNEXT goes up");
	ok(same_index_file(&st), "log: an add goes to the log too");
	is_int(mstore_index_sync(&b, &err), 0, "log: b syncs");
	m = mstore_index_find(&b, un);
	ok(m && !strcmp(m->base, "1700000400.M1P1Q1.l") && m->name &&
	    !strcmp(m->name, "new/1700000400.M1P1Q1.l,S=17") && m->keywords && !strcmp(m->keywords, "kw"),
	    "log: b sees it under its UID, with name and keywords");
	ok(same_state(&a, &b, "a/b after the add"), "log: b agrees with a");

	/* EXPUNGE: a file removed under the lock, told to the index */
	m = mstore_index_find(&a, u[1]);
	is_int(mstore_index_begin(&a, &err), 0, "log: begin for an expunge");
	ok(m && rm(mstore_index_find(&a, u[1])->name) == 0, "log: unlink UID %u", (unsigned)u[1]);
	mstore_index_drop(&a, u[1]);
	is_int(mstore_index_commit(&a, &err), 0, "log: commit of the drop: %s", buf_str(&err));
	files--;
	ok(!mstore_index_find(&a, u[1]), "log: a has dropped it");
	ok(same_index_file(&st), "log: a drop goes to the log too");
	is_int(mstore_index_sync(&b, &err), 0, "log: b syncs after the drop");
	ok(!mstore_index_find(&b, u[1]) && b.nexpunged == 1 && b.expunged[0] == u[1],
	    "log: b has lost it and reports it expunged");
	ok(same_state(&a, &b, "a/b after the drop") && matches_folder(&b, files, "b"),
	    "log: b agrees with a and with the folder");

	/* a change after a quiet spell (the description no longer young) */
	usleep(1100000);
	stat_rel(MIDX_FILE, &st);
	is_int(mstore_index_set_keywords(&a, u[2], "quiet", &err), 0, "log: a change after a quiet spell");
	ok(same_index_file(&st), "log: after a quiet spell a change still goes to the log");
	usleep(120000);
	stat_rel(MIDX_FILE, &st);
	is_int(mstore_index_set_keywords(&a, u[2], "quiet2", &err), 0, "log: another after 120 ms");
	ok(same_index_file(&st), "log: a change 120 ms after the last one goes to the log");
	is_int(mstore_index_sync(&b, &err), 0, "log: b syncs");
	ok(same_state(&a, &b, "a/b after the quiet changes"), "log: b agrees with a");

	/* the fold: long keyword lists until the log passes its limit */
	stat_rel(MIDX_FILE, &st);
	folded = 0;
	for (k = 0; k < 200 && !folded; k++) {
		size_t j;

		buf_reset(&kw);
		for (j = 0; j < 40; j++)
			buf_printf(&kw, "%skeyword%02zu.%03d.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
			    j ? "," : "", j, k);
		memset(ch, 0, sizeof(ch));
		for (j = 0; j < a.n && j < 3; j++) {
			ch[j].uid = a.msgs[j].uid;
			ch[j].flags = a.msgs[j].flags;
			ch[j].set_keywords = 1;
			ch[j].keywords = buf_str(&kw);
		}
		if (mstore_index_change(&a, ch, j, &err) < 0) {
			printf("# change: %s\n", buf_str(&err));
			break;
		}
		if (!same_index_file(&st))
			folded = 1;
		else if (stat_rel(log_rel(), &st2) < 0 || st2.st_size > MIDX_LOG_MIN)
			break;	/* past the limit and not folded */
	}
	ok(folded && k > 5, "log: folded into a new index file after %d changes", k);
	ok(!exists(log_rel()), "log: and the log is gone");
	ok(read_big(MIDX_FILE, &lg) == 0 && strstr(buf_str(&lg), buf_str(&kw)) != NULL,
	    "log: the new file holds the last change");
	is_int(mstore_index_sync(&b, &err), 0, "log: b syncs after the fold");
	ok(same_state(&a, &b, "a/b after the fold"), "log: b agrees with a");

	/* a stale log: its header names another file */
	stat_rel(MIDX_FILE, &st);
	m = mstore_index_find(&a, u[2]);
	buf_reset(&lg);
	buf_printf(&lg, "L1 %u %llu %llu %lld.%09ld\n+ %u %llu %s F:DFPRST N:c:2,DFPRST\nC %u %llu\n",
	    (unsigned)a.uidvalidity, (unsigned long long)st.st_ino + 1, (unsigned long long)st.st_size,
	    (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec, (unsigned)u[2],
	    (unsigned long long)a.highestmodseq + 5, m ? m->base : "x", (unsigned)a.uidnext + 5,
	    (unsigned long long)a.highestmodseq + 5);
	write_rel(log_rel(), lg.data, lg.len, 0);
	ms = a.highestmodseq;
	un = a.uidnext;
	is_int(mstore_index_sync(&b, &err), 0, "log: b syncs under a stale log");
	m = mstore_index_find(&b, u[2]);
	ok(m && m->flags == (MIDX_FLAGGED | MIDX_REPLIED) && b.highestmodseq == ms && b.uidnext == un,
	    "log: b does not apply a stale log");
	is_int(mstore_index_open(&c, dir, &err), 0, "log: a third handle opens under it");
	ok(same_state(&a, &c, "a/c under a stale log"), "log: it does not apply it either");
	mstore_index_close(&c);
	is_int(mstore_index_set_keywords(&a, u[2], "after-stale", &err), 0, "log: a change under a stale log");
	ok(!same_index_file(&st), "log: it writes the index file");
	ok(!exists(log_rel()), "log: which removes the stale log");
	is_int(mstore_index_sync(&b, &err), 0, "log: b syncs");
	ok(same_state(&a, &b, "a/b after the stale log"), "log: b agrees with a");

	/* a torn batch: not taken, cut off by the next writer */
	is_int(mstore_index_set_keywords(&a, u[2], "torn1", &err), 0, "log: a change makes a new log");
	ok(read_big(log_rel(), &lg) == 0, "log: it is there");
	off = lg.len;
	m = mstore_index_find(&a, u[0]);
	buf_reset(&lg);
	buf_printf(&lg, "+ %u %llu %s F:DFPRST N:c:2,DFPRST\n- %u\n", (unsigned)u[0],
	    (unsigned long long)a.highestmodseq + 1, m ? m->base : "x", (unsigned)u[2]);
	write_rel(log_rel(), lg.data, lg.len, 1);
	ms = a.highestmodseq;
	is_int(mstore_index_sync(&b, &err), 0, "log: b syncs over a torn batch");
	ok(same_state(&a, &b, "a/b with a torn batch") && b.highestmodseq == ms,
	    "log: b does not take the torn batch");
	is_int(mstore_index_open(&c, dir, &err), 0, "log: a third handle opens");
	ok(same_state(&a, &c, "a/c with a torn batch"), "log: it does not take the torn batch either");
	mstore_index_close(&c);
	is_int(mstore_index_set_keywords(&a, u[2], "torn2", &err), 0, "log: the next change");
	ok(read_big(log_rel(), &lg) == 0 && lg.len > off && !strstr(buf_str(&lg), "DFPRST") &&
	    lg.data[lg.len - 1] == '\n',
	    "log: the torn batch is cut off, the new batch follows the last whole one");
	{
		const char *last = lg.len >= 2 ? (const char *)memrchr(lg.data, '\n', lg.len - 1) : NULL;

		ok(last && last[1] == 'C', "log: the log ends with a C line");
	}
	is_int(mstore_index_sync(&b, &err), 0, "log: b syncs");
	m = mstore_index_find(&b, u[2]);
	ok(m && m->keywords && !strcmp(m->keywords, "torn2") && same_state(&a, &b, "a/b after the cut"),
	    "log: b sees the change after the cut");

	/* the log removed by hand under an open handle: b reads the file
	 * again, and what it then holds is the folder (the log has a rename
	 * that the file lacks) */
	is_int(mstore_index_set_flags(&a, u[0], MIDX_SEEN | MIDX_FLAGGED, &err), 0, "log: a rename to the log");
	is_int(mstore_index_sync(&b, &err), 0, "log: b syncs");
	mb = mstore_index_find(&b, u[0]);
	ok(mb && mb->flags == (MIDX_SEEN | MIDX_FLAGGED) && same_state(&a, &b, "a/b before the removal"),
	    "log: b has it");
	ms = b.highestmodseq;
	un = b.uidnext;
	uv = b.uidvalidity;
	ok(rm(log_rel()) == 0, "log: remove the log by hand");
	is_int(mstore_index_sync(&b, &err), 0, "log: b syncs: %s", buf_str(&err));
	ok(b.uidvalidity == uv && b.uidnext >= un && b.highestmodseq >= ms,
	    "log: b keeps its UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ do not go back (%llu, was %llu)",
	    (unsigned long long)b.highestmodseq, (unsigned long long)ms);
	ok(matches_folder(&b, files, "b after the log's removal"), "log: b's names and flags are the folder's");
	is_int(mstore_index_sync(&a, &err), 0, "log: a syncs");
	ok(matches_folder(&a, files, "a after the log's removal") && same_state(&a, &b, "a/b after the removal"),
	    "log: a agrees with b and the folder");
	is_int(mstore_index_set_flags(&a, u[0], MIDX_SEEN, &err), 0, "log: a change after the removal");
	is_int(mstore_index_sync(&b, &err), 0, "log: b syncs");
	mb = mstore_index_find(&b, u[0]);
	ok(mb && mb->flags == MIDX_SEEN && same_state(&a, &b, "a/b after a change"),
	    "log: b sees the next change");

	/* the index removed under a log: rebuilt, the log not applied */
	is_int(mstore_index_set_keywords(&a, u[2], "gone-with-the-log", &err), 0, "log: a change to the log");
	ok(exists(log_rel()), "log: there is a log");
	uv = a.uidvalidity;
	ok(rm(MIDX_FILE) == 0, "log: remove the index");
	is_int(mstore_index_open(&c, dir, &err), 0, "log: open without the index: %s", buf_str(&err));
	ok(c.rebuilt && c.uidvalidity > uv, "log: rebuilt with a new UIDVALIDITY");
	ok(matches_folder(&c, files, "c rebuilt"), "log: every file indexed, flags from the names");
	for (i = 0; i < c.n; i++)
		if (c.msgs[i].keywords || c.msgs[i].uid != i + 1)
			break;
	ok(i == c.n, "log: UIDs 1..%zu, no keywords: the old log is not applied", c.n);
	ok(!exists(log_rel()), "log: the rebuild removes the old log");
	is_int(mstore_index_sync(&a, &err), 0, "log: a syncs");
	is_int(mstore_index_sync(&b, &err), 0, "log: b syncs");
	ok(same_state(&a, &c, "a/c after the rebuild") && same_state(&b, &c, "b/c after the rebuild"),
	    "log: all three agree");
	mstore_index_close(&c);

	mstore_index_close(&a);
	mstore_index_close(&b);
	buf_printf(&cmd, "rm -rf '%s'", dir);
	if (system(buf_str(&cmd)) != 0)
		printf("# cleanup of %s failed\n", dir);
	memcpy(dir, saved, sizeof(dir));
	buf_free(&err);
	buf_free(&lg);
	buf_free(&kw);
	buf_free(&cmd);
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
	test_apply_log();

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
	test_log_folder();

	buf_printf(&cmd, "rm -rf '%s'", dir);
	if (system(buf_str(&cmd)) != 0)
		printf("# cleanup of %s failed\n", dir);
	buf_free(&cmd);
	buf_free(&err);
	return done_testing();
}
