/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * journal-step.c - one transaction of journal entries for a batch of
 * steps (see journal-step.h).
 */
#include "common.h"
#include "sync/journal-step.h"
#include "sync/sync.h"

int journal_step_write(struct state *st, size_t n, journal_fill_fn *fill,
		       void *ctx, const char *crash_point)
{
	size_t i;

	if (state_begin(st) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		struct journal_entry je = { 0 };
		int64_t *id_r = fill(ctx, i, &je);

		if (id_r == NULL)
			continue;
		if (state_journal_add(st, &je) < 0)
			goto fail;
		*id_r = je.id;
	}
	if (state_commit(st) < 0)
		goto fail;
	if (crash_point != NULL)
		sync_crash_point(crash_point);
	return 0;
fail:
	(void)state_rollback(st);
	return -1;
}

int journal_step_remove(struct state *st, size_t n, journal_id_fn *id_of,
			void *ctx)
{
	size_t i;

	if (state_begin(st) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		int64_t id = id_of(ctx, i);

		if (id != 0 && state_journal_remove(st, id) < 0)
			goto fail;
	}
	if (state_commit(st) < 0)
		goto fail;
	return 0;
fail:
	(void)state_rollback(st);
	return -1;
}
