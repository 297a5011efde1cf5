/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * copies-exec.c - making the copies copies-plan.c found: local links (or
 * local copies) of messages the server copied, UID COPY for files copied
 * locally, each batch bracketed by its journal entries (journal-step.h);
 * the crash-safety rules are in copies-plan.c's opening comment.
 */
#include "common.h"
#include "sync/sync-private.h"
#include "sync/copies-private.h"
#include "sync/journal-step.h"
#include "util/log.h"

/* ---- execute ---- */

void copies_after_moves(struct engine *e)
{
	size_t i, j;

	for (i = 0; i < e->n_folders; i++) {
		struct folder *f = e->folders[i];

		for (j = 0; j < f->n_copies; j++) {
			struct copy_in *c = &f->copies[j];

			if (!c->push || c->via == NULL)
				continue;
			/* where the moves phase put the source, if it did */
			c->uid = c->via->done && c->via->mv == MV_SERVER
				 ? c->via->m.uid : 0;
			c->via = NULL;
		}
	}
}

static bool pick_done(const struct copy_in *c)
{
	return c->done;
}

/* Remove the files a COPY was sent for from the upload list. */
static void drop_uploads(struct folder *f)
{
	bool *sent = xcalloc(f->n_lents + 1, sizeof(bool));
	size_t i, k = 0;

	for (i = 0; i < f->n_copies; i++)
		if (f->copies[i].push && f->copies[i].sent)
			sent[f->copies[i].lidx] = true;
	for (i = 0; i < f->n_ul; i++)
		if (!sent[f->ul_idx[i]])
			f->ul_idx[k++] = f->ul_idx[i];
	f->n_ul = k;
	free(sent);
}

/* The pull copies of one kind: made in the execute phase, or deferred. */
static bool pull_now(const struct copy_in *c, bool deferred)
{
	return !c->push && c->deferred == deferred &&
	       (!deferred || c->src_path != NULL);
}

struct pull_batch {
	struct folder *f;
	bool deferred;
};

static int64_t *pull_entry(void *ctx, size_t i, struct journal_entry *je)
{
	struct pull_batch *pb = ctx;
	struct copy_in *c = &pb->f->copies[i];

	if (!pull_now(c, pb->deferred))
		return NULL;
	je->folder_id = pb->f->sf.id;
	je->op = J_DOWNLOAD;
	je->uid = c->uid;
	return &c->jid;
}

/* Local copies of messages the server copied: link (or copy) each from
 * its source file, then record them all in one transaction. */
