// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * delayproxy - a user-space WAN link between one IMAP client and a server,
 * for contrib/bench/run. Not part of twinbox.
 *
 *   delayproxy --listen PORT --connect IPV4:PORT [--rtt MS] [--down MBIT]
 *              [--up MBIT] [--stats FILE] [--ready FILE]
 *
 * Listens on 127.0.0.1:PORT and forwards every connection to IPV4:PORT,
 * byte for byte (TLS passes through untouched). Until SIGTERM or SIGINT,
 * then it writes FILE (--stats) and exits. The link it emulates:
 *
 *   - each direction is ONE link of the given rate shared by all
 *     connections (--down: server to client, --up: client to server; 0 or
 *     absent: no limit): bytes are read in chunks that take at most 1 ms
 *     on the link, and the chunks of all connections leave one after the
 *     other, first read, first sent;
 *   - a chunk reaches the other side RTT/2 after it has left;
 *   - a new connection costs one RTT: the proxy connects to the server
 *     RTT after the client connected, and what the client sends counts
 *     as sent no earlier than that;
 *   - the proxy reads from a side only while the link has less than 10 ms
 *     of backlog, and while less than 8 MB of that connection is queued:
 *     a sender is slowed down to the link's rate, as TCP would slow it.
 *
 * Round trips (the --stats figures):
 *   A wait is counted on a connection when server bytes reach the client
 *   and (1) the client has sent bytes since its last wait, (2) all of
 *   them have reached the server, and (3) these server bytes are the
 *   first the server sent after it got the client's last bytes (the
 *   server said nothing in between: its reply, not the tail of an earlier
 *   answer). The wait lasts from the client's last send to the arrival.
 *   Opening a connection is a wait too (its handshake, one RTT), and the
 *   server's greeting then ends a wait of its own.
 *   "waits" is the sum over all connections; "round_trips" is the largest
 *   number of waits that happened one after another, none overlapping in
 *   time, over all connections (waits on parallel connections at the same
 *   time count once): the run lasted at least that many round trips.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 64
#define CHUNK_MAX 65536
#define CHUNK_MIN 1460
#define CONN_QUEUE_MAX (8 * 1024 * 1024)
#define LINK_SLACK_NS 10000000LL

struct chunk {
	struct chunk *next;
	int64_t due_ns;		/* when it reaches the other side */
	int fresh;		/* down: first server bytes after the client's */
	size_t len, off;
	unsigned char data[];
};

struct dir {
	struct chunk *head, *tail;
	size_t queued;
	int eof_read;		/* the source side closed */
	int64_t eof_due;	/* when that close reaches the other side */
	int eof_sent;		/* shutdown(SHUT_WR) done on the destination */
};

struct conn {
	int cfd, sfd;
	int64_t accepted_ns, open_ns;	/* open_ns: accepted + RTT */
	int connected;
	struct dir up, down;
	/* wait accounting */
	int pending;
	int64_t last_send_ns, last_up_delivered_ns, last_down_read_ns;
};

struct link {
	int64_t busy_until;
	double ns_per_byte;	/* 0: no limit */
	size_t chunk;
};

struct interval {
	int64_t start, end;
};

static struct conn *conns[MAX_CONNS];
static struct link up_link, down_link;
static int64_t rtt_ns, half_ns;
static struct sockaddr_in server_addr;
static uint64_t bytes_up, bytes_down, n_conns, n_waits;
static struct interval *waits;
static size_t waits_len, waits_cap;
static volatile sig_atomic_t stop;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "delayproxy: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void wait_add(int64_t start, int64_t end)
{
	if (waits_len == waits_cap) {
		size_t cap = waits_cap ? waits_cap * 2 : 1024;
		struct interval *p = realloc(waits, cap * sizeof(*p));

		if (!p)
			die("realloc");
		waits = p;
		waits_cap = cap;
	}
	waits[waits_len].start = start;
	waits[waits_len].end = end;
	waits_len++;
	n_waits++;
}

static int interval_cmp(const void *a, const void *b)
{
	const struct interval *x = a, *y = b;

	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return (x->start > y->start) - (x->start < y->start);
}

/* The largest set of waits no two of which overlap (earliest end first). */
static uint64_t round_trips(void)
{
	uint64_t n = 0;
	int64_t last = INT64_MIN;
	size_t i;

	qsort(waits, waits_len, sizeof(*waits), interval_cmp);
	for (i = 0; i < waits_len; i++) {
		if (waits[i].start >= last) {
			n++;
			last = waits[i].end;
		}
	}
	return n;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		die("fcntl");
}

