#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-login.sh - twinbox logs in over plain IMAP on loopback, STARTTLS and
# implicit TLS (SPEC: tls, ca_file, password, password_file), and copes
# with a server that advertises nothing but IMAP4rev1.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"

dovecot_start
mail_seed "$TEST_USER" INBOX 3

for tls in none starttls implicit; do
	cfg=$TEST_TMP/$tls.yaml
	tb_write_config "$cfg" "acct-$tls" tls=$tls
	tb_run "$TWINBOX" -c "$cfg" check-config --offline
	is "$RUN_STATUS" 0 "tls: $tls: check-config --offline accepts the config" ||
		diag "$RUN_ERR"
	tb_run "$TWINBOX" -c "$cfg" check-config
	is "$RUN_STATUS" 0 "tls: $tls: check-config connects and logs in" ||
		diag "$RUN_ERR"
	tb_run "$TWINBOX" -c "$cfg" list-folders "acct-$tls"
	is "$RUN_STATUS" 0 "tls: $tls: list-folders succeeds" || diag "$RUN_ERR"
	like "$RUN_OUT" $'(^|\n)INBOX\t' "tls: $tls: list-folders shows INBOX"
	! tb_crashed
	ok $? "tls: $tls: no crash"
done

# Inline password (the file must not be readable by others), second user.
cfg=$TEST_TMP/inline.yaml
tb_write_config "$cfg" inline tls=starttls user="$TEST_USER2" \
	password="$TEST_PASS2"
tb_run "$TWINBOX" -c "$cfg" list-folders inline
is "$RUN_STATUS" 0 "inline password: list-folders as the second user" ||
	diag "$RUN_ERR"

# password_command
cfg=$TEST_TMP/cmd.yaml
tb_write_config "$cfg" cmd tls=implicit password_command="cat $TEST_TMP/cmd.pass"
printf '%s\n' "$TEST_PASS" >"$TEST_TMP/cmd.pass"
chmod 600 "$TEST_TMP/cmd.pass"
tb_run "$TWINBOX" -c "$cfg" list-folders cmd
is "$RUN_STATUS" 0 "password_command: list-folders" || diag "$RUN_ERR"

# host: localhost must work too (the certificate names DNS:localhost).
cfg=$TEST_TMP/localhost.yaml
tb_write_config "$cfg" lh tls=implicit host=localhost
tb_run "$TWINBOX" -c "$cfg" list-folders lh
is "$RUN_STATUS" 0 "host localhost over implicit TLS" || diag "$RUN_ERR"

# Early login: a sync remembers in its state that the server offers SASL-IR
# and AUTH=PLAIN; the next run's login leaves with the TLS handshake,
# before the greeting is read (one round trip less), and a wrong password
# is then still one failed attempt with a clear error.
for tls in implicit starttls; do
	cfg=$TEST_TMP/early-$tls.yaml
	tb_write_config "$cfg" "early-$tls" tls=$tls \
		maildir="$TEST_TMP/mail/early-$tls"
	tb_run "$TWINBOX" -vvv -c "$cfg" sync
	is "$RUN_STATUS" 0 "early login, $tls: first sync" || diag "$RUN_ERR"
	unlike "$RUN_ERR" 'logging in without waiting' \
		"early login, $tls: not on the first run (nothing known yet)"
	tb_run "$TWINBOX" -vvv -c "$cfg" sync
	is "$RUN_STATUS" 0 "early login, $tls: second sync" || diag "$RUN_ERR"
	like "$RUN_ERR" 'logging in without waiting' \
		"early login, $tls: the second run logs in early"
	tr=$(printf "%s\n" "$RUN_ERR" | grep -E " (C|S): " | head -n 12)
	if [ "$tls" = implicit ]; then
		like "$(printf '%s\n' "$tr" | head -n 1)" 'C: T1 AUTHENTICATE PLAIN <redacted>' \
			"early login, $tls: the login is the first thing on the wire"
		# the run's first connection sends its STATUS precheck behind
		# the login, before it has read the greeting
		like "$(printf '%s\n' "$tr" | sed -n '1,/S: \* OK/p' | tr '\n' ' ')" \
			'C: T[0-9]+ STATUS "INBOX"' \
			"early login, $tls: the STATUS precheck goes with the login"
	else
		unlike "$(printf '%s\n' "$tr" | sed -n '/STARTTLS/,/AUTHENTICATE/p')" \
			'C: T[0-9]+ CAPABILITY' \
			"early login, $tls: no CAPABILITY between STARTTLS and the login"
	fi
	unlike "$RUN_ERR" "$TEST_PASS" "early login, $tls: no password in the trace"
	is "$(find "$TEST_TMP/mail/early-$tls" -type f \( -path '*/cur/*' -o -path '*/new/*' \) | wc -l)" 3 \
		"early login, $tls: the 3 messages synced"
	printf 'wrong\n' >"$TEST_TMP/early-bad.pass"
	chmod 600 "$TEST_TMP/early-bad.pass"
	tb_write_config "$cfg" "early-$tls" tls=$tls \
		maildir="$TEST_TMP/mail/early-$tls" \
		password_file="$TEST_TMP/early-bad.pass"
	tb_run "$TWINBOX" -vvv -c "$cfg" sync
	is "$RUN_STATUS" 3 "early login, $tls: a wrong password exits 3"
	like "$RUN_ERR" "authentication as '$TEST_USER'.*failed" \
		"early login, $tls: ... and says the login failed"
	is "$(printf '%s\n' "$RUN_ERR" | grep -c 'C: T[0-9]* AUTHENTICATE')" 1 \
		"early login, $tls: ... after one attempt"
done
dovecot_stop

# A server with nothing but IMAP4rev1: still works, and the client does
# not use what was not advertised.
dovecot_start --trimmed
mail_folder_create "$TEST_USER" "Lists/dev"
cfg=$TEST_TMP/trimmed.yaml
tb_write_config "$cfg" trimmed tls=starttls
tb_run "$TWINBOX" -c "$cfg" list-folders trimmed
is "$RUN_STATUS" 0 "trimmed server: list-folders succeeds" || diag "$RUN_ERR"
like "$RUN_OUT" $'(^|\n)Lists/dev\t' "trimmed server: nested folder listed"
raw=$(rawlog_client_lines)
unlike "$raw" $'(^|\n)[^ ]+ (ENABLE|UID MOVE|ESEARCH|[^\n]*CHANGEDSINCE|[^\n]*QRESYNC)' \
	"trimmed server: no unadvertised extension used" || diag "$raw"

done_testing
