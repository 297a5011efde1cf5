/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * idle.c - the server side of sync --watch. Where the server offers
 * NOTIFY (RFC 5465), one connection asks for the new, expunged and
 * flag-changed messages of every personal folder and for folders that
 * come and go, and waits in IDLE for the STATUS and LIST responses that
 * report them. Otherwise one connection per folder of the account's
 * `watch:` list, EXAMINEd and in IDLE (RFC 2177). A notice (STATUS of a
 * folder, EXISTS, EXPUNGE, FETCH) makes that folder due for a sync; the
 * sync itself runs on the engine's own connections.
 *
 * Liveness: TCP keepalive on the socket notices a peer that vanished
 * without a word (a cut cable, a suspended NAT); every WATCH_RENEW_MS the
 * IDLE is ended with DONE, a NOOP must be answered within
 * WATCH_IO_TIMEOUT, and IDLE starts again. A connection that fails is
 * retried with a backoff doubling up to WATCH_BACKOFF_MAX_MS, which a
 * change of the network or SIGUSR1 cuts short (watch_idle_kick()); the
 * log gets one line when it is lost and one when it is back, not one per
 * retry. (watch_tune holds these intervals.)
 */
#include "common.h"
#include "watch/watch-private.h"
#include "sync/remote-imap.h"
#include "util/log.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void keepalive(int fd)
{
	int on = 1, idle = 60, intvl = 15, cnt = 4;

	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static bool folder_wanted(const struct watch_account *wa, const char *name)
{
	size_t i;

	if (wa->all)
		return config_folder_selected(wa->a, name);
	for (i = 0; i < wa->n_targets; i++)
		if (strcmp(wa->targets[i], name) == 0)
			return true;
	return false;
}

#define NOTIFY_SPEC "(personal (MessageNew MessageExpunge FlagChange " \
	"MailboxName))"

static const char *label(const struct watch_idle *wi)
{
	return wi->folder != NULL ? wi->folder : "NOTIFY";
}

void watch_idle_setup(struct watch_account *wa)
{
	const struct account_config *a = wa->a;
	size_t i;

	wa->idles = xcalloc(a->n_watch + 2, sizeof(*wa->idles));
	wa->notify = NOTIFY_UNKNOWN;
	if (getenv("TWINBOX_NO_NOTIFY") != NULL) {
		/* tests: IDLE on a server that offers NOTIFY too */
		wa->notify = NOTIFY_NO;
	}
	wa->idles[0].wa = wa;
	wa->idles[0].backoff_ms = watch_tune.backoff_first_ms;
	wa->idles[0].retry_at = wa->notify == NOTIFY_NO ? INT64_MAX :
				watch_now_ms();
	wa->n_idles = 1;
	for (i = 0; i < a->n_watch; i++) {
		struct watch_idle *wi;

		if (!folder_wanted(wa, a->watch[i]))
			continue;
		if (wa->n_idles > a->connections) {
			log_warn("%s: watching only %zu folders with IDLE "
				 "(connections: %u)", a->name, wa->n_idles - 1,
				 a->connections);
			break;
		}
		wi = &wa->idles[wa->n_idles++];
		wi->wa = wa;
		wi->folder = xstrdup(a->watch[i]);
		wi->backoff_ms = watch_tune.backoff_first_ms;
		wi->retry_at = watch_now_ms();
	}
}

static void drop(struct watch_idle *wi, bool logout)
{
	if (wi->c == NULL)
		return;
	if (logout) {
		bool changed;
		char *err = NULL;

		if (imap_idle_end(wi->c, &changed, &err) == 0)
			imap_client_close(&wi->c);
		free(err);
	}
	imap_client_free(&wi->c);
}

void watch_idle_release(struct watch_account *wa)
{
	size_t i;

	for (i = 0; i < wa->n_idles; i++) {
		drop(&wa->idles[i], true);
		free(wa->idles[i].folder);
	}
	free(wa->idles);
	wa->idles = NULL;
	wa->n_idles = 0;
}

/* The connection failed: log it once, retry later. */
static void lost(struct watch_idle *wi, const char *why, int64_t now)
{
	drop(wi, false);
	if (!wi->down_logged) {
		log_warn("%s: %s: connection lost (%s); reconnecting",
			 wi->wa->a->name, label(wi), why);
		wi->down_logged = true;
	} else {
		log_debug("%s: %s: still down (%s); next try in %u s",
			  wi->wa->a->name, label(wi), why,
			  wi->backoff_ms / 1000);
	}
	wi->retry_at = now + wi->backoff_ms;
	wi->backoff_ms = watch_backoff_next(wi->backoff_ms);
}

static void notice(void *ctx, const char *name)
{
	struct watch_idle *wi = ctx;

	log_debug("%s: server change in %s", wi->wa->a->name,
		  name != NULL ? name : "the folder list");
	watch_mark_due(wi->wa, name, WATCH_DEBOUNCE_SERVER_MS);
}

/* The NOTIFY connection: NOTIFY SET, then IDLE (Dovecot sends the events
 * while the client idles). *failure_r IMAP_FAIL_NO and notify NOTIFY_NO
 * when the server offers no NOTIFY or refuses it. */
static int bring_up_notify(struct watch_idle *wi, enum imap_failure *failure_r,
			   char **error_r)
{
	struct watch_account *wa = wi->wa;

	if (!imap_client_has(wi->c, IMAP_CAP_NOTIFY) ||
	    !imap_client_has(wi->c, IMAP_CAP_IDLE)) {
		wa->notify = NOTIFY_NO;
		*failure_r = IMAP_FAIL_NO;
		*error_r = xstrdup("the server does not offer NOTIFY");
		imap_client_close(&wi->c);
		return -1;
	}
	(void)imap_client_delimiter(wi->c);
	if (imap_notify_set(wi->c, NOTIFY_SPEC, notice, wi, error_r) < 0 ||
	    imap_idle_begin(wi->c, error_r) < 0) {
		*failure_r = imap_client_failure(wi->c);
		if (*failure_r == IMAP_FAIL_NO)
			wa->notify = NOTIFY_NO;
		imap_client_free(&wi->c);
		return -1;
	}
	wa->notify = NOTIFY_YES;
	return 0;
}

/* Connect, EXAMINE the folder and start IDLE (or NOTIFY). -1 with
 * *failure_r. */
static int bring_up(struct watch_idle *wi, enum imap_failure *failure_r,
		    char **error_r)
{
	struct watch_account *wa = wi->wa;
	struct imap_selected sel;
	char *wire;

	if (imap_client_connect(&wa->set, &wi->c, failure_r, error_r) < 0) {
		wi->c = NULL;
		return -1;
	}
	keepalive(imap_client_fd(wi->c));
	if (wi->folder == NULL)
		return bring_up_notify(wi, failure_r, error_r);
	if (!imap_client_has(wi->c, IMAP_CAP_IDLE)) {
		*failure_r = IMAP_FAIL_NO;
		*error_r = xstrdup("the server does not offer IDLE");
		imap_client_close(&wi->c);
		return -1;
	}
	wire = remote_imap_wire_name(wi->folder, imap_client_delimiter(wi->c));
	if (wire == NULL) {
		*failure_r = IMAP_FAIL_NO;
		*error_r = xasprintf("folder name '%s' is not valid UTF-8",
				     wi->folder);
		imap_client_close(&wi->c);
		return -1;
	}
	memset(&sel, 0, sizeof(sel));
	if (imap_select(wi->c, wire, true, NULL, NULL, NULL, NULL, &sel,
			error_r) < 0 ||
	    imap_idle_begin(wi->c, error_r) < 0) {
		*failure_r = imap_client_failure(wi->c);
		free(wire);
		imap_client_free(&wi->c);
		return -1;
	}
	free(wire);
	return 0;
}

int watch_idle_service(struct watch_account *wa, int64_t now)
{
	size_t i;

	for (i = 0; i < wa->n_idles; i++) {
		struct watch_idle *wi = &wa->idles[i];
		enum imap_failure f = IMAP_FAIL_NONE;
		char *err = NULL;

		if (wi->c != NULL && now >= wi->renew_at) {
			bool changed = false;

			/* a notice that comes between DONE and the next
			 * IDLE is not passed on, so every renewal is
			 * followed by a sync of what this connection
			 * watches: one incremental sync per WATCH_RENEW_MS */
			log_debug("%s: %s: renewing IDLE", wa->a->name,
				  label(wi));
			if (imap_idle_end(wi->c, &changed, &err) < 0 ||
			    imap_noop(wi->c, &err) < 0 ||
			    imap_idle_begin(wi->c, &err) < 0) {
				lost(wi, err, now);
				free(err);
				continue;
			}
			wi->renew_at = now + watch_tune.renew_ms;
			if (changed)
				log_debug("%s: %s: server change", wa->a->name,
					  label(wi));
			watch_mark_due(wa, wi->folder,
				       WATCH_DEBOUNCE_SERVER_MS);
		}
		if (wi->c != NULL || now < wi->retry_at)
			continue;
		/* the folders' IDLE connections wait for NOTIFY's verdict */
		if (wi->folder != NULL && wa->notify != NOTIFY_NO)
			continue;
		if (bring_up(wi, &f, &err) < 0) {
			if (f == IMAP_FAIL_AUTH || f == IMAP_FAIL_TLS) {
				log_error("%s: %s", wa->a->name, err);
				free(err);
				wa->w->exit_code = TB_EXIT_AUTH;
				return -1;
			}
			if (wi->folder == NULL && wa->notify == NOTIFY_NO) {
				log_debug("%s: %s; IDLE on the folders of "
					  "watch: instead", wa->a->name, err);
				free(err);
				wi->retry_at = INT64_MAX;
				continue;
			}
			if (f == IMAP_FAIL_NO && strstr(err, "IDLE") != NULL) {
				/* not worth retrying: the STATUS sweep
				 * every poll: interval is all there is */
				if (!wa->no_idle_logged)
					log_warn("%s: %s; folders are checked "
						 "every %u s", wa->a->name, err,
						 wa->a->poll);
				wa->no_idle_logged = true;
				free(err);
				wi->retry_at = INT64_MAX;
				continue;
			}
			lost(wi, err, now);
			free(err);
			continue;
		}
		wi->backoff_ms = watch_tune.backoff_first_ms;
		wi->renew_at = now + watch_tune.renew_ms;
		if (wi->down_logged)
			log_warn("%s: %s: connection is back", wa->a->name,
				 label(wi));
		else if (wi->folder == NULL)
			log_info("%s: watching every folder (NOTIFY)",
				 wa->a->name);
		else
			log_info("%s: %s: watching (IDLE)", wa->a->name,
				 wi->folder);
		/* what changed while it was down */
		if (wi->ever_up || wi->down_logged)
			watch_mark_due(wa, wi->folder, 0);
		wi->down_logged = false;
		wi->ever_up = true;
	}
	return 0;
}

void watch_idle_input(struct watch_idle *wi, int64_t now)
{
	bool changed = false;
	char *err = NULL;

	if (wi->c == NULL)
		return;
	if (imap_idle_check(wi->c, &changed, &err) < 0) {
		lost(wi, err, now);
		free(err);
		/* a server that went away may have taken changes with it */
		watch_mark_due(wi->wa, wi->folder, WATCH_DEBOUNCE_MS);
		return;
	}
	if (changed) {
		log_debug("%s: %s: server change", wi->wa->a->name, label(wi));
		watch_mark_due(wi->wa, wi->folder, WATCH_DEBOUNCE_SERVER_MS);
	}
}

void watch_idle_reset(struct watch_account *wa, int64_t now)
{
	size_t i;

	for (i = 0; i < wa->n_idles; i++) {
		struct watch_idle *wi = &wa->idles[i];

		if (wi->retry_at == INT64_MAX && wi->c == NULL)
			continue;
		drop(wi, false);
		wi->backoff_ms = watch_tune.backoff_first_ms;
		wi->retry_at = now;
	}
}

/* Down, and not for good (no IDLE) nor waiting for NOTIFY's verdict. */
static bool idle_waiting(const struct watch_idle *wi)
{
	return wi->c == NULL && wi->retry_at != INT64_MAX &&
	       (wi->folder == NULL || wi->wa->notify == NOTIFY_NO);
}

size_t watch_idle_kick(struct watch_account *wa, int64_t now)
{
	size_t i, n = 0;

	for (i = 0; i < wa->n_idles; i++) {
		struct watch_idle *wi = &wa->idles[i];

		if (!idle_waiting(wi))
			continue;
		wi->backoff_ms = watch_tune.backoff_first_ms;
		wi->retry_at = now;
		n++;
	}
	return n;
}

size_t watch_idle_probe(struct watch_account *wa, int64_t now)
{
	size_t i, n = 0;

	for (i = 0; i < wa->n_idles; i++) {
		if (wa->idles[i].c == NULL)
			continue;
		wa->idles[i].renew_at = now;
		n++;
	}
	return n;
}

bool watch_idle_waiting(const struct watch_account *wa)
{
	size_t i;

	for (i = 0; i < wa->n_idles; i++)
		if (idle_waiting(&wa->idles[i]))
			return true;
	return false;
}

int64_t watch_idle_next(const struct watch_account *wa)
{
	int64_t next = INT64_MAX;
	size_t i;

	for (i = 0; i < wa->n_idles; i++) {
		const struct watch_idle *wi = &wa->idles[i];
		int64_t t = wi->c != NULL ? wi->renew_at : wi->retry_at;

		/* the folders' connections wait for NOTIFY's verdict */
		if (wi->c == NULL && wi->folder != NULL &&
		    wa->notify != NOTIFY_NO)
			continue;

		if (t < next)
			next = t;
	}
	return next;
}

bool watch_idle_down(const struct watch_account *wa)
{
	size_t i;

	for (i = 0; i < wa->n_idles; i++)
		if (wa->idles[i].c == NULL && wa->idles[i].down_logged)
			return true;
	return false;
}
