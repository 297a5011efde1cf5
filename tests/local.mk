# SPDX-License-Identifier: GPL-2.0-or-later
# Shell-level tests: the scripted fake server, the hostile-server runner and
# the integration tests against a private Dovecot (tests/harness/).
# Test scripts are executable and print TAP; they find their files through
# $(TOP_SRCDIR) and the built programs through $(TOP_BUILDDIR).

check_PROGRAMS += tests/script/fakeimapd
tests_script_fakeimapd_SOURCES = tests/script/fakeimapd.c
tests_script_fakeimapd_LDADD = $(TB_LIBS)

TB_INTEGRATION_TESTS = \
	tests/integration/t-harness.sh \
	tests/integration/t-login.sh \
	tests/integration/t-tls-errors.sh \
	tests/integration/t-list-folders.sh \
	tests/integration/t-redaction.sh \
	tests/integration/t-hostile.sh

TESTS += $(TB_INTEGRATION_TESTS)

# Played by t-hostile.sh (tests/script/*.scn) and t-client.sh
# (tests/script/client/*.scn); keep in step with those directories.
TB_SCENARIOS = \
	tests/script/10-starttls-not-offered.scn \
	tests/script/11-starttls-refused.scn \
	tests/script/12-starttls-garbage-handshake.scn \
	tests/script/13-starttls-injected-data.scn \
	tests/script/14-implicit-unknown-ca.scn \
	tests/script/20-greeting-garbage.scn \
	tests/script/21-greeting-bye.scn \
	tests/script/22-list-unbalanced.scn \
	tests/script/23-list-unterminated-quote.scn \
	tests/script/24-binary-garbage.scn \
	tests/script/25-overlong-line.scn \
	tests/script/26-bad-status.scn \
	tests/script/27-list-no.scn \
	tests/script/30-literal-huge-fetch.scn \
	tests/script/31-literal-huge-list.scn \
	tests/script/32-literal-overflow.scn \
	tests/script/33-literal-disconnect.scn \
	tests/script/34-literal-malformed.scn \
	tests/script/40-deep-nesting.scn \
	tests/script/41-deep-nesting-balanced.scn \
	tests/script/50-bad-utf7.scn \
	tests/script/51-unsafe-names.scn \
	tests/script/60-close-after-greeting.scn \
	tests/script/61-close-during-login.scn \
	tests/script/62-login-rejected.scn \
	tests/script/63-bye-during-list.scn \
	tests/script/client/expunge-ordered.scn \
	tests/script/client/expunge-retry.scn \
	tests/script/client/expunge-stuck.scn \
	tests/script/client/expunge-overtaken.scn \
	tests/script/client/expunge-vanished.scn \
	tests/script/client/expunge-vanished-part.scn \
	tests/script/client/copy-refused.scn \
	tests/script/client/gm-msgid.scn \
	tests/script/client/copy-ahead.scn \
	tests/script/client/copy-ahead-refused.scn \
	tests/script/client/early-auth-stale.scn \
	tests/script/client/early-auth-refused.scn \
	tests/script/client/early-first-stale.scn \
	tests/script/client/early-first-refused.scn \
	tests/script/client/bodies-lead-refused.scn \
	tests/script/client/store-append-refused.scn \
	tests/script/client/store-expunge-append.scn \
	tests/script/client/store-append-late.scn \
	tests/script/client/copy-from-many.scn \
	tests/script/client/copy-from-many-uidvalidity.scn \
	tests/script/client/move-from-many.scn \
	tests/script/client/move-ahead-refused.scn \
	tests/script/client/move-ahead-interleaved.scn

# The TAP driver is named by LOG_DRIVER only, so automake does not ship
# it by itself; distcheck runs the tests from the tarball.
EXTRA_DIST += \
	build-aux/tap-driver.sh \
	$(TB_INTEGRATION_TESTS) \
	tests/harness/dovecot.sh \
	tests/script/README \
	$(TB_SCENARIOS) \
	contrib/run-tests \
	contrib/demo \
	.ci/run

# Sync tests (synctest): both sides compared through tests/integration/sync-lib.sh.
TB_SYNC_TESTS = \
	tests/integration/t-sync.sh \
	tests/integration/t-sync-trimmed.sh \
	tests/integration/t-sync-safety.sh \
	tests/integration/t-uidvalidity.sh \
	tests/integration/t-sync-big.sh

TESTS += $(TB_SYNC_TESTS)
EXTRA_DIST += $(TB_SYNC_TESTS) tests/integration/sync-lib.sh

# Crash, move and rename tests (kill -9 and TWINBOX_CRASH_AT, both ways).
TESTS += \
	tests/integration/t-crash.sh \
	tests/integration/t-moves.sh \
	tests/integration/t-moves-crash.sh \
	tests/integration/t-renames.sh \
	tests/integration/t-copies.sh \
	tests/integration/t-copies-crash.sh
EXTRA_DIST += \
	tests/integration/t-crash.sh \
	tests/integration/t-moves.sh \
	tests/integration/t-moves-crash.sh \
	tests/integration/t-renames.sh \
	tests/integration/t-copies.sh \
	tests/integration/t-copies-crash.sh \
	tests/integration/crash-lib.sh

# sync --watch (tests/integration/watch-lib.sh): IDLE, inotify, signals.
# t-watch-long.sh, t-watch.sh and t-watch-renew.sh spend minutes waiting:
# Makefile.am starts them before every other test.
TB_FIRST_TESTS = \
	tests/integration/t-watch-long.sh \
	tests/integration/t-watch.sh \
	tests/integration/t-watch-renew.sh
TB_WATCH_TESTS = \
	tests/integration/t-watch-idle.sh \
	tests/integration/t-watch-net.sh \
	tests/integration/t-watch-reconnect.sh \
	tests/integration/t-watch-stop.sh \
	tests/integration/t-watch-accounts.sh \
	tests/integration/t-watch-crash.sh
TESTS += $(TB_WATCH_TESTS)
EXTRA_DIST += $(TB_FIRST_TESTS) $(TB_WATCH_TESTS) \
	tests/integration/watch-lib.sh

# t-watch-net.sh and t-watch-reconnect.sh take the network away (or freeze
# it) and give it back through this relay.
check_PROGRAMS += tests/integration/tcp-proxy
tests_integration_tcp_proxy_SOURCES = tests/integration/tcp-proxy.c
# Round trips: the run after a push sends no SELECT (issue 12).
TESTS += tests/integration/t-no-echo.sh
EXTRA_DIST += tests/integration/t-no-echo.sh
TESTS += tests/integration/t-flights.sh
EXTRA_DIST += tests/integration/t-flights.sh
# The same over a slow link: the benchmark's delay proxy (contrib/bench/)
# between twinbox and Dovecot.
check_PROGRAMS += tests/integration/delayproxy
tests_integration_delayproxy_SOURCES = contrib/bench/delayproxy.c
TESTS += tests/integration/t-flights-slow.sh
EXTRA_DIST += tests/integration/t-flights-slow.sh
# `connections` is a maximum: logins only where they pay (issue 12).
TESTS += tests/integration/t-connections.sh
EXTRA_DIST += tests/integration/t-connections.sh
