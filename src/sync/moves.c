/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * moves.c - a message that left one folder and showed up in another is a
 * move, replayed as a move: UID MOVE on the server for a local move, a
 * rename(2) for a server move. No body crosses the wire.
 *
 * Matching runs once all folders are gathered, so it does not depend on
 * the order folders are synced in or on which connection saw what:
 *   local move:  a pair whose file is gone from folder A (still on the
 *                server) and an unknown file in folder B with the same
 *                unique name, or else the same identity (size, header
 *                hash, Message-ID);
 *   server move: a pair whose UID vanished from A (file still here) and a
 *                new UID in B with the same identity, fetched with
 *                BODY.PEEK[HEADER], never the body.
 * The matched pair is taken out of A and added to B marked with where it
 * comes from; B's execute replays the move first, then treats the pair as
 * any other, so flag changes made with the move merge as usual.
 *
 * Crash safety: a J_MOVE_SERVER / J_MOVE_LOCAL intent is journalled before
 * the move and removed in the transaction that moves the pair; the next
 * run's recovery finds the message again (by content on the server, by
 * name locally) and completes the state.
 */
#include "common.h"
#include "sync/sync-private.h"
#include "util/log.h"

struct gone {
	struct folder *f;
	size_t pi;
	bool used;
};

struct fresh_local {
	struct folder *f;
	size_t li;
	struct msg_ident id;
	int have_id;            /* 0 not computed, 1 ok, -1 unreadable */
	bool used;
};

static struct pair *pair_add(struct folder *b)
{
	struct pair *q;

	if (b->pairs == NULL) {
		b->pairs = xcalloc(1, sizeof(*b->pairs));
		b->a_pairs = 1;
	}
	ALLOC_GROW(b->pairs, b->n_pairs + 1, b->a_pairs);
	q = &b->pairs[b->n_pairs++];
	memset(q, 0, sizeof(*q));
	return q;
}

static void copy_msg(struct state_msg *dst, const struct state_msg *src)
{
	*dst = *src;
	dst->base = src->base ? xstrdup(src->base) : NULL;
	dst->msgid = src->msgid ? xstrdup(src->msgid) : NULL;
	dst->emailid = src->emailid ? xstrdup(src->emailid) : NULL;
}

/* The file was renamed within its folder (same content, new name): the
 * pair follows the new name; nothing to do on the server. */
static void make_rebase(struct folder *a, size_t pi, size_t lj)
{
	struct pair *p = &a->pairs[pi];

	p->src_base = p->m.base;
	p->m.base = xstrdup(a->lents[lj].base);
	p->mv = MV_REBASE;
	p->lidx = (long)lj;
	p->lflags = a->lents[lj].flags;
	a->lent_known[lj] = true;
}

/* The server gave the message a new UID in the same folder (moved away
 * and back, or re-delivered by a move): the pair takes the new UID. */
static void make_renumber(struct folder *a, size_t pi, uint32_t uid,
			  unsigned sflags)
{
	struct pair *p = &a->pairs[pi];

	p->src_uid = p->m.uid;
	p->m.uid = uid;
	p->mv = MV_RENUMBER;
	p->sv = SRV_FLAGS;
	p->sflags = sflags;
}

static void make_local_move(struct folder *a, size_t pi, struct folder *b,
			    size_t lj)
{
	struct pair *q;

	if (a == b) {
		make_rebase(a, pi, lj);
		return;
	}
	q = pair_add(b);
	struct pair *p = &a->pairs[pi];   /* after pair_add: a != b */

	copy_msg(&q->m, &p->m);
	free(q->m.base);
	q->m.base = xstrdup(b->lents[lj].base);
	q->m.uid = 0;
	q->mv = MV_SERVER;
	q->src = a;
	q->src_uid = p->m.uid;
	q->lidx = (long)lj;
	q->lflags = b->lents[lj].flags;
	q->sv = SRV_FLAGS;
	q->sflags = p->sv == SRV_FLAGS ? p->sflags : p->m.flags;
	b->lent_known[lj] = true;
	p->act = ACT_MOVED_AWAY;
	a->moves_out++;
	log_debug("%s -> %s: local move of '%s' (UID %u)", a->name, b->name,
		  q->m.base, q->src_uid);
}

static void make_server_move(struct folder *a, size_t pi, struct folder *b,
			     uint32_t uid, unsigned sflags)
{
	struct pair *q;

	if (a == b) {
		make_renumber(a, pi, uid, sflags);
		return;
	}
	q = pair_add(b);
	struct pair *p = &a->pairs[pi];

	copy_msg(&q->m, &p->m);
	q->m.uid = uid;
	q->mv = MV_LOCAL;
	q->src = a;
	q->src_uid = p->m.uid;
	q->src_base = xstrdup(p->m.base);
	q->lidx = LOCAL_ELSEWHERE;
	q->lflags = p->lidx >= 0 ? p->lflags : p->m.flags;
	q->sv = SRV_FLAGS;
	q->sflags = sflags;
	p->act = ACT_MOVED_AWAY;
	a->moves_out++;
	log_debug("%s -> %s: server move of UID %u to UID %u", a->name,
		  b->name, p->m.uid, uid);
}

