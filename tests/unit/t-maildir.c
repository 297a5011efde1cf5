/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common.h"
#include "maildir/maildir.h"
#include "util/flags.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static char *tmpdir;

static void write_file(const char *path, const char *content)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		printf("# cannot write '%s': %s\n", path, strerror(errno));
		return;
	}
	fputs(content, f);
	fclose(f);
}

/* Whole file as a string ("" if missing); caller frees. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = xcalloc(1, 65536);

	if (f != NULL) {
		size_t n = fread(s, 1, 65535, f);

		s[n] = '\0';
		fclose(f);
	}
	return s;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static int mode_of(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static size_t count_files(const char *dir)
{
	char *cmd = xasprintf("ls -A '%s' | wc -l", dir);
	FILE *p = popen(cmd, "r");
	unsigned long n = 9999;

	if (p != NULL) {
		if (fscanf(p, "%lu", &n) != 1)
			n = 9999;
		pclose(p);
	}
	free(cmd);
	return n;
}

static struct mdir *open_dir(const char *rel, bool create)
{
	char *path = xasprintf("%s/%s", tmpdir, rel), *err = NULL;
	struct mdir *m = NULL;

	if (mdir_open(path, create, &m, NULL, &err) < 0) {
		printf("# cannot %s '%s': %s\n", create ? "create" : "open",
		       path, err);
		free(err);
	}
	free(path);
	return m;
}

static struct mdir *open_new(const char *rel)
{
	return open_dir(rel, true);
}

/* Deliver content with flags; returns the base (caller frees). */
static char *deliver(struct mdir *m, const char *content, unsigned flags,
		     time_t mtime)
{
	struct mdir_writer *w = NULL;
	char *err = NULL, *base;

	if (mdir_writer_new(m, &w, &err) < 0 ||
	    mdir_writer_write(w, content, strlen(content), &err) < 0 ||
	    mdir_writer_commit(w, flags, mtime, &err) < 0) {
		printf("# deliver failed: %s\n", err);
		free(err);
		mdir_writer_abort(&w);
		return xstrdup("?");
	}
	base = xstrdup(mdir_writer_base(w));
	mdir_writer_free(&w);
	return base;
}

static char *read_all(struct mdir *m, const char *base, size_t chunk,
		      uint64_t *size_r, ssize_t *last_r)
{
	struct mdir_reader *r = NULL;
	char *err = NULL, *out = xcalloc(1, 65536);
	size_t len = 0;
	ssize_t n = -1;

	*size_r = 0;
	if (mdir_reader_open(m, base, &r, &err) != 0) {
		printf("# reader open failed: %s\n", err ? err : "not found");
		free(err);
		*last_r = -1;
		return out;
	}
	*size_r = mdir_reader_size(r);
	while (len + chunk < 65536 &&
	       (n = mdir_reader_read(r, out + len, chunk, &err)) > 0)
		len += (size_t)n;
	if (n < 0) {
		printf("# read: %s\n", err);
		free(err);
	}
	*last_r = n;
	mdir_reader_close(&r);
	return out;
}

static void test_open(void)
{
	char *path = xasprintf("%s/a/b/fold", tmpdir), *err = NULL, *p;
	struct mdir *m = NULL;
	bool missing = false;

	ok(mdir_open(path, false, &m, &missing, &err) < 0 && m == NULL &&
	   missing && err != NULL, "open of a missing folder fails, missing");
	FREE_AND_NULL(err);
	ok(mdir_open(path, true, &m, &missing, &err) == 0 && m != NULL &&
	   !missing, "create with parents");
	is_str(mdir_path(m), path, "mdir_path");
	mdir_close(&m);
	ok(m == NULL, "close clears the pointer");
	p = xasprintf("%s/a", tmpdir);
	is_int(mode_of(p), 0700, "parent dir 0700 under umask 0");
	free(p);
	is_int(mode_of(path), 0700, "folder dir 0700");
	p = xasprintf("%s/cur", path);
	is_int(mode_of(p), 0700, "cur 0700");
	free(p);
	p = xasprintf("%s/tmp", path);
	is_int(mode_of(p), 0700, "tmp 0700");
	rmdir(p);
	free(p);
	ok(mdir_open(path, false, &m, &missing, &err) == 0 && !missing,
	   "open existing without tmp/");
	{
		/* tmp/ comes back on the first delivery */
		char *base = deliver(m, "x\n", 0, 0);
		char *f = xasprintf("%s/new/%s", path, base);

		ok(exists(f), "delivery made tmp/ again");
		free(f);
		free(base);
	}
	mdir_close(&m);
	p = xasprintf("rm -rf '%s/new'", path);
	ok(system(p) == 0, "remove new/");
	free(p);
	missing = false;
	ok(mdir_open(path, false, &m, &missing, &err) < 0 && missing,
	   "missing new/ is an error, missing set");
	FREE_AND_NULL(err);
	ok(mdir_open(path, true, &m, &missing, &err) == 0,
	   "create repairs it");
	mdir_close(&m);
	free(path);
}

