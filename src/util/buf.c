/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common.h"
#include "util/buf.h"

char buf_empty_[1];

void buf_init(struct buf *b, size_t max)
{
	b->data = buf_empty_;
	b->len = 0;
	b->alloc = 0;
	b->max = max;
}

void buf_release(struct buf *b)
{
	if (b->alloc)
		free(b->data);
	buf_init(b, b->max);
}

void buf_release_secure(struct buf *b)
{
	if (b->alloc)
		secure_zero(b->data, b->alloc);
	buf_release(b);
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->alloc)
		b->data[0] = '\0';
}

char *buf_take(struct buf *b, size_t *len_r)
{
	char *p;

	if (len_r)
		*len_r = b->len;
	if (!b->alloc) {
		p = xmalloc(1);
		p[0] = '\0';
	} else {
		p = b->data;
	}
	buf_init(b, b->max);
	return p;
}

int buf_reserve(struct buf *b, size_t n)
{
	size_t want, na;

	if (n > b->max - b->len || b->len + n == SIZE_MAX)
		return -1;
	want = b->len + n + 1;
	if (want <= b->alloc)
		return 0;
	na = b->alloc ? b->alloc : 64;
	while (na < want)
		na = na > SIZE_MAX / 2 ? want : na * 2;
	if (b->alloc) {
		b->data = xreallocarray(b->data, na, 1);
	} else {
		b->data = xmalloc(na);
		b->data[0] = '\0';
	}
	b->alloc = na;
	return 0;
}

int buf_add(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -1;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int buf_addstr(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int buf_addch(struct buf *b, char c)
{
	return buf_add(b, &c, 1);
}

int buf_vaddf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || buf_reserve(b, (size_t)n) < 0)
		return -1;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vaddf(b, fmt, ap);
	va_end(ap);
	return r;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

void buf_truncate(struct buf *b, size_t len)
{
	if (len < b->len) {
		b->len = len;
		b->data[len] = '\0';
	}
}
