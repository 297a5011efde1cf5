# SPDX-License-Identifier: GPL-2.0-or-later
libtwinbox_a_SOURCES += \
	src/maildir/maildir.c src/maildir/maildir.h \
	src/maildir/names.c src/maildir/copyin.c \
	src/util/ident.c src/util/ident.h

check_PROGRAMS += tests/unit/t-ident tests/unit/t-mdir-names \
	tests/unit/t-maildir
TESTS += tests/unit/t-ident tests/unit/t-mdir-names tests/unit/t-maildir
tests_unit_t_ident_SOURCES = tests/unit/t-ident.c tests/unit/tap.h
tests_unit_t_ident_LDADD = $(TB_LIBS)
tests_unit_t_mdir_names_SOURCES = tests/unit/t-mdir-names.c tests/unit/tap.h
tests_unit_t_mdir_names_LDADD = $(TB_LIBS)
tests_unit_t_maildir_SOURCES = tests/unit/t-maildir.c tests/unit/tap.h
tests_unit_t_maildir_LDADD = $(TB_LIBS)

if FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz-mdir-names
tests_fuzz_fuzz_mdir_names_SOURCES = tests/fuzz/fuzz-mdir-names.c
tests_fuzz_fuzz_mdir_names_CFLAGS = $(AM_CFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_mdir_names_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_mdir_names_LDADD = $(TB_LIBS)
endif
