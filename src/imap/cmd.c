/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cmd.c - building IMAP commands (quoting, literals, uid sets, dates) and
 * the protocol trace with credentials and literal bodies hidden. No I/O.
 */
#include "common.h"
#include "imap/client-private.h"

#include <stdarg.h>
#include <time.h>

static struct imap_seg *cur_seg(struct imap_cmd *cmd)
{
	return &cmd->segs[cmd->n_segs - 1];
}

static void new_seg(struct imap_cmd *cmd)
{
	struct imap_seg *s;

	ALLOC_GROW(cmd->segs, cmd->n_segs + 1, cmd->alloc_segs);
	s = &cmd->segs[cmd->n_segs++];
	memset(s, 0, sizeof(*s));
	buf_init(&s->text, BUF_MAX_CMD);
}

struct imap_cmd *imap_cmd_new(unsigned tagno, unsigned caps, const char *verb)
{
	struct imap_cmd *cmd = xcalloc(1, sizeof(*cmd));

	snprintf(cmd->tag, sizeof(cmd->tag), "T%u", tagno);
	snprintf(cmd->verb, sizeof(cmd->verb), "%s", verb);
	cmd->caps = caps;
	cmd->redact_from = SIZE_MAX;
	new_seg(cmd);
	imap_cmd_addf(cmd, "%s %s", cmd->tag, verb);
	return cmd;
}

void imap_cmd_free(struct imap_cmd **cmdp)
{
	struct imap_cmd *cmd = *cmdp;

	if (cmd == NULL)
		return;
	for (size_t i = 0; i < cmd->n_segs; i++) {
		struct imap_seg *s = &cmd->segs[i];

		if (cmd->secret) {
			buf_release_secure(&s->text);
			if (s->lit_data != NULL)
				secure_zero(s->lit_data, (size_t)s->lit_size);
		} else {
			buf_release(&s->text);
		}
		free(s->lit_data);
	}
	free(cmd->segs);
	free(cmd);
	*cmdp = NULL;
}

void imap_cmd_add(struct imap_cmd *cmd, const char *s, size_t len)
{
	if (buf_add(&cur_seg(cmd)->text, s, len) < 0)
		cmd->overflow = true;
}

void imap_cmd_addf(struct imap_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vaddf(&cur_seg(cmd)->text, fmt, ap);
	va_end(ap);
	if (r < 0)
		cmd->overflow = true;
}

void imap_cmd_add_literal(struct imap_cmd *cmd, const void *data,
			  uint64_t size, struct imap_append_msg *src)
{
	struct imap_seg *s = cur_seg(cmd);
	bool plus = (cmd->caps & IMAP_CAP_LITERALPLUS) ||
		((cmd->caps & IMAP_CAP_LITERALMINUS) &&
		 size <= IMAP_LITERAL_MINUS_MAX);

	imap_cmd_addf(cmd, "{%llu%s}\r\n", (unsigned long long)size,
		      plus ? "+" : "");
	s->has_lit = true;
	s->sync = !plus;
	s->lit_size = size;
	s->lit_src = src;
	if (data != NULL)
		s->lit_data = xmemdup(data, (size_t)size);
	new_seg(cmd);
}

static bool quotable(const char *s, size_t len)
{
	if (len > IMAP_QUOTED_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == 0 || ch >= 0x80 || ch == '\r' || ch == '\n')
			return false;
	}
	return true;
}

bool imap_is_atom(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		/* atom-specials (RFC 3501 9) and resp-specials */
		if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"\\]", ch))
			return false;
	}
	return true;
}

static void add_quoted(struct buf *b, const char *s, size_t len, bool *overflow)
{
	int r = buf_addch(b, '"');

	for (size_t i = 0; i < len && r == 0; i++) {
		if (s[i] == '"' || s[i] == '\\')
			r = buf_addch(b, '\\');
		if (r == 0)
			r = buf_addch(b, s[i]);
	}
	if (r == 0)
		r = buf_addch(b, '"');
	if (r < 0)
		*overflow = true;
}