static int cmp_gone_base(const void *x, const void *y)
{
	const struct gone *a = x, *b = y;

	return strcmp(a->f->pairs[a->pi].m.base, b->f->pairs[b->pi].m.base);
}

static bool ident_of_pair(const struct pair *p, struct msg_ident *id)
{
	if (!p->m.have_hhash)
		return false;
	memset(id, 0, sizeof(*id));
	id->size = p->m.size;
	snprintf(id->msgid, sizeof(id->msgid), "%s", p->m.msgid ? p->m.msgid : "");
	memcpy(id->hhash, p->m.hhash, sizeof(id->hhash));
	return true;
}

/* Pairs of every folder that may be one half of a move. */
static struct gone *collect_gone(struct engine *e,
				 bool (*candidate)(const struct pair *p),
				 size_t *n_r)
{
	struct gone *g = NULL;
	size_t n = 0, a = 0, i, j;

	for (i = 0; i < e->n_folders; i++) {
		struct folder *f = e->folders[i];

		if (f->status != FOLDER_OK)
			continue;
		for (j = 0; j < f->n_pairs; j++) {
			const struct pair *p = &f->pairs[j];

			if (p->mv != MV_NONE || p->act == ACT_MOVED_AWAY ||
			    !candidate(p))
				continue;
			ALLOC_GROW(g, n + 1, a);
			g[n].f = f;
			g[n].pi = j;
			g[n].used = false;
			n++;
		}
	}
	*n_r = n;
	return g;
}

/* file gone here, message still on the server: moved locally? */
static bool gone_locally(const struct pair *p)
{
	return p->lidx == -1 && p->sv != SRV_GONE;
}

/* UID gone from the server, file still here: moved on the server? */
static bool gone_on_server(const struct pair *p)
{
	return p->sv == SRV_GONE && p->lidx != -1 &&
	       p->lidx != LOCAL_ELSEWHERE && p->m.have_hhash;
}

static void plan_local_moves(struct engine *e)
{
	struct gone *g;
	struct fresh_local *nl = NULL;
	size_t n_g = 0, n_nl = 0, a_nl = 0, i, j, left;

	g = collect_gone(e, gone_locally, &n_g);
	if (n_g == 0)
		return;
	for (i = 0; i < e->n_folders; i++) {
		struct folder *f = e->folders[i];

		if (f->status != FOLDER_OK || f->lents == NULL || f->md == NULL)
			continue;
		for (j = 0; j < f->n_lents; j++) {
			if (f->lent_known[j])
				continue;
			ALLOC_GROW(nl, n_nl + 1, a_nl);
			memset(&nl[n_nl], 0, sizeof(nl[n_nl]));
			nl[n_nl].f = f;
			nl[n_nl].li = j;
			n_nl++;
		}
	}
	if (n_nl == 0) {
		free(g);
		return;
	}
	/* same unique name first */
	qsort(g, n_g, sizeof(*g), cmp_gone_base);
	left = n_g;
	for (i = 0; i < n_nl; i++) {
		size_t lo = 0, hi = n_g;
		const char *base = nl[i].f->lents[nl[i].li].base;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			int c = strcmp(g[mid].f->pairs[g[mid].pi].m.base, base);

			if (c < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < n_g && strcmp(g[lo].f->pairs[g[lo].pi].m.base,
					  base) == 0; lo++) {
			if (g[lo].used)
				continue;
			g[lo].used = nl[i].used = true;
			make_local_move(g[lo].f, g[lo].pi, nl[i].f, nl[i].li);
			left--;
			break;
		}
	}
	/* then the same content under another name */
	for (i = 0; i < n_g && left > 0; i++) {
		struct msg_ident want;

		if (g[i].used || !ident_of_pair(&g[i].f->pairs[g[i].pi], &want))
			continue;
		for (j = 0; j < n_nl; j++) {
			struct fresh_local *c = &nl[j];
			char *err = NULL;

			if (c->used)
				continue;
			if (c->have_id == 0) {
				c->have_id = mdir_msg_ident(c->f->md,
							    c->f->lents[c->li].base,
							    &c->id, &err) == 0 ? 1 : -1;
				free(err);
			}
			if (c->have_id != 1 || !ident_equal(&c->id, &want))
				continue;
			g[i].used = c->used = true;
			make_local_move(g[i].f, g[i].pi, c->f, c->li);
			left--;
			break;
		}
	}
	free(g);
	free(nl);
}

