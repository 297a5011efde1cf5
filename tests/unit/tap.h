/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tap.h - a minimal TAP producer for unit tests, header-only.
 *
 *   ok(cond, "name %d", i);    is_int(got, want, "name");
 *   is_str(got, want, "name"); is_mem(p, n, q, m, "name");
 *   return tap_done();         (prints the plan, exit status 0/1)
 */
#ifndef TB_TAP_H
#define TB_TAP_H

#include "common.h"
#include <stdarg.h>
#include <inttypes.h>

static int tap_n, tap_failed;

ATTR_PRINTF(2, 3) static inline int ok(int cond, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond)
		tap_failed++;
	fflush(stdout);
	return cond;
}

#define is_int(got, want, ...) do { \
	long long g_ = (long long)(got), w_ = (long long)(want); \
	if (!ok(g_ == w_, __VA_ARGS__)) \
		printf("#   got %lld, want %lld\n", g_, w_); \
} while (0)

#define is_str(got, want, ...) do { \
	const char *g_ = (got), *w_ = (want); \
	int c_ = (g_ == NULL && w_ == NULL) || \
		 (g_ && w_ && strcmp(g_, w_) == 0); \
	if (!ok(c_, __VA_ARGS__)) \
		printf("#   got '%s', want '%s'\n", g_ ? g_ : "(null)", \
		       w_ ? w_ : "(null)"); \
} while (0)

#define is_mem(g, gn, w, wn, ...) do { \
	size_t gn_ = (gn), wn_ = (wn); \
	if (!ok(gn_ == wn_ && memcmp((g), (w), gn_) == 0, __VA_ARGS__)) \
		printf("#   got %zu bytes '%.*s', want %zu bytes '%.*s'\n", \
		       gn_, (int)gn_, (const char *)(g), wn_, (int)wn_, \
		       (const char *)(w)); \
} while (0)

static inline void diag(const char *msg)
{
	printf("# %s\n", msg);
}

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
