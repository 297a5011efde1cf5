/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * maildir.c - one Maildir folder: scan, find, deliver, flag, remove,
 * move, read back.
 *
 * Everything below the folder goes through directory fds opened with
 * O_NOFOLLOW (cur/ new/ tmp/) and *at() calls with names that hold no '/',
 * so nothing a reader or an attacker puts in the folder can send a write
 * elsewhere.
 *
 * The base -> current file name cache is filled by mdir_scan() and kept up
 * to date by our own operations. A cached name that has gone stale (a
 * reader renamed the file) makes us read cur/ and new/ again; a base that
 * is not cached at all only does when the mtimes of cur/ or new/ may have
 * moved since the last read (see cache_fresh()), so asking about many
 * vanished messages of a quiet folder does not cost a directory read each.
 */
#include "common.h"
#include "maildir/maildir.h"
#include "util/flags.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define MDIR_IO_BUF (64 * 1024)
#define MDIR_RETRIES 5   /* lookups when a reader keeps renaming a file */

struct mdir_cent {
	struct mdir_cent *next;
	char *base;     /* owned */
	char *name;     /* owned */
	bool in_new;
	bool hinted;    /* a guess of mdir_hint(), not seen in a listing */
};

struct mdir {
	char *path;               /* owned */
	int dfd, cur_fd, new_fd;
	int tmp_fd;               /* -1 until tmp/ exists */
	struct mdir_cent **tab;   /* cache: chained hash on base */
	size_t tab_size, count;
	bool cache_built;
	int64_t cache_cur_ns, cache_new_ns;  /* mtimes when it was filled */
	int64_t cache_time_ns;               /* clock when it was filled */
	bool defer_dir_sync;      /* writer commits leave the dir fsync to
				     mdir_sync_dirs() (batched downloads) */
	size_t full_reads;        /* listings of cur/ and new/ */
};

struct mdir_writer {
	struct mdir *m;           /* borrowed */
	int fd;
	char *base;               /* owned; also the tmp/ name */
	bool crlf_to_lf, pend_cr, committed, failed;
	uint64_t size;
	size_t olen;
	unsigned char obuf[MDIR_IO_BUF];
};

struct mdir_reader {
	int fd;
	char *path;               /* owned, for messages */
	uint64_t size, emitted;
	time_t mtime;
	unsigned flags;
	bool prev_cr, pend_lf, eof;
	size_t ipos, ilen;
	unsigned char ibuf[MDIR_IO_BUF];
};

ATTR_PRINTF(2, 3)
static int fail_errno(char **error_r, const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	char *msg;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	msg = xmalloc(n > 0 ? (size_t)n + 1 : 1);
	va_start(ap, fmt);
	vsnprintf(msg, n > 0 ? (size_t)n + 1 : 1, fmt, ap);
	va_end(ap);
	*error_r = xasprintf("%s: %s", msg, strerror(e));
	free(msg);
	errno = e;
	return -1;
}

static const char *sub_name(bool in_new)
{
	return in_new ? "new" : "cur";
}

