/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * common.h - included first by every .c file of twinbox.
 *
 * Holds config.h, the standard headers every module uses, the attribute
 * macros and the never-failing allocators (out of memory aborts: a CLI tool
 * has no sensible recovery, and this keeps every caller free of untested
 * error paths).
 */
#ifndef TB_COMMON_H
#define TB_COMMON_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <assert.h>

#define ATTR_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define ATTR_NORETURN __attribute__((noreturn))
#define ATTR_WARN_UNUSED __attribute__((warn_unused_result))
#define ATTR_UNUSED __attribute__((unused))
#define ATTR_MALLOC __attribute__((malloc))

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

/* Programmer mistakes only; never for input from the network or disk. */
#define BUG(...) tb_bug(__FILE__, __LINE__, __func__, __VA_ARGS__)
#define ASSERT(cond) \
	do { if (!(cond)) BUG("assertion failed: %s", #cond); } while (0)

void tb_bug(const char *file, int line, const char *func, const char *fmt, ...)
	ATTR_PRINTF(4, 5) ATTR_NORETURN;

/* Allocators that never return NULL (they abort on exhaustion). */
void *xmalloc(size_t size) ATTR_MALLOC;
void *xcalloc(size_t nmemb, size_t size) ATTR_MALLOC;
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s) ATTR_MALLOC;
char *xstrndup(const char *s, size_t n) ATTR_MALLOC;
void *xmemdup(const void *p, size_t n) ATTR_MALLOC;
char *xasprintf(const char *fmt, ...) ATTR_PRINTF(1, 2) ATTR_MALLOC;

/* Free *pp and set it to NULL. */
#define FREE_AND_NULL(p) do { free(p); (p) = NULL; } while (0)

/* Overwrite secrets before their memory is released. */
void secure_zero(void *p, size_t n);

/* Grow *arr (of *alloc elements) to hold at least n elements. */
#define ALLOC_GROW(arr, n, alloc) \
	do { \
		if ((size_t)(n) > (alloc)) { \
			size_t tb_na_ = (alloc) ? (alloc) * 2 : 16; \
			while (tb_na_ < (size_t)(n)) tb_na_ *= 2; \
			(arr) = xreallocarray((arr), tb_na_, sizeof(*(arr))); \
			(alloc) = tb_na_; \
		} \
	} while (0)

#endif
