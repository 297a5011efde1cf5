/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sync-private.h - what the engine's files share.
 *
 * A run has three phases over the account's folders:
 *   1. gather (parallel, one folder per worker at a time): finish what a
 *      killed run left in the journal, learn what changed on the server
 *      (STATUS precheck, SELECT [QRESYNC], UID FETCH [CHANGEDSINCE]) and in
 *      the Maildir (stat of cur/ and new/, then a scan if they changed);
 *   2. plan (main thread, all folders at once): cross-folder matching of
 *      moves, then the per-folder three-way comparison and the brake;
 *   3. execute (parallel): replay the plan, each step ordered so that a
 *      kill at any instant is finished by the next run.
 */
#ifndef TB_SYNC_PRIVATE_H
#define TB_SYNC_PRIVATE_H

#include "common.h"
#include "sync/sync.h"
#include "state/state.h"
#include "maildir/maildir.h"
#include "util/ident.h"

#include <pthread.h>
#include <stdatomic.h>

struct folder_stats {
	unsigned pulled_new, pushed_new;
	unsigned pulled_flags, pushed_flags;
	unsigned pulled_deletions, pushed_deletions;
	unsigned pulled_moves, pushed_moves;
	unsigned pulled_copies, pushed_copies;
	uint64_t bytes_down, bytes_up;
};

/* What the server says about a message the state knows. */
enum srv_view { SRV_SAME = 0, SRV_FLAGS, SRV_GONE };

/* A message the server has and the state does not know. */
struct srv_new {
	uint32_t uid;
	unsigned flags;
	bool claimed;          /* matched by a move or by recovery */
	bool have_id;          /* id fetched during gather (for moves) */
	struct msg_ident *id;  /* owned; NULL unless have_id */
};

/* Per state row, the comparison's inputs and the plan's outputs. */
struct pair {
	struct state_msg m;    /* as last synced (owned) */
	enum srv_view sv;
	unsigned sflags;       /* server flags when sv == SRV_FLAGS */
	long lidx;             /* index into the local entries, -1 if gone */
	unsigned lflags;
	/* plan */
	enum {
		ACT_NONE, ACT_FLAGS, ACT_DEL_LOCAL, ACT_DEL_SERVER,
		ACT_FORGET, ACT_REUPLOAD, ACT_REDOWNLOAD, ACT_MOVED_AWAY,
	} act;
	unsigned new_s, new_l, new_state;
	/* a move into this folder, replayed before anything else */
	enum {
		MV_NONE,
		MV_SERVER,   /* moved locally: UID MOVE src_uid from src to here */
		MV_LOCAL,    /* moved on the server: the file comes from src */
		MV_RENUMBER, /* same folder, new UID on the server (src_uid: old) */
		MV_REBASE,   /* same folder, file renamed (src_base: old base) */
	} mv;
	struct folder *src;
	uint32_t src_uid;      /* the pair's UID in src */
	char *src_base;        /* the file's base in src (MV_LOCAL); owned */
	int64_t jid;           /* journal entry of the move */
	bool moved;
	bool done;             /* the move is recorded (or moot) */
};
#define LOCAL_SAME (-2L)       /* lidx: local folder unchanged, flags as state */
#define LOCAL_ELSEWHERE (-3L)  /* lidx: the file is in pair->src (MV_LOCAL) */

/* A copy into a folder, replayed without the body (copies-*.c). */
struct copy_in {
	bool push;             /* local copy: UID COPY on the server */
	uint32_t uid;          /* pull: the new UID here; push: the source's */
	unsigned flags;        /* the new message's flags on the server */
	size_t lidx;           /* push: the local entry */
	struct msg_ident id;
	char *src_path;        /* pull: the source's local folder; owned */
	char *src_base;        /* pull: the source's file; owned */
	char *alt_path;        /* pull: where this run moves it; owned */
	struct pair *via;      /* push: the source's move, until the moves
				  phase made it (borrowed) */
	char *src_name;        /* push: the source's server folder; owned */
	uint32_t src_uidvalidity;
	bool src_fresh;        /* push: src_uidvalidity read from the server
				  in this run (folder_fresh_uidvalidity(),
				  taken in the plan: the execute phase's
				  workers change the source's fields) */
	int64_t jid;           /* its journal entry */
	char *base;            /* pull: the new file; owned */
	uint32_t new_uid;      /* push: the copy's UID here */
	bool deferred;         /* pull: made after the execute phase, from
				  the file another folder downloads */
	bool made, sent, done, tried;
};

