/*
 * conf.c: the parameter table, the hermod.conf reader with $name
 * expansion, and the master.conf reader.  Values are expanded lazily
 * and cached; expansion depth is bounded so a $a = $b, $b = $a loop is
 * reported instead of recursing forever.
 */
#include "conf.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef HERMOD_SYSCONFDIR
#define HERMOD_SYSCONFDIR "/etc"
#endif
#ifndef HERMOD_LIBEXECDIR
#define HERMOD_LIBEXECDIR "/usr/libexec/hermod"
#endif
#ifndef HERMOD_SBINDIR
#define HERMOD_SBINDIR "/usr/sbin"
#endif
#ifndef HERMOD_LOCALSTATEDIR
#define HERMOD_LOCALSTATEDIR "/var"
#endif

struct param {
	const char *name;
	const char *def;
	const char *doc;
};

/* Keep sorted by topic; doc/hermod.conf.5 documents the same table. */
static const struct param params[] = {
	/* where things are */
	{ "config_directory", "", "The configuration directory (set by -C, HERMOD_CONFIG, or the built-in default; read-only)." },
	{ "queue_directory", HERMOD_LOCALSTATEDIR "/spool/hermod", "The spool: maildrop, incoming, active, deferred, hold, corrupt, private, public, pid." },
	{ "daemon_directory", HERMOD_LIBEXECDIR, "Where hermod-master finds the service programs; a colon-separated list is searched in order." },
	{ "command_directory", HERMOD_SBINDIR, "Where the sendmail, hermod and hermod-master commands are installed." },
	{ "privileged", "yes", "yes: the instance was made by root and runs each part with the privileges of DESIGN.md; no: a rootless instance, everything runs as the owner of the configuration directory." },
	{ "mail_owner", "hermod", "The unprivileged user that owns the queue and runs the daemons (privileged instances)." },
	{ "setgid_group", "hermodrop", "The group of the maildrop directory and of the setgid postdrop helper." },
	{ "default_privs", "nobody", "The user for deliveries to commands and files that would otherwise run as root." },
	/* names */
	{ "myhostname", "", "This host's fully qualified name; empty means gethostname()." },
	{ "mydomain", "example.test", "This host's mail domain." },
	{ "myorigin", "$mydomain", "The domain appended to unqualified sender and recipient addresses of locally posted mail." },
	{ "mydestination", "$myhostname, localhost.$mydomain, localhost, $mydomain", "Domains delivered by the local agent (system users, aliases, virtual users)." },
	{ "mail_name", "hermod", "The name of the mail system, in Received: headers and bounces." },
	/* local delivery */
	{ "alias_maps", "hash:$config_directory/aliases", "Alias databases consulted by local, in order." },
	{ "alias_database", "hash:$config_directory/aliases", "The alias databases newaliases rebuilds." },
	{ "virtual_users_file", "$config_directory/users", "Virtual users: name:password-hash lines, managed with hermod user." },
	{ "virtual_mailbox_base", "$config_directory/mail", "A virtual user NAME receives mail in $virtual_mailbox_base/NAME/Maildir/." },
	{ "mailbox_quota", "0", "The storage limit of every Maildir mailbox (INBOX and its folders together), e.g. 1g; 0: none. Kept in the Maildir++ maildirsize file (quota(5))." },
	{ "mailbox_quota_messages", "0", "The message limit of every Maildir mailbox; 0: none." },
	{ "mailbox_quota_maps", "", "Per-user limits, overriding mailbox_quota and mailbox_quota_messages: maps (e.g. hash:$config_directory/quota, built with hermod map build) of NAME to \"STORAGE [MESSAGES]\" (none or 0: no limit)." },
	{ "mailbox_quota_full_tempfail", "yes", "yes: mail for a mailbox over its quota is deferred (4.2.2) and retried until maximal_queue_lifetime; no: it bounces at once (5.2.2)." },
	{ "home_mailbox", "", "Empty: system users get mbox in $mail_spool_directory/NAME; Maildir/: ~/Maildir/; other: a file relative to the home directory." },
	{ "mail_spool_directory", "/var/mail", "Where system users' mbox files live." },
	{ "forward_path", "$home/.forward", "Where local looks for a system user's .forward file." },
	{ "allow_mail_to_commands", "alias, forward", "Where |command destinations are allowed: alias, forward, include." },
	{ "allow_mail_to_files", "alias, forward", "Where /file destinations are allowed: alias, forward, include." },
	{ "recipient_delimiter", "+", "Separates a local part from its extension (user+ext); empty disables." },
	{ "owner_request_special", "yes", "Send errors for list L to owner-L when that alias exists." },
	{ "command_time_limit", "1000s", "How long a |command delivery may run before it is killed." },
	{ "command_output_limit", "4096", "How much of a failed command's output is put in the bounce." },
	{ "deliver_lock_attempts", "20", "How often local tries to lock an mbox before deferring." },
	{ "deliver_lock_delay", "1s", "The pause between mbox lock attempts." },
	{ "stale_lock_time", "500s", "A dotlock older than this is removed." },
	{ "local_recursion_limit", "20", "How deep alias, include and forward expansion may go." },
	{ "hopcount_limit", "50", "Mail with more Received:/Delivered-To: headers than this bounces as a loop." },
	{ "local_destination_concurrency_limit", "8", "Parallel deliveries qmgr hands to local at once." },
	{ "smtp_destination_concurrency_limit", "20", "Parallel deliveries qmgr hands to the smtp agent at once." },
	{ "local_delivery_timeout", "3600s", "How long qmgr waits for one local delivery request." },
	{ "biff", "no", "Notify comsat of new mail (not implemented; accepted for compatibility)." },
	/* queue */
	{ "maximal_queue_lifetime", "5d", "Mail still undeliverable after this long is returned to the sender." },
	{ "bounce_queue_lifetime", "5d", "The same for bounces (mail from <>); they are discarded, not bounced." },
	{ "minimal_backoff_time", "300s", "The first retry delay of a deferred message; it doubles with every attempt." },
	{ "maximal_backoff_time", "4000s", "The longest retry delay." },
	{ "queue_run_delay", "300s", "How often qmgr scans deferred/ for messages whose retry time has come." },
	{ "delay_warning_time", "0h", "Send a delay warning after this long (0: never)." },
	{ "qmgr_message_active_limit", "20000", "Most messages qmgr keeps in memory at once." },
	{ "qmgr_rescan_interval", "60s", "How often qmgr rescans active/ and maildrop for messages it was not told about." },
	{ "in_flow_delay", "1s", "Longest time sendmail/postdrop wait, after storing a message, while the queue backlog is over in_flow_limit (0: no flow control)." },
	{ "in_flow_limit", "4", "The backlog (messages qmgr holds plus files waiting in maildrop/) above which submitters wait (in_flow_delay)." },
	{ "message_size_limit", "10240000", "Largest message accepted, in bytes (0: no limit)." },
	{ "header_size_limit", "102400", "Largest header section kept, in bytes." },
	{ "line_length_limit", "2048", "Longer lines in submitted mail are broken (after this many bytes)." },
	{ "queue_minfree", "0", "Refuse new mail (temporarily) when the queue file system has less free space than this." },
	{ "bounce_notice_recipient", "postmaster", "Who receives copies of undeliverable double bounces." },
	{ "double_bounce_sender", "double-bounce", "Sender of bounces about bounces; mail to it is discarded." },
	{ "empty_address_recipient", "MAILER-DAEMON", "Where mail to the null sender goes." },
	{ "bounce_size_limit", "50000", "How much of the original message a bounce returns." },
	{ "recipient_limit", "10000", "Most envelope recipients in one message from sendmail." },
	/* daemons */
	{ "default_process_limit", "100", "The process limit of a master.conf service whose limit is -." },
	{ "max_idle", "100s", "A daemon waiting for a client this long exits." },
	{ "max_use", "100", "A daemon exits after serving this many clients." },
	{ "ipc_timeout", "3600s", "Time limit for one exchange between daemons." },
	{ "service_throttle_time", "60s", "How long the master waits before restarting a service that keeps dying at start." },
	{ "inet_interfaces", "127.0.0.1", "Addresses the network services listen on." },
	{ "syslog_name", "hermod", "The prefix of every log line." },
	{ "maillog_file", "", "Empty: log to syslog (facility mail). A path: every daemon sends its lines to the postlogd service, which appends them, in the order received, to this one file (reopened by hermod reload and by hermod log reopen, for logrotate). hermod init sets it to $config_directory/log/maillog when the machine has no syslog socket (/dev/log)." },
	/* TLS (shared by the servers) */
	{ "tls_cert_file", "$config_directory/tls/cert.pem", "The server certificate chain (PEM) used by smtpd, popd and imapd unless overridden." },
	{ "tls_key_file", "$config_directory/tls/key.pem", "The private key of tls_cert_file (PEM)." },
	{ "tls_protocols", ">=TLSv1.2", "The lowest TLS version the servers accept (>=TLSv1.2 or >=TLSv1.3)." },
	{ "tls_ciphers", "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!MD5:!DSS", "OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults)." },
	/* authd */
	{ "authd_socket", "private/authd", "Where authd listens, relative to queue_directory." },
	{ "auth_failure_delay", "2s", "How long a server waits before answering a failed login." },
	{ "auth_failure_limit", "3", "Failed logins after which a server drops the client." },
	/* smtpd */
	{ "smtpd_user_cache_time", "60s", "How long an smtpd process remembers that authd said a virtual or system user exists (0: ask every time). Unknown names are never remembered, so a new user is accepted at once; a removed user may still be accepted this long and is then bounced by local delivery." },
	{ "smtpd_chroot", "yes", "Started as root (a privileged instance), smtpd chroots into queue_directory after opening its maps and TLS key, so that a compromised smtpd sees only the spool. A map rebuilt later makes the process finish its sessions and exit; the next one opens the new map. Log lines go to the syslog socket opened before the chroot; after a syslog daemon restart they are lost until the process is replaced (max_use, max_idle)." },
	{ "smtpd_banner", "$myhostname ESMTP $mail_name", "The SMTP greeting text." },
	{ "mynetworks", "127.0.0.0/8 [::1]/128", "Clients allowed to relay without logging in: a list of addresses and address/prefix networks. It may be empty: then only clients that log in (AUTH) may relay, which is what an Internet-facing port 25 on a host with untrusted local users wants." },
	{ "relay_domains", "", "Remote domains smtpd accepts mail for from anyone (backup MX); empty: none." },
	{ "smtpd_recipient_limit", "1000", "Most recipients in one SMTP transaction; more get 452 4.5.3." },
	{ "smtpd_timeout", "300s", "How long smtpd waits for a client command or data line." },
	{ "smtpd_data_timeout", "600s", "How long a whole DATA or BDAT transfer may take." },
	{ "smtpd_line_length_limit", "1000", "Longest SMTP command line, including CRLF (RFC 5321 4.5.3.1.4); longer: 500 5.5.2." },
	{ "smtpd_soft_error_limit", "10", "Errors after which smtpd answers each command with a delay." },
	{ "smtpd_hard_error_limit", "20", "Errors after which smtpd says 421 and closes." },
	{ "smtpd_error_sleep_time", "1s", "The delay after smtpd_soft_error_limit errors." },
	{ "smtpd_sessions_per_process", "256", "Concurrent sessions one smtpd process serves." },
	{ "smtpd_vrfy_enable", "no", "Answer VRFY (yes) or 252 2.5.2 (no)." },
	{ "smtpd_bare_lf", "reject", "A bare LF or CR in DATA: reject (550 5.5.2) or normalize; never a message boundary." },
	{ "smtpd_access_maps", "", "Access maps (hash:) keyed by client address/network, HELO name, sender, recipient domain: OK, REJECT, DEFER, HOLD, DISCARD." },
	{ "smtpd_tls_security_level", "may", "STARTTLS: none (not offered), may (offered), encrypt (required before MAIL)." },
	{ "smtpd_tls_wrappermode", "no", "Implicit TLS from the first byte (port 465)." },
	{ "smtpd_tls_cert_file", "$tls_cert_file", "smtpd's certificate." },
	{ "smtpd_tls_key_file", "$tls_key_file", "smtpd's private key." },
	{ "smtpd_sasl_auth_enable", "yes", "Offer AUTH PLAIN and LOGIN (after TLS)." },
	{ "smtpd_sasl_auth_required", "no", "Require AUTH before MAIL (set with -o on the submission service)." },
	{ "smtpd_sasl_loopback_plaintext", "no", "Offer AUTH without TLS to loopback clients." },
	{ "smtpd_milters", "", "Milters (a later issue)." },
	/* outbound: qmgr routing and the smtp/lmtp agent */
	{ "relayhost", "", "Send all non-local mail to this host: [host]:port (no MX lookup) or host (MX lookup); empty: look up each domain." },
	{ "transport_maps", "", "Maps (hash:) from a domain (or .domain for subdomains, or user@domain) to a route: smtp:[host]:port, smtp:domain, lmtp:unix:/path, lmtp:[host]:port, local, error:X.Y.Z text." },
	{ "default_transport", "smtp", "The transport for non-local mail without a transport_maps entry." },
	{ "dns_resolvers", "", "host:port, ... of DNS servers to ask instead of those in /etc/resolv.conf." },
	{ "dns_timeout", "10s", "How long one DNS lookup may take before the delivery is deferred." },
	{ "smtp_destination_port", "25", "The port used for MX hosts and hosts named without a port." },
	{ "smtp_helo_name", "$myhostname", "The name the smtp client sends in EHLO/HELO (and LHLO)." },
	{ "smtp_connect_timeout", "30s", "Time limit for a TCP connection to a remote SMTP server." },
	{ "smtp_helo_timeout", "300s", "Time limit for the greeting and the EHLO reply." },
	{ "smtp_command_timeout", "300s", "Time limit for the reply to MAIL, RCPT, RSET, QUIT." },
	{ "smtp_data_timeout", "600s", "Time limit for sending the message and for the reply after the final dot." },
	{ "smtp_tls_security_level", "may", "none: no STARTTLS; may: use it when offered; encrypt: defer when not offered; verify: also check the certificate against smtp_tls_CAfile and the MX host name." },
	{ "smtp_tls_CAfile", "", "CA certificates (PEM) for smtp_tls_security_level = verify; empty: the system's." },
	{ "smtp_connection_cache_time", "5s", "How long the smtp agent keeps an idle connection to a destination for the next message." },
	{ "smtp_connection_reuse_limit", "100", "Messages sent over one connection before it is closed." },
	{ "smtp_mx_address_limit", "5", "Most MX host addresses tried for one delivery." },
	{ "smtp_destination_recipient_limit", "50", "Most recipients in one delivery request to the smtp agent." },
	/* popd */
	{ "pop3_plaintext_auth", "loopback", "USER/PASS and AUTH PLAIN before TLS: no, loopback (only for loopback clients), yes." },
	{ "pop3_linger_time", "2s", "After the last reply popd closes its sending side and reads and drops what the client still sends for at most this long, so that a TCP reset cannot destroy replies on their way (a client that pipelined past QUIT or [IN-USE]); 0: close at once." },
	{ "pop3_idle_timeout", "600s", "Autologout after this long without a command (RFC 1939 asks for at least 10 minutes)." },
	{ "pop3_line_length_limit", "512", "Longest POP3 command line, including CRLF." },
	{ "pop3_tls_cert_file", "$tls_cert_file", "popd's certificate." },
	{ "pop3_tls_key_file", "$tls_key_file", "popd's private key." },
	{ "pop3_tls_wrappermode", "no", "Implicit TLS from the first byte (port 995)." },
	{ "pop3_max_connections", "1000", "POP3 sessions of one listener at once; a client past it gets -ERR [SYS/TEMP] and is disconnected (0: no limit)." },
	{ "pop3_max_connections_per_ip", "100", "POP3 sessions from one client address at once (0: no limit)." },
	{ "pop3_max_connections_per_user", "10", "POP3 sessions of one user at once, over every listener; past it a correct login gets -ERR [IN-USE] (0: no limit)." },
	{ "imap_plaintext_auth", "loopback", "LOGIN and AUTHENTICATE PLAIN before TLS: no, loopback (only for loopback clients), yes; LOGINDISABLED is advertised where they are refused." },
	{ "imap_tls_cert_file", "$tls_cert_file", "imapd's certificate." },
	{ "imap_tls_key_file", "$tls_key_file", "imapd's private key." },
	{ "imap_tls_wrappermode", "no", "Implicit TLS from the first byte (port 993)." },
	{ "imap_login_timeout", "60s", "How long imapd waits for a command before login." },
	{ "imap_idle_timeout", "30m", "Autologout after this long without a command, IDLE included (RFC 3501 asks for at least 30 minutes)." },
	{ "imap_line_length_limit", "65536", "Longest IMAP command text (all its lines, without literal data)." },
	{ "imap_literal_size_limit", "65536", "Largest literal other than an APPEND message." },
	{ "imap_command_size_limit", "1048576", "Largest command: its text plus its literals other than APPEND messages." },
	{ "imap_nesting_limit", "100", "Nesting of parentheses and of SEARCH OR/NOT in one command." },
	{ "imap_sequence_ranges_limit", "10000", "Ranges of the sequence sets of one command." },
	{ "imap_search_keys_limit", "1000", "Search keys in one SEARCH, SORT or THREAD." },
	{ "imap_error_limit", "20", "Bad commands in a row after which imapd says BYE and disconnects." },
	{ "imap_max_connections", "2000", "IMAP sessions of one listener at once; a client past it gets * BYE [UNAVAILABLE] and is disconnected (0: no limit)." },
	{ "imap_max_connections_per_ip", "100", "IMAP sessions from one client address at once (0: no limit)." },
	{ "imap_max_connections_per_user", "50", "IMAP sessions of one user at once, over imap, imaps and inetd; past it a correct login gets NO [LIMIT] (0: no limit)." },
	{ "imap_command_rate_limit", "10000", "Commands per second a session may send; past it imapd answers NO and disconnects after imap_error_limit such answers (0: no limit)." },
	{ "imap_folder_directory", "~/Maildir", "The Maildir++ root of the folders other than INBOX for users whose INBOX is an mbox file." },
	{ NULL, NULL, NULL }
};