static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void dir_free(struct dir *d)
{
	struct chunk *c = d->head, *n;

	for (; c; c = n) {
		n = c->next;
		free(c);
	}
	d->head = d->tail = NULL;
	d->queued = 0;
}

static void conn_close(int i)
{
	struct conn *c = conns[i];

	if (c->cfd >= 0)
		close(c->cfd);
	if (c->sfd >= 0)
		close(c->sfd);
	dir_free(&c->up);
	dir_free(&c->down);
	free(c);
	conns[i] = NULL;
}

/* Stamps N bytes read now onto LINK: when they reach the other side. */
static int64_t link_stamp(struct link *l, int64_t now, int64_t earliest,
			  size_t n)
{
	int64_t start = now;

	if (l->ns_per_byte > 0) {
		if (l->busy_until > start)
			start = l->busy_until;
		start += (int64_t)(l->ns_per_byte * (double)n);
		l->busy_until = start;
	}
	/* A connection still opening holds its own bytes back, not the
	 * link: the others' bytes go on meanwhile (its handshake's few
	 * bytes are counted on the link when they come). */
	if (start < earliest)
		start = earliest;
	return start + half_ns;
}

static int link_can_take(const struct link *l, int64_t now)
{
	return l->ns_per_byte <= 0 || l->busy_until - now < LINK_SLACK_NS;
}

static int dir_can_read(const struct dir *d, const struct link *l,
			int64_t now)
{
	return !d->eof_read && d->queued < CONN_QUEUE_MAX &&
	       link_can_take(l, now);
}

/* Reads what FD has into D; returns -1 on a fatal error. */
static int dir_read(struct conn *c, struct dir *d, int fd, struct link *l,
		    int is_up, int64_t now)
{
	unsigned char buf[CHUNK_MAX];

	while (dir_can_read(d, l, now)) {
		ssize_t r = read(fd, buf, l->chunk);
		struct chunk *ch;
		int64_t earliest = is_up ? c->open_ns : 0;

		if (r < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			d->eof_read = 1;
			d->eof_due = link_stamp(l, now, earliest, 0);
			return 0;
		}
		ch = malloc(sizeof(*ch) + (size_t)r);
		if (!ch)
			die("malloc");
		memcpy(ch->data, buf, (size_t)r);
		ch->len = (size_t)r;
		ch->off = 0;
		ch->next = NULL;
		ch->due_ns = link_stamp(l, now, earliest, (size_t)r);
		ch->fresh = 0;
		if (is_up) {
			bytes_up += (uint64_t)r;
			c->pending = 1;
			c->last_send_ns = now > c->open_ns ? now : c->open_ns;
		} else {
			bytes_down += (uint64_t)r;
			ch->fresh = c->pending && !c->up.head &&
				    c->last_down_read_ns <
					    c->last_up_delivered_ns;
			c->last_down_read_ns = now;
		}
		if (d->tail)
			d->tail->next = ch;
		else
			d->head = ch;
		d->tail = ch;
		d->queued += (size_t)r;
	}
	return 0;
}

/* Writes D's due chunks to FD; returns -1 on a fatal error. */
static int dir_write(struct conn *c, struct dir *d, int fd, int is_up,
		     int64_t now)
{
	while (d->head && d->head->due_ns <= now) {
		struct chunk *ch = d->head;
		ssize_t w = write(fd, ch->data + ch->off, ch->len - ch->off);

		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (!is_up && ch->off == 0 && ch->fresh && c->pending &&
		    !c->up.head && !c->up.eof_read) {
			wait_add(c->last_send_ns, now);
			c->pending = 0;
		}
		ch->off += (size_t)w;
		if (ch->off < ch->len)
			return 0;
		d->head = ch->next;
		if (!d->head)
			d->tail = NULL;
		d->queued -= ch->len;
		free(ch);
		if (is_up)
			c->last_up_delivered_ns = now;
	}
	if (!d->head && d->eof_read && !d->eof_sent && d->eof_due <= now) {
		shutdown(fd, SHUT_WR);
		d->eof_sent = 1;
	}
	return 0;
}

static int64_t dir_next_due(const struct dir *d)
{
	if (d->head)
		return d->head->due_ns;
	if (d->eof_read && !d->eof_sent)
		return d->eof_due;
	return INT64_MAX;
}

