/*
 * aliases.c: the aliases(5) source parser (see aliases.h for the syntax).
 *
 * Invariants: every string handed out is NUL-free and free of CR and LF;
 * a logical line longer than ALIASES_MAX_LINE, or a list of more than
 * ALIASES_MAX_DESTS destinations, is an error, never silently cut; the
 * parser never stops at the first bad line (newaliases reports them all
 * with their line numbers and builds the rest).
 */
#include "aliases.h"
#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void
add_error(struct alias_list *l, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
add_error(struct alias_list *l, int line, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	l->err = xreallocarray(l->err, l->nerr + 1, sizeof(*l->err));
	l->err[l->nerr].line = line;
	l->err[l->nerr].msg = buf_steal(&b);
	l->nerr++;
}

static void
add_entry(struct alias_list *l, char *name, char *value, int line)
{
	if ((l->n & (l->n - 1)) == 0 || l->n == 0)
		l->v = xreallocarray(l->v, l->n ? l->n * 2 : 1, sizeof(*l->v));
	l->v[l->n].name = name;
	l->v[l->n].value = value;
	l->v[l->n].line = line;
	l->n++;
}

void
aliases_free(struct alias_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].value);
	}
	for (i = 0; i < l->nerr; i++)
		free(l->err[i].msg);
	free(l->v);
	free(l->err);
	memset(l, 0, sizeof(*l));
}

static int
is_blank(int c)
{
	return c == ' ' || c == '\t';
}

/* Trim blanks (and a CR) at both ends of [*p, *p + *n). */
static void
trim(const char **p, size_t *n)
{
	while (*n && (is_blank(**p) || **p == '\r')) {
		(*p)++;
		(*n)--;
	}
	while (*n && (is_blank((*p)[*n - 1]) || (*p)[*n - 1] == '\r'))
		(*n)--;
}

int
aliases_dsn_code(const char *s, size_t *len)
{
	const char *p = s;
	int part, digits;

	if (*p != '4' && *p != '5')
		return 0;
	p++;
	for (part = 0; part < 2; part++) {
		if (*p++ != '.')
			return 0;
		for (digits = 0; isdigit((unsigned char)*p); p++)
			digits++;
		if (digits < 1 || digits > 3)
			return 0;
	}
	if (*p && !isspace((unsigned char)*p))
		return 0;
	if (len)
		*len = (size_t)(p - s);
	return 1;
}

static int
has_prefix_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* Address-like: what is not a command, file, include, error or \name. */
static int
address_like(const char *d)
{
	return *d != '|' && *d != '/' && *d != '\\' &&
	    !has_prefix_ci(d, ":include:") && !has_prefix_ci(d, "error:");
}

/* White space outside double quotes? */
static int
has_unquoted_space(const char *s)
{
	int q = 0;

	for (; *s; s++) {
		if (q && *s == '\\' && s[1])
			s++;
		else if (*s == '"')
			q = !q;
		else if (!q && isspace((unsigned char)*s))
			return 1;
	}
	return 0;
}

