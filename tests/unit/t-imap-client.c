/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * t-imap-client.c - the parts of the IMAP client that need no server:
 * uid sets, quoting, command lines and literals, trace redaction, the
 * received-data trace, base64, dates, and the TLS helper parsers.
 */
#include "common.h"
#include "imap/client-private.h"
#include "net/conn.h"
#include "tap.h"

static void test_uidset(void)
{
	static const uint32_t a[] = { 1, 2, 3, 5, 7, 8 };
	static const uint32_t b[] = { 4, 4, 5, 9 };
	static const uint32_t c[] = { UINT32_MAX - 1, UINT32_MAX };
	static const uint32_t d[] = { 10, 3, 4 };
	char *s;

	s = imap_uidset_make(a, 0);
	is_str(s, "", "uidset: empty");
	free(s);
	s = imap_uidset_make(a, 1);
	is_str(s, "1", "uidset: one");
	free(s);
	s = imap_uidset_make(a, N_ELEMENTS(a));
	is_str(s, "1:3,5,7:8", "uidset: ranges");
	free(s);
	s = imap_uidset_make(b, N_ELEMENTS(b));
	is_str(s, "4:5,9", "uidset: duplicates folded");
	free(s);
	s = imap_uidset_make(c, N_ELEMENTS(c));
	is_str(s, "4294967294:4294967295", "uidset: top of the range");
	free(s);
	s = imap_uidset_make(d, N_ELEMENTS(d));
	is_str(s, "10,3:4", "uidset: unsorted input stays correct");
	free(s);

	ok(imap_uidset_contains("1:3,7,9:12", 2), "contains: in range");
	ok(imap_uidset_contains("1:3,7,9:12", 7), "contains: single");
	ok(imap_uidset_contains("1:3,7,12:9", 10), "contains: descending range");
	ok(!imap_uidset_contains("1:3,7,9:12", 8), "contains: gap");
	ok(!imap_uidset_contains("1:x", 1), "contains: malformed set");
	ok(!imap_uidset_contains("99999999999", 1), "contains: overflow");
}

static void test_quote(void)
{
	char *s;

	s = imap_quote("hello world");
	is_str(s, "\"hello world\"", "quote: plain");
	free(s);
	s = imap_quote("a\"b\\c");
	is_str(s, "\"a\\\"b\\\\c\"", "quote: escapes");
	free(s);
	s = imap_quote("");
	is_str(s, "\"\"", "quote: empty");
	free(s);
	s = imap_quote("caf\xc3\xa9");
	is_str(s, "{5}\r\ncaf\xc3\xa9", "quote: 8-bit becomes a literal");
	free(s);
	s = imap_quote("a\r\nb");
	is_str(s, "{4}\r\na\r\nb", "quote: CRLF becomes a literal");
	free(s);
	ok(imap_is_atom("INBOX", 5), "atom: INBOX");
	ok(!imap_is_atom("a b", 3), "atom: space");
	ok(!imap_is_atom("a*", 2), "atom: wildcard");
	ok(!imap_is_atom("", 0), "atom: empty");
}

static char *wire(const struct imap_cmd *cmd)
{
	return imap_cmd_wire(cmd, NULL);
}

