/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ident.c - message identity (size, Message-ID, header hash) computed in
 * one streaming pass with bounded memory.
 *
 * Two views of the input run side by side:
 *   - the size view counts every byte plus one for each LF that has no CR
 *     before it (the CRLF size);
 *   - the header view turns CRLF into LF (a CR at the end of a chunk is
 *     held back until the next byte shows whether an LF follows), hashes
 *     the result up to the empty line, and picks the Message-ID field out
 *     of it with a small state machine.
 */
#include "common.h"
#include "util/ident.h"

#include <strings.h>
#include <openssl/evp.h>

enum hdr_state {
	HS_SKIP,    /* inside a field we do not care about */
	HS_NAME,    /* reading a field name, up to ':' */
	HS_VALUE,   /* inside the value of the Message-ID field */
};

#define NAME_MAX_LEN 32
#define HBUF_SIZE 4096

struct ident_ctx {
	EVP_MD_CTX *md;
	uint64_t size;
	bool prev_cr;           /* size view: last byte was CR */

	bool pend_cr;           /* header view: CR held back */
	bool hdr_done;          /* empty line seen */
	bool at_bol;            /* next header byte starts a line */
	enum hdr_state hs;
	char name[NAME_MAX_LEN];
	size_t name_len;
	bool name_long;
	bool in_msgid;          /* current field is the first Message-ID */
	bool have_msgid;        /* the first Message-ID field is over */
	char msgid[IDENT_MSGID_MAX + 1];
	size_t msgid_len;

	unsigned char hbuf[HBUF_SIZE];  /* converted header bytes to hash */
	size_t hlen;
	bool finished;
};

static void hash_flush(struct ident_ctx *c)
{
	if (c->hlen == 0)
		return;
	if (EVP_DigestUpdate(c->md, c->hbuf, c->hlen) != 1)
		BUG("EVP_DigestUpdate failed");
	c->hlen = 0;
}

static void field_end(struct ident_ctx *c)
{
	if (c->in_msgid) {
		c->in_msgid = false;
		c->have_msgid = true;
	}
}

static void msgid_add(struct ident_ctx *c, char ch)
{
	/* leading white space of the (unfolded) value is not part of it */
	if (c->msgid_len == 0 && (ch == ' ' || ch == '\t' || ch == '\r'))
		return;
	if (c->msgid_len < IDENT_MSGID_MAX)
		c->msgid[c->msgid_len++] = ch;
}

static bool name_is_msgid(struct ident_ctx *c)
{
	size_t n = c->name_len;

	/* obsolete syntax allows white space before the colon (RFC 5322 4.5) */
	while (n > 0 && (c->name[n - 1] == ' ' || c->name[n - 1] == '\t'))
		n--;
	return !c->name_long && n == 10 &&
	       strncasecmp(c->name, "message-id", 10) == 0;
}

/* One byte of the header section, after CRLF -> LF. */
static void hdr_byte(struct ident_ctx *c, unsigned char ch)
{
	c->hbuf[c->hlen++] = ch;
	if (c->hlen == HBUF_SIZE)
		hash_flush(c);

	if (c->at_bol) {
		c->at_bol = false;
		if (ch == '\n') {
			/* the empty line: end of the header section */
			field_end(c);
			c->hdr_done = true;
			return;
		}
		if (ch == ' ' || ch == '\t') {
			/* folded continuation of the current field */
			if (c->hs == HS_NAME)
				c->hs = HS_SKIP;  /* a line without a colon */
			if (c->hs == HS_VALUE && c->in_msgid)
				msgid_add(c, (char)ch);
			return;
		}
		field_end(c);
		c->hs = HS_NAME;
		c->name_len = 0;
		c->name_long = false;
	}
	if (ch == '\n') {
		/* unfolding removes the line break itself */
		c->at_bol = true;
		return;
	}
	switch (c->hs) {
	case HS_NAME:
		if (ch == ':') {
			if (!c->have_msgid && name_is_msgid(c)) {
				c->in_msgid = true;
				c->hs = HS_VALUE;
			} else {
				c->hs = HS_SKIP;
			}
		} else if (c->name_len < NAME_MAX_LEN) {
			c->name[c->name_len++] = (char)ch;
		} else {
			c->name_long = true;
		}
		break;
	case HS_VALUE:
		msgid_add(c, (char)ch);
		break;
	case HS_SKIP:
		break;
	}
}

