#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-flights-slow.sh - SPEC "Round trips" over a slow link (issue 12):
# twinbox talks to Dovecot through the benchmark's delay proxy
# (contrib/bench/delayproxy.c, 40 ms round trip), so its first login is
# slow and the moves phase saves round trips rather than server work.
# Local moves out of INBOX into three folders and out of Work into one
# go to the server as UID MOVEs: per source folder one flight, with its
# SELECT, and no STORE or EXPUNGE round trip after them (on loopback,
# t-flights.sh, the moves into several folders stay UID COPY + one
# expunge). Both sides end with every message once, in its folder, with
# no APPEND and no body fetched. Then a move into three folders is
# stopped at every crash point in turn (TWINBOX_CRASH_AT), and the next
# run finishes it.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/sync-lib.sh"
. "$TOP_SRCDIR/tests/integration/crash-lib.sh"

PROXY_BIN=${TOP_BUILDDIR:?}/tests/integration/delayproxy
[ -x "$PROXY_BIN" ] || bail_out "delayproxy not built: $PROXY_BIN"

mid() { printf '<fs.%s@twinbox.test>' "$1"; }

# server_folder_of N: the folders the server holds message N in
server_folder_of() {
	cl_where "$U" "$M" "$(mid "$1")" | cut -d'|' -f1
}

# where_are "N:FOLDER ...": the server holds message N in FOLDER, once
where_are() {
	local x got=
	for x in $1; do
		got+="${got:+ }${x%%:*}:$(server_folder_of "${x%%:*}")"
	done
	is "$got" "$1" "the server holds each moved message in its new folder, once"
}

dovecot_start
U=$TEST_USER
M=$TEST_TMP/mail
CFG=$TEST_TMP/fs.yaml

P=$(tb_free_port) || bail_out "no free port"
"$PROXY_BIN" --listen "$P" --connect "127.0.0.1:$IMAP_PORT" --rtt 40 \
	--ready "$TEST_TMP/proxy.ready" 2>"$TEST_TMP/proxy.err" &
PROXY=$!
tb_on_exit "kill $PROXY 2>/dev/null"
for _ in $(seq 1 250); do
	[ -e "$TEST_TMP/proxy.ready" ] && break
	kill -0 "$PROXY" 2>/dev/null || break
	sleep 0.02
done
[ -e "$TEST_TMP/proxy.ready" ] ||
	bail_out "delayproxy did not start: $(cat "$TEST_TMP/proxy.err")"
tb_write_config "$CFG" fs maildir="$M" host=127.0.0.1 port="$P"

cl_seed "$U" INBOX 12 fs.i S || fail "seed INBOX"
cl_seed "$U" Archive 4 fs.a S || fail "seed Archive"
cl_seed "$U" Work 6 fs.w S || fail "seed Work"
cl_seed "$U" Lists 3 fs.l S || fail "seed Lists"
tb_run "$TWINBOX" -c "$CFG" sync
is "$RUN_STATUS" 0 "first sync, through the delay proxy" || diag "$RUN_ERR"
tb_run "$TWINBOX" -c "$CFG" sync
is "$RUN_STATUS" 0 "second sync" || diag "$RUN_ERR"

# out of INBOX into three folders (two into Archive), out of Work into one
cl_move_local i.1 INBOX Archive
cl_move_local i.2 INBOX Work
cl_move_local i.3 INBOX Lists
cl_move_local i.4 INBOX Archive
cl_move_local w.1 Work INBOX
rawlog_reset
tb_run "$TWINBOX" -c "$CFG" -vv sync
is "$RUN_STATUS" 0 "sync of the local moves" || diag "$RUN_ERR"
like "$RUN_ERR" 'logged in in [0-9]+ ms, quickest answer [0-9.]+ ms: a slow link' \
	"twinbox sees the slow link"
cl_agree "$U" "$M" 25
is "$CL_ERR" "" "both sides hold the same 25 messages, once each"
where_are "i.1:Archive i.2:Work i.3:Lists i.4:Archive w.1:INBOX"

cmds=$(rawlog_commands)
is "$(printf '%s\n' "$cmds" | grep -c '^UID MOVE$')" 4 \
	"one UID MOVE per source and target folder" || diag "$(echo $cmds)"
is "$(printf '%s\n' "$cmds" | grep -cE '^(UID COPY|UID STORE|UID EXPUNGE|EXPUNGE|STORE)$')" 0 \
	"no copy, no STORE, no expunge" || diag "$(echo $cmds)"
