# SPDX-License-Identifier: GPL-2.0-or-later
# dovecot.sh - start a private, throw-away Dovecot 2.3 for integration tests.
#
# Source it from a bash test script (it sources tap.sh too):
#
#   . "$TOP_SRCDIR/tests/harness/dovecot.sh"
#   dovecot_start [--trimmed] [--caps CAPS] [--no-tls] [--prefork]
#   ...
#   done_testing
#
# Sourcing creates TEST_TMP, a scratch directory for the test's own files
# (configs, local Maildirs), and installs an EXIT/INT/TERM/HUP trap that
# stops every Dovecot this script started and removes the temp dirs (set
# TB_KEEP=1 to keep them for a post-mortem). Add your own clean-up with
# tb_on_exit 'command'.
#
# dovecot_start [--trimmed] [--caps CAPS] [--no-tls] [--prefork]
#   Starts Dovecot (dovecot -c FILE, a self-contained config, nothing from
#   /etc/dovecot) in a fresh temp dir on free loopback ports. Exports:
#     DOVECOT_DIR    the server's directory (config, log, homes, rawlog)
#     DOVECOT_CONF   its config file; always use it: doveadm -c "$DOVECOT_CONF"
#     IMAP_HOST      127.0.0.1
#     IMAP_PORT      plain IMAP listener, STARTTLS offered (unless --no-tls)
#     IMAPS_PORT     implicit-TLS listener (empty with --no-tls)
#     CA_FILE        PEM of the throw-away CA that signed the server cert
#     TEST_USER/TEST_PASS, TEST_USER2/TEST_PASS2   two mail users
#     IMAP_BADNAME_HOST  127.0.0.2, see "wrong host name" below
#   --trimmed  advertise plain IMAP4rev1 only (plus what login adds:
#              STARTTLS, AUTH=PLAIN, AUTH=LOGIN): no CONDSTORE, QRESYNC,
#              MOVE, UIDPLUS, LITERAL+, ENABLE, ESEARCH, IDLE ... Dovecot
#              still executes them if a client sends them anyway, so
#              fallback tests must check what the client sent
#              (rawlog_client_lines).
#   --caps CAPS  like --trimmed, advertising exactly CAPS (e.g.
#              'IMAP4rev1 IDLE': IDLE without NOTIFY, CONDSTORE ...).
#   --no-tls   ssl = no: a server that does not offer STARTTLS at all.
#   --prefork  Dovecot's "high-performance" process model: imap-login with
#              service_count = 0 and process_min_avail = 2 (long-lived
#              login processes that serve many connections) and
#              process_min_avail = 4 for imap (imap processes forked
#              ahead, waiting for a client). Without it every login forks
#              a login process and an imap process (Dovecot's defaults).
#   A missing dovecot binary or a server that does not come up is a test
#   failure: dovecot_start prints "not ok", "Bail out!" and exits.
#
#   Wrong host name: Dovecot also listens on 127.0.0.2 (same ports, same
#   certificate). The certificate names only DNS:localhost and
#   IP:127.0.0.1, so host 127.0.0.2 must fail verification with a host name
#   mismatch. (127.0.0.2 is loopback, so tls: none is allowed there too.)
#
# dovecot_stop [--no-wait]  stop the last server started (kill the PID in
#                    master.pid, wait until it has exited); --no-wait only
#                    signals it and leaves the waiting to the exit trap
#
# Server-side mail helpers (all run doveadm -c "$DOVECOT_CONF"; folder names
# are UTF-8 with "/" as separator, as IMAP clients see them decoded):
#   mail_seed USER FOLDER COUNT [--flags FLAGS] [--new] [--tag TAG]
#                                [--size BYTES]
#       write COUNT messages straight into the server's Maildir, then
#       force-resync. FLAGS are Maildir letters (e.g. "S", "FS"). Message i
#       has Subject "TAG message i" and Message-ID <TAG.i@twinbox.test>;
#       TAG defaults to a random one. --size pads the body to about BYTES.
#   mail_add USER FOLDER [--flags FLAGS] [FILE]   add one message (FILE or
#       stdin, LF line endings), print its UID
#   mail_flags_add|mail_flags_remove|mail_flags_replace USER FOLDER UID FLAG...
#       IMAP flags, e.g. '\Seen' '\Flagged' '$Forwarded'
#   mail_expunge USER FOLDER UID
#   mail_move USER FROM UID TO
#   mail_folder_create USER NAME / mail_folder_delete USER NAME /
#   mail_folder_rename USER OLD NEW
#   mail_folders USER        one folder per line, UTF-8, sorted
#   mail_list USER FOLDER    one line per message, by UID:
#                            UID<TAB>FLAGS<TAB>MESSAGE-ID  (flags sorted,
#                            space separated, e.g. "\Flagged \Seen")
#   mail_count USER FOLDER   number of messages
#   mail_uidvalidity USER FOLDER / mail_set_uidvalidity USER FOLDER N
#   mail_body USER FOLDER UID  the message as stored (LF line endings)
#   mail_path USER FOLDER    the server-side Maildir directory of FOLDER
#   imap_talk plain|starttls|implicit [HOST]   a raw IMAP session, see below
#   rawlog_client_lines      every line any client sent after login, over
#                            all sessions so far (CR stripped); waits until
#                            no session is open so the logs are complete.
#                            Dovecot's rawlog (rawlog_dir, one *.in/*.out
#                            pair per session in $DOVECOT_DIR/rawlog) is
#                            written by the post-login imap process only:
#                            pre-login CAPABILITY, STARTTLS, LOGIN and
#                            AUTHENTICATE are not in it (see dovecot.log
#                            for login attempts)
#
# Twinbox helpers:
#   tb_write_config FILE ACCOUNT [key=value ...] [--raw 'yaml line' ...]
#       write a config with one account for this server. Defaults:
#       host=127.0.0.1 tls=starttls port=(IMAPS_PORT for implicit, else
#       IMAP_PORT) ca_file=$CA_FILE (not with tls=none) user=$TEST_USER
#       password via
#       password_file maildir=$TEST_TMP/mail/ACCOUNT layout=verbatim,
#       state_dir=$TEST_TMP/state. key= (empty) drops that key; --raw lines
#       are appended to the account (indent them yourself: 4 spaces).
#   tb_run CMD...   run CMD (with a time limit), set RUN_STATUS, RUN_OUT,
#                   RUN_ERR (stdout and stderr as strings)
#   tb_crashed      true when the last tb_run died of a signal or printed a
#                   sanitizer report
#   tb_make_certs DIR   make ca.pem, ca.key, server.pem, server.key in DIR
#   tb_free_port    print a free TCP port on 127.0.0.1 and 127.0.0.2

