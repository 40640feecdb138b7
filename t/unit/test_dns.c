/*
 * test_dns: DNS answer handling (lib/dns.c) on hand-built packets: MX
 * sorting and random order among equal preferences, null MX (RFC 7505),
 * no MX (implicit MX), NXDOMAIN, SERVFAIL, A/AAAA answers, truncated
 * and garbage packets.
 */
#include "dns.h"
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void
name(struct buf *b, const char *n)
{
	while (*n) {
		const char *dot = strchr(n, '.');
		size_t l = dot ? (size_t)(dot - n) : strlen(n);

		buf_addc(b, (int)l);
		buf_add(b, n, l);
		n += l + (dot ? 1 : 0);
	}
	buf_addc(b, 0);
}

static void
u16(struct buf *b, unsigned v)
{
	buf_addc(b, (int)(v >> 8) & 0xff);
	buf_addc(b, (int)v & 0xff);
}

/* header + question */
static void
start(struct buf *b, const char *q, unsigned type, int rcode, unsigned ancount)
{
	buf_reset(b);
	u16(b, 0x1234);
	u16(b, 0x8180 | (unsigned)rcode);
	u16(b, 1);
	u16(b, ancount);
	u16(b, 0);
	u16(b, 0);
	name(b, q);
	u16(b, type);
	u16(b, 1);
}

static void
rr_mx(struct buf *b, unsigned pref, const char *host)
{
	struct buf rd = BUF_INIT;

	u16(b, 0xc00c);
	u16(b, 15);
	u16(b, 1);
	u16(b, 0);
	u16(b, 300);
	u16(&rd, pref);
	name(&rd, host);
	u16(b, (unsigned)rd.len);
	buf_add(b, rd.data, rd.len);
	buf_free(&rd);
}

static void
rr_addr(struct buf *b, int family, const char *a)
{
	unsigned char x[16];

	inet_pton(family, a, x);
	u16(b, 0xc00c);
	u16(b, family == AF_INET ? 1 : 28);
	u16(b, 1);
	u16(b, 0);
	u16(b, 300);
	u16(b, family == AF_INET ? 4 : 16);
	buf_add(b, x, family == AF_INET ? 4 : 16);
}

