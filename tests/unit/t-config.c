/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * t-config.c - the YAML configuration loader, secrets and folder globs.
 *
 * Every case writes its YAML into a private mkdtemp directory, which is also
 * HOME, so "~/" expansion and the XDG defaults are predictable.
 */
#include "common.h"
#include "config/config.h"
#include "util/log.h"
#include "tap.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmpdir;
static int file_no;

#define BASE \
	"accounts:\n" \
	"  - name: a\n" \
	"    host: imap.example.org\n" \
	"    user: u\n" \
	"    password: s3cr3t\n" \
	"    maildir: ~/Mail\n"

static char *write_file_mode(const char *yaml, size_t len, mode_t mode)
{
	char *path = xasprintf("%s/c%d.yaml", tmpdir, ++file_no);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, yaml, len) != (ssize_t)len || close(fd) < 0)
		BUG("cannot write '%s'", path);
	if (chmod(path, mode) < 0)
		BUG("cannot chmod '%s'", path);
	return path;
}

static char *write_file(const char *yaml)
{
	return write_file_mode(yaml, strlen(yaml), 0600);
}

/* Load yaml; NULL (and a failed test) on error. */
static struct config *load_ok(const char *yaml, const char *name)
{
	char *path = write_file(yaml), *error = NULL;
	struct config *c = NULL;

	if (!ok(config_load(path, &c, &error) == 0, "%s: loads", name))
		printf("#   error: %s\n", error ? error : "(none)");
	free(error);
	free(path);
	return c;
}

/* Load yaml, expect failure with the message "FILE:" + want. Returns the
 * message (malloc'ed) for further checks. */
static char *load_err(const char *yaml, const char *want, const char *name)
{
	char *path = write_file(yaml), *error = NULL, *full;
	struct config *c = NULL;
	int r = config_load(path, &c, &error);

	ok(r == -1 && c == NULL, "%s: fails", name);
	full = xasprintf("%s:%s", path, want);
	is_str(error, full, "%s: message", name);
	config_free(&c);
	free(full);
	free(path);
	return error ? error : xstrdup("");
}

static void err(const char *yaml, const char *want, const char *name)
{
	free(load_err(yaml, want, name));
}

/* Only check that the message contains want. */
static void err_has(const char *yaml, const char *want, const char *name)
{
	char *path = write_file(yaml), *error = NULL;
	struct config *c = NULL;

	ok(config_load(path, &c, &error) == -1, "%s: fails", name);
	if (!ok(error != NULL && strstr(error, want) != NULL,
		"%s: message has '%s'", name, want))
		printf("#   got: %s\n", error ? error : "(null)");
	free(error);
	free(path);
}

static void test_full(void)
{
	static const char yaml[] =
		"# a comment\n"
		"state_dir: /var/lib/tb/\n"
		"accounts:\n"
		"  - name: personal\n"
		"    host: imap.example.org\n"
		"    port: 10993\n"
		"    tls: starttls\n"
		"    ca_file: ~/ca.pem\n"
		"    fingerprint: \"sha256:4a:1f:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd\"\n"
		"    user: alice@example.org\n"
		"    password_command: \"pass show mail/personal\"\n"
		"    auth: login\n"
		"    maildir: ~/Mail/personal/\n"
		"    layout: maildir++\n"
		"    folders:\n"
		"      include: [\"INBOX\", \"Lists/*\"]\n"
		"      exclude:\n"
		"        - \"[Gmail]/All Mail\"\n"
		"    sync:\n"
		"      new: pull\n"
		"      flags: push\n"
		"      deletions: none\n"
		"      moves: both\n"
		"      folders: pull\n"
		"    connections: 32\n"
		"    copies: copy\n"
		"    gmail: true\n"
		"    allow_plaintext: false\n"
		"  - name: Work_2.x-y\n"
		"    host: 127.0.0.1\n"
		"    tls: none\n"
		"    user: bob\n"
		"    auth: xoauth2\n"
		"    token_command: oauth2-helper work\n"
		"    maildir: /srv/mail\n";
	struct config *c = load_ok(yaml, "full config");
	const struct account_config *a, *b;
	char *s;

	if (c == NULL)
		return;
	is_int(c->n_accounts, 2, "full: two accounts");
	is_str(c->state_dir, "/var/lib/tb", "full: state_dir, slash dropped");
	a = &c->accounts[0];
	is_str(a->name, "personal", "full: name");
	is_str(a->host, "imap.example.org", "full: host");
	is_int(a->port, 10993, "full: port");
	is_int(a->tls, TLS_STARTTLS, "full: tls");
	s = xasprintf("%s/ca.pem", tmpdir);
	is_str(a->ca_file, s, "full: ca_file expanded");
	free(s);
	is_str(a->fingerprint, "sha256:4A:1F:00:11:22:33:44:55:66:77:88:99:"
	       "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD",
	       "full: fingerprint normalised");
	is_str(a->user, "alice@example.org", "full: user");
	is_str(a->password_command, "pass show mail/personal",
	       "full: password_command");
	ok(a->password == NULL && a->password_file == NULL &&
	   a->token_command == NULL, "full: other secret sources unset");
	is_int(a->auth, AUTH_LOGIN, "full: auth");
	s = xasprintf("%s/Mail/personal", tmpdir);
	is_str(a->maildir, s, "full: maildir expanded, slash dropped");
	free(s);
	is_int(a->layout, LAYOUT_MAILDIRPP, "full: layout");
	is_int(a->n_include, 2, "full: two includes");
	if (a->n_include == 2) {
		is_str(a->include[0], "INBOX", "full: include 0");
		is_str(a->include[1], "Lists/*", "full: include 1");
	}
	is_int(a->n_exclude, 1, "full: one exclude");
	if (a->n_exclude == 1)
		is_str(a->exclude[0], "[Gmail]/All Mail", "full: exclude 0");
	is_int(a->sync_new, SYNC_PULL, "full: sync.new");
	is_int(a->sync_flags, SYNC_PUSH, "full: sync.flags");
	is_int(a->sync_deletions, SYNC_NONE, "full: sync.deletions");
	is_int(a->sync_moves, SYNC_BOTH, "full: sync.moves");
	is_int(a->sync_folders, SYNC_PULL, "full: sync.folders");
	is_int(a->connections, 32, "full: connections");
	is_int(a->copies, COPIES_COPY, "full: copies");
	ok(a->gmail, "full: gmail");
	ok(!a->allow_plaintext, "full: allow_plaintext");
	is_int(a->line, 4, "full: account line");
	ok(a->file == c->file && strstr(c->file, tmpdir) == c->file,
	   "full: account file");

	b = &c->accounts[1];
	is_str(b->name, "Work_2.x-y", "full: second name");
	is_int(b->tls, TLS_NONE, "full: tls none on loopback");
	is_int(b->port, 143, "full: port default without TLS");
	is_int(b->auth, AUTH_XOAUTH2, "full: auth xoauth2");
	is_str(b->token_command, "oauth2-helper work", "full: token_command");
	is_str(b->maildir, "/srv/mail", "full: absolute maildir");
	is_int(b->line, 29, "full: second account line");

	ok(config_find_account(c, "personal") == a, "find: first");
	ok(config_find_account(c, "Work_2.x-y") == b, "find: second");
	ok(config_find_account(c, "nobody") == NULL, "find: unknown");

	ok(config_folder_selected(a, "INBOX"), "select: INBOX");
	ok(config_folder_selected(a, "Lists/dev/sub"), "select: * spans '/'");
	ok(!config_folder_selected(a, "Sent"), "select: not included");
	config_free(&c);
	ok(c == NULL, "config_free sets NULL");
}

