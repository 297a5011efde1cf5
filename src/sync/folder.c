/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * folder.c - one folder's three-way comparison: gather, plan, execute.
 *
 * The state row of a message is the common ancestor. Each side's view is
 * compared with it flag by flag; whichever side changed a flag wins, so
 * nothing is lost when both sides changed different flags. Every step of
 * execute() is ordered so that a run killed between any two steps is
 * finished by the next one (see the comments at each step).
 */
#include "common.h"
#include "sync/sync-private.h"
#include "util/flags.h"
#include "util/log.h"

#include <stdarg.h>
#include <time.h>

#define DOWNLOAD_BATCH 256      /* UIDs per journal transaction + fetch call */
#define UPLOAD_BATCH 64         /* messages per APPEND pipeline */
#define COMMIT_EVERY 64         /* downloaded messages per state commit */

void folder_fail(struct folder *f, int exit_code, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	msg = xmalloc((size_t)(n < 0 ? 0 : n) + 1);
	va_start(ap, fmt);
	vsnprintf(msg, (size_t)(n < 0 ? 0 : n) + 1, fmt, ap);
	va_end(ap);
	if (f->error == NULL) {
		f->error = msg;
	} else {
		free(msg);
	}
	if (f->status == FOLDER_OK)
		f->status = exit_code == SYNC_EXIT_BRAKE ? FOLDER_SKIPPED
							 : FOLDER_FAILED;
	f->exit_code = sync_exit_merge(f->exit_code, exit_code);
}

static void snew_free(struct folder *f)
{
	size_t i;

	for (i = 0; i < f->n_snew; i++)
		free(f->snew[i].id);
	FREE_AND_NULL(f->snew);
	f->n_snew = f->a_snew = 0;
}

static void ul_batch_release(struct ul_batch *b);

void folder_free(struct folder *f)
{
	free(f->ahead_ids);
	size_t i;

	if (f == NULL)
		return;
	for (i = 0; i < f->n_pairs; i++) {
		state_msg_release(&f->pairs[i].m);
		free(f->pairs[i].src_base);
	}
	free(f->pairs);
	snew_free(f);
	if (f->lents)
		mdir_entries_free(f->lents, f->n_lents);
	free(f->lent_known);
	free(f->dl_uids);
	free(f->ul_idx);
	copies_free(f);
	if (f->ul_late != NULL) {
		ul_batch_release(f->ul_late);
		free(f->ul_late);
	}
	if (f->late)
		state_journal_free(f->late, f->n_late);
	free(f->dup_uids);
	free(f->dup_jids);
	free(f->adopt_uids);
	free(f->adopt_late);
	free(f->outs);
	if (f->md)
		mdir_close(&f->md);
	state_folder_release(&f->sf);
	free(f->name);
	free(f->path);
	free(f->error);
	free(f);
}

/*
 * How old a directory's mtime must be before it is trusted: a change made
 * within the same timestamp tick as the last one leaves it as it is. Local
 * file systems stamp with the kernel's coarse clock, whose resolution is
 * the tick (1-10 ms); two ticks, 2 ms at least and 20 ms at most.
 */
static int64_t mtime_settle_ns(void)
{
	static _Atomic int64_t settle;
	struct timespec res;
	int64_t v = atomic_load(&settle);

	if (v != 0)
		return v;
	v = 20000000LL;
#ifdef CLOCK_REALTIME_COARSE
	if (clock_getres(CLOCK_REALTIME_COARSE, &res) == 0) {
		v = 2 * ((int64_t)res.tv_sec * 1000000000LL + res.tv_nsec);
		if (v < 2000000LL)
			v = 2000000LL;
		if (v > 20000000LL)
			v = 20000000LL;
	}
#endif
	atomic_store(&settle, v);
	return v;
}
#define MTIME_SETTLE_NS mtime_settle_ns()

int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static struct pair *pair_by_uid(struct folder *f, uint32_t uid)
{
	size_t lo = 0, hi = f->n_pairs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (f->pairs[mid].m.uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < f->n_pairs && f->pairs[lo].m.uid == uid)
		return &f->pairs[lo];
	return NULL;
}

