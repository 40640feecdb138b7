/*
 * qlist.c: render the mail queue for mailq / sendmail -bp and showq
 * (see qlist.h for both layouts).
 *
 * The spool is scanned in maildrop/ (mail not yet picked up), active/,
 * deferred/H/ and hold/; incoming/ holds files still being written and
 * corrupt/ files that are not mail, so neither is listed.  Each file is
 * read with the validating reader qf_read; one that does not parse is
 * skipped silently (it may be mid-write or just removed).  Entries are
 * sorted by arrival time, then queue ID.
 *
 * Everything printed that comes from a queue file (addresses, error
 * texts from remote servers) is hostile: the text form replaces control
 * characters, C1 controls and malformed UTF-8 with '?', the JSON form
 * escapes them, so that no escape sequence reaches a terminal or a
 * program parsing the output.
 */
#include "qlist.h"
#include "conf.h"
#include "queue_file.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct qentry {
	char id[QUEUE_ID_MAX];
	const char *queue;
	char status;
	struct qf_envelope env;
};

struct qset {
	struct qentry *v;
	size_t n, cap;
};

/* Text output: printable ASCII and good UTF-8 as is, the rest '?'. */
static void
put_text(struct buf *out, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str), i = 0, k;

	while (i < n) {
		if (s[i] >= 32 && s[i] < 127) {
			buf_addc(out, s[i]);
			i++;
		} else if (s[i] >= 0x80 && (k = utf8_char_len(s + i, n - i))) {
			buf_add(out, s + i, k);
			i += k;
		} else {
			buf_addc(out, '?');
			i++;
		}
	}
}

/* A JSON string literal; malformed UTF-8 becomes U+FFFD. */
static void
put_json(struct buf *out, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str), i = 0, k;

	buf_addc(out, '"');
	while (i < n) {
		unsigned char c = s[i];

		if (c == '"' || c == '\\') {
			buf_addc(out, '\\');
			buf_addc(out, c);
			i++;
		} else if (c < 32 || c == 127) {
			buf_printf(out, "\\u%04x", c);
			i++;
		} else if (c < 0x80) {
			buf_addc(out, c);
			i++;
		} else if ((k = utf8_char_len(s + i, n - i))) {
			buf_add(out, s + i, k);
			i += k;
		} else {
			buf_adds(out, "\\ufffd");
			i++;
		}
	}
	buf_addc(out, '"');
}

static void
load_file(struct qset *q, int dfd, const char *name, const char *queue, char status)
{
	struct buf err = BUF_INIT;
	struct qentry e;
	struct stat st;
	int fd;

	if (!queue_id_valid(name))
		return;
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return;
	}
	memset(&e, 0, sizeof(e));
	if (qf_read(fd, &e.env, &err) < 0) {
		qf_envelope_free(&e.env);
		buf_free(&err);
		close(fd);
		return;
	}
	close(fd);
	buf_free(&err);
	snprintf(e.id, sizeof(e.id), "%s", name);
	e.queue = queue;
	e.status = status;
	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 64;
		q->v = xreallocarray(q->v, q->cap, sizeof(*q->v));
	}
	q->v[q->n++] = e;
}

/* Scan one queue folder; depth 1 also scans one-character subfolders
 * (deferred/H/).  -1 with errno when the folder exists but cannot be
 * read. */
static int
scan_dir(struct qset *q, const char *qdir, const char *queue, char status, int depth)
{
	struct buf path = BUF_INIT;
	DIR *d;
	struct dirent *de;
	int dfd;

	buf_printf(&path, "%s/%s", qdir, queue);
	d = opendir(buf_str(&path));
	if (!d) {
		int saved = errno;

		buf_free(&path);
		if (saved == ENOENT)
			return 0;
		errno = saved;
		return -1;
	}
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (depth && strlen(de->d_name) == 1 &&
		    (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN)) {
			DIR *sd;
			int sfd;

			sfd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sfd < 0)
				continue;
			if (!(sd = fdopendir(sfd))) {
				close(sfd);
				continue;
			}
			{
				struct dirent *se;

				while ((se = readdir(sd)) != NULL)
					if (se->d_name[0] != '.')
						load_file(q, sfd, se->d_name, queue, status);
			}
			closedir(sd);
			continue;
		}
		load_file(q, dfd, de->d_name, queue, status);
	}
	closedir(d);
	buf_free(&path);
	return 0;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct qentry *x = a, *y = b;

	if (x->env.arrival_us != y->env.arrival_us)
		return x->env.arrival_us < y->env.arrival_us ? -1 : 1;
	return strcmp(x->id, y->id);
}