static void test_defaults(void)
{
	struct config *c;
	const struct account_config *a;
	char *s;

	unsetenv("XDG_STATE_HOME");
	c = load_ok(BASE, "defaults");
	if (c == NULL)
		return;
	a = &c->accounts[0];
	s = xasprintf("%s/.local/state/twinbox", tmpdir);
	is_str(c->state_dir, s, "defaults: state_dir under HOME");
	free(s);
	is_int(a->port, 993, "defaults: port 993");
	is_int(a->tls, TLS_IMPLICIT, "defaults: tls implicit");
	is_int(a->auth, AUTH_AUTO, "defaults: auth auto");
	is_int(a->layout, LAYOUT_VERBATIM, "defaults: layout verbatim");
	ok(a->n_include == 1 && strcmp(a->include[0], "*") == 0,
	   "defaults: include [\"*\"]");
	is_int(a->n_exclude, 0, "defaults: no exclude");
	ok(a->sync_new == SYNC_BOTH && a->sync_flags == SYNC_BOTH &&
	   a->sync_deletions == SYNC_BOTH && a->sync_moves == SYNC_BOTH &&
	   a->sync_folders == SYNC_BOTH, "defaults: sync both");
	is_int(a->connections, 4, "defaults: 4 connections");
	is_int(a->copies, COPIES_LINK, "defaults: copies link");
	ok(!a->gmail, "defaults: gmail off");
	ok(a->ca_file == NULL && a->fingerprint == NULL, "defaults: no pins");
	ok(!a->allow_plaintext, "defaults: no plaintext");
	s = xasprintf("%s/Mail", tmpdir);
	is_str(a->maildir, s, "defaults: ~/ expanded");
	free(s);
	is_str(a->password, "s3cr3t", "defaults: inline password");
	ok(config_folder_selected(a, "INBOX") &&
	   config_folder_selected(a, "a/b/c"), "defaults: all selected");
	config_free(&c);

	setenv("XDG_STATE_HOME", "/xdg/state", 1);
	c = load_ok(BASE, "XDG_STATE_HOME");
	if (c != NULL)
		is_str(c->state_dir, "/xdg/state/twinbox",
		       "XDG_STATE_HOME: used");
	config_free(&c);
	setenv("XDG_STATE_HOME", "relative", 1);
	c = load_ok(BASE, "relative XDG_STATE_HOME");
	s = xasprintf("%s/.local/state/twinbox", tmpdir);
	if (c != NULL)
		is_str(c->state_dir, s, "relative XDG_STATE_HOME: ignored");
	free(s);
	config_free(&c);
	unsetenv("XDG_STATE_HOME");

	c = load_ok("state_dir: ~/st\n" BASE, "state_dir ~");
	s = xasprintf("%s/st", tmpdir);
	if (c != NULL)
		is_str(c->state_dir, s, "state_dir: ~/ expanded");
	free(s);
	config_free(&c);

	c = load_ok(BASE "    port: 1\n    tls: starttls\n", "starttls");
	if (c != NULL) {
		is_int(c->accounts[0].port, 1, "starttls: explicit port kept");
		is_int(c->accounts[0].tls, TLS_STARTTLS, "starttls: tls");
	}
	config_free(&c);
	c = load_ok(BASE "    tls: starttls\n", "starttls default port");
	if (c != NULL)
		is_int(c->accounts[0].port, 143, "starttls: port 143");
	config_free(&c);

	c = load_ok(BASE "    sync: pull\n    folders:\n      include: "
		    "INBOX\n      exclude: []\n", "shorthands");
	if (c != NULL) {
		a = &c->accounts[0];
		ok(a->sync_new == SYNC_PULL && a->sync_flags == SYNC_PULL &&
		   a->sync_deletions == SYNC_PULL &&
		   a->sync_moves == SYNC_PULL && a->sync_folders == SYNC_PULL,
		   "shorthands: sync: pull sets all five");
		ok(a->n_include == 1 && strcmp(a->include[0], "INBOX") == 0,
		   "shorthands: one include from a scalar");
		ok(config_folder_selected(a, "INBOX") &&
		   !config_folder_selected(a, "INBOX/x"),
		   "shorthands: selection");
	}
	config_free(&c);

	c = load_ok(BASE "    ca_file:\n    fingerprint: ~\n    folders:\n"
		    "      include: []\n", "null values");
	if (c != NULL) {
		a = &c->accounts[0];
		ok(a->ca_file == NULL && a->fingerprint == NULL,
		   "null values: unset");
		ok(a->n_include == 0 && !config_folder_selected(a, "INBOX"),
		   "null values: include [] selects nothing");
	}
	config_free(&c);

	c = load_ok(BASE "    fingerprint: 4A1F00112233445566778899aabbccdd"
		    "eeff00112233445566778899AABBCCDD\n", "plain hex pin");
	if (c != NULL)
		is_str(c->accounts[0].fingerprint, "sha256:4A:1F:00:11:22:33:"
		       "44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:"
		       "66:77:88:99:AA:BB:CC:DD", "plain hex pin: normalised");
	config_free(&c);

	c = load_ok("accounts:\n  - {name: a, host: h, user: u, password: p, "
		    "maildir: /m}\n  - {name: b, host: h, user: u, "
		    "password_file: ~/pw, maildir: /m, connections: 1, "
		    "allow_plaintext: true, tls: none}\n", "flow style");
	if (c != NULL) {
		is_int(c->n_accounts, 2, "flow style: two accounts");
		ok(c->accounts[1].allow_plaintext, "flow style: plaintext");
		is_int(c->accounts[1].connections, 1, "flow style: conns");
	}
	config_free(&c);
}

