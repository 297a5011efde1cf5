/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bookmark.c - a server bookmark that includes the run's own changes.
 *
 * The bookmark (UIDNEXT, HIGHESTMODSEQ, message count) saved for a folder
 * is what the next run's STATUS precheck compares with. Taken at SELECT,
 * it predates the STOREs, expunges, MOVEs and APPENDs the run itself then
 * sent, so the next run would select the folder again only to fetch its
 * own changes back. When the connection saw nothing but its own changes
 * since a SELECT that showed the folder as the plan knew it
 * (imap_client_own_state(), imap/track.h), the values after them are the
 * bookmark instead; otherwise the old one stays and the next run looks.
 */
#include "common.h"
#include "sync/sync-private.h"
#include "sync/remote.h"
#include "util/flags.h"
#include "util/log.h"

void bookmark_own_changes(struct worker *w, struct folder *f)
{
	struct remote *r = w->r;
	struct imap_own_state s;

	if (r == NULL || r->ops->own_state == NULL || w->selected == NULL ||
	    strcmp(w->selected, f->name) != 0 || !r->ops->own_state(r, &s))
		return;
	bookmark_own_state(f, &s);
}

void bookmark_own_state(struct folder *f, const struct imap_own_state *sp)
{
	struct imap_own_state s = *sp;
	uint32_t uv, uidnext, exists;
	uint64_t modseq;

	if (f->selected) {
		/* gathered: the plan is based on this SELECT's view */
		if (f->sel.nomodseq)
			return;
		uv = f->sel.uidvalidity;
		uidnext = f->sel.uidnext;
		exists = f->sel.exists;
		modseq = f->sel.highestmodseq;
	} else if (f->server_unchanged && f->have_status) {
		/* the STATUS precheck found it as the state knows it */
		uv = f->stat.uidvalidity;
		uidnext = f->stat.uidnext;
		exists = f->stat.messages;
		modseq = f->stat.highestmodseq;
	} else {
		return;
	}
	/* the connection's SELECT must have found the folder just so: a
	 * change made between the plan's view and that SELECT would be in
	 * its values, and nobody would fetch it */
	if (s.uidvalidity != uv || s.base_uidnext != uidnext ||
	    s.base_exists != exists || s.base_modseq != modseq)
		return;
	if (s.highestmodseq != modseq || s.uidnext != uidnext ||
	    s.exists != exists)
		log_debug("%s: bookmark includes this run's changes "
			  "(HIGHESTMODSEQ %llu, UIDNEXT %u, %u messages)",
			  f->name, (unsigned long long)s.highestmodseq,
			  s.uidnext, s.exists);
	f->sel.uidvalidity = s.uidvalidity;
	f->sel.uidnext = s.uidnext;
	f->sel.exists = s.exists;
	f->sel.highestmodseq = s.highestmodseq;
	f->sel.nomodseq = false;
	f->selected = true;
}

/*
 * Messages this run moved or copied into a folder (moves phase, maybe on
 * another connection) are not in the plan's view of it, so its bookmark
 * would stay behind them and the next run select it to fetch them back.
 * Before the execute phase works on such a folder, it is selected with
 * QRESYNC from the plan's view: when the server reports nothing but those
 * messages (their UIDs from COPYUID, with the flags they were moved
 * with) and the count adds up, the SELECT's values become the plan's
 * view, and bookmark_own_changes() goes on from there.
 */
struct moved_msg {
	uint32_t uid;               /* first: compared as a uint32_t */
	unsigned flags;
};

struct moved_in {
	struct moved_msg *v;        /* sorted by uid */
	size_t n, seen;
	uint32_t *out;              /* UIDs moved out of it, sorted */
	size_t n_out, gone;
	bool other;                 /* something else changed */
};

static int moved_fetch(void *ctx, const struct imap_fetch *fe)
{
	struct moved_in *mi = ctx;
	const struct moved_msg *m;

	if (fe->uid == 0 || !fe->has_flags ||
	    (m = bsearch(&fe->uid, mi->v, mi->n, sizeof(*mi->v),
			 cmp_u32)) == NULL ||
	    (fe->flags & MF_ALL) != (m->flags & MF_ALL)) {
		mi->other = true;
		return 0;
	}
	mi->seen++;
	return 0;
}