static int execute_pulls(struct worker *w, struct folder *f, bool deferred)
{
	struct engine *e = w->e;
	struct mdir *src = NULL;
	const char *src_path = NULL;
	bool hardlink = !e->a->copies_copy;
	size_t i, made = 0;
	char *err = NULL;
	struct pull_batch pb = { f, deferred };

	if (journal_step_write(w->st, f->n_copies, pull_entry, &pb,
			       "copy journal written") < 0)
		goto state_fail;
	for (i = 0; i < f->n_copies; i++) {
		struct copy_in *c = &f->copies[i];
		bool linked = false, missing = false;
		int r;

		if (!pull_now(c, deferred))
			continue;
		if (src == NULL || strcmp(src_path, c->src_path) != 0) {
			if (src != NULL)
				mdir_close(&src);
			src_path = c->src_path;
			if (mdir_open(c->src_path, false, &src, &missing,
				      &err) < 0) {
				src = NULL;
				FREE_AND_NULL(err);
				continue;   /* downloaded instead */
			}
		}
		r = mdir_copy_in(src, c->src_base, f->md, c->flags, hardlink,
				 &c->base, &linked, &err);
		if (r == 1 && c->alt_path != NULL) {
			/* moved meanwhile by this run: it is there now */
			struct mdir *alt = NULL;

			if (mdir_open(c->alt_path, false, &alt, &missing,
				      &err) == 0) {
				r = mdir_copy_in(alt, c->src_base, f->md, c->flags,
						 hardlink, &c->base, &linked,
						 &err);
				mdir_close(&alt);
			} else {
				FREE_AND_NULL(err);
			}
		}
		if (r < 0) {
			log_warn("%s: cannot copy '%s' from '%s': %s; "
				 "downloading it", f->name, c->src_base,
				 c->src_path, err);
			FREE_AND_NULL(err);
			continue;
		}
		if (r == 1)
			continue;   /* gone meanwhile: downloaded instead */
		c->made = true;
		made++;
		f->local_dirty = true;
		sync_crash_point("message copied locally");
	}
	if (src != NULL)
		mdir_close(&src);
	if (made > 0 && mdir_sync_dirs(f->md, &err) < 0) {
		folder_fail(f, SYNC_EXIT_FAIL, "%s", err);
		free(err);
		return -1;
	}
	/* every entry goes: a copy made is recorded with it, the others are
	 * downloaded next, under an entry of their own */
	if (state_begin(w->st) < 0)
		goto state_fail;
	for (i = 0; i < f->n_copies; i++) {
		struct copy_in *c = &f->copies[i];
		struct state_msg m = { 0 };

		if (!pull_now(c, deferred))
			continue;
		if (c->made) {
			pair_row_ident(&m, c->uid, c->base, c->flags, &c->id);
			if (state_msg_put(w->st, f->sf.id, &m) < 0)
				goto state_fail_rb;
		}
		if (state_journal_remove(w->st, c->jid) < 0)
			goto state_fail_rb;
	}
	if (state_commit(w->st) < 0)
		goto state_fail_rb;
	for (i = 0; i < f->n_copies; i++) {
		struct copy_in *c = &f->copies[i];

		if (pull_now(c, deferred) && c->made && !c->done) {
			c->done = true;
			f->stats.pulled_copies++;
			engine_progress(e, f, 1, 0);
			if (deferred)
				atomic_fetch_add(&f->moves_out_done, 1);
		}
	}
	sync_crash_point("local copies committed");
	copies_drop_dl_uids(f, pick_done);
	return 0;
state_fail_rb:
	(void)state_rollback(w->st);
state_fail:
	folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
	return -1;
}

/* The server copies of one source folder: c[0..n) of f->copies. */
struct push_group {
	struct copy_in **c;
	size_t n;
};

struct push_batch {
	struct folder *f;
	struct push_group *g;
};

static int64_t *push_entry(void *ctx, size_t i, struct journal_entry *je)
{
	struct push_batch *pb = ctx;
	struct folder *f = pb->f;
	struct copy_in *c = pb->g->c[i];

	je->folder_id = f->sf.id;
	je->op = J_APPEND;
	je->base = f->lents[c->lidx].base;
	je->aux = f->sel.uidnext;
	/* what the copy has on the server (its source's flags), not the
	 * file's: a run killed after the COPY records the pair with these,
	 * and the next comparison sends the file's flags, as push_flags()
	 * would have */
	je->flags = c->flags;
	je->size = c->id.size;
	je->msgid = c->id.msgid[0] ? c->id.msgid : NULL;
	memcpy(je->hhash, c->id.hhash, 16);
	je->have_hhash = true;
	return &c->jid;
}

static int64_t push_entry_id(void *ctx, size_t i)
{
	struct push_group *g = ctx;

	return g->c[i]->jid;
}