static void test_default_path(void)
{
	char *cfg, *dir, *path, *error = NULL;
	struct config *c = NULL;
	FILE *f;

	cfg = xasprintf("%s/.config", tmpdir);
	dir = xasprintf("%s/twinbox", cfg);
	path = xasprintf("%s/config.yaml", dir);
	if (mkdir(cfg, 0700) < 0 || mkdir(dir, 0700) < 0 ||
	    (f = fopen(path, "w")) == NULL)
		BUG("cannot set up '%s'", path);
	fputs(BASE, f);
	fclose(f);
	chmod(path, 0600);
	unsetenv("XDG_CONFIG_HOME");
	ok(config_load(NULL, &c, &error) == 0, "default path: ~/.config");
	if (c != NULL)
		is_str(c->file, path, "default path: file name");
	config_free(&c);
	FREE_AND_NULL(error);

	setenv("XDG_CONFIG_HOME", tmpdir, 1);
	ok(config_load(NULL, &c, &error) == -1, "default path: XDG missing");
	ok(error != NULL && strstr(error, "cannot open configuration file") &&
	   strstr(error, "/twinbox/config.yaml") &&
	   strstr(error, "No such file"), "default path: says which file");
	FREE_AND_NULL(error);
	setenv("XDG_CONFIG_HOME", cfg, 1);
	ok(config_load(NULL, &c, &error) == 0, "default path: XDG_CONFIG_HOME");
	config_free(&c);
	FREE_AND_NULL(error);
	unsetenv("XDG_CONFIG_HOME");

	ok(config_load(tmpdir, &c, &error) == -1 && error &&
	   strstr(error, "is a directory"), "directory refused");
	free(error);
	free(cfg);
	free(dir);
	free(path);
}

