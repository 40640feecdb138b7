/*
 * imap_search: SEARCH key evaluation (RFC 3501 6.4.4, WITHIN 5032,
 * CONDSTORE MODSEQ 7162, SEARCHRES "$" 5182) over the session's view,
 * and the helpers SORT and THREAD share (folding, dates, base subject,
 * first address, header loading).
 *
 * The key tree is compiled once per command (sets resolved, strings
 * converted to UTF-8 and folded), then evaluated per message in up to
 * three rounds of growing cost: what msgs[] holds (flags, UID, MODSEQ),
 * then the cached size and internal date (ibox_meta), then the
 * message's bytes.  A round answers "unknown" for keys above its cost;
 * the message is loaded only when the cheaper keys could not decide.
 */
#include "imap_search.h"
#include "mime.h"
#include "util.h"

#include <ctype.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wctype.h>

/* ---- folding ---- */

static uint32_t
fold_cp(uint32_t c)
{
	if (c < 0x80)
		return (c >= 'A' && c <= 'Z') ? c + 32 : c;
	if ((c >= 0xc0 && c <= 0xde && c != 0xd7) || (c >= 0x391 && c <= 0x3ab && c != 0x3a2) ||
	    (c >= 0x410 && c <= 0x42f))
		return c + 32;
	if (c >= 0x400 && c <= 0x40f)
		return c + 80;
	if (c >= 0x100 && c <= 0x17f && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 &&
	    c != 0x178 && c != 0x17f) {
		/* Latin Extended-A pairs capitals with the next code point,
		 * on even code points except in 0x139-0x148 and 0x179-0x17e */
		int odd = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e);
		if ((c & 1) == (odd ? 1u : 0u))
			return c + 1;
		return c;
	}
	if (c == 0x178)
		return 0xff;
	if (c <= 0x10ffff && c <= (uint32_t)WINT_MAX)
		return (uint32_t)towlower((wint_t)c);
	return c;
}

static void
put_cp(struct buf *out, uint32_t c)
{
	if (c < 0x80)
		buf_addc(out, (int)c);
	else if (c < 0x800) {
		buf_addc(out, (int)(0xc0 | (c >> 6)));
		buf_addc(out, (int)(0x80 | (c & 0x3f)));
	} else if (c < 0x10000) {
		buf_addc(out, (int)(0xe0 | (c >> 12)));
		buf_addc(out, (int)(0x80 | ((c >> 6) & 0x3f)));
		buf_addc(out, (int)(0x80 | (c & 0x3f)));
	} else {
		buf_addc(out, (int)(0xf0 | (c >> 18)));
		buf_addc(out, (int)(0x80 | ((c >> 12) & 0x3f)));
		buf_addc(out, (int)(0x80 | ((c >> 6) & 0x3f)));
		buf_addc(out, (int)(0x80 | (c & 0x3f)));
	}
}

void
isearch_fold(const char *s, size_t n, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	buf_reserve(out, n);
	out->data[out->len] = '\0';	/* buf_reserve leaves it unset */
	while (i < n) {
		uint32_t c = p[i];
		size_t len = 1;

		if (c >= 0xc2 && c <= 0xf4) {
			size_t need = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4, j;

			if (i + need <= n) {
				c &= need == 2 ? 0x1f : need == 3 ? 0x0f : 0x07;
				for (j = 1; j < need && (p[i + j] & 0xc0) == 0x80; j++)
					c = (c << 6) | (p[i + j] & 0x3f);
				if (j == need)
					len = need;
				else
					c = p[i];
			}
		}
		if (len == 1 && c >= 0x80)
			buf_addc(out, (int)c);	/* not UTF-8: kept as it is */
		else
			put_cp(out, fold_cp(c));
		i += len;
	}
}

static int
contains(const struct buf *hay, const struct buf *needle)
{
	size_t i;

	if (needle->len == 0)
		return 1;
	if (hay->len < needle->len)
		return 0;
	for (i = 0; i + needle->len <= hay->len; i++)
		if (hay->data[i] == needle->data[0] &&
		    memcmp(hay->data + i, needle->data, needle->len) == 0)
			return 1;
	return 0;
}

/* ---- dates ---- */

int64_t
isearch_days(int year, int mon, int day)
{
	/* days from civil, H. Hinnant's algorithm */
	int64_t y = year - (mon <= 2);
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (mon + (mon > 2 ? -3 : 9)) + 2) / 5 + day - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

