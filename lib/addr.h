/*
 * addr: RFC 5321 envelope addresses and RFC 5322 address lists.
 *
 * Envelope addresses are kept in their internal (unquoted-where-possible)
 * form "local@domain" or "local" (unqualified); the null sender is "".
 * Nothing here accepts CR, LF or NUL.
 *
 * The internal form is the RFC 5321 form with the least quoting: a local
 * part that is a dot-atom is written bare, any other local part is a
 * quoted-string ("john doe"@example.test); addr_unwrap and
 * addr_parse_list produce it.  The domain keeps its case.
 *
 * Output buffers: addr_split, addr_qualify and addr_unwrap REPLACE the
 * contents of their output buffers; addr_quote_local APPENDS.
 */
#ifndef HERMOD_ADDR_H
#define HERMOD_ADDR_H

#include <stddef.h>
#include "buf.h"

/* Longest address accepted, in bytes (wire form, without <>). */
#define ADDR_MAX_LEN	4096

/* Split at the last '@' outside quotes: local part (quotes removed) and
 * domain (lower-cased, may be ""). 0 ok, -1 malformed. */
int addr_split(const char *addr, struct buf *local, struct buf *domain);
/* 1 if addr is acceptable as an envelope address (RFC 5321 syntax,
 * or an unqualified local part), 0 if not.  The null sender "" is
 * acceptable (1); use addr_valid_rcpt for recipients.  Tolerated
 * obsolete forms: leading, trailing or repeated dots in an unquoted
 * local part; '_' in domain labels; UTF-8 (RFC 6531) in local parts and
 * domains.  Refused: control characters, more than ADDR_MAX_LEN bytes,
 * domains over 255 bytes or labels over 63, an empty domain after '@'. */
int addr_valid(const char *addr);
/* addr_valid, and not "": for recipients. */
int addr_valid_rcpt(const char *addr);
/* Append @origin to an unqualified address (result in out); "" (the
 * null sender) and qualified addresses are copied unchanged. */
void addr_qualify(const char *addr, const char *origin, struct buf *out);
/* Quote a local part for use on the wire / in headers when needed. */
void addr_quote_local(const char *local, struct buf *out);
/* Strip a source route ("@a,@b:user@dom" -> "user@dom") and outer <>
 * from an address as given on a command line or in MAIL FROM. 0 ok.
 * The result is in internal form ("<>" gives ""), one trailing dot of
 * the domain removed, and passes addr_valid; -1 if it would not. */
int addr_unwrap(const char *in, struct buf *out);

/*
 * Parse an RFC 5322 address-list header value (To:, Cc:, Bcc:, already
 * unfolded) into envelope addresses: display names, comments and group
 * syntax are removed; "name <a@b>", "a@b (comment)", "grp: a@b, c@d;".
 * Returns a NULL-terminated vector (free with strv_free); addresses that
 * do not parse are skipped and counted in *bad (may be NULL).
 */
char **addr_parse_list(const char *value, size_t *bad);

#endif
