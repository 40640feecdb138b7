/*
 * imap_fetch: the FETCH response of one message (RFC 3501 6.4.5 and 7.4.2,
 * BINARY RFC 3516, MODSEQ RFC 7162): every item of struct imap_fetch
 * rendered from the box's cache where it can be (FLAGS, UID, MODSEQ,
 * RFC822.SIZE, INTERNALDATE, ENVELOPE, BODYSTRUCTURE) and from the
 * message bytes (lib/mime) where it must.
 */
#ifndef HERMOD_IMAP_FETCH_H
#define HERMOD_IMAP_FETCH_H

#include "buf.h"
#include "imap_box.h"
#include "imap_parse.h"

/* 1 when the items need the message bytes (not only the cache). */
int imap_fetch_needs_body(const struct imap_fetch *f);
/* 1 when the items set \Seen (BODY[...]/BINARY[...] without PEEK,
 * RFC822, RFC822.TEXT): the session stores \Seen first, unless the box
 * is read-only, and then adds FLAGS to the response if it was not asked. */
int imap_fetch_sets_seen(const struct imap_fetch *f);

/* Append "* SEQ FETCH (...)\r\n" for msgs[i] to out.  uid: the command was
 * UID FETCH (UID is then always in the response); add_flags: put FLAGS in
 * even if not asked (\Seen just set); modseq: CONDSTORE is on (MODSEQ in
 * every FETCH response).  Literals are written as "{n}\r\n" + bytes
 * (binary items as "~{n}" when they hold NUL).  IBOX_OK, IBOX_GONE (the
 * message is gone: the caller answers NO [EXPUNGEISSUED]; nothing was
 * appended), IBOX_ERR, or IMAP_FETCH_UNKNOWN_CTE (BINARY of a part with an
 * unknown transfer encoding: NO [UNKNOWN-CTE], nothing appended). */
#define IMAP_FETCH_UNKNOWN_CTE	3
int imap_fetch_msg(struct imap_box *b, size_t i, const struct imap_fetch *f, int uid,
    int add_flags, int modseq, struct buf *out, struct buf *err);

/* The FLAGS list "(\Seen $Forwarded ...)" of msgs[i] (\Recent included). */
void imap_fetch_flags(const struct ibox_msg *m, struct buf *out);

#endif
