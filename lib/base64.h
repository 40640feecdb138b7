/*
 * base64 (RFC 4648): strict decoding (padding required, no white space,
 * no stray bits) for SASL exchanges, and encoding for SASL challenges
 * and MIME encoded-words.  Both append to out.
 */
#ifndef HERMOD_BASE64_H
#define HERMOD_BASE64_H

#include <stddef.h>
#include "buf.h"

/* 0 ok, -1 not valid base64 (out may hold a partial result). */
int base64_decode(const char *in, size_t n, struct buf *out);
void base64_encode(const void *in, size_t n, struct buf *out);
/* The value (0-63) of base64 character c, -1 for none; c63 is the 64th
 * character: '/' in RFC 4648, ',' in IMAP's modified base64 (RFC 3501
 * 5.1.3). */
int base64_value(int c, int c63);

#endif
