# SPDX-License-Identifier: GPL-2.0-or-later
# sync-lib.sh - helpers shared by the t-sync*.sh and t-uidvalidity.sh tests:
# compare a server folder (through doveadm) with its local Maildir.
#
# Source it after tests/harness/dovecot.sh.
#
#   local_dir ROOT LAYOUT FOLDER   the local Maildir of FOLDER (SPEC
#                                  "Maildir mapping"; "/" separator)
#   local_index DIR                one line per message file in DIR/cur and
#                                  DIR/new: MSGID<TAB>FLAGS<TAB>PATH, FLAGS
#                                  the upper-case letters after ":2,"
#                                  sorted (empty in new/ or without info)
#   local_list DIR                 MSGID<TAB>FLAGS, sorted
#   server_list USER FOLDER        MSGID<TAB>FLAGS, sorted, the IMAP system
#                                  flags and $Forwarded as Maildir letters
#   check_same USER FOLDER DIR NAME
#                                  one TAP test: both lists equal and
#                                  free of duplicates
#   check_bytes USER FOLDER DIR NAME
#                                  one TAP test: every server message has
#                                  exactly one local file whose bytes are
#                                  the server's (mail_body, LF line ends)
#   check_mtimes USER FOLDER DIR NAME
#                                  one TAP test: every local file's mtime
#                                  equals the INTERNALDATE of the server copy
#   check_modes DIR NAME           one TAP test: every file under DIR 0600,
#                                  every directory 0700
#   server_dates USER FOLDER       MSGID<TAB>INTERNALDATE (unix), sorted
#   rawlog_reset                   wait for sessions to end, forget rawlogs
#   rawlog_commands                the client commands (tag stripped, first
#                                  word upper-cased) of every session since
#                                  the last rawlog_reset, one per line
#   body_fetch_uids                the UIDs (space separated, sorted) whose
#                                  whole body a client fetched (BODY[],
#                                  BODY.PEEK[], RFC822, BINARY[]) since
#                                  the last rawlog_reset
#   rawlog_flights                 one line per session and selected folder
#                                  since the last rawlog_reset, with its
#                                  flights (see below)
#   tree_snapshot DIR              every path under DIR with its type, mode,
#                                  mtime and a content hash (for "nothing
#                                  changed" checks)
#   server_snapshot USER           every folder and its mail_list

local_dir() {	# local_dir ROOT LAYOUT FOLDER
	local root=$1 layout=$2 folder=$3
	if [ "$layout" = verbatim ]; then
		printf '%s/%s\n' "$root" "$folder"
	elif [ "$folder" = INBOX ]; then
		printf '%s\n' "$root"
	else
		printf '%s/.%s\n' "$root" "${folder//\//.}"
	fi
}