is "$(printf '%s\n' "$cmds" | grep -c '^APPEND$')" 0 "no APPEND"
is "$(body_fetch_uids)" "" "no body fetched"

fl=$(rawlog_flights)
diag "$fl"
# the segment (session and selected folder) of each source's moves
inbox=$(printf '%s\n' "$fl" | grep -E '^"?INBOX"? .*UID MOVE')
work=$(printf '%s\n' "$fl" | grep -E '^"?Work"? .*UID MOVE')
is "$(printf '%s\n' "$inbox" | grep -c .)" 1 "the moves out of INBOX went in one selection"
is "$(printf '%s\n' "$work" | grep -c .)" 1 "the moves out of Work went in one selection"
like "$inbox" ' move=0:' "the three UID MOVEs out of INBOX went in one flight"
like "$inbox" ' sel=0 ' "... with the SELECT before them"
like "$inbox" ': SELECT UID MOVE UID MOVE UID MOVE( \||$)' \
	"... which is the flight that selects INBOX, nothing after it waited for"
like "$work" ' sel=0 ' "the UID MOVE out of Work went with its SELECT"
like "$work" ': SELECT UID MOVE( \||$)' "... in the flight that selects Work"

# the run after: nothing left to do, and both sides still agree
rawlog_reset
tb_run "$TWINBOX" -c "$CFG" sync
is "$RUN_STATUS" 0 "the sync after" || diag "$RUN_ERR"
is "$(rawlog_commands | grep -cE '^(UID MOVE|UID COPY|APPEND|UID EXPUNGE)$')" 0 \
	"the sync after moves nothing" || diag "$(rawlog_commands | tr '\n' ' ')"
cl_agree "$U" "$M" 25
is "$CL_ERR" "" "... and both sides still agree"

