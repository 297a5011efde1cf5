# SPDX-License-Identifier: GPL-2.0-or-later
# crash-lib.sh - shared checks for the crash, move and rename tests:
# do the server and the local Maildir hold the same messages, with nothing
# lost and nothing duplicated? Source it after tests/harness/dovecot.sh.
#
# Messages are compared by Message-ID (every test message has a unique
# one unless the test made duplicates on purpose). Local folders are the
# verbatim layout: folder NAME is the Maildir MAILDIR/NAME.
#
#   cl_local_ids DIR          Message-IDs of the files in DIR/cur and
#                             DIR/new, sorted, one per line ("(none)" for
#                             a file without one)
#   cl_server_ids USER FOLDER Message-IDs on the server, sorted
#   cl_local_folders MAILDIR  local folder names (dirs holding cur/), sorted
#   cl_agree USER MAILDIR EXPECTED [DUPS]
#       per folder, the multiset of Message-IDs on the server equals the
#       one in the local Maildir; no Message-ID appears twice anywhere on
#       either side (except those listed, space separated, in DUPS, which
#       the corpus had twice: they may appear as often as listed there);
#       the total on each side is EXPECTED. Returns 0/1; on failure CL_ERR
#       says why (for diag).
#   cl_where USER MAILDIR MSGID   prints "SERVERFOLDERS|LOCALFOLDERS",
#       each a sorted comma separated list with one entry per copy (so a
#       duplicate shows as "Archive,Archive")
#   cl_local_file MAILDIR FOLDER MSGID   the path of the local file
#   cl_msgid_file FILE        the Message-ID of one file
#   cl_write_msg FILE ID [SUBJECT]   write a small message with that
#       Message-ID (LF line endings)
#   cl_ms_sleep MS            sleep MS milliseconds
#   cl_seed USER FOLDER COUNT TAG [FLAGS]   like mail_seed (same
#       Message-IDs <TAG.i@twinbox.test>) but with one awk instead of a
#       subshell per message: 2,000 messages in a fraction of a second
#   cl_local_seed DIR COUNT TAG   COUNT new local files in DIR/new
#       (Message-ID <TAG.i@twinbox.test>)
#   cl_diff_head A B          the first lines of "diff A B" (for diag)
#   cl_seed_kills             seed $RANDOM for the kill delays from
#       CRASH_SEED, else the clock, and say which (SEED is set)

cl_seed_kills() {	# seed $RANDOM (the kill delays): CRASH_SEED or the clock
	SEED=${CRASH_SEED:-$(( $(date +%s) % 32768 ))}
	RANDOM=$SEED
	diag "kill delays seeded with CRASH_SEED=$SEED"
}

cl_msgid_file() {
	awk 'BEGIN { IGNORECASE = 1 }
	/^$/ { exit }
	tolower($0) ~ /^message-id:/ {
		v = substr($0, 12); gsub(/^[ \t]+|[ \t\r]+$/, "", v)
		print v; found = 1; exit
	}
	END { if (!found) print "(none)" }' "$1"
}

cl_local_ids() {
	local d=$1
	[ -d "$d" ] || return 0
	# One awk over every file: 2,000 files in well under a second.
	find "$d/cur" "$d/new" -maxdepth 1 -type f -print0 2>/dev/null |
		xargs -0 -r awk '
		FNR == 1 { if (started && !found) print "(none)"
			   started = 1; found = 0; inhdr = 1 }
		inhdr && /^\r?$/ { inhdr = 0 }
		inhdr && !found && tolower($0) ~ /^message-id:/ {
			v = substr($0, 12); gsub(/^[ \t]+|[ \t\r]+$/, "", v)
			print v; found = 1
		}
		END { if (started && !found) print "(none)" }' |
		LC_ALL=C sort
}

cl_server_ids() {
	mail_list "$1" "$2" | cut -f3 | LC_ALL=C sort
}

cl_local_folders() {
	local m=$1
	[ -d "$m" ] || return 0
	find "$m" -type d -name cur -printf '%h\n' |
		sed "s|^$m/||" | LC_ALL=C sort
}

cl_diff_head() {
	diff <(printf '%s\n' "$1") <(printf '%s\n' "$2") | head -n 12
}