static const char *
skip_cfws(const char *s)
{
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n' || *s == ',')
			s++;
		if (*s != '(')
			return s;
		{
			int depth = 0;

			do {
				if (*s == '\\' && s[1])
					s++;
				else if (*s == '(')
					depth++;
				else if (*s == ')')
					depth--;
				s++;
			} while (*s && depth > 0);
		}
	}
}

static int
get_num(const char **sp, int maxdig, long *v)
{
	const char *s = *sp;
	int d = 0;

	*v = 0;
	while (d < maxdig && *s >= '0' && *s <= '9') {
		*v = *v * 10 + (*s - '0');
		s++;
		d++;
	}
	if (d == 0)
		return -1;
	*sp = s;
	return d;
}

int
isearch_parse_date(const char *s, int64_t *t, int64_t *days)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	long day, year, hh = 0, mm = 0, ss = 0, zone = 0;
	int mon = 0, i, nd;

	s = skip_cfws(s);
	if (isalpha((unsigned char)*s)) {	/* day of week */
		while (isalpha((unsigned char)*s))
			s++;
		s = skip_cfws(s);
	}
	if (get_num(&s, 2, &day) < 0 || day < 1 || day > 31)
		return -1;
	s = skip_cfws(s);
	if (*s == '-')
		s++;
	for (i = 0; i < 12; i++)
		if (strncasecmp(s, months + 3 * i, 3) == 0)
			mon = i + 1;
	if (mon == 0)
		return -1;
	while (isalpha((unsigned char)*s))
		s++;
	s = skip_cfws(s);
	if (*s == '-')
		s++;
	if ((nd = get_num(&s, 4, &year)) < 0)
		return -1;
	if (nd <= 2)
		year += year < 50 ? 2000 : 1900;	/* RFC 5322 4.3 */
	else if (nd == 3)
		year += 1900;
	s = skip_cfws(s);
	if (get_num(&s, 2, &hh) > 0 && *s == ':') {
		s++;
		if (get_num(&s, 2, &mm) < 0)
			return -1;
		if (*s == ':') {
			s++;
			if (get_num(&s, 2, &ss) < 0)
				return -1;
		}
		s = skip_cfws(s);
		if (*s == '+' || *s == '-') {
			int neg = *s == '-';
			long z;

			s++;
			if (get_num(&s, 4, &z) == 4)
				zone = (z / 100) * 60 + z % 100;
			if (neg)
				zone = -zone;
		} else {
			static const struct { const char *n; int z; } zones[] = {
				{ "EDT", -4 * 60 }, { "EST", -5 * 60 }, { "CDT", -5 * 60 },
				{ "CST", -6 * 60 }, { "MDT", -6 * 60 }, { "MST", -7 * 60 },
				{ "PDT", -7 * 60 }, { "PST", -8 * 60 },
			};
			size_t k;

			for (k = 0; k < sizeof(zones) / sizeof(zones[0]); k++)
				if (strncasecmp(s, zones[k].n, 3) == 0)
					zone = zones[k].z;
		}
	} else
		hh = 0;
	if (hh > 23 || mm > 59 || ss > 60)
		return -1;
	{
		int64_t d = isearch_days((int)year, mon, (int)day);

		if (days)
			*days = d;
		*t = d * 86400 + hh * 3600 + mm * 60 + ss - zone * 60;
	}
	return 0;
}

/* ---- base subject (RFC 5256 2.1) ---- */

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* A subj-blob "[...]" *WSP at s: its length, or 0. */
static size_t
blob_len(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || s[0] != '[')
		return 0;
	for (i = 1; i < n && s[i] != ']'; i++)
		if (s[i] == '[')
			return 0;
	if (i >= n)
		return 0;
	for (i++; i < n && is_wsp(s[i]); i++)
		;
	return i;
}

/* A subj-refwd ("re" / "fw" / "fwd") *WSP [subj-blob] ":" at s: its length, or 0. */
static size_t
refwd_len(const char *s, size_t n)
{
	size_t i;

	if (n >= 2 && strncasecmp(s, "re", 2) == 0)
		i = 2;
	else if (n >= 3 && strncasecmp(s, "fwd", 3) == 0)
		i = 3;
	else if (n >= 2 && strncasecmp(s, "fw", 2) == 0)
		i = 2;
	else
		return 0;
	while (i < n && is_wsp(s[i]))
		i++;
	i += blob_len(s + i, n - i);
	if (i < n && s[i] == ':')
		return i + 1;
	return 0;
}

