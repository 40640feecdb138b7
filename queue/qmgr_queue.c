/*
 * qmgr_queue.c: messages in qmgr's memory and what happens to their
 * files (see qmgr.h and doc/queue.md).
 *
 * Invariants, which make every crash safe:
 * - A file in active/ is complete (it got there by rename after fsync).
 *   qmgr only reads it, overwrites the type byte of a finished recipient
 *   (QREC_RCPT -> QREC_RCPT_DONE), and finally unlinks it or replaces it
 *   by a complete, fsynced file in deferred/.
 * - A recipient is marked done only after its delivery is durable (the
 *   agent says "sent" only after fsync), or after the bounce that
 *   reports it is safely in the queue, or when it needs no report.
 * - A deferred message is written anew (only the recipients not done,
 *   with their last error and the retry schedule) to incoming/ID.d,
 *   fsynced, renamed to deferred/H/ID, deferred/H/ is fsynced, and only
 *   then is active/ID removed.  If qmgr dies in between, both copies
 *   exist; at start the one in deferred/ wins.
 * - The retry time of a deferred file is also its mtime, so the queue
 *   run only needs stat() to find the messages that are due.
 * - Any failure leaves the file in active/ or deferred/, where a rescan
 *   finds it again: a message is never dropped by an error path.
 */
#include "qmgr.h"
#include "bounce.h"
#include "conf.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HSIZE		65536
#define LOAD_LATER_MAX	100000
#define HEAP_MAX	100000
#define STALE_INCOMING	86400

static struct qmsg *htab[HSIZE];
static size_t nactive, active_limit;

static long long min_backoff, max_backoff, lifetime, bounce_lifetime, delay_warning;
static size_t bounce_limit;
static const char *hostname, *mail_name, *double_bounce;

/* IDs to load at the next turn of the loop. */
static char (*later)[QUEUE_ID_MAX];
static size_t nlater, later_cap;

/* Retry schedule: a binary min-heap on the due time. */
struct retry {
	int64_t due;
	char id[QUEUE_ID_MAX];
};
static struct retry *heap;
static size_t nheap, heap_cap;

static unsigned
hash(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % HSIZE;
}

void
qmgr_queue_init(void)
{
	struct rlimit rl;
	long long v;

	min_backoff = conf_time("minimal_backoff_time");
	max_backoff = conf_time("maximal_backoff_time");
	if (min_backoff < 1)
		min_backoff = 1;
	if (max_backoff < min_backoff)
		max_backoff = min_backoff;
	lifetime = conf_time("maximal_queue_lifetime");
	bounce_lifetime = conf_time("bounce_queue_lifetime");
	delay_warning = conf_time("delay_warning_time");
	bounce_limit = (size_t)conf_size("bounce_size_limit");
	hostname = conf_str("myhostname");
	mail_name = conf_str("mail_name");
	double_bounce = conf_str("double_bounce_sender");

	/* Every message in memory holds its file open, so the open file
	 * limit bounds qmgr_message_active_limit.  The default (20000) is
	 * above most systems' limits: that is expected, not a problem, so
	 * it is said once, at start, as information (doc/qmgr.8). */
	v = conf_int("qmgr_message_active_limit");
	active_limit = v > 0 ? (size_t)v : 1;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		msg_warn("getrlimit RLIMIT_NOFILE: %s", strerror(errno));
		return;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit raised = rl;

		raised.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
			rl = raised;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < active_limit + 200) {
		size_t lim = rl.rlim_cur > 300 ? (size_t)rl.rlim_cur - 200 : 100;

		msg_info("at most %zu messages in memory (qmgr_message_active_limit %zu; open file limit %llu)",
		    lim, active_limit, (unsigned long long)rl.rlim_cur);
		active_limit = lim;
	}
}

size_t
qmgr_active_count(void)
{
	return nactive;
}

size_t
qmgr_active_limit(void)
{
	return active_limit;
}

struct qmsg *
qmgr_find(const char *id)
{
	struct qmsg *m;

	for (m = htab[hash(id)]; m; m = m->hnext)
		if (!strcmp(m->id, id))
			return m;
	return NULL;
}

