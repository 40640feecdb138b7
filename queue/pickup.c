/*
 * pickup: move messages from maildrop/ into the queue.
 *
 * Files in maildrop/ were written by sendmail or postdrop on behalf of a
 * local user and are hostile input.  For each one pickup opens it without
 * following links, requires a regular file with one link (a second link
 * is given a minute: sendmail may be between link() and unlink() of its
 * temporary name; a hard link to another user's file never goes), takes the
 * submitting user from the file's owner (never from its content), reads
 * it with the validating queue file reader, checks every address and the
 * limits, and writes a fresh queue file with a Received: header in
 * front of the content.  The new file is committed (incoming/, fsync,
 * rename to active/, fsync active/) before the maildrop file is removed,
 * so a crash at any point leaves the message in maildrop/, in active/,
 * or (briefly) in both: never in neither.  qmgr is then told the new
 * queue ID; if it does not hear, its rescan finds the file.
 *
 * pickup is a single process (process limit 1).  It serves the
 * public/pickup socket, which every local user may reach, with its own
 * poll loop: a client gets a few seconds and a few bytes to send one
 * PROTO_PICKUP_WAKE and is dropped on anything else; nothing a client
 * sends can stop the daemon.  Wake-ups that arrive together are handled
 * as one batch whose new queue files share a single fsync of active/.
 * maildrop/ is also scanned at start and every PICKUP_SCAN seconds.
 *
 * Decisions (doc/pickup.8): a file that is not a valid queue file, has an
 * invalid sender, or is not a plain file goes to corrupt/ with a warning.
 * Invalid recipient addresses, more recipients than recipient_limit and
 * content over message_size_limit are returned to the sender as a DSN
 * (5.1.3, 5.5.3, 5.3.4), as Postfix's cleanup does.
 */
#include "addr.h"
#include "bounce.h"
#include "conf.h"
#include "proto.h"
#include "queue_file.h"
#include "service.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PICKUP_SCAN		5	/* seconds between scans of maildrop/ */
#define PICKUP_STALE		86400	/* t.* files older than this are removed */
#define MAX_CLIENTS		64	/* connections served at once */
#define CLIENT_TIMEOUT_MS	5000
#define CLIENT_BUF_MAX		1024	/* bytes buffered from one client */
#define BATCH_MAX		64	/* files committed together */
#define NAME_MAX_LEN		100
#define LINK_GRACE		60	/* seconds a file with two links may wait */
#define REFUSE_LOG_MAX		10	/* recipients logged one by one */

struct client {
	int fd;
	int64_t deadline;
	struct buf in;
};

static struct client clients[MAX_CLIENTS];
static size_t nclients;

/* Names waiting to be processed (deduplicated), and whether to scan. */
static char *pending[BATCH_MAX];
static size_t npending;
static int scan_wanted;

/* The prepared queue files of the current batch, and what to log. */
struct prepared {
	char *name;		/* maildrop file */
	char *sender;
	uid_t uid;
	size_t nrcpt;
	off_t size;
};

static struct qf_new batchq[BATCH_MAX];
static struct prepared batch[BATCH_MAX];
static size_t nbatch;

static const char *hostname;

