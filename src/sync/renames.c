/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * renames.c - a folder renamed on one side is renamed on the other, not
 * deleted there and copied again.
 *
 * After discovery, a folder the state knows that is gone from one side,
 * and a folder the state does not know that exists only on that same side,
 * are the same folder under a new name when their messages match: by
 * identity (size, header hash, Message-ID, fetched without bodies) for a
 * server rename, by unique file name for a local rename. At least nine in
 * ten of the old folder's messages must be in the new one and make up
 * most of it, so two unrelated folders are never merged.
 */
#include "common.h"
#include "sync/sync-private.h"
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>

/* a: messages the old folder held at the last sync; b: messages in the
 * candidate. Nine in ten of the old ones must be there, and they must be
 * most of the candidate (mail may have arrived meanwhile, but a big
 * folder that merely contains the old one's messages is not a rename). */
static bool close_enough(size_t matched, size_t a, size_t b)
{
	return a > 0 && b > 0 && matched * 10 >= a * 9 && matched * 2 > b;
}

/* the renamed folder takes over the old one's state row */
static void adopt(struct folder *old, struct folder *nw)
{
	free(old->sf.name);
	free(old->sf.local_path);
	nw->sf = old->sf;
	nw->sf.name = xstrdup(nw->name);
	nw->sf.local_path = NULL;
	memset(&old->sf, 0, sizeof(old->sf));
	nw->in_state = true;
	old->in_state = false;
	old->on_local = old->on_server = false;
	old->status = FOLDER_SKIPPED;
	old->reported = true;
}

static int mkdir_parents(const char *path)
{
	char *p = xstrdup(path), *s;

	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			free(p);
			return -1;
		}
		*s = '/';
	}
	free(p);
	return 0;
}

struct idl {
	struct msg_ident *v;
	size_t n, a;
};

static int on_ident(void *ctx, const struct imap_fetch *fe)
{
	struct idl *l = ctx;

	if (fe->uid == 0 || !fe->has_size)
		return 0;
	ALLOC_GROW(l->v, l->n + 1, l->a);
	fetch_to_ident(fe, &l->v[l->n]);
	l->n++;
	return 0;
}

static size_t count_ident_matches(const struct state_msg *m, size_t n,
				  const struct idl *l)
{
	bool *used = xcalloc(l->n + 1, sizeof(bool));
	size_t i, j, hits = 0;

	for (i = 0; i < n; i++) {
		for (j = 0; j < l->n; j++) {
			if (used[j] || !m[i].have_hhash || l->v[j].size != m[i].size ||
			    memcmp(l->v[j].hhash, m[i].hhash, 16) != 0)
				continue;
			used[j] = true;
			hits++;
			break;
		}
	}
	free(used);
	return hits;
}

static void server_renames(struct engine *e, struct worker *w0)
{
	size_t i, j;

	for (i = 0; i < e->n_folders; i++) {
		struct folder *old = e->folders[i];
		struct state_msg *msgs = NULL;
		size_t n = 0;

		if (!old->in_state || old->on_server || !old->on_local)
			continue;
		if (state_msgs_load(w0->st, old->sf.id, &msgs, &n) < 0 || n == 0) {
			if (msgs)
				state_msgs_free(msgs, n);
			continue;
		}
		for (j = 0; j < e->n_folders; j++) {
			struct folder *nw = e->folders[j];
			struct imap_selected sel;
			struct idl l = { 0 };
			char *err = NULL, *oldp = NULL, *newp = NULL;

			if (nw->in_state || !nw->on_server || nw->on_local)
				continue;
			if (worker_select_name(w0, nw->name, 0, &sel, &err) < 0 ||
			    (sel.exists > 0 &&
			     w0->r->ops->fetch_idents(w0->r, "1:*", on_ident, &l,
						      &err) < 0)) {
				free(err);
				free(l.v);
				continue;
			}
			if (!close_enough(count_ident_matches(msgs, n, &l), n, l.n)) {
				free(l.v);
				continue;
			}
			free(l.v);
			if (mdir_map_name(e->a->maildir, e->a->layout, old->name,
					  &oldp, &err) < 0 ||
			    mdir_map_name(e->a->maildir, e->a->layout, nw->name,
					  &newp, &err) < 0) {
				free(err);
				free(oldp);
				break;
			}
			if (e->o->dry_run) {
				printf("%s:%s: would rename the local folder to '%s' "
				       "(renamed on the server)\n", e->a->name,
				       old->name, nw->name);
			} else {
				struct stat st;
				bool carried = lstat(oldp, &st) < 0 &&
					       lstat(newp, &st) == 0;

				/* a parent's rename carried this folder along
				 * (verbatim layout): only the state follows */
				if (!carried &&
				    (lstat(newp, &st) == 0 ||
				     mkdir_parents(newp) < 0 ||
				     rename(oldp, newp) < 0)) {
					log_warn("%s: cannot rename local folder '%s' to '%s': %s",
						 e->a->name, oldp, newp,
						 errno ? strerror(errno) : "target exists");
					free(oldp);
					free(newp);
					break;
				}
				if (state_folder_rename(w0->st, old->sf.id, nw->name,
							newp) < 0) {
					log_warn("%s: %s", e->a->name,
						 state_error(w0->st));
					free(oldp);
					free(newp);
					break;
				}
				log_info("%s: folder '%s' was renamed to '%s' on the "
					 "server; renamed the local folder too",
					 e->a->name, old->name, nw->name);
			}
			free(oldp);
			free(newp);
			adopt(old, nw);
			nw->on_local = true;
			break;
		}
		state_msgs_free(msgs, n);
	}
}

