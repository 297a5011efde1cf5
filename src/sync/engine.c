/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * engine.c - one account's run: lock, folder discovery, the STATUS
 * precheck, the worker threads (one IMAP connection each) and the three
 * phases described in sync-private.h.
 */
#include "common.h"
#include "sync/sync-private.h"
#include "util/log.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

int sync_exit_merge(int a, int b)
{
	static const int order[] = { SYNC_EXIT_CONFIG, SYNC_EXIT_AUTH,
				     SYNC_EXIT_LOCKED, SYNC_EXIT_BRAKE,
				     SYNC_EXIT_FAIL };
	size_t i;

	for (i = 0; i < N_ELEMENTS(order); i++)
		if (a == order[i] || b == order[i])
			return order[i];
	return SYNC_EXIT_OK;
}

static atomic_long crash_counter;
static long crash_at = -1;
static volatile sig_atomic_t stop_requested;

void sync_request_stop(void)
{
	stop_requested = 1;
}

void sync_crash_point(const char *what)
{
	static const char *stop_at;
	long n;

	/* tests: TWINBOX_STOP_AT=<what> stops the process (SIGSTOP) at that
	 * point, so that a test can change the server under a run */
	if (stop_at == NULL) {
		stop_at = getenv("TWINBOX_STOP_AT");
		if (stop_at == NULL)
			stop_at = "";
	}
	if (*stop_at != '\0' && strcmp(stop_at, what) == 0)
		(void)raise(SIGSTOP);
	if (stop_requested) {
		log_info("stopping at a safe point (%s); the next run "
			 "finishes the sync", what);
		_exit(0);
	}
	if (crash_at < 0) {
		const char *s = getenv("TWINBOX_CRASH_AT");

		crash_at = s && *s ? strtol(s, NULL, 10) : 0;
	}
	if (crash_at <= 0)
		return;
	n = atomic_fetch_add(&crash_counter, 1) + 1;
	if (n == crash_at) {
		log_debug("crash point %ld: %s", n, what);
		_exit(99);
	}
}

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct timespec ns_timespec(int64_t ns)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ns / 1000000000LL);
	ts.tv_nsec = (long)(ns % 1000000000LL);
	return ts;
}

void sleep_until_wall_ns(int64_t until)
{
	int64_t now = wall_ns();
	struct timespec ts;

	if (until <= now)
		return;
	ts = ns_timespec(until - now);
	nanosleep(&ts, NULL);
}

void engine_progress(struct engine *e, const struct folder *f, uint64_t msgs,
		     uint64_t bytes)
{
	if (!e->o->progress)
		return;
	pthread_mutex_lock(&e->lock);
	e->prog_folder = f->name;
	e->prog_msgs += msgs;
	e->prog_bytes += bytes;
	report_progress(e, false);
	pthread_mutex_unlock(&e->lock);
}

void engine_progress_total(struct engine *e, uint64_t msgs)
{
	pthread_mutex_lock(&e->lock);
	e->prog_total += msgs;
	pthread_mutex_unlock(&e->lock);
}

static void engine_fatal(struct engine *e, int code, const char *msg)
{
	pthread_mutex_lock(&e->lock);
	if (!e->fatal) {
		e->fatal = true;
		e->fatal_error = xstrdup(msg);
	}
	e->exit_code = sync_exit_merge(e->exit_code, code);
	pthread_mutex_unlock(&e->lock);
}

/* Log out; the worker forgets its selection. */
static void worker_close_remote(struct worker *w)
{
	folder_lead_end(w);
	folder_late_collect(w);
	if (w->r == NULL)
		return;
	w->r->ops->close(w->r);
	w->r = NULL;
	FREE_AND_NULL(w->selected);
}

static int worker_open(struct worker *w, bool first, char **error_r);

int worker_remote(struct worker *w, char **error_r)
{
	return worker_open(w, false, error_r);
}

/* The run's first connection: its first commands may go with the login,
 * whose failure first_login_check() then reports. */
static int worker_remote_first(struct worker *w, char **error_r)
{
	return worker_open(w, w->e->rf->open_first != NULL, error_r);
}

static int worker_open(struct worker *w, bool first, char **error_r)
{
	struct engine *e = w->e;
	enum imap_failure fail = IMAP_FAIL_NONE;
	char *err = NULL;

	if (w->r != NULL && !w->r->ops->broken(w->r))
		return 0;
	worker_close_remote(w);
	if (e->fatal) {
		*error_r = xstrdup(e->fatal_error ? e->fatal_error
					     : "account failed");
		return -1;
	}
	if ((first ? e->rf->open_first : e->rf->open)(e->rf->ctx, &w->r, &fail,
						      &err) < 0) {
		int code = (fail == IMAP_FAIL_AUTH || fail == IMAP_FAIL_TLS)
				   ? SYNC_EXIT_AUTH : SYNC_EXIT_FAIL;

		if (code == SYNC_EXIT_AUTH)
			engine_fatal(e, code, err);
		*error_r = err;
		w->r = NULL;
		return -1;
	}
	if (e->delim >= 0 && w->r->ops->set_delimiter != NULL)
		w->r->ops->set_delimiter(w->r, (char)e->delim);
	return 0;
}

static int noop_fetch(void *ctx, const struct imap_fetch *f)
{
	(void)ctx;
	(void)f;
	return 0;
}

static int noop_vanished(void *ctx, const char *set, bool earlier)
{
	(void)ctx;
	(void)set;
	(void)earlier;
	return 0;
}

int worker_select(struct worker *w, struct folder *f, char **error_r)
{
	struct imap_selected sel;
	int r;

	r = worker_select_keep(w, f->name,
			       f->selected ? f->sel.uidvalidity
					   : f->sf.uidvalidity,
			       &sel, error_r);
	if (r == 0 && !f->selected) {
		/* the STATUS precheck skipped the SELECT: keep the stored
		 * bookmark, only learn where new UIDs start */
		f->sel.uidnext = sel.uidnext;
		f->sel.uidvalidity = sel.uidvalidity;
	}
	return r < 0 ? -1 : 0;
}

int worker_select_keep(struct worker *w, const char *name,
		       uint32_t uidvalidity, struct imap_selected *sel_r,
		       char **error_r)
{
	/* a broken connection is replaced here, and forgets its selection */
	if (worker_remote(w, error_r) < 0)
		return -1;
	if (w->selected != NULL && strcmp(w->selected, name) == 0)
		return 1;
	return worker_select_name(w, name, uidvalidity, sel_r, error_r);
}

/* The folder's UIDVALIDITY as this run has read it from the server (its
 * SELECT, or a STATUS that agreed with the state), or 0. */