void imap_cmd_add_astring(struct imap_cmd *cmd, const char *s, size_t len)
{
	if (quotable(s, len))
		add_quoted(&cur_seg(cmd)->text, s, len, &cmd->overflow);
	else
		imap_cmd_add_literal(cmd, s, len, NULL);
}

void imap_cmd_add_with_literals(struct imap_cmd *cmd, const char *s)
{
	const char *p = s;

	while (*p != '\0') {
		const char *q = strchr(p, '{'), *d;
		uint64_t n = 0;
		bool ok = true;

		if (q == NULL) {
			imap_cmd_add(cmd, p, strlen(p));
			return;
		}
		for (d = q + 1; *d >= '0' && *d <= '9'; d++) {
			if (n > UINT32_MAX) {
				ok = false;
				break;
			}
			n = n * 10 + (uint64_t)(*d - '0');
		}
		if (ok && d > q + 1 && d[0] == '}' && d[1] == '\r' &&
		    d[2] == '\n' && strnlen(d + 3, (size_t)n) == n) {
			imap_cmd_add(cmd, p, (size_t)(q - p));
			imap_cmd_add_literal(cmd, d + 3, n, NULL);
			p = d + 3 + n;
		} else {
			imap_cmd_add(cmd, p, (size_t)(q - p) + 1);
			p = q + 1;
		}
	}
}

void imap_cmd_finish(struct imap_cmd *cmd)
{
	imap_cmd_add(cmd, "\r\n", 2);
}

struct imap_cmd *imap_cmd_login(unsigned tagno, unsigned caps,
			       const char *user, const char *pass)
{
	struct imap_cmd *cmd = imap_cmd_new(tagno, caps, "LOGIN");

	imap_cmd_add(cmd, " ", 1);
	imap_cmd_add_astring(cmd, user, strlen(user));
	imap_cmd_add(cmd, " ", 1);
	/* the password (and all that follows) never shows in the trace */
	cmd->redact_from = cmd->segs[0].text.len;
	imap_cmd_add_astring(cmd, pass, strlen(pass));
	cmd->secret = true;
	cmd->exclusive = true;
	return cmd;
}

struct imap_cmd *imap_cmd_authenticate(unsigned tagno, unsigned caps,
				       const char *mech, const char *resp,
				       bool initial)
{
	struct imap_cmd *cmd = imap_cmd_new(tagno, caps, "AUTHENTICATE");

	imap_cmd_addf(cmd, " %s", mech);
	if (initial && resp != NULL) {
		imap_cmd_add(cmd, " ", 1);
		cmd->redact_from = cmd->segs[0].text.len;
		/* SASL-IR: an empty response is sent as "=" (RFC 4959) */
		if (*resp == '\0')
			imap_cmd_add(cmd, "=", 1);
		else
			imap_cmd_add(cmd, resp, strlen(resp));
	}
	cmd->secret = true;
	cmd->exclusive = true;
	return cmd;
}

char *imap_cmd_trace_seg(const struct imap_cmd *cmd, size_t i)
{
	const struct buf *t = &cmd->segs[i].text;
	size_t len = t->len;
	struct buf out = BUF_INIT_MAX(IMAP_TRACE_LINE_MAX + 16);
	bool cut = false;

	if (len >= 2 && t->data[len - 2] == '\r' && t->data[len - 1] == '\n')
		len -= 2;
	if (cmd->redact_from != SIZE_MAX && i > 0) {
		if (buf_addstr(&out, "<redacted>") < 0)
			BUG("trace buffer");
		return buf_take(&out, NULL);
	}
	if (cmd->redact_from != SIZE_MAX && cmd->redact_from < len) {
		len = cmd->redact_from;
		cut = true;
	}
	if (len > IMAP_TRACE_LINE_MAX) {
		if (buf_add(&out, t->data, IMAP_TRACE_LINE_MAX) < 0 ||
		    buf_addstr(&out, "...") < 0)
			BUG("trace buffer");
	} else if (buf_add(&out, t->data, len) < 0) {
		BUG("trace buffer");
	}
	if (cut && buf_addstr(&out, "<redacted>") < 0)
		BUG("trace buffer");
	return buf_take(&out, NULL);
}