local_index() {	# local_index DIR
	local dir=$1 f files=()
	for f in "$dir"/cur/* "$dir"/new/*; do
		[ -f "$f" ] && files+=("$f")
	done
	[ ${#files[@]} -gt 0 ] || return 0
	LC_ALL=C awk '
		function flush() {
			if (path == "")
				return
			n = split(path, parts, "/")
			base = parts[n]
			fl = ""
			i = index(base, ":2,")
			if (i > 0 && parts[n - 1] == "cur") {
				info = substr(base, i + 3)
				for (c = 65; c <= 90; c++) {
					ch = sprintf("%c", c)
					if (index(info, ch) > 0)
						fl = fl ch
				}
			}
			printf "%s\t%s\t%s\n", (id == "" ? "<none>" : id), fl, path
		}
		FNR == 1 { flush(); path = FILENAME; id = ""; inhdr = 1 }
		inhdr && /^\r?$/ { inhdr = 0 }
		inhdr && tolower($0) ~ /^message-id:/ && id == "" {
			v = substr($0, 12)
			gsub(/^[ \t]+|[ \t\r]+$/, "", v)
			id = v
		}
		END { flush() }
	' "${files[@]}" | LC_ALL=C sort
}

local_list() { local_index "$1" | cut -f1,2; }

server_list() {	# server_list USER FOLDER
	mail_list "$1" "$2" | LC_ALL=C awk -F '\t' '
		BEGIN {
			m["\\Draft"] = "D"; m["\\Flagged"] = "F"
			m["$Forwarded"] = "P"; m["\\Answered"] = "R"
			m["\\Seen"] = "S"; m["\\Deleted"] = "T"
		}
		{
			n = split($2, fl, " ")
			s = ""
			for (c = 65; c <= 90; c++) {
				ch = sprintf("%c", c)
				for (i = 1; i <= n; i++)
					if (m[fl[i]] == ch)
						s = s ch
			}
			printf "%s\t%s\n", ($3 == "" ? "<none>" : $3), s
		}' | LC_ALL=C sort
}

check_same() {	# check_same USER FOLDER DIR NAME
	local srv loc dups
	srv=$(server_list "$1" "$2")
	loc=$(local_list "$3")
	dups=$( { printf '%s\n' "$srv" | cut -f1 | uniq -d
		  printf '%s\n' "$loc" | cut -f1 | uniq -d; } | grep -v '^$')
	if [ "$srv" = "$loc" ] && [ -z "$dups" ]; then
		pass "$4"
		return 0
	fi
	fail "$4"
	diag "server ($2):" "$srv" "local ($3):" "$loc"
	[ -n "$dups" ] && diag "duplicates: $dups"
	return 1
}

check_bytes() {	# check_bytes USER FOLDER DIR NAME
	local user=$1 folder=$2 dir=$3 name=$4 idx uid flags id path n
	local bad=() count=0
	idx=$(local_index "$dir")
	# (tabs made \037: IFS white space would merge empty fields)
	while IFS=$'\037' read -r uid flags id; do
		[ -n "$uid" ] || continue
		[ -n "$id" ] || id="<none>"
		count=$((count + 1))
		n=$(printf '%s\n' "$idx" | awk -F '\t' -v id="$id" \
			'$1 == id' | wc -l)
		if [ "$n" != 1 ]; then
			bad+=("UID $uid $id: $n local files")
			continue
		fi
		path=$(printf '%s\n' "$idx" | awk -F '\t' -v id="$id" \
			'$1 == id { print $3 }')
		if ! cmp -s <(mail_body "$user" "$folder" "$uid") "$path"; then
			bad+=("UID $uid $id: bytes differ from $path")
		fi
	done < <(mail_list "$user" "$folder" | tr '\t' '\037')
	if [ ${#bad[@]} -eq 0 ] && [ "$count" -gt 0 ]; then
		pass "$name"
		return 0
	fi
	fail "$name"
	diag "$count server messages in $folder" "${bad[@]}"
	return 1
}

server_dates() {	# MSGID<TAB>INTERNALDATE (unix seconds)
	tb_doveadm -f tab fetch -u "$1" \
		'hdr.message-id date.received.unixtime' mailbox "$2" all |
		awk -F '\t' 'NR > 1 {
			id = $1; gsub(/^[ \t]+|[ \t\r]+$/, "", id)
			print (id == "" ? "<none>" : id) "\t" $2 }' | LC_ALL=C sort
}

check_mtimes() {	# check_mtimes USER FOLDER DIR NAME
	local want got
	want=$(server_dates "$1" "$2")
	got=$(local_index "$3" | tr '\t' '\037' |
	      while IFS=$'\037' read -r id _ path; do
		printf '%s\t%s\n' "$id" "$(stat -c %Y "$path")"
	done | LC_ALL=C sort)
	if [ -n "$want" ] && [ "$want" = "$got" ]; then
		pass "$4"
		return 0
	fi
	fail "$4"
	diag "server INTERNALDATE:" "$want" "local mtime:" "$got"
	return 1
}

check_modes() {	# check_modes DIR NAME
	local bad
	bad=$( { find "$1" -type f ! -perm 0600 -printf '%m %p\n'
		 find "$1" -type d ! -perm 0700 -printf '%m %p\n'; } )
	if [ -z "$bad" ] && [ -d "$1" ]; then
		pass "$2"
		return 0
	fi
	fail "$2"
	diag "wrong modes:" "$bad"
	return 1
}

rawlog_reset() {
	rawlog_client_lines >/dev/null
	rm -f "$DOVECOT_DIR"/rawlog/*
}

rawlog_commands() {
	rawlog_client_lines | awk '
		NF >= 2 && $1 ~ /^[A-Za-z]*[0-9]+$/ {	# tags, not literal text
			cmd = toupper($2)
			if (cmd == "UID" && NF >= 3)
				cmd = cmd " " toupper($3)
			print cmd
		}'
}

# One line per session and selected folder: "FOLDER sel=A exp=B copy=C
# flights=F move=D: COMMANDS" (a "|" where a flight ends), where A counts
# commands that reached the server only after it had answered the SELECT
# before them (0 or 1), B the UID EXPUNGEs that came after the answer to
# their STORE, C the UID COPYs that came after the answer to the first
# one, D the same for UID MOVEs, F the flights (a command that came after
# the answer to the one before it starts one; APPENDs stream, so an
# APPEND after an APPEND does not; LOGOUT is not waited for).
rawlog_flights() {
	local f
	for f in "$DOVECOT_DIR"/rawlog/*.in; do
		awk 'NR == FNR { if ($2 != "*" && $2 != "+" && !($2 in t))
				 t[$2] = $1 + 0; next }
		     function done_seg() {
			if (seg != "")
				printf "%s sel=%d exp=%d copy=%d flights=%d move=%d:%s\n",
					seg, sel, nexp, cp, fl, mv, seq
		     }
		     $2 !~ /^[A-Za-z]*[0-9]+$/ { next }
		     {
			cmd = toupper($3)
			if (cmd == "UID") cmd = cmd " " toupper($4)
			ts = $1 + 0
		     }
		     cmd == "SELECT" || cmd == "EXAMINE" {
			done_seg()
			seg = $4; sel = nexp = cp = mv = 0; fl = 1
			prev = cmd; ptag = $2; copy1 = move1 = ""; seq = " SELECT"
			next
		     }
		     seg == "" || cmd ~ /^LOGOUT/ { next }
		     {
			waited = (ptag in t) && ts > t[ptag]
			if (waited && !(cmd == "APPEND" && prev == "APPEND")) {
				fl++
				seq = seq " |"
			}
			if (!(cmd == "APPEND" && prev == "APPEND"))
				seq = seq " " cmd
			if (waited && prev == "SELECT") sel++
			if (cmd == "UID EXPUNGE" && prev == "UID STORE" && waited)
				nexp++
			if (cmd == "UID COPY") {
				if (copy1 == "") copy1 = $2
				else if ((copy1 in t) && ts > t[copy1]) cp++
			}
			if (cmd == "UID MOVE") {
				if (move1 == "") move1 = $2
				else if ((move1 in t) && ts > t[move1]) mv++
			}
			prev = cmd; ptag = $2
		     }
		     END { done_seg() }' "${f%.in}.out" "$f"
	done
}

body_fetch_uids() {	# the UIDs whose whole body the client fetched
	rawlog_client_lines |
		grep -Ei '^[A-Za-z]*[0-9]+ UID FETCH [0-9:,*]+ .*(BODY(\.PEEK)?\[\]|RFC822[^.]|RFC822$|BINARY(\.PEEK)?\[\])' |
		awk '{
			n = split($4, r, ",")
			for (i = 1; i <= n; i++) {
				if (split(r[i], ab, ":") == 2) {
					lo = ab[1] + 0; hi = ab[2] == "*" ? 1e6 : ab[2] + 0
					if (lo > hi) { t = lo; lo = hi; hi = t }
					for (j = lo; j <= hi && j < lo + 100000; j++)
						print j
				} else
					print r[i]
			}
		}' | sort -n | uniq | tr '\n' ' '
}

tree_snapshot() {	# tree_snapshot DIR
	[ -e "$1" ] || { echo "(absent)"; return 0; }
	(cd "$1" && find . -printf '%y %m %T@ %p\n' | LC_ALL=C sort &&
	 find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
}

server_snapshot() {	# server_snapshot USER
	local f
	mail_folders "$1" | while IFS= read -r f; do
		printf '== %s\n' "$f"
		mail_list "$1" "$f"
	done
}
