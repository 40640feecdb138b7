/*
 * imap_seq: IMAP sequence sets (RFC 3501 section 9 "sequence-set", with
 * the "$" of SEARCHRES, RFC 5182): parsing, resolving "*" against the
 * mailbox, membership, and writing them back for responses (COPYUID,
 * VANISHED, ESEARCH ALL).  Pure functions, no I/O.
 */
#ifndef HERMOD_IMAP_SEQ_H
#define HERMOD_IMAP_SEQ_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"

/* "*": the largest number in use.  0 is never a valid number, so it can
 * stand for "*" without a flag (4294967295 stays a number). */
#define IMAP_SEQ_STAR	0

/* One range, lo <= hi.  As parsed, "*" is kept: a range with "*" has
 * it in hi (lo <= hi reads "*" as the largest), and "*" alone is
 * lo == hi == IMAP_SEQ_STAR.  Reversed ranges ("5:2") are stored in
 * order ("2:5"), as RFC 3501 says they mean the same. */
struct imap_range {
	uint32_t lo, hi;
};

struct imap_seqset {
	struct imap_range *r;
	size_t n;
	int saved;		/* "$": the result SEARCH RETURN (SAVE) kept; n == 0 */
};

#define IMAP_SEQ_INIT { NULL, 0, 0 }

/* imap_seq_parse flags */
#define IMAP_SEQ_ALLOW_SAVED	1	/* "$" accepted (it is, in commands) */
#define IMAP_SEQ_NO_STAR	2	/* "*" refused (QRESYNC known UIDs) */

/* Parse s[0..n) (exactly, nothing after it).  *budget is the number of
 * ranges still allowed (it is decremented; a command shares one budget
 * between all its sets).  0 ok, -1 with *why set to a static reason. */
int imap_seq_parse(const char *s, size_t n, unsigned flags, size_t *budget,
    struct imap_seqset *out, const char **why);
void imap_seq_free(struct imap_seqset *s);

/* Append a range (a builder for responses); lo and hi in any order. */
void imap_seq_add(struct imap_seqset *s, uint32_t lo, uint32_t hi);

/* out = in with "*" replaced by max, clipped to 1..max, sorted, merged
 * (ranges disjoint and not adjacent).  A range entirely above max
 * disappears except that "n:*" always includes max (RFC 3501 section
 * 6.4.8).  "$" gives an empty set: the caller substitutes its saved
 * result first.  out must not be in. */
void imap_seq_resolve(const struct imap_seqset *in, uint32_t max,
    struct imap_seqset *out);
/* Sort and merge in place (a set without "*", e.g. one built). */
void imap_seq_normalize(struct imap_seqset *s);

/* On a resolved or normalised set: membership (binary search) and the
 * number of values. */
int imap_seq_contains(const struct imap_seqset *s, uint32_t v);
uint64_t imap_seq_count(const struct imap_seqset *s);

/* The largest explicit number of a parsed set ("*" ignored), 0 if none:
 * a message sequence number above the mailbox size is a BAD. */
uint32_t imap_seq_highest(const struct imap_seqset *s);

/* Append the set as "1:3,5,7:*" ("$" for a saved reference). */
void imap_seq_write(struct buf *out, const struct imap_seqset *s);

#endif
