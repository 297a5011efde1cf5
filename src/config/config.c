/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * config.c - load twinbox.yaml with libyaml and validate it.
 *
 * The file is read whole (it is capped at CONFIG_MAX_FILE_SIZE), turned into
 * a libyaml document, and walked by schema: top-level mapping, the accounts
 * list, one mapping per account, and the folders/sync sub-mappings. The
 * walk never follows the document deeper than the schema does, and a node
 * and byte budget bounds the work that YAML aliases could otherwise
 * multiply. Every error names FILE:LINE:COL (1-based, from libyaml's marks)
 * and the key.
 */
#include "common.h"
#include "config/config.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pwd.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

/* Aliases can make a small file name the same subtree many times; these
 * caps keep the walk and the copies bounded whatever the input. */
#define CONFIG_MAX_NODES     100000
#define CONFIG_MAX_BYTES     (8 * CONFIG_MAX_FILE_SIZE)
#define CONFIG_MAX_ACCOUNTS  1000
#define CONFIG_MAX_PATTERNS  1000

struct loader {
	const char *file;
	const unsigned char *data;
	size_t len;
	yaml_document_t doc;
	char *error;            /* the first error only */
	size_t nodes;           /* nodes visited so far */
	size_t bytes;           /* bytes copied so far */
	bool has_password;      /* some account has an inline password */
	bool have_doc;          /* doc needs yaml_document_delete() */
	const yaml_node_t *name_node; /* of the account just loaded */
};

/* ---- names -------------------------------------------------------------- */

static const char *const tls_names[] = {
	[TLS_IMPLICIT] = "implicit", [TLS_STARTTLS] = "starttls",
	[TLS_NONE] = "none",
};
static const char *const auth_names[] = {
	[AUTH_AUTO] = "auto", [AUTH_PLAIN] = "plain", [AUTH_LOGIN] = "login",
	[AUTH_XOAUTH2] = "xoauth2", [AUTH_OAUTHBEARER] = "oauthbearer",
};
static const char *const layout_names[] = {
	[LAYOUT_VERBATIM] = "verbatim", [LAYOUT_MAILDIRPP] = "maildir++",
};
static const char *const copies_names[] = {
	[COPIES_LINK] = "link", [COPIES_COPY] = "copy",
};
static const char *const sync_dir_names[] = {
	[SYNC_NONE] = "none", [SYNC_PULL] = "pull", [SYNC_PUSH] = "push",
	[SYNC_BOTH] = "both",
};

const char *config_tls_name(enum tls_mode t)
{
	return (size_t)t < N_ELEMENTS(tls_names) ? tls_names[t] : "?";
}

const char *config_auth_name(enum auth_mech m)
{
	return (size_t)m < N_ELEMENTS(auth_names) ? auth_names[m] : "?";
}

const char *config_layout_name(enum layout l)
{
	return (size_t)l < N_ELEMENTS(layout_names) ? layout_names[l] : "?";
}

const char *config_sync_dir_name(enum sync_dir d)
{
	return (size_t)d < N_ELEMENTS(sync_dir_names) ? sync_dir_names[d] : "?";
}

/* ---- errors ------------------------------------------------------------- */

static int fail_at(struct loader *l, size_t line, size_t col, const char *key,
		   const char *fmt, ...) ATTR_PRINTF(5, 6);

static int fail_at(struct loader *l, size_t line, size_t col, const char *key,
		   const char *fmt, ...)
{
	va_list ap;
	int n;
	char what[512];

	if (l->error != NULL)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (n < 0)
		what[0] = '\0';
	if (key != NULL)
		l->error = xasprintf("%s:%zu:%zu: key '%s': %s", l->file,
				     line, col, key, what);
	else
		l->error = xasprintf("%s:%zu:%zu: %s", l->file, line, col,
				     what);
	return -1;
}

/* Errors about a node report where it starts. */
#define fail(l, node, key, ...) \
	fail_at((l), (node)->start_mark.line + 1, \
		(node)->start_mark.column + 1, (key), __VA_ARGS__)

static const char *node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return "a scalar";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "nothing";
	}
}

static yaml_node_t *get_node(struct loader *l, int index)
{
	yaml_node_t *n = yaml_document_get_node(&l->doc, index);

	/* libyaml only hands out indexes of nodes it created. */
	ASSERT(n != NULL);
	return n;
}

/* Count a node visit against the budget; -1 when it is exhausted. */
static int visit(struct loader *l, const yaml_node_t *n)
{
	if (++l->nodes > CONFIG_MAX_NODES)
		return fail(l, n, NULL, "configuration too large "
			    "(more than %d YAML nodes, counting aliases)",
			    CONFIG_MAX_NODES);
	return 0;
}

/* ---- scalars ------------------------------------------------------------ */

