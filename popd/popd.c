/*
 * popd: the POP3 server (RFC 1939, 2449, 2595, 5034).
 *
 *   under hermod-master:  popd -C DIR -s pop3 [-o name=value ...]
 *                          (listener on fd 3, one client per process at a
 *                          time, each session in a child process)
 *   from inetd & co.:     popd -i [-C DIR] [-o name=value ...]
 *                          (one session on stdin/stdout)
 *
 * Privilege separation (popd(8), SECURITY), as in Dovecot and OpenSSH.
 * For each client the session's parent (the service process, or popd -i
 * itself; root in a privileged instance) makes two socketpairs and forks
 *   - the login process: switches for good to mail_owner (real, effective
 *     and saved ids; root cannot be regained) before it reads a byte from
 *     the client; it owns the client descriptor and the TLS state and
 *     runs AUTHORIZATION.  Credentials go to the parent over "ctl"
 *     (pop3_session.h).
 *   - the parent asks authd itself and acts only on authd's answer (the
 *     login process cannot name a user or a uid, only offer a password);
 *     uid 0 and gid 0 are refused.  On success it forks
 *   - the mail process: switches for good to the user's uid, gid and
 *     groups and serves TRANSACTION/UPDATE over the "data" socketpair,
 *     to which the login process proxies the client's bytes.
 * The parent keeps no client descriptor (they are replaced by /dev/null
 * once the login process has them), reads nothing from the network and
 * only waits for its two children.  In a rootless instance the same
 * processes run, without the switches.
 */
#include "pop3_session.h"
#include "access.h"

static const struct access_daemon popd = {
	"popd", "pop3", pop3_login, pop3_mail,
	"-ERR [SYS/TEMP] Cannot open the mailbox now\r\n",
	"-ERR [SYS/TEMP] Too many connections, try again later\r\n",
};

int
main(int argc, char **argv)
{
	return access_main(&popd, argc, argv);
}