char *imap_cmd_wire(const struct imap_cmd *cmd, size_t *len_r)
{
	struct buf out = BUF_INIT_MAX(BUF_MAX_UNLIMITED);

	for (size_t i = 0; i < cmd->n_segs; i++) {
		const struct imap_seg *s = &cmd->segs[i];

		if (buf_add(&out, s->text.data, s->text.len) < 0)
			BUG("wire");
		if (s->has_lit && s->lit_data != NULL &&
		    buf_add(&out, s->lit_data, (size_t)s->lit_size) < 0)
			BUG("wire");
	}
	return buf_take(&out, len_r);
}

char *imap_quote(const char *s)
{
	size_t len = strlen(s);
	struct buf b = BUF_INIT_MAX(BUF_MAX_UNLIMITED);
	bool overflow = false;

	if (quotable(s, len)) {
		add_quoted(&b, s, len, &overflow);
	} else if (buf_addf(&b, "{%zu}\r\n", len) < 0 ||
		   buf_add(&b, s, len) < 0) {
		overflow = true;
	}
	if (overflow)
		BUG("unbounded buffer overflow");
	return buf_take(&b, NULL);
}

char *imap_uidset_make(const uint32_t *uids, size_t n)
{
	struct buf b = BUF_INIT_MAX(BUF_MAX_UNLIMITED);
	size_t i = 0;
	int r = 0;

	while (i < n && r == 0) {
		uint32_t lo = uids[i], hi = lo;

		i++;
		while (i < n && (uids[i] == hi || (hi < UINT32_MAX &&
						   uids[i] == hi + 1))) {
			hi = uids[i];
			i++;
		}
		if (b.len > 0)
			r = buf_addch(&b, ',');
		if (r == 0 && lo == hi)
			r = buf_addf(&b, "%u", lo);
		else if (r == 0)
			r = buf_addf(&b, "%u:%u", lo, hi);
	}
	if (r < 0)
		BUG("unbounded buffer overflow");
	return buf_take(&b, NULL);
}

bool imap_uidset_contains(const char *set, uint32_t uid)
{
	const char *p = set;

	while (*p != '\0') {
		uint64_t lo = 0, hi;
		const char *d = p;

		while (*p >= '0' && *p <= '9' && lo <= UINT32_MAX)
			lo = lo * 10 + (uint64_t)(*p++ - '0');
		if (p == d || lo > UINT32_MAX)
			return false;
		hi = lo;
		if (*p == ':') {
			d = ++p;
			hi = 0;
			while (*p >= '0' && *p <= '9' && hi <= UINT32_MAX)
				hi = hi * 10 + (uint64_t)(*p++ - '0');
			if (p == d || hi > UINT32_MAX)
				return false;
		}
		if (lo > hi) {
			uint64_t t = lo;

			lo = hi;
			hi = t;
		}
		if (uid >= lo && uid <= hi)
			return true;
		if (*p == ',')
			p++;
		else if (*p != '\0')
			return false;
	}
	return false;
}

