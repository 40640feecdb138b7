/*
 * local_deliver.c: mailbox, Maildir and file leaves.
 *
 * Privileges: in a privileged instance (local runs as root) every leaf
 * that belongs to a user is written by a child process that has dropped
 * to that user for good (uid, gid and supplementary groups, looked up once
 * in the parent and cached) and reports the outcome over a
 * pipe; the one exception is a mailbox in mail_spool_directory, which
 * the child creates, dotlocks and opens as root (the spool is usually
 * not writable by users) and then writes with the user's effective uid
 * and gid, as Postfix does.  In a rootless instance everything runs
 * in-process: no fork per delivery.
 *
 * Every outcome of a mailbox write is temporary when it fails (mbox.h
 * and maildir.h say which errno means what); "sent" only after fsync.
 */
#include "local.h"
#include "conf.h"
#include "maildir.h"
#include "mbox.h"
#include "quota.h"
#include "service.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void
local_prefix(struct buf *out, const char *sender, const char *addr)
{
	buf_printf(out, "Return-Path: <%s>\nDelivered-To: %s\n", sender, addr);
}

/* A user's own Maildir over its quota: RFC 3463 X.2.2, deferred by
 * default (the user may make room; maximal_queue_lifetime bounds the
 * wait), at once when mailbox_quota_full_tempfail = no.  An
 * accounting we cannot make defers. */
static int
quota_fits(struct leaf *lf, long long size, struct lstatus *st)
{
	struct quota_usage u;
	struct buf err = BUF_INIT;
	int r = quota_room(lf->target, &lf->quota, size, 1, &u, &err);

	if (r < 0)
		lstatus_set(st, LS_DEFER, "4.2.0", "cannot count the mailbox for its quota: %s",
		    buf_str(&err));
	else if (r == 0) {
		int tempfail = conf_bool("mailbox_quota_full_tempfail");

		quota_describe(&lf->quota, &u, &err);
		lstatus_set(st, tempfail ? LS_DEFER : LS_BOUNCE, tempfail ? "4.2.2" : "5.2.2",
		    "mailbox full: %s", buf_str(&err));
	}
	buf_free(&err);
	return r == 1;
}

/* The delivery itself, as whoever we are now.  spool_user: switch the
 * effective ids to it between opening and writing a spool mbox. */
static void
store(struct lmsg *m, struct leaf *lf, struct lstatus *st, const struct lprivs *spool_user)
{
	struct buf prefix = BUF_INIT, err = BUF_INIT;
	struct mail_source src;
	struct mbox_opts o;
	struct mbox mb;
	int e;

	local_prefix(&prefix, lf->sender, lf->addr);
	src.prefix = prefix.data;
	src.prefix_len = prefix.len;
	src.copy = lmsg_copy;
	src.ctx = m;
	if (lf->kind == LEAF_MAILDIR) {
		struct buf path = BUF_INIT;
		long long size = (long long)prefix.len + (long long)m->env.content_size;

		if (lf->quota_set && !quota_fits(lf, size, st)) {
			buf_free(&path);
			goto out;
		}
		if (maildir_deliver(lf->target, &src, &path, &err) < 0) {
			e = errno;
			lstatus_from_errno(st, e, buf_str(&err));
		} else {
			long long got = quota_name_size(buf_str(&path));

			/* the mailbox's maildirsize, if it has one, stays right
			 * whether or not a limit is set now */
			quota_add(lf->target, got >= 0 ? got : size, 1);
			lstatus_set(st, LS_SENT, "2.0.0", "delivered to maildir");
		}
		buf_free(&path);
		goto out;
	}
	mbox_opts_from_conf(&o);
	if (lf->kind == LEAF_MBOX)
		o.owner = lf->owner;
	if (spool_user) {
		o.create_uid = spool_user->uid;
		o.create_gid = spool_user->gid;
	}
	if (mbox_open(&mb, lf->target, &o, &err) < 0) {
		e = errno;
		lstatus_from_errno(st, e, buf_str(&err));
		goto out;
	}
	if (spool_user && (setgroups(1, &spool_user->gid) < 0 ||
	    setegid(spool_user->gid) < 0 || seteuid(spool_user->uid) < 0)) {
		e = errno;
		mbox_close(&mb);
		lstatus_set(st, LS_DEFER, "4.3.0", "cannot switch to uid %ld: %s",
		    (long)spool_user->uid, strerror(e));
		goto out;
	}
	if (mbox_append(&mb, lf->sender, time(NULL), &src, &err) < 0) {
		e = errno;
		lstatus_from_errno(st, e, buf_str(&err));
	} else if (lf->kind == LEAF_MBOX)
		lstatus_set(st, LS_SENT, "2.0.0", "delivered to mailbox");
	else
		lstatus_set(st, LS_SENT, "2.0.0", "delivered to file: %s", lf->target);
	if (spool_user && (seteuid(0) < 0 || setegid(0) < 0))
		msg_error("cannot return to root after writing %s: %s", lf->target, strerror(errno));
	mbox_close(&mb);
out:
	buf_free(&prefix);
	buf_free(&err);
}

/*
 * Supplementary groups, looked up in the parent and cached for a minute:
 * initgroups() in every child would load and query the NSS modules again
 * for each delivery (milliseconds on a systemd host).
 */
struct gcache {
	uid_t uid;
	gid_t gid;
	char *name;
	gid_t *groups;
	int n;
	int64_t when;
};

