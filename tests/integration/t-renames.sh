#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-renames.sh - a folder renamed on one side is renamed on the other, not
# copied again and deleted:
#   server rename (doveadm mailbox rename) -> the local folder directory
#     is renamed: the same files (same names, same inodes), no body
#     fetched, nothing left at the old path; a sub-folder follows its
#     parent; a message delivered into the renamed folder meanwhile
#     still arrives, and the old files are renamed all the same;
#   local rename (mv of the folder directory) -> RENAME on the server,
#     no APPEND, the messages under the new name, the old name gone.
# Against a full and a --trimmed Dovecot.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/crash-lib.sh"

rawlog_reset() {
	rawlog_client_lines >/dev/null
	rm -f "$DOVECOT_DIR"/rawlog/*
}

body_fetches() {
	printf '%s\n' "$1" | grep -Ei 'BODY(\.PEEK)?\[\]|BINARY(\.PEEK)?\[|RFC822([^.]|$)'
}

json_num() {	# json_num FOLDER FIELD: from RUN_OUT
	printf '%s\n' "$RUN_OUT" | grep -F "\"folder\":\"$1\"," |
		sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" | head -n 1
}

files_of() {	# file names (up to :2,) and inodes under DIR/cur and DIR/new
	find "$1/cur" "$1/new" -maxdepth 1 -type f -printf '%i %f\n' 2>/dev/null |
		sed 's/:2,.*//' | LC_ALL=C sort
}

no_change_run() {	# no_change_run MODE WHAT: a further run moves nothing
	tb_run "$TWINBOX" -c "$CFG" --json sync
	is "$RUN_STATUS" 0 "$1: $2: a further run succeeds" || diag "$RUN_ERR"
	unlike "$RUN_OUT" '"(pulled|pushed)_(new|deletions|moves)":[1-9]' \
		"$1: $2: a further run has nothing to transfer, delete or move" ||
		diag "$RUN_OUT"
}

