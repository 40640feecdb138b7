/*
 * smtpd: the hermod SMTP server (DESIGN.md, issue 3).
 *
 *   smtpd -C DIR -s NAME [-o name=value ...]     under hermod-master
 *   smtpd -C DIR -S                              one session on stdin/stdout
 *                                                (sendmail -bs: local submission)
 *
 * Under the master, one process serves up to smtpd_sessions_per_process
 * sessions with libevent; it reports itself busy to the master while it
 * is at that limit (so the master starts another) and idle otherwise.
 * It stops accepting after max_use sessions and exits when the last one
 * is over, and exits after max_idle seconds without any session.
 *
 * Everything the process needs from outside the spool (alias and access
 * maps, the TLS key, the time zone) is opened before privileges are
 * dropped to mail_owner; started as root, it then chroots into the
 * spool (smtpd_chroot), where it sees nothing but queue folders and
 * sockets.  Passwords are checked by authd, and whether a local part is
 * a virtual or system user is asked of authd too (lib/authc.h): this
 * process never reads the users file or passwd.  A map rebuilt after
 * the start cannot be reopened from inside the chroot: the process
 * then stops taking connections, finishes its sessions and exits, and
 * the master starts a fresh one (Postfix does the same).
 *
 * Invariants: a session's input is handed to the state machine
 * (smtpd_session.c) in order and only while it is not paused; the
 * connection is freed only when no commit is in flight for it; a reply
 * 250 to a message is only ever produced by the commit callback after
 * the queue file is durable (smtpd_queue.c).
 */
#include "smtpd.h"
#include "smtpd_queue.h"
#include "smtpd_tls.h"
#include "authc.h"
#include "conf.h"
#include "log.h"
#include "map.h"
#include "service.h"
#include "util.h"
#include "vuser.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <sysexits.h>
#include <unistd.h>

#define READ_HIGH_WATER	(256 * 1024)	/* input buffered per session while paused */
#define AUTHD_TIMEOUT	30

static struct smtpd_conf cf;
static struct smtpd_net *nets;
static size_t nnets;
static struct map **amaps, **xmaps;	/* alias maps, access maps */
static char **amap_specs, **xmap_specs;
static size_t namaps, nxmaps;
static SSL_CTX *ssl_ctx;
static int chrooted;		/* maps cannot be reopened */
static int tables_changed;

static struct event_base *base;
static struct event *listen_ev, *idle_ev, *term_ev;
static int lfd = -1;
static long long nconns, max_sessions, accepted, max_use;
static int listening, draining;

struct conn {
	struct smtpd_session s;
	struct bufferevent *bev;
	int fd;
	int fd_owned;		/* the TLS bufferevent closes fd */
	struct event *timer;	/* delays */
	struct event *data_ev;	/* the DATA/BDAT time limit */
	struct event *auth_ev;
	int auth_fd;		/* authd: a login or a user lookup */
	int auth_result;
	char *auth_name;
	struct smtpd_store *store;
	int committing, dead, tls_switch, in_process;
};

static void conn_process(struct conn *c);
static void conn_free(struct conn *c);
static void listen_set(int on);

/*
 * Maps.
 */
static void
maps_open(const char *param, char ***specs, struct map ***maps, size_t *n)
{
	char **v = conf_list(param);
	size_t i;

	*n = strv_len(v);
	*specs = v;
	*maps = xcalloc(*n ? *n : 1, sizeof(**maps));
	for (i = 0; i < *n; i++) {
		struct buf err = BUF_INIT;

		(*maps)[i] = map_open(v[i], &err);
		if (!(*maps)[i])
			msg_warn("%s: %s: %s", param, v[i], buf_str(&err));
		buf_free(&err);
	}
}

static void
maps_close(char **specs, struct map **maps, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (maps[i])
			map_close(maps[i]);
	free(maps);
	strv_free(specs);
}

/* At exit: Berkeley DB keeps its pages where leak checkers cannot see
 * them, so close what is open. */
static void
maps_close_all(void)
{
	maps_close(amap_specs, amaps, namaps);
	maps_close(xmap_specs, xmaps, nxmaps);
	amaps = xmaps = NULL;
	amap_specs = xmap_specs = NULL;
	namaps = nxmaps = 0;
}

