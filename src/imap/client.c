/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * client.c - the IMAP client: connection set-up, STARTTLS, authentication,
 * the pipelined command queue and every operation of client.h.
 *
 * Each operation fills the queue with tagged commands and pumps the
 * connection (send while the pipeline has room, read and dispatch one
 * response at a time) until all of its commands completed. Untagged data
 * is routed to the running operation (struct imap_op) or into the client
 * state. Only one operation runs at a time: the API is synchronous.
 */
#include "common.h"
#include "imap/client-private.h"
#include "imap/track.h"
#include "imap/utf7.h"
#include "net/conn.h"
#include "util/flags.h"
#include "util/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <strings.h>
#include <time.h>

#define APPEND_CHUNK (64u * 1024)
#define MAX_FOLDERS 100000
#define MAX_SEARCH_UIDS (10u * 1000 * 1000)
#define MODIFIED_MAX (1024 * 1024)

/* What the running operation wants from untagged responses. */
struct imap_op {
	unsigned pending;                       /* commands not completed */
	/* FETCH / VANISHED */
	imap_fetch_cb *fcb;
	imap_vanished_cb *vcb;
	void *ctx;
	const struct imap_body_handler *bh;
	bool cb_failed;                         /* a caller callback said -1 */
	/* first refusal (NO/BAD) of one of the commands, malloc'ed */
	char *no_error;
	/* LIST */
	bool listing;
	struct imap_folder *folders;
	size_t n_folders, alloc_folders;
	bool want_delim;
	/* STATUS */
	const char *const *wires;
	size_t n_wires;
	struct imap_status_data *st;
	bool *st_got;
	/* SELECT */
	struct imap_selected *sel;
	/* SEARCH */
	bool searching;
	uint32_t *uids;
	size_t n_uids, alloc_uids;
	/* COPYUID of MOVE (untagged OK) */
	struct imap_copyuid *cu;
	/* or, for n_cus pipelined MOVEs, to the one whose source UIDs
	 * (cu_sets[i]) it names: their untagged OKs may come before the
	 * tagged OK of an earlier MOVE */
	struct imap_copyuid *cus;
	const struct imap_uidranges *cu_sets;
	size_t n_cus;
	/* STORE: MODIFIED sets */
	struct buf *modified;
	/* IDLE */
	bool changed;
	/* UIDs our own STORE / expunge / MOVE change (imap/track.h), and
	 * how many of them (of gone_in when set) VANISHED reported gone */
	const struct imap_uidranges *own;
	const struct imap_uidranges *gone_in;
	uint64_t own_gone;
	/* the APPENDs of an imap_store_expunge_append_start() */
	struct imap_tail *tail;
};

enum client_state {
	CS_CONNECTING, CS_GREETED, CS_AUTHENTICATED, CS_LOGOUT, CS_BROKEN,
};
static const char *const client_state_names[] = {
	"connecting", "greeted", "authenticated", "logout", "broken",
};

struct auth_flight;

struct imap_client {
	char *host;                     /* owned */
	char *label;                    /* owned, for log prefixes */
	unsigned depth;
	struct net_conn *conn;          /* owned */
	struct imap_parser *parser;     /* owned */
	enum client_state state;
	unsigned caps;
	unsigned caps_gen;              /* bumped whenever caps are (re)read */
	bool qresync, condstore;
	/* ENABLE QRESYNC is due: it goes out first in the next operation's
	 * flight (no round trip of its own), and QRESYNC syntax may follow
	 * it in that flight */
	bool enable_due, qresync_asked;
	enum imap_failure failure;      /* of the last operation */
	bool broken;
	enum imap_failure broken_failure;
	char *broken_error;             /* owned */
	unsigned next_tag;
	/* not yet sent, in order */
	struct imap_cmd *queue, **queue_tail;
	/* sent (maybe partly), awaiting their tagged reply */
	struct imap_cmd *flight, **flight_tail;
	unsigned n_flight;
	struct imap_cmd *cont_wait;     /* partly sent, needs a "+" */
	struct imap_op *op;             /* running operation, borrowed */
	struct imap_op idle_op;         /* for responses outside operations */
	struct imap_op idle_wait;       /* imap_idle_begin() .. _end() */
	imap_notice_fn *notice;         /* NOTIFY events while idling */
	void *notice_ctx;
	uint32_t exists;
	char delim;
	bool delim_known;
	bool idling;
	uint64_t bytes_in, bytes_out;
	struct imap_rtrace rtrace;
	char *bye_text;                 /* owned */
	/* PREAUTH greeting */
	bool preauth;
	struct imap_track trk;          /* the selected mailbox vs. our changes */
	/* round trips: waits for the server after sending (for -vv) */
	unsigned waits;
	bool sent_since_wait;
	/* the shortest of those waits so far (ns, 0: none yet): the link's
	 * round trip plus the least the server took to answer */
	int64_t min_wait_ns;
	/* A SELECT queued by imap_select_ahead(): it goes out in the flight
	 * of the next operation, which reads its answer first (ahead_finish) */
	bool ahead;
	struct imap_op ahead_op;
	struct imap_selected ahead_sel;
	char *ahead_wire;               /* owned */
	uint32_t ahead_uidvalidity;     /* expected; 0: any */
	char *ahead_error;              /* it failed: owned, for op_end() */
	imap_ahead_done_fn *ahead_done; /* told once it is answered (or not) */
	void *ahead_done_ctx;
	/* A body FETCH started by imap_fetch_bodies_start(): the next
	 * operation's commands go out behind it, and its run() reads this
	 * answer first (lead_finish); imap_fetch_bodies_end() tells how it
	 * ended. */
	bool lead;                      /* answers not read yet */
	bool lead_open;                 /* imap_fetch_bodies_end() is due */
	int lead_result;                /* the pump's, once read */
	struct imap_op lead_op;
	/* APPENDs whose answers are read later (imap_tail_end()), in the
	 * order they were queued. While one of them is unanswered, a
	 * SELECT of another folder leaves the tracker on until they are:
	 * their answers are still about the folder selected now. */
	struct imap_tail *tails;
	/* A login the first operation's flight follows, before its answer
	 * and the greeting are read (imap_client_connect_first()) */
	struct auth_flight *login_af;
	struct auth_flight *login_dead; /* its remains on a broken connection */
	bool login_failed;              /* flush() says so */
	char *login_user;               /* owned, for the error message */
	struct imap_login_hint *login_hint;   /* borrowed */
};

static int client_fail(struct imap_client *c, enum imap_failure f,
		       const char *fmt, ...) ATTR_PRINTF(3, 4);
static int login_finish(struct imap_client *c);
static void auth_flight_free(struct auth_flight **afp);
static void tail_answered(struct imap_client *c, struct imap_tail *t);
static void track_leave(struct imap_client *c);
static void tail_free(struct imap_client *c, struct imap_tail *t);

/* The one place that changes the session state. */
static void client_set_state(struct imap_client *c, enum client_state s)
{
	if (c->state == s)
		return;
	log_debug("%s: imap state %s -> %s", c->label,
		  client_state_names[c->state], client_state_names[s]);
	c->state = s;
}

static void cmds_free(struct imap_cmd **list)
{
	while (*list != NULL) {
		struct imap_cmd *next = (*list)->next;

		imap_cmd_free(list);
		*list = next;
	}
}

/* Mark the connection unusable; every queued command is dropped. */
static int client_fail(struct imap_client *c, enum imap_failure f,
		       const char *fmt, ...)
{
	va_list ap;
	char msg[1024];

	c->failure = f;
	if (c->broken)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->broken = true;
	c->broken_failure = f;
	c->broken_error = xstrdup(msg);
	client_set_state(c, CS_BROKEN);
	log_debug("%s: connection failed: %s", c->label, msg);
	cmds_free(&c->queue);
	cmds_free(&c->flight);
	c->queue_tail = &c->queue;
	c->flight_tail = &c->flight;
	c->n_flight = 0;
	c->cont_wait = NULL;
	return -1;
}

static int client_fail_net(struct imap_client *c, char *error)
{
	enum imap_failure f =
		net_conn_failure(c->conn) == NET_FAIL_TLS ? IMAP_FAIL_TLS :
		IMAP_FAIL_NET;

	if (c->bye_text != NULL && c->state != CS_LOGOUT)
		client_fail(c, f, "%s (server said: %s)", error, c->bye_text);
	else
		client_fail(c, f, "%s", error);
	free(error);
	return -1;
}

/* ---- trace ---- */

static void trace_emit(void *ctx, const char *line)
{
	struct imap_client *c = ctx;

	log_trace("%s: S: %s", c->label, line);
}

/* ---- capabilities ---- */

static const struct {
	const char *name;
	unsigned bit;
} cap_names[] = {
	{ "IMAP4REV1", IMAP_CAP_IMAP4REV1 }, { "IMAP4REV2", IMAP_CAP_IMAP4REV2 },
	{ "STARTTLS", IMAP_CAP_STARTTLS }, { "LOGINDISABLED", IMAP_CAP_LOGINDISABLED },
	{ "AUTH=PLAIN", IMAP_CAP_AUTH_PLAIN }, { "AUTH=LOGIN", IMAP_CAP_AUTH_LOGIN },
	{ "AUTH=XOAUTH2", IMAP_CAP_AUTH_XOAUTH2 },
	{ "AUTH=OAUTHBEARER", IMAP_CAP_AUTH_OAUTHBEARER },
	{ "SASL-IR", IMAP_CAP_SASL_IR }, { "LITERAL+", IMAP_CAP_LITERALPLUS },
	{ "LITERAL-", IMAP_CAP_LITERALMINUS }, { "ENABLE", IMAP_CAP_ENABLE },
	{ "CONDSTORE", IMAP_CAP_CONDSTORE }, { "QRESYNC", IMAP_CAP_QRESYNC },
	{ "MOVE", IMAP_CAP_MOVE }, { "UIDPLUS", IMAP_CAP_UIDPLUS },
	{ "ESEARCH", IMAP_CAP_ESEARCH }, { "LIST-STATUS", IMAP_CAP_LIST_STATUS },
	{ "SPECIAL-USE", IMAP_CAP_SPECIAL_USE },
	{ "LIST-EXTENDED", IMAP_CAP_LIST_EXTENDED },
	{ "OBJECTID", IMAP_CAP_OBJECTID }, { "IDLE", IMAP_CAP_IDLE },
	{ "NAMESPACE", IMAP_CAP_NAMESPACE }, { "NOTIFY", IMAP_CAP_NOTIFY },
	{ "X-GM-EXT-1", IMAP_CAP_XGM_EXT1 },
};

static void caps_set(struct imap_client *c, const struct imap_arg *args,
		     size_t n)
{
	unsigned caps = 0;

	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < N_ELEMENTS(cap_names); k++) {
			if (imap_arg_atom_equals(&args[i], cap_names[k].name))
				caps |= cap_names[k].bit;
		}
	}
	/* QRESYNC implies CONDSTORE (RFC 7162 3.2.3). */
	if (caps & IMAP_CAP_QRESYNC)
		caps |= IMAP_CAP_CONDSTORE;
	c->caps = caps;
	c->caps_gen++;
	log_debug("%s: capabilities 0x%x", c->label, caps);
}

char *imap_caps_names(unsigned caps)
{
	struct buf b = BUF_INIT_MAX(BUF_MAX_UNLIMITED);

	for (size_t k = 0; k < N_ELEMENTS(cap_names); k++) {
		if (!(caps & cap_names[k].bit))
			continue;
		if ((b.len > 0 && buf_addch(&b, ' ') < 0) ||
		    buf_addstr(&b, cap_names[k].name) < 0)
			BUG("unbounded buffer");
	}
	return b.len > 0 ? buf_take(&b, NULL) : xstrdup("");
}

unsigned imap_caps_parse(const char *s)
{
	unsigned caps = 0;

	while (*s != '\0') {
		size_t n;

		s += strspn(s, " ");
		n = strcspn(s, " ");
		for (size_t k = 0; k < N_ELEMENTS(cap_names) && n > 0; k++)
			if (strlen(cap_names[k].name) == n &&
			    strncasecmp(cap_names[k].name, s, n) == 0)
				caps |= cap_names[k].bit;
		s += n;
	}
	return caps;
}

/* ---- untagged responses ---- */

static void op_refused(struct imap_op *op, const char *verb, const char *text)
{
	if (op->no_error == NULL)
		op->no_error = xasprintf("%s failed: %s", verb,
					 text && *text ? text : "refused");
}

static int handle_fetch(struct imap_client *c, const struct imap_response *r)
{
	struct imap_op *op = c->op;
	struct imap_fetch f;
	const char *err;

	if (imap_response_fetch(r, &f, &err) < 0)
		return client_fail(c, IMAP_FAIL_PROTO, "bad FETCH response: %s",
				   err);
	op->changed = true;
	imap_track_fetch(&c->trk, c->label, &f, op->own,
			 op->fcb != NULL || op->bh != NULL);
	if (op->cb_failed)
		return 0;
	if (f.has_body && op->bh != NULL) {
		if (op->bh->done != NULL && op->bh->done(op->bh->ctx, &f) < 0)
			op->cb_failed = true;
		return 0;
	}
	if (op->fcb != NULL && op->fcb(op->ctx, &f) < 0)
		op->cb_failed = true;
	return 0;
}

static int handle_vanished(struct imap_client *c,
			   const struct imap_response *r)
{
	struct imap_op *op = c->op;
	const char *set, *err;
	bool earlier;

	if (imap_response_vanished(r, &earlier, &set, &err) < 0)
		return client_fail(c, IMAP_FAIL_PROTO,
				   "bad VANISHED response: %s", err);
	op->changed = true;
	imap_track_vanished(&c->trk, c->label, set, earlier, op->own);
	if (op->gone_in != NULL && !earlier)
		op->own_gone += imap_uidranges_count_in(op->gone_in, set, NULL);
	else if (op->own != NULL && !earlier)
		op->own_gone += imap_uidranges_count_in(op->own, set, NULL);
	if (!op->cb_failed && op->vcb != NULL && op->vcb(op->ctx, set, earlier) < 0)
		op->cb_failed = true;
	return 0;
}

/* Decode a wire name into UTF-8 with '/' as separator; NULL when it
 * cannot be represented. */
static char *folder_name(const char *wire, size_t len, char delim)
{
	char *out;

	if (imap_utf7_decode(wire, len, &out) < 0)
		return NULL;
	if (delim != '/') {
		for (char *p = out; *p != '\0'; p++) {
			if (*p == '/') {
				free(out);
				return NULL;
			}
			if (delim != 0 && *p == delim)
				*p = '/';
		}
	}
	return out;
}

static int handle_list(struct imap_client *c, const struct imap_response *r)
{
	struct imap_op *op = c->op;
	struct imap_list l;
	struct imap_folder *f;
	const char *err;

	if (op->want_delim) {
		/* LIST "" "" answers with an empty name (RFC 3501 6.3.8),
		 * so only the delimiter (second argument) is read here. */
		const char *d;
		size_t dlen;

		if (r->n_args >= 2 && imap_arg_nstring(&r->args[1], &d, &dlen)) {
			c->delim = d != NULL && dlen == 1 ? d[0] : 0;
			c->delim_known = true;
		}
		return 0;
	}
	if (imap_response_list(r, &l, &err) < 0)
		return client_fail(c, IMAP_FAIL_PROTO, "bad LIST response: %s",
				   err);
	if (!op->listing) {
		/* NOTIFY's MailboxName event (RFC 5465 5.4) */
		if (op == &c->idle_wait && c->notice != NULL)
			c->notice(c->notice_ctx, NULL);
		return 0;
	}
	if (memchr(l.name, '\0', l.name_len) != NULL) {
		log_warn("%s: folder name with a NUL byte ignored", c->label);
		return 0;
	}
	if (op->n_folders >= MAX_FOLDERS)
		return client_fail(c, IMAP_FAIL_PROTO,
				   "server lists more than %d folders",
				   MAX_FOLDERS);
	ALLOC_GROW(op->folders, op->n_folders + 1, op->alloc_folders);
	f = &op->folders[op->n_folders++];
	f->wire = xstrndup(l.name, l.name_len);
	f->delim = l.delimiter;
	f->attrs = l.attrs;
	f->name = folder_name(l.name, l.name_len, l.delimiter);
	return 0;
}

static bool mailbox_equal(const char *a, size_t alen, const char *b)
{
	if (alen == 5 && strlen(b) == 5 && strncasecmp(a, "INBOX", 5) == 0 &&
	    strcasecmp(b, "INBOX") == 0)
		return true;
	return strlen(b) == alen && memcmp(a, b, alen) == 0;
}

