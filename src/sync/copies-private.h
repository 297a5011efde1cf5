/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * copies-private.h - what copies-plan.c and copies-exec.c share: the
 * run's lookup indexes and the search for a local source file.
 */
#ifndef TB_SYNC_COPIES_PRIVATE_H
#define TB_SYNC_COPIES_PRIVATE_H

#include "common.h"
#include "sync/sync-private.h"

/*
 * Lookups the plan makes once per candidate, built once per run so that
 * matching stays O(n log n) in the number of new messages:
 *   - the folders by state id;
 *   - the pairs moves_plan() moved in, by (source, source UID, kind);
 *   - per folder (on demand), its loaded pairs by UID.
 */
struct fid_ent {
	int64_t id;
	size_t idx;        /* in e->folders */
};

struct mv_ent {
	const struct folder *src;
	uint32_t src_uid;
	int mv;
	struct pair *q;
	struct folder *b;
};

struct copies_ix {
	struct engine *e;
	struct fid_ent *fid;
	size_t n_fid;
	struct mv_ent *mv;
	size_t n_mv, a_mv;
	struct pair ***byuid;  /* per folder index, or NULL until asked */
	size_t *n_byuid;
};

void copies_ix_init(struct copies_ix *ix, struct engine *e);
void copies_ix_release(struct copies_ix *ix);

/* The local file of a message the state knows, in any folder. */
struct pull_match {
	struct copies_ix *ix;
	struct folder *src;
	char *base;        /* owned */
	uint32_t uid;
	const char *sid;   /* borrowed: the identity looked for, or "" */
};

/*
 * Find a pair of any folder that holds the message id is: by the
 * server's identity when id has one, else (or when no pair has it yet)
 * by content among the pairs whose identity is not known to differ.
 * 1 found (pm->src, pm->base, pm->uid), 0 not, -1 database error.
 */
int copies_find_source(struct state *st, const struct msg_ident *id,
		       struct pull_match *pm);

/* Give the pairs of the run's new server messages the identity the
 * server gave (downloads record none): one transaction. A failure is
 * logged; matching then falls back to content. */
void copies_note_identities(struct engine *e, struct worker *w0);

/* Remove from f's download list the UIDs of its pull copies that pick()
 * selects. */
void copies_drop_dl_uids(struct folder *f,
			 bool (*pick)(const struct copy_in *c));

#endif