/* In the chroot: has any map been rebuilt?  Then leave to a successor
 * that can open it, after the sessions under way.  Asked when a client
 * connects (the sessions under way keep the maps they started with). */
static int
tables_check(void)
{
	size_t i;

	if (!chrooted || tables_changed)
		return tables_changed;
	for (i = 0; i < namaps + nxmaps && !tables_changed; i++) {
		struct map *m = i < namaps ? amaps[i] : xmaps[i - namaps];

		if (m && map_replaced(m)) {
			msg_info("%s has changed: finishing the sessions under way, then restarting",
			    map_spec(m));
			tables_changed = 1;
		}
	}
	if (tables_changed) {
		listen_set(0);
		draining = 1;
		if (nconns == 0 && base)
			event_base_loopexit(base, NULL);
	}
	return tables_changed;
}

/* 1 found, 0 not, -1 error, over a list of maps; reopens rebuilt ones
 * (outside a chroot; inside, tables_check at accept hands over instead). */
static int
maps_lookup(char **specs, struct map **maps, size_t n, const char *key, struct buf *val)
{
	size_t i;

	for (i = 0; i < n; i++) {
		int r;

		if (!chrooted && maps[i] && map_stale(maps[i])) {
			struct buf err = BUF_INIT;
			struct map *m = map_open(specs[i], &err);

			if (m) {
				map_close(maps[i]);
				maps[i] = m;
			}
			buf_free(&err);
		}
		if (!maps[i])
			continue;
		if ((r = map_lookup(maps[i], key, val)) != 0)
			return r;
	}
	return 0;
}

/*
 * Virtual user names.  The users file holds password hashes and is
 * readable only by its owner (root in a privileged instance), so the
 * names are read before privileges are dropped and re-read whenever the
 * file changes and can still be read (rootless instances).
 */
static char **vusers;
static struct timespec vusers_mtime;
static int vusers_warned;

static void
vusers_refresh(int force)
{
	struct stat st;
	char **v;

	if (stat(conf_str("virtual_users_file"), &st) < 0) {
		if (errno == ENOENT) {
			strv_free(vusers);
			vusers = NULL;
		}
		return;
	}
	if (!force && st.st_mtim.tv_sec == vusers_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == vusers_mtime.tv_nsec)
		return;
	if (access(conf_str("virtual_users_file"), R_OK) < 0) {
		if (!vusers_warned++)
			msg_warn("%s changed but is not readable after the privilege drop: new virtual users are seen when this smtpd process is restarted",
			    conf_str("virtual_users_file"));
		vusers_mtime = st.st_mtim;
		return;
	}
	if (!(v = vuser_list()))
		return;
	strv_free(vusers);
	vusers = v;
	vusers_mtime = st.st_mtim;
}

static int
vuser_known(const char *name)
{
	size_t i;

	vusers_refresh(0);
	for (i = 0; vusers && vusers[i]; i++)
		if (!strcmp(vusers[i], name))
			return 1;
	return 0;
}

/*
 * Users authd said exist, for smtpd_user_cache_time: at a few thousand
 * messages a second, one authd round trip per RCPT is a large part of
 * the work.  Only "yes" is kept: a user added is accepted at once, a
 * user removed may be accepted for that long and then bounced by local.
 */
#define USER_CACHE_MAX	1024

static struct { char *name; int64_t until; } ucache[USER_CACHE_MAX];
static size_t nucache;

static int
ucache_has(const char *name)
{
	int64_t now = mono_ms();
	size_t i;

	for (i = 0; i < nucache; i++)
		if (!strcmp(ucache[i].name, name)) {
			if (ucache[i].until > now)
				return 1;
			free(ucache[i].name);
			ucache[i] = ucache[--nucache];
			return 0;
		}
	return 0;
}

static void
ucache_add(const char *name)
{
	long long ttl = conf_time("smtpd_user_cache_time");
	size_t i, old = 0;

	if (ttl <= 0 || !name)
		return;
	if (nucache == USER_CACHE_MAX) {
		for (i = 1; i < nucache; i++)
			if (ucache[i].until < ucache[old].until)
				old = i;
		free(ucache[old].name);
		ucache[old] = ucache[--nucache];
	}
	ucache[nucache].name = xstrdup(name);
	ucache[nucache].until = mono_ms() + ttl * 1000;
	nucache++;
}

/*
 * The operations the session state machine asks for.
 */

