/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * schema.c - the state database schema and its migrations.
 *
 * The version lives in PRAGMA user_version. Each step below takes the
 * database from version to_version - 1 to to_version; all pending steps and
 * the new user_version are written in one transaction, so a killed upgrade
 * leaves the old version behind. New steps are only ever appended.
 * PRAGMA application_id marks the file as twinbox's, so that a state_dir
 * pointed at some other program's database is refused, not altered.
 */
#include "common.h"
#include "state/state-private.h"

/* "TWBX" */
#define STATE_APPLICATION_ID 0x54574258

struct schema_step {
	int to_version;
	const char *sql;
};

static const struct schema_step schema_steps[] = {
	{ 1,
	  /* uids and counts are IMAP's 32-bit unsigned numbers;
	     highestmodseq and size are uint64 stored by bit pattern. */
	  "CREATE TABLE folders ("
	  " id INTEGER PRIMARY KEY,"
	  " name TEXT NOT NULL UNIQUE,"
	  " local_path TEXT NOT NULL,"
	  " uidvalidity INTEGER NOT NULL DEFAULT 0"
	  "  CHECK (uidvalidity BETWEEN 0 AND 4294967295),"
	  " uidnext INTEGER NOT NULL DEFAULT 0"
	  "  CHECK (uidnext BETWEEN 0 AND 4294967295),"
	  " highestmodseq INTEGER NOT NULL DEFAULT 0,"
	  " cur_mtime INTEGER NOT NULL DEFAULT 0,"
	  " new_mtime INTEGER NOT NULL DEFAULT 0,"
	  " last_sync INTEGER NOT NULL DEFAULT 0,"
	  " server_count INTEGER NOT NULL DEFAULT 0"
	  "  CHECK (server_count BETWEEN 0 AND 4294967295),"
	  " local_count INTEGER NOT NULL DEFAULT 0"
	  "  CHECK (local_count BETWEEN 0 AND 4294967295)"
	  ");"
	  "CREATE TABLE messages ("
	  " folder_id INTEGER NOT NULL"
	  "  REFERENCES folders(id) ON DELETE CASCADE,"
	  " uid INTEGER NOT NULL CHECK (uid BETWEEN 1 AND 4294967295),"
	  " base TEXT NOT NULL,"
	  " flags INTEGER NOT NULL DEFAULT 0,"
	  " size INTEGER NOT NULL DEFAULT 0,"
	  " msgid TEXT,"
	  " hhash BLOB CHECK (hhash IS NULL OR length(hhash) = 16),"
	  " emailid TEXT,"
	  " PRIMARY KEY (folder_id, uid)"
	  ") WITHOUT ROWID;"
	  /* Finds a base in one folder or in all; a base pairs with one
	     uid per folder. */
	  "CREATE UNIQUE INDEX messages_base ON messages(base, folder_id);"
	  "CREATE TABLE journal ("
	  " id INTEGER PRIMARY KEY,"
	  " folder_id INTEGER"
	  "  REFERENCES folders(id) ON DELETE CASCADE,"
	  " op INTEGER NOT NULL CHECK (op > 0),"
	  " uid INTEGER NOT NULL DEFAULT 0,"
	  " base TEXT,"
	  " aux INTEGER NOT NULL DEFAULT 0,"
	  " aux_uid INTEGER NOT NULL DEFAULT 0,"
	  " flags INTEGER NOT NULL DEFAULT 0,"
	  " size INTEGER NOT NULL DEFAULT 0,"
	  " msgid TEXT,"
	  " hhash BLOB CHECK (hhash IS NULL OR length(hhash) = 16),"
	  " created INTEGER NOT NULL"
	  ");"
	  "CREATE INDEX journal_folder ON journal(folder_id, id);"
	  "PRAGMA application_id = 1415004760;" },
	{ 2,
	  /* small facts about the account, e.g. the server's hierarchy
	     delimiter, so a run can talk to the server before LIST */
	  "CREATE TABLE meta ("
	  " key TEXT PRIMARY KEY,"
	  " value TEXT NOT NULL"
	  ") WITHOUT ROWID;" },
	{ 3,
	  /* finds a message by content in any folder, so that a new
	     server message that is no moved known one is downloaded at
	     once (state_msg_known_content) */
	  "CREATE INDEX messages_hhash ON messages(hhash, size)"
	  " WHERE hhash IS NOT NULL;" },
	{ 4,
	  /* journal ids are never handed out twice: a plain rowid key
	     gives a removed last entry's id to the next entry, so a
	     worker that removed its entry a second time could delete
	     another worker's (a copy of the table, as SQLite cannot add
	     AUTOINCREMENT to a column in place) */
	  "CREATE TABLE journal_v4 ("
	  " id INTEGER PRIMARY KEY AUTOINCREMENT,"
	  " folder_id INTEGER"
	  "  REFERENCES folders(id) ON DELETE CASCADE,"
	  " op INTEGER NOT NULL CHECK (op > 0),"
	  " uid INTEGER NOT NULL DEFAULT 0,"
	  " base TEXT,"
	  " aux INTEGER NOT NULL DEFAULT 0,"
	  " aux_uid INTEGER NOT NULL DEFAULT 0,"
	  " flags INTEGER NOT NULL DEFAULT 0,"
	  " size INTEGER NOT NULL DEFAULT 0,"
	  " msgid TEXT,"
	  " hhash BLOB CHECK (hhash IS NULL OR length(hhash) = 16),"
	  " created INTEGER NOT NULL"
	  ");"
	  "INSERT INTO journal_v4 (id, folder_id, op, uid, base, aux,"
	  " aux_uid, flags, size, msgid, hhash, created)"
	  " SELECT id, folder_id, op, uid, base, aux, aux_uid, flags, size,"
	  " msgid, hhash, created FROM journal;"
	  "DROP TABLE journal;"
	  "ALTER TABLE journal_v4 RENAME TO journal;"
	  "CREATE INDEX journal_folder ON journal(folder_id, id);" },
	{ 5,
	  /* finds a message by the server's identity in any folder (a
	     server copy, a Gmail label), as messages_hhash by content */
	  "CREATE INDEX messages_emailid ON messages(emailid)"
	  " WHERE emailid IS NOT NULL;" },
};

