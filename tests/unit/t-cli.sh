#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-cli.sh - the command line: options, exit statuses, check-config --offline.
# Needs no network: every command here stops before connecting.
set -u
here=$(cd "$(dirname "$0")" && pwd)
TOP_SRCDIR=${TOP_SRCDIR:-$here/../..}
TOP_BUILDDIR=${TOP_BUILDDIR:-$TOP_SRCDIR}
TWINBOX=${TWINBOX:-$TOP_BUILDDIR/twinbox}
. "$TOP_SRCDIR/tests/harness/tap.sh"

tmp=$(mktemp -d /tmp/t-cli.XXXXXX) || bail_out "mktemp failed"
trap 'rm -rf "$tmp"' EXIT
export HOME=$tmp
unset XDG_CONFIG_HOME XDG_STATE_HOME

# run ARGS...: sets $rc, $out (stdout) and $err (stderr); stdout is a file,
# so twinbox sees no terminal.
run() {
	"$TWINBOX" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	out=$(cat "$tmp/out")
	err=$(cat "$tmp/err")
}

good=$tmp/good.yaml
cat >"$good" <<'YAML'
accounts:
  - name: one
    host: imap.example.org
    user: u1
    password_command: "echo pw"
    maildir: ~/Mail/one
  - name: two
    host: localhost
    tls: none
    user: u2
    password_command: "echo pw"
    maildir: ~/Mail/two
    layout: maildir++
YAML

run --help
is "$rc" 0 "--help: exit 0"
like "$out" "^usage: twinbox " "--help: usage on stdout"
run -h
is "$rc" 0 "-h: exit 0"
run --version
is "$rc" 0 "--version: exit 0"
like "$out" "^twinbox [0-9]+\.[0-9]+" "--version: prints the version"
run
is "$rc" 2 "no command: exit 2"
like "$err" "no command given" "no command: says so"
run frobnicate
is "$rc" 2 "unknown command: exit 2"
like "$err" "unknown command 'frobnicate'" "unknown command: named"
run --bogus check-config
is "$rc" 2 "unknown option: exit 2"
like "$err" "unknown option '--bogus'" "unknown option: named"
run -x check-config
is "$rc" 2 "unknown short option: exit 2"
like "$err" "unknown option '-x'" "unknown short option: named"
run -c
is "$rc" 2 "-c without FILE: exit 2"
run -q -v -c "$good" check-config --offline
is "$rc" 2 "-q with -v: exit 2"

run -c "$good" check-config --offline
is "$rc" 0 "check-config --offline: exit 0"
is "$out" "" "check-config --offline: silent when stdout is no terminal"
run -v -c "$good" check-config --offline
is "$rc" 0 "check-config --offline -v: exit 0"
is "$(printf '%s\n' "$out" | wc -l | tr -d ' ')" 2 \
	"check-config -v: one line per account"
like "$out" "one: u1 at imap.example.org:993 \(tls implicit, auth auto\) -> $tmp/Mail/one \(verbatim\)" \
	"check-config -v: first account summary"
like "$out" "two: u2 at localhost:143 \(tls none" "check-config -v: defaults shown"
run -c "$good" check-config --offline -v
is "$rc" 0 "global option after the command"
like "$out" "^one: " "global option after the command: applies"
run -v --json -c "$good" check-config --offline
is "$out" "" "--json: no human lines on stdout"
run -q -c "$good" check-config --offline
is "$out$err" "" "-q: silent"
run -c "$good" check-config --offline extra
is "$rc" 2 "check-config with an argument: exit 2"

run -v -c "$TOP_SRCDIR/etc/twinbox.yaml.sample" check-config --offline
is "$rc" 0 "the sample configuration validates"
is "$err" "" "the sample configuration: no warning"

bad=$tmp/bad.yaml
printf 'accounts:\n  - name: a\n    host: h\n    hots: x\n' >"$bad"
run -c "$bad" check-config --offline
is "$rc" 2 "bad config: exit 2"
is "$err" "twinbox: error: $bad:4:5: key 'hots': unknown key" \
	"bad config: FILE:LINE:COL and the key"
run -c "$bad" sync
is "$rc" 2 "bad config: exit 2 from sync too"
run -c "$tmp/missing.yaml" check-config --offline
is "$rc" 2 "missing config: exit 2"
like "$err" "cannot open configuration file '$tmp/missing.yaml': No such file" \
	"missing config: says why"

plain=$tmp/plain.yaml
printf 'accounts:\n  - name: a\n    host: imap.example.org\n    tls: none\n    user: u\n    password: p\n    maildir: /m\n' >"$plain"
chmod 600 "$plain"
run -c "$plain" check-config --offline
is "$rc" 2 "tls none off loopback: exit 2 from --offline"
like "$err" "$plain:4:10: key 'tls': 'none' would send the credentials in clear text" \
	"tls none off loopback: says why"

mkdir -p "$tmp/.config/twinbox"
cp "$good" "$tmp/.config/twinbox/config.yaml"
run check-config --offline
is "$rc" 0 "default config path: ~/.config/twinbox/config.yaml"
run -c "$tmp/nowhere" check-config --offline
is "$rc" 2 "-c overrides the default path"

chmod 644 "$plain"
sed -i 's/tls: none/tls: implicit/' "$plain"
run -c "$plain" check-config --offline
is "$rc" 0 "group-readable config with password: still loads"
is "$err" "" "group-readable config: no warning when quiet (no terminal)"
run -v -c "$plain" check-config --offline
like "$err" "warning: configuration file '$plain' holds a password and is readable" \
	"group-readable config: warning with -v"
unlike "$err" "password: p" "the warning does not show the password"

run -c "$good" sync --pull --push
is "$rc" 2 "sync --pull --push: exit 2"
like "$err" "--pull and --push exclude each other" "sync --pull --push: says why"
run -c "$good" sync --watch --dry-run
is "$rc" 2 "sync --watch --dry-run: exit 2"
run -c "$good" sync nosuch
is "$rc" 2 "sync unknown account: exit 2"
like "$err" "target 'nosuch': no account 'nosuch'" "sync unknown account: named"
run -c "$good" sync nosuch:INBOX
is "$rc" 2 "sync unknown account with folder: exit 2"
run -c "$good" sync one:
is "$rc" 2 "sync ACCOUNT: without folder: exit 2"
run -c "$good" sync :INBOX
is "$rc" 2 "sync :FOLDER: exit 2"
run -c "$good" sync --frob
is "$rc" 2 "sync unknown option: exit 2"
run -c "$good" status --dry-run
is "$rc" 2 "--dry-run with status: exit 2"
like "$err" "option '--dry-run' does not apply to 'status'" "--dry-run with status: says why"
run -c "$good" sync --offline
is "$rc" 2 "--offline with sync: exit 2"
run -c "$good" status one:INBOX nosuch
is "$rc" 2 "status unknown account: exit 2"
run -c "$good" list-folders
is "$rc" 2 "list-folders without ACCOUNT: exit 2"
run -c "$good" list-folders one two
is "$rc" 2 "list-folders with two accounts: exit 2"
run -c "$good" list-folders nosuch
is "$rc" 2 "list-folders unknown account: exit 2"
like "$err" "no account 'nosuch'" "list-folders unknown account: named"
run -c "$good" sync --help
is "$rc" 0 "sync --help: exit 0"

done_testing