static void test_writer(void)
{
	struct mdir *m = open_new("w");
	struct mdir_writer *w = NULL;
	char *err = NULL, *base, *p, *s;
	struct stat st;
	static const char *const parts[] = {
		"Subject: x\r", "\n\r\nline 1\r", "\n", "bare\rCR\r", "\r\n",
		"last\r",
	};
	size_t i;

	ok(mdir_writer_new(m, &w, &err) == 0, "writer new");
	base = xstrdup(mdir_writer_base(w));
	{
		unsigned long long a, b, c, d;
		int pos = 0;

		ok(sscanf(base, "%llu.M%lluP%lluQ%llu.%n", &a, &b, &c, &d,
			  &pos) == 4 && pos > 0 && base[pos] != '\0' &&
		   strchr(base, '/') == NULL && strchr(base, ':') == NULL,
		   "unique name format '%s'", base);
	}
	p = xasprintf("%s/w/tmp/%s", tmpdir, base);
	ok(exists(p), "tmp file exists before commit");
	is_int(mode_of(p), 0600, "tmp file 0600 under umask 0");
	free(p);
	for (i = 0; i < N_ELEMENTS(parts); i++)
		if (mdir_writer_write(w, parts[i], strlen(parts[i]), &err) < 0)
			break;
	is_int(i, N_ELEMENTS(parts), "writes");
	ok(mdir_writer_commit(w, 0, 1000000000, &err) == 0, "commit");
	mdir_writer_free(&w);
	p = xasprintf("%s/w/new/%s", tmpdir, base);
	ok(stat(p, &st) == 0 && st.st_mtime == 1000000000 &&
	   st.st_atime == 1000000000, "mtime and atime set");
	s = slurp(p);
	is_str(s, "Subject: x\n\nline 1\nbare\rCR\r\nlast\r",
	       "CRLF -> LF, CR at chunk ends handled, bare CR kept");
	free(s);
	is_int(mode_of(p), 0600, "message 0600");
	free(p);
	p = xasprintf("%s/w/tmp", tmpdir);
	is_int(count_files(p), 0, "tmp/ empty after commit");
	free(p);
	free(base);

	/* flags -> cur/ */
	base = deliver(m, "a\r\nb\r\n", MF_SEEN | MF_FLAGGED, 0);
	p = xasprintf("%s/w/cur/%s:2,FS", tmpdir, base);
	ok(exists(p), "flags go to cur/<base>:2,FS");
	s = slurp(p);
	is_str(s, "a\nb\n", "content");
	free(s);
	free(p);
	free(base);

	/* conversion off */
	ok(mdir_writer_new(m, &w, &err) == 0, "writer new");
	mdir_writer_set_crlf_to_lf(w, false);
	ok(mdir_writer_write(w, "a\r\nb\r", 5, &err) == 0 &&
	   mdir_writer_commit(w, MF_DRAFT, 0, &err) == 0, "raw write");
	is_int(mdir_writer_size(w), 5, "size counted");
	p = xasprintf("%s/w/cur/%s:2,D", tmpdir, mdir_writer_base(w));
	s = slurp(p);
	is_str(s, "a\r\nb\r", "no conversion when off");
	free(s);
	free(p);
	mdir_writer_free(&w);

	/* abort */
	ok(mdir_writer_new(m, &w, &err) == 0, "writer new");
	ok(mdir_writer_write(w, "x", 1, &err) == 0, "write");
	p = xasprintf("%s/w/tmp/%s", tmpdir, mdir_writer_base(w));
	mdir_writer_abort(&w);
	ok(w == NULL && !exists(p), "abort removes the tmp file");
	free(p);

	/* two writers: different names */
	{
		struct mdir_writer *w2 = NULL;

		ok(mdir_writer_new(m, &w, &err) == 0 &&
		   mdir_writer_new(m, &w2, &err) == 0 &&
		   strcmp(mdir_writer_base(w), mdir_writer_base(w2)) != 0,
		   "unique names differ");
		mdir_writer_abort(&w);
		mdir_writer_abort(&w2);
	}
	mdir_close(&m);
}

