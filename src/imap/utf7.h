/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * utf7.h - modified UTF-7 mailbox names (RFC 3501 5.1.3) <-> UTF-8.
 */
#ifndef TB_IMAP_UTF7_H
#define TB_IMAP_UTF7_H

#include "common.h"

/* Decode a wire name; -1 on malformed input (bad base64, unterminated or
 * empty shift "&-" misuse, non-canonical encodings such as an encoded
 * printable ASCII character or two adjacent encoded runs, bad surrogates,
 * non-zero padding bits, bytes >= 0x80). *out_r is malloc'ed. */
int imap_utf7_decode(const char *in, size_t len, char **out_r);
/* Encode UTF-8; -1 on invalid UTF-8 (overlongs, surrogates, > U+10FFFF). */
int imap_utf7_encode(const char *in, size_t len, char **out_r);

#endif
