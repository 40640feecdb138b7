/*
 * imap_search: SEARCH (RFC 3501 6.4.4; ESEARCH 4731, SEARCHRES 5182,
 * WITHIN 5032, MODSEQ 7162), SORT and THREAD (RFC 5256) over a box.
 * Header and body keys are matched case-insensitively on text decoded
 * to UTF-8 (RFC 2047 words, transfer encodings, charsets by iconv
 * through lib/mime).
 */
#ifndef HERMOD_IMAP_SEARCH_H
#define HERMOD_IMAP_SEARCH_H

#include <stdint.h>
#include "buf.h"
#include "header.h"
#include "imap_box.h"
#include "imap_parse.h"

/* The charsets SEARCH CHARSET accepts: 1 yes (UTF-8, US-ASCII, and
 * anything iconv knows), 0 no (NO [BADCHARSET (UTF-8 US-ASCII)]). */
int imap_search_charset_ok(const char *charset);

/* Evaluate the key tree on every message of the view.  saved: the
 * SEARCHRES result ("$") as UIDs (may be NULL or empty).  now: the time
 * OLDER/YOUNGER count from.  *seqs gets the matching sequence numbers,
 * ascending (caller frees).  Messages marked expunged never match.
 * IBOX_OK or IBOX_ERR (err says why: a bad charset for the key strings). */
int imap_search_run(struct imap_box *b, const struct imap_search *s,
    const struct imap_seqset *saved, int64_t now, uint32_t **seqs, size_t *n,
    struct buf *err);

/* SORT: seqs[0..n) (a search result) reordered by s->sort (RFC 5256
 * base subject, sent date with internal date fallback, first address
 * mailbox, DISPLAYFROM/DISPLAYTO RFC 5957; ties by sequence number).
 * IBOX_OK or IBOX_ERR. */
int imap_sort_run(struct imap_box *b, const struct imap_search *s,
    uint32_t *seqs, size_t n, struct buf *err);

/* THREAD: append the thread list "(1 2)(3 (4)(5))" (without "* THREAD "
 * or CRLF) for seqs[0..n), numbers as UIDs when uid, else sequence
 * numbers, by s->thread (ORDEREDSUBJECT or REFERENCES).  IBOX_OK or
 * IBOX_ERR. */
int imap_thread_run(struct imap_box *b, const struct imap_search *s,
    const uint32_t *seqs, size_t n, int uid, struct buf *out, struct buf *err);

/* ---- shared by imap_search.c, imap_sort.c and imap_thread.c ---- */

/* Append UTF-8 s[0..n) case-folded (ASCII, Latin-1, Latin Extended-A,
 * Greek and Cyrillic capitals, else towlower) for comparisons. */
void isearch_fold(const char *s, size_t n, struct buf *out);
/* Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t isearch_days(int year, int mon, int day);
/* An RFC 5322 date-time (obsolete forms and missing parts tolerated):
 * *t the instant (UTC), *days (may be NULL) the day of the date as
 * written in its own zone.  0, or -1 when it does not parse. */
int isearch_parse_date(const char *s, int64_t *t, int64_t *days);
/* Append the RFC 5256 section 2.1 base subject of a raw Subject value
 * (RFC 2047 decoded, folded); 1 when something showed a reply or
 * forward (Re:, Fwd:, (fwd), [fwd: ...]), else 0. */
int isearch_base_subject(const char *raw, struct buf *out);
/* The first address of an address-list value (groups entered): its
 * display name (RFC 2047 decoded), mailbox (local part) and host.  0,
 * or -1 when there is none. */
int isearch_first_addr(const char *value, struct buf *name, struct buf *mailbox,
    struct buf *host);
/* Load msgs[i] and parse its header section into h (header_free it,
 * also on error).  IBOX_OK, IBOX_GONE or IBOX_ERR. */
int isearch_header(struct imap_box *b, size_t i, struct header *h, struct buf *err);
/* The sent date of msgs[i] (Date: of h, else the internal date).
 * IBOX_OK, IBOX_GONE or IBOX_ERR. */
int isearch_sent(struct imap_box *b, size_t i, const struct header *h, int64_t *t,
    struct buf *err);

#endif