/* Aliases here; virtual and system users are asked of authd, answered
 * in user_cb. */
static void user_cb(evutil_socket_t fd, short what, void *arg);

static int
op_local_user(void *ctx, const char *name)
{
	struct conn *c = ctx;
	struct buf val = BUF_INIT;
	struct timeval tv = { AUTHD_TIMEOUT, 0 };
	int r;

	r = maps_lookup(amap_specs, amaps, namaps, name, &val);
	buf_free(&val);
	if (r != 0)
		return r;
	if (ucache_has(name))
		return 1;
	if ((c->auth_fd = authc_user_send("smtpd", name)) < 0) {
		msg_warn("%s: authd: cannot reach %s: %s", c->s.client_desc,
		    conf_str("authd_socket"), strerror(errno));
		return -1;
	}
	c->auth_ev = event_new(base, c->auth_fd, EV_READ, user_cb, c);
	event_add(c->auth_ev, &tv);
	return SMTPD_PENDING;
}

/* sendmail -bs: the caller's own process, not chrooted; what it cannot
 * read (the users file of a privileged instance) it does not know. */
static int
st_local_user(void *ctx, const char *name)
{
	struct buf val = BUF_INIT;
	struct passwd *pw;
	int r;

	(void)ctx;
	r = maps_lookup(amap_specs, amaps, namaps, name, &val);
	buf_free(&val);
	if (r != 0)
		return r;
	if (vuser_name_valid(name) && vuser_known(name))
		return 1;
	errno = 0;
	if ((pw = getpwnam(name))) {
		if (conf_privileged() || pw->pw_uid == getuid())
			return 1;
	}
	/* a user of a privileged instance cannot read the users file:
	 * like sendmail -t, accept, and local delivery decides (an unknown
	 * name comes back to the caller as a bounce) */
	if (vuser_name_valid(name) && access(conf_str("virtual_users_file"), R_OK) < 0 &&
	    errno != ENOENT)
		return 1;
	return 0;
}

static int
op_access(void *ctx, const char *key, struct buf *val)
{
	return maps_lookup(xmap_specs, xmaps, nxmaps, key, val);
}

static int
op_msg_open(void *ctx, struct smtpd_session *s, char id[QUEUE_ID_MAX])
{
	struct conn *c = ctx;

	if (!c->store)
		c->store = smtpd_store_new();
	return smtpd_store_open(c->store, s, id);
}

static void
op_msg_write(void *ctx, const char *p, size_t n)
{
	struct conn *c = ctx;

	smtpd_store_write(c->store, p, n);
}

static void
op_msg_abort(void *ctx)
{
	struct conn *c = ctx;

	if (c->store)
		smtpd_store_abort(c->store);
}

static void
commit_done(void *arg, int ok, const char *id)
{
	struct conn *c = arg;

	c->committing = 0;
	if (c->dead) {
		conn_free(c);
		return;
	}
	smtpd_session_commit_done(&c->s, ok);
	conn_process(c);
}

static void
op_msg_commit(void *ctx, int hold)
{
	struct conn *c = ctx;

	c->committing = 1;
	smtpd_store_commit(c->store, hold, commit_done, c);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->s.paused == PAUSE_AUTH) {
		/* the failed login's delay is over */
		smtpd_session_auth_done(&c->s, c->auth_result, c->auth_name);
		free(c->auth_name);
		c->auth_name = NULL;
	} else
		smtpd_session_resume(&c->s);
	conn_process(c);
}

static void
start_timer(struct conn *c, long long ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };

	if (!c->timer)
		c->timer = evtimer_new(base, timer_cb, c);
	evtimer_add(c->timer, &tv);
}

static void
op_delay(void *ctx, long long ms)
{
	start_timer(ctx, ms);
}

/* An authd request's event: 1 when there is a reply to read. */
static int
authd_answered(struct conn *c, short what)
{
	if (what & EV_READ)
		return 1;
	msg_warn("%s: authd did not answer in %ds", c->s.client_desc, AUTHD_TIMEOUT);
	return 0;
}

static void
authd_done(struct conn *c)
{
	close(c->auth_fd);
	c->auth_fd = -1;
	event_free(c->auth_ev);
	c->auth_ev = NULL;
}