/*
 * While qmgr moves a message from active/ to deferred/ (write the new
 * file, rename it in, then unlink the old one) the same ID can briefly be
 * in both; the deferred copy is the newer complete one, as qmgr itself
 * decides at start-up.  Rank: lower wins.
 */
static int
queue_rank(const char *queue)
{
	if (!strcmp(queue, "deferred"))
		return 0;
	if (!strcmp(queue, "hold"))
		return 1;
	if (!strcmp(queue, "active"))
		return 2;
	return 3;
}

static int
id_cmp(const void *a, const void *b)
{
	const struct qentry *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	return c ? c : queue_rank(x->queue) - queue_rank(y->queue);
}

static void
dedupe(struct qset *q)
{
	size_t i, n = 0;

	if (q->n < 2)
		return;
	qsort(q->v, q->n, sizeof(*q->v), id_cmp);
	for (i = 0; i < q->n; i++) {
		if (n > 0 && !strcmp(q->v[n - 1].id, q->v[i].id)) {
			qf_envelope_free(&q->v[i].env);
			continue;
		}
		if (n != i)
			q->v[n] = q->v[i];
		n++;
	}
	q->n = n;
}

/* Mail waits this long in maildrop/ before mailq says it is not being
 * picked up (pickup takes a file within a second when it runs). */
#define STALL_SECONDS	60

/*
 * Why mail is not moving, from the master's pid/trouble (services that
 * keep failing at start-up, with the words of the process that failed;
 * mta/master.c): "service NAME cannot start since HH:MM:SS (N
 * attempts): WHY; ...", or empty.
 */
static void
trouble_read(const char *qdir, struct buf *why)
{
	struct buf path = BUF_INIT, t = BUF_INIT;
	char **lines;
	size_t i;

	buf_printf(&path, "%s/pid/trouble", qdir);
	if (read_file(buf_str(&path), &t, 65536) == 0) {
		lines = str_split(buf_str(&t), "\n");
		for (i = 0; lines[i]; i++) {
			char **f = str_split(lines[i], "\t");
			char tbuf[32];
			long long since;
			time_t tt;
			struct tm tm;

			if (f[0] && f[1] && f[2] && f[3] && parse_ll(f[1], 0, (1LL << 40), &since) == 0) {
				tt = (time_t)since;
				if (!localtime_r(&tt, &tm) || !strftime(tbuf, sizeof(tbuf), "%H:%M:%S", &tm))
					snprintf(tbuf, sizeof(tbuf), "%lld", since);
				if (why->len)
					buf_adds(why, "; ");
				buf_printf(why, "service %s cannot start since %s (%s attempts): %s",
				    f[0], tbuf, f[2], f[3]);
			}
			strv_free(f);
		}
		strv_free(lines);
	}
	buf_free(&path);
	buf_free(&t);
}

/* The reason to show for a message no recipient of which has one. */
static const char *
stall_reason(const struct qentry *e, const struct buf *trouble, struct buf *tmp)
{
	long long age = (long long)time(NULL) - (long long)(e->env.arrival_us / 1000000);
	size_t j;

	for (j = 0; j < e->env.nrcpt; j++)
		if (!e->env.rcpt[j].done && e->env.rcpt[j].defer_text)
			return NULL;
	if (strcmp(e->queue, "maildrop") && strcmp(e->queue, "active"))
		return NULL;
	buf_reset(tmp);
	if (trouble->len)
		buf_printf(tmp, "waiting: %s", buf_str(trouble));
	else if (!strcmp(e->queue, "maildrop") && age >= STALL_SECONDS)
		buf_printf(tmp, "not picked up after %lld s: is the instance running? "
		    "(hermod status, and the log)", age);
	else
		return NULL;
	return buf_str(tmp);
}

