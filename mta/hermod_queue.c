/*
 * hermod_queue.c: "hermod queue ...", the queue administration commands
 * (doc/hermod.8, QUEUE COMMANDS).
 *
 *   list [--json]          the mailq listing (lib/qlist)
 *   show ID                envelope, recipients with state and last
 *                          error, then the message
 *   hold ID                deferred/H/ID or active/ID -> hold/ID
 *   release ID             hold/ID -> active/ID, announced to qmgr
 *   delete ID|ALL          remove from active/, deferred/ and hold/
 *   requeue ID|ALL         deferred/H/ID -> active/ID now, announced
 *   flush [ID]             ask qmgr to retry deferred mail now (sendmail -q)
 *
 * Every move is one rename() inside the spool, so a file is always in
 * exactly one queue folder.  qmgr tolerates a file that leaves active/
 * while it is being delivered: at the end of that attempt it sees that
 * active/ID is no longer its file and keeps the results in hold/ID (hold)
 * or forgets the message (delete); see queue/qmgr_queue.c.  A file that
 * appears in active/ is announced with PROTO_QMGR_NEW; when qmgr is not
 * running, its start-up scan finds it.
 *
 * Runs as root or as the instance owner (whoever may write the spool);
 * anyone else gets EX_NOPERM.  Text from queue files is hostile: control
 * characters are replaced before they reach the terminal.
 */
#include "hermod.h"
#include "conf.h"
#include "proto.h"
#include "qlist.h"
#include "queue_file.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>


static const char *qdirs[] = { "active", "deferred", "hold", NULL };

static int
errno_exit(int e)
{
	return e == EACCES || e == EPERM ? EX_NOPERM : e == ENOENT ? EX_NOINPUT : EX_IOERR;
}

/* Print s with control characters (but LF and TAB when keep_lf) as '?'. */
static void
put_clean(FILE *fp, const char *s, size_t n, int keep_lf)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && !(keep_lf && (c == '\n' || c == '\t'))) || c == 0x7f)
			c = '?';
		putc(c, fp);
	}
}

static void
put_line(const char *label, const char *s)
{
	fputs(label, stdout);
	put_clean(stdout, s, strlen(s), 0);
	putc('\n', stdout);
}

/* Which queue holds ID: "active", "deferred" or "hold", or NULL. */
static const char *
find_queue(const char *id, struct buf *path)
{
	size_t i;
	struct stat st;

	for (i = 0; qdirs[i]; i++) {
		buf_reset(path);
		queue_path(path, qdirs[i], id);
		if (lstat(buf_str(path), &st) == 0 && S_ISREG(st.st_mode))
			return qdirs[i];
	}
	return NULL;
}

static int
check_id(const char *id)
{
	if (!queue_id_valid(id)) {
		hermod_say("queue: %s: not a queue ID", id);
		return EX_USAGE;
	}
	return 0;
}

static void
announce(const char *id)
{
	if (proto_notify("private/qmgr", PROTO_QMGR_NEW, id) < 0)
		msg_debug("%s: qmgr not told (%s): its next scan finds it", id, strerror(errno));
}

static int
cmd_list(int argc, char **argv)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	int fmt = QLIST_TEXT;

	if (argc == 2 && !strcmp(argv[1], "--json"))
		fmt = QLIST_JSON;
	else if (argc != 1) {
		hermod_say("usage: hermod queue list [--json]");
		return EX_USAGE;
	}
	if (qlist_render(&out, fmt, &err) < 0) {
		int e = errno;

		hermod_say("queue list: %s", buf_str(&err));
		buf_free(&out);
		buf_free(&err);
		return errno_exit(e);
	}
	fwrite(out.data, 1, out.len, stdout);
	buf_free(&out);
	buf_free(&err);
	return fflush(stdout) == 0 ? EX_OK : EX_IOERR;
}

static int
show_cb(void *ctx, const char *p, size_t n)
{
	(void)ctx;
	put_clean(stdout, p, n, 1);
	return 0;
}

static void
put_time(const char *label, int64_t t)
{
	struct buf d = BUF_INIT;

	rfc5322_date(&d, (time_t)t);
	printf("%s%s\n", label, buf_str(&d));
	buf_free(&d);
}