int
isearch_base_subject(const char *raw, struct buf *out)
{
	struct buf dec = BUF_INIT, sp = BUF_INIT;
	const char *s;
	size_t i, a, n;
	int reply = 0, changed;

	mime_header_decode(raw, strlen(raw), 64 * 1024, &dec);
	/* step 1: every run of white space is one space */
	for (i = 0; i < dec.len; i++) {
		char c = dec.data[i];

		if (c == '\t' || c == '\r' || c == '\n')
			c = ' ';
		if (c == ' ' && (sp.len == 0 || sp.data[sp.len - 1] == ' '))
			continue;
		buf_addc(&sp, c);
	}
	s = sp.data ? sp.data : "";
	a = 0;
	n = sp.len;
	for (;;) {
		/* step 2: trailing "(fwd)" and white space */
		for (;;) {
			if (n > a && s[n - 1] == ' ')
				n--;
			else if (n - a >= 5 && strncasecmp(s + n - 5, "(fwd)", 5) == 0) {
				n -= 5;
				reply = 1;
			} else
				break;
		}
		/* steps 3 to 5 */
		do {
			size_t b, r;

			changed = 0;
			while (a < n && s[a] == ' ') {
				a++;
				changed = 1;
			}
			/* subj-leader: *subj-blob subj-refwd */
			b = a;
			while ((r = blob_len(s + b, n - b)) > 0)
				b += r;
			if ((r = refwd_len(s + b, n - b)) > 0) {
				a = b + r;
				reply = 1;
				changed = 1;
				continue;
			}
			/* step 4: a subj-blob, unless it is all there is */
			r = blob_len(s + a, n - a);
			if (r > 0 && a + r < n) {
				a += r;
				changed = 1;
			}
		} while (changed);
		/* step 6: "[fwd: ... ]" */
		if (n - a >= 6 && strncasecmp(s + a, "[fwd:", 5) == 0 && s[n - 1] == ']') {
			a += 5;
			n--;
			reply = 1;
			continue;
		}
		break;
	}
	isearch_fold(s + a, n - a, out);
	buf_free(&dec);
	buf_free(&sp);
	return reply;
}

/* ---- addresses ---- */

/* Append the quoted string at *sp (after the opening quote) unquoted. */
static void
take_quoted(const char **sp, struct buf *out)
{
	const char *s = *sp;

	while (*s && *s != '"') {
		if (*s == '\\' && s[1])
			s++;
		buf_addc(out, *s++);
	}
	if (*s == '"')
		s++;
	*sp = s;
}

static void
trim_buf(struct buf *b)
{
	size_t a = 0, n = b->len;

	while (n > 0 && (b->data[n - 1] == ' ' || b->data[n - 1] == '\t'))
		n--;
	while (a < n && (b->data[a] == ' ' || b->data[a] == '\t'))
		a++;
	if (a > 0)
		memmove(b->data, b->data + a, n - a);
	buf_truncate(b, n - a);
}

static void
split_addr(const struct buf *spec, struct buf *mailbox, struct buf *host)
{
	const char *at = NULL, *s = buf_str(spec);
	size_t i;

	for (i = spec->len; i > 0; i--)
		if (s[i - 1] == '@') {
			at = s + i - 1;
			break;
		}
	if (at) {
		buf_add(mailbox, s, (size_t)(at - s));
		buf_adds(host, at + 1);
	} else
		buf_add(mailbox, s, spec->len);
}

int
isearch_first_addr(const char *value, struct buf *name, struct buf *mailbox,
    struct buf *host)
{
	struct buf phrase = BUF_INIT, spec = BUF_INIT;
	const char *s = value;
	int rc = -1;

