/*
 * imap_fetch: one message's FETCH response (RFC 3501 6.4.5, 7.4.2;
 * BINARY RFC 3516; MODSEQ RFC 7162 3.1.4).
 *
 * Items go out in the order the client asked for them; UID comes first
 * in a UID FETCH that did not ask for it, and MODSEQ right after it when
 * CONDSTORE is on, as in RFC 7162's examples; FLAGS goes last when \Seen
 * was just set and the client did not ask for it.  Cached items
 * (RFC822.SIZE, INTERNALDATE, ENVELOPE, BODY, BODYSTRUCTURE) come from
 * ibox_meta; the message is loaded and parsed only for the items that
 * need its bytes, and only once per message.
 *
 * Message data is sent as IMAP sees the message: every bare LF as CRLF
 * (so BODY[] of a Maildir file stored with LF is its bytes with LF made
 * CRLF, and RFC822.SIZE is its length), NUL as 0x80 in BODY[...]
 * (mime_crlf_append), NUL kept in BINARY[...], which is then sent as a
 * "~{n}" literal.  A section that does not exist, and a partial range
 * that starts past the end, give the empty string "" (Dovecot's "MIME
 * part not found: return an empty part").  The response names a partial
 * fetch by its origin only: BODY[1.2]<0>.  HEADER.FIELDS lists are
 * echoed upper-cased, as Dovecot does.
 *
 * Nothing is appended to out unless the whole response could be made.
 */
#include "imap_fetch.h"
#include "mime.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int
imap_fetch_needs_body(const struct imap_fetch *f)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		switch (f->items[i].att) {
		case IMAP_FETCH_RFC822:
		case IMAP_FETCH_RFC822_HEADER:
		case IMAP_FETCH_RFC822_TEXT:
		case IMAP_FETCH_BODY_SECTION:
		case IMAP_FETCH_BINARY:
		case IMAP_FETCH_BINARY_SIZE:
			return 1;
		default:
			break;
		}
	return 0;
}

int
imap_fetch_sets_seen(const struct imap_fetch *f)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		switch (f->items[i].att) {
		case IMAP_FETCH_RFC822:
		case IMAP_FETCH_RFC822_TEXT:
			return 1;
		case IMAP_FETCH_BODY_SECTION:
		case IMAP_FETCH_BINARY:
			if (!f->items[i].peek)
				return 1;
			break;
		default:
			break;
		}
	return 0;
}

void
imap_fetch_flags(const struct ibox_msg *m, struct buf *out)
{
	static const struct {
		unsigned bit;
		const char *name;
	} sys[] = {
		{ IMAP_FLAG_ANSWERED, "\\Answered" }, { IMAP_FLAG_FLAGGED, "\\Flagged" },
		{ IMAP_FLAG_DELETED, "\\Deleted" }, { IMAP_FLAG_SEEN, "\\Seen" },
		{ IMAP_FLAG_DRAFT, "\\Draft" }, { IBOX_RECENT, "\\Recent" },
	};
	const char *k, *e;
	size_t i;
	int first = 1;

	buf_addc(out, '(');
	for (i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
		if (m->flags & sys[i].bit) {
			if (!first)
				buf_addc(out, ' ');
			buf_adds(out, sys[i].name);
			first = 0;
		}
	for (k = m->keywords; k && *k; k = *e ? e + 1 : e) {
		if ((e = strchr(k, ',')) == NULL)
			e = k + strlen(k);
		if (e == k)
			continue;
		if (!first)
			buf_addc(out, ' ');
		buf_add(out, k, (size_t)(e - k));
		first = 0;
	}
	buf_addc(out, ')');
}

/* date-time (RFC 3501 9) in the message's own zone. */
static void
put_idate(struct buf *out, int64_t t, int zone)
{
	static const char mon[12][4] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
	};
	time_t lt = (time_t)(t + (int64_t)zone * 60);
	struct tm tm;
	int az = zone < 0 ? -zone : zone;

	if (gmtime_r(&lt, &tm) == NULL) {
		/* a date out of struct tm's range: the epoch rather than garbage */
		memset(&tm, 0, sizeof(tm));
		tm.tm_mday = 1;
		tm.tm_year = 70;
		zone = az = 0;
	}
	buf_printf(out, "\"%02d-%s-%04d %02d:%02d:%02d %c%02d%02d\"", tm.tm_mday,
	    mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    zone < 0 ? '-' : '+', az / 60, az % 60);
}