static void
auth_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct auth_user u;
	int r = AUTHC_TEMPFAIL;

	memset(&u, 0, sizeof(u));
	if (authd_answered(c, what))
		r = authc_recv(fd, &u);
	authd_done(c);
	if (r == AUTHC_FAIL) {
		c->auth_result = 0;
		start_timer(c, conf_time("auth_failure_delay") * 1000);
		return;
	}
	smtpd_session_auth_done(&c->s, r == AUTHC_OK ? 1 : -1, u.name);
	auth_user_free(&u);
	conn_process(c);
}

static void
user_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	int r = AUTHC_TEMPFAIL;

	if (authd_answered(c, what))
		r = authc_user_recv(fd);
	authd_done(c);
	if (r == AUTHC_OK)
		ucache_add(c->s.lookup_name);
	smtpd_session_lookup_done(&c->s, r == AUTHC_OK ? 1 : r == AUTHC_FAIL ? 0 : -1);
	conn_process(c);
}

static void
op_auth(void *ctx, const char *user, const char *pass)
{
	struct conn *c = ctx;
	struct timeval tv = { AUTHD_TIMEOUT, 0 };

	c->auth_fd = authc_send("smtpd", user, pass, c->s.client_addr);
	if (c->auth_fd < 0) {
		msg_warn("%s: authd: %s", c->s.client_desc, strerror(errno));
		smtpd_session_auth_done(&c->s, -1, NULL);
		return;
	}
	c->auth_ev = event_new(base, c->auth_fd, EV_READ, auth_cb, c);
	event_add(c->auth_ev, &tv);
}

static void
op_starttls(void *ctx)
{
	/* done in conn_flush once the 220 is written */
}

static void
data_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	smtpd_session_timeout(&c->s, "data timeout exceeded");
	conn_process(c);
}

static void
op_data_timer(void *ctx, int on)
{
	struct conn *c = ctx;
	struct timeval tv = { (time_t)conf_time("smtpd_data_timeout"), 0 };

	if (!c->data_ev)
		c->data_ev = evtimer_new(base, data_cb, c);
	if (on && tv.tv_sec > 0)
		evtimer_add(c->data_ev, &tv);
	else
		evtimer_del(c->data_ev);
}

static const struct smtpd_ops daemon_ops = {
	.auth = op_auth,
	.starttls = op_starttls,
	.delay = op_delay,
	.msg_open = op_msg_open,
	.msg_write = op_msg_write,
	.msg_commit = op_msg_commit,
	.msg_abort = op_msg_abort,
	.local_user = op_local_user,
	.access = op_access,
	.data_timer = op_data_timer,
};

/*
 * Connections.
 */
static void readcb(struct bufferevent *bev, void *arg);
static void writecb(struct bufferevent *bev, void *arg);
static void eventcb(struct bufferevent *bev, short what, void *arg);

static void
set_bev(struct conn *c, struct bufferevent *bev)
{
	struct timeval tv = { (time_t)conf_time("smtpd_timeout"), 0 };

	c->bev = bev;
	bufferevent_setcb(bev, readcb, writecb, eventcb, c);
	bufferevent_setwatermark(bev, EV_READ, 0, READ_HIGH_WATER);
	if (tv.tv_sec > 0)
		bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void
start_tls(struct conn *c)
{
	struct bufferevent *tb;

	/* everything the plain bufferevent holds is dropped with it */
	bufferevent_free(c->bev);
	c->bev = NULL;
	if (!(tb = smtpd_tls_bev(base, ssl_ctx, c->fd))) {
		msg_warn("%s: cannot start TLS", c->s.client_desc);
		c->s.closing = 1;
		conn_free(c);
		return;
	}
	c->fd_owned = 1;
	set_bev(c, tb);
}

/* Write the session's replies; handle closing and the STARTTLS switch. */
static void
conn_flush(struct conn *c)
{
	struct smtpd_session *s = &c->s;
	struct evbuffer *out;

	if (!c->bev)
		return;
	out = bufferevent_get_output(c->bev);
	if (s->out.len) {
		bufferevent_write(c->bev, s->out.data, s->out.len);
		if (s->out.cap > 4096)
			buf_free(&s->out);
		else
			buf_reset(&s->out);
	}
	if (s->closing) {
		bufferevent_disable(c->bev, EV_READ);
		if (evbuffer_get_length(out) == 0)
			conn_free(c);
		return;
	}
	if (s->paused == PAUSE_TLS && !c->tls_switch) {
		c->tls_switch = 1;
		bufferevent_disable(c->bev, EV_READ);
		evbuffer_drain(bufferevent_get_input(c->bev),
		    evbuffer_get_length(bufferevent_get_input(c->bev)));
		if (evbuffer_get_length(out) == 0)
			start_tls(c);
	}
}

static void
conn_process(struct conn *c)
{
	struct smtpd_session *s = &c->s;
	struct evbuffer *in;

	if (c->in_process || !c->bev)
		return;
	c->in_process = 1;
	in = bufferevent_get_input(c->bev);
	while (s->paused == PAUSE_NONE && !s->closing) {
		struct evbuffer_iovec v;
		size_t used;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			break;
		used = smtpd_session_feed(s, v.iov_base, v.iov_len);
		evbuffer_drain(in, used);
		if (used < v.iov_len)
			break;
	}
	c->in_process = 0;
	conn_flush(c);
}

static void
readcb(struct bufferevent *bev, void *arg)
{
	conn_process(arg);
}

static void
writecb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)))
		return;
	if (c->s.closing)
		conn_free(c);
	else if (c->tls_switch && c->s.paused == PAUSE_TLS)
		start_tls(c);
}

