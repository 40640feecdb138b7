/*
 * dns: DNS lookups for mail routing with c-ares.
 *
 * Two layers:
 *  - pure functions that turn a raw DNS answer packet into host lists
 *    (dns_mx_answer, dns_addr_answer): no I/O, fuzzed and unit tested
 *    with hand-built packets;
 *  - a resolver (dns_resolver_*) that runs c-ares queries in its own
 *    poll loop with an overall deadline, so a caller never waits longer
 *    than dns_timeout.  dns_resolvers (host:port, ...) overrides the
 *    servers of /etc/resolv.conf.
 *
 * Programs that use the resolver link $(CARES_LIBS).
 */
#ifndef HERMOD_DNS_H
#define HERMOD_DNS_H

#include <stddef.h>
#include "buf.h"

#define DNS_MX_MAX	100	/* MX hosts kept from one answer */
#define DNS_ADDR_MAX	16	/* addresses kept per host and family */
#define DNS_NAME_MAX	253

enum dns_status {
	DNS_OK = 0,
	DNS_NXDOMAIN,		/* the name does not exist */
	DNS_NODATA,		/* the name exists, no records of that type */
	DNS_NULLMX,		/* RFC 7505: the domain accepts no mail */
	DNS_TEMPFAIL,		/* SERVFAIL, REFUSED, timeout, no server */
	DNS_MALFORMED		/* an answer that does not parse (temporary) */
};

struct dns_addr {
	int family;		/* AF_INET or AF_INET6 */
	unsigned char a[16];
};

struct dns_host {
	char *name;		/* no trailing dot */
	int pref;		/* MX preference, 0 for implicit MX / a host */
	struct dns_addr *addr;
	size_t naddr;
	int status;		/* of its address lookups (DNS_OK when some) */
};

struct dns_hosts {
	struct dns_host *v;
	size_t n;
};

void dns_hosts_free(struct dns_hosts *h);
/* "127.0.0.1" or "::1" */
void dns_addr_str(const struct dns_addr *a, struct buf *out);
/* A short text for a status: "Host or domain name not found" ... */
const char *dns_status_text(int status);

/* The RCODE of an answer packet, or -1 when it is shorter than a header. */
int dns_rcode(const unsigned char *pkt, size_t len);

/*
 * An MX answer into the host list: sorted by preference, the order among
 * equal preferences chosen with rnd(rctx) (any value; NULL: keep the
 * answer's order), names lower-cased, duplicates dropped, at most
 * DNS_MX_MAX hosts, no addresses yet.  Returns DNS_OK (out->n > 0),
 * DNS_NXDOMAIN, DNS_NODATA (no MX: use the implicit MX), DNS_NULLMX,
 * DNS_TEMPFAIL (rcode SERVFAIL, REFUSED ...) or DNS_MALFORMED.
 */
int dns_mx_answer(const unsigned char *pkt, size_t len, struct dns_hosts *out,
    unsigned (*rnd)(void *), void *rctx);
/*
 * An A (family AF_INET) or AAAA (AF_INET6) answer: the addresses are
 * appended to h (at most DNS_ADDR_MAX of that family).  Returns DNS_OK,
 * DNS_NXDOMAIN, DNS_NODATA, DNS_TEMPFAIL or DNS_MALFORMED.
 */
int dns_addr_answer(const unsigned char *pkt, size_t len, int family, struct dns_host *h);

/* A resolver: servers is "host:port, ..." or "" (resolv.conf);
 * timeout_ms bounds each dns_resolve.  NULL with the reason in err. */
struct dns_resolver;
struct dns_resolver *dns_resolver_new(const char *servers, long timeout_ms, struct buf *err);
void dns_resolver_free(struct dns_resolver *r);

/*
 * The hosts for a mail destination, with their addresses: mx set: the
 * MX hosts of name (or name itself when it has no MX: implicit MX);
 * mx not set: name itself (A/AAAA).  DNS_OK when at least one host has
 * an address; else the status that decides (NXDOMAIN / NODATA: no such
 * host, bounce; NULLMX: bounce; TEMPFAIL/MALFORMED: defer), with a
 * description in err.
 */
int dns_resolve(struct dns_resolver *r, const char *name, int mx,
    struct dns_hosts *out, struct buf *err);

#endif
