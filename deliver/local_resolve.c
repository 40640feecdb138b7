/*
 * local_resolve.c: one recipient address -> the leaves to deliver to.
 *
 * Order for a local part (first the full local part, then without the
 * recipient_delimiter extension, lower-cased): aliases (alias_maps in
 * order) -> virtual users -> system users (getpwnam; in a rootless
 * instance only the instance owner's own account) -> unknown (5.1.1).
 * A system user's .forward (forward_path, first file that exists) is
 * expanded like an alias value.
 *
 * Expansion is recursive with a depth limit (local_recursion_limit); an
 * alias, .forward or :include: met again on its own expansion path is a
 * cycle and contributes nothing (if nothing at all is left, local
 * bounces the recipient as a loop).  An alias that names itself ("bob:
 * bob, bob@elsewhere") means the user's own mailbox (still with their
 * .forward); "\bob" means the mailbox with neither alias nor .forward.
 * Equal leaves (same kind, target and privileges) are delivered once;
 * leaf_dest_key gives local.c the same comparison across recipients.
 *
 * Privileges recorded on leaves (used only when local runs as root in a
 * privileged instance): commands and files of an alias run as the owner
 * of the alias database, of a :include: file as its owner, of a .forward
 * as the user; whenever that is root, as default_privs instead.
 */
#include "local.h"
#include "addr.h"
#include "aliases.h"
#include "conf.h"
#include "map.h"
#include "util.h"
#include "vuser.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORWARD_MAX	(1024 * 1024)
#define INCLUDE_MAX	(16 * 1024 * 1024)

#define CLS_ALIAS	"alias"
#define CLS_FORWARD	"forward"
#define CLS_INCLUDE	"include"

#define F_NOALIAS	0x01
#define F_NOFORWARD	0x02

/*
 * Alias maps: opened once per process, reopened when rebuilt.
 */
struct amap {
	char *spec;
	struct map *m;
	int unavailable;	/* open failed: lookups defer */
};

static struct amap *amaps;
static size_t namaps;
static int amaps_loaded;

static void
amap_open(struct amap *a)
{
	struct buf err = BUF_INIT, src = BUF_INIT;
	struct stat st;

	a->m = map_open(a->spec, &err);
	a->unavailable = 0;
	if (!a->m) {
		/* No .db and no source at all: an instance without aliases. */
		const char *p = strchr(a->spec, ':');

		buf_adds(&src, p ? p + 1 : a->spec);
		if (stat(buf_str(&src), &st) < 0 && errno == ENOENT) {
			buf_adds(&src, ".db");
			if (stat(buf_str(&src), &st) < 0 && errno == ENOENT) {
				msg_debug("alias map %s does not exist: skipped", a->spec);
				buf_free(&err);
				buf_free(&src);
				return;
			}
		}
		msg_error("alias map %s: %s", a->spec, buf_str(&err));
		a->unavailable = 1;
	}
	buf_free(&err);
	buf_free(&src);
}

/* At exit: close the databases (libdb keeps state that is only freed by
 * a close, which also keeps leak checkers quiet). */
static void
maps_close(void)
{
	size_t i;

	for (i = 0; i < namaps; i++) {
		map_close(amaps[i].m);
		free(amaps[i].spec);
	}
	free(amaps);
	amaps = NULL;
	namaps = 0;
	amaps_loaded = 0;
}

void
local_maps_refresh(void)
{
	size_t i;

	if (!amaps_loaded) {
		char **v = conf_list("alias_maps");

		if (!amaps)
			atexit(maps_close);
		amaps_loaded = 1;
		namaps = strv_len(v);
		amaps = xcalloc(namaps ? namaps : 1, sizeof(*amaps));
		for (i = 0; i < namaps; i++) {
			amaps[i].spec = xstrdup(v[i]);
			amap_open(&amaps[i]);
		}
		strv_free(v);
		return;
	}
	for (i = 0; i < namaps; i++) {
		if (amaps[i].m && !map_stale(amaps[i].m))
			continue;
		if (amaps[i].m)
			map_close(amaps[i].m);
		amaps[i].m = NULL;
		amap_open(&amaps[i]);
	}
}

/* 1 found (value, st of its database), 0 no, -1 temporary failure. */
static int
alias_lookup(const char *name, struct buf *val, struct stat *st)
{
	size_t i;
	int r;

	if (!amaps_loaded)
		local_maps_refresh();
	for (i = 0; i < namaps; i++) {
		if (amaps[i].unavailable)
			return -1;
		if (!amaps[i].m)
			continue;
		r = map_lookup(amaps[i].m, name, val);
		if (r != 0) {
			if (r > 0 && st && map_fstat(amaps[i].m, st) < 0)
				memset(st, 0, sizeof(*st));
			return r;
		}
	}
	return 0;
}

