/*
 * mstore_index.c: the per-folder UID index of mstore_index.h, after
 * Dovecot's dovecot-uidlist: a text file of "UID MODSEQ BASENAME" lines
 * under a header, rewritten whole through a temporary file and rename,
 * so that a reader sees the old file or the new one, never a mix.
 *
 * A sync holds an fcntl write lock on hermod-uidlist.lock from reading
 * the file to renaming the new one into place: two processes cannot both
 * read UIDNEXT N and give N to different files.  The parser is strict
 * (bounded lines and counts, canonical numbers) because anything may have
 * written the file; what it cannot trust it drops, and the rules for
 * UIDVALIDITY when it drops everything are in doc/mstore-index.md.
 */
#include "mstore_index.h"
#include "maildir.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Times a scan is repeated while new/ or cur/ change under it. */
#define MIDX_SCAN_TRIES	5

static const char flag_letters[] = "DFPRST";	/* bit i = letter i */

unsigned
mstore_index_flags_parse(const char *s)
{
	unsigned f = 0;
	const char *p;

	for (; *s; s++)
		if ((p = strchr(flag_letters, *s)) != NULL)
			f |= 1u << (p - flag_letters);
	return f;
}

void
mstore_index_flags_str(unsigned flags, struct buf *out)
{
	size_t i;

	for (i = 0; flag_letters[i]; i++)
		if (flags & (1u << i))
			buf_addc(out, flag_letters[i]);
}

/* A BASENAME byte: printable, and none of the separators of a Maildir
 * name (',' ':'), of a path ('/') or of an index line (' ').  Bytes
 * >= 0x80 are refused too, so that a line is plain ASCII. */
static int
base_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '/' && c != ':' && c != ',';
}

static int
base_valid(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > MIDX_MAX_BASE)
		return 0;
	for (i = 0; i < n; i++)
		if (!base_char((unsigned char)s[i]))
			return 0;
	return 1;
}

/* An IMAP atom character (RFC 3501 ATOM-CHAR), minus ',' our separator. */
/* What follows the BASENAME in a file name, as N: keeps it: printable
 * ASCII without space or '/', starting with ',' or ':' (or nothing). */
static int
name_rest_valid(const char *s, size_t n)
{
	size_t i;

	if (n > MIDX_MAX_NAME_REST || (n && s[0] != ',' && s[0] != ':'))
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '/')
			return 0;
	return 1;
}

static int
kw_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\],", c);
}

static int
keywords_valid_n(const char *s, size_t n)
{
	size_t i, len = 0, count = 0;

	if (n == 0)
		return 0;
	for (i = 0; i <= n; i++) {
		if (i == n || s[i] == ',') {
			if (len == 0 || ++count > MIDX_MAX_KEYWORDS)
				return 0;
			len = 0;
			continue;
		}
		if (!kw_char((unsigned char)s[i]) || ++len > MIDX_MAX_KEYWORD)
			return 0;
	}
	return 1;
}

int
mstore_index_keywords_valid(const char *s)
{
	return keywords_valid_n(s, strlen(s));
}

/* A canonical decimal (no sign, no leading zero) in [1, max]. */
static int
num_parse(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 20 || s[0] == '0')
		return -1;
	for (i = 0; i < n; i++) {
		unsigned d = (unsigned char)s[i] - '0';

		if (d > 9 || v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Split a line (without its LF) on single spaces into at most max fields;
 * the number of fields, or -1 when there are more or one is empty. */
static int
fields(const char *s, size_t n, const char **f, size_t *fl, int max)
{
	int k = 0;
	size_t i, start = 0;

	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != ' ')
			continue;
		if (i == start || k == max)
			return -1;
		f[k] = s + start;
		fl[k++] = i - start;
		start = i + 1;
	}
	return k;
}

static void
msg_free(struct mstore_index_msg *m)
{
	free(m->base);
	free(m->name);
	free(m->keywords);
}

void
mstore_index_clear(struct mstore_index *ix)
{
	size_t i;

	for (i = 0; i < ix->n; i++)
		msg_free(&ix->msgs[i]);
	free(ix->msgs);
	ix->msgs = NULL;
	ix->n = 0;
	free(ix->expunged);
	ix->expunged = NULL;
	ix->nexpunged = 0;
	ix->stamp_ok = 0;	/* the next sync reads everything */
	ix->file_ok = 0;
	ix->log_off = 0;
	ix->log_ino = 0;
	ix->log_bad = 0;
}

/* One entry line; 0 with *m filled, -1 malformed. */
static int
parse_entry(const char *s, size_t n, struct mstore_index_msg *m)
{
	const char *f[6];
	size_t fl[6];
	uint64_t v;
	int k = fields(s, n, f, fl, 6), i;
	const char *nm = NULL;
	size_t nml = 0;
	const char *kw = NULL;
	size_t kwn = 0;
	unsigned flags = 0;

	if (k < 3)
		return -1;
	memset(m, 0, sizeof(*m));
	if (num_parse(f[0], fl[0], UINT32_MAX, &v) < 0)
		return -1;
	m->uid = (uint32_t)v;
	if (num_parse(f[1], fl[1], MIDX_MAX_MODSEQ, &m->modseq) < 0)
		return -1;
	if (!base_valid(f[2], fl[2]))
		return -1;
	i = 3;
	if (i < k && fl[i] > 2 && !memcmp(f[i], "F:", 2)) {
		size_t j;
		int last = -1;

		/* canonical: known letters, each once, in ascending order */
		for (j = 2; j < fl[i]; j++) {
			const char *p = memchr(flag_letters, f[i][j], sizeof(flag_letters) - 1);

			if (!p || (int)(p - flag_letters) <= last)
				return -1;
			last = (int)(p - flag_letters);
			flags |= 1u << last;
		}
		i++;
	}
	if (i < k && fl[i] > 2 && !memcmp(f[i], "K:", 2)) {
		kw = f[i] + 2;
		kwn = fl[i] - 2;
		if (!keywords_valid_n(kw, kwn))
			return -1;
		i++;
	}
	if (i < k && fl[i] >= 3 && !memcmp(f[i], "N:", 2)) {
		nm = f[i] + 2;
		nml = fl[i] - 2;
		if ((nm[0] != 'n' && nm[0] != 'c') || !name_rest_valid(nm + 1, nml - 1))
			return -1;
		i++;
	}
	if (i != k)
		return -1;
	m->flags = flags;
	m->base = xstrndup(f[2], fl[2]);
	if (kw)
		m->keywords = xstrndup(kw, kwn);
	if (nm) {
		struct buf b = BUF_INIT;

		buf_adds(&b, nm[0] == 'n' ? "new/" : "cur/");
		buf_add(&b, f[2], fl[2]);
		buf_add(&b, nm + 1, nml - 1);
		m->name = buf_steal(&b);
	}
	return 0;
}

static int
cmp_base_ptr(const void *a, const void *b)
{
	const struct mstore_index_msg *const *x = a, *const *y = b;

	return strcmp((*x)->base, (*y)->base);
}