: "${TOP_SRCDIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${TOP_BUILDDIR:=$TOP_SRCDIR}"
: "${TWINBOX:=$TOP_BUILDDIR/twinbox}"
export TOP_SRCDIR TOP_BUILDDIR TWINBOX

# shellcheck source=tap.sh
. "$TOP_SRCDIR/tests/harness/tap.sh"

# Mail processes may not run as root; as root the mail belongs to this
# dedicated system user (created on first use).
TB_MAIL_SYSUSER=${TB_MAIL_SYSUSER:-twinbox-test}

TB__DIRS=()		# temp dirs to remove at exit
TB__SERVERS=()		# "PID CONF" of every server started
TB__HOOKS=()		# tb_on_exit commands

tb_on_exit() { TB__HOOKS+=("$1"); }

tb__cleanup() {
	local status=$? h f
	trap - EXIT INT TERM HUP
	for h in "${TB__HOOKS[@]}"; do
		eval "$h" || :
	done
	for f in "${TB__SERVERS[@]}"; do
		tb__stop_server "$f" --exited
	done
	if [ "${TB_KEEP:-0}" = 1 ]; then
		[ ${#TB__DIRS[@]} -gt 0 ] && echo "# kept: ${TB__DIRS[*]}"
	else
		for f in "${TB__DIRS[@]}"; do
			rm -rf -- "$f"
		done
	fi
	exit "$status"
}
trap tb__cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/twinbox-test.XXXXXX") ||
	bail_out "cannot create a temp dir"
TB__DIRS+=("$TEST_TMP")
export TEST_TMP

tb__die() {	# a harness failure: report it as a failed test and stop
	fail "harness: $1"
	shift
	[ $# -gt 0 ] && diag "$@"
	bail_out "harness: cannot continue"
}

# --- ports ------------------------------------------------------------------

tb__port_busy() {	# true if something listens on $1 (127.0.0.1 or .2)
	local a
	for a in 127.0.0.1 127.0.0.2; do
		if (exec 3<>"/dev/tcp/$a/$1") 2>/dev/null; then
			return 0
		fi
	done
	if command -v ss >/dev/null 2>&1 &&
	   ss -Htan "sport = :$1" 2>/dev/null | grep -q .; then
		return 0
	fi
	return 1
}

tb_free_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		case " ${TB__PORTS_TAKEN:-} " in *" $p "*) continue ;; esac
		if ! tb__port_busy "$p"; then
			TB__PORTS_TAKEN="${TB__PORTS_TAKEN:-} $p"
			echo "$p"
			return 0
		fi
	done
	return 1
}

# --- certificates -----------------------------------------------------------

tb_make_certs() {	# tb_make_certs DIR
	local d=$1 ext
	mkdir -p "$d" || return 1
	ext="$d/server.ext"
	printf '%s\n' \
		'basicConstraints = critical, CA:FALSE' \
		'keyUsage = critical, digitalSignature, keyEncipherment' \
		'extendedKeyUsage = serverAuth' \
		'subjectAltName = DNS:localhost, IP:127.0.0.1' >"$ext"
	{
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
			-nodes -keyout "$d/ca.key" -out "$d/ca.pem" -days 3 \
			-subj "/O=twinbox tests/CN=twinbox throw-away test CA" &&
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
			-nodes -keyout "$d/server.key" -out "$d/server.csr" \
			-subj "/O=twinbox tests/CN=localhost" &&
		openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" \
			-CAkey "$d/ca.key" -CAcreateserial -days 2 \
			-extfile "$ext" -out "$d/server.pem"
	} >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; return 1; }
	chmod 644 "$d/ca.pem" "$d/server.pem"
	chmod 600 "$d/ca.key" "$d/server.key"
}

