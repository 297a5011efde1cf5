/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * client.h - the IMAP client used by the sync engine.
 *
 * One struct imap_client is one authenticated connection, used by one
 * thread. Every operation here is synchronous for the caller but pipelined
 * on the wire: batch operations put many tagged commands in flight (up to
 * the pipeline depth), stream message bodies to the caller's sink and
 * route each tagged completion to its command. Nothing costs a round trip
 * per message.
 *
 * Mailbox names are passed as they go on the wire (modified UTF-7,
 * server delimiter); use imap/utf7.h to convert. The client quotes them
 * (quoted string, or a literal when needed).
 *
 * Errors: every function returns 0 on success and -1 on failure with
 * *error_r set to a malloc'ed message (the caller frees it). The class of
 * the failure is imap_client_failure(): IMAP_FAIL_NO means the server
 * refused this command (the connection is fine: e.g. skip this folder);
 * anything else means the connection is unusable (imap_client_broken()).
 * Credentials never appear in error messages or in the -vvv trace.
 */
#ifndef TB_IMAP_CLIENT_H
#define TB_IMAP_CLIENT_H

#include "common.h"
#include "imap/parser.h"

enum imap_tls { IMAP_TLS_IMPLICIT, IMAP_TLS_STARTTLS, IMAP_TLS_NONE };
enum imap_auth { IMAP_AUTH_AUTO, IMAP_AUTH_PLAIN, IMAP_AUTH_LOGIN,
		 IMAP_AUTH_XOAUTH2, IMAP_AUTH_OAUTHBEARER };

struct imap_client_settings {
	const char *host;
	unsigned port;
	enum imap_tls tls;
	const char *ca_file;        /* NULL: system trust store */
	const char *fingerprint;    /* NULL or "sha256:AA:BB:..." (upper-case) pin */
	const char *user;
	const char *secret;         /* password or OAuth token; borrowed, never logged */
	enum imap_auth auth;
	unsigned connect_timeout;   /* seconds; 0 = 30 */
	unsigned io_timeout;        /* seconds without progress; 0 = 120 */
	unsigned pipeline_depth;    /* commands in flight; 0 = 64 */
	const char *label;          /* for log/trace prefixes, e.g. the account name */
	/* What connections to this server learnt of its login, shared by
	 * the connections of a run and kept by the caller across runs
	 * (NULL: none); see struct imap_login_hint. */
	struct imap_login_hint *login_hint;
};

/*
 * early: IMAP_HINT_EARLY_AUTH when the server's greeting offered SASL-IR
 * and AUTH=PLAIN, so that the login may leave before the greeting
 * arrives (imap_client_connect()). caps: the capabilities it announced
 * after the last login (imap_cap bits, 0: unknown), with which
 * imap_client_connect_first() lets the first commands go before the
 * login's answer.
 */
enum { IMAP_HINT_UNKNOWN = 0, IMAP_HINT_NO_EARLY_AUTH = 1,
       IMAP_HINT_EARLY_AUTH = 2 };
struct imap_login_hint {
	_Atomic int early;
	_Atomic unsigned caps;
};

enum imap_failure {
	IMAP_FAIL_NONE = 0,
	IMAP_FAIL_NO,       /* command refused (NO/BAD); connection still usable */
	IMAP_FAIL_NET,      /* connect, read or write failed, timeout, lost connection */
	IMAP_FAIL_PROTO,    /* unparsable or hostile response (connection dropped) */
	IMAP_FAIL_TLS,      /* certificate/handshake/STARTTLS failure: exit 3 */
	IMAP_FAIL_AUTH,     /* login refused: exit 3 */
	IMAP_FAIL_SINK,     /* a caller callback returned -1 (its error is the message) */
};