static void test_scan_find(void)
{
	struct mdir *m = open_new("s");
	struct mdir_entry *ents = NULL;
	size_t n = 0;
	char *err = NULL, *name = NULL, *p;
	unsigned flags = 0;
	int64_t c1, n1;

	p = xasprintf("%s/s/new/100.A.host", tmpdir);
	write_file(p, "m1\n");
	free(p);
	p = xasprintf("%s/s/cur/200.B.host:2,RS", tmpdir);
	write_file(p, "m2\n");
	free(p);
	p = xasprintf("%s/s/cur/050.C.host:2,", tmpdir);
	write_file(p, "m3\n");
	free(p);
	p = xasprintf("%s/s/cur/.hidden:2,S", tmpdir);
	write_file(p, "x\n");
	free(p);
	p = xasprintf("%s/s/cur/:2,S", tmpdir);
	write_file(p, "x\n");
	free(p);
	p = xasprintf("%s/s/cur/subdir", tmpdir);
	mkdir(p, 0700);
	free(p);
	p = xasprintf("%s/s/tmp/999.T.host", tmpdir);
	write_file(p, "t\n");
	free(p);
	/* duplicate base in new/ and cur/ */
	p = xasprintf("%s/s/new/300.D.host", tmpdir);
	write_file(p, "d\n");
	free(p);
	p = xasprintf("%s/s/cur/300.D.host:2,T", tmpdir);
	write_file(p, "d\n");
	free(p);
	p = xasprintf("%s/s/cur/300.D.host:2,Tx", tmpdir);
	write_file(p, "d\n");
	free(p);
	{
		char *t = xasprintf("%s/s/cur/100.A.host:2,S", tmpdir);
		char *l = xasprintf("%s/s/cur/400.L.host:2,S", tmpdir);

		ok(symlink(t, l) == 0, "symlink in cur/");
		free(t);
		free(l);
	}

	ok(mdir_scan(m, &ents, &n, &err) == 0, "scan");
	is_int(n, 4, "four messages (dot file, empty base, dir, tmp, symlink, duplicates left out)");
	if (n == 4) {
		is_str(ents[0].base, "050.C.host", "sorted 0");
		is_int(ents[0].flags, 0, "no flags");
		ok(!ents[0].in_new, "in cur");
		is_str(ents[1].base, "100.A.host", "sorted 1");
		ok(ents[1].in_new, "in new");
		is_str(ents[1].name, "100.A.host", "name without info");
		is_str(ents[2].base, "200.B.host", "sorted 2");
		is_int(ents[2].flags, MF_ANSWERED | MF_SEEN, "flags RS");
		is_str(ents[2].name, "200.B.host:2,RS", "full name");
		is_str(ents[3].base, "300.D.host", "duplicate reported once");
		ok(!ents[3].in_new, "duplicate: cur/ kept");
		is_int(ents[3].flags, MF_DELETED, "duplicate flags");
	}
	mdir_entries_free(ents, n);

	ok(mdir_find(m, "200.B.host", &name, &flags, &err) == 0, "find");
	is_str(name, "200.B.host:2,RS", "find name");
	is_int(flags, MF_ANSWERED | MF_SEEN, "find flags");
	FREE_AND_NULL(name);
	/* a reader moves it behind our back */
	{
		char *a = xasprintf("%s/s/new/100.A.host", tmpdir);
		char *b = xasprintf("%s/s/cur/100.A.host:2,FS", tmpdir);

		ok(rename(a, b) == 0, "reader renames new/ -> cur/");
		free(a);
		free(b);
	}
	ok(mdir_find(m, "100.A.host", &name, &flags, &err) == 0,
	   "find after rename");
	is_str(name, "100.A.host:2,FS", "new name found");
	is_int(flags, MF_FLAGGED | MF_SEEN, "new flags");
	FREE_AND_NULL(name);
	is_int(mdir_find(m, "nope", &name, &flags, &err), 1, "not found");
	ok(mdir_find(m, "../x", &name, &flags, &err) < 0 && err != NULL,
	   "base with '/' rejected");
	FREE_AND_NULL(err);
	ok(mdir_find(m, ".x", NULL, NULL, &err) < 0, "dot base rejected");
	FREE_AND_NULL(err);
	/* a file that appears after the scan */
	p = xasprintf("%s/s/new/500.N.host", tmpdir);
	write_file(p, "n\n");
	free(p);
	is_int(mdir_find(m, "500.N.host", NULL, &flags, &err), 0,
	       "file that appeared after the scan is found");
	ok(mdir_mtimes(m, &c1, &n1, &err) == 0 && c1 > 0 && n1 > 0,
	   "mtimes");
	mdir_close(&m);
}

