/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * state.c - the SQLite state store: connection, errors, transactions,
 * folders, message pairs and the intent journal.
 */
#include "common.h"
#include "state/state-private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- SQL of the cached statements ---- */

#define FOLDER_COLS "id, name, local_path, uidvalidity, uidnext, " \
	"highestmodseq, cur_mtime, new_mtime, last_sync, server_count, " \
	"local_count"
#define MSG_COLS "folder_id, uid, base, flags, size, msgid, hhash, emailid"
#define JOURNAL_COLS "id, folder_id, op, uid, base, aux, aux_uid, flags, " \
	"size, msgid, hhash, created"

static const char *const stmt_sql[SS_COUNT] = {
	[SS_FOLDER_LIST] =
		"SELECT " FOLDER_COLS " FROM folders ORDER BY name",
	[SS_FOLDER_GET] =
		"SELECT " FOLDER_COLS " FROM folders WHERE name = ?1",
	[SS_FOLDER_GET_ID] =
		"SELECT " FOLDER_COLS " FROM folders WHERE id = ?1",
	[SS_FOLDER_INSERT] =
		"INSERT INTO folders (name, local_path, uidvalidity, uidnext,"
		" highestmodseq, cur_mtime, new_mtime, last_sync,"
		" server_count, local_count)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	[SS_FOLDER_UPDATE] =
		"UPDATE folders SET name = ?1, local_path = ?2,"
		" uidvalidity = ?3, uidnext = ?4, highestmodseq = ?5,"
		" cur_mtime = ?6, new_mtime = ?7, last_sync = ?8,"
		" server_count = ?9, local_count = ?10 WHERE id = ?11",
	[SS_FOLDER_RENAME] =
		"UPDATE folders SET name = ?2,"
		" local_path = coalesce(?3, local_path) WHERE id = ?1",
	[SS_FOLDER_DELETE] =
		"DELETE FROM folders WHERE id = ?1",
	[SS_MSG_LOAD] =
		"SELECT " MSG_COLS " FROM messages WHERE folder_id = ?1"
		" ORDER BY uid",
	[SS_MSG_COUNT] =
		"SELECT count(*) FROM messages WHERE folder_id = ?1",
	[SS_MSG_KNOWN_CONTENT] =
		"SELECT 1 FROM messages WHERE hhash = ?1 AND size = ?2"
		" LIMIT 1",
	[SS_MSG_BY_CONTENT] =
		"SELECT " MSG_COLS " FROM messages"
		" WHERE hhash = ?1 AND size = ?2 ORDER BY folder_id, uid",
	[SS_MSG_BY_EMAILID] =
		"SELECT " MSG_COLS " FROM messages"
		" WHERE emailid = ?1 ORDER BY folder_id, uid",
	[SS_MSG_SET_EMAILID] =
		"UPDATE messages SET emailid = ?3"
		" WHERE folder_id = ?1 AND uid = ?2 AND emailid IS NULL",
	[SS_MSG_BASES] =
		"SELECT base, flags FROM messages WHERE folder_id = ?1"
		" ORDER BY base",
	[SS_MSG_GET] =
		"SELECT " MSG_COLS " FROM messages"
		" WHERE folder_id = ?1 AND uid = ?2",
	[SS_MSG_PUT] =
		/* An upsert, not INSERT OR REPLACE: REPLACE would silently
		   delete another uid holding the same base. */
		"INSERT INTO messages (" MSG_COLS ")"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
		" ON CONFLICT (folder_id, uid) DO UPDATE SET"
		" base = excluded.base, flags = excluded.flags,"
		" size = excluded.size, msgid = excluded.msgid,"
		" hhash = excluded.hhash, emailid = excluded.emailid",
	[SS_MSG_SET_FLAGS] =
		"UPDATE messages SET flags = ?3"
		" WHERE folder_id = ?1 AND uid = ?2",
	[SS_MSG_SET_BASE] =
		"UPDATE messages SET base = ?3"
		" WHERE folder_id = ?1 AND uid = ?2",
	[SS_MSG_DELETE] =
		"DELETE FROM messages WHERE folder_id = ?1 AND uid = ?2",
	[SS_MSG_DELETE_ALL] =
		"DELETE FROM messages WHERE folder_id = ?1",
	[SS_MSG_FIND_BASE] =
		"SELECT " MSG_COLS " FROM messages"
		" WHERE base = ?1 AND folder_id = ?2",
	[SS_MSG_FIND_BASE_ANY] =
		"SELECT " MSG_COLS " FROM messages WHERE base = ?1"
		" ORDER BY folder_id LIMIT 1",
	[SS_MSG_MOVE] =
		"UPDATE messages SET folder_id = ?3, uid = ?4"
		" WHERE folder_id = ?1 AND uid = ?2",
	[SS_JOURNAL_ADD] =
		"INSERT INTO journal (folder_id, op, uid, base, aux, aux_uid,"
		" flags, size, msgid, hhash, created)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[SS_JOURNAL_UPDATE] =
		"UPDATE journal SET folder_id = ?1, op = ?2, uid = ?3,"
		" base = ?4, aux = ?5, aux_uid = ?6, flags = ?7, size = ?8,"
		" msgid = ?9, hhash = ?10 WHERE id = ?11",
	[SS_JOURNAL_REMOVE] =
		"DELETE FROM journal WHERE id = ?1",
	[SS_JOURNAL_LIST] =
		"SELECT " JOURNAL_COLS " FROM journal WHERE folder_id = ?1"
		" ORDER BY id",
	[SS_JOURNAL_LIST_ALL] =
		"SELECT " JOURNAL_COLS " FROM journal ORDER BY id",
};

