/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * commands/sync.c - `twinbox sync` and `twinbox status`: each selected
 * account handed to the engine, exit codes merged.
 */
#include "common.h"
#include "commands.h"
#include "commands/account.h"
#include "sync/sync.h"
#include "sync/remote-imap.h"
#include "util/log.h"
#include "watch/watch.h"

#include <unistd.h>

static bool folder_selected(void *ctx, const char *name)
{
	return config_folder_selected(ctx, name);
}

/* The folders named for this account by ACCOUNT:FOLDER targets; *all_r
 * when a bare ACCOUNT target (or no target) asks for everything. */
const char **account_targets(const struct account_config *a,
			     char **targets, size_t n_targets,
			     size_t *n_r, bool *all_r, bool *any_r)
{
	const char **out = xcalloc(n_targets + 1, sizeof(*out));
	size_t i, n = 0, len = strlen(a->name);

	*all_r = n_targets == 0;
	*any_r = n_targets == 0;
	for (i = 0; i < n_targets; i++) {
		const char *t = targets[i];

		if (strncmp(t, a->name, len) != 0)
			continue;
		if (t[len] == '\0') {
			*all_r = true;
			*any_r = true;
		} else if (t[len] == ':') {
			out[n++] = t + len + 1;
			*any_r = true;
		}
	}
	*n_r = n;
	return out;
}

int account_sync(const struct config *c, const struct account_config *a,
		 const struct global_opts *g, const struct sync_opts *so,
		 const char *const *folders, size_t n_folders,
		 bool status_only, const struct account_conn *held)
{
	struct account_conn ac;
	struct sync_account sa;
	struct sync_options o;
	struct remote_factory rf;
	char *err = NULL;
	int r;

	if (held != NULL) {
		ac = *held;
	} else if (account_conn_init(a, &ac, &err) < 0) {
		log_error("%s: %s", a->name, err);
		free(err);
		return TB_EXIT_USAGE;
	}
	memset(&sa, 0, sizeof(sa));
	sa.name = a->name;
	sa.maildir = a->maildir;
	sa.layout = account_layout(a);
	sa.state_dir = c->state_dir;
	sa.dir_new = a->sync_new;
	sa.dir_flags = a->sync_flags;
	sa.dir_deletions = a->sync_deletions;
	sa.dir_moves = a->sync_moves;
	sa.dir_folders = a->sync_folders;
	sa.connections = a->connections;
	sa.copies_copy = a->copies == COPIES_COPY;
	sa.gmail = a->gmail;
	sa.selected = folder_selected;
	sa.selected_ctx = (void *)a;

	memset(&o, 0, sizeof(o));
	o.dry_run = so->dry_run || status_only;
	o.status_only = status_only;
	o.full = so->full;
	o.force = so->force;
	o.pull_only = so->pull_only;
	o.push_only = so->push_only;
	o.folders = folders;
	o.n_folders = folders != NULL ? n_folders : 0;
	o.json = g->json;
	o.progress = !g->json && !g->quiet && !status_only &&
		     !so->dry_run && !so->watch && isatty(STDERR_FILENO) &&
		     isatty(STDOUT_FILENO);
	o.summary = g->verbosity >= 1 && !g->json;
	o.lock_held = held != NULL;

	rf.open = remote_imap_open;
	rf.open_first = remote_imap_open_first;
	rf.ctx = &ac.set;
	rf.login_hint = ac.set.login_hint;
	r = sync_account_run(&sa, &rf, &o);
	if (held == NULL)
		account_conn_release(&ac);
	return r;
}

static int run(const struct config *c, const struct global_opts *g,
	       const struct sync_opts *so, char **targets, size_t n_targets,
	       bool status_only)
{
	int code = TB_EXIT_OK;
	size_t i;

	for (i = 0; i < c->n_accounts; i++) {
		const struct account_config *a = &c->accounts[i];
		const char **folders;
		size_t n_folders;
		bool all, any;

		folders = account_targets(a, targets, n_targets, &n_folders, &all,
				      &any);
		if (any)
			code = tb_exit_merge(code, account_sync(c, a, g, so,
				all ? NULL : folders, n_folders, status_only,
				NULL));
		free(folders);
	}
	return code;
}

int cmd_sync(const struct config *c, const struct global_opts *g,
	     const struct sync_opts *o)
{
	if (o->watch)
		return watch_run(c, g, o);
	return run(c, g, o, o->targets, o->n_targets, false);
}

int cmd_status(const struct config *c, const struct global_opts *g,
	       char **targets, size_t n_targets)
{
	struct sync_opts so;

	memset(&so, 0, sizeof(so));
	return run(c, g, &so, targets, n_targets, true);
}