cl_agree() {
	local user=$1 m=$2 want=$3 dups=${4:-} f s l all_s= all_l= n_s n_l
	local folders d
	CL_ERR=
	folders=$( { mail_folders "$user"; cl_local_folders "$m"; } |
		LC_ALL=C sort -u)
	while IFS= read -r f; do
		[ -n "$f" ] || continue
		s=
		if mail_folders "$user" | grep -Fxq -- "$f"; then
			s=$(cl_server_ids "$user" "$f")
		fi
		l=$(cl_local_ids "$m/$f")
		if [ "$s" != "$l" ]; then
			CL_ERR+="folder '$f': server ($(printf '%s' "$s" | grep -c .)) and local ($(printf '%s' "$l" | grep -c .)) differ:"$'\n'
			CL_ERR+="$(cl_diff_head "$s" "$l")"$'\n'
		fi
		[ -n "$s" ] && all_s+="$s"$'\n'
		[ -n "$l" ] && all_l+="$l"$'\n'
	done <<<"$folders"
	n_s=$(printf '%s' "$all_s" | grep -c .)
	n_l=$(printf '%s' "$all_l" | grep -c .)
	[ "$n_s" = "$want" ] ||
		CL_ERR+="server holds $n_s messages, want $want"$'\n'
	[ "$n_l" = "$want" ] ||
		CL_ERR+="local Maildir holds $n_l messages, want $want"$'\n'
	for side in server local; do
		if [ $side = server ]; then all=$all_s; else all=$all_l; fi
		d=$(printf '%s' "$all" | grep . | LC_ALL=C sort | uniq -c |
			awk -v dups=" $dups " '{
				n = split(dups, a, " "); allowed = 1
				for (i = 1; i <= n; i++) if (a[i] == $2) allowed++
				if ($1 > allowed) print $2 " x" $1
			}' | head -n 10)
		[ -z "$d" ] ||
			CL_ERR+="duplicates on the $side: $(echo $d)"$'\n'
	done
	[ -z "$CL_ERR" ]
}

cl_where() {
	local user=$1 m=$2 id=$3 sv lo
	# one doveadm call over all folders; header search is a substring
	# match, so keep only exact hits
	sv=$(tb_doveadm -f tab fetch -u "$user" 'mailbox hdr.message-id' \
		mailbox '*' header message-id "$id" 2>/dev/null |
		awk -F '\t' -v id="$id" 'NR > 1 {
			v = $2; gsub(/^[ \t]+|[ \t\r]+$/, "", v)
			if (v == id) print $1 }' | LC_ALL=C sort | paste -sd, -)
	lo=$(grep -rlxF -- "Message-ID: $id" "$m" 2>/dev/null |
		sed -n "s#^$m/\(.*\)/\(cur\|new\)/[^/]*\$#\1#p" |
		LC_ALL=C sort | paste -sd, -)
	printf '%s|%s\n' "$sv" "$lo"
}

cl_local_file() {
	local m=$1 f=$2 id=$3 x
	for x in "$m/$f"/cur/* "$m/$f"/new/*; do
		[ -f "$x" ] || continue
		if [ "$(cl_msgid_file "$x")" = "$id" ]; then
			printf '%s\n' "$x"
			return 0
		fi
	done
	return 1
}

# Local changes as a mail reader makes them, for tests that define
# mid N (message N's Message-ID) and M (the Maildir root):
#   cl_move_local N FROM TO       mv to TO/cur, losing ,U=; flags S
#   cl_set_flags FOLDER N FLAGS   rename to new flags
#   cl_delete_local FOLDER N      rm
#   cl_new_local FOLDER NAME      a new file in FOLDER/new
cl_move_local() {
	local x b
	x=$(cl_local_file "$M" "$2" "$(mid "$1")") || {
		diag "no local file for $(mid "$1") in $2"
		return 1
	}
	b=${x##*/}
	mv "$x" "$M/$3/cur/${b%%,U=*}:2,S"
}

cl_set_flags() {
	local x
	x=$(cl_local_file "$M" "$1" "$(mid "$2")") || {
		diag "no local file for $(mid "$2") in $1"
		return 1
	}
	mv "$x" "$M/$1/cur/$(basename "${x%%:2,*}"):2,$3"
}

cl_delete_local() {
	local x
	x=$(cl_local_file "$M" "$1" "$(mid "$2")") && rm -f "$x"
}

cl_new_local() {
	printf 'From: a@twinbox.test\nSubject: %s\nMessage-ID: <%s@twinbox.test>\n\nbody %s\n' \
		"$2" "$2" "$2" >"$M/$1/new/$(date +%s).$2.local"
}

