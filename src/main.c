/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * main.c - the command line: options, the configuration, exit statuses.
 *
 * Global options come before the command and may also follow it
 * ("twinbox sync -v" works). The configuration is loaded and validated
 * before any command runs, so a bad file is always exit 2 with
 * FILE:LINE:COL, whatever the command.
 */
#include "common.h"
#include "commands.h"
#include "config/config.h"
#include "util/log.h"

#include <getopt.h>
#include <stdarg.h>
#include <unistd.h>

static const char usage_text[] =
"usage: twinbox [-c FILE] [-v|-vv|-vvv] [-q] [--json] COMMAND [ARGS]\n"
"\n"
"commands:\n"
"  sync [TARGET...]          sync the accounts (TARGET is ACCOUNT or\n"
"                            ACCOUNT:FOLDER; default: all accounts)\n"
"      --dry-run             print the planned actions, change nothing\n"
"      --pull | --push       only server to local, or only local to server\n"
"      --full                compare everything, ignore the shortcuts\n"
"      --force               let through what the safety brake stopped\n"
"      --watch               stay running and sync on every change\n"
"  status [TARGET...]        counts, last sync time and pending changes\n"
"  check-config [--offline]  validate the configuration; without --offline\n"
"                            also connect and authenticate\n"
"  list-folders ACCOUNT      server folders and their local paths\n"
"\n"
"options:\n"
"  -c, --config FILE         configuration file (default:\n"
"                            $XDG_CONFIG_HOME/twinbox/config.yaml)\n"
"  -v, --verbose             more detail; -vv debug; -vvv IMAP trace\n"
"  -q, --quiet               print only errors\n"
"      --json                one JSON object per folder on stdout\n"
"  -h, --help                show this help\n"
"  -V, --version             show the version\n"
"\n"
"exit status: 0 ok, 1 some folder or account failed, 2 usage or\n"
"configuration error, 3 authentication or TLS failure, 4 account locked,\n"
"5 safety brake; see twinbox(1)\n";

enum command {
	CMD_NONE, CMD_SYNC, CMD_STATUS, CMD_CHECK_CONFIG, CMD_LIST_FOLDERS,
};

static const struct {
	const char *name;
	enum command cmd;
} commands[] = {
	{ "sync", CMD_SYNC },
	{ "status", CMD_STATUS },
	{ "check-config", CMD_CHECK_CONFIG },
	{ "list-folders", CMD_LIST_FOLDERS },
};

enum {
	OPT_JSON = 256, OPT_OFFLINE, OPT_DRY_RUN, OPT_PULL, OPT_PUSH,
	OPT_FULL, OPT_FORCE, OPT_WATCH,
};

static const struct option global_long[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* After the command: the global options again, plus the command's own. */
static const struct option command_long[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ "offline", no_argument, NULL, OPT_OFFLINE },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "pull", no_argument, NULL, OPT_PULL },
	{ "push", no_argument, NULL, OPT_PUSH },
	{ "full", no_argument, NULL, OPT_FULL },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "watch", no_argument, NULL, OPT_WATCH },
	{ NULL, 0, NULL, 0 },
};

struct cli {
	struct global_opts g;
	struct sync_opts sync;
	enum command cmd;
	const char *cmd_name;
	int n_verbose;
	bool quiet;
	bool offline;
	char **args;
	size_t n_args;
};

static int usage_error(const char *fmt, ...) ATTR_PRINTF(1, 2);

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("twinbox: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\ntry 'twinbox --help'\n", stderr);
	return TB_EXIT_USAGE;
}

static int bad_option(char **argv, int opt)
{
	/* getopt leaves the offending word at argv[optind - 1]. */
	if (opt == ':')
		return usage_error("option '%s' needs an argument",
				   argv[optind - 1]);
	if (optopt != 0 && optopt < 256)
		return usage_error("unknown option '-%c'", optopt);
	return usage_error("unknown option '%s'", argv[optind - 1]);
}