enum folder_phase_status { FOLDER_OK = 0, FOLDER_FAILED, FOLDER_SKIPPED };

struct folder {
	char *name;                 /* server name, UTF-8, '/' separator */
	char *path;                 /* local Maildir path */
	bool on_server, on_local, in_state;
	bool create_server, create_local;
	unsigned srv_attrs;
	struct state_folder sf;     /* state row (id 0 when new) */

	bool have_status;           /* STATUS precheck result */
	struct imap_status_data stat;
	bool server_unchanged;      /* precheck says so: no SELECT */
	bool local_unchanged;       /* cur/ and new/ mtimes as stored */
	bool untouched;             /* both unchanged: pairs not even loaded */
	bool uidvalidity_changed;
	bool local_missing;         /* state knew it, the Maildir is gone */
	int worker;                 /* which worker gathered it */

	struct mdir *md;
	struct imap_selected sel;
	bool selected;
	/* headers of new server messages fetched in the gather SELECT's
	 * flight (folder.c), until gather_snew_idents() hands them out */
	struct ahead_ident *ahead_ids;
	size_t n_ahead_ids, a_ahead_ids;
	bool ahead_idents;
	int64_t cur_mtime, new_mtime;

	struct pair *pairs;         /* state rows, sorted by uid; then the
				       pairs moved in by moves_plan() */
	size_t n_pairs, a_pairs;
	struct srv_new *snew;       /* server messages unknown to the state */
	size_t n_snew, a_snew;
	struct mdir_entry *lents;   /* local files (scan) */
	size_t n_lents;
	bool *lent_known;           /* file belongs to a pair or was claimed */

	struct journal_entry *late; /* J_LATE_APPEND tombstones of the folder */
	size_t n_late;
	uint32_t *dup_uids;         /* plan: late duplicates of our uploads */
	size_t n_dup;
	int64_t *dup_jids;          /* their tombstones */
	uint32_t *adopt_uids;       /* plan: late copies of files not
				       uploaded again yet: paired with them */
	size_t *adopt_late;         /* their tombstones (index into late) */
	size_t n_adopt;

	struct copy_in *copies;     /* plan: copies into it (copies-*.c) */
	size_t n_copies, a_copies;
	uint32_t *dl_uids;          /* plan: to download */
	size_t n_dl;
	size_t *ul_idx;             /* plan: local entries to upload */
	size_t n_ul;

	/* pairs moved out of this folder by moves_plan(), and how many of
	 * those moves the target folders committed; the server and local
	 * bookmarks are saved only once all of them did (or the next run
	 * would trust a bookmark past a move it never recorded) */
	unsigned moves_out;
	atomic_uint moves_out_done;
	bool bookmark_deferred;
	bool local_dirty;           /* this run changed the Maildir folder */
	bool verify_pending;        /* it did: read it again after the run,
				       to keep its mtimes (folder_verify) */
	bool incomplete;            /* something was left for the next run:
				       store no bookmark */

	struct folder_stats stats;
	enum folder_phase_status status;
	int exit_code;              /* SYNC_EXIT_* for this folder */
	char *error;                /* owned */
	bool reported;
	struct move_ref *outs;      /* moves to the server out of this folder */
	size_t n_outs, a_outs;
	bool moves_claimed;         /* a worker took it in the moves phase */
	bool exec_claimed;          /* a worker took it in the execute phase */
	size_t exec_weight;         /* how much the plan has for it */
	/* its uploads' answers still to come after folder_execute()
	 * returned 1: folder_execute_end() records them */
	struct ul_batch *ul_late;
};

