#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-sync-safety.sh - SPEC "Safety and reliability" as a user meets it:
#  - the safety brake: more than 10 and more than half of a folder's
#    messages deleted locally, or expunged on the server, or a synced local
#    folder gone: exit 5, nothing deleted on the other side, the other
#    folders synced; --force lets it through; 11 of 30 is not braked;
#  - the account lock held by someone else: exit 4, nothing touched;
#  - a wrong password: exit 3;
#  - a folder the server refuses to open: that folder failed (exit 1, an
#    error in its --json line), the others synced, the next run resumes;
#  - killed at any instant (TWINBOX_CRASH_AT=N stops a run at its N-th
#    step boundary, as kill -9 would): the next run completes the sync,
#    no message lost, none duplicated, on either side.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/sync-lib.sh"

dovecot_start
u=$TEST_USER
root=$TEST_TMP/mail/acct
cfg=$TEST_TMP/acct.yaml
tb_write_config "$cfg" acct

mail_seed "$u" Big 20 --tag big
mail_seed "$u" Big3 20 --tag bsv
mail_seed "$u" Mid 30 --tag mid
mail_seed "$u" Other 2 --tag oth
mail_seed "$u" Gone 3 --tag gone
mail_seed "$u" Broken 3 --tag brk
mail_seed "$u" INBOX 1 --tag in

tb_sync() {	# tb_sync [--json] [SYNC-OPTIONS...]: results in RUN_*
	local g=()
	[ "${1:-}" = --json ] && { g=(--json); shift; }
	tb_run "$TWINBOX" -c "$cfg" "${g[@]}" sync "$@"
	! tb_crashed || fail "twinbox crashed: $*" || diag "$RUN_ERR"
}
nfiles() {	# nfiles FOLDER: local message files
	local_index "$(local_dir "$root" verbatim "$1")" | grep -c .
}
rm_local() {	# rm_local FOLDER FIRST LAST TAG: delete local messages
	local d i p
	d=$(local_dir "$root" verbatim "$1")
	for ((i = $2; i <= $3; i++)); do
		p=$(local_index "$d" | awk -F '\t' -v id="<$4.$i@twinbox.test>" \
			'$1 == id { print $3 }')
		[ -n "$p" ] && rm -f "$p"
	done
}

tb_sync
is "$RUN_STATUS" 0 "initial sync succeeds" || diag "$RUN_ERR"
is "$(nfiles Big) $(nfiles Big3) $(nfiles Mid) $(nfiles Gone)" "20 20 30 3" \
	"all folders pulled"

# --- the brake ---------------------------------------------------------------

rm_local Big 1 12 big			# 12 of 20 locally
for uid in $(seq 1 12); do		# 12 of 20 on the server
	mail_expunge "$u" Big3 "$uid"
done
rm_local Mid 1 11 mid			# 11 of 30: not more than half
mail_seed "$u" Other 1 --tag oth2	# something to sync elsewhere
tb_sync --json
is "$RUN_STATUS" 5 "12 of 20 deleted on one side: exit 5 (safety brake)" ||
	diag "$RUN_ERR"
is "$(mail_count "$u" Big)" 20 "brake: nothing deleted on the server"
is "$(nfiles Big3)" 20 "brake: server expunges delete nothing locally"
like "$RUN_ERR" 'Big' "brake: the message names the folder"
is "$(mail_count "$u" Mid)" 19 "11 of 30 is not braked: deleted on the server"
is "$(local_list "$(local_dir "$root" verbatim Other)" | grep -c oth2)" 1 \
	"brake: the other folders are synced"
is "$(jq -r 'select(.folder == "Big" or .folder == "Big3") | .status' \
	<<<"$RUN_OUT" | sort -u)" error "brake: --json marks the braked folders"
is "$(jq -r 'select(.folder == "Mid") | .status' <<<"$RUN_OUT")" ok \
	"brake: --json: Mid is ok"

tb_sync
is "$RUN_STATUS" 5 "the brake holds on the next run too"
is "$(mail_count "$u" Big)" 20 "still nothing deleted on the server"

tb_sync --force
is "$RUN_STATUS" 0 "--force lets it through" || diag "$RUN_ERR"
is "$(mail_count "$u" Big)" 8 "--force: the 12 local deletions reach the server"
is "$(nfiles Big3)" 8 "--force: the 12 server expunges reach the Maildir"
check_same "$u" Big "$(local_dir "$root" verbatim Big)" "--force: Big in step"

