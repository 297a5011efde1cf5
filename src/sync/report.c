/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * report.c - what a run tells the user: --json lines, the --dry-run plan,
 * the -v summary, errors, and the progress bar on a terminal.
 */
#include "common.h"
#include "sync/sync-private.h"
#include "util/buf.h"
#include "util/flags.h"
#include "util/log.h"

#include <time.h>

/* the buffers here are unbounded: an append cannot fail */
#define ADD(call) do { if ((call) < 0) BUG("unbounded buffer refused"); } while (0)

static void json_string(struct buf *b, const char *s)
{
	const unsigned char *p;

	if (s == NULL) {
		ADD(buf_addstr(b, "null"));
		return;
	}
	ADD(buf_addch(b, '"'));
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			ADD(buf_addf(b, "\\%c", *p));
		else if (*p < 0x20)
			ADD(buf_addf(b, "\\u%04x", *p));
		else
			ADD(buf_addch(b, (char)*p));
	}
	ADD(buf_addch(b, '"'));
}

void report_folder(struct engine *e, struct folder *f)
{
	const struct folder_stats *s = &f->stats;

	if (f->reported || copies_pending(f))
		return;
	f->reported = true;
	if (f->error != NULL)
		log_error("%s: %s", e->a->name, f->error);
	if (e->o->json) {
		struct buf b;

		buf_init(&b, BUF_MAX_UNLIMITED);
		ADD(buf_addstr(&b, "{\"account\":"));
		json_string(&b, e->a->name);
		ADD(buf_addstr(&b, ",\"folder\":"));
		json_string(&b, f->name);
		ADD(buf_addf(&b,
			       ",\"pulled_new\":%u,\"pushed_new\":%u"
			       ",\"pulled_flags\":%u,\"pushed_flags\":%u"
			       ",\"pulled_deletions\":%u,\"pushed_deletions\":%u"
			       ",\"pulled_moves\":%u,\"pushed_moves\":%u"
			       ",\"pulled_copies\":%u,\"pushed_copies\":%u"
			       ",\"bytes_down\":%llu,\"bytes_up\":%llu"
			       ",\"status\":\"%s\",\"error\":",
			       s->pulled_new, s->pushed_new, s->pulled_flags,
			       s->pushed_flags, s->pulled_deletions,
			       s->pushed_deletions, s->pulled_moves,
			       s->pushed_moves, s->pulled_copies,
			       s->pushed_copies,
			       (unsigned long long)s->bytes_down,
			       (unsigned long long)s->bytes_up,
			       f->status == FOLDER_OK ? "ok" : "error"));
		json_string(&b, f->status == FOLDER_OK ? NULL
			    : (f->error ? f->error : "skipped"));
		ADD(buf_addstr(&b, "}\n"));
		fputs(b.data, stdout);
		fflush(stdout);
		buf_release(&b);
	}
}

static void plan_line(struct engine *e, struct folder *f, const char *what,
		      const char *detail)
{
	printf("%s:%s: %s%s%s\n", e->a->name, f->name, what,
	       detail ? " " : "", detail ? detail : "");
}

