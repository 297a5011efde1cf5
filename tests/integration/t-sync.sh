#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-sync.sh - "twinbox sync" against Dovecot, as a user would check it:
#  1. initial pull of several folders (nested, non-ASCII, all flags) into
#     an empty Maildir, in both layouts: every message once, byte-identical,
#     flags as Maildir letters, modes 0600/0700, mtime = INTERNALDATE;
#  2. new local messages (new/ and cur/, a new local folder) uploaded once
#     with their flags and INTERNALDATE = mtime; a second run uploads nothing;
#  3. flags both ways with the per-flag merge, deletions both ways, and a
#     deletion against a flag change keeping the message on both sides;
#  4. a run after a sync changes nothing (no STORE/APPEND/EXPUNGE); with
#     QRESYNC a no-op run is LIST + one pipelined batch of STATUS;
#  5. --dry-run changes nothing and prints a plan; --json lines; quiet
#     under cron; -v summary line; "twinbox status".
# SYNC_MODE=trimmed (t-sync-trimmed.sh) runs it against a Dovecot that
# advertises plain IMAP4rev1 only, and checks that twinbox never uses an
# extension the server did not announce.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/sync-lib.sh"

SYNC_MODE=${SYNC_MODE:-full}
M=$SYNC_MODE
if [ "$M" = trimmed ]; then
	dovecot_start --trimmed
else
	dovecot_start
fi
ALL_RAW=$TEST_TMP/rawlog.all	# every client line of the whole test

reset_raw() {	# keep what the sessions so far sent, then start afresh
	rawlog_client_lines >>"$ALL_RAW"
	rawlog_reset
}

# --- server content ----------------------------------------------------------

age_server() {	# age_server USER FOLDER: distinct INTERNALDATEs in 2019
	local d p i=0
	d=$(mail_path "$1" "$2")
	for p in "$d"/cur/* "$d"/new/*; do
		[ -f "$p" ] || continue
		i=$((i + 1))
		touch -d "@$((1546300800 + i * 86400 + RANDOM))" "$p"
	done
	tb_doveadm force-resync -u "$1" "$2"
}

seed_user() {	# seed_user USER
	local u=$1 f
	mail_seed "$u" INBOX 4 --tag "$u-in"
	mail_seed "$u" Archive 3 --tag "$u-ar"
	mail_seed "$u" Lists/dev 3 --tag "$u-ld" --new
	mail_seed "$u" "Entwürfe" 2 --tag "$u-en"
	mail_seed "$u" Flags 9 --tag "$u-fl"
	for f in INBOX Archive Lists/dev "Entwürfe" Flags; do
		age_server "$u" "$f"
	done
	mail_flags_add "$u" INBOX 1 '\Seen' '\Flagged'
	mail_flags_add "$u" INBOX 2 '\Answered' '\Seen'
	mail_flags_add "$u" INBOX 3 '\Draft'
	mail_flags_add "$u" Archive 1 '$Forwarded' '\Seen'
	mail_flags_add "$u" Archive 2 '\Draft' '\Flagged' '$Forwarded' \
		'\Answered' '\Seen'
	mail_flags_add "$u" "Entwürfe" 1 '\Draft'
	mail_flags_add "$u" "Entwürfe" 2 '\Deleted' '\Seen'
	mail_flags_add "$u" Flags 4 '\Seen'
	mail_flags_add "$u" Flags 5 '\Seen'
}

seed_user "$TEST_USER"
[ "$M" = trimmed ] || seed_user "$TEST_USER2"
old=$(server_dates "$TEST_USER" Archive | awk -F '\t' '$2 >= 1577836800')
is "$old" "" "$M: setup: server INTERNALDATEs are in 2019, not today"

# Two accounts: alice in the verbatim layout, bob in maildir++.
printf '%s\n' "$TEST_PASS2" >"$TEST_TMP/bob.pass"
chmod 600 "$TEST_TMP/bob.pass"
tb_write_config "$TEST_TMP/v.yaml" v layout=verbatim maildir="$TEST_TMP/mail/v"
tb_write_config "$TEST_TMP/p.yaml" p layout=maildir++ \
	maildir="$TEST_TMP/mail/p" user="$TEST_USER2" \
	password_file="$TEST_TMP/bob.pass"

FOLDERS=(INBOX Archive Lists/dev "Entwürfe" Flags)
# The layout does not depend on the server's extensions: the trimmed run
# checks the verbatim one only, to stay quick.
ACCTS=(v p)
[ "$M" = trimmed ] && ACCTS=(v)

acct_user() { [ "$1" = v ] && echo "$TEST_USER" || echo "$TEST_USER2"; }
acct_layout() { [ "$1" = v ] && echo verbatim || echo maildir++; }

sync_ok() {	# sync_ok ACCT NAME [OPTIONS/TARGETS...]: a sync, expect exit 0
	local a=$1 name=$2
	shift 2
	local t0=$SECONDS g=() x=() arg
	for arg in "$@"; do	# global options before "sync", the rest after
		case $arg in
		--json | -v | -vv | -q) g+=("$arg") ;;
		*) x+=("$arg") ;;
		esac
	done
	tb_run "$TWINBOX" -c "$TEST_TMP/$a.yaml" "${g[@]}" sync "${x[@]}"
	[ $((SECONDS - t0)) -lt 5 ] || diag "slow: $((SECONDS - t0)) s for: $name"
	is "$RUN_STATUS" 0 "$name" || diag "stdout: $RUN_OUT" "stderr: $RUN_ERR"
	! tb_crashed || fail "$name: no crash"
}

# --- local changes -----------------------------------------------------------

local_write() {	# local_write DIR SUB NAME MSGID MTIME [BODYLINE]
	local dir=$1 sub=$2 name=$3 id=$4 mtime=$5
	mkdir -p "$dir/cur" "$dir/new" "$dir/tmp"
	printf '%s\n' \
		"Date: Thu, 06 May 2021 10:00:00 +0000" \
		"From: Local Writer <local@twinbox.test>" \
		"To: someone@twinbox.test" \
		"Subject: written locally $id" \
		"Message-ID: <$id>" \
		"" \
		"Body of $id." \
		"${6:-A second line, with trailing spaces   }" \
		"" \
		"-- " \
		"sig" >"$dir/$sub/$name"
	touch -d "$mtime" "$dir/$sub/$name"
}

local_path_of() {	# local_path_of DIR MSGID
	local_index "$1" | awk -F '\t' -v id="$2" '$1 == id { print $3 }'
}

local_set_flags() {	# local_set_flags DIR MSGID FLAGS (as mutt would)
	local p base
	p=$(local_path_of "$1" "$2")
	[ -n "$p" ] || { diag "no local file for $2 in $1"; return 1; }
	base=${p##*/}
	base=${base%%:2,*}
	mv "$p" "$1/cur/$base:2,$3"
}