/* ---- errors ---- */

static void state_set_errorv(struct state *st, bool with_sqlite,
			     const char *fmt, va_list ap) ATTR_PRINTF(3, 0);

static void state_set_errorv(struct state *st, bool with_sqlite,
			     const char *fmt, va_list ap)
{
	char *what, *msg;
	int code, ext;

	/* Take code, extended code and a copy of the message first, before
	   any other call can replace them. */
	code = st->db != NULL ? sqlite3_errcode(st->db) : 0;
	ext = st->db != NULL ? sqlite3_extended_errcode(st->db) : 0;
	msg = xstrdup(st->db != NULL ? sqlite3_errmsg(st->db) : "no database");
	if (vasprintf(&what, fmt, ap) < 0)
		BUG("out of memory");
	free(st->error);
	if (!with_sqlite)
		st->error = xasprintf("%s: %s", st->path, what);
	else
		st->error = xasprintf("%s: %s: %s (sqlite code %d/extended %d)"
				      "%s", st->path, what, msg, code, ext,
				      (code == SQLITE_BUSY ||
				       code == SQLITE_LOCKED) ?
				      "; is another twinbox using it?" : "");
	free(what);
	free(msg);
}

void state_set_sqlite_error(struct state *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	state_set_errorv(st, true, fmt, ap);
	va_end(ap);
}

void state_set_error(struct state *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	state_set_errorv(st, false, fmt, ap);
	va_end(ap);
}

const char *state_error(const struct state *st)
{
	if (st == NULL)
		return "no state database";
	return st->error != NULL ? st->error : "no error";
}

const char *state_path(const struct state *st)
{
	return st->path;
}

/* ---- statements ---- */

static sqlite3_stmt *stmt_get(struct state *st, enum state_stmt id)
{
	ASSERT(id < SS_COUNT && stmt_sql[id] != NULL);
	if (st->stmts[id] == NULL &&
	    sqlite3_prepare_v3(st->db, stmt_sql[id], -1,
			       SQLITE_PREPARE_PERSISTENT, &st->stmts[id],
			       NULL) != SQLITE_OK) {
		state_set_sqlite_error(st, "cannot prepare statement %d",
				       (int)id);
		st->stmts[id] = NULL;
		return NULL;
	}
	return st->stmts[id];
}

static void stmt_done(sqlite3_stmt *s)
{
	/* reset() repeats the error of the last step, already reported */
	(void)sqlite3_reset(s);
	(void)sqlite3_clear_bindings(s);
}

/* A binding failed (too big, out of memory): report and reset. */
static int stmt_bind_failed(struct state *st, sqlite3_stmt *s,
			    const char *what)
{
	state_set_sqlite_error(st, "cannot %s (binding values)", what);
	stmt_done(s);
	return -1;
}

/* Step a statement that returns no rows; -1 with error set. */
static int stmt_run(struct state *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		state_set_sqlite_error(st, "cannot %s", what);
		stmt_done(s);
		return -1;
	}
	stmt_done(s);
	return 0;
}

static int bind_text(sqlite3_stmt *s, int i, const char *str)
{
	return sqlite3_bind_text(s, i, str, -1, SQLITE_STATIC);
}

/* hhash blob or NULL */
static int bind_hash(sqlite3_stmt *s, int i, const uint8_t hash[16],
		     bool have)
{
	if (!have)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_blob(s, i, hash, 16, SQLITE_STATIC);
}

/* 0 is "no folder" for journal entries */
static int bind_folder_or_null(sqlite3_stmt *s, int i, int64_t id)
{
	if (id == 0)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_int64(s, i, id);
}

/* A copy of a TEXT column, or NULL for SQL NULL. */
static char *col_strdup(sqlite3_stmt *s, int i)
{
	const unsigned char *t;

	if (sqlite3_column_type(s, i) == SQLITE_NULL)
		return NULL;
	t = sqlite3_column_text(s, i);
	if (t == NULL)
		BUG("out of memory converting a column to text");
	return xstrdup((const char *)t);
}

/* A TEXT column that is NOT NULL in the schema; "" if a foreign writer
   managed NULL anyway, so callers can rely on a string. */
static char *col_strdup_nn(sqlite3_stmt *s, int i)
{
	char *p = col_strdup(s, i);

	return p != NULL ? p : xstrdup("");
}

static bool col_hash(sqlite3_stmt *s, int i, uint8_t hash_r[16])
{
	const void *b;

	memset(hash_r, 0, 16);
	if (sqlite3_column_type(s, i) != SQLITE_BLOB ||
	    sqlite3_column_bytes(s, i) != 16)
		return false;
	b = sqlite3_column_blob(s, i);
	if (b == NULL)
		return false;
	memcpy(hash_r, b, 16);
	return true;
}

int state_exec(struct state *st, const char *sql, const char *what)
{
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		state_set_sqlite_error(st, "%s", what);
		return -1;
	}
	return 0;
}

int state_query_int(struct state *st, const char *sql, int64_t *v_r)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		state_set_sqlite_error(st, "cannot run '%s'", sql);
		return -1;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*v_r = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
		return 0;
	}
	if (rc == SQLITE_DONE)
		state_set_error(st, "'%s' returned nothing", sql);
	else
		state_set_sqlite_error(st, "cannot run '%s'", sql);
	sqlite3_finalize(s);
	return -1;
}

