/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * commands.h - the commands main.c dispatches to once the command line is
 * parsed and the configuration is loaded and valid.
 *
 * Each returns the process exit status (TB_EXIT_*). main.c has already
 * checked that every target names an account of the configuration, that
 * list-folders' account exists, and set the log verbosity.
 */
#ifndef TB_COMMANDS_H
#define TB_COMMANDS_H

#include "common.h"
#include "config/config.h"

/* Exit statuses, from twinbox(1). */
enum tb_exit {
	TB_EXIT_OK = 0,         /* everything requested was synced */
	TB_EXIT_FAILED = 1,     /* some folder or account failed */
	TB_EXIT_USAGE = 2,      /* usage or configuration error */
	TB_EXIT_AUTH = 3,       /* authentication or TLS verification failed */
	TB_EXIT_LOCKED = 4,     /* another twinbox holds an account's lock */
	TB_EXIT_BRAKE = 5,      /* the safety brake stopped a sync */
};

/* Combine two exit statuses: when several apply, the first in the order
 * 2, 3, 4, 5, 1 wins (then 0). */
static inline int tb_exit_merge(int a, int b)
{
	static const int rank[] = { 5, 4, 0, 1, 2, 3 };
	int ra = a >= 0 && a <= 5 ? rank[a] : -1;
	int rb = b >= 0 && b <= 5 ? rank[b] : -1;

	return ra <= rb ? a : b;
}

struct global_opts {
	const char *config_path; /* -c FILE, or NULL for the default */
	/* The effective log level (enum log_level, LOG_QUIET..LOG_TRACE):
	 * -q, or no -v while stdout is not a terminal, gives LOG_QUIET. */
	int verbosity;
	bool json;               /* --json: JSON lines on stdout */
	bool quiet;              /* verbosity == LOG_QUIET */
};

struct sync_opts {
	bool dry_run, pull_only, push_only, full, force, watch;
	/* "ACCOUNT" or "ACCOUNT:FOLDER" (borrowed from argv); every ACCOUNT
	 * exists and every FOLDER is non-empty. n_targets == 0 means all
	 * accounts. */
	char **targets;
	size_t n_targets;
};

/* check-config without --offline: connect and authenticate every account. */
int cmd_check_config_online(const struct config *c, const struct global_opts *g);
/* list-folders ACCOUNT: server folders and the local path of each. */
int cmd_list_folders(const struct config *c, const struct global_opts *g,
		     const char *account);
int cmd_sync(const struct config *c, const struct global_opts *g,
	     const struct sync_opts *o);
/* status [TARGET...]: targets as in struct sync_opts. */
int cmd_status(const struct config *c, const struct global_opts *g,
	       char **targets, size_t n_targets);

#endif
