/*
 * hermod_spool: the layout of $queue_directory (one table, used by
 * hermod init and by hermod-master, which both make and repair it) and
 * the master's pid file lock, which hermod status/stop/reload query.
 */
#ifndef HERMOD_SPOOL_H
#define HERMOD_SPOOL_H

#include <sys/types.h>
#include "buf.h"

#define SPOOL_PID_FILE	"pid/master.pid"

/* Who owns the spool: in a privileged instance mail_owner (uid, gid) and
 * setgid_group (dropgid); in a rootless one everything is the caller's. */
struct spool_owner {
	int privileged;
	uid_t uid;
	gid_t gid;
	gid_t dropgid;
};

/* Look up mail_owner and setgid_group (privileged instance) or use the
 * caller's ids.  0 ok, -1 with err set. */
int spool_owner_get(struct spool_owner *o, struct buf *err);
/* Make every folder of the spool that is missing, and correct modes and
 * owners that are wrong (each correction is logged when fix_log is
 * set).  0 ok, -1 with err set. */
int spool_make(const struct spool_owner *o, int fix_log, struct buf *err);
/* The full path of the master's pid file. */
void spool_pid_path(struct buf *out);
/* The pid of the running master (the holder of the lock on its pid
 * file), 0 when none runs, -1 with err set when that cannot be told. */
long spool_master_pid(struct buf *err);

#endif