#define NPARAMS (sizeof(params) / sizeof(params[0]) - 1)

static char *conf_dirname;
static char *raw[NPARAMS];		/* from the file or conf_set, else NULL */
static char *expanded[NPARAMS];		/* cache */

static long
param_index(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < NPARAMS; i++)
		if (strlen(params[i].name) == len && !strncmp(params[i].name, name, len))
			return (long)i;
	return -1;
}

static const char *
raw_value(size_t i)
{
	if (i == 0)
		return conf_dirname ? conf_dirname : "";
	return raw[i] ? raw[i] : params[i].def;
}

static void expand_into(struct buf *out, const char *s, int depth);

static const char *
value_of(size_t i, int depth)
{
	struct buf b = BUF_INIT;

	if (expanded[i])
		return expanded[i];
	if (depth > 20) {
		msg_warn("hermod.conf: parameter expansion too deep at %s", params[i].name);
		return "";
	}
	expand_into(&b, raw_value(i), depth + 1);
	if (expanded[i]) {
		/* a cycle ($a -> $b -> $a) set it on the way down */
		buf_free(&b);
		return expanded[i];
	}
	if (i == 0 || strcmp(params[i].name, "myhostname") || b.len) {
		expanded[i] = buf_steal(&b);
	} else {
		char host[256];

		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = 0;
		buf_free(&b);
		expanded[i] = xstrdup(host);
	}
	return expanded[i];
}

