/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * config/config.h - the YAML configuration file, loaded and validated.
 *
 * config_load() parses the whole file with libyaml, checks every key and
 * value against the schema in twinbox.yaml(5) and returns an immutable
 * struct config. Everything in it is owned by the struct config and lives
 * until config_free(). Errors come back as one malloc'ed line,
 * "FILE:LINE:COL: key 'x': what is wrong", that never contains a secret.
 */
#ifndef TB_CONFIG_CONFIG_H
#define TB_CONFIG_CONFIG_H

#include "common.h"

enum tls_mode { TLS_IMPLICIT, TLS_STARTTLS, TLS_NONE };
enum auth_mech { AUTH_AUTO, AUTH_PLAIN, AUTH_LOGIN, AUTH_XOAUTH2, AUTH_OAUTHBEARER };
enum layout { LAYOUT_VERBATIM, LAYOUT_MAILDIRPP };
enum copies_mode { COPIES_LINK, COPIES_COPY };
/* Bit 1 = pull (server to local), bit 2 = push (local to server). */
enum sync_dir { SYNC_NONE = 0, SYNC_PULL = 1, SYNC_PUSH = 2, SYNC_BOTH = 3 };

struct account_config {
	char *name;             /* [A-Za-z0-9_.-]+, unique in the file */
	char *host;
	unsigned port;          /* 993 for implicit TLS, 143 otherwise */
	enum tls_mode tls;
	char *ca_file;          /* NULL = system trust store; absolute */
	char *fingerprint;      /* NULL or "sha256:AA:BB:..." (32 bytes, upper-case hex) */
	char *user;
	/* At most one of password, password_command, password_file is set;
	 * token_command only with auth auto, xoauth2 or oauthbearer. Use
	 * config_get_secret() rather than reading these directly. */
	char *password;
	char *password_command;
	char *password_file;    /* absolute */
	char *token_command;
	enum auth_mech auth;
	bool allow_plaintext;
	char *maildir;          /* ~ expanded, absolute, no trailing '/' */
	enum layout layout;
	char **include;         /* default: one pattern "*" */
	size_t n_include;
	char **exclude;
	size_t n_exclude;
	enum sync_dir sync_new, sync_flags, sync_deletions, sync_moves,
		sync_folders;
	unsigned connections;   /* 1..32, default 4 */
	char **watch;           /* sync --watch without NOTIFY: folders to
				   IDLE on (UTF-8 names); default INBOX */
	size_t n_watch;
	unsigned poll;          /* sync --watch: seconds between STATUS
				   sweeps of the other folders; default 300 */
	enum copies_mode copies; /* how a server copy is made locally */
	bool gmail;             /* labels are folders, even without X-GM-EXT-1 */
	const char *file;       /* borrowed from struct config: where the */
	unsigned line;          /* account was defined, for messages */
};

struct config {
	char *file;             /* the file name as given (or the default) */
	char *state_dir;        /* absolute; default $XDG_STATE_HOME/twinbox */
	struct account_config *accounts;
	size_t n_accounts;      /* at least 1 */
};

/* Upper bound on the configuration file size. */
#define CONFIG_MAX_FILE_SIZE (1024 * 1024)

/*
 * Load and validate the file at path (NULL = the default,
 * $XDG_CONFIG_HOME/twinbox/config.yaml or ~/.config/twinbox/config.yaml).
 * Returns 0 with *config_r set, or -1 with *error_r a malloc'ed message
 * "FILE:LINE:COL: key 'x': what is wrong" (the caller frees it). Warns
 * (log_warn) when the file holds a `password:` and is readable by group or
 * others.
 */
int config_load(const char *path, struct config **config_r, char **error_r)
	ATTR_WARN_UNUSED;
/* Like config_load() on len bytes at data; name is used in messages and as
 * config->file. No file permission check. */
int config_load_buffer(const char *name, const void *data, size_t len,
		       struct config **config_r, char **error_r)
	ATTR_WARN_UNUSED;
/* Free everything (wiping inline passwords) and set *config to NULL. */
void config_free(struct config **config);

/* The account called name, or NULL. */
const struct account_config *
config_find_account(const struct config *c, const char *name);

/*
 * Fetch the account's secret: the token from token_command when that is
 * set, otherwise the password from password, password_file (its first
 * line) or password_command (run with /bin/sh -c; the first line of its
 * standard output). Returns 0 with *secret_r a malloc'ed string the caller
 * wipes with secure_zero() and frees; -1 with *error_r (malloc'ed, names
 * the account, never contains the secret) when the command cannot run,
 * exits nonzero or prints nothing, or the file cannot be read or is empty.
 */
int config_get_secret(const struct account_config *a, char **secret_r,
		      char **error_r) ATTR_WARN_UNUSED;

/* True if the folder name (UTF-8, '/' as separator) matches one of the
 * include globs and none of the exclude globs (fnmatch(3) without
 * FNM_PATHNAME, so "*" also matches "a/b"; a pattern also matches the name
 * equal to it, so "[Gmail]/All Mail" needs no escaping). */
bool config_folder_selected(const struct account_config *a, const char *name);

/* A duration: a number of seconds, optionally followed by s, m or h
 * ("90", "30s", "5m", "1h"). 0 with *seconds_r, or -1 when malformed or
 * longer than a day. */
int config_parse_duration(const char *s, unsigned *seconds_r);

/* Names for messages: "implicit", "starttls", "none"; "auto", "plain", ...;
 * "verbatim", "maildir++"; "both", "pull", "push", "none". */
const char *config_tls_name(enum tls_mode t);
const char *config_auth_name(enum auth_mech m);
const char *config_layout_name(enum layout l);
const char *config_sync_dir_name(enum sync_dir d);

#endif
