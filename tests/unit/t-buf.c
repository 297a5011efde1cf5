/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common.h"
#include "util/buf.h"
#include "tap.h"

int main(void)
{
	struct buf b;
	char *p;
	size_t n;
	int i;

	buf_init(&b, 16);
	ok(b.data != NULL && b.len == 0 && b.data[0] == '\0', "empty after init");
	is_int(buf_addstr(&b, "hello"), 0, "append within cap");
	is_str(b.data, "hello", "contents");
	is_int(buf_addf(&b, " %d", 42), 0, "addf");
	is_str(b.data, "hello 42", "addf contents");
	is_int(buf_addstr(&b, "0123456789"), -1, "append past cap fails");
	is_str(b.data, "hello 42", "failed append leaves buffer unchanged");
	buf_consume(&b, 6);
	is_str(b.data, "42", "consume");
	p = buf_take(&b, &n);
	is_str(p, "42", "take returns contents");
	is_int(n, 2, "take returns length");
	is_int(b.len, 0, "take resets");
	free(p);
	buf_init(&b, BUF_MAX_UNLIMITED);
	for (i = 0; i < 10000; i++)
		if (buf_addch(&b, (char)('a' + i % 26)) < 0)
			break;
	is_int(b.len, 10000, "grows");
	ok(b.data[b.len] == '\0', "NUL terminated");
	is_int(buf_add(&b, "\0x", 2), 0, "add binary");
	is_int(b.len, 10002, "binary bytes");
	buf_release(&b);
	return tap_done();
}