int
mstore_index_parse(struct mstore_index *ix, const char *p, size_t n)
{
	const char *end = p + n, *nl, *f[4];
	size_t fl[4], cap = 0, i, kept;
	uint64_t uv, next, hms, maxuid = 0, maxms = 0;
	int rc = MIDX_PARSE_OK, k;
	struct mstore_index_msg **byname;
	unsigned char *drop;

	ix->uidvalidity = 0;
	nl = memchr(p, '\n', n);
	if (!nl || (size_t)(nl - p) >= MIDX_MAX_LINE)
		k = -1;
	else
		k = fields(p, (size_t)(nl - p), f, fl, 4);
	/* what of the header is readable: "V1 UIDVALIDITY" at least, for the
	 * rule that a new UIDVALIDITY is greater than the old one */
	if (k >= 2 && fl[0] == 2 && (!memcmp(f[0], "V1", 2) || !memcmp(f[0], "V2", 2)) &&
	    num_parse(f[1], fl[1], UINT32_MAX, &uv) == 0)
		ix->uidvalidity = (uint32_t)uv;
	if (k != 4 || !ix->uidvalidity ||
	    num_parse(f[2], fl[2], UINT32_MAX, &next) < 0 ||
	    num_parse(f[3], fl[3], MIDX_MAX_MODSEQ, &hms) < 0)
		return MIDX_PARSE_BAD;
	ix->uidnext = (uint32_t)next;
	ix->highestmodseq = hms;
	for (p = nl + 1; p < end; p = nl + 1) {
		struct mstore_index_msg m;

		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			rc = MIDX_PARSE_SALVAGED;	/* torn last line */
			break;
		}
		if ((size_t)(nl - p) >= MIDX_MAX_LINE || parse_entry(p, (size_t)(nl - p), &m) < 0) {
			rc = MIDX_PARSE_SALVAGED;
			continue;
		}
		/* a UID seen anywhere may have been shown to a client, so
		 * UIDNEXT passes it even when the entry is dropped */
		if (m.uid > maxuid)
			maxuid = m.uid;
		if (m.modseq > maxms)
			maxms = m.modseq;
		if (ix->n >= MIDX_MAX_MSGS || m.uid >= ix->uidnext ||
		    (ix->n > 0 && m.uid <= ix->msgs[ix->n - 1].uid)) {
			msg_free(&m);
			rc = MIDX_PARSE_SALVAGED;
			continue;
		}
		if (ix->n == cap) {
			cap = cap ? cap * 2 : 64;
			ix->msgs = xreallocarray(ix->msgs, cap, sizeof(*ix->msgs));
		}
		ix->msgs[ix->n++] = m;
	}
	if (maxuid >= ix->uidnext) {
		if (maxuid == UINT32_MAX)
			goto bad;	/* no UID left to give: start again */
		ix->uidnext = (uint32_t)maxuid + 1;
		rc = MIDX_PARSE_SALVAGED;
	}
	if (maxms > ix->highestmodseq) {
		ix->highestmodseq = maxms;
		rc = MIDX_PARSE_SALVAGED;
	}
	if (ix->n < 2)
		return rc;
	/* one file, one UID: of entries with equal BASENAMEs keep the first */
	byname = xreallocarray(NULL, ix->n, sizeof(*byname));
	drop = xcalloc(ix->n, 1);
	for (i = 0; i < ix->n; i++)
		byname[i] = &ix->msgs[i];
	qsort(byname, ix->n, sizeof(*byname), cmp_base_ptr);
	for (i = 1; i < ix->n; i++)
		if (!strcmp(byname[i]->base, byname[i - 1]->base)) {
			/* byname[] of equal names is not in UID order: mark the larger UID */
			struct mstore_index_msg *a = byname[i - 1], *b = byname[i];

			drop[(a->uid > b->uid ? a : b) - ix->msgs] = 1;
			if (a->uid > b->uid)
				byname[i] = a;	/* keep comparing against the survivor */
			rc = MIDX_PARSE_SALVAGED;
		}
	for (i = kept = 0; i < ix->n; i++) {
		if (drop[i])
			msg_free(&ix->msgs[i]);
		else
			ix->msgs[kept++] = ix->msgs[i];
	}
	ix->n = kept;
	free(byname);
	free(drop);
	return rc;
bad:
	uv = ix->uidvalidity;
	mstore_index_clear(ix);
	ix->uidvalidity = (uint32_t)uv;
	return MIDX_PARSE_BAD;
}

/* One entry line, LF included (the file's and the change log's). */
static void
format_entry(const struct mstore_index_msg *m, struct buf *out)
{
	buf_printf(out, "%u %llu %s", (unsigned)m->uid,
	    (unsigned long long)m->modseq, m->base);
	if (m->flags & MIDX_ALL) {
		buf_adds(out, " F:");
		mstore_index_flags_str(m->flags, out);
	}
	if (m->keywords && *m->keywords)
		buf_printf(out, " K:%s", m->keywords);
	/* the whole file name, for a sync that trusts the file
	 * without listing the folder (sync_described) */
	if (m->name && strlen(m->name) >= 4 + strlen(m->base) &&
	    (!strncmp(m->name, "new/", 4) || !strncmp(m->name, "cur/", 4)) &&
	    !strncmp(m->name + 4, m->base, strlen(m->base)) &&
	    name_rest_valid(m->name + 4 + strlen(m->base), strlen(m->name + 4 + strlen(m->base))))
		buf_printf(out, " N:%c%s", m->name[0] == 'n' ? 'n' : 'c', m->name + 4 + strlen(m->base));
	buf_addc(out, '\n');
}

void
mstore_index_format(const struct mstore_index *ix, struct buf *out)
{
	size_t i;

	buf_printf(out, "V2 %u %u %llu\n", (unsigned)ix->uidvalidity,
	    (unsigned)ix->uidnext, (unsigned long long)ix->highestmodseq);
	for (i = 0; i < ix->n; i++)
		format_entry(&ix->msgs[i], out);
}

/* --- the change log -------------------------------------------------- */

/*
 * FOLDER/hermod-uidlist.log extends the file that its header names by
 * its stamp ("L1 UIDVALIDITY INO SIZE MTIME"), so that a log left by a
 * crash between a new file's rename and the log's removal is known as
 * old and never applied.  After the header, batches: "+ ENTRY" (an entry
 * line as in the file, N: required: the message as it is now, added or
 * replaced) and "- UID" (removed) lines, then "C UIDNEXT HIGHESTMODSEQ".
 * A batch is written by one write() and fdatasync'ed; one without its C
 * line (torn by a crash) is not taken, and the next writer cuts it off.
 */

/* One record of a batch, checked before any of the batch is applied. */
struct logrec {
	int drop;
	int add;			/* a new UID (found by the check) */
	struct mstore_index_msg m;	/* drop: only m.uid */
};

static void
logrec_free(struct logrec *r, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!r[i].drop)
			msg_free(&r[i].m);
}

/* Take msgs[k] out (UIDs stay ascending). */
static void
remove_at(struct mstore_index *ix, size_t k)
{
	msg_free(&ix->msgs[k]);
	memmove(&ix->msgs[k], &ix->msgs[k + 1], (ix->n - k - 1) * sizeof(*ix->msgs));
	ix->n--;
}