#define GCACHE_SIZE	64

static struct gcache gcache[GCACHE_SIZE];

static const struct gcache *
groups_of(const struct lprivs *pv)
{
	int64_t now = mono_ms();
	struct gcache *g = NULL, *oldest = &gcache[0];
	int i, n = 32;

	for (i = 0; i < GCACHE_SIZE; i++) {
		struct gcache *c = &gcache[i];

		if (c->groups && c->uid == pv->uid && c->gid == pv->gid &&
		    !strcmp(c->name ? c->name : "", pv->user ? pv->user : "") && now - c->when < 60000)
			return c;
		if (!c->groups || c->when < oldest->when)
			oldest = c;
	}
	g = oldest;
	free(g->name);
	free(g->groups);
	memset(g, 0, sizeof(*g));
	g->uid = pv->uid;
	g->gid = pv->gid;
	g->name = pv->user ? xstrdup(pv->user) : NULL;
	g->when = now;
	g->groups = xcalloc((size_t)n, sizeof(gid_t));
	if (pv->user) {
		while (getgrouplist(pv->user, pv->gid, g->groups, &n) < 0) {
			if (n > 65536) {
				n = 1;
				g->groups[0] = pv->gid;
				break;
			}
			g->groups = xreallocarray(g->groups, (size_t)n, sizeof(gid_t));
		}
	} else {
		n = 1;
		g->groups[0] = pv->gid;
	}
	g->n = n;
	return g;
}

int
local_priv_prepare(const struct lprivs *pv)
{
	return groups_of(pv) ? 0 : -1;
}

int
local_priv_drop(const struct lprivs *pv)
{
	const struct gcache *g;

	if (pv->uid == 0) {
		errno = EPERM;
		return -1;
	}
	if (geteuid() != 0)
		return priv_drop_to(pv->uid, pv->gid, NULL);
	g = groups_of(pv);	/* normally cached by the parent before fork */
	if (setgroups((size_t)g->n, g->groups) < 0 ||
	    setresgid(pv->gid, pv->gid, pv->gid) < 0 || setresuid(pv->uid, pv->uid, pv->uid) < 0)
		return -1;
	if (setuid(0) == 0 || seteuid(0) == 0) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

/* Child side: the status as "S\tDSN\ttext". */
static void
report(int fd, const struct lstatus *st)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "%d\t%s\t%s", st->status, st->dsn, buf_str(&st->text));
	(void)write_full(fd, b.data, b.len);
	buf_free(&b);
}

static void
in_child(struct lmsg *m, struct leaf *lf, struct lstatus *st)
{
	struct buf in = BUF_INIT;
	char tmp[4096];
	int p[2], wstatus;
	pid_t pid;
	ssize_t r;

	if (lf->pv.set)
		(void)local_priv_prepare(&lf->pv);
	if (pipe2(p, O_CLOEXEC) < 0) {
		lstatus_set(st, LS_DEFER, "4.3.0", "pipe: %s", strerror(errno));
		return;
	}
	if ((pid = fork()) < 0) {
		lstatus_set(st, LS_DEFER, "4.3.0", "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		struct lstatus cs;

		close(p[0]);
		lstatus_init(&cs);
		if (lf->spool && lf->kind == LEAF_MBOX)
			store(m, lf, &cs, lf->pv.set ? &lf->pv : NULL);
		else if (local_priv_drop(&lf->pv) < 0)
			lstatus_set(&cs, LS_DEFER, "4.3.0", "cannot switch to uid %ld: %s",
			    (long)lf->pv.uid, strerror(errno));
		else
			store(m, lf, &cs, NULL);
		report(p[1], &cs);
		_exit(0);
	}
	close(p[1]);
	for (;;) {
		r = read(p[0], tmp, sizeof(tmp));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (in.len < 8192)
			buf_add(&in, tmp, (size_t)r);
	}
	close(p[0]);
	while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	{
		char *t1, *t2;
		long s;

		if (in.len && (t1 = strchr(buf_str(&in), '\t')) && (t2 = strchr(t1 + 1, '\t'))) {
			*t1++ = 0;
			*t2++ = 0;
			s = strtol(in.data, NULL, 10);
			lstatus_set(st, s == LS_SENT ? LS_SENT : s == LS_BOUNCE ? LS_BOUNCE : LS_DEFER,
			    t1, "%s", t2);
		} else
			lstatus_set(st, LS_DEFER, "4.3.0", "delivery process for %s died (wait status %d)",
			    lf->target, wstatus);
	}
	buf_free(&in);
}

void
local_deliver_store(struct lmsg *m, struct leaf *lf, struct lstatus *st)
{
	int root = conf_privileged() && geteuid() == 0;
	sigset_t block, saved;

	if (lf->kind == LEAF_DEVNULL) {
		lstatus_set(st, LS_SENT, "2.0.0", "delivered to /dev/null");
		return;
	}
	/* A stop request (SIGTERM from the master) waits until the mailbox
	 * is consistent again: no half-appended mbox message. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &saved);
	if (root && (lf->pv.set || (lf->spool && lf->kind == LEAF_MBOX)))
		in_child(m, lf, st);
	else if (root && lf->kind == LEAF_FILE)
		/* never write a file destination as root */
		lstatus_set(st, LS_DEFER, "4.3.0", "no unprivileged user for file %s", lf->target);
	else
		store(m, lf, st, NULL);
	sigprocmask(SIG_SETMASK, &saved, NULL);
}
