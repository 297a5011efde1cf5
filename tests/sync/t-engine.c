/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * t-engine.c - scenarios of the sync engine without a network: the engine
 * (sync_account_run) between a real Maildir in a temp dir and the fake
 * server of remote-fake.c, checked the way a user would: which messages
 * are where, their bytes (LF locally, CRLF on the server), their flags,
 * the folders, the exit code; and through the fake's counters, what it
 * cost (a second run must fetch no body and send no store).
 *
 * Crash/resume (STYLE.md 7, as isync's run-tests.pl): a scenario is run
 * straight through; then for N = 1, 2, ... it is run in a child that
 * _exit(99)s at the engine's N-th crash point (TWINBOX_CRASH_AT=N),
 * resumed by a normal run, and the end state must equal the straight
 * one; then one more run must change nothing. The child is this program
 * exec'ed again (--child DIR LAYOUT): the engine's crash counter lives in
 * a static, so a plain fork() would inherit it.
 *
 * Environment: TB_TEST_VERBOSE=1 shows the engine's log; TB_KEEP=1 keeps
 * the temp dirs.
 */
#include "common.h"
#include "remote-fake.h"
#include "sync/sync.h"
#include "state/state.h"
#include "maildir/maildir.h"
#include "util/flags.h"
#include "util/log.h"
#include "../unit/tap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ACCOUNT "test"
#define DIR_BOTH (SYNC_DIR_PULL | SYNC_DIR_PUSH)

static char *tmproot;
static char *self_exe;
static unsigned fx_seq;

ATTR_NORETURN static void bail(const char *what, char *error)
{
	printf("Bail out! %s: %s\n", what, error ? error : "?");
	free(error);
	exit(1);
}

/* ---------------------------------------------------------------------- */
/* messages: each carries a tag in Subject and Message-ID */

static char *msg_lf(const char *tag)
{
	return xasprintf("From: Test Sender <sender@example.org>\n"
			 "To: user@example.org\n"
			 "Message-ID: <%s@twinbox.test>\n"
			 "Subject: %s\n"
			 "Date: Mon, 01 Jan 2024 10:00:00 +0000\n"
			 "\n"
			 "This is message %s.\n"
			 "Second line.\n", tag, tag, tag);
}

static char *to_crlf(const char *s)
{
	size_t n = strlen(s), i, k = 0;
	char *o = xmalloc(n * 2 + 1);

	for (i = 0; i < n; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			o[k++] = '\r';
		o[k++] = s[i];
	}
	o[k] = '\0';
	return o;
}

/* The tag of a message (its Subject), or NULL. malloc'ed. */
static char *msg_tag(const char *data, size_t len)
{
	const char *p = data, *end = data + len;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);

		if (ll == 0 || (ll == 1 && p[0] == '\r'))
			break;
		if (ll > 9 && strncmp(p, "Subject: ", 9) == 0) {
			size_t tl = ll - 9;

			if (tl > 0 && p[9 + tl - 1] == '\r')
				tl--;
			return xstrndup(p + 9, tl);
		}
		p = eol ? eol + 1 : end;
	}
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* fixture: a temp dir with mail/, state/ and server/ */

struct fx {
	char *root, *maildir, *state_dir, *srvdir;
	enum mdir_layout layout;
	unsigned caps;
	struct fake_server *fs;
	struct sync_account a;
	struct sync_options o;
	struct remote_factory rf;
	unsigned local_seq;
};

static void fx_account(struct fx *x)
{
	memset(&x->a, 0, sizeof(x->a));
	x->a.name = ACCOUNT;
	x->a.maildir = x->maildir;
	x->a.layout = x->layout;
	x->a.state_dir = x->state_dir;
	x->a.dir_new = x->a.dir_flags = x->a.dir_deletions = DIR_BOTH;
	x->a.dir_moves = x->a.dir_folders = DIR_BOTH;
	x->a.connections = getenv("TB_CONNECTIONS") ?
			   (unsigned)atoi(getenv("TB_CONNECTIONS")) : 2;
	memset(&x->o, 0, sizeof(x->o));
	fake_server_factory(x->fs, &x->rf);
}

static void fx_paths(struct fx *x, const char *root)
{
	x->root = xstrdup(root);
	x->maildir = xasprintf("%s/mail", root);
	x->state_dir = xasprintf("%s/state", root);
	x->srvdir = xasprintf("%s/server", root);
}

static struct fx *fx_new(const char *name, unsigned caps,
			 enum mdir_layout layout)
{
	struct fx *x = xcalloc(1, sizeof(*x));
	char *root = xasprintf("%s/%02u-%s", tmproot, ++fx_seq, name);
	char *error = NULL;

	if (mkdir(root, 0700) < 0)
		bail("mkdir", xasprintf("%s: %s", root, strerror(errno)));
	fx_paths(x, root);
	free(root);
	x->layout = layout;
	x->caps = caps;
	if (mkdir(x->maildir, 0700) < 0)
		bail("mkdir", xstrdup(x->maildir));
	if (fake_server_create(x->srvdir, caps, &error) < 0 ||
	    fake_server_open(x->srvdir, &x->fs, &error) < 0)
		bail("fake server", error);
	fx_account(x);
	return x;
}

static void fx_free(struct fx **xp)
{
	struct fx *x = *xp;

	fake_server_free(&x->fs);
	free(x->root);
	free(x->maildir);
	free(x->state_dir);
	free(x->srvdir);
	free(x);
	*xp = NULL;
}

static int fx_run(struct fx *x)
{
	fflush(stdout);
	return sync_account_run(&x->a, &x->rf, &x->o);
}

/* Run the engine in a fresh process (this program, --child); crash_at > 0
 * sets TWINBOX_CRASH_AT. Returns the exit status, or -1. */
static int fx_run_child(struct fx *x, long crash_at)
{
	pid_t pid;
	int status;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		char n[32];
		int fd = open("/dev/null", O_WRONLY);

		/* keep TAP on stdout clean */
		if (fd >= 0) {
			dup2(fd, 1);
			if (getenv("TB_TEST_VERBOSE") == NULL)
				dup2(fd, 2);
		}
		snprintf(n, sizeof(n), "%ld", crash_at);
		if (crash_at > 0)
			setenv("TWINBOX_CRASH_AT", n, 1);
		else
			unsetenv("TWINBOX_CRASH_AT");
		execl(self_exe, self_exe, "--child", x->root,
		      x->layout == MDIR_VERBATIM ? "verbatim" : "maildir++",
		      (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

static int child_main(const char *root, const char *layout)
{
	struct fx x;
	char *error = NULL;
	int ret;

	memset(&x, 0, sizeof(x));
	fx_paths(&x, root);
	x.layout = strcmp(layout, "verbatim") == 0 ? MDIR_VERBATIM :
						     MDIR_MAILDIRPP;
	if (fake_server_open(x.srvdir, &x.fs, &error) < 0) {
		fprintf(stderr, "child: %s\n", error);
		return 120;
	}
	fx_account(&x);
	ret = sync_account_run(&x.a, &x.rf, &x.o);
	fake_server_free(&x.fs);
	free(x.root);
	free(x.maildir);
	free(x.state_dir);
	free(x.srvdir);
	return ret;
}

/* ---- the server side ---- */

static uint32_t srv_add(struct fx *x, const char *folder, const char *tag,
			unsigned flags)
{
	char *m = msg_lf(tag), *error = NULL;
	uint32_t uid;

	if (fake_folder_info(x->fs, folder, &(struct fake_folder_info){ 0 },
			     &error) == 1 &&
	    fake_folder_create(x->fs, folder, &error) < 0)
		bail("server create", error);
	if (fake_msg_add(x->fs, folder, m, strlen(m), flags, 1700000000,
			 &uid, &error) < 0)
		bail("server add", error);
	free(m);
	return uid;
}

/* The UID of the message with this tag in folder, 0 if none. */
static uint32_t srv_uid(struct fx *x, const char *folder, const char *tag)
{
	struct fake_msg *msgs;
	size_t n, i;
	uint32_t uid = 0;
	char *error = NULL;

	if (fake_folder_messages(x->fs, folder, &msgs, &n, &error) < 0)
		bail("server messages", error);
	for (i = 0; i < n && uid == 0; i++) {
		char *t = msg_tag(msgs[i].data, msgs[i].size);

		if (t != NULL && strcmp(t, tag) == 0)
			uid = msgs[i].uid;
		free(t);
	}
	fake_msgs_free(msgs, n);
	return uid;
}

static void srv_flags(struct fx *x, const char *folder, const char *tag,
		      unsigned flags)
{
	char *error = NULL;
	uint32_t uid = srv_uid(x, folder, tag);

	if (uid == 0 || fake_msg_set_flags(x->fs, folder, uid, flags,
					   &error) < 0)
		bail("server flags", error ? error : xstrdup(tag));
}

static void srv_expunge(struct fx *x, const char *folder, const char *tag)
{
	char *error = NULL;
	uint32_t uid = srv_uid(x, folder, tag);

	if (uid == 0 || fake_msg_expunge(x->fs, folder, uid, &error) < 0)
		bail("server expunge", error ? error : xstrdup(tag));
}

/* ---- the local side ---- */

static char *local_path(struct fx *x, const char *folder)
{
	char *path, *error = NULL;

	if (mdir_map_name(x->maildir, x->layout, folder, &path, &error) < 0)
		bail("map name", error);
	return path;
}

static void mkdirs(const char *path)
{
	char *p = xstrdup(path), *s;

	for (s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		(void)mkdir(p, 0700);
		*s = '/';
	}
	(void)mkdir(p, 0700);
	free(p);
}

static void local_mkfolder(struct fx *x, const char *folder)
{
	char *path = local_path(x, folder), *sub;
	const char *d[] = { "cur", "new", "tmp" };
	size_t i;

	for (i = 0; i < 3; i++) {
		sub = xasprintf("%s/%s", path, d[i]);
		mkdirs(sub);
		free(sub);
	}
	free(path);
}

static void write_file(const char *path, const char *data, time_t mtime)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	size_t n = strlen(data);
	struct timeval tv[2];

	if (fd < 0 || write(fd, data, n) != (ssize_t)n || close(fd) < 0)
		bail("write", xasprintf("%s: %s", path, strerror(errno)));
	tv[0].tv_sec = tv[1].tv_sec = mtime;
	tv[0].tv_usec = tv[1].tv_usec = 0;
	if (utimes(path, tv) < 0)
		bail("utimes", xstrdup(path));
}

/* A new local message, as a mail reader would deliver it: new/ without
 * flags, cur/<base>:2,<flags> with. */
static void local_add(struct fx *x, const char *folder, const char *tag,
		      unsigned flags)
{
	char *dir = local_path(x, folder), *m = msg_lf(tag), *path;
	char letters[MF_COUNT + 1];

	local_mkfolder(x, folder);
	flags_to_maildir(flags, letters);
	x->local_seq++;
	if (flags == 0)
		path = xasprintf("%s/new/1600000000.T%uR%s.testhost", dir,
				 x->local_seq, tag);
	else
		path = xasprintf("%s/cur/1600000000.T%uR%s.testhost:2,%s", dir,
				 x->local_seq, tag, letters);
	write_file(path, m, 1600000000 + (time_t)x->local_seq);
	free(path);
	free(dir);
	free(m);
}

struct lmsg {
	char *path;     /* full path */
	char *tag;
	unsigned flags;
	char *data;
	size_t size;
	time_t mtime;
	mode_t mode;
};

static void lmsgs_free(struct lmsg *m, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(m[i].path);
		free(m[i].tag);
		free(m[i].data);
	}
	free(m);
}

static char *slurp(const char *path, size_t *len_r)
{
	FILE *fp = fopen(path, "rb");
	char *data = NULL;
	size_t n = 0, a = 0, r;

	if (fp == NULL)
		return NULL;
	do {
		ALLOC_GROW(data, n + 4097, a);
		r = fread(data + n, 1, 4096, fp);
		n += r;
	} while (r > 0);
	fclose(fp);
	data[n] = '\0';
	*len_r = n;
	return data;
}

/* Every message file of a local folder (cur/ and new/, no dot files). */
static void local_list(struct fx *x, const char *folder, struct lmsg **m_r,
		       size_t *n_r)
{
	char *dir = local_path(x, folder);
	const char *sub[] = { "cur", "new" };
	struct lmsg *m = NULL;
	size_t n = 0, a = 0, i;

	for (i = 0; i < 2; i++) {
		char *d = xasprintf("%s/%s", dir, sub[i]);
		DIR *dp = opendir(d);
		struct dirent *de;

		while (dp != NULL && (de = readdir(dp)) != NULL) {
			struct stat stt;
			const char *info;
			char *p;

			if (de->d_name[0] == '.')
				continue;
			p = xasprintf("%s/%s", d, de->d_name);
			if (stat(p, &stt) < 0 || !S_ISREG(stt.st_mode)) {
				free(p);
				continue;
			}
			ALLOC_GROW(m, n + 1, a);
			memset(&m[n], 0, sizeof(m[n]));
			m[n].path = p;
			m[n].mtime = stt.st_mtime;
			m[n].mode = stt.st_mode & 07777;
			info = strstr(de->d_name, ":2,");
			m[n].flags = info ? flags_from_maildir(info + 3,
							       strlen(info + 3)) : 0;
			m[n].data = slurp(p, &m[n].size);
			if (m[n].data == NULL)
				m[n].data = xstrdup("");
			m[n].tag = msg_tag(m[n].data, m[n].size);
			n++;
		}
		if (dp != NULL)
			closedir(dp);
		free(d);
	}
	free(dir);
	*m_r = m;
	*n_r = n;
}

static struct lmsg *lfind(struct lmsg *m, size_t n, const char *tag)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (m[i].tag != NULL && strcmp(m[i].tag, tag) == 0)
			return &m[i];
	return NULL;
}

