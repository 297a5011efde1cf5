/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * parser.h - incremental, I/O-free IMAP response parser (RFC 3501/9051).
 *
 * The caller owns the input bytes and feeds them as they arrive; the parser
 * keeps its position between calls and never starts over. One call returns
 * at most one complete response. Everything a response refers to (strings,
 * argument trees) lives in a per-response arena owned by the parser and
 * stays valid until the next imap_parser_feed() call.
 *
 * Limits (struct imap_parser_limits) bound every allocation: the length of
 * a response outside streamed literals, the size of literals kept in
 * memory, the size of streamed body literals, the list nesting depth and the
 * number of arguments. Any violation is a parse error (-1): the connection
 * must then be dropped; the parser never crashes and never allocates more
 * than the limits allow.
 *
 * Message bodies are not held in memory: a literal that is the value of a
 * FETCH item BODY[...] / BODY.PEEK[...] / BINARY[...] / RFC822 (but not
 * BODY[HEADER...] sections, which stay in memory subject to
 * max_literal) is handed to the body sink in chunks as it arrives. The
 * FETCH response then carries the item with type IMAP_ARG_LITERAL_STREAMED
 * (the size only).
 */
#ifndef TB_IMAP_PARSER_H
#define TB_IMAP_PARSER_H

#include "common.h"

struct imap_parser;

struct imap_parser_limits {
	size_t max_line;          /* bytes of one response outside literals and streamed bodies */
	size_t max_literal;       /* bytes of a literal kept in memory */
	uint64_t max_body;        /* bytes of a streamed body literal */
	unsigned max_depth;       /* list nesting */
	unsigned max_args;        /* total arguments in one response */
};
/* Defaults: 1 MiB line, 1 MiB literal, 1 GiB body, depth 32, 1,000,000 args. */
void imap_parser_limits_default(struct imap_parser_limits *l_r);

/*
 * Body sink: called while a streamed literal arrives. seq is the message
 * sequence number of the FETCH response, section the item name as sent by
 * the server (e.g. "BODY[]"), size the announced literal size. data is called
 * with each chunk (total == size), end once after the last byte. A sink that
 * returns -1 makes the parser fail with "body sink failed" (the caller knows
 * why). UID is not known yet when begin is called (servers may send it after
 * the body), so sinks key on seq and the caller resolves the UID when the
 * whole FETCH response is returned.
 */
struct imap_body_sink {
	int (*begin)(void *ctx, uint32_t seq, const char *section, uint64_t size);
	int (*data)(void *ctx, const void *p, size_t n);
	int (*end)(void *ctx);
	void *ctx;
};

struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits);
void imap_parser_free(struct imap_parser **p);
/* NULL sink: streamed bodies are discarded (their size is still reported). */
void imap_parser_set_body_sink(struct imap_parser *p, const struct imap_body_sink *sink);
/* Reason of the last -1, e.g. "literal of 9999999999 bytes exceeds limit". */
const char *imap_parser_error(const struct imap_parser *p);

enum imap_arg_type {
	IMAP_ARG_NIL,
	IMAP_ARG_ATOM,            /* includes flags like \Seen, numbers, sections like BODY[HEADER] */
	IMAP_ARG_STRING,          /* quoted string, unescaped */
	IMAP_ARG_LITERAL,         /* literal kept in memory */
	IMAP_ARG_LITERAL_STREAMED,/* literal handed to the body sink; size only */
	IMAP_ARG_LIST,
};

struct imap_arg {
	enum imap_arg_type type;
	/* private: read through the accessors below */
	union {
		struct { const char *str; size_t len; } s;  /* ATOM, STRING, LITERAL: NUL-terminated too */
		struct { struct imap_arg *args; size_t count; } list;
		uint64_t size;                               /* LITERAL_STREAMED */
	} u;
};

/* Checked accessors: return false (and leave outputs alone) on a type mismatch. */
bool imap_arg_atom(const struct imap_arg *a, const char **s_r, size_t *len_r);
/* ATOM, STRING or LITERAL: the bytes (NUL-terminated; may contain NUL for literals) */
bool imap_arg_string(const struct imap_arg *a, const char **s_r, size_t *len_r);
/* astring/nstring helpers: like imap_arg_string but NIL gives s_r = NULL */
bool imap_arg_nstring(const struct imap_arg *a, const char **s_r, size_t *len_r);
bool imap_arg_list(const struct imap_arg *a, const struct imap_arg **args_r, size_t *count_r);
/* Atom of digits only, no overflow of the given max */
bool imap_arg_number(const struct imap_arg *a, uint64_t max, uint64_t *n_r);
bool imap_arg_atom_equals(const struct imap_arg *a, const char *word); /* case-insensitive */
bool imap_arg_is_nil(const struct imap_arg *a);