enum imap_cap {
	IMAP_CAP_IMAP4REV1 = 1u << 0, IMAP_CAP_IMAP4REV2 = 1u << 1,
	IMAP_CAP_STARTTLS = 1u << 2, IMAP_CAP_LOGINDISABLED = 1u << 3,
	IMAP_CAP_AUTH_PLAIN = 1u << 4, IMAP_CAP_AUTH_LOGIN = 1u << 5,
	IMAP_CAP_AUTH_XOAUTH2 = 1u << 6, IMAP_CAP_AUTH_OAUTHBEARER = 1u << 7,
	IMAP_CAP_SASL_IR = 1u << 8, IMAP_CAP_LITERALPLUS = 1u << 9,
	IMAP_CAP_LITERALMINUS = 1u << 10, IMAP_CAP_ENABLE = 1u << 11,
	IMAP_CAP_CONDSTORE = 1u << 12, IMAP_CAP_QRESYNC = 1u << 13,
	IMAP_CAP_MOVE = 1u << 14, IMAP_CAP_UIDPLUS = 1u << 15,
	IMAP_CAP_ESEARCH = 1u << 16, IMAP_CAP_LIST_STATUS = 1u << 17,
	IMAP_CAP_SPECIAL_USE = 1u << 18, IMAP_CAP_LIST_EXTENDED = 1u << 19,
	IMAP_CAP_OBJECTID = 1u << 20, IMAP_CAP_IDLE = 1u << 21,
	IMAP_CAP_NAMESPACE = 1u << 22, IMAP_CAP_NOTIFY = 1u << 23,
	IMAP_CAP_XGM_EXT1 = 1u << 24,   /* Gmail: labels are folders */
};

struct imap_client;

/*
 * Connect, set up TLS (implicit or STARTTLS; TLS >= 1.2, certificate and
 * host name verified, SNI, optional fingerprint pin), read capabilities
 * (again after STARTTLS and after login), authenticate, and ENABLE
 * QRESYNC (or CONDSTORE) when offered. On failure *failure_r tells why
 * (IMAP_FAIL_TLS / IMAP_FAIL_AUTH => exit 3).
 */
int imap_client_connect(const struct imap_client_settings *set,
			struct imap_client **c_r,
			enum imap_failure *failure_r, char **error_r);
/* The same, except that with an early login (login_hint) whose
 * capabilities are known, it returns before the login is answered: the
 * first operation's commands go in its flight, and that operation fails
 * if the login does (imap_client_failure() IMAP_FAIL_AUTH: a wrong
 * password; IMAP_FAIL_NET: connect again). imap_client_flush() reads
 * the answer when no operation follows. */
int imap_client_connect_first(const struct imap_client_settings *set,
			      struct imap_client **c_r,
			      enum imap_failure *failure_r, char **error_r);
/* LOGOUT (best effort) and free. */
void imap_client_close(struct imap_client **c);
/* Free without LOGOUT (after a failure). */
void imap_client_free(struct imap_client **c);

unsigned imap_client_caps(const struct imap_client *c);   /* imap_cap bits */
/* imap_cap bits as capability names, space separated (malloc'ed), and
 * back (unknown names ignored) */
char *imap_caps_names(unsigned caps);
unsigned imap_caps_parse(const char *s);
bool imap_client_has(const struct imap_client *c, enum imap_cap cap);
/* QRESYNC / CONDSTORE were ENABLEd (or are usable) on this connection */
bool imap_client_qresync(const struct imap_client *c);
bool imap_client_condstore(const struct imap_client *c);
enum imap_failure imap_client_failure(const struct imap_client *c);
bool imap_client_broken(const struct imap_client *c);
/* The shortest time the client waited for an answer after sending (ns;
 * 0 before any): at most the link's round trip plus the server's time
 * for its quickest answer. After the login, a slow link shows here, a
 * busy server next door hardly does. */
int64_t imap_client_min_wait_ns(const struct imap_client *c);
/* Bytes of message data received/sent by body fetches and appends (for --json). */
uint64_t imap_client_bytes_in(const struct imap_client *c);
uint64_t imap_client_bytes_out(const struct imap_client *c);

/* ---- folders ---- */

