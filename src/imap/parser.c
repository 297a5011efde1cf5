/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * parser.c - incremental, I/O-free IMAP response parser.
 *
 * A byte-level state machine: every byte outside literal payloads goes
 * through step() exactly once, so feeding a response whole or one byte at
 * a time walks the same states and gives the same tree. Literal payloads
 * take a fast path (copied into the arena, or handed to the body sink).
 *
 * Memory: strings and finished argument arrays live in a per-response
 * arena; lists under construction live in per-depth vectors ("frames")
 * that are reused between responses. Every byte counted against max_line
 * produces at most one argument, so the arena is bounded by the limits.
 */
#include "common.h"
#include "imap/parser.h"
#include "util/buf.h"

#include <stdarg.h>
#include <strings.h>

enum pstate {
	ST_BEGIN,        /* first byte of a response */
	ST_STAR_SP,      /* after "*" */
	ST_PLUS,         /* after "+" */
	ST_WORD,         /* tag, status word, number or keyword */
	ST_TEXT_START,   /* start of resp-text */
	ST_CODE_NAME,    /* after "[" */
	ST_CODE_RAW,     /* arguments of an unstructured response code */
	ST_AFTER_CODE,   /* after "]" */
	ST_TEXT,         /* human-readable text up to CR */
	ST_LF,           /* after the final CR */
	ST_ARG,          /* expecting an argument */
	ST_SEP,          /* after an argument */
	ST_ATOM,
	ST_ATOM_BRACKET, /* inside BODY[...] */
	ST_ATOM_BRACKET_QUOTED,
	ST_ATOM_BRACKET_QESC,
	ST_QUOTED,
	ST_QUOTED_ESC,
	ST_TILDE,        /* "~" : binary literal or atom */
	ST_LIT_SIZE,     /* inside "{...}" */
	ST_LIT_CR,
	ST_LIT_LF,
	ST_LIT_DATA,     /* literal payload (fast path in feed) */
	ST_DONE,         /* a response was returned */
	ST_FAILED,
};

enum word_kind { W_TAG, W_STATUS, W_FIRST, W_KEYWORD };

struct frame {
	struct imap_arg *v;
	size_t n, alloc;
};

struct arena_block {
	struct arena_block *next;
	size_t size, used;
	max_align_t data[];
};

#define ARENA_BLOCK 4096
#define KEEP_MAX (64 * 1024)   /* buffers larger than this are freed between responses */

struct imap_parser {
	struct imap_parser_limits lim;
	struct imap_body_sink sink;
	bool have_sink;

	enum pstate state;
	enum word_kind word;
	char error[256];

	struct arena_block *arena;
	struct imap_response resp;

	struct buf tok;          /* token being read */
	size_t line_len;         /* bytes of this response outside literals */
	size_t nargs;
	uint64_t mem_literals;   /* in-memory literal bytes of this response */

	struct frame *frames;    /* frames[0]: top level (or code args) */
	size_t n_frames;
	unsigned depth;
	bool in_code;            /* parsing the arguments of a resp-text-code */

	bool atom_bracketed;
	unsigned bracket_depth;

	/* literal being read */
	bool lit_streamed, lit_digit;
	uint64_t lit_size, lit_left;
	char *lit_buf;
	size_t lit_pos;
};

/* ---- arena ---- */

/* align: a power of two, at most sizeof(max_align_t) */
static void *arena_alloc_aligned(struct imap_parser *p, size_t n, size_t align)
{
	struct arena_block *b = p->arena;
	size_t off;

	if (b != NULL) {
		off = (b->used + align - 1) & ~(align - 1);
		if (off <= b->size && n <= b->size - off) {
			b->used = off + n;
			return (char *)b->data + off;
		}
	}
	/* UNSAFE: n is bounded by the limits (max_literal + 1 at most) */
	if (n > SIZE_MAX - sizeof(*b) - sizeof(max_align_t))
		BUG("arena allocation of %zu bytes", n);
	{
		size_t size = n > ARENA_BLOCK ? n : ARENA_BLOCK;

		b = xmalloc(sizeof(*b) + size);
		b->size = size;
		b->used = n;
		if (p->arena != NULL && n > ARENA_BLOCK) {
			/* keep the current block for small allocations */
			b->next = p->arena->next;
			p->arena->next = b;
		} else {
			b->next = p->arena;
			p->arena = b;
		}
	}
	return b->data;
}

static char *arena_strdup(struct imap_parser *p, const char *s, size_t len)
{
	char *d = arena_alloc_aligned(p, len + 1, 1);

	if (len)
		memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

static void arena_reset(struct imap_parser *p)
{
	struct arena_block *b, *next, *keep = NULL;

	for (b = p->arena; b != NULL; b = next) {
		next = b->next;
		if (keep == NULL && b->size <= KEEP_MAX) {
			keep = b;
			continue;
		}
		free(b);
	}
	if (keep != NULL) {
		keep->next = NULL;
		keep->used = 0;
	}
	p->arena = keep;
}

/* ---- errors ---- */

ATTR_PRINTF(2, 3)
static int fail(struct imap_parser *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->error, sizeof(p->error), fmt, ap);
	va_end(ap);
	p->state = ST_FAILED;
	return -1;
}

