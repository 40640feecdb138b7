/*
 * imap_parse: the IMAP4rev1 command reader and parser (RFC 3501) with
 * the extensions hermod's imapd speaks: LITERAL+/LITERAL- (RFC 7888),
 * BINARY (3516), MULTIAPPEND (3502), UIDPLUS (4315), ESEARCH (4731),
 * SEARCHRES (5182), CONDSTORE/QRESYNC (7162), LIST-EXTENDED (5258),
 * LIST-STATUS (5819), SPECIAL-USE (6154), ENABLE (5161), ID (2971),
 * SASL-IR (4959), IDLE (2177), COMPRESS (4978), SORT/THREAD (5256),
 * ESORT (5267), QUOTA (9208), NAMESPACE (2342), UNSELECT (3691),
 * MOVE (6851), WITHIN (5032), UTF8=ACCEPT mailbox names (6855).
 *
 * Bytes go in as they arrive, in any split; out come continuation
 * requests, rejections, and complete commands as typed structs whose
 * arguments are already validated.  Every limit is a field of struct
 * imap_limits.  No I/O, no global state.  doc/imap-parser.md has the
 * state machine and the decisions.
 */
#ifndef HERMOD_IMAP_PARSE_H
#define HERMOD_IMAP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "imap_seq.h"

/* ---- limits ---- */

enum imap_literal_plus {
	IMAP_LITERAL_PLUS = 0,	/* {n+} of any size (LITERAL+) */
	IMAP_LITERAL_MINUS,	/* {n+} only up to 4096 bytes (LITERAL-) */
	IMAP_LITERAL_NONE,	/* {n+} refused */
};

struct imap_limits {
	size_t line_max;	/* 65536: command text, all its lines, without CRLFs and literal data */
	size_t literal_max;	/* 65536: one literal other than an APPEND message */
	size_t command_max;	/* 1048576: command text plus its non-message literals */
	uint64_t append_max;	/* 67108864: one APPEND message (set it from the server's size limit) */
	uint64_t append_total_max; /* 67108864: all the messages of one APPEND */
	size_t literals_max;	/* 256: literals in one command */
	uint64_t discard_max;	/* 16777216: refused {n+} data read and dropped per command; more closes the connection */
	unsigned depth_max;	/* 100: nesting of parentheses and of search OR/NOT */
	size_t ranges_max;	/* 10000: sequence-set ranges in one command */
	size_t search_keys_max;	/* 1000: search keys in one command */
	size_t items_max;	/* 1000: elements of any one list (flags, FETCH items, header names, patterns, ...) */
	int literal_plus;	/* enum imap_literal_plus, default IMAP_LITERAL_PLUS */
	int strict_crlf;	/* 0 (default): a bare LF also ends a line */
};

void imap_limits_default(struct imap_limits *l);

/* ---- commands and states ---- */

enum imap_state {
	IMAP_STATE_NOT_AUTH = 1,
	IMAP_STATE_AUTH = 2,
	IMAP_STATE_SELECTED = 4,
	IMAP_STATE_LOGOUT = 8,
};

enum imap_verb {
	IMAP_CMD_NONE = 0,
	/* any state */
	IMAP_CMD_CAPABILITY, IMAP_CMD_NOOP, IMAP_CMD_LOGOUT, IMAP_CMD_ID,
	/* not authenticated */
	IMAP_CMD_STARTTLS, IMAP_CMD_AUTHENTICATE, IMAP_CMD_LOGIN,
	/* authenticated (and selected) */
	IMAP_CMD_SELECT, IMAP_CMD_EXAMINE, IMAP_CMD_CREATE, IMAP_CMD_DELETE,
	IMAP_CMD_RENAME, IMAP_CMD_SUBSCRIBE, IMAP_CMD_UNSUBSCRIBE,
	IMAP_CMD_LIST, IMAP_CMD_LSUB, IMAP_CMD_STATUS, IMAP_CMD_APPEND,
	IMAP_CMD_NAMESPACE, IMAP_CMD_ENABLE, IMAP_CMD_IDLE, IMAP_CMD_COMPRESS,
	IMAP_CMD_GETQUOTA, IMAP_CMD_GETQUOTAROOT, IMAP_CMD_SETQUOTA,
	/* selected */
	IMAP_CMD_CHECK, IMAP_CMD_CLOSE, IMAP_CMD_UNSELECT, IMAP_CMD_EXPUNGE,
	IMAP_CMD_SEARCH, IMAP_CMD_FETCH, IMAP_CMD_STORE, IMAP_CMD_COPY,
	IMAP_CMD_MOVE, IMAP_CMD_SORT, IMAP_CMD_THREAD,
	IMAP_CMD_COUNT
};

