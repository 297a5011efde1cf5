/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * recover.c - finishing what a killed run left in the journal, and finding
 * uploaded messages again without UIDPLUS.
 *
 * A download is journalled (folder, UID) before its body is fetched; an
 * upload (folder, local base, identity) before it is appended. Both are
 * removed in the same transaction that records the pair. So an entry
 * still present at the start of a run means the step may or may not have
 * reached the other side; this file decides which, by content: the
 * identity (CRLF size, Message-ID, header hash) of the candidates on both
 * sides, fetched from the server without bodies.
 */
#include "common.h"
#include "sync/sync-private.h"
#include "util/log.h"

#include <inttypes.h>
#include <time.h>

void fetch_to_ident(const struct imap_fetch *fe, struct msg_ident *id_r)
{
	struct ident_ctx *ic = ident_new();

	if (fe->header != NULL)
		ident_feed(ic, fe->header, fe->header_len);
	ident_finish(ic, id_r);
	ident_free(&ic);
	id_r->size = fe->size;
	/* Gmail's id first: it also tells two messages apart */
	if (fe->has_gm_msgid)
		snprintf(id_r->sid, sizeof(id_r->sid), "gm:%" PRIu64,
			 fe->gm_msgid);
	else if (fe->emailid != NULL && strlen(fe->emailid) <= IDENT_SID_MAX)
		memcpy(id_r->sid, fe->emailid, strlen(fe->emailid) + 1);
}

int collect_ident(void *ctx, const struct imap_fetch *fe)
{
	struct fetched_idents *l = ctx;
	struct fetched_ident *it;

	if (fe->uid == 0 || !fe->has_size)
		return 0;
	ALLOC_GROW(l->v, l->n + 1, l->a);
	it = &l->v[l->n++];
	memset(it, 0, sizeof(*it));
	it->uid = fe->uid;
	it->flags = fe->has_flags ? fe->flags : 0;
	fetch_to_ident(fe, &it->id);
	return 0;
}

static bool uid_taken(const uint32_t *taken, size_t n, uint32_t uid)
{
	return taken && bsearch(&uid, taken, n, sizeof(uint32_t), cmp_u32);
}

static int fetch_ident_list(struct worker *w, const char *set,
			    struct fetched_idents *l, char **error_r)
{
	return w->r->ops->fetch_idents(w->r, set, collect_ident, l, error_r);
}

int remote_find_idents(struct worker *w, const struct msg_ident *ids,
		       size_t n, uint32_t min_uid, const uint32_t *taken,
		       size_t n_taken, uint32_t *uids_r, char **error_r)
{
	uint32_t *cand = NULL;
	size_t n_cand = 0, i, j;
	struct fetched_idents l = { 0 };
	char *set;
	int ret = 0;

	for (i = 0; i < n; i++)
		uids_r[i] = 0;
	if (n == 0)
		return 0;
	if (w->r->ops->search_msgid(w->r, min_uid ? min_uid : 1, NULL, &cand,
				    &n_cand, error_r) < 0)
		return -1;
	if (n_cand == 0) {
		free(cand);
		return 0;
	}
	set = imap_uidset_make(cand, n_cand);
	free(cand);
	ret = fetch_ident_list(w, set, &l, error_r);
	free(set);
	if (ret < 0) {
		free(l.v);
		return -1;
	}
	for (i = 0; i < n; i++) {
		for (j = 0; j < l.n; j++) {
			if (l.v[j].used ||
			    uid_taken(taken, n_taken, l.v[j].uid) ||
			    !ident_equal(&l.v[j].id, &ids[i]))
				continue;
			l.v[j].used = true;
			uids_r[i] = l.v[j].uid;
			break;
		}
	}
	free(l.v);
	return 0;
}

#define APPEND_SETTLE_MS 1500
#define APPEND_RECENT_S 120

/* How long to wait for a killed run's APPENDs (tests shorten it with
 * TWINBOX_APPEND_SETTLE_MS). */
static long append_settle_ms(void)
{
	const char *s = getenv("TWINBOX_APPEND_SETTLE_MS");

	return s && *s ? strtol(s, NULL, 10) : APPEND_SETTLE_MS;
}

static bool appends_missing_recent(const struct journal_entry *je,
				   const size_t *which, const uint32_t *found,
				   size_t n)
{
	time_t now = time(NULL);
	size_t i;

	for (i = 0; i < n; i++)
		if (found[i] == 0 &&
		    now - (time_t)je[which[i]].created < APPEND_RECENT_S)
			return true;
	return false;
}