static void local_flags(struct fx *x, const char *folder, const char *tag,
			unsigned flags)
{
	struct lmsg *m, *e;
	size_t n;
	char *dir = local_path(x, folder), *base, *to, letters[MF_COUNT + 1];
	const char *slash, *colon;

	local_list(x, folder, &m, &n);
	if ((e = lfind(m, n, tag)) == NULL)
		bail("local flags", xstrdup(tag));
	slash = strrchr(e->path, '/');
	colon = strstr(slash, ":2,");
	base = xstrndup(slash + 1, colon ? (size_t)(colon - slash - 1) :
				   strlen(slash + 1));
	flags_to_maildir(flags, letters);
	to = xasprintf("%s/cur/%s:2,%s", dir, base, letters);
	if (rename(e->path, to) < 0)
		bail("rename", xstrdup(to));
	free(to);
	free(base);
	free(dir);
	lmsgs_free(m, n);
}

static void local_remove(struct fx *x, const char *folder, const char *tag)
{
	struct lmsg *m, *e;
	size_t n;

	local_list(x, folder, &m, &n);
	if ((e = lfind(m, n, tag)) == NULL || unlink(e->path) < 0)
		bail("local remove", xstrdup(tag));
	lmsgs_free(m, n);
}

static void rm_rf(const char *path)
{
	char *cmd = xasprintf("rm -rf '%s'", path);

	if (system(cmd) != 0)
		diag("rm -rf failed");
	free(cmd);
}

/* ---------------------------------------------------------------------- */
/* views: "folder: tag(FLAGS) tag(FLAGS)\n" per folder, sorted; a tag whose
 * bytes are not exactly the expected ones (LF locally, CRLF on the
 * server) is shown as "tag!", one that appears twice shows twice. */

struct item {
	char *tag;
	char flags[MF_COUNT + 1];
	bool bad;
};

static int cmp_item(const void *a, const void *b)
{
	const struct item *x = a, *y = b;

	return strcmp(x->tag, y->tag);
}

static void view_folder(FILE *fp, const char *folder, struct item *it,
			size_t n)
{
	size_t i;

	qsort(it, n, sizeof(*it), cmp_item);
	fprintf(fp, "%s:", folder);
	for (i = 0; i < n; i++) {
		fprintf(fp, " %s%s(%s)", it[i].tag, it[i].bad ? "!" : "",
			it[i].flags);
		free(it[i].tag);
	}
	fprintf(fp, "\n");
}

static char *server_view(struct fx *x)
{
	char **names, *error = NULL, *text = NULL;
	size_t n, i, j, len = 0;
	FILE *fp = open_memstream(&text, &len);

	if (fake_folder_names(x->fs, &names, &n, &error) < 0)
		bail("server names", error);
	for (i = 0; i < n; i++) {
		struct fake_msg *msgs;
		size_t nm;
		struct item *it;

		if (fake_folder_messages(x->fs, names[i], &msgs, &nm,
					 &error) < 0)
			bail("server messages", error);
		it = xcalloc(nm + 1, sizeof(*it));
		for (j = 0; j < nm; j++) {
			char *t = msg_tag(msgs[j].data, msgs[j].size), *want;

			it[j].tag = t ? t : xstrdup("?");
			flags_to_maildir(msgs[j].flags, it[j].flags);
			{
				char *lf = msg_lf(it[j].tag);

				want = to_crlf(lf);
				free(lf);
			}
			it[j].bad = t == NULL || strlen(want) != msgs[j].size ||
				    memcmp(want, msgs[j].data, msgs[j].size) != 0;
			free(want);
		}
		view_folder(fp, names[i], it, nm);
		free(it);
		fake_msgs_free(msgs, nm);
	}
	fake_names_free(names, n);
	fclose(fp);
	return text;
}

static char *local_view(struct fx *x)
{
	char **names, *error = NULL, *text = NULL;
	size_t n, i, j, len = 0;
	FILE *fp = open_memstream(&text, &len);

	if (mdir_list_folders(x->maildir, x->layout, &names, &n, &error) < 0)
		bail("local folders", error);
	for (i = 0; i < n; i++) {
		struct lmsg *m;
		size_t nm;
		struct item *it;

		local_list(x, names[i], &m, &nm);
		it = xcalloc(nm + 1, sizeof(*it));
		for (j = 0; j < nm; j++) {
			char *want;

			it[j].tag = xstrdup(m[j].tag ? m[j].tag : "?");
			flags_to_maildir(m[j].flags, it[j].flags);
			want = msg_lf(it[j].tag);
			it[j].bad = m[j].tag == NULL ||
				    strlen(want) != m[j].size ||
				    memcmp(want, m[j].data, m[j].size) != 0;
			free(want);
		}
		view_folder(fp, names[i], it, nm);
		free(it);
		lmsgs_free(m, nm);
	}
	mdir_names_free(names, n);
	fclose(fp);
	return text;
}

/* Both sides look like want. */
static void check_views(struct fx *x, const char *want, const char *what)
{
	char *s = server_view(x), *l = local_view(x);

	is_str(s, want, "%s: server", what);
	is_str(l, want, "%s: local", what);
	free(s);
	free(l);
}

static char *snapshot(struct fx *x)
{
	char *s = server_view(x), *l = local_view(x), *d, *error = NULL;
	char *r;

	if (fake_server_dump(x->fs, &d, &error) < 0)
		bail("dump", error);
	r = xasprintf("server:\n%s\nlocal:\n%s\ndump:\n%s", s, l, d);
	free(s);
	free(l);
	free(d);
	return r;
}

static void counters_diag(struct fx *x)
{
	struct fake_counters c;
	char *s, *d;

	fake_server_counters(x->fs, &c);
	s = fake_counters_str(&c);
	d = xasprintf("counters: %s", s);
	diag(d);
	free(d);
	free(s);
}

/* A run that must change nothing: exit 0, no body, append, store,
 * expunge or move, and both sides unchanged. */
static void check_noop_run(struct fx *x, const char *what)
{
	struct fake_counters c;
	char *before = snapshot(x), *after;
	int ret;

	fake_server_reset_counters(x->fs);
	ret = fx_run(x);
	fake_server_counters(x->fs, &c);
	is_int(ret, 0, "%s: idempotent run exits 0", what);
	if (!ok(c.bodies == 0 && c.appends == 0 && c.stores == 0 &&
		c.expunges == 0 && c.moves == 0 && c.creates == 0,
		"%s: idempotent run sends nothing", what))
		counters_diag(x);
	after = snapshot(x);
	is_str(after, before, "%s: idempotent run changes nothing", what);
	free(before);
	free(after);
}

