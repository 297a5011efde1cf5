#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-watch.sh - "twinbox sync --watch" against Dovecot, as a user leaving
# it running would check it:
#  1. the first sync, then the account lock: a concurrent sync exits 4
#     and says a watcher runs; messages carry the time except under
#     systemd;
#  2. new mail delivered into the server's INBOX (and, with NOTIFY, into
#     Archive, which is not in watch:) reaches the Maildir, a local flag
#     change and a new local file reach the server: each within 2 s at the
#     95th percentile over 20 events (from the moment the delivery, or
#     the rename or the new file, is complete);
#  3. a folder made locally while the watcher runs is synced and watched;
#  4. without NOTIFY: SIGUSR1 syncs an unwatched folder at once; SIGHUP
#     reloads the configuration (a folder added to watch: is then watched);
#  5. SIGTERM: exit 0 within 5 s; a following sync has nothing to do and
#     both sides agree.
# WATCH_MODE=idle (t-watch-idle.sh) runs it against a Dovecot that
# advertises IDLE and nothing else (no NOTIFY, CONDSTORE, QRESYNC ...).

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/sync-lib.sh"
. "$TOP_SRCDIR/tests/integration/watch-lib.sh"

M=${WATCH_MODE:-full}
if [ "$M" = idle ]; then
	dovecot_start --caps 'IMAP4rev1 IDLE'
else
	dovecot_start
fi
U=$TEST_USER
MD=$TEST_TMP/mail/w
CFG=$TEST_TMP/w.yaml

mail_seed "$U" INBOX 3 --tag "in"
mail_seed "$U" Archive 2 --tag "ar"
# poll: 1h: nothing but IDLE and inotify can make these syncs happen
tb_write_config "$CFG" w --raw '    poll: 1h'

# --- 1. first sync, lock -----------------------------------------------------

watch_start "$CFG"
wait_until 20 local_has "$MD/INBOX" in.3@twinbox.test
ok $? "$M: the first sync pulls INBOX"
wait_until 10 local_has "$MD/Archive" ar.2@twinbox.test
ok $? "$M: the first sync pulls the other folders"
settled

tb_run "$TWINBOX" -c "$CFG" sync
is "$RUN_STATUS" 4 "$M: a sync while the watcher runs exits 4"
like "$RUN_ERR" "watcher .*pid $WATCH_PID" "$M: and says a watcher runs"
tb_run "$TWINBOX" -c "$CFG" sync --watch
is "$RUN_STATUS" 4 "$M: so does a second watcher"
like "$RUN_ERR" "^twinbox: [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} error: " \
	"$M: a watcher's messages carry the date and time"
INVOCATION_ID=0123 tb_run "$TWINBOX" -c "$CFG" sync --watch
like "$RUN_ERR" "^twinbox: error: " "$M: not under systemd (the journal has them)"

# --- 2. latency -----------------------------------------------------------------

: >"$TEST_TMP/lat.pull"
for i in $(seq 1 20); do
	deliver "$U" INBOX "pull.$i@w"
	wait_until 10 local_has "$MD/INBOX" "pull.$i@w"
	echo "$WAITED" >>"$TEST_TMP/lat.pull"
	sleep 0.$((RANDOM % 3))
done
p=$(p95 "$TEST_TMP/lat.pull")
diag "server -> Maildir (s): $(tr '\n' ' ' <"$TEST_TMP/lat.pull")"
ok "$(awk -v p="$p" 'BEGIN { print !(p < 2) }')" \
	"$M: new INBOX mail reaches the Maildir within 2 s (p95 $p s)"

if [ "$M" = full ]; then
	like "$(cat "$WATCH_ERR")" "watching every folder \(NOTIFY\)" \
		"$M: NOTIFY watches every folder"
	# Archive is not in watch:, NOTIFY covers it
	: >"$TEST_TMP/lat.notify"
	for i in $(seq 1 20); do
		deliver "$U" Archive "notify.$i@w"
		wait_until 10 local_has "$MD/Archive" "notify.$i@w"
		echo "$WAITED" >>"$TEST_TMP/lat.notify"
		sleep 0.$((RANDOM % 3))
	done
	p=$(p95 "$TEST_TMP/lat.notify")
	diag "server -> Maildir, Archive (s): $(tr '\n' ' ' <"$TEST_TMP/lat.notify")"
	ok "$(awk -v p="$p" 'BEGIN { print !(p < 2) }')" \
		"$M: new Archive mail reaches the Maildir within 2 s with NOTIFY (p95 $p s)"
else
	unlike "$(cat "$WATCH_ERR")" "NOTIFY\)" "$M: no NOTIFY"
