/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common.h"
#include "state/state.h"
#include "util/flags.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/t-state.XXXXXX";

static int file_mode(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) < 0)
		return -1;
	return (int)(sb.st_mode & 07777);
}

static bool has(const char *haystack, const char *needle)
{
	return haystack != NULL && strstr(haystack, needle) != NULL;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Run SQL on a raw connection (not through the module). */
static int raw_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	int rc;

	if (sqlite3_open(path, &db) != SQLITE_OK) {
		sqlite3_close(db);
		return -1;
	}
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

static long long raw_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	long long v = -1;

	if (sqlite3_open(path, &db) != SQLITE_OK) {
		sqlite3_close(db);
		return -1;
	}
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			v = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	sqlite3_close(db);
	return v;
}

static struct state *open_ok(const char *dir, const char *account)
{
	struct state *st = NULL;
	char *err = NULL;

	if (state_open(dir, account, &st, &err) < 0) {
		printf("# state_open: %s\n", err);
		free(err);
		return NULL;
	}
	return st;
}

static int64_t add_folder(struct state *st, const char *name)
{
	struct state_folder f = { 0 };

	f.name = xstrdup(name);
	f.local_path = xasprintf("/mail/%s", name);
	f.uidvalidity = 42;
	if (state_folder_put(st, &f) != 0) {
		printf("# add folder: %s\n", state_error(st));
		state_folder_release(&f);
		return 0;
	}
	{
		int64_t id = f.id;

		state_folder_release(&f);
		return id;
	}
}

static void test_open(void)
{
	struct state *st;
	int r;
	struct state_folder f = { 0 };
	char *dir, *path, *err = NULL;

	umask(022);
	dir = xasprintf("%s/a/b/state", tmpdir);
	st = open_ok(dir, "acct");
	ok(st != NULL, "open creates dir and database");
	if (st == NULL) {
		free(dir);
		return;
	}
	path = xasprintf("%s/a", tmpdir);
	is_int(file_mode(path), 0700, "new parent dir is 0700 under umask 022");
	free(path);
	is_int(file_mode(dir), 0700, "state dir is 0700 under umask 022");
	path = xasprintf("%s/acct.db", dir);
	is_str(state_path(st), path, "state_path");
	is_int(file_mode(path), 0600, "database is 0600 under umask 022");
	ok(add_folder(st, "INBOX") > 0, "write a folder");
	free(path);
	path = xasprintf("%s/acct.db-wal", dir);
	is_int(file_mode(path), 0600, "WAL file is 0600 too");
	free(path);
	path = xasprintf("%s/acct.db", dir);
	is_int(raw_int(path, "PRAGMA user_version"), STATE_SCHEMA_VERSION,
	       "user_version set");
	state_close(&st);
	ok(st == NULL, "close sets NULL");
	state_close(&st);

	st = open_ok(dir, "acct");
	ok(st != NULL, "reopen");
	if (st != NULL) {
		is_int(state_folder_get(st, "INBOX", &f), 0,
		       "folder survives reopen");
		is_str(f.local_path, "/mail/INBOX", "its local path");
		state_folder_release(&f);
		state_close(&st);
	}
	free(path);

	r = state_open(dir, "../evil", &st, &err);
	ok(r == -1 && st == NULL && has(err, "bad account name"),
	   "account with '/' refused: %s", err);
	free(err);
	ok(state_open(dir, "", &st, &err) == -1 && has(err, "empty"),
	   "empty account refused");
	free(err);
	ok(state_open(dir, "..", &st, &err) == -1, "account '..' refused");
	free(err);
	path = xasprintf("%s/acct.db", dir);
	r = state_open(path, "x", &st, &err);
	ok(r == -1 && has(err, "not a directory"),
	   "state_dir that is a file: %s", err);
	free(err);
	free(path);
	free(dir);
}

static void test_strict_umask(void)
{
	struct state *st;
	char *dir, *path;

	umask(0277);
	dir = xasprintf("%s/strict", tmpdir);
	st = open_ok(dir, "acct");
	umask(022);
	ok(st != NULL, "open under umask 0277");
	if (st == NULL) {
		free(dir);
		return;
	}
	is_int(file_mode(dir), 0700, "dir 0700 under umask 0277");
	path = xasprintf("%s/acct.db", dir);
	is_int(file_mode(path), 0600, "database 0600 under umask 0277");
	ok(add_folder(st, "INBOX") > 0, "and writable");
	state_close(&st);
	free(path);
	free(dir);
}

