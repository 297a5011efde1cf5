/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * conn.c - TCP connect with a timeout, poll()-driven buffered I/O, and the
 * TLS layer (OpenSSL 3): verification, SNI, fingerprint pinning.
 */
#include "common.h"
#include "net/conn.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define READ_CHUNK (64u * 1024)

struct net_conn {
	int fd;
	int io_timeout_ms;
	char *host;                 /* owned; for messages */
	SSL_CTX *ctx;
	SSL *ssl;
	enum net_failure failure;
	struct buf in;              /* read, not consumed; starts at in_off */
	size_t in_off;
	struct buf out;             /* queued, not written */
	bool eof;
	char tls_info[128];
	/* first certificate verification error seen by the callback */
	int verify_err;
	int verify_depth;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(struct net_conn *c, enum net_failure f, char **error_r,
		const char *fmt, ...) ATTR_PRINTF(4, 5);
static int fail(struct net_conn *c, enum net_failure f, char **error_r,
		const char *fmt, ...)
{
	va_list ap;
	char msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c != NULL && c->failure == NET_FAIL_NONE)
		c->failure = f;
	if (error_r != NULL)
		*error_r = xstrdup(msg);
	return -1;
}

/* The most useful OpenSSL error queue entry, and clear the queue. */
static const char *ssl_err_string(char *buf, size_t size)
{
	unsigned long e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last == 0)
		snprintf(buf, size, "unknown error");
	else
		ERR_error_string_n(last, buf, size);
	return buf;
}

bool net_is_ip_literal(const char *s)
{
	struct in_addr a4;
	struct in6_addr a6;

	return inet_pton(AF_INET, s, &a4) == 1 ||
	       inet_pton(AF_INET6, s, &a6) == 1;
}

int net_fingerprint_parse(const char *pin, char out[96])
{
	const char *p;
	size_t i, n = 0;

	if (strncasecmp(pin, "sha256:", 7) != 0)
		return -1;
	p = pin + 7;
	for (i = 0; i < 32; i++) {
		if (i > 0) {
			if (*p != ':')
				return -1;
			out[n++] = ':';
			p++;
		}
		for (int k = 0; k < 2; k++, p++) {
			char ch = *p;

			if (ch >= 'a' && ch <= 'f')
				ch = (char)(ch - 'a' + 'A');
			if (!((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'F')))
				return -1;
			out[n++] = ch;
		}
	}
	if (*p != '\0')
		return -1;
	out[n] = '\0';
	return 0;
}

/* ---- connect ---- */

static int wait_fd(int fd, short events, int timeout_ms, short *revents_r)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int r;

	do {
		r = poll(&pfd, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r > 0 && revents_r)
		*revents_r = pfd.revents;
	return r;
}

