/*
 * fuzz_pop3: the POP3 command parser and the SASL PLAIN / base64 /
 * message-output helpers of popd/pop3_cmd.c (included here, as the fuzz
 * build compiles only lib/ and the harness), and the UIDL and size
 * helpers of lib/mstore.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../popd/pop3_cmd.c"
#include "mstore.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct pop3_cmd c;
	struct buf b = BUF_INIT, out = BUF_INIT;
	char *line = malloc(n + 1);
	unsigned long v;
	const char *a, *u, *p;
	int i;

	memcpy(line, d, n);
	pop3_cmd_parse(line, n, &c);
	for (i = 0; i < c.nargs; i++) {
		(void)pop3_msgnum(c.args[i], 1000, &v);
		(void)pop3_count(c.args[i], 1000, &v);
		(void)mstore_uidl_valid(c.args[i]);
	}
	if (pop3_b64_decode((const char *)d, n, &b) == 0)
		(void)pop3_sasl_plain(buf_str(&b), b.len, &a, &u, &p);
	pop3_wire_out((const char *)d, n, n ? d[0] % 4 - 1 : -1, &out);
	if (mstore_wire_size((const char *)d, n) < n)
		abort();
	free(line);
	buf_free(&b);
	buf_free(&out);
	return 0;
}
