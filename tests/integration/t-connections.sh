#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-connections.sh - `connections` is a maximum (issue 12): a resync after
# one server flag change in one folder logs in once, while an initial
# pull of several folders still spreads them over several connections.
# Each login is one imap session, one rawlog *.in file.

. "${TOP_SRCDIR:?}/tests/harness/dovecot.sh"
. "$TOP_SRCDIR/tests/integration/sync-lib.sh"
. "$TOP_SRCDIR/tests/integration/crash-lib.sh"

sessions() {
	rawlog_client_lines >/dev/null
	ls "$DOVECOT_DIR"/rawlog/*.in 2>/dev/null | wc -l
}

sync_ok() {	# sync_ok NAME
	tb_run "$TWINBOX" -c "$CFG" sync
	is "$RUN_STATUS" 0 "$1" || diag "$RUN_ERR"
}

dovecot_start
U=$TEST_USER
M=$TEST_TMP/mail
CFG=$TEST_TMP/cn.yaml
tb_write_config "$CFG" cn maildir="$M" connections=4
FOLDERS="INBOX A B C D E F G"
for f in $FOLDERS; do
	cl_seed "$U" "$f" 3 "cn.$f" S || fail "seed $f"
done
rawlog_reset
sync_ok "initial pull of 8 folders"
n=$(sessions)
[ "$n" -ge 2 ] && [ "$n" -le 4 ]
ok $? \
	"the initial pull uses several connections, at most 4" || diag "sessions: $n"
for f in $FOLDERS; do
	check_same "$U" "$f" "$M/$f" "$f in step after the pull"
done

uid=$(cl_uid_of "$U" C "<cn.C.1@twinbox.test>")
mail_flags_add "$U" C "$uid" '\Flagged'
rawlog_reset
sync_ok "resync after one server flag change"
is "$(sessions)" 1 "it logs in once"
check_same "$U" C "$M/C" "the flag reached the Maildir"

done_testing
