/*
 * quota.c: the limits of lib/quota.h and the Maildir++ maildirsize
 * file.  The file is a cache, so every failure here ends in "compute
 * it again from the folders", never in a refusal made from a number we
 * cannot trust.  Concurrent writers are tolerated as Maildir++ does:
 * changes are appended with O_APPEND in one write(2); a recomputation
 * replaces the file by rename, and a change appended meanwhile to the
 * old file may be lost until the next recomputation (the file's size
 * limit and the 15-minute rule bound how long).
 */
#include "quota.h"
#include "conf.h"
#include "log.h"
#include "map.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define QUOTA_FILE		"maildirsize"
/* Maildir++: past this size the file is recomputed (and so shrinks). */
#define QUOTA_FILE_MAX		5120
/* Maildir++: an over-quota answer from a file this old is checked by
 * recomputing (mail may have been removed behind our back). */
#define QUOTA_STALE_SECS	(15 * 60)
/* No number in the file may be larger: 5120 bytes of lines of such
 * numbers cannot overflow a long long when summed. */
#define QUOTA_MAX		(1LL << 50)

int
quota_limited(const struct quota_limit *q)
{
	return q->bytes > 0 || q->messages > 0;
}

static int
parse_one(const char *s, int size, long long *out)
{
	if (!strcasecmp(s, "none")) {
		*out = 0;
		return 0;
	}
	if (size)
		return parse_size(s, out);
	return parse_ll(s, 0, (1LL << 62), out);
}

int
quota_parse(const char *s, struct quota_limit *q)
{
	char **v = str_split(s, " \t,");
	size_t n = strv_len(v);
	int r = -1;

	q->bytes = q->messages = 0;
	if (n >= 1 && n <= 2 && parse_one(v[0], 1, &q->bytes) == 0 &&
	    (n == 1 || parse_one(v[1], 0, &q->messages) == 0))
		r = 0;
	strv_free(v);
	return r;
}

/* The maps of $mailbox_quota_maps stay open between lookups (local and
 * authd ask for every delivery and login) and are reopened when
 * rebuilt. */
static struct map **maps;
static char **map_specs;

static int
maps_open(void)
{
	char **specs = conf_list("mailbox_quota_maps");
	size_t i, n = strv_len(specs);
	int same = map_specs && strv_len(map_specs) == n;

	for (i = 0; same && i < n; i++)
		same = !strcmp(specs[i], map_specs[i]) && maps[i] && !map_stale(maps[i]);
	if (same) {
		strv_free(specs);
		return 0;
	}
	for (i = 0; map_specs && map_specs[i]; i++)
		if (maps[i])
			map_close(maps[i]);
	free(maps);
	strv_free(map_specs);
	map_specs = specs;
	maps = xcalloc(n + 1, sizeof(*maps));
	for (i = 0; i < n; i++) {
		struct buf err = BUF_INIT;

		if (!(maps[i] = map_open(specs[i], &err))) {
			msg_warn("mailbox_quota_maps: %s", buf_str(&err));
			buf_free(&err);
			return -1;
		}
	}
	return 0;
}

int
quota_lookup(const char *name, struct quota_limit *q)
{
	struct buf val = BUF_INIT;
	size_t i;
	int r;

	q->bytes = conf_size("mailbox_quota");
	q->messages = conf_int("mailbox_quota_messages");
	if (!*conf_str("mailbox_quota_maps"))
		return 0;
	if (maps_open() < 0)
		return -1;
	for (i = 0; map_specs[i]; i++) {
		if ((r = map_lookup(maps[i], name, &val)) < 0) {
			buf_free(&val);
			return -1;
		}
		if (r == 0)
			continue;
		if (quota_parse(buf_str(&val), q) < 0) {
			msg_warn("%s: %s: malformed quota \"%s\" (expected STORAGE [MESSAGES])",
			    map_spec(maps[i]), name, buf_str(&val));
			buf_free(&val);
			return -1;
		}
		break;
	}
	buf_free(&val);
	return 0;
}

long long
quota_name_size(const char *name)
{
	const char *s = strstr(name, ",S=");
	char *end;
	long long v;

	if (!s)
		return -1;
	errno = 0;
	v = strtoll(s + 3, &end, 10);
	if (errno || end == s + 3 || v < 0 || (*end && *end != ',' && *end != ':'))
		return -1;
	return v;
}

