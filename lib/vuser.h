/*
 * vuser: virtual mail users of an instance, kept in $virtual_users_file
 * as "name:hash" lines (hash from crypt_r, yescrypt where available,
 * else sha512-crypt).  A virtual user NAME receives mail in
 * $virtual_mailbox_base/NAME/Maildir/.  Names are [a-z0-9._-], start
 * with a letter or digit, at most 64 bytes.  The file is rewritten
 * atomically (temp, fsync, rename) under an fcntl lock on it.
 */
#ifndef HERMOD_VUSER_H
#define HERMOD_VUSER_H

#include "buf.h"

int vuser_name_valid(const char *name);
/* 1 found (maildir set to the Maildir path with trailing slash), 0 not
 * found, -1 error (logged). */
int vuser_lookup(const char *name, struct buf *maildir);
/* 0 ok, -1 error with message in err. add replaces an existing password
 * and creates the Maildir (tmp, new, cur). */
int vuser_add(const char *name, const char *password, struct buf *err);
int vuser_del(const char *name, struct buf *err);
/* 1 password right, 0 wrong or no such user, -1 error. */
int vuser_check_password(const char *name, const char *password);
/* NULL-terminated list of names, sorted (free with strv_free); NULL
 * when the file cannot be read (logged). */
char **vuser_list(void);

#endif
