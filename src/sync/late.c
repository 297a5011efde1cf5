/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * late.c - late copies of uploads a killed run had sent.
 *
 * A server keeps executing the APPENDs a killed client had already sent.
 * Recovery waits a moment for them, but a loaded server can still be
 * behind: recovery then uploads the file again and keeps the old
 * upload's identity as a J_LATE_APPEND tombstone for a while. A new
 * server message with that identity, in a folder where the file is paired
 * by then, is the late copy: it is expunged instead of being downloaded as
 * a duplicate. A late copy the server listed before the file was uploaded
 * again (it landed between recovery and this run's look at the server) is
 * the upload itself: it is paired with the file, which is then neither
 * uploaded again nor the copy downloaded.
 */
#include "common.h"
#include "sync/sync-private.h"
#include "util/log.h"

#include <time.h>

#define LATE_KEEP_S (30 * 60)

int late_load(struct worker *w, struct folder *f)
{
	struct journal_entry *je = NULL;
	size_t n = 0, i, m = 0;
	time_t now = time(NULL);

	if (!f->in_state || f->sf.id == 0)
		return 0;
	if (state_journal_list(w->st, f->sf.id, &je, &n) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (je[i].op != J_LATE_APPEND) {
			journal_entry_release(&je[i]);
			continue;
		}
		if (now - (time_t)je[i].created > LATE_KEEP_S) {
			if (!w->e->o->dry_run)
				(void)state_journal_remove(w->st, je[i].id);
			journal_entry_release(&je[i]);
			continue;
		}
		je[m++] = je[i];
	}
	if (m == 0) {
		free(je);
		return 0;
	}
	f->late = je;
	f->n_late = m;
	return 0;
}

/* The local entry of base that no pair owns yet (a file the run would
 * upload), or -1. */
static long unknown_local(const struct folder *f, const char *base)
{
	size_t k;

	for (k = 0; k < f->n_lents; k++)
		if (!f->lent_known[k] && strcmp(f->lents[k].base, base) == 0)
			return (long)k;
	return -1;
}

void late_plan(struct folder *f)
{
	bool *used;
	size_t i, j, k;

	if (f->n_late == 0 || f->n_snew == 0 || f->status != FOLDER_OK)
		return;
	used = xcalloc(f->n_late, sizeof(bool));
	f->dup_uids = xcalloc(f->n_late, sizeof(uint32_t));
	f->dup_jids = xcalloc(f->n_late, sizeof(int64_t));
	f->adopt_uids = xcalloc(f->n_late, sizeof(uint32_t));
	f->adopt_late = xcalloc(f->n_late, sizeof(size_t));
	for (i = 0; i < f->n_snew; i++) {
		struct srv_new *s = &f->snew[i];

		if (s->claimed || !s->have_id)
			continue;
		for (j = 0; j < f->n_late; j++) {
			struct journal_entry *t = &f->late[j];
			struct msg_ident id = { 0 };
			bool paired = false;

			if (used[j] || t->base == NULL)
				continue;
			id.size = t->size;
			snprintf(id.msgid, sizeof(id.msgid), "%s",
				 t->msgid ? t->msgid : "");
			memcpy(id.hhash, t->hhash, sizeof(id.hhash));
			if (!ident_equal(&id, s->id))
				continue;
			for (k = 0; k < f->n_pairs && !paired; k++)
				paired = f->pairs[k].m.base != NULL &&
					 strcmp(f->pairs[k].m.base, t->base) == 0;
			if (!paired && f->lent_known != NULL) {
				long li = unknown_local(f, t->base);

				if (li < 0)
					continue;
				/* not uploaded again yet: this is the upload */
				used[j] = true;
				s->claimed = true;
				f->lent_known[li] = true;
				f->adopt_uids[f->n_adopt] = s->uid;
				f->adopt_late[f->n_adopt] = j;
				f->n_adopt++;
				log_info("%s: UID %u is the upload of '%s' an "
					 "interrupted run had sent; pairing them",
					 f->name, s->uid, t->base);
				break;
			}
			if (!paired)
				continue;
			used[j] = true;
			s->claimed = true;
			f->dup_uids[f->n_dup] = s->uid;
			f->dup_jids[f->n_dup] = t->id;
			f->n_dup++;
			log_info("%s: UID %u is a late copy of '%s' uploaded again "
				 "after an interrupted run; removing it", f->name,
				 s->uid, t->base);
			break;
		}
	}
	free(used);
}

/* Pair the late uploads late_plan() found with their files and drop
 * their tombstones, in one transaction. The pair's flags are those the
 * APPEND carried: a change made to the file since is pushed as usual. */
static int late_adopt(struct worker *w, struct folder *f)
{
	size_t i;

	if (f->n_adopt == 0)
		return 0;
	if (state_begin(w->st) < 0)
		goto fail;
	for (i = 0; i < f->n_adopt; i++) {
		const struct journal_entry *t = &f->late[f->adopt_late[i]];
		struct state_msg m = { 0 };

		pair_row_journal(&m, f->adopt_uids[i], t);
		if (state_msg_put(w->st, f->sf.id, &m) < 0 ||
		    state_journal_remove(w->st, t->id) < 0) {
			(void)state_rollback(w->st);
			goto fail;
		}
	}
	if (state_commit(w->st) < 0) {
		(void)state_rollback(w->st);
		goto fail;
	}
	return 0;
fail:
	folder_fail(f, SYNC_EXIT_FAIL, "%s", state_error(w->st));
	return -1;
}

int late_execute(struct worker *w, struct folder *f)
{
	char *set, *err = NULL;
	size_t i;

	if (late_adopt(w, f) < 0)
		return -1;
	if (f->n_dup == 0)
		return 0;
	qsort(f->dup_uids, f->n_dup, sizeof(uint32_t), cmp_u32);
	set = imap_uidset_make(f->dup_uids, f->n_dup);
	if (w->r->ops->expunge(w->r, set, &err) < 0) {
		folder_fail(f, SYNC_EXIT_FAIL, "%s: cannot remove duplicates: %s",
			    f->name, err);
		free(err);
		free(set);
		return -1;
	}
	free(set);
	if (state_begin(w->st) == 0) {
		for (i = 0; i < f->n_dup; i++)
			(void)state_journal_remove(w->st, f->dup_jids[i]);
		if (state_commit(w->st) < 0)
			(void)state_rollback(w->st);
	}
	return 0;
}
