/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * buf.h - a growable byte buffer with a ceiling.
 *
 * Invariants after buf_init(): data is never NULL; data[len] is always '\0'
 * (len does not count it); len <= max. Only this API touches alloc.
 * Appends that would take len past max fail with -1 and leave the buffer
 * unchanged: every instance names its largest legitimate size, so a hostile
 * peer cannot make it grow without bound.
 */
#ifndef TB_BUF_H
#define TB_BUF_H

#include "common.h"
#include <stdarg.h>

#define BUF_MAX_IMAP_LINE   (1024 * 1024)   /* one response line */
#define BUF_MAX_CMD         (1024 * 1024)   /* one command we send */
#define BUF_MAX_HEADER      (1024 * 1024)   /* a message header */
#define BUF_MAX_PATH        4096
#define BUF_MAX_UNLIMITED   SIZE_MAX

struct buf {
	char *data;
	size_t len;
	size_t alloc;
	size_t max;
};

#define BUF_INIT_MAX(m) { (char *)buf_empty_, 0, 0, (m) }
extern char buf_empty_[1];

void buf_init(struct buf *b, size_t max);
/* Free the contents; the buffer must be init'ed again before reuse. */
void buf_release(struct buf *b);
/* Like buf_release(), but wipes the bytes first (for secrets). */
void buf_release_secure(struct buf *b);
/* Keep the allocation, drop the contents. */
void buf_reset(struct buf *b);
/* Hand the heap block to the caller (NUL-terminated) and reset. */
char *buf_take(struct buf *b, size_t *len_r);

int buf_add(struct buf *b, const void *p, size_t n) ATTR_WARN_UNUSED;
int buf_addstr(struct buf *b, const char *s) ATTR_WARN_UNUSED;
int buf_addch(struct buf *b, char c) ATTR_WARN_UNUSED;
int buf_addf(struct buf *b, const char *fmt, ...)
	ATTR_PRINTF(2, 3) ATTR_WARN_UNUSED;
int buf_vaddf(struct buf *b, const char *fmt, va_list ap)
	ATTR_PRINTF(2, 0) ATTR_WARN_UNUSED;
/* Make room for n more bytes without changing len. */
int buf_reserve(struct buf *b, size_t n) ATTR_WARN_UNUSED;
/* Remove the first n bytes. */
void buf_consume(struct buf *b, size_t n);
void buf_truncate(struct buf *b, size_t len);

#endif