/* The section-spec between the brackets, as the response names it. */
static void
put_section(struct buf *out, const struct imap_section *sec)
{
	static const char *const text[] = {
		"", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME",
	};
	size_t i, j;

	for (i = 0; i < sec->npart; i++)
		buf_printf(out, "%s%u", i ? "." : "", sec->part[i]);
	if (sec->text <= IMAP_SECTION_ALL || sec->text > IMAP_SECTION_MIME)
		return;
	buf_printf(out, "%s%s", sec->npart ? "." : "", text[sec->text]);
	if (sec->text != IMAP_SECTION_HEADER_FIELDS && sec->text != IMAP_SECTION_HEADER_FIELDS_NOT)
		return;
	buf_adds(out, " (");
	for (i = 0; i < sec->nfields; i++) {
		struct buf up = BUF_INIT;

		buf_adds(&up, sec->fields[i]);
		for (j = 0; j < up.len; j++)
			if (up.data[j] >= 'a' && up.data[j] <= 'z')
				up.data[j] = (char)(up.data[j] - 'a' + 'A');
		if (i)
			buf_addc(out, ' ');
		imap_write_astring(out, up.data, up.len);
		buf_free(&up);
	}
	buf_addc(out, ')');
}

/* "{n}\r\n" + data; "~{n}" when binary and data holds NUL; "" when empty.
 * The partial range <offset.length> is applied here. */
static void
put_literal(struct buf *out, const char *p, size_t n, const struct imap_fetch_item *it, int binary)
{
	if (it && it->partial) {
		if (it->offset >= n) {
			n = 0;
		} else {
			p += it->offset;
			n -= it->offset;
			if (n > it->length)
				n = it->length;
		}
	}
	if (n == 0) {
		buf_adds(out, "\"\"");
		return;
	}
	buf_printf(out, "%s{%zu}\r\n", binary && memchr(p, '\0', n) ? "~" : "", n);
	buf_add(out, p, n);
}

/* Every bare LF made CRLF, NUL kept (BINARY's mime_crlf_append). */
static void
crlf_keep_nul(struct buf *out, const char *p, size_t n)
{
	size_t i, start = 0;

	for (i = 0; i < n; i++)
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')) {
			buf_add(out, p + start, i - start);
			buf_adds(out, "\r\n");
			start = i + 1;
		}
	buf_add(out, p + start, n - start);
}

/* BODY[section] content into out (CRLF, NUL as 0x80); nothing when the
 * section does not exist. */
static void
body_section(const struct mime_message *mm, const struct imap_section *sec, struct buf *out)
{
	const struct mime_part *part = NULL;
	struct mime_range r;
	enum mime_sect suffix;

	switch (sec->text) {
	case IMAP_SECTION_HEADER:
	case IMAP_SECTION_HEADER_FIELDS:
	case IMAP_SECTION_HEADER_FIELDS_NOT:
		suffix = MIME_SECT_HEADER;
		break;
	case IMAP_SECTION_TEXT:
		suffix = MIME_SECT_TEXT;
		break;
	case IMAP_SECTION_MIME:
		suffix = MIME_SECT_MIME;
		break;
	default:
		suffix = MIME_SECT_NONE;
		break;
	}
	if (mime_section(mm, sec->part, sec->npart, suffix, &r, &part) < 0)
		return;
	if (sec->text == IMAP_SECTION_HEADER_FIELDS || sec->text == IMAP_SECTION_HEADER_FIELDS_NOT) {
		if (part)
			mime_header_filter(part, (const char *const *)sec->fields, sec->nfields,
			    sec->text == IMAP_SECTION_HEADER_FIELDS_NOT, out);
		return;
	}
	mime_crlf_append(out, mm->data + r.offset, r.len);
}

