/*
 * fuzz_conf.c: libFuzzer harness for the configuration readers: the
 * input is written as hermod.conf and master.conf in a private folder
 * under /tmp and read with conf_load() and master_conf_load(); then
 * every parameter is expanded (conf_print), which exercises $name
 * expansion, loops and continuation lines.  Values are never converted
 * to numbers here: a bad number is fatal by design (msg_fatal).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "conf.h"
#include "log.h"
#include "util.h"

static char dir[64];

static void
put(const char *name, const uint8_t *d, size_t n)
{
	char path[128];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fp = fopen(path, "wb")) == NULL)
		abort();
	if (n && fwrite(d, 1, n, fp) != n)
		abort();
	fclose(fp);
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static FILE *devnull;
	struct buf err = BUF_INIT;
	struct master_service *s;
	size_t ns;
	char path[128];
	char **l;

	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/hermod-fuzz-conf-%ld", (long)getpid());
		mkdir(dir, 0700);
		/* syslog, not stderr: warnings about unknown parameters would
		 * flood libFuzzer's output */
		log_init("fuzz_conf", 0);
		devnull = fopen("/dev/null", "w");
	}
	put("hermod.conf", d, n);
	if (conf_load(dir, &err) == 0) {
		conf_print(devnull, 0, NULL);
		conf_print(devnull, 1, NULL);
		l = conf_list("mydestination");
		strv_free(l);
	}
	buf_reset(&err);
	put("master.conf", d, n);
	snprintf(path, sizeof(path), "%s/master.conf", dir);
	if (master_conf_load(path, &s, &ns, &err) == 0)
		master_conf_free(s, ns);
	buf_free(&err);
	return 0;
}
