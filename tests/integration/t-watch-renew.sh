#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-watch-renew.sh - the IDLE renewal of sync --watch, every 3 s instead
# of every 25 minutes (TWINBOX_WATCH_RENEW, a test setting), with NOTIFY
# and with IDLE on the folder alone (TWINBOX_NO_NOTIFY):
#  1. Dovecot's rawlog shows the watch connection ending its IDLE with
#     DONE, sending a NOOP and starting IDLE again, renewal after renewal;
#  2. mail delivered just before, at and just after a renewal (when a
#     notice can fall between DONE and the next IDLE) reaches the Maildir
#     within 2 s, before the next delivery: no notice is lost.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/sync-lib.sh"
. "$TOP_SRCDIR/tests/integration/watch-lib.sh"

dovecot_start
U=$TEST_USER
MD=$TEST_TMP/mail/w
CFG=$TEST_TMP/w.yaml
mail_seed "$U" INBOX 2 --tag "in"
tb_write_config "$CFG" w --raw '    poll: 1h'

# renewals DONE / NOOP / IDLE in the rawlog files that contain MARK
renewals() {	# renewals MARK [NOT]
	local f n=0 c
	for f in "$DOVECOT_DIR"/rawlog/*.in; do
		[ -f "$f" ] || continue
		grep -q -- "$1" "$f" || continue
		[ -n "${2:-}" ] && grep -q -- "$2" "$f" && continue
		c=$(tr -d '\r' <"$f" | sed -E 's/^[0-9.]+ //' |
		    awk '/^DONE$/ { d = 1; next }
			 d == 1 && / NOOP$/ { d = 2; next }
			 d == 2 && / IDLE$/ { n++ }
			 { d = 0 } END { print n + 0 }')
		n=$((n + c))
	done
	echo "$n"
}

for mode in notify idle; do
	WATCH_ERR=$TEST_TMP/watch-$mode.err
	if [ "$mode" = idle ]; then
		TWINBOX_NO_NOTIFY=1 TWINBOX_WATCH_RENEW=3000 watch_start "$CFG"
		wait_until 10 grep -q "INBOX: watching (IDLE)" "$WATCH_ERR"
	else
		TWINBOX_WATCH_RENEW=3000 watch_start "$CFG"
		wait_until 10 grep -q "watching every folder" "$WATCH_ERR"
	fi
	ok $? "$mode: the watcher is up"
	wait_until 20 local_has "$MD/INBOX" in.2@twinbox.test
	# deliver at these offsets (ms) from the next renewal
	i=0
	for off in -200 -50 0 50 200; do
		i=$((i + 1))
		n=$(log_count 'renewing IDLE')
		wait_until 10 log_more 'renewing IDLE' "$n" ||
			diag "$mode: no renewal within 10 s"
		# the renewal that was just logged is 3 s before the next one
		sleep "$(awk -v o="$off" 'BEGIN { printf "%.3f", 3 + o / 1000 }')"
		t0=${EPOCHREALTIME/./}
		deliver "$U" INBOX "$mode.$i@renew"
		WAIT_T0=$t0 wait_until 2 local_has "$MD/INBOX" "$mode.$i@renew"
		ok $? "$mode: mail delivered ${off} ms from a renewal arrives within 2 s ($WAITED s)"
	done
	watch_stop TERM
	is "$WATCH_STATUS" 0 "$mode: SIGTERM: exit 0"
	check_same "$U" INBOX "$MD/INBOX" "$mode: both sides agree"
done

rawlog_client_lines >/dev/null
r=$(renewals "NOTIFY SET")
ok "$([ "$r" -ge 5 ]; echo $?)" "notify: the rawlog shows DONE, NOOP, IDLE $r times"
r=$(renewals " IDLE" "NOTIFY SET")
ok "$([ "$r" -ge 5 ]; echo $?)" "idle: the rawlog shows DONE, NOOP, IDLE $r times"
unlike "$(cat "$TEST_TMP"/watch*.err)" "AddressSanitizer|runtime error|LeakSanitizer" \
	"no sanitizer report"

done_testing