/* ---- open and close ---- */

/* Run a PRAGMA that returns its new value as text and check it. */
static int pragma_expect(struct state *st, const char *sql, const char *want)
{
	sqlite3_stmt *s;
	const unsigned char *v;
	int rc;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		state_set_sqlite_error(st, "cannot open state database");
		return -1;
	}
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		if (rc == SQLITE_DONE)
			state_set_error(st, "'%s' is not supported by this "
					"SQLite", sql);
		else
			state_set_sqlite_error(st, "cannot open state "
					       "database");
		sqlite3_finalize(s);
		return -1;
	}
	v = sqlite3_column_text(s, 0);
	if (v == NULL || sqlite3_stricmp((const char *)v, want) != 0) {
		state_set_error(st, "'%s' gave '%s', not '%s'", sql,
				v != NULL ? (const char *)v : "", want);
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	return 0;
}

/* Create the file 0600 ourselves: SQLite would create it 0644 & ~umask. */
static int state_create_file(struct state *st)
{
	int fd = open(st->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0) {
		if (errno == EEXIST)
			return 0;
		state_set_error(st, "cannot create state database: %s",
				strerror(errno));
		return -1;
	}
	if (fchmod(fd, 0600) < 0) {
		state_set_error(st, "cannot set mode 0600: %s",
				strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* Wait for another connection's lock. SQLite's own handler sleeps 1, 2,
   5, 10, 15, 20, 25 ms and longer between tries; the connections of one
   sync hold the write lock for a millisecond or two at a time, so most of
   such a sleep is spent waiting for nothing (measured: 100 ms and more of
   a worker's 250 ms run). Try again after 50 us, doubling up to 1 ms. */
static int state_busy(void *ctx, int count)
{
	struct state *st = ctx;
	struct timespec ts;
	int64_t now;
	long us;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (count == 0)
		st->busy_since_ns = now;
	if (now - st->busy_since_ns >= (int64_t)st->busy_ms * 1000000)
		return 0;
	us = count < 5 ? 50L << count : 1000L;
	ts.tv_sec = 0;
	ts.tv_nsec = us * 1000;
	(void)nanosleep(&ts, NULL);
	return 1;
}

static int state_setup(struct state *st)
{
	int rc;

	rc = sqlite3_open_v2(st->path, &st->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		if (st->db == NULL)
			BUG("out of memory opening a database");
		state_set_sqlite_error(st, "cannot open state database");
		return -1;
	}
	(void)sqlite3_extended_result_codes(st->db, 1);
	state_set_busy_timeout(st, STATE_BUSY_TIMEOUT_MS);

	/* The first statement reads the file: a file that is not a database
	   is found here. WAL lets a reader (twinbox status, sqlite3) look
	   while a sync writes. */
	if (pragma_expect(st, "PRAGMA journal_mode = WAL", "wal") < 0)
		return -1;
	/* FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on
	   power loss, and the journal's promise ("recorded before done")
	   needs each commit durable before the action it announces. Cost:
	   one fsync of the WAL per commit. */
	if (state_exec(st, "PRAGMA synchronous = FULL",
		       "cannot set synchronous mode") < 0)
		return -1;
	/* 16 MiB of page cache instead of 2: loading or rewriting a folder
	   of 100,000 pairs then stays in memory. */
	if (state_exec(st, "PRAGMA cache_size = -4096",
		       "cannot set cache size") < 0)
		return -1;
	/* ON DELETE CASCADE needs it; per connection, outside transactions */
	if (state_exec(st, "PRAGMA foreign_keys = ON",
		       "cannot enable foreign keys") < 0 ||
	    pragma_expect(st, "PRAGMA foreign_keys", "1") < 0)
		return -1;
	return state_schema_upgrade(st);
}

int state_open(const char *dir, const char *account, struct state **st_r,
	       char **error_r)
{
	struct state *st;

	*st_r = NULL;
	*error_r = NULL;
	if (state_check_account(account, error_r) < 0)
		return -1;
	if (state_mkdir_p(dir, error_r) < 0) {
		char *e = xasprintf("cannot create state directory: %s",
				    *error_r);

		free(*error_r);
		*error_r = e;
		return -1;
	}
	st = xcalloc(1, sizeof(*st));
	st->path = xasprintf("%s/%s.db", dir, account);
	if (state_create_file(st) < 0 || state_setup(st) < 0) {
		*error_r = xstrdup(state_error(st));
		state_close(&st);
		return -1;
	}
	*st_r = st;
	return 0;
}

void state_close(struct state **stp)
{
	struct state *st = *stp;
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < SS_COUNT; i++)
		sqlite3_finalize(st->stmts[i]);
	/* Every statement is finalized, so this cannot be SQLITE_BUSY;
	   an open transaction is rolled back. */
	if (st->db != NULL)
		(void)sqlite3_close(st->db);
	free(st->path);
	free(st->error);
	free(st);
	*stp = NULL;
}

void state_set_busy_timeout(struct state *st, int ms)
{
	st->busy_ms = ms < 0 ? 0 : ms;
	(void)sqlite3_busy_handler(st->db, state_busy, st);
}

/* ---- transactions ---- */

int state_begin(struct state *st)
{
	return state_exec(st, "BEGIN IMMEDIATE", "cannot begin transaction");
}

int state_commit(struct state *st)
{
	return state_exec(st, "COMMIT", "cannot commit");
}

int state_rollback(struct state *st)
{
	if (sqlite3_get_autocommit(st->db))
		return 0;
	return state_exec(st, "ROLLBACK", "cannot roll back");
}

bool state_in_transaction(const struct state *st)
{
	return !sqlite3_get_autocommit(st->db);
}

int state_check(struct state *st)
{
	sqlite3_stmt *s;
	const unsigned char *v;
	int rc;

	if (sqlite3_prepare_v2(st->db, "PRAGMA quick_check", -1, &s, NULL) !=
	    SQLITE_OK) {
		state_set_sqlite_error(st, "cannot check database");
		return -1;
	}
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		state_set_sqlite_error(st, "cannot check database");
		sqlite3_finalize(s);
		return -1;
	}
	v = sqlite3_column_text(s, 0);
	if (v == NULL || strcmp((const char *)v, "ok") != 0) {
		const char *t = v != NULL ? (const char *)v : "?";

		/* The first finding is enough; skip the "*** in database
		   main ***" heading SQLite may put before it. */
		if (strncmp(t, "***", 3) == 0 && strchr(t, '\n') != NULL)
			t = strchr(t, '\n') + 1;
		state_set_error(st, "database is damaged: %.*s",
				(int)strcspn(t, "\n"), t);
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	return 0;
}

/* ---- folders ---- */

void state_folder_release(struct state_folder *f)
{
	free(f->name);
	free(f->local_path);
	memset(f, 0, sizeof(*f));
}

void state_folders_free(struct state_folder *arr, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		state_folder_release(&arr[i]);
	free(arr);
}

static void folder_from_row(sqlite3_stmt *s, struct state_folder *f)
{
	f->id = sqlite3_column_int64(s, 0);
	f->name = col_strdup_nn(s, 1);
	f->local_path = col_strdup_nn(s, 2);
	f->uidvalidity = (uint32_t)sqlite3_column_int64(s, 3);
	f->uidnext = (uint32_t)sqlite3_column_int64(s, 4);
	f->highestmodseq = (uint64_t)sqlite3_column_int64(s, 5);
	f->cur_mtime = sqlite3_column_int64(s, 6);
	f->new_mtime = sqlite3_column_int64(s, 7);
	f->last_sync = sqlite3_column_int64(s, 8);
	f->server_count = (uint32_t)sqlite3_column_int64(s, 9);
	f->local_count = (uint32_t)sqlite3_column_int64(s, 10);
}

int state_folder_list(struct state *st, struct state_folder **arr_r,
		      size_t *n_r)
{
	struct state_folder *arr = NULL;
	size_t n = 0, alloc = 0;
	sqlite3_stmt *s;
	int rc;

	*arr_r = NULL;
	*n_r = 0;
	if ((s = stmt_get(st, SS_FOLDER_LIST)) == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		ALLOC_GROW(arr, n + 1, alloc);
		memset(&arr[n], 0, sizeof(arr[n]));
		folder_from_row(s, &arr[n]);
		n++;
	}
	if (rc != SQLITE_DONE) {
		state_set_sqlite_error(st, "cannot list folders");
		stmt_done(s);
		state_folders_free(arr, n);
		return -1;
	}
	stmt_done(s);
	*arr_r = arr;
	*n_r = n;
	return 0;
}

/* Step a bound single-row folder query. */
static int folder_get_row(struct state *st, sqlite3_stmt *s,
			  struct state_folder *f_r, const char *what)
{
	int rc = sqlite3_step(s);

	memset(f_r, 0, sizeof(*f_r));
	if (rc == SQLITE_ROW) {
		folder_from_row(s, f_r);
		stmt_done(s);
		return 0;
	}
	if (rc == SQLITE_DONE) {
		stmt_done(s);
		state_set_error(st, "%s: no such folder", what);
		return 1;
	}
	state_set_sqlite_error(st, "cannot read %s", what);
	stmt_done(s);
	return -1;
}

int state_folder_get(struct state *st, const char *name,
		     struct state_folder *f_r)
{
	sqlite3_stmt *s;
	char *what;
	int ret;

	memset(f_r, 0, sizeof(*f_r));
	if (name == NULL) {
		state_set_error(st, "cannot read folder: no name");
		return -1;
	}
	if ((s = stmt_get(st, SS_FOLDER_GET)) == NULL)
		return -1;
	if (bind_text(s, 1, name) != SQLITE_OK)
		return stmt_bind_failed(st, s, "read folder");
	what = xasprintf("folder '%s'", name);
	ret = folder_get_row(st, s, f_r, what);
	free(what);
	return ret;
}

int state_folder_get_id(struct state *st, int64_t id,
			struct state_folder *f_r)
{
	sqlite3_stmt *s;
	char *what;
	int ret;

	memset(f_r, 0, sizeof(*f_r));
	if ((s = stmt_get(st, SS_FOLDER_GET_ID)) == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, id) != SQLITE_OK)
		return stmt_bind_failed(st, s, "read folder");
	what = xasprintf("folder id %lld", (long long)id);
	ret = folder_get_row(st, s, f_r, what);
	free(what);
	return ret;
}

int state_folder_put(struct state *st, struct state_folder *f)
{
	sqlite3_stmt *s;
	const char *what = f->id == 0 ? "add folder" : "update folder";

	if (f->name == NULL || f->local_path == NULL) {
		state_set_error(st, "cannot %s: no name or local path", what);
		return -1;
	}
	s = stmt_get(st, f->id == 0 ? SS_FOLDER_INSERT : SS_FOLDER_UPDATE);
	if (s == NULL)
		return -1;
	if (bind_text(s, 1, f->name) != SQLITE_OK ||
	    bind_text(s, 2, f->local_path) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, f->uidvalidity) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 4, f->uidnext) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 5, (sqlite3_int64)f->highestmodseq) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(s, 6, f->cur_mtime) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 7, f->new_mtime) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 8, f->last_sync) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 9, f->server_count) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 10, f->local_count) != SQLITE_OK ||
	    (f->id != 0 && sqlite3_bind_int64(s, 11, f->id) != SQLITE_OK))
		return stmt_bind_failed(st, s, what);
	if (sqlite3_step(s) != SQLITE_DONE) {
		state_set_sqlite_error(st, "cannot %s '%s'", what, f->name);
		stmt_done(s);
		return -1;
	}
	stmt_done(s);
	if (f->id == 0) {
		f->id = sqlite3_last_insert_rowid(st->db);
		return 0;
	}
	if (sqlite3_changes(st->db) == 0) {
		state_set_error(st, "cannot update folder '%s': no folder id "
				"%lld", f->name, (long long)f->id);
		return 1;
	}
	return 0;
}

