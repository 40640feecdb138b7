/*
 * map.c: "type:path" lookup tables on Berkeley DB 5.3 (see map.h).
 *
 * hash:/path reads /path.db (DB_HASH), btree:/path reads /path.db
 * (DB_BTREE).  Keys are stored lower-cased without a NUL; values without
 * a NUL.  Databases are only ever opened read-only for lookups and are
 * replaced as a whole by map_build (temporary file, fsync, rename, fsync
 * of the directory), so a reader sees the old or the new map, never a
 * half-written one, and never needs a lock.
 *
 * libdb reads DB_CONFIG from the current directory when it opens a
 * database, so every db->open runs with the current directory at "/"
 * and returns to the caller's directory afterwards; relative map paths
 * are made absolute first.
 */
#include "map.h"
#include "aliases.h"
#include "util.h"

#include <db.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAP_SOURCE_MAX	((size_t)256 * 1024 * 1024)

struct map {
	char *spec;
	char *dbpath;		/* absolute path of the .db file */
	DB *db;
	struct stat st;		/* of the file as opened */
};

static void
db_errcall(const DB_ENV *env, const char *pfx, const char *msg)
{
	(void)env;
	msg_warn("berkeley db: %s%s%s", pfx ? pfx : "", pfx ? ": " : "", msg);
}

/* Split "hash:/path" into the DB type and the absolute source path. */
static int
parse_spec(const char *spec, DBTYPE *type, struct buf *path, struct buf *err)
{
	const char *p;

	if (!strncmp(spec, "hash:", 5)) {
		*type = DB_HASH;
		p = spec + 5;
	} else if (!strncmp(spec, "btree:", 6)) {
		*type = DB_BTREE;
		p = spec + 6;
	} else {
		buf_printf(err, "%s: unsupported map type (use hash:/path)", spec);
		return -1;
	}
	if (!*p || has_crlfnul(p, strlen(p))) {
		buf_printf(err, "%s: missing or bad path", spec);
		return -1;
	}
	buf_reset(path);
	if (*p != '/') {
		char *cwd = getcwd(NULL, 0);

		if (!cwd) {
			buf_printf(err, "%s: relative path and getcwd failed: %s", spec, strerror(errno));
			return -1;
		}
		buf_printf(path, "%s/", cwd);
		free(cwd);
	}
	buf_adds(path, p);
	return 0;
}

/* chdir("/") for libdb, remembering where we were. */
static int
enter_root(void)
{
	int fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (chdir("/") < 0)
		msg_warn("chdir /: %s", strerror(errno));
	return fd;
}

static void
leave_root(int fd)
{
	if (fd < 0)
		return;
	if (fchdir(fd) < 0)
		msg_warn("cannot return to the working directory: %s", strerror(errno));
	close(fd);
}

struct map *
map_open(const char *spec, struct buf *err)
{
	struct buf src = BUF_INIT;
	struct map *m;
	DBTYPE type;
	DB *db = NULL;
	int r, cwd, fd;

	if (parse_spec(spec, &type, &src, err) < 0) {
		buf_free(&src);
		return NULL;
	}
	buf_adds(&src, ".db");
	if ((r = db_create(&db, NULL, 0)) != 0) {
		buf_printf(err, "%s: db_create: %s", spec, db_strerror(r));
		buf_free(&src);
		return NULL;
	}
	db->set_errcall(db, db_errcall);
	cwd = enter_root();
	r = db->open(db, NULL, buf_str(&src), NULL, type, DB_RDONLY, 0);
	leave_root(cwd);
	if (r != 0) {
		if (r == ENOENT)
			buf_printf(err, "%s: %s does not exist (build it with newaliases or hermod map build)",
			    spec, buf_str(&src));
		else
			buf_printf(err, "%s: open %s: %s", spec, buf_str(&src), db_strerror(r));
		db->close(db, 0);
		buf_free(&src);
		return NULL;
	}
	m = xcalloc(1, sizeof(*m));
	m->spec = xstrdup(spec);
	m->dbpath = buf_steal(&src);
	m->db = db;
	if (db->fd(db, &fd) != 0 || fstat(fd, &m->st) < 0)
		memset(&m->st, 0, sizeof(m->st));
	return m;
}

static int
get(struct map *m, const char *key, size_t klen, struct buf *val)
{
	DBT k, v;
	int r;

	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	k.data = (void *)key;
	k.size = (u_int32_t)klen;
	r = m->db->get(m->db, NULL, &k, &v, 0);
	if (r == DB_NOTFOUND)
		return 0;
	if (r != 0) {
		msg_error("%s: lookup of \"%s\": %s", m->spec, key, db_strerror(r));
		return -1;
	}
	buf_reset(val);
	buf_add(val, v.data, v.size);
	return 1;
}

int
map_lookup(struct map *m, const char *key, struct buf *val)
{
	size_t klen = strlen(key), i;
	char *low;
	int r;

	if (klen == 0 || klen > 0xffff)
		return 0;
	if ((r = get(m, key, klen, val)) != 0)
		return r;
	for (i = 0; i < klen; i++)
		if (key[i] >= 'A' && key[i] <= 'Z')
			break;
	if (i == klen)
		return 0;
	low = xstrdup(key);
	str_lower(low);
	r = get(m, low, klen, val);
	free(low);
	return r;
}

void
map_close(struct map *m)
{
	if (!m)
		return;
	m->db->close(m->db, 0);
	free(m->spec);
	free(m->dbpath);
	free(m);
}

int
map_fstat(struct map *m, struct stat *st)
{
	if (m->st.st_ino == 0) {
		errno = ENOENT;
		return -1;
	}
	*st = m->st;
	return 0;
}