struct imap_folder {
	char *wire;         /* name as on the wire (mUTF-7); owned */
	char *name;         /* UTF-8 with '/' as separator, or NULL when it cannot
			       be decoded / contains '/' inside a component; owned */
	char delim;         /* server hierarchy delimiter, 0 if none */
	unsigned attrs;     /* imap_list_attr bits (parser.h), incl. SPECIAL-USE */
};
/* LIST "" "*" (with RETURN (SPECIAL-USE) when offered); sorted by name. */
int imap_list_folders(struct imap_client *c, struct imap_folder **f_r,
		      size_t *n_r, char **error_r);
void imap_folders_free(struct imap_folder *f, size_t n);
/* The server's hierarchy delimiter (from LIST "" ""), 0 if flat. */
char imap_client_delimiter(struct imap_client *c);

/* STATUS (MESSAGES UIDNEXT UIDVALIDITY [HIGHESTMODSEQ]) for n folders,
 * pipelined in one round trip. ok_r[i] is false when the server refused
 * that folder (NO); the call fails only if the connection does. */
int imap_status_batch(struct imap_client *c, const char *const *wires,
		      size_t n, struct imap_status_data *st_r, bool *ok_r,
		      char **error_r);
/* The same STATUS batch, then LIST "" "*" in the same flight (as
 * imap_list_folders): one round trip for both. A refused STATUS only
 * clears its ok_r[i]. */
int imap_status_then_list(struct imap_client *c, const char *const *wires,
			  size_t n, struct imap_status_data *st_r, bool *ok_r,
			  struct imap_folder **f_r, size_t *n_r,
			  char **error_r);

int imap_create(struct imap_client *c, const char *wire, char **error_r);
int imap_delete(struct imap_client *c, const char *wire, char **error_r);
int imap_rename(struct imap_client *c, const char *from, const char *to,
		char **error_r);
int imap_subscribe(struct imap_client *c, const char *wire, char **error_r);

/* ---- selected state ---- */

/* Called for every FETCH response (also unsolicited ones) and VANISHED
 * during the operation; return -1 to fail it (IMAP_FAIL_SINK). */
typedef int imap_fetch_cb(void *ctx, const struct imap_fetch *f);
typedef int imap_vanished_cb(void *ctx, const char *uidset, bool earlier);

struct imap_qresync {
	uint32_t uidvalidity;   /* known UIDVALIDITY */
	uint64_t modseq;        /* known HIGHESTMODSEQ */
	const char *known_uids; /* optional UID set, NULL to omit */
};

struct imap_selected {
	uint32_t uidvalidity, uidnext, exists;
	uint64_t highestmodseq;   /* 0 when NOMODSEQ or no CONDSTORE */
	bool nomodseq;
	bool readonly;
	unsigned permanent_flags; /* MF_* bits the server stores permanently */
	bool permanent_keywords;  /* \* in PERMANENTFLAGS */
};

/*
 * SELECT (or EXAMINE with readonly) the folder; with qr and QRESYNC
 * enabled, as SELECT ... (QRESYNC (uidvalidity modseq [known])): the
 * changed FETCH responses and VANISHED (EARLIER) go to the callbacks.
 * With CONDSTORE only, (CONDSTORE) is sent so HIGHESTMODSEQ is reported.
 */
int imap_select(struct imap_client *c, const char *wire, bool readonly,
		const struct imap_qresync *qr, imap_fetch_cb *fcb,
		imap_vanished_cb *vcb, void *ctx, struct imap_selected *sel_r,
		char **error_r);

/* SELECT wire (with CONDSTORE when usable) in the flight of the next
 * operation, without waiting for it here. That operation fails with the
 * SELECT's error, or when the folder's UIDVALIDITY is not uidvalidity
 * (0: any). For folders whose UIDVALIDITY this run has just read. */
int imap_select_ahead(struct imap_client *c, const char *wire,
		      uint32_t uidvalidity, char **error_r);
/* Told once how a SELECT sent ahead ended: ok with its values, or not
 * (refused, a changed UIDVALIDITY, a lost connection; sel NULL). Called
 * from inside the operation that read the answer, or when the client is
 * freed. */
typedef void imap_ahead_done_fn(void *ctx, bool ok,
				const struct imap_selected *sel);
