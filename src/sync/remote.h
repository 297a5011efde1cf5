/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * remote.h - the server side as the sync engine sees it.
 *
 * The engine never sees an IMAP tag, a modified UTF-7 name or a server
 * hierarchy delimiter: folder names here are UTF-8 with '/' as separator.
 * remote-imap.c implements this over imap/client.h; the engine tests
 * (tests/sync/) implement it over an in-memory server, so engine scenarios
 * run without a network.
 *
 * All operations return 0 or -1 with *error_r malloc'ed. After -1,
 * ops->failure() tells the class (IMAP_FAIL_NO: this command was refused,
 * the connection is fine).
 *
 * The data types (struct imap_fetch, imap_selected, imap_status_data,
 * imap_append_msg, imap_store_op, imap_body_handler, imap_copyuid) are the
 * plain records of imap/parser.h and imap/client.h.
 */
#ifndef TB_SYNC_REMOTE_H
#define TB_SYNC_REMOTE_H

#include "common.h"
#include "imap/client.h"

struct remote;

struct remote_folder {
	char *name;        /* UTF-8, '/' separator; owned */
	unsigned attrs;    /* imap_list_attr bits (NOSELECT, SPECIAL-USE...) */
};
void remote_folders_free(struct remote_folder *f, size_t n);

/* One source of remote_ops.copy_from_many(): folder name as everywhere
 * here, the UIDVALIDITY this run has read from the server, the UIDs. */
struct remote_copy_src {
	const char *name;
	uint32_t uidvalidity;
	const char *uidset;
};

struct remote_ops {
	unsigned (*caps)(struct remote *r);            /* imap_cap bits */
	bool (*qresync)(struct remote *r);             /* QRESYNC enabled */
	bool (*condstore)(struct remote *r);           /* CONDSTORE usable */
	enum imap_failure (*failure)(struct remote *r);
	bool (*broken)(struct remote *r);
	/* optional, for servers whose wire names need a hierarchy
	 * delimiter: the one known so far (-1 when none is yet), and one
	 * learnt elsewhere (0: the server has none) */
	int (*delimiter)(struct remote *r);
	void (*set_delimiter)(struct remote *r, char delim);

	int (*list)(struct remote *r, struct remote_folder **f_r, size_t *n_r,
		    char **error_r);
	int (*status)(struct remote *r, const char *const *names, size_t n,
		      struct imap_status_data *st_r, bool *ok_r, char **error_r);
	/* optional: status, then list, in one round trip */
	int (*status_list)(struct remote *r, const char *const *names, size_t n,
			   struct imap_status_data *st_r, bool *ok_r,
			   struct remote_folder **f_r, size_t *n_r,
			   char **error_r);
	int (*create)(struct remote *r, const char *name, char **error_r);
	int (*rename)(struct remote *r, const char *from, const char *to,
		      char **error_r);

