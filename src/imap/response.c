/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * response.c - interpretation of common untagged IMAP data (FETCH, LIST,
 * STATUS, VANISHED, ESEARCH) and UID set iteration, on top of the argument
 * trees built by parser.c. Every check is explicit: a malformed response
 * gives -1 with a static error string, never a guess.
 */
#include "common.h"
#include "imap/parser.h"
#include "util/flags.h"

#include <strings.h>

#define MODSEQ_MAX ((uint64_t)INT64_MAX)   /* mod-sequence-value is 63 bits */

static bool keyword_is(const struct imap_response *r, const char *kw)
{
	return r->keyword != NULL && strcmp(r->keyword, kw) == 0;
}

static bool atom_prefix(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && strncasecmp(s, prefix, n) == 0;
}

static bool number32(const struct imap_arg *a, uint32_t *n_r)
{
	uint64_t v;

	if (!imap_arg_number(a, UINT32_MAX, &v))
		return false;
	*n_r = (uint32_t)v;
	return true;
}

/* A value that is either a number or a one-element list of a number. */
static bool number_in_list(const struct imap_arg *a, uint64_t max, uint64_t *n_r)
{
	const struct imap_arg *l;
	size_t n;

	if (imap_arg_list(a, &l, &n)) {
		if (n != 1)
			return false;
		a = &l[0];
	}
	return imap_arg_number(a, max, n_r);
}

/* ---- INTERNALDATE ---- */

static bool digits(const char *s, size_t n, unsigned *v_r)
{
	unsigned v = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*v_r = v;
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	/* count years from March so that the leap day ends the year */
	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (int64_t)(m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
	static const unsigned char dm[12] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31,
	};

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dm[m - 1];
}

/* "17-Jul-1996 02:44:25 -0700" (day may be " 7" or "7") -> unix seconds */
static bool parse_internaldate(const char *s, size_t len, int64_t *t_r)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	unsigned day, mon, year, hh, mm, ss, zh, zm;
	size_t i = 0;
	int64_t t, zone;

	if (len > 0 && s[0] == ' ') {
		i = 1;
	}
	if (len - i >= 2 && s[i + 1] != '-') {
		if (!digits(s + i, 2, &day))
			return false;
		i += 2;
	} else {
		if (len - i < 1 || !digits(s + i, 1, &day))
			return false;
		i += 1;
	}
	/* the rest has a fixed layout: -Mon-YYYY HH:MM:SS +ZZZZ (24 bytes) */
	if (len - i != 24 || s[i] != '-' || s[i + 4] != '-' || s[i + 9] != ' ' ||
	    s[i + 12] != ':' || s[i + 15] != ':' || s[i + 18] != ' ' ||
	    (s[i + 19] != '+' && s[i + 19] != '-'))
		return false;
	for (mon = 0; mon < 12; mon++)
		if (strncasecmp(s + i + 1, months + 3 * mon, 3) == 0)
			break;
	if (mon == 12)
		return false;
	mon++;
	if (!digits(s + i + 5, 4, &year) || !digits(s + i + 10, 2, &hh) ||
	    !digits(s + i + 13, 2, &mm) || !digits(s + i + 16, 2, &ss) ||
	    !digits(s + i + 20, 2, &zh) || !digits(s + i + 22, 2, &zm))
		return false;
	if (year < 1000 || day < 1 || day > days_in_month(year, mon) ||
	    hh > 23 || mm > 59 || ss > 60 || zm > 59)
		return false;
	zone = (int64_t)zh * 3600 + (int64_t)zm * 60;
	if (s[i + 19] == '-')
		zone = -zone;
	t = days_from_civil(year, mon, day) * 86400 + hh * 3600 + mm * 60 + ss;
	*t_r = t - zone;
	return true;
}

/* ---- FETCH ---- */

static bool is_header_item(const char *s, size_t len)
{
	return atom_prefix(s, len, "BODY[HEADER") ||
	       atom_prefix(s, len, "BODY.PEEK[HEADER") ||
	       (len == 13 && strncasecmp(s, "RFC822.HEADER", 13) == 0);
}

static int fetch_flags(const struct imap_arg *v, struct imap_fetch *f)
{
	const struct imap_arg *l;
	const char *s;
	size_t n, i, len;

	if (!imap_arg_list(v, &l, &n))
		return -1;
	f->flags = 0;
	for (i = 0; i < n; i++) {
		if (!imap_arg_atom(&l[i], &s, &len))
			return -1;
		f->flags |= flags_from_imap(s, len);
	}
	f->has_flags = true;
	return 0;
}

