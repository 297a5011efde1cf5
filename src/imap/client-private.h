/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * client-private.h - internals of the IMAP client shared by client.c
 * (connection, queue, operations) and cmd.c (command building, quoting,
 * uid sets, protocol trace). Exposed to the unit tests, nothing else.
 */
#ifndef TB_IMAP_CLIENT_PRIVATE_H
#define TB_IMAP_CLIENT_PRIVATE_H

#include "common.h"
#include "imap/client.h"
#include "util/buf.h"

/* Literals of at most this size may use LITERAL- (RFC 7888). */
#define IMAP_LITERAL_MINUS_MAX 4096
/* Longest string sent as a quoted string; longer ones become literals. */
#define IMAP_QUOTED_MAX 1024
/* Longest trace line shown; the rest is cut with "...". */
#define IMAP_TRACE_LINE_MAX 2000

struct imap_client;
struct imap_cmd;
struct imap_op;

/*
 * A command is a list of segments. Each segment is text (ending in a
 * literal announcement "{N}\r\n" / "{N+}\r\n", or the final "\r\n")
 * followed, when has_lit, by the literal's bytes: in memory or read from
 * an APPEND message's reader while sending.
 */
struct imap_seg {
	struct buf text;
	bool has_lit;
	bool sync;                      /* wait for "+" before the literal */
	uint64_t lit_size;
	char *lit_data;                 /* owned copy, or NULL */
	struct imap_append_msg *lit_src;/* borrowed, or NULL */
};

typedef void imap_cmd_done_fn(struct imap_client *c, struct imap_cmd *cmd,
			      const struct imap_response *r);
/* A "+" for this command that is not a literal go-ahead (AUTHENTICATE,
 * IDLE). Returns -1 when the connection failed. */
typedef int imap_cmd_cont_fn(struct imap_client *c, struct imap_cmd *cmd,
			     const struct imap_response *r);

struct imap_cmd {
	struct imap_cmd *next;
	char tag[16];
	char verb[24];                  /* for messages: "SELECT", "UID FETCH" */
	unsigned caps;                  /* of the connection, chooses literal syntax */
	struct imap_seg *segs;
	size_t n_segs, alloc_segs;
	bool overflow;                  /* the text went past BUF_MAX_CMD */
	/* Trace: text of segs[0] from this offset on, and all later
	 * segments, show as <redacted>. SIZE_MAX: nothing hidden. */
	size_t redact_from;
	bool secret;                    /* wipe the text on free */
	bool exclusive;                 /* alone on the wire (AUTHENTICATE, IDLE, STARTTLS) */
	/* sending state */
	size_t next_seg;                /* first segment not fully sent */
	bool lit_next;                  /* segs[next_seg].text sent, literal not yet */
	unsigned conts;                 /* "+" seen by the cont handler */
	/* completion */
	imap_cmd_done_fn *done;
	imap_cmd_cont_fn *cont;
	void *ctx;
	size_t index;
	struct imap_op *op;             /* the operation that queued it */
};

/* New command "tag verb" for a connection with the given capabilities. */
struct imap_cmd *imap_cmd_new(unsigned tagno, unsigned caps, const char *verb);
void imap_cmd_free(struct imap_cmd **cmd);
void imap_cmd_addf(struct imap_cmd *cmd, const char *fmt, ...) ATTR_PRINTF(2, 3);
void imap_cmd_add(struct imap_cmd *cmd, const char *s, size_t len);
/* astring: atom-safe strings stay as quoted strings; anything with CR,
 * LF, NUL, 8-bit bytes or over IMAP_QUOTED_MAX becomes a literal. */
void imap_cmd_add_astring(struct imap_cmd *cmd, const char *s, size_t len);
/* Announce a literal of size bytes (data copied, or streamed from src). */
void imap_cmd_add_literal(struct imap_cmd *cmd, const void *data,
			  uint64_t size, struct imap_append_msg *src);
/* Text that may hold "{N}\r\n<N bytes>" literals made by imap_quote(). */
void imap_cmd_add_with_literals(struct imap_cmd *cmd, const char *s);
/* Terminate with CRLF. */
void imap_cmd_finish(struct imap_cmd *cmd);
/* LOGIN user pass: the trace shows the user name and <redacted>. */
struct imap_cmd *imap_cmd_login(unsigned tagno, unsigned caps,
				const char *user, const char *pass);
/* AUTHENTICATE mech [resp]: resp (base64) inline when initial (SASL-IR),
 * shown as <redacted> in the trace. */
struct imap_cmd *imap_cmd_authenticate(unsigned tagno, unsigned caps,
				       const char *mech, const char *resp,
				       bool initial);
/* Trace text of segment i (no CRLF), with redaction; malloc'ed. */
char *imap_cmd_trace_seg(const struct imap_cmd *cmd, size_t i);
/* Whole command as it goes on the wire (tests). */
char *imap_cmd_wire(const struct imap_cmd *cmd, size_t *len_r);

/* Base64 (RFC 4648) of n bytes; malloc'ed. */
char *imap_base64(const void *p, size_t n);
/* true if s needs no quoting at all as an IMAP atom */
bool imap_is_atom(const char *s, size_t len);
/* INTERNALDATE syntax for unix seconds: "17-Jul-1996 02:44:25 +0000" */
void imap_format_date(int64_t t, char out[32]);
/* Does the uid set contain uid? false on a malformed set. */
bool imap_uidset_contains(const char *set, uint32_t uid);

/*
 * Received-data trace: bytes as consumed by the parser go in, lines come
 * out ("S: ..." without CRLF) through emit; literal contents are replaced
 * by "{N bytes}".
 */
struct imap_rtrace {
	struct buf line;
	uint64_t skip;                  /* literal bytes still to skip */
	uint64_t skip_total;
	bool cut;                       /* line longer than shown */
	char tail[24];                  /* last bytes of a cut line */
	size_t tail_len;
	void (*emit)(void *ctx, const char *line);
	void *ctx;
};
void imap_rtrace_init(struct imap_rtrace *t, void (*emit)(void *ctx, const char *line),
		      void *ctx);
void imap_rtrace_feed(struct imap_rtrace *t, const char *p, size_t n);
void imap_rtrace_release(struct imap_rtrace *t);

#endif
