/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-imap-parser.c - libFuzzer target for the IMAP response parser.
 *
 * The input is fed in two pieces split at a point derived from the data,
 * then the rest again until the parser stops; every complete response goes
 * through all the imap_response_* interpreters and the dump. Small limits
 * make the limit checks reachable.
 */
#include "common.h"
#include "imap/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_sink {
	uint64_t announced, got;
	bool open;
};

static int fz_begin(void *ctx, uint32_t seq ATTR_UNUSED, const char *section,
		    uint64_t size)
{
	struct fz_sink *s = ctx;

	if (s->open || section == NULL || strlen(section) == 0)
		abort();
	s->open = true;
	s->announced = size;
	s->got = 0;
	return 0;
}

static int fz_data(void *ctx, const void *p, size_t n)
{
	struct fz_sink *s = ctx;
	volatile unsigned char x;

	if (!s->open || n == 0 || s->got + n > s->announced)
		abort();
	x = ((const unsigned char *)p)[n - 1];  /* touch the bytes */
	(void)x;
	s->got += n;
	return 0;
}

static int fz_end(void *ctx)
{
	struct fz_sink *s = ctx;

	if (!s->open || s->got != s->announced)
		abort();
	s->open = false;
	return 0;
}

static void interpret(const struct imap_response *r)
{
	struct imap_fetch f;
	struct imap_list l;
	struct imap_status_data st;
	struct imap_esearch e;
	const char *err, *set;
	bool earlier;
	char *d;

	(void)imap_response_fetch(r, &f, &err);
	if (imap_response_list(r, &l, &err) == 0)
		(void)imap_list_special_use(l.attrs);
	(void)imap_response_status(r, &st, &err);
	(void)imap_response_vanished(r, &earlier, &set, &err);
	(void)imap_response_esearch(r, &e, &err);
	if (r->code.uidset != NULL) {
		size_t pos = 0;
		uint32_t lo, hi;
		bool bad;

		while (imap_uidset_next(r->code.uidset, &pos, &lo, &hi, &bad))
			if (lo > hi)
				abort();
		if (bad)
			abort();   /* the parser validated it */
	}
	d = imap_response_dump(r);
	free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_parser_limits lim;
	struct imap_parser *p;
	struct fz_sink sk = { 0, 0, false };
	struct imap_body_sink sink = { fz_begin, fz_data, fz_end, &sk };
	const struct imap_response *r;
	size_t split, pos = 0, consumed, end;
	int ret;

	imap_parser_limits_default(&lim);
	lim.max_line = 4096;
	lim.max_literal = 1024;
	lim.max_body = 8192;
	lim.max_depth = 8;
	lim.max_args = 256;
	p = imap_parser_new(&lim);
	imap_parser_set_body_sink(p, &sink);
	split = size > 0 ? (data[0] * 31u + data[size - 1] * 7u + size) % (size + 1) : 0;
	for (;;) {
		end = pos < split ? split : size;
		ret = imap_parser_feed(p, data + pos, end - pos, &consumed, &r);
		if (consumed > end - pos)
			abort();
		pos += consumed;
		if (ret < 0) {
			if (imap_parser_error(p)[0] == '\0')
				abort();
			break;
		}
		if (ret > 0)
			interpret(r);
		else if (pos != end)
			abort();          /* "need more" must consume everything */
		if (pos == size && ret == 0)
			break;
	}
	imap_parser_free(&p);
	return 0;
}