fi

# 10 flag changes (a reader renames new/X to cur/X:2,F) and 10 new files
: >"$TEST_TMP/lat.push"
settled
for i in $(seq 1 10); do
	f=$(grep -lsF "Message-ID: <pull.$i@w>" "$MD"/INBOX/new/* "$MD"/INBOX/cur/* | head -n 1)
	b=${f##*/}
	mv "$f" "$MD/INBOX/cur/${b%%:2,*}:2,F"
	wait_until 10 server_has "$U" INBOX "pull.$i@w" '\Flagged'
	echo "$WAITED" >>"$TEST_TMP/lat.push"
	local_deliver "$MD/INBOX" "push.$i@w"
	wait_until 10 server_has "$U" INBOX "push.$i@w"
	echo "$WAITED" >>"$TEST_TMP/lat.push"
done
p=$(p95 "$TEST_TMP/lat.push")
diag "Maildir -> server (s): $(tr '\n' ' ' <"$TEST_TMP/lat.push")"
ok "$(awk -v p="$p" 'BEGIN { print !(p < 2) }')" \
	"$M: local flag changes and new files reach the server within 2 s (p95 $p s)"

# --- 3. a folder made while watching --------------------------------------------

if [ "$M" = full ]; then	# (the same code in either mode: once is enough)

mkdir -p "$MD/Later/cur" "$MD/Later/new" "$MD/Later/tmp"
local_deliver "$MD/Later" "later.1@w"
wait_until 10 server_has "$U" Later "later.1@w"
ok $? "$M: a new local folder reaches the server ($WAITED s)"
settled
local_deliver "$MD/Later" "later.2@w"
wait_until 5 server_has "$U" Later "later.2@w"
ok $? "$M: and the watcher watches it ($WAITED s)"
fi

if [ "$M" = idle ]; then	# without NOTIFY, Archive is not watched

# --- 4. SIGUSR1, SIGHUP ---------------------------------------------------------

settled
deliver "$U" Archive "usr1@w"
sleep 1
local_has "$MD/Archive" "usr1@w"
ok $((! $?)) "$M: an unwatched folder waits for the sweep"
kill -USR1 "$WATCH_PID"
wait_until 5 local_has "$MD/Archive" "usr1@w"
ok $? "$M: SIGUSR1 syncs it at once ($WAITED s)"

settled
tb_write_config "$CFG" w --raw '    poll: 1h' --raw '    watch: [INBOX, Archive]'
kill -HUP "$WATCH_PID"
wait_until 10 grep -q "configuration reloaded" "$WATCH_ERR"
ok $? "$M: SIGHUP reloads the configuration"
wait_until 10 grep -q "Archive: watching" "$WATCH_ERR"
settled
deliver "$U" Archive "hup@w"
wait_until 5 local_has "$MD/Archive" "hup@w"
ok $? "$M: a folder added to watch: is watched after SIGHUP ($WAITED s)"
kill -0 "$WATCH_PID" 2>/dev/null
ok $? "$M: the watcher is still running"
fi

# --- 5. SIGTERM ----------------------------------------------------------------

deliver "$U" INBOX "last@w"
local_deliver "$MD/Archive" "last.local@w"
wait_until 5 server_has "$U" Archive "last.local@w"
wait_until 5 local_has "$MD/INBOX" "last@w"
settled
watch_stop TERM
is "$WATCH_STATUS" 0 "$M: SIGTERM: exit 0"
ok "$(awk -v s="$WATCH_SECS" 'BEGIN { print !(s < 5) }')" \
	"$M: SIGTERM: gone within 5 s ($WATCH_SECS s)"
unlike "$(cat "$WATCH_ERR")" "AddressSanitizer|runtime error|LeakSanitizer" \
	"$M: no sanitizer report"

tb_run "$TWINBOX" -c "$CFG" --json sync
is "$RUN_STATUS" 0 "$M: a sync after the watcher exits 0"
n=$(printf '%s\n' "$RUN_OUT" | grep -cE '"(pulled|pushed)_[a-z]+":[1-9]')
is "$n" 0 "$M: and finds nothing left to do" || diag "$RUN_OUT"
for f in INBOX Archive $([ "$M" = full ] && echo Later); do
	check_same "$U" "$f" "$MD/$f" "$M: $f: both sides agree"
done
if [ "$M" = idle ]; then
	used=$(rawlog_commands | sort -u | grep -E '^(ENABLE|NOTIFY|UID MOVE|UID EXPUNGE)$')
	is "$used" "" "$M: no extension the server did not announce"
fi

done_testing