/* A plain empty scalar, "~" or "null" means "no value" (YAML core schema). */
static bool is_null(const yaml_node_t *n)
{
	const char *v;

	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	v = (const char *)n->data.scalar.value;
	return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	       strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* Kinds of text a string value may hold. */
enum str_kind {
	STR_WORD,       /* no control characters, no white space (host) */
	STR_TEXT,       /* no control characters */
	STR_SECRET,     /* anything but NUL, CR and LF */
	STR_COMMAND,    /* anything but NUL (shell text may span lines) */
};

/* The scalar's text, borrowed from the document, checked against kind. */
static int scalar_text(struct loader *l, const yaml_node_t *n, const char *key,
		       enum str_kind kind, const char **value_r)
{
	const unsigned char *v, *p;
	size_t len;

	if (n->type != YAML_SCALAR_NODE)
		return fail(l, n, key, "expected a string, got %s",
			    node_kind(n));
	v = n->data.scalar.value;
	len = n->data.scalar.length;
	if (strlen((const char *)v) != len)
		return fail(l, n, key, "contains a NUL byte");
	if (len == 0)
		return fail(l, n, key, "must not be empty");
	for (p = v; *p != '\0'; p++) {
		bool bad;

		switch (kind) {
		case STR_WORD:
			bad = *p <= ' ' || *p == 0x7f;
			break;
		case STR_TEXT:
			bad = *p < ' ' || *p == 0x7f;
			break;
		case STR_SECRET:
			bad = *p == '\r' || *p == '\n';
			break;
		default:
			bad = false;
			break;
		}
		if (bad) {
			/* Never echo the value: it may be a secret. */
			return fail(l, n, key, kind == STR_WORD ?
				    "contains white space or a control character" :
				    "contains a control character");
		}
	}
	l->bytes += len;
	if (l->bytes > CONFIG_MAX_BYTES)
		return fail(l, n, NULL, "configuration too large "
			    "(its values expand to more than %d bytes)",
			    CONFIG_MAX_BYTES);
	*value_r = (const char *)v;
	return 0;
}

static int get_string(struct loader *l, const yaml_node_t *n, const char *key,
		      enum str_kind kind, char **value_r)
{
	const char *v;

	if (scalar_text(l, n, key, kind, &v) < 0)
		return -1;
	free(*value_r);
	*value_r = xstrdup(v);
	return 0;
}

static int get_enum(struct loader *l, const yaml_node_t *n, const char *key,
		    const char *const *names, size_t n_names, int *value_r)
{
	const char *v;
	char choices[256];
	size_t i, off = 0;

	if (scalar_text(l, n, key, STR_TEXT, &v) < 0)
		return -1;
	for (i = 0; i < n_names; i++) {
		if (names[i] != NULL && strcmp(v, names[i]) == 0) {
			*value_r = (int)i;
			return 0;
		}
	}
	choices[0] = '\0';
	for (i = 0; i < n_names; i++) {
		int k;

		if (names[i] == NULL)
			continue;
		k = snprintf(choices + off, sizeof(choices) - off, "%s%s",
			     off ? ", " : "", names[i]);
		if (k < 0 || (size_t)k >= sizeof(choices) - off)
			break;
		off += (size_t)k;
	}
	return fail(l, n, key, "'%s' is not one of %s", v, choices);
}

static int get_uint(struct loader *l, const yaml_node_t *n, const char *key,
		    unsigned min, unsigned max, unsigned *value_r)
{
	const char *v, *p;
	unsigned long long x = 0;

	if (n->type != YAML_SCALAR_NODE)
		return fail(l, n, key, "expected a number from %u to %u, "
			    "got %s", min, max, node_kind(n));
	if (scalar_text(l, n, key, STR_TEXT, &v) < 0)
		return -1;
	for (p = v; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return fail(l, n, key, "'%s' is not a number", v);
		x = x * 10 + (unsigned)(*p - '0');
		if (x > max)
			break;
	}
	if (x < min || x > max)
		return fail(l, n, key, "%s is out of range (%u to %u)", v,
			    min, max);
	*value_r = (unsigned)x;
	return 0;
}

static int get_bool(struct loader *l, const yaml_node_t *n, const char *key,
		    bool *value_r)
{
	const char *v;

	if (scalar_text(l, n, key, STR_TEXT, &v) < 0)
		return -1;
	if (strcmp(v, "true") == 0 || strcmp(v, "True") == 0 ||
	    strcmp(v, "TRUE") == 0) {
		*value_r = true;
		return 0;
	}
	if (strcmp(v, "false") == 0 || strcmp(v, "False") == 0 ||
	    strcmp(v, "FALSE") == 0) {
		*value_r = false;
		return 0;
	}
	return fail(l, n, key, "'%s' is not true or false", v);
}

/* ---- paths -------------------------------------------------------------- */

static const char *home_dir(void)
{
	const char *h = getenv("HOME");
	struct passwd *pw;

	if (h != NULL && h[0] == '/')
		return h;
	pw = getpwuid(getuid());
	if (pw != NULL && pw->pw_dir != NULL && pw->pw_dir[0] == '/')
		return pw->pw_dir;
	return NULL;
}

/* Expand a leading "~/" (or a lone "~"), require an absolute result, and
 * drop trailing slashes. Returns a malloc'ed path or NULL with *why_r. */
static char *expand_path(const char *p, const char **why_r)
{
	char *r;
	size_t len;

	if (p[0] == '~') {
		const char *home;

		if (p[1] != '\0' && p[1] != '/') {
			*why_r = "'~user' paths are not supported, only '~/'";
			return NULL;
		}
		home = home_dir();
		if (home == NULL) {
			*why_r = "cannot expand '~': HOME is not set";
			return NULL;
		}
		r = xasprintf("%s%s", home, p + 1);
	} else if (p[0] == '/') {
		r = xstrdup(p);
	} else {
		*why_r = "must be an absolute path or start with '~/'";
		return NULL;
	}
	len = strlen(r);
	while (len > 1 && r[len - 1] == '/')
		r[--len] = '\0';
	if (len >= 4096) {
		free(r);
		*why_r = "path too long";
		return NULL;
	}
	return r;
}

static int get_path(struct loader *l, const yaml_node_t *n, const char *key,
		    char **value_r)
{
	const char *v, *why = NULL;
	char *r;

	if (scalar_text(l, n, key, STR_TEXT, &v) < 0)
		return -1;
	r = expand_path(v, &why);
	if (r == NULL)
		return fail(l, n, key, "%s", why);
	free(*value_r);
	*value_r = r;
	return 0;
}

/* The XDG base directory for env (if set to an absolute path) or
 * ~/fallback, plus "/twinbox". */
static char *xdg_dir(const char *env, const char *fallback)
{
	const char *v = getenv(env), *home;

	if (v != NULL && v[0] == '/')
		return xasprintf("%s/twinbox", v);
	home = home_dir();
	if (home == NULL)
		return NULL;
	return xasprintf("%s/%s/twinbox", home, fallback);
}

/* ---- lists -------------------------------------------------------------- */

static void free_list(char ***list, size_t *n)
{
	size_t i;

	for (i = 0; i < *n; i++)
		free((*list)[i]);
	FREE_AND_NULL(*list);
	*n = 0;
}

/* A list of strings, or a single string taken as a one-item list. */
static int get_list(struct loader *l, const yaml_node_t *n, const char *key,
		    char ***list_r, size_t *n_r)
{
	yaml_node_item_t *it;
	size_t n_items, alloc = 0, count = 0;
	char **list = NULL;
	const char *v;

	free_list(list_r, n_r);
	if (n->type == YAML_SCALAR_NODE) {
		if (scalar_text(l, n, key, STR_TEXT, &v) < 0)
			return -1;
		*list_r = xmalloc(sizeof(char *));
		(*list_r)[0] = xstrdup(v);
		*n_r = 1;
		return 0;
	}
	if (n->type != YAML_SEQUENCE_NODE)
		return fail(l, n, key, "expected a list of patterns, got %s",
			    node_kind(n));
	n_items = (size_t)(n->data.sequence.items.top -
			   n->data.sequence.items.start);
	if (n_items > CONFIG_MAX_PATTERNS)
		return fail(l, n, key, "too many patterns (limit %d)",
			    CONFIG_MAX_PATTERNS);
	for (it = n->data.sequence.items.start;
	     it < n->data.sequence.items.top; it++) {
		yaml_node_t *item = get_node(l, *it);

		if (visit(l, item) < 0 ||
		    scalar_text(l, item, key, STR_TEXT, &v) < 0) {
			*list_r = list;
			*n_r = count;
			return -1;
		}
		ALLOC_GROW(list, count + 1, alloc);
		list[count++] = xstrdup(v);
	}
	*list_r = list;
	*n_r = count;
	return 0;
}

/* ---- mappings ----------------------------------------------------------- */

/*
 * Walk a mapping whose keys must come from names[]. For each pair, in file
 * order, rejects non-string, unknown and duplicate keys and stores the
 * key and value nodes by index (the value is NULL for an empty value:
 * "key:", "key: ~"). what names the mapping in messages (NULL
 * for the top level); prefix ("sync.") is put before key names.
 */
static int walk_mapping(struct loader *l, const yaml_node_t *map,
			const char *what, const char *prefix,
			const char *const *names, size_t n_names,
			yaml_node_t **keys, yaml_node_t **values)
{
	yaml_node_pair_t *pair;
	size_t i;

	if (map->type != YAML_MAPPING_NODE) {
		if (what == NULL)
			return fail(l, map, NULL, "the top level must be a "
				    "mapping of keys, got %s", node_kind(map));
		return fail(l, map, what, "expected a mapping, got %s",
			    node_kind(map));
	}
	for (i = 0; i < n_names; i++)
		keys[i] = values[i] = NULL;
	for (pair = map->data.mapping.pairs.start;
	     pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = get_node(l, pair->key);
		yaml_node_t *v = get_node(l, pair->value);
		const char *name;
		char full[128];

		if (visit(l, k) < 0 || visit(l, v) < 0)
			return -1;
		if (k->type != YAML_SCALAR_NODE)
			return fail(l, k, what, "keys must be strings, "
				    "got %s", node_kind(k));
		name = (const char *)k->data.scalar.value;
		for (i = 0; i < n_names; i++)
			if (strcmp(name, names[i]) == 0)
				break;
		if (i == n_names) {
			/* Quote at most a bounded, printable part of it. */
			char shown[64];
			size_t j;

			for (j = 0; j + 1 < sizeof(shown) && name[j]; j++)
				shown[j] = (name[j] >= ' ' && name[j] < 0x7f) ?
					   name[j] : '?';
			shown[j] = '\0';
			snprintf(full, sizeof(full), "%s%s%s", prefix, shown,
				 name[j] ? "..." : "");
			return fail(l, k, full, "unknown key");
		}
		snprintf(full, sizeof(full), "%s%s", prefix, names[i]);
		if (keys[i] != NULL)
			return fail(l, k, full, "duplicate key (first on "
				    "line %zu)", keys[i]->start_mark.line + 1);
		keys[i] = k;
		/* An empty value is the same as leaving the key out. */
		values[i] = is_null(v) ? NULL : v;
	}
	return 0;
}

/* ---- accounts ----------------------------------------------------------- */

enum akey {
	AK_NAME, AK_HOST, AK_PORT, AK_TLS, AK_CA_FILE, AK_FINGERPRINT,
	AK_USER, AK_PASSWORD, AK_PASSWORD_COMMAND, AK_PASSWORD_FILE,
	AK_TOKEN_COMMAND, AK_AUTH, AK_ALLOW_PLAINTEXT, AK_MAILDIR, AK_LAYOUT,
	AK_FOLDERS, AK_SYNC, AK_CONNECTIONS, AK_WATCH, AK_POLL, AK_COPIES,
	AK_GMAIL, AK_COUNT_
};
static const char *const account_keys[AK_COUNT_] = {
	[AK_NAME] = "name", [AK_HOST] = "host", [AK_PORT] = "port",
	[AK_TLS] = "tls", [AK_CA_FILE] = "ca_file",
	[AK_FINGERPRINT] = "fingerprint", [AK_USER] = "user",
	[AK_PASSWORD] = "password", [AK_PASSWORD_COMMAND] = "password_command",
	[AK_PASSWORD_FILE] = "password_file",
	[AK_TOKEN_COMMAND] = "token_command", [AK_AUTH] = "auth",
	[AK_ALLOW_PLAINTEXT] = "allow_plaintext", [AK_MAILDIR] = "maildir",
	[AK_LAYOUT] = "layout", [AK_FOLDERS] = "folders", [AK_SYNC] = "sync",
	[AK_CONNECTIONS] = "connections", [AK_WATCH] = "watch",
	[AK_POLL] = "poll", [AK_COPIES] = "copies", [AK_GMAIL] = "gmail",
};

enum skey { SK_NEW, SK_FLAGS, SK_DELETIONS, SK_MOVES, SK_FOLDERS, SK_COUNT_ };
static const char *const sync_keys[SK_COUNT_] = {
	"new", "flags", "deletions", "moves", "folders",
};

enum fkey { FK_INCLUDE, FK_EXCLUDE, FK_COUNT_ };
static const char *const folder_keys[FK_COUNT_] = { "include", "exclude" };

static bool valid_account_name(const char *s)
{
	const char *p;

	/* "." and ".." would name directories, not files, in state_dir. */
	if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (p = s; *p != '\0'; p++) {
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' ||
		      *p == '-'))
			return false;
	}
	return p != s;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "sha256:4a:1f:..." or 64 hex digits (colons optional between bytes) to
 * "sha256:4A:1F:..."; NULL with *why_r if malformed. */
