/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * maildir.h - the local Maildir store: folder-name mapping, scanning,
 * atomic delivery through tmp/, flag renames, removal, moves, and reading
 * messages back with CRLF line ends for upload.
 *
 * Conventions of this module:
 *   - Functions returning int give 0 on success and -1 on failure; those
 *     that can also report "not found" give 1 for it. On -1, *error_r is
 *     set to a message the caller frees (error_r is never NULL); on 0 or 1
 *     it is left alone.
 *   - A message is named by its base: the file name up to ":2," (or the
 *     whole name when it has no info part). Readers (mutt, notmuch) rename
 *     files at any time to change flags or move them from new/ to cur/; the
 *     functions taking a base find the file wherever it is now.
 *   - Files are created 0600 and directories 0700 whatever the umask.
 *   - One struct mdir is used by one thread at a time; different ones may
 *     be used by different threads.
 */
#ifndef TB_MAILDIR_H
#define TB_MAILDIR_H

#include "common.h"
#include "util/ident.h"

#include <sys/types.h>
#include <time.h>

enum mdir_layout {
	MDIR_VERBATIM,   /* Lists/dev -> <root>/Lists/dev, INBOX -> <root>/INBOX */
	MDIR_MAILDIRPP,  /* Lists/dev -> <root>/.Lists.dev, INBOX -> <root> */
};

/*
 * Folder-name mapping (SPEC "Maildir mapping"). name is the server name
 * decoded to UTF-8, with '/' as the hierarchy separator.
 *
 * Names that cannot be used as they are get the offending bytes escaped as
 * "%XX" (upper-case hex), reversibly, so they still sync:
 *   - control characters (C0, DEL, C1) and bytes of invalid UTF-8;
 *   - in verbatim layout, a leading '.' of a component (so "." and ".."
 *     become "%2E" and "%2E."), and a component after the first one named
 *     "cur", "new" or "tmp" (it would clash with the parent's own Maildir
 *     directories), escaped as "%63ur" etc.;
 *   - in maildir++ layout, every '.' (the local separator);
 *   - an empty component ("a//b", a leading or trailing '/') is "%00";
 *   - a '%' that is followed by two hex digits becomes "%25"; any other
 *     '%' stays as it is, so a local folder "100%" keeps its name.
 * Unescaped UTF-8 passes through unchanged ("Entwürfe" stays "Entwürfe").
 * Returns -1 only when the mapped path would be too long (a component over
 * 255 bytes, or the path over 4095). Never yields a path outside root.
 * *path_r is owned by the caller.
 */
int mdir_map_name(const char *root, enum mdir_layout layout, const char *name,
		  char **path_r, char **error_r);
/*
 * Reverse: a folder path (under root) back to the server name. Returns -1
 * (with no error message) when path is not under root, or is not exactly
 * what mdir_map_name() makes of some name (non-canonical escapes, raw
 * control characters, invalid UTF-8, a hidden directory in verbatim
 * layout...): such a folder cannot be synced.
 */
int mdir_unmap_path(const char *root, enum mdir_layout layout,
		    const char *path, char **name_r);
/*
 * All Maildir folders (directories holding cur/ and new/) under root, as
 * server names, sorted by strcmp. Symbolic links are not followed. Folders
 * whose path does not unmap are skipped with a warning. A missing root is
 * not an error (no folders). *names_r is freed with mdir_names_free().
 */
int mdir_list_folders(const char *root, enum mdir_layout layout,
		      char ***names_r, size_t *n_r, char **error_r);
void mdir_names_free(char **names, size_t n);

/* One Maildir folder. */
struct mdir;

/*
 * Open the folder at path. With create, make path (and missing parents)
 * plus cur/ new/ tmp/, mode 0700 whatever the umask. Without create, a
 * missing folder, cur/ or new/ is an error, with *missing_r (if not NULL)
 * set to true; a missing tmp/ is made when the first message is written.
 */
int mdir_open(const char *path, bool create, struct mdir **m_r,
	      bool *missing_r, char **error_r);
void mdir_close(struct mdir **m);
const char *mdir_path(const struct mdir *m);
/* mtimes of cur/ and new/ in nanoseconds (st_mtim), for the "unchanged
 * folder costs a stat" shortcut. */
int mdir_mtimes(struct mdir *m, int64_t *cur_ns_r, int64_t *new_ns_r,
		char **error_r);
/* fsync cur/ and new/. */
int mdir_sync_dirs(struct mdir *m, char **error_r);
/* With on, mdir_writer_commit() does not fsync the directory; the caller
 * batches many commits and calls mdir_sync_dirs() before it records them
 * anywhere (a rename is durable only once its directory is synced). */
void mdir_defer_dir_sync(struct mdir *m, bool on);
/* Where the message with this base probably is, from its last known
 * flags (new/<base> without flags, else cur/<base>:2,<flags>): saves the
 * lookups that follow a read of the whole folder when the guess is right.
 * It is checked; when it is wrong, the other usual place (cur/<base>:2,
 * or new/<base>) is tried, then the whole folder is read as without it. */
void mdir_hint(struct mdir *m, const char *base, unsigned flags);
/* How many times this handle listed the whole folder (tests, debugging). */
size_t mdir_full_reads(const struct mdir *m);
/* Forget the name cache (it is rebuilt by the next lookup that needs it). */
void mdir_drop_cache(struct mdir *m);

struct mdir_entry {
	char *base;     /* unique name: the file name up to ":2,"; owned */
	char *name;     /* full file name (with info); owned */
	unsigned flags; /* MF_* from the info part */
	bool in_new;    /* lives in new/ */
};

