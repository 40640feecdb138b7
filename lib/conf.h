/*
 * conf: hermod.conf (name = value, # comments, $name and ${name}
 * expansion, continuation lines starting with white space) and
 * master.conf.  Every parameter has a name, a default and a line of
 * documentation in the table in conf.c; asking for a name that is not in
 * the table is a programming error (panic).
 *
 * The configuration directory is, in order: the -C argument given to
 * conf_load, $HERMOD_CONFIG, HERMOD_SYSCONFDIR/hermod.
 */
#ifndef HERMOD_CONF_H
#define HERMOD_CONF_H

#include <stdio.h>
#include "buf.h"

/* Load the configuration; dir may be NULL.  0 ok, -1 with a message in
 * err (the file is unreadable or has a syntax error). */
int conf_load(const char *dir, struct buf *err);
const char *conf_dir(void);
/* Expanded value, never NULL. */
const char *conf_str(const char *name);
long long conf_int(const char *name);
long long conf_time(const char *name);	/* seconds */
long long conf_size(const char *name);	/* bytes */
int conf_bool(const char *name);
/* A list value split on commas and white space (free with strv_free). */
char **conf_list(const char *name);
/* 1 if name is a known parameter. */
int conf_known(const char *name);
/* Override a value (command-line -o name=value, tests). */
void conf_set(const char *name, const char *value);
/* Print "name = value" for every parameter (or only the non-default ones),
 * or for the given names.  Returns 0, or -1 if a name is unknown. */
int conf_print(FILE *fp, int nondefault, char **names);
/* Documentation table walk, for the man page generator. */
int conf_param_info(size_t i, const char **name, const char **def, const char **doc);
/* 1 if the instance runs with privilege separation (made by root). */
int conf_privileged(void);
/* Path inside the queue directory (static buffer per call site is not
 * used: the result is appended to out). */
void conf_queue_path(struct buf *out, const char *rel);
/* The path of program name in $daemon_directory (searched in order: the
 * first executable regular file) into out: 0 found, -1 not. */
int conf_daemon_program(const char *name, struct buf *out);

/* master.conf */
struct master_service {
	char *name;		/* service name (unique) */
	char *listen;		/* host:port, or a path relative to the queue dir, or "-" */
	char *type;		/* inet, unix (stream), unix-dgram (postlogd), or none */
	int private_;		/* 'y': socket under private/ (documentation only) */
	int proclimit;		/* most processes at once */
	char **argv;		/* program and arguments */
	int line;
};

int master_conf_load(const char *path, struct master_service **svcs,
    size_t *nsvcs, struct buf *err);
void master_conf_free(struct master_service *svcs, size_t n);

#endif