uint32_t folder_fresh_uidvalidity(const struct folder *f)
{
	if (f->selected)
		return f->sel.uidvalidity;
	if (f->have_status && f->sf.uidvalidity != 0 &&
	    f->stat.uidvalidity == f->sf.uidvalidity)
		return f->sf.uidvalidity;
	return 0;
}

/*
 * Select name in the flight of the next command on this connection,
 * without a round trip of its own (imap_select_ahead()). Only for a
 * folder whose UIDVALIDITY this run has read from the server
 * (folder_fresh_uidvalidity()): the commands behind the SELECT act
 * before the client can check it. Otherwise, or where the server side
 * cannot, a plain SELECT. Returns 1 when already selected, 0 or -1.
 */
int worker_select_ahead(struct worker *w, const char *name,
			uint32_t uidvalidity, char **error_r)
{
	struct imap_selected sel;

	if (worker_remote(w, error_r) < 0)
		return -1;
	if (w->selected != NULL && strcmp(w->selected, name) == 0)
		return 1;
	if (uidvalidity == 0 || w->r->ops->select_ahead == NULL)
		return worker_select_name(w, name, uidvalidity, &sel, error_r);
	FREE_AND_NULL(w->selected);
	if (w->r->ops->select_ahead(w->r, name, uidvalidity, NULL, NULL, NULL,
				    NULL, NULL, NULL, NULL, error_r) < 0)
		return -1;
	w->selected = xstrdup(name);
	return 0;
}

/* After a command failed on w: the SELECT sent ahead of it may be what
 * failed, so the next command selects again. */
void worker_forget_selected(struct worker *w)
{
	FREE_AND_NULL(w->selected);
}

int worker_select_name(struct worker *w, const char *name,
		       uint32_t uidvalidity, struct imap_selected *sel_r,
		       char **error_r)
{
	if (worker_remote(w, error_r) < 0)
		return -1;
	FREE_AND_NULL(w->selected);
	if (w->r->ops->select(w->r, name, NULL, noop_fetch, noop_vanished,
			      NULL, sel_r, error_r) < 0)
		return -1;
	w->selected = xstrdup(name);
	if (uidvalidity != 0 && sel_r->uidvalidity != uidvalidity) {
		*error_r = xasprintf("UIDVALIDITY of '%s' changed during the run; "
				     "it is handled by the next run", name);
		return -1;
	}
	return 0;
}

/* ---- folder discovery ---- */

static int cmp_folder_name(const void *a, const void *b)
{
	const struct folder *x = *(struct folder *const *)a;
	const struct folder *y = *(struct folder *const *)b;

	return strcmp(x->name, y->name);
}

static bool wanted(struct engine *e, const char *name)
{
	size_t i;

	if (e->a->selected && !e->a->selected(e->a->selected_ctx, name))
		return false;
	if (e->o->folders == NULL)
		return true;
	for (i = 0; i < e->o->n_folders; i++)
		if (strcmp(e->o->folders[i], name) == 0)
			return true;
	return false;
}

static struct folder *folder_add(struct engine *e, const char *name)
{
	struct folder *f = xcalloc(1, sizeof(*f));

	f->name = xstrdup(name);
	f->worker = -1;
	e->folders = xreallocarray(e->folders, e->n_folders + 1,
				   sizeof(*e->folders));
	e->folders[e->n_folders++] = f;
	return f;
}

static struct folder *folder_find(struct engine *e, const char *name)
{
	size_t i;

	for (i = 0; i < e->n_folders; i++)
		if (strcmp(e->folders[i]->name, name) == 0)
			return e->folders[i];
	return NULL;
}

static int discover(struct engine *e, struct worker *w0)
{
	struct remote_folder *rf = NULL;
	size_t n_rf = 0, i;
	char **local = NULL;
	size_t n_local = 0;
	struct state_folder *sfs = NULL;
	size_t n_sfs = 0;
	char *err = NULL;

	if (e->have_prelist) {
		rf = e->prelist;
		n_rf = e->n_prelist;
		e->prelist = NULL;
		e->have_prelist = false;
	} else if (w0->r->ops->list(w0->r, &rf, &n_rf, &err) < 0) {
		log_error("%s: cannot list folders: %s", e->a->name, err);
		free(err);
		return -1;
	}
	for (i = 0; i < n_rf; i++) {
		struct folder *f;

		if (rf[i].attrs & (IMAP_LIST_NOSELECT | IMAP_LIST_NONEXISTENT))
			continue;
		if (!wanted(e, rf[i].name))
			continue;
		f = folder_add(e, rf[i].name);
		f->on_server = true;
		f->srv_attrs = rf[i].attrs;
	}
	remote_folders_free(rf, n_rf);

	if (mdir_list_folders(e->a->maildir, e->a->layout, &local, &n_local,
			      &err) < 0) {
		log_error("%s: cannot list local folders: %s", e->a->name, err);
		free(err);
		return -1;
	}
	for (i = 0; i < n_local; i++) {
		struct folder *f;

		if (wanted(e, local[i])) {
			f = folder_find(e, local[i]);
			if (f == NULL)
				f = folder_add(e, local[i]);
			f->on_local = true;
		}
		free(local[i]);
	}
	free(local);

	if (state_folder_list(w0->st, &sfs, &n_sfs) < 0) {
		log_error("%s", state_error(w0->st));
		return -1;
	}
	for (i = 0; i < n_sfs; i++) {
		struct folder *f;

		if (!wanted(e, sfs[i].name)) {
			state_folder_release(&sfs[i]);
			continue;
		}
		f = folder_find(e, sfs[i].name);
		if (f == NULL)
			f = folder_add(e, sfs[i].name);
		f->in_state = true;
		f->sf = sfs[i];
	}
	free(sfs);
	qsort(e->folders, e->n_folders, sizeof(*e->folders), cmp_folder_name);
	return 0;
}

/* LIST told the delimiter: hand it to the other connections, and keep it
 * for the next run's STATUS before LIST. */
static void remember_delimiter(struct engine *e, struct worker *w0)
{
	int d;
	char v[2];

	if (w0->r->ops->delimiter == NULL)
		return;
	d = w0->r->ops->delimiter(w0->r);
	if (d < 0)
		return;
	v[0] = (char)d;
	v[1] = '\0';
	if (d != e->delim && !e->o->dry_run &&
	    state_meta_put(w0->st, "delimiter", v) < 0)
		log_debug("%s: %s", e->a->name, state_error(w0->st));
	e->delim = d;
}

