/*
 * smtpd_relay.c: who may send where.
 *
 * Mail for a local domain (mydestination, or an IP literal naming the
 * address the client connected to) is accepted from anyone, but only
 * for recipients that exist (aliases, virtual users, system users:
 * through s->ops->local_user) and postmaster.  Mail for any other domain
 * is relayed only for clients in mynetworks, authenticated sessions,
 * the local submission of sendmail -bs, clients or domains an access
 * map says OK to, and domains in relay_domains.
 *
 * Address tricks are refused for clients that may not relay, whatever
 * the domain: a source route (@a:b@c), a local part holding '@', '%' or
 * '!' (quoted or not: "user@remote"@local, user%remote@local,
 * remote!user@local), user@remote@local.  They are answered "554 5.7.1
 * Relay access denied" so that no later stage can be talked into
 * treating them as a route.
 *
 * Access maps (smtpd_access_maps) are consulted with the client address
 * (then its IPv4 networks "a.b.c", "a.b", "a"), the HELO name, the
 * sender (address, domain, "local@") and the recipient (address,
 * domain).  The value's first word is the action: OK, REJECT, DEFER,
 * HOLD or DISCARD; the rest, when present, is the text of the reply.
 */
#include "smtpd.h"
#include "addr.h"
#include "log.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int
smtpd_net_parse(const char *str, struct smtpd_net *n)
{
	char tmp[128];
	char *slash, *a = tmp;
	size_t l = strlen(str);
	long long bits = -1;

	if (l >= sizeof(tmp))
		return -1;
	memcpy(tmp, str, l + 1);
	if ((slash = strchr(tmp, '/'))) {
		*slash = 0;
		if (parse_ll(slash + 1, 0, 128, &bits) < 0)
			return -1;
	}
	l = strlen(a);
	if (l && a[0] == '[' && a[l - 1] == ']') {
		a[l - 1] = 0;
		a++;
	}
	memset(n, 0, sizeof(*n));
	if (inet_pton(AF_INET, a, n->addr) == 1) {
		n->family = AF_INET;
		if (bits > 32)
			return -1;
		n->bits = bits < 0 ? 32 : (int)bits;
	} else if (inet_pton(AF_INET6, a, n->addr) == 1) {
		n->family = AF_INET6;
		n->bits = bits < 0 ? 128 : (int)bits;
	} else
		return -1;
	return 0;
}

static int
prefix_eq(const unsigned char *a, const unsigned char *b, int bits)
{
	int full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)full))
		return 0;
	if (rest) {
		unsigned char mask = (unsigned char)(0xff << (8 - rest));

		if ((a[full] & mask) != (b[full] & mask))
			return 0;
	}
	return 1;
}

int
smtpd_net_match(const struct smtpd_net *n, size_t nn, const char *addr)
{
	unsigned char a4[4], a6[16];
	int is4 = 0, is6 = 0;
	size_t i;

	if (inet_pton(AF_INET, addr, a4) == 1)
		is4 = 1;
	else if (inet_pton(AF_INET6, addr, a6) == 1) {
		static const unsigned char mapped[12] = { 0,0,0,0,0,0,0,0,0,0,0xff,0xff };

		is6 = 1;
		if (!memcmp(a6, mapped, 12)) {
			memcpy(a4, a6 + 12, 4);
			is4 = 1;
		}
	}
	for (i = 0; i < nn; i++) {
		if (n[i].family == AF_INET && is4 && prefix_eq(n[i].addr, a4, n[i].bits))
			return 1;
		if (n[i].family == AF_INET6 && is6 && prefix_eq(n[i].addr, a6, n[i].bits))
			return 1;
	}
	return 0;
}

int
smtpd_domain_in(char **list, const char *domain)
{
	size_t i;

	for (i = 0; list && list[i]; i++)
		if (!strcasecmp(list[i], domain))
			return 1;
	return 0;
}

int
smtpd_domain_local(const struct smtpd_conf *cf, const char *domain)
{
	return smtpd_domain_in(cf->mydestination, domain);
}

enum { ACC_NONE, ACC_OK, ACC_REJECT, ACC_DEFER, ACC_HOLD, ACC_DISCARD, ACC_TEMP };

