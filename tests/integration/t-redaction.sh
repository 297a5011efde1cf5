#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-redaction.sh - with -vvv the IMAP trace goes to stderr, and every
# credential in it is replaced by <redacted> (SPEC: -vvv).

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"

dovecot_start

# The password as LOGIN sends it, and as AUTHENTICATE PLAIN encodes it.
b64_plain=$(printf '\0%s\0%s' "$TEST_USER" "$TEST_PASS" | base64 -w0)
b64_plain2=$(printf '%s\0%s\0%s' "$TEST_USER" "$TEST_USER" "$TEST_PASS" | base64 -w0)
b64_pass=$(printf '%s' "$TEST_PASS" | base64 -w0)

for tls in none starttls implicit; do
	for how in password_file password; do
		cfg=$TEST_TMP/$tls-$how.yaml
		if [ "$how" = password ]; then
			tb_write_config "$cfg" acct tls=$tls password="$TEST_PASS"
		else
			tb_write_config "$cfg" acct tls=$tls
		fi
		for auth in auto plain login; do
			sed -i "/^    auth:/d" "$cfg"
			printf '    auth: "%s"\n' "$auth" >>"$cfg"
			n="tls $tls, $how, auth $auth"
			tb_run "$TWINBOX" -c "$cfg" -vvv list-folders acct
			is "$RUN_STATUS" 0 "$n: list-folders -vvv succeeds" ||
				diag "${RUN_ERR:0:2000}"
			all="$RUN_OUT$RUN_ERR"
			unlike "$all" "$TEST_PASS" "$n: password not in the output"
			unlike "$all" "$b64_plain|$b64_plain2|$b64_pass" \
				"$n: no base64 credentials in the output"
			like "$RUN_ERR" '<redacted>' "$n: trace shows <redacted>"
			like "$RUN_ERR" 'LIST' "$n: -vvv traces the protocol"
		done
	done
done

done_testing