/* The definition line of q, as Maildir++ writes it. */
static void
definition(const struct quota_limit *q, struct buf *out)
{
	if (q->bytes > 0)
		buf_printf(out, "%lldS", q->bytes);
	if (q->messages > 0)
		buf_printf(out, "%s%lldC", q->bytes > 0 ? "," : "", q->messages);
	if (!q->bytes && !q->messages)
		buf_adds(out, "0S");
}

static void
path_of(const char *root, const char *name, struct buf *out)
{
	buf_reset(out);
	buf_printf(out, "%s%s%s", root, root[0] && root[strlen(root) - 1] == '/' ? "" : "/", name);
}

/* Add what DIR/new and DIR/cur hold. */
static int
count_folder(const char *dir, struct quota_usage *u, struct buf *err)
{
	static const char *const sub[] = { "new", "cur" };
	struct buf p = BUF_INIT;
	size_t i;

	for (i = 0; i < 2; i++) {
		struct dirent *e;
		DIR *d;
		int dfd;

		path_of(dir, sub[i], &p);
		if (!(d = opendir(buf_str(&p)))) {
			if (errno == ENOENT)
				continue;
			buf_printf(err, "%s: %s", buf_str(&p), strerror(errno));
			buf_free(&p);
			return -1;
		}
		dfd = dirfd(d);
		while ((e = readdir(d))) {
			long long sz;

			if (e->d_name[0] == '.')
				continue;
			if ((sz = quota_name_size(e->d_name)) < 0) {
				struct stat st;

				if (fstatat(dfd, e->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
					continue;	/* gone meanwhile, or not a message */
				sz = (long long)st.st_size;
			}
			u->bytes += sz;
			u->messages++;
		}
		closedir(d);
	}
	buf_free(&p);
	return 0;
}

/* Compute from the folders (INBOX and every Maildir++ .folder) and
 * write maildirsize for q. */
static int
recompute(const char *root, const struct quota_limit *q, struct quota_usage *u, struct buf *err)
{
	struct buf p = BUF_INIT, out = BUF_INIT;
	struct dirent *e;
	DIR *d;
	int r = 0;

	u->bytes = u->messages = 0;
	if (count_folder(root, u, err) < 0)
		return -1;
	if (!(d = opendir(root))) {
		buf_printf(err, "%s: %s", root, strerror(errno));
		return -1;
	}
	while (r == 0 && (e = readdir(d))) {
		struct stat st;

		if (e->d_name[0] != '.' || !strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, 0) < 0 || !S_ISDIR(st.st_mode))
			continue;
		path_of(root, e->d_name, &p);
		r = count_folder(buf_str(&p), u, err);
	}
	closedir(d);
	if (r == 0) {
		definition(q, &out);
		buf_printf(&out, "\n%lld %lld\n", u->bytes, u->messages);
		path_of(root, QUOTA_FILE, &p);
		/* a cache: not fsynced, and a failure to write it is only
		 * the next reader's work */
		if (write_file_atomic_nosync(buf_str(&p), out.data, out.len, 0600) < 0)
			msg_warn("%s: %s", buf_str(&p), strerror(errno));
	}
	buf_free(&p);
	buf_free(&out);
	return r;
}

int
quota_parse_file(const char *data, size_t len, const struct quota_limit *q, struct quota_usage *u)
{
	struct buf def = BUF_INIT;
	const char *p = data, *end = data + len, *nl;
	int ok = 0;

	u->bytes = u->messages = 0;
	if (!len || len > QUOTA_FILE_MAX || data[len - 1] != '\n' || memchr(data, 0, len))
		return 0;
	nl = memchr(p, '\n', (size_t)(end - p));
	definition(q, &def);
	if ((size_t)(nl - p) != def.len || memcmp(p, def.data, def.len))
		goto out;
	for (p = nl + 1; p < end; p = nl + 1) {
		long long v[2];
		int k;

		nl = memchr(p, '\n', (size_t)(end - p));
		/* "BYTES COUNT": two signed decimals, one space or more between */
		for (k = 0; k < 2; k++) {
			const char *s = p;
			int neg = 0;

			if (k) {
				if (p >= nl || *p != ' ')
					goto out;
				while (p < nl && *p == ' ')
					p++;
				s = p;
			}
			if (p < nl && *p == '-') {
				neg = 1;
				p++;
			}
			v[k] = 0;
			for (; p < nl && *p >= '0' && *p <= '9'; p++) {
				if (v[k] > (QUOTA_MAX - (*p - '0')) / 10)
					goto out;
				v[k] = v[k] * 10 + (*p - '0');
			}
			if (p == s + neg)
				goto out;
			if (neg)
				v[k] = -v[k];
		}
		while (p < nl && *p == ' ')
			p++;
		if (p != nl)
			goto out;
		/* the sums stay within QUOTA_MAX * lines: no overflow */
		u->bytes += v[0];
		u->messages += v[1];
	}
	ok = u->bytes >= 0 && u->messages >= 0;
out:
	buf_free(&def);
	return ok;
}

/* Read and sum maildirsize.  1 usable (u, *mtime set), 0 must be
 * recomputed. */
static int
read_sizes(const char *root, const struct quota_limit *q, struct quota_usage *u, time_t *mtime)
{
	struct buf p = BUF_INIT, data = BUF_INIT;
	struct stat st;
	int fd, ok = 0;

	u->bytes = u->messages = 0;
	path_of(root, QUOTA_FILE, &p);
	fd = open(buf_str(&p), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	buf_free(&p);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= QUOTA_FILE_MAX &&
	    read_fd(fd, &data, QUOTA_FILE_MAX + 1) == 0) {
		*mtime = st.st_mtime;
		ok = quota_parse_file(data.data ? data.data : "", data.len, q, u);
	}
	close(fd);
	buf_free(&data);
	return ok;
}

int
quota_usage(const char *root, const struct quota_limit *q, struct quota_usage *u, struct buf *err)
{
	time_t mtime;

	if (read_sizes(root, q, u, &mtime))
		return 0;
	return recompute(root, q, u, err);
}

static int
fits(const struct quota_limit *q, const struct quota_usage *u, long long bytes, long long msgs)
{
	return (q->bytes <= 0 || u->bytes + bytes <= q->bytes) &&
	    (q->messages <= 0 || u->messages + msgs <= q->messages);
}

int
quota_room(const char *root, const struct quota_limit *q, long long bytes, long long msgs,
    struct quota_usage *u, struct buf *err)
{
	struct quota_usage tmp;
	time_t mtime = 0;

	if (!u)
		u = &tmp;
	u->bytes = u->messages = 0;
	if (!quota_limited(q))
		return 1;
	if (read_sizes(root, q, u, &mtime)) {
		if (fits(q, u, bytes, msgs))
			return 1;
		if (time(NULL) - mtime < QUOTA_STALE_SECS)
			return 0;
	}
	if (recompute(root, q, u, err) < 0)
		return -1;
	return fits(q, u, bytes, msgs);
}

void
quota_describe(const struct quota_limit *q, const struct quota_usage *u, struct buf *out)
{
	if (q->bytes > 0)
		buf_printf(out, "%lld of %lld bytes", u->bytes, q->bytes);
	if (q->messages > 0)
		buf_printf(out, "%s%lld of %lld messages", q->bytes > 0 ? ", " : "", u->messages,
		    q->messages);
	buf_adds(out, " in use");
}

void
quota_add(const char *root, long long bytes, long long msgs)
{
	struct buf p = BUF_INIT, line = BUF_INIT;
	int fd;

	if (!bytes && !msgs)
		return;
	path_of(root, QUOTA_FILE, &p);
	/* no O_CREAT: without the file there is nothing to keep right */
	if ((fd = open(buf_str(&p), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		if (errno != ENOENT)
			msg_warn("%s: %s", buf_str(&p), strerror(errno));
		buf_free(&p);
		return;
	}
	buf_printf(&line, "%lld %lld\n", bytes, msgs);
	/* one write, so that concurrent writers' lines never mix */
	if (write(fd, line.data, line.len) != (ssize_t)line.len)
		msg_warn("%s: short append: %s", buf_str(&p), strerror(errno));
	close(fd);
	buf_free(&p);
	buf_free(&line);
}

void
quota_invalidate(const char *root)
{
	struct buf p = BUF_INIT;

	path_of(root, QUOTA_FILE, &p);
	if (unlink(buf_str(&p)) < 0 && errno != ENOENT)
		msg_warn("%s: unlink: %s", buf_str(&p), strerror(errno));
	buf_free(&p);
}
