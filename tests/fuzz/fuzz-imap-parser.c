/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-imap-parser.c - libFuzzer target for the IMAP response parser.
 *
 * The input is parsed twice with small limits: once fed in two pieces
 * split at a point derived from the data, once fed whole. Every complete
 * response goes through all the imap_response_* interpreters; both runs
 * must give the same responses (canonical dumps), the same sink traffic
 * and the same error at the same offset, or the target aborts.
 */
#include "common.h"
#include "imap/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_sink {
	uint64_t announced, got, total, sum;
	unsigned bodies;
	bool open;
};

static int fz_begin(void *ctx, uint32_t seq, const char *section, uint64_t size)
{
	struct fz_sink *s = ctx;

	if (s->open || section == NULL || section[0] == '\0')
		abort();
	s->open = true;
	s->announced = size;
	s->got = 0;
	s->bodies++;
	s->sum = s->sum * 33 + seq + size + strlen(section);
	return 0;
}

static int fz_data(void *ctx, const void *p, size_t n)
{
	struct fz_sink *s = ctx;
	const unsigned char *b = p;
	size_t i;

	if (!s->open || n == 0 || s->got + n > s->announced)
		abort();
	for (i = 0; i < n; i++)
		s->sum = s->sum * 31 + b[i];
	s->got += n;
	s->total += n;
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

static uint64_t hash_str(uint64_t h, const char *s)
{
	while (*s != '\0')
		h = h * 131 + (unsigned char)*s++;
	return h * 131 + 1;
}

/* Run every interpreter; fold the results into the hash. */
static uint64_t interpret(const struct imap_response *r, uint64_t h)
{
	struct imap_fetch f;
	struct imap_list l;
	struct imap_status_data st;
	struct imap_esearch e;
	const char *err, *set;
	bool earlier;
	char *d;

	if (imap_response_fetch(r, &f, &err) == 0)
		h = h * 7 + f.uid + f.flags + f.modseq + (uint64_t)f.internaldate +
		    f.body_size + f.header_len;
	if (imap_response_list(r, &l, &err) == 0) {
		h = hash_str(h, imap_list_special_use(l.attrs));
		if (strlen(l.name) != l.name_len)
			abort();
	}
	if (imap_response_status(r, &st, &err) == 0)
		h = h * 7 + st.messages + st.uidnext + st.highestmodseq;
	if (imap_response_vanished(r, &earlier, &set, &err) == 0)
		h = hash_str(h, set);
	if (imap_response_esearch(r, &e, &err) == 0)
		h = h * 7 + e.count + (e.all ? strlen(e.all) : 0);
	if (r->code.uidset != NULL) {
		size_t pos = 0;
		uint32_t lo, hi;
		bool bad;

		while (imap_uidset_next(r->code.uidset, &pos, &lo, &hi, &bad))
			if (lo > hi || lo == 0)
				abort();
		if (bad)
			abort();   /* the parser validated it */
	}
	d = imap_response_dump(r);
	h = hash_str(h, d);
	free(d);
	return h;
}

struct fz_result {
	uint64_t hash;
	size_t responses, err_at;
	int last;
	struct fz_sink sink;
};

static void parse(const uint8_t *data, size_t size, size_t split, struct fz_result *res)
{
	struct imap_parser_limits lim;
	struct imap_parser *p;
	struct imap_body_sink sink = { fz_begin, fz_data, fz_end, &res->sink };
	const struct imap_response *r;
	size_t pos = 0, consumed, end;
	int ret;

	memset(res, 0, sizeof(*res));
	imap_parser_limits_default(&lim);
	lim.max_line = 4096;
	lim.max_literal = 1024;
	lim.max_body = 8192;
	lim.max_depth = 8;
	lim.max_args = 256;
	p = imap_parser_new(&lim);
	imap_parser_set_body_sink(p, &sink);
	for (;;) {
		end = pos < split ? split : size;
		ret = imap_parser_feed(p, data + pos, end - pos, &consumed, &r);
		if (consumed > end - pos)
			abort();
		pos += consumed;
		res->last = ret;
		if (ret < 0) {
			const char *e = imap_parser_error(p);

			if (e[0] == '\0')
				abort();
			res->hash = hash_str(res->hash, e);
			res->err_at = pos;
			break;
		}
		if (ret > 0) {
			res->responses++;
			res->hash = interpret(r, res->hash);
		} else if (pos != end) {
			abort();          /* "need more" must consume everything */
		}
		if (pos == size && ret == 0)
			break;
	}
	imap_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_result a, b;
	size_t split;

	split = size > 0 ? (data[0] * 31u + data[size - 1] * 7u + size) % (size + 1) : 0;
	parse(data, size, split, &a);
	parse(data, size, 0, &b);
	if (a.hash != b.hash || a.responses != b.responses || a.err_at != b.err_at ||
	    a.last != b.last || a.sink.sum != b.sink.sum ||
	    a.sink.total != b.sink.total || a.sink.bodies != b.sink.bodies)
		abort();
	return 0;
}
