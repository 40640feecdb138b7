/*
 * test_imap_folder: imapd/imap_folder.c on a temporary Maildir++ root:
 * autocreate, CREATE/DELETE/RENAME (children, INBOX), SUBSCRIBE and
 * UNSUBSCRIBE, STATUS, and every LIST form (wildcards, reference,
 * "" root, \NonExistent/\Noselect parents, CHILDREN, SPECIAL-USE,
 * LIST-EXTENDED SUBSCRIBED RECURSIVEMATCH, RETURN STATUS) and LSUB,
 * comparing the exact response lines.  ibox_status is the stub in
 * imap_folder_stub.c.
 */
#include "imap_folder.h"
#include "imap_utf7.h"
#include "util.h"
#include "test.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* imap_folder_stub.c */
extern int stub_copied, stub_expunged, stub_closed;

static char dir[64];
static struct imap_ns ns;

static struct imap_mailbox
mb(const char *wire)
{
	struct imap_mailbox m;
	struct buf u = BUF_INIT;

	memset(&m, 0, sizeof(m));
	if (strcasecmp(wire, "INBOX") == 0) {
		m.name = xstrdup("INBOX");
		m.utf8 = xstrdup("INBOX");
		m.inbox = 1;
		return m;
	}
	if (imap_utf7_decode(wire, strlen(wire), &u) < 0)
		buf_sets(&u, "?");
	m.name = xstrdup(wire);
	m.utf8 = buf_steal(&u);
	return m;
}

static void
mbfree(struct imap_mailbox *m)
{
	free(m->name);
	free(m->utf8);
}

static struct buf resline;

static const char *
res_str(struct imap_folder_res *r)
{
	buf_reset(&resline);
	buf_printf(&resline, "%s%s%s%s %s", r->status, r->code ? " [" : "",
	    r->code ? r->code : "", r->code ? "]" : "", buf_str(&r->text));
	return buf_str(&resline);
}

/* run a one-name command, return "STATUS [CODE]" only */
static char last[256];

static const char *
code_of(struct imap_folder_res *r)
{
	snprintf(last, sizeof(last), "%s%s%s%s", r->status, r->code ? " [" : "",
	    r->code ? r->code : "", r->code ? "]" : "");
	return last;
}

static const char *
cmd(const char *verb, const char *name, const char *to)
{
	struct imap_mailbox m = mb(name), t;
	struct imap_folder_res r;

	imap_folder_res_init(&r);
	if (strcmp(verb, "CREATE") == 0)
		imap_folder_create(&ns, &m, &r);
	else if (strcmp(verb, "DELETE") == 0)
		imap_folder_delete(&ns, &m, &r);
	else if (strcmp(verb, "SUBSCRIBE") == 0)
		imap_folder_subscribe(&ns, &m, 1, &r);
	else if (strcmp(verb, "UNSUBSCRIBE") == 0)
		imap_folder_subscribe(&ns, &m, 0, &r);
	else {
		t = mb(to);
		imap_folder_rename(&ns, &m, &t, &r);
		mbfree(&t);
	}
	code_of(&r);
	if (strcmp(r.status, "OK") != 0)
		printf("# %s %s: %s\n", verb, name, res_str(&r));
	imap_folder_res_free(&r);
	mbfree(&m);
	return last;
}

static struct buf out;