/* The same with imap_select()'s QRESYNC parameters and callbacks; *sel_r
 * (NULL: none wanted) must stay valid until the next operation returns,
 * which is when it is filled in; done (optional) is told then. */
int imap_select_ahead_qr(struct imap_client *c, const char *wire,
			 uint32_t uidvalidity, const struct imap_qresync *qr,
			 imap_fetch_cb *fcb, imap_vanished_cb *vcb, void *ctx,
			 struct imap_selected *sel_r, imap_ahead_done_fn *done,
			 void *done_ctx, char **error_r);
/* A SELECT sent ahead is still unanswered: wait for it now (a round trip
 * of its own), with its error. 0 when there is none. */
int imap_client_flush(struct imap_client *c, char **error_r);
bool imap_client_ahead(const struct imap_client *c);

/* The selected folder as this connection's own changes left it: the
 * SELECT's values (base_*) and the ones after our STOREs, expunges,
 * MOVEs and APPENDs, as the server reported them. */
struct imap_own_state {
	uint32_t uidvalidity, uidnext, exists;
	uint64_t highestmodseq;
	uint32_t base_uidnext, base_exists;
	uint64_t base_modseq;
};
/* true with *s_r when, since the last SELECT (under QRESYNC), the server
 * reported no change but this connection's own: a bookmark made of *s_r
 * hides nobody else's change (imap/track.h says how). */
bool imap_client_own_state(const struct imap_client *c,
			   struct imap_own_state *s_r);
/* The UIDs of uidset in the selected mailbox wire were expunged (moved
 * away) by this program on another connection: not somebody else's
 * change for imap_client_own_state(). */
void imap_client_expect_gone(struct imap_client *c, const char *wire,
			     const char *uidset);

/* UID FETCH uidset (UID FLAGS [MODSEQ]) [(CHANGEDSINCE n [VANISHED])].
 * changedsince 0: no modifier. vanished needs QRESYNC. */
int imap_fetch_flags(struct imap_client *c, const char *uidset,
		     uint64_t changedsince, bool vanished, imap_fetch_cb *fcb,
		     imap_vanished_cb *vcb, void *ctx, char **error_r);

/* UID FETCH uidset (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER] [EMAILID] [X-GM-MSGID]):
 * identity without the body (f->header, f->size, f->emailid). */
int imap_fetch_idents(struct imap_client *c, const char *uidset,
		      imap_fetch_cb *fcb, void *ctx, char **error_r);

/* Receiving message bodies. For each message: begin (size announced),
 * data chunks, end, then done with the complete FETCH (uid, flags,
 * internaldate, size). Any callback returning -1 fails the whole call with
 * IMAP_FAIL_SINK after the remaining responses were drained (bodies then
 * discarded), so the connection stays usable. */
struct imap_body_handler {
	int (*begin)(void *ctx, uint32_t seq, uint64_t size);
	int (*data)(void *ctx, const void *p, size_t n);
	int (*end)(void *ctx);
	int (*done)(void *ctx, const struct imap_fetch *f);
	void *ctx;
};
/* UID FETCH of the bodies (BODY.PEEK[]) with UID FLAGS INTERNALDATE
 * RFC822.SIZE, split into commands of at most `batch` UIDs (0 = 256)
 * all pipelined. */
int imap_fetch_bodies(struct imap_client *c, const uint32_t *uids, size_t n,
		      size_t batch, const struct imap_body_handler *h,
		      char **error_r);
/* The same without waiting: the commands go on the wire now and the
 * next operation's follow them in its flight; that operation reads these
 * answers first (into h, which must stay valid until then), and
 * imap_fetch_bodies_end() returns how they ended (it reads them itself
 * when no operation did). One at a time: end it before starting
 * another. -1 only when nothing was sent. */
int imap_fetch_bodies_start(struct imap_client *c, const uint32_t *uids,
			    size_t n, size_t batch,
			    const struct imap_body_handler *h, char **error_r);
int imap_fetch_bodies_end(struct imap_client *c, char **error_r);

