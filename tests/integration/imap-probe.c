/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * imap-probe.c - drives the IMAP client against a real server and prints
 * TAP. Run by tests/integration/t-client.sh.
 *
 *   imap-probe --host H --port P --tls none|starttls|implicit
 *              [--ca FILE] [--fingerprint PIN] --user U --password-file F
 *              [--folder NAME] [--depth N] [--trace]
 *              [--expect-fail auth|tls|net [--expect-error TEXT]]
 *              [--expunge UIDSET --expect ok|fail]
 *              [--copy-batch 'SET>DEST;SET>DEST...' --expect ok,no,...]
 *              [--move-batch 'SET>DEST;SET>DEST...' --expect ok,no,...]
 *              [--idents UIDSET --expect GMID,GMID,...]
 *              [--early-auth yes|no] [--expect-hint early|no] [--login-only yes]
 *              [--first yes --hint-caps 'CAP CAP...']
 *              [--store-append UIDSET [--expunge-set UIDSET] --expect ok|no,ok|no]
 *              [--bodies-lead UID,UID [--lead-next FOLDER] --expect ok|no,N]
 *              [--store-append-late yes --lead-next FOLDER]
 *              [--move-from-many yes]
 *              [--copy-from 'SRC@UIDVALIDITY:SET;...' --expect ok,no,unsel...]
 *
 * Without --expect-fail it runs the whole scenario in a fresh folder
 * (created, used, deleted): list, status, select (QRESYNC/CONDSTORE),
 * append with flags, fetch flags/bodies/idents, store, search, copy, move,
 * expunge, idle, logout. With --expect-fail it only checks that connecting
 * fails with that class (and message text). With --expunge it selects
 * --folder and expunges UIDSET, nothing else (against tests/script/client
 * scenarios), and checks that this succeeds or fails as --expect says.
 * With --copy-batch it selects --folder and sends the UID COPYs in one
 * flight (imap_copy_batch); --expect lists which the server accepts.
 * With --copy-from it copies from each SRC (SELECT, UID COPY SET) into
 * --folder, all in one flight (imap_copy_from_many); --expect lists how
 * each ends: ok, no (the COPY refused) or unsel (its SELECT failed).
 * --move-batch does the same with UID MOVEs (imap_move_batch), and also
 * checks that each accepted MOVE's COPYUID names its own source set.
 * With --idents it selects --folder and fetches the identities of UIDSET
 * (imap_fetch_idents); --expect lists the X-GM-MSGID each message gives,
 * in UID order (0: none).
 */
#include "common.h"
#include "imap/client.h"
#include "imap/utf7.h"
#include "util/flags.h"
#include "util/log.h"
#include "../unit/tap.h"

#include <inttypes.h>
#include <stdatomic.h>

#define N_MSG 4

struct msgsrc {
	const char *data;
	size_t len, pos;
	size_t chunk;       /* short reads, to test the streaming */
};

static long msg_read(void *ctx, void *buf, size_t n)
{
	struct msgsrc *m = ctx;
	size_t k = m->len - m->pos;

	if (k > n)
		k = n;
	if (m->chunk && k > m->chunk)
		k = m->chunk;
	memcpy(buf, m->data + m->pos, k);
	m->pos += k;
	return (long)k;
}

struct fetched {
	uint32_t uid[16];
	unsigned flags[16];
	uint64_t modseq[16];
	size_t n;
	char *vanished;
};

static int fetch_cb(void *ctx, const struct imap_fetch *f)
{
	struct fetched *fx = ctx;

	if (fx->n < 16 && f->uid) {
		fx->uid[fx->n] = f->uid;
		fx->flags[fx->n] = f->flags;
		fx->modseq[fx->n] = f->modseq;
		fx->n++;
	}
	return 0;
}

static int vanished_cb(void *ctx, const char *set, bool earlier)
{
	struct fetched *fx = ctx;

	(void)earlier;
	free(fx->vanished);
	fx->vanished = xstrdup(set);
	return 0;
}

static unsigned flags_of(const struct fetched *fx, uint32_t uid)
{
	for (size_t i = 0; i < fx->n; i++)
		if (fx->uid[i] == uid)
			return fx->flags[i];
	return 0xffff;
}

struct bodies {
	char *buf[N_MSG];
	size_t len[N_MSG];
	uint32_t uid[N_MSG];
	size_t n;
	char *cur;
	size_t cur_len, cur_alloc;
	int begins, ends;
	bool fail_at_first;
};

static int b_begin(void *ctx, uint32_t seq, uint64_t size)
{
	struct bodies *b = ctx;

	(void)seq;
	b->begins++;
	if (b->fail_at_first)
		return -1;
	free(b->cur);
	b->cur_alloc = (size_t)size + 1;
	b->cur = xmalloc(b->cur_alloc);
	b->cur_len = 0;
	return 0;
}

static int b_data(void *ctx, const void *p, size_t n)
{
	struct bodies *b = ctx;

	if (b->cur_len + n >= b->cur_alloc)
		return -1;
	memcpy(b->cur + b->cur_len, p, n);
	b->cur_len += n;
	return 0;
}

static int b_end(void *ctx)
{
	((struct bodies *)ctx)->ends++;
	return 0;
}

static int b_done(void *ctx, const struct imap_fetch *f)
{
	struct bodies *b = ctx;

	if (b->n >= N_MSG || b->cur == NULL)
		return -1;
	b->buf[b->n] = b->cur;
	b->len[b->n] = b->cur_len;
	b->uid[b->n] = f->uid;
	b->n++;
	b->cur = NULL;
	return 0;
}

static char *read_file(const char *path)
{
	FILE *fp = fopen(path, "r");
	char line[1024];

	if (fp == NULL || fgets(line, sizeof(line), fp) == NULL) {
		if (fp)
			fclose(fp);
		return NULL;
	}
	fclose(fp);
	line[strcspn(line, "\r\n")] = '\0';
	return xstrdup(line);
}

static void report(const char *what, int r, char *err)
{
	if (!ok(r == 0, "%s", what) && err)
		printf("#   %s\n", err);
	free(err);
}

