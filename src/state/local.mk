# SPDX-License-Identifier: GPL-2.0-or-later
libtwinbox_a_SOURCES += \
	src/state/state.h src/state/state-private.h \
	src/state/state.c src/state/schema.c src/state/lock.c

check_PROGRAMS += tests/unit/t-state
TESTS += tests/unit/t-state
tests_unit_t_state_SOURCES = tests/unit/t-state.c tests/unit/tap.h
tests_unit_t_state_LDADD = $(TB_LIBS)
