/*
 * smtpd.h: private interface between the parts of the SMTP server
 * (mta/smtpd*.c); nothing outside mta/smtpd* includes it.
 *
 *   smtpd.c          the process: configuration, libevent loop, accept,
 *                    the transport (bufferevents), timeouts, authd calls,
 *                    stdio mode (sendmail -bs)
 *   smtpd_session.c  the protocol state machine: bytes in, replies out,
 *                    no I/O of its own (everything through smtpd_ops), so
 *                    the fuzz harness can drive whole sessions
 *   smtpd_data.c     DATA/BDAT decoding (CRLF rules, dot-unstuffing, bare
 *                    LF/CR policy, size, hop count) and the Received header
 *   smtpd_relay.c    recipient and relay policy, access maps, mynetworks
 *   smtpd_queue.c    the real message store: queue files, group commit
 *   smtpd_tls.c      STARTTLS and implicit TLS with libevent_openssl
 */
#ifndef HERMOD_SMTPD_H
#define HERMOD_SMTPD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "queue_file.h"
#include "smtp_cmd.h"

/* Settings shared by every session of a process (read once at start). */
struct smtpd_conf {
	char *hostname;
	char *banner;
	char *mail_name;
	char **mydestination;	/* lower-case */
	char **relay_domains;	/* lower-case */
	char *recipient_delimiter;
	char *myorigin;
	long long size_limit;	/* 0: none */
	long long rcpt_limit;
	long long line_limit;
	long long soft_errors, hard_errors;
	long long error_sleep_ms;
	long long hop_limit;
	long long auth_fail_limit;
	int vrfy;
	int bare_lf_normalize;
	int tls_level;		/* 0 none, 1 may, 2 encrypt */
	int wrapper;
	int auth_enable, auth_required, auth_loopback;
	int tls_available;	/* a server context exists */
	int local_submit;	/* stdio mode: local user, relay allowed */
};

#define TLS_LEVEL_NONE		0
#define TLS_LEVEL_MAY		1
#define TLS_LEVEL_ENCRYPT	2

/* One IPv4 or IPv6 network of mynetworks. */
struct smtpd_net {
	int family;
	unsigned char addr[16];
	int bits;
};

struct smtpd_session;

/* Callbacks into the transport and the stores.  Asynchronous ones pause
 * the session; the transport resumes it with the matching _done call
 * (which it may also make from inside the callback). */
struct smtpd_ops {
	/* AUTH: check; then smtpd_session_auth_done. */
	void (*auth)(void *ctx, const char *user, const char *pass);
	/* STARTTLS: write the pending output, switch to TLS, then
	 * smtpd_session_tls_done (or close on a failed handshake). */
	void (*starttls)(void *ctx);
	/* Pause for ms milliseconds (error throttling), then
	 * smtpd_session_resume. */
	void (*delay)(void *ctx, long long ms);
	/* Message store: open (envelope written from the session), content,
	 * commit (then smtpd_session_commit_done), abort. */
	int (*msg_open)(void *ctx, struct smtpd_session *s, char id[QUEUE_ID_MAX]);
	void (*msg_write)(void *ctx, const char *p, size_t n);
	void (*msg_commit)(void *ctx, int hold);
	void (*msg_abort)(void *ctx);
	/* Recipient policy: 1 known local user, 0 unknown, -1 try later,
	 * or SMTPD_PENDING: the transport asked someone (authd) and will
	 * call smtpd_session_lookup_done with the answer, never from inside
	 * this callback.  The session then runs the command again, and
	 * this time gets the answer from its own cache. */
	int (*local_user)(void *ctx, const char *name);
	/* Access maps: 1 found (action in val), 0 not, -1 try later. */
	int (*access)(void *ctx, const char *key, struct buf *val);
	/* Data timer: start (1) or stop (0) the DATA/BDAT time limit. */
	void (*data_timer)(void *ctx, int on);
};

#define SMTPD_PENDING	(-2)
#define SMTPD_LOOKUP_CACHE	4	/* answers kept for one command */

struct smtpd_rcpt {
	char *addr;
	char *orcpt;
	unsigned notify;
	char *key;		/* qf_rcpt_key: a later equal RCPT is not stored again */
};

enum smtpd_mode {
	MODE_CMD,		/* reading command lines */
	MODE_LONGLINE,		/* discarding an overlong line up to CRLF */
	MODE_DATA,		/* DATA content up to CRLF.CRLF */
	MODE_BDAT,		/* bdat_left octets of a chunk */
	MODE_AUTH,		/* a SASL response line */
};

enum smtpd_pause {
	PAUSE_NONE = 0,
	PAUSE_AUTH,
	PAUSE_COMMIT,
	PAUSE_TLS,
	PAUSE_DELAY,
	PAUSE_LOOKUP,		/* a recipient lookup (ops->local_user) */
	PAUSE_CLOSE,		/* QUIT or 421: write the output and close */
};

/* DATA decoder states (smtpd_data.c) */
enum data_state {
	DS_SOL,			/* at the start of a line (after CRLF) */
	DS_DOT,			/* the line started with '.' */
	DS_DOT_CR,		/* ".\r" at the start of a line */
	DS_MID,			/* inside a line */
	DS_CR,			/* a CR inside a line */
};