# A synced local folder that is gone, or only its cur/ and new/.
gone=$(local_dir "$root" verbatim Gone)
rm -rf "$gone"
tb_sync
is "$RUN_STATUS" 5 "a synced local folder gone: exit 5" || diag "$RUN_ERR"
is "$(mail_count "$u" Gone)" 3 "folder gone: nothing deleted on the server"
mail_folders "$u" | grep -Fxq Gone
ok $? "folder gone: the server folder is still there"
tb_sync
is "$RUN_STATUS" 5 "folder gone: the brake holds on the next run"
is "$(mail_count "$u" Gone)" 3 "folder gone: still nothing deleted"
mkdir -p "$gone"
tb_sync
is "$RUN_STATUS" 5 "only cur/ and new/ gone: exit 5"
is "$(mail_count "$u" Gone)" 3 "cur/ and new/ gone: nothing deleted on the server"
rm -rf "$gone"

# --- the lock ----------------------------------------------------------------

lock=$TEST_TMP/state/acct.lock
[ -f "$lock" ]
ok $? "the lock file is next to the state database"
mail_seed "$u" Other 1 --tag locked
( exec 9>>"$lock" && flock 9 && exec sleep 60 ) &
holder=$!
tb_on_exit "kill $holder 2>/dev/null"
for i in $(seq 1 50); do	# until the holder has it
	flock -n "$lock" true || break
	sleep 0.1
done
tb_sync
is "$RUN_STATUS" 4 "lock held by another process: exit 4" || diag "$RUN_ERR"
like "$RUN_ERR" '[Ll]ock|another' "lock: the error says why"
is "$(local_list "$(local_dir "$root" verbatim Other)" | grep -c locked)" 0 \
	"lock: nothing synced"
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null

# --- wrong password ----------------------------------------------------------

tb_write_config "$TEST_TMP/bad.yaml" acct password="not-the-password"
tb_run "$TWINBOX" -c "$TEST_TMP/bad.yaml" sync
is "$RUN_STATUS" 3 "wrong password: exit 3" || diag "$RUN_ERR"
isnt "$RUN_ERR" "" "wrong password: an error on stderr"
unlike "$RUN_ERR" 'not-the-password' "wrong password: the password is not printed"
is "$(local_list "$(local_dir "$root" verbatim Other)" | grep -c locked)" 0 \
	"wrong password: nothing synced"

# --- a folder the server refuses ---------------------------------------------

tb_sync
is "$RUN_STATUS" 5 "back to normal (the Gone folder still brakes)"
is "$(local_list "$(local_dir "$root" verbatim Other)" | grep -c locked)" 1 \
	"back to normal: Other synced"
# Settle the Gone folder: --force is the user's answer.
tb_sync --force
is "$RUN_STATUS" 0 "--force settles the gone folder" || diag "$RUN_ERR"
is "$(mail_count "$u" Gone)" 0 \
	"--force: the gone folder's messages are deleted on the server, as the brake said"

brk=$(mail_path "$u" Broken)
mail_seed "$u" Broken 2 --tag brk2
mail_seed "$u" Other 1 --tag refused
mode=$(stat -c %a "$brk")
chmod 000 "$brk"
tb_on_exit "chmod $mode '$brk'"
tb_sync --json
chmod "$mode" "$brk"
is "$RUN_STATUS" 1 "a folder the server refuses: exit 1" || diag "$RUN_ERR"
is "$(jq -r 'select(.folder == "Broken") | .status' <<<"$RUN_OUT")" error \
	"refused folder: --json status error"
is "$(jq -r 'select(.folder == "Broken") | .error | type' <<<"$RUN_OUT")" string \
	"refused folder: --json carries the error"
is "$(jq -r 'select(.folder == "Other") | .status' <<<"$RUN_OUT")" ok \
	"refused folder: the other folders are ok"
is "$(local_list "$(local_dir "$root" verbatim Other)" | grep -c refused)" 1 \
	"refused folder: the other folders are synced"
is "$(nfiles Broken)" 3 "refused folder: nothing changed locally"
is "$(mail_count "$u" Broken)" 5 "refused folder: nothing deleted on the server"
tb_sync
is "$RUN_STATUS" 0 "the next run resumes" || diag "$RUN_ERR"
check_same "$u" Broken "$(local_dir "$root" verbatim Broken)" \
	"the next run syncs the refused folder"

# --- killed at any instant ---------------------------------------------------