static int handle_status(struct imap_client *c, const struct imap_response *r)
{
	struct imap_op *op = c->op;
	struct imap_status_data st;
	const char *err;

	if (imap_response_status(r, &st, &err) < 0)
		return client_fail(c, IMAP_FAIL_PROTO,
				   "bad STATUS response: %s", err);
	if (op->st == NULL) {
		/* a NOTIFY event on a folder that is not selected
		 * (RFC 5465 5.2) */
		if (op == &c->idle_wait && c->notice != NULL) {
			char *name = folder_name(st.mailbox, st.mailbox_len,
						 c->delim_known ? c->delim : '/');

			c->notice(c->notice_ctx, name);
			free(name);
		}
		return 0;
	}
	for (size_t i = 0; i < op->n_wires; i++) {
		if (op->st_got[i] ||
		    !mailbox_equal(st.mailbox, st.mailbox_len, op->wires[i]))
			continue;
		op->st[i] = st;
		op->st[i].mailbox = op->wires[i];
		op->st[i].mailbox_len = strlen(op->wires[i]);
		op->st_got[i] = true;
		return 0;
	}
	log_debug("%s: unrequested STATUS ignored", c->label);
	return 0;
}

static int search_add(struct imap_client *c, uint32_t lo, uint32_t hi)
{
	struct imap_op *op = c->op;

	if (lo > hi) {
		uint32_t t = lo;

		lo = hi;
		hi = t;
	}
	if ((uint64_t)hi - lo + 1 > MAX_SEARCH_UIDS - op->n_uids)
		return client_fail(c, IMAP_FAIL_PROTO,
				   "search result larger than %u messages",
				   MAX_SEARCH_UIDS);
	ALLOC_GROW(op->uids, op->n_uids + (hi - lo) + 1, op->alloc_uids);
	for (uint64_t u = lo; u <= hi; u++)
		op->uids[op->n_uids++] = (uint32_t)u;
	return 0;
}

static int handle_search(struct imap_client *c, const struct imap_response *r)
{
	for (size_t i = 0; i < r->n_args; i++) {
		uint64_t n;

		/* RFC 7162 3.1.5: "(MODSEQ n)" may end the list */
		if (r->args[i].type == IMAP_ARG_LIST)
			continue;
		if (!imap_arg_number(&r->args[i], UINT32_MAX, &n) || n == 0)
			return client_fail(c, IMAP_FAIL_PROTO,
					   "bad SEARCH response");
		if (c->op->searching && search_add(c, (uint32_t)n, (uint32_t)n) < 0)
			return -1;
	}
	return 0;
}

static int handle_esearch(struct imap_client *c, const struct imap_response *r)
{
	struct imap_esearch e;
	const char *err;
	size_t pos = 0;
	uint32_t lo, hi;
	bool bad = false;

	if (imap_response_esearch(r, &e, &err) < 0)
		return client_fail(c, IMAP_FAIL_PROTO,
				   "bad ESEARCH response: %s", err);
	if (!c->op->searching || e.all == NULL)
		return 0;
	while (imap_uidset_next(e.all, &pos, &lo, &hi, &bad)) {
		if (search_add(c, lo, hi) < 0)
			return -1;
	}
	if (bad)
		return client_fail(c, IMAP_FAIL_PROTO, "bad ESEARCH uid set");
	return 0;
}

static void handle_enabled(struct imap_client *c, const struct imap_response *r)
{
	for (size_t i = 0; i < r->n_args; i++) {
		if (imap_arg_atom_equals(&r->args[i], "QRESYNC"))
			c->qresync = c->condstore = true;
		else if (imap_arg_atom_equals(&r->args[i], "CONDSTORE"))
			c->condstore = true;
	}
}

static void copyuid_set(struct imap_copyuid *cu, const struct imap_resp_code *code)
{
	if (cu == NULL || code->uidset == NULL || code->uidset2 == NULL)
		return;
	imap_copyuid_release(cu);
	cu->uidvalidity = code->uidvalidity;
	cu->src = xstrdup(code->uidset);
	cu->dst = xstrdup(code->uidset2);
}

/* A COPYUID during a batch of MOVEs (imap_move_batch()) goes to the
 * command that has not had one yet and whose set holds every source UID
 * it names: the sets of one batch do not overlap. */
static void copyuid_route(struct imap_client *c,
			  const struct imap_resp_code *code)
{
	struct imap_op *op = c->op;
	uint64_t total = 0;
	size_t i;

	if (code->uidset == NULL || code->uidset2 == NULL)
		return;
	for (i = 0; i < op->n_cus; i++) {
		if (op->cus[i].src != NULL)
			continue;
		if (imap_uidranges_count_in(&op->cu_sets[i], code->uidset,
					    &total) == total && total > 0) {
			copyuid_set(&op->cus[i], code);
			return;
		}
	}
	log_debug("%s: COPYUID for UIDs %.40s matches no MOVE of the flight",
		  c->label, code->uidset);
}

/* Response codes that matter wherever they come (tagged or untagged). */
static void handle_code(struct imap_client *c, const struct imap_response *r)
{
	const struct imap_resp_code *code = &r->code;
	struct imap_selected *sel = c->op->sel;

	switch (code->code) {
	case IMAP_CODE_CAPABILITY:
		caps_set(c, code->args, code->n_args);
		break;
	case IMAP_CODE_ALERT:
		log_warn("%s: server alert: %s", c->label, r->text ? r->text : "");
		break;
	case IMAP_CODE_UIDVALIDITY:
		if (sel)
			sel->uidvalidity = (uint32_t)code->num;
		break;
	case IMAP_CODE_UIDNEXT:
		if (sel)
			sel->uidnext = (uint32_t)code->num;
		break;
	case IMAP_CODE_HIGHESTMODSEQ:
		if (sel)
			sel->highestmodseq = code->num;
		imap_track_modseq(&c->trk, code->num);
		break;
	case IMAP_CODE_NOMODSEQ:
		if (sel) {
			sel->nomodseq = true;
			sel->highestmodseq = 0;
		}
		break;
	case IMAP_CODE_READ_ONLY:
		if (sel)
			sel->readonly = true;
		break;
	case IMAP_CODE_PERMANENTFLAGS:
		if (sel == NULL)
			break;
		sel->permanent_flags = 0;
		sel->permanent_keywords = false;
		for (size_t i = 0; i < code->n_args; i++) {
			const char *s;
			size_t len;

			if (!imap_arg_atom(&code->args[i], &s, &len))
				continue;
			if (len == 2 && memcmp(s, "\\*", 2) == 0)
				sel->permanent_keywords = true;
			else
				sel->permanent_flags |= flags_from_imap(s, len);
		}
		break;
	case IMAP_CODE_COPYUID:
		if (c->op->n_cus > 0)
			copyuid_route(c, code);
		else
			copyuid_set(c->op->cu, code);
		break;
	case IMAP_CODE_MODIFIED:
		if (c->op->modified != NULL && code->n_args > 0) {
			const char *s;
			size_t len;

			if (imap_arg_atom(&code->args[0], &s, &len) &&
			    ((c->op->modified->len > 0 &&
			      buf_addch(c->op->modified, ',') < 0) ||
			     buf_add(c->op->modified, s, len) < 0))
				return (void)client_fail(c, IMAP_FAIL_PROTO,
							 "MODIFIED sets too large");
		}
		break;
	default:
		break;
	}
}

static int handle_untagged(struct imap_client *c, const struct imap_response *r)
{
	const char *kw = r->keyword ? r->keyword : "";

	if (r->status != IMAP_STATUS_NONE) {
		handle_code(c, r);
		if (c->broken)
			return -1;
		if (r->status == IMAP_STATUS_BYE) {
			free(c->bye_text);
			c->bye_text = xstrdup(r->text ? r->text : "");
			if (c->state != CS_LOGOUT)
				log_debug("%s: server says bye: %s", c->label,
					  c->bye_text);
		} else if (r->status == IMAP_STATUS_NO ||
			   r->status == IMAP_STATUS_BAD) {
			log_warn("%s: server warning: %s", c->label,
				 r->text ? r->text : "");
		}
		return 0;
	}
	if (r->has_number) {
		if (strcmp(kw, "EXISTS") == 0) {
			c->exists = r->number;
			if (c->op->sel)
				c->op->sel->exists = r->number;
			imap_track_exists(&c->trk, r->number);
			c->op->changed = true;
		} else if (strcmp(kw, "EXPUNGE") == 0) {
			if (c->exists > 0)
				c->exists--;
			imap_track_expunge(&c->trk, c->label);
			c->op->changed = true;
		} else if (strcmp(kw, "FETCH") == 0) {
			return handle_fetch(c, r);
		}
		return 0;
	}
	if (strcmp(kw, "CAPABILITY") == 0)
		caps_set(c, r->args, r->n_args);
	else if (strcmp(kw, "LIST") == 0)
		return handle_list(c, r);
	else if (strcmp(kw, "STATUS") == 0)
		return handle_status(c, r);
	else if (strcmp(kw, "SEARCH") == 0)
		return handle_search(c, r);
	else if (strcmp(kw, "ESEARCH") == 0)
		return handle_esearch(c, r);
	else if (strcmp(kw, "VANISHED") == 0)
		return handle_vanished(c, r);
	else if (strcmp(kw, "ENABLED") == 0)
		handle_enabled(c, r);
	return c->broken ? -1 : 0;
}

/* ---- sending ---- */

static int send_bytes(struct imap_client *c, const void *p, size_t n)
{
	char *err = NULL;

	if (net_conn_write(c->conn, p, n, &err) < 0)
		return client_fail_net(c, err);
	c->sent_since_wait = true;
	return 0;
}

static int send_literal(struct imap_client *c, struct imap_cmd *cmd,
			struct imap_seg *s)
{
	if (log_enabled(LOG_TRACE)) {
		if (cmd->redact_from != SIZE_MAX)
			log_trace("%s: C: <redacted>", c->label);
		else
			log_trace("%s: C: {%llu bytes}", c->label,
				  (unsigned long long)s->lit_size);
	}
	if (s->lit_data != NULL)
		return send_bytes(c, s->lit_data, (size_t)s->lit_size);
	if (s->lit_src != NULL) {
		struct imap_append_msg *m = s->lit_src;
		uint64_t left = s->lit_size;
		char *chunk = xmalloc(APPEND_CHUNK);

		while (left > 0) {
			size_t want = left < APPEND_CHUNK ? (size_t)left : APPEND_CHUNK;
			long got = m->read(m->ctx, chunk, want);

			if (got <= 0 || (size_t)got > want) {
				free(chunk);
				/* A partial literal cannot be taken back:
				 * the connection is lost for this session. */
				return client_fail(c, IMAP_FAIL_SINK,
						   "reading a message to upload failed%s",
						   got == 0 ? " (shorter than its size)" : "");
			}
			if (send_bytes(c, chunk, (size_t)got) < 0) {
				free(chunk);
				return -1;
			}
			left -= (uint64_t)got;
			c->bytes_out += (uint64_t)got;
		}
		free(chunk);
		return 0;
	}
	BUG("literal without data");
}

/* Send cmd from where it stopped, until its end or a synchronizing
 * literal (then c->cont_wait = cmd). */
static int cmd_send(struct imap_client *c, struct imap_cmd *cmd)
{
	while (cmd->next_seg < cmd->n_segs) {
		struct imap_seg *s = &cmd->segs[cmd->next_seg];

		if (!cmd->lit_next) {
			if (log_enabled(LOG_TRACE)) {
				char *t = imap_cmd_trace_seg(cmd, cmd->next_seg);

				log_trace("%s: C: %s", c->label, t);
				free(t);
			}
			if (send_bytes(c, s->text.data, s->text.len) < 0)
				return -1;
			if (!s->has_lit) {
				cmd->next_seg++;
				continue;
			}
			cmd->lit_next = true;
			if (s->sync) {
				c->cont_wait = cmd;
				return 0;
			}
		}
		if (send_literal(c, cmd, s) < 0)
			return -1;
		cmd->lit_next = false;
		cmd->next_seg++;
	}
	return 0;
}

static void queue_cmd(struct imap_client *c, struct imap_cmd *cmd,
		      imap_cmd_done_fn *done, void *ctx, size_t index)
{
	imap_cmd_finish(cmd);
	cmd->done = done;
	cmd->ctx = ctx;
	cmd->index = index;
	cmd->op = c->op;
	cmd->next = NULL;
	*c->queue_tail = cmd;
	c->queue_tail = &cmd->next;
	c->op->pending++;
}

static struct imap_cmd *new_cmd(struct imap_client *c, const char *verb)
{
	return imap_cmd_new(++c->next_tag, c->caps, verb);
}

/* Put as many queued commands on the wire as the pipeline allows. */
static int send_ready(struct imap_client *c)
{
	while (c->queue != NULL && c->cont_wait == NULL &&
	       c->n_flight < c->depth) {
		struct imap_cmd *cmd = c->queue;

		if ((cmd->exclusive && c->n_flight > 0) ||
		    (c->flight != NULL && c->flight->exclusive))
			break;
		if (cmd->overflow)
			return client_fail(c, IMAP_FAIL_PROTO,
					   "%s command too long", cmd->verb);
		c->queue = cmd->next;
		if (c->queue == NULL)
			c->queue_tail = &c->queue;
		cmd->next = NULL;
		*c->flight_tail = cmd;
		c->flight_tail = &cmd->next;
		c->n_flight++;
		if (cmd_send(c, cmd) < 0)
			return -1;
	}
	return 0;
}

/* ---- receiving ---- */

static struct imap_cmd *flight_take(struct imap_client *c, const char *tag)
{
	struct imap_cmd **pp;

	for (pp = &c->flight; *pp != NULL; pp = &(*pp)->next) {
		struct imap_cmd *cmd = *pp;

		if (strcmp(cmd->tag, tag) != 0)
			continue;
		*pp = cmd->next;
		if (*pp == NULL)
			c->flight_tail = pp;
		cmd->next = NULL;
		c->n_flight--;
		return cmd;
	}
	return NULL;
}

static int handle_tagged(struct imap_client *c, const struct imap_response *r)
{
	struct imap_cmd *cmd = flight_take(c, r->tag ? r->tag : "");

	if (cmd == NULL)
		return client_fail(c, IMAP_FAIL_PROTO,
				   "server answered unknown tag '%s'",
				   r->tag ? r->tag : "");
	if (c->cont_wait == cmd) {
		/* Refused before the literal (e.g. APPEND to a missing
		 * folder): the rest of the command is never sent. */
		c->cont_wait = NULL;
	}
	handle_code(c, r);
	if (cmd->done != NULL)
		cmd->done(c, cmd, r);
	else if (r->status != IMAP_STATUS_OK)
		op_refused(cmd->op, cmd->verb, r->text);
	/* the operation that queued it: a SELECT sent ahead belongs to
	 * its own, even when a later command's answer comes first */
	ASSERT(cmd->op->pending > 0);
	cmd->op->pending--;
	if (cmd->op->tail != NULL && cmd->op->pending == 0)
		tail_answered(c, cmd->op->tail);
	imap_cmd_free(&cmd);
	return c->broken ? -1 : 0;
}

static int handle_continuation(struct imap_client *c,
			       const struct imap_response *r)
{
	struct imap_cmd *cmd = c->cont_wait;

	if (cmd != NULL) {
		c->cont_wait = NULL;
		if (send_literal(c, cmd, &cmd->segs[cmd->next_seg]) < 0)
			return -1;
		cmd->lit_next = false;
		cmd->next_seg++;
		return cmd_send(c, cmd);
	}
	for (cmd = c->flight; cmd != NULL; cmd = cmd->next) {
		if (cmd->cont != NULL) {
			cmd->conts++;
			return cmd->cont(c, cmd, r);
		}
	}
	return client_fail(c, IMAP_FAIL_PROTO, "unexpected continuation from server");
}

/* Sink given to the parser: forwards to the running operation's handler.
 * A handler failure is remembered and the rest discarded, so the parser
 * (and the connection) stay usable. */
static int sink_begin(void *ctx, uint32_t seq, const char *section,
		      uint64_t size)
{
	struct imap_client *c = ctx;
	const struct imap_body_handler *h = c->op->bh;

	(void)section;
	if (h != NULL && !c->op->cb_failed && h->begin != NULL &&
	    h->begin(h->ctx, seq, size) < 0)
		c->op->cb_failed = true;
	return 0;
}

static int sink_data(void *ctx, const void *p, size_t n)
{
	struct imap_client *c = ctx;
	const struct imap_body_handler *h = c->op->bh;

	c->bytes_in += n;
	if (h != NULL && !c->op->cb_failed && h->data != NULL &&
	    h->data(h->ctx, p, n) < 0)
		c->op->cb_failed = true;
	return 0;
}

static int sink_end(void *ctx)
{
	struct imap_client *c = ctx;
	const struct imap_body_handler *h = c->op->bh;

	if (h != NULL && !c->op->cb_failed && h->end != NULL &&
	    h->end(h->ctx) < 0)
		c->op->cb_failed = true;
	return 0;
}

static int dispatch(struct imap_client *c, const struct imap_response *r)
{
	switch (r->kind) {
	case IMAP_RESP_TAGGED:
		return handle_tagged(c, r);
	case IMAP_RESP_CONTINUATION:
		return handle_continuation(c, r);
	case IMAP_RESP_UNTAGGED:
		return handle_untagged(c, r);
	}
	return client_fail(c, IMAP_FAIL_PROTO, "bad response kind");
}