static void
msg_forget(struct qmsg *m)
{
	struct qmsg **pp;
	size_t i;

	for (pp = &htab[hash(m->id)]; *pp; pp = &(*pp)->hnext)
		if (*pp == m) {
			*pp = m->hnext;
			break;
		}
	if (m->fd >= 0)
		close(m->fd);
	for (i = 0; i < m->env.nrcpt; i++)
		free(m->rs[i].text);
	free(m->rs);
	for (i = 0; i < m->ndelivered; i++)
		free(m->delivered[i]);
	free(m->delivered);
	qf_envelope_free(&m->env);
	free(m);
	nactive--;
}

static void
to_corrupt(const char *from, const char *id, const char *why)
{
	struct buf to = BUF_INIT;

	queue_path(&to, "corrupt", id);
	if (rename(from, buf_str(&to)) < 0)
		msg_error("%s: %s; cannot move %s to %s: %s", id, why, from, buf_str(&to), strerror(errno));
	else
		msg_warn("%s: %s; moved to %s", id, why, buf_str(&to));
	buf_free(&to);
}

int
qmgr_load(const char *id)
{
	struct buf path = BUF_INIT, err = BUF_INIT;
	struct qmsg *m;
	int fd;

	if (qmgr_find(id))
		return 0;
	if (nactive >= active_limit) {
		qmgr_want_rescan();
		return -1;
	}
	queue_path(&path, "active", id);
	fd = open(buf_str(&path), O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ELOOP)
			to_corrupt(buf_str(&path), id, "symbolic link in active/");
		else if (errno != ENOENT)
			msg_error("open %s: %s", buf_str(&path), strerror(errno));
		buf_free(&path);
		return 0;
	}
	m = xcalloc(1, sizeof(*m));
	if (qf_read(fd, &m->env, &err) < 0) {
		if (errno == EBADMSG)
			to_corrupt(buf_str(&path), id, buf_str(&err));
		else
			msg_error("%s: read %s: %s", id, buf_str(&path), buf_str(&err));
		close(fd);
		free(m);
		buf_free(&path);
		buf_free(&err);
		return 0;
	}
	buf_free(&path);
	buf_free(&err);
	snprintf(m->id, sizeof(m->id), "%s", id);
	m->fd = fd;
	m->rs = xcalloc(m->env.nrcpt, sizeof(*m->rs));
	m->hnext = htab[hash(id)];
	htab[hash(id)] = m;
	nactive++;
	/* The extra count keeps the message alive while it is routed. */
	m->outstanding = 1;
	qmgr_route(m);
	qmgr_request_done(m);
	return 0;
}

void
qmgr_load_later(const char *id)
{
	if (nlater >= LOAD_LATER_MAX) {
		qmgr_want_rescan();
		return;
	}
	if (nlater == later_cap) {
		later_cap = later_cap ? 2 * later_cap : 64;
		later = xreallocarray(later, later_cap, sizeof(*later));
	}
	snprintf(later[nlater++], QUEUE_ID_MAX, "%s", id);
}

void
qmgr_load_pending(void)
{
	char id[QUEUE_ID_MAX];
	size_t i;

	/* Loading may queue more (the notices it sends): nlater grows while
	 * this runs, and the array may move, so copy each ID first. */
	for (i = 0; i < nlater; i++) {
		memcpy(id, later[i], QUEUE_ID_MAX);
		if (qmgr_load(id) < 0)
			break;	/* full: the rescan will find the rest */
	}
	nlater = 0;
}

/* Printable text for logs, notices and defer records. */
static char *
clean_text(const char *s)
{
	struct buf b = BUF_INIT;
	size_t i;

	for (i = 0; s[i] && i < QMGR_TEXT_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		buf_addc(&b, c < 0x20 || c == 0x7f ? ' ' : c);
	}
	return buf_steal(&b);
}

