/*
 * test_core.c: unit tests for lib/ core: buf, util parsers, conf
 * (hermod.conf syntax, expansion, master.conf) and the proto framing,
 * including messages fed one byte at a time.
 */
#include "buf.h"
#include "conf.h"
#include "proto.h"
#include "util.h"
#include "test.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

static void
test_buf(void)
{
	struct buf b = BUF_INIT;
	int i;

	is_str(buf_str(&b), "", "empty buf reads as empty string");
	buf_adds(&b, "hello");
	buf_addc(&b, ' ');
	buf_printf(&b, "%s %d", "world", 42);
	is_str(buf_str(&b), "hello world 42", "buf_adds/addc/printf");
	buf_consume(&b, 6);
	is_str(buf_str(&b), "world 42", "buf_consume");
	buf_truncate(&b, 5);
	ok(buf_eq(&b, "world"), "buf_truncate and buf_eq");
	buf_reset(&b);
	for (i = 0; i < 10000; i++)
		buf_printf(&b, "%04d", i % 10000);
	is_int(b.len, 40000, "buf grows to 40000 bytes");
	ok(b.data[b.len] == 0, "buf stays NUL-terminated");
	buf_free(&b);
}

static void
test_parsers(void)
{
	long long v;

	ok(parse_time("300", &v) == 0 && v == 300, "parse_time plain");
	ok(parse_time("5m", &v) == 0 && v == 300, "parse_time minutes");
	ok(parse_time("5d", &v) == 0 && v == 432000, "parse_time days");
	ok(parse_time("1w", &v) == 0 && v == 604800, "parse_time weeks");
	ok(parse_time("5x", &v) < 0, "parse_time rejects unknown unit");
	ok(parse_time("", &v) < 0 && parse_time("-1", &v) < 0, "parse_time rejects empty and negative");
	ok(parse_time("99999999999999999999", &v) < 0, "parse_time rejects overflow");
	ok(parse_size("10k", &v) == 0 && v == 10240, "parse_size k");
	ok(parse_bool("yes") == 1 && parse_bool("No") == 0 && parse_bool("maybe") < 0, "parse_bool");
	ok(has_crlfnul("a\nb", 3) && has_crlfnul("a\0b", 3) && !has_crlfnul("ab", 2), "has_crlfnul");
	{
		char **v2 = str_split(" a, b ,,c ", ", ");

		ok(strv_len(v2) == 3 && !strcmp(v2[2], "c"), "str_split skips empty fields");
		strv_free(v2);
	}
}

static char tmpdir[] = "/tmp/hermod-test-core-XXXXXX";

static void
write_text(const char *name, const char *text)
{
	struct buf p = BUF_INIT;

	buf_printf(&p, "%s/%s", tmpdir, name);
	if (write_file_atomic(buf_str(&p), text, strlen(text), 0644) < 0)
		printf("# write %s: %s\n", buf_str(&p), strerror(errno));
	buf_free(&p);
}

static void
test_conf(void)
{
	struct buf err = BUF_INIT, p = BUF_INIT;
	struct master_service *s;
	size_t n;
	char **l;

	if (!mkdtemp(tmpdir)) {
		ok(0, "mkdtemp");
		return;
	}
	write_text("hermod.conf",
	    "# comment\n"
	    "mydomain = test.example\n"
	    "myhostname = mx.$mydomain\n"
	    "mydestination = $myhostname,\n"
	    "    localhost\n"
	    "queue_directory = ${config_directory}/spool\n"
	    "no_such_parameter = 1\n"
	    "forward_path = $home/.forward, $mydomain\n");
	ok(conf_load(tmpdir, &err) == 0, "conf_load a good file (%s)", buf_str(&err));
	is_str(conf_str("myhostname"), "mx.test.example", "$name expansion");
	is_str(conf_str("mydestination"), "mx.test.example, localhost", "continuation line");
	buf_printf(&p, "%s/spool", tmpdir);
	is_str(conf_str("queue_directory"), buf_str(&p), "${config_directory} expansion");
	is_str(conf_str("forward_path"), "$home/.forward, test.example", "unknown $name kept literally");
	is_str(conf_str("myorigin"), "test.example", "default expands through a set value");
	is_int(conf_time("maximal_queue_lifetime"), 5 * 86400, "default time value");
	l = conf_list("mydestination");
	ok(strv_len(l) == 2, "conf_list splits");
	strv_free(l);
	conf_set("mydomain", "other.test");
	is_str(conf_str("myhostname"), "mx.other.test", "conf_set clears the expansion cache");

	write_text("hermod.conf", "  leading = continuation\n");
	buf_reset(&err);
	ok(conf_load(tmpdir, &err) < 0, "continuation without a parameter is an error");
	write_text("hermod.conf", "novalue\n");
	buf_reset(&err);
	ok(conf_load(tmpdir, &err) < 0 && strstr(buf_str(&err), ":1:"), "missing '=' names the line");
	write_text("hermod.conf", "mydomain = a\nmyorigin = $myorigin\n");
	buf_reset(&err);
	ok(conf_load(tmpdir, &err) == 0, "self-reference loads");
	ok(conf_str("myorigin") != NULL, "self-reference expands without recursing forever");

	write_text("master.conf",
	    "# name listen type private limit program\n"
	    "pickup public/pickup unix n 1 pickup\n"
	    "local  private/local unix y - local -x\n");
	buf_reset(&p);
	buf_printf(&p, "%s/master.conf", tmpdir);
	buf_reset(&err);
	ok(master_conf_load(buf_str(&p), &s, &n, &err) == 0 && n == 2, "master.conf loads");
	if (n == 2) {
		is_str(s[1].argv[1], "-x", "master.conf arguments");
		is_int(s[1].proclimit, 100, "- means default_process_limit");
		ok(s[1].private_ && !s[0].private_, "private flag");
	}
	master_conf_free(s, n);
	write_text("master.conf", "a x unix n 1 p\na y unix n 1 p\n");
	buf_reset(&err);
	ok(master_conf_load(buf_str(&p), &s, &n, &err) < 0, "duplicate service refused");
	write_text("master.conf", "a x tcp n 1 p\n");
	buf_reset(&err);
	ok(master_conf_load(buf_str(&p), &s, &n, &err) < 0, "bad type refused");
	buf_free(&err);
	buf_free(&p);
}

