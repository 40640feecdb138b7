/*
 * util.c: see util.h.  Everything here is policy-free; errors are
 * returned with errno set, and logged by the caller that decides.
 */
#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#include <pwd.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		msg_fatal("out of memory (%zu bytes)", n);
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		msg_fatal("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		msg_fatal("out of memory (%zu bytes)", n);
	return q;
}

void *
xreallocarray(void *p, size_t n, size_t size)
{
	if (size && n > ((size_t)-1) / size)
		msg_panic("xreallocarray: overflow");
	return xrealloc(p, n * size);
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		msg_fatal("out of memory");
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (!p)
		msg_fatal("out of memory");
	return p;
}

int
write_full(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

ssize_t
read_full(int fd, void *p, size_t n)
{
	char *c = p;
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, c + got, n - got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int
read_fd(int fd, struct buf *b, size_t max)
{
	char tmp[8192];
	ssize_t r;

	buf_reset(b);
	for (;;) {
		r = read(fd, tmp, sizeof(tmp));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			return 0;
		if (b->len + (size_t)r > max) {
			errno = EFBIG;
			return -1;
		}
		buf_add(b, tmp, (size_t)r);
	}
}

int
read_file(const char *path, struct buf *b, size_t max)
{
	int fd, rc, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	rc = read_fd(fd, b, max);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

void
be32_put(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

struct keyed {
	const char *key;
	size_t idx;
};

static int
keyed_cmp(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	int r = strcmp(x->key, y->key);

	if (r)
		return r;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

void
strv_mark_dups(char *const *keys, size_t n, unsigned char *dup)
{
	struct keyed *k;
	size_t i;

	memset(dup, 0, n);
	if (n < 2)
		return;
	k = xcalloc(n, sizeof(*k));
	for (i = 0; i < n; i++) {
		k[i].key = keys[i];
		k[i].idx = i;
	}
	qsort(k, n, sizeof(*k), keyed_cmp);
	for (i = 1; i < n; i++)
		if (!strcmp(k[i].key, k[i - 1].key))
			dup[k[i].idx] = 1;
	free(k);
}

int
str_eq_ct(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i;
	unsigned char d = la != lb;

	for (i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

uint32_t
be32_get(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

size_t
utf8_char_len(const unsigned char *s, size_t n)
{
	unsigned cp;
	size_t len, i;

	if (n == 0 || s[0] < 0xc2 || s[0] > 0xf4)
		return 0;
	len = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
	if (n < len)
		return 0;
	cp = s[0] & (0x7f >> len);
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || cp < 0xa0)
		return 0;
	return len;
}

int
fsync_dir(const char *dir)
{
	int fd, rc, saved;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int
fsync_parent(const char *path)
{
	struct buf d = BUF_INIT;
	const char *slash = strrchr(path, '/');
	int rc;

	if (!slash)
		return fsync_dir(".");
	buf_add(&d, path, slash == path ? 1 : (size_t)(slash - path));
	rc = fsync_dir(buf_str(&d));
	buf_free(&d);
	return rc;
}

static int
write_atomic(const char *path, const void *p, size_t n, mode_t mode, int sync)
{
	struct buf tmp = BUF_INIT;
	int fd, saved;

	buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
	fd = open(buf_str(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		goto fail;
	if (write_full(fd, p, n) < 0 || (sync && fsync(fd) < 0)) {
		saved = errno;
		close(fd);
		unlink(buf_str(&tmp));
		errno = saved;
		goto fail;
	}
	if (close(fd) < 0 || rename(buf_str(&tmp), path) < 0) {
		saved = errno;
		unlink(buf_str(&tmp));
		errno = saved;
		goto fail;
	}
	buf_free(&tmp);
	return sync ? fsync_parent(path) : 0;
fail:
	saved = errno;
	buf_free(&tmp);
	errno = saved;
	return -1;
}

int
write_file_atomic(const char *path, const void *p, size_t n, mode_t mode)
{
	return write_atomic(path, p, n, mode, 1);
}

int
write_file_atomic_nosync(const char *path, const void *p, size_t n, mode_t mode)
{
	return write_atomic(path, p, n, mode, 0);
}

int
mkdir_p(const char *path, mode_t mode)
{
	char *p = xstrdup(path), *s;
	struct stat st;

	for (s = p + 1; ; s++) {
		if (*s == '/' || *s == 0) {
			char c = *s;

			*s = 0;
			if (mkdir(p, mode) < 0 && errno != EEXIST) {
				int saved = errno;

				free(p);
				errno = saved;
				return -1;
			}
			*s = c;
			if (c == 0)
				break;
		}
	}
	free(p);
	if (stat(path, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

int
set_cloexec(int fd, int on)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFD, on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC);
}

int
set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

void
close_from(int lowfd)
{
	DIR *d;
	struct dirent *de;
	long maxfd;
	int fd;

	/* /proc/self/fd lists exactly the open ones; fall back to a loop. */
	if ((d = opendir("/proc/self/fd")) != NULL) {
		int dfd = dirfd(d);
		int *fds = NULL;
		size_t n = 0, i;

		while ((de = readdir(d)) != NULL) {
			char *end;
			long v = strtol(de->d_name, &end, 10);

			if (*end || end == de->d_name || v < lowfd || v == dfd)
				continue;
			fds = xreallocarray(fds, n + 1, sizeof(*fds));
			fds[n++] = (int)v;
		}
		closedir(d);
		for (i = 0; i < n; i++)
			close(fds[i]);
		free(fds);
		return;
	}
	maxfd = sysconf(_SC_OPEN_MAX);
	if (maxfd < 0 || maxfd > 65536)
		maxfd = 65536;
	for (fd = lowfd; fd < maxfd; fd++)
		close(fd);
}

void
sane_fds(void)
{
	int fd;

	for (;;) {
		fd = open("/dev/null", O_RDWR);
		if (fd < 0)
			msg_fatal("open /dev/null: %s", strerror(errno));
		if (fd > 2) {
			close(fd);
			break;
		}
	}
}

int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
parse_ll(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (!s || !*s)
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
parse_scaled(const char *s, long long *out, const char *units, const long long *mult)
{
	char *end;
	long long v;
	const char *u;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || v < 0)
		return -1;
	if (*end) {
		if (end[1] || !(u = strchr(units, tolower((unsigned char)*end))))
			return -1;
		if (v > LLONG_MAX / mult[u - units])
			return -1;
		v *= mult[u - units];
	}
	*out = v;
	return 0;
}

int
parse_time(const char *s, long long *out)
{
	static const long long mult[] = { 1, 60, 3600, 86400, 604800 };

	return parse_scaled(s, out, "smhdw", mult);
}

int
parse_size(const char *s, long long *out)
{
	static const long long mult[] = { 1, 1024, 1048576, 1073741824LL };

	return parse_scaled(s, out, "bkmg", mult);
}

int
parse_bool(const char *s)
{
	if (!strcasecmp(s, "yes") || !strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "on"))
		return 1;
	if (!strcasecmp(s, "no") || !strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "off"))
		return 0;
	return -1;
}

char *
str_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = 0;
	return s;
}

void
str_lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

int
has_crlfnul(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == 0)
			return 1;
	return 0;
}

char **
str_split(const char *s, const char *seps)
{
	char **v = NULL;
	size_t n = 0;
	const char *p = s;

	for (;;) {
		size_t len;

		p += strspn(p, seps);
		if (!*p)
			break;
		len = strcspn(p, seps);
		v = xreallocarray(v, n + 2, sizeof(*v));
		v[n++] = xstrndup(p, len);
		p += len;
	}
	v = xreallocarray(v, n + 1, sizeof(*v));
	v[n] = NULL;
	return v;
}

void
strv_free(char **v)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

size_t
strv_len(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

void
rfc5322_date(struct buf *out, time_t t)
{
	static const char *days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *mons[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	long off;

	localtime_r(&t, &tm);
	off = tm.tm_gmtoff / 60;
	buf_printf(out, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld",
	    days[tm.tm_wday], tm.tm_mday, mons[tm.tm_mon], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+',
	    labs(off) / 60, labs(off) % 60);
}

void
release_memory(void)
{
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

void
nss_preload(const char *user)
{
	struct passwd *pw = getpwnam(user);
	gid_t g[16];
	int n = 16;

	if (pw)
		(void)getgrouplist(user, pw->pw_gid, g, &n);
	endpwent();
	endgrent();
}

uint64_t
hash_fnv1a(const void *p, size_t n)
{
	const unsigned char *c = p;
	uint64_t h = UINT64_C(14695981039346656037);

	while (n--)
		h = (h ^ *c++) * UINT64_C(1099511628211);
	return h;
}
