/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common.h"
#include "maildir/maildir.h"
#include "tap.h"

#include <sys/stat.h>
#include <unistd.h>

/* Test names stay on one line: control bytes as \xNN. */
static const char *vis(const char *s)
{
	static char out[4][1024];
	static int k;
	char *o = out[k = (k + 1) % 4];
	size_t n = 0;

	for (; *s != '\0' && n < sizeof(out[0]) - 5; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			n += (size_t)snprintf(o + n, 5, "\\x%02x", c);
		else
			o[n++] = (char)c;
	}
	o[n] = '\0';
	return o;
}

static void check_map(enum mdir_layout layout, const char *root,
		      const char *name, const char *want)
{
	char *path = NULL, *err = NULL, *back = NULL;
	const char *lname = layout == MDIR_VERBATIM ? "verbatim" : "maildir++";

	if (mdir_map_name(root, layout, name, &path, &err) < 0) {
		ok(0, "%s: map '%s': %s", lname, vis(name), err);
		free(err);
		return;
	}
	is_str(path, want, "%s: map '%s'", lname, vis(name));
	if (mdir_unmap_path(root, layout, path, &back) < 0)
		ok(0, "%s: unmap '%s' fails", lname, vis(path));
	else
		is_str(back, name, "%s: unmap '%s' gives the name back", lname,
		       vis(path));
	free(path);
	free(back);
}

static void check_unmap_fails(enum mdir_layout layout, const char *root,
			      const char *path)
{
	char *name = NULL;

	ok(mdir_unmap_path(root, layout, path, &name) < 0 && name == NULL,
	   "%s: '%s' is not a folder path",
	   layout == MDIR_VERBATIM ? "verbatim" : "maildir++", vis(path));
	free(name);
}

static void make_folder(const char *dir, const char *rel)
{
	char *path = xasprintf("%s/%s", dir, rel), *err = NULL;
	struct mdir *m = NULL;

	if (mdir_open(path, true, &m, NULL, &err) < 0) {
		printf("# cannot make '%s': %s\n", path, err);
		free(err);
	}
	mdir_close(&m);
	free(path);
}

static void check_list(enum mdir_layout layout, const char *root,
		       const char *const *want, size_t nwant)
{
	char **names = NULL, *err = NULL;
	size_t n = 0, i;
	bool same;
	const char *lname = layout == MDIR_VERBATIM ? "verbatim" : "maildir++";

	if (mdir_list_folders(root, layout, &names, &n, &err) < 0) {
		ok(0, "%s: list folders: %s", lname, err);
		free(err);
		return;
	}
	same = n == nwant;
	for (i = 0; same && i < n; i++)
		same = strcmp(names[i], want[i]) == 0;
	if (!ok(same, "%s: list folders", lname))
		for (i = 0; i < n; i++)
			printf("#   got '%s'\n", names[i]);
	mdir_names_free(names, n);
}