	buf_reset(name);
	buf_reset(mailbox);
	buf_reset(host);
	for (;;) {
		s = skip_cfws(s);
		if (*s == '\0')
			break;
		if (*s == '"') {
			s++;
			take_quoted(&s, &phrase);
			buf_addc(&phrase, ' ');
			continue;
		}
		if (*s == ':') {	/* a group: its display name is no address's */
			buf_reset(&phrase);
			s++;
			continue;
		}
		if (*s == ';') {
			buf_reset(&phrase);
			s++;
			continue;
		}
		if (*s == '<') {
			const char *e, *r;

			s++;
			e = strchr(s, '>');
			if (e == NULL)
				e = s + strlen(s);
			/* a source route "@a,@b:" goes */
			r = memchr(s, ':', (size_t)(e - s));
			if (*s == '@' && r)
				s = r + 1;
			for (; s < e; s++)
				if (*s != ' ' && *s != '"')
					buf_addc(&spec, *s);
			trim_buf(&phrase);
			mime_header_decode(buf_str(&phrase), phrase.len, 64 * 1024, name);
			split_addr(&spec, mailbox, host);
			rc = 0;
			break;
		}
		/* an atom or dot-atom: part of a phrase or a bare addr-spec */
		{
			const char *st = s;

			while (*s && *s != ' ' && *s != '\t' && *s != '"' && *s != '<' &&
			    *s != '(' && *s != ',' && *s != ':' && *s != ';')
				s++;
			if (*s == ',' || *s == '\0' || *s == ';' || *s == '(' ||
			    memchr(st, '@', (size_t)(s - st))) {
				/* ends the address: phrase so far was the address */
				if (memchr(st, '@', (size_t)(s - st)) || phrase.len == 0) {
					buf_add(&spec, st, (size_t)(s - st));
					split_addr(&spec, mailbox, host);
					rc = mailbox->len > 0 ? 0 : -1;
					if (rc == 0)
						break;
					buf_reset(&spec);
					buf_reset(mailbox);
					buf_reset(host);
					continue;
				}
			}
			buf_add(&phrase, st, (size_t)(s - st));
			buf_addc(&phrase, ' ');
			if (*s == ',') {
				buf_reset(&phrase);
				s++;
			}
		}
	}
	buf_free(&phrase);
	buf_free(&spec);
	return rc;
}

/* ---- loading ---- */

int
isearch_header(struct imap_box *b, size_t i, struct header *h, struct buf *err)
{
	const char *p;
	size_t n;
	int rc;

	memset(h, 0, sizeof(*h));
	/* the header section the cache keeps is what the message would give */
	rc = ibox_meta(b, i, IBOX_META_HEADER, err);
	if (rc != IBOX_OK)
		return rc;
	if (b->msgs[i].header) {
		(void)header_parse(b->msgs[i].header, strlen(b->msgs[i].header), 256 * 1024, h);
		return IBOX_OK;
	}
	rc = ibox_load(b, i, &p, &n, err);
	if (rc != IBOX_OK)
		return rc;
	(void)header_parse(p, n, 256 * 1024, h);
	return IBOX_OK;
}

int
isearch_sent(struct imap_box *b, size_t i, const struct header *h, int64_t *t,
    struct buf *err)
{
	const struct header_field *f = h ? header_get(h, "Date") : NULL;
	int rc;

	if (f && isearch_parse_date(f->value, t, NULL) == 0)
		return IBOX_OK;
	rc = ibox_meta(b, i, IBOX_META_IDATE, err);
	if (rc != IBOX_OK)
		return rc;
	*t = b->msgs[i].idate;
	return IBOX_OK;
}

/* ---- SEARCH ---- */

int
imap_search_charset_ok(const char *charset)
{
	iconv_t cd;

	if (charset == NULL || strcasecmp(charset, "UTF-8") == 0 ||
	    strcasecmp(charset, "US-ASCII") == 0 || strcasecmp(charset, "ISO-8859-1") == 0)
		return 1;
	cd = iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1)
		return 0;
	iconv_close(cd);
	return 1;
}

/* Cost rounds */
#define L_FREE	0	/* msgs[] */
#define L_META	1	/* ibox_meta */
#define L_BYTES	2	/* the message */

struct snode {
	int type;		/* enum imap_sk */
	const struct imap_search_key *k;
	int level;		/* the round that can decide it (the most of its children) */
	struct imap_seqset set;	/* SEQSET, UID: resolved, or the saved UIDs */
	int by_uid;
	struct buf needle;	/* string keys: UTF-8, folded */
	int64_t day;		/* date keys */
	struct snode *child, *next;
};

