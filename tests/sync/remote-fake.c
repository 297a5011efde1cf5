/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * remote-fake.c - a fake IMAP server kept in a directory; see remote-fake.h.
 *
 * Every operation: lock (mutex + flock), read <dir>/index, act, write the
 * index back (temp file + rename) when something changed, unlock, and only
 * then call the caller's callbacks, so a callback may use another
 * connection without deadlocking.
 */
#include "common.h"
#include "remote-fake.h"
#include "util/flags.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FK_MAGIC "twinbox-fake-server 1"
#define FK_MAX_INDEX (256u * 1024 * 1024)
#define FK_MAX_BODY (64u * 1024 * 1024)

/* ---------------------------------------------------------------------- */
/* in-memory image of the index */

struct fk_msg {
	uint32_t uid;
	unsigned flags;
	uint64_t modseq;
	int64_t date;
	uint64_t size;
	char emailid[32];
};

struct fk_gone {
	uint32_t uid;
	uint64_t modseq;
};

struct fk_folder {
	char *name;                   /* owned */
	uint32_t uidvalidity, uidnext;
	uint64_t hms;
	unsigned attrs;
	struct fk_msg *msgs;          /* ascending uid */
	size_t n_msgs, a_msgs;
	struct fk_gone *gone;
	size_t n_gone, a_gone;
};

struct fk_state {
	unsigned caps;
	uint32_t next_uidvalidity;
	uint64_t next_emailid;
	struct fk_folder **folders;
	size_t n_folders, a_folders;
};

struct fk_fault {
	char op[32];
	unsigned nth;
	enum imap_failure failure;
};

struct fake_server {
	char *dir;
	pthread_mutex_t mu;           /* the store (taken with the flock) */
	pthread_mutex_t ctr_mu;       /* counters and fault */
	int lockfd;                   /* -1 unless locked */
	struct fake_counters ctr;
	struct fk_fault fault;
};

struct fake_remote {
	struct remote r;              /* first: struct remote * casts to this */
	struct fake_server *fs;
	unsigned caps;
	char *sel;                    /* selected folder, owned; NULL if none */
	uint32_t sel_uidvalidity;
	enum imap_failure failure;
	bool broken;
	uint64_t bytes_in, bytes_out;
};

/* ---------------------------------------------------------------------- */
/* small helpers */

static char *vfmt(const char *fmt, va_list ap) ATTR_PRINTF(1, 0);
static char *vfmt(const char *fmt, va_list ap)
{
	va_list ap2;
	int n;
	char *s;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2); /* fmt is never NULL */
	va_end(ap2);
	if (n < 0)
		return xstrdup(fmt);
	s = xmalloc((size_t)n + 1);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

static int err(char **error_r, const char *fmt, ...) ATTR_PRINTF(2, 3);
static int err(char **error_r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	*error_r = vfmt(fmt, ap);
	va_end(ap);
	return -1;
}

static int rerr(struct fake_remote *c, enum imap_failure f, char **error_r,
		const char *fmt, ...) ATTR_PRINTF(4, 5);
static int rerr(struct fake_remote *c, enum imap_failure f, char **error_r,
		const char *fmt, ...)
{
	va_list ap;

	c->failure = f;
	if (f != IMAP_FAIL_NO && f != IMAP_FAIL_SINK)
		c->broken = true;
	va_start(ap, fmt);
	*error_r = vfmt(fmt, ap);
	va_end(ap);
	return -1;
}

static uint64_t fnv1a(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ULL;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* Read a whole file (at most max bytes). 1 if missing. */
static int read_file(const char *path, size_t max, char **data_r,
		     size_t *len_r, char **error_r)
{
	int fd;
	struct stat stt;
	char *data;
	size_t got = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		return err(error_r, "open '%s': %s", path, strerror(errno));
	}
	if (fstat(fd, &stt) < 0 || stt.st_size < 0 ||
	    (uint64_t)stt.st_size > max) {
		close(fd);
		return err(error_r, "'%s': cannot stat or too large", path);
	}
	data = xmalloc((size_t)stt.st_size + 1);
	while (got < (size_t)stt.st_size) {
		ssize_t r = read(fd, data + got, (size_t)stt.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(data);
			close(fd);
			return err(error_r, "read '%s': %s", path,
				   r < 0 ? strerror(errno) : "short read");
		}
		got += (size_t)r;
	}
	close(fd);
	data[got] = '\0';
	*data_r = data;
	*len_r = got;
	return 0;
}

static int write_file_atomic(const char *path, const void *data, size_t len,
			     char **error_r)
{
	char *tmp = xasprintf("%s.tmp.%ld.%lx", path, (long)getpid(),
			      (unsigned long)pthread_self());
	const char *p = data;
	size_t done = 0;
	int fd;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		err(error_r, "create '%s': %s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	while (done < len) {
		ssize_t w = write(fd, p + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			err(error_r, "write '%s': %s", tmp, strerror(errno));
			close(fd);
			unlink(tmp);
			free(tmp);
			return -1;
		}
		done += (size_t)w;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		err(error_r, "rename '%s': %s", tmp, strerror(errno));
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}

/* ---- uid sets ---- */

struct uidrange {
	uint32_t lo, hi;
};

/* Parse an IMAP sequence-set of UIDs; '*' is the highest UID in use (or
 * uidnext - 1 in an empty folder). false on bad syntax. */
static bool uidset_parse(const char *s, uint32_t star, struct uidrange **r_r,
			 size_t *n_r)
{
	struct uidrange *r = NULL;
	size_t n = 0, a = 0;
	const char *p = s;

	if (s == NULL || *s == '\0')
		return false;
	for (;;) {
		uint32_t v[2];
		int k;

		for (k = 0; k < 2; k++) {
			if (*p == '*') {
				v[k] = star;
				p++;
			} else if (*p >= '1' && *p <= '9') {
				uint64_t x = 0;

				while (*p >= '0' && *p <= '9') {
					x = x * 10 + (uint64_t)(*p - '0');
					if (x > UINT32_MAX) {
						free(r);
						return false;
					}
					p++;
				}
				v[k] = (uint32_t)x;
			} else {
				free(r);
				return false;
			}
			if (k == 0 && *p == ':') {
				p++;
				continue;
			}
			if (k == 0)
				v[1] = v[0];
			break;
		}
		ALLOC_GROW(r, n + 1, a);
		r[n].lo = v[0] < v[1] ? v[0] : v[1];
		r[n].hi = v[0] < v[1] ? v[1] : v[0];
		n++;
		if (*p == '\0')
			break;
		if (*p != ',') {
			free(r);
			return false;
		}
		p++;
	}
	*r_r = r;
	*n_r = n;
	return true;
}

static bool uidset_has(const struct uidrange *r, size_t n, uint32_t uid)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (uid >= r[i].lo && uid <= r[i].hi)
			return true;
	return false;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* "1:3,7" from ascending uids (malloc'ed; "" for none). */
static char *uidset_make(const uint32_t *uids, size_t n)
{
	size_t i = 0, len = 0, cap = n * 24 + 1;
	char *s = xmalloc(cap);

	s[0] = '\0';
	while (i < n) {
		size_t j = i;

		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (j == i)
			len += (size_t)snprintf(s + len, cap - len, "%s%" PRIu32,
						len ? "," : "", uids[i]);
		else
			len += (size_t)snprintf(s + len, cap - len,
						"%s%" PRIu32 ":%" PRIu32,
						len ? "," : "", uids[i], uids[j]);
		i = j + 1;
	}
	return s;
}

/* ---------------------------------------------------------------------- */
/* state: load, save, free */

static void folder_free(struct fk_folder *f)
{
	if (f == NULL)
		return;
	free(f->name);
	free(f->msgs);
	free(f->gone);
	free(f);
}

static void state_free(struct fk_state *st)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < st->n_folders; i++)
		folder_free(st->folders[i]);
	free(st->folders);
	free(st);
}

static bool is_inbox(const char *name)
{
	return strcasecmp(name, "INBOX") == 0;
}

static struct fk_folder *folder_find(struct fk_state *st, const char *name)
{
	size_t i;

	for (i = 0; i < st->n_folders; i++) {
		if (strcmp(st->folders[i]->name, name) == 0 ||
		    (is_inbox(name) && is_inbox(st->folders[i]->name)))
			return st->folders[i];
	}
	return NULL;
}

static struct fk_folder *folder_add(struct fk_state *st, const char *name)
{
	struct fk_folder *f = xcalloc(1, sizeof(*f));

	f->name = xstrdup(is_inbox(name) ? "INBOX" : name);
	f->uidvalidity = st->next_uidvalidity++;
	f->uidnext = 1;
	f->hms = 1;
	ALLOC_GROW(st->folders, st->n_folders + 1, st->a_folders);
	st->folders[st->n_folders++] = f;
	return f;
}

static void folder_remove(struct fk_state *st, struct fk_folder *f)
{
	size_t i;

	for (i = 0; i < st->n_folders; i++) {
		if (st->folders[i] == f) {
			memmove(&st->folders[i], &st->folders[i + 1],
				(st->n_folders - i - 1) * sizeof(*st->folders));
			st->n_folders--;
			folder_free(f);
			return;
		}
	}
}

