/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * remote-imap.c - the engine's server interface over imap/client.h:
 * folder names converted between UTF-8 with '/' and the wire form
 * (modified UTF-7 with the server's delimiter), everything else passed on.
 */
#include "common.h"
#include "sync/remote-imap.h"
#include "imap/utf7.h"
#include "util/log.h"

struct remote_imap {
	struct remote r;
	struct imap_client *c;
	char delim;
	bool have_delim;
};

#define RI(x) ((struct remote_imap *)(x))

void remote_folders_free(struct remote_folder *f, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(f[i].name);
	free(f);
}

char *remote_imap_wire_name(const char *name, char delim)
{
	char *wire = NULL, *p;

	if (imap_utf7_encode(name, strlen(name), &wire) < 0)
		return NULL;
	if (delim != 0 && delim != '/')
		for (p = wire; *p; p++)
			if (*p == '/')
				*p = delim;
	return wire;
}

static char get_delim(struct remote_imap *ri)
{
	if (!ri->have_delim) {
		ri->delim = imap_client_delimiter(ri->c);
		ri->have_delim = true;
	}
	return ri->delim;
}

static int ri_delimiter(struct remote *r)
{
	return RI(r)->have_delim ? (unsigned char)RI(r)->delim : -1;
}

static void ri_set_delimiter(struct remote *r, char delim)
{
	RI(r)->delim = delim;
	RI(r)->have_delim = true;
}

static char *wire(struct remote_imap *ri, const char *name, char **error_r)
{
	char *w = remote_imap_wire_name(name, get_delim(ri));

	if (w == NULL)
		*error_r = xasprintf("folder name '%s' is not valid UTF-8", name);
	return w;
}

static unsigned ri_caps(struct remote *r) { return imap_client_caps(RI(r)->c); }
static bool ri_qresync(struct remote *r) { return imap_client_qresync(RI(r)->c); }
static bool ri_condstore(struct remote *r) { return imap_client_condstore(RI(r)->c); }
static enum imap_failure ri_failure(struct remote *r) { return imap_client_failure(RI(r)->c); }
static bool ri_broken(struct remote *r) { return imap_client_broken(RI(r)->c); }
static bool ri_own_state(struct remote *r, struct imap_own_state *s_r)
{
	return imap_client_own_state(RI(r)->c, s_r);
}
static void ri_expect_gone(struct remote *r, const char *name,
			   const char *uidset)
{
	char *err = NULL, *w = wire(RI(r), name, &err);

	if (w != NULL)
		imap_client_expect_gone(RI(r)->c, w, uidset);
	free(w);
	free(err);
}
static int64_t ri_min_wait_ns(struct remote *r) { return imap_client_min_wait_ns(RI(r)->c); }
static uint64_t ri_bytes_in(struct remote *r) { return imap_client_bytes_in(RI(r)->c); }
static uint64_t ri_bytes_out(struct remote *r) { return imap_client_bytes_out(RI(r)->c); }

/* imap_folder list -> remote_folder list; learns the delimiter. */
static void convert_list(struct remote *r, struct imap_folder *f, size_t n,
			 struct remote_folder **f_r, size_t *n_r)
{
	struct remote_folder *out;
	size_t i, m = 0;
	bool learnt = false;

	out = xcalloc(n + 1, sizeof(*out));
	for (i = 0; i < n; i++) {
		if (f[i].name == NULL) {
			log_warn("skipping server folder '%s': its name cannot be "
				 "mapped to UTF-8 safely", f[i].wire);
			continue;
		}
		if (f[i].delim && !learnt) {
			/* LIST is the authority, over a delimiter preset
			 * from an earlier run */
			RI(r)->delim = f[i].delim;
			RI(r)->have_delim = true;
			learnt = true;
		}
		out[m].name = xstrdup(f[i].name);
		out[m].attrs = f[i].attrs;
		m++;
	}
	imap_folders_free(f, n);
	*f_r = out;
	*n_r = m;
}

static int ri_list(struct remote *r, struct remote_folder **f_r, size_t *n_r,
		   char **error_r)
{
	struct imap_folder *f = NULL;
	size_t n = 0;

	if (imap_list_folders(RI(r)->c, &f, &n, error_r) < 0)
		return -1;
	convert_list(r, f, n, f_r, n_r);
	return 0;
}

static char **wires_of(struct remote *r, const char *const *names, size_t n,
		       char **error_r)
{
	char **w = xcalloc(n + 1, sizeof(*w));
	size_t i;

	for (i = 0; i < n; i++) {
		w[i] = wire(RI(r), names[i], error_r);
		if (w[i] == NULL) {
			while (i-- > 0)
				free(w[i]);
			free(w);
			return NULL;
		}
	}
	return w;
}

static void wires_free(char **w, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(w[i]);
	free(w);
}

static int ri_status(struct remote *r, const char *const *names, size_t n,
		     struct imap_status_data *st_r, bool *ok_r, char **error_r)
{
	char **w = wires_of(r, names, n, error_r);
	int ret;

	if (w == NULL)
		return -1;
	ret = imap_status_batch(RI(r)->c, (const char *const *)w, n, st_r,
				ok_r, error_r);
	wires_free(w, n);
	return ret;
}

static int ri_status_list(struct remote *r, const char *const *names,
			  size_t n, struct imap_status_data *st_r, bool *ok_r,
			  struct remote_folder **f_r, size_t *n_r,
			  char **error_r)
{
	char **w = wires_of(r, names, n, error_r);
	struct imap_folder *f = NULL;
	size_t nf = 0;
	int ret;

	if (w == NULL)
		return -1;
	ret = imap_status_then_list(RI(r)->c, (const char *const *)w, n, st_r,
				    ok_r, &f, &nf, error_r);
	wires_free(w, n);
	if (ret < 0)
		return -1;
	convert_list(r, f, nf, f_r, n_r);
	return 0;
}

#define WITH_WIRE(name, call) \
	do { \
		char *w_ = wire(RI(r), (name), error_r); \
		int ret_; \
		if (w_ == NULL) \
			return -1; \
		ret_ = (call); \
		free(w_); \
		return ret_; \
	} while (0)

static int ri_create(struct remote *r, const char *name, char **error_r)
{
	WITH_WIRE(name, imap_create(RI(r)->c, w_, error_r));
}

static int ri_rename(struct remote *r, const char *from, const char *to,
		     char **error_r)
{
	char *wf = wire(RI(r), from, error_r), *wt;
	int ret;

	if (wf == NULL)
		return -1;
	wt = wire(RI(r), to, error_r);
	if (wt == NULL) {
		free(wf);
		return -1;
	}
	ret = imap_rename(RI(r)->c, wf, wt, error_r);
	free(wf);
	free(wt);
	return ret;
}

static int ri_select(struct remote *r, const char *name,
		     const struct imap_qresync *qr, imap_fetch_cb *fcb,
		     imap_vanished_cb *vcb, void *ctx,
		     struct imap_selected *sel_r, char **error_r)
{
	WITH_WIRE(name, imap_select(RI(r)->c, w_, false, qr, fcb, vcb, ctx,
				    sel_r, error_r));
}

static int ri_select_ahead(struct remote *r, const char *name,
			   uint32_t uidvalidity, const struct imap_qresync *qr,
			   imap_fetch_cb *fcb, imap_vanished_cb *vcb, void *ctx,
			   struct imap_selected *sel_r, imap_ahead_done_fn *done,
			   void *done_ctx, char **error_r)
{
	WITH_WIRE(name, imap_select_ahead_qr(RI(r)->c, w_, uidvalidity, qr,
					     fcb, vcb, ctx, sel_r, done,
					     done_ctx, error_r));
}

static int ri_flush(struct remote *r, char **error_r)
{
	return imap_client_flush(RI(r)->c, error_r);
}

static int ri_uids(struct remote *r, uint32_t **uids_r, size_t *n_r,
		   char **error_r)
{
	return imap_search(RI(r)->c, "ALL", uids_r, n_r, error_r);
}

static int ri_fetch_flags(struct remote *r, const char *uidset,
			  uint64_t changedsince, bool vanished,
			  imap_fetch_cb *fcb, imap_vanished_cb *vcb, void *ctx,
			  char **error_r)
{
	return imap_fetch_flags(RI(r)->c, uidset, changedsince, vanished, fcb,
				vcb, ctx, error_r);
}

static int ri_fetch_idents(struct remote *r, const char *uidset,
			   imap_fetch_cb *fcb, void *ctx, char **error_r)
{
	return imap_fetch_idents(RI(r)->c, uidset, fcb, ctx, error_r);
}

static int ri_fetch_bodies(struct remote *r, const uint32_t *uids, size_t n,
			   const struct imap_body_handler *h, char **error_r)
{
	return imap_fetch_bodies(RI(r)->c, uids, n, 0, h, error_r);
}

static int ri_fetch_bodies_start(struct remote *r, const uint32_t *uids,
				 size_t n, const struct imap_body_handler *h,
				 char **error_r)
{
	return imap_fetch_bodies_start(RI(r)->c, uids, n, 0, h, error_r);
}

static int ri_fetch_bodies_end(struct remote *r, char **error_r)
{
	return imap_fetch_bodies_end(RI(r)->c, error_r);
}

static int ri_append(struct remote *r, const char *name,
		     struct imap_append_msg *msgs, size_t n,
		     uint32_t *uidvalidity_r, char **error_r)
{
	WITH_WIRE(name, imap_append_batch(RI(r)->c, w_, msgs, n, uidvalidity_r,
					  error_r));
}

static int ri_store(struct remote *r, const struct imap_store_op *ops,
		    size_t n, char **error_r)
{
	return imap_store_batch(RI(r)->c, ops, n, NULL, error_r);
}

static int ri_expunge(struct remote *r, const char *uidset, char **error_r)
{
	return imap_expunge_uids(RI(r)->c, uidset, error_r);
}

static int ri_store_expunge(struct remote *r, const struct imap_store_op *ops,
			    size_t n, const char *uidset, char **error_r)
{
	return imap_store_expunge(RI(r)->c, ops, n, uidset, error_r);
}

static int ri_store_expunge_append(struct remote *r,
				   const struct imap_store_op *ops, size_t n,
				   const char *uidset, const char *name,
				   struct imap_append_msg *msgs, size_t n_msgs,
				   uint32_t *uidvalidity_r,
				   char **append_error_r, char **error_r)
{
	*append_error_r = NULL;
	WITH_WIRE(name, imap_store_expunge_append(RI(r)->c, ops, n, uidset,
						  w_, msgs, n_msgs,
						  uidvalidity_r,
						  append_error_r, error_r));
}

static int ri_store_expunge_append_start(struct remote *r,
					 const struct imap_store_op *ops,
					 size_t n, const char *uidset,
					 const char *name,
					 struct imap_append_msg *msgs,
					 size_t n_msgs,
					 struct imap_tail **tail_r,
					 char **append_error_r, char **error_r)
{
	*tail_r = NULL;
	*append_error_r = NULL;
	WITH_WIRE(name, imap_store_expunge_append_start(RI(r)->c, ops, n,
							uidset, w_, msgs,
							n_msgs, tail_r,
							append_error_r,
							error_r));
}

static int ri_tail_end(struct remote *r, struct imap_tail **tail,
		       char **append_error_r, struct imap_own_state *own_r,
		       bool *own_ok_r, char **error_r)
{
	return imap_tail_end(RI(r)->c, tail, NULL, append_error_r, own_r,
			     own_ok_r, error_r);
}

static int ri_expunge_marked(struct remote *r, const char *uidset,
			     char **error_r)
{
	return imap_expunge_marked(RI(r)->c, uidset, error_r);
}

static int ri_move(struct remote *r, const char *uidset, const char *dest,
		   struct imap_copyuid *map_r, char **error_r)
{
	WITH_WIRE(dest, imap_move(RI(r)->c, uidset, w_, map_r, error_r));
}

static int ri_copy(struct remote *r, const char *uidset, const char *dest,
		   struct imap_copyuid *map_r, char **error_r)
{
	WITH_WIRE(dest, imap_copy(RI(r)->c, uidset, w_, map_r, error_r));
}

/* imap_copy_batch() or imap_move_batch(), the targets' names on the wire */
typedef int batch_fn(struct imap_client *c, const char *const *uidsets,
		     const char *const *dests, size_t n,
		     struct imap_copyuid *maps_r, bool *ok_r, char **error_r);

static int wired_batch(struct remote *r, batch_fn *fn,
		       const char *const *uidsets, const char *const *dests,
		       size_t n, struct imap_copyuid *maps_r, bool *ok_r,
		       char **error_r)
{
	char **w = wires_of(r, dests, n, error_r);
	int ret;

	if (w == NULL)
		return -1;
	ret = fn(RI(r)->c, uidsets, (const char *const *)w, n, maps_r, ok_r,
		 error_r);
	wires_free(w, n);
	return ret;
}

static int ri_copy_batch(struct remote *r, const char *const *uidsets,
			 const char *const *dests, size_t n,
			 struct imap_copyuid *maps_r, bool *ok_r,
			 char **error_r)
{
	return wired_batch(r, imap_copy_batch, uidsets, dests, n, maps_r,
			   ok_r, error_r);
}

static int ri_copy_from_many(struct remote *r,
			     const struct remote_copy_src *srcs, size_t n,
			     const char *dest, struct imap_copyuid *maps_r,
			     enum imap_copy_src_result *res_r, char **error_r)
{
	struct imap_copy_src *is = xcalloc(n + 1, sizeof(*is));
	const char **names = xcalloc(n + 1, sizeof(*names));
	char **w, *wd;
	size_t i;
	int ret = -1;

	for (i = 0; i < n; i++)
		names[i] = srcs[i].name;
	w = wires_of(r, names, n, error_r);
	free(names);
	if (w == NULL) {
		free(is);
		return -1;
	}
	wd = wire(RI(r), dest, error_r);
	if (wd != NULL) {
		for (i = 0; i < n; i++) {
			is[i].wire = w[i];
			is[i].uidvalidity = srcs[i].uidvalidity;
			is[i].uidset = srcs[i].uidset;
		}
		ret = imap_copy_from_many(RI(r)->c, is, n, wd, maps_r, res_r,
					  error_r);
		free(wd);
	}
	wires_free(w, n);
	free(is);
	return ret;
}

static int ri_move_batch(struct remote *r, const char *const *uidsets,
			 const char *const *dests, size_t n,
			 struct imap_copyuid *maps_r, bool *ok_r,
			 char **error_r)
{
	return wired_batch(r, imap_move_batch, uidsets, dests, n, maps_r,
			   ok_r, error_r);
}

static int ri_move_from_many(struct remote *r, struct imap_move_src *srcs,
			     size_t n, char **error_r)
{
	struct imap_move_src *is = xcalloc(n + 1, sizeof(*is));
	char ***dw = xcalloc(n + 1, sizeof(*dw));
	size_t i;
	int ret = -1;

	for (i = 0; i < n; i++) {
		is[i] = srcs[i];
		is[i].wire = wire(RI(r), srcs[i].wire, error_r);
		if (is[i].wire == NULL)
			goto out;
		dw[i] = wires_of(r, srcs[i].dests, srcs[i].n, error_r);
		if (dw[i] == NULL)
			goto out;
		is[i].dests = (const char *const *)dw[i];
	}
	ret = imap_move_from_many(RI(r)->c, is, n, error_r);
	for (i = 0; i < n; i++)
		srcs[i].selected_r = is[i].selected_r;
out:
	for (i = 0; i < n; i++) {
		free((char *)is[i].wire);
		if (dw[i] != NULL)
			wires_free(dw[i], srcs[i].n);
	}
	free(dw);
	free(is);
	return ret;
}

static int ri_search_msgid(struct remote *r, uint32_t min_uid,
			   const char *msgid, uint32_t **uids_r, size_t *n_r,
			   char **error_r)
{
	char *crit, *q = NULL;
	uint32_t *uids = NULL;
	size_t n = 0, i, m = 0;
	int ret;

	if (msgid != NULL && *msgid != '\0') {
		q = imap_quote(msgid);
		crit = xasprintf("UID %u:* HEADER Message-ID %s", min_uid, q);
	} else {
		crit = xasprintf("UID %u:*", min_uid);
	}
	ret = imap_search(RI(r)->c, crit, &uids, &n, error_r);
	free(crit);
	free(q);
	if (ret < 0)
		return -1;
	/* "n:*" includes the highest UID even when it is below n */
	for (i = 0; i < n; i++)
		if (uids[i] >= min_uid)
			uids[m++] = uids[i];
	*uids_r = uids;
	*n_r = m;
	return 0;
}

static void ri_close(struct remote *r)
{
	struct remote_imap *ri = RI(r);

	if (imap_client_broken(ri->c))
		imap_client_free(&ri->c);
	else
		imap_client_close(&ri->c);
	free(ri);
}

static const struct remote_ops remote_imap_ops = {
	.caps = ri_caps,
	.qresync = ri_qresync,
	.condstore = ri_condstore,
	.failure = ri_failure,
	.broken = ri_broken,
	.delimiter = ri_delimiter,
	.set_delimiter = ri_set_delimiter,
	.list = ri_list,
	.status = ri_status,
	.status_list = ri_status_list,
	.create = ri_create,
	.rename = ri_rename,
	.select = ri_select,
	.select_ahead = ri_select_ahead,
	.flush = ri_flush,
	.uids = ri_uids,
	.fetch_flags = ri_fetch_flags,
	.fetch_idents = ri_fetch_idents,
	.fetch_bodies = ri_fetch_bodies,
	.fetch_bodies_start = ri_fetch_bodies_start,
	.fetch_bodies_end = ri_fetch_bodies_end,
	.append = ri_append,
	.store = ri_store,
	.expunge = ri_expunge,
	.expunge_marked = ri_expunge_marked,
	.store_expunge = ri_store_expunge,
	.store_expunge_append = ri_store_expunge_append,
	.store_expunge_append_start = ri_store_expunge_append_start,
	.tail_end = ri_tail_end,
	.move = ri_move,
	.copy = ri_copy,
	.copy_batch = ri_copy_batch,
	.copy_from_many = ri_copy_from_many,
	.move_batch = ri_move_batch,
	.move_from_many = ri_move_from_many,
	.search_msgid = ri_search_msgid,
	.own_state = ri_own_state,
	.expect_gone = ri_expect_gone,
	.min_wait_ns = ri_min_wait_ns,
	.bytes_in = ri_bytes_in,
	.bytes_out = ri_bytes_out,
	.close = ri_close,
};

static int open_remote(void *settings, bool first, struct remote **r_r,
		       enum imap_failure *failure_r, char **error_r)
{
	struct remote_imap *ri;
	struct imap_client *c = NULL;

	if ((first ? imap_client_connect_first : imap_client_connect)(
		    settings, &c, failure_r, error_r) < 0)
		return -1;
	ri = xcalloc(1, sizeof(*ri));
	ri->r.ops = &remote_imap_ops;
	ri->c = c;
	*r_r = &ri->r;
	return 0;
}

int remote_imap_open(void *settings, struct remote **r_r,
		     enum imap_failure *failure_r, char **error_r)
{
	return open_remote(settings, false, r_r, failure_r, error_r);
}

int remote_imap_open_first(void *settings, struct remote **r_r,
			   enum imap_failure *failure_r, char **error_r)
{
	return open_remote(settings, true, r_r, failure_r, error_r);
}