struct mctx {
	struct imap_box *b;
	size_t i;
	int64_t now;
	struct buf *err;
	int failed;		/* IBOX_ERR seen: the search fails */
	int gone;		/* the message went: it does not match */
	int loaded;
	int header_only;	/* m was parsed from the header section alone */
	struct buf hdr;		/* (its bytes) */
	struct mime_message *m;
	int have_body, have_text;
	struct buf body, text, tmp, tmp2;
	int have_sent;
	int64_t sent_day;
	unsigned meta_need;	/* IBOX_META_* some key asks for */
};

static void
snode_free(struct snode *n)
{
	while (n) {
		struct snode *next = n->next;

		snode_free(n->child);
		imap_seq_free(&n->set);
		buf_free(&n->needle);
		free(n);
		n = next;
	}
}

static unsigned
meta_need(const struct snode *n)
{
	unsigned need = 0;

	for (; n; n = n->next) {
		switch (n->type) {
		case IMAP_SK_LARGER: case IMAP_SK_SMALLER:
			need |= IBOX_META_SIZE;
			break;
		case IMAP_SK_OLDER: case IMAP_SK_YOUNGER: case IMAP_SK_BEFORE: case IMAP_SK_ON:
		case IMAP_SK_SINCE: case IMAP_SK_SENTBEFORE: case IMAP_SK_SENTON:
		case IMAP_SK_SENTSINCE:
			need |= IBOX_META_IDATE;
			break;
		}
		need |= meta_need(n->child);
	}
	return need;
}

static int
compile(struct imap_box *b, const struct imap_search *s, const struct imap_search_key *k,
    const struct imap_seqset *saved, struct snode **out, struct buf *err)
{
	struct snode *n = xcalloc(1, sizeof(*n));
	const struct imap_search_key *c;
	struct snode **tail = &n->child;

	*out = n;
	n->type = k->type;
	n->k = k;
	for (c = k->child; c; c = c->next) {
		if (compile(b, s, c, saved, tail, err) < 0)
			return -1;
		if ((*tail)->level > n->level)
			n->level = (*tail)->level;
		tail = &(*tail)->next;
	}
	switch (k->type) {
	case IMAP_SK_SEQSET:
	case IMAP_SK_UID:
		if (k->set.saved) {
			size_t j;

			n->by_uid = 1;
			for (j = 0; saved && j < saved->n; j++)
				imap_seq_add(&n->set, saved->r[j].lo, saved->r[j].hi);
			imap_seq_normalize(&n->set);
		} else if (k->type == IMAP_SK_UID) {
			n->by_uid = 1;
			imap_seq_resolve(&k->set, b->n ? b->msgs[b->n - 1].uid :
			    (b->uidnext > 0 ? b->uidnext - 1 : 0), &n->set);
		} else
			imap_seq_resolve(&k->set, (uint32_t)b->n, &n->set);
		break;
	case IMAP_SK_LARGER: case IMAP_SK_SMALLER:
	case IMAP_SK_OLDER: case IMAP_SK_YOUNGER:
		n->level = L_META;
		break;
	case IMAP_SK_BEFORE: case IMAP_SK_ON: case IMAP_SK_SINCE:
		n->level = L_META;
		n->day = isearch_days(k->date.year, k->date.mon, k->date.day);
		break;
	case IMAP_SK_SENTBEFORE: case IMAP_SK_SENTON: case IMAP_SK_SENTSINCE:
		n->level = L_BYTES;
		n->day = isearch_days(k->date.year, k->date.mon, k->date.day);
		break;
	case IMAP_SK_BCC: case IMAP_SK_BODY: case IMAP_SK_CC: case IMAP_SK_FROM:
	case IMAP_SK_SUBJECT: case IMAP_SK_TEXT: case IMAP_SK_TO: case IMAP_SK_HEADER: {
		struct buf u = BUF_INIT;
		const char *str = k->str ? k->str : "";

		n->level = L_BYTES;
		if (s->charset && strcasecmp(s->charset, "UTF-8") != 0 &&
		    strcasecmp(s->charset, "US-ASCII") != 0) {
			if (mime_to_utf8(s->charset, str, strlen(str), SIZE_MAX, &u) == 1) {
				buf_free(&u);
				buf_sets(err, "BADCHARSET");
				return -1;
			}
		} else
			buf_adds(&u, str);
		isearch_fold(buf_str(&u), u.len, &n->needle);
		buf_free(&u);
		break;
	}
	default:
		break;
	}
	return 0;
}