static const char *caps_name(unsigned caps)
{
	return caps == FAKE_CAPS_FULL ? "full" : "trimmed";
}

/* ---------------------------------------------------------------------- */
/* scenarios */

static void t_initial_pull(unsigned caps, enum mdir_layout layout)
{
	struct fx *x = fx_new("pull", caps, layout);
	char *what = xasprintf("initial pull (%s, %s)", caps_name(caps),
			       layout == MDIR_VERBATIM ? "verbatim" :
							 "maildir++");
	const char *want =
		"Archive/2023/Q1: q1()\n"
		"Entwürfe: draft(D)\n"
		"INBOX: a(S) b() c(FRS)\n"
		"Lists/dev: d1(S) d2(F)\n";
	struct lmsg *m;
	size_t n;
	int ret;
	char *p;
	struct stat stt;

	srv_add(x, "INBOX", "a", MF_SEEN);
	srv_add(x, "INBOX", "b", 0);
	srv_add(x, "INBOX", "c", MF_SEEN | MF_FLAGGED | MF_ANSWERED);
	srv_add(x, "Lists/dev", "d1", MF_SEEN);
	srv_add(x, "Lists/dev", "d2", MF_FLAGGED);
	srv_add(x, "Entwürfe", "draft", MF_DRAFT);
	srv_add(x, "Archive/2023/Q1", "q1", 0);

	ret = fx_run(x);
	is_int(ret, 0, "%s: exit 0", what);
	check_views(x, want, what);

	/* where a user finds them */
	if (layout == MDIR_VERBATIM) {
		p = xasprintf("%s/Lists/dev/cur", x->maildir);
		ok(stat(p, &stt) == 0 && S_ISDIR(stt.st_mode) &&
		   (stt.st_mode & 0777) == 0700, "%s: %s is a 0700 dir", what,
		   "Lists/dev");
		free(p);
		p = xasprintf("%s/Entwürfe/cur", x->maildir);
		ok(stat(p, &stt) == 0, "%s: Entwürfe in UTF-8 on disk", what);
		free(p);
		p = xasprintf("%s/INBOX/new", x->maildir);
		ok(stat(p, &stt) == 0, "%s: INBOX at <maildir>/INBOX", what);
		free(p);
	} else {
		p = xasprintf("%s/.Lists.dev/cur", x->maildir);
		ok(stat(p, &stt) == 0 && S_ISDIR(stt.st_mode), "%s: %s", what,
		   ".Lists.dev");
		free(p);
		p = xasprintf("%s/.Entwürfe/cur", x->maildir);
		ok(stat(p, &stt) == 0, "%s: .Entwürfe in UTF-8 on disk", what);
		free(p);
		p = xasprintf("%s/cur", x->maildir);
		ok(stat(p, &stt) == 0, "%s: INBOX is <maildir> itself", what);
		free(p);
	}
	local_list(x, "INBOX", &m, &n);
	ok(n == 3 && m[0].mtime == 1700000000 && m[0].mode == 0600,
	   "%s: file mtime is INTERNALDATE, mode 0600", what);
	lmsgs_free(m, n);
	check_noop_run(x, what);
	free(what);
	fx_free(&x);
}

/* A synced account with some messages: INBOX a b c d, Work w1 w2. */
static struct fx *synced(const char *name, unsigned caps,
			 enum mdir_layout layout)
{
	struct fx *x = fx_new(name, caps, layout);
	int ret;

	srv_add(x, "INBOX", "a", 0);
	srv_add(x, "INBOX", "b", MF_SEEN);
	srv_add(x, "INBOX", "c", MF_SEEN);
	srv_add(x, "INBOX", "d", MF_SEEN | MF_FLAGGED);
	srv_add(x, "Work", "w1", MF_SEEN);
	srv_add(x, "Work", "w2", 0);
	ret = fx_run(x);
	if (ret != 0) {
		char *s = xasprintf("%s: set-up run exited %d", name, ret);
		diag(s);
		free(s);
	}
	fake_server_reset_counters(x->fs);
	return x;
}

static void t_upload(unsigned caps)
{
	struct fx *x = synced("upload", caps, MDIR_VERBATIM);
	char *what = xasprintf("upload (%s)", caps_name(caps));
	struct fake_counters c;
	struct fake_msg *msgs;
	size_t n, i;
	char *error = NULL;
	bool dates = true;

	local_add(x, "INBOX", "new1", 0);
	local_add(x, "INBOX", "new2", MF_SEEN | MF_FLAGGED);
	local_add(x, "Projects/2024", "p1", MF_SEEN);
	is_int(fx_run(x), 0, "%s: exit 0", what);
	fake_server_counters(x->fs, &c);
	is_int(c.appends, 3, "%s: three appends", what);
	if (c.appends != 3)
		counters_diag(x);
	ok(c.bodies == 0, "%s: nothing downloaded", what);
	check_views(x,
		    "INBOX: a() b(S) c(S) d(FS) new1() new2(FS)\n"
		    "Projects/2024: p1(S)\n"
		    "Work: w1(S) w2()\n", what);
	/* INTERNALDATE = the file's mtime */
	if (fake_folder_messages(x->fs, "INBOX", &msgs, &n, &error) < 0)
		bail("messages", error);
	for (i = 0; i < n; i++) {
		char *t = msg_tag(msgs[i].data, msgs[i].size);

		if (t && strncmp(t, "new", 3) == 0 &&
		    (msgs[i].internaldate < 1600000000 ||
		     msgs[i].internaldate > 1600000100))
			dates = false;
		free(t);
	}
	ok(dates, "%s: INTERNALDATE is the file's mtime", what);
	fake_msgs_free(msgs, n);
	check_noop_run(x, what);
	free(what);
	fx_free(&x);
}

static void t_flags(unsigned caps)
{
	struct fx *x = synced("flags", caps, MDIR_VERBATIM);
	char *what = xasprintf("flags both ways (%s)", caps_name(caps));
	struct fake_counters c;

	/* a: server adds \Flagged, local adds \Seen -> both */
	srv_flags(x, "INBOX", "a", MF_FLAGGED);
	local_flags(x, "INBOX", "a", MF_SEEN);
	/* b: local removes \Seen */
	local_flags(x, "INBOX", "b", 0);
	/* c: server adds \Answered */
	srv_flags(x, "INBOX", "c", MF_SEEN | MF_ANSWERED);
	/* d: server removes \Flagged, local adds $Forwarded */
	srv_flags(x, "INBOX", "d", MF_SEEN);
	local_flags(x, "INBOX", "d", MF_SEEN | MF_FLAGGED | MF_FORWARDED);
	/* w2: both set \Seen */
	srv_flags(x, "Work", "w2", MF_SEEN);
	local_flags(x, "Work", "w2", MF_SEEN);
	is_int(fx_run(x), 0, "%s: exit 0", what);
	check_views(x,
		    "INBOX: a(FS) b() c(RS) d(PS)\n"
		    "Work: w1(S) w2(S)\n", what);
	fake_server_counters(x->fs, &c);
	if (!ok(c.bodies == 0 && c.appends == 0 && c.expunges == 0,
		"%s: no body moved for flag changes", what))
		counters_diag(x);
	check_noop_run(x, what);
	free(what);
	fx_free(&x);
}

static void t_deletions(unsigned caps)
{
	struct fx *x = synced("deletions", caps, MDIR_VERBATIM);
	char *what = xasprintf("deletions both ways (%s)", caps_name(caps));
	struct fake_counters c;

	srv_expunge(x, "INBOX", "a");
	local_remove(x, "INBOX", "b");
	local_remove(x, "Work", "w1");
	is_int(fx_run(x), 0, "%s: exit 0", what);
	check_views(x, "INBOX: c(S) d(FS)\nWork: w2()\n", what);
	fake_server_counters(x->fs, &c);
	if (!ok(c.expunges == 2 && c.bodies == 0 && c.appends == 0,
		"%s: two expunges, nothing else", what))
		counters_diag(x);
	check_noop_run(x, what);
	free(what);
	fx_free(&x);
}

static void t_conflict(unsigned caps)
{
	struct fx *x = synced("conflict", caps, MDIR_VERBATIM);
	char *what = xasprintf("deletion vs flag change (%s)", caps_name(caps));

	/* a: expunged on the server, flagged locally: kept */
	srv_expunge(x, "INBOX", "a");
	local_flags(x, "INBOX", "a", MF_FLAGGED);
	/* b: deleted locally, flag changed on the server: kept */
	local_remove(x, "INBOX", "b");
	srv_flags(x, "INBOX", "b", MF_SEEN | MF_ANSWERED);
	is_int(fx_run(x), 0, "%s: exit 0", what);
	check_views(x,
		    "INBOX: a(F) b(RS) c(S) d(FS)\n"
		    "Work: w1(S) w2()\n", what);
	check_noop_run(x, what);
	free(what);
	fx_free(&x);
}

static void t_new_both_and_folders(unsigned caps)
{
	struct fx *x = synced("newboth", caps, MDIR_MAILDIRPP);
	char *what = xasprintf("new both ways, new folders (%s)",
			       caps_name(caps));
	struct fake_counters c;

	srv_add(x, "INBOX", "s1", MF_SEEN);
	srv_add(x, "Work", "s2", 0);
	srv_add(x, "Server/Only", "s3", MF_FLAGGED);
	local_add(x, "INBOX", "l1", 0);
	local_add(x, "Local/Only", "l2", MF_SEEN);
	is_int(fx_run(x), 0, "%s: exit 0", what);
	check_views(x,
		    "INBOX: a() b(S) c(S) d(FS) l1() s1(S)\n"
		    "Local/Only: l2(S)\n"
		    "Server/Only: s3(F)\n"
		    "Work: s2() w1(S) w2()\n", what);
	fake_server_counters(x->fs, &c);
	if (!ok(c.bodies == 3 && c.appends == 2,
		"%s: 3 downloads, 2 uploads", what))
		counters_diag(x);
	check_noop_run(x, what);
	free(what);
	fx_free(&x);
}

