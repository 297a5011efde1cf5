/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * watch.h - `twinbox sync --watch`: stay running and sync a folder as soon
 * as it changes on either side (SPEC "Watch mode", twinbox(1) WATCH MODE).
 */
#ifndef TB_WATCH_H
#define TB_WATCH_H

#include "common.h"
#include "commands.h"

/* Sync the targeted accounts, then keep them in step until SIGTERM or
 * SIGINT (exit 0), an authentication or TLS failure (3), a lock held by
 * another twinbox (4) or a configuration error at the start (2). c stays
 * the caller's; a SIGHUP reload lives in a config of the watcher's own. */
int watch_run(const struct config *c, const struct global_opts *g,
	      const struct sync_opts *o);

#endif