static void plan_server_moves(struct engine *e, struct worker *w0)
{
	struct gone *g;
	size_t n_g = 0, i, j, k, left;

	g = collect_gone(e, gone_on_server, &n_g);
	left = n_g;
	for (i = 0; i < e->n_folders && left > 0; i++) {
		struct folder *b = e->folders[i];
		struct fetched_idents l = { 0 };
		uint32_t *uids;
		size_t n = 0;
		char *set, *err = NULL;
		struct imap_selected sel;

		if (b->status != FOLDER_OK || b->md == NULL || b->n_snew == 0 ||
		    !b->selected)
			continue;
		uids = xcalloc(b->n_snew, sizeof(uint32_t));
		for (j = 0; j < b->n_snew; j++)
			if (!b->snew[j].claimed)
				uids[n++] = b->snew[j].uid;
		if (n == 0) {
			free(uids);
			continue;
		}
		/* identities fetched while gathering, if there are */
		for (j = 0; j < b->n_snew; j++)
			if (!b->snew[j].claimed && !b->snew[j].have_id)
				break;
		if (j == b->n_snew) {
			free(uids);
			for (j = 0; j < b->n_snew; j++) {
				if (b->snew[j].claimed)
					continue;
				ALLOC_GROW(l.v, l.n + 1, l.a);
				memset(&l.v[l.n], 0, sizeof(l.v[l.n]));
				l.v[l.n].uid = b->snew[j].uid;
				l.v[l.n].flags = b->snew[j].flags;
				l.v[l.n].id = *b->snew[j].id;
				l.n++;
			}
			goto match;
		}
		set = imap_uidset_make(uids, n);
		free(uids);
		if (worker_select_name(w0, b->name, b->sel.uidvalidity, &sel,
				       &err) < 0 ||
		    w0->r->ops->fetch_idents(w0->r, set, collect_ident, &l,
					     &err) < 0) {
			log_warn("%s: cannot look for moved messages: %s",
				 b->name, err);
			free(err);
			free(set);
			free(l.v);
			continue;
		}
		free(set);
match:
		for (j = 0; j < n_g; j++) {
			struct msg_ident want;

			if (g[j].used ||
			    !ident_of_pair(&g[j].f->pairs[g[j].pi], &want))
				continue;
			for (k = 0; k < l.n; k++) {
				if (l.v[k].used || !ident_equal(&l.v[k].id, &want))
					continue;
				l.v[k].used = g[j].used = true;
				make_server_move(g[j].f, g[j].pi, b, l.v[k].uid,
						 l.v[k].flags);
				for (size_t s = 0; s < b->n_snew; s++)
					if (b->snew[s].uid == l.v[k].uid)
						b->snew[s].claimed = true;
				left--;
				break;
			}
		}
		free(l.v);
	}
	free(g);
}

void moves_plan(struct engine *e, struct worker *w0)
{
	if (e->dir_moves & SYNC_DIR_PUSH)
		plan_local_moves(e);
	if ((e->dir_moves & SYNC_DIR_PULL) && w0->r != NULL)
		plan_server_moves(e, w0);
}

/* ---- replay ---- */

/* The journal entry of a move into f (q is one of f's pairs). */
static void move_entry(const struct folder *f, const struct pair *q,
		       struct journal_entry *je)
{
	memset(je, 0, sizeof(*je));
	if (q->mv == MV_LOCAL) {
		je->folder_id = f->sf.id;
		je->op = J_MOVE_LOCAL;
		je->uid = q->m.uid;
		je->base = q->src_base;
		je->aux = q->src->sf.id;
		je->aux_uid = q->src_uid;
	} else {
		je->folder_id = q->src->sf.id;
		je->op = J_MOVE_SERVER;
		je->uid = q->src_uid;
		je->base = q->m.base;
		je->aux = f->sf.id;
		/* where the moved copies start: a lower bound is enough for
		 * the recovery's search */
		je->aux_uid = f->sel.uidnext    ? f->sel.uidnext
			      : f->have_status ? f->stat.uidnext
					       : f->sf.uidnext;
	}
	je->flags = q->m.flags;
	je->size = q->m.size;
	je->msgid = q->m.msgid;
	memcpy(je->hhash, q->m.hhash, 16);
	je->have_hhash = q->m.have_hhash;
}

/* Journal these moves into f in one transaction. */
static int journal_moves(struct worker *w, const struct folder *f,
			 struct pair *const *qs, size_t n)
{
	size_t i;

	if (state_begin(w->st) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		struct journal_entry je;

		move_entry(f, qs[i], &je);
		if (state_journal_add(w->st, &je) < 0) {
			(void)state_rollback(w->st);
			return -1;
		}
		qs[i]->jid = je.id;   /* removed with the pair's move */
	}
	if (state_commit(w->st) < 0) {
		(void)state_rollback(w->st);
		return -1;
	}
	sync_crash_point("move journal written");
	return 0;
}

