/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * names.c - server folder names <-> Maildir folder paths, both layouts,
 * and the listing of local folders.
 *
 * The escape scheme is described in maildir.h. Its key property: decoding
 * is the exact inverse of encoding on encoded strings, and a path is only
 * accepted back (mdir_unmap_path) when encoding its decoded name gives the
 * same path again; so the mapping is a bijection between server names and
 * the folder paths twinbox uses, and a hand-made local directory with a
 * non-canonical name is skipped rather than synced twice.
 */
#include "common.h"
#include "maildir/maildir.h"
#include "util/buf.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define MDIR_NAME_MAX 255       /* one directory entry */
#define MDIR_LIST_DEPTH 64      /* nesting walked by mdir_list_folders */

static bool is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') ||
	       (c >= 'a' && c <= 'f');
}

static unsigned hex_val(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return c - 'a' + 10;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing past U+10FFFF), 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4;
	else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	if (c == 0xE0 && s[1] < 0xA0)
		return 0;   /* overlong */
	if (c == 0xED && s[1] > 0x9F)
		return 0;   /* surrogate */
	if (c == 0xF0 && s[1] < 0x90)
		return 0;   /* overlong */
	if (c == 0xF4 && s[1] > 0x8F)
		return 0;   /* > U+10FFFF */
	return len;
}

static int add_escaped(struct buf *b, unsigned char c)
{
	static const char hex[] = "0123456789ABCDEF";
	char e[3] = { '%', hex[c >> 4], hex[c & 0xf] };

	return buf_add(b, e, 3);
}

/* Append the escaped form of one name component s[0..n). */
static int encode_component(struct buf *b, const unsigned char *s, size_t n,
			    enum mdir_layout layout, bool first)
{
	size_t i = 0, len;

	if (n == 0)
		return buf_add(b, "%00", 3);
	if (layout == MDIR_VERBATIM && !first && n == 3 &&
	    (memcmp(s, "cur", 3) == 0 || memcmp(s, "new", 3) == 0 ||
	     memcmp(s, "tmp", 3) == 0)) {
		/* would be the parent folder's own cur/ new/ tmp/ */
		if (add_escaped(b, s[0]) < 0)
			return -1;
		i = 1;
	}
	while (i < n) {
		unsigned char c = s[i];
		bool esc;

		len = utf8_seq_len(s + i, n - i);
		if (len == 0) {
			/* a byte of invalid UTF-8 */
			if (add_escaped(b, c) < 0)
				return -1;
			i++;
			continue;
		}
		if (len > 1) {
			/* C1 controls U+0080..U+009F are 0xC2 0x80..0x9F */
			if (c == 0xC2 && s[i + 1] <= 0x9F) {
				if (add_escaped(b, s[i]) < 0 ||
				    add_escaped(b, s[i + 1]) < 0)
					return -1;
			} else if (buf_add(b, s + i, len) < 0) {
				return -1;
			}
			i += len;
			continue;
		}
		esc = c < 0x20 || c == 0x7F || c == '/' ||
		      (c == '%' && i + 2 < n && is_hex(s[i + 1]) &&
		       is_hex(s[i + 2])) ||
		      (c == '.' && (layout == MDIR_MAILDIRPP || i == 0));
		if (esc ? add_escaped(b, c) < 0 : buf_addch(b, (char)c) < 0)
			return -1;
		i++;
	}
	return 0;
}

/* Decode one escaped component s[0..n) and append it to b. -1 if it cannot
 * have come from encode_component() (the caller re-encodes to be sure). */
static int decode_component(struct buf *b, const char *s, size_t n)
{
	size_t i;

	if (n == 3 && memcmp(s, "%00", 3) == 0)
		return 0;   /* the empty component */
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%' && i + 2 < n && is_hex((unsigned char)s[i + 1]) &&
		    is_hex((unsigned char)s[i + 2])) {
			c = (unsigned char)(hex_val((unsigned char)s[i + 1]) << 4 |
					    hex_val((unsigned char)s[i + 2]));
			if (c == 0)
				return -1;
			i += 2;
		}
		if (buf_addch(b, (char)c) < 0)
			return -1;
	}
	return 0;
}

/* Length of root without trailing slashes (but "/" stays "/"). */
static size_t root_len(const char *root)
{
	size_t n = strlen(root);

	while (n > 1 && root[n - 1] == '/')
		n--;
	return n;
}