/* Decide per folder what this run does with it. */
static void classify(struct engine *e, struct folder *f)
{
	char *err = NULL;
	char *path = NULL;

	if (mdir_map_name(e->a->maildir, e->a->layout, f->name, &path,
			  &err) < 0) {
		log_warn("%s: skipping folder '%s': %s", e->a->name, f->name,
			 err);
		free(err);
		f->status = FOLDER_SKIPPED;
		f->reported = true;
		return;
	}
	f->path = path;
	if (!f->in_state) {
		f->sf.name = xstrdup(f->name);
		f->sf.local_path = xstrdup(path);
	} else if (f->sf.local_path == NULL ||
		   strcmp(f->sf.local_path, path) != 0) {
		free(f->sf.local_path);
		f->sf.local_path = xstrdup(path);
	}
	if (f->on_server && !f->on_local) {
		if (f->in_state) {
			/* synced before, now gone here */
			f->local_missing = true;
			if (!e->o->force) {
				folder_fail(f, SYNC_EXIT_BRAKE,
					    "%s: safety brake: the local folder '%s' "
					    "(synced before) is gone; nothing was deleted "
					    "on the server (run with --force to delete "
					    "its messages there)", f->name, path);
				return;
			}
			f->create_local = true;
		} else if (e->dir_folders & SYNC_DIR_PULL) {
			f->create_local = true;
		} else {
			f->status = FOLDER_SKIPPED;
			f->reported = true;
		}
	} else if (!f->on_server && f->on_local) {
		if (f->in_state) {
			log_warn("%s: folder '%s' no longer exists on the server; "
				 "its local copy is kept (delete it to stop syncing it)",
				 e->a->name, f->name);
			f->status = FOLDER_SKIPPED;
			f->reported = true;
		} else if (e->dir_folders & SYNC_DIR_PUSH) {
			f->create_server = true;
		} else {
			f->status = FOLDER_SKIPPED;
			f->reported = true;
		}
	} else if (!f->on_server && !f->on_local) {
		/* gone on both sides: forget it */
		f->status = FOLDER_SKIPPED;
		f->reported = true;
	}
}

static bool precheck_wanted(const struct engine *e, const struct state_folder *sf)
{
	return sf->uidvalidity != 0 && sf->highestmodseq != 0 && !e->o->full;
}

/* STATUS of names into st/ok and, with with_list and a remote that can,
 * LIST in the same flight (into e->prelist, for discover()); -1 when the
 * batch failed as a whole (logged: the run goes on without it). */
static int ask_status(struct engine *e, struct worker *w0,
		      const char **names, size_t n, struct imap_status_data *st,
		      bool *ok, bool with_list)
{
	struct remote *r = w0->r;
	char *err = NULL;
	int ret;

	if (with_list && r->ops->status_list != NULL) {
		ret = r->ops->status_list(r, names, n, st, ok, &e->prelist,
					  &e->n_prelist, &err);
		e->have_prelist = ret == 0;
	} else {
		ret = r->ops->status(r, names, n, st, ok, &err);
	}
	if (ret < 0) {
		log_debug("%s: STATUS precheck failed: %s", e->a->name, err);
		free(err);
	}
	return ret;
}

/*
 * Ask STATUS of every folder the state knows before anything else, LIST
 * included: Dovecot answers a STATUS from its mailbox list index while a
 * session has not listed, and opens the mailbox (tens of milliseconds for
 * a big one) once it has. precheck() uses the answers unless a rename or
 * a recovery changed the server in between.
 */
static void early_status(struct engine *e, struct worker *w0)
{
	struct state_folder *sfs = NULL;
	size_t n_sfs = 0, n = 0, i;
	const char **names;
	struct imap_status_data *st;
	bool *ok;
	int pass;

	if (e->o->full || !w0->r->ops->condstore(w0->r))
		return;
	if (w0->r->ops->set_delimiter != NULL) {
		/* the names need the server's delimiter: the one the last
		 * run stored, or none of this before LIST */
		char *v = NULL;

		if (state_meta_get(w0->st, "delimiter", &v) <= 0 ||
		    strlen(v) > 1) {
			free(v);
			return;
		}
		e->delim = (unsigned char)v[0];
		w0->r->ops->set_delimiter(w0->r, v[0]);
		free(v);
	}
	if (state_folder_list(w0->st, &sfs, &n_sfs) < 0 || n_sfs == 0) {
		free(sfs);
		return;
	}
	names = xcalloc(n_sfs, sizeof(*names));
	/* INBOX first: Dovecot answers it from its list index only while
	 * the session has touched no other mailbox (measured: 8 STATUS in
	 * 1 ms with INBOX first, 5 ms with INBOX third) */
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < n_sfs; i++)
			if ((strcmp(sfs[i].name, "INBOX") == 0) == (pass == 0) &&
			    precheck_wanted(e, &sfs[i]) && wanted(e, sfs[i].name))
				names[n++] = sfs[i].name;
	if (n > 0) {
		st = xcalloc(n, sizeof(*st));
		ok = xcalloc(n, sizeof(*ok));
		/* LIST rides along, after the STATUS commands */
		if (ask_status(e, w0, names, n, st, ok, true) == 0) {
			e->early = xcalloc(n, sizeof(*e->early));
			for (i = 0; i < n; i++) {
				e->early[i].name = xstrdup(names[i]);
				e->early[i].ok = ok[i];
				e->early[i].st = st[i];
			}
			e->n_early = n;
		}
		free(st);
		free(ok);
	}
	free(names);
	state_folders_free(sfs, n_sfs);
}

static const struct early_status *early_find(const struct engine *e,
					     const char *name)
{
	size_t i;

	if (e->server_touched)
		return NULL;
	for (i = 0; i < e->n_early; i++)
		if (strcmp(e->early[i].name, name) == 0)
			return &e->early[i];
	return NULL;
}

/*
 * The first connection's login went with the STATUS precheck
 * (worker_remote_first()): its answer is in now. A refused password ends
 * the run as a refused login does (exit 3); a refusal that only says the
 * server no longer takes an early login connects again, the usual way.
 */
static int first_login_check(struct engine *e, struct worker *w0)
{
	struct remote *r = w0->r;
	enum imap_failure fail;
	char *err = NULL;

	if (r == NULL || r->ops->flush == NULL || r->ops->flush(r, &err) == 0)
		return 0;
	fail = r->ops->failure(r);
	if (fail != IMAP_FAIL_AUTH && fail != IMAP_FAIL_TLS) {
		log_debug("%s: %s", e->a->name, err);
		FREE_AND_NULL(err);
		if (worker_remote(w0, &err) == 0)
			return 0;
	} else {
		engine_fatal(e, SYNC_EXIT_AUTH, err);
	}
	if (!e->fatal)   /* else said once at the end of the run */
		log_error("%s: %s", e->a->name, err);
	free(err);
	e->exit_code = sync_exit_merge(e->exit_code, SYNC_EXIT_FAIL);
	return -1;
}