/* LIST/LSUB; patterns separated by "|" */
static const char *
list(int lsub, unsigned sel, unsigned ret, int ext, const char *ref, const char *pats)
{
	struct imap_list l;
	struct imap_folder_res r;
	char **v = str_split(pats, "|");
	size_t i;

	memset(&l, 0, sizeof(l));
	l.sel = sel;
	l.ret = ret;
	l.extended = ext;
	l.status = IMAP_STATUS_MESSAGES | IMAP_STATUS_UIDNEXT;
	l.ref = mb(ref);
	if (*ref == 0) {
		free(l.ref.utf8);
		l.ref.utf8 = xstrdup("");
	}
	if (*pats == 0) {
		l.npat = 1;
		l.pat = xcalloc(1, sizeof(*l.pat));
		l.pat[0].name = xstrdup("");
		l.pat[0].utf8 = xstrdup("");
	} else {
		l.npat = strv_len(v);
		l.pat = xcalloc(l.npat, sizeof(*l.pat));
		for (i = 0; i < l.npat; i++) {
			l.pat[i] = mb(v[i]);
			l.pat[i].inbox = 0;
		}
	}
	buf_reset(&out);
	imap_folder_res_init(&r);
	imap_folder_list(&ns, &l, lsub, &out, &r);
	if (strcmp(r.status, "OK") != 0)
		printf("# list: %s\n", res_str(&r));
	imap_folder_res_free(&r);
	for (i = 0; i < l.npat; i++)
		mbfree(&l.pat[i]);
	free(l.pat);
	mbfree(&l.ref);
	strv_free(v);
	return buf_str(&out);
}

static int
exists(const char *rel)
{
	struct buf p = BUF_INIT;
	struct stat st;
	int r;

	buf_printf(&p, "%s/%s", dir, rel);
	r = stat(buf_str(&p), &st) == 0;
	buf_free(&p);
	return r;
}

static void
put(const char *rel)
{
	struct buf p = BUF_INIT;
	int fd;

	buf_printf(&p, "%s/%s", dir, rel);
	fd = open(buf_str(&p), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write_full(fd, "Subject: x\n\nbody\n", 17) < 0 || close(fd) < 0)
		printf("# put %s failed\n", buf_str(&p));
	buf_free(&p);
}

static const char *
subs(void)
{
	struct buf p = BUF_INIT;

	buf_printf(&p, "%s/subscriptions", dir);
	buf_reset(&out);
	if (read_file(buf_str(&p), &out, 1 << 20) < 0)
		buf_sets(&out, "(none)");
	buf_free(&p);
	return buf_str(&out);
}

static const char *
status(const char *name, unsigned items)
{
	struct imap_status s;
	struct imap_folder_res r;
	static struct buf o;

	s.mbox = mb(name);
	s.items = items;
	buf_reset(&o);
	imap_folder_res_init(&r);
	imap_folder_status(&ns, &s, &o, &r);
	if (strcmp(r.status, "OK") != 0)
		buf_printf(&o, "%s", res_str(&r));
	imap_folder_res_free(&r);
	mbfree(&s.mbox);
	return buf_str(&o);
}

static void
test_names(void)
{
	is_str(cmd("CREATE", "a/b", NULL), "NO [CANNOT]", "CREATE a/b refused");
	is_str(cmd("CREATE", ".a", NULL), "NO [CANNOT]", "CREATE .a refused");
	is_str(cmd("CREATE", "a..b", NULL), "NO [CANNOT]", "CREATE a..b refused");
	is_str(cmd("CREATE", "a&Jjo", NULL), "NO [CANNOT]", "CREATE bad UTF-7 refused");
	is_str(cmd("CREATE", "a*", NULL), "NO [CANNOT]", "CREATE a* refused");
	is_str(cmd("CREATE", "INBOX", NULL), "NO [ALREADYEXISTS]", "CREATE INBOX");
	is_str(cmd("CREATE", "inbox", NULL), "NO [ALREADYEXISTS]", "CREATE inbox");
	is_str(cmd("SUBSCRIBE", "x/y", NULL), "NO [CANNOT]", "SUBSCRIBE x/y refused");
}