/*
 * The expansion.
 */
struct rctx {
	struct lmsg *m;
	struct leaves *out;
	const char *rcpt;
	char **stack;		/* "a:NAME", "u:NAME", "i:PATH" on the current path */
	size_t nstack;
	int privileged;		/* running as root in a privileged instance */
	int full;		/* too many leaves */
};

struct level {
	int depth;
	const char *cls;	/* where commands/files come from */
	const char *sender;
	const char *domain;
	const char *self;	/* the name meaning "the user itself" */
	const struct lprivs *pv;
	const char *env_rcpt, *env_local, *env_ext;
};

static int
on_stack(struct rctx *c, const char *key)
{
	size_t i;

	for (i = 0; i < c->nstack; i++)
		if (!strcmp(c->stack[i], key))
			return 1;
	return 0;
}

static void
push(struct rctx *c, const char *kind, const char *name)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "%s:%s", kind, name);
	c->stack = xreallocarray(c->stack, c->nstack + 1, sizeof(char *));
	c->stack[c->nstack++] = buf_steal(&b);
}

static void
pop(struct rctx *c)
{
	free(c->stack[--c->nstack]);
}

static void
privs_copy(struct lprivs *to, const struct lprivs *from)
{
	to->set = from->set;
	to->uid = from->uid;
	to->gid = from->gid;
	to->user = from->user ? xstrdup(from->user) : NULL;
	to->home = from->home ? xstrdup(from->home) : NULL;
}

static void
privs_free(struct lprivs *p)
{
	free(p->user);
	free(p->home);
	memset(p, 0, sizeof(*p));
}

/* Privileges of a passwd entry; root becomes default_privs.  0 ok, -1
 * default_privs does not exist. */