/* Keep the header's number and the table in step. */
_Static_assert(N_ELEMENTS(schema_steps) == STATE_SCHEMA_VERSION,
	       "one schema step per version");
_Static_assert(STATE_APPLICATION_ID == 1415004760,
	       "application_id literal in step 1");

static int schema_check_id(struct state *st, int64_t version)
{
	int64_t appid;

	if (state_query_int(st, "PRAGMA application_id", &appid) < 0)
		return -1;
	if (appid == STATE_APPLICATION_ID || (appid == 0 && version == 0))
		return 0;
	state_set_error(st, "not a twinbox state database (application_id "
			"0x%08llx, schema version %lld)",
			(unsigned long long)(uint32_t)appid,
			(long long)version);
	return -1;
}

static int schema_check_newer(struct state *st, int64_t version)
{
	if (version < 0 || version > STATE_SCHEMA_VERSION) {
		state_set_error(st, "state database was written by a newer "
				"twinbox (schema version %lld, this one knows "
				"up to %d)", (long long)version,
				STATE_SCHEMA_VERSION);
		return -1;
	}
	return 0;
}

static int schema_upgrade_locked(struct state *st)
{
	int64_t version, ntables;
	char *sql;
	size_t i;

	/* Read again under the write lock: another run may have upgraded
	   between our first look and BEGIN IMMEDIATE. */
	if (state_query_int(st, "PRAGMA user_version", &version) < 0 ||
	    schema_check_newer(st, version) < 0 ||
	    schema_check_id(st, version) < 0)
		return -1;
	if (version == 0) {
		if (state_query_int(st, "SELECT count(*) FROM sqlite_master "
				    "WHERE name NOT LIKE 'sqlite!_%' "
				    "ESCAPE '!'", &ntables) < 0)
			return -1;
		if (ntables != 0) {
			state_set_error(st, "not a twinbox state database (it "
					"has tables but no schema version)");
			return -1;
		}
	}
	for (i = 0; i < N_ELEMENTS(schema_steps); i++) {
		if (schema_steps[i].to_version <= version)
			continue;
		ASSERT(schema_steps[i].to_version == version + 1);
		sql = xasprintf("schema upgrade to version %d",
				schema_steps[i].to_version);
		if (state_exec(st, schema_steps[i].sql, sql) < 0) {
			free(sql);
			return -1;
		}
		free(sql);
		version = schema_steps[i].to_version;
	}
	sql = xasprintf("PRAGMA user_version = %lld", (long long)version);
	if (state_exec(st, sql, "cannot set schema version") < 0) {
		free(sql);
		return -1;
	}
	free(sql);
	return 0;
}

int state_schema_upgrade(struct state *st)
{
	int64_t version;

	if (state_query_int(st, "PRAGMA user_version", &version) < 0 ||
	    schema_check_newer(st, version) < 0 ||
	    schema_check_id(st, version) < 0)
		return -1;
	if (version == STATE_SCHEMA_VERSION)
		return 0;
	if (state_begin(st) < 0)
		return -1;
	if (schema_upgrade_locked(st) < 0) {
		char *err = xstrdup(state_error(st));

		(void)state_rollback(st);
		free(st->error);
		st->error = err;
		return -1;
	}
	return state_commit(st);
}