local_rm() {	# local_rm DIR MSGID
	local p
	p=$(local_path_of "$1" "$2")
	[ -n "$p" ] || { diag "no local file for $2 in $1"; return 1; }
	rm -f "$p"
}

uid_of() {	# uid_of USER FOLDER MSGID
	mail_list "$1" "$2" | awk -F '\t' -v id="$3" '$3 == id { print $1 }'
}

expect_list() {	# expect_list "MSGID FLAGS" ...: sorted MSGID<TAB>FLAGS
	local x
	for x in "$@"; do
		printf '%s\t%s\n' "${x%% *}" "${x#* }"
	done | sed 's/\t-$/\t/' | LC_ALL=C sort
}

# --- 1. initial pull ---------------------------------------------------------

for a in "${ACCTS[@]}"; do
	u=$(acct_user $a) layout=$(acct_layout $a) root=$TEST_TMP/mail/$a
	old_umask=$(umask)
	umask 000
	sync_ok $a "$M $layout: initial sync into an empty Maildir succeeds"
	umask "$old_umask"
	is "$RUN_OUT$RUN_ERR" "" "$M $layout: initial sync prints nothing without a terminal"
	for f in "${FOLDERS[@]}"; do
		d=$(local_dir "$root" "$layout" "$f")
		check_same "$u" "$f" "$d" "$M $layout: $f: every message once, same flags"
		check_bytes "$u" "$f" "$d" "$M $layout: $f: byte-identical"
		check_mtimes "$u" "$f" "$d" "$M $layout: $f: mtime = INTERNALDATE"
	done
	is "$(local_list "$(local_dir "$root" "$layout" Archive)")" \
		"$(expect_list "<$u-ar.1@twinbox.test> PS" \
			"<$u-ar.2@twinbox.test> DFPRS" "<$u-ar.3@twinbox.test> -")" \
		"$M $layout: flags as Maildir letters D F P R S in ASCII order"
	is "$(local_list "$(local_dir "$root" "$layout" INBOX)")" \
		"$(expect_list "<$u-in.1@twinbox.test> FS" \
			"<$u-in.2@twinbox.test> RS" "<$u-in.3@twinbox.test> D" \
			"<$u-in.4@twinbox.test> -")" \
		"$M $layout: INBOX flags"
	is "$(local_list "$(local_dir "$root" "$layout" "Entwürfe")")" \
		"$(expect_list "<$u-en.1@twinbox.test> D" "<$u-en.2@twinbox.test> ST")" \
		"$M $layout: a message flagged \\Deleted on the server has T"
	check_modes "$root" "$M $layout: files 0600 and dirs 0700 (even with umask 000)"
	if [ "$layout" = verbatim ]; then
		[ -d "$root/Lists/dev/cur" ] && [ -d "$root/Entwürfe/cur" ] &&
			[ -d "$root/INBOX/cur" ]
	else
		[ -d "$root/.Lists.dev/cur" ] && [ -d "$root/.Entwürfe/cur" ] &&
			[ -d "$root/cur" ] && [ ! -e "$root/INBOX" ]
	fi
	ok $? "$M $layout: folder directories where the layout puts them"
