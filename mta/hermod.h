/*
 * hermod.h: the private interface between the files of the hermod
 * admin command (hermod.c: dispatch, start/stop/status/reload/config/
 * map; hermod_init.c: init; hermod_user.c: user).  Every command
 * returns a sysexits.h exit status.
 */
#ifndef HERMOD_ADMIN_H
#define HERMOD_ADMIN_H

#include "buf.h"

/* hermod.c */
/* Print "hermod: ..." on stderr. */
void hermod_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The folder of the running executable (/proc/self/exe), or "". */
const char *hermod_self_dir(void);
/* 1 (and BUILD in out) when this hermod runs from a build tree:
 * BUILD/mta/hermod, with BUILD/config.status or BUILD/queue/pickup. */
int hermod_build_tree(struct buf *out);
/* Make path absolute (relative to the current directory) without
 * resolving symbolic links. */
void hermod_abspath(struct buf *out, const char *path);
/* Load the configuration named by -C / HERMOD_CONFIG.  0 ok, or an exit
 * status after printing why. */
int hermod_load_conf(void);

/* hermod_init.c */
int hermod_init(int argc, char **argv);

/* hermod_reach.c: in a privileged instance, can owner (mail_owner)
 * reach the configuration, the spool, the virtual mailboxes and the log
 * file's folder?  Prints each folder it cannot pass through with the
 * fix; returns how many paths are out of reach, -1 if the check failed. */
int hermod_reach_daemons(const char *owner, const char *confdir, const char *qdir,
    const char *mailbase, const char *logfile);
/* The same for an ordinary user and what sendmail reads (warnings). */
int hermod_reach_users(const char *user, const char *confdir, const char *qdir);

/* hermod_user.c */
int hermod_user(int argc, char **argv);

/* hermod_queue.c: "hermod queue ..." */
int hermod_queue(int argc, char **argv);

#endif