# --- server -----------------------------------------------------------------

tb__mail_owner() {	# sets TB__UID TB__GID TB__OWNER for mail files
	if [ "$(id -u)" != 0 ]; then
		TB__UID=$(id -u) TB__GID=$(id -g) TB__OWNER=
		return 0
	fi
	if ! getent passwd "$TB_MAIL_SYSUSER" >/dev/null; then
		useradd --system --user-group --no-create-home \
			--home-dir /nonexistent --shell /usr/sbin/nologin \
			"$TB_MAIL_SYSUSER" >/dev/null 2>&1 ||
		getent passwd "$TB_MAIL_SYSUSER" >/dev/null ||	# lost a race
			return 1
	fi
	TB__UID=$(id -u "$TB_MAIL_SYSUSER") TB__GID=$(id -g "$TB_MAIL_SYSUSER")
	TB__OWNER="$TB__UID:$TB__GID"
}

tb__write_dovecot_conf() {	# uses the dovecot_start locals
	local d=$DOVECOT_DIR ssl_block caps users login_extra imap_service
	if [ "$notls" = 1 ]; then
		ssl_block='ssl = no'
	else
		ssl_block="ssl = yes
ssl_cert = <$d/ssl/server.pem
ssl_key = <$d/ssl/server.key
ssl_min_protocol = TLSv1.2"
	fi
	caps=
	[ "$trimmed" = 1 ] && caps='imap_capability = IMAP4rev1'
	[ -n "$only_caps" ] && caps="imap_capability = $only_caps"
	# --prefork: the lines are added only then, so that without it the
	# config stays exactly what it always was.
	login_extra='' imap_service=''
	if [ "$prefork" = 1 ]; then
		login_extra='
  service_count = 0
  process_min_avail = 2'
		imap_service='
service imap {
  process_min_avail = 4
}'
	fi
	if [ "$(id -u)" = 0 ]; then
		users="default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull"
	else
		users="default_internal_user = $(id -un)
default_internal_group = $(id -gn)
default_login_user = $(id -un)"
	fi
	cat >"$DOVECOT_CONF" <<EOF
# generated by tests/harness/dovecot.sh; self-contained on purpose
base_dir = $d/run
state_dir = $d/state
instance_name = tb-dovecot-$$-$RANDOM
log_path = $d/dovecot.log
info_log_path = $d/dovecot.log
protocols = imap
listen = 127.0.0.1, 127.0.0.2
$users
first_valid_uid = $TB__UID
last_valid_uid = 0
first_valid_gid = 0
mail_location = maildir:~/Maildir
mail_fsync = never
mail_max_userip_connections = 100
disable_plaintext_auth = no
auth_mechanisms = plain login
login_greeting = twinbox test server ready
$ssl_block
$caps
passdb {
  driver = passwd-file
  args = scheme=PLAIN $d/passwd
}
userdb {
  driver = passwd-file
  args = $d/passwd
}
namespace inbox {
  inbox = yes
  separator = /
  # SPECIAL-USE (RFC 6154) attributes; the folders are not auto-created
  mailbox Archive {
    special_use = \\Archive
  }
  mailbox Drafts {
    special_use = \\Drafts
  }
  mailbox Junk {
    special_use = \\Junk
  }
  mailbox Sent {
    special_use = \\Sent
  }
  mailbox Trash {
    special_use = \\Trash
  }
}
protocol imap {
  rawlog_dir = $d/rawlog
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1, 127.0.0.2
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1, 127.0.0.2
    port = ${IMAPS_PORT:-0}
    ssl = yes
  }$login_extra
$( [ "$(id -u)" = 0 ] || echo '  chroot =' )
}$imap_service
service anvil {
$( [ "$(id -u)" = 0 ] || echo '  chroot =' )
}
EOF
}