static void test_flags_remove(void)
{
	struct mdir *m = open_new("f");
	struct mdir_entry *ents = NULL;
	size_t n = 0;
	char *err = NULL, *b1, *b2, *p, *q;

	b1 = deliver(m, "one\n", 0, 0);
	b2 = deliver(m, "two\n", MF_SEEN, 0);
	ok(mdir_scan(m, &ents, &n, &err) == 0 && n == 2, "scan two");
	mdir_entries_free(ents, n);

	is_int(mdir_set_flags(m, b1, 0, &err), 0, "flags 0 on new/: no-op");
	p = xasprintf("%s/f/new/%s", tmpdir, b1);
	ok(exists(p), "still in new/");
	free(p);
	is_int(mdir_set_flags(m, b1, MF_SEEN | MF_ANSWERED, &err), 0,
	       "set flags on a new/ message");
	p = xasprintf("%s/f/cur/%s:2,RS", tmpdir, b1);
	ok(exists(p), "moved to cur/ with RS");
	free(p);

	/* a reader renames b2 behind our back, adding a letter we don't sync */
	p = xasprintf("%s/f/cur/%s:2,S", tmpdir, b2);
	q = xasprintf("%s/f/cur/%s:2,S,a", tmpdir, b2);
	ok(rename(p, q) == 0, "reader renames to :2,S,a");
	free(p);
	free(q);
	is_int(mdir_set_flags(m, b2, MF_FLAGGED | MF_SEEN, &err), 0,
	       "set flags after the reader renamed it");
	p = xasprintf("%s/f/cur/%s:2,FSa", tmpdir, b2);
	ok(exists(p), "unknown letter kept, ASCII order, stray comma dropped: FSa");
	free(p);
	is_int(mdir_set_flags(m, b2, 0, &err), 0, "clear all flags");
	p = xasprintf("%s/f/cur/%s:2,a", tmpdir, b2);
	ok(exists(p), "only the unknown letter left");
	free(p);
	is_int(mdir_set_flags(m, b2, 0, &err), 0, "same flags again: no-op");
	is_int(mdir_set_flags(m, "gone.base", MF_SEEN, &err), 1,
	       "set flags of a missing message: 1");

	/* remove, also after a rename behind our back */
	p = xasprintf("%s/f/cur/%s:2,RS", tmpdir, b1);
	q = xasprintf("%s/f/cur/%s:2,RST", tmpdir, b1);
	ok(rename(p, q) == 0, "reader renames");
	is_int(mdir_remove(m, b1, &err), 0, "remove");
	ok(!exists(p) && !exists(q), "file gone");
	free(p);
	free(q);
	is_int(mdir_remove(m, b1, &err), 1, "remove again: 1");
	is_int(mdir_remove(m, b2, &err), 0, "remove other");
	p = xasprintf("%s/f/cur", tmpdir);
	is_int(count_files(p), 0, "cur/ empty");
	free(p);
	free(b1);
	free(b2);
	mdir_close(&m);
}

