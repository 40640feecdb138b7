/*
 * smtpd_queue.c: smtpd's message store: each message is written
 * straight into a new queue file (incoming/ID) while it arrives, and
 * committed under the durability rule (fsync, rename into active/,
 * fsync of active/) before the session may answer 250.
 *
 * Commits run on one worker thread so that the event loop keeps serving
 * the other sessions while the disk syncs; the messages finished while
 * a commit runs form the next batch, which qf_commit_many_early makes
 * durable together (one syncfs or fsync pass, one directory fsync).
 * qmgr is told about each file as soon as it is renamed into active/.
 * The thread touches nothing but the qf_new structures handed to it and
 * reports back through a pipe that the event loop watches.
 *
 * HOLD: the file is renamed into hold/ instead of active/ (q->active is
 * pointed there), hold/ is fsynced, and qmgr is not told.
 *
 * In stdio mode (sendmail -bs) there is no thread: smtpd_store_commit
 * commits at once; and when the calling user may not write the queue,
 * the message goes to maildrop/ through the sink of sendmail_store.h.
 */
#include "smtpd_queue.h"
#include "sendmail_store.h"
#include "conf.h"
#include "log.h"
#include "proto.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct job {
	struct qf_new q;
	int hold;
	int result;
	void (*done)(void *arg, int ok, const char *id);
	void *arg;
	struct job *next;
};