static char *normalise_fingerprint(const char *v, const char **why_r)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char bytes[32];
	size_t n = 0, i;
	const char *p = v, *colon;
	char *r, *o;

	colon = strchr(v, ':');
	if (colon != NULL && colon - v >= 3 && hexval(v[0]) < 0) {
		/* An algorithm prefix. */
		if (strncasecmp(v, "sha256:", 7) != 0) {
			*why_r = "only sha256 fingerprints are supported";
			return NULL;
		}
		p = v + 7;
	}
	while (*p != '\0') {
		int hi, lo;

		if (n == sizeof(bytes)) {
			*why_r = "too long: a sha256 fingerprint has 32 bytes";
			return NULL;
		}
		hi = hexval(p[0]);
		lo = hi < 0 ? -1 : hexval(p[1]);
		if (hi < 0 || lo < 0) {
			*why_r = "not hex digits (want \"sha256:AA:BB:...\" "
				 "with 32 bytes)";
			return NULL;
		}
		bytes[n++] = (unsigned char)(hi << 4 | lo);
		p += 2;
		if (*p == ':' && p[1] != '\0')
			p++;
	}
	if (n != sizeof(bytes)) {
		*why_r = "too short: a sha256 fingerprint has 32 bytes";
		return NULL;
	}
	r = xmalloc(7 + sizeof(bytes) * 3);
	memcpy(r, "sha256:", 7);
	o = r + 7;
	for (i = 0; i < n; i++) {
		if (i > 0)
			*o++ = ':';
		*o++ = hex[bytes[i] >> 4];
		*o++ = hex[bytes[i] & 15];
	}
	*o = '\0';
	return r;
}