/* One destination [p, p+n) (already trimmed) into its final form. */
static char *
finish_dest(const char *p, size_t n, struct buf *err)
{
	struct buf d = BUF_INIT;
	const char *s;
	size_t i, m;
	int q = 0, whole = 0;
	char *r;

	/* "..." as a whole: unquote. */
	if (n >= 2 && p[0] == '"') {
		for (i = 1; i < n; i++) {
			if (p[i] == '\\' && i + 1 < n)
				i++;
			else if (p[i] == '"') {
				whole = i == n - 1;
				break;
			}
		}
	}
	if (whole) {
		for (i = 1; i < n - 1; i++) {
			if (p[i] == '\\' && i + 1 < n - 1)
				i++;
			buf_addc(&d, p[i]);
		}
	} else if (address_like(p) && p[n - 1] == '>') {
		/* "Name <addr>": keep what is inside the last <>. */
		size_t lt = (size_t)-1;

		for (i = 0; i < n; i++) {
			if (q && p[i] == '\\' && i + 1 < n)
				i++;
			else if (p[i] == '"')
				q = !q;
			else if (!q && p[i] == '<')
				lt = i;
		}
		if (lt == (size_t)-1 || memchr(p + lt + 1, '<', n - lt - 2) ||
		    memchr(p + lt + 1, '>', n - lt - 2)) {
			buf_printf(err, "malformed <address> in \"%.*s\"", (int)n, p);
			return NULL;
		}
		buf_add(&d, p + lt + 1, n - lt - 2);
	} else
		buf_add(&d, p, n);
	s = buf_str(&d);
	m = d.len;
	trim(&s, &m);
	if (m == 0) {
		buf_printf(err, "empty destination \"%.*s\"", (int)n, p);
		buf_free(&d);
		return NULL;
	}
	r = xstrndup(s, m);
	buf_free(&d);
	if (!whole && address_like(r) && has_unquoted_space(r)) {
		buf_printf(err, "white space in address \"%s\" (missing comma, or quotes?)", r);
		free(r);
		return NULL;
	}
	return r;
}

char **
aliases_split(const char *value, struct buf *err)
{
	char **v = NULL;
	size_t n = 0, len = strlen(value), i, start = 0;
	int q = 0;

	if (has_crlfnul(value, len)) {
		buf_sets(err, "CR or LF in a destination list");
		return NULL;
	}
	for (i = 0; i <= len; i++) {
		const char *p;
		size_t m;
		char *d;

		if (i < len) {
			if (q && value[i] == '\\' && i + 1 < len) {
				i++;
				continue;
			}
			if (value[i] == '"') {
				q = !q;
				continue;
			}
			if (q || value[i] != ',')
				continue;
		} else if (q) {
			buf_sets(err, "unbalanced double quote");
			goto fail;
		}
		p = value + start;
		m = i - start;
		start = i + 1;
		trim(&p, &m);
		if (m == 0)
			continue;
		if (n >= ALIASES_MAX_DESTS) {
			buf_printf(err, "more than %d destinations", ALIASES_MAX_DESTS);
			goto fail;
		}
		if ((d = finish_dest(p, m, err)) == NULL)
			goto fail;
		if ((n & (n + 1)) == 0 || n == 0)
			v = xreallocarray(v, (n + 1) * 2, sizeof(*v));
		v[n++] = d;
		v[n] = NULL;
	}
	if (!v)
		v = xcalloc(1, sizeof(*v));
	return v;
fail:
	if (v) {
		v[n] = NULL;
		strv_free(v);
	}
	return NULL;
}

enum alias_dest_kind
aliases_classify(const char *dest, const char **arg)
{
	const char *p;

	*arg = dest;
	if (!*dest) {
		*arg = "empty destination";
		return ALIAS_DEST_BAD;
	}
	if (has_crlfnul(dest, strlen(dest))) {
		*arg = "CR or LF in a destination";
		return ALIAS_DEST_BAD;
	}
	if (*dest == '|') {
		for (p = dest + 1; isspace((unsigned char)*p); p++)
			;
		if (!*p) {
			*arg = "empty command after '|'";
			return ALIAS_DEST_BAD;
		}
		*arg = p;
		return ALIAS_DEST_COMMAND;
	}
	if (*dest == '/') {
		return dest[strlen(dest) - 1] == '/' ? ALIAS_DEST_MAILDIR : ALIAS_DEST_FILE;
	}
	if (has_prefix_ci(dest, ":include:")) {
		for (p = dest + 9; isspace((unsigned char)*p); p++)
			;
		if (*p != '/') {
			*arg = ":include: needs an absolute path";
			return ALIAS_DEST_BAD;
		}
		*arg = p;
		return ALIAS_DEST_INCLUDE;
	}
	if (has_prefix_ci(dest, "error:")) {
		for (p = dest + 6; isspace((unsigned char)*p); p++)
			;
		*arg = p;
		return ALIAS_DEST_ERROR;
	}
	if (*dest == '\\') {
		p = dest + 1;
		if (!*p || strchr(p, '\\') || has_unquoted_space(p)) {
			*arg = "malformed \\name";
			return ALIAS_DEST_BAD;
		}
		*arg = p;
		return ALIAS_DEST_NOEXPAND;
	}
	if (*dest == ':' || has_unquoted_space(dest)) {
		*arg = "malformed address";
		return ALIAS_DEST_BAD;
	}
	return ALIAS_DEST_ADDRESS;
}