static void
eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		struct buf d = BUF_INIT;
		int wrapper = !c->tls_switch;

		smtpd_tls_describe(bev, &d);
		c->tls_switch = 0;
		smtpd_session_tls_done(&c->s, buf_str(&d));
		buf_free(&d);
		if (wrapper && smtpd_session_start(&c->s) < 0) {
			conn_flush(c);
			return;
		}
		conn_process(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		smtpd_session_timeout(&c->s, "timeout exceeded");
		bufferevent_set_timeouts(bev, NULL, NULL);
		conn_flush(c);
		if (!c->dead && c->bev && c->s.closing) {
			/* the client does not read either: give up */
			conn_free(c);
		}
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		if (c->fd_owned && (c->tls_switch || !c->s.tls)) {
			struct buf e = BUF_INIT;

			smtpd_tls_error(bev, &e);
			msg_info("%s: TLS handshake failed: %s", c->s.client_desc, buf_str(&e));
			buf_free(&e);
		}
	}
	smtpd_session_timeout(&c->s, "lost connection");
	conn_free(c);
}

static void
listen_set(int on)
{
	if (on && !listening && !draining) {
		event_add(listen_ev, NULL);
		listening = 1;
		service_idle();
	} else if (!on && listening) {
		event_del(listen_ev);
		listening = 0;
		service_busy();
	}
}

static void
conn_free(struct conn *c)
{
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (!c->dead) {
		c->dead = 1;
		if (!c->fd_owned)
			close(c->fd);
		c->fd = -1;
		if (c->timer)
			event_free(c->timer);
		if (c->data_ev)
			event_free(c->data_ev);
		if (c->auth_ev) {
			event_free(c->auth_ev);
			close(c->auth_fd);
		}
		c->timer = c->data_ev = c->auth_ev = NULL;
		free(c->auth_name);
		c->auth_name = NULL;
		nconns--;
		if (!draining && nconns < max_sessions)
			listen_set(1);
		if (draining && nconns == 0)
			event_base_loopexit(base, NULL);
		if (nconns == 0 && idle_ev) {
			struct timeval tv = { (time_t)conf_time("max_idle"), 0 };

			if (tv.tv_sec > 0)
				evtimer_add(idle_ev, &tv);
		}
	}
	if (c->committing)
		return;		/* commit_done finishes the job */
	smtpd_session_free(&c->s);
	smtpd_store_free(c->store);
	free(c);
}

/* Printable address of a socket; loopback flag. */
static void
sock_addr(const struct sockaddr_storage *ss, char *out, size_t outlen, int *loopback)
{
	*loopback = 0;
	out[0] = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)outlen);
		*loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], out, (socklen_t)outlen);
			*loopback = in6->sin6_addr.s6_addr[12] == 127;
		} else {
			inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)outlen);
			*loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
		}
	} else if (ss->ss_family == AF_UNIX) {
		snprintf(out, outlen, "127.0.0.1");	/* standalone test socket */
		*loopback = 1;
	}
}

