/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-config.c - libFuzzer target for the YAML configuration loader.
 *
 * Feeds each input to config_load_buffer(); it must neither crash nor
 * leak, and must always return either a config or an error message.
 * Build: ./configure CC=clang --enable-fuzzing && make tests/fuzz/fuzz-config
 * Run:   tests/fuzz/fuzz-config -max_total_time=60 tests/fuzz/corpus-config
 */
#include "common.h"
#include "config/config.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Fixed, harmless values for "~/" and the XDG defaults. */
	setenv("HOME", "/nonexistent-home", 1);
	unsetenv("XDG_STATE_HOME");
	log_set_verbosity(LOG_QUIET);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c = NULL;
	char *error = NULL;
	size_t i;

	if (config_load_buffer("fuzz.yaml", data, size, &c, &error) == 0) {
		ASSERT(c != NULL && error == NULL && c->n_accounts > 0);
		for (i = 0; i < c->n_accounts; i++) {
			const struct account_config *a = &c->accounts[i];

			ASSERT(config_find_account(c, a->name) != NULL);
			ASSERT(a->maildir[0] == '/');
			ASSERT(a->port >= 1 && a->port <= 65535);
			ASSERT(a->connections >= 1 && a->connections <= 32);
			(void)config_folder_selected(a, "INBOX");
			(void)config_folder_selected(a, "Lists/dev");
		}
		config_free(&c);
	} else {
		ASSERT(c == NULL && error != NULL);
		ASSERT(strncmp(error, "fuzz.yaml:", 10) == 0);
		free(error);
	}
	return 0;
}