static int64_t clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Read one complete response (waiting for bytes as needed); valid until
 * the next read. */
static int read_one(struct imap_client *c, const struct imap_response **r_r)
{
	int64_t t0 = 0;

	for (;;) {
		const char *data;
		size_t len, used = 0;
		char *err = NULL;
		int ret;

		data = net_conn_input(c->conn, &len);
		if (len > 0) {
			ret = imap_parser_feed(c->parser, data, len, &used, r_r);
			if (used > 0 && log_enabled(LOG_TRACE))
				imap_rtrace_feed(&c->rtrace, data, used);
			if (ret < 0)
				return client_fail(c, IMAP_FAIL_PROTO,
						   "bad response from server: %s",
						   imap_parser_error(c->parser));
			net_conn_consume(c->conn, used);
			if (ret == 1)
				return 0;
		}
		if (c->sent_since_wait) {
			c->waits++;
			c->sent_since_wait = false;
			t0 = clock_ns();
		}
		if (net_conn_read_more(c->conn, &err) < 0)
			return client_fail_net(c, err);
		if (t0 != 0) {
			int64_t d = clock_ns() - t0;

			if (c->min_wait_ns == 0 || d < c->min_wait_ns)
				c->min_wait_ns = d > 0 ? d : 1;
			t0 = 0;
		}
	}
}

static int read_response(struct imap_client *c)
{
	const struct imap_response *r = NULL;

	if (read_one(c, &r) < 0)
		return -1;
	return dispatch(c, r);
}

static int ahead_finish(struct imap_client *c);
static void ahead_tell(struct imap_client *c, bool ok);

/* Read the answers of an operation whose commands went out ahead of the
 * running one, into that operation; -1 when the connection failed. */
static int pump_ahead_op(struct imap_client *c, struct imap_op *ahead)
{
	struct imap_op *op = c->op;
	int r = 0;

	c->op = ahead;
	while (r == 0 && ahead->pending > 0 && !c->broken) {
		r = send_ready(c);
		if (r == 0)
			r = read_response(c);
	}
	c->op = op;
	return r < 0 || c->broken ? -1 : 0;
}

/* The body FETCH started ahead of the running operation is read first,
 * into its own operation; its refusal is its own, not the running
 * one's. Fails only with the connection. */
static int lead_finish(struct imap_client *c)
{
	c->lead = false;
	c->lead_result = pump_ahead_op(c, &c->lead_op);
	return c->lead_result;
}

/* Pump until the running operation has no pending command. */
static int run(struct imap_client *c)
{
	if (c->login_af != NULL && login_finish(c) < 0)
		return -1;
	if (c->lead && lead_finish(c) < 0)
		return -1;
	if (c->ahead && ahead_finish(c) < 0)
		return -1;
	while (c->op->pending > 0) {
		if (c->broken)
			return -1;
		if (send_ready(c) < 0)
			return -1;
		if (read_response(c) < 0)
			return -1;
	}
	return c->broken ? -1 : 0;
}

/* ---- operations ---- */

static void enable_done(struct imap_client *c, struct imap_cmd *cmd,
			const struct imap_response *r)
{
	(void)cmd;
	if (r->status != IMAP_STATUS_OK) {
		/* not this operation's failure: carry on without QRESYNC */
		log_debug("%s: ENABLE QRESYNC refused: %s", c->label,
			  r->text ? r->text : "");
		c->qresync_asked = false;
	}
}

static int op_begin(struct imap_client *c, struct imap_op *op,
		    char **error_r)
{
	memset(op, 0, sizeof(*op));
	if (error_r)
		*error_r = NULL;
	if (c->broken) {
		c->failure = c->broken_failure;
		if (error_r)
			*error_r = xstrdup(c->broken_error);
		return -1;
	}
	c->failure = IMAP_FAIL_NONE;
	c->op = op;
	if (c->enable_due) {
		struct imap_cmd *cmd = new_cmd(c, "ENABLE");

		c->enable_due = false;
		imap_cmd_add(cmd, " QRESYNC", 8);
		queue_cmd(c, cmd, enable_done, NULL, 0);
	}
	return 0;
}

/* Finish an operation: r is the pump's result. */
static int op_end(struct imap_client *c, struct imap_op *op, int r,
		  char **error_r)
{
	c->op = &c->idle_op;
	memset(&c->idle_op, 0, sizeof(c->idle_op));
	if (r < 0 || c->broken) {
		free(op->no_error);
		op->no_error = NULL;
		free(c->ahead_error);
		c->ahead_error = NULL;
		c->failure = c->broken ? c->broken_failure : IMAP_FAIL_NET;
		if (error_r)
			*error_r = xstrdup(c->broken ? c->broken_error :
					   "connection failed");
		return -1;
	}
	if (c->ahead_error != NULL) {
		/* the SELECT sent ahead of this operation failed: what
		 * followed it ran without that folder selected */
		free(op->no_error);
		op->no_error = NULL;
		c->failure = IMAP_FAIL_NO;
		if (error_r)
			*error_r = c->ahead_error;
		else
			free(c->ahead_error);
		c->ahead_error = NULL;
		return -1;
	}
	if (op->cb_failed) {
		free(op->no_error);
		op->no_error = NULL;
		c->failure = IMAP_FAIL_SINK;
		if (error_r)
			*error_r = xstrdup("aborted by a callback");
		return -1;
	}
	if (op->no_error != NULL) {
		c->failure = IMAP_FAIL_NO;
		if (error_r)
			*error_r = op->no_error;
		else
			free(op->no_error);
		op->no_error = NULL;
		return -1;
	}
	return 0;
}

static int simple_cmd(struct imap_client *c, struct imap_cmd *cmd,
		      char **error_r)
{
	struct imap_op op;

	if (op_begin(c, &op, error_r) < 0) {
		imap_cmd_free(&cmd);
		return -1;
	}
	queue_cmd(c, cmd, NULL, NULL, 0);
	return op_end(c, &op, run(c), error_r);
}

/* ---- connect, STARTTLS, login ---- */

static int read_greeting(struct imap_client *c)
{
	const struct imap_response *r = NULL;

	if (read_one(c, &r) < 0)
		return -1;
	if (r->kind != IMAP_RESP_UNTAGGED)
		return client_fail(c, IMAP_FAIL_PROTO, "bad greeting from server");
	switch (r->status) {
	case IMAP_STATUS_OK:
		break;
	case IMAP_STATUS_PREAUTH:
		c->preauth = true;
		break;
	case IMAP_STATUS_BYE:
		return client_fail(c, IMAP_FAIL_NET,
				   "server refused the connection: %s",
				   r->text ? r->text : "");
	default:
		return client_fail(c, IMAP_FAIL_PROTO, "bad greeting from server");
	}
	handle_code(c, r);
	client_set_state(c, CS_GREETED);
	return c->broken ? -1 : 0;
}

static int get_capabilities(struct imap_client *c, char **error_r)
{
	return simple_cmd(c, new_cmd(c, "CAPABILITY"), error_r);
}

static int do_starttls(struct imap_client *c,
		       const struct imap_client_settings *set, char **error_r)
{
	struct net_tls_settings tls = {
		.host = set->host, .ca_file = set->ca_file,
		.fingerprint = set->fingerprint,
	};
	struct imap_parser_limits lim;
	struct imap_cmd *cmd;
	struct imap_op op;
	char *err = NULL;
	int r;

	if (!(c->caps & IMAP_CAP_STARTTLS)) {
		client_fail(c, IMAP_FAIL_TLS,
			    "server '%s' does not offer STARTTLS; refusing to continue without tls",
			    set->host);
		*error_r = xstrdup(c->broken_error);
		return -1;
	}
	if (op_begin(c, &op, error_r) < 0)
		return -1;
	cmd = new_cmd(c, "STARTTLS");
	cmd->exclusive = true;
	queue_cmd(c, cmd, NULL, NULL, 0);
	r = run(c);
	if (r == 0 && op.no_error != NULL) {
		client_fail(c, IMAP_FAIL_TLS, "server '%s' refused STARTTLS: %s",
			    set->host, op.no_error);
		r = -1;
	}
	if (op_end(c, &op, r, error_r) < 0)
		return -1;
	/* Whatever followed the OK in clear text is discarded (by the
	 * connection) and the parser starts afresh: nothing the server or
	 * a man in the middle sent before the handshake is believed. */
	imap_parser_free(&c->parser);
	imap_parser_limits_default(&lim);
	c->parser = imap_parser_new(&lim);
	{
		static const struct imap_body_sink sink_tmpl = {
			sink_begin, sink_data, sink_end, NULL
		};
		struct imap_body_sink sink = sink_tmpl;

		sink.ctx = c;
		imap_parser_set_body_sink(c->parser, &sink);
	}
	if (net_conn_start_tls(c->conn, &tls, &err) < 0) {
		client_fail(c, IMAP_FAIL_TLS, "%s", err);
		free(err);
		*error_r = xstrdup(c->broken_error);
		return -1;
	}
	/* Capabilities from before the handshake are not trusted: the
	 * caller asks again (or logs in early, then asks). */
	c->caps = 0;
	c->caps_gen = 0;
	return 0;
}

/* ---- authentication ---- */

struct auth_ctx {
	char *resp;             /* base64 response, secret */
	bool sent;
};

static int auth_cont(struct imap_client *c, struct imap_cmd *cmd,
		     const struct imap_response *r)
{
	struct auth_ctx *a = cmd->ctx;
	int ret;

	(void)r;
	log_trace("%s: C: <redacted>", c->label);
	if (!a->sent && a->resp != NULL) {
		a->sent = true;
		ret = send_bytes(c, a->resp, strlen(a->resp));
	} else {
		/* A second challenge is an error report (XOAUTH2 sends
		 * JSON): answer with an empty line to get the NO. */
		ret = 0;
	}
	if (ret == 0)
		ret = send_bytes(c, "\r\n", 2);
	return ret;
}

static void auth_done(struct imap_client *c, struct imap_cmd *cmd,
		      const struct imap_response *r)
{
	(void)cmd;
	if (r->status != IMAP_STATUS_OK && c->op->no_error == NULL)
		c->op->no_error = xstrdup(r->text && *r->text ? r->text :
					  "authentication refused");
}

/* "user" with ',' and '=' escaped for a GS2 header (RFC 5801 4). */
static char *gs2_user(const char *user)
{
	struct buf b = BUF_INIT_MAX(BUF_MAX_UNLIMITED);
	int r = 0;

	for (const char *p = user; *p && r == 0; p++) {
		if (*p == ',')
			r = buf_addstr(&b, "=2C");
		else if (*p == '=')
			r = buf_addstr(&b, "=3D");
		else
			r = buf_addch(&b, *p);
	}
	if (r < 0)
		BUG("unbounded buffer");
	return buf_take(&b, NULL);
}

static char *sasl_response(const struct imap_client_settings *set,
			   enum imap_auth mech)
{
	struct buf raw = BUF_INIT_MAX(BUF_MAX_UNLIMITED);
	char *out, *gs2;
	int r = 0;

	switch (mech) {
	case IMAP_AUTH_PLAIN:
		/* authzid NUL authcid NUL passwd (RFC 4616) */
		r |= buf_addch(&raw, '\0');
		r |= buf_addstr(&raw, set->user);
		r |= buf_addch(&raw, '\0');
		r |= buf_addstr(&raw, set->secret);
		break;
	case IMAP_AUTH_XOAUTH2:
		r |= buf_addf(&raw, "user=%s\001auth=Bearer %s\001\001",
			      set->user, set->secret);
		break;
	case IMAP_AUTH_OAUTHBEARER:
		gs2 = gs2_user(set->user);
		r |= buf_addf(&raw, "n,a=%s,\001host=%s\001port=%u\001auth=Bearer %s\001\001",
			      gs2, set->host, set->port, set->secret);
		free(gs2);
		break;
	default:
		BUG("bad sasl mechanism %d", mech);
	}
	if (r != 0)
		BUG("unbounded buffer");
	out = imap_base64(raw.data, raw.len);
	buf_release_secure(&raw);
	return out;
}

static const char *mech_name(enum imap_auth mech)
{
	switch (mech) {
	case IMAP_AUTH_PLAIN:
		return "PLAIN";
	case IMAP_AUTH_XOAUTH2:
		return "XOAUTH2";
	case IMAP_AUTH_OAUTHBEARER:
		return "OAUTHBEARER";
	default:
		return "LOGIN";
	}
}

/* A login in flight: authenticate_send() .. authenticate_finish(). */
struct auth_flight {
	struct auth_ctx a;
	struct imap_op op;
	enum imap_auth mech;
	bool early;                 /* sent by early_auth_start() */
};

static int authenticate_send(struct imap_client *c,
			     const struct imap_client_settings *set,
			     struct auth_flight *af, unsigned caps,
			     char **error_r)
{
	enum imap_auth mech = set->auth;
	struct imap_cmd *cmd;

	memset(af, 0, sizeof(*af));
	if (set->user == NULL || set->secret == NULL) {
		client_fail(c, IMAP_FAIL_AUTH, "no user name or password for '%s'",
			    set->host);
		*error_r = xstrdup(c->broken_error);
		return -1;
	}
	if (mech == IMAP_AUTH_AUTO)
		mech = (caps & IMAP_CAP_AUTH_PLAIN) ? IMAP_AUTH_PLAIN :
			IMAP_AUTH_LOGIN;
	if (mech == IMAP_AUTH_LOGIN && (caps & IMAP_CAP_LOGINDISABLED)) {
		client_fail(c, IMAP_FAIL_AUTH,
			    "server '%s' does not allow LOGIN here (LOGINDISABLED)%s",
			    set->host, net_conn_is_tls(c->conn) ? "" :
			    "; use tls: starttls or implicit");
		*error_r = xstrdup(c->broken_error);
		return -1;
	}
	af->mech = mech;
	if (op_begin(c, &af->op, error_r) < 0)
		return -1;
	if (mech == IMAP_AUTH_LOGIN) {
		cmd = imap_cmd_login(++c->next_tag, caps, set->user,
				     set->secret);
	} else {
		af->a.resp = sasl_response(set, mech);
		if (caps & IMAP_CAP_SASL_IR)
			af->a.sent = true;
		cmd = imap_cmd_authenticate(++c->next_tag, caps,
					    mech_name(mech), af->a.resp,
					    (caps & IMAP_CAP_SASL_IR) != 0);
		cmd->cont = auth_cont;
	}
	cmd->secret = true;
	cmd->exclusive = true;
	queue_cmd(c, cmd, auth_done, &af->a, 0);
	return 0;
}

/* Waits for the answer. 0: logged in; 1: refused, *refusal_r says how
 * (the caller decides); -1: the connection failed. */
static int authenticate_wait(struct imap_client *c, struct auth_flight *af,
			     char **refusal_r, char **error_r)
{
	int r = run(c);

	*refusal_r = NULL;
	if (af->a.resp != NULL) {
		secure_zero(af->a.resp, strlen(af->a.resp));
		FREE_AND_NULL(af->a.resp);
	}
	if (r == 0 && af->op.no_error != NULL) {
		*refusal_r = af->op.no_error;
		af->op.no_error = NULL;
		(void)op_end(c, &af->op, 0, NULL);
		return 1;
	}
	return op_end(c, &af->op, r, error_r);
}

static int auth_refused(struct imap_client *c,
			const struct imap_client_settings *set,
			enum imap_auth mech, char *refusal, char **error_r)
{
	client_fail(c, IMAP_FAIL_AUTH,
		    "authentication as '%s' on '%s' failed (%s): %s",
		    set->user, set->host, mech_name(mech), refusal);
	free(refusal);
	*error_r = xstrdup(c->broken_error);
	return -1;
}

static int authenticate(struct imap_client *c,
			const struct imap_client_settings *set, char **error_r)
{
	struct auth_flight af;
	char *refusal = NULL;
	int r;

	if (authenticate_send(c, set, &af, c->caps, error_r) < 0)
		return -1;
	r = authenticate_wait(c, &af, &refusal, error_r);
	if (r == 1)
		return auth_refused(c, set, af.mech, refusal, error_r);
	return r;
}

/*
 * Early login. Over TLS, the login can leave in the flight of the
 * handshake's last message instead of after the greeting (implicit TLS)
 * or after a CAPABILITY (STARTTLS): a round trip less per connection.
 * That needs to know, before the server says so, that it takes
 * AUTHENTICATE PLAIN with an initial response: set->login_hint, from
 * what this server's greeting offered to an earlier connection or run.
 * The peer is the verified TLS server the credentials would go to a
 * moment later anyway. A hint gone stale (the server no longer offers
 * both) costs its refusal and a login the usual way.
 */
