/*
 * sendmail_store: writing one file into maildrop/, shared by sendmail
 * (when the caller may write maildrop/ itself) and postdrop (setgid
 * hermodrop, for callers who may not).
 *
 * maildrop_open creates an unnamed file in maildrop/ (O_TMPFILE; else
 * maildrop/t.PID.TIME.N with O_EXCL), mode 0644: the file is protected
 * by the 1730 directory, and pickup, running as mail_owner, must be
 * able to read a file owned by the caller.  The caller writes the
 * queue-format content to m->fd; maildrop_commit fsyncs the file, names
 * it maildrop/QUEUEID (never replacing an existing file) and fsyncs the
 * directory.  Only after commit returns 0
 * is the message stored.  A caller that may write but not read
 * maildrop/ (postdrop with a 1730 maildrop/) cannot open the folder for
 * fsync; it makes the rename durable with syncfs() on the file system
 * instead (slower, but the same guarantee).  maildrop_abort removes the temporary file.
 */
#ifndef HERMOD_SENDMAIL_STORE_H
#define HERMOD_SENDMAIL_STORE_H

#include "buf.h"
#include "queue_file.h"

#include <sys/types.h>

struct maildrop {
	int dfd;			/* maildrop/ */
	int fd;				/* the temporary file, or -1 */
	char tmp[64];			/* its name in maildrop/ ("" when unnamed) */
	char id[QUEUE_ID_MAX];		/* the final name after commit */
	int dir_unreadable;		/* maildrop/ is -wx for us: syncfs instead */
};

/* 0 ok; -1 with the reason in err (nothing left behind). */
int maildrop_open(struct maildrop *m, struct buf *err);
int maildrop_commit(struct maildrop *m, struct buf *err);
void maildrop_abort(struct maildrop *m);
/* Tell pickup about a new file, without ever blocking: a full or
 * missing socket only delays the message until pickup's next scan. */
void maildrop_wake(const char *id);

/*
 * The sink: one queue-format message into maildrop/, directly when the
 * caller may write there, else through the setgid postdrop helper on a
 * pipe (sendmail, and smtpd -S for sendmail -bs run by a user who may
 * not write the queue).  Write the message to s->fd with a qf_writer;
 * commit finishes the writer and returns 0 once the message is stored
 * (id set when known: directly; postdrop does not say), else the exit
 * status to report, EX_TEMPFAIL when nothing was stored, with the reason
 * in err.  abort leaves nothing behind.
 */
struct maildrop_sink {
	struct maildrop md;
	int direct;
	pid_t pid;		/* postdrop */
	int fd;
};

int maildrop_sink_open(struct maildrop_sink *s, const char *confdir, struct buf *err);
int maildrop_sink_commit(struct maildrop_sink *s, struct qf_writer *w, struct buf *err,
    char id[QUEUE_ID_MAX]);
void maildrop_sink_abort(struct maildrop_sink *s);
/* postdrop with extra arguments, its stdin on a new pipe (*in_fd) when
 * in_fd is not NULL, its stdout on out_fd when >= 0; -1 with err. */
pid_t postdrop_spawn(const char *confdir, const char *const *extra, int *in_fd,
    int out_fd, struct buf *err);
/* Its exit status (EX_TEMPFAIL when it did not exit normally). */
int postdrop_wait(pid_t pid);

/* mailq through the showq daemon (public/showq): its listing, text or
 * JSON, copied to stdout.  0 done; -1 with errno when showq cannot be
 * reached; a read or write error on the way is fatal (msg_die). */
int showq_copy(int json);

#endif
