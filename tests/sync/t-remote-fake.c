/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * t-remote-fake.c - the fake IMAP server of the engine tests, by itself:
 * IMAP semantics of every remote op, capabilities, persistence across a
 * forked child, and several connections from threads.
 */
#include "common.h"
#include "remote-fake.h"
#include "util/flags.h"
#include "../unit/tap.h"

#include <errno.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/t-remote-fake.XXXXXX";

static void die(const char *what, char *error)
{
	printf("Bail out! %s: %s\n", what, error ? error : "?");
	free(error);
	exit(1);
}

static const char MSG1[] =
	"From: a@example.org\nMessage-ID: <one@example.org>\n"
	"Subject: one\n\nbody one\nline two\n";
static const char MSG2[] =
	"From: b@example.org\nMessage-ID:\n <two@example.org>\n"
	"Subject: two\n\nbody two\n";
static const char MSG3[] =
	"From: c@example.org\nSubject: three\n\nbody three\n";

/* ---- callbacks collecting what the ops report ---- */

struct seen {
	struct imap_fetch f[64];
	char hdr[64][256];
	char eid[64][32];
	size_t n;
	char vanished[256];
	unsigned n_vanished;
};

static int seen_fetch(void *ctx, const struct imap_fetch *f)
{
	struct seen *s = ctx;

	if (s->n >= 64)
		return -1;
	s->f[s->n] = *f;
	s->f[s->n].header = NULL;
	s->f[s->n].emailid = NULL;
	if (f->header != NULL)
		snprintf(s->hdr[s->n], sizeof(s->hdr[0]), "%.*s",
			 (int)f->header_len, f->header);
	if (f->emailid != NULL)
		snprintf(s->eid[s->n], sizeof(s->eid[0]), "%s", f->emailid);
	s->n++;
	return 0;
}

static int seen_vanished(void *ctx, const char *set, bool earlier)
{
	struct seen *s = ctx;

	snprintf(s->vanished, sizeof(s->vanished), "%s%s",
		 earlier ? "" : "!", set);
	s->n_vanished++;
	return 0;
}

struct bodies {
	char data[8][512];
	size_t len[8];
	uint32_t uid[8];
	int64_t date[8];
	unsigned chunks[8];
	size_t n;
	int fail_at;            /* make done() fail for this message (1-based) */
	bool in_msg;
};

static int b_begin(void *ctx, uint32_t seq, uint64_t size)
{
	struct bodies *b = ctx;

	(void)seq;
	if (b->n >= 8 || size > 512 || b->in_msg)
		return -1;
	b->in_msg = true;
	b->len[b->n] = 0;
	b->chunks[b->n] = 0;
	return 0;
}

static int b_data(void *ctx, const void *p, size_t n)
{
	struct bodies *b = ctx;

	if (!b->in_msg || b->len[b->n] + n > 512)
		return -1;
	memcpy(b->data[b->n] + b->len[b->n], p, n);
	b->len[b->n] += n;
	b->chunks[b->n]++;
	return 0;
}

static int b_end(void *ctx)
{
	struct bodies *b = ctx;

	return b->in_msg ? 0 : -1;
}

static int b_done(void *ctx, const struct imap_fetch *f)
{
	struct bodies *b = ctx;

	b->in_msg = false;
	b->uid[b->n] = f->uid;
	b->date[b->n] = f->has_date ? f->internaldate : -1;
	b->n++;
	if (b->fail_at != 0 && (size_t)b->fail_at == b->n)
		return -1;
	return 0;
}

struct reader {
	const char *p;
	size_t len, off;
};

static long rd(void *ctx, void *buf, size_t n)
{
	struct reader *r = ctx;
	size_t k = r->len - r->off;

	if (k > n)
		k = n;
	if (k > 3)
		k = 3;      /* small reads: the fake must loop */
	memcpy(buf, r->p + r->off, k);
	r->off += k;
	return (long)k;
}

static void free_folders(struct remote_folder *f, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(f[i].name);
	free(f);
}

static const struct remote_folder *find_folder(const struct remote_folder *f,
					       size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(f[i].name, name) == 0)
			return &f[i];
	return NULL;
}

