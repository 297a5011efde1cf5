/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sync.h - the sync engine: one account's server folders and Maildir
 * kept in step both ways, with the state database as the common ancestor.
 */
#ifndef TB_SYNC_H
#define TB_SYNC_H

#include "common.h"
#include "sync/remote.h"
#include "maildir/maildir.h"

/* Per-kind directions, bit 1 = pull (server -> local), bit 2 = push */
#define SYNC_DIR_PULL 1u
#define SYNC_DIR_PUSH 2u

struct sync_account {
	const char *name;
	const char *maildir;          /* absolute root */
	enum mdir_layout layout;
	const char *state_dir;
	unsigned dir_new, dir_flags, dir_deletions, dir_moves, dir_folders;
	unsigned connections;         /* >= 1 */
	bool copies_copy;             /* `copies: copy`: no hard links */
	bool gmail;                   /* `gmail: true` (else from X-GM-EXT-1) */
	/* folder selection (include/exclude); NULL = all */
	bool (*selected)(void *ctx, const char *name);
	void *selected_ctx;
};

struct sync_options {
	bool dry_run, full, force;
	bool status_only;             /* `twinbox status`: a dry run reported as a table */
	bool pull_only, push_only;
	const char *const *folders;   /* only these folders (UTF-8 names); NULL = all */
	size_t n_folders;
	bool json;                    /* one JSON line per folder on stdout */
	bool progress;                /* progress bar on stderr (a terminal) */
	bool summary;                 /* one summary line per account on stdout */
	bool lock_held;               /* the caller holds the account lock (--watch) */
};

/* Exit codes (SPEC "Exit status"), in order of precedence 2, 3, 4, 5, 1. */
enum sync_exit {
	SYNC_EXIT_OK = 0, SYNC_EXIT_FAIL = 1, SYNC_EXIT_CONFIG = 2,
	SYNC_EXIT_AUTH = 3, SYNC_EXIT_LOCKED = 4, SYNC_EXIT_BRAKE = 5,
};
/* Combine two exit codes by that precedence. */
int sync_exit_merge(int a, int b);

/* Sync one account. Returns an exit code (enum sync_exit). */
int sync_account_run(const struct sync_account *a, const struct remote_factory *rf,
		     const struct sync_options *o);

/* Test hook: when the environment variable TWINBOX_CRASH_AT=N is set, the
 * process _exit(99)s at the N-th crash point (a step boundary where a kill
 * could land), so tests can stop a run at every step and resume it. */
void sync_crash_point(const char *what);

/* Ask a running sync to stop at its next crash point (a step boundary the
 * next run resumes from): the process then _exit(0)s. Async-signal-safe,
 * for sync --watch's SIGTERM handler. */
void sync_request_stop(void);

#endif
