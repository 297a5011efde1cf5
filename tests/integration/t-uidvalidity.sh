#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-uidvalidity.sh - SPEC "Sync semantics": a UIDVALIDITY change on a
# server folder. Local messages are re-matched to the server's by content:
# no duplicates on either side, no loss, nothing downloaded again (no
# BODY[] / BODY.PEEK[] fetch of a matched message), and the Maildir files
# a reader already has are left alone. Two ways it happens: the folder
# deleted and re-created with the same messages (new UIDs too), and only
# the UIDVALIDITY bumped. Run against the full and the trimmed Dovecot.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/sync-lib.sh"

inodes() {	# inodes DIR: MSGID inode, sorted
	local_index "$1" | tr '\t' '\037' |
	while IFS=$'\037' read -r id _ path; do
		printf '%s %s\n' "$id" "$(stat -c %i "$path")"
	done | LC_ALL=C sort
}

scenario() {	# scenario full|trimmed
	local M=$1 u root cfg d d2 uv uv2 srvdir save newuid ino ino2

	if [ "$M" = trimmed ]; then
		dovecot_start --trimmed
	else
		dovecot_start
	fi
	u=$TEST_USER
	root=$TEST_TMP/mail-$M
	cfg=$TEST_TMP/$M.yaml
	tb_write_config "$cfg" "acct$M" maildir="$root"
	d=$(local_dir "$root" verbatim Recreated)
	d2=$(local_dir "$root" verbatim Bumped)

	mail_seed "$u" Recreated 6 --tag "re$M"
	mail_seed "$u" Bumped 4 --tag "bu$M"
	mail_flags_add "$u" Recreated 2 '\Seen'
	mail_flags_add "$u" Recreated 3 '\Flagged' '\Answered'
	mail_flags_add "$u" Bumped 1 '\Seen'
	tb_run "$TWINBOX" -c "$cfg" sync
	is "$RUN_STATUS" 0 "$M: initial sync" || diag "$RUN_ERR"
	check_same "$u" Recreated "$d" "$M: Recreated synced"
	ino=$(inodes "$d")

	# Re-create the folder with the same messages (new UIDVALIDITY and
	# new UIDs), plus one new message on each side.
	uv=$(mail_uidvalidity "$u" Recreated)
	srvdir=$(mail_path "$u" Recreated)
	save=$TEST_TMP/saved-$M
	mkdir -p "$save"
	cp -p "$srvdir"/cur/* "$save"/
	mail_folder_delete "$u" Recreated
	mail_folder_create "$u" Recreated
	mail_set_uidvalidity "$u" Recreated $((uv + 1000))
	srvdir=$(mail_path "$u" Recreated)
	mkdir -p "$srvdir/cur" "$srvdir/new" "$srvdir/tmp"
	cp -p "$save"/* "$srvdir/cur/"
	[ -n "${TB__OWNER:-}" ] && chown -R "$TB__OWNER" "$srvdir"
	tb_doveadm force-resync -u "$u" Recreated
	printf '%s\n' "From: s@twinbox.test" "Subject: new on the server" \
		"Message-ID: <srvnew-$M@twinbox.test>" "" "new" |
		mail_add "$u" Recreated >/dev/null
	printf '%s\n' "From: l@twinbox.test" "Subject: new here" \
		"Message-ID: <locnew-$M@twinbox.test>" "" "new" >"$d/new/1700000000.L1.$M"
	uv2=$(mail_uidvalidity "$u" Recreated)
	isnt "$uv2" "$uv" "$M: setup: the UIDVALIDITY changed"
	is "$(mail_count "$u" Recreated)" 7 "$M: setup: 6 old and 1 new message on the server"
	newuid=$(mail_list "$u" Recreated |
		awk -F '\t' -v id="<srvnew-$M@twinbox.test>" '$3 == id { print $1 }')

	# Only the UIDVALIDITY bumped (same UIDs).
	uv=$(mail_uidvalidity "$u" Bumped)
	mail_set_uidvalidity "$u" Bumped $((uv + 77))
	isnt "$(mail_uidvalidity "$u" Bumped)" "$uv" "$M: setup: Bumped has a new UIDVALIDITY"

	rawlog_reset
	tb_run "$TWINBOX" -c "$cfg" sync
	is "$RUN_STATUS" 0 "$M: sync after the UIDVALIDITY changes succeeds" ||
		diag "$RUN_ERR"
	! tb_crashed
	ok $? "$M: no crash"
	is "$(mail_count "$u" Recreated)" 8 "$M: Recreated: 8 messages on the server, no duplicates"
	is "$(local_index "$d" | grep -c .)" 8 "$M: Recreated: 8 local files, no duplicates"
	check_same "$u" Recreated "$d" "$M: Recreated: same messages and flags on both sides"
	check_bytes "$u" Recreated "$d" "$M: Recreated: byte-identical"
	is "$(server_list "$u" Recreated | grep -F "re$M.3@")" \
		"$(printf '<re%s.3@twinbox.test>\tFR' "$M")" "$M: Recreated: flags kept"
	is "$(mail_count "$u" Bumped)" 4 "$M: Bumped: 4 messages on the server"
	check_same "$u" Bumped "$d2" "$M: Bumped: same messages and flags on both sides"
	is "$(body_fetch_uids)" "$newuid " \
		"$M: only the new server message's body was fetched"
	ino2=$(inodes "$d" | grep -v "new-$M@")
	is "$ino2" "$ino" "$M: the matched local files were not rewritten"

	rawlog_reset
	tb_run "$TWINBOX" -c "$cfg" sync
	is "$RUN_STATUS" 0 "$M: the run after that succeeds"
	is "$(rawlog_commands | grep -Ec '^(APPEND|UID STORE|STORE|UID EXPUNGE|EXPUNGE)$')" 0 \
		"$M: and changes nothing on the server"
	is "$(body_fetch_uids)" "" "$M: and downloads nothing"
	check_same "$u" Recreated "$d" "$M: Recreated still in step"
	dovecot_stop
}

scenario full
scenario trimmed
done_testing
