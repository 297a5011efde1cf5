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