char *imap_base64(const void *p, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = p;
	char *out, *o;

	/* UNSAFE: n comes from our own credentials, far below SIZE_MAX / 2 */
	out = o = xmalloc((n + 2) / 3 * 4 + 1);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		*o++ = tab[(v >> 18) & 63];
		*o++ = tab[(v >> 12) & 63];
		*o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		*o++ = i + 2 < n ? tab[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

void imap_format_date(int64_t t, char out[32])
{
	static const char months[12][4] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || tm.tm_year + 1900 > 9999 ||
	    tm.tm_year + 1900 < 1) {
		tt = 0;
		gmtime_r(&tt, &tm);
	}
	snprintf(out, 32, "%02d-%s-%04d %02d:%02d:%02d +0000", tm.tm_mday,
		 months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec);
}

/* ---- received-data trace ---- */

void imap_rtrace_init(struct imap_rtrace *t,
		      void (*emit)(void *ctx, const char *line), void *ctx)
{
	memset(t, 0, sizeof(*t));
	buf_init(&t->line, IMAP_TRACE_LINE_MAX);
	t->emit = emit;
	t->ctx = ctx;
}

void imap_rtrace_release(struct imap_rtrace *t)
{
	buf_release(&t->line);
}

/* Size of a literal announced at the end of line ("... {123}" or
 * "{123+}"), or -1. */
static int64_t line_literal(const char *s, size_t len)
{
	size_t i;
	int64_t n = 0, mul = 1;

	if (len < 3 || s[len - 1] != '}')
		return -1;
	i = len - 1;
	if (s[i - 1] == '+')
		i--;
	if (i < 2)
		return -1;
	for (i--; i > 0 && s[i] >= '0' && s[i] <= '9'; i--) {
		if (mul > (int64_t)1e15)
			return -1;
		n += (s[i] - '0') * mul;
		mul *= 10;
	}
	if (s[i] != '{' || mul == 1)
		return -1;
	return n;
}

static void rtrace_line_end(struct imap_rtrace *t)
{
	struct buf *l = &t->line;
	int64_t lit;
	char tail[32];

	if (l->len > 0 && l->data[l->len - 1] == '\r')
		buf_truncate(l, l->len - 1);
	if (t->cut) {
		if (t->tail_len > 0 && t->tail[t->tail_len - 1] == '\r')
			t->tail_len--;
		lit = line_literal(t->tail, t->tail_len);
	} else {
		lit = line_literal(l->data, l->len);
	}
	if (t->cut) {
		snprintf(tail, sizeof(tail), "...");
		if (buf_addstr(l, tail) < 0) {
			buf_truncate(l, l->len - 3);
			if (buf_addstr(l, tail) < 0)
				BUG("trace");
		}
	}
	t->emit(t->ctx, l->data);
	buf_reset(l);
	t->cut = false;
	t->tail_len = 0;
	if (lit > 0) {
		t->skip = t->skip_total = (uint64_t)lit;
	} else if (lit == 0) {
		t->emit(t->ctx, "{0 bytes}");
	}
}

static void tail_add(struct imap_rtrace *t, const char *p, size_t k)
{
	size_t cap = sizeof(t->tail);

	if (k >= cap) {
		memcpy(t->tail, p + k - cap, cap);
		t->tail_len = cap;
		return;
	}
	if (t->tail_len + k > cap) {
		size_t drop = t->tail_len + k - cap;

		memmove(t->tail, t->tail + drop, t->tail_len - drop);
		t->tail_len -= drop;
	}
	memcpy(t->tail + t->tail_len, p, k);
	t->tail_len += k;
}

void imap_rtrace_feed(struct imap_rtrace *t, const char *p, size_t n)
{
	while (n > 0) {
		const char *nl;
		size_t k;

		if (t->skip > 0) {
			k = n < t->skip ? n : (size_t)t->skip;
			t->skip -= k;
			p += k;
			n -= k;
			if (t->skip == 0) {
				char msg[48];

				snprintf(msg, sizeof(msg), "{%llu bytes}",
					 (unsigned long long)t->skip_total);
				t->emit(t->ctx, msg);
			}
			continue;
		}
		nl = memchr(p, '\n', n);
		k = nl ? (size_t)(nl - p) : n;
		if (!t->cut) {
			size_t room = t->line.max - t->line.len;
			size_t take = k < room ? k : room;

			if (buf_add(&t->line, p, take) < 0)
				BUG("trace");
			if (take < k)
				t->cut = true;
		}
		if (t->cut)
			tail_add(t, p, k);
		if (nl == NULL)
			return;
		p += k + 1;
		n -= k + 1;
		rtrace_line_end(t);
	}
}
