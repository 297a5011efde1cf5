/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * track.h - what a connection's own commands did to its selected mailbox.
 *
 * After a sync pushed changes (STORE, EXPUNGE, APPEND, MOVE), the server's
 * HIGHESTMODSEQ, UIDNEXT and message count have moved past the bookmark
 * taken at SELECT. To save a bookmark that includes the run's own changes
 * (so the next run's STATUS precheck finds the folder unchanged, RFC 7162
 * 3.1.2.1 / 3.2.10), the client follows every untagged response about the
 * selected mailbox after its SELECT and sorts it:
 *
 *   - ours: FETCH (UID n MODSEQ (m)) without FLAGS for a UID of our own
 *     .SILENT STORE (RFC 7162 3.1.3), VANISHED for UIDs we expunged or
 *     moved, EXISTS growth matched by our APPENDUIDs, HIGHESTMODSEQ in
 *     OK responses (RFC 7162 3.2.10: sent with the tagged OK of an
 *     expunge, by Dovecot also after APPEND);
 *   - somebody else's: any other FETCH with a MODSEQ above the SELECT's
 *     HIGHESTMODSEQ or with FLAGS we did not ask for, VANISHED of other
 *     UIDs, EXPUNGE (no UIDs to tell), a message count that does not add
 *     up. Once one is seen, the tracker is off until the next SELECT and
 *     the caller keeps the bookmark of the SELECT (the next run then
 *     fetches the change).
 *
 * A change made by somebody else after our last command carries a higher
 * mod-sequence than anything we report here, so a bookmark built from
 * these values never hides it. Only under QRESYNC: without it expunges
 * come as EXPUNGE, which names no UID.
 */
#ifndef TB_IMAP_TRACK_H
#define TB_IMAP_TRACK_H

#include "common.h"
#include "imap/client.h"

/* A UID set parsed into sorted, merged ranges (lookups in log n). */
struct imap_uidranges {
	uint32_t (*v)[2];               /* [lo, hi]; owned */
	size_t n;
};
void imap_uidranges_parse(struct imap_uidranges *r, const char *set);
void imap_uidranges_release(struct imap_uidranges *r);
/* r may be NULL (no UIDs) */
bool imap_uidranges_has(const struct imap_uidranges *r, uint32_t uid);
/* How many UIDs of set are in r; *total_r (optional): how many set has. */
uint64_t imap_uidranges_count_in(const struct imap_uidranges *r,
				 const char *set, uint64_t *total_r);

struct imap_track {
	bool on;                        /* following a selected mailbox */
	char *wire;                     /* its name; owned */
	struct imap_own_state s;
	uint32_t expect_exists;         /* base count +ours appended -ours gone */
	struct imap_uidranges gone_ok;  /* expunged by our other connections */
};

/* A SELECT completed (qresync: QRESYNC is enabled on the connection). */
void imap_track_selected(struct imap_track *t, const char *wire, bool qresync,
			 const struct imap_selected *sel);
/* Stop following (another SELECT begins, a failed SELECT, something we
 * cannot account for). why is for the debug log, NULL for none. */
void imap_track_off(struct imap_track *t, const char *label, const char *why);
void imap_track_release(struct imap_track *t);

/* Untagged data. own: the UIDs of the running command's own STORE /
 * expunge / MOVE (NULL: none); solicited: the running operation asked
 * for FETCH data itself. */
void imap_track_fetch(struct imap_track *t, const char *label,
		      const struct imap_fetch *f,
		      const struct imap_uidranges *own, bool solicited);
void imap_track_vanished(struct imap_track *t, const char *label,
			 const char *set, bool earlier,
			 const struct imap_uidranges *own);
/* UIDs of the selected mailbox that this run expunged or moved away on
 * another connection: their VANISHED is ours too. */
void imap_track_expect_gone(struct imap_track *t, const char *set);
void imap_track_exists(struct imap_track *t, uint32_t n);
void imap_track_expunge(struct imap_track *t, const char *label);
void imap_track_modseq(struct imap_track *t, uint64_t modseq);
/* An APPEND into wire completed: uid from APPENDUID, 0 without one. */
void imap_track_appended(struct imap_track *t, const char *label,
			 const char *wire, uint32_t uid);

/* true with *s_r when every change since the SELECT is accounted for. */
bool imap_track_get(const struct imap_track *t, struct imap_own_state *s_r);

#endif
