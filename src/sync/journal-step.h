/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * journal-step.h - the journal bracket around a batch of steps.
 *
 * A step that changes one side is journalled first, in one transaction
 * for the whole batch, and its entry goes in the transaction that records
 * the result (or, when the step was refused, in one of its own). A crash
 * point follows the journal's commit, so the crash harness kills a run
 * right after it. The callers (copies, and moves once it adopts it) keep
 * their own struct journal_entry filling; this file holds the
 * begin / add / commit / rollback part they all repeat.
 */
#ifndef TB_SYNC_JOURNAL_STEP_H
#define TB_SYNC_JOURNAL_STEP_H

#include "common.h"
#include "state/state.h"

/* Fill entry i of the batch (je is zeroed; what it points to must live
 * until the call returns). Returns where the entry's id is to be stored,
 * or NULL to leave item i out. */
typedef int64_t *journal_fill_fn(void *ctx, size_t i,
				 struct journal_entry *je);

/*
 * Add the entries fill() gives for i in [0, n) in one transaction, then
 * sync_crash_point(crash_point) unless it is NULL. 0, or -1 with the
 * transaction rolled back (state_error(st) says why).
 */
int journal_step_write(struct state *st, size_t n, journal_fill_fn *fill,
		       void *ctx, const char *crash_point);

/* The id of item i, or 0 to keep (or skip) it. */
typedef int64_t journal_id_fn(void *ctx, size_t i);

/* Remove the entries id_of() names for i in [0, n) in one transaction
 * (steps refused, so nothing is left to recover). 0 or -1 as above. */
int journal_step_remove(struct state *st, size_t n, journal_id_fn *id_of,
			void *ctx);

#endif