static int replay_local(struct worker *w, struct folder *f)
{
	size_t i, moved = 0;
	char *err = NULL;
	struct mdir *src = NULL;
	struct folder *src_of = NULL;

	{
		struct pair **qs = xcalloc(f->n_pairs + 1, sizeof(*qs));
		size_t n = 0;
		int r;

		for (i = 0; i < f->n_pairs; i++)
			if (f->pairs[i].mv == MV_LOCAL)
				qs[n++] = &f->pairs[i];
		r = journal_moves(w, f, qs, n);
		free(qs);
		if (r < 0)
			goto state_fail;
	}
	for (i = 0; i < f->n_pairs; i++) {
		struct pair *q = &f->pairs[i];
		bool missing = false;
		int r;

		if (q->mv != MV_LOCAL)
			continue;
		/* one handle per source folder, kept for its next files */
		if (src != NULL && src_of != q->src)
			mdir_close(&src);
		if (src == NULL &&
		    mdir_open(q->src->path, false, &src, &missing, &err) < 0) {
			src = NULL;
			r = missing ? 1 : -1;
		} else {
			src_of = q->src;
			mdir_hint(src, q->src_base, q->lflags);
			r = mdir_move(src, f->md, q->src_base, &err);
		}
		if (r < 0) {
			folder_fail(f, SYNC_EXIT_FAIL, "%s: cannot move '%s' from '%s': %s",
				    f->name, q->src_base, q->src->name, err);
			free(err);
			if (src)
				mdir_close(&src);
			return -1;
		}
		FREE_AND_NULL(err);
		q->moved = r == 0;
		f->local_dirty = true;
		sync_crash_point("local move done");
	}
	if (src)
		mdir_close(&src);
	if (state_begin(w->st) < 0)
		goto state_fail;
	for (i = 0; i < f->n_pairs; i++) {
		struct pair *q = &f->pairs[i];
		int r;

		if (q->mv != MV_LOCAL)
			continue;
		if (q->moved)
			r = state_msg_move(w->st, q->src->sf.id, q->src_uid,
					   f->sf.id, q->m.uid);
		else
			r = state_msg_delete(w->st, q->src->sf.id, q->src_uid);
		if (r < 0 || state_journal_remove(w->st, q->jid) < 0)
			goto state_fail_rb;
		q->done = true;
		if (q->moved) {
			moved++;
		} else {
			/* nothing left to move: the source is done with it */
			/* the file went away meanwhile: the server copy stays
			 * and is new to the state, for the next run, which
			 * must not trust this folder's bookmark */
			f->incomplete = true;
			q->act = ACT_NONE;
			q->mv = MV_NONE;
			q->m.uid = 0;
		}
	}
	if (state_commit(w->st) < 0)
		goto state_fail_rb;
	for (i = 0; i < f->n_pairs; i++)
		if (f->pairs[i].done && f->pairs[i].src != NULL)
			atomic_fetch_add(&f->pairs[i].src->moves_out_done, 1);
	f->stats.pulled_moves += (unsigned)moved;
	sync_crash_point("local moves committed");
	return 0;
state_fail_rb:
	(void)state_rollback(w->st);
state_fail:
	folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
	return -1;
}

/* A folder another worker may be handling too: its flags and counters
 * change under the engine lock. Takes msg. */
static void target_fail(struct engine *e, struct folder *f, char *msg)
{
	pthread_mutex_lock(&e->lock);
	if (f->status == FOLDER_OK)
		folder_fail(f, SYNC_EXIT_FAIL, "%s: %s", f->name, msg);
	pthread_mutex_unlock(&e->lock);
	free(msg);
}

/* One target's share of the moves out of a source folder. */
struct move_group {
	struct folder *t;
	const struct move_ref *refs;
	size_t n;
	uint32_t *src_uids;     /* sorted */
	char *set;
	bool sent;              /* the server copied or moved them */
};

static void group_free(struct move_group *g)
{
	free(g->src_uids);
	free(g->set);
}

/* Journal the group's moves (before anything happens on the server). */
static int group_begin(struct worker *w, struct move_group *g)
{
	struct folder *f = g->t;
	struct pair **qs;
	size_t i;
	int r;

	g->src_uids = xcalloc(g->n, sizeof(uint32_t));
	for (i = 0; i < g->n; i++)
		g->src_uids[i] = f->pairs[g->refs[i].pi].src_uid;
	qsort(g->src_uids, g->n, sizeof(uint32_t), cmp_u32);
	g->set = imap_uidset_make(g->src_uids, g->n);
	qs = xcalloc(g->n, sizeof(*qs));
	for (i = 0; i < g->n; i++)
		qs[i] = &f->pairs[g->refs[i].pi];
	r = journal_moves(w, f, qs, g->n);
	free(qs);
	if (r < 0)
		target_fail(w->e, f, xstrdup(state_error(w->st)));
	return r;
}

static void group_learn(struct worker *w, struct move_group *g,
			struct imap_copyuid *map, bool copy);

/* UID MOVE (or, with copy, UID COPY) the group's messages with src
 * selected, and learn their UIDs in the target. Touches only the
 * group's pairs of the target, and its own fields under the lock. */
static int group_transfer(struct worker *w, struct folder *src,
			  struct move_group *g, bool copy)
{
	struct engine *e = w->e;
	struct folder *f = g->t;
	struct imap_copyuid map = { 0 };
	struct imap_selected sel;
	char *err = NULL;
	int r;

	/* src stays selected from one target's group to the next: the UIDs
	 * moved are ones this run has seen, and other connections only add
	 * to src in this phase */
	r = folder_fresh_uidvalidity(src) != 0
		    ? worker_select_ahead(w, src->name,
					  folder_fresh_uidvalidity(src), &err)
		    : worker_select_keep(w, src->name,
					 src->selected ? src->sel.uidvalidity
						       : src->sf.uidvalidity,
					 &sel, &err);
	if (r >= 0)
		r = copy ? w->r->ops->copy(w->r, g->set, f->name, &map, &err)
			 : w->r->ops->move(w->r, g->set, f->name, &map, &err);
	if (r < 0) {
		worker_forget_selected(w);
		target_fail(e, f, xasprintf("cannot %s messages from '%s': %s",
					    copy ? "copy" : "move", src->name,
					    err));
		free(err);
		imap_copyuid_release(&map);
		return -1;
	}
	g->sent = true;
	sync_crash_point(copy ? "server copy done" : "server move done");
	group_learn(w, g, &map, copy);
	return 0;
}

