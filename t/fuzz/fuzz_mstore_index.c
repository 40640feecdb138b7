/*
 * fuzz_mstore_index: libFuzzer harness for the parser of the Maildir UID
 * index file (mstore_index_parse), which anything with write access to
 * the folder may have written.  Beyond not crashing, the parser must be
 * consistent: what it keeps obeys the invariants the sync relies on
 * (UIDs ascending and below UIDNEXT, MODSEQs at most HIGHESTMODSEQ,
 * unique BASENAMEs), a file taken as is formats back to the same bytes,
 * and whatever it keeps formats to a file that parses back as is (a V1
 * file, which has no N: names, is written as V2); and the same bytes go
 * to the description parser.
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

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct mstore_index ix, again;
	struct buf out = BUF_INIT, out2 = BUF_INIT;
	struct midx_stamp st[3];
	long long listed;
	int rc, trusted;

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
	mstore_index_clear(&ix);
	mstore_index_clear(&again);
	buf_free(&out);
	buf_free(&out2);
	return 0;
}