static int select_plain(struct worker *w, struct folder *f,
			struct imap_selected *sel, char **error_r)
{
	free(w->selected);
	w->selected = NULL;
	if (w->r->ops->select(w->r, f->name, NULL, NULL, NULL, NULL, sel,
			      error_r) < 0)
		return -1;
	w->selected = xstrdup(f->name);
	return 0;
}

int folder_recover(struct worker *w, struct folder *f)
{
	struct journal_entry *je = NULL;
	size_t n_je = 0, i, j;
	struct state_msg *msgs = NULL;
	size_t n_msgs = 0;
	uint32_t *taken = NULL;
	struct imap_selected sel;
	char *err = NULL;
	bool have_dl = false, have_ul = false;
	int ret = -1;

	if (state_journal_list(w->st, f->sf.id, &je, &n_je) < 0) {
		folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
		return -1;
	}
	/* tombstones of late uploads are not steps; leave them to late.c */
	for (i = j = 0; i < n_je; i++) {
		if (je[i].op == J_LATE_APPEND) {
			journal_entry_release(&je[i]);
			continue;
		}
		je[j++] = je[i];
	}
	n_je = j;
	if (n_je == 0) {
		free(je);
		return 0;
	}
	if (f->md == NULL && f->on_local) {
		bool missing = false;

		if (mdir_open(f->path, false, &f->md, &missing, &err) < 0)
			FREE_AND_NULL(err);
	}
	log_info("%s: finishing %zu step(s) an interrupted run left open",
		 f->name, n_je);
	for (i = 0; i < n_je; i++) {
		if (je[i].op == J_DOWNLOAD)
			have_dl = true;
		else if (je[i].op == J_APPEND)
			have_ul = true;
	}
	if (state_msgs_load(w->st, f->sf.id, &msgs, &n_msgs) < 0) {
		folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
		goto out;
	}
	taken = xcalloc(n_msgs + 1, sizeof(uint32_t));
	for (i = 0; i < n_msgs; i++)
		taken[i] = msgs[i].uid;   /* loaded sorted by uid */

	if ((have_dl || have_ul) && f->on_server) {
		if (worker_remote(w, &err) < 0 ||
		    select_plain(w, f, &sel, &err) < 0) {
			folder_fail(f, SYNC_EXIT_FAIL, "%s: %s", f->name, err);
			goto out;
		}
		if (f->sf.uidvalidity && sel.uidvalidity != f->sf.uidvalidity) {
			/* the UIDs in the journal mean nothing any more; the
			 * content re-match of the folder takes over */
			have_dl = have_ul = false;
		}
	} else {
		have_dl = have_ul = false;
	}

	if (have_dl && f->md != NULL) {
		/* UIDs whose bodies may have reached the Maildir: compare
		 * their identities with the files no pair owns */
		uint32_t *uids = xcalloc(n_je, sizeof(uint32_t));
		size_t n_uids = 0;
		struct mdir_entry *ents = NULL;
		size_t n_ents = 0;
		struct fetched_idents l = { 0 };

		for (i = 0; i < n_je; i++)
			if (je[i].op == J_DOWNLOAD &&
			    !uid_taken(taken, n_msgs, je[i].uid))
				uids[n_uids++] = je[i].uid;
		qsort(uids, n_uids, sizeof(uint32_t), cmp_u32);
		if (n_uids > 0) {
			char *set = imap_uidset_make(uids, n_uids);

			if (fetch_ident_list(w, set, &l, &err) < 0) {
				free(set);
				free(uids);
				folder_fail(f, SYNC_EXIT_FAIL, "%s: %s", f->name, err);
				goto out;
			}
			free(set);
		}
		if (l.n > 0 && mdir_scan(f->md, &ents, &n_ents, &err) < 0) {
			free(uids);
			free(l.v);
			folder_fail(f, SYNC_EXIT_FAIL, "%s", err);
			goto out;
		}
		for (i = 0; i < n_ents && l.n > 0; i++) {
			struct msg_ident id;
			bool owned = false;

			for (j = 0; j < n_msgs && !owned; j++)
				owned = strcmp(msgs[j].base, ents[i].base) == 0;
			if (owned)
				continue;
			if (mdir_msg_ident(f->md, ents[i].base, &id, &err) != 0) {
				FREE_AND_NULL(err);
				continue;
			}
			for (j = 0; j < l.n; j++) {
				struct state_msg m = { 0 };

				if (l.v[j].used || !ident_equal(&l.v[j].id, &id))
					continue;
				l.v[j].used = true;
				pair_row_ident(&m, l.v[j].uid, ents[i].base,
					       ents[i].flags, &id);
				if (state_msg_put(w->st, f->sf.id, &m) < 0) {
					folder_fail(f, SYNC_EXIT_FAIL, "%s",
						    state_error(w->st));
					free(uids);
					free(l.v);
					mdir_entries_free(ents, n_ents);
					goto out;
				}
				log_debug("%s: recovered download of UID %u as '%s'",
					  f->name, m.uid, m.base);
				break;
			}
		}
		if (ents)
			mdir_entries_free(ents, n_ents);
		free(l.v);
		free(uids);
	}

	if (have_ul) {
		struct msg_ident *ids = xcalloc(n_je, sizeof(*ids));
		uint32_t *found = xcalloc(n_je, sizeof(uint32_t));
		size_t *which = xcalloc(n_je, sizeof(size_t));
		size_t n_ids = 0;
		uint32_t min_uid = UINT32_MAX;

		for (i = 0; i < n_je; i++) {
			if (je[i].op != J_APPEND || je[i].base == NULL)
				continue;
			ids[n_ids].size = je[i].size;
			snprintf(ids[n_ids].msgid, sizeof(ids[n_ids].msgid), "%s",
				 je[i].msgid ? je[i].msgid : "");
			memcpy(ids[n_ids].hhash, je[i].hhash, 16);
			if ((uint64_t)je[i].aux < min_uid)
				min_uid = (uint32_t)(je[i].aux > 0 ? je[i].aux : 1);
			which[n_ids++] = i;
		}
		if (n_ids > 0 &&
		    remote_find_idents(w, ids, n_ids, min_uid, taken, n_msgs,
				       found, &err) < 0) {
			folder_fail(f, SYNC_EXIT_FAIL, "%s: %s", f->name, err);
			free(ids);
			free(found);
			free(which);
			goto out;
		}
		/* A server keeps executing the APPENDs a killed client had
		 * already sent; when the interruption was recent and some
		 * uploads are not there (yet), give it a moment and look
		 * again, or they would be uploaded twice. */
		if (n_ids > 0 && appends_missing_recent(je, which, found, n_ids)) {
			long ms = append_settle_ms();
			struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
			uint32_t *again = xcalloc(n_ids, sizeof(uint32_t));
			size_t k;

			nanosleep(&ts, NULL);
			if (remote_find_idents(w, ids, n_ids, min_uid, taken,
					       n_msgs, again, &err) == 0) {
				for (k = 0; k < n_ids; k++)
					found[k] = again[k];
			} else {
				FREE_AND_NULL(err);
			}
			free(again);
		}
		for (i = 0; i < n_ids; i++) {
			struct journal_entry *e = &je[which[i]];
			struct state_msg m = { 0 };

			if (found[i] == 0) {
				/* not there (yet): uploaded again by this run;
				 * remember its identity in case the server
				 * executes the old APPEND after all */
				struct journal_entry t = *e;

				t.id = 0;
				t.op = J_LATE_APPEND;
				t.created = 0;
				if (state_journal_add(w->st, &t) < 0)
					goto state_fail;
				continue;
			}
			pair_row_journal(&m, found[i], e);
			if (state_msg_put(w->st, f->sf.id, &m) < 0) {
				folder_fail(f, SYNC_EXIT_FAIL, "%s",
					    state_error(w->st));
				free(ids);
				free(found);
				free(which);
				goto out;
			}
			log_debug("%s: recovered upload of '%s' as UID %u",
				  f->name, e->base, m.uid);
		}
		free(ids);
		free(found);
		free(which);
	}
	if (recover_moves(w, f, je, n_je) < 0)
		goto out;
	/* every entry is resolved one way or the other */
	if (state_begin(w->st) < 0)
		goto state_fail;
	for (i = 0; i < n_je; i++)
		if (state_journal_remove(w->st, je[i].id) < 0) {
			(void)state_rollback(w->st);
			goto state_fail;
		}
	if (state_commit(w->st) < 0) {
		(void)state_rollback(w->st);
		goto state_fail;
	}
	sync_crash_point("journal resolved");
	ret = 1;
	goto out;
state_fail:
	folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
out:
	free(err);
	free(taken);
	if (msgs)
		state_msgs_free(msgs, n_msgs);
	if (je)
		state_journal_free(je, n_je);
	return ret;
}