static void
expand_into(struct buf *out, const char *s, int depth)
{
	while (*s) {
		const char *name;
		size_t len;
		long idx;

		if (*s != '$') {
			buf_addc(out, *s++);
			continue;
		}
		s++;
		if (*s == '$') {
			buf_addc(out, *s++);
			continue;
		}
		if (*s == '{') {
			name = ++s;
			len = strcspn(s, "}");
			s += len;
			if (*s == '}')
				s++;
		} else {
			name = s;
			while (isalnum((unsigned char)*s) || *s == '_')
				s++;
			len = (size_t)(s - name);
		}
		if (len == 0) {
			buf_addc(out, '$');
			continue;
		}
		idx = param_index(name, len);
		if (idx < 0) {
			/* unknown names are kept literally, e.g. $home in
			 * forward_path is expanded by local per recipient */
			buf_addc(out, '$');
			buf_add(out, name, len);
			continue;
		}
		buf_adds(out, value_of((size_t)idx, depth));
	}
}

static void
clear_cache(void)
{
	size_t i;

	for (i = 0; i < NPARAMS; i++) {
		free(expanded[i]);
		expanded[i] = NULL;
	}
}

/* One logical "name = value" line. */
static int
conf_line(const char *path, int lineno, char *l, struct buf *err)
{
	char *eq = strchr(l, '='), *name;
	long idx;

	if (!eq) {
		buf_printf(err, "%s:%d: missing '=' in \"%s\"", path, lineno, l);
		return -1;
	}
	*eq = 0;
	name = str_trim(l);
	idx = param_index(name, strlen(name));
	if (idx < 0)
		msg_warn("%s:%d: unknown parameter %s ignored", path, lineno, name);
	else if (idx == 0)
		msg_warn("%s:%d: config_directory cannot be set here", path, lineno);
	else {
		free(raw[idx]);
		raw[idx] = xstrdup(str_trim(eq + 1));
	}
	return 0;
}

