/*
 * map: lookup tables named "type:path", behind one interface so that
 * another backend can be added as distributions retire Berkeley DB.
 *   hash:/path   Berkeley DB hash file /path.db built from text /path
 * Keys are looked up as given and then lower-cased (keys are stored
 * lower-case). Programs chdir to a safe folder before opening a
 * database (libdb reads DB_CONFIG from the current directory): map_open
 * does it itself and returns to the previous directory.
 */
#ifndef HERMOD_MAP_H
#define HERMOD_MAP_H

#include <sys/stat.h>

#include "buf.h"

struct map;

/* Open for lookups.  NULL with a message in err. A missing .db file is
 * an error (the administrator must run newaliases / hermod map build). */
struct map *map_open(const char *spec, struct buf *err);
/* 1 found (value in val), 0 not found, -1 error (logged). */
int map_lookup(struct map *m, const char *key, struct buf *val);
void map_close(struct map *m);

/*
 * Build spec's database from its text source.  format selects the
 * source syntax: MAP_FMT_ALIASES (aliases(5): "name: value, value",
 * continuation lines start with white space) or MAP_FMT_TABLE ("key
 * value" per line).  The database is written to a temporary file,
 * fsynced and renamed over the old one, so readers never see a half
 * built map.  Returns the number of entries, or -1 with err set.
 */
#define MAP_FMT_TABLE	0
#define MAP_FMT_ALIASES	1
long map_build(const char *spec, int format, struct buf *err);

/*
 * Added by the local helper:
 * Storage: keys are stored lower-cased and WITHOUT a terminating NUL
 * (unlike Postfix, which stores the NUL); values are stored without a
 * NUL too.  For aliases the value is the destination list as written in
 * the source (continuation lines joined with one space).  A name given
 * twice in a source: a warning naming both lines, and the LAST entry
 * wins (sendmail's behaviour).  "btree:/path" is accepted too (DB_BTREE).
 */
/* The stat of the database file as opened (owner for alias privileges). */
int map_fstat(struct map *m, struct stat *st);
/* 1 if the database file was replaced (rebuilt) since map_open, so the
 * caller should reopen; 0 if not (or it cannot tell). */
int map_stale(struct map *m);
/* 1 if the open database file was replaced (rebuilt: it has no name
 * any more) or changed in place since map_open, judged from the open
 * descriptor alone, so it works inside a chroot where the path does not
 * resolve; 0 if not or it cannot tell.  The caller cannot reopen there:
 * smtpd finishes its sessions and exits, and its successor opens the
 * new file before it enters the chroot. */
int map_replaced(struct map *m);
/* The spec the map was opened with ("hash:/etc/hermod/aliases"). */
const char *map_spec(const struct map *m);
/* Build from text already in memory (tests, hermod map build -). */
long map_build_data(const char *spec, int format, const char *data,
    size_t len, struct buf *err);

#endif
