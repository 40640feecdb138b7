/*
 * fuzz_queue_file: libFuzzer harness for the queue file reader
 * (qf_parse), which also reads hostile files from maildrop/.  When a
 * file is accepted, the envelope must be internally consistent: the
 * invariants the rest of hermod relies on are checked here.
 *
 * An input whose first byte is odd is not parsed itself: the rest is a
 * list of (offset, byte) edits applied to a built-in valid file, so the
 * fuzzer reaches the deep paths of the format without a seed corpus.
 */
#include "queue_file.h"
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

/* A valid file: every envelope record type, two DATA records. */
static const char valid[] =
    "V\000\000\000\016hermod-queue 1"
    "T\000\000\000\0201700000000000000"
    "S\000\000\000\003a@b"
    "F\000\000\000\004Name"
    "C\000\000\000\013local uid=1"
    "E\000\000\000\003env"
    "N\000\000\000\004HDRS"
    "A\000\000\000\003a=b"
    "R\000\000\000\016c@d\000rfc822;c\0006"
    "r\000\000\000\006e@f\000\0000"
    "W\000\000\000\01598\0004.4.1\000text"
    "Y\000\000\000\0041\00099"
    "w\000\000\000\000"
    "M\000\000\000\000"
    "D\000\000\000\007Subj: x"
    "D\000\000\000\003\012b\012"
    "Z\000\000\000\003end";

static void check_env(const uint8_t *d, size_t n);

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	if (n > 0 && (d[0] & 1)) {
		uint8_t img[sizeof(valid) - 1];
		size_t i;

		memcpy(img, valid, sizeof(img));
		for (i = 1; i + 1 < n; i += 2)
			img[d[i] % sizeof(img)] = d[i + 1];
		check_env(img, sizeof(img));
		/* and every truncation of the edited image */
		check_env(img, d[n - 1] % sizeof(img));
		return 0;
	}
	check_env(d, n);
	return 0;
}

static void
check_env(const uint8_t *d, size_t n)
{
	struct qf_envelope env;
	struct buf err = BUF_INIT;
	size_t i;

	if (qf_parse((const char *)d, n, &env, &err) == 0) {
		check(env.sender != NULL && strlen(env.sender) <= QF_ADDR_MAX);
		check(!has_crlfnul(env.sender, strlen(env.sender)));
		check(env.nrcpt > 0 && env.nrcpt <= QF_MAX_RCPT);
		for (i = 0; i < env.nrcpt; i++) {
			const struct qf_rcpt *r = &env.rcpt[i];

			check(r->addr[0] != 0 && strlen(r->addr) <= QF_ADDR_MAX);
			check(!strpbrk(r->addr, "\r\n") && !strpbrk(r->orcpt, "\r\n"));
			check(r->offset >= 0 && (size_t)r->offset < n && d[r->offset] == (r->done ? QREC_RCPT_DONE : QREC_RCPT));
			check(r->notify <= 15);
			if (r->defer_dsn)
				check(qf_dsn_valid(r->defer_dsn));
		}
		check(env.content_offset > 0 && (size_t)env.content_offset <= n);
		check(env.content_size >= 0 && (size_t)env.content_size < n);
		check(env.file_size == (off_t)n);
		qf_envelope_free(&env);
	}
	buf_free(&err);
}