static void t_uidvalidity(unsigned caps, bool new_emailids)
{
	struct fx *x = synced("uidvalidity", caps, MDIR_VERBATIM);
	char *what = xasprintf("UIDVALIDITY reset (%s%s)", caps_name(caps),
			       new_emailids ? ", new EMAILIDs" : "");
	struct fake_counters c;
	uint32_t uv;
	char *error = NULL;

	if (fake_folder_reset(x->fs, "INBOX", new_emailids, &uv, &error) < 0)
		bail("reset", error);
	srv_add(x, "INBOX", "after", 0);
	local_flags(x, "INBOX", "a", MF_SEEN);
	is_int(fx_run(x), 0, "%s: exit 0", what);
	check_views(x,
		    "INBOX: a(S) after() b(S) c(S) d(FS)\n"
		    "Work: w1(S) w2()\n", what);
	fake_server_counters(x->fs, &c);
	if (!ok(c.bodies == 1 && c.appends == 0 && c.expunges == 0,
		"%s: only the new message downloaded, nothing uploaded",
		what))
		counters_diag(x);
	check_noop_run(x, what);
	free(what);
	fx_free(&x);
}

static void t_brake(unsigned caps)
{
	struct fx *x = fx_new("brake", caps, MDIR_VERBATIM);
	char *what = xasprintf("safety brake (%s)", caps_name(caps));
	char tag[16], *before, *after;
	int i, ret;
	struct lmsg *m;
	size_t n;
	struct fake_folder_info info;
	char *error = NULL;

	for (i = 1; i <= 12; i++) {
		snprintf(tag, sizeof(tag), "m%02d", i);
		srv_add(x, "INBOX", tag, 0);
		srv_add(x, "Other", tag, 0);
	}
	is_int(fx_run(x), 0, "%s: set-up", what);

	/* server side deletes 11 of 12 in INBOX */
	for (i = 1; i <= 11; i++) {
		snprintf(tag, sizeof(tag), "m%02d", i);
		srv_expunge(x, "INBOX", tag);
	}
	srv_add(x, "Other", "o-new", 0);
	before = local_view(x);
	ret = fx_run(x);
	is_int(ret, SYNC_EXIT_BRAKE, "%s: server-side mass deletion: exit 5",
	       what);
	local_list(x, "INBOX", &m, &n);
	is_int(n, 12, "%s: nothing deleted locally", what);
	lmsgs_free(m, n);
	local_list(x, "Other", &m, &n);
	ok(n == 13 && lfind(m, n, "o-new") != NULL,
	   "%s: the other folder still synced", what);
	lmsgs_free(m, n);
	free(before);
	x->o.force = true;
	is_int(fx_run(x), 0, "%s: --force: exit 0", what);
	x->o.force = false;
	local_list(x, "INBOX", &m, &n);
	ok(n == 1 && lfind(m, n, "m12") != NULL,
	   "%s: --force lets the deletion through", what);
	lmsgs_free(m, n);

	/* local side deletes 11 of 13 in Other */
	for (i = 1; i <= 11; i++) {
		snprintf(tag, sizeof(tag), "m%02d", i);
		local_remove(x, "Other", tag);
	}
	before = server_view(x);
	is_int(fx_run(x), SYNC_EXIT_BRAKE,
	       "%s: local mass deletion: exit 5", what);
	after = server_view(x);
	is_str(after, before, "%s: nothing expunged on the server", what);
	free(before);
	free(after);
	x->o.force = true;
	is_int(fx_run(x), 0, "%s: --force: exit 0", what);
	x->o.force = false;
	ok(fake_folder_info(x->fs, "Other", &info, &error) == 0 &&
	   info.exists == 2, "%s: --force expunged them", what);

	/* exactly 10 deleted is not braked */
	for (i = 1; i <= 10; i++) {
		snprintf(tag, sizeof(tag), "n%02d", i);
		srv_add(x, "Third", tag, 0);
	}
	is_int(fx_run(x), 0, "%s: set-up Third", what);
	for (i = 1; i <= 10; i++) {
		snprintf(tag, sizeof(tag), "n%02d", i);
		srv_expunge(x, "Third", tag);
	}
	is_int(fx_run(x), 0, "%s: deleting 10 (all) is not braked", what);

	/* 11 of 22 is not more than half: not braked */
	for (i = 1; i <= 22; i++) {
		snprintf(tag, sizeof(tag), "h%02d", i);
		srv_add(x, "Fourth", tag, 0);
	}
	is_int(fx_run(x), 0, "%s: set-up Fourth", what);
	for (i = 1; i <= 11; i++) {
		snprintf(tag, sizeof(tag), "h%02d", i);
		local_remove(x, "Fourth", tag);
	}
	is_int(fx_run(x), 0, "%s: deleting 11 of 22 is not braked", what);
	ok(fake_folder_info(x->fs, "Fourth", &info, &error) == 0 &&
	   info.exists == 11, "%s: 11 of 22 expunged", what);
	free(what);
	fx_free(&x);
}

static void t_local_folder_gone(unsigned caps)
{
	struct fx *x = synced("folder-gone", caps, MDIR_VERBATIM);
	char *what = xasprintf("local folder deleted (%s)", caps_name(caps));
	char *p = local_path(x, "Work"), *error = NULL;
	struct fake_folder_info info;
	struct lmsg *m;
	size_t n;

	rm_rf(p);
	srv_add(x, "INBOX", "e", 0);
	is_int(fx_run(x), SYNC_EXIT_BRAKE, "%s: exit 5", what);
	ok(fake_folder_info(x->fs, "Work", &info, &error) == 0 &&
	   info.exists == 2, "%s: server folder untouched", what);
	local_list(x, "INBOX", &m, &n);
	ok(lfind(m, n, "e") != NULL, "%s: other folders synced", what);
	lmsgs_free(m, n);
	x->o.force = true;
	is_int(fx_run(x), 0, "%s: --force: exit 0", what);
	x->o.force = false;
	free(p);
	free(what);
	fx_free(&x);
}

static char *state_bytes(struct fx *x)
{
	char *p = xasprintf("%s/%s.db", x->state_dir, ACCOUNT), *d, *r;
	char *pw = xasprintf("%s-wal", p), *w;
	size_t n, nw;
	uint64_t h = 1469598103934665603ULL;

	d = slurp(p, &n);
	w = slurp(pw, &nw);
	if (d != NULL)
		for (size_t i = 0; i < n; i++)
			h = (h ^ (unsigned char)d[i]) * 1099511628211ULL;
	r = xasprintf("db %zu bytes hash %016llx, wal %s %zu bytes",
		      d ? n : 0, (unsigned long long)h, w ? "present" : "absent",
		      w ? nw : 0);
	free(d);
	free(w);
	free(p);
	free(pw);
	return r;
}

static void t_dry_run(unsigned caps)
{
	struct fx *x = synced("dry-run", caps, MDIR_VERBATIM);
	char *what = xasprintf("dry run (%s)", caps_name(caps));
	char *before, *after, *sb, *sa;
	struct fake_counters c;
	int ret;

	srv_add(x, "INBOX", "s1", 0);
	srv_add(x, "NewServer", "s2", 0);
	local_add(x, "INBOX", "l1", MF_SEEN);
	local_add(x, "NewLocal", "l2", 0);
	srv_flags(x, "INBOX", "a", MF_FLAGGED);
	local_flags(x, "INBOX", "b", MF_SEEN | MF_ANSWERED);
	srv_expunge(x, "INBOX", "c");
	local_remove(x, "Work", "w1");
	before = snapshot(x);
	sb = state_bytes(x);
	x->o.dry_run = true;
	{
		/* the plan goes to stdout: keep it out of the TAP stream */
		char *out = xasprintf("%s/plan.txt", x->root), *plan;
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int saved = dup(1);
		size_t len;

		fflush(stdout);
		dup2(fd, 1);
		ret = fx_run(x);
		fflush(stdout);
		dup2(saved, 1);
		close(saved);
		close(fd);
		plan = slurp(out, &len);
		ok(plan != NULL && strstr(plan, "INBOX") != NULL &&
		   strstr(plan, "NewServer") != NULL &&
		   strstr(plan, "NewLocal") != NULL,
		   "%s: the plan is printed on stdout", what);
		free(plan);
		free(out);
	}
	x->o.dry_run = false;
	is_int(ret, 0, "%s: exit 0", what);
	after = snapshot(x);
	sa = state_bytes(x);
	is_str(after, before, "%s: both sides unchanged", what);
	is_str(sa, sb, "%s: state file unchanged", what);
	fake_server_counters(x->fs, &c);
	if (!ok(c.bodies == 0 && c.appends == 0 && c.stores == 0 &&
		c.expunges == 0 && c.creates == 0 && c.moves == 0,
		"%s: no write command sent", what))
		counters_diag(x);
	is_int(fx_run(x), 0, "%s: then a real run", what);
	check_views(x,
		    "INBOX: a(F) b(RS) d(FS) l1(S) s1()\n"
		    "NewLocal: l2()\n"
		    "NewServer: s2()\n"
		    "Work: w2()\n", what);
	free(before);
	free(after);
	free(sa);
	free(sb);
	free(what);
	fx_free(&x);
}

static void t_moves(unsigned caps)
{
	struct fx *x = synced("moves", caps, MDIR_VERBATIM);
	char *what = xasprintf("moves both ways (%s)", caps_name(caps));
	struct fake_counters c;
	char *error = NULL, *src, *dst, *dir;
	struct lmsg *m, *e;
	size_t n;
	uint32_t nu;

	/* server: a INBOX -> Work */
	if (fake_msg_move(x->fs, "INBOX", srv_uid(x, "INBOX", "a"), "Work",
			  &nu, &error) < 0)
		bail("move", error);
	/* local: w1 Work -> INBOX (same file name) */
	local_list(x, "Work", &m, &n);
	e = lfind(m, n, "w1");
	dir = local_path(x, "INBOX");
	src = e ? e->path : NULL;
	dst = e ? xasprintf("%s/cur/%s", dir, strrchr(e->path, '/') + 1) : NULL;
	if (src == NULL || rename(src, dst) < 0)
		bail("local move", xstrdup("w1"));
	free(dst);
	free(dir);
	lmsgs_free(m, n);
	is_int(fx_run(x), 0, "%s: exit 0", what);
	check_views(x,
		    "INBOX: b(S) c(S) d(FS) w1(S)\n"
		    "Work: a() w2()\n", what);
	fake_server_counters(x->fs, &c);
	if (!ok(c.bodies == 0 && c.appends == 0,
		"%s: no body downloaded or uploaded", what))
		counters_diag(x);
	check_noop_run(x, what);
	free(what);
	fx_free(&x);
}

