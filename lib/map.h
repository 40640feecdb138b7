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

#endif