static bool early_auth_wanted(const struct imap_client *c,
			      const struct imap_client_settings *set)
{
	return set->login_hint != NULL &&
	       atomic_load(&set->login_hint->early) == IMAP_HINT_EARLY_AUTH &&
	       set->tls != IMAP_TLS_NONE && net_conn_is_tls(c->conn) &&
	       (set->auth == IMAP_AUTH_AUTO || set->auth == IMAP_AUTH_PLAIN) &&
	       set->user != NULL && set->secret != NULL;
}

/* What the server's capabilities (greeting, or after STARTTLS) say for
 * the next connection's early login. */
static void early_auth_learn(const struct imap_client *c,
			     struct imap_login_hint *hint, enum imap_tls tls)
{
	unsigned both = IMAP_CAP_SASL_IR | IMAP_CAP_AUTH_PLAIN;

	if (hint == NULL || c->caps_gen == 0 || tls == IMAP_TLS_NONE)
		return;
	atomic_store(&hint->early, (c->caps & both) == both
					      ? IMAP_HINT_EARLY_AUTH
					      : IMAP_HINT_NO_EARLY_AUTH);
}

static void auth_flight_free(struct auth_flight **afp)
{
	struct auth_flight *af = *afp;

	if (af == NULL)
		return;
	if (af->a.resp != NULL) {
		secure_zero(af->a.resp, strlen(af->a.resp));
		free(af->a.resp);
	}
	free(af);
	*afp = NULL;
}

/* The connection failed with an early login in flight. */
static void early_auth_abandon(struct imap_client *c, struct auth_flight *af)
{
	if (af->a.resp != NULL) {
		secure_zero(af->a.resp, strlen(af->a.resp));
		FREE_AND_NULL(af->a.resp);
	}
	(void)op_end(c, &af->op, -1, NULL);
	af->early = false;
}

/* The login goes on the wire now, before anything is read. */
static int early_auth_start(struct imap_client *c,
			    const struct imap_client_settings *set,
			    struct auth_flight *af, char **error_r)
{
	if (authenticate_send(c, set, af,
			      IMAP_CAP_SASL_IR | IMAP_CAP_AUTH_PLAIN,
			      error_r) < 0)
		return -1;
	af->early = true;
	log_debug("%s: logging in without waiting for the server", c->label);
	if (send_ready(c) < 0) {
		early_auth_abandon(c, af);
		*error_r = xstrdup(c->broken_error);
		return -1;
	}
	return 0;
}

/* After the greeting (and STARTTLS): the login, or the answer to the
 * one sent early. A refused early login is the server's last word only
 * when it offers what the login assumed; otherwise the hint was stale. */
static int login(struct imap_client *c, const struct imap_client_settings *set,
		 struct auth_flight *af, char **error_r)
{
	unsigned both = IMAP_CAP_SASL_IR | IMAP_CAP_AUTH_PLAIN;
	char *refusal = NULL;
	int r;

	if (!af->early)
		return authenticate(c, set, error_r);
	af->early = false;
	r = authenticate_wait(c, af, &refusal, error_r);
	if (r <= 0)
		return r;
	if (c->preauth) {
		/* logged in by the greeting: the login was superfluous */
		free(refusal);
		return 0;
	}
	if (c->caps_gen == 0 && get_capabilities(c, error_r) < 0) {
		free(refusal);
		return -1;
	}
	if ((c->caps & both) == both)
		return auth_refused(c, set, af->mech, refusal, error_r);
	log_debug("%s: the early login was refused (the server no longer "
		  "offers SASL-IR and AUTH=PLAIN); logging in again", c->label);
	free(refusal);
	early_auth_learn(c, set->login_hint, set->tls);
	return authenticate(c, set, error_r);
}

/* QRESYNC is on, or its ENABLE goes out ahead of the command being
 * built (RFC 7162 3.2.3 only asks that it comes first). */
static bool qresync_on(const struct imap_client *c)
{
	return c->qresync || c->qresync_asked;
}

/* After login: CONDSTORE is usable as advertised; ENABLE QRESYNC waits
 * for the first operation's flight. */
static void enable_qresync(struct imap_client *c)
{
	c->condstore = (c->caps & IMAP_CAP_CONDSTORE) != 0;
	if ((c->caps & (IMAP_CAP_ENABLE | IMAP_CAP_QRESYNC)) ==
	    (IMAP_CAP_ENABLE | IMAP_CAP_QRESYNC))
		c->enable_due = c->qresync_asked = true;
}

/* Leave the answer to the login sent early for the first operation
 * (login_finish()): it and the greeting are read in that operation's
 * flight. Only for implicit TLS, where the greeting names the
 * capabilities that tell a stale hint from a wrong password. */
static void login_defer(struct imap_client *c,
			const struct imap_client_settings *set,
			struct auth_flight **afp)
{
	/* the login held the pipeline to itself; it may lead it now */
	if (c->flight != NULL)
		c->flight->exclusive = false;
	c->op = &c->idle_op;
	c->login_af = *afp;
	*afp = NULL;
	c->login_user = xstrdup(set->user);
	c->login_hint = set->login_hint;
	c->caps = atomic_load(&set->login_hint->caps);
	client_set_state(c, CS_AUTHENTICATED);
	enable_qresync(c);
	log_debug("%s: the first commands go with the login", c->label);
}

static int client_connect(const struct imap_client_settings *set, bool first,
			  struct imap_client **c_r,
			  enum imap_failure *failure_r, char **error_r)
{
	struct imap_client *c;
	struct imap_parser_limits lim;
	struct imap_body_sink sink = { sink_begin, sink_data, sink_end, NULL };
	struct auth_flight *af = xcalloc(1, sizeof(*af));
	char *err = NULL;

	*c_r = NULL;
	*failure_r = IMAP_FAIL_NONE;
	*error_r = NULL;
	c = xcalloc(1, sizeof(*c));
	c->host = xstrdup(set->host ? set->host : "");
	c->label = xstrdup(set->label ? set->label : c->host);
	c->depth = set->pipeline_depth ? set->pipeline_depth : 64;
	c->queue_tail = &c->queue;
	c->flight_tail = &c->flight;
	c->op = &c->idle_op;
	imap_rtrace_init(&c->rtrace, trace_emit, c);
	imap_parser_limits_default(&lim);
	c->parser = imap_parser_new(&lim);
	sink.ctx = c;
	imap_parser_set_body_sink(c->parser, &sink);

	log_debug("%s: connecting to %s port %u", c->label, c->host, set->port);
	if (net_connect(c->host, set->port, set->connect_timeout,
			set->io_timeout, &c->conn, &err) < 0) {
		client_fail(c, IMAP_FAIL_NET, "%s", err);
		free(err);
		goto failed;
	}
	if (set->tls == IMAP_TLS_IMPLICIT) {
		struct net_tls_settings tls = {
			.host = set->host, .ca_file = set->ca_file,
			.fingerprint = set->fingerprint,
		};

		if (net_conn_start_tls(c->conn, &tls, &err) < 0) {
			client_fail(c, IMAP_FAIL_TLS, "%s", err);
			free(err);
			goto failed;
		}
		if (early_auth_wanted(c, set) && early_auth_start(c, set, af,
								   &err) < 0)
			goto failed_err;
		if (af->early && first &&
		    atomic_load(&set->login_hint->caps) != 0) {
			login_defer(c, set, &af);
			*c_r = c;
			return 0;
		}
	}
	if (read_greeting(c) < 0)
		goto failed_af;
	if (set->tls == IMAP_TLS_STARTTLS) {
		if (c->preauth) {
			/* RFC 3501 forbids STARTTLS in the authenticated
			 * state: PREAUTH on a clear connection is refused. */
			client_fail(c, IMAP_FAIL_TLS,
				    "server '%s' sent PREAUTH; cannot start tls",
				    set->host);
			goto failed;
		}
		if (c->caps_gen == 0 && get_capabilities(c, &err) < 0)
			goto failed_err;
		if (do_starttls(c, set, &err) < 0)
			goto failed_err;
		if (early_auth_wanted(c, set) && early_auth_start(c, set, af,
								   &err) < 0)
			goto failed_err;
	}
	if (!af->early && c->caps_gen == 0 && get_capabilities(c, &err) < 0)
		goto failed_err;
	early_auth_learn(c, set->login_hint, set->tls);
	if (!c->preauth || af->early) {
		unsigned gen = c->caps_gen;

		if (login(c, set, af, &err) < 0)
			goto failed_err;
		/* Capabilities change with login; servers often announce
		 * the new ones in the OK, else ask (RFC 3501 6.2.3). */
		if (c->caps_gen == gen && get_capabilities(c, &err) < 0)
			goto failed_err;
		if (set->login_hint != NULL)
			atomic_store(&set->login_hint->caps, c->caps);
	}
	auth_flight_free(&af);
	client_set_state(c, CS_AUTHENTICATED);
	enable_qresync(c);
	log_debug("%s: logged in%s%s", c->label,
		  net_conn_is_tls(c->conn) ? " over " : "",
		  net_conn_tls_info(c->conn));
	*c_r = c;
	return 0;

failed_af:
	if (af->early)
		early_auth_abandon(c, af);
	goto failed;
failed_err:
	free(err);
failed:
	auth_flight_free(&af);
	*failure_r = c->broken ? c->broken_failure : IMAP_FAIL_NET;
	*error_r = xstrdup(c->broken ? c->broken_error : "connection failed");
	imap_client_free(&c);
	return -1;
}

int imap_client_connect(const struct imap_client_settings *set,
			struct imap_client **c_r,
			enum imap_failure *failure_r, char **error_r)
{
	return client_connect(set, false, c_r, failure_r, error_r);
}

int imap_client_connect_first(const struct imap_client_settings *set,
			      struct imap_client **c_r,
			      enum imap_failure *failure_r, char **error_r)
{
	return client_connect(set, true, c_r, failure_r, error_r);
}

/*
 * The first operation after imap_client_connect_first(): its commands go
 * out behind the login, then the greeting and the login's answer are
 * read. A refusal fails the operation: with IMAP_FAIL_AUTH when the
 * greeting offered what the login assumed (a wrong password), else as a
 * lost connection after which the caller connects again, the usual way
 * (the hint was stale). The run() that called it goes on reading its
 * operation's answers.
 */
static int login_finish(struct imap_client *c)
{
	unsigned both = IMAP_CAP_SASL_IR | IMAP_CAP_AUTH_PLAIN, gen;
	struct auth_flight *af = c->login_af;
	struct imap_op *op = c->op;
	char *refusal = NULL, *err = NULL;
	unsigned greeting_caps = 0;
	bool greeting_known, ahead;
	int r;

	c->login_af = NULL;
	if (send_ready(c) < 0)
		goto broken;
	c->op = &af->op;
	if (read_greeting(c) < 0)
		goto broken;
	greeting_known = c->caps_gen > 0;
	greeting_caps = c->caps;
	early_auth_learn(c, c->login_hint, IMAP_TLS_IMPLICIT);
	gen = c->caps_gen;
	/* a SELECT queued ahead is answered after the login: not yet */
	ahead = c->ahead;
	c->ahead = false;
	r = authenticate_wait(c, af, &refusal, &err);
	c->ahead = ahead;
	c->op = op;
	if (r < 0) {
		free(err);
		goto broken;
	}
	if (r == 1 && c->preauth) {
		FREE_AND_NULL(refusal);   /* logged in by the greeting */
		r = 0;
	}
	if (r == 0) {
		if (c->caps_gen == gen) {
			/* no capabilities in the OK: the hint's are all we
			 * have; the next connection asks */
			if (c->login_hint != NULL)
				atomic_store(&c->login_hint->caps, 0);
		} else if (c->login_hint != NULL) {
			atomic_store(&c->login_hint->caps, c->caps);
		}
		log_debug("%s: logged in%s%s", c->label,
			  net_conn_is_tls(c->conn) ? " over " : "",
			  net_conn_tls_info(c->conn));
		auth_flight_free(&af);
		return 0;
	}
	if (greeting_known && (greeting_caps & both) == both) {
		client_fail(c, IMAP_FAIL_AUTH,
			    "authentication as '%s' on '%s' failed (%s): %s",
			    c->login_user ? c->login_user : "", c->host,
			    mech_name(af->mech), refusal);
	} else {
		if (c->login_hint != NULL)
			atomic_store(&c->login_hint->early,
				     IMAP_HINT_NO_EARLY_AUTH);
		client_fail(c, IMAP_FAIL_NET,
			    "the server refused a login sent ahead of its "
			    "greeting (%s); logging in again", refusal);
	}
	free(refusal);
	auth_flight_free(&af);
	c->login_failed = true;
	return -1;
broken:
	/* the login's command stays in the flight list of the broken
	 * connection, pointing here: freed with the client */
	c->op = op;
	if (af->a.resp != NULL) {
		secure_zero(af->a.resp, strlen(af->a.resp));
		FREE_AND_NULL(af->a.resp);
	}
	c->login_dead = af;
	c->login_failed = true;
	return -1;
}

void imap_client_free(struct imap_client **cp)
{
	struct imap_client *c = *cp;

	if (c == NULL)
		return;
	cmds_free(&c->queue);
	cmds_free(&c->flight);
	net_conn_free(&c->conn);
	imap_parser_free(&c->parser);
	imap_rtrace_release(&c->rtrace);
	while (c->tails != NULL)
		tail_free(c, c->tails);
	imap_track_release(&c->trk);
	ahead_tell(c, false);
	auth_flight_free(&c->login_af);
	auth_flight_free(&c->login_dead);
	free(c->login_user);
	free(c->ahead_wire);
	free(c->ahead_error);
	free(c->lead_op.no_error);
	free(c->broken_error);
	free(c->bye_text);
	free(c->host);
	free(c->label);
	free(c);
	*cp = NULL;
}

void imap_client_close(struct imap_client **cp)
{
	struct imap_client *c = *cp;
	char *err = NULL;

	if (c == NULL)
		return;
	log_debug("%s: %u round trips after the greeting", c->label,
		  c->waits);
	if (!c->broken && c->conn != NULL) {
		client_set_state(c, CS_LOGOUT);
		if (c->flight == NULL && c->queue == NULL) {
			/* Every command before it has been answered: say
			 * goodbye and go, without waiting for the server to
			 * close the mailbox (milliseconds per connection). */
			struct imap_cmd *cmd = new_cmd(c, "LOGOUT");

			imap_cmd_finish(cmd);
			if (cmd_send(c, cmd) < 0 ||
			    net_conn_flush(c->conn, &err) < 0)
				log_debug("%s: logout: %s", c->label,
					  err ? err : "send failed");
			imap_cmd_free(&cmd);
		} else if (simple_cmd(c, new_cmd(c, "LOGOUT"), &err) < 0) {
			log_debug("%s: logout: %s", c->label, err);
		}
		free(err);
	}
	imap_client_free(cp);
}

unsigned imap_client_caps(const struct imap_client *c)
{
	return c->caps;
}

bool imap_client_has(const struct imap_client *c, enum imap_cap cap)
{
	return (c->caps & (unsigned)cap) != 0;
}

bool imap_client_qresync(const struct imap_client *c)
{
	return qresync_on(c);
}

bool imap_client_condstore(const struct imap_client *c)
{
	return c->condstore;
}

enum imap_failure imap_client_failure(const struct imap_client *c)
{
	return c->failure;
}

bool imap_client_own_state(const struct imap_client *c,
			   struct imap_own_state *s_r)
{
	return !c->broken && imap_track_get(&c->trk, s_r);
}

void imap_client_expect_gone(struct imap_client *c, const char *wire,
			     const char *uidset)
{
	if (c->trk.on && strcmp(c->trk.wire, wire) == 0)
		imap_track_expect_gone(&c->trk, uidset);
}

bool imap_client_broken(const struct imap_client *c)
{
	return c->broken;
}

int64_t imap_client_min_wait_ns(const struct imap_client *c)
{
	return c->min_wait_ns;
}

uint64_t imap_client_bytes_in(const struct imap_client *c)
{
	return c->bytes_in;
}

uint64_t imap_client_bytes_out(const struct imap_client *c)
{
	return c->bytes_out;
}

/* ---- folders ---- */

static int folder_cmp(const void *a, const void *b)
{
	const struct imap_folder *x = a, *y = b;

	return strcmp(x->name ? x->name : x->wire, y->name ? y->name : y->wire);
}

void imap_folders_free(struct imap_folder *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(f[i].wire);
		free(f[i].name);
	}
	free(f);
}

static void queue_list(struct imap_client *c, struct imap_op *op)
{
	struct imap_cmd *cmd;

	op->listing = true;
	cmd = new_cmd(c, "LIST");
	imap_cmd_add(cmd, " \"\" \"*\"", 7);
	if (c->caps & IMAP_CAP_SPECIAL_USE)
		imap_cmd_addf(cmd, " RETURN (SPECIAL-USE)");
	queue_cmd(c, cmd, NULL, NULL, 0);
}