done

# --- 2. new local messages ---------------------------------------------------

for a in "${ACCTS[@]}"; do
	u=$(acct_user $a) layout=$(acct_layout $a) root=$TEST_TMP/mail/$a
	in=$(local_dir "$root" "$layout" INBOX)
	dev=$(local_dir "$root" "$layout" Lists/dev)
	proj=$(local_dir "$root" "$layout" Projects/2024)
	local_write "$in" new "1620295200.L1.host" "$a-new1@local" \
		"2021-05-06 10:00:00 UTC"
	local_write "$in" cur "1625738400.L2.host:2,FS" "$a-new2@local" \
		"2021-07-08 10:00:00 UTC"
	local_write "$dev" cur "1625738400.L3.host:2,R" "$a-new3@local" \
		"2021-07-09 11:11:11 UTC" "$(printf 'x%.0s' $(seq 1 900))"
	local_write "$proj" cur "1625738400.L4.host:2,S" "$a-new4@local" \
		"2021-08-01 00:00:01 UTC"
	# no Message-ID at all (identity then comes from the content)
	printf '%s\n' "From: nobody@twinbox.test" "Subject: no id ($a)" "" \
		"A message without a Message-ID header." >"$dev/new/1625738400.L5.host"
	touch -d "2021-07-10 12:00:00 UTC" "$dev/new/1625738400.L5.host"
	# 8-bit UTF-8 body and no newline at the very end
	printf '%s\n' "From: =?UTF-8?Q?J=C3=BCrgen?= <j@twinbox.test>" \
		"Subject: Grüße ($a)" "Message-ID: <$a-8bit@local>" \
		"Content-Type: text/plain; charset=utf-8" \
		"Content-Transfer-Encoding: 8bit" "" "Grüße aus Köln – ½ €" >"$proj/new/1625738400.L7.host"
	printf 'no final newline' >>"$proj/new/1625738400.L7.host"
	# a delivery still in progress: tmp/ is not a message
	local_write "$in" tmp "1625738400.L6.host" "$a-tmp@local" \
		"2021-07-10 12:00:00 UTC"
	reset_raw
	sync_ok $a "$M $layout: sync with new local messages succeeds"
	for f in INBOX Lists/dev Projects/2024; do
		d=$(local_dir "$root" "$layout" "$f")
		check_same "$u" "$f" "$d" "$M $layout: $f: uploaded once, with flags"
		check_bytes "$u" "$f" "$d" "$M $layout: $f: server copy byte-identical"
		check_mtimes "$u" "$f" "$d" "$M $layout: $f: INTERNALDATE = file mtime"
	done
	is "$(server_list "$u" INBOX | grep -F "@local>")" \
		"$(expect_list "<$a-new1@local> -" "<$a-new2@local> FS")" \
		"$M $layout: INBOX: new/ message without flags, cur/ with F S"
	is "$(mail_count "$u" INBOX)" 6 "$M $layout: INBOX holds 4 + 2 messages (nothing from tmp/)"
	is "$(server_list "$u" Lists/dev | grep -c '^<none>')" 1 \
		"$M $layout: the message without a Message-ID uploaded once"
	n=$(rawlog_commands | grep -c '^APPEND')
	is "$n" 6 "$M $layout: exactly six APPENDs"
	reset_raw
	sync_ok $a "$M $layout: second sync succeeds" --json
	n=$(rawlog_commands | grep -Ec '^(APPEND|UID STORE|STORE|UID EXPUNGE|EXPUNGE)')
	is "$n" 0 "$M $layout: second sync sends no APPEND, STORE or EXPUNGE"
	sums=$(printf '%s\n' "$RUN_OUT" |
		jq -r '.pulled_new + .pushed_new + .pulled_flags + .pushed_flags' |
		sort -u | tr '\n' ' ')
	is "$sums" "0 " "$M $layout: second sync reports no new messages or flags"