static int scenario(struct imap_client *c, const char *folder)
{
	char *err = NULL, *sub, *wire_u, *utf8_name = NULL;
	struct imap_folder *f;
	size_t nf, nu;
	bool found = false, found_u = false;
	const char *wires[3];
	struct imap_status_data st[3];
	bool st_ok[3];
	struct imap_selected sel;
	struct imap_append_msg msgs[N_MSG];
	struct msgsrc src[N_MSG];
	char *texts[N_MSG];
	uint32_t uidv = 0, *uids = NULL, all[N_MSG];
	struct fetched fx = { .n = 0 };
	struct bodies bd = { .n = 0 };
	struct imap_body_handler h = { b_begin, b_data, b_end, b_done, &bd };
	struct imap_copyuid cu;
	struct imap_store_op sop[2];
	struct imap_qresync qr;
	uint64_t modseq;
	bool changed;
	int r;

	diag(imap_client_qresync(c) ? "qresync enabled" :
	     imap_client_condstore(c) ? "condstore only" : "no condstore");

	r = imap_create(c, folder, &err);
	report("create the test folder", r, err);
	sub = xasprintf("%s/Sub", folder);
	r = imap_create(c, sub, &err);
	report("create a subfolder", r, err);
	if (imap_utf7_encode("\xc3\x84rger \"q\"", strlen("\xc3\x84rger \"q\""),
			     &utf8_name) < 0)
		BUG("utf7");
	wire_u = xasprintf("%s/%s", folder, utf8_name);
	free(utf8_name);
	r = imap_create(c, wire_u, &err);
	report("create a folder with a non-ASCII name and quotes", r, err);

	r = imap_list_folders(c, &f, &nf, &err);
	report("list folders", r, err);
	for (size_t i = 0; i < nf; i++) {
		char *want = xasprintf("%s/\xc3\x84rger \"q\"", folder);

		if (strcmp(f[i].wire, sub) == 0 && f[i].name &&
		    strcmp(f[i].name, sub) == 0)
			found = true;
		if (f[i].name && strcmp(f[i].name, want) == 0)
			found_u = true;
		free(want);
	}
	ok(found, "subfolder listed with its decoded name");
	ok(found_u, "UTF-7 folder name decoded");
	ok(nf >= 4 && strcmp(f[0].name ? f[0].name : "", "INBOX") <= 0,
	   "folders sorted by name (%zu folders)", nf);
	imap_folders_free(f, nf);
	is_int(imap_client_delimiter(c), '/', "hierarchy delimiter");

	wires[0] = "INBOX";
	wires[1] = folder;
	wires[2] = "no-such-folder-here";
	r = imap_status_batch(c, wires, 3, st, st_ok, &err);
	report("status batch (3 folders pipelined)", r, err);
	ok(st_ok[0] && st_ok[1] && !st_ok[2], "status: per-folder result");
	ok(st[1].has_uidvalidity && st[1].uidvalidity != 0 &&
	   st[1].has_messages && st[1].messages == 0,
	   "status: uidvalidity and message count");
	ok(imap_client_condstore(c) == st[1].has_highestmodseq,
	   "status: HIGHESTMODSEQ exactly when CONDSTORE");

	r = imap_select(c, folder, false, NULL, fetch_cb, vanished_cb, &fx, &sel, &err);
	report("select", r, err);
	ok(sel.uidvalidity == st[1].uidvalidity && sel.exists == 0 && !sel.readonly,
	   "select: uidvalidity, exists, read-write");
	ok((sel.permanent_flags & (MF_SEEN | MF_DELETED)) == (MF_SEEN | MF_DELETED),
	   "select: permanent flags");
	modseq = sel.highestmodseq;

	/* four messages: small ones, and one of 300 kB read in odd chunks */
	for (int i = 0; i < N_MSG; i++) {
		size_t big = i == 2 ? 300 * 1000 : 0;
		char *body = xmalloc(big + 1);

		memset(body, 'z', big);
		for (size_t k = 76; k < big; k += 78) {
			body[k] = '\r';
			body[k + 1] = '\n';
		}
		body[big] = '\0';
		texts[i] = xasprintf("From: probe@twinbox.test\r\n"
				     "Subject: probe %d\r\n"
				     "Message-ID: <probe.%d@twinbox.test>\r\n\r\n"
				     "body %d\r\n%s\r\n", i, i, i, body);
		free(body);
		src[i] = (struct msgsrc){ texts[i], strlen(texts[i]), 0,
					  i == 2 ? 1000 : 0 };
		msgs[i] = (struct imap_append_msg){
			.flags = i == 0 ? MF_SEEN : i == 1 ? MF_FLAGGED | MF_FORWARDED : 0,
			.date = 1700000000 + i, .size = src[i].len,
			.read = msg_read, .ctx = &src[i],
		};
	}
	r = imap_append_batch(c, folder, msgs, N_MSG, &uidv, &err);
	report("append 4 messages (pipelined)", r, err);
	ok(msgs[0].ok_r && msgs[1].ok_r && msgs[2].ok_r && msgs[3].ok_r,
	   "append: every message accepted");
	if (imap_client_has(c, IMAP_CAP_UIDPLUS))
		ok(uidv == sel.uidvalidity && msgs[0].uid_r > 0 &&
		   msgs[3].uid_r == msgs[0].uid_r + 3, "append: APPENDUID");
	else	/* Dovecot sends APPENDUID even when it does not advertise it */
		ok(uidv == 0 || msgs[0].uid_r > 0, "append: APPENDUID consistent");
	ok(imap_client_bytes_out(c) >= src[2].len, "append: bytes counted");

	r = imap_noop(c, &err);
	report("noop", r, err);
	r = imap_search(c, "ALL", &uids, &nu, &err);
	report("search ALL", r, err);
	is_int(nu, N_MSG, "search: 4 messages");
	for (size_t i = 0; i < nu && i < N_MSG; i++)
		all[i] = uids[i];
	ok(nu == N_MSG && all[0] < all[1] && all[2] < all[3], "search: sorted");
	free(uids);
	if (nu != N_MSG)
		return -1;

	r = imap_search(c, "SUBJECT \"probe 1\"", &uids, &nu, &err);
	report("search with a quoted string", r, err);
	ok(nu == 1 && uids[0] == all[1], "search: SUBJECT found message 2");
	free(uids);
	{
		char *q = imap_quote("probe \xc3\xa4");
		char *crit = xasprintf("CHARSET UTF-8 SUBJECT %s", q);

		r = imap_search(c, crit, &uids, &nu, &err);
		report("search with a literal", r, err);
		ok(nu == 0, "search: literal criterion matched nothing");
		free(uids);
		free(q);
		free(crit);
	}

	r = imap_fetch_flags(c, "1:*", 0, false, fetch_cb, vanished_cb, &fx, &err);
	report("fetch flags", r, err);
	ok(flags_of(&fx, all[0]) == MF_SEEN &&
	   flags_of(&fx, all[1]) == (MF_FLAGGED | MF_FORWARDED) &&
	   flags_of(&fx, all[2]) == 0, "fetch flags: flags as appended");

	r = imap_fetch_bodies(c, all, N_MSG, 2, &h, &err);
	report("fetch bodies (2 commands of 2)", r, err);
	is_int(bd.n, N_MSG, "fetch bodies: 4 bodies");
	for (size_t i = 0; i < bd.n; i++) {
		size_t k;

		for (k = 0; k < N_MSG && all[k] != bd.uid[i]; k++)
			;
		ok(k < N_MSG && bd.len[i] == src[k].len &&
		   memcmp(bd.buf[i], texts[k], bd.len[i]) == 0,
		   "fetch bodies: message %zu intact (%zu bytes)", i, bd.len[i]);
	}
	ok(imap_client_bytes_in(c) >= src[2].len, "fetch bodies: bytes counted");
	for (size_t i = 0; i < bd.n; i++)
		free(bd.buf[i]);
	bd.n = 0;
	bd.fail_at_first = true;
	r = imap_fetch_bodies(c, all, N_MSG, 1, &h, &err);
	ok(r < 0 && imap_client_failure(c) == IMAP_FAIL_SINK && !imap_client_broken(c),
	   "fetch bodies: a failing sink fails the call, not the connection");
	free(err);
	err = NULL;
	r = imap_noop(c, &err);
	report("connection still usable after a sink failure", r, err);

	fx.n = 0;
	r = imap_fetch_idents(c, "1:*", fetch_cb, &fx, &err);
	report("fetch idents", r, err);
	is_int(fx.n, N_MSG, "fetch idents: 4 responses");

	sop[0] = (struct imap_store_op){ .uidset = "0", .add = true };
	{
		char s0[16], s1[16];

		snprintf(s0, sizeof(s0), "%u", all[0]);
		snprintf(s1, sizeof(s1), "%u:%u", all[1], all[2]);
		sop[0] = (struct imap_store_op){ s0, true, MF_ANSWERED, 0 };
		sop[1] = (struct imap_store_op){ s1, false, MF_FLAGGED, 0 };
		r = imap_store_batch(c, sop, 2, NULL, &err);
		report("store flags (2 commands)", r, err);
	}
	fx.n = 0;
	r = imap_fetch_flags(c, "1:*", 0, false, fetch_cb, vanished_cb, &fx, &err);
	report("fetch flags again", r, err);
	ok(flags_of(&fx, all[0]) == (MF_SEEN | MF_ANSWERED) &&
	   flags_of(&fx, all[1]) == MF_FORWARDED, "store: flags changed");
	if (imap_client_condstore(c)) {
		char *modified = NULL;
		char s0[16];

		ok(modseq > 0, "condstore: HIGHESTMODSEQ at select");
		fx.n = 0;
		r = imap_fetch_flags(c, "1:*", modseq, true, fetch_cb,
				     vanished_cb, &fx, &err);
		report("fetch flags CHANGEDSINCE", r, err);
		ok(fx.n == N_MSG && fx.modseq[0] > modseq,
		   "changedsince: all 4 changed since select");
		snprintf(s0, sizeof(s0), "%u", all[3]);
		sop[0] = (struct imap_store_op){ s0, true, MF_SEEN, 1 };
		r = imap_store_batch(c, sop, 1, &modified, &err);
		report("store UNCHANGEDSINCE 1", r, err);
		ok(modified != NULL && strcmp(modified, s0) == 0,
		   "unchangedsince: MODIFIED reported (%s)", modified ? modified : "none");
		free(modified);
	}

	/* somebody else marked message 1 \Deleted; we expunge message 2 */
	{
		char s0[16], s1[16];

		snprintf(s0, sizeof(s0), "%u", all[0]);
		snprintf(s1, sizeof(s1), "%u", all[1]);
		sop[0] = (struct imap_store_op){ s0, true, MF_DELETED, 0 };
		r = imap_store_batch(c, sop, 1, NULL, &err);
		report("mark message 1 deleted", r, err);
		r = imap_expunge_uids(c, s1, &err);
		report("expunge exactly message 2", r, err);
		r = imap_search(c, "ALL", &uids, &nu, &err);
		report("search after expunge", r, err);
		ok(nu == 3 && uids[0] == all[0] && uids[1] == all[2],
		   "expunge: only message 2 is gone");
		free(uids);
		r = imap_search(c, "DELETED", &uids, &nu, &err);
		report("search DELETED", r, err);
		ok(nu == 1 && uids[0] == all[0], "expunge: message 1 still \\Deleted");
		free(uids);
		sop[0].add = false;
		r = imap_store_batch(c, sop, 1, NULL, &err);
		report("unmark message 1", r, err);
	}

	{
		char s2[16], s3[16];

		snprintf(s2, sizeof(s2), "%u", all[2]);
		snprintf(s3, sizeof(s3), "%u", all[3]);
		r = imap_copy(c, s2, sub, &cu, &err);
		report("copy message 3 to the subfolder", r, err);
		if (imap_client_has(c, IMAP_CAP_UIDPLUS))
			ok(cu.uidvalidity != 0 && cu.src && strcmp(cu.src, s2) == 0,
			   "copy: COPYUID");
		imap_copyuid_release(&cu);
		r = imap_move(c, s3, sub, &cu, &err);
		report("move message 4 to the subfolder", r, err);
		if (imap_client_has(c, IMAP_CAP_UIDPLUS))
			ok(cu.uidvalidity != 0 && cu.dst != NULL, "move: COPYUID");
		imap_copyuid_release(&cu);
		r = imap_search(c, "ALL", &uids, &nu, &err);
		report("search after move", r, err);
		ok(nu == 2 && uids[0] == all[0] && uids[1] == all[2],
		   "move: message 4 left the folder");
		free(uids);
	}
	wires[0] = sub;
	r = imap_status_batch(c, wires, 1, st, st_ok, &err);
	report("status of the subfolder", r, err);
	ok(st_ok[0] && st[0].messages == 2, "subfolder holds 2 messages");

	if (imap_client_qresync(c)) {
		fx.n = 0;
		free(fx.vanished);
		fx.vanished = NULL;
		qr = (struct imap_qresync){ sel.uidvalidity, modseq, NULL };
		r = imap_select(c, folder, true, &qr, fetch_cb, vanished_cb, &fx,
				&sel, &err);
		report("examine with QRESYNC", r, err);
		ok(sel.readonly && sel.exists == 2, "qresync: read-only, 2 messages");
		ok(fx.vanished != NULL, "qresync: VANISHED (EARLIER) reported (%s)",
		   fx.vanished ? fx.vanished : "none");
		ok(fx.n == 2, "qresync: changed messages reported");
	} else {
		r = imap_select(c, folder, true, NULL, fetch_cb, vanished_cb, &fx,
				&sel, &err);
		report("examine", r, err);
		ok(sel.readonly && sel.exists == 2, "examine: read-only, 2 messages");
	}
	free(fx.vanished);

	r = imap_idle(c, 1, &changed, &err);
	report("idle for one second", r, err);
	ok(!changed, "idle: nothing changed");

	r = imap_select(c, "no-such-folder-here", false, NULL, NULL, NULL, NULL,
			&sel, &err);
	ok(r < 0 && imap_client_failure(c) == IMAP_FAIL_NO &&
	   !imap_client_broken(c), "select of a missing folder: NO, connection fine");
	free(err);
	err = NULL;

	{
		char *renamed = xasprintf("%s-renamed", folder);

		r = imap_rename(c, wire_u, renamed, &err);
		report("rename", r, err);
		r = imap_subscribe(c, renamed, &err);
		report("subscribe", r, err);
		r = imap_delete(c, renamed, &err);
		report("delete the renamed folder", r, err);
		free(renamed);
	}
	r = imap_select(c, "INBOX", false, NULL, NULL, NULL, NULL, &sel, &err);
	report("select INBOX", r, err);
	r = imap_delete(c, sub, &err);
	report("delete the subfolder", r, err);
	r = imap_delete(c, folder, &err);
	report("delete the test folder", r, err);
	for (int i = 0; i < N_MSG; i++)
		free(texts[i]);
	free(sub);
	free(wire_u);
	return 0;
}