static int moved_vanished(void *ctx, const char *set, bool earlier)
{
	struct moved_in *mi = ctx;
	size_t pos = 0;
	uint32_t lo, hi;
	bool bad = false;

	(void)earlier;
	while (imap_uidset_next(set, &pos, &lo, &hi, &bad)) {
		uint64_t u;

		if (lo > hi) {
			uint32_t x = lo;

			lo = hi;
			hi = x;
		}
		if ((uint64_t)hi - lo >= mi->n_out) {
			mi->other = true;   /* more than we moved out */
			return 0;
		}
		for (u = lo; u <= hi; u++) {
			uint32_t k = (uint32_t)u;

			if (bsearch(&k, mi->out, mi->n_out, sizeof(uint32_t),
				    cmp_u32) == NULL) {
				mi->other = true;
				return 0;
			}
			mi->gone++;
		}
	}
	if (bad)
		mi->other = true;
	return 0;
}

/* The UIDs this run moved out of f (recorded moves only), sorted. */
static uint32_t *moved_out_uids(const struct folder *f, size_t *n_r)
{
	uint32_t *uids = xcalloc(f->n_outs + 1, sizeof(uint32_t));
	size_t i, n = 0;

	for (i = 0; i < f->n_outs; i++) {
		const struct pair *q = &f->outs[i].t->pairs[f->outs[i].pi];

		if (q->done && q->m.uid != 0)
			uids[n++] = q->src_uid;
	}
	qsort(uids, n, sizeof(uint32_t), cmp_u32);
	*n_r = n;
	return uids;
}

/* Without QRESYNC: what the execute phase did before, a SELECT (again,
 * to see what moved in) only when there is work for the server. */
static int plain_select(struct worker *w, struct folder *f, char **error_r)
{
	if (!folder_server_work(f))
		return 0;
	if (w->selected != NULL && strcmp(w->selected, f->name) == 0)
		FREE_AND_NULL(w->selected);
	return worker_select(w, f, error_r);
}

/* The plan's view of f to select it from with QRESYNC: false when
 * there is none (or no QRESYNC), and a plain SELECT does. */
static bool moved_in_view(struct remote *r, const struct folder *f,
			  struct imap_qresync *qr, uint32_t *uidnext_r,
			  uint32_t *exists_r)
{
	memset(qr, 0, sizeof(*qr));
	if (f->selected && !f->sel.nomodseq) {
		qr->modseq = f->sel.highestmodseq;
		*uidnext_r = f->sel.uidnext;
		*exists_r = f->sel.exists;
	} else if (!f->selected && f->server_unchanged && f->have_status) {
		qr->modseq = f->stat.highestmodseq;
		*uidnext_r = f->stat.uidnext;
		*exists_r = f->stat.messages;
	} else {
		return false;
	}
	qr->uidvalidity = f->selected ? f->sel.uidvalidity : f->sf.uidvalidity;
	return r->ops->qresync(r) && qr->modseq != 0 && qr->uidvalidity != 0;
}

/* The messages this run moved into f and out of it, for moved_fetch()
 * and moved_vanished(). */
static void moved_in_collect(const struct folder *f, struct moved_in *mi)
{
	size_t i;

	mi->v = xcalloc(f->n_pairs + 1, sizeof(*mi->v));
	for (i = 0; i < f->n_pairs; i++) {
		const struct pair *p = &f->pairs[i];

		if (p->mv == MV_SERVER && p->done && p->m.uid != 0) {
			mi->v[mi->n].uid = p->m.uid;
			mi->v[mi->n++].flags = p->m.flags;
		}
	}
	qsort(mi->v, mi->n, sizeof(*mi->v), cmp_u32);
	mi->out = moved_out_uids(f, &mi->n_out);
}

/* What the SELECT of a folder this run moved messages into says: when
 * nothing but those moves changed it, its values become the plan's view
 * (bookmark_own_changes() goes on from there). */