static struct fk_msg *msg_find(struct fk_folder *f, uint32_t uid)
{
	size_t lo = 0, hi = f->n_msgs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (f->msgs[mid].uid == uid)
			return &f->msgs[mid];
		if (f->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static struct fk_msg *msg_append(struct fk_folder *f)
{
	struct fk_msg *m;

	ALLOC_GROW(f->msgs, f->n_msgs + 1, f->a_msgs);
	m = &f->msgs[f->n_msgs++];
	memset(m, 0, sizeof(*m));
	m->uid = f->uidnext++;
	m->modseq = ++f->hms;
	return m;
}

static void msg_remove(struct fk_folder *f, uint32_t uid, uint64_t modseq)
{
	struct fk_msg *m = msg_find(f, uid);
	size_t i;

	if (m == NULL)
		return;
	i = (size_t)(m - f->msgs);
	memmove(&f->msgs[i], &f->msgs[i + 1],
		(f->n_msgs - i - 1) * sizeof(*f->msgs));
	f->n_msgs--;
	ALLOC_GROW(f->gone, f->n_gone + 1, f->a_gone);
	f->gone[f->n_gone].uid = uid;
	f->gone[f->n_gone].modseq = modseq;
	f->n_gone++;
}

static uint32_t folder_star(const struct fk_folder *f)
{
	return f->n_msgs ? f->msgs[f->n_msgs - 1].uid : f->uidnext - 1;
}

static char *hex_encode(const char *s)
{
	size_t n = strlen(s), i;
	char *h = xmalloc(n * 2 + 2);

	for (i = 0; i < n; i++)
		snprintf(h + 2 * i, 3, "%02x", (unsigned char)s[i]);
	if (n == 0)
		strcpy(h, "-");
	else
		h[2 * n] = '\0';
	return h;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static char *hex_decode(const char *h)
{
	size_t n = strlen(h), i;
	char *s;

	if (strcmp(h, "-") == 0)
		return xstrdup("");
	if (n % 2 != 0)
		return NULL;
	s = xmalloc(n / 2 + 1);
	for (i = 0; i < n / 2; i++) {
		int a = hexval(h[2 * i]), b = hexval(h[2 * i + 1]);

		if (a < 0 || b < 0 || (a == 0 && b == 0)) {
			free(s);
			return NULL;
		}
		s[i] = (char)(a * 16 + b);
	}
	s[n / 2] = '\0';
	return s;
}

/* Cursor helpers over one index line. */
static char *next_word(char **p)
{
	char *s = *p, *e;

	if (s == NULL || *s == '\0')
		return NULL;
	e = strchr(s, ' ');
	if (e != NULL) {
		*e = '\0';
		*p = e + 1;
	} else {
		*p = s + strlen(s);
	}
	return s;
}

static bool next_u64(char **p, uint64_t max, uint64_t *v_r)
{
	char *w = next_word(p);
	uint64_t v = 0;
	bool neg = false;

	if (w == NULL || *w == '\0')
		return false;
	if (*w == '-') {
		neg = true;
		w++;
	}
	if (*w == '\0')
		return false;
	for (; *w != '\0'; w++) {
		if (*w < '0' || *w > '9' || v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*w - '0');
	}
	if (v > max)
		return false;
	*v_r = neg ? (uint64_t)-(int64_t)v : v;
	return true;
}

static bool valid_emailid(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n >= 32)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= 'a' && s[i] <= 'z') || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

static int state_parse(char *data, struct fk_state **st_r, char **error_r)
{
	struct fk_state *st = xcalloc(1, sizeof(*st));
	struct fk_folder *f = NULL;
	char *line = data, *nl;
	unsigned lineno = 0;
	bool ended = false;

	while (line != NULL && *line != '\0') {
		char *p, *kw;
		uint64_t v[6];

		nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		p = line;
		line = nl ? nl + 1 : NULL;
		lineno++;
		if (lineno == 1) {
			if (strcmp(p, FK_MAGIC) != 0)
				goto bad;
			continue;
		}
		kw = next_word(&p);
		if (kw == NULL || ended)
			goto bad;
		if (strcmp(kw, "caps") == 0) {
			if (!next_u64(&p, UINT32_MAX, &v[0]))
				goto bad;
			st->caps = (unsigned)v[0];
		} else if (strcmp(kw, "next-uidvalidity") == 0) {
			if (!next_u64(&p, UINT32_MAX, &v[0]))
				goto bad;
			st->next_uidvalidity = (uint32_t)v[0];
		} else if (strcmp(kw, "next-emailid") == 0) {
			if (!next_u64(&p, UINT64_MAX, &v[0]))
				goto bad;
			st->next_emailid = v[0];
		} else if (strcmp(kw, "folder") == 0) {
			char *name = next_word(&p);

			if (name == NULL || (name = hex_decode(name)) == NULL)
				goto bad;
			f = xcalloc(1, sizeof(*f));
			f->name = name;
			ALLOC_GROW(st->folders, st->n_folders + 1, st->a_folders);
			st->folders[st->n_folders++] = f;
			if (!next_u64(&p, UINT32_MAX, &v[0]) ||
			    !next_u64(&p, UINT32_MAX, &v[1]) ||
			    !next_u64(&p, UINT64_MAX, &v[2]) ||
			    !next_u64(&p, UINT32_MAX, &v[3]))
				goto bad;
			f->uidvalidity = (uint32_t)v[0];
			f->uidnext = (uint32_t)v[1];
			f->hms = v[2];
			f->attrs = (unsigned)v[3];
		} else if (strcmp(kw, "m") == 0) {
			struct fk_msg *m;
			char *eid;

			if (f == NULL ||
			    !next_u64(&p, UINT32_MAX, &v[0]) ||
			    !next_u64(&p, MF_ALL, &v[1]) ||
			    !next_u64(&p, UINT64_MAX, &v[2]) ||
			    !next_u64(&p, UINT64_MAX, &v[3]) ||
			    !next_u64(&p, FK_MAX_BODY, &v[4]) ||
			    (eid = next_word(&p)) == NULL || !valid_emailid(eid))
				goto bad;
			if (v[0] == 0 || v[0] >= f->uidnext ||
			    (f->n_msgs && f->msgs[f->n_msgs - 1].uid >= v[0]))
				goto bad;
			ALLOC_GROW(f->msgs, f->n_msgs + 1, f->a_msgs);
			m = &f->msgs[f->n_msgs++];
			memset(m, 0, sizeof(*m));
			m->uid = (uint32_t)v[0];
			m->flags = (unsigned)v[1];
			m->modseq = v[2];
			m->date = (int64_t)v[3];
			m->size = v[4];
			strcpy(m->emailid, eid);
		} else if (strcmp(kw, "x") == 0) {
			if (f == NULL || !next_u64(&p, UINT32_MAX, &v[0]) ||
			    !next_u64(&p, UINT64_MAX, &v[1]))
				goto bad;
			ALLOC_GROW(f->gone, f->n_gone + 1, f->a_gone);
			f->gone[f->n_gone].uid = (uint32_t)v[0];
			f->gone[f->n_gone].modseq = v[1];
			f->n_gone++;
		} else if (strcmp(kw, "end") == 0) {
			ended = true;
		} else {
			goto bad;
		}
		if (*p != '\0')
			goto bad;
	}
	if (!ended) {
		state_free(st);
		return err(error_r, "fake server index is truncated");
	}
	*st_r = st;
	return 0;
bad:
	state_free(st);
	return err(error_r, "fake server index: bad line %u", lineno);
}

static char *state_format(const struct fk_state *st, size_t *len_r)
{
	char *data = NULL;
	size_t len = 0, i, j;
	FILE *fp = open_memstream(&data, &len);

	if (fp == NULL)
		BUG("open_memstream failed");
	fprintf(fp, "%s\ncaps %u\nnext-uidvalidity %" PRIu32
		"\nnext-emailid %" PRIu64 "\n", FK_MAGIC, st->caps,
		st->next_uidvalidity, st->next_emailid);
	for (i = 0; i < st->n_folders; i++) {
		const struct fk_folder *f = st->folders[i];
		char *h = hex_encode(f->name);

		fprintf(fp, "folder %s %" PRIu32 " %" PRIu32 " %" PRIu64 " %u\n",
			h, f->uidvalidity, f->uidnext, f->hms, f->attrs);
		free(h);
		for (j = 0; j < f->n_msgs; j++) {
			const struct fk_msg *m = &f->msgs[j];

			fprintf(fp, "m %" PRIu32 " %u %" PRIu64 " %" PRId64
				" %" PRIu64 " %s\n", m->uid, m->flags,
				m->modseq, m->date, m->size, m->emailid);
		}
		for (j = 0; j < f->n_gone; j++)
			fprintf(fp, "x %" PRIu32 " %" PRIu64 "\n",
				f->gone[j].uid, f->gone[j].modseq);
	}
	fprintf(fp, "end\n");
	if (fclose(fp) != 0)
		BUG("open_memstream write failed");
	*len_r = len;
	return data;
}

static char *index_path(const struct fake_server *fs)
{
	return xasprintf("%s/index", fs->dir);
}

static char *body_path(const char *dir, const char *emailid)
{
	return xasprintf("%s/bodies/%s", dir, emailid);
}

static int state_load(struct fake_server *fs, struct fk_state **st_r,
		      char **error_r)
{
	char *path = index_path(fs), *data;
	size_t len;
	int ret;

	ret = read_file(path, FK_MAX_INDEX, &data, &len, error_r);
	if (ret == 1)
		ret = err(error_r, "no fake server in '%s'", fs->dir);
	free(path);
	if (ret < 0)
		return -1;
	if (memchr(data, '\0', len) != NULL) {
		free(data);
		return err(error_r, "fake server index has a NUL byte");
	}
	ret = state_parse(data, st_r, error_r);
	free(data);
	return ret;
}

static int state_save(struct fake_server *fs, const struct fk_state *st,
		      char **error_r)
{
	size_t len;
	char *data = state_format(st, &len), *path = index_path(fs);
	int ret = write_file_atomic(path, data, len, error_r);

	free(path);
	free(data);
	return ret;
}

/* ---- locking ---- */

static int fs_begin(struct fake_server *fs, struct fk_state **st_r,
		    char **error_r)
{
	char *path;
	int fd;

	pthread_mutex_lock(&fs->mu);
	path = xasprintf("%s/lock", fs->dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		err(error_r, "open '%s': %s", path, strerror(errno));
		free(path);
		pthread_mutex_unlock(&fs->mu);
		return -1;
	}
	free(path);
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			err(error_r, "flock: %s", strerror(errno));
			close(fd);
			pthread_mutex_unlock(&fs->mu);
			return -1;
		}
	}
	fs->lockfd = fd;
	if (st_r != NULL && state_load(fs, st_r, error_r) < 0) {
		close(fd);
		fs->lockfd = -1;
		pthread_mutex_unlock(&fs->mu);
		return -1;
	}
	return 0;
}

/* Save (when save and ret == 0), free st and unlock. Returns ret, or -1
 * if saving failed. */
static int fs_end(struct fake_server *fs, struct fk_state *st, bool save,
		  int ret, char **error_r)
{
	if (save && ret == 0 && st != NULL)
		ret = state_save(fs, st, error_r);
	state_free(st);
	close(fs->lockfd);
	fs->lockfd = -1;
	pthread_mutex_unlock(&fs->mu);
	return ret;
}

static int body_write(const char *dir, const char *emailid, const void *data,
		      size_t len, char **error_r)
{
	char *path = body_path(dir, emailid);
	int ret = write_file_atomic(path, data, len, error_r);

	free(path);
	return ret;
}

static int body_read(const char *dir, const char *emailid, char **data_r,
		     size_t *len_r, char **error_r)
{
	char *path = body_path(dir, emailid);
	int ret = read_file(path, FK_MAX_BODY, data_r, len_r, error_r);

	if (ret == 1)
		ret = err(error_r, "fake server: body '%s' missing", path);
	free(path);
	return ret;
}

/*
 * Gmail (X-GM-EXT-1): a message is one object whatever its labels, and
 * its X-GM-MSGID is the same in every label folder. The fake keeps each
 * folder's copy apart, so it derives the id from the bytes: copies of a
 * message share it, two messages differ in it even when size and header
 * agree. (FNV-1a; never 0.)
 */