void report_plan(struct engine *e, struct folder *f)
{
	unsigned pull_flags = 0, push_flags = 0, del_l = 0, del_s = 0;
	unsigned redl = 0, reul = 0, mv_in_server = 0, mv_in_local = 0;
	size_t i;
	char fl[MF_COUNT + 1], fl2[MF_COUNT + 1], line[512];

	if (f->create_local)
		plan_line(e, f, "would create the local folder", f->path);
	if (f->create_server)
		plan_line(e, f, "would create the folder on the server", NULL);
	for (i = 0; i < f->n_pairs; i++) {
		struct pair *p = &f->pairs[i];
		unsigned s = p->sv == SRV_FLAGS ? p->sflags : p->m.flags;
		unsigned l = p->lidx != -1 ? p->lflags : p->m.flags;

		if (p->mv == MV_SERVER)
			mv_in_server++;
		else if (p->mv == MV_LOCAL)
			mv_in_local++;
		if ((p->mv == MV_SERVER || p->mv == MV_LOCAL) &&
		    log_enabled(LOG_VERBOSE)) {
			snprintf(line, sizeof(line), "'%s' from '%s'", p->m.base,
				 p->src->name);
			plan_line(e, f, p->mv == MV_SERVER
				  ? "would move on the server" : "would move locally",
				  line);
		}
		switch (p->act) {
		case ACT_FLAGS:
			if (p->new_s != s)
				push_flags++;
			if (p->new_l != l)
				pull_flags++;
			if (log_enabled(LOG_VERBOSE) &&
			    (p->new_s != s || p->new_l != l)) {
				flags_to_maildir(p->new_s, fl);
				flags_to_maildir(p->new_l, fl2);
				snprintf(line, sizeof(line),
					 "UID %u / %s: server flags -> '%s', local flags -> '%s'",
					 p->m.uid, p->m.base, fl, fl2);
				plan_line(e, f, "would set", line);
			}
			break;
		case ACT_DEL_LOCAL:
			del_l++;
			if (log_enabled(LOG_VERBOSE))
				plan_line(e, f, "would delete local", p->m.base);
			break;
		case ACT_DEL_SERVER:
			del_s++;
			if (log_enabled(LOG_VERBOSE)) {
				snprintf(line, sizeof(line), "UID %u", p->m.uid);
				plan_line(e, f, "would delete on the server", line);
			}
			break;
		case ACT_REDOWNLOAD:
			redl++;
			break;
		case ACT_REUPLOAD:
			reul++;
			break;
		default:
			break;
		}
	}
	if (log_enabled(LOG_VERBOSE)) {
		for (i = 0; i < f->n_dl; i++) {
			snprintf(line, sizeof(line), "UID %u", f->dl_uids[i]);
			plan_line(e, f, "would download", line);
		}
		for (i = 0; i < f->n_ul; i++)
			plan_line(e, f, "would upload",
				  f->lents[f->ul_idx[i]].base);
	}
	if (e->o->status_only) {
		char when[64] = "never";
		uint32_t srv = f->selected ? f->sel.exists
			       : f->have_status ? f->stat.messages
						: f->sf.server_count;
		size_t loc = f->local_unchanged ? f->n_pairs : f->n_lents;
		struct tm tm;
		time_t t = (time_t)f->sf.last_sync;

		if (f->sf.last_sync && localtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
		printf("%s:%s\tserver %u\tlocal %zu\tlast sync %s\tpending: "
		       "%zu to pull, %zu to push, %u flag changes, %u deletions\n",
		       e->a->name, f->name, srv, loc, when,
		       f->n_dl, f->n_ul, pull_flags + push_flags, del_l + del_s);
		fflush(stdout);
		return;
	}
	snprintf(line, sizeof(line),
		 "pull %zu new, push %zu new, pull %u flag changes, push %u flag "
		 "changes, delete %u local, delete %u on the server, restore %u "
		 "locally and %u on the server, move %u in on the server and %u "
		 "locally",
		 f->n_dl - redl, f->n_ul - reul, pull_flags, push_flags, del_l,
		 del_s, redl, reul, mv_in_server, mv_in_local);
	plan_line(e, f, "would", line);
	if (f->n_copies > 0) {
		unsigned cp_l = 0, cp_s = 0;

		for (i = 0; i < f->n_copies; i++) {
			if (f->copies[i].push)
				cp_s++;
			else
				cp_l++;
		}
		snprintf(line, sizeof(line),
			 "of the new messages, copy %u locally and %u on the "
			 "server, without transferring them", cp_l, cp_s);
		plan_line(e, f, "would", line);
	}
	fflush(stdout);
}

void report_summary(struct engine *e)
{
	struct folder_stats t = { 0 };
	size_t i, failed = 0;

	if (!e->o->summary || e->o->dry_run)
		return;
	for (i = 0; i < e->n_folders; i++) {
		const struct folder_stats *s = &e->folders[i]->stats;

		t.pulled_new += s->pulled_new;
		t.pushed_new += s->pushed_new;
		t.pulled_flags += s->pulled_flags;
		t.pushed_flags += s->pushed_flags;
		t.pulled_deletions += s->pulled_deletions;
		t.pushed_deletions += s->pushed_deletions;
		t.pulled_moves += s->pulled_moves;
		t.pushed_moves += s->pushed_moves;
		t.pulled_copies += s->pulled_copies;
		t.pushed_copies += s->pushed_copies;
		t.bytes_down += s->bytes_down;
		t.bytes_up += s->bytes_up;
		if (e->folders[i]->status != FOLDER_OK &&
		    e->folders[i]->error != NULL)
			failed++;
	}
	printf("%s: %zu folders%s%zu failed; new: %u pulled, %u pushed; "
	       "flags: %u pulled, %u pushed; deletions: %u pulled, %u pushed; "
	       "moves: %u pulled, %u pushed; copies: %u pulled, %u pushed; "
	       "%.1f kB down, %.1f kB up\n",
	       e->a->name, e->n_folders, failed ? ", " : ", ", failed,
	       t.pulled_new, t.pushed_new, t.pulled_flags, t.pushed_flags,
	       t.pulled_deletions, t.pushed_deletions, t.pulled_moves,
	       t.pushed_moves, t.pulled_copies, t.pushed_copies,
	       (double)t.bytes_down / 1024.0,
	       (double)t.bytes_up / 1024.0);
	fflush(stdout);
}

/* Called with e->lock held. */
void report_progress(struct engine *e, bool final)
{
	int64_t now = now_ms();
	double secs, rate;

	if (!final && now - e->prog_last_ms < 100)
		return;
	e->prog_last_ms = now;
	if (e->prog_total == 0)
		return;
	secs = (double)(now - e->prog_start_ms) / 1000.0;
	rate = secs > 0 ? (double)e->prog_bytes / secs / 1048576.0 : 0;
	fprintf(stderr, "\r\033[K%s:%s %llu/%llu messages, %.1f MB, %.1f MB/s%s",
		e->a->name, e->prog_folder ? e->prog_folder : "",
		(unsigned long long)e->prog_msgs,
		(unsigned long long)e->prog_total,
		(double)e->prog_bytes / 1048576.0, rate,
		final ? "\n" : "");
	fflush(stderr);
}
