#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-crash.sh - SPEC "Safety and reliability": killed at any instant, the
# next run completes the sync with no message lost and none duplicated on
# either side.
#   1. a 2,000-message pull (3 folders) killed with kill -9 at seeded
#      random moments, 20 times, then a run to completion;
#   2. the same for a 3,600-message push (2 folders);
#   3. a mixed round (new messages both ways, flag changes both ways,
#      deletions both ways) stopped at every crash point of the engine
#      (TWINBOX_CRASH_AT=N) until a run completes, each time followed by a
#      normal run and compared with the expected final state.
# CRASH_SEED=N replays the same kill delays.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/crash-lib.sh"

cl_seed_kills

dovecot_start
U=$TEST_USER

# kill_rounds CFG N LOG COUNT_FN LO HI: N times start a sync and kill -9
# it at a random moment of its transfer: once COUNT_FN (messages on the
# receiving side) has moved, plus 0-40 ms; so the kills land inside the
# transfer however fast or loaded the machine is (the odd kill of a run
# that made no progress within 5 s lands during start-up instead).
# Sets KILLED (runs that died of the kill) and MID (kills after which the
# count was strictly between LO and HI: the kill landed in the middle of
# the transfer).
kill_rounds() {
	local cfg=$1 n=$2 log=$3 count_fn=$4 lo=$5 hi=$6 i t pid st c start
	KILLED=0 MID=0 KILL_STATUS=
	for ((i = 1; i <= n; i++)); do
		start=$($count_fn)
		"$TWINBOX" -c "$cfg" -q sync >>"$log" 2>&1 </dev/null &
		pid=$!
		for ((t = 0; t < 500; t++)); do
			kill -0 "$pid" 2>/dev/null || break
			[ "$($count_fn)" -gt "$start" ] && break
			cl_ms_sleep 10
		done
		cl_ms_sleep $((RANDOM % 41))
		kill -9 "$pid" 2>/dev/null
		{ wait "$pid"; } 2>/dev/null
		st=$?
		KILL_STATUS+=" $st"
		[ "$st" = 137 ] && KILLED=$((KILLED + 1))
		c=$($count_fn)
		if [ "$st" = 137 ] && [ "$c" -gt "$lo" ] && [ "$c" -lt "$hi" ]; then
			MID=$((MID + 1))
		fi
	done
}

no_sanitizer_reports() {	# no_sanitizer_reports LOG NAME
	! grep -Eq 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$1"
	ok $? "$2" || diag "$(grep -E -m5 'Sanitizer|runtime error' "$1")"
}

# ---- 1. a 2,000-message pull, killed 20 times ---------------------------
M=$TEST_TMP/mail/acct
CFG=$TEST_TMP/acct.yaml
tb_write_config "$CFG" acct
cl_seed "$U" INBOX 900 pa || fail "seed INBOX"
cl_seed "$U" Archive 700 pb || fail "seed Archive"
cl_seed "$U" Lists/dev 400 pc || fail "seed Lists/dev"
is "$(( $(mail_count "$U" INBOX) + $(mail_count "$U" Archive) + \
	$(mail_count "$U" Lists/dev) ))" 2000 "server seeded with 2,000 messages"

local_count() { find "$M" -path '*/tmp' -prune -o -type f -path '*/cur/*' -print -o -type f -path '*/new/*' -print 2>/dev/null | wc -l; }

LOG=$TEST_TMP/pull.log
t0=$SECONDS
kill_rounds "$CFG" 20 "$LOG" local_count 0 2000
diag "pull: $KILLED of 20 runs killed, $MID mid-transfer, $(local_count) files before the final run; exits:$KILL_STATUS"
ok $(( KILLED >= 3 ? 0 : 1 )) "pull: at least 3 of the 20 runs were killed (not finished first)"
ok $(( MID >= 3 ? 0 : 1 )) "pull: at least 3 kills landed in the middle of the download"

tb_run "$TWINBOX" -c "$CFG" --json sync
is "$RUN_STATUS" 0 "pull: the run after the kills completes" || diag "$RUN_ERR"
cl_agree "$U" "$M" 2000
ok $? "pull: server and Maildir agree, 2,000 messages, none lost or duplicated" ||
	diag "$CL_ERR"
tb_run "$TWINBOX" -c "$CFG" --json sync
is "$RUN_STATUS" 0 "pull: one more run succeeds"
unlike "$RUN_OUT" '"(pulled|pushed)_(new|deletions)":[1-9]' \
	"pull: one more run has nothing left to transfer or delete" ||
	diag "$RUN_OUT"
