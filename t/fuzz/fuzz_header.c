/*
 * fuzz_header.c: libFuzzer harness for lib/header.c.  The first input
 * byte picks the byte limit; the rest is a message.  Checked invariants
 * (a failure aborts): body_offset within the input and at a line start;
 * every field's raw text inside the input, in order, not overlapping;
 * names valid; values without LF or NUL; the field count within
 * HEADER_MAX_FIELDS; -1 only with no fields; header_get finds the first
 * field of each name.
 */
#include "header.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
	struct header h;
	size_t max, i;
	const char *m;
	int rc;

	if (n == 0)
		return 0;
	max = data[0] < 128 ? (size_t)data[0] * 8 : 0;
	m = (const char *)data + 1;
	n--;
	rc = header_parse(m, n, max, &h);
	if (rc < 0 && (h.n || h.body_offset))
		abort();
	if (h.body_offset > n)
		abort();
	if (h.body_offset && h.body_offset < n && m[h.body_offset - 1] != '\n')
		abort();
	if (h.n > HEADER_MAX_FIELDS)
		abort();
	for (i = 0; i < h.n; i++) {
		const struct header_field *f = &h.f[i];

		if (f->raw < m || f->raw + f->raw_len > m + n)
			abort();
		if (i && f->raw != h.f[i - 1].raw + h.f[i - 1].raw_len)
			abort();
		if (!header_name_valid(f->name, strlen(f->name)))
			abort();
		if (strchr(f->value, '\n'))
			abort();
		if (strncmp(f->raw, f->name, strlen(f->name)))
			abort();
		if (header_get(&h, f->name) > f)
			abort();
	}
	if (max && h.n) {
		size_t total = 0;

		for (i = 0; i < h.n; i++)
			total += h.f[i].raw_len;
		if (total > max)
			abort();
	}
	header_free(&h);
	return 0;
}