/* Server RENAME takes the inferior folders along (RFC 3501 6.3.5): a
 * child whose new name is its old one under the renamed parent needs no
 * RENAME of its own. */
static struct {
	char *from, *to;
} renamed[64];
static size_t n_renamed;
static pthread_mutex_t renamed_lock = PTHREAD_MUTEX_INITIALIZER;

static void record_rename(struct engine *e, const char *from, const char *to)
{
	e->server_touched = true;
	pthread_mutex_lock(&renamed_lock);
	if (n_renamed < N_ELEMENTS(renamed)) {
		renamed[n_renamed].from = xstrdup(from);
		renamed[n_renamed].to = xstrdup(to);
		n_renamed++;
	}
	pthread_mutex_unlock(&renamed_lock);
}

static bool carried_by_parent(struct engine *e, const char *from,
			      const char *to)
{
	size_t i, lf, lt;
	bool hit = false;

	(void)e;
	pthread_mutex_lock(&renamed_lock);
	for (i = 0; i < n_renamed && !hit; i++) {
		lf = strlen(renamed[i].from);
		lt = strlen(renamed[i].to);
		hit = strncmp(from, renamed[i].from, lf) == 0 && from[lf] == '/' &&
		      strncmp(to, renamed[i].to, lt) == 0 && to[lt] == '/' &&
		      strcmp(from + lf, to + lt) == 0;
	}
	pthread_mutex_unlock(&renamed_lock);
	return hit;
}

static void renames_forget(void)
{
	size_t i;

	pthread_mutex_lock(&renamed_lock);
	for (i = 0; i < n_renamed; i++) {
		free(renamed[i].from);
		free(renamed[i].to);
	}
	n_renamed = 0;
	pthread_mutex_unlock(&renamed_lock);
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void local_renames(struct engine *e, struct worker *w0)
{
	size_t i, j, k;

	for (i = 0; i < e->n_folders; i++) {
		struct folder *old = e->folders[i];
		struct state_msg *msgs = NULL;
		size_t n = 0;
		char **bases;

		if (!old->in_state || !old->on_server || old->on_local)
			continue;
		if (state_msgs_load(w0->st, old->sf.id, &msgs, &n) < 0 || n == 0) {
			if (msgs)
				state_msgs_free(msgs, n);
			continue;
		}
		bases = xcalloc(n, sizeof(*bases));
		for (k = 0; k < n; k++)
			bases[k] = msgs[k].base;
		qsort(bases, n, sizeof(*bases), cmp_cstr);
		for (j = 0; j < e->n_folders; j++) {
			struct folder *nw = e->folders[j];
			struct mdir *md = NULL;
			struct mdir_entry *ents = NULL;
			size_t n_ents = 0, hits = 0;
			char *err = NULL, *path = NULL;
			bool missing;

			if (nw->in_state || nw->on_server || !nw->on_local)
				continue;
			if (mdir_map_name(e->a->maildir, e->a->layout, nw->name,
					  &path, &err) < 0 ||
			    mdir_open(path, false, &md, &missing, &err) < 0 ||
			    mdir_scan(md, &ents, &n_ents, &err) < 0) {
				free(err);
				free(path);
				if (md)
					mdir_close(&md);
				continue;
			}
			mdir_close(&md);
			for (k = 0; k < n_ents; k++)
				if (bsearch(&ents[k].base, bases, n, sizeof(*bases),
					    cmp_cstr))
					hits++;
			mdir_entries_free(ents, n_ents);
			if (!close_enough(hits, n, n_ents)) {
				free(path);
				continue;
			}
			if (e->o->dry_run) {
				printf("%s:%s: would rename the folder on the server to "
				       "'%s' (renamed locally)\n", e->a->name,
				       old->name, nw->name);
			} else if ((!carried_by_parent(e, old->name, nw->name) &&
				    w0->r->ops->rename(w0->r, old->name, nw->name,
						       &err) < 0) ||
				   state_folder_rename(w0->st, old->sf.id, nw->name,
						       path) < 0) {
				log_warn("%s: cannot rename folder '%s' to '%s' on the "
					 "server: %s", e->a->name, old->name,
					 nw->name, err ? err : state_error(w0->st));
				free(err);
				free(path);
				break;
			} else {
				log_info("%s: folder '%s' was renamed to '%s' locally; "
					 "renamed it on the server too", e->a->name,
					 old->name, nw->name);
			}
			free(path);
			adopt(old, nw);
			nw->on_server = true;
			record_rename(e, old->name, nw->name);
			break;
		}
		free(bases);
		state_msgs_free(msgs, n);
	}
}

void renames_detect(struct engine *e, struct worker *w0)
{
	if (w0->r == NULL)
		return;
	if (e->dir_moves & SYNC_DIR_PULL)
		server_renames(e, w0);
	if (e->dir_moves & SYNC_DIR_PUSH)
		local_renames(e, w0);
	renames_forget();
}
