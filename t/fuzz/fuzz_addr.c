/*
 * fuzz_addr.c: libFuzzer harness for lib/addr.c.  The input is used as
 * an address-list header value, an envelope address and a command-line
 * address.  Checked invariants (a failure aborts):
 *  - every address addr_parse_list returns passes addr_valid_rcpt, has
 *    no control character and is at most ADDR_MAX_LEN bytes;
 *  - addr_unwrap output passes addr_valid and unwraps to itself;
 *  - addr_split of a valid address succeeds, and quoting its local part
 *    again gives an address that splits to the same parts;
 *  - addr_qualify of a valid address with a valid origin stays valid.
 */
#include "addr.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void
check_addr(const char *a)
{
	struct buf l = BUF_INIT, d = BUF_INIT, q = BUF_INIT, l2 = BUF_INIT, d2 = BUF_INIT;
	size_t i;

	for (i = 0; a[i]; i++)
		if ((unsigned char)a[i] < 32 || a[i] == 127)
			abort();
	if (i > ADDR_MAX_LEN)
		abort();
	if (addr_split(a, &l, &d) < 0)
		abort();
	if (*a) {
		addr_quote_local(buf_str(&l), &q);
		if (d.len) {
			buf_addc(&q, '@');
			buf_add(&q, d.data, d.len);
		}
		if (addr_split(buf_str(&q), &l2, &d2) < 0)
			abort();
		if (strcmp(buf_str(&l), buf_str(&l2)) || strcmp(buf_str(&d), buf_str(&d2)))
			abort();
		addr_qualify(a, "example.test", &q);
		if (!addr_valid(buf_str(&q)))
			abort();
	}
	buf_free(&l);
	buf_free(&d);
	buf_free(&q);
	buf_free(&l2);
	buf_free(&d2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
	char *s = malloc(n + 1);
	struct buf out = BUF_INIT, again = BUF_INIT;
	char **v;
	size_t bad, i;

	if (!s)
		return 0;
	memcpy(s, data, n);
	s[n] = 0;

	v = addr_parse_list(s, &bad);
	for (i = 0; v[i]; i++) {
		if (!addr_valid_rcpt(v[i]))
			abort();
		check_addr(v[i]);
	}
	strv_free(v);

	if (addr_valid(s))
		check_addr(s);

	if (addr_unwrap(s, &out) == 0) {
		if (!addr_valid(buf_str(&out)))
			abort();
		if (addr_unwrap(buf_str(&out), &again) < 0 ||
		    strcmp(buf_str(&out), buf_str(&again)))
			abort();
		check_addr(buf_str(&out));
	} else if (out.len)
		abort();
	buf_free(&out);
	buf_free(&again);
	free(s);
	return 0;
}
