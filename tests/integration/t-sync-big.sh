#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-sync-big.sh - a 30 MB message each way (SPEC: "Memory stays bounded
# whatever the mailbox size; message bodies stream to disk"): the bytes
# arrive intact on both sides (sha256, LF line ends on both Maildirs), and
# twinbox's peak RSS stays under 64 MB (not checked in a sanitizer build,
# whose shadow memory says nothing about twinbox's own use).

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/sync-lib.sh"

big_message() {	# big_message MSGID FILE: about 30 MB, LF line ends
	{
		printf '%s\n' "From: Big Sender <big@twinbox.test>" \
			"To: alice@twinbox.test" "Subject: a big attachment" \
			"Message-ID: <$1>" "MIME-Version: 1.0" \
			"Content-Type: application/octet-stream" \
			"Content-Transfer-Encoding: base64" ""
		head -c 23000000 /dev/urandom | base64 -w 76
	} >"$2"
}

sanitized=0
if grep -q -e AddressSanitizer -e __asan_init "$TWINBOX" 2>/dev/null ||
   ldd "$TWINBOX" 2>/dev/null | grep -q -e libasan -e libubsan; then
	sanitized=1
fi

scenario() {	# scenario full|trimmed
	local M=$1 u root cfg in size sum_srv sum_loc rss p uid
	if [ "$M" = trimmed ]; then dovecot_start --trimmed; else dovecot_start; fi
	u=$TEST_USER
	root=$TEST_TMP/mail-$M
	cfg=$TEST_TMP/$M.yaml
	tb_write_config "$cfg" "acct$M" maildir="$root"
	in=$(local_dir "$root" verbatim INBOX)

	mail_seed "$u" INBOX 2 --tag small
	tb_run "$TWINBOX" -c "$cfg" sync
	is "$RUN_STATUS" 0 "$M: initial sync" || diag "$RUN_ERR"

	big_message big-srv@twinbox.test "$TEST_TMP/srv.eml"
	big_message big-loc@twinbox.test "$TEST_TMP/loc.eml"
	size=$(stat -c %s "$TEST_TMP/srv.eml")
	like "$size" '^3[0-9]{7}$' "$M: setup: a message of about 30 MB ($size bytes)"
	mail_add "$u" INBOX "$TEST_TMP/srv.eml" >/dev/null
	cp "$TEST_TMP/loc.eml" "$in/new/1700000000.Lbig.host"
	sum_srv=$(sha256sum <"$TEST_TMP/srv.eml")
	sum_loc=$(sha256sum <"$TEST_TMP/loc.eml")

	tb_run /usr/bin/time -f '%M' -o "$TEST_TMP/rss" "$TWINBOX" -c "$cfg" sync
	is "$RUN_STATUS" 0 "$M: sync of a 30 MB message each way succeeds" || diag "$RUN_ERR"
	! tb_crashed
	ok $? "$M: no crash"
	rss=$(tail -n 1 "$TEST_TMP/rss")
	if [ "$sanitized" = 1 ]; then
		pass "$M: peak RSS under 64 MB # SKIP sanitizer build (peak RSS $rss kB)"
	else
		like "$rss" '^[0-9]+$' "$M: peak RSS measured ($rss kB)"
		ok $([ "${rss:-999999}" -lt 65536 ]; echo $?) "$M: peak RSS under 64 MB ($rss kB)"
	fi

	p=$(local_index "$in" | awk -F '\t' '$1 == "<big-srv@twinbox.test>" { print $3 }')
	is "$(printf '%s\n' "$p" | grep -c .)" 1 "$M: the server's big message is in the Maildir once"
	is "$(sha256sum <"$p" 2>/dev/null)" "$sum_srv" "$M: download: the bytes arrive intact"
	is "$(grep -c $'\r' "$p" 2>/dev/null)" 0 "$M: download: LF line ends in the Maildir"
	uid=$(mail_list "$u" INBOX |
		awk -F '\t' '$3 == "<big-loc@twinbox.test>" { print $1 }')
	is "$(printf '%s\n' "$uid" | grep -c .)" 1 "$M: the local big message is on the server once"
	is "$(mail_body "$u" INBOX "$uid" | sha256sum)" "$sum_loc" \
		"$M: upload: the bytes arrive intact (server copy, CRLF back to LF)"
	is "$(mail_count "$u" INBOX)" 4 "$M: the server holds 2 + 2 messages"
	check_same "$u" INBOX "$in" "$M: INBOX in step"

	tb_run /usr/bin/time -f '%M' -o "$TEST_TMP/rss2" "$TWINBOX" -c "$cfg" --json sync
	is "$RUN_STATUS" 0 "$M: the next sync succeeds"
	is "$(jq -s 'map(.bytes_down + .bytes_up) | add' <<<"$RUN_OUT")" 0 \
		"$M: the next sync moves no bytes"

	if [ "$M" = full ]; then
		# kill -9 in the middle of the transfers, then run again
		big_message big-srv2@twinbox.test "$TEST_TMP/srv2.eml"
		big_message big-loc2@twinbox.test "$TEST_TMP/loc2.eml"
		mail_add "$u" INBOX "$TEST_TMP/srv2.eml" >/dev/null
		cp "$TEST_TMP/loc2.eml" "$in/new/1700000001.Lbig2.host"
		"$TWINBOX" -c "$cfg" sync >/dev/null 2>&1 &
		kpid=$!
		sleep 0.4
		kill -9 "$kpid" 2>/dev/null
		wait "$kpid" 2>/dev/null
		tb_run "$TWINBOX" -c "$cfg" sync
		is "$RUN_STATUS" 0 "$M: the run after a kill -9 mid-transfer succeeds" ||
			diag "$RUN_ERR"
		check_same "$u" INBOX "$in" "$M: after kill -9: INBOX in step, nothing doubled"
		p=$(local_index "$in" | awk -F '\t' '$1 == "<big-srv2@twinbox.test>" { print $3 }')
		is "$(sha256sum <"$p" 2>/dev/null)" "$(sha256sum <"$TEST_TMP/srv2.eml")" \
			"$M: after kill -9: the download is intact"
		uid=$(mail_list "$u" INBOX |
			awk -F '\t' '$3 == "<big-loc2@twinbox.test>" { print $1 }')
		is "$(mail_body "$u" INBOX "$uid" | sha256sum)" "$(sha256sum <"$TEST_TMP/loc2.eml")" \
			"$M: after kill -9: the upload is intact"
		rm -f "$TEST_TMP"/*2.eml

		# Many messages: memory stays bounded by more than one measure.
		mail_seed "$u" Many 3000 --tag many
		tb_run /usr/bin/time -f '%M' -o "$TEST_TMP/rss3" "$TWINBOX" -c "$cfg" sync
		is "$RUN_STATUS" 0 "$M: sync of 3000 new messages succeeds" || diag "$RUN_ERR"
		is "$(local_index "$(local_dir "$root" verbatim Many)" | cut -f1 | sort -u | grep -c .)" 3000 \
			"$M: all 3000 arrive, once each"
		rss=$(tail -n 1 "$TEST_TMP/rss3")
		if [ "$sanitized" = 1 ]; then
			pass "$M: 3000 messages: peak RSS under 64 MB # SKIP sanitizer build ($rss kB)"
		else
			ok $([ "${rss:-999999}" -lt 65536 ]; echo $?) \
				"$M: 3000 messages: peak RSS under 64 MB ($rss kB)"
		fi
	fi
	dovecot_stop
}

scenario full
scenario trimmed
done_testing