static void
accept_cb(evutil_socket_t l, short what, void *arg)
{
	int n;

	if (tables_check())
		return;		/* a successor takes this connection */
	for (n = 0; n < 64 && nconns < max_sessions && !draining; n++) {
		struct sockaddr_storage peer, me;
		socklen_t pl = sizeof(peer), ml = sizeof(me);
		char paddr[INET6_ADDRSTRLEN + 8], maddr[INET6_ADDRSTRLEN + 8];
		int fd, loop, loop2;
		struct conn *c;
		struct bufferevent *bev;

		fd = accept4(l, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				msg_warn("accept: %s", strerror(errno));
			break;
		}
		if (getsockname(fd, (struct sockaddr *)&me, &ml) < 0)
			memset(&me, 0, sizeof(me));
		sock_addr(&peer, paddr, sizeof(paddr), &loop);
		sock_addr(&me, maddr, sizeof(maddr), &loop2);
		c = xcalloc(1, sizeof(*c));
		c->fd = fd;
		c->auth_fd = -1;
		smtpd_session_init(&c->s, &cf, &daemon_ops, c, paddr, maddr,
		    smtpd_net_match(nets, nnets, paddr), loop);
		if (cf.wrapper) {
			bev = ssl_ctx ? smtpd_tls_bev(base, ssl_ctx, fd) : NULL;
			c->fd_owned = bev != NULL;
		} else
			bev = bufferevent_socket_new(base, fd, 0);
		nconns++;
		accepted++;
		if (idle_ev)
			evtimer_del(idle_ev);
		if (!bev) {
			msg_warn("%s: cannot set up the connection%s", c->s.client_desc,
			    cf.wrapper ? " (TLS not available)" : "");
			c->bev = NULL;
			conn_free(c);
			continue;
		}
		set_bev(c, bev);
		if (!cf.wrapper) {
			smtpd_session_start(&c->s);
			conn_flush(c);
		}
		if (max_use > 0 && accepted >= max_use) {
			/* let a fresh process take over; leave when done */
			listen_set(0);
			draining = 1;
		}
	}
	if (nconns >= max_sessions)
		listen_set(0);
}

/* SIGTERM from the master (a reload, or a stop): take no more
 * connections, finish those under way (the master kills what is left
 * after its grace period on a stop). */
static void
term_cb(evutil_socket_t sig, short what, void *arg)
{
	if (!draining)
		msg_debug("SIGTERM: finishing %lld session(s), then exiting", nconns);
	listen_set(0);
	draining = 1;
	if (nconns == 0)
		event_base_loopexit(base, NULL);
}

static void
idle_cb(evutil_socket_t fd, short what, void *arg)
{
	if (nconns == 0)
		event_base_loopexit(base, NULL);
}

/*
 * Configuration.
 */
static char **
lower_list(const char *param)
{
	char **v = conf_list(param);
	size_t i;

	for (i = 0; v && v[i]; i++)
		str_lower(v[i]);
	return v;
}