struct engine;
struct ul_batch;

/* A move to the server, seen from its source folder: pair pi of t. */
struct move_ref {
	struct folder *t;
	size_t pi;
};

struct early_status {
	char *name;
	bool ok;
	struct imap_status_data st;
};

struct worker {
	struct engine *e;
	int index;
	pthread_t thread;
	struct remote *r;           /* opened on first use */
	struct state *st;
	char *selected;             /* folder the connection has selected */
	/* preconnect(): a connection opened while the first one waits
	 * for a slow STATUS precheck; joined before the worker's first use */
	pthread_t pre_thread;
	bool pre_started;
	struct remote *pre_r;
	/* a folder's early downloads sent ahead of the next folder's
	 * gather (folder_lead_end() finishes them) */
	struct dl_lead *dl_lead;
	/* a folder whose uploads are answered behind the next folder's
	 * flight (folder_execute() returned 1) */
	struct folder *exec_late;
};

struct engine {
	const struct sync_account *a;
	const struct sync_options *o;
	const struct remote_factory *rf;
	unsigned dir_new, dir_flags, dir_deletions, dir_moves, dir_folders;

	struct folder **folders;
	size_t n_folders;
	struct worker *workers;
	size_t n_workers;

	pthread_mutex_t lock;
	size_t next;                /* queue position of the running phase */
	struct folder **exec;       /* execute phase queue, heaviest first */
	size_t n_exec;
	struct folder **verify;     /* verify phase: folders this run changed */
	size_t n_verify;
	int phase;
	int exit_code;              /* merged account-level code */
	bool fatal;                 /* auth/TLS failure: stop everything */
	char *fatal_error;

	/* STATUS of the folders the state knows, asked before LIST (see
	 * early_status() in engine.c); void once a rename or a recovery
	 * changed the server after it was asked */
	struct early_status *early;
	size_t n_early;
	bool server_touched;
	int64_t login_ns;           /* the first login took that long */
	/* for the moves phase: the first login was slow, and so were the
	 * round trips: a round trip costs more than the server's work
	 * (engine.c link_slow(), moves_out_execute()) */
	bool slow_link;
	size_t moves_share;         /* sources a worker takes at once */
	bool link_known;            /* slow_link was decided this run */
	int prev_slow;              /* the last run's: 1, 0, -1 unknown */
	int delim;                  /* the server's, -1 until known */
	/* LIST answered in the early STATUS's flight, for discover() */
	struct remote_folder *prelist;
	size_t n_prelist;
	bool have_prelist;

	/* preconnect(): set once the STATUS precheck and LIST are answered;
	 * pre_wait_ns is how long the others wait for that before they
	 * connect anyway */
	atomic_bool precheck_done;
	int64_t pre_wait_ns;
	size_t pre_n;               /* workers preconnect() may open */
	pthread_t pre_waiter;
	bool pre_waiter_started;
	pthread_mutex_t pre_lock;
	pthread_cond_t pre_cond;

	struct copy_claims *copy_claims;  /* copies-plan.c, gather phase */

	/* progress */
	uint64_t prog_msgs, prog_total, prog_bytes;
	int64_t prog_start_ms, prog_last_ms;
	const char *prog_folder;    /* the folder that moved last */
};

/* folder.c */
bool folder_check_untouched(struct engine *e, struct folder *f);
bool folder_server_work(const struct folder *f);
int folder_ensure_row(struct worker *w, struct folder *f);
int folder_gather(struct worker *w, struct folder *f);
/* Finish the downloads a folder's gather left in flight ahead of the
 * next one's commands (the last folder's, or before the connection
 * goes). */
void folder_lead_end(struct worker *w);
void folder_plan(struct engine *e, struct folder *f);
/* 0 done, -1 failed, 1: the answers to its uploads are read behind
 * the next folder's commands; folder_execute_end() then records them
 * (w->exec_late). */
