/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common.h"
#include "util/ident.h"
#include "tap.h"

static void ident_chunks(const char *msg, size_t len, const size_t *cuts,
			 size_t ncuts, struct msg_ident *id)
{
	struct ident_ctx *c = ident_new();
	size_t pos = 0, i;

	for (i = 0; i < ncuts; i++) {
		ident_feed(c, msg + pos, cuts[i] - pos);
		pos = cuts[i];
	}
	ident_feed(c, msg + pos, len - pos);
	ident_finish(c, id);
	ident_free(&c);
}

static char *hex(const struct msg_ident *id)
{
	static char out[33];

	ident_hash_hex(id->hhash, out);
	return out;
}

/* Every single cut point and byte-by-byte must match the whole feed. */
static void check_chunking(const char *what, const char *msg)
{
	struct msg_ident whole, part;
	size_t len = strlen(msg), i, *cuts;
	bool all = true;

	ident_compute(msg, len, &whole);
	for (i = 0; i <= len; i++) {
		ident_chunks(msg, len, &i, 1, &part);
		if (!ident_equal(&whole, &part)) {
			printf("# %s: differs with a cut at %zu\n", what, i);
			all = false;
		}
	}
	ok(all, "%s: any single cut gives the same identity", what);
	cuts = xcalloc(len + 1, sizeof(*cuts));
	for (i = 0; i < len; i++)
		cuts[i] = i;
	ident_chunks(msg, len, cuts, len, &part);
	ok(ident_equal(&whole, &part), "%s: byte by byte", what);
	/* pseudo-random chunk sizes */
	{
		size_t n = 0, pos = 0;
		unsigned seed = 12345;

		while (pos < len) {
			seed = seed * 1103515245 + 12345;
			pos += 1 + (seed >> 16) % 7;
			if (pos < len)
				cuts[n++] = pos;
		}
		ident_chunks(msg, len, cuts, n, &part);
		ok(ident_equal(&whole, &part), "%s: random chunks", what);
	}
	free(cuts);
}

