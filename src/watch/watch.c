/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * watch.c - sync --watch: the event loop, signals, the pause detector,
 * the network change listener (rtnetlink) and the scheduler that turns
 * notices into syncs of just the folders that changed (see
 * watch-private.h).
 */
#include "common.h"
#include "watch/watch.h"
#include "watch/watch-private.h"
#include "state/state.h"
#include "sync/sync.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Longest sleep: the pause detector looks at the clocks this often. */
#define WATCH_TICK_MS 30000
/* A gap between the clocks larger than this is a suspend or a clock jump. */
#define WATCH_PAUSE_MS 10000
/* After SIGTERM, give up waiting for a safe point after this long. */
#define WATCH_STOP_SECONDS 4

static volatile sig_atomic_t sig_stop, sig_hup, sig_usr1, sig_cont, in_sync;
static int sig_pipe[2] = { -1, -1 };

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t watch_now_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

/* ---- intervals ---- */

struct watch_tune watch_tune = {
	WATCH_RENEW_MS, WATCH_IO_TIMEOUT,
	WATCH_BACKOFF_FIRST_MS, WATCH_BACKOFF_MAX_MS,
};

/* A positive number from the environment, or 0. */
static unsigned long env_number(const char *name, const char **rest_r)
{
	const char *v = getenv(name);
	char *end;
	unsigned long n;

	if (v == NULL || *v < '0' || *v > '9')
		return 0;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno != 0 || n > 24UL * 3600 * 1000)
		return 0;
	if (rest_r != NULL)
		*rest_r = end;
	else if (*end != '\0')
		return 0;
	return n;
}

/* Test hooks (see watch-private.h): shorter intervals, so that a renewal,
 * a NOOP deadline or a long backoff happen within a test's minute. */
void watch_tune_load(void)
{
	const char *rest = NULL;
	unsigned long n;

	if ((n = env_number("TWINBOX_WATCH_RENEW", NULL)) > 0)
		watch_tune.renew_ms = (int64_t)n;
	if ((n = env_number("TWINBOX_WATCH_NOOP", NULL)) > 0)
		watch_tune.io_timeout = (unsigned)n;
	if ((n = env_number("TWINBOX_WATCH_BACKOFF_MS", &rest)) > 0) {
		watch_tune.backoff_first_ms = (unsigned)n;
		watch_tune.backoff_max_ms = (unsigned)n;
		if (*rest == ',' && rest[1] >= '0' && rest[1] <= '9') {
			n = strtoul(rest + 1, NULL, 10);
			if (n >= watch_tune.backoff_first_ms &&
			    n <= 24UL * 3600 * 1000)
				watch_tune.backoff_max_ms = (unsigned)n;
		}
	}
}

unsigned watch_backoff_next(unsigned ms)
{
	if (ms == 0)
		return watch_tune.backoff_first_ms;
	return ms >= watch_tune.backoff_max_ms / 2 ?
	       watch_tune.backoff_max_ms : ms * 2;
}

static void on_alarm(int signo)
{
	(void)signo;
	/* the safe point did not come in time: what a kill -9 would leave,
	 * which the next run finishes */
	_exit(0);
}

static void on_signal(int signo)
{
	int saved = errno;

	switch (signo) {
	case SIGTERM:
	case SIGINT:
		if (!sig_stop)
			alarm(WATCH_STOP_SECONDS);
		sig_stop = 1;
		if (in_sync)
			sync_request_stop();
		break;
	case SIGHUP:
		sig_hup = 1;
		break;
	case SIGUSR1:
		sig_usr1 = 1;
		break;
	case SIGCONT:
		sig_cont = 1;
		break;
	}
	if (sig_pipe[1] >= 0 && write(sig_pipe[1], "", 1) < 0) {
		/* full pipe: a wake-up is pending anyway */
	}
	errno = saved;
}