/* ---------------------------------------------------------------------- */

static void test_full(void)
{
	char *dir = xasprintf("%s/full", tmpdir), *error = NULL;
	struct fake_server *fs;
	struct remote *r;
	struct imap_selected sel;
	struct seen s;
	struct bodies b;
	struct fake_counters ctr;
	struct fake_folder_info info;
	struct fake_msg *msgs;
	size_t n;
	uint32_t uid, uv, *uids;
	uint64_t hms;
	int ret;

	if (fake_server_create(dir, FAKE_CAPS_FULL, &error) < 0 ||
	    fake_server_open(dir, &fs, &error) < 0)
		die("create", error);
	ok(fake_server_create(dir, FAKE_CAPS_FULL, &error) < 0,
	   "create refuses an existing server");
	free(error);
	error = NULL;

	if (fake_msg_add(fs, "INBOX", MSG1, strlen(MSG1), MF_SEEN, 1000000,
			 &uid, &error) < 0 ||
	    fake_msg_add(fs, "INBOX", MSG2, strlen(MSG2), 0, 2000000, NULL,
			 &error) < 0 ||
	    fake_msg_add(fs, "INBOX", MSG3, strlen(MSG3), MF_FLAGGED, 0, NULL,
			 &error) < 0)
		die("add", error);
	is_int(uid, 1, "first uid is 1");
	if (fake_folder_messages(fs, "INBOX", &msgs, &n, &error) < 0)
		die("messages", error);
	is_int(n, 3, "three messages");
	ok(n == 3 && msgs[0].size == strlen(MSG1) + 6 &&
	   strstr(msgs[0].data, "\r\nbody one\r\nline two\r\n") != NULL,
	   "bytes are held with CRLF");
	ok(n == 3 && msgs[1].uid == 2 && msgs[2].uid == 3 &&
	   msgs[2].flags == MF_FLAGGED && msgs[0].internaldate == 1000000,
	   "uids, flags and dates as added");
	ok(n == 3 && strcmp(msgs[0].emailid, msgs[1].emailid) != 0,
	   "distinct emailids");
	fake_msgs_free(msgs, n);
	ret = fake_folder_info(fs, "INBOX", &info, &error);
	ok(ret == 0 && info.uidnext == 4 && info.exists == 3 &&
	   info.highestmodseq == 4, "uidnext 4, highestmodseq 4");
	uv = info.uidvalidity;
	is_int(fake_folder_info(fs, "Nope", &info, &error), 1,
	       "info of a missing folder is 1");

	fake_server_reset_counters(fs);
	r = fake_remote_open(fs);
	ok(r->ops->caps(r) == FAKE_CAPS_FULL && r->ops->qresync(r) &&
	   r->ops->condstore(r), "full capabilities");

	/* select */
	ret = r->ops->select(r, "Nope", NULL, NULL, NULL, NULL, &sel, &error);
	ok(ret < 0 && r->ops->failure(r) == IMAP_FAIL_NO && !r->ops->broken(r),
	   "select of a missing folder is NO");
	FREE_AND_NULL(error);
	if (r->ops->select(r, "inbox", NULL, NULL, NULL, NULL, &sel,
			   &error) < 0)
		die("select", error);
	ok(sel.uidvalidity == uv && sel.uidnext == 4 && sel.exists == 3 &&
	   sel.highestmodseq == 4 && sel.permanent_flags == MF_ALL,
	   "select reports the folder (inbox matches INBOX)");

	/* fetch flags */
	memset(&s, 0, sizeof(s));
	if (r->ops->fetch_flags(r, "1:*", 0, false, seen_fetch, seen_vanished,
				&s, &error) < 0)
		die("fetch_flags", error);
	ok(s.n == 3 && s.f[0].uid == 1 && s.f[0].seq == 1 &&
	   s.f[0].flags == MF_SEEN && s.f[0].has_modseq &&
	   s.f[0].modseq == 2 && s.f[2].flags == MF_FLAGGED,
	   "fetch flags 1:*");

	/* store */
	{
		struct imap_store_op ops[2] = {
			{ "2", true, MF_SEEN | MF_ANSWERED, 0 },
			{ "1", false, MF_FLAGGED, 0 },   /* no change */
		};

		if (r->ops->store(r, ops, 2, &error) < 0)
			die("store", error);
	}
	memset(&s, 0, sizeof(s));
	if (r->ops->fetch_flags(r, "1:3", 4, false, seen_fetch, NULL, &s,
				&error) < 0)
		die("fetch_flags changedsince", error);
	ok(s.n == 1 && s.f[0].uid == 2 && s.f[0].modseq == 5 &&
	   s.f[0].flags == (MF_SEEN | MF_ANSWERED),
	   "changedsince reports only the stored message");
	{
		/* conditional store on a message changed since 4 */
		struct imap_store_op op = { "2", true, MF_FLAGGED, 4 };

		if (r->ops->store(r, &op, 1, &error) < 0)
			die("store unchangedsince", error);
	}
	if (fake_folder_messages(fs, "INBOX", &msgs, &n, &error) < 0)
		die("messages", error);
	ok(n == 3 && msgs[1].flags == (MF_SEEN | MF_ANSWERED),
	   "UNCHANGEDSINCE leaves a changed message alone");
	fake_msgs_free(msgs, n);

	/* expunge and QRESYNC */
	if (r->ops->expunge(r, "1,7", &error) < 0)
		die("expunge", error);
	ret = fake_folder_info(fs, "INBOX", &info, &error);
	ok(ret == 0 && info.exists == 2 && info.highestmodseq == 6,
	   "expunge removed exactly uid 1 and bumped highestmodseq");
	hms = info.highestmodseq;
	memset(&s, 0, sizeof(s));
	{
		struct imap_qresync qr = { uv, 4, NULL };

		if (r->ops->select(r, "INBOX", &qr, seen_fetch, seen_vanished,
				   &s, &sel, &error) < 0)
			die("select qresync", error);
	}
	is_str(s.vanished, "1", "select (QRESYNC) reports VANISHED (EARLIER) 1");
	ok(s.n == 1 && s.f[0].uid == 2, "and FETCH of the changed message");
	memset(&s, 0, sizeof(s));
	{
		struct imap_qresync qr = { uv + 1, 4, NULL };

		if (r->ops->select(r, "INBOX", &qr, seen_fetch, seen_vanished,
				   &s, &sel, &error) < 0)
			die("select qresync", error);
	}
	ok(s.n == 0 && s.n_vanished == 0,
	   "QRESYNC with another UIDVALIDITY reports nothing");
	memset(&s, 0, sizeof(s));
	if (r->ops->fetch_flags(r, "1:*", 5, true, seen_fetch, seen_vanished,
				&s, &error) < 0)
		die("fetch_flags vanished", error);
	ok(s.n == 0 && strcmp(s.vanished, "1") == 0,
	   "fetch (CHANGEDSINCE 5 VANISHED) gives VANISHED 1 only");
	memset(&s, 0, sizeof(s));
	if (r->ops->fetch_flags(r, "1:*", hms, true, seen_fetch, seen_vanished,
				&s, &error) < 0)
		die("fetch_flags vanished", error);
	ok(s.n == 0 && s.n_vanished == 0, "nothing changed since highestmodseq");

	/* idents */
	memset(&s, 0, sizeof(s));
	if (r->ops->fetch_idents(r, "2:3", seen_fetch, &s, &error) < 0)
		die("fetch_idents", error);
	ok(s.n == 2 && s.f[0].has_size && s.f[0].size == strlen(MSG2) + 6 &&
	   strcmp(s.hdr[0], "From: b@example.org\r\nMessage-ID:\r\n "
		  "<two@example.org>\r\nSubject: two\r\n\r\n") == 0 &&
	   s.eid[0][0] != '\0', "fetch idents: size, CRLF header, emailid");

	/* bodies */
	memset(&b, 0, sizeof(b));
	{
		struct imap_body_handler h = { b_begin, b_data, b_end, b_done,
					       &b };
		uint32_t want[] = { 3, 2, 9, 2 };

		if (r->ops->fetch_bodies(r, want, 4, &h, &error) < 0)
			die("fetch_bodies", error);
		ok(b.n == 2 && b.uid[0] == 2 && b.uid[1] == 3 &&
		   b.date[0] == 2000000, "bodies in mailbox order, once each");
		ok(b.n == 2 && b.len[1] == strlen(MSG3) + 4 &&
		   memcmp(b.data[1], "From: c@example.org\r\n", 21) == 0 &&
		   b.chunks[1] > 3, "body streamed in several chunks");
		memset(&b, 0, sizeof(b));
		b.fail_at = 1;
		ret = r->ops->fetch_bodies(r, want, 4, &h, &error);
		ok(ret < 0 && r->ops->failure(r) == IMAP_FAIL_SINK &&
		   !r->ops->broken(r) && b.n == 1,
		   "a failing handler fails the call (SINK), no more callbacks");
		FREE_AND_NULL(error);
	}

	/* append */
	{
		struct reader rr[2] = {
			{ "Subject: up\r\nMessage-ID: <up@x>\r\n\r\nhi\r\n", 0, 0 },
			{ "Subject: bad\n\nbare\n", 0, 0 },
		};
		struct imap_append_msg am[2];

		rr[0].len = strlen(rr[0].p);
		rr[1].len = strlen(rr[1].p);
		memset(am, 0, sizeof(am));
		am[0].flags = MF_SEEN | MF_DRAFT;
		am[0].date = 123456;
		am[0].size = rr[0].len;
		am[0].read = rd;
		am[0].ctx = &rr[0];
		if (r->ops->append(r, "INBOX", am, 1, &uv, &error) < 0)
			die("append", error);
		ok(am[0].ok_r && am[0].uid_r == 4 && uv == sel.uidvalidity,
		   "append with UIDPLUS gives uid and uidvalidity");
		am[1].size = rr[1].len;
		am[1].read = rd;
		am[1].ctx = &rr[1];
		ret = r->ops->append(r, "INBOX", &am[1], 1, &uv, &error);
		ok(ret < 0 && !am[1].ok_r && r->ops->failure(r) == IMAP_FAIL_NO,
		   "append of bare LF is refused");
		FREE_AND_NULL(error);
		rr[0].off = 0;
		ret = r->ops->append(r, "Missing", am, 1, &uv, &error);
		ok(ret < 0 && error && strstr(error, "TRYCREATE"),
		   "append to a missing folder: TRYCREATE");
		FREE_AND_NULL(error);
	}

	/* search */
	if (r->ops->search_msgid(r, 1, "<TWO@example.org>", &uids, &n,
				 &error) < 0)
		die("search", error);
	ok(n == 1 && uids[0] == 2, "search Message-ID (folded, any case)");
	free(uids);
	if (r->ops->search_msgid(r, 3, NULL, &uids, &n, &error) < 0)
		die("search", error);
	ok(n == 2 && uids[0] == 3 && uids[1] == 4, "search all from uid 3");
	free(uids);
	if (r->ops->uids(r, &uids, &n, &error) < 0)
		die("uids", error);
	ok(n == 3 && uids[0] == 2 && uids[2] == 4, "uid search all");
	free(uids);

	/* folders */
	if (r->ops->create(r, "Lists/dev", &error) < 0 ||
	    r->ops->create(r, "Entwürfe", &error) < 0)
		die("create", error);
	ret = r->ops->create(r, "Lists/dev", &error);
	ok(ret < 0 && r->ops->failure(r) == IMAP_FAIL_NO,
	   "create of an existing folder is NO");
	FREE_AND_NULL(error);
	{
		struct remote_folder *f;
		const struct remote_folder *p;

		if (r->ops->list(r, &f, &n, &error) < 0)
			die("list", error);
		ok(n == 4 && strcmp(f[0].name, "Entwürfe") == 0 &&
		   strcmp(f[1].name, "INBOX") == 0, "list is sorted");
		p = find_folder(f, n, "Lists");
		ok(p && (p->attrs & IMAP_LIST_NOSELECT) &&
		   (p->attrs & IMAP_LIST_HASCHILDREN),
		   "missing parent listed as \\Noselect \\HasChildren");
		p = find_folder(f, n, "Lists/dev");
		ok(p && !(p->attrs & IMAP_LIST_NOSELECT) &&
		   (p->attrs & IMAP_LIST_HASNOCHILDREN), "child listed");
		free_folders(f, n);
	}

	/* move */
	{
		struct imap_copyuid cu;
		struct fake_msg *m2;
		size_t n2;

		if (fake_folder_messages(fs, "INBOX", &msgs, &n, &error) < 0)
			die("messages", error);
		if (r->ops->select(r, "INBOX", NULL, NULL, NULL, NULL, &sel,
				   &error) < 0 ||
		    r->ops->move(r, "2:3", "Lists/dev", &cu, &error) < 0)
			die("move", error);
		ret = fake_folder_info(fs, "Lists/dev", &info, &error);
		ok(cu.uidvalidity == info.uidvalidity && cu.src && cu.dst &&
		   strcmp(cu.src, "2:3") == 0 && strcmp(cu.dst, "1:2") == 0,
		   "move gives COPYUID");
		free(cu.src);
		free(cu.dst);
		if (fake_folder_messages(fs, "Lists/dev", &m2, &n2,
					 &error) < 0)
			die("messages", error);
		ok(n == 3 && n2 == 2 && strcmp(m2[0].emailid,
					       msgs[0].emailid) == 0 &&
		   m2[1].flags == MF_FLAGGED &&
		   strcmp(m2[1].data, msgs[1].data) == 0,
		   "moved messages keep bytes, flags and emailid");
		fake_msgs_free(msgs, n);
		fake_msgs_free(m2, n2);
		ret = r->ops->move(r, "4", "Missing", &cu, &error);
		ok(ret < 0 && r->ops->failure(r) == IMAP_FAIL_NO,
		   "move to a missing folder is NO");
		FREE_AND_NULL(error);
		memset(&s, 0, sizeof(s));
		if (r->ops->fetch_flags(r, "1:*", hms, true, seen_fetch,
					seen_vanished, &s, &error) < 0)
			die("fetch_flags", error);
		ok(strcmp(s.vanished, "2:3") == 0 && s.n == 1 && s.f[0].uid == 4,
		   "moved messages vanish from the source");
	}

	/* status */
	{
		const char *names[] = { "INBOX", "Lists", "Lists/dev" };
		struct imap_status_data d[3];
		bool oks[3];

		if (r->ops->status(r, names, 3, d, oks, &error) < 0)
			die("status", error);
		ok(oks[0] && !oks[1] && oks[2] && d[0].messages == 1 &&
		   d[2].messages == 2 && d[2].unseen == 1 &&
		   d[2].has_highestmodseq && d[0].uidnext == 5,
		   "status of several folders");
	}

	/* rename */
	if (r->ops->rename(r, "Lists", "Groups", &error) < 0)
		die("rename", error);
	is_int(fake_folder_info(fs, "Groups/dev", &info, &error), 0,
	       "rename renames the children");

	/* selected folder deleted under the connection */
	if (r->ops->select(r, "Groups/dev", NULL, NULL, NULL, NULL, &sel,
			   &error) < 0)
		die("select", error);
	if (fake_folder_delete(fs, "Groups/dev", &error) < 0)
		die("delete", error);
	ret = r->ops->uids(r, &uids, &n, &error);
	ok(ret < 0 && r->ops->broken(r), "a deleted selected folder ends the session");
	FREE_AND_NULL(error);
	r->ops->close(r);

	fake_server_counters(fs, &ctr);
	ok(ctr.selects == 5 && ctr.appends == 1 && ctr.stores == 3 &&
	   ctr.flag_changes == 1 && ctr.expunges == 1 && ctr.moves == 2 &&
	   ctr.bodies == 4 && ctr.ident_fetches == 2 && ctr.creates == 2,
	   "counters");
	if (!(ctr.selects == 5 && ctr.bodies == 4)) {
		char *cs = fake_counters_str(&ctr);
		diag(cs);
		free(cs);
	}

	/* fault injection */
	r = fake_remote_open(fs);
	fake_server_fail(fs, "select", 2, IMAP_FAIL_NET);
	ok(r->ops->select(r, "INBOX", NULL, NULL, NULL, NULL, &sel,
			  &error) == 0, "first select passes");
	ret = r->ops->select(r, "INBOX", NULL, NULL, NULL, NULL, &sel, &error);
	ok(ret < 0 && r->ops->broken(r), "second select fails as injected");
	FREE_AND_NULL(error);
	r->ops->close(r);

	/* UIDVALIDITY reset */
	if (fake_folder_reset(fs, "INBOX", true, &uv, &error) < 0)
		die("reset", error);
	if (fake_folder_messages(fs, "INBOX", &msgs, &n, &error) < 0)
		die("messages", error);
	ok(uv > sel.uidvalidity && n == 1 && msgs[0].uid == 1 &&
	   strstr(msgs[0].data, "Subject: up") != NULL,
	   "reset: new uidvalidity, messages renumbered");
	fake_msgs_free(msgs, n);
	fake_server_free(&fs);
	free(dir);
}