cl_write_msg() {
	local file=$1 id=$2 subj=${3:-local message}
	printf '%s\n' \
		"Date: Mon, 02 Jan 2023 10:00:00 +0000" \
		"From: Local Writer <local@twinbox.test>" \
		"To: alice@twinbox.test" \
		"Subject: $subj" \
		"Message-ID: $id" \
		"" \
		"Body of $subj." >"$file"
}

# A read that times out on a pipe nobody writes to: bash's own sleep, no
# fork of awk and sleep(1) (about 10 ms on a slow VM, as long as the
# kill delays themselves).
cl_ms_sleep() {
	local frac
	[ -n "${CL__SLEEP_FD:-}" ] || exec {CL__SLEEP_FD}<> <(:)
	printf -v frac '%03d' $(( $1 % 1000 ))
	read -r -t "$(( $1 / 1000 )).$frac" -u "$CL__SLEEP_FD" _ || :
}

cl__gen() {	# cl__gen DIR COUNT TAG FOLDER SUFFIX: write the files
	awk -v dir="$1" -v n="$2" -v tag="$3" -v folder="$4" -v suf="$5" \
	    -v now="$(date +%s)" -v pid="$$" 'BEGIN {
		srand()
		t = tag; gsub(/[^A-Za-z0-9]/, "_", t)
		for (i = 1; i <= n; i++) {
			# unique: the tag is part of the name
			f = sprintf("%s/%d.M%dP%dR%d.tbcrash_%s%s", dir, now, i,
				    pid, int(rand() * 100000), t, suf)
			printf "Date: Mon, 02 Jan 2023 10:00:00 +0000\n" > f
			printf "From: Seed Sender <seed@twinbox.test>\n" > f
			printf "To: alice@twinbox.test\n" > f
			printf "Subject: %s message %d\n", tag, i > f
			printf "Message-ID: <%s.%d@twinbox.test>\n", tag, i > f
			printf "\nThis is message %d of %d in %s.\n", i, n, folder > f
			close(f)
		}
	}'
}

cl_seed() {
	local user=$1 folder=$2 n=$3 tag=$4 flags=${5:-} dir
	if [ "$folder" != INBOX ] &&
	   ! mail_folders "$user" | grep -Fxq -- "$folder"; then
		mail_folder_create "$user" "$folder" || return 1
	fi
	dir=$(mail_path "$user" "$folder") || return 1
	mkdir -p "$dir/cur" "$dir/new" "$dir/tmp"
	cl__gen "$dir/cur" "$n" "$tag" "$folder" ":2,$flags" || return 1
	[ -n "${TB__OWNER:-}" ] && chown -R "$TB__OWNER" "$dir"
	tb_doveadm force-resync -u "$user" "$folder"
}

cl_local_seed() {
	local dir=$1
	mkdir -p "$dir/cur" "$dir/new" "$dir/tmp"
	cl__gen "$dir/new" "$2" "$3" "$(basename "$dir")" ""
}

# Flags as Maildir letters, from IMAP flag names (keywords dropped).
cl__imap_letters() {
	awk -F '\t' '{
		s = ""
		n = split($2, f, " ")
		for (i = 1; i <= n; i++) {
			if (f[i] == "\\Draft") s = s "D"
			else if (f[i] == "\\Flagged") s = s "F"
			else if (f[i] == "$Forwarded") s = s "P"
			else if (f[i] == "\\Answered") s = s "R"
			else if (f[i] == "\\Seen") s = s "S"
			else if (f[i] == "\\Deleted") s = s "T"
		}
		# letters in ASCII order
		m = length(s); out = ""
		split("D F P R S T", order, " ")
		for (j = 1; j <= 6; j++) if (index(s, order[j])) out = out order[j]
		print $3 " " out
	}'
}

#   cl_server_state USER FOLDER   "MSGID FLAGLETTERS" per message, sorted
#   cl_local_state DIR            the same for the local Maildir DIR
#   cl_uid_of USER FOLDER MSGID   the server UID of that message
cl_server_state() {
	mail_list "$1" "$2" | cl__imap_letters | LC_ALL=C sort
}

cl_local_state() {
	local d=$1 x id fl
	for x in "$d"/cur/* "$d"/new/*; do
		[ -f "$x" ] || continue
		id=$(cl_msgid_file "$x")
		fl=
		case ${x##*/} in *:2,*) fl=${x##*:2,} ;; esac
		fl=$(printf '%s' "$fl" | tr -cd 'DFPRST')
		printf '%s %s\n' "$id" "$fl"
	done | LC_ALL=C sort
}

cl_uid_of() {
	mail_list "$1" "$2" | awk -F '\t' -v id="$3" '$3 == id { print $1; exit }'
}
