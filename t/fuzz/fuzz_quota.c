/*
 * fuzz_quota: libFuzzer harness for the maildirsize parser
 * (lib/quota.c), whose file whoever can write the mailbox may have
 * written.  Beyond not crashing: an accepted file gives non-negative
 * totals, and (when they fit one line) a file made of its own definition line and the totals it
 * gave parses back to the same totals.  The first 8 bytes choose the
 * limit the file is read for.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "quota.h"
#include "util.h"

static void
check(int cond)
{
	if (!cond)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct quota_limit q = { 0, 0 };
	struct quota_usage u, u2;
	struct buf f = BUF_INIT;

	if (n >= 8) {
		q.bytes = (long long)(be32_get(d) % 100000000u);
		q.messages = (long long)(be32_get(d + 4) % 1000000u);
		d += 8;
		n -= 8;
	}
	if (!quota_parse_file((const char *)d, n, &q, &u))
		return 0;
	check(u.bytes >= 0 && u.messages >= 0);
	if (u.bytes > (1LL << 50) || u.messages > (1LL << 50))
		return 0;	/* a sum no single line may hold */
	buf_add(&f, (const char *)d, (size_t)((const uint8_t *)memchr(d, '\n', n) - d) + 1);
	buf_printf(&f, "%lld %lld\n", u.bytes, u.messages);
	check(quota_parse_file(f.data, f.len, &q, &u2) == 1);
	check(u2.bytes == u.bytes && u2.messages == u.messages);
	buf_free(&f);
	return 0;
}