is "$(mail_count "$U" INBOX)" 900 "pull: INBOX on the server still holds 900 (nothing pushed back)"
no_sanitizer_reports "$LOG" "pull: no sanitizer report from the killed runs"
diag "pull part took $((SECONDS - t0)) s"

# ---- 2. a 3,600-message push, killed 20 times ----------------------------
# A killed run has sent its APPENDs a batch ahead and the server finishes
# them, so each kill costs a few hundred messages (up to 500 on a loaded
# machine): 3,600 leave room for several kills however fast it is.
t0=$SECONDS
cl_local_seed "$M/INBOX" 1800 qa
cl_local_seed "$M/Archive" 1800 qb
# Count the server's files, not doveadm's view: doveadm needs the mailbox
# while Dovecot is busy with the APPENDs and answers late under load, so
# the kill would land at the end of the upload instead of in it.
SRV_INBOX=$(mail_path "$U" INBOX) SRV_ARCHIVE=$(mail_path "$U" Archive)
server_total() {
	find "$SRV_INBOX/cur" "$SRV_INBOX/new" "$SRV_ARCHIVE/cur" \
		"$SRV_ARCHIVE/new" -maxdepth 1 -type f 2>/dev/null | wc -l
}
is "$(server_total)" "$(( $(mail_count "$U" INBOX) + $(mail_count "$U" Archive) ))" \
	"push: counting the server's files gives doveadm's count"
LOG=$TEST_TMP/push.log
kill_rounds "$CFG" 20 "$LOG" server_total 1600 5200
diag "push: $KILLED of 20 runs killed, $MID mid-transfer, $(server_total) on the server before the final run; exits:$KILL_STATUS"
ok $(( KILLED >= 3 ? 0 : 1 )) "push: at least 3 of the 20 runs were killed (not finished first)"
ok $(( MID >= 3 ? 0 : 1 )) "push: at least 3 kills landed in the middle of the upload"
tb_run "$TWINBOX" -c "$CFG" --json sync
is "$RUN_STATUS" 0 "push: the run after the kills completes" || diag "$RUN_ERR"
cl_agree "$U" "$M" 5600
ok $? "push: server and Maildir agree, 5,600 messages, none lost or duplicated" ||
	diag "$CL_ERR"
is "$(cl_server_ids "$U" INBOX | grep -c '^<qa\.')" 1800 \
	"push: the 1,800 new INBOX messages are on the server once each"
is "$(cl_server_ids "$U" Archive | grep -c '^<qb\.')" 1800 \
	"push: the 1,800 new Archive messages are on the server once each"
tb_run "$TWINBOX" -c "$CFG" --json sync
unlike "$RUN_OUT" '"(pulled|pushed)_(new|deletions)":[1-9]' \
	"push: one more run has nothing left to transfer or delete" ||
	diag "$RUN_OUT"
no_sanitizer_reports "$LOG" "push: no sanitizer report from the killed runs"
diag "push part took $((SECONDS - t0)) s"

