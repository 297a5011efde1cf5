/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * commands-stub.c - placeholders for the network commands until their real
 * implementations land.
 *
 * NEEDSWORK: delete this file (and its line in src/config/local.mk) when the
 * real cmd_* functions are added. The definitions are weak so that a strong
 * one in another object file linked into twinbox wins; a strong definition
 * inside libtwinbox.a would NOT be pulled in while these exist, because the
 * linker does not search archives for symbols that are already defined.
 */
#include "common.h"
#include "commands.h"
#include "util/log.h"

__attribute__((weak)) int
cmd_check_config_online(const struct config *c, const struct global_opts *g)
{
	(void)c;
	(void)g;
	log_error("'check-config' without --offline is not implemented yet");
	return TB_EXIT_USAGE;
}

__attribute__((weak)) int
cmd_list_folders(const struct config *c, const struct global_opts *g,
		 const char *account)
{
	(void)c;
	(void)g;
	(void)account;
	log_error("'list-folders' is not implemented yet");
	return TB_EXIT_USAGE;
}

__attribute__((weak)) int
cmd_sync(const struct config *c, const struct global_opts *g,
	 const struct sync_opts *o)
{
	(void)c;
	(void)g;
	(void)o;
	log_error("'sync' is not implemented yet");
	return TB_EXIT_USAGE;
}

__attribute__((weak)) int
cmd_status(const struct config *c, const struct global_opts *g,
	   char **targets, size_t n_targets)
{
	(void)c;
	(void)g;
	(void)targets;
	(void)n_targets;
	log_error("'status' is not implemented yet");
	return TB_EXIT_USAGE;
}
