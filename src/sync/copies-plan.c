/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * copies-plan.c - a message that appears in another folder while it stays
 * where it was is a copy, replayed without its body crossing the wire:
 *   server copy: a new server message whose identity (size, Message-ID,
 *                header hash) a pair of any folder has is made locally
 *                from that pair's file, by a hard link (`copies: link`)
 *                or a local copy (`copies: copy`), under a name and with
 *                flags of its own;
 *   local copy:  a new local file whose identity a pair of any folder has
 *                (a pair the server still holds) becomes UID COPY from
 *                that folder, not APPEND.
 * Matching runs in the plan phase, after the moves took what they match,
 * against the state database (the pairs of every folder, also of those
 * this run does not even load). A copy that cannot be made (the source
 * file went away, the server refused the COPY) falls back to the download
 * or upload the message would have had anyway.
 *
 * Crash safety: the steps reuse the intents of the transfers they stand
 * for. A local copy is journalled as a J_DOWNLOAD of its UID, so a run
 * killed between the link and the state commit is finished by recovery,
 * which pairs the linked file by content. A server copy is journalled as
 * a J_APPEND of the local file, whose recovery finds the new UID by
 * content (and uploads the file should the COPY never have happened).
 */
#include "common.h"
#include "sync/sync-private.h"
#include "sync/copies-private.h"
#include "util/log.h"

/* ---- gather ---- */

bool copies_gmail(struct worker *w)
{
	return w->e->a->gmail ||
	       (w->r != NULL && (w->r->ops->caps(w->r) & IMAP_CAP_XGM_EXT1));
}

/* Identities the early downloads of this run took (folder.c downloads a
 * new server message of unknown content while its folder is selected):
 * a hash set, open addressing with linear probing, kept at most half
 * full. A first sync of a big Gmail account claims tens of thousands. */
/*
 * The claims hold a 128-bit digest of each message's key, not the
 * identity: two messages whose digests collide (2^-64) only make the
 * second wait for the plan, which compares in full.
 */
struct claim_key {
	uint64_t a, b;   /* b is odd: (0, 0) marks a free slot */
};

struct copy_claims {
	pthread_mutex_t lock;
	struct claim_key *v;   /* slots */
	size_t n, cap;         /* cap: a power of two, or 0 */
};

/*
 * Which new messages are one, to download it once. Gmail's X-GM-MSGID
 * names a message whatever its labels, and two of them are two messages
 * even where size and header agree (a draft saved twice): the key is the
 * X-GM-MSGID. An EMAILID tells less: one EMAILID is one content, but a
 * server gives a message appended twice two of them, so content decides
 * (an equal EMAILID implies an equal content anyway).
 */
static bool is_gm(const struct msg_ident *id)
{
	return strncmp(id->sid, "gm:", 3) == 0;
}

static bool same_msg(const struct msg_ident *a, const struct msg_ident *b)
{
	if (is_gm(a) || is_gm(b))
		return strcmp(a->sid, b->sid) == 0;
	return ident_equal(a, b);
}

static uint64_t fnv1a(const char *p, uint64_t h)
{
	for (; *p; p++)
		h = (h ^ (unsigned char)*p) * UINT64_C(0x100000001b3);
	return h;
}

/* Equal for messages same_msg() takes for one. hhash is a SHA-256
 * prefix: its bytes are hash enough. */
static struct claim_key claim_key_of(const struct msg_ident *id)
{
	struct claim_key k;

	if (is_gm(id)) {
		k.a = fnv1a(id->sid, UINT64_C(0xcbf29ce484222325));
		k.b = fnv1a(id->sid, UINT64_C(0x84222325cbf29ce4)) << 1;
	} else {
		memcpy(&k.a, id->hhash, 8);
		memcpy(&k.b, id->hhash + 8, 8);
		k.a ^= id->size * UINT64_C(0x9e3779b97f4a7c15);
		k.b ^= fnv1a(id->msgid, UINT64_C(0xcbf29ce484222325)) << 1;
	}
	k.b |= 1;
	return k;
}

static struct claim_key *claims_slot(struct claim_key *v, size_t cap,
				     struct claim_key k)
{
	size_t i = (size_t)(k.a ^ (k.a >> 31)) & (cap - 1);