int
conf_load(const char *dir, struct buf *err)
{
	struct buf path = BUF_INIT, data = BUF_INIT, logical = BUF_INIT;
	char *line, *next, *t;
	int lineno = 0, rc = -1, startline = 0;
	size_t i;

	if (!dir || !*dir)
		dir = getenv("HERMOD_CONFIG");
	if (!dir || !*dir)
		dir = HERMOD_SYSCONFDIR "/hermod";
	free(conf_dirname);
	conf_dirname = xstrdup(dir);
	for (i = 0; i < NPARAMS; i++) {
		free(raw[i]);
		raw[i] = NULL;
	}
	clear_cache();
	buf_printf(&path, "%s/hermod.conf", dir);
	if (read_file(buf_str(&path), &data, 1 << 20) < 0) {
		if (errno == ENOENT) {
			/* no file: every default applies */
			rc = 0;
			goto out;
		}
		buf_printf(err, "%s: %s", buf_str(&path), strerror(errno));
		goto out;
	}
	if (data.len && memchr(data.data, 0, data.len)) {
		buf_printf(err, "%s: contains a NUL byte", buf_str(&path));
		goto out;
	}
	/* Lines starting with white space continue the previous one. */
	for (line = data.data; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		else
			next = line + strlen(line);
		lineno++;
		if (*line == '#')
			continue;
		t = str_trim(line);
		if (*t == 0 || *t == '#')
			continue;
		if (line != t && (*line == ' ' || *line == '\t')) {
			if (logical.len == 0) {
				buf_printf(err, "%s:%d: continuation line without a parameter", buf_str(&path), lineno);
				goto out;
			}
			buf_addc(&logical, ' ');
			buf_adds(&logical, t);
			continue;
		}
		if (logical.len && conf_line(buf_str(&path), startline, logical.data, err) < 0)
			goto out;
		buf_sets(&logical, t);
		startline = lineno;
	}
	if (logical.len && conf_line(buf_str(&path), startline, logical.data, err) < 0)
		goto out;
	rc = 0;
out:
	buf_free(&path);
	buf_free(&data);
	buf_free(&logical);
	return rc;
}

