# SPDX-License-Identifier: GPL-2.0-or-later
libtwinbox_a_SOURCES += \
	src/config/config.c src/config/config.h \
	src/config/secret.c src/config/duration.c


check_PROGRAMS += tests/unit/t-config
TESTS += tests/unit/t-config tests/unit/t-cli.sh
tests_unit_t_config_SOURCES = tests/unit/t-config.c tests/unit/tap.h
tests_unit_t_config_LDADD = $(TB_LIBS)

EXTRA_DIST += tests/unit/t-cli.sh \
	tests/fuzz/corpus-config/full.yaml \
	tests/fuzz/corpus-config/minimal.yaml \
	tests/fuzz/corpus-config/errors.yaml \
	tests/fuzz/fuzz-config.dict
dist_man_MANS += etc/twinbox.1 etc/twinbox.yaml.5

if FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz-config
tests_fuzz_fuzz_config_SOURCES = tests/fuzz/fuzz-config.c
tests_fuzz_fuzz_config_CFLAGS = $(AM_CFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_config_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_config_LDADD = $(TB_LIBS)
endif