# tb__stop_server "PID CONF" [--no-wait|--exited]: stop that master and wait
# until it is gone (--exited: until it has exited, reaped or not)
tb__stop_server() {
	local pid=${1%% *} conf=${1#* } i
	case $pid in '' | *[!0-9]*) return 0 ;; esac
	# The PID is remembered in memory, not only in master.pid, so the
	# server still stops if its directory was removed under us; check
	# that the PID still is our master before signalling it.
	if [ -r "/proc/$pid/cmdline" ] &&
	   ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$conf"; then
		return 0
	fi
	kill "$pid" 2>/dev/null || return 0
	[ "${2:-}" = --no-wait ] && return 0
	for i in $(seq 1 500); do
		kill -0 "$pid" 2>/dev/null || return 0
		# --exited: a zombie has exited, however late it is reaped
		[ "${2:-}" = --exited ] &&
		[ "$(sed 's/.*) //; s/ .*//' "/proc/$pid/stat" 2>/dev/null)" = Z ] &&
			return 0
		sleep 0.02
	done
	kill -9 "$pid" 2>/dev/null
	return 0
}

dovecot_start() {
	local trimmed=0 notls=0 prefork=0 only_caps= attempt i pid
	while [ $# -gt 0 ]; do
		case $1 in
		--trimmed) trimmed=1 ;;
		--caps) only_caps=$2; shift ;;
		--no-tls) notls=1 ;;
		--prefork) prefork=1 ;;
		*) tb__die "dovecot_start: unknown option '$1'" ;;
		esac
		shift
	done
	command -v dovecot >/dev/null 2>&1 ||
	[ -x /usr/sbin/dovecot ] ||
		tb__die "dovecot not found (install the Debian package dovecot-imapd)"
	PATH=$PATH:/usr/sbin:/sbin
	command -v doveadm >/dev/null 2>&1 ||
		tb__die "doveadm not found (install dovecot-core)"
	command -v openssl >/dev/null 2>&1 ||
		tb__die "openssl not found (install the Debian package openssl)"
	tb__mail_owner || tb__die "cannot create the mail user '$TB_MAIL_SYSUSER'"

	# Always under /tmp: the path must stay short (unix sockets) and
	# reachable by the unprivileged mail and login users.
	DOVECOT_DIR=$(mktemp -d /tmp/twinbox-dovecot.XXXXXX) ||
		tb__die "cannot create a temp dir"
	TB__DIRS+=("$DOVECOT_DIR")
	chmod 755 "$DOVECOT_DIR"
	DOVECOT_CONF=$DOVECOT_DIR/dovecot.conf
	IMAP_HOST=127.0.0.1
	IMAP_BADNAME_HOST=127.0.0.2
	TEST_USER=alice TEST_PASS=tbpw-alice-7f3a9c51
	TEST_USER2=bob TEST_PASS2=tbpw-bob-2e8d4b06
	CA_FILE=$DOVECOT_DIR/ssl/ca.pem
	export DOVECOT_DIR DOVECOT_CONF IMAP_HOST IMAP_BADNAME_HOST CA_FILE
	export TEST_USER TEST_PASS TEST_USER2 TEST_PASS2

	tb_make_certs "$DOVECOT_DIR/ssl" ||
		tb__die "cannot make test certificates with openssl"
	mkdir -p "$DOVECOT_DIR/run" "$DOVECOT_DIR/state" \
		"$DOVECOT_DIR/rawlog" "$DOVECOT_DIR/home/$TEST_USER" \
		"$DOVECOT_DIR/home/$TEST_USER2"
	chmod 755 "$DOVECOT_DIR/run"
	{
		printf '%s:{PLAIN}%s:%s:%s::%s::\n' "$TEST_USER" "$TEST_PASS" \
			"$TB__UID" "$TB__GID" "$DOVECOT_DIR/home/$TEST_USER"
		printf '%s:{PLAIN}%s:%s:%s::%s::\n' "$TEST_USER2" "$TEST_PASS2" \
			"$TB__UID" "$TB__GID" "$DOVECOT_DIR/home/$TEST_USER2"
	} >"$DOVECOT_DIR/passwd"
	chmod 644 "$DOVECOT_DIR/passwd"
	if [ -n "$TB__OWNER" ]; then
		chown -R "$TB__OWNER" "$DOVECOT_DIR/home" "$DOVECOT_DIR/rawlog"
	fi

	for attempt in 1 2 3 4 5 6; do
		IMAP_PORT=$(tb_free_port) || tb__die "no free port"
		IMAPS_PORT=
		if [ "$notls" = 0 ]; then
			IMAPS_PORT=$(tb_free_port) || tb__die "no free port"
		fi
		export IMAP_PORT IMAPS_PORT
		tb__write_dovecot_conf
		: >"$DOVECOT_DIR/dovecot.log"
		if dovecot -c "$DOVECOT_CONF" >"$DOVECOT_DIR/start.log" 2>&1; then
			# Wait for the greeting on both listeners.
			for i in $(seq 1 100); do
				[ -f "$DOVECOT_DIR/run/master.pid" ] &&
				tb__greets "$IMAP_PORT" &&
				{ [ -z "$IMAPS_PORT" ] ||
				  tb__port_busy "$IMAPS_PORT"; } && break
				sleep 0.1
			done
			pid=$(cat "$DOVECOT_DIR/run/master.pid" 2>/dev/null)
			if [ -n "$pid" ] && tb__greets "$IMAP_PORT"; then
				TB__SERVERS+=("$pid $DOVECOT_CONF")
				DOVECOT_PID=$pid
				export DOVECOT_PID
				return 0
			fi
			[ -n "$pid" ] && tb__stop_server "$pid $DOVECOT_CONF"
		fi
		# A port taken between our check and the bind: try new ones.
		if grep -qi 'in use' "$DOVECOT_DIR/start.log" \
		   "$DOVECOT_DIR/dovecot.log" 2>/dev/null; then
			continue
		fi
		break
	done
	tb__die "dovecot did not start" \
		"$(tail -n 20 "$DOVECOT_DIR/start.log" "$DOVECOT_DIR/dovecot.log" 2>&1)"
}