/* --store-append: STORE +FLAGS.SILENT (\Flagged) of set and, when del is
 * given, its expunge, then an APPEND of a small message to the folder,
 * in one flight (imap_store_expunge_append()). want
 * "STORE-RESULT,APPEND-RESULT": ok or no each. */
struct probe_msg {
	const char *text;
	size_t off;
};

static long probe_read(void *ctx, void *buf, size_t n)
{
	struct probe_msg *m = ctx;
	size_t left = strlen(m->text) - m->off;

	if (n > left)
		n = left;
	memcpy(buf, m->text + m->off, n);
	m->off += n;
	return (long)n;
}

static void store_append(struct imap_client *c, const char *folder,
			 const char *set, const char *del, const char *want)
{
	struct probe_msg pm = { "Subject: probe\r\n\r\nhello\r\n", 0 };
	struct imap_append_msg am = { 0 };
	struct imap_store_op ops[2] = { { set, true, MF_FLAGGED, 0 },
					{ del, true, MF_DELETED, 0 } };
	struct imap_selected sel;
	char *err = NULL, *aerr = NULL;
	bool want_store = strncmp(want, "ok,", 3) == 0;
	bool want_append = strcmp(strchr(want, ',') ? strchr(want, ',') + 1
						    : "", "ok") == 0;
	uint32_t uv = 0;
	int r;

	r = imap_select(c, folder, false, NULL, NULL, NULL, NULL, &sel, &err);
	report("select", r, err);
	am.size = strlen(pm.text);
	am.read = probe_read;
	am.ctx = &pm;
	err = NULL;
	r = imap_store_expunge_append(c, ops, del ? 2 : 1, del, folder, &am, 1,
				      &uv, &aerr, &err);
	ok((r == 0) == want_store, "the STOREs %s",
	   want_store ? "succeed" : "fail");
	if (err)
		printf("# error: %s\n", err);
	ok(am.ok_r == want_append && (aerr == NULL) == want_append,
	   "the APPEND %s, whatever became of the STOREs",
	   want_append ? "succeeds" : "fails alone");
	if (want_append)
		ok(am.uid_r != 0 && uv != 0, "its APPENDUID is read (UID %u)",
		   am.uid_r);
	free(err);
	free(aerr);
	err = NULL;
	r = imap_noop(c, &err);
	report("NOOP after the flight", r, err);
}