/* Check every destination of a list; 0 ok, -1 with err set. */
static int
check_value(const char *value, struct buf *err)
{
	char **v = aliases_split(value, err);
	size_t i;
	int rc = 0;

	if (!v)
		return -1;
	if (!v[0]) {
		buf_sets(err, "no destinations");
		rc = -1;
	}
	for (i = 0; rc == 0 && v[i]; i++) {
		const char *arg;

		if (aliases_classify(v[i], &arg) == ALIAS_DEST_BAD) {
			buf_printf(err, "\"%s\": %s", v[i], arg);
			rc = -1;
		}
	}
	strv_free(v);
	return rc;
}

/* One logical line "name: value" or "key value". */
static void
parse_entry(struct alias_list *out, const char *p, size_t n, int line, int flags)
{
	struct buf name = BUF_INIT, err = BUF_INIT;
	const char *v;
	size_t i = 0, j, vn;

	if (memchr(p, 0, n)) {
		add_error(out, line, "NUL byte in line");
		return;
	}
	if (memchr(p, '\r', n)) {
		add_error(out, line, "CR inside a line");
		return;
	}
	if (flags & ALIASES_TABLE) {
		while (i < n && !is_blank(p[i]))
			i++;
		buf_add(&name, p, i);
	} else if (p[0] == '"') {
		for (i = 1; i < n && p[i] != '"'; i++) {
			if (p[i] == '\\' && i + 1 < n)
				i++;
			buf_addc(&name, p[i]);
		}
		if (i >= n) {
			add_error(out, line, "unbalanced double quote in the alias name");
			goto out;
		}
		i++;
		while (i < n && is_blank(p[i]))
			i++;
		if (i >= n || p[i] != ':') {
			add_error(out, line, "missing ':' after the alias name");
			goto out;
		}
		i++;
	} else {
		while (i < n && p[i] != ':' && !is_blank(p[i]))
			i++;
		buf_add(&name, p, i);
		while (i < n && is_blank(p[i]))
			i++;
		if (i >= n || p[i] != ':') {
			add_error(out, line, "missing ':' after the alias name \"%s\"", buf_str(&name));
			goto out;
		}
		i++;
	}
	if (name.len == 0) {
		add_error(out, line, "empty %s", flags & ALIASES_TABLE ? "key" : "alias name");
		goto out;
	}
	if (name.len > ALIASES_MAX_NAME) {
		add_error(out, line, "name longer than %d bytes", ALIASES_MAX_NAME);
		goto out;
	}
	for (j = 0; j < name.len; j++)
		if ((unsigned char)name.data[j] < 0x20 || name.data[j] == 0x7f)
			break;
	if (j < name.len) {
		add_error(out, line, "control character in the name");
		goto out;
	}
	if (!(flags & ALIASES_TABLE) && strchr(buf_str(&name), '@')) {
		add_error(out, line, "alias name \"%s\" has a domain: aliases are local parts", buf_str(&name));
		goto out;
	}
	v = p + i;
	vn = n - i;
	trim(&v, &vn);
	if (vn == 0) {
		add_error(out, line, "%s \"%s\" has no value", flags & ALIASES_TABLE ? "key" : "alias", buf_str(&name));
		goto out;
	}
	{
		char *value = xstrndup(v, vn);

		if (!(flags & ALIASES_TABLE) && check_value(value, &err) < 0) {
			add_error(out, line, "alias \"%s\": %s", buf_str(&name), buf_str(&err));
			free(value);
			goto out;
		}
		str_lower(name.data);
		add_entry(out, buf_steal(&name), value, line);
	}
out:
	buf_free(&name);
	buf_free(&err);
}