static void test_trimmed(void)
{
	char *dir = xasprintf("%s/trimmed", tmpdir), *error = NULL;
	struct fake_server *fs;
	struct remote *r;
	struct imap_selected sel;
	struct seen s;
	struct imap_copyuid cu;
	int ret;

	if (fake_server_create(dir, FAKE_CAPS_TRIMMED, &error) < 0 ||
	    fake_server_open(dir, &fs, &error) < 0 ||
	    fake_folder_create(fs, "Archive", &error) < 0 ||
	    fake_msg_add(fs, "INBOX", MSG1, strlen(MSG1), 0, 0, NULL,
			 &error) < 0)
		die("create", error);
	r = fake_remote_open(fs);
	ok(!r->ops->qresync(r) && !r->ops->condstore(r), "no QRESYNC/CONDSTORE");
	{
		struct imap_qresync qr = { 1000, 1, NULL };

		memset(&s, 0, sizeof(s));
		if (r->ops->select(r, "INBOX", &qr, seen_fetch, seen_vanished,
				   &s, &sel, &error) < 0)
			die("select", error);
	}
	ok(sel.highestmodseq == 0 && s.n == 0 && s.n_vanished == 0,
	   "select: no HIGHESTMODSEQ, qresync ignored");
	ret = r->ops->fetch_flags(r, "1:*", 1, false, seen_fetch, NULL, &s,
				  &error);
	ok(ret < 0 && r->ops->failure(r) == IMAP_FAIL_NO,
	   "CHANGEDSINCE without CONDSTORE is refused");
	FREE_AND_NULL(error);
	memset(&s, 0, sizeof(s));
	if (r->ops->fetch_flags(r, "1:*", 0, false, seen_fetch, NULL, &s,
				&error) < 0 ||
	    r->ops->fetch_idents(r, "1", seen_fetch, &s, &error) < 0)
		die("fetch", error);
	ok(s.n == 2 && !s.f[0].has_modseq && s.eid[1][0] == '\0',
	   "no MODSEQ, no EMAILID");
	{
		struct reader rr = { "Subject: x\r\n\r\ny\r\n", 0, 0 };
		struct imap_append_msg am = { 0 };
		uint32_t uv = 7;

		rr.len = strlen(rr.p);
		am.size = rr.len;
		am.read = rd;
		am.ctx = &rr;
		if (r->ops->append(r, "INBOX", &am, 1, &uv, &error) < 0)
			die("append", error);
		ok(am.ok_r && am.uid_r == 0 && uv == 0,
		   "append without UIDPLUS: no uid");
	}
	if (r->ops->move(r, "1", "Archive", &cu, &error) < 0)
		die("move", error);
	ok(cu.uidvalidity == 0 && cu.src == NULL, "move without UIDPLUS: no COPYUID");
	r->ops->close(r);
	fake_server_free(&fs);
	free(dir);
}

