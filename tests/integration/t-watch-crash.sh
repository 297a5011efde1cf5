#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-watch-crash.sh - SPEC "Safety and reliability" under sync --watch: a
# watcher killed with kill -9 in the middle of a sync that a notice
# started (not its first sync) leaves nothing lost or duplicated; the next
# watcher finishes the job. Four rounds: each starts a watcher, lets its
# first sync finish, then adds 300 messages on the server (a pull the
# NOTIFY connection starts) or 300 files in the Maildir (a push inotify
# starts) and kills the watcher once they begin to cross. A final sync
# must then find both sides equal, every message once.
# CRASH_SEED=N replays the same kill delays.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/crash-lib.sh"
. "$TOP_SRCDIR/tests/integration/sync-lib.sh"
. "$TOP_SRCDIR/tests/integration/watch-lib.sh"

cl_seed_kills
dovecot_start
U=$TEST_USER
M=$TEST_TMP/mail/w
CFG=$TEST_TMP/w.yaml
tb_write_config "$CFG" w --raw '    poll: 1h'
cl_seed "$U" INBOX 20 first || fail "seed INBOX"
cl_seed "$U" Archive 20 firstar || fail "seed Archive"
total=40
SRV_INBOX=$(mail_path "$U" INBOX)

local_count() {
	find "$M" -path '*/tmp' -prune -o -type f -path '*/cur/*' -print -o \
		-type f -path '*/new/*' -print 2>/dev/null | wc -l
}
server_count() {
	find "$SRV_INBOX/cur" "$SRV_INBOX/new" "$SRV_ARCHIVE/cur" \
		"$SRV_ARCHIVE/new" -maxdepth 1 -type f 2>/dev/null | wc -l
}

killed=0 mid=0
for r in 1 2 3 4; do
	watch_start "$CFG"
	wait_until 60 eval '[ "$(local_count)" -ge "$total" ]'
	settled
	SRV_ARCHIVE=$(mail_path "$U" Archive)
	if [ $((r % 2)) = 1 ]; then
		count=local_count
		start=$(local_count)
		cl_seed "$U" INBOX 300 "r$r" >/dev/null
	else
		count=server_count
		start=$(server_count)
		cl_local_seed "$M/Archive" 300 "r$r"
	fi
	total=$((total + 300))
	for ((t = 0; t < 500; t++)); do
		[ "$($count)" -gt "$start" ] && break
		cl_ms_sleep 10
	done
	cl_ms_sleep $((RANDOM % 41))
	kill -9 "$WATCH_PID"
	{ wait "$WATCH_PID"; } 2>/dev/null
	[ $? = 137 ] && killed=$((killed + 1))
	c=$($count)
	[ "$c" -gt "$start" ] && [ "$c" -lt $((start + 300)) ] && mid=$((mid + 1))
	WATCH_PID=
done
diag "$killed of 4 watchers killed, $mid in the middle of the transfer"
ok $((killed == 4 ? 0 : 1)) "every watcher was killed, none had exited"
ok $((mid >= 2 ? 0 : 1)) "at least 2 kills landed in the middle of a transfer"

# what recovery decided, for a failure that shows only under load
crash_diag() {
	local f id
	diag "watchers' (then the final sync's) recovery and copy lines:"
	diag "$(printf '%s\n' "$RUN_ERR" | cat "$WATCH_ERR" - |
		grep -E 'finishing|late copy|upload of|interrupted|cop(y|ies)|recovered' |
		sed -E 's/(recovered (upload|download)) .*/\1/' | uniq -c | tail -n 40)"
	for f in INBOX Archive; do
		for id in $( { cl_server_ids "$U" "$f" | uniq -d
			      cl_local_ids "$M/$f" | uniq -d; } |
			    LC_ALL=C sort -u | head -n 3); do
			diag "$f: $id twice; server|local folders: $(cl_where "$U" "$M" "$id")"
		done
	done
}

tb_run "$TWINBOX" -c "$CFG" -vv --json sync
is "$RUN_STATUS" 0 "the run after the kills completes" || diag "$RUN_ERR"
cl_agree "$U" "$M" "$total"
ok $? "server and Maildir agree, $total messages, none lost or duplicated" ||
	{ diag "$CL_ERR"; crash_diag; }
tb_run "$TWINBOX" -c "$CFG" --json sync
unlike "$RUN_OUT" '"(pulled|pushed)_(new|deletions)":[1-9]' \
	"one more run has nothing left to transfer" || diag "$RUN_OUT"
unlike "$(cat "$WATCH_ERR")" "AddressSanitizer|runtime error|LeakSanitizer" \
	"no sanitizer report"

done_testing