static void
delay_str(char *out, size_t n, const struct qmsg *m)
{
	int64_t d = now_us() - m->env.arrival_us;

	if (d < 0)
		d = 0;
	snprintf(out, n, "%" PRId64 ".%02d", d / 1000000, (int)(d % 1000000 / 10000));
}

static void
mark_done(struct qmsg *m, size_t i)
{
	if (m->rs[i].marked || m->env.rcpt[i].done)
		return;
	if (qf_mark_done(m->fd, m->env.rcpt[i].offset) < 0) {
		/* the file says not done: a later attempt may duplicate it */
		msg_error("%s: mark recipient <%s> done: %s", m->id, m->env.rcpt[i].addr, strerror(errno));
		return;
	}
	m->rs[i].marked = 1;
	m->dirty = 1;
}

void
qmgr_rcpt_result(struct qmsg *m, size_t i, int result, const char *dsn,
    const char *text, const char *relay)
{
	struct rstate *r = &m->rs[i];
	char delay[32];
	static const char *words[] = { "pending", "sent", "deferred", "bounced" };

	free(r->text);
	r->text = clean_text(text);
	r->result = (unsigned char)result;
	snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
	r->relay = relay;
	r->when = time(NULL);
	r->relayed = result == RS_SENT && !strncmp(r->text, "relayed: ", 9);
	delay_str(delay, sizeof(delay), m);
	msg_info("%s: to=<%s>, relay=%s, delay=%s, dsn=%s, status=%s (%s)", m->id,
	    m->env.rcpt[i].addr, relay, delay, r->dsn, words[result], r->text);
	/* Delivered and nothing to report: done now.  Everything else is
	 * marked in qmgr_finish, after its notice is safe. */
	if (result == RS_SENT && (r->dup || !(m->env.rcpt[i].notify & DSN_NOTIFY_SUCCESS)))
		mark_done(m, i);
}

void
qmgr_delivered(struct qmsg *m, const char *digest)
{
	if (m->ndelivered >= QF_DELIVERED_MAX) {
		if (!m->delivered_full)
			msg_info("%s: more than %d destinations delivered: if it is retried, "
			    "the others may get a second copy", m->id, QF_DELIVERED_MAX);
		m->delivered_full = 1;
		return;
	}
	m->delivered = xreallocarray(m->delivered, m->ndelivered + 1, sizeof(char *));
	m->delivered[m->ndelivered++] = xstrdup(digest);
}

/*
 * The destinations delivered so far, for the deferred file: those the
 * file had (copied with the other attributes) and those reported in
 * this attempt, each once, within QF_DELIVERED_MAX and QF_MAX_ATTR.
 */
static void
put_delivered(struct qf_writer *w, struct qmsg *m)
{
	size_t nattr = strv_len(m->env.attrs), nold = 0, n, i, k;
	size_t plen = strlen(QF_ATTR_DELIVERED);
	char **keys;
	unsigned char *dup;
	struct buf b = BUF_INIT;

	if (!m->ndelivered)
		return;
	keys = xcalloc(nattr + m->ndelivered, sizeof(char *));
	for (i = 0; i < nattr; i++)
		if (!strncmp(m->env.attrs[i], QF_ATTR_DELIVERED, plen))
			keys[nold++] = m->env.attrs[i] + plen;
	for (i = 0; i < m->ndelivered; i++)
		keys[nold + i] = m->delivered[i];
	n = nold + m->ndelivered;
	dup = xcalloc(n, 1);
	strv_mark_dups(keys, n, dup);
	for (i = nold, k = nold; i < n && k < QF_DELIVERED_MAX && nattr < QF_MAX_ATTR; i++) {
		if (dup[i])
			continue;
		buf_reset(&b);
		buf_printf(&b, "%s%s", QF_ATTR_DELIVERED, keys[i]);
		qf_put_str(w, QREC_ATTR, buf_str(&b));
		k++;
		nattr++;
	}
	buf_free(&b);
	free(dup);
	free(keys);
}

static int
is_double_bounce(const char *addr)
{
	size_t n = strlen(double_bounce);

	return !strncasecmp(addr, double_bounce, n) && (addr[n] == 0 || addr[n] == '@');
}

