/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common.h"
#include "util/flags.h"

#include <strings.h>

static const struct {
	unsigned bit;
	char letter;
	const char *imap;
} flag_table[MF_COUNT] = {
	/* ASCII order of the letters */
	{ MF_DRAFT, 'D', "\\Draft" },
	{ MF_FLAGGED, 'F', "\\Flagged" },
	{ MF_FORWARDED, 'P', "$Forwarded" },
	{ MF_ANSWERED, 'R', "\\Answered" },
	{ MF_SEEN, 'S', "\\Seen" },
	{ MF_DELETED, 'T', "\\Deleted" },
};

void flags_to_maildir(unsigned flags, char out[MF_COUNT + 1])
{
	size_t i, n = 0;

	for (i = 0; i < MF_COUNT; i++)
		if (flags & flag_table[i].bit)
			out[n++] = flag_table[i].letter;
	out[n] = '\0';
}

unsigned flags_from_maildir(const char *s, size_t len)
{
	unsigned flags = 0;
	size_t i, j;

	for (i = 0; i < len && s[i] != '\0'; i++)
		for (j = 0; j < MF_COUNT; j++)
			if (s[i] == flag_table[j].letter)
				flags |= flag_table[j].bit;
	return flags;
}

const char *flags_imap_name(unsigned bit)
{
	size_t i;

	for (i = 0; i < MF_COUNT; i++)
		if (flag_table[i].bit == bit)
			return flag_table[i].imap;
	return NULL;
}

unsigned flags_from_imap(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < MF_COUNT; i++)
		if (strlen(flag_table[i].imap) == len &&
		    strncasecmp(flag_table[i].imap, name, len) == 0)
			return flag_table[i].bit;
	return 0;
}

void flags_to_imap(unsigned flags, char *buf, size_t size)
{
	size_t i, n = 0;

	if (size == 0)
		return;
	buf[0] = '\0';
	for (i = 0; i < MF_COUNT; i++) {
		if (!(flags & flag_table[i].bit))
			continue;
		n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "%s%s",
				      n ? " " : "", flag_table[i].imap);
	}
	if (n >= size)
		BUG("flag buffer too small");
}