static int
has_base(const struct mstore_index *ix, const char *base)
{
	size_t i;

	for (i = 0; i < ix->n; i++)
		if (!strcmp(ix->msgs[i].base, base))
			return 1;
	return 0;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Check a batch against ix as it is, then apply it: an entry of an
 * existing UID keeps its BASENAME; a new UID is at least UIDNEXT (so an
 * expunged one never comes back), above the batch's earlier ones, and
 * its BASENAME new.  0 applied (the records' strings taken), -1 refused. */
static int
apply_batch(struct mstore_index *ix, struct logrec *r, size_t nr, uint64_t next, uint64_t hms)
{
	uint64_t last = ix->n ? ix->msgs[ix->n - 1].uid : 0, maxuid = 0, maxms = hms;
	size_t i, j, adds = 0;

	for (i = 0; i < nr; i++) {
		struct mstore_index_msg *x;

		if (r[i].drop)
			continue;
		if (r[i].m.modseq > maxms)
			maxms = r[i].m.modseq;
		if ((x = mstore_index_find(ix, r[i].m.uid))) {
			if (strcmp(x->base, r[i].m.base))
				return -1;
			continue;
		}
		if (r[i].m.uid <= last || r[i].m.uid < ix->uidnext || r[i].m.uid == UINT32_MAX ||
		    has_base(ix, r[i].m.base))
			return -1;
		for (j = 0; j < i; j++)
			if (!r[j].drop && !strcmp(r[j].m.base, r[i].m.base))
				return -1;
		last = maxuid = r[i].m.uid;
		r[i].add = 1;
		adds++;
	}
	if (ix->n + adds > MIDX_MAX_MSGS)
		return -1;
	if (adds)
		ix->msgs = xreallocarray(ix->msgs, ix->n + adds, sizeof(*ix->msgs));
	for (i = 0; i < nr; i++) {
		struct mstore_index_msg *x = mstore_index_find(ix, r[i].m.uid);

		if (r[i].drop) {
			if (x) {
				remove_at(ix, (size_t)(x - ix->msgs));
				ix->expunged = xreallocarray(ix->expunged, ix->nexpunged + 1,
				    sizeof(*ix->expunged));
				ix->expunged[ix->nexpunged++] = r[i].m.uid;
			}
			continue;
		}
		if (r[i].add)
			x = &ix->msgs[ix->n++];
		else if (x)
			msg_free(x);
		else
			continue;	/* dropped earlier in the batch */
		*x = r[i].m;
		memset(&r[i].m, 0, sizeof(r[i].m));
		r[i].drop = 1;	/* (taken: nothing left to free) */
	}
	if (maxuid >= ix->uidnext)
		ix->uidnext = (uint32_t)maxuid + 1;
	if (next > ix->uidnext)
		ix->uidnext = (uint32_t)next;
	if (maxms > ix->highestmodseq)
		ix->highestmodseq = maxms;
	return 0;
}

int
mstore_index_apply_log(struct mstore_index *ix, const char *p, size_t n, size_t *used)
{
	const char *end = p + n, *s, *nl;
	struct logrec *r = NULL;
	size_t nr = 0, cap = 0;
	int rc = 0;

	*used = 0;
	for (s = p; s < end; s = nl + 1) {
		size_t len;
		uint64_t v;

		if (!(nl = memchr(s, '\n', (size_t)(end - s))))
			break;	/* a batch torn by a crash: not taken */
		len = (size_t)(nl - s);
		if (len >= MIDX_MAX_LINE || len < 3 || s[1] != ' ' || nr >= MIDX_MAX_MSGS) {
			rc = -1;
			break;
		}
		if (s[0] == 'C') {
			const char *f[3];
			size_t fl[3];
			uint64_t next, hms;

			if (fields(s, len, f, fl, 3) != 3 || fl[0] != 1 ||
			    num_parse(f[1], fl[1], UINT32_MAX, &next) < 0 ||
			    num_parse(f[2], fl[2], MIDX_MAX_MODSEQ, &hms) < 0 ||
			    apply_batch(ix, r, nr, next, hms) < 0) {
				rc = -1;
				break;
			}
			logrec_free(r, nr);
			nr = 0;
			*used = (size_t)(nl + 1 - p);
			continue;
		}
		if (nr == cap) {
			cap = cap ? cap * 2 : 16;
			r = xreallocarray(r, cap, sizeof(*r));
		}
		memset(&r[nr], 0, sizeof(r[nr]));
		if (s[0] == '+' && parse_entry(s + 2, len - 2, &r[nr].m) == 0) {
			if (!r[nr].m.name) {
				msg_free(&r[nr].m);
				rc = -1;
				break;
			}
			nr++;
		} else if (s[0] == '-' && num_parse(s + 2, len - 2, UINT32_MAX, &v) == 0) {
			r[nr].drop = 1;
			r[nr++].m.uid = (uint32_t)v;
		} else {
			rc = -1;
			break;
		}
	}
	logrec_free(r, nr);
	free(r);
	if (ix->nexpunged > 1) {
		size_t i, k = 1;

		qsort(ix->expunged, ix->nexpunged, sizeof(*ix->expunged), cmp_u32);
		for (i = 1; i < ix->nexpunged; i++)
			if (ix->expunged[i] != ix->expunged[k - 1])
				ix->expunged[k++] = ix->expunged[i];
		ix->nexpunged = k;
	}
	return rc;
}

/* --- the folder ------------------------------------------------------ */

/* One file found: its BASENAME is name + 4 for blen bytes (base is only
 * made for a new file that becomes an entry). */
struct scanned {
	char *base;
	char *name;		/* "new/..." or "cur/..." */
	size_t blen;
	uint64_t hash;
	unsigned flags;
	int used;
	int dup;		/* the same BASENAME is kept under another name */
};

/* The files by BASENAME in a hash table (open addressing, indices into
 * v): matching 10,000 index entries to 10,000 files costs no sort. */
struct scan {
	struct scanned *v;
	size_t n, cap;
	uint32_t *tab;		/* index + 1, 0 empty */
	size_t tabsize;		/* a power of two, at least twice n */
};

static void
scan_free(struct scan *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		free(s->v[i].base);
		free(s->v[i].name);
	}
	free(s->v);
	free(s->tab);
	memset(s, 0, sizeof(*s));
}

static uint64_t
base_hash(const char *p, size_t n)
{
	return hash_fnv1a(p, n);
}

static const char *
scanned_base(const struct scanned *e)
{
	return e->name + 4;
}

/* The slot of BASENAME p/n: the entry there has it, or the slot is empty. */
static size_t
scan_slot(const struct scan *s, const char *p, size_t n, uint64_t h)
{
	size_t mask = s->tabsize - 1, i = (size_t)h & mask;

	for (;;) {
		uint32_t k = s->tab[i];
		const struct scanned *e;

		if (!k)
			return i;
		e = &s->v[k - 1];
		/* a matched entry's name has moved to the index: it is never
		 * looked for again (one entry per BASENAME) */
		if (e->name && e->hash == h && e->blen == n && !memcmp(scanned_base(e), p, n))
			return i;
		i = (i + 1) & mask;
	}
}

static struct scanned *
scan_find(const struct scan *s, const char *base)
{
	size_t n = strlen(base);
	uint64_t h = base_hash(base, n);
	size_t i;

	if (!s->tabsize)
		return NULL;
	i = scan_slot(s, base, n, h);
	return s->tab[i] ? &s->v[s->tab[i] - 1] : NULL;
}

static int
scan_dir(struct mstore_index *ix, const char *sub, struct scan *s, struct buf *err)
{
	int fd = openat(ix->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	if (fd < 0 || !(d = fdopendir(fd))) {
		buf_printf(err, "%s/%s: %s", ix->path, sub, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name, *info;
		size_t bl = strcspn(nm, ",:");
		struct scanned *e;
		struct buf b = BUF_INIT;

		if (nm[0] == '.' || de->d_type == DT_DIR)
			continue;
		if (!base_valid(nm, bl)) {
			msg_warn("%s/%s/%s: name not usable in the UID index, skipped", ix->path, sub, nm);
			continue;
		}
		if (s->n >= MIDX_MAX_MSGS)
			break;
		if (s->n == s->cap) {
			s->cap = s->cap ? s->cap * 2 : 64;
			s->v = xreallocarray(s->v, s->cap, sizeof(*s->v));
		}
		e = &s->v[s->n++];
		e->base = NULL;
		buf_printf(&b, "%s/%s", sub, nm);
		e->name = buf_steal(&b);
		e->blen = bl;
		e->hash = base_hash(nm, bl);
		info = strstr(nm, ":2,");
		e->flags = info ? mstore_index_flags_parse(info + 3) : 0;
		e->used = 0;
		e->dup = 0;
		errno = 0;
	}
	if (errno) {
		buf_printf(err, "%s/%s: readdir: %s", ix->path, sub, strerror(errno));
		closedir(d);
		return -1;
	}
	closedir(d);
	return 0;
}

/* Of two files with the same BASENAME: cur/ before new/, then by name. */
static int
cmp_scanned(const struct scanned *x, const struct scanned *y)
{
	return strcmp(x->name, y->name);
}

static int
dir_stamp(struct mstore_index *ix, struct timespec *t)
{
	struct stat st;

	if (fstatat(ix->dirfd, "new", &st, 0) < 0)
		return -1;
	t[0] = st.st_mtim;
	if (fstatat(ix->dirfd, "cur", &st, 0) < 0)
		return -1;
	t[1] = st.st_mtim;
	return 0;
}

/* List new/ then cur/ (a file moving from new/ to cur/ meanwhile is seen
 * at least once), again while either changed during the listing: a file
 * renamed in cur/ while readdir runs may be missed, and would then look
 * expunged. */
static int
scan_folder(struct mstore_index *ix, struct scan *s, struct buf *err)
{
	struct timespec t0[2], t1[2];
	size_t i, k;
	int tries;

	for (tries = 0; ; tries++) {
		scan_free(s);
		if (dir_stamp(ix, t0) < 0) {
			buf_printf(err, "%s: stat new/, cur/: %s", ix->path, strerror(errno));
			return -1;
		}
		if (scan_dir(ix, "new", s, err) < 0 || scan_dir(ix, "cur", s, err) < 0)
			return -1;
		if (dir_stamp(ix, t1) < 0) {
			buf_printf(err, "%s: stat new/, cur/: %s", ix->path, strerror(errno));
			return -1;
		}
		if (!memcmp(t0, t1, sizeof(t0)) || tries + 1 >= MIDX_SCAN_TRIES)
			break;
	}
	for (s->tabsize = 64; s->tabsize < s->n * 2; s->tabsize *= 2)
		;
	s->tab = xcalloc(s->tabsize, sizeof(*s->tab));
	for (i = 0; i < s->n; i++) {
		struct scanned *e = &s->v[i];
		size_t slot = scan_slot(s, scanned_base(e), e->blen, e->hash);
		struct scanned *o;

		if (!s->tab[slot]) {
			s->tab[slot] = (uint32_t)i + 1;
			continue;
		}
		/* the same message in new/ and cur/ (moved during the scan):
		 * cur/ is the one kept; two in cur/: the smaller name, so
		 * that every process keeps the same one */
		o = &s->v[s->tab[slot] - 1];
		if (cmp_scanned(e, o) < 0) {
			s->tab[slot] = (uint32_t)i + 1;
			k = (size_t)(o - s->v);
			o = e;
			e = &s->v[k];
		}
		/* e is dropped; o is kept */
		if (strncmp(e->name, "new/", 4))
			msg_warn("%s/%s: same unique name as %s, skipped", ix->path, e->name, o->name);
		e->dup = 1;
	}
	return 0;
}


/* The arrival time of a Maildir name: its leading decimal seconds. */
static unsigned long long
name_time(const char *base)
{
	unsigned long long t = 0;

	while (*base >= '0' && *base <= '9' && t < 100000000000000ULL)
		t = t * 10 + (unsigned)(*base++ - '0');
	return t;
}

static int
cmp_arrival(const void *a, const void *b)
{
	const struct scanned *const *x = a, *const *y = b;
	unsigned long long tx = name_time((*x)->base), ty = name_time((*y)->base);

	if (tx != ty)
		return tx < ty ? -1 : 1;
	return strverscmp((*x)->base, (*y)->base);
}

/* The BASENAME of a new file, made when it is needed. */
static void
scanned_make_base(struct scanned *e)
{
	if (!e->base)
		e->base = xstrndup(scanned_base(e), e->blen);
}

static int
lock_index(struct mstore_index *ix, int type, struct buf *err)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = (short)type;
	fl.l_whence = SEEK_SET;
	while (fcntl(ix->lockfd, F_SETLKW, &fl) < 0) {
		if (errno == EINTR)
			continue;
		buf_printf(err, "%s/%s: fcntl lock: %s", ix->path, MIDX_LOCK, strerror(errno));
		return -1;
	}
	return 0;
}

/* The last UIDVALIDITY, kept in the lock file too, so that a deleted
 * index in the same second still gets a greater one; 0 unknown. */
static uint32_t
lock_uidvalidity(struct mstore_index *ix)
{
	char b[16];
	ssize_t r = pread(ix->lockfd, b, sizeof(b) - 1, 0);
	uint64_t v;

	if (r <= 1 || b[r - 1] != '\n' || num_parse(b, (size_t)r - 1, UINT32_MAX, &v) < 0)
		return 0;
	return (uint32_t)v;
}

static int file_stamp(struct mstore_index *ix, struct midx_stamp *st);

static void
log_header(const struct mstore_index *t, const struct midx_stamp *base, struct buf *out)
{
	buf_printf(out, "L1 %u %llu %llu %lld.%09ld\n", (unsigned)t->uidvalidity, base->ino,
	    base->size, (long long)base->mtim.tv_sec, (long)base->mtim.tv_nsec);
}

/*
 * Bring t (the file as base stamps it, and the log up to t->log_off) up
 * to the log's last complete batch; under the lock, read or write.  0
 * done (no log, or one of another file, or a bad one: then t->log_bad
 * and nothing more is read from it); 2 the log is not the one t read
 * (removed or made again by hand): t must be read from the file again.
 */
static int
log_catch_up(struct mstore_index *ix, struct mstore_index *t, const struct midx_stamp *base)
{
	int fd = openat(ix->dirfd, MIDX_LOG_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct buf hdr = BUF_INIT;
	struct stat sb;
	char *data = NULL;
	size_t off, want, used = 0;
	ssize_t got;

	if (fd < 0 || fstat(fd, &sb) < 0) {
		if (fd >= 0)
			close(fd);
		return t->log_off > 0 ? 2 : 0;
	}
	if (t->log_off > 0 && ((unsigned long long)sb.st_ino != t->log_ino || sb.st_size < t->log_off)) {
		close(fd);
		return 2;
	}
	if (sb.st_size == t->log_off || t->log_bad)
		goto out;
	if (sb.st_size > MIDX_MAX_FILE) {
		t->log_bad = 1;
		goto out;
	}
	off = (size_t)t->log_off;
	want = (size_t)sb.st_size - off;
	data = xmalloc(want);
	if (lseek(fd, (off_t)off, SEEK_SET) < 0 || (got = read_full(fd, data, want)) < 0)
		goto out;	/* (a read error: the next sync tries again) */
	if (off == 0) {
		log_header(t, base, &hdr);
		if ((size_t)got < hdr.len || memcmp(data, hdr.data, hdr.len)) {
			/* a log of another file (a crash after the file's rename),
			 * or a torn header: not ours; the next change writes the
			 * file, which removes it */
			t->log_bad = 1;
			goto out;
		}
	}
	if (mstore_index_apply_log(t, data + hdr.len, (size_t)got - hdr.len, &used) < 0) {
		msg_warn("%s/%s: malformed after byte %zu; the index file is written again",
		    ix->path, MIDX_LOG_FILE, off + hdr.len + used);
		t->log_bad = 1;
	}
	t->log_off = (long long)(off + hdr.len + used);
	t->log_ino = (unsigned long long)sb.st_ino;
out:
	close(fd);
	free(data);
	buf_free(&hdr);
	return 0;
}

static int write_index(struct mstore_index *ix, struct buf *err);

/*
 * Write ix->pending: as one batch appended to the log, or (no usable log,
 * or one that would grow past MIDX_LOG_MIN and the file's size /
 * MIDX_LOG_SHARE) the whole file, which ends the log.  Under the write
 * lock, after a sync, with the changes made in msgs[].
 */
static int
commit_pending(struct mstore_index *ix, struct buf *err)
{
	struct buf out = BUF_INIT;
	struct stat sb;
	long long lim = (long long)(ix->file_stamp.size / MIDX_LOG_SHARE);
	int fd = -1, fresh = ix->log_off == 0;

	if (!ix->pending.len)
		return 0;
	if (lim < MIDX_LOG_MIN)
		lim = MIDX_LOG_MIN;
	if (!ix->file_ok || ix->log_bad || ix->log_off + (long long)ix->pending.len + 64 > lim) {
		buf_reset(&ix->pending);
		return write_index(ix, err);
	}
	if (fresh)
		log_header(ix, &ix->file_stamp, &out);
	buf_add(&out, ix->pending.data, ix->pending.len);
	buf_printf(&out, "C %u %llu\n", (unsigned)ix->uidnext, (unsigned long long)ix->highestmodseq);
	buf_reset(&ix->pending);
	/* until it is written, msgs[] is not what the files say */
	ix->file_ok = 0;
	fd = openat(ix->dirfd, MIDX_LOG_FILE, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0 || fstat(fd, &sb) < 0)
		goto syserr;
	if (!fresh && (unsigned long long)sb.st_ino != ix->log_ino) {
		/* (the sync just made would have seen that) */
		close(fd);
		buf_free(&out);
		return write_index(ix, err);
	}
	/* a batch torn by a crash goes; the new one follows the last whole one */
	if ((sb.st_size != ix->log_off && ftruncate(fd, (off_t)ix->log_off) < 0) ||
	    lseek(fd, (off_t)ix->log_off, SEEK_SET) < 0 || write_full(fd, out.data, out.len) < 0 ||
	    fdatasync(fd) < 0)
		goto syserr;
	if (close(fd) < 0) {
		fd = -1;
		goto syserr;
	}
	fd = -1;
	/* a new log's name must last as its batch does */
	if (fresh && fsync_dir(ix->path) < 0)
		goto syserr;
	ix->log_off += (long long)out.len;
	ix->log_ino = (unsigned long long)sb.st_ino;
	ix->file_ok = 1;
	buf_free(&out);
	return 0;
syserr:
	buf_printf(err, "%s/%s: write: %s", ix->path, MIDX_LOG_FILE, strerror(errno));
	if (fd >= 0)
		close(fd);
	buf_free(&out);
	return -1;
}

static int
write_index(struct mstore_index *ix, struct buf *err)
{
	struct buf out = BUF_INIT, path = BUF_INIT, uv = BUF_INIT;
	int rc = 0;

	mstore_index_format(ix, &out);
	buf_printf(&path, "%s/%s", ix->path, MIDX_FILE);
	ix->file_ok = 0;
	if (write_file_atomic(buf_str(&path), out.data, out.len, 0600) < 0) {
		buf_printf(err, "%s: write: %s", buf_str(&path), strerror(errno));
		rc = -1;
	} else {
		if (file_stamp(ix, &ix->file_stamp) == 0)
			ix->file_ok = 1;	/* msgs[] is the file now */
		/* the new file holds what the log did: a log left behind
		 * names the old file, and nobody applies it */
		if (unlinkat(ix->dirfd, MIDX_LOG_FILE, 0) < 0 && errno != ENOENT)
			msg_warn("%s/%s: unlink: %s", ix->path, MIDX_LOG_FILE, strerror(errno));
		ix->log_off = 0;
		ix->log_ino = 0;
		ix->log_bad = 0;
	}
	/* only a hint for the next rebuild: a failure here is not worth
	 * failing the sync for, and the lock file needs no fsync */
	buf_printf(&uv, "%u\n", (unsigned)ix->uidvalidity);
	if (rc == 0 && lock_uidvalidity(ix) != ix->uidvalidity &&
	    (ftruncate(ix->lockfd, 0) < 0 || pwrite(ix->lockfd, uv.data, uv.len, 0) != (ssize_t)uv.len))
		msg_warn("%s/%s: %s", ix->path, MIDX_LOCK, strerror(errno));
	buf_free(&out);
	buf_free(&path);
	buf_free(&uv);
	return rc;
}

static uint32_t
new_uidvalidity(uint32_t floor)
{
	time_t t = time(NULL);
	uint32_t v = t > 0 && (uint64_t)t < UINT32_MAX ? (uint32_t)t : 1;

	if (v <= floor)
		v = floor < UINT32_MAX ? floor + 1 : 1;
	return v;
}

/*
 * The fast path of a sync: new/, cur/ and the index file as the last full
 * sync saw them mean nothing changed, and a sync of a 10,000-message
 * folder is three stat() calls instead of reading the file and the
 * directories.  The file is only replaced by rename under the lock, so a
 * change always shows in its inode.  A directory shows a change in its
 * mtime, but the kernel stamps with a coarse clock (a tick, 1-10 ms): a
 * rename in the same tick as our look leaves the mtime as it was.  So a
 * directory stamp counts only when its mtime was well in the past
 * (MIDX_STAMP_AGE) when it was taken; a directory changed just now is
 * read again at every sync until it has been quiet that long.
 */
#define MIDX_STAMP_AGE_NS	50000000LL	/* 50 ms */

static const char *const stamp_names[3] = { "new", "cur", MIDX_FILE };

/* 0 with st[] filled, -1 when one of them cannot be looked at. */
static int
take_stamps(struct mstore_index *ix, struct midx_stamp *st, int *recent)
{
	struct timespec now;
	size_t i;

	clock_gettime(CLOCK_REALTIME_COARSE, &now);
	*recent = 0;
	for (i = 0; i < 3; i++) {
		struct stat sb;

		memset(&st[i], 0, sizeof(st[i]));
		if (fstatat(ix->dirfd, stamp_names[i], &sb, 0) < 0) {
			if (i == 2 && errno == ENOENT)
				continue;
			return -1;
		}
		st[i].mtim = sb.st_mtim;
		st[i].ctim = sb.st_ctim;
		st[i].ino = (unsigned long long)sb.st_ino;
		st[i].size = (unsigned long long)sb.st_size;
		if (i < 2) {
			long long age = ((long long)now.tv_sec - (long long)sb.st_mtim.tv_sec) * 1000000000LL +
			    (now.tv_nsec - sb.st_mtim.tv_nsec);
			long long cage = ((long long)now.tv_sec - (long long)sb.st_ctim.tv_sec) * 1000000000LL +
			    (now.tv_nsec - sb.st_ctim.tv_nsec);

			if (age < MIDX_STAMP_AGE_NS || cage < MIDX_STAMP_AGE_NS)
				*recent = 1;
		}
	}
	return 0;
}

static int
same_stamps1(const struct midx_stamp *a, const struct midx_stamp *b)
{
	return a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
	    a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec &&
	    a->ino == b->ino && a->size == b->size;
}

static int
same_stamps(const struct midx_stamp *a, const struct midx_stamp *b)
{
	size_t i;

	for (i = 0; i < 3; i++)
		if (a[i].mtim.tv_sec != b[i].mtim.tv_sec || a[i].mtim.tv_nsec != b[i].mtim.tv_nsec ||
		    a[i].ctim.tv_sec != b[i].ctim.tv_sec || a[i].ctim.tv_nsec != b[i].ctim.tv_nsec ||
		    a[i].ino != b[i].ino || a[i].size != b[i].size)
			return 0;
	return 1;
}

static int sync_full(struct mstore_index *ix, struct buf *err, int ro);

/* The index file's stamp; -1 when it cannot be looked at (or is gone). */
static int
file_stamp(struct mstore_index *ix, struct midx_stamp *st)
{
	struct stat sb;

	memset(st, 0, sizeof(*st));
	if (fstatat(ix->dirfd, MIDX_FILE, &sb, 0) < 0)
		return -1;
	st->mtim = sb.st_mtim;
	st->ctim = sb.st_ctim;
	st->ino = (unsigned long long)sb.st_ino;
	st->size = (unsigned long long)sb.st_size;
	return 0;
}

/* f gets a copy of ix's state: what parsing the file (and its log)
 * would give when the file is as ix last read or wrote it. */
static void
clone_state(const struct mstore_index *ix, struct mstore_index *f)
{
	size_t i;

	f->uidvalidity = ix->uidvalidity;
	f->uidnext = ix->uidnext;
	f->highestmodseq = ix->highestmodseq;
	f->msgs = xreallocarray(NULL, ix->n ? ix->n : 1, sizeof(*f->msgs));
	for (i = 0; i < ix->n; i++) {
		f->msgs[i] = ix->msgs[i];
		f->msgs[i].base = xstrdup(ix->msgs[i].base);
		/* (the file has every name: N:) */
		f->msgs[i].name = ix->msgs[i].name ? xstrdup(ix->msgs[i].name) : NULL;
		f->msgs[i].keywords = ix->msgs[i].keywords ? xstrdup(ix->msgs[i].keywords) : NULL;
	}
	f->n = ix->n;
	f->log_off = ix->log_off;
	f->log_ino = ix->log_ino;
	f->log_bad = ix->log_bad;
}

/*
 * The folder as the index file describes it (hermod-uidlist.stamp): a
 * process that has just listed new/ and cur/, or changed them itself
 * under the write lock starting from such a listing, writes the stamps
 * of new/, cur/ and the index file as they are then.  Another process
 * that finds all three still so needs no listing of its own: the file
 * (its entries with their N: names) is the folder.  Changes by programs
 * that do not take the lock (local delivering into new/, popd, another
 * MUA) move a directory's stamp and so force a listing, except one in
 * the same clock tick as a change of ours, which the stamp cannot show:
 * so the description holds for MIDX_DESCRIBED_SECS after the last
 * listing at most, and then some process lists the folder again.
 */
#define MIDX_DESCRIBED_SECS	1

static void
stamp_fmt(struct buf *out, const struct midx_stamp *st)
{
	buf_printf(out, " %lld.%09ld/%lld.%09ld/%llu/%llu", (long long)st->mtim.tv_sec,
	    (long)st->mtim.tv_nsec, (long long)st->ctim.tv_sec, (long)st->ctim.tv_nsec,
	    st->ino, st->size);
}

/* Write the description: st[] as taken (new/, cur/ before the listing
 * or after our change; the file after our write), listed = when the
 * folder was last listed.  A failure only costs the next sync a listing. */
static void
describe(struct mstore_index *ix, const struct midx_stamp *st, long long listed, int trusted)
{
	struct buf out = BUF_INIT, path = BUF_INIT;
	size_t i;

	buf_printf(&out, "S1 %lld %d", listed, trusted);
	for (i = 0; i < 3; i++)
		stamp_fmt(&out, &st[i]);
	buf_addc(&out, '\n');
	buf_printf(&path, "%s/%s", ix->path, MIDX_STAMP_FILE);
	{
		char b[512];
		int fd = openat(ix->dirfd, MIDX_STAMP_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		ssize_t r = fd >= 0 ? read(fd, b, sizeof(b)) : -1;

		if (fd >= 0)
			close(fd);
		/* the same again (listings in the same second): leave it */
		if (r == (ssize_t)out.len && !memcmp(b, out.data, out.len))
			goto done;
	}
	/* no fsync: after a crash a lost description is a listing more */
	if (write_file_atomic_nosync(buf_str(&path), out.data, out.len, 0600) < 0 &&
	    errno != EACCES && errno != EROFS && errno != EPERM)
		msg_warn("%s: write: %s", buf_str(&path), strerror(errno));
done:
	ix->listed = listed;
	buf_free(&out);
	buf_free(&path);
}

static int
stamp_parse1(const char *s, struct midx_stamp *st)
{
	long long ms, cs;
	long mn, cn;
	unsigned long long ino, size;
	int used = 0;

	if (sscanf(s, " %lld.%ld/%lld.%ld/%llu/%llu%n", &ms, &mn, &cs, &cn, &ino, &size, &used) != 6)
		return -1;
	memset(st, 0, sizeof(*st));
	st->mtim.tv_sec = (time_t)ms;
	st->mtim.tv_nsec = mn;
	st->ctim.tv_sec = (time_t)cs;
	st->ctim.tv_nsec = cn;
	st->ino = ino;
	st->size = size;
	return used;
}

int
mstore_index_parse_description(const char *p, size_t n, struct midx_stamp *st, long long *listed,
    int *trusted)
{
	char b[512];
	const char *q;
	size_t i;
	int used;

	/* one bounded line, NUL-free, LF-terminated */
	if (n == 0 || n >= sizeof(b) || p[n - 1] != '\n' || memchr(p, '\0', n))
		return -1;
	memcpy(b, p, n);
	b[n] = '\0';
	if (sscanf(b, "S1 %lld %d%n", listed, trusted, &used) != 2 || (*trusted != 0 && *trusted != 1))
		return -1;
	for (q = b + used, i = 0; i < 3; i++, q += used)
		if ((used = stamp_parse1(q, &st[i])) < 0)
			return -1;
	return *q == '\n' ? 0 : -1;
}

/* The description: 0 with st[], *listed and *trusted; -1 none usable. */
static int
read_description(struct mstore_index *ix, struct midx_stamp *st, long long *listed, int *trusted)
{
	char b[512];
	ssize_t r;
	int fd = openat(ix->dirfd, MIDX_STAMP_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -1;
	r = read(fd, b, sizeof(b));
	close(fd);
	if (r <= 0)
		return -1;
	return mstore_index_parse_description(b, (size_t)r, st, listed, trusted);
}

static long long
now_sec(void)
{
	return (long long)time(NULL);
}

static int install(struct mstore_index *ix, struct mstore_index *f, const struct midx_stamp *fst,
    int fst_ok);

/*
 * A sync without a listing, when the description fits the folder as it
 * is now (now[]: new/, cur/, the file) and is young enough: 0 done, 1 a
 * listing is needed after all.
 */
static int
sync_described(struct mstore_index *ix, const struct midx_stamp *now, int recent)
{
	struct midx_stamp d[3];
	long long listed;
	struct mstore_index f;
	struct buf data = BUF_INIT, path = BUF_INIT;
	size_t i;
	int rc = 1, trusted;

	/* trusted: made by a listing whose directory stamps were old enough
	 * (what our own stamp_ok needs); else good for a short while only */
	/* an untrusted one also ends when the folder has been quiet long
	 * enough for a listing to make a trusted one */
	if (ix->force_list || read_description(ix, d, &listed, &trusted) < 0 || !same_stamps(d, now) ||
	    (!trusted && (!recent || now_sec() - listed >= MIDX_DESCRIBED_SECS || listed > now_sec())))
		return 1;
	ix->listed = listed;
	if (trusted) {
		memcpy(ix->stamp, now, sizeof(ix->stamp));
		ix->stamp_ok = 1;
	}
	if (ix->file_ok && same_stamps1(&now[2], &ix->file_stamp)) {
		/* our msgs[] is that file already */
		free(ix->expunged);
		ix->expunged = NULL;
		ix->nexpunged = 0;
		ix->rebuilt = 0;
		return 0;
	}
	memset(&f, 0, sizeof(f));
	buf_printf(&path, "%s/%s", ix->path, MIDX_FILE);
	if (read_file(buf_str(&path), &data, MIDX_MAX_FILE) < 0 ||
	    mstore_index_parse(&f, data.data ? data.data : "", data.len) != MIDX_PARSE_OK ||
	    (ix->uidvalidity && f.uidvalidity != ix->uidvalidity))
		goto out;
	for (i = 0; i < f.n; i++)
		if (!f.msgs[i].name)
			goto out;	/* an old file: only a listing gives the names */
	/* (we hold the lock: the file read is the one stamped in now[2]) */
	(void)log_catch_up(ix, &f, &now[2]);
	ix->rebuilt = 0;
	rc = install(ix, &f, &now[2], 1) < 0 ? 1 : 0;
out:
	mstore_index_clear(&f);
	buf_free(&data);
	buf_free(&path);
	return rc;
}

static int sync_locked1(struct mstore_index *ix, struct buf *err, int ro);

/* The sync itself, with the lock held (ro: a read lock; then 1 when it
 * must be done again under the write lock): the folder, then what the
 * change log has that msgs[] lacks. */
static int
sync_locked(struct mstore_index *ix, struct buf *err, int ro)
{
	int rc = sync_locked1(ix, err, ro), tries;

	for (tries = 0; rc == 0 && ix->file_ok && tries < 2; tries++) {
		if (log_catch_up(ix, ix, &ix->file_stamp) != 2)
			break;
		/* not the log we read: from the file again, and a listing,
		 * for the names the file has may be old */
		ix->file_ok = 0;
		ix->force_list = 1;
		ix->stamp_ok = 0;
		ix->log_off = 0;
		rc = sync_locked1(ix, err, ro);
	}
	return rc;
}

static int
sync_locked1(struct mstore_index *ix, struct buf *err, int ro)
{
	struct midx_stamp before[3];
	int recent = 1, rc;

	if (ix->stamp_ok && take_stamps(ix, before, &recent) == 0 && same_stamps(before, ix->stamp)) {
		free(ix->expunged);
		ix->expunged = NULL;
		ix->nexpunged = 0;
		ix->rebuilt = 0;
		return 0;
	}
	ix->stamp_ok = 0;
	/* the directories' stamps from before the scan: a change during it
	 * makes them differ at the next sync */
	if (take_stamps(ix, before, &recent) < 0)
		recent = 1;
	else if (sync_described(ix, before, recent) == 0) {
		ix->described = 1;
		return 0;
	}
	ix->described = 0;
	rc = sync_full(ix, err, ro);
	if (rc == 0) {
		/* (a read-locked listing that found something to write leaves
		 * the write pass to list again, whatever it finds described) */
		ix->force_list = 0;
		struct midx_stamp after[3];
		int r2;

		/* the file as we left it (we hold the lock: only we wrote it) */
		if (take_stamps(ix, after, &r2) == 0) {
			before[2] = after[2];
			describe(ix, before, now_sec(), !recent);
			ix->described = 1;
			if (!recent) {
				memcpy(ix->stamp, before, sizeof(before));
				ix->stamp_ok = 1;
			}
		}
	}
	return rc;
}

/* After a change of ours under the write lock that began from a
 * described folder: describe it as it is now, still as of the last
 * listing (see sync_described). */
static void
describe_change(struct mstore_index *ix)
{
	struct midx_stamp now[3];
	int recent;

	if (ix->described && take_stamps(ix, now, &recent) == 0)
		describe(ix, now, ix->listed, 0);
}

/* A full sync: read the file, list new/ and cur/, match them.  ro (a
 * read lock is held): 1, with nothing changed, when the file must be
 * written. */
static int
sync_full(struct mstore_index *ix, struct buf *err, int ro)
{
	struct mstore_index f;
	struct buf data = BUF_INIT, path = BUF_INIT;
	struct scan s = { NULL, 0, 0, NULL, 0 };
	struct midx_stamp fst;
	int fst_ok = 0;
	struct scanned **fresh = NULL;
	size_t i, kept, nfresh = 0, cap, gone = 0;
	int pr = MIDX_PARSE_BAD, changed = 0, rc = -1;
	uint32_t floor;

	memset(&f, 0, sizeof(f));
	buf_printf(&path, "%s/%s", ix->path, MIDX_FILE);
	if (ix->file_ok && file_stamp(ix, &fst) == 0 && same_stamps1(&fst, &ix->file_stamp)) {
		clone_state(ix, &f);
		if (log_catch_up(ix, &f, &fst) == 2) {
			mstore_index_clear(&f);
			memset(&f, 0, sizeof(f));
		} else {
			pr = MIDX_PARSE_OK;
			fst_ok = 1;
		}
	}
	if (pr == MIDX_PARSE_OK)
		;
	else if ((fst_ok = file_stamp(ix, &fst) == 0),
	    read_file(buf_str(&path), &data, MIDX_MAX_FILE) == 0) {
		pr = mstore_index_parse(&f, data.data ? data.data : "", data.len);
		/* what we parsed is what the stamp taken before stands for
		 * (we hold the lock: nobody replaces the file meanwhile) */
		fst_ok = fst_ok && pr == MIDX_PARSE_OK;
		/* and the log's changes to it, before the files are matched
		 * (else their flags and names would look changed outside) */
		if (fst_ok)
			(void)log_catch_up(ix, &f, &fst);
	} else if (errno == EFBIG) {
		/* (the read-locked pass only finds out: the write pass says it) */
		if (!ro)
			msg_warn("%s: larger than %ld bytes, rebuilt", buf_str(&path), MIDX_MAX_FILE);
	} else if (errno != ENOENT) {
		buf_printf(err, "%s: read: %s", buf_str(&path), strerror(errno));
		goto out;
	}
	if (pr != MIDX_PARSE_OK)
		changed = 1;
	if (pr == MIDX_PARSE_SALVAGED && !ro)
		msg_warn("%s: inconsistent entries dropped", buf_str(&path));
	if (pr == MIDX_PARSE_BAD) {
		/* no UID can be trusted: a new UIDVALIDITY, greater than any
		 * this folder had that we know of */
		floor = f.uidvalidity;
		if (lock_uidvalidity(ix) > floor)
			floor = lock_uidvalidity(ix);
		if (ix->uidvalidity > floor)
			floor = ix->uidvalidity;
		mstore_index_clear(&f);
		f.uidvalidity = new_uidvalidity(floor);
		f.uidnext = 1;
		f.highestmodseq = 1;
		if (data.len && !ro)
			msg_warn("%s: unusable, rebuilt with UIDVALIDITY %u", buf_str(&path),
			    (unsigned)f.uidvalidity);
	} else if (f.uidvalidity == ix->uidvalidity) {
		/* a file put back from a backup must not make us give again
		 * UIDs this handle has seen given */
		if (f.uidnext < ix->uidnext) {
			f.uidnext = ix->uidnext;
			changed = 1;
		}
		if (f.highestmodseq < ix->highestmodseq) {
			f.highestmodseq = ix->highestmodseq;
			changed = 1;
		}
	}
	ix->rebuilt = pr != MIDX_PARSE_OK;
	if (scan_folder(ix, &s, err) < 0)
		goto out;
	/* match entries to files; the gone ones are expunged */
	for (i = kept = 0; i < f.n; i++) {
		struct mstore_index_msg *m = &f.msgs[i];
		struct scanned *e = scan_find(&s, m->base);

		if (!e) {
			msg_free(m);
			gone++;
			changed = 1;
			continue;
		}
		e->used = 1;
		/* the file keeps every name (N:) as it is on disk, so that
		 * a sync without a listing finds each message */
		if (!m->name || strcmp(m->name, e->name))
			changed = 1;
		free(m->name);
		m->name = e->name;
		e->name = NULL;
		if (e->flags != m->flags) {
			/* flags changed by a rename outside this module */
			m->flags = e->flags;
			m->modseq = ++f.highestmodseq;
			changed = 1;
		}
		f.msgs[kept++] = *m;
	}
	f.n = kept;
	if (gone)
		f.highestmodseq++;	/* an expunge is a change (RFC 7162 3.2.10) */
	/* new files, in arrival order */
	fresh = xreallocarray(NULL, s.n ? s.n : 1, sizeof(*fresh));
	for (i = 0; i < s.n; i++)
		if (!s.v[i].used && !s.v[i].dup) {
			scanned_make_base(&s.v[i]);
			fresh[nfresh++] = &s.v[i];
		}
	if (nfresh > 1)
		qsort(fresh, nfresh, sizeof(*fresh), cmp_arrival);
	if ((uint64_t)f.uidnext + nfresh > UINT32_MAX) {
		buf_printf(err, "%s: UIDs exhausted; delete %s to start a new UIDVALIDITY",
		    ix->path, MIDX_FILE);
		goto out;
	}
	cap = f.n + nfresh;
	if (nfresh)
		f.msgs = xreallocarray(f.msgs, cap, sizeof(*f.msgs));
	for (i = 0; i < nfresh; i++) {
		struct mstore_index_msg *m = &f.msgs[f.n++];

		memset(m, 0, sizeof(*m));
		m->uid = f.uidnext++;
		m->modseq = ++f.highestmodseq;
		m->base = fresh[i]->base;
		fresh[i]->base = NULL;
		m->name = fresh[i]->name;
		fresh[i]->name = NULL;
		m->flags = fresh[i]->flags;
		changed = 1;
	}
	/* under a read lock: what must be written is left to a sync under
	 * the write lock, which starts again from the start */
	if (ro && changed) {
		rc = 1;
		goto out;
	}
	install(ix, &f, &fst, fst_ok);
	rc = changed ? write_index(ix, err) : 0;
out:
	mstore_index_clear(&f);
	scan_free(&s);
	free(fresh);
	buf_free(&data);
	buf_free(&path);
	return rc;
}

/* f (a parsed or merged state) becomes ix's: the UIDs of ix's previous
 * list that f lacks are what the caller must EXPUNGE, whether this sync
 * or another process dropped them.  f is left empty.  fst: the file's
 * stamp when msgs[] is its content (fst_ok). */
static int
install(struct mstore_index *ix, struct mstore_index *f, const struct midx_stamp *fst, int fst_ok)
{
	uint32_t *ex = NULL;
	size_t i, nex = 0;

	if (ix->uidvalidity == f->uidvalidity) {
		size_t j = 0;

		for (i = 0; i < ix->n; i++) {
			while (j < f->n && f->msgs[j].uid < ix->msgs[i].uid)
				j++;
			if (j < f->n && f->msgs[j].uid == ix->msgs[i].uid)
				continue;
			ex = xreallocarray(ex, nex + 1, sizeof(*ex));
			ex[nex++] = ix->msgs[i].uid;
		}
	}
	{
		int so = ix->stamp_ok;
		struct midx_stamp keep[3];

		memcpy(keep, ix->stamp, sizeof(keep));
		mstore_index_clear(ix);
		/* (clear forgets the stamps; the caller says what holds) */
		memcpy(ix->stamp, keep, sizeof(keep));
		ix->stamp_ok = so;
	}
	ix->expunged = ex;
	ix->nexpunged = nex;
	ix->msgs = f->msgs;
	ix->n = f->n;
	/* msgs[] is the file's content (until written, if changed) */
	ix->file_stamp = *fst;
	ix->file_ok = fst_ok;
	ix->uidvalidity = f->uidvalidity;
	ix->uidnext = f->uidnext;
	ix->highestmodseq = f->highestmodseq;
	ix->log_off = f->log_off;
	ix->log_ino = f->log_ino;
	ix->log_bad = f->log_bad;
	f->msgs = NULL;
	f->n = 0;
	return 0;
}

/* A sync under the write lock, taken and given back here. */
static int
sync_write_locked(struct mstore_index *ix, struct buf *err)
{
	int rc;

	if (lock_index(ix, F_WRLCK, err) < 0)
		return -1;
	rc = sync_locked(ix, err, 0);
	if (lock_index(ix, F_UNLCK, err) < 0)
		rc = -1;
	return rc;
}

int
mstore_index_sync(struct mstore_index *ix, struct buf *err)
{
	int rc;

	/* most syncs change nothing: those run side by side under a read
	 * lock, and only one that must write the file takes the write lock */
	if (lock_index(ix, F_RDLCK, err) < 0)
		return -1;
	rc = sync_locked(ix, err, 1);
	if (lock_index(ix, F_UNLCK, err) < 0)
		rc = -1;
	if (rc != 1)
		return rc;
	return sync_write_locked(ix, err);
}

void
mstore_index_undescribe(const char *folder)
{
	struct buf p = BUF_INIT;
	struct flock fl;
	int fd;

	/* under the write lock: a listing that began before our change
	 * cannot describe the folder after we have removed the description */
	buf_printf(&p, "%s/%s", folder, MIDX_LOCK);
	fd = open(buf_str(&p), O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fd >= 0)
		while (fcntl(fd, F_SETLKW, &fl) < 0 && errno == EINTR)
			;
	buf_reset(&p);
	buf_printf(&p, "%s/%s", folder, MIDX_STAMP_FILE);
	if (unlink(buf_str(&p)) < 0 && errno != ENOENT)
		msg_warn("%s: unlink: %s", buf_str(&p), strerror(errno));
	if (fd >= 0)
		close(fd);	/* (and the lock with it) */
	buf_free(&p);
}

int
mstore_index_sync_changed(struct mstore_index *ix, struct buf *err)
{
	ix->force_list = 1;
	ix->stamp_ok = 0;
	return sync_write_locked(ix, err);
}

int
mstore_index_sync_listed(struct mstore_index *ix, struct buf *err)
{
	ix->force_list = 1;
	ix->stamp_ok = 0;
	return mstore_index_sync(ix, err);
}

int
mstore_index_open(struct mstore_index *ix, const char *path, struct buf *err)
{
	memset(ix, 0, sizeof(*ix));
	ix->dirfd = ix->lockfd = -1;
	ix->path = xstrdup(path);
	if (maildir_create(path) < 0) {
		buf_printf(err, "maildir %s: %s", path, strerror(errno));
		return -1;
	}
	if ((ix->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		buf_printf(err, "maildir %s: %s", path, strerror(errno));
		return -1;
	}
	ix->lockfd = openat(ix->dirfd, MIDX_LOCK,
	    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (ix->lockfd < 0) {
		buf_printf(err, "%s/%s: %s", path, MIDX_LOCK, strerror(errno));
		return -1;
	}
	return mstore_index_sync(ix, err);
}

static int
cmp_uid(const void *key, const void *elt)
{
	uint32_t k = *(const uint32_t *)key, u = ((const struct mstore_index_msg *)elt)->uid;

	return k < u ? -1 : k > u;
}

struct mstore_index_msg *
mstore_index_find(struct mstore_index *ix, uint32_t uid)
{
	if (ix->n == 0)
		return NULL;
	return bsearch(&uid, ix->msgs, ix->n, sizeof(*ix->msgs), cmp_uid);
}

/* cur/ name of m with the standard letters replaced by flags and the
 * other letters (Dovecot's keyword letters a-z and the like) kept. */
static void
flagged_name(const struct mstore_index_msg *m, unsigned flags, struct buf *out)
{
	const char *file = strchr(m->name, '/') + 1, *info = strstr(file, ":2,");
	const char *colon = strchr(file, ':');
	size_t stem = colon ? (size_t)(colon - file) : strlen(file);
	unsigned char seen[256];
	const char *p;
	int c;

	memset(seen, 0, sizeof(seen));
	if (info)
		for (p = info + 3; *p; p++)
			seen[(unsigned char)*p] = 1;
	for (p = flag_letters; *p; p++)
		seen[(unsigned char)*p] = 0;
	for (p = flag_letters; *p; p++)
		if (flags & (1u << (p - flag_letters)))
			seen[(unsigned char)*p] = 1;
	buf_adds(out, "cur/");
	buf_add(out, file, stem);
	buf_adds(out, ":2,");
	/* the Maildir spec wants the letters in ASCII order */
	for (c = 0x21; c < 0x7f; c++)
		if (seen[c] && c != ',' && c != '/')
			buf_addc(out, c);
}

/* A change to one message begins with the lock, a sync under it (so the
 * change applies to what is on disk now) and the message: 0 with *m set
 * and the lock held; 1 (the message is gone) or -1 (an error) with the
 * lock released again. */
/* m as it is now, for the change log (an entry given twice: the last wins) */
static void
queue_entry(struct mstore_index *ix, const struct mstore_index_msg *m)
{
	buf_adds(&ix->pending, "+ ");
	format_entry(m, &ix->pending);
}

static int
begin_change(struct mstore_index *ix, uint32_t uid, struct mstore_index_msg **m, struct buf *err)
{
	int rc;

	if (lock_index(ix, F_WRLCK, err) < 0)
		return -1;
	buf_reset(&ix->pending);
	if (sync_locked(ix, err, 0) < 0)
		rc = -1;
	else if (!(*m = mstore_index_find(ix, uid)))
		rc = 1;
	else
		return 0;
	if (lock_index(ix, F_UNLCK, err) < 0)
		rc = -1;
	return rc;
}

int
mstore_index_set_flags(struct mstore_index *ix, uint32_t uid, unsigned flags,
    struct buf *err)
{
	struct mstore_index_change c;

	memset(&c, 0, sizeof(c));
	c.uid = uid;
	c.flags = flags;
	if (mstore_index_change(ix, &c, 1, err) < 0)
		return -1;
	return c.result;
}

int
mstore_index_set_keywords(struct mstore_index *ix, uint32_t uid,
    const char *keywords, struct buf *err)
{
	struct mstore_index_msg *m;
	int rc = -1;

	if (keywords && *keywords && !mstore_index_keywords_valid(keywords)) {
		buf_printf(err, "bad keyword list");
		return -1;
	}
	if ((rc = begin_change(ix, uid, &m, err)) != 0)
		return rc;
	rc = -1;
	if (!strcmp(m->keywords ? m->keywords : "", keywords ? keywords : "")) {
		rc = 0;
		goto out;
	}
	free(m->keywords);
	m->keywords = keywords && *keywords ? xstrdup(keywords) : NULL;
	m->modseq = ++ix->highestmodseq;
	ix->stamp_ok = 0;
	queue_entry(ix, m);
	if ((rc = commit_pending(ix, err)) == 0)
		describe_change(ix);
out:
	if (lock_index(ix, F_UNLCK, err) < 0)
		rc = -1;
	return rc;
}

int
mstore_index_change(struct mstore_index *ix, struct mstore_index_change *c, size_t n,
    struct buf *err)
{
	struct buf to = BUF_INIT;
	size_t i;
	int rc = 0;

	for (i = 0; i < n; i++)
		if (c[i].set_keywords && c[i].keywords && *c[i].keywords &&
		    !mstore_index_keywords_valid(c[i].keywords)) {
			buf_printf(err, "bad keyword list");
			return -1;
		}
	if (lock_index(ix, F_WRLCK, err) < 0)
		return -1;
	buf_reset(&ix->pending);
	if (sync_locked(ix, err, 0) < 0)
		rc = -1;
	for (i = 0; rc == 0 && i < n; i++) {
		struct mstore_index_msg *m = mstore_index_find(ix, c[i].uid);
		unsigned flags = c[i].flags & MIDX_ALL;
		int mod = 0, renamed = 0;

		c[i].result = m ? 0 : 1;
		if (!m)
			continue;
		buf_reset(&to);
		flagged_name(m, flags, &to);
		if (strcmp(buf_str(&to), m->name)) {
			if (renameat(ix->dirfd, m->name, ix->dirfd, buf_str(&to)) < 0) {
				buf_printf(err, "%s/%s: rename to %s: %s", ix->path, m->name,
				    buf_str(&to), strerror(errno));
				rc = -1;
				break;
			}
			free(m->name);
			m->name = buf_steal(&to);
			ix->stamp_ok = 0;
			renamed = 1;
		}
		if (m->flags != flags) {
			m->flags = flags;
			mod = 1;
		}
		if (c[i].set_keywords && strcmp(m->keywords ? m->keywords : "",
		    c[i].keywords ? c[i].keywords : "")) {
			free(m->keywords);
			m->keywords = c[i].keywords && *c[i].keywords ? xstrdup(c[i].keywords) : NULL;
			mod = 1;
		}
		if (mod)
			m->modseq = ++ix->highestmodseq;
		if (mod || renamed)
			queue_entry(ix, m);
	}
	/* the renames done are on disk: the index records them even when a
	 * later one failed */
	if (ix->pending.len) {
		ix->stamp_ok = 0;
		if (commit_pending(ix, err) < 0)
			rc = -1;
		else
			describe_change(ix);
	}
	buf_free(&to);
	if (lock_index(ix, F_UNLCK, err) < 0)
		rc = -1;
	return rc;
}

int
mstore_index_begin(struct mstore_index *ix, struct buf *err)
{
	if (lock_index(ix, F_WRLCK, err) < 0)
		return -1;
	buf_reset(&ix->pending);
	if (sync_locked(ix, err, 0) < 0) {
		(void)lock_index(ix, F_UNLCK, err);
		return -1;
	}
	return 0;
}

int
mstore_index_add(struct mstore_index *ix, const char *name, const char *keywords, uint32_t *uid)
{
	const char *file, *info;
	struct mstore_index_msg *m;
	size_t bl, i;

	if (strncmp(name, "new/", 4) && strncmp(name, "cur/", 4))
		return -1;
	file = name + 4;
	bl = strcspn(file, ",:");
	if (!base_valid(file, bl) || !name_rest_valid(file + bl, strlen(file + bl)) ||
	    (keywords && *keywords && !mstore_index_keywords_valid(keywords)))
		return -1;
	/* (a listing may have found it first: then it has its UID) */
	for (i = ix->n; i-- > 0;)
		if (!strncmp(ix->msgs[i].base, file, bl) && !ix->msgs[i].base[bl]) {
			*uid = ix->msgs[i].uid;
			return 0;
		}
	if (ix->uidnext == UINT32_MAX || ix->n >= MIDX_MAX_MSGS)
		return -1;
	ix->msgs = xreallocarray(ix->msgs, ix->n + 1, sizeof(*ix->msgs));
	m = &ix->msgs[ix->n++];
	memset(m, 0, sizeof(*m));
	m->uid = ix->uidnext++;
	m->modseq = ++ix->highestmodseq;
	m->base = xstrndup(file, bl);
	m->name = xstrdup(name);
	info = strstr(file + bl, ":2,");
	m->flags = info ? mstore_index_flags_parse(info + 3) : 0;
	m->keywords = keywords && *keywords ? xstrdup(keywords) : NULL;
	ix->stamp_ok = 0;
	queue_entry(ix, m);
	*uid = m->uid;
	return 0;
}

void
mstore_index_drop(struct mstore_index *ix, uint32_t uid)
{
	struct mstore_index_msg *m = mstore_index_find(ix, uid);

	if (!m)
		return;
	remove_at(ix, (size_t)(m - ix->msgs));
	/* an expunge is a change (RFC 7162 3.2.10) */
	ix->highestmodseq++;
	ix->stamp_ok = 0;
	buf_printf(&ix->pending, "- %u\n", (unsigned)uid);
}

int
mstore_index_commit(struct mstore_index *ix, struct buf *err)
{
	int rc = 0;

	if (ix->pending.len && (rc = commit_pending(ix, err)) == 0)
		describe_change(ix);
	buf_reset(&ix->pending);
	if (lock_index(ix, F_UNLCK, err) < 0)
		rc = -1;
	return rc;
}

void
mstore_index_close(struct mstore_index *ix)
{
	mstore_index_clear(ix);
	buf_free(&ix->pending);
	if (ix->lockfd >= 0)
		close(ix->lockfd);
	if (ix->dirfd >= 0)
		close(ix->dirfd);
	free(ix->path);
	memset(ix, 0, sizeof(*ix));
	ix->dirfd = ix->lockfd = -1;
}