/* The target holds the moved message: make sure the source does not
 * (a move made as COPY, then one expunge, may have been cut off between
 * the two; after a UID MOVE this finds nothing to do). */
static int expunge_source(struct worker *w, struct folder *f, uint32_t uid)
{
	struct imap_selected sel;
	char set[16], *err = NULL;

	snprintf(set, sizeof(set), "%u", uid);
	if (worker_select_name(w, f->name, f->sf.uidvalidity, &sel, &err) < 0 ||
	    w->r->ops->expunge(w->r, set, &err) < 0) {
		log_warn("%s: cannot finish an interrupted move: %s", f->name,
			 err);
		free(err);
		return -1;
	}
	return 0;
}

/*
 * J_MOVE_SERVER (kept under the source folder): UID MOVE may have
 * happened; if the pair is still in the source, look for the message in
 * the target by content. J_MOVE_LOCAL (kept under the target folder): the
 * rename may have happened; if the file is in the target, move the pair.
 */
int recover_moves(struct worker *w, struct folder *f,
		  struct journal_entry *je, size_t n_je)
{
	size_t i;
	char *err = NULL;

	for (i = 0; i < n_je; i++) {
		struct journal_entry *e = &je[i];
		struct state_folder other = { 0 };
		struct state_msg m = { 0 };
		int r;

		if (e->op != J_MOVE_SERVER && e->op != J_MOVE_LOCAL)
			continue;
		r = state_folder_get_id(w->st, e->aux, &other);
		if (r != 0) {
			state_folder_release(&other);
			continue;
		}
		if (e->op == J_MOVE_SERVER) {
			struct state_msg *msgs = NULL;
			size_t n_msgs = 0, k;
			uint32_t *taken, found = 0;
			struct msg_ident id = { 0 };
			struct imap_selected sel;

			if (state_msg_get(w->st, f->sf.id, e->uid, &m) != 0) {
				state_folder_release(&other);
				continue;   /* the pair moved already */
			}
			state_msg_release(&m);
			if (state_msgs_load(w->st, other.id, &msgs, &n_msgs) < 0)
				goto state_fail;
			taken = xcalloc(n_msgs + 1, sizeof(uint32_t));
			for (k = 0; k < n_msgs; k++)
				taken[k] = msgs[k].uid;
			state_msgs_free(msgs, n_msgs);
			id.size = e->size;
			snprintf(id.msgid, sizeof(id.msgid), "%s",
				 e->msgid ? e->msgid : "");
			memcpy(id.hhash, e->hhash, 16);
			if (worker_select_name(w, other.name, other.uidvalidity,
					       &sel, &err) < 0 ||
			    remote_find_idents(w, &id, 1, e->aux_uid, taken,
					       n_msgs, &found, &err) < 0) {
				log_warn("%s: cannot check an interrupted move: %s",
					 f->name, err);
				FREE_AND_NULL(err);
				free(taken);
				state_folder_release(&other);
				continue;
			}
			free(taken);
			if (found != 0 && expunge_source(w, f, e->uid) < 0) {
				state_folder_release(&other);
				continue;   /* the next run tries again */
			}
			if (found != 0 &&
			    (state_msg_move(w->st, f->sf.id, e->uid, other.id,
					    found) < 0 ||
			     state_msg_set_base(w->st, other.id, found,
						e->base) < 0)) {
				state_folder_release(&other);
				goto state_fail;
			}
		} else {
			struct mdir *md = NULL;
			bool missing = false;
			char *name = NULL;
			unsigned fl;

			/* here f is the target; other is the source */
			if (state_msg_get(w->st, other.id, e->aux_uid, &m) != 0) {
				state_folder_release(&other);
				continue;
			}
			state_msg_release(&m);
			if (f->md != NULL &&
			    mdir_find(f->md, e->base, &name, &fl, &err) == 0 &&
			    state_msg_move(w->st, other.id, e->aux_uid, f->sf.id,
					   e->uid) < 0) {
				free(name);
				state_folder_release(&other);
				goto state_fail;
			}
			free(name);
			FREE_AND_NULL(err);
			(void)md;
			(void)missing;
		}
		state_folder_release(&other);
	}
	return 0;
state_fail:
	folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
	return -1;
}