static void
test_create(void)
{
	is_str(cmd("CREATE", "work", NULL), "OK", "CREATE work");
	ok(exists(".work/cur") && exists(".work/new") && exists(".work/tmp") &&
	    exists(".work/maildirfolder"), "work is a Maildir++ folder");
	is_str(cmd("CREATE", "work", NULL), "NO [ALREADYEXISTS]", "CREATE work again");
	is_str(cmd("CREATE", "work.2024.", NULL), "OK", "CREATE work.2024. (hierarchy hint)");
	ok(exists(".work.2024/cur"), "stored as .work.2024");
	is_str(cmd("CREATE", "deep.x.y", NULL), "OK", "CREATE deep.x.y without parents");
	ok(!exists(".deep") && !exists(".deep.x"), "parents not made");
	is_str(cmd("CREATE", "inbox.kids", NULL), "OK", "CREATE inbox.kids");
	ok(exists(".INBOX.kids/cur"), "stored as .INBOX.kids");
	is_str(cmd("CREATE", "Gr&APw-n", NULL), "OK", "CREATE Gr&APw-n");
	ok(exists(".Gr&APw-n/cur"), "stored in modified UTF-7");
}

static void
test_list(void)
{
	const char *all =
	    "* LIST (\\HasChildren) \".\" \"INBOX\"\r\n"
	    "* LIST (\\HasNoChildren) \".\" \"INBOX.kids\"\r\n"
	    "* LIST (\\HasNoChildren \\Drafts) \".\" \"Drafts\"\r\n"
	    "* LIST (\\HasNoChildren) \".\" \"Gr&APw-n\"\r\n"
	    "* LIST (\\HasNoChildren \\Junk) \".\" \"Junk\"\r\n"
	    "* LIST (\\HasNoChildren \\Sent) \".\" \"Sent\"\r\n"
	    "* LIST (\\HasNoChildren \\Trash) \".\" \"Trash\"\r\n"
	    "* LIST (\\Noselect \\HasChildren) \".\" \"deep\"\r\n"
	    "* LIST (\\Noselect \\HasChildren) \".\" \"deep.x\"\r\n"
	    "* LIST (\\HasNoChildren) \".\" \"deep.x.y\"\r\n"
	    "* LIST (\\HasChildren) \".\" \"work\"\r\n"
	    "* LIST (\\HasNoChildren) \".\" \"work.2024\"\r\n";

	is_str(list(0, 0, 0, 0, "", ""), "* LIST (\\Noselect) \".\" \"\"\r\n", "LIST \"\" \"\"");
	is_str(list(0, 0, 0, 0, "", "*"), all, "LIST \"\" *");
	is_str(list(0, 0, 0, 0, "", "%"),
	    "* LIST (\\HasChildren) \".\" \"INBOX\"\r\n"
	    "* LIST (\\HasNoChildren \\Drafts) \".\" \"Drafts\"\r\n"
	    "* LIST (\\HasNoChildren) \".\" \"Gr&APw-n\"\r\n"
	    "* LIST (\\HasNoChildren \\Junk) \".\" \"Junk\"\r\n"
	    "* LIST (\\HasNoChildren \\Sent) \".\" \"Sent\"\r\n"
	    "* LIST (\\HasNoChildren \\Trash) \".\" \"Trash\"\r\n"
	    "* LIST (\\Noselect \\HasChildren) \".\" \"deep\"\r\n"
	    "* LIST (\\HasChildren) \".\" \"work\"\r\n", "LIST \"\" %%");
	is_str(list(0, 0, 0, 1, "", "deep.%"),
	    "* LIST (\\NonExistent \\HasChildren) \".\" \"deep.x\"\r\n", "extended: \\NonExistent");
	is_str(list(0, 0, 0, 0, "work.", "%"),
	    "* LIST (\\HasNoChildren) \".\" \"work.2024\"\r\n", "reference work. %%");
	is_str(list(0, 0, 0, 0, "", "inbox"),
	    "* LIST (\\HasChildren) \".\" \"INBOX\"\r\n", "inbox any case");
	is_str(list(0, 0, 0, 0, "", "inbox.%"),
	    "* LIST (\\HasNoChildren) \".\" \"INBOX.kids\"\r\n", "inbox.%% any case");
	is_str(list(0, 0, 0, 0, "", "w*4"),
	    "* LIST (\\HasNoChildren) \".\" \"work.2024\"\r\n", "w*4");
	is_str(list(0, 0, 0, 0, "", "w%4"), "", "w%%4 does not cross levels");
	is_str(list(0, 0, 0, 0, "", "nothing"), "", "no match");
	is_str(list(0, 0, 0, 1, "", "Sent|Trash|Sent"),
	    "* LIST (\\HasNoChildren \\Sent) \".\" \"Sent\"\r\n"
	    "* LIST (\\HasNoChildren \\Trash) \".\" \"Trash\"\r\n", "several patterns, once each");
	is_str(list(0, IMAP_LIST_SEL_SPECIAL_USE, IMAP_LIST_RET_SPECIAL_USE, 1, "", "*"),
	    "* LIST (\\HasNoChildren \\Drafts) \".\" \"Drafts\"\r\n"
	    "* LIST (\\HasNoChildren \\Junk) \".\" \"Junk\"\r\n"
	    "* LIST (\\HasNoChildren \\Sent) \".\" \"Sent\"\r\n"
	    "* LIST (\\HasNoChildren \\Trash) \".\" \"Trash\"\r\n", "(SPECIAL-USE)");
	ns.utf8 = 1;
	is_str(list(0, 0, 0, 0, "", "Gr*"),
	    "* LIST (\\HasNoChildren) \".\" \"Gr\xc3\xbcn\"\r\n", "UTF8=ACCEPT name");
	ns.utf8 = 0;
}