/* Look the keys up in order; the first found decides.  text gets the
 * optional reply text. */
static int
access_check(struct smtpd_session *s, const char *const *keys, struct buf *text)
{
	struct buf val = BUF_INIT;
	size_t i;
	int r = ACC_NONE;

	buf_reset(text);
	if (!s->ops->access)
		return ACC_NONE;
	for (i = 0; keys[i] && r == ACC_NONE; i++) {
		const char *v, *w;
		size_t wl;
		int found;

		if (!*keys[i])
			continue;
		found = s->ops->access(s->ctx, keys[i], &val);
		if (found < 0) {
			r = ACC_TEMP;
			break;
		}
		if (!found)
			continue;
		v = buf_str(&val);
		while (*v == ' ' || *v == '\t')
			v++;
		for (w = v; *w && *w != ' ' && *w != '\t'; w++)
			;
		wl = (size_t)(w - v);
		while (*w == ' ' || *w == '\t')
			w++;
		if (wl == 2 && !strncasecmp(v, "OK", 2))
			r = ACC_OK;
		else if (wl == 6 && !strncasecmp(v, "REJECT", 6))
			r = ACC_REJECT;
		else if (wl == 5 && !strncasecmp(v, "DEFER", 5))
			r = ACC_DEFER;
		else if (wl == 4 && !strncasecmp(v, "HOLD", 4))
			r = ACC_HOLD;
		else if (wl == 7 && !strncasecmp(v, "DISCARD", 7))
			r = ACC_DISCARD;
		else {
			msg_warn("access map: key %s: unknown action \"%s\": ignored", keys[i], v);
			continue;
		}
		/* the text goes into a reply: printable ASCII only */
		for (; *w && text->len < 200; w++)
			buf_addc(text, (unsigned char)*w >= 32 && (unsigned char)*w < 127 ? *w : '?');
	}
	buf_free(&val);
	return r;
}

/* Common handling of REJECT / DEFER / HOLD / DISCARD / lookup failure.
 * 0 go on, -1 reply set. */
static int
access_act(struct smtpd_session *s, int r, const char *what, const char *text,
    struct buf *reply, int session_level)
{
	switch (r) {
	case ACC_REJECT:
		buf_printf(reply, "554 5.7.1 %s: Access denied%s%s", what, *text ? ": " : "", text);
		return -1;
	case ACC_DEFER:
		buf_printf(reply, "450 4.7.1 %s: Try again later%s%s", what, *text ? ": " : "", text);
		return -1;
	case ACC_TEMP:
		buf_printf(reply, "451 4.3.0 %s: Temporary lookup failure", what);
		return -1;
	case ACC_HOLD:
		s->hold = 1;
		if (session_level)
			s->sess_hold = 1;
		return 0;
	case ACC_DISCARD:
		s->discard = 1;
		if (session_level)
			s->sess_discard = 1;
		return 0;
	}
	return 0;
}

int
smtpd_check_client(struct smtpd_session *s, struct buf *reply)
{
	char net[3][64];
	const char *keys[6];
	struct buf text = BUF_INIT;
	size_t k = 0;
	int r;

	buf_reset(reply);
	if (s->local_user)
		return 0;
	keys[k++] = s->client_addr;
	if (strchr(s->client_addr, '.') && !strchr(s->client_addr, ':') &&
	    strlen(s->client_addr) < sizeof(net[0])) {
		char *dot;
		int i;

		memcpy(net[0], s->client_addr, strlen(s->client_addr) + 1);
		for (i = 0; i < 3; i++) {
			if (i)
				memcpy(net[i], net[i - 1], strlen(net[i - 1]) + 1);
			if (!(dot = strrchr(net[i], '.')))
				break;
			*dot = 0;
			keys[k++] = net[i];
		}
	}
	keys[k] = NULL;
	r = access_check(s, keys, &text);
	if (r == ACC_OK)
		s->client_ok = 1;
	if (r == ACC_REJECT) {
		buf_printf(reply, "554 5.7.1 Access denied%s%s", text.len ? ": " : "", buf_str(&text));
		buf_free(&text);
		return -1;
	}
	if (r == ACC_DEFER || r == ACC_TEMP) {
		buf_printf(reply, "421 4.7.1 %s Service unavailable, try again later", s->cf->hostname);
		buf_free(&text);
		return -1;
	}
	access_act(s, r, "client", buf_str(&text), reply, 1);
	buf_free(&text);
	return 0;
}