/*
 * Send a notice about the recipients in idx to the sender.  0 when it
 * is safely queued, -1 (logged) when not.
 */
static int
notice(struct qmsg *m, enum bounce_action action, const size_t *idx, size_t n, int64_t retry_until)
{
	struct bounce_rcpt *br = xcalloc(n, sizeof(*br));
	struct bounce_msg b;
	struct buf content = BUF_INIT;
	char id[QUEUE_ID_MAX];
	size_t k;
	int rc = -1;
	static const char *what[] = {
		"sender non-delivery notification",
		"sender delay notification",
		"sender delivery status notification",
		"sender relay notification",
	};

	for (k = 0; k < n; k++) {
		const struct rstate *r = &m->rs[idx[k]];

		br[k].addr = m->env.rcpt[idx[k]].addr;
		br[k].orcpt = m->env.rcpt[idx[k]].orcpt;
		br[k].dsn = r->dsn;
		br[k].text = r->text ? r->text : "";
		br[k].last_attempt = r->when;
	}
	if (bounce_read_content(m->fd, &m->env, bounce_limit, &content) < 0) {
		msg_error("%s: read content for the %s: %s", m->id, what[action], strerror(errno));
		goto out;
	}
	memset(&b, 0, sizeof(b));
	b.action = action;
	b.queue_id = m->id;
	b.sender = m->env.sender;
	b.envid = m->env.envid;
	b.ret_hdrs = m->env.ret && !strcmp(m->env.ret, "HDRS");
	b.arrival_us = m->env.arrival_us;
	b.now = time(NULL);
	b.retry_until = retry_until;
	b.hostname = hostname;
	b.mail_name = mail_name;
	b.rcpt = br;
	b.nrcpt = n;
	b.content = content.data;
	b.content_len = content.len;
	b.content_size = m->env.content_size;
	b.size_limit = bounce_limit;
	if (bounce_queue(&b, id) < 0)
		goto out;
	msg_info("%s: %s: %s", m->id, what[action], id);
	qmgr_load_later(id);
	rc = 0;
out:
	buf_free(&content);
	free(br);
	return rc;
}

static int
copy_cb(void *ctx, const char *p, size_t n)
{
	struct qf_writer *w = ctx;

	qf_content_write(w, p, n);
	return w->error ? -1 : 0;
}

/* Retry schedule. */
static void
heap_push(int64_t due, const char *id)
{
	size_t i;

	if (nheap >= HEAP_MAX)
		return;		/* the queue runs will find it */
	if (nheap == heap_cap) {
		heap_cap = heap_cap ? 2 * heap_cap : 64;
		heap = xreallocarray(heap, heap_cap, sizeof(*heap));
	}
	i = nheap++;
	while (i > 0 && heap[(i - 1) / 2].due > due) {
		heap[i] = heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	heap[i].due = due;
	snprintf(heap[i].id, QUEUE_ID_MAX, "%s", id);
}

static void
heap_pop(void)
{
	struct retry last;
	size_t i = 0;

	if (nheap == 0)
		return;
	last = heap[--nheap];
	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= nheap)
			break;
		if (c + 1 < nheap && heap[c + 1].due < heap[c].due)
			c++;
		if (heap[c].due >= last.due)
			break;
		heap[i] = heap[c];
		i = c;
	}
	if (nheap)
		heap[i] = last;
}

int64_t
qmgr_next_retry(void)
{
	return nheap ? heap[0].due : 0;
}

/*
 * Replace active/ID by deferred/H/ID holding the recipients that are
 * still to be delivered.  0 ok, -1 (logged) when active/ID stays.
 */