tb__greets() {	# true when the real IMAP greeting arrives on 127.0.0.1:$1
	local line
	# Until its auth process is up, imap-login first sends "* OK Waiting
	# for authentication process to respond.."; wait for the greeting
	# with capabilities, so tests start against a server that is ready.
	# The braces keep 2>/dev/null from sticking to the shell (a bare
	# "exec ... 2>/dev/null" would silence stderr for good).
	{ exec 4<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
	IFS= read -r -t 2 line <&4
	exec 4<&- 4>&-
	[[ $line == '* OK [CAPABILITY '* ]]
}

dovecot_stop() {	# dovecot_stop [--no-wait]
	local n=${#TB__SERVERS[@]}
	[ "$n" -gt 0 ] || return 0
	if [ "${1:-}" = --no-wait ]; then
		# signal only; the exit trap still waits for it
		tb__stop_server "${TB__SERVERS[n - 1]}" --no-wait
		return 0
	fi
	tb__stop_server "${TB__SERVERS[n - 1]}"
	unset 'TB__SERVERS[n-1]'
	TB__SERVERS=("${TB__SERVERS[@]}")
}

# --- server-side mail -------------------------------------------------------

tb_doveadm() { doveadm -c "$DOVECOT_CONF" "$@"; }

mail_path() {	# mail_path USER FOLDER
	tb_doveadm mailbox path -u "$1" "$2"
}

mail_folder_create() { tb_doveadm mailbox create -u "$1" "$2"; }
mail_folder_delete() { tb_doveadm mailbox delete -u "$1" "$2"; }
mail_folder_rename() { tb_doveadm mailbox rename -u "$1" "$2" "$3"; }

mail_folders() {
	tb_doveadm mailbox list -u "$1" | LC_ALL=C sort
}

tb__ensure_folder() {	# tb__ensure_folder USER FOLDER
	[ "$2" = INBOX ] && return 0
	tb_doveadm mailbox list -u "$1" | grep -Fxq -- "$2" && return 0
	mail_folder_create "$1" "$2"
}

tb__resync() {	# tb__resync USER FOLDER
	[ -n "$TB__OWNER" ] && chown -R "$TB__OWNER" "$3"
	tb_doveadm force-resync -u "$1" "$2"
}

mail_seed() {	# mail_seed USER FOLDER COUNT [options]
	local user=$1 folder=$2 count=$3 flags= sub=cur tag= size=0
	local dir now i body pad line=
	shift 3 || return 1
	while [ $# -gt 0 ]; do
		case $1 in
		--flags) flags=$2; shift ;;
		--new) sub=new ;;
		--tag) tag=$2; shift ;;
		--size) size=$2; shift ;;
		*) echo "mail_seed: unknown option '$1'" >&2; return 1 ;;
		esac
		shift
	done
	[ -n "$tag" ] || tag="seed$RANDOM$RANDOM"
	tb__ensure_folder "$user" "$folder" || return 1
	dir=$(mail_path "$user" "$folder") || return 1
	mkdir -p "$dir/cur" "$dir/new" "$dir/tmp"
	[ "$sub" = new ] && flags=
	pad=
	if [ "$size" -gt 300 ]; then
		printf -v line '%075d\n' 0
		line=${line//0/x}
		while [ ${#pad} -lt $((size - 300)) ]; do pad+=$line; done
	fi
	now=$(date +%s)
	(
		export LC_ALL=C TZ=UTC
		for ((i = 1; i <= count; i++)); do
			printf -v body '%s\n' \
				"Date: $(printf '%(%a, %d %b %Y %H:%M:%S +0000)T' $((now - count + i)))" \
				"From: Seed Sender <seed@twinbox.test>" \
				"To: $user@twinbox.test" \
				"Subject: $tag message $i" \
				"Message-ID: <$tag.$i@twinbox.test>" \
				"MIME-Version: 1.0" \
				"Content-Type: text/plain; charset=us-ascii" \
				"" \
				"This is message $i of $count in $folder."
			if [ "$sub" = cur ]; then
				printf '%s%s' "$body" "$pad" \
					>"$dir/cur/$now.M${i}P$$R$RANDOM.tbseed:2,$flags"
			else
				printf '%s%s' "$body" "$pad" \
					>"$dir/new/$now.M${i}P$$R$RANDOM.tbseed"
			fi
		done
	) || return 1
	tb__resync "$user" "$folder" "$dir"
}

mail_add() {	# mail_add USER FOLDER [--flags F] [FILE]; prints the UID
	local user=$1 folder=$2 flags= file=- dir name
	shift 2 || return 1
	while [ $# -gt 0 ]; do
		case $1 in
		--flags) flags=$2; shift ;;
		*) file=$1 ;;
		esac
		shift
	done
	tb__ensure_folder "$user" "$folder" || return 1
	dir=$(mail_path "$user" "$folder") || return 1
	mkdir -p "$dir/cur" "$dir/new" "$dir/tmp"
	name="$(date +%s).M$RANDOM${RANDOM}P$$.tbadd:2,$flags"
	if [ "$file" = - ]; then
		cat >"$dir/tmp/$name"
	else
		cat -- "$file" >"$dir/tmp/$name"
	fi || return 1
	mv "$dir/tmp/$name" "$dir/cur/$name" || return 1
	tb__resync "$user" "$folder" "$dir" || return 1
	tb_doveadm -f flow fetch -u "$user" uid mailbox "$folder" all |
		sed -n 's/^uid=//p' | sort -n | tail -n 1
}

mail_flags_add() {
	local u=$1 f=$2 uid=$3
	shift 3
	tb_doveadm flags add -u "$u" "$*" mailbox "$f" uid "$uid"
}
mail_flags_remove() {
	local u=$1 f=$2 uid=$3
	shift 3
	tb_doveadm flags remove -u "$u" "$*" mailbox "$f" uid "$uid"
}
mail_flags_replace() {
	local u=$1 f=$2 uid=$3
	shift 3
	tb_doveadm flags replace -u "$u" "$*" mailbox "$f" uid "$uid"
}
mail_expunge() { tb_doveadm expunge -u "$1" mailbox "$2" uid "$3"; }
mail_move() { tb_doveadm move -u "$1" "$4" mailbox "$2" uid "$3"; }

tb__status() {	# tb__status USER FIELD FOLDER: one STATUS value
	# Tab format: a title line, then "MAILBOX<TAB>VALUE".
	tb_doveadm -f tab mailbox status -u "$1" "$2" "$3" |
		awk -F '\t' 'NR == 2 { print $NF }'
}
mail_count() { tb__status "$1" messages "$2"; }
mail_uidvalidity() { tb__status "$1" uidvalidity "$2"; }
mail_set_uidvalidity() {
	tb_doveadm mailbox update -u "$1" --uid-validity "$3" "$2"
}

mail_list() {	# UID<TAB>FLAGS<TAB>MESSAGE-ID, one line per message
	tb_doveadm -f tab fetch -u "$1" 'uid flags hdr.message-id' \
		mailbox "$2" all | awk -F '\t' '
		NR == 1 { next }	# column titles
		{
			n = 0
			m = split($2, raw, " ")
			for (i = 1; i <= m; i++)	# \Recent depends on the session
				if (raw[i] != "\\Recent")
					f[++n] = raw[i]
			for (i = 2; i <= n; i++) {	# insertion sort, n is tiny
				v = f[i]
				for (j = i - 1; j > 0 && f[j] > v; j--)
					f[j + 1] = f[j]
				f[j + 1] = v
			}
			s = ""
			for (i = 1; i <= n; i++)
				s = s (i > 1 ? " " : "") f[i]
			id = $3
			sub(/^[ \t]+/, "", id)
			sub(/[ \t\r]+$/, "", id)
			printf "%s\t%s\t%s\n", $1, s, id
		}' | sort -n
}

mail_body() {	# the stored message (Maildir keeps LF line endings)
	# The pager formatter prints "text:" and then the raw message.
	tb_doveadm -f pager fetch -u "$1" text mailbox "$2" uid "$3" | sed 1d
}

rawlog_client_lines() {
	local i
	# The imap process flushes its rawlog at logout: wait until no
	# session is open any more.
	for i in $(seq 1 50); do
		# "who -1" prints a title line, then one line per session.
		[ "$(tb_doveadm who -1 2>/dev/null | wc -l)" -le 1 ] && break
		sleep 0.1
	done
	local f
	for f in "$DOVECOT_DIR"/rawlog/*.in; do
		# Each line carries a "seconds.micros " time stamp prefix.
		[ -f "$f" ] && tr -d '\r' <"$f" | sed -E 's/^[0-9]+\.[0-9]+ //'
	done
	return 0
}

# imap_talk plain|starttls|implicit [HOST]
#   Send the lines on stdin (CRLF added) to the server, print what it
#   answers (CR stripped) until it closes the connection; end with LOGOUT.
#   The TLS modes verify the certificate against CA_FILE (openssl
#   s_client) and fail when that fails; starttls shows only what follows
#   the handshake.
imap_talk() {
	local mode=$1 host=${2:-$IMAP_HOST} input
	input=$(sed 's/$/\r/')
	case $mode in
	plain)
		(
			exec 5<>"/dev/tcp/$host/$IMAP_PORT" || exit 1
			printf '%s\n' "$input" >&5
			timeout 10 cat <&5
		) | tr -d '\r'
		return "${PIPESTATUS[0]}"
		;;
	starttls | implicit)
		local opts=(-starttls imap -connect "$host:$IMAP_PORT")
		[ "$mode" = implicit ] && opts=(-connect "$host:$IMAPS_PORT")
		printf '%s\n' "$input" |
			timeout 10 openssl s_client -quiet "${opts[@]}" \
				-CAfile "$CA_FILE" -verify_return_error \
				2>"$TEST_TMP/s_client.err" | tr -d '\r'
		return "${PIPESTATUS[1]}"
		;;
	esac
	return 2
}

# --- twinbox ----------------------------------------------------------------

tb_write_config() {	# tb_write_config FILE ACCOUNT [key=value...] [--raw L]
	local file=$1 acct=$2 k v
	shift 2
	local -A kv=(
		[host]=$IMAP_HOST [tls]=starttls [port]= [ca_file]=$CA_FILE
		[user]=$TEST_USER [password_file]=$TEST_TMP/$acct.pass
		[maildir]=$TEST_TMP/mail/$acct [layout]=verbatim
	)
	local order=(host port tls ca_file user password password_file
		password_command auth maildir layout)
	local raw=() seen=" ${order[*]} " explicit_pwfile= explicit_ca=
	local extra=()
	while [ $# -gt 0 ]; do
		case $1 in
		--raw) raw+=("$2"); shift ;;
		*=*)
			k=${1%%=*} v=${1#*=}
			kv[$k]=$v
			[ "$k" = password_file ] && explicit_pwfile=1
			[ "$k" = ca_file ] && explicit_ca=1
			case $seen in *" $k "*) ;; *) extra+=("$k"); seen+="$k " ;; esac
			;;
		*) echo "tb_write_config: bad argument '$1'" >&2; return 1 ;;
		esac
		shift
	done
	# An explicit password or password_command replaces the default file.
	if [ -z "${explicit_pwfile:-}" ] &&
	   { [ -n "${kv[password]-}" ] || [ -n "${kv[password_command]-}" ]; }; then
		kv[password_file]=
	fi
	# ca_file means nothing without TLS (the loader rejects it there).
	if [ "${kv[tls]}" = none ] && [ -z "${explicit_ca:-}" ]; then
		kv[ca_file]=
	fi
	if [ -z "${kv[port]}" ]; then
		if [ "${kv[tls]}" = implicit ]; then
			kv[port]=$IMAPS_PORT
		else
			kv[port]=$IMAP_PORT
		fi
	fi
	if [ "${kv[password_file]}" = "$TEST_TMP/$acct.pass" ]; then
		printf '%s\n' "$TEST_PASS" >"$TEST_TMP/$acct.pass"
		chmod 600 "$TEST_TMP/$acct.pass"
	fi
	{
		echo "state_dir: \"$TEST_TMP/state\""
		echo "accounts:"
		echo "  - name: $acct"
		for k in "${order[@]}" "${extra[@]}"; do
			v=${kv[$k]-}
			[ -n "$v" ] || continue
			case $k in
			port | connections) printf '    %s: %s\n' "$k" "$v" ;;
			*) printf '    %s: "%s"\n' "$k" "$v" ;;
			esac
		done
		for v in "${raw[@]}"; do
			printf '%s\n' "$v"
		done
	} >"$file"
	chmod 600 "$file"
}

tb_run() {	# tb_run CMD...: sets RUN_STATUS RUN_OUT RUN_ERR
	local o="$TEST_TMP/run.out" e="$TEST_TMP/run.err"
	timeout -k 5 "${TB_RUN_TIMEOUT:-120}" "$@" >"$o" 2>"$e" </dev/null
	RUN_STATUS=$?
	RUN_OUT=$(cat "$o")
	RUN_ERR=$(cat "$e")
	if [ "$RUN_STATUS" = 124 ] || [ "$RUN_STATUS" = 137 ]; then
		diag "timed out: $*"
	fi
	return 0
}

tb_crashed() {
	[ "$RUN_STATUS" -ge 128 ] && return 0
	[ "$RUN_STATUS" = 124 ] && return 0
	[[ $RUN_ERR =~ (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime\ error:) ]]
}
