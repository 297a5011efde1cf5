# SPDX-License-Identifier: GPL-2.0-or-later
# sync --watch: part of the program, beside the commands that use it.
twinbox_SOURCES += \
	src/watch/watch.c src/watch/watch.h src/watch/watch-private.h \
	src/watch/idle.c src/watch/local.c