/* Options valid anywhere; 1 if opt was one, 0 if not, or an exit status
 * (as -1 - status) for --help and --version. */
static int global_option(struct cli *cli, int opt)
{
	switch (opt) {
	case 'c':
		cli->g.config_path = optarg;
		return 1;
	case 'v':
		cli->n_verbose++;
		return 1;
	case 'q':
		cli->quiet = true;
		return 1;
	case OPT_JSON:
		cli->g.json = true;
		return 1;
	case 'h':
		fputs(usage_text, stdout);
		return -1 - TB_EXIT_OK;
	case 'V':
		printf("twinbox %s\n", PACKAGE_VERSION);
		return -1 - TB_EXIT_OK;
	default:
		return 0;
	}
}

static void reset_getopt(void)
{
#ifdef __GLIBC__
	optind = 0;     /* glibc: also forget its internal state */
#else
	optind = 1;
#endif
}

/* Parse argv into cli; returns -1 to go on, or an exit status. */
static int parse_args(struct cli *cli, int argc, char **argv)
{
	size_t i;
	int opt, r, sub_argc;
	char **sub_argv;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:c:vqhV", global_long,
				  NULL)) != -1) {
		r = global_option(cli, opt);
		if (r < 0)
			return -1 - r;
		if (r == 0)
			return bad_option(argv, opt);
	}
	if (optind >= argc)
		return usage_error("no command given");
	cli->cmd_name = argv[optind];
	for (i = 0; i < N_ELEMENTS(commands); i++)
		if (strcmp(cli->cmd_name, commands[i].name) == 0)
			cli->cmd = commands[i].cmd;
	if (cli->cmd == CMD_NONE)
		return usage_error("unknown command '%s'", cli->cmd_name);

	/* The command's words, with the command as argv[0]. GNU getopt
	 * moves the options in front of the operands. */
	sub_argc = argc - optind;
	sub_argv = argv + optind;
	reset_getopt();
	while ((opt = getopt_long(sub_argc, sub_argv, ":c:vqh", command_long,
				  NULL)) != -1) {
		r = global_option(cli, opt);
		if (r < 0)
			return -1 - r;
		if (r == 1)
			continue;
		switch (opt) {
		case OPT_OFFLINE:
			cli->offline = true;
			break;
		case OPT_DRY_RUN:
			cli->sync.dry_run = true;
			break;
		case OPT_PULL:
			cli->sync.pull_only = true;
			break;
		case OPT_PUSH:
			cli->sync.push_only = true;
			break;
		case OPT_FULL:
			cli->sync.full = true;
			break;
		case OPT_FORCE:
			cli->sync.force = true;
			break;
		case OPT_WATCH:
			cli->sync.watch = true;
			break;
		default:
			return bad_option(sub_argv, opt);
		}
		if (opt == OPT_OFFLINE ? cli->cmd != CMD_CHECK_CONFIG :
		    cli->cmd != CMD_SYNC)
			return usage_error("option '%s' does not apply to "
					   "'%s'", sub_argv[optind - 1],
					   cli->cmd_name);
	}
	cli->args = sub_argv + optind;
	cli->n_args = (size_t)(sub_argc - optind);

	if (cli->quiet && cli->n_verbose > 0)
		return usage_error("-q and -v contradict each other");
	if (cli->sync.pull_only && cli->sync.push_only)
		return usage_error("--pull and --push exclude each other "
				   "(give neither to sync both ways)");
	if (cli->sync.watch && cli->sync.dry_run)
		return usage_error("--watch and --dry-run exclude each other");
	switch (cli->cmd) {
	case CMD_CHECK_CONFIG:
		if (cli->n_args > 0)
			return usage_error("'check-config' takes no "
					   "arguments, got '%s'", cli->args[0]);
		break;
	case CMD_LIST_FOLDERS:
		if (cli->n_args != 1)
			return usage_error("'list-folders' takes exactly one "
					   "ACCOUNT");
		break;
	default:
		break;
	}
	return -1;
}