static void
test_proto(void)
{
	struct proto_builder b;
	struct proto_msg m;
	struct buf in = BUF_INIT;
	size_t i;
	int r = 0;
	int sv[2];

	proto_msg_init(&m);
	proto_build_start(&b, PROTO_DELIVER_STATUS);
	proto_build_adds(&b, "123");
	proto_build_adds(&b, "sent");
	proto_build_add(&b, "a\0b", 3);
	proto_build_finish(&b);
	/* byte at a time */
	for (i = 0; i < b.out.len; i++) {
		buf_addc(&in, b.out.data[i]);
		r = proto_parse(&in, &m);
		if (r != 0)
			break;
	}
	ok(r == 1 && i == b.out.len - 1, "message parses only when complete");
	ok(m.type == PROTO_DELIVER_STATUS && m.nfields == 3, "type and field count");
	is_str(proto_field(&m, 1), "sent", "field value");
	ok(m.fields[2].len == 3 && m.fields[2].data[1] == 0, "binary field kept");
	is_str(proto_field(&m, 9), "", "missing field is empty");
	ok(in.len == 0, "parsed bytes consumed");
	/* corruptions */
	buf_reset(&in);
	buf_add(&in, b.out.data, b.out.len);
	in.data[2] = 99;
	ok(proto_parse(&in, &m) == -1, "bad version refused");
	buf_reset(&in);
	buf_add(&in, b.out.data, b.out.len);
	in.data[12] = 0x7f;
	ok(proto_parse(&in, &m) == -1, "field length past the end refused");
	buf_reset(&in);
	buf_add(&in, b.out.data, b.out.len);
	in.data[3] = PROTO_TYPE_MAX;
	ok(proto_parse(&in, &m) == -1, "unknown type refused");
	buf_reset(&in);
	buf_add(&in, b.out.data, b.out.len);
	in.data[8] = 0x7f;
	ok(proto_parse(&in, &m) == -1, "oversized payload refused before buffering");
	proto_build_free(&b);
	/* over a socket */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) {
		ok(proto_send_strs(sv[0], PROTO_QMGR_NEW, "ABC", (char *)NULL) == 0, "send");
		ok(proto_recv(sv[1], &m) == 1 && m.type == PROTO_QMGR_NEW && !strcmp(proto_field(&m, 0), "ABC"), "recv");
		close(sv[0]);
		ok(proto_recv(sv[1], &m) == 0, "clean EOF");
		close(sv[1]);
	}
	proto_msg_free(&m);
	buf_free(&in);
}

int
main(void)
{
	log_init("test_core", LOG_FLAG_STDERR);
	test_buf();
	test_parsers();
	test_conf();
	test_proto();
	if (tmpdir[sizeof(tmpdir) - 2] != 'X') {
		struct buf cmd = BUF_INIT;

		buf_printf(&cmd, "rm -rf '%s'", tmpdir);
		(void)!system(buf_str(&cmd));
		buf_free(&cmd);
	}
	return done_testing();
}
