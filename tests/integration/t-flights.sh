#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-flights.sh - SPEC "Round trips": no command waits for a reply it does
# not need. Local moves (to two folders, and to one), flag changes,
# deletions and new files in three folders go to Dovecot; its rawlog
# (every line with the time the server read or wrote it) then shows, per
# connection and selected folder:
#   - the command after a SELECT reached the server before the SELECT's
#     answer left it (the SELECT rides in the flight of the folder's work);
#   - UID EXPUNGE reached it before the answer to the STORE of \Deleted;
#   - the UID COPYs to several folders went in one flight;
# and both sides end equal, and the next run sends no SELECT.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/sync-lib.sh"
. "$TOP_SRCDIR/tests/integration/crash-lib.sh"

mid() { printf '<fl.%s@twinbox.test>' "$1"; }

# In the client's -vvv trace ($RUN_ERR): for each SELECT that follows
# commands matching the regex $1, "behind" when it was written before
# the answer to the last of them was read, "after" when it waited.
selects_after() {
	printf '%s\n' "$RUN_ERR" | CMD_RE="$1" awk '
	BEGIN { cmd = ENVIRON["CMD_RE"] }
	$0 ~ (" C: [A-Za-z]*[0-9]+ " cmd) {
		for (i = 1; i <= NF; i++) if ($i == "C:") tag = $(i + 1)
		read = 0; next
	}
	tag != "" && / S: [A-Za-z]*[0-9]+ (OK|NO|BAD)/ {
		for (i = 1; i <= NF; i++) if ($i == "S:" && $(i + 1) == tag) read = 1
		next
	}
	tag != "" && / C: [A-Za-z]*[0-9]+ SELECT / {
		print (read ? "after" : "behind"); tag = ""
	}'
}

dovecot_start
U=$TEST_USER
M=$TEST_TMP/mail
CFG=$TEST_TMP/fl.yaml
tb_write_config "$CFG" fl maildir="$M"
cl_seed "$U" INBOX 12 fl.i S || fail "seed INBOX"
cl_seed "$U" Archive 6 fl.a S || fail "seed Archive"
cl_seed "$U" Work 6 fl.w S || fail "seed Work"
tb_run "$TWINBOX" -c "$CFG" sync
is "$RUN_STATUS" 0 "first sync" || diag "$RUN_ERR"
tb_run "$TWINBOX" -c "$CFG" sync
is "$RUN_STATUS" 0 "second sync" || diag "$RUN_ERR"

# local work in three folders: moves out of INBOX to two folders (UID
# COPY to each, then one expunge) and out of Work to one (UID MOVE),
# flags, deletions, new files
cl_move_local i.1 INBOX Archive
cl_move_local i.2 INBOX Work
cl_move_local w.1 Work INBOX
cl_set_flags INBOX i.3 FS
cl_set_flags Archive a.1 RS
cl_delete_local INBOX i.4
cl_delete_local Work w.2
cl_delete_local Archive a.2
cl_new_local INBOX fl-new-1
cl_new_local Archive fl-new-2
cl_new_local Work fl-new-3
rawlog_reset
tb_run "$TWINBOX" -c "$CFG" -vv sync
is "$RUN_STATUS" 0 "sync of the local changes" || diag "$RUN_ERR"
cl_agree "$U" "$M" 24
is "$CL_ERR" "" "both sides hold the same 24 messages, once each"
is "$(mail_list "$U" INBOX | awk -F '\t' -v id="$(mid i.3)" '$3 == id { print $2 }')" \
	'\Flagged \Seen' "the server has the flag change"

cmds=$(rawlog_commands | tr '\n' ' ')
like "$cmds" "UID COPY" "the moves to two folders went out as UID COPY"
like "$cmds" "UID MOVE" "the move to one folder went out as UID MOVE"
like "$cmds" "UID EXPUNGE" "the deletions went out"
like "$cmds" "APPEND" "the new files went out"
fl=$(rawlog_flights)
diag "$fl"
ok "$([ "$(printf '%s\n' "$fl" | grep -c 'flights=')" -ge 3 ] && echo 0 || echo 1)" \
	"the rawlog shows the three folders' flights"
is "$(printf '%s\n' "$fl" | grep -c 'sel=[1-9]')" 0 \
	"no command waited for the answer to the SELECT before it"
is "$(printf '%s\n' "$fl" | grep -c 'exp=[1-9]')" 0 \
	"no UID EXPUNGE waited for the answer to its STORE"
is "$(printf '%s\n' "$fl" | grep -c 'copy=[1-9]')" 0 \
	"the UID COPYs to several folders went in one flight"