static int cmp_copy_uid(const void *a, const void *b)
{
	const struct copy_in *x = *(struct copy_in *const *)a;
	const struct copy_in *y = *(struct copy_in *const *)b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static int cmp_copy_src(const void *a, const void *b)
{
	const struct copy_in *x = *(struct copy_in *const *)a;
	const struct copy_in *y = *(struct copy_in *const *)b;
	int c = strcmp(x->src_name, y->src_name);

	return c ? c : cmp_copy_uid(a, b);
}

/* UIDs of f that belong to known messages (sorted), so a content search
 * never pairs a copy with them. */
static uint32_t *taken_uids(const struct folder *f, size_t *n_r)
{
	uint32_t *t = xcalloc(f->n_pairs + f->n_snew + 1, sizeof(uint32_t));
	size_t i, n = 0;

	for (i = 0; i < f->n_pairs; i++)
		if (f->pairs[i].m.uid)
			t[n++] = f->pairs[i].m.uid;
	for (i = 0; i < f->n_snew; i++)
		t[n++] = f->snew[i].uid;
	qsort(t, n, sizeof(uint32_t), cmp_u32);
	*n_r = n;
	return t;
}

struct uid_map {
	uint32_t src, dst;
};

static int cmp_uid_map(const void *a, const void *b)
{
	const struct uid_map *x = a, *y = b;

	return x->src < y->src ? -1 : x->src > y->src;
}

/* The group's UIDs (sorted first: push_learn() walks them in order) as
 * a uid set; malloc'ed. */
static char *push_set(struct push_group *g)
{
	uint32_t *uids;
	char *set;
	size_t i;

	qsort(g->c, g->n, sizeof(*g->c), cmp_copy_uid);
	uids = xcalloc(g->n, sizeof(uint32_t));
	for (i = 0; i < g->n; i++)
		uids[i] = g->c[i]->uid;
	set = imap_uidset_make(uids, g->n);
	free(uids);
	return set;
}

/* After the group's UID COPY: its messages' UIDs in f, from COPYUID (map,
 * released here), else found by content. */
static void push_learn(struct worker *w, struct folder *f,
		       struct push_group *g, struct imap_copyuid *map)
{
	uint32_t *srcs = NULL, *dsts = NULL;
	char *err = NULL;
	size_t i, k;

	for (i = 0; i < g->n; i++)
		g->c[i]->sent = true;
	sync_crash_point("server copy done");
	if (map->uidvalidity != 0 && map->src && map->dst) {
		srcs = xcalloc(g->n, sizeof(uint32_t));
		dsts = xcalloc(g->n, sizeof(uint32_t));
		if (imap_uidset_expand(map->src, srcs, g->n) != g->n ||
		    imap_uidset_expand(map->dst, dsts, g->n) != g->n)
			FREE_AND_NULL(srcs);
	}
	imap_copyuid_release(map);
	if (srcs != NULL) {
		/* g->c is sorted by UID: one sorted walk of the pairs */
		struct uid_map *um = xcalloc(g->n, sizeof(*um));

		for (k = 0; k < g->n; k++) {
			um[k].src = srcs[k];
			um[k].dst = dsts[k];
		}
		qsort(um, g->n, sizeof(*um), cmp_uid_map);
		for (i = k = 0; i < g->n; i++) {
			while (k < g->n && um[k].src < g->c[i]->uid)
				k++;
			if (k < g->n && um[k].src == g->c[i]->uid)
				g->c[i]->new_uid = um[k].dst;
		}
		free(um);
	}
	if (srcs == NULL) {
		/* no COPYUID: find them by content, as an upload would */
		struct msg_ident *ids = xcalloc(g->n, sizeof(*ids));
		uint32_t *found = xcalloc(g->n, sizeof(uint32_t));
		size_t n_taken;
		uint32_t *taken = taken_uids(f, &n_taken);

		for (i = 0; i < g->n; i++)
			ids[i] = g->c[i]->id;
		if (worker_select(w, f, &err) < 0 ||
		    remote_find_idents(w, ids, g->n, f->sel.uidnext ? f->sel.uidnext
								 : 1,
				       taken, n_taken, found, &err) < 0) {
			log_warn("%s: cannot find copied messages again: %s; "
				 "the next run does", f->name, err);
			FREE_AND_NULL(err);
		}
		for (i = 0; i < g->n; i++)
			g->c[i]->new_uid = found[i];
		free(ids);
		free(found);
		free(taken);
	}
	free(srcs);
	free(dsts);
}

/* UID COPY the group's source UIDs into f, after a SELECT of the source
 * of its own, and learn the new UIDs. 0 sent, 1 refused (upload
 * instead), -1 error (the journal stays for the next run). */
static int push_transfer(struct worker *w, struct folder *f,
			 struct push_group *g)
{
	struct imap_copyuid map = { 0 };
	struct imap_selected sel;
	char *set = push_set(g), *err = NULL;
	int r;

	r = worker_select_name(w, g->c[0]->src_name, g->c[0]->src_uidvalidity,
			       &sel, &err);
	if (r == 0)
		r = w->r->ops->copy(w->r, set, f->name, &map, &err);
	free(set);
	if (r < 0) {
		bool refused = w->r != NULL &&
			       w->r->ops->failure(w->r) == IMAP_FAIL_NO;

		log_warn("%s: cannot copy from '%s' on the server: %s%s",
			 f->name, g->c[0]->src_name, err,
			 refused ? "; uploading instead" : "");
		free(err);
		imap_copyuid_release(&map);
		return refused ? 1 : -1;
	}
	push_learn(w, f, g, &map);
	return 0;
}

/* Record the pairs the group made; one whose UID is not known keeps its
 * journal entry for the next run's recovery. */
static int push_record(struct worker *w, struct folder *f,
		       struct push_group *g)
{
	size_t i;

	if (state_begin(w->st) < 0)
		return -1;
	for (i = 0; i < g->n; i++) {
		struct copy_in *c = g->c[i];
		struct state_msg m = { 0 };

		if (c->new_uid == 0) {
			f->incomplete = true;
			continue;
		}
		pair_row_ident(&m, c->new_uid, f->lents[c->lidx].base, c->flags,
			       &c->id);
		if (state_msg_put(w->st, f->sf.id, &m) < 0 ||
		    state_journal_remove(w->st, c->jid) < 0) {
			(void)state_rollback(w->st);
			return -1;
		}
	}
	if (state_commit(w->st) < 0) {
		(void)state_rollback(w->st);
		return -1;
	}
	for (i = 0; i < g->n; i++) {
		if (g->c[i]->new_uid == 0)
			continue;
		g->c[i]->done = true;
		f->stats.pushed_copies++;
		engine_progress(w->e, f, 1, 0);
	}
	sync_crash_point("server copies committed");
	return 0;
}

/* A copied file whose flags are not its source's: the copy on the server
 * gets the file's (f selected). A failure leaves it to the next run's
 * comparison, which sees the file's flags changed against the pair. */
static void push_flags(struct worker *w, struct folder *f)
{
	size_t i;
	char *err = NULL;

	for (i = 0; i < f->n_copies; i++) {
		struct copy_in *c = &f->copies[i];
		unsigned lf = c->push ? f->lents[c->lidx].flags : 0;
		struct imap_store_op ops[2];
		char set[16];
		size_t n = 0;

		if (!c->push || !c->done || c->new_uid == 0 || lf == c->flags)
			continue;
		snprintf(set, sizeof(set), "%u", c->new_uid);
		if (lf & ~c->flags)
			ops[n++] = (struct imap_store_op){ set, true,
							   lf & ~c->flags, 0 };
		if (c->flags & ~lf)
			ops[n++] = (struct imap_store_op){ set, false,
							   c->flags & ~lf, 0 };
		if (w->r->ops->store(w->r, ops, n, &err) < 0) {
			log_warn("%s: cannot store the flags of a copy: %s",
				 f->name, err);
			free(err);
			/* it may be the SELECT sent ahead that failed */
			worker_forget_selected(w);
			return;
		}
		if (state_msg_set_flags(w->st, f->sf.id, c->new_uid, lf) < 0) {
			log_warn("%s: %s", f->name, state_error(w->st));
			return;
		}
		c->flags = lf;
	}
}

static int64_t *flight_entry(void *ctx, size_t i, struct journal_entry *je)
{
	struct push_batch *pb = ctx;
	struct push_group *g = pb->g;

	while (i >= g->n) {   /* the groups of the flight, one after another */
		i -= g->n;
		g++;
	}
	return push_entry(&(struct push_batch){ pb->f, g }, i, je);
}

/*
 * The groups whose source's UIDVALIDITY this run has read, in one flight
 * (remote_ops.copy_from_many): all journaled first, in one transaction,
 * then SELECT and UID COPY for each source without waiting in between.
 * A group the server refused the COPY of is uploaded instead; one whose
 * SELECT failed (or found another UIDVALIDITY) keeps its journal for the
 * next run's recovery and fails the folder, as a failed COPY does; the
 * others are recorded all the same. 0, or -1 with the folder failed.
 */
static int push_flight(struct worker *w, struct folder *f,
		       struct push_group *gs, size_t ng)
{
	struct remote_copy_src *srcs = xcalloc(ng + 1, sizeof(*srcs));
	struct imap_copyuid *maps = xcalloc(ng + 1, sizeof(*maps));
	enum imap_copy_src_result *res = xcalloc(ng + 1, sizeof(*res));
	char **sets = xcalloc(ng + 1, sizeof(*sets));
	struct push_batch pb = { f, gs };
	size_t i, total = 0;
	bool failed = false;
	char *err = NULL;
	int r, ret = 0;

	for (i = 0; i < ng; i++) {
		sets[i] = push_set(&gs[i]);
		srcs[i].name = gs[i].c[0]->src_name;
		srcs[i].uidvalidity = gs[i].c[0]->src_uidvalidity;
		srcs[i].uidset = sets[i];
		total += gs[i].n;
	}
	if (journal_step_write(w->st, total, flight_entry, &pb,
			       "copy journal written") < 0) {
		folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
		ret = -1;
		goto out;
	}
	r = worker_remote(w, &err);
	if (r == 0)
		r = w->r->ops->copy_from_many(w->r, srcs, ng, f->name, maps,
					      res, &err);
	/* the last source, or none: the next step selects what it needs */
	worker_forget_selected(w);
	if (r < 0) {
		/* nothing known of any COPY: every journal entry stays */
		log_warn("%s: cannot copy on the server: %s", f->name,
			 err ? err : "connection failed");
		folder_fail(f, SYNC_EXIT_FAIL,
			    "%s: server copy failed; the next run finishes it",
			    f->name);
		ret = -1;
		goto out;
	}
	if (err != NULL)
		log_debug("%s: server copies: %s", f->name, err);
	for (i = 0; i < ng && ret == 0; i++) {
		struct push_group *g = &gs[i];

		switch (res[i]) {
		case IMAP_COPY_SRC_OK:
			push_learn(w, f, g, &maps[i]);
			if (push_record(w, f, g) < 0) {
				folder_fail(f, SYNC_EXIT_FAIL, "%s",
					    state_error(w->st));
				ret = -1;
			}
			break;
		case IMAP_COPY_SRC_REFUSED:
			log_warn("%s: cannot copy from '%s' on the server: "
				 "refused; uploading instead", f->name,
				 g->c[0]->src_name);
			if (journal_step_remove(w->st, g->n, push_entry_id,
						g) < 0) {
				folder_fail(f, SYNC_EXIT_FAIL, "%s",
					    state_error(w->st));
				ret = -1;
			}
			break;
		case IMAP_COPY_SRC_UNSELECTED:
			/* what its COPY did is not known: the journal
			 * stays, the next run's recovery looks by content */
			log_warn("%s: cannot copy from '%s' on the server: its "
				 "SELECT failed or found another UIDVALIDITY",
				 f->name, g->c[0]->src_name);
			failed = true;
			break;
		}
	}
	if (ret == 0 && failed) {
		folder_fail(f, SYNC_EXIT_FAIL,
			    "%s: server copy failed; the next run finishes it",
			    f->name);
		ret = -1;
	}
out:
	for (i = 0; i < ng; i++) {
		imap_copyuid_release(&maps[i]);
		free(sets[i]);
	}
	free(err);
	free(srcs);
	free(maps);
	free(res);
	free(sets);
	return ret;
}

/* Back to the target after the copies, for the steps that follow: in the
 * flight of the next command when the gather selected it (nothing here
 * then needs the SELECT's answer), else a SELECT of its own. */
static int push_reselect(struct worker *w, struct folder *f, char **error_r)
{
	uint32_t uidvalidity = folder_fresh_uidvalidity(f);

	if (f->selected && uidvalidity != 0)
		return worker_select_ahead(w, f->name, uidvalidity, error_r) < 0
			       ? -1 : 0;
	return worker_select(w, f, error_r);
}

/*
 * Copies on the server, grouped by source folder. The groups whose
 * source's UIDVALIDITY this run has read go in one flight (a SELECT and a
 * UID COPY each, push_flight()); the others, or all where the remote
 * has no such flight, one after another (push_transfer()). The pair
 * records the flags the copy has on the server (its source's) until
 * push_flags() gave it the file's.
 */
static int execute_pushes(struct worker *w, struct folder *f)
{
	struct copy_in **order;
	struct push_group *gs, *fl;
	size_t i, j, n = 0, ng = 0, nf = 0;
	bool any = false, flight;
	char *err = NULL;
	int ret = 0;

	order = xcalloc(f->n_copies + 1, sizeof(*order));
	for (i = 0; i < f->n_copies; i++)
		if (f->copies[i].push && f->copies[i].uid != 0)
			order[n++] = &f->copies[i];   /* 0: uploaded instead */
	qsort(order, n, sizeof(*order), cmp_copy_src);
	gs = xcalloc(n + 1, sizeof(*gs));
	fl = xcalloc(n + 1, sizeof(*fl));
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n; j++)
			if (strcmp(order[j]->src_name, order[i]->src_name) != 0)
				break;
		gs[ng].c = &order[i];
		gs[ng++].n = j - i;
	}
	flight = w->r != NULL && w->r->ops->copy_from_many != NULL;
	if (flight) {
		/* the flight's groups leave the sequential list */
		size_t k = 0;

		for (i = 0; i < ng; i++) {
			if (gs[i].c[0]->src_fresh)
				fl[nf++] = gs[i];
			else
				gs[k++] = gs[i];
		}
		ng = k;
	}
	if (nf > 0 && !w->e->fatal) {
		any = true;
		ret = push_flight(w, f, fl, nf);
	}
	for (i = 0; i < ng && ret == 0 && !w->e->fatal; i++) {
		struct push_group *g = &gs[i];
		struct push_batch pb = { f, g };
		int r;

		if (journal_step_write(w->st, g->n, push_entry, &pb,
				       "copy journal written") < 0) {
			folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
			ret = -1;
			break;
		}
		any = true;
		r = push_transfer(w, f, g);
		if (r == 1) {
			if (journal_step_remove(w->st, g->n, push_entry_id,
						g) < 0) {
				folder_fail(f, SYNC_EXIT_FAIL, "%s",
					    state_error(w->st));
				ret = -1;
			}
			continue;
		}
		if (r < 0) {
			folder_fail(f, SYNC_EXIT_FAIL,
				    "%s: server copy failed; the next run "
				    "finishes it", f->name);
			ret = -1;
			break;
		}
		if (push_record(w, f, g) < 0) {
			folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
			ret = -1;
		}
	}
	free(gs);
	free(fl);
	free(order);
	drop_uploads(f);
	/* back to the target for the steps that follow */
	if (ret == 0 && any && push_reselect(w, f, &err) < 0) {
		folder_fail(f, SYNC_EXIT_FAIL, "%s: %s", f->name, err);
		free(err);
		ret = -1;
	}
	if (ret == 0 && any)
		push_flags(w, f);
	return ret;
}

