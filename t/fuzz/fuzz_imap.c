/*
 * fuzz_imap: the IMAP command reader and parser (imapd/imap_parse.c),
 * sequence sets (imap_seq.c) and modified UTF-7 (imap_utf7.c), included
 * here as the fuzz build compiles only lib/ and the harness.
 *
 * Input: byte 0 picks the modes (LITERAL+/-/none, strict CRLF, UTF8=ACCEPT,
 * session state), bytes 1..4 seed the split sizes, the rest is what the
 * client sends.  The harness answers like a server (DONE after IDLE, SASL
 * lines after AUTHENTICATE, state changes after LOGIN/SELECT/CLOSE) and
 * aborts when an invariant breaks:
 * - every feed uses at least one byte;
 * - the results are the same fed whole and fed in random pieces;
 * - the memory held stays within the limits' bound;
 * - every mailbox name is the mUTF-7 form of its UTF-8 form, every
 *   sequence set writes and parses back the same, resolved sets are
 *   sorted and disjoint;
 * - after the input, CRLFs bring the parser back to the start of a
 *   command (unless it closed) and "Z NOOP" parses;
 * - mUTF-7 decode/encode, sequence-set parse/write and
 *   imap_write_astring/string/nstring round-trip on the raw input.
 * Small limits make every limit reachable.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "../../imapd/imap_seq.c"
#include "../../imapd/imap_utf7.c"
#include "../../imapd/imap_parse.c"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static struct imap_limits flim;

struct sess {
	struct imap_parser *p;
	struct buf log;
	int state;
	int sasl_rounds;
	int closed;
	uint64_t sink;		/* keeps the AST walks from being optimised out */
};

static void
check_mailbox(const struct imap_mailbox *m)
{
	struct buf b = BUF_INIT;

	if (!m->name)
		return;
	if (!m->utf8)
		abort();
	if (imap_utf7_encode(m->utf8, strlen(m->utf8), &b) < 0)
		abort();
	if (m->inbox ? strcmp(m->name, "INBOX") != 0 : !buf_eq(&b, m->name))
		abort();
	buf_free(&b);
}

static void
check_set(struct sess *s, const struct imap_seqset *set)
{
	struct buf w = BUF_INIT, w2 = BUF_INIT;
	struct imap_seqset again, r;
	const char *why;
	size_t budget = (size_t)-1, i;

	if (set->n == 0 && !set->saved)
		return;
	imap_seq_write(&w, set);
	if (imap_seq_parse(w.data, w.len, IMAP_SEQ_ALLOW_SAVED, &budget, &again, &why) < 0)
		abort();
	imap_seq_write(&w2, &again);
	if (!buf_eq(&w2, buf_str(&w)))
		abort();
	imap_seq_resolve(set, 1000, &r);
	for (i = 0; i < r.n; i++) {
		if (r.r[i].lo < 1 || r.r[i].lo > r.r[i].hi || r.r[i].hi > 1000)
			abort();
		if (i && r.r[i].lo <= r.r[i - 1].hi + 1)
			abort();
	}
	s->sink += imap_seq_count(&r) + imap_seq_contains(&r, 7) + imap_seq_highest(set);
	imap_seq_free(&again);
	imap_seq_free(&r);
	buf_free(&w);
	buf_free(&w2);
}

static void
walk_keys(struct sess *s, const struct imap_search_key *k)
{
	for (; k; k = k->next) {
		s->sink += (uint64_t)k->type + k->num + (k->str ? strlen(k->str) : 0) +
		    (k->field ? strlen(k->field) : 0) + (k->entry ? strlen(k->entry) : 0);
		if (k->type == IMAP_SK_OR && (!k->child || !k->child->next))
			abort();
		if (k->type == IMAP_SK_NOT && !k->child)
			abort();
		if (k->type == IMAP_SK_BEFORE && (k->date.mon < 1 || k->date.mon > 12))
			abort();
		check_set(s, &k->set);
		walk_keys(s, k->child);
	}
}