int imap_response_fetch(const struct imap_response *r, struct imap_fetch *f_r, const char **error_r)
{
	const struct imap_arg *items, *v, *l;
	const char *name, *s;
	size_t n, i, len, name_len, ln;
	uint64_t num;

	memset(f_r, 0, sizeof(*f_r));
	if (!keyword_is(r, "FETCH") || !r->has_number) {
		*error_r = "not a FETCH response";
		return -1;
	}
	f_r->seq = r->number;
	if (r->n_args != 1 || !imap_arg_list(&r->args[0], &items, &n)) {
		*error_r = "FETCH response without an item list";
		return -1;
	}
	if (n % 2 != 0) {
		*error_r = "FETCH item without a value";
		return -1;
	}
	for (i = 0; i < n; i += 2) {
		if (!imap_arg_atom(&items[i], &name, &name_len)) {
			*error_r = "FETCH item name is not an atom";
			return -1;
		}
		v = &items[i + 1];
		if (v->type == IMAP_ARG_LITERAL_STREAMED) {
			f_r->has_body = true;
			f_r->body_size = v->u.size;
		} else if (imap_arg_atom_equals(&items[i], "UID")) {
			if (!imap_arg_number(v, UINT32_MAX, &num) || num == 0) {
				*error_r = "bad UID in FETCH response";
				return -1;
			}
			f_r->uid = (uint32_t)num;
		} else if (imap_arg_atom_equals(&items[i], "FLAGS")) {
			if (fetch_flags(v, f_r) < 0) {
				*error_r = "bad FLAGS in FETCH response";
				return -1;
			}
		} else if (imap_arg_atom_equals(&items[i], "MODSEQ")) {
			if (!number_in_list(v, MODSEQ_MAX, &f_r->modseq)) {
				*error_r = "bad MODSEQ in FETCH response";
				return -1;
			}
			f_r->has_modseq = true;
		} else if (imap_arg_atom_equals(&items[i], "RFC822.SIZE")) {
			if (!imap_arg_number(v, UINT64_MAX, &f_r->size)) {
				*error_r = "bad RFC822.SIZE in FETCH response";
				return -1;
			}
			f_r->has_size = true;
		} else if (imap_arg_atom_equals(&items[i], "INTERNALDATE")) {
			if (!imap_arg_string(v, &s, &len) ||
			    !parse_internaldate(s, len, &f_r->internaldate)) {
				*error_r = "bad INTERNALDATE in FETCH response";
				return -1;
			}
			f_r->has_date = true;
		} else if (imap_arg_atom_equals(&items[i], "EMAILID")) {
			if (imap_arg_list(v, &l, &ln)) {
				if (ln != 1) {
					*error_r = "bad EMAILID in FETCH response";
					return -1;
				}
				v = &l[0];
			}
			if (!imap_arg_string(v, &s, &len) || len == 0 ||
			    strlen(s) != len) {
				*error_r = "bad EMAILID in FETCH response";
				return -1;
			}
			f_r->emailid = s;
		} else if (imap_arg_atom_equals(&items[i], "X-GM-MSGID")) {
			/* Gmail: a 64-bit number, one per message whatever
			 * its labels */
			if (!imap_arg_number(v, UINT64_MAX, &f_r->gm_msgid) ||
			    f_r->gm_msgid == 0) {
				*error_r = "bad X-GM-MSGID in FETCH response";
				return -1;
			}
			f_r->has_gm_msgid = true;
		} else if (is_header_item(name, name_len)) {
			if (!imap_arg_nstring(v, &s, &len)) {
				*error_r = "bad header section in FETCH response";
				return -1;
			}
			f_r->header = s;
			f_r->header_len = len;
		}
		/* other items (ENVELOPE, BODYSTRUCTURE, THREADID, ...) are skipped */
	}
	return 0;
}

/* ---- LIST / LSUB ---- */

static const struct {
	const char *name;
	unsigned bit;
} list_attrs[] = {
	{ "\\Noselect", IMAP_LIST_NOSELECT },
	{ "\\NoInferiors", IMAP_LIST_NOINFERIORS },
	{ "\\NonExistent", IMAP_LIST_NONEXISTENT },
	{ "\\HasChildren", IMAP_LIST_HASCHILDREN },
	{ "\\HasNoChildren", IMAP_LIST_HASNOCHILDREN },
	{ "\\Marked", IMAP_LIST_MARKED },
	{ "\\Unmarked", IMAP_LIST_UNMARKED },
	{ "\\Subscribed", IMAP_LIST_SUBSCRIBED },
	{ "\\All", IMAP_LIST_ALL },
	{ "\\Archive", IMAP_LIST_ARCHIVE },
	{ "\\Drafts", IMAP_LIST_DRAFTS },
	{ "\\Flagged", IMAP_LIST_FLAGGED },
	{ "\\Junk", IMAP_LIST_JUNK },
	{ "\\Sent", IMAP_LIST_SENT },
	{ "\\Trash", IMAP_LIST_TRASH },
};

