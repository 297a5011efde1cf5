/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * state-private.h - what state.c, schema.c and lock.c share; not for other
 * modules.
 */
#ifndef TB_STATE_PRIVATE_H
#define TB_STATE_PRIVATE_H

#include "common.h"
#include "state/state.h"

#include <sqlite3.h>

/* Prepared statements cached per connection; SQL in state.c. */
enum state_stmt {
	SS_FOLDER_LIST,
	SS_FOLDER_GET,
	SS_FOLDER_GET_ID,
	SS_FOLDER_INSERT,
	SS_FOLDER_UPDATE,
	SS_FOLDER_RENAME,
	SS_FOLDER_DELETE,
	SS_MSG_LOAD,
	SS_MSG_COUNT,
	SS_MSG_BASES,
	SS_MSG_KNOWN_CONTENT,
	SS_MSG_BY_CONTENT,
	SS_MSG_BY_EMAILID,
	SS_MSG_SET_EMAILID,
	SS_MSG_GET,
	SS_MSG_PUT,
	SS_MSG_SET_FLAGS,
	SS_MSG_SET_BASE,
	SS_MSG_DELETE,
	SS_MSG_DELETE_ALL,
	SS_MSG_FIND_BASE,
	SS_MSG_FIND_BASE_ANY,
	SS_MSG_MOVE,
	SS_JOURNAL_ADD,
	SS_JOURNAL_UPDATE,
	SS_JOURNAL_REMOVE,
	SS_JOURNAL_LIST,
	SS_JOURNAL_LIST_ALL,
	SS_COUNT
};

struct state {
	sqlite3 *db;
	char *path;                       /* owned: <dir>/<account>.db */
	char *error;                      /* owned: last error or NULL */
	sqlite3_stmt *stmts[SS_COUNT];    /* owned, prepared on first use */
	int busy_ms;                      /* how long to wait for a lock */
	int64_t busy_since_ns;            /* when the current wait began */
};

/* "PATH: what: sqlite message (sqlite code N/extended M)", from the
   connection's current error; call it before anything else touches db. */
void state_set_sqlite_error(struct state *st, const char *fmt, ...)
	ATTR_PRINTF(2, 3);
/* "PATH: what", for errors that are not SQLite's. */
void state_set_error(struct state *st, const char *fmt, ...)
	ATTR_PRINTF(2, 3);

/* Run SQL with no result rows (DDL, PRAGMA settings); -1 with error. */
int state_exec(struct state *st, const char *sql, const char *what);
/* Run a statement returning one integer (PRAGMA user_version ...). */
int state_query_int(struct state *st, const char *sql, int64_t *v_r);

/* schema.c: bring the schema to STATE_SCHEMA_VERSION. */
int state_schema_upgrade(struct state *st);

/* lock.c: account name check and mkdir -p (new components 0700). */
int state_check_account(const char *account, char **error_r);
int state_mkdir_p(const char *dir, char **error_r);

#endif
