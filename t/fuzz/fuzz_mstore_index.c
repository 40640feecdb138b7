/*
 * fuzz_mstore_index: libFuzzer harness for the parser of the Maildir UID
 * index file (mstore_index_parse), which anything with write access to
 * the folder may have written.  Beyond not crashing, the parser must be
 * consistent: what it keeps obeys the invariants the sync relies on
 * (UIDs ascending and below UIDNEXT, MODSEQs at most HIGHESTMODSEQ,
 * unique BASENAMEs), a file taken as is formats back to the same bytes,
 * and whatever it keeps formats to a file that parses back as is (a V1
 * file, which has no N: names, is written as V2); and the same bytes go
 * to the description parser.  An input with a line starting "L1 " is
 * split there: what comes before is the index file, what follows that
 * header line the change log's batches (mstore_index_apply_log), after
 * which the same invariants hold, UIDNEXT and HIGHESTMODSEQ have not
 * gone down, no UID reported expunged is still held, *used ends a line,
 * and the bytes used applied again give the same state.
 */
#include "mstore_index.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void
check(int cond)
{
	if (!cond)
		abort();
}

static void
check_kept(const struct mstore_index *ix)
{
	size_t i, j;

	check(ix->uidvalidity > 0 && ix->uidnext > 0 && ix->n <= MIDX_MAX_MSGS);
	for (i = 0; i < ix->n; i++) {
		const struct mstore_index_msg *m = &ix->msgs[i];

		check(m->uid > 0 && m->uid < ix->uidnext);
		check(i == 0 || m->uid > ix->msgs[i - 1].uid);
		check(m->modseq > 0 && m->modseq <= ix->highestmodseq);
		check(m->base && m->base[0] && strlen(m->base) <= MIDX_MAX_BASE);
		check(!strpbrk(m->base, " /:,\n"));
		check((m->flags & ~(unsigned)MIDX_ALL) == 0);
		check(!m->keywords || mstore_index_keywords_valid(m->keywords));
		check(!m->name || ((!strncmp(m->name, "new/", 4) || !strncmp(m->name, "cur/", 4)) &&
		    !strncmp(m->name + 4, m->base, strlen(m->base))));
	}
	/* quadratic, but fuzz inputs are small */
	if (ix->n < 2000)
		for (i = 0; i < ix->n; i++)
			for (j = i + 1; j < ix->n; j++)
				check(strcmp(ix->msgs[i].base, ix->msgs[j].base) != 0);
}

/* The start of the first line "L1 ..." of d, or NULL. */
static const uint8_t *
log_split(const uint8_t *d, size_t n)
{
	size_t i;

	for (i = 0; i + 3 <= n; i++)
		if ((i == 0 || d[i - 1] == '\n') && !memcmp(d + i, "L1 ", 3))
			return d + i;
	return NULL;
}

/* The log records (p, n) on the index file f (fn bytes) as parsed in ix. */
static void
check_log(struct mstore_index *ix, const char *f, size_t fn, const char *p, size_t n)
{
	struct mstore_index again;
	struct buf out = BUF_INIT, out2 = BUF_INIT;
	uint32_t next = ix->uidnext;
	uint64_t hms = ix->highestmodseq;
	uint32_t last = ix->n ? ix->msgs[ix->n - 1].uid : 0;
	size_t used = (size_t)-1, used2 = (size_t)-1, i;
	int rc;

	rc = mstore_index_apply_log(ix, p, n, &used);
	check(rc == 0 || rc == -1);
	check(used <= n && (used == 0 || p[used - 1] == '\n'));
	check_kept(ix);
	check(ix->uidnext >= next && ix->highestmodseq >= hms);
	for (i = 0; i < ix->nexpunged; i++) {
		check(i == 0 || ix->expunged[i] > ix->expunged[i - 1]);
		check(mstore_index_find(ix, ix->expunged[i]) == NULL);
	}
	/* an entry the log added has its name (N: is required there) */
	for (i = 0; i < ix->n; i++)
		check(ix->msgs[i].name != NULL || ix->msgs[i].uid <= last);
	/* what the batches made is a file that parses back as is */
	mstore_index_format(ix, &out);
	memset(&again, 0, sizeof(again));
	check(mstore_index_parse(&again, out.data, out.len) == MIDX_PARSE_OK);
	mstore_index_format(&again, &out2);
	check(out2.len == out.len && !memcmp(out2.data, out.data, out.len));
	mstore_index_clear(&again);
	/* the bytes used are whole batches: taken again from the file, they
	 * apply without an error to the same state */
	memset(&again, 0, sizeof(again));
	(void)mstore_index_parse(&again, f, fn);
	check(mstore_index_apply_log(&again, p, used, &used2) == 0 && used2 == used);
	buf_reset(&out2);
	mstore_index_format(&again, &out2);
	check(out2.len == out.len && !memcmp(out2.data, out.data, out.len));
	mstore_index_clear(&again);
	buf_free(&out);
	buf_free(&out2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct mstore_index ix, again;
	struct buf out = BUF_INIT, out2 = BUF_INIT;
	struct midx_stamp st[3];
	long long listed;
	int rc, trusted;
	const uint8_t *lp = log_split(d, n), *lrec = NULL;
	size_t ln = 0;

	/* index file | "L1 ..." header line | log records */
	if (lp) {
		const uint8_t *nl = memchr(lp, '\n', (size_t)(d + n - lp));

		lrec = nl ? nl + 1 : d + n;
		ln = (size_t)(d + n - lrec);
		n = (size_t)(lp - d);
	}
	/* the same bytes as a description file (hermod-uidlist.stamp) */
	if (mstore_index_parse_description((const char *)d, n, st, &listed, &trusted) == 0)
		check(trusted == 0 || trusted == 1);
	memset(&ix, 0, sizeof(ix));
	rc = mstore_index_parse(&ix, (const char *)d, n);
	check(rc == MIDX_PARSE_OK || rc == MIDX_PARSE_SALVAGED || rc == MIDX_PARSE_BAD);
	if (rc == MIDX_PARSE_BAD) {
		check(ix.n == 0 && ix.msgs == NULL);
		mstore_index_clear(&ix);
		return 0;
	}
	check_kept(&ix);
	mstore_index_format(&ix, &out);
	/* a file taken as is formats back to its bytes (a V1 file as V2:
	 * the header's version is all that differs) */
	if (rc == MIDX_PARSE_OK)
		check(out.len == n && out.data[0] == 'V' && out.data[1] == '2' &&
		    !memcmp(out.data + 2, d + 2, n - 2));
	memset(&again, 0, sizeof(again));
	check(mstore_index_parse(&again, out.data, out.len) == MIDX_PARSE_OK);
	mstore_index_format(&again, &out2);
	check(out2.len == out.len && !memcmp(out2.data, out.data, out.len));
	if (lp)
		check_log(&ix, (const char *)d, n, (const char *)lrec, ln);
	mstore_index_clear(&ix);
	mstore_index_clear(&again);
	buf_free(&out);
	buf_free(&out2);
	return 0;
}
