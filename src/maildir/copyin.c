/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * copyin.c - a message one Maildir folder holds, materialised in another
 * (or the same) folder as a message of its own: a hard link to the same
 * file where the file system allows, else a copy of its bytes. No body is
 * downloaded for a copy the server made (sync/copies-exec.c).
 */
#include "common.h"
#include "maildir/maildir.h"
#include "util/flags.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPYIN_RETRIES 4

/* Open the file of base in m, read-only; its path in *path_r. 0 ok, 1 not
 * there, -1 error. */
static int open_source(struct mdir *m, const char *base, int *fd_r,
		       char **path_r, char **error_r)
{
	int tries;

	for (tries = 0; tries < COPYIN_RETRIES; tries++) {
		char *name = NULL;
		int r, k;

		r = mdir_find(m, base, &name, NULL, error_r);
		if (r != 0)
			return r;
		for (k = 0; k < 2; k++) {
			char *p = xasprintf("%s/%s/%s", mdir_path(m),
					    k == 0 ? "cur" : "new", name);
			int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

			if (fd >= 0) {
				free(name);
				*fd_r = fd;
				*path_r = p;
				return 0;
			}
			if (errno != ENOENT) {
				*error_r = xasprintf("cannot open '%s': %s", p,
						     strerror(errno));
				free(p);
				free(name);
				return -1;
			}
			free(p);
		}
		free(name);
		/* renamed by a reader meanwhile: look again */
		mdir_drop_cache(m);
	}
	return 1;
}

static int copy_bytes(int fd, struct mdir_writer *w, const char *path,
		      char **error_r)
{
	char buf[65536];
	ssize_t got;

	while ((got = read(fd, buf, sizeof(buf))) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			*error_r = xasprintf("cannot read '%s': %s", path,
					     strerror(errno));
			return -1;
		}
		if (mdir_writer_write(w, buf, (size_t)got, error_r) < 0)
			return -1;
	}
	return 0;
}

int mdir_copy_in(struct mdir *from, const char *base, struct mdir *to,
		 unsigned flags, bool hardlink, char **base_r, bool *linked_r,
		 char **error_r)
{
	struct mdir_writer *w = NULL;
	struct stat st;
	char *src = NULL;
	int fd = -1, r, tries;

	*linked_r = false;
	for (tries = 0; hardlink && tries < COPYIN_RETRIES; tries++) {
		char letters[MF_COUNT + 1], *dst;

		r = open_source(from, base, &fd, &src, error_r);
		if (r != 0)
			return r;
		close(fd);
		fd = -1;
		if (mdir_writer_new(to, &w, error_r) < 0) {
			free(src);
			return -1;
		}
		flags_to_maildir(flags, letters);
		dst = flags ? xasprintf("%s/cur/%s:2,%s", mdir_path(to),
					mdir_writer_base(w), letters)
			    : xasprintf("%s/new/%s", mdir_path(to),
					mdir_writer_base(w));
		if (link(src, dst) == 0) {
			free(dst);
			free(src);
			*base_r = xstrdup(mdir_writer_base(w));
			mdir_writer_abort(&w);   /* its empty tmp/ file */
			*linked_r = true;
			return 0;
		}
		r = errno;
		free(dst);
		free(src);
		src = NULL;
		mdir_writer_abort(&w);
		if (r == ENOENT) {
			mdir_drop_cache(from);
			continue;   /* renamed between the open and the link */
		}
		if (r != EXDEV && r != EMLINK && r != EPERM && r != ENOTSUP &&
		    r != EOPNOTSUPP) {
			*error_r = xasprintf("cannot link message '%s' of '%s' "
					     "into '%s': %s", base,
					     mdir_path(from), mdir_path(to),
					     strerror(r));
			return -1;
		}
		break;   /* no hard links here: copy */
	}
	r = open_source(from, base, &fd, &src, error_r);
	if (r != 0)
		return r;
	if (fstat(fd, &st) < 0) {
		*error_r = xasprintf("cannot stat '%s': %s", src, strerror(errno));
		goto fail;
	}
	if (mdir_writer_new(to, &w, error_r) < 0)
		goto fail;
	mdir_writer_set_crlf_to_lf(w, false);   /* the bytes as they are */
	if (copy_bytes(fd, w, src, error_r) < 0 ||
	    mdir_writer_commit(w, flags, st.st_mtime, error_r) < 0)
		goto fail;
	*base_r = xstrdup(mdir_writer_base(w));
	mdir_writer_free(&w);
	close(fd);
	free(src);
	return 0;
fail:
	if (w != NULL)
		mdir_writer_abort(&w);
	close(fd);
	free(src);
	return -1;
}