static int sub_fd(const struct mdir *m, bool in_new)
{
	return in_new ? m->new_fd : m->cur_fd;
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* --- names --- */

static bool base_ok(const char *base)
{
	return base[0] != '\0' && base[0] != '.' && strchr(base, '/') == NULL &&
	       strstr(base, ":2,") == NULL;
}

static const char *name_info(const char *name)
{
	return strstr(name, ":2,");
}

static unsigned name_flags(const char *name)
{
	const char *info = name_info(name);

	return info ? flags_from_maildir(info + 3, strlen(info + 3)) : 0;
}

/* base + ":2," + letters of flags + info letters of old_name we do not
 * sync (other ASCII letters), in ASCII order, each once. */
static char *flagged_name(const char *base, const char *old_name,
			  unsigned flags)
{
	bool have[256] = { false };
	char known[MF_COUNT + 1], letters[257];
	const char *info = old_name ? name_info(old_name) : NULL;
	size_t i, n = 0;

	flags_to_maildir(flags, known);
	for (i = 0; known[i] != '\0'; i++)
		have[(unsigned char)known[i]] = true;
	if (info != NULL) {
		for (info += 3; *info != '\0'; info++) {
			unsigned char c = (unsigned char)*info;

			/* info letters are ASCII letters; drop anything else */
			if (((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) &&
			    flags_from_maildir((const char *)&c, 1) == 0)
				have[c] = true;
		}
	}
	for (i = 1; i < 256; i++)
		if (have[i])
			letters[n++] = (char)i;
	letters[n] = '\0';
	return xasprintf("%s:2,%s", base, letters);
}

/* --- cache --- */

static size_t hash_str(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

static struct mdir_cent **cache_link(struct mdir *m, const char *base)
{
	struct mdir_cent **pp;

	if (m->tab_size == 0)
		return NULL;
	pp = &m->tab[hash_str(base) & (m->tab_size - 1)];
	while (*pp != NULL && strcmp((*pp)->base, base) != 0)
		pp = &(*pp)->next;
	return pp;
}

static struct mdir_cent *cache_get(struct mdir *m, const char *base)
{
	struct mdir_cent **pp = cache_link(m, base);

	return pp ? *pp : NULL;
}

static void cache_grow(struct mdir *m)
{
	size_t ns = m->tab_size ? m->tab_size * 2 : 64, i;
	struct mdir_cent **nt = xcalloc(ns, sizeof(*nt));

	for (i = 0; i < m->tab_size; i++) {
		struct mdir_cent *e = m->tab[i], *next;

		for (; e != NULL; e = next) {
			size_t h = hash_str(e->base) & (ns - 1);

			next = e->next;
			e->next = nt[h];
			nt[h] = e;
		}
	}
	free(m->tab);
	m->tab = nt;
	m->tab_size = ns;
}

static struct mdir_cent *cache_put(struct mdir *m, const char *base,
				    const char *name, bool in_new)
{
	struct mdir_cent **pp, *e;

	if (m->count + 1 > m->tab_size)
		cache_grow(m);
	pp = cache_link(m, base);
	if (*pp != NULL) {
		e = *pp;
		free(e->name);
	} else {
		e = xcalloc(1, sizeof(*e));
		e->base = xstrdup(base);
		*pp = e;
		m->count++;
	}
	e->name = xstrdup(name);
	e->in_new = in_new;
	e->hinted = false;
	return e;
}

static void cache_del(struct mdir *m, const char *base)
{
	struct mdir_cent **pp = cache_link(m, base), *e;

	if (pp == NULL || *pp == NULL)
		return;
	e = *pp;
	*pp = e->next;
	free(e->base);
	free(e->name);
	free(e);
	m->count--;
}

static void cache_clear(struct mdir *m)
{
	size_t i;

	for (i = 0; i < m->tab_size; i++) {
		struct mdir_cent *e = m->tab[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			free(e->base);
			free(e->name);
			free(e);
		}
	}
	free(m->tab);
	m->tab = NULL;
	m->tab_size = 0;
	m->count = 0;
	m->cache_built = false;
}

static int get_mtimes(struct mdir *m, int64_t *cur_r, int64_t *new_r)
{
	struct stat st;

	if (fstat(m->cur_fd, &st) < 0)
		return -1;
	*cur_r = ts_ns(&st.st_mtim);
	if (fstat(m->new_fd, &st) < 0)
		return -1;
	*new_r = ts_ns(&st.st_mtim);
	return 0;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return 0;
	return ts_ns(&ts);
}

/*
 * Nobody changed cur/ or new/ since the cache was filled: their mtimes are
 * the same, and were already a second old when the filling started (a
 * change within the same clock tick as an earlier one leaves the mtime
 * as it was, so a recent mtime proves nothing). Our own changes move the
 * mtimes too, which just costs one more directory read on the next miss.
 */
static bool cache_fresh(struct mdir *m)
{
	int64_t c, n;

	return m->cache_built && get_mtimes(m, &c, &n) == 0 &&
	       c == m->cache_cur_ns && n == m->cache_new_ns &&
	       c < m->cache_time_ns - 1000000000 &&
	       n < m->cache_time_ns - 1000000000;
}

static int fsync_dir(struct mdir *m, bool in_new, char **error_r)
{
	if (fsync(sub_fd(m, in_new)) < 0)
		return fail_errno(error_r, "cannot fsync '%s/%s'", m->path,
				  sub_name(in_new));
	return 0;
}

/* --- open / close --- */

static int make_dir(const char *p, char **error_r)
{
	if (mkdir(p, 0700) == 0) {
		/* whatever the umask */
		if (chmod(p, 0700) < 0)
			return fail_errno(error_r, "cannot chmod '%s'", p);
		return 0;
	}
	if (errno == EEXIST)
		return 0;
	return fail_errno(error_r, "cannot create directory '%s'", p);
}

static int make_dirs(const char *path, char **error_r)
{
	char *p = xstrdup(path), *s;
	int ret = 0;

	for (s = p + 1; *s != '\0' && ret == 0; s++) {
		if (*s != '/' || s[-1] == '/')
			continue;
		*s = '\0';
		ret = make_dir(p, error_r);
		*s = '/';
	}
	if (ret == 0)
		ret = make_dir(p, error_r);
	free(p);
	return ret;
}

/* Open (and with create, make) the subdirectory sub of m. */
static int open_sub(struct mdir *m, const char *sub, bool create, int *fd_r,
		    bool *missing_r, char **error_r)
{
	int fd;

	if (create) {
		if (mkdirat(m->dfd, sub, 0700) == 0) {
			if (fchmodat(m->dfd, sub, 0700, 0) < 0)
				return fail_errno(error_r,
						  "cannot chmod '%s/%s'",
						  m->path, sub);
		} else if (errno != EEXIST) {
			return fail_errno(error_r,
					  "cannot create directory '%s/%s'",
					  m->path, sub);
		}
	}
	fd = openat(m->dfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT && missing_r != NULL)
			*missing_r = true;
		if (errno == ELOOP)
			errno = ENOTDIR;
		return fail_errno(error_r, "cannot open maildir '%s': '%s'",
				  m->path, sub);
	}
	*fd_r = fd;
	return 0;
}

int mdir_open(const char *path, bool create, struct mdir **m_r,
	      bool *missing_r, char **error_r)
{
	struct mdir *m;

	*m_r = NULL;
	if (missing_r != NULL)
		*missing_r = false;
	if (path[0] == '\0') {
		*error_r = xstrdup("empty maildir path");
		return -1;
	}
	if (create && make_dirs(path, error_r) < 0)
		return -1;
	m = xcalloc(1, sizeof(*m));
	m->path = xstrdup(path);
	m->cur_fd = m->new_fd = m->tmp_fd = -1;
	m->dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m->dfd < 0) {
		if (errno == ENOENT && missing_r != NULL)
			*missing_r = true;
		fail_errno(error_r, "cannot open maildir '%s'", path);
		mdir_close(&m);
		return -1;
	}
	if (open_sub(m, "cur", create, &m->cur_fd, missing_r, error_r) < 0 ||
	    open_sub(m, "new", create, &m->new_fd, missing_r, error_r) < 0) {
		mdir_close(&m);
		return -1;
	}
	if (create) {
		if (open_sub(m, "tmp", true, &m->tmp_fd, NULL, error_r) < 0) {
			mdir_close(&m);
			return -1;
		}
	} else {
		/* made on the first delivery if missing */
		m->tmp_fd = openat(m->dfd, "tmp", O_RDONLY | O_DIRECTORY |
				   O_NOFOLLOW | O_CLOEXEC);
	}
	*m_r = m;
	return 0;
}

void mdir_close(struct mdir **mp)
{
	struct mdir *m = *mp;

	if (m == NULL)
		return;
	*mp = NULL;
	if (m->dfd >= 0)
		close(m->dfd);
	if (m->cur_fd >= 0)
		close(m->cur_fd);
	if (m->new_fd >= 0)
		close(m->new_fd);
	if (m->tmp_fd >= 0)
		close(m->tmp_fd);
	cache_clear(m);
	free(m->path);
	free(m);
}

const char *mdir_path(const struct mdir *m)
{
	return m->path;
}

int mdir_mtimes(struct mdir *m, int64_t *cur_ns_r, int64_t *new_ns_r,
		char **error_r)
{
	if (get_mtimes(m, cur_ns_r, new_ns_r) < 0)
		return fail_errno(error_r, "cannot stat maildir '%s'",
				  m->path);
	return 0;
}

void mdir_hint(struct mdir *m, const char *base, unsigned flags)
{
	char letters[MF_COUNT + 1], *name;
	struct mdir_cent *e;

	if (m->cache_built || !base_ok(base) || cache_get(m, base) != NULL)
		return;
	if ((flags & MF_ALL) == 0) {
		e = cache_put(m, base, base, true);
	} else {
		flags_to_maildir(flags, letters);
		name = xasprintf("%s:2,%s", base, letters);
		e = cache_put(m, base, name, false);
		free(name);
	}
	e->hinted = true;
}

/* A hinted name was wrong: a message without flags is also often in cur/
 * as "base:2," (read, then marked unread; or put there by a mail client),
 * and one with flags may still be in new/. Try those two before reading
 * the whole folder. */
static bool try_other_place(struct mdir *m, struct mdir_cent *e)
{
	struct stat st;
	char *name;

	if (e->in_new) {
		name = xasprintf("%s:2,", e->base);
		if (fstatat(sub_fd(m, false), name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0) {
			free(e->name);
			e->name = name;
			e->in_new = false;
			return true;
		}
		free(name);
		return false;
	}
	if (fstatat(sub_fd(m, true), e->base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		free(e->name);
		e->name = xstrdup(e->base);
		e->in_new = true;
		return true;
	}
	return false;
}

size_t mdir_full_reads(const struct mdir *m)
{
	return m->full_reads;
}

void mdir_drop_cache(struct mdir *m)
{
	cache_clear(m);
	m->cache_built = false;
}

void mdir_defer_dir_sync(struct mdir *m, bool on)
{
	m->defer_dir_sync = on;
}

int mdir_sync_dirs(struct mdir *m, char **error_r)
{
	if (fsync_dir(m, false, error_r) < 0 || fsync_dir(m, true, error_r) < 0)
		return -1;
	return 0;
}

/* --- scan --- */

struct ent_list {
	struct mdir_entry *v;
	size_t n, alloc;
};

static bool is_regular(int dfd, const struct dirent *de)
{
	struct stat st;

	if (de->d_type == DT_REG)
		return true;
	if (de->d_type != DT_UNKNOWN)
		return false;
	return fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st.st_mode);
}

static int read_sub(struct mdir *m, bool in_new, bool quiet,
		    struct ent_list *l, char **error_r)
{
	DIR *d;
	struct dirent *de;
	int fd;

	/* a fresh open file description, so each listing starts at the top */
	fd = openat(sub_fd(m, in_new), ".", O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		fail_errno(error_r, "cannot list '%s/%s'", m->path,
			   sub_name(in_new));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		const char *name = de->d_name, *info;
		struct mdir_entry *e;

		if (name[0] == '.')
			continue;
		if (!is_regular(fd, de)) {
			log_debug("ignoring '%s/%s/%s': not a regular file",
				  m->path, sub_name(in_new), name);
			continue;
		}
		info = name_info(name);
		if (info == name) {
			if (!quiet)
				log_warn("ignoring '%s/%s/%s': no unique part in "
					 "the file name", m->path,
					 sub_name(in_new), name);
			continue;
		}
		ALLOC_GROW(l->v, l->n + 1, l->alloc);
		e = &l->v[l->n++];
		e->base = info ? xstrndup(name, (size_t)(info - name))
			       : xstrdup(name);
		e->name = xstrdup(name);
		e->flags = name_flags(name);
		e->in_new = in_new;
	}
	if (errno != 0) {
		fail_errno(error_r, "cannot list '%s/%s'", m->path,
			   sub_name(in_new));
		closedir(d);
		return -1;
	}
	closedir(d);
	return 0;
}

static int cmp_ent(const void *a, const void *b)
{
	const struct mdir_entry *x = a, *y = b;
	int c = strcmp(x->base, y->base);

	if (c != 0)
		return c;
	if (x->in_new != y->in_new)
		return x->in_new ? 1 : -1;   /* cur/ first */
	return strcmp(x->name, y->name);
}

/* The scan behind mdir_scan(); quiet for the rescans of mdir_find(), so
 * an odd file is warned about once per scan the caller asked for. */
static int scan(struct mdir *m, bool quiet, bool fill_cache,
		struct mdir_entry **ents_r, size_t *n_r, char **error_r)
{
	struct ent_list l = { NULL, 0, 0 };
	int64_t cur_ns, new_ns, start_ns;
	size_t i, j;

	*ents_r = NULL;
	*n_r = 0;
	/* mtimes before reading: a change during the read shows up later */
	start_ns = now_ns();
	if (mdir_mtimes(m, &cur_ns, &new_ns, error_r) < 0)
		return -1;
	m->full_reads++;
	if (read_sub(m, false, quiet, &l, error_r) < 0 ||
	    read_sub(m, true, quiet, &l, error_r) < 0) {
		mdir_entries_free(l.v, l.n);
		return -1;
	}
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), cmp_ent);
	for (i = j = 0; i < l.n; i++) {
		if (j > 0 && strcmp(l.v[j - 1].base, l.v[i].base) == 0) {
			if (!quiet)
				log_warn("message '%s' is twice in '%s': "
					 "using '%s/%s', ignoring '%s/%s'",
					 l.v[i].base, m->path,
					 sub_name(l.v[j - 1].in_new),
					 l.v[j - 1].name,
					 sub_name(l.v[i].in_new), l.v[i].name);
			free(l.v[i].base);
			free(l.v[i].name);
			continue;
		}
		l.v[j++] = l.v[i];
	}
	l.n = j;
	if (!fill_cache) {
		*ents_r = l.v;
		*n_r = l.n;
		return 0;
	}

	cache_clear(m);
	for (i = 0; i < l.n; i++)
		cache_put(m, l.v[i].base, l.v[i].name, l.v[i].in_new);
	m->cache_built = true;
	m->cache_cur_ns = cur_ns;
	m->cache_new_ns = new_ns;
	m->cache_time_ns = start_ns;

	*ents_r = l.v;
	*n_r = l.n;
	return 0;
}

