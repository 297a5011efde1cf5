/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * utf7.c - modified UTF-7 (RFC 3501 5.1.3) <-> UTF-8.
 *
 * Printable US-ASCII other than '&' stands for itself, '&' is "&-", and
 * every run of other characters is "&" + base64 of UTF-16BE (alphabet with
 * ',' for '/', no padding) + "-". The decoder accepts only the canonical
 * form the encoder produces, so decode+encode and encode+decode are exact
 * round trips: this keeps two spellings of one mailbox name from ever
 * reaching the sync state.
 */
#include "common.h"
#include "imap/utf7.h"

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

static bool is_direct(uint32_t c)
{
	return c >= 0x20 && c <= 0x7e;
}

static size_t put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Decode one base64 run starting after '&'; *i ends after the '-'. */
static int decode_run(const char *in, size_t len, size_t *i, char *out, size_t *o)
{
	uint32_t bits = 0, high = 0;
	unsigned nbits = 0;
	size_t start = *i;
	int v;

	for (;;) {
		if (*i >= len)
			return -1;                 /* unterminated */
		if (in[*i] == '-')
			break;
		v = b64value((unsigned char)in[*i]);
		if (v < 0)
			return -1;
		(*i)++;
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits >= 16) {
			uint32_t u = (bits >> (nbits - 16)) & 0xffff;

			nbits -= 16;
			bits &= (1u << nbits) - 1;
			if (high != 0) {
				if (u < 0xdc00 || u > 0xdfff)
					return -1;         /* high surrogate alone */
				*o += put_utf8(out + *o, 0x10000 + ((high - 0xd800) << 10) +
					       (u - 0xdc00));
				high = 0;
			} else if (u >= 0xd800 && u <= 0xdbff) {
				high = u;
			} else if (u >= 0xdc00 && u <= 0xdfff) {
				return -1;                 /* low surrogate alone */
			} else if (is_direct(u) || u == 0) {
				return -1;                 /* must not be encoded */
			} else {
				*o += put_utf8(out + *o, u);
			}
		}
	}
	(*i)++;                                    /* the '-' */
	if (*i - 1 == start || high != 0)
		return -1;                         /* empty run or split pair */
	/* leftover: fewer than 6 bits, all zero */
	if (nbits >= 6 || bits != 0)
		return -1;
	return 0;
}

int imap_utf7_decode(const char *in, size_t len, char **out_r)
{
	char *out;
	size_t i = 0, o = 0;
	bool after_run = false;

	/* every input byte yields at most 2 output bytes (3 bytes of UTF-8
	 * per 16 bits, i.e. per 2.67 base64 characters) */
	if (len > (SIZE_MAX - 1) / 2)
		return -1;
	out = xmalloc(len * 2 + 1);
	while (i < len) {
		unsigned char c = (unsigned char)in[i];

		if (c != '&') {
			if (!is_direct(c))
				goto bad;
			out[o++] = (char)c;
			i++;
			after_run = false;
			continue;
		}
		i++;
		if (i < len && in[i] == '-') {
			out[o++] = '&';
			i++;
			after_run = false;
			continue;
		}
		if (after_run)
			goto bad;                  /* two adjacent runs */
		if (decode_run(in, len, &i, out, &o) < 0)
			goto bad;
		after_run = true;
	}
	out[o] = '\0';
	*out_r = out;
	return 0;
bad:
	free(out);
	return -1;
}

/* Next code point of strict UTF-8; 0 bytes consumed on error. */
static size_t get_utf8(const unsigned char *s, size_t len, uint32_t *cp_r)
{
	uint32_t cp, min;
	size_t n, k;

	if (s[0] < 0x80) {
		*cp_r = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2; cp = s[0] & 0x1f; min = 0x80;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3; cp = s[0] & 0x0f; min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4; cp = s[0] & 0x07; min = 0x10000;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (k = 1; k < n; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return n;
}

int imap_utf7_encode(const char *in, size_t len, char **out_r)
{
	const unsigned char *s = (const unsigned char *)in;
	char *out;
	size_t i = 0, o = 0, n;
	uint32_t cp, bits = 0;
	unsigned nbits = 0;
	bool in_run = false;

	/* worst case: one control byte between printable ones, "&AAE-" */
	if (len > (SIZE_MAX - 1) / 5)
		return -1;
	out = xmalloc(len * 5 + 1);
	while (i < len) {
		n = get_utf8(s + i, len - i, &cp);
		if (n == 0 || cp == 0)
			goto bad;
		i += n;
		if (is_direct(cp)) {
			if (in_run) {
				if (nbits > 0)
					out[o++] = b64chars[(bits << (6 - nbits)) & 0x3f];
				out[o++] = '-';
				in_run = false;
				bits = nbits = 0;
			}
			out[o++] = (char)cp;
			if (cp == '&')
				out[o++] = '-';
			continue;
		}
		if (!in_run) {
			out[o++] = '&';
			in_run = true;
		}
		if (cp >= 0x10000) {
			uint32_t v = cp - 0x10000;
			uint32_t units[2] = { 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff) };

			for (int k = 0; k < 2; k++) {
				bits = (bits << 16) | units[k];
				nbits += 16;
				while (nbits >= 6) {
					nbits -= 6;
					out[o++] = b64chars[(bits >> nbits) & 0x3f];
				}
				bits &= (1u << nbits) - 1;
			}
		} else {
			bits = (bits << 16) | cp;
			nbits += 16;
			while (nbits >= 6) {
				nbits -= 6;
				out[o++] = b64chars[(bits >> nbits) & 0x3f];
			}
			bits &= (1u << nbits) - 1;
		}
	}
	if (in_run) {
		if (nbits > 0)
			out[o++] = b64chars[(bits << (6 - nbits)) & 0x3f];
		out[o++] = '-';
	}
	out[o] = '\0';
	*out_r = out;
	return 0;
bad:
	free(out);
	return -1;
}