static void early_free(struct engine *e)
{
	size_t i;

	for (i = 0; i < e->n_early; i++)
		free(e->early[i].name);
	FREE_AND_NULL(e->early);
	e->n_early = 0;
}

static void apply_status(struct folder *f, const struct imap_status_data *st)
{
	f->have_status = true;
	f->stat.messages = st->messages;
	f->stat.uidnext = st->uidnext;
	f->stat.uidvalidity = st->uidvalidity;
	f->stat.highestmodseq = st->highestmodseq;
	f->stat.has_highestmodseq = st->has_highestmodseq;
	f->server_unchanged =
		st->has_uidvalidity && st->has_uidnext && st->has_messages &&
		st->has_highestmodseq &&
		st->uidvalidity == f->sf.uidvalidity &&
		st->uidnext == f->sf.uidnext &&
		st->messages == f->sf.server_count &&
		st->highestmodseq == f->sf.highestmodseq;
}

static void precheck(struct engine *e, struct worker *w0)
{
	const char **names;
	struct imap_status_data *st;
	bool *ok;
	struct folder **fs;
	size_t n = 0, i;

	if (e->o->full || !w0->r->ops->condstore(w0->r))
		return;
	names = xcalloc(e->n_folders + 1, sizeof(*names));
	fs = xcalloc(e->n_folders + 1, sizeof(*fs));
	for (i = 0; i < e->n_folders; i++) {
		struct folder *f = e->folders[i];
		const struct early_status *es;

		if (f->status != FOLDER_OK || !f->in_state || !f->on_server ||
		    !precheck_wanted(e, &f->sf) || f->local_missing)
			continue;
		es = early_find(e, f->name);
		if (es != NULL) {
			if (es->ok)
				apply_status(f, &es->st);
			continue;
		}
		fs[n] = f;
		names[n++] = f->name;
	}
	if (n > 0) {
		st = xcalloc(n, sizeof(*st));
		ok = xcalloc(n, sizeof(*ok));
		if (ask_status(e, w0, names, n, st, ok, false) == 0)
			for (i = 0; i < n; i++)
				if (ok[i])
					apply_status(fs[i], &st[i]);
		free(st);
		free(ok);
	}
	free(names);
	free(fs);
	early_free(e);
}

/* ---- workers ---- */

static struct folder *next_folder(struct engine *e, struct worker *w)
{
	struct folder *f = NULL;

	pthread_mutex_lock(&e->lock);
	while (e->next < e->n_folders && !e->fatal) {
		struct folder *c = e->folders[e->next++];

		if (c->status == FOLDER_OK) {
			f = c;
			break;
		}
	}
	pthread_mutex_unlock(&e->lock);
	(void)w;
	return f;
}

/* After a failed folder: a broken connection is closed, so that the
 * next folder starts on a new one. */
static void worker_drop_broken(struct worker *w)
{
	if (w->r && w->r->ops->broken(w->r))
		worker_close_remote(w);
}

static void gather_loop(struct worker *w)
{
	struct engine *e = w->e;
	struct folder *f;

	while ((f = next_folder(e, w)) != NULL) {
		f->worker = w->index;
		if (folder_gather(w, f) < 0)
			worker_drop_broken(w);
	}
	folder_lead_end(w);
}

/* The execute phase takes the folder this worker's connection still has
 * selected first (no second SELECT), then the heaviest one left. */
static struct folder *next_exec_folder(struct engine *e, struct worker *w)
{
	struct folder *f = NULL;
	size_t i;

	pthread_mutex_lock(&e->lock);
	while (e->next < e->n_exec && e->exec[e->next]->exec_claimed)
		e->next++;
	for (i = e->next; w->selected != NULL && i < e->n_exec; i++) {
		struct folder *c = e->exec[i];

		if (!c->exec_claimed && strcmp(c->name, w->selected) == 0) {
			f = c;
			break;
		}
	}
	if (f == NULL && e->next < e->n_exec)
		f = e->exec[e->next];
	if (f != NULL)
		f->exec_claimed = true;
	pthread_mutex_unlock(&e->lock);
	return f;
}

/* The moves phase takes the source folder this worker has selected
 * first, then the next one in name order. */
static struct folder *next_moves_folder(struct engine *e, struct worker *w)
{
	struct folder *f = NULL;
	size_t i;

	pthread_mutex_lock(&e->lock);
	for (i = 0; w->selected != NULL && i < e->n_folders; i++) {
		struct folder *c = e->folders[i];

		if (c->n_outs > 0 && !c->moves_claimed &&
		    strcmp(c->name, w->selected) == 0) {
			f = c;
			break;
		}
	}
	for (i = 0; f == NULL && i < e->n_folders && !e->fatal; i++) {
		struct folder *c = e->folders[i];

		if (c->n_outs > 0 && !c->moves_claimed)
			f = c;
	}
	if (f != NULL)
		f->moves_claimed = true;
	pthread_mutex_unlock(&e->lock);
	return f;
}

static void moves_loop(struct worker *w)
{
	struct engine *e = w->e;
	struct folder *f, **srcs;
	size_t n;

	srcs = xcalloc(e->moves_share + 1, sizeof(*srcs));
	while ((f = next_moves_folder(e, w)) != NULL) {
		if (e->moves_share < 2 || !moves_many_usable(w)) {
			moves_out_execute(w, f);
			worker_drop_broken(w);
			continue;
		}
		/* this worker's share of the sources in one flight */
		srcs[0] = f;
		for (n = 1; n < e->moves_share &&
			    (srcs[n] = next_moves_folder(e, w)) != NULL; n++)
			;
		moves_out_execute_many(w, srcs, n);
		worker_drop_broken(w);
	}
	free(srcs);
}

static void execute_report(struct worker *w, struct folder *f)
{
	pthread_mutex_lock(&w->e->lock);
	report_folder(w->e, f);
	pthread_mutex_unlock(&w->e->lock);
}

/* A folder whose uploads are still answered (folder_execute() said 1)
 * is finished once the next folder's flight is on its way: the
 * connection does not wait between the two. */
static void execute_late_end(struct worker *w)
{
	struct folder *f = w->exec_late;

	if (f == NULL)
		return;
	if (folder_execute_end(w, f) < 0)
		worker_drop_broken(w);
	execute_report(w, f);
}

static void execute_loop(struct worker *w)
{
	struct folder *f;
	int r;

	while ((f = next_exec_folder(w->e, w)) != NULL) {
		if (w->e->fatal && f->status == FOLDER_OK)
			folder_fail(f, SYNC_EXIT_FAIL, "%s: %s", f->name,
				    w->e->fatal_error);
		r = f->status == FOLDER_OK ? folder_execute(w, f) : 0;
		execute_late_end(w);
		if (r == 1) {
			w->exec_late = f;
			continue;
		}
		if (r < 0)
			worker_drop_broken(w);
		execute_report(w, f);
	}
	execute_late_end(w);
}