/* APPEND of n messages to wire, pipelined (LITERAL+ when offered, else
 * waiting for each continuation). Per message: flags, date (unix seconds,
 * 0 = none), exact size in bytes (CRLF form) and a reader that must
 * return exactly size bytes in total. Results per message: uid_r
 * (APPENDUID, 0 without UIDPLUS) and ok_r (false if the server refused it;
 * error_r then holds the first such reason). uidvalidity_r from APPENDUID. */
struct imap_append_msg {
	unsigned flags;
	int64_t date;
	uint64_t size;
	/* returns bytes read (>0), 0 at end, -1 on error */
	long (*read)(void *ctx, void *buf, size_t n);
	void *ctx;
	uint32_t uid_r;
	bool ok_r;
};
int imap_append_batch(struct imap_client *c, const char *wire,
		      struct imap_append_msg *msgs, size_t n,
		      uint32_t *uidvalidity_r, char **error_r);

/* UID STORE uidset +FLAGS.SILENT / -FLAGS.SILENT (flags), with
 * (UNCHANGEDSINCE n) when unchangedsince != 0; ops are pipelined.
 * modified_r (optional, malloc'ed uid set or NULL) collects MODIFIED. */
struct imap_store_op {
	const char *uidset;
	bool add;
	unsigned flags;        /* MF_* */
	uint64_t unchangedsince;
};
int imap_store_batch(struct imap_client *c, const struct imap_store_op *ops,
		     size_t n, char **modified_r, char **error_r);

/* Remove exactly the messages of uidset: UID STORE +FLAGS.SILENT
 * (\Deleted) then UID EXPUNGE (UIDPLUS). Without UIDPLUS: messages others
 * marked \Deleted are found (UID SEARCH DELETED), un-marked, EXPUNGE is
 * sent, and they are marked again, so only ours go. */
int imap_expunge_uids(struct imap_client *c, const char *uidset,
		      char **error_r);

/* The same for messages the caller marked \Deleted itself, in an
 * earlier flight of STOREs (UID STORE +FLAGS.SILENT (\Deleted) answered
 * OK): UID EXPUNGE and its check only. Without UIDPLUS this is
 * imap_expunge_uids(). */
int imap_expunge_marked(struct imap_client *c, const char *uidset,
			char **error_r);

/* The STOREs of ops, one of which marks uidset \Deleted, then UID
 * EXPUNGE of uidset and its check: in one flight under QRESYNC with
 * UIDPLUS (imap_expunge_uids() says why only then). A refused STORE
 * fails the whole; the expunge may have been done. */
int imap_store_expunge(struct imap_client *c, const struct imap_store_op *ops,
		       size_t n, const char *uidset, char **error_r);
/* The same with the APPENDs of msgs to wire in its flight (see
 * client.c): each message's ok_r / uid_r say how its APPEND went, and
 * *append_error_r (malloc'ed or NULL) the first refusal. uidset may be
 * NULL: the STOREs and the APPENDs. */
int imap_store_expunge_append(struct imap_client *c,
			      const struct imap_store_op *ops, size_t n_ops,
			      const char *uidset, const char *wire,
			      struct imap_append_msg *msgs, size_t n_msgs,
			      uint32_t *uidvalidity_r, char **append_error_r,
			      char **error_r);

/* The same, without waiting for the APPENDs: it returns once the STOREs
 * and the expunge are answered; the APPENDs' answers are read by the
 * operations that follow (their commands go on the wire behind them, a
 * SELECT of the next folder say) and imap_tail_end() tells how they
 * went. *tail_r is NULL where that cannot be (no QRESYNC or UIDPLUS
 * with an expunge, no message): the call was the one above, and the
 * messages' results and *append_error_r are in. Else *tail_r must be
 * ended before the client is closed; msgs (and their readers) stay
 * valid until then. */
struct imap_tail;
int imap_store_expunge_append_start(struct imap_client *c,
				    const struct imap_store_op *ops,
				    size_t n_ops, const char *uidset,
				    const char *wire,
				    struct imap_append_msg *msgs, size_t n_msgs,
				    struct imap_tail **tail_r,
				    char **append_error_r, char **error_r);