int mdir_scan(struct mdir *m, struct mdir_entry **ents_r, size_t *n_r,
	      char **error_r)
{
	return scan(m, false, true, ents_r, n_r, error_r);
}

int mdir_list(struct mdir *m, struct mdir_entry **ents_r, size_t *n_r,
	      char **error_r)
{
	return scan(m, true, false, ents_r, n_r, error_r);
}

void mdir_entries_free(struct mdir_entry *ents, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(ents[i].base);
		free(ents[i].name);
	}
	free(ents);
}

/* --- find --- */

static int rescan(struct mdir *m, char **error_r)
{
	struct mdir_entry *ents;
	size_t n;

	if (scan(m, true, true, &ents, &n, error_r) < 0)
		return -1;
	mdir_entries_free(ents, n);
	return 0;
}

/* Current name and place of base: 0 found (*name_r owned), 1 not found. */
static int locate(struct mdir *m, const char *base, char **name_r,
		  bool *in_new_r, char **error_r)
{
	struct mdir_cent *e;
	struct stat st;

	if (!base_ok(base)) {
		*error_r = xasprintf("invalid message name '%s' in '%s'",
				     base, m->path);
		return -1;
	}
	e = cache_get(m, base);
	if (e != NULL) {
		if (fstatat(sub_fd(m, e->in_new), e->name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0)
			goto found;
		if (errno != ENOENT)
			return fail_errno(error_r, "cannot stat '%s/%s/%s'",
					  m->path, sub_name(e->in_new),
					  e->name);
		if (e->hinted) {
			e->hinted = false;
			if (try_other_place(m, e))
				goto found;
		}
	} else if (cache_fresh(m)) {
		return 1;
	}
	if (rescan(m, error_r) < 0)
		return -1;
	e = cache_get(m, base);
	if (e == NULL)
		return 1;
found:
	*name_r = xstrdup(e->name);
	*in_new_r = e->in_new;
	return 0;
}

int mdir_find(struct mdir *m, const char *base, char **name_r,
	      unsigned *flags_r, char **error_r)
{
	char *name;
	bool in_new;
	int r;

	r = locate(m, base, &name, &in_new, error_r);
	if (r != 0)
		return r;
	if (flags_r != NULL)
		*flags_r = name_flags(name);
	if (name_r != NULL)
		*name_r = name;
	else
		free(name);
	return 0;
}

/* Open the message file of base for reading, following renames. */
static int open_msg(struct mdir *m, const char *base, int *fd_r,
		    char **name_r, bool *in_new_r, char **error_r)
{
	int tries, r, fd;
	char *name;
	bool in_new;

	for (tries = 0; tries < MDIR_RETRIES; tries++) {
		r = locate(m, base, &name, &in_new, error_r);
		if (r != 0)
			return r;
		fd = openat(sub_fd(m, in_new), name,
			    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			*fd_r = fd;
			*name_r = name;
			*in_new_r = in_new;
			return 0;
		}
		if (errno != ENOENT) {
			fail_errno(error_r, "cannot open '%s/%s/%s'", m->path,
				   sub_name(in_new), name);
			free(name);
			return -1;
		}
		free(name);   /* renamed behind our back: look again */
	}
	*error_r = xasprintf("message '%s' in '%s' keeps being renamed",
			     base, m->path);
	return -1;
}

/* --- flags, remove, move --- */

int mdir_set_flags(struct mdir *m, const char *base, unsigned flags,
		   char **error_r)
{
	int tries, r;

	for (tries = 0; tries < MDIR_RETRIES; tries++) {
		char *name, *newname;
		bool in_new;

		r = locate(m, base, &name, &in_new, error_r);
		if (r != 0)
			return r;
		if (in_new && (flags & MF_ALL) == 0) {
			free(name);
			return 0;
		}
		newname = flagged_name(base, name, flags & MF_ALL);
		if (!in_new && strcmp(newname, name) == 0) {
			free(name);
			free(newname);
			return 0;
		}
		if (renameat(sub_fd(m, in_new), name, m->cur_fd, newname) == 0) {
			cache_put(m, base, newname, false);
			free(name);
			free(newname);
			r = fsync_dir(m, false, error_r);
			if (r == 0 && in_new)
				r = fsync_dir(m, true, error_r);
			return r;
		}
		if (errno != ENOENT) {
			fail_errno(error_r, "cannot rename '%s/%s/%s' to "
				   "'%s/cur/%s'", m->path, sub_name(in_new),
				   name, m->path, newname);
			free(name);
			free(newname);
			return -1;
		}
		free(name);
		free(newname);
	}
	*error_r = xasprintf("message '%s' in '%s' keeps being renamed",
			     base, m->path);
	return -1;
}

int mdir_remove(struct mdir *m, const char *base, char **error_r)
{
	int tries, r;

	for (tries = 0; tries < MDIR_RETRIES; tries++) {
		char *name;
		bool in_new;

		r = locate(m, base, &name, &in_new, error_r);
		if (r != 0)
			return r;
		if (unlinkat(sub_fd(m, in_new), name, 0) == 0) {
			free(name);
			cache_del(m, base);
			r = fsync_dir(m, in_new, error_r);
			return r;
		}
		if (errno != ENOENT) {
			fail_errno(error_r, "cannot remove '%s/%s/%s'",
				   m->path, sub_name(in_new), name);
			free(name);
			return -1;
		}
		free(name);
	}
	*error_r = xasprintf("message '%s' in '%s' keeps being renamed",
			     base, m->path);
	return -1;
}

static int copy_fd(int in, int out, const char *in_path, const char *out_path,
		   char **error_r)
{
	unsigned char *buf = xmalloc(MDIR_IO_BUF);
	ssize_t n, w;
	size_t off;
	int ret = 0;

	for (;;) {
		n = read(in, buf, MDIR_IO_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = fail_errno(error_r, "cannot read '%s'", in_path);
			break;
		}
		if (n == 0)
			break;
		for (off = 0; off < (size_t)n; off += (size_t)w) {
			w = write(out, buf + off, (size_t)n - off);
			if (w < 0 && errno == EINTR) {
				w = 0;
				continue;
			}
			if (w < 0) {
				ret = fail_errno(error_r, "cannot write '%s'",
						 out_path);
				goto out;
			}
		}
	}
out:
	free(buf);
	return ret;
}

static int ensure_tmp(struct mdir *m, char **error_r)
{
	if (m->tmp_fd >= 0)
		return 0;
	return open_sub(m, "tmp", true, &m->tmp_fd, NULL, error_r);
}

/*
 * rename() across file systems: copy into to/tmp/, fsync, give it the
 * source's times, rename into place, fsync; then remove the source (by
 * base, in case a reader renamed it meanwhile).
 */
static int move_by_copy(struct mdir *from, struct mdir *to, const char *base,
			const char *name, bool in_new, char **error_r)
{
	char *tmpname = xasprintf("%s.move", base);
	char *src = xasprintf("%s/%s/%s", from->path, sub_name(in_new), name);
	char *dst = xasprintf("%s/tmp/%s", to->path, tmpname);
	struct timespec ts[2];
	struct stat st;
	int sfd = -1, tfd = -1, ret = -1;

	if (ensure_tmp(to, error_r) < 0)
		goto out;
	sfd = openat(sub_fd(from, in_new), name, O_RDONLY | O_NOFOLLOW |
		     O_CLOEXEC);
	if (sfd < 0) {
		if (errno == ENOENT)
			ret = 1;
		else
			fail_errno(error_r, "cannot open '%s'", src);
		goto out;
	}
	if (fstat(sfd, &st) < 0) {
		fail_errno(error_r, "cannot stat '%s'", src);
		goto out;
	}
	/* a leftover of an interrupted earlier attempt */
	if (unlinkat(to->tmp_fd, tmpname, 0) < 0 && errno != ENOENT) {
		fail_errno(error_r, "cannot remove '%s'", dst);
		goto out;
	}
	tfd = openat(to->tmp_fd, tmpname, O_WRONLY | O_CREAT | O_EXCL |
		     O_NOFOLLOW | O_CLOEXEC, 0600);
	if (tfd < 0) {
		fail_errno(error_r, "cannot create '%s'", dst);
		goto out;
	}
	ts[0] = st.st_atim;
	ts[1] = st.st_mtim;
	if (copy_fd(sfd, tfd, src, dst, error_r) < 0)
		goto out_unlink;
	if (fchmod(tfd, 0600) < 0 || fsync(tfd) < 0 || futimens(tfd, ts) < 0) {
		fail_errno(error_r, "cannot write '%s'", dst);
		goto out_unlink;
	}
	if (close(tfd) < 0) {
		tfd = -1;
		fail_errno(error_r, "cannot write '%s'", dst);
		goto out_unlink;
	}
	tfd = -1;
	if (renameat(to->tmp_fd, tmpname, sub_fd(to, in_new), name) < 0) {
		fail_errno(error_r, "cannot rename '%s' to '%s/%s/%s'", dst,
			   to->path, sub_name(in_new), name);
		goto out_unlink;
	}
	cache_put(to, base, name, in_new);
	if (fsync_dir(to, in_new, error_r) < 0)
		goto out;
	ret = mdir_remove(from, base, error_r);
	if (ret == 1)
		ret = 0;
	goto out;
out_unlink:
	unlinkat(to->tmp_fd, tmpname, 0);
out:
	if (sfd >= 0)
		close(sfd);
	if (tfd >= 0)
		close(tfd);
	free(tmpname);
	free(src);
	free(dst);
	return ret;
}

/* Is there a file called name in to's new/ or cur/? 0 yes (tname_r
 * owned), 1 no, -1 error. */
static int probe_name(struct mdir *to, const char *name, bool in_new,
		      char **tname_r, bool *tin_new_r, char **error_r)
{
	struct stat st;
	int k;

	for (k = 0; k < 2; k++) {
		bool sub = k == 0 ? in_new : !in_new;

		if (fstatat(sub_fd(to, sub), name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			*tname_r = xstrdup(name);
			*tin_new_r = sub;
			return 0;
		}
		if (errno != ENOENT)
			return fail_errno(error_r, "cannot stat '%s/%s/%s'",
					  to->path, sub_name(sub), name);
	}
	return 1;
}

int mdir_move(struct mdir *from, struct mdir *to, const char *base,
	      char **error_r)
{
	int tries, r;

	if (from == to)
		return mdir_find(from, base, NULL, NULL, error_r);
	for (tries = 0; tries < MDIR_RETRIES; tries++) {
		char *name, *tname = NULL;
		bool in_new, tin_new = false;
		struct stat sst, tst;

		r = locate(from, base, &name, &in_new, error_r);
		if (r != 0)
			return r;
		/* A move that stopped after the copy left a file of the same
		 * name in the target; look for exactly that name rather than
		 * reading the whole target folder (which our own renames keep
		 * making stale) for every message moved. */
		r = probe_name(to, name, in_new, &tname, &tin_new, error_r);
		if (r < 0) {
			free(name);
			return -1;
		}
		if (r == 0) {
			/* finish a move that stopped after the copy */
			bool same =
				fstatat(sub_fd(from, in_new), name, &sst,
					AT_SYMLINK_NOFOLLOW) == 0 &&
				fstatat(sub_fd(to, tin_new), tname, &tst,
					AT_SYMLINK_NOFOLLOW) == 0 &&
				sst.st_size == tst.st_size;

			free(name);
			free(tname);
			if (!same) {
				*error_r = xasprintf("cannot move message '%s'"
						     " from '%s' to '%s': a "
						     "different message of that"
						     " name is there", base,
						     from->path, to->path);
				return -1;
			}
			r = mdir_remove(from, base, error_r);
			return r < 0 ? -1 : 0;
		}
		if (renameat(sub_fd(from, in_new), name, sub_fd(to, in_new),
			     name) == 0) {
			cache_del(from, base);
			cache_put(to, base, name, in_new);
			free(name);
			r = fsync_dir(to, in_new, error_r);
			if (r == 0)
				r = fsync_dir(from, in_new, error_r);
			return r;
		}
		if (errno == EXDEV) {
			r = move_by_copy(from, to, base, name, in_new, error_r);
			free(name);
			if (r != 1)
				return r;
			continue;   /* renamed behind our back */
		}
		if (errno != ENOENT) {
			fail_errno(error_r, "cannot move '%s/%s/%s' to '%s/%s'",
				   from->path, sub_name(in_new), name,
				   to->path, sub_name(in_new));
			free(name);
			return -1;
		}
		free(name);
	}
	*error_r = xasprintf("message '%s' in '%s' keeps being renamed",
			     base, from->path);
	return -1;
}

/* --- writer --- */

static atomic_uint_fast64_t mdir_counter;

/* Host name for unique names: '/' and ':' (and anything odd) as \ooo. */
static char *escaped_host(void)
{
	char host[256], *out, *o;
	size_t i;

	if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	out = o = xmalloc(strlen(host) * 4 + 1);
	for (i = 0; host[i] != '\0'; i++) {
		unsigned char c = (unsigned char)host[i];

		if (c == '/' || c == ':' || c == '\\' || c <= 0x20 ||
		    c >= 0x7F) {
			sprintf(o, "\\%03o", c);
			o += 4;
		} else {
			*o++ = (char)c;
		}
	}
	*o = '\0';
	return out;
}

int mdir_writer_new(struct mdir *m, struct mdir_writer **w_r, char **error_r)
{
	struct mdir_writer *w;
	char *host;
	int tries;

	*w_r = NULL;
	if (ensure_tmp(m, error_r) < 0)
		return -1;
	w = xcalloc(1, sizeof(*w));
	w->m = m;
	w->crlf_to_lf = true;
	w->fd = -1;
	host = escaped_host();
	for (tries = 0; tries < 100; tries++) {
		struct timeval tv;
		unsigned long long q = atomic_fetch_add(&mdir_counter, 1) + 1;

		gettimeofday(&tv, NULL);
		w->base = xasprintf("%lld.M%ldP%ldQ%llu.%s",
				    (long long)tv.tv_sec, (long)tv.tv_usec,
				    (long)getpid(), q, host);
		w->fd = openat(m->tmp_fd, w->base, O_WRONLY | O_CREAT |
			       O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (w->fd >= 0 || errno != EEXIST)
			break;
		FREE_AND_NULL(w->base);
	}
	free(host);
	if (w->fd < 0) {
		fail_errno(error_r, "cannot create a file in '%s/tmp'",
			   m->path);
		free(w->base);
		free(w);
		return -1;
	}
	if (fchmod(w->fd, 0600) < 0) {
		fail_errno(error_r, "cannot chmod '%s/tmp/%s'", m->path,
			   w->base);
		mdir_writer_abort(&w);
		return -1;
	}
	*w_r = w;
	return 0;
}

void mdir_writer_set_crlf_to_lf(struct mdir_writer *w, bool on)
{
	w->crlf_to_lf = on;
}

const char *mdir_writer_base(const struct mdir_writer *w)
{
	return w->base;
}

uint64_t mdir_writer_size(const struct mdir_writer *w)
{
	return w->size;
}

static int w_flush(struct mdir_writer *w, char **error_r)
{
	size_t off = 0;

	while (off < w->olen) {
		ssize_t n = write(w->fd, w->obuf + off, w->olen - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			w->failed = true;
			return fail_errno(error_r, "cannot write '%s/tmp/%s'",
					  w->m->path, w->base);
		}
		off += (size_t)n;
	}
	w->olen = 0;
	return 0;
}

static inline int w_put(struct mdir_writer *w, unsigned char c,
			char **error_r)
{
	if (w->olen == sizeof(w->obuf) && w_flush(w, error_r) < 0)
		return -1;
	w->obuf[w->olen++] = c;
	w->size++;
	return 0;
}

/* Append a run of bytes, a buffer at a time. */
static int w_put_run(struct mdir_writer *w, const unsigned char *p, size_t n,
		     char **error_r)
{
	while (n > 0) {
		size_t room = sizeof(w->obuf) - w->olen, k;

		if (room == 0) {
			if (w_flush(w, error_r) < 0)
				return -1;
			continue;
		}
		k = n < room ? n : room;
		memcpy(w->obuf + w->olen, p, k);
		w->olen += k;
		w->size += k;
		p += k;
		n -= k;
	}
	return 0;
}

int mdir_writer_write(struct mdir_writer *w, const void *p, size_t n,
		      char **error_r)
{
	const unsigned char *s = p, *cr;
	size_t i = 0, end;

	if (w->failed || w->committed || w->fd < 0) {
		*error_r = xasprintf("cannot write '%s/tmp/%s': writer is no "
				     "longer usable", w->m->path, w->base);
		return -1;
	}
	if (!w->crlf_to_lf)
		return w_put_run(w, s, n, error_r);
	/* copy the runs between CRs whole; a CR is dropped when an LF
	 * follows it, also across chunks (pend_cr) */
	while (i < n) {
		if (w->pend_cr) {
			w->pend_cr = false;
			if (s[i] != '\n' && w_put(w, '\r', error_r) < 0)
				return -1;
		}
		cr = memchr(s + i, '\r', n - i);
		end = cr ? (size_t)(cr - s) : n;
		if (w_put_run(w, s + i, end - i, error_r) < 0)
			return -1;
		if (cr == NULL)
			break;
		w->pend_cr = true;
		i = end + 1;
	}
	return 0;
}

int mdir_writer_commit(struct mdir_writer *w, unsigned flags, time_t mtime,
		       char **error_r)
{
	struct mdir *m = w->m;
	char *final;
	bool in_new = (flags & MF_ALL) == 0;
	int r;

	if (w->failed || w->committed || w->fd < 0) {
		*error_r = xasprintf("cannot commit '%s/tmp/%s': writer is no "
				     "longer usable", m->path, w->base);
		return -1;
	}
	if (w->pend_cr) {
		w->pend_cr = false;
		if (w_put(w, '\r', error_r) < 0)
			return -1;
	}
	if (w_flush(w, error_r) < 0)
		return -1;
	if (fsync(w->fd) < 0) {
		w->failed = true;
		return fail_errno(error_r, "cannot fsync '%s/tmp/%s'",
				  m->path, w->base);
	}
	if (mtime != 0) {
		struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };

		if (futimens(w->fd, ts) < 0) {
			w->failed = true;
			return fail_errno(error_r, "cannot set the time of "
					  "'%s/tmp/%s'", m->path, w->base);
		}
	}
	r = close(w->fd);
	w->fd = -1;
	if (r < 0) {
		w->failed = true;
		return fail_errno(error_r, "cannot write '%s/tmp/%s'",
				  m->path, w->base);
	}
	final = in_new ? xstrdup(w->base) : flagged_name(w->base, NULL, flags);
	if (renameat(m->tmp_fd, w->base, sub_fd(m, in_new), final) < 0) {
		w->failed = true;
		fail_errno(error_r, "cannot rename '%s/tmp/%s' to '%s/%s/%s'",
			   m->path, w->base, m->path, sub_name(in_new), final);
		free(final);
		return -1;
	}
	w->committed = true;
	cache_put(m, w->base, final, in_new);
	free(final);
	if (m->defer_dir_sync)
		return 0;
	r = fsync_dir(m, in_new, error_r);
	return r;
}

void mdir_writer_abort(struct mdir_writer **wp)
{
	struct mdir_writer *w = *wp;

	if (w == NULL)
		return;
	*wp = NULL;
	if (w->fd >= 0)
		close(w->fd);
	if (!w->committed && unlinkat(w->m->tmp_fd, w->base, 0) < 0 &&
	    errno != ENOENT)
		log_warn("cannot remove '%s/tmp/%s': %s", w->m->path, w->base,
			 strerror(errno));
	free(w->base);
	free(w);
}

void mdir_writer_free(struct mdir_writer **wp)
{
	mdir_writer_abort(wp);
}

/* --- reader --- */

static ssize_t read_some(int fd, void *buf, size_t n)
{
	ssize_t r;

	do {
		r = read(fd, buf, n);
	} while (r < 0 && errno == EINTR);
	return r;
}

int mdir_reader_open(struct mdir *m, const char *base,
		     struct mdir_reader **r_r, char **error_r)
{
	struct mdir_reader *r;
	struct stat st;
	char *name;
	bool in_new, prev_cr = false;
	int fd, ret;
	ssize_t n;

	*r_r = NULL;
	ret = open_msg(m, base, &fd, &name, &in_new, error_r);
	if (ret != 0)
		return ret;
	r = xcalloc(1, sizeof(*r));
	r->fd = fd;
	r->path = xasprintf("%s/%s/%s", m->path, sub_name(in_new), name);
	r->flags = name_flags(name);
	free(name);
	if (fstat(fd, &st) < 0) {
		fail_errno(error_r, "cannot stat '%s'", r->path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		*error_r = xasprintf("cannot read '%s': not a regular file",
				     r->path);
		goto fail;
	}
	r->mtime = st.st_mtim.tv_sec;
	/* one pass for the size after LF -> CRLF */
	while ((n = read_some(fd, r->ibuf, sizeof(r->ibuf))) > 0) {
		const unsigned char *p = r->ibuf, *end = r->ibuf + n, *lf;

		while ((lf = memchr(p, '\n', (size_t)(end - p))) != NULL) {
			if (!(lf > r->ibuf ? lf[-1] == '\r' : prev_cr))
				r->size++;
			p = lf + 1;
		}
		prev_cr = r->ibuf[n - 1] == '\r';
		r->size += (uint64_t)n;
	}
	if (n < 0) {
		fail_errno(error_r, "cannot read '%s'", r->path);
		goto fail;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		fail_errno(error_r, "cannot seek in '%s'", r->path);
		goto fail;
	}
	*r_r = r;
	return 0;
fail:
	mdir_reader_close(&r);
	return -1;
}

uint64_t mdir_reader_size(const struct mdir_reader *r)
{
	return r->size;
}

time_t mdir_reader_mtime(const struct mdir_reader *r)
{
	return r->mtime;
}

unsigned mdir_reader_flags(const struct mdir_reader *r)
{
	return r->flags;
}

ssize_t mdir_reader_read(struct mdir_reader *r, void *buf, size_t n,
			 char **error_r)
{
	unsigned char *out = buf;
	const unsigned char *src, *lf;
	size_t o = 0, avail, take, k;

	if (n > SSIZE_MAX)
		n = SSIZE_MAX;
	while (o < n) {
		if (r->pend_lf) {
			out[o++] = '\n';
			r->pend_lf = false;
			continue;
		}
		if (r->ipos == r->ilen) {
			ssize_t got;

			if (r->eof)
				break;
			got = read_some(r->fd, r->ibuf, sizeof(r->ibuf));
			if (got < 0)
				return fail_errno(error_r, "cannot read '%s'",
						  r->path);
			if (got == 0) {
				r->eof = true;
				break;
			}
			r->ipos = 0;
			r->ilen = (size_t)got;
		}
		/* copy up to the next LF, as much as fits */
		avail = r->ilen - r->ipos;
		take = avail < n - o ? avail : n - o;
		src = r->ibuf + r->ipos;
		lf = memchr(src, '\n', take);
		k = lf != NULL ? (size_t)(lf - src) : take;
		if (k > 0) {
			memcpy(out + o, src, k);
			o += k;
			r->ipos += k;
			r->prev_cr = src[k - 1] == '\r';
		}
		if (lf == NULL)
			continue;
		/* the LF itself; k < take, so there is room for one byte */
		r->ipos++;
		if (!r->prev_cr) {
			out[o++] = '\r';
			if (o < n)
				out[o++] = '\n';
			else
				r->pend_lf = true;
		} else {
			out[o++] = '\n';
		}
		r->prev_cr = false;
	}
	/* the size was promised to the server already (APPEND literal) */
	if (r->emitted + o > r->size ||
	    (o == 0 && n > 0 && r->emitted != r->size)) {
		*error_r = xasprintf("cannot read '%s': file changed while "
				     "being read", r->path);
		return -1;
	}
	r->emitted += o;
	return (ssize_t)o;
}

void mdir_reader_close(struct mdir_reader **rp)
{
	struct mdir_reader *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	if (r->fd >= 0)
		close(r->fd);
	free(r->path);
	free(r);
}

/* --- identity --- */

int mdir_msg_ident(struct mdir *m, const char *base, struct msg_ident *id_r,
		   char **error_r)
{
	struct ident_ctx *c;
	unsigned char *buf;
	char *name;
	bool in_new;
	ssize_t n;
	int fd, ret;

	ret = open_msg(m, base, &fd, &name, &in_new, error_r);
	if (ret != 0)
		return ret;
	buf = xmalloc(MDIR_IO_BUF);
	c = ident_new();
	while ((n = read_some(fd, buf, MDIR_IO_BUF)) > 0)
		ident_feed(c, buf, (size_t)n);
	if (n < 0) {
		fail_errno(error_r, "cannot read '%s/%s/%s'", m->path,
			   sub_name(in_new), name);
		ret = -1;
	} else {
		ident_finish(c, id_r);
	}
	ident_free(&c);
	free(buf);
	free(name);
	close(fd);
	return ret;
}