const char *
conf_dir(void)
{
	return conf_dirname ? conf_dirname : HERMOD_SYSCONFDIR "/hermod";
}

static size_t
must_index(const char *name)
{
	long idx = param_index(name, strlen(name));

	if (idx < 0)
		msg_panic("unknown configuration parameter %s", name);
	return (size_t)idx;
}

const char *
conf_str(const char *name)
{
	return value_of(must_index(name), 0);
}

long long
conf_int(const char *name)
{
	long long v;

	if (parse_ll(conf_str(name), -1, (long long)1 << 62, &v) < 0)
		msg_fatal("hermod.conf: %s = %s: not a number", name, conf_str(name));
	return v;
}

long long
conf_time(const char *name)
{
	long long v;

	if (parse_time(conf_str(name), &v) < 0)
		msg_fatal("hermod.conf: %s = %s: not a time (e.g. 300s, 5m, 2h, 5d)", name, conf_str(name));
	return v;
}

long long
conf_size(const char *name)
{
	long long v;

	if (parse_size(conf_str(name), &v) < 0)
		msg_fatal("hermod.conf: %s = %s: not a size (e.g. 10240000, 10m)", name, conf_str(name));
	return v;
}

int
conf_bool(const char *name)
{
	int v = parse_bool(conf_str(name));

	if (v < 0)
		msg_fatal("hermod.conf: %s = %s: not yes or no", name, conf_str(name));
	return v;
}

