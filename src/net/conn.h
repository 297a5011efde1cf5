/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * conn.h - one TCP connection, optionally wrapped in TLS (OpenSSL 3).
 *
 * The connection owns the socket, the TLS session and two capped buffers:
 * input (bytes read from the peer, not yet consumed by the owner) and
 * output (bytes queued by the owner, not yet written). It knows nothing
 * about IMAP: the owner reads lines or N bytes, or peeks at the input
 * buffer and consumes what its parser used.
 *
 * All I/O is done on a non-blocking socket with poll(): every wait is
 * bounded by the inactivity timeout given at connect time (a wait that
 * sees no progress for that long fails). While writing, the connection
 * keeps reading what the peer sends into the input buffer (up to its cap),
 * so a pipelining client cannot deadlock with a server that answers while
 * the client is still sending.
 *
 * Errors: functions return 0 (or a documented count) on success and -1 on
 * failure with *error_r set to a malloc'ed message the caller frees;
 * net_conn_failure() then says whether TLS (certificate, handshake) or the
 * network (connect, read, write, timeout, EOF) failed.
 */
#ifndef TB_NET_CONN_H
#define TB_NET_CONN_H

#include "common.h"
#include "util/buf.h"

struct net_conn;

enum net_failure {
	NET_FAIL_NONE = 0,
	NET_FAIL_NET,       /* connect/read/write error, timeout, peer closed */
	NET_FAIL_TLS,       /* TLS setup, handshake or certificate failure */
};

/* Largest input the connection buffers for its owner (bytes). Reads stop
 * (and, while writing, the socket is not read further) at this size. */
#define NET_INPUT_MAX (16u * 1024 * 1024)
/* Queued output is flushed automatically beyond this many bytes. */
#define NET_OUTPUT_FLUSH (64u * 1024)

struct net_tls_settings {
	const char *host;         /* name (or IP literal) to verify; SNI unless an IP */
	const char *ca_file;      /* NULL: the system trust store */
	const char *fingerprint;  /* NULL or "sha256:AA:BB:..." pin of the leaf */
};

/*
 * Resolve host (getaddrinfo, IPv4 and IPv6) and try every address in turn
 * with a non-blocking connect, all within connect_timeout seconds (0 = 30).
 * io_timeout (seconds, 0 = 120) bounds every later wait for progress.
 */
int net_connect(const char *host, unsigned port, unsigned connect_timeout,
		unsigned io_timeout, struct net_conn **c_r, char **error_r)
	ATTR_WARN_UNUSED;
/* Close and free; *c becomes NULL. No-op on NULL. */
void net_conn_free(struct net_conn **c);

/*
 * TLS handshake over the connected socket (implicit TLS right after
 * connect, or after a successful STARTTLS). TLS 1.2 at least; the chain
 * is verified against ca_file or the system store and the certificate
 * must match host (DNS name, or IP address for an IP literal). With a
 * fingerprint pin, a matching leaf is accepted even when the chain is not
 * trusted, and a different one is always refused.
 *
 * Anything still in the input buffer is discarded first: bytes the peer
 * sent in clear text before the handshake must never be read as if they
 * came over TLS (the STARTTLS injection attack, CVE-2011-0411).
 */
int net_conn_start_tls(struct net_conn *c, const struct net_tls_settings *set,
		       char **error_r) ATTR_WARN_UNUSED;
bool net_conn_is_tls(const struct net_conn *c);
/* The socket, for an owner that polls several connections itself. */
int net_conn_fd(const struct net_conn *c);
/* The peer closed the connection (everything it sent may still be buffered). */
bool net_conn_at_eof(const struct net_conn *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" or "" without TLS (static/owned by c). */
const char *net_conn_tls_info(const struct net_conn *c);
enum net_failure net_conn_failure(const struct net_conn *c);

/* ---- input ---- */

/* The buffered input (not NUL-terminated for the caller's purposes; may
 * hold NUL bytes). Valid until the next call on c. */
const char *net_conn_input(const struct net_conn *c, size_t *len_r);
/* Drop the first n buffered bytes (n <= buffered length). */
void net_conn_consume(struct net_conn *c, size_t n);
/* Drop everything buffered; returns how many bytes were dropped. */
size_t net_conn_discard_input(struct net_conn *c);
/*
 * Read more bytes into the input buffer, waiting up to the inactivity
 * timeout. 0 when at least one byte was added; -1 on EOF, error, timeout
 * or a full input buffer. Flushes queued output first.
 */
int net_conn_read_more(struct net_conn *c, char **error_r) ATTR_WARN_UNUSED;
/*
 * Wait up to timeout_ms (not the inactivity timeout) for input: 1 when
 * input is buffered or arrived, 0 when the time passed, -1 on error/EOF.
 */
int net_conn_wait(struct net_conn *c, unsigned timeout_ms, char **error_r)
	ATTR_WARN_UNUSED;
/* Read whatever is available right now without waiting: 0 ok (possibly
 * nothing read), -1 on error/EOF. */
int net_conn_poll_input(struct net_conn *c, char **error_r) ATTR_WARN_UNUSED;
/*
 * Buffered line reading: one line ending in LF (CRLF or LF) into line
 * (reset first, terminator removed). -1 on error, EOF or when the line
 * would exceed the buffer's cap.
 */
int net_conn_read_line(struct net_conn *c, struct buf *line, char **error_r)
	ATTR_WARN_UNUSED;
/* Exactly n bytes into p. */
int net_conn_read_bytes(struct net_conn *c, void *p, size_t n, char **error_r)
	ATTR_WARN_UNUSED;

/* ---- output ---- */

/* Queue n bytes; flushes when more than NET_OUTPUT_FLUSH bytes are queued. */
int net_conn_write(struct net_conn *c, const void *p, size_t n,
		   char **error_r) ATTR_WARN_UNUSED;
/* Write everything queued (waiting as needed, reading input meanwhile). */
int net_conn_flush(struct net_conn *c, char **error_r) ATTR_WARN_UNUSED;
/* Bytes queued but not yet written. */
size_t net_conn_pending_output(const struct net_conn *c);

/* ---- helpers (exported for unit tests) ---- */

/* true if s is an IPv4 or IPv6 address literal (no brackets). */
bool net_is_ip_literal(const char *s);
/* Normalise a "sha256:aa:BB..." pin to upper case "AA:BB:..." (32 bytes,
 * 95 characters) in out; -1 if malformed. */
int net_fingerprint_parse(const char *pin, char out[96]);

#endif