static void
walk(struct sess *s, const struct imap_cmd *c)
{
	size_t i, j;

	check_mailbox(&c->select.mbox);
	check_mailbox(&c->mbox);
	check_mailbox(&c->rename.from);
	check_mailbox(&c->rename.to);
	check_mailbox(&c->list.ref);
	for (i = 0; i < c->list.npat; i++)
		check_mailbox(&c->list.pat[i]);
	check_mailbox(&c->status.mbox);
	check_mailbox(&c->append.mbox);
	check_mailbox(&c->copy.mbox);
	check_set(s, &c->select.known_uids);
	check_set(s, &c->expunge);
	check_set(s, &c->fetch.set);
	check_set(s, &c->store.set);
	check_set(s, &c->copy.set);
	for (i = 0; i < c->append.n; i++) {
		const struct imap_append_msg *m = &c->append.msg[i];

		for (j = 0; j < m->len; j++)
			s->sink += (unsigned char)m->data[j];
		if (!m->binary && memchr(m->data, 0, m->len))
			abort();
		for (j = 0; j < m->flags.nkw; j++)
			s->sink += strlen(m->flags.kw[j]);
	}
	for (i = 0; i < c->fetch.n; i++) {
		const struct imap_fetch_item *it = &c->fetch.items[i];

		if (it->partial && it->length == 0)
			abort();
		for (j = 0; j < it->sec.npart; j++)
			if (it->sec.part[j] == 0)
				abort();
		for (j = 0; j < it->sec.nfields; j++)
			s->sink += strlen(it->sec.fields[j]);
	}
	if (c->fetch.vanished && (!c->uid || !c->fetch.changedsince_set))
		abort();
	for (i = 0; i < c->id.n; i++)
		s->sink += strlen(c->id.field[i]) + (c->id.value[i] ? strlen(c->id.value[i]) : 0);
	for (i = 0; i < c->enable.n; i++)
		s->sink += strlen(c->enable.cap[i]);
	if (c->verb == IMAP_CMD_SEARCH || c->verb == IMAP_CMD_SORT || c->verb == IMAP_CMD_THREAD) {
		if (!c->search.key || c->search.key->type != IMAP_SK_AND || !c->search.key->child)
			abort();
		walk_keys(s, c->search.key);
	}
	if (c->login.user)
		s->sink += strlen(c->login.user) + strlen(c->login.pass);
	s->sink += c->auth.ir.len;
}

/* What a server would do after a result; the same in both runs. */
static void
react(struct sess *s, struct imap_result *res)
{
	struct imap_cmd *c = res->cmd;

	switch (res->kind) {
	case IMAP_R_COMMAND:
		buf_printf(&s->log, "C%s %d %d;", c->tag, c->verb, c->uid);
		walk(s, c);
		if (c->verb == IMAP_CMD_IDLE)
			imap_parser_expect(s->p, IMAP_EXPECT_DONE, c->tag);
		else if (c->verb == IMAP_CMD_AUTHENTICATE && !c->auth.has_ir) {
			s->sasl_rounds = 0;
			imap_parser_expect(s->p, IMAP_EXPECT_SASL, c->tag);
		} else if (c->verb == IMAP_CMD_LOGIN || c->verb == IMAP_CMD_AUTHENTICATE)
			s->state = IMAP_STATE_AUTH;
		else if (c->verb == IMAP_CMD_SELECT || c->verb == IMAP_CMD_EXAMINE)
			s->state = IMAP_STATE_SELECTED;
		else if (c->verb == IMAP_CMD_CLOSE || c->verb == IMAP_CMD_UNSELECT)
			s->state = IMAP_STATE_AUTH;
		else if (c->verb == IMAP_CMD_ENABLE)
			imap_parser_set_utf8(s->p, 1);
		imap_parser_set_state(s->p, s->state);
		imap_cmd_free(&res->cmd);
		break;
	case IMAP_R_CONTINUE:
		buf_adds(&s->log, "+;");
		break;
	case IMAP_R_ERROR:
	case IMAP_R_CLOSE:
		if (!res->tag || !res->status || !res->text || has_crlfnul(res->text, strlen(res->text)))
			abort();
		buf_printf(&s->log, "%c%s %s %s %s;", res->kind == IMAP_R_ERROR ? 'E' : 'X',
		    res->tag, res->status, res->code ? res->code : "-", res->text);
		if (res->kind == IMAP_R_CLOSE)
			s->closed = 1;
		break;
	case IMAP_R_DONE:
		buf_printf(&s->log, "D%s;", res->tag);
		break;
	case IMAP_R_SASL:
		buf_printf(&s->log, "S%s %d %zu;", res->tag, res->cancel,
		    res->sasl ? res->sasl->len : 0);
		/* a second round, then done */
		if (!res->cancel && ++s->sasl_rounds < 2)
			imap_parser_expect(s->p, IMAP_EXPECT_SASL, res->tag);
		else if (!res->cancel) {
			s->state = IMAP_STATE_AUTH;
			imap_parser_set_state(s->p, s->state);
		}
		break;
	}
}