static void verify_loop(struct worker *w)
{
	struct engine *e = w->e;
	struct folder *f;

	for (;;) {
		pthread_mutex_lock(&e->lock);
		f = e->next < e->n_verify ? e->verify[e->next++] : NULL;
		pthread_mutex_unlock(&e->lock);
		if (f == NULL)
			break;
		folder_verify(w, f);
	}
}

/* ---- connections opened ahead ----
 *
 * When the first connection's STATUS precheck takes longer than its
 * login did, the server is busy with changed folders and the run will
 * want its other connections: they log in meanwhile, each in a thread of
 * its own, instead of after the precheck. A quick precheck (a no-op run,
 * or one far away, where the login takes several round trips and the
 * precheck one) opens none.
 */
static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *preconnect_one(void *arg)
{
	struct worker *w = arg;
	enum imap_failure fail = IMAP_FAIL_NONE;
	char *err = NULL;

	if (w->e->rf->open(w->e->rf->ctx, &w->pre_r, &fail, &err) < 0) {
		/* the worker tries again when it needs the server, and says
		 * what went wrong then */
		w->pre_r = NULL;
		free(err);
	}
	return NULL;
}

/* Waits for the precheck; when it is slow, starts a login per worker. */
static void *preconnect_main(void *arg)
{
	struct engine *e = arg;
	struct timespec until;
	size_t i;

	until = ns_timespec(wall_ns() + e->pre_wait_ns);
	pthread_mutex_lock(&e->pre_lock);
	while (!atomic_load(&e->precheck_done) &&
	       pthread_cond_timedwait(&e->pre_cond, &e->pre_lock, &until) == 0)
		;
	pthread_mutex_unlock(&e->pre_lock);
	if (atomic_load(&e->precheck_done))
		return NULL;
	for (i = 1; i < e->pre_n; i++) {
		struct worker *w = &e->workers[i];

		if (w->pre_started)
			continue;   /* already by preconnect_local() */
		w->pre_started = pthread_create(&w->pre_thread, NULL,
						preconnect_one, w) == 0;
	}
	return NULL;
}

/*
 * What the connections learnt of logging in to this server (early login
 * and the capabilities after it, imap_client_connect()) is kept in the
 * state from run to run, so that the first connection of the next run
 * profits too: meta "login_hint", "early-auth" or "no-early-auth" and the
 * capability names.
 */
#define LOGIN_HINT_KEY "login_hint"

static char *login_hint_format(const struct imap_login_hint *h)
{
	int early = atomic_load(&h->early);
	char *caps, *v;

	if (early == IMAP_HINT_UNKNOWN)
		return NULL;
	caps = imap_caps_names(atomic_load(&h->caps));
	v = xasprintf("%s%s%s", early == IMAP_HINT_EARLY_AUTH
					 ? "early-auth" : "no-early-auth",
		      *caps ? " " : "", caps);
	free(caps);
	return v;
}

static char *login_hint_load(struct engine *e, struct worker *w0)
{
	struct imap_login_hint *h = e->rf->login_hint;
	char *v = NULL;

	if (h == NULL)
		return NULL;
	if (atomic_load(&h->early) == IMAP_HINT_UNKNOWN &&
	    state_meta_get(w0->st, LOGIN_HINT_KEY, &v) == 1) {
		size_t k = strcspn(v, " ");

		if (k == 10 && strncmp(v, "early-auth", k) == 0)
			atomic_store(&h->early, IMAP_HINT_EARLY_AUTH);
		else if (k == 13 && strncmp(v, "no-early-auth", k) == 0)
			atomic_store(&h->early, IMAP_HINT_NO_EARLY_AUTH);
		atomic_store(&h->caps, imap_caps_parse(v + k));
	}
	free(v);
	return login_hint_format(h);
}

static void login_hint_save(struct engine *e, struct worker *w0,
			    const char *loaded)
{
	struct imap_login_hint *h = e->rf->login_hint;
	char *now;

	if (h == NULL || e->o->dry_run || w0->st == NULL)
		return;
	now = login_hint_format(h);
	if (now != NULL && (loaded == NULL || strcmp(now, loaded) != 0) &&
	    state_meta_put(w0->st, LOGIN_HINT_KEY, now) < 0)
		log_debug("%s: %s", e->a->name, state_error(w0->st));
	free(now);
}

/*
 * Connections where they pay. `connections` is a maximum: a login costs
 * the server a process (about 20 ms of CPU against Dovecot's stock
 * model) and the client several round trips (TCP, TLS, LOGIN), while a
 * folder with a few changes costs one flight. So a run opens one
 * connection per FOLDERS_PER_LOGIN folders that need the server
 * (FOLDERS_PER_LOGIN_NEAR next door, where a flight costs less than a
 * login), and
 * one per such folder for an initial pull (folders the state does not
 * know yet) or big transfers (MSGS_PER_LOGIN messages or more to move),
 * where the transfers, not the logins, take the time. workers_open()
 * caps it at `connections`.
 */
#define FOLDERS_PER_LOGIN 4
#define MSGS_PER_LOGIN 64
/* next door a message moves in a fraction of a ms: transfers pay for a
 * login (tens of ms of a stock server's CPU) only when far bigger */
#define MSGS_PER_LOGIN_NEAR 512
#define FOLDERS_PER_LOGIN_NEAR 8

static size_t conns_paying(size_t busy, size_t n_new, size_t n_msgs,
			   bool slow)
{
	size_t per = slow ? FOLDERS_PER_LOGIN : FOLDERS_PER_LOGIN_NEAR;
	size_t want = (busy + per - 1) / per;

	if (n_new > 0 ||
	    n_msgs >= (slow ? MSGS_PER_LOGIN : MSGS_PER_LOGIN_NEAR))
		want = busy;
	return want;
}

/*
 * Whether the last run found the link slow (link_slow()), kept in the
 * state: the logins preconnect_local() starts before any answer pay
 * only there. meta "link", "slow" or "near".
 */
#define LINK_KEY "link"

static void link_load(struct engine *e, struct worker *w0)
{
	char *v = NULL;

	e->prev_slow = -1;
	if (state_meta_get(w0->st, LINK_KEY, &v) == 1)
		e->prev_slow = strcmp(v, "slow") == 0 ? 1
			       : strcmp(v, "near") == 0 ? 0 : -1;
	free(v);
}

static void link_save(struct engine *e, struct worker *w0)
{
	if (!e->link_known || e->o->dry_run || w0->st == NULL ||
	    e->prev_slow == (int)e->slow_link)
		return;
	if (state_meta_put(w0->st, LINK_KEY, e->slow_link ? "slow" : "near") < 0)
		log_debug("%s: %s", e->a->name, state_error(w0->st));
}