static uint64_t gm_msgid_of(const char *data, size_t len)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)data[i]) * UINT64_C(0x100000001b3);
	return (h >> 1) | 1;
}

static int gm_msgid_read(const char *dir, const char *emailid,
			 uint64_t *id_r, char **error_r)
{
	char *data;
	size_t len;

	if (body_read(dir, emailid, &data, &len, error_r) < 0)
		return -1;
	*id_r = gm_msgid_of(data, len);
	free(data);
	return 0;
}

/* Gmail: expunged from All Mail or Trash, a message is gone from every
 * label (every folder), as Gmail deletes it; expunged elsewhere, only
 * that label goes. With the folder's lock held; ms: the folder's MODSEQ
 * of the expunge. */
static int gm_expunge_everywhere(struct fake_remote *c, struct fk_state *st,
				 const struct fk_folder *from,
				 const uint64_t *ids, size_t n, char **error_r)
{
	size_t i, j, k;

	if (!(c->caps & IMAP_CAP_XGM_EXT1) || n == 0 ||
	    (strcmp(from->name, "[Gmail]/All Mail") != 0 &&
	     strcmp(from->name, "[Gmail]/Trash") != 0))
		return 0;
	for (i = 0; i < st->n_folders; i++) {
		struct fk_folder *f = st->folders[i];
		uint64_t ms = 0;

		for (j = f->n_msgs; j-- > 0;) {
			uint64_t id;

			if (gm_msgid_read(c->fs->dir, f->msgs[j].emailid, &id,
					  error_r) < 0)
				return -1;
			for (k = 0; k < n && ids[k] != id; k++)
				;
			if (k == n)
				continue;
			if (ms == 0)
				ms = ++f->hms;
			msg_remove(f, f->msgs[j].uid, ms);
		}
	}
	return 0;
}

static void new_emailid(struct fk_state *st, char out[32])
{
	snprintf(out, 32, "M%08" PRIx64, ++st->next_emailid);
}

/* ---------------------------------------------------------------------- */
/* server handle */

int fake_server_create(const char *dir, unsigned caps, char **error_r)
{
	struct fake_server fs = { 0 };
	struct fk_state st = { 0 };
	char *path;
	struct stat stt;
	int ret;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return err(error_r, "mkdir '%s': %s", dir, strerror(errno));
	path = xasprintf("%s/bodies", dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		err(error_r, "mkdir '%s': %s", path, strerror(errno));
		free(path);
		return -1;
	}
	free(path);
	fs.dir = (char *)dir;
	path = index_path(&fs);
	ret = stat(path, &stt);
	free(path);
	if (ret == 0)
		return err(error_r, "'%s' already holds a fake server", dir);
	st.caps = caps;
	st.next_uidvalidity = 1000;
	folder_add(&st, "INBOX");
	ret = state_save(&fs, &st, error_r);
	folder_free(st.folders[0]);
	free(st.folders);
	return ret;
}

int fake_server_open(const char *dir, struct fake_server **fs_r,
		     char **error_r)
{
	struct fake_server *fs = xcalloc(1, sizeof(*fs));
	struct fk_state *st;

	fs->dir = xstrdup(dir);
	fs->lockfd = -1;
	pthread_mutex_init(&fs->mu, NULL);
	pthread_mutex_init(&fs->ctr_mu, NULL);
	if (fs_begin(fs, &st, error_r) < 0) {
		fake_server_free(&fs);
		return -1;
	}
	fs_end(fs, st, false, 0, error_r);
	*fs_r = fs;
	return 0;
}

void fake_server_free(struct fake_server **fsp)
{
	struct fake_server *fs = *fsp;

	if (fs == NULL)
		return;
	pthread_mutex_destroy(&fs->mu);
	pthread_mutex_destroy(&fs->ctr_mu);
	free(fs->dir);
	free(fs);
	*fsp = NULL;
}

const char *fake_server_dir(const struct fake_server *fs)
{
	return fs->dir;
}

unsigned fake_server_caps(struct fake_server *fs)
{
	struct fk_state *st;
	char *error = NULL;
	unsigned caps;

	if (fs_begin(fs, &st, &error) < 0) {
		fprintf(stderr, "fake server: %s\n", error);
		free(error);
		return 0;
	}
	caps = st->caps;
	fs_end(fs, st, false, 0, &error);
	return caps;
}

int fake_server_set_caps(struct fake_server *fs, unsigned caps,
			 char **error_r)
{
	struct fk_state *st;

	if (fs_begin(fs, &st, error_r) < 0)
		return -1;
	st->caps = caps;
	return fs_end(fs, st, true, 0, error_r);
}

void fake_server_counters(struct fake_server *fs, struct fake_counters *c_r)
{
	pthread_mutex_lock(&fs->ctr_mu);
	*c_r = fs->ctr;
	pthread_mutex_unlock(&fs->ctr_mu);
}

void fake_server_reset_counters(struct fake_server *fs)
{
	pthread_mutex_lock(&fs->ctr_mu);
	memset(&fs->ctr, 0, sizeof(fs->ctr));
	pthread_mutex_unlock(&fs->ctr_mu);
}

char *fake_counters_str(const struct fake_counters *c)
{
	return xasprintf("connects=%u lists=%u statuses=%u creates=%u "
			 "renames=%u selects=%u uid_searches=%u "
			 "flag_fetches=%u ident_fetches=%u bodies=%u "
			 "appends=%u stores=%u flag_changes=%u expunges=%u "
			 "moves=%u copies=%u searches=%u",
			 c->connects, c->lists, c->statuses, c->creates,
			 c->renames, c->selects, c->uid_searches,
			 c->flag_fetches, c->ident_fetches, c->bodies,
			 c->appends, c->stores, c->flag_changes, c->expunges,
			 c->moves, c->copies, c->searches);
}

void fake_server_fail(struct fake_server *fs, const char *op, unsigned nth,
		      enum imap_failure failure)
{
	pthread_mutex_lock(&fs->ctr_mu);
	snprintf(fs->fault.op, sizeof(fs->fault.op), "%s", op);
	fs->fault.nth = nth;
	fs->fault.failure = failure;
	pthread_mutex_unlock(&fs->ctr_mu);
}

bool fake_server_fail_pending(struct fake_server *fs)
{
	bool pending;

	pthread_mutex_lock(&fs->ctr_mu);
	pending = fs->fault.nth > 0;
	pthread_mutex_unlock(&fs->ctr_mu);
	return pending;
}

/* ---------------------------------------------------------------------- */
/* the remote_ops */

static struct fake_remote *FR(struct remote *r)
{
	return (struct fake_remote *)r;
}

#define COUNT(c, field, n) do { \
	pthread_mutex_lock(&(c)->fs->ctr_mu); \
	(c)->fs->ctr.field += (n); \
	pthread_mutex_unlock(&(c)->fs->ctr_mu); \
} while (0)

/* Start of every op: a broken connection stays broken; injected faults. */
static int op_enter(struct fake_remote *c, const char *op, char **error_r)
{
	struct fk_fault *ft = &c->fs->fault;
	enum imap_failure f = IMAP_FAIL_NONE;

	if (c->broken)
		return rerr(c, IMAP_FAIL_NET, error_r,
			    "%s: connection is broken", op);
	pthread_mutex_lock(&c->fs->ctr_mu);
	if (ft->nth > 0 && strcmp(ft->op, op) == 0 && --ft->nth == 0)
		f = ft->failure;
	pthread_mutex_unlock(&c->fs->ctr_mu);
	if (f != IMAP_FAIL_NONE)
		return rerr(c, f, error_r, "%s: injected failure", op);
	c->failure = IMAP_FAIL_NONE;
	return 0;
}

static int c_begin(struct fake_remote *c, struct fk_state **st_r,
		   char **error_r)
{
	char *e = NULL;

	if (fs_begin(c->fs, st_r, &e) == 0)
		return 0;
	rerr(c, IMAP_FAIL_NET, error_r, "fake server: %s", e);
	free(e);
	return -1;
}

static int c_end(struct fake_remote *c, struct fk_state *st, bool save,
		 char **error_r)
{
	char *e = NULL;

	if (fs_end(c->fs, st, save, 0, &e) == 0)
		return 0;
	rerr(c, IMAP_FAIL_NET, error_r, "fake server: %s", e);
	free(e);
	return -1;
}

static bool c_condstore(const struct fake_remote *c)
{
	return (c->caps & (IMAP_CAP_CONDSTORE | IMAP_CAP_QRESYNC)) != 0;
}

static bool c_qresync(const struct fake_remote *c)
{
	return (c->caps & IMAP_CAP_QRESYNC) != 0;
}

static unsigned fr_caps(struct remote *r)
{
	return FR(r)->caps;
}

static bool fr_qresync(struct remote *r)
{
	return c_qresync(FR(r));
}

static bool fr_condstore(struct remote *r)
{
	return c_condstore(FR(r));
}

static enum imap_failure fr_failure(struct remote *r)
{
	return FR(r)->failure;
}

static bool fr_broken(struct remote *r)
{
	return FR(r)->broken;
}