static size_t
mem_bound(void)
{
	return 2 * (flim.line_max + flim.command_max + (size_t)flim.append_total_max) +
	    flim.line_max + 8192;
}

static void
feed_chunk(struct sess *s, const uint8_t *d, size_t n)
{
	while (n) {
		struct imap_result res;
		size_t used = imap_parser_feed(s->p, d, n, &res);

		if (used == 0 || used > n)
			abort();
		d += used;
		n -= used;
		react(s, &res);
		if (imap_parser_memory(s->p) > mem_bound())
			abort();
	}
}

static void
sess_init(struct sess *s, uint8_t modes)
{
	static const int states[] = {
		IMAP_STATE_NOT_AUTH, IMAP_STATE_AUTH, IMAP_STATE_SELECTED, IMAP_STATE_SELECTED,
	};

	memset(s, 0, sizeof(*s));
	s->p = imap_parser_new(&flim);
	s->state = states[(modes >> 4) & 3];
	imap_parser_set_state(s->p, s->state);
	imap_parser_set_utf8(s->p, (modes >> 3) & 1);
}

static uint32_t
rnd(uint32_t *x)
{
	/* xorshift32: deterministic pieces from the input's seed */
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* What imap_write_astring writes must parse back as the same string
 * (as both LOGIN arguments). */
static void
write_roundtrip(const uint8_t *d, size_t n)
{
	struct imap_parser *p;
	struct buf cmd = BUF_INIT;
	size_t off = 0;
	int got = 0;

	if (memchr(d, 0, n))
		return;
	buf_adds(&cmd, "W LOGIN ");
	imap_write_astring(&cmd, (const char *)d, n);
	buf_addc(&cmd, ' ');
	if (n & 1)
		imap_write_nstring(&cmd, (const char *)d, n);
	else
		imap_write_string(&cmd, (const char *)d, n);
	buf_adds(&cmd, "\r\n");
	p = imap_parser_new(NULL);
	while (off < cmd.len) {
		struct imap_result res;

		off += imap_parser_feed(p, cmd.data + off, cmd.len - off, &res);
		if (res.kind == IMAP_R_COMMAND) {
			if (strlen(res.cmd->login.user) != n || memcmp(res.cmd->login.user, d, n) ||
			    strlen(res.cmd->login.pass) != n || memcmp(res.cmd->login.pass, d, n))
				abort();
			got++;
			imap_cmd_free(&res.cmd);
		} else if (res.kind != IMAP_R_CONTINUE && res.kind != IMAP_R_MORE)
			abort();
	}
	if (got != 1 || !imap_cmd_allowed(IMAP_CMD_LOGIN, 0, IMAP_STATE_NOT_AUTH))
		abort();
	imap_parser_free(&p);
	buf_free(&cmd);
}

static void
roundtrips(const uint8_t *d, size_t n)
{
	struct buf a = BUF_INIT, b = BUF_INIT;
	struct imap_seqset set;
	const char *why;
	size_t budget = 1000;

	if (imap_utf7_decode((const char *)d, n, &a) == 0) {
		if (imap_utf7_encode(a.data ? a.data : "", a.len, &b) < 0 ||
		    b.len != n || (n && memcmp(b.data, d, n) != 0))
			abort();
	}
	buf_reset(&a);
	buf_reset(&b);
	if (imap_utf7_encode((const char *)d, n, &a) == 0) {
		if (imap_utf7_decode(a.data ? a.data : "", a.len, &b) < 0 ||
		    b.len != n || (n && memcmp(b.data, d, n) != 0))
			abort();
	}
	buf_reset(&a);
	if (imap_seq_parse((const char *)d, n, IMAP_SEQ_ALLOW_SAVED, &budget, &set, &why) == 0) {
		struct imap_seqset again;
		size_t budget2 = 1000;

		imap_seq_write(&a, &set);
		buf_reset(&b);
		if (imap_seq_parse(a.data, a.len, IMAP_SEQ_ALLOW_SAVED, &budget2, &again, &why) < 0)
			abort();
		imap_seq_write(&b, &again);
		if (!buf_eq(&b, buf_str(&a)))
			abort();
		imap_seq_free(&again);
		imap_seq_free(&set);
	}
	buf_free(&a);
	buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct sess whole, split;
	uint32_t seed;
	uint8_t modes;
	size_t off, i;

	if (n < 5)
		return 0;
	modes = d[0];
	seed = ((uint32_t)d[1] << 24 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 8 | d[4]) | 1;
	d += 5;
	n -= 5;
	roundtrips(d, n < 256 ? n : 256);
	write_roundtrip(d, n < 1100 ? n : 1100);

	imap_limits_default(&flim);
	flim.line_max = 512;
	flim.literal_max = 64;
	flim.command_max = 2048;
	flim.append_max = 512;
	flim.append_total_max = 1024;
	flim.literals_max = 8;
	flim.discard_max = 2048;
	flim.depth_max = 16;
	flim.ranges_max = 64;
	flim.search_keys_max = 64;
	flim.items_max = 16;
	flim.literal_plus = modes % 3;
	flim.strict_crlf = (modes >> 2) & 1;
	if (modes & 0x40) {
		/* sometimes the default line and literal limits, so the big
		 * paths run too; messages stay small to keep runs fast */
		imap_limits_default(&flim);
		flim.append_max = 4096;
		flim.append_total_max = 8192;
		flim.discard_max = 65536;
		flim.literal_plus = modes % 3;
		flim.strict_crlf = (modes >> 2) & 1;
	}

	sess_init(&whole, modes);
	feed_chunk(&whole, d, n);
	sess_init(&split, modes);
	for (off = 0; off < n;) {
		uint32_t r = rnd(&seed);
		size_t k = (r & 3) == 0 ? 1 + (r >> 8) % 512 : 1 + (r >> 8) % 8;

		if (k > n - off)
			k = n - off;
		feed_chunk(&split, d + off, k);
		off += k;
	}
	if (!buf_eq(&whole.log, buf_str(&split.log)))
		abort();

	/* resynchronise: CRLFs end whatever was going on (a literal is at
	 * most 65536 bytes here) */
	for (i = 0; !split.closed && imap_parser_busy(split.p); i++) {
		static uint8_t crlf[4096];

		if (crlf[0] == 0)
			for (off = 0; off < sizeof(crlf); off += 2)
				memcpy(crlf + off, "\r\n", 2);
		if (i > 64)
			abort();
		feed_chunk(&split, crlf, sizeof(crlf));
	}
	imap_parser_expect(split.p, IMAP_EXPECT_COMMAND, NULL);
	buf_reset(&split.log);
	feed_chunk(&split, (const uint8_t *)"Z NOOP\r\n", 8);
	if (split.closed ? split.log.len != 0 : !buf_eq(&split.log, "CZ 2 0;"))
		abort();

	imap_parser_free(&whole.p);
	imap_parser_free(&split.p);
	buf_free(&whole.log);
	buf_free(&split.log);
	return 0;
}