/* Files cp'ed from three folders into a fourth: a SELECT and a UID COPY
 * per source, all in one flight (remote_ops.copy_from_many), no body
 * either way. With the second source's SELECT refused in that flight,
 * the first and third copies are recorded, the second's stays journaled
 * and the run fails; with the connection lost there, only the first was
 * copied and every entry stays. The next run finishes them, no APPEND. */
static void t_copies_flight(unsigned caps)
{
	static const char want[] =
		"Archive: r1(S)\n"
		"INBOX: a() b(S) c(S) d(FS)\n"
		"Saved: a() r1(S) w1(S) z()\n"
		"Work: w1(S) w2()\n";
	static const char *const after[] = {
		NULL, "Saved: r1(S) w1(S) z()\n", "Saved: r1(S) z()\n",
	};
	int fault;

	for (fault = 0; fault < 3; fault++) {
		struct fx *x = synced(fault ? "copies-flight-fault"
					    : "copies-flight", caps,
				      MDIR_VERBATIM);
		char *what = xasprintf("copies from three folders%s (%s)",
				       fault == 1 ? ", a SELECT refused" :
				       fault == 2 ? ", connection lost" : "",
				       caps_name(caps));
		struct fake_counters c;
		unsigned copies;
		char *v;

		srv_add(x, "Archive", "r1", MF_SEEN);
		srv_add(x, "Saved", "z", 0);
		is_int(fx_run(x), 0, "%s: set-up run", what);
		local_add(x, "Saved", "a", 0);
		local_add(x, "Saved", "w1", MF_SEEN);
		local_add(x, "Saved", "r1", MF_SEEN);
		fake_server_reset_counters(x->fs);
		if (!fault) {
			is_int(fx_run(x), 0, "%s: exit 0", what);
			fake_server_counters(x->fs, &c);
			if (!ok(c.copies == 3 && c.appends == 0 &&
				c.bodies == 0,
				"%s: three UID COPYs, no body (%u copies)",
				what, c.copies))
				counters_diag(x);
			check_views(x, want, what);
			check_noop_run(x, what);
			free(what);
			fx_free(&x);
			continue;
		}
		/* Archive, INBOX, Work: INBOX is the second */
		fake_server_fail(x->fs, "copy_from_select", 2,
				 fault == 1 ? IMAP_FAIL_NO : IMAP_FAIL_NET);
		ok(fx_run(x) != 0, "%s: the run fails", what);
		fake_server_fail(x->fs, "", 0, IMAP_FAIL_NONE);
		fake_server_counters(x->fs, &c);
		copies = c.copies;
		v = server_view(x);
		if (!ok(strstr(v, after[fault]) != NULL && c.appends == 0,
			"%s: %s", what, fault == 1
				? "the first and third copied, the second not"
				: "the first copied, the others not"))
			diag(v);
		free(v);
		is_int(fx_run(x), 0, "%s: the next run exits 0", what);
		fake_server_counters(x->fs, &c);
		if (!ok(c.appends == 0 && c.bodies == 0 &&
			c.copies == copies + (fault == 1 ? 1 : 2),
			"%s: the next run copies the rest, no body (%u "
			"copies)", what, c.copies - copies))
			counters_diag(x);
		check_views(x, want, what);
		check_noop_run(x, what);
		free(what);
		fx_free(&x);
	}
}

/* Gmail's layout (issue 14): All Mail holds every message, labels are
 * folders holding some of them again. Each body is downloaded once and
 * linked into every folder; removing a message from a label folder on
 * either side removes only that label. */
static ino_t local_inode(struct fx *x, const char *folder, const char *tag)
{
	struct lmsg *m, *e;
	size_t n;
	struct stat st;
	ino_t ino = 0;

	local_list(x, folder, &m, &n);
	if ((e = lfind(m, n, tag)) != NULL && stat(e->path, &st) == 0)
		ino = st.st_ino;
	lmsgs_free(m, n);
	return ino;
}

static void t_gmail(unsigned caps)
{
	struct fx *x = fx_new("gmail", caps, MDIR_VERBATIM);
	char *what = xasprintf("gmail labels (%s)", caps_name(caps));
	const char *all = "[Gmail]/All Mail";
	struct fake_counters c;
	char *s, *l, tag[16];
	int i;

	x->a.gmail = true;
	for (i = 1; i <= 300; i++) {
		snprintf(tag, sizeof(tag), "g%d", i);
		srv_add(x, all, tag, i % 2 ? MF_SEEN : 0);
		if (i <= 100) {
			srv_add(x, "Label1", tag, i % 2 ? MF_SEEN : 0);
			srv_add(x, "Label2", tag, i % 2 ? MF_SEEN : 0);
		}
		if (i > 250)
			srv_add(x, "INBOX", tag, i % 2 ? MF_SEEN : 0);
	}
	fake_server_reset_counters(x->fs);
	is_int(fx_run(x), 0, "%s: first sync exits 0", what);
	fake_server_counters(x->fs, &c);
	if (!ok(c.bodies == 300, "%s: 550 messages in 4 folders, 300 bodies "
		"downloaded (%u)", what, c.bodies))
		counters_diag(x);
	s = server_view(x);
	l = local_view(x);
	is_str(l, s, "%s: both sides equal", what);
	free(s);
	free(l);
	ok(local_inode(x, "Label1", "g7") != 0 &&
	   local_inode(x, "Label1", "g7") == local_inode(x, all, "g7") &&
	   local_inode(x, "Label2", "g7") == local_inode(x, all, "g7") &&
	   local_inode(x, "INBOX", "g299") == local_inode(x, all, "g299"),
	   "%s: a message in several labels is one file, linked", what);

	/* deleted from a label folder here: the label goes, not the mail */
	local_remove(x, "Label1", "g1");
	/* a label removed on the server (Gmail: expunged from the label) */
	srv_expunge(x, "Label2", "g2");
	fake_server_reset_counters(x->fs);
	is_int(fx_run(x), 0, "%s: label removals: sync exits 0", what);
	fake_server_counters(x->fs, &c);
	ok(srv_uid(x, "Label1", "g1") == 0 && srv_uid(x, all, "g1") != 0 &&
	   srv_uid(x, "Label2", "g1") != 0,
	   "%s: deleted in Label1 locally: only that label gone on the server",
	   what);
	ok(local_inode(x, "Label2", "g2") == 0 && local_inode(x, all, "g2") != 0 &&
	   local_inode(x, "Label1", "g2") == local_inode(x, all, "g2"),
	   "%s: label removed on the server: only that folder's file gone", what);
	ok(c.bodies == 0 && c.appends == 0 && c.expunges == 1,
	   "%s: label removals: one expunge, no body transferred", what);
	s = server_view(x);
	l = local_view(x);
	is_str(l, s, "%s: label removals: both sides equal", what);
	free(s);
	free(l);
	check_noop_run(x, what);
	free(what);
	fx_free(&x);
}

/* ---- Gmail with X-GM-MSGID ---- */

