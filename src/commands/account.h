/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * commands/account.h - an account's configuration turned into what the
 * IMAP client and the sync engine take.
 */
#ifndef TB_COMMANDS_ACCOUNT_H
#define TB_COMMANDS_ACCOUNT_H

#include "common.h"
#include "commands.h"
#include "config/config.h"
#include "imap/client.h"
#include "maildir/maildir.h"

struct account_conn {
	struct imap_client_settings set;
	char *secret;           /* owned, wiped on release */
	struct imap_login_hint login_hint;  /* set.login_hint points here */
};

/* Fetch the secret and fill the client settings. -1 with *error_r. */
int account_conn_init(const struct account_config *a, struct account_conn *ac,
		      char **error_r);
void account_conn_release(struct account_conn *ac);
enum mdir_layout account_layout(const struct account_config *a);
/* exit code (commands.h) for a failed connection */
int account_connect_exit(enum imap_failure f);

/* The folders named for account a by ACCOUNT:FOLDER targets (malloc'ed
 * array of borrowed strings); *all_r when a bare ACCOUNT target (or no
 * target) asks for everything, *any_r when a target names the account. */
const char **account_targets(const struct account_config *a,
			     char **targets, size_t n_targets,
			     size_t *n_r, bool *all_r, bool *any_r);
/* Sync one account (sync, status and --watch): folders NULL for all.
 * held (--watch): the caller holds the account lock and passes the
 * connection settings with the secret it fetched; NULL: fetch it here and
 * take the lock. Returns an exit status. */
int account_sync(const struct config *c, const struct account_config *a,
		 const struct global_opts *g, const struct sync_opts *so,
		 const char *const *folders, size_t n_folders,
		 bool status_only, const struct account_conn *held);

#endif