static void
test_subscribe(void)
{
	is_str(subs(), "Sent\nDrafts\nTrash\nJunk\n", "autocreate subscribed");
	is_str(cmd("SUBSCRIBE", "work.2024", NULL), "OK", "SUBSCRIBE work.2024");
	is_str(cmd("SUBSCRIBE", "work.2024", NULL), "OK", "SUBSCRIBE twice");
	is_str(cmd("SUBSCRIBE", "gone.away", NULL), "OK", "SUBSCRIBE nonexistent");
	is_str(cmd("SUBSCRIBE", "inbox", NULL), "OK", "SUBSCRIBE inbox");
	is_str(cmd("UNSUBSCRIBE", "Junk", NULL), "OK", "UNSUBSCRIBE Junk");
	is_str(cmd("UNSUBSCRIBE", "never", NULL), "OK", "UNSUBSCRIBE not subscribed");
	is_str(subs(), "Sent\nDrafts\nTrash\nwork.2024\ngone.away\nINBOX\n", "subscriptions file");

	is_str(list(1, 0, 0, 0, "", "*"),
	    "* LSUB () \".\" \"INBOX\"\r\n"
	    "* LSUB () \".\" \"Drafts\"\r\n"
	    "* LSUB () \".\" \"Sent\"\r\n"
	    "* LSUB () \".\" \"Trash\"\r\n"
	    "* LSUB () \".\" \"gone.away\"\r\n"
	    "* LSUB () \".\" \"work.2024\"\r\n", "LSUB *");
	is_str(list(1, 0, 0, 0, "", "%"),
	    "* LSUB () \".\" \"INBOX\"\r\n"
	    "* LSUB () \".\" \"Drafts\"\r\n"
	    "* LSUB () \".\" \"Sent\"\r\n"
	    "* LSUB () \".\" \"Trash\"\r\n"
	    "* LSUB (\\Noselect) \".\" \"gone\"\r\n"
	    "* LSUB (\\Noselect) \".\" \"work\"\r\n", "LSUB %% (\\Noselect parents)");
	is_str(list(0, IMAP_LIST_SEL_SUBSCRIBED, 0, 1, "", "*"),
	    "* LIST (\\Subscribed \\HasChildren) \".\" \"INBOX\"\r\n"
	    "* LIST (\\Subscribed \\HasNoChildren \\Drafts) \".\" \"Drafts\"\r\n"
	    "* LIST (\\Subscribed \\HasNoChildren \\Sent) \".\" \"Sent\"\r\n"
	    "* LIST (\\Subscribed \\HasNoChildren \\Trash) \".\" \"Trash\"\r\n"
	    "* LIST (\\NonExistent \\Subscribed) \".\" \"gone.away\"\r\n"
	    "* LIST (\\Subscribed \\HasNoChildren) \".\" \"work.2024\"\r\n", "LIST (SUBSCRIBED) *");
	is_str(list(0, IMAP_LIST_SEL_SUBSCRIBED | IMAP_LIST_SEL_RECURSIVEMATCH, 0, 1, "", "%"),
	    "* LIST (\\Subscribed \\HasChildren) \".\" \"INBOX\"\r\n"
	    "* LIST (\\Subscribed \\HasNoChildren \\Drafts) \".\" \"Drafts\"\r\n"
	    "* LIST (\\Subscribed \\HasNoChildren \\Sent) \".\" \"Sent\"\r\n"
	    "* LIST (\\Subscribed \\HasNoChildren \\Trash) \".\" \"Trash\"\r\n"
	    "* LIST (\\NonExistent) \".\" \"gone\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
	    "* LIST (\\HasChildren) \".\" \"work\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n",
	    "LIST (SUBSCRIBED RECURSIVEMATCH) %%");
	is_str(list(0, 0, IMAP_LIST_RET_SUBSCRIBED, 1, "", "work*|Junk"),
	    "* LIST (\\HasNoChildren \\Junk) \".\" \"Junk\"\r\n"
	    "* LIST (\\HasChildren) \".\" \"work\"\r\n"
	    "* LIST (\\Subscribed \\HasNoChildren) \".\" \"work.2024\"\r\n", "RETURN (SUBSCRIBED)");
}

