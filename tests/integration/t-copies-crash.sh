#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-copies-crash.sh - copies replayed under kill -9: a batch of 500
# messages copied on the server into a second folder, then 500 local
# files cp'ed into a third; each time syncs killed with kill -9 at seeded
# random moments, then a run to completion: no message lost or duplicated
# on either side (each copy once per folder), and no body fetched or
# uploaded for any of them. Then every crash point (TWINBOX_CRASH_AT) of
# a 5-message copy, each way.
# CRASH_SEED=N replays the same kill delays.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/crash-lib.sh"

cl_seed_kills
export TWINBOX_APPEND_SETTLE_MS=200

dovecot_start
U=$TEST_USER
M=$TEST_TMP/mail/acct
CFG=$TEST_TMP/acct.yaml
tb_write_config "$CFG" acct --raw '    folders:' \
	--raw '      include: [INBOX, Archive, Work]'
B=cc		# the batch: <cc.1> .. <cc.500>
cl_seed "$U" INBOX 500 "$B" S || fail "seed the batch"
cl_seed "$U" INBOX 5 stay S || fail "seed"
mail_folder_create "$U" Archive
mail_folder_create "$U" Work
tb_run "$TWINBOX" -c "$CFG" sync
is "$RUN_STATUS" 0 "first sync" || diag "$RUN_ERR"
IDS=$(for ((i = 1; i <= 500; i++)); do printf '<%s.%d@twinbox.test> ' "$B" "$i"; done)

rawlog_reset() {
	rawlog_client_lines >/dev/null
	rm -f "$DOVECOT_DIR"/rawlog/*
}

kill_rounds() {	# kill_rounds NAME: syncs killed at random moments
	local name=$1 r ms pid st killed=0
	LOG=$TEST_TMP/$name.log
	: >"$LOG"
	# A run of 500 copies takes some tens to hundreds of milliseconds. Once
	# one run finishes, the copies are done and later kills hit no-op runs:
	# stop there. Only the kills before that test anything.
	for ((r = 0; r < 8; r++)); do
		ms=$((2 + RANDOM % (30 + 30 * r)))
		"$TWINBOX" -c "$CFG" -q sync >>"$LOG" 2>&1 </dev/null &
		pid=$!
		cl_ms_sleep "$ms"
		kill -9 "$pid" 2>/dev/null
		{ wait "$pid"; } 2>/dev/null
		st=$?
		[ $st = 137 ] && killed=$((killed + 1))
		[ $st = 0 ] && break
	done
	diag "$name: $killed runs killed before one finished"
	if [ "$killed" -ge 1 ]; then
		pass "$name: at least one run was killed mid-way"
	else
		# a machine fast enough to finish within the first delay
		TAP_N=$((TAP_N + 1))
		printf 'ok %d - %s # SKIP %s\n' "$TAP_N" \
			"$name: at least one run was killed mid-way" \
			"the first run finished within ${ms} ms"
	fi
}

check_phase() {	# check_phase NAME TOTAL DUPS
	local name=$1 lines x
	tb_run "$TWINBOX" -c "$CFG" sync
	is "$RUN_STATUS" 0 "$name: the run after the kills completes" || diag "$RUN_ERR"
	tb_run "$TWINBOX" -c "$CFG" sync	# and one more, to settle
	cl_agree "$U" "$M" "$2" "$3"
	ok $? "$name: both sides agree, $2 messages, each copy once per folder" ||
		diag "$CL_ERR"
	lines=$(rawlog_client_lines)
	x=$(printf '%s\n' "$lines" | grep -E '^[^ ]+ APPEND ')
	is "$(printf '%s' "$x" | grep -c .)" 0 "$name: no message uploaded (no APPEND)" ||
		diag "$(printf '%s\n' "$x" | head -n 5)"
	is "$(printf '%s\n' "$lines" |
		grep -Ei 'BODY(\.PEEK)?\[\]|BINARY(\.PEEK)?\[|RFC822([^.]|$)' | head -n 5)" "" \
		"$name: no message body fetched"
	is "$(grep -E -m3 'Sanitizer|runtime error:' "$LOG")" "" \
		"$name: no sanitizer report from the killed runs"
}

# server copies: the batch into Archive
tb_doveadm copy -u "$U" Archive mailbox INBOX header message-id "<$B."
rawlog_reset
kill_rounds "server copies"
check_phase "server copies" 1005 "$IDS"

# local copies: the batch's files into Work, same names
grep -l -F "Message-ID: <$B." "$M/INBOX/cur"/* | xargs -r cp -p -t "$M/Work/cur/"
rawlog_reset
kill_rounds "local copies"
check_phase "local copies" 1505 "$IDS $IDS"

# ---- every crash point of a small copy ----------------------------------
sweep() {	# sweep server|local
	local kind=$1 n p a b st bad= x done_at=0 want
	for ((n = 1; n <= 30; n++)); do
		p="s$kind$n" a="s$kind$n-a" b="s$kind$n-b"
		local cfg=$TEST_TMP/$p.yaml m=$TEST_TMP/mail/$p
		tb_write_config "$cfg" "$p" maildir="$m" \
			--raw '    folders:' --raw "      include: [\"$p-*\"]"
		cl_seed "$U" "$a" 3 "$p.cp" S >/dev/null
		mail_folder_create "$U" "$b"
		"$TWINBOX" -c "$cfg" -q sync >/dev/null 2>&1 ||
			{ fail "$kind sweep: set-up sync $n"; return; }
		if [ "$kind" = local ]; then
			cp -p "$m/$a"/cur/* "$m/$b/cur/"
		else
			tb_doveadm copy -u "$U" "$b" mailbox "$a" all
		fi
		rawlog_reset
		TWINBOX_CRASH_AT=$n "$TWINBOX" -c "$cfg" -q sync >/dev/null 2>&1 </dev/null
		st=$?
		tb_run "$TWINBOX" -c "$cfg" sync
		want=$(for ((x = 1; x <= 3; x++)); do printf '<%s.cp.%d@twinbox.test>\n' "$p" "$x"; done | LC_ALL=C sort)
		x=
		[ "$st" = 99 ] || [ "$st" = 0 ] || x+="stopped run exited $st; "
		[ "$RUN_STATUS" = 0 ] || x+="next run exited $RUN_STATUS: $RUN_ERR; "
		for f in "$a" "$b"; do
			[ "$(cl_server_ids "$U" "$f")" = "$want" ] ||
				x+="server $f: $(cl_server_ids "$U" "$f" | tr '\n' ' '); "
			[ "$(cl_local_ids "$m/$f")" = "$want" ] ||
				x+="local $f: $(cl_local_ids "$m/$f" | tr '\n' ' '); "
		done
		rawlog_client_lines | grep -Eq '^[^ ]+ APPEND |BODY(\.PEEK)?\[\]' &&
			x+="a body crossed the wire; "
		[ -z "$x" ] || bad+="crash point $n: $x"$'\n'
		if [ "$st" = 0 ]; then
			done_at=$n
			break
		fi
	done
	ok $(( done_at >= 2 ? 0 : 1 )) "$kind copy sweep: stopped at $((done_at - 1)) crash points, then a run completed"
	is "$bad" "" "$kind copy sweep: after a stop at every crash point the next run has the 3 copies once in each folder, on both sides, no body transferred"
}
t0=$SECONDS
sweep server
sweep local
diag "crash-point sweeps took $((SECONDS - t0)) s"

done_testing