/*
 * Every message file of cur/ and new/ (not dot files, not tmp/, only
 * regular files), sorted by base (strcmp). A base found twice (in new/ and
 * cur/, or with two infos) is reported once, the cur/ one first, with a
 * warning. Names from disk are untrusted: one starting with '.' or with an
 * empty base is skipped. Also refreshes the cache mdir_find() uses.
 */
int mdir_scan(struct mdir *m, struct mdir_entry **ents_r, size_t *n_r,
	      char **error_r);
void mdir_entries_free(struct mdir_entry *ents, size_t n);
/* Like mdir_scan, quietly and without filling the lookup cache (for a
 * one-off comparison that should not double the memory). */
int mdir_list(struct mdir *m, struct mdir_entry **ents_r, size_t *n_r,
	      char **error_r);

/*
 * Where is the message with this base now? Looks at the name cached by the
 * last scan and reads cur/ and new/ again if it is stale. 0 found (*name_r
 * owned by the caller, may be NULL; *flags_r may be NULL), 1 not found,
 * -1 error (also for a base with '/' or a leading '.').
 */
int mdir_find(struct mdir *m, const char *base, char **name_r,
	      unsigned *flags_r, char **error_r);

/*
 * Writing a new message: a unique file in tmp/, opened O_CREAT|O_EXCL
 * mode 0600, named "<sec>.M<usec>P<pid>Q<counter>.<host>" (host with '/'
 * and ':' as "\057" and "\072"); it keeps that name as its base.
 * CRLF -> LF conversion is ON by default (the SPEC's on-disk format);
 * turn it off with mdir_writer_set_crlf_to_lf() before the first write.
 */
struct mdir_writer;
int mdir_writer_new(struct mdir *m, struct mdir_writer **w_r, char **error_r);
void mdir_writer_set_crlf_to_lf(struct mdir_writer *w, bool on);
/* The base it will have, known before commit (for the journal). */
const char *mdir_writer_base(const struct mdir_writer *w);
/* Bytes written to the file so far (after conversion). */
uint64_t mdir_writer_size(const struct mdir_writer *w);
/* Write message bytes (any chunking; a CR at a chunk end is held back).
 * -1 on ENOSPC etc. with an error naming the file. */
int mdir_writer_write(struct mdir_writer *w, const void *p, size_t n,
		      char **error_r);
/*
 * fsync; set mtime and atime to mtime (seconds; 0 = leave them); rename to
 * new/<base> when flags == 0, else cur/<base>:2,<letters>; fsync that
 * directory. On failure the tmp file is still there for _abort().
 */
int mdir_writer_commit(struct mdir_writer *w, unsigned flags, time_t mtime,
		       char **error_r);
/* Unlink the tmp file (unless committed) and free. */
void mdir_writer_abort(struct mdir_writer **w);
/* Free after commit (same as _abort() if not committed). */
void mdir_writer_free(struct mdir_writer **w);

/*
 * Set the flags of a message (by base, wherever it is now): rename within
 * cur/, or new/ -> cur/ when flags != 0 (flags == 0 leaves a new/ file
 * where it is). Info letters we do not sync (lower-case and others) that
 * are present are kept. The directory is fsynced. 0 ok, 1 not found.
 */
int mdir_set_flags(struct mdir *m, const char *base, unsigned flags,
		   char **error_r);
/* Unlink by base and fsync the directory; 1 if already gone. */
int mdir_remove(struct mdir *m, const char *base, char **error_r);
/*
 * Move a message file (same name, same flags, same subdirectory) to
 * another folder: rename(2), or copy + fsync + rename + unlink when the
 * folders are on different file systems (EXDEV). When `to` already holds
 * this base with the same size (a move interrupted after the copy), the
 * source is removed to finish it; a different size there is an error.
 * 0 ok, 1 not found in `from`.
 */
int mdir_move(struct mdir *from, struct mdir *to, const char *base,
	      char **error_r);

/*
 * Reading a message for upload, LF -> CRLF (a CRLF already in the file
 * stays; a bare CR is untouched). The size after conversion is computed at
 * open by one pass; a file that changes size while read is an error, so
 * exactly mdir_reader_size() bytes come out or -1.
 */
struct mdir_reader;
/* 1 if not found. */
int mdir_reader_open(struct mdir *m, const char *base,
		     struct mdir_reader **r_r, char **error_r);
uint64_t mdir_reader_size(const struct mdir_reader *r);
time_t mdir_reader_mtime(const struct mdir_reader *r);
unsigned mdir_reader_flags(const struct mdir_reader *r);
/* Up to n converted bytes; returns the count, 0 at EOF, -1 on error. */
ssize_t mdir_reader_read(struct mdir_reader *r, void *buf, size_t n,
			 char **error_r);
void mdir_reader_close(struct mdir_reader **r);

/*
 * Materialise the message with this base in `from` as a new message of
 * `to` (which may be `from`) with its own unique base and these flags: a
 * hard link to the same file when hardlink is set and the file system
 * allows (*linked_r true), else a copy of its bytes with its mtime
 * (copyin.c). It lands where a download would: new/<base> for no flags,
 * else cur/<base>:2,<flags>. The caller calls mdir_sync_dirs() before it
 * records the new message anywhere. 0 ok (*base_r owned by the caller),
 * 1 the source is not there.
 */
int mdir_copy_in(struct mdir *from, const char *base, struct mdir *to,
		 unsigned flags, bool hardlink, char **base_r, bool *linked_r,
		 char **error_r) ATTR_WARN_UNUSED;

/* Identity of a local message (reads the file once). 1 if not found. */
int mdir_msg_ident(struct mdir *m, const char *base, struct msg_ident *id_r,
		   char **error_r);

#endif
