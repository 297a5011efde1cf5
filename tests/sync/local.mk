# SPDX-License-Identifier: GPL-2.0-or-later
# Engine tests without a network: the sync engine against a real Maildir in
# a temp dir and a fake IMAP server kept in a directory (remote-fake.c).
check_PROGRAMS += tests/sync/t-remote-fake tests/sync/t-engine
TESTS += tests/sync/t-remote-fake tests/sync/t-engine

tests_sync_t_remote_fake_SOURCES = tests/sync/t-remote-fake.c \
	tests/sync/remote-fake.c tests/sync/remote-fake.h tests/unit/tap.h
tests_sync_t_remote_fake_LDADD = $(TB_LIBS) -lpthread

tests_sync_t_engine_SOURCES = tests/sync/t-engine.c \
	tests/sync/remote-fake.c tests/sync/remote-fake.h tests/unit/tap.h
tests_sync_t_engine_LDADD = $(TB_LIBS) -lpthread