done

# --- 3. flags and deletions both ways ----------------------------------------

for a in "${ACCTS[@]}"; do
	u=$(acct_user $a) layout=$(acct_layout $a) root=$TEST_TMP/mail/$a
	d=$(local_dir "$root" "$layout" Flags)
	id() { printf '<%s-fl.%s@twinbox.test>' "$u" "$1"; }
	is "$(local_list "$d" | grep -c .)" 9 "$M $layout: Flags: 9 messages before"
	# server side
	mail_flags_add "$u" Flags 1 '\Flagged'
	mail_flags_add "$u" Flags 3 '\Flagged'
	mail_flags_remove "$u" Flags 4 '\Seen'
	mail_expunge "$u" Flags 6
	mail_expunge "$u" Flags 8
	mail_flags_add "$u" Flags 9 '\Flagged'
	# local side
	local_set_flags "$d" "$(id 2)" S
	local_set_flags "$d" "$(id 3)" S
	local_set_flags "$d" "$(id 4)" FS
	local_set_flags "$d" "$(id 5)" ""
	local_rm "$d" "$(id 7)"
	local_set_flags "$d" "$(id 8)" F
	local_rm "$d" "$(id 9)"
	sync_ok $a "$M $layout: sync of flag changes and deletions succeeds"
	want=$(expect_list "$(id 1) F" "$(id 2) S" "$(id 3) FS" "$(id 4) F" \
		"$(id 5) -" "$(id 8) F" "$(id 9) F")
	got_s=$(server_list "$u" Flags)
	got_l=$(local_list "$d")
	is "$(grep -F "$(id 1)" <<<"$got_l")" "$(grep -F "$(id 1)" <<<"$want")" \
		"$M $layout: server \\Flagged arrives locally"
	is "$(grep -F "$(id 2)" <<<"$got_s")" "$(grep -F "$(id 2)" <<<"$want")" \
		"$M $layout: local S arrives on the server"
	is "$(grep -F "$(id 3)" <<<"$got_s$got_l")" \
		"$(grep -F "$(id 3)" <<<"$want$want")" \
		"$M $layout: server +F and local +S on one message: both flags on both sides"
	is "$(grep -F "$(id 4)" <<<"$got_s$got_l")" \
		"$(grep -F "$(id 4)" <<<"$want$want")" \
		"$M $layout: server -S and local +F: F only on both sides"
	is "$(grep -F "$(id 5)" <<<"$got_s")" "$(grep -F "$(id 5)" <<<"$want")" \
		"$M $layout: local -S arrives on the server"
	is "$(grep -cF -e "$(id 6)" -e "$(id 7)" <<<"$got_s$got_l")" 0 \
		"$M $layout: deletions both ways"
	is "$(grep -F "$(id 8)" <<<"$got_s$got_l")" \
		"$(grep -F "$(id 8)" <<<"$want$want")" \
		"$M $layout: expunged on the server, flagged locally: kept on both"
	is "$(grep -F "$(id 9)" <<<"$got_s$got_l")" \
		"$(grep -F "$(id 9)" <<<"$want$want")" \
		"$M $layout: deleted locally, flagged on the server: kept on both"
	is "$got_l" "$want" "$M $layout: Flags: the whole local folder as expected"
	is "$got_s" "$want" "$M $layout: Flags: the whole server folder as expected"
	check_bytes "$u" Flags "$d" "$M $layout: Flags: restored copies byte-identical"
done

# --- 4. a second run changes nothing -----------------------------------------

u=$TEST_USER root=$TEST_TMP/mail/v
has_cmd() {	# has_cmd REGEX: count of client lines (tag stripped) matching
	rawlog_client_lines | sed -E 's/^[A-Za-z]*[0-9]+ //' |
		grep -Eic "$1"
}
selects() {	# the folders SELECTed or EXAMINEd, sorted
	rawlog_client_lines | sed -nE \
		's/^[A-Za-z]*[0-9]+ (SELECT|EXAMINE) ("[^"]*"|[^ ]+).*/\2/Ip' |
		tr -d '"' | LC_ALL=C sort
}
snap_l=$(tree_snapshot "$root")
snap_s=$(server_snapshot "$u")
reset_raw
sync_ok v "$M: first run after the changes succeeds"
is "$(has_cmd '^(UID )?(STORE|EXPUNGE|MOVE|COPY)|^APPEND')" 0 \
	"$M: first run after the changes writes nothing on the server"