int
smtpd_check_helo(struct smtpd_session *s, const char *helo, struct buf *reply)
{
	struct buf key = BUF_INIT, text = BUF_INIT, what = BUF_INIT;
	const char *keys[2];
	int r, rc;

	buf_reset(reply);
	buf_adds(&key, helo);
	str_lower(key.data);
	keys[0] = buf_str(&key);
	keys[1] = NULL;
	r = access_check(s, keys, &text);
	buf_printf(&what, "<%s>: Helo command rejected", helo);
	rc = access_act(s, r, buf_str(&what), buf_str(&text), reply, 1);
	buf_free(&key);
	buf_free(&text);
	buf_free(&what);
	return rc;
}

int
smtpd_check_sender(struct smtpd_session *s, struct smtp_path *p, struct buf *reply)
{
	struct buf local = BUF_INIT, domain = BUF_INIT, lat = BUF_INIT;
	struct buf text = BUF_INIT, what = BUF_INIT, full = BUF_INIT;
	const char *keys[4];
	const char *addr = buf_str(&p->addr);
	int r, rc = 0;

	buf_reset(reply);
	if (!*addr)
		return 0;
	if (addr_split(addr, &local, &domain) < 0) {
		buf_sets(reply, "501 5.1.7 Bad sender address syntax");
		rc = -1;
		goto out;
	}
	if (!domain.len) {
		if (!s->cf->local_submit) {
			buf_printf(reply, "553 5.5.2 <%s>: Sender address rejected: need fully-qualified address", addr);
			rc = -1;
		} else {
			addr_qualify(addr, s->cf->myorigin, &full);
			buf_sets(&p->addr, buf_str(&full));
		}
		goto out;
	}
	buf_adds(&full, addr);
	str_lower(full.data);
	buf_printf(&lat, "%s@", buf_str(&local));
	str_lower(lat.data);
	keys[0] = buf_str(&full);
	keys[1] = buf_str(&domain);
	keys[2] = buf_str(&lat);
	keys[3] = NULL;
	r = access_check(s, keys, &text);
	buf_printf(&what, "<%s>: Sender address rejected", addr);
	rc = access_act(s, r, buf_str(&what), buf_str(&text), reply, 0);
out:
	buf_free(&local);
	buf_free(&domain);
	buf_free(&lat);
	buf_free(&text);
	buf_free(&what);
	buf_free(&full);
	return rc;
}


int
smtpd_lookup_user(struct smtpd_session *s, const char *name)
{
	size_t i;
	int r;

	for (i = 0; i < s->nlookups; i++)
		if (!strcmp(s->lookups[i].name, name))
			return s->lookups[i].found;
	r = s->ops->local_user(s->ctx, name);
	if (r == SMTPD_PENDING) {
		free(s->lookup_name);
		s->lookup_name = xstrdup(name);
	}
	return r;
}

void
smtpd_lookups_clear(struct smtpd_session *s)
{
	while (s->nlookups > 0)
		free(s->lookups[--s->nlookups].name);
}

/* An IP literal "[192.0.2.1]" / "[ipv6:...]" naming the server. */
static int
literal_is_us(const struct smtpd_session *s, const char *domain)
{
	size_t l = strlen(domain);
	const char *a = domain + 1;
	struct smtpd_net n;

	if (l < 3 || domain[0] != '[' || domain[l - 1] != ']' || !*s->server_addr)
		return 0;
	if (!strncasecmp(a, "ipv6:", 5))
		a += 5;
	{
		struct buf tmp = BUF_INIT;
		int ok;

		buf_add(&tmp, a, (size_t)(domain + l - 1 - a));
		ok = smtpd_net_parse(buf_str(&tmp), &n) == 0 &&
		    smtpd_net_match(&n, 1, s->server_addr) &&
		    (n.bits == 32 || n.bits == 128);
		buf_free(&tmp);
		return ok;
	}
}

