#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-moves.sh - SPEC "Sync semantics": a move on one side is replayed as a
# move on the other, with no message body crossing the wire:
#   local move (same file name, or same content under a new name) ->
#     UID MOVE on the server (UID COPY + delete without MOVE; moves out of
#     one folder into several: a UID COPY to each, then one expunge), no APPEND,
#     no body fetch;
#   server move -> the local file renamed into the target folder, same
#     base name, only headers fetched;
#   a move with a flag change, and a move on one side with a deletion or a
#   flag change on the other: kept in the new folder with merged flags;
#   --json counts pulled_moves / pushed_moves;
#   500 moves each way cost a handful of commands, not one per message.
# Runs against a full Dovecot and a --trimmed one (no MOVE, no UIDPLUS).

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/crash-lib.sh"

rawlog_reset() {	# forget the sessions so far
	rawlog_client_lines >/dev/null
	rm -f "$DOVECOT_DIR"/rawlog/*
}

json_num() {	# json_num FOLDER FIELD: from RUN_OUT
	printf '%s\n' "$RUN_OUT" | grep -F "\"folder\":\"$1\"," |
		sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" | head -n 1
}

mid() { printf '<%s.%s@twinbox.test>' "$TAG" "$1"; }

# move_local ID FROM TO [FLAGS]: mv the file, same name; FLAGS replace the
# info flags when given.
move_local() {
	local x b
	x=$(cl_local_file "$M" "$2" "$1") || { diag "no local file for $1 in $2"; return 1; }
	b=${x##*/}
	if [ $# -ge 4 ]; then
		b="${b%%:2,*}:2,$4"
	fi
	mv "$x" "$M/$3/cur/$b"
}