static void set_verbosity(struct cli *cli)
{
	int level;

	if (cli->quiet)
		level = LOG_QUIET;
	else if (cli->n_verbose > 0)
		level = cli->n_verbose > LOG_TRACE ? LOG_TRACE : cli->n_verbose;
	else if (!isatty(STDOUT_FILENO))
		level = LOG_QUIET;      /* cron: as quiet as -q */
	else
		level = LOG_NORMAL;
	log_set_verbosity(level);
	cli->g.verbosity = level;
	cli->g.quiet = level == LOG_QUIET;
}

/* Every TARGET names an account; a folder after ':' is not empty. */
static int check_targets(const struct config *c, char **targets, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const char *t = targets[i], *colon = strchr(t, ':');
		size_t len = colon ? (size_t)(colon - t) : strlen(t);
		char *name = xstrndup(t, len);
		bool known = config_find_account(c, name) != NULL;

		free(name);
		if (len == 0)
			return usage_error("target '%s': no account before "
					   "':'", t);
		if (!known)
			return usage_error("target '%s': no account '%.*s' in "
					   "'%s'", t, (int)len, t, c->file);
		if (colon != NULL && colon[1] == '\0')
			return usage_error("target '%s': no folder after ':'",
					   t);
	}
	return 0;
}

static void print_account_summary(const struct account_config *a)
{
	printf("%s: %s at %s:%u (tls %s, auth %s) -> %s (%s)\n", a->name,
	       a->user, a->host, a->port, config_tls_name(a->tls),
	       config_auth_name(a->auth), a->maildir,
	       config_layout_name(a->layout));
}

static int check_config_offline(const struct config *c,
				const struct global_opts *g)
{
	size_t i;

	/* One line per account on a terminal, or with -v; nothing for
	 * cron, -q or --json (whose stdout is JSON lines only). */
	if (g->quiet || g->json ||
	    (g->verbosity < LOG_VERBOSE && !isatty(STDOUT_FILENO)))
		return TB_EXIT_OK;
	for (i = 0; i < c->n_accounts; i++)
		print_account_summary(&c->accounts[i]);
	return TB_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct cli cli;
	struct config *config = NULL;
	char *error = NULL;
	int ret;

	memset(&cli, 0, sizeof(cli));
	ret = parse_args(&cli, argc, argv);
	if (ret >= 0)
		return ret;
	set_verbosity(&cli);

	if (config_load(cli.g.config_path, &config, &error) < 0) {
		log_error("%s", error);
		free(error);
		return TB_EXIT_USAGE;
	}

	switch (cli.cmd) {
	case CMD_CHECK_CONFIG:
		ret = cli.offline ? check_config_offline(config, &cli.g) :
		      cmd_check_config_online(config, &cli.g);
		break;
	case CMD_LIST_FOLDERS:
		if (config_find_account(config, cli.args[0]) == NULL) {
			ret = usage_error("no account '%s' in '%s'",
					  cli.args[0], config->file);
			break;
		}
		ret = cmd_list_folders(config, &cli.g, cli.args[0]);
		break;
	case CMD_SYNC:
		ret = check_targets(config, cli.args, cli.n_args);
		if (ret != 0)
			break;
		cli.sync.targets = cli.args;
		cli.sync.n_targets = cli.n_args;
		ret = cmd_sync(config, &cli.g, &cli.sync);
		break;
	case CMD_STATUS:
		ret = check_targets(config, cli.args, cli.n_args);
		if (ret != 0)
			break;
		ret = cmd_status(config, &cli.g, cli.args, cli.n_args);
		break;
	case CMD_NONE:
		BUG("no command");
	}
	config_free(&config);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		log_errno("cannot write to standard output");
		if (ret == TB_EXIT_OK)
			ret = TB_EXIT_FAILED;
	}
	return ret;
}