/* --store-append-late: the flight of store-append-late.scn, fixed: in
 * --folder a flag, the expunge of UID 2 and two APPENDs, the APPENDs
 * not waited for (imap_store_expunge_append_start()); the next folder's
 * SELECT and a STORE behind them, then imap_tail_end(). The server
 * answers the APPENDs only once it has read the next folder's commands,
 * refusing the second one. */
static void store_append_late(struct imap_client *c, const char *folder,
			      const char *next)
{
	struct probe_msg pm[2] = { { "Subject: one\r\n\r\nhello\r\n", 0 },
				   { "Subject: two\r\n\r\nhello\r\n", 0 } };
	struct imap_append_msg am[2] = { { 0 } };
	struct imap_store_op ops[2] = { { "1", true, MF_FLAGGED, 0 },
					{ "2", true, MF_DELETED, 0 } };
	struct imap_store_op nops[1] = { { "1", true, MF_SEEN, 0 } };
	struct imap_selected sel, nsel;
	struct imap_own_state own = { 0 }, s = { 0 };
	struct imap_tail *tail = NULL;
	char *err = NULL, *aerr = NULL;
	uint32_t uv = 0;
	bool own_ok = false;
	int r;

	r = imap_select(c, folder, false, NULL, NULL, NULL, NULL, &sel, &err);
	report("select", r, err);
	for (size_t i = 0; i < 2; i++) {
		am[i].size = strlen(pm[i].text);
		am[i].read = probe_read;
		am[i].ctx = &pm[i];
	}
	err = NULL;
	r = imap_store_expunge_append_start(c, ops, 2, "2", folder, am, 2,
					    &tail, &aerr, &err);
	ok(r == 0 && tail != NULL && aerr == NULL,
	   "the STOREs and the expunge are answered, the APPENDs not awaited");
	if (err)
		printf("# error: %s\n", err);
	free(err);
	err = NULL;
	r = imap_select_ahead_qr(c, next, 0, NULL, NULL, NULL, NULL, &nsel,
				 NULL, NULL, &err);
	report("the next SELECT is queued behind them", r, err);
	err = NULL;
	r = imap_store_batch(c, nops, 1, NULL, &err);
	report("the next folder's STORE goes out before the APPENDs' answers",
	       r, err);
	ok(nsel.uidvalidity == 12, "the next folder is selected (%u)",
	   nsel.uidvalidity);
	if (tail == NULL)
		return;
	err = NULL;
	r = imap_tail_end(c, &tail, &uv, &aerr, &own, &own_ok, &err);
	report("the APPENDs' answers are collected", r, err);
	ok(am[0].ok_r && am[0].uid_r == 6 && uv == 7,
	   "the first APPEND is done, with its APPENDUID (%u)", am[0].uid_r);
	ok(!am[1].ok_r && am[1].uid_r == 0 && aerr != NULL &&
	   strstr(aerr, "Quota") != NULL, "the second is refused alone");
	if (aerr)
		printf("# append error: %s\n", aerr);
	free(aerr);
	ok(own_ok && own.uidvalidity == 7 && own.uidnext == 7 &&
	   own.exists == 5 && own.highestmodseq == 23,
	   "the first folder's state after its flight is known (UIDNEXT %u, "
	   "%u messages, HIGHESTMODSEQ %llu)", own.uidnext, own.exists,
	   (unsigned long long)own.highestmodseq);
	own_ok = imap_client_own_state(c, &s);
	ok(own_ok && s.uidvalidity == 12 &&
	   s.highestmodseq == 31,
	   "the tracker follows the next folder now (UIDVALIDITY %u, "
	   "HIGHESTMODSEQ %llu)", s.uidvalidity,
	   (unsigned long long)s.highestmodseq);
	err = NULL;
	r = imap_noop(c, &err);
	report("NOOP after the flight", r, err);
}

