/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bookmark.c - a server bookmark that includes the run's own changes.
 *
 * The bookmark (UIDNEXT, HIGHESTMODSEQ, message count) saved for a folder
 * is what the next run's STATUS precheck compares with. Taken at SELECT,
 * it predates the STOREs, expunges, MOVEs and APPENDs the run itself then
 * sent, so the next run would select the folder again only to fetch its
 * own changes back. When the connection saw nothing but its own changes
 * since a SELECT that showed the folder as the plan knew it
 * (imap_client_own_state(), imap/track.h), the values after them are the
 * bookmark instead; otherwise the old one stays and the next run looks.
 */
#include "common.h"
#include "sync/sync-private.h"
#include "sync/remote.h"
#include "util/log.h"

void bookmark_own_changes(struct worker *w, struct folder *f)
{
	struct remote *r = w->r;
	struct imap_own_state s;
	uint32_t uv, uidnext, exists;
	uint64_t modseq;

	if (r == NULL || r->ops->own_state == NULL || w->selected == NULL ||
	    strcmp(w->selected, f->name) != 0 || !r->ops->own_state(r, &s))
		return;
	if (f->selected) {
		/* gathered: the plan is based on this SELECT's view */
		if (f->sel.nomodseq)
			return;
		uv = f->sel.uidvalidity;
		uidnext = f->sel.uidnext;
		exists = f->sel.exists;
		modseq = f->sel.highestmodseq;
	} else if (f->server_unchanged && f->have_status) {
		/* the STATUS precheck found it as the state knows it */
		uv = f->stat.uidvalidity;
		uidnext = f->stat.uidnext;
		exists = f->stat.messages;
		modseq = f->stat.highestmodseq;
	} else {
		return;
	}
	/* the connection's SELECT must have found the folder just so: a
	 * change made between the plan's view and that SELECT would be in
	 * its values, and nobody would fetch it */
	if (s.uidvalidity != uv || s.base_uidnext != uidnext ||
	    s.base_exists != exists || s.base_modseq != modseq)
		return;
	if (s.highestmodseq != modseq || s.uidnext != uidnext ||
	    s.exists != exists)
		log_debug("%s: bookmark includes this run's changes "
			  "(HIGHESTMODSEQ %llu, UIDNEXT %u, %u messages)",
			  f->name, (unsigned long long)s.highestmodseq,
			  s.uidnext, s.exists);
	f->sel.uidvalidity = s.uidvalidity;
	f->sel.uidnext = s.uidnext;
	f->sel.exists = s.exists;
	f->sel.highestmodseq = s.highestmodseq;
	f->sel.nomodseq = false;
	f->selected = true;
}