static void
render_text(struct buf *out, const struct qset *q, const struct buf *trouble)
{
	size_t i, j, width = 10, idlen;
	long long total = 0;
	struct buf tmp = BUF_INIT;

	if (trouble->len) {
		buf_adds(out, "-- Mail is not moving: ");
		put_text(out, buf_str(trouble));
		buf_adds(out, "\n");
	}
	if (q->n == 0) {
		buf_adds(out, "Mail queue is empty\nTotal requests: 0\n");
		return;
	}
	for (i = 0; i < q->n; i++)
		if ((idlen = strlen(q->v[i].id)) > width)
			width = idlen;
	buf_adds(out, "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
	for (i = 0; i < q->n; i++) {
		const struct qentry *e = &q->v[i];
		const char *last = NULL;
		char tbuf[64];
		time_t t = (time_t)(e->env.arrival_us / 1000000);
		struct tm tm;

		if (!localtime_r(&t, &tm) || !strftime(tbuf, sizeof(tbuf), "%a %b %e %H:%M:%S", &tm))
			snprintf(tbuf, sizeof(tbuf), "%lld", (long long)t);
		total += (long long)e->env.content_size;
		buf_printf(out, "%-*s%c %8lld %-19s  ", (int)width, e->id, e->status,
		    (long long)e->env.content_size, tbuf);
		put_text(out, e->env.sender && *e->env.sender ? e->env.sender : "MAILER-DAEMON");
		buf_addc(out, '\n');
		if ((last = stall_reason(e, trouble, &tmp))) {
			buf_addc(out, '(');
			put_text(out, last);
			buf_adds(out, ")\n");
			last = NULL;
		}
		for (j = 0; j < e->env.nrcpt; j++) {
			const struct qf_rcpt *r = &e->env.rcpt[j];

			if (r->done)
				continue;
			if (r->defer_text && (!last || strcmp(last, r->defer_text))) {
				buf_addc(out, '(');
				put_text(out, r->defer_text);
				buf_adds(out, ")\n");
				last = r->defer_text;
			}
			buf_printf(out, "%*s", (int)(width + 31), "");
			put_text(out, r->addr);
			buf_addc(out, '\n');
		}
		buf_addc(out, '\n');
	}
	buf_printf(out, "-- %lld Kbytes in %zu Request%s.\n", (total + 1023) / 1024,
	    q->n, q->n == 1 ? "" : "s");
	buf_printf(out, "Total requests: %zu\n", q->n);
	buf_free(&tmp);
}

static void
render_json(struct buf *out, const struct qset *q, const struct buf *trouble)
{
	struct buf tmp = BUF_INIT;
	size_t i, j;

	for (i = 0; i < q->n; i++) {
		const struct qentry *e = &q->v[i];
		const char *stall = stall_reason(e, trouble, &tmp);
		int first = 1;

		buf_adds(out, "{\"queue_name\": ");
		put_json(out, e->queue);
		buf_adds(out, ", \"queue_id\": ");
		put_json(out, e->id);
		buf_printf(out, ", \"arrival_time\": %lld, \"message_size\": %lld, "
		    "\"forced_expire\": false, \"sender\": ",
		    (long long)(e->env.arrival_us / 1000000), (long long)e->env.content_size);
		put_json(out, e->env.sender ? e->env.sender : "");
		buf_adds(out, ", \"recipients\": [");
		for (j = 0; j < e->env.nrcpt; j++) {
			const struct qf_rcpt *r = &e->env.rcpt[j];

			if (r->done)
				continue;
			buf_adds(out, first ? "{\"address\": " : ", {\"address\": ");
			first = 0;
			put_json(out, r->addr);
			if (r->defer_text || stall) {
				buf_adds(out, ", \"delay_reason\": ");
				put_json(out, r->defer_text ? r->defer_text : stall);
			}
			buf_addc(out, '}');
		}
		buf_adds(out, "]}\n");
	}
	buf_free(&tmp);
}

int
qlist_render_dir(const char *qdir, struct buf *out, int format, struct buf *err)
{
	static const struct {
		const char *name;
		char status;
		int depth;
	} queues[] = {
		{ "maildrop", ' ', 0 },
		{ "active", '*', 0 },
		{ "deferred", ' ', 1 },
		{ "hold", '!', 0 },
	};
	struct qset q = { NULL, 0, 0 };
	struct buf trouble = BUF_INIT;
	struct stat st;
	size_t i;

	if (stat(qdir, &st) < 0) {
		buf_printf(err, "queue directory %s: %s", qdir, strerror(errno));
		return -1;
	}
	for (i = 0; i < sizeof(queues) / sizeof(queues[0]); i++) {
		if (scan_dir(&q, qdir, queues[i].name, queues[i].status, queues[i].depth) < 0) {
			int saved = errno;

			buf_printf(err, "%s/%s: %s", qdir, queues[i].name, strerror(saved));
			for (i = 0; i < q.n; i++)
				qf_envelope_free(&q.v[i].env);
			free(q.v);
			errno = saved;
			return -1;
		}
	}
	dedupe(&q);
	if (q.n)
		qsort(q.v, q.n, sizeof(*q.v), entry_cmp);
	trouble_read(qdir, &trouble);
	if (format == QLIST_JSON)
		render_json(out, &q, &trouble);
	else
		render_text(out, &q, &trouble);
	buf_free(&trouble);
	for (i = 0; i < q.n; i++)
		qf_envelope_free(&q.v[i].env);
	free(q.v);
	return 0;
}

int
qlist_render(struct buf *out, int format, struct buf *err)
{
	return qlist_render_dir(conf_str("queue_directory"), out, format, err);
}
