/*
 * imap_folder: the user's folders on a Maildir++ root (see imap_folder.h
 * for the layout) and the commands that work on them as names: LIST and
 * LSUB (RFC 3501 6.3.8-9, LIST-EXTENDED 5258, LIST-STATUS 5819,
 * SPECIAL-USE 6154, CHILDREN 3348), CREATE, DELETE, RENAME, SUBSCRIBE,
 * UNSUBSCRIBE and STATUS, answering as Dovecot does for Maildir++ with
 * the separator ".".
 *
 * Invariants: a folder exists when ROOT/.NAME/ is a directory (INBOX
 * always exists); NAME is the canonical modified UTF-7 wire name with
 * "INBOX" in capitals as first level, so one folder has one directory.
 * Names with "/", empty levels or a leading/trailing "." are refused, so
 * ROOT's own entries ("..hermod-delete.X", tmp, new, cur) are never
 * folders.  DELETE first renames the folder out of the namespace, so a
 * crash never leaves half a folder visible.  The subscriptions file is
 * rewritten whole (write_file_atomic) under a lock file, so concurrent
 * sessions do not lose each other's changes.
 */
#include "imap_folder.h"
#include "imap_utf7.h"
#include "log.h"
#include "maildir.h"
#include "mstore_index.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* the longest wire name: ".NAME" and "..hermod-delete.NAME" must fit NAME_MAX */
#define FOLDER_NAME_MAX		200
#define SUBS_FILE_MAX		(4 * 1024 * 1024)
#define TRASH_PREFIX		"..hermod-delete."

static const char *const default_special[] = {
	"Sent:\\Sent", "Drafts:\\Drafts", "Trash:\\Trash", "Junk:\\Junk", NULL
};

/* other names clients use for the same roles (not made at login) */
static const char *const extra_special[] = {
	"Sent Messages:\\Sent", "Sent Items:\\Sent", "Deleted Messages:\\Trash",
	"Deleted Items:\\Trash", "Spam:\\Junk", "Archive:\\Archive", NULL
};

void
imap_folder_res_init(struct imap_folder_res *r)
{
	r->status = "OK";
	r->code = NULL;
	buf_init(&r->text);
}

void
imap_folder_res_free(struct imap_folder_res *r)
{
	buf_free(&r->text);
}

static void
res_set(struct imap_folder_res *r, const char *status, const char *code, const char *text)
{
	r->status = status;
	r->code = code;
	buf_sets(&r->text, text);
}

static void
res_syserr(struct imap_folder_res *r, const char *what, const char *path)
{
	msg_warn("%s %s: %s", what, path, strerror(errno));
	r->status = "NO";
	r->code = "SERVERBUG";
	buf_reset(&r->text);
	buf_printf(&r->text, "Internal error: %s failed", what);
}

/* ---- names ---- */

static int
inbox_level(const char *s)
{
	return strncasecmp(s, "INBOX", 5) == 0 && (s[5] == 0 || s[5] == '.');
}

/* Check a wire (modified UTF-7) name for use as a folder; NULL ok, else why. */
static const char *
name_invalid(const char *w, size_t n)
{
	size_t i;

	if (n == 0)
		return "Mailbox name is empty";
	if (n > FOLDER_NAME_MAX)
		return "Mailbox name is too long";
	if (!imap_utf7_valid(w, n))
		return "Mailbox name is not valid modified UTF-7";
	if (w[0] == '.' || w[n - 1] == '.')
		return "Mailbox name may not begin or end with \".\"";
	for (i = 0; i < n; i++) {
		if (w[i] == '/')
			return "Mailbox name may not contain \"/\"";
		if (w[i] == '.' && w[i + 1] == '.')
			return "Mailbox name has an empty level";
	}
	return NULL;
}

/* The canonical wire and UTF-8 names of m (first level INBOX in
 * capitals); strip: drop one trailing "." (CREATE's hierarchy hint).
 * 0 ok, -1 with res set. */
static int
canon(const struct imap_mailbox *m, int strip, struct buf *wire, struct buf *u8,
    struct imap_folder_res *res)
{
	const char *why;
	size_t n;

	buf_reset(wire);
	buf_reset(u8);
	if (m->inbox) {
		buf_sets(wire, "INBOX");
		buf_sets(u8, "INBOX");
		return 0;
	}
	buf_sets(wire, m->name);
	n = wire->len;
	if (strip && n > 1 && wire->data[n - 1] == '.' && wire->data[n - 2] != '.')
		buf_truncate(wire, n - 1);
	if ((why = name_invalid(wire->data, wire->len)) != NULL) {
		res_set(res, "NO", "CANNOT", why);
		return -1;
	}
	if (inbox_level(wire->data))
		memcpy(wire->data, "INBOX", 5);
	if (imap_utf7_decode(wire->data, wire->len, u8) < 0) {
		res_set(res, "NO", "CANNOT", "Mailbox name is not valid modified UTF-7");
		return -1;
	}
	return 0;
}

/* a directory path with its "/" (ROOT and INBOX are meant to have it) */
static void
add_dir(struct buf *b, const char *d)
{
	buf_adds(b, d);
	if (b->len == 0 || b->data[b->len - 1] != '/')
		buf_addc(b, '/');
}

