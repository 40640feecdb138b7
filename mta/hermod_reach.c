/*
 * hermod_reach.c: can the users that run the daemons reach what they
 * need?  A privileged instance made in a folder that mail_owner cannot
 * pass through (mktemp -d makes 0700 folders) used to start, accept
 * mail and then stall with every daemon dying at chdir; "hermod init"
 * and "hermod start" now refuse it, naming the folder and the fix.
 *
 * The check is made by the user itself: a child process takes on the
 * user's uid, gid and groups and asks access(2) of each folder on the
 * way, so ACLs, group membership and root-squashing file systems are
 * judged exactly as the daemons will meet them.
 */
#include "hermod.h"
#include "conf.h"
#include "util.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

/*
 * In a child running as pw, walk every folder from / down to each path
 * and report on fd the first one that pw cannot search ("FOLDER\tPATH\n"
 * per path that fails).  A component that does not exist ends the walk
 * for that path: whoever makes it (hermod init, the master) makes it
 * reachable.  want_read: the last component must also be readable.
 */
static void
reach_child(const struct passwd *pw, char *const paths[], const int want_read[], int fd)
{
	struct buf pre = BUF_INIT, line = BUF_INIT;
	size_t i;

	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		_exit(EX_OSERR);
	for (i = 0; paths[i]; i++) {
		const char *p = paths[i], *s = p;
		struct stat st;

		buf_reset(&pre);
		for (;;) {
			const char *slash = strchr(s + 1, '/');
			int last = slash == NULL;

			buf_reset(&pre);
			buf_add(&pre, p, last ? strlen(p) : (size_t)(slash - p));
			if (pre.len == 0)
				buf_adds(&pre, "/");
			/* every folder above was searchable, so a failure
			 * here is a missing component */
			if (stat(buf_str(&pre), &st) < 0)
				break;
			if (S_ISDIR(st.st_mode) && access(buf_str(&pre), X_OK) < 0) {
				buf_printf(&line, "%s\t%s\n", buf_str(&pre), p);
				break;
			}
			if (last) {
				if (want_read[i] && access(p, R_OK) < 0)
					buf_printf(&line, "%s\t%s\n", p, p);
				break;
			}
			s = slash;
		}
	}
	if (line.len && write_full(fd, line.data, line.len) < 0)
		_exit(EX_IOERR);
	_exit(0);
}

/* Say why user cannot use folder and what would fix it. */
static void
explain(const char *user, const char *what, const char *folder, const char *path, int fatal)
{
	struct stat st;
	struct passwd *opw;
	struct group *ogr;
	char mode[16] = "?";
	const char *owner = "?", *group = "?";

	if (stat(folder, &st) == 0) {
		snprintf(mode, sizeof(mode), "%04o", (unsigned)(st.st_mode & 07777));
		if ((opw = getpwuid(st.st_uid)))
			owner = opw->pw_name;
		if ((ogr = getgrgid(st.st_gid)))
			group = ogr->gr_name;
	}
	if (strcmp(folder, path))
		hermod_say("%s: user %s cannot pass through %s (mode %s, %s:%s) to reach %s, which %s",
		    fatal ? "error" : "warning", user, folder, mode, owner, group, path, what);
	else
		hermod_say("%s: user %s cannot read %s (mode %s, %s:%s), which %s",
		    fatal ? "error" : "warning", user, folder, mode, owner, group, what);
	if (strcmp(folder, path))
		hermod_say("  fix: chmod o+x %s (or use a folder every user can pass through)", folder);
	else
		hermod_say("  fix: chmod o+r %s", folder);
}

/*
 * Check that user (a passwd name) can reach paths (a NULL-terminated
 * list; want_read says which must also be readable).  Prints each
 * problem; returns the number of paths user cannot reach, or -1 when
 * the check itself failed (said why).
 */
static int
reach_check(const char *user, char *const paths[], const int want_read[], const char *what, int fatal)
{
	struct passwd *pw = getpwnam(user);
	struct buf out = BUF_INIT;
	int pfd[2], status, bad = 0;
	pid_t pid;

	if (!pw) {
		hermod_say("user %s does not exist", user);
		return -1;
	}
	if (pipe(pfd) < 0) {
		hermod_say("pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	if ((pid = fork()) < 0) {
		hermod_say("fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		close(pfd[0]);
		reach_child(pw, paths, want_read, pfd[1]);
	}
	close(pfd[1]);
	if (read_fd(pfd[0], &out, 1 << 20) < 0)
		buf_reset(&out);
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			hermod_say("waitpid: %s", strerror(errno));
			buf_free(&out);
			return -1;
		}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		hermod_say("could not check what user %s can reach (status %d)", user,
		    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		buf_free(&out);
		return -1;
	}
	if (out.len) {
		char **lines = str_split(buf_str(&out), "\n");
		size_t i;

		for (i = 0; lines[i]; i++) {
			char *tab = strchr(lines[i], '\t');
			size_t j;

			if (!tab)
				continue;
			*tab = 0;
			bad++;
			/* one folder usually blocks every path: say it once */
			for (j = 0; j < i; j++)
				if (!strcmp(lines[j], lines[i]))
					break;
			if (j == i)
				explain(user, what, lines[i], tab + 1, fatal);
		}
		strv_free(lines);
	}
	buf_free(&out);
	return bad;
}

int
hermod_reach_daemons(const char *owner, const char *confdir, const char *qdir,
    const char *mailbase, const char *logfile)
{
	struct buf conf = BUF_INIT, logdir = BUF_INIT;
	char *paths[6];
	int want_read[6] = { 0 };
	int n = 0, r;

	buf_printf(&conf, "%s/hermod.conf", confdir);
	paths[n] = (char *)buf_str(&conf);
	want_read[n++] = 1;
	paths[n++] = (char *)qdir;
	paths[n++] = (char *)mailbase;
	if (logfile && *logfile) {
		const char *slash = strrchr(logfile, '/');

		if (slash && slash != logfile) {
			buf_add(&logdir, logfile, (size_t)(slash - logfile));
			paths[n++] = (char *)buf_str(&logdir);
		}
	}
	paths[n] = NULL;
	r = reach_check(owner, paths, want_read,
	    "the daemons (running as that user) need: the instance would accept mail and never deliver it", 1);
	buf_free(&conf);
	buf_free(&logdir);
	return r;
}

int
hermod_reach_users(const char *user, const char *confdir, const char *qdir)
{
	struct buf conf = BUF_INIT;
	char *paths[3];
	int want_read[3] = { 1, 0, 0 };
	int r;

	/* the spool itself: maildrop/ below it is reached through the
	 * setgid postdrop, which spool_make keeps right */
	buf_printf(&conf, "%s/hermod.conf", confdir);
	paths[0] = (char *)buf_str(&conf);
	paths[1] = (char *)qdir;
	paths[2] = NULL;
	r = reach_check(user, paths, want_read,
	    "sendmail needs when an ordinary user runs it: their mail would be refused", 0);
	buf_free(&conf);
	return r;
}
