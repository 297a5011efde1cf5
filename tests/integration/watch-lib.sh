# SPDX-License-Identifier: GPL-2.0-or-later
# watch-lib.sh - helpers for the sync --watch tests (t-watch*.sh): start
# and stop a watcher, make changes on either side the way a mail server
# or a mail reader does, and measure how long they take to reach the
# other side. Source it after tests/harness/dovecot.sh and sync-lib.sh.
#
#   watch_start CONFIG [ARGS...]  start "twinbox -c CONFIG -vv sync --watch
#                                 ARGS" in the background (WATCH_PID; its
#                                 stderr in WATCH_ERR); stopped at exit
#   watch_stop [SIGNAL]           send SIGNAL (TERM) and wait: sets
#                                 WATCH_STATUS and WATCH_SECS (how long the
#                                 exit took)
#   watch_gone                    the watcher has exited
#   wait_until SECS CMD...        run CMD every 20 ms until it succeeds
#                                 (0) or SECS pass (1); WAITED = seconds
#                                 since the start, or since WAIT_T0 (an
#                                 earlier ${EPOCHREALTIME/./}) when set
#   deliver USER FOLDER MSGID     a new message delivered on the server as
#                                 Dovecot's LDA or LMTP does it (doveadm
#                                 save: the indexes learn it at once, so
#                                 NOTIFY and IDLE report it)
#   local_deliver DIR MSGID       the same into a local Maildir folder
#   local_has DIR MSGID           a local file holds that Message-ID
#   server_has USER FOLDER MSGID [FLAG]   the server has it (with FLAG)
#   p95 FILE                      the 95th percentile of the numbers in FILE
#   settled                       wait until the watcher has been quiet for
#                                 half a second (no new lines in WATCH_ERR)
#   skip WHY                      a TAP case that did not run
#   log_count REGEX               lines of WATCH_ERR that match REGEX
#   log_more REGEX N              more than N lines match
#   proxy_start                   a tcp-proxy in front of Dovecot's IMAP
#                                 port: PROXY (pid), PROXY_PORT; SIGUSR1
#                                 cuts, SIGHUP freezes, SIGUSR2 restores

WATCH_PID=
WATCH_ERR=$TEST_TMP/watch.err

watch__kill() { [ -n "$WATCH_PID" ] && kill -KILL "$WATCH_PID" 2>/dev/null; :; }
tb_on_exit watch__kill

watch_start() {	# watch_start CONFIG [ARGS...]
	local cfg=$1
	shift
	"$TWINBOX" -c "$cfg" -vv sync --watch "$@" >>"$TEST_TMP/watch.out" \
		2>>"$WATCH_ERR" </dev/null &
	WATCH_PID=$!
}

watch_stop() {	# watch_stop [SIGNAL]
	local t0=${EPOCHREALTIME/./} t1
	kill -"${1:-TERM}" "$WATCH_PID" 2>/dev/null
	wait "$WATCH_PID"
	WATCH_STATUS=$?
	t1=${EPOCHREALTIME/./}
	WATCH_SECS=$(printf '%d.%02d' $(( (t1 - t0) / 1000000 )) \
		     $(( (t1 - t0) / 10000 % 100 )))
	WATCH_PID=
}

watch_gone() {	# the watcher has exited (maybe not yet reaped)
	local s
	s=$(ps -o stat= -p "$WATCH_PID" 2>/dev/null)
	[ -z "$s" ] || [[ $s == Z* ]]
}

wait_until() {	# wait_until SECS CMD...
	local t0=${WAIT_T0:-${EPOCHREALTIME/./}} end now
	end=$((t0 + ${1%.*} * 1000000))
	shift
	until "$@"; do
		now=${EPOCHREALTIME/./}
		if [ "$now" -ge "$end" ]; then
			WAITED=$(( (now - t0) / 1000000 ))
			return 1
		fi
		sleep 0.02
	done
	now=${EPOCHREALTIME/./}
	WAITED=$(printf '%d.%03d' $(( (now - t0) / 1000000 )) \
		 $(( (now - t0) / 1000 % 1000 )))
	return 0
}

watch__msg() {	# watch__msg MSGID > file
	printf 'From: a@example.org\nTo: b@example.org\nSubject: watch %s\nMessage-ID: <%s>\nDate: Thu, 01 Jan 2026 00:00:00 +0000\n\nbody of %s\n' \
		"$1" "$1" "$1"
}

deliver() {	# deliver USER FOLDER MSGID
	watch__msg "$3" | tb_doveadm save -u "$1" -m "$2"
}

local_deliver() {	# local_deliver DIR MSGID
	local name
	name="$(date +%s).M${RANDOM}P$$Q$RANDOM.reader"
	mkdir -p "$1/tmp" "$1/new" "$1/cur"
	watch__msg "$2" >"$1/tmp/$name" && mv "$1/tmp/$name" "$1/new/$name"
}

local_has() {	# local_has DIR MSGID
	grep -qsiF "Message-ID: <$2>" "$1"/cur/* "$1"/new/*
}

server_has() {	# server_has USER FOLDER MSGID [FLAG]
	local line
	line=$(mail_list "$1" "$2" | grep -F "<$3>") || return 1
	[ -z "${4:-}" ] && return 0
	[[ $line == *"$4"* ]]
}

p95() {	# p95 FILE
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		i = int(NR * 0.95 + 0.999999); if (i < 1) i = 1; print v[i] }'
}

watch__lines() { wc -l <"$WATCH_ERR"; }
settled() {	# settled: quiet for half a second (up to 20 s)
	local i n m
	n=$(watch__lines)
	for i in $(seq 1 40); do
		sleep 0.5
		m=$(watch__lines)
		[ "$m" = "$n" ] && return 0
		n=$m
	done
	return 1
}

skip() {	# skip "why": a TAP test case that did not run
	TAP_N=$((TAP_N + 1))
	printf 'ok %d # SKIP %s\n' "$TAP_N" "$*"
}

log_count() {	# log_count REGEX: lines of WATCH_ERR that match
	grep -cE -- "$1" "$WATCH_ERR"
}

log_more() {	# log_more REGEX N: more than N lines of WATCH_ERR match
	[ "$(log_count "$1")" -gt "$2" ]
}

proxy_start() {	# proxy_start: tcp-proxy to Dovecot's IMAP port (PROXY_PORT, PROXY)
	PROXY_PORT=$(tb_free_port)
	"$TOP_BUILDDIR/tests/integration/tcp-proxy" "$PROXY_PORT" "$IMAP_PORT" \
		>"$TEST_TMP/proxy.out" 2>&1 &
	PROXY=$!
	tb_on_exit "kill $PROXY 2>/dev/null"
	wait_until 5 grep -q ready "$TEST_TMP/proxy.out" ||
		bail_out "tcp-proxy did not start"
}
