/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * remote-imap.h - struct remote over a real IMAP connection.
 */
#ifndef TB_SYNC_REMOTE_IMAP_H
#define TB_SYNC_REMOTE_IMAP_H

#include "sync/remote.h"

/* ctx of the factory: the settings (borrowed; must outlive the run). */
int remote_imap_open(void *settings, struct remote **r_r,
		     enum imap_failure *failure_r, char **error_r);
/* The first connection of a run: its first commands may go with the
 * login (imap_client_connect_first()). */
int remote_imap_open_first(void *settings, struct remote **r_r,
			   enum imap_failure *failure_r, char **error_r);

/* UTF-8 '/'-separated name -> wire name for a server delimiter. */
char *remote_imap_wire_name(const char *name, char delim);

#endif