	while (v[i].b != 0 && (v[i].a != k.a || v[i].b != k.b))
		i = (i + 1) & (cap - 1);
	return &v[i];
}

static void claims_grow(struct copy_claims *cc)
{
	size_t cap = cc->cap ? cc->cap * 2 : 1024, i;
	struct claim_key *v = xcalloc(cap, sizeof(*v));

	for (i = 0; i < cc->cap; i++)
		if (cc->v[i].b != 0)
			*claims_slot(v, cap, cc->v[i]) = cc->v[i];
	free(cc->v);
	cc->v = v;
	cc->cap = cap;
}

bool copies_claim_early(struct engine *e, const struct msg_ident *id)
{
	struct copy_claims *cc;
	struct claim_key k = claim_key_of(id), *slot;
	bool first;

	pthread_mutex_lock(&e->lock);
	if (e->copy_claims == NULL) {
		e->copy_claims = xcalloc(1, sizeof(*e->copy_claims));
		pthread_mutex_init(&e->copy_claims->lock, NULL);
	}
	cc = e->copy_claims;
	pthread_mutex_unlock(&e->lock);
	pthread_mutex_lock(&cc->lock);
	if ((cc->n + 1) * 2 > cc->cap)
		claims_grow(cc);
	slot = claims_slot(cc->v, cc->cap, k);
	first = slot->b == 0;
	if (first) {
		*slot = k;
		cc->n++;
	}
	pthread_mutex_unlock(&cc->lock);
	return first;
}

static void claims_free(struct engine *e)
{
	if (e->copy_claims == NULL)
		return;
	pthread_mutex_destroy(&e->copy_claims->lock);
	free(e->copy_claims->v);
	FREE_AND_NULL(e->copy_claims);
}

/* ---- plan ---- */