static void
folder_dir(const struct imap_ns *ns, const char *wire, struct buf *path)
{
	buf_reset(path);
	add_dir(path, ns->root);
	buf_printf(path, ".%s/", wire);
}

static int
is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void
imap_folder_write_name(const struct imap_ns *ns, const char *utf8, struct buf *out)
{
	struct buf w = BUF_INIT;
	const char *s = utf8;
	size_t i;

	if (!ns->utf8 && imap_utf7_encode(utf8, strlen(utf8), &w) == 0)
		s = buf_str(&w);
	buf_addc(out, '"');
	for (i = 0; s[i]; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_addc(out, '\\');
		buf_addc(out, s[i]);
	}
	buf_addc(out, '"');
	buf_free(&w);
}

int
imap_folder_path(const struct imap_ns *ns, const struct imap_mailbox *m,
    struct buf *path, int *maildir, int *exists, struct imap_folder_res *res)
{
	struct buf wire = BUF_INIT, u8 = BUF_INIT;
	int rc = 0;

	if (canon(m, 0, &wire, &u8, res) < 0) {
		rc = -1;
	} else if (buf_eq(&wire, "INBOX")) {
		buf_sets(path, ns->inbox);
		*maildir = ns->inbox_maildir;
		*exists = 1;
	} else {
		folder_dir(ns, wire.data, path);
		*maildir = 1;
		*exists = is_dir(path->data);
	}
	buf_free(&wire);
	buf_free(&u8);
	return rc;
}

/* The folders on disk, as canonical wire names (INBOX itself not among
 * them).  0 ok, -1 errno. */
static int
disk_folders(const struct imap_ns *ns, char ***out, size_t *nout)
{
	DIR *d;
	struct dirent *e;
	char **v = NULL;
	size_t n = 0;

	*out = NULL;
	*nout = 0;
	if ((d = opendir(ns->root)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d)) != NULL) {
		const char *w = e->d_name + 1;
		struct buf p = BUF_INIT;
		int dir;

		if (e->d_name[0] != '.' || name_invalid(w, strlen(w)) != NULL)
			continue;
		if (strcasecmp(w, "INBOX") == 0)
			continue;	/* would shadow INBOX itself */
		if (e->d_type == DT_DIR) {
			dir = 1;
		} else if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) {
			add_dir(&p, ns->root);
			buf_printf(&p, "%s", e->d_name);
			dir = is_dir(p.data);
			buf_free(&p);
		} else {
			dir = 0;
		}
		if (!dir)
			continue;
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n] = xstrdup(w);
		if (inbox_level(v[n]))
			memcpy(v[n], "INBOX", 5);
		n++;
	}
	closedir(d);
	*out = v;
	*nout = n;
	return 0;
}

static void
names_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- subscriptions ---- */

static void
subs_path(const struct imap_ns *ns, struct buf *p, const char *suffix)
{
	buf_reset(p);
	add_dir(p, ns->root);
	buf_printf(p, "subscriptions%s", suffix);
}

/* The subscribed UTF-8 names (lines that are not valid names are
 * dropped).  0 ok, -1 errno. */
static int
subs_read(const struct imap_ns *ns, char ***out, size_t *nout)
{
	struct buf p = BUF_INIT, data = BUF_INIT, w = BUF_INIT;
	char **v = NULL;
	size_t n = 0;
	char *s, *nl;

	*out = NULL;
	*nout = 0;
	subs_path(ns, &p, "");
	if (read_file(p.data, &data, SUBS_FILE_MAX) < 0) {
		int e = errno;

		buf_free(&p);
		buf_free(&data);
		errno = e;
		return e == ENOENT ? 0 : -1;
	}
	for (s = data.data; s && *s; s = nl) {
		size_t len;

		if ((nl = strchr(s, '\n')) != NULL)
			*nl++ = 0;
		len = strlen(s);
		if (len && s[len - 1] == '\r')
			s[--len] = 0;
		buf_reset(&w);
		if (len == 0 || imap_utf7_encode(s, len, &w) < 0 ||
		    name_invalid(w.data, w.len) != NULL)
			continue;
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n] = xstrdup(s);
		if (inbox_level(v[n]))
			memcpy(v[n], "INBOX", 5);
		n++;
	}
	buf_free(&p);
	buf_free(&data);
	buf_free(&w);
	*out = v;
	*nout = n;
	return 0;
}

#define SUBS_ADD	0
#define SUBS_DEL	1
#define SUBS_RENAME	2

/* Rewrite the subscriptions: add a, remove a, or rename a and its
 * descendants to b; under ROOT/subscriptions.lock so that concurrent
 * sessions do not lose each other's edits.  0 ok, -1 (logged). */