/* Waits for what of the APPENDs is unanswered, fills in their ok_r /
 * uid_r and frees *tail. *append_error_r: the first refusal (malloc'ed)
 * or NULL. *own_ok_r with *own_r: the folder the APPENDs went to as
 * this connection's changes left it after them (imap_client_own_state()
 * at that moment), even when another folder is selected since. -1 when
 * the connection failed before every answer came. */
int imap_tail_end(struct imap_client *c, struct imap_tail **tail,
		  uint32_t *uidvalidity_r, char **append_error_r,
		  struct imap_own_state *own_r, bool *own_ok_r,
		  char **error_r);

/* Copy mapping from COPYUID (RFC 4315). */
struct imap_copyuid {
	uint32_t uidvalidity;  /* 0: the server sent no COPYUID */
	char *src;             /* uid sets, owned */
	char *dst;
};
void imap_copyuid_release(struct imap_copyuid *cu);
/* UID MOVE when offered, else UID COPY + expunge of exactly those UIDs.
 * map_r gets COPYUID when the server sends it. */
int imap_move(struct imap_client *c, const char *uidset, const char *dest,
	      struct imap_copyuid *map_r, char **error_r);
int imap_copy(struct imap_client *c, const char *uidset, const char *dest,
	      struct imap_copyuid *map_r, char **error_r);

/* n UID COPYs (uidsets[i] to dests[i]) in one flight. ok_r[i] and
 * maps_r[i] (COPYUID, release each) per command; a refused one clears
 * only its ok_r[i] and leaves the first refusal in *error_r (0 is still
 * returned). -1 when the connection failed. */
int imap_copy_batch(struct imap_client *c, const char *const *uidsets,
		    const char *const *dests, size_t n,
		    struct imap_copyuid *maps_r, bool *ok_r, char **error_r);
/* n UID MOVEs (uidsets[i] to dests[i], RFC 6851) in one flight; the
 * server must offer MOVE. As imap_copy_batch(): ok_r[i] and maps_r[i]
 * (COPYUID, from the untagged or the tagged OK) per command, each MOVE
 * done or refused on its own. The moved UIDs' VANISHED in the selected
 * mailbox count as this connection's own changes. */
int imap_move_batch(struct imap_client *c, const char *const *uidsets,
		    const char *const *dests, size_t n,
		    struct imap_copyuid *maps_r, bool *ok_r, char **error_r);

/* One source of imap_move_from_many(): its mailbox (wire name), the
 * UIDVALIDITY this run has read from the server (0: any), and n UID
 * MOVEs (uidsets[i] to dests[i]). Results: selected_r (its SELECT ended
 * as expected; otherwise what its MOVEs did is not known), and per MOVE
 * ok_r[i] and maps_r[i] (COPYUID; release each). */
struct imap_move_src {
	const char *wire;
	uint32_t uidvalidity;
	const char *const *uidsets;
	const char *const *dests;
	size_t n;
	struct imap_copyuid *maps_r;
	bool *ok_r;
	bool selected_r;
};
/* The UID MOVEs out of n sources in one flight: SELECT then the MOVEs of
 * each source in turn (a SELECT runs alone, so each source's answers
 * come between its SELECT's and the next one's). A refused SELECT, or a
 * changed UIDVALIDITY, fails that source alone, a refused MOVE its
 * target alone; the first failure is left in *error_r (0 is still
 * returned). -1 when the connection failed. The last source stays
 * selected, its moved UIDs' VANISHED this connection's own changes. */
int imap_move_from_many(struct imap_client *c, struct imap_move_src *srcs,
			size_t n, char **error_r);

/* One source of imap_copy_from_many(): its mailbox (wire name), the
 * UIDVALIDITY the caller has read from the server in this session's run
 * (0: any), and the UIDs to copy from it. */
struct imap_copy_src {
	const char *wire;
	uint32_t uidvalidity;
	const char *uidset;
};