static int signals_install(void)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCONT };
	struct sigaction sa;
	size_t i;

	if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
		log_errno("pipe");
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	for (i = 0; i < N_ELEMENTS(sigs); i++)
		sigaction(sigs[i], &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	return 0;
}

static void signals_drain(void)
{
	char buf[64];

	while (read(sig_pipe[0], buf, sizeof(buf)) > 0)
		;
}

/* ---- what is due ---- */

static bool targeted(const struct watch_account *wa, const char *folder)
{
	size_t i;

	if (wa->all)
		return config_folder_selected(wa->a, folder);
	for (i = 0; i < wa->n_targets; i++)
		if (strcmp(wa->targets[i], folder) == 0)
			return true;
	return false;
}

void watch_mark_due(struct watch_account *wa, const char *folder,
		    int64_t delay_ms)
{
	int64_t at = watch_now_ms() + delay_ms;
	size_t i;

	if (folder == NULL) {
		wa->due_all = true;
	} else if (!wa->due_all) {
		if (!targeted(wa, folder))
			return;
		for (i = 0; i < wa->n_due; i++)
			if (strcmp(wa->due[i], folder) == 0)
				break;
		if (i == wa->n_due) {
			ALLOC_GROW(wa->due, wa->n_due + 1, wa->alloc_due);
			wa->due[wa->n_due++] = xstrdup(folder);
		}
	}
	/* the first notice sets the time; later ones ride along */
	if (wa->due_at == 0 || at < wa->due_at)
		wa->due_at = at;
}

static void due_clear(struct watch_account *wa)
{
	size_t i;

	for (i = 0; i < wa->n_due; i++)
		free(wa->due[i]);
	wa->n_due = 0;
	wa->due_all = false;
	wa->due_at = 0;
}

/* Sync what is due on this account. */
static void account_run(struct watch *w, struct watch_account *wa)
{
	const struct account_config *a = wa->a;
	const char *const *folders = NULL;
	size_t n = 0;
	char **due = NULL;
	bool all = wa->due_all || wa->n_due == 0;
	int r;

	if (all && !wa->all) {
		folders = wa->targets;
		n = wa->n_targets;
	} else if (!all) {
		/* keep the list: new notices go to a fresh one */
		due = wa->due;
		n = wa->n_due;
		folders = (const char *const *)due;
		wa->due = NULL;
		wa->n_due = wa->alloc_due = 0;
	}
	due_clear(wa);
	log_debug("%s: syncing %s", a->name, all ? "every folder" :
		  n == 1 ? folders[0] : "changed folders");
	in_sync = 1;
	if (sig_stop)
		sync_request_stop();
	r = account_sync(w->config, a, w->g, w->o, folders, n, false, &wa->ac);
	in_sync = 0;
	while (due != NULL && n > 0)
		free(due[--n]);
	free(due);
	if (all)
		wa->sweep_at = watch_now_ms() + (int64_t)a->poll * 1000;
	switch (r) {
	case TB_EXIT_AUTH:
	case TB_EXIT_USAGE:
		w->exit_code = r;
		return;
	case TB_EXIT_FAILED:
		/* the engine said why; try everything again, later */
		wa->retry_ms = watch_backoff_next(wa->retry_ms);
		log_debug("%s: sync failed; again in %u s", a->name,
			  wa->retry_ms / 1000);
		watch_mark_due(wa, NULL, wa->retry_ms);
		break;
	default:
		wa->retry_ms = 0;
		break;
	}
	if (wa->rescan)
		watch_local_scan(wa);
}

/* ---- accounts ---- */

struct held_lock {
	char *name;
	int fd;
};

static int account_setup(struct watch *w, struct watch_account *wa,
			 const struct account_config *a,
			 struct held_lock *held, size_t n_held)
{
	const struct config *c = w->config;
	bool any = false;
	char *err = NULL;
	size_t i;
	int r;