static int
cmd_show(int argc, char **argv)
{
	struct buf path = BUF_INIT, err = BUF_INIT;
	struct qf_envelope env;
	const char *q;
	size_t i;
	int fd, rc;

	if (argc != 2) {
		hermod_say("usage: hermod queue show ID");
		return EX_USAGE;
	}
	if ((rc = check_id(argv[1])) != 0)
		return rc;
	if ((q = find_queue(argv[1], &path)) == NULL) {
		int e = errno;

		hermod_say("queue show: %s: %s", argv[1], e == ENOENT ? "no such message" : strerror(e));
		buf_free(&path);
		return errno_exit(e);
	}
	if ((fd = open(buf_str(&path), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		int e = errno;

		hermod_say("queue show: %s: %s", buf_str(&path), strerror(e));
		buf_free(&path);
		return errno_exit(e);
	}
	memset(&env, 0, sizeof(env));
	if (qf_read(fd, &env, &err) < 0) {
		hermod_say("queue show: %s: %s", buf_str(&path), buf_str(&err));
		close(fd);
		buf_free(&path);
		buf_free(&err);
		return EX_DATAERR;
	}
	printf("queue_id: %s\nqueue: %s\n", argv[1], q);
	put_time("arrival_time: ", env.arrival_us / 1000000);
	printf("size: %lld\n", (long long)env.content_size);
	fputs("sender: <", stdout);
	put_clean(stdout, env.sender, strlen(env.sender), 0);
	fputs(">\n", stdout);
	if (env.fullname)
		put_line("full_name: ", env.fullname);
	if (env.client)
		put_line("client: ", env.client);
	if (env.envid)
		put_line("envid: ", env.envid);
	if (env.ret)
		put_line("ret: ", env.ret);
	if (env.attempts)
		printf("attempts: %d\n", env.attempts);
	if (env.next_retry)
		put_time("next_retry: ", env.next_retry);
	if (env.warned)
		puts("delay_warning: sent");
	for (i = 0; i < env.nrcpt; i++) {
		const struct qf_rcpt *r = &env.rcpt[i];

		fputs("recipient: <", stdout);
		put_clean(stdout, r->addr, strlen(r->addr), 0);
		fputs(">", stdout);
		if (*r->orcpt) {
			fputs(" orcpt=", stdout);
			put_clean(stdout, r->orcpt, strlen(r->orcpt), 0);
		}
		if (r->notify) {
			printf(" notify=%s%s%s%s",
			    r->notify & DSN_NOTIFY_NEVER ? "NEVER," : "",
			    r->notify & DSN_NOTIFY_SUCCESS ? "SUCCESS," : "",
			    r->notify & DSN_NOTIFY_FAILURE ? "FAILURE," : "",
			    r->notify & DSN_NOTIFY_DELAY ? "DELAY," : "");
		}
		if (r->done)
			fputs(" state=done\n", stdout);
		else if (r->defer_dsn) {
			fputs(" state=deferred (", stdout);
			put_clean(stdout, r->defer_dsn, strlen(r->defer_dsn), 0);
			fputs(" ", stdout);
			put_clean(stdout, r->defer_text ? r->defer_text : "",
			    r->defer_text ? strlen(r->defer_text) : 0, 0);
			fputs(")\n", stdout);
		} else
			fputs(" state=pending\n", stdout);
	}
	puts("");
	rc = EX_OK;
	if (qf_content(fd, &env, show_cb, NULL) != 0) {
		hermod_say("queue show: %s: cannot read the content", buf_str(&path));
		rc = EX_IOERR;
	}
	close(fd);
	qf_envelope_free(&env);
	buf_free(&path);
	buf_free(&err);
	if (fflush(stdout) != 0)
		rc = EX_IOERR;
	return rc;
}

/* rename from -> to and make it durable.  0 ok, -1 errno. */
static int
move(const char *from, const char *to)
{
	struct buf dir = BUF_INIT;
	const char *slash;
	int rc;

	if (rename(from, to) < 0)
		return -1;
	slash = strrchr(to, '/');
	buf_add(&dir, to, slash ? (size_t)(slash - to) : 1);
	rc = fsync_dir(buf_str(&dir));
	buf_free(&dir);
	return rc;
}

static int
cmd_hold(int argc, char **argv)
{
	struct buf from = BUF_INIT, to = BUF_INIT;
	static const char *src[] = { "deferred", "active", "deferred", NULL };
	size_t i;
	int rc, e = ENOENT;

	if (argc != 2) {
		hermod_say("usage: hermod queue hold ID");
		return EX_USAGE;
	}
	if ((rc = check_id(argv[1])) != 0)
		return rc;
	queue_path(&to, "hold", argv[1]);
	/* deferred/ again at the end: qmgr may have moved it meanwhile */
	for (i = 0; src[i]; i++) {
		buf_reset(&from);
		queue_path(&from, src[i], argv[1]);
		if (move(buf_str(&from), buf_str(&to)) == 0) {
			msg_info("%s: held by admin (was in %s/)", argv[1], src[i]);
			printf("%s: on hold\n", argv[1]);
			rc = EX_OK;
			goto out;
		}
		if (errno != ENOENT) {
			e = errno;
			break;
		}
	}
	if (e == ENOENT && access(buf_str(&to), F_OK) == 0) {
		printf("%s: already on hold\n", argv[1]);
		rc = EX_OK;
		goto out;
	}
	hermod_say("queue hold: %s: %s", argv[1], e == ENOENT ? "no such message" : strerror(e));
	rc = errno_exit(e);
out:
	buf_free(&from);
	buf_free(&to);
	return rc;
}

static int
cmd_release(int argc, char **argv)
{
	struct buf from = BUF_INIT, to = BUF_INIT;
	int rc;

	if (argc != 2) {
		hermod_say("usage: hermod queue release ID");
		return EX_USAGE;
	}
	if ((rc = check_id(argv[1])) != 0)
		return rc;
	queue_path(&from, "hold", argv[1]);
	queue_path(&to, "active", argv[1]);
	if (move(buf_str(&from), buf_str(&to)) < 0) {
		int e = errno;

		hermod_say("queue release: %s: %s", argv[1], e == ENOENT ? "not on hold" : strerror(e));
		rc = errno_exit(e);
	} else {
		msg_info("%s: released by admin", argv[1]);
		printf("%s: released\n", argv[1]);
		announce(argv[1]);
		rc = EX_OK;
	}
	buf_free(&from);
	buf_free(&to);
	return rc;
}

/* Call fn(id) for every queue file in the folders of which (deferred/
 * with its hash subfolders).  Returns the first non-zero result or 0. */
static int
for_all(const char *const *which, int (*fn)(const char *id, size_t *count), size_t *count)
{
	size_t i;
	int rc = 0;

	for (i = 0; which[i]; i++) {
		DIR *d = opendir(which[i]);
		struct dirent *de;

		if (!d) {
			hermod_say("open %s/: %s", which[i], strerror(errno));
			return errno_exit(errno);
		}
		while ((de = readdir(d)) != NULL) {
			if (!strcmp(which[i], "deferred")) {
				DIR *sd;
				struct dirent *se;
				struct buf p = BUF_INIT;

				if (de->d_name[0] == '.' || de->d_name[1] != 0)
					continue;
				buf_printf(&p, "deferred/%s", de->d_name);
				sd = opendir(buf_str(&p));
				buf_free(&p);
				if (!sd)
					continue;
				while ((se = readdir(sd)) != NULL)
					if (queue_id_valid(se->d_name) && fn(se->d_name, count) != 0 && !rc)
						rc = EX_IOERR;
				closedir(sd);
			} else if (queue_id_valid(de->d_name) && fn(de->d_name, count) != 0 && !rc)
				rc = EX_IOERR;
		}
		closedir(d);
	}
	return rc;
}

/* Remove id from every queue.  0 removed or not there, -1 error (said). */
static int
delete_one(const char *id, size_t *count)
{
	static const char *order[] = { "active", "deferred", "hold", "deferred", NULL };
	struct buf p = BUF_INIT;
	size_t i;
	int found = 0, rc = 0;

	for (i = 0; order[i]; i++) {
		buf_reset(&p);
		queue_path(&p, order[i], id);
		if (unlink(buf_str(&p)) == 0)
			found = 1;
		else if (errno != ENOENT) {
			hermod_say("queue delete: %s: %s", buf_str(&p), strerror(errno));
			rc = -1;
		}
	}
	if (found) {
		msg_info("%s: removed by admin", id);
		(*count)++;
	}
	buf_free(&p);
	return rc;
}

static int
cmd_delete(int argc, char **argv)
{
	static const char *all[] = { "active", "deferred", "hold", NULL };
	size_t count = 0;
	int rc;

	if (argc != 2) {
		hermod_say("usage: hermod queue delete ID|ALL");
		return EX_USAGE;
	}
	if (!strcmp(argv[1], "ALL")) {
		rc = for_all(all, delete_one, &count);
		printf("%zu message%s removed\n", count, count == 1 ? "" : "s");
		return rc;
	}
	if ((rc = check_id(argv[1])) != 0)
		return rc;
	if (delete_one(argv[1], &count) < 0)
		return EX_IOERR;
	if (count == 0) {
		hermod_say("queue delete: %s: no such message", argv[1]);
		return EX_NOINPUT;
	}
	printf("%s: removed\n", argv[1]);
	return EX_OK;
}

/* deferred/H/ID -> active/ID and tell qmgr.  0 done or not deferred. */
static int
requeue_one(const char *id, size_t *count)
{
	struct buf from = BUF_INIT, to = BUF_INIT;
	int rc = 0;

	queue_path(&from, "deferred", id);
	queue_path(&to, "active", id);
	if (move(buf_str(&from), buf_str(&to)) == 0) {
		msg_info("%s: requeued by admin", id);
		announce(id);
		(*count)++;
	} else if (errno != ENOENT) {
		hermod_say("queue requeue: %s: %s", id, strerror(errno));
		rc = -1;
	}
	buf_free(&from);
	buf_free(&to);
	return rc;
}

static int
cmd_requeue(int argc, char **argv)
{
	static const char *all[] = { "deferred", NULL };
	struct buf p = BUF_INIT;
	size_t count = 0;
	int rc;

	if (argc != 2) {
		hermod_say("usage: hermod queue requeue ID|ALL");
		return EX_USAGE;
	}
	if (!strcmp(argv[1], "ALL")) {
		rc = for_all(all, requeue_one, &count);
		printf("%zu message%s requeued\n", count, count == 1 ? "" : "s");
		return rc;
	}
	if ((rc = check_id(argv[1])) != 0)
		return rc;
	if (requeue_one(argv[1], &count) < 0)
		return EX_IOERR;
	if (count == 0) {
		/* already active: being delivered now, that is fine */
		queue_path(&p, "active", argv[1]);
		if (access(buf_str(&p), F_OK) == 0) {
			announce(argv[1]);
			count = 1;
		}
		buf_free(&p);
	}
	if (count == 0) {
		hermod_say("queue requeue: %s: not in the queue (held mail: use release)", argv[1]);
		return EX_NOINPUT;
	}
	printf("%s: requeued\n", argv[1]);
	return EX_OK;
}

static int
cmd_flush(int argc, char **argv)
{
	struct buf path = BUF_INIT;
	int fd, rc;

	if (argc > 2 || (argc == 2 && check_id(argv[1]) != 0)) {
		hermod_say("usage: hermod queue flush [ID]");
		return EX_USAGE;
	}
	conf_queue_path(&path, "private/qmgr");
	fd = proto_connect(buf_str(&path));
	if (fd < 0) {
		int e = errno;

		hermod_say("queue flush: %s: %s", buf_str(&path),
		    e == EACCES || e == EPERM ? strerror(e) : "the mail system is not running");
		buf_free(&path);
		return e == EACCES || e == EPERM ? EX_NOPERM : EX_UNAVAILABLE;
	}
	buf_free(&path);
	if (argc == 2)
		rc = proto_send_strs(fd, PROTO_QMGR_FLUSH, argv[1], (const char *)NULL);
	else
		rc = proto_send_strs(fd, PROTO_QMGR_FLUSH, (const char *)NULL);
	close(fd);
	if (rc < 0) {
		hermod_say("queue flush: send to qmgr: %s", strerror(errno));
		return EX_UNAVAILABLE;
	}
	return EX_OK;
}

int
hermod_queue(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "list", cmd_list },
		{ "show", cmd_show },
		{ "hold", cmd_hold },
		{ "release", cmd_release },
		{ "delete", cmd_delete },
		{ "requeue", cmd_requeue },
		{ "flush", cmd_flush },
		{ NULL, NULL }
	};
	size_t i;
	int rc;

	if (argc < 2) {
		hermod_say("usage: hermod queue list|show ID|hold ID|release ID|"
		    "delete ID|ALL|requeue ID|ALL|flush [ID]");
		return EX_USAGE;
	}
	for (i = 0; cmds[i].name; i++)
		if (!strcmp(argv[1], cmds[i].name))
			break;
	if (!cmds[i].name) {
		hermod_say("queue: unknown command %s", argv[1]);
		return EX_USAGE;
	}
	if ((rc = hermod_load_conf()) != 0)
		return rc;
	/* the admin's own actions go to the mail log as well */
	log_init("hermod/queue", LOG_FLAG_BOTH);
	if (chdir(conf_str("queue_directory")) < 0) {
		int e = errno;

		hermod_say("queue directory %s: %s", conf_str("queue_directory"), strerror(e));
		return e == EACCES || e == EPERM ? EX_NOPERM : EX_CONFIG;
	}
	if (strcmp(argv[1], "list") && strcmp(argv[1], "flush") && access("active", W_OK) < 0) {
		hermod_say("queue %s: %s: %s (run it as root or as the mail system's owner)",
		    argv[1], conf_str("queue_directory"), strerror(errno));
		return errno == EACCES || errno == EPERM ? EX_NOPERM : EX_CONFIG;
	}
	umask(077);
	return cmds[i].fn(argc - 1, argv + 1);
}