/* localhost, 127.0.0.0/8 or ::1, literally (never resolved). */
static bool is_loopback_host(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return memcmp(&a6, &in6addr_loopback, sizeof(a6)) == 0;
	return false;
}

static int load_sync(struct loader *l, const yaml_node_t *n,
		     struct account_config *a)
{
	enum sync_dir *dirs[SK_COUNT_] = {
		[SK_NEW] = &a->sync_new, [SK_FLAGS] = &a->sync_flags,
		[SK_DELETIONS] = &a->sync_deletions,
		[SK_MOVES] = &a->sync_moves, [SK_FOLDERS] = &a->sync_folders,
	};
	yaml_node_t *keys[SK_COUNT_], *values[SK_COUNT_];
	int v;
	size_t i;

	/* "sync: pull" sets all five. */
	if (n->type == YAML_SCALAR_NODE) {
		if (get_enum(l, n, "sync", sync_dir_names,
			     N_ELEMENTS(sync_dir_names), &v) < 0)
			return -1;
		for (i = 0; i < SK_COUNT_; i++)
			*dirs[i] = (enum sync_dir)v;
		return 0;
	}
	if (walk_mapping(l, n, "sync", "sync.", sync_keys, SK_COUNT_, keys,
			 values) < 0)
		return -1;
	for (i = 0; i < SK_COUNT_; i++) {
		char full[32];

		if (values[i] == NULL)
			continue;
		snprintf(full, sizeof(full), "sync.%s", sync_keys[i]);
		if (get_enum(l, values[i], full, sync_dir_names,
			     N_ELEMENTS(sync_dir_names), &v) < 0)
			return -1;
		*dirs[i] = (enum sync_dir)v;
	}
	return 0;
}

