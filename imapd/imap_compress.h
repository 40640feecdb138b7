/*
 * imap_compress: COMPRESS=DEFLATE (RFC 4978) for a session: raw DEFLATE
 * (RFC 1951, no zlib header) in both directions, as zlib streams that
 * live as long as the connection.  Output is flushed (Z_SYNC_FLUSH) at
 * the end of every write, so that each response arrives whole; input is
 * inflated no further than the caller asks, so that a few bytes of
 * hostile compressed data cannot become an unbounded input buffer.
 */
#ifndef HERMOD_IMAP_COMPRESS_H
#define HERMOD_IMAP_COMPRESS_H

#include <stddef.h>

#include "buf.h"

struct imap_compress;

/* NULL when zlib cannot set up (out of memory). */
struct imap_compress *imap_compress_new(void);
void imap_compress_free(struct imap_compress **z);

/* Append the compressed form of (p, n) to out, flushed: 0, -1 (zlib). */
int imap_compress_deflate(struct imap_compress *z, const char *p, size_t n, struct buf *out);

/* Take (p, n) of compressed input: kept until inflated. */
void imap_compress_feed(struct imap_compress *z, const char *p, size_t n);
/* 1 when input fed is not inflated yet. */
int imap_compress_pending(const struct imap_compress *z);
/* Inflate what was fed, appending at most max bytes to out: the number
 * appended (0: more input is needed), or -1 for data that is not
 * DEFLATE (the session cannot go on). */
long imap_compress_inflate(struct imap_compress *z, struct buf *out, size_t max);

#endif