static void test_cmd(void)
{
	struct imap_cmd *cmd;
	char *w, big[5000];

	cmd = imap_cmd_new(7, 0, "SELECT");
	imap_cmd_add(cmd, " ", 1);
	imap_cmd_add_astring(cmd, "Lists/dev", 9);
	imap_cmd_add(cmd, " (CONDSTORE)", 12);
	imap_cmd_finish(cmd);
	w = wire(cmd);
	is_str(w, "T7 SELECT \"Lists/dev\" (CONDSTORE)\r\n", "cmd: quoted mailbox");
	is_int(cmd->n_segs, 1, "cmd: one segment");
	free(w);
	imap_cmd_free(&cmd);
	ok(cmd == NULL, "cmd: free clears the pointer");

	cmd = imap_cmd_new(8, 0, "CREATE");
	imap_cmd_add(cmd, " ", 1);
	imap_cmd_add_astring(cmd, "a\nb", 3);
	imap_cmd_finish(cmd);
	w = wire(cmd);
	is_str(w, "T8 CREATE {3}\r\na\nb\r\n", "cmd: literal without LITERAL+");
	ok(cmd->segs[0].has_lit && cmd->segs[0].sync, "cmd: literal is synchronizing");
	is_int(cmd->n_segs, 2, "cmd: two segments");
	free(w);
	imap_cmd_free(&cmd);

	cmd = imap_cmd_new(9, IMAP_CAP_LITERALPLUS, "CREATE");
	imap_cmd_add(cmd, " ", 1);
	imap_cmd_add_astring(cmd, "a\nb", 3);
	imap_cmd_finish(cmd);
	w = wire(cmd);
	is_str(w, "T9 CREATE {3+}\r\na\nb\r\n", "cmd: LITERAL+ literal");
	ok(!cmd->segs[0].sync, "cmd: LITERAL+ does not wait");
	free(w);
	imap_cmd_free(&cmd);

	cmd = imap_cmd_new(10, IMAP_CAP_LITERALMINUS, "X");
	imap_cmd_add(cmd, " ", 1);
	imap_cmd_add_literal(cmd, "abcd", 4, NULL);
	memset(big, 'x', sizeof(big));
	imap_cmd_add(cmd, " ", 1);
	imap_cmd_add_literal(cmd, big, sizeof(big), NULL);
	imap_cmd_finish(cmd);
	ok(!cmd->segs[0].sync, "cmd: LITERAL- small literal is non-synchronizing");
	ok(cmd->segs[1].sync, "cmd: LITERAL- literal over 4096 bytes waits");
	ok(strstr(cmd->segs[1].text.data, "{5000}\r\n") != NULL,
	   "cmd: LITERAL- large literal announced as {5000}");
	imap_cmd_free(&cmd);

	cmd = imap_cmd_new(11, IMAP_CAP_LITERALPLUS, "UID SEARCH");
	imap_cmd_add(cmd, " ", 1);
	imap_cmd_add_with_literals(cmd, "SUBJECT {5}\r\ncaf\xc3\xa9 FROM \"x{y}\"");
	imap_cmd_finish(cmd);
	w = wire(cmd);
	is_str(w, "T11 UID SEARCH SUBJECT {5+}\r\ncaf\xc3\xa9 FROM \"x{y}\"\r\n",
	       "cmd: criteria with an embedded literal");
	free(w);
	imap_cmd_free(&cmd);

	cmd = imap_cmd_new(12, 0, "NOOP");
	for (int i = 0; i < 1100 && !cmd->overflow; i++)
		imap_cmd_add(cmd, big, 1000);
	ok(cmd->overflow, "cmd: text past BUF_MAX_CMD is flagged");
	imap_cmd_free(&cmd);
}

static void test_redaction(void)
{
	struct imap_cmd *cmd;
	char *t, *w;

	cmd = imap_cmd_login(3, 0, "alice", "s3cret pass");
	imap_cmd_finish(cmd);
	w = wire(cmd);
	is_str(w, "T3 LOGIN \"alice\" \"s3cret pass\"\r\n", "login: wire form");
	free(w);
	t = imap_cmd_trace_seg(cmd, 0);
	is_str(t, "T3 LOGIN \"alice\" <redacted>", "login: password redacted");
	ok(strstr(t, "s3cret") == NULL, "login: no secret in trace");
	free(t);
	ok(cmd->secret, "login: buffers wiped on free");
	imap_cmd_free(&cmd);

	cmd = imap_cmd_login(4, 0, "bob", "p\xc3\xa4ss");
	imap_cmd_finish(cmd);
	is_int(cmd->n_segs, 2, "login: 8-bit password goes as a literal");
	t = imap_cmd_trace_seg(cmd, 0);
	is_str(t, "T4 LOGIN \"bob\" <redacted>", "login literal: first line");
	free(t);
	t = imap_cmd_trace_seg(cmd, 1);
	is_str(t, "<redacted>", "login literal: rest redacted");
	free(t);
	imap_cmd_free(&cmd);

	cmd = imap_cmd_authenticate(5, 0, "PLAIN", "AGFsaWNlAHNlY3JldA==", true);
	imap_cmd_finish(cmd);
	w = wire(cmd);
	is_str(w, "T5 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
	       "authenticate: SASL-IR wire form");
	free(w);
	t = imap_cmd_trace_seg(cmd, 0);
	is_str(t, "T5 AUTHENTICATE PLAIN <redacted>",
	       "authenticate: initial response redacted");
	free(t);
	imap_cmd_free(&cmd);

	cmd = imap_cmd_authenticate(6, 0, "XOAUTH2", "dG9rZW4=", false);
	imap_cmd_finish(cmd);
	t = imap_cmd_trace_seg(cmd, 0);
	is_str(t, "T6 AUTHENTICATE XOAUTH2", "authenticate: no IR, nothing to hide");
	free(t);
	imap_cmd_free(&cmd);
}

