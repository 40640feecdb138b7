/*
 * hermod_spool.c: the spool layout of DESIGN.md, made and repaired in
 * one place.
 *
 *   $queue_directory/  0755 root            (rootless: the user)
 *     maildrop/        1730 owner:dropgroup (rootless: 0700)
 *     incoming/ active/ deferred/ hold/ corrupt/ private/
 *                      0700 owner
 *     public/          0710 owner:dropgroup (rootless: 0700)
 *     pid/             0755 root            (rootless: the user)
 *
 * "owner" is mail_owner and "dropgroup" setgid_group in a privileged
 * instance.  A rootless instance is one user's: nobody else may drop
 * files or reach its sockets, so maildrop/ and public/ are 0700 there.
 *
 * The running master holds an fcntl write lock on pid/master.pid for
 * its whole life; F_GETLK names the holder, so "is it running" never
 * trusts a stale pid written in the file.
 */
#include "hermod_spool.h"
#include "conf.h"
#include "service.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { OWN_ROOT, OWN_MAIL };
enum { GRP_OWNER, GRP_DROP };

static const struct spool_dir {
	const char *name;	/* "" is the queue directory itself */
	mode_t mode;		/* privileged instance */
	mode_t rootless_mode;
	int owner;
	int group;
} spool_dirs[] = {
	{ "",		0755,	0755, OWN_ROOT, GRP_OWNER },
	{ "maildrop",	01730,	0700, OWN_MAIL, GRP_DROP },
	{ "incoming",	0700,	0700, OWN_MAIL, GRP_OWNER },
	{ "active",	0700,	0700, OWN_MAIL, GRP_OWNER },
	{ "deferred",	0700,	0700, OWN_MAIL, GRP_OWNER },
	{ "hold",	0700,	0700, OWN_MAIL, GRP_OWNER },
	{ "corrupt",	0700,	0700, OWN_MAIL, GRP_OWNER },
	{ "private",	0700,	0700, OWN_MAIL, GRP_OWNER },
	{ "public",	0710,	0700, OWN_MAIL, GRP_DROP },
	{ "pid",	0755,	0755, OWN_ROOT, GRP_OWNER },
	{ NULL, 0, 0, 0, 0 }
};

int
spool_owner_get(struct spool_owner *o, struct buf *err)
{
	struct group *gr;

	memset(o, 0, sizeof(*o));
	o->privileged = conf_privileged();
	if (!o->privileged) {
		o->uid = geteuid();
		o->gid = getegid();
		o->dropgid = o->gid;
		return 0;
	}
	if (priv_owner(&o->uid, &o->gid) < 0) {
		buf_printf(err, "mail_owner %s: no such user", conf_str("mail_owner"));
		return -1;
	}
	if (o->uid == 0) {
		buf_printf(err, "mail_owner %s: must not be root", conf_str("mail_owner"));
		return -1;
	}
	if (!(gr = getgrnam(conf_str("setgid_group")))) {
		buf_printf(err, "setgid_group %s: no such group", conf_str("setgid_group"));
		return -1;
	}
	o->dropgid = gr->gr_gid;
	return 0;
}

int
spool_make(const struct spool_owner *o, int fix_log, struct buf *err)
{
	const char *q = conf_str("queue_directory");
	const struct spool_dir *d;
	int root = geteuid() == 0;

	if (*q != '/') {
		buf_printf(err, "queue_directory %s: not an absolute path", q);
		return -1;
	}
	if (mkdir_p(q, 0755) < 0) {
		buf_printf(err, "mkdir %s: %s", q, strerror(errno));
		return -1;
	}
	for (d = spool_dirs; d->name; d++) {
		struct buf p = BUF_INIT;
		struct stat st;
		mode_t mode = o->privileged ? d->mode : d->rootless_mode;
		uid_t uid;
		gid_t gid;
		int r, created = 0, chowned = 0;

		if (*d->name)
			buf_printf(&p, "%s/%s", q, d->name);
		else
			buf_adds(&p, q);
		if (o->privileged) {
			uid = d->owner == OWN_MAIL ? o->uid : 0;
			gid = d->group == GRP_DROP ? o->dropgid : (d->owner == OWN_MAIL ? o->gid : 0);
		} else {
			uid = o->uid;
			gid = o->gid;
		}
		if (*d->name) {
			if (mkdir(buf_str(&p), mode & 0700) == 0)
				created = 1;
			else if (errno != EEXIST) {
				buf_printf(err, "mkdir %s: %s", buf_str(&p), strerror(errno));
				buf_free(&p);
				return -1;
			}
		}
		/* the queue directory itself may be a symbolic link; its
		 * folders may not */
		r = *d->name ? lstat(buf_str(&p), &st) : stat(buf_str(&p), &st);
		if (r < 0 || !S_ISDIR(st.st_mode)) {
			buf_printf(err, "%s: not a directory", buf_str(&p));
			buf_free(&p);
			return -1;
		}
		if (root && (st.st_uid != uid || st.st_gid != gid)) {
			if (fix_log && !created)
				msg_warn("%s: owner %ld:%ld, setting %ld:%ld", buf_str(&p),
				    (long)st.st_uid, (long)st.st_gid, (long)uid, (long)gid);
			if (chown(buf_str(&p), uid, gid) < 0) {
				buf_printf(err, "chown %s: %s", buf_str(&p), strerror(errno));
				buf_free(&p);
				return -1;
			}
			chowned = 1;
		} else if (!root && st.st_uid != geteuid()) {
			buf_printf(err, "%s: owned by uid %ld, not by me (uid %ld)", buf_str(&p),
			    (long)st.st_uid, (long)geteuid());
			buf_free(&p);
			return -1;
		}
		/* the mode is set after chown, which may clear set-id bits */
		if ((st.st_mode & 07777) != mode || chowned) {
			if (fix_log && !created && (st.st_mode & 07777) != mode)
				msg_warn("%s: mode %04o, setting %04o", buf_str(&p),
				    (unsigned)(st.st_mode & 07777), (unsigned)mode);
			if (chmod(buf_str(&p), mode) < 0) {
				buf_printf(err, "chmod %s: %s", buf_str(&p), strerror(errno));
				buf_free(&p);
				return -1;
			}
		}
		buf_free(&p);
	}
	return 0;
}

void
spool_pid_path(struct buf *out)
{
	conf_queue_path(out, SPOOL_PID_FILE);
}

long
spool_master_pid(struct buf *err)
{
	struct buf p = BUF_INIT;
	struct flock fl;
	int fd;

	spool_pid_path(&p);
	fd = open(buf_str(&p), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT) {
			buf_free(&p);
			return 0;
		}
		buf_printf(err, "open %s: %s", buf_str(&p), strerror(errno));
		buf_free(&p);
		return -1;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_GETLK, &fl) < 0) {
		buf_printf(err, "lock test %s: %s", buf_str(&p), strerror(errno));
		close(fd);
		buf_free(&p);
		return -1;
	}
	close(fd);
	buf_free(&p);
	if (fl.l_type == F_UNLCK)
		return 0;
	/* l_pid is 0 when the holder is in another pid namespace */
	return fl.l_pid > 0 ? (long)fl.l_pid : 1;
}
