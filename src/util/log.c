/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common.h"
#include "util/log.h"

#include <errno.h>
#include <stdarg.h>

int log_verbosity = LOG_NORMAL;

void log_set_verbosity(int level)
{
	log_verbosity = level;
}

ATTR_PRINTF(2, 0) static void vlog(const char *prefix, const char *fmt, va_list ap,
		 const char *suffix)
{
	char line[8192];
	int n;

	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	/* One fprintf per message keeps lines whole across threads. */
	fprintf(stderr, "twinbox: %s%s%s%s\n", prefix, line,
		suffix ? ": " : "", suffix ? suffix : "");
}

#define LOG_BODY(cond, prefix, suffix) \
	do { \
		va_list ap; \
		if (!(cond)) \
			return; \
		va_start(ap, fmt); \
		vlog(prefix, fmt, ap, suffix); \
		va_end(ap); \
	} while (0)

void log_error(const char *fmt, ...)
{
	LOG_BODY(true, "error: ", NULL);
}

void log_errno(const char *fmt, ...)
{
	const char *e = strerror(errno);

	LOG_BODY(true, "error: ", e);
}

void log_warn(const char *fmt, ...)
{
	LOG_BODY(log_verbosity >= LOG_NORMAL, "warning: ", NULL);
}

void log_info(const char *fmt, ...)
{
	LOG_BODY(log_verbosity >= LOG_VERBOSE, "", NULL);
}

void log_debug(const char *fmt, ...)
{
	LOG_BODY(log_verbosity >= LOG_DEBUG, "debug: ", NULL);
}

void log_trace(const char *fmt, ...)
{
	LOG_BODY(log_verbosity >= LOG_TRACE, "", NULL);
}
