/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-mdir-names.c - libFuzzer target for the folder-name mapping.
 *
 * Input: first byte picks the layout (bit 0) and the root; the rest is a
 * server name (cut at the first NUL). Whatever it is, mapping must not
 * crash; when it succeeds, the path must be strictly under the root, no
 * component of it may be "." or "..", and unmapping must give the name
 * back. The raw bytes are also tried as a path: if that unmaps, mapping
 * the result must give the same path.
 */
#include "common.h"
#include "maildir/maildir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_under_root(const char *root, const char *path, bool inbox)
{
	size_t rlen = strlen(root);
	const char *p;

	if (strncmp(path, root, rlen) != 0)
		BUG("'%s' is not under root '%s'", path, root);
	if (path[rlen] == '\0') {
		if (!inbox)
			BUG("only INBOX in maildir++ maps to the root");
		return;
	}
	if (path[rlen] != '/')
		BUG("'%s' is not under root '%s'", path, root);
	for (p = path + rlen; *p != '\0';) {
		const char *s = p + 1, *e = strchr(s, '/');
		size_t n;

		if (e == NULL)
			e = s + strlen(s);
		n = (size_t)(e - s);
		if (n == 0 || (n == 1 && s[0] == '.') ||
		    (n == 2 && s[0] == '.' && s[1] == '.'))
			BUG("bad component in '%s'", path);
		p = e;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const roots[] = { "/m", "/home/u/Mail" };
	enum mdir_layout layout;
	const char *root;
	char *name, *path = NULL, *err = NULL, *back = NULL, *again = NULL;

	if (size == 0)
		return 0;
	layout = (data[0] & 1) ? MDIR_MAILDIRPP : MDIR_VERBATIM;
	root = roots[(data[0] >> 1) & 1];
	name = xstrndup((const char *)data + 1, size - 1);

	if (mdir_map_name(root, layout, name, &path, &err) == 0) {
		check_under_root(root, path, layout == MDIR_MAILDIRPP &&
				 strcmp(name, "INBOX") == 0);
		if (mdir_unmap_path(root, layout, path, &back) < 0)
			BUG("'%s' does not unmap", path);
		if (strcmp(back, name) != 0)
			BUG("round trip changed the name");
	} else if (err == NULL) {
		BUG("failure without an error message");
	}
	free(path);
	free(err);
	free(back);
	path = err = back = NULL;

	/* the same bytes as a relative path under the root */
	path = xasprintf("%s/%s", root, name);
	if (mdir_unmap_path(root, layout, path, &back) == 0) {
		if (mdir_map_name(root, layout, back, &again, &err) < 0)
			BUG("unmapped name does not map");
		/* unmap tolerates trailing slashes */
		size_t n = strlen(path);

		while (n > 1 && path[n - 1] == '/')
			n--;
		if (strlen(again) != n || memcmp(again, path, n) != 0)
			BUG("unmap accepted a non-canonical path");
	}
	free(path);
	free(back);
	free(again);
	free(err);
	free(name);
	return 0;
}
