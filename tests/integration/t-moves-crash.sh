#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-moves-crash.sh - moves replayed under kill -9: a batch of 200 moved
# messages, 20 rounds of "move the batch on, start a sync, kill -9 it at a
# seeded random moment (20-400 ms)", then a run to completion: no message
# lost or duplicated on either side, each moved message in its target
# folder, and no body sent or fetched for it. First with local moves
# (mv of the files), then with server moves (doveadm move).
# CRASH_SEED=N replays the same kill delays.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/crash-lib.sh"

cl_seed_kills

dovecot_start
U=$TEST_USER
M=$TEST_TMP/mail/acct
CFG=$TEST_TMP/acct.yaml
tb_write_config "$CFG" acct
FOLDERS=(INBOX Archive Work)
B=mc		# the batch: <mc.1> .. <mc.200>
for f in "${FOLDERS[@]}"; do	# messages that never move
	cl_seed "$U" "$f" 5 "stay$f" S || fail "seed $f"
done
cl_seed "$U" INBOX 200 "$B" S || fail "seed the batch"
TOTAL=215
tb_run "$TWINBOX" -c "$CFG" sync
is "$RUN_STATUS" 0 "first sync" || diag "$RUN_ERR"

rawlog_reset() {
	rawlog_client_lines >/dev/null
	rm -f "$DOVECOT_DIR"/rawlog/*
}

batch_count() {	# batch_count server|local FOLDER
	if [ "$1" = server ]; then
		cl_server_ids "$U" "$2"
	else
		cl_local_ids "$M/$2"
	fi | grep -c "^<$B\."
}

local_move_batch() {	# every batch file in local FROM -> TO, same name
	local sub
	for sub in cur new; do
		grep -l -F "Message-ID: <$B." "$M/$1/$sub"/* 2>/dev/null |
			xargs -r mv -t "$M/$2/$sub/"
	done
}

server_move_batch() {	# every batch message on the server FROM -> TO
	tb_doveadm move -u "$U" "$2" mailbox "$1" header message-id "<$B."
}

kill_one() {	# start a sync, kill -9 it after 20-400 ms; sets ST
	# a 200-message move takes a run only some tens of milliseconds:
	# kill within the span one whole run took on this machine (SPAN_MS)
	local ms=$((2 + RANDOM % SPAN_MS)) pid
	"$TWINBOX" -c "$CFG" -q sync >>"$LOG" 2>&1 </dev/null &
	pid=$!
	cl_ms_sleep "$ms"
	kill -9 "$pid" 2>/dev/null
	{ wait "$pid"; } 2>/dev/null	# no "Killed" job notice
	ST=$?
}

check_phase() {	# check_phase NAME TARGET
	local name=$1 target=$2 f where= lines x
	tb_run "$TWINBOX" -c "$CFG" sync
	is "$RUN_STATUS" 0 "$name: the run after the kills completes" || diag "$RUN_ERR"
	tb_run "$TWINBOX" -c "$CFG" sync	# and one more, to settle
	cl_agree "$U" "$M" "$TOTAL"
	ok $? "$name: both sides agree, $TOTAL messages, none lost or duplicated" ||
		diag "$CL_ERR"
	for f in "${FOLDERS[@]}"; do
		where+="$f=$(batch_count server "$f")/$(batch_count local "$f") "
	done
	want=
	for f in "${FOLDERS[@]}"; do
		if [ "$f" = "$target" ]; then
			want+="$f=200/200 "
		else
			want+="$f=0/0 "
		fi
	done
	is "$where" "$want" "$name: all 200 moved messages in $target on both sides (server/local counts)"
	for f in "${FOLDERS[@]}"; do
		where=$( { cl_server_ids "$U" "$f"; cl_local_ids "$M/$f"; } |
			grep -c "^<stay$f\.")
		is "$where" 10 "$name: the 5 messages that stayed in $f are still there on both sides"
	done
	lines=$(rawlog_client_lines)
	x=$(printf '%s\n' "$lines" | grep -E '^[^ ]+ APPEND ')
	is "$(printf '%s' "$x" | grep -c .)" 0 "$name: no message uploaded again (no APPEND)" ||
		diag "$(printf '%s\n' "$x" | head -n 5)"
	is "$(printf '%s\n' "$lines" |
		grep -Ei 'BODY(\.PEEK)?\[\]|BINARY(\.PEEK)?\[|RFC822([^.]|$)' | head -n 5)" "" \
		"$name: no message body fetched"
	no_sanitizer=$(grep -E -m3 'Sanitizer|runtime error:' "$LOG")
	is "$no_sanitizer" "" "$name: no sanitizer report from the killed runs"
}

# run_phase NAME MOVE_FN: 20 rounds, each moving the batch one folder on
run_phase() {
	local name=$1 fn=$2 r from to killed=0 t0=$SECONDS s0 s1
	LOG=$TEST_TMP/$name.log
	# time one unkilled round to size the kill delays
	from=${FOLDERS[CUR]}
	CUR=$(( (CUR + 1) % 3 ))
	$fn "$from" "${FOLDERS[CUR]}"
	s0=$(date +%s%N)
	"$TWINBOX" -c "$CFG" -q sync >>"$LOG" 2>&1 </dev/null
	s1=$(date +%s%N)
	SPAN_MS=$(( (s1 - s0) / 1000000 ))
	[ "$SPAN_MS" -ge 10 ] || SPAN_MS=10
	diag "$name: an unkilled run takes $SPAN_MS ms"
	: >"$LOG"
	rawlog_reset
	for ((r = 0; r < 20; r++)); do
		from=${FOLDERS[CUR]}
		CUR=$(( (CUR + 1) % 3 ))
		to=${FOLDERS[CUR]}
		$fn "$from" "$to"
		kill_one
		[ "$ST" = 137 ] && killed=$((killed + 1))
	done
	diag "$name: $killed of 20 runs killed before they finished, $((SECONDS - t0)) s"
	ok $(( killed >= 5 ? 0 : 1 )) "$name: at least 5 of the 20 runs were killed mid-way"
	check_phase "$name" "${FOLDERS[CUR]}"
}

CUR=0
run_phase "local moves" local_move_batch
run_phase "server moves" server_move_batch

# ---- every crash point of a small move batch ----------------------------
# Deterministic: a 5-message move stopped at crash point N
# (TWINBOX_CRASH_AT), then a normal run, for N = 1, 2, ... until a run
# completes. Each N uses its own folders and account.
# split: local moves out of one folder into two (copies, then one expunge).
sweep() {	# sweep local|server|split
	local kind=$1 n p a b c st bad= want_a want_b want_c x done_at=0 nb=5
	[ "$kind" = split ] && nb=3
	for ((n = 1; n <= 40; n++)); do
		p="s$kind$n" a="s$kind$n-a" b="s$kind$n-b" c="s$kind$n-c"
		local cfg=$TEST_TMP/$p.yaml m=$TEST_TMP/mail/$p
		tb_write_config "$cfg" "$p" maildir="$m" \
			--raw '    folders:' --raw "      include: [\"$p-*\"]"
		cl_seed "$U" "$a" 5 "$p.mv" S >/dev/null
		cl_seed "$U" "$a" 2 "$p.stay" S >/dev/null
		mail_folder_create "$U" "$b"
		[ "$kind" = split ] && mail_folder_create "$U" "$c"
		"$TWINBOX" -c "$cfg" -q sync >/dev/null 2>&1 ||
			{ fail "$kind sweep: set-up sync $n"; return; }
		if [ "$kind" = local ]; then
			grep -l -F "Message-ID: <$p.mv." "$m/$a"/cur/* |
				xargs -r mv -t "$m/$b/cur/"
		elif [ "$kind" = split ]; then
			grep -l -E "Message-ID: <$p[.]mv[.][123]@" "$m/$a"/cur/* |
				xargs -r mv -t "$m/$b/cur/"
			grep -l -E "Message-ID: <$p[.]mv[.][45]@" "$m/$a"/cur/* |
				xargs -r mv -t "$m/$c/cur/"
		else
			tb_doveadm move -u "$U" "$b" mailbox "$a" \
				header message-id "<$p.mv."
		fi
		TWINBOX_CRASH_AT=$n "$TWINBOX" -c "$cfg" -q sync >/dev/null 2>&1 </dev/null
		st=$?
		tb_run "$TWINBOX" -c "$cfg" sync
		want_a=$(printf '<%s.stay.%d@twinbox.test>\n' "$p" 1 "$p" 2 | LC_ALL=C sort)
		want_b=$(for ((x = 1; x <= nb; x++)); do printf '<%s.mv.%d@twinbox.test>\n' "$p" "$x"; done | LC_ALL=C sort)
		want_c=$(for ((x = nb + 1; x <= 5; x++)); do printf '<%s.mv.%d@twinbox.test>\n' "$p" "$x"; done | LC_ALL=C sort)
		x=
		[ "$st" = 99 ] || [ "$st" = 0 ] || x+="stopped run exited $st; "
		[ "$RUN_STATUS" = 0 ] || x+="next run exited $RUN_STATUS: $RUN_ERR; "
		[ "$(cl_server_ids "$U" "$a")" = "$want_a" ] ||
			x+="server $a: $(cl_server_ids "$U" "$a" | tr '\n' ' '); "
		[ "$(cl_local_ids "$m/$a")" = "$want_a" ] ||
			x+="local $a: $(cl_local_ids "$m/$a" | tr '\n' ' '); "
		[ "$(cl_server_ids "$U" "$b")" = "$want_b" ] ||
			x+="server $b: $(cl_server_ids "$U" "$b" | tr '\n' ' '); "
		[ "$(cl_local_ids "$m/$b")" = "$want_b" ] ||
			x+="local $b: $(cl_local_ids "$m/$b" | tr '\n' ' '); "
		if [ "$kind" = split ]; then
			[ "$(cl_server_ids "$U" "$c")" = "$want_c" ] ||
				x+="server $c: $(cl_server_ids "$U" "$c" | tr '\n' ' '); "
			[ "$(cl_local_ids "$m/$c")" = "$want_c" ] ||
				x+="local $c: $(cl_local_ids "$m/$c" | tr '\n' ' '); "
		fi
		[ -z "$x" ] || bad+="crash point $n: $x"$'\n'
		if [ "$st" = 0 ]; then
			done_at=$n
			break
		fi
	done
	ok $(( done_at >= 2 ? 0 : 1 )) "$kind move sweep: stopped at $((done_at - 1)) crash points, then a run completed"
	is "$bad" "" "$kind move sweep: after a stop at every crash point the next run has the 5 messages in their target folders once, on both sides"
}
t0=$SECONDS
sweep local
sweep server
sweep split
diag "crash-point sweeps took $((SECONDS - t0)) s"

done_testing