static void test_folders(struct state *st)
{
	struct state_folder f = { 0 }, g = { 0 }, *arr;
	size_t n;
	int64_t id;
	int r;

	f.name = xstrdup("Archive/2024");
	f.local_path = xstrdup("/m/Archive.2024");
	f.uidvalidity = 4294967295u;
	f.uidnext = 17;
	f.highestmodseq = UINT64_C(9223372036854775807);
	f.cur_mtime = INT64_C(1700000000123456789);
	f.new_mtime = -5;
	f.last_sync = 1700000000;
	f.server_count = 3;
	f.local_count = 4;
	is_int(state_folder_put(st, &f), 0, "insert folder");
	ok(f.id > 0, "id set");
	id = f.id;
	is_int(state_folder_get(st, "Archive/2024", &g), 0, "get by name");
	ok(g.id == id && g.uidvalidity == 4294967295u && g.uidnext == 17 &&
	   g.highestmodseq == UINT64_C(9223372036854775807) &&
	   g.cur_mtime == INT64_C(1700000000123456789) && g.new_mtime == -5 &&
	   g.last_sync == 1700000000 && g.server_count == 3 &&
	   g.local_count == 4, "all fields round-trip");
	state_folder_release(&g);
	is_int(state_folder_get(st, "nope", &g), 1, "missing folder: 1");
	ok(g.name == NULL && g.id == 0, "missing folder: zeroed");
	ok(has(state_error(st), "no such folder"), "and says why");

	f.uidnext = 99;
	f.highestmodseq = 0;
	is_int(state_folder_put(st, &f), 0, "update by id");
	is_int(f.id, id, "id unchanged");
	is_int(state_folder_get_id(st, id, &g), 0, "get by id");
	ok(g.uidnext == 99 && g.highestmodseq == 0, "update stored");
	state_folder_release(&g);

	ok(add_folder(st, "Drafts") > 0, "add Drafts");
	ok(add_folder(st, "Ärger") > 0, "add a UTF-8 name");
	g.name = xstrdup("Drafts");
	g.local_path = xstrdup("/x");
	r = state_folder_put(st, &g);
	ok(r == -1 && has(state_error(st), "UNIQUE"),
	   "duplicate name refused: %s", state_error(st));
	state_folder_release(&g);

	is_int(state_folder_list(st, &arr, &n), 0, "list");
	is_int(n, 4, "four folders (INBOX from before)");
	if (n == 4) {
		is_str(arr[0].name, "Archive/2024", "sorted 0");
		is_str(arr[1].name, "Drafts", "sorted 1");
		is_str(arr[2].name, "INBOX", "sorted 2");
		is_str(arr[3].name, "Ärger", "sorted 3 (bytes)");
	}
	state_folders_free(arr, n);

	is_int(state_folder_rename(st, id, "Old/2024", NULL), 0, "rename");
	is_int(state_folder_get(st, "Old/2024", &g), 0, "found by new name");
	is_str(g.local_path, "/m/Archive.2024", "local path kept (NULL)");
	state_folder_release(&g);
	is_int(state_folder_rename(st, id, "Old/2024", "/m/Old.2024"), 0,
	       "rename local path");
	is_int(state_folder_get(st, "Old/2024", &g), 0, "get");
	is_str(g.local_path, "/m/Old.2024", "local path changed");
	state_folder_release(&g);
	is_int(state_folder_get(st, "Archive/2024", &g), 1, "old name gone");
	ok(state_folder_rename(st, id, "Drafts", NULL) == -1,
	   "rename onto an existing name fails");
	is_int(state_folder_rename(st, 999999, "X", NULL), 1,
	       "rename missing id: 1");
	f.id = 999999;
	is_int(state_folder_put(st, &f), 1, "update missing id: 1");
	state_folder_release(&f);

	is_int(state_folder_delete(st, id), 0, "delete");
	is_int(state_folder_get_id(st, id, &g), 1, "gone");
	is_int(state_folder_delete(st, id), 0, "delete again is fine");
}

static void fill_msg(struct state_msg *m, uint32_t uid, const char *base)
{
	memset(m, 0, sizeof(*m));
	m->uid = uid;
	m->base = xstrdup(base);
	m->flags = MF_SEEN | MF_FLAGGED;
	m->size = 1234;
	m->msgid = xasprintf("<%u@example.org>", uid);
	memset(m->hhash, (int)uid, 16);
	m->have_hhash = true;
}