int
smtpd_check_rcpt(struct smtpd_session *s, struct smtp_path *p, struct buf *reply)
{
	struct buf local = BUF_INIT, domain = BUF_INIT, full = BUF_INIT;
	struct buf text = BUF_INIT, what = BUF_INIT, name = BUF_INIT;
	struct buf *addrb = &p->addr;	/* may be qualified in place */
	const char *keys[3];
	int relay_ok = s->mynetworks || s->auth_user || s->client_ok || s->cf->local_submit;
	int r, rc = -1, is_local;

	buf_reset(reply);
	if (addr_split(buf_str(addrb), &local, &domain) < 0) {
		buf_sets(reply, "501 5.1.3 Bad recipient address syntax");
		goto out;
	}
	if (!domain.len) {
		if (s->cf->local_submit || !strcasecmp(buf_str(&local), "postmaster")) {
			addr_qualify(buf_str(addrb), s->cf->myorigin, &full);
			buf_sets(addrb, buf_str(&full));
			if (addr_split(buf_str(addrb), &local, &domain) < 0 || !domain.len) {
				buf_sets(reply, "501 5.1.3 Bad recipient address syntax");
				goto out;
			}
		} else {
			buf_printf(reply, "553 5.5.2 <%s>: Recipient address rejected: need fully-qualified address",
			    buf_str(addrb));
			goto out;
		}
	}
	/* the tricks: never for a client that may not relay */
	if (!relay_ok && (p->route || strpbrk(buf_str(&local), "@%!"))) {
		buf_printf(reply, "554 5.7.1 <%s>: Relay access denied", buf_str(addrb));
		goto out;
	}
	is_local = smtpd_domain_local(s->cf, buf_str(&domain)) ||
	    literal_is_us(s, buf_str(&domain));
	if (!is_local && domain.data[0] == '[' && !relay_ok) {
		buf_printf(reply, "554 5.7.1 <%s>: Relay access denied", buf_str(addrb));
		goto out;
	}
	buf_reset(&full);
	buf_adds(&full, buf_str(addrb));
	str_lower(full.data);
	keys[0] = buf_str(&full);
	keys[1] = buf_str(&domain);
	keys[2] = NULL;
	r = access_check(s, keys, &text);
	buf_printf(&what, "<%s>: Recipient address rejected", buf_str(addrb));
	if (access_act(s, r, buf_str(&what), buf_str(&text), reply, 0) < 0)
		goto out;
	if (is_local) {
		const char *delim = s->cf->recipient_delimiter;
		int found;

		buf_adds(&name, buf_str(&local));
		str_lower(name.data);
		if (!strcmp(buf_str(&name), "postmaster")) {
			rc = 0;
			goto out;
		}
		found = smtpd_lookup_user(s, buf_str(&name));
		if (found == 0 && delim && *delim) {
			size_t i = strcspn(buf_str(&name), delim);

			if (i > 0 && i < name.len) {
				buf_truncate(&name, i);
				found = smtpd_lookup_user(s, buf_str(&name));
			}
		}
		if (found == SMTPD_PENDING) {
			rc = SMTPD_PENDING;
			goto out;
		}
		if (found < 0) {
			buf_printf(reply, "450 4.3.0 <%s>: Recipient address rejected: temporary lookup failure",
			    buf_str(addrb));
			goto out;
		}
		if (found == 0) {
			buf_printf(reply, "550 5.1.1 <%s>: Recipient address rejected: User unknown in local recipient table",
			    buf_str(addrb));
			goto out;
		}
		rc = 0;
		goto out;
	}
	if (relay_ok || r == ACC_OK || smtpd_domain_in(s->cf->relay_domains, buf_str(&domain))) {
		rc = 0;
		goto out;
	}
	buf_printf(reply, "554 5.7.1 <%s>: Relay access denied", buf_str(addrb));
out:
	buf_free(&local);
	buf_free(&domain);
	buf_free(&full);
	buf_free(&text);
	buf_free(&what);
	buf_free(&name);
	return rc;
}