static int load_folders(struct loader *l, const yaml_node_t *n,
			struct account_config *a)
{
	yaml_node_t *keys[FK_COUNT_], *values[FK_COUNT_];

	if (walk_mapping(l, n, "folders", "folders.", folder_keys, FK_COUNT_,
			 keys, values) < 0)
		return -1;
	if (values[FK_INCLUDE] != NULL &&
	    get_list(l, values[FK_INCLUDE], "folders.include", &a->include,
		     &a->n_include) < 0)
		return -1;
	if (values[FK_EXCLUDE] != NULL &&
	    get_list(l, values[FK_EXCLUDE], "folders.exclude", &a->exclude,
		     &a->n_exclude) < 0)
		return -1;
	return 0;
}

/* The checks that involve more than one key. */
static int check_account(struct loader *l, const yaml_node_t *map,
			 yaml_node_t **keys, yaml_node_t **values,
			 struct account_config *a)
{
	static const enum akey required[] = {
		AK_NAME, AK_HOST, AK_USER, AK_MAILDIR,
	};
	static const enum akey pw_keys[] = {
		AK_PASSWORD, AK_PASSWORD_COMMAND, AK_PASSWORD_FILE,
	};
	const char *const *fields[AK_COUNT_] = {
		[AK_NAME] = (const char *const *)&a->name,
		[AK_HOST] = (const char *const *)&a->host,
		[AK_USER] = (const char *const *)&a->user,
		[AK_MAILDIR] = (const char *const *)&a->maildir,
	};
	enum akey first_pw = AK_COUNT_;
	size_t i;
	bool oauth = a->auth == AUTH_XOAUTH2 || a->auth == AUTH_OAUTHBEARER;

	for (i = 0; i < N_ELEMENTS(required); i++) {
		if (*fields[required[i]] == NULL)
			return fail(l, map, account_keys[required[i]],
				    "missing: every account needs name, "
				    "host, user and maildir");
	}
	for (i = 0; i < N_ELEMENTS(pw_keys); i++) {
		enum akey k = pw_keys[i];
		bool set = (k == AK_PASSWORD && a->password) ||
			   (k == AK_PASSWORD_COMMAND && a->password_command) ||
			   (k == AK_PASSWORD_FILE && a->password_file);

		if (!set)
			continue;
		if (first_pw != AK_COUNT_)
			return fail(l, keys[k], account_keys[k], "conflicts "
				    "with '%s' on line %zu: set only one of "
				    "password, password_command and "
				    "password_file", account_keys[first_pw],
				    keys[first_pw]->start_mark.line + 1);
		first_pw = k;
	}
	if (oauth && a->token_command == NULL)
		return fail(l, values[AK_AUTH], "auth", "%s needs "
			    "token_command", config_auth_name(a->auth));
	if (oauth && first_pw != AK_COUNT_)
		return fail(l, keys[first_pw], account_keys[first_pw],
			    "not used with auth %s (it takes token_command)",
			    config_auth_name(a->auth));
	if ((a->auth == AUTH_PLAIN || a->auth == AUTH_LOGIN) &&
	    a->token_command != NULL)
		return fail(l, keys[AK_TOKEN_COMMAND], "token_command",
			    "needs auth xoauth2, oauthbearer or auto");
	if (a->auth == AUTH_AUTO && a->token_command != NULL &&
	    first_pw != AK_COUNT_)
		return fail(l, keys[AK_TOKEN_COMMAND], "token_command",
			    "conflicts with '%s': set a password or a token, "
			    "not both", account_keys[first_pw]);
	if (!oauth && a->token_command == NULL && first_pw == AK_COUNT_)
		return fail(l, map, "password", "missing: set password, "
			    "password_command, password_file or (for OAuth) "
			    "token_command");

