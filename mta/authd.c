/*
 * authd.c: the authentication daemon (DESIGN.md): answers "is this
 * user/password right, and who is it" for smtpd, popd, imapd and xmppgw
 * on private/authd, so that network-facing processes never read
 * password files; and, without a password, "is there a mailbox user of
 * this name" for smtpd's recipient check (smtpd is chrooted into the
 * spool and may not read the users file).  Wire format: lib/authc.h.
 *
 * A user is first a virtual user of the instance (lib/vuser.h; uid and
 * gid are mail_owner's in a privileged instance, the instance user's in
 * a rootless one), else, in a privileged instance only, a system user
 * (passwd + shadow through crypt_r; mailbox $mail_spool_directory/NAME,
 * or under the home directory when home_mailbox is set).
 *
 * Invariants:
 * - uid 0 never logs in; locked and expired accounts never log in;
 * - a wrong password, an unknown user and a locked account get the same
 *   reply and cost a crypt_r each, so that timing tells little;
 * - the password is never logged and is wiped from our buffers;
 * - a malformed request closes that connection only (the socket is
 *   private, but a compromised smtpd must not take authd down);
 * - runs as root in a privileged instance (it must read /etc/shadow),
 *   as the instance user in a rootless one; it writes nothing.
 */
#include "conf.h"
#include "log.h"
#include "proto.h"
#include "quota.h"
#include "service.h"
#include "util.h"
#include "vuser.h"

#include <crypt.h>
#include <errno.h>
#include <pwd.h>
#include <shadow.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* How long a client connection may sit between two requests. */
#define AUTHD_IDLE_TIMEOUT	60
/* Limits of the request fields (authc applies the same). */
#define AUTHD_FIELD_MAX		1024
#define AUTHD_SERVICE_MAX	32
#define AUTHD_LOG_MAX		64
/* The cost of an unknown system user: a sha512-crypt, as for an unknown
 * virtual user. */
#define DUMMY_SETTING		"$6$hermodauthdummy$"

static uid_t vuid;
static gid_t vgid;

enum result { RES_OK, RES_FAIL, RES_TEMPFAIL };

struct answer {
	enum result res;
	struct buf name, home, mailbox, why;
	uid_t uid;
	gid_t gid;
	int maildir;
	struct quota_limit quota;
};

/* A copy of s fit for a log line: printable ASCII, at most max bytes. */
static void
log_safe(struct buf *out, const char *s, size_t n, size_t max)
{
	size_t i;

	for (i = 0; i < n && i < max; i++)
		buf_addc(out, s[i] > ' ' && s[i] < 0x7f ? s[i] : '?');
	if (n > max)
		buf_adds(out, "...");
}

static int
check_virtual(const char *user, const char *password, struct answer *a)
{
	struct buf md = BUF_INIT;
	int r;

	if ((r = vuser_check_password(user, password)) != 1)
		return r;
	if ((r = vuser_lookup(user, &md)) != 1) {
		/* removed between the two reads */
		buf_free(&md);
		return r;
	}
	buf_adds(&a->name, user);
	str_lower(a->name.data);
	buf_sets(&a->mailbox, buf_str(&md));
	/* the home of a virtual user is the folder above its Maildir */
	if (md.len > strlen("Maildir/") + 1)
		buf_truncate(&md, md.len - strlen("Maildir/") - 1);
	buf_sets(&a->home, buf_str(&md));
	a->uid = vuid;
	a->gid = vgid;
	a->maildir = 1;
	buf_adds(&a->why, "virtual user");
	buf_free(&md);
	return 1;
}

static long
today(void)
{
	return (long)(time(NULL) / 86400);
}

/* The system user's mailbox (DESIGN.md, local delivery). */
static void
system_mailbox(const struct passwd *pw, struct answer *a)
{
	const char *hm = conf_str("home_mailbox");
	size_t n = strlen(hm);

	if (!*hm) {
		buf_printf(&a->mailbox, "%s/%s", conf_str("mail_spool_directory"), pw->pw_name);
		a->maildir = 0;
	} else {
		buf_printf(&a->mailbox, "%s/%s", strcmp(pw->pw_dir, "/") ? pw->pw_dir : "", hm);
		a->maildir = hm[n - 1] == '/';
	}
}

/* getpwnam_r with a growing buffer (*mem, the caller frees): 0 with *pw
 * set or NULL (no such user), or the error number of a failed lookup. */