char **
conf_list(const char *name)
{
	return str_split(conf_str(name), ", \t");
}

int
conf_known(const char *name)
{
	return param_index(name, strlen(name)) >= 0;
}

void
conf_set(const char *name, const char *value)
{
	size_t i = must_index(name);

	if (i == 0)
		msg_panic("conf_set: config_directory is read-only");
	free(raw[i]);
	raw[i] = xstrdup(value);
	clear_cache();
}

int
conf_print(FILE *fp, int nondefault, char **names)
{
	size_t i, j;
	int rc = 0;

	if (names && names[0]) {
		for (j = 0; names[j]; j++) {
			long idx = param_index(names[j], strlen(names[j]));

			if (idx < 0) {
				fprintf(stderr, "hermod: unknown parameter: %s\n", names[j]);
				rc = -1;
				continue;
			}
			fprintf(fp, "%s = %s\n", names[j], value_of((size_t)idx, 0));
		}
		return rc;
	}
	for (i = 0; i < NPARAMS; i++) {
		/* -n: what hermod.conf sets, even to the default (as postconf -n) */
		if (nondefault && (i == 0 || !raw[i]))
			continue;
		fprintf(fp, "%s = %s\n", params[i].name, nondefault ? raw[i] : value_of(i, 0));
	}
	return 0;
}