/* After an UPDATE: 1 with an error if it touched no row. */
static int check_changed(struct state *st, const char *fmt, ...)
	ATTR_PRINTF(2, 3);

static int check_changed(struct state *st, const char *fmt, ...)
{
	va_list ap;

	if (sqlite3_changes(st->db) > 0)
		return 0;
	va_start(ap, fmt);
	state_set_errorv(st, false, fmt, ap);
	va_end(ap);
	return 1;
}

int state_folder_rename(struct state *st, int64_t id, const char *new_name,
			const char *new_local_path)
{
	sqlite3_stmt *s;

	if (new_name == NULL) {
		state_set_error(st, "cannot rename folder id %lld: no name",
				(long long)id);
		return -1;
	}
	if ((s = stmt_get(st, SS_FOLDER_RENAME)) == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, id) != SQLITE_OK ||
	    bind_text(s, 2, new_name) != SQLITE_OK ||
	    bind_text(s, 3, new_local_path) != SQLITE_OK)
		return stmt_bind_failed(st, s, "rename folder");
	if (sqlite3_step(s) != SQLITE_DONE) {
		state_set_sqlite_error(st, "cannot rename folder id %lld to "
				       "'%s'", (long long)id, new_name);
		stmt_done(s);
		return -1;
	}
	stmt_done(s);
	return check_changed(st, "cannot rename folder id %lld: no such "
			     "folder", (long long)id);
}