static int
passwd_lookup(const char *name, struct passwd *pwbuf, char **mem, struct passwd **pw)
{
	size_t sz = 4096;
	int r;

	for (;;) {
		*mem = xrealloc(*mem, sz);
		r = getpwnam_r(name, pwbuf, *mem, sz, pw);
		if (r != ERANGE || sz >= (1 << 20))
			break;
		sz *= 2;
	}
	if (r == ENOENT || r == ESRCH)
		r = 0;
	if (r != 0)
		*pw = NULL;
	return r;
}

/* 1 ok, 0 fail, -1 tempfail; a->why says why for the log. */
static int
check_system(const char *user, const char *password, struct answer *a)
{
	struct passwd pwbuf, *pw = NULL;
	struct spwd spbuf, *sp = NULL;
	struct crypt_data *cd;
	char *pwmem = NULL, *spmem = NULL, *out;
	const char *hash = NULL;
	size_t sz = 4096;
	long d = today();
	int r, rc = 0;

	r = passwd_lookup(user, &pwbuf, &pwmem, &pw);
	if (r != 0) {
		buf_printf(&a->why, "passwd lookup: %s", strerror(r));
		rc = -1;
		pw = NULL;
	}
	if (pw) {
		hash = pw->pw_passwd;
		if (!strcmp(hash, "x")) {
			sz = 4096;
			for (;;) {
				spmem = xrealloc(spmem, sz);
				r = getspnam_r(user, &spbuf, spmem, sz, &sp);
				if (r != ERANGE || sz >= (1 << 20))
					break;
				sz *= 2;
			}
			if (r != 0 && r != ENOENT) {
				buf_printf(&a->why, "shadow lookup: %s", strerror(r));
				rc = -1;
			}
			hash = sp ? sp->sp_pwdp : NULL;
		}
	}
	if (!pw && rc == 0)
		buf_adds(&a->why, "unknown user");
	else if (pw && pw->pw_uid == 0)
		buf_adds(&a->why, "uid 0 may not log in");
	else if (pw && (!hash || !*hash || hash[0] == '!' || hash[0] == '*'))
		buf_adds(&a->why, "account locked or without a password");
	else if (sp && sp->sp_expire > 0 && d >= sp->sp_expire)
		buf_adds(&a->why, "account expired");
	else if (sp && sp->sp_lstchg > 0 && sp->sp_max >= 0 && sp->sp_inact >= 0 &&
	    d > sp->sp_lstchg + sp->sp_max + sp->sp_inact)
		buf_adds(&a->why, "account inactive (password expired)");
	else if (pw)
		rc = 2;		/* the hash decides */
	/* always one crypt, whatever the outcome so far */
	cd = xcalloc(1, sizeof(*cd));
	out = crypt_r(password, rc == 2 ? hash : DUMMY_SETTING, cd);
	if (rc == 2) {
		if (out && out[0] != '*' && str_eq_ct(out, hash)) {
			rc = 1;
			buf_adds(&a->name, pw->pw_name);
			buf_adds(&a->home, pw->pw_dir);
			a->uid = pw->pw_uid;
			a->gid = pw->pw_gid;
			system_mailbox(pw, a);
			buf_adds(&a->why, "system user");
		} else {
			rc = 0;
			buf_adds(&a->why, out && out[0] != '*' ? "wrong password" : "unusable password hash");
		}
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	if (spmem) {
		explicit_bzero(spmem, sz);
		free(spmem);
	}
	free(pwmem);
	return rc;
}

static void
dummy_crypt(void)
{
	struct crypt_data *cd = xcalloc(1, sizeof(*cd));

	(void)crypt_r("x", DUMMY_SETTING, cd);
	free(cd);
}

static void
authenticate(const char *user, const char *password, struct answer *a)
{
	int r;

	if ((r = check_virtual(user, password, a)) == 1) {
		a->res = RES_OK;
		return;
	}
	if (r < 0 || (r = vuser_lookup(user, NULL)) < 0) {
		buf_adds(&a->why, "virtual users file unreadable");
		a->res = RES_TEMPFAIL;
		return;
	}
	if (r == 1) {
		/* a virtual user decides alone; the system user check's
		 * crypt is spent anyway, so that the time is the same */
		if (conf_privileged())
			dummy_crypt();
		buf_adds(&a->why, "wrong password");
		a->res = RES_FAIL;
		return;
	}
	if (!conf_privileged()) {
		buf_adds(&a->why, "unknown user or wrong password");
		a->res = RES_FAIL;
		return;
	}
	r = check_system(user, password, a);
	a->res = r == 1 ? RES_OK : r == 0 ? RES_FAIL : RES_TEMPFAIL;
}

/* The session enforces and reports the quota (imapd): a map we cannot
 * read is a temporary failure, not a login without limits. */
static void
add_quota(struct answer *a)
{
	if (a->res != RES_OK)
		return;
	if (quota_lookup(buf_str(&a->name), &a->quota) < 0) {
		buf_reset(&a->why);
		buf_adds(&a->why, "mailbox_quota_maps unreadable");
		a->res = RES_TEMPFAIL;
	}
}

/* A service name: [a-z0-9-], short. */
static int
service_valid(const struct proto_field *f)
{
	size_t i;

	if (f->len == 0 || f->len > AUTHD_SERVICE_MAX)
		return 0;
	for (i = 0; i < f->len; i++) {
		char c = f->data[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

/* User names we look up: no control characters, no NUL, no ':' (the
 * separator of passwd and the users file), bounded. */
static int
user_valid(const struct proto_field *f)
{
	size_t i;

	if (f->len == 0 || f->len > 256)
		return 0;
	for (i = 0; i < f->len; i++) {
		unsigned char c = (unsigned char)f->data[i];

		if (c <= ' ' || c == 0x7f || c == ':')
			return 0;
	}
	return 1;
}

static int
reply(int fd, const struct answer *a)
{
	struct proto_builder b;

	proto_build_start(&b, PROTO_AUTH_REPLY);
	if (a->res == RES_OK) {
		proto_build_adds(&b, "ok");
		proto_build_adds(&b, buf_str(&a->name));
		proto_build_addf(&b, "%lu", (unsigned long)a->uid);
		proto_build_addf(&b, "%lu", (unsigned long)a->gid);
		proto_build_adds(&b, buf_str(&a->home));
		proto_build_adds(&b, a->maildir ? "maildir" : "mbox");
		proto_build_adds(&b, buf_str(&a->mailbox));
		proto_build_adds(&b, buf_str(&a->why));
		proto_build_addf(&b, "%lld %lld", a->quota.bytes, a->quota.messages);
	} else {
		proto_build_adds(&b, a->res == RES_FAIL ? "fail" : "tempfail");
		proto_build_adds(&b, "");
		proto_build_adds(&b, "");
		proto_build_adds(&b, "");
		proto_build_adds(&b, "");
		proto_build_adds(&b, "");
		proto_build_adds(&b, "");
		proto_build_adds(&b, a->res == RES_FAIL ? "authentication failed" :
		    "temporary authentication failure");
	}
	return proto_send(fd, &b);
}

/*
 * "Is NAME a mailbox user?" for smtpd's recipient check (no password):
 * a virtual user, or a system user (in a rootless instance only the
 * instance user, as local delivers to nobody else there).  The same
 * rules as local(8) uses to deliver, so smtpd accepts what local can
 * deliver.  Answered at debug level only: it is one line per RCPT.
 */
static enum result
user_exists(const char *name, struct buf *why)
{
	struct passwd pwbuf, *pw = NULL;
	struct buf md = BUF_INIT;
	char *mem = NULL;
	int r;
	enum result res = RES_FAIL;

	buf_adds(&md, name);
	str_lower(md.data);
	if (vuser_name_valid(buf_str(&md))) {
		char *lower = buf_steal(&md);

		r = vuser_lookup(lower, &md);
		free(lower);
		buf_free(&md);
		if (r == 1) {
			buf_adds(why, "virtual user");
			return RES_OK;
		}
		if (r < 0) {
			buf_adds(why, "users file not readable");
			return RES_TEMPFAIL;
		}
	}
	buf_free(&md);
	r = passwd_lookup(name, &pwbuf, &mem, &pw);
	if (r != 0) {
		buf_printf(why, "passwd lookup: %s", strerror(r));
		res = RES_TEMPFAIL;
	} else if (pw && (conf_privileged() || pw->pw_uid == getuid())) {
		buf_adds(why, "system user");
		res = RES_OK;
	} else
		buf_adds(why, "unknown user");
	free(mem);
	return res;
}

static int
user_request(int fd, const struct proto_msg *m)
{
	struct buf why = BUF_INIT, lg = BUF_INIT;
	enum result res = RES_FAIL;
	int rc;

	if (m->nfields != 2 || !service_valid(&m->fields[0]) ||
	    m->fields[1].len > AUTHD_FIELD_MAX) {
		msg_warn("dropping a client: malformed user request");
		return 0;
	}
	/* invalid names are simply unknown; str_lower matches vuser names */
	if (user_valid(&m->fields[1])) {
		char *name = xstrdup(m->fields[1].data);

		res = user_exists(name, &why);
		free(name);
	} else
		buf_adds(&why, "invalid user name");
	log_safe(&lg, m->fields[1].data, m->fields[1].len, AUTHD_LOG_MAX);
	if (res == RES_TEMPFAIL)
		msg_warn("service=%s user lookup %s: tempfail (%s)", m->fields[0].data,
		    buf_str(&lg), buf_str(&why));
	else
		msg_debug("service=%s user lookup %s: %s (%s)", m->fields[0].data,
		    buf_str(&lg), res == RES_OK ? "ok" : "fail", buf_str(&why));
	rc = proto_send_strs(fd, PROTO_USER_REPLY, res == RES_OK ? "ok" :
	    res == RES_FAIL ? "fail" : "tempfail", (char *)NULL);
	buf_free(&why);
	buf_free(&lg);
	return rc < 0 ? 0 : 1;
}

/* One request: 1 answered, 0 the connection should close. */
static int
one_request(int fd)
{
	struct proto_msg m;
	struct answer a;
	struct buf lg = BUF_INIT;
	const struct proto_field *svc, *usr, *pw, *cli;
	int r, keep = 0;

	memset(&a, 0, sizeof(a));
	proto_msg_init(&m);
	if ((r = proto_recv(fd, &m)) != 1) {
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			msg_debug("client idle for %ds: closing", AUTHD_IDLE_TIMEOUT);
		else if (r < 0)
			msg_warn("dropping a client: %s", errno == EPROTO ?
			    "malformed record" : strerror(errno));
		goto out;
	}
	if (m.type == PROTO_USER_REQ) {
		keep = user_request(fd, &m);
		goto out;
	}
	if (m.type != PROTO_AUTH_REQ || m.nfields != 4) {
		msg_warn("dropping a client: unexpected record (type %d, %zu fields)", m.type, m.nfields);
		goto out;
	}
	svc = &m.fields[0];
	usr = &m.fields[1];
	pw = &m.fields[2];
	cli = &m.fields[3];
	if (!service_valid(svc) || usr->len > AUTHD_FIELD_MAX || pw->len > AUTHD_FIELD_MAX ||
	    cli->len > AUTHD_FIELD_MAX) {
		msg_warn("dropping a client: malformed request");
		goto out;
	}
	buf_printf(&lg, "service=%s user=", svc->data);
	log_safe(&lg, usr->data, usr->len, AUTHD_LOG_MAX);
	buf_adds(&lg, " client=");
	log_safe(&lg, cli->data, cli->len, AUTHD_LOG_MAX);
	if (!user_valid(usr) || pw->len == 0 || memchr(pw->data, 0, pw->len)) {
		/* well-formed but cannot be right: the same cost and reply */
		dummy_crypt();
		a.res = RES_FAIL;
		buf_adds(&a.why, "invalid user name or password");
	} else {
		authenticate(usr->data, pw->data, &a);
		add_quota(&a);
	}
	if (a.res == RES_OK)
		msg_info("%s: ok (%s, uid %lu)", buf_str(&lg), buf_str(&a.why), (unsigned long)a.uid);
	else if (a.res == RES_FAIL)
		msg_info("%s: fail (%s)", buf_str(&lg), buf_str(&a.why));
	else
		msg_warn("%s: tempfail (%s)", buf_str(&lg), buf_str(&a.why));
	if (reply(fd, &a) < 0)
		msg_debug("reply: %s", strerror(errno));
	else
		keep = 1;
out:
	if (m.raw.data)
		explicit_bzero(m.raw.data, m.raw.cap);
	proto_msg_free(&m);
	buf_free(&lg);
	buf_free(&a.name);
	buf_free(&a.home);
	buf_free(&a.mailbox);
	buf_free(&a.why);
	return keep;
}

static void
authd_client(int fd, void *ctx)
{
	struct timeval tv = { AUTHD_IDLE_TIMEOUT, 0 };

	(void)ctx;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (one_request(fd))
		;
}

int
main(int argc, char **argv)
{
	sane_fds();
	(void)service_init("authd", argc, argv);
	if (conf_privileged()) {
		/* root is what this daemon is for: shadow is root's */
		if (geteuid() != 0)
			msg_fatal("a privileged instance runs authd as root (it reads the shadow file)");
		if (priv_owner(&vuid, &vgid) < 0)
			exit(75);
	} else {
		vuid = getuid();
		vgid = getgid();
	}
	if (chdir("/") < 0)
		msg_fatal("chdir /: %s", strerror(errno));
	service_accept_loop(authd_client, NULL, 0);
	return 0;
}
