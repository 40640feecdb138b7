/*
 * imap_compress: the two raw DEFLATE streams of COMPRESS=DEFLATE
 * (imap_compress.h).  Compressed input waits in `in' until the session
 * wants more commands, and is inflated in slices of at most what the
 * caller asks for.
 */
#include "imap_compress.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Raw DEFLATE, the largest window (RFC 4978 wants what RFC 1951 allows;
 * a client may use any window up to 32 KB, so inflate must take 15). */
#define Z_WBITS		(-15)
/* zlib's default: memory level 8 is some 256 KB of deflate state. */
#define Z_LEVEL		Z_DEFAULT_COMPRESSION

struct imap_compress {
	z_stream d, i;
	struct buf in;		/* fed, not yet inflated */
	size_t off;		/* of in: inflated up to here */
	int full;		/* the last inflate filled its room: zlib may
				 * hold more output without more input */
};

struct imap_compress *
imap_compress_new(void)
{
	struct imap_compress *z = xcalloc(1, sizeof(*z));

	if (deflateInit2(&z->d, Z_LEVEL, Z_DEFLATED, Z_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		free(z);
		return NULL;
	}
	if (inflateInit2(&z->i, Z_WBITS) != Z_OK) {
		deflateEnd(&z->d);
		free(z);
		return NULL;
	}
	return z;
}

void
imap_compress_free(struct imap_compress **zp)
{
	struct imap_compress *z = *zp;

	if (!z)
		return;
	deflateEnd(&z->d);
	inflateEnd(&z->i);
	buf_free(&z->in);
	free(z);
	*zp = NULL;
}

int
imap_compress_deflate(struct imap_compress *z, const char *p, size_t n, struct buf *out)
{
	/* zlib counts in uInt: feed a huge response in slices */
	do {
		size_t take = n > (1u << 30) ? (1u << 30) : n;
		int flush = take == n ? Z_SYNC_FLUSH : Z_NO_FLUSH, r;

		z->d.next_in = (Bytef *)(uintptr_t)p;
		z->d.avail_in = (uInt)take;
		do {
			size_t room = deflateBound(&z->d, z->d.avail_in) + 64;

			buf_reserve(out, room);
			z->d.next_out = (Bytef *)out->data + out->len;
			z->d.avail_out = (uInt)(out->cap - out->len - 1);
			r = deflate(&z->d, flush);
			if (r != Z_OK && r != Z_BUF_ERROR)
				return -1;
			out->len = (size_t)((char *)z->d.next_out - out->data);
			/* done when the input is in and the flush had room */
		} while (z->d.avail_in || z->d.avail_out == 0);
		p += take;
		n -= take;
	} while (n);
	out->data[out->len] = '\0';
	return 0;
}

void
imap_compress_feed(struct imap_compress *z, const char *p, size_t n)
{
	if (z->off == z->in.len) {
		buf_reset(&z->in);
		z->off = 0;
	}
	buf_add(&z->in, p, n);
}

int
imap_compress_pending(const struct imap_compress *z)
{
	return z->off < z->in.len || z->full;
}

long
imap_compress_inflate(struct imap_compress *z, struct buf *out, size_t max)
{
	size_t before = out->len;
	int r;

	if (!imap_compress_pending(z) || max == 0)
		return 0;
	buf_reserve(out, max);
	if (!z->in.data)	/* zlib's held output only */
		buf_reserve(&z->in, 1);
	z->i.next_in = (Bytef *)z->in.data + z->off;
	z->i.avail_in = (uInt)(z->in.len - z->off > (1u << 30) ? (1u << 30) : z->in.len - z->off);
	z->i.next_out = (Bytef *)out->data + out->len;
	z->i.avail_out = (uInt)max;
	r = inflate(&z->i, Z_SYNC_FLUSH);
	/* the client's stream has no end: Z_STREAM_END is as bad as junk */
	if (r != Z_OK && r != Z_BUF_ERROR)
		return -1;
	z->off = (size_t)((char *)z->i.next_in - z->in.data);
	out->len = (size_t)((char *)z->i.next_out - out->data);
	out->data[out->len] = '\0';
	z->full = z->i.avail_out == 0;
	if (z->off == z->in.len) {
		buf_reset(&z->in);
		z->off = 0;
	}
	return (long)(out->len - before);
}