static void test_move(void)
{
	struct mdir *a = open_new("ma"), *b = open_new("mb"), *x = NULL;
	char *err = NULL, *b1, *b2, *b3, *p, *q, *s;
	struct stat st;

	b1 = deliver(a, "move me\n", MF_SEEN, 1234567890);
	b2 = deliver(a, "new one\n", 0, 0);
	is_int(mdir_move(a, b, b1, &err), 0, "move");
	p = xasprintf("%s/mb/cur/%s:2,S", tmpdir, b1);
	ok(exists(p), "same name, same flags in the other folder");
	free(p);
	is_int(mdir_find(a, b1, NULL, NULL, &err), 1, "gone from source");
	is_int(mdir_find(b, b1, NULL, NULL, &err), 0, "found in target");
	is_int(mdir_move(a, b, b1, &err), 1, "moving again: not found");
	/* after a reader rename */
	p = xasprintf("%s/ma/new/%s", tmpdir, b2);
	q = xasprintf("%s/ma/cur/%s:2,F", tmpdir, b2);
	ok(rename(p, q) == 0, "reader renames");
	free(p);
	free(q);
	is_int(mdir_move(a, b, b2, &err), 0, "move after reader rename");
	p = xasprintf("%s/mb/cur/%s:2,F", tmpdir, b2);
	ok(exists(p), "moved with the reader's name");
	free(p);

	/* an interrupted copy left the message on both sides */
	b3 = deliver(a, "both\n", 0, 0);
	p = xasprintf("%s/ma/new/%s", tmpdir, b3);
	q = xasprintf("%s/mb/new/%s", tmpdir, b3);
	write_file(q, "both\n");
	is_int(mdir_move(a, b, b3, &err), 0, "move finishes a half-done move");
	ok(!exists(p) && exists(q), "source removed");
	free(p);
	free(q);
	free(b3);
	b3 = deliver(a, "clash\n", 0, 0);
	q = xasprintf("%s/mb/new/%s", tmpdir, b3);
	write_file(q, "other contents\n");
	ok(mdir_move(a, b, b3, &err) < 0 && err != NULL,
	   "a different message of that name in the target: error");
	FREE_AND_NULL(err);
	free(q);
	free(b3);

	/* across file systems (EXDEV), when /dev/shm is another one */
	p = xasprintf("%s", tmpdir);
	if (stat("/dev/shm", &st) == 0) {
		struct stat st2;
		char tmpl[] = "/dev/shm/t-maildir.XXXXXX", *shm = mkdtemp(tmpl);

		if (shm != NULL && stat(p, &st2) == 0 && st.st_dev != st2.st_dev) {
			char *xp = xasprintf("%s/x", shm);

			ok(mdir_open(xp, true, &x, NULL, &err) == 0,
			   "folder on another file system");
			is_int(mdir_move(b, x, b1, &err), 0, "move across file systems");
			q = xasprintf("%s/cur/%s:2,S", xp, b1);
			s = slurp(q);
			is_str(s, "move me\n", "copied content");
			free(s);
			ok(stat(q, &st2) == 0 && st2.st_mtime == 1234567890,
			   "mtime kept");
			is_int(mode_of(q), 0600, "mode 0600");
			free(q);
			is_int(mdir_find(b, b1, NULL, NULL, &err), 1,
			       "source removed");
			q = xasprintf("%s/tmp", xp);
			is_int(count_files(q), 0, "no tmp leftovers");
			free(q);
			mdir_close(&x);
			q = xasprintf("rm -rf '%s'", shm);
			ok(system(q) == 0, "cleanup shm");
			free(q);
			free(xp);
		} else {
			if (shm != NULL)
				rmdir(shm);
			ok(1, "# SKIP /dev/shm is on the same file system");
		}
	}
	free(p);
	free(b1);
	free(b2);
	mdir_close(&a);
	mdir_close(&b);
}

/* A hint that names the wrong one of the two usual places finds the
 * message in the other without listing the folder; a hint with the
 * wrong flags still finds it, by listing it. */
static struct mdir *reopen(const char *rel)
{
	return open_dir(rel, false);
}

