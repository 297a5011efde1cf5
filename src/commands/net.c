/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * commands/net.c - check-config (online) and list-folders.
 */
#include "common.h"
#include "commands.h"
#include "commands/account.h"
#include "util/log.h"

#include <unistd.h>

static int connect_account(const struct account_config *a,
			   struct account_conn *ac, struct imap_client **c_r)
{
	enum imap_failure fail = IMAP_FAIL_NONE;
	char *err = NULL;

	if (account_conn_init(a, ac, &err) < 0) {
		log_error("%s: %s", a->name, err);
		free(err);
		return TB_EXIT_USAGE;
	}
	if (imap_client_connect(&ac->set, c_r, &fail, &err) < 0) {
		log_error("%s: %s", a->name, err);
		free(err);
		account_conn_release(ac);
		return account_connect_exit(fail);
	}
	return TB_EXIT_OK;
}

int cmd_check_config_online(const struct config *c, const struct global_opts *g)
{
	int code = TB_EXIT_OK;
	size_t i;

	for (i = 0; i < c->n_accounts; i++) {
		const struct account_config *a = &c->accounts[i];
		struct account_conn ac;
		struct imap_client *cl = NULL;
		int r = connect_account(a, &ac, &cl);

		if (r == TB_EXIT_OK) {
			if (!g->quiet)
				printf("%s: ok (%s:%u, logged in as %s)\n", a->name,
				       a->host, a->port, a->user);
			imap_client_close(&cl);
			account_conn_release(&ac);
		}
		code = tb_exit_merge(code, r);
	}
	return code;
}

int cmd_list_folders(const struct config *c, const struct global_opts *g,
		     const char *account)
{
	const struct account_config *a = config_find_account(c, account);
	struct account_conn ac;
	struct imap_client *cl = NULL;
	struct imap_folder *f = NULL;
	size_t n = 0, i;
	char *err = NULL;
	int r;

	(void)g;
	if (a == NULL) {
		log_error("no account '%s' in %s", account, c->file);
		return TB_EXIT_USAGE;
	}
	r = connect_account(a, &ac, &cl);
	if (r != TB_EXIT_OK)
		return r;
	if (imap_list_folders(cl, &f, &n, &err) < 0) {
		log_error("%s: cannot list folders: %s", a->name, err);
		free(err);
		r = account_connect_exit(imap_client_failure(cl));
		if (r == TB_EXIT_OK)
			r = TB_EXIT_FAILED;
		imap_client_free(&cl);
		account_conn_release(&ac);
		return r;
	}
	for (i = 0; i < n; i++) {
		char *path = NULL;

		if (f[i].attrs & (IMAP_LIST_NOSELECT | IMAP_LIST_NONEXISTENT))
			continue;
		if (f[i].name == NULL) {
			log_warn("%s: skipping server folder '%s': its name cannot "
				 "be mapped to UTF-8 safely", a->name, f[i].wire);
			continue;
		}
		if (mdir_map_name(a->maildir, account_layout(a), f[i].name,
				  &path, &err) < 0) {
			log_warn("%s: skipping server folder '%s': %s", a->name,
				 f[i].name, err);
			FREE_AND_NULL(err);
			continue;
		}
		printf("%s\t%s\t%s\n", f[i].name,
		       imap_list_special_use(f[i].attrs), path);
		free(path);
	}
	fflush(stdout);
	imap_folders_free(f, n);
	imap_client_close(&cl);
	account_conn_release(&ac);
	return TB_EXIT_OK;
}