struct lines {
	char buf[4096];
	size_t len;
};

static void collect(void *ctx, const char *line)
{
	struct lines *l = ctx;
	int n = snprintf(l->buf + l->len, sizeof(l->buf) - l->len, "%s|", line);

	if (n > 0 && (size_t)n < sizeof(l->buf) - l->len)
		l->len += (size_t)n;
}

static void test_rtrace(void)
{
	static const char in[] =
		"* 1 FETCH (UID 3 BODY[] {11}\r\nhello\r\nwor\n UID 3)\r\n"
		"T1 OK done\r\n* 2 FETCH (BODY[] {0}\r\n)\r\n";
	static const char want[] =
		"* 1 FETCH (UID 3 BODY[] {11}|{11 bytes}| UID 3)|T1 OK done|"
		"* 2 FETCH (BODY[] {0}|{0 bytes}|)|";
	struct imap_rtrace t;
	struct lines l = { .len = 0 };
	char longline[5000];

	imap_rtrace_init(&t, collect, &l);
	imap_rtrace_feed(&t, in, strlen(in));
	is_str(l.buf, want, "rtrace: literal bodies hidden (whole)");
	imap_rtrace_release(&t);

	memset(&l, 0, sizeof(l));
	imap_rtrace_init(&t, collect, &l);
	for (size_t i = 0; i < strlen(in); i++)
		imap_rtrace_feed(&t, in + i, 1);
	is_str(l.buf, want, "rtrace: literal bodies hidden (trickled)");
	imap_rtrace_release(&t);

	memset(&l, 0, sizeof(l));
	imap_rtrace_init(&t, collect, &l);
	memset(longline, 'a', sizeof(longline));
	memcpy(longline + sizeof(longline) - 8, " {4}\r\n", 6);
	imap_rtrace_feed(&t, longline, sizeof(longline) - 2);
	imap_rtrace_feed(&t, "SECR)\r\n", 7);
	ok(strstr(l.buf, "SECR") == NULL && strstr(l.buf, "...|{4 bytes}|)|") != NULL,
	   "rtrace: literal after an over-long line still hidden");
	imap_rtrace_release(&t);
}

static void test_misc(void)
{
	char *s, date[32], fp[96];

	s = imap_base64("\0alice\0secret", 13);
	is_str(s, "AGFsaWNlAHNlY3JldA==", "base64: PLAIN response");
	free(s);
	s = imap_base64("ab", 2);
	is_str(s, "YWI=", "base64: padding");
	free(s);
	imap_format_date(0, date);
	is_str(date, "01-Jan-1970 00:00:00 +0000", "date: epoch");
	imap_format_date(1700000000, date);
	is_str(date, "14-Nov-2023 22:13:20 +0000", "date: 2023");

	ok(net_is_ip_literal("127.0.0.1"), "ip literal: v4");
	ok(net_is_ip_literal("::1"), "ip literal: v6");
	ok(!net_is_ip_literal("localhost"), "ip literal: name");
	ok(net_fingerprint_parse("sha256:ab:CD:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:"
				 "ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd", fp) == 0,
	   "fingerprint: parses");
	ok(strncmp(fp, "AB:CD:00", 8) == 0 && strlen(fp) == 95,
	   "fingerprint: upper-cased");
	ok(net_fingerprint_parse("sha1:AB", fp) < 0, "fingerprint: wrong hash");
	ok(net_fingerprint_parse("sha256:AB:CD", fp) < 0, "fingerprint: too short");
}

int main(void)
{
	test_uidset();
	test_quote();
	test_cmd();
	test_redaction();
	test_rtrace();
	test_misc();
	return tap_done();
}
