/*
 * test_map: hash: maps on Berkeley DB (lib/map.c): build and lookup round
 * trip, case, duplicates, the table format, a missing database, atomic
 * replacement under an open reader, a hostile DB_CONFIG in the current
 * directory, relative paths.
 */
#include "map.h"
#include "log.h"
#include "util.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/test_map.XXXXXX";

static void
put(const char *name, const char *text)
{
	struct buf p = BUF_INIT;

	buf_printf(&p, "%s/%s", dir, name);
	if (write_file_atomic(buf_str(&p), text, strlen(text), 0644) < 0)
		msg_fatal("write %s: %s", buf_str(&p), strerror(errno));
	buf_free(&p);
}

static char *
spec(const char *name)
{
	static struct buf s;

	buf_reset(&s);
	buf_printf(&s, "hash:%s/%s", dir, name);
	return (char *)buf_str(&s);
}

static const char *
look(struct map *m, const char *key)
{
	static struct buf v;
	int r;

	buf_reset(&v);
	r = map_lookup(m, key, &v);
	if (r == 0)
		return "(none)";
	if (r < 0)
		return "(error)";
	return buf_str(&v);
}

static void
test_roundtrip(void)
{
	struct buf err = BUF_INIT;
	struct map *m;
	long n;

	put("aliases", "# test\npostmaster: root\nRoot: alice,\n  bob\nteam: \"|/bin/cat, x\", carol@example.org\n");
	n = map_build(spec("aliases"), MAP_FMT_ALIASES, &err);
	is_int(n, 3, "three aliases built (%s)", buf_str(&err));
	m = map_open(spec("aliases"), &err);
	ok(m != NULL, "open (%s)", buf_str(&err));
	if (!m)
		return;
	is_str(look(m, "postmaster"), "root", "postmaster");
	is_str(look(m, "root"), "alice, bob", "continuation joined");
	is_str(look(m, "ROOT"), "alice, bob", "lookup is case-insensitive");
	is_str(look(m, "Team"), "\"|/bin/cat, x\", carol@example.org", "raw value kept as written");
	is_str(look(m, "nobody"), "(none)", "missing key");
	is_str(look(m, ""), "(none)", "empty key");
	ok(!strcmp(map_spec(m), spec("aliases")), "map_spec");
	{
		struct stat st;

		ok(map_fstat(m, &st) == 0 && st.st_uid == geteuid(), "map_fstat gives the owner");
	}
	is_int(map_stale(m), 0, "not stale");
	map_close(m);
	buf_free(&err);
}

static void
test_duplicates_and_errors(void)
{
	struct buf err = BUF_INIT;
	struct map *m;

	put("dup", "a: first\nbad line\nA: second\nb: x\n");
	is_int(map_build(spec("dup"), MAP_FMT_ALIASES, &err), 2, "duplicate counted once, bad line skipped");
	m = map_open(spec("dup"), &err);
	ok(m != NULL, "open dup");
	if (m) {
		is_str(look(m, "a"), "second", "the later entry wins");
		map_close(m);
	}
	put("empty", "# nothing\n\n");
	is_int(map_build(spec("empty"), MAP_FMT_ALIASES, &err), 0, "empty source builds an empty map");
	m = map_open(spec("empty"), &err);
	ok(m != NULL, "empty map opens");
	if (m) {
		is_str(look(m, "x"), "(none)", "nothing in it");
		map_close(m);
	}
	buf_reset(&err);
	is_int(map_build(spec("nosuchsource"), MAP_FMT_ALIASES, &err), -1, "missing source");
	ok(strstr(buf_str(&err), "No such file") != NULL, "says why: %s", buf_str(&err));
	buf_reset(&err);
	ok(map_open(spec("nosuchsource"), &err) == NULL, "missing .db");
	ok(strstr(buf_str(&err), "newaliases") != NULL, "tells what to run: %s", buf_str(&err));
	buf_reset(&err);
	ok(map_open("cdb:/etc/x", &err) == NULL, "unknown type refused: %s", buf_str(&err));
	buf_reset(&err);
	ok(map_build("hash:", MAP_FMT_TABLE, &err) < 0, "empty path refused");
	buf_free(&err);
}