/* A maildrop name we are willing to touch: plain, short, harmless. */
static int
name_ok(const char *s)
{
	size_t i;

	if (!*s || *s == '.' || strlen(s) > NAME_MAX_LEN)
		return 0;
	for (i = 0; s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

static void
want_name(const char *name)
{
	size_t i;

	for (i = 0; i < npending; i++)
		if (!strcmp(pending[i], name))
			return;
	if (npending >= BATCH_MAX) {
		scan_wanted = 1;
		return;
	}
	pending[npending++] = xstrdup(name);
}

/* Move a bad maildrop file to corrupt/ (never overwriting). */
static void
to_corrupt(const char *name, const char *why)
{
	struct buf from = BUF_INIT, to = BUF_INIT;

	buf_printf(&from, "maildrop/%s", name);
	buf_printf(&to, "corrupt/%s", name);
	if (renameat2(AT_FDCWD, buf_str(&from), AT_FDCWD, buf_str(&to), RENAME_NOREPLACE) < 0) {
		char id[QUEUE_ID_MAX];

		queue_id_new(id, 0);
		buf_reset(&to);
		buf_printf(&to, "corrupt/%s.%s", name, id);
		if (rename(buf_str(&from), buf_str(&to)) < 0) {
			msg_error("maildrop/%s: %s; cannot move it to corrupt/: %s",
			    name, why, strerror(errno));
			goto out;
		}
	}
	msg_warn("maildrop/%s: %s; moved to %s", name, why, buf_str(&to));
out:
	buf_free(&from);
	buf_free(&to);
}

static const char *
user_name(uid_t uid)
{
	static uid_t last = (uid_t)-1;
	static char *name;
	struct passwd *pw;

	if (uid == last)
		return name;
	free(name);
	name = NULL;
	if ((pw = getpwuid(uid)) != NULL && pw->pw_name &&
	    !has_crlfnul(pw->pw_name, strlen(pw->pw_name)) && strlen(pw->pw_name) < 64 &&
	    !strchr(pw->pw_name, ' '))
		name = xstrdup(pw->pw_name);
	last = uid;
	return name;
}

/* Tell qmgr (socket path relative to the queue directory, our cwd). */
static void
notify_qmgr(const char *id)
{
	int fd = proto_connect("private/qmgr");

	if (fd < 0)
		return;		/* qmgr's rescan will find it */
	(void)proto_send_strs(fd, PROTO_QMGR_NEW, id, (const char *)NULL);
	close(fd);
}

static int
copy_cb(void *ctx, const char *p, size_t n)
{
	qf_content_write(ctx, p, n);
	return ((struct qf_writer *)ctx)->error ? -1 : 0;
}

/* Return some recipients (or all) of a maildrop file to the sender.
 * 0 ok (or nothing to do), -1 (logged) the notice could not be queued. */
static int
refuse(const char *name, int fd, const struct qf_envelope *env, struct bounce_rcpt *r,
    size_t n)
{
	struct bounce_msg b;
	struct buf content = BUF_INIT;
	char id[QUEUE_ID_MAX];
	size_t i;

	for (i = 0; i < n && i < REFUSE_LOG_MAX; i++)
		msg_info("maildrop/%s: to=<%s>, relay=none, dsn=%s, status=bounced (%s)",
		    name, r[i].addr, r[i].dsn, r[i].text);
	if (n > REFUSE_LOG_MAX)
		msg_info("maildrop/%s: %zu more recipients bounced (%s)", name,
		    n - REFUSE_LOG_MAX, r[0].text);
	if (!*env->sender) {
		msg_info("maildrop/%s: sender is <>: no notice sent", name);
		return 0;
	}
	memset(&b, 0, sizeof(b));
	b.size_limit = (size_t)conf_size("bounce_size_limit");
	if (bounce_read_content(fd, env, b.size_limit, &content) < 0) {
		msg_error("maildrop/%s: read: %s", name, strerror(errno));
		buf_free(&content);
		return -1;
	}
	b.action = BOUNCE_FAILED;
	b.queue_id = name;
	b.sender = env->sender;
	b.envid = env->envid;
	b.ret_hdrs = env->ret && !strcmp(env->ret, "HDRS");
	b.arrival_us = now_us();
	b.now = time(NULL);
	b.hostname = hostname;
	b.mail_name = conf_str("mail_name");
	b.rcpt = r;
	b.nrcpt = n;
	b.content = content.data;
	b.content_len = content.len;
	b.content_size = env->content_size;
	if (bounce_queue(&b, id) < 0) {
		buf_free(&content);
		return -1;
	}
	buf_free(&content);
	msg_info("maildrop/%s: sender non-delivery notification: %s", name, id);
	notify_qmgr(id);
	return 0;
}

/*
 * Read, check and rewrite one maildrop file into the batch.  Returns 0
 * when the file was handled (queued in the batch, or moved aside), -1
 * when it must be tried again later.
 */
static int
pickup_file(const char *name)
{
	struct qf_envelope env;
	struct buf path = BUF_INIT, err = BUF_INIT, hdr = BUF_INIT;
	struct bounce_rcpt *bad = NULL;
	struct prepared *p;
	struct qf_new *q;
	struct stat st;
	size_t i, nbad = 0, nrcpt = 0, limit;
	long long sizelimit;
	const char *uname;
	int fd, rc = -1;

	buf_printf(&path, "maildrop/%s", name);
	fd = open(buf_str(&path), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			rc = 0;		/* done already */
		else if (errno == ELOOP) {
			to_corrupt(name, "symbolic link");
			rc = 0;
		} else
			msg_warn("open %s: %s", buf_str(&path), strerror(errno));
		buf_free(&path);
		return rc;
	}
	buf_free(&path);
	if (fstat(fd, &st) < 0) {
		msg_warn("maildrop/%s: fstat: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		to_corrupt(name, "not a regular file");
		return 0;
	}
	if (st.st_nlink != 1) {
		/* sendmail may be between link() and unlink() of its temporary
		 * name; a hard link to someone else's file never goes away */
		close(fd);
		if (time(NULL) - st.st_mtime < LINK_GRACE)
			return -1;
		to_corrupt(name, "file has more than one link");
		return 0;
	}
	if (qf_read(fd, &env, &err) < 0) {
		if (errno == EBADMSG) {
			close(fd);
			to_corrupt(name, buf_str(&err));
			buf_free(&err);
			return 0;
		}
		msg_warn("maildrop/%s: %s", name, buf_str(&err));
		buf_free(&err);
		close(fd);
		return -1;
	}
	buf_free(&err);
	if (*env.sender && !addr_valid(env.sender)) {
		close(fd);
		to_corrupt(name, "invalid sender address");
		qf_envelope_free(&env);
		return 0;
	}

	/* Limits: refuse the whole message. */
	limit = (size_t)conf_int("recipient_limit");
	sizelimit = conf_size("message_size_limit");
	for (i = 0; i < env.nrcpt; i++)
		if (!env.rcpt[i].done)
			nrcpt++;
	if (nrcpt == 0) {
		msg_info("maildrop/%s: uid=%ld from=<%s>: no recipients; removed",
		    name, (long)st.st_uid, env.sender);
		goto drop;
	}
	bad = xcalloc(env.nrcpt, sizeof(*bad));
	if ((limit > 0 && nrcpt > limit) || (sizelimit > 0 && env.content_size > sizelimit)) {
		int toomany = limit > 0 && nrcpt > limit;

		for (i = 0; i < env.nrcpt; i++) {
			if (env.rcpt[i].done)
				continue;
			bad[nbad].addr = env.rcpt[i].addr;
			bad[nbad].orcpt = env.rcpt[i].orcpt;
			bad[nbad].dsn = toomany ? "5.5.3" : "5.3.4";
			bad[nbad].text = toomany ? "too many recipients" : "message size exceeds fixed limit";
			bad[nbad].last_attempt = time(NULL);
			nbad++;
		}
		if (refuse(name, fd, &env, bad, nbad) < 0)
			goto out;
		goto drop;
	}

	/* Invalid recipient addresses are returned, the rest goes on. */
	for (i = 0; i < env.nrcpt; i++) {
		if (env.rcpt[i].done || addr_valid(env.rcpt[i].addr))
			continue;
		bad[nbad].addr = env.rcpt[i].addr;
		bad[nbad].orcpt = env.rcpt[i].orcpt;
		bad[nbad].dsn = "5.1.3";
		bad[nbad].text = "bad recipient address syntax";
		bad[nbad].last_attempt = time(NULL);
		nbad++;
	}
	if (nbad && refuse(name, fd, &env, bad, nbad) < 0)
		goto out;
	if (nbad == nrcpt)
		goto drop;

	/* The new queue file. */
	p = &batch[nbatch];
	q = &batchq[nbatch];
	if (qf_new_open(q) < 0)
		goto out;
	qf_put_time(&q->w, now_us());
	qf_put_str(&q->w, QREC_SENDER, env.sender);
	if (env.fullname)
		qf_put_str(&q->w, QREC_FULLNAME, env.fullname);
	uname = user_name(st.st_uid);
	buf_printf(&hdr, "local uid=%ld", (long)st.st_uid);
	if (uname)
		buf_printf(&hdr, " user=%s", uname);
	qf_put_str(&q->w, QREC_CLIENT, buf_str(&hdr));
	if (env.envid)
		qf_put_str(&q->w, QREC_ENVID, env.envid);
	if (env.ret)
		qf_put_str(&q->w, QREC_RET, env.ret);
	/* from an untrusted file only what describes the content: a user
	 * must not claim e.g. sasl_username= */
	for (i = 0; env.attrs && env.attrs[i]; i++)
		if (!strncmp(env.attrs[i], "body=", 5) || !strcmp(env.attrs[i], "smtputf8=yes"))
			qf_put_str(&q->w, QREC_ATTR, env.attrs[i]);
	nrcpt = 0;
	for (i = 0; i < env.nrcpt; i++) {
		if (env.rcpt[i].done || !addr_valid(env.rcpt[i].addr))
			continue;
		qf_put_rcpt(&q->w, env.rcpt[i].addr, env.rcpt[i].orcpt, env.rcpt[i].notify);
		nrcpt++;
	}
	buf_reset(&hdr);
	buf_printf(&hdr, "Received: by %s (%s, from userid %ld)\n\tid %s; ",
	    hostname, conf_str("mail_name"), (long)st.st_uid, q->id);
	rfc5322_date(&hdr, time(NULL));
	buf_addc(&hdr, '\n');
	qf_content_start(&q->w);
	qf_content_write(&q->w, hdr.data, hdr.len);
	if (qf_content(fd, &env, copy_cb, &q->w) != 0) {
		if (!q->w.error)
			msg_warn("maildrop/%s: read: %s", name, strerror(errno));
		else
			msg_error("%s: write incoming/%s: %s", q->id, q->id, strerror(q->w.error));
		qf_new_abort(q);
		goto out;
	}
	p->name = xstrdup(name);
	p->sender = xstrdup(env.sender);
	p->uid = st.st_uid;
	p->nrcpt = nrcpt;
	p->size = q->w.content_size;
	nbatch++;
	rc = 0;
	goto out;
drop:
	{
		struct buf dp = BUF_INIT;

		buf_printf(&dp, "maildrop/%s", name);
		if (unlink(buf_str(&dp)) < 0 && errno != ENOENT)
			msg_warn("unlink %s: %s", buf_str(&dp), strerror(errno));
		buf_free(&dp);
	}
	rc = 0;
out:
	free(bad);
	buf_free(&hdr);
	qf_envelope_free(&env);
	close(fd);
	return rc;
}

/* Tell qmgr about the renamed files while active/ is being fsynced: the
 * announcement is the latency path.  qmgr also rescans active/, so a
 * failed announcement only delays. */
static void
announce(void *ctx, struct qf_new *q, size_t n, const int *result)
{
	struct buf msgs = BUF_INIT;
	struct proto_builder b;
	size_t i;
	int qfd;

	(void)ctx;
	for (i = 0; i < n; i++) {
		if (result[i] != 0)
			continue;
		proto_build_start(&b, PROTO_QMGR_NEW);
		proto_build_adds(&b, q[i].id);
		proto_build_finish(&b);
		buf_add(&msgs, b.out.data, b.out.len);
		proto_build_free(&b);
	}
	if (msgs.len && (qfd = proto_connect("private/qmgr")) >= 0) {
		(void)write_full(qfd, msgs.data, msgs.len);
		close(qfd);
	}
	buf_free(&msgs);
}

/* Commit the batch (announcing it to qmgr as soon as the files are in
 * active/), then log and remove the maildrop files, which are the
 * safety copy until the commit is complete. */
static void
commit_batch(void)
{
	int result[BATCH_MAX];
	struct buf path = BUF_INIT;
	size_t i;
	int64_t t0 = mono_ms();

	if (nbatch == 0)
		return;
	qf_commit_many_early(batchq, nbatch, result, announce, NULL);
	msg_debug("committed a batch of %zu in %lld ms", nbatch, (long long)(mono_ms() - t0));
	for (i = 0; i < nbatch; i++) {
		struct prepared *p = &batch[i];
		const char *id = batchq[i].id;

		/* a failure was logged by qf_commit_many; the maildrop file stays */
		if (result[i] == 0) {
			msg_info("%s: uid=%ld from=<%s>", id, (long)p->uid, p->sender);
			msg_info("%s: from=<%s>, size=%lld, nrcpt=%zu (queue active)",
			    id, p->sender, (long long)p->size, p->nrcpt);
			buf_reset(&path);
			buf_printf(&path, "maildrop/%s", p->name);
			if (unlink(buf_str(&path)) < 0 && errno != ENOENT)
				msg_warn("unlink %s: %s", buf_str(&path), strerror(errno));
		}
		free(p->name);
		free(p->sender);
	}
	nbatch = 0;
	buf_free(&path);
}

/* The "queue active" lines are logged after the commit, with the size. */
static void
process_pending(void)
{
	size_t i;

	for (i = 0; i < npending; i++) {
		if (!name_ok(pending[i]) || !strncmp(pending[i], "t.", 2)) {
			free(pending[i]);
			continue;
		}
		(void)pickup_file(pending[i]);
		free(pending[i]);
		if (nbatch == BATCH_MAX)
			commit_batch();
	}
	npending = 0;
	commit_batch();
}

static void
scan_maildrop(void)
{
	DIR *d = opendir("maildrop");
	struct dirent *de;
	time_t now = time(NULL);

	scan_wanted = 0;
	if (!d) {
		msg_warn("open maildrop/: %s", strerror(errno));
		return;
	}
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		struct stat st;

		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		if (!strncmp(n, "t.", 2)) {
			/* incomplete submission; remove once it is surely dead */
			if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    now - st.st_mtime > PICKUP_STALE) {
				if (unlinkat(dirfd(d), n, 0) == 0)
					msg_info("maildrop/%s: stale incomplete file removed", name_ok(n) ? n : "(bad name)");
			}
			continue;
		}
		if (!name_ok(n)) {
			char id[QUEUE_ID_MAX];
			struct buf to = BUF_INIT;

			queue_id_new(id, 0);
			buf_printf(&to, "corrupt/maildrop.%s", id);
			if (renameat(dirfd(d), n, AT_FDCWD, buf_str(&to)) == 0)
				msg_warn("maildrop: file with a bad name moved to %s", buf_str(&to));
			buf_free(&to);
			continue;
		}
		want_name(n);
		if (npending == BATCH_MAX) {
			process_pending();
			scan_wanted = 0;
		}
	}
	closedir(d);
	process_pending();
}

static void
client_close(size_t i)
{
	close(clients[i].fd);
	buf_free(&clients[i].in);
	clients[i] = clients[--nclients];
}

/* One message from a client: 0 keep it, -1 drop it. */
static int
client_msg(void *ctx, struct proto_msg *m)
{
	const char *name = proto_field(m, 0);

	(void)ctx;
	if (m->type != PROTO_PICKUP_WAKE || m->nfields > 1 ||
	    (m->nfields == 1 && strlen(name) != m->fields[0].len))
		return -1;
	if (!*name)
		scan_wanted = 1;
	else if (name_ok(name))
		want_name(name);
	else
		return -1;
	return 0;
}

/* Read what a client sent; 0 keep it, -1 drop it.  (A wake-up is small:
 * a client announcing a large payload is dropped at once.) */
static int
client_read(struct client *c)
{
	return proto_read_msgs(c->fd, &c->in, CLIENT_BUF_MAX, client_msg, NULL) < 0 ? -1 : 0;
}

int
main(int argc, char **argv)
{
	struct pollfd pfd[MAX_CLIENTS + 1];
	int64_t next_scan;
	int lfd;
	size_t i;

	sane_fds();
	service_init("pickup", argc, argv);
	priv_drop_to_owner();
	if ((lfd = service_listen_fd()) < 0)
		msg_fatal("no listening socket: pickup is started by hermod-master");
	if (chdir(conf_str("queue_directory")) < 0)
		msg_fatal("chdir %s: %s", conf_str("queue_directory"), strerror(errno));
	if (set_nonblock(lfd, 1) < 0)
		msg_fatal("listening socket: %s", strerror(errno));
	hostname = conf_str("myhostname");
	service_idle();

	scan_maildrop();
	next_scan = mono_ms() + PICKUP_SCAN * 1000;
	for (;;) {
		int64_t now = mono_ms(), timeout = next_scan - now;
		int r;

		for (i = 0; i < nclients; i++)
			if (clients[i].deadline - now < timeout)
				timeout = clients[i].deadline - now;
		if (timeout < 0)
			timeout = 0;
		pfd[0].fd = lfd;
		pfd[0].events = nclients < MAX_CLIENTS ? POLLIN : 0;
		for (i = 0; i < nclients; i++) {
			pfd[i + 1].fd = clients[i].fd;
			pfd[i + 1].events = POLLIN;
			pfd[i + 1].revents = 0;
		}
		r = poll(pfd, nclients + 1, (int)timeout);
		if (r < 0 && errno != EINTR)
			msg_fatal("poll: %s", strerror(errno));
		now = mono_ms();
		/* clients first (their indexes match pfd only before accepting) */
		for (i = nclients; i-- > 0; ) {
			if (r > 0 && (pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) {
				if (client_read(&clients[i]) < 0)
					client_close(i);
			} else if (clients[i].deadline <= now)
				client_close(i);
		}
		if (r > 0 && (pfd[0].revents & POLLIN)) {
			while (nclients < MAX_CLIENTS) {
				int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

				if (cfd < 0) {
					if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
					    errno != ECONNABORTED)
						msg_warn("accept: %s", strerror(errno));
					break;
				}
				clients[nclients].fd = cfd;
				clients[nclients].deadline = now + CLIENT_TIMEOUT_MS;
				buf_init(&clients[nclients].in);
				/* most clients have already sent their wake-up */
				if (client_read(&clients[nclients]) < 0) {
					close(cfd);
					buf_free(&clients[nclients].in);
					continue;
				}
				nclients++;
			}
		}
		if (npending)
			process_pending();
		if (scan_wanted || mono_ms() >= next_scan) {
			scan_maildrop();
			next_scan = mono_ms() + PICKUP_SCAN * 1000;
		}
	}
}
