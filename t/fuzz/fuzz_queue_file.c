/*
 * fuzz_queue_file: libFuzzer harness for the queue file reader
 * (qf_parse), which also reads hostile files from maildrop/.  When a
 * file is accepted, the envelope must be internally consistent: the
 * invariants the rest of hermod relies on are checked here.
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

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
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
	return 0;
}
