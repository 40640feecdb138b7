/*
 * imap_cache: the per-folder cache of what FETCH would otherwise reopen
 * every message for (FOLDER/hermod-cache): per message BASENAME its
 * size, internal date, ENVELOPE, BODYSTRUCTURE and BODY.  A Maildir
 * file's content never changes under one BASENAME, so the key alone
 * makes an entry valid.  The file is only a cache: a missing, torn or
 * foreign file is ignored (and rewritten), never trusted beyond its
 * own length fields.  Format in doc/imap-store.md.
 */
#ifndef HERMOD_IMAP_CACHE_H
#define HERMOD_IMAP_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "imap_box.h"

#define IMAP_CACHE_FILE		"hermod-cache"
#define IMAP_CACHE_MAX_FILE	(256L * 1024 * 1024)	/* a larger file is ignored */

struct imap_cache;

/* Load FOLDER/hermod-cache (folder ends in '/'); never NULL (empty when
 * the file is missing or unusable). */
struct imap_cache *imap_cache_load(const char *folder);
/* The same from the file's bytes (for imap_cache_load and the fuzzer). */
struct imap_cache *imap_cache_parse(const char *p, size_t n);
/* How many entries it holds. */
size_t imap_cache_count(const struct imap_cache *c);
/* Copy the cached items of BASENAME base into m (the IBOX_META_* bits
 * it sets in m->have); 0 when there is nothing. */
unsigned imap_cache_get(struct imap_cache *c, const char *base, struct ibox_msg *m);
/* Remember m's items (m->have) under base. */
void imap_cache_put(struct imap_cache *c, const char *base, const struct ibox_msg *m);
/* When something was added since the last save: write the entries whose
 * BASENAME is in keep[0..n) (the folder's messages) atomically.
 * 0 ok or nothing to do, -1 with errno. */
int imap_cache_save(struct imap_cache *c, const char *folder, char *const *keep, size_t n);
void imap_cache_free(struct imap_cache **c);

/* The BASENAME of "cur/BASE,S=..:2,FL" (up to the first ',' or ':'). */
void imap_cache_base(const char *name, struct buf *out);

/* The Maildir back end's cache of an open box, or NULL (imap_box_maildir.c). */
struct imap_cache *ibox_maildir_cache(struct imap_box *b);

#endif