static int cmp_fid(const void *a, const void *b)
{
	const struct fid_ent *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_mv(const void *a, const void *b)
{
	const struct mv_ent *x = a, *y = b;

	if (x->src != y->src)
		return (uintptr_t)x->src < (uintptr_t)y->src ? -1 : 1;
	if (x->src_uid != y->src_uid)
		return x->src_uid < y->src_uid ? -1 : 1;
	return x->mv < y->mv ? -1 : x->mv > y->mv;
}

static int cmp_pair_uid(const void *a, const void *b)
{
	const struct pair *x = *(struct pair *const *)a;
	const struct pair *y = *(struct pair *const *)b;

	return x->m.uid < y->m.uid ? -1 : x->m.uid > y->m.uid;
}

void copies_ix_init(struct copies_ix *ix, struct engine *e)
{
	size_t i, j;

	memset(ix, 0, sizeof(*ix));
	ix->e = e;
	ix->fid = xcalloc(e->n_folders + 1, sizeof(*ix->fid));
	ix->byuid = xcalloc(e->n_folders + 1, sizeof(*ix->byuid));
	ix->n_byuid = xcalloc(e->n_folders + 1, sizeof(*ix->n_byuid));
	for (i = 0; i < e->n_folders; i++) {
		struct folder *b = e->folders[i];

		ix->fid[ix->n_fid].id = b->sf.id;
		ix->fid[ix->n_fid++].idx = i;
		if (b->status != FOLDER_OK || b->untouched)
			continue;
		/* moved-in pairs follow the ones loaded */
		for (j = b->n_pairs; j-- > 0;) {
			struct pair *q = &b->pairs[j];
			struct mv_ent *m;

			if (q->mv == MV_NONE)
				break;
			if (q->mv != MV_LOCAL && q->mv != MV_SERVER)
				continue;
			ALLOC_GROW(ix->mv, ix->n_mv + 1, ix->a_mv);
			m = &ix->mv[ix->n_mv++];
			m->src = q->src;
			m->src_uid = q->src_uid;
			m->mv = (int)q->mv;
			m->q = q;
			m->b = b;
		}
	}
	qsort(ix->fid, ix->n_fid, sizeof(*ix->fid), cmp_fid);
	if (ix->n_mv > 1)
		qsort(ix->mv, ix->n_mv, sizeof(*ix->mv), cmp_mv);
}

void copies_ix_release(struct copies_ix *ix)
{
	size_t i;

	for (i = 0; i < ix->e->n_folders; i++)
		free(ix->byuid[i]);
	free(ix->byuid);
	free(ix->n_byuid);
	free(ix->fid);
	free(ix->mv);
}

/* The folder with this state id, and its index in e->folders. */
static struct folder *folder_by_id(const struct copies_ix *ix, int64_t id,
				   size_t *idx_r)
{
	struct fid_ent key = { id, 0 }, *hit;

	hit = bsearch(&key, ix->fid, ix->n_fid, sizeof(*ix->fid), cmp_fid);
	if (hit == NULL)
		return NULL;
	if (idx_r != NULL)
		*idx_r = hit->idx;
	return ix->e->folders[hit->idx];
}

/* The pair moved in from (s, uid) by moves_plan(), with the folder it is
 * moved to, or NULL. A copy and a move of one message in one run: the
 * copy follows the message. */
static struct pair *moved_to(const struct copies_ix *ix, const struct folder *s,
			     uint32_t uid, int mv, struct folder **b_r)
{
	struct mv_ent key = { s, uid, mv, NULL, NULL }, *hit;

	if (ix->n_mv == 0)
		return NULL;
	hit = bsearch(&key, ix->mv, ix->n_mv, sizeof(*ix->mv), cmp_mv);
	if (hit == NULL)
		return NULL;
	*b_r = hit->b;
	return hit->q;
}

/* The loaded pair with this UID that moves_plan() left in place, of
 * e->folders[fi]. */
static const struct pair *pair_by_uid(struct copies_ix *ix, size_t fi,
				      uint32_t uid)
{
	const struct folder *s = ix->e->folders[fi];
	struct pair key, *kp = &key, **hit;
	size_t i, n = 0;

	if (ix->byuid[fi] == NULL) {
		ix->byuid[fi] = xcalloc(s->n_pairs + 1, sizeof(struct pair *));
		for (i = 0; i < s->n_pairs; i++)
			if (s->pairs[i].mv == MV_NONE)
				ix->byuid[fi][n++] = &s->pairs[i];
		qsort(ix->byuid[fi], n, sizeof(struct pair *), cmp_pair_uid);
		ix->n_byuid[fi] = n;
	}
	key.m.uid = uid;
	hit = bsearch(&kp, ix->byuid[fi], ix->n_byuid[fi], sizeof(struct pair *),
		      cmp_pair_uid);
	return hit != NULL ? *hit : NULL;
}

static struct copy_in *copy_add(struct folder *f)
{
	struct copy_in *c;

	ALLOC_GROW(f->copies, f->n_copies + 1, f->a_copies);
	c = &f->copies[f->n_copies++];
	memset(c, 0, sizeof(*c));
	return c;
}

/* Any pair's file will do: it is looked for when the copy is made. */
static int pull_source(void *ctx, int64_t folder_id, const struct state_msg *m)
{
	struct pull_match *pm = ctx;
	struct folder *s = folder_by_id(pm->ix, folder_id, NULL);

	if (s == NULL || s->path == NULL || m->base == NULL ||
	    !(s->on_local || s->create_local))
		return 0;
	/* the same bytes as far as the header tells, but Gmail says it is
	 * another message: not a copy (see same_msg()) */
	if (strncmp(pm->sid, "gm:", 3) == 0 && m->emailid != NULL &&
	    strncmp(m->emailid, "gm:", 3) == 0 &&
	    strcmp(m->emailid, pm->sid) != 0)
		return 0;
	pm->src = s;
	pm->base = xstrdup(m->base);
	pm->uid = m->uid;
	return 1;
}

int copies_find_source(struct state *st, const struct msg_ident *id,
		       struct pull_match *pm)
{
	int r;

	pm->sid = id->sid;
	if (id->sid[0] != '\0') {
		r = state_msgs_each_emailid(st, id->sid, pull_source, pm);
		if (r != 0)
			return r;
	}
	return state_msgs_each_content(st, id->hhash, id->size, pull_source,
				       pm);
}

void copies_note_identities(struct engine *e, struct worker *w0)
{
	size_t i, j, n = 0;

	if (e->o->dry_run || state_begin(w0->st) < 0)
		goto fail;
	for (i = 0; i < e->n_folders; i++) {
		const struct folder *f = e->folders[i];

		/* after a UIDVALIDITY change a pair's UID may still be one
		 * of the old numbering */
		if (f->sf.id == 0 || f->uidvalidity_changed)
			continue;
		for (j = 0; j < f->n_snew; j++) {
			const struct srv_new *sn = &f->snew[j];

			if (!sn->have_id || sn->id->sid[0] == '\0')
				continue;
			if (state_msg_set_emailid(w0->st, f->sf.id, sn->uid,
						  sn->id->sid) < 0) {
				(void)state_rollback(w0->st);
				goto fail;
			}
			n++;
		}
	}
	if (state_commit(w0->st) < 0) {
		(void)state_rollback(w0->st);
		goto fail;
	}
	return;
fail:
	if (!e->o->dry_run)
		log_debug("cannot record message identities: %s",
			  state_error(w0->st));
}

static const struct srv_new *snew_of(const struct folder *f, uint32_t uid)
{
	size_t lo = 0, hi = f->n_snew;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (f->snew[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < f->n_snew && f->snew[lo].uid == uid ? &f->snew[lo] : NULL;
}

/* A new server message whose content the state does not know: the first
 * of several with one identity is downloaded, the others are made from
 * its file once it is there (copies_execute_deferred). */
struct fresh {
	struct folder *f;
	uint32_t uid;
	unsigned flags;
	const struct msg_ident *id;
	size_t order;
};

struct fresh_list {
	struct fresh *v;
	size_t n, a;
};

static int cmp_fresh(const void *a, const void *b)
{
	const struct fresh *x = a, *y = b;
	int c = strcmp(is_gm(x->id) ? x->id->sid : "",
		       is_gm(y->id) ? y->id->sid : "");

	if (c == 0)
		c = memcmp(x->id->hhash, y->id->hhash, 16);
	if (c == 0)
		c = x->id->size < y->id->size ? -1 : x->id->size > y->id->size;
	if (c == 0)
		c = strcmp(x->id->msgid, y->id->msgid);
	if (c == 0)
		c = x->order < y->order ? -1 : x->order > y->order;
	return c;
}

static void plan_pull(struct copies_ix *ix, struct worker *w0, struct folder *f,
		      struct fresh_list *fl)
{
	size_t i;

	if (f->md == NULL)
		return;
	for (i = 0; i < f->n_dl; i++) {
		const struct srv_new *sn = snew_of(f, f->dl_uids[i]);
		struct pull_match pm = { ix, NULL, NULL, 0, "" };
		struct copy_in *c;
		struct folder *b = NULL;
		int r;

		if (sn == NULL || sn->claimed || !sn->have_id)
			continue;   /* a restore, or no identity: download */
		r = copies_find_source(w0->st, sn->id, &pm);
		if (r < 0) {
			log_debug("%s: %s", f->name, state_error(w0->st));
			continue;
		}
		if (r == 0) {
			ALLOC_GROW(fl->v, fl->n + 1, fl->a);
			fl->v[fl->n].f = f;
			fl->v[fl->n].uid = sn->uid;
			fl->v[fl->n].flags = sn->flags;
			fl->v[fl->n].id = sn->id;
			fl->v[fl->n].order = fl->n;
			fl->n++;
			continue;
		}
		c = copy_add(f);
		c->uid = sn->uid;
		c->flags = sn->flags;
		c->id = *sn->id;
		c->src_path = xstrdup(pm.src->path);
		c->src_base = pm.base;
		/* moved locally in this run (the same name in b) */
		if (moved_to(ix, pm.src, pm.uid, MV_LOCAL, &b) != NULL)
			c->alt_path = xstrdup(b->path);
		log_debug("%s: UID %u is a copy of '%s' in '%s'", f->name,
			  c->uid, c->src_base, pm.src->name);
	}
}

struct push_match {
	struct copies_ix *ix;
	struct folder *src;
	uint32_t uid;
	unsigned sflags;   /* the source's flags on the server */
	struct pair *via;  /* the source is moved there first */
};

/* A pair the server still holds, and keeps this run; its flags there. */
static bool pair_stays_on_server(struct copies_ix *ix, size_t fi, uint32_t uid,
				 unsigned *sflags)
{
	const struct folder *s = ix->e->folders[fi];
	const struct pair *p;

	if (s->untouched)
		return true;   /* nothing changed there on either side */
	if ((p = pair_by_uid(ix, fi, uid)) == NULL)
		return false;
	*sflags = p->sv == SRV_FLAGS ? p->sflags : p->m.flags;
	return p->sv != SRV_GONE && p->act != ACT_DEL_SERVER &&
	       p->act != ACT_MOVED_AWAY && p->act != ACT_FORGET;
}

static int push_source(void *ctx, int64_t folder_id, const struct state_msg *m)
{
	struct push_match *pm = ctx;
	size_t fi;
	struct folder *s = folder_by_id(pm->ix, folder_id, &fi);

	if (s == NULL || s->status != FOLDER_OK || !s->on_server ||
	    s->create_server || s->uidvalidity_changed || m->uid == 0)
		return 0;
	pm->sflags = m->flags;
	if (!pair_stays_on_server(pm->ix, fi, m->uid, &pm->sflags)) {
		struct folder *b = NULL;
		struct pair *q = moved_to(pm->ix, s, m->uid, MV_SERVER, &b);

		/* moved on the server by this run: copied from where it goes
		 * once the moves phase put it there */
		if (q == NULL || b->create_server || !b->on_server)
			return 0;
		pm->via = q;
		pm->sflags = q->sflags;
		s = b;
	}
	pm->src = s;
	pm->uid = m->uid;
	return 1;
}

static void copy_release(struct copy_in *c)
{
	free(c->src_path);
	free(c->alt_path);
	free(c->src_base);
	free(c->src_name);
	free(c->base);
}

static int cmp_push_dup(const void *a, const void *b)
{
	const struct copy_in *x = *(struct copy_in *const *)a;
	const struct copy_in *y = *(struct copy_in *const *)b;
	int c = strcmp(x->src_name, y->src_name);

	if (c == 0)
		c = x->uid < y->uid ? -1 : x->uid > y->uid;
	if (c == 0)
		c = x < y ? -1 : x > y;   /* the first planned wins */
	return c;
}

/* One COPY of a source message per target: a second file with the same
 * content in the folder is uploaded. f->copies[from..] are the pushes
 * plan_push() just added; sorted to find the repeats, not searched. */
static void drop_repeated_pushes(struct folder *f, size_t from)
{
	size_t n = f->n_copies - from, i, k;
	struct copy_in **v;

	if (n < 2)
		return;
	v = xcalloc(n, sizeof(*v));
	for (i = 0; i < n; i++)
		v[i] = &f->copies[from + i];
	qsort(v, n, sizeof(*v), cmp_push_dup);
	for (i = 1; i < n; i++)
		if (v[i]->uid == v[i - 1]->uid &&
		    strcmp(v[i]->src_name, v[i - 1]->src_name) == 0)
			v[i]->push = false;   /* marks it for removal */
	free(v);
	for (i = k = from; i < f->n_copies; i++) {
		if (!f->copies[i].push) {
			copy_release(&f->copies[i]);
			continue;
		}
		if (k != i)
			f->copies[k] = f->copies[i];
		k++;
	}
	f->n_copies = k;
}

static void plan_push(struct copies_ix *ix, struct worker *w0, struct folder *f)
{
	size_t i, from = f->n_copies;

	if (f->md == NULL || !f->on_server || w0->r == NULL ||
	    w0->r->ops->copy == NULL)
		return;
	for (i = 0; i < f->n_ul; i++) {
		size_t li = f->ul_idx[i];
		struct push_match pm = { ix, NULL, 0, 0, NULL };
		struct msg_ident id;
		struct copy_in *c;
		char *err = NULL;
		int r;

		if (f->lent_known[li])
			continue;   /* a restore of a pair's file: upload */
		if (mdir_msg_ident(f->md, f->lents[li].base, &id, &err) != 0) {
			free(err);   /* the upload says so, if it persists */
			continue;
		}
		r = state_msgs_each_content(w0->st, id.hhash, id.size,
					    push_source, &pm);
		if (r < 0)
			log_debug("%s: %s", f->name, state_error(w0->st));
		if (r <= 0)
			continue;
		c = copy_add(f);
		c->push = true;
		c->uid = pm.uid;
		c->lidx = li;
		c->flags = pm.sflags;   /* what the copy has on the server */
		c->id = id;
		c->src_name = xstrdup(pm.src->name);
		c->src_uidvalidity = pm.src->selected ? pm.src->sel.uidvalidity
						      : pm.src->sf.uidvalidity;
		c->src_fresh = c->src_uidvalidity != 0 &&
			       folder_fresh_uidvalidity(pm.src) ==
				       c->src_uidvalidity;
		c->via = pm.via;
		log_debug("%s: '%s' is a copy of UID %u in '%s'", f->name,
			  f->lents[li].base, c->uid, c->src_name);
	}
	drop_repeated_pushes(f, from);
}

/* Remove from f's download list the UIDs of its pull copies that pick()
 * selects (one pass, a sorted list). */
void copies_drop_dl_uids(struct folder *f,
			 bool (*pick)(const struct copy_in *c))
{
	uint32_t *drop = xcalloc(f->n_copies + 1, sizeof(uint32_t));
	size_t i, k = 0, n = 0;

	for (i = 0; i < f->n_copies; i++)
		if (!f->copies[i].push && pick(&f->copies[i]))
			drop[n++] = f->copies[i].uid;
	if (n > 0) {
		qsort(drop, n, sizeof(uint32_t), cmp_u32);
		for (i = 0; i < f->n_dl; i++)
			if (bsearch(&f->dl_uids[i], drop, n, sizeof(uint32_t),
				    cmp_u32) == NULL)
				f->dl_uids[k++] = f->dl_uids[i];
		f->n_dl = k;
	}
	free(drop);
}

static bool pick_deferred(const struct copy_in *c)
{
	return c->deferred;
}

/* The same new content in several folders: all but the first become
 * deferred copies, out of the downloads. The target's bookmark waits for
 * them (moves_out, as for a move out of the folder): a run killed before
 * they are made compares the folder in full next time. */
static void plan_deferred(struct engine *e, struct fresh_list *fl)
{
	size_t i, j;

	if (fl->n < 2)
		return;
	qsort(fl->v, fl->n, sizeof(*fl->v), cmp_fresh);
	for (i = 0; i < fl->n; i = j) {
		for (j = i + 1; j < fl->n && same_msg(fl->v[j].id, fl->v[i].id);
		     j++) {
			struct fresh *x = &fl->v[j];
			struct copy_in *c = copy_add(x->f);

			c->deferred = true;
			c->uid = x->uid;
			c->flags = x->flags;
			c->id = *x->id;
			x->f->moves_out++;
			log_debug("%s: UID %u is a copy of UID %u in '%s', "
				  "downloaded first", x->f->name, x->uid,
				  fl->v[i].uid, fl->v[i].f->name);
		}
	}
	for (i = 0; i < e->n_folders; i++)
		if (e->folders[i]->n_copies > 0)
			copies_drop_dl_uids(e->folders[i], pick_deferred);
}

/* Whether the server holds any message the state knows: when it does
 * not (a first sync), no new local file can be a copy, and reading each
 * one for its identity would only double the upload's reading. */
static bool any_known(const struct engine *e)
{
	size_t i;

	for (i = 0; i < e->n_folders; i++) {
		const struct folder *f = e->folders[i];

		if (f->n_pairs > 0 || (f->untouched && f->sf.server_count > 0))
			return true;
	}
	return false;
}

void copies_plan(struct engine *e, struct worker *w0)
{
	struct fresh_list fl = { 0 };
	struct copies_ix ix;
	bool push = (e->dir_new & SYNC_DIR_PUSH) && any_known(e);
	size_t i;

	claims_free(e);   /* the gather is over */
	copies_note_identities(e, w0);   /* of the early downloads */
	copies_ix_init(&ix, e);
	for (i = 0; i < e->n_folders && !e->fatal; i++) {
		struct folder *f = e->folders[i];

		if (f->status != FOLDER_OK || f->untouched)
			continue;
		if (f->n_dl > 0 && (e->dir_new & SYNC_DIR_PULL))
			plan_pull(&ix, w0, f, &fl);
		if (f->n_ul > 0 && push)
			plan_push(&ix, w0, f);
	}
	if (!e->o->dry_run)
		plan_deferred(e, &fl);
	free(fl.v);
	copies_ix_release(&ix);
}

void copies_free(struct folder *f)
{
	size_t i;

	for (i = 0; i < f->n_copies; i++)
		copy_release(&f->copies[i]);
	FREE_AND_NULL(f->copies);
	f->n_copies = f->a_copies = 0;
}
