/*
 * fuzz_imap_cache: libFuzzer harness for the parser of the IMAP metadata
 * cache (FOLDER/hermod-cache, imapd/imap_cache.c), which whoever can
 * write the folder may have written.  Beyond not crashing: every entry
 * kept gives back items within the parser's bounds, and what is kept
 * saves to a file that parses back to the same entries.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../../imapd/imap_cache.c"

static void
check(int cond)
{
	if (!cond)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct imap_cache *c = imap_cache_parse((const char *)d, n), *c2;
	char dir[] = "/tmp/hermod-fz-cache-XXXXXX";
	char **keep;
	size_t i, k = 0;
	struct buf path = BUF_INIT, data = BUF_INIT;

	keep = xcalloc(c->n + 1, sizeof(*keep));
	for (i = 0; i < c->ntab; i++) {
		struct centry *e;

		for (e = c->tab[i]; e; e = e->next) {
			struct ibox_msg m;

			memset(&m, 0, sizeof(m));
			check(e->base && e->base[0] && strlen(e->base) <= 255);
			check(imap_cache_get(c, e->base, &m) == e->have);
			check(!(m.have & IBOX_META_ENVELOPE) || m.envelope);
			check(!(m.have & IBOX_META_HEADER) || (m.header && strlen(m.header) <= IBOX_HEADER_KEEP_MAX));
			check(m.izone >= -1440 && m.izone <= 1440);
			free(m.envelope);
			free(m.bodystructure);
			free(m.body);
			free(m.header);
			free(m.keywords);
			if (!strpbrk(e->base, " \n"))
				keep[k++] = e->base;
		}
	}
	/* round trip through a file */
	if (mkdtemp(dir)) {
		buf_printf(&path, "%s/", dir);
		c->dirty = 1;
		if (imap_cache_save(c, buf_str(&path), keep, k) == 0) {
			c2 = imap_cache_load(buf_str(&path));
			check(c2->n == k);
			imap_cache_free(&c2);
		}
		buf_reset(&path);
		buf_printf(&path, "%s/%s", dir, IMAP_CACHE_FILE);
		unlink(buf_str(&path));
		rmdir(dir);
	}
	free(keep);
	buf_free(&path);
	buf_free(&data);
	imap_cache_free(&c);
	return 0;
}