/* --copy-batch: "SET>DEST;SET>DEST..." in one flight; want "ok,no,..." */
/* --copy-batch: with ahead (UIDVALIDITY, 0: none) the SELECT goes in
 * the copies' flight (imap_select_ahead()); want "select-refused": the
 * SELECT is refused, so is the whole batch, and the connection stays. */
static void copy_batch(struct imap_client *c, const char *folder,
		       const char *spec, const char *want, uint32_t ahead,
		       bool move)
{
	const char *what = move ? "move" : "copy";
	char *sp = xstrdup(spec), *wn = xstrdup(want), *p, *q, *save = NULL;
	const char *sets[16], *dests[16];
	struct imap_copyuid maps[16];
	bool oks[16], wants[16];
	struct imap_selected sel;
	size_t n = 0, k = 0, i;
	char *err = NULL;
	int r;

	for (p = strtok_r(sp, ";", &save); p && n < 16;
	     p = strtok_r(NULL, ";", &save)) {
		q = strchr(p, '>');
		if (q == NULL)
			continue;
		*q = '\0';
		sets[n] = p;
		dests[n++] = q + 1;
	}
	save = NULL;
	for (p = strtok_r(wn, ",", &save); p && k < 16;
	     p = strtok_r(NULL, ",", &save))
		wants[k++] = strcmp(p, "ok") == 0;
	if (ahead != 0)
		r = imap_select_ahead(c, folder, ahead, &err);
	else
		r = imap_select(c, folder, false, NULL, NULL, NULL, NULL, &sel,
				&err);
	report(ahead ? "select (sent ahead)" : "select", r, err);
	err = NULL;
	r = move ? imap_move_batch(c, sets, dests, n, maps, oks, &err)
		 : imap_copy_batch(c, sets, dests, n, maps, oks, &err);
	if (strcmp(want, "select-refused") == 0) {
		ok(r < 0 && err != NULL && strstr(err, "SELECT") != NULL,
		   "%s batch of %zu: fails with the SELECT's error", what, n);
		if (err)
			printf("# error: %s\n", err);
		for (i = 0; i < n; i++) {
			ok(!oks[i], "%s %zu to %s: not reported done", what,
			   i + 1, dests[i]);
			imap_copyuid_release(&maps[i]);
		}
		free(err);
		err = NULL;
		r = imap_noop(c, &err);
		report("NOOP after the batch", r, err);
		free(sp);
		free(wn);
		return;
	}
	ok(r == 0, "%s batch of %zu: the connection stays usable", what, n);
	if (err)
		printf("# error: %s\n", err);
	ok((err != NULL) == (k == n && memchr(wants, 0, n) != NULL),
	   "a refusal is reported as an error text, and only then");
	free(err);
	err = NULL;
	for (i = 0; i < n && i < k; i++) {
		ok(oks[i] == wants[i], "%s %zu to %s: %s", what, i + 1,
		   dests[i], wants[i] ? "done" : "refused");
		if (wants[i])
			ok(maps[i].uidvalidity != 0 && maps[i].dst != NULL,
			   "%s %zu: its COPYUID is kept", what, i + 1);
		if (move && wants[i])
			ok(maps[i].src != NULL &&
			   strcmp(maps[i].src, sets[i]) == 0,
			   "move %zu: its COPYUID is its own (%s)", i + 1,
			   maps[i].src ? maps[i].src : "none");
		else if (move)
			ok(maps[i].src == NULL, "move %zu: no COPYUID", i + 1);
		imap_copyuid_release(&maps[i]);
	}
	r = imap_noop(c, &err);
	report("NOOP after the batch", r, err);
	free(sp);
	free(wn);
}