	int (*select)(struct remote *r, const char *name,
		      const struct imap_qresync *qr, imap_fetch_cb *fcb,
		      imap_vanished_cb *vcb, void *ctx,
		      struct imap_selected *sel_r, char **error_r);
	/* optional: SELECT in the flight of the next operation, which
	 * fails when it does (imap_select_ahead_qr()); for a folder whose
	 * UIDVALIDITY this run has read (0: any). qr, the callbacks and
	 * sel_r as select(), NULL when not wanted; *sel_r is filled in by
	 * the next operation. */
	int (*select_ahead)(struct remote *r, const char *name,
			    uint32_t uidvalidity,
			    const struct imap_qresync *qr, imap_fetch_cb *fcb,
			    imap_vanished_cb *vcb, void *ctx,
			    struct imap_selected *sel_r,
			    imap_ahead_done_fn *done, void *done_ctx,
			    char **error_r);
	/* with select_ahead: wait for a SELECT sent ahead that no command
	 * followed yet (0 when there is none) */
	int (*flush)(struct remote *r, char **error_r);
	/* All UIDs of the selected folder (UID SEARCH ALL), ascending. */
	int (*uids)(struct remote *r, uint32_t **uids_r, size_t *n_r,
		    char **error_r);
	int (*fetch_flags)(struct remote *r, const char *uidset,
			   uint64_t changedsince, bool vanished,
			   imap_fetch_cb *fcb, imap_vanished_cb *vcb, void *ctx,
			   char **error_r);
	int (*fetch_idents)(struct remote *r, const char *uidset,
			    imap_fetch_cb *fcb, void *ctx, char **error_r);
	int (*fetch_bodies)(struct remote *r, const uint32_t *uids, size_t n,
			    const struct imap_body_handler *h, char **error_r);
	/* optional: fetch_bodies() whose answers the next operation reads
	 * first, its commands in that operation's flight
	 * (imap_fetch_bodies_start()); fetch_bodies_end() says how it
	 * ended. One at a time. */
	int (*fetch_bodies_start)(struct remote *r, const uint32_t *uids,
				  size_t n, const struct imap_body_handler *h,
				  char **error_r);
	int (*fetch_bodies_end)(struct remote *r, char **error_r);
	int (*append)(struct remote *r, const char *name,
		      struct imap_append_msg *msgs, size_t n,
		      uint32_t *uidvalidity_r, char **error_r);
	int (*store)(struct remote *r, const struct imap_store_op *ops, size_t n,
		     char **error_r);
	int (*expunge)(struct remote *r, const char *uidset, char **error_r);
	/* optional: expunge messages already marked \Deleted by a store()
	 * (imap_expunge_marked()) */
	int (*expunge_marked)(struct remote *r, const char *uidset,
			      char **error_r);
	/* optional: store() of ops, one of which marks uidset \Deleted,
	 * and the expunge of uidset, in one flight where the server allows
	 * (imap_store_expunge()) */
	int (*store_expunge)(struct remote *r, const struct imap_store_op *ops,
			     size_t n, const char *uidset, char **error_r);
	/* optional: the same (uidset NULL: the STOREs alone) with the
	 * APPENDs of msgs to name in its flight; each message's ok_r and
	 * uid_r, and *append_error_r, say how its APPEND went
	 * (imap_store_expunge_append()) */
	int (*store_expunge_append)(struct remote *r,
				    const struct imap_store_op *ops, size_t n,
				    const char *uidset, const char *name,
				    struct imap_append_msg *msgs, size_t n_msgs,
				    uint32_t *uidvalidity_r,
				    char **append_error_r, char **error_r);
	/* optional: store_expunge_append() that returns before the
	 * APPENDs are answered (imap_store_expunge_append_start()): with
	 * *tail_r NULL it was store_expunge_append(); else tail_end() is
	 * due, before close(), and msgs stay valid until then */
	int (*store_expunge_append_start)(struct remote *r,
					  const struct imap_store_op *ops,
					  size_t n, const char *uidset,
					  const char *name,
					  struct imap_append_msg *msgs,
					  size_t n_msgs,
					  struct imap_tail **tail_r,
					  char **append_error_r,
					  char **error_r);
	/* imap_tail_end() */
	int (*tail_end)(struct remote *r, struct imap_tail **tail,
			char **append_error_r, struct imap_own_state *own_r,
			bool *own_ok_r, char **error_r);
	int (*move)(struct remote *r, const char *uidset, const char *dest,
		    struct imap_copyuid *map_r, char **error_r);
	/* optional: UID COPY (moves out of one folder into several copy to
	 * each, then expunge once: see moves_out_execute()) */
	int (*copy)(struct remote *r, const char *uidset, const char *dest,
		    struct imap_copyuid *map_r, char **error_r);
	/* optional: n UID COPYs in one flight (imap_copy_batch()): a
	 * refused one clears only its ok_r[i] */
	int (*copy_batch)(struct remote *r, const char *const *uidsets,
			  const char *const *dests, size_t n,
			  struct imap_copyuid *maps_r, bool *ok_r,
			  char **error_r);
	/* optional: for each source, SELECT it and UID COPY its UIDs to
	 * dest, all in one flight (imap_copy_from_many()): res_r[i] and
	 * maps_r[i] per source, -1 when no result is known. Afterwards no
	 * folder counts as selected. */
	int (*copy_from_many)(struct remote *r,
			      const struct remote_copy_src *srcs, size_t n,
			      const char *dest, struct imap_copyuid *maps_r,
			      enum imap_copy_src_result *res_r,
			      char **error_r);
	/* optional: n UID MOVEs in one flight, for a server with MOVE
	 * (imap_move_batch()): a refused one clears only its ok_r[i] */
	int (*move_batch)(struct remote *r, const char *const *uidsets,
			  const char *const *dests, size_t n,
			  struct imap_copyuid *maps_r, bool *ok_r,
			  char **error_r);
	/* optional: the UID MOVEs out of n sources in one flight, each
	 * source's SELECT ahead of its MOVEs (imap_move_from_many()); here
	 * srcs[i].wire and .dests are folder names as everywhere */
	int (*move_from_many)(struct remote *r, struct imap_move_src *srcs,
			      size_t n, char **error_r);
	/* UIDs >= min_uid in the selected folder whose Message-ID header
	 * contains msgid (msgid NULL: all UIDs >= min_uid), ascending. */
	int (*search_msgid)(struct remote *r, uint32_t min_uid,
			    const char *msgid, uint32_t **uids_r, size_t *n_r,
			    char **error_r);
	/* optional: the selected folder after this connection's own
	 * changes; false when the server reported another change since
	 * the SELECT (imap_client_own_state()) */
	bool (*own_state)(struct remote *r, struct imap_own_state *s_r);
	/* optional: the selected folder's UIDs this run moved away on
	 * another connection (imap_client_expect_gone()) */
	void (*expect_gone)(struct remote *r, const char *name,
			    const char *uidset);
	/* optional: the shortest wait for an answer so far, in ns, 0 when
	 * none yet (imap_client_min_wait_ns()) */
	int64_t (*min_wait_ns)(struct remote *r);
	/* Bytes of message data moved so far (for --json). */
	uint64_t (*bytes_in)(struct remote *r);
	uint64_t (*bytes_out)(struct remote *r);
	void (*close)(struct remote *r);   /* log out and free */
};

struct remote {
	const struct remote_ops *ops;
};

/* Opens one more connection (one per worker thread). */
struct remote_factory {
	/* 0 ok; -1 with *failure_r (TLS/AUTH => exit 3) and *error_r */
	int (*open)(void *ctx, struct remote **r_r, enum imap_failure *failure_r,
		    char **error_r);
	/* the same for a run's first connection, whose first commands may
	 * go with the login (NULL: open); its login failure may show in
	 * the first command's, or in flush */
	int (*open_first)(void *ctx, struct remote **r_r,
			  enum imap_failure *failure_r, char **error_r);
	void *ctx;
	/* What the connections learn of logging in to the server
	 * (imap_client_settings.login_hint), or NULL; the engine keeps
	 * it in the state from run to run. */
	struct imap_login_hint *login_hint;
};

#endif
