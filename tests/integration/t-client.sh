#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-client.sh - the IMAP client (src/imap/client.c) against a real Dovecot,
# through tests/integration/imap-probe: plain, STARTTLS and implicit TLS,
# a full server and one that advertises only IMAP4rev1 (fallbacks), TLS and
# login failures, pipelining (seen in Dovecot's rawlog) and the -vvv trace.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"

PROBE=${TOP_BUILDDIR:?}/tests/integration/imap-probe
[ -x "$PROBE" ] || bail_out "imap-probe not built: $PROBE"

# Run the probe and re-number its TAP lines into ours, prefixed by $1.
probe() {
	local name=$1 out status line
	shift
	out=$(timeout 120 "$PROBE" "$@" 2>"$TEST_TMP/probe.err")
	status=$?
	while IFS= read -r line; do
		case $line in
		"ok "*) pass "$name: ${line#* - }" ;;
		"not ok "*) fail "$name: ${line#* - }" ;;
		"#"*) printf '%s\n' "$line" ;;
		esac
	done <<<"$out"
	if [ "$status" != 0 ]; then
		fail "$name: probe exit status $status"
		diag "$(tail -n 20 "$TEST_TMP/probe.err")"
		return 1
	fi
	pass "$name: probe finished cleanly"
}

# pipelined SESSION_BASE VERB: how many VERB commands reached the server
# before it answered the first of them (from rawlog timestamps).
pipelined() {
	local in=$1.in out=$1.out verb=$2 tag t
	tag=$(awk -v v="$verb" '$3 == v { print $2; exit }' "$in")
	[ -n "$tag" ] || { echo 0; return; }
	t=$(awk -v tag="$tag" '$2 == tag && ($3 == "OK" || $3 == "NO" || $3 == "BAD") { print $1; exit }' "$out")
	[ -n "$t" ] || { echo 0; return; }
	awk -v v="$verb" -v t="$t" '$3 == v && $1 <= t { n++ } END { print n + 0 }' "$in"
}