/* --copy-from: "SRC@UIDVALIDITY:SET;..." into dest in one flight; want
 * "ok,no,unsel,..."; then a NOOP: the connection stays usable. */
static void copy_from(struct imap_client *c, const char *dest,
		      const char *spec, const char *want)
{
	static const char *const names[] = { "ok", "no", "unsel" };
	char *sp = xstrdup(spec), *wn = xstrdup(want), *p, *q, *save = NULL;
	struct imap_copy_src srcs[16];
	struct imap_copyuid maps[16];
	enum imap_copy_src_result res[16];
	size_t n = 0, k = 0, i;
	bool all_ok = true;
	char *err = NULL;
	int r;

	for (p = strtok_r(sp, ";", &save); p && n < 16;
	     p = strtok_r(NULL, ";", &save)) {
		q = strchr(p, '@');
		if (q == NULL)
			continue;
		*q++ = '\0';
		srcs[n].wire = p;
		srcs[n].uidvalidity = (uint32_t)strtoul(q, &q, 10);
		srcs[n++].uidset = *q == ':' ? q + 1 : q;
	}
	r = imap_copy_from_many(c, srcs, n, dest, maps, res, &err);
	ok(r == 0, "copy from %zu sources: the connection stays usable", n);
	save = NULL;
	for (p = strtok_r(wn, ",", &save); p && k < n;
	     p = strtok_r(NULL, ",", &save), k++) {
		all_ok = all_ok && strcmp(p, "ok") == 0;
		ok(strcmp(names[res[k]], p) == 0, "copy from %s: %s (%s)",
		   srcs[k].wire, p, names[res[k]]);
		if (res[k] == IMAP_COPY_SRC_OK)
			ok(maps[k].uidvalidity != 0 && maps[k].dst != NULL,
			   "copy from %s: its COPYUID is kept (%s)",
			   srcs[k].wire, maps[k].dst ? maps[k].dst : "none");
		else
			ok(maps[k].dst == NULL, "copy from %s: no COPYUID",
			   srcs[k].wire);
	}
	ok(k == n, "%zu results expected (%zu)", n, k);
	if (err)
		printf("# error: %s\n", err);
	ok((err != NULL) == !all_ok,
	   "a failure is reported as an error text, and only then");
	free(err);
	err = NULL;
	for (i = 0; i < n; i++)
		imap_copyuid_release(&maps[i]);
	r = imap_noop(c, &err);
	report("NOOP after the flight", r, err);
	free(sp);
	free(wn);
}

struct idents_seen {
	size_t n;
	uint64_t gm[16];
	bool header[16];
};

static int on_ident(void *ctx, const struct imap_fetch *fe)
{
	struct idents_seen *s = ctx;

	if (s->n < 16) {
		s->gm[s->n] = fe->has_gm_msgid ? fe->gm_msgid : 0;
		s->header[s->n] = fe->header != NULL && fe->has_size;
	}
	s->n++;
	return 0;
}

/* --idents: the identities of set; want "GMID,GMID,..." */
static void idents(struct imap_client *c, const char *folder,
		   const char *set, const char *want)
{
	struct idents_seen s = { 0 };
	struct imap_selected sel;
	char *err = NULL, *wn = xstrdup(want), *p, *save = NULL;
	size_t k = 0;
	int r;

	r = imap_select(c, folder, false, NULL, NULL, NULL, NULL, &sel, &err);
	report("select", r, err);
	err = NULL;
	r = imap_fetch_idents(c, set, on_ident, &s, &err);
	report("fetch identities", r, err);
	for (p = strtok_r(wn, ",", &save); p != NULL;
	     p = strtok_r(NULL, ",", &save), k++) {
		uint64_t g = strtoull(p, NULL, 10);

		ok(k < s.n && k < 16 && s.gm[k] == g && s.header[k],
		   "message %zu: X-GM-MSGID %" PRIu64 " with its header", k + 1,
		   g);
	}
	ok(s.n == k, "%zu identities (%zu)", k, s.n);
	free(wn);
}

/* --bodies-lead SET --lead-next FOLDER: the bodies of SET in --folder
 * with FOLDER's SELECT and FETCH of headers behind them in the flight
 * (imap_fetch_bodies_start); want "ok|no,N" for the bodies' end and the
 * number of bodies that came, then the next folder's headers must come
 * and the connection go on (NOOP). */
