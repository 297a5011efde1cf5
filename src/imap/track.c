/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * track.c - following the selected mailbox through our own changes
 * (see track.h).
 */
#include "common.h"
#include "imap/track.h"
#include "imap/client-private.h"
#include "util/log.h"

void imap_track_release(struct imap_track *t)
{
	imap_uidranges_release(&t->gone_ok);
	free(t->wire);
	memset(t, 0, sizeof(*t));
}

void imap_track_off(struct imap_track *t, const char *label, const char *why)
{
	if (t->on && why != NULL)
		log_debug("%s: %s: %s; its bookmark stays as selected", label,
			  t->wire, why);
	t->on = false;
}

void imap_track_selected(struct imap_track *t, const char *wire, bool qresync,
			 const struct imap_selected *sel)
{
	imap_track_release(t);
	if (!qresync || sel->nomodseq || sel->highestmodseq == 0 ||
	    sel->uidvalidity == 0 || sel->uidnext == 0)
		return;
	t->on = true;
	t->wire = xstrdup(wire);
	t->s.uidvalidity = sel->uidvalidity;
	t->s.uidnext = t->s.base_uidnext = sel->uidnext;
	t->s.exists = t->s.base_exists = sel->exists;
	t->s.highestmodseq = t->s.base_modseq = sel->highestmodseq;
	t->expect_exists = sel->exists;
}

void imap_track_fetch(struct imap_track *t, const char *label,
		      const struct imap_fetch *f,
		      const struct imap_uidranges *own, bool solicited)
{
	if (!t->on)
		return;
	if (f->has_modseq) {
		/* RFC 7162 3.1.3: a .SILENT STORE under CONDSTORE answers
		 * with the new MODSEQ only; FLAGS mean somebody else's
		 * change to the message was merged into the reply */
		if (f->uid != 0 && !f->has_flags &&
		    imap_uidranges_has(own, f->uid)) {
			imap_track_modseq(t, f->modseq);
			return;
		}
		if (f->modseq <= t->s.base_modseq)
			return;   /* known at SELECT */
		imap_track_off(t, label, "changed by another client meanwhile");
		return;
	}
	if (f->has_flags && !solicited)
		imap_track_off(t, label, "flags changed by another client");
}

void imap_track_vanished(struct imap_track *t, const char *label,
			 const char *set, bool earlier,
			 const struct imap_uidranges *own)
{
	uint64_t total = 0, ours;

	if (!t->on)
		return;
	if (earlier) {
		imap_track_off(t, label, "unexpected VANISHED (EARLIER)");
		return;
	}
	ours = imap_uidranges_count_in(own, set, &total) +
	       imap_uidranges_count_in(&t->gone_ok, set, NULL);
	if (ours != total || total == 0) {
		imap_track_off(t, label, "messages expunged by another client");
		return;
	}
	/* RFC 7162 3.2.10: VANISHED implies the count went down; no
	 * EXISTS follows */
	t->s.exists = t->s.exists > total ? t->s.exists - (uint32_t)total : 0;
	t->expect_exists = t->expect_exists > total
				   ? t->expect_exists - (uint32_t)total : 0;
}

void imap_track_expect_gone(struct imap_track *t, const char *set)
{
	if (!t->on)
		return;
	imap_uidranges_release(&t->gone_ok);
	imap_uidranges_parse(&t->gone_ok, set);
}

void imap_track_exists(struct imap_track *t, uint32_t n)
{
	t->s.exists = n;
}

void imap_track_expunge(struct imap_track *t, const char *label)
{
	imap_track_off(t, label, "EXPUNGE names no UID");
}

void imap_track_modseq(struct imap_track *t, uint64_t modseq)
{
	if (t->on && modseq > t->s.highestmodseq)
		t->s.highestmodseq = modseq;
}

void imap_track_appended(struct imap_track *t, const char *label,
			 const char *wire, uint32_t uid)
{
	if (!t->on || strcmp(wire, t->wire) != 0)
		return;
	if (uid == 0) {
		imap_track_off(t, label, "APPEND without APPENDUID");
		return;
	}
	t->expect_exists++;
	if (uid >= t->s.uidnext && uid < UINT32_MAX)
		t->s.uidnext = uid + 1;
}

bool imap_track_get(const struct imap_track *t, struct imap_own_state *s_r)
{
	if (!t->on || t->s.exists != t->expect_exists)
		return false;
	*s_r = t->s;
	return true;
}

/* ---- UID ranges ---- */

static int cmp_range(const void *a, const void *b)
{
	const uint32_t *x = a, *y = b;

	return x[0] < y[0] ? -1 : x[0] > y[0];
}

void imap_uidranges_parse(struct imap_uidranges *r, const char *set)
{
	size_t pos = 0, a = 0, i, m = 0;
	uint32_t lo, hi;
	bool bad = false;

	memset(r, 0, sizeof(*r));
	while (imap_uidset_next(set, &pos, &lo, &hi, &bad)) {
		if (lo > hi) {
			uint32_t x = lo;

			lo = hi;
			hi = x;
		}
		if (r->n == a) {
			a = a ? 2 * a : 16;
			r->v = xreallocarray(r->v, a, sizeof(*r->v));
		}
		r->v[r->n][0] = lo;
		r->v[r->n][1] = hi;
		r->n++;
	}
	if (r->n == 0)
		return;
	qsort(r->v, r->n, sizeof(*r->v), cmp_range);
	for (i = 1; i < r->n; i++) {
		if ((uint64_t)r->v[i][0] <= (uint64_t)r->v[m][1] + 1) {
			if (r->v[i][1] > r->v[m][1])
				r->v[m][1] = r->v[i][1];
		} else {
			m++;
			r->v[m][0] = r->v[i][0];
			r->v[m][1] = r->v[i][1];
		}
	}
	r->n = m + 1;
}

void imap_uidranges_release(struct imap_uidranges *r)
{
	free(r->v);
	memset(r, 0, sizeof(*r));
}

/* first range whose end is >= uid */
static size_t ranges_find(const struct imap_uidranges *r, uint32_t uid)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->v[mid][1] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool imap_uidranges_has(const struct imap_uidranges *r, uint32_t uid)
{
	size_t i;

	if (r == NULL)
		return false;
	i = ranges_find(r, uid);
	return i < r->n && r->v[i][0] <= uid;
}

uint64_t imap_uidranges_count_in(const struct imap_uidranges *r,
				 const char *set, uint64_t *total_r)
{
	size_t pos = 0, i;
	uint32_t lo, hi;
	bool bad = false;
	uint64_t n = 0, total = 0;

	while (imap_uidset_next(set, &pos, &lo, &hi, &bad)) {
		if (lo > hi) {
			uint32_t x = lo;

			lo = hi;
			hi = x;
		}
		total += (uint64_t)hi - lo + 1;
		for (i = r ? ranges_find(r, lo) : 0;
		     r != NULL && i < r->n && r->v[i][0] <= hi; i++) {
			uint32_t a = r->v[i][0] > lo ? r->v[i][0] : lo;
			uint32_t b = r->v[i][1] < hi ? r->v[i][1] : hi;

			n += (uint64_t)b - a + 1;
		}
	}
	if (total_r)
		*total_r = total;
	return n;
}
