# SPDX-License-Identifier: GPL-2.0-or-later
libtwinbox_a_SOURCES += \
	src/sync/sync.h src/sync/sync-private.h \
	src/sync/remote.h src/sync/remote-imap.h src/sync/remote-imap.c \
	src/sync/engine.c src/sync/folder.c src/sync/recover.c src/sync/moves.c \
	src/sync/renames.c src/sync/late.c \
	src/sync/copies-private.h src/sync/copies-plan.c src/sync/copies-exec.c \
	src/sync/journal-step.h src/sync/journal-step.c \
	src/sync/report.c \
	src/sync/bookmark.c