static void test_messages(struct state *st)
{
	struct state_msg m, *arr;
	size_t n;
	int64_t a, b, fid;
	int r;

	a = add_folder(st, "Msgs/A");
	b = add_folder(st, "Msgs/B");
	ok(a > 0 && b > 0, "two folders");
	fill_msg(&m, 3, "1700000000.M1P1.host");
	m.emailid = xstrdup("M6d99ac3275bb4e");
	is_int(state_msg_put(st, a, &m), 0, "put uid 3");
	state_msg_release(&m);
	fill_msg(&m, 1, "1700000000.M2P1.host");
	m.msgid = (free(m.msgid), NULL);
	m.have_hhash = false;
	m.size = UINT64_C(18446744073709551615);
	is_int(state_msg_put(st, a, &m), 0, "put uid 1 (no msgid, no hash)");
	state_msg_release(&m);
	fill_msg(&m, 2, "1700000000.M3P1.host");
	is_int(state_msg_put(st, a, &m), 0, "put uid 2");
	m.flags = MF_DRAFT;
	is_int(state_msg_put(st, a, &m), 0, "put uid 2 again replaces");
	state_msg_release(&m);

	is_int(state_msgs_load(st, a, &arr, &n), 0, "load");
	is_int(n, 3, "three pairs");
	if (n == 3) {
		ok(arr[0].uid == 1 && arr[1].uid == 2 && arr[2].uid == 3,
		   "sorted by uid");
		is_str(arr[0].base, "1700000000.M2P1.host", "base");
		ok(arr[0].msgid == NULL && !arr[0].have_hhash &&
		   arr[0].emailid == NULL, "NULLs round-trip");
		ok(arr[0].size == UINT64_C(18446744073709551615),
		   "uint64 size round-trips");
		is_int(arr[1].flags, MF_DRAFT, "replaced flags");
		is_str(arr[2].msgid, "<3@example.org>", "msgid");
		is_str(arr[2].emailid, "M6d99ac3275bb4e", "emailid");
		ok(arr[2].have_hhash && arr[2].hhash[0] == 3 &&
		   arr[2].hhash[15] == 3, "hhash");
		is_int(arr[2].flags, MF_SEEN | MF_FLAGGED, "flags");
	}
	state_msgs_free(arr, n);
	is_int(state_msgs_count(st, a, &n), 0, "count");
	is_int(n, 3, "count is 3");

	is_int(state_msg_set_flags(st, a, 3, MF_ANSWERED), 0, "set flags");
	is_int(state_msg_get(st, a, 3, &m), 0, "get");
	is_int(m.flags, MF_ANSWERED, "flags set");
	state_msg_release(&m);
	is_int(state_msg_set_flags(st, a, 77, 0), 1, "set flags, no pair: 1");
	ok(has(state_error(st), "uid 77"), "names the uid: %s",
	   state_error(st));
	is_int(state_msg_set_base(st, a, 3, "renamed.base"), 0, "set base");
	is_int(state_msg_get(st, a, 3, &m), 0, "get");
	is_str(m.base, "renamed.base", "base set");
	state_msg_release(&m);
	is_int(state_msg_set_base(st, a, 77, "x"), 1, "set base, no pair: 1");
	ok(state_msg_set_base(st, a, 3, "1700000000.M2P1.host") == -1 &&
	   has(state_error(st), "UNIQUE"),
	   "a base pairs with one uid per folder");

	is_int(state_msg_find_base(st, a, "renamed.base", &fid, &m), 0,
	       "find base in folder");
	ok(fid == a && m.uid == 3, "right pair");
	state_msg_release(&m);
	is_int(state_msg_find_base(st, b, "renamed.base", &fid, &m), 1,
	       "not in the other folder");
	ok(m.base == NULL, "m zeroed");
	is_int(state_msg_find_base(st, 0, "renamed.base", &fid, NULL), 0,
	       "find base in any folder");
	is_int(fid, a, "folder id returned");
	is_int(state_msg_find_base(st, 0, "nowhere", NULL, NULL), 1,
	       "unknown base: 1");

	is_int(state_msg_move(st, a, 3, b, 500), 0, "move pair");
	is_int(state_msg_get(st, a, 3, NULL), 1, "gone from source");
	is_int(state_msg_get(st, b, 500, &m), 0, "in target");
	ok(has(m.base, "renamed.base") && m.flags == MF_ANSWERED &&
	   has(m.emailid, "M6d99"), "fields kept");
	state_msg_release(&m);
	is_int(state_msg_find_base(st, 0, "renamed.base", &fid, NULL), 0,
	       "find after move");
	is_int(fid, b, "now in B");
	is_int(state_msg_move(st, a, 3, b, 501), 1, "move again: 1");
	fill_msg(&m, 9, "other");
	is_int(state_msg_put(st, b, &m), 0, "put B/9");
	state_msg_release(&m);
	ok(state_msg_move(st, a, 2, b, 9) == -1, "move onto a pair fails");

	is_int(state_msg_delete(st, a, 2), 0, "delete");
	is_int(state_msg_get(st, a, 2, NULL), 1, "deleted");
	is_int(state_msg_delete(st, a, 2), 0, "delete again is fine");
	is_int(state_msgs_delete_all(st, b), 0, "delete all");
	is_int(state_msgs_count(st, b, &n), 0, "count");
	is_int(n, 0, "B empty");
	is_int(state_msgs_load(st, b, &arr, &n), 0, "load empty");
	ok(arr == NULL && n == 0, "NULL, 0");

	fill_msg(&m, 1, "x");
	r = state_msg_put(st, 987654, &m);
	ok(r == -1 && has(state_error(st), "FOREIGN KEY"),
	   "pair in a missing folder refused: %s", state_error(st));
	m.uid = 0;
	ok(state_msg_put(st, a, &m) == -1, "uid 0 refused");
	state_msg_release(&m);
}

struct seen_ids {
	unsigned n;
	int64_t fid[4];
	uint32_t uid[4];
};

static int seen_id(void *ctx, int64_t folder_id, const struct state_msg *m)
{
	struct seen_ids *s = ctx;

	if (s->n < 4) {
		s->fid[s->n] = folder_id;
		s->uid[s->n] = m->uid;
	}
	s->n++;
	return 0;
}