# The rawlog of the session that created folder $1.
session_of() {
	local f
	for f in "$DOVECOT_DIR"/rawlog/*.in; do
		if grep -q " CREATE \"$1\"" "$f"; then
			echo "${f%.in}"
			return
		fi
	done
}

run_modes() {	# run_modes LABEL
	local label=$1 t tls port s n
	for t in none starttls implicit; do
		case $t in
		implicit) port=$IMAPS_PORT ;;
		*) port=$IMAP_PORT ;;
		esac
		probe "$label $t" --host "$IMAP_HOST" --port "$port" --tls "$t" \
			--ca "$CA_FILE" --user "$TEST_USER" \
			--password-file "$TEST_TMP/pass" --folder "p-$label-$t"
		s=$(session_of "p-$label-$t")
		n=$(pipelined "$s" STATUS)
		[ "$n" -ge 2 ]
		ok $? "$label $t: $n STATUS commands sent before the first reply (pipelined)"
	done
}

write_pass() {	# after each dovecot_start: the passwords are per server
	printf '%s\n' "$TEST_PASS" >"$TEST_TMP/pass"
	printf 'wrong-%s\n' "$TEST_PASS" >"$TEST_TMP/badpass"
}

# ---- a full server ----
dovecot_start
write_pass
run_modes full
raw=$(rawlog_client_lines)
like "$raw" $'(^|\n)T[0-9]+ ENABLE QRESYNC' "full: QRESYNC enabled"
like "$raw" $'(^|\n)T[0-9]+ UID MOVE ' "full: UID MOVE used"
like "$raw" $'(^|\n)T[0-9]+ UID EXPUNGE ' "full: UID EXPUNGE used"
like "$raw" $'(^|\n)T[0-9]+ UID SEARCH RETURN \\(ALL\\) ' "full: ESEARCH used"
like "$raw" $'(^|\n)T[0-9]+ APPEND [^\n]*\\{[0-9]+\\+\\}' "full: LITERAL+ used"
like "$raw" $'(^|\n)T[0-9]+ UID FETCH [^\n]*\\(CHANGEDSINCE [0-9]+ VANISHED\\)' \
	"full: CHANGEDSINCE ... VANISHED used"
like "$raw" $'(^|\n)T[0-9]+ EXAMINE [^\n]*\\(QRESYNC \\(' "full: SELECT with QRESYNC"
s=$(session_of p-full-none)
n=$(pipelined "$s" APPEND)
[ "$n" -ge 2 ]
ok $? "full: $n APPENDs sent before the first reply (LITERAL+ pipelining)"

# -vvv trace: credentials and message bodies stay out of it
probe "trace" --host "$IMAP_HOST" --port "$IMAP_PORT" --tls starttls \
	--ca "$CA_FILE" --user "$TEST_USER" --password-file "$TEST_TMP/pass" \
	--folder p-trace --trace
trace=$(cat "$TEST_TMP/probe.err")
like "$trace" 'C: T[0-9]+ AUTHENTICATE PLAIN <redacted>' "trace: AUTHENTICATE redacted"
[[ $trace != *"$TEST_PASS"* ]]
ok $? "trace: password absent"
[[ $trace != *"$(printf '%s' "\0$TEST_USER\0$TEST_PASS" | base64)"* ]]
ok $? "trace: SASL response absent"
like "$trace" 'C: \{300092 bytes\}' "trace: appended body shown as its size"
like "$trace" 'S: \{300092 bytes\}' "trace: fetched body shown as its size"
[[ $trace != *zzzzzzzzzzzzzzzz* ]]
ok $? "trace: no message body text"
like "$trace" 'S: T[0-9]+ OK' "trace: server lines traced"

# LOGIN (forced) is redacted too
probe "login" --host "$IMAP_HOST" --port "$IMAP_PORT" --tls starttls \
	--ca "$CA_FILE" --user "$TEST_USER" --password-file "$TEST_TMP/pass" \
	--folder p-login --auth login --trace
trace=$(cat "$TEST_TMP/probe.err")
like "$trace" "C: T[0-9]+ LOGIN \"$TEST_USER\" <redacted>" "trace: LOGIN password redacted"
[[ $trace != *"$TEST_PASS"* ]]
ok $? "trace: LOGIN password absent"

# failures
probe "bad password" --host "$IMAP_HOST" --port "$IMAP_PORT" --tls starttls \
	--ca "$CA_FILE" --user "$TEST_USER" --password-file "$TEST_TMP/badpass" \
	--expect-fail auth --expect-error "authentication"
probe "untrusted CA" --host "$IMAP_HOST" --port "$IMAPS_PORT" --tls implicit \
	--user "$TEST_USER" --password-file "$TEST_TMP/pass" \
	--expect-fail tls --expect-error "certificate verification failed"
probe "STARTTLS untrusted CA" --host "$IMAP_HOST" --port "$IMAP_PORT" \
	--tls starttls --user "$TEST_USER" --password-file "$TEST_TMP/pass" \
	--expect-fail tls --expect-error "certificate verification failed"
probe "wrong host name" --host "$IMAP_BADNAME_HOST" --port "$IMAPS_PORT" \
	--tls implicit --ca "$CA_FILE" --user "$TEST_USER" \
	--password-file "$TEST_TMP/pass" --expect-fail tls \
	--expect-error "does not match host name '$IMAP_BADNAME_HOST'"
probe "connection refused" --host 127.0.0.1 --port "$(tb_free_port)" \
	--tls none --user "$TEST_USER" --password-file "$TEST_TMP/pass" \
	--expect-fail net --expect-error "cannot connect"

cert=$(sed -n 's/^ *ssl_cert *= *<//p' "$DOVECOT_CONF" | head -n 1)
fp=$(openssl x509 -in "$cert" -noout -fingerprint -sha256 | sed 's/^.*=//')
if [ -n "$fp" ]; then
	probe "pinned" --host "$IMAP_HOST" --port "$IMAPS_PORT" --tls implicit \
		--fingerprint "sha256:$fp" --user "$TEST_USER" \
		--password-file "$TEST_TMP/pass" --folder p-pinned
	probe "wrong pin" --host "$IMAP_HOST" --port "$IMAPS_PORT" --tls implicit \
		--ca "$CA_FILE" --fingerprint "sha256:${fp//[0-9A-F]/0}" \
		--user "$TEST_USER" --password-file "$TEST_TMP/pass" \
		--expect-fail tls --expect-error "pinned fingerprint"
else
	fail "cannot compute the server certificate fingerprint ($cert)"
fi
dovecot_stop

# ---- a server that advertises only IMAP4rev1 ----
dovecot_start --trimmed
write_pass
run_modes trimmed
raw=$(rawlog_client_lines)
unlike "$raw" $'(^|\n)T[0-9]+ UID MOVE ' "trimmed: no UID MOVE sent" || diag "$raw"
unlike "$raw" $'(^|\n)T[0-9]+ UID EXPUNGE ' "trimmed: no UID EXPUNGE sent"
unlike "$raw" $'(^|\n)T[0-9]+ (ENABLE|[^\n]*CHANGEDSINCE|[^\n]*UNCHANGEDSINCE|[^\n]*\\(CONDSTORE\\)|[^\n]*QRESYNC|[^\n]*RETURN \\()' \
	"trimmed: no CONDSTORE/QRESYNC/ESEARCH/LIST-EXTENDED syntax"
unlike "$raw" $'\\{[0-9]+\\+\\}' "trimmed: no LITERAL+"
like "$raw" $'(^|\n)T[0-9]+ UID COPY ' "trimmed: move falls back to UID COPY"
like "$raw" $'(^|\n)T[0-9]+ UID SEARCH DELETED' "trimmed: expunge looks for others' \\Deleted"
like "$raw" $'(^|\n)T[0-9]+ EXPUNGE' "trimmed: plain EXPUNGE"
like "$raw" $'(^|\n)T[0-9]+ NOOP' "trimmed: IDLE falls back to NOOP"
dovecot_stop

# ---- a server without TLS: STARTTLS must not be skipped ----
dovecot_start --no-tls
write_pass
probe "no STARTTLS" --host "$IMAP_HOST" --port "$IMAP_PORT" --tls starttls \
	--ca "$CA_FILE" --user "$TEST_USER" --password-file "$TEST_TMP/pass" \
	--expect-fail tls --expect-error "does not offer STARTTLS"
raw=$(rawlog_client_lines)
unlike "$raw" 'LOGIN|AUTHENTICATE' "no STARTTLS: no credentials sent"
dovecot_stop

# ---- UID EXPUNGE: behind its STORE in one flight only where VANISHED tells
#      what went, and checked (scripted server) ----
FAKEIMAPD=${FAKEIMAPD:-$TOP_BUILDDIR/tests/script/fakeimapd}
# its certificate, for the scenarios over TLS
tb_make_certs "$TEST_TMP/ssl" || bail_out "cannot make certificates"
# Start fakeimapd on tests/script/client/$1.scn and wait for its port;
# fake_done checks that it played the scenario to its end.
fake_play() {
	rm -f "$TEST_TMP/port"
	"$FAKEIMAPD" -p "$TEST_TMP/port" -t 20 \
		-c "$TEST_TMP/ssl/server.pem" -k "$TEST_TMP/ssl/server.key" \
		"$TOP_SRCDIR/tests/script/client/$1.scn" \
		>"$TEST_TMP/fake.out" 2>"$TEST_TMP/fake.err" &
	fpid=$!
	for _ in $(seq 1 100); do
		[ -s "$TEST_TMP/port" ] && break
		sleep 0.05
	done
}
fake_done() {
	wait "$fpid"
	is "$?" 0 "$1: the scripted server played its part"
	[ -s "$TEST_TMP/fake.err" ] && diag "$(cat "$TEST_TMP/fake.err")"
}

printf 'x\n' >"$TEST_TMP/pass"
for want in ordered:ok:1,5 retry:ok:2:4 stuck:fail:3 vanished:ok:2:4 overtaken:ok:2:4 \
	    vanished-part:ok:2:4; do
	IFS=: read -r scn res set_lo set_hi <<<"$want"
	set=$set_lo${set_hi:+:$set_hi}
	fake_play "expunge-$scn"
	probe "expunge-$scn" --host 127.0.0.1 --port "$(cat "$TEST_TMP/port")" \
		--tls none --user alice --password-file "$TEST_TMP/pass" \
		--folder INBOX --expunge "$set" --expect "$res"
	fake_done "expunge-$scn"
done

# ---- UID COPYs to several folders: one flight, a refusal stays alone ----
fake_play copy-refused
probe "copy-refused" --host 127.0.0.1 --port "$(cat "$TEST_TMP/port")" \
	--tls none --user alice --password-file "$TEST_TMP/pass" \
	--folder INBOX --copy-batch '1:2>A;3>B;4:5>C' --expect ok,no,ok
fake_done copy-refused

# ---- Gmail: the identity FETCH asks for X-GM-MSGID and reads it ----
fake_play gm-msgid
probe "gm-msgid" --host 127.0.0.1 --port "$(cat "$TEST_TMP/port")" \
	--tls none --user alice --password-file "$TEST_TMP/pass" \
	--folder INBOX --idents 1:3 \
	--expect 1278455344230334865,1278455344230334865,18446744073709551615
fake_done gm-msgid

# ---- a SELECT sent ahead, in the flight of the copies after it ----
for want in 'copy-ahead:1:2>A;3>B;4:5>C:ok,no,ok' \
	    'copy-ahead-refused:1:2>A;4:5>C:select-refused'; do
	scn=${want%%:*} rest=${want#*:}
	spec=${rest%:*} res=${rest##*:}
	fake_play "$scn"
	probe "$scn" --host 127.0.0.1 --port "$(cat "$TEST_TMP/port")" \
		--tls none --user alice --password-file "$TEST_TMP/pass" \
		--folder INBOX --select-ahead 7 --copy-batch "$spec" \
		--expect "$res"
	fake_done "$scn"
done

# ---- a folder's STOREs, expunge and APPENDs in one flight: a refusal
#      fails only its own command ----
fake_play store-append-refused
probe "store-append-refused" --host 127.0.0.1 --port "$(cat "$TEST_TMP/port")" \
	--tls none --user alice --password-file "$TEST_TMP/pass" \
	--folder INBOX --store-append 1:2 --expect no,ok
fake_done store-append-refused
fake_play store-expunge-append
probe "store-expunge-append" --host 127.0.0.1 --port "$(cat "$TEST_TMP/port")" \
	--tls none --user alice --password-file "$TEST_TMP/pass" \
	--folder INBOX --store-append 1 --expunge-set 2 --expect ok,no
fake_done store-expunge-append
fake_play store-append-late
probe "store-append-late" --host 127.0.0.1 --port "$(cat "$TEST_TMP/port")" \
	--tls none --user alice --password-file "$TEST_TMP/pass" \
	--folder INBOX --store-append-late yes --lead-next B
fake_done store-append-late

# ---- the UID MOVEs out of several sources in one flight ----
fake_play move-from-many
probe "move-from-many" --host 127.0.0.1 --port "$(cat "$TEST_TMP/port")" \
	--tls none --user alice --password-file "$TEST_TMP/pass" \
	--move-from-many yes
fake_done move-from-many

# ---- a folder's bodies with the next folder's SELECT behind them: a
#      refused body FETCH fails alone ----
fake_play bodies-lead-refused
probe "bodies-lead-refused" --host 127.0.0.1 --port "$(cat "$TEST_TMP/port")" \
	--tls none --user alice --password-file "$TEST_TMP/pass" \
	--folder INBOX --bodies-lead 1,2 --lead-next B --expect no,1
fake_done bodies-lead-refused

# ---- early login: the login leaves with the TLS handshake's last message
#      when an earlier connection saw the server offer SASL-IR and
#      AUTH=PLAIN (imap_client_settings.login_hint) ----
dovecot_start
printf '%s' "$TEST_PASS" >"$TEST_TMP/pw"
for t in implicit starttls; do
	port=$IMAP_PORT
	[ "$t" = implicit ] && port=$IMAPS_PORT
	probe "learn $t" --trace --host localhost --port "$port" --tls "$t" \
		--ca "$CA_FILE" --user "$TEST_USER" --password-file "$TEST_TMP/pw" \
		--login-only yes --expect-hint early
	probe "early $t" --trace --host localhost --port "$port" --tls "$t" \
		--ca "$CA_FILE" --user "$TEST_USER" --password-file "$TEST_TMP/pw" \
		--login-only yes --early-auth yes --expect-hint early
	tr=$(grep -E ' (C|S): ' "$TEST_TMP/probe.err")
	auth=$(printf '%s\n' "$tr" | grep -n 'C: T[0-9]* AUTHENTICATE PLAIN' | cut -d: -f1)
	greet=$(printf '%s\n' "$tr" | grep -n 'S: \* OK' | head -n 1 | cut -d: -f1)
	if [ "$t" = implicit ]; then
		ok "$([ -n "$auth" ] && [ -n "$greet" ] && [ "$auth" -lt "$greet" ] && echo 0 || echo 1)" \
			"early $t: AUTHENTICATE sent before the greeting was read"
	else
		unlike "$(printf '%s\n' "$tr" | sed -n '/STARTTLS/,/AUTHENTICATE/p')" 'CAPABILITY$' \
			"early $t: AUTHENTICATE right after the handshake, no CAPABILITY first"
	fi
	is "$(printf '%s\n' "$tr" | grep -c 'AUTHENTICATE')" 1 "early $t: one login"
	unlike "$(cat "$TEST_TMP/probe.err")" "$TEST_PASS" "early $t: no password in the trace"
done
# the first connection of a run: its first commands behind the login
probe "first, early" --trace --host localhost --port "$IMAPS_PORT" \
	--tls implicit --ca "$CA_FILE" --user "$TEST_USER" \
	--password-file "$TEST_TMP/pw" --early-auth yes --first yes \
	--hint-caps "IMAP4REV1 ENABLE QRESYNC CONDSTORE" --login-only yes \
	--expect-hint early
tr=$(grep -E ' (C|S): ' "$TEST_TMP/probe.err")
like "$(printf '%s\n' "$tr" | head -n 2 | tr '\n' ' ')" \
	'C: T1 AUTHENTICATE PLAIN <redacted> .*C: T2 ENABLE QRESYNC' \
	"first, early: ENABLE goes behind the login, before the greeting is read"
like "$tr" 'S: T2 OK' "first, early: ... and is answered"
printf 'wrong' >"$TEST_TMP/badpw"
probe "first, wrong password" --trace --host localhost --port "$IMAPS_PORT" \
	--tls implicit --ca "$CA_FILE" --user "$TEST_USER" \
	--password-file "$TEST_TMP/badpw" --early-auth yes --first yes \
	--hint-caps "IMAP4REV1 ENABLE QRESYNC" --login-only yes \
	--expect-fail auth --expect-error "authentication as '$TEST_USER'"
is "$(grep -c 'AUTHENTICATE' "$TEST_TMP/probe.err")" 1 \
	"first, wrong password: one attempt"
probe "early, wrong password" --trace --host localhost --port "$IMAPS_PORT" \
	--tls implicit --ca "$CA_FILE" --user "$TEST_USER" \
	--password-file "$TEST_TMP/badpw" --early-auth yes --expect-fail auth \
	--expect-error "authentication as '$TEST_USER'"
is "$(grep -c 'AUTHENTICATE' "$TEST_TMP/probe.err")" 1 \
	"early, wrong password: one attempt, not two"
dovecot_stop

printf 'x\n' >"$TEST_TMP/pass"
fake_play early-auth-stale
probe "early-auth-stale" --host 127.0.0.1 --port "$(cat "$TEST_TMP/port")" \
	--tls implicit --ca "$TEST_TMP/ssl/ca.pem" --user alice \
	--password-file "$TEST_TMP/pass" --early-auth yes --login-only yes \
	--expect-hint no
fake_done early-auth-stale
fake_play early-auth-refused
probe "early-auth-refused" --host 127.0.0.1 --port "$(cat "$TEST_TMP/port")" \
	--tls implicit --ca "$TEST_TMP/ssl/ca.pem" --user alice \
	--password-file "$TEST_TMP/pass" --early-auth yes --expect-fail auth \
	--expect-error "Authentication failed"
fake_done early-auth-refused
fake_play early-first-stale
probe "early-first-stale" --host 127.0.0.1 --port "$(cat "$TEST_TMP/port")" \
	--tls implicit --ca "$TEST_TMP/ssl/ca.pem" --user alice \
	--password-file "$TEST_TMP/pass" --early-auth yes --first yes \
	--hint-caps IMAP4REV1 --login-only yes --expect-fail net \
	--expect-error "refused a login sent ahead"
fake_done early-first-stale
fake_play early-first-refused
probe "early-first-refused" --host 127.0.0.1 --port "$(cat "$TEST_TMP/port")" \
	--tls implicit --ca "$TEST_TMP/ssl/ca.pem" --user alice \
	--password-file "$TEST_TMP/pass" --early-auth yes --first yes \
	--hint-caps "IMAP4REV1 ENABLE QRESYNC" --login-only yes \
	--expect-fail auth --expect-error "Authentication failed"
fake_done early-first-refused
# ---- copies from several folders: a SELECT and a UID COPY each, all in
#      one flight; a failed SELECT or a refused COPY stays alone ----
for want in 'copy-from-many:A@7:1:2;B@6:3;C@8:4:5:ok,unsel,ok' \
	    'copy-from-many-uidvalidity:A@7:1:2;B@6:3;C@8:4:5:unsel,no,ok'; do
	scn=${want%%:*} rest=${want#*:}
	spec=${rest%:*} res=${rest##*:}
	fake_play "$scn"
	probe "$scn" --host 127.0.0.1 --port "$(cat "$TEST_TMP/port")" \
		--tls none --user alice --password-file "$TEST_TMP/pass" \
		--folder T --copy-from "$spec" --expect "$res"
	fake_done "$scn"
done

# ---- UID MOVEs to several folders in one flight behind a SELECT sent
#      ahead: a refusal stays alone, each COPYUID goes to its own move ----
for scn in move-ahead-refused move-ahead-interleaved; do
	fake_play "$scn"
	probe "$scn" --host 127.0.0.1 --port "$(cat "$TEST_TMP/port")" \
		--tls none --user alice --password-file "$TEST_TMP/pass" \
		--folder INBOX --select-ahead 7 --move-batch '1:2>A;3>B;4:5>C' \
		--expect ok,no,ok
	fake_done "$scn"
done

done_testing