# ---- one connection, moves out of three folders: one flight ----
# SELECT and UID MOVEs of each source in turn, all sent before any
# answer (imap_move_from_many): the next source's SELECT reached the
# server before the answer to the MOVEs before it left
CFG1=$TEST_TMP/fs1.yaml
tb_write_config "$CFG1" fs maildir="$M" host=127.0.0.1 port="$P" connections=1
cl_move_local i.5 INBOX Lists
cl_move_local i.6 INBOX Work
cl_move_local w.2 Work Archive
cl_move_local a.1 Archive INBOX
rawlog_reset
tb_run "$TWINBOX" -c "$CFG1" -vv sync
is "$RUN_STATUS" 0 "one connection: sync of moves out of three folders" || diag "$RUN_ERR"
cl_agree "$U" "$M" 25
is "$CL_ERR" "" "both sides hold the same 25 messages, once each"
where_are "i.5:Lists i.6:Work w.2:Archive a.1:INBOX"
order=$(for f in "$DOVECOT_DIR"/rawlog/*.in; do
	awk 'NR == FNR { if ($2 != "*" && $2 != "+" && !($2 in t))
			 t[$2] = $1 + 0; next }
	     $2 !~ /^[A-Za-z]*[0-9]+$/ { next }
	     toupper($3) == "UID" && toupper($4) == "MOVE" { mv = $2; next }
	     toupper($3) == "SELECT" && mv != "" {
		print (($1 + 0) < t[mv] ? "ahead" : "waited"); mv = ""
	     }' "${f%.in}.out" "$f"
done)
diag "each SELECT after a source's MOVEs: $(echo $order)"
# (a SELECT after the flight, in the execute phase, waits for it)
is "$(printf '%s\n' $order | grep -c '^ahead$')" 2 \
	"the second and third sources' SELECTs went before the MOVEs before them were answered"

# move_sweep PREFIX EXTRA SEEDS MOVES WANT: each crash point of a sync
# of local moves in turn (TWINBOX_CRASH_AT=N), then a normal run, for
# N = 1, 2, ... until a run completes; each N with its own folders and
# account PREFIXN (config keys EXTRA). SEEDS "folder:count:tag ...",
# MOVES "folder:id:target ...", WANT "folder:id,id ..." (every folder of
# the account, "folder:" for an empty one). Sets done_at (the N that
# completed) and bad (what was wrong after which N).
move_sweep() {
	local prefix=$1 extra=$2 seeds=$3 moves=$4 wants=$5 n p cfg m x t f
	local st from id to cnt tag ids want
	bad= done_at=0
	for ((n = 1; n <= 40; n++)); do
		p="$prefix$n"
		cfg=$TEST_TMP/$p.yaml m=$TEST_TMP/mail/$p
		# shellcheck disable=SC2086
		tb_write_config "$cfg" "$p" maildir="$m" host=127.0.0.1 \
			port="$P" $extra \
			--raw '    folders:' --raw "      include: [\"$p-*\"]"
		for x in $seeds; do
			IFS=: read -r f cnt tag <<<"$x"
			cl_seed "$U" "$p-$f" "$cnt" "$p.$tag" S >/dev/null
		done
		for t in $wants; do
			mail_folders "$U" | grep -Fxq -- "$p-${t%%:*}" ||
				mail_folder_create "$U" "$p-${t%%:*}"
		done
		"$TWINBOX" -c "$cfg" -q sync >/dev/null 2>&1 ||
			{ fail "sweep $prefix: set-up sync $n"; break; }
		for x in $moves; do
			IFS=: read -r from id to <<<"$x"
			grep -l -F "Message-ID: <$p.$id@" "$m/$p-$from"/cur/* |
				xargs -r mv -t "$m/$p-$to/cur/"
		done
		TWINBOX_CRASH_AT=$n "$TWINBOX" -c "$cfg" -q sync >/dev/null 2>&1 </dev/null
		st=$?
		tb_run "$TWINBOX" -c "$cfg" sync
		x=
		[ "$st" = 99 ] || [ "$st" = 0 ] || x+="stopped run exited $st; "
		[ "$RUN_STATUS" = 0 ] || x+="next run exited $RUN_STATUS: $RUN_ERR; "
		for t in $wants; do
			f=$p-${t%%:*}
			IFS=, read -ra ids <<<"${t#*:}"
			want=$(for id in "${ids[@]}"; do
				printf '<%s.%s@twinbox.test>\n' "$p" "$id"
			done | LC_ALL=C sort)
			[ "$(cl_server_ids "$U" "$f")" = "$want" ] ||
				x+="server $f: $(cl_server_ids "$U" "$f" | tr '\n' ' '); "
			[ "$(cl_local_ids "$m/$f")" = "$want" ] ||
				x+="local $f: $(cl_local_ids "$m/$f" | tr '\n' ' '); "
		done
		[ -z "$x" ] || bad+="crash point $n: $x"$'\n'
		if [ "$st" = 0 ]; then
			done_at=$n
			break
		fi
	done
}

# ---- every crash point of a move into three folders over the slow link ----
# As t-moves-crash.sh's sweep. Out of a: mv.1-2 to b, mv.3-4 to c, mv.5
# to d; stay.1-2 stay.
rawlog_reset
move_sweep sw "" "a:5:mv a:2:stay" "a:mv.1:b a:mv.2:b a:mv.3:c a:mv.4:c a:mv.5:d" \
	"a:stay.1,stay.2 b:mv.1,mv.2 c:mv.3,mv.4 d:mv.5"
cmds=$(rawlog_commands)
is "$(printf '%s\n' "$cmds" | grep -c '^UID COPY$')/$(printf '%s\n' "$cmds" | grep -c '^UID MOVE$' | sed 's/^[1-9][0-9]*$/some/')" \
	"0/some" "the sweep's moves went as UID MOVE, not copies"
ok $(( done_at >= 2 ? 0 : 1 )) "slow-link move sweep: stopped at $((done_at - 1)) crash points, then a run completed"
is "$bad" "" "slow-link move sweep: after a stop at every crash point the next run has every message in its folder once, on both sides"

# ---- every crash point of moves out of two folders in one flight ----
# One connection (imap_move_from_many): out of a, mv.1 to b; out of c,
# cv.2 to d and cv.3 to b; stay.1 stays in a.
move_sweep mw connections=1 "a:1:mv a:1:stay c:3:cv" "a:mv.1:b c:cv.2:d c:cv.3:b" \
	"a:stay.1 b:cv.3,mv.1 c:cv.1 d:cv.2"
ok $(( done_at >= 2 ? 0 : 1 )) "moves from two folders in one flight: stopped at $((done_at - 1)) crash points, then a run completed"
is "$bad" "" "moves from two folders in one flight: after a stop at every crash point the next run has every message in its folder once, on both sides"

done_testing