#define LIST_SPECIAL_USE (IMAP_LIST_ALL | IMAP_LIST_ARCHIVE | IMAP_LIST_DRAFTS | \
			  IMAP_LIST_FLAGGED | IMAP_LIST_JUNK | IMAP_LIST_SENT | \
			  IMAP_LIST_TRASH)

const char *imap_list_special_use(unsigned attrs)
{
	size_t i;

	for (i = 0; i < N_ELEMENTS(list_attrs); i++)
		if ((list_attrs[i].bit & LIST_SPECIAL_USE) != 0 &&
		    (attrs & list_attrs[i].bit) != 0)
			return list_attrs[i].name;
	return "";
}

int imap_response_list(const struct imap_response *r, struct imap_list *l_r, const char **error_r)
{
	const struct imap_arg *attrs;
	const char *s;
	size_t n, i, j, len;

	memset(l_r, 0, sizeof(*l_r));
	if (!keyword_is(r, "LIST") && !keyword_is(r, "LSUB")) {
		*error_r = "not a LIST response";
		return -1;
	}
	/* (attrs) delimiter name [extended data items, skipped] */
	if (r->n_args < 3 || !imap_arg_list(&r->args[0], &attrs, &n)) {
		*error_r = "malformed LIST response";
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (!imap_arg_atom(&attrs[i], &s, &len)) {
			*error_r = "LIST attribute is not an atom";
			return -1;
		}
		for (j = 0; j < N_ELEMENTS(list_attrs); j++)
			if (strlen(list_attrs[j].name) == len &&
			    strncasecmp(list_attrs[j].name, s, len) == 0)
				l_r->attrs |= list_attrs[j].bit;
	}
	if (!imap_arg_nstring(&r->args[1], &s, &len) || (s != NULL && len != 1) ||
	    (s != NULL && s[0] == '\0')) {
		*error_r = "bad hierarchy delimiter in LIST response";
		return -1;
	}
	l_r->delimiter = s != NULL ? s[0] : '\0';
	if (imap_arg_is_nil(&r->args[2])) {
		/* an unquoted mailbox called NIL */
		s = "NIL";
		len = 3;
	} else if (!imap_arg_string(&r->args[2], &s, &len)) {
		*error_r = "bad mailbox name in LIST response";
		return -1;
	}
	if (len == 0 || strlen(s) != len) {
		*error_r = "empty mailbox name or NUL in LIST response";
		return -1;
	}
	l_r->name = s;
	l_r->name_len = len;
	return 0;
}

/* ---- STATUS ---- */

int imap_response_status(const struct imap_response *r, struct imap_status_data *s_r, const char **error_r)
{
	const struct imap_arg *items, *v;
	const char *s;
	size_t n, i, len;

	memset(s_r, 0, sizeof(*s_r));
	if (!keyword_is(r, "STATUS")) {
		*error_r = "not a STATUS response";
		return -1;
	}
	if (r->n_args != 2 || !imap_arg_list(&r->args[1], &items, &n) ||
	    !imap_arg_string(&r->args[0], &s, &len)) {
		*error_r = "malformed STATUS response";
		return -1;
	}
	if (n % 2 != 0) {
		*error_r = "STATUS item without a value";
		return -1;
	}
	s_r->mailbox = s;
	s_r->mailbox_len = len;
	for (i = 0; i < n; i += 2) {
		bool good = true;

		v = &items[i + 1];
		if (items[i].type != IMAP_ARG_ATOM)
			good = false;
		else if (imap_arg_atom_equals(&items[i], "MESSAGES"))
			good = s_r->has_messages = number32(v, &s_r->messages);
		else if (imap_arg_atom_equals(&items[i], "UIDNEXT"))
			good = s_r->has_uidnext = number32(v, &s_r->uidnext);
		else if (imap_arg_atom_equals(&items[i], "UIDVALIDITY"))
			good = s_r->has_uidvalidity = number32(v, &s_r->uidvalidity);
		else if (imap_arg_atom_equals(&items[i], "UNSEEN"))
			good = s_r->has_unseen = number32(v, &s_r->unseen);
		else if (imap_arg_atom_equals(&items[i], "HIGHESTMODSEQ"))
			good = s_r->has_highestmodseq =
				imap_arg_number(v, MODSEQ_MAX, &s_r->highestmodseq);
		if (!good) {
			*error_r = "bad item in STATUS response";
			return -1;
		}
	}
	return 0;
}

/* ---- VANISHED ---- */

static bool valid_set(const char *s)
{
	size_t pos = 0;
	uint32_t lo, hi;
	bool bad = false;

	while (imap_uidset_next(s, &pos, &lo, &hi, &bad))
		;
	return !bad;
}

