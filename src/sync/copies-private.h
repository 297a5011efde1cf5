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

/* The local file of a message the state knows, in any folder (a
 * state_msgs_each_* callback; ctx a struct pull_match). */
struct pull_match {
	struct copies_ix *ix;
	struct folder *src;
	char *base;        /* owned */
	uint32_t uid;
};

int copies_pull_source(void *ctx, int64_t folder_id,
		       const struct state_msg *m);

/* Remove from f's download list the UIDs of its pull copies that pick()
 * selects. */
void copies_drop_dl_uids(struct folder *f,
			 bool (*pick)(const struct copy_in *c));

#endif
