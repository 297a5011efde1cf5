# SPDX-License-Identifier: GPL-2.0-or-later
libtwinbox_a_SOURCES += \
	src/util/xalloc.c \
	src/util/buf.c src/util/buf.h \
	src/util/log.c src/util/log.h \
	src/util/flags.c src/util/flags.h

check_PROGRAMS += tests/unit/t-buf
TESTS += tests/unit/t-buf
tests_unit_t_buf_SOURCES = tests/unit/t-buf.c tests/unit/tap.h
tests_unit_t_buf_LDADD = $(TB_LIBS)