int mdir_map_name(const char *root, enum mdir_layout layout, const char *name,
		  char **path_r, char **error_r)
{
	struct buf b;
	size_t rlen = root_len(root);
	const char *p, *end;
	size_t start;
	bool first = true;

	*path_r = NULL;
	if (rlen == 0) {
		*error_r = xstrdup("empty maildir root");
		return -1;
	}
	buf_init(&b, BUF_MAX_PATH - 1);
	if (buf_add(&b, root, rlen) < 0)
		goto too_long;
	if (layout == MDIR_MAILDIRPP && strcmp(name, "INBOX") == 0) {
		*path_r = buf_take(&b, NULL);
		return 0;
	}
	if (!(rlen == 1 && root[0] == '/') && buf_addch(&b, '/') < 0)
		goto too_long;
	/* start of the directory entry whose length NAME_MAX limits */
	start = b.len;
	if (layout == MDIR_MAILDIRPP && buf_addch(&b, '.') < 0)
		goto too_long;
	for (p = name;; p = end + 1) {
		end = strchr(p, '/');
		if (end == NULL)
			end = p + strlen(p);
		if (!first) {
			if (buf_addch(&b, layout == MDIR_MAILDIRPP ? '.' : '/') < 0)
				goto too_long;
			if (layout == MDIR_VERBATIM)
				start = b.len;
		}
		if (encode_component(&b, (const unsigned char *)p,
				     (size_t)(end - p), layout, first) < 0)
			goto too_long;
		if (b.len - start > MDIR_NAME_MAX)
			goto too_long;
		first = false;
		if (*end == '\0')
			break;
	}
	*path_r = buf_take(&b, NULL);
	return 0;
too_long:
	buf_release(&b);
	*error_r = xasprintf("folder name too long for a local path: '%s'",
			     name);
	return -1;
}

static int unmap_raw(const char *rel, enum mdir_layout layout, char **name_r)
{
	struct buf b;
	const char *p, *end;
	char sep = layout == MDIR_MAILDIRPP ? '.' : '/';

	if (layout == MDIR_MAILDIRPP) {
		if (*rel == '\0') {
			*name_r = xstrdup("INBOX");
			return 0;
		}
		if (*rel != '.' || strchr(rel, '/') != NULL)
			return -1;
		rel++;
	} else if (*rel == '\0') {
		return -1;
	}
	buf_init(&b, BUF_MAX_PATH);
	for (p = rel;; p = end + 1) {
		end = strchr(p, sep);
		if (end == NULL)
			end = p + strlen(p);
		if (p != rel && buf_addch(&b, '/') < 0)
			goto fail;
		if (decode_component(&b, p, (size_t)(end - p)) < 0)
			goto fail;
		if (*end == '\0')
			break;
	}
	*name_r = buf_take(&b, NULL);
	return 0;
fail:
	buf_release(&b);
	return -1;
}

int mdir_unmap_path(const char *root, enum mdir_layout layout,
		    const char *path, char **name_r)
{
	size_t rlen = root_len(root), plen = strlen(path);
	char *rel, *name = NULL, *again = NULL, *err = NULL;
	int ret = -1;

	*name_r = NULL;
	while (plen > 1 && path[plen - 1] == '/')
		plen--;
	if (rlen == 0 || plen < rlen || memcmp(path, root, rlen) != 0)
		return -1;
	if (plen == rlen) {
		rel = xstrdup("");
	} else if (rlen == 1 && root[0] == '/') {
		rel = xstrndup(path + 1, plen - 1);
	} else {
		if (path[rlen] != '/')
			return -1;
		rel = xstrndup(path + rlen + 1, plen - rlen - 1);
	}
	if (unmap_raw(rel, layout, &name) < 0)
		goto out;
	/* accept only the canonical form */
	if (mdir_map_name(root, layout, name, &again, &err) < 0)
		goto out;
	if (strlen(again) != plen || memcmp(again, path, plen) != 0)
		goto out;
	*name_r = name;
	name = NULL;
	ret = 0;
out:
	free(rel);
	free(name);
	free(again);
	free(err);
	return ret;
}

/* --- listing --- */

struct name_list {
	char **v;
	size_t n, alloc;
};

