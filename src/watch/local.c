/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * local.c - the Maildir side of sync --watch: inotify on every folder's
 * cur/ and new/ (a mail reader renames files there for flag changes,
 * delivers into new/, deletes), and on the directories that hold folders,
 * so that a folder made while the watcher runs is seen and watched too.
 * tmp/ is not watched: a file there is not a message yet.
 */
#include "common.h"
#include "watch/watch-private.h"
#include "maildir/maildir.h"
#include "util/log.h"

#include <errno.h>
#include <sys/inotify.h>
#include <unistd.h>

#define MSG_EVENTS (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | \
		    IN_CLOSE_WRITE)
#define DIR_EVENTS (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | \
		    IN_ONLYDIR)

int watch_local_open(struct watch *w)
{
	w->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ino_fd < 0) {
		log_errno("cannot watch the Maildir (inotify)");
		return -1;
	}
	return 0;
}

void watch_local_close(struct watch *w)
{
	size_t i;

	if (w->ino_fd >= 0)
		close(w->ino_fd);
	w->ino_fd = -1;
	for (i = 0; i < w->n_wds; i++)
		free(w->wds[i].folder);
	free(w->wds);
	w->wds = NULL;
	w->n_wds = w->alloc_wds = 0;
}

static struct watch_wd *find_wd(struct watch *w, int wd)
{
	size_t i;

	for (i = 0; i < w->n_wds; i++)
		if (w->wds[i].wd == wd)
			return &w->wds[i];
	return NULL;
}

static void add_watch(struct watch_account *wa, const char *path,
		      uint32_t mask, const char *folder)
{
	struct watch *w = wa->w;
	struct watch_wd *e;
	int wd = inotify_add_watch(w->ino_fd, path, mask);

	if (wd < 0) {
		if (errno != ENOENT && errno != ENOTDIR)
			log_warn("%s: cannot watch '%s': %s", wa->a->name,
				 path, strerror(errno));
		return;
	}
	e = find_wd(w, wd);
	if (e == NULL) {
		ALLOC_GROW(w->wds, w->n_wds + 1, w->alloc_wds);
		e = &w->wds[w->n_wds++];
		e->wd = wd;
		e->folder = NULL;
	}
	e->wa = wa;
	free(e->folder);
	e->folder = folder != NULL ? xstrdup(folder) : NULL;
}

void watch_local_scan(struct watch_account *wa)
{
	const struct account_config *a = wa->a;
	enum mdir_layout layout = account_layout(a);
	char **names = NULL, *err = NULL;
	size_t i, n = 0;

	wa->rescan = false;
	if (wa->w->ino_fd < 0)
		return;
	/* the root holds the top folders in either layout */
	add_watch(wa, a->maildir, DIR_EVENTS, NULL);
	if (mdir_list_folders(a->maildir, layout, &names, &n, &err) < 0) {
		log_warn("%s: %s", a->name, err);
		free(err);
		return;
	}
	for (i = 0; i < n; i++) {
		char *path = NULL, *sub;

		if (mdir_map_name(a->maildir, layout, names[i], &path,
				  &err) < 0) {
			FREE_AND_NULL(err);
			continue;
		}
		if (strcmp(path, a->maildir) != 0)
			add_watch(wa, path, DIR_EVENTS, NULL);
		sub = xasprintf("%s/cur", path);
		add_watch(wa, sub, MSG_EVENTS | IN_ONLYDIR, names[i]);
		free(sub);
		sub = xasprintf("%s/new", path);
		add_watch(wa, sub, MSG_EVENTS | IN_ONLYDIR, names[i]);
		free(sub);
		free(path);
	}
	mdir_names_free(names, n);
}

static void forget_wd(struct watch *w, struct watch_wd *e)
{
	free(e->folder);
	*e = w->wds[--w->n_wds];
}

static void handle(struct watch *w, const struct inotify_event *ev)
{
	struct watch_wd *e;
	size_t i;

	if (ev->mask & IN_Q_OVERFLOW) {
		/* events were lost: look at everything */
		log_debug("inotify queue overflow");
		for (i = 0; i < w->n_accounts; i++) {
			watch_mark_due(&w->accounts[i], NULL, WATCH_DEBOUNCE_MS);
			w->accounts[i].rescan = true;
		}
		return;
	}
	e = find_wd(w, ev->wd);
	if (e == NULL)
		return;
	if (ev->mask & IN_IGNORED) {
		/* the directory is gone (a folder deleted or renamed) */
		watch_mark_due(e->wa, NULL, WATCH_DEBOUNCE_MS);
		e->wa->rescan = true;
		forget_wd(w, e);
		return;
	}
	if (e->folder != NULL) {
		log_debug("%s: local change in '%s'", e->wa->a->name, e->folder);
		watch_mark_due(e->wa, e->folder, WATCH_DEBOUNCE_MS);
	} else if (ev->mask & IN_ISDIR) {
		/* a folder (or its cur/, new/) came or went */
		log_debug("%s: local folders changed", e->wa->a->name);
		watch_mark_due(e->wa, NULL, WATCH_DEBOUNCE_MS);
		e->wa->rescan = true;
	}
}

void watch_local_input(struct watch *w)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		ssize_t n = read(w->ino_fd, buf, sizeof(buf));
		char *p;

		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				log_errno("inotify read");
			return;
		}
		for (p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;

			handle(w, ev);
			p += sizeof(*ev) + ev->len;
		}
	}
}