int folder_execute(struct worker *w, struct folder *f);
int folder_execute_end(struct worker *w, struct folder *f);
/* Read what is left of w->exec_late's answers now, before the
 * connection goes (folder_execute_end() records them later). */
void folder_late_collect(struct worker *w);
/* After all folders ran: save the bookmarks save_folder_row() deferred. */
void folder_save_deferred_bookmark(struct worker *w, struct folder *f);
/* After that: when (wall clock, ns) the folder's directories are old
 * enough to be trusted, or -1 when it needs no verify. */
int64_t folder_verify_due(const struct folder *f);
/* Read a folder this run changed once more and, when it holds just what
 * the state says, store its mtimes so that the next run need not read
 * it. Call once folder_verify_due() has passed. */
void folder_verify(struct worker *w, struct folder *f);
void folder_free(struct folder *f);
void folder_fail(struct folder *f, int exit_code, const char *fmt, ...)
	ATTR_PRINTF(3, 4);

/* moves.c: cross-folder matching (plan phase, main thread) and replay */
void moves_plan(struct engine *e, struct worker *w0);
int moves_execute(struct worker *w, struct folder *f);
size_t moves_collect(struct engine *e, struct worker *w0);
void moves_out_execute(struct worker *w, struct folder *src);
bool moves_many_usable(struct worker *w);
void moves_out_execute_many(struct worker *w, struct folder **srcs,
			    size_t n);
int recover_moves(struct worker *w, struct folder *f,
		  struct journal_entry *je, size_t n_je);
/* UIDVALIDITY read from the server in this run, or 0 (engine.c) */
uint32_t folder_fresh_uidvalidity(const struct folder *f);
/* Select in the next command's flight (engine.c): 1 already selected */
int worker_select_ahead(struct worker *w, const char *name,
			uint32_t uidvalidity, char **error_r);
void worker_forget_selected(struct worker *w);
/* Select a folder by name without touching any struct folder. */
int worker_select_name(struct worker *w, const char *name,
		       uint32_t uidvalidity, struct imap_selected *sel_r,
		       char **error_r);
/* The same, unless w's connection has it selected already: then 1, and
 * sel_r is left alone (0 after a SELECT, -1 on error). */
int worker_select_keep(struct worker *w, const char *name,
		       uint32_t uidvalidity, struct imap_selected *sel_r,
		       char **error_r);

/* copies-*.c: copies made without the body (plan phase, main thread, after
 * folder_plan(), also after a fatal error: it frees the gather's claims;
 * execute before the downloads and uploads they replace) */
void copies_plan(struct engine *e, struct worker *w0);
int copies_execute(struct worker *w, struct folder *f);
/* Gmail mode (`gmail: true`, or the server has X-GM-EXT-1): every label
 * is a folder, so even a first sync learns the identity of new messages
 * (headers only) to download each once. */
bool copies_gmail(struct worker *w);
#define GATHER_IDENTS_MAX_GMAIL 50000
/* Gather phase: whether this is the first early download of this message
 * (server identity, else content) in the run (the others are left to the
 * plan: copies of it). */
bool copies_claim_early(struct engine *e, const struct msg_ident *id);
/* Main thread, after the moves phase: copies from a message this run
 * moved on the server take its new UID (or are uploaded). */
void copies_after_moves(struct engine *e);
/* After the execute phase, before the deferred bookmarks are saved. */
void copies_execute_deferred(struct engine *e, struct worker *w0);
/* Whether deferred copies into f are still to be tried (report later). */
bool copies_pending(const struct folder *f);
void copies_free(struct folder *f);
/* bookmark.c: after a folder's server work on w's connection, move its
 * server bookmark past the run's own changes when the server reported
 * no other change (the next run then finds it unchanged) */
void bookmark_own_changes(struct worker *w, struct folder *f);
/* The same from the folder's state as the connection saw it after its
 * flight (imap_tail_end()), while another folder is selected now. */
void bookmark_own_state(struct folder *f, const struct imap_own_state *s);
/* Select a folder this run moved messages into for its execute phase
 * (like worker_select()); when nothing but those messages changed it
 * since the plan's view, that view moves past them. */
