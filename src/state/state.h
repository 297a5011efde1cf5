/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * state.h - the SQLite state store: one database per account,
 * <state_dir>/<account>.db, holding the synced folders, the message pairs
 * known on both sides and the intent journal.
 *
 * Conventions:
 * - Every function that can fail returns -1 and leaves a readable cause in
 *   state_error(st) ("FILE: what: sqlite message (sqlite code N/extended M)").
 *   Functions that can also answer "no such row" return 1 for it and say so
 *   below; they set state_error() too (so a caller testing "!= 0" still has
 *   a message), but 1 is not a failure of the database.
 * - One struct state is one connection. It must not be shared between
 *   threads; each worker thread opens its own (the connection is opened in
 *   SQLite's multi-thread mode, without a mutex).
 * - Calls outside state_begin()/state_commit() commit one by one. Each
 *   commit is durable (synchronous=FULL: the intent journal is worth nothing
 *   if a power loss can undo a commit that the action after it relied on).
 * - Strings handed in are borrowed for the duration of the call; strings
 *   handed out in structs are owned by the struct and freed by its
 *   _release() / _free() function.
 * - Fallible calls are ATTR_WARN_UNUSED, except state_rollback() and the
 *   idempotent deletes, which cleanup paths may ignore: gcc warns about an
 *   ignored result even through a (void) cast.
 * - Nothing in here ever stores a credential.
 */
#ifndef TB_STATE_H
#define TB_STATE_H

#include "common.h"

struct state;

/* The schema version this build writes (PRAGMA user_version). */
#define STATE_SCHEMA_VERSION 5
/* How long a call waits for another connection's lock by default, in
 * milliseconds; it tries again every 50 us to 1 ms meanwhile. */
#define STATE_BUSY_TIMEOUT_MS 15000

/*
 * Open (creating if missing) <dir>/<account>.db. dir is created like
 * mkdir -p, each new component mode 0700; a new database file is mode 0600,
 * whatever the umask (SQLite gives its -wal and -shm files the mode of the
 * database). account must match [A-Za-z0-9_.-]+ and not be "." or "..".
 * Sets journal_mode=WAL, foreign_keys=ON, synchronous=FULL, a busy wait of
 * STATE_BUSY_TIMEOUT_MS, and brings the schema up to STATE_SCHEMA_VERSION.
 * A database written by a newer twinbox, a file that is not a database, or
 * a database of some other program is refused.
 * Returns 0 with *st_r set, or -1 with *error_r set to a message naming the
 * file (owned by the caller: free() it).
 */
int state_open(const char *dir, const char *account, struct state **st_r,
	       char **error_r) ATTR_WARN_UNUSED;
/* Close (rolling back an open transaction) and set *st to NULL. NULL ok. */
void state_close(struct state **st);
/* The last error; valid until the next call on st. Never NULL. */
const char *state_error(const struct state *st);
/* Path of the database file (owned by st). */
const char *state_path(const struct state *st);
/* Change how long a call waits for another connection's lock (ms, >= 0). */
void state_set_busy_timeout(struct state *st, int ms);

/* BEGIN IMMEDIATE: takes the write lock now, so no later statement of the
   transaction can fail with SQLITE_BUSY. No nesting. */
int state_begin(struct state *st) ATTR_WARN_UNUSED;
/* COMMIT. On failure the transaction may still be open: roll it back. */
int state_commit(struct state *st) ATTR_WARN_UNUSED;
/* ROLLBACK; 0 when no transaction is open (SQLite may already have rolled
   it back after an error). Meant for error paths, so not WARN_UNUSED. */
int state_rollback(struct state *st);
/* True while a transaction is open. */
bool state_in_transaction(const struct state *st);
/* PRAGMA quick_check: 0 if the database looks sound, -1 otherwise. */
int state_check(struct state *st) ATTR_WARN_UNUSED;

/* ---- folders: one row per synced folder ---- */

struct state_folder {
	int64_t id;             /* 0 = not yet stored */
	char *name;             /* server name, UTF-8, '/' separator; owned */
	char *local_path;       /* owned */
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq; /* 0 = none */
	int64_t cur_mtime, new_mtime; /* ns, as last seen after a sync */
	int64_t last_sync;      /* unix seconds */
	uint32_t server_count, local_count; /* messages at last sync */
};

/* Free the strings of f and zero it. */
void state_folder_release(struct state_folder *f);
/* Release each of arr[0..n) and free arr. NULL ok. */
void state_folders_free(struct state_folder *arr, size_t n);
/* All folders sorted by name (byte order). *arr_r is NULL when n is 0;
   free with state_folders_free(). */
int state_folder_list(struct state *st, struct state_folder **arr_r,
		      size_t *n_r) ATTR_WARN_UNUSED;
/* By server name: 0 found (*f_r overwritten, not released first),
   1 not found (*f_r zeroed), -1 error. */
int state_folder_get(struct state *st, const char *name,
		     struct state_folder *f_r) ATTR_WARN_UNUSED;
/* By id, like state_folder_get(). */
int state_folder_get_id(struct state *st, int64_t id,
			struct state_folder *f_r) ATTR_WARN_UNUSED;
/* f->id == 0: insert and set f->id. Otherwise update every field of row
   f->id; 1 if there is no such row. A name already used by another folder
   is an error (UNIQUE constraint). */
int state_folder_put(struct state *st, struct state_folder *f)
	ATTR_WARN_UNUSED;
/* Set name and (unless new_local_path is NULL) local_path; 1 if no such
   folder. */
int state_folder_rename(struct state *st, int64_t id, const char *new_name,
			const char *new_local_path) ATTR_WARN_UNUSED;
/* Delete the folder, its messages and its journal entries. Deleting a
   folder that is not there succeeds (so a replayed step can run twice). */
int state_folder_delete(struct state *st, int64_t id);

/* ---- messages: one row per message pair known on both sides ---- */

struct state_msg {
	uint32_t uid;           /* server UID, 1..2^32-1 */
	char *base;             /* local Maildir unique name (file name up to
				   ":2,"); owned; unique within a folder */
	unsigned flags;         /* MF_* as last synced */
	uint64_t size;          /* RFC822.SIZE (CRLF size) */
	char *msgid;            /* Message-ID or NULL; owned */
	uint8_t hhash[16];      /* header hash (util/ident.h) */
	bool have_hhash;
	char *emailid;          /* the server's identity of the message, the
				   same in every folder that holds it: an
				   RFC 8474 EMAILID as the server sent it, or
				   "gm:" and Gmail's X-GM-MSGID in decimal
				   (no EMAILID has a ':'); NULL when the
				   server gave none; owned */
};

void state_msg_release(struct state_msg *m);
/* Release each of arr[0..n) and free arr. NULL ok. */
void state_msgs_free(struct state_msg *arr, size_t n);
/* All pairs of a folder sorted by uid; *arr_r is NULL when n is 0.
   Free with state_msgs_free(). */
int state_msgs_load(struct state *st, int64_t folder_id,
		    struct state_msg **arr_r, size_t *n_r) ATTR_WARN_UNUSED;
/* Whether any folder holds a pair with this header hash and size: 1 yes,
   0 no, -1 on a database error. */
int state_msg_known_content(struct state *st, const uint8_t hhash[16],
			    uint64_t size) ATTR_WARN_UNUSED;
/* Each pair of any folder with this header hash and size (the content a
   copy would have), in order of folder id and uid, until cb returns
   nonzero; returns that, 0 at the end, -1 on a database error. m is
   borrowed for the call. */
int state_msgs_each_content(struct state *st, const uint8_t hhash[16],
			    uint64_t size,
			    int (*cb)(void *ctx, int64_t folder_id,
				      const struct state_msg *m),
			    void *ctx) ATTR_WARN_UNUSED;
/* Each pair of any folder whose emailid is this one (a server copy of
   the message), like state_msgs_each_content(). */
int state_msgs_each_emailid(struct state *st, const char *emailid,
			    int (*cb)(void *ctx, int64_t folder_id,
				      const struct state_msg *m),
			    void *ctx) ATTR_WARN_UNUSED;
/* Set the emailid of a pair that has none (a pair with one keeps it;
   no pair is no error). */
int state_msg_set_emailid(struct state *st, int64_t folder_id, uint32_t uid,
			  const char *emailid) ATTR_WARN_UNUSED;
/* Each pair's base and flags, in strcmp order of base, until cb returns
   nonzero; returns that, 0 at the end, -1 on a database error. */
int state_msgs_each_base(struct state *st, int64_t folder_id,
			 int (*cb)(void *ctx, const char *base, unsigned flags),
			 void *ctx) ATTR_WARN_UNUSED;
/* Number of pairs of a folder. */
int state_msgs_count(struct state *st, int64_t folder_id, size_t *n_r)
	ATTR_WARN_UNUSED;
/* Insert, or replace every field of, the pair (folder_id, m->uid). The
   folder must exist. Another uid of the same folder already having m->base
   is an error (UNIQUE constraint): a base pairs with one uid. */
int state_msg_put(struct state *st, int64_t folder_id,
		  const struct state_msg *m) ATTR_WARN_UNUSED;
/* By (folder_id, uid): 0 found (*m_r overwritten), 1 not found, -1 error. */
int state_msg_get(struct state *st, int64_t folder_id, uint32_t uid,
		  struct state_msg *m_r) ATTR_WARN_UNUSED;
/* Set the synced flags / the local base of one pair; 1 if no such pair. */
int state_msg_set_flags(struct state *st, int64_t folder_id, uint32_t uid,
			unsigned flags) ATTR_WARN_UNUSED;
int state_msg_set_base(struct state *st, int64_t folder_id, uint32_t uid,
		       const char *base) ATTR_WARN_UNUSED;
/* Delete one pair / all pairs of a folder; absent rows are not an error. */
int state_msg_delete(struct state *st, int64_t folder_id, uint32_t uid);
int state_msgs_delete_all(struct state *st, int64_t folder_id);
/* Find a pair by local base in one folder, or (folder_id 0) in any folder
   (then the lowest folder id wins if several have it). 0 found (*folder_id_r
   and *m_r set; either may be NULL), 1 not found, -1 error. */
int state_msg_find_base(struct state *st, int64_t folder_id, const char *base,
			int64_t *folder_id_r, struct state_msg *m_r)
	ATTR_WARN_UNUSED;
/* Move a pair to another folder (or the same one) under a new uid, keeping
   its other fields (for replayed moves). 1 if the source pair is not there
   (e.g. already moved); an existing pair at the target is an error. */
int state_msg_move(struct state *st, int64_t from_folder, uint32_t from_uid,
		   int64_t to_folder, uint32_t to_uid) ATTR_WARN_UNUSED;

/* ---- account facts (key/value) ---- */
/* 1 and *value_r (free it) when the key is there, 0 when not, -1 on error */
int state_meta_get(struct state *st, const char *key, char **value_r);
int state_meta_put(struct state *st, const char *key, const char *value);

/* ---- the intent journal ----
 * A step is recorded (and committed) before it is done, and removed or
 * updated after, so that a killed run can be finished by the next one. */

enum journal_op {
	J_APPEND = 1,
	J_DOWNLOAD = 2,
	J_MOVE_SERVER = 3,
	J_MOVE_LOCAL = 4,
	J_EXPUNGE = 5,
	J_COPY = 6,
	/* not a step: an upload a killed run may still have made (the server
	 * had not executed it yet when the next run looked); its identity is
	 * kept a while so a late copy is recognised as a duplicate */
	J_LATE_APPEND = 7,
};

struct journal_entry {
	int64_t id;             /* 0 until added */
	int64_t folder_id;      /* 0 = not tied to one folder */
	enum journal_op op;     /* > 0 */
	uint32_t uid;           /* server uid concerned, 0 if none */
	char *base;             /* local base concerned or NULL; owned */
	int64_t aux;            /* op-specific: target folder id, UIDNEXT at
				   the time of an APPEND, ... */
	uint32_t aux_uid;       /* op-specific second uid */
	unsigned flags;
	/* identity for finding the message again */
	uint64_t size;
	char *msgid;            /* owned or NULL */
	uint8_t hhash[16];
	bool have_hhash;
	int64_t created;        /* unix seconds; 0 on add = now */
};

void journal_entry_release(struct journal_entry *e);
/* Release each of arr[0..n) and free arr. NULL ok. */
void state_journal_free(struct journal_entry *arr, size_t n);
/* Add e; sets e->id (and e->created if it was 0). A nonzero folder_id must
   name an existing folder; the entry goes when the folder is deleted. */
int state_journal_add(struct state *st, struct journal_entry *e)
	ATTR_WARN_UNUSED;
/* Rewrite every field but id and created of entry e->id; 1 if it is gone. */
int state_journal_update(struct state *st, const struct journal_entry *e)
	ATTR_WARN_UNUSED;
/* Remove an entry; an absent one is not an error. */
int state_journal_remove(struct state *st, int64_t id);
/* Entries of one folder (folder_id 0: all entries), oldest first.
   *arr_r is NULL when n is 0; free with state_journal_free(). */
int state_journal_list(struct state *st, int64_t folder_id,
		       struct journal_entry **arr_r, size_t *n_r)
	ATTR_WARN_UNUSED;

/* ---- one run per account ---- */

/*
 * Take flock(LOCK_EX|LOCK_NB) on <dir>/<account>.lock (dir created like
 * state_open(), the file 0600; it holds the holder's pid, for people).
 * 0: locked, keep *fd_r open until state_unlock(); 1: another open file
 * (another process, or another state_lock() of this one) holds it, *fd_r
 * is -1 and *error_r NULL; -1: error, *error_r set (caller frees).
 */
int state_lock(const char *dir, const char *account, int *fd_r,
	       char **error_r) ATTR_WARN_UNUSED;
/* Release the lock and set *fd to -1; nothing if *fd < 0. */
void state_unlock(int *fd);
/* Mark a held lock as a watcher's (sync --watch): "PID watch" in the file. */
void state_lock_mark_watcher(int fd);
/* Whether the lock file of the account says a watcher holds it; the
 * watcher's pid in *pid_r. */
bool state_lock_is_watcher(const char *dir, const char *account, long *pid_r);

#endif