static void moved_in_apply(struct folder *f, const struct moved_in *mi,
			   const struct imap_selected *sel, uint32_t uidnext,
			   uint32_t exists)
{
	if (!mi->other && mi->seen == mi->n && (mi->n > 0 || mi->gone > 0) &&
	    !sel->nomodseq &&
	    sel->highestmodseq != 0 && mi->gone <= exists &&
	    sel->exists == exists + mi->n - mi->gone &&
	    sel->uidnext >= uidnext) {
		log_debug("%s: only this run's moves changed it (%zu in, "
			  "%zu out)", f->name, mi->n, mi->gone);
		f->sel.uidvalidity = sel->uidvalidity;
		f->sel.uidnext = sel->uidnext;
		f->sel.exists = sel->exists;
		f->sel.highestmodseq = sel->highestmodseq;
		f->sel.nomodseq = false;
		f->selected = true;
	} else if (!f->selected) {
		/* as worker_select(): keep the stored bookmark, only learn
		 * where new UIDs start */
		f->sel.uidnext = sel->uidnext;
		f->sel.uidvalidity = sel->uidvalidity;
	}
}

int bookmark_select(struct worker *w, struct folder *f, char **error_r)
{
	struct moved_in mi = { 0 };
	struct imap_qresync qr;
	struct imap_selected sel;
	struct remote *r;
	uint32_t uidnext = 0, exists = 0;

	if (worker_remote(w, error_r) < 0)
		return -1;
	r = w->r;
	if (!moved_in_view(r, f, &qr, &uidnext, &exists))
		return plain_select(w, f, error_r);
	moved_in_collect(f, &mi);
	FREE_AND_NULL(w->selected);
	if (r->ops->select(r, f->name, &qr, moved_fetch, moved_vanished, &mi,
			   &sel, error_r) < 0) {
		free(mi.v);
		free(mi.out);
		return -1;
	}
	free(mi.v);
	free(mi.out);
	w->selected = xstrdup(f->name);
	if (sel.uidvalidity != qr.uidvalidity) {
		*error_r = xasprintf("UIDVALIDITY of '%s' changed during the run; "
				     "it is handled by the next run", f->name);
		return -1;
	}
	moved_in_apply(f, &mi, &sel, uidnext, exists);
	return 0;
}

/* The SELECT of bookmark_select_ahead(), from its flight to its answer. */
struct bm_ahead {
	struct folder *f;
	struct moved_in mi;
	struct imap_selected sel;
	uint32_t uidnext, exists;
};

/* Its answer came (ok) or never will: the folder is not touched then,
 * the run may have freed it. */
static void bm_ahead_done(void *ctx, bool ok, const struct imap_selected *sel)
{
	struct bm_ahead *b = ctx;

	if (ok && sel != NULL)
		moved_in_apply(b->f, &b->mi, sel, b->uidnext, b->exists);
	free(b->mi.v);
	free(b->mi.out);
	free(b);
}

int bookmark_select_ahead(struct worker *w, struct folder *f, char **error_r)
{
	struct imap_qresync qr;
	struct bm_ahead *b;
	struct remote *r;
	uint32_t uidnext = 0, exists = 0;

	if (worker_remote(w, error_r) < 0)
		return -1;
	r = w->r;
	if (r->ops->select_ahead == NULL || r->ops->flush == NULL)
		return bookmark_select(w, f, error_r);
	if (!moved_in_view(r, f, &qr, &uidnext, &exists))
		return plain_select(w, f, error_r);
	b = xcalloc(1, sizeof(*b));
	b->f = f;
	b->uidnext = uidnext;
	b->exists = exists;
	moved_in_collect(f, &b->mi);
	FREE_AND_NULL(w->selected);
	/* a changed UIDVALIDITY fails the command that follows */
	if (r->ops->select_ahead(r, f->name, qr.uidvalidity, &qr, moved_fetch,
				 moved_vanished, &b->mi, &b->sel, bm_ahead_done,
				 b, error_r) < 0) {
		bm_ahead_done(b, false, NULL);
		return -1;
	}
	w->selected = xstrdup(f->name);
	return 0;
}

/* The messages this run moved out of f (moves phase) were expunged from
 * it on whichever connection did the moves: tell w's connection, so that
 * their VANISHED does not count as somebody else's change. */
void bookmark_moved_out(struct worker *w, struct folder *f)
{
	uint32_t *uids;
	size_t n = 0;
	char *set;

	if (f->n_outs == 0 || w->r == NULL || w->r->ops->expect_gone == NULL ||
	    w->selected == NULL || strcmp(w->selected, f->name) != 0)
		return;
	uids = moved_out_uids(f, &n);
	if (n > 0) {
		set = imap_uidset_make(uids, n);
		w->r->ops->expect_gone(w->r, f->name, set);
		free(set);
	}
	free(uids);
}