/* The server's identity of a message finds its pairs in every folder; it
 * is filled in only where a pair has none. */
static void test_emailid(struct state *st)
{
	struct state_msg m, g;
	struct seen_ids s = { 0 };
	int64_t a = add_folder(st, "Eid/A"), b = add_folder(st, "Eid/B");

	fill_msg(&m, 5, "1700000000.M5P1.eid");
	m.emailid = xstrdup("gm:1780000000000000001");
	is_int(state_msg_put(st, a, &m), 0, "emailid: put in A");
	state_msg_release(&m);
	fill_msg(&m, 9, "1700000000.M9P1.eid");
	is_int(state_msg_put(st, b, &m), 0, "emailid: put in B without one");
	state_msg_release(&m);
	is_int(state_msgs_each_emailid(st, "gm:1780000000000000001", seen_id,
				       &s), 0, "emailid: look up");
	ok(s.n == 1 && s.fid[0] == a && s.uid[0] == 5,
	   "emailid: only the pair that has it (%u)", s.n);
	is_int(state_msg_set_emailid(st, b, 9, "gm:1780000000000000001"), 0,
	       "emailid: set on B's pair");
	is_int(state_msg_set_emailid(st, a, 5, "gm:2"), 0,
	       "emailid: set where one is: no error");
	is_int(state_msg_set_emailid(st, b, 99, "gm:3"), 0,
	       "emailid: set on no pair: no error");
	memset(&s, 0, sizeof(s));
	is_int(state_msgs_each_emailid(st, "gm:1780000000000000001", seen_id,
				       &s), 0, "emailid: look up again");
	ok(s.n == 2 && s.fid[0] == a && s.uid[0] == 5 && s.fid[1] == b &&
	   s.uid[1] == 9, "emailid: both pairs, by folder (%u)", s.n);
	is_int(state_msg_get(st, a, 5, &g), 0, "emailid: get A's pair");
	is_str(g.emailid, "gm:1780000000000000001", "emailid: not overwritten");
	state_msg_release(&g);
}

static void test_journal(struct state *st)
{
	struct journal_entry e = { 0 }, e2 = { 0 }, *arr;
	size_t n;
	int64_t a, b;

	a = add_folder(st, "J/A");
	b = add_folder(st, "J/B");
	e.folder_id = a;
	e.op = J_APPEND;
	e.base = xstrdup("1700000000.M9P9.host");
	e.aux = 1234;
	e.flags = MF_SEEN;
	e.size = 4321;
	e.msgid = xstrdup("<j@x>");
	memset(e.hhash, 0xab, 16);
	e.have_hhash = true;
	is_int(state_journal_add(st, &e), 0, "add");
	ok(e.id > 0 && e.created > 0, "id and created set");
	e2.folder_id = b;
	e2.op = J_MOVE_SERVER;
	e2.uid = 7;
	e2.aux = a;
	e2.aux_uid = 8;
	e2.created = 5;
	is_int(state_journal_add(st, &e2), 0, "add second");
	ok(e2.id > e.id && e2.created == 5, "ordered ids, given created");

	is_int(state_journal_list(st, 0, &arr, &n), 0, "list all");
	is_int(n, 2, "two");
	if (n == 2) {
		ok(arr[0].id == e.id && arr[0].op == J_APPEND &&
		   arr[0].folder_id == a && arr[0].aux == 1234 &&
		   arr[0].flags == MF_SEEN && arr[0].size == 4321 &&
		   arr[0].uid == 0 && arr[0].have_hhash &&
		   arr[0].hhash[7] == 0xab && arr[0].created == e.created,
		   "first entry round-trips");
		is_str(arr[0].base, "1700000000.M9P9.host", "base");
		is_str(arr[0].msgid, "<j@x>", "msgid");
		ok(arr[1].op == J_MOVE_SERVER && arr[1].uid == 7 &&
		   arr[1].aux_uid == 8 && arr[1].base == NULL &&
		   arr[1].msgid == NULL && !arr[1].have_hhash,
		   "second entry round-trips");
	}
	state_journal_free(arr, n);
	is_int(state_journal_list(st, b, &arr, &n), 0, "list one folder");
	ok(n == 1 && arr[0].id == e2.id, "only its entry");
	state_journal_free(arr, n);

	e.uid = 55;
	e.aux_uid = 56;
	e.have_hhash = false;
	is_int(state_journal_update(st, &e), 0, "update");
	is_int(state_journal_list(st, a, &arr, &n), 0, "list");
	ok(n == 1 && arr[0].uid == 55 && arr[0].aux_uid == 56 &&
	   !arr[0].have_hhash && arr[0].created == e.created,
	   "update stored, created kept");
	state_journal_free(arr, n);

	is_int(state_journal_remove(st, e.id), 0, "remove");
	is_int(state_journal_remove(st, e.id), 0, "remove again is fine");
	is_int(state_journal_update(st, &e), 1, "update removed entry: 1");
	is_int(state_journal_list(st, a, &arr, &n), 0, "list");
	is_int(n, 0, "empty");
	state_journal_free(arr, n);
	journal_entry_release(&e);

	e.op = J_EXPUNGE;
	is_int(state_journal_add(st, &e), 0, "entry with folder 0");
	is_int(state_journal_list(st, 0, &arr, &n), 0, "list all");
	ok(n == 2 && arr[1].folder_id == 0, "folder 0 kept as 0");
	state_journal_free(arr, n);
	is_int(state_journal_remove(st, e.id), 0, "remove it");
	{
		/* the removed entry had the highest id: a plain rowid would
		 * give its id to the next entry */
		int64_t old_id = e.id;

		is_int(state_journal_add(st, &e), 0, "add after removing the last");
		ok(e.id > old_id, "a removed entry's id is not handed out again "
		   "(%lld after %lld)", (long long)e.id, (long long)old_id);
		is_int(state_journal_remove(st, e.id), 0, "remove that too");
	}
	e.op = 0;
	ok(state_journal_add(st, &e) == -1, "op 0 refused");
	e.op = J_COPY;
	e.folder_id = 31337;
	ok(state_journal_add(st, &e) == -1, "missing folder refused");
	journal_entry_release(&e);
	journal_entry_release(&e2);
	is_int(state_folder_delete(st, b), 0, "delete B");
	is_int(state_journal_list(st, 0, &arr, &n), 0, "list");
	is_int(n, 0, "B's entry went with it");
	state_journal_free(arr, n);
	is_int(state_folder_delete(st, a), 0, "delete A");
}

