#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-hostile.sh - twinbox against hostile or broken servers.
#
# Plays every tests/script/*.scn with tests/script/fakeimapd and runs
# "twinbox -c CFG list-folders hostile" against it. Each scenario must end
# in a clean error: the exit status its "# expect-exit:" header names, no
# signal and no sanitizer report, a readable message on stderr, no local
# path outside the Maildir, and the fake server must have played the
# scenario as written (its exit status is in "# server-exit:", default 0),
# which shows that twinbox got as far as the hostile part and, for the TLS
# cases, never sent a credential in clear text.
#
# Scenario headers ("# key: value" lines; see tests/script/README):
#   about, tls (none|starttls|implicit; default none), ca-file (yes|no),
#   expect-exit, server-exit, stderr (extended regex, case-insensitive),
#   stderr-required (yes|no).
#
# Run one scenario: SCENARIOS='22-*' tests/integration/t-hostile.sh

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"

FAKEIMAPD=${FAKEIMAPD:-$TOP_BUILDDIR/tests/script/fakeimapd}
TB_RUN_TIMEOUT=${TB_RUN_TIMEOUT:-20}

if [ ! -x "$FAKEIMAPD" ]; then
	fail "fakeimapd built ($FAKEIMAPD)"
	done_testing
fi
if [ ! -x "$TWINBOX" ]; then
	fail "twinbox built ($TWINBOX)"
	done_testing
fi
tb_make_certs "$TEST_TMP/ssl" || bail_out "cannot make certificates"

# For tb_write_config: the fake server's user and password.
IMAP_HOST=127.0.0.1
TEST_USER=alice
TEST_PASS=tbpw-hostile-5c1e
CA_FILE=$TEST_TMP/ssl/ca.pem

header() {	# header FILE KEY DEFAULT
	local v
	v=$(sed -n "s/^# $2: *//p" "$1" | head -n 1)
	printf '%s\n' "${v:-$3}"
}

in_list() {	# in_list VALUE "a b c"
	case " $2 " in *" $1 "*) return 0 ;; esac
	return 1
}

shopt -s nullglob
scns=("$TOP_SRCDIR"/tests/script/${SCENARIOS:-*}.scn)
[ ${#scns[@]} -gt 0 ] || fail "scenarios found in tests/script"

for scn in "${scns[@]}"; do
	[ -d "$TEST_TMP" ] ||
		bail_out "$TEST_TMP vanished: something else removed it"
	name=$(basename "$scn" .scn)
	about=$(header "$scn" about "")
	tls=$(header "$scn" tls none)
	cafile=$(header "$scn" ca-file yes)
	want=$(header "$scn" expect-exit 1)
	want_srv=$(header "$scn" server-exit 0)
	errre=$(header "$scn" stderr "")
	errreq=$(header "$scn" stderr-required yes)
	diag "$name: $about"

	portfile=$TEST_TMP/$name.port
	"$FAKEIMAPD" -p "$portfile" -c "$TEST_TMP/ssl/server.pem" \
		-k "$TEST_TMP/ssl/server.key" -t $((TB_RUN_TIMEOUT + 5)) \
		"$scn" >"$TEST_TMP/$name.fake.out" 2>"$TEST_TMP/$name.fake.err" &
	fpid=$!
	for i in $(seq 1 100); do
		[ -s "$portfile" ] && break
		sleep 0.05
	done
	port=$(cat "$portfile" 2>/dev/null)
	if [ -z "$port" ]; then
		fail "$name: fake server starts"
		kill "$fpid" 2>/dev/null
		wait "$fpid" 2>/dev/null
		continue
	fi

	cfg=$TEST_TMP/$name.yaml
	maildir=$TEST_TMP/mail/$name
	ca=$CA_FILE
	[ "$cafile" = no ] && ca=
	cakey=(ca_file="$ca")
	[ "$tls" = none ] && cakey=()
	tb_write_config "$cfg" hostile tls="$tls" port="$port" "${cakey[@]}" \
		maildir="$maildir" --raw "    connections: 1"
	tb_run "$TWINBOX" -c "$cfg" list-folders hostile

	# Give the fake server a moment to notice the hang-up, then stop it.
	for i in $(seq 1 25); do
		kill -0 "$fpid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$fpid" 2>/dev/null
	wait "$fpid"
	fstatus=$?

	in_list "$RUN_STATUS" "$want"
	ok $? "$name: exit status $RUN_STATUS is one of: $want" ||
		diag "stderr: ${RUN_ERR:0:2000}"
	! tb_crashed
	ok $? "$name: no crash, no sanitizer report" ||
		diag "stderr: ${RUN_ERR:0:4000}"
	if [ "$errreq" = yes ]; then
		[ -n "$RUN_ERR" ]
		ok $? "$name: an error message on stderr"
	fi
	# Server bytes must not reach the terminal raw (escape sequences).
	! LC_ALL=C grep -q '[^[:print:][:space:]]' "$TEST_TMP/run.err" &&
	! LC_ALL=C grep -q $'[\r\x0b\x0c]' "$TEST_TMP/run.err"
	ok $? "$name: stderr holds no control characters"
	if [ -n "$errre" ]; then
		grep -Eiq -- "$errre" "$TEST_TMP/run.err"
		ok $? "$name: stderr says why (/$errre/)" ||
			diag "stderr: ${RUN_ERR:0:2000}"
	fi
	# Every local path printed must stay inside the Maildir.
	bad=$(printf '%s\n' "$RUN_OUT" | awk -F '\t' -v m="$maildir" '
		NF >= 3 {
			p = $3
			if (index(p, m) != 1 || p ~ /(^|\/)\.\.(\/|$)/)
				print p
		}')
	is "$bad" "" "$name: no local path outside the Maildir"
	[ ! -e /tmp/twinbox-escape ] && [ ! -e "$TEST_TMP/mail/b" ] &&
		[ ! -e "$TEST_TMP/b" ]
	ok $? "$name: nothing written outside the Maildir"
	in_list "$fstatus" "$want_srv"
	ok $? "$name: fake server played the scenario (status $fstatus, want: $want_srv)" ||
		diag "fakeimapd: $(cat "$TEST_TMP/$name.fake.err")"
done

done_testing
