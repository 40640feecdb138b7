/*
 * test_vuser.c: unit tests for lib/vuser.c: name rules, add / lookup /
 * check_password / del / list, the Maildir made by add, hand-edited
 * files (comments, duplicates, no final newline), the atomic rewrite
 * (new inode, no temporary left behind) and concurrent writers
 * serialised by the lock.
 */
#include "test.h"
#include "conf.h"
#include "util.h"
#include "vuser.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/test_vuser.XXXXXX";
static struct buf users = BUF_INIT;

static void
put_file(const char *path, const char *s)
{
	if (write_file_atomic(path, s, strlen(s), 0600) < 0) {
		perror(path);
		exit(2);
	}
}

static char *
get_file(const char *path)
{
	struct buf b = BUF_INIT;

	if (read_file(path, &b, 1 << 24) < 0)
		return xstrdup("");
	buf_adds(&b, "");
	return buf_steal(&b);
}

static int
count_lines_starting(const char *data, const char *prefix)
{
	const char *p = data;
	int n = 0;

	while (p && *p) {
		if (!strncmp(p, prefix, strlen(prefix)))
			n++;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return n;
}

static int
is_dir(const char *path, mode_t mode)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == mode;
}

static void
test_names(void)
{
	static const char *good[] = { "alice", "a", "bob.smith", "x_y-z", "0day", "a.", NULL };
	static const char *bad[] = { "", ".x", "-x", "_x", "Alice", "a/b", "a b", "a:b",
	    "..", ".", "a\nb", "a\\b", "caf\xc3\xa9", "a@b", "a+b", NULL };
	char longname[80];
	size_t i;

	for (i = 0; good[i]; i++)
		ok(vuser_name_valid(good[i]), "valid name '%s'", good[i]);
	for (i = 0; bad[i]; i++)
		ok(!vuser_name_valid(bad[i]), "invalid name #%zu", i);
	ok(!vuser_name_valid(NULL), "NULL name invalid");
	memset(longname, 'a', sizeof(longname));
	longname[64] = 0;
	ok(vuser_name_valid(longname), "64-byte name valid");
	longname[64] = 'a';
	longname[65] = 0;
	ok(!vuser_name_valid(longname), "65-byte name invalid");
}

