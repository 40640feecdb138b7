/*
 * queue_file.c: the queue file format (reader, writer), queue IDs and
 * the commit of a new queue file (see queue_file.h and doc/queue.md).
 *
 * Invariants:
 * - The reader accepts a file only if every record from VERSION to END
 *   is well formed, in the right order, within the limits, and END is the
 *   last byte; it never hands out a half-checked envelope.  Corruption is
 *   reported with errno EBADMSG and a reason naming the offset.
 * - The writer checks each envelope record with the same per-record
 *   check as the reader, so that it can never write what the reader would
 *   refuse (CR, LF, NUL, bad numbers, over-long fields): it sets error
 *   EINVAL instead and qf_finish fails.
 * - qf_commit is the durability rule: the file is complete and fsynced
 *   (or, for a batch, the whole file system synced) before it is renamed
 *   into active/, and active/ is fsynced before the caller may
 *   acknowledge the message.
 * - The reader never reads message content it does not need: on a file
 *   descriptor it reads the envelope through a buffer and then only the
 *   5-byte header of each DATA record (the lengths must chain exactly to
 *   the END record at the end of the file).
 */
#include "queue_file.h"
#include "addr.h"
#include "conf.h"
#include "service.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR		5		/* type byte + 4-byte length */
#define ENV_REC_MAX	(2 * QF_ADDR_MAX + 64)	/* largest envelope record payload */
#define WIN_READ	65536		/* read-ahead of the envelope reader */
#define FLUSH_AT	65536		/* writer buffer flush threshold */

/*
 * Strict unsigned decimal: digits only, no sign, no leading zero (except
 * "0"), at most maxdigits, value <= max.
 */