int
map_stale(struct map *m)
{
	struct stat st;

	if (stat(m->dbpath, &st) < 0)
		return 0;	/* keep what we have rather than nothing */
	return st.st_ino != m->st.st_ino || st.st_dev != m->st.st_dev ||
	    st.st_mtim.tv_sec != m->st.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != m->st.st_mtim.tv_nsec;
}

int
map_replaced(struct map *m)
{
	struct stat st;
	int fd;

	if (!m->db || m->db->fd(m->db, &fd) != 0 || fstat(fd, &st) < 0)
		return 0;
	return st.st_nlink == 0 || st.st_ino != m->st.st_ino ||
	    st.st_mtim.tv_sec != m->st.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != m->st.st_mtim.tv_nsec;
}

const char *
map_spec(const struct map *m)
{
	return m->spec;
}

long
map_build_data(const char *spec, int format, const char *data, size_t len, struct buf *err)
{
	struct buf src = BUF_INIT, dbpath = BUF_INIT, tmp = BUF_INIT;
	struct alias_list l;
	static unsigned counter;
	DBTYPE type;
	DB *db = NULL;
	long count = 0;
	size_t i;
	int r, cwd, fd, tries;

	memset(&l, 0, sizeof(l));
	if (parse_spec(spec, &type, &src, err) < 0)
		goto fail;
	buf_printf(&dbpath, "%s.db", buf_str(&src));
	aliases_parse(data, len, format == MAP_FMT_ALIASES ? 0 : ALIASES_TABLE, &l);
	for (i = 0; i < l.nerr; i++)
		msg_warn("%s:%d: %s (entry ignored)", buf_str(&src), l.err[i].line, l.err[i].msg);

	for (tries = 0; ; tries++) {
		if ((r = db_create(&db, NULL, 0)) != 0) {
			buf_printf(err, "%s: db_create: %s", spec, db_strerror(r));
			goto fail;
		}
		db->set_errcall(db, db_errcall);
		if (type == DB_HASH && l.n > 0)
			db->set_h_nelem(db, (u_int32_t)(l.n > 0xfffffff ? 0xfffffff : l.n));
		buf_reset(&tmp);
		buf_printf(&tmp, "%s.tmp%ld.%u", buf_str(&dbpath), (long)getpid(), counter++);
		cwd = enter_root();
		r = db->open(db, NULL, buf_str(&tmp), NULL, type, DB_CREATE | DB_EXCL, 0644);
		leave_root(cwd);
		if (r == 0)
			break;
		db->close(db, 0);
		db = NULL;
		if (r != EEXIST || tries > 100) {
			buf_printf(err, "%s: create %s: %s", spec, buf_str(&tmp), db_strerror(r));
			goto fail;
		}
	}
	for (i = 0; i < l.n; i++) {
		DBT k, v;

		memset(&k, 0, sizeof(k));
		memset(&v, 0, sizeof(v));
		k.data = l.v[i].name;
		k.size = (u_int32_t)strlen(l.v[i].name);
		v.data = l.v[i].value;
		v.size = (u_int32_t)strlen(l.v[i].value);
		r = db->put(db, NULL, &k, &v, DB_NOOVERWRITE);
		if (r == DB_KEYEXIST) {
			size_t j = i;

			while (j-- > 0)
				if (!strcmp(l.v[j].name, l.v[i].name))
					break;
			msg_warn("%s:%d: duplicate entry \"%s\" (first at line %d): the later entry wins",
			    buf_str(&src), l.v[i].line, l.v[i].name, l.v[j].line);
			r = db->put(db, NULL, &k, &v, 0);
			count--;
		}
		if (r != 0) {
			buf_printf(err, "%s: write %s: %s", spec, buf_str(&tmp), db_strerror(r));
			goto fail_db;
		}
		count++;
	}
	r = db->close(db, 0);
	db = NULL;
	if (r != 0) {
		buf_printf(err, "%s: close %s: %s", spec, buf_str(&tmp), db_strerror(r));
		goto fail_tmp;
	}
	if ((fd = open(buf_str(&tmp), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0 || fsync(fd) < 0) {
		buf_printf(err, "%s: fsync %s: %s", spec, buf_str(&tmp), strerror(errno));
		if (fd >= 0)
			close(fd);
		goto fail_tmp;
	}
	close(fd);
	if (rename(buf_str(&tmp), buf_str(&dbpath)) < 0) {
		buf_printf(err, "%s: rename %s to %s: %s", spec, buf_str(&tmp), buf_str(&dbpath), strerror(errno));
		goto fail_tmp;
	}
	if (fsync_parent(buf_str(&dbpath)) < 0) {
		buf_printf(err, "%s: fsync the directory of %s: %s", spec, buf_str(&dbpath), strerror(errno));
		goto fail;
	}
	aliases_free(&l);
	buf_free(&src);
	buf_free(&dbpath);
	buf_free(&tmp);
	return count;
fail_db:
	db->close(db, 0);
fail_tmp:
	unlink(buf_str(&tmp));
fail:
	aliases_free(&l);
	buf_free(&src);
	buf_free(&dbpath);
	buf_free(&tmp);
	return -1;
}

long
map_build(const char *spec, int format, struct buf *err)
{
	struct buf src = BUF_INIT, data = BUF_INIT;
	DBTYPE type;
	long n;

	if (parse_spec(spec, &type, &src, err) < 0) {
		buf_free(&src);
		return -1;
	}
	if (read_file(buf_str(&src), &data, MAP_SOURCE_MAX) < 0) {
		buf_printf(err, "%s: read %s: %s", spec, buf_str(&src), strerror(errno));
		buf_free(&src);
		buf_free(&data);
		return -1;
	}
	n = map_build_data(spec, format, data.data ? data.data : "", data.len, err);
	buf_free(&src);
	buf_free(&data);
	return n;
}
