#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-watch-stop.sh - SIGTERM while a sync of sync --watch is moving
# messages. Three rounds: the first sync pulling 400 messages, then a
# notice-started push of 300 new local files, then a pull of 300 new
# server messages; each watcher gets SIGTERM once the messages begin to
# cross. Each must exit 0 within 5 s; a plain `twinbox sync` then
# completes and both sides hold every message once.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/crash-lib.sh"
. "$TOP_SRCDIR/tests/integration/sync-lib.sh"
. "$TOP_SRCDIR/tests/integration/watch-lib.sh"

dovecot_start
U=$TEST_USER
M=$TEST_TMP/mail/w
CFG=$TEST_TMP/w.yaml
tb_write_config "$CFG" w --raw '    poll: 1h'
cl_seed "$U" INBOX 400 first || bail_out "seed INBOX"
total=400
SRV_INBOX=$(mail_path "$U" INBOX)

local_count() {
	find "$M" -path '*/tmp' -prune -o -type f -path '*/cur/*' -print -o \
		-type f -path '*/new/*' -print 2>/dev/null | wc -l
}
server_count() {
	find "$SRV_INBOX/cur" "$SRV_INBOX/new" -maxdepth 1 -type f 2>/dev/null |
		wc -l
}

mid=0
for r in 1 2 3; do
	watch_start "$CFG"
	case $r in
	1)
		count=local_count start=0 add=400
		;;
	2)
		wait_until 60 eval '[ "$(local_count)" -ge "$total" ]'
		settled
		count=server_count start=$(server_count) add=300
		cl_local_seed "$M/INBOX" 300 "push$r"
		;;
	3)
		wait_until 60 eval '[ "$(local_count)" -ge "$total" ]'
		settled
		count=local_count start=$(local_count) add=300
		cl_seed "$U" INBOX 300 "pull$r" >/dev/null
		;;
	esac
	[ "$r" != 1 ] && total=$((total + 300))
	for ((t = 0; t < 1000; t++)); do
		[ "$($count)" -gt "$start" ] && break
		cl_ms_sleep 10
	done
	watch_stop TERM
	c=$($count)
	diag "round $r: $((c - start)) of $add messages had crossed when it exited"
	[ "$c" -gt "$start" ] && [ "$c" -lt $((start + add)) ] && mid=$((mid + 1))
	is "$WATCH_STATUS" 0 "round $r: SIGTERM during a sync: exit 0"
	ok "$(awk -v s="$WATCH_SECS" 'BEGIN { print !(s < 5) }')" \
		"round $r: within 5 s ($WATCH_SECS s)"
done
ok $((mid >= 1 ? 0 : 1)) "at least one SIGTERM landed in the middle of a transfer ($mid of 3)"

tb_run "$TWINBOX" -c "$CFG" sync
is "$RUN_STATUS" 0 "a plain sync afterwards completes" || diag "$RUN_ERR"
cl_agree "$U" "$M" "$total"
ok $? "both sides hold the same $total messages, none lost or duplicated" ||
	diag "$CL_ERR"
tb_run "$TWINBOX" -c "$CFG" --json sync
unlike "$RUN_OUT" '"(pulled|pushed)_(new|deletions)":[1-9]' \
	"one more run has nothing left to transfer" || diag "$RUN_OUT"
unlike "$(cat "$WATCH_ERR")" "AddressSanitizer|runtime error|LeakSanitizer" \
	"no sanitizer report"

done_testing
