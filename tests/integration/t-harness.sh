#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-harness.sh - the Dovecot test harness itself works: both listeners,
# STARTTLS, certificate names, trimmed and no-TLS modes, seeding, doveadm
# helpers, rawlog, stop. Needs no twinbox.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"

dovecot_start
pass "dovecot starts (imap $IMAP_PORT, imaps $IMAPS_PORT)"
pid=$DOVECOT_PID

greeting=$(imap_talk plain <<<"a LOGOUT")
like "$greeting" '(^|'$'\n'')\* OK \[CAPABILITY [^]]*STARTTLS' "plain listener greets and offers STARTTLS"

out=$(imap_talk starttls <<EOF2
a LOGIN $TEST_USER $TEST_PASS
b CAPABILITY
c LOGOUT
EOF2
)
ok $? "STARTTLS handshake verifies against CA_FILE"
like "$out" $'\na OK' "login after STARTTLS"
like "$out" 'CAPABILITY [^\n]*QRESYNC' "full mode offers QRESYNC"

out=$(imap_talk implicit <<EOF2
a LOGIN $TEST_USER2 $TEST_PASS2
b LOGOUT
EOF2
)
ok $? "implicit TLS listener verifies against CA_FILE"
like "$out" $'\na OK' "second user logs in over implicit TLS"

openssl s_client -connect "127.0.0.1:$IMAPS_PORT" -CAfile "$CA_FILE" \
	-verify_return_error -verify_ip 127.0.0.1 </dev/null >/dev/null 2>&1
ok $? "certificate names IP 127.0.0.1"
openssl s_client -connect "127.0.0.1:$IMAPS_PORT" -CAfile "$CA_FILE" \
	-verify_return_error -verify_hostname localhost </dev/null >/dev/null 2>&1
ok $? "certificate names DNS localhost"
openssl s_client -connect "$IMAP_BADNAME_HOST:$IMAPS_PORT" -CAfile "$CA_FILE" \
	-verify_return_error -verify_ip "$IMAP_BADNAME_HOST" </dev/null \
	>/dev/null 2>"$TEST_TMP/badname.err"
isnt "$?" 0 "certificate does not name $IMAP_BADNAME_HOST (wrong-host tests)"
openssl s_client -connect "127.0.0.1:$IMAPS_PORT" -verify_return_error \
	-CApath /nonexistent -CAfile /dev/null </dev/null >/dev/null 2>&1
isnt "$?" 0 "certificate does not verify without the test CA"

out=$(printf 'a LOGIN %s wrong-password\nb LOGOUT\n' "$TEST_USER" | imap_talk plain)
like "$out" $'\na NO' "wrong password is refused"

# Seeding and the doveadm helpers.
mail_seed "$TEST_USER" INBOX 20 --tag inb
is "$(mail_count "$TEST_USER" INBOX)" 20 "mail_seed INBOX 20"
mail_seed "$TEST_USER" "Lists/dev" 3 --flags FS --tag dev
mail_seed "$TEST_USER" "Entwürfe" 2 --new --tag ent
is "$(mail_folders "$TEST_USER" | tr '\n' ' ')" "Entwürfe INBOX Lists Lists/dev " \
	"folders nested and non-ASCII"
like "$(mail_path "$TEST_USER" "Entwürfe")" '/Maildir/\.Entw&APw-rfe$' \
	"non-ASCII name stored mUTF-7 on the server"
like "$(mail_path "$TEST_USER" "Lists/dev")" '/Maildir/\.Lists\.dev$' \
	"nested folder stored Maildir++ on the server"
is "$(mail_list "$TEST_USER" "Lists/dev" | head -n 1)" \
	$'1\t\\Flagged \\Seen\t<dev.1@twinbox.test>' "mail_list shows uid, flags, Message-ID"
mail_flags_add "$TEST_USER" INBOX 2 '\Answered' '$Forwarded'
mail_flags_remove "$TEST_USER" "Lists/dev" 1 '\Flagged'
is "$(mail_list "$TEST_USER" INBOX | sed -n 2p)" \
	$'2\t$Forwarded \\Answered\t<inb.2@twinbox.test>' "mail_flags_add"