/* Run a DELETE/UPDATE keyed by one or two integers. */
static int run_keyed(struct state *st, enum state_stmt id, int64_t k1,
		     int64_t k2, int nkeys, const char *what)
{
	sqlite3_stmt *s;

	if ((s = stmt_get(st, id)) == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, k1) != SQLITE_OK ||
	    (nkeys > 1 && sqlite3_bind_int64(s, 2, k2) != SQLITE_OK))
		return stmt_bind_failed(st, s, what);
	return stmt_run(st, s, what);
}

int state_folder_delete(struct state *st, int64_t id)
{
	return run_keyed(st, SS_FOLDER_DELETE, id, 0, 1, "delete folder");
}

/* ---- account facts ---- */

int state_meta_get(struct state *st, const char *key, char **value_r)
{
	sqlite3_stmt *s;
	int rc;

	*value_r = NULL;
	if (sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key = ?1",
			       -1, &s, NULL) != SQLITE_OK) {
		state_set_sqlite_error(st, "cannot read account facts");
		return -1;
	}
	if (sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC) != SQLITE_OK) {
		state_set_sqlite_error(st, "cannot read account facts");
		sqlite3_finalize(s);
		return -1;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(s, 0);

		*value_r = xstrdup(v != NULL ? (const char *)v : "");
		sqlite3_finalize(s);
		return 1;
	}
	if (rc != SQLITE_DONE) {
		state_set_sqlite_error(st, "cannot read account facts");
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	return 0;
}

int state_meta_put(struct state *st, const char *key, const char *value)
{
	sqlite3_stmt *s;

	if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO meta (key, value) "
			       "VALUES (?1, ?2)", -1, &s, NULL) != SQLITE_OK) {
		state_set_sqlite_error(st, "cannot store account facts");
		return -1;
	}
	if (sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_DONE) {
		state_set_sqlite_error(st, "cannot store account facts");
		sqlite3_finalize(s);
		return -1;
	}
	sqlite3_finalize(s);
	return 0;
}

/* ---- messages ---- */

void state_msg_release(struct state_msg *m)
{
	free(m->base);
	free(m->msgid);
	free(m->emailid);
	memset(m, 0, sizeof(*m));
}

void state_msgs_free(struct state_msg *arr, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		state_msg_release(&arr[i]);
	free(arr);
}

/* Columns as in MSG_COLS; returns the folder id. */
static int64_t msg_from_row(sqlite3_stmt *s, struct state_msg *m)
{
	m->uid = (uint32_t)sqlite3_column_int64(s, 1);
	m->base = col_strdup_nn(s, 2);
	m->flags = (unsigned)sqlite3_column_int64(s, 3);
	m->size = (uint64_t)sqlite3_column_int64(s, 4);
	m->msgid = col_strdup(s, 5);
	m->have_hhash = col_hash(s, 6, m->hhash);
	m->emailid = col_strdup(s, 7);
	return sqlite3_column_int64(s, 0);
}

