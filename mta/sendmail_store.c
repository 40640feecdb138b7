/*
 * sendmail_store.c: one file into maildrop/ with the durability rule of
 * DESIGN.md: write, fsync the file, rename to its queue ID, fsync the
 * directory; only then is the message stored (see sendmail_store.h).
 *
 * The file is written unnamed (O_TMPFILE) and linked into maildrop/
 * under its queue ID once fsynced: one directory operation, and a crash
 * before the link leaves nothing behind.  Where O_TMPFILE is not
 * supported, a temporary file named t.* (never a valid queue ID, so
 * pickup ignores it) is renamed instead.
 *
 * Invariants: the final name is a fresh queue ID and an existing file
 * is never replaced (linkat, renameat2 RENAME_NOREPLACE); on any failure
 * before the directory fsync nothing is left in maildrop/.
 */
#include "sendmail_store.h"
#include "conf.h"
#include "proto.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

extern char **environ;

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/* The classic way: a named temporary file t.PID.TIME.N. */
static int
open_named(struct maildrop *m)
{
	int tries;

	for (tries = 0; tries < 100; tries++) {
		long long t = (long long)now_us();
		int n = snprintf(m->tmp, sizeof(m->tmp), "t.%ld.%lld.%d",
		    (long)getpid(), t, tries);

		if (n < 0 || (size_t)n >= sizeof(m->tmp)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		m->fd = openat(m->dfd, m->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (m->fd >= 0 || errno != EEXIST)
			break;
	}
	if (m->fd < 0)
		m->tmp[0] = 0;
	return m->fd < 0 ? -1 : 0;
}

int
maildrop_open(struct maildrop *m, struct buf *err)
{
	struct buf dir = BUF_INIT;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	m->dir_unreadable = 0;
	conf_queue_path(&dir, "maildrop");
	m->dfd = open(buf_str(&dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m->dfd < 0 && errno == EACCES) {
		/* write and search but no read permission: a path descriptor
		 * still serves openat, linkat and renameat2 */
		m->dfd = open(buf_str(&dir), O_PATH | O_DIRECTORY | O_CLOEXEC);
		m->dir_unreadable = 1;
	}
	if (m->dfd < 0) {
		buf_printf(err, "open %s: %s", buf_str(&dir), strerror(errno));
		buf_free(&dir);
		return -1;
	}
	/* an unnamed file: one directory operation (the link) instead of
	 * two, and nothing left behind if we die before the commit */
	m->fd = open(buf_str(&dir), O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
	if (m->fd < 0 && open_named(m) < 0) {
		buf_printf(err, "create file in %s: %s", buf_str(&dir), strerror(errno));
		close(m->dfd);
		m->dfd = -1;
		buf_free(&dir);
		return -1;
	}
	buf_free(&dir);
	return 0;
}

/* Give the unnamed file a name through /proc (linkat with AT_EMPTY_PATH
 * would need CAP_DAC_READ_SEARCH).  Never replaces an existing name. */
static int
link_tmpfile(struct maildrop *m)
{
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", m->fd);
	return linkat(AT_FDCWD, proc, m->dfd, m->id, AT_SYMLINK_FOLLOW);
}

/* Without /proc: copy the unnamed file into a named temporary one. */
static int
copy_to_named(struct maildrop *m)
{
	char tmp[65536];
	off_t off = 0;
	int old = m->fd;
	ssize_t n;

	if (open_named(m) < 0) {
		m->fd = old;
		return -1;
	}
	while ((n = pread(old, tmp, sizeof(tmp), off)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || write_full(m->fd, tmp, (size_t)n) < 0) {
			int e = errno;

			close(old);
			errno = e;
			return -1;
		}
		off += n;
	}
	close(old);
	return fsync(m->fd);
}

int
maildrop_commit(struct maildrop *m, struct buf *err)
{
	struct stat st;
	int tries, rc = -1;

	if (fsync(m->fd) < 0 || fstat(m->fd, &st) < 0) {
		buf_printf(err, "maildrop: fsync: %s", strerror(errno));
		goto fail;
	}
	for (tries = 0; tries < 10; tries++) {
		queue_id_new(m->id, st.st_ino);
		if (!m->tmp[0]) {
			rc = link_tmpfile(m);
			if (rc < 0 && errno == ENOENT) {
				/* no /proc: fall back to a named file */
				if (copy_to_named(m) < 0 || fstat(m->fd, &st) < 0) {
					buf_printf(err, "maildrop: %s", strerror(errno));
					goto fail;
				}
				tries--;
				continue;
			}
		} else {
			rc = renameat2(m->dfd, m->tmp, m->dfd, m->id, RENAME_NOREPLACE);
			if (rc < 0 && (errno == EINVAL || errno == ENOSYS)) {
				/* file system without RENAME_NOREPLACE: link never replaces */
				rc = linkat(m->dfd, m->tmp, m->dfd, m->id, 0);
				if (rc == 0)
					(void)unlinkat(m->dfd, m->tmp, 0);
			}
		}
		if (rc == 0 || errno != EEXIST)
			break;
	}
	if (rc < 0) {
		buf_printf(err, "name maildrop/%s: %s", m->id, strerror(errno));
		goto fail;
	}
	m->tmp[0] = 0;
	if (m->dir_unreadable ? syncfs(m->fd) < 0 : fsync(m->dfd) < 0) {
		/* the file is there under its final name but may not survive a
		 * crash: remove it and report failure, so the caller retries */
		buf_printf(err, "fsync maildrop/: %s", strerror(errno));
		(void)unlinkat(m->dfd, m->id, 0);
		goto fail;
	}
	close(m->fd);
	close(m->dfd);
	m->fd = m->dfd = -1;
	return 0;
fail:
	maildrop_abort(m);
	return -1;
}

void
maildrop_abort(struct maildrop *m)
{
	if (m->fd >= 0)
		close(m->fd);
	if (m->dfd >= 0) {
		if (m->tmp[0])
			(void)unlinkat(m->dfd, m->tmp, 0);
		close(m->dfd);
	}
	m->fd = m->dfd = -1;
	m->tmp[0] = 0;
}

void
maildrop_wake(const char *id)
{
	struct proto_builder b;
	struct sockaddr_un sun;
	struct buf path = BUF_INIT;
	int fd;

	conf_queue_path(&path, "public/pickup");
	if (path.len >= sizeof(sun.sun_path)) {
		buf_free(&path);
		return;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path.data, path.len);
	buf_free(&path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return;
	}
	proto_build_start(&b, PROTO_PICKUP_WAKE);
	proto_build_adds(&b, id);
	proto_build_finish(&b);
	(void)send(fd, b.out.data, b.out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	proto_build_free(&b);
	close(fd);
}

/*
 * The sink: maildrop/ directly, or postdrop on a pipe.
 */
pid_t
postdrop_spawn(const char *confdir, const char *const *extra, int *in_fd, int out_fd,
    struct buf *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	struct buf pbuf = BUF_INIT;
	char *path = conf_daemon_program("postdrop", &pbuf) == 0 ? buf_steal(&pbuf) : NULL;
	const char *argv[16];
	int p[2] = { -1, -1 }, n = 0, rc;
	pid_t pid;

	buf_free(&pbuf);	/* what a failed search left */
	if (!path) {
		buf_printf(err, "cannot find postdrop in daemon_directory %s", conf_str("daemon_directory"));
		return -1;
	}
	if (in_fd && pipe2(p, O_CLOEXEC) < 0) {
		buf_printf(err, "pipe: %s", strerror(errno));
		free(path);
		return -1;
	}
	argv[n++] = "postdrop";
	if (confdir) {
		argv[n++] = "-C";
		argv[n++] = confdir;
	}
	while (extra && *extra && n < 14)
		argv[n++] = *extra++;
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	if (in_fd)
		posix_spawn_file_actions_adddup2(&fa, p[0], 0);
	if (out_fd >= 0 && out_fd != 1)
		posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	/* the helper starts with no blocked signals and SIGPIPE as default */
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&pid, path, &fa, &attr, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (in_fd)
		close(p[0]);
	if (rc != 0) {
		buf_printf(err, "run %s: %s", path, strerror(rc));
		free(path);
		if (in_fd)
			close(p[1]);
		return -1;
	}
	free(path);
	if (in_fd)
		*in_fd = p[1];
	return pid;
}

int
postdrop_wait(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return EX_TEMPFAIL;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return EX_TEMPFAIL;
}

int
maildrop_sink_open(struct maildrop_sink *s, const char *confdir, struct buf *err)
{
	struct buf dir = BUF_INIT;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	conf_queue_path(&dir, "maildrop");
	s->direct = access(buf_str(&dir), W_OK | X_OK) == 0;
	buf_free(&dir);
	if (s->direct) {
		if (maildrop_open(&s->md, err) < 0)
			return -1;
		s->fd = s->md.fd;
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	s->pid = postdrop_spawn(confdir, NULL, &s->fd, -1, err);
	return s->pid < 0 ? -1 : 0;
}

int
maildrop_sink_commit(struct maildrop_sink *s, struct qf_writer *w, struct buf *err, char id[QUEUE_ID_MAX])
{
	int rc;

	id[0] = 0;
	if (s->direct) {
		if (qf_finish(w) < 0) {
			buf_printf(err, "write maildrop/%s: %s", s->md.tmp, strerror(errno));
			maildrop_abort(&s->md);
			return EX_TEMPFAIL;
		}
		if (maildrop_commit(&s->md, err) < 0)
			return EX_TEMPFAIL;
		snprintf(id, QUEUE_ID_MAX, "%s", s->md.id);
		return 0;
	}
	rc = qf_finish(w);
	close(s->fd);
	s->fd = -1;
	if (rc < 0) {
		int saved = errno;

		(void)postdrop_wait(s->pid);
		buf_printf(err, "write to postdrop: %s", strerror(saved));
		return EX_TEMPFAIL;
	}
	rc = postdrop_wait(s->pid);
	if (rc != 0)
		buf_printf(err, "postdrop failed (exit status %d)", rc);
	return rc;
}

void
maildrop_sink_abort(struct maildrop_sink *s)
{
	if (s->direct)
		maildrop_abort(&s->md);
	else if (s->fd >= 0) {
		/* closing without END: postdrop sees a torn file and stores nothing */
		close(s->fd);
		s->fd = -1;
		(void)postdrop_wait(s->pid);
	}
}

int
showq_copy(int json)
{
	struct buf path = BUF_INIT;
	char tmp[65536];
	ssize_t n;
	int fd;

	conf_queue_path(&path, "public/showq");
	fd = proto_connect(buf_str(&path));
	buf_free(&path);
	if (fd < 0)
		return -1;
	if (proto_send_strs(fd, PROTO_OK, json ? "json" : "text", (const char *)NULL) < 0) {
		close(fd);
		return -1;
	}
	while ((n = read(fd, tmp, sizeof(tmp))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			msg_die(EX_TEMPFAIL, "read from showq: %s", strerror(errno));
		}
		if (write_full(1, tmp, (size_t)n) < 0) {
			close(fd);
			msg_die(EX_IOERR, "write: %s", strerror(errno));
		}
	}
	close(fd);
	return 0;
}