static int
load(struct mctx *x)
{
	const char *p;
	size_t len;
	int rc;

	if (x->loaded && x->header_only) {
		/* the body is wanted too */
		mime_free(&x->m);
		x->loaded = x->header_only = 0;
	}
	if (x->loaded)
		return x->m != NULL;
	x->loaded = 1;
	/* ibox_meta may read the message itself, which would leave the
	 * tree pointing at old bytes: ask it everything first */
	if (x->meta_need && (x->b->msgs[x->i].have & x->meta_need) != x->meta_need) {
		rc = ibox_meta(x->b, x->i, x->meta_need, x->err);
		if (rc == IBOX_GONE)
			x->gone = 1;
		if (rc != IBOX_OK) {
			x->failed = rc != IBOX_GONE;
			return 0;
		}
	}
	rc = ibox_load(x->b, x->i, &p, &len, x->err);
	if (rc == IBOX_GONE) {
		x->gone = 1;
		return 0;
	}
	if (rc != IBOX_OK) {
		x->failed = 1;
		return 0;
	}
	x->m = mime_parse(p, len, NULL);
	return 1;
}

/* For the header keys: the header section the folder's cache keeps (put
 * there by the first search that reads the message), so that a search
 * of a large folder by From or Subject reads no message twice; the
 * whole message when there is none.  1 with x->m, 0 not. */
static int
load_header(struct mctx *x)
{
	const struct ibox_msg *m;
	int rc;

	if (x->loaded)
		return x->m != NULL;
	rc = ibox_meta(x->b, x->i, x->meta_need | IBOX_META_HEADER, x->err);
	if (rc != IBOX_OK) {
		x->loaded = 1;
		if (rc == IBOX_GONE)
			x->gone = 1;
		else
			x->failed = 1;
		return 0;
	}
	m = &x->b->msgs[x->i];
	if (!m->header)
		return load(x);
	buf_reset(&x->hdr);
	buf_adds(&x->hdr, m->header);
	x->m = mime_parse(x->hdr.data ? x->hdr.data : "", x->hdr.len, NULL);
	x->loaded = x->header_only = 1;
	return 1;
}

static int
meta(struct mctx *x, unsigned what)
{
	int rc = ibox_meta(x->b, x->i, what, x->err);

	if (rc == IBOX_GONE)
		x->gone = 1;
	else if (rc != IBOX_OK)
		x->failed = 1;
	return rc == IBOX_OK;
}

/* Does a field named name (all fields when NULL) contain the needle? */
static int
header_has(struct mctx *x, const char *name, const struct buf *needle)
{
	const struct header *h;
	size_t j;

	if (!load_header(x))
		return 0;
	h = &x->m->parts[0]->header;
	for (j = 0; j < h->n; j++) {
		if (strcasecmp(h->f[j].name, name) != 0)
			continue;
		if (needle->len == 0)
			return 1;
		buf_reset(&x->tmp);
		buf_reset(&x->tmp2);
		mime_header_decode(h->f[j].value, strlen(h->f[j].value), SIZE_MAX, &x->tmp);
		isearch_fold(buf_str(&x->tmp), x->tmp.len, &x->tmp2);
		if (contains(&x->tmp2, needle))
			return 1;
	}
	return 0;
}

/* The decoded, folded text of every text/ leaf part. */
static const struct buf *
body_text(struct mctx *x)
{
	size_t j;

	if (x->have_body || !load(x))
		return &x->body;
	x->have_body = 1;
	for (j = 0; j < x->m->nparts; j++) {
		const struct mime_part *p = x->m->parts[j];

		if (p->kind != MIME_LEAF || p->type == NULL || strcmp(p->type, "text") != 0)
			continue;
		buf_reset(&x->tmp);
		buf_reset(&x->tmp2);
		if (mime_part_decode(x->m, p, &x->tmp) < 0)
			buf_add(&x->tmp, x->m->data + p->body_offset, p->body_len);
		(void)mime_to_utf8(p->charset ? p->charset : "us-ascii", buf_str(&x->tmp),
		    x->tmp.len, SIZE_MAX, &x->tmp2);
		isearch_fold(buf_str(&x->tmp2), x->tmp2.len, &x->body);
		buf_addc(&x->body, '\n');
	}
	return &x->body;
}

