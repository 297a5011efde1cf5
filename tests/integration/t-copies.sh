#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-copies.sh - SPEC "Sync semantics": a copy on one side (the message
# stays where it was and appears in another folder) is replayed without
# its body crossing the wire:
#   server copy (into two folders) -> a hard link to the file the Maildir
#     already has (`copies: link`, the default: the files share an inode)
#     or a copy of it (`copies: copy`), no body fetched;
#   local `cp` into another folder -> UID COPY from a folder that holds
#     it, no APPEND (the new UID from COPYUID, or found by content on a
#     server without UIDPLUS);
#   both sides end equal, each copy once per folder, and a second sync has
#   nothing left to do; --json counts pulled_copies / pushed_copies;
#   files cp'ed from three folders into a fourth: a SELECT and a UID COPY
#   per source, all in one flight (Dovecot's rawlog times).
# Runs against a full Dovecot and a --trimmed one (no UIDPLUS, no MOVE).

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/crash-lib.sh"
. "$TOP_SRCDIR/tests/integration/sync-lib.sh"

json_num() {	# json_num FOLDER FIELD: from RUN_OUT
	printf '%s\n' "$RUN_OUT" | grep -F "\"folder\":\"$1\"," |
		sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" | head -n 1
}

json_sum() {	# json_sum FIELD: over every folder of RUN_OUT
	printf '%s\n' "$RUN_OUT" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" |
		awk '{ s += $1 } END { print s + 0 }'
}

mid() { printf '<%s.%s@twinbox.test>' "$TAG" "$1"; }

# every folder: the same Message-IDs on both sides, none twice in a folder
folders_agree() {	# folders_agree NAME FOLDER...
	local name=$1 f s l bad=
	shift
	for f in "$@"; do
		s=$(cl_server_ids "$U" "$f")
		l=$(cl_local_ids "$M/$f")
		[ "$s" = "$l" ] ||
			bad+="$f: server/local differ: $(cl_diff_head "$s" "$l")"$'\n'
		[ -z "$(printf '%s\n' "$s" | uniq -d)$(printf '%s\n' "$l" | uniq -d)" ] ||
			bad+="$f: a message twice in the folder"$'\n'
	done
	[ -z "$bad" ] && { pass "$name"; return 0; }
	fail "$name"
	diag "$bad"
	return 1
}

inode() { stat -c %i "$1" 2>/dev/null || echo "(no file)"; }