static void test_fork(void)
{
	char *dir = xasprintf("%s/fork", tmpdir), *error = NULL, *d1, *d2;
	struct fake_server *fs;
	struct fake_msg *msgs;
	size_t n;
	pid_t pid;
	int status;

	if (fake_server_create(dir, FAKE_CAPS_FULL, &error) < 0 ||
	    fake_server_open(dir, &fs, &error) < 0)
		die("create", error);
	pid = fork();
	if (pid == 0) {
		struct remote_factory rf;
		struct remote *r;
		enum imap_failure f;
		struct reader rr = { "Subject: c\r\n\r\nchild\r\n", 0, 0 };
		struct imap_append_msg am = { 0 };
		uint32_t uv;

		fake_server_factory(fs, &rf);
		if (rf.open(rf.ctx, &r, &f, &error) < 0)
			_exit(2);
		rr.len = strlen(rr.p);
		am.size = rr.len;
		am.read = rd;
		am.ctx = &rr;
		if (r->ops->append(r, "INBOX", &am, 1, &uv, &error) < 0)
			_exit(3);
		_exit(99);   /* no clean-up, as a crash */
	}
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 99, "child ran");
	if (fake_folder_messages(fs, "INBOX", &msgs, &n, &error) < 0)
		die("messages", error);
	ok(n == 1 && strstr(msgs[0].data, "child") != NULL,
	   "the child's append survives its _exit");
	fake_msgs_free(msgs, n);
	if (fake_msg_add(fs, "INBOX", MSG3, strlen(MSG3), 0, 5, NULL,
			 &error) < 0)
		die("add after child", error);
	if (fake_server_dump(fs, &d1, &error) < 0 ||
	    fake_server_dump(fs, &d2, &error) < 0)
		die("dump", error);
	ok(strcmp(d1, d2) == 0 && strstr(d1, "uid=2") != NULL,
	   "no stale lock; dump is stable");
	free(d1);
	free(d2);
	fake_server_free(&fs);
	free(dir);
}

