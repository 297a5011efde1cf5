#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-watch-net.sh - sync --watch when the network goes away: the watcher
# talks to Dovecot through a relay (tcp-proxy) that cuts every connection
# and refuses new ones until it is told the network is back.
#  1. mail delivered during an outage reaches the Maildir within 10 s of
#     the network coming back, a local change made meanwhile the server;
#     the log says once that the connection was lost (not once per retry)
#     and once that it is back;
#  2. the password changed on the server: the next login fails and the
#     watcher exits 3 instead of retrying forever.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/sync-lib.sh"
. "$TOP_SRCDIR/tests/integration/watch-lib.sh"

dovecot_start
U=$TEST_USER
MD=$TEST_TMP/mail/w
CFG=$TEST_TMP/w.yaml
mail_seed "$U" INBOX 2 --tag "in"
mail_seed "$U" Archive 1 --tag "ar"

P=$(tb_free_port)
"$TOP_BUILDDIR/tests/integration/tcp-proxy" "$P" "$IMAP_PORT" \
	>"$TEST_TMP/proxy.out" 2>&1 &
PROXY=$!
tb_on_exit "kill $PROXY 2>/dev/null"
wait_until 5 grep -q ready "$TEST_TMP/proxy.out" ||
	bail_out "tcp-proxy did not start"
tb_write_config "$CFG" w port="$P" --raw '    poll: 1h'

watch_start "$CFG"
wait_until 20 local_has "$MD/INBOX" in.2@twinbox.test
ok $? "the first sync goes through the relay"
wait_until 10 grep -q "watching every folder" "$WATCH_ERR"
settled

# --- 1. an outage of 5 s ---------------------------------------------------------

kill -USR1 "$PROXY"
deliver "$U" INBOX "down.1@w"
deliver "$U" Archive "down.2@w"
local_deliver "$MD/INBOX" "down.local@w"
sleep 5
is "$(grep -c 'connection lost' "$WATCH_ERR")" 1 \
	"one log line when the connection is lost, none per retry"
kill -0 "$WATCH_PID" 2>/dev/null
ok $? "the watcher keeps running while the network is away"
t0=${EPOCHREALTIME/./}
kill -USR2 "$PROXY"
WAIT_T0=$t0 wait_until 10 local_has "$MD/INBOX" "down.1@w"
ok $? "mail from the outage arrives within 10 s of the network ($WAITED s)"
WAIT_T0=$t0 wait_until 10 local_has "$MD/Archive" "down.2@w"
ok $? "in every folder ($WAITED s)"
WAIT_T0=$t0 wait_until 10 server_has "$U" INBOX "down.local@w"
ok $? "a local change from the outage reaches the server ($WAITED s)"
wait_until 10 grep -q "connection is back" "$WATCH_ERR"
ok $? "one log line when the connection is back"
is "$(grep -c '^twinbox: [-0-9: ]*error:' "$WATCH_ERR")" 0 "no error for each failed retry" ||
	diag "$(grep '^twinbox: [-0-9: ]*error:' "$WATCH_ERR" | head -n 5)"
settled
deliver "$U" INBOX "after.1@w"
wait_until 5 local_has "$MD/INBOX" "after.1@w"
ok $? "and the watcher watches again ($WAITED s)"
for f in INBOX Archive; do
	check_same "$U" "$f" "$MD/$f" "$f: both sides agree"
done

# --- 2. the password changed ------------------------------------------------------

settled
sed -i "s/^$U:{PLAIN}[^:]*:/$U:{PLAIN}changed-$RANDOM:/" "$DOVECOT_DIR/passwd"
kill -USR1 "$PROXY"
sleep 1
kill -USR2 "$PROXY"
wait_until 30 watch_gone
ok $? "a refused login ends the watch ($WAITED s)"
wait "$WATCH_PID"
is "$?" 3 "with exit status 3"
WATCH_PID=
like "$(cat "$WATCH_ERR")" "error: .*(auth|login|LOGIN|refused)" \
	"and says why" || diag "$(tail -n 5 "$WATCH_ERR")"
unlike "$(cat "$WATCH_ERR")" "AddressSanitizer|runtime error|LeakSanitizer" \
	"no sanitizer report"

done_testing