struct smtpd_session {
	const struct smtpd_conf *cf;
	const struct smtpd_ops *ops;
	void *ctx;
	/* client */
	char *client_addr;	/* "192.0.2.1", "2001:db8::1" */
	char *client_name;	/* "unknown" (no reverse lookups) */
	char *client_desc;	/* "unknown[192.0.2.1]" */
	char *server_addr;	/* our address on this connection */
	int loopback;
	int mynetworks;		/* may relay */
	int client_ok;		/* access map OK for the client */
	int sess_hold, sess_discard;	/* access HOLD/DISCARD for the client or HELO */
	char *local_user;	/* stdio mode: "uid=N user=NAME" of the caller */
	/* session */
	char *helo;
	int esmtp;
	int tls;
	char *tls_desc;		/* "TLSv1.3 with cipher ..." */
	char *auth_user;
	int auth_failures;
	int auth_mech;		/* 1 PLAIN, 2 LOGIN */
	int auth_step;
	struct buf auth_name;
	long long errors;
	unsigned long count[SMTP_VERB_MAX], fails[SMTP_VERB_MAX];
	unsigned long nmsgs;
	/* transaction */
	int in_mail;
	char *sender;
	long long declared_size;
	int body, smtputf8, ret;
	char *envid;
	struct smtpd_rcpt *rcpt;	/* distinct recipients, in the order given */
	size_t nrcpt, arcpt;
	size_t nrcpt_cmds;	/* RCPTs accepted, duplicates included: the limit counts these */
	int hold, discard;
	char queue_id[QUEUE_ID_MAX];
	int msg_open;		/* the store has an open message */
	/* a command waiting for a lookup; the answers it got so far */
	int pending_verb;
	char *pending_arg;
	char *lookup_name;
	struct { char *name; int found; } lookups[SMTPD_LOOKUP_CACHE];
	size_t nlookups;
	/* input */
	enum smtpd_mode mode;
	enum smtpd_pause paused;
	struct buf line;
	int bare_cr_in_cmd;
	/* DATA/BDAT */
	enum data_state ds;
	long long msg_size;	/* content bytes received */
	int too_big, bare_bad, hdr_done;
	size_t hdr_pos;		/* position in the current header line */
	char hdr_pfx[10];
	long long hops;
	long long bdat_left;
	int bdat_last, bdat_fail, bdat_active;
	struct buf bdat_err;
	int bdat_cr;		/* BDAT: a CR ended the previous piece */
	struct buf stage;	/* decoded content waiting to be written */
	int last_error;		/* the last reply was 4xx/5xx */
	/* output */
	struct buf out;
	int closing;
};

/* smtpd_session.c */
void smtpd_session_init(struct smtpd_session *s, const struct smtpd_conf *cf,
    const struct smtpd_ops *ops, void *ctx, const char *client_addr,
    const char *server_addr, int mynetworks, int loopback);
/* The greeting (or a 421/554 when the client is refused): appended to
 * s->out.  Returns 0, or -1 when the session is to be closed after it. */
int smtpd_session_start(struct smtpd_session *s);
/* Feed input.  Returns how much was consumed; less than n when the
 * session paused (the rest stays with the transport until resumed). */
size_t smtpd_session_feed(struct smtpd_session *s, const char *p, size_t n);
void smtpd_session_auth_done(struct smtpd_session *s, int result, const char *user);
void smtpd_session_tls_done(struct smtpd_session *s, const char *desc);
void smtpd_session_commit_done(struct smtpd_session *s, int ok);
void smtpd_session_resume(struct smtpd_session *s);
/* The answer to a SMTPD_PENDING lookup: 1, 0 or -1 as local_user. */
void smtpd_session_lookup_done(struct smtpd_session *s, int found);
/* smtpd_relay.c: local_user through the session's cache of answers. */
int smtpd_lookup_user(struct smtpd_session *s, const char *name);
void smtpd_lookups_clear(struct smtpd_session *s);
/* Timeouts and end of input from the transport: appends the 421 when
 * there is one to say. */
void smtpd_session_timeout(struct smtpd_session *s, const char *what);
/* Free everything (aborting an open message); logs the disconnect. */
void smtpd_session_free(struct smtpd_session *s);
void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Reset the mail transaction (RSET, after DATA, HELO). */
void smtpd_txn_reset(struct smtpd_session *s);

/* smtpd_data.c */
void smtpd_data_begin(struct smtpd_session *s);
/* DATA: consume content bytes; returns the number consumed, and sets
 * *end when CRLF.CRLF was seen (consumed included). */
size_t smtpd_data_feed(struct smtpd_session *s, const char *p, size_t n, int *end);
/* BDAT: n raw octets of a chunk; last: this ends the message. */
void smtpd_bdat_feed(struct smtpd_session *s, const char *p, size_t n);
void smtpd_bdat_end(struct smtpd_session *s);
/* The Received: header for the message (with LF line ends). */
void smtpd_received(struct smtpd_session *s, struct buf *out);
/* The client line of the queue file and of the log. */
void smtpd_client_record(struct smtpd_session *s, struct buf *out);
const char *smtpd_proto_name(const struct smtpd_session *s);

/* smtpd_relay.c */
int smtpd_net_parse(const char *s, struct smtpd_net *n);
int smtpd_net_match(const struct smtpd_net *n, size_t nn, const char *addr);
/* Checks; 0 accept, -1 reject with the reply in reply.  The access
 * actions HOLD and DISCARD set s->hold / s->discard. */
int smtpd_check_client(struct smtpd_session *s, struct buf *reply);
int smtpd_check_helo(struct smtpd_session *s, const char *helo, struct buf *reply);
int smtpd_check_sender(struct smtpd_session *s, struct smtp_path *p, struct buf *reply);
/* 0 accepted, -1 refused (reply set), SMTPD_PENDING: a lookup is
 * under way, run the command again after smtpd_session_lookup_done. */
int smtpd_check_rcpt(struct smtpd_session *s, struct smtp_path *p, struct buf *reply);
int smtpd_domain_local(const struct smtpd_conf *cf, const char *domain);
int smtpd_domain_in(char **list, const char *domain);

#endif