/* The header fields, decoded and folded, then the body text. */
static const struct buf *
all_text(struct mctx *x)
{
	const struct header *h;
	const struct buf *body;
	size_t j;

	if (x->have_text || !load(x))
		return &x->text;
	x->have_text = 1;
	h = &x->m->parts[0]->header;
	for (j = 0; j < h->n; j++) {
		buf_reset(&x->tmp);
		buf_adds(&x->tmp, h->f[j].name);
		buf_adds(&x->tmp, ": ");
		mime_header_decode(h->f[j].value, strlen(h->f[j].value), SIZE_MAX, &x->tmp);
		buf_addc(&x->tmp, '\n');
		isearch_fold(buf_str(&x->tmp), x->tmp.len, &x->text);
	}
	body = body_text(x);
	buf_add(&x->text, body->data ? body->data : "", body->len);
	return &x->text;
}

static int
has_keyword(const char *list, const char *kw)
{
	size_t n = strlen(kw);
	const char *p = list;

	while (p && *p) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len == n && strncasecmp(p, kw, n) == 0)
			return 1;
		p = e ? e + 1 : NULL;
	}
	return 0;
}

static int64_t
floor_day(int64_t t)
{
	return t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
}

static int
date_cmp(int type, int64_t d, int64_t key)
{
	switch (type) {
	case IMAP_SK_BEFORE: case IMAP_SK_SENTBEFORE:
		return d < key;
	case IMAP_SK_ON: case IMAP_SK_SENTON:
		return d == key;
	default:
		return d >= key;
	}
}

/* 1 match, 0 no, -1 not decidable in this round */
static int
eval(struct mctx *x, const struct snode *n, int level)
{
	const struct ibox_msg *m = &x->b->msgs[x->i];
	const struct snode *c;
	int r, unknown = 0;

	if (n->level > level && n->type != IMAP_SK_AND && n->type != IMAP_SK_OR &&
	    n->type != IMAP_SK_NOT)
		return -1;
	if (x->failed || x->gone)
		return 0;
	switch (n->type) {
	case IMAP_SK_AND:
		for (c = n->child; c; c = c->next) {
			r = eval(x, c, level);
			if (r == 0)
				return 0;
			if (r < 0)
				unknown = 1;
		}
		return unknown ? -1 : 1;
	case IMAP_SK_OR:
		for (c = n->child; c; c = c->next) {
			r = eval(x, c, level);
			if (r == 1)
				return 1;
			if (r < 0)
				unknown = 1;
		}
		return unknown ? -1 : 0;
	case IMAP_SK_NOT:
		r = eval(x, n->child, level);
		return r < 0 ? -1 : !r;
	case IMAP_SK_ALL: return 1;
	case IMAP_SK_ANSWERED: return (m->flags & IMAP_FLAG_ANSWERED) != 0;
	case IMAP_SK_DELETED: return (m->flags & IMAP_FLAG_DELETED) != 0;
	case IMAP_SK_DRAFT: return (m->flags & IMAP_FLAG_DRAFT) != 0;
	case IMAP_SK_FLAGGED: return (m->flags & IMAP_FLAG_FLAGGED) != 0;
	case IMAP_SK_SEEN: return (m->flags & IMAP_FLAG_SEEN) != 0;
	case IMAP_SK_RECENT: return (m->flags & IBOX_RECENT) != 0;
	case IMAP_SK_NEW:
		return (m->flags & IBOX_RECENT) && !(m->flags & IMAP_FLAG_SEEN);
	case IMAP_SK_OLD: return (m->flags & IBOX_RECENT) == 0;
	case IMAP_SK_UNANSWERED: return (m->flags & IMAP_FLAG_ANSWERED) == 0;
	case IMAP_SK_UNDELETED: return (m->flags & IMAP_FLAG_DELETED) == 0;
	case IMAP_SK_UNDRAFT: return (m->flags & IMAP_FLAG_DRAFT) == 0;
	case IMAP_SK_UNFLAGGED: return (m->flags & IMAP_FLAG_FLAGGED) == 0;
	case IMAP_SK_UNSEEN: return (m->flags & IMAP_FLAG_SEEN) == 0;
	case IMAP_SK_KEYWORD: return has_keyword(m->keywords, n->k->str);
	case IMAP_SK_UNKEYWORD: return !has_keyword(m->keywords, n->k->str);
	case IMAP_SK_SEQSET:
	case IMAP_SK_UID:
		return imap_seq_contains(&n->set, n->by_uid ? m->uid : (uint32_t)(x->i + 1));
	case IMAP_SK_MODSEQ:
		/* no per-flag MODSEQs: the entry is answered with the message's */
		return m->modseq >= n->k->num;
	case IMAP_SK_LARGER:
		return meta(x, IBOX_META_SIZE) && x->b->msgs[x->i].size > n->k->num;
	case IMAP_SK_SMALLER:
		return meta(x, IBOX_META_SIZE) && x->b->msgs[x->i].size < n->k->num;
	case IMAP_SK_OLDER:
		return meta(x, IBOX_META_IDATE) &&
		    x->b->msgs[x->i].idate <= x->now - (int64_t)n->k->num;
	case IMAP_SK_YOUNGER:
		return meta(x, IBOX_META_IDATE) &&
		    x->b->msgs[x->i].idate > x->now - (int64_t)n->k->num;
	case IMAP_SK_BEFORE: case IMAP_SK_ON: case IMAP_SK_SINCE:
		return meta(x, IBOX_META_IDATE) &&
		    date_cmp(n->type, floor_day(x->b->msgs[x->i].idate), n->day);
	case IMAP_SK_SENTBEFORE: case IMAP_SK_SENTON: case IMAP_SK_SENTSINCE:
		if (!x->have_sent) {
			const struct header_field *f;
			int64_t t;

			if (!load_header(x))
				return 0;
			f = header_get(&x->m->parts[0]->header, "Date");
			if (f == NULL || isearch_parse_date(f->value, &t, &x->sent_day) < 0) {
				/* no usable Date: the internal date, as SORT does */
				if (!meta(x, IBOX_META_IDATE))
					return 0;
				x->sent_day = floor_day(x->b->msgs[x->i].idate);
			}
			x->have_sent = 1;
		}
		return date_cmp(n->type, x->sent_day, n->day);
	case IMAP_SK_BCC: return header_has(x, "Bcc", &n->needle);
	case IMAP_SK_CC: return header_has(x, "Cc", &n->needle);
	case IMAP_SK_FROM: return header_has(x, "From", &n->needle);
	case IMAP_SK_TO: return header_has(x, "To", &n->needle);
	case IMAP_SK_SUBJECT: return header_has(x, "Subject", &n->needle);
	case IMAP_SK_HEADER: return header_has(x, n->k->field, &n->needle);
	case IMAP_SK_BODY: return contains(body_text(x), &n->needle);
	case IMAP_SK_TEXT: return contains(all_text(x), &n->needle);
	}
	return 0;
}