int copies_execute(struct worker *w, struct folder *f)
{
	size_t i;
	bool pulls = false, pushes = false;

	for (i = 0; i < f->n_copies; i++) {
		if (f->copies[i].push)
			pushes = true;
		else if (!f->copies[i].deferred)
			pulls = true;
	}
	if (pulls && f->md != NULL && execute_pulls(w, f, false) < 0)
		return -1;
	if (pushes && execute_pushes(w, f) < 0)
		return -1;
	return 0;
}

bool copies_pending(const struct folder *f)
{
	size_t i;

	for (i = 0; i < f->n_copies; i++)
		if (f->copies[i].deferred && !f->copies[i].tried)
			return true;
	return false;
}

/*
 * After the execute phase (main thread): the deferred copies, each made
 * from the file its first copy was downloaded to. One whose source is not
 * there (its download failed) is left for the next run, which compares
 * the folder in full: its bookmark was held back for them.
 */
void copies_execute_deferred(struct engine *e, struct worker *w0)
{
	struct copies_ix ix;
	size_t i, j;

	copies_note_identities(e, w0);   /* of this run's downloads */
	copies_ix_init(&ix, e);
	for (i = 0; i < e->n_folders; i++) {
		struct folder *f = e->folders[i];
		bool any = false;

		for (j = 0; j < f->n_copies; j++) {
			struct copy_in *c = &f->copies[j];
			struct pull_match pm = { &ix, NULL, NULL, 0, "" };

			if (!c->deferred)
				continue;
			c->tried = true;
			if (f->status != FOLDER_OK || f->md == NULL || e->fatal)
				continue;
			if (copies_find_source(w0->st, &c->id, &pm) <= 0)
				continue;
			c->src_path = xstrdup(pm.src->path);
			c->src_base = pm.base;
			any = true;
		}
		if (any)
			(void)execute_pulls(w0, f, true);
		if (f->status == FOLDER_OK &&
		    atomic_load(&f->moves_out_done) != f->moves_out)
			log_info("%s: some copies are left for the next run",
				 f->name);
	}
	copies_ix_release(&ix);
}