if [ "$M" = full ]; then
	sel=$(selects | tr '\n' ' ')
	like "$sel" '^(Flags )?$' \
		"$M: first run after the changes SELECTs at most the folder twinbox changed"
fi
reset_raw
sync_ok v "$M: no-op run succeeds"
is "$(has_cmd '^(UID )?(STORE|EXPUNGE|MOVE|COPY)|^APPEND')" 0 \
	"$M: no-op run sends no STORE, APPEND, EXPUNGE, MOVE or COPY"
is "$(tree_snapshot "$root")" "$snap_l" "$M: no-op runs change nothing in the Maildir"
is "$(server_snapshot "$u")" "$snap_s" "$M: no-op runs change nothing on the server"
if [ "$M" = full ]; then
	cmds=$(rawlog_commands | grep -Ev '^(ENABLE|CAPABILITY|ID|LOGOUT|NOOP)$' |
		sort | uniq -c | awk '{ print $2 "=" $1 }' | tr '\n' ' ')
	is "$cmds" "LIST=1 STATUS=6 " \
		"$M: with QRESYNC a no-op run is one LIST and one STATUS per folder"
	# Dovecot answers STATUS from its list index only before LIST and,
	# for INBOX, before any other mailbox: STATUS INBOX comes first.
	order=$(rawlog_client_lines | awk 'toupper($2) == "STATUS" ||
		toupper($2) == "LIST" { print toupper($2) " " $3 }' |
		tr -d '"' | head -n 2 | tr '\n' ' ')
	is "$order" "STATUS INBOX STATUS Archive " \
		"$M: the STATUS precheck goes out first, INBOX first, before LIST"
	# Pipelined: every STATUS command reached the server before the
	# first STATUS answer left it.
	piped=1
	for fin in "$DOVECOT_DIR"/rawlog/*.in; do
		fout=${fin%.in}.out
		last_in=$(tr -d '\r' <"$fin" | awk '$2 ~ /^[A-Za-z]*[0-9]+$/ &&
			toupper($3) == "STATUS" { t = $1 } END { print t }')
		[ -n "$last_in" ] || continue
		first_out=$(tr -d '\r' <"$fout" | awk '$2 == "*" &&
			toupper($3) == "STATUS" { print $1; exit }')
		awk -v a="$last_in" -v b="$first_out" \
			'BEGIN { exit !(b != "" && a + 0 <= b + 0) }' || piped=0
	done
	is "$piped" 1 "$M: the STATUS commands are pipelined in one batch"
	# ... and LIST travels in the same flight, behind them
	piped=0
	for fin in "$DOVECOT_DIR"/rawlog/*.in; do
		fout=${fin%.in}.out
		list_in=$(tr -d '\r' <"$fin" | awk '$2 ~ /^[A-Za-z]*[0-9]+$/ &&
			toupper($3) == "LIST" { print $1; exit }')
		[ -n "$list_in" ] || continue
		first_out=$(tr -d '\r' <"$fout" | awk '$2 == "*" &&
			toupper($3) == "STATUS" { print $1; exit }')
		awk -v a="$list_in" -v b="$first_out" \
			'BEGIN { exit !(b != "" && a + 0 <= b + 0) }' && piped=1
	done
	is "$piped" 1 "$M: LIST goes out with the STATUS batch, not after it"
	mail_flags_add "$u" Archive 3 '\Flagged'
	reset_raw
	sync_ok v "$M: run after one server flag change succeeds" --json
	is "$(selects | tr '\n' ' ')" "Archive " \
		"$M: only the changed folder is SELECTed"
	is "$(jq -r 'select(.folder == "Archive") | .pulled_flags' <<<"$RUN_OUT")" 1 \
		"$M: and its flag change pulled"
fi

# A reader moves a message from new/ to cur/ without flags: not a change.
dev=$(local_dir "$root" verbatim Lists/dev)
p=$(local_path_of "$dev" "<$u-ld.1@twinbox.test>")
like "$p" '/new/' "$M: setup: an unread message in new/"
mv "$p" "$dev/cur/${p##*/}:2,"
snap_s=$(server_snapshot "$u")
reset_raw
sync_ok v "$M: sync after a reader moved new/ to cur/ succeeds"
is "$(has_cmd '^(UID )?(STORE|EXPUNGE|MOVE|COPY)|^APPEND')" 0 \
	"$M: moving new/ to cur/ is no change for the server"
