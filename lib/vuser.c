/*
 * vuser.c: the virtual users of an instance (see vuser.h).
 *
 * $virtual_users_file holds one "name:hash" line per user; blank lines
 * and lines starting with '#' are kept as they are when the file is
 * rewritten, fields after a second ':' are ignored (and kept).  The hash
 * is a crypt(5) string: yescrypt ("$y$") where libcrypt supports it,
 * else sha512-crypt ("$6$"), salted with bytes from getrandom().
 *
 * Invariants:
 * - the file is only ever replaced whole: written to a temporary file
 *   next to it, fsynced, renamed over it, and the directory fsynced, so
 *   a reader (local, authd) never sees a half-written file and needs no
 *   lock;
 * - writers serialise with an fcntl lock on the file itself; because
 *   the rename replaces the inode, a writer that got the lock checks
 *   that the path still names the locked file and starts again if not;
 * - names are validated before they reach the file or the file system
 *   (no '/', no leading '.', bounded), passwords are bounded and never
 *   logged.
 */
#include "vuser.h"
#include "conf.h"
#include "service.h"
#include "util.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define VUSER_NAME_MAX		64
/* libcrypt refuses longer pass phrases (the limit counts the NUL) */
#ifdef CRYPT_MAX_PASSPHRASE_SIZE
#define VUSER_PASSWORD_MAX	(CRYPT_MAX_PASSPHRASE_SIZE - 1)
#else
#define VUSER_PASSWORD_MAX	511
#endif
#define VUSER_FILE_MAX		(64 * 1024 * 1024)

int
vuser_name_valid(const char *name)
{
	size_t i, n;

	if (!name || !*name)
		return 0;
	n = strlen(name);
	if (n > VUSER_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		char c = name[i];

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			continue;
		if (i > 0 && (c == '.' || c == '_' || c == '-'))
			continue;
		return 0;
	}
	return 1;
}

/* A lower-cased copy of name, or NULL when it is not a valid name even
 * then (lookups are case-insensitive, as mail addresses are). */
static char *
lookup_name(const char *name)
{
	char *s;

	if (!name || strlen(name) > VUSER_NAME_MAX)
		return NULL;
	s = xstrdup(name);
	str_lower(s);
	if (!vuser_name_valid(s)) {
		free(s);
		return NULL;
	}
	return s;
}

static void
maildir_path(struct buf *out, const char *name)
{
	buf_printf(out, "%s/%s/Maildir/", conf_str("virtual_mailbox_base"), name);
}

/* 1 if line (up to its end) is name's entry. */
static int
line_is(const char *line, const char *name)
{
	size_t nlen = strlen(name);

	return *line != '#' && !strncmp(line, name, nlen) && line[nlen] == ':';
}

/*
 * Find name's line in data (a NUL-terminated copy of the file).  Returns
 * a pointer to the start of the line, or NULL; *hash gets a copy of the
 * hash field when hash is not NULL.
 */
static const char *
find_line(const char *data, const char *name, char **hash)
{
	size_t nlen = strlen(name);
	const char *line, *next;

	for (line = data; line && *line; line = next) {
		const char *eol = strchr(line, '\n');

		next = eol ? eol + 1 : NULL;
		if (!eol)
			eol = line + strlen(line);
		if (*line == '#')
			continue;
		if (line_is(line, name)) {
			if (hash) {
				const char *h = line + nlen + 1;
				size_t hl = strcspn(h, ":\n");

				*hash = xstrndup(h, hl);
				/* tolerate CRLF files edited by hand */
				if (hl && (*hash)[hl - 1] == '\r')
					(*hash)[hl - 1] = 0;
			}
			return line;
		}
	}
	return NULL;
}

/* Read the users file.  0 ok (a missing file is an empty one), -1 errno. */
static int
read_users(const char *path, struct buf *data)
{
	buf_reset(data);
	if (read_file(path, data, VUSER_FILE_MAX) < 0) {
		if (errno == ENOENT) {
			buf_reset(data);
			buf_adds(data, "");
			return 0;
		}
		return -1;
	}
	if (memchr(data->data ? data->data : "", 0, data->len)) {
		errno = EINVAL;
		return -1;
	}
	buf_adds(data, "");	/* make sure data->data is not NULL */
	return 0;
}

