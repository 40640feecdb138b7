/*
 * imap_folder: a user's folders and their IMAP names (RFC 3501 5.1,
 * 6.3; LIST-EXTENDED 5258, LIST-STATUS 5819, SPECIAL-USE 6154, CHILDREN
 * 3348, NAMESPACE 2342).
 *
 * Layout (Maildir++, as Dovecot and Courier): INBOX is the user's
 * mailbox (a Maildir ROOT/ or an mbox file); every other folder is a
 * Maildir ROOT/.NAME/ where NAME is the IMAP name with the hierarchy
 * separator "." kept and each level in modified UTF-7 (so "a.b" is the
 * child b of a).  ROOT is the Maildir of INBOX, or for an mbox user the
 * folder directory (imap_folder_directory, default ~/Maildir).  The
 * subscriptions are ROOT/subscriptions, one name per line (UTF-8).
 * Special-use folders are made at first login: .Sent (\Sent), .Drafts
 * (\Drafts), .Trash (\Trash), .Junk (\Junk), subscribed.
 */
#ifndef HERMOD_IMAP_FOLDER_H
#define HERMOD_IMAP_FOLDER_H

#include "buf.h"
#include "imap_box.h"
#include "imap_parse.h"

struct imap_ns {
	char *inbox;		/* INBOX path: Maildir (ends in '/') or mbox file */
	int inbox_maildir;
	char *root;		/* the Maildir++ root, ends in '/' */
	int utf8;		/* UTF8=ACCEPT enabled: names in responses are UTF-8 */
	char **special;		/* autocreate list "Sent:\Sent" ... (NULL: the default) */
};

/* What a folder operation ends with: the session writes
 * "TAG status [code] text". */
struct imap_folder_res {
	const char *status;	/* "OK", "NO", "BAD" */
	const char *code;	/* without brackets, or NULL: NONEXISTENT, ALREADYEXISTS, CANNOT, INUSE, SERVERBUG, ... */
	struct buf text;
};

void imap_folder_res_init(struct imap_folder_res *r);
void imap_folder_res_free(struct imap_folder_res *r);

/* At login: make ROOT and the special-use folders if missing (and
 * subscribe them); 0, -1 with err (the session goes on). */
int imap_folder_autocreate(const struct imap_ns *ns, struct buf *err);

/* The folder behind an IMAP name: *path and *maildir; 0 ok (exists or
 * not: *exists tells), -1 the name is not valid (res says why). */
int imap_folder_path(const struct imap_ns *ns, const struct imap_mailbox *m,
    struct buf *path, int *maildir, int *exists, struct imap_folder_res *res);

void imap_folder_create(const struct imap_ns *ns, const struct imap_mailbox *m, struct imap_folder_res *res);
void imap_folder_delete(const struct imap_ns *ns, const struct imap_mailbox *m, struct imap_folder_res *res);
/* RENAME; INBOX renamed moves its messages to the new folder and leaves
 * INBOX empty (RFC 3501 6.3.5). */
void imap_folder_rename(const struct imap_ns *ns, const struct imap_mailbox *from,
    const struct imap_mailbox *to, struct imap_folder_res *res);
void imap_folder_subscribe(const struct imap_ns *ns, const struct imap_mailbox *m, int on,
    struct imap_folder_res *res);

/* LIST / LSUB (lsub) with every selection and return option: appends the
 * untagged "* LIST (...) "." name" lines (and "* STATUS" lines for
 * RETURN (STATUS ...)) to out. */
void imap_folder_list(const struct imap_ns *ns, const struct imap_list *l, int lsub,
    struct buf *out, struct imap_folder_res *res);
/* STATUS: appends "* STATUS name (...)\r\n". */
void imap_folder_status(const struct imap_ns *ns, const struct imap_status *s,
    struct buf *out, struct imap_folder_res *res);

/* Write a folder name for a response: UTF-8 when ns->utf8, else the
 * modified UTF-7 name, as an astring. */
void imap_folder_write_name(const struct imap_ns *ns, const char *utf8, struct buf *out);

#endif