is "$(server_snapshot "$u")" "$snap_s" "$M: the server is untouched"
[ -f "$dev/cur/${p##*/}:2," ]
ok $? "$M: the file stays where the reader put it"

# Moves both ways: replayed as moves, no body sent again. Entwürfe holds
# a message flagged \Deleted on the server: moving another one out of it
# must not expunge that one (a plain EXPUNGE without UIDPLUS would).
ent=$(local_dir "$root" verbatim "Entwürfe")
arch=$(local_dir "$root" verbatim Archive)
p=$(local_path_of "$ent" "<$u-en.1@twinbox.test>")
mv "$p" "$arch/cur/"
mail_move "$u" Lists/dev "$(uid_of "$u" Lists/dev "<$u-ld.2@twinbox.test>")" Archive
reset_raw
sync_ok v "$M: sync of a move each way succeeds" --json
for f in "Entwürfe" Archive Lists/dev; do
	check_same "$u" "$f" "$(local_dir "$root" verbatim "$f")" \
		"$M: move: $f in step"
done
is "$(server_list "$u" "Entwürfe")" "$(expect_list "<$u-en.2@twinbox.test> ST")" \
	"$M: move: the \\Deleted message stays in Entwürfe on the server"
is "$(server_list "$u" Archive | grep -cF -e "$u-en.1@" -e "$u-ld.2@")" 2 \
	"$M: move: both moved messages in Archive on the server"
is "$(rawlog_commands | grep -c '^APPEND')" 0 "$M: move: nothing uploaded again"
is "$(body_fetch_uids)" "" "$M: move: nothing downloaded again"
is "$(jq -s 'map(.pushed_moves) | add' <<<"$RUN_OUT") $(jq -s 'map(.pulled_moves) | add' <<<"$RUN_OUT")" \
	"1 1" "$M: move: --json counts one pushed and one pulled move"

# --- 5. --dry-run, --json, quiet, -v, status ----------------------------------

in=$(local_dir "$root" verbatim INBOX)
srvmsg=$TEST_TMP/srvmsg.eml
printf '%s\n' "From: Server <s@twinbox.test>" "To: alice@twinbox.test" \
	"Subject: arrives on the server" "Message-ID: <dry-srv@twinbox.test>" \
	"" "Delivered on the server while the laptop was offline." >"$srvmsg"
mail_add "$u" INBOX "$srvmsg" >/dev/null
mail_flags_add "$u" INBOX "$(uid_of "$u" INBOX "<$u-in.4@twinbox.test>")" '\Flagged'
mail_expunge "$u" INBOX "$(uid_of "$u" INBOX "<$u-in.3@twinbox.test>")"
local_write "$in" new "1630000000.L9.host" "dry-loc@local" "2021-08-26 17:46:40 UTC"
local_set_flags "$in" "<$u-in.1@twinbox.test>" FRS
local_rm "$in" "<$u-in.2@twinbox.test>"
locmsg_size=$(stat -c %s "$(local_path_of "$in" "<dry-loc@local>")")
locmsg_lines=$(wc -l <"$(local_path_of "$in" "<dry-loc@local>")")
srvmsg_size=$(stat -c %s "$srvmsg")
srvmsg_lines=$(wc -l <"$srvmsg")

db=$TEST_TMP/state/v.db
snap_l=$(tree_snapshot "$root")
snap_s=$(server_snapshot "$u")
snap_db=$(sqlite3 "$db" .dump)
sum_db=$(sha256sum <"$db")
reset_raw
tb_run "$TWINBOX" -c "$TEST_TMP/v.yaml" sync --dry-run
is "$RUN_STATUS" 0 "$M: --dry-run succeeds" || diag "$RUN_ERR"
like "$RUN_OUT" 'INBOX' "$M: --dry-run prints a plan naming INBOX on stdout"
is "$(tree_snapshot "$root")" "$snap_l" "$M: --dry-run changes nothing in the Maildir"
is "$(server_snapshot "$u")" "$snap_s" "$M: --dry-run changes nothing on the server"
is "$(has_cmd '^(UID )?(STORE|EXPUNGE|MOVE|COPY)|^(APPEND|CREATE|DELETE|RENAME)')" 0 \
	"$M: --dry-run sends no command that changes the server"