	if (a->tls == TLS_NONE) {
		if (!a->allow_plaintext && !is_loopback_host(a->host))
			return fail(l, values[AK_TLS], "tls", "'none' would "
				    "send the credentials in clear text: only "
				    "allowed for localhost, 127.0.0.0/8 and "
				    "::1, or with allow_plaintext: true");
		if (a->ca_file != NULL)
			return fail(l, keys[AK_CA_FILE], "ca_file",
				    "not used with tls: none");
		if (a->fingerprint != NULL)
			return fail(l, keys[AK_FINGERPRINT], "fingerprint",
				    "not used with tls: none");
	}
	if (a->port == 0)
		a->port = a->tls == TLS_IMPLICIT ? 993 : 143;
	return 0;
}

static int load_account(struct loader *l, const yaml_node_t *map,
			struct account_config *a)
{
	yaml_node_t *keys[AK_COUNT_], *values[AK_COUNT_];
	size_t i;
	int v;

	a->file = l->file;
	a->line = (unsigned)map->start_mark.line + 1;
	a->tls = TLS_IMPLICIT;
	a->auth = AUTH_AUTO;
	a->layout = LAYOUT_VERBATIM;
	a->sync_new = a->sync_flags = a->sync_deletions = a->sync_moves =
		a->sync_folders = SYNC_BOTH;
	a->connections = 4;
	a->include = xmalloc(sizeof(char *));
	a->include[0] = xstrdup("*");
	a->n_include = 1;
	a->watch = xmalloc(sizeof(char *));
	a->watch[0] = xstrdup("INBOX");
	a->n_watch = 1;
	a->poll = 300;

	if (walk_mapping(l, map, "accounts", "", account_keys, AK_COUNT_,
			 keys, values) < 0)
		return -1;
	l->name_node = values[AK_NAME];
	for (i = 0; i < AK_COUNT_; i++) {
		const yaml_node_t *n = values[i];
		const char *key = account_keys[i];
		int r = 0;

		if (n == NULL)
			continue;
		switch ((enum akey)i) {
		case AK_NAME:
			r = get_string(l, n, key, STR_WORD, &a->name);
			if (r == 0 && a->name != NULL &&
			    !valid_account_name(a->name))
				r = fail(l, n, key, "'%s' is not a valid "
					 "account name (letters, digits, '_', "
					 "'.' and '-' only)", a->name);
			break;
		case AK_HOST:
			r = get_string(l, n, key, STR_WORD, &a->host);
			break;
		case AK_PORT:
			r = get_uint(l, n, key, 1, 65535, &a->port);
			break;
		case AK_TLS:
			r = get_enum(l, n, key, tls_names,
				     N_ELEMENTS(tls_names), &v);
			a->tls = (enum tls_mode)v;
			break;
		case AK_CA_FILE:
			r = get_path(l, n, key, &a->ca_file);
			break;
		case AK_FINGERPRINT: {
			const char *s, *why = NULL;

			r = scalar_text(l, n, key, STR_WORD, &s);
			if (r == 0) {
				a->fingerprint = normalise_fingerprint(s, &why);
				if (a->fingerprint == NULL)
					r = fail(l, n, key, "%s", why);
			}
			break;
		}
		case AK_USER:
			r = get_string(l, n, key, STR_TEXT, &a->user);
			break;
		case AK_PASSWORD:
			r = get_string(l, n, key, STR_SECRET, &a->password);
			if (a->password != NULL)
				l->has_password = true;
			break;
		case AK_PASSWORD_COMMAND:
			r = get_string(l, n, key, STR_COMMAND,
				       &a->password_command);
			break;
		case AK_PASSWORD_FILE:
			r = get_path(l, n, key, &a->password_file);
			break;
		case AK_TOKEN_COMMAND:
			r = get_string(l, n, key, STR_COMMAND,
				       &a->token_command);
			break;
		case AK_AUTH:
			r = get_enum(l, n, key, auth_names,
				     N_ELEMENTS(auth_names), &v);
			a->auth = (enum auth_mech)v;
			break;
		case AK_ALLOW_PLAINTEXT:
			r = get_bool(l, n, key, &a->allow_plaintext);
			break;
		case AK_MAILDIR:
			r = get_path(l, n, key, &a->maildir);
			break;
		case AK_LAYOUT:
			r = get_enum(l, n, key, layout_names,
				     N_ELEMENTS(layout_names), &v);
			a->layout = (enum layout)v;
			break;
		case AK_FOLDERS:
			r = load_folders(l, n, a);
			break;
		case AK_SYNC:
			r = load_sync(l, n, a);
			break;
		case AK_CONNECTIONS:
			r = get_uint(l, n, key, 1, 32, &a->connections);
			break;
		case AK_WATCH:
			r = get_list(l, n, key, &a->watch, &a->n_watch);
			break;
		case AK_POLL: {
			const char *s;

			r = scalar_text(l, n, key, STR_TEXT, &s);
			if (r == 0 && config_parse_duration(s, &a->poll) < 0)
				r = fail(l, n, key, "'%s' is not a duration "
					 "from 1s to 24h (e.g. 30s, 5m, 1h)", s);
			break;
		}
		case AK_COPIES:
			r = get_enum(l, n, key, copies_names,
				     N_ELEMENTS(copies_names), &v);
			a->copies = (enum copies_mode)v;
			break;
		case AK_GMAIL:
			r = get_bool(l, n, key, &a->gmail);
			break;
		case AK_COUNT_:
			BUG("bad account key %zu", i);
		}
		if (r < 0)
			return -1;
	}
	return check_account(l, map, keys, values, a);
}