static void
test_basic(void)
{
	struct buf md = BUF_INIT, err = BUF_INIT, want = BUF_INIT, p = BUF_INIT;
	struct stat st1, st2;
	char **v, *data, *h1, *h2;

	is_int(vuser_lookup("alice", &md), 0, "lookup with no users file: not found");
	v = vuser_list();
	ok(v && v[0] == NULL, "list with no users file: empty");
	strv_free(v);
	is_int(vuser_check_password("alice", "x"), 0, "check_password with no users file");

	is_int(vuser_add("alice", "secret", &err), 0, "add alice");
	if (err.len)
		printf("# %s\n", buf_str(&err));
	ok(stat(buf_str(&users), &st1) == 0 && (st1.st_mode & 0777) == 0600, "users file made 0600");
	data = get_file(buf_str(&users));
	ok(!strncmp(data, "alice:$y$", 9) || !strncmp(data, "alice:$6$", 9), "alice's hash is yescrypt or sha512-crypt");
	ok(count_lines_starting(data, "alice:") == 1, "one alice line");
	free(data);

	is_int(vuser_lookup("alice", &md), 1, "lookup alice");
	buf_printf(&want, "%s/mail/alice/Maildir/", dir);
	is_str(buf_str(&md), buf_str(&want), "alice's Maildir path");
	is_int(vuser_lookup("ALICE", &md), 1, "lookup is case-insensitive");
	is_int(vuser_lookup("bob", &md), 0, "lookup unknown user");
	is_int(vuser_lookup("../etc", &md), 0, "lookup of a bad name: not found");
	is_int(vuser_lookup("al", &md), 0, "lookup of a prefix: not found");
	is_int(vuser_lookup("alicex", &md), 0, "lookup of a longer name: not found");

	buf_printf(&p, "%s/mail/alice", dir);
	ok(is_dir(buf_str(&p), 0700), "mail/alice made 0700");
	buf_reset(&p);
	buf_printf(&p, "%s/mail/alice/Maildir/new", dir);
	ok(is_dir(buf_str(&p), 0700), "Maildir/new made");
	buf_reset(&p);
	buf_printf(&p, "%s/mail/alice/Maildir/tmp", dir);
	ok(is_dir(buf_str(&p), 0700), "Maildir/tmp made");
	buf_reset(&p);
	buf_printf(&p, "%s/mail/alice/Maildir/cur", dir);
	ok(is_dir(buf_str(&p), 0700), "Maildir/cur made");

	is_int(vuser_check_password("alice", "secret"), 1, "right password");
	is_int(vuser_check_password("Alice", "secret"), 1, "right password, name in capitals");
	is_int(vuser_check_password("alice", "Secret"), 0, "wrong password");
	is_int(vuser_check_password("alice", ""), 0, "empty password");
	is_int(vuser_check_password("alice", "secret "), 0, "password with a trailing space");
	is_int(vuser_check_password("bob", "secret"), 0, "unknown user");
	is_int(vuser_check_password("", "secret"), 0, "empty user name");

	/* replacing a password: new inode (atomic rename), one line */
	data = get_file(buf_str(&users));
	h1 = xstrdup(data);
	free(data);
	is_int(vuser_add("alice", "n3w pass", &err), 0, "add alice again (new password)");
	ok(stat(buf_str(&users), &st2) == 0 && st2.st_ino != st1.st_ino, "file replaced by rename (new inode)");
	ok((st2.st_mode & 0777) == 0600, "mode kept");
	is_int(vuser_check_password("alice", "secret"), 0, "old password no longer works");
	is_int(vuser_check_password("alice", "n3w pass"), 1, "new password works");
	data = get_file(buf_str(&users));
	ok(count_lines_starting(data, "alice:") == 1, "still one alice line");
	free(data);

	/* salts are random */
	is_int(vuser_add("alice", "secret", &err), 0, "add alice with the first password again");
	h2 = get_file(buf_str(&users));
	ok(strcmp(h1, h2) != 0, "same password, different hash (random salt)");
	free(h1);
	free(h2);

	is_int(vuser_add("bob", "pw", &err), 0, "add bob");
	is_int(vuser_add("0carol", "pw", &err), 0, "add 0carol");
	v = vuser_list();
	ok(v && strv_len(v) == 3 && !strcmp(v[0], "0carol") && !strcmp(v[1], "alice") && !strcmp(v[2], "bob"),
	    "list: 0carol alice bob (sorted)");
	strv_free(v);

	is_int(vuser_del("bob", &err), 0, "del bob");
	is_int(vuser_lookup("bob", &md), 0, "bob gone");
	is_int(vuser_check_password("bob", "pw"), 0, "bob's password gone");
	is_int(vuser_lookup("alice", &md), 1, "alice still there");
	buf_reset(&err);
	is_int(vuser_del("bob", &err), -1, "del bob again fails");
	ok(strstr(buf_str(&err), "no such user") != NULL, "error says no such user");
	buf_reset(&err);
	is_int(vuser_del("../x", &err), -1, "del bad name fails");
	buf_reset(&p);
	buf_printf(&p, "%s/mail/bob/Maildir/new", dir);
	ok(is_dir(buf_str(&p), 0700), "del keeps the mail");

	buf_free(&md);
	buf_free(&err);
	buf_free(&want);
	buf_free(&p);
}

static void
test_bad_input(void)
{
	struct buf err = BUF_INIT, p = BUF_INIT;
	char *longpw = xmalloc(2000);	/* libcrypt's limit is 511 bytes */

	is_int(vuser_add("Bad/Name", "pw", &err), -1, "add with a bad name fails");
	ok(strstr(buf_str(&err), "invalid user name") != NULL, "error names the problem");
	buf_printf(&p, "%s/mail/Bad", dir);
	ok(access(buf_str(&p), F_OK) < 0, "nothing made for a bad name");
	buf_reset(&err);
	is_int(vuser_add("..", "pw", &err), -1, "add .. fails");
	buf_reset(&err);
	is_int(vuser_add("dave", "", &err), -1, "empty password refused");
	buf_reset(&err);
	is_int(vuser_add("dave", NULL, &err), -1, "NULL password refused");
	buf_reset(&err);
	is_int(vuser_add("dave", "a\nb", &err), -1, "password with LF refused");
	buf_reset(&err);
	is_int(vuser_add("dave", "a\rb", &err), -1, "password with CR refused");
	memset(longpw, 'x', 1999);
	longpw[1999] = 0;
	buf_reset(&err);
	is_int(vuser_add("dave", longpw, &err), -1, "2000-byte password refused");
	longpw[512] = 0;
	buf_reset(&err);
	is_int(vuser_add("dave", longpw, &err), -1, "512-byte password refused");
	longpw[511] = 0;
	buf_reset(&err);
	is_int(vuser_add("dave", longpw, &err), 0, "511-byte password accepted");
	is_int(vuser_check_password("dave", longpw), 1, "511-byte password checks");
	longpw[510] = 0;
	is_int(vuser_check_password("dave", longpw), 0, "its 510-byte prefix does not");
	is_int(vuser_del("dave", &err), 0, "del dave");
	free(longpw);
	buf_free(&err);
	buf_free(&p);
}

