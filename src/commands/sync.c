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

#include <errno.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

/* --watch: how long to wait for a local change before looking at the
 * servers again (the STATUS precheck makes that look cheap). */
#define WATCH_POLL_SECONDS 60

static bool folder_selected(void *ctx, const char *name)
{
	return config_folder_selected(ctx, name);
}

/* The folders named for this account by ACCOUNT:FOLDER targets; *all_r
 * when a bare ACCOUNT target (or no target) asks for everything. */
static const char **targets_for(const struct account_config *a,
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

static int run(const struct config *c, const struct global_opts *g,
	       const struct sync_opts *so, char **targets, size_t n_targets,
	       bool status_only)
{
	int code = TB_EXIT_OK;
	size_t i;

	for (i = 0; i < c->n_accounts; i++) {
		const struct account_config *a = &c->accounts[i];
		struct account_conn ac;
		struct sync_account sa;
		struct sync_options o;
		struct remote_factory rf;
		const char **folders;
		size_t n_folders;
		bool all, any;
		char *err = NULL;
		int r;

		folders = targets_for(a, targets, n_targets, &n_folders, &all,
				      &any);
		if (!any) {
			free(folders);
			continue;
		}
		if (account_conn_init(a, &ac, &err) < 0) {
			log_error("%s: %s", a->name, err);
			free(err);
			free(folders);
			code = tb_exit_merge(code, TB_EXIT_USAGE);
			continue;
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
		o.folders = all ? NULL : folders;
		o.n_folders = all ? 0 : n_folders;
		o.json = g->json;
		o.progress = !g->json && !g->quiet && !status_only &&
			     !so->dry_run && isatty(STDERR_FILENO) &&
			     isatty(STDOUT_FILENO);
		o.summary = g->verbosity >= 1 && !g->json;

		rf.open = remote_imap_open;
		rf.ctx = &ac.set;
		r = sync_account_run(&sa, &rf, &o);
		code = tb_exit_merge(code, r);
		account_conn_release(&ac);
		free(folders);
	}
	return code;
}

/* Watch cur/ and new/ of every local folder of every account. */
static int watch_local(const struct config *c)
{
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	size_t i, j;

	if (fd < 0)
		return -1;
	for (i = 0; i < c->n_accounts; i++) {
		const struct account_config *a = &c->accounts[i];
		char **names = NULL;
		size_t n = 0;
		char *err = NULL;

		if (mdir_list_folders(a->maildir, account_layout(a), &names, &n,
				      &err) < 0) {
			free(err);
			continue;
		}
		for (j = 0; j < n; j++) {
			char *path = NULL, *sub;

			if (mdir_map_name(a->maildir, account_layout(a), names[j],
					  &path, &err) < 0) {
				FREE_AND_NULL(err);
				continue;
			}
			sub = xasprintf("%s/cur", path);
			(void)inotify_add_watch(fd, sub, IN_CREATE | IN_DELETE |
						IN_MOVED_FROM | IN_MOVED_TO);
			free(sub);
			sub = xasprintf("%s/new", path);
			(void)inotify_add_watch(fd, sub, IN_CREATE | IN_DELETE |
						IN_MOVED_FROM | IN_MOVED_TO);
			free(sub);
			free(path);
		}
		mdir_names_free(names, n);
	}
	return fd;
}

/* Wait until a local folder changes or the poll interval passes. */
static void watch_wait(const struct config *c)
{
	int fd = watch_local(c);
	struct pollfd pfd;
	char buf[4096];

	if (fd < 0) {
		sleep(WATCH_POLL_SECONDS);
		return;
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, WATCH_POLL_SECONDS * 1000) > 0) {
		/* let a reader finish a burst of renames before syncing */
		do {
			while (read(fd, buf, sizeof(buf)) > 0)
				;
		} while (poll(&pfd, 1, 1000) > 0);
	}
	close(fd);
}

int cmd_sync(const struct config *c, const struct global_opts *g,
	     const struct sync_opts *o)
{
	int code;

	for (;;) {
		code = run(c, g, o, o->targets, o->n_targets, false);
		if (!o->watch || code == TB_EXIT_USAGE || code == TB_EXIT_AUTH)
			return code;
		watch_wait(c);
	}
}

int cmd_status(const struct config *c, const struct global_opts *g,
	       char **targets, size_t n_targets)
{
	struct sync_opts so;

	memset(&so, 0, sizeof(so));
	return run(c, g, &so, targets, n_targets, true);
}