# ---- 3. mixed changes, stopped at every crash point --------------------
# Each round N uses its own folders (rN-a, rN-b), Maildir and account, so
# every round starts from the same synced state.
set_local_flags() {	# set_local_flags DIR MSGID LETTERS: as a mail reader does
	local x b
	x=$(cl_local_file "${1%/*}" "${1##*/}" "$2") || return 1
	b=${x##*/}
	mv "$x" "$1/cur/${b%%:2,*}:2,$3"
}

mixed_setup() {	# mixed_setup N: seed, first sync, then the changes
	local n=$1 p="r$1" a b x uid
	a="$p-a" b="$p-b"
	MCFG=$TEST_TMP/$p.yaml MM=$TEST_TMP/mail/$p
	tb_write_config "$MCFG" "$p" maildir="$MM" \
		--raw '    folders:' --raw "      include: [\"$p-*\"]"
	cl_seed "$U" "$a" 6 "$p.sa" >/dev/null || return 1
	cl_seed "$U" "$b" 4 "$p.sb" >/dev/null || return 1
	"$TWINBOX" -c "$MCFG" -q sync >/dev/null 2>&1 || return 1
	# new on the server
	cl_seed "$U" "$a" 2 "$p.na" >/dev/null
	cl_seed "$U" "$b" 1 "$p.nb" >/dev/null
	# new locally
	mkdir -p "$MM/$a/tmp"
	cl_write_msg "$MM/$a/new/1700000001.M1P1.local" "<$p.la.1@twinbox.test>"
	cl_write_msg "$MM/$a/new/1700000002.M2P1.local" "<$p.la.2@twinbox.test>"
	cl_write_msg "$MM/$b/new/1700000003.M3P1.local" "<$p.lb.1@twinbox.test>"
	# flags on the server
	mail_flags_add "$U" "$a" "$(cl_uid_of "$U" "$a" "<$p.sa.1@twinbox.test>")" '\Flagged'
	mail_flags_add "$U" "$b" "$(cl_uid_of "$U" "$b" "<$p.sb.1@twinbox.test>")" '\Seen'
	mail_flags_add "$U" "$a" "$(cl_uid_of "$U" "$a" "<$p.sa.5@twinbox.test>")" '\Answered'
	# flags locally (sa.5 changed on both sides: F here, R there)
	set_local_flags "$MM/$a" "<$p.sa.2@twinbox.test>" S
	set_local_flags "$MM/$b" "<$p.sb.2@twinbox.test>" F
	set_local_flags "$MM/$a" "<$p.sa.5@twinbox.test>" F
	# deletions
	mail_expunge "$U" "$a" "$(cl_uid_of "$U" "$a" "<$p.sa.3@twinbox.test>")"
	x=$(cl_local_file "$MM" "$a" "<$p.sa.4@twinbox.test>") && rm -f "$x"
	x=$(cl_local_file "$MM" "$b" "<$p.sb.3@twinbox.test>") && rm -f "$x"
	return 0
}

mixed_want_a() {
	local p=$1
	printf '%s\n' "<$p.sa.1@twinbox.test> F" "<$p.sa.2@twinbox.test> S" \
		"<$p.sa.5@twinbox.test> FR" "<$p.sa.6@twinbox.test> " \
		"<$p.na.1@twinbox.test> " "<$p.na.2@twinbox.test> " \
		"<$p.la.1@twinbox.test> " "<$p.la.2@twinbox.test> " | LC_ALL=C sort
}
mixed_want_b() {
	local p=$1
	printf '%s\n' "<$p.sb.1@twinbox.test> S" "<$p.sb.2@twinbox.test> F" \
		"<$p.sb.4@twinbox.test> " "<$p.nb.1@twinbox.test> " \
		"<$p.lb.1@twinbox.test> " | LC_ALL=C sort
}

t0=$SECONDS
MIXED_BAD=
MIXED_DONE=0
for ((N = 1; N <= 80; N++)); do
	if ! mixed_setup "$N"; then
		fail "mixed: setup of round $N"
		break
	fi
	p=r$N
	TWINBOX_CRASH_AT=$N "$TWINBOX" -c "$MCFG" -q sync \
		>"$TEST_TMP/$p.crash.out" 2>&1 </dev/null
	st=$?
	tb_run "$TWINBOX" -c "$MCFG" sync
	st2=$RUN_STATUS
	bad=
	[ "$st" = 99 ] || [ "$st" = 0 ] || bad+="crashed run exited $st; "
	[ "$st2" = 0 ] || bad+="next run exited $st2: $RUN_ERR; "
	for f in a b; do
		want=$(mixed_want_$f "$p")
		got_s=$(cl_server_state "$U" "$p-$f")
		got_l=$(cl_local_state "$MM/$p-$f")
		[ "$got_s" = "$want" ] ||
			bad+="server $p-$f: $(cl_diff_head "$want" "$got_s" | grep '^[<>]' | tr '\n' ' '); "
		[ "$got_l" = "$want" ] ||
			bad+="local $p-$f: $(cl_diff_head "$want" "$got_l" | grep '^[<>]' | tr '\n' ' '); "
	done
	if [ -n "$bad" ]; then
		MIXED_BAD+="crash point $N: $bad"$'\n'
	fi
	if [ "$st" = 0 ]; then
		MIXED_DONE=$N
		break
	fi
done
diag "mixed: $MIXED_DONE rounds (the last one ran to the end) in $((SECONDS - t0)) s"
isnt "$MIXED_DONE" 0 "mixed: a run with TWINBOX_CRASH_AT=N completes for some N"
ok $(( MIXED_DONE >= 5 ? 0 : 1 )) "mixed: the engine has several crash points (found $((MIXED_DONE - 1)))"
is "$MIXED_BAD" "" "mixed: after a stop at every crash point the next run gives the expected state on both sides"

done_testing