/* The states (IMAP_STATE_* bits) in which a command is valid; the UID
 * forms are valid only when selected.  ENABLE is authenticated-only
 * (RFC 5161: before any SELECT). */
unsigned imap_cmd_states(int verb, int uid);
int imap_cmd_allowed(int verb, int uid, int state);
const char *imap_cmd_name(int verb);	/* "FETCH"; "?" when out of range */

/* ---- argument types ---- */

struct imap_mailbox {
	char *name;	/* modified UTF-7 as on the wire; "INBOX" in any case becomes "INBOX" */
	char *utf8;	/* the same name in UTF-8 */
	int inbox;
};

/* system flags */
#define IMAP_FLAG_ANSWERED	0x01
#define IMAP_FLAG_FLAGGED	0x02
#define IMAP_FLAG_DELETED	0x04
#define IMAP_FLAG_SEEN		0x08
#define IMAP_FLAG_DRAFT		0x10

struct imap_flags {
	unsigned sys;		/* IMAP_FLAG_* */
	char **kw;		/* keywords (atoms) as sent */
	size_t nkw;
};

struct imap_date {
	int year, mon, day;	/* mon 1..12, day valid for the month */
};

struct imap_datetime {
	int64_t t;		/* seconds since the epoch, UTC */
	int zone;		/* minutes east of UTC, as sent */
};

/* SELECT / EXAMINE */
struct imap_select {
	struct imap_mailbox mbox;
	int condstore;		/* (CONDSTORE) */
	int qresync;		/* (QRESYNC (...)) */
	uint32_t uidvalidity;
	uint64_t modseq;
	struct imap_seqset known_uids;	/* n == 0: not given */
	struct imap_seqset match_seq, match_uids; /* n == 0: not given */
};

/* LIST selection and return options */
#define IMAP_LIST_SEL_SUBSCRIBED	0x01
#define IMAP_LIST_SEL_REMOTE		0x02
#define IMAP_LIST_SEL_RECURSIVEMATCH	0x04
#define IMAP_LIST_SEL_SPECIAL_USE	0x08
#define IMAP_LIST_RET_SUBSCRIBED	0x01
#define IMAP_LIST_RET_CHILDREN		0x02
#define IMAP_LIST_RET_SPECIAL_USE	0x04
#define IMAP_LIST_RET_STATUS		0x08

/* STATUS items (also LIST RETURN (STATUS (...))) */
#define IMAP_STATUS_MESSAGES		0x01
#define IMAP_STATUS_RECENT		0x02
#define IMAP_STATUS_UIDNEXT		0x04
#define IMAP_STATUS_UIDVALIDITY		0x08
#define IMAP_STATUS_UNSEEN		0x10
#define IMAP_STATUS_HIGHESTMODSEQ	0x20
#define IMAP_STATUS_SIZE		0x40
#define IMAP_STATUS_DELETED		0x80

/* LIST and LSUB (LSUB uses ref and one pattern) */
struct imap_list {
	int extended;		/* selection or return options or several patterns: answer as LIST-EXTENDED */
	unsigned sel;		/* IMAP_LIST_SEL_* */
	unsigned ret;		/* IMAP_LIST_RET_* */
	unsigned status;	/* IMAP_STATUS_* for IMAP_LIST_RET_STATUS */
	struct imap_mailbox ref;
	struct imap_mailbox *pat;	/* patterns ("%" and "*" kept) */
	size_t npat;
};

struct imap_status {
	struct imap_mailbox mbox;
	unsigned items;		/* IMAP_STATUS_*, at least one */
};