int
conf_param_info(size_t i, const char **name, const char **def, const char **doc)
{
	if (i >= NPARAMS)
		return 0;
	*name = params[i].name;
	*def = params[i].def;
	*doc = params[i].doc;
	return 1;
}

int
conf_privileged(void)
{
	return conf_bool("privileged");
}

void
conf_queue_path(struct buf *out, const char *rel)
{
	buf_printf(out, "%s/%s", conf_str("queue_directory"), rel);
}

int
conf_daemon_program(const char *name, struct buf *out)
{
	char **dirs = str_split(conf_str("daemon_directory"), ":");
	struct stat st;
	size_t i;
	int rc = -1;

	for (i = 0; dirs[i] && rc < 0; i++) {
		buf_reset(out);
		buf_printf(out, "%s/%s", dirs[i], name);
		if (stat(buf_str(out), &st) == 0 && S_ISREG(st.st_mode) && access(buf_str(out), X_OK) == 0)
			rc = 0;
	}
	strv_free(dirs);
	return rc;
}

/* master.conf: name listen type private limit program [args...] */
int
master_conf_load(const char *path, struct master_service **svcs, size_t *nsvcs, struct buf *err)
{
	struct buf data = BUF_INIT;
	struct master_service *v = NULL;
	size_t n = 0, i;
	char *line, *next;
	int lineno = 0;

	*svcs = NULL;
	*nsvcs = 0;
	if (read_file(path, &data, 1 << 20) < 0) {
		buf_printf(err, "%s: %s", path, strerror(errno));
		buf_free(&data);
		return -1;
	}
	for (line = data.data; line && *line; line = next) {
		char **f;
		long long lim;

		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		else
			next = line + strlen(line);
		lineno++;
		line = str_trim(line);
		if (!*line || *line == '#')
			continue;
		f = str_split(line, " \t");
		if (strv_len(f) < 6) {
			buf_printf(err, "%s:%d: want: name listen type private limit program [args]", path, lineno);
			strv_free(f);
			goto fail;
		}
		if (strcmp(f[2], "inet") && strcmp(f[2], "unix") && strcmp(f[2], "unix-dgram") &&
		    strcmp(f[2], "none")) {
			buf_printf(err, "%s:%d: bad service type %s (inet, unix, unix-dgram, none)",
			    path, lineno, f[2]);
			strv_free(f);
			goto fail;
		}
		if (strcmp(f[4], "-") == 0)
			lim = conf_int("default_process_limit");
		else if (parse_ll(f[4], 0, 100000, &lim) < 0) {
			buf_printf(err, "%s:%d: bad process limit %s", path, lineno, f[4]);
			strv_free(f);
			goto fail;
		}
		for (i = 0; i < n; i++)
			if (!strcmp(v[i].name, f[0])) {
				buf_printf(err, "%s:%d: service %s defined twice", path, lineno, f[0]);
				strv_free(f);
				goto fail;
			}
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n].name = f[0];
		v[n].listen = f[1];
		v[n].type = f[2];
		v[n].private_ = f[3][0] == 'y';
		free(f[3]);
		free(f[4]);
		v[n].proclimit = (int)lim;
		v[n].line = lineno;
		{
			size_t k, m = strv_len(f) - 5;

			v[n].argv = xcalloc(m + 1, sizeof(char *));
			for (k = 0; k < m; k++)
				v[n].argv[k] = f[5 + k];
		}
		free(f);
		n++;
	}
	buf_free(&data);
	*svcs = v;
	*nsvcs = n;
	return 0;
fail:
	buf_free(&data);
	master_conf_free(v, n);
	return -1;
}

void
master_conf_free(struct master_service *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].listen);
		free(v[i].type);
		strv_free(v[i].argv);
	}
	free(v);
}