	wa->w = w;
	wa->a = a;
	wa->lock_fd = -1;
	wa->targets = account_targets(a, w->o->targets, w->o->n_targets,
				      &wa->n_targets, &wa->all, &any);
	if (!any)
		return 1;
	for (i = 0; i < n_held; i++) {
		if (held[i].fd >= 0 && strcmp(held[i].name, a->name) == 0) {
			wa->lock_fd = held[i].fd;
			held[i].fd = -1;
		}
	}
	if (wa->lock_fd < 0) {
		long pid = 0;

		r = state_lock(c->state_dir, a->name, &wa->lock_fd, &err);
		if (r == 1) {
			if (state_lock_is_watcher(c->state_dir, a->name, &pid))
				log_error("%s: a watcher (twinbox sync --watch, "
					  "pid %ld) is running for this account",
					  a->name, pid);
			else
				log_error("%s: another twinbox is syncing this "
					  "account (lock held on %s/%s.lock)",
					  a->name, c->state_dir, a->name);
			return TB_EXIT_LOCKED;
		}
		if (r < 0) {
			log_error("%s: %s", a->name, err);
			free(err);
			return TB_EXIT_FAILED;
		}
		state_lock_mark_watcher(wa->lock_fd);
	}
	if (account_conn_init(a, &wa->ac, &err) < 0) {
		log_error("%s: %s", a->name, err);
		free(err);
		return TB_EXIT_USAGE;
	}
	wa->set = wa->ac.set;
	wa->set.io_timeout = watch_tune.io_timeout;
	wa->set.connect_timeout = WATCH_CONNECT_TIMEOUT;
	watch_idle_setup(wa);
	wa->rescan = true;
	watch_mark_due(wa, NULL, 0);
	return 0;
}

static void account_release(struct watch_account *wa, struct held_lock *keep)
{
	watch_idle_release(wa);
	if (wa->a != NULL && wa->ac.secret != NULL)
		account_conn_release(&wa->ac);
	if (keep != NULL && wa->lock_fd >= 0) {
		keep->name = xstrdup(wa->a->name);
		keep->fd = wa->lock_fd;
		wa->lock_fd = -1;
	}
	state_unlock(&wa->lock_fd);
	free(wa->targets);
	due_clear(wa);
	free(wa->due);
	memset(wa, 0, sizeof(*wa));
	wa->lock_fd = -1;
}

static void release_all(struct watch *w, struct held_lock *keep)
{
	size_t i;

	for (i = 0; i < w->n_accounts; i++)
		account_release(&w->accounts[i], keep != NULL ? &keep[i] : NULL);
	free(w->accounts);
	w->accounts = NULL;
	w->n_accounts = 0;
	watch_local_close(w);
}

static int setup_all(struct watch *w, struct held_lock *held, size_t n_held)
{
	const struct config *c = w->config;
	size_t i;
	int code = TB_EXIT_OK;

	if (watch_local_open(w) < 0)
		return TB_EXIT_FAILED;
	w->accounts = xcalloc(c->n_accounts, sizeof(*w->accounts));
	for (i = 0; i < c->n_accounts; i++) {
		struct watch_account *wa = &w->accounts[w->n_accounts];
		int r = account_setup(w, wa, &c->accounts[i], held, n_held);

		if (r == 1) {
			free(wa->targets);
			memset(wa, 0, sizeof(*wa));
			continue;
		}
		w->n_accounts++;
		code = tb_exit_merge(code, r);
	}
	return code;
}

static void reload(struct watch *w)
{
	struct config *nc = NULL;
	struct held_lock *held;
	size_t i, n_held = w->n_accounts;
	char *err = NULL;
	int r;

	if (config_load(w->g->config_path, &nc, &err) < 0) {
		log_error("cannot reload the configuration: %s (keeping the "
			  "old one)", err);
		free(err);
		return;
	}
	log_warn("configuration reloaded");
	/* the locks stay held across the reload: no cron run slips in */
	held = xcalloc(n_held + 1, sizeof(*held));
	for (i = 0; i < n_held; i++)
		held[i].fd = -1;
	release_all(w, held);
	config_free(&w->owned_config);
	w->owned_config = nc;
	w->config = nc;
	r = setup_all(w, held, n_held);
	for (i = 0; i < n_held; i++) {
		if (held[i].fd >= 0)
			state_unlock(&held[i].fd);
		free(held[i].name);
	}
	free(held);
	if (r != TB_EXIT_OK)
		w->exit_code = r;
}