static void test_hint(void)
{
	struct mdir *m = open_new("hint"), *h;
	char *err = NULL, *name = NULL, *b1, *b2, *b3, *p, *q;
	unsigned flags = 99;
	int r;

	b1 = deliver(m, "unread again\n", MF_SEEN, 0);
	b2 = deliver(m, "still in new\n", 0, 0);
	b3 = deliver(m, "other flags\n", MF_SEEN, 0);
	/* a mail client marks b1 unread: cur/<base>:2, */
	p = xasprintf("%s/hint/cur/%s:2,S", tmpdir, b1);
	q = xasprintf("%s/hint/cur/%s:2,", tmpdir, b1);
	ok(rename(p, q) == 0, "b1 becomes cur/<base>:2,");
	free(p);
	free(q);

	h = reopen("hint");
	mdir_hint(h, b1, 0);   /* guesses new/<base> */
	r = mdir_find(h, b1, &name, &flags, &err);
	ok(r == 0 && name != NULL && strcmp(name + strlen(b1), ":2,") == 0 &&
	   flags == 0, "hint new/, found in cur/: %s", name ? name : "-");
	is_int((int)mdir_full_reads(h), 0, "without listing the folder");
	FREE_AND_NULL(name);
	mdir_hint(h, b2, MF_SEEN);   /* guesses cur/<base>:2,S */
	r = mdir_find(h, b2, &name, &flags, &err);
	ok(r == 0 && name != NULL && strcmp(name, b2) == 0 && flags == 0,
	   "hint cur/, found in new/: %s", name ? name : "-");
	is_int((int)mdir_full_reads(h), 0, "without listing the folder");
	FREE_AND_NULL(name);
	mdir_hint(h, b3, MF_SEEN | MF_FLAGGED);   /* wrong flags */
	r = mdir_find(h, b3, &name, &flags, &err);
	ok(r == 0 && flags == MF_SEEN, "hint with the wrong flags: found");
	is_int((int)mdir_full_reads(h), 1, "by listing the folder once");
	FREE_AND_NULL(name);
	mdir_close(&h);

	h = reopen("hint");
	mdir_hint(h, b1, 0);
	ok(unlink(q = xasprintf("%s/hint/cur/%s:2,", tmpdir, b1)) == 0,
	   "b1 removed");
	free(q);
	is_int(mdir_find(h, b1, NULL, NULL, &err), 1,
	       "hinted but gone: not found");
	mdir_close(&h);
	free(err);
	free(b1);
	free(b2);
	free(b3);
	mdir_close(&m);
}

static void test_reader_ident(void)
{
	struct mdir *m = open_new("r");
	char *err = NULL, *base, *s, *p;
	uint64_t size;
	ssize_t last;
	struct mdir_reader *r = NULL;
	static const char crlf_msg[] =
		"From: a@b\r\nMessage-ID: <id1@b>\r\nSubject: s\r\n\r\n"
		"body\r\nbare\rcr\r\n";
	struct msg_ident id_file, id_wire, id_hdr;
	size_t want_len = strlen("a\r\nb\r\nc\rd\r\n");

	base = deliver(m, "a\nb\r\nc\rd\n", MF_SEEN, 1500000000);
	s = read_all(m, base, 4096, &size, &last);
	is_str(s, "a\r\nb\r\nc\rd\r\n", "LF -> CRLF, CRLF kept, bare CR kept");
	is_int(size, want_len, "size after conversion");
	is_int(last, 0, "EOF");
	free(s);
	s = read_all(m, base, 1, &size, &last);
	is_str(s, "a\r\nb\r\nc\rd\r\n", "one byte at a time");
	is_int(last, 0, "EOF byte-wise");
	free(s);
	ok(mdir_reader_open(m, base, &r, &err) == 0, "reader open");
	is_int(mdir_reader_mtime(r), 1500000000, "reader mtime");
	is_int(mdir_reader_flags(r), MF_SEEN, "reader flags");
	/* the file grows after open: error, never more than size bytes */
	p = xasprintf("%s/r/cur/%s:2,S", tmpdir, base);
	{
		FILE *f = fopen(p, "a");
		char buf[64];
		ssize_t n, total = 0;

		if (f != NULL) {
			fputs("more\n", f);
			fclose(f);
		}
		while ((n = mdir_reader_read(r, buf, sizeof(buf), &err)) > 0)
			total += n;
		ok(n < 0 && err != NULL && (size_t)total <= want_len,
		   "file changed while read: error");
		FREE_AND_NULL(err);
	}
	mdir_reader_close(&r);
	ok(r == NULL, "reader close clears the pointer");
	free(p);
	is_int(mdir_reader_open(m, "gone", &r, &err), 1, "reader of a missing message: 1");
	free(base);

	/* identity: file (LF) vs wire (CRLF) vs header only */
	base = deliver(m, crlf_msg, 0, 0);
	ok(mdir_msg_ident(m, base, &id_file, &err) == 0, "ident of a file");
	ident_compute(crlf_msg, strlen(crlf_msg), &id_wire);
	ok(ident_equal(&id_file, &id_wire), "file and wire identity equal");
	is_int(id_file.size, strlen(crlf_msg), "size is the CRLF size");
	is_str(id_file.msgid, "<id1@b>", "msgid from the file");
	ident_compute(crlf_msg, strstr(crlf_msg, "\r\n\r\n") + 4 - crlf_msg,
		      &id_hdr);
	ok(ident_header_equal(&id_file, &id_hdr), "header only matches the file");
	s = read_all(m, base, 7, &size, &last);
	is_str(s, crlf_msg, "upload gives the wire bytes back");
	is_int(size, id_file.size, "reader size = ident size");
	free(s);
	is_int(mdir_msg_ident(m, "gone", &id_file, &err), 1, "ident of a missing message: 1");
	free(base);
	mdir_close(&m);
}