static int
privs_from_pw(struct rctx *c, struct lprivs *p, const struct passwd *pw, int never_root)
{
	memset(p, 0, sizeof(*p));
	if (!c->privileged) {
		p->home = xstrdup(pw && pw->pw_dir ? pw->pw_dir : "/");
		p->user = xstrdup(pw && pw->pw_name ? pw->pw_name : "");
		return 0;
	}
	if (!pw || (never_root && pw->pw_uid == 0)) {
		const char *dp = conf_str("default_privs");
		struct passwd *d = getpwnam(dp);

		if (!d || d->pw_uid == 0) {
			msg_error("default_privs %s: %s", dp, d ? "is root" : "no such user");
			return -1;
		}
		pw = d;
	}
	p->set = pw->pw_uid != 0;
	p->uid = pw->pw_uid;
	p->gid = pw->pw_gid;
	p->user = xstrdup(pw->pw_name);
	p->home = xstrdup(pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/");
	return 0;
}

/* Privileges for the owner of a file (alias database, :include:). */
static int
privs_from_owner(struct rctx *c, struct lprivs *p, uid_t uid, gid_t gid)
{
	struct passwd *pw;

	if (!c->privileged)
		return privs_from_pw(c, p, getpwuid(getuid()), 1);
	if (uid == 0)
		return privs_from_pw(c, p, NULL, 1);
	if ((pw = getpwuid(uid)) != NULL)
		return privs_from_pw(c, p, pw, 1);
	memset(p, 0, sizeof(*p));
	p->set = 1;
	p->uid = uid;
	p->gid = gid;
	p->home = xstrdup("/");
	return 0;
}

static struct leaf *
new_leaf(struct rctx *c, const struct level *lv, enum leaf_kind kind, const char *addr)
{
	struct leaf *lf;

	if (c->out->n >= ALIASES_MAX_DESTS) {
		if (!c->full)
			msg_warn("%s: expansion of <%s> has more than %d destinations: the rest is left out",
			    c->m->id, c->rcpt, ALIASES_MAX_DESTS);
		c->full = 1;
		return NULL;
	}
	if ((c->out->n & (c->out->n - 1)) == 0)
		c->out->v = xreallocarray(c->out->v, c->out->n ? c->out->n * 2 : 1, sizeof(*c->out->v));
	lf = &c->out->v[c->out->n++];
	memset(lf, 0, sizeof(*lf));
	lf->kind = kind;
	lf->addr = xstrdup(addr);
	lf->sender = xstrdup(lv->sender);
	lf->owner = (uid_t)-1;
	lstatus_init(&lf->fail);
	return lf;
}

static void
fail(struct rctx *c, const struct level *lv, const char *addr, int status, const char *dsn,
    int reinject, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static void
fail(struct rctx *c, const struct level *lv, const char *addr, int status, const char *dsn,
    int reinject, const char *fmt, ...)
{
	struct leaf *lf = new_leaf(c, lv, LEAF_FAIL, addr);
	struct buf t = BUF_INIT;
	va_list ap;

	if (!lf)
		return;
	va_start(ap, fmt);
	buf_vprintf(&t, fmt, ap);
	va_end(ap);
	lstatus_set(&lf->fail, status, dsn, "%s", buf_str(&t));
	lf->reinject = reinject;
	buf_free(&t);
}

static void
set_env(struct leaf *lf, const struct level *lv)
{
	lf->env_rcpt = xstrdup(lv->env_rcpt ? lv->env_rcpt : "");
	lf->env_local = xstrdup(lv->env_local ? lv->env_local : "");
	lf->env_ext = xstrdup(lv->env_ext ? lv->env_ext : "");
	lf->env_domain = xstrdup(lv->domain ? lv->domain : "");
}

static int
is_local_domain(const char *d)
{
	static char **dest;
	size_t i, n = strlen(d);

	if (!dest) {
		dest = conf_list("mydestination");
		for (i = 0; dest[i]; i++)
			str_lower(dest[i]);
	}
	if (n && d[n - 1] == '.')
		n--;
	for (i = 0; dest[i]; i++)
		if (strlen(dest[i]) == n && !strncasecmp(dest[i], d, n))
			return 1;
	return 0;
}

static int
allowed(const char *param, const char *cls)
{
	char **v = conf_list(param);
	size_t i;
	int ok = 0;

	for (i = 0; v[i] && !ok; i++)
		ok = !strcasecmp(v[i], cls);
	strv_free(v);
	return ok;
}

static void expand_dest(struct rctx *c, const struct level *lv, const char *dest);
static void expand_local(struct rctx *c, const struct level *lv, const char *local,
    const char *domain, int flags);

/* "local@domain" for logs and Delivered-To:, local part lower-cased. */
static void
make_addr(struct buf *out, const char *local, const char *domain)
{
	struct buf l = BUF_INIT;

	buf_adds(&l, local);
	str_lower(l.data ? l.data : (char *)"");
	buf_reset(out);
	addr_quote_local(buf_str(&l), out);
	buf_printf(out, "@%s", domain);
	buf_free(&l);
}

static void
remote_leaf(struct rctx *c, const struct level *lv, const char *addr)
{
	struct leaf *lf = new_leaf(c, lv, LEAF_REMOTE, addr);

	if (lf)
		lf->target = xstrdup(addr);
}

/* An address destination (from an alias, .forward or :include:). */
static void
expand_address(struct rctx *c, const struct level *lv, const char *addr, int flags)
{
	struct buf local = BUF_INIT, domain = BUF_INIT;

	if (addr_split(addr, &local, &domain) < 0 || local.len == 0) {
		fail(c, lv, lv->env_rcpt ? lv->env_rcpt : c->rcpt, LS_BOUNCE, "5.1.3", 0,
		    "bad destination address syntax: %s", addr);
		goto out;
	}
	if (domain.len && !is_local_domain(buf_str(&domain))) {
		remote_leaf(c, lv, addr);
		goto out;
	}
	if (lv->self && !strcasecmp(buf_str(&local), lv->self))
		flags |= F_NOALIAS;
	expand_local(c, lv, buf_str(&local), domain.len ? buf_str(&domain) : lv->domain, flags);
out:
	buf_free(&local);
	buf_free(&domain);
}

static void
expand_alias(struct rctx *c, const struct level *lv, const char *name, const char *full,
    const char *value, const char *ext, const char *domain, const struct stat *dbst)
{
	struct level nl = *lv;
	struct lprivs pv;
	struct buf err = BUF_INIT, owner = BUF_INIT, oval = BUF_INIT, addr = BUF_INIT;
	char **v;
	size_t i;

	make_addr(&addr, full, domain);	/* with the extension */
	if ((v = aliases_split(value, &err)) == NULL) {
		msg_error("alias %s: %s", name, buf_str(&err));
		fail(c, lv, buf_str(&addr), LS_DEFER, "4.3.5", 0, "alias %s is malformed: %s", name, buf_str(&err));
		goto out;
	}
	if (privs_from_owner(c, &pv, dbst->st_uid, dbst->st_gid) < 0) {
		fail(c, lv, buf_str(&addr), LS_DEFER, "4.3.5", 0, "default_privs is not a usable user");
		strv_free(v);
		goto out;
	}
	nl.depth = lv->depth + 1;
	nl.cls = CLS_ALIAS;
	nl.domain = domain;
	nl.self = name;
	nl.pv = &pv;
	nl.env_rcpt = buf_str(&addr);
	nl.env_local = name;
	nl.env_ext = ext;
	/* owner-NAME receives the errors of list NAME */
	if (*lv->sender && conf_bool("owner_request_special") && strncmp(name, "owner-", 6)) {
		buf_printf(&owner, "owner-%s", name);
		if (alias_lookup(buf_str(&owner), &oval, NULL) == 1) {
			buf_printf(&owner, "@%s", domain);
			nl.sender = buf_str(&owner);
		}
	}
	push(c, "a", name);
	for (i = 0; v[i] && !c->full; i++)
		expand_dest(c, &nl, v[i]);
	pop(c);
	strv_free(v);
	privs_free(&pv);
out:
	buf_free(&err);
	buf_free(&owner);
	buf_free(&oval);
	buf_free(&addr);
}

/* Temporarily act as uid/gid (privileged instance): for reading users'
 * files with their rights, never for writing. */
static void
as_user(const struct lprivs *pv, int on)
{
	if (!pv || !pv->set || getuid() != 0)
		return;
	if (on) {
		if (setegid(pv->gid) < 0 || seteuid(pv->uid) < 0)
			msg_warn("seteuid %ld: %s", (long)pv->uid, strerror(errno));
	} else if (seteuid(0) < 0 || setegid(0) < 0)
		msg_fatal("cannot return to root: %s", strerror(errno));
}

/*
 * Read a list file (.forward or :include:).  1 read (in data, st set),
 * 0 does not exist / not usable (logged when unsafe), -1 temporary.
 */
static int
read_list_file(const char *path, const struct lprivs *read_as, uid_t need_owner,
    size_t max, struct buf *data, struct stat *st, struct buf *why)
{
	int fd, saved;
	ssize_t r;
	char tmp[8192];

	as_user(read_as, 1);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	saved = errno;
	as_user(read_as, 0);
	if (fd < 0) {
		if (saved == ENOENT || saved == ENOTDIR)
			return 0;
		buf_printf(why, "open %s: %s", path, strerror(saved));
		return saved == EACCES ? 0 : -1;
	}
	if (fstat(fd, st) < 0) {
		buf_printf(why, "fstat %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		buf_printf(why, "%s is not a regular file: ignored", path);
		close(fd);
		return 0;
	}
	if (st->st_mode & (need_owner != (uid_t)-1 ? 022 : 002)) {
		buf_printf(why, "%s is writable by others: ignored", path);
		close(fd);
		return 0;
	}
	if (need_owner != (uid_t)-1 && st->st_uid != need_owner && st->st_uid != 0) {
		buf_printf(why, "%s is owned by uid %ld, not the user or root: ignored", path, (long)st->st_uid);
		close(fd);
		return 0;
	}
	buf_reset(data);
	for (;;) {
		r = read(fd, tmp, sizeof(tmp));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			buf_printf(why, "read %s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		if (data->len + (size_t)r > max) {
			buf_printf(why, "%s is larger than %zu bytes", path, max);
			close(fd);
			return -1;
		}
		buf_add(data, tmp, (size_t)r);
	}
	close(fd);
	return 1;
}

static void
expand_include(struct rctx *c, const struct level *lv, const char *path)
{
	struct buf data = BUF_INIT, why = BUF_INIT, key = BUF_INIT;
	struct alias_list l;
	struct level nl = *lv;
	struct lprivs pv;
	struct stat st;
	const char *who = lv->env_rcpt ? lv->env_rcpt : c->rcpt;
	int forward = !strcmp(lv->cls, CLS_FORWARD), r;
	size_t i;

	memset(&l, 0, sizeof(l));
	memset(&pv, 0, sizeof(pv));
	if (lv->depth >= conf_int("local_recursion_limit")) {
		fail(c, lv, who, LS_BOUNCE, "5.4.6", 0, "mail forwarding loop for %s: local_recursion_limit exceeded", who);
		goto out;
	}
	buf_printf(&key, "i:%s", path);
	if (on_stack(c, buf_str(&key)))
		goto out;
	r = read_list_file(path, forward ? lv->pv : NULL, forward && lv->pv && lv->pv->set ? lv->pv->uid : (uid_t)-1,
	    INCLUDE_MAX, &data, &st, &why);
	if (r <= 0) {
		if (why.len)
			msg_warn("%s: :include: of <%s>: %s", c->m->id, who, buf_str(&why));
		fail(c, lv, who, LS_DEFER, "4.3.0", 0, ":include:%s is not available%s%s", path,
		    why.len ? ": " : "", buf_str(&why));
		goto out;
	}
	aliases_parse_list(data.data ? data.data : "", data.len, &l);
	for (i = 0; i < l.nerr; i++)
		msg_warn("%s:%d: %s (ignored)", path, l.err[i].line, l.err[i].msg);
	if (st.st_uid != 0) {
		if (privs_from_owner(c, &pv, st.st_uid, st.st_gid) < 0)
			goto out;
	} else if (lv->pv)
		privs_copy(&pv, lv->pv);
	nl.depth = lv->depth + 1;
	nl.cls = CLS_INCLUDE;
	nl.pv = &pv;
	push(c, "i", path);
	for (i = 0; i < l.n && !c->full; i++)
		expand_dest(c, &nl, l.v[i].name);
	pop(c);
out:
	aliases_free(&l);
	privs_free(&pv);
	buf_free(&data);
	buf_free(&why);
	buf_free(&key);
}

/* forward_path expansion: $home $user $local $extension $domain
 * $recipient (also ${name}); envelope parts cannot add '/'. */
static int
expand_forward_path(struct buf *out, const char *tmpl, const struct passwd *pw,
    const char *local, const char *ext, const char *domain, const char *rcpt)
{
	const char *s = tmpl;

	buf_reset(out);
	while (*s) {
		const char *name, *val = NULL;
		size_t len;
		int untrusted = 1;

		if (*s != '$') {
			buf_addc(out, *s++);
			continue;
		}
		s++;
		if (*s == '{') {
			name = ++s;
			len = strcspn(s, "}");
			s += len;
			if (*s == '}')
				s++;
		} else {
			name = s;
			while ((*s >= 'a' && *s <= 'z') || *s == '_')
				s++;
			len = (size_t)(s - name);
		}
#define IS(w) (len == strlen(w) && !strncmp(name, w, len))
		if (IS("home")) {
			val = pw->pw_dir;
			untrusted = 0;
		} else if (IS("user")) {
			val = pw->pw_name;
			untrusted = 0;
		} else if (IS("local"))
			val = local;
		else if (IS("extension"))
			val = ext;
		else if (IS("domain"))
			val = domain;
		else if (IS("recipient"))
			val = rcpt;
#undef IS
		if (!val)
			return -1;
		for (; *val; val++)
			buf_addc(out, untrusted && (*val == '/' || (unsigned char)*val < 0x20) ? '_' : *val);
	}
	return 0;
}

/* The quota of a user's own Maildir (not of Maildirs named in aliases
 * or .forward: those are files of the user's choosing).  A map we
 * cannot read defers the delivery instead of lifting the limit. */
static void
leaf_quota(struct leaf *lf, const char *user)
{
	if (quota_lookup(user, &lf->quota) < 0) {
		lf->kind = LEAF_FAIL;
		lstatus_set(&lf->fail, LS_DEFER, "4.3.0", "mailbox_quota_maps unavailable");
		return;
	}
	lf->quota_set = quota_limited(&lf->quota);
}

static void
mailbox_leaf(struct rctx *c, const struct level *lv, const struct passwd *pw, const char *addr)
{
	const char *hm = conf_str("home_mailbox");
	struct leaf *lf;
	enum leaf_kind kind;
	struct buf target = BUF_INIT;
	size_t n = strlen(hm);

	if (n == 0) {
		kind = LEAF_MBOX;
		buf_printf(&target, "%s/%s", conf_str("mail_spool_directory"), pw->pw_name);
	} else {
		kind = hm[n - 1] == '/' ? LEAF_MAILDIR : LEAF_MBOX;
		buf_printf(&target, "%s/%s", pw->pw_dir, hm);
	}
	if (!(lf = new_leaf(c, lv, kind, addr))) {
		buf_free(&target);
		return;
	}
	lf->target = buf_steal(&target);
	lf->spool = n == 0;
	if (kind == LEAF_MAILDIR)
		leaf_quota(lf, pw->pw_name);
	lf->owner = c->privileged ? pw->pw_uid : getuid();
	if (c->privileged) {
		lf->pv.set = pw->pw_uid != 0;
		lf->pv.uid = pw->pw_uid;
		lf->pv.gid = pw->pw_gid;
		lf->pv.user = xstrdup(pw->pw_name);
		lf->pv.home = xstrdup(pw->pw_dir);
	}
}

static void
system_user(struct rctx *c, const struct level *lv, const struct passwd *pwarg,
    const char *local, const char *ext, const char *domain, int flags)
{
	struct passwd pw = *pwarg;
	struct buf addr = BUF_INIT, fp = BUF_INIT, data = BUF_INIT, why = BUF_INIT, key = BUF_INIT;
	struct lprivs user;
	char **paths = NULL;
	size_t i;
	int r = 0;

	/* getpwnam's storage is reused by later calls: copy what we keep */
	pw.pw_name = xstrdup(pwarg->pw_name);
	pw.pw_dir = xstrdup(pwarg->pw_dir && *pwarg->pw_dir ? pwarg->pw_dir : "/");
	pw.pw_passwd = pw.pw_gecos = pw.pw_shell = NULL;
	memset(&user, 0, sizeof(user));
	make_addr(&addr, local, domain);
	buf_printf(&key, "u:%s", pw.pw_name);
	if ((flags & F_NOFORWARD) || on_stack(c, buf_str(&key)))
		goto mailbox;
	if (privs_from_pw(c, &user, &pw, 1) < 0) {
		fail(c, lv, buf_str(&addr), LS_DEFER, "4.3.5", 0, "default_privs is not a usable user");
		goto out;
	}
	paths = str_split(conf_str("forward_path"), ", \t");
	for (i = 0; paths[i]; i++) {
		struct stat st;
		struct lprivs reader;

		if (expand_forward_path(&fp, paths[i], &pw, local, ext ? ext : "", domain, c->rcpt) < 0 ||
		    fp.len == 0 || fp.data[0] != '/')
			continue;
		memset(&reader, 0, sizeof(reader));
		reader.set = c->privileged && pw.pw_uid != 0;
		reader.uid = pw.pw_uid;
		reader.gid = pw.pw_gid;
		buf_reset(&why);
		r = read_list_file(buf_str(&fp), &reader, pw.pw_uid, FORWARD_MAX, &data, &st, &why);
		if (why.len)
			msg_warn("%s: .forward of %s: %s", c->m->id, pw.pw_name, buf_str(&why));
		if (r != 0)
			break;
	}
	if (r < 0) {
		fail(c, lv, buf_str(&addr), LS_DEFER, "4.3.0", 0, "cannot read the .forward file of %s: %s",
		    pw.pw_name, buf_str(&why));
		goto out;
	}
	if (r > 0) {
		struct alias_list l;
		struct level nl = *lv;

		aliases_parse_list(data.data ? data.data : "", data.len, &l);
		for (i = 0; i < l.nerr; i++)
			msg_warn("%s:%d: %s (ignored)", buf_str(&fp), l.err[i].line, l.err[i].msg);
		if (l.n == 0) {
			aliases_free(&l);
			goto mailbox;	/* an empty .forward: as if there were none */
		}
		nl.depth = lv->depth + 1;
		nl.cls = CLS_FORWARD;
		nl.domain = domain;
		nl.self = pw.pw_name;
		nl.pv = &user;
		nl.env_rcpt = buf_str(&addr);
		nl.env_local = local;
		nl.env_ext = ext;
		push(c, "u", pw.pw_name);
		for (i = 0; i < l.n && !c->full; i++)
			expand_dest(c, &nl, l.v[i].name);
		pop(c);
		aliases_free(&l);
		goto out;
	}
mailbox:
	mailbox_leaf(c, lv, &pw, buf_str(&addr));
out:
	strv_free(paths);
	privs_free(&user);
	free(pw.pw_name);
	free(pw.pw_dir);
	buf_free(&addr);
	buf_free(&fp);
	buf_free(&data);
	buf_free(&why);
	buf_free(&key);
}

static void
vuser_leaf(struct rctx *c, const struct level *lv, const char *name, const char *maildir,
    const char *addr)
{
	struct leaf *lf = new_leaf(c, lv, LEAF_MAILDIR, addr);
	struct stat st;

	if (!lf)
		return;
	lf->target = xstrdup(maildir);
	leaf_quota(lf, name);
	/* privileged: write as the owner of the Maildir, root only if root owns it */
	if (c->privileged && stat(maildir, &st) == 0 && st.st_uid != 0) {
		struct passwd *pw = getpwuid(st.st_uid);

		lf->pv.set = 1;
		lf->pv.uid = st.st_uid;
		lf->pv.gid = st.st_gid;
		lf->pv.user = pw ? xstrdup(pw->pw_name) : NULL;
		lf->pv.home = xstrdup(pw && pw->pw_dir ? pw->pw_dir : "/");
	}
}

static void
expand_local(struct rctx *c, const struct level *lv, const char *local, const char *domain, int flags)
{
	struct buf addr = BUF_INIT, val = BUF_INIT, key = BUF_INIT;
	const char *delim = conf_str("recipient_delimiter");
	char *names[2] = { NULL, NULL }, *ext = NULL;
	size_t i, n = 1, dl;
	struct stat dbst;
	struct passwd *pw;
	int r;

	make_addr(&addr, local, domain);
	if (lv->depth >= conf_int("local_recursion_limit")) {
		fail(c, lv, buf_str(&addr), LS_BOUNCE, "5.4.6", 0,
		    "mail forwarding loop for %s: local_recursion_limit exceeded", buf_str(&addr));
		goto out;
	}
	if (lv->depth > 0 && c->m->delivered_to) {
		for (i = 0; c->m->delivered_to[i]; i++)
			if (!strcmp(c->m->delivered_to[i], buf_str(&addr))) {
				fail(c, lv, buf_str(&addr), LS_BOUNCE, "5.4.6", 0,
				    "mail forwarding loop for %s", buf_str(&addr));
				goto out;
			}
	}
	names[0] = xstrdup(local);
	str_lower(names[0]);
	dl = *delim ? strcspn(names[0], delim) : strlen(names[0]);
	if (dl > 0 && names[0][dl]) {
		names[1] = xstrndup(names[0], dl);
		ext = xstrdup(names[0] + dl + 1);
		n = 2;
	}
	if (!(flags & F_NOALIAS)) {
		for (i = 0; i < n; i++) {
			buf_reset(&key);
			buf_printf(&key, "a:%s", names[i]);
			r = alias_lookup(names[i], &val, &dbst);
			if (r < 0) {
				fail(c, lv, buf_str(&addr), LS_DEFER, "4.3.0", 0, "alias database unavailable");
				goto out;
			}
			if (r == 0)
				continue;
			if (on_stack(c, buf_str(&key)))
				goto out;	/* a cycle: contributes nothing */
			expand_alias(c, lv, names[i], names[0], buf_str(&val), ext, domain, &dbst);
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		if (!vuser_name_valid(names[i]))
			continue;
		r = vuser_lookup(names[i], &val);
		if (r < 0) {
			fail(c, lv, buf_str(&addr), LS_DEFER, "4.3.0", 0, "virtual user table unavailable");
			goto out;
		}
		if (r > 0) {
			vuser_leaf(c, lv, names[i], buf_str(&val), buf_str(&addr));
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		errno = 0;
		pw = getpwnam(names[i]);
		if (!pw) {
			if (errno && errno != ENOENT && errno != ESRCH && errno != EBADF && errno != EPERM) {
				fail(c, lv, buf_str(&addr), LS_DEFER, "4.3.0", 0, "user database unavailable: %s",
				    strerror(errno));
				goto out;
			}
			continue;
		}
		if (!conf_privileged() && pw->pw_uid != getuid())
			continue;	/* rootless: only the instance owner is a system user */
		system_user(c, lv, pw, names[0], ext, domain, flags);
		goto out;
	}
	/* in a list, an unknown member is re-queued (its bounce then goes to
	 * owner-LIST or the sender, naming the member) unless it is a "the
	 * user itself" reference, which would only come back here */
	fail(c, lv, buf_str(&addr), LS_BOUNCE, "5.1.1", !(flags & F_NOALIAS), "<%s>: unknown user",
	    buf_str(&addr));
out:
	free(names[0]);
	free(names[1]);
	free(ext);
	buf_free(&addr);
	buf_free(&val);
	buf_free(&key);
}

static void
expand_dest(struct rctx *c, const struct level *lv, const char *dest)
{
	const char *arg, *who = lv->env_rcpt ? lv->env_rcpt : c->rcpt;
	enum alias_dest_kind kind = aliases_classify(dest, &arg);
	struct leaf *lf;

	switch (kind) {
	case ALIAS_DEST_BAD:
		fail(c, lv, who, LS_DEFER, "4.3.5", 0, "bad destination \"%s\" for %s: %s", dest, who, arg);
		return;
	case ALIAS_DEST_COMMAND:
		if (!allowed("allow_mail_to_commands", lv->cls)) {
			fail(c, lv, who, LS_BOUNCE, "5.7.1", 0, "mail to command is not allowed in %s (allow_mail_to_commands)",
			    lv->cls);
			return;
		}
		if ((lf = new_leaf(c, lv, LEAF_COMMAND, who)) == NULL)
			return;
		lf->target = xstrdup(arg);
		if (lv->pv)
			privs_copy(&lf->pv, lv->pv);
		set_env(lf, lv);
		return;
	case ALIAS_DEST_FILE:
	case ALIAS_DEST_MAILDIR:
		if (!allowed("allow_mail_to_files", lv->cls)) {
			fail(c, lv, who, LS_BOUNCE, "5.7.1", 0, "mail to file is not allowed in %s (allow_mail_to_files)",
			    lv->cls);
			return;
		}
		if (!strcmp(arg, "/dev/null")) {
			if ((lf = new_leaf(c, lv, LEAF_DEVNULL, who)) != NULL)
				lf->target = xstrdup(arg);
			return;
		}
		if ((lf = new_leaf(c, lv, kind == ALIAS_DEST_FILE ? LEAF_FILE : LEAF_MAILDIR, who)) == NULL)
			return;
		lf->target = xstrdup(arg);
		if (lv->pv)
			privs_copy(&lf->pv, lv->pv);
		return;
	case ALIAS_DEST_INCLUDE:
		expand_include(c, lv, arg);
		return;
	case ALIAS_DEST_ERROR: {
		size_t n = 0;
		struct buf code = BUF_INIT;
		const char *text = arg;

		if (aliases_dsn_code(arg, &n)) {
			buf_add(&code, arg, n);
			for (text = arg + n; *text == ' ' || *text == '\t'; text++)
				;
		} else
			buf_adds(&code, "5.0.0");
		fail(c, lv, who, code.data[0] == '4' ? LS_DEFER : LS_BOUNCE, buf_str(&code), 0, "%s",
		    *text ? text : "delivery refused by an error: destination");
		buf_free(&code);
		return;
	}
	case ALIAS_DEST_NOEXPAND:
		expand_address(c, lv, arg, F_NOALIAS | F_NOFORWARD);
		return;
	case ALIAS_DEST_ADDRESS:
		expand_address(c, lv, dest, 0);
		return;
	}
}

/* What a stored leaf writes to: its kind, target and privileges. */
static void
store_key(struct buf *b, const struct leaf *lf)
{
	buf_printf(b, "%d\001%s\001%d:%ld", lf->kind, lf->target ? lf->target : "",
	    lf->pv.set, (long)lf->pv.uid);
}

/* Sort key for removing duplicate leaves of one recipient.  A remote
 * address compares as qf_rcpt_key says (its local part with its case);
 * it is kept once per envelope sender, as each sender gets its own
 * forwarded copy. */
static char *
leaf_key(const struct leaf *lf)
{
	struct buf b = BUF_INIT;

	if (lf->kind == LEAF_FAIL)
		buf_printf(&b, "%d\001%s\001%s\001%s", lf->kind, lf->addr, lf->fail.dsn, buf_str(&lf->fail.text));
	else if (lf->kind == LEAF_REMOTE) {
		char *k = qf_rcpt_key(lf->target, NULL);

		buf_printf(&b, "%d\001%s\001%s", lf->kind, k, lf->sender);
		free(k);
	} else
		store_key(&b, lf);
	return buf_steal(&b);
}

char *
leaf_dest_key(const struct leaf *lf)
{
	struct buf b = BUF_INIT;
	char *k;

	switch (lf->kind) {
	case LEAF_FAIL:
		if (!lf->reinject)
			return NULL;
		/* an unknown list member, re-queued to bounce on its own */
		k = qf_rcpt_key(lf->addr, NULL);
		buf_printf(&b, "%d\001%s", lf->kind, k);
		free(k);
		break;
	case LEAF_REMOTE:
		k = qf_rcpt_key(lf->target, NULL);
		buf_printf(&b, "%d\001%s", lf->kind, k);
		free(k);
		break;
	default:
		store_key(&b, lf);
		break;
	}
	return buf_steal(&b);
}

static void
dedupe(struct leaves *l)
{
	char **keys;
	unsigned char *drop;
	size_t i, j;

	if (l->n < 2)
		return;
	keys = xcalloc(l->n, sizeof(*keys));
	drop = xcalloc(l->n, 1);
	for (i = 0; i < l->n; i++)
		keys[i] = leaf_key(&l->v[i]);
	strv_mark_dups(keys, l->n, drop);
	for (i = j = 0; i < l->n; i++) {
		free(keys[i]);
		if (drop[i]) {
			leaf_free(&l->v[i]);
			continue;
		}
		if (i != j)
			l->v[j] = l->v[i];
		j++;
	}
	l->n = j;
	free(keys);
	free(drop);
}

void
local_resolve(struct lmsg *m, const char *rcpt, struct leaves *out)
{
	struct rctx c;
	struct level lv;
	struct buf local = BUF_INIT, domain = BUF_INIT, low = BUF_INIT;
	size_t i;

	memset(&c, 0, sizeof(c));
	memset(&lv, 0, sizeof(lv));
	c.m = m;
	c.out = out;
	c.rcpt = rcpt;
	c.privileged = conf_privileged() && geteuid() == 0;
	lv.cls = CLS_ALIAS;
	lv.sender = m->sender;
	if (addr_split(rcpt, &local, &domain) < 0 || local.len == 0) {
		fail(&c, &lv, rcpt, LS_BOUNCE, "5.1.3", 0, "<%s>: bad address syntax", rcpt);
		goto out;
	}
	if (domain.len && !is_local_domain(buf_str(&domain))) {
		fail(&c, &lv, rcpt, LS_BOUNCE, "5.1.2", 0, "<%s>: not a local domain", rcpt);
		goto out;
	}
	if (!domain.len)
		buf_adds(&domain, conf_str("myorigin"));
	buf_adds(&low, rcpt);
	str_lower(low.data);
	for (i = 0; m->delivered_to && m->delivered_to[i]; i++)
		if (!strcmp(m->delivered_to[i], buf_str(&low))) {
			fail(&c, &lv, rcpt, LS_BOUNCE, "5.4.6", 0, "mail forwarding loop for %s", rcpt);
			goto out;
		}
	lv.domain = buf_str(&domain);
	expand_local(&c, &lv, buf_str(&local), buf_str(&domain), 0);
	dedupe(out);
out:
	for (i = 0; i < c.nstack; i++)
		free(c.stack[i]);
	free(c.stack);
	buf_free(&local);
	buf_free(&domain);
	buf_free(&low);
}