static int cmp_str_p(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The bytes of every message of a folder, both sides, as one sorted
 * text each (CRLF line ends): equal when each side holds the same
 * messages byte for byte, whatever their Subject says. */
static bool same_bytes(struct fx *x, const char *folder)
{
	struct fake_msg *msgs;
	struct lmsg *m;
	size_t ns, nl, i;
	char *error = NULL, **sv, **lv;
	bool same;

	if (fake_folder_messages(x->fs, folder, &msgs, &ns, &error) < 0)
		bail("server messages", error);
	local_list(x, folder, &m, &nl);
	sv = xcalloc(ns + 1, sizeof(*sv));
	lv = xcalloc(nl + 1, sizeof(*lv));
	for (i = 0; i < ns; i++)
		sv[i] = xstrdup(msgs[i].data);
	for (i = 0; i < nl; i++)
		lv[i] = to_crlf(m[i].data);
	qsort(sv, ns, sizeof(*sv), cmp_str_p);
	qsort(lv, nl, sizeof(*lv), cmp_str_p);
	same = ns == nl;
	for (i = 0; same && i < ns; i++)
		same = strcmp(sv[i], lv[i]) == 0;
	for (i = 0; i < ns; i++)
		free(sv[i]);
	for (i = 0; i < nl; i++)
		free(lv[i]);
	free(sv);
	free(lv);
	fake_msgs_free(msgs, ns);
	lmsgs_free(m, nl);
	return same;
}

/* The identity the state recorded for a folder's message with this
 * Subject (malloc'ed, "" when none, NULL when no such pair). */
static char *state_emailid(struct fx *x, const char *folder, const char *tag)
{
	struct state *st = NULL;
	struct state_folder sf;
	struct state_msg *m = NULL;
	struct lmsg *lm, *e;
	size_t n = 0, nl, i;
	char *error = NULL, *r = NULL;

	if (state_open(x->state_dir, ACCOUNT, &st, &error) < 0)
		bail("state", error);
	local_list(x, folder, &lm, &nl);
	e = lfind(lm, nl, tag);
	if (e != NULL && state_folder_get(st, folder, &sf) == 0) {
		if (state_msgs_load(st, sf.id, &m, &n) < 0)
			bail("state", xstrdup(state_error(st)));
		for (i = 0; i < n && r == NULL; i++)
			if (strstr(e->path, m[i].base) != NULL)
				r = xstrdup(m[i].emailid ? m[i].emailid : "");
		state_msgs_free(m, n);
		state_folder_release(&sf);
	}
	lmsgs_free(lm, nl);
	state_close(&st);
	return r;
}

static void srv_add_raw(struct fx *x, const char *folder, const char *data)
{
	char *error = NULL;

	if (fake_folder_info(x->fs, folder, &(struct fake_folder_info){ 0 },
			     &error) == 1 &&
	    fake_folder_create(x->fs, folder, &error) < 0)
		bail("server create", error);
	if (fake_msg_add(x->fs, folder, data, strlen(data), 0, 1700000000,
			 NULL, &error) < 0)
		bail("server add", error);
}

static unsigned srv_count(struct fx *x, const char *folder)
{
	struct fake_folder_info info;
	char *error = NULL;

	if (fake_folder_info(x->fs, folder, &info, &error) != 0)
		bail("server info", error ? error : xstrdup(folder));
	return info.exists;
}

/*
 * A server that answers X-GM-MSGID (X-GM-EXT-1, no `gmail: true`): the
 * fake gives a message the same id in every label folder, and deletes it
 * from all of them when it is expunged from All Mail, as Gmail does.
 * Two drafts with the same header and size but other text are two
 * messages: each is downloaded, neither is linked to the other.
 */
static void t_gmail_msgid(unsigned caps)
{
	struct fx *x = fx_new("gmail-msgid", caps | IMAP_CAP_XGM_EXT1,
			      MDIR_VERBATIM);
	char *what = xasprintf("X-GM-MSGID (%s)", caps_name(caps));
	const char *all = "[Gmail]/All Mail", *drafts = "[Gmail]/Drafts";
	static const char draft_a[] =
		"From: user@example.org\nSubject: draft\n"
		"Message-ID: <draft@twinbox.test>\n\nFirst version.\n";
	static const char draft_b[] =
		"From: user@example.org\nSubject: draft\n"
		"Message-ID: <draft@twinbox.test>\n\nOther version.\n";
	struct fake_counters c;
	char *s, *l, tag[16], *before, *after;
	int i;

	for (i = 1; i <= 300; i++) {
		snprintf(tag, sizeof(tag), "g%d", i);
		srv_add(x, all, tag, i % 2 ? MF_SEEN : 0);
		if (i <= 100) {
			srv_add(x, "Label1", tag, i % 2 ? MF_SEEN : 0);
			srv_add(x, "Label2", tag, i % 2 ? MF_SEEN : 0);
		}
		if (i > 250)
			srv_add(x, "INBOX", tag, i % 2 ? MF_SEEN : 0);
	}
	srv_add_raw(x, all, draft_a);
	srv_add_raw(x, drafts, draft_a);
	srv_add_raw(x, all, draft_b);
	fake_server_reset_counters(x->fs);
	is_int(fx_run(x), 0, "%s: first sync exits 0", what);
	fake_server_counters(x->fs, &c);
	if (!ok(c.bodies == 302, "%s: 553 messages in 5 folders, 302 bodies "
		"downloaded (%u)", what, c.bodies))
		counters_diag(x);
	s = server_view(x);
	l = local_view(x);
	is_str(l, s, "%s: both sides equal", what);
	free(s);
	free(l);
	ok(same_bytes(x, all) && same_bytes(x, drafts),
	   "%s: two drafts with one header: each has its own bytes", what);
	ok(local_inode(x, "Label1", "g7") != 0 &&
	   local_inode(x, "Label1", "g7") == local_inode(x, all, "g7") &&
	   local_inode(x, "Label2", "g7") == local_inode(x, all, "g7") &&
	   local_inode(x, "INBOX", "g299") == local_inode(x, all, "g299"),
	   "%s: a message in several labels is one file, linked", what);
	{
		char *a = state_emailid(x, all, "g7"),
		     *b = state_emailid(x, "Label1", "g7"),
		     *d = state_emailid(x, "Label2", "g8");

		ok(a != NULL && b != NULL && d != NULL &&
		   strncmp(a, "gm:", 3) == 0 && strcmp(a, b) == 0 &&
		   strncmp(d, "gm:", 3) == 0 && strcmp(a, d) != 0,
		   "%s: the state keeps each message's X-GM-MSGID (%s %s %s)",
		   what, a ? a : "-", b ? b : "-", d ? d : "-");
		free(a);
		free(b);
		free(d);
	}

	/* label removals are removals for the brake: 60 of Label1's 100 */
	for (i = 1; i <= 60; i++) {
		snprintf(tag, sizeof(tag), "g%d", i);
		local_remove(x, "Label1", tag);
	}
	before = server_view(x);
	is_int(fx_run(x), SYNC_EXIT_BRAKE,
	       "%s: 60 labels removed at once: the brake holds (exit 5)", what);
	after = server_view(x);
	is_str(after, before, "%s: braked: nothing expunged", what);
	free(before);
	free(after);
	x->o.force = true;
	is_int(fx_run(x), 0, "%s: --force: exit 0", what);
	x->o.force = false;
	ok(srv_count(x, "Label1") == 40 && srv_count(x, all) == 302 &&
	   srv_count(x, "Label2") == 100,
	   "%s: --force removed the label only (Label1 %u, All Mail %u)",
	   what, srv_count(x, "Label1"), srv_count(x, all));

	/* deleted from All Mail: gone from every label, on both sides */
	local_remove(x, all, "g299");
	local_remove(x, all, "g70");
	fake_server_reset_counters(x->fs);
	is_int(fx_run(x), 0, "%s: deleted in All Mail: exit 0", what);
	is_int(fx_run(x), 0, "%s: and the next run: exit 0", what);
	fake_server_counters(x->fs, &c);
	ok(srv_uid(x, all, "g299") == 0 && srv_uid(x, "INBOX", "g299") == 0 &&
	   srv_uid(x, "Label1", "g70") == 0 && srv_uid(x, "Label2", "g70") == 0,
	   "%s: deleted in All Mail: gone from every label on the server",
	   what);
	ok(local_inode(x, "INBOX", "g299") == 0 &&
	   local_inode(x, "Label1", "g70") == 0 &&
	   local_inode(x, "Label2", "g70") == 0 &&
	   local_inode(x, all, "g71") != 0,
	   "%s: and locally; the others stay", what);
	ok(c.bodies == 0 && c.appends == 0,
	   "%s: deletions transfer no body", what);
	s = server_view(x);
	l = local_view(x);
	is_str(l, s, "%s: deletions: both sides equal", what);
	free(s);
	free(l);
	check_noop_run(x, what);
	free(what);
	fx_free(&x);
}

static const char gm_draft_a[] =
	"From: user@example.org\nSubject: draft\n"
	"Message-ID: <draft@twinbox.test>\n\nFirst version.\n";
static const char gm_draft_b[] =
	"From: user@example.org\nSubject: draft\n"
	"Message-ID: <draft@twinbox.test>\n\nOther version.\n";

/* A synced Gmail account, then every kind of copy at once for the next
 * run: labels added on the server to known messages, new messages in
 * All Mail and a label, a second draft with the first one's header, and
 * a local cp into a label folder. */
static struct fx *gmail_crash_setup(const char *name, unsigned caps)
{
	struct fx *x = fx_new(name, caps | IMAP_CAP_XGM_EXT1, MDIR_VERBATIM);
	const char *all = "[Gmail]/All Mail";
	char tag[16];
	int i;

	for (i = 1; i <= 8; i++) {
		snprintf(tag, sizeof(tag), "m%d", i);
		srv_add(x, all, tag, i % 2 ? MF_SEEN : 0);
		if (i <= 4)
			srv_add(x, "Label1", tag, i % 2 ? MF_SEEN : 0);
	}
	srv_add_raw(x, all, gm_draft_a);
	srv_add_raw(x, "[Gmail]/Drafts", gm_draft_a);
	if (fx_run(x) != 0)
		bail("gmail crash set-up", xstrdup(name));
	for (i = 1; i <= 3; i++) {
		snprintf(tag, sizeof(tag), "m%d", i);
		srv_add(x, "Label2", tag, 0);
		snprintf(tag, sizeof(tag), "n%d", i);
		srv_add(x, all, tag, 0);
		srv_add(x, "Label2", tag, MF_FLAGGED);
	}
	srv_add_raw(x, all, gm_draft_b);
	local_add(x, "Label1", "m6", MF_SEEN);
	return x;
}

/* Every crash point of that run, then a run to the end: the straight
 * result, each message once per folder with its own bytes, and a next
 * run that has nothing to do. */
static void t_gmail_crash(unsigned caps)
{
	char *what = xasprintf("gmail crash/resume (%s)", caps_name(caps));
	struct fx *x = gmail_crash_setup("gm-crash-straight", caps);
	struct fake_counters c;
	char *straight;
	long n;
	int ret, bad = 0, crashes = 0;

	fake_server_reset_counters(x->fs);
	is_int(fx_run(x), 0, "%s: straight run exits 0", what);
	fake_server_counters(x->fs, &c);
	if (!ok(c.bodies == 4 && c.appends == 0,
		"%s: straight run: 4 bodies (n1-n3, the second draft), no "
		"APPEND (%u, %u)", what, c.bodies, c.appends))
		counters_diag(x);
	straight = server_view(x);
	{
		char *l = local_view(x);

		is_str(l, straight, "%s: straight run: both sides agree", what);
		free(l);
	}
	ok(strstr(straight, "Label1: m1(S) m2() m3(S) m4() m6(S)\n") &&
	   strstr(straight, "Label2: m1() m2() m3() n1(F) n2(F) n3(F)\n"),
	   "%s: straight result has every copy once", what);
	ok(same_bytes(x, "[Gmail]/All Mail"), "%s: straight run: each draft "
	   "its own bytes", what);
	fx_free(&x);
	for (n = 1; n <= 300; n++) {
		char name[32], *s, *l;
		int r2;

		snprintf(name, sizeof(name), "gm-crash-%ld", n);
		x = gmail_crash_setup(name, caps);
		ret = fx_run_child(x, n);
		if (ret != 99) {
			is_int(ret, 0, "%s: with TWINBOX_CRASH_AT=%ld the run "
			       "completes (%ld crash points)", what, n, n - 1);
			fx_free(&x);
			break;
		}
		crashes++;
		r2 = fx_run_child(x, 0);
		s = server_view(x);
		l = local_view(x);
		if (r2 != 0 || strcmp(s, straight) != 0 ||
		    strcmp(l, straight) != 0 ||
		    !same_bytes(x, "[Gmail]/All Mail")) {
			char *d = xasprintf("crash at %ld, resume exit %d\n"
					    "# server:\n%s# local:\n%s", n, r2,
					    s, l);
			bad++;
			ok(0, "%s: crash at step %ld then resume", what, n);
			diag(d);
			free(d);
		} else {
			check_noop_run(x, name);
		}
		free(s);
		free(l);
		fx_free(&x);
	}
	ok(crashes > 0, "%s: the run has crash points (%d)", what, crashes);
	ok(bad == 0, "%s: every crash point resumes to the straight result",
	   what);
	free(straight);
	free(what);
}

/*
 * TB_BIG_GMAIL=N (not run otherwise): a Gmail first sync of N messages in
 * All Mail, N/2 of them in a label and N/10 in INBOX, then N new ones
 * again (the early downloads of a known folder and their claims). Each
 * run downloads N bodies; the times are printed, for a matching that
 * turns quadratic again to show.
 */
static void big_batch(struct fx *x, const char *folder, int from, int to)
{
	char **m = xcalloc((size_t)(to - from) + 1, sizeof(*m)), tag[24];
	char *error = NULL;
	int i;

	if (fake_folder_info(x->fs, folder, &(struct fake_folder_info){ 0 },
			     &error) == 1 &&
	    fake_folder_create(x->fs, folder, &error) < 0)
		bail("server create", error);
	for (i = from; i < to; i++) {
		snprintf(tag, sizeof(tag), "b%d", i);
		m[i - from] = msg_lf(tag);
	}
	if (fake_msgs_add(x->fs, folder, (const char *const *)m,
			  (size_t)(to - from), 0, &error) < 0)
		bail("server add", error);
	for (i = from; i < to; i++)
		free(m[i - from]);
	free(m);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void t_big_gmail(int n)
{
	struct fx *x = fx_new("big-gmail", FAKE_CAPS_FULL | IMAP_CAP_XGM_EXT1,
			      MDIR_VERBATIM);
	const char *all = "[Gmail]/All Mail";
	struct fake_counters c;
	int64_t t0;
	int round;

	for (round = 0; round < 2; round++) {
		int base = round * n;

		big_batch(x, all, base, base + n);
		big_batch(x, "Label", base, base + n / 2);
		big_batch(x, "INBOX", base, base + n / 10);
		fake_server_reset_counters(x->fs);
		t0 = mono_ms();
		is_int(fx_run(x), 0, "big gmail, %s sync of %d: exit 0",
		       round ? "second" : "first", n);
		printf("# big gmail: %s sync of %d new messages in All Mail "
		       "(%d in a label, %d in INBOX): %.2f s\n",
		       round ? "second" : "first", n, n / 2, n / 10,
		       (double)(mono_ms() - t0) / 1000);
		fake_server_counters(x->fs, &c);
		if (!ok(c.bodies == (unsigned)n, "big gmail: %d bodies (%u)", n,
			c.bodies))
			counters_diag(x);
	}
	fx_free(&x);
}

/* ---- crash and resume ---- */

static void local_move(struct fx *x, const char *from, const char *tag,
		       const char *to)
{
	struct lmsg *m, *e;
	size_t n;
	char *dir, *dst;

	local_mkfolder(x, to);
	local_list(x, from, &m, &n);
	if ((e = lfind(m, n, tag)) == NULL)
		bail("local move", xstrdup(tag));
	dir = local_path(x, to);
	dst = xasprintf("%s/%s", dir, strrchr(e->path, '/') - 3);
	if (rename(e->path, dst) < 0)
		bail("local move", xasprintf("%s: %s", dst, strerror(errno)));
	free(dst);
	free(dir);
	lmsgs_free(m, n);
}

static void srv_move(struct fx *x, const char *from, const char *tag,
		     const char *to)
{
	char *error = NULL;

	if (fake_msg_move(x->fs, from, srv_uid(x, from, tag), to, NULL,
			  &error) < 0)
		bail("server move", error);
}

/* Make every local folder's cur/ and new/ look last changed `ago`
 * seconds ago, so the engine trusts their mtimes ("unchanged folder costs
 * a stat"; it does not store mtimes of the last two seconds). */
static void local_age(struct fx *x, time_t ago)
{
	char **names, *error = NULL;
	size_t n, i, j;
	struct timeval tv[2];
	const char *sub[] = { "cur", "new" };

	tv[0].tv_sec = tv[1].tv_sec = time(NULL) - ago;
	tv[0].tv_usec = tv[1].tv_usec = 0;
	if (mdir_list_folders(x->maildir, x->layout, &names, &n, &error) < 0)
		bail("local folders", error);
	for (i = 0; i < n; i++) {
		char *dir = local_path(x, names[i]);

		for (j = 0; j < 2; j++) {
			char *p = xasprintf("%s/%s", dir, sub[j]);

			if (utimes(p, tv) < 0)
				bail("utimes", p);
			free(p);
		}
		free(dir);
	}
	mdir_names_free(names, n);
}

enum crash_kind { CRASH_MIXED, CRASH_MOVES, CRASH_UIDVALIDITY,
		  CRASH_OLD_MTIMES };
static const char *const crash_kind_names[] = { "mixed", "moves",
						"uidvalidity", "old-mtimes" };
static const char *const crash_want[] = {
	"INBOX: a(FS) b(RS) d(FS) l1() l2(FS) s1(S) s2()\n"
	"Local/New: l3(S)\n"
	"Server/New: s4()\n"
	"Work: s3(F) w2(S)\n",
	"Archive: a(F) c(S) w1(S)\n"
	"INBOX: b(S) w2() x1()\n"
	"Work: d(FS)\n",
	"INBOX: a(S) after() b(S) c(S) d(F) l1()\n"
	"Work: w1(S) w2()\n",
	"INBOX: a(F) b(S) d(FS) w1(S)\n"
	"Work: c(S) w2()\n",
};

/* Pending changes in a synced account: every kind (mixed), moves both
 * ways (with a flag change on a moved message), or a UIDVALIDITY reset. */
static struct fx *crash_setup(const char *name, unsigned caps,
			      enum crash_kind kind)
{
	struct fx *x = synced(name, caps, MDIR_VERBATIM);
	char *error = NULL;

	if (kind == CRASH_MOVES) {
		srv_add(x, "Archive", "x0", 0);
		srv_expunge(x, "Archive", "x0");
		srv_move(x, "INBOX", "a", "Archive");
		srv_flags(x, "Archive", "a", MF_FLAGGED);
		srv_move(x, "INBOX", "d", "Work");
		local_move(x, "INBOX", "c", "Archive");
		local_move(x, "Work", "w1", "Archive");
		local_move(x, "Work", "w2", "INBOX");
		srv_add(x, "INBOX", "x1", 0);
		return x;
	}
	if (kind == CRASH_OLD_MTIMES) {
		/* local moves made a while before the run, in folders whose
		 * mtimes the state holds */
		local_age(x, 600);
		if (fx_run(x) != 0)
			diag("old-mtimes: set-up run failed");
		local_move(x, "INBOX", "c", "Work");
		local_move(x, "Work", "w1", "INBOX");
		local_flags(x, "INBOX", "a", MF_FLAGGED);
		local_age(x, 300);
		fake_server_reset_counters(x->fs);
		return x;
	}
	if (kind == CRASH_UIDVALIDITY) {
		if (fake_folder_reset(x->fs, "INBOX", true, NULL, &error) < 0)
			bail("reset", error);
		srv_add(x, "INBOX", "after", 0);
		srv_flags(x, "INBOX", "d", MF_FLAGGED);
		local_flags(x, "INBOX", "a", MF_SEEN);
		local_add(x, "INBOX", "l1", 0);
		return x;
	}
	srv_add(x, "INBOX", "s1", MF_SEEN);
	srv_add(x, "INBOX", "s2", 0);
	srv_add(x, "Work", "s3", MF_FLAGGED);
	srv_add(x, "Server/New", "s4", 0);
	local_add(x, "INBOX", "l1", 0);
	local_add(x, "INBOX", "l2", MF_SEEN | MF_FLAGGED);
	local_add(x, "Local/New", "l3", MF_SEEN);
	srv_flags(x, "INBOX", "a", MF_FLAGGED);
	local_flags(x, "INBOX", "a", MF_SEEN);
	local_flags(x, "INBOX", "b", MF_SEEN | MF_ANSWERED);
	srv_flags(x, "Work", "w2", MF_SEEN);
	srv_expunge(x, "INBOX", "c");
	local_remove(x, "Work", "w1");
	return x;
}

static void t_crash(unsigned caps, enum crash_kind kind)
{
	struct fx *x;
	char *straight, *what = xasprintf("crash/resume %s (%s)",
					  crash_kind_names[kind],
					  caps_name(caps));
	long n;
	int ret, bad = 0, crashes = 0;

	/* straight through */
	x = crash_setup("crash-straight", caps, kind);
	ret = fx_run_child(x, 0);
	is_int(ret, 0, "%s: straight run exits 0", what);
	straight = server_view(x);
	{
		char *l = local_view(x);

		is_str(l, straight, "%s: straight run: both sides agree", what);
		free(l);
	}
	is_str(straight, crash_want[kind], "%s: straight result", what);
	fx_free(&x);

	for (n = 1; n <= 500; n++) {
		char name[32], *s, *l;
		int r2;
		const char *only = getenv("TB_CRASH_ONLY");

		if (only != NULL && atol(only) != n && atol(only) > 0) {
			if (n > atol(only))
				break;
			continue;
		}

		snprintf(name, sizeof(name), "crash-%ld", n);
		x = crash_setup(name, caps, kind);
		ret = fx_run_child(x, n);
		if (ret != 99) {
			is_int(ret, 0, "%s: with TWINBOX_CRASH_AT=%ld the run "
			       "completes (%ld crash points)", what, n, n - 1);
			fx_free(&x);
			break;
		}
		crashes++;
		r2 = fx_run_child(x, 0);
		s = server_view(x);
		l = local_view(x);
		if (r2 != 0 || strcmp(s, straight) != 0 ||
		    strcmp(l, straight) != 0) {
			char *d = xasprintf("crash at %ld, resume exit %d\n"
					    "# server:\n%s# local:\n%s", n, r2,
					    s, l);
			bad++;
			ok(0, "%s: crash at step %ld then resume", what, n);
			diag(d);
			free(d);
		} else {
			/* idempotence only on the runs that matched */
			struct fake_counters c;
			char *b = snapshot(x), *a2;

			fake_server_reset_counters(x->fs);
			r2 = fx_run(x);
			fake_server_counters(x->fs, &c);
			a2 = snapshot(x);
			if (r2 != 0 || strcmp(a2, b) != 0 || c.bodies ||
			    c.appends || c.stores || c.expunges || c.moves) {
				bad++;
				ok(0, "%s: crash at step %ld: idempotent run "
				   "(exit %d)", what, n, r2);
				counters_diag(x);
			}
			free(b);
			free(a2);
		}
		free(s);
		free(l);
		fx_free(&x);
	}
	ok(crashes > 0, "%s: the engine has crash points (%d)", what, crashes);
	ok(bad == 0, "%s: every crash point resumes to the straight result",
	   what);
	free(straight);
	free(what);
}

/* A connection that drops (or a command refused) at the nth call of an
 * op, for every op and n: the run may fail, the next must reach the
 * straight result. One connection, so the order of calls is fixed. */
static void t_faults(unsigned caps, enum crash_kind kind)
{
	static const char *const ops[] = {
		"list", "status", "select", "fetch_flags", "fetch_idents",
		"fetch_bodies", "append", "store", "expunge", "move",
		"search_msgid", "create", "connect",
	};
	static const enum imap_failure fails[] = { IMAP_FAIL_NET,
						   IMAP_FAIL_NO };
	char *what = xasprintf("faults %s (%s)", crash_kind_names[kind],
			       caps_name(caps));
	char *straight;
	struct fx *x;
	size_t i, k;
	unsigned nth;
	int bad = 0, fired = 0;

	x = crash_setup("fault-straight", caps, kind);
	x->a.connections = 1;
	is_int(fx_run(x), 0, "%s: straight run", what);
	straight = server_view(x);
	fx_free(&x);
	for (i = 0; i < N_ELEMENTS(ops); i++) {
		for (k = 0; k < N_ELEMENTS(fails); k++) {
			for (nth = 1; nth < 100; nth++) {
				char *s, *l;
				int r1, r2;
				bool pending;

				x = crash_setup("fault", caps, kind);
				x->a.connections = 1;
				fake_server_fail(x->fs, ops[i], nth, fails[k]);
				r1 = fx_run(x);
				pending = fake_server_fail_pending(x->fs);
				fake_server_fail(x->fs, "", 0, IMAP_FAIL_NONE);
				if (pending) {
					fx_free(&x);
					break;
				}
				fired++;
				r2 = fx_run(x);
				s = server_view(x);
				l = local_view(x);
				if (r2 != 0 || strcmp(s, straight) != 0 ||
				    strcmp(l, straight) != 0) {
					char *d = xasprintf(
						"%s failing (%s) at call %u: "
						"run exit %d, resume exit %d\n"
						"# server:\n%s# local:\n%s",
						ops[i], fails[k] == IMAP_FAIL_NET ?
						"connection lost" : "NO", nth, r1,
						r2, s, l);
					bad++;
					ok(0, "%s: %s failing at call %u, then "
					   "resume", what, ops[i], nth);
					diag(d);
					free(d);
				}
				free(s);
				free(l);
				fx_free(&x);
			}
		}
	}
	ok(fired > 0, "%s: %d failures injected", what, fired);
	ok(bad == 0, "%s: every failure resumes to the straight result", what);
	free(straight);
	free(what);
}

/* Run the engine in a fresh process that stops itself (SIGSTOP) at the
 * crash point stop_at; then act() runs, and the child is killed (kill) or
 * let go on. Returns the exit status, or -1; -2 when it never stopped. */
static int fx_run_child_stop(struct fx *x, const char *stop_at,
			     void (*act)(struct fx *), bool kill_it)
{
	pid_t pid;
	int status;
	bool stopped = false;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0) {
			dup2(fd, 1);
			if (getenv("TB_TEST_VERBOSE") == NULL)
				dup2(fd, 2);
		}
		unsetenv("TWINBOX_CRASH_AT");
		setenv("TWINBOX_STOP_AT", stop_at, 1);
		execl(self_exe, self_exe, "--child", x->root,
		      x->layout == MDIR_VERBATIM ? "verbatim" : "maildir++",
		      (char *)NULL);
		_exit(127);
	}
	for (;;) {
		if (waitpid(pid, &status, WUNTRACED) < 0)
			return -1;
		if (!WIFSTOPPED(status))
			break;
		stopped = true;
		if (act)
			act(x);
		kill(pid, kill_it ? SIGKILL : SIGCONT);
	}
	if (!stopped)
		return -2;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* The message of this tag as the engine APPENDs it (CRLF). */
static void srv_add_appended(struct fx *x, const char *folder,
			     const char *tag, unsigned flags)
{
	char *lf = msg_lf(tag), *m = to_crlf(lf), *error = NULL;

	if (fake_msg_add(x->fs, folder, m, strlen(m), flags, 1600000000,
			 NULL, &error) < 0)
		bail("server add", error);
	free(m);
	free(lf);
}

/* the server executes the APPENDs a killed run had sent only now */
static void late_appends_land(struct fx *x)
{
	srv_add_appended(x, "INBOX", "l1", 0);
	srv_add_appended(x, "INBOX", "l2", MF_SEEN);
}

/*
 * A run killed after journalling its uploads, whose APPENDs the server
 * executes late: after the next run's recovery has given up on them
 * (J_LATE_APPEND tombstones written) but before that run lists the new
 * server messages. The late copies are the uploads: each message must end
 * up once on each side, not downloaded as new and uploaded again.
 */
static void t_late_append(unsigned caps)
{
	struct fx *x = synced("late-append", caps, MDIR_VERBATIM);
	char *what = xasprintf("late APPEND before the listing (%s)",
			       caps_name(caps));
	const char *want = "INBOX: a() b(S) c(S) d(FS) l1() l2(S)\n"
			   "Work: w1(S) w2()\n";
	int ret;

	local_add(x, "INBOX", "l1", 0);
	local_add(x, "INBOX", "l2", MF_SEEN);
	ret = fx_run_child_stop(x, "upload journal written", NULL, true);
	is_int(ret, 128 + SIGKILL, "%s: killed with its uploads journalled",
	       what);
	ok(srv_uid(x, "INBOX", "l1") == 0, "%s: nothing appended yet", what);
	ret = fx_run_child_stop(x, "journal resolved", late_appends_land,
				false);
	is_int(ret, 0, "%s: the next run exits 0", what);
	check_views(x, want, what);
	is_int(fx_run(x), 0, "%s: one more run exits 0", what);
	check_views(x, want, what);
	check_noop_run(x, what);
	free(what);
	fx_free(&x);
}

int main(int argc, char **argv)
{
	static const unsigned caps_sets[] = { FAKE_CAPS_FULL,
					      FAKE_CAPS_TRIMMED };
	size_t i;

	/* The fake server executes an APPEND completely or not at all, so
	 * the pause recovery makes for a real server's late APPENDs only
	 * slows these scenarios down. */
	setenv("TWINBOX_APPEND_SETTLE_MS", "20", 0);

	if (argc == 4 && strcmp(argv[1], "--child") == 0) {
		const char *v = getenv("TB_TEST_VERBOSE");

		log_set_verbosity(v == NULL ? LOG_QUIET : atoi(v));
		return child_main(argv[2], argv[3]);
	}
	if (getenv("TB_TEST_VERBOSE") == NULL)
		log_set_verbosity(LOG_QUIET);
	self_exe = realpath("/proc/self/exe", NULL);
	/* tmpfs when there is one: the engine fsyncs a lot, and the
	 * scenarios test crash consistency, not the disk */
	tmproot = xasprintf("%s/t-engine.XXXXXX", getenv("TMPDIR") ?
			    getenv("TMPDIR") : access("/dev/shm", W_OK) == 0 ?
			    "/dev/shm" : "/tmp");
	if (self_exe == NULL || mkdtemp(tmproot) == NULL) {
		printf("Bail out! cannot set up: %s\n", strerror(errno));
		return 1;
	}
	unsetenv("TWINBOX_CRASH_AT");
	umask(022);

	if (getenv("TB_BIG_GMAIL") != NULL) {
		t_big_gmail(atoi(getenv("TB_BIG_GMAIL")));
		goto out;
	}
	for (i = 0; i < N_ELEMENTS(caps_sets); i++) {
		unsigned caps = caps_sets[i];

		if (getenv("TB_CRASH_ONLY") != NULL)
			break;

		t_initial_pull(caps, MDIR_VERBATIM);
		t_initial_pull(caps, MDIR_MAILDIRPP);
		t_upload(caps);
		t_flags(caps);
		t_deletions(caps);
		t_conflict(caps);
		t_new_both_and_folders(caps);
		t_uidvalidity(caps, false);
		t_uidvalidity(caps, true);
		t_brake(caps);
		t_local_folder_gone(caps);
		t_dry_run(caps);
		t_moves(caps);
		t_copies_flight(caps);
		t_gmail(caps);
		t_gmail_msgid(caps);
		t_late_append(caps);
	}
	for (i = 0; i < N_ELEMENTS(caps_sets); i++) {
		const char *k = getenv("TB_CRASH_KIND");
		size_t j;

		for (j = 0; j < N_ELEMENTS(crash_kind_names); j++)
			if (k == NULL || strcmp(k, crash_kind_names[j]) == 0)
				t_faults(caps_sets[i], (enum crash_kind)j);
		for (j = 0; j < N_ELEMENTS(crash_kind_names); j++)
			if (k == NULL || strcmp(k, crash_kind_names[j]) == 0)
				t_crash(caps_sets[i], (enum crash_kind)j);
		if (k == NULL || strcmp(k, "gmail") == 0)
			t_gmail_crash(caps_sets[i]);
	}

out:
	if (tap_failed == 0 && getenv("TB_KEEP") == NULL)
		rm_rf(tmproot);
	else
		printf("# temp files kept in %s\n", tmproot);
	free(self_exe);
	free(tmproot);
	return tap_done();
}