struct smtpd_store {
	struct job *job;	/* the open message */
	int to_maildrop;
	int md_open;		/* a message is open in the sink */
	struct maildrop_sink sink;
	struct qf_writer mw;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct job *todo, *todo_tail, *done_list;
static int pipe_fd[2] = { -1, -1 };
static int threaded;
static struct event *done_ev;

struct smtpd_store *
smtpd_store_new(void)
{
	return xcalloc(1, sizeof(struct smtpd_store));
}

void
smtpd_store_free(struct smtpd_store *st)
{
	if (!st)
		return;
	smtpd_store_abort(st);
	free(st);
}

void
smtpd_store_use_maildrop(struct smtpd_store *st)
{
	st->to_maildrop = 1;
}

/* The envelope records, the same for a queue file and a maildrop file. */
static void
put_envelope(struct qf_writer *w, struct smtpd_session *s)
{
	struct buf c = BUF_INIT;
	size_t i;

	qf_put_time(w, now_us());
	qf_put_str(w, QREC_SENDER, s->sender ? s->sender : "");
	smtpd_client_record(s, &c);
	qf_put_str(w, QREC_CLIENT, buf_str(&c));
	if (s->envid && *s->envid)
		qf_put_str(w, QREC_ENVID, s->envid);
	if (s->ret)
		qf_put_str(w, QREC_RET, s->ret == SMTP_RET_FULL ? "FULL" : "HDRS");
	if (s->body == SMTP_BODY_8BITMIME)
		qf_put_str(w, QREC_ATTR, "body=8BITMIME");
	else if (s->body == SMTP_BODY_7BIT)
		qf_put_str(w, QREC_ATTR, "body=7BIT");
	if (s->smtputf8)
		qf_put_str(w, QREC_ATTR, "smtputf8=yes");
	if (s->auth_user) {
		buf_reset(&c);
		buf_printf(&c, "sasl_username=%s", s->auth_user);
		qf_put_str(w, QREC_ATTR, buf_str(&c));
	}
	for (i = 0; i < s->nrcpt; i++)
		qf_put_rcpt(w, s->rcpt[i].addr, s->rcpt[i].orcpt, s->rcpt[i].notify);
	qf_content_start(w);
	buf_free(&c);
}

static int
maildrop_store_open(struct smtpd_store *st, struct smtpd_session *s, char id[QUEUE_ID_MAX])
{
	struct buf err = BUF_INIT;

	if (maildrop_sink_open(&st->sink, conf_dir(), &err) < 0) {
		msg_error("maildrop: %s", buf_str(&err));
		buf_free(&err);
		return -1;
	}
	qf_writer_init(&st->mw, st->sink.fd);
	put_envelope(&st->mw, s);
	if (st->mw.error) {
		msg_error("maildrop: write: %s", st->mw.error == EINVAL ?
		    "invalid envelope data" : strerror(st->mw.error));
		qf_writer_free(&st->mw);
		maildrop_sink_abort(&st->sink);
		return -1;
	}
	id[0] = 0;	/* named only when it is stored */
	st->md_open = 1;
	return 0;
}

static void
maildrop_store_commit(struct smtpd_store *st,
    void (*done)(void *arg, int ok, const char *id), void *arg)
{
	struct buf err = BUF_INIT;
	char id[QUEUE_ID_MAX];
	int rc;

	st->md_open = 0;
	rc = maildrop_sink_commit(&st->sink, &st->mw, &err, id);
	qf_writer_free(&st->mw);
	if (rc != 0) {
		msg_error("maildrop: message not stored: %s", buf_str(&err));
		maildrop_sink_abort(&st->sink);
	} else if (id[0])
		maildrop_wake(id);
	buf_free(&err);
	done(arg, rc == 0, rc == 0 ? id : "");
}

int
smtpd_store_open(struct smtpd_store *st, struct smtpd_session *s, char id[QUEUE_ID_MAX])
{
	struct job *j;
	struct qf_writer *w;

	if (st->to_maildrop)
		return maildrop_store_open(st, s, id);
	j = xcalloc(1, sizeof(*j));
	if (qf_new_open(&j->q) < 0) {
		free(j);
		return -1;
	}
	w = &j->q.w;
	put_envelope(w, s);
	if (w->error) {
		msg_error("%s: write incoming/%s: %s", j->q.id, j->q.id,
		    w->error == EINVAL ? "invalid envelope data" : strerror(w->error));
		qf_new_abort(&j->q);
		free(j);
		return -1;
	}
	memcpy(id, j->q.id, QUEUE_ID_MAX);
	st->job = j;
	return 0;
}

void
smtpd_store_write(struct smtpd_store *st, const char *p, size_t n)
{
	if (st->md_open)
		qf_content_write(&st->mw, p, n);
	else if (st->job)
		qf_content_write(&st->job->q.w, p, n);
}

void
smtpd_store_abort(struct smtpd_store *st)
{
	if (st->md_open) {
		st->md_open = 0;
		qf_writer_free(&st->mw);
		maildrop_sink_abort(&st->sink);
		return;
	}
	if (!st->job)
		return;
	qf_new_abort(&st->job->q);
	free(st->job);
	st->job = NULL;
}

/* Point the commit at hold/ instead of active/. */
static void
aim_hold(struct job *j)
{
	buf_reset(&j->q.active);
	buf_printf(&j->q.active, "%s/hold/%s", conf_str("queue_directory"), j->q.id);
}

static void
announce(void *ctx, struct qf_new *q, size_t n, const int *result)
{
	struct job **jobs = ctx;
	size_t i;

	for (i = 0; i < n; i++)
		if (result[i] == 0 && !jobs[i]->hold)
			(void)proto_notify("private/qmgr", PROTO_QMGR_NEW, q[i].id);
}

/* Commit a batch (any thread). */
static void
commit_batch(struct job **jobs, size_t n)
{
	struct qf_new *qs = xcalloc(n, sizeof(*qs));
	int *res = xcalloc(n, sizeof(*res));
	size_t i;
	int any_hold = 0;

	for (i = 0; i < n; i++) {
		if (jobs[i]->hold) {
			aim_hold(jobs[i]);
			any_hold = 1;
		}
		qs[i] = jobs[i]->q;
	}
	qf_commit_many_early(qs, n, res, announce, jobs);
	if (any_hold) {
		struct buf dir = BUF_INIT;

		conf_queue_path(&dir, "hold");
		if (fsync_dir(buf_str(&dir)) < 0) {
			msg_error("fsync %s: %s", buf_str(&dir), strerror(errno));
			for (i = 0; i < n; i++)
				if (jobs[i]->hold)
					res[i] = -1;	/* left in hold/ for the admin; not acknowledged */
		}
		buf_free(&dir);
	}
	for (i = 0; i < n; i++) {
		memcpy(jobs[i]->q.id, qs[i].id, QUEUE_ID_MAX);
		jobs[i]->result = res[i];
	}
	free(qs);
	free(res);
}

static void
finish(struct job *j)
{
	void (*done)(void *, int, const char *) = j->done;
	void *arg = j->arg;
	char id[QUEUE_ID_MAX];
	int ok = j->result == 0;

	memcpy(id, j->q.id, QUEUE_ID_MAX);
	free(j);
	done(arg, ok, id);
}

static void *
worker(void *unused)
{
	for (;;) {
		struct job *list, *j, **v;
		size_t n = 0, i;
		char c = 1;

		pthread_mutex_lock(&mu);
		while (!todo)
			pthread_cond_wait(&cv, &mu);
		list = todo;
		todo = todo_tail = NULL;
		pthread_mutex_unlock(&mu);
		for (j = list; j; j = j->next)
			n++;
		v = xcalloc(n, sizeof(*v));
		for (i = 0, j = list; j; j = j->next)
			v[i++] = j;
		commit_batch(v, n);
		free(v);
		pthread_mutex_lock(&mu);
		for (j = list; j->next; j = j->next)
			;
		j->next = done_list;
		done_list = list;
		pthread_mutex_unlock(&mu);
		(void)!write(pipe_fd[1], &c, 1);
	}
	return NULL;
}

static void
on_done(evutil_socket_t fd, short what, void *arg)
{
	char tmp[256];
	struct job *list, *j, *next;

	while (read(fd, tmp, sizeof(tmp)) > 0)
		;
	pthread_mutex_lock(&mu);
	list = done_list;
	done_list = NULL;
	pthread_mutex_unlock(&mu);
	for (j = list; j; j = next) {
		next = j->next;
		finish(j);
	}
}

int
smtpd_store_init(struct event_base *base)
{
	pthread_t t;
	pthread_attr_t attr;

	(void)conf_str("queue_directory");	/* expanded here, read by the thread */
	if (pipe2(pipe_fd, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	done_ev = event_new(base, pipe_fd[0], EV_READ | EV_PERSIST, on_done, NULL);
	if (!done_ev || event_add(done_ev, NULL) < 0)
		return -1;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, worker, NULL) != 0) {
		pthread_attr_destroy(&attr);
		return -1;
	}
	pthread_attr_destroy(&attr);
	threaded = 1;
	return 0;
}

void
smtpd_store_commit(struct smtpd_store *st, int hold,
    void (*done)(void *arg, int ok, const char *id), void *arg)
{
	struct job *j = st->job;

	if (st->md_open) {
		maildrop_store_commit(st, done, arg);
		return;
	}
	st->job = NULL;
	if (!j) {
		done(arg, 0, "");
		return;
	}
	j->hold = hold;
	j->done = done;
	j->arg = arg;
	j->next = NULL;
	if (!threaded) {
		commit_batch(&j, 1);
		finish(j);
		return;
	}
	pthread_mutex_lock(&mu);
	if (todo_tail)
		todo_tail->next = j;
	else
		todo = j;
	todo_tail = j;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
}
