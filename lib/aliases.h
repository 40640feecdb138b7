/*
 * aliases: the aliases(5) source syntax, shared by map_build (the text
 * source of an alias database), by :include: files and by .forward files.
 *
 * An aliases source is a sequence of logical lines "name: dest, dest".
 * A physical line that starts with white space continues the logical line
 * before it (comment and empty lines in between are skipped, as Postfix
 * does); a line whose first non-blank character is '#' is a comment; a
 * '#' later in a line is ordinary text.  The name is a local part without
 * a domain (it may be written in double quotes); names are lower-cased.
 * The value is kept as written, continuation lines joined with one space.
 *
 * A destination list (an alias value, a line of an :include: or .forward
 * file) is split on commas outside double quotes; a backslash inside
 * quotes escapes the next character.  A destination that is one quoted
 * string as a whole ("|cmd with, comma") loses its quotes.  Forms:
 *   |command        a command run by /bin/sh -c
 *   /path/file      an mbox file appended to; /path/dir/ is a Maildir
 *   :include:/path  an address list read from a file
 *   error:X.Y.Z txt a fixed failure (4.x.x temporary, 5.x.x permanent)
 *   \name           a local user's own mailbox, never expanded again
 *   address         local part or local@domain, expanded or forwarded
 *   Name <address>  the address between the angle brackets
 *
 * Limits (hostile input in .forward files): ALIASES_MAX_LINE bytes per
 * logical line, ALIASES_MAX_DESTS destinations per list.
 */
#ifndef HERMOD_ALIASES_H
#define HERMOD_ALIASES_H

#include <stddef.h>
#include "buf.h"

#define ALIASES_MAX_LINE	(1024 * 1024)
#define ALIASES_MAX_DESTS	100000
#define ALIASES_MAX_NAME	256

/* aliases_parse flags */
#define ALIASES_TABLE	0x01	/* "key value" lines (MAP_FMT_TABLE) instead of "name: value" */

struct alias_entry {
	char *name;		/* lower-cased */
	char *value;		/* as written, continuation lines joined */
	int line;		/* where the logical line starts */
};

struct alias_error {
	int line;
	char *msg;		/* "missing ':' after the alias name", ... */
};

struct alias_list {
	struct alias_entry *v;
	size_t n;
	struct alias_error *err;
	size_t nerr;
};

/* Parse a whole aliases (or table) source.  Bad logical lines are left
 * out and described in out->err; the others are kept in order (so the
 * caller decides what a duplicate name means).  Returns out->nerr. */
size_t aliases_parse(const char *data, size_t len, int flags, struct alias_list *out);
void aliases_free(struct alias_list *l);

/*
 * Split a destination list into destinations (NULL-terminated, free with
 * strv_free), quotes removed as described above.  NULL with a message in
 * err when the list is malformed (unbalanced quote, empty destination
 * between commas is NOT an error: it is skipped, white space inside an
 * unquoted address, too many destinations, CR/LF/NUL).
 */
char **aliases_split(const char *value, struct buf *err);

/* A destination list file (:include:, .forward): every line is a
 * destination list; '#' comment lines and empty lines are skipped.
 * Destinations are returned with their line numbers; bad lines go to
 * out->err (nerr returned).  Entries use name = the destination and
 * value = NULL. */
size_t aliases_parse_list(const char *data, size_t len, struct alias_list *out);

enum alias_dest_kind {
	ALIAS_DEST_ADDRESS,	/* arg: the address */
	ALIAS_DEST_NOEXPAND,	/* "\name": arg: the name without the backslash */
	ALIAS_DEST_COMMAND,	/* arg: the command without the '|' */
	ALIAS_DEST_FILE,	/* arg: the absolute path */
	ALIAS_DEST_MAILDIR,	/* arg: the absolute path ending in '/' */
	ALIAS_DEST_INCLUDE,	/* arg: the absolute path of the list file */
	ALIAS_DEST_ERROR,	/* arg: "X.Y.Z text" (code checked) */
	ALIAS_DEST_BAD		/* arg: why */
};

/* Classify one destination (as returned by aliases_split).  *arg points
 * into dest, except for ALIAS_DEST_BAD where it is a static message. */
enum alias_dest_kind aliases_classify(const char *dest, const char **arg);

/* 1 if s starts with an RFC 3463 status code "C.S.D" with C 4 or 5
 * followed by white space or the end; *len gets its length. */
int aliases_dsn_code(const char *s, size_t *len);

#endif