static void preconnect(struct engine *e, int64_t login_ns)
{
	struct state_folder *sfs = NULL;
	size_t n_sfs = 0;

	if (e->n_workers < 2)
		return;
	/* ahead of the precheck only as many as the folders the state
	 * knows could use, were all of them changed: next door (as the
	 * last run found the link) a login costs more than their flights,
	 * and the gather takes a connection per FOLDERS_PER_LOGIN_NEAR */
	if (state_folder_list(e->workers[0].st, &sfs, &n_sfs) < 0)
		n_sfs = 0;
	state_folders_free(sfs, n_sfs);
	e->pre_n = conns_paying(n_sfs, 0, 0, e->prev_slow != 0);
	if (e->pre_n > e->n_workers)
		e->pre_n = e->n_workers;
	if (e->pre_n < 2)
		return;
	e->pre_wait_ns = login_ns > 5000000 ? login_ns : 5000000;
	e->pre_waiter_started = pthread_create(&e->pre_waiter, NULL,
					       preconnect_main, e) == 0;
}

/*
 * Local changes need the server too (the pushes), whatever the STATUS
 * precheck says, and the Maildir tells them before any login: a folder
 * whose cur/ or new/ mtime moved since the last run. Changes in at least
 * FOLDERS_PER_LOGIN folders get a connection per folder (up to
 * `connections`), logged in at once beside the first one instead of
 * after the plan: over a slow link a login is several round trips, which
 * then overlap, and the moves and execute phases find every worker
 * ready. Changes in fewer folders keep one connection.
 */
static void preconnect_local(struct engine *e, struct worker *w0)
{
	struct state_folder *sfs = NULL;
	size_t n_sfs = 0, changed = 0, n, i;

	if (e->n_workers < 2 ||
	    !((e->dir_new | e->dir_flags | e->dir_deletions | e->dir_moves) &
	      SYNC_DIR_PUSH) ||
	    state_folder_list(w0->st, &sfs, &n_sfs) < 0)
		return;
	for (i = 0; i < n_sfs; i++) {
		const struct state_folder *sf = &sfs[i];
		struct mdir *md = NULL;
		int64_t c = 0, nw = 0;
		char *err = NULL;

		if (sf->local_path == NULL || sf->cur_mtime == 0 ||
		    !wanted(e, sf->name))
			continue;
		if (mdir_open(sf->local_path, false, &md, NULL, &err) == 0 &&
		    mdir_mtimes(md, &c, &nw, &err) == 0 &&
		    (c != sf->cur_mtime || nw != sf->new_mtime))
			changed++;
		mdir_close(&md);
		free(err);
	}
	state_folders_free(sfs, n_sfs);
	/* as many as will work on them: changes in that many folders mean
	 * a flight of STOREs, expunges or uploads in each */
	n = changed >= FOLDERS_PER_LOGIN ? changed : conns_paying(changed, 0, 0, true);
	if (n > e->n_workers)
		n = e->n_workers;
	if (n < 2)
		return;
	log_debug("%s: %zu folder(s) changed here: %zu connection(s) at once",
		  e->a->name, changed, n);
	for (i = 1; i < n; i++) {
		struct worker *w = &e->workers[i];

		w->pre_started = pthread_create(&w->pre_thread, NULL,
						preconnect_one, w) == 0;
	}
}

/*
 * A slow link (link_slow(): a login that took SLOW_LOGIN_NS or more, and
 * no answer quicker than SLOW_WAIT_NS), not a busy server next door
 * whose logins fork processes: there a connection per folder
 * that needs the server (up to `connections`) costs no time, its login
 * overlapping the others' work, and the folders then go in parallel. The
 * logins start now, each in a thread, before the gather phase wants
 * them. Next door (loopback, a LAN) the rule of conns_paying() stays: a
 * login costs the server a process there, more than a folder's flight.
 */
#define SLOW_LOGIN_NS (30 * 1000000LL)

static size_t workers_open(struct engine *e, size_t want);

/*
 * Where round trips cost more than the server's work (the moves phase,
 * moves_out_execute()): a slow first login, and the first connection's
 * quickest answer so far (to its login, STATUS, LIST, SELECTs) took
 * SLOW_WAIT_NS or more too. A login slowed down by a busy machine (TLS,
 * authentication, processes to start) still has answers next door that
 * come within a few ms. Without a timed answer the login alone tells.
 */
#define SLOW_WAIT_NS (25 * 1000000LL)

static bool link_slow(struct engine *e, struct worker *w0)
{
	struct remote *r = w0->r;
	int64_t wait = r != NULL && r->ops->min_wait_ns != NULL
			       ? r->ops->min_wait_ns(r) : 0;
	bool slow = e->login_ns >= SLOW_LOGIN_NS &&
		    (wait == 0 || wait >= SLOW_WAIT_NS);

	log_debug("%s: logged in in %lld ms, quickest answer %lld.%03lld ms%s",
		  e->a->name, (long long)(e->login_ns / 1000000),
		  (long long)(wait / 1000000), (long long)(wait / 1000 % 1000),
		  slow ? ": a slow link" : "");
	return slow;
}

static void preconnect_busy(struct engine *e, size_t busy)
{
	size_t want = workers_open(e, busy), i;

	if (want <= e->n_workers)
		return;
	log_debug("%s: %zu folder(s) need the server over a slow link: %zu "
		  "connection(s)", e->a->name, busy, want);
	for (i = 1; i < want; i++) {
		struct worker *w = &e->workers[i];

		if (w->pre_started || w->r != NULL)
			continue;
		w->pre_started = pthread_create(&w->pre_thread, NULL,
						preconnect_one, w) == 0;
	}
	e->n_workers = want;
}

/* The precheck is answered: the waiter either started the logins or
 * will not; after this the workers own their pre_thread. */
static void precheck_finished(struct engine *e)
{
	pthread_mutex_lock(&e->pre_lock);
	atomic_store(&e->precheck_done, true);
	pthread_cond_broadcast(&e->pre_cond);
	pthread_mutex_unlock(&e->pre_lock);
	if (e->pre_waiter_started) {
		pthread_join(e->pre_waiter, NULL);
		e->pre_waiter_started = false;
	}
}