static void test_cascade_and_txn(struct state *st)
{
	struct state_msg m;
	struct journal_entry e = { 0 }, *jarr;
	struct state_folder f;
	size_t n;
	int64_t c;
	int i, r, okc = 0;

	c = add_folder(st, "Cascade");
	is_int(state_begin(st), 0, "begin");
	ok(state_in_transaction(st), "in transaction");
	r = state_begin(st);
	ok(r == -1 && has(state_error(st), "within a transaction"),
	   "no nesting: %s", state_error(st));
	for (i = 1; i <= 10; i++) {
		char base[32];

		snprintf(base, sizeof(base), "c%d", i);
		fill_msg(&m, (uint32_t)i, base);
		okc += state_msg_put(st, c, &m) == 0;
		state_msg_release(&m);
	}
	is_int(okc, 10, "ten pairs");
	e.folder_id = c;
	e.op = J_DOWNLOAD;
	e.uid = 4;
	is_int(state_journal_add(st, &e), 0, "journal entry");
	is_int(state_commit(st), 0, "commit");
	ok(!state_in_transaction(st), "not in transaction");
	is_int(state_rollback(st), 0, "rollback without transaction is 0");

	is_int(state_begin(st), 0, "begin");
	is_int(state_folder_delete(st, c), 0, "delete folder");
	is_int(state_msgs_count(st, c, &n), 0, "count");
	is_int(n, 0, "its pairs went with it");
	is_int(state_journal_list(st, c, &jarr, &n), 0, "journal");
	is_int(n, 0, "its journal went with it");
	is_int(state_rollback(st), 0, "rollback");
	is_int(state_folder_get_id(st, c, &f), 0, "folder back");
	state_folder_release(&f);
	is_int(state_msgs_count(st, c, &n), 0, "count");
	is_int(n, 10, "pairs back after rollback");
	is_int(state_folder_delete(st, c), 0, "delete for real");
	is_int(state_msgs_count(st, c, &n), 0, "count");
	is_int(n, 0, "cascade");
	is_int(state_journal_list(st, 0, &jarr, &n), 0, "journal");
	is_int(n, 0, "journal cascade");
	is_int(state_check(st), 0, "quick_check ok");
}