static int try_connect(const struct addrinfo *ai, int64_t deadline,
		       int *fd_r, char *err, size_t errsize)
{
	int fd, r, soerr = 0;
	socklen_t len = sizeof(soerr);
	int64_t left;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0) {
		snprintf(err, errsize, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		goto connected;
	if (errno != EINPROGRESS) {
		snprintf(err, errsize, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	left = deadline - now_ms();
	if (left < 0)
		left = 0;
	r = wait_fd(fd, POLLOUT, (int)left, NULL);
	if (r == 0) {
		snprintf(err, errsize, "connection timed out");
		close(fd);
		return -1;
	}
	if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) {
		snprintf(err, errsize, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	if (soerr != 0) {
		snprintf(err, errsize, "%s", strerror(soerr));
		close(fd);
		return -1;
	}
connected:
	r = 1;
	/* We batch writes ourselves; small commands must not wait for ACKs. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &r, sizeof(r));
	*fd_r = fd;
	return 0;
}

static void addr_string(const struct addrinfo *ai, char *out, size_t size)
{
	if (getnameinfo(ai->ai_addr, ai->ai_addrlen, out, (socklen_t)size,
			NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(out, size, "?");
}

int net_connect(const char *host, unsigned port, unsigned connect_timeout,
		unsigned io_timeout, struct net_conn **c_r, char **error_r)
{
	struct addrinfo hints = { 0 }, *res, *ai;
	char portstr[16], err[256] = "no address", addr[INET6_ADDRSTRLEN + 8];
	int r, fd = -1;
	int64_t deadline;
	struct net_conn *c;
	struct sigaction sa;

	*c_r = NULL;
	if (host == NULL || *host == '\0' || port == 0 || port > 65535)
		return fail(NULL, NET_FAIL_NET, error_r,
			    "cannot connect: bad host or port");
	/* A peer that closes while we write must give EPIPE, not kill us
	 * (OpenSSL writes with write(2), so MSG_NOSIGNAL cannot be used). */
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);

	snprintf(portstr, sizeof(portstr), "%u", port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	r = getaddrinfo(host, portstr, &hints, &res);
	if (r != 0)
		return fail(NULL, NET_FAIL_NET, error_r,
			    "cannot resolve '%s': %s", host,
			    r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
	deadline = now_ms() + (int64_t)(connect_timeout ? connect_timeout : 30) * 1000;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		char e[200];

		addr_string(ai, addr, sizeof(addr));
		if (try_connect(ai, deadline, &fd, e, sizeof(e)) == 0) {
			log_debug("connected to %s port %u (%s)", host, port, addr);
			break;
		}
		snprintf(err, sizeof(err), "%s: %s", addr, e);
		log_debug("cannot connect to %s port %u: %s", host, port, err);
		if (now_ms() >= deadline)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return fail(NULL, NET_FAIL_NET, error_r,
			    "cannot connect to '%s' port %u: %s", host, port, err);

	c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->io_timeout_ms = (int)(io_timeout ? io_timeout : 120) * 1000;
	c->host = xstrdup(host);
	buf_init(&c->in, NET_INPUT_MAX);
	buf_init(&c->out, 4 * NET_OUTPUT_FLUSH);
	*c_r = c;
	return 0;
}

void net_conn_free(struct net_conn **cp)
{
	struct net_conn *c = *cp;

	if (c == NULL)
		return;
	if (c->ssl != NULL) {
		/* Best effort close_notify; never wait for the peer's. */
		if (!c->eof && c->failure == NET_FAIL_NONE)
			(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->ctx != NULL)
		SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	buf_release(&c->in);
	buf_release(&c->out);
	free(c->host);
	free(c);
	*cp = NULL;
}

bool net_conn_is_tls(const struct net_conn *c)
{
	return c->ssl != NULL;
}

int net_conn_fd(const struct net_conn *c)
{
	return c->fd;
}

bool net_conn_at_eof(const struct net_conn *c)
{
	return c->eof;
}

const char *net_conn_tls_info(const struct net_conn *c)
{
	return c->tls_info;
}

enum net_failure net_conn_failure(const struct net_conn *c)
{
	return c->failure;
}

/* ---- raw read/write (one attempt, non-blocking) ---- */

enum io_result { IO_OK, IO_AGAIN_READ, IO_AGAIN_WRITE, IO_EOF, IO_ERR };

static enum io_result io_read(struct net_conn *c, void *p, size_t n,
			      size_t *got_r, char **error_r)
{
	if (c->ssl != NULL) {
		size_t got = 0;
		int r, e;
		char eb[256];

		ERR_clear_error();
		r = SSL_read_ex(c->ssl, p, n, &got);
		if (r == 1) {
			*got_r = got;
			return IO_OK;
		}
		e = SSL_get_error(c->ssl, r);
		switch (e) {
		case SSL_ERROR_WANT_READ:
			return IO_AGAIN_READ;
		case SSL_ERROR_WANT_WRITE:
			return IO_AGAIN_WRITE;
		case SSL_ERROR_ZERO_RETURN:
			return IO_EOF;
		case SSL_ERROR_SYSCALL:
			if (ERR_peek_error() == 0 && errno == 0)
				return IO_EOF;
			if (ERR_peek_error() == 0) {
				fail(c, NET_FAIL_NET, error_r, "read from '%s': %s",
				     c->host, strerror(errno));
				return IO_ERR;
			}
			/* fall through */
		default:
			/* OpenSSL 3 reports a peer that closes without
			 * close_notify as an SSL error ("unexpected eof"). */
			fail(c, NET_FAIL_NET, error_r, "tls read from '%s': %s",
			     c->host, ssl_err_string(eb, sizeof(eb)));
			return IO_ERR;
		}
	}
	for (;;) {
		ssize_t r = read(c->fd, p, n);

		if (r > 0) {
			*got_r = (size_t)r;
			return IO_OK;
		}
		if (r == 0)
			return IO_EOF;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return IO_AGAIN_READ;
		fail(c, NET_FAIL_NET, error_r, "read from '%s': %s", c->host,
		     strerror(errno));
		return IO_ERR;
	}
}

static enum io_result io_write(struct net_conn *c, const void *p, size_t n,
			       size_t *done_r, char **error_r)
{
	if (c->ssl != NULL) {
		size_t done = 0;
		int r, e;
		char eb[256];

		ERR_clear_error();
		r = SSL_write_ex(c->ssl, p, n, &done);
		if (r == 1) {
			*done_r = done;
			return IO_OK;
		}
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_WRITE)
			return IO_AGAIN_WRITE;
		if (e == SSL_ERROR_WANT_READ)
			return IO_AGAIN_READ;
		if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
			fail(c, NET_FAIL_NET, error_r, "write to '%s': %s",
			     c->host, errno ? strerror(errno) : "connection closed");
		else
			fail(c, NET_FAIL_NET, error_r, "tls write to '%s': %s",
			     c->host, ssl_err_string(eb, sizeof(eb)));
		return IO_ERR;
	}
	for (;;) {
		ssize_t r = send(c->fd, p, n, MSG_NOSIGNAL);

		if (r >= 0) {
			*done_r = (size_t)r;
			return IO_OK;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return IO_AGAIN_WRITE;
		fail(c, NET_FAIL_NET, error_r, "write to '%s': %s", c->host,
		     strerror(errno));
		return IO_ERR;
	}
}

static size_t in_len(const struct net_conn *c)
{
	return c->in.len - c->in_off;
}

/* Compact consumed input so reads can append. */
static void in_compact(struct net_conn *c)
{
	if (c->in_off == 0)
		return;
	buf_consume(&c->in, c->in_off);
	c->in_off = 0;
}

/*
 * One read attempt into the input buffer. IO_OK with *added_r > 0 when
 * bytes came; IO_AGAIN_* when the socket has nothing now.
 */
static enum io_result read_some(struct net_conn *c, size_t *added_r,
				char **error_r)
{
	size_t room, got = 0;
	enum io_result r;

	*added_r = 0;
	if (c->eof)
		return IO_EOF;
	in_compact(c);
	room = c->in.max - c->in.len;
	if (room == 0)
		return IO_AGAIN_READ;
	if (room > READ_CHUNK)
		room = READ_CHUNK;
	if (buf_reserve(&c->in, room) < 0)
		return IO_AGAIN_READ;
	r = io_read(c, c->in.data + c->in.len, room, &got, error_r);
	if (r == IO_OK) {
		c->in.len += got;
		c->in.data[c->in.len] = '\0';
		*added_r = got;
	} else if (r == IO_EOF) {
		c->eof = true;
	}
	return r;
}

static bool input_full(const struct net_conn *c)
{
	return c->in.len - c->in_off >= c->in.max;
}

/* ---- output ---- */

size_t net_conn_pending_output(const struct net_conn *c)
{
	return c->out.len;
}

/* Write n bytes at p, waiting as needed; reads input meanwhile so the
 * peer is never stuck writing to us while we write to it. */
static int write_all(struct net_conn *c, const char *p, size_t n,
		     char **error_r)
{
	while (n > 0) {
		size_t done = 0, added;
		enum io_result r;
		short ev, rev = 0;
		int pr;

		if (c->failure != NET_FAIL_NONE)
			return fail(c, NET_FAIL_NET, error_r,
				    "write to '%s': connection already failed",
				    c->host);
		r = io_write(c, p, n, &done, error_r);
		if (r == IO_ERR)
			return -1;
		if (r == IO_OK) {
			p += done;
			n -= done;
			continue;
		}
		ev = r == IO_AGAIN_WRITE ? POLLOUT : POLLIN;
		if (!input_full(c) && !c->eof)
			ev |= POLLIN;
		if (c->ssl != NULL && SSL_pending(c->ssl) > 0 && !input_full(c)) {
			rev = POLLIN;
		} else {
			pr = wait_fd(c->fd, ev, c->io_timeout_ms, &rev);
			if (pr == 0)
				return fail(c, NET_FAIL_NET, error_r,
					    "write to '%s' timed out", c->host);
			if (pr < 0)
				return fail(c, NET_FAIL_NET, error_r,
					    "poll: %s", strerror(errno));
		}
		if ((rev & (POLLIN | POLLHUP | POLLERR)) && !input_full(c) &&
		    !c->eof) {
			r = read_some(c, &added, error_r);
			if (r == IO_ERR)
				return -1;
		}
	}
	return 0;
}

int net_conn_flush(struct net_conn *c, char **error_r)
{
	int r = 0;

	if (c->out.len > 0)
		r = write_all(c, c->out.data, c->out.len, error_r);
	buf_reset(&c->out);
	return r;
}

int net_conn_write(struct net_conn *c, const void *p, size_t n,
		   char **error_r)
{
	if (n > NET_OUTPUT_FLUSH) {
		/* Large writes (message data) go out straight after what
		 * is queued, without copying them into the queue. */
		if (net_conn_flush(c, error_r) < 0)
			return -1;
		return write_all(c, p, n, error_r);
	}
	if (buf_add(&c->out, p, n) < 0 && (net_conn_flush(c, error_r) < 0 ||
					   buf_add(&c->out, p, n) < 0))
		return fail(c, NET_FAIL_NET, error_r, "output queue full");
	if (c->out.len > NET_OUTPUT_FLUSH)
		return net_conn_flush(c, error_r);
	return 0;
}

/* ---- input ---- */

const char *net_conn_input(const struct net_conn *c, size_t *len_r)
{
	*len_r = in_len(c);
	return c->in.data + c->in_off;
}

void net_conn_consume(struct net_conn *c, size_t n)
{
	ASSERT(n <= in_len(c));
	c->in_off += n;
	if (c->in_off == c->in.len) {
		c->in_off = 0;
		buf_reset(&c->in);
	}
}

size_t net_conn_discard_input(struct net_conn *c)
{
	size_t n = in_len(c);

	c->in_off = 0;
	buf_reset(&c->in);
	return n;
}

/* Wait for input up to timeout_ms: 1 got some, 0 timeout, -1 error. */
static int wait_input(struct net_conn *c, int timeout_ms, char **error_r)
{
	int64_t deadline = now_ms() + timeout_ms;

	if (net_conn_flush(c, error_r) < 0)
		return -1;
	for (;;) {
		size_t added = 0;
		enum io_result r;
		short ev, rev = 0;
		int64_t left;
		int pr;

		if (input_full(c))
			return fail(c, NET_FAIL_NET, error_r,
				    "too much unread input from '%s'", c->host);
		r = read_some(c, &added, error_r);
		if (r == IO_OK && added > 0)
			return 1;
		if (r == IO_ERR)
			return -1;
		if (r == IO_EOF)
			return fail(c, NET_FAIL_NET, error_r,
				    "connection closed by '%s'", c->host);
		ev = r == IO_AGAIN_WRITE ? POLLOUT : POLLIN;
		left = deadline - now_ms();
		if (left <= 0)
			return 0;
		pr = wait_fd(c->fd, ev, (int)left, &rev);
		if (pr < 0)
			return fail(c, NET_FAIL_NET, error_r, "poll: %s",
				    strerror(errno));
		if (pr == 0)
			return 0;
	}
}

int net_conn_read_more(struct net_conn *c, char **error_r)
{
	int r = wait_input(c, c->io_timeout_ms, error_r);

	if (r == 0)
		return fail(c, NET_FAIL_NET, error_r,
			    "no response from '%s' for %d seconds", c->host,
			    c->io_timeout_ms / 1000);
	return r < 0 ? -1 : 0;
}

int net_conn_wait(struct net_conn *c, unsigned timeout_ms, char **error_r)
{
	if (in_len(c) > 0)
		return 1;
	if (timeout_ms > INT32_MAX)
		timeout_ms = INT32_MAX;
	return wait_input(c, (int)timeout_ms, error_r);
}

int net_conn_poll_input(struct net_conn *c, char **error_r)
{
	for (;;) {
		size_t added = 0;
		enum io_result r;

		if (input_full(c) || c->eof)
			return 0;
		r = read_some(c, &added, error_r);
		if (r == IO_ERR)
			return -1;
		if (r != IO_OK || added == 0)
			return 0;
	}
}

int net_conn_read_line(struct net_conn *c, struct buf *line, char **error_r)
{
	buf_reset(line);
	for (;;) {
		const char *p = c->in.data + c->in_off;
		const char *nl = memchr(p, '\n', in_len(c));

		if (nl != NULL) {
			size_t n = (size_t)(nl - p);

			if (buf_add(line, p, n) < 0)
				return fail(c, NET_FAIL_NET, error_r,
					    "line from '%s' too long", c->host);
			if (line->len > 0 && line->data[line->len - 1] == '\r')
				buf_truncate(line, line->len - 1);
			net_conn_consume(c, n + 1);
			return 0;
		}
		if (in_len(c) > line->max - line->len)
			return fail(c, NET_FAIL_NET, error_r,
				    "line from '%s' too long", c->host);
		if (net_conn_read_more(c, error_r) < 0)
			return -1;
	}
}

int net_conn_read_bytes(struct net_conn *c, void *p, size_t n,
			char **error_r)
{
	char *q = p;

	while (n > 0) {
		size_t have = in_len(c);

		if (have > 0) {
			size_t k = have < n ? have : n;

			memcpy(q, c->in.data + c->in_off, k);
			net_conn_consume(c, k);
			q += k;
			n -= k;
			continue;
		}
		if (net_conn_read_more(c, error_r) < 0)
			return -1;
	}
	return 0;
}

/* ---- TLS ---- */

static int ssl_conn_index = -1;

static int verify_cb(int preverify_ok, X509_STORE_CTX *store)
{
	SSL *ssl;
	struct net_conn *c;

	if (preverify_ok)
		return 1;
	ssl = X509_STORE_CTX_get_ex_data(store,
			SSL_get_ex_data_X509_STORE_CTX_idx());
	c = ssl ? SSL_get_ex_data(ssl, ssl_conn_index) : NULL;
	if (c != NULL && c->verify_err == X509_V_OK) {
		c->verify_err = X509_STORE_CTX_get_error(store);
		c->verify_depth = X509_STORE_CTX_get_error_depth(store);
	}
	/* Let the handshake finish; the decision is made afterwards, when
	 * the fingerprint pin (if any) can be checked too. */
	return 1;
}

static int leaf_fingerprint(SSL *ssl, char out[96])
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	size_t n = 0;

	if (cert == NULL)
		return -1;
	if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32) {
		X509_free(cert);
		return -1;
	}
	X509_free(cert);
	for (unsigned i = 0; i < mdlen; i++) {
		static const char hex[] = "0123456789ABCDEF";

		if (i > 0)
			out[n++] = ':';
		out[n++] = hex[md[i] >> 4];
		out[n++] = hex[md[i] & 15];
	}
	out[n] = '\0';
	return 0;
}

static int tls_setup(struct net_conn *c, const struct net_tls_settings *set,
		     char **error_r)
{
	X509_VERIFY_PARAM *param;
	char eb[256];
	bool ip = net_is_ip_literal(set->host);

	if (ssl_conn_index < 0)
		ssl_conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	c->ctx = SSL_CTX_new(TLS_client_method());
	if (c->ctx == NULL)
		return fail(c, NET_FAIL_TLS, error_r, "cannot create tls context: %s",
			    ssl_err_string(eb, sizeof(eb)));
	if (SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION) != 1)
		return fail(c, NET_FAIL_TLS, error_r, "cannot require tls 1.2: %s",
			    ssl_err_string(eb, sizeof(eb)));
	if (set->ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(c->ctx, set->ca_file, NULL) != 1)
			return fail(c, NET_FAIL_TLS, error_r,
				    "cannot load ca_file '%s': %s", set->ca_file,
				    ssl_err_string(eb, sizeof(eb)));
	} else if (SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
		return fail(c, NET_FAIL_TLS, error_r,
			    "cannot load the system trust store: %s",
			    ssl_err_string(eb, sizeof(eb)));
	}
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, verify_cb);
	SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

	c->ssl = SSL_new(c->ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
		return fail(c, NET_FAIL_TLS, error_r, "cannot set up tls: %s",
			    ssl_err_string(eb, sizeof(eb)));
	SSL_set_ex_data(c->ssl, ssl_conn_index, c);
	param = SSL_get0_param(c->ssl);
	if (ip) {
		if (X509_VERIFY_PARAM_set1_ip_asc(param, set->host) != 1)
			return fail(c, NET_FAIL_TLS, error_r,
				    "cannot verify address '%s'", set->host);
	} else {
		X509_VERIFY_PARAM_set_hostflags(param,
				X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(c->ssl, set->host) != 1)
			return fail(c, NET_FAIL_TLS, error_r,
				    "cannot verify host name '%s'", set->host);
		/* SNI carries names only, never addresses (RFC 6066 3). */
		if (SSL_set_tlsext_host_name(c->ssl, set->host) != 1)
			return fail(c, NET_FAIL_TLS, error_r,
				    "cannot set server name '%s'", set->host);
	}
	return 0;
}

static int tls_handshake(struct net_conn *c, char **error_r)
{
	char eb[256];

	for (;;) {
		int r, e, pr;
		short ev;

		ERR_clear_error();
		errno = 0;
		r = SSL_connect(c->ssl);
		if (r == 1)
			return 0;
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			ev = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
			pr = wait_fd(c->fd, ev, c->io_timeout_ms, NULL);
			if (pr == 0)
				return fail(c, NET_FAIL_TLS, error_r,
					    "tls handshake with '%s' timed out",
					    c->host);
			if (pr < 0)
				return fail(c, NET_FAIL_TLS, error_r, "poll: %s",
					    strerror(errno));
			continue;
		}
		if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
			return fail(c, NET_FAIL_TLS, error_r,
				    "tls handshake with '%s' failed: %s", c->host,
				    errno ? strerror(errno) :
				    "connection closed by the server");
		return fail(c, NET_FAIL_TLS, error_r,
			    "tls handshake with '%s' failed: %s", c->host,
			    ssl_err_string(eb, sizeof(eb)));
	}
}

static int tls_check_peer(struct net_conn *c, const struct net_tls_settings *set,
			  char **error_r)
{
	char want[96], got[96];
	long res;
	int err;

	if (leaf_fingerprint(c->ssl, got) < 0)
		return fail(c, NET_FAIL_TLS, error_r,
			    "server '%s' sent no certificate", c->host);
	if (set->fingerprint != NULL) {
		if (net_fingerprint_parse(set->fingerprint, want) < 0)
			return fail(c, NET_FAIL_TLS, error_r,
				    "bad fingerprint '%s': expected sha256:XX:XX:... (32 bytes)",
				    set->fingerprint);
		if (strcmp(want, got) != 0)
			return fail(c, NET_FAIL_TLS, error_r,
				    "certificate of '%s' does not match the pinned fingerprint: got sha256:%s",
				    c->host, got);
		log_debug("certificate of '%s' matches the pinned fingerprint",
			  c->host);
		return 0;
	}
	res = SSL_get_verify_result(c->ssl);
	err = c->verify_err != X509_V_OK ? c->verify_err : (int)res;
	if (err == X509_V_OK)
		return 0;
	if (err == X509_V_ERR_HOSTNAME_MISMATCH ||
	    err == X509_V_ERR_IP_ADDRESS_MISMATCH)
		return fail(c, NET_FAIL_TLS, error_r,
			    "certificate verification failed: certificate does not match host name '%s' (sha256:%s)",
			    c->host, got);
	return fail(c, NET_FAIL_TLS, error_r,
		    "certificate verification failed for '%s': %s (depth %d, sha256:%s)",
		    c->host, X509_verify_cert_error_string(err),
		    c->verify_depth, got);
}

int net_conn_start_tls(struct net_conn *c, const struct net_tls_settings *set,
		       char **error_r)
{
	size_t dropped;

	if (c->ssl != NULL)
		return fail(c, NET_FAIL_TLS, error_r, "tls already active");
	if (net_conn_flush(c, error_r) < 0)
		return -1;
	dropped = net_conn_discard_input(c);
	if (dropped > 0)
		log_warn("'%s' sent %zu bytes before the tls handshake; discarded",
			 c->host, dropped);
	c->verify_err = X509_V_OK;
	if (tls_setup(c, set, error_r) < 0 || tls_handshake(c, error_r) < 0 ||
	    tls_check_peer(c, set, error_r) < 0) {
		c->failure = NET_FAIL_TLS;
		return -1;
	}
	snprintf(c->tls_info, sizeof(c->tls_info), "%s %s",
		 SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
	log_debug("tls with '%s': %s", c->host, c->tls_info);
	return 0;
}
