/*
 * fuzz_postlog: the postlogd datagram decoder and the line writer
 * (lib/log.c).  A datagram comes from any local user who can reach
 * public/postlog, so whatever it holds, the file line it becomes must be
 * exactly one line: one final newline, no other control character.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "buf.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct log_dgram g;
	struct buf line = BUF_INIT, s = BUF_INIT;
	struct tm tm;
	size_t i;

	memset(&tm, 0, sizeof(tm));
	tm.tm_mday = 3;
	tm.tm_mon = 11;
	if (log_dgram_decode((const char *)d, n, &g) == 0 && g.kind == LOG_DGRAM_LINE) {
		if (!(g.ident >= (const char *)d && g.ident + g.identlen <= (const char *)d + n &&
		    g.text >= (const char *)d && g.text + g.textlen <= (const char *)d + n))
			abort();
		log_file_line(&line, &tm, "host", g.ident, g.identlen, 42, "", g.text, g.textlen);
		if (line.len == 0 || line.data[line.len - 1] != '\n')
			abort();
		for (i = 0; i + 1 < line.len; i++)
			if ((unsigned char)line.data[i] < 0x20 || line.data[i] == 0x7f)
				abort();
	}
	log_sanitize(&s, (const char *)d, n);
	for (i = 0; i < s.len; i++)
		if ((unsigned char)s.data[i] < 0x20 || s.data[i] == 0x7f)
			abort();
	buf_free(&line);
	buf_free(&s);
	return 0;
}