run_mode() {
	local mode=$1 before after lines total
	dovecot_start ${2:-}
	U=$TEST_USER
	M=$TEST_TMP/mail-$mode
	CFG=$TEST_TMP/$mode.yaml
	tb_write_config "$CFG" "acct$mode" maildir="$M"
	cl_seed "$U" INBOX 5 "$mode.in" S
	cl_seed "$U" Reports 30 "$mode.rep" S
	cl_seed "$U" Projects 10 "$mode.pr" S
	cl_seed "$U" Projects/alpha 7 "$mode.pa" S
	cl_seed "$U" Drafts2 12 "$mode.dr" S
	cl_seed "$U" Clients 6 "$mode.cl" S
	total=70
	tb_run "$TWINBOX" -c "$CFG" sync
	is "$RUN_STATUS" 0 "$mode: first sync" || diag "$RUN_ERR"

	# --- server rename --------------------------------------------------
	before=$(files_of "$M/Reports")
	mail_folder_rename "$U" Reports "Reports 2023"
	rawlog_reset
	tb_run "$TWINBOX" -c "$CFG" sync
	is "$RUN_STATUS" 0 "$mode: server rename: sync succeeds" || diag "$RUN_ERR"
	ok $([ -d "$M/Reports 2023/cur" ] && echo 0 || echo 1) \
		"$mode: server rename: the local folder 'Reports 2023' exists"
	ok $([ ! -e "$M/Reports" ] && echo 0 || echo 1) \
		"$mode: server rename: nothing left at the old local path" ||
		diag "$(find "$M/Reports" | head)"
	after=$(files_of "$M/Reports 2023")
	is "$after" "$before" "$mode: server rename: the same 30 files (names and inodes) in the renamed folder"
	lines=$(rawlog_client_lines)
	is "$(body_fetches "$lines")" "" "$mode: server rename: no body fetched"
	unlike "$lines" $'(^|\n)[^ ]+ APPEND ' "$mode: server rename: no APPEND"
	cl_agree "$U" "$M" "$total"
	ok $? "$mode: server rename: both sides agree" || diag "$CL_ERR"
	no_change_run "$mode" "server rename"

	# --- local rename ---------------------------------------------------
	mv "$M/Drafts2" "$M/Old drafts"
	rawlog_reset
	tb_run "$TWINBOX" -c "$CFG" sync
	is "$RUN_STATUS" 0 "$mode: local rename: sync succeeds" || diag "$RUN_ERR"
	lines=$(rawlog_client_lines)
	like "$lines" $'(^|\n)[^ ]+ RENAME "?Drafts2"? "?Old drafts"?' \
		"$mode: local rename: RENAME sent to the server" ||
		diag "$(printf '%s\n' "$lines" | grep -v 'STATUS\|LOGOUT\|CAPAB')"
	unlike "$lines" $'(^|\n)[^ ]+ APPEND ' "$mode: local rename: no APPEND"
	unlike "$lines" $'(^|\n)[^ ]+ (UID )?(MOVE|COPY) ' "$mode: local rename: no message moved or copied one by one"
	is "$(mail_folders "$U" | grep -cx 'Drafts2')" 0 "$mode: local rename: 'Drafts2' is gone from the server"
	is "$(cl_server_ids "$U" "Old drafts" | grep -c "^<$mode\.dr\.")" 12 \
		"$mode: local rename: 'Old drafts' holds the 12 messages on the server"
	ok $([ ! -e "$M/Drafts2" ] && echo 0 || echo 1) \
		"$mode: local rename: the old local folder was not created again"
	cl_agree "$U" "$M" "$total"
	ok $? "$mode: local rename: both sides agree" || diag "$CL_ERR"
	no_change_run "$mode" "local rename"
	# --- server rename of a parent, plus a new message in it -------------
	mail_folder_rename "$U" Projects Archive2
	cl_seed "$U" Archive2/alpha 1 "$mode.late" S
	total=$((total + 1))
	before=$(files_of "$M/Projects/alpha")
	tb_run "$TWINBOX" -c "$CFG" --json sync
	is "$RUN_STATUS" 0 "$mode: parent rename: sync succeeds" || diag "$RUN_ERR"
	is "$(cl_local_ids "$M/Archive2" | grep -c .)/$(cl_local_ids "$M/Archive2/alpha" | grep -c .)" \
		"10/8" "$mode: parent rename: Archive2 and Archive2/alpha hold their messages locally"
	ok $([ ! -e "$M/Projects/cur" ] && [ ! -e "$M/Projects/alpha/cur" ] && echo 0 || echo 1) \
		"$mode: parent rename: no Projects or Projects/alpha Maildir left locally"
	is "$(files_of "$M/Archive2/alpha" | grep -Fxf <(printf '%s\n' "$before") | grep -c .)" 7 \
		"$mode: parent rename: the sub-folder's 7 files were renamed with it, not copied"
	is "$(json_num Archive2/alpha pulled_new)/$(json_num Archive2/alpha pushed_new)/$(json_num Archive2 pulled_new)/$(json_num Archive2 pushed_new)" \
		"1/0/0/0" "$mode: parent rename: --json: only the new message downloaded, nothing uploaded" ||
		diag "$RUN_OUT"
	is "$(cl_where "$U" "$M" "<$mode.late.1@twinbox.test>")" "Archive2/alpha|Archive2/alpha" \
		"$mode: parent rename: the message added meanwhile arrived"
	cl_agree "$U" "$M" "$total"
	ok $? "$mode: parent rename: both sides agree" || diag "$CL_ERR"
	no_change_run "$mode" "parent rename"

	# --- server rename, and a message delivered into it meanwhile -------
	before=$(files_of "$M/Clients")
	mail_folder_rename "$U" Clients "Clients old"
	cl_seed "$U" "Clients old" 1 "$mode.new" S
	total=$((total + 1))
	tb_run "$TWINBOX" -c "$CFG" --json sync
	is "$RUN_STATUS" 0 "$mode: rename + new message: sync succeeds" || diag "$RUN_ERR"
	ok $([ ! -e "$M/Clients" ] && echo 0 || echo 1) \
		"$mode: rename + new message: nothing left at the old local path" ||
		diag "$RUN_ERR"
	is "$(files_of "$M/Clients old" | grep -Fxf <(printf '%s\n' "$before") | grep -c .)" 6 \
		"$mode: rename + new message: the 6 old files were renamed, not downloaded again"
	is "$(json_num "Clients old" pulled_new)/$(json_num "Clients old" pushed_new)" "1/0" \
		"$mode: rename + new message: --json: only the new message downloaded" ||
		diag "$RUN_OUT"
	cl_agree "$U" "$M" "$total"
	ok $? "$mode: rename + new message: both sides agree" || diag "$CL_ERR"

	! tb_crashed
	ok $? "$mode: no crash"
	dovecot_stop
}

run_mode full
run_mode trimmed --trimmed

done_testing