int main(void)
{
	static const char lf[] =
		"From: a@example.org\n"
		"Subject: hello\n"
		"Message-ID:\n"
		" <abc.123@example.org>  \n"
		"\n"
		"body line 1\n"
		"body line 2\n";
	static const char crlf[] =
		"From: a@example.org\r\n"
		"Subject: hello\r\n"
		"Message-ID:\r\n"
		" <abc.123@example.org>  \r\n"
		"\r\n"
		"body line 1\r\n"
		"body line 2\r\n";
	static const char hdr_crlf[] =
		"From: a@example.org\r\n"
		"Subject: hello\r\n"
		"Message-ID:\r\n"
		" <abc.123@example.org>  \r\n"
		"\r\n";
	struct msg_ident a, b, c;
	struct ident_ctx *ctx;
	char big[2000];
	size_t i;

	/* size, msgid, LF vs CRLF */
	ident_compute(lf, strlen(lf), &a);
	ident_compute(crlf, strlen(crlf), &b);
	is_int(a.size, strlen(crlf), "LF size counts CRLF");
	is_int(b.size, strlen(crlf), "CRLF size is the byte count");
	is_str(a.msgid, "<abc.123@example.org>", "folded Message-ID unfolded and trimmed");
	ok(ident_equal(&a, &b), "LF and CRLF versions are the same message");

	/* header only (as BODY.PEEK[HEADER]) */
	ident_compute(hdr_crlf, strlen(hdr_crlf), &c);
	ok(ident_header_equal(&a, &c), "header only gives the same msgid and hash");
	ok(!ident_equal(&a, &c), "but not the same size");
	c.size = b.size;   /* what the caller does with RFC822.SIZE */
	ok(ident_equal(&b, &c), "equal once the size is set");

	/* a body change does not change the header hash */
	{
		static const char other[] =
			"From: a@example.org\n"
			"Subject: hello\n"
			"Message-ID:\n"
			" <abc.123@example.org>  \n"
			"\n"
			"BODY LINE 1\n"
			"BODY LINE 2\n";
		ident_compute(other, strlen(other), &c);
		ok(ident_header_equal(&a, &c) && c.size == a.size,
		   "same header, same size, other body: same identity");
	}
	{
		static const char other[] =
			"From: a@example.org\n"
			"Subject: hellO\n"
			"Message-ID:\n"
			" <abc.123@example.org>  \n"
			"\n"
			"body line 1\n"
			"body line 2\n";
		ident_compute(other, strlen(other), &c);
		ok(!ident_equal(&a, &c), "one header byte changed: different");
	}

	/* known hash */
	ident_compute("Subject: x\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n", 37, &a);
	is_str(hex(&a), "0ae2f04e063c16fe44d6750fcd274565",
	       "hash is SHA-256 of the LF header section");
	is_str(a.msgid, "<a@b>", "simple Message-ID");
	is_int(a.size, 37, "size");
	ident_compute("", 0, &a);
	is_str(hex(&a), "e3b0c44298fc1c149afbf4c8996fb924", "empty input");
	is_int(a.size, 0, "empty size");
	is_str(a.msgid, "", "no Message-ID");

	/* no empty line: all input is the header */
	ident_compute("Subject: x\nMessage-ID: <a@b>\n", 30, &a);
	ident_compute("Subject: x\r\nMessage-ID: <a@b>\r\n", 32, &b);
	ok(ident_equal(&a, &b), "no empty line: LF and CRLF agree");
	is_str(a.msgid, "<a@b>", "no empty line: msgid");

	/* message starting with the empty line */
	ident_compute("\nMessage-ID: <x@y>\n", 19, &a);
	is_str(a.msgid, "", "Message-ID in the body does not count");

	/* case, white space before the colon, first one wins */
	ident_compute("MESSAGE-id  :\t<m1@x>\nmessage-id: <m2@x>\n\n", 41, &a);
	is_str(a.msgid, "<m1@x>", "case-insensitive, obsolete space, first wins");
	ident_compute("X-Message-ID: <no@x>\nMessage-IDs: <no@y>\n\n", 43, &a);
	is_str(a.msgid, "", "similar field names do not count");
	ident_compute("Message-ID: <a\r\n\t@b>\r\n\r\n", 25, &a);
	is_str(a.msgid, "<a\t@b>", "folding keeps the white space, drops the break");

	/* bare CR: kept, and CR CR LF */
	ident_compute("A: b\rc\n\n", 8, &a);
	ident_compute("A: b\rc\r\n\r\n", 10, &b);
	ok(ident_header_equal(&a, &b), "bare CR stays, CRLF becomes LF");
	is_int(a.size, 10, "bare CR counts once");
	ident_compute("A: b\r\r\n\r\n", 9, &a);
	is_int(a.size, 9, "CR CR LF size");
	ident_compute("A: b\r", 5, &a);
	ident_compute("A: b\r", 5, &b);
	ok(ident_equal(&a, &b) && a.size == 5, "trailing CR");

	/* long Message-ID truncated */
	memcpy(big, "Message-ID: <", 13);
	for (i = 13; i < 1500; i++)
		big[i] = (char)('a' + i % 26);
	memcpy(big + 1500, ">\n\nbody\n", 9);
	ident_compute(big, strlen(big), &a);
	is_int(strlen(a.msgid), IDENT_MSGID_MAX, "long Message-ID truncated");
	ok(strncmp(a.msgid, "<", 1) == 0, "truncated keeps the start");

	/* chunking */
	check_chunking("LF message", lf);
	check_chunking("CRLF message", crlf);
	check_chunking("CRLF header only", hdr_crlf);
	check_chunking("CRs everywhere", "A\r: \r\rb\r\n\r\r\n\r\nx\r\r\n\r");
	check_chunking("fold at cut", "Message-ID:\r\n\t<q@w>\r\n\r\n");

	/* streaming API pieces */
	ctx = ident_new();
	ident_feed(ctx, "Message-ID: <s@t>\r", 18);
	ident_feed(ctx, "\n\r", 2);
	ident_feed(ctx, "\nbody", 5);
	ident_finish(ctx, &a);
	ident_free(&ctx);
	ok(ctx == NULL, "ident_free clears the pointer");
	ident_free(&ctx);
	ident_compute("Message-ID: <s@t>\n\nbody", 23, &b);
	ok(ident_equal(&a, &b), "CR LF split across feeds");
	is_int(a.size, 25, "size over split CRLF");
	return tap_done();
}