static void
test_status(void)
{
	put(".work/new/1");
	put(".work/new/2");
	put(".work/cur/3:2,S");
	is_str(status("work", 0xff),
	    "* STATUS \"work\" (MESSAGES 3 RECENT 2 UIDNEXT 4 UIDVALIDITY 42 UNSEEN 3 "
	    "HIGHESTMODSEQ 7 SIZE 300 DELETED 0)\r\n", "STATUS every item");
	is_str(status("work", IMAP_STATUS_UIDNEXT | IMAP_STATUS_MESSAGES),
	    "* STATUS \"work\" (MESSAGES 3 UIDNEXT 4)\r\n", "STATUS two items");
	is_str(status("nope", IMAP_STATUS_MESSAGES), "NO [NONEXISTENT] Mailbox doesn't exist",
	    "STATUS nonexistent");
	is_str(status("deep", IMAP_STATUS_MESSAGES), "NO [NONEXISTENT] Mailbox doesn't exist",
	    "STATUS of a \\Noselect parent");
	is_str(status("a/b", IMAP_STATUS_MESSAGES), "NO [CANNOT] Mailbox name may not contain \"/\"",
	    "STATUS bad name");
	is_str(status("inbox", IMAP_STATUS_MESSAGES), "* STATUS \"INBOX\" (MESSAGES 0)\r\n",
	    "STATUS inbox");
	is_str(list(0, 0, IMAP_LIST_RET_STATUS, 1, "", "work*|deep"),
	    "* LIST (\\NonExistent \\HasChildren) \".\" \"deep\"\r\n"
	    "* LIST (\\HasChildren) \".\" \"work\"\r\n"
	    "* STATUS \"work\" (MESSAGES 3 UIDNEXT 4)\r\n"
	    "* LIST (\\HasNoChildren) \".\" \"work.2024\"\r\n"
	    "* STATUS \"work.2024\" (MESSAGES 0 UIDNEXT 1)\r\n", "RETURN (STATUS)");
}