is "$(mail_list "$TEST_USER" "Lists/dev" | head -n 1 | cut -f2)" '\Seen' "mail_flags_remove"
mail_expunge "$TEST_USER" INBOX 3
is "$(mail_count "$TEST_USER" INBOX)" 19 "mail_expunge"
mail_move "$TEST_USER" INBOX 4 Archive 2>/dev/null ||
	{ mail_folder_create "$TEST_USER" Archive && mail_move "$TEST_USER" INBOX 4 Archive; }
is "$(mail_list "$TEST_USER" Archive | cut -f3)" "<inb.4@twinbox.test>" "mail_move"
uid=$(printf 'From: a@b\nSubject: added\nMessage-ID: <added@x>\n\nbody\n' |
	mail_add "$TEST_USER" INBOX --flags S)
is "$uid" 21 "mail_add prints the new UID"
is "$(mail_body "$TEST_USER" INBOX "$uid")" \
	"$(printf 'From: a@b\nSubject: added\nMessage-ID: <added@x>\n\nbody')" \
	"mail_body returns the stored message"
mail_folder_rename "$TEST_USER" "Lists/dev" "Lists/devel"
mail_folders "$TEST_USER" | grep -qx "Lists/devel"
ok $? "mail_folder_rename"
v=$(mail_uidvalidity "$TEST_USER" INBOX)
like "$v" '^[0-9]+$' "mail_uidvalidity"
mail_set_uidvalidity "$TEST_USER" INBOX $((v + 7))
is "$(mail_uidvalidity "$TEST_USER" INBOX)" $((v + 7)) "mail_set_uidvalidity"

# Rawlog: what a client sent after login.
imap_talk plain >/dev/null <<EOF2
a LOGIN $TEST_USER $TEST_PASS
b SELECT "Lists/devel"
c UID FETCH 1:* (FLAGS)
d LOGOUT
EOF2
raw=$(rawlog_client_lines)
like "$raw" $'(^|\n)b SELECT "Lists/devel"(\n|$)' "rawlog records SELECT"
like "$raw" $'(^|\n)c UID FETCH 1:\\* \\(FLAGS\\)' "rawlog records UID FETCH"
unlike "$raw" "$TEST_PASS" "rawlog (post-login) holds no password"

dovecot_stop
kill -0 "$pid" 2>/dev/null
isnt "$?" 0 "dovecot_stop: master process gone"
(exec 3<>"/dev/tcp/127.0.0.1/$IMAP_PORT") 2>/dev/null
isnt "$?" 0 "dovecot_stop: port closed"

# Trimmed capabilities.
dovecot_start --trimmed
pre=$(imap_talk plain <<<"a CAPABILITY
b LOGOUT")
like "$pre" 'CAPABILITY IMAP4rev1 [^\n]*STARTTLS' "trimmed: STARTTLS still offered"
out=$(imap_talk starttls <<EOF2
a LOGIN $TEST_USER $TEST_PASS
b CAPABILITY
c LOGOUT
EOF2
)
caps=$(printf '%s\n' "$out" | grep '^\* CAPABILITY' | tail -n 1)
is "$caps" "* CAPABILITY IMAP4rev1" "trimmed: post-login CAPABILITY is plain IMAP4rev1"
unlike "$out" 'QRESYNC|CONDSTORE|MOVE|UIDPLUS|LITERAL\+|ENABLE|ESEARCH' \
	"trimmed: no extensions advertised"
mail_seed "$TEST_USER" INBOX 5
is "$(mail_count "$TEST_USER" INBOX)" 5 "trimmed: seeding works"
dovecot_stop

# No TLS at all.
dovecot_start --no-tls
is "$IMAPS_PORT" "" "no-tls: no implicit-TLS listener"
pre=$(imap_talk plain <<<"a CAPABILITY
b LOGOUT")
unlike "$pre" 'STARTTLS' "no-tls: STARTTLS not offered"
like "$pre" $'\na OK' "no-tls: server answers"
dovecot_stop

done_testing