# per folder and phase: [SELECT + COPYs] [STORE + EXPUNGE] for the
# moves, [SELECT + STOREs + EXPUNGE + APPENDs] for the rest; a folder
# whose connection moved messages out of it and then does its own work
# has both in one selection
is "$(printf '%s\n' "$fl" | awk '{ sub("flights=", "", $5); sub(":.*", "", $5) } $5 > 4' | wc -l)" 0 \
	"at most two flights per folder and phase (four for both phases in one selection)"
# a folder's flags, deletions and new files: SELECT, STOREs, UID EXPUNGE
# and the APPENDs in one flight
x=$(printf '%s\n' "$fl" | grep 'UID STORE.*APPEND')
ok "$([ -n "$x" ] && echo 0 || echo 1)" \
	"the APPENDs went with the STOREs of their folder" || diag "$fl"
is "$(printf '%s\n' "$fl" | grep 'APPEND' | grep -vcE 'flights=1[: ]')" 0 \
	"every folder with new files: its work in one flight" || diag "$fl"
srvs=$(printf '%s\n' "$RUN_ERR" | grep -c 'round trips after the greeting')
ok "$([ "$srvs" -ge 1 ] && echo 0 || echo 1)" "-vv tells the round trips of each connection"

# the run after: what a no-op sends, no SELECT
rawlog_reset
tb_run "$TWINBOX" -c "$CFG" sync
is "$RUN_STATUS" 0 "the sync after" || diag "$RUN_ERR"
is "$(rawlog_commands | grep -cE '^(SELECT|EXAMINE)$')" 0 \
	"the sync after selects nothing" || diag "$(rawlog_commands)"
cl_agree "$U" "$M" 24
is "$CL_ERR" "" "... and both sides still agree"

# new mail on the server in three folders, one connection: each folder's
# bodies are fetched with the next folder's SELECT and FETCH of new
# headers behind them in one flight (no wait between two folders)
CFG1=$TEST_TMP/fl1.yaml
tb_write_config "$CFG1" fl maildir="$M" connections=1
cl_seed "$U" INBOX 3 fl.i2 || fail "seed INBOX"
cl_seed "$U" Archive 3 fl.a2 || fail "seed Archive"
cl_seed "$U" Work 3 fl.w2 || fail "seed Work"
tb_run "$TWINBOX" -c "$CFG1" -vvv sync
is "$RUN_STATUS" 0 "sync of new server mail in three folders" || diag "$RUN_ERR"
cl_agree "$U" "$M" 33
is "$CL_ERR" "" "both sides hold the same 33 messages, once each"
# the client's own trace: the SELECT after a folder's body FETCH was
# written before that FETCH's answer was read (on loopback the server
# may have answered it by then: the client had not waited for it)
behind=$(selects_after 'UID FETCH .*BODY\.PEEK\[\]')
diag "next folder's SELECT against the bodies before it: $(echo $behind)"
ok "$([ -n "$behind" ] && ! printf '%s\n' "$behind" | grep -q after &&
	echo 0 || echo 1)" \
	"every SELECT after a folder's bodies went before their answer was read"

# local changes in three folders, one connection: each folder's flight
# (SELECT, STOREs, UID EXPUNGE, APPENDs) is followed by the next
# folder's before the answers to its APPENDs are read; the run records
# them after, with a bookmark that includes them
cl_set_flags INBOX i.5 FS
cl_set_flags Archive a.3 RS
cl_set_flags Work w.3 FS
cl_delete_local INBOX i.6
cl_new_local INBOX fl-new-4
cl_new_local Archive fl-new-5
cl_new_local Work fl-new-6
tb_run "$TWINBOX" -c "$CFG1" -vvv sync
is "$RUN_STATUS" 0 "sync of local changes in three folders, one connection" ||
	diag "$RUN_ERR"
cl_agree "$U" "$M" 35
is "$CL_ERR" "" "both sides hold the same 35 messages, once each"
is "$(mail_list "$U" Work | awk -F '\t' -v id="$(mid w.3)" '$3 == id { print $2 }')" \
	'\Flagged \Seen' "the server has the flag change"
# the client's own trace: the SELECT after a folder's APPENDs was written
# before the answer to the last of them was read
behind=$(selects_after 'APPEND ')
diag "next folder's SELECT against the APPENDs before it: $(echo $behind)"
is "$(printf '%s\n' "$behind" | grep -c behind)" 2 \
	"both SELECTs after a folder's APPENDs went before their answers were read"
rawlog_reset
tb_run "$TWINBOX" -c "$CFG1" sync
is "$RUN_STATUS" 0 "the sync after" || diag "$RUN_ERR"
is "$(rawlog_commands | grep -cE '^(SELECT|EXAMINE)$')" 0 \
	"the sync after selects nothing" || diag "$(rawlog_commands)"

done_testing
