/*
 * hermod_init.c: "hermod init DIR": make an instance.
 *
 * DIR gets hermod.conf, master.conf, aliases (+ aliases.db), users
 * (empty, 0600), mail/ and spool/ (hermod_spool.c); for DIR =
 * $sysconfdir/hermod (the installed system) the spool is
 * $localstatedir/spool/hermod and the mail $localstatedir/lib/hermod/mail.  Run by root, the
 * instance is privileged (the mail_owner user and setgid_group group
 * are created when missing); run by anybody else, or with --rootless,
 * it is a rootless instance that one user owns and runs.
 *
 * Invariants: the configuration files are written atomically; an
 * existing instance is never overwritten without --force, and even then
 * its data (aliases, users, mail, spool) is kept: only hermod.conf and
 * master.conf are rewritten.  A running instance is never touched.
 */
#include "hermod.h"
#include "hermod_spool.h"
#include "conf.h"
#include "map.h"
#include "tls.h"
#include "util.h"

#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#ifndef HERMOD_LIBEXECDIR
#define HERMOD_LIBEXECDIR "/usr/libexec/hermod"
#endif
#ifndef HERMOD_SBINDIR
#define HERMOD_SBINDIR "/usr/sbin"
#endif
#ifndef HERMOD_SYSCONFDIR
#define HERMOD_SYSCONFDIR "/etc"
#endif
#ifndef HERMOD_LOCALSTATEDIR
#define HERMOD_LOCALSTATEDIR "/var"
#endif

/* the highest offset is pop3s, N+995 (imaps is N+993) */
#define MAX_PORT_BASE	(65535 - 995)

struct init_opts {
	struct buf dir;
	const char *domain;
	long long port_base;
	int rootless;
	int force;
	int privileged;
	char *login;		/* the invoking user */
	char *hostname;
	struct buf qdir;	/* queue_directory */
	struct buf mailbase;	/* virtual_mailbox_base */
	struct buf maillog;	/* maillog_file when there is no syslog */
	int syslog;		/* the machine has a syslog socket */
	int installed;		/* DIR is the installed system's (/etc/hermod) */
};

