#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-watch-reconnect.sh - sync --watch reconnecting at the right moment,
# through a relay (tcp-proxy) that can cut or freeze the "network":
#  1. a long outage: the reconnect backoff has grown to 40 s (a test
#     setting, TWINBOX_WATCH_BACKOFF_MS) when the network comes back; the
#     mail does not arrive by itself within 4 s, but a network change (a
#     new interface, as root) brings it within 10 s;
#     a link that goes away makes the watcher check its connections at
#     once: one the frozen relay left silently dead (a moved laptop's) is
#     found within seconds, not at the next IDLE renewal;
#  2. the same outage ended by SIGUSR1: the watcher reconnects and syncs
#     at once;
#  3. a silent drop: the relay stops forwarding without closing anything;
#     the NOOP deadline of the IDLE renewal (shortened by
#     TWINBOX_WATCH_RENEW and TWINBOX_WATCH_NOOP) notices it, and mail
#     delivered meanwhile arrives within 10 s of the network thawing.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/sync-lib.sh"
. "$TOP_SRCDIR/tests/integration/watch-lib.sh"

dovecot_start
U=$TEST_USER
MD=$TEST_TMP/mail/w
CFG=$TEST_TMP/w.yaml
mail_seed "$U" INBOX 2 --tag "in"
proxy_start
tb_write_config "$CFG" w port="$PROXY_PORT" --raw '    poll: 1h'

# An outage: cut the relay, deliver NAME meanwhile, give the network
# back. Leaves the lost-line count in OUTAGE_LOST.
outage() {	# outage MSGID
	local n
	n=$(log_count 'connection lost')
	kill -USR1 "$PROXY"
	wait_until 10 log_more 'connection lost' "$n" ||
		diag "the watcher did not notice the cut"
	deliver "$U" INBOX "$1"
	kill -USR2 "$PROXY"
}

# can this test make network interfaces (as root: a dummy one, or a veth
# pair where the kernel has no dummy driver)? Found out before the
# watcher starts: it would see these changes too.
IF=tbw$$ CAN_LINK=0
if ip link add "$IF" type dummy 2>/dev/null ||
   ip link add "$IF" type veth peer name "tbv$$" 2>/dev/null; then
	ip link del "$IF" 2>/dev/null
	CAN_LINK=1
fi

TWINBOX_WATCH_BACKOFF_MS=40000 TWINBOX_WATCH_NOOP=2 watch_start "$CFG"
wait_until 20 local_has "$MD/INBOX" in.2@twinbox.test
ok $? "the first sync goes through the relay"
wait_until 10 grep -q "watching every folder" "$WATCH_ERR"
settled

# --- 1. a network change ends the backoff ----------------------------------------

if [ "$CAN_LINK" = 1 ]; then
	outage "net.1@w"
	sleep 4
	local_has "$MD/INBOX" "net.1@w"
	isnt $? 0 "the backoff holds the reconnect back (the mail is not there after 4 s)"
	t0=${EPOCHREALTIME/./}
	tb_on_exit "ip link del $IF 2>/dev/null"
	ip link add "$IF" type dummy 2>/dev/null ||
		ip link add "$IF" type veth peer name "tbv$$"
	WAIT_T0=$t0 wait_until 10 local_has "$MD/INBOX" "net.1@w"
	ok $? "a new interface: the mail arrives within 10 s ($WAITED s)"
	like "$(cat "$WATCH_ERR")" "network changed: reconnecting now" \
		"the log says why it reconnected"
	settled
	# the relay freezes: the connection looks up, but is dead
	lost=$(log_count 'connection lost')
	kill -HUP "$PROXY"
	deliver "$U" INBOX "gone.1@w"
	t0=${EPOCHREALTIME/./}
	ip link del "$IF"
	WAIT_T0=$t0 wait_until 8 log_more 'connection lost' "$lost"
	ok $? "a link goes away: a silently dead connection is found at once ($WAITED s)"
	like "$(cat "$WATCH_ERR")" "went away: checking the connections" \
		"the log says why it checked"
	kill -USR2 "$PROXY"
	kill -USR1 "$WATCH_PID"
	wait_until 10 local_has "$MD/INBOX" "gone.1@w"
	ok $? "and mail delivered meanwhile arrives once the network is back ($WAITED s)"
	settled
else
	for i in 1 2 3 4 5 6; do
		skip "cannot create a network interface here (not root?)"
	done
fi

# --- 2. SIGUSR1 ends the backoff -------------------------------------------------

outage "usr1.1@w"
sleep 2
local_has "$MD/INBOX" "usr1.1@w"
isnt $? 0 "SIGUSR1: before it, the backoff holds the reconnect back"
t0=${EPOCHREALTIME/./}
kill -USR1 "$WATCH_PID"
WAIT_T0=$t0 wait_until 3 local_has "$MD/INBOX" "usr1.1@w"
ok $? "SIGUSR1: reconnects and syncs at once ($WAITED s)"
settled
check_same "$U" INBOX "$MD/INBOX" "both sides agree"
watch_stop TERM
is "$WATCH_STATUS" 0 "SIGTERM: exit 0"

# --- 3. a silent drop -------------------------------------------------------------

WATCH_ERR=$TEST_TMP/watch-frozen.err
TWINBOX_WATCH_RENEW=3000 TWINBOX_WATCH_NOOP=2 TWINBOX_WATCH_BACKOFF_MS=1000,2000 \
	watch_start "$CFG"
wait_until 10 grep -q "watching every folder" "$WATCH_ERR"
ok $? "frozen: the watcher is up"
# freeze between two renewals, after the sync that follows one (a sync
# caught in the freeze would wait for the engine's own, longer, deadline)
n=$(log_count 'renewing IDLE')
wait_until 10 log_more 'renewing IDLE' "$n"
sleep 1
lost=$(log_count 'connection lost')
t0=${EPOCHREALTIME/./}
kill -HUP "$PROXY"
WAIT_T0=$t0 wait_until 10 log_more 'connection lost' "$lost"
ok $? "frozen: the NOOP deadline notices the silent drop ($WAITED s)"
deliver "$U" INBOX "frozen.1@w"
local_deliver "$MD/INBOX" "frozen.local@w"
sleep 3
t0=${EPOCHREALTIME/./}
kill -USR2 "$PROXY"
WAIT_T0=$t0 wait_until 10 local_has "$MD/INBOX" "frozen.1@w"
ok $? "frozen: mail arrives within 10 s of the thaw ($WAITED s)"
WAIT_T0=$t0 wait_until 10 server_has "$U" INBOX "frozen.local@w"
ok $? "frozen: a local change reaches the server ($WAITED s)"
wait_until 10 grep -q "connection is back" "$WATCH_ERR"
ok $? "frozen: the log says the connection is back"
settled
check_same "$U" INBOX "$MD/INBOX" "frozen: both sides agree"
watch_stop TERM
is "$WATCH_STATUS" 0 "frozen: SIGTERM: exit 0"
unlike "$(cat "$TEST_TMP"/watch*.err)" "AddressSanitizer|runtime error|LeakSanitizer" \
	"no sanitizer report"

done_testing
