/*
 * qlist: the queue listing of mailq / sendmail -bp, also served by the
 * showq daemon to users who cannot read the spool.
 *
 * Text layout (Postfix's, plus sendmail's "Total requests" line):
 *   -Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
 *   ID[*!]  SIZE  Sat Nov 21 06:34:27  sender
 *   (last error of the recipients below)
 *                                            recipient
 *   (blank line)
 *   -- N Kbytes in M Requests.
 *   Total requests: M
 * or "Mail queue is empty" and "Total requests: 0".  '*' marks a message
 * in active/, '!' one in hold/.  JSON: one object per line per message,
 * as postqueue -j: queue_name, queue_id, arrival_time, message_size,
 * forced_expire, sender, recipients [{address, delay_reason}].
 * Queue files are read with qf_read; files that do not parse (being
 * written, being removed, corrupt) are left out.  Text from queue files
 * is hostile: control characters and malformed UTF-8 are replaced so
 * that nothing can reach the terminal as an escape sequence.
 */
#ifndef HERMOD_QLIST_H
#define HERMOD_QLIST_H

#include "buf.h"

#define QLIST_TEXT	0
#define QLIST_JSON	1

/* List the queue of the loaded configuration (queue_directory) into
 * out.  0 ok; -1 with errno and a message in err when the queue cannot
 * be read (errno EACCES: the caller should ask showq instead). */
int qlist_render(struct buf *out, int format, struct buf *err);
/* The same for an explicit queue directory. */
int qlist_render_dir(const char *qdir, struct buf *out, int format, struct buf *err);

#endif