/* Take over the connection preconnect() opened, if any. */
static void preconnect_join(struct worker *w)
{
	if (!w->pre_started)
		return;
	pthread_join(w->pre_thread, NULL);
	w->pre_started = false;
	if (w->pre_r == NULL)
		return;
	if (w->r == NULL) {
		w->r = w->pre_r;
		if (w->e->delim >= 0 && w->r->ops->set_delimiter != NULL)
			w->r->ops->set_delimiter(w->r, (char)w->e->delim);
	} else {
		w->pre_r->ops->close(w->pre_r);
	}
	w->pre_r = NULL;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct engine *e = w->e;

	preconnect_join(w);

	if (e->phase == 1)
		gather_loop(w);
	else if (e->phase == 2)
		moves_loop(w);
	else if (e->phase == 3)
		execute_loop(w);
	else
		verify_loop(w);
	return NULL;
}

static void run_phase(struct engine *e, int phase)
{
	static const char *const names[] = { "", "gather", "moves", "execute",
					     "verify" };
	size_t i;

	log_debug("%s: %s phase, %zu worker(s)", e->a->name, names[phase],
		  e->n_workers);
	e->phase = phase;
	e->next = 0;
	if (e->n_workers == 1) {
		worker_main(&e->workers[0]);
		return;
	}
	for (i = 0; i < e->n_workers; i++) {
		if (pthread_create(&e->workers[i].thread, NULL, worker_main,
				   &e->workers[i]) != 0) {
			/* run it here instead */
			e->workers[i].thread = 0;
			worker_main(&e->workers[i]);
		}
	}
	for (i = 0; i < e->n_workers; i++)
		if (e->workers[i].thread)
			pthread_join(e->workers[i].thread, NULL);
}

/*
 * The folders this run changed are read once more, so that the next run
 * can trust their mtimes (folder_verify). A directory's mtime has the
 * file system's timestamp granularity: a change within the same tick as
 * ours would not move it. So they are read only once their newest change
 * is two timestamp ticks old, all after one wait; the connections are
 * closed first, their logouts overlap it.
 */
static void verify_changed(struct engine *e)
{
	int64_t due = 0, d;
	size_t i;

	e->verify = xcalloc(e->n_folders + 1, sizeof(*e->verify));
	for (i = 0; i < e->n_folders; i++) {
		d = folder_verify_due(e->folders[i]);
		if (d < 0)
			continue;
		e->verify[e->n_verify++] = e->folders[i];
		if (d > due)
			due = d;
	}
	if (e->n_verify == 0)
		return;
	for (i = 0; i < e->n_workers; i++)
		worker_close_remote(&e->workers[i]);
	sleep_until_wall_ns(due);
	if (e->n_workers > e->n_verify)
		e->n_workers = e->n_verify;
	run_phase(e, 4);
	log_debug("%s: verify phase done", e->a->name);
}

/* Give up to `want` workers (at least one, at most `connections`) a
 * state connection; returns how many have one. */
static size_t workers_open(struct engine *e, size_t want)
{
	const struct sync_account *a = e->a;
	size_t max = a->connections ? a->connections : 1, i;
	char *err = NULL;

	if (want > max)
		want = max;
	if (want == 0)
		want = 1;
	for (i = 1; i < want; i++) {
		if (e->workers[i].st != NULL)
			continue;
		if (state_open(a->state_dir, a->name, &e->workers[i].st, &err) < 0) {
			log_error("%s: %s", a->name, err);
			FREE_AND_NULL(err);
			return i;
		}
	}
	return want;
}

/* Bodies the plan moves over the wire for f: its downloads and uploads
 * less the copies among them, which the other side already holds (a
 * server copy into a file, a UID COPY for a copied file). */
static size_t folder_transfers(const struct folder *f)
{
	size_t n = f->n_dl + f->n_ul;

	return n > f->n_copies ? n - f->n_copies : 0;
}

static size_t pending_weight(const struct folder *f)
{
	size_t w = 1 + 4 * folder_transfers(f), i;

	for (i = 0; i < f->n_pairs; i++)
		if (f->pairs[i].act != ACT_NONE || f->pairs[i].mv != MV_NONE)
			w++;
	return w;
}