static int cmp_folder_ptr(const void *a, const void *b)
{
	const struct remote_folder *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static bool valid_folder_name(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && name[0] != '/' && name[n - 1] != '/' &&
	       strstr(name, "//") == NULL;
}

static int fr_list(struct remote *r, struct remote_folder **f_r, size_t *n_r,
		   char **error_r)
{
	struct fake_remote *c = FR(r);
	struct fk_state *st;
	struct remote_folder *out = NULL;
	size_t n = 0, a = 0, i, j;

	if (op_enter(c, "list", error_r) < 0)
		return -1;
	if (c_begin(c, &st, error_r) < 0)
		return -1;
	for (i = 0; i < st->n_folders; i++) {
		const char *name = st->folders[i]->name;
		char *slash;

		ALLOC_GROW(out, n + 1, a);
		out[n].name = xstrdup(name);
		out[n].attrs = st->folders[i]->attrs;
		n++;
		/* missing parents show as \Noselect */
		for (slash = strchr(name, '/'); slash != NULL;
		     slash = strchr(slash + 1, '/')) {
			char *parent = xstrndup(name, (size_t)(slash - name));
			bool have = folder_find(st, parent) != NULL;

			for (j = 0; !have && j < n; j++)
				have = strcmp(out[j].name, parent) == 0;
			if (have) {
				free(parent);
				continue;
			}
			ALLOC_GROW(out, n + 1, a);
			out[n].name = parent;
			out[n].attrs = IMAP_LIST_NOSELECT;
			n++;
		}
	}
	for (i = 0; i < n; i++) {
		size_t len = strlen(out[i].name);
		bool kids = false;

		for (j = 0; j < n && !kids; j++)
			kids = strncmp(out[j].name, out[i].name, len) == 0 &&
			       out[j].name[len] == '/';
		out[i].attrs |= kids ? IMAP_LIST_HASCHILDREN :
				       IMAP_LIST_HASNOCHILDREN;
	}
	if (n > 1)
		qsort(out, n, sizeof(*out), cmp_folder_ptr);
	fs_end(c->fs, st, false, 0, error_r);
	COUNT(c, lists, 1);
	*f_r = out;
	*n_r = n;
	return 0;
}

static int fr_status(struct remote *r, const char *const *names, size_t n,
		     struct imap_status_data *st_r, bool *ok_r, char **error_r)
{
	struct fake_remote *c = FR(r);
	struct fk_state *st;
	size_t i;

	if (op_enter(c, "status", error_r) < 0)
		return -1;
	if (c_begin(c, &st, error_r) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		struct fk_folder *f = folder_find(st, names[i]);
		struct imap_status_data *d = &st_r[i];
		size_t k;

		memset(d, 0, sizeof(*d));
		d->mailbox = names[i];
		d->mailbox_len = strlen(names[i]);
		ok_r[i] = f != NULL;
		if (f == NULL)
			continue;
		d->has_messages = true;
		d->messages = (uint32_t)f->n_msgs;
		d->has_uidnext = true;
		d->uidnext = f->uidnext;
		d->has_uidvalidity = true;
		d->uidvalidity = f->uidvalidity;
		d->has_unseen = true;
		for (k = 0; k < f->n_msgs; k++)
			if (!(f->msgs[k].flags & MF_SEEN))
				d->unseen++;
		if (c_condstore(c)) {
			d->has_highestmodseq = true;
			d->highestmodseq = f->hms;
		}
	}
	fs_end(c->fs, st, false, 0, error_r);
	COUNT(c, statuses, 1);
	return 0;
}

static int fr_create(struct remote *r, const char *name, char **error_r)
{
	struct fake_remote *c = FR(r);
	struct fk_state *st;

	if (op_enter(c, "create", error_r) < 0)
		return -1;
	if (!valid_folder_name(name))
		return rerr(c, IMAP_FAIL_NO, error_r,
			    "create '%s': invalid mailbox name", name);
	if (c_begin(c, &st, error_r) < 0)
		return -1;
	if (folder_find(st, name) != NULL) {
		fs_end(c->fs, st, false, 0, error_r);
		return rerr(c, IMAP_FAIL_NO, error_r,
			    "create '%s': [ALREADYEXISTS] mailbox exists",
			    name);
	}
	folder_add(st, name);
	COUNT(c, creates, 1);
	if (c_end(c, st, true, error_r) < 0)
		return -1;
	return 0;
}

static int fr_rename(struct remote *r, const char *from, const char *to,
		     char **error_r)
{
	struct fake_remote *c = FR(r);
	struct fk_state *st;
	struct fk_folder *f;
	size_t i, flen = strlen(from);
	bool any = false;

	if (op_enter(c, "rename", error_r) < 0)
		return -1;
	if (!valid_folder_name(to) || !valid_folder_name(from))
		return rerr(c, IMAP_FAIL_NO, error_r,
			    "rename: invalid mailbox name");
	if (c_begin(c, &st, error_r) < 0)
		return -1;
	if (folder_find(st, to) != NULL) {
		fs_end(c->fs, st, false, 0, error_r);
		return rerr(c, IMAP_FAIL_NO, error_r,
			    "rename '%s' to '%s': [ALREADYEXISTS]", from, to);
	}
	if (is_inbox(from)) {
		/* RFC 3501 6.3.5: renaming INBOX moves its messages to a new
		 * mailbox and leaves INBOX empty. */
		struct fk_folder *in = folder_find(st, "INBOX");
		struct fk_folder *nf = folder_add(st, to);
		uint64_t ms = ++in->hms;

		while (in->n_msgs > 0) {
			struct fk_msg m = in->msgs[0], *nm;

			msg_remove(in, m.uid, ms);
			nm = msg_append(nf);
			nm->flags = m.flags;
			nm->date = m.date;
			nm->size = m.size;
			memcpy(nm->emailid, m.emailid, sizeof(m.emailid));
		}
		any = true;
	} else {
		for (i = 0; i < st->n_folders; i++) {
			char *old;

			f = st->folders[i];
			old = f->name;
			if (strcmp(old, from) == 0) {
				f->name = xstrdup(to);
			} else if (strncmp(old, from, flen) == 0 &&
				   old[flen] == '/') {
				f->name = xasprintf("%s%s", to, old + flen);
			} else {
				continue;
			}
			free(old);
			any = true;
		}
	}
	if (!any) {
		fs_end(c->fs, st, false, 0, error_r);
		return rerr(c, IMAP_FAIL_NO, error_r,
			    "rename '%s': [NONEXISTENT] no such mailbox", from);
	}
	COUNT(c, renames, 1);
	if (c_end(c, st, true, error_r) < 0)
		return -1;
	return 0;
}

/* The selected folder in a locked state, or NULL with the error set. */
static struct fk_folder *sel_folder(struct fake_remote *c, struct fk_state *st,
				    const char *op, char **error_r)
{
	struct fk_folder *f;

	if (c->sel == NULL) {
		rerr(c, IMAP_FAIL_NO, error_r, "%s: no mailbox selected", op);
		return NULL;
	}
	f = folder_find(st, c->sel);
	if (f == NULL || f->uidvalidity != c->sel_uidvalidity) {
		/* the mailbox went away under us: a real server ends the
		 * session (BYE) here */
		rerr(c, IMAP_FAIL_NET, error_r,
		     "%s: selected mailbox '%s' was deleted", op, c->sel);
		FREE_AND_NULL(c->sel);
		return NULL;
	}
	return f;
}

static void fill_fetch(const struct fake_remote *c, const struct fk_folder *f,
		       const struct fk_msg *m, struct imap_fetch *out)
{
	memset(out, 0, sizeof(*out));
	out->seq = (uint32_t)(m - f->msgs) + 1;
	out->uid = m->uid;
	out->has_flags = true;
	out->flags = m->flags;
	if (c_condstore(c)) {
		out->has_modseq = true;
		out->modseq = m->modseq;
	}
}

struct fetch_list {
	struct imap_fetch *f;
	char (*eid)[32];              /* emailids, parallel to f */
	size_t n, a, a2;
};

static void fetch_list_add(struct fetch_list *fl, const struct imap_fetch *f,
			   const char *emailid)
{
	size_t a2 = fl->a2;

	ALLOC_GROW(fl->f, fl->n + 1, fl->a);
	ALLOC_GROW(fl->eid, fl->n + 1, a2);
	fl->a2 = a2;
	fl->f[fl->n] = *f;
	snprintf(fl->eid[fl->n], 32, "%s", emailid);
	fl->n++;
}

static void fetch_list_free(struct fetch_list *fl)
{
	free(fl->f);
	free(fl->eid);
	memset(fl, 0, sizeof(*fl));
}

static int deliver(struct fake_remote *c, struct fetch_list *fl,
		   const char *vanished, imap_fetch_cb *fcb,
		   imap_vanished_cb *vcb, void *ctx, const char *op,
		   char **error_r)
{
	size_t i;

	if (vanished != NULL && *vanished != '\0' && vcb != NULL &&
	    vcb(ctx, vanished, true) < 0)
		return rerr(c, IMAP_FAIL_SINK, error_r,
			    "%s: vanished callback failed", op);
	for (i = 0; i < fl->n; i++)
		if (fcb != NULL && fcb(ctx, &fl->f[i]) < 0)
			return rerr(c, IMAP_FAIL_SINK, error_r,
				    "%s: fetch callback failed", op);
	return 0;
}

static int fr_select(struct remote *r, const char *name,
		     const struct imap_qresync *qr, imap_fetch_cb *fcb,
		     imap_vanished_cb *vcb, void *ctx,
		     struct imap_selected *sel_r, char **error_r)
{
	struct fake_remote *c = FR(r);
	struct fk_state *st;
	struct fk_folder *f;
	struct fetch_list fl = { 0 };
	char *vanished = NULL;
	int ret;

	if (op_enter(c, "select", error_r) < 0)
		return -1;
	FREE_AND_NULL(c->sel);
	if (c_begin(c, &st, error_r) < 0)
		return -1;
	f = folder_find(st, name);
	if (f == NULL) {
		fs_end(c->fs, st, false, 0, error_r);
		return rerr(c, IMAP_FAIL_NO, error_r,
			    "select '%s': [NONEXISTENT] no such mailbox", name);
	}
	memset(sel_r, 0, sizeof(*sel_r));
	sel_r->uidvalidity = f->uidvalidity;
	sel_r->uidnext = f->uidnext;
	sel_r->exists = (uint32_t)f->n_msgs;
	sel_r->highestmodseq = c_condstore(c) ? f->hms : 0;
	sel_r->permanent_flags = MF_ALL;
	sel_r->permanent_keywords = true;
	if (qr != NULL && c_qresync(c) && qr->uidvalidity == f->uidvalidity) {
		/* RFC 7162 3.2.5.2: VANISHED (EARLIER) for what was expunged
		 * since modseq (limited to known-uids when given), then FETCH
		 * for what changed since. */
		struct uidrange *known = NULL;
		size_t n_known = 0, i;
		uint32_t *v = NULL;
		size_t nv = 0;

		if (qr->known_uids != NULL &&
		    !uidset_parse(qr->known_uids, folder_star(f), &known,
				  &n_known)) {
			fs_end(c->fs, st, false, 0, error_r);
			return rerr(c, IMAP_FAIL_NO, error_r,
				    "select: BAD known-uids '%s'",
				    qr->known_uids);
		}
		v = xcalloc(f->n_gone + 1, sizeof(*v));
		for (i = 0; i < f->n_gone; i++)
			if (f->gone[i].modseq > qr->modseq &&
			    (known == NULL ||
			     uidset_has(known, n_known, f->gone[i].uid)))
				v[nv++] = f->gone[i].uid;
		qsort(v, nv, sizeof(*v), cmp_u32);
		vanished = uidset_make(v, nv);
		free(v);
		free(known);
		for (i = 0; i < f->n_msgs; i++) {
			struct imap_fetch fe;

			if (f->msgs[i].modseq <= qr->modseq)
				continue;
			fill_fetch(c, f, &f->msgs[i], &fe);
			fetch_list_add(&fl, &fe, f->msgs[i].emailid);
		}
	}
	c->sel = xstrdup(f->name);
	c->sel_uidvalidity = f->uidvalidity;
	fs_end(c->fs, st, false, 0, error_r);
	COUNT(c, selects, 1);
	ret = deliver(c, &fl, vanished, fcb, vcb, ctx, "select", error_r);
	free(vanished);
	fetch_list_free(&fl);
	return ret;
}

static int fr_uids(struct remote *r, uint32_t **uids_r, size_t *n_r,
		   char **error_r)
{
	struct fake_remote *c = FR(r);
	struct fk_state *st;
	struct fk_folder *f;
	uint32_t *u;
	size_t i;

	if (op_enter(c, "uids", error_r) < 0)
		return -1;
	if (c_begin(c, &st, error_r) < 0)
		return -1;
	if ((f = sel_folder(c, st, "uids", error_r)) == NULL) {
		fs_end(c->fs, st, false, 0, error_r);
		return -1;
	}
	u = xcalloc(f->n_msgs + 1, sizeof(*u));
	for (i = 0; i < f->n_msgs; i++)
		u[i] = f->msgs[i].uid;
	*uids_r = u;
	*n_r = f->n_msgs;
	fs_end(c->fs, st, false, 0, error_r);
	COUNT(c, uid_searches, 1);
	return 0;
}

static int fr_fetch_flags(struct remote *r, const char *uidset,
			  uint64_t changedsince, bool vanished,
			  imap_fetch_cb *fcb, imap_vanished_cb *vcb,
			  void *ctx, char **error_r)
{
	struct fake_remote *c = FR(r);
	struct fk_state *st;
	struct fk_folder *f;
	struct uidrange *set = NULL;
	size_t n_set = 0, i;
	struct fetch_list fl = { 0 };
	char *vset = NULL;
	int ret;

	if (op_enter(c, "fetch_flags", error_r) < 0)
		return -1;
	if (changedsince != 0 && !c_condstore(c))
		return rerr(c, IMAP_FAIL_NO, error_r,
			    "fetch: BAD CHANGEDSINCE without CONDSTORE");
	if (vanished && (!c_qresync(c) || changedsince == 0))
		return rerr(c, IMAP_FAIL_NO, error_r,
			    "fetch: BAD VANISHED needs QRESYNC and CHANGEDSINCE");
	if (c_begin(c, &st, error_r) < 0)
		return -1;
	if ((f = sel_folder(c, st, "fetch_flags", error_r)) == NULL) {
		fs_end(c->fs, st, false, 0, error_r);
		return -1;
	}
	if (!uidset_parse(uidset, folder_star(f), &set, &n_set)) {
		fs_end(c->fs, st, false, 0, error_r);
		return rerr(c, IMAP_FAIL_NO, error_r,
			    "fetch: BAD uid set '%s'", uidset ? uidset : "");
	}
	if (vanished) {
		uint32_t *v = xcalloc(f->n_gone + 1, sizeof(*v));
		size_t nv = 0;

		for (i = 0; i < f->n_gone; i++)
			if (f->gone[i].modseq > changedsince &&
			    uidset_has(set, n_set, f->gone[i].uid))
				v[nv++] = f->gone[i].uid;
		qsort(v, nv, sizeof(*v), cmp_u32);
		vset = uidset_make(v, nv);
		free(v);
	}
	for (i = 0; i < f->n_msgs; i++) {
		struct imap_fetch fe;

		if (!uidset_has(set, n_set, f->msgs[i].uid) ||
		    (changedsince != 0 && f->msgs[i].modseq <= changedsince))
			continue;
		fill_fetch(c, f, &f->msgs[i], &fe);
		fetch_list_add(&fl, &fe, f->msgs[i].emailid);
	}
	free(set);
	fs_end(c->fs, st, false, 0, error_r);
	COUNT(c, flag_fetches, 1);
	ret = deliver(c, &fl, vset, fcb, vcb, ctx, "fetch_flags", error_r);
	free(vset);
	fetch_list_free(&fl);
	return ret;
}

static size_t header_len(const char *data, size_t len)
{
	size_t i;

	if (len >= 2 && data[0] == '\r' && data[1] == '\n')
		return 2;
	for (i = 0; i + 3 < len; i++)
		if (memcmp(data + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	return len;
}

static int fr_fetch_idents(struct remote *r, const char *uidset,
			   imap_fetch_cb *fcb, void *ctx, char **error_r)
{
	struct fake_remote *c = FR(r);
	struct fk_state *st;
	struct fk_folder *f;
	struct uidrange *set = NULL;
	size_t n_set = 0, i;
	struct fetch_list fl = { 0 };
	int ret = 0;

	if (op_enter(c, "fetch_idents", error_r) < 0)
		return -1;
	if (c_begin(c, &st, error_r) < 0)
		return -1;
	if ((f = sel_folder(c, st, "fetch_idents", error_r)) == NULL) {
		fs_end(c->fs, st, false, 0, error_r);
		return -1;
	}
	if (!uidset_parse(uidset, folder_star(f), &set, &n_set)) {
		fs_end(c->fs, st, false, 0, error_r);
		return rerr(c, IMAP_FAIL_NO, error_r,
			    "fetch: BAD uid set '%s'", uidset ? uidset : "");
	}
	for (i = 0; i < f->n_msgs; i++) {
		struct imap_fetch fe;

		if (!uidset_has(set, n_set, f->msgs[i].uid))
			continue;
		fill_fetch(c, f, &f->msgs[i], &fe);
		fe.has_size = true;
		fe.size = f->msgs[i].size;
		fetch_list_add(&fl, &fe, f->msgs[i].emailid);
	}
	free(set);
	fs_end(c->fs, st, false, 0, error_r);
	COUNT(c, ident_fetches, (unsigned)fl.n);
	/* bodies are immutable files: read them without the lock */
	for (i = 0; i < fl.n && ret == 0; i++) {
		char *data, *e = NULL;
		size_t len;

		if (body_read(c->fs->dir, fl.eid[i], &data, &len, &e) < 0) {
			ret = rerr(c, IMAP_FAIL_NET, error_r, "%s", e);
			free(e);
			break;
		}
		fl.f[i].header = data;
		fl.f[i].header_len = header_len(data, len);
		if (c->caps & IMAP_CAP_OBJECTID)
			fl.f[i].emailid = fl.eid[i];
		if (c->caps & IMAP_CAP_XGM_EXT1) {
			fl.f[i].has_gm_msgid = true;
			fl.f[i].gm_msgid = gm_msgid_of(data, len);
		}
		if (fcb != NULL && fcb(ctx, &fl.f[i]) < 0)
			ret = rerr(c, IMAP_FAIL_SINK, error_r,
				   "fetch_idents: fetch callback failed");
		free(data);
		fl.f[i].header = NULL;
	}
	fetch_list_free(&fl);
	return ret;
}

/* Chunk sizes that cut the bytes at odd places (also between CR and LF). */
static const size_t chunk_sizes[] = { 5, 1, 17, 2, 512, 3, 4096, 64 };

static int fr_fetch_bodies(struct remote *r, const uint32_t *uids, size_t n,
			   const struct imap_body_handler *h, char **error_r)
{
	struct fake_remote *c = FR(r);
	struct fk_state *st;
	struct fk_folder *f;
	struct fetch_list fl = { 0 };
	struct imap_fetch *fe;
	uint32_t *sorted;
	size_t i, k;
	int ret = 0;
	bool sink_failed = false;

	if (op_enter(c, "fetch_bodies", error_r) < 0)
		return -1;
	if (c_begin(c, &st, error_r) < 0)
		return -1;
	if ((f = sel_folder(c, st, "fetch_bodies", error_r)) == NULL) {
		fs_end(c->fs, st, false, 0, error_r);
		return -1;
	}
	/* a server answers in mailbox order, whatever order was asked */
	sorted = xcalloc(n + 1, sizeof(*sorted));
	if (n > 0)
		memcpy(sorted, uids, n * sizeof(*uids));
	qsort(sorted, n, sizeof(*sorted), cmp_u32);
	for (i = 0; i < n; i++) {
		struct fk_msg *m;
		struct imap_fetch one;

		if (i > 0 && sorted[i] == sorted[i - 1])
			continue;
		if ((m = msg_find(f, sorted[i])) == NULL)
			continue;
		fill_fetch(c, f, m, &one);
		one.has_size = true;
		one.size = m->size;
		one.has_date = true;
		one.internaldate = m->date;
		one.has_body = true;
		one.body_size = m->size;
		fetch_list_add(&fl, &one, m->emailid);
	}
	free(sorted);
	fs_end(c->fs, st, false, 0, error_r);

	for (i = 0; i < fl.n; i++) {
		char *data, *e = NULL;
		size_t len, off = 0;

		fe = &fl.f[i];
		if (body_read(c->fs->dir, fl.eid[i], &data, &len, &e) < 0) {
			fetch_list_free(&fl);
			ret = rerr(c, IMAP_FAIL_NET, error_r, "%s", e);
			free(e);
			return ret;
		}
		COUNT(c, bodies, 1);
		c->bytes_in += len;
		if (!sink_failed && h->begin != NULL &&
		    h->begin(h->ctx, fe->seq, len) < 0)
			sink_failed = true;
		for (k = 0; off < len; k++) {
			size_t cn = chunk_sizes[k % N_ELEMENTS(chunk_sizes)];

			if (cn > len - off)
				cn = len - off;
			if (!sink_failed && h->data != NULL &&
			    h->data(h->ctx, data + off, cn) < 0)
				sink_failed = true;
			off += cn;
		}
		if (!sink_failed && h->end != NULL && h->end(h->ctx) < 0)
			sink_failed = true;
		if (!sink_failed && h->done != NULL && h->done(h->ctx, fe) < 0)
			sink_failed = true;
		free(data);
	}
	fetch_list_free(&fl);
	if (sink_failed)
		return rerr(c, IMAP_FAIL_SINK, error_r,
			    "fetch_bodies: body handler failed");
	return 0;
}

static bool has_bare_lf(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return true;
	return false;
}

static int fr_append(struct remote *r, const char *name,
		     struct imap_append_msg *msgs, size_t n,
		     uint32_t *uidvalidity_r, char **error_r)
{
	struct fake_remote *c = FR(r);
	struct fk_state *st;
	struct fk_folder *f;
	char **data;
	size_t i;
	int ret = 0;
	char *refused = NULL;
	bool uidplus = (c->caps & IMAP_CAP_UIDPLUS) != 0;

	if (uidvalidity_r != NULL)
		*uidvalidity_r = 0;
	if (op_enter(c, "append", error_r) < 0)
		return -1;
	/* the literals: exactly size bytes from each reader */
	data = xcalloc(n + 1, sizeof(*data));
	for (i = 0; i < n; i++) {
		uint64_t got = 0;

		msgs[i].uid_r = 0;
		msgs[i].ok_r = false;
		if (msgs[i].size > FK_MAX_BODY) {
			ret = rerr(c, IMAP_FAIL_NO, error_r,
				   "append: message too large");
			goto out;
		}
		data[i] = xmalloc(msgs[i].size + 1);
		while (got < msgs[i].size) {
			long rd = msgs[i].read(msgs[i].ctx, data[i] + got,
					       (size_t)(msgs[i].size - got));

			if (rd <= 0 || (uint64_t)rd > msgs[i].size - got) {
				/* a short literal leaves the connection
				 * in the middle of a command */
				ret = rerr(c, IMAP_FAIL_SINK, error_r,
					   "append: reader of message %zu %s",
					   i, rd < 0 ? "failed" :
					   "gave the wrong number of bytes");
				c->broken = true;
				goto out;
			}
			got += (uint64_t)rd;
		}
		data[i][got] = '\0';
		c->bytes_out += got;
	}
	if (c_begin(c, &st, error_r) < 0) {
		ret = -1;
		goto out;
	}
	f = folder_find(st, name);
	if (f == NULL) {
		fs_end(c->fs, st, false, 0, error_r);
		ret = rerr(c, IMAP_FAIL_NO, error_r,
			   "append '%s': [TRYCREATE] no such mailbox", name);
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct fk_msg *m;
		char *e = NULL;

		/* a strict server: RFC 5322 lines end in CRLF */
		if (msgs[i].size == 0 || has_bare_lf(data[i], msgs[i].size)) {
			if (refused == NULL)
				refused = xasprintf("append '%s': message %zu "
						    "refused (%s)", name, i,
						    msgs[i].size ? "bare LF" :
						    "empty");
			continue;
		}
		m = msg_append(f);
		m->flags = msgs[i].flags & MF_ALL;
		m->date = msgs[i].date ? msgs[i].date : (int64_t)time(NULL);
		m->size = msgs[i].size;
		new_emailid(st, m->emailid);
		if (body_write(c->fs->dir, m->emailid, data[i], msgs[i].size,
			       &e) < 0) {
			fs_end(c->fs, st, false, 0, error_r);
			ret = rerr(c, IMAP_FAIL_NET, error_r, "%s", e);
			free(e);
			goto out;
		}
		msgs[i].ok_r = true;
		msgs[i].uid_r = uidplus ? m->uid : 0;
		COUNT(c, appends, 1);
	}
	if (uidplus && uidvalidity_r != NULL)
		*uidvalidity_r = f->uidvalidity;
	if (c_end(c, st, true, error_r) < 0) {
		ret = -1;
		goto out;
	}
	if (refused != NULL) {
		c->failure = IMAP_FAIL_NO;
		*error_r = refused;
		refused = NULL;
		ret = -1;
	}
out:
	for (i = 0; i < n; i++)
		free(data[i]);
	free(data);
	free(refused);
	return ret;
}

static int fr_store(struct remote *r, const struct imap_store_op *ops,
		    size_t n, char **error_r)
{
	struct fake_remote *c = FR(r);
	struct fk_state *st;
	struct fk_folder *f;
	size_t i, k;
	unsigned changes = 0;
	bool dirty = false;

	if (op_enter(c, "store", error_r) < 0)
		return -1;
	for (i = 0; i < n; i++)
		if (ops[i].unchangedsince != 0 && !c_condstore(c))
			return rerr(c, IMAP_FAIL_NO, error_r,
				    "store: BAD UNCHANGEDSINCE without CONDSTORE");
	if (c_begin(c, &st, error_r) < 0)
		return -1;
	if ((f = sel_folder(c, st, "store", error_r)) == NULL) {
		fs_end(c->fs, st, false, 0, error_r);
		return -1;
	}
	for (i = 0; i < n; i++) {
		struct uidrange *set;
		size_t n_set;

		if (!uidset_parse(ops[i].uidset, folder_star(f), &set,
				  &n_set)) {
			char *e2 = NULL;

			fs_end(c->fs, st, dirty, 0, &e2);
			free(e2);
			COUNT(c, stores, (unsigned)i);
			COUNT(c, flag_changes, changes);
			return rerr(c, IMAP_FAIL_NO, error_r,
				    "store: BAD uid set '%s'",
				    ops[i].uidset ? ops[i].uidset : "");
		}
		for (k = 0; k < f->n_msgs; k++) {
			struct fk_msg *m = &f->msgs[k];
			unsigned nf;

			if (!uidset_has(set, n_set, m->uid))
				continue;
			/* RFC 7162 3.1.3: a conditional store does not touch
			 * a message changed since (it lands in MODIFIED,
			 * which remote_ops does not report) */
			if (ops[i].unchangedsince != 0 &&
			    m->modseq > ops[i].unchangedsince)
				continue;
			nf = ops[i].add ? (m->flags | ops[i].flags) :
					  (m->flags & ~ops[i].flags);
			nf &= MF_ALL;
			if (nf == m->flags)
				continue;
			m->flags = nf;
			m->modseq = ++f->hms;
			changes++;
			dirty = true;
		}
		free(set);
	}
	COUNT(c, stores, (unsigned)n);
	COUNT(c, flag_changes, changes);
	if (c_end(c, st, dirty, error_r) < 0)
		return -1;
	return 0;
}

static int fr_expunge(struct remote *r, const char *uidset, char **error_r)
{
	struct fake_remote *c = FR(r);
	struct fk_state *st;
	struct fk_folder *f;
	struct uidrange *set;
	size_t n_set, i, nu = 0;
	uint32_t *u;
	uint64_t ms, *gm;
	char *e = NULL;
	int ret;

	if (op_enter(c, "expunge", error_r) < 0)
		return -1;
	if (c_begin(c, &st, error_r) < 0)
		return -1;
	if ((f = sel_folder(c, st, "expunge", error_r)) == NULL) {
		fs_end(c->fs, st, false, 0, error_r);
		return -1;
	}
	if (!uidset_parse(uidset, folder_star(f), &set, &n_set)) {
		fs_end(c->fs, st, false, 0, error_r);
		return rerr(c, IMAP_FAIL_NO, error_r,
			    "expunge: BAD uid set '%s'", uidset ? uidset : "");
	}
	u = xcalloc(f->n_msgs + 1, sizeof(*u));
	gm = xcalloc(f->n_msgs + 1, sizeof(*gm));
	for (i = 0; i < f->n_msgs; i++)
		if (uidset_has(set, n_set, f->msgs[i].uid)) {
			if ((c->caps & IMAP_CAP_XGM_EXT1) &&
			    gm_msgid_read(c->fs->dir, f->msgs[i].emailid,
					  &gm[nu], &e) < 0)
				break;
			u[nu++] = f->msgs[i].uid;
		}
	free(set);
	if (e != NULL)
		goto body_fail;
	if (nu > 0) {
		ms = ++f->hms;
		for (i = 0; i < nu; i++)
			msg_remove(f, u[i], ms);
	}
	if (gm_expunge_everywhere(c, st, f, gm, nu, &e) < 0)
		goto body_fail;
	free(u);
	free(gm);
	COUNT(c, expunges, (unsigned)nu);
	if (c_end(c, st, nu > 0, error_r) < 0)
		return -1;
	return 0;
body_fail:
	/* a body file unreadable: nothing is saved */
	free(u);
	free(gm);
	fs_end(c->fs, st, false, 0, error_r);
	ret = rerr(c, IMAP_FAIL_NET, error_r, "%s", e);
	free(e);
	return ret;
}

/* UID MOVE, or UID COPY (copy: the source keeps its messages). */
static int move_or_copy(struct remote *r, const char *uidset, const char *dest,
			struct imap_copyuid *map_r, bool copy, char **error_r)
{
	struct fake_remote *c = FR(r);
	const char *op = copy ? "copy" : "move";
	struct fk_state *st;
	struct fk_folder *f, *d;
	struct uidrange *set;
	size_t n_set, i, nm = 0;
	struct fk_msg *mv;
	uint32_t *su, *du;
	uint64_t ms;

	memset(map_r, 0, sizeof(*map_r));
	if (op_enter(c, op, error_r) < 0)
		return -1;
	if (c_begin(c, &st, error_r) < 0)
		return -1;
	if ((f = sel_folder(c, st, op, error_r)) == NULL) {
		fs_end(c->fs, st, false, 0, error_r);
		return -1;
	}
	if ((d = folder_find(st, dest)) == NULL) {
		fs_end(c->fs, st, false, 0, error_r);
		return rerr(c, IMAP_FAIL_NO, error_r,
			    "%s to '%s': [TRYCREATE] no such mailbox", op,
			    dest);
	}
	if (!uidset_parse(uidset, folder_star(f), &set, &n_set)) {
		fs_end(c->fs, st, false, 0, error_r);
		return rerr(c, IMAP_FAIL_NO, error_r,
			    "%s: BAD uid set '%s'", op, uidset ? uidset : "");
	}
	mv = xcalloc(f->n_msgs + 1, sizeof(*mv));
	for (i = 0; i < f->n_msgs; i++)
		if (uidset_has(set, n_set, f->msgs[i].uid))
			mv[nm++] = f->msgs[i];
	free(set);
	su = xcalloc(nm + 1, sizeof(*su));
	du = xcalloc(nm + 1, sizeof(*du));
	if (nm > 0) {
		ms = copy ? 0 : ++f->hms;
		for (i = 0; i < nm; i++) {
			su[i] = mv[i].uid;
			if (!copy)
				msg_remove(f, mv[i].uid, ms);
		}
		/* RFC 8474 5.1: the EMAILID stays the same across a move;
		 * 5.1 allows a copy to keep it too, as Dovecot's GUID does */
		for (i = 0; i < nm; i++) {
			struct fk_msg *m = msg_append(d);

			m->flags = mv[i].flags;
			m->date = mv[i].date;
			m->size = mv[i].size;
			memcpy(m->emailid, mv[i].emailid, sizeof(m->emailid));
			du[i] = m->uid;
		}
		if (c->caps & IMAP_CAP_UIDPLUS) {
			map_r->uidvalidity = d->uidvalidity;
			map_r->src = uidset_make(su, nm);
			map_r->dst = uidset_make(du, nm);
		}
	}
	free(mv);
	free(su);
	free(du);
	if (copy)
		COUNT(c, copies, (unsigned)nm);
	else
		COUNT(c, moves, (unsigned)nm);
	if (c_end(c, st, nm > 0, error_r) < 0)
		return -1;
	return 0;
}

static int fr_move(struct remote *r, const char *uidset, const char *dest,
		   struct imap_copyuid *map_r, char **error_r)
{
	return move_or_copy(r, uidset, dest, map_r, false, error_r);
}

static int fr_copy(struct remote *r, const char *uidset, const char *dest,
		   struct imap_copyuid *map_r, char **error_r)
{
	return move_or_copy(r, uidset, dest, map_r, true, error_r);
}

/* A SELECT and a UID COPY per source, as a server runs them in one
 * flight: a failed SELECT leaves no folder selected, so its COPY fails
 * too; one that finds another UIDVALIDITY still runs its COPY there (the
 * client learns of it only after). A fault armed on "copy_from_select"
 * fails the nth source's SELECT. */
static int fr_copy_from_many(struct remote *r,
			     const struct remote_copy_src *srcs, size_t n,
			     const char *dest, struct imap_copyuid *maps_r,
			     enum imap_copy_src_result *res_r, char **error_r)
{
	struct fake_remote *c = FR(r);
	struct imap_selected sel;
	char *first = NULL, *err = NULL;
	size_t i;

	*error_r = NULL;
	for (i = 0; i < n; i++) {
		memset(&maps_r[i], 0, sizeof(maps_r[i]));
		res_r[i] = IMAP_COPY_SRC_UNSELECTED;
	}
	for (i = 0; i < n; i++) {
		bool selected = false;

		if (op_enter(c, "copy_from_select", &err) == 0 &&
		    fr_select(r, srcs[i].name, NULL, NULL, NULL, NULL, &sel,
			      &err) == 0) {
			selected = srcs[i].uidvalidity == 0 ||
				   sel.uidvalidity == srcs[i].uidvalidity;
			if (!selected)
				err = xasprintf("UIDVALIDITY of '%s' changed",
						srcs[i].name);
		} else {
			FREE_AND_NULL(c->sel);
		}
		if (c->broken)
			goto broken;
		if (err != NULL) {
			if (first == NULL)
				first = err;
			else
				free(err);
			err = NULL;
		}
		if (c->sel == NULL)
			continue;   /* the COPY finds no folder selected */
		if (fr_copy(r, srcs[i].uidset, dest, &maps_r[i], &err) < 0) {
			if (c->broken)
				goto broken;
			if (selected)
				res_r[i] = IMAP_COPY_SRC_REFUSED;
			if (first == NULL)
				first = err;
			else
				free(err);
			err = NULL;
			continue;
		}
		if (selected)
			res_r[i] = IMAP_COPY_SRC_OK;
		else
			imap_copyuid_release(&maps_r[i]);
	}
	c->failure = IMAP_FAIL_NONE;
	*error_r = first;
	return 0;
broken:
	for (i = 0; i < n; i++) {
		imap_copyuid_release(&maps_r[i]);
		res_r[i] = IMAP_COPY_SRC_UNSELECTED;
	}
	free(first);
	*error_r = err;
	return -1;
}

/* Does the header section contain a Message-ID field whose (unfolded)
 * value contains needle, case-insensitively (SEARCH HEADER semantics)? */
static bool header_msgid_contains(const char *h, size_t len,
				  const char *needle)
{
	size_t i = 0;

	while (i < len) {
		size_t eol = i;

		while (eol < len && h[eol] != '\n')
			eol++;
		if (eol - i >= 11 && strncasecmp(h + i, "Message-ID:", 11) == 0) {
			/* value up to the end of the folded field */
			char *val = xmalloc(len - i + 1);
			size_t vn = 0, j = i + 11;
			bool hit;

			for (;;) {
				for (; j < len && h[j] != '\n'; j++)
					if (h[j] != '\r')
						val[vn++] = h[j];
				if (j + 1 < len && (h[j + 1] == ' ' ||
						    h[j + 1] == '\t')) {
					j++;
					continue;
				}
				break;
			}
			val[vn] = '\0';
			hit = strcasestr(val, needle) != NULL;
			free(val);
			if (hit)
				return true;
		}
		i = eol + 1;
	}
	return false;
}

static int fr_search_msgid(struct remote *r, uint32_t min_uid,
			   const char *msgid, uint32_t **uids_r, size_t *n_r,
			   char **error_r)
{
	struct fake_remote *c = FR(r);
	struct fk_state *st;
	struct fk_folder *f;
	struct fk_msg *cand;
	uint32_t *out;
	size_t n = 0, nc = 0, i;

	if (op_enter(c, "search_msgid", error_r) < 0)
		return -1;
	if (c_begin(c, &st, error_r) < 0)
		return -1;
	if ((f = sel_folder(c, st, "search_msgid", error_r)) == NULL) {
		fs_end(c->fs, st, false, 0, error_r);
		return -1;
	}
	cand = xcalloc(f->n_msgs + 1, sizeof(*cand));
	for (i = 0; i < f->n_msgs; i++)
		if (f->msgs[i].uid >= min_uid)
			cand[nc++] = f->msgs[i];
	fs_end(c->fs, st, false, 0, error_r);
	COUNT(c, searches, 1);
	out = xcalloc(nc + 1, sizeof(*out));
	for (i = 0; i < nc; i++) {
		char *data, *e = NULL;
		size_t len;

		if (msgid == NULL) {
			out[n++] = cand[i].uid;
			continue;
		}
		if (body_read(c->fs->dir, cand[i].emailid, &data, &len,
			      &e) < 0) {
			free(out);
			free(cand);
			rerr(c, IMAP_FAIL_NET, error_r, "%s", e);
			free(e);
			return -1;
		}
		if (header_msgid_contains(data, header_len(data, len), msgid))
			out[n++] = cand[i].uid;
		free(data);
	}
	free(cand);
	*uids_r = out;
	*n_r = n;
	return 0;
}

static uint64_t fr_bytes_in(struct remote *r)
{
	return FR(r)->bytes_in;
}

static uint64_t fr_bytes_out(struct remote *r)
{
	return FR(r)->bytes_out;
}

static void fr_close(struct remote *r)
{
	struct fake_remote *c = FR(r);

	if (c == NULL)
		return;
	free(c->sel);
	free(c);
}

/* The STOREs, the expunge and the APPENDs "in one flight": one after
 * the other here, the APPENDs whatever became of the rest. */
static int fr_store_expunge_append(struct remote *r,
				   const struct imap_store_op *ops, size_t n,
				   const char *uidset, const char *name,
				   struct imap_append_msg *msgs, size_t n_msgs,
				   uint32_t *uidvalidity_r,
				   char **append_error_r, char **error_r)
{
	char *aerr = NULL;
	int ret = 0;

	*append_error_r = NULL;
	if (n > 0)
		ret = fr_store(r, ops, n, error_r);
	if (ret == 0 && uidset != NULL)
		ret = fr_expunge(r, uidset, error_r);
	if (fr_append(r, name, msgs, n_msgs, uidvalidity_r, &aerr) < 0)
		*append_error_r = aerr ? aerr : xstrdup("APPEND failed");
	else
		free(aerr);
	return ret;
}

static const struct remote_ops fake_remote_ops = {
	.caps = fr_caps,
	.qresync = fr_qresync,
	.condstore = fr_condstore,
	.failure = fr_failure,
	.broken = fr_broken,
	.list = fr_list,
	.status = fr_status,
	.create = fr_create,
	.rename = fr_rename,
	.select = fr_select,
	.uids = fr_uids,
	.fetch_flags = fr_fetch_flags,
	.fetch_idents = fr_fetch_idents,
	.fetch_bodies = fr_fetch_bodies,
	.append = fr_append,
	.store = fr_store,
	.expunge = fr_expunge,
	.store_expunge_append = fr_store_expunge_append,
	.move = fr_move,
	.copy = fr_copy,
	.copy_from_many = fr_copy_from_many,
	.search_msgid = fr_search_msgid,
	.bytes_in = fr_bytes_in,
	.bytes_out = fr_bytes_out,
	.close = fr_close,
};

struct remote *fake_remote_open(struct fake_server *fs)
{
	struct fake_remote *c = xcalloc(1, sizeof(*c));

	c->r.ops = &fake_remote_ops;
	c->fs = fs;
	c->caps = fake_server_caps(fs);
	pthread_mutex_lock(&fs->ctr_mu);
	fs->ctr.connects++;
	pthread_mutex_unlock(&fs->ctr_mu);
	return &c->r;
}

static int factory_open(void *ctx, struct remote **r_r,
			enum imap_failure *failure_r, char **error_r)
{
	struct fake_server *fs = ctx;
	struct fk_fault *ft = &fs->fault;
	enum imap_failure f = IMAP_FAIL_NONE;

	pthread_mutex_lock(&fs->ctr_mu);
	if (ft->nth > 0 && strcmp(ft->op, "connect") == 0 && --ft->nth == 0)
		f = ft->failure;
	pthread_mutex_unlock(&fs->ctr_mu);
	if (f != IMAP_FAIL_NONE) {
		*failure_r = f;
		return err(error_r, "connect: injected failure");
	}
	*r_r = fake_remote_open(fs);
	return 0;
}

void fake_server_factory(struct fake_server *fs, struct remote_factory *rf_r)
{
	rf_r->open = factory_open;
	rf_r->ctx = fs;
	rf_r->login_hint = NULL;
	rf_r->open_first = NULL;
}

/* ---------------------------------------------------------------------- */
/* direct access for tests */

void fake_msgs_free(struct fake_msg *msgs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(msgs[i].data);
	free(msgs);
}

void fake_names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int cmp_str_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int fake_folder_names(struct fake_server *fs, char ***names_r, size_t *n_r,
		      char **error_r)
{
	struct fk_state *st;
	char **names;
	size_t i;

	if (fs_begin(fs, &st, error_r) < 0)
		return -1;
	names = xcalloc(st->n_folders + 1, sizeof(*names));
	for (i = 0; i < st->n_folders; i++)
		names[i] = xstrdup(st->folders[i]->name);
	qsort(names, st->n_folders, sizeof(*names), cmp_str_ptr);
	*names_r = names;
	*n_r = st->n_folders;
	return fs_end(fs, st, false, 0, error_r);
}

int fake_folder_info(struct fake_server *fs, const char *name,
		     struct fake_folder_info *info_r, char **error_r)
{
	struct fk_state *st;
	struct fk_folder *f;

	if (fs_begin(fs, &st, error_r) < 0)
		return -1;
	f = folder_find(st, name);
	if (f != NULL) {
		info_r->uidvalidity = f->uidvalidity;
		info_r->uidnext = f->uidnext;
		info_r->exists = (uint32_t)f->n_msgs;
		info_r->highestmodseq = f->hms;
		info_r->attrs = f->attrs;
	}
	fs_end(fs, st, false, 0, error_r);
	return f != NULL ? 0 : 1;
}

int fake_folder_create(struct fake_server *fs, const char *name,
		       char **error_r)
{
	struct fk_state *st;

	if (!valid_folder_name(name))
		return err(error_r, "invalid folder name '%s'", name);
	if (fs_begin(fs, &st, error_r) < 0)
		return -1;
	if (folder_find(st, name) != NULL) {
		fs_end(fs, st, false, 0, error_r);
		return err(error_r, "folder '%s' exists", name);
	}
	folder_add(st, name);
	return fs_end(fs, st, true, 0, error_r);
}

int fake_folder_set_attrs(struct fake_server *fs, const char *name,
			  unsigned attrs, char **error_r)
{
	struct fk_state *st;
	struct fk_folder *f;

	if (fs_begin(fs, &st, error_r) < 0)
		return -1;
	if ((f = folder_find(st, name)) == NULL) {
		fs_end(fs, st, false, 0, error_r);
		return err(error_r, "no folder '%s'", name);
	}
	f->attrs = attrs;
	return fs_end(fs, st, true, 0, error_r);
}

int fake_folder_delete(struct fake_server *fs, const char *name,
		       char **error_r)
{
	struct fk_state *st;
	struct fk_folder *f;

	if (fs_begin(fs, &st, error_r) < 0)
		return -1;
	if ((f = folder_find(st, name)) == NULL) {
		fs_end(fs, st, false, 0, error_r);
		return err(error_r, "no folder '%s'", name);
	}
	folder_remove(st, f);
	return fs_end(fs, st, true, 0, error_r);
}

int fake_folder_reset(struct fake_server *fs, const char *name,
		      bool new_emailids, uint32_t *uidvalidity_r,
		      char **error_r)
{
	struct fk_state *st;
	struct fk_folder *f;
	size_t i;

	if (fs_begin(fs, &st, error_r) < 0)
		return -1;
	if ((f = folder_find(st, name)) == NULL) {
		fs_end(fs, st, false, 0, error_r);
		return err(error_r, "no folder '%s'", name);
	}
	f->uidvalidity = st->next_uidvalidity++;
	f->hms = 1;
	f->n_gone = 0;
	for (i = 0; i < f->n_msgs; i++) {
		struct fk_msg *m = &f->msgs[i];

		m->uid = (uint32_t)i + 1;
		m->modseq = ++f->hms;
		if (new_emailids) {
			char *data, eid[32];
			size_t len;
			int ret;

			if (body_read(fs->dir, m->emailid, &data, &len,
				      error_r) < 0)
				return fs_end(fs, st, false, -1, error_r);
			new_emailid(st, eid);
			ret = body_write(fs->dir, eid, data, len, error_r);
			free(data);
			if (ret < 0)
				return fs_end(fs, st, false, -1, error_r);
			memcpy(m->emailid, eid, sizeof(eid));
		}
	}
	f->uidnext = (uint32_t)f->n_msgs + 1;
	if (uidvalidity_r != NULL)
		*uidvalidity_r = f->uidvalidity;
	return fs_end(fs, st, true, 0, error_r);
}

int fake_msg_add(struct fake_server *fs, const char *folder,
		 const void *data, size_t len, unsigned flags, int64_t date,
		 uint32_t *uid_r, char **error_r)
{
	struct fk_state *st;
	struct fk_folder *f;
	struct fk_msg *m;
	const char *p = data;
	char *crlf = xmalloc(len * 2 + 1);
	size_t n = 0, i;

	for (i = 0; i < len; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			crlf[n++] = '\r';
		crlf[n++] = p[i];
	}
	if (n == 0) {
		free(crlf);
		return err(error_r, "empty message");
	}
	if (fs_begin(fs, &st, error_r) < 0) {
		free(crlf);
		return -1;
	}
	if ((f = folder_find(st, folder)) == NULL) {
		free(crlf);
		fs_end(fs, st, false, 0, error_r);
		return err(error_r, "no folder '%s'", folder);
	}
	m = msg_append(f);
	m->flags = flags & MF_ALL;
	m->date = date ? date : (int64_t)time(NULL);
	m->size = n;
	new_emailid(st, m->emailid);
	if (uid_r != NULL)
		*uid_r = m->uid;
	if (body_write(fs->dir, m->emailid, crlf, n, error_r) < 0) {
		free(crlf);
		return fs_end(fs, st, false, -1, error_r);
	}
	free(crlf);
	return fs_end(fs, st, true, 0, error_r);
}

int fake_msgs_add(struct fake_server *fs, const char *folder,
		  const char *const *msgs, size_t n, unsigned flags,
		  char **error_r)
{
	struct fk_state *st;
	struct fk_folder *f;
	size_t i, j, k;

	if (fs_begin(fs, &st, error_r) < 0)
		return -1;
	if ((f = folder_find(st, folder)) == NULL) {
		fs_end(fs, st, false, 0, error_r);
		return err(error_r, "no folder '%s'", folder);
	}
	for (i = 0; i < n; i++) {
		const char *p = msgs[i];
		size_t len = strlen(p);
		char *crlf = xmalloc(len * 2 + 1);
		struct fk_msg *m;

		for (j = k = 0; j < len; j++) {
			if (p[j] == '\n' && (j == 0 || p[j - 1] != '\r'))
				crlf[k++] = '\r';
			crlf[k++] = p[j];
		}
		m = msg_append(f);
		m->flags = flags & MF_ALL;
		m->date = 1700000000;
		m->size = k;
		new_emailid(st, m->emailid);
		if (body_write(fs->dir, m->emailid, crlf, k, error_r) < 0) {
			free(crlf);
			return fs_end(fs, st, false, -1, error_r);
		}
		free(crlf);
	}
	return fs_end(fs, st, true, 0, error_r);
}

int fake_msg_set_flags(struct fake_server *fs, const char *folder,
		       uint32_t uid, unsigned flags, char **error_r)
{
	struct fk_state *st;
	struct fk_folder *f;
	struct fk_msg *m;

	if (fs_begin(fs, &st, error_r) < 0)
		return -1;
	if ((f = folder_find(st, folder)) == NULL ||
	    (m = msg_find(f, uid)) == NULL) {
		fs_end(fs, st, false, 0, error_r);
		return err(error_r, "no message %s/%" PRIu32, folder, uid);
	}
	if (m->flags != (flags & MF_ALL)) {
		m->flags = flags & MF_ALL;
		m->modseq = ++f->hms;
	}
	return fs_end(fs, st, true, 0, error_r);
}

int fake_msg_expunge(struct fake_server *fs, const char *folder,
		     uint32_t uid, char **error_r)
{
	struct fk_state *st;
	struct fk_folder *f;

	if (fs_begin(fs, &st, error_r) < 0)
		return -1;
	if ((f = folder_find(st, folder)) == NULL ||
	    msg_find(f, uid) == NULL) {
		fs_end(fs, st, false, 0, error_r);
		return err(error_r, "no message %s/%" PRIu32, folder, uid);
	}
	msg_remove(f, uid, ++f->hms);
	return fs_end(fs, st, true, 0, error_r);
}

int fake_msg_move(struct fake_server *fs, const char *folder, uint32_t uid,
		  const char *dest, uint32_t *new_uid_r, char **error_r)
{
	struct fk_state *st;
	struct fk_folder *f, *d;
	struct fk_msg *m, old, *nm;

	if (fs_begin(fs, &st, error_r) < 0)
		return -1;
	if ((f = folder_find(st, folder)) == NULL ||
	    (m = msg_find(f, uid)) == NULL || (d = folder_find(st, dest)) == NULL) {
		fs_end(fs, st, false, 0, error_r);
		return err(error_r, "no message %s/%" PRIu32 " or no folder '%s'",
			   folder, uid, dest);
	}
	old = *m;
	msg_remove(f, uid, ++f->hms);
	nm = msg_append(d);
	nm->flags = old.flags;
	nm->date = old.date;
	nm->size = old.size;
	memcpy(nm->emailid, old.emailid, sizeof(old.emailid));
	if (new_uid_r != NULL)
		*new_uid_r = nm->uid;
	return fs_end(fs, st, true, 0, error_r);
}

int fake_folder_messages(struct fake_server *fs, const char *folder,
			 struct fake_msg **msgs_r, size_t *n_r,
			 char **error_r)
{
	struct fk_state *st;
	struct fk_folder *f;
	struct fake_msg *out;
	size_t i, n;

	if (fs_begin(fs, &st, error_r) < 0)
		return -1;
	if ((f = folder_find(st, folder)) == NULL) {
		fs_end(fs, st, false, 0, error_r);
		return err(error_r, "no folder '%s'", folder);
	}
	n = f->n_msgs;
	out = xcalloc(n + 1, sizeof(*out));
	for (i = 0; i < n; i++) {
		const struct fk_msg *m = &f->msgs[i];

		out[i].uid = m->uid;
		out[i].flags = m->flags;
		out[i].modseq = m->modseq;
		out[i].internaldate = m->date;
		memcpy(out[i].emailid, m->emailid, sizeof(m->emailid));
		if (body_read(fs->dir, m->emailid, &out[i].data, &out[i].size,
			      error_r) < 0) {
			fake_msgs_free(out, i);
			return fs_end(fs, st, false, -1, error_r);
		}
	}
	*msgs_r = out;
	*n_r = n;
	return fs_end(fs, st, false, 0, error_r);
}

int fake_server_dump(struct fake_server *fs, char **text_r, char **error_r)
{
	struct fk_state *st;
	char *text = NULL;
	size_t len = 0, i, j;
	FILE *fp;
	struct fk_folder **sorted;

	if (fs_begin(fs, &st, error_r) < 0)
		return -1;
	fp = open_memstream(&text, &len);
	if (fp == NULL)
		BUG("open_memstream failed");
	sorted = xcalloc(st->n_folders + 1, sizeof(*sorted));
	memcpy(sorted, st->folders, st->n_folders * sizeof(*sorted));
	for (i = 1; i < st->n_folders; i++)
		for (j = i; j > 0 && strcmp(sorted[j - 1]->name,
					     sorted[j]->name) > 0; j--) {
			struct fk_folder *t = sorted[j];

			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	for (i = 0; i < st->n_folders; i++) {
		const struct fk_folder *f = sorted[i];

		fprintf(fp, "folder '%s' uidvalidity=%" PRIu32 " uidnext=%"
			PRIu32 " highestmodseq=%" PRIu64 " expunged=%zu\n",
			f->name, f->uidvalidity, f->uidnext, f->hms, f->n_gone);
		for (j = 0; j < f->n_msgs; j++) {
			const struct fk_msg *m = &f->msgs[j];
			char *data, *e = NULL, fl[MF_COUNT + 1];
			size_t dlen;
			uint64_t h = 0;

			if (body_read(fs->dir, m->emailid, &data, &dlen,
				      &e) == 0) {
				h = fnv1a(data, dlen);
				free(data);
			} else {
				free(e);
			}
			flags_to_maildir(m->flags, fl);
			fprintf(fp, "  uid=%" PRIu32 " flags=%s modseq=%" PRIu64
				" date=%" PRId64 " size=%" PRIu64
				" emailid=%s digest=%016" PRIx64 "\n",
				m->uid, fl, m->modseq, m->date, m->size,
				m->emailid, h);
		}
	}
	free(sorted);
	if (fclose(fp) != 0)
		BUG("open_memstream write failed");
	*text_r = text;
	return fs_end(fs, st, false, 0, error_r);
}