static void test_migration(void)
{
	struct state *st = NULL;
	int r;
	char *dir, *path, *err = NULL;

	dir = xasprintf("%s/mig", tmpdir);
	ok(mkdir(dir, 0700) == 0, "mkdir");

	path = xasprintf("%s/v0.db", dir);
	ok(raw_exec(path, "PRAGMA user_version = 0") == 0, "v0 db, no tables");
	st = open_ok(dir, "v0");
	ok(st != NULL, "v0 opened");
	state_close(&st);
	is_int(raw_int(path, "PRAGMA user_version"), STATE_SCHEMA_VERSION,
	       "upgraded to current");
	is_int(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE "
		       "type = 'table' AND name IN ('folders', 'messages', "
		       "'journal')"), 3, "tables created");
	free(path);

	/* version 3: journal ids were plain rowids */
	path = xasprintf("%s/v3.db", dir);
	st = open_ok(dir, "v3");
	ok(st != NULL && add_folder(st, "INBOX") > 0, "v3: a database");
	state_close(&st);
	ok(raw_exec(path,
		    "DROP TABLE journal;"
		    "DROP INDEX messages_emailid;"
		    "CREATE TABLE journal (id INTEGER PRIMARY KEY,"
		    " folder_id INTEGER REFERENCES folders(id) ON DELETE CASCADE,"
		    " op INTEGER NOT NULL CHECK (op > 0),"
		    " uid INTEGER NOT NULL DEFAULT 0, base TEXT,"
		    " aux INTEGER NOT NULL DEFAULT 0,"
		    " aux_uid INTEGER NOT NULL DEFAULT 0,"
		    " flags INTEGER NOT NULL DEFAULT 0,"
		    " size INTEGER NOT NULL DEFAULT 0, msgid TEXT,"
		    " hhash BLOB CHECK (hhash IS NULL OR length(hhash) = 16),"
		    " created INTEGER NOT NULL);"
		    "CREATE INDEX journal_folder ON journal(folder_id, id);"
		    "INSERT INTO journal (id, folder_id, op, uid, created)"
		    " VALUES (7, 1, 1, 42, 1700000000);"
		    "PRAGMA user_version = 3") == 0, "v3: journal as version 3 had it");
	st = open_ok(dir, "v3");
	ok(st != NULL, "v3 opened");
	if (st != NULL) {
		struct journal_entry *arr = NULL, e = { 0 };
		size_t n = 0;

		is_int(state_journal_list(st, 0, &arr, &n), 0, "v3: list");
		ok(n == 1 && arr[0].id == 7 && arr[0].uid == 42 &&
		   arr[0].folder_id == 1 && arr[0].created == 1700000000,
		   "v3: the entry survives the upgrade with its id");
		state_journal_free(arr, n);
		is_int(state_journal_remove(st, 7), 0, "v3: remove it");
		e.folder_id = 1;
		e.op = J_DOWNLOAD;
		e.uid = 43;
		is_int(state_journal_add(st, &e), 0, "v3: add one");
		ok(e.id > 7, "v3: its id is new (%lld)", (long long)e.id);
		journal_entry_release(&e);
		state_close(&st);
	}
	is_int(raw_int(path, "PRAGMA user_version"), STATE_SCHEMA_VERSION,
	       "v3: upgraded to current");
	is_int(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE "
		       "name IN ('journal', 'journal_folder', 'journal_v4')"), 2,
	       "v3: journal and its index, no left-over copy");
	is_int(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE "
		       "name = 'messages_emailid'"), 1,
	       "v3: the emailid index of version 5");
	free(path);

	path = xasprintf("%s/new.db", dir);
	ok(raw_exec(path, "CREATE TABLE x(a); PRAGMA user_version = 999") == 0,
	   "v999 db");
	ok(state_open(dir, "new", &st, &err) == -1 && st == NULL,
	   "v999 refused");
	ok(has(err, "newer twinbox") && has(err, "new.db") && has(err, "999"),
	   "clear message: %s", err);
	free(err);
	is_int(raw_int(path, "PRAGMA user_version"), 999, "left alone");
	free(path);

	path = xasprintf("%s/other.db", dir);
	ok(raw_exec(path, "CREATE TABLE t(a)") == 0, "other program's db");
	r = state_open(dir, "other", &st, &err);
	ok(r == -1 && has(err, "not a twinbox state database"),
	   "refused: %s", err);
	free(err);
	free(path);

	path = xasprintf("%s/app.db", dir);
	ok(raw_exec(path, "PRAGMA application_id = 7; "
		    "PRAGMA user_version = 1") == 0, "foreign application_id");
	r = state_open(dir, "app", &st, &err);
	ok(r == -1 && has(err, "application_id"), "refused: %s", err);
	free(err);
	free(path);
	free(dir);
}

static void test_corrupt(void)
{
	struct state *st = NULL;
	struct state_msg m, *arr;
	char *dir, *path, *err = NULL, buf[4096];
	unsigned seed = 12345;
	size_t i, n;
	int fd, r, okc = 0;
	int64_t id;

	dir = xasprintf("%s/bad", tmpdir);
	ok(mkdir(dir, 0700) == 0, "mkdir");
	path = xasprintf("%s/rand.db", dir);
	for (i = 0; i < sizeof(buf); i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (char)(seed >> 16);
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ok(fd >= 0 && write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf),
	   "random file");
	close(fd);
	ok(state_open(dir, "rand", &st, &err) == -1 && st == NULL,
	   "random bytes refused");
	ok(has(err, "rand.db") && has(err, "not a database"),
	   "clear message: %s", err);
	free(err);
	free(path);

	/* A real database with damaged pages in the middle. */
	path = xasprintf("%s/dmg.db", dir);
	st = open_ok(dir, "dmg");
	id = add_folder(st, "INBOX");
	ok(state_begin(st) == 0, "begin");
	for (i = 1; i <= 2000; i++) {
		char base[40];

		snprintf(base, sizeof(base), "1700000000.M%zuP1.host", i);
		fill_msg(&m, (uint32_t)i, base);
		okc += state_msg_put(st, id, &m) == 0;
		state_msg_release(&m);
	}
	ok(okc == 2000 && state_commit(st) == 0, "2000 pairs");
	state_close(&st);
	fd = open(path, O_WRONLY);
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(0x5a ^ i);
	ok(fd >= 0 && pwrite(fd, buf, sizeof(buf), 3 * 4096) ==
	   (ssize_t)sizeof(buf) && pwrite(fd, buf, sizeof(buf), 6 * 4096) ==
	   (ssize_t)sizeof(buf), "damage pages");
	close(fd);
	r = state_open(dir, "dmg", &st, &err);
	if (r < 0) {
		ok(has(err, "dmg.db"), "damaged db refused at open: %s", err);
		free(err);
	} else {
		r = state_msgs_load(st, id, &arr, &n);
		if (r == 0)
			state_msgs_free(arr, n);
		ok(r == -1 && has(state_error(st), "dmg.db") &&
		   has(state_error(st), "malformed"),
		   "damaged db: load fails cleanly: %s", state_error(st));
		r = state_check(st);
		ok(r == -1, "quick_check finds it: %s", state_error(st));
		state_close(&st);
	}
	free(path);
	free(dir);
}