/* After a LIST that went well: sorted, duplicates dropped, to f_r. */
static void finish_list(struct imap_op *op, struct imap_folder **f_r,
			size_t *n_r)
{
	size_t i, k = 0;

	if (op->n_folders > 1)
		qsort(op->folders, op->n_folders, sizeof(*op->folders),
		      folder_cmp);
	/* a server may list one name twice; keep the first */
	for (i = 0; i < op->n_folders; i++) {
		if (k > 0 && strcmp(op->folders[k - 1].wire,
				    op->folders[i].wire) == 0) {
			free(op->folders[i].wire);
			free(op->folders[i].name);
			continue;
		}
		op->folders[k++] = op->folders[i];
	}
	*f_r = op->folders;
	*n_r = k;
	op->folders = NULL;
}

int imap_list_folders(struct imap_client *c, struct imap_folder **f_r,
		      size_t *n_r, char **error_r)
{
	struct imap_op op;
	int r;

	*f_r = NULL;
	*n_r = 0;
	if (op_begin(c, &op, error_r) < 0)
		return -1;
	queue_list(c, &op);
	r = run(c);
	if (r == 0 && op.no_error == NULL && !op.cb_failed)
		finish_list(&op, f_r, n_r);
	imap_folders_free(op.folders, op.folders ? op.n_folders : 0);
	return op_end(c, &op, r, error_r);
}

char imap_client_delimiter(struct imap_client *c)
{
	struct imap_cmd *cmd;
	struct imap_op op;
	char *err = NULL;

	if (c->delim_known || c->broken)
		return c->delim;
	if (op_begin(c, &op, &err) < 0) {
		free(err);
		return 0;
	}
	op.want_delim = true;
	cmd = new_cmd(c, "LIST");
	imap_cmd_add(cmd, " \"\" \"\"", 6);
	queue_cmd(c, cmd, NULL, NULL, 0);
	if (op_end(c, &op, run(c), &err) < 0) {
		log_debug("%s: cannot get the hierarchy delimiter: %s",
			  c->label, err);
		free(err);
	}
	return c->delim;
}

static void status_done(struct imap_client *c, struct imap_cmd *cmd,
			const struct imap_response *r)
{
	bool *ok = cmd->ctx;

	(void)c;
	ok[cmd->index] = r->status == IMAP_STATUS_OK;
	if (r->status != IMAP_STATUS_OK)
		log_debug("%s: STATUS refused: %s", c->label, r->text ? r->text : "");
}

static void queue_status(struct imap_client *c, struct imap_op *op,
			 const char *const *wires, size_t n,
			 struct imap_status_data *st_r, bool *ok_r)
{
	memset(st_r, 0, n * sizeof(*st_r));
	op->wires = wires;
	op->n_wires = n;
	op->st = st_r;
	op->st_got = xcalloc(n ? n : 1, sizeof(bool));
	for (size_t i = 0; i < n; i++) {
		struct imap_cmd *cmd = new_cmd(c, "STATUS");

		ok_r[i] = false;
		imap_cmd_add(cmd, " ", 1);
		imap_cmd_add_astring(cmd, wires[i], strlen(wires[i]));
		imap_cmd_addf(cmd, " (MESSAGES UIDNEXT UIDVALIDITY%s)",
			      (c->caps & IMAP_CAP_CONDSTORE) ?
			      " HIGHESTMODSEQ" : "");
		queue_cmd(c, cmd, status_done, ok_r, i);
	}
}

/* The STATUS batch, and LIST in the same flight when f_r is not NULL. */
static int status_op(struct imap_client *c, const char *const *wires,
		     size_t n, struct imap_status_data *st_r, bool *ok_r,
		     struct imap_folder **f_r, size_t *n_r, char **error_r)
{
	struct imap_op op;
	int r;

	if (f_r != NULL) {
		*f_r = NULL;
		*n_r = 0;
	}
	if (op_begin(c, &op, error_r) < 0)
		return -1;
	queue_status(c, &op, wires, n, st_r, ok_r);
	if (f_r != NULL)
		queue_list(c, &op);
	r = run(c);
	free(op.st_got);
	if (f_r != NULL && r == 0 && op.no_error == NULL && !op.cb_failed)
		finish_list(&op, f_r, n_r);
	imap_folders_free(op.folders, op.folders ? op.n_folders : 0);
	return op_end(c, &op, r, error_r);
}

int imap_status_batch(struct imap_client *c, const char *const *wires,
		      size_t n, struct imap_status_data *st_r, bool *ok_r,
		      char **error_r)
{
	return status_op(c, wires, n, st_r, ok_r, NULL, NULL, error_r);
}

int imap_status_then_list(struct imap_client *c, const char *const *wires,
			  size_t n, struct imap_status_data *st_r, bool *ok_r,
			  struct imap_folder **f_r, size_t *n_r,
			  char **error_r)
{
	return status_op(c, wires, n, st_r, ok_r, f_r, n_r, error_r);
}

static int mailbox_cmd(struct imap_client *c, const char *verb,
		       const char *a, const char *b, char **error_r)
{
	struct imap_cmd *cmd = new_cmd(c, verb);

	imap_cmd_add(cmd, " ", 1);
	imap_cmd_add_astring(cmd, a, strlen(a));
	if (b != NULL) {
		imap_cmd_add(cmd, " ", 1);
		imap_cmd_add_astring(cmd, b, strlen(b));
	}
	return simple_cmd(c, cmd, error_r);
}

int imap_create(struct imap_client *c, const char *wire, char **error_r)
{
	return mailbox_cmd(c, "CREATE", wire, NULL, error_r);
}

int imap_delete(struct imap_client *c, const char *wire, char **error_r)
{
	return mailbox_cmd(c, "DELETE", wire, NULL, error_r);
}

int imap_rename(struct imap_client *c, const char *from, const char *to,
		char **error_r)
{
	return mailbox_cmd(c, "RENAME", from, to, error_r);
}

int imap_subscribe(struct imap_client *c, const char *wire, char **error_r)
{
	return mailbox_cmd(c, "SUBSCRIBE", wire, NULL, error_r);
}

/* ---- selected state ---- */

/* A caller's uid set goes on the wire verbatim: check it is one. */
static bool uidset_valid(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++) {
		if (!((*s >= '0' && *s <= '9') || *s == ':' || *s == ',' ||
		      *s == '*'))
			return false;
	}
	return true;
}

static int bad_uidset(struct imap_client *c, struct imap_op *op,
		      const char *set, char **error_r)
{
	(void)op;
	c->op = &c->idle_op;
	c->failure = IMAP_FAIL_NO;
	*error_r = xasprintf("invalid uid set '%.40s'", set ? set : "");
	return -1;
}

int imap_select(struct imap_client *c, const char *wire, bool readonly,
		const struct imap_qresync *qr, imap_fetch_cb *fcb,
		imap_vanished_cb *vcb, void *ctx, struct imap_selected *sel_r,
		char **error_r)
{
	struct imap_cmd *cmd;
	struct imap_op op;
	int r;

	track_leave(c);
	if (op_begin(c, &op, error_r) < 0)
		return -1;
	memset(sel_r, 0, sizeof(*sel_r));
	op.sel = sel_r;
	op.fcb = fcb;
	op.vcb = vcb;
	op.ctx = ctx;
	cmd = new_cmd(c, readonly ? "EXAMINE" : "SELECT");
	imap_cmd_add(cmd, " ", 1);
	imap_cmd_add_astring(cmd, wire, strlen(wire));
	if (qresync_on(c) && qr != NULL && qr->uidvalidity != 0 &&
	    qr->modseq != 0) {
		if (qr->known_uids != NULL && !uidset_valid(qr->known_uids)) {
			imap_cmd_free(&cmd);
			return bad_uidset(c, &op, qr->known_uids, error_r);
		}
		imap_cmd_addf(cmd, " (QRESYNC (%u %llu%s%s))", qr->uidvalidity,
			      (unsigned long long)qr->modseq,
			      qr->known_uids ? " " : "",
			      qr->known_uids ? qr->known_uids : "");
	} else if (c->condstore) {
		imap_cmd_add(cmd, " (CONDSTORE)", 12);
	}
	queue_cmd(c, cmd, NULL, NULL, 0);
	c->exists = 0;
	r = op_end(c, &op, run(c), error_r);
	if (r == 0 && !readonly)
		imap_track_selected(&c->trk, wire, c->qresync, sel_r);
	return r;
}

/*
 * SELECT without a round trip of its own: the command is queued and goes
 * on the wire with the next operation's commands, in one flight. The
 * server answers it first (a SELECT changes the mailbox the later
 * commands act on, and servers run it alone: Dovecot starts nothing
 * after it until it is done); run() reads that answer before the
 * operation's own (ahead_finish). When the SELECT fails, or the folder's
 * UIDVALIDITY is not the expected one, the operation fails with that
 * error; the commands that followed found no folder selected (RFC 3501
 * 6.3.1: a failed SELECT leaves none), or, for a folder recreated under
 * the same name since the caller learnt its UIDVALIDITY, the new one.
 */
int imap_select_ahead(struct imap_client *c, const char *wire,
		      uint32_t uidvalidity, char **error_r)
{
	return imap_select_ahead_qr(c, wire, uidvalidity, NULL, NULL, NULL,
				    NULL, NULL, NULL, NULL, error_r);
}

/* Tell the caller of imap_select_ahead_qr() how its SELECT ended, once. */
static void ahead_tell(struct imap_client *c, bool ok)
{
	imap_ahead_done_fn *done = c->ahead_done;

	c->ahead_done = NULL;
	if (done != NULL)
		done(c->ahead_done_ctx, ok, ok ? c->ahead_op.sel : NULL);
}

int imap_select_ahead_qr(struct imap_client *c, const char *wire,
			 uint32_t uidvalidity, const struct imap_qresync *qr,
			 imap_fetch_cb *fcb, imap_vanished_cb *vcb, void *ctx,
			 struct imap_selected *sel_r, imap_ahead_done_fn *done,
			 void *done_ctx, char **error_r)
{
	struct imap_cmd *cmd;

	if (c->ahead) {
		/* two in a row: the first is answered before this one */
		struct imap_op op;

		if (op_begin(c, &op, error_r) < 0)
			return -1;
		if (op_end(c, &op, run(c), error_r) < 0)
			return -1;
	}
	if (qr != NULL && qr->known_uids != NULL &&
	    !uidset_valid(qr->known_uids)) {
		c->failure = IMAP_FAIL_PROTO;
		*error_r = xasprintf("invalid uid set '%.40s'", qr->known_uids);
		return -1;
	}
	track_leave(c);
	if (op_begin(c, &c->ahead_op, error_r) < 0)
		return -1;
	if (sel_r == NULL)
		sel_r = &c->ahead_sel;
	memset(sel_r, 0, sizeof(*sel_r));
	c->ahead_op.sel = sel_r;
	c->ahead_op.fcb = fcb;
	c->ahead_op.vcb = vcb;
	c->ahead_op.ctx = ctx;
	cmd = new_cmd(c, "SELECT");
	imap_cmd_add(cmd, " ", 1);
	imap_cmd_add_astring(cmd, wire, strlen(wire));
	if (qresync_on(c) && qr != NULL && qr->uidvalidity != 0 &&
	    qr->modseq != 0)
		imap_cmd_addf(cmd, " (QRESYNC (%u %llu%s%s))", qr->uidvalidity,
			      (unsigned long long)qr->modseq,
			      qr->known_uids ? " " : "",
			      qr->known_uids ? qr->known_uids : "");
	else if (c->condstore)
		imap_cmd_add(cmd, " (CONDSTORE)", 12);
	queue_cmd(c, cmd, NULL, NULL, 0);
	c->exists = 0;
	c->ahead = true;
	free(c->ahead_wire);
	c->ahead_wire = xstrdup(wire);
	c->ahead_uidvalidity = uidvalidity;
	c->ahead_done = done;
	c->ahead_done_ctx = done_ctx;
	c->op = &c->idle_op;
	memset(&c->idle_op, 0, sizeof(c->idle_op));
	return 0;
}

/* The running operation's commands go out behind the SELECT queued
 * ahead; its answer is read first, into its own operation. */
static int ahead_finish(struct imap_client *c)
{
	c->ahead = false;
	if (pump_ahead_op(c, &c->ahead_op) < 0) {
		ahead_tell(c, false);
		return -1;
	}
	free(c->ahead_error);
	c->ahead_error = NULL;
	if (c->ahead_op.no_error != NULL) {
		c->ahead_error = c->ahead_op.no_error;
		c->ahead_op.no_error = NULL;
	} else if (c->ahead_op.cb_failed) {
		c->ahead_error = xstrdup("aborted by a callback");
	} else if (c->ahead_uidvalidity != 0 &&
		   c->ahead_op.sel->uidvalidity != c->ahead_uidvalidity) {
		c->ahead_error = xasprintf("UIDVALIDITY of '%s' changed during "
					   "the run; it is handled by the next "
					   "run", c->ahead_wire);
	} else {
		imap_track_selected(&c->trk, c->ahead_wire, c->qresync,
				    c->ahead_op.sel);
		ahead_tell(c, true);
		return 0;
	}
	imap_track_off(&c->trk, c->label, "SELECT sent ahead failed");
	ahead_tell(c, false);
	return 0;
}

int imap_client_flush(struct imap_client *c, char **error_r)
{
	struct imap_op op;

	if (!c->ahead && c->login_af == NULL && !c->login_failed)
		return 0;
	if (op_begin(c, &op, error_r) < 0) {
		ahead_tell(c, false);
		return -1;
	}
	return op_end(c, &op, run(c), error_r);
}

bool imap_client_ahead(const struct imap_client *c)
{
	return c->ahead;
}

static int fetch_run(struct imap_client *c, struct imap_op *op,
		     struct imap_cmd *cmd, char **error_r)
{
	queue_cmd(c, cmd, NULL, NULL, 0);
	return op_end(c, op, run(c), error_r);
}

int imap_fetch_flags(struct imap_client *c, const char *uidset,
		     uint64_t changedsince, bool vanished, imap_fetch_cb *fcb,
		     imap_vanished_cb *vcb, void *ctx, char **error_r)
{
	struct imap_cmd *cmd;
	struct imap_op op;

	if (op_begin(c, &op, error_r) < 0)
		return -1;
	if (!uidset_valid(uidset))
		return bad_uidset(c, &op, uidset, error_r);
	op.fcb = fcb;
	op.vcb = vcb;
	op.ctx = ctx;
	cmd = new_cmd(c, "UID FETCH");
	imap_cmd_addf(cmd, " %s (UID FLAGS%s)", uidset,
		      c->condstore ? " MODSEQ" : "");
	if (changedsince != 0 && c->condstore)
		imap_cmd_addf(cmd, " (CHANGEDSINCE %llu%s)",
			      (unsigned long long)changedsince,
			      vanished && qresync_on(c) ? " VANISHED" : "");
	return fetch_run(c, &op, cmd, error_r);
}

int imap_fetch_idents(struct imap_client *c, const char *uidset,
		      imap_fetch_cb *fcb, void *ctx, char **error_r)
{
	struct imap_cmd *cmd;
	struct imap_op op;

	if (op_begin(c, &op, error_r) < 0)
		return -1;
	if (!uidset_valid(uidset))
		return bad_uidset(c, &op, uidset, error_r);
	op.fcb = fcb;
	op.ctx = ctx;
	cmd = new_cmd(c, "UID FETCH");
	imap_cmd_addf(cmd, " %s (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER]%s%s)",
		      uidset, (c->caps & IMAP_CAP_OBJECTID) ? " EMAILID" : "",
		      (c->caps & IMAP_CAP_XGM_EXT1) ? " X-GM-MSGID" : "");
	return fetch_run(c, &op, cmd, error_r);
}

/* The UID FETCHes of the bodies of uids, batch UIDs each (0: 256), into
 * op (the running one), answers to h. */
static void queue_body_fetches(struct imap_client *c, struct imap_op *op,
			       const uint32_t *uids, size_t n, size_t batch,
			       const struct imap_body_handler *h)
{
	if (batch == 0)
		batch = 256;
	op->bh = h;
	for (size_t i = 0; i < n; i += batch) {
		size_t k = n - i < batch ? n - i : batch;
		char *set = imap_uidset_make(uids + i, k);
		struct imap_cmd *cmd = new_cmd(c, "UID FETCH");

		imap_cmd_addf(cmd, " %s (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])",
			      set);
		free(set);
		queue_cmd(c, cmd, NULL, NULL, 0);
	}
}

int imap_fetch_bodies(struct imap_client *c, const uint32_t *uids, size_t n,
		      size_t batch, const struct imap_body_handler *h,
		      char **error_r)
{
	struct imap_op op;

	if (op_begin(c, &op, error_r) < 0)
		return -1;
	queue_body_fetches(c, &op, uids, n, batch, h);
	return op_end(c, &op, run(c), error_r);
}

/*
 * The same FETCH without waiting for it: its commands go on the wire now,
 * and the next operation's follow them in the same flight (the next
 * folder's SELECT and the FETCH of its new headers, say). Whichever
 * operation runs next reads these answers first, into h, and
 * imap_fetch_bodies_end() then says how they ended. Where something is
 * still to be read ahead of it (a login, a SELECT sent ahead), or a body
 * FETCH is started already, this one is read at once instead.
 */