static void
load_conf(int stdio)
{
	const char *bl = conf_str("smtpd_bare_lf");
	const char *lvl = conf_str("smtpd_tls_security_level");
	char **v;
	size_t i;

	cf.hostname = xstrdup(conf_str("myhostname"));
	cf.banner = xstrdup(conf_str("smtpd_banner"));
	if (has_crlfnul(cf.banner, strlen(cf.banner)))
		msg_fatal("smtpd_banner must not contain CR or LF");
	cf.mail_name = xstrdup(conf_str("mail_name"));
	cf.mydestination = lower_list("mydestination");
	cf.relay_domains = lower_list("relay_domains");
	cf.recipient_delimiter = xstrdup(conf_str("recipient_delimiter"));
	cf.myorigin = xstrdup(conf_str("myorigin"));
	cf.size_limit = conf_size("message_size_limit");
	cf.rcpt_limit = conf_int("smtpd_recipient_limit");
	cf.line_limit = conf_int("smtpd_line_length_limit");
	if (cf.line_limit < 512)
		cf.line_limit = 512;
	cf.soft_errors = conf_int("smtpd_soft_error_limit");
	cf.hard_errors = conf_int("smtpd_hard_error_limit");
	cf.error_sleep_ms = conf_time("smtpd_error_sleep_time") * 1000;
	cf.hop_limit = conf_int("hopcount_limit");
	cf.auth_fail_limit = conf_int("auth_failure_limit");
	cf.vrfy = conf_bool("smtpd_vrfy_enable");
	if (!strcmp(bl, "normalize"))
		cf.bare_lf_normalize = 1;
	else if (strcmp(bl, "reject"))
		msg_fatal("smtpd_bare_lf = %s: want reject or normalize", bl);
	if (!strcmp(lvl, "none"))
		cf.tls_level = TLS_LEVEL_NONE;
	else if (!strcmp(lvl, "may"))
		cf.tls_level = TLS_LEVEL_MAY;
	else if (!strcmp(lvl, "encrypt"))
		cf.tls_level = TLS_LEVEL_ENCRYPT;
	else
		msg_fatal("smtpd_tls_security_level = %s: want none, may or encrypt", lvl);
	cf.wrapper = conf_bool("smtpd_tls_wrappermode");
	cf.auth_enable = conf_bool("smtpd_sasl_auth_enable");
	cf.auth_required = conf_bool("smtpd_sasl_auth_required");
	cf.auth_loopback = conf_bool("smtpd_sasl_loopback_plaintext");
	cf.local_submit = stdio;
	v = conf_list("mynetworks");
	nets = xcalloc(strv_len(v) + 1, sizeof(*nets));
	for (i = 0; v[i]; i++) {
		if (smtpd_net_parse(v[i], &nets[nnets]) == 0)
			nnets++;
		else
			msg_warn("mynetworks: %s: not an address or network: ignored", v[i]);
	}
	strv_free(v);
	if (stdio)
		vusers_refresh(1);
	maps_open("alias_maps", &amap_specs, &amaps, &namaps);
	maps_open("smtpd_access_maps", &xmap_specs, &xmaps, &nxmaps);
	/* expand now what other threads will read later */
	(void)conf_str("queue_directory");
	(void)conf_str("virtual_users_file");
	(void)conf_str("virtual_mailbox_base");
}

/*
 * stdio mode: sendmail -bs.  One session, blocking I/O, synchronous
 * commits; the client is the calling user, who may relay.
 */
struct stdio_ctx {
	struct smtpd_session s;
	struct smtpd_store *store;
};

static int
st_msg_open(void *ctx, struct smtpd_session *s, char id[QUEUE_ID_MAX])
{
	struct stdio_ctx *x = ctx;

	return smtpd_store_open(x->store, s, id);
}

static void
st_msg_write(void *ctx, const char *p, size_t n)
{
	struct stdio_ctx *x = ctx;

	smtpd_store_write(x->store, p, n);
}

static void
st_done(void *arg, int ok, const char *id)
{
	struct stdio_ctx *x = arg;

	if (ok && id && *id)	/* the maildrop file's name, once known */
		snprintf(x->s.queue_id, sizeof(x->s.queue_id), "%s", id);
	smtpd_session_commit_done(&x->s, ok);
}

static void
st_msg_commit(void *ctx, int hold)
{
	struct stdio_ctx *x = ctx;

	smtpd_store_commit(x->store, hold, st_done, x);
}

static void
st_msg_abort(void *ctx)
{
	struct stdio_ctx *x = ctx;

	smtpd_store_abort(x->store);
}

static void
st_delay(void *ctx, long long ms)
{
	struct stdio_ctx *x = ctx;

	usleep((useconds_t)(ms > 10000 ? 10000000 : ms * 1000));
	smtpd_session_resume(&x->s);
}

static void
st_auth(void *ctx, const char *u, const char *p)
{
	struct stdio_ctx *x = ctx;

	smtpd_session_auth_done(&x->s, -1, NULL);
}

static void
st_starttls(void *ctx)
{
}

static const struct smtpd_ops stdio_ops = {
	.auth = st_auth,
	.starttls = st_starttls,
	.delay = st_delay,
	.msg_open = st_msg_open,
	.msg_write = st_msg_write,
	.msg_commit = st_msg_commit,
	.msg_abort = st_msg_abort,
	.local_user = st_local_user,
	.access = op_access,
	.data_timer = NULL,
};