static int
defer_message(struct qmsg *m, int attempts, int64_t next, int warned, int held)
{
	struct buf tmp = BUF_INIT, dst = BUF_INIT, dir = BUF_INIT;
	struct qf_writer w;
	struct timespec ts[2];
	size_t i, k;
	int fd, rc = -1;

	buf_printf(&tmp, "incoming/%s.d", m->id);
	queue_path(&dst, held ? "hold" : "deferred", m->id);
	buf_add(&dir, dst.data, (size_t)(strrchr(dst.data, '/') - dst.data));
	fd = open(buf_str(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		msg_error("%s: create %s: %s", m->id, buf_str(&tmp), strerror(errno));
		goto out;
	}
	qf_writer_init(&w, fd);
	qf_put_time(&w, m->env.arrival_us);
	qf_put_str(&w, QREC_SENDER, m->env.sender);
	if (m->env.fullname)
		qf_put_str(&w, QREC_FULLNAME, m->env.fullname);
	if (m->env.client)
		qf_put_str(&w, QREC_CLIENT, m->env.client);
	if (m->env.envid)
		qf_put_str(&w, QREC_ENVID, m->env.envid);
	if (m->env.ret)
		qf_put_str(&w, QREC_RET, m->env.ret);
	for (k = 0; m->env.attrs && m->env.attrs[k]; k++)
		qf_put_str(&w, QREC_ATTR, m->env.attrs[k]);
	put_delivered(&w, m);
	for (i = 0; i < m->env.nrcpt; i++) {
		const struct qf_rcpt *r = &m->env.rcpt[i];
		off_t off;

		if (m->rs[i].result != RS_DEFERRED || r->done)
			continue;
		off = qf_tell(&w);
		qf_put_rcpt(&w, r->addr, r->orcpt, r->notify);
		qf_put_defer(&w, off, m->rs[i].dsn, m->rs[i].text ? m->rs[i].text : "");
	}
	qf_put_retry(&w, attempts, next);
	if (warned)
		qf_put(&w, QREC_WARNED, "", 0);
	qf_content_start(&w);
	if (qf_content(m->fd, &m->env, copy_cb, &w) != 0 && !w.error)
		w.error = errno ? errno : EIO;
	if (qf_finish(&w) < 0) {
		msg_error("%s: write %s: %s", m->id, buf_str(&tmp), strerror(errno));
		qf_writer_free(&w);
		close(fd);
		unlink(buf_str(&tmp));
		goto out;
	}
	qf_writer_free(&w);
	ts[0].tv_sec = ts[1].tv_sec = (time_t)next;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	if (futimens(fd, ts) < 0)
		msg_warn("%s: set retry time on %s: %s", m->id, buf_str(&tmp), strerror(errno));
	if (fsync(fd) < 0 || close(fd) < 0) {
		msg_error("%s: fsync %s: %s", m->id, buf_str(&tmp), strerror(errno));
		unlink(buf_str(&tmp));
		goto out;
	}
	if (rename(buf_str(&tmp), buf_str(&dst)) < 0) {
		if (errno != ENOENT || (mkdir(buf_str(&dir), 0700) < 0 && errno != EEXIST) ||
		    rename(buf_str(&tmp), buf_str(&dst)) < 0) {
			msg_error("%s: rename %s to %s: %s", m->id, buf_str(&tmp), buf_str(&dst), strerror(errno));
			unlink(buf_str(&tmp));
			goto out;
		}
		/* a new hash folder: make its entry in deferred/ durable too */
		(void)fsync_dir("deferred");
	}
	if (held) {
		/* it replaced the held file, which was active/ID renamed */
		if (fsync_dir("hold") < 0)
			msg_error("%s: fsync hold/: %s", m->id, strerror(errno));
		rc = 0;
		goto out;
	}
	if (fsync_dir(buf_str(&dir)) < 0) {
		/* not known to be durable: keep active/ID as well (the next
		 * start prefers deferred/, so this costs nothing) */
		msg_error("%s: fsync %s: %s", m->id, buf_str(&dir), strerror(errno));
		goto out;
	}
	buf_reset(&tmp);
	queue_path(&tmp, "active", m->id);
	if (unlink(buf_str(&tmp)) < 0)
		msg_error("%s: unlink %s: %s", m->id, buf_str(&tmp), strerror(errno));
	heap_push(next, m->id);
	rc = 0;
out:
	buf_free(&tmp);
	buf_free(&dst);
	buf_free(&dir);
	return rc;
}

static int
wants_failure_notice(unsigned notify)
{
	return !(notify & DSN_NOTIFY_NEVER) && (notify == 0 || (notify & DSN_NOTIFY_FAILURE));
}

/*
 * Where the file of m is now: an administrator may have renamed active/ID
 * to hold/ID ("hermod queue hold") or removed it ("hermod queue delete")
 * while it was being delivered.  0 still in active/, 1 in hold/ (the
 * same file), 2 gone.
 */
#define FILE_ACTIVE	0
#define FILE_HELD	1
#define FILE_GONE	2
static int
file_state(struct qmsg *m)
{
	struct stat mine, st;
	struct buf p = BUF_INIT;
	int rc = FILE_ACTIVE;

	if (fstat(m->fd, &mine) < 0)
		return FILE_ACTIVE;
	queue_path(&p, "active", m->id);
	if (stat(buf_str(&p), &st) == 0 && st.st_ino == mine.st_ino && st.st_dev == mine.st_dev)
		goto out;
	if (mine.st_nlink == 0) {
		rc = FILE_GONE;
		goto out;
	}
	buf_reset(&p);
	queue_path(&p, "hold", m->id);
	if (stat(buf_str(&p), &st) == 0 && st.st_ino == mine.st_ino && st.st_dev == mine.st_dev)
		rc = FILE_HELD;
	else
		rc = FILE_GONE;	/* moved elsewhere: no longer ours */
out:
	buf_free(&p);
	return rc;
}

/* The last request of m is finished: report, then remove or defer. */
static void
qmgr_finish(struct qmsg *m)
{
	size_t n = m->env.nrcpt, i, nidx, ndefer = 0, nleft = 0;
	size_t *idx = xcalloc(n ? n : 1, sizeof(*idx));
	int64_t now = time(NULL), age = now - m->env.arrival_us / 1000000;
	long long life = *m->env.sender ? lifetime : bounce_lifetime;
	int can_notify = *m->env.sender && !is_double_bounce(m->env.sender);
	int warned = m->env.warned;
	int where = file_state(m);
	struct buf path = BUF_INIT;

	if (where == FILE_GONE) {
		msg_info("%s: removed from active/ during delivery; forgotten", m->id);
		free(idx);
		msg_forget(m);
		return;
	}
	for (i = 0; i < n; i++)
		if (m->rs[i].result == RS_DEFERRED)
			ndefer++;

	/* Expired: what is still deferred fails now (RFC 3463 4.4.7). */
	if (ndefer && age >= life) {
		for (i = 0; i < n; i++) {
			struct rstate *r = &m->rs[i];
			struct buf t = BUF_INIT;

			if (r->result != RS_DEFERRED)
				continue;
			buf_printf(&t, "message expired after %lld days in the queue; last error: %s",
			    (long long)(age / 86400), r->text ? r->text : "");
			free(r->text);
			r->text = clean_text(buf_str(&t));
			buf_free(&t);
			snprintf(r->dsn, sizeof(r->dsn), "4.4.7");
			r->result = RS_BOUNCED;
		}
		msg_info("%s: from=<%s>, status=expired, %s", m->id, m->env.sender,
		    can_notify ? "returned to sender" : "discarded");
		ndefer = 0;
	}

	/* Failure notice (not for mail from <>: no bounce of a bounce). */
	for (nidx = 0, i = 0; i < n; i++)
		if (m->rs[i].result == RS_BOUNCED && wants_failure_notice(m->env.rcpt[i].notify))
			idx[nidx++] = i;
	if (nidx && !can_notify)
		msg_info("%s: undeliverable mail from <%s> discarded: no notice about a notice",
		    m->id, m->env.sender);
	else if (nidx && notice(m, BOUNCE_FAILED, idx, nidx, 0) < 0) {
		/* keep them: they are tried again and bounce again later */
		for (i = 0; i < nidx; i++) {
			m->rs[idx[i]].result = RS_DEFERRED;
			snprintf(m->rs[idx[i]].dsn, sizeof(m->rs[idx[i]].dsn), "4.3.0");
		}
		ndefer += nidx;
	}

	/* Success notices (best effort: the mail itself is delivered):
	 * "delivered" for local delivery; "relayed" when the smtp agent
	 * handed it to a next hop without DSN (RFC 3461 section 6.2.3.3).
	 * A next hop that took NOTIFY along reports for itself. */
	for (nidx = 0, i = 0; i < n; i++)
		if (m->rs[i].result == RS_SENT && !m->rs[i].relayed && !m->rs[i].dup &&
		    !(m->rs[i].relay && !strcmp(m->rs[i].relay, "smtp")) &&
		    (m->env.rcpt[i].notify & DSN_NOTIFY_SUCCESS))
			idx[nidx++] = i;
	if (nidx && can_notify)
		(void)notice(m, BOUNCE_DELIVERED, idx, nidx, 0);
	for (nidx = 0, i = 0; i < n; i++)
		if (m->rs[i].result == RS_SENT && m->rs[i].relayed && !m->rs[i].dup &&
		    (m->env.rcpt[i].notify & DSN_NOTIFY_SUCCESS))
			idx[nidx++] = i;
	if (nidx && can_notify)
		(void)notice(m, BOUNCE_RELAYED, idx, nidx, 0);

	/* Mark what is finished. */
	for (i = 0; i < n; i++)
		if (m->rs[i].result == RS_SENT || m->rs[i].result == RS_BOUNCED)
			mark_done(m, i);
		else if (!m->env.rcpt[i].done && m->rs[i].result == RS_PENDING)
			nleft++;	/* cannot happen: every recipient was routed */

	if (ndefer == 0 && nleft == 0) {
		queue_path(&path, where == FILE_HELD ? "hold" : "active", m->id);
		if (unlink(buf_str(&path)) < 0 && errno != ENOENT) {
			msg_error("%s: unlink %s: %s", m->id, buf_str(&path), strerror(errno));
			if (m->dirty)
				(void)fsync(m->fd);
		} else
			msg_info("%s: removed", m->id);
	} else {
		int attempts = m->env.attempts + 1;
		int64_t backoff = min_backoff, next;

		for (i = 1; i < (size_t)attempts && backoff < max_backoff; i++)
			backoff *= 2;
		if (backoff > max_backoff)
			backoff = max_backoff;
		next = now + backoff;

		/* One delay warning per message. */
		if (delay_warning > 0 && !warned && age >= delay_warning && can_notify) {
			for (nidx = 0, i = 0; i < n; i++) {
				unsigned nf = m->env.rcpt[i].notify;

				if (m->rs[i].result == RS_DEFERRED && !(nf & DSN_NOTIFY_NEVER) &&
				    (nf == 0 || (nf & DSN_NOTIFY_DELAY)))
					idx[nidx++] = i;
			}
			if (nidx == 0 || notice(m, BOUNCE_DELAYED, idx, nidx,
			    m->env.arrival_us / 1000000 + life) == 0)
				warned = 1;
		}
		if (where == FILE_HELD) {
			if (defer_message(m, attempts, next, warned, 1) < 0 && m->dirty)
				(void)fsync(m->fd);
			msg_info("%s: on hold", m->id);
		} else if (defer_message(m, attempts, next, warned, 0) < 0) {
			/* active/ID stays; make the done marks durable, and let
			 * the next rescan of active/ try it again */
			if (m->dirty && fsync(m->fd) < 0)
				msg_error("%s: fsync: %s", m->id, strerror(errno));
		}
	}
	buf_free(&path);
	free(idx);
	msg_forget(m);
}

void
qmgr_request_done(struct qmsg *m)
{
	if (--m->outstanding > 0) {
		/* more to come: make the marks so far durable */
		if (m->dirty) {
			if (fsync(m->fd) < 0)
				msg_error("%s: fsync: %s", m->id, strerror(errno));
			m->dirty = 0;
		}
		return;
	}
	qmgr_finish(m);
}

/* Move deferred/H/ID back to active/ and start it. */
static int
move_deferred(const char *id)
{
	struct buf from = BUF_INIT, to = BUF_INIT;
	int rc = 0;

	if (qmgr_find(id))
		return 0;
	if (qmgr_active_count() >= active_limit)
		return -1;
	queue_path(&from, "deferred", id);
	queue_path(&to, "active", id);
	if (rename(buf_str(&from), buf_str(&to)) < 0) {
		if (errno != ENOENT)
			msg_error("%s: rename %s to %s: %s", id, buf_str(&from), buf_str(&to), strerror(errno));
	} else
		rc = qmgr_load(id);
	buf_free(&from);
	buf_free(&to);
	return rc;
}

void
qmgr_run_retries(void)
{
	int64_t now = time(NULL);

	while (nheap && heap[0].due <= now) {
		char id[QUEUE_ID_MAX];

		memcpy(id, heap[0].id, QUEUE_ID_MAX);
		heap_pop();
		if (move_deferred(id) < 0)
			break;	/* full: the queue run will find it */
	}
}

void
qmgr_scan_deferred(const char *id, int due_only)
{
	DIR *d, *sd;
	struct dirent *de, *se;
	time_t now = time(NULL);

	if (id) {
		if (queue_id_valid(id))
			(void)move_deferred(id);
		return;
	}
	if ((d = opendir("deferred")) == NULL) {
		msg_error("open deferred/: %s", strerror(errno));
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || de->d_name[1] != 0)
			continue;
		int sfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (sfd < 0)
			continue;
		if ((sd = fdopendir(sfd)) == NULL) {
			close(sfd);
			continue;
		}
		while ((se = readdir(sd)) != NULL) {
			struct stat st;

			if (!queue_id_valid(se->d_name))
				continue;
			if (due_only && (fstatat(dirfd(sd), se->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    st.st_mtime > now))
				continue;
			if (move_deferred(se->d_name) < 0)
				break;
		}
		closedir(sd);
		if (nactive >= active_limit)
			break;
	}
	closedir(d);
}

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
qmgr_scan_active(int startup)
{
	DIR *d = opendir("active");
	struct dirent *de;
	char **ids = NULL;
	size_t n = 0, cap = 0, i;
	struct buf p = BUF_INIT;
	struct stat st;

	if (!d) {
		msg_error("open active/: %s", strerror(errno));
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (!queue_id_valid(de->d_name)) {
			if (startup && de->d_name[0] != '.')
				msg_warn("active/%s: not a queue file name; ignored", de->d_name);
			continue;
		}
		if (qmgr_find(de->d_name))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			ids = xreallocarray(ids, cap, sizeof(*ids));
		}
		ids[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n)
		qsort(ids, n, sizeof(*ids), cmp_id);
	for (i = 0; i < n; i++) {
		if (startup) {
			/* deferred/ and active/: the deferral did not finish
			 * removing the active copy, and deferred/ is newer */
			buf_reset(&p);
			queue_path(&p, "deferred", ids[i]);
			if (stat(buf_str(&p), &st) == 0) {
				buf_reset(&p);
				queue_path(&p, "active", ids[i]);
				if (unlink(buf_str(&p)) == 0)
					msg_info("%s: removed the old copy in active/ (deferred/ has the current one)", ids[i]);
				continue;
			}
		}
		if (qmgr_load(ids[i]) < 0)
			break;
	}
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	buf_free(&p);
}

void
qmgr_scan_incoming(void)
{
	DIR *d = opendir("incoming");
	struct dirent *de;
	time_t now = time(NULL);

	if (!d) {
		msg_error("open incoming/: %s", strerror(errno));
		return;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    now - st.st_mtime < STALE_INCOMING || S_ISDIR(st.st_mode))
			continue;
		/* never committed, so never acknowledged: nobody waits for it */
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			msg_info("incoming/%s: removed a stale unfinished file", de->d_name);
	}
	closedir(d);
}