int imap_fetch_bodies_start(struct imap_client *c, const uint32_t *uids,
			    size_t n, size_t batch,
			    const struct imap_body_handler *h, char **error_r)
{
	if (error_r)
		*error_r = NULL;
	if (c->lead_open)
		return imap_fetch_bodies(c, uids, n, batch, h, error_r);
	if (c->login_af != NULL || c->ahead) {
		memset(&c->lead_op, 0, sizeof(c->lead_op));
		c->lead_result = imap_fetch_bodies(c, uids, n, batch, h,
						   &c->lead_op.no_error);
		c->lead_open = true;
		return 0;
	}
	if (op_begin(c, &c->lead_op, error_r) < 0)
		return -1;
	queue_body_fetches(c, &c->lead_op, uids, n, batch, h);
	c->lead = true;
	c->lead_open = true;
	c->lead_result = 0;
	c->op = &c->idle_op;
	memset(&c->idle_op, 0, sizeof(c->idle_op));
	/* on the wire now: the server starts on it at once */
	if (send_ready(c) == 0) {
		char *err = NULL;

		if (net_conn_flush(c->conn, &err) < 0)
			(void)client_fail_net(c, err);
	}
	return 0;
}

int imap_fetch_bodies_end(struct imap_client *c, char **error_r)
{
	struct imap_op *op;

	if (error_r)
		*error_r = NULL;
	if (!c->lead_open)
		return 0;
	if (c->lead) {
		op = c->op;
		(void)lead_finish(c);
		c->op = op;
	}
	c->lead_open = false;
	if (c->lead_op.bh == NULL) {
		/* read at once by imap_fetch_bodies_start() */
		if (c->lead_result == 0)
			return 0;
		if (error_r)
			*error_r = c->lead_op.no_error
					   ? c->lead_op.no_error
					   : xstrdup("body fetch failed");
		else
			free(c->lead_op.no_error);
		c->lead_op.no_error = NULL;
		return -1;
	}
	c->lead_op.bh = NULL;
	return op_end(c, &c->lead_op, c->lead_result, error_r);
}

struct append_ctx {
	struct imap_append_msg *msgs;
	uint32_t uidvalidity;
	const char *wire;
	char *refused;                  /* append_done_alone(); malloc'ed */
};

/* APPENDs sent by imap_store_expunge_append_start(), answered later. */
struct imap_tail {
	struct imap_op op;
	struct append_ctx a;
	char *wire;                     /* owned; a.wire */
	bool off_after;                 /* the tracker goes off after it */
	bool own_ok;                    /* own: the tracker when answered */
	struct imap_own_state own;
	struct imap_tail *next;
};

/* t no longer holds the tracker on: off once no tail does. */
static void tail_release_tracker(struct imap_client *c, struct imap_tail *t)
{
	const struct imap_tail *o;

	if (!t->off_after)
		return;
	t->off_after = false;
	for (o = c->tails; o != NULL; o = o->next)
		if (o->off_after)
			return;
	imap_track_off(&c->trk, c->label, NULL);
}

/* The last answer of a tail: the tracker still follows the folder its
 * APPENDs went to (when it was selected), whatever SELECT was queued
 * behind them; what it says now is that folder's state after them. */
static void tail_answered(struct imap_client *c, struct imap_tail *t)
{
	t->own_ok = !c->broken && c->trk.on && c->trk.wire != NULL &&
		    strcmp(c->trk.wire, t->wire) == 0 &&
		    imap_track_get(&c->trk, &t->own);
	tail_release_tracker(c, t);
}

/* Another folder is about to be selected: the tracker stops following
 * this one now, or once the tails queued so far are answered. */
static void track_leave(struct imap_client *c)
{
	struct imap_tail *t;
	bool held = false;

	for (t = c->tails; t != NULL; t = t->next) {
		if (t->op.pending > 0)
			t->off_after = true;
		held |= t->off_after;
	}
	if (!held)
		imap_track_off(&c->trk, c->label, NULL);
}

static void tail_free(struct imap_client *c, struct imap_tail *t)
{
	struct imap_tail **pp;

	for (pp = &c->tails; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	tail_release_tracker(c, t);
	free(t->a.refused);
	free(t->wire);
	free(t);
}

static void append_done(struct imap_client *c, struct imap_cmd *cmd,
			const struct imap_response *r)
{
	struct append_ctx *a = cmd->ctx;
	struct imap_append_msg *m = &a->msgs[cmd->index];

	if (r->status != IMAP_STATUS_OK) {
		m->ok_r = false;
		op_refused(c->op, "APPEND", r->text);
		return;
	}
	m->ok_r = true;
	if (r->code.code == IMAP_CODE_APPENDUID && r->code.uidset != NULL) {
		uint64_t uid = 0;
		const char *p = r->code.uidset;

		while (*p >= '0' && *p <= '9' && uid <= UINT32_MAX)
			uid = uid * 10 + (uint64_t)(*p++ - '0');
		if (*p == '\0' && uid > 0 && uid <= UINT32_MAX) {
			m->uid_r = (uint32_t)uid;
			a->uidvalidity = r->code.uidvalidity;
		}
	}
	imap_track_appended(&c->trk, c->label, a->wire, m->uid_r);
}

/* In imap_store_expunge_append(): a refused APPEND is that message's
 * failure, not the flight's. */
static void append_done_alone(struct imap_client *c, struct imap_cmd *cmd,
			      const struct imap_response *r)
{
	struct append_ctx *a = cmd->ctx;

	if (r->status != IMAP_STATUS_OK) {
		a->msgs[cmd->index].ok_r = false;
		if (a->refused == NULL)
			a->refused = xasprintf("APPEND failed: %s",
					       r->text && *r->text ? r->text
								   : "refused");
		return;
	}
	append_done(c, cmd, r);
}

static void queue_appends(struct imap_client *c, struct append_ctx *a,
			  size_t n, imap_cmd_done_fn *done)
{
	struct imap_append_msg *msgs = a->msgs;

	for (size_t i = 0; i < n; i++) {
		struct imap_cmd *cmd = new_cmd(c, "APPEND");
		char flags[80], date[32];

		msgs[i].uid_r = 0;
		msgs[i].ok_r = false;
		imap_cmd_add(cmd, " ", 1);
		imap_cmd_add_astring(cmd, a->wire, strlen(a->wire));
		if (msgs[i].flags & MF_ALL) {
			flags_to_imap(msgs[i].flags & MF_ALL, flags, sizeof(flags));
			imap_cmd_addf(cmd, " (%s)", flags);
		}
		if (msgs[i].date > 0) {
			imap_format_date(msgs[i].date, date);
			imap_cmd_addf(cmd, " \"%s\"", date);
		}
		imap_cmd_add(cmd, " ", 1);
		imap_cmd_add_literal(cmd, NULL, msgs[i].size, &msgs[i]);
		queue_cmd(c, cmd, done, a, i);
	}
}

int imap_append_batch(struct imap_client *c, const char *wire,
		      struct imap_append_msg *msgs, size_t n,
		      uint32_t *uidvalidity_r, char **error_r)
{
	struct append_ctx a = { .msgs = msgs, .wire = wire };
	struct imap_op op;
	int r;

	if (uidvalidity_r)
		*uidvalidity_r = 0;
	if (op_begin(c, &op, error_r) < 0)
		return -1;
	queue_appends(c, &a, n, append_done);
	r = run(c);
	if (uidvalidity_r)
		*uidvalidity_r = a.uidvalidity;
	return op_end(c, &op, r, error_r);
}

static void queue_store(struct imap_client *c, const char *uidset, bool add,
			unsigned flags, uint64_t unchangedsince)
{
	struct imap_cmd *cmd = new_cmd(c, "UID STORE");
	char names[80];

	flags_to_imap(flags & MF_ALL, names, sizeof(names));
	imap_cmd_addf(cmd, " %s", uidset);
	if (unchangedsince != 0) {
		if (c->condstore)
			imap_cmd_addf(cmd, " (UNCHANGEDSINCE %llu)",
				      (unsigned long long)unchangedsince);
		else
			log_debug("%s: no CONDSTORE: UNCHANGEDSINCE dropped",
				  c->label);
	}
	imap_cmd_addf(cmd, " %cFLAGS.SILENT (%s)", add ? '+' : '-', names);
	queue_cmd(c, cmd, NULL, NULL, 0);
}

/* The UID sets of a STORE batch as one set (for imap/track.h). */
static char *uidsets_join(const struct imap_store_op *ops, size_t n)
{
	size_t len = 1, i;
	char *s, *p;

	for (i = 0; i < n; i++)
		len += strlen(ops[i].uidset) + 1;
	p = s = xmalloc(len);
	for (i = 0; i < n; i++) {
		size_t k = strlen(ops[i].uidset);

		if (p != s)
			*p++ = ',';
		memcpy(p, ops[i].uidset, k);
		p += k;
	}
	*p = '\0';
	return s;
}

int imap_store_batch(struct imap_client *c, const struct imap_store_op *ops,
		     size_t n, char **modified_r, char **error_r)
{
	struct buf mod = BUF_INIT_MAX(MODIFIED_MAX);
	struct imap_op op;
	struct imap_uidranges own;
	char *sets;
	int r;

	if (modified_r)
		*modified_r = NULL;
	if (op_begin(c, &op, error_r) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!uidset_valid(ops[i].uidset)) {
			cmds_free(&c->queue);
			c->queue_tail = &c->queue;
			buf_release(&mod);
			return bad_uidset(c, &op, ops[i].uidset, error_r);
		}
	}
	op.modified = &mod;
	sets = uidsets_join(ops, n);
	imap_uidranges_parse(&own, sets);
	free(sets);
	op.own = &own;
	for (size_t i = 0; i < n; i++) {
		if ((ops[i].flags & MF_ALL) == 0)
			continue;
		queue_store(c, ops[i].uidset, ops[i].add, ops[i].flags,
			    ops[i].unchangedsince);
	}
	r = run(c);
	imap_uidranges_release(&own);
	if (modified_r && mod.len > 0 && r == 0)
		*modified_r = buf_take(&mod, NULL);
	buf_release(&mod);
	return op_end(c, &op, r, error_r);
}

static int uid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void search_reset(struct imap_op *op)
{
	free(op->uids);
	op->uids = NULL;
	op->n_uids = op->alloc_uids = 0;
}

static int run_one(struct imap_client *c, struct imap_op *op,
		   struct imap_cmd *cmd, bool searching)
{
	int r;

	if (searching)
		search_reset(op);
	op->searching = searching;
	queue_cmd(c, cmd, NULL, NULL, 0);
	r = run(c);
	op->searching = false;
	return r < 0 || op->no_error != NULL ? -1 : 0;
}

/*
 * The STOREs (ops: flags, and \Deleted of uidset unless marked) and UID
 * EXPUNGE go out in one flight only under QRESYNC with UIDPLUS, where
 * the EXPUNGE's VANISHED tells which of them went. Dovecot (2.3) runs
 * UID commands of one session concurrently: an EXPUNGE that overtakes
 * the STORE of \Deleted finds nothing to remove (seen in the benchmark
 * under load). Its VANISHED then misses them, and the check below (UID
 * SEARCH ... DELETED, sent once both are answered) finds them marked and
 * expunges them again. Without VANISHED to tell, one command at a time.
 */
static int expunge_uids(struct imap_client *c, const struct imap_store_op *ops,
			size_t n_ops, const char *uidset, bool marked,
			struct append_ctx *tail, size_t n_tail,
			struct imap_tail *later, char **error_r)
{
	struct imap_op op;
	struct imap_cmd *cmd;
	char *left = NULL, *others, *sets;
	const char *set = uidset;
	struct imap_uidranges own = { 0 }, round_own = { 0 };
	size_t k = 0, i;
	bool queued = false;
	bool one_flight = (c->caps & IMAP_CAP_UIDPLUS) && c->qresync;

	if (op_begin(c, &op, error_r) < 0)
		return -1;
	if (!uidset_valid(uidset))
		return bad_uidset(c, &op, uidset, error_r);
	for (i = 0; i < n_ops; i++)
		if (!uidset_valid(ops[i].uidset))
			return bad_uidset(c, &op, ops[i].uidset, error_r);
	if (n_ops > 0) {
		char *joined = uidsets_join(ops, n_ops);

		sets = xasprintf("%s,%s", joined, uidset);
		free(joined);
	} else {
		sets = xstrdup(uidset);
	}
	imap_uidranges_parse(&own, sets);
	free(sets);
	op.own = &own;
	for (i = 0; i < n_ops; i++) {
		if ((ops[i].flags & MF_ALL) == 0)
			continue;
		queue_store(c, ops[i].uidset, ops[i].add, ops[i].flags,
			    ops[i].unchangedsince);
		queued = true;
	}
	if (!marked) {
		queue_store(c, uidset, true, MF_DELETED, 0);
		queued = true;
	}
	if (queued && !one_flight && (run(c) < 0 || op.no_error != NULL))
		goto out;
	if (c->caps & IMAP_CAP_UIDPLUS) {
		for (int round = 0;; round++) {
			cmd = new_cmd(c, "UID EXPUNGE");
			imap_cmd_addf(cmd, " %s", set);
			imap_uidranges_release(&round_own);
			imap_uidranges_parse(&round_own, set);
			/* the STOREs' own UIDs too while they are in this
			 * flight; gone counts only the expunged ones */
			op.own = round == 0 && queued && one_flight ? &own
								   : &round_own;
			op.gone_in = &round_own;
			op.own_gone = 0;
			if (round == 0 && tail != NULL) {
				/* the APPENDs behind it, in the same flight */
				queue_cmd(c, cmd, NULL, NULL, 0);
				if (later != NULL)
					c->op = &later->op;
				queue_appends(c, tail, n_tail,
					      append_done_alone);
				c->op = &op;
				if (run(c) < 0 || op.no_error != NULL)
					break;
			} else if (run_one(c, &op, cmd, false) < 0) {
				break;
			}
			/* VANISHED (QRESYNC) named every one of them gone:
			 * nothing to check (RFC 7162 3.2.10) */
			if (op.own_gone > 0 &&
			    op.own_gone == imap_uidranges_count_in(&round_own,
								   set, NULL))
				break;
			/* check that they are gone; expunge what is left */
			cmd = new_cmd(c, "UID SEARCH");
			imap_cmd_addf(cmd, " UID %s DELETED", set);
			if (run_one(c, &op, cmd, true) < 0 || op.n_uids == 0)
				break;
			if (round == 2) {
				op.no_error = xstrdup("UID EXPUNGE: the server "
						      "keeps messages marked "
						      "\\Deleted");
				break;
			}
			qsort(op.uids, op.n_uids, sizeof(*op.uids), uid_cmp);
			free(left);
			left = imap_uidset_make(op.uids, op.n_uids);
			set = left;
			log_debug("%s: UID EXPUNGE left %s; again", c->label, set);
		}
		goto out;
	}
	/* Without UIDPLUS, EXPUNGE removes every \Deleted message: spare
	 * the ones somebody else marked by un-marking them around it. */
	imap_track_off(&c->trk, c->label, "expunge without UIDPLUS");
	cmd = new_cmd(c, "UID SEARCH");
	imap_cmd_add(cmd, " DELETED", 8);
	if (run_one(c, &op, cmd, true) < 0)
		goto out;
	for (i = 0; i < op.n_uids; i++) {
		if (!imap_uidset_contains(uidset, op.uids[i]))
			op.uids[k++] = op.uids[i];
	}
	if (k == 0) {
		(void)run_one(c, &op, new_cmd(c, "EXPUNGE"), false);
		goto out;
	}
	qsort(op.uids, k, sizeof(*op.uids), uid_cmp);
	others = imap_uidset_make(op.uids, k);
	queue_store(c, others, false, MF_DELETED, 0);
	if (run(c) == 0 && op.no_error == NULL) {
		(void)run_one(c, &op, new_cmd(c, "EXPUNGE"), false);
		/* marked again whatever EXPUNGE said, while we can talk */
		if (!c->broken) {
			queue_store(c, others, true, MF_DELETED, 0);
			(void)run(c);
		}
	}
	free(others);
out:
	search_reset(&op);
	imap_uidranges_release(&own);
	imap_uidranges_release(&round_own);
	free(left);
	return op_end(c, &op, c->broken ? -1 : 0, error_r);
}

int imap_expunge_uids(struct imap_client *c, const char *uidset,
		      char **error_r)
{
	return expunge_uids(c, NULL, 0, uidset, false, NULL, 0, NULL, error_r);
}

int imap_expunge_marked(struct imap_client *c, const char *uidset,
			char **error_r)
{
	return expunge_uids(c, NULL, 0, uidset,
			    (c->caps & IMAP_CAP_UIDPLUS) != 0, NULL, 0, NULL,
			    error_r);
}