/* LF -> CRLF across the reader's 64 KiB input buffer: a CR as the last
 * byte of one read and its LF the first of the next, a bare LF there, and
 * pseudo-random CR/LF mixes, read in chunk sizes that straddle both. */
static char *wire_of(const char *in, size_t len, size_t *len_r)
{
	char *out = xcalloc(1, 2 * len + 1);
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = in[i];
	}
	*len_r = o;
	return out;
}

static void test_reader_boundaries(void)
{
	static const size_t chunks[] = { 1, 7, 4096, 65536, 65539, 300000 };
	struct mdir *m = open_new("rb");
	size_t len = 3 * 65536 + 1234, i, c, v;
	uint32_t x = 12345;

	for (v = 0; v < 3; v++) {
		char *in = xcalloc(1, len + 1), *want, *got, *err = NULL, *base;
		size_t want_len, n_got = 0;
		struct mdir_reader *r = NULL;
		ssize_t n = 0;
		bool same = true, sized = true;

		for (i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			in[i] = (x >> 16) % 13 == 0 ? '\n' :
				(x >> 16) % 17 == 0 ? '\r' : 'a' + (char)(i % 26);
		}
		if (v == 0) {           /* CR | LF on the boundary */
			in[65535] = '\r';
			in[65536] = '\n';
		} else if (v == 1) {    /* bare LF right after it */
			in[65535] = 'x';
			in[65536] = '\n';
		} else {                /* CR ending the first read, then text */
			in[65535] = '\r';
			in[65536] = 'y';
		}
		want = wire_of(in, len, &want_len);
		/* the file's bytes as they are, not through the writer */
		base = deliver(m, "x\n", MF_SEEN, 1500000000);
		{
			char *p = xasprintf("%s/rb/cur/%s:2,S", tmpdir, base);
			FILE *f = fopen(p, "wb");

			if (f == NULL || fwrite(in, 1, len, f) != len)
				same = false;
			if (f != NULL)
				fclose(f);
			free(p);
		}
		got = xcalloc(1, want_len + 300001);
		for (c = 0; c < N_ELEMENTS(chunks); c++) {
			if (mdir_reader_open(m, base, &r, &err) != 0) {
				same = false;
				break;
			}
			sized = sized && mdir_reader_size(r) == want_len;
			n_got = 0;
			while ((n = mdir_reader_read(r, got + n_got, chunks[c],
						     &err)) > 0)
				n_got += (size_t)n;
			same = same && n == 0 && n_got == want_len &&
			       memcmp(got, want, want_len) == 0;
			mdir_reader_close(&r);
			FREE_AND_NULL(err);
		}
		if (!sized || !same)
			printf("# want %zu got %zu n %zd\n", want_len, n_got, n);
		ok(sized, "boundary case %zu: size is the CRLF size", v);
		ok(same, "boundary case %zu: every chunk size gives the wire bytes", v);
		free(in);
		free(want);
		free(got);
		free(base);
	}
	mdir_close(&m);
}

int main(void)
{
	char tmpl[] = "/tmp/t-maildir.XXXXXX";
	char *cmd;

	umask(0);
	tmpdir = mkdtemp(tmpl);
	if (!ok(tmpdir != NULL, "temp dir"))
		return tap_done();
	test_open();
	test_writer();
	test_scan_find();
	test_flags_remove();
	test_move();
	test_hint();
	test_reader_ident();
	test_reader_boundaries();
	cmd = xasprintf("rm -rf '%s'", tmpdir);
	ok(system(cmd) == 0, "cleanup");
	free(cmd);
	return tap_done();
}