struct holder {
	const char *path;
	int hold_ms;
	int held;
};

static pthread_mutex_t h_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t h_cond = PTHREAD_COND_INITIALIZER;

/* Take the database's write lock on a connection of its own, tell the
 * test, hold it for hold_ms, let go. */
static void *hold_lock(void *arg)
{
	struct holder *h = arg;
	struct timespec ts = { 0, (long)h->hold_ms * 1000000L };
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open(h->path, &db);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	pthread_mutex_lock(&h_lock);
	h->held = 1;
	pthread_cond_signal(&h_cond);
	pthread_mutex_unlock(&h_lock);
	if (rc == SQLITE_OK) {
		nanosleep(&ts, NULL);
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	sqlite3_close(db);
	return NULL;
}

static void test_busy(void)
{
	struct state *st, *st2;
	sqlite3 *db;
	char *dir, *path;
	double t0, t1;
	int r;

	dir = xasprintf("%s/busy", tmpdir);
	st = open_ok(dir, "acct");
	ok(st != NULL, "open");
	if (st == NULL) {
		free(dir);
		return;
	}
	path = xasprintf("%s/acct.db", dir);
	ok(sqlite3_open(path, &db) == SQLITE_OK &&
	   sqlite3_exec(db, "BEGIN EXCLUSIVE; CREATE TABLE hold(a);", NULL,
			NULL, NULL) == SQLITE_OK, "other connection holds lock");
	state_set_busy_timeout(st, 200);
	t0 = now_ms();
	r = state_begin(st);
	t1 = now_ms();
	ok(r == -1 && has(state_error(st), "locked") &&
	   has(state_error(st), "acct.db") &&
	   has(state_error(st), "sqlite code 5"),
	   "begin fails clearly: %s", state_error(st));
	ok(t1 - t0 >= 150 && t1 - t0 < 5000, "after the busy timeout (%.0f ms)",
	   t1 - t0);
	r = add_folder(st, "X") > 0;
	ok(!r && has(state_error(st), "locked"), "write fails clearly");
	/* Opening a current database only reads, so it does not wait. */
	t0 = now_ms();
	st2 = open_ok(dir, "acct");
	t1 = now_ms();
	ok(st2 != NULL && t1 - t0 < 5000,
	   "open while another holds the write lock (%.0f ms)", t1 - t0);
	if (st2 != NULL) {
		struct state_folder *arr;
		size_t n;

		is_int(state_folder_list(st2, &arr, &n), 0,
		       "and read while it is held");
		state_folders_free(arr, n);
	}
	state_close(&st2);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	ok(add_folder(st, "X") > 0, "works once the lock is gone");

	/* A lock let go while a call waits is taken, well before the
	 * timeout: another thread holds it for 30 ms. */
	{
		pthread_t th;
		struct holder h = { path, 30, 0 };

		pthread_mutex_lock(&h_lock);
		ok(pthread_create(&th, NULL, hold_lock, &h) == 0,
		   "start a thread that holds the lock");
		while (!h.held)
			pthread_cond_wait(&h_cond, &h_lock);
		pthread_mutex_unlock(&h_lock);
		state_set_busy_timeout(st, 20000);
		t0 = now_ms();
		r = state_begin(st);
		t1 = now_ms();
		ok(r == 0, "begin waits for the lock and takes it: %s",
		   r == 0 ? "ok" : state_error(st));
		ok(t1 - t0 < 10000, "long before the timeout (%.0f ms)",
		   t1 - t0);
		if (r == 0)
			is_int(state_commit(st), 0, "and commits");
		pthread_join(th, NULL);
	}
	state_close(&st);
	free(path);
	free(dir);
}

static void test_lock(void)
{
	char *dir, *path, *err = NULL, c;
	int fd = -1, fd2 = -1, p1[2], p2[2], status;
	pid_t pid;

	dir = xasprintf("%s/lock/dir", tmpdir);
	is_int(state_lock(dir, "acct", &fd, &err), 0, "lock");
	ok(fd >= 0 && err == NULL, "fd set");
	path = xasprintf("%s/acct.lock", dir);
	is_int(file_mode(path), 0600, "lock file 0600");
	is_int(file_mode(dir), 0700, "lock dir 0700");
	is_int(state_lock(dir, "acct", &fd2, &err), 1,
	       "second lock in this process: 1");
	ok(fd2 == -1 && err == NULL, "no fd, no error");
	is_int(state_lock(dir, "other", &fd2, &err), 0,
	       "other account locks independently");
	state_unlock(&fd2);
	state_unlock(&fd);
	ok(fd == -1, "unlock sets -1");
	state_unlock(&fd);

	if (pipe(p1) < 0 || pipe(p2) < 0) {
		ok(0, "pipe");
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int cfd = -1;
		char *cerr = NULL;

		c = state_lock(dir, "acct", &cfd, &cerr) == 0 ? 'L' : 'E';
		if (write(p1[1], &c, 1) != 1 || read(p2[0], &c, 1) < 0)
			_exit(2);
		_exit(0);
	}
	ok(pid > 0 && read(p1[0], &c, 1) == 1 && c == 'L', "child locked");
	is_int(state_lock(dir, "acct", &fd, &err), 1,
	       "held by another process: 1");
	ok(fd == -1 && err == NULL, "no fd, no error");
	c = 'x';
	if (write(p2[1], &c, 1) != 1)
		ok(0, "pipe write");
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child done");
	is_int(state_lock(dir, "acct", &fd, &err), 0,
	       "lock free after the holder exits");
	state_unlock(&fd);
	close(p1[0]);
	close(p1[1]);
	close(p2[0]);
	close(p2[1]);
	ok(state_lock(dir, "a/b", &fd, &err) == -1 && err != NULL,
	   "bad account refused");
	free(err);
	free(path);
	free(dir);
}

static void test_perf(void)
{
	struct state *st;
	struct state_msg m, *arr;
	size_t i, n = 0;
	double t0, t1, t2, t2b, t3;
	int64_t id;
	int okc = 0;
	char base[64], msgid[64], *dir, line[160];

	dir = xasprintf("%s/perf", tmpdir);
	st = open_ok(dir, "acct");
	ok(st != NULL, "open");
	if (st == NULL) {
		free(dir);
		return;
	}
	id = add_folder(st, "INBOX");
	t0 = now_ms();
	ok(state_begin(st) == 0, "begin");
	memset(&m, 0, sizeof(m));
	m.base = base;
	m.msgid = msgid;
	m.have_hhash = true;
	for (i = 1; i <= 100000; i++) {
		snprintf(base, sizeof(base), "1700000000.M%zuP4242Q%zu.host",
			 i * 7, i);
		snprintf(msgid, sizeof(msgid), "<%zu.abcdef@example.org>", i);
		m.uid = (uint32_t)i;
		m.flags = (unsigned)(i & MF_ALL);
		m.size = 1000 + i;
		memcpy(m.hhash, &i, sizeof(i));
		okc += state_msg_put(st, id, &m) == 0;
	}
	ok(state_commit(st) == 0, "commit");
	t1 = now_ms();
	is_int(okc, 100000, "100k puts");
	ok(state_msgs_load(st, id, &arr, &n) == 0, "load");
	t2 = now_ms();
	is_int(n, 100000, "100k loaded");
	if (n == 100000)
		ok(arr[99999].uid == 100000 && arr[0].uid == 1 &&
		   arr[500].size == 1501, "content");
	state_msgs_free(arr, n);
	t2b = now_ms();
	for (i = 1, okc = 0; i <= 100000; i += 100) {
		snprintf(base, sizeof(base), "1700000000.M%zuP4242Q%zu.host",
			 i * 7, i);
		okc += state_msg_find_base(st, 0, base, NULL, NULL) == 0;
	}
	t3 = now_ms();
	is_int(okc, 1000, "1000 find_base in 100k");
	snprintf(line, sizeof(line), "perf: insert 100k in one transaction "
		 "%.0f ms, load 100k %.0f ms, free %.0f ms, 1000 find_base "
		 "%.1f ms", t1 - t0, t2 - t1, t2b - t2, t3 - t2b);
	diag(line);
	state_close(&st);
	free(dir);
}

static void rm_rf(const char *path)
{
	char *cmd = xasprintf("rm -rf '%s'", path);

	if (system(cmd) != 0)
		printf("# could not remove %s\n", path);
	free(cmd);
}

int main(void)
{
	struct state *st;
	char *dir;

	if (mkdtemp(tmpdir) == NULL) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	test_open();
	test_strict_umask();
	dir = xasprintf("%s/a/b/state", tmpdir);
	st = open_ok(dir, "acct");
	if (st != NULL) {
		test_folders(st);
		test_messages(st);
		test_emailid(st);
		test_journal(st);
		test_cascade_and_txn(st);
		state_close(&st);
	}
	free(dir);
	test_migration();
	test_corrupt();
	test_busy();
	test_lock();
	test_perf();
	rm_rf(tmpdir);
	return tap_done();
}
