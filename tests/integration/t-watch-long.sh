#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-watch-long.sh - the slow sync --watch checks, side by side so that
# they cost their two minutes once:
#  1. quiet: a watcher left alone for 2 minutes sends nothing but IDLE,
#     DONE and NOOP (Dovecot's rawlog) and uses at most 0.02 s of CPU
#     (the issue's 0.1 s per 10 minutes);
#  2. suspended: a second watcher (another user) stopped with SIGSTOP for
#     60 s while mail arrives and the Maildir changes; after SIGCONT both
#     sides are in step within 10 s.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/sync-lib.sh"
. "$TOP_SRCDIR/tests/integration/watch-lib.sh"

dovecot_start
A=$TEST_USER B=$TEST_USER2
mail_seed "$A" INBOX 3 --tag "qa"
mail_seed "$B" INBOX 3 --tag "sb"
mail_seed "$B" Archive 1 --tag "sbar"
printf '%s\n' "$TEST_PASS2" >"$TEST_TMP/bob.pass"
chmod 600 "$TEST_TMP/bob.pass"
tb_write_config "$TEST_TMP/a.yaml" a
tb_write_config "$TEST_TMP/b.yaml" b user="$B" \
	password_file="$TEST_TMP/bob.pass" --raw '    poll: 1h'

# the quiet one (WATCH_PID), and the one to stop (BPID)
watch_start "$TEST_TMP/a.yaml"
"$TWINBOX" -c "$TEST_TMP/b.yaml" -vv sync --watch >/dev/null \
	2>"$TEST_TMP/b.err" </dev/null &
BPID=$!
tb_on_exit "kill -KILL $BPID 2>/dev/null"
wait_until 20 local_has "$TEST_TMP/mail/a/INBOX" qa.3@twinbox.test
ok $? "quiet: first sync"
wait_until 20 local_has "$TEST_TMP/mail/b/INBOX" sb.3@twinbox.test
ok $? "suspended: first sync"
settled
sleep 1

cpu() {	# user + system ticks of a process
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}
q0=$(date +%s.%N)
c0=$(cpu "$WATCH_PID")

# --- 2. SIGSTOP for 60 s, meanwhile changes on both sides -------------------------

kill -STOP "$BPID"
sleep 1
deliver "$B" INBOX "stopped.1@w"
deliver "$B" Archive "stopped.2@w"
local_deliver "$TEST_TMP/mail/b/INBOX" "stopped.local@w"
f=$(grep -lsi "Message-ID: <sb.1@twinbox.test>" "$TEST_TMP"/mail/b/INBOX/new/* \
	"$TEST_TMP"/mail/b/INBOX/cur/* | head -n 1)
base=${f##*/}
mv "$f" "$TEST_TMP/mail/b/INBOX/cur/${base%%:2,*}:2,F"
sleep 59
t0=${EPOCHREALTIME/./}
kill -CONT "$BPID"
WAIT_T0=$t0 wait_until 10 local_has "$TEST_TMP/mail/b/INBOX" "stopped.1@w"
ok $? "suspended: server mail arrives within 10 s of SIGCONT ($WAITED s)"
WAIT_T0=$t0 wait_until 10 local_has "$TEST_TMP/mail/b/Archive" "stopped.2@w"
ok $? "suspended: in every folder ($WAITED s)"
WAIT_T0=$t0 wait_until 10 server_has "$B" INBOX "stopped.local@w"
ok $? "suspended: a new local file reaches the server ($WAITED s)"
WAIT_T0=$t0 wait_until 10 server_has "$B" INBOX "sb.1@twinbox.test" '\Flagged'
ok $? "suspended: a local flag change reaches the server ($WAITED s)"
like "$(cat "$TEST_TMP/b.err")" "continued after a stop" \
	"suspended: the watcher noticed the stop"
kill -TERM "$BPID"
wait "$BPID"
is "$?" 0 "suspended: SIGTERM: exit 0"
for fo in INBOX Archive; do
	check_same "$B" "$fo" "$TEST_TMP/mail/b/$fo" "suspended: $fo: both sides agree"
done

# --- 1. two quiet minutes --------------------------------------------------------

now=$(date +%s)
left=$(awk -v a="$q0" -v b="$now" 'BEGIN { printf "%d", 121 - (b - a) }')
[ "$left" -gt 0 ] && sleep "$left"
q1=$(date +%s.%N)
c1=$(cpu "$WATCH_PID")
secs=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", (b - a) / 100 }')
ok "$(awk -v s="$secs" 'BEGIN { print !(s <= 0.02) }')" \
	"quiet: $secs s of CPU in 2 minutes"
watch_stop TERM
is "$WATCH_STATUS" 0 "quiet: SIGTERM: exit 0"
# every line alice's sessions sent in the quiet window (rawlog files are
# named after the imap process, dovecot.log says whose it is)
rawlog_client_lines >/dev/null
pids=$(grep -o "imap($A)<[0-9]*>" "$DOVECOT_DIR/dovecot.log" |
       grep -o '[0-9]*' | sort -u)
all=$(for p in $pids; do
		for f in "$DOVECOT_DIR"/rawlog/*."$p".*.in; do
			[ -f "$f" ] && tr -d '\r' <"$f"
		done
       done)
like "$(printf '%s\n' "$all" | awk -v a="$q0" '$1 + 0 < a')" "NOTIFY SET" \
	"quiet: the rawlog shows how the watcher started"
sent=$(printf '%s\n' "$all" | awk -v a="$q0" -v b="$q1" '$1 + 0 >= a && $1 + 0 <= b' |
       sed -E 's/^[0-9.]+ //')
other=$(printf '%s\n' "$sent" | grep -v '^$' |
	grep -Ev '^([A-Za-z]*[0-9]+ (IDLE|NOOP)|DONE)$')
is "$other" "" "quiet: nothing but IDLE, DONE and NOOP in 2 minutes"
diag "quiet window: $(printf '%s\n' "$sent" | grep -c .) lines sent"

done_testing