struct thr {
	struct fake_server *fs;
	uint32_t uids[20];
	int fails;
};

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	struct remote *r = fake_remote_open(t->fs);
	int i;

	for (i = 0; i < 20; i++) {
		struct reader rr = { "Subject: t\r\n\r\nthread\r\n", 0, 0 };
		struct imap_append_msg am = { 0 };
		uint32_t uv;
		char *error = NULL;

		rr.len = strlen(rr.p);
		am.size = rr.len;
		am.read = rd;
		am.ctx = &rr;
		if (r->ops->append(r, "INBOX", &am, 1, &uv, &error) < 0) {
			t->fails++;
			free(error);
		}
		t->uids[i] = am.uid_r;
	}
	r->ops->close(r);
	return NULL;
}

static void test_threads(void)
{
	char *dir = xasprintf("%s/threads", tmpdir), *error = NULL;
	struct fake_server *fs;
	struct thr t[4];
	pthread_t th[4];
	bool seen[81] = { false }, dup = false;
	int i, j, fails = 0;
	struct fake_folder_info info;

	if (fake_server_create(dir, FAKE_CAPS_FULL, &error) < 0 ||
	    fake_server_open(dir, &fs, &error) < 0)
		die("create", error);
	for (i = 0; i < 4; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].fs = fs;
		pthread_create(&th[i], NULL, thr_main, &t[i]);
	}
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < 4; i++) {
		fails += t[i].fails;
		for (j = 0; j < 20; j++) {
			uint32_t u = t[i].uids[j];

			if (u == 0 || u > 80 || seen[u])
				dup = true;
			else
				seen[u] = true;
		}
	}
	ok(fails == 0 && !dup, "4 threads x 20 appends: unique uids 1..80");
	ok(fake_folder_info(fs, "INBOX", &info, &error) == 0 &&
	   info.exists == 80 && info.uidnext == 81, "all 80 stored");
	fake_server_free(&fs);
	free(dir);
}

int main(void)
{
	char *cmd;

	if (mkdtemp(tmpdir) == NULL) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	test_full();
	test_trimmed();
	test_fork();
	test_threads();
	cmd = xasprintf("rm -rf '%s'", tmpdir);
	if (tap_failed == 0 && system(cmd) != 0)
		diag("cannot remove the temp dir");
	free(cmd);
	return tap_done();
}