static void test_errors(void)
{
	struct config *c;
	char *e;

	err("", "1:1: key 'accounts': missing: the configuration is empty",
	    "empty file");
	err("# only a comment\n", "1:1: key 'accounts': missing: the "
	    "configuration is empty", "comment only");
	err("- a\n- b\n", "1:1: the top level must be a mapping of keys, "
	    "got a list", "top-level list");
	err("state_dir: /x\n", "1:1: key 'accounts': missing: define at "
	    "least one account", "no accounts key");
	err("accounts: []\n", "1:11: key 'accounts': empty: define at "
	    "least one account", "empty accounts");
	err("accounts: foo\n", "1:11: key 'accounts': expected a list of "
	    "accounts, got a scalar", "accounts scalar");
	err("accounts:\n  - foo\n", "2:5: key 'accounts': expected a "
	    "mapping, got a scalar", "account scalar");
	err("stat_dir: /x\n" BASE, "1:1: key 'stat_dir': unknown key",
	    "unknown top-level key");
	err(BASE "    hots: x\n", "7:5: key 'hots': unknown key",
	    "unknown account key");
	err(BASE "    folders:\n      inlcude: [x]\n",
	    "8:7: key 'folders.inlcude': unknown key", "unknown folders key");
	err(BASE "    sync:\n      new: both\n      flag: pull\n",
	    "9:7: key 'sync.flag': unknown key", "unknown sync key");
	err(BASE "    host: other\n", "7:5: key 'host': duplicate key "
	    "(first on line 3)", "duplicate key");
	err(BASE "    sync: {new: pull, new: push}\n", "7:23: key 'sync.new': "
	    "duplicate key (first on line 7)", "duplicate sync key");
	err(BASE "  - name: a\n    host: h\n    user: u\n    password: p\n"
	    "    maildir: /m\n", "7:11: key 'name': duplicate account name "
	    "'a' (first on line 2)", "duplicate account");
	err(BASE "    ? [x]\n    : y\n", "7:7: key 'accounts': keys must "
	    "be strings, got a list", "non-string key");
	err("accounts:\n  - name: a b\n", "2:11: key 'name': contains white "
	    "space or a control character", "name with space");
	err("accounts:\n  - name: a/b\n", "2:11: key 'name': 'a/b' is not a "
	    "valid account name (letters, digits, '_', '.' and '-' only)",
	    "name with slash");
	err("accounts:\n  - name: ..\n", "2:11: key 'name': '..' is not a "
	    "valid account name (letters, digits, '_', '.' and '-' only)",
	    "name ..");
	err("accounts:\n  - name: \"\"\n", "2:11: key 'name': must not be "
	    "empty", "empty name");
	err("accounts:\n  - name: [a]\n", "2:11: key 'name': expected a "
	    "string, got a list", "name list");
	err("accounts:\n  - host: h\n    user: u\n    maildir: /m\n",
	    "2:5: key 'name': missing: every account needs name, host, user "
	    "and maildir", "missing name");
	err("accounts:\n  - name: a\n    user: u\n    maildir: /m\n",
	    "2:5: key 'host': missing: every account needs name, host, user "
	    "and maildir", "missing host");
	err("accounts:\n  - name: a\n    host: h\n    maildir: /m\n",
	    "2:5: key 'user': missing: every account needs name, host, user "
	    "and maildir", "missing user");
	err("accounts:\n  - name: a\n    host: h\n    user: u\n"
	    "    password: p\n", "2:5: key 'maildir': missing: every account "
	    "needs name, host, user and maildir", "missing maildir");
	err(BASE "    port: 0\n", "7:11: key 'port': 0 is out of range "
	    "(1 to 65535)", "port 0");
	err(BASE "    port: 65536\n", "7:11: key 'port': 65536 is out of "
	    "range (1 to 65535)", "port 65536");
	err(BASE "    port: 99999999999999999999999\n", "7:11: key 'port': "
	    "99999999999999999999999 is out of range (1 to 65535)",
	    "port overflow");
	err(BASE "    port: imap\n", "7:11: key 'port': 'imap' is not a "
	    "number", "port word");
	err(BASE "    port: -1\n", "7:11: key 'port': '-1' is not a number",
	    "port negative");
	err(BASE "    port: {a: 1}\n", "7:11: key 'port': expected a number "
	    "from 1 to 65535, got a mapping", "port mapping");
	c = load_ok(BASE "    port:\n    tls: ~\n    connections: null\n"
		    "    sync: {new: }\n", "empty values");
	if (c != NULL) {
		is_int(c->accounts[0].port, 993, "empty port: default");
		is_int(c->accounts[0].tls, TLS_IMPLICIT, "empty tls: default");
		is_int(c->accounts[0].connections, 4, "null connections");
		is_int(c->accounts[0].sync_new, SYNC_BOTH, "empty sync.new");
	}
	config_free(&c);
	err("accounts:\n  - name:\n    host: h\n", "2:5: key 'name': "
	    "missing: every account needs name, host, user and maildir",
	    "empty name value");
	err("accounts:\n", "1:1: key 'accounts': missing: define at least "
	    "one account", "empty accounts value");
	err(BASE "    connections: 0\n", "7:18: key 'connections': 0 is out "
	    "of range (1 to 32)", "connections 0");
	err(BASE "    connections: 33\n", "7:18: key 'connections': 33 is "
	    "out of range (1 to 32)", "connections 33");
	err(BASE "    allow_plaintext: yes\n", "7:22: key 'allow_plaintext': "
	    "'yes' is not true or false", "boolean yes");
	err(BASE "    tls: ssl\n", "7:10: key 'tls': 'ssl' is not one of "
	    "implicit, starttls, none", "bad tls");
	err(BASE "    auth: cram-md5\n", "7:11: key 'auth': 'cram-md5' is "
	    "not one of auto, plain, login, xoauth2, oauthbearer", "bad auth");
	err(BASE "    copies: symlink\n", "7:13: key 'copies': 'symlink' is "
	    "not one of link, copy", "bad copies");
	err(BASE "    gmail: 1\n", "7:12: key 'gmail': '1' is not true or "
	    "false", "boolean gmail");
	err(BASE "    layout: mbox\n", "7:13: key 'layout': 'mbox' is not "
	    "one of verbatim, maildir++", "bad layout");
	err(BASE "    sync:\n      moves: sideways\n", "8:14: key "
	    "'sync.moves': 'sideways' is not one of none, pull, push, both",
	    "bad sync value");
	err(BASE "    sync: [pull]\n", "7:11: key 'sync': expected a mapping, "
	    "got a list", "sync list");
	err(BASE "    folders: all\n", "7:14: key 'folders': expected a "
	    "mapping, got a scalar", "folders scalar");
	err(BASE "    folders:\n      include: [[a]]\n", "8:17: key "
	    "'folders.include': expected a string, got a list",
	    "include nested list");
	err(BASE "    folders:\n      exclude: {a: b}\n", "8:16: key "
	    "'folders.exclude': expected a list of patterns, got a mapping",
	    "exclude mapping");
	err("accounts:\n  - name: a\n    host: h\n    user: u\n"
	    "    password: p\n    maildir: Mail\n", "6:14: key 'maildir': "
	    "must be an absolute path or start with '~/'", "relative maildir");
	err(BASE "    ca_file: ~bob/ca.pem\n", "7:14: key 'ca_file': '~user' "
	    "paths are not supported, only '~/'", "~user path");
	err("state_dir: state\n" BASE, "1:12: key 'state_dir': must be an "
	    "absolute path or start with '~/'", "relative state_dir");
	err(BASE "    password_file: /pw\n", "7:5: key 'password_file': "
	    "conflicts with 'password' on line 5: set only one of password, "
	    "password_command and password_file", "two password sources");
	err("accounts:\n  - name: a\n    host: h\n    user: u\n"
	    "    maildir: /m\n", "2:5: key 'password': missing: set password, "
	    "password_command, password_file or (for OAuth) token_command",
	    "no password source");
	err("accounts:\n  - name: a\n    host: h\n    user: u\n"
	    "    maildir: /m\n    auth: xoauth2\n", "6:11: key 'auth': "
	    "xoauth2 needs token_command", "xoauth2 without token");
	err(BASE "    auth: oauthbearer\n    token_command: t\n", "5:5: key "
	    "'password': not used with auth oauthbearer (it takes "
	    "token_command)", "oauth with password");
	err(BASE "    auth: plain\n    token_command: t\n", "8:5: key "
	    "'token_command': needs auth xoauth2, oauthbearer or auto",
	    "plain with token");
	err(BASE "    token_command: t\n", "7:5: key 'token_command': "
	    "conflicts with 'password': set a password or a token, not both",
	    "auto with password and token");
	err(BASE "    fingerprint: sha1:00:11\n", "7:18: key 'fingerprint': "
	    "only sha256 fingerprints are supported", "sha1 pin");
	err(BASE "    fingerprint: sha256:00:11\n", "7:18: key 'fingerprint': "
	    "too short: a sha256 fingerprint has 32 bytes", "short pin");
	err(BASE "    fingerprint: sha256:zz\n", "7:18: key 'fingerprint': "
	    "not hex digits (want \"sha256:AA:BB:...\" with 32 bytes)",
	    "non-hex pin");
	err(BASE "    fingerprint: 00112233445566778899AABBCCDDEEFF00112233"
	    "445566778899AABBCCDDEEFF00\n", "7:18: key 'fingerprint': too "
	    "long: a sha256 fingerprint has 32 bytes", "long pin");
	err(BASE "    layout: \"a\\0b\"\n", "7:13: key 'layout': contains a "
	    "NUL byte", "NUL byte");
	err(BASE "    tls: \"a\\nb\"\n", "7:10: key 'tls': contains a "
	    "control character", "newline in a value");
	err("accounts:\n  - name: a\n    host: h\n    user: \"\\x01\"\n",
	    "4:11: key 'user': contains a control character", "control "
	    "character in user");

	/* YAML syntax errors still give a position. */
	e = load_err("accounts:\n  - name: a\n    host: [x\n", "4:1: invalid "
		     "YAML: did not find expected ',' or ']' (while parsing a "
		     "flow sequence on line 3)", "unclosed flow sequence");
	free(e);
	err_has("accounts:\n  - name: a\n  host: h\n", ":3:3: invalid YAML: ",
		"bad indentation");
	err_has("accounts: *nothing\n", ":1:11: invalid YAML: found "
		"undefined alias", "undefined alias");
	err_has("a: \"\xff\"\n", ":1:5: invalid YAML: invalid leading UTF-8 "
		"octet", "invalid UTF-8");
	err(BASE "---\n" BASE, "8:1: a second YAML document: the file must "
	    "hold only one", "two documents");
}

