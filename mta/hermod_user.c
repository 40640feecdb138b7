/*
 * hermod_user.c: "hermod user add NAME | del NAME | list": the virtual
 * users of an instance, through lib/vuser.h.
 *
 * The password is the first line of standard input (at most
 * PASSWORD_LINE_MAX bytes, without its line end).  On a terminal it is
 * asked for twice with echo off.  It is never put on the command line
 * (other users can read that in /proc) nor logged.
 */
#include "hermod.h"
#include "conf.h"
#include "util.h"
#include "vuser.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <termios.h>
#include <unistd.h>

#define PASSWORD_LINE_MAX	4096

/* Read one line from fd 0 into b (without the line end).  0 ok, -1
 * nothing (EOF before any byte, or an error), -2 too long. */
static int
read_line(struct buf *b)
{
	char c;
	int got = 0;

	buf_reset(b);
	for (;;) {
		ssize_t r = read(0, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got = 1;
		if (c == '\n')
			break;
		if (b->len >= PASSWORD_LINE_MAX)
			return -2;
		buf_addc(b, c);
	}
	if (b->len && b->data[b->len - 1] == '\r')
		buf_truncate(b, b->len - 1);
	buf_adds(b, "");
	return got ? 0 : -1;
}

static int
prompt(const char *what, struct buf *b)
{
	struct termios old, quiet;
	int rc;

	fputs(what, stderr);
	fflush(stderr);
	if (tcgetattr(0, &old) < 0)
		return read_line(b);
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	(void)tcsetattr(0, TCSAFLUSH, &quiet);
	rc = read_line(b);
	(void)tcsetattr(0, TCSAFLUSH, &old);
	fputc('\n', stderr);
	return rc;
}

static int
get_password(const char *name, struct buf *pw)
{
	struct buf again = BUF_INIT;
	int r;

	if (isatty(0)) {
		struct buf q = BUF_INIT;

		buf_printf(&q, "Password for %s: ", name);
		r = prompt(buf_str(&q), pw);
		buf_free(&q);
		if (r == 0) {
			r = prompt("Again: ", &again);
			if (r == 0 && strcmp(buf_str(pw), buf_str(&again))) {
				hermod_say("the passwords differ");
				r = -3;
			}
		}
	} else
		r = read_line(pw);
	if (again.data)
		explicit_bzero(again.data, again.cap);
	buf_free(&again);
	if (r == -1)
		hermod_say("user add: no password on standard input");
	else if (r == -2)
		hermod_say("user add: password longer than %d bytes", PASSWORD_LINE_MAX);
	return r;
}

static int
user_add(const char *name)
{
	struct buf pw = BUF_INIT, err = BUF_INIT, md = BUF_INIT;
	int rc = 0, r;

	if (!vuser_name_valid(name)) {
		hermod_say("user add: invalid name \"%s\": use a-z, 0-9, '.', '_', '-', starting with a letter or digit, at most 64 characters", name);
		return EX_USAGE;
	}
	if ((r = get_password(name, &pw)) < 0)
		rc = r == -3 ? EX_DATAERR : (r == -2 ? EX_DATAERR : EX_NOINPUT);
	else if (pw.len == 0) {
		hermod_say("user add: empty password");
		rc = EX_DATAERR;
	} else if (vuser_add(name, buf_str(&pw), &err) < 0) {
		hermod_say("user add %s: %s", name, buf_str(&err));
		rc = EX_CANTCREAT;
	} else {
		if (vuser_lookup(name, &md) != 1)
			buf_printf(&md, "%s/%s/Maildir/", conf_str("virtual_mailbox_base"), name);
		printf("hermod: user %s: mail goes to %s\n", name, buf_str(&md));
	}
	if (pw.data)
		explicit_bzero(pw.data, pw.cap);
	buf_free(&pw);
	buf_free(&err);
	buf_free(&md);
	return rc;
}

static int
user_del(const char *name)
{
	struct buf err = BUF_INIT;
	int r;

	if (!vuser_name_valid(name)) {
		hermod_say("user del: invalid name \"%s\"", name);
		return EX_USAGE;
	}
	if ((r = vuser_lookup(name, NULL)) < 0)
		return EX_IOERR;
	if (r == 0) {
		hermod_say("user del: no such user: %s", name);
		return EX_NOUSER;
	}
	if (vuser_del(name, &err) < 0) {
		hermod_say("user del %s: %s", name, buf_str(&err));
		buf_free(&err);
		return EX_CANTCREAT;
	}
	buf_free(&err);
	printf("hermod: user %s deleted (the mail in %s/%s/ is kept)\n", name,
	    conf_str("virtual_mailbox_base"), name);
	return 0;
}

static int
user_list(void)
{
	char **v = vuser_list();
	size_t i;

	if (!v)
		return EX_IOERR;
	for (i = 0; v[i]; i++)
		printf("%s\n", v[i]);
	strv_free(v);
	if (fflush(stdout) == EOF) {
		hermod_say("write: %s", strerror(errno));
		return EX_IOERR;
	}
	return 0;
}

int
hermod_user(int argc, char **argv)
{
	int rc;

	if (argc < 2) {
		hermod_say("usage: hermod user add NAME | user del NAME | user list");
		return EX_USAGE;
	}
	if (!strcmp(argv[1], "add") || !strcmp(argv[1], "del") || !strcmp(argv[1], "delete")) {
		if (argc != 3) {
			hermod_say("usage: hermod user %s NAME", argv[1]);
			return EX_USAGE;
		}
	} else if (!strcmp(argv[1], "list")) {
		if (argc != 2) {
			hermod_say("usage: hermod user list");
			return EX_USAGE;
		}
	} else {
		hermod_say("user: unknown command %s (add, del, list)", argv[1]);
		return EX_USAGE;
	}
	if ((rc = hermod_load_conf()) != 0)
		return rc;
	if (!strcmp(argv[1], "add"))
		return user_add(argv[2]);
	if (argv[1][0] == 'd')
		return user_del(argv[2]);
	return user_list();
}
