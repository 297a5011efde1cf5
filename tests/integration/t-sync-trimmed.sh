#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-sync-trimmed.sh - t-sync.sh against a Dovecot that advertises plain
# IMAP4rev1 only (no CONDSTORE, QRESYNC, MOVE, UIDPLUS, LITERAL+ ...):
# the same results through the fallbacks, and no unannounced extension used.

SYNC_MODE=trimmed
. "${TOP_SRCDIR:?}/tests/integration/t-sync.sh"