static void test_tls_none(void)
{
	static const char *const good[] = {
		"localhost", "LOCALHOST", "127.0.0.1", "127.255.0.9", "::1",
		"0:0:0:0:0:0:0:1",
	};
	static const char *const bad[] = {
		"imap.example.org", "128.0.0.1", "127.0.0.1.example.org",
		"localhost.example.org", "::2", "10.0.0.1",
	};
	char *yaml, *want;
	struct config *c;
	size_t i;

	for (i = 0; i < N_ELEMENTS(good); i++) {
		yaml = xasprintf("accounts:\n  - name: a\n    host: \"%s\"\n"
				 "    user: u\n    password: p\n    maildir: /m\n"
				 "    tls: none\n", good[i]);
		c = load_ok(yaml, good[i]);
		if (c != NULL)
			is_int(c->accounts[0].port, 143, "tls none %s: port",
			       good[i]);
		config_free(&c);
		free(yaml);
	}
	for (i = 0; i < N_ELEMENTS(bad); i++) {
		yaml = xasprintf("accounts:\n  - name: a\n    host: \"%s\"\n"
				 "    user: u\n    password: p\n    maildir: /m\n"
				 "    tls: none\n", bad[i]);
		want = xasprintf("7:10: key 'tls': 'none' would send the "
				 "credentials in clear text: only allowed for "
				 "localhost, 127.0.0.0/8 and ::1, or with "
				 "allow_plaintext: true");
		err(yaml, want, bad[i]);
		free(want);
		free(yaml);

		yaml = xasprintf("accounts:\n  - name: a\n    host: \"%s\"\n"
				 "    user: u\n    password: p\n    maildir: /m\n"
				 "    tls: none\n    allow_plaintext: true\n",
				 bad[i]);
		c = load_ok(yaml, "allow_plaintext with host");
		config_free(&c);
		free(yaml);
	}
	err("accounts:\n  - name: a\n    host: localhost\n    user: u\n"
	    "    password: p\n    maildir: /m\n    tls: none\n"
	    "    fingerprint: 00112233445566778899AABBCCDDEEFF00112233445566"
	    "778899AABBCCDDEEFF\n", "8:5: key 'fingerprint': not used with "
	    "tls: none", "pin without TLS");
}

