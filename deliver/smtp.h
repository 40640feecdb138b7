/*
 * smtp: the outbound SMTP/LMTP delivery agent (doc/smtp.8).  Shared
 * declarations of smtp.c (the service and requests), smtp_conn.c
 * (connections: connect, deadline-bounded I/O, TLS, the connection
 * cache) and smtp_client.c (the protocol state machine).
 */
#ifndef HERMOD_MTA_SMTP_H
#define HERMOD_MTA_SMTP_H

#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/types.h>
#include "buf.h"
#include "dns.h"
#include "queue_file.h"
#include "smtp_reply.h"

#define SMTP_TEXT_MAX	900	/* status text sent to qmgr */

enum { R_NONE = 0, R_SENT, R_DEFER, R_BOUNCE };

/* One outcome: a status, its RFC 3463 code and a text. */
struct sres {
	int status;		/* R_* */
	char dsn[16];
	struct buf text;
};
void sres_set(struct sres *r, int status, const char *dsn, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

struct srcpt {
	const char *offset, *addr, *orcpt;
	unsigned notify;
	int accepted;		/* RCPT got 2xx in this transaction */
	struct sres res;	/* R_NONE until decided */
	char *relay;		/* where it was decided, or NULL */
	int relayed;		/* sent to a next hop without DSN, NOTIFY=SUCCESS */
};

struct sreq {
	const char *id;
	const char *sender;
	struct qf_envelope env;
	int fd;			/* queue file */
	int eightbit;		/* the content has bytes >= 0x80 */
	struct srcpt *r;
	size_t n;
};

/* A parsed next hop (PROTO_DELIVER_REQ field 3). */
struct nexthop {
	int lmtp;
	int mx;			/* MX lookup for host */
	char *host;		/* NULL for unix */
	int port;
	char *path;		/* lmtp:unix:/path */
};
/* 0 ok, -1 malformed (why in err). */
int nexthop_parse(const char *s, int dflt_port, struct nexthop *nh, struct buf *err);
void nexthop_free(struct nexthop *nh);

/* A connection to a server. */
struct sconn {
	int fd;
	SSL *ssl;
	int lmtp;
	struct buf in, out;
	char *key;		/* next hop, for the cache */
	char *host;		/* server name (MX name, host or socket path) */
	char *relay;		/* "mx.b[127.0.0.1]:2525" or the socket path */
	struct buf tls;		/* "" or the session description */
	int verified;		/* certificate verified (level verify) */
	struct smtp_ext ext;
	int used;		/* transactions done */
	int64_t idle_since;	/* mono ms */
	int broken;		/* no further use: close */
	int notls;		/* no STARTTLS (may: after a failed handshake) */
};

struct sconn *sconn_new(const char *key, const char *host);
int sconn_connect_tcp(struct sconn *c, const struct dns_addr *a, int port, int64_t deadline, struct buf *err);
int sconn_connect_unix(struct sconn *c, const char *path, int64_t deadline, struct buf *err);
void sconn_send(struct sconn *c, const char *p, size_t n);
void sconn_printf(struct sconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write out everything buffered.  0 ok, -1 (err; c->broken). */
int sconn_flush(struct sconn *c, int64_t deadline, struct buf *err);
/* Read one reply.  0 ok, -1 (err; c->broken). */
int sconn_reply(struct sconn *c, struct smtp_reply *r, int64_t deadline, struct buf *err);
/* TLS handshake; verify_host: check the certificate (chain and name). */
int sconn_starttls(struct sconn *c, SSL_CTX *ctx, const char *verify_host, int64_t deadline, struct buf *err);
/* QUIT (when polite and usable) and free. */
void sconn_close(struct sconn *c, int polite);

/* The connection cache (one idle connection per agent process). */
struct sconn *cache_take(const char *key);
void cache_put(struct sconn *c);
/* Milliseconds until the cached connection expires, -1 when none. */
int64_t cache_left_ms(void);
void cache_expire(int all);

/* smtp_client.c */
enum { TX_DONE = 0, TX_NEXT = 1 };
/* Greeting, EHLO/LHLO (HELO fallback), STARTTLS.  0 ok, -1 with the
 * host-level failure in fail (try the next host). */
int smtp_session_open(struct sconn *c, const char *verify_host, struct sres *fail);
/* One transaction for every recipient without a result.  TX_DONE: each
 * of them has a result; TX_NEXT: a host-level failure in fail (the rest
 * go to the next host). */
int smtp_transaction(struct sconn *c, struct sreq *q, struct sres *fail);
/* RSET on a cached connection: 0 usable, -1 not. */
int smtp_rset(struct sconn *c);
void smtp_client_init(void);
int64_t smtp_deadline(const char *param);

#endif