enum imap_resp_kind {
	IMAP_RESP_TAGGED,         /* tag OK/NO/BAD resp-text */
	IMAP_RESP_UNTAGGED,       /* "* ..." */
	IMAP_RESP_CONTINUATION,   /* "+ ..." */
};

enum imap_status {
	IMAP_STATUS_NONE,         /* not a status response (data) */
	IMAP_STATUS_OK, IMAP_STATUS_NO, IMAP_STATUS_BAD,
	IMAP_STATUS_PREAUTH, IMAP_STATUS_BYE,
};

/* resp-text-code: [CODE args] in status responses */
enum imap_code {
	IMAP_CODE_NONE, IMAP_CODE_OTHER,
	IMAP_CODE_ALERT, IMAP_CODE_CAPABILITY, IMAP_CODE_UIDVALIDITY,
	IMAP_CODE_UIDNEXT, IMAP_CODE_HIGHESTMODSEQ, IMAP_CODE_NOMODSEQ,
	IMAP_CODE_APPENDUID, IMAP_CODE_COPYUID, IMAP_CODE_PERMANENTFLAGS,
	IMAP_CODE_CLOSED, IMAP_CODE_READ_ONLY, IMAP_CODE_READ_WRITE,
	IMAP_CODE_TRYCREATE, IMAP_CODE_NONEXISTENT, IMAP_CODE_AUTHENTICATIONFAILED,
	IMAP_CODE_UNAVAILABLE, IMAP_CODE_ALREADYEXISTS, IMAP_CODE_MODIFIED,
};

struct imap_resp_code {
	enum imap_code code;
	const char *name;          /* code atom as sent */
	uint64_t num;              /* UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ */
	uint32_t uidvalidity;      /* APPENDUID, COPYUID */
	const char *uidset;        /* APPENDUID: the uid(s); COPYUID: source set */
	const char *uidset2;       /* COPYUID: destination set */
	const struct imap_arg *args; size_t n_args; /* CAPABILITY atoms, PERMANENTFLAGS list items, MODIFIED set, other */
};

struct imap_response {
	enum imap_resp_kind kind;
	const char *tag;           /* TAGGED only */
	enum imap_status status;   /* OK/NO/BAD/PREAUTH/BYE, or NONE for data */
	struct imap_resp_code code;/* code.code == IMAP_CODE_NONE if absent */
	const char *text;          /* human-readable resp-text (status responses, continuation) */
	/* untagged data: "* 23 EXISTS" gives number 23, has_number, keyword "EXISTS";
	 * "* CAPABILITY ..." gives keyword "CAPABILITY" and args the rest. */
	bool has_number;
	uint32_t number;
	const char *keyword;       /* upper-cased */
	const struct imap_arg *args; size_t n_args;  /* everything after the keyword */
};

/*
 * Feed len bytes at data. Sets *consumed_r to the bytes used (the caller
 * drops them from its buffer and feeds the rest again later).
 * Returns 1 and sets *resp_r when a complete response was parsed (valid
 * until the next feed), 0 when all bytes were consumed and more are needed,
 * -1 on error (see imap_parser_error; the parser is then unusable).
 */
int imap_parser_feed(struct imap_parser *p, const void *data, size_t len,
		     size_t *consumed_r, const struct imap_response **resp_r)
	ATTR_WARN_UNUSED;

/* ---- interpretation of common untagged data (src/imap/response.c) ---- */

struct imap_fetch {
	uint32_t seq;
	uint32_t uid;              /* 0 if absent */
	bool has_flags; unsigned flags;        /* MF_* (util/flags.h); other flags ignored */
	bool has_modseq; uint64_t modseq;
	bool has_size; uint64_t size;          /* RFC822.SIZE */
	bool has_date; int64_t internaldate;   /* unix seconds */
	const char *emailid;                   /* EMAILID (RFC 8474) or NULL */
	bool has_gm_msgid; uint64_t gm_msgid;  /* X-GM-MSGID (Gmail) */
	bool has_body; uint64_t body_size;     /* streamed body item seen */
	const char *header; size_t header_len; /* BODY[HEADER] / BODY[HEADER.FIELDS ...] in memory, or NULL */
};
/* keyword FETCH: 0 ok, -1 malformed (error_r static string) */
int imap_response_fetch(const struct imap_response *r, struct imap_fetch *f_r, const char **error_r);