int main(void)
{
	char tmpl[] = "/tmp/t-mdir-names.XXXXXX", *dir, *root, *err = NULL;
	char *path = NULL, **names = NULL, longname[600];
	size_t n = 0;

	/* verbatim */
	check_map(MDIR_VERBATIM, "/r", "INBOX", "/r/INBOX");
	check_map(MDIR_VERBATIM, "/r", "Lists/dev", "/r/Lists/dev");
	check_map(MDIR_VERBATIM, "/r/", "Lists/dev", "/r/Lists/dev");
	check_map(MDIR_VERBATIM, "/r", "Entwürfe", "/r/Entwürfe");
	check_map(MDIR_VERBATIM, "/r", "Archiv/Entwürfe/日本", "/r/Archiv/Entwürfe/日本");
	check_map(MDIR_VERBATIM, "/r", "a.b", "/r/a.b");
	check_map(MDIR_VERBATIM, "/r", "..", "/r/%2E.");
	check_map(MDIR_VERBATIM, "/r", ".", "/r/%2E");
	check_map(MDIR_VERBATIM, "/r", "../../etc", "/r/%2E./%2E./etc");
	check_map(MDIR_VERBATIM, "/r", "a/../b", "/r/a/%2E./b");
	check_map(MDIR_VERBATIM, "/r", ".hidden", "/r/%2Ehidden");
	check_map(MDIR_VERBATIM, "/r", "a//b", "/r/a/%00/b");
	check_map(MDIR_VERBATIM, "/r", "/a", "/r/%00/a");
	check_map(MDIR_VERBATIM, "/r", "a/", "/r/a/%00");
	check_map(MDIR_VERBATIM, "/r", "", "/r/%00");
	check_map(MDIR_VERBATIM, "/r", "/", "/r/%00/%00");
	check_map(MDIR_VERBATIM, "/r", "tab\there", "/r/tab%09here");
	check_map(MDIR_VERBATIM, "/r", "nl\nx\x7f", "/r/nl%0Ax%7F");
	check_map(MDIR_VERBATIM, "/r", "100%", "/r/100%");
	check_map(MDIR_VERBATIM, "/r", "50% off", "/r/50% off");
	check_map(MDIR_VERBATIM, "/r", "%41", "/r/%2541");
	check_map(MDIR_VERBATIM, "/r", "%2E", "/r/%252E");
	check_map(MDIR_VERBATIM, "/r", "%%41", "/r/%%2541");
	check_map(MDIR_VERBATIM, "/r", "bad\xff", "/r/bad%FF");
	check_map(MDIR_VERBATIM, "/r", "\xc0\xaf", "/r/%C0%AF");
	check_map(MDIR_VERBATIM, "/r", "\xed\xa0\x80", "/r/%ED%A0%80");
	check_map(MDIR_VERBATIM, "/r", "trunc\xe2\x82", "/r/trunc%E2%82");
	check_map(MDIR_VERBATIM, "/r", "c1\xc2\x85", "/r/c1%C2%85");
	check_map(MDIR_VERBATIM, "/r", "cur", "/r/cur");
	check_map(MDIR_VERBATIM, "/r", "x/cur", "/r/x/%63ur");
	check_map(MDIR_VERBATIM, "/r", "x/new/tmp", "/r/x/%6Eew/%74mp");
	check_map(MDIR_VERBATIM, "/r", "x/curly", "/r/x/curly");
	check_map(MDIR_VERBATIM, "/", "INBOX", "/INBOX");

	/* maildir++ */
	check_map(MDIR_MAILDIRPP, "/r", "INBOX", "/r");
	check_map(MDIR_MAILDIRPP, "/r/", "INBOX", "/r");
	check_map(MDIR_MAILDIRPP, "/r", "Lists/dev", "/r/.Lists.dev");
	check_map(MDIR_MAILDIRPP, "/r", "INBOX/sub", "/r/.INBOX.sub");
	check_map(MDIR_MAILDIRPP, "/r", "Entwürfe", "/r/.Entwürfe");
	check_map(MDIR_MAILDIRPP, "/r", "a.b/c", "/r/.a%2Eb.c");
	check_map(MDIR_MAILDIRPP, "/r", "..", "/r/.%2E%2E");
	check_map(MDIR_MAILDIRPP, "/r", ".", "/r/.%2E");
	check_map(MDIR_MAILDIRPP, "/r", "a//b", "/r/.a.%00.b");
	check_map(MDIR_MAILDIRPP, "/r", "", "/r/.%00");
	check_map(MDIR_MAILDIRPP, "/r", "x/cur", "/r/.x.cur");
	check_map(MDIR_MAILDIRPP, "/r", "a\x01", "/r/.a%01");
	check_map(MDIR_MAILDIRPP, "/r", "inbox", "/r/.inbox");

	/* too long */
	memset(longname, 'x', 300);
	longname[300] = '\0';
	ok(mdir_map_name("/r", MDIR_VERBATIM, longname, &path, &err) < 0 &&
	   path == NULL && err != NULL, "component over 255 bytes fails");
	FREE_AND_NULL(err);
	memset(longname, 'x', 200);
	longname[100] = '/';
	longname[200] = '\0';
	ok(mdir_map_name("/r", MDIR_MAILDIRPP, longname, &path, &err) == 0,
	   "maildir++ name of 200 bytes maps");
	FREE_AND_NULL(path);
	memset(longname, '.', 100);
	longname[100] = '\0';
	ok(mdir_map_name("/r", MDIR_MAILDIRPP, longname, &path, &err) < 0,
	   "maildir++ name over 255 bytes once escaped fails");
	FREE_AND_NULL(err);
	FREE_AND_NULL(path);

	/* paths that no name maps to */
	check_unmap_fails(MDIR_VERBATIM, "/r", "/r");
	check_unmap_fails(MDIR_VERBATIM, "/r", "/other/x");
	check_unmap_fails(MDIR_VERBATIM, "/r", "/rx/y");
	check_unmap_fails(MDIR_VERBATIM, "/r", "/r/.hidden");
	check_unmap_fails(MDIR_VERBATIM, "/r", "/r/a/.b");
	check_unmap_fails(MDIR_VERBATIM, "/r", "/r/%41");
	check_unmap_fails(MDIR_VERBATIM, "/r", "/r/a%2fb");
	check_unmap_fails(MDIR_VERBATIM, "/r", "/r/a%2Fb");
	check_unmap_fails(MDIR_VERBATIM, "/r", "/r/x/cur");
	check_unmap_fails(MDIR_VERBATIM, "/r", "/r/tab\there");
	check_unmap_fails(MDIR_VERBATIM, "/r", "/r/bad\xff");
	check_unmap_fails(MDIR_VERBATIM, "/r", "/r/a%00b");
	check_unmap_fails(MDIR_VERBATIM, "/r", "/r//a");
	check_unmap_fails(MDIR_MAILDIRPP, "/r", "/r/Lists");
	check_unmap_fails(MDIR_MAILDIRPP, "/r", "/r/.a/b");
	check_unmap_fails(MDIR_MAILDIRPP, "/r", "/r/.a.b%2e");
	check_unmap_fails(MDIR_MAILDIRPP, "/r", "/r/.");

	/* listing */
	dir = mkdtemp(tmpl);
	ok(dir != NULL, "temp dir");
	if (dir == NULL)
		return tap_done();
	root = xasprintf("%s/verb", dir);
	ok(mdir_list_folders(root, MDIR_VERBATIM, &names, &n, &err) == 0 &&
	   n == 0, "missing root lists no folders");
	make_folder(root, "INBOX");
	make_folder(root, "Lists");
	make_folder(root, "Lists/dev");
	make_folder(root, "Entwürfe");
	make_folder(root, "Deep/er/still");
	make_folder(root, "x/%63ur");
	make_folder(root, ".notmuch");
	make_folder(root, "bad%41");
	{
		char *t = xasprintf("%s/INBOX", root);
		char *l = xasprintf("%s/link", root);

		ok(symlink(t, l) == 0, "symlink to a folder");
		free(t);
		free(l);
	}
	{
		static const char *const want[] = {
			"Deep/er/still", "Entwürfe", "INBOX", "Lists",
			"Lists/dev", "x/cur",
		};
		check_list(MDIR_VERBATIM, root, want, N_ELEMENTS(want));
	}
	free(root);

	root = xasprintf("%s/pp", dir);
	make_folder(root, "");
	make_folder(root, ".Lists.dev");
	make_folder(root, ".a%2Eb");
	make_folder(root, ".Entwürfe");
	make_folder(root, ".bad%41");
	make_folder(root, "plain");
	{
		char *d = xasprintf("%s/.notmuch", root);
		char *t = xasprintf("%s/.Lists.dev", root);
		char *l = xasprintf("%s/.link", root);

		ok(mkdir(d, 0700) == 0, "non-maildir dot dir");
		ok(symlink(t, l) == 0, "maildir++ symlink");
		free(d);
		free(t);
		free(l);
	}
	{
		static const char *const want[] = {
			"Entwürfe", "INBOX", "Lists/dev", "a.b",
		};
		check_list(MDIR_MAILDIRPP, root, want, N_ELEMENTS(want));
	}
	free(root);

	{
		char *cmd = xasprintf("rm -rf '%s'", dir);

		ok(system(cmd) == 0, "cleanup");
		free(cmd);
	}
	return tap_done();
}