/* Fetch the secret of the single account in yaml. */
static int secret_of(const char *yaml, char **secret_r, char **error_r)
{
	char *path = write_file(yaml), *error = NULL;
	struct config *c = NULL;
	int r;

	*secret_r = *error_r = NULL;
	if (config_load(path, &c, &error) < 0) {
		printf("# load failed: %s\n", error);
		free(error);
		free(path);
		return -2;
	}
	r = config_get_secret(&c->accounts[0], secret_r, error_r);
	config_free(&c);
	free(path);
	return r;
}

static void secret_ok(const char *src, const char *want, const char *name)
{
	char *yaml = xasprintf("accounts:\n  - name: acc\n    host: h\n"
			       "    user: u\n    maildir: /m\n%s", src);
	char *secret, *error;
	int r = secret_of(yaml, &secret, &error);

	is_int(r, 0, "%s: ok", name);
	is_str(secret, want, "%s: secret", name);
	if (error)
		printf("#   error: %s\n", error);
	if (secret)
		secure_zero(secret, strlen(secret));
	free(secret);
	free(error);
	free(yaml);
}

static void secret_err(const char *src, const char *want, const char *name)
{
	char *yaml = xasprintf("accounts:\n  - name: acc\n    host: h\n"
			       "    user: u\n    maildir: /m\n%s", src);
	char *secret, *error;
	int r = secret_of(yaml, &secret, &error);

	is_int(r, -1, "%s: fails", name);
	ok(secret == NULL, "%s: no secret", name);
	is_str(error, want, "%s: message", name);
	ok(error == NULL || strstr(error, "hunter") == NULL,
	   "%s: no secret in message", name);
	free(secret);
	free(error);
	free(yaml);
}

static void test_secrets(void)
{
	char *pw = xasprintf("%s/pw", tmpdir), *src;
	FILE *f;

	secret_ok("    password: \"hunter2 with spaces\"\n",
		  "hunter2 with spaces", "inline password");
	secret_ok("    password_command: \"printf 'hunter3\\\\nsecond\\\\n'\"\n",
		  "hunter3", "password_command first line");
	secret_ok("    password_command: printf abc\n", "abc",
		  "password_command without newline");
	secret_ok("    password_command: \"printf 'x y\\\\r\\\\n'\"\n", "x y",
		  "password_command CRLF");
	secret_ok("    password_command: |\n      true\n"
		  "      echo two\n", "two", "multi-line password_command");
	secret_ok("    auth: oauthbearer\n    token_command: echo tok.en\n",
		  "tok.en", "token_command");
	secret_ok("    token_command: echo tok2\n", "tok2",
		  "token_command with auth auto");
	secret_err("    password_command: \"echo hunter4; exit 3\"\n",
		   "account 'acc': password_command exited with status 3",
		   "password_command fails");
	secret_err("    password_command: \"true\"\n",
		   "account 'acc': password_command printed nothing",
		   "password_command silent");
	secret_err("    password_command: \"echo; echo hunter5\"\n",
		   "account 'acc': password_command printed an empty first "
		   "line (or a NUL byte)", "password_command empty line");
	secret_err("    password_command: \"kill -TERM $$\"\n",
		   "account 'acc': password_command was killed by signal 15",
		   "password_command killed");
	secret_err("    password_command: \"/nonexistent/command\"\n",
		   "account 'acc': password_command exited with status 127",
		   "password_command not found (sh says so on stderr)");
	secret_err("    password_command: \"head -c 100000 /dev/zero | "
		   "tr '\\\\0' x\"\n",
		   "account 'acc': password_command printed more than 65536 "
		   "bytes", "password_command too much output");
	secret_err("    auth: xoauth2\n    token_command: exit 1\n",
		   "account 'acc': token_command exited with status 1",
		   "token_command fails");

	f = fopen(pw, "w");
	if (f == NULL)
		BUG("cannot write '%s'", pw);
	fputs("hunter7\nignored\n", f);
	fclose(f);
	chmod(pw, 0600);
	secret_ok("    password_file: ~/pw\n", "hunter7", "password_file");
	f = fopen(pw, "w");
	if (f == NULL)
		BUG("cannot write '%s'", pw);
	fclose(f);
	src = xasprintf("    password_file: %s\n", pw);
	free(pw);
	pw = xasprintf("account 'acc': password_file '%s/pw' is empty",
		       tmpdir);
	secret_err(src, pw, "password_file empty");
	free(src);
	free(pw);
	pw = xasprintf("account 'acc': cannot open password_file '%s/nope': "
		       "No such file or directory", tmpdir);
	secret_err("    password_file: ~/nope\n", pw, "password_file missing");
	free(pw);
}