static void
test_delete_rename(void)
{
	is_str(cmd("DELETE", "INBOX", NULL), "NO [CANNOT]", "DELETE INBOX refused");
	is_str(cmd("DELETE", "nope", NULL), "NO [NONEXISTENT]", "DELETE nonexistent");
	is_str(cmd("DELETE", "deep", NULL), "NO [NONEXISTENT]", "DELETE \\Noselect parent");
	is_str(cmd("DELETE", "work", NULL), "NO [CANNOT]", "DELETE with children refused");
	is_str(cmd("CREATE", "tmpbox", NULL), "OK", "CREATE tmpbox");
	put(".tmpbox/new/1");
	is_str(cmd("DELETE", "tmpbox", NULL), "OK", "DELETE tmpbox");
	ok(!exists(".tmpbox") && !exists("..hermod-delete.tmpbox"), "tmpbox gone from disk");

	is_str(cmd("RENAME", "nope", "x"), "NO [NONEXISTENT]", "RENAME nonexistent");
	is_str(cmd("RENAME", "work", "Sent"), "NO [ALREADYEXISTS]", "RENAME onto existing");
	is_str(cmd("RENAME", "work", "INBOX"), "NO [ALREADYEXISTS]", "RENAME to INBOX");
	is_str(cmd("RENAME", "work", "work.sub"), "NO [CANNOT]", "RENAME under itself");
	is_str(cmd("RENAME", "work", "job"), "OK", "RENAME work job");
	ok(exists(".job/new/1") && exists(".job.2024/cur") && !exists(".work") &&
	    !exists(".work.2024"), "children renamed along");
	is_str(subs(), "Sent\nDrafts\nTrash\njob.2024\ngone.away\nINBOX\n", "subscription renamed");
	is_str(cmd("DELETE", "job.2024", NULL), "OK", "DELETE job.2024");
	is_str(cmd("DELETE", "job", NULL), "OK", "DELETE job after its child");

	put("new/m1");
	put("cur/m2:2,S");
	is_str(cmd("RENAME", "INBOX", "old"), "OK", "RENAME INBOX old");
	ok(exists(".old/new/m1") && exists(".old/cur/m2:2,S"), "INBOX messages moved");
	ok(!exists("new/m1") && !exists("cur/m2:2,S") && exists("cur"), "INBOX left empty");
	is_str(cmd("RENAME", "INBOX", "old"), "NO [ALREADYEXISTS]", "RENAME INBOX onto existing");
	is_str(list(0, 0, 0, 0, "", "old|INBOX"),
	    "* LIST (\\HasChildren) \".\" \"INBOX\"\r\n"
	    "* LIST (\\HasNoChildren) \".\" \"old\"\r\n", "both listed");
}

/* not folders: bad names and ROOT's own entries */
static void
test_junk_dirs(void)
{
	struct buf p = BUF_INIT;
	const char *const junk[] = { ".a..b", "..hermod-delete.x", ".x.", ".inbox", ".a&Jjo", NULL };
	size_t i;

	for (i = 0; junk[i]; i++) {
		buf_reset(&p);
		buf_printf(&p, "%s/%s", dir, junk[i]);
		if (mkdir(buf_str(&p), 0700) < 0)
			printf("# mkdir %s failed\n", buf_str(&p));
	}
	put(".plainfile");
	is_str(list(0, 0, 0, 0, "", "*"),
	    "* LIST (\\HasChildren) \".\" \"INBOX\"\r\n"
	    "* LIST (\\HasNoChildren) \".\" \"INBOX.kids\"\r\n"
	    "* LIST (\\HasNoChildren \\Drafts) \".\" \"Drafts\"\r\n"
	    "* LIST (\\HasNoChildren) \".\" \"Gr&APw-n\"\r\n"
	    "* LIST (\\HasNoChildren \\Junk) \".\" \"Junk\"\r\n"
	    "* LIST (\\HasNoChildren \\Sent) \".\" \"Sent\"\r\n"
	    "* LIST (\\HasNoChildren \\Trash) \".\" \"Trash\"\r\n"
	    "* LIST (\\Noselect \\HasChildren) \".\" \"deep\"\r\n"
	    "* LIST (\\Noselect \\HasChildren) \".\" \"deep.x\"\r\n"
	    "* LIST (\\HasNoChildren) \".\" \"deep.x.y\"\r\n"
	    "* LIST (\\HasNoChildren) \".\" \"old\"\r\n", "junk entries of ROOT not listed");
	buf_free(&p);
}

