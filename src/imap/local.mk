# SPDX-License-Identifier: GPL-2.0-or-later
# --- response parser and UTF-7 codec (keep this block together) ---
libtwinbox_a_SOURCES += \
	src/imap/parser.c src/imap/parser.h \
	src/imap/response.c \
	src/imap/utf7.c src/imap/utf7.h

check_PROGRAMS += tests/unit/t-imap-parser tests/unit/t-utf7
TESTS += tests/unit/t-imap-parser tests/unit/t-utf7
tests_unit_t_imap_parser_SOURCES = tests/unit/t-imap-parser.c tests/unit/tap.h
tests_unit_t_imap_parser_LDADD = $(TB_LIBS)
tests_unit_t_utf7_SOURCES = tests/unit/t-utf7.c tests/unit/tap.h
tests_unit_t_utf7_LDADD = $(TB_LIBS)

EXTRA_DIST += tests/fuzz/imap.dict tests/fuzz/corpus-imap tests/fuzz/corpus-utf7

if FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz-imap-parser tests/fuzz/fuzz-utf7
tests_fuzz_fuzz_imap_parser_SOURCES = tests/fuzz/fuzz-imap-parser.c
tests_fuzz_fuzz_imap_parser_LDADD = $(TB_LIBS)
tests_fuzz_fuzz_imap_parser_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
tests_fuzz_fuzz_utf7_SOURCES = tests/fuzz/fuzz-utf7.c
tests_fuzz_fuzz_utf7_LDADD = $(TB_LIBS)
tests_fuzz_fuzz_utf7_LDFLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
endif
# --- end of parser block ---

# --- IMAP client: command queue, authentication, operations ---
libtwinbox_a_SOURCES += \
	src/imap/client.c src/imap/client.h src/imap/client-private.h \
	src/imap/cmd.c \
	src/imap/track.c src/imap/track.h

check_PROGRAMS += tests/unit/t-imap-client tests/integration/imap-probe
TESTS += tests/unit/t-imap-client tests/integration/t-client.sh
tests_unit_t_imap_client_SOURCES = tests/unit/t-imap-client.c tests/unit/tap.h
tests_unit_t_imap_client_LDADD = $(TB_LIBS)
tests_integration_imap_probe_SOURCES = tests/integration/imap-probe.c
tests_integration_imap_probe_LDADD = $(TB_LIBS)
EXTRA_DIST += tests/integration/t-client.sh
# --- end of client block ---