static int cmp_exec(const void *a, const void *b)
{
	const struct folder *x = *(struct folder *const *)a;
	const struct folder *y = *(struct folder *const *)b;

	if (x->exec_weight != y->exec_weight)
		return x->exec_weight > y->exec_weight ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* The execute phase's queue: every folder still in the run, heaviest
 * first. Returns how many have work. */
static size_t exec_queue(struct engine *e)
{
	size_t i, busy = 0;

	e->exec = xcalloc(e->n_folders + 1, sizeof(*e->exec));
	for (i = 0; i < e->n_folders; i++) {
		struct folder *f = e->folders[i];

		if (f->status != FOLDER_OK && f->reported)
			continue;
		f->exec_weight = f->status == FOLDER_OK && !f->untouched
					 ? pending_weight(f) : 0;
		if (f->exec_weight > 0)
			busy++;
		e->exec[e->n_exec++] = f;
	}
	qsort(e->exec, e->n_exec, sizeof(*e->exec), cmp_exec);
	return busy;
}

static void workers_release(struct engine *e)
{
	size_t i;

	for (i = 0; i < e->n_workers; i++) {
		struct worker *w = &e->workers[i];

		preconnect_join(w);
		if (w->r)
			w->r->ops->close(w->r);
		if (w->st)
			state_close(&w->st);
		free(w->selected);
	}
	free(e->workers);
}

int sync_account_run(const struct sync_account *a,
		     const struct remote_factory *rf,
		     const struct sync_options *o)
{
	struct engine e;
	struct worker *w0;
	int lock_fd = -1, r;
	char *err = NULL;
	size_t i, busy = 0, n_new = 0, n_msgs = 0, want;
	int64_t pre_ns, login_ns;
	char *hint = NULL;

	memset(&e, 0, sizeof(e));
	e.a = a;
	e.o = o;
	e.rf = rf;
	e.dir_new = a->dir_new;
	e.dir_flags = a->dir_flags;
	e.dir_deletions = a->dir_deletions;
	e.dir_moves = a->dir_moves;
	e.dir_folders = a->dir_folders;
	if (o->pull_only || o->push_only) {
		unsigned keep = o->pull_only ? SYNC_DIR_PULL : SYNC_DIR_PUSH;

		e.dir_new &= keep;
		e.dir_flags &= keep;
		e.dir_deletions &= keep;
		e.dir_moves &= keep;
		e.dir_folders &= keep;
	}
	pthread_mutex_init(&e.lock, NULL);
	pthread_mutex_init(&e.pre_lock, NULL);
	pthread_cond_init(&e.pre_cond, NULL);
	e.prog_start_ms = now_ms();
	e.delim = -1;

	r = o->lock_held ? 0 : state_lock(a->state_dir, a->name, &lock_fd, &err);
	if (r != 0) {
		long pid = 0;

		if (r == 1 && state_lock_is_watcher(a->state_dir, a->name, &pid))
			log_error("%s: a watcher (twinbox sync --watch, pid %ld) "
				  "is running for this account and syncs it",
				  a->name, pid);
		else if (r == 1)
			log_error("%s: another twinbox is syncing this account "
				  "(lock held on %s/%s.lock)", a->name,
				  a->state_dir, a->name);
		else
			log_error("%s: %s", a->name, err);
		free(err);
		pthread_mutex_destroy(&e.lock);
		return r == 1 ? SYNC_EXIT_LOCKED : SYNC_EXIT_FAIL;
	}

	e.n_workers = a->connections ? a->connections : 1;
	e.workers = xcalloc(e.n_workers, sizeof(*e.workers));
	for (i = 0; i < e.n_workers; i++) {
		e.workers[i].e = &e;
		e.workers[i].index = (int)i;
	}
	w0 = &e.workers[0];
	if (state_open(a->state_dir, a->name, &w0->st, &err) < 0) {
		log_error("%s: %s", a->name, err);
		free(err);
		e.exit_code = SYNC_EXIT_FAIL;
		goto out;
	}
	hint = login_hint_load(&e, w0);
	link_load(&e, w0);
	if (!o->status_only && !o->dry_run && e.prev_slow == 1)
		preconnect_local(&e, w0);
	pre_ns = mono_ns();
	if (worker_remote_first(w0, &err) < 0) {
		/* a refused login is fatal, and said once, below */
		if (!e.fatal)
			log_error("%s: %s", a->name, err);
		free(err);
		e.exit_code = sync_exit_merge(e.exit_code, SYNC_EXIT_FAIL);
		goto out;
	}
	login_ns = mono_ns() - pre_ns;
	e.login_ns = login_ns;
	if (!o->status_only)
		preconnect(&e, login_ns);
	early_status(&e, w0);
	precheck_finished(&e);
	if (first_login_check(&e, w0) < 0)
		goto out;
	if (discover(&e, w0) < 0) {
		e.exit_code = SYNC_EXIT_FAIL;
		goto out;
	}
	remember_delimiter(&e, w0);
	renames_detect(&e, w0);
	for (i = 0; i < e.n_folders; i++)
		classify(&e, e.folders[i]);
	/* finish what a killed run left open, before any folder is looked
	 * at: a recovered move changes two folders */
	for (i = 0; i < e.n_folders && !o->dry_run; i++) {
		struct folder *f = e.folders[i];

		if (f->status == FOLDER_OK && f->in_state &&
		    folder_recover(w0, f) != 0)
			e.server_touched = true;
	}
	precheck(&e, w0);

	/* as many workers as there are folders that changed on either side;
	 * each opens its connection when a folder needs the server */
	for (i = 0; i < e.n_folders; i++) {
		struct folder *f = e.folders[i];

		if (f->status == FOLDER_OK && !folder_check_untouched(&e, f)) {
			busy++;
			if (!f->in_state)
				n_new++;
		}
	}
	e.slow_link = link_slow(&e, w0);
	e.link_known = true;
	e.n_workers = workers_open(&e, conns_paying(busy, n_new, 0,
						    e.slow_link));
	if (!o->dry_run && busy >= FOLDERS_PER_LOGIN && e.slow_link)
		preconnect_busy(&e, busy);

	run_phase(&e, 1);
	log_debug("%s: plan", a->name);
	for (i = 0; i < e.n_folders; i++)
		late_plan(e.folders[i]);
	if (!e.fatal)
		moves_plan(&e, w0);
	for (i = 0; i < e.n_folders; i++)
		folder_plan(&e, e.folders[i]);
	copies_plan(&e, w0);
	for (i = 0; i < e.n_folders; i++) {
		struct folder *f = e.folders[i];

		engine_progress_total(&e, f->n_dl + f->n_ul);
	}
	busy = exec_queue(&e);
	for (i = 0; i < e.n_folders; i++)
		n_msgs += folder_transfers(e.folders[i]);
	/* never fewer than are logged in already (preconnect_busy()) */
	want = conns_paying(busy, n_new, n_msgs, e.slow_link);
	e.n_workers = workers_open(&e, want > e.n_workers ? want : e.n_workers);
	if (!o->dry_run && !e.fatal && (busy = moves_collect(&e, w0)) > 0) {
		size_t n = e.n_workers;

		/* without COPYUID a target is searched by content, which
		 * reads all of it: one worker then */
		if (w0->r != NULL &&
		    !(w0->r->ops->caps(w0->r) & IMAP_CAP_UIDPLUS))
			busy = 1;
		if (e.n_workers > busy)
			e.n_workers = busy;
		e.slow_link = link_slow(&e, w0);
		/* over a slow link, a worker's share of the sources goes in
		 * one flight (moves_out_execute_many()) */
		e.moves_share = e.slow_link
					? (busy + e.n_workers - 1) / e.n_workers
					: 1;
		run_phase(&e, 2);
		e.n_workers = n;
	}
	copies_after_moves(&e);
	run_phase(&e, 3);
	log_debug("%s: execute phase done", a->name);
	if (!o->dry_run)
		copies_execute_deferred(&e, w0);
	if (!o->dry_run)
		for (i = 0; i < e.n_folders; i++)
			folder_save_deferred_bookmark(w0, e.folders[i]);
	if (!o->dry_run && !e.fatal)
		verify_changed(&e);
	if (o->progress)
		report_progress(&e, true);

	for (i = 0; i < e.n_folders; i++) {
		struct folder *f = e.folders[i];

		if (!f->reported)
			report_folder(&e, f);
		e.exit_code = sync_exit_merge(e.exit_code, f->exit_code);
		/* forget folders gone on both sides */
		if (!o->dry_run && f->in_state && !f->on_server && !f->on_local &&
		    f->sf.id != 0 && state_folder_delete(w0->st, f->sf.id) < 0)
			log_warn("%s: %s", a->name, state_error(w0->st));
	}
	report_summary(&e);
out:
	login_hint_save(&e, w0, hint);
	free(hint);
	link_save(&e, w0);
	early_free(&e);
	if (e.prelist != NULL)
		remote_folders_free(e.prelist, e.n_prelist);
	free(e.exec);
	free(e.verify);
	if (e.fatal && e.fatal_error)
		log_error("%s: %s", a->name, e.fatal_error);
	for (i = 0; i < e.n_folders; i++)
		folder_free(e.folders[i]);
	free(e.folders);
	/* close every worker that was ever set up, also beyond n_workers */
	e.n_workers = a->connections ? a->connections : 1;
	workers_release(&e);
	free(e.fatal_error);
	state_unlock(&lock_fd);
	pthread_mutex_destroy(&e.lock);
	pthread_mutex_destroy(&e.pre_lock);
	pthread_cond_destroy(&e.pre_cond);
	return e.exit_code;
}
