/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * remote-fake.h - a fake IMAP server behind the engine's struct remote_ops,
 * kept in a directory so it outlives a test child that _exit()s half-way.
 *
 * What it models (RFC 3501, 4315 UIDPLUS, 6851 MOVE, 7162 CONDSTORE/QRESYNC,
 * 8474 OBJECTID):
 *   - per folder UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ; UIDs strictly
 *     increasing and never reused;
 *   - per message UID, flags (MF_* bits), MODSEQ, INTERNALDATE, the bytes
 *     (CRLF line ends, as a server holds them) and an EMAILID that stays with
 *     the message across MOVE;
 *   - every change (append, flag change, expunge, move) takes the folder's
 *     next MODSEQ; expunges leave a tombstone (uid, modseq) so SELECT with
 *     QRESYNC and FETCH (CHANGEDSINCE n VANISHED) can report VANISHED
 *     (EARLIER);
 *   - the capability set chosen at creation decides what works: without
 *     CONDSTORE there are no MODSEQs (CHANGEDSINCE / UNCHANGEDSINCE fail as
 *     BAD), without QRESYNC no VANISHED, without UIDPLUS no APPENDUID /
 *     COPYUID, without OBJECTID no EMAILID. MOVE without the MOVE capability
 *     still works (the client emulates it with COPY + UID EXPUNGE).
 *   - a child created under a missing parent shows the parent in LIST as
 *     \Noselect (like Dovecot with LAYOUT=fs).
 *
 * Storage: <dir>/index (all folders and messages, rewritten by temp file +
 * rename on every change) and <dir>/bodies/<emailid> (immutable message
 * bytes). Every operation takes a pthread mutex and flock(<dir>/lock), then
 * reads the index afresh, so several connections (threads) and a parent
 * and a forked child see one consistent server, and a child that dies
 * leaves no stale lock.
 *
 * Errors: functions return 0 or -1 with *error_r malloc'ed (the caller
 * frees it), like the remote_ops themselves.
 */
#ifndef TB_TESTS_REMOTE_FAKE_H
#define TB_TESTS_REMOTE_FAKE_H

#include "common.h"
#include "sync/remote.h"

#define FAKE_CAPS_FULL \
	(IMAP_CAP_IMAP4REV1 | IMAP_CAP_QRESYNC | IMAP_CAP_CONDSTORE | \
	 IMAP_CAP_MOVE | IMAP_CAP_UIDPLUS | IMAP_CAP_LITERALPLUS | \
	 IMAP_CAP_ENABLE | IMAP_CAP_ESEARCH | IMAP_CAP_OBJECTID)
#define FAKE_CAPS_TRIMMED IMAP_CAP_IMAP4REV1

struct fake_server;

/* Operations performed through remote_ops (not by the fake_* helpers),
 * by all connections of this process since the last reset. */
struct fake_counters {
	unsigned connects;      /* factory opens */
	unsigned lists, statuses, creates, renames;
	unsigned selects;
	unsigned uid_searches;  /* uids() */
	unsigned flag_fetches;  /* fetch_flags() calls */
	unsigned ident_fetches; /* messages returned by fetch_idents() */
	unsigned bodies;        /* message bodies streamed by fetch_bodies() */
	unsigned appends;       /* messages appended */
	unsigned stores;        /* store ops (one per struct imap_store_op) */
	unsigned flag_changes;  /* messages whose flags a store changed */
	unsigned expunges;      /* messages expunged */
	unsigned moves;         /* messages moved */
	unsigned copies;        /* messages copied (UID COPY) */
	unsigned searches;      /* search_msgid() calls */
};

/*
 * Make a new server in dir (created if missing; must hold no server yet)
 * with the given imap_cap bits and an empty INBOX.
 */
int fake_server_create(const char *dir, unsigned caps, char **error_r);
/* Open the server kept in dir (made by fake_server_create). */
int fake_server_open(const char *dir, struct fake_server **fs_r,
		     char **error_r);
void fake_server_free(struct fake_server **fs);
const char *fake_server_dir(const struct fake_server *fs);

/* A factory whose open() gives a new connection to this server. The
 * factory borrows fs: keep fs alive while connections are open. */
void fake_server_factory(struct fake_server *fs, struct remote_factory *rf_r);
/* Open one connection directly (same as the factory does). */
struct remote *fake_remote_open(struct fake_server *fs);