/* Run config_load with stderr captured; returns what was logged. */
static char *load_capture(const char *yaml, mode_t mode, int *r_r)
{
	char *path = write_file_mode(yaml, strlen(yaml), mode);
	char *logpath = xasprintf("%s/stderr", tmpdir), *error = NULL;
	char buf[4096];
	struct config *c = NULL;
	int saved, fd;
	ssize_t n;

	fflush(stderr);
	saved = dup(STDERR_FILENO);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (saved < 0 || fd < 0 || dup2(fd, STDERR_FILENO) < 0)
		BUG("cannot redirect stderr");
	close(fd);
	*r_r = config_load(path, &c, &error);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	config_free(&c);
	free(error);
	fd = open(logpath, O_RDONLY);
	n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	free(logpath);
	free(path);
	return xstrdup(buf);
}

static void test_permissions(void)
{
	char *log;
	int r;

	log = load_capture(BASE, 0644, &r);
	is_int(r, 0, "world-readable with password: loads");
	ok(strstr(log, "warning: ") && strstr(log, "holds a password and is "
	   "readable by group and others: chmod 600 it"),
	   "world-readable with password: warns");
	ok(strstr(log, "s3cr3t") == NULL, "warning: no password in it");
	free(log);
	log = load_capture(BASE, 0640, &r);
	ok(strstr(log, "readable by its group") != NULL,
	   "group-readable: warns");
	free(log);
	log = load_capture(BASE, 0600, &r);
	is_str(log, "", "private file: no warning");
	free(log);
	log = load_capture("accounts:\n  - name: a\n    host: h\n    user: u\n"
			   "    password_command: x\n    maildir: /m\n",
			   0644, &r);
	is_str(log, "", "no inline password: no warning");
	free(log);
	log_set_verbosity(LOG_QUIET);
	log = load_capture(BASE, 0644, &r);
	is_str(log, "", "quiet: no warning");
	free(log);
	log_set_verbosity(LOG_NORMAL);
}

static void test_secrets_never_shown(void)
{
	char *e;

	/* A password that fails validation is not echoed. */
	e = load_err(BASE "    password_command: hunter8\n", "7:5: key "
		     "'password_command': conflicts with 'password' on line 5: "
		     "set only one of password, password_command and "
		     "password_file", "conflict");
	ok(strstr(e, "s3cr3t") == NULL && strstr(e, "hunter8") == NULL,
	   "conflict: no secret in message");
	free(e);
	e = load_err("accounts:\n  - name: a\n    host: h\n    user: u\n"
		     "    maildir: /m\n    password: \"hunter9\\nx\"\n",
		     "6:15: key 'password': contains a control character",
		     "password with newline");
	ok(strstr(e, "hunter9") == NULL, "newline: no secret in message");
	free(e);
}

static void test_limits(void)
{
	char *yaml, *p, *e;
	size_t i, len, cap;
	char *path, *error = NULL;
	struct config *c = NULL;

	/* Aliases: 150 accounts sharing a 1000-pattern list is 150,000
	 * pattern copies from a small file; the budget stops it. */
	cap = CONFIG_MAX_FILE_SIZE + 1;
	yaml = xmalloc(cap);
	p = yaml;
	p += sprintf(p, "accounts:\n  - name: a0\n    host: h\n    user: u\n"
		     "    password: p\n    maildir: /m\n    folders: &f\n"
		     "      include:\n");
	for (i = 0; i < 1000; i++)
		p += sprintf(p, "        - p%zu\n", i);
	for (i = 1; i < 150; i++)
		p += sprintf(p, "  - {name: a%zu, host: h, user: u, "
			     "password: p, maildir: /m, folders: *f}\n", i);
	len = (size_t)(p - yaml);
	ASSERT(len < cap);
	path = write_file_mode(yaml, len, 0600);
	ok(config_load(path, &c, &error) == -1 && error &&
	   strstr(error, "configuration too large"), "alias bomb: refused");
	if (error)
		printf("# %s\n", error);
	FREE_AND_NULL(error);
	free(path);

	/* Over the file size cap. */
	memset(yaml, '#', cap);
	path = write_file_mode(yaml, CONFIG_MAX_FILE_SIZE + 1, 0600);
	ok(config_load(path, &c, &error) == -1 && error &&
	   strstr(error, "is too large"), "big file: refused");
	FREE_AND_NULL(error);
	free(path);
	ok(config_load_buffer("mem", yaml, CONFIG_MAX_FILE_SIZE + 1, &c,
			      &error) == -1 && error &&
	   strstr(error, "mem:1:1: file too large"), "big buffer: refused");
	FREE_AND_NULL(error);
	free(yaml);

	/* Deep nesting does not crash libyaml or the walk. */
	cap = 200000;
	yaml = xmalloc(cap + 32);
	p = yaml + sprintf(yaml, "accounts: ");
	for (i = 0; i < 50000; i++)
		*p++ = '[';
	*p = '\0';
	len = (size_t)(p - yaml);
	ok(config_load_buffer("deep", yaml, len, &c, &error) == -1,
	   "deep nesting: refused");
	FREE_AND_NULL(error);
	free(yaml);

	/* The memory variant loads the same thing. */
	ok(config_load_buffer("mem.yaml", BASE, strlen(BASE), &c, &error) == 0,
	   "load_buffer: ok");
	if (c != NULL)
		is_str(c->file, "mem.yaml", "load_buffer: name");
	config_free(&c);
	e = NULL;
	ok(config_load_buffer("mem.yaml", "x: [", 4, &c, &e) == -1 && e &&
	   strncmp(e, "mem.yaml:2:1: invalid YAML: ", 28) == 0,
	   "load_buffer: error names the buffer");
	free(e);
}