is "$(sqlite3 "$db" .dump)" "$snap_db" "$M: --dry-run changes no state row"
is "$(sha256sum <"$db")" "$sum_db" "$M: --dry-run leaves the state file as it was"

sync_ok v "$M: --json sync succeeds" --json
nlines=$(printf '%s\n' "$RUN_OUT" | grep -c .)
is "$nlines" 6 "$M: --json prints one line per folder (6 folders)"
is "$(printf '%s\n' "$RUN_OUT" | jq -r .folder | LC_ALL=C sort | tr '\n' ' ')" \
	"Archive Entwürfe Flags INBOX Lists/dev Projects/2024 " \
	"$M: --json: one line for each folder, UTF-8 names with /"
keys=$(printf '%s\n' "$RUN_OUT" | jq -c 'keys_unsorted | sort' | sort -u)
is "$keys" '["account","bytes_down","bytes_up","error","folder","pulled_copies","pulled_deletions","pulled_flags","pulled_moves","pulled_new","pushed_copies","pushed_deletions","pushed_flags","pushed_moves","pushed_new","status"]' \
	"$M: --json: every line has exactly the SPEC keys"
inbox=$(printf '%s\n' "$RUN_OUT" | jq -c 'select(.folder == "INBOX") |
	[.account, .pulled_new, .pushed_new, .pulled_flags, .pushed_flags,
	 .pulled_deletions, .pushed_deletions, .pulled_moves, .pushed_moves,
	 .status, .error]')
is "$inbox" '["v",1,1,1,1,1,1,0,0,"ok",null]' \
	"$M: --json: INBOX counts one of each change"
bd=$(printf '%s\n' "$RUN_OUT" | jq 'select(.folder == "INBOX") | .bytes_down')
bu=$(printf '%s\n' "$RUN_OUT" | jq 'select(.folder == "INBOX") | .bytes_up')
like " $srvmsg_size $((srvmsg_size + srvmsg_lines)) " " $bd " \
	"$M: --json: bytes_down is the size of the new server message"
like " $locmsg_size $((locmsg_size + locmsg_lines)) " " $bu " \
	"$M: --json: bytes_up is the size of the new local message"
others=$(printf '%s\n' "$RUN_OUT" | jq -c 'select(.folder != "INBOX") |
	[.pulled_new, .pushed_new, .pulled_flags, .pushed_flags,
	 .pulled_deletions, .pushed_deletions, .bytes_down, .bytes_up,
	 .status, .error]' | sort -u)
is "$others" '[0,0,0,0,0,0,0,0,"ok",null]' "$M: --json: the other folders report nothing done"
check_same "$u" INBOX "$in" "$M: INBOX in step after the --json sync"

mail_flags_add "$u" INBOX "$(uid_of "$u" INBOX "<dry-srv@twinbox.test>")" '\Seen'
sync_ok v "$M: sync under cron succeeds"
is "$RUN_OUT" "" "$M: under cron a successful sync prints nothing on stdout"
is "$RUN_ERR" "" "$M: under cron a successful sync prints nothing on stderr"
is "$(local_list "$in" | grep -F dry-srv)" "$(printf '<dry-srv@twinbox.test>\tS')" \
	"$M: the quiet sync did sync"

mail_flags_add "$u" INBOX "$(uid_of "$u" INBOX "<dry-srv@twinbox.test>")" '\Answered'
sync_ok v "$M: sync -v succeeds" -v
is "$(printf '%s\n' "$RUN_OUT" | grep -c .)" 1 "$M: -v prints one line on stdout"
like "$RUN_OUT" '^v: ' "$M: -v: the line is the account's summary"

mail_seed "$u" Archive 2 --tag pending
tb_run "$TWINBOX" -c "$TEST_TMP/v.yaml" status
is "$RUN_STATUS" 0 "$M: status succeeds" || diag "$RUN_ERR"
for f in "${FOLDERS[@]}" Projects/2024; do
	n=$(printf '%s\n' "$RUN_OUT" | grep -cF -- "$f")
	is "$n" 1 "$M: status has one line for $f"
done
is "$(printf '%s\n' "$RUN_OUT" | grep -c .)" 6 "$M: status prints one line per folder"
like "$(printf '%s\n' "$RUN_OUT" | grep -F Archive)" '(^|[^0-9])5([^0-9]|$)' \
	"$M: status shows Archive's server count (5)"
is "$(local_list "$(local_dir "$root" verbatim Archive)" | grep -c pending)" 0 \
	"$M: status does not sync"

# ACCOUNT:FOLDER, --pull and --push.
mail_seed "$u" INBOX 1 --tag tgt
sync_ok v "$M: sync v:Archive succeeds" v:Archive
is "$(local_list "$(local_dir "$root" verbatim Archive)" | grep -c pending)" 2 \
	"$M: v:Archive syncs Archive"
is "$(local_list "$in" | grep -c tgt)" 0 "$M: v:Archive leaves INBOX alone"
local_write "$in" new "1630000001.L10.host" "push-only@local" "2021-08-26 17:46:41 UTC"
sync_ok v "$M: sync --pull succeeds" --pull
is "$(local_list "$in" | grep -c tgt)" 1 "$M: --pull brings the server message"
is "$(server_list "$u" INBOX | grep -c push-only)" 0 "$M: --pull uploads nothing"
mail_seed "$u" INBOX 1 --tag pullonly
sync_ok v "$M: sync --push succeeds" --push
is "$(server_list "$u" INBOX | grep -c push-only)" 1 "$M: --push uploads the local message"
is "$(local_list "$in" | grep -c pullonly)" 0 "$M: --push downloads nothing"

# --dry-run on a first run creates no Maildir content
tb_write_config "$TEST_TMP/fresh.yaml" fresh maildir="$TEST_TMP/mail/fresh"
snap_s=$(server_snapshot "$u")
tb_run "$TWINBOX" -c "$TEST_TMP/fresh.yaml" sync --dry-run
is "$RUN_STATUS" 0 "$M: --dry-run on a first run succeeds" || diag "$RUN_ERR"
like "$RUN_OUT" 'Archive' "$M: --dry-run on a first run prints the plan"
is "$(find "$TEST_TMP/mail/fresh" -type f 2>/dev/null | wc -l)" 0 \
	"$M: --dry-run on a first run writes no message file"
is "$(server_snapshot "$u")" "$snap_s" "$M: --dry-run on a first run changes nothing on the server"
if [ -f "$TEST_TMP/state/fresh.db" ]; then
	is "$(sqlite3 "$TEST_TMP/state/fresh.db" 'SELECT count(*) FROM folders; SELECT count(*) FROM messages;' | tr '\n' ' ')" \
		"0 0 " "$M: --dry-run on a first run leaves the database empty"
else
	pass "$M: --dry-run on a first run leaves the database empty (none made)"
fi

# A folder renamed on the server is renamed locally, not fetched again.
sync_ok v "$M: sync the pending messages"
devdir=$(local_dir "$root" verbatim Lists/dev)
ino=$(ls -i "$devdir/cur" "$devdir/new" | awk 'NF == 2 { print $1 }' | sort)
mail_folder_rename "$u" Lists/dev Lists/devel
reset_raw
sync_ok v "$M: sync after a server folder rename succeeds"
newdir=$(local_dir "$root" verbatim Lists/devel)
check_same "$u" Lists/devel "$newdir" "$M: rename: the renamed folder in step"
[ ! -e "$devdir" ]
ok $? "$M: rename: the old local folder is gone"
is "$(ls -i "$newdir/cur" "$newdir/new" 2>/dev/null | awk 'NF == 2 { print $1 }' | sort)" \
	"$ino" "$M: rename: the same files, moved"
is "$(body_fetch_uids)" "" "$M: rename: nothing downloaded again"
is "$(mail_folders "$u" | grep -c '^Lists/dev$')" 0 \
	"$M: rename: the old name is not re-created on the server"

# --- extensions the server did not announce ----------------------------------

if [ "$M" = trimmed ]; then
	reset_raw
	like "$(grep -Eic '^[A-Za-z]*[0-9]+ (UID )?FETCH' "$ALL_RAW")" '^[1-9]' \
		"$M: the protocol log of all runs is there to check"
	used=$(sed -E 's/^[A-Za-z]*[0-9]+ //' "$ALL_RAW" | grep -Ei \
		'^(ENABLE|IDLE|(UID )?MOVE|UID EXPUNGE|GETQUOTA|NAMESPACE|ID )|CONDSTORE|QRESYNC|CHANGEDSINCE|VANISHED|MODSEQ|RETURN \(|\{[0-9]+\+\}' |
		sort -u | head -n 5)
	is "$used" "" "$M: twinbox used no extension the server did not advertise"
fi

done_testing