static void
test_table(void)
{
	struct buf err = BUF_INIT;
	struct map *m;

	put("virtual", "Alice@Example.org  alice\nlist@example.org bob, carol\n");
	is_int(map_build(spec("virtual"), MAP_FMT_TABLE, &err), 2, "table built");
	m = map_open(spec("virtual"), &err);
	ok(m != NULL, "table opens");
	if (m) {
		is_str(look(m, "alice@example.org"), "alice", "table key lower-cased");
		is_str(look(m, "LIST@example.org"), "bob, carol", "table value with spaces");
		map_close(m);
	}
	m = NULL;
	is_int(map_build_data(spec("fromdata"), MAP_FMT_ALIASES, "x: y\n", 5, &err), 1, "map_build_data");
	m = map_open(spec("fromdata"), &err);
	ok(m && !strcmp(look(m, "x"), "y"), "built from memory");
	map_close(m);
	buf_free(&err);
}

static void
test_atomic_replace(void)
{
	struct buf err = BUF_INIT, p = BUF_INIT;
	struct map *old, *new;
	int i, leftovers = 0;

	put("atomic", "k: old\n");
	map_build(spec("atomic"), MAP_FMT_ALIASES, &err);
	old = map_open(spec("atomic"), &err);
	ok(old != NULL, "open the old map");
	put("atomic", "k: new\nk2: v2\n");
	usleep(20000);	/* a different mtime even on coarse clocks */
	is_int(map_build(spec("atomic"), MAP_FMT_ALIASES, &err), 2, "rebuild while a reader has it open");
	if (old) {
		is_str(look(old, "k"), "old", "the open reader still sees the old map, whole");
		is_int(map_stale(old), 1, "map_stale sees the rebuild");
		map_close(old);
	}
	new = map_open(spec("atomic"), &err);
	ok(new && !strcmp(look(new, "k"), "new") && !strcmp(look(new, "k2"), "v2"), "a new reader sees the new map");
	map_close(new);
	/* no temporary files left behind */
	for (i = 0; i < 200; i++) {
		buf_reset(&p);
		buf_printf(&p, "%s/atomic.db.tmp%ld.%d", dir, (long)getpid(), i);
		if (access(buf_str(&p), F_OK) == 0)
			leftovers++;
	}
	is_int(leftovers, 0, "no temporary files left");
	buf_free(&err);
	buf_free(&p);
}

static void
test_cwd(void)
{
	struct buf err = BUF_INIT, sub = BUF_INIT, rel = BUF_INIT;
	char *before, *after;
	struct map *m;

	/* a DB_CONFIG in the working directory must not be read */
	buf_printf(&sub, "%s/cwd", dir);
	mkdir(buf_str(&sub), 0700);
	if (chdir(buf_str(&sub)) < 0)
		msg_fatal("chdir: %s", strerror(errno));
	put("cwd/DB_CONFIG", "set_data_dir /nonexistent/evil\nset_lg_dir /nonexistent\nbogus directive\n");
	put("cwd/rel", "r: relative\n");
	before = getcwd(NULL, 0);
	buf_adds(&rel, "hash:rel");
	is_int(map_build(buf_str(&rel), MAP_FMT_ALIASES, &err), 1, "relative path, hostile DB_CONFIG in cwd (%s)",
	    buf_str(&err));
	m = map_open(buf_str(&rel), &err);
	ok(m && !strcmp(look(m, "r"), "relative"), "relative map opens and reads");
	map_close(m);
	m = map_open(spec("aliases"), &err);
	ok(m && !strcmp(look(m, "postmaster"), "root"), "absolute map opens with DB_CONFIG in cwd");
	map_close(m);
	after = getcwd(NULL, 0);
	ok(before && after && !strcmp(before, after), "working directory restored");
	free(before);
	free(after);
	if (chdir("/") < 0)
		msg_fatal("chdir /");
	buf_free(&err);
	buf_free(&sub);
	buf_free(&rel);
}

static void
cleanup(void)
{
	struct buf cmd = BUF_INIT;

	buf_printf(&cmd, "rm -rf '%s'", dir);
	if (system(buf_str(&cmd)) != 0)
		fprintf(stderr, "cleanup failed\n");
	buf_free(&cmd);
}

int
main(void)
{
	log_init("test_map", LOG_FLAG_STDERR);
	if (!mkdtemp(dir))
		msg_fatal("mkdtemp: %s", strerror(errno));
	test_roundtrip();
	test_duplicates_and_errors();
	test_table();
	test_atomic_replace();
	test_cwd();
	cleanup();
	return done_testing();
}