static int
run_stdio(void)
{
	struct stdio_ctx x;
	struct passwd *pw = getpwuid(getuid());
	struct buf who = BUF_INIT;
	static char in[65536];
	long long tmo = conf_time("smtpd_timeout");

	memset(&x, 0, sizeof(x));
	x.store = smtpd_store_new();
	conf_queue_path(&who, "incoming");
	if (access(buf_str(&who), W_OK | X_OK) < 0)
		smtpd_store_use_maildrop(x.store);
	buf_reset(&who);
	smtpd_session_init(&x.s, &cf, &stdio_ops, &x, "127.0.0.1", "127.0.0.1", 1, 1);
	buf_printf(&who, "uid=%ld user=%s", (long)getuid(), pw ? pw->pw_name : "unknown");
	x.s.local_user = buf_steal(&who);
	smtpd_session_start(&x.s);
	for (;;) {
		struct pollfd p = { .fd = 0, .events = POLLIN };
		ssize_t n;
		size_t off = 0;
		int r;

		if (x.s.out.len) {
			if (write_full(1, x.s.out.data, x.s.out.len) < 0)
				break;
			buf_reset(&x.s.out);
		}
		if (x.s.closing)
			break;
		r = poll(&p, 1, tmo > 0 ? (int)(tmo * 1000) : -1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			smtpd_session_timeout(&x.s, "timeout exceeded");
			continue;
		}
		n = read(0, in, sizeof(in));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			smtpd_session_timeout(&x.s, "lost connection");
			break;
		}
		while (off < (size_t)n && !x.s.closing) {
			off += smtpd_session_feed(&x.s, in + off, (size_t)n - off);
			if (x.s.paused != PAUSE_NONE && !x.s.closing)
				x.s.paused = PAUSE_NONE;	/* nothing is asynchronous here */
		}
	}
	if (x.s.out.len)
		(void)write_full(1, x.s.out.data, x.s.out.len);
	smtpd_session_free(&x.s);
	smtpd_store_free(x.store);
	maps_close_all();
	return 0;
}

static int
run_daemon(void)
{
	lfd = service_listen_fd();
	if (lfd < 0)
		msg_fatal("no listening socket: smtpd is started by hermod-master (or with -S)");
	set_nonblock(lfd, 1);
	if (conf_bool("smtpd_tls_wrappermode") || strcmp(conf_str("smtpd_tls_security_level"), "none"))
		ssl_ctx = smtpd_tls_ctx();
	cf.tls_available = ssl_ctx != NULL;
	if (cf.wrapper && !ssl_ctx)
		msg_warn("smtpd_tls_wrappermode = yes but TLS is not available: clients will be disconnected");
	if (chdir(conf_str("queue_directory")) < 0)
		msg_fatal("chdir %s: %s", conf_str("queue_directory"), strerror(errno));
	tzset();	/* the Received header's zone, read once, here */
	if (conf_bool("smtpd_chroot") &&
	    priv_drop_to_owner_chroot(conf_str("queue_directory"))) {
		chrooted = 1;
		conf_set("queue_directory", "/");
	} else
		priv_drop_to_owner();
	max_sessions = conf_int("smtpd_sessions_per_process");
	if (max_sessions < 1)
		max_sessions = 1;
	max_use = conf_int("max_use");
	if (max_use > 0 && max_use < max_sessions)
		max_use = max_sessions;	/* max_use counts sessions, several at once */
	base = event_base_new();
	if (!base)
		msg_fatal("event_base_new failed");
	if (smtpd_store_init(base) < 0)
		msg_fatal("cannot start the commit thread: %s", strerror(errno));
	listen_ev = event_new(base, lfd, EV_READ | EV_PERSIST, accept_cb, NULL);
	term_ev = evsignal_new(base, SIGTERM, term_cb, NULL);
	event_add(term_ev, NULL);
	idle_ev = evtimer_new(base, idle_cb, NULL);
	listen_set(1);
	{
		struct timeval tv = { (time_t)conf_time("max_idle"), 0 };

		if (tv.tv_sec > 0)
			evtimer_add(idle_ev, &tv);
	}
	event_base_dispatch(base);
	maps_close_all();
	return 0;
}

int
main(int argc, char **argv)
{
	int i, stdio = 0;

	sane_fds();
	i = service_init("smtpd", argc, argv);
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "-S"))
			stdio = 1;
		else
			msg_fatal("usage: smtpd [-C dir] [-s name] [-o name=value] [-S]");
	}
	load_conf(stdio);
	if (stdio)
		return run_stdio();
	return run_daemon();
}
