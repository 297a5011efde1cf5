/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fakeimapd - a scripted fake IMAP server for client tests.
 *
 *   fakeimapd [-p PORTFILE] [-c CERT.pem -k KEY.pem] [-t SECONDS] SCENARIO
 *
 * Listens on 127.0.0.1, port chosen by the kernel, and prints the port on
 * stdout (or writes it to PORTFILE, atomically). Accepts one connection
 * and plays SCENARIO, one directive per line:
 *
 *   # ...            comment (the test runner reads "# key: value" headers)
 *   S: text          send text + CRLF ("$TAG" becomes the last client tag,
 *                    "$PTAG" the one before it: answers out of order)
 *   SRAW: text       send text as is, no CRLF
 *   SENDHEX: 2a 20   send bytes given in hex (spaces ignored)
 *   SENDREPEAT: N text   send text N times, no CRLF (deep nesting, huge lines)
 *   C: TAG prefix    expect a client line; TAG "*" matches any tag; the rest
 *                    must start with prefix (case-insensitive; may be empty)
 *   C~: regex        expect a client line whose part after the tag matches
 *                    the POSIX extended regex (case-insensitive)
 *   AUTO: regex => line || line ...
 *                    from now on, a client line that does not match the
 *                    current expectation but matches regex (after the tag)
 *                    is answered with these lines ("$TAG" substituted)
 *   AUTO-CLEAR       forget the AUTO rules
 *   SLEEP ms         flush output, then wait
 *   QUIET ms         flush output, wait, and fail (exit 2) if the client
 *                    sent anything meanwhile or before: a command it must
 *                    not send before it has the answer to the last one
 *   TLS | STARTTLS   flush output, drop unread client input, then do the
 *                    server side of a TLS handshake (needs -c and -k)
 *   WAITCLOSE        answer AUTO lines until the client closes the
 *                    connection; any other client line is a mismatch
 *   CLOSE            flush, close the connection, end the scenario
 *
 * Output is buffered and flushed before every read, sleep, handshake and
 * close, so consecutive S: lines go out in one write.
 *
 * A client literal ({N} at the end of a line) is answered with "+ go ahead"
 * (not for {N+}) and read as part of the line.
 *
 * Exit status: 0 the scenario ran to its end (the client hanging up while
 * the server sends, or during WAITCLOSE, counts as the end); 1 usage,
 * scenario or setup error; 2 a client line did not match, or the client
 * hung up while a C: line was expected; 3 time limit (-t, default 30 s);
 * 4 the TLS handshake failed.
 */
#include "common.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define FK_MAX_SCENARIO (16 * 1024 * 1024)
#define FK_MAX_CLIENT_LINE (1024 * 1024)
#define FK_MAX_TAG 64
#define FK_MAX_AUTO 32
#define FK_OUT_FLUSH_AT (64 * 1024)
#define FK_MAX_REPEAT_BYTES ((size_t)4 << 30)

struct fk_auto {
	regex_t re;
	char *resp;		/* owned; "||"-separated lines */
};

struct fk_conn {
	int fd;
	SSL_CTX *ctx;		/* NULL when no -c/-k were given */
	SSL *ssl;		/* NULL before TLS */
	unsigned char in[16384];
	size_t in_len;
	unsigned char *out;	/* owned */
	size_t out_len, out_alloc;
	bool hungup;		/* client gone (EOF or write error) */
	bool closed;		/* CLOSE ran: the scenario is over */
	char tag[FK_MAX_TAG + 1];
	char ptag[FK_MAX_TAG + 1];	/* the tag before */
	struct fk_auto autos[FK_MAX_AUTO];
	size_t n_autos;
	int mismatches;
	const char *scenario;	/* file name, for messages */
	unsigned int lineno;	/* current scenario line */
};

static void fk_alarm(int sig)
{
	static const char msg[] = "fakeimapd: time limit reached\n";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* nothing left to do */
	}
	_exit(3);
}

