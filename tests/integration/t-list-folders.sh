#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-list-folders.sh - "twinbox list-folders ACCOUNT" prints one line per
# server folder: SERVERNAME<TAB>SPECIALUSE-or-empty<TAB>LOCALPATH, the
# server name in UTF-8 with "/" as separator, the local path as SPEC's
# "Maildir mapping" says for the verbatim and maildir++ layouts.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"

dovecot_start
for f in Archive Sent "Lists/dev" "Entwürfe" "Café/Menü"; do
	mail_folder_create "$TEST_USER" "$f" || fail "create '$f' on the server"
done
mail_seed "$TEST_USER" "Lists/dev" 2

has_line() {	# has_line LINE NAME
	printf '%s\n' "$RUN_OUT" | grep -Fxq -- "$1"
	ok $? "$2" || diag "want line: $1" "output:" "$RUN_OUT"
}

T=$'\t'
for layout in verbatim maildir++; do
	m=$TEST_TMP/mail-$layout
	cfg=$TEST_TMP/$layout.yaml
	tb_write_config "$cfg" acct tls=starttls layout="$layout" maildir="$m"
	tb_run "$TWINBOX" -c "$cfg" list-folders acct
	is "$RUN_STATUS" 0 "$layout: list-folders succeeds" || diag "$RUN_ERR"
	if [ "$layout" = verbatim ]; then
		has_line "INBOX${T}${T}$m/INBOX" "$layout: INBOX"
		has_line "Lists/dev${T}${T}$m/Lists/dev" "$layout: nested folder"
		has_line "Entwürfe${T}${T}$m/Entwürfe" "$layout: non-ASCII name in UTF-8"
		has_line "Café/Menü${T}${T}$m/Café/Menü" "$layout: nested non-ASCII"
		has_line "Archive${T}\\Archive${T}$m/Archive" "$layout: special-use \\Archive"
		has_line "Sent${T}\\Sent${T}$m/Sent" "$layout: special-use \\Sent"
	else
		has_line "INBOX${T}${T}$m" "$layout: INBOX is the Maildir itself"
		has_line "Lists/dev${T}${T}$m/.Lists.dev" "$layout: nested folder"
		has_line "Entwürfe${T}${T}$m/.Entwürfe" "$layout: non-ASCII name in UTF-8"
		has_line "Café/Menü${T}${T}$m/.Café.Menü" "$layout: nested non-ASCII"
		has_line "Archive${T}\\Archive${T}$m/.Archive" "$layout: special-use \\Archive"
	fi
	unlike "$RUN_OUT" '&[A-Za-z0-9+,]*-' "$layout: no modified UTF-7 in the output"
	bad=$(printf '%s\n' "$RUN_OUT" | awk -F '\t' 'NF != 3')
	is "$bad" "" "$layout: every line has three tab-separated fields"
	! tb_crashed
	ok $? "$layout: no crash"
done

done_testing