static void bodies_lead(struct imap_client *c, const char *folder,
			const char *set, const char *next, const char *want)
{
	struct bodies bd = { .n = 0 };
	struct imap_body_handler h = { b_begin, b_data, b_end, b_done, &bd };
	struct idents_seen s = { 0 };
	struct imap_selected sel, nsel;
	uint32_t uids[N_MSG];
	size_t n = 0, want_n = strchr(want, ',') ? strtoul(strchr(want, ',') + 1,
							   NULL, 10) : 0;
	bool want_ok = strncmp(want, "ok,", 3) == 0;
	char *err = NULL;
	int r;

	for (const char *p = set; *p && n < N_MSG; ) {
		uids[n++] = (uint32_t)strtoul(p, (char **)&p, 10);
		if (*p == ',')
			p++;
	}
	r = imap_select(c, folder, false, NULL, NULL, NULL, NULL, &sel, &err);
	report("select", r, err);
	err = NULL;
	r = imap_fetch_bodies_start(c, uids, n, 0, &h, &err);
	report("the body FETCH goes out", r, err);
	err = NULL;
	r = imap_select_ahead_qr(c, next, 0, NULL, NULL, NULL, NULL, &nsel,
				 NULL, NULL, &err);
	report("the next SELECT is queued behind it", r, err);
	err = NULL;
	r = imap_fetch_idents(c, "1:*", on_ident, &s, &err);
	report("the next folder's headers come after the bodies", r, err);
	ok(s.n == 1 && nsel.uidvalidity == 12,
	   "one header of the next folder, its UIDVALIDITY (%zu, %u)", s.n,
	   nsel.uidvalidity);
	err = NULL;
	r = imap_fetch_bodies_end(c, &err);
	ok((r == 0) == want_ok, "the body FETCH %s", want_ok ? "succeeds"
							      : "fails");
	if (err)
		printf("# error: %s\n", err);
	ok(want_ok || (err != NULL && strstr(err, "could not") != NULL),
	   "its failure is the server's refusal of it");
	free(err);
	ok(bd.n == want_n && (bd.n == 0 || (bd.len[0] == 9 && bd.uid[0] == 1)),
	   "%zu bod(ies) reached the handler (%zu)", want_n, bd.n);
	for (size_t i = 0; i < bd.n; i++)
		free(bd.buf[i]);
	free(bd.cur);
	err = NULL;
	r = imap_noop(c, &err);
	report("NOOP after the flight", r, err);
}

/* --move-from-many: the flight of move-from-many.scn (three sources,
 * fixed) and what each source and MOVE must say. */
static void move_from_many(struct imap_client *c)
{
	const char *in_sets[] = { "1:2", "3" }, *in_dests[] = { "A", "B" };
	const char *wk_sets[] = { "4" }, *wk_dests[] = { "C" };
	const char *st_sets[] = { "1:2" }, *st_dests[] = { "A" };
	struct imap_copyuid maps[3][2];
	bool oks[3][2];
	struct imap_move_src ms[3] = {
		{ "INBOX", 7, in_sets, in_dests, 2, maps[0], oks[0], false },
		{ "Work", 8, wk_sets, wk_dests, 1, maps[1], oks[1], false },
		{ "Sent", 8, st_sets, st_dests, 1, maps[2], oks[2], false },
	};
	char *err = NULL;
	int r;

	r = imap_move_from_many(c, ms, 3, &err);
	ok(r == 0, "move from three sources: the connection stays usable");
	if (err)
		printf("# error: %s\n", err);
	ok(err != NULL && strstr(err, "UID MOVE from 'INBOX'") != NULL,
	   "the first failure is told: the refused MOVE out of INBOX");
	free(err);
	ok(ms[0].selected_r && oks[0][0] && !oks[0][1],
	   "INBOX: the first MOVE done, the refused one not");
	ok(maps[0][0].dst != NULL && strcmp(maps[0][0].dst, "10:11") == 0 &&
	   maps[0][1].dst == NULL,
	   "INBOX: the first MOVE has its COPYUID (10:11), the refused none");
	ok(!ms[1].selected_r && !oks[1][0] && maps[1][0].dst == NULL,
	   "Work: another UIDVALIDITY, its MOVE not counted as done");
	ok(ms[2].selected_r && oks[2][0] && maps[2][0].dst != NULL &&
	   strcmp(maps[2][0].dst, "12:13") == 0,
	   "Sent: its MOVE done, with its own COPYUID (12:13)");
	for (size_t i = 0; i < 3; i++)
		for (size_t t = 0; t < ms[i].n; t++)
			imap_copyuid_release(&maps[i][t]);
	r = imap_noop(c, &err);
	report("NOOP after the flight", r, err);
}