ATTR_PRINTF(3, 4) ATTR_NORETURN
static void fk_die(const struct fk_conn *c, int status, const char *fmt, ...)
{
	va_list ap;

	if (c != NULL && c->scenario != NULL)
		fprintf(stderr, "fakeimapd: %s:%u: ", c->scenario, c->lineno);
	else
		fprintf(stderr, "fakeimapd: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static void fk_out_add(struct fk_conn *c, const void *p, size_t n)
{
	if (c->out_len + n < c->out_len)
		fk_die(c, 1, "output size overflow");
	if (c->out_len + n > c->out_alloc) {
		size_t na = c->out_alloc ? c->out_alloc : 4096;

		while (na < c->out_len + n)
			na *= 2;
		c->out = xreallocarray(c->out, na, 1);
		c->out_alloc = na;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

/* Append text with every "$TAG" replaced by the last client tag, and
 * "$PTAG" by the one before. */
static void fk_out_text(struct fk_conn *c, const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		if (n - i >= 5 && memcmp(s + i, "$PTAG", 5) == 0) {
			fk_out_add(c, c->ptag, strlen(c->ptag));
			i += 5;
		} else if (n - i >= 4 && memcmp(s + i, "$TAG", 4) == 0) {
			fk_out_add(c, c->tag, strlen(c->tag));
			i += 4;
		} else {
			fk_out_add(c, s + i, 1);
			i++;
		}
	}
}

static void fk_flush(struct fk_conn *c)
{
	size_t off = 0;

	while (off < c->out_len && !c->hungup) {
		ssize_t w;

		if (c->ssl != NULL) {
			int chunk = c->out_len - off > 65536 ? 65536 :
				(int)(c->out_len - off);
			int r = SSL_write(c->ssl, c->out + off, chunk);

			w = r > 0 ? r : -1;
		} else {
			w = write(c->fd, c->out + off, c->out_len - off);
			if (w < 0 && errno == EINTR)
				continue;
		}
		if (w <= 0) {
			fprintf(stderr, "fakeimapd: client went away while "
				"the server was sending\n");
			c->hungup = true;
			break;
		}
		off += (size_t)w;
	}
	c->out_len = 0;
}

/* Read more client bytes into c->in; false on EOF or error. */
static bool fk_fill(struct fk_conn *c)
{
	size_t room = sizeof(c->in) - c->in_len;
	ssize_t r;

	if (c->hungup || room == 0)
		return false;
	for (;;) {
		if (c->ssl != NULL) {
			int n = SSL_read(c->ssl, c->in + c->in_len, (int)room);

			r = n > 0 ? n : (n == 0 ? 0 : -1);
		} else {
			r = read(c->fd, c->in + c->in_len, room);
			if (r < 0 && errno == EINTR)
				continue;
		}
		break;
	}
	if (r <= 0) {
		c->hungup = true;
		return false;
	}
	c->in_len += (size_t)r;
	return true;
}

static void fk_in_consume(struct fk_conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
}

/* If line (len n) ends with "{N}" or "{N+}", return true and set *size_r. */
static bool fk_literal_at_end(const char *line, size_t n, size_t *size_r,
			      bool *plus_r)
{
	size_t i, v = 0;

	if (n < 3 || line[n - 1] != '}')
		return false;
	i = n - 1;
	*plus_r = false;
	if (line[i - 1] == '+') {
		*plus_r = true;
		i--;
	}
	if (i == 0 || !isdigit((unsigned char)line[i - 1]))
		return false;
	while (i > 0 && isdigit((unsigned char)line[i - 1]))
		i--;
	if (i == 0 || line[i - 1] != '{')
		return false;
	for (; line[i] != '}' && line[i] != '+'; i++) {
		v = v * 10 + (size_t)(line[i] - '0');
		if (v > FK_MAX_CLIENT_LINE)
			return false;
	}
	*size_r = v;
	return true;
}

/*
 * Read one client line (CRLF or LF stripped, literals folded in) into a
 * fresh NUL-terminated string. Returns NULL when the client hung up.
 */
static char *fk_read_line(struct fk_conn *c)
{
	char *line = NULL;
	size_t len = 0, alloc = 0;

	fk_flush(c);
	for (;;) {
		unsigned char *nl = memchr(c->in, '\n', c->in_len);
		size_t take, lit;
		bool plus;

		if (nl == NULL) {
			if (c->in_len == sizeof(c->in)) {
				/* a long line: keep it, read on */
				take = c->in_len;
			} else {
				if (!fk_fill(c))
					goto hup;
				continue;
			}
		} else {
			take = (size_t)(nl - c->in) + 1;
		}
		if (len + take + 1 > FK_MAX_CLIENT_LINE)
			fk_die(c, 2, "client line longer than %d bytes",
			       FK_MAX_CLIENT_LINE);
		ALLOC_GROW(line, len + take + 1, alloc);
		memcpy(line + len, c->in, take);
		len += take;
		fk_in_consume(c, take);
		if (nl == NULL)
			continue;
		/* strip the line end */
		len--;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		line[len] = '\0';
		if (!fk_literal_at_end(line, len, &lit, &plus))
			return line;
		/* a literal: fold its bytes and the rest of the line in */
		if (!plus) {
			fk_out_add(c, "+ go ahead\r\n", 12);
			fk_flush(c);
		}
		if (len + lit + 3 > FK_MAX_CLIENT_LINE)
			fk_die(c, 2, "client literal too long");
		ALLOC_GROW(line, len + lit + 3, alloc);
		line[len++] = '\r';
		line[len++] = '\n';
		while (lit > 0) {
			size_t n;

			if (c->in_len == 0 && !fk_fill(c))
				goto hup;
			n = c->in_len < lit ? c->in_len : lit;
			memcpy(line + len, c->in, n);
			len += n;
			lit -= n;
			fk_in_consume(c, n);
		}
	}
hup:
	free(line);
	return NULL;
}

/* Split off the tag: remember it in c->tag, return the rest. */
static const char *fk_take_tag(struct fk_conn *c, const char *line)
{
	const char *sp = strchr(line, ' ');
	size_t n = sp != NULL ? (size_t)(sp - line) : strlen(line);

	if (n > FK_MAX_TAG)
		n = FK_MAX_TAG;
	memcpy(c->ptag, c->tag, sizeof(c->ptag));
	memcpy(c->tag, line, n);
	c->tag[n] = '\0';
	return sp != NULL ? sp + 1 : "";
}

static void fk_send_lines(struct fk_conn *c, const char *resp)
{
	const char *p = resp;

	for (;;) {
		const char *sep = strstr(p, "||");
		size_t n = sep != NULL ? (size_t)(sep - p) : strlen(p);

		while (n > 0 && p[0] == ' ') {
			p++;
			n--;
		}
		while (n > 0 && p[n - 1] == ' ')
			n--;
		fk_out_text(c, p, n);
		fk_out_add(c, "\r\n", 2);
		if (sep == NULL)
			break;
		p = sep + 2;
	}
	fk_flush(c);
}

/* Answer line (rest = the part after the tag) by an AUTO rule, if any. */
static bool fk_try_auto(struct fk_conn *c, const char *rest)
{
	size_t i;

	for (i = 0; i < c->n_autos; i++) {
		if (regexec(&c->autos[i].re, rest, 0, NULL, 0) == 0) {
			fk_send_lines(c, c->autos[i].resp);
			return true;
		}
	}
	return false;
}

static void fk_mismatch(struct fk_conn *c, const char *line, const char *want)
{
	static const char bad[] = "$TAG BAD unexpected command (fakeimapd)\r\n";

	fprintf(stderr, "fakeimapd: %s:%u: unexpected client line '%.200s'"
		" (want %s)\n", c->scenario, c->lineno, line, want);
	c->mismatches++;
	fk_out_text(c, bad, sizeof(bad) - 1);
	fk_flush(c);
}

static bool fk_match_prefix(const struct fk_conn *c, const char *pat,
			    const char *rest)
{
	const char *sp = strchr(pat, ' ');
	size_t tn = sp != NULL ? (size_t)(sp - pat) : strlen(pat);
	const char *prest = sp != NULL ? sp + 1 : "";

	if (!(tn == 1 && pat[0] == '*') &&
	    !(strlen(c->tag) == tn && strncasecmp(c->tag, pat, tn) == 0))
		return false;
	return strncasecmp(rest, prest, strlen(prest)) == 0;
}

static void fk_compile(struct fk_conn *c, regex_t *re, const char *pat)
{
	int r = regcomp(re, pat, REG_EXTENDED | REG_ICASE | REG_NOSUB);

	if (r != 0) {
		char err[256];

		regerror(r, re, err, sizeof(err));
		fk_die(c, 1, "bad regex '%s': %s", pat, err);
	}
}

/* C: / C~: wait for a matching line, answering AUTO lines meanwhile. */
static void fk_expect(struct fk_conn *c, const char *pat, bool is_regex,
		      const char *directive)
{
	regex_t re;

	if (is_regex)
		fk_compile(c, &re, pat);
	for (;;) {
		char *line = fk_read_line(c);
		const char *rest;
		bool match;

		if (line == NULL)
			fk_die(c, 2, "client closed the connection; expected "
			       "'%s'", directive);
		rest = fk_take_tag(c, line);
		if (is_regex)
			match = regexec(&re, rest, 0, NULL, 0) == 0;
		else
			match = fk_match_prefix(c, pat, rest);
		if (match) {
			free(line);
			break;
		}
		if (!fk_try_auto(c, rest))
			fk_mismatch(c, line, directive);
		free(line);
	}
	if (is_regex)
		regfree(&re);
}

static void fk_waitclose(struct fk_conn *c)
{
	for (;;) {
		char *line = fk_read_line(c);
		const char *rest;

		if (line == NULL)
			return;
		rest = fk_take_tag(c, line);
		if (!fk_try_auto(c, rest))
			fk_mismatch(c, line, "the client to close");
		free(line);
	}
}

static void fk_tls(struct fk_conn *c)
{
	int r;

	if (c->ctx == NULL)
		fk_die(c, 1, "TLS needs -c CERT and -k KEY");
	if (c->ssl != NULL)
		fk_die(c, 1, "TLS is already on");
	fk_flush(c);
	c->in_len = 0;	/* plaintext the client sent early is dropped */
	if (c->hungup)
		fk_die(c, 4, "client went away before the TLS handshake");
	c->ssl = SSL_new(c->ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
		fk_die(c, 1, "cannot set up TLS");
	r = SSL_accept(c->ssl);
	if (r != 1) {
		unsigned long e = ERR_get_error();
		char buf[256];

		ERR_error_string_n(e, buf, sizeof(buf));
		fk_die(c, 4, "TLS handshake failed: %s",
		       e != 0 ? buf : "connection closed");
	}
}

static void fk_close(struct fk_conn *c)
{
	struct pollfd pfd;

	fk_flush(c);
	if (c->ssl != NULL) {
		/* no close_notify: an abrupt end is what the tests want */
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	/* Tell the client we are done, then drain what it still sends so
	 * that close() does not turn into a reset that eats our data. */
	shutdown(c->fd, SHUT_WR);
	pfd.fd = c->fd;
	pfd.events = POLLIN;
	while (poll(&pfd, 1, 2000) > 0) {
		char buf[4096];
		ssize_t r = read(c->fd, buf, sizeof(buf));

		if (r <= 0)
			break;
	}
	close(c->fd);
	c->fd = -1;
}

static int fk_hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

static void fk_sendhex(struct fk_conn *c, const char *p)
{
	while (*p != '\0') {
		int hi, lo;
		unsigned char b;

		if (isspace((unsigned char)*p)) {
			p++;
			continue;
		}
		hi = fk_hexval((unsigned char)p[0]);
		lo = p[1] != '\0' ? fk_hexval((unsigned char)p[1]) : -1;
		if (hi < 0 || lo < 0)
			fk_die(c, 1, "bad hex at '%s'", p);
		b = (unsigned char)(hi * 16 + lo);
		fk_out_add(c, &b, 1);
		p += 2;
	}
}

static void fk_sendrepeat(struct fk_conn *c, const char *arg)
{
	char *end;
	unsigned long long n;
	size_t len;

	errno = 0;
	n = strtoull(arg, &end, 10);
	if (errno != 0 || end == arg || *end != ' ')
		fk_die(c, 1, "SENDREPEAT: want 'COUNT text'");
	end++;
	len = strlen(end);
	if (len == 0 || n > FK_MAX_REPEAT_BYTES / len)
		fk_die(c, 1, "SENDREPEAT: too much");
	while (n-- > 0 && !c->hungup) {
		fk_out_text(c, end, len);
		if (c->out_len >= FK_OUT_FLUSH_AT)
			fk_flush(c);
	}
}

static void fk_add_auto(struct fk_conn *c, const char *arg)
{
	const char *arrow = strstr(arg, "=>");
	struct fk_auto *a;
	char *pat;
	size_t n;

	if (arrow == NULL)
		fk_die(c, 1, "AUTO: want 'regex => line || line'");
	if (c->n_autos == FK_MAX_AUTO)
		fk_die(c, 1, "AUTO: more than %d rules", FK_MAX_AUTO);
	n = (size_t)(arrow - arg);
	while (n > 0 && arg[n - 1] == ' ')
		n--;
	pat = xstrndup(arg, n);
	a = &c->autos[c->n_autos++];
	fk_compile(c, &a->re, pat);
	free(pat);
	a->resp = xstrdup(arrow + 2);
}

static void fk_clear_autos(struct fk_conn *c)
{
	while (c->n_autos > 0) {
		struct fk_auto *a = &c->autos[--c->n_autos];

		regfree(&a->re);
		free(a->resp);
	}
}

/* "KEY: value" / "KEY value" / "KEY": return value or NULL. */
static const char *fk_directive(const char *line, const char *key)
{
	size_t n = strlen(key);

	if (strncmp(line, key, n) != 0)
		return NULL;
	if (line[n] == '\0')
		return line + n;
	if (line[n] == ':' && line[n + 1] == ' ')
		return line + n + 2;
	if (line[n] == ':' && line[n + 1] == '\0')
		return line + n + 1;
	if (line[n] == ' ')
		return line + n + 1;
	return NULL;
}

static void fk_step(struct fk_conn *c, const char *line)
{
	const char *a;

	if (line[0] == '\0' || line[0] == '#')
		return;
	if ((a = fk_directive(line, "S")) != NULL) {
		fk_out_text(c, a, strlen(a));
		fk_out_add(c, "\r\n", 2);
	} else if ((a = fk_directive(line, "SRAW")) != NULL) {
		fk_out_text(c, a, strlen(a));
	} else if ((a = fk_directive(line, "SENDHEX")) != NULL) {
		fk_sendhex(c, a);
	} else if ((a = fk_directive(line, "SENDREPEAT")) != NULL) {
		fk_sendrepeat(c, a);
	} else if ((a = fk_directive(line, "C")) != NULL) {
		fk_expect(c, a, false, line);
	} else if ((a = fk_directive(line, "C~")) != NULL) {
		fk_expect(c, a, true, line);
	} else if ((a = fk_directive(line, "AUTO")) != NULL) {
		fk_add_auto(c, a);
	} else if (strcmp(line, "AUTO-CLEAR") == 0) {
		fk_clear_autos(c);
	} else if ((a = fk_directive(line, "SLEEP")) != NULL) {
		long ms = strtol(a, NULL, 10);
		struct timespec ts;

		if (ms < 0 || ms > 600000)
			fk_die(c, 1, "SLEEP: bad time");
		fk_flush(c);
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (ms % 1000) * 1000000L;
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	} else if ((a = fk_directive(line, "QUIET")) != NULL) {
		long ms = strtol(a, NULL, 10);
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

		if (ms < 0 || ms > 600000)
			fk_die(c, 1, "QUIET: bad time");
		fk_flush(c);
		if (c->in_len > 0 || poll(&pfd, 1, (int)ms) > 0)
			fk_die(c, 2, "line %u: the client sent more before it "
			       "was answered", c->lineno);
	} else if (strcmp(line, "TLS") == 0 || strcmp(line, "STARTTLS") == 0) {
		fk_tls(c);
	} else if (strcmp(line, "WAITCLOSE") == 0) {
		fk_waitclose(c);
	} else if (strcmp(line, "CLOSE") == 0) {
		fk_close(c);
		c->closed = true;
	} else {
		fk_die(c, 1, "unknown directive '%.40s'", line);
	}
}

static char *fk_read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	size_t len = 0, alloc = 0;

	if (f == NULL) {
		fprintf(stderr, "fakeimapd: cannot open '%s': %s\n", path,
			strerror(errno));
		exit(1);
	}
	for (;;) {
		size_t n;

		ALLOC_GROW(data, len + 4096 + 1, alloc);
		n = fread(data + len, 1, 4096, f);
		len += n;
		if (len > FK_MAX_SCENARIO) {
			fprintf(stderr, "fakeimapd: '%s' is too big\n", path);
			exit(1);
		}
		if (n < 4096)
			break;
	}
	if (ferror(f)) {
		fprintf(stderr, "fakeimapd: cannot read '%s'\n", path);
		exit(1);
	}
	fclose(f);
	data[len] = '\0';
	*len_r = len;
	return data;
}

static void fk_write_port(const char *portfile, unsigned int port)
{
	char *tmp;
	FILE *f;

	if (portfile == NULL) {
		printf("%u\n", port);
		fflush(stdout);
		return;
	}
	tmp = xasprintf("%s.tmp", portfile);
	f = fopen(tmp, "w");
	if (f == NULL || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 ||
	    rename(tmp, portfile) != 0) {
		fprintf(stderr, "fakeimapd: cannot write '%s': %s\n",
			portfile, strerror(errno));
		exit(1);
	}
	free(tmp);
}

static int fk_listen(unsigned int *port_r)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0) {
		perror("fakeimapd: socket");
		exit(1);
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = 0;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(fd, 4) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) < 0) {
		perror("fakeimapd: bind/listen");
		exit(1);
	}
	*port_r = ntohs(sin.sin_port);
	return fd;
}

static SSL_CTX *fk_tls_ctx(const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "fakeimapd: cannot load '%s' / '%s'\n",
			cert, key);
		ERR_print_errors_fp(stderr);
		exit(1);
	}
	return ctx;
}