struct imap_append_msg {
	struct imap_flags flags;
	int has_date;
	struct imap_datetime date;
	const char *data;	/* into the command; not NUL-terminated */
	size_t len;
	int binary;		/* sent as ~{n} (RFC 3516): may hold NUL */
};

struct imap_append {
	struct imap_mailbox mbox;
	struct imap_append_msg *msg;	/* one, or more with MULTIAPPEND */
	size_t n;
};

/* FETCH */
enum imap_fetch_att {
	IMAP_FETCH_ENVELOPE = 1, IMAP_FETCH_FLAGS, IMAP_FETCH_INTERNALDATE,
	IMAP_FETCH_RFC822, IMAP_FETCH_RFC822_HEADER, IMAP_FETCH_RFC822_SIZE,
	IMAP_FETCH_RFC822_TEXT,
	IMAP_FETCH_BODY,		/* BODY without a section: non-extensible BODYSTRUCTURE */
	IMAP_FETCH_BODYSTRUCTURE, IMAP_FETCH_UID,
	IMAP_FETCH_BODY_SECTION,	/* BODY[...] and BODY.PEEK[...] */
	IMAP_FETCH_BINARY,		/* BINARY[...] and BINARY.PEEK[...] */
	IMAP_FETCH_BINARY_SIZE, IMAP_FETCH_MODSEQ,
};

enum imap_fetch_macro {
	IMAP_FETCH_MACRO_NONE = 0, IMAP_FETCH_MACRO_ALL, IMAP_FETCH_MACRO_FAST,
	IMAP_FETCH_MACRO_FULL,
};

enum imap_section_text {
	IMAP_SECTION_ALL = 0,		/* [] or [1.2]: the whole (part) */
	IMAP_SECTION_HEADER, IMAP_SECTION_HEADER_FIELDS,
	IMAP_SECTION_HEADER_FIELDS_NOT, IMAP_SECTION_TEXT, IMAP_SECTION_MIME,
};

struct imap_section {
	uint32_t *part;		/* 1.2.3 -> {1, 2, 3} */
	size_t npart;
	int text;		/* enum imap_section_text */
	char **fields;		/* HEADER.FIELDS[.NOT] names, as sent */
	size_t nfields;
};

struct imap_fetch_item {
	int att;		/* enum imap_fetch_att */
	int peek;		/* BODY.PEEK / BINARY.PEEK */
	struct imap_section sec;	/* BODY_SECTION, BINARY, BINARY_SIZE */
	int partial;		/* <offset.length> given */
	uint32_t offset, length;	/* length >= 1 */
};

struct imap_fetch {
	struct imap_seqset set;
	int macro;		/* enum imap_fetch_macro, already expanded into items */
	struct imap_fetch_item *items;
	size_t n;
	int changedsince_set;	/* (CHANGEDSINCE n) */
	uint64_t changedsince;
	int vanished;		/* (VANISHED), only with UID and CHANGEDSINCE */
};

/* STORE */
enum imap_store_op { IMAP_STORE_SET = 0, IMAP_STORE_ADD, IMAP_STORE_REMOVE };

struct imap_store {
	struct imap_seqset set;
	int op;			/* enum imap_store_op */
	int silent;		/* .SILENT */
	struct imap_flags flags;
	int unchangedsince_set;	/* (UNCHANGEDSINCE n) */
	uint64_t unchangedsince;
};

struct imap_copy {		/* COPY and MOVE */
	struct imap_seqset set;
	struct imap_mailbox mbox;
};

/* SEARCH keys: a tree.  The root is an AND whose children are the keys
 * of the command; "(...)" is an AND; OR has two children, NOT one. */