static int
domain_valid(const char *d)
{
	size_t i, n = strlen(d);

	if (n == 0 || n > 253 || d[0] == '.' || d[0] == '-' || d[n - 1] == '.' || strstr(d, ".."))
		return 0;
	for (i = 0; i < n; i++) {
		char c = d[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return 0;
	}
	return 1;
}

/* A path we write into configuration files: no white space, commas,
 * '$', '#' or control characters, which the readers would split or
 * expand. */
static int
path_safe(const char *p)
{
	for (; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == ',' || *p == '$' || *p == '#' ||
		    *p == ':' || *p == 0x7f)
			return 0;
	return 1;
}

static int
run(char *const argv[])
{
	pid_t pid;
	int status;

	fflush(NULL);
	if ((pid = fork()) < 0) {
		hermod_say("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		static char *env[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };

		execve(argv[0], argv, env);
		hermod_say("exec %s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			hermod_say("waitpid: %s", strerror(errno));
			return -1;
		}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		hermod_say("%s failed (status %d)", argv[0], WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return -1;
	}
	return 0;
}

static const char *
find_tool(const char *name)
{
	static const char *dirs[] = { "/usr/sbin", "/sbin", "/usr/bin", "/bin", NULL };
	static char path[256];
	size_t i;

	for (i = 0; dirs[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", dirs[i], name);
		if (access(path, X_OK) == 0)
			return path;
	}
	return NULL;
}

/* The built-in default of a parameter (what a new hermod.conf that does
 * not set it gets). */
static const char *
conf_default(const char *want)
{
	const char *name, *def, *doc;
	size_t i;

	for (i = 0; conf_param_info(i, &name, &def, &doc); i++)
		if (!strcmp(name, want))
			return def;
	msg_panic("no parameter %s", want);
}

/* The mail_owner user and setgid_group group of a privileged instance
 * (the defaults: the hermod.conf that init writes does not change them). */
static int
make_system_accounts(void)
{
	const char *owner = conf_default("mail_owner"), *drop = conf_default("setgid_group");
	const char *tool, *nologin;
	char *shell;

	if (!getgrnam(drop)) {
		char *argv[] = { NULL, "--system", (char *)drop, NULL };

		if (!(tool = find_tool("groupadd"))) {
			hermod_say("group %s is missing and there is no groupadd to make it", drop);
			return -1;
		}
		argv[0] = (char *)tool;
		if (run(argv) < 0)
			return -1;
		printf("  made group %s\n", drop);
	}
	if (!getpwnam(owner)) {
		char *argv[12];
		int n = 0, r;

		nologin = find_tool("nologin");
		shell = xstrdup(nologin ? nologin : "/bin/false");
		/* find_tool's buffer is reused: look up useradd last */
		if (!(tool = find_tool("useradd"))) {
			hermod_say("user %s is missing and there is no useradd to make it", owner);
			free(shell);
			return -1;
		}
		argv[n++] = (char *)tool;
		argv[n++] = "--system";
		argv[n++] = "--no-create-home";
		argv[n++] = "--home-dir";
		argv[n++] = "/nonexistent";
		argv[n++] = "--shell";
		argv[n++] = shell;
		if (getgrnam(owner)) {
			/* a group of that name exists: use it */
			argv[n++] = "-g";
			argv[n++] = (char *)owner;
		} else
			argv[n++] = "--user-group";
		argv[n++] = (char *)owner;
		argv[n] = NULL;
		r = run(argv);
		free(shell);
		if (r < 0)
			return -1;
		printf("  made user %s\n", owner);
	}
	return 0;
}

static int
write_conf_file(const char *dir, const char *name, const struct buf *text, mode_t mode)
{
	struct buf p = BUF_INIT;
	int rc = 0;

	buf_printf(&p, "%s/%s", dir, name);
	if (write_file_atomic(buf_str(&p), text->data ? text->data : "", text->len, mode) < 0) {
		hermod_say("write %s: %s", buf_str(&p), strerror(errno));
		rc = -1;
	} else if (chmod(buf_str(&p), mode) < 0) {	/* the umask applied */
		hermod_say("chmod %s: %s", buf_str(&p), strerror(errno));
		rc = -1;
	}
	buf_free(&p);
	return rc;
}

static void
hermod_conf_text(struct buf *t, const struct init_opts *o)
{
	const char *d = buf_str(&o->dir);
	struct buf build = BUF_INIT, date = BUF_INIT;
	long long n = o->port_base;

	rfc5322_date(&date, time(NULL));
	buf_printf(t,
	    "# hermod.conf: the hermod instance in %s,\n"
	    "# made by \"hermod init\" on %s.\n"
	    "# Every parameter, its default and meaning: hermod.conf(5).\n"
	    "# The values in effect: hermod -C %s config\n"
	    "# Only those set here:  hermod -C %s config -n\n"
	    "# After a change: hermod -C %s reload\n\n", d, buf_str(&date), d, d, d);
	if (o->privileged)
		buf_printf(t,
		    "# A privileged instance: hermod-master runs as root, and each\n"
		    "# daemon with the least privilege its job needs (see hermod(8)).\n"
		    "privileged = yes\n");
	else
		buf_printf(t,
		    "# A rootless instance: everything runs as %s.\n"
		    "privileged = no\n"
		    "mail_owner = %s\n", o->login, o->login);
	if (o->installed)
		buf_printf(t, "# the installed system: the spool and the virtual users' mail in %s\n",
		    HERMOD_LOCALSTATEDIR);
	buf_printf(t, "queue_directory = %s\n", buf_str(&o->qdir));
	if (hermod_build_tree(&build)) {
		const char *b = buf_str(&build);

		buf_printf(t,
		    "# programs from the build tree %s\n"
		    "daemon_directory = %s/mta:%s/queue:%s/deliver:%s/popd:%s/imapd:%s/xmppgw\n"
		    "command_directory = %s/mta\n", b, b, b, b, b, b, b, b);
	} else
		buf_printf(t,
		    "daemon_directory = %s\n"
		    "command_directory = %s\n", HERMOD_LIBEXECDIR, HERMOD_SBINDIR);
	buf_printf(t,
	    "\n# names; mydestination (default: $myhostname, localhost.$mydomain,\n"
	    "# localhost, $mydomain) lists the domains delivered here\n"
	    "mydomain = %s\n"
	    "myhostname = %s\n", o->domain, o->hostname);
	buf_printf(t,
	    "\n# local delivery\n"
	    "alias_maps = hash:%s/aliases\n"
	    "alias_database = hash:%s/aliases\n"
	    "virtual_users_file = %s/users\n"
	    "virtual_mailbox_base = %s\n", d, d, d, buf_str(&o->mailbase));
	if (!o->privileged)
		buf_printf(t,
		    "# the instance user's own mbox (a rootless instance cannot write /var/mail)\n"
		    "mail_spool_directory = %s/mailspool\n", d);
	if (o->syslog)
		buf_printf(t,
		    "\n# logs go to syslog (facility mail); to have them in one file instead:\n"
		    "# maillog_file = %s\n", buf_str(&o->maillog));
	else
		buf_printf(t,
		    "\n# this machine had no syslog socket (/dev/log) when hermod init ran:\n"
		    "# every daemon logs through postlogd into this file\n"
		    "maillog_file = %s\n", buf_str(&o->maillog));
	buf_printf(t, "\n# network services listen on loopback only\ninet_interfaces = 127.0.0.1\n");
	buf_printf(t, "# TLS for smtpd, popd and imapd: %s/tls/cert.pem and key.pem (made\n"
	    "# self-signed by hermod init; replace them with your own)\n", d);
	if (n)
		buf_printf(t,
		    "# port plan (--port-base %lld), see master.conf:\n"
		    "#   smtp %lld, submission %lld, smtps %lld, pop3 %lld, pop3s %lld,\n"
		    "#   imap %lld, imaps %lld, xmpp c2s %lld, xmpp component %lld\n",
		    n, n + 25, n + 87, n + 65, n + 110, n + 995, n + 143, n + 993, n + 222, n + 347);
	else
		buf_printf(t,
		    "# port plan: the standard ports (smtp 25, submission 587, smtps 465,\n"
		    "#   pop3 110, pop3s 995, imap 143, imaps 993, xmpp c2s 5222,\n"
		    "#   xmpp component 5347),\n"
		    "#   see master.conf\n");
	buf_free(&build);
	buf_free(&date);
}

static int
have_program(const char *name)
{
	struct buf p = BUF_INIT;
	int found = conf_daemon_program(name, &p) == 0;

	buf_free(&p);
	return found;
}

/*
 * Ordinary users' sendmail stores mail through postdrop, which must be
 * setgid setgid_group.  "make install" can only do that when the group
 * exists, and a first install usually comes before the first hermod
 * init (which makes the group), so init finishes the job for the
 * installed postdrop.  A postdrop elsewhere (a build tree, which the
 * next "make" replaces) is left alone, but init says what to run.
 */
static void
fix_postdrop(void)
{
	const char *gname = conf_str("setgid_group");
	struct buf p = BUF_INIT;
	struct group *gr = getgrnam(gname);
	struct stat st;

	if (conf_daemon_program("postdrop", &p) < 0) {
		printf("  note: no postdrop in daemon_directory %s: ordinary users cannot send mail\n",
		    conf_str("daemon_directory"));
		goto out;
	}
	if (!gr || stat(buf_str(&p), &st) < 0)
		goto out;
	if (st.st_gid == gr->gr_gid && (st.st_mode & S_ISGID) && st.st_uid == 0 &&
	    !(st.st_mode & (S_IWGRP | S_IWOTH)))
		goto out;
	if (!strcmp(buf_str(&p), HERMOD_LIBEXECDIR "/postdrop")) {
		/* chown clears the setgid bit: chown first, then chmod */
		if (chown(buf_str(&p), 0, gr->gr_gid) < 0 || chmod(buf_str(&p), 02755) < 0) {
			hermod_say("warning: %s: cannot make it setgid %s: %s", buf_str(&p), gname,
			    strerror(errno));
			hermod_say("  ordinary users cannot send mail until: chown root:%s %s && chmod 2755 %s",
			    gname, buf_str(&p), buf_str(&p));
		} else
			printf("  %s  made setgid %s, so that ordinary users can send mail\n",
			    buf_str(&p), gname);
	} else
		printf("  note: %s is not setgid %s, so only root can send mail through this\n"
		    "        instance; for ordinary users run: chown root:%s %s && chmod 2755 %s\n",
		    buf_str(&p), gname, gname, buf_str(&p), buf_str(&p));
out:
	buf_free(&p);
}

/*
 * DIR/bin/sendmail, mailq and newaliases: programs such as mutt, git
 * send-email and mailx take one sendmail path without arguments, and an
 * instance needs -C DIR.  Small scripts that pass it.
 */
static int
make_bin_scripts(const struct init_opts *o)
{
	static const struct {
		const char *name, *args;
	} scripts[] = {
		{ "sendmail", "" },
		{ "mailq", " -bp" },
		{ "newaliases", " -bi" },
		{ NULL, NULL }
	};
	const char *d = buf_str(&o->dir);
	struct buf bdir = BUF_INIT, t = BUF_INIT, prog = BUF_INIT;
	size_t i;
	int rc = -1;

	buf_printf(&bdir, "%s/bin", d);
	if (mkdir_p(buf_str(&bdir), 0755) < 0) {
		hermod_say("mkdir %s: %s", buf_str(&bdir), strerror(errno));
		goto out;
	}
	/* the paths are path_safe (no quote, no white space): plain single
	 * quotes are enough */
	buf_printf(&prog, "%s/sendmail", conf_str("command_directory"));
	for (i = 0; scripts[i].name; i++) {
		buf_reset(&t);
		buf_printf(&t,
		    "#!/bin/sh\n"
		    "# %s for the hermod instance in %s (written by hermod init):\n"
		    "# give this path to programs that run sendmail without options.\n"
		    "exec '%s' -C '%s'%s \"$@\"\n",
		    scripts[i].name, d, buf_str(&prog), d, scripts[i].args);
		if (write_conf_file(buf_str(&bdir), scripts[i].name, &t, 0755) < 0)
			goto out;
	}
	rc = 0;
out:
	buf_free(&bdir);
	buf_free(&t);
	buf_free(&prog);
	return rc;
}

/* 1 if a syslog daemon listens on /dev/log (containers and minimal
 * systems have none: log lines sent there are lost). */
static int
syslog_socket(void)
{
	struct stat st;

	return stat("/dev/log", &st) == 0 && S_ISSOCK(st.st_mode);
}

/* The host's fully qualified name if the resolver (/etc/hosts, DNS)
 * knows one for the short name, else the short name; *fq says which. */
static char *
host_name(int *fq)
{
	struct addrinfo hints, *res = NULL;
	char host[256];
	char *name;

	if (gethostname(host, sizeof(host)) < 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = 0;
	*fq = strchr(host, '.') != NULL;
	if (*fq)
		return xstrdup(host);
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_CANONNAME;
	hints.ai_family = AF_UNSPEC;
	if (getaddrinfo(host, NULL, &hints, &res) == 0 && res && res->ai_canonname &&
	    strchr(res->ai_canonname, '.') && domain_valid(res->ai_canonname)) {
		name = xstrdup(res->ai_canonname);
		*fq = 1;
	} else
		name = xstrdup(host);
	if (res)
		freeaddrinfo(res);
	return name;
}

/* master.conf; written once hermod.conf is loaded, because a network
 * service is enabled only when its program is in $daemon_directory.
 * enabled gets the list of the services turned on, for the summary. */
static void
master_conf_text(struct buf *t, const struct init_opts *o, struct buf *enabled)
{
	long long n = o->port_base;
	static const struct {
		const char *name, *prog;
		int off, std;
		const char *args;	/* NULL: not enabled by this release */
	} net[] = {
		{ "smtp", "smtpd", 25, 25, "" },
		{ "submission", "smtpd", 87, 587, " -o smtpd_sasl_auth_required=yes" },
		{ "smtps", "smtpd", 65, 465, " -o smtpd_tls_wrappermode=yes" },
		{ "pop3", "popd", 110, 110, "" },
		{ "pop3s", "popd", 995, 995, " -o pop3_tls_wrappermode=yes" },
		{ "imap", "imapd", 143, 143, "" },
		{ "imaps", "imapd", 993, 993, " -o imap_tls_wrappermode=yes" },
		{ "xmpp", "xmppgw", 222, 5222, NULL },
		{ "component", "xmppgw", 347, 5347, NULL },
		{ NULL, NULL, 0, 0, NULL }
	};
	struct buf host = BUF_INIT;
	size_t i;

	/* rootless: loopback; privileged: the first of $inet_interfaces
	 * (127.0.0.1 as init writes it) */
	if (o->privileged) {
		char **ifs = conf_list("inet_interfaces");

		if (!ifs[0] || !strcmp(ifs[0], "all"))
			buf_adds(&host, "*");
		else if (strchr(ifs[0], ':'))
			buf_printf(&host, "[%s]", ifs[0]);	/* IPv6 */
		else
			buf_adds(&host, ifs[0]);
		strv_free(ifs);
	} else
		buf_adds(&host, "127.0.0.1");
	buf_printf(t,
	    "# master.conf: the services hermod-master runs for the instance in\n"
	    "# %s; see master.conf(5).  Unix socket paths are relative to\n"
	    "# queue_directory.  After a change: hermod -C %s reload\n"
	    "#\n"
	    "# service   listen          type private limit program [args]\n"
	    "pickup      public/pickup   unix n       1     pickup\n"
	    "qmgr        private/qmgr    unix y       1     qmgr\n"
	    "local       private/local   unix y       8     local\n"
	    "showq       public/showq    unix n       4     showq\n"
	    "authd       private/authd   unix y       4     authd\n"
	    "# the one writer of maillog_file (idle when logs go to syslog)\n"
	    "postlog     public/postlog  unix-dgram n 1     postlogd\n"
	    "#\n"
	    "# The network services, with this instance's ports (port base %lld).\n"
	    "# Those whose program was not in daemon_directory when hermod init\n"
	    "# ran are commented out: enable each when its program exists.\n",
	    buf_str(&o->dir), buf_str(&o->dir), n);
	buf_adds(enabled, "pickup, qmgr, local, showq, authd, postlog");
	/* the outbound SMTP/LMTP agent (qmgr uses private/smtp for both);
	 * not named "smtp": that name is smtpd's inet service below */
	if (have_program("smtp")) {
		buf_adds(t, "smtp-out    private/smtp    unix y       20    smtp\n");
		buf_adds(enabled, ", smtp-out");
	}
	for (i = 0; net[i].name; i++) {
		struct buf l = BUF_INIT;
		int on = net[i].args && have_program(net[i].prog);

		buf_printf(&l, "%s:%lld", buf_str(&host), n ? n + net[i].off : (long long)net[i].std);
		buf_printf(t, "%s%-10s %-15s inet n       -     %s%s\n", on ? "" : "#", net[i].name,
		    buf_str(&l), net[i].prog, net[i].args ? net[i].args : "");
		if (on)
			buf_printf(enabled, ", %s", net[i].name);
		buf_free(&l);
	}
	buf_free(&host);
}

static void
aliases_text(struct buf *t, const struct init_opts *o)
{
	const char *d = buf_str(&o->dir);
	const char *pm = o->privileged ? "root" : o->login;

	buf_printf(t,
	    "# aliases(5) of the hermod instance in %s.\n"
	    "# After editing, rebuild aliases.db: newaliases -C %s\n"
	    "#   (or: hermod -C %s map build --aliases hash:%s/aliases)\n"
	    "#\n"
	    "# Mailboxes every mail domain must have (RFC 2142, RFC 5321 4.5.1),\n"
	    "# all read by the postmaster.\n"
	    "postmaster: %s\n"
	    "MAILER-DAEMON: postmaster\n"
	    "abuse: postmaster\n"
	    "security: postmaster\n"
	    "hostmaster: postmaster\n"
	    "webmaster: postmaster\n"
	    "noc: postmaster\n", d, d, d, d, pm);
	if (o->privileged)
		buf_printf(t,
		    "\n# system accounts that may receive mail\n"
		    "%s: root\n"
		    "nobody: root\n", conf_str("mail_owner"));
	else if (strcmp(o->login, "root"))
		buf_printf(t, "root: postmaster\n");
}

static int
parse_args(int argc, char **argv, struct init_opts *o)
{
	const char *dir = NULL;
	int i;

	o->domain = "example.test";
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = NULL;

		if (!strncmp(a, "--domain=", 9))
			o->domain = a + 9;
		else if (!strcmp(a, "--domain") || !strcmp(a, "-d")) {
			if (++i >= argc)
				goto missing;
			o->domain = argv[i];
		} else if (!strncmp(a, "--port-base=", 12))
			v = a + 12;
		else if (!strcmp(a, "--port-base") || !strcmp(a, "-p")) {
			if (++i >= argc)
				goto missing;
			v = argv[i];
		} else if (!strcmp(a, "--rootless"))
			o->rootless = 1;
		else if (!strcmp(a, "--force") || !strcmp(a, "-f"))
			o->force = 1;
		else if (a[0] == '-' && a[1]) {
			hermod_say("init: unknown option %s", a);
			return EX_USAGE;
		} else if (dir) {
			hermod_say("init: one folder only (%s, %s)", dir, a);
			return EX_USAGE;
		} else
			dir = a;
		if (v && parse_ll(v, 0, MAX_PORT_BASE, &o->port_base) < 0) {
			hermod_say("init: --port-base %s: want a number from 0 to %d", v, MAX_PORT_BASE);
			return EX_USAGE;
		}
		continue;
missing:
		hermod_say("init: %s needs a value", a);
		return EX_USAGE;
	}
	if (!dir || !*dir) {
		hermod_say("usage: hermod init DIR [--domain D] [--port-base N] [--rootless] [--force]");
		return EX_USAGE;
	}
	if (!domain_valid(o->domain)) {
		hermod_say("init: --domain %s: not a domain name", o->domain);
		return EX_USAGE;
	}
	hermod_abspath(&o->dir, dir);
	if (!path_safe(buf_str(&o->dir))) {
		hermod_say("init: %s: choose a folder name without white space or any of , $ # :",
		    buf_str(&o->dir));
		return EX_USAGE;
	}
	return 0;
}

/* Refuse an existing instance (unless --force), and always a running one. */
static int
check_existing(const struct init_opts *o)
{
	struct buf p = BUF_INIT, err = BUF_INIT;
	const char *d = buf_str(&o->dir);
	int have = 0, rc = 0;
	long pid;

	buf_printf(&p, "%s/hermod.conf", d);
	have |= access(buf_str(&p), F_OK) == 0;
	buf_reset(&p);
	buf_printf(&p, "%s/master.conf", d);
	have |= access(buf_str(&p), F_OK) == 0;
	buf_free(&p);
	if (!have)
		return 0;
	if (!o->force) {
		hermod_say("%s already holds an instance; --force rewrites its hermod.conf and master.conf (keeping aliases, users, mail and spool)", d);
		return EX_CANTCREAT;
	}
	if (conf_load(d, &err) == 0 && (pid = spool_master_pid(&err)) > 0) {
		hermod_say("the instance in %s is running (pid %ld): stop it first", d, pid);
		rc = EX_TEMPFAIL;
	}
	buf_free(&err);
	return rc;
}

static int
make_file_if_missing(const char *path, const struct buf *text, mode_t mode, int *made)
{
	struct buf p = BUF_INIT;
	const char *slash = strrchr(path, '/');
	int rc;

	*made = 0;
	if (access(path, F_OK) == 0)
		return 0;
	buf_add(&p, path, (size_t)(slash - path));
	rc = write_conf_file(buf_str(&p), slash + 1, text, mode);
	buf_free(&p);
	if (rc == 0)
		*made = 1;
	return rc;
}

/* DIR/tls/cert.pem and key.pem: a self-signed certificate for the host
 * name, unless both files are there already (--force keeps them). */
static int
make_tls(const struct init_opts *o, int *made)
{
	struct buf tdir = BUF_INIT, cert = BUF_INIT, key = BUF_INIT, err = BUF_INIT;
	int rc = -1;

	*made = 0;
	buf_printf(&tdir, "%s/tls", buf_str(&o->dir));
	buf_printf(&cert, "%s/cert.pem", buf_str(&tdir));
	buf_printf(&key, "%s/key.pem", buf_str(&tdir));
	if (access(buf_str(&cert), F_OK) == 0 && access(buf_str(&key), F_OK) == 0) {
		rc = 0;
		goto out;
	}
	if (mkdir_p(buf_str(&tdir), 0755) < 0) {
		hermod_say("mkdir %s: %s", buf_str(&tdir), strerror(errno));
		goto out;
	}
	if (tls_make_selfsigned(buf_str(&cert), buf_str(&key), o->hostname, &err) < 0) {
		hermod_say("TLS certificate: %s", buf_str(&err));
		goto out;
	}
	*made = 1;
	rc = 0;
out:
	buf_free(&tdir);
	buf_free(&cert);
	buf_free(&key);
	buf_free(&err);
	return rc;
}

int
hermod_init(int argc, char **argv)
{
	struct init_opts o;
	struct buf t = BUF_INIT, p = BUF_INIT, err = BUF_INIT, services = BUF_INIT;
	struct spool_owner own;
	struct passwd *pw;
	const char *d;
	int rc, made_aliases = 0, made_users = 0, made_tls = 0, fqdn;
	long nalias;

	memset(&o, 0, sizeof(o));
	if ((rc = parse_args(argc, argv, &o)) != 0)
		goto out;
	d = buf_str(&o.dir);
	o.privileged = geteuid() == 0 && !o.rootless;
	/* "hermod init /etc/hermod" makes the installed system: its spool
	 * and mail belong under /var, not in the configuration folder */
	o.installed = !strcmp(d, HERMOD_SYSCONFDIR "/hermod");
	if (o.installed) {
		buf_printf(&o.qdir, "%s/spool/hermod", HERMOD_LOCALSTATEDIR);
		buf_printf(&o.mailbase, "%s/lib/hermod/mail", HERMOD_LOCALSTATEDIR);
		buf_printf(&o.maillog, "%s/log/hermod/maillog", HERMOD_LOCALSTATEDIR);
	} else {
		buf_printf(&o.qdir, "%s/spool", d);
		buf_printf(&o.mailbase, "%s/mail", d);
		buf_printf(&o.maillog, "%s/log/maillog", d);
	}
	o.syslog = syslog_socket();
	if (!(pw = getpwuid(geteuid()))) {
		hermod_say("uid %ld has no passwd entry", (long)geteuid());
		rc = EX_NOUSER;
		goto out;
	}
	o.login = xstrdup(pw->pw_name);
	o.hostname = host_name(&fqdn);
	if ((rc = check_existing(&o)) != 0)
		goto out;
	if (mkdir_p(d, 0755) < 0) {
		hermod_say("mkdir %s: %s", d, strerror(errno));
		rc = EX_CANTCREAT;
		goto out;
	}
	printf("hermod: making a %s instance in %s (domain %s)\n",
	    o.privileged ? "privileged" : "rootless", d, o.domain);
	if (o.privileged && make_system_accounts() < 0) {
		rc = EX_OSERR;
		goto out;
	}
	/* the folders that exist already on the way to the instance must
	 * let the daemons through; what init makes below is 0755 */
	if (o.privileged) {
		int bad = hermod_reach_daemons(conf_default("mail_owner"), d, buf_str(&o.qdir),
		    buf_str(&o.mailbase), NULL);

		if (bad != 0) {
			if (bad > 0)
				hermod_say("init: refusing to make an instance its daemons cannot reach");
			rc = EX_CANTCREAT;
			goto out;
		}
		(void)hermod_reach_users(conf_default("default_privs"), d, buf_str(&o.qdir));
	}
	rc = EX_CANTCREAT;
	hermod_conf_text(&t, &o);
	if (write_conf_file(d, "hermod.conf", &t, 0644) < 0)
		goto out;
	if (conf_load(d, &err) < 0) {
		hermod_say("%s", buf_str(&err));
		rc = EX_SOFTWARE;
		goto out;
	}
	buf_reset(&t);
	master_conf_text(&t, &o, &services);
	if (write_conf_file(d, "master.conf", &t, 0644) < 0)
		goto out;
	if (make_tls(&o, &made_tls) < 0)
		goto out;

	buf_reset(&t);
	aliases_text(&t, &o);
	buf_printf(&p, "%s/aliases", d);
	if (make_file_if_missing(buf_str(&p), &t, 0644, &made_aliases) < 0)
		goto out;
	buf_reset(&t);
	buf_reset(&p);
	buf_printf(&p, "%s/users", d);
	if (make_file_if_missing(buf_str(&p), &t, 0600, &made_users) < 0)
		goto out;
	buf_reset(&p);
	buf_adds(&p, buf_str(&o.mailbase));
	if (mkdir_p(buf_str(&p), 0755) < 0) {
		hermod_say("mkdir %s: %s", buf_str(&p), strerror(errno));
		goto out;
	}
	if (!o.privileged) {
		buf_reset(&p);
		buf_printf(&p, "%s/mailspool", d);
		if (mkdir_p(buf_str(&p), 0700) < 0) {
			hermod_say("mkdir %s: %s", buf_str(&p), strerror(errno));
			goto out;
		}
	}
	if (spool_owner_get(&own, &err) < 0 || spool_make(&own, 0, &err) < 0) {
		hermod_say("%s", buf_str(&err));
		goto out;
	}

	buf_reset(&p);
	buf_printf(&p, "hash:%s/aliases", d);
	if ((nalias = map_build(buf_str(&p), MAP_FMT_ALIASES, &err)) < 0) {
		hermod_say("build %s: %s", buf_str(&p), buf_str(&err));
		rc = EX_DATAERR;
		goto out;
	}

	if (make_bin_scripts(&o) < 0)
		goto out;
	if (o.privileged)
		fix_postdrop();

	printf("  %s/hermod.conf  parameters (hermod -C %s config -n)\n", d, d);
	if (fqdn)
		printf("                  myhostname = %s (this host's fully qualified name)\n", o.hostname);
	else
		printf("                  myhostname = %s: this host has no fully qualified name in\n"
		    "                  /etc/hosts or DNS; set myhostname in hermod.conf to give it one\n",
		    o.hostname);
	printf("  %s/master.conf  services %s\n", d, buf_str(&services));
	printf("  %s/tls/         cert.pem and key.pem%s%s\n", d,
	    made_tls ? ": a self-signed certificate for " : " (kept)", made_tls ? o.hostname : "");
	printf("  %s/aliases      %s; %ld aliases built into aliases.db\n", d,
	    made_aliases ? "postmaster and RFC 2142 names" : "kept", nalias);
	printf("  %s/users        virtual users%s: hermod -C %s user add NAME\n", d,
	    made_users ? "" : " (kept)", d);
	printf("  %s/NAME/Maildir/  their mail\n", buf_str(&o.mailbase));
	if (!o.privileged)
		printf("  %s/mailspool/   the mbox of %s\n", d, o.login);
	printf("  %s  the queue\n", buf_str(&o.qdir));
	if (o.syslog)
		printf("  logs            to syslog (facility mail)\n");
	else
		printf("  %s  the log (no syslog socket here: maillog_file)\n", buf_str(&o.maillog));
	printf("  %s/bin/         sendmail, mailq, newaliases for this instance: give\n"
	    "                  %s/bin/sendmail to mutt, mailx or git send-email\n", d, d);
	printf("Start it with:    hermod -C %s start   (or: start --foreground)\n", d);
	printf("Send mail with:   %s/bin/sendmail -t < message   (= sendmail -C %s -t)\n", d, d);
	rc = 0;
out:
	buf_free(&o.dir);
	buf_free(&o.qdir);
	buf_free(&o.mailbase);
	buf_free(&o.maillog);
	free(o.login);
	free(o.hostname);
	buf_free(&t);
	buf_free(&p);
	buf_free(&err);
	buf_free(&services);
	return rc;
}