/* an mbox user: INBOX is a file, the folders are elsewhere */
static void
test_mbox_user(void)
{
	struct imap_ns save = ns;
	struct buf root = BUF_INIT, inbox = BUF_INIT, err = BUF_INIT;
	const char *const special[] = { "Sent Messages:\\Sent", "Archive:\\Archive", NULL };

	buf_printf(&root, "%s/mb/Mail", dir);	/* no "/": tolerated */
	buf_printf(&inbox, "%s/mb/inbox", dir);
	ns.root = root.data;
	ns.inbox = inbox.data;
	ns.inbox_maildir = 0;
	ns.special = (char **)special;
	is_int(imap_folder_autocreate(&ns, &err), 0, "mbox user: autocreate");
	ok(exists("mb/Mail/.Sent Messages/cur") && exists("mb/Mail/.Archive/cur") &&
	    !exists("mb/Mail/cur") && !exists("mb/Mail/.Sent"), "mbox user: own special list");
	is_str(list(0, 0, 0, 0, "", "*"),
	    "* LIST (\\HasNoChildren) \".\" \"INBOX\"\r\n"
	    "* LIST (\\HasNoChildren \\Archive) \".\" \"Archive\"\r\n"
	    "* LIST (\\HasNoChildren \\Sent) \".\" \"Sent Messages\"\r\n", "mbox user: LIST *");
	is_str(status("INBOX", IMAP_STATUS_MESSAGES), "NO [SERVERBUG] Internal error: STATUS failed",
	    "mbox user: STATUS error (stub)");
	is_str(cmd("RENAME", "INBOX", "x"), "OK", "mbox user: RENAME INBOX");
	ok(exists("mb/Mail/.x/cur/copy0") && exists("mb/Mail/.x/cur/copy1"), "mbox user: messages copied");
	is_int(stub_copied, 2, "mbox user: 2 copied");
	is_int(stub_expunged, 2, "mbox user: 2 expunged from INBOX");
	is_int(stub_closed, 1, "mbox user: INBOX closed");
	is_str(cmd("RENAME", "INBOX", "x"), "NO [ALREADYEXISTS]", "mbox user: RENAME INBOX onto existing");
	is_str(cmd("CREATE", "INBOX.x", NULL), "OK", "mbox user: CREATE INBOX.x");
	is_str(list(0, 0, 0, 0, "", "INBOX*"),
	    "* LIST (\\HasChildren) \".\" \"INBOX\"\r\n"
	    "* LIST (\\HasNoChildren) \".\" \"INBOX.x\"\r\n", "mbox user: INBOX children");
	ns = save;
	buf_free(&root);
	buf_free(&inbox);
	buf_free(&err);
}

int
main(void)
{
	struct buf root = BUF_INIT, err = BUF_INIT;

	snprintf(dir, sizeof(dir), "/tmp/test_imap_folder.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	buf_printf(&root, "%s/", dir);
	ns.root = root.data;
	ns.inbox = root.data;
	ns.inbox_maildir = 1;

	is_int(imap_folder_autocreate(&ns, &err), 0, "autocreate");
	ok(exists("cur") && exists(".Sent/cur") && exists(".Drafts/new") &&
	    exists(".Trash/tmp") && exists(".Junk/cur"), "INBOX and special folders made");
	is_int(imap_folder_autocreate(&ns, &err), 0, "autocreate again");
	test_names();
	test_create();
	test_list();
	test_subscribe();
	test_status();
	test_delete_rename();
	test_junk_dirs();
	test_mbox_user();

	{
		struct buf cmdl = BUF_INIT;

		buf_printf(&cmdl, "rm -rf '%s'", dir);
		if (system(buf_str(&cmdl)) != 0)
			printf("# cleanup failed\n");
		buf_free(&cmdl);
	}
	buf_free(&root);
	buf_free(&err);
	buf_free(&out);
	buf_free(&resline);
	return done_testing();
}
