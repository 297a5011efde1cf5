#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-watch-accounts.sh - one watcher, two accounts in one configuration
# (alice and bob, each with its own Maildir): mail delivered to either
# account reaches that account's Maildir and no other, and a new local
# file and a flag change in either Maildir reach that account's server,
# each within 5 s; SIGTERM then exits 0 and both sides agree.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/sync-lib.sh"
. "$TOP_SRCDIR/tests/integration/watch-lib.sh"

dovecot_start
A=$TEST_USER B=$TEST_USER2
mail_seed "$A" INBOX 2 --tag "a"
mail_seed "$B" INBOX 2 --tag "b"
mail_seed "$B" Archive 1 --tag "bar"
printf '%s\n' "$TEST_PASS2" >"$TEST_TMP/bob.pw"
chmod 600 "$TEST_TMP/bob.pw"
CFG=$TEST_TMP/two.yaml
tb_write_config "$CFG" alice --raw '    poll: 1h'
tb_write_config "$TEST_TMP/b.yaml" bob user="$B" \
	password_file="$TEST_TMP/bob.pw" --raw '    poll: 1h'
# the second file's account, appended to the first file's list
sed -n '/^accounts:/,$p' "$TEST_TMP/b.yaml" | sed 1d >>"$CFG"
MA=$TEST_TMP/mail/alice MB=$TEST_TMP/mail/bob

watch_start "$CFG"
wait_until 20 local_has "$MA/INBOX" a.2@twinbox.test
ok $? "alice: the first sync"
wait_until 20 local_has "$MB/Archive" bar.1@twinbox.test
ok $? "bob: the first sync"
like "$(cat "$WATCH_ERR")" "watching 2 accounts" "one watcher for both accounts"
wait_until 10 eval '[ "$(log_count "watching every folder")" -ge 2 ]'
ok $? "each account has its own watch connection"
settled

for who in alice bob; do
	if [ $who = alice ]; then u=$A md=$MA other=$MB; else u=$B md=$MB other=$MA; fi
	t0=${EPOCHREALTIME/./}
	deliver "$u" INBOX "srv.$who@two"
	WAIT_T0=$t0 wait_until 5 local_has "$md/INBOX" "srv.$who@two"
	ok $? "$who: new server mail reaches its Maildir ($WAITED s)"
	t0=${EPOCHREALTIME/./}
	local_deliver "$md/INBOX" "loc.$who@two"
	WAIT_T0=$t0 wait_until 5 server_has "$u" INBOX "loc.$who@two"
	ok $? "$who: a new local file reaches its server ($WAITED s)"
	f=$(grep -lsi "Message-ID: <${who:0:1}.1@twinbox.test>" "$md"/INBOX/cur/* \
		"$md"/INBOX/new/* | head -n 1)
	base=${f##*/}
	t0=${EPOCHREALTIME/./}
	mv "$f" "$md/INBOX/cur/${base%%:2,*}:2,F"
	WAIT_T0=$t0 wait_until 5 server_has "$u" INBOX "${who:0:1}.1@twinbox.test" '\Flagged'
	ok $? "$who: a local flag change reaches its server ($WAITED s)"
	settled
	local_has "$other/INBOX" "srv.$who@two"
	isnt $? 0 "$who: its mail is not in the other account's Maildir"
done
server_has "$B" INBOX "loc.alice@two"
isnt $? 0 "alice's local file is not on bob's server"

watch_stop TERM
is "$WATCH_STATUS" 0 "SIGTERM: exit 0"
check_same "$A" INBOX "$MA/INBOX" "alice: INBOX: both sides agree"
check_same "$B" INBOX "$MB/INBOX" "bob: INBOX: both sides agree"
check_same "$B" Archive "$MB/Archive" "bob: Archive: both sides agree"
unlike "$(cat "$WATCH_ERR")" "AddressSanitizer|runtime error|LeakSanitizer" \
	"no sanitizer report"

done_testing