/* BINARY[section] content into out: the part's body with its transfer
 * encoding undone (RFC 3516 4.1), in canonical form (CRLF line ends for
 * the identity encodings and quoted-printable's hard line breaks; base64
 * decodes to exactly its octets).  Containers and the whole message
 * (BINARY[]) are sent as they are.  0, or -1 for an unknown encoding. */
static int
binary_section(const struct mime_message *mm, const struct imap_section *sec, struct buf *out)
{
	const struct mime_part *part = NULL;
	struct mime_range r;
	const char *p;

	if (mime_section(mm, sec->part, sec->npart, MIME_SECT_NONE, &r, &part) < 0)
		return 0;
	p = mm->data + r.offset;
	if (sec->npart == 0 || part == NULL || part->kind != MIME_LEAF) {
		crlf_keep_nul(out, p, r.len);
		return 0;
	}
	switch (part->cte) {
	case MIME_CTE_BASE64:
		mime_base64_decode(p, r.len, out);
		return 0;
	case MIME_CTE_QP: {
		struct buf tmp = BUF_INIT;

		crlf_keep_nul(&tmp, p, r.len);
		mime_qp_decode(tmp.data ? tmp.data : "", tmp.len, out);
		buf_free(&tmp);
		return 0;
	}
	case MIME_CTE_UNKNOWN:
		return -1;
	default:
		crlf_keep_nul(out, p, r.len);
		return 0;
	}
}

/* The cache items these fetch items need. */
static unsigned
meta_needed(const struct imap_fetch *f)
{
	unsigned what = 0;
	size_t i;

	for (i = 0; i < f->n; i++)
		switch (f->items[i].att) {
		case IMAP_FETCH_RFC822_SIZE:
			what |= IBOX_META_SIZE;
			break;
		case IMAP_FETCH_INTERNALDATE:
			what |= IBOX_META_IDATE;
			break;
		case IMAP_FETCH_ENVELOPE:
			what |= IBOX_META_ENVELOPE;
			break;
		case IMAP_FETCH_BODY:
		case IMAP_FETCH_BODYSTRUCTURE:
			what |= IBOX_META_BODYSTRUCTURE;
			break;
		default:
			break;
		}
	return what;
}

static int
has_att(const struct imap_fetch *f, int att)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (f->items[i].att == att)
			return 1;
	return 0;
}

