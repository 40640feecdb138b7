/*
 * fuzz_dns: DNS answer handling (lib/dns.c): arbitrary packets as MX,
 * A and AAAA answers.
 */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static unsigned
rnd(void *ctx)
{
	unsigned *s = ctx;

	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct dns_hosts h;
	struct dns_host one;
	struct buf b = BUF_INIT;
	unsigned seed = 7;
	size_t i;

	if (dns_mx_answer(d, n, &h, rnd, &seed) == DNS_OK) {
		if (h.n == 0 || h.n > DNS_MX_MAX)
			__builtin_trap();
		for (i = 1; i < h.n; i++)
			if (h.v[i - 1].pref > h.v[i].pref)
				__builtin_trap();
	}
	dns_hosts_free(&h);
	memset(&one, 0, sizeof(one));
	(void)dns_addr_answer(d, n, AF_INET, &one);
	(void)dns_addr_answer(d, n, AF_INET6, &one);
	if (one.naddr > 2 * DNS_ADDR_MAX)
		__builtin_trap();
	for (i = 0; i < one.naddr; i++)
		dns_addr_str(&one.addr[i], &b);
	free(one.addr);
	buf_free(&b);
	(void)dns_rcode(d, n);
	return 0;
}