static int
subs_edit(const struct imap_ns *ns, int mode, const char *a, const char *b)
{
	struct buf p = BUF_INIT, lk = BUF_INIT, data = BUF_INIT;
	char **v = NULL;
	size_t n = 0, i, al = strlen(a);
	int fd, rc = -1, have = 0;

	subs_path(ns, &lk, ".lock");
	if ((fd = open(lk.data, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		msg_warn("open %s: %s", lk.data, strerror(errno));
		goto out;
	}
	if (flock(fd, LOCK_EX) < 0) {
		msg_warn("flock %s: %s", lk.data, strerror(errno));
		goto out;
	}
	if (subs_read(ns, &v, &n) < 0) {
		msg_warn("read %ssubscriptions: %s", ns->root, strerror(errno));
		goto out;
	}
	for (i = 0; i < n; i++) {
		const char *s = v[i];
		int self = strcmp(s, a) == 0;

		if (mode == SUBS_ADD && self) {
			if (have)
				continue;
			have = 1;
		} else if (mode == SUBS_DEL && self) {
			continue;
		} else if (mode == SUBS_RENAME && (self || (strncmp(s, a, al) == 0 && s[al] == '.'))) {
			buf_printf(&data, "%s%s\n", b, s + al);
			continue;
		}
		buf_printf(&data, "%s\n", s);
	}
	if (mode == SUBS_ADD && !have)
		buf_printf(&data, "%s\n", a);
	subs_path(ns, &p, "");
	if (write_file_atomic(p.data, data.data ? data.data : "", data.len, 0600) < 0) {
		msg_warn("write %s: %s", p.data, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	names_free(v, n);
	buf_free(&p);
	buf_free(&lk);
	buf_free(&data);
	return rc;
}

void
imap_folder_subscribe(const struct imap_ns *ns, const struct imap_mailbox *m, int on,
    struct imap_folder_res *res)
{
	struct buf wire = BUF_INIT, u8 = BUF_INIT;

	if (canon(m, 0, &wire, &u8, res) == 0) {
		if (subs_edit(ns, on ? SUBS_ADD : SUBS_DEL, u8.data, NULL) < 0)
			res_set(res, "NO", "SERVERBUG", "Internal error: cannot write the subscriptions");
		else
			res_set(res, "OK", NULL, on ? "SUBSCRIBE completed" : "UNSUBSCRIBE completed");
	}
	buf_free(&wire);
	buf_free(&u8);
}

/* ---- special use ---- */

static const char *
special_in(const char *const *list, const char *u8)
{
	size_t i, n = strlen(u8);

	for (i = 0; list[i]; i++) {
		const char *c = strchr(list[i], ':');

		if (c && (size_t)(c - list[i]) == n && strncmp(list[i], u8, n) == 0)
			return c + 1;
	}
	return NULL;
}

static const char *
special_of(const struct imap_ns *ns, const char *u8)
{
	const char *a;

	if ((a = special_in(ns->special ? (const char *const *)ns->special : default_special, u8)) != NULL)
		return a;
	return special_in(extra_special, u8);
}

/* ---- CREATE, DELETE, RENAME ---- */

static int
make_folder(const char *path)
{
	struct buf p = BUF_INIT;
	int fd;

	if (mkdir(path, 0700) < 0)
		return -1;
	if (maildir_create(path) < 0)
		return -1;
	/* the Maildir++ marker: delivery agents (maildrop, Dovecot LDA) look for it */
	buf_printf(&p, "%smaildirfolder", path);
	fd = open(p.data, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	buf_free(&p);
	if (fd < 0 || close(fd) < 0)
		return -1;
	return 0;
}

void
imap_folder_create(const struct imap_ns *ns, const struct imap_mailbox *m, struct imap_folder_res *res)
{
	struct buf wire = BUF_INIT, u8 = BUF_INIT, path = BUF_INIT;

	if (canon(m, 1, &wire, &u8, res) < 0)
		goto out;
	if (buf_eq(&wire, "INBOX")) {
		res_set(res, "NO", "ALREADYEXISTS", "Mailbox already exists");
		goto out;
	}
	if (strpbrk(wire.data, "%*")) {
		res_set(res, "NO", "CANNOT", "Mailbox name may not contain \"%\" or \"*\"");
		goto out;
	}
	if (mkdir_p(ns->root, 0700) < 0) {
		res_syserr(res, "mkdir", ns->root);
		goto out;
	}
	folder_dir(ns, wire.data, &path);
	if (make_folder(path.data) < 0) {
		if (errno == EEXIST)
			res_set(res, "NO", "ALREADYEXISTS", "Mailbox already exists");
		else
			res_syserr(res, "create", path.data);
		goto out;
	}
	if (fsync_dir(ns->root) < 0) {
		res_syserr(res, "fsync", ns->root);
		goto out;
	}
	res_set(res, "OK", NULL, "CREATE completed");
out:
	buf_free(&wire);
	buf_free(&u8);
	buf_free(&path);
}

static int
rm_one(const char *p, const struct stat *sb, int type, struct FTW *f)
{
	(void)sb;
	(void)type;
	(void)f;
	if (remove(p) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

static int
rm_rf(const char *path)
{
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* 1 if a folder on disk is below wire (wire.child), 0 if not, -1 errno. */
static int
has_children(const struct imap_ns *ns, const char *wire)
{
	char **v;
	size_t n, i, wl = strlen(wire);
	int r = 0;

	if (disk_folders(ns, &v, &n) < 0)
		return -1;
	for (i = 0; i < n && !r; i++)
		r = strncmp(v[i], wire, wl) == 0 && v[i][wl] == '.';
	names_free(v, n);
	return r;
}

void
imap_folder_delete(const struct imap_ns *ns, const struct imap_mailbox *m, struct imap_folder_res *res)
{
	struct buf wire = BUF_INIT, u8 = BUF_INIT, path = BUF_INIT, trash = BUF_INIT;

	if (canon(m, 0, &wire, &u8, res) < 0)
		goto out;
	if (buf_eq(&wire, "INBOX")) {
		res_set(res, "NO", "CANNOT", "INBOX can't be deleted");
		goto out;
	}
	folder_dir(ns, wire.data, &path);
	if (!is_dir(path.data)) {
		res_set(res, "NO", "NONEXISTENT", "Mailbox doesn't exist");
		goto out;
	}
	switch (has_children(ns, wire.data)) {
	case 0:
		break;
	case 1:
		res_set(res, "NO", "CANNOT", "Mailbox has children, delete them first");
		goto out;
	default:
		res_syserr(res, "opendir", ns->root);
		goto out;
	}
	add_dir(&trash, ns->root);
	buf_printf(&trash, TRASH_PREFIX "%s", wire.data);
	if (rm_rf(trash.data) < 0 && errno != ENOENT) {
		res_syserr(res, "remove", trash.data);
		goto out;
	}
	buf_truncate(&path, path.len - 1);
	if (rename(path.data, trash.data) < 0) {
		if (errno == ENOENT)
			res_set(res, "NO", "NONEXISTENT", "Mailbox doesn't exist");
		else
			res_syserr(res, "rename", path.data);
		goto out;
	}
	if (fsync_dir(ns->root) < 0) {
		res_syserr(res, "fsync", ns->root);
		goto out;
	}
	/* the folder is gone for every client now; leftovers only waste space */
	if (rm_rf(trash.data) < 0)
		msg_warn("remove %s: %s", trash.data, strerror(errno));
	res_set(res, "OK", NULL, "DELETE completed");
out:
	buf_free(&wire);
	buf_free(&u8);
	buf_free(&path);
	buf_free(&trash);
}

/* Move every message file of dir/sub/ to to/sub/ (RENAME INBOX). */
static int
move_msgs(const char *dir, const char *to, const char *sub, struct imap_folder_res *res)
{
	struct buf from = BUF_INIT, a = BUF_INIT, b = BUF_INIT;
	DIR *d;
	struct dirent *e;
	int rc = -1;

	add_dir(&from, dir);
	buf_printf(&from, "%s", sub);
	if ((d = opendir(from.data)) == NULL) {
		rc = errno == ENOENT ? 0 : -1;
		if (rc < 0)
			res_syserr(res, "opendir", from.data);
		buf_free(&from);
		return rc;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		buf_reset(&a);
		buf_reset(&b);
		buf_printf(&a, "%s/%s", from.data, e->d_name);
		buf_printf(&b, "%s%s/%s", to, sub, e->d_name);
		/* another session may have expunged or moved it meanwhile */
		if (rename(a.data, b.data) < 0 && errno != ENOENT) {
			res_syserr(res, "rename", a.data);
			goto out;
		}
	}
	buf_reset(&b);
	buf_printf(&b, "%s%s", to, sub);
	if (fsync_dir(b.data) < 0 || fsync_dir(from.data) < 0) {
		res_syserr(res, "fsync", b.data);
		goto out;
	}
	mstore_index_undescribe(dir);
	mstore_index_undescribe(to);
	rc = 0;
out:
	closedir(d);
	buf_free(&from);
	buf_free(&a);
	buf_free(&b);
	return rc;
}

static void
res_ibox(struct imap_folder_res *res, int rc, const char *what, const char *path, const struct buf *err)
{
	switch (rc) {
	case IBOX_INUSE:
		res_set(res, "NO", "INUSE", "Mailbox is locked, try again later");
		break;
	case IBOX_OVERQUOTA:
		res_set(res, "NO", "OVERQUOTA", "Quota exceeded");
		break;
	case IBOX_NONEXIST:
		res_set(res, "NO", "NONEXISTENT", "Mailbox doesn't exist");
		break;
	default:
		msg_warn("%s %s: %s", what, path, buf_str(err));
		res_set(res, "NO", "SERVERBUG", "Internal error: RENAME failed");
		break;
	}
}

/* An mbox INBOX: copy every message (flags and keywords kept) into the
 * new folder, then mark them \Deleted and expunge them; a message that
 * arrives meanwhile is not \Deleted and stays. */
static int
move_mbox(const struct imap_ns *ns, const char *to, struct imap_folder_res *res)
{
	struct imap_box b;
	struct ibox_changes ch;
	struct buf err = BUF_INIT;
	size_t *idx = NULL, i;
	uint32_t *uids = NULL, uv;
	int rc;

	memset(&b, 0, sizeof(b));
	memset(&ch, 0, sizeof(ch));
	if ((rc = ibox_open(&b, ns->inbox, 0, 0, &err)) != IBOX_OK) {
		res_ibox(res, rc, "open", ns->inbox, &err);
		goto out;
	}
	if (b.n) {
		idx = xreallocarray(NULL, b.n, sizeof(*idx));
		uids = xreallocarray(NULL, b.n, sizeof(*uids));
		for (i = 0; i < b.n; i++)
			idx[i] = i;
		if ((rc = ibox_copy(&b, idx, b.n, to, 1, &uv, uids, &err)) != IBOX_OK) {
			res_ibox(res, rc, "copy", ns->inbox, &err);
			goto out;
		}
		for (i = 0; i < b.n; i++) {
			rc = ibox_store(&b, i, (b.msgs[i].flags & ~(unsigned)IBOX_RECENT) | IMAP_FLAG_DELETED,
			    b.msgs[i].keywords, &err);
			if (rc != IBOX_OK && rc != IBOX_GONE) {
				res_ibox(res, rc, "store", ns->inbox, &err);
				goto out;
			}
		}
		if ((rc = ibox_expunge(&b, NULL, &ch, &err)) != IBOX_OK) {
			res_ibox(res, rc, "expunge", ns->inbox, &err);
			goto out;
		}
	}
	rc = IBOX_OK;
out:
	ibox_changes_free(&ch);
	ibox_close(&b);
	free(idx);
	free(uids);
	buf_free(&err);
	return rc == IBOX_OK ? 0 : -1;
}

/* RFC 3501 6.3.5: the messages move, INBOX stays (empty) with its children */
static void
rename_inbox(const struct imap_ns *ns, const char *wire, struct imap_folder_res *res)
{
	struct buf path = BUF_INIT;

	folder_dir(ns, wire, &path);
	if (make_folder(path.data) < 0) {
		if (errno == EEXIST)
			res_set(res, "NO", "ALREADYEXISTS", "Target mailbox already exists");
		else
			res_syserr(res, "create", path.data);
	} else if (fsync_dir(ns->root) < 0) {
		res_syserr(res, "fsync", ns->root);
	} else if (ns->inbox_maildir ? move_msgs(ns->inbox, path.data, "new", res) == 0 &&
	    move_msgs(ns->inbox, path.data, "cur", res) == 0 : move_mbox(ns, path.data, res) == 0) {
		res_set(res, "OK", NULL, "RENAME completed");
	}
	buf_free(&path);
}

void
imap_folder_rename(const struct imap_ns *ns, const struct imap_mailbox *from,
    const struct imap_mailbox *to, struct imap_folder_res *res)
{
	struct buf fw = BUF_INIT, fu = BUF_INIT, tw = BUF_INIT, tu = BUF_INIT;
	struct buf a = BUF_INIT, b = BUF_INIT;
	char **v = NULL;
	size_t n = 0, i, fl;

	if (canon(from, 0, &fw, &fu, res) < 0 || canon(to, 0, &tw, &tu, res) < 0)
		goto out;
	if (buf_eq(&tw, "INBOX")) {
		res_set(res, "NO", "ALREADYEXISTS", "Target mailbox already exists");
		goto out;
	}
	if (buf_eq(&fw, "INBOX")) {
		rename_inbox(ns, tw.data, res);
		goto out;
	}
	folder_dir(ns, fw.data, &a);
	folder_dir(ns, tw.data, &b);
	if (!is_dir(a.data)) {
		res_set(res, "NO", "NONEXISTENT", "Mailbox doesn't exist");
		goto out;
	}
	fl = fw.len;
	if (strcmp(fw.data, tw.data) == 0 || (strncmp(tw.data, fw.data, fl) == 0 && tw.data[fl] == '.')) {
		res_set(res, "NO", "CANNOT", "Can't move mailbox under itself");
		goto out;
	}
	if (is_dir(b.data)) {
		res_set(res, "NO", "ALREADYEXISTS", "Target mailbox already exists");
		goto out;
	}
	if (disk_folders(ns, &v, &n) < 0) {
		res_syserr(res, "opendir", ns->root);
		goto out;
	}
	/* the children move along: check every target before moving any */
	for (i = 0; i < n; i++) {
		if (strncmp(v[i], fw.data, fl) != 0 || v[i][fl] != '.')
			continue;
		if (tw.len + strlen(v[i]) - fl > FOLDER_NAME_MAX) {
			res_set(res, "NO", "CANNOT", "Mailbox name is too long");
			goto out;
		}
		buf_reset(&b);
		add_dir(&b, ns->root);
		buf_printf(&b, ".%s%s", tw.data, v[i] + fl);
		if (is_dir(b.data)) {
			res_set(res, "NO", "ALREADYEXISTS", "Target mailbox already exists");
			goto out;
		}
	}
	buf_reset(&a);
	buf_reset(&b);
	add_dir(&a, ns->root);
	buf_printf(&a, ".%s", fw.data);
	add_dir(&b, ns->root);
	buf_printf(&b, ".%s", tw.data);
	if (rename(a.data, b.data) < 0) {
		res_syserr(res, "rename", a.data);
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (strncmp(v[i], fw.data, fl) != 0 || v[i][fl] != '.')
			continue;
		buf_reset(&a);
		buf_reset(&b);
		add_dir(&a, ns->root);
		buf_printf(&a, ".%s", v[i]);
		add_dir(&b, ns->root);
		buf_printf(&b, ".%s%s", tw.data, v[i] + fl);
		if (rename(a.data, b.data) < 0) {
			res_syserr(res, "rename", a.data);
			goto out;
		}
	}
	if (fsync_dir(ns->root) < 0) {
		res_syserr(res, "fsync", ns->root);
		goto out;
	}
	/* as Dovecot: the subscriptions follow the folders; the folders
	 * are renamed already, so a failure here is only logged */
	(void)subs_edit(ns, SUBS_RENAME, fu.data, tu.data);
	res_set(res, "OK", NULL, "RENAME completed");
out:
	names_free(v, n);
	buf_free(&fw);
	buf_free(&fu);
	buf_free(&tw);
	buf_free(&tu);
	buf_free(&a);
	buf_free(&b);
}

/* ---- STATUS ---- */

static void
status_items(struct buf *out, unsigned items, const struct ibox_status *st)
{
	const char *sep = "";

#define ITEM(bit, name, val) do { \
	if (items & (bit)) { \
		buf_printf(out, "%s" name " %llu", sep, (unsigned long long)(val)); \
		sep = " "; \
	} \
} while (0)
	ITEM(IMAP_STATUS_MESSAGES, "MESSAGES", st->messages);
	ITEM(IMAP_STATUS_RECENT, "RECENT", st->recent);
	ITEM(IMAP_STATUS_UIDNEXT, "UIDNEXT", st->uidnext);
	ITEM(IMAP_STATUS_UIDVALIDITY, "UIDVALIDITY", st->uidvalidity);
	ITEM(IMAP_STATUS_UNSEEN, "UNSEEN", st->unseen);
	ITEM(IMAP_STATUS_HIGHESTMODSEQ, "HIGHESTMODSEQ", st->highestmodseq);
	ITEM(IMAP_STATUS_SIZE, "SIZE", st->size);
	ITEM(IMAP_STATUS_DELETED, "DELETED", st->deleted);
#undef ITEM
}

/* "* STATUS name (...)" for the folder at path; the ibox_status result. */
static int
status_line(const struct imap_ns *ns, const char *u8, const char *path, int maildir,
    unsigned items, struct buf *out, struct buf *err)
{
	struct ibox_status st;
	int rc;

	memset(&st, 0, sizeof(st));
	if ((rc = ibox_status(path, maildir, &st, err)) != IBOX_OK)
		return rc;
	buf_adds(out, "* STATUS ");
	imap_folder_write_name(ns, u8, out);
	buf_adds(out, " (");
	status_items(out, items, &st);
	buf_adds(out, ")\r\n");
	return IBOX_OK;
}

void
imap_folder_status(const struct imap_ns *ns, const struct imap_status *s,
    struct buf *out, struct imap_folder_res *res)
{
	struct buf wire = BUF_INIT, u8 = BUF_INIT, path = BUF_INIT, err = BUF_INIT;
	int maildir, exists, rc;

	if (canon(&s->mbox, 0, &wire, &u8, res) < 0)
		goto out;
	if (imap_folder_path(ns, &s->mbox, &path, &maildir, &exists, res) < 0)
		goto out;
	rc = exists ? status_line(ns, u8.data, path.data, maildir, s->items, out, &err) : IBOX_NONEXIST;
	switch (rc) {
	case IBOX_OK:
		res_set(res, "OK", NULL, "STATUS completed");
		break;
	case IBOX_NONEXIST:
		res_set(res, "NO", "NONEXISTENT", "Mailbox doesn't exist");
		break;
	case IBOX_INUSE:
		res_set(res, "NO", "INUSE", "Mailbox is locked, try again later");
		break;
	default:
		msg_warn("status %s: %s", path.data, buf_str(&err));
		res_set(res, "NO", "SERVERBUG", "Internal error: STATUS failed");
		break;
	}
out:
	buf_free(&wire);
	buf_free(&u8);
	buf_free(&path);
	buf_free(&err);
}

/* ---- LIST, LSUB ---- */

#define F_EXISTS	0x01
#define F_SUB		0x02
#define F_CHILD		0x04	/* an existing folder below it */
#define F_MATCH		0x08	/* some pattern matches it */

struct fent {
	char *name;		/* UTF-8 */
	unsigned fl;
};

struct ftree {
	struct fent *e;
	size_t n;
};

static void
tree_add(struct ftree *t, const char *name, size_t len, unsigned fl)
{
	t->e = xreallocarray(t->e, t->n + 1, sizeof(*t->e));
	t->e[t->n].name = xstrndup(name, len);
	t->e[t->n].fl = fl;
	t->n++;
}

/* a name and its parents, the parents marked as not existing */
static void
tree_add_path(struct ftree *t, const char *name, unsigned fl)
{
	const char *p;

	for (p = strchr(name, '.'); p; p = strchr(p + 1, '.'))
		tree_add(t, name, (size_t)(p - name), 0);
	tree_add(t, name, strlen(name), fl);
}

/* Hierarchy order: INBOX and its children first, then by name with "."
 * below every other character, so that the descendants of a name come
 * right after it. */
static int
fent_cmp(const void *pa, const void *pb)
{
	const unsigned char *a = (const unsigned char *)((const struct fent *)pa)->name;
	const unsigned char *b = (const unsigned char *)((const struct fent *)pb)->name;
	int ia = inbox_level((const char *)a), ib = inbox_level((const char *)b);

	if (ia != ib)
		return ib - ia;
	for (;; a++, b++) {
		int ca = *a == '.' ? 1 : *a == 0 ? 0 : *a + 1;
		int cb = *b == '.' ? 1 : *b == 0 ? 0 : *b + 1;

		if (ca != cb)
			return ca - cb;
		if (ca == 0)
			return 0;
	}
}

static int
is_below(const char *child, const char *parent)
{
	size_t n = strlen(parent);

	return strncmp(child, parent, n) == 0 && child[n] == '.';
}

static void
tree_free(struct ftree *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->e[i].name);
	free(t->e);
}

/* Every name LIST and LSUB may show: INBOX, the folders on disk, the
 * subscriptions, and the parents of those; sorted, unique.  0, -1 errno. */
static int
tree_build(const struct imap_ns *ns, struct ftree *t)
{
	char **v;
	size_t n, i, j, k;
	struct buf u8 = BUF_INIT;

	t->e = NULL;
	t->n = 0;
	tree_add(t, "INBOX", 5, F_EXISTS);
	if (disk_folders(ns, &v, &n) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		buf_reset(&u8);
		if (imap_utf7_decode(v[i], strlen(v[i]), &u8) == 0)
			tree_add_path(t, u8.data, F_EXISTS);
	}
	names_free(v, n);
	buf_free(&u8);
	if (subs_read(ns, &v, &n) < 0)
		return -1;
	for (i = 0; i < n; i++)
		tree_add_path(t, v[i], F_SUB);
	names_free(v, n);
	qsort(t->e, t->n, sizeof(*t->e), fent_cmp);
	for (i = 0, k = 0; i < t->n; i++) {
		if (k > 0 && strcmp(t->e[k - 1].name, t->e[i].name) == 0) {
			t->e[k - 1].fl |= t->e[i].fl;
			free(t->e[i].name);
		} else {
			t->e[k++] = t->e[i];
		}
	}
	t->n = k;
	for (i = 0; i < t->n; i++)
		for (j = i + 1; j < t->n && is_below(t->e[j].name, t->e[i].name); j++)
			if (t->e[j].fl & F_EXISTS) {
				t->e[i].fl |= F_CHILD;
				break;
			}
	return 0;
}

/* RFC 3501 6.3.8: "*" matches anything, "%" anything but the separator.
 * Dynamic programming over the name, so no pattern is exponential; the
 * first level INBOX matches in any case. */
static int
pat_match(const char *pat, const char *name)
{
	size_t n = strlen(name), j;
	unsigned char *prev = xcalloc(n + 1, 1), *cur = xmalloc(n + 1), *tmp;
	size_t ci = inbox_level(name) ? 5 : 0;
	int r;

	prev[0] = 1;
	for (; *pat; pat++) {
		if (*pat == '*') {
			cur[0] = prev[0];
			for (j = 1; j <= n; j++)
				cur[j] = prev[j] || cur[j - 1];
		} else if (*pat == '%') {
			cur[0] = prev[0];
			for (j = 1; j <= n; j++)
				cur[j] = prev[j] || (cur[j - 1] && name[j - 1] != '.');
		} else {
			cur[0] = 0;
			for (j = 1; j <= n; j++) {
				int eq = j - 1 < ci ? strncasecmp(pat, name + j - 1, 1) == 0 : *pat == name[j - 1];

				cur[j] = prev[j - 1] && eq;
			}
		}
		tmp = prev;
		prev = cur;
		cur = tmp;
	}
	r = prev[n];
	free(prev);
	free(cur);
	return r;
}

/* 1 if a subscribed name below e[i] is not itself matched (CHILDINFO,
 * and LSUB's \Noselect parents). */
static int
sub_below_unmatched(const struct ftree *t, size_t i)
{
	size_t j;

	for (j = i + 1; j < t->n && is_below(t->e[j].name, t->e[i].name); j++)
		if ((t->e[j].fl & (F_SUB | F_MATCH)) == F_SUB)
			return 1;
	return 0;
}

static void
add_attr(struct buf *out, const char *a)
{
	if (out->len && out->data[out->len - 1] != '(')
		buf_addc(out, ' ');
	buf_adds(out, a);
}

void
imap_folder_list(const struct imap_ns *ns, const struct imap_list *l, int lsub,
    struct buf *out, struct imap_folder_res *res)
{
	struct ftree t;
	struct buf pat = BUF_INIT, err = BUF_INIT, path = BUF_INIT, wire = BUF_INIT;
	const char *verb = lsub ? "LSUB" : "LIST";
	int selsub = (l->sel & IMAP_LIST_SEL_SUBSCRIBED) != 0;
	int recur = (l->sel & IMAP_LIST_SEL_RECURSIVEMATCH) != 0;
	int showsub = selsub || (l->ret & IMAP_LIST_RET_SUBSCRIBED);
	int root = 0;
	size_t i, k;

	if (tree_build(ns, &t) < 0) {
		res_syserr(res, "list", ns->root);
		tree_free(&t);
		return;
	}
	for (k = 0; k < l->npat; k++) {
		buf_reset(&pat);
		buf_printf(&pat, "%s%s", l->ref.utf8 ? l->ref.utf8 : "", l->pat[k].utf8);
		if (l->pat[k].utf8[0] == 0) {
			root = 1;
			continue;
		}
		for (i = 0; i < t.n; i++)
			if (!(t.e[i].fl & F_MATCH) && pat_match(pat.data, t.e[i].name))
				t.e[i].fl |= F_MATCH;
	}
	if (root)
		buf_printf(out, "* %s (\\Noselect) \".\" \"\"\r\n", verb);
	for (i = 0; i < t.n; i++) {
		const struct fent *e = &t.e[i];
		const char *special = (e->fl & F_EXISTS) ? special_of(ns, e->name) : NULL;
		int childinfo = 0;

		if (!(e->fl & F_MATCH))
			continue;
		if (lsub) {
			if (e->fl & F_SUB)
				buf_adds(out, "* LSUB () \".\" ");
			else if (sub_below_unmatched(&t, i))
				buf_adds(out, "* LSUB (\\Noselect) \".\" ");
			else
				continue;
			imap_folder_write_name(ns, e->name, out);
			buf_adds(out, "\r\n");
			continue;
		}
		if ((l->sel & IMAP_LIST_SEL_SPECIAL_USE) && !special)
			continue;
		if (selsub) {
			childinfo = recur && sub_below_unmatched(&t, i);
			if (!(e->fl & F_SUB) && !childinfo)
				continue;
		} else if (!(e->fl & (F_EXISTS | F_CHILD))) {
			continue;
		}
		buf_adds(out, "* LIST (");
		if (!(e->fl & F_EXISTS))
			add_attr(out, l->extended ? "\\NonExistent" : "\\Noselect");
		if (showsub && (e->fl & F_SUB))
			add_attr(out, "\\Subscribed");
		if (e->fl & F_CHILD)
			add_attr(out, "\\HasChildren");
		else if (e->fl & F_EXISTS)
			add_attr(out, "\\HasNoChildren");
		if (special)
			add_attr(out, special);
		buf_adds(out, ") \".\" ");
		imap_folder_write_name(ns, e->name, out);
		if (childinfo)
			buf_adds(out, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
		buf_adds(out, "\r\n");
		if ((l->ret & IMAP_LIST_RET_STATUS) && (e->fl & F_EXISTS)) {
			int maildir = 1;

			if (strcmp(e->name, "INBOX") == 0) {
				buf_sets(&path, ns->inbox);
				maildir = ns->inbox_maildir;
			} else {
				buf_reset(&wire);
				if (imap_utf7_encode(e->name, strlen(e->name), &wire) < 0)
					continue;
				folder_dir(ns, wire.data, &path);
			}
			/* RFC 5819: a folder whose status cannot be had gets none */
			buf_reset(&err);
			if (status_line(ns, e->name, path.data, maildir, l->status, out, &err) == IBOX_ERR)
				msg_warn("status %s: %s", path.data, buf_str(&err));
		}
	}
	res_set(res, "OK", NULL, lsub ? "LSUB completed" : "LIST completed");
	tree_free(&t);
	buf_free(&pat);
	buf_free(&err);
	buf_free(&path);
	buf_free(&wire);
}

/* ---- login ---- */

int
imap_folder_autocreate(const struct imap_ns *ns, struct buf *err)
{
	const char *const *sp = ns->special ? (const char *const *)ns->special : default_special;
	struct buf wire = BUF_INIT, path = BUF_INIT, u8 = BUF_INIT;
	int rc = -1, made = 0;
	size_t i;

	if (mkdir_p(ns->root, 0700) < 0) {
		buf_printf(err, "mkdir %s: %s", ns->root, strerror(errno));
		goto out;
	}
	if (ns->inbox_maildir && maildir_create(ns->inbox) < 0) {
		buf_printf(err, "create %s: %s", ns->inbox, strerror(errno));
		goto out;
	}
	for (i = 0; sp[i]; i++) {
		const char *c = strchr(sp[i], ':');

		buf_reset(&u8);
		buf_reset(&wire);
		if (c)
			buf_add(&u8, sp[i], (size_t)(c - sp[i]));
		else
			buf_sets(&u8, sp[i]);
		if (imap_utf7_encode(u8.data, u8.len, &wire) < 0 || name_invalid(wire.data, wire.len)) {
			buf_printf(err, "bad special-use folder name \"%s\"", u8.data);
			goto out;
		}
		folder_dir(ns, wire.data, &path);
		if (is_dir(path.data))
			continue;
		if (make_folder(path.data) < 0 && errno != EEXIST) {
			buf_printf(err, "create %s: %s", path.data, strerror(errno));
			goto out;
		}
		made = 1;
		if (subs_edit(ns, SUBS_ADD, u8.data, NULL) < 0) {
			buf_printf(err, "cannot subscribe %s", u8.data);
			goto out;
		}
	}
	if (made && fsync_dir(ns->root) < 0) {
		buf_printf(err, "fsync %s: %s", ns->root, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	buf_free(&wire);
	buf_free(&path);
	buf_free(&u8);
	return rc;
}
