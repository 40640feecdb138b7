/*
 * service: the child side of the hermod-master protocol, and privilege
 * dropping.
 *
 * The master starts a service program as
 *     PROGRAM -C CONFIG_DIR -s SERVICE_NAME [args from master.conf]
 * with HERMOD_MASTER=1 in the environment, the listening socket (if the
 * service has one) on descriptor SERVICE_LISTEN_FD and the write end of
 * a status pipe on SERVICE_STATUS_FD.  The child writes one byte to the
 * pipe when it becomes busy ('B', it took a client) and idle ('I'); the
 * master starts another process when none is idle, up to the process
 * limit.  The child exits after max_use clients or max_idle seconds
 * without one (unless it is a single-instance daemon like qmgr).
 */
#ifndef HERMOD_SERVICE_H
#define HERMOD_SERVICE_H

#include <sys/types.h>

#define SERVICE_LISTEN_FD	3
#define SERVICE_STATUS_FD	4

/* Parse the common daemon options (-C dir, -s name, -v, and any number
 * of -o name=value overrides from master.conf, applied after the
 * configuration is loaded; an unknown name is fatal), initialise
 * logging as hermod/NAME and load the configuration (fatal on error);
 * with maillog_file set (and stderr not the log) the daemon's lines go
 * to postlogd from then on (lib/log.h).
 * Returns the index of the first argument it did not consume. */
int service_init(const char *progname, int argc, char **argv);
const char *service_name(void);
/* The listening socket from the master, or -1 when not under a master.
 * For development and tests outside the master, HERMOD_STANDALONE_LISTEN
 * names a Unix socket path that the program then binds itself. */
int service_listen_fd(void);
void service_busy(void);
void service_idle(void);

/* A simple pre-forked server: accept a client, mark busy, call handler,
 * close, mark idle; exit after max_use clients or max_idle idle seconds
 * (both from hermod.conf).  With forever set the process never exits
 * and never says it is busy, so the master runs exactly one: for a
 * handler that forks a child per client and returns at once (popd,
 * imapd: the one process counts all sessions).  handler owns nothing:
 * the loop closes the client descriptor after it returns. */
void service_accept_loop(void (*handler)(int fd, void *ctx), void *ctx, int forever);

/* Look up mail_owner.  0 ok, -1 (logged) when the user does not exist. */
int priv_owner(uid_t *uid, gid_t *gid);
/* In a privileged instance running as root: switch for good to
 * mail_owner (groups, gid, uid) and verify root cannot be regained.
 * In a rootless instance: nothing.  Fatal on failure. */
void priv_drop_to_owner(void);
/* As priv_drop_to_owner, but enter the chroot dir on the way (after
 * the group list is read, before the uid changes; the working folder
 * becomes its root).  Returns 1 when chrooted, 0 when not (a rootless
 * instance, or not started as root); fatal on failure.  What the
 * caller needs from outside dir later (maps, keys, the time zone) it
 * must open or load before. */
int priv_drop_to_owner_chroot(const char *dir);
/* Switch for good to uid/gid (with that user's supplementary groups
 * when name is not NULL).  Refuses uid 0.  0 ok, -1 errno. */
int priv_drop_to(uid_t uid, gid_t gid, const char *name);

#endif