/* First pair with uid >= uid. */
static size_t pair_lower_bound(struct folder *f, uint32_t uid)
{
	size_t lo = 0, hi = f->n_pairs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (f->pairs[mid].m.uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---- gathering the server's view ---- */

static int on_fetch(void *ctx, const struct imap_fetch *fe)
{
	struct folder *f = ctx;
	struct pair *p;

	if (fe->uid == 0 || !fe->has_flags)
		return 0;   /* unsolicited or partial: nothing to learn */
	p = pair_by_uid(f, fe->uid);
	if (p != NULL) {
		p->sv = SRV_FLAGS;
		p->sflags = fe->flags;
		return 0;
	}
	ALLOC_GROW(f->snew, f->n_snew + 1, f->a_snew);
	memset(&f->snew[f->n_snew], 0, sizeof(f->snew[f->n_snew]));
	f->snew[f->n_snew].uid = fe->uid;
	f->snew[f->n_snew].flags = fe->flags;
	f->snew[f->n_snew].claimed = false;
	f->n_snew++;
	return 0;
}

static int on_vanished(void *ctx, const char *set, bool earlier)
{
	struct folder *f = ctx;
	size_t pos = 0, i;
	uint32_t lo, hi;
	bool bad = false;

	(void)earlier;
	while (imap_uidset_next(set, &pos, &lo, &hi, &bad)) {
		if (lo > hi) {
			uint32_t t = lo;
			lo = hi;
			hi = t;
		}
		for (i = pair_lower_bound(f, lo);
		     i < f->n_pairs && f->pairs[i].m.uid <= hi; i++)
			f->pairs[i].sv = SRV_GONE;
		for (i = 0; i < f->n_snew; i++)
			if (f->snew[i].uid >= lo && f->snew[i].uid <= hi)
				f->snew[i].claimed = true;
	}
	if (bad)
		log_warn("%s: ignoring a malformed VANISHED set from the server",
			 f->name);
	return 0;
}

static int cmp_snew(const void *a, const void *b)
{
	const struct srv_new *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* Sort the new server messages and drop duplicates (a UID can be reported
 * by the SELECT and again by a FETCH; the later report wins). */
static void snew_normalise(struct folder *f)
{
	size_t i, n = 0;

	if (f->n_snew == 0)
		return;
	/* stable enough: equal uids keep the last flags by a second pass */
	qsort(f->snew, f->n_snew, sizeof(*f->snew), cmp_snew);
	for (i = 0; i < f->n_snew; i++) {
		if (n > 0 && f->snew[n - 1].uid == f->snew[i].uid) {
			free(f->snew[i].id);
			f->snew[n - 1].flags = f->snew[i].flags;
			f->snew[n - 1].claimed |= f->snew[i].claimed;
			continue;
		}
		f->snew[n++] = f->snew[i];
	}
	f->n_snew = n;
}

static int cmp_rematch(const void *a, const void *b)
{
	const struct fetched_ident *x = a, *y = b;

	if (x->id.size != y->id.size)
		return x->id.size < y->id.size ? -1 : 1;
	return memcmp(x->id.hhash, y->id.hhash, sizeof(x->id.hhash));
}

static int cmp_pair_uid(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;

	return x->m.uid < y->m.uid ? -1 : x->m.uid > y->m.uid;
}

/*
 * UIDVALIDITY changed: the server renumbered the folder (or it was deleted
 * and re-created). Match the state's messages to the server's by identity
 * (size, header hash, Message-ID), fetched without bodies, so nothing that
 * still matches is downloaded again and nothing is duplicated. Messages that
 * do not match become new on their side.
 */
static int rematch(struct worker *w, struct folder *f, char **error_r)
{
	struct engine *e = w->e;
	struct fetched_idents rc = { 0 };
	size_t i, kept = 0;
	int ret = 0;

	log_info("%s: UIDVALIDITY changed (%u -> %u); matching messages by content",
		 f->name, f->sf.uidvalidity, f->sel.uidvalidity);
	if (f->sel.exists > 0 &&
	    w->r->ops->fetch_idents(w->r, "1:*", collect_ident, &rc,
				    error_r) < 0) {
		free(rc.v);
		return -1;
	}
	qsort(rc.v, rc.n, sizeof(*rc.v), cmp_rematch);
	for (i = 0; i < f->n_pairs; i++) {
		struct pair *p = &f->pairs[i];
		struct fetched_ident key, *hit;

		memset(&key, 0, sizeof(key));
		key.id.size = p->m.size;
		memcpy(key.id.hhash, p->m.hhash, sizeof(key.id.hhash));
		hit = p->m.have_hhash
			? bsearch(&key, rc.v, rc.n, sizeof(*rc.v),
				  cmp_rematch)
			: NULL;
		if (hit != NULL) {
			/* bsearch may land anywhere in a run of equals */
			while (hit > rc.v && cmp_rematch(hit - 1, &key) == 0)
				hit--;
			while (hit < rc.v + rc.n &&
			       cmp_rematch(hit, &key) == 0 &&
			       (hit->used ||
				strcmp(hit->id.msgid,
				       p->m.msgid ? p->m.msgid : "") != 0))
				hit++;
			if (hit == rc.v + rc.n || cmp_rematch(hit, &key) != 0)
				hit = NULL;
		}
		if (hit == NULL) {
			/* its server copy is gone: the local file is new again */
			state_msg_release(&p->m);
			continue;
		}
		hit->used = true;
		p->m.uid = hit->uid;
		p->sv = SRV_FLAGS;
		p->sflags = hit->flags;
		f->pairs[kept++] = *p;
	}
	f->n_pairs = kept;
	qsort(f->pairs, f->n_pairs, sizeof(*f->pairs), cmp_pair_uid);
	for (i = 0; i < rc.n; i++) {
		if (rc.v[i].used)
			continue;
		ALLOC_GROW(f->snew, f->n_snew + 1, f->a_snew);
		memset(&f->snew[f->n_snew], 0, sizeof(f->snew[f->n_snew]));
		f->snew[f->n_snew].uid = rc.v[i].uid;
		f->snew[f->n_snew].flags = rc.v[i].flags;
		f->snew[f->n_snew].claimed = false;
		f->n_snew++;
	}
	free(rc.v);

	if (e->o->dry_run)
		return 0;
	/* Rewrite the folder's pairs under the new UIDVALIDITY in one
	 * transaction; highestmodseq/uidnext reset so a crash before the end
	 * of this run means a full comparison next time. */
	if (state_begin(w->st) < 0)
		goto fail;
	if (state_msgs_delete_all(w->st, f->sf.id) < 0)
		goto fail_rb;
	for (i = 0; i < f->n_pairs; i++)
		if (state_msg_put(w->st, f->sf.id, &f->pairs[i].m) < 0)
			goto fail_rb;
	f->sf.uidvalidity = f->sel.uidvalidity;
	f->sf.highestmodseq = 0;
	f->sf.uidnext = 0;
	if (state_folder_put(w->st, &f->sf) < 0 || state_commit(w->st) < 0)
		goto fail_rb;
	sync_crash_point("rematch committed");
	return ret;
fail_rb:
	*error_r = xstrdup(state_error(w->st));
	(void)state_rollback(w->st);
	return -1;
fail:
	*error_r = xstrdup(state_error(w->st));
	return -1;
}

#define GATHER_IDENTS_MAX 5000

/* A new message's identity, from the header FETCH sent in the gather
 * SELECT's flight. */
struct ahead_ident {
	uint32_t uid;
	struct msg_ident id;
};

static int on_ahead_ident(void *ctx, const struct imap_fetch *fe)
{
	struct folder *f = ctx;
	struct ahead_ident *a;

	/* "N:*" also names the highest UID when it is below N */
	if (fe->uid == 0 || !fe->has_size || fe->uid < f->sf.uidnext)
		return 0;
	ALLOC_GROW(f->ahead_ids, f->n_ahead_ids + 1, f->a_ahead_ids);
	a = &f->ahead_ids[f->n_ahead_ids++];
	a->uid = fe->uid;
	fetch_to_ident(fe, &a->id);
	return 0;
}

static bool snew_idents_wanted(struct worker *w, const struct folder *f);

/*
 * Under QRESYNC, with the STATUS precheck's UIDNEXT telling that new
 * messages arrived since the bookmark and about how many: the SELECT
 * goes ahead of the FETCH of their headers (UID FETCH uidnext:*), one
 * flight instead of two (gather_snew_idents() would fetch them after the
 * SELECT). Returns -1 when the SELECT failed.
 */
static int select_with_idents(struct worker *w, struct folder *f,
			      const struct imap_qresync *qr, char **error_r)
{
	struct remote *r = w->r;
	char *set, *err = NULL;
	int ret;

	if (r->ops->select_ahead(r, f->name, 0, qr, on_fetch, on_vanished, f,
				 &f->sel, NULL, NULL, error_r) < 0)
		return -1;
	f->ahead_idents = true;
	set = xasprintf("%u:*", f->sf.uidnext);
	ret = r->ops->fetch_idents(r, set, on_ahead_ident, f, &err);
	free(set);
	if (ret < 0 && (f->sel.uidvalidity == 0 || r->ops->broken(r))) {
		/* the SELECT itself failed, or the connection */
		*error_r = err;
		return -1;
	}
	free(err);   /* only the headers: gather_snew_idents() asks again */
	if (ret < 0)
		f->ahead_idents = false;
	return 0;
}

static int gather_server(struct worker *w, struct folder *f)
{
	struct engine *e = w->e;
	struct remote *r;
	struct imap_qresync qr;
	bool known = f->in_state && f->sf.uidvalidity != 0;
	bool use_qr, use_cs;
	char *err = NULL;
	size_t i;

	if (f->server_unchanged) {
		for (i = 0; i < f->n_pairs; i++)
			f->pairs[i].sv = SRV_SAME;
		return 0;
	}
	if (worker_remote(w, &err) < 0) {
		folder_fail(f, SYNC_EXIT_FAIL, "%s", err);
		free(err);
		return -1;
	}
	r = w->r;
	use_qr = !e->o->full && known && f->sf.highestmodseq != 0 &&
		 r->ops->qresync(r);
	use_cs = !e->o->full && known && f->sf.highestmodseq != 0 &&
		 !use_qr && r->ops->condstore(r);

	/* Incremental modes start from "unchanged" and learn the changes;
	 * the full comparison starts from "gone" and learns who is there. */
	for (i = 0; i < f->n_pairs; i++)
		f->pairs[i].sv = (use_qr || use_cs) ? SRV_SAME : SRV_GONE;

	qr.uidvalidity = f->sf.uidvalidity;
	qr.modseq = f->sf.highestmodseq;
	qr.known_uids = NULL;
	free(w->selected);
	w->selected = NULL;
	if (use_qr && r->ops->select_ahead != NULL && f->have_status &&
	    f->stat.uidvalidity == f->sf.uidvalidity && f->sf.uidnext != 0 &&
	    f->stat.uidnext > f->sf.uidnext &&
	    f->stat.uidnext - f->sf.uidnext <= GATHER_IDENTS_MAX &&
	    snew_idents_wanted(w, f)) {
		if (select_with_idents(w, f, &qr, &err) < 0)
			goto fail;
	} else if (r->ops->select(r, f->name, use_qr ? &qr : NULL,
				  on_fetch, on_vanished, f, &f->sel, &err) < 0) {
		goto fail;
	}
	w->selected = xstrdup(f->name);
	f->selected = true;

	if (known && f->sel.uidvalidity != f->sf.uidvalidity) {
		/* forget whatever QRESYNC reported: it was for other UIDs */
		f->n_snew = 0;
		f->uidvalidity_changed = true;
		if (rematch(w, f, &err) < 0)
			goto fail;
		snew_normalise(f);
		return 0;
	}
	if (use_qr && !f->sel.nomodseq && f->sel.highestmodseq != 0) {
		snew_normalise(f);
		return 0;
	}
	if (use_cs && !f->sel.nomodseq && f->sel.highestmodseq != 0) {
		uint32_t *uids = NULL;
		size_t n = 0, j = 0;

		if (f->sel.highestmodseq != f->sf.highestmodseq &&
		    f->sel.exists > 0 &&
		    r->ops->fetch_flags(r, "1:*", f->sf.highestmodseq, false,
					on_fetch, on_vanished, f, &err) < 0)
			goto fail;
		/* CONDSTORE does not report expunges: compare the UID list */
		if (f->sel.exists > 0 && r->ops->uids(r, &uids, &n, &err) < 0)
			goto fail;
		for (i = 0; i < f->n_pairs; i++) {
			while (j < n && uids[j] < f->pairs[i].m.uid)
				j++;
			if (j >= n || uids[j] != f->pairs[i].m.uid)
				f->pairs[i].sv = SRV_GONE;
		}
		free(uids);
		snew_normalise(f);
		return 0;
	}
	/* Full comparison: every UID with its flags. */
	for (i = 0; i < f->n_pairs; i++)
		f->pairs[i].sv = SRV_GONE;
	f->n_snew = 0;
	if (f->sel.exists > 0 &&
	    r->ops->fetch_flags(r, "1:*", 0, false, on_fetch, on_vanished, f,
				&err) < 0)
		goto fail;
	snew_normalise(f);
	return 0;
fail:
	folder_fail(f, r->ops->broken(r) ? SYNC_EXIT_FAIL : SYNC_EXIT_FAIL,
		    "%s: %s", f->name, err ? err : "server error");
	free(err);
	return -1;
}

/* ---- gathering the local view ---- */

static int cmp_pair_base(const void *a, const void *b, void *ctx)
{
	const struct pair *pairs = ctx;
	const size_t *x = a, *y = b;

	return strcmp(pairs[*x].m.base, pairs[*y].m.base);
}

static struct pair *sort_ctx_pairs;
static int cmp_pair_base_q(const void *a, const void *b)
{
	return cmp_pair_base(a, b, sort_ctx_pairs);
}

static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;

static int gather_local(struct worker *w, struct folder *f)
{
	struct engine *e = w->e;
	char *err = NULL;
	size_t i, j, *order;
	int64_t now_ns = wall_ns();

	if (f->md == NULL) {
		/* a folder that will only be created locally: empty */
		for (i = 0; i < f->n_pairs; i++)
			f->pairs[i].lidx = -1;
		return 0;
	}
	if (mdir_mtimes(f->md, &f->cur_mtime, &f->new_mtime, &err) < 0) {
		folder_fail(f, SYNC_EXIT_FAIL, "%s", err);
		free(err);
		return -1;
	}
	if (!e->o->full && f->in_state && f->sf.cur_mtime != 0 &&
	    f->sf.cur_mtime == f->cur_mtime && f->sf.new_mtime == f->new_mtime) {
		f->local_unchanged = true;
		for (i = 0; i < f->n_pairs; i++) {
			f->pairs[i].lidx = LOCAL_SAME;
			f->pairs[i].lflags = f->pairs[i].m.flags;
		}
		return 0;
	}
	/* A directory changed a moment ago may change again within the
	 * file system's timestamp granularity without its mtime moving:
	 * do not trust such an mtime next time. */
	if (now_ns - f->cur_mtime < MTIME_SETTLE_NS ||
	    now_ns - f->new_mtime < MTIME_SETTLE_NS) {
		f->cur_mtime = 0;
		f->new_mtime = 0;
	}
	if (mdir_scan(f->md, &f->lents, &f->n_lents, &err) < 0) {
		folder_fail(f, SYNC_EXIT_FAIL, "%s", err);
		free(err);
		return -1;
	}
	f->lent_known = xcalloc(f->n_lents ? f->n_lents : 1, sizeof(bool));
	order = xcalloc(f->n_pairs ? f->n_pairs : 1, sizeof(*order));
	for (i = 0; i < f->n_pairs; i++) {
		order[i] = i;
		f->pairs[i].lidx = -1;
	}
	pthread_mutex_lock(&sort_lock);
	sort_ctx_pairs = f->pairs;
	qsort(order, f->n_pairs, sizeof(*order), cmp_pair_base_q);
	pthread_mutex_unlock(&sort_lock);
	/* merge join: entries are sorted by base too */
	for (i = 0, j = 0; i < f->n_pairs && j < f->n_lents;) {
		struct pair *p = &f->pairs[order[i]];
		int c = strcmp(p->m.base, f->lents[j].base);

		if (c == 0) {
			p->lidx = (long)j;
			p->lflags = f->lents[j].flags;
			f->lent_known[j] = true;
			i++;
			j++;
		} else if (c < 0) {
			i++;
		} else {
			j++;
		}
	}
	free(order);
	return 0;
}

static int on_snew_ident(void *ctx, const struct imap_fetch *fe)
{
	struct folder *f = ctx;
	size_t lo = 0, hi = f->n_snew;

	if (fe->uid == 0 || !fe->has_size)
		return 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (f->snew[mid].uid < fe->uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= f->n_snew || f->snew[lo].uid != fe->uid)
		return 0;
	if (f->snew[lo].id == NULL)
		f->snew[lo].id = xmalloc(sizeof(*f->snew[lo].id));
	fetch_to_ident(fe, f->snew[lo].id);
	f->snew[lo].have_id = true;
	return 0;
}

/* New server messages of a folder synced before may be moves from another
 * folder: learn their identity (headers only) now, on this folder's own
 * connection and while it is selected, rather than one folder after the
 * other in the plan phase. */
static bool snew_idents_wanted(struct worker *w, const struct folder *f)
{
	bool gmail = copies_gmail(w);

	return (f->in_state || gmail) &&
	       ((w->e->dir_moves & SYNC_DIR_PULL) || f->n_late > 0 || gmail);
}

/* The headers fetched in the SELECT's flight, to the new messages. */
static void ahead_idents_hand_out(struct folder *f)
{
	size_t i, lo, hi;

	for (i = 0; i < f->n_ahead_ids; i++) {
		const struct ahead_ident *a = &f->ahead_ids[i];

		lo = 0;
		hi = f->n_snew;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (f->snew[mid].uid < a->uid)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo >= f->n_snew || f->snew[lo].uid != a->uid)
			continue;
		if (f->snew[lo].id == NULL)
			f->snew[lo].id = xmalloc(sizeof(*f->snew[lo].id));
		*f->snew[lo].id = a->id;
		f->snew[lo].have_id = true;
	}
	FREE_AND_NULL(f->ahead_ids);
	f->n_ahead_ids = f->a_ahead_ids = 0;
}

static void gather_snew_idents(struct worker *w, struct folder *f)
{
	uint32_t *uids;
	size_t i, n = 0;
	char *set, *err = NULL;
	bool gmail = copies_gmail(w);

	if (f->ahead_idents) {
		/* fetched with the SELECT (select_with_idents()): every new
		 * UID from the bookmark's UIDNEXT on, so nothing is missing
		 * but what arrived after that FETCH */
		f->ahead_idents = false;
		if (!f->uidvalidity_changed) {
			ahead_idents_hand_out(f);
			for (i = 0; i < f->n_snew; i++)
				if (!f->snew[i].have_id && !f->snew[i].claimed)
					break;
			if (i == f->n_snew)
				return;
		}
		FREE_AND_NULL(f->ahead_ids);
		f->n_ahead_ids = f->a_ahead_ids = 0;
	}
	if ((!f->in_state && !gmail) || !f->selected || f->n_snew == 0 ||
	    f->n_snew > (gmail ? GATHER_IDENTS_MAX_GMAIL : GATHER_IDENTS_MAX) ||
	    !snew_idents_wanted(w, f))
		return;
	uids = xcalloc(f->n_snew, sizeof(uint32_t));
	for (i = 0; i < f->n_snew; i++)
		if (!f->snew[i].claimed && !f->snew[i].have_id)
			uids[n++] = f->snew[i].uid;
	if (n > 0) {
		set = imap_uidset_make(uids, n);
		if (w->r->ops->fetch_idents(w->r, set, on_snew_ident, f, &err) < 0)
			FREE_AND_NULL(err);   /* the plan phase asks again */
		free(set);
	}
	free(uids);
}

static int downloads_lead(struct worker *w, struct folder *f, uint32_t *uids,
			  size_t n);

/*
 * A new server message whose content no pair of any folder has cannot be
 * one half of a move (moves_plan() matches size, Message-ID and header
 * hash against the pairs the server lost): download it now, while the
 * folder is still selected on this connection, instead of selecting the
 * folder again in the execute phase. Only for a folder synced before
 * whose local side did not change (nothing there to pair it with), with
 * no late copies of a killed run's uploads to sort out; everything else
 * is left to the plan.
 */
static int early_downloads(struct worker *w, struct folder *f)
{
	struct engine *e = w->e;
	uint32_t *uids;
	size_t n = 0, i, j;
	int r;

	if (e->o->dry_run || !(e->dir_new & SYNC_DIR_PULL) || e->fatal ||
	    !f->in_state || f->sf.id == 0 || !f->selected || f->md == NULL ||
	    !f->local_unchanged || f->uidvalidity_changed || f->n_late > 0 ||
	    f->n_snew == 0)
		return 0;
	uids = xcalloc(f->n_snew, sizeof(*uids));
	for (i = 0; i < f->n_snew; i++) {
		const struct srv_new *sn = &f->snew[i];

		if (sn->claimed || !sn->have_id)
			continue;
		r = state_msg_known_content(w->st, sn->id->hhash, sn->id->size);
		if (r < 0)
			log_debug("%s: %s", f->name, state_error(w->st));
		if (r == 0 && copies_claim_early(e, sn->id))
			uids[n++] = sn->uid;   /* snew is sorted: so are these */
	}
	if (n == 0) {
		free(uids);
		return 0;
	}
	log_debug("%s: %zu new server message(s) downloaded while gathering",
		  f->name, n);
	engine_progress_total(e, n);
	for (i = 0, j = 0; i < f->n_snew && j < n; i++) {
		if (f->snew[i].uid == uids[j]) {
			f->snew[i].claimed = true;
			j++;
		}
	}
	/* the next folder's SELECT goes in the flight of these bodies */
	return downloads_lead(w, f, uids, n);
}

/* Nothing changed on either side since the last sync: the STATUS
 * precheck said so for the server, the directory mtimes say so here.
 * Such a folder's pairs are not even loaded. Opens the Maildir folder. */
bool folder_check_untouched(struct engine *e, struct folder *f)
{
	int64_t c = 0, nw = 0;
	bool missing = false;
	char *err = NULL;

	if (f->untouched)
		return true;
	if (!f->in_state || !f->server_unchanged || !f->on_local ||
	    e->o->full || e->o->status_only || f->sf.cur_mtime == 0 ||
	    f->status != FOLDER_OK)
		return false;
	if (f->md == NULL && mdir_open(f->path, false, &f->md, &missing,
				       &err) < 0) {
		free(err);   /* the gather says it again */
		return false;
	}
	if (mdir_mtimes(f->md, &c, &nw, &err) == 0 &&
	    c == f->sf.cur_mtime && nw == f->sf.new_mtime) {
		f->cur_mtime = c;
		f->new_mtime = nw;
		f->local_unchanged = true;
		f->untouched = true;
		return true;
	}
	free(err);
	return false;
}

/* Whether the plan has anything for the server in this folder. */
bool folder_server_work(const struct folder *f)
{
	size_t i;

	if (f->status != FOLDER_OK || f->untouched)
		return false;
	if (f->n_dl > 0 || f->n_ul > 0 || f->n_dup > 0)
		return true;
	for (i = 0; i < f->n_pairs; i++) {
		const struct pair *p = &f->pairs[i];

		if (p->act == ACT_DEL_SERVER || (p->mv == MV_SERVER && !p->done))
			return true;
		if (p->act == ACT_FLAGS) {
			unsigned s = p->sv == SRV_FLAGS ? p->sflags : p->m.flags;

			if (s != p->new_s)
				return true;
		}
	}
	return false;
}

int folder_gather(struct worker *w, struct folder *f)
{
	struct engine *e = w->e;
	char *err = NULL;
	struct state_msg *msgs = NULL;
	size_t n = 0, i;
	bool missing = false;

	if (f->md == NULL && (f->on_local || (f->create_local && !e->o->dry_run))) {
		if (mdir_open(f->path, f->create_local && !e->o->dry_run,
			      &f->md, &missing, &err) < 0) {
			folder_fail(f, SYNC_EXIT_FAIL, "%s", err);
			free(err);
			return -1;
		}
	}
	if (f->create_server && !e->o->dry_run) {
		if (worker_remote(w, &err) < 0 ||
		    w->r->ops->create(w->r, f->name, &err) < 0) {
			folder_fail(f, SYNC_EXIT_FAIL,
				    "cannot create folder '%s' on the server: %s",
				    f->name, err);
			free(err);
			return -1;
		}
		log_info("%s: created on the server", f->name);
		f->on_server = true;
		f->server_unchanged = false;
	}
	if (folder_check_untouched(e, f))
		return 0;
	if (f->in_state) {
		if (state_msgs_load(w->st, f->sf.id, &msgs, &n) < 0) {
			folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
			return -1;
		}
		/* room for the pairs moves_plan() adds without copying a
		 * big folder's array */
		f->a_pairs = n + n / 16 + 16;
		f->pairs = xcalloc(f->a_pairs, sizeof(*f->pairs));
		for (i = 0; i < n; i++) {
			f->pairs[i].m = msgs[i];
			f->pairs[i].lidx = -1;
		}
		f->n_pairs = n;
		free(msgs);   /* the strings now belong to the pairs */
		if (late_load(w, f) < 0) {
			folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
			return -1;
		}
	}
	if (f->on_server || f->create_server) {
		if (!(f->create_server && e->o->dry_run) &&
		    gather_server(w, f) < 0)
			return -1;
		gather_snew_idents(w, f);
	} else {
		for (i = 0; i < f->n_pairs; i++)
			f->pairs[i].sv = SRV_GONE;
	}
	if (gather_local(w, f) < 0)
		return -1;
	return early_downloads(w, f);
}

/* ---- plan ---- */

static unsigned merge_flags(unsigned base, unsigned s, unsigned l)
{
	unsigned changed_s = s ^ base, changed_l = l ^ base;

	/* per flag: the side that changed it wins; both changed = same value */
	return (base & ~(changed_s | changed_l)) | (s & changed_s) |
	       (l & changed_l & ~changed_s);
}

void folder_plan(struct engine *e, struct folder *f)
{
	bool pull_flags = e->dir_flags & SYNC_DIR_PULL;
	bool push_flags = e->dir_flags & SYNC_DIR_PUSH;
	bool pull_del = e->dir_deletions & SYNC_DIR_PULL;
	bool push_del = e->dir_deletions & SYNC_DIR_PUSH;
	unsigned del_local = 0, del_server = 0;
	size_t i;

	if (f->status != FOLDER_OK)
		return;
	for (i = 0; i < f->n_pairs; i++) {
		struct pair *p = &f->pairs[i];
		bool sp = p->sv != SRV_GONE, lp = p->lidx != -1;
		unsigned s = p->sv == SRV_FLAGS ? p->sflags : p->m.flags;
		unsigned l = lp ? p->lflags : p->m.flags;
		/* \Deleted set on a message that is going away is the
		 * deletion itself, not a conflicting change */
		unsigned care = MF_ALL & ~MF_DELETED;

		if (p->act == ACT_MOVED_AWAY)
			continue;
		p->act = ACT_NONE;
		if (sp && lp) {
			unsigned m = merge_flags(p->m.flags, s, l);

			p->new_s = push_flags ? m : s;
			p->new_l = pull_flags ? m : l;
			if (pull_flags && push_flags)
				p->new_state = m;
			else
				p->new_state = !push_flags ? p->new_s : p->new_l;
			if (p->new_s != s || p->new_l != l ||
			    p->new_state != p->m.flags)
				p->act = ACT_FLAGS;
		} else if (!sp && lp) {
			if (((l ^ p->m.flags) & care) &&
			    (e->dir_new & SYNC_DIR_PUSH) && p->lidx >= 0) {
				p->act = ACT_REUPLOAD;   /* deleted there, changed here */
			} else if (pull_del) {
				p->act = ACT_DEL_LOCAL;
				del_local++;
			}
		} else if (sp && !lp) {
			if (((s ^ p->m.flags) & care) &&
			    (e->dir_new & SYNC_DIR_PULL)) {
				p->act = ACT_REDOWNLOAD; /* deleted here, changed there */
			} else if (push_del) {
				p->act = ACT_DEL_SERVER;
				del_server++;
			}
		} else {
			p->act = ACT_FORGET;
		}
	}

	/* Safety brake (SPEC "Safety and reliability"). */
	if (!e->o->force) {
		unsigned worst = del_local > del_server ? del_local : del_server;

		if (worst > 10 && (uint64_t)worst * 2 > f->n_pairs) {
			folder_fail(f, SYNC_EXIT_BRAKE,
				    "%s: safety brake: this run would delete %u of the %zu "
				    "messages on the %s side; nothing was deleted "
				    "(run with --force to let it through)",
				    f->name, worst, f->n_pairs,
				    del_local >= del_server ? "local" : "server");
			return;
		}
	}

	/* downloads: new on the server, and restores */
	free(f->dl_uids);
	f->dl_uids = xcalloc(f->n_snew + f->n_pairs + 1, sizeof(uint32_t));
	f->n_dl = 0;
	if (e->dir_new & SYNC_DIR_PULL)
		for (i = 0; i < f->n_snew; i++)
			if (!f->snew[i].claimed)
				f->dl_uids[f->n_dl++] = f->snew[i].uid;
	for (i = 0; i < f->n_pairs; i++)
		if (f->pairs[i].act == ACT_REDOWNLOAD)
			f->dl_uids[f->n_dl++] = f->pairs[i].m.uid;
	qsort(f->dl_uids, f->n_dl, sizeof(uint32_t), cmp_u32);

	/* uploads: new local files, and restores */
	free(f->ul_idx);
	f->ul_idx = xcalloc(f->n_lents + 1, sizeof(size_t));
	f->n_ul = 0;
	if (e->dir_new & SYNC_DIR_PUSH)
		for (i = 0; i < f->n_lents; i++)
			if (!f->lent_known[i])
				f->ul_idx[f->n_ul++] = i;
	for (i = 0; i < f->n_pairs; i++)
		if (f->pairs[i].act == ACT_REUPLOAD)
			f->ul_idx[f->n_ul++] = (size_t)f->pairs[i].lidx;
}

/* ---- execute ---- */

struct dl_pending {
	uint32_t uid;
	int64_t jid;                /* its journal entry */
	char *base;
	unsigned flags;
	struct msg_ident id;
};

struct dl_ctx {
	struct worker *w;
	struct folder *f;
	struct mdir_writer *mw;
	struct ident_ctx *ic;
	struct dl_pending *pend;
	size_t n_pend, a_pend;
	int64_t *jids;              /* journal id per uid of the batch, 0
				       once its body has come */
	const uint32_t *uids;
	size_t n_uids;
	char *error;
};

/* The journal id slot of a UID of the batch, or NULL for a UID we did not
 * ask for. */
static int64_t *dl_journal_slot(struct dl_ctx *d, uint32_t uid)
{
	const uint32_t *hit = bsearch(&uid, d->uids, d->n_uids,
				      sizeof(uint32_t), cmp_u32);

	return hit ? &d->jids[hit - d->uids] : NULL;
}

/* Commit downloaded files to the state: pairs in, journal entries out,
 * one transaction. Until this commits, the journal lets the next run find
 * the files again by content. */
static int dl_flush(struct dl_ctx *d)
{
	struct state *st = d->w->st;
	size_t i;

	char *err = NULL;

	if (d->n_pend == 0)
		return 0;
	/* the renames must be durable before the state says they happened */
	if (mdir_sync_dirs(d->f->md, &err) < 0) {
		if (d->error == NULL)
			d->error = err;
		else
			free(err);
		return -1;
	}
	if (state_begin(st) < 0)
		goto fail;
	for (i = 0; i < d->n_pend; i++) {
		struct dl_pending *p = &d->pend[i];
		struct state_msg m = { 0 };

		pair_row_ident(&m, p->uid, p->base, p->flags, &p->id);
		if (state_msg_put(st, d->f->sf.id, &m) < 0 ||
		    state_journal_remove(st, p->jid) < 0) {
			(void)state_rollback(st);
			goto fail;
		}
	}
	if (state_commit(st) < 0) {
		(void)state_rollback(st);
		goto fail;
	}
	for (i = 0; i < d->n_pend; i++)
		free(d->pend[i].base);
	d->n_pend = 0;
	sync_crash_point("downloads committed");
	return 0;
fail:
	if (d->error == NULL)
		d->error = xstrdup(state_error(st));
	return -1;
}

static int dl_begin(void *ctx, uint32_t seq, uint64_t size)
{
	struct dl_ctx *d = ctx;
	char *err = NULL;

	(void)seq;
	(void)size;
	if (d->mw != NULL)
		mdir_writer_abort(&d->mw);
	if (mdir_writer_new(d->f->md, &d->mw, &err) < 0) {
		free(d->error);
		d->error = err;
		return -1;
	}
	if (d->ic)
		ident_free(&d->ic);
	d->ic = ident_new();
	return 0;
}

static int dl_data(void *ctx, const void *p, size_t n)
{
	struct dl_ctx *d = ctx;
	char *err = NULL;

	if (d->mw == NULL)
		return -1;
	ident_feed(d->ic, p, n);
	if (mdir_writer_write(d->mw, p, n, &err) < 0) {
		free(d->error);
		d->error = err;
		return -1;
	}
	return 0;
}

static int dl_end(void *ctx)
{
	(void)ctx;
	return 0;
}

static int dl_done(void *ctx, const struct imap_fetch *fe)
{
	struct dl_ctx *d = ctx;
	struct dl_pending *p;
	int64_t *slot;
	char *err = NULL;

	if (d->mw == NULL)
		return 0;   /* a FETCH without a body (e.g. unsolicited flags) */
	slot = fe->uid ? dl_journal_slot(d, fe->uid) : NULL;
	if (slot == NULL || *slot == 0) {
		/* not one we asked for, or its body came already */
		mdir_writer_abort(&d->mw);
		return 0;
	}
	ALLOC_GROW(d->pend, d->n_pend + 1, d->a_pend);
	p = &d->pend[d->n_pend];
	memset(p, 0, sizeof(*p));
	/* The entry is the pending file's from now on: dl_flush() removes
	 * it with the pair, the clean-up below leaves it alone. Removing an
	 * entry twice is not harmless: another worker may have been given
	 * the freed id for a step of its own. */
	p->jid = *slot;
	*slot = 0;
	ident_finish(d->ic, &p->id);
	ident_free(&d->ic);
	if (fe->has_size)
		p->id.size = fe->size;
	p->uid = fe->uid;
	p->flags = fe->has_flags ? fe->flags : 0;
	p->base = xstrdup(mdir_writer_base(d->mw));
	if (mdir_writer_commit(d->mw, p->flags,
			       fe->has_date ? (time_t)fe->internaldate : 0,
			       &err) < 0) {
		free(p->base);
		mdir_writer_abort(&d->mw);
		free(d->error);
		d->error = err;
		return -1;
	}
	mdir_writer_free(&d->mw);
	d->f->local_dirty = true;
	d->n_pend++;
	d->f->stats.pulled_new++;
	d->f->stats.bytes_down += p->id.size;
	engine_progress(d->w->e, d->f, 1, p->id.size);
	sync_crash_point("message downloaded");
	if (d->n_pend >= COMMIT_EVERY)
		return dl_flush(d);
	return 0;
}

/* Intent first: the journal tells the next run that the UIDs of d's
 * batch may have reached the Maildir even if the state says nothing. */
static int dl_batch_journal(struct worker *w, struct folder *f,
			    struct dl_ctx *d)
{
	size_t i;

	d->jids = xcalloc(d->n_uids, sizeof(int64_t));
	if (state_begin(w->st) < 0) {
		d->error = xstrdup(state_error(w->st));
		return -1;
	}
	for (i = 0; i < d->n_uids; i++) {
		struct journal_entry je = { 0 };

		je.folder_id = f->sf.id;
		je.op = J_DOWNLOAD;
		je.uid = d->uids[i];
		if (state_journal_add(w->st, &je) < 0)
			break;
		d->jids[i] = je.id;
	}
	if (i < d->n_uids || state_commit(w->st) < 0) {
		d->error = xstrdup(state_error(w->st));
		(void)state_rollback(w->st);
		return -1;
	}
	sync_crash_point("download journal written");
	return 0;
}

/* The batch's FETCH has ended (ret, err: how): what came is committed,
 * and the journal entries of UIDs whose bodies never came (expunged
 * meanwhile) are dropped; the next comparison sorts them out. The
 * others were removed with their pairs, or stay for the next run's
 * recovery if that commit failed. */
static int dl_batch_finish(struct worker *w, struct dl_ctx *d, int ret,
			   char *err)
{
	size_t i;

	if (ret < 0) {
		if (d->error == NULL)
			d->error = err;
		else
			free(err);
	}
	if (d->mw)
		mdir_writer_abort(&d->mw);
	if (dl_flush(d) < 0)
		ret = -1;
	if (ret == 0) {
		bool open = false;

		for (i = 0; i < d->n_uids; i++) {
			if (!d->jids[i])
				continue;
			if (!open && state_begin(w->st) == 0)
				open = true;
			(void)state_journal_remove(w->st, d->jids[i]);
		}
		if (open && state_commit(w->st) < 0)
			(void)state_rollback(w->st);
	}
	FREE_AND_NULL(d->jids);
	return ret;
}

static int dl_release(struct folder *f, struct dl_ctx *d, int ret)
{
	size_t i;

	if (d->ic)
		ident_free(&d->ic);
	for (i = 0; i < d->n_pend; i++)
		free(d->pend[i].base);
	free(d->pend);
	free(d->jids);
	if (ret < 0)
		folder_fail(f, SYNC_EXIT_FAIL, "%s: download failed: %s",
			    f->name, d->error ? d->error : "unknown error");
	free(d->error);
	return ret;
}

static int execute_downloads(struct worker *w, struct folder *f,
			     const uint32_t *uids, size_t n_uids)
{
	struct dl_ctx d = { 0 };
	struct imap_body_handler h = { dl_begin, dl_data, dl_end, dl_done, &d };
	size_t off;
	int ret = 0;

	d.w = w;
	d.f = f;
	mdir_defer_dir_sync(f->md, true);
	for (off = 0; off < n_uids && ret == 0; off += DOWNLOAD_BATCH) {
		char *err = NULL;

		d.uids = uids + off;
		d.n_uids = n_uids - off < DOWNLOAD_BATCH ? n_uids - off
							 : DOWNLOAD_BATCH;
		if (dl_batch_journal(w, f, &d) < 0) {
			ret = -1;
			break;
		}
		ret = w->r->ops->fetch_bodies(w->r, d.uids, d.n_uids, &h, &err);
		ret = dl_batch_finish(w, &d, ret < 0 ? -1 : 0, err);
	}
	mdir_defer_dir_sync(f->md, false);
	return dl_release(f, &d, ret);
}

/*
 * One batch of downloads whose answers the next folder's gather reads
 * first (its SELECT and FETCH of new headers go in the same flight,
 * imap_fetch_bodies_start()): a round trip less per folder a connection
 * gathers. The journal is written before the FETCH goes out, as for any
 * download; folder_lead_end() does the rest of execute_downloads().
 */
struct dl_lead {
	struct dl_ctx d;
	struct imap_body_handler h;
	uint32_t *uids;
};

static int downloads_lead(struct worker *w, struct folder *f, uint32_t *uids,
			  size_t n)
{
	struct dl_lead *l;
	char *err = NULL;
	int ret;

	folder_lead_end(w);
	if (n > DOWNLOAD_BATCH || w->r->ops->fetch_bodies_start == NULL) {
		ret = execute_downloads(w, f, uids, n);
		free(uids);
		return ret;
	}
	l = xcalloc(1, sizeof(*l));
	l->uids = uids;
	l->d.w = w;
	l->d.f = f;
	l->d.uids = uids;
	l->d.n_uids = n;
	l->h = (struct imap_body_handler){ dl_begin, dl_data, dl_end, dl_done,
					   &l->d };
	mdir_defer_dir_sync(f->md, true);
	if (dl_batch_journal(w, f, &l->d) < 0) {
		ret = -1;
	} else if (w->r->ops->fetch_bodies_start(w->r, uids, n, &l->h,
						 &err) < 0) {
		ret = dl_batch_finish(w, &l->d, -1, err);
	} else {
		w->dl_lead = l;
		return 0;
	}
	mdir_defer_dir_sync(f->md, false);
	ret = dl_release(f, &l->d, ret);
	free(l->uids);
	free(l);
	return ret;
}

void folder_lead_end(struct worker *w)
{
	struct dl_lead *l = w->dl_lead;
	struct folder *f;
	char *err = NULL;
	int ret;

	if (l == NULL)
		return;
	w->dl_lead = NULL;
	f = l->d.f;
	ret = w->r != NULL ? w->r->ops->fetch_bodies_end(w->r, &err) : -1;
	ret = dl_batch_finish(w, &l->d, ret < 0 ? -1 : 0,
			      ret < 0 && err == NULL ? xstrdup("connection lost")
						     : err);
	mdir_defer_dir_sync(f->md, false);
	(void)dl_release(f, &l->d, ret);
	free(l->uids);
	free(l);
}

struct ul_item {
	struct mdir_reader *rd;
	struct folder *f;
	char *base;
	struct msg_ident id;
	unsigned flags;
	int64_t jid;
	char *error;
};

/* UIDs that belong to known messages (sorted), so a content search never
 * pairs an upload with them. */
static uint32_t *folder_taken_uids(struct folder *f)
{
	uint32_t *t = xcalloc(f->n_pairs + f->n_dl + 1, sizeof(uint32_t));
	size_t i, n = 0;

	for (i = 0; i < f->n_pairs; i++)
		t[n++] = f->pairs[i].m.uid;
	for (i = 0; i < f->n_dl; i++)
		t[n++] = f->dl_uids[i];
	qsort(t, n, sizeof(uint32_t), cmp_u32);
	return t;
}

static long ul_read(void *ctx, void *buf, size_t n)
{
	struct ul_item *it = ctx;
	ssize_t got;
	char *err = NULL;

	if (it->rd == NULL)
		return -1;
	got = mdir_reader_read(it->rd, buf, n, &err);
	if (got < 0) {
		free(it->error);
		it->error = err;
		return -1;
	}
	return (long)got;
}

/*
 * One APPEND batch of the uploads: its files opened and the intent
 * journalled (ul_batch_prepare()), sent (ul_batch_send(), or in the
 * flight of the folder's STOREs: execute_flags()), then recorded
 * (ul_batch_finish()).
 */
struct ul_batch {
	struct ul_item *items;
	struct imap_append_msg *msgs;
	size_t n, m;                /* files asked, files opened */
	bool sent;                  /* on the wire (or refused there) */
	char *error;                /* an APPEND refused in that flight */
	/* answered behind the next operations (late_ok: may be) */
	bool late_ok;
	struct imap_tail *tail;     /* answers not collected yet */
	bool late;                  /* recorded after the next folder's
				       flight: another folder is selected */
	bool own_ok;                /* own: the folder after the flight */
	struct imap_own_state own;
};

static void ul_batch_release(struct ul_batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		if (b->items[i].rd)
			mdir_reader_close(&b->items[i].rd);
		free(b->items[i].base);
		free(b->items[i].error);
	}
	free(b->items);
	free(b->msgs);
	free(b->error);
	memset(b, 0, sizeof(*b));
}

/* The answers of a batch sent without waiting for them: read now (the
 * ones an operation since has not read) into its messages. */
static void ul_batch_collect(struct worker *w, struct ul_batch *b)
{
	char *aerr = NULL, *err = NULL;

	if (b->tail == NULL)
		return;
	if (w->r == NULL) {
		b->tail = NULL;   /* went with its connection */
		return;
	}
	if (w->r->ops->tail_end(w->r, &b->tail, &aerr, &b->own, &b->own_ok,
				&err) < 0 && b->error == NULL) {
		b->error = err;
		err = NULL;
	}
	if (aerr != NULL && b->error == NULL) {
		b->error = aerr;
		aerr = NULL;
	}
	free(aerr);
	free(err);
}

/* Open the batch of the uploads from off on and journal its intent. */
static int ul_batch_prepare(struct worker *w, struct folder *f, size_t off,
			    struct ul_batch *b)
{
	size_t i, n = f->n_ul - off < UPLOAD_BATCH ? f->n_ul - off
						  : UPLOAD_BATCH;
	char *err = NULL;
	int ret = 0;

	memset(b, 0, sizeof(*b));
	b->n = n;
	b->items = xcalloc(n, sizeof(*b->items));
	b->msgs = xcalloc(n, sizeof(*b->msgs));
	/* open every file of the batch and learn its identity */
	for (i = 0; i < n; i++) {
		struct mdir_entry *le = &f->lents[f->ul_idx[off + i]];
		struct ul_item *it = &b->items[b->m];
		int r;

		r = mdir_msg_ident(f->md, le->base, &it->id, &err);
		if (r == 0)
			r = mdir_reader_open(f->md, le->base, &it->rd, &err);
		if (r == 1) {
			/* gone since the scan: a deletion for next time */
			continue;
		}
		if (r < 0) {
			log_warn("%s: cannot read '%s': %s", f->name,
				 le->base, err);
			FREE_AND_NULL(err);
			f->exit_code = sync_exit_merge(f->exit_code,
						       SYNC_EXIT_FAIL);
			continue;
		}
		it->f = f;
		it->base = xstrdup(le->base);
		it->flags = mdir_reader_flags(it->rd);
		b->msgs[b->m].flags = it->flags;
		b->msgs[b->m].date = (int64_t)mdir_reader_mtime(it->rd);
		b->msgs[b->m].size = mdir_reader_size(it->rd);
		it->id.size = b->msgs[b->m].size;
		b->msgs[b->m].read = ul_read;
		b->msgs[b->m].ctx = it;
		b->m++;
	}
	/* intent: these files may reach the server from here on */
	if (b->m > 0 && state_begin(w->st) == 0) {
		for (i = 0; i < b->m; i++) {
			struct journal_entry je = { 0 };
			struct ul_item *it = &b->items[i];

			je.folder_id = f->sf.id;
			je.op = J_APPEND;
			je.base = it->base;
			je.aux = f->sel.uidnext;
			je.flags = it->flags;
			je.size = it->id.size;
			je.msgid = it->id.msgid[0] ? it->id.msgid : NULL;
			memcpy(je.hhash, it->id.hhash, 16);
			je.have_hhash = true;
			if (state_journal_add(w->st, &je) < 0)
				break;
			it->jid = je.id;
		}
		if (i < b->m || state_commit(w->st) < 0) {
			folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
			(void)state_rollback(w->st);
			ret = -1;
		}
	} else if (b->m > 0) {
		folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
		ret = -1;
	}
	sync_crash_point("upload journal written");
	return ret;
}

static int ul_batch_send(struct worker *w, struct folder *f,
			 struct ul_batch *b)
{
	uint32_t uv = 0;
	char *err = NULL;

	b->sent = true;
	if (b->m > 0 &&
	    w->r->ops->append(w->r, f->name, b->msgs, b->m, &uv, &err) < 0) {
		folder_fail(f, SYNC_EXIT_FAIL, "%s: upload failed: %s",
			    f->name, err);
		free(err);
		return -1;
	}
	sync_crash_point("messages appended");
	return 0;
}

/* Record what of a sent batch reached the server, in one transaction
 * (until it commits, the journal covers it); without UIDPLUS the new
 * UIDs are found again by content, all of the batch in two commands. */
static int ul_batch_finish(struct worker *w, struct folder *f,
			   struct ul_batch *b)
{
	struct engine *e = w->e;
	char *err = NULL;
	size_t i;

	ul_batch_collect(w, b);
	if (b->m == 0)
		return 0;
	/* the search needs the folder selected, not the next one */
	if (w->r != NULL && !b->late && !w->r->ops->broken(w->r)) {
		struct msg_ident *ids = xcalloc(b->m, sizeof(*ids));
		uint32_t *found = xcalloc(b->m, sizeof(uint32_t));
		size_t *which = xcalloc(b->m, sizeof(size_t));
		uint32_t *taken = folder_taken_uids(f);
		size_t n_ids = 0, n_taken = f->n_pairs + f->n_dl;

		for (i = 0; i < b->m; i++)
			if (b->msgs[i].ok_r && b->msgs[i].uid_r == 0) {
				ids[n_ids] = b->items[i].id;
				which[n_ids++] = i;
			}
		if (n_ids > 0 &&
		    remote_find_idents(w, ids, n_ids, f->sel.uidnext,
				       taken, n_taken, found, &err) < 0) {
			log_warn("%s: cannot find uploaded messages again: %s",
				 f->name, err);
			FREE_AND_NULL(err);
		}
		for (i = 0; i < n_ids; i++)
			b->msgs[which[i]].uid_r = found[i];
		free(ids);
		free(found);
		free(which);
		free(taken);
	}
	if (state_begin(w->st) < 0)
		goto fail;
	for (i = 0; i < b->m; i++) {
		struct ul_item *it = &b->items[i];
		struct state_msg sm = { 0 };
		uint32_t uid = b->msgs[i].uid_r;

		if (!b->msgs[i].ok_r || uid == 0)
			continue;   /* the journal resolves it next run */
		pair_row_ident(&sm, uid, it->base, it->flags, &it->id);
		if (state_msg_put(w->st, f->sf.id, &sm) < 0 ||
		    state_journal_remove(w->st, it->jid) < 0) {
			(void)state_rollback(w->st);
			goto fail;
		}
		f->stats.pushed_new++;
		f->stats.bytes_up += it->id.size;
		engine_progress(e, f, 1, it->id.size);
	}
	if (state_commit(w->st) < 0) {
		(void)state_rollback(w->st);
		goto fail;
	}
	sync_crash_point("uploads committed");
	return 0;
fail:
	folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
	return -1;
}

/* The uploads, a batch at a time; first (or NULL) is the first batch,
 * prepared and maybe sent already with the STOREs. */
static int execute_uploads(struct worker *w, struct folder *f,
			   struct ul_batch *first)
{
	size_t off = 0;
	int ret = 0;

	if (first != NULL) {
		if (!first->sent)
			ret = ul_batch_send(w, f, first);
		if (ret == 0)
			ret = ul_batch_finish(w, f, first);
		if (ret == 0 && first->error != NULL) {
			/* refused in the flight of the STOREs: recorded
			 * what went, the journal has the rest */
			folder_fail(f, SYNC_EXIT_FAIL, "%s: upload failed: %s",
				    f->name, first->error);
			ret = -1;
		}
		off = first->n;
		ul_batch_release(first);
	}
	for (; off < f->n_ul && ret == 0; off += UPLOAD_BATCH) {
		struct ul_batch b;

		ret = ul_batch_prepare(w, f, off, &b);
		if (ret == 0)
			ret = ul_batch_send(w, f, &b);
		if (ret == 0)
			ret = ul_batch_finish(w, f, &b);
		ul_batch_release(&b);
	}
	return ret;
}

/* UID lists for one STORE per (flag, +/-). */
struct store_plan {
	uint32_t *uids[MF_COUNT][2];
	size_t n[MF_COUNT][2], a[MF_COUNT][2];
};

/* UIDs of the pairs to delete on the server, as a set (NULL: none). */
static char *server_deletions(const struct folder *f)
{
	uint32_t *uids = xcalloc(f->n_pairs + 1, sizeof(uint32_t));
	size_t n = 0, i;
	char *set = NULL;

	for (i = 0; i < f->n_pairs; i++)
		if (f->pairs[i].act == ACT_DEL_SERVER)
			uids[n++] = f->pairs[i].m.uid;
	if (n > 0)
		set = imap_uidset_make(uids, n);
	free(uids);
	return set;
}

/* Server flags, then local renames and the state. With mark_del the
 * messages to delete on the server are marked \Deleted in the same
 * flight of STOREs (execute_deletions() then only expunges them): one
 * round trip less. A run killed in between finds them marked, which the
 * plan takes for the deletion it is. */
static int execute_flags(struct worker *w, struct folder *f, bool mark_del,
			 struct ul_batch *ul, bool *expunged_r)
{
	struct store_plan sp;
	struct imap_store_op ops[MF_COUNT * 2 + 1];
	char *sets[MF_COUNT * 2 + 1];
	size_t n_ops = 0, n_flag_ops, i, b;
	char *err = NULL;
	bool any = false;
	int ret = 0;

	memset(&sp, 0, sizeof(sp));
	for (i = 0; i < f->n_pairs; i++) {
		struct pair *p = &f->pairs[i];
		unsigned s = p->sv == SRV_FLAGS ? p->sflags : p->m.flags;
		unsigned diff;

		if (p->act != ACT_FLAGS || p->m.uid == 0)
			continue;
		diff = s ^ p->new_s;
		for (b = 0; b < MF_COUNT; b++) {
			int add;

			if (!(diff & (1u << b)))
				continue;
			add = (p->new_s >> b) & 1;
			ALLOC_GROW(sp.uids[b][add], sp.n[b][add] + 1, sp.a[b][add]);
			sp.uids[b][add][sp.n[b][add]++] = p->m.uid;
		}
		if (diff)
			f->stats.pushed_flags++;
	}
	for (b = 0; b < MF_COUNT; b++) {
		int add;

		for (add = 0; add < 2; add++) {
			if (sp.n[b][add] == 0)
				continue;
			sets[n_ops] = imap_uidset_make(sp.uids[b][add], sp.n[b][add]);
			ops[n_ops].uidset = sets[n_ops];
			ops[n_ops].add = add;
			ops[n_ops].flags = 1u << b;
			ops[n_ops].unchangedsince = 0;
			n_ops++;
		}
	}
	n_flag_ops = n_ops;
	*expunged_r = false;
	if (mark_del && (sets[n_ops] = server_deletions(f)) != NULL) {
		ops[n_ops].uidset = sets[n_ops];
		ops[n_ops].add = true;
		ops[n_ops].flags = MF_DELETED;
		ops[n_ops].unchangedsince = 0;
		n_ops++;
	}
	/* with the deletions' UID EXPUNGE in the same flight where the
	 * server side can: execute_deletions() then has only the local
	 * side and the state left; and with the first uploads (ul) behind
	 * them where it can, which execute_uploads() then records */
	if (ul != NULL && ul->m > 0 && n_ops > 0 &&
	    (n_ops == n_flag_ops || w->r->ops->store_expunge != NULL)) {
		const char *del = n_ops > n_flag_ops ? sets[n_flag_ops] : NULL;
		uint32_t uv = 0;
		int r;

		ul->sent = true;
		if (ul->late_ok &&
		    w->r->ops->store_expunge_append_start != NULL)
			r = w->r->ops->store_expunge_append_start(
				w->r, ops, n_ops, del, f->name, ul->msgs,
				ul->m, &ul->tail, &ul->error, &err);
		else
			r = w->r->ops->store_expunge_append(
				w->r, ops, n_ops, del, f->name, ul->msgs,
				ul->m, &uv, &ul->error, &err);
		if (r < 0) {
			folder_fail(f, SYNC_EXIT_FAIL,
				    "%s: cannot store flags%s on the server: %s",
				    f->name, del ? " and delete messages" : "",
				    err);
			free(err);
			ret = -1;
		} else if (del != NULL) {
			*expunged_r = true;
		}
		sync_crash_point("messages appended");
	} else if (n_ops > n_flag_ops && w->r->ops->store_expunge != NULL) {
		if (w->r->ops->store_expunge(w->r, ops, n_ops, sets[n_flag_ops],
					     &err) < 0) {
			folder_fail(f, SYNC_EXIT_FAIL,
				    "%s: cannot store flags and delete "
				    "messages on the server: %s", f->name, err);
			free(err);
			ret = -1;
		} else {
			*expunged_r = true;
		}
	} else if (n_ops > 0 &&
		   w->r->ops->store(w->r, ops, n_ops, &err) < 0) {
		folder_fail(f, SYNC_EXIT_FAIL, "%s: cannot store flags: %s",
			    f->name, err);
		free(err);
		ret = -1;
	}
	for (i = 0; i < n_ops; i++)
		free(sets[i]);
	for (b = 0; b < MF_COUNT; b++) {
		free(sp.uids[b][0]);
		free(sp.uids[b][1]);
	}
	if (ret < 0)
		return -1;
	if (n_flag_ops > 0)
		sync_crash_point("server flags stored");

	/* local renames, then the new common state */
	for (i = 0; i < f->n_pairs; i++) {
		struct pair *p = &f->pairs[i];
		unsigned l = p->lidx != -1 ? p->lflags : p->m.flags;
		int r;

		if (p->act != ACT_FLAGS || l == p->new_l || p->m.uid == 0)
			continue;
		if (p->lidx == LOCAL_SAME)
			mdir_hint(f->md, p->m.base, p->m.flags);
		r = mdir_set_flags(f->md, p->m.base, p->new_l, &err);
		f->local_dirty = true;
		if (r < 0) {
			folder_fail(f, SYNC_EXIT_FAIL, "%s: %s", f->name, err);
			free(err);
			return -1;
		}
		if (r == 0)
			f->stats.pulled_flags++;
		else
			p->new_state = p->m.flags;   /* vanished meanwhile */
	}
	for (i = 0; i < f->n_pairs; i++) {
		struct pair *p = &f->pairs[i];

		if (p->act != ACT_FLAGS || p->new_state == p->m.flags ||
		    p->m.uid == 0)
			continue;
		if (!any) {
			if (state_begin(w->st) < 0)
				goto state_fail;
			any = true;
		}
		if (state_msg_set_flags(w->st, f->sf.id, p->m.uid,
					p->new_state) < 0)
			goto state_fail_rb;
		p->m.flags = p->new_state;
	}
	if (any && state_commit(w->st) < 0)
		goto state_fail_rb;
	if (any)
		sync_crash_point("flags committed");
	return 0;
state_fail_rb:
	folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
	(void)state_rollback(w->st);
	return -1;
state_fail:
	folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
	return -1;
}

/* Drop the pairs with one of the given actions from the state in one
 * transaction. */
static int forget_pairs(struct worker *w, struct folder *f, int act1, int act2)
{
	size_t i;
	bool any = false;

	for (i = 0; i < f->n_pairs; i++) {
		struct pair *p = &f->pairs[i];

		if ((int)p->act != act1 && (int)p->act != act2)
			continue;
		if (!any) {
			if (state_begin(w->st) < 0)
				goto fail;
			any = true;
		}
		if (state_msg_delete(w->st, f->sf.id, p->m.uid) < 0)
			goto fail_rb;
	}
	if (any && state_commit(w->st) < 0)
		goto fail_rb;
	if (any)
		sync_crash_point("pairs forgotten");
	return 0;
fail_rb:
	(void)state_rollback(w->st);
fail:
	folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
	return -1;
}

static int execute_deletions(struct worker *w, struct folder *f, bool marked,
			     bool expunged)
{
	char *set = server_deletions(f);
	size_t n = 0, i;
	char *err = NULL;

	for (i = 0; i < f->n_pairs; i++)
		if (f->pairs[i].act == ACT_DEL_SERVER)
			n++;
	if (set != NULL && expunged) {
		/* gone with the flight of the STOREs (execute_flags()) */
		free(set);
		f->stats.pushed_deletions += (unsigned)n;
		sync_crash_point("server messages expunged");
	} else if (set != NULL) {
		int r = marked ? w->r->ops->expunge_marked(w->r, set, &err)
			       : w->r->ops->expunge(w->r, set, &err);

		free(set);
		if (r < 0) {
			folder_fail(f, SYNC_EXIT_FAIL,
				    "%s: cannot delete messages on the server: %s",
				    f->name, err);
			free(err);
			return -1;
		}
		f->stats.pushed_deletions += (unsigned)n;
		sync_crash_point("server messages expunged");
	}
	for (i = 0; i < f->n_pairs; i++) {
		struct pair *p = &f->pairs[i];
		int r;

		if (p->act != ACT_DEL_LOCAL)
			continue;
		if (p->lidx == LOCAL_SAME)
			mdir_hint(f->md, p->m.base, p->m.flags);
		r = mdir_remove(f->md, p->m.base, &err);
		f->local_dirty = true;
		if (r < 0) {
			folder_fail(f, SYNC_EXIT_FAIL, "%s: %s", f->name, err);
			free(err);
			return -1;
		}
		f->stats.pulled_deletions++;
		sync_crash_point("local message removed");
	}
	/* Both sides are now without these: forget them, together with
	 * the pairs that are to be restored as new messages. */
	if (forget_pairs(w, f, ACT_DEL_SERVER, ACT_DEL_LOCAL) < 0 ||
	    forget_pairs(w, f, ACT_FORGET, ACT_FORGET) < 0 ||
	    forget_pairs(w, f, ACT_REUPLOAD, ACT_REDOWNLOAD) < 0)
		return -1;
	return 0;
}

/* The local bookmark after a run that changed the folder: wait until
 * its mtimes are older than the timestamp granularity, then check that
 * the folder holds exactly what the state now says (names and flags). If
 * so, the next run may skip it while those mtimes stay; otherwise it
 * looks again. This makes the run after a change as cheap as any no-op
 * run, without ever trusting an mtime a reader's change could hide behind. */
struct verify_ctx {
	const struct mdir_entry *ents;
	size_t n, i;
};

static int verify_next(void *ctx, const char *base, unsigned flags)
{
	struct verify_ctx *v = ctx;
	const struct mdir_entry *e;

	if (v->i >= v->n)
		return 1;
	e = &v->ents[v->i];
	if (strcmp(base, e->base) != 0 ||
	    (flags & MF_ALL) != (e->flags & MF_ALL))
		return 1;
	v->i++;
	return 0;
}

static void verify_local(struct worker *w, struct folder *f)
{
	int64_t c2, n2, c3, n3, age;
	struct mdir_entry *ents = NULL;
	size_t n_ents = 0, i;
	struct verify_ctx v;
	char *err = NULL;

	f->cur_mtime = f->new_mtime = 0;
	if (mdir_mtimes(f->md, &c2, &n2, &err) < 0)
		goto out;
	age = wall_ns() - (c2 > n2 ? c2 : n2);
	if (age < MTIME_SETTLE_NS) {
		sleep_until_wall_ns((c2 > n2 ? c2 : n2) + MTIME_SETTLE_NS);
		if (mdir_mtimes(f->md, &c2, &n2, &err) < 0)
			goto out;
		if (wall_ns() - (c2 > n2 ? c2 : n2) < MTIME_SETTLE_NS)
			goto out;   /* someone else is changing it right now */
	}
	/* the run's own lists are not needed any more: free them before
	 * the folder is read once more */
	if (f->lents) {
		mdir_entries_free(f->lents, f->n_lents);
		f->lents = NULL;
		f->n_lents = 0;
	}
	for (i = 0; i < f->n_pairs; i++) {
		state_msg_release(&f->pairs[i].m);
		FREE_AND_NULL(f->pairs[i].src_base);
	}
	f->n_pairs = 0;
	snew_free(f);
	FREE_AND_NULL(f->dl_uids);
	f->n_dl = 0;
	mdir_drop_cache(f->md);
	if (mdir_list(f->md, &ents, &n_ents, &err) < 0)
		goto out;
	/* both in strcmp order of base: one merge */
	v.ents = ents;
	v.n = n_ents;
	v.i = 0;
	if (state_msgs_each_base(w->st, f->sf.id, verify_next, &v) != 0 ||
	    v.i != n_ents)
		goto out;
	if (mdir_mtimes(f->md, &c3, &n3, &err) == 0 && c3 == c2 &&
	    n3 == n2) {
		f->cur_mtime = c2;
		f->new_mtime = n2;
	}
out:
	free(err);
	if (ents)
		mdir_entries_free(ents, n_ents);
}

static int save_folder_row(struct worker *w, struct folder *f, bool complete)
{
	/* While another folder still has to record a move out of this one,
	 * store no bookmark: a run killed before it does must look at this
	 * folder in full again. The real bookmark follows after all folders
	 * ran (folder_save_deferred_bookmark). */
	bool defer = complete && f->moves_out > 0;

	if (f->selected) {
		f->sf.uidvalidity = f->sel.uidvalidity;
		/* advance the server bookmark only when every change it covers
		 * was replayed; otherwise the next run looks again */
		f->sf.uidnext = complete && !defer ? f->sel.uidnext : 0;
		f->sf.highestmodseq = complete && !defer ? f->sel.highestmodseq : 0;
		f->sf.server_count = f->sel.exists;
	} else if (f->server_unchanged && f->have_status) {
		f->sf.server_count = f->stat.messages;
		if (defer) {
			f->sf.uidnext = 0;
			f->sf.highestmodseq = 0;
		}
	}
	/* a folder this run changed keeps no mtimes until folder_verify()
	 * has read it once more, after the run */
	if (f->md != NULL && complete && !defer && f->local_dirty) {
		f->verify_pending = true;
		f->cur_mtime = f->new_mtime = 0;
	}
	if (f->md != NULL) {
		f->sf.cur_mtime = complete && !defer ? f->cur_mtime : 0;
		f->sf.new_mtime = complete && !defer ? f->new_mtime : 0;
	}
	f->sf.last_sync = time(NULL);
	f->bookmark_deferred = defer;
	if (state_folder_put(w->st, &f->sf) < 0) {
		folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
		return -1;
	}
	return 0;
}

void folder_save_deferred_bookmark(struct worker *w, struct folder *f)
{
	if (!f->bookmark_deferred || f->status != FOLDER_OK ||
	    atomic_load(&f->moves_out_done) != f->moves_out)
		return;
	if (f->selected) {
		f->sf.uidnext = f->sel.uidnext;
		f->sf.highestmodseq = f->sel.highestmodseq;
	} else if (f->server_unchanged && f->have_status) {
		f->sf.uidnext = f->stat.uidnext;
		f->sf.highestmodseq = f->stat.highestmodseq;
	}
	/* files moved out of it changed its directories too */
	if (f->md != NULL) {
		f->verify_pending = true;
		f->cur_mtime = f->new_mtime = 0;
		f->sf.cur_mtime = f->sf.new_mtime = 0;
	}
	if (state_folder_put(w->st, &f->sf) < 0)
		log_warn("%s: %s", f->name, state_error(w->st));
	else
		f->bookmark_deferred = false;
}

static bool verify_wanted(const struct folder *f)
{
	return f->verify_pending && f->status == FOLDER_OK &&
	       !f->bookmark_deferred && f->md != NULL;
}

int64_t folder_verify_due(const struct folder *f)
{
	int64_t c = 0, n = 0;
	char *err = NULL;

	if (!verify_wanted(f))
		return -1;
	if (mdir_mtimes(f->md, &c, &n, &err) < 0) {
		free(err);
		return -1;
	}
	return (c > n ? c : n) + MTIME_SETTLE_NS;
}

void folder_verify(struct worker *w, struct folder *f)
{
	/* verify_local() waits itself if the folder changed again since */
	if (!verify_wanted(f))
		return;
	f->verify_pending = false;
	verify_local(w, f);
	if (f->cur_mtime == 0)
		return;
	f->sf.cur_mtime = f->cur_mtime;
	f->sf.new_mtime = f->new_mtime;
	if (state_folder_put(w->st, &f->sf) < 0)
		log_debug("%s: %s", f->name, state_error(w->st));
}

/* The folder row before anything is recorded under it, with no bookmark:
 * a crash from here on means a full comparison next time, under this
 * UIDVALIDITY. */
int folder_ensure_row(struct worker *w, struct folder *f)
{
	if (f->sf.id != 0 &&
	    !(f->selected && f->sf.uidvalidity != f->sel.uidvalidity))
		return 0;
	if (f->selected)
		f->sf.uidvalidity = f->sel.uidvalidity;
	f->sf.uidnext = 0;
	f->sf.highestmodseq = 0;
	if (state_folder_put(w->st, &f->sf) < 0) {
		folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
		return -1;
	}
	f->in_state = true;
	return 0;
}

/*
 * The execute phase's SELECT, in the flight of the folder's first
 * command when this run has read its UIDVALIDITY: selected by the
 * gather, or unchanged on the server by the STATUS precheck (whose
 * UIDNEXT is the SELECT's still: nothing was moved into it, see
 * folder_execute()). Else a SELECT of its own (worker_select()).
 */
static int select_for_execute(struct worker *w, struct folder *f,
			      char **error_r)
{
	uint32_t uidvalidity = folder_fresh_uidvalidity(f);

	if (uidvalidity == 0 || (!f->selected && !f->server_unchanged))
		return worker_select(w, f, error_r);
	if (worker_select_ahead(w, f->name, uidvalidity, error_r) < 0)
		return -1;
	if (!f->selected) {
		f->sel.uidnext = f->stat.uidnext;
		f->sel.uidvalidity = f->stat.uidvalidity;
	}
	return 0;
}

int folder_execute(struct worker *w, struct folder *f)
{
	struct engine *e = w->e;
	char *err = NULL;
	bool server_work, mark_del, expunged = false, moved = false;
	struct ul_batch first, *ul = NULL;
	size_t i;
	int ret = 0;

	if (f->status != FOLDER_OK)
		return -1;
	if (e->o->dry_run) {
		report_plan(e, f);
		return 0;
	}
	if (f->untouched)
		return 0;   /* nothing to do, nothing to record */
	server_work = folder_server_work(f);
	/* messages moved in by another connection in the moves phase are
	 * not in this connection's view of the folder until it selects it
	 * again; bookmark_select() does, and moves the bookmark past them
	 * (and past the ones moved out, unless this connection moved them
	 * and has the folder selected still) */
	for (i = 0; i < f->n_pairs && !moved; i++)
		moved = f->pairs[i].mv == MV_SERVER && f->pairs[i].done &&
			f->pairs[i].m.uid != 0;
	if (!moved && f->n_outs > 0 &&
	    (w->selected == NULL || strcmp(w->selected, f->name) != 0))
		for (i = 0; i < f->n_outs && !moved; i++)
			moved = f->outs[i].t->pairs[f->outs[i].pi].done;
	if (moved && bookmark_select_ahead(w, f, &err) < 0) {
		folder_fail(f, SYNC_EXIT_FAIL, "%s: %s", f->name, err);
		free(err);
		return -1;
	}
	if (!moved && server_work && select_for_execute(w, f, &err) < 0) {
		folder_fail(f, SYNC_EXIT_FAIL, "%s: %s", f->name, err);
		free(err);
		return -1;
	}
	bookmark_moved_out(w, f);
	if (folder_ensure_row(w, f) < 0)
		return -1;
	/* the \Deleted of the server deletions rides with the flags */
	mark_del = server_work && w->r != NULL &&
		   w->r->ops->expunge_marked != NULL &&
		   (w->r->ops->caps(w->r) & IMAP_CAP_UIDPLUS);
	if (moves_execute(w, f) < 0 || late_execute(w, f) < 0)
		ret = -1;
	/* the first uploads go in the flight of the STOREs (but not
	 * while copies may still turn files into uploads or not) */
	if (ret == 0 && server_work && f->n_ul > 0 && f->n_copies == 0 &&
	    w->r != NULL && w->r->ops->store_expunge_append != NULL) {
		if (ul_batch_prepare(w, f, 0, &first) < 0)
			ret = -1;
		ul = &first;
		/* the flight is all of the folder's server work: its
		 * uploads may be answered behind the next folder's */
		first.late_ok = f->n_ul <= UPLOAD_BATCH && f->n_dl == 0;
	}
	if (ret == 0 &&
	    (execute_flags(w, f, mark_del, ul, &expunged) < 0 ||
	     execute_deletions(w, f, mark_del, expunged) < 0))
		ret = -1;
	if (ret == 0 && ul != NULL && ul->tail != NULL) {
		f->ul_late = xmalloc(sizeof(*f->ul_late));
		*f->ul_late = first;
		f->ul_late->late = true;
		return 1;
	}
	if (ret == 0 && f->n_copies > 0 && copies_execute(w, f) < 0)
		ret = -1;
	if (ret == 0 && f->n_dl > 0 &&
	    execute_downloads(w, f, f->dl_uids, f->n_dl) < 0)
		ret = -1;
	if (ret == 0 && f->n_ul > 0) {
		if (execute_uploads(w, f, ul) < 0)
			ret = -1;
		ul = NULL;   /* released there */
	}
	if (ul != NULL) {
		/* a step after its flight failed: what reached the server
		 * is recorded all the same (the journal has the rest) */
		if (ul->sent)
			(void)ul_batch_finish(w, f, ul);
		ul_batch_release(ul);
	}
	/* a SELECT sent ahead that no command followed: its answer now,
	 * before the bookmark (bookmark_select_ahead()) */
	if (w->r != NULL && w->r->ops->flush != NULL &&
	    w->r->ops->flush(w->r, &err) < 0) {
		if (ret == 0)
			folder_fail(f, SYNC_EXIT_FAIL, "%s: %s", f->name, err);
		FREE_AND_NULL(err);
		ret = -1;
	}
	if (ret < 0)
		worker_forget_selected(w);
	if (ret == 0)
		bookmark_own_changes(w, f);
	if (save_folder_row(w, f, ret == 0 && f->status == FOLDER_OK &&
			    !f->incomplete) < 0)
		ret = -1;
	return ret;
}

void folder_late_collect(struct worker *w)
{
	struct folder *f = w->exec_late;

	if (f != NULL && f->ul_late != NULL)
		ul_batch_collect(w, f->ul_late);
}

/* The rest of folder_execute() once it returned 1: its uploads
 * recorded, the bookmark from the folder as its flight left it (another
 * one is selected by now). */
int folder_execute_end(struct worker *w, struct folder *f)
{
	struct ul_batch *ul = f->ul_late;
	struct imap_own_state own;
	bool own_ok;
	int ret = 0;

	f->ul_late = NULL;
	if (w->exec_late == f)
		w->exec_late = NULL;
	if (ul == NULL)
		return -1;
	ul_batch_collect(w, ul);
	own = ul->own;
	own_ok = ul->own_ok;
	if (execute_uploads(w, f, ul) < 0)
		ret = -1;
	free(ul);
	if (ret == 0 && own_ok)
		bookmark_own_state(f, &own);
	if (save_folder_row(w, f, ret == 0 && f->status == FOLDER_OK &&
			    !f->incomplete) < 0)
		ret = -1;
	return ret;
}