enum imap_list_attr {
	IMAP_LIST_NOSELECT = 1 << 0, IMAP_LIST_NOINFERIORS = 1 << 1,
	IMAP_LIST_NONEXISTENT = 1 << 2, IMAP_LIST_HASCHILDREN = 1 << 3,
	IMAP_LIST_HASNOCHILDREN = 1 << 4, IMAP_LIST_MARKED = 1 << 5,
	IMAP_LIST_UNMARKED = 1 << 6, IMAP_LIST_SUBSCRIBED = 1 << 7,
	/* SPECIAL-USE (RFC 6154) */
	IMAP_LIST_ALL = 1 << 8, IMAP_LIST_ARCHIVE = 1 << 9, IMAP_LIST_DRAFTS = 1 << 10,
	IMAP_LIST_FLAGGED = 1 << 11, IMAP_LIST_JUNK = 1 << 12, IMAP_LIST_SENT = 1 << 13,
	IMAP_LIST_TRASH = 1 << 14,
};
struct imap_list {
	unsigned attrs;            /* imap_list_attr bits */
	char delimiter;            /* 0 if NIL */
	const char *name;          /* as on the wire (modified UTF-7), unquoted */
	size_t name_len;
};
/* keyword LIST or LSUB */
int imap_response_list(const struct imap_response *r, struct imap_list *l_r, const char **error_r);
/* Name of the SPECIAL-USE attribute in attrs ("\\Sent"...), or "" */
const char *imap_list_special_use(unsigned attrs);

struct imap_status_data {
	const char *mailbox; size_t mailbox_len;  /* wire name */
	bool has_messages; uint32_t messages;
	bool has_uidnext; uint32_t uidnext;
	bool has_uidvalidity; uint32_t uidvalidity;
	bool has_unseen; uint32_t unseen;
	bool has_highestmodseq; uint64_t highestmodseq;
};
/* keyword STATUS */
int imap_response_status(const struct imap_response *r, struct imap_status_data *s_r, const char **error_r);

/* keyword VANISHED: earlier set true for "(EARLIER)"; uidset points into the arena */
int imap_response_vanished(const struct imap_response *r, bool *earlier_r, const char **uidset_r, const char **error_r);

/* keyword ESEARCH: (TAG "x") UID ALL set / COUNT n / MIN / MAX */
struct imap_esearch {
	const char *tag;           /* correlator or NULL */
	bool uid;
	const char *all;           /* sequence-set or NULL */
	bool has_count; uint32_t count;
	bool has_min; uint32_t min;
	bool has_max; uint32_t max;
};
int imap_response_esearch(const struct imap_response *r, struct imap_esearch *e_r, const char **error_r);

/* keyword SEARCH: numbers in r->args are atoms; use imap_arg_number */

/* keyword ENABLED and CAPABILITY: atoms in r->args */

/* ---- UID sets (RFC 3501 sequence-set, "1:3,7,9:12") ---- */
/* Iterate: *pos starts at 0; returns true with the next uid, false at end
 * or on a malformed set (*bad_r set). "*" is not accepted (server sets
 * never contain it). Ranges may be descending (12:9). */
bool imap_uidset_next(const char *set, size_t *pos, uint32_t *lo_r, uint32_t *hi_r, bool *bad_r);
/* The UIDs of a set, in the order it names them, into out[max]: how many,
 * or 0 for a malformed set. Used to pair COPYUID's source and destination
 * sets one to one. */
size_t imap_uidset_expand(const char *set, uint32_t *out, size_t max);

/* Bytes the parser currently holds on the heap (arena, token buffer,
 * argument vectors); for tests that check memory stays bounded. */
size_t imap_parser_mem_used(const struct imap_parser *p);

/* ---- debugging ---- */
/* A canonical one-line rendering of a response (every field and the whole
 * argument tree, bytes escaped); malloc'ed, the caller frees it. Used by
 * the tests to compare parses and handy in traces. */
char *imap_response_dump(const struct imap_response *r);

#endif
