/* SPDX-License-Identifier: GPL-2.0-or-later */
/* t-utf7.c - modified UTF-7 codec: RFC examples, round trips, rejections */
#include "common.h"
#include "imap/utf7.h"
#include "tap.h"

static void check_pair(const char *utf8, const char *wire)
{
	char *out = NULL;
	int ret;

	ret = imap_utf7_encode(utf8, strlen(utf8), &out);
	ok(ret == 0 && out != NULL && strcmp(out, wire) == 0,
	   "encode '%s' -> '%s' (got '%s')", utf8, wire, out ? out : "(error)");
	free(out);
	out = NULL;
	ret = imap_utf7_decode(wire, strlen(wire), &out);
	ok(ret == 0 && out != NULL && strcmp(out, utf8) == 0,
	   "decode '%s' -> '%s' (got '%s')", wire, utf8, out ? out : "(error)");
	free(out);
}

static void check_bad_decode(const char *wire, size_t len, const char *why)
{
	char *out = NULL;

	ok(imap_utf7_decode(wire, len, &out) == -1 && out == NULL,
	   "decode rejects %s", why);
	free(out);
}

static void check_bad_encode(const char *in, size_t len, const char *why)
{
	char *out = NULL;

	ok(imap_utf7_encode(in, len, &out) == -1 && out == NULL,
	   "encode rejects %s", why);
	free(out);
}

static uint32_t rnd_state = 12345;

static uint32_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state;
}

static size_t put_cp(char *o, uint32_t cp)
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

static uint32_t random_cp(void)
{
	uint32_t cp;

	switch (rnd() % 5) {
	case 0:
	case 1:
		return 0x20 + rnd() % 0x5f;            /* printable, incl. '&' */
	case 2:
		return 1 + rnd() % 0x1f;               /* control */
	case 3:
		do
			cp = 0x80 + rnd() % (0x10000 - 0x80);
		while (cp >= 0xd800 && cp <= 0xdfff);
		return cp;
	default:
		return 0x10000 + rnd() % 0x100000;     /* astral */
	}
}

static void random_round_trips(void)
{
	int i, failures = 0;

	for (i = 0; i < 2000; i++) {
		char in[200], *wire = NULL, *back = NULL, *wire2 = NULL;
		size_t n = 0, k, len = rnd() % 40;

		for (k = 0; k < len; k++)
			n += put_cp(in + n, random_cp());
		in[n] = '\0';
		if (imap_utf7_encode(in, n, &wire) < 0 ||
		    imap_utf7_decode(wire, strlen(wire), &back) < 0 ||
		    strcmp(back, in) != 0 ||
		    imap_utf7_encode(back, strlen(back), &wire2) < 0 ||
		    strcmp(wire, wire2) != 0) {
			if (failures++ < 5)
				printf("# round trip failed for input %d (%zu bytes)\n", i, n);
		}
		for (k = 0; wire != NULL && wire[k] != '\0'; k++)
			if ((unsigned char)wire[k] < 0x20 || (unsigned char)wire[k] > 0x7e)
				failures++;
		free(wire);
		free(back);
		free(wire2);
	}
	is_int(failures, 0, "2000 random UTF-8 strings round-trip through canonical UTF-7");
}

int main(void)
{
	/* RFC 3501 5.1.3 examples */
	check_pair("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
		   "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	check_pair("&", "&-");
	check_pair("a&b&&", "a&-b&-&-");
	check_pair("", "");
	check_pair("INBOX", "INBOX");
	check_pair("Entw\xc3\xbc" "rfe", "Entw&APw-rfe");
	check_pair("\xc3\xa4&", "&AOQ-&-");
	check_pair("&\xc3\xa4", "&-&AOQ-");
	check_pair("Gel\xc3\xb6schte Elemente", "Gel&APY-schte Elemente");
	check_pair("\xf0\x9f\x98\x80", "&2D3eAA-");               /* U+1F600 */
	check_pair("x\ty", "x&AAk-y");                           /* control encoded */
	check_pair("\xd0\x9e\xd1\x82\xd0\xbf\xd1\x80\xd0\xb0\xd0\xb2\xd0\xbb\xd0\xb5\xd0\xbd\xd0\xbd\xd1\x8b\xd0\xb5",
		   "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-");
	check_pair("\x7f", "&AH8-");

	check_bad_decode("&", 1, "unterminated shift");
	check_bad_decode("&U,BTFw", 7, "unterminated run");
	check_bad_decode("&AGE-", 5, "encoded printable ASCII");
	check_bad_decode("&ACY-", 5, "encoded '&'");
	check_bad_decode("&AOQ-&AOQ-", 10, "two adjacent runs");
	check_bad_decode("&AOR-", 5, "non-zero padding bits");
	check_bad_decode("&AOQA-", 6, "extra base64 character");
	check_bad_decode("&AO-", 4, "partial UTF-16 unit");
	check_bad_decode("&2D0-", 5, "lone high surrogate");
	check_bad_decode("&3gA-", 5, "lone low surrogate");
	check_bad_decode("&2D3YPQ-", 8, "high surrogate followed by high");
	check_bad_decode("&AOQ/-", 6, "'/' instead of ','");
	check_bad_decode("&AOQ=-", 6, "base64 padding");
	check_bad_decode("\xc3\xa4", 2, "raw 8-bit bytes");
	check_bad_decode("a\tb", 3, "raw control character");
	check_bad_decode("a\0b", 3, "raw NUL");
	check_bad_decode("&AAA-", 5, "encoded NUL");
	check_bad_decode("&2D3eAA-&2D3eAA-", 16, "adjacent runs with astral chars");

	check_bad_encode("\xc3", 1, "truncated sequence");
	check_bad_encode("\xc0\xaf", 2, "overlong '/'");
	check_bad_encode("\xe0\x80\xaf", 3, "overlong 3-byte");
	check_bad_encode("\xed\xa0\x80", 3, "UTF-8 encoded surrogate");
	check_bad_encode("\xf4\x90\x80\x80", 4, "code point above U+10FFFF");
	check_bad_encode("\xff", 1, "byte 0xff");
	check_bad_encode("\x80", 1, "stray continuation byte");
	check_bad_encode("a\0b", 3, "NUL");

	random_round_trips();
	return tap_done();
}
