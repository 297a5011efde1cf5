# SPDX-License-Identifier: GPL-2.0-or-later
# tap.sh - tiny TAP producer for the shell tests (sourced, bash only).
#
#   ok STATUS "name"          pass when STATUS is 0 (e.g. ok $? "x", or
#                             cmd; ok $? "cmd works")
#   is GOT WANT "name"        string equality, shows both on failure
#   isnt GOT WANT "name"      string inequality
#   like GOT REGEX "name"     bash regex (=~) match
#   unlike GOT REGEX "name"   bash regex does not match
#   pass "name" / fail "name" unconditional result
#   diag "text" ...           "# text" on stdout (shown in the test log),
#                             one line per argument and per embedded newline
#   bail_out "reason"         "Bail out!" and exit 1
#   done_testing              print the plan "1..N"; exit 1 if any failed
#
# Every helper returns 0 on pass and 1 on failure, so
# "ok $? x || diag ..." works.

TAP_N=0
TAP_FAILED=0

tap__result() {	# tap__result PASSED NAME
	TAP_N=$((TAP_N + 1))
	if [ "$1" = 1 ]; then
		printf 'ok %d - %s\n' "$TAP_N" "$2"
		return 0
	fi
	TAP_FAILED=$((TAP_FAILED + 1))
	printf 'not ok %d - %s\n' "$TAP_N" "$2"
	return 1
}

diag() {
	local line
	# Each argument on its own line, one "# " per line, so multi-line
	# output stays valid TAP.
	printf '%s\n' "$@" | while IFS= read -r line; do
		printf '# %s\n' "$line"
	done
}

ok() {
	local status=$1
	shift
	if [ "$status" = 0 ]; then
		tap__result 1 "$*"
	else
		tap__result 0 "$*"
		diag "  exit status $status"
		return 1
	fi
}

is() {
	if [ "$1" = "$2" ]; then
		tap__result 1 "$3"
	else
		tap__result 0 "$3"
		diag "  got:  '$1'"
		diag "  want: '$2'"
		return 1
	fi
}

isnt() {
	if [ "$1" != "$2" ]; then
		tap__result 1 "$3"
	else
		tap__result 0 "$3"
		diag "  got '$1', want anything else"
		return 1
	fi
}

like() {
	if [[ $1 =~ $2 ]]; then
		tap__result 1 "$3"
	else
		tap__result 0 "$3"
		diag "  got:  '$1'"
		diag "  want match for: $2"
		return 1
	fi
}

unlike() {
	if [[ $1 =~ $2 ]]; then
		tap__result 0 "$3"
		diag "  got:  '$1'"
		diag "  want no match for: $2"
		return 1
	fi
	tap__result 1 "$3"
}

pass() { tap__result 1 "$*"; }
fail() { tap__result 0 "$*"; return 1; }

bail_out() {
	printf 'Bail out! %s\n' "$*"
	exit 1
}

done_testing() {
	printf '1..%d\n' "$TAP_N"
	if [ "$TAP_FAILED" -gt 0 ]; then
		diag "$TAP_FAILED of $TAP_N tests failed"
		exit 1
	fi
	exit 0
}
