/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ident.h - identity of a message without its body, to match the same
 * message on both sides: on the server from RFC822.SIZE plus
 * BODY.PEEK[HEADER], locally from the file.
 *
 * The input is the message in either line-end convention (LF as in a
 * Maildir file, CRLF as on the wire), cut into chunks anywhere, even
 * between a CR and its LF; the result does not depend on either:
 *   - size counts the message as if every bare LF were CRLF, so it equals
 *     the server's RFC822.SIZE;
 *   - msgid is the first Message-ID field, unfolded (RFC 5322 2.2.3) and
 *     trimmed of surrounding white space, truncated to 255 bytes, "" when
 *     the message has none;
 *   - hhash is the first 16 bytes of the SHA-256 of the header section (up
 *     to and including the empty line that ends it, or the whole input when
 *     there is none) with every CRLF turned into LF.
 * Feeding only the header (as BODY.PEEK[HEADER] returns it) gives the same
 * msgid and hhash as feeding the whole message; the caller then takes the
 * size from RFC822.SIZE.
 */
#ifndef TB_IDENT_H
#define TB_IDENT_H

#include "common.h"

#define IDENT_MSGID_MAX 255
/* A longer server identity is not kept: matching falls back to content. */
#define IDENT_SID_MAX 64

struct msg_ident {
	uint64_t size;        /* with CRLF line ends (= IMAP RFC822.SIZE) */
	char msgid[IDENT_MSGID_MAX + 1]; /* "" if none */
	uint8_t hhash[16];    /* SHA-256 prefix of the LF header section */
	/* The server's identity of the message across folders, when it
	 * gave one with the header (sync/recover.c fetch_to_ident): the
	 * EMAILID (RFC 8474), or "gm:" and the X-GM-MSGID; "" otherwise,
	 * and always for a local file. Not part of ident_equal(): it says
	 * which messages are one, the rest says what their bytes are. */
	char sid[IDENT_SID_MAX + 1];
};

struct ident_ctx;

/* Start a computation; never fails (aborts if OpenSSL lacks SHA-256). */
struct ident_ctx *ident_new(void);
/* Message bytes, LF or CRLF line ends, any chunking. Memory stays bounded
 * whatever the input. */
void ident_feed(struct ident_ctx *c, const void *data, size_t len);
/* Fill *id_r. Call once; then only ident_free() is allowed. */
void ident_finish(struct ident_ctx *c, struct msg_ident *id_r);
void ident_free(struct ident_ctx **c);

/* One-shot helper: ident_new + feed + finish + free. */
void ident_compute(const void *data, size_t len, struct msg_ident *id_r);

/* size, msgid and hash all equal. */
bool ident_equal(const struct msg_ident *a, const struct msg_ident *b);
/* msgid and hash equal (for a header-only identity whose size the caller
 * has not set yet). */
bool ident_header_equal(const struct msg_ident *a, const struct msg_ident *b);
/* 32 lower-case hex digits and a NUL. */
void ident_hash_hex(const uint8_t h[16], char out[33]);

#endif