static void
test_hand_edited(void)
{
	struct buf err = BUF_INIT, md = BUF_INIT;
	char *data;
	char **v;

	put_file(buf_str(&users),
	    "# virtual users\n"
	    "\n"
	    "carol:$6$x$y\n"
	    "# carol:commented\n"
	    "carol:$6$dup$dup\n"
	    "bogus line without colon\n"
	    "Bad/Name:$6$a$b\n"
	    "dave:$6$a$b:extra:fields\n"
	    "erin:$6$q$q");	/* no final newline */
	is_int(vuser_lookup("dave", &md), 1, "line with extra fields is found");
	is_int(vuser_lookup("erin", &md), 1, "last line without newline is found");
	is_int(vuser_check_password("carol", "x"), 0, "garbage hash never matches");
	v = vuser_list();
	ok(v && strv_len(v) == 3, "list skips comments, junk, bad names and duplicates");
	strv_free(v);
	is_int(vuser_add("carol", "pw", &err), 0, "add carol over hand-edited duplicates");
	is_int(vuser_add("frank", "pw", &err), 0, "add frank after a line without newline");
	data = get_file(buf_str(&users));
	ok(count_lines_starting(data, "carol:") == 1, "duplicates collapsed to one carol line");
	ok(strstr(data, "# virtual users\n\ncarol:$") == data, "comment, blank line and position kept");
	ok(strstr(data, "# carol:commented\n") != NULL, "commented-out carol kept");
	ok(strstr(data, "bogus line without colon\n") != NULL, "unknown line kept");
	ok(strstr(data, "dave:$6$a$b:extra:fields\n") != NULL, "extra fields kept");
	ok(strstr(data, "erin:$6$q$q\nfrank:$") != NULL, "newline added before the new line");
	free(data);
	is_int(vuser_check_password("carol", "pw"), 1, "carol's new password");
	is_int(vuser_check_password("frank", "pw"), 1, "frank's password");

	/* CRLF edited file */
	put_file(buf_str(&users), "gina:PLACEHOLDER\r\n");
	is_int(vuser_lookup("gina", &md), 1, "CRLF line found");
	buf_free(&err);
	buf_free(&md);
}

static void
test_no_temp_left(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int tmp = 0;

	while (d && (de = readdir(d)))
		if (strstr(de->d_name, ".tmp"))
			tmp++;
	if (d)
		closedir(d);
	is_int(tmp, 0, "no temporary files left in the directory");
}

#define NCHILD	6
#define NEACH	4

static void
test_concurrent(void)
{
	pid_t pids[NCHILD];
	int i, j, bad = 0, status;
	char **v;

	put_file(buf_str(&users), "");
	for (i = 0; i < NCHILD; i++) {
		if ((pids[i] = fork()) == 0) {
			struct buf err = BUF_INIT;

			for (j = 0; j < NEACH; j++) {
				char name[32];

				snprintf(name, sizeof(name), "u%d-%d", i, j);
				if (vuser_add(name, "pw", &err) < 0) {
					fprintf(stderr, "%s\n", buf_str(&err));
					_exit(1);
				}
			}
			_exit(0);
		}
	}
	for (i = 0; i < NCHILD; i++)
		if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
			bad++;
	is_int(bad, 0, "%d concurrent writers succeed", NCHILD);
	v = vuser_list();
	is_int(strv_len(v), NCHILD * NEACH, "no update lost under concurrency");
	strv_free(v);
}

int
main(void)
{
	struct buf conf = BUF_INIT, path = BUF_INIT, err = BUF_INIT;

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	buf_printf(&users, "%s/users", dir);
	buf_printf(&conf, "privileged = no\nvirtual_users_file = %s/users\nvirtual_mailbox_base = %s/mail\n", dir, dir);
	buf_printf(&path, "%s/hermod.conf", dir);
	put_file(buf_str(&path), buf_str(&conf));
	if (conf_load(dir, &err) < 0) {
		printf("Bail out! %s\n", buf_str(&err));
		return 2;
	}
	test_names();
	test_basic();
	test_bad_input();
	test_hand_edited();
	test_concurrent();
	test_no_temp_left();
	buf_reset(&path);
	buf_printf(&path, "rm -rf '%s'", dir);
	if (system(buf_str(&path)) != 0)
		printf("# could not remove %s\n", dir);
	buf_free(&conf);
	buf_free(&path);
	buf_free(&err);
	buf_free(&users);
	return done_testing();
}
