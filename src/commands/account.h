/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * commands/account.h - an account's configuration turned into what the
 * IMAP client and the sync engine take.
 */
#ifndef TB_COMMANDS_ACCOUNT_H
#define TB_COMMANDS_ACCOUNT_H

#include "common.h"
#include "config/config.h"
#include "imap/client.h"
#include "maildir/maildir.h"

struct account_conn {
	struct imap_client_settings set;
	char *secret;           /* owned, wiped on release */
};

/* Fetch the secret and fill the client settings. -1 with *error_r. */
int account_conn_init(const struct account_config *a, struct account_conn *ac,
		      char **error_r);
void account_conn_release(struct account_conn *ac);
enum mdir_layout account_layout(const struct account_config *a);
/* exit code (commands.h) for a failed connection */
int account_connect_exit(enum imap_failure f);

#endif
