/*
 * fuzz_mstore_index: libFuzzer harness for the parser of the Maildir UID
 * index file (mstore_index_parse), which anything with write access to
 * the folder may have written.  Beyond not crashing, the parser must be
 * consistent: what it keeps obeys the invariants the sync relies on
 * (UIDs ascending and below UIDNEXT, MODSEQs at most HIGHESTMODSEQ,
 * unique BASENAMEs), a file taken as is formats back to the same bytes,
 * and whatever it keeps formats to a file that parses back as is.
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
	int rc;

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
	if (rc == MIDX_PARSE_OK)
		check(out.len == n && !memcmp(out.data, d, n));
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
