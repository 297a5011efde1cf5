# SPDX-License-Identifier: GPL-2.0-or-later
libtwinbox_a_SOURCES += \
	src/config/config.c src/config/config.h \
	src/config/secret.c

# The command dispatch interface; the stubs go when the real commands land.
twinbox_SOURCES += src/commands.h src/commands-stub.c

check_PROGRAMS += tests/unit/t-config
TESTS += tests/unit/t-config tests/unit/t-cli.sh
tests_unit_t_config_SOURCES = tests/unit/t-config.c tests/unit/tap.h
tests_unit_t_config_LDADD = $(TB_LIBS)

EXTRA_DIST += tests/unit/t-cli.sh