int imap_store_expunge(struct imap_client *c, const struct imap_store_op *ops,
		       size_t n, const char *uidset, char **error_r)
{
	if (!(c->caps & IMAP_CAP_UIDPLUS)) {
		/* EXPUNGE without UIDPLUS needs the \Deleted of others
		 * sorted out first: the STOREs, then imap_expunge_uids() */
		if (imap_store_batch(c, ops, n, NULL, error_r) < 0)
			return -1;
		return imap_expunge_uids(c, uidset, error_r);
	}
	return expunge_uids(c, ops, n, uidset, true, NULL, 0, NULL, error_r);
}

/* The STOREs and the APPENDs of a in one flight; the operation waits
 * for the APPENDs too unless later takes them (their answers are then
 * read into later's operation). */
static int store_append(struct imap_client *c, const struct imap_store_op *ops,
			size_t n_ops, struct append_ctx *a, size_t n_msgs,
			struct imap_tail *later, char **error_r)
{
	struct imap_op op;
	struct imap_uidranges own = { 0 };
	char *sets;
	int r;

	if (op_begin(c, &op, error_r) < 0)
		return -1;
	for (size_t i = 0; i < n_ops; i++)
		if (!uidset_valid(ops[i].uidset))
			return bad_uidset(c, &op, ops[i].uidset, error_r);
	sets = uidsets_join(ops, n_ops);
	imap_uidranges_parse(&own, sets);
	free(sets);
	op.own = &own;
	for (size_t i = 0; i < n_ops; i++)
		if (ops[i].flags & MF_ALL)
			queue_store(c, ops[i].uidset, ops[i].add, ops[i].flags,
				    ops[i].unchangedsince);
	if (later != NULL)
		c->op = &later->op;
	queue_appends(c, a, n_msgs, append_done_alone);
	c->op = &op;
	r = op_end(c, &op, run(c), error_r);
	imap_uidranges_release(&own);
	return r;
}

/*
 * The STOREs, the UID EXPUNGE of uidset (NULL: none) and the APPENDs of
 * msgs to wire in one flight, where the server side allows the first two
 * there (imap_store_expunge()); otherwise the APPENDs follow once those
 * are answered. Returns as imap_store_expunge() for the STOREs and the
 * expunge; each message says in ok_r / uid_r how its APPEND went, and
 * *append_error_r (malloc'ed, or NULL) names the first refusal. The
 * APPENDs are sent whatever the STOREs' fate.
 */
int imap_store_expunge_append(struct imap_client *c,
			      const struct imap_store_op *ops, size_t n_ops,
			      const char *uidset, const char *wire,
			      struct imap_append_msg *msgs, size_t n_msgs,
			      uint32_t *uidvalidity_r, char **append_error_r,
			      char **error_r)
{
	struct append_ctx a = { .msgs = msgs, .wire = wire };
	bool one_flight = (c->caps & IMAP_CAP_UIDPLUS) && c->qresync;
	int r;

	*append_error_r = NULL;
	if (uidvalidity_r)
		*uidvalidity_r = 0;
	for (size_t i = 0; i < n_msgs; i++)
		msgs[i].ok_r = false;
	if (uidset != NULL && one_flight) {
		r = expunge_uids(c, ops, n_ops, uidset, true, &a, n_msgs,
				 NULL, error_r);
	} else if (uidset == NULL) {
		r = store_append(c, ops, n_ops, &a, n_msgs, NULL, error_r);
	} else {
		/* the expunge needs the STOREs' answers first */
		char *err = NULL;
		int ra;

		r = imap_store_expunge(c, ops, n_ops, uidset, error_r);
		ra = imap_append_batch(c, wire, msgs, n_msgs, uidvalidity_r,
				       &err);
		if (ra < 0)
			*append_error_r = err ? err : xstrdup("APPEND failed");
		return r;
	}
	if (uidvalidity_r)
		*uidvalidity_r = a.uidvalidity;
	*append_error_r = a.refused;
	return r;
}

/*
 * imap_store_expunge_append() whose APPENDs are not waited for: the
 * STOREs and the expunge are answered when it returns, the APPENDs'
 * answers are read by whatever operation runs next (their commands go
 * on the wire first), and imap_tail_end() says how they went. Only
 * where the whole goes in one flight (QRESYNC with UIDPLUS, or no
 * expunge); elsewhere it is imap_store_expunge_append() and *tail_r is
 * NULL.
 */
int imap_store_expunge_append_start(struct imap_client *c,
				    const struct imap_store_op *ops,
				    size_t n_ops, const char *uidset,
				    const char *wire,
				    struct imap_append_msg *msgs, size_t n_msgs,
				    struct imap_tail **tail_r,
				    char **append_error_r, char **error_r)
{
	bool one_flight = (c->caps & IMAP_CAP_UIDPLUS) && c->qresync;
	struct imap_tail *t;

	*tail_r = NULL;
	*append_error_r = NULL;
	if (error_r)
		*error_r = NULL;
	if (n_msgs == 0 || c->broken || (uidset != NULL && !one_flight))
		return imap_store_expunge_append(c, ops, n_ops, uidset, wire,
						 msgs, n_msgs, NULL,
						 append_error_r, error_r);
	t = xcalloc(1, sizeof(*t));
	t->wire = xstrdup(wire);
	t->a.msgs = msgs;
	t->a.wire = t->wire;
	t->op.tail = t;
	t->next = c->tails;
	c->tails = t;
	*tail_r = t;
	for (size_t i = 0; i < n_msgs; i++)
		msgs[i].ok_r = false;
	if (uidset != NULL)
		return expunge_uids(c, ops, n_ops, uidset, true, &t->a, n_msgs,
				    t, error_r);
	return store_append(c, ops, n_ops, &t->a, n_msgs, t, error_r);
}

/*
 * Wait for the rest of a tail's answers (none when an operation since
 * has read them) and free it. Each message's ok_r / uid_r say how its
 * APPEND went; *append_error_r (malloc'ed or NULL) names the first
 * refusal; *own_r, when *own_ok_r, is the folder the APPENDs went to
 * as this connection's changes left it once they were answered
 * (imap_client_own_state() then). -1 when the connection failed first.
 */
int imap_tail_end(struct imap_client *c, struct imap_tail **tp,
		  uint32_t *uidvalidity_r, char **append_error_r,
		  struct imap_own_state *own_r, bool *own_ok_r,
		  char **error_r)
{
	struct imap_tail *t = *tp;
	int r = 0;

	*tp = NULL;
	if (error_r)
		*error_r = NULL;
	if (t->op.pending > 0 && !c->broken)
		(void)pump_ahead_op(c, &t->op);
	if (t->op.pending > 0 || c->broken) {
		r = -1;
		c->failure = c->broken ? c->broken_failure : IMAP_FAIL_NET;
		if (error_r)
			*error_r = xstrdup(c->broken && c->broken_error
						   ? c->broken_error
						   : "connection failed");
	}
	if (uidvalidity_r)
		*uidvalidity_r = t->a.uidvalidity;
	*append_error_r = t->a.refused;
	t->a.refused = NULL;
	*own_ok_r = r == 0 && t->own_ok;
	if (*own_ok_r && own_r)
		*own_r = t->own;
	tail_free(c, t);
	return r;
}

void imap_copyuid_release(struct imap_copyuid *cu)
{
	free(cu->src);
	free(cu->dst);
	memset(cu, 0, sizeof(*cu));
}

static int copy_or_move(struct imap_client *c, const char *verb,
			const char *uidset, const char *dest,
			struct imap_copyuid *map_r, char **error_r)
{
	struct imap_cmd *cmd;
	struct imap_op op;
	struct imap_uidranges own;
	int r;

	if (map_r)
		memset(map_r, 0, sizeof(*map_r));
	if (op_begin(c, &op, error_r) < 0)
		return -1;
	if (!uidset_valid(uidset))
		return bad_uidset(c, &op, uidset, error_r);
	op.cu = map_r;
	imap_uidranges_parse(&own, uidset);
	op.own = &own;
	cmd = new_cmd(c, verb);
	imap_cmd_addf(cmd, " %s ", uidset);
	imap_cmd_add_astring(cmd, dest, strlen(dest));
	queue_cmd(c, cmd, NULL, NULL, 0);
	r = op_end(c, &op, run(c), error_r);
	imap_uidranges_release(&own);
	return r;
}

int imap_copy(struct imap_client *c, const char *uidset, const char *dest,
	      struct imap_copyuid *map_r, char **error_r)
{
	return copy_or_move(c, "UID COPY", uidset, dest, map_r, error_r);
}

struct copy_batch {
	struct imap_copyuid *maps;
	bool *ok;
	char *refused;                  /* first refusal; malloc'ed */
};

static void copy_batch_done(struct imap_client *c, struct imap_cmd *cmd,
			    const struct imap_response *r)
{
	struct copy_batch *b = cmd->ctx;

	(void)c;
	if (r->status != IMAP_STATUS_OK) {
		if (b->refused == NULL)
			b->refused = xasprintf("UID COPY failed: %s",
					       r->text && *r->text ? r->text
								   : "refused");
		return;
	}
	b->ok[cmd->index] = true;
	if (r->code.code == IMAP_CODE_COPYUID)
		copyuid_set(&b->maps[cmd->index], &r->code);
}

int imap_copy_batch(struct imap_client *c, const char *const *uidsets,
		    const char *const *dests, size_t n,
		    struct imap_copyuid *maps_r, bool *ok_r, char **error_r)
{
	struct copy_batch b = { .maps = maps_r, .ok = ok_r };
	struct imap_op op;
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		memset(&maps_r[i], 0, sizeof(maps_r[i]));
		ok_r[i] = false;
	}
	if (op_begin(c, &op, error_r) < 0)
		return -1;
	for (i = 0; i < n; i++)
		if (!uidset_valid(uidsets[i]))
			return bad_uidset(c, &op, uidsets[i], error_r);
	for (i = 0; i < n; i++) {
		struct imap_cmd *cmd = new_cmd(c, "UID COPY");

		imap_cmd_addf(cmd, " %s ", uidsets[i]);
		imap_cmd_add_astring(cmd, dests[i], strlen(dests[i]));
		queue_cmd(c, cmd, copy_batch_done, &b, i);
	}
	r = op_end(c, &op, run(c), error_r);
	if (r == 0 && b.refused != NULL && error_r != NULL) {
		*error_r = b.refused;
		b.refused = NULL;
	}
	free(b.refused);
	return r;
}

struct copy_from {
	struct imap_op *op;
	const struct imap_copy_src *srcs;
	size_t n;
	struct imap_selected *sels;     /* one per source */
	bool *selected;                 /* its SELECT ended as expected */
	struct imap_copyuid *maps;
	enum imap_copy_src_result *res;
	char *error;                    /* the first failure; malloc'ed */
};

/* Keep the first failure of a flight in *slot, drop the later ones. */
static void note_first(char **slot, char *msg)
{
	if (*slot == NULL)
		*slot = msg;
	else
		free(msg);
}

/* Why the SELECT of a source of a flight (wire, with the UIDVALIDITY the
 * run read, 0: any) did not select what the commands after it expect:
 * malloc'ed, NULL when it did. */
static char *source_select_failure(const char *wire,
				   const struct imap_response *r,
				   uint32_t want, uint32_t got)
{
	if (r->status != IMAP_STATUS_OK)
		return xasprintf("SELECT of '%s' failed: %s", wire,
				 r->text && *r->text ? r->text : "refused");
	if (want != 0 && got != want)
		return xasprintf("UIDVALIDITY of '%s' changed during the run; "
				 "it is handled by the next run", wire);
	return NULL;
}

/* The server answers in order (a SELECT runs alone): the untagged data
 * up to this answer were this SELECT's, the next ones the next's. */
static void copy_from_select_done(struct imap_client *c, struct imap_cmd *cmd,
				  const struct imap_response *r)
{
	struct copy_from *b = cmd->ctx;
	size_t i = cmd->index;
	char *why;

	(void)c;
	b->op->sel = i + 1 < b->n ? &b->sels[i + 1] : NULL;
	why = source_select_failure(b->srcs[i].wire, r, b->srcs[i].uidvalidity,
				    b->sels[i].uidvalidity);
	if (why != NULL)
		note_first(&b->error, why);
	else
		b->selected[i] = true;
}

static void copy_from_copy_done(struct imap_client *c, struct imap_cmd *cmd,
				const struct imap_response *r)
{
	struct copy_from *b = cmd->ctx;
	size_t i = cmd->index;

	(void)c;
	if (!b->selected[i]) {
		/* its answer means nothing: no mailbox, or another one */
		b->res[i] = IMAP_COPY_SRC_UNSELECTED;
		return;
	}
	if (r->status != IMAP_STATUS_OK) {
		b->res[i] = IMAP_COPY_SRC_REFUSED;
		note_first(&b->error, xasprintf("UID COPY from '%s' failed: %s",
					    b->srcs[i].wire,
					    r->text && *r->text ? r->text
								 : "refused"));
		return;
	}
	b->res[i] = IMAP_COPY_SRC_OK;
	if (r->code.code == IMAP_CODE_COPYUID)
		copyuid_set(&b->maps[i], &r->code);
}

int imap_copy_from_many(struct imap_client *c,
			const struct imap_copy_src *srcs, size_t n,
			const char *dest, struct imap_copyuid *maps_r,
			enum imap_copy_src_result *res_r, char **error_r)
{
	struct copy_from b = { .srcs = srcs, .n = n, .maps = maps_r,
			       .res = res_r };
	struct imap_op op;
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		memset(&maps_r[i], 0, sizeof(maps_r[i]));
		res_r[i] = IMAP_COPY_SRC_UNSELECTED;
	}
	/* what the connection has selected changes n times, and the
	 * commands between are not this client's view of any folder */
	track_leave(c);
	if (op_begin(c, &op, error_r) < 0)
		return -1;
	for (i = 0; i < n; i++)
		if (!uidset_valid(srcs[i].uidset))
			return bad_uidset(c, &op, srcs[i].uidset, error_r);
	if (n == 0)
		return op_end(c, &op, run(c), error_r);
	b.op = &op;
	b.sels = xcalloc(n, sizeof(*b.sels));
	b.selected = xcalloc(n, sizeof(*b.selected));
	op.sel = &b.sels[0];
	for (i = 0; i < n; i++) {
		struct imap_cmd *cmd = new_cmd(c, "SELECT");

		imap_cmd_add(cmd, " ", 1);
		imap_cmd_add_astring(cmd, srcs[i].wire, strlen(srcs[i].wire));
		queue_cmd(c, cmd, copy_from_select_done, &b, i);
		cmd = new_cmd(c, "UID COPY");
		imap_cmd_addf(cmd, " %s ", srcs[i].uidset);
		imap_cmd_add_astring(cmd, dest, strlen(dest));
		queue_cmd(c, cmd, copy_from_copy_done, &b, i);
	}
	c->exists = 0;
	r = op_end(c, &op, run(c), error_r);
	/* a SELECT sent ahead of the flight turned tracking on for its
	 * folder when it was answered (ahead_finish) */
	imap_track_off(&c->trk, c->label, NULL);
	if (r < 0) {
		for (i = 0; i < n; i++) {
			imap_copyuid_release(&maps_r[i]);
			res_r[i] = IMAP_COPY_SRC_UNSELECTED;
		}
	} else if (b.error != NULL && error_r != NULL) {
		*error_r = b.error;
		b.error = NULL;
	}
	free(b.error);
	free(b.sels);
	free(b.selected);
	return r;
}

struct move_batch {
	bool *ok;
	char *refused;                  /* first refusal; malloc'ed */
};

static void move_batch_done(struct imap_client *c, struct imap_cmd *cmd,
			    const struct imap_response *r)
{
	struct move_batch *b = cmd->ctx;

	(void)c;
	if (r->status != IMAP_STATUS_OK) {
		if (b->refused == NULL)
			b->refused = xasprintf("UID MOVE failed: %s",
					       r->text && *r->text ? r->text
								   : "refused");
		return;
	}
	b->ok[cmd->index] = true;
}

int imap_move_batch(struct imap_client *c, const char *const *uidsets,
		    const char *const *dests, size_t n,
		    struct imap_copyuid *maps_r, bool *ok_r, char **error_r)
{
	struct move_batch b = { .ok = ok_r };
	struct imap_uidranges *sets, own;
	struct imap_op op;
	char *all, *p;
	size_t i, len = 1;
	int r;