static bool is_maildir_at(int dfd)
{
	struct stat st;

	return fstatat(dfd, "cur", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISDIR(st.st_mode) &&
	       fstatat(dfd, "new", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISDIR(st.st_mode);
}

static void add_folder(struct name_list *l, const char *root,
		       enum mdir_layout layout, const char *path)
{
	char *name;

	if (mdir_unmap_path(root, layout, path, &name) < 0) {
		log_warn("skipping local folder '%s': its name is not one "
			 "twinbox maps a server folder to", path);
		return;
	}
	ALLOC_GROW(l->v, l->n + 1, l->alloc);
	l->v[l->n++] = name;
}

static bool is_subdir(int dfd, const struct dirent *de)
{
	struct stat st;

	if (de->d_type == DT_DIR)
		return true;
	if (de->d_type != DT_UNKNOWN)
		return false;   /* symlinks and files */
	return fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISDIR(st.st_mode);
}

/* Walk dfd (which is path) for verbatim folders; dfd is consumed. */
static void walk_verbatim(struct name_list *l, const char *root, int dfd,
			  const char *path, int depth)
{
	DIR *d;
	struct dirent *de;
	bool is_md = is_maildir_at(dfd);

	if (is_md && depth > 0)
		add_folder(l, root, MDIR_VERBATIM, path);
	if (depth >= MDIR_LIST_DEPTH) {
		log_warn("not looking for folders below '%s': nested too deep",
			 path);
		close(dfd);
		return;
	}
	d = fdopendir(dfd);
	if (d == NULL) {
		log_warn("cannot list local folder '%s': %s", path,
			 strerror(errno));
		close(dfd);
		return;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		char *sub;
		int sfd;

		/* hidden entries are never folders in this layout */
		if (de->d_name[0] == '.')
			continue;
		if (is_md && (strcmp(de->d_name, "cur") == 0 ||
			      strcmp(de->d_name, "new") == 0 ||
			      strcmp(de->d_name, "tmp") == 0))
			continue;
		if (!is_subdir(dirfd(d), de))
			continue;
		sub = xasprintf("%s%s%s", path,
				strcmp(path, "/") == 0 ? "" : "/", de->d_name);
		sfd = openat(dirfd(d), de->d_name,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sfd < 0) {
			if (errno != ENOENT && errno != ELOOP &&
			    errno != ENOTDIR)
				log_warn("cannot open local folder '%s': %s",
					 sub, strerror(errno));
		} else {
			walk_verbatim(l, root, sfd, sub, depth + 1);
		}
		free(sub);
	}
	if (errno != 0)
		log_warn("cannot list local folder '%s': %s", path,
			 strerror(errno));
	closedir(d);
}

static int list_maildirpp(struct name_list *l, const char *root, int dfd,
			  const char *rpath, char **error_r)
{
	DIR *d;
	struct dirent *de;

	if (is_maildir_at(dfd))
		add_folder(l, root, MDIR_MAILDIRPP, rpath);
	d = fdopendir(dfd);
	if (d == NULL) {
		*error_r = xasprintf("cannot list maildir '%s': %s", rpath,
				     strerror(errno));
		close(dfd);
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		char *sub;
		int sfd;

		if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (!is_subdir(dirfd(d), de))
			continue;
		sfd = openat(dirfd(d), de->d_name,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sfd < 0)
			continue;
		if (is_maildir_at(sfd)) {
			sub = xasprintf("%s%s%s", rpath,
					strcmp(rpath, "/") == 0 ? "" : "/",
					de->d_name);
			add_folder(l, root, MDIR_MAILDIRPP, sub);
			free(sub);
		}
		close(sfd);
	}
	if (errno != 0) {
		*error_r = xasprintf("cannot list maildir '%s': %s", rpath,
				     strerror(errno));
		closedir(d);
		return -1;
	}
	closedir(d);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int mdir_list_folders(const char *root, enum mdir_layout layout,
		      char ***names_r, size_t *n_r, char **error_r)
{
	struct name_list l = { NULL, 0, 0 };
	char *rpath;
	int dfd, ret = 0;

	*names_r = NULL;
	*n_r = 0;
	if (root_len(root) == 0) {
		*error_r = xstrdup("empty maildir root");
		return -1;
	}
	rpath = xstrndup(root, root_len(root));
	/* the root itself may be a symlink (~/Mail -> /data/mail) */
	dfd = open(rpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		if (errno == ENOENT) {
			free(rpath);
			return 0;
		}
		*error_r = xasprintf("cannot open maildir '%s': %s", rpath,
				     strerror(errno));
		free(rpath);
		return -1;
	}
	if (layout == MDIR_VERBATIM)
		walk_verbatim(&l, rpath, dfd, rpath, 0);
	else
		ret = list_maildirpp(&l, rpath, dfd, rpath, error_r);
	free(rpath);
	if (ret < 0) {
		mdir_names_free(l.v, l.n);
		return -1;
	}
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), cmp_str);
	*names_r = l.v;
	*n_r = l.n;
	return 0;
}

void mdir_names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}