static int
parse_dec(const char *p, size_t n, size_t maxdigits, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > maxdigits || (n > 1 && p[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

static int
has_crlf(const char *p, size_t n)
{
	return memchr(p, '\r', n) != NULL || memchr(p, '\n', n) != NULL;
}

static int
dsn_valid_n(const char *s, size_t n)
{
	size_t i = 0, part, digits;

	if (n < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		digits = 0;
		while (i < n && s[i] >= '0' && s[i] <= '9' && digits < 4) {
			i++;
			digits++;
		}
		if (digits == 0 || digits > 3)
			return 0;
		if (part == 0) {
			if (i >= n || s[i] != '.')
				return 0;
			i++;
		}
	}
	return i == n;
}

int
qf_dsn_valid(const char *s)
{
	return dsn_valid_n(s, strlen(s));
}

char *
qf_rcpt_key(const char *addr, char *const *local_domains)
{
	struct buf local = BUF_INIT, domain = BUF_INIT, key = BUF_INIT;
	size_t i;
	int fold;

	if (addr_split(addr, &local, &domain) < 0) {
		buf_free(&local);
		buf_free(&domain);
		return xstrdup(addr);
	}
	fold = domain.len == 0;
	for (i = 0; !fold && local_domains && local_domains[i]; i++)
		fold = !strcasecmp(local_domains[i], buf_str(&domain));
	if (fold && local.data)
		str_lower(local.data);
	/* LF never occurs in an envelope address: no two pairs can give
	 * the same key */
	buf_printf(&key, "%s\n%s", buf_str(&domain), buf_str(&local));
	buf_free(&local);
	buf_free(&domain);
	return buf_steal(&key);
}

int
qf_digest_valid(const char *s)
{
	size_t i;

	for (i = 0; i < QF_DIGEST_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[i] == 0;
}

/* Split p[0..n) at NULs into exactly nf fields. */
static int
split_nul(const char *p, size_t n, size_t nf, const char **f, size_t *fl)
{
	size_t i, start = 0, k = 0;

	for (i = 0; i <= n; i++) {
		if (i == n || p[i] == 0) {
			if (k >= nf)
				return -1;
			f[k] = p + start;
			fl[k] = i - start;
			k++;
			start = i + 1;
		}
	}
	return k == nf ? 0 : -1;
}

static int
notify_valid(uint64_t v)
{
	if (v & ~(uint64_t)0x0f)
		return 0;
	if ((v & DSN_NOTIFY_NEVER) && v != DSN_NOTIFY_NEVER)
		return 0;
	return 1;
}

static int
attr_valid(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && p[i] != '='; i++)
		if (!isalnum((unsigned char)p[i]) && p[i] != '_' && p[i] != '-' && p[i] != '.')
			return 0;
	return i > 0 && i < n;
}

/*
 * The per-record check shared by the reader and the writer: everything
 * that can be decided from one envelope record alone.  Returns NULL when
 * the record is acceptable, else the reason.
 */
static const char *
check_record(int type, const char *p, size_t n)
{
	const char *f[3];
	size_t fl[3];
	uint64_t v;

	switch (type) {
	case QREC_VERSION:
		if (n != strlen(QF_VERSION_STRING) || memcmp(p, QF_VERSION_STRING, n))
			return "unsupported version";
		return NULL;
	case QREC_TIME:
		if (parse_dec(p, n, 19, (uint64_t)INT64_MAX, &v) < 0)
			return "bad arrival time";
		return NULL;
	case QREC_SENDER:
		if (n > QF_ADDR_MAX)
			return "sender too long";
		if (has_crlfnul(p, n))
			return "CR, LF or NUL in the sender";
		return NULL;
	case QREC_FULLNAME:
	case QREC_CLIENT:
	case QREC_ENVID:
		if (n > QF_TEXT_MAX)
			return "envelope field too long";
		if (has_crlfnul(p, n))
			return "CR, LF or NUL in an envelope field";
		return NULL;
	case QREC_RET:
		if ((n == 4 && !memcmp(p, "FULL", 4)) || (n == 4 && !memcmp(p, "HDRS", 4)))
			return NULL;
		return "bad RET value";
	case QREC_ATTR:
		if (n > QF_TEXT_MAX)
			return "attribute too long";
		if (has_crlfnul(p, n))
			return "CR, LF or NUL in an attribute";
		if (!attr_valid(p, n))
			return "malformed attribute";
		return NULL;
	case QREC_RCPT:
	case QREC_RCPT_DONE:
		if (split_nul(p, n, 3, f, fl) < 0)
			return "malformed recipient record";
		if (fl[0] == 0)
			return "empty recipient address";
		if (fl[0] > QF_ADDR_MAX || fl[1] > QF_ADDR_MAX)
			return "recipient too long";
		if (has_crlf(f[0], fl[0]) || has_crlf(f[1], fl[1]))
			return "CR or LF in a recipient";
		if (parse_dec(f[2], fl[2], 2, 15, &v) < 0 || !notify_valid(v))
			return "bad recipient NOTIFY value";
		return NULL;
	case QREC_DEFER:
		if (split_nul(p, n, 3, f, fl) < 0)
			return "malformed defer record";
		if (parse_dec(f[0], fl[0], 19, (uint64_t)INT64_MAX, &v) < 0)
			return "bad recipient offset in defer record";
		if (!dsn_valid_n(f[1], fl[1]))
			return "bad status code in defer record";
		if (fl[2] > QF_TEXT_MAX)
			return "defer text too long";
		if (has_crlf(f[2], fl[2]))
			return "CR or LF in defer text";
		return NULL;
	case QREC_RETRY:
		if (split_nul(p, n, 2, f, fl) < 0)
			return "malformed retry record";
		if (parse_dec(f[0], fl[0], 7, 1000000, &v) < 0)
			return "bad attempt count";
		if (parse_dec(f[1], fl[1], 19, (uint64_t)INT64_MAX / 1000000, &v) < 0)
			return "bad retry time";
		return NULL;
	case QREC_WARNED:
	case QREC_CONTENT:
		if (n != 0)
			return "payload in an empty record";
		return NULL;
	default:
		return "not an envelope record";
	}
}

/*
 * The reader.  A source is either a memory image or a file descriptor
 * read through a window buffer.
 */
struct src {
	const char *mem;	/* memory image, or NULL */
	int fd;
	off_t size;
	struct buf win;		/* fd mode: bytes [win_off, win_off + win.len) */
	off_t win_off;
};

/* Pointer to n bytes at off (off + n <= size was checked by the caller);
 * readahead: how much more to read when refilling.  NULL on error. */
static const char *
src_get(struct src *s, off_t off, size_t n, size_t readahead)
{
	size_t want;
	ssize_t r;

	if (s->mem)
		return s->mem + off;
	if (off >= s->win_off && off + (off_t)n <= s->win_off + (off_t)s->win.len)
		return s->win.data + (off - s->win_off);
	want = n > readahead ? n : readahead;
	if ((off_t)want > s->size - off)
		want = (size_t)(s->size - off);
	buf_reset(&s->win);
	buf_reserve(&s->win, want);
	r = pread(s->fd, s->win.data, want, off);
	while (r < 0 && errno == EINTR)
		r = pread(s->fd, s->win.data, want, off);
	if (r < 0)
		return NULL;
	s->win.len = (size_t)r;
	s->win.data[r] = 0;
	s->win_off = off;
	if ((size_t)r < n) {
		errno = EBADMSG;	/* the file shrank under us */
		return NULL;
	}
	return s->win.data;
}

static void
rcpt_free(struct qf_rcpt *r)
{
	free(r->addr);
	free(r->orcpt);
	free(r->defer_dsn);
	free(r->defer_text);
}

void
qf_envelope_free(struct qf_envelope *env)
{
	size_t i;

	free(env->sender);
	free(env->fullname);
	free(env->client);
	free(env->envid);
	free(env->ret);
	strv_free(env->attrs);
	for (i = 0; i < env->nrcpt; i++)
		rcpt_free(&env->rcpt[i]);
	free(env->rcpt);
	memset(env, 0, sizeof(*env));
}

/* The recipient whose record starts at off, or NULL (binary search:
 * recipients are stored in file order). */
static struct qf_rcpt *
rcpt_at(struct qf_envelope *env, off_t off)
{
	size_t lo = 0, hi = env->nrcpt;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (env->rcpt[mid].offset == off)
			return &env->rcpt[mid];
		if (env->rcpt[mid].offset < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int
corrupt(struct buf *err, off_t off, const char *why)
{
	buf_reset(err);
	buf_printf(err, "corrupt queue file: %s at offset %lld", why, (long long)off);
	errno = EBADMSG;
	return -1;
}

#define SEEN_TIME	0x01
#define SEEN_SENDER	0x02
#define SEEN_FULLNAME	0x04
#define SEEN_CLIENT	0x08
#define SEEN_ENVID	0x10
#define SEEN_RET	0x20
#define SEEN_RETRY	0x40
#define SEEN_WARNED	0x80

static int
once(unsigned *seen, unsigned bit)
{
	if (*seen & bit)
		return -1;
	*seen |= bit;
	return 0;
}

/* Store one checked envelope record. */
static int
store_record(struct qf_envelope *env, unsigned *seen, size_t *nattr,
    int type, const char *p, size_t n, off_t off, struct buf *err)
{
	const char *f[3];
	size_t fl[3];
	uint64_t v, v2;
	struct qf_rcpt *r;

	switch (type) {
	case QREC_TIME:
		if (once(seen, SEEN_TIME) < 0)
			return corrupt(err, off, "second TIME record");
		(void)parse_dec(p, n, 19, (uint64_t)INT64_MAX, &v);
		env->arrival_us = (int64_t)v;
		break;
	case QREC_SENDER:
		if (once(seen, SEEN_SENDER) < 0)
			return corrupt(err, off, "second SENDER record");
		env->sender = xstrndup(p, n);
		break;
	case QREC_FULLNAME:
		if (once(seen, SEEN_FULLNAME) < 0)
			return corrupt(err, off, "second FULLNAME record");
		env->fullname = xstrndup(p, n);
		break;
	case QREC_CLIENT:
		if (once(seen, SEEN_CLIENT) < 0)
			return corrupt(err, off, "second CLIENT record");
		env->client = xstrndup(p, n);
		break;
	case QREC_ENVID:
		if (once(seen, SEEN_ENVID) < 0)
			return corrupt(err, off, "second ENVID record");
		env->envid = xstrndup(p, n);
		break;
	case QREC_RET:
		if (once(seen, SEEN_RET) < 0)
			return corrupt(err, off, "second RET record");
		env->ret = xstrndup(p, n);
		break;
	case QREC_ATTR:
		if (*nattr >= QF_MAX_ATTR)
			return corrupt(err, off, "too many attributes");
		env->attrs = xreallocarray(env->attrs, *nattr + 2, sizeof(char *));
		env->attrs[(*nattr)++] = xstrndup(p, n);
		env->attrs[*nattr] = NULL;
		break;
	case QREC_RCPT:
	case QREC_RCPT_DONE:
		if (env->nrcpt >= QF_MAX_RCPT)
			return corrupt(err, off, "too many recipients");
		/* grow by doubling: nrcpt is a power of two when full */
		if ((env->nrcpt & (env->nrcpt - 1)) == 0)
			env->rcpt = xreallocarray(env->rcpt, env->nrcpt ? env->nrcpt * 2 : 4, sizeof(*env->rcpt));
		(void)split_nul(p, n, 3, f, fl);
		(void)parse_dec(f[2], fl[2], 2, 15, &v);
		r = &env->rcpt[env->nrcpt++];
		memset(r, 0, sizeof(*r));
		r->addr = xstrndup(f[0], fl[0]);
		r->orcpt = xstrndup(f[1], fl[1]);
		r->notify = (unsigned)v;
		r->offset = off;
		r->done = type == QREC_RCPT_DONE;
		break;
	case QREC_DEFER:
		(void)split_nul(p, n, 3, f, fl);
		(void)parse_dec(f[0], fl[0], 19, (uint64_t)INT64_MAX, &v);
		if ((r = rcpt_at(env, (off_t)v)) == NULL)
			return corrupt(err, off, "defer record for no recipient");
		if (r->defer_dsn)
			return corrupt(err, off, "second defer record for a recipient");
		r->defer_dsn = xstrndup(f[1], fl[1]);
		r->defer_text = xstrndup(f[2], fl[2]);
		break;
	case QREC_RETRY:
		if (once(seen, SEEN_RETRY) < 0)
			return corrupt(err, off, "second RETRY record");
		(void)split_nul(p, n, 2, f, fl);
		(void)parse_dec(f[0], fl[0], 7, 1000000, &v);
		(void)parse_dec(f[1], fl[1], 19, (uint64_t)INT64_MAX / 1000000, &v2);
		env->attempts = (int)v;
		env->next_retry = (int64_t)v2;
		break;
	case QREC_WARNED:
		if (once(seen, SEEN_WARNED) < 0)
			return corrupt(err, off, "second WARNED record");
		env->warned = 1;
		break;
	default:
		return corrupt(err, off, "unexpected record");
	}
	return 0;
}

static int
is_envelope_type(int t)
{
	switch (t) {
	case QREC_TIME: case QREC_SENDER: case QREC_FULLNAME: case QREC_CLIENT:
	case QREC_ENVID: case QREC_RET: case QREC_ATTR: case QREC_RCPT:
	case QREC_RCPT_DONE: case QREC_DEFER: case QREC_RETRY: case QREC_WARNED:
		return 1;
	default:
		return 0;
	}
}

static int
parse_src(struct src *s, struct qf_envelope *env, struct buf *err)
{
	enum { S_START, S_ENV, S_CONTENT } state = S_START;
	unsigned seen = 0;
	size_t nattr = 0;
	off_t off = 0, envbytes = 0;
	const char *why;

	memset(env, 0, sizeof(*env));
	env->file_size = s->size;
	while (off < s->size) {
		const unsigned char *h;
		const char *p;
		uint32_t len;
		int type;

		if (s->size - off < HDR) {
			corrupt(err, off, "truncated record header");
			goto fail;
		}
		if ((h = (const unsigned char *)src_get(s, off, HDR,
		    state == S_CONTENT ? HDR : WIN_READ)) == NULL)
			goto ioerr;
		type = h[0];
		len = be32_get(h + 1);
		if ((off_t)len > s->size - off - HDR) {
			corrupt(err, off, "record length beyond the end of the file");
			goto fail;
		}
		switch (state) {
		case S_START:
			if (type != QREC_VERSION) {
				corrupt(err, off, "no VERSION record at the start");
				goto fail;
			}
			if (len > 64 || (p = src_get(s, off + HDR, len, WIN_READ)) == NULL) {
				if (len > 64) {
					corrupt(err, off, "unsupported version");
					goto fail;
				}
				goto ioerr;
			}
			if ((why = check_record(type, p, len)) != NULL) {
				corrupt(err, off, why);
				goto fail;
			}
			state = S_ENV;
			break;
		case S_ENV:
			if (type == QREC_CONTENT) {
				if (len != 0) {
					corrupt(err, off, "payload in the CONTENT record");
					goto fail;
				}
				if (!(seen & SEEN_TIME)) {
					corrupt(err, off, "no TIME record");
					goto fail;
				}
				if (!(seen & SEEN_SENDER)) {
					corrupt(err, off, "no SENDER record");
					goto fail;
				}
				if (env->nrcpt == 0) {
					corrupt(err, off, "no recipient");
					goto fail;
				}
				state = S_CONTENT;
				env->content_offset = off + HDR;
				break;
			}
			if (type == QREC_VERSION) {
				corrupt(err, off, "second VERSION record");
				goto fail;
			}
			if (!is_envelope_type(type)) {
				if (type == QREC_DATA || type == QREC_END)
					corrupt(err, off, "content or end before CONTENT record");
				else
					corrupt(err, off, "unknown record type");
				goto fail;
			}
			if (len > ENV_REC_MAX) {
				corrupt(err, off, "envelope record too long");
				goto fail;
			}
			envbytes += HDR + (off_t)len;
			if (envbytes > QF_ENVELOPE_MAX) {
				corrupt(err, off, "envelope too large");
				goto fail;
			}
			if ((p = src_get(s, off + HDR, len, WIN_READ)) == NULL)
				goto ioerr;
			if ((why = check_record(type, p, len)) != NULL) {
				corrupt(err, off, why);
				goto fail;
			}
			if (store_record(env, &seen, &nattr, type, p, len, off, err) < 0)
				goto fail;
			break;
		case S_CONTENT:
			if (type == QREC_DATA) {
				if (len == 0 || len > QF_CHUNK) {
					corrupt(err, off, "bad DATA record length");
					goto fail;
				}
				env->content_size += len;
				if (env->content_size > QF_CONTENT_MAX) {
					corrupt(err, off, "content too large");
					goto fail;
				}
				break;
			}
			if (type != QREC_END) {
				corrupt(err, off, type == QREC_CONTENT || is_envelope_type(type) ||
				    type == QREC_VERSION ? "envelope record after CONTENT" :
				    "unknown record type");
				goto fail;
			}
			if (len != 3) {
				corrupt(err, off, "bad END record");
				goto fail;
			}
			if ((p = src_get(s, off + HDR, len, HDR)) == NULL)
				goto ioerr;
			if (memcmp(p, "end", 3)) {
				corrupt(err, off, "bad END record");
				goto fail;
			}
			if (off + HDR + 3 != s->size) {
				corrupt(err, off + HDR + 3, "data after the END record");
				goto fail;
			}
			return 0;
		}
		off += HDR + (off_t)len;
	}
	corrupt(err, off, state == S_CONTENT ? "no END record" :
	    state == S_ENV ? "no CONTENT record" : "empty file");
	goto fail;
ioerr:
	if (errno == EBADMSG)
		corrupt(err, off, "file changed while being read");
	else {
		int saved = errno;

		buf_reset(err);
		buf_printf(err, "read: %s", strerror(saved));
		errno = saved;
	}
fail:
	{
		int saved = errno;

		qf_envelope_free(env);
		errno = saved;
	}
	return -1;
}

int
qf_parse(const char *data, size_t len, struct qf_envelope *env, struct buf *err)
{
	struct src s;

	memset(&s, 0, sizeof(s));
	s.mem = data ? data : "";
	s.fd = -1;
	s.size = (off_t)len;
	return parse_src(&s, env, err);
}

int
qf_read(int fd, struct qf_envelope *env, struct buf *err)
{
	struct src s;
	struct stat st;
	int rc, saved;

	memset(env, 0, sizeof(*env));
	if (fstat(fd, &st) < 0) {
		saved = errno;
		buf_reset(err);
		buf_printf(err, "fstat: %s", strerror(saved));
		errno = saved;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		buf_reset(err);
		buf_printf(err, "not a regular file");
		errno = EBADMSG;
		return -1;
	}
	memset(&s, 0, sizeof(s));
	s.fd = fd;
	s.size = st.st_size;
	rc = parse_src(&s, env, err);
	saved = errno;
	buf_free(&s.win);
	errno = saved;
	return rc;
}

int
qf_content(int fd, const struct qf_envelope *env,
    int (*cb)(void *ctx, const char *p, size_t n), void *ctx)
{
	char *b = xmalloc(HDR + QF_CHUNK + HDR);
	off_t off = env->content_offset;
	size_t have = 0;	/* bytes of b valid, starting at off */
	int rc = -1;

	for (;;) {
		uint32_t len;
		ssize_t r;
		size_t want;

		if (have < HDR) {
			want = HDR + QF_CHUNK + HDR;
			if ((off_t)want > env->file_size - off)
				want = (size_t)(env->file_size - off);
			do
				r = pread(fd, b, want, off);
			while (r < 0 && errno == EINTR);
			if (r < 0)
				break;
			have = (size_t)r;
			if (have < HDR) {
				errno = EBADMSG;
				break;
			}
		}
		len = be32_get((unsigned char *)b + 1);
		if (b[0] == QREC_END) {
			rc = 0;
			break;
		}
		if (b[0] != QREC_DATA || len == 0 || len > QF_CHUNK) {
			errno = EBADMSG;
			break;
		}
		if (have < HDR + len) {
			do
				r = pread(fd, b + have, HDR + len - have, off + (off_t)have);
			while (r < 0 && errno == EINTR);
			if (r < 0)
				break;
			if ((size_t)r < HDR + len - have) {
				errno = EBADMSG;
				break;
			}
			have = HDR + len;
		}
		if ((rc = cb(ctx, b + HDR, len)) != 0)
			break;
		rc = -1;
		/* keep what was read ahead of the next record */
		memmove(b, b + HDR + len, have - HDR - len);
		have -= HDR + len;
		off += HDR + (off_t)len;
	}
	free(b);
	return rc;
}

struct head_ctx {
	struct buf *out;
	size_t want;
};

static int
head_cb(void *ctx, const char *p, size_t n)
{
	struct head_ctx *h = ctx;
	size_t take = h->want - h->out->len;

	buf_add(h->out, p, take < n ? take : n);
	return h->out->len >= h->want;
}

int
qf_content_head(int fd, const struct qf_envelope *env, size_t max, struct buf *out)
{
	struct head_ctx h = { out, max };

	buf_reset(out);
	if ((off_t)h.want > env->content_size)
		h.want = (size_t)env->content_size;
	if (h.want == 0)
		return 0;
	return qf_content(fd, env, head_cb, &h) < 0 ? -1 : 0;
}

/*
 * The writer.
 */
static void
w_flush(struct qf_writer *w)
{
	if (w->error == 0 && w->out.len) {
		if (write_full(w->fd, w->out.data, w->out.len) < 0)
			w->error = errno ? errno : EIO;
		else
			w->offset += (off_t)w->out.len;
	}
	buf_reset(&w->out);
}

static void
w_record(struct qf_writer *w, int type, const char *p, size_t n)
{
	unsigned char h[HDR];

	h[0] = (unsigned char)type;
	be32_put(h + 1, (uint32_t)n);
	buf_add(&w->out, h, HDR);
	buf_add(&w->out, p, n);
	if (w->out.len >= FLUSH_AT && !w->data_open)
		w_flush(w);
}

void
qf_writer_init(struct qf_writer *w, int fd)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	buf_init(&w->out);
	w_record(w, QREC_VERSION, QF_VERSION_STRING, strlen(QF_VERSION_STRING));
}

off_t
qf_tell(const struct qf_writer *w)
{
	return w->offset + (off_t)w->out.len;
}

static void
close_data(struct qf_writer *w)
{
	size_t pos;

	if (!w->data_open)
		return;
	pos = w->data_open - 1;
	be32_put((unsigned char *)w->out.data + pos + 1, (uint32_t)(w->out.len - pos - HDR));
	w->data_open = 0;
	if (w->out.len >= FLUSH_AT)
		w_flush(w);
}

void
qf_content_start(struct qf_writer *w)
{
	if (w->in_content)
		return;
	w_record(w, QREC_CONTENT, "", 0);
	w->in_content = 1;
}

void
qf_content_write(struct qf_writer *w, const char *p, size_t n)
{
	if (w->error)
		return;
	if (!w->in_content)
		qf_content_start(w);
	while (n > 0) {
		size_t used, take;

		if (!w->data_open) {
			w->data_open = w->out.len + 1;
			buf_add(&w->out, "D\0\0\0\0", HDR);
		}
		used = w->out.len - (w->data_open - 1) - HDR;
		take = QF_CHUNK - used;
		if (take > n)
			take = n;
		buf_add(&w->out, p, take);
		w->content_size += (off_t)take;
		p += take;
		n -= take;
		if (used + take == QF_CHUNK)
			close_data(w);
	}
}

void
qf_put(struct qf_writer *w, int type, const char *p, size_t n)
{
	if (w->error)
		return;
	if (type == QREC_DATA) {
		qf_content_write(w, p, n);
		return;
	}
	if (type == QREC_CONTENT) {
		if (n)
			w->error = EINVAL;
		else
			qf_content_start(w);
		return;
	}
	if (!is_envelope_type(type) || w->in_content || n > ENV_REC_MAX ||
	    check_record(type, p, n) != NULL) {
		w->error = EINVAL;
		return;
	}
	w_record(w, type, p, n);
}

void
qf_put_str(struct qf_writer *w, int type, const char *s)
{
	qf_put(w, type, s ? s : "", s ? strlen(s) : 0);
}

void
qf_put_rcpt(struct qf_writer *w, const char *addr, const char *orcpt, unsigned notify)
{
	struct buf b = BUF_INIT;

	if (!addr || strlen(addr) > QF_ADDR_MAX || (orcpt && strlen(orcpt) > QF_ADDR_MAX)) {
		w->error = EINVAL;
		return;
	}
	buf_adds(&b, addr);
	buf_addc(&b, 0);
	buf_adds(&b, orcpt ? orcpt : "");
	buf_addc(&b, 0);
	buf_printf(&b, "%u", notify);
	qf_put(w, QREC_RCPT, b.data, b.len);
	buf_free(&b);
}

void
qf_put_time(struct qf_writer *w, int64_t arrival_us)
{
	char t[32];
	int n = snprintf(t, sizeof(t), "%" PRId64, arrival_us);

	if (n < 0 || (size_t)n >= sizeof(t)) {
		w->error = EINVAL;
		return;
	}
	qf_put(w, QREC_TIME, t, (size_t)n);
}

void
qf_put_defer(struct qf_writer *w, off_t rcpt_offset, const char *dsn, const char *text)
{
	struct buf b = BUF_INIT;

	if (strlen(dsn) > 16 || strlen(text) > QF_TEXT_MAX) {
		w->error = EINVAL;
		return;
	}
	buf_printf(&b, "%lld", (long long)rcpt_offset);
	buf_addc(&b, 0);
	buf_adds(&b, dsn);
	buf_addc(&b, 0);
	buf_adds(&b, text);
	qf_put(w, QREC_DEFER, b.data, b.len);
	buf_free(&b);
}

void
qf_put_retry(struct qf_writer *w, int attempts, int64_t next_retry)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "%d", attempts);
	buf_addc(&b, 0);
	buf_printf(&b, "%" PRId64, next_retry);
	qf_put(w, QREC_RETRY, b.data, b.len);
	buf_free(&b);
}

int
qf_finish(struct qf_writer *w)
{
	if (!w->error) {
		if (!w->in_content)
			qf_content_start(w);
		close_data(w);
		w_record(w, QREC_END, "end", 3);
		w_flush(w);
	}
	if (w->error) {
		errno = w->error;
		return -1;
	}
	return 0;
}

void
qf_writer_free(struct qf_writer *w)
{
	buf_free(&w->out);
}

int
qf_mark_done(int fd, off_t offset)
{
	char c;
	ssize_t r;

	do
		r = pread(fd, &c, 1, offset);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	if (r != 1 || (c != QREC_RCPT && c != QREC_RCPT_DONE)) {
		errno = EINVAL;
		return -1;
	}
	if (c == QREC_RCPT_DONE)
		return 0;
	c = QREC_RCPT_DONE;
	do
		r = pwrite(fd, &c, 1, offset);
	while (r < 0 && errno == EINTR);
	if (r != 1) {
		if (r >= 0)
			errno = EIO;
		return -1;
	}
	return 0;
}

/*
 * Queue IDs: 10 base-62 digits of the creation time in microseconds
 * (fixed width, so that IDs sort by time; good until the year 28000),
 * then the inode number (or the process ID when there is no inode) in
 * base 62.  Within a process the time is made strictly increasing, so
 * one process never makes the same ID twice even if the clock steps
 * back; two processes cannot make the same ID at the same microsecond
 * because no two existing files share an inode.
 */
static const char b62[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#define QID_TIME_DIGITS	10

void
queue_id_new(char out[QUEUE_ID_MAX], ino_t ino)
{
	static int64_t last;
	int64_t t = now_us();
	uint64_t v;
	char tmp[16];
	size_t i, n = 0;

	if (t <= last)
		t = last + 1;
	last = t;
	v = (uint64_t)t;
	for (i = QID_TIME_DIGITS; i-- > 0; ) {
		out[i] = b62[v % 62];
		v /= 62;
	}
	v = ino ? (uint64_t)ino : (uint64_t)getpid();
	do {
		tmp[n++] = b62[v % 62];
		v /= 62;
	} while (v && n < sizeof(tmp));
	for (i = 0; i < n; i++)
		out[QID_TIME_DIGITS + i] = tmp[n - 1 - i];
	out[QID_TIME_DIGITS + n] = 0;
}

int
queue_id_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!isascii((unsigned char)s[i]) || !isalnum((unsigned char)s[i]))
			return 0;
	return i > QID_TIME_DIGITS && i < QUEUE_ID_MAX;
}

/* The deferred/ subfolder of an ID: one hex digit of an FNV-1a hash. */
static char
queue_hash(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return "0123456789ABCDEF"[h & 15];
}

void
queue_path(struct buf *out, const char *queue, const char *id)
{
	if (!strcmp(queue, "deferred"))
		buf_printf(out, "deferred/%c/%s", queue_hash(id), id);
	else
		buf_printf(out, "%s/%s", queue, id);
}

/*
 * New queue files.
 */
int
qf_new_open(struct qf_new *q)
{
	struct buf tmp = BUF_INIT;
	static unsigned counter;
	struct stat st;
	int tries, saved;

	memset(q, 0, sizeof(*q));
	q->fd = -1;
	for (tries = 0; ; tries++) {
		buf_reset(&tmp);
		buf_printf(&tmp, "%s/incoming/t.%ld.%u", conf_str("queue_directory"),
		    (long)getpid(), counter++);
		q->fd = open(buf_str(&tmp), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (q->fd >= 0)
			break;
		if (errno != EEXIST || tries >= 100) {
			msg_error("create %s: %s", buf_str(&tmp), strerror(errno));
			buf_free(&tmp);
			return -1;
		}
	}
	if (fstat(q->fd, &st) < 0) {
		msg_error("fstat %s: %s", buf_str(&tmp), strerror(errno));
		goto fail;
	}
	queue_id_new(q->id, st.st_ino);
	buf_printf(&q->incoming, "%s/incoming/%s", conf_str("queue_directory"), q->id);
	buf_printf(&q->active, "%s/active/%s", conf_str("queue_directory"), q->id);
	if (rename(buf_str(&tmp), buf_str(&q->incoming)) < 0) {
		msg_error("rename %s to %s: %s", buf_str(&tmp), buf_str(&q->incoming), strerror(errno));
		goto fail;
	}
	buf_free(&tmp);
	if (geteuid() == 0 && conf_privileged()) {
		uid_t uid;
		gid_t gid;

		if (priv_owner(&uid, &gid) < 0) {
			qf_new_abort(q);
			return -1;
		}
		if (fchown(q->fd, uid, gid) < 0) {
			msg_error("%s: fchown incoming/%s: %s", q->id, q->id, strerror(errno));
			qf_new_abort(q);
			return -1;
		}
	}
	qf_writer_init(&q->w, q->fd);
	return 0;
fail:
	saved = errno;
	close(q->fd);
	unlink(buf_str(&tmp));
	buf_free(&tmp);
	buf_free(&q->incoming);
	buf_free(&q->active);
	q->fd = -1;
	errno = saved;
	return -1;
}

void
qf_new_abort(struct qf_new *q)
{
	int saved = errno;

	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
	if (q->incoming.len)
		unlink(buf_str(&q->incoming));
	qf_writer_free(&q->w);
	buf_free(&q->incoming);
	buf_free(&q->active);
	errno = saved;
}

static void
new_free(struct qf_new *q)
{
	qf_writer_free(&q->w);
	buf_free(&q->incoming);
	buf_free(&q->active);
}

/* The steps of a commit; each logs and aborts (removes) on failure. */
static int
commit_write(struct qf_new *q)
{
	if (qf_finish(&q->w) < 0) {
		msg_error("%s: write incoming/%s: %s", q->id, q->id,
		    errno == EINVAL ? "invalid envelope data" : strerror(errno));
		qf_new_abort(q);
		return -1;
	}
	return 0;
}

static int
commit_sync(struct qf_new *q)
{
	if (fsync(q->fd) < 0) {
		msg_error("%s: fsync incoming/%s: %s", q->id, q->id, strerror(errno));
		qf_new_abort(q);
		return -1;
	}
	return 0;
}

static int
commit_rename(struct qf_new *q)
{
	if (close(q->fd) < 0) {
		q->fd = -1;
		msg_error("%s: close incoming/%s: %s", q->id, q->id, strerror(errno));
		qf_new_abort(q);
		return -1;
	}
	q->fd = -1;
	if (rename(buf_str(&q->incoming), buf_str(&q->active)) < 0) {
		msg_error("%s: rename incoming/%s to active/%s: %s", q->id, q->id, q->id, strerror(errno));
		qf_new_abort(q);
		return -1;
	}
	return 0;
}

/*
 * A batch of QF_GROUP_SYNC or more files is made durable with one
 * syncfs() of the spool file system instead of one fsync() per file:
 * it flushes the same data and metadata (and more), with one journal
 * commit for the whole batch instead of one per file.  Smaller batches,
 * the normal case on a quiet system, use fsync() and do not pay for
 * other programs' dirty data.
 */
#define QF_GROUP_SYNC	4

int
qf_commit_many(struct qf_new *q, size_t n, int *result)
{
	return qf_commit_many_early(q, n, result, NULL, NULL);
}

int
qf_commit_many_early(struct qf_new *q, size_t n, int *result,
    void (*renamed)(void *ctx, struct qf_new *q, size_t n, const int *result), void *ctx)
{
	struct buf dir = BUF_INIT;
	size_t i, written = 0, nrenamed = 0, failed = 0;
	int dirok = 1, group = 0;

	for (i = 0; i < n; i++) {
		result[i] = commit_write(&q[i]);
		if (result[i] == 0)
			written++;
	}
	if (written >= QF_GROUP_SYNC) {
		for (i = 0; i < n; i++)
			if (result[i] == 0)
				break;
		if (syncfs(q[i].fd) == 0)
			group = 1;
		else
			msg_warn("syncfs of the queue file system: %s; using fsync", strerror(errno));
	}
	for (i = 0; i < n; i++) {
		if (result[i] == 0 && !group)
			result[i] = commit_sync(&q[i]);
		if (result[i] == 0)
			result[i] = commit_rename(&q[i]);
		if (result[i] == 0)
			nrenamed++;
		else
			failed++;
	}
	if (nrenamed == 0)
		return (int)failed;
	if (renamed)
		renamed(ctx, q, n, result);
	conf_queue_path(&dir, "active");
	if (fsync_dir(buf_str(&dir)) < 0) {
		msg_error("fsync %s: %s", buf_str(&dir), strerror(errno));
		dirok = 0;
	}
	buf_free(&dir);
	for (i = 0; i < n; i++) {
		if (result[i] != 0)
			continue;
		if (!dirok) {
			/* not durable: the caller must not acknowledge it */
			unlink(buf_str(&q[i].active));
			result[i] = -1;
			failed++;
		}
		new_free(&q[i]);
	}
	return (int)failed;
}

int
qf_commit(struct qf_new *q)
{
	int result;

	qf_commit_many(q, 1, &result);
	return result;
}