static void ATTR_NORETURN fk_usage(void)
{
	fprintf(stderr, "usage: fakeimapd [-p PORTFILE] [-c CERT -k KEY] "
		"[-t SECONDS] SCENARIO\n");
	exit(1);
}

int main(int argc, char **argv)
{
	const char *portfile = NULL, *cert = NULL, *key = NULL;
	struct fk_conn conn = { .fd = -1 };
	struct sigaction sa;
	unsigned int port;
	long limit = 30;
	char *script, *p;
	size_t script_len;
	int opt, lfd;

	while ((opt = getopt(argc, argv, "p:c:k:t:")) != -1) {
		switch (opt) {
		case 'p': portfile = optarg; break;
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 't':
			limit = strtol(optarg, NULL, 10);
			if (limit <= 0 || limit > 86400)
				fk_usage();
			break;
		default: fk_usage();
		}
	}
	if (optind + 1 != argc || (cert == NULL) != (key == NULL))
		fk_usage();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = fk_alarm;
	sigaction(SIGALRM, &sa, NULL);

	script = fk_read_file(argv[optind], &script_len);
	conn.scenario = argv[optind];
	if (cert != NULL)
		conn.ctx = fk_tls_ctx(cert, key);

	lfd = fk_listen(&port);
	fk_write_port(portfile, port);
	alarm((unsigned int)limit);
	do {
		conn.fd = accept(lfd, NULL, NULL);
	} while (conn.fd < 0 && errno == EINTR);
	if (conn.fd < 0) {
		perror("fakeimapd: accept");
		return 1;
	}
	close(lfd);	/* one client only: later connects are refused */

	/* Run the scenario line by line (memchr: it may hold NUL bytes). */
	for (p = script; p < script + script_len && !conn.closed;) {
		char *nl = memchr(p, '\n', (size_t)(script + script_len - p));
		char *end = nl != NULL ? nl : script + script_len;

		conn.lineno++;
		if (end > p && end[-1] == '\r')
			end[-1] = '\0';
		*end = '\0';
		fk_step(&conn, p);
		p = end + 1;
	}
	if (!conn.closed)
		fk_close(&conn);
	fk_clear_autos(&conn);
	free(conn.out);
	free(script);
	if (conn.ctx != NULL)
		SSL_CTX_free(conn.ctx);
	if (conn.mismatches > 0) {
		fprintf(stderr, "fakeimapd: %d unexpected client line(s)\n",
			conn.mismatches);
		return 2;
	}
	return 0;
}