/* A printable description of an unexpected byte. */
static const char *byte_name(unsigned char c, char buf[8])
{
	if (c == '\r')
		return "CR";
	if (c == '\n')
		return "LF";
	if (c == ' ')
		return "space";
	if (c > 0x20 && c < 0x7f)
		snprintf(buf, 8, "'%c'", c);
	else
		snprintf(buf, 8, "0x%02x", c);
	return buf;
}

static int fail_byte(struct imap_parser *p, unsigned char c, const char *where)
{
	char b[8];

	return fail(p, "unexpected %s %s", byte_name(c, b), where);
}

/* ---- life cycle ---- */

void imap_parser_limits_default(struct imap_parser_limits *l_r)
{
	l_r->max_line = 1024 * 1024;
	l_r->max_literal = 1024 * 1024;
	l_r->max_body = (uint64_t)1024 * 1024 * 1024;
	l_r->max_depth = 32;
	l_r->max_args = 1000000;
}

static void reset_response(struct imap_parser *p)
{
	size_t i;

	arena_reset(p);
	memset(&p->resp, 0, sizeof(p->resp));
	if (p->tok.alloc > KEEP_MAX)
		buf_release(&p->tok);
	buf_reset(&p->tok);
	for (i = 0; i < p->n_frames; i++) {
		p->frames[i].n = 0;
		if (p->frames[i].alloc * sizeof(struct imap_arg) > KEEP_MAX) {
			FREE_AND_NULL(p->frames[i].v);
			p->frames[i].alloc = 0;
		}
	}
	p->line_len = 0;
	p->nargs = 0;
	p->mem_literals = 0;
	p->depth = 0;
	p->in_code = false;
	p->state = ST_BEGIN;
}

struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits)
{
	struct imap_parser *p = xcalloc(1, sizeof(*p));

	if (limits != NULL)
		p->lim = *limits;
	else
		imap_parser_limits_default(&p->lim);
	buf_init(&p->tok, p->lim.max_line);
	p->n_frames = 1;
	p->frames = xcalloc(1, sizeof(*p->frames));
	reset_response(p);
	return p;
}

void imap_parser_free(struct imap_parser **pp)
{
	struct imap_parser *p = *pp;
	size_t i;

	if (p == NULL)
		return;
	p->resp.args = NULL;
	arena_reset(p);
	free(p->arena);
	buf_release(&p->tok);
	for (i = 0; i < p->n_frames; i++)
		free(p->frames[i].v);
	free(p->frames);
	free(p);
	*pp = NULL;
}

void imap_parser_set_body_sink(struct imap_parser *p, const struct imap_body_sink *sink)
{
	if (sink != NULL) {
		p->sink = *sink;
		p->have_sink = true;
	} else {
		memset(&p->sink, 0, sizeof(p->sink));
		p->have_sink = false;
	}
}

const char *imap_parser_error(const struct imap_parser *p)
{
	return p->error[0] != '\0' ? p->error : "no error";
}

size_t imap_parser_mem_used(const struct imap_parser *p)
{
	const struct arena_block *b;
	size_t n = sizeof(*p) + p->tok.alloc + p->n_frames * sizeof(*p->frames);
	size_t i;

	for (b = p->arena; b != NULL; b = b->next)
		n += sizeof(*b) + b->size;
	for (i = 0; i < p->n_frames; i++)
		n += p->frames[i].alloc * sizeof(struct imap_arg);
	return n;
}

/* ---- character classes ---- */

static bool is_atom_char(unsigned char c)
{
	/* ATOM-CHAR plus resp-specials (astring) and 8-bit bytes (UTF-8) */
	return c > 0x20 && c != 0x7f && c != '(' && c != ')' && c != '{' &&
	       c != '"';
}

static bool is_word_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){\"%*\\[]", c) == NULL;
}

static bool is_tag_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){\"%*\\+", c) == NULL;
}