int
vuser_lookup(const char *name, struct buf *maildir)
{
	struct buf data = BUF_INIT;
	const char *path = conf_str("virtual_users_file");
	char *lname;
	int rc;

	if (!(lname = lookup_name(name)))
		return 0;
	if (read_users(path, &data) < 0) {
		msg_error("virtual users file %s: %s", path, strerror(errno));
		free(lname);
		buf_free(&data);
		return -1;
	}
	rc = find_line(data.data, lname, NULL) != NULL;
	if (rc && maildir) {
		buf_reset(maildir);
		maildir_path(maildir, lname);
	}
	free(lname);
	buf_free(&data);
	return rc;
}

/* A fixed setting used when the user does not exist, so that a missing
 * user costs as much time as a wrong password. */
#define DUMMY_SETTING "$6$hermodhermodher$"

int
vuser_check_password(const char *name, const char *password)
{
	struct buf data = BUF_INIT;
	struct crypt_data *cd;
	const char *path = conf_str("virtual_users_file");
	char *lname, *hash = NULL, *out;
	int rc = 0;

	if (!password || strlen(password) > VUSER_PASSWORD_MAX)
		return 0;
	lname = lookup_name(name);
	if (lname && read_users(path, &data) < 0) {
		msg_error("virtual users file %s: %s", path, strerror(errno));
		free(lname);
		buf_free(&data);
		return -1;
	}
	if (lname)
		find_line(data.data, lname, &hash);
	cd = xcalloc(1, sizeof(*cd));
	out = crypt_r(password, hash && *hash ? hash : DUMMY_SETTING, cd);
	if (hash && *hash && out && out[0] != '*' && str_eq_ct(out, hash))
		rc = 1;
	else if (hash && *hash && (!out || out[0] == '*'))
		msg_warn("virtual user %s: unusable password hash in %s", lname, path);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	free(hash);
	free(lname);
	buf_free(&data);
	return rc;
}

/* Hash a password with a fresh random salt.  NULL with err set. */
static char *
hash_password(const char *password, struct buf *err)
{
	static const char *prefixes[] = { "$y$", "$6$", NULL };
	unsigned char rnd[32];
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	char *out, *res = NULL;
	size_t i;

	for (i = 0; prefixes[i]; i++) {
		ssize_t got = getrandom(rnd, sizeof(rnd), 0);

		if (got != (ssize_t)sizeof(rnd)) {
			buf_printf(err, "getrandom: %s", got < 0 ? strerror(errno) : "short read");
			return NULL;
		}
		if (!crypt_gensalt_rn(prefixes[i], 0, (const char *)rnd, (int)sizeof(rnd),
		    setting, (int)sizeof(setting)))
			continue;	/* not supported here: try the next */
		cd = xcalloc(1, sizeof(*cd));
		out = crypt_r(password, setting, cd);
		if (out && out[0] != '*')
			res = xstrdup(out);
		explicit_bzero(cd, sizeof(*cd));
		free(cd);
		if (res)
			break;
	}
	explicit_bzero(rnd, sizeof(rnd));
	if (!res)
		buf_printf(err, "libcrypt supports neither yescrypt nor sha512-crypt");
	return res;
}

/*
 * Lock the users file for a rewrite: open (creating it empty if needed),
 * take an fcntl write lock, and check that the path still names the
 * locked inode (another writer may have renamed a new file over it while
 * we waited).  Returns the descriptor, or -1 with err set.
 */