/* Capabilities (persisted, so a resumed run sees the same server). */
unsigned fake_server_caps(struct fake_server *fs);
int fake_server_set_caps(struct fake_server *fs, unsigned caps,
			 char **error_r);

void fake_server_counters(struct fake_server *fs, struct fake_counters *c_r);
void fake_server_reset_counters(struct fake_server *fs);
/* "selects=1 bodies=0 ..." for test diagnostics (malloc'ed). */
char *fake_counters_str(const struct fake_counters *c);

/*
 * Fault injection: the nth (1-based) next call of the named remote op
 * ("select", "append", "store", "expunge", "move", "fetch_bodies", ...;
 * "copy_from_select": the SELECT of one source in copy_from_many's
 * flight) fails with the given class before doing anything; IMAP_FAIL_NET and
 * IMAP_FAIL_PROTO also make the connection broken. nth 0 clears it.
 */
void fake_server_fail(struct fake_server *fs, const char *op, unsigned nth,
		      enum imap_failure failure);
/* True while an armed failure has not fired yet. */
bool fake_server_fail_pending(struct fake_server *fs);

/* ---- direct access for tests (no counters, no capabilities) ---- */

struct fake_msg {
	uint32_t uid;
	unsigned flags;           /* MF_* */
	uint64_t modseq;
	int64_t internaldate;
	char emailid[32];
	char *data;               /* CRLF bytes, NUL-terminated too; owned */
	size_t size;
};
void fake_msgs_free(struct fake_msg *msgs, size_t n);

struct fake_folder_info {
	uint32_t uidvalidity, uidnext, exists;
	uint64_t highestmodseq;
	unsigned attrs;           /* imap_list_attr special-use bits */
};

/* Folder names (selectable ones only), sorted by strcmp. */
int fake_folder_names(struct fake_server *fs, char ***names_r, size_t *n_r,
		      char **error_r);
void fake_names_free(char **names, size_t n);
/* 1 (no error set) when the folder does not exist. */
int fake_folder_info(struct fake_server *fs, const char *name,
		     struct fake_folder_info *info_r, char **error_r);
/* Create a folder (error if it exists). */
int fake_folder_create(struct fake_server *fs, const char *name,
		       char **error_r);
/* Set the special-use bits (IMAP_LIST_SENT ...) LIST reports. */
int fake_folder_set_attrs(struct fake_server *fs, const char *name,
			  unsigned attrs, char **error_r);
/* Delete a folder with its messages (children stay). */
int fake_folder_delete(struct fake_server *fs, const char *name,
		       char **error_r);
/*
 * Recreate a folder in place with a new, higher UIDVALIDITY, keeping its
 * messages (bytes, flags, dates) renumbered from UID 1, as after a server
 * rebuild. new_emailids: give them new EMAILIDs too (no OBJECTID match).
 */
int fake_folder_reset(struct fake_server *fs, const char *name,
		      bool new_emailids, uint32_t *uidvalidity_r,
		      char **error_r);

/* Add a message; LF line ends are made CRLF (a CRLF stays). date 0: now.
 * uid_r may be NULL. */
int fake_msg_add(struct fake_server *fs, const char *folder,
		 const void *data, size_t len, unsigned flags, int64_t date,
		 uint32_t *uid_r, char **error_r);
/* Add n messages (NUL-terminated, LF line ends made CRLF) in one change
 * of the index, for big set-ups. */
int fake_msgs_add(struct fake_server *fs, const char *folder,
		  const char *const *msgs, size_t n, unsigned flags,
		  char **error_r);
/* Replace the flags (MF_*). */
int fake_msg_set_flags(struct fake_server *fs, const char *folder,
		       uint32_t uid, unsigned flags, char **error_r);
int fake_msg_expunge(struct fake_server *fs, const char *folder,
		     uint32_t uid, char **error_r);
int fake_msg_move(struct fake_server *fs, const char *folder, uint32_t uid,
		  const char *dest, uint32_t *new_uid_r, char **error_r);
/* All messages of a folder, ascending UID, with their bytes. */
int fake_folder_messages(struct fake_server *fs, const char *folder,
			 struct fake_msg **msgs_r, size_t *n_r,
			 char **error_r);
/* A canonical text of the whole server (folders, counters of UIDs and
 * MODSEQs, every message with flags and a digest of its bytes), for
 * comparing snapshots. malloc'ed. */
int fake_server_dump(struct fake_server *fs, char **text_r, char **error_r);

#endif