base_of() { local b=${1##*/}; printf '%s' "${b%%:2,*}"; }

body_fetches() {	# command lines that fetch a whole body
	printf '%s\n' "$1" | grep -Ei 'BODY(\.PEEK)?\[\]|BINARY(\.PEEK)?\[|RFC822([^.]|$)'
}

run_mode() {
	local mode=$1 uid lines x b_before n
	T0=$SECONDS
	dovecot_start ${2:-}
	U=$TEST_USER
	TAG=mv$mode
	M=$TEST_TMP/mail-$mode
	CFG=$TEST_TMP/$mode.yaml
	tb_write_config "$CFG" "acct$mode" maildir="$M"
	# \Seen, so the files land in cur/ as a reader leaves them
	cl_seed "$U" INBOX 20 "$TAG" S || fail "$mode: seed"
	mail_folder_create "$U" Archive
	mail_folder_create "$U" Work
	mail_folder_create "$U" Bulk
	cl_seed "$U" INBOX 500 "$TAG.bl" S
	cl_seed "$U" Work 500 "$TAG.bs" S
	# a message marked \Deleted but not expunged: moving others out of
	# INBOX must not expunge it (a plain EXPUNGE would)
	mail_flags_add "$U" INBOX "$(cl_uid_of "$U" INBOX "$(mid 11)")" '\Deleted'
	tb_run "$TWINBOX" -c "$CFG" sync
	is "$RUN_STATUS" 0 "$mode: first sync" || diag "$RUN_ERR"
	TOTAL=1020

	diag "$mode: set-up took $((SECONDS - T0)) s"
	# --- A. local moves -------------------------------------------------
	move_local "$(mid 1)" INBOX Archive
	x=$(cl_local_file "$M" INBOX "$(mid 2)") &&
		cp -p "$x" "$M/Archive/cur/1700000000.M2P2.renamed:2,S" &&
		rm -f "$x"
	rawlog_reset
	tb_run "$TWINBOX" -c "$CFG" --json sync
	is "$RUN_STATUS" 0 "$mode: local moves: sync succeeds" || diag "$RUN_ERR"
	is "$(cl_where "$U" "$M" "$(mid 1)")" "Archive|Archive" \
		"$mode: local move (same name): in Archive on the server, not in INBOX"
	is "$(cl_where "$U" "$M" "$(mid 2)")" "Archive|Archive" \
		"$mode: local move (new name, same content): in Archive on the server, not in INBOX"
	is "$(json_num Archive pushed_moves)" 2 "$mode: --json: Archive pushed_moves 2" ||
		diag "$RUN_OUT"
	lines=$(rawlog_client_lines)
	unlike "$lines" $'(^|\n)[^ ]+ APPEND ' "$mode: local moves: no APPEND"
	is "$(body_fetches "$lines")" "" "$mode: local moves: no body fetched"
	if [ "$mode" = full ]; then
		like "$lines" $'(^|\n)[^ ]+ UID MOVE ' "$mode: local moves: UID MOVE sent"
	else
		like "$lines" $'(^|\n)[^ ]+ UID COPY ' "$mode: local moves: UID COPY sent (no MOVE advertised)"
		unlike "$lines" $'(^|\n)[^ ]+ UID MOVE ' "$mode: local moves: no UID MOVE (not advertised)"
		unlike "$lines" $'(^|\n)[^ ]+ UID EXPUNGE ' "$mode: local moves: no UID EXPUNGE (UIDPLUS not advertised)"
	fi
	is "$(cl_server_state "$U" INBOX | grep -F "$(mid 11)")|$(cl_local_state "$M/INBOX" | grep -F "$(mid 11)")" \
		"$(mid 11) ST|$(mid 11) ST" \
		"$mode: local moves: a message marked \\Deleted in INBOX is not expunged with them"
	cl_agree "$U" "$M" "$TOTAL"
	ok $? "$mode: local moves: both sides agree, nothing lost or doubled" || diag "$CL_ERR"

	diag "$mode: A took $((SECONDS - T0)) s"
	# --- B. server moves ------------------------------------------------
	b_before=$(base_of "$(cl_local_file "$M" INBOX "$(mid 3)")")
	mail_move "$U" INBOX "$(cl_uid_of "$U" INBOX "$(mid 3)")" Archive
	mail_move "$U" INBOX "$(cl_uid_of "$U" INBOX "$(mid 4)")" Work
	rawlog_reset
	tb_run "$TWINBOX" -c "$CFG" --json sync
	is "$RUN_STATUS" 0 "$mode: server moves: sync succeeds" || diag "$RUN_ERR"
	is "$(cl_where "$U" "$M" "$(mid 3)")" "Archive|Archive" \
		"$mode: server move: the local file moved to Archive"
	is "$(cl_where "$U" "$M" "$(mid 4)")" "Work|Work" \
		"$mode: server move: the local file moved to Work"
	x=$(cl_local_file "$M" Archive "$(mid 3)")
	is "$(base_of "$x")" "${b_before:-(no file before the move)}" \
		"$mode: server move: same base file name"
	is "$(json_num Archive pulled_moves)" 1 "$mode: --json: Archive pulled_moves 1" ||
		diag "$RUN_OUT"
	is "$(json_num Work pulled_moves)" 1 "$mode: --json: Work pulled_moves 1"
	is "$(json_num Archive pulled_new)" 0 "$mode: --json: Archive pulled_new 0 (not a download)"
	lines=$(rawlog_client_lines)
	is "$(body_fetches "$lines")" "" "$mode: server moves: no body fetched (headers only)"
	cl_agree "$U" "$M" "$TOTAL"
	ok $? "$mode: server moves: both sides agree" || diag "$CL_ERR"

	diag "$mode: B took $((SECONDS - T0)) s"
	# --- C. a move and a flag change together ---------------------------
	move_local "$(mid 5)" INBOX Archive FS
	mail_move "$U" INBOX "$(cl_uid_of "$U" INBOX "$(mid 6)")" Archive
	mail_flags_add "$U" Archive "$(cl_uid_of "$U" Archive "$(mid 6)")" '\Flagged'
	tb_run "$TWINBOX" -c "$CFG" sync
	is "$RUN_STATUS" 0 "$mode: moves with flag changes: sync succeeds" || diag "$RUN_ERR"
	is "$(cl_server_state "$U" Archive | grep -F "$(mid 5)")" "$(mid 5) FS" \
		"$mode: local move + new flag: the server has it in Archive with \\Flagged \\Seen"
	is "$(cl_where "$U" "$M" "$(mid 5)")" "Archive|Archive" "$mode: local move + flag: in Archive only"
	is "$(cl_local_state "$M/Archive" | grep -F "$(mid 6)")" "$(mid 6) FS" \
		"$mode: server move + new flag: the local file in Archive has F and S"
	is "$(cl_where "$U" "$M" "$(mid 6)")" "Archive|Archive" "$mode: server move + flag: in Archive only"

	diag "$mode: C took $((SECONDS - T0)) s"
	# --- D. a move on one side, a deletion or flag change on the other ---
	uid=$(cl_uid_of "$U" INBOX "$(mid 7)")
	move_local "$(mid 7)" INBOX Archive
	mail_expunge "$U" INBOX "$uid"
	move_local "$(mid 8)" INBOX Archive RS
	mail_flags_add "$U" INBOX "$(cl_uid_of "$U" INBOX "$(mid 8)")" '\Flagged'
	mail_move "$U" INBOX "$(cl_uid_of "$U" INBOX "$(mid 9)")" Archive
	x=$(cl_local_file "$M" INBOX "$(mid 9)") && rm -f "$x"
	mail_move "$U" INBOX "$(cl_uid_of "$U" INBOX "$(mid 10)")" Archive
	mail_flags_add "$U" Archive "$(cl_uid_of "$U" Archive "$(mid 10)")" '\Answered'
	x=$(cl_local_file "$M" INBOX "$(mid 10)") && mv "$x" "${x%%:2,*}:2,FS"
	tb_run "$TWINBOX" -c "$CFG" sync
	tb_run "$TWINBOX" -c "$CFG" sync	# a second run settles anything left
	is "$RUN_STATUS" 0 "$mode: conflicts: sync succeeds" || diag "$RUN_ERR"
	is "$(cl_where "$U" "$M" "$(mid 7)")" "Archive|Archive" \
		"$mode: local move + server deletion: kept in Archive on both sides"
	is "$(cl_where "$U" "$M" "$(mid 8)")" "Archive|Archive" \
		"$mode: local move + server flag change: in Archive on both sides"
	is "$(cl_server_state "$U" Archive | grep -F "$(mid 8)")|$(cl_local_state "$M/Archive" | grep -F "$(mid 8)")" \
		"$(mid 8) FRS|$(mid 8) FRS" "$mode: local move + server flag change: flags merged (F from the server, R with the move)"
	is "$(cl_where "$U" "$M" "$(mid 9)")" "Archive|Archive" \
		"$mode: server move + local deletion: kept in Archive on both sides"
	is "$(cl_where "$U" "$M" "$(mid 10)")" "Archive|Archive" \
		"$mode: server move + local flag change: in Archive on both sides"
	is "$(cl_server_state "$U" Archive | grep -F "$(mid 10)")|$(cl_local_state "$M/Archive" | grep -F "$(mid 10)")" \
		"$(mid 10) FRS|$(mid 10) FRS" "$mode: server move + local flag change: flags merged (R from the server, F locally)"
	cl_agree "$U" "$M" "$TOTAL"
	ok $? "$mode: after the conflicts both sides agree" || diag "$CL_ERR"

	diag "$mode: D took $((SECONDS - T0)) s"
	# --- E. 500 moves each way in one run -------------------------------
	grep -l -F "Message-ID: <$TAG.bl." "$M"/INBOX/cur/* |
		xargs -r mv -t "$M/Bulk/cur/"
	# all of Work but the message section B moved there
	tb_doveadm move -u "$U" Archive mailbox Work \
		NOT uid "$(cl_uid_of "$U" Work "$(mid 4)")"
	rawlog_reset
	tb_run "$TWINBOX" -c "$CFG" --json sync
	is "$RUN_STATUS" 0 "$mode: 500 moves each way: sync succeeds" || diag "$RUN_ERR"
	is "$(cl_server_ids "$U" Bulk | grep -c "^<$TAG\.bl\.")" 500 \
		"$mode: 500 local moves: all 500 in Bulk on the server"
	is "$(cl_server_ids "$U" INBOX | grep -c "^<$TAG\.bl\.")" 0 \
		"$mode: 500 local moves: none left in INBOX on the server"
	is "$(cl_local_ids "$M/Archive" | grep -c "^<$TAG\.bs\.")" 500 \
		"$mode: 500 server moves: all 500 files in Archive locally"
	is "$(cl_local_ids "$M/Work" | grep -c "^<$TAG\.bs\.")" 0 \
		"$mode: 500 server moves: none left in Work locally"
	is "$(json_num Bulk pushed_moves)/$(json_num Archive pulled_moves)" "500/500" \
		"$mode: --json: Bulk pushed_moves 500, Archive pulled_moves 500"
	lines=$(rawlog_client_lines)
	n=$(printf '%s\n' "$lines" | grep -c .)
	ok $(( n < 30 ? 0 : 1 )) "$mode: 1,000 moves took $n commands (< 30)" ||
		diag "$(printf '%s\n' "$lines" | cut -c1-120 | head -n 40)"
	unlike "$lines" $'(^|\n)[^ ]+ APPEND ' "$mode: 1,000 moves: no APPEND"
	is "$(body_fetches "$lines")" "" "$mode: 1,000 moves: no body fetched"
	cl_agree "$U" "$M" "$TOTAL"
	ok $? "$mode: 1,000 moves: both sides agree" || diag "$CL_ERR"

	diag "$mode: E took $((SECONDS - T0)) s"
	# --- F. moves out of one folder into two ------------------------------
	move_local "$(mid 12)" INBOX Archive
	move_local "$(mid 13)" INBOX Work
	move_local "$(mid 14)" INBOX Archive
	rawlog_reset
	tb_run "$TWINBOX" -c "$CFG" sync
	is "$RUN_STATUS" 0 "$mode: moves to two folders: sync succeeds" || diag "$RUN_ERR"
	is "$(cl_where "$U" "$M" "$(mid 12)")/$(cl_where "$U" "$M" "$(mid 13)")/$(cl_where "$U" "$M" "$(mid 14)")" \
		"Archive|Archive/Work|Work/Archive|Archive" \
		"$mode: moves to two folders: each message in its target on both sides"
	if [ "$mode" = full ]; then
		rawlog_client_lines >/dev/null
		# the session that moved: INBOX selected once for both
		# targets, a UID COPY to each, then one expunge for all three
		# (a UID MOVE each would make Dovecot re-sync INBOX twice)
		n=$(for f in "$DOVECOT_DIR"/rawlog/*.in; do
			tr -d '\r' <"$f" | sed -E 's/^[0-9]+\.[0-9]+ //' |
				awk '/ UID (MOVE|COPY) /{m++; if (m > 1) print s; s = 0}
				     / SELECT /{if (m) s++}'
		done)
		is "$n" 0 "$mode: moves to two folders: no SELECT between the two UID COPYs" ||
			diag "$(rawlog_client_lines | cut -c1-100)"
		lines=$(rawlog_client_lines)
		is "$(printf '%s\n' "$lines" | grep -c ' UID COPY ')/$(printf '%s\n' "$lines" | grep -c ' UID MOVE ')/$(printf '%s\n' "$lines" | grep -c ' UID EXPUNGE ')" \
			"2/0/1" "$mode: moves to two folders: 2 UID COPY, no UID MOVE, 1 UID EXPUNGE" ||
			diag "$(printf '%s\n' "$lines" | cut -c1-100)"
		# one flight: the second UID COPY reached the server before
		# it answered the first (rawlog time stamps)
		n=$(for f in "$DOVECOT_DIR"/rawlog/*.in; do
			t=$(awk '$3 == "UID" && $4 == "COPY" { print $2; exit }' "$f")
			[ -n "$t" ] || continue
			a=$(awk -v t="$t" '$2 == t { print $1; exit }' "${f%.in}.out")
			awk -v a="$a" '$3 == "UID" && $4 == "COPY" && $1 <= a { n++ }
				       END { print n + 0 }' "$f"
		done)
		is "$n" 2 "$mode: moves to two folders: both UID COPYs in one flight" ||
			diag "$(rawlog_client_lines | cut -c1-100)"
	fi
	cl_agree "$U" "$M" "$TOTAL"
	ok $? "$mode: moves to two folders: both sides agree" || diag "$CL_ERR"
	! tb_crashed
	ok $? "$mode: no crash"
	diag "$mode: E took $((SECONDS - T0)) s"
	dovecot_stop
}

run_mode full
run_mode trimmed --trimmed

done_testing