static bool is_digits(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static bool parse_number(const char *s, size_t len, uint64_t max, uint64_t *n_r)
{
	uint64_t n = 0;
	size_t i;

	if (!is_digits(s, len))
		return false;
	for (i = 0; i < len; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (n > (max - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*n_r = n;
	return true;
}

/* ---- argument frames ---- */

static int tok_add(struct imap_parser *p, unsigned char c)
{
	if (buf_addch(&p->tok, (char)c) < 0)
		return fail(p, "token exceeds %zu bytes", p->lim.max_line);
	return 0;
}

static int append_arg(struct imap_parser *p, const struct imap_arg *a)
{
	struct frame *f = &p->frames[p->depth];

	if (p->nargs >= p->lim.max_args)
		return fail(p, "response has more than %u arguments", p->lim.max_args);
	p->nargs++;
	ALLOC_GROW(f->v, f->n + 1, f->alloc);
	f->v[f->n++] = *a;
	return 0;
}

static int push_list(struct imap_parser *p)
{
	if (p->depth >= p->lim.max_depth)
		return fail(p, "lists nested deeper than %u levels", p->lim.max_depth);
	p->depth++;
	if (p->depth >= p->n_frames) {
		p->frames = xreallocarray(p->frames, p->depth + 1, sizeof(*p->frames));
		memset(&p->frames[p->n_frames], 0,
		       (p->depth + 1 - p->n_frames) * sizeof(*p->frames));
		p->n_frames = p->depth + 1;
	}
	p->frames[p->depth].n = 0;
	return 0;
}

/* Copy the finished frame at depth d into the arena. */
static struct imap_arg *frame_copy(struct imap_parser *p, unsigned d, size_t *n_r)
{
	struct frame *f = &p->frames[d];
	struct imap_arg *v = NULL;

	*n_r = f->n;
	if (f->n > 0) {
		/* UNSAFE: f->n <= max_args, each element already allocated once */
		v = arena_alloc_aligned(p, f->n * sizeof(*v), _Alignof(struct imap_arg));
		memcpy(v, f->v, f->n * sizeof(*v));
	}
	f->n = 0;
	return v;
}

static int pop_list(struct imap_parser *p)
{
	struct imap_arg a;

	memset(&a, 0, sizeof(a));
	a.type = IMAP_ARG_LIST;
	a.u.list.args = frame_copy(p, p->depth, &a.u.list.count);
	p->depth--;
	return append_arg(p, &a);
}

/* ---- FETCH body items ---- */

static bool prefix_ci(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && strncasecmp(s, prefix, n) == 0;
}

/* The atom read so far may be followed by a section in brackets. */
static bool is_section_prefix(const char *s, size_t len)
{
	static const char *const names[] = {
		"BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE",
	};
	size_t i;

	for (i = 0; i < N_ELEMENTS(names); i++)
		if (strlen(names[i]) == len && strncasecmp(s, names[i], len) == 0)
			return true;
	return false;
}

/* FETCH item names whose value goes to the body sink. */
static bool is_streamed_item(const char *s)
{
	size_t len = strlen(s);
	const char *sec = NULL;

	if (strcasecmp(s, "RFC822") == 0 || strcasecmp(s, "RFC822.TEXT") == 0)
		return true;
	if (prefix_ci(s, len, "BODY["))
		sec = s + 5;
	else if (prefix_ci(s, len, "BODY.PEEK["))
		sec = s + 10;
	else if (prefix_ci(s, len, "BINARY["))
		sec = s + 7;
	else if (prefix_ci(s, len, "BINARY.PEEK["))
		sec = s + 12;
	if (sec == NULL)
		return false;
	/* BODY[HEADER], BODY[HEADER.FIELDS (...)], ...: kept in memory */
	return strncasecmp(sec, "HEADER", 6) != 0;
}

/* Name of the FETCH item whose value is about to be read, if streamed. */
static const char *streamed_item(struct imap_parser *p)
{
	const struct frame *f;
	const struct imap_arg *a;

	if (!p->resp.has_number || p->in_code || p->depth != 1 ||
	    p->resp.keyword == NULL || strcmp(p->resp.keyword, "FETCH") != 0 ||
	    p->frames[0].n != 0)
		return NULL;
	f = &p->frames[1];
	if (f->n % 2 != 1)
		return NULL;
	a = &f->v[f->n - 1];
	if (a->type != IMAP_ARG_ATOM || !is_streamed_item(a->u.s.str))
		return NULL;
	return a->u.s.str;
}

/* ---- literals ---- */

static int sink_begin(struct imap_parser *p, const char *section, uint64_t size)
{
	if (p->have_sink && p->sink.begin != NULL &&
	    p->sink.begin(p->sink.ctx, p->resp.number, section, size) < 0)
		return fail(p, "body sink failed");
	return 0;
}

static int sink_data(struct imap_parser *p, const void *data, size_t n)
{
	if (p->have_sink && p->sink.data != NULL &&
	    p->sink.data(p->sink.ctx, data, n) < 0)
		return fail(p, "body sink failed");
	return 0;
}

static int sink_end(struct imap_parser *p)
{
	if (p->have_sink && p->sink.end != NULL && p->sink.end(p->sink.ctx) < 0)
		return fail(p, "body sink failed");
	return 0;
}

static int end_literal(struct imap_parser *p)
{
	struct imap_arg a;

	memset(&a, 0, sizeof(a));
	if (p->lit_streamed) {
		if (sink_end(p) < 0)
			return -1;
		a.type = IMAP_ARG_LITERAL_STREAMED;
		a.u.size = p->lit_size;
	} else {
		a.type = IMAP_ARG_LITERAL;
		a.u.s.str = p->lit_buf;
		a.u.s.len = (size_t)p->lit_size;
	}
	p->lit_buf = NULL;
	p->state = ST_SEP;
	return append_arg(p, &a);
}

static int begin_literal(struct imap_parser *p)
{
	if (p->lit_streamed) {
		if (sink_begin(p, streamed_item(p), p->lit_size) < 0)
			return -1;
	} else {
		/* size <= max_literal - mem_literals was checked at '}' */
		p->lit_buf = arena_alloc_aligned(p, (size_t)p->lit_size + 1, 1);
		p->lit_buf[p->lit_size] = '\0';
		p->lit_pos = 0;
		p->mem_literals += p->lit_size;
	}
	p->lit_left = p->lit_size;
	if (p->lit_size == 0)
		return end_literal(p);
	p->state = ST_LIT_DATA;
	return 0;
}

static int end_literal_size(struct imap_parser *p)
{
	if (!p->lit_digit)
		return fail(p, "literal without a size");
	if (p->lit_streamed) {
		if (p->lit_size > p->lim.max_body)
			return fail(p, "body literal of %llu bytes exceeds limit of %llu bytes",
				    (unsigned long long)p->lit_size,
				    (unsigned long long)p->lim.max_body);
	} else if (p->lit_size > p->lim.max_literal ||
		   p->lit_size > p->lim.max_literal - p->mem_literals) {
		if (p->mem_literals > 0)
			return fail(p, "literal of %llu bytes exceeds limit of %zu bytes "
				    "(%llu already used by this response)",
				    (unsigned long long)p->lit_size, p->lim.max_literal,
				    (unsigned long long)p->mem_literals);
		return fail(p, "literal of %llu bytes exceeds limit of %zu bytes",
			    (unsigned long long)p->lit_size, p->lim.max_literal);
	} else if (p->lit_size > SIZE_MAX / 2) {
		/* only reachable with an absurd max_literal */
		return fail(p, "literal of %llu bytes exceeds address space",
			    (unsigned long long)p->lit_size);
	}
	p->state = ST_LIT_CR;
	return 0;
}

static void start_literal(struct imap_parser *p)
{
	p->lit_streamed = streamed_item(p) != NULL;
	p->lit_size = 0;
	p->lit_digit = false;
	p->state = ST_LIT_SIZE;
}

/* ---- atoms and strings ---- */

static int finish_atom(struct imap_parser *p)
{
	struct imap_arg a;

	memset(&a, 0, sizeof(a));
	if (p->tok.len == 3 && strncasecmp(p->tok.data, "NIL", 3) == 0) {
		a.type = IMAP_ARG_NIL;
	} else {
		a.type = IMAP_ARG_ATOM;
		a.u.s.str = arena_strdup(p, p->tok.data, p->tok.len);
		a.u.s.len = p->tok.len;
	}
	return append_arg(p, &a);
}

static int finish_quoted(struct imap_parser *p)
{
	struct imap_arg a;
	const char *item = streamed_item(p);

	memset(&a, 0, sizeof(a));
	if (item != NULL) {
		/* a body sent as a quoted string still goes to the sink */
		if (p->tok.len > p->lim.max_body)
			return fail(p, "body of %zu bytes exceeds limit of %llu bytes",
				    p->tok.len, (unsigned long long)p->lim.max_body);
		if (sink_begin(p, item, p->tok.len) < 0 ||
		    (p->tok.len > 0 && sink_data(p, p->tok.data, p->tok.len) < 0) ||
		    sink_end(p) < 0)
			return -1;
		a.type = IMAP_ARG_LITERAL_STREAMED;
		a.u.size = p->tok.len;
	} else {
		a.type = IMAP_ARG_STRING;
		a.u.s.str = arena_strdup(p, p->tok.data, p->tok.len);
		a.u.s.len = p->tok.len;
	}
	return append_arg(p, &a);
}

/* ---- response codes ---- */

static const struct {
	const char *name;
	enum imap_code code;
} code_names[] = {
	{ "ALERT", IMAP_CODE_ALERT },
	{ "CAPABILITY", IMAP_CODE_CAPABILITY },
	{ "UIDVALIDITY", IMAP_CODE_UIDVALIDITY },
	{ "UIDNEXT", IMAP_CODE_UIDNEXT },
	{ "HIGHESTMODSEQ", IMAP_CODE_HIGHESTMODSEQ },
	{ "NOMODSEQ", IMAP_CODE_NOMODSEQ },
	{ "APPENDUID", IMAP_CODE_APPENDUID },
	{ "COPYUID", IMAP_CODE_COPYUID },
	{ "PERMANENTFLAGS", IMAP_CODE_PERMANENTFLAGS },
	{ "CLOSED", IMAP_CODE_CLOSED },
	{ "READ-ONLY", IMAP_CODE_READ_ONLY },
	{ "READ-WRITE", IMAP_CODE_READ_WRITE },
	{ "TRYCREATE", IMAP_CODE_TRYCREATE },
	{ "NONEXISTENT", IMAP_CODE_NONEXISTENT },
	{ "AUTHENTICATIONFAILED", IMAP_CODE_AUTHENTICATIONFAILED },
	{ "UNAVAILABLE", IMAP_CODE_UNAVAILABLE },
	{ "ALREADYEXISTS", IMAP_CODE_ALREADYEXISTS },
	{ "MODIFIED", IMAP_CODE_MODIFIED },
};

/* Codes whose arguments are IMAP tokens; others keep their raw text. */
static bool code_is_structured(const char *name)
{
	static const char *const names[] = {
		"CAPABILITY", "PERMANENTFLAGS", "UIDVALIDITY", "UIDNEXT",
		"HIGHESTMODSEQ", "APPENDUID", "COPYUID", "MODIFIED",
		"BADCHARSET", "UNSEEN",
	};
	size_t i;

	for (i = 0; i < N_ELEMENTS(names); i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

static void start_code(struct imap_parser *p)
{
	size_t i;

	p->resp.code.name = arena_strdup(p, p->tok.data, p->tok.len);
	p->resp.code.code = IMAP_CODE_OTHER;
	for (i = 0; i < N_ELEMENTS(code_names); i++)
		if (strcasecmp(p->resp.code.name, code_names[i].name) == 0)
			p->resp.code.code = code_names[i].code;
}

static bool valid_uidset(const char *s)
{
	size_t pos = 0;
	uint32_t lo, hi;
	bool bad = false;

	while (imap_uidset_next(s, &pos, &lo, &hi, &bad))
		;
	return !bad;
}

static int finish_code(struct imap_parser *p)
{
	struct imap_resp_code *c = &p->resp.code;
	const struct imap_arg *a;
	const char *s;
	size_t n, len;
	uint64_t v;

	c->args = frame_copy(p, 0, &c->n_args);
	p->in_code = false;
	p->state = ST_AFTER_CODE;
	a = c->args;
	n = c->n_args;
	switch (c->code) {
	case IMAP_CODE_UIDVALIDITY:
	case IMAP_CODE_UIDNEXT:
		if (n != 1 || !imap_arg_number(&a[0], UINT32_MAX, &c->num))
			goto bad;
		break;
	case IMAP_CODE_HIGHESTMODSEQ:
		if (n != 1 || !imap_arg_number(&a[0], INT64_MAX, &c->num))
			goto bad;
		break;
	case IMAP_CODE_APPENDUID:
	case IMAP_CODE_COPYUID:
		if (n != (c->code == IMAP_CODE_APPENDUID ? 2u : 3u) ||
		    !imap_arg_number(&a[0], UINT32_MAX, &v) ||
		    !imap_arg_atom(&a[1], &c->uidset, &len) || !valid_uidset(c->uidset))
			goto bad;
		c->uidvalidity = (uint32_t)v;
		if (n == 3 && (!imap_arg_atom(&a[2], &c->uidset2, &len) ||
			       !valid_uidset(c->uidset2)))
			goto bad;
		break;
	case IMAP_CODE_PERMANENTFLAGS:
		if (n != 1 || !imap_arg_list(&a[0], &c->args, &c->n_args))
			goto bad;
		break;
	case IMAP_CODE_CAPABILITY:
		for (size_t i = 0; i < n; i++)
			if (!imap_arg_atom(&a[i], &s, &len))
				goto bad;
		break;
	default:
		break;
	}
	return 0;
bad:
	return fail(p, "malformed %s response code", c->name);
}

/* ---- words at the start of a response ---- */

static char *upper_dup(struct imap_parser *p)
{
	char *s = arena_strdup(p, p->tok.data, p->tok.len);
	size_t i;

	for (i = 0; i < p->tok.len; i++)
		if (s[i] >= 'a' && s[i] <= 'z')
			s[i] = (char)(s[i] - 'a' + 'A');
	return s;
}

static enum imap_status status_of(const char *kw, bool tagged)
{
	if (strcmp(kw, "OK") == 0)
		return IMAP_STATUS_OK;
	if (strcmp(kw, "NO") == 0)
		return IMAP_STATUS_NO;
	if (strcmp(kw, "BAD") == 0)
		return IMAP_STATUS_BAD;
	if (!tagged && strcmp(kw, "PREAUTH") == 0)
		return IMAP_STATUS_PREAUTH;
	if (!tagged && strcmp(kw, "BYE") == 0)
		return IMAP_STATUS_BYE;
	return IMAP_STATUS_NONE;
}

/* After a status word: resp-text follows, or the line ends. */
static int after_status(struct imap_parser *p, unsigned char c)
{
	if (c == ' ') {
		p->state = ST_TEXT_START;
		return 0;
	}
	if (c == '\r') {
		p->state = ST_LF;
		return 0;
	}
	return fail_byte(p, c, "after status");
}

/* After a data keyword: arguments follow, or the line ends. */
static int after_keyword(struct imap_parser *p, unsigned char c)
{
	if (c == ' ') {
		p->state = ST_ARG;
		return 0;
	}
	if (c == '\r') {
		p->state = ST_LF;
		return 0;
	}
	return fail_byte(p, c, "after keyword");
}

static int end_word(struct imap_parser *p, unsigned char c)
{
	uint64_t n;

	if (p->tok.len == 0)
		return fail_byte(p, c, p->word == W_TAG ? "in tag" : "at start of word");
	switch (p->word) {
	case W_TAG:
		if (c != ' ')
			return fail_byte(p, c, "after tag");
		p->resp.tag = arena_strdup(p, p->tok.data, p->tok.len);
		p->word = W_STATUS;
		buf_reset(&p->tok);
		return 0;
	case W_STATUS:
		p->resp.keyword = upper_dup(p);
		p->resp.status = status_of(p->resp.keyword, true);
		if (p->resp.status == IMAP_STATUS_NONE)
			return fail(p, "tagged response with '%.40s' instead of OK, NO or BAD",
				    p->resp.keyword);
		return after_status(p, c);
	case W_FIRST:
		if (is_digits(p->tok.data, p->tok.len)) {
			if (!parse_number(p->tok.data, p->tok.len, UINT32_MAX, &n))
				return fail(p, "number %.40s out of range", p->tok.data);
			if (c != ' ')
				return fail(p, "missing keyword after number %u", (unsigned)n);
			p->resp.has_number = true;
			p->resp.number = (uint32_t)n;
			p->word = W_KEYWORD;
			buf_reset(&p->tok);
			return 0;
		}
		p->resp.keyword = upper_dup(p);
		p->resp.status = status_of(p->resp.keyword, false);
		if (p->resp.status != IMAP_STATUS_NONE)
			return after_status(p, c);
		return after_keyword(p, c);
	case W_KEYWORD:
		p->resp.keyword = upper_dup(p);
		return after_keyword(p, c);
	}
	BUG("bad word kind %d", p->word);
}

/* ---- the state machine ---- */

static int finish_response(struct imap_parser *p)
{
	p->resp.args = frame_copy(p, 0, &p->resp.n_args);
	if (p->resp.text == NULL &&
	    (p->resp.status != IMAP_STATUS_NONE ||
	     p->resp.kind == IMAP_RESP_CONTINUATION))
		p->resp.text = "";
	p->state = ST_DONE;
	return 1;
}

static void start_atom(struct imap_parser *p)
{
	buf_reset(&p->tok);
	p->atom_bracketed = false;
	p->state = ST_ATOM;
}

static int step(struct imap_parser *p, unsigned char c)
{
again:
	switch (p->state) {
	case ST_BEGIN:
		if (c == '*') {
			p->resp.kind = IMAP_RESP_UNTAGGED;
			p->state = ST_STAR_SP;
			return 0;
		}
		if (c == '+') {
			p->resp.kind = IMAP_RESP_CONTINUATION;
			p->state = ST_PLUS;
			return 0;
		}
		if (!is_tag_char(c))
			return fail_byte(p, c, "at start of response");
		p->resp.kind = IMAP_RESP_TAGGED;
		buf_reset(&p->tok);
		p->word = W_TAG;
		p->state = ST_WORD;
		goto again;
	case ST_STAR_SP:
		if (c != ' ')
			return fail_byte(p, c, "after '*'");
		buf_reset(&p->tok);
		p->word = W_FIRST;
		p->state = ST_WORD;
		return 0;
	case ST_PLUS:
		return after_status(p, c);
	case ST_WORD:
		if (p->word == W_TAG ? is_tag_char(c) : is_word_char(c))
			return tok_add(p, c);
		return end_word(p, c);

	case ST_TEXT_START:
		if (c == '[') {
			buf_reset(&p->tok);
			p->state = ST_CODE_NAME;
			return 0;
		}
		if (c == '\r') {
			p->state = ST_LF;
			return 0;
		}
		buf_reset(&p->tok);
		p->state = ST_TEXT;
		goto again;
	case ST_CODE_NAME:
		if (is_word_char(c))
			return tok_add(p, c);
		if (c != ']' && c != ' ')
			return fail_byte(p, c, "in response code");
		if (p->tok.len == 0)
			return fail(p, "empty response code");
		start_code(p);
		if (c == ']')
			return finish_code(p);
		if (code_is_structured(p->resp.code.name)) {
			p->in_code = true;
			p->state = ST_ARG;
		} else {
			buf_reset(&p->tok);
			p->state = ST_CODE_RAW;
		}
		return 0;
	case ST_CODE_RAW:
		if (c == ']') {
			if (p->tok.len > 0 && finish_atom(p) < 0)
				return -1;
			return finish_code(p);
		}
		if (c == '\r' || c == '\n')
			return fail(p, "unterminated response code");
		return tok_add(p, c);
	case ST_AFTER_CODE:
		if (c == '\r') {
			p->state = ST_LF;
			return 0;
		}
		buf_reset(&p->tok);
		p->state = ST_TEXT;
		if (c == ' ')
			return 0;
		goto again;
	case ST_TEXT:
		if (c == '\r') {
			p->resp.text = arena_strdup(p, p->tok.data, p->tok.len);
			p->state = ST_LF;
			return 0;
		}
		if (c == '\n')
			return fail(p, "LF without CR in text");
		return tok_add(p, c);
	case ST_LF:
		if (c != '\n')
			return fail(p, "CR not followed by LF");
		return finish_response(p);

	case ST_ARG:
		switch (c) {
		case '(':
			return push_list(p);
		case ')':
			if (p->depth == 0)
				return fail(p, "unexpected ')'");
			p->state = ST_SEP;
			return pop_list(p);
		case '"':
			buf_reset(&p->tok);
			p->state = ST_QUOTED;
			return 0;
		case '{':
			if (p->in_code)
				return fail(p, "literal in response code");
			start_literal(p);
			return 0;
		case '~':
			p->state = ST_TILDE;
			return 0;
		case ' ':
			return fail(p, "unexpected double space");
		case ']':
			if (!p->in_code) {
				start_atom(p);     /* astring may start with ']' */
				goto again;
			}
			/* trailing space before "]" */
			p->state = ST_SEP;
			goto again;
		case '\r':
			/* trailing space before the end */
			p->state = ST_SEP;
			goto again;
		default:
			if (!is_atom_char(c))
				return fail_byte(p, c, "where an argument was expected");
			start_atom(p);
			goto again;
		}
	case ST_SEP:
		switch (c) {
		case ' ':
			p->state = ST_ARG;
			return 0;
		case ')':
			if (p->depth == 0)
				return fail(p, "unexpected ')'");
			return pop_list(p);
		case ']':
			if (!p->in_code)
				break;
			if (p->depth > 0)
				return fail(p, "unterminated list in response code");
			return finish_code(p);
		case '\r':
			if (p->in_code)
				return fail(p, "unterminated response code");
			if (p->depth > 0)
				return fail(p, "unterminated list at end of line");
			p->state = ST_LF;
			return 0;
		default:
			break;
		}
		return fail_byte(p, c, "after argument");

	case ST_ATOM:
		if (c == '[' && !p->atom_bracketed &&
		    is_section_prefix(p->tok.data, p->tok.len)) {
			p->atom_bracketed = true;
			p->bracket_depth = 1;
			p->state = ST_ATOM_BRACKET;
			return tok_add(p, c);
		}
		if (is_atom_char(c) && !(c == ']' && p->in_code))
			return tok_add(p, c);
		if (finish_atom(p) < 0)
			return -1;
		p->state = ST_SEP;
		goto again;
	case ST_ATOM_BRACKET:
		if (c == '\r' || c == '\n')
			return fail(p, "unterminated section in '%.40s'", p->tok.data);
		if (c == '"')
			p->state = ST_ATOM_BRACKET_QUOTED;
		else if (c == '[')
			p->bracket_depth++;
		else if (c == ']' && --p->bracket_depth == 0)
			p->state = ST_ATOM;
		return tok_add(p, c);
	case ST_ATOM_BRACKET_QUOTED:
		if (c == '\r' || c == '\n')
			return fail(p, "unterminated quoted string in section");
		if (c == '\\')
			p->state = ST_ATOM_BRACKET_QESC;
		else if (c == '"')
			p->state = ST_ATOM_BRACKET;
		return tok_add(p, c);
	case ST_ATOM_BRACKET_QESC:
		if (c == '\r' || c == '\n')
			return fail(p, "unterminated quoted string in section");
		p->state = ST_ATOM_BRACKET_QUOTED;
		return tok_add(p, c);

	case ST_QUOTED:
		if (c == '"') {
			p->state = ST_SEP;
			return finish_quoted(p);
		}
		if (c == '\\') {
			p->state = ST_QUOTED_ESC;
			return 0;
		}
		if (c == '\r' || c == '\n')
			return fail(p, "unterminated quoted string");
		return tok_add(p, c);
	case ST_QUOTED_ESC:
		if (c == '\r' || c == '\n')
			return fail(p, "unterminated quoted string");
		p->state = ST_QUOTED;
		return tok_add(p, c);

	case ST_TILDE:
		if (c == '{') {
			if (p->in_code)
				return fail(p, "literal in response code");
			start_literal(p);
			return 0;
		}
		/* an atom starting with '~' (e.g. ~peter/mail) */
		start_atom(p);
		if (tok_add(p, '~') < 0)
			return -1;
		goto again;
	case ST_LIT_SIZE:
		if (c >= '0' && c <= '9') {
			unsigned d = c - '0';

			if (p->lit_size > (UINT64_MAX - d) / 10)
				return fail(p, "literal size overflows");
			p->lit_size = p->lit_size * 10 + d;
			p->lit_digit = true;
			return 0;
		}
		if (c == '}')
			return end_literal_size(p);
		return fail_byte(p, c, "in literal size");
	case ST_LIT_CR:
		if (c != '\r')
			return fail(p, "literal size not followed by CRLF");
		p->state = ST_LIT_LF;
		return 0;
	case ST_LIT_LF:
		if (c != '\n')
			return fail(p, "literal size not followed by CRLF");
		return begin_literal(p);

	case ST_LIT_DATA:
	case ST_DONE:
	case ST_FAILED:
		break;
	}
	BUG("bad parser state %d", p->state);
}

int imap_parser_feed(struct imap_parser *p, const void *data, size_t len,
		     size_t *consumed_r, const struct imap_response **resp_r)
{
	const unsigned char *d = data;
	size_t i = 0;
	int ret;

	*consumed_r = 0;
	if (p->state == ST_FAILED)
		return -1;
	if (p->state == ST_DONE)
		reset_response(p);
	while (i < len) {
		if (p->state == ST_LIT_DATA) {
			size_t n = len - i;

			if (n > p->lit_left)
				n = (size_t)p->lit_left;
			if (p->lit_streamed) {
				if (sink_data(p, d + i, n) < 0) {
					*consumed_r = i;
					return -1;
				}
			} else {
				memcpy(p->lit_buf + p->lit_pos, d + i, n);
				p->lit_pos += n;
			}
			p->lit_left -= n;
			i += n;
			if (p->lit_left == 0 && end_literal(p) < 0) {
				*consumed_r = i;
				return -1;
			}
			continue;
		}
		if (++p->line_len > p->lim.max_line) {
			*consumed_r = i;
			return fail(p, "response exceeds %zu bytes outside literals",
				    p->lim.max_line);
		}
		if (d[i] == '\0') {
			*consumed_r = i;
			return fail(p, "NUL byte outside a literal");
		}
		ret = step(p, d[i++]);
		if (ret != 0) {
			*consumed_r = i;
			if (ret > 0)
				*resp_r = &p->resp;
			return ret;
		}
	}
	*consumed_r = i;
	return 0;
}

/* ---- accessors ---- */

bool imap_arg_atom(const struct imap_arg *a, const char **s_r, size_t *len_r)
{
	if (a->type != IMAP_ARG_ATOM)
		return false;
	*s_r = a->u.s.str;
	*len_r = a->u.s.len;
	return true;
}

bool imap_arg_string(const struct imap_arg *a, const char **s_r, size_t *len_r)
{
	if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_STRING &&
	    a->type != IMAP_ARG_LITERAL)
		return false;
	*s_r = a->u.s.str;
	*len_r = a->u.s.len;
	return true;
}

bool imap_arg_nstring(const struct imap_arg *a, const char **s_r, size_t *len_r)
{
	if (a->type == IMAP_ARG_NIL) {
		*s_r = NULL;
		*len_r = 0;
		return true;
	}
	return imap_arg_string(a, s_r, len_r);
}

bool imap_arg_list(const struct imap_arg *a, const struct imap_arg **args_r, size_t *count_r)
{
	if (a->type != IMAP_ARG_LIST)
		return false;
	*args_r = a->u.list.args;
	*count_r = a->u.list.count;
	return true;
}

bool imap_arg_number(const struct imap_arg *a, uint64_t max, uint64_t *n_r)
{
	if (a->type != IMAP_ARG_ATOM)
		return false;
	return parse_number(a->u.s.str, a->u.s.len, max, n_r);
}

bool imap_arg_atom_equals(const struct imap_arg *a, const char *word)
{
	return a->type == IMAP_ARG_ATOM && strlen(word) == a->u.s.len &&
	       strncasecmp(a->u.s.str, word, a->u.s.len) == 0;
}

bool imap_arg_is_nil(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_NIL;
}

/* ---- canonical dump (tests, traces) ---- */

static void dump_bytes(struct buf *b, const char *s, size_t len)
{
	size_t i;
	int r = 0;

	r |= buf_addch(b, '"');
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			r |= buf_addf(b, "\\%c", c);
		else if (c >= 0x20 && c < 0x7f)
			r |= buf_addch(b, (char)c);
		else
			r |= buf_addf(b, "\\x%02x", c);
	}
	r |= buf_addch(b, '"');
	ASSERT(r == 0);
}

static void dump_args(struct buf *b, const struct imap_arg *a, size_t n)
{
	size_t i;
	int r = 0;

	for (i = 0; i < n; i++) {
		if (i > 0)
			r |= buf_addch(b, ' ');
		switch (a[i].type) {
		case IMAP_ARG_NIL:
			r |= buf_addstr(b, "NIL");
			break;
		case IMAP_ARG_ATOM:
			r |= buf_addstr(b, "a:");
			dump_bytes(b, a[i].u.s.str, a[i].u.s.len);
			break;
		case IMAP_ARG_STRING:
			dump_bytes(b, a[i].u.s.str, a[i].u.s.len);
			break;
		case IMAP_ARG_LITERAL:
			r |= buf_addf(b, "{%zu}", a[i].u.s.len);
			dump_bytes(b, a[i].u.s.str, a[i].u.s.len);
			break;
		case IMAP_ARG_LITERAL_STREAMED:
			r |= buf_addf(b, "{%llu streamed}", (unsigned long long)a[i].u.size);
			break;
		case IMAP_ARG_LIST:
			r |= buf_addch(b, '(');
			dump_args(b, a[i].u.list.args, a[i].u.list.count);
			r |= buf_addch(b, ')');
			break;
		}
	}
	ASSERT(r == 0);
}

char *imap_response_dump(const struct imap_response *r)
{
	static const char *const statuses[] = {
		"", "OK", "NO", "BAD", "PREAUTH", "BYE",
	};
	struct buf b;
	int e = 0;

	buf_init(&b, BUF_MAX_UNLIMITED);
	switch (r->kind) {
	case IMAP_RESP_TAGGED:
		e |= buf_addf(&b, "tagged %s", r->tag);
		break;
	case IMAP_RESP_UNTAGGED:
		e |= buf_addstr(&b, "untagged");
		break;
	case IMAP_RESP_CONTINUATION:
		e |= buf_addstr(&b, "continuation");
		break;
	}
	if (r->status != IMAP_STATUS_NONE)
		e |= buf_addf(&b, " status=%s", statuses[r->status]);
	if (r->has_number)
		e |= buf_addf(&b, " number=%u", r->number);
	if (r->keyword != NULL)
		e |= buf_addf(&b, " keyword=%s", r->keyword);
	if (r->code.code != IMAP_CODE_NONE) {
		e |= buf_addf(&b, " code=%s/%d", r->code.name, (int)r->code.code);
		if (r->code.num)
			e |= buf_addf(&b, " num=%llu", (unsigned long long)r->code.num);
		if (r->code.uidvalidity)
			e |= buf_addf(&b, " uidvalidity=%u", r->code.uidvalidity);
		if (r->code.uidset)
			e |= buf_addf(&b, " set=%s", r->code.uidset);
		if (r->code.uidset2)
			e |= buf_addf(&b, " set2=%s", r->code.uidset2);
		e |= buf_addstr(&b, " code-args=[");
		dump_args(&b, r->code.args, r->code.n_args);
		e |= buf_addch(&b, ']');
	}
	if (r->text != NULL) {
		e |= buf_addstr(&b, " text=");
		dump_bytes(&b, r->text, strlen(r->text));
	}
	if (r->n_args > 0 || r->status == IMAP_STATUS_NONE) {
		e |= buf_addstr(&b, " args=[");
		dump_args(&b, r->args, r->n_args);
		e |= buf_addch(&b, ']');
	}
	ASSERT(e == 0);
	return buf_take(&b, NULL);
}