int
imap_search_run(struct imap_box *b, const struct imap_search *s,
    const struct imap_seqset *saved, int64_t now, uint32_t **seqs, size_t *n,
    struct buf *err)
{
	struct snode *root = NULL;
	struct mctx x;
	size_t i;
	int rc = IBOX_OK;

	*seqs = NULL;
	*n = 0;
	if (!imap_search_charset_ok(s->charset)) {
		buf_sets(err, "BADCHARSET");
		return IBOX_ERR;
	}
	if (s->key == NULL)
		return IBOX_OK;
	if (compile(b, s, s->key, saved, &root, err) < 0) {
		snode_free(root);
		return IBOX_ERR;
	}
	memset(&x, 0, sizeof(x));
	x.b = b;
	x.now = now;
	x.err = err;
	x.meta_need = meta_need(root);
	*seqs = xcalloc(b->n ? b->n : 1, sizeof(**seqs));
	for (i = 0; i < b->n && rc == IBOX_OK; i++) {
		int r = -1, level;

		if (b->msgs[i].expunged)
			continue;
		x.i = i;
		for (level = L_FREE; level <= L_BYTES && r < 0; level++)
			r = eval(&x, root, level);
		if (x.failed)
			rc = IBOX_ERR;
		else if (r == 1 && !x.gone)
			(*seqs)[(*n)++] = (uint32_t)(i + 1);
		mime_free(&x.m);
		x.loaded = x.header_only = x.have_body = x.have_text = x.have_sent = 0;
		x.gone = 0;
		buf_reset(&x.body);
		buf_reset(&x.text);
	}
	buf_free(&x.body);
	buf_free(&x.text);
	buf_free(&x.hdr);
	buf_free(&x.tmp);
	buf_free(&x.tmp2);
	snode_free(root);
	if (rc != IBOX_OK) {
		free(*seqs);
		*seqs = NULL;
		*n = 0;
	}
	return rc;
}