u2=$TEST_USER2
printf '%s\n' "$TEST_PASS2" >"$TEST_TMP/bob.pass"
chmod 600 "$TEST_TMP/bob.pass"
ck=$TEST_TMP/ck.yaml
tb_write_config "$ck" ck user="$u2" password_file="$TEST_TMP/bob.pass" \
	maildir="$TEST_TMP/mail/ck"
cd_=$(local_dir "$TEST_TMP/mail/ck" verbatim Crash)
mail_seed "$u2" Crash 60 --tag ck
tb_run "$TWINBOX" -c "$ck" sync
is "$RUN_STATUS" 0 "crash: initial sync" || diag "$RUN_ERR"

ckid() { printf '<%s@twinbox.test>' "$1"; }
ck_uid() { mail_list "$u2" Crash | awk -F '\t' -v id="$1" '$3 == id { print $1 }'; }
ck_local_flags() {	# ck_local_flags MSGID FLAGS
	local p b
	p=$(local_index "$cd_" | awk -F '\t' -v id="$1" '$1 == id { print $3 }')
	[ -n "$p" ] || return 0
	b=${p##*/}
	mv "$p" "$cd_/cur/${b%%:2,*}:2,$2"
}
ck_expected() {	# the folder after round $1, MSGID<TAB>FLAGS sorted
	local n=$1 i
	for ((i = 1; i <= 60; i++)); do
		if [ "$i" -gt "$n" ] && { [ "$i" -le 30 ] || [ "$i" -gt $((30 + n)) ]; }; then
			printf '%s\t\n' "$(ckid "ck.$i")"
		fi
	done
	for ((i = 1; i <= n; i++)); do
		if [ "$i" -lt "$n" ]; then
			printf '%s\tS\n' "$(ckid "srv-$i")"
			printf '%s\tFS\n' "$(ckid "loc-$i")"
		else
			printf '%s\t\n' "$(ckid "srv-$i")"
			printf '%s\tS\n' "$(ckid "loc-$i")"
		fi
	done
}
kills=0
for ((n = 1; n <= 30; n++)); do
	# one of each change on each side, none in conflict
	printf '%s\n' "From: s@twinbox.test" "Subject: server $n" \
		"Message-ID: $(ckid "srv-$n")" "" "server $n" |
		mail_add "$u2" Crash >/dev/null
	mail_expunge "$u2" Crash "$(ck_uid "$(ckid "ck.$n")")"
	[ "$n" -gt 1 ] &&
		mail_flags_add "$u2" Crash "$(ck_uid "$(ckid "loc-$((n - 1))")")" '\Flagged'
	printf '%s\n' "From: l@twinbox.test" "Subject: local $n" \
		"Message-ID: $(ckid "loc-$n")" "" "local $n" \
		>"$cd_/cur/17000000$n.Lck$n.host:2,S"
	p=$(local_index "$cd_" | awk -F '\t' -v id="$(ckid "ck.$((30 + n))")" \
		'$1 == id { print $3 }')
	rm -f "$p"
	[ "$n" -gt 1 ] && ck_local_flags "$(ckid "srv-$((n - 1))")" S

	TWINBOX_CRASH_AT=$n tb_run "$TWINBOX" -c "$ck" sync
	crashed=$RUN_STATUS
	[ "$crashed" = 99 ] && kills=$((kills + 1))
	case $crashed in
	0 | 99) ;;
	*) fail "crash point $n: the interrupted run exits 99 or 0, not $crashed"
	   diag "$RUN_ERR" ;;
	esac
	tb_run "$TWINBOX" -c "$ck" sync
	st=$RUN_STATUS
	want=$(ck_expected "$n" | LC_ALL=C sort)
	got_s=$(server_list "$u2" Crash)
	got_l=$(local_list "$cd_")
	if [ "$st" = 0 ] && [ "$got_s" = "$want" ] && [ "$got_l" = "$want" ]; then
		pass "killed at step $n: the next run completes, nothing lost or doubled"
	else
		fail "killed at step $n: the next run completes, nothing lost or doubled"
		diag "exit $st: $RUN_ERR" \
			"missing or wrong on the server:" \
			"$(comm -23 <(echo "$want") <(echo "$got_s"))" \
			"extra on the server:" "$(comm -13 <(echo "$want") <(echo "$got_s"))" \
			"missing or wrong locally:" \
			"$(comm -23 <(echo "$want") <(echo "$got_l"))" \
			"extra locally:" "$(comm -13 <(echo "$want") <(echo "$got_l"))"
		break
	fi
	[ "$crashed" = 0 ] && break	# past the last step
done
like "$kills" '^[1-9][0-9]*$' "crash: $kills runs stopped at a step boundary"

done_testing