# copy_flight FOLDER: in the session that copied into FOLDER, the stretch
# from the SELECT before its first UID COPY into FOLDER to its last one,
# as "copies=N pairs=P late=L waited=W: COMMANDS": N UID COPYs into
# FOLDER, P of them right after a SELECT, L of those that reached the
# server only after it had answered that SELECT, W commands of the
# stretch that reached it only after it had answered the one before them
# (0: one flight). Rawlog times as tests/integration/t-flights.sh reads
# them.
copy_flight() {
	local f
	rawlog_client_lines >/dev/null   # the sessions have ended
	for f in "$DOVECOT_DIR"/rawlog/*.in; do
		grep -qE "UID COPY [0-9:,]+ \"?$1\"?"$'\r?$' "$f" || continue
		awk -v dest="$1" '
		NR == FNR { if ($2 != "*" && $2 != "+" && !($2 in t))
				t[$2] = $1 + 0; next }
		$2 !~ /^[A-Za-z]*[0-9]+$/ { next }
		{
			n++; ts[n] = $1 + 0; tag[n] = $2
			c[n] = toupper($3)
			if (c[n] == "UID") c[n] = c[n] " " toupper($4)
			d = $NF; gsub(/["\r]/, "", d)
			if (c[n] == "UID COPY" && d == dest) {
				if (!first) first = n
				last = n
			}
		}
		END {
			if (!first) { print "copies=0"; exit }
			s = first > 1 && c[first - 1] == "SELECT" ? first - 1 : first
			for (k = s; k <= last; k++) {
				seq = seq " " c[k]
				if (k > s && ts[k] > t[tag[k - 1]]) w++
				if (c[k] != "UID COPY") continue
				nc++
				if (c[k - 1] != "SELECT") continue
				np++
				if (ts[k] > t[tag[k - 1]]) late++
			}
			printf "copies=%d pairs=%d late=%d waited=%d:%s\n",
				nc, np, late, w, seq
		}' "${f%.in}.out" "$f"
	done
}

run_mode() {
	local mode=$1 lines x y e uid
	dovecot_start ${2:-}
	U=$TEST_USER
	TAG=cp$mode
	M=$TEST_TMP/mail-$mode
	CFG=$TEST_TMP/$mode.yaml
	tb_write_config "$CFG" "acct$mode" maildir="$M"
	cl_seed "$U" INBOX 10 "$TAG" S || fail "$mode: seed"
	mail_folder_create "$U" Archive
	mail_folder_create "$U" Work
	tb_run "$TWINBOX" -c "$CFG" sync
	is "$RUN_STATUS" 0 "$mode: first sync" || diag "$RUN_ERR"

	# --- A. server copies -> local links ---------------------------------
	tb_doveadm copy -u "$U" Archive mailbox INBOX \
		uid "$(cl_uid_of "$U" INBOX "$(mid 1)")"
	tb_doveadm copy -u "$U" Work mailbox INBOX \
		uid "$(cl_uid_of "$U" INBOX "$(mid 1)")"
	tb_doveadm copy -u "$U" Archive mailbox INBOX \
		uid "$(cl_uid_of "$U" INBOX "$(mid 2)")"
	x=$(tree_snapshot "$M")
	tb_run "$TWINBOX" -c "$CFG" sync --dry-run
	like "$RUN_OUT" "Archive: would of the new messages, copy 2 locally and 0 on the server" \
		"$mode: --dry-run: says Archive's two new messages would be copied" ||
		diag "$RUN_OUT"
	is "$(tree_snapshot "$M")" "$x" "$mode: --dry-run: the Maildir is untouched"
	rawlog_reset
	tb_run "$TWINBOX" -c "$CFG" --json sync
	is "$RUN_STATUS" 0 "$mode: server copies: sync succeeds" || diag "$RUN_ERR"
	is "$(body_fetch_uids)" "" "$mode: server copies into two folders: no body fetched"
	is "$(cl_where "$U" "$M" "$(mid 1)")" "Archive,INBOX,Work|Archive,INBOX,Work" \
		"$mode: server copy: the message in INBOX, Archive and Work on both sides, once each"
	is "$(json_num Archive pulled_copies)|$(json_num Work pulled_copies)|$(json_sum pulled_new)" \
		"2|1|0" "$mode: --json: pulled_copies Archive 2, Work 1; pulled_new 0" ||
		diag "$RUN_OUT"
	x=$(cl_local_file "$M" INBOX "$(mid 1)")
	is "$(inode "$(cl_local_file "$M" Archive "$(mid 1)")")|$(inode "$(cl_local_file "$M" Work "$(mid 1)")")" \
		"$(inode "$x")|$(inode "$x")" \
		"$mode: copies: link: the three local files share one inode"
	folders_agree "$mode: server copies: every folder equal on both sides" \
		INBOX Archive Work
	check_bytes "$U" Archive "$M/Archive" \
		"$mode: server copies: the linked files hold the server's bytes"

	# --- B. local cp -> UID COPY -----------------------------------------
	x=$(cl_local_file "$M" INBOX "$(mid 3)")
	cp -p "$x" "$M/Archive/cur/"            # same name
	x=$(cl_local_file "$M" INBOX "$(mid 4)")
	cp -p "$x" "$M/Work/cur/1700000000.M4P4.copied:2,FS"  # flagged here
	cp -p "$x" "$M/Archive/cur/1700000000.M4P5.copied:2,S"
	rawlog_reset
	tb_run "$TWINBOX" -c "$CFG" --json sync
	is "$RUN_STATUS" 0 "$mode: local copies: sync succeeds" || diag "$RUN_ERR"
	lines=$(rawlog_client_lines)
	unlike "$lines" $'(^|\n)[^ ]+ APPEND ' "$mode: local cp: no APPEND"
	like "$lines" $'(^|\n)[^ ]+ UID COPY ' "$mode: local cp: UID COPY sent"
	is "$(json_num Archive pushed_copies)|$(json_num Work pushed_copies)|$(json_sum pushed_new)|$(json_sum bytes_up)" \
		"2|1|0|0" "$mode: --json: pushed_copies Archive 2, Work 1; nothing uploaded" ||
		diag "$RUN_OUT"
	is "$(cl_where "$U" "$M" "$(mid 4)")" "Archive,INBOX,Work|Archive,INBOX,Work" \
		"$mode: local copy: the message in INBOX, Archive and Work on both sides, once each"
	folders_agree "$mode: local copies: every folder equal on both sides" \
		INBOX Archive Work
	is "$(cl_server_state "$U" Work | grep -F "$(mid 4)")|$(cl_server_state "$U" INBOX | grep -F "$(mid 4)")" \
		"$(mid 4) FS|$(mid 4) S" \
		"$mode: local copy with other flags: the copy on the server has the file's flags, the source keeps its own"

	# --- C. nothing left: the next run sees its own copies as known ------
	rawlog_reset
	tb_run "$TWINBOX" -c "$CFG" --json sync
	is "$RUN_STATUS" 0 "$mode: next sync succeeds" || diag "$RUN_ERR"
	lines=$(rawlog_client_lines)
	is "$(json_sum pulled_copies)|$(json_sum pushed_copies)|$(json_sum pulled_new)|$(json_sum pushed_new)|$(json_sum pushed_flags)|$(json_sum pulled_flags)" \
		"0|0|0|0|0|0" "$mode: next sync: nothing to copy, transfer or change" ||
		diag "$RUN_OUT"
	unlike "$lines" $'(^|\n)[^ ]+ (APPEND|UID COPY|UID STORE) ' \
		"$mode: next sync: no APPEND, COPY or STORE"

	# --- E. new mail copied on the server before twinbox saw it: one
	# download, the other folders link to it (E2 with --full: no early
	# downloads, the copies wait for the download of the execute phase)
	for e in E1 E2; do
		cl_write_msg "$TEST_TMP/new.eml" "$(mid "$e")" "new $e"
		uid=$(mail_add "$U" INBOX --flags S "$TEST_TMP/new.eml")
		tb_doveadm copy -u "$U" Archive mailbox INBOX uid "$uid"
		tb_doveadm copy -u "$U" Work mailbox INBOX uid "$uid"
		rawlog_reset
		if [ $e = E1 ]; then
			tb_run "$TWINBOX" -c "$CFG" --json sync
		else
			tb_run "$TWINBOX" -c "$CFG" --json sync --full
		fi
		is "$RUN_STATUS" 0 "$mode: $e: new mail in three folders: sync succeeds" || diag "$RUN_ERR"
		is "$(body_fetch_uids | wc -w)|$(json_sum pulled_new)|$(json_sum pulled_copies)" "1|1|2" 			"$mode: $e: one body fetched, two copies made" || diag "$RUN_OUT" "$RUN_ERR"
		x=$(cl_local_file "$M" INBOX "$(mid "$e")")
		is "$(inode "$(cl_local_file "$M" Archive "$(mid "$e")")")|$(inode "$(cl_local_file "$M" Work "$(mid "$e")")")" \
			"$(inode "$x")|$(inode "$x")" "$mode: $e: the three files share one inode"
		folders_agree "$mode: $e: every folder equal on both sides" \
			INBOX Archive Work
	done

	# --- F. moved and copied in one run: where each side put it, once
	x=$(cl_local_file "$M" INBOX "$(mid 6)")
	cp -p "$x" "$M/Work/cur/"
	mv "$x" "$M/Archive/cur/"
	uid=$(cl_uid_of "$U" INBOX "$(mid 7)")
	tb_doveadm copy -u "$U" Work mailbox INBOX uid "$uid"
	tb_doveadm move -u "$U" Archive mailbox INBOX uid "$uid"
	rawlog_reset
	tb_run "$TWINBOX" -c "$CFG" --json sync
	is "$RUN_STATUS" 0 "$mode: moved and copied: sync succeeds" || diag "$RUN_ERR"
	is "$(cl_where "$U" "$M" "$(mid 6)")|$(cl_where "$U" "$M" "$(mid 7)")" \
		"Archive,Work|Archive,Work|Archive,Work|Archive,Work" \
		"$mode: moved and copied (locally, on the server): in Archive and Work on both sides, once each"
	lines=$(rawlog_client_lines)
	is "$(body_fetch_uids)" "" "$mode: moved and copied: no body fetched"
	unlike "$lines" $'(^|\n)[^ ]+ APPEND ' "$mode: moved and copied: no APPEND"
	folders_agree "$mode: moved and copied: every folder equal on both sides" \
		INBOX Archive Work

	# --- D. copies: copy -------------------------------------------------
	tb_write_config "$CFG" "acct$mode" maildir="$M" copies=copy
	tb_doveadm copy -u "$U" Work mailbox INBOX \
		uid "$(cl_uid_of "$U" INBOX "$(mid 5)")"
	rawlog_reset
	tb_run "$TWINBOX" -c "$CFG" --json sync
	is "$RUN_STATUS" 0 "$mode: copies: copy: sync succeeds" || diag "$RUN_ERR"
	is "$(body_fetch_uids)|$(json_num Work pulled_copies)" "|1" \
		"$mode: copies: copy: no body fetched, one copy" || diag "$RUN_OUT"
	x=$(cl_local_file "$M" INBOX "$(mid 5)")
	y=$(cl_local_file "$M" Work "$(mid 5)")
	if [ -n "$y" ] && [ "$(inode "$x")" != "$(inode "$y")" ] && cmp -s "$x" "$y"; then
		pass "$mode: copies: copy: a file of its own with the same bytes"
	else
		fail "$mode: copies: copy: a file of its own with the same bytes"
		diag "INBOX: $x ($(inode "$x"))" "Work: $y ($(inode "$y"))"
	fi
	folders_agree "$mode: copies: copy: every folder equal on both sides" \
		INBOX Archive Work

	# --- G. local cp from three folders into a fourth: the SELECT and
	# UID COPY of each source in one flight ---------------------------
	mail_folder_create "$U" Saved
	for e in GA GW; do
		cl_write_msg "$TEST_TMP/g.eml" "$(mid "$e")" "copy source $e"
		if [ $e = GA ]; then y=Archive; else y=Work; fi
		mail_add "$U" "$y" --flags S "$TEST_TMP/g.eml" >/dev/null
	done
	tb_run "$TWINBOX" -c "$CFG" sync
	is "$RUN_STATUS" 0 "$mode: G: the sources synced" || diag "$RUN_ERR"
	cp -p "$(cl_local_file "$M" INBOX "$(mid 8)")" "$M/Saved/cur/"
	cp -p "$(cl_local_file "$M" Archive "$(mid GA)")" "$M/Saved/cur/"
	cp -p "$(cl_local_file "$M" Work "$(mid GW)")" "$M/Saved/cur/"
	rawlog_reset
	tb_run "$TWINBOX" -c "$CFG" --json sync
	is "$RUN_STATUS" 0 "$mode: G: copies from three folders: sync succeeds" ||
		diag "$RUN_ERR"
	lines=$(rawlog_client_lines)
	unlike "$lines" $'(^|\n)[^ ]+ APPEND ' "$mode: G: no APPEND"
	is "$(body_fetch_uids)" "" "$mode: G: no body fetched"
	is "$(json_num Saved pushed_copies)|$(json_sum pushed_new)|$(json_sum bytes_up)" \
		"3|0|0" "$mode: G: --json: pushed_copies Saved 3; nothing uploaded" ||
		diag "$RUN_OUT"
	is "$(cl_where "$U" "$M" "$(mid 8)")|$(cl_where "$U" "$M" "$(mid GA)")|$(cl_where "$U" "$M" "$(mid GW)")" \
		"INBOX,Saved|INBOX,Saved|Archive,Saved|Archive,Saved|Saved,Work|Saved,Work" \
		"$mode: G: each message in its source and in Saved on both sides, once each"
	folders_agree "$mode: G: every folder equal on both sides" \
		INBOX Archive Work Saved
	x=$(copy_flight Saved)
	diag "$x"
	is "${x%%:*}" "copies=3 pairs=3 late=0 waited=0" \
		"$mode: G: a SELECT and a UID COPY per source, each COPY sent before its SELECT was answered, all in one flight"
	tb_run "$TWINBOX" -c "$CFG" --json sync
	is "$RUN_STATUS|$(json_sum pushed_copies)|$(json_sum pushed_new)|$(json_sum pulled_new)" \
		"0|0|0|0" "$mode: G: the sync after has nothing to do" ||
		diag "$RUN_ERR" "$RUN_OUT"
	dovecot_stop
}

run_mode full
run_mode trimmed --trimmed

done_testing
