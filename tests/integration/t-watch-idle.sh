#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# t-watch-idle.sh - t-watch.sh against a Dovecot that advertises IDLE and
# nothing else: no NOTIFY, CONDSTORE, QRESYNC, MOVE, UIDPLUS ... (the
# watcher and its syncs on the fallbacks).

WATCH_MODE=idle
. "${TOP_SRCDIR:?}/tests/integration/t-watch.sh"
