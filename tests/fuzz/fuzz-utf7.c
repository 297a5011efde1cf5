/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-utf7.c - libFuzzer target for the modified UTF-7 codec: whatever
 * decodes must re-encode to the same bytes, and whatever encodes must
 * decode back to the input.
 */
#include "common.h"
#include "imap/utf7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	char *out = NULL, *back = NULL;

	if (imap_utf7_decode(in, size, &out) == 0) {
		if (imap_utf7_encode(out, strlen(out), &back) != 0 ||
		    strlen(back) != size || memcmp(back, in, size) != 0)
			abort();
		free(back);
		back = NULL;
		free(out);
		out = NULL;
	}
	if (imap_utf7_encode(in, size, &out) == 0) {
		if (imap_utf7_decode(out, strlen(out), &back) != 0 ||
		    strlen(back) != size || memcmp(back, in, size) != 0)
			abort();
		free(back);
		free(out);
	}
	return 0;
}