int state_msgs_load(struct state *st, int64_t folder_id,
		    struct state_msg **arr_r, size_t *n_r)
{
	struct state_msg *arr = NULL;
	size_t n = 0, alloc = 0;
	sqlite3_stmt *s;
	int rc;

	*arr_r = NULL;
	*n_r = 0;
	if ((s = stmt_get(st, SS_MSG_LOAD)) == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, folder_id) != SQLITE_OK)
		return stmt_bind_failed(st, s, "load messages");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		ALLOC_GROW(arr, n + 1, alloc);
		memset(&arr[n], 0, sizeof(arr[n]));
		(void)msg_from_row(s, &arr[n]);
		n++;
	}
	if (rc != SQLITE_DONE) {
		state_set_sqlite_error(st, "cannot load messages of folder id "
				       "%lld", (long long)folder_id);
		stmt_done(s);
		state_msgs_free(arr, n);
		return -1;
	}
	stmt_done(s);
	*arr_r = arr;
	*n_r = n;
	return 0;
}

int state_msgs_count(struct state *st, int64_t folder_id, size_t *n_r)
{
	sqlite3_stmt *s;

	*n_r = 0;
	if ((s = stmt_get(st, SS_MSG_COUNT)) == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, folder_id) != SQLITE_OK)
		return stmt_bind_failed(st, s, "count messages");
	if (sqlite3_step(s) != SQLITE_ROW) {
		state_set_sqlite_error(st, "cannot count messages of folder "
				       "id %lld", (long long)folder_id);
		stmt_done(s);
		return -1;
	}
	*n_r = (size_t)sqlite3_column_int64(s, 0);
	stmt_done(s);
	return 0;
}

int state_msg_known_content(struct state *st, const uint8_t hhash[16],
			    uint64_t size)
{
	sqlite3_stmt *s;
	int rc;

	if ((s = stmt_get(st, SS_MSG_KNOWN_CONTENT)) == NULL)
		return -1;
	if (sqlite3_bind_blob(s, 1, hhash, 16, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, (sqlite3_int64)size) != SQLITE_OK)
		return stmt_bind_failed(st, s, "look up a message by content");
	rc = sqlite3_step(s);
	stmt_done(s);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	state_set_sqlite_error(st, "cannot look up a message by content");
	return -1;
}

/* Step a bound messages query, handing each row to cb until it returns
 * nonzero (see state_msgs_each_content()); by: what the lookup is by. */
static int each_msg_row(struct state *st, sqlite3_stmt *s,
			int (*cb)(void *ctx, int64_t folder_id,
				  const struct state_msg *m),
			void *ctx, const char *by)
{
	int rc, r = 0;

	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct state_msg m = { 0 };
		int64_t fid = msg_from_row(s, &m);

		r = cb(ctx, fid, &m);
		state_msg_release(&m);
	}
	if (r == 0 && rc != SQLITE_DONE) {
		state_set_sqlite_error(st, "cannot look up messages by %s", by);
		stmt_done(s);
		return -1;
	}
	stmt_done(s);
	return r;
}

int state_msgs_each_content(struct state *st, const uint8_t hhash[16],
			    uint64_t size,
			    int (*cb)(void *ctx, int64_t folder_id,
				      const struct state_msg *m),
			    void *ctx)
{
	sqlite3_stmt *s;

	if ((s = stmt_get(st, SS_MSG_BY_CONTENT)) == NULL)
		return -1;
	if (sqlite3_bind_blob(s, 1, hhash, 16, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, (sqlite3_int64)size) != SQLITE_OK)
		return stmt_bind_failed(st, s, "look up messages by content");
	return each_msg_row(st, s, cb, ctx, "content");
}

int state_msgs_each_emailid(struct state *st, const char *emailid,
			    int (*cb)(void *ctx, int64_t folder_id,
				      const struct state_msg *m),
			    void *ctx)
{
	sqlite3_stmt *s;

	if ((s = stmt_get(st, SS_MSG_BY_EMAILID)) == NULL)
		return -1;
	if (bind_text(s, 1, emailid) != SQLITE_OK)
		return stmt_bind_failed(st, s, "look up messages by identity");
	return each_msg_row(st, s, cb, ctx, "identity");
}

int state_msg_set_emailid(struct state *st, int64_t folder_id, uint32_t uid,
			  const char *emailid)
{
	sqlite3_stmt *s;

	if ((s = stmt_get(st, SS_MSG_SET_EMAILID)) == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, folder_id) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, uid) != SQLITE_OK ||
	    bind_text(s, 3, emailid) != SQLITE_OK)
		return stmt_bind_failed(st, s, "set the identity");
	return stmt_run(st, s, "set the identity");
}

int state_msgs_each_base(struct state *st, int64_t folder_id,
			 int (*cb)(void *ctx, const char *base, unsigned flags),
			 void *ctx)
{
	sqlite3_stmt *s;
	int rc, r = 0;

	if ((s = stmt_get(st, SS_MSG_BASES)) == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, folder_id) != SQLITE_OK)
		return stmt_bind_failed(st, s, "list message bases");
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *base = (const char *)sqlite3_column_text(s, 0);

		r = cb(ctx, base ? base : "",
		       (unsigned)sqlite3_column_int64(s, 1));
	}
	if (r == 0 && rc != SQLITE_DONE) {
		state_set_sqlite_error(st, "cannot list messages of folder id "
				       "%lld", (long long)folder_id);
		r = -1;
	}
	stmt_done(s);
	return r;
}

