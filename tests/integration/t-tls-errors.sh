#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-tls-errors.sh - exit 3 with a reason on an unknown CA, a wrong host
# name, a wrong password and a server without STARTTLS; exit 2 for tls:
# none to a non-loopback host (SPEC: exit status, TLS, tls: none).

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"

dovecot_start

check3() {	# check3 NAME REGEX: last run exited 3 and said why
	is "$RUN_STATUS" 3 "$1: exit status 3" || diag "stderr: $RUN_ERR"
	grep -Eiq -- "$2" "$TEST_TMP/run.err"
	ok $? "$1: stderr says why (/$2/)" || diag "stderr: $RUN_ERR"
	! tb_crashed
	ok $? "$1: no crash"
}

for tls in starttls implicit; do
	cfg=$TEST_TMP/noca-$tls.yaml
	tb_write_config "$cfg" noca tls=$tls ca_file=
	tb_run "$TWINBOX" -c "$cfg" list-folders noca
	check3 "unknown CA ($tls)" 'certif|verif|trust|issuer'
	tb_run "$TWINBOX" -c "$cfg" check-config
	is "$RUN_STATUS" 3 "unknown CA ($tls): check-config exits 3 too"

	cfg=$TEST_TMP/badname-$tls.yaml
	tb_write_config "$cfg" badname tls=$tls host="$IMAP_BADNAME_HOST"
	tb_run "$TWINBOX" -c "$cfg" list-folders badname
	check3 "wrong host name ($tls)" 'host|name|match|certif|verif'
done

cfg=$TEST_TMP/badpw.yaml
printf 'not-the-password\n' >"$TEST_TMP/wrong.pass"
chmod 600 "$TEST_TMP/wrong.pass"
tb_write_config "$cfg" badpw tls=implicit password_file="$TEST_TMP/wrong.pass"
tb_run "$TWINBOX" -c "$cfg" list-folders badpw
check3 "wrong password" 'auth|login|password|credential'
unlike "$RUN_ERR" "not-the-password" "wrong password: not echoed on stderr"

cfg=$TEST_TMP/cleartext.yaml
tb_write_config "$cfg" far tls=none host=imap.example.org
tb_run "$TWINBOX" -c "$cfg" check-config --offline
is "$RUN_STATUS" 2 "tls: none to a non-loopback host is a config error" ||
	diag "stderr: $RUN_ERR"
dovecot_stop

# A server that does not offer STARTTLS: give up before sending anything
# that carries the password.
dovecot_start --no-tls
cfg=$TEST_TMP/nostarttls.yaml
tb_write_config "$cfg" nostls tls=starttls
tb_run "$TWINBOX" -c "$cfg" list-folders nostls
check3 "STARTTLS not offered" 'starttls|tls'
tb_run "$TWINBOX" -c "$cfg" check-config
is "$RUN_STATUS" 3 "STARTTLS not offered: check-config exits 3 too"
# Dovecot logs every login attempt; there must have been none.
sleep 0.3
! grep -Eq "user=<$TEST_USER>|auth failed|Login:" "$DOVECOT_DIR/dovecot.log"
ok $? "STARTTLS not offered: no credentials sent in clear text" ||
	diag "$(tail -n 5 "$DOVECOT_DIR/dovecot.log")"

done_testing