static void account_release(struct account_config *a)
{
	free(a->name);
	free(a->host);
	free(a->ca_file);
	free(a->fingerprint);
	free(a->user);
	if (a->password != NULL)
		secure_zero(a->password, strlen(a->password));
	free(a->password);
	free(a->password_command);
	free(a->password_file);
	free(a->token_command);
	free(a->maildir);
	free_list(&a->include, &a->n_include);
	free_list(&a->exclude, &a->n_exclude);
	free_list(&a->watch, &a->n_watch);
}

void config_free(struct config **cp)
{
	struct config *c = *cp;
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->n_accounts; i++)
		account_release(&c->accounts[i]);
	free(c->accounts);
	free(c->state_dir);
	free(c->file);
	free(c);
	*cp = NULL;
}

/* ---- the whole file ----------------------------------------------------- */

enum tkey { TK_STATE_DIR, TK_ACCOUNTS, TK_COUNT_ };
static const char *const top_keys[TK_COUNT_] = { "state_dir", "accounts" };

static int load_config(struct loader *l, struct config *c)
{
	yaml_node_t *root = yaml_document_get_root_node(&l->doc);
	yaml_node_t *keys[TK_COUNT_], *values[TK_COUNT_], *list;
	yaml_node_item_t *it;
	size_t n, i;

	if (root == NULL)
		return fail_at(l, 1, 1, "accounts", "missing: the "
			       "configuration is empty");
	if (visit(l, root) < 0 ||
	    walk_mapping(l, root, NULL, "", top_keys, TK_COUNT_, keys,
			 values) < 0)
		return -1;
	if (values[TK_STATE_DIR] != NULL &&
	    get_path(l, values[TK_STATE_DIR], "state_dir", &c->state_dir) < 0)
		return -1;
	if (c->state_dir == NULL) {
		c->state_dir = xdg_dir("XDG_STATE_HOME", ".local/state");
		if (c->state_dir == NULL)
			return fail(l, root, "state_dir", "no default without "
				    "a home directory: set HOME or state_dir");
	}

	list = values[TK_ACCOUNTS];
	if (list == NULL)
		return fail(l, keys[TK_ACCOUNTS] ? keys[TK_ACCOUNTS] : root,
			    "accounts",
			    "missing: define at least one account");
	if (list->type != YAML_SEQUENCE_NODE)
		return fail(l, list, "accounts", "expected a list of "
			    "accounts, got %s", node_kind(list));
	n = (size_t)(list->data.sequence.items.top -
		     list->data.sequence.items.start);
	if (n == 0)
		return fail(l, list, "accounts", "empty: define at least one "
			    "account");
	if (n > CONFIG_MAX_ACCOUNTS)
		return fail(l, list, "accounts", "too many accounts "
			    "(limit %d)", CONFIG_MAX_ACCOUNTS);
	c->accounts = xcalloc(n, sizeof(*c->accounts));
	for (it = list->data.sequence.items.start;
	     it < list->data.sequence.items.top; it++) {
		yaml_node_t *item = get_node(l, *it);
		struct account_config *a = &c->accounts[c->n_accounts++];

		if (visit(l, item) < 0)
			return -1;
		l->name_node = NULL;
		if (load_account(l, item, a) < 0)
			return -1;
		for (i = 0; i + 1 < c->n_accounts; i++) {
			if (strcmp(c->accounts[i].name, a->name) == 0)
				return fail(l, l->name_node, "name",
					    "duplicate account name '%s' "
					    "(first on line %u)", a->name,
					    c->accounts[i].line);
		}
	}
	return 0;
}

static void yaml_failure(struct loader *l, const yaml_parser_t *p)
{
	size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
	const char *problem = p->problem ? p->problem : "unknown error";

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		fail_at(l, 1, 1, NULL, "out of memory parsing YAML");
		return;
	case YAML_READER_ERROR: {
		/* Reader errors carry a byte offset, not a mark. */
		size_t i, end = p->problem_offset < l->len ?
				p->problem_offset : l->len;

		line = col = 1;
		for (i = 0; i < end; i++) {
			if (l->data[i] == '\n') {
				line++;
				col = 1;
			} else {
				col++;
			}
		}
		fail_at(l, line, col, NULL, "invalid YAML: %s", problem);
		return;
	}
	default:
		if (p->context != NULL)
			fail_at(l, line, col, NULL, "invalid YAML: %s "
				"(%s on line %zu)", problem, p->context,
				p->context_mark.line + 1);
		else
			fail_at(l, line, col, NULL, "invalid YAML: %s",
				problem);
		return;
	}
}