/* ---- network changes ----
 *
 * A laptop that comes back to a network would otherwise wait for the
 * next retry, up to WATCH_BACKOFF_MAX_MS away. The kernel tells every
 * listener on an rtnetlink socket when a link goes up or down and when an
 * address or a route comes or goes; when that happens while a connection
 * is down (or a failed sync waits), it is retried at once, with its
 * backoff started over. Only the message types are looked at: which
 * interface changed does not matter, the retry finds out whether the
 * server can be reached now.
 *
 * A link or an address that went away may have carried connections that
 * look up but are dead (a laptop moved to another network): those are
 * checked at once with an IDLE renewal (DONE, a NOOP that must be
 * answered, IDLE), rather than found by TCP keepalive minutes later.
 * Addresses and links that come, and routes, are not worth it: IPv6
 * router advertisements refresh addresses every few minutes. */

#define NET_CHANGED 1   /* a link, address or route came, went or changed */
#define NET_GONE 2      /* a link or an address went away */

static int netlink_open(void)
{
	struct sockaddr_nl snl;
	int fd;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    NETLINK_ROUTE);
	if (fd < 0) {
		log_info("no network change notices (netlink: %s)",
			 strerror(errno));
		return -1;
	}
	memset(&snl, 0, sizeof(snl));
	snl.nl_family = AF_NETLINK;
	snl.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR |
			RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
	if (bind(fd, (struct sockaddr *)&snl, sizeof(snl)) < 0) {
		log_info("no network change notices (netlink: %s)",
			 strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Read what the kernel reported: NET_* bits (both when notices were lost:
 * the socket's buffer overflowed). */
static int netlink_input(int fd)
{
	/* aligned for struct nlmsghdr */
	union {
		struct nlmsghdr h;
		char buf[8192];
	} u;
	int changed = 0;

	for (;;) {
		struct sockaddr_nl from;
		socklen_t flen = sizeof(from);
		const struct nlmsghdr *h;
		ssize_t r;
		size_t left;

		r = recvfrom(fd, u.buf, sizeof(u.buf), MSG_DONTWAIT,
			     (struct sockaddr *)&from, &flen);
		if (r < 0) {
			if (errno == ENOBUFS) {
				changed |= NET_CHANGED | NET_GONE;
				continue;
			}
			break;  /* EAGAIN: all read */
		}
		if (r == 0)
			break;
		if (flen != sizeof(from) || from.nl_pid != 0)
			continue;  /* not from the kernel */
		left = (size_t)r;
		for (h = &u.h; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
			switch (h->nlmsg_type) {
			case RTM_DELLINK: case RTM_DELADDR:
				changed |= NET_GONE;
				/* fall through */
			case RTM_NEWLINK: case RTM_NEWADDR:
			case RTM_NEWROUTE: case RTM_DELROUTE:
				changed |= NET_CHANGED;
				break;
			}
		}
	}
	return changed;
}

/* Something waits for a retry: a connection that is down, or a sync that
 * failed. */
static bool any_waiting(const struct watch *w)
{
	size_t i;

	for (i = 0; i < w->n_accounts; i++)
		if (watch_idle_waiting(&w->accounts[i]) ||
		    w->accounts[i].retry_ms != 0)
			return true;
	return false;
}

/* Retry now what is down or failed, with the backoff started over. */
static size_t kick_all(struct watch *w)
{
	int64_t now = watch_now_ms();
	size_t i, n = 0;

	for (i = 0; i < w->n_accounts; i++) {
		struct watch_account *wa = &w->accounts[i];

		n += watch_idle_kick(wa, now);
		if (wa->retry_ms != 0) {
			wa->retry_ms = 0;
			watch_mark_due(wa, NULL, 0);
			n++;
		}
	}
	return n;
}

/* ---- the loop ---- */

struct pause_clock {
	int64_t mono, boot, real;
};

static void pause_read(struct pause_clock *pc)
{
	pc->mono = clock_ms(CLOCK_MONOTONIC);
	pc->boot = clock_ms(CLOCK_BOOTTIME);
	pc->real = clock_ms(CLOCK_REALTIME);
}

/* A suspend (the boot clock ran on while the monotonic one stood) or a
 * jump of the wall clock since last: how long, or 0. */
static int64_t pause_detect(struct pause_clock *pc)
{
	struct pause_clock now;
	int64_t dm, db, dr, gap = 0;

	pause_read(&now);
	dm = now.mono - pc->mono;
	db = now.boot - pc->boot;
	dr = now.real - pc->real;
	if (db - dm > WATCH_PAUSE_MS)
		gap = db - dm;
	else if (dr - dm > WATCH_PAUSE_MS || dm - dr > WATCH_PAUSE_MS)
		gap = dr > dm ? dr - dm : dm - dr;
	*pc = now;
	return gap;
}

static void resume(struct watch *w, const char *why)
{
	int64_t now = watch_now_ms();
	size_t i;

	log_warn("%s: reconnecting and syncing", why);
	for (i = 0; i < w->n_accounts; i++) {
		watch_idle_reset(&w->accounts[i], now);
		watch_mark_due(&w->accounts[i], NULL, 0);
	}
}

static void loop(struct watch *w)
{
	struct pause_clock pc;
	struct pollfd *pfd = NULL;
	struct watch_idle **pidle = NULL;
	size_t alloc_pfd = 0, alloc_pidle = 0;

	pause_read(&pc);
	while (w->exit_code < 0) {
		int64_t now, next, gap;
		size_t i, j, n;
		int timeout;

		if (sig_stop) {
			w->exit_code = TB_EXIT_OK;
			break;
		}
		if (sig_hup) {
			sig_hup = 0;
			reload(w);
			continue;
		}
		if (sig_usr1) {
			sig_usr1 = 0;
			if (kick_all(w) > 0)
				log_info("SIGUSR1: reconnecting now and "
					 "syncing every folder");
			else
				log_info("SIGUSR1: syncing every folder");
			for (i = 0; i < w->n_accounts; i++)
				watch_mark_due(&w->accounts[i], NULL, 0);
		}
		if (w->net_at != 0 && watch_now_ms() >= w->net_at) {
			int64_t t = watch_now_ms();
			size_t probed = 0;

			w->net_at = 0;
			if (kick_all(w) > 0)
				log_info("the network changed: reconnecting now");
			for (i = 0; w->net_gone && i < w->n_accounts; i++)
				probed += watch_idle_probe(&w->accounts[i], t);
			if (probed > 0)
				log_info("a network link or address went away: "
					 "checking the connections");
			w->net_gone = false;
		}
		gap = pause_detect(&pc);
		if (sig_cont) {
			sig_cont = 0;
			resume(w, "continued after a stop");
		} else if (gap > 0) {
			char why[64];

			snprintf(why, sizeof(why), "the clock jumped %lld s",
				 (long long)(gap / 1000));
			resume(w, why);
		}

		for (i = 0; i < w->n_accounts && w->exit_code < 0; i++) {
			struct watch_account *wa = &w->accounts[i];

			now = watch_now_ms();
			if (watch_idle_service(wa, now) < 0)
				break;
			if (now >= wa->sweep_at && wa->due_at == 0)
				watch_mark_due(wa, NULL, 0);
			if (wa->due_at != 0 && now >= wa->due_at && !sig_stop &&
			    !watch_idle_down(wa))
				account_run(w, wa);
		}
		if (w->exit_code >= 0 || sig_stop)
			continue;
		/* the syncs took time: the clocks say nothing about a pause */
		pause_read(&pc);

		now = watch_now_ms();
		next = now + WATCH_TICK_MS;
		if (w->net_at != 0 && w->net_at < next)
			next = w->net_at;
		n = 3;
		for (i = 0; i < w->n_accounts; i++) {
			struct watch_account *wa = &w->accounts[i];
			int64_t t = watch_idle_next(wa);

			if (t < next)
				next = t;
			if (wa->due_at != 0 && wa->due_at < next &&
			    !watch_idle_down(wa))
				next = wa->due_at;
			if (wa->sweep_at < next)
				next = wa->sweep_at;
			n += wa->n_idles;
		}
		ALLOC_GROW(pfd, n, alloc_pfd);
		ALLOC_GROW(pidle, n, alloc_pidle);
		pfd[0].fd = sig_pipe[0];
		pfd[0].events = POLLIN;
		pfd[1].fd = w->ino_fd;
		pfd[1].events = POLLIN;
		pfd[2].fd = w->nl_fd;  /* -1: ignored by poll */
		pfd[2].events = POLLIN;
		n = 3;
		for (i = 0; i < w->n_accounts; i++) {
			struct watch_account *wa = &w->accounts[i];

			for (j = 0; j < wa->n_idles; j++) {
				if (wa->idles[j].c == NULL)
					continue;
				pidle[n] = &wa->idles[j];
				pfd[n].fd = imap_client_fd(wa->idles[j].c);
				pfd[n].events = POLLIN;
				n++;
			}
		}
		timeout = next <= now ? 0 : (int)(next - now);
		if (poll(pfd, n, timeout) < 0) {
			if (errno != EINTR) {
				log_errno("poll");
				w->exit_code = TB_EXIT_FAILED;
			}
			continue;
		}
		if (pfd[0].revents)
			signals_drain();
		if (pfd[1].revents)
			watch_local_input(w);
		now = watch_now_ms();
		/* the first change of a burst sets the time: a flapping
		 * link cannot put the retry off forever */
		if (pfd[2].revents) {
			int ev = netlink_input(w->nl_fd);

			if (ev & NET_GONE)
				w->net_gone = true;
			if (ev != 0 && w->net_at == 0 &&
			    (w->net_gone || any_waiting(w))) {
				log_debug("the network changed; acting in %d ms",
					  WATCH_NET_DEBOUNCE_MS);
				w->net_at = now + WATCH_NET_DEBOUNCE_MS;
			}
		}
		for (i = 3; i < n; i++)
			if (pfd[i].revents)
				watch_idle_input(pidle[i], now);
	}
	free(pfd);
	free(pidle);
}

int watch_run(const struct config *c, const struct global_opts *g,
	      const struct sync_opts *o)
{
	struct watch w;
	int code;

	if (getenv("JOURNAL_STREAM") == NULL && getenv("INVOCATION_ID") == NULL)
		log_set_wallclock(true);
	memset(&w, 0, sizeof(w));
	w.config = c;
	w.g = g;
	w.o = o;
	w.ino_fd = -1;
	w.exit_code = -1;
	watch_tune_load();
	if (signals_install() < 0)
		return TB_EXIT_FAILED;
	w.nl_fd = netlink_open();
	code = setup_all(&w, NULL, 0);
	if (code == TB_EXIT_OK) {
		log_info("watching %zu account%s", w.n_accounts,
			 w.n_accounts == 1 ? "" : "s");
		loop(&w);
		code = w.exit_code;
		if (sig_stop)
			log_info("stopped by a signal");
	}
	release_all(&w, NULL);
	if (w.nl_fd >= 0)
		close(w.nl_fd);
	config_free(&w.owned_config);
	return code;
}