static void conn_accept(int lfd, int64_t now)
{
	int fd = accept(lfd, NULL, NULL);
	struct conn *c;
	int i;

	if (fd < 0)
		return;
	for (i = 0; i < MAX_CONNS && conns[i]; i++)
		;
	if (i == MAX_CONNS) {
		close(fd);
		return;
	}
	set_nonblock(fd);
	set_nodelay(fd);
	c = calloc(1, sizeof(*c));
	if (!c)
		die("calloc");
	c->cfd = fd;
	c->sfd = -1;
	c->accepted_ns = now;
	c->open_ns = now + rtt_ns;
	/* The handshake is a wait; then the client waits for the greeting
	 * (or its TLS ServerHello) from the moment the server sees it. */
	wait_add(now, c->open_ns);
	c->pending = 1;
	c->last_send_ns = c->open_ns;
	c->last_up_delivered_ns = c->open_ns;
	c->last_down_read_ns = INT64_MIN;
	conns[i] = c;
	n_conns++;
}

static int conn_connect(struct conn *c)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&server_addr,
		    sizeof(server_addr)) < 0) {
		close(fd);
		return -1;
	}
	set_nonblock(fd);
	set_nodelay(fd);
	c->sfd = fd;
	c->connected = 1;
	return 0;
}

static int conn_done(const struct conn *c)
{
	return c->up.eof_sent && c->down.eof_sent;
}

static void write_stats(const char *path)
{
	FILE *f;
	uint64_t rt = round_trips();

	if (!path)
		return;
	f = fopen(path, "w");
	if (!f)
		die(path);
	fprintf(f, "connections %llu\nbytes_up %llu\nbytes_down %llu\n"
		   "waits %llu\nround_trips %llu\n",
		(unsigned long long)n_conns, (unsigned long long)bytes_up,
		(unsigned long long)bytes_down, (unsigned long long)n_waits,
		(unsigned long long)rt);
	if (fclose(f) != 0)
		die(path);
}

static void usage(void)
{
	fprintf(stderr, "usage: delayproxy --listen PORT --connect IPV4:PORT "
			"[--rtt MS] [--down MBIT] [--up MBIT] [--stats FILE] "
			"[--ready FILE]\n");
	exit(2);
}

static void link_init(struct link *l, double mbit)
{
	l->busy_until = 0;
	l->ns_per_byte = mbit > 0 ? 8000.0 / mbit : 0;
	if (mbit > 0) {
		/* at most 1 ms on the link */
		double per_ms = mbit * 1e6 / 8 / 1000;

		l->chunk = per_ms < CHUNK_MIN ? CHUNK_MIN :
			   per_ms > CHUNK_MAX ? CHUNK_MAX : (size_t)per_ms;
	} else {
		l->chunk = CHUNK_MAX;
	}
}