/* After the group's COPY or MOVE: its UIDs in the target, from COPYUID
 * (map, released here) or found again by content. */
static void group_learn(struct worker *w, struct move_group *g,
			struct imap_copyuid *map, bool copy)
{
	struct folder *f = g->t;
	size_t n = g->n, i, k;
	uint32_t *srcs = NULL, *dsts = NULL;
	struct imap_selected sel;
	char *err = NULL;

	if (map->uidvalidity != 0 && map->src && map->dst) {
		srcs = xcalloc(n, sizeof(uint32_t));
		dsts = xcalloc(n, sizeof(uint32_t));
		if (imap_uidset_expand(map->src, srcs, n) != n ||
		    imap_uidset_expand(map->dst, dsts, n) != n) {
			FREE_AND_NULL(srcs);
			FREE_AND_NULL(dsts);
		}
	}
	imap_copyuid_release(map);
	for (i = 0; i < n; i++) {
		struct pair *q = &f->pairs[g->refs[i].pi];

		q->m.uid = 0;
		for (k = 0; srcs && k < n; k++)
			if (srcs[k] == q->src_uid)
				q->m.uid = dsts[k];
	}
	if (srcs == NULL && !copy) {
		/* no COPYUID: find them again by content in the target (the
		 * moves phase runs on one worker then: this reads all of f).
		 * Copies are made only with UIDPLUS: without a COPYUID the
		 * journal stays, and the next run finds them. */
		struct msg_ident *ids = xcalloc(n, sizeof(*ids));
		uint32_t *found = xcalloc(n, sizeof(uint32_t));
		uint32_t *taken = xcalloc(f->n_pairs + f->n_snew + 1,
					  sizeof(uint32_t));
		size_t t = 0;

		for (i = 0; i < f->n_pairs; i++)
			if (f->pairs[i].m.uid)
				taken[t++] = f->pairs[i].m.uid;
		for (i = 0; i < n; i++) {
			struct pair *q = &f->pairs[g->refs[i].pi];

			ids[i].size = q->m.size;
			snprintf(ids[i].msgid, sizeof(ids[i].msgid), "%s",
				 q->m.msgid ? q->m.msgid : "");
			memcpy(ids[i].hhash, q->m.hhash, 16);
		}
		for (i = 0; i < f->n_snew; i++)
			taken[t++] = f->snew[i].uid;
		qsort(taken, t, sizeof(uint32_t), cmp_u32);
		if (worker_select_name(w, f->name,
				       f->selected ? f->sel.uidvalidity
						   : f->sf.uidvalidity,
				       &sel, &err) < 0 ||
		    remote_find_idents(w, ids, n, f->sel.uidnext ? f->sel.uidnext
							       : 1,
				       taken, t, found, &err) < 0) {
			log_warn("%s: cannot find moved messages again: %s; the "
				 "next run does", f->name, err);
			FREE_AND_NULL(err);
		}
		for (i = 0; i < n; i++)
			f->pairs[g->refs[i].pi].m.uid = found[i];
		free(ids);
		free(found);
		free(taken);
	}
	free(srcs);
	free(dsts);
}

/* Record where the group's messages went: the pairs move to the target
 * and their journal entries go, in one transaction. A pair whose new UID
 * is not known keeps its entry, for the next run's recovery. */
static int group_record(struct worker *w, struct folder *src,
			struct move_group *g)
{
	struct engine *e = w->e;
	struct folder *f = g->t;
	size_t i, moved = 0;
	bool incomplete = false;

	if (state_begin(w->st) < 0)
		goto state_fail;
	for (i = 0; i < g->n; i++) {
		struct pair *q = &f->pairs[g->refs[i].pi];

		if (q->m.uid == 0)
			continue;
		if (state_msg_move(w->st, src->sf.id, q->src_uid, f->sf.id,
				   q->m.uid) < 0 ||
		    state_msg_set_base(w->st, f->sf.id, q->m.uid, q->m.base) < 0 ||
		    state_journal_remove(w->st, q->jid) < 0)
			goto state_fail_rb;
		moved++;
	}
	if (state_commit(w->st) < 0)
		goto state_fail_rb;
	for (i = 0; i < g->n; i++) {
		struct pair *q = &f->pairs[g->refs[i].pi];

		if (q->m.uid == 0) {
			/* the journal entry stays: the next run's recovery
			 * finds the message by content */
			incomplete = true;
			q->act = ACT_NONE;
			q->mv = MV_NONE;
		}
		q->done = true;
	}
	atomic_fetch_add(&src->moves_out_done, (unsigned)g->n);
	pthread_mutex_lock(&e->lock);
	if (incomplete)
		f->incomplete = true;
	f->stats.pushed_moves += (unsigned)moved;
	pthread_mutex_unlock(&e->lock);
	sync_crash_point("server moves committed");
	return 0;
state_fail_rb:
	(void)state_rollback(w->st);
state_fail:
	target_fail(e, f, xstrdup(state_error(w->st)));
	return -1;
}