int imap_response_vanished(const struct imap_response *r, bool *earlier_r, const char **uidset_r, const char **error_r)
{
	const struct imap_arg *l;
	const char *s;
	size_t n, len;

	*earlier_r = false;
	if (!keyword_is(r, "VANISHED")) {
		*error_r = "not a VANISHED response";
		return -1;
	}
	if (r->n_args == 2) {
		if (!imap_arg_list(&r->args[0], &l, &n) || n != 1 ||
		    !imap_arg_atom_equals(&l[0], "EARLIER")) {
			*error_r = "malformed VANISHED response";
			return -1;
		}
		*earlier_r = true;
	} else if (r->n_args != 1) {
		*error_r = "malformed VANISHED response";
		return -1;
	}
	if (!imap_arg_atom(&r->args[r->n_args - 1], &s, &len) || !valid_set(s)) {
		*error_r = "bad UID set in VANISHED response";
		return -1;
	}
	*uidset_r = s;
	return 0;
}

/* ---- ESEARCH ---- */

int imap_response_esearch(const struct imap_response *r, struct imap_esearch *e_r, const char **error_r)
{
	const struct imap_arg *a = r->args, *l;
	size_t n = r->n_args, i = 0, ln, len;
	const char *s;

	memset(e_r, 0, sizeof(*e_r));
	if (!keyword_is(r, "ESEARCH")) {
		*error_r = "not an ESEARCH response";
		return -1;
	}
	if (n > 0 && imap_arg_list(&a[0], &l, &ln)) {
		if (ln != 2 || !imap_arg_atom_equals(&l[0], "TAG") ||
		    !imap_arg_string(&l[1], &s, &len)) {
			*error_r = "bad search correlator in ESEARCH response";
			return -1;
		}
		e_r->tag = s;
		i++;
	}
	if (i < n && imap_arg_atom_equals(&a[i], "UID")) {
		e_r->uid = true;
		i++;
	}
	if ((n - i) % 2 != 0) {
		*error_r = "ESEARCH item without a value";
		return -1;
	}
	for (; i < n; i += 2) {
		const struct imap_arg *v = &a[i + 1];
		bool good = true;

		if (a[i].type != IMAP_ARG_ATOM) {
			good = false;
		} else if (imap_arg_atom_equals(&a[i], "ALL")) {
			good = imap_arg_atom(v, &s, &len) && valid_set(s);
			if (good)
				e_r->all = s;
		} else if (imap_arg_atom_equals(&a[i], "COUNT")) {
			good = e_r->has_count = number32(v, &e_r->count);
		} else if (imap_arg_atom_equals(&a[i], "MIN")) {
			good = e_r->has_min = number32(v, &e_r->min);
		} else if (imap_arg_atom_equals(&a[i], "MAX")) {
			good = e_r->has_max = number32(v, &e_r->max);
		}
		if (!good) {
			*error_r = "bad item in ESEARCH response";
			return -1;
		}
	}
	return 0;
}

/* ---- UID sets ---- */

static bool set_number(const char *s, size_t *i, uint32_t *n_r)
{
	uint64_t n = 0;
	size_t start = *i;

	while (s[*i] >= '0' && s[*i] <= '9') {
		n = n * 10 + (uint64_t)(s[*i] - '0');
		if (n > UINT32_MAX)
			return false;
		(*i)++;
	}
	if (*i == start || n == 0)
		return false;
	*n_r = (uint32_t)n;
	return true;
}

bool imap_uidset_next(const char *set, size_t *pos, uint32_t *lo_r, uint32_t *hi_r, bool *bad_r)
{
	size_t i = *pos;
	uint32_t lo, hi;

	*bad_r = false;
	if (set[i] == '\0') {
		if (i == 0)
			*bad_r = true;   /* an empty set is malformed */
		return false;
	}
	if (i > 0) {
		if (set[i] != ',')
			goto bad;
		i++;
	}
	if (!set_number(set, &i, &lo))
		goto bad;
	hi = lo;
	if (set[i] == ':') {
		i++;
		if (!set_number(set, &i, &hi))
			goto bad;
	}
	if (set[i] != ',' && set[i] != '\0')
		goto bad;
	*lo_r = lo < hi ? lo : hi;
	*hi_r = lo < hi ? hi : lo;
	*pos = i;
	return true;
bad:
	*bad_r = true;
	return false;
}

size_t imap_uidset_expand(const char *set, uint32_t *out, size_t max)
{
	size_t pos = 0, n = 0;
	uint32_t lo, hi, u;
	bool bad = false;

	while (n < max && imap_uidset_next(set, &pos, &lo, &hi, &bad)) {
		for (u = lo; n < max; u++) {
			out[n++] = u;
			if (u == hi)
				break;
		}
	}
	return bad ? 0 : n;
}
