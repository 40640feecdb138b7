/*
 * fuzz_smtp_reply: the SMTP/LMTP reply parser and EHLO keyword reader
 * (lib/smtp_reply.c) on arbitrary server output, parsed reply after
 * reply as the agent does.
 */
#include <stddef.h>
#include <stdint.h>
#include "smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct smtp_reply r;
	struct smtp_ext e;
	struct buf b = BUF_INIT;
	const char *p = (const char *)d;
	size_t used;
	char dsn[16];

	smtp_reply_init(&r);
	while (n && smtp_reply_parse(p, n, &r, &used) == 1) {
		if (used == 0 || used > n)
			__builtin_trap();
		smtp_ehlo_parse(&r, &e);
		smtp_reply_dsn(&r, "X.1.1", dsn);
		buf_reset(&b);
		smtp_reply_oneline(&r, 100, &b);
		p += used;
		n -= used;
	}
	smtp_reply_free(&r);
	buf_free(&b);
	return 0;
}
