/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * lock.c - the per-account run lock, and the directory and name checks
 * shared with state.c.
 */
#include "common.h"
#include "state/state-private.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int state_check_account(const char *account, char **error_r)
{
	const char *p;

	if (account == NULL || *account == '\0') {
		*error_r = xstrdup("empty account name");
		return -1;
	}
	if (strcmp(account, ".") == 0 || strcmp(account, "..") == 0) {
		*error_r = xasprintf("bad account name '%s'", account);
		return -1;
	}
	for (p = account; *p != '\0'; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-')) {
			/* Not printed: it may hold any byte. */
			*error_r = xstrdup("bad account name (allowed: "
					   "letters, digits, '_', '.', '-')");
			return -1;
		}
	}
	return 0;
}

static int mkdir_one(const char *path, char **error_r)
{
	struct stat sb;

	if (mkdir(path, 0700) == 0) {
		/* mkdir's mode is cut by the umask; the spec says 0700
		   whatever the umask. */
		if (chmod(path, 0700) < 0) {
			*error_r = xasprintf("cannot set mode of '%s': %s",
					     path, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (errno != EEXIST) {
		*error_r = xasprintf("cannot create directory '%s': %s", path,
				     strerror(errno));
		return -1;
	}
	if (stat(path, &sb) < 0) {
		*error_r = xasprintf("cannot stat '%s': %s", path,
				     strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		*error_r = xasprintf("'%s' is not a directory", path);
		return -1;
	}
	return 0;
}

int state_mkdir_p(const char *dir, char **error_r)
{
	char *path, *p;
	int ret = 0;

	if (dir == NULL || *dir == '\0') {
		*error_r = xstrdup("empty state directory");
		return -1;
	}
	path = xstrdup(dir);
	/* Existing components are left as they are (their mode is the
	   user's business); only the ones made here get 0700. */
	for (p = path + 1; *p != '\0'; p++) {
		if (*p != '/' || p[-1] == '/')
			continue;
		*p = '\0';
		ret = mkdir_one(path, error_r);
		*p = '/';
		if (ret < 0)
			break;
	}
	if (ret == 0)
		ret = mkdir_one(path, error_r);
	free(path);
	return ret;
}

int state_lock(const char *dir, const char *account, int *fd_r,
	       char **error_r)
{
	char *path, pid[32];
	struct stat sb;
	int fd, n;

	*fd_r = -1;
	*error_r = NULL;
	if (state_check_account(account, error_r) < 0 ||
	    state_mkdir_p(dir, error_r) < 0)
		return -1;
	path = xasprintf("%s/%s.lock", dir, account);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		*error_r = xasprintf("cannot open lock file '%s': %s", path,
				     strerror(errno));
		free(path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;

		close(fd);
		if (err == EWOULDBLOCK) {
			free(path);
			return 1;
		}
		*error_r = xasprintf("cannot lock '%s': %s", path,
				     strerror(err));
		free(path);
		return -1;
	}
	/* The file is ours now: mode 0600 whatever the umask, and the pid
	   for whoever wonders who holds it. Failures here do not matter to
	   the lock itself. */
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 07777) != 0600)
		(void)fchmod(fd, 0600);
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == 0 && n > 0 && (size_t)n < sizeof(pid) &&
	    pwrite(fd, pid, (size_t)n, 0) != n) {
		/* nothing: a pid that could not be written is no error */
	}
	free(path);
	*fd_r = fd;
	return 0;
}

void state_unlock(int *fd)
{
	if (*fd < 0)
		return;
	/* Closing the only descriptor of the open file drops the flock. The
	   file stays: unlinking it would let two runs lock two inodes. */
	close(*fd);
	*fd = -1;
}

void state_lock_mark_watcher(int fd)
{
	char text[48];
	int n = snprintf(text, sizeof(text), "%ld watch\n", (long)getpid());

	if (ftruncate(fd, 0) == 0 && n > 0 && (size_t)n < sizeof(text) &&
	    pwrite(fd, text, (size_t)n, 0) != n) {
		/* as in state_lock(): only for people */
	}
}

bool state_lock_is_watcher(const char *dir, const char *account, long *pid_r)
{
	char *path = xasprintf("%s/%s.lock", dir, account), text[48];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n = -1;

	free(path);
	if (fd >= 0) {
		n = read(fd, text, sizeof(text) - 1);
		close(fd);
	}
	if (n <= 0)
		return false;
	text[n] = '\0';
	*pid_r = strtol(text, NULL, 10);
	return strstr(text, " watch\n") != NULL;
}
