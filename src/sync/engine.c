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

void sync_crash_point(const char *what)
{
	long n;

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

int worker_remote(struct worker *w, char **error_r)
{
	struct engine *e = w->e;
	enum imap_failure fail = IMAP_FAIL_NONE;
	char *err = NULL;

	if (w->r != NULL && !w->r->ops->broken(w->r))
		return 0;
	if (w->r != NULL) {
		w->r->ops->close(w->r);
		w->r = NULL;
		FREE_AND_NULL(w->selected);
	}
	if (e->fatal) {
		*error_r = xstrdup(e->fatal_error ? e->fatal_error
					     : "account failed");
		return -1;
	}
	if (e->rf->open(e->rf->ctx, &w->r, &fail, &err) < 0) {
		int code = (fail == IMAP_FAIL_AUTH || fail == IMAP_FAIL_TLS)
				   ? SYNC_EXIT_AUTH : SYNC_EXIT_FAIL;

		if (code == SYNC_EXIT_AUTH)
			engine_fatal(e, code, err);
		*error_r = err;
		w->r = NULL;
		return -1;
	}
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
	uint32_t want;

	if (worker_remote(w, error_r) < 0)
		return -1;
	if (w->selected != NULL && strcmp(w->selected, f->name) == 0)
		return 0;
	FREE_AND_NULL(w->selected);
	if (w->r->ops->select(w->r, f->name, NULL, noop_fetch, noop_vanished,
			      NULL, &sel, error_r) < 0)
		return -1;
	w->selected = xstrdup(f->name);
	want = f->selected ? f->sel.uidvalidity : f->sf.uidvalidity;
	if (want != 0 && sel.uidvalidity != want) {
		*error_r = xasprintf("UIDVALIDITY of '%s' changed during the run; "
				     "it is handled by the next run", f->name);
		return -1;
	}
	if (!f->selected) {
		/* the STATUS precheck skipped the SELECT: keep the stored
		 * bookmark, only learn where new UIDs start */
		f->sel.uidnext = sel.uidnext;
		f->sel.uidvalidity = sel.uidvalidity;
	}
	return 0;
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

	if (w0->r->ops->list(w0->r, &rf, &n_rf, &err) < 0) {
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

static void precheck(struct engine *e, struct worker *w0)
{
	const char **names;
	struct imap_status_data *st;
	bool *ok;
	struct folder **fs;
	size_t n = 0, i;
	char *err = NULL;

	if (e->o->full || !w0->r->ops->condstore(w0->r))
		return;
	names = xcalloc(e->n_folders + 1, sizeof(*names));
	fs = xcalloc(e->n_folders + 1, sizeof(*fs));
	for (i = 0; i < e->n_folders; i++) {
		struct folder *f = e->folders[i];

		if (f->status != FOLDER_OK || !f->in_state || !f->on_server ||
		    f->sf.uidvalidity == 0 || f->sf.highestmodseq == 0 ||
		    f->local_missing)
			continue;
		fs[n] = f;
		names[n++] = f->name;
	}
	if (n > 0) {
		st = xcalloc(n, sizeof(*st));
		ok = xcalloc(n, sizeof(*ok));
		if (w0->r->ops->status(w0->r, names, n, st, ok, &err) == 0) {
			for (i = 0; i < n; i++) {
				struct folder *f = fs[i];

				if (!ok[i])
					continue;
				f->have_status = true;
				f->stat.messages = st[i].messages;
				f->stat.uidnext = st[i].uidnext;
				f->stat.uidvalidity = st[i].uidvalidity;
				f->stat.highestmodseq = st[i].highestmodseq;
				f->stat.has_highestmodseq = st[i].has_highestmodseq;
				f->server_unchanged =
					st[i].has_uidvalidity && st[i].has_uidnext &&
					st[i].has_messages && st[i].has_highestmodseq &&
					st[i].uidvalidity == f->sf.uidvalidity &&
					st[i].uidnext == f->sf.uidnext &&
					st[i].messages == f->sf.server_count &&
					st[i].highestmodseq == f->sf.highestmodseq;
			}
		} else {
			log_debug("%s: STATUS precheck failed: %s", e->a->name, err);
			free(err);
		}
		free(st);
		free(ok);
	}
	free(names);
	free(fs);
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

static void gather_loop(struct worker *w)
{
	struct engine *e = w->e;
	struct folder *f;

	while ((f = next_folder(e, w)) != NULL) {
		f->worker = w->index;
		ALLOC_GROW(w->mine, w->n_mine + 1, w->a_mine);
		w->mine[w->n_mine++] = f;
		if (folder_gather(w, f) < 0 && w->r && w->r->ops->broken(w->r)) {
			w->r->ops->close(w->r);
			w->r = NULL;
			FREE_AND_NULL(w->selected);
		}
	}
}

static void execute_loop(struct worker *w)
{
	size_t i;

	/* newest first: the last folder gathered is still selected */
	for (i = w->n_mine; i-- > 0;) {
		struct folder *f = w->mine[i];

		if (w->e->fatal && f->status == FOLDER_OK)
			folder_fail(f, SYNC_EXIT_FAIL, "%s: %s", f->name,
				    w->e->fatal_error);
		if (f->status == FOLDER_OK && folder_execute(w, f) < 0 &&
		    w->r && w->r->ops->broken(w->r)) {
			w->r->ops->close(w->r);
			w->r = NULL;
			FREE_AND_NULL(w->selected);
		}
		pthread_mutex_lock(&w->e->lock);
		report_folder(w->e, f);
		pthread_mutex_unlock(&w->e->lock);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct engine *e = w->e;

	if (e->phase == 1)
		gather_loop(w);
	else
		execute_loop(w);
	return NULL;
}

static void run_phase(struct engine *e, int phase)
{
	size_t i;

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

static void workers_release(struct engine *e)
{
	size_t i;

	for (i = 0; i < e->n_workers; i++) {
		struct worker *w = &e->workers[i];

		if (w->r)
			w->r->ops->close(w->r);
		if (w->st)
			state_close(&w->st);
		free(w->selected);
		free(w->mine);
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
	size_t i, busy = 0;

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
	e.prog_start_ms = now_ms();

	r = state_lock(a->state_dir, a->name, &lock_fd, &err);
	if (r != 0) {
		if (r == 1)
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
	if (worker_remote(w0, &err) < 0) {
		log_error("%s: %s", a->name, err);
		free(err);
		e.exit_code = sync_exit_merge(e.exit_code, SYNC_EXIT_FAIL);
		goto out;
	}
	if (discover(&e, w0) < 0) {
		e.exit_code = SYNC_EXIT_FAIL;
		goto out;
	}
	renames_detect(&e, w0);
	for (i = 0; i < e.n_folders; i++)
		classify(&e, e.folders[i]);
	/* finish what a killed run left open, before any folder is looked
	 * at: a recovered move changes two folders */
	for (i = 0; i < e.n_folders && !o->dry_run; i++) {
		struct folder *f = e.folders[i];

		if (f->status == FOLDER_OK && f->in_state)
			(void)folder_recover(w0, f);
	}
	precheck(&e, w0);

	/* as many connections as there are folders to talk to the server about */
	for (i = 0; i < e.n_folders; i++)
		if (e.folders[i]->status == FOLDER_OK &&
		    !e.folders[i]->server_unchanged)
			busy++;
	if (e.n_workers > busy)
		e.n_workers = busy ? busy : 1;
	for (i = 1; i < e.n_workers; i++) {
		if (state_open(a->state_dir, a->name, &e.workers[i].st, &err) < 0) {
			log_error("%s: %s", a->name, err);
			FREE_AND_NULL(err);
			e.n_workers = i;
			break;
		}
	}

	run_phase(&e, 1);
	for (i = 0; i < e.n_folders; i++)
		late_plan(e.folders[i]);
	if (!e.fatal)
		moves_plan(&e, w0);
	for (i = 0; i < e.n_folders; i++)
		folder_plan(&e, e.folders[i]);
	for (i = 0; i < e.n_folders; i++) {
		struct folder *f = e.folders[i];

		engine_progress_total(&e, f->n_dl + f->n_ul);
	}
	run_phase(&e, 2);
	if (!o->dry_run)
		for (i = 0; i < e.n_folders; i++)
			folder_save_deferred_bookmark(w0, e.folders[i]);
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
	return e.exit_code;
}