int
imap_fetch_msg(struct imap_box *b, size_t i, const struct imap_fetch *f, int uid,
    int add_flags, int modseq, struct buf *out, struct buf *err)
{
	const struct ibox_msg *m;
	struct mime_message *mm = NULL;
	struct buf tmp = BUF_INIT;
	unsigned what = meta_needed(f);
	const char *data = NULL;
	size_t len = 0, start = out->len, k;
	int r, sp = 0, rc = IBOX_OK;

	if (i >= b->n)
		return IBOX_GONE;
	/* meta first: it may load the message itself, which would end the
	 * life of the bytes ibox_load gives us */
	if (what && (r = ibox_meta(b, i, what, err)) != IBOX_OK)
		return r;
	if (imap_fetch_needs_body(f)) {
		if ((r = ibox_load(b, i, &data, &len, err)) != IBOX_OK)
			return r;
		mm = mime_parse(data ? data : "", data ? len : 0, NULL);
	}
	m = &b->msgs[i];

	buf_printf(out, "* %zu FETCH (", i + 1);
	if (uid && !has_att(f, IMAP_FETCH_UID)) {
		buf_printf(out, "UID %u", m->uid);
		sp = 1;
	}
	if (modseq && !b->nomodseq && !has_att(f, IMAP_FETCH_MODSEQ)) {
		buf_printf(out, "%sMODSEQ (%llu)", sp ? " " : "", (unsigned long long)m->modseq);
		sp = 1;
	}
	for (k = 0; k < f->n; k++) {
		const struct imap_fetch_item *it = &f->items[k];

		if (sp)
			buf_addc(out, ' ');
		sp = 1;
		buf_reset(&tmp);
		switch (it->att) {
		case IMAP_FETCH_ENVELOPE:
			buf_adds(out, "ENVELOPE ");
			buf_adds(out, m->envelope ? m->envelope : "NIL");
			break;
		case IMAP_FETCH_FLAGS:
			buf_adds(out, "FLAGS ");
			imap_fetch_flags(m, out);
			break;
		case IMAP_FETCH_INTERNALDATE:
			buf_adds(out, "INTERNALDATE ");
			put_idate(out, m->idate, m->izone);
			break;
		case IMAP_FETCH_RFC822_SIZE:
			buf_printf(out, "RFC822.SIZE %llu", (unsigned long long)m->size);
			break;
		case IMAP_FETCH_BODY:
			buf_adds(out, "BODY ");
			buf_adds(out, m->body ? m->body : "NIL");
			break;
		case IMAP_FETCH_BODYSTRUCTURE:
			buf_adds(out, "BODYSTRUCTURE ");
			buf_adds(out, m->bodystructure ? m->bodystructure : "NIL");
			break;
		case IMAP_FETCH_UID:
			buf_printf(out, "UID %u", m->uid);
			break;
		case IMAP_FETCH_MODSEQ:
			buf_printf(out, "MODSEQ (%llu)", (unsigned long long)m->modseq);
			break;
		case IMAP_FETCH_RFC822:
			mime_crlf_append(&tmp, mm->data, mm->len);
			buf_adds(out, "RFC822 ");
			put_literal(out, tmp.data, tmp.len, NULL, 0);
			break;
		case IMAP_FETCH_RFC822_HEADER:
		case IMAP_FETCH_RFC822_TEXT: {
			struct imap_section s;

			memset(&s, 0, sizeof(s));
			s.text = it->att == IMAP_FETCH_RFC822_HEADER ? IMAP_SECTION_HEADER : IMAP_SECTION_TEXT;
			body_section(mm, &s, &tmp);
			buf_adds(out, it->att == IMAP_FETCH_RFC822_HEADER ? "RFC822.HEADER " : "RFC822.TEXT ");
			put_literal(out, tmp.data, tmp.len, NULL, 0);
			break;
		}
		case IMAP_FETCH_BODY_SECTION:
			body_section(mm, &it->sec, &tmp);
			buf_adds(out, "BODY[");
			put_section(out, &it->sec);
			buf_addc(out, ']');
			if (it->partial)
				buf_printf(out, "<%u>", it->offset);
			buf_addc(out, ' ');
			put_literal(out, tmp.data, tmp.len, it, 0);
			break;
		case IMAP_FETCH_BINARY:
		case IMAP_FETCH_BINARY_SIZE:
			if (binary_section(mm, &it->sec, &tmp) < 0) {
				rc = IMAP_FETCH_UNKNOWN_CTE;
				goto out;
			}
			buf_adds(out, it->att == IMAP_FETCH_BINARY ? "BINARY[" : "BINARY.SIZE[");
			put_section(out, &it->sec);
			buf_addc(out, ']');
			if (it->att == IMAP_FETCH_BINARY_SIZE) {
				buf_printf(out, " %zu", tmp.len);
				break;
			}
			if (it->partial)
				buf_printf(out, "<%u>", it->offset);
			buf_addc(out, ' ');
			put_literal(out, tmp.data, tmp.len, it, 1);
			break;
		default:
			/* the parser makes no other items: say so rather than
			 * send a malformed response */
			buf_printf(err, "FETCH item %d unknown", it->att);
			rc = IBOX_ERR;
			goto out;
		}
	}
	if (add_flags && !has_att(f, IMAP_FETCH_FLAGS)) {
		buf_adds(out, sp ? " FLAGS " : "FLAGS ");
		imap_fetch_flags(m, out);
	}
	buf_adds(out, ")\r\n");
out:
	if (rc != IBOX_OK)
		buf_truncate(out, start);
	buf_free(&tmp);
	mime_free(&mm);
	return rc;
}
