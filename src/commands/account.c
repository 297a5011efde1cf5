/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common.h"
#include "commands.h"
#include "commands/account.h"

int account_conn_init(const struct account_config *a, struct account_conn *ac,
		      char **error_r)
{
	memset(ac, 0, sizeof(*ac));
	if (config_get_secret(a, &ac->secret, error_r) < 0)
		return -1;
	ac->set.host = a->host;
	ac->set.port = a->port;
	ac->set.tls = a->tls == TLS_IMPLICIT ? IMAP_TLS_IMPLICIT
		      : a->tls == TLS_STARTTLS ? IMAP_TLS_STARTTLS
					       : IMAP_TLS_NONE;
	ac->set.ca_file = a->ca_file;
	ac->set.fingerprint = a->fingerprint;
	ac->set.user = a->user;
	ac->set.secret = ac->secret;
	ac->set.login_hint = &ac->login_hint;
	switch (a->auth) {
	case AUTH_PLAIN: ac->set.auth = IMAP_AUTH_PLAIN; break;
	case AUTH_LOGIN: ac->set.auth = IMAP_AUTH_LOGIN; break;
	case AUTH_XOAUTH2: ac->set.auth = IMAP_AUTH_XOAUTH2; break;
	case AUTH_OAUTHBEARER: ac->set.auth = IMAP_AUTH_OAUTHBEARER; break;
	default: ac->set.auth = IMAP_AUTH_AUTO; break;
	}
	ac->set.label = a->name;
	return 0;
}

void account_conn_release(struct account_conn *ac)
{
	if (ac->secret) {
		secure_zero(ac->secret, strlen(ac->secret));
		free(ac->secret);
	}
	memset(ac, 0, sizeof(*ac));
}

enum mdir_layout account_layout(const struct account_config *a)
{
	return a->layout == LAYOUT_MAILDIRPP ? MDIR_MAILDIRPP : MDIR_VERBATIM;
}

int account_connect_exit(enum imap_failure f)
{
	return (f == IMAP_FAIL_AUTH || f == IMAP_FAIL_TLS) ? TB_EXIT_AUTH
							   : TB_EXIT_FAILED;
}