enum imap_copy_src_result {
	IMAP_COPY_SRC_OK,         /* copied (maps_r[i] has its COPYUID, if any) */
	IMAP_COPY_SRC_REFUSED,    /* SELECT fine, the UID COPY refused (NO/BAD) */
	IMAP_COPY_SRC_UNSELECTED, /* the SELECT refused, or its UIDVALIDITY not
				     the expected one: what its UID COPY did is
				     not known */
};

/*
 * For each source, SELECT it and UID COPY its UIDs to dest: all 2n
 * commands in one flight, the answers read after. Only for sources whose
 * UIDVALIDITY the caller has read from the server in this run: each UID
 * COPY reaches the server before its SELECT's answer can be checked (see
 * imap_select_ahead()). res_r[i] and maps_r[i] (release each) per source;
 * one source's failure touches no other's result. The first failure's
 * text goes to *error_r, with 0 still returned. -1 when the connection
 * failed, or when a SELECT sent ahead of this operation failed
 * (imap_client_failure() IMAP_FAIL_NO): then no result is known. The
 * selected mailbox afterwards is the last source's or none, and the
 * client tracks none (imap_client_own_state() is false until the next
 * SELECT).
 */
int imap_copy_from_many(struct imap_client *c,
			const struct imap_copy_src *srcs, size_t n,
			const char *dest, struct imap_copyuid *maps_r,
			enum imap_copy_src_result *res_r, char **error_r);

/* UID SEARCH with the given criteria (already IMAP syntax; use
 * imap_quote() for strings). Result sorted ascending. */
int imap_search(struct imap_client *c, const char *criteria,
		uint32_t **uids_r, size_t *n_r, char **error_r);
/* Append s as an IMAP quoted string (or literal syntax if it needs one)
 * to a malloc'ed result. */
char *imap_quote(const char *s);

int imap_noop(struct imap_client *c, char **error_r);
/* IDLE until the server reports a change or timeout seconds pass
 * (then DONE). *changed_r tells which. */
int imap_idle(struct imap_client *c, unsigned timeout, bool *changed_r,
	      char **error_r);

/* ---- IDLE inside an event loop (sync --watch) ----
 *
 * imap_idle_begin() sends IDLE (RFC 2177) for the selected folder and
 * waits for the server's go-ahead; the connection then belongs to the
 * IDLE until imap_idle_end(). Meanwhile the caller polls imap_client_fd()
 * for input and calls imap_idle_check(), which never waits. Without the
 * IDLE capability imap_idle_begin() fails with IMAP_FAIL_NO. */
int imap_idle_begin(struct imap_client *c, char **error_r);
int imap_client_fd(const struct imap_client *c);
/* Handle what the server sent so far. *changed_r: the folder changed
 * (EXISTS, EXPUNGE, FETCH, VANISHED). -1 when the connection failed or
 * the server ended the IDLE by itself. */
int imap_idle_check(struct imap_client *c, bool *changed_r, char **error_r);
/* DONE, then wait for the IDLE's tagged reply (bounded by io_timeout). */
int imap_idle_end(struct imap_client *c, bool *changed_r, char **error_r);

/* NOTIFY (RFC 5465): "NOTIFY SET <spec>", spec in IMAP syntax, e.g.
 * "(personal (MessageNew MessageExpunge FlagChange MailboxName))". The
 * events then arrive as untagged STATUS (a folder changed) and LIST (a
 * folder came or went) responses; while an imap_idle_begin() IDLE runs,
 * each is passed to fn: the folder's UTF-8 name ('/' separated), or NULL
 * when it is not one folder's change (LIST) or cannot be decoded. */
typedef void imap_notice_fn(void *ctx, const char *name);
int imap_notify_set(struct imap_client *c, const char *spec,
		    imap_notice_fn *fn, void *ctx, char **error_r);

/* ---- uid sets ---- */
/* Compress sorted uids into "1:5,9,12:14" (malloc'ed). */
char *imap_uidset_make(const uint32_t *uids, size_t n);

#endif
