/*
 * fuzz_aliases: libFuzzer harness for the aliases(5) parser
 * (lib/aliases.c): the input is parsed as an aliases source, as a table
 * and as an :include:/.forward list; every value is split and every
 * destination classified.  Checked invariants: no CR, LF or NUL in any
 * output, names lower-case, line numbers within the input, limits kept.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aliases.h"
#include "util.h"

#define check(c) do { if (!(c)) abort(); } while (0)

static void
clean(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		check(s[i] != '\r' && s[i] != '\n');
}

static void
walk(const struct alias_list *l, int lines, int values)
{
	struct buf err = BUF_INIT;
	size_t i, j;

	check(l->n <= ALIASES_MAX_DESTS || values);
	for (i = 0; i < l->n; i++) {
		const char *arg;

		clean(l->v[i].name);
		check(l->v[i].line >= 1 && l->v[i].line <= lines);
		if (values) {
			char **d;

			for (j = 0; l->v[i].name[j]; j++)
				check(!(l->v[i].name[j] >= 'A' && l->v[i].name[j] <= 'Z'));
			check(l->v[i].value && *l->v[i].value);
			clean(l->v[i].value);
			buf_reset(&err);
			d = aliases_split(l->v[i].value, &err);
			if (d) {
				for (j = 0; d[j]; j++) {
					clean(d[j]);
					(void)aliases_classify(d[j], &arg);
				}
				strv_free(d);
			}
		} else {
			check(aliases_classify(l->v[i].name, &arg) != ALIAS_DEST_BAD);
		}
	}
	for (i = 0; i < l->nerr; i++)
		check(l->err[i].line >= 1 && l->err[i].line <= lines && l->err[i].msg);
	buf_free(&err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct alias_list l;
	const char *p = (const char *)d;
	int lines = 1;
	size_t i;

	for (i = 0; i < n; i++)
		if (d[i] == '\n')
			lines++;
	aliases_parse(p, n, 0, &l);
	walk(&l, lines, 1);
	aliases_free(&l);
	aliases_parse(p, n, ALIASES_TABLE, &l);
	for (i = 0; i < l.n; i++)
		clean(l.v[i].value);
	aliases_free(&l);
	aliases_parse_list(p, n, &l);
	walk(&l, lines, 0);
	aliases_free(&l);
	/* the whole input as one destination list */
	if (n < 65536 && !memchr(d, 0, n)) {
		struct buf err = BUF_INIT;
		char *s = xstrndup(p, n), **v;

		v = aliases_split(s, &err);
		if (v) {
			for (i = 0; v[i]; i++)
				clean(v[i]);
			strv_free(v);
		}
		buf_free(&err);
		free(s);
	}
	return 0;
}
