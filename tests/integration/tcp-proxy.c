/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tcp-proxy.c - a TCP relay on 127.0.0.1 whose "network" the watch tests
 * can take away and give back (tests/integration/t-watch-net.sh).
 *
 *   tcp-proxy LISTEN_PORT TARGET_PORT
 *
 * Relays every connection to LISTEN_PORT to 127.0.0.1:TARGET_PORT.
 * SIGUSR1: the network goes away: every relayed connection is cut (both
 * ends closed) and new ones are refused (the listener is closed).
 * SIGHUP: the network goes silent (a suspended NAT, a dead link): every
 * connection stays open, but nothing is read or forwarded and nothing new
 * is accepted (the kernel still completes handshakes into the backlog,
 * whose greetings then never come).
 * SIGUSR2: the network is back (listening and forwarding again, and what
 * waited in the buffers flows). SIGTERM: exit.
 * Prints "ready" on stdout once it listens.
 */
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PAIRS 64

static volatile sig_atomic_t want_down, want_up, want_freeze;

static void on_signal(int signo)
{
	if (signo == SIGUSR1)
		want_down = 1;
	else if (signo == SIGHUP)
		want_freeze = 1;
	else
		want_up = 1;
}

static int listen_on(unsigned port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;

	if (fd < 0)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(fd, 16) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int connect_to(unsigned port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	int pairs[MAX_PAIRS][2];
	size_t n = 0, i;
	unsigned lport, tport;
	int lfd;
	bool frozen = false;
	struct sigaction sa;
	sigset_t block, waitmask;

	if (argc != 3) {
		fprintf(stderr, "usage: tcp-proxy LISTEN_PORT TARGET_PORT\n");
		return 2;
	}
	lport = (unsigned)atoi(argv[1]);
	tport = (unsigned)atoi(argv[2]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* the signals arrive only inside ppoll(): none is lost between
	 * looking at the flags and going to sleep */
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	lfd = listen_on(lport);
	if (lfd < 0) {
		perror("tcp-proxy: listen");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		struct pollfd pfd[1 + 2 * MAX_PAIRS];
		size_t k = 0, polled;

		if (want_down) {
			want_down = 0;
			for (i = 0; i < n; i++) {
				close(pairs[i][0]);
				close(pairs[i][1]);
			}
			n = 0;
			if (lfd >= 0)
				close(lfd);
			lfd = -1;
		}
		if (want_freeze) {
			want_freeze = 0;
			frozen = true;
		}
		if (want_up) {
			want_up = 0;
			frozen = false;
			if (lfd < 0)
				lfd = listen_on(lport);
		}
		if (frozen) {
			/* nothing moves until a signal */
			(void)ppoll(NULL, 0, NULL, &waitmask);
			continue;
		}
		pfd[k].fd = lfd;
		pfd[k++].events = POLLIN;
		for (i = 0; i < n; i++) {
			pfd[k].fd = pairs[i][0];
			pfd[k++].events = POLLIN;
			pfd[k].fd = pairs[i][1];
			pfd[k++].events = POLLIN;
		}
		polled = n;
		if (ppoll(pfd, k, NULL, &waitmask) < 0) {
			if (errno == EINTR)
				continue;
			perror("tcp-proxy: poll");
			return 1;
		}
		if (lfd >= 0 && (pfd[0].revents & POLLIN)) {
			int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), t;

			if (c >= 0) {
				t = n < MAX_PAIRS ? connect_to(tport) : -1;
				if (t < 0) {
					close(c);
				} else {
					pairs[n][0] = c;
					pairs[n][1] = t;
					n++;
				}
			}
		}
		/* downwards: a pair removed is replaced by the last one,
		 * which was either looked at already or is new (no pfd) */
		for (i = polled; i-- > 0;) {
			int j;
			bool gone = false;

			for (j = 0; j < 2 && !gone; j++) {
				char buf[16384];
				ssize_t r, w = 0;

				if (!(pfd[1 + 2 * i + (size_t)j].revents &
				      (POLLIN | POLLHUP | POLLERR)))
					continue;
				r = read(pairs[i][j], buf, sizeof(buf));
				if (r <= 0) {
					gone = true;
					break;
				}
				while (w < r) {
					ssize_t x = write(pairs[i][!j], buf + w,
							  (size_t)(r - w));

					if (x <= 0) {
						gone = true;
						break;
					}
					w += x;
				}
			}
			if (gone) {
				close(pairs[i][0]);
				close(pairs[i][1]);
				pairs[i][0] = pairs[n - 1][0];
				pairs[i][1] = pairs[n - 1][1];
				n--;
			}
		}
	}
}
