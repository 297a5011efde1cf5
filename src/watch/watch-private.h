/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * watch-private.h - the pieces of sync --watch: the event loop and the
 * sync scheduler (watch.c), the server side (idle.c: one IDLE connection
 * per watched folder) and the local side (local.c: inotify).
 *
 * One thread, one poll(2). Every notice marks its folder due; a due
 * account is synced (its due folders only) once the notices have settled
 * for WATCH_DEBOUNCE_MS. The syncs themselves are the engine's ordinary
 * runs, with the account lock held by the watcher throughout.
 */
#ifndef TB_WATCH_PRIVATE_H
#define TB_WATCH_PRIVATE_H

#include "common.h"
#include "commands.h"
#include "commands/account.h"
#include "imap/client.h"

/* Notices closer together than this end in one sync: a mail reader
 * renames a burst of files in cur/ at once; the server has coalesced its
 * own notices already, so those wait less. */
#define WATCH_DEBOUNCE_MS 300
#define WATCH_DEBOUNCE_SERVER_MS 100
/* IDLE is ended and started again (with a NOOP between, answered within
 * WATCH_IO_TIMEOUT) this often: RFC 2177 asks for less than 30 minutes. */
#define WATCH_RENEW_MS (25 * 60 * 1000)
/* Deadline for a reply on a watch connection (NOOP, DONE, SELECT). */
#define WATCH_IO_TIMEOUT 30
#define WATCH_CONNECT_TIMEOUT 10
/* Reconnect backoff: doubles from the first to the last. */
#define WATCH_BACKOFF_FIRST_MS 1000
#define WATCH_BACKOFF_MAX_MS (5 * 60 * 1000)
/* A change of links, addresses or routes while a connection is down
 * retries it this long after the last change of a burst (an interface
 * coming up brings its address and routes a moment later). */
#define WATCH_NET_DEBOUNCE_MS 1000

/* The intervals above as this watcher uses them: the defaults, or for
 * the tests (only for them: they are not a configuration) what these
 * variables say, read once by watch_tune_load():
 *   TWINBOX_WATCH_RENEW=MS          IDLE renewal (WATCH_RENEW_MS)
 *   TWINBOX_WATCH_NOOP=SECONDS      reply deadline (WATCH_IO_TIMEOUT)
 *   TWINBOX_WATCH_BACKOFF_MS=FIRST[,MAX]   reconnect backoff */
struct watch_tune {
	int64_t renew_ms;
	unsigned io_timeout;
	unsigned backoff_first_ms, backoff_max_ms;
};
extern struct watch_tune watch_tune;
void watch_tune_load(void);
/* The backoff after one of ms. */
unsigned watch_backoff_next(unsigned ms);

struct watch;
struct watch_account;

/* An IDLE connection on one server folder, or (folder NULL) the one
 * connection that watches every folder with NOTIFY (RFC 5465). */
struct watch_idle {
	struct watch_account *wa;       /* borrowed: the owner */
	char *folder;                   /* UTF-8, '/' separated; owned; NULL: NOTIFY */
	struct imap_client *c;          /* owned; NULL while down */
	bool ever_up;                   /* connected at least once */
	bool down_logged;               /* "lost" was logged, "back" is due */
	int64_t renew_at;               /* monotonic ms */
	int64_t retry_at;
	unsigned backoff_ms;
};

struct watch_account {
	struct watch *w;                /* borrowed */
	const struct account_config *a; /* borrowed from w's config */
	struct account_conn ac;         /* the secret, fetched once */
	struct imap_client_settings set;/* ac.set with the watch timeouts */
	int lock_fd;
	const char **targets;           /* ACCOUNT:FOLDER targets; owned array */
	size_t n_targets;
	bool all;                       /* no folder targets: every folder */
	/* idles[0] is the NOTIFY connection, the others IDLE on one folder
	 * each: those are used only once the server turned out to offer no
	 * NOTIFY (notify NOTIFY_NO) */
	struct watch_idle *idles;       /* owned */
	size_t n_idles;
	enum { NOTIFY_UNKNOWN, NOTIFY_YES, NOTIFY_NO } notify;
	bool no_idle_logged;
	/* what the next sync of this account covers */
	char **due;                     /* folder names, owned */
	size_t n_due, alloc_due;
	bool due_all;
	int64_t due_at;                 /* 0: nothing due */
	int64_t sweep_at;               /* next STATUS sweep (poll:) */
	unsigned retry_ms;              /* backoff after a failed sync */
	bool rescan;                    /* local folders came or went */
};

/* inotify watch descriptor -> what it watches */
struct watch_wd {
	int wd;
	struct watch_account *wa;       /* borrowed */
	char *folder;                   /* owned; NULL: a directory that holds folders */
};

struct watch {
	const struct config *config;    /* the caller's, or owned_config */
	struct config *owned_config;    /* after a SIGHUP reload */
	const struct global_opts *g;    /* borrowed */
	const struct sync_opts *o;      /* borrowed */
	struct watch_account *accounts; /* owned */
	size_t n_accounts;
	int ino_fd;
	int nl_fd;                      /* rtnetlink; -1: none */
	int64_t net_at;                 /* retry what is down then; 0: no */
	bool net_gone;                  /* and check what is up */
	struct watch_wd *wds;           /* owned */
	size_t n_wds, alloc_wds;
	int exit_code;                  /* >= 0: stop with it */
};

int64_t watch_now_ms(void);

/* watch.c: folder (NULL: the whole account) changed; sync it soon. */
void watch_mark_due(struct watch_account *wa, const char *folder,
		    int64_t delay_ms);

/* idle.c */
/* The IDLE connections the account wants (watch: folders it syncs). */
void watch_idle_setup(struct watch_account *wa);
void watch_idle_release(struct watch_account *wa);
/* Connect what is down and due, renew what is due. -1 when an
 * authentication or TLS failure ends the watch (w->exit_code set). */
int watch_idle_service(struct watch_account *wa, int64_t now);
/* Input on wi's socket. */
void watch_idle_input(struct watch_idle *wi, int64_t now);
/* Drop every connection and reconnect at once (suspend/resume). */
void watch_idle_reset(struct watch_account *wa, int64_t now);
/* Connections that are down retry now, their backoff starts over (the
 * network changed, SIGUSR1). How many there were. */
size_t watch_idle_kick(struct watch_account *wa, int64_t now);
/* Connections that are up renew their IDLE now: a NOOP that gets no
 * answer in time finds one that died silently. How many there were. */
size_t watch_idle_probe(struct watch_account *wa, int64_t now);
/* Some connection of the account is down and waits for its retry. */
bool watch_idle_waiting(const struct watch_account *wa);
/* A connection of the account is lost and not back yet: syncs wait for
 * it (they would fail, and log, at every retry). */
bool watch_idle_down(const struct watch_account *wa);
/* Earliest time the account's connections need servicing (INT64_MAX: none). */
int64_t watch_idle_next(const struct watch_account *wa);

/* local.c */
int watch_local_open(struct watch *w);
void watch_local_close(struct watch *w);
/* (Re)add watches for every local folder of the account. */
void watch_local_scan(struct watch_account *wa);
/* Read what inotify reported. */
void watch_local_input(struct watch *w);

#endif