int main(int argc, char **argv)
{
	struct imap_client_settings set = { .port = 143, .tls = IMAP_TLS_STARTTLS,
					    .label = "probe" };
	const char *pwfile = NULL, *expect = NULL, *expect_err = NULL;
	const char *folder = "probe";
	const char *expunge = NULL, *expect_exp = "ok", *copies = NULL;
	const char *ident_set = NULL, *copy_srcs = NULL;
	uint32_t ahead = 0;
	struct imap_login_hint hint = { IMAP_HINT_UNKNOWN, 0 };
	const char *want_hint = NULL;
	bool login_only = false, first = false;
	const char *sa_set = NULL, *sa_del = NULL;
	const char *lead_set = NULL, *lead_next = "B";
	bool sa_late = false;
	bool many_moves = false;
	bool moves = false;
	struct imap_client *c = NULL;
	enum imap_failure fail;
	char *err = NULL, *pass = NULL;
	int r;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--trace") == 0) {
			log_set_verbosity(LOG_TRACE);
			continue;
		}
		if (v == NULL) {
			fprintf(stderr, "imap-probe: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (strcmp(a, "--host") == 0)
			set.host = v;
		else if (strcmp(a, "--port") == 0)
			set.port = (unsigned)atoi(v);
		else if (strcmp(a, "--tls") == 0)
			set.tls = strcmp(v, "none") == 0 ? IMAP_TLS_NONE :
				strcmp(v, "implicit") == 0 ? IMAP_TLS_IMPLICIT :
				IMAP_TLS_STARTTLS;
		else if (strcmp(a, "--ca") == 0)
			set.ca_file = v;
		else if (strcmp(a, "--fingerprint") == 0)
			set.fingerprint = v;
		else if (strcmp(a, "--user") == 0)
			set.user = v;
		else if (strcmp(a, "--password-file") == 0)
			pwfile = v;
		else if (strcmp(a, "--folder") == 0)
			folder = v;
		else if (strcmp(a, "--depth") == 0)
			set.pipeline_depth = (unsigned)atoi(v);
		else if (strcmp(a, "--auth") == 0)
			set.auth = strcmp(v, "login") == 0 ? IMAP_AUTH_LOGIN :
				strcmp(v, "plain") == 0 ? IMAP_AUTH_PLAIN :
				IMAP_AUTH_AUTO;
		else if (strcmp(a, "--expect-fail") == 0)
			expect = v;
		else if (strcmp(a, "--expect-error") == 0)
			expect_err = v;
		else if (strcmp(a, "--expunge") == 0)
			expunge = v;
		else if (strcmp(a, "--copy-batch") == 0)
			copies = v;
		else if (strcmp(a, "--copy-from") == 0)
			copy_srcs = v;
		else if (strcmp(a, "--move-batch") == 0) {
			copies = v;
			moves = true;
		}
		else if (strcmp(a, "--idents") == 0)
			ident_set = v;
		else if (strcmp(a, "--expect") == 0)
			expect_exp = v;
		else if (strcmp(a, "--early-auth") == 0)
			hint.early = strcmp(v, "yes") == 0
					     ? IMAP_HINT_EARLY_AUTH
					     : IMAP_HINT_UNKNOWN;
		else if (strcmp(a, "--expect-hint") == 0)
			want_hint = v;
		else if (strcmp(a, "--store-append") == 0)
			sa_set = v;
		else if (strcmp(a, "--store-append-late") == 0)
			sa_late = strcmp(v, "yes") == 0;
		else if (strcmp(a, "--move-from-many") == 0)
			many_moves = strcmp(v, "yes") == 0;
		else if (strcmp(a, "--bodies-lead") == 0)
			lead_set = v;
		else if (strcmp(a, "--lead-next") == 0)
			lead_next = v;
		else if (strcmp(a, "--expunge-set") == 0)
			sa_del = v;
		else if (strcmp(a, "--first") == 0)
			first = strcmp(v, "yes") == 0;
		else if (strcmp(a, "--hint-caps") == 0)
			hint.caps = imap_caps_parse(v);
		else if (strcmp(a, "--login-only") == 0)
			login_only = strcmp(v, "yes") == 0;
		else if (strcmp(a, "--select-ahead") == 0)
			ahead = (uint32_t)strtoul(v ? v : "0", NULL, 10);
		else {
			fprintf(stderr, "imap-probe: unknown option %s\n", a);
			return 2;
		}
	}
	if (pwfile != NULL && (pass = read_file(pwfile)) == NULL) {
		fprintf(stderr, "imap-probe: cannot read %s\n", pwfile);
		return 2;
	}
	set.secret = pass;
	set.io_timeout = 30;
	set.connect_timeout = 10;
	set.login_hint = &hint;

	r = (first ? imap_client_connect_first : imap_client_connect)(
		&set, &c, &fail, &err);
	/* a login left for the first operation: its answer now */
	if (r == 0 && first && imap_client_flush(c, &err) < 0) {
		r = -1;
		fail = imap_client_failure(c);
	}
	if (expect != NULL) {
		enum imap_failure want = strcmp(expect, "auth") == 0 ? IMAP_FAIL_AUTH :
			strcmp(expect, "tls") == 0 ? IMAP_FAIL_TLS : IMAP_FAIL_NET;

		ok(r < 0 && fail == want, "connect fails with class %s", expect);
		if (err)
			printf("# error: %s\n", err);
		if (expect_err)
			ok(err && strstr(err, expect_err) != NULL,
			   "error says '%s'", expect_err);
		ok(err == NULL || pass == NULL || *pass == '\0' ||
		   strstr(err, pass) == NULL,
		   "error does not contain the password");
		free(err);
		imap_client_free(&c);
		free(pass);
		return tap_done();
	}
	if (!ok(r == 0, "connect and log in")) {
		printf("#   %s\n", err ? err : "?");
		free(err);
		free(pass);
		return tap_done();
	}
	ok(imap_client_has(c, IMAP_CAP_IMAP4REV1), "capabilities known after login");
	if (want_hint != NULL)
		ok(atomic_load(&hint.early) == (strcmp(want_hint, "early") == 0
						  ? IMAP_HINT_EARLY_AUTH
						  : IMAP_HINT_NO_EARLY_AUTH),
		   "after login, the hint says: %s", want_hint);
	if (login_only) {
		imap_client_close(&c);
		free(pass);
		return tap_done();
	}
	if (expunge != NULL) {
		struct imap_selected sel;
		bool want_ok = strcmp(expect_exp, "ok") == 0;

		r = imap_select(c, folder, false, NULL, NULL, NULL, NULL, &sel,
				&err);
		report("select", r, err);
		err = NULL;
		r = imap_expunge_uids(c, expunge, &err);
		ok((r == 0) == want_ok, "expunge %s: %s", expunge,
		   want_ok ? "succeeds" : "fails");
		if (err)
			printf("# error: %s\n", err);
		if (!want_ok)
			ok(err != NULL && strstr(err, "Deleted") != NULL,
			   "the error says the server keeps \\Deleted messages");
		free(err);
		imap_client_close(&c);
		free(pass);
		return tap_done();
	}
	if (ident_set != NULL) {
		idents(c, folder, ident_set, expect_exp);
		imap_client_close(&c);
		free(pass);
		return tap_done();
	}
	if (many_moves) {
		move_from_many(c);
		imap_client_close(&c);
		free(pass);
		return tap_done();
	}
	if (sa_late) {
		store_append_late(c, folder, lead_next);
		imap_client_close(&c);
		free(pass);
		return tap_done();
	}
	if (lead_set != NULL) {
		bodies_lead(c, folder, lead_set, lead_next, expect_exp);
		imap_client_close(&c);
		free(pass);
		return tap_done();
	}
	if (sa_set != NULL) {
		store_append(c, folder, sa_set, sa_del, expect_exp);
		imap_client_close(&c);
		free(pass);
		return tap_done();
	}
	if (copy_srcs != NULL) {
		copy_from(c, folder, copy_srcs, expect_exp);
		imap_client_close(&c);
		free(pass);
		return tap_done();
	}
	if (copies != NULL) {
		copy_batch(c, folder, copies, expect_exp, ahead, moves);
		imap_client_close(&c);
		free(pass);
		return tap_done();
	}
	scenario(c, folder);
	imap_client_close(&c);
	ok(c == NULL, "logout and close");
	free(pass);
	return tap_done();
}
