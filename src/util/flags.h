/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * flags.h - the message flags twinbox syncs, as one bit set shared by the
 * IMAP client, the Maildir store, the state database and the engine.
 *
 * Maildir info letters (":2,<letters>", ASCII order) and IMAP names:
 *   D \Draft   F \Flagged   P $Forwarded   R \Answered   S \Seen   T \Deleted
 * Other IMAP keywords and Maildir letters are not synced (and left alone).
 */
#ifndef TB_FLAGS_H
#define TB_FLAGS_H

#include "common.h"

enum msg_flag {
	MF_DRAFT = 1 << 0,     /* D  \Draft */
	MF_FLAGGED = 1 << 1,   /* F  \Flagged */
	MF_FORWARDED = 1 << 2, /* P  $Forwarded */
	MF_ANSWERED = 1 << 3,  /* R  \Answered */
	MF_SEEN = 1 << 4,      /* S  \Seen */
	MF_DELETED = 1 << 5,   /* T  \Deleted */
};
#define MF_ALL 0x3fu
#define MF_COUNT 6

/* Maildir letters of flags, in ASCII order, NUL-terminated (buf >= 7). */
void flags_to_maildir(unsigned flags, char out[MF_COUNT + 1]);
/* Bits of the known letters in s (up to len or NUL); others ignored. */
unsigned flags_from_maildir(const char *s, size_t len);
/* IMAP flag name of one bit (e.g. "\\Seen"), NULL if not one bit. */
const char *flags_imap_name(unsigned bit);
/* Bit of an IMAP flag name (case-insensitive), 0 if not synced. */
unsigned flags_from_imap(const char *name, size_t len);
/* "\\Seen \\Flagged" for a FLAGS list (no parentheses); buf >= 64. */
void flags_to_imap(unsigned flags, char *buf, size_t size);

#endif