static int parse_yaml(struct loader *l)
{
	yaml_parser_t parser;
	yaml_document_t extra;
	int ret = 0;

	if (!yaml_parser_initialize(&parser))
		return fail_at(l, 1, 1, NULL, "cannot initialise libyaml");
	yaml_parser_set_input_string(&parser, l->data, l->len);
	if (!yaml_parser_load(&parser, &l->doc)) {
		yaml_failure(l, &parser);
		ret = -1;
	} else {
		l->have_doc = true;
		/* A second document would otherwise be ignored silently. */
		if (yaml_document_get_root_node(&l->doc) != NULL) {
			if (!yaml_parser_load(&parser, &extra)) {
				yaml_failure(l, &parser);
				ret = -1;
			} else {
				yaml_node_t *r =
					yaml_document_get_root_node(&extra);

				if (r != NULL)
					ret = fail(l, r, NULL, "a second YAML "
						   "document: the file must "
						   "hold only one");
				yaml_document_delete(&extra);
			}
		}
	}
	yaml_parser_delete(&parser);
	return ret;
}

static int load_buffer(const char *name, const void *data, size_t len,
		       struct config **config_r, char **error_r,
		       bool *has_password_r)
{
	struct loader l;
	struct config *c = xcalloc(1, sizeof(*c));
	int r;

	memset(&l, 0, sizeof(l));
	c->file = xstrdup(name);
	l.file = c->file;
	l.data = data;
	l.len = len;
	if (len > CONFIG_MAX_FILE_SIZE)
		r = fail_at(&l, 1, 1, NULL, "file too large (over %d bytes)",
			    CONFIG_MAX_FILE_SIZE);
	else
		r = parse_yaml(&l);
	if (r == 0)
		r = load_config(&l, c);
	if (l.have_doc)
		yaml_document_delete(&l.doc);
	if (r < 0) {
		config_free(&c);
		*error_r = l.error ? l.error :
			   xasprintf("%s: invalid configuration", name);
		return -1;
	}
	*has_password_r = l.has_password;
	*config_r = c;
	return 0;
}

int config_load_buffer(const char *name, const void *data, size_t len,
		       struct config **config_r, char **error_r)
{
	bool has_password;

	return load_buffer(name, data, len, config_r, error_r, &has_password);
}

/* Read the whole file, at most CONFIG_MAX_FILE_SIZE bytes. */
static int read_file(const char *path, unsigned char **data_r, size_t *len_r,
		     mode_t *mode_r, char **error_r)
{
	struct stat st;
	unsigned char *data;
	size_t len = 0, cap;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		*error_r = xasprintf("cannot open configuration file '%s': %s",
				     path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		*error_r = xasprintf("cannot stat configuration file '%s': %s",
				     path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		*error_r = xasprintf("configuration file '%s' is %s", path,
				     S_ISDIR(st.st_mode) ? "a directory" :
				     "not a regular file");
		close(fd);
		return -1;
	}
	cap = CONFIG_MAX_FILE_SIZE + 1;
	data = xmalloc(cap);
	for (;;) {
		ssize_t n = read(fd, data + len, cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*error_r = xasprintf("cannot read configuration file "
					     "'%s': %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == cap) {
			*error_r = xasprintf("configuration file '%s' is too "
					     "large (over %d bytes)", path,
					     CONFIG_MAX_FILE_SIZE);
			goto fail;
		}
	}
	close(fd);
	*data_r = data;
	*len_r = len;
	*mode_r = st.st_mode;
	return 0;
fail:
	secure_zero(data, len);
	free(data);
	close(fd);
	return -1;
}

int config_load(const char *path, struct config **config_r, char **error_r)
{
	char *dflt = NULL;
	unsigned char *data;
	size_t len;
	mode_t mode;
	bool has_password = false;
	int r;

	if (path == NULL) {
		char *dir = xdg_dir("XDG_CONFIG_HOME", ".config");

		if (dir == NULL) {
			*error_r = xstrdup("no default configuration file "
					   "without a home directory: set "
					   "HOME or use -c FILE");
			return -1;
		}
		dflt = xasprintf("%s/config.yaml", dir);
		free(dir);
		path = dflt;
	}
	r = read_file(path, &data, &len, &mode, error_r);
	if (r == 0) {
		r = load_buffer(path, data, len, config_r, error_r,
				&has_password);
		secure_zero(data, len);
		free(data);
	}
	if (r == 0 && has_password && (mode & (S_IRGRP | S_IROTH)) != 0)
		log_warn("configuration file '%s' holds a password and is "
			 "readable by %s: chmod 600 it", path,
			 (mode & S_IRGRP) && (mode & S_IROTH) ?
			 "group and others" :
			 (mode & S_IRGRP) ? "its group" : "others");
	free(dflt);
	return r;
}

const struct account_config *
config_find_account(const struct config *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n_accounts; i++)
		if (strcmp(c->accounts[i].name, name) == 0)
			return &c->accounts[i];
	return NULL;
}

/* A pattern matches a name equal to it, so "[Gmail]/All Mail" selects that
 * folder although "[Gmail]" is a bracket expression to fnmatch(3). */
static bool pattern_matches(const char *pattern, const char *name)
{
	return strcmp(pattern, name) == 0 || fnmatch(pattern, name, 0) == 0;
}

bool config_folder_selected(const struct account_config *a, const char *name)
{
	size_t i;
	bool included = false;

	for (i = 0; i < a->n_include && !included; i++)
		included = pattern_matches(a->include[i], name);
	if (!included)
		return false;
	for (i = 0; i < a->n_exclude; i++)
		if (pattern_matches(a->exclude[i], name))
			return false;
	return true;
}
