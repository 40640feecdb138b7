/*
 * imapd: the IMAP server (RFC 3501 and the extensions of imapd(8)).
 *
 *   under hermod-master:  imapd -C DIR -s imap [-o name=value ...]
 *   from inetd & co.:     imapd -i [-C DIR] [-o name=value ...]
 *
 * The privilege split is popd's (lib/access.h): a login process as
 * mail_owner, the root parent asking authd, a mail process as the user.
 */
#include "imap_session.h"
#include "access.h"

static const struct access_daemon imapd = {
	"imapd", "imap", imap_login, imap_mail,
	"* BYE [UNAVAILABLE] Cannot open the mailbox now\r\n",
	"* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
};

int
main(int argc, char **argv)
{
	return access_main(&imapd, argc, argv);
}