static int
lock_users(const char *path, struct stat *st, struct buf *err)
{
	int tries;

	for (tries = 0; tries < 100; tries++) {
		struct flock fl;
		struct stat cur;
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

		if (fd < 0) {
			buf_printf(err, "open %s: %s", path, strerror(errno));
			return -1;
		}
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		while (fcntl(fd, F_SETLKW, &fl) < 0) {
			if (errno == EINTR)
				continue;
			buf_printf(err, "lock %s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (fstat(fd, st) < 0) {
			buf_printf(err, "fstat %s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (!S_ISREG(st->st_mode)) {
			buf_printf(err, "%s: not a regular file", path);
			close(fd);
			return -1;
		}
		if (stat(path, &cur) == 0 && cur.st_dev == st->st_dev && cur.st_ino == st->st_ino)
			return fd;
		close(fd);	/* replaced meanwhile: lock the new one */
	}
	buf_printf(err, "lock %s: the file keeps changing", path);
	return -1;
}

/* Read everything from fd (the locked file); NULs are refused.  0 ok,
 * -1 errno. */
static int
read_locked(int fd, struct buf *data)
{
	if (read_fd(fd, data, VUSER_FILE_MAX) < 0)
		return -1;
	if (data->len && memchr(data->data, 0, data->len)) {
		errno = EINVAL;
		return -1;
	}
	buf_adds(data, "");
	return 0;
}

/* Replace the users file with data, keeping the old file's owner and
 * mode.  0 ok, -1 with err set. */
static int
replace_users(const char *path, const struct buf *data, const struct stat *old, struct buf *err)
{
	struct buf tmp = BUF_INIT;
	int fd = -1, rc = -1;

	buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
	(void)unlink(buf_str(&tmp));
	fd = open(buf_str(&tmp), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		buf_printf(err, "create %s: %s", buf_str(&tmp), strerror(errno));
		goto out;
	}
	if (geteuid() == 0 && fchown(fd, old->st_uid, old->st_gid) < 0) {
		buf_printf(err, "chown %s: %s", buf_str(&tmp), strerror(errno));
		goto fail;
	}
	if (fchmod(fd, old->st_mode & 07777) < 0) {
		buf_printf(err, "chmod %s: %s", buf_str(&tmp), strerror(errno));
		goto fail;
	}
	if (write_full(fd, data->data ? data->data : "", data->len) < 0 || fsync(fd) < 0) {
		buf_printf(err, "write %s: %s", buf_str(&tmp), strerror(errno));
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		buf_printf(err, "write %s: %s", buf_str(&tmp), strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(buf_str(&tmp), path) < 0) {
		buf_printf(err, "rename %s to %s: %s", buf_str(&tmp), path, strerror(errno));
		goto fail;
	}
	if (fsync_parent(path) < 0) {
		buf_printf(err, "fsync directory of %s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
	goto out;
fail:
	if (fd >= 0)
		close(fd);
	(void)unlink(buf_str(&tmp));
out:
	buf_free(&tmp);
	return rc;
}

/* Create one directory of a Maildir, owned by uid/gid when chown is set. */
static int
make_dir(const char *path, int chown_it, uid_t uid, gid_t gid, struct buf *err)
{
	struct stat st;

	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		buf_printf(err, "mkdir %s: %s", path, strerror(errno));
		return -1;
	}
	if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		buf_printf(err, "%s: not a directory", path);
		return -1;
	}
	if (chown_it && lchown(path, uid, gid) < 0) {
		buf_printf(err, "chown %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int
make_maildir(const char *name, struct buf *err)
{
	static const char *subs[] = { "tmp", "new", "cur", NULL };
	struct buf p = BUF_INIT;
	const char *base = conf_str("virtual_mailbox_base");
	uid_t uid = 0;
	gid_t gid = 0;
	int chown_it = 0, rc = -1;
	size_t i;

	if (geteuid() == 0 && conf_privileged()) {
		if (priv_owner(&uid, &gid) < 0) {
			buf_printf(err, "mail_owner %s: no such user", conf_str("mail_owner"));
			return -1;
		}
		chown_it = 1;
	}
	if (mkdir_p(base, 0755) < 0) {
		buf_printf(err, "mkdir %s: %s", base, strerror(errno));
		return -1;
	}
	buf_printf(&p, "%s/%s", base, name);
	if (make_dir(buf_str(&p), chown_it, uid, gid, err) < 0)
		goto out;
	buf_adds(&p, "/Maildir");
	if (make_dir(buf_str(&p), chown_it, uid, gid, err) < 0)
		goto out;
	for (i = 0; subs[i]; i++) {
		struct buf s = BUF_INIT;
		int r;

		buf_printf(&s, "%s/%s", buf_str(&p), subs[i]);
		r = make_dir(buf_str(&s), chown_it, uid, gid, err);
		buf_free(&s);
		if (r < 0)
			goto out;
	}
	rc = 0;
out:
	buf_free(&p);
	return rc;
}

/*
 * Rewrite the file: drop name's line (and any duplicates edited in by
 * hand) and, when newline is not NULL, put it in the place of the first
 * one (or at the end).  *found tells whether the name was there.
 */
static int
rewrite(const char *name, const char *newline, int *found, struct buf *err)
{
	struct buf data = BUF_INIT, out = BUF_INIT;
	const char *path = conf_str("virtual_users_file");
	const char *line, *next;
	struct stat st;
	int fd, rc = -1;

	*found = 0;
	if ((fd = lock_users(path, &st, err)) < 0)
		return -1;
	if (read_locked(fd, &data) < 0) {
		buf_printf(err, "read %s: %s", path, strerror(errno));
		goto out;
	}
	for (line = data.data; line && *line; line = next) {
		const char *eol = strchr(line, '\n');

		next = eol ? eol + 1 : line + strlen(line);
		if (!line_is(line, name)) {
			buf_add(&out, line, (size_t)(next - line));
			if (!eol)
				buf_addc(&out, '\n');
			continue;
		}
		if (!*found && newline) {
			buf_adds(&out, newline);
			buf_addc(&out, '\n');
		}
		*found = 1;
	}
	if (!*found && newline) {
		buf_adds(&out, newline);
		buf_addc(&out, '\n');
	}
	if (!*found && !newline) {
		rc = 0;		/* nothing to change */
		goto out;
	}
	rc = replace_users(path, &out, &st, err);
out:
	close(fd);		/* releases the lock */
	buf_free(&data);
	buf_free(&out);
	return rc;
}

int
vuser_add(const char *name, const char *password, struct buf *err)
{
	struct buf line = BUF_INIT;
	char *hash;
	int found, rc;

	if (!vuser_name_valid(name)) {
		buf_printf(err, "invalid user name \"%s\": use a-z, 0-9, '.', '_', '-' (starting with a letter or digit), at most %d characters",
		    name ? name : "", VUSER_NAME_MAX);
		return -1;
	}
	if (!password || !*password) {
		buf_printf(err, "empty password for %s", name);
		return -1;
	}
	if (strlen(password) > VUSER_PASSWORD_MAX) {
		buf_printf(err, "password for %s is longer than %d bytes", name, VUSER_PASSWORD_MAX);
		return -1;
	}
	if (has_crlfnul(password, strlen(password))) {
		buf_printf(err, "password for %s contains a line break", name);
		return -1;
	}
	if (make_maildir(name, err) < 0)
		return -1;
	if (!(hash = hash_password(password, err)))
		return -1;
	buf_printf(&line, "%s:%s", name, hash);
	free(hash);
	rc = rewrite(name, buf_str(&line), &found, err);
	buf_free(&line);
	return rc;
}

int
vuser_del(const char *name, struct buf *err)
{
	int found;

	if (!vuser_name_valid(name)) {
		buf_printf(err, "invalid user name \"%s\"", name ? name : "");
		return -1;
	}
	if (rewrite(name, NULL, &found, err) < 0)
		return -1;
	if (!found) {
		buf_printf(err, "no such user: %s", name);
		return -1;
	}
	return 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char **
vuser_list(void)
{
	struct buf data = BUF_INIT;
	const char *path = conf_str("virtual_users_file");
	char **v = NULL, *line, *next;
	size_t n = 0, i, j;

	if (read_users(path, &data) < 0) {
		msg_error("virtual users file %s: %s", path, strerror(errno));
		buf_free(&data);
		return NULL;
	}
	for (line = data.data; line && *line; line = next) {
		char *colon;

		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		if (*line == '#' || !(colon = strchr(line, ':')))
			continue;
		*colon = 0;
		if (!vuser_name_valid(line))
			continue;
		v = xreallocarray(v, n + 2, sizeof(*v));
		v[n++] = xstrdup(line);
	}
	v = xreallocarray(v, n + 1, sizeof(*v));
	v[n] = NULL;
	qsort(v, n, sizeof(*v), cmp_str);
	/* a name edited in twice by hand is listed once */
	for (i = j = 0; i < n; i++) {
		if (j > 0 && !strcmp(v[j - 1], v[i])) {
			free(v[i]);
			continue;
		}
		v[j++] = v[i];
	}
	v[j] = NULL;
	buf_free(&data);
	return v;
}