int state_msg_put(struct state *st, int64_t folder_id,
		  const struct state_msg *m)
{
	sqlite3_stmt *s;

	if (m->base == NULL || m->uid == 0) {
		state_set_error(st, "cannot store message pair: %s",
				m->uid == 0 ? "uid 0" : "no base");
		return -1;
	}
	if ((s = stmt_get(st, SS_MSG_PUT)) == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, folder_id) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, m->uid) != SQLITE_OK ||
	    bind_text(s, 3, m->base) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 4, m->flags) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 5, (sqlite3_int64)m->size) != SQLITE_OK ||
	    bind_text(s, 6, m->msgid) != SQLITE_OK ||
	    bind_hash(s, 7, m->hhash, m->have_hhash) != SQLITE_OK ||
	    bind_text(s, 8, m->emailid) != SQLITE_OK)
		return stmt_bind_failed(st, s, "store message pair");
	if (sqlite3_step(s) != SQLITE_DONE) {
		state_set_sqlite_error(st, "cannot store message pair (folder "
				       "id %lld, uid %u, base '%s')",
				       (long long)folder_id, m->uid, m->base);
		stmt_done(s);
		return -1;
	}
	stmt_done(s);
	return 0;
}

/* Step a bound single-row message query. */
static int msg_get_row(struct state *st, sqlite3_stmt *s,
		       int64_t *folder_id_r, struct state_msg *m_r,
		       const char *what)
{
	struct state_msg m = { 0 };
	int64_t fid;
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW) {
		fid = msg_from_row(s, &m);
		stmt_done(s);
		if (folder_id_r != NULL)
			*folder_id_r = fid;
		if (m_r != NULL)
			*m_r = m;
		else
			state_msg_release(&m);
		return 0;
	}
	if (rc == SQLITE_DONE) {
		stmt_done(s);
		state_set_error(st, "%s: no such message pair", what);
		return 1;
	}
	state_set_sqlite_error(st, "cannot read %s", what);
	stmt_done(s);
	return -1;
}

int state_msg_get(struct state *st, int64_t folder_id, uint32_t uid,
		  struct state_msg *m_r)
{
	sqlite3_stmt *s;
	char *what;
	int ret;

	if (m_r != NULL)
		memset(m_r, 0, sizeof(*m_r));
	if ((s = stmt_get(st, SS_MSG_GET)) == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, folder_id) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, uid) != SQLITE_OK)
		return stmt_bind_failed(st, s, "read message pair");
	what = xasprintf("folder id %lld uid %u", (long long)folder_id, uid);
	ret = msg_get_row(st, s, NULL, m_r, what);
	free(what);
	return ret;
}

int state_msg_set_flags(struct state *st, int64_t folder_id, uint32_t uid,
			unsigned flags)
{
	sqlite3_stmt *s;

	if ((s = stmt_get(st, SS_MSG_SET_FLAGS)) == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, folder_id) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, uid) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, flags) != SQLITE_OK)
		return stmt_bind_failed(st, s, "set flags");
	if (stmt_run(st, s, "set flags") < 0)
		return -1;
	return check_changed(st, "cannot set flags: no pair with folder id "
			     "%lld uid %u", (long long)folder_id, uid);
}

int state_msg_set_base(struct state *st, int64_t folder_id, uint32_t uid,
		       const char *base)
{
	sqlite3_stmt *s;

	if (base == NULL) {
		state_set_error(st, "cannot set base: no base");
		return -1;
	}
	if ((s = stmt_get(st, SS_MSG_SET_BASE)) == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, folder_id) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, uid) != SQLITE_OK ||
	    bind_text(s, 3, base) != SQLITE_OK)
		return stmt_bind_failed(st, s, "set base");
	if (stmt_run(st, s, "set base") < 0)
		return -1;
	return check_changed(st, "cannot set base: no pair with folder id "
			     "%lld uid %u", (long long)folder_id, uid);
}

int state_msg_delete(struct state *st, int64_t folder_id, uint32_t uid)
{
	return run_keyed(st, SS_MSG_DELETE, folder_id, uid, 2,
			 "delete message pair");
}

int state_msgs_delete_all(struct state *st, int64_t folder_id)
{
	return run_keyed(st, SS_MSG_DELETE_ALL, folder_id, 0, 1,
			 "delete message pairs");
}

int state_msg_find_base(struct state *st, int64_t folder_id, const char *base,
			int64_t *folder_id_r, struct state_msg *m_r)
{
	sqlite3_stmt *s;
	char *what;
	int ret;

	if (m_r != NULL)
		memset(m_r, 0, sizeof(*m_r));
	if (folder_id_r != NULL)
		*folder_id_r = 0;
	if (base == NULL) {
		state_set_error(st, "cannot find message pair: no base");
		return -1;
	}
	s = stmt_get(st, folder_id != 0 ? SS_MSG_FIND_BASE :
		     SS_MSG_FIND_BASE_ANY);
	if (s == NULL)
		return -1;
	if (bind_text(s, 1, base) != SQLITE_OK ||
	    (folder_id != 0 &&
	     sqlite3_bind_int64(s, 2, folder_id) != SQLITE_OK))
		return stmt_bind_failed(st, s, "find message pair");
	what = xasprintf("base '%s'", base);
	ret = msg_get_row(st, s, folder_id_r, m_r, what);
	free(what);
	return ret;
}