enum imap_sk {
	IMAP_SK_AND = 1, IMAP_SK_OR, IMAP_SK_NOT,
	IMAP_SK_ALL, IMAP_SK_ANSWERED, IMAP_SK_DELETED, IMAP_SK_DRAFT,
	IMAP_SK_FLAGGED, IMAP_SK_NEW, IMAP_SK_OLD, IMAP_SK_RECENT, IMAP_SK_SEEN,
	IMAP_SK_UNANSWERED, IMAP_SK_UNDELETED, IMAP_SK_UNDRAFT,
	IMAP_SK_UNFLAGGED, IMAP_SK_UNSEEN,
	IMAP_SK_KEYWORD, IMAP_SK_UNKEYWORD,		/* str */
	IMAP_SK_BCC, IMAP_SK_BODY, IMAP_SK_CC, IMAP_SK_FROM,
	IMAP_SK_SUBJECT, IMAP_SK_TEXT, IMAP_SK_TO,	/* str */
	IMAP_SK_HEADER,					/* field, str */
	IMAP_SK_BEFORE, IMAP_SK_ON, IMAP_SK_SINCE,	/* date (internal) */
	IMAP_SK_SENTBEFORE, IMAP_SK_SENTON, IMAP_SK_SENTSINCE, /* date (Date:) */
	IMAP_SK_LARGER, IMAP_SK_SMALLER,		/* num */
	IMAP_SK_OLDER, IMAP_SK_YOUNGER,			/* num seconds (WITHIN) */
	IMAP_SK_SEQSET, IMAP_SK_UID,			/* set */
	IMAP_SK_MODSEQ,					/* num, entry, entry_type */
};

enum imap_entry_type {
	IMAP_ENTRY_NONE = 0, IMAP_ENTRY_PRIV, IMAP_ENTRY_SHARED, IMAP_ENTRY_ALL,
};

struct imap_search_key {
	int type;		/* enum imap_sk */
	char *str;
	char *field;		/* HEADER field name */
	struct imap_date date;
	uint64_t num;
	struct imap_seqset set;
	char *entry;		/* MODSEQ "/flags/\Seen" or NULL */
	int entry_type;		/* enum imap_entry_type */
	struct imap_search_key *child;	/* AND, OR, NOT */
	struct imap_search_key *next;	/* sibling */
};

/* ESEARCH / ESORT RETURN options */
#define IMAP_SEARCH_RET_MIN	0x01
#define IMAP_SEARCH_RET_MAX	0x02
#define IMAP_SEARCH_RET_ALL	0x04
#define IMAP_SEARCH_RET_COUNT	0x08
#define IMAP_SEARCH_RET_SAVE	0x10

enum imap_sort_key {
	IMAP_SORT_ARRIVAL = 1, IMAP_SORT_CC, IMAP_SORT_DATE, IMAP_SORT_FROM,
	IMAP_SORT_SIZE, IMAP_SORT_SUBJECT, IMAP_SORT_TO,
	IMAP_SORT_DISPLAYFROM, IMAP_SORT_DISPLAYTO,
};

struct imap_sort_crit {
	int key;		/* enum imap_sort_key */
	int reverse;
};

enum imap_thread_alg {
	IMAP_THREAD_ORDEREDSUBJECT = 1, IMAP_THREAD_REFERENCES,
};

/* SEARCH, SORT, THREAD */
struct imap_search {
	char *charset;		/* upper-cased; NULL for SEARCH without CHARSET */
	int ret_set;		/* RETURN (...) given: answer with ESEARCH */
	unsigned ret;		/* IMAP_SEARCH_RET_*; "RETURN ()" is ALL */
	struct imap_search_key *key;	/* root AND */
	struct imap_sort_crit *sort;	/* SORT */
	size_t nsort;
	int thread;		/* THREAD: enum imap_thread_alg */
};

/* The command.  Only the member for verb is filled; the rest stay zero. */
struct imap_cmd {
	char *tag;
	int verb;		/* enum imap_verb */
	int uid;		/* "UID" prefix (COPY MOVE FETCH STORE SEARCH EXPUNGE SORT THREAD) */
	struct {
		char *mech;	/* upper-cased */
		int has_ir;	/* SASL-IR initial response given ("=" is empty) */
		struct buf ir;	/* decoded */
	} auth;
	struct {
		char *user, *pass;
	} login;
	struct imap_select select;	/* SELECT EXAMINE */
	struct imap_mailbox mbox;	/* CREATE DELETE SUBSCRIBE UNSUBSCRIBE GETQUOTAROOT */
	struct {
		struct imap_mailbox from, to;
	} rename;
	struct imap_list list;		/* LIST LSUB */
	struct imap_status status;
	struct imap_append append;
	struct {
		char **cap;	/* upper-cased */
		size_t n;
	} enable;
	struct {
		int nil;	/* ID NIL */
		char **field;	/* field names as sent */
		char **value;	/* NULL for NIL */
		size_t n;
	} id;
	char *quota_root;		/* GETQUOTA SETQUOTA */
	struct imap_seqset expunge;	/* UID EXPUNGE */
	struct imap_search search;	/* SEARCH SORT THREAD */
	struct imap_fetch fetch;
	struct imap_store store;
	struct imap_copy copy;		/* COPY MOVE */
	struct buf raw;			/* owns the APPEND message data */
};

