/*
 * imap_utf7: modified UTF-7 (RFC 3501 section 5.1.3), the encoding of
 * non-ASCII mailbox names on the wire, to and from UTF-8.  Strict both
 * ways: only the one canonical encoding of a name is accepted, so two
 * different wire names never map to the same folder.
 */
#ifndef HERMOD_IMAP_UTF7_H
#define HERMOD_IMAP_UTF7_H

#include <stddef.h>
#include "buf.h"

/* Modified UTF-7 in[0..n) -> UTF-8, appended to out.  0 ok, -1 not
 * canonical modified UTF-7 (out may hold a partial result): a byte
 * outside 0x20..0x7e, "&" without "-", a bad base64 character, a
 * printable ASCII character (or NUL) that was base64-encoded, two
 * adjacent encoded runs, leftover or non-zero padding bits, an unpaired
 * surrogate. */
int imap_utf7_decode(const char *in, size_t n, struct buf *out);

/* UTF-8 in[0..n) -> modified UTF-7, appended to out.  0 ok, -1 not
 * well-formed UTF-8 (overlong forms, surrogates, above U+10FFFF) or NUL. */
int imap_utf7_encode(const char *in, size_t n, struct buf *out);

/* 1 if in[0..n) is canonical modified UTF-7. */
int imap_utf7_valid(const char *in, size_t n);

#endif