int main(int argc, char **argv)
{
	const char *stats = NULL, *ready = NULL, *connect_to = NULL;
	long listen_port = -1;
	double rtt_ms = 0, down = 0, up = 0;
	struct sockaddr_in la;
	struct sigaction sa;
	int lfd, one = 1, i;

	for (i = 1; i < argc; i += 2) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		if (!strcmp(o, "--listen"))
			listen_port = strtol(v, NULL, 10);
		else if (!strcmp(o, "--connect"))
			connect_to = v;
		else if (!strcmp(o, "--rtt"))
			rtt_ms = strtod(v, NULL);
		else if (!strcmp(o, "--down"))
			down = strtod(v, NULL);
		else if (!strcmp(o, "--up"))
			up = strtod(v, NULL);
		else if (!strcmp(o, "--stats"))
			stats = v;
		else if (!strcmp(o, "--ready"))
			ready = v;
		else
			usage();
	}
	if (listen_port < 0 || listen_port > 65535 || !connect_to ||
	    rtt_ms < 0 || down < 0 || up < 0)
		usage();
	{
		char host[64];
		const char *colon = strrchr(connect_to, ':');
		size_t n = colon ? (size_t)(colon - connect_to) : 0;

		if (!colon || n >= sizeof(host))
			usage();
		memcpy(host, connect_to, n);
		host[n] = '\0';
		memset(&server_addr, 0, sizeof(server_addr));
		server_addr.sin_family = AF_INET;
		server_addr.sin_port = htons((uint16_t)atoi(colon + 1));
		if (inet_pton(AF_INET, host, &server_addr.sin_addr) != 1)
			usage();
	}
	rtt_ns = (int64_t)(rtt_ms * 1e6);
	half_ns = rtt_ns / 2;
	link_init(&up_link, up);
	link_init(&down_link, down);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&la, 0, sizeof(la));
	la.sin_family = AF_INET;
	la.sin_port = htons((uint16_t)listen_port);
	la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&la, sizeof(la)) < 0)
		die("bind");
	if (listen(lfd, 64) < 0)
		die("listen");
	set_nonblock(lfd);
	if (ready) {
		FILE *f = fopen(ready, "w");

		if (!f || fclose(f) != 0)
			die(ready);
	}

	while (!stop) {
		struct pollfd pfd[1 + 2 * MAX_CONNS];
		int idx[1 + 2 * MAX_CONNS];
		int64_t now = now_ns(), next = INT64_MAX, t;
		struct timespec ts;
		int n = 0, k;

		/* connect what is due, deliver what is due */
		for (i = 0; i < MAX_CONNS; i++) {
			struct conn *c = conns[i];

			if (!c)
				continue;
			if (!c->connected && c->open_ns <= now &&
			    conn_connect(c) < 0) {
				conn_close(i);
				continue;
			}
			if ((c->connected &&
			     dir_write(c, &c->up, c->sfd, 1, now) < 0) ||
			    dir_write(c, &c->down, c->cfd, 0, now) < 0 ||
			    conn_done(c)) {
				conn_close(i);
				continue;
			}
		}
		pfd[n].fd = lfd;
		pfd[n].events = POLLIN;
		idx[n++] = -1;
		for (i = 0; i < MAX_CONNS; i++) {
			struct conn *c = conns[i];
			short ev;

			if (!c)
				continue;
			if (!c->connected && c->open_ns < next)
				next = c->open_ns;
			/* what is due now waits for POLLOUT, not a timer */
			t = dir_next_due(&c->up);
			if (t > now && t < next)
				next = t;
			t = dir_next_due(&c->down);
			if (t > now && t < next)
				next = t;
			/* client side */
			ev = 0;
			if (dir_can_read(&c->up, &up_link, now))
				ev |= POLLIN;
			if (c->down.head && c->down.head->due_ns <= now)
				ev |= POLLOUT;
			if (ev) {	/* else no POLLHUP spin */
				pfd[n].fd = c->cfd;
				pfd[n].events = ev;
				idx[n++] = i;
			}
			/* server side */
			ev = 0;
			if (c->connected &&
			    dir_can_read(&c->down, &down_link, now))
				ev |= POLLIN;
			if (c->connected && c->up.head &&
			    c->up.head->due_ns <= now)
				ev |= POLLOUT;
			if (ev) {
				pfd[n].fd = c->sfd;
				pfd[n].events = ev;
				idx[n++] = i;
			}
			if (!c->up.eof_read && !link_can_take(&up_link, now)) {
				t = up_link.busy_until - LINK_SLACK_NS + 1;
				if (t < next)
					next = t;
			}
			if (c->connected && !c->down.eof_read &&
			    !link_can_take(&down_link, now)) {
				t = down_link.busy_until - LINK_SLACK_NS + 1;
				if (t < next)
					next = t;
			}
		}
		if (next == INT64_MAX) {
			k = ppoll(pfd, (nfds_t)n, NULL, NULL);
		} else {
			t = next - now;
			if (t < 0)
				t = 0;
			ts.tv_sec = t / 1000000000LL;
			ts.tv_nsec = t % 1000000000LL;
			k = ppoll(pfd, (nfds_t)n, &ts, NULL);
		}
		if (k < 0) {
			if (errno == EINTR)
				continue;
			die("ppoll");
		}
		now = now_ns();
		for (k = 0; k < n; k++) {
			struct conn *c;
			int fail = 0;

			if (!pfd[k].revents)
				continue;
			if (idx[k] < 0) {
				conn_accept(lfd, now);
				continue;
			}
			c = conns[idx[k]];
			if (!c)
				continue;
			if (pfd[k].revents & POLLERR) {
				conn_close(idx[k]);
				continue;
			}
			if (pfd[k].fd == c->cfd) {
				if (pfd[k].revents & (POLLIN | POLLHUP))
					fail = dir_read(c, &c->up, c->cfd,
							&up_link, 1, now);
				if (!fail && (pfd[k].revents & POLLOUT))
					fail = dir_write(c, &c->down, c->cfd,
							 0, now);
			} else {
				if (pfd[k].revents & (POLLIN | POLLHUP))
					fail = dir_read(c, &c->down, c->sfd,
							&down_link, 0, now);
				if (!fail && (pfd[k].revents & POLLOUT))
					fail = dir_write(c, &c->up, c->sfd, 1,
							 now);
			}
			if (fail)
				conn_close(idx[k]);
		}
	}
	write_stats(stats);
	return 0;
}