static unsigned
seq_rnd(void *ctx)
{
	unsigned *s = ctx;

	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

#define PKT(b) ((const unsigned char *)(b).data), (b).len

int
main(void)
{
	struct buf b = BUF_INIT, s = BUF_INIT;
	struct dns_hosts h;
	struct dns_host one;
	unsigned seed = 1, i;
	int seen_a_first = 0, seen_b_first = 0, rc;

	/* MX sorted by preference */
	start(&b, "some.test", 15, 0, 3);
	rr_mx(&b, 20, "mx2.some.test");
	rr_mx(&b, 10, "MX1.some.test.");
	rr_mx(&b, 30, "mx3.some.test");
	is_int(dns_mx_answer(PKT(b), &h, NULL, NULL), DNS_OK, "MX answer");
	is_int(h.n, 3, "three hosts");
	if (h.n == 3) {
		is_str(h.v[0].name, "mx1.some.test", "best first, lower-cased");
		is_int(h.v[0].pref, 10, "its preference");
		is_str(h.v[1].name, "mx2.some.test", "then 20");
		is_str(h.v[2].name, "mx3.some.test", "then 30");
	}
	dns_hosts_free(&h);

	/* equal preferences: both orders happen, always after the better one */
	start(&b, "some.test", 15, 0, 3);
	rr_mx(&b, 10, "a.some.test");
	rr_mx(&b, 10, "b.some.test");
	rr_mx(&b, 5, "best.some.test");
	for (i = 0; i < 50; i++) {
		rc = dns_mx_answer(PKT(b), &h, seq_rnd, &seed);
		if (rc != DNS_OK || h.n != 3 || strcmp(h.v[0].name, "best.some.test"))
			break;
		if (!strcmp(h.v[1].name, "a.some.test"))
			seen_a_first++;
		else
			seen_b_first++;
		dns_hosts_free(&h);
	}
	is_int(i, 50, "best preference always first");
	ok(seen_a_first > 0 && seen_b_first > 0, "random order among equals (%d/%d)", seen_a_first,
	    seen_b_first);

	/* duplicates dropped */
	start(&b, "some.test", 15, 0, 2);
	rr_mx(&b, 20, "mx.some.test");
	rr_mx(&b, 10, "mx.some.test");
	is_int(dns_mx_answer(PKT(b), &h, NULL, NULL), DNS_OK, "duplicate MX");
	is_int(h.n, 1, "one host");
	if (h.n == 1)
		is_int(h.v[0].pref, 10, "best preference kept");
	dns_hosts_free(&h);

	/* null MX */
	start(&b, "nomail.test", 15, 0, 1);
	rr_mx(&b, 0, "");
	is_int(dns_mx_answer(PKT(b), &h, NULL, NULL), DNS_NULLMX, "null MX");
	is_int(h.n, 0, "no hosts");
	/* null MX with another MX: the other one is used */
	start(&b, "mixed.test", 15, 0, 2);
	rr_mx(&b, 0, "");
	rr_mx(&b, 10, "mx.mixed.test");
	is_int(dns_mx_answer(PKT(b), &h, NULL, NULL), DNS_OK, "null MX among others ignored");
	dns_hosts_free(&h);

	/* no MX: implicit MX */
	start(&b, "plain.test", 15, 0, 0);
	is_int(dns_mx_answer(PKT(b), &h, NULL, NULL), DNS_NODATA, "no MX records");
	/* an answer with an A record only (wrong type) */
	start(&b, "plain.test", 15, 0, 1);
	rr_addr(&b, AF_INET, "192.0.2.1");
	is_int(dns_mx_answer(PKT(b), &h, NULL, NULL), DNS_NODATA, "no MX among the answers");
	dns_hosts_free(&h);

	/* rcodes */
	start(&b, "missing.test", 15, 3, 0);
	is_int(dns_mx_answer(PKT(b), &h, NULL, NULL), DNS_NXDOMAIN, "NXDOMAIN");
	start(&b, "broken.test", 15, 2, 0);
	is_int(dns_mx_answer(PKT(b), &h, NULL, NULL), DNS_TEMPFAIL, "SERVFAIL");
	start(&b, "refused.test", 15, 5, 0);
	is_int(dns_mx_answer(PKT(b), &h, NULL, NULL), DNS_TEMPFAIL, "REFUSED");
	is_int(dns_rcode(PKT(b)), 5, "rcode");

	/* malformed */
	start(&b, "some.test", 15, 0, 1);
	rr_mx(&b, 10, "mx.some.test");
	is_int(dns_mx_answer((const unsigned char *)b.data, b.len - 3, &h, NULL, NULL), DNS_MALFORMED,
	    "truncated answer");
	is_int(dns_mx_answer((const unsigned char *)"\1\2\3", 3, &h, NULL, NULL), DNS_MALFORMED,
	    "shorter than a header");
	is_int(dns_rcode((const unsigned char *)"\1\2\3", 3), -1, "no rcode");

	/* addresses */
	memset(&one, 0, sizeof(one));
	start(&b, "mx.some.test", 1, 0, 2);
	rr_addr(&b, AF_INET, "127.0.0.1");
	rr_addr(&b, AF_INET, "192.0.2.7");
	is_int(dns_addr_answer(PKT(b), AF_INET, &one), DNS_OK, "A answer");
	start(&b, "mx.some.test", 28, 0, 1);
	rr_addr(&b, AF_INET6, "::1");
	is_int(dns_addr_answer(PKT(b), AF_INET6, &one), DNS_OK, "AAAA answer");
	is_int(one.naddr, 3, "three addresses");
	for (i = 0; i < one.naddr; i++) {
		if (i)
			buf_adds(&s, " ");
		dns_addr_str(&one.addr[i], &s);
	}
	is_str(buf_str(&s), "127.0.0.1 192.0.2.7 ::1", "the addresses in order");
	start(&b, "mx.some.test", 1, 0, 1);
	rr_addr(&b, AF_INET, "127.0.0.1");
	is_int(dns_addr_answer(PKT(b), AF_INET, &one), DNS_OK, "the same address again");
	is_int(one.naddr, 3, "not added twice");
	start(&b, "mx.some.test", 1, 0, 0);
	is_int(dns_addr_answer(PKT(b), AF_INET, &one), DNS_NODATA, "no A records");
	start(&b, "gone.test", 1, 3, 0);
	is_int(dns_addr_answer(PKT(b), AF_INET, &one), DNS_NXDOMAIN, "A NXDOMAIN");
	/* many addresses: bounded */
	start(&b, "many.test", 1, 0, 40);
	for (i = 0; i < 40; i++) {
		char a[32];

		snprintf(a, sizeof(a), "10.0.0.%u", i + 1);
		rr_addr(&b, AF_INET, a);
	}
	free(one.addr);
	memset(&one, 0, sizeof(one));
	dns_addr_answer(PKT(b), AF_INET, &one);
	ok(one.naddr <= DNS_ADDR_MAX, "addresses bounded (%zu)", one.naddr);
	free(one.addr);

	is_str(dns_status_text(DNS_NXDOMAIN), "Host or domain name not found", "status text");
	buf_free(&b);
	buf_free(&s);
	return done_testing();
}