/*
 * The copies or moves to every target in one flight with the source's
 * SELECT: all of them journaled first, then a UID COPY or, with move, a
 * UID MOVE per target, pipelined. A target the server refuses (NO) fails
 * alone; the others are learnt (and, for moves, recorded: no expunge
 * follows).
 *
 * Over a slow link (engine slow_link) a round trip costs more than the
 * server's work for a UID MOVE, hence move (moves_out_execute()). Each
 * MOVE is atomic on its own: after a refused one its messages are in the
 * source still.
 */
static void group_flight(struct worker *w, struct folder *src,
			 struct move_group *gs, size_t ng, bool move)
{
	struct engine *e = w->e;
	const char **sets = xcalloc(ng + 1, sizeof(*sets));
	const char **dests = xcalloc(ng + 1, sizeof(*dests));
	struct imap_copyuid *maps = xcalloc(ng + 1, sizeof(*maps));
	bool *ok = xcalloc(ng + 1, sizeof(*ok));
	size_t *which = xcalloc(ng + 1, sizeof(*which));
	struct imap_selected sel;
	char *err = NULL;
	size_t i, m = 0;
	int r;

	for (i = 0; i < ng && !e->fatal; i++) {
		if (gs[i].t->status != FOLDER_OK || group_begin(w, &gs[i]) < 0)
			continue;
		sets[m] = gs[i].set;
		dests[m] = gs[i].t->name;
		which[m++] = i;
	}
	/* the SELECT goes in the flight when this run has read the
	 * source's UIDVALIDITY */
	if (m == 0)
		r = 0;
	else if (folder_fresh_uidvalidity(src) != 0)
		r = worker_select_ahead(w, src->name,
					folder_fresh_uidvalidity(src), &err);
	else
		r = worker_select_keep(w, src->name,
				       src->selected ? src->sel.uidvalidity
						     : src->sf.uidvalidity,
				       &sel, &err);
	if (r >= 0 && m > 0)
		r = (move ? w->r->ops->move_batch : w->r->ops->copy_batch)(
			w->r, sets, dests, m, maps, ok, &err);
	if (r < 0)
		worker_forget_selected(w);
	for (i = 0; i < m; i++) {
		struct move_group *g = &gs[which[i]];

		if (r < 0 || !ok[i]) {
			/* its journal entries stay: after a lost
			 * connection the next run's recovery finds where
			 * each message is; after a NO they are in the
			 * source still */
			target_fail(e, g->t,
				    xasprintf("cannot %s messages from '%s': %s",
					      move ? "move" : "copy",
					      src->name,
					      err ? err : "refused"));
			imap_copyuid_release(&maps[i]);
			continue;
		}
		g->sent = true;
		sync_crash_point(move ? "server move done"
				      : "server copy done");
		/* without a COPYUID, no search by content here for a move
		 * (other workers share this phase under UIDPLUS): the
		 * journal entry stays for the next run's recovery */
		group_learn(w, g, &maps[i], true);
		if (move)
			(void)group_record(w, src, g);
	}
	free(err);
	free(sets);
	free(dests);
	free(maps);
	free(ok);
	free(which);
}

/*
 * Moves out of a source into several targets are copied to each, then
 * expunged from the source at once: on Dovecot's Maildir every UID MOVE
 * re-syncs the source folder (measured: 20 single moves out of a folder
 * of 6,000 cost the server 190-230 ms of CPU, 20 copies and one expunge
 * 30-40 ms). This needs COPYUID (UIDPLUS) to know where each went. The
 * journal entries stay until the expunge is done; a run killed in
 * between is finished by recover_moves(), which expunges a source copy
 * it finds the target holds.
 */
static void copy_groups(struct worker *w, struct folder *src,
			struct move_group *gs, size_t ng)
{
	uint32_t *uids;
	size_t i, j, n = 0;
	char *set, *err = NULL;
	struct imap_selected sel;

