/*
 * addr: RFC 5321 envelope addresses and RFC 5322 address lists.
 *
 * Envelope addresses are kept in their internal (unquoted-where-possible)
 * form "local@domain" or "local" (unqualified); the null sender is "".
 * Nothing here accepts CR, LF or NUL.
 */
#ifndef HERMOD_ADDR_H
#define HERMOD_ADDR_H

#include <stddef.h>
#include "buf.h"

/* Split at the last '@' outside quotes: local part (quotes removed) and
 * domain (lower-cased, may be ""). 0 ok, -1 malformed. */
int addr_split(const char *addr, struct buf *local, struct buf *domain);
/* 1 if addr is acceptable as an envelope address (RFC 5321 syntax,
 * or an unqualified local part), 0 if not. */
int addr_valid(const char *addr);
/* Append @myorigin to an unqualified address (result in out). */
void addr_qualify(const char *addr, const char *origin, struct buf *out);
/* Quote a local part for use on the wire / in headers when needed. */
void addr_quote_local(const char *local, struct buf *out);
/* Strip a source route ("@a,@b:user@dom" -> "user@dom") and outer <>
 * from an address as given on a command line or in MAIL FROM. 0 ok. */
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
