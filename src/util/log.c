/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common.h"
#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <time.h>

int log_verbosity = LOG_NORMAL;
static bool log_wallclock;

void log_set_wallclock(bool on)
{
	log_wallclock = on;
}

void log_set_verbosity(int level)
{
	log_verbosity = level;
}

/* TWINBOX_LOG_TIMES=1 puts the milliseconds since the first message in
 * front of every message: where a run spends its time, for developers. */
static double log_clock(void)
{
	static int enabled = -1;
	static double start;
	struct timespec ts;
	double now;

	if (enabled < 0) {
		const char *s = getenv("TWINBOX_LOG_TIMES");

		enabled = s != NULL && *s != '\0' && strcmp(s, "0") != 0;
	}
	if (!enabled)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
	if (start == 0)
		start = now;
	return now - start;
}

ATTR_PRINTF(2, 0) static void vlog(const char *prefix, const char *fmt, va_list ap,
		 const char *suffix)
{
	char line[8192];
	char stamp[32] = "";
	double ms = log_clock();
	int n;

	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	if (ms >= 0) {
		snprintf(stamp, sizeof(stamp), "[%9.3f] ", ms);
	} else if (log_wallclock) {
		time_t t = time(NULL);
		struct tm tm;

		if (localtime_r(&t, &tm) != NULL)
			strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S ", &tm);
	}
	/* One fprintf per message keeps lines whole across threads. */
	fprintf(stderr, "twinbox: %s%s%s%s%s\n", stamp, prefix, line,
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
