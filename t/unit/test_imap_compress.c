/*
 * test_imap_compress: COMPRESS=DEFLATE streams (imapd/imap_compress.c):
 * a round trip through our own deflate and inflate, flushed writes that
 * a peer can read whole at once, raw DEFLATE made by zlib directly (as a
 * client would), a bomb inflated only in slices, and junk refused.
 */
#include "imap_compress.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* what a client does: raw deflate with a sync flush */
static void
client_deflate(z_stream *c, const char *p, size_t n, struct buf *out)
{
	buf_reserve(out, deflateBound(c, (uLong)n) + 64);
	c->next_in = (Bytef *)(uintptr_t)p;
	c->avail_in = (uInt)n;
	c->next_out = (Bytef *)out->data + out->len;
	c->avail_out = (uInt)(out->cap - out->len - 1);
	deflate(c, Z_SYNC_FLUSH);
	out->len = (size_t)((char *)c->next_out - out->data);
}

/* what a client does with our output: inflate all of it */
static int
client_inflate(z_stream *c, const struct buf *in, struct buf *out)
{
	char tmp[4096];
	int r;

	c->next_in = (Bytef *)in->data;
	c->avail_in = (uInt)in->len;
	do {
		c->next_out = (Bytef *)tmp;
		c->avail_out = sizeof(tmp);
		r = inflate(c, Z_SYNC_FLUSH);
		if (r != Z_OK && r != Z_BUF_ERROR)
			return -1;
		buf_add(out, tmp, sizeof(tmp) - c->avail_out);
	} while (c->avail_in || c->avail_out == 0);
	return 0;
}

/* every byte inflate gives, in slices of at most max */
static long
drain(struct imap_compress *z, struct buf *out, size_t max, int *over)
{
	long k, all = 0;

	while ((k = imap_compress_inflate(z, out, max)) > 0) {
		if ((size_t)k > max)
			*over = 1;
		all += k;
	}
	return k < 0 ? -1 : all;
}

int
main(void)
{
	struct imap_compress *z = imap_compress_new();
	struct buf wire = BUF_INIT, got = BUF_INIT, big = BUF_INIT;
	z_stream c;
	int over = 0;
	size_t i;

	ok(z != NULL, "imap_compress_new");

	/* server -> client: each flushed write is readable on its own */
	memset(&c, 0, sizeof(c));
	inflateInit2(&c, -15);
	ok(imap_compress_deflate(z, "* OK one\r\n", 10, &wire) == 0, "deflate a response");
	ok(client_inflate(&c, &wire, &got) == 0 && got.len == 10 && !memcmp(got.data, "* OK one\r\n", 10),
	    "the client inflates it whole, with no more bytes from us");
	buf_reset(&wire);
	buf_reset(&got);
	for (i = 0; i < 20000; i++)
		buf_printf(&big, "* %zu FETCH (FLAGS (\\Seen))\r\n", i);
	ok(imap_compress_deflate(z, big.data, big.len, &wire) == 0 && wire.len < big.len / 4,
	    "a large response shrinks (%zu -> %zu bytes)", big.len, wire.len);
	ok(client_inflate(&c, &wire, &got) == 0 && got.len == big.len && !memcmp(got.data, big.data, big.len),
	    "and comes back byte for byte, on the same stream");
	inflateEnd(&c);

	/* client -> server, made by zlib as a client makes it */
	memset(&c, 0, sizeof(c));
	deflateInit2(&c, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
	buf_reset(&wire);
	buf_reset(&got);
	client_deflate(&c, "a NOOP\r\n", 8, &wire);
	ok(!imap_compress_pending(z), "nothing pending before input");
	/* fed a byte at a time: nothing is lost across feeds */
	for (i = 0; i < wire.len; i++) {
		imap_compress_feed(z, wire.data + i, 1);
		if (drain(z, &got, 16384, &over) < 0)
			break;
	}
	is_str(got.data ? got.data : "", "a NOOP\r\n", "a command fed byte by byte");
	/* a bomb: 8 MB of one letter is a few KB compressed; each inflate
	 * gives at most what is asked */
	buf_reset(&wire);
	buf_reset(&got);
	buf_reset(&big);
	for (i = 0; i < 8 * 1024 * 1024; i++)
		buf_addc(&big, 'x');
	client_deflate(&c, big.data, big.len, &wire);
	ok(wire.len < 64 * 1024, "8 MB of 'x' is %zu bytes compressed", wire.len);
	imap_compress_feed(z, wire.data, wire.len);
	{
		long k = imap_compress_inflate(z, &got, 16384);

		ok(k == 16384 && got.len == 16384, "one inflate gives at most what is asked (%ld)", k);
		ok(imap_compress_pending(z), "the rest waits");
	}
	ok(drain(z, &got, 16384, &over) == (long)(big.len - 16384) && !over && got.len == big.len,
	    "slice by slice, all of it and never more than asked at once");
	deflateEnd(&c);
	imap_compress_free(&z);
	ok(z == NULL, "imap_compress_free clears the pointer");

	/* junk: not DEFLATE */
	z = imap_compress_new();
	buf_reset(&got);
	imap_compress_feed(z, "\xff\xff\xff\xff\xff\xff", 6);
	ok(drain(z, &got, 16384, &over) < 0, "junk input is an error");
	imap_compress_free(&z);
	buf_free(&wire);
	buf_free(&got);
	buf_free(&big);
	return done_testing();
}