	for (i = 0; i < ng; i++)
		n += gs[i].n;
	uids = xcalloc(n + 1, sizeof(uint32_t));
	n = 0;
	if (w->r->ops->copy_batch != NULL) {
		group_flight(w, src, gs, ng, false);
	} else {
		for (i = 0; i < ng && !w->e->fatal; i++)
			if (gs[i].t->status == FOLDER_OK &&
			    group_begin(w, &gs[i]) == 0)
				(void)group_transfer(w, src, &gs[i], true);
	}
	for (i = 0; i < ng; i++)
		for (j = 0; gs[i].sent && j < gs[i].n; j++)
			uids[n++] = gs[i].src_uids[j];
	if (n == 0) {
		free(uids);
		return;
	}
	qsort(uids, n, sizeof(uint32_t), cmp_u32);
	set = imap_uidset_make(uids, n);
	free(uids);
	/* a connection lost after some copies: the source is not selected
	 * on a new one, so its expunge waits for the next run as well */
	if (w->r == NULL || w->r->ops->broken(w->r) ||
	    worker_select_keep(w, src->name, src->selected ? src->sel.uidvalidity
						      : src->sf.uidvalidity,
			       &sel, &err) != 1 ||
	    w->r->ops->expunge(w->r, set, &err) < 0) {
		log_warn("%s: cannot expunge the messages copied to other "
			 "folders: %s; the next run does", src->name,
			 err ? err : "connection lost");
		free(err);
		/* keep every journal entry of the groups: recovery */
		for (i = 0; i < ng; i++)
			for (j = 0; gs[i].sent && j < gs[i].n; j++)
				gs[i].t->pairs[gs[i].refs[j].pi].m.uid = 0;
	}
	free(set);
	sync_crash_point("server copies expunged");
	for (i = 0; i < ng; i++)
		if (gs[i].sent)
			(void)group_record(w, src, &gs[i]);
}


/* Main thread, after the plan: list each source folder's moves to the
 * server (they live as MV_SERVER pairs in the targets). Returns how many
 * source folders have some. */
size_t moves_collect(struct engine *e, struct worker *w0)
{
	size_t i, j, busy = 0;

	for (i = 0; i < e->n_folders; i++) {
		struct folder *t = e->folders[i];
		bool any = false;

		if (t->status != FOLDER_OK || t->untouched)
			continue;
		for (j = 0; j < t->n_pairs && !any; j++)
			any = t->pairs[j].mv == MV_SERVER && t->pairs[j].src &&
			      !t->pairs[j].done;
		/* the moves are recorded under the target's row */
		if (!any || folder_ensure_row(w0, t) < 0)
			continue;
		for (j = 0; j < t->n_pairs; j++) {
			struct pair *q = &t->pairs[j];
			struct folder *s = q->src;

			if (q->mv != MV_SERVER || s == NULL || q->done)
				continue;
			if (s->n_outs == 0)
				busy++;
			ALLOC_GROW(s->outs, s->n_outs + 1, s->a_outs);
			s->outs[s->n_outs].t = t;
			s->outs[s->n_outs].pi = j;
			s->n_outs++;
		}
	}
	return busy;
}

/* The moves out of src, one group per target. */
static struct move_group *groups_of(struct folder *src, size_t *ng_r)
{
	struct move_group *gs;
	size_t i = 0, j, ng = 0;

	gs = xcalloc(src->n_outs + 1, sizeof(*gs));
	while (i < src->n_outs) {
		struct folder *t = src->outs[i].t;

		for (j = i; j < src->n_outs && src->outs[j].t == t; j++)
			;
		gs[ng].t = t;
		gs[ng].refs = &src->outs[i];
		gs[ng].n = j - i;
		ng++;
		i = j;
	}
	*ng_r = ng;
	return gs;
}

/* The moves phase: every move out of src, grouped by target, with src
 * selected once. Before any folder's execute phase, so a target finds
 * its moved-in pairs recorded. Into several targets under UIDPLUS: one
 * flight of UID MOVEs over a slow link (group_flight()), else copies and
 * one expunge (copy_groups); else, and into one target, a UID MOVE per
 * target (its SELECT in the same flight). */
void moves_out_execute(struct worker *w, struct folder *src)
{
	struct move_group *gs;
	size_t i, ng = 0;
	char *err = NULL;
	bool grouped = false;

	gs = groups_of(src, &ng);
	if (ng >= 2 && worker_remote(w, &err) == 0 &&
	    (w->r->ops->caps(w->r) & IMAP_CAP_UIDPLUS)) {
		const struct remote_ops *ops = w->r->ops;

		if (w->e->slow_link && ops->move_batch != NULL &&
		    (ops->caps(w->r) & IMAP_CAP_MOVE)) {
			group_flight(w, src, gs, ng, true);
			grouped = true;
		} else if (ops->copy != NULL) {
			copy_groups(w, src, gs, ng);
			grouped = true;
		}
	}
	free(err);
	for (i = 0; i < ng && !grouped && !w->e->fatal; i++)
		if (gs[i].t->status == FOLDER_OK &&
		    group_begin(w, &gs[i]) == 0 &&
		    group_transfer(w, src, &gs[i], false) == 0)
			(void)group_record(w, src, &gs[i]);
	for (i = 0; i < ng; i++)
		group_free(&gs[i]);
	free(gs);
}

/* Same-folder changes of identity: one transaction, no journal (a run
 * killed before it commits finds the same situation again). */
static int replay_in_place(struct worker *w, struct folder *f)
{
	size_t i;
	bool any = false;

	for (i = 0; i < f->n_pairs; i++) {
		struct pair *p = &f->pairs[i];
		int r;

		if (p->mv != MV_RENUMBER && p->mv != MV_REBASE)
			continue;
		if (!any && state_begin(w->st) < 0)
			goto fail;
		any = true;
		if (p->mv == MV_RENUMBER)
			r = state_msg_move(w->st, f->sf.id, p->src_uid, f->sf.id,
					   p->m.uid);
		else
			r = state_msg_set_base(w->st, f->sf.id, p->m.uid, p->m.base);
		if (r < 0) {
			(void)state_rollback(w->st);
			goto fail;
		}
		p->mv = MV_NONE;
	}
	if (any && state_commit(w->st) < 0) {
		(void)state_rollback(w->st);
		goto fail;
	}
	return 0;
fail:
	folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
	return -1;
}