int state_msg_move(struct state *st, int64_t from_folder, uint32_t from_uid,
		   int64_t to_folder, uint32_t to_uid)
{
	sqlite3_stmt *s;
	char *what;
	int ret;

	if ((s = stmt_get(st, SS_MSG_MOVE)) == NULL)
		return -1;
	if (sqlite3_bind_int64(s, 1, from_folder) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, from_uid) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, to_folder) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 4, to_uid) != SQLITE_OK)
		return stmt_bind_failed(st, s, "move message pair");
	what = xasprintf("move message pair (folder id %lld uid %u to "
			 "folder id %lld uid %u)", (long long)from_folder,
			 from_uid, (long long)to_folder, to_uid);
	ret = stmt_run(st, s, what);
	if (ret == 0)
		ret = check_changed(st, "cannot %s: no such pair", what);
	free(what);
	return ret;
}

/* ---- journal ---- */

void journal_entry_release(struct journal_entry *e)
{
	free(e->base);
	free(e->msgid);
	memset(e, 0, sizeof(*e));
}

void state_journal_free(struct journal_entry *arr, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		journal_entry_release(&arr[i]);
	free(arr);
}

/* Bind parameters 1..10 shared by add and update. */
static int journal_bind(sqlite3_stmt *s, const struct journal_entry *e)
{
	if (bind_folder_or_null(s, 1, e->folder_id) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 2, (sqlite3_int64)e->op) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 3, e->uid) != SQLITE_OK ||
	    bind_text(s, 4, e->base) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 5, e->aux) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 6, e->aux_uid) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 7, e->flags) != SQLITE_OK ||
	    sqlite3_bind_int64(s, 8, (sqlite3_int64)e->size) != SQLITE_OK ||
	    bind_text(s, 9, e->msgid) != SQLITE_OK ||
	    bind_hash(s, 10, e->hhash, e->have_hhash) != SQLITE_OK)
		return -1;
	return 0;
}

int state_journal_add(struct state *st, struct journal_entry *e)
{
	sqlite3_stmt *s;
	int64_t created = e->created != 0 ? e->created : (int64_t)time(NULL);

	if ((int)e->op <= 0) {
		state_set_error(st, "cannot add journal entry: bad op %d",
				(int)e->op);
		return -1;
	}
	if ((s = stmt_get(st, SS_JOURNAL_ADD)) == NULL)
		return -1;
	if (journal_bind(s, e) < 0 ||
	    sqlite3_bind_int64(s, 11, created) != SQLITE_OK)
		return stmt_bind_failed(st, s, "add journal entry");
	if (stmt_run(st, s, "add journal entry") < 0)
		return -1;
	e->id = sqlite3_last_insert_rowid(st->db);
	e->created = created;
	return 0;
}

int state_journal_update(struct state *st, const struct journal_entry *e)
{
	sqlite3_stmt *s;

	if ((int)e->op <= 0) {
		state_set_error(st, "cannot update journal entry %lld: bad op "
				"%d", (long long)e->id, (int)e->op);
		return -1;
	}
	if ((s = stmt_get(st, SS_JOURNAL_UPDATE)) == NULL)
		return -1;
	if (journal_bind(s, e) < 0 ||
	    sqlite3_bind_int64(s, 11, e->id) != SQLITE_OK)
		return stmt_bind_failed(st, s, "update journal entry");
	if (stmt_run(st, s, "update journal entry") < 0)
		return -1;
	return check_changed(st, "cannot update journal entry %lld: no such "
			     "entry", (long long)e->id);
}

int state_journal_remove(struct state *st, int64_t id)
{
	return run_keyed(st, SS_JOURNAL_REMOVE, id, 0, 1,
			 "remove journal entry");
}

int state_journal_list(struct state *st, int64_t folder_id,
		       struct journal_entry **arr_r, size_t *n_r)
{
	struct journal_entry *arr = NULL, *e;
	size_t n = 0, alloc = 0;
	sqlite3_stmt *s;
	int rc;

	*arr_r = NULL;
	*n_r = 0;
	s = stmt_get(st, folder_id != 0 ? SS_JOURNAL_LIST :
		     SS_JOURNAL_LIST_ALL);
	if (s == NULL)
		return -1;
	if (folder_id != 0 && sqlite3_bind_int64(s, 1, folder_id) != SQLITE_OK)
		return stmt_bind_failed(st, s, "list journal");
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		ALLOC_GROW(arr, n + 1, alloc);
		e = &arr[n++];
		memset(e, 0, sizeof(*e));
		e->id = sqlite3_column_int64(s, 0);
		e->folder_id = sqlite3_column_int64(s, 1); /* NULL -> 0 */
		e->op = (enum journal_op)sqlite3_column_int(s, 2);
		e->uid = (uint32_t)sqlite3_column_int64(s, 3);
		e->base = col_strdup(s, 4);
		e->aux = sqlite3_column_int64(s, 5);
		e->aux_uid = (uint32_t)sqlite3_column_int64(s, 6);
		e->flags = (unsigned)sqlite3_column_int64(s, 7);
		e->size = (uint64_t)sqlite3_column_int64(s, 8);
		e->msgid = col_strdup(s, 9);
		e->have_hhash = col_hash(s, 10, e->hhash);
		e->created = sqlite3_column_int64(s, 11);
	}
	if (rc != SQLITE_DONE) {
		state_set_sqlite_error(st, "cannot list journal");
		stmt_done(s);
		state_journal_free(arr, n);
		return -1;
	}
	stmt_done(s);
	*arr_r = arr;
	*n_r = n;
	return 0;
}
