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

#endif
