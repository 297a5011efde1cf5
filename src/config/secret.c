/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * secret.c - fetch an account's password or OAuth token.
 *
 * The secret lives in memory only between config_get_secret() and the
 * caller's secure_zero(); every intermediate buffer is wiped here. Error
 * messages name the account and the key, never the command line (it may
 * hold a password, as in "echo hunter2") nor its output.
 */
#include "common.h"
#include "config/config.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Longer than any password or OAuth access token we have seen. */
#define SECRET_MAX_OUTPUT (64 * 1024)

/* Copy the first line of data[0..len) (without "\n" or "\r\n"). */
static char *first_line(const char *data, size_t len)
{
	const char *nl = memchr(data, '\n', len);
	size_t n = nl ? (size_t)(nl - data) : len;

	if (n > 0 && data[n - 1] == '\r')
		n--;
	if (n == 0 || memchr(data, '\0', n) != NULL)
		return NULL;
	return xstrndup(data, n);
}

/* Read fd to EOF into buf (SECRET_MAX_OUTPUT + 1 bytes); -1 on error or
 * when there is more than SECRET_MAX_OUTPUT. */
static int read_all(int fd, char *buf, size_t *len_r)
{
	size_t len = 0;

	for (;;) {
		ssize_t n = read(fd, buf + len, SECRET_MAX_OUTPUT + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > SECRET_MAX_OUTPUT) {
			errno = EFBIG;
			*len_r = len;
			return -1;
		}
	}
	*len_r = len;
	return 0;
}

static int run_command(const struct account_config *a, const char *key,
		       const char *cmd, char **secret_r, char **error_r)
{
	char *buf;
	size_t len = 0;
	int fds[2], status, rd_errno = 0;
	pid_t pid;

	/* Close-on-exec, so commands started by other threads do not
	 * inherit the pipe; dup2() below clears the flag on stdout. */
	if (pipe2(fds, O_CLOEXEC) < 0) {
		*error_r = xasprintf("account '%s': cannot run %s: pipe: %s",
				     a->name, key, strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		*error_r = xasprintf("account '%s': cannot run %s: fork: %s",
				     a->name, key, strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls between fork and exec. stdin
		 * and stderr stay ours so pinentry and prompts still work. */
		close(fds[0]);
		if (fds[1] != STDOUT_FILENO) {
			if (dup2(fds[1], STDOUT_FILENO) < 0)
				_exit(127);
			close(fds[1]);
		}
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	buf = xmalloc(SECRET_MAX_OUTPUT + 1);
	if (read_all(fds[0], buf, &len) < 0)
		rd_errno = errno;
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			status = -1;
			break;
		}
	}

	*secret_r = NULL;
	if (rd_errno == EFBIG)
		*error_r = xasprintf("account '%s': %s printed more than %d "
				     "bytes", a->name, key, SECRET_MAX_OUTPUT);
	else if (rd_errno != 0)
		*error_r = xasprintf("account '%s': cannot read the output of "
				     "%s: %s", a->name, key,
				     strerror(rd_errno));
	else if (status == -1)
		*error_r = xasprintf("account '%s': %s: lost track of the "
				     "command", a->name, key);
	else if (WIFSIGNALED(status))
		*error_r = xasprintf("account '%s': %s was killed by signal %d",
				     a->name, key, WTERMSIG(status));
	else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		*error_r = xasprintf("account '%s': %s exited with status %d",
				     a->name, key, WEXITSTATUS(status));
	else if ((*secret_r = first_line(buf, len)) == NULL)
		*error_r = xasprintf("account '%s': %s printed %s", a->name,
				     key, len == 0 ? "nothing" :
				     "an empty first line (or a NUL byte)");
	secure_zero(buf, len);
	free(buf);
	return *secret_r != NULL ? 0 : -1;
}

static int read_password_file(const struct account_config *a, char **secret_r,
			      char **error_r)
{
	const char *path = a->password_file;
	struct stat st;
	char *buf;
	size_t len = 0;
	int fd, r, e;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		*error_r = xasprintf("account '%s': cannot open password_file "
				     "'%s': %s", a->name, path,
				     strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*error_r = xasprintf("account '%s': password_file '%s' is not "
				     "a regular file", a->name, path);
		close(fd);
		return -1;
	}
	if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0)
		log_warn("password_file '%s' of account '%s' is readable by "
			 "others: chmod 600 it", path, a->name);
	buf = xmalloc(SECRET_MAX_OUTPUT + 1);
	r = read_all(fd, buf, &len);
	e = errno;
	close(fd);
	*secret_r = NULL;
	if (r < 0)
		*error_r = e == EFBIG ?
			xasprintf("account '%s': password_file '%s' is too "
				  "large", a->name, path) :
			xasprintf("account '%s': cannot read password_file "
				  "'%s': %s", a->name, path, strerror(e));
	else if ((*secret_r = first_line(buf, len)) == NULL)
		*error_r = xasprintf("account '%s': password_file '%s' %s",
				     a->name, path, len == 0 ? "is empty" :
				     "has an empty first line (or a NUL "
				     "byte)");
	secure_zero(buf, len);
	free(buf);
	return *secret_r != NULL ? 0 : -1;
}

int config_get_secret(const struct account_config *a, char **secret_r,
		      char **error_r)
{
	*secret_r = NULL;
	if (a->token_command != NULL)
		return run_command(a, "token_command", a->token_command,
				   secret_r, error_r);
	if (a->password_command != NULL)
		return run_command(a, "password_command", a->password_command,
				   secret_r, error_r);
	if (a->password_file != NULL)
		return read_password_file(a, secret_r, error_r);
	if (a->password != NULL) {
		*secret_r = xstrdup(a->password);
		return 0;
	}
	*error_r = xasprintf("account '%s': no password or token configured",
			     a->name);
	return -1;
}
