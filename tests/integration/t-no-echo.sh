#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-no-echo.sh - SPEC "Round trips": the sync after one that pushed changes
# sends no SELECT; its own STOREs, expunges and APPENDs are in the saved
# bookmark, so the next run's STATUS precheck finds the folders unchanged
# and sends what a no-op sends. And a change somebody else makes on the
# server while a run pushes is not hidden by that bookmark: the next run
# fetches it (the run is stopped with TWINBOX_STOP_AT after its STORE,
# the server changed, the run continued).

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/sync-lib.sh"
. "$TOP_SRCDIR/tests/integration/crash-lib.sh"

mid() { printf '<ne.%s@twinbox.test>' "$1"; }

sync_ok() {	# sync_ok NAME
	tb_run "$TWINBOX" -c "$CFG" sync
	is "$RUN_STATUS" 0 "$1" || diag "$RUN_ERR"
}

selects() { rawlog_commands | grep -cE '^(SELECT|EXAMINE)$'; }

# Per session that marked messages \Deleted: how many UID STOREs reached
# the server before it answered the first one, of how many ("3/3": all
# in one flight).
stores_in_first_flight() {	# one "n/m" per selected folder with STOREs
	local f
	# A connection may hold several folders in turn: each SELECT starts a
	# folder's flight, whose first UID STORE's reply ends it.
	for f in "$DOVECOT_DIR"/rawlog/*.in; do
		grep -q 'UID STORE .*Deleted' "$f" || continue
		awk 'NR == FNR { if ($2 != "*" && !($2 in t)) t[$2] = $1 + 0; next }
		     $3 == "SELECT" || $3 == "EXAMINE" {
			if (m) print n + 0 "/" m
			m = n = 0; a = ""; next }
		     $3 == "UID" && $4 == "STORE" {
			if (a == "") a = t[$2]
			m++; if ($1 + 0 <= a) n++ }
		     END { if (m) print n + 0 "/" m }' "${f%.in}.out" "$f"
	done
}

# Run a sync stopped at crash point $1 (SIGSTOP); run "$2" while it is
# stopped, then let it finish.
sync_with_change_at() {
	local pid i st=
	TWINBOX_STOP_AT=$1 "$TWINBOX" -c "$CFG" sync \
		>"$TEST_TMP/stop.out" 2>"$TEST_TMP/stop.err" </dev/null &
	pid=$!
	for i in $(seq 1 300); do
		st=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)
		[ "$st" = T ] || [ -z "$st" ] && break
		sleep 0.1
	done
	if [ "$st" != T ]; then
		fail "run stopped at '$1'"
		diag "state '$st'" "$(cat "$TEST_TMP/stop.err")"
		kill -CONT "$pid" 2>/dev/null
		wait "$pid"
		return 1
	fi
	pass "run stopped at '$1'"
	eval "$2"
	kill -CONT "$pid"
	wait "$pid"
	is "$?" 0 "the stopped run finishes" || diag "$(cat "$TEST_TMP/stop.err")"
}

dovecot_start
U=$TEST_USER
M=$TEST_TMP/mail
CFG=$TEST_TMP/ne.yaml
tb_write_config "$CFG" ne maildir="$M"
cl_seed "$U" INBOX 12 ne S || fail "seed INBOX"
cl_seed "$U" Work 6 ne.w S || fail "seed Work"
sync_ok "first sync"
rawlog_reset
sync_ok "no-op sync"
NOOP=$(rawlog_commands | sort)
is "$(selects)" 0 "a no-op selects nothing"

# --- one local flag change ---------------------------------------------
cl_set_flags INBOX 1 FS
rawlog_reset
sync_ok "push one flag"
like "$(rawlog_commands | tr '\n' ' ')" "UID STORE" "the flag went out as a STORE"
is "$(mail_list "$U" INBOX | awk -F '\t' -v id="$(mid 1)" '$3 == id { print $2 }')" \
	'\Flagged \Seen' "the server has the flag"
rawlog_reset
sync_ok "sync after the push"
is "$(selects)" 0 "the sync after a pushed flag selects nothing"
is "$(rawlog_commands | sort)" "$NOOP" "... and sends what a no-op sends"

# --- flags, a deletion, a new message and a move each way, two folders ---
cl_set_flags INBOX 2 RS
cl_set_flags INBOX 3 ""
cl_delete_local INBOX 4
cl_new_local INBOX upload1
cl_set_flags Work w.1 FRS
cl_delete_local Work w.2
x=$(cl_local_file "$M" INBOX "$(mid 11)") && mv "$x" "$M/Work/cur/"
x=$(cl_local_file "$M" Work "$(mid w.3)") && mv "$x" "$M/INBOX/cur/"
rawlog_reset
sync_ok "push flags, a deletion, a new message and moves"
like "$(rawlog_commands | tr '\n' ' ')" "APPEND" "the new message went out"
like "$(rawlog_commands | tr '\n' ' ')" "UID EXPUNGE" "the deletions went out"
flights=$(stores_in_first_flight | tr '\n' ' ')
is "$(printf '%s\n' $flights | awk -F/ '$1 != $2 || $2 < 2' | wc -l)/$(printf '%s\n' $flights | wc -l)" "0/2" \
	"the flags and the \\Deleted went out in one flight of STOREs per folder" ||
	diag "$flights"
unlike "$(rawlog_commands | tr '\n' ' ')" "UID SEARCH" \
	"no UID SEARCH checks the expunge (VANISHED said it)"
check_same "$U" INBOX "$M/INBOX" "INBOX in step after the push"
check_same "$U" Work "$M/Work" "Work in step after the push"
rawlog_reset
sync_ok "sync after the push"
is "$(selects)" 0 "the sync after STORE, EXPUNGE, APPEND and MOVE selects nothing"
is "$(rawlog_commands | sort)" "$NOOP" "... and sends what a no-op sends"

# --- somebody else's change during the push is not skipped --------------
# (1) made after our STORE, before our expunge: the server tells us
#     during the expunge, and the bookmark stays as selected
cl_set_flags INBOX 5 FS
cl_delete_local INBOX 6
uid7=$(cl_uid_of "$U" INBOX "$(mid 7)")
uid8=$(cl_uid_of "$U" INBOX "$(mid 8)")
sync_with_change_at "server flags stored" \
	"mail_flags_add '$U' INBOX '$uid7' '\\Answered'; mail_expunge '$U' INBOX '$uid8'"
rawlog_reset
sync_ok "sync after a concurrent change"
like "$(rawlog_commands | tr '\n' ' ')" "SELECT" "it selects INBOX again"
check_same "$U" INBOX "$M/INBOX" "the concurrent flag and expunge reached the Maildir"
is "$(local_list "$M/INBOX" | grep -F "$(mid 7)" | cut -f2)" RS \
	"the other client's flag is here"

# (2) made after our last command: a later mod-sequence than ours
cl_set_flags INBOX 9 FS
uid10=$(cl_uid_of "$U" INBOX "$(mid 10)")
sync_with_change_at "server flags stored" \
	"mail_flags_add '$U' INBOX '$uid10' '\\Flagged'"
rawlog_reset
sync_ok "sync after a change made behind our STORE"
like "$(rawlog_commands | tr '\n' ' ')" "SELECT" "it selects INBOX again"
check_same "$U" INBOX "$M/INBOX" "the later flag reached the Maildir"
is "$(local_list "$M/INBOX" | grep -F "$(mid 10)" | cut -f2)" FS \
	"the other client's flag is here"
check_same "$U" Work "$M/Work" "Work untouched and in step"

done_testing
