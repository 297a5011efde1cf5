/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * log.h - messages to stderr, by level.
 *
 * Wording: lower case, name the failure first, quote names, no final full
 * stop. log_error/log_warn are always shown (log_warn not under -q);
 * log_info needs -v, log_debug -vv, log_trace (the IMAP protocol trace) -vvv.
 * Callers must never pass a credential to any of these.
 */
#ifndef TB_LOG_H
#define TB_LOG_H

#include "common.h"

enum log_level {
	LOG_QUIET = -1,   /* -q: errors only */
	LOG_NORMAL = 0,   /* warnings too */
	LOG_VERBOSE = 1,  /* -v */
	LOG_DEBUG = 2,    /* -vv */
	LOG_TRACE = 3,    /* -vvv */
};

extern int log_verbosity;

void log_set_verbosity(int level);
/* Put the local date and time in front of every message (a long-running
 * sync --watch that is not under systemd, whose journal adds its own). */
void log_set_wallclock(bool on);
static inline bool log_enabled(enum log_level l) { return log_verbosity >= (int)l; }

void log_error(const char *fmt, ...) ATTR_PRINTF(1, 2);
/* Like log_error, with ": strerror(errno)" appended. */
void log_errno(const char *fmt, ...) ATTR_PRINTF(1, 2);
void log_warn(const char *fmt, ...) ATTR_PRINTF(1, 2);
void log_info(const char *fmt, ...) ATTR_PRINTF(1, 2);
void log_debug(const char *fmt, ...) ATTR_PRINTF(1, 2);
void log_trace(const char *fmt, ...) ATTR_PRINTF(1, 2);

#endif