int moves_execute(struct worker *w, struct folder *f)
{
	size_t i;

	if (replay_in_place(w, f) < 0)
		return -1;
	/* moves to the server were replayed by the moves phase, grouped by
	 * their source folder (moves_out_execute) */
	for (i = 0; i < f->n_pairs; i++)
		if (f->pairs[i].mv == MV_LOCAL)
			return replay_local(w, f);
	return 0;
}

/* Whether moves_out_execute_many() can run on w's connection: the server
 * offers MOVE and UIDPLUS (every moved message's new UID from COPYUID). */
bool moves_many_usable(struct worker *w)
{
	char *err = NULL;
	unsigned caps;

	if (worker_remote(w, &err) < 0) {
		free(err);   /* moves_out_execute() says it again */
		return false;
	}
	caps = w->r->ops->caps(w->r);
	return w->r->ops->move_from_many != NULL &&
	       (caps & IMAP_CAP_UIDPLUS) && (caps & IMAP_CAP_MOVE);
}

/* One source's share of moves_out_execute_many(). */
struct many_src {
	struct move_group *gs;
	size_t ng;
	const char **sets, **dests;
	size_t *which;              /* group of each MOVE sent */
};

/*
 * Over a slow link: the moves out of several sources in one flight
 * (imap_move_from_many()), each source's SELECT with its UID MOVEs, one
 * per target, so a worker's share of the sources costs one round trip
 * instead of one each. Every group is journaled before the flight. A
 * refused SELECT, or a source recreated meanwhile, fails that source's
 * targets, a refused MOVE its own target; their journal entries stay
 * for the next run's recovery. The others are learnt from their
 * COPYUID and recorded, as group_flight() does for one source.
 */
void moves_out_execute_many(struct worker *w, struct folder **srcs, size_t n)
{
	struct engine *e = w->e;
	struct imap_move_src *ms = xcalloc(n + 1, sizeof(*ms));
	struct many_src *m = xcalloc(n + 1, sizeof(*m));
	char *err = NULL;
	size_t i, k;
	int r = -1;

	for (i = 0; i < n; i++) {
		struct many_src *s = &m[i];

		s->gs = groups_of(srcs[i], &s->ng);
		s->sets = xcalloc(s->ng + 1, sizeof(*s->sets));
		s->dests = xcalloc(s->ng + 1, sizeof(*s->dests));
		s->which = xcalloc(s->ng + 1, sizeof(*s->which));
		ms[i].wire = srcs[i]->name;
		ms[i].uidvalidity = folder_fresh_uidvalidity(srcs[i]);
		for (k = 0; k < s->ng && !e->fatal; k++) {
			struct move_group *g = &s->gs[k];

			if (g->t->status != FOLDER_OK || group_begin(w, g) < 0)
				continue;
			s->sets[ms[i].n] = g->set;
			s->dests[ms[i].n] = g->t->name;
			s->which[ms[i].n++] = k;
		}
		ms[i].uidsets = s->sets;
		ms[i].dests = s->dests;
		ms[i].maps_r = xcalloc(ms[i].n + 1, sizeof(*ms[i].maps_r));
		ms[i].ok_r = xcalloc(ms[i].n + 1, sizeof(*ms[i].ok_r));
	}
	worker_forget_selected(w);
	if (worker_remote(w, &err) == 0)
		r = w->r->ops->move_from_many(w->r, ms, n, &err);
	if (r == 0 && n > 0 && ms[n - 1].selected_r)
		w->selected = xstrdup(srcs[n - 1]->name);
	for (i = 0; i < n; i++) {
		for (k = 0; k < ms[i].n; k++) {
			struct move_group *g = &m[i].gs[m[i].which[k]];

			if (r < 0 || !ms[i].selected_r || !ms[i].ok_r[k]) {
				/* its journal entries stay: after a lost
				 * connection the next run's recovery finds
				 * where each message is; after a NO they are
				 * in the source still */
				target_fail(e, g->t,
					    xasprintf("cannot move messages from "
						      "'%s': %s", srcs[i]->name,
						      err ? err : "refused"));
				imap_copyuid_release(&ms[i].maps_r[k]);
				continue;
			}
			g->sent = true;
			sync_crash_point("server move done");
			/* without a COPYUID the journal entry stays for
			 * the next run's recovery (other workers share
			 * this phase) */
			group_learn(w, g, &ms[i].maps_r[k], true);
			(void)group_record(w, srcs[i], g);
		}
		for (k = 0; k < m[i].ng; k++)
			group_free(&m[i].gs[k]);
		free(m[i].gs);
		free(m[i].sets);
		free(m[i].dests);
		free(m[i].which);
		free(ms[i].maps_r);
		free(ms[i].ok_r);
	}
	free(err);
	free(ms);
	free(m);
}