static void test_select(void)
{
	struct config *c = NULL;
	char *error = NULL;
	static const char yaml[] = BASE
		"    folders:\n"
		"      include: [\"*\"]\n"
		"      exclude: [\"[Gmail]/All Mail\", \"Trash*\", \"Lists/*/old\"]\n";
	const struct account_config *a;

	if (config_load_buffer("sel", yaml, sizeof(yaml) - 1, &c, &error) < 0) {
		ok(0, "select: load (%s)", error);
		free(error);
		return;
	}
	a = &c->accounts[0];
	ok(!config_folder_selected(a, "[Gmail]/All Mail"),
	   "select: literal [Gmail] pattern excludes");
	ok(config_folder_selected(a, "G/All Mail") == false,
	   "select: pattern is still a glob");
	ok(config_folder_selected(a, "[Gmail]/Sent Mail"), "select: sibling");
	ok(!config_folder_selected(a, "Trash"), "select: Trash");
	ok(!config_folder_selected(a, "Trash/2020"), "select: Trash/2020");
	ok(!config_folder_selected(a, "Lists/dev/old"), "select: */old");
	ok(config_folder_selected(a, "Lists/dev"), "select: Lists/dev");
	ok(config_folder_selected(a, "INBOX"), "select: INBOX");
	ok(config_folder_selected(a, "Ünïcødé/文件"), "select: UTF-8");
	config_free(&c);
}

/* watch: and poll: (sync --watch) */
static void test_watch(void)
{
	struct config *c;
	unsigned secs = 0;

	c = load_ok(BASE, "watch defaults");
	if (c != NULL) {
		ok(c->accounts[0].n_watch == 1 &&
		   strcmp(c->accounts[0].watch[0], "INBOX") == 0,
		   "watch: default [INBOX]");
		is_int(c->accounts[0].poll, 300, "poll: default 5m");
	}
	config_free(&c);
	c = load_ok(BASE "    watch: [INBOX, Lists/dev]\n    poll: 90s\n",
		    "watch list");
	if (c != NULL) {
		ok(c->accounts[0].n_watch == 2 &&
		   strcmp(c->accounts[0].watch[1], "Lists/dev") == 0,
		   "watch: two folders");
		is_int(c->accounts[0].poll, 90, "poll: 90s");
	}
	config_free(&c);
	c = load_ok(BASE "    watch: []\n    poll: 1h\n", "watch empty");
	if (c != NULL) {
		is_int(c->accounts[0].n_watch, 0, "watch: [] means none");
		is_int(c->accounts[0].poll, 3600, "poll: 1h");
	}
	config_free(&c);
	err(BASE "    poll: soon\n", "7:11: key 'poll': 'soon' is not a "
	    "duration from 1s to 24h (e.g. 30s, 5m, 1h)", "poll word");
	err(BASE "    poll: 0s\n", "7:11: key 'poll': '0s' is not a "
	    "duration from 1s to 24h (e.g. 30s, 5m, 1h)", "poll zero");
	err(BASE "    watch: {a: 1}\n", "7:12: key 'watch': expected a list "
	    "of patterns, got a mapping", "watch mapping");

	ok(config_parse_duration("45", &secs) == 0 && secs == 45,
	   "duration: bare seconds");
	ok(config_parse_duration("5m", &secs) == 0 && secs == 300,
	   "duration: minutes");
	ok(config_parse_duration("24h", &secs) == 0 && secs == 86400,
	   "duration: a day");
	ok(config_parse_duration("25h", &secs) < 0, "duration: over a day");
	ok(config_parse_duration("99999999999999999999", &secs) < 0,
	   "duration: overflow");
	ok(config_parse_duration("5mm", &secs) < 0 &&
	   config_parse_duration("m", &secs) < 0 &&
	   config_parse_duration("", &secs) < 0 &&
	   config_parse_duration("-5", &secs) < 0 &&
	   config_parse_duration("5 m", &secs) < 0, "duration: malformed");
}

static void test_names(void)
{
	is_str(config_tls_name(TLS_STARTTLS), "starttls", "tls name");
	is_str(config_auth_name(AUTH_OAUTHBEARER), "oauthbearer", "auth name");
	is_str(config_layout_name(LAYOUT_MAILDIRPP), "maildir++",
	       "layout name");
	is_str(config_sync_dir_name(SYNC_PUSH), "push", "sync name");
}

static void rm_rf(const char *dir)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);

	if (system(cmd) != 0)
		printf("# cannot remove %s\n", dir);
	free(cmd);
}

int main(void)
{
	char tmpl[] = "/tmp/t-config.XXXXXX";

	tmpdir = mkdtemp(tmpl);
	if (tmpdir == NULL)
		BUG("mkdtemp failed");
	setenv("HOME", tmpdir, 1);
	unsetenv("XDG_STATE_HOME");
	unsetenv("XDG_CONFIG_HOME");
	log_set_verbosity(LOG_NORMAL);

	test_full();
	test_defaults();
	test_default_path();
	test_errors();
	test_tls_none();
	test_secrets();
	test_permissions();
	test_secrets_never_shown();
	test_limits();
	test_select();
	test_names();
	test_watch();

	rm_rf(tmpdir);
	return tap_done();
}