void imap_cmd_free(struct imap_cmd **cmd);

/* ---- the reader ---- */

enum imap_result_kind {
	IMAP_R_MORE = 0,	/* all input used, nothing to do yet */
	IMAP_R_COMMAND,		/* cmd is complete */
	IMAP_R_CONTINUE,	/* send "+ text" now: the client waits to send a literal */
	IMAP_R_ERROR,		/* send "tag status [code] text"; the session goes on */
	IMAP_R_CLOSE,		/* send "tag status [code] text" (tag may be "*"), then "* BYE", and close;
				 * from then on the parser drops all input */
	IMAP_R_DONE,		/* the DONE that ends IDLE (imap_parser_expect) */
	IMAP_R_SASL,		/* one SASL response line (imap_parser_expect) */
};

struct imap_result {
	int kind;		/* enum imap_result_kind */
	struct imap_cmd *cmd;	/* COMMAND: the caller's, imap_cmd_free() it */
	const char *tag;	/* ERROR, CLOSE: the command's tag or "*"; DONE, SASL: the expected tag */
	int verb;		/* ERROR, CLOSE: the command when it was recognised */
	int uid;
	const char *status;	/* ERROR, CLOSE: "BAD" or "NO" */
	const char *code;	/* ERROR, CLOSE: response code without brackets, or NULL */
	const char *text;	/* ERROR, CLOSE, CONTINUE: human-readable text */
	int cancel;		/* SASL: the client sent "*" */
	const struct buf *sasl;	/* SASL: the decoded response */
};

/* What the next line is (after the server answered IDLE with "+" or
 * sent an AUTHENTICATE challenge); it returns to commands by itself
 * after that line. */
enum imap_expect {
	IMAP_EXPECT_COMMAND = 0, IMAP_EXPECT_DONE, IMAP_EXPECT_SASL,
};

struct imap_parser;

/* lim NULL: the defaults.  The parser starts in IMAP_STATE_NOT_AUTH. */
struct imap_parser *imap_parser_new(const struct imap_limits *lim);
void imap_parser_free(struct imap_parser **p);

/* Feed bytes; returns how many were used.  It stops after the first
 * result other than IMAP_R_MORE, so call again with the rest (which
 * must be thrown away instead after STARTTLS and COMPRESS).  Pointers in
 * res stay valid until the next call. */
size_t imap_parser_feed(struct imap_parser *p, const void *data, size_t n,
    struct imap_result *res);

/* The session state: a literal for a command not valid in it is refused
 * before it is read (the server still checks imap_cmd_allowed). */
void imap_parser_set_state(struct imap_parser *p, int state);
/* RFC 6855: mailbox names are UTF-8 once UTF8=ACCEPT is enabled. */
void imap_parser_set_utf8(struct imap_parser *p, int on);
void imap_parser_expect(struct imap_parser *p, int what, const char *tag);

/* 1 when part of a command (or literal) has been read. */
int imap_parser_busy(const struct imap_parser *p);
/* Bytes the parser holds now (for tests of the memory bound). */
size_t imap_parser_memory(const struct imap_parser *p);

/* ---- writing strings in responses ---- */

/* A quoted string when it can be one (7-bit, no CR, LF or NUL, at most
 * 1024 bytes), else a literal "{n}\r\n...". */
void imap_write_string(struct buf *out, const char *s, size_t n);
/* As imap_write_string; NIL when s is NULL. */
void imap_write_nstring(struct buf *out, const char *s, size_t n);
/* An atom when it can be one (and is not NIL), else as imap_write_string. */
void imap_write_astring(struct buf *out, const char *s, size_t n);

#endif