/* The same, in the flight of the folder's next command: its answer is
 * applied when it comes; remote flush() waits for it when no command
 * follows. */
int bookmark_select_ahead(struct worker *w, struct folder *f, char **error_r);
int bookmark_select(struct worker *w, struct folder *f, char **error_r);
/* Tell w's connection which of f's UIDs this run moved away. */
void bookmark_moved_out(struct worker *w, struct folder *f);

/* late.c: late copies of uploads a killed run sent */
int late_load(struct worker *w, struct folder *f);
void late_plan(struct folder *f);
int late_execute(struct worker *w, struct folder *f);

/* renames.c: folders renamed on one side, between discovery and classify */
void renames_detect(struct engine *e, struct worker *w0);

/* A message's identity learnt from a FETCH of RFC822.SIZE and
 * BODY.PEEK[HEADER] (recover.c). */
struct fetched_ident {
	uint32_t uid;
	unsigned flags;
	struct msg_ident id;
	bool used;
};
struct fetched_idents {
	struct fetched_ident *v;
	size_t n, a;
};
void fetch_to_ident(const struct imap_fetch *fe, struct msg_ident *id_r);
/* imap_fetch_cb collecting into a struct fetched_idents (ctx) */
int collect_ident(void *ctx, const struct imap_fetch *fe);

/* recover.c: finish what the journal says a killed run left open; 0 when
 * there was nothing to finish, 1 when steps were finished, -1 on error */
int folder_recover(struct worker *w, struct folder *f);
/* Find on the server, among UIDs >= min_uid of the selected folder, the
 * messages with these identities (APPEND without UIDPLUS, or a killed
 * run). uids_r[i] = 0 when not found. taken (sorted) are UIDs that already
 * belong to other messages and must not be matched. */
int remote_find_idents(struct worker *w, const struct msg_ident *ids,
		       size_t n, uint32_t min_uid, const uint32_t *taken,
		       size_t n_taken, uint32_t *uids_r, char **error_r);

/* engine.c */
int worker_remote(struct worker *w, char **error_r);
int worker_select(struct worker *w, struct folder *f, char **error_r);
void engine_progress(struct engine *e, const struct folder *f, uint64_t msgs,
		     uint64_t bytes);
void engine_progress_total(struct engine *e, uint64_t msgs);

/* report.c */
void report_folder(struct engine *e, struct folder *f);
void report_plan(struct engine *e, struct folder *f);
void report_summary(struct engine *e);
void report_progress(struct engine *e, bool final);

/* util (engine.c) */
int64_t now_ms(void);
/* CLOCK_REALTIME in ns (comparable with file times) */
int64_t wall_ns(void);
/* Sleep until the CLOCK_REALTIME instant `until` (ns); at once if past. */
void sleep_until_wall_ns(int64_t until);
int cmp_u32(const void *a, const void *b);

/* The state row of a new pair, its identity taken from a message's
 * (downloads, uploads, copies, recovery) or from a journal entry's (an
 * upload a killed run had sent). Strings are borrowed, not copied. */
static inline void pair_row_ident(struct state_msg *m, uint32_t uid,
				  char *base, unsigned flags,
				  struct msg_ident *id)
{
	memset(m, 0, sizeof(*m));
	m->uid = uid;
	m->base = base;
	m->flags = flags;
	m->size = id->size;
	m->msgid = id->msgid[0] ? id->msgid : NULL;
	memcpy(m->hhash, id->hhash, sizeof(m->hhash));
	m->have_hhash = true;
	m->emailid = id->sid[0] ? id->sid : NULL;
}

static inline void pair_row_journal(struct state_msg *m, uint32_t uid,
				    const struct journal_entry *e)
{
	memset(m, 0, sizeof(*m));
	m->uid = uid;
	m->base = e->base;
	m->flags = e->flags;
	m->size = e->size;
	m->msgid = e->msgid;
	memcpy(m->hhash, e->hhash, sizeof(m->hhash));
	m->have_hhash = true;
}

#endif