	for (i = 0; i < n; i++) {
		memset(&maps_r[i], 0, sizeof(maps_r[i]));
		ok_r[i] = false;
	}
	if (!c->broken && !(c->caps & IMAP_CAP_MOVE)) {
		c->failure = IMAP_FAIL_NO;
		if (error_r)
			*error_r = xstrdup("the server does not offer MOVE");
		return -1;
	}
	if (op_begin(c, &op, error_r) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (!uidset_valid(uidsets[i]))
			return bad_uidset(c, &op, uidsets[i], error_r);
		len += strlen(uidsets[i]) + 1;
	}
	/* every UID of the batch leaves the selected mailbox: their
	 * VANISHED is ours (imap/track.h) */
	p = all = xmalloc(len);
	sets = xcalloc(n + 1, sizeof(*sets));
	for (i = 0; i < n; i++) {
		size_t k = strlen(uidsets[i]);

		if (i > 0)
			*p++ = ',';
		memcpy(p, uidsets[i], k);
		p += k;
		imap_uidranges_parse(&sets[i], uidsets[i]);
	}
	*p = '\0';
	imap_uidranges_parse(&own, all);
	free(all);
	op.own = &own;
	op.cus = maps_r;
	op.cu_sets = sets;
	op.n_cus = n;
	for (i = 0; i < n; i++) {
		struct imap_cmd *cmd = new_cmd(c, "UID MOVE");

		imap_cmd_addf(cmd, " %s ", uidsets[i]);
		imap_cmd_add_astring(cmd, dests[i], strlen(dests[i]));
		queue_cmd(c, cmd, move_batch_done, &b, i);
	}
	r = op_end(c, &op, run(c), error_r);
	/* a COPYUID is only worth what the command it came with: a
	 * refused MOVE moved nothing */
	for (i = 0; i < n; i++) {
		if (!ok_r[i] || r < 0)
			imap_copyuid_release(&maps_r[i]);
		imap_uidranges_release(&sets[i]);
	}
	free(sets);
	imap_uidranges_release(&own);
	if (r == 0 && b.refused != NULL && error_r != NULL) {
		*error_r = b.refused;
		b.refused = NULL;
	}
	free(b.refused);
	return r;
}

struct move_from {
	struct imap_op *op;
	struct imap_move_src *srcs;
	size_t n;
	struct imap_selected *sels;     /* one per source */
	struct imap_uidranges **sets;   /* per source, per MOVE */
	struct imap_uidranges *owns;    /* per source: all its MOVEs' UIDs */
	size_t *src_of, *tgt_of;        /* per MOVE command index */
	char *error;                    /* the first failure; malloc'ed */
};

/* The answers up to this SELECT's were the source before's; from here on
 * the COPYUIDs and VANISHED are this source's. */
static void move_from_select_done(struct imap_client *c, struct imap_cmd *cmd,
				  const struct imap_response *r)
{
	struct move_from *b = cmd->ctx;
	struct imap_move_src *s = &b->srcs[cmd->index];
	size_t i = cmd->index;
	char *why;

	b->op->sel = i + 1 < b->n ? &b->sels[i + 1] : NULL;
	b->op->own = NULL;
	b->op->cus = NULL;
	b->op->cu_sets = NULL;
	b->op->n_cus = 0;
	imap_track_off(&c->trk, c->label, NULL);
	why = source_select_failure(s->wire, r, s->uidvalidity,
				    b->sels[i].uidvalidity);
	if (why != NULL) {
		note_first(&b->error, why);
		return;
	}
	s->selected_r = true;
	b->op->own = &b->owns[i];
	b->op->cus = s->maps_r;
	b->op->cu_sets = b->sets[i];
	b->op->n_cus = s->n;
	imap_track_selected(&c->trk, s->wire, c->qresync, &b->sels[i]);
}

static void move_from_move_done(struct imap_client *c, struct imap_cmd *cmd,
				const struct imap_response *r)
{
	struct move_from *b = cmd->ctx;
	struct imap_move_src *s = &b->srcs[b->src_of[cmd->index]];
	size_t t = b->tgt_of[cmd->index];

	(void)c;
	if (!s->selected_r)
		return;   /* no mailbox, or another one: nothing known */
	if (r->status != IMAP_STATUS_OK) {
		note_first(&b->error, xasprintf("UID MOVE from '%s' failed: %s",
					    s->wire,
					    r->text && *r->text ? r->text
								 : "refused"));
		return;
	}
	s->ok_r[t] = true;
}

int imap_move_from_many(struct imap_client *c, struct imap_move_src *srcs,
			size_t n, char **error_r)
{
	struct move_from b = { .srcs = srcs, .n = n };
	struct imap_op op;
	size_t i, t, k = 0, n_cmds = 0;
	int r;

	for (i = 0; i < n; i++) {
		srcs[i].selected_r = false;
		for (t = 0; t < srcs[i].n; t++) {
			memset(&srcs[i].maps_r[t], 0, sizeof(srcs[i].maps_r[t]));
			srcs[i].ok_r[t] = false;
		}
		n_cmds += srcs[i].n;
	}
	if (!c->broken && !(c->caps & IMAP_CAP_MOVE)) {
		c->failure = IMAP_FAIL_NO;
		if (error_r)
			*error_r = xstrdup("the server does not offer MOVE");
		return -1;
	}
	track_leave(c);
	if (op_begin(c, &op, error_r) < 0)
		return -1;
	for (i = 0; i < n; i++)
		for (t = 0; t < srcs[i].n; t++)
			if (!uidset_valid(srcs[i].uidsets[t]))
				return bad_uidset(c, &op, srcs[i].uidsets[t],
						  error_r);
	if (n == 0)
		return op_end(c, &op, run(c), error_r);
	b.op = &op;
	b.sels = xcalloc(n, sizeof(*b.sels));
	b.sets = xcalloc(n, sizeof(*b.sets));
	b.owns = xcalloc(n, sizeof(*b.owns));
	b.src_of = xcalloc(n_cmds + 1, sizeof(size_t));
	b.tgt_of = xcalloc(n_cmds + 1, sizeof(size_t));
	op.sel = &b.sels[0];
	for (i = 0; i < n; i++) {
		struct imap_cmd *cmd = new_cmd(c, "SELECT");
		size_t len = 1;
		char *all, *p;

		imap_cmd_add(cmd, " ", 1);
		imap_cmd_add_astring(cmd, srcs[i].wire, strlen(srcs[i].wire));
		if (c->condstore)
			imap_cmd_add(cmd, " (CONDSTORE)", 12);
		queue_cmd(c, cmd, move_from_select_done, &b, i);
		b.sets[i] = xcalloc(srcs[i].n + 1, sizeof(**b.sets));
		for (t = 0; t < srcs[i].n; t++)
			len += strlen(srcs[i].uidsets[t]) + 1;
		p = all = xmalloc(len);
		for (t = 0; t < srcs[i].n; t++) {
			size_t l = strlen(srcs[i].uidsets[t]);

			if (t > 0)
				*p++ = ',';
			memcpy(p, srcs[i].uidsets[t], l);
			p += l;
			imap_uidranges_parse(&b.sets[i][t], srcs[i].uidsets[t]);
			cmd = new_cmd(c, "UID MOVE");
			imap_cmd_addf(cmd, " %s ", srcs[i].uidsets[t]);
			imap_cmd_add_astring(cmd, srcs[i].dests[t],
					     strlen(srcs[i].dests[t]));
			b.src_of[k] = i;
			b.tgt_of[k] = t;
			queue_cmd(c, cmd, move_from_move_done, &b, k++);
		}
		*p = '\0';
		imap_uidranges_parse(&b.owns[i], all);
		free(all);
	}
	c->exists = 0;
	r = op_end(c, &op, run(c), error_r);
	/* a COPYUID is only worth what the command it came with: a
	 * refused MOVE moved nothing */
	for (i = 0; i < n; i++) {
		for (t = 0; t < srcs[i].n; t++) {
			if (!srcs[i].ok_r[t] || r < 0)
				imap_copyuid_release(&srcs[i].maps_r[t]);
			imap_uidranges_release(&b.sets[i][t]);
		}
		free(b.sets[i]);
		imap_uidranges_release(&b.owns[i]);
		if (r < 0)
			srcs[i].selected_r = false;
	}
	if (r == 0 && b.error != NULL && error_r != NULL) {
		*error_r = b.error;
		b.error = NULL;
	}
	free(b.error);
	free(b.sels);
	free(b.sets);
	free(b.owns);
	free(b.src_of);
	free(b.tgt_of);
	return r;
}

int imap_move(struct imap_client *c, const char *uidset, const char *dest,
	      struct imap_copyuid *map_r, char **error_r)
{
	if (c->caps & IMAP_CAP_MOVE)
		return copy_or_move(c, "UID MOVE", uidset, dest, map_r, error_r);
	/* RFC 6851 3.3: without MOVE, COPY then expunge exactly those. */
	if (copy_or_move(c, "UID COPY", uidset, dest, map_r, error_r) < 0)
		return -1;
	if (imap_expunge_uids(c, uidset, error_r) < 0) {
		if (map_r)
			imap_copyuid_release(map_r);
		return -1;
	}
	return 0;
}

int imap_search(struct imap_client *c, const char *criteria,
		uint32_t **uids_r, size_t *n_r, char **error_r)
{
	struct imap_cmd *cmd;
	struct imap_op op;
	int r;

	*uids_r = NULL;
	*n_r = 0;
	if (op_begin(c, &op, error_r) < 0)
		return -1;
	op.searching = true;
	cmd = new_cmd(c, "UID SEARCH");
	/* ESEARCH's "ALL" is a compact uid set instead of one number per
	 * message (RFC 4731). */
	if (c->caps & IMAP_CAP_ESEARCH)
		imap_cmd_add(cmd, " RETURN (ALL)", 13);
	imap_cmd_add(cmd, " ", 1);
	imap_cmd_add_with_literals(cmd, criteria);
	queue_cmd(c, cmd, NULL, NULL, 0);
	r = run(c);
	if (r == 0 && op.no_error == NULL) {
		size_t k = 0;

		if (op.n_uids > 1)
			qsort(op.uids, op.n_uids, sizeof(*op.uids), uid_cmp);
		for (size_t i = 0; i < op.n_uids; i++) {
			if (k == 0 || op.uids[k - 1] != op.uids[i])
				op.uids[k++] = op.uids[i];
		}
		*uids_r = op.uids;
		*n_r = k;
		op.uids = NULL;
	}
	free(op.uids);
	return op_end(c, &op, r, error_r);
}

int imap_noop(struct imap_client *c, char **error_r)
{
	return simple_cmd(c, new_cmd(c, "NOOP"), error_r);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int idle_cont(struct imap_client *c, struct imap_cmd *cmd,
		     const struct imap_response *r)
{
	(void)cmd;
	(void)r;
	c->idling = true;
	return 0;
}

/* Wait for input up to ms; 1 input, 0 none, -1 failed. */
static int wait_input(struct imap_client *c, int64_t ms)
{
	char *err = NULL;
	int w;

	if (ms <= 0)
		return 0;
	w = net_conn_wait(c->conn, (unsigned)(ms > UINT32_MAX ? UINT32_MAX : ms),
			  &err);
	if (w < 0)
		return client_fail_net(c, err);
	return w;
}

/* Without IDLE: NOOP every 30 seconds until something changes. */
static int idle_poll(struct imap_client *c, unsigned timeout, bool *changed_r,
		     char **error_r)
{
	int64_t deadline = mono_ms() + (int64_t)timeout * 1000;

	for (;;) {
		struct imap_op op;
		int64_t left;
		int r;

		if (op_begin(c, &op, error_r) < 0)
			return -1;
		queue_cmd(c, new_cmd(c, "NOOP"), NULL, NULL, 0);
		r = run(c);
		*changed_r = op.changed;
		if (op_end(c, &op, r, error_r) < 0)
			return -1;
		left = deadline - mono_ms();
		if (*changed_r || left <= 0)
			return 0;
		if (wait_input(c, left < 30000 ? left : 30000) < 0) {
			c->failure = c->broken_failure;
			*error_r = xstrdup(c->broken_error);
			return -1;
		}
	}
}

int imap_idle(struct imap_client *c, unsigned timeout, bool *changed_r,
	      char **error_r)
{
	struct imap_cmd *cmd;
	struct imap_op op;
	int64_t deadline;
	int r = 0;

	*changed_r = false;
	if (!(c->caps & IMAP_CAP_IDLE))
		return idle_poll(c, timeout, changed_r, error_r);
	if (op_begin(c, &op, error_r) < 0)
		return -1;
	cmd = new_cmd(c, "IDLE");
	cmd->exclusive = true;
	cmd->cont = idle_cont;
	queue_cmd(c, cmd, NULL, NULL, 0);
	c->idling = false;
	while (op.pending > 0 && !c->idling && r == 0) {
		r = send_ready(c);
		if (r == 0)
			r = read_response(c);
	}
	if (r < 0 || op.pending == 0)
		return op_end(c, &op, r, error_r);
	deadline = mono_ms() + (int64_t)timeout * 1000;
	while (!op.changed && op.pending > 0) {
		int w = wait_input(c, deadline - mono_ms());

		if (w < 0)
			return op_end(c, &op, -1, error_r);
		if (w == 0)
			break;
		if (read_response(c) < 0)
			return op_end(c, &op, -1, error_r);
	}
	if (op.pending > 0) {
		log_trace("%s: C: DONE", c->label);
		if (send_bytes(c, "DONE\r\n", 6) < 0)
			return op_end(c, &op, -1, error_r);
	}
	c->idling = false;
	r = run(c);
	*changed_r = op.changed;
	return op_end(c, &op, r, error_r);
}

/* ---- IDLE inside an event loop ---- */

int imap_client_fd(const struct imap_client *c)
{
	return net_conn_fd(c->conn);
}

int imap_idle_begin(struct imap_client *c, char **error_r)
{
	struct imap_op *op = &c->idle_wait;
	struct imap_cmd *cmd;
	int r = 0;

	if (!(c->caps & IMAP_CAP_IDLE)) {
		c->failure = IMAP_FAIL_NO;
		*error_r = xstrdup("the server does not offer IDLE");
		return -1;
	}
	if (op_begin(c, op, error_r) < 0)
		return -1;
	cmd = new_cmd(c, "IDLE");
	cmd->exclusive = true;
	cmd->cont = idle_cont;
	queue_cmd(c, cmd, NULL, NULL, 0);
	c->idling = false;
	while (op->pending > 0 && !c->idling && r == 0) {
		r = send_ready(c);
		if (r == 0)
			r = read_response(c);
	}
	if (r < 0 || op->pending == 0) {
		c->idling = false;
		if (op_end(c, op, r, error_r) < 0)
			return -1;
		c->failure = IMAP_FAIL_NO;
		*error_r = xstrdup("IDLE ended at once");
		return -1;
	}
	return 0;
}

int imap_idle_check(struct imap_client *c, bool *changed_r, char **error_r)
{
	struct imap_op *op = &c->idle_wait;
	char *err = NULL;

	*changed_r = false;
	if (c->op != op)
		BUG("%s: no IDLE running", __func__);
	if (net_conn_poll_input(c->conn, &err) < 0) {
		client_fail_net(c, err);
		goto failed;
	}
	for (;;) {
		const struct imap_response *r = NULL;
		const char *data;
		size_t len, used = 0;
		int ret;

		data = net_conn_input(c->conn, &len);
		if (len == 0)
			break;
		ret = imap_parser_feed(c->parser, data, len, &used, &r);
		if (used > 0 && log_enabled(LOG_TRACE))
			imap_rtrace_feed(&c->rtrace, data, used);
		if (ret < 0) {
			client_fail(c, IMAP_FAIL_PROTO,
				    "bad response from server: %s",
				    imap_parser_error(c->parser));
			goto failed;
		}
		net_conn_consume(c->conn, used);
		if (ret == 0)
			break;
		if (dispatch(c, r) < 0)
			goto failed;
	}
	*changed_r = op->changed;
	op->changed = false;
	if (op->pending > 0 && !c->broken && net_conn_at_eof(c->conn)) {
		client_fail(c, IMAP_FAIL_NET, "connection closed by '%s'",
			    c->host);
		goto failed;
	}
	if (op->pending > 0 && !c->broken)
		return 0;
failed:
	c->idling = false;
	if (op_end(c, op, c->broken ? -1 : 0, error_r) == 0) {
		c->failure = IMAP_FAIL_NO;
		*error_r = xstrdup("the server ended IDLE");
	}
	return -1;
}

int imap_idle_end(struct imap_client *c, bool *changed_r, char **error_r)
{
	struct imap_op *op = &c->idle_wait;
	int r = 0;

	if (c->op != op)
		BUG("%s: no IDLE running", __func__);
	if (op->pending > 0 && !c->broken) {
		log_trace("%s: C: DONE", c->label);
		r = send_bytes(c, "DONE\r\n", 6);
	}
	c->idling = false;
	if (r == 0)
		r = run(c);
	*changed_r = op->changed;
	return op_end(c, op, r, error_r);
}

int imap_notify_set(struct imap_client *c, const char *spec,
		    imap_notice_fn *fn, void *ctx, char **error_r)
{
	struct imap_cmd *cmd = new_cmd(c, "NOTIFY");

	imap_cmd_add(cmd, " SET ", 5);
	imap_cmd_add(cmd, spec, strlen(spec));
	c->notice = fn;
	c->notice_ctx = ctx;
	return simple_cmd(c, cmd, error_r);
}