struct ident_ctx *ident_new(void)
{
	struct ident_ctx *c = xcalloc(1, sizeof(*c));

	c->md = EVP_MD_CTX_new();
	if (c->md == NULL)
		BUG("EVP_MD_CTX_new failed (out of memory)");
	if (EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1)
		BUG("SHA-256 not available from OpenSSL");
	c->at_bol = true;
	c->hs = HS_SKIP;
	return c;
}

/* After the header only the CRLF size is left to count: whole chunks at
 * a time, one memchr per line instead of a test per byte. */
static void body_count(struct ident_ctx *c, const unsigned char *p, size_t n)
{
	const unsigned char *q = p, *end = p + n, *lf;

	if (n == 0)
		return;
	c->size += n;
	while (q < end && (lf = memchr(q, '\n', (size_t)(end - q))) != NULL) {
		bool cr_before = lf > p ? lf[-1] == '\r' : c->prev_cr;

		if (!cr_before)
			c->size++;
		q = lf + 1;
	}
	c->prev_cr = end[-1] == '\r';
}

void ident_feed(struct ident_ctx *c, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i;

	ASSERT(!c->finished);
	for (i = 0; i < len; i++) {
		unsigned char ch = p[i];

		if (c->hdr_done) {
			body_count(c, p + i, len - i);
			break;
		}

		c->size++;
		if (ch == '\n' && !c->prev_cr)
			c->size++;
		c->prev_cr = ch == '\r';

		if (c->hdr_done)
			continue;
		if (c->pend_cr) {
			c->pend_cr = false;
			if (ch == '\n') {
				hdr_byte(c, '\n');
				continue;
			}
			hdr_byte(c, '\r');
		}
		if (ch == '\r')
			c->pend_cr = true;
		else
			hdr_byte(c, ch);
	}
	hash_flush(c);
}

void ident_finish(struct ident_ctx *c, struct msg_ident *id_r)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t n;

	ASSERT(!c->finished);
	c->finished = true;
	if (!c->hdr_done && c->pend_cr)
		hdr_byte(c, '\r');
	c->pend_cr = false;
	field_end(c);
	hash_flush(c);
	if (EVP_DigestFinal_ex(c->md, md, &mdlen) != 1 || mdlen < 16)
		BUG("EVP_DigestFinal_ex failed");

	memset(id_r, 0, sizeof(*id_r));
	id_r->size = c->size;
	n = c->msgid_len;
	while (n > 0 && (c->msgid[n - 1] == ' ' || c->msgid[n - 1] == '\t' ||
			 c->msgid[n - 1] == '\r'))
		n--;
	memcpy(id_r->msgid, c->msgid, n);
	id_r->msgid[n] = '\0';
	memcpy(id_r->hhash, md, 16);
}

void ident_free(struct ident_ctx **cp)
{
	struct ident_ctx *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	EVP_MD_CTX_free(c->md);
	free(c);
}

void ident_compute(const void *data, size_t len, struct msg_ident *id_r)
{
	struct ident_ctx *c = ident_new();

	ident_feed(c, data, len);
	ident_finish(c, id_r);
	ident_free(&c);
}

bool ident_header_equal(const struct msg_ident *a, const struct msg_ident *b)
{
	return strcmp(a->msgid, b->msgid) == 0 &&
	       memcmp(a->hhash, b->hhash, sizeof(a->hhash)) == 0;
}

bool ident_equal(const struct msg_ident *a, const struct msg_ident *b)
{
	return a->size == b->size && ident_header_equal(a, b);
}

void ident_hash_hex(const uint8_t h[16], char out[33])
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < 16; i++) {
		out[2 * i] = hex[h[i] >> 4];
		out[2 * i + 1] = hex[h[i] & 0xf];
	}
	out[32] = '\0';
}