size_t
aliases_parse(const char *data, size_t len, int flags, struct alias_list *out)
{
	struct buf cur = BUF_INIT;
	size_t off = 0;
	int lineno = 0, start = 0, have = 0, toolong = 0;

	memset(out, 0, sizeof(*out));
	while (off < len) {
		const char *l = data + off, *nl = memchr(l, '\n', len - off), *t;
		size_t n = nl ? (size_t)(nl - l) : len - off, tn;

		off += n + (nl ? 1 : 0);
		lineno++;
		t = l;
		tn = n;
		trim(&t, &tn);
		if (tn == 0 || *t == '#')
			continue;
		if (is_blank(*l)) {
			if (!have) {
				add_error(out, lineno, "continuation line without an entry before it");
				continue;
			}
			if (toolong || cur.len + 1 + tn > ALIASES_MAX_LINE) {
				toolong = 1;
				continue;
			}
			buf_addc(&cur, ' ');
			buf_add(&cur, t, tn);
			continue;
		}
		if (have) {
			if (toolong)
				add_error(out, start, "logical line longer than %d bytes", ALIASES_MAX_LINE);
			else
				parse_entry(out, cur.data, cur.len, start, flags);
		}
		buf_reset(&cur);
		have = 1;
		start = lineno;
		toolong = tn > ALIASES_MAX_LINE;
		if (!toolong)
			buf_add(&cur, t, tn);
	}
	if (have) {
		if (toolong)
			add_error(out, start, "logical line longer than %d bytes", ALIASES_MAX_LINE);
		else
			parse_entry(out, cur.data, cur.len, start, flags);
	}
	buf_free(&cur);
	return out->nerr;
}

size_t
aliases_parse_list(const char *data, size_t len, struct alias_list *out)
{
	struct buf line = BUF_INIT, err = BUF_INIT;
	size_t off = 0, total = 0;
	int lineno = 0, full = 0;

	memset(out, 0, sizeof(*out));
	while (off < len && !full) {
		const char *l = data + off, *nl = memchr(l, '\n', len - off);
		size_t n = nl ? (size_t)(nl - l) : len - off, i;
		char **v;

		off += n + (nl ? 1 : 0);
		lineno++;
		trim(&l, &n);
		if (n == 0 || *l == '#')
			continue;
		if (n > ALIASES_MAX_LINE) {
			add_error(out, lineno, "line longer than %d bytes", ALIASES_MAX_LINE);
			continue;
		}
		if (memchr(l, 0, n)) {
			add_error(out, lineno, "NUL byte in line");
			continue;
		}
		buf_reset(&line);
		buf_add(&line, l, n);
		buf_reset(&err);
		if ((v = aliases_split(buf_str(&line), &err)) == NULL) {
			add_error(out, lineno, "%s", buf_str(&err));
			continue;
		}
		for (i = 0; v[i]; i++) {
			const char *arg;

			if (aliases_classify(v[i], &arg) == ALIAS_DEST_BAD) {
				add_error(out, lineno, "\"%s\": %s", v[i], arg);
				free(v[i]);
				continue;
			}
			if (total >= ALIASES_MAX_DESTS) {
				free(v[i]);
				full = 1;
				continue;
			}
			total++;
			add_entry(out, v[i], NULL, lineno);
		}
		free(v);
		if (full) {
			add_error(out, lineno, "more than %d destinations; the rest is ignored", ALIASES_MAX_DESTS);
			break;
		}
	}
	buf_free(&line);
	buf_free(&err);
	return out->nerr;
}
