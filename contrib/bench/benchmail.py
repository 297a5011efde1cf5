#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""benchmail.py - corpus, changes, checks and tables for contrib/bench/run.

  benchmail.py gen --dest DIR --count N --seed S [--profile mixed|flat]
               [--owner UID:GID]
      Write a deterministic corpus as a server-side Maildir++ tree (INBOX is
      DIR itself, folder "Lists/dev" is DIR/.Lists.dev), flags in the info
      suffix, file mtime = the Date header (Dovecot's INTERNALDATE).
  benchmail.py server-changes --user U --doveadm-conf C --maildir DIR
               --seed S [--flag-pct P] [--new N] [--expunge N] [--move N]
               [--owner UID:GID]
      Change the user's server mailboxes with doveadm (flags, expunge, move)
      and by dropping new files in its Maildir plus force-resync.
  benchmail.py local-changes --root DIR --layout verbatim|dot --seed S ...
      The same kinds of changes made in a client's Maildir: rename files
      (flags), add files, delete files, move files between folder dirs.
  benchmail.py copies --user U --doveadm-conf C --root DIR
               --layout verbatim|dot --seed S [--server N] [--local N]
               [--server-to F] [--local-to F]
      Copy N server messages (from every other folder) into the server
      folder F with "doveadm copy" (a UID COPY), and N local files into the
      local folder F (content and mtime kept, a new file name, as a mail
      reader or cp to a new name makes it).
  benchmail.py verify --user U --doveadm-conf C --root DIR
               --layout verbatim|dot [--report FILE]
      Compare the local Maildir with "doveadm fetch": per folder the same
      Message-IDs with the same flags, no duplicate Message-ID in a folder
      on either side (a copy in another folder is no duplicate). Prints "yes" or "no" (details in --report).
  benchmail.py report --runs CSV --csv OUT.csv --md OUT.md [--title T]
      Medians over the runs of each step and peer, ratios to twinbox;
      round trips and bytes as the delay proxy counted them, if it ran.

Everything random comes from random.Random(seed) so two runs with the same
parameters write byte-identical files; the server changes pick messages by
Message-ID (sorted), so every peer's account gets exactly the same changes.
"""

import argparse
import base64
import math
import os
import random
import re
import subprocess
import sys
from collections import Counter, defaultdict

# Folder name -> share of the corpus (8 folders, "Lists/dev" is nested).
FOLDERS = [
    ("INBOX", 0.30), ("Archive", 0.25), ("Sent", 0.12), ("Lists", 0.08),
    ("Lists/dev", 0.12), ("Work", 0.06), ("Trash", 0.05), ("Drafts", 0.02),
]
EPOCH = 1672531200          # 2023-01-01 00:00:00 UTC
FLAG_LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R",
                "\\Seen": "S", "\\Deleted": "T"}
WORDS = ("the of and to in is for on that with as this be are from at by "
         "we it not or have an will can your our all more about which new "
         "release build test patch server client message folder sync mail "
         "please review meeting agenda notes attached report quarter "
         "budget invoice draft thanks regards update change issue fix "
         "performance memory network latency throughput config option "
         "default value error warning kernel driver branch merge commit "
         "deadline schedule project customer order shipping payment").split()
FIRST = "Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Mallory Oscar Peggy Trent Victor Walter".split()
LAST = "Smith Jones Brown Taylor Wilson Evans Thomas Moore Martin Clark Lewis Walker Hall Young King".split()
ATTACH = [("report.pdf", "application/pdf"), ("photo.jpg", "image/jpeg"),
          ("archive.zip", "application/zip"),
          ("slides.pptx", "application/vnd.openxmlformats-officedocument."
           "presentationml.presentation"), ("data.xlsx", "application/vnd."
           "openxmlformats-officedocument.spreadsheetml.sheet")]
DAYS = "Mon Tue Wed Thu Fri Sat Sun".split()
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def die(msg):
    print("benchmail: " + msg, file=sys.stderr)
    sys.exit(2)


# --- deterministic helpers (only Random.random and Random.getrandbits) ---

def rint(rng, n):
    return min(int(rng.random() * n), n - 1)


def pick(rng, seq):
    return seq[rint(rng, len(seq))]


def weighted(rng, pairs):
    x = rng.random()
    acc = 0.0
    for name, w in pairs:
        acc += w
        if x < acc:
            return name
    return pairs[-1][0]


def shuffle(rng, seq):
    for i in range(len(seq) - 1, 0, -1):
        j = rint(rng, i + 1)
        seq[i], seq[j] = seq[j], seq[i]


def rbytes(rng, n):
    return rng.getrandbits(n * 8).to_bytes(n, "little") if n else b""


def log_uniform(rng, lo, hi):
    return int(math.exp(math.log(lo) + rng.random() * (math.log(hi) - math.log(lo))))


def rfc2822_date(ts):
    import time
    t = time.gmtime(ts)
    return "%s, %02d %s %04d %02d:%02d:%02d +0000" % (
        DAYS[t.tm_wday], t.tm_mday, MONTHS[t.tm_mon - 1], t.tm_year,
        t.tm_hour, t.tm_min, t.tm_sec)


class TextPool:
    """A block of pseudo-prose lines; message bodies are slices of it."""

    def __init__(self, rng, nlines=4000):
        lines = []
        for _ in range(nlines):
            words = []
            n = 0
            while n < 60:
                w = pick(rng, WORDS)
                words.append(w)
                n += len(w) + 1
            line = " ".join(words)
            lines.append(line[0].upper() + line[1:] + ".")
        self.lines = lines

    def text(self, rng, size):
        out = []
        n = 0
        i = rint(rng, len(self.lines))
        while n < size:
            line = self.lines[i % len(self.lines)]
            out.append(line)
            n += len(line) + 1
            i += 1
            if rng.random() < 0.12:
                out.append("")
                n += 1
        return "\n".join(out) + "\n"


def person(rng):
    f, l = pick(rng, FIRST), pick(rng, LAST)
    return "%s %s <%s.%s@example.%s>" % (f, l, f.lower(), l.lower(),
                                          pick(rng, ["org", "com", "net"]))


def target_size(rng, profile):
    if profile == "flat":
        return log_uniform(rng, 2000, 10000)
    x = rng.random()
    if x < 0.70:
        return log_uniform(rng, 2000, 10000)
    if x < 0.95:
        return log_uniform(rng, 10000, 100000)
    return log_uniform(rng, 100000, 2000000)


def flags_for(rng, folder):
    f = set()
    if rng.random() < 0.80:
        f.add("S")
        if rng.random() < 0.125:        # 10% of all messages
            f.add("R")
    if rng.random() < 0.03:
        f.add("F")
    if folder == "Drafts":
        f.add("D")
    if folder in ("Sent", "Drafts"):
        f.add("S")
    return "".join(sorted(f))


def make_message(rng, pool, mid, folder, ts, size):
    """One message as bytes with LF line endings, about SIZE bytes long."""
    frm, to = person(rng), "Bench User <bench@example.org>"
    if folder in ("Sent", "Drafts"):
        frm, to = to, person(rng)
    subj = " ".join(pick(rng, WORDS) for _ in range(3 + rint(rng, 6)))
    if rng.random() < 0.3:
        subj = "Re: " + subj
    h = [
        "Return-Path: <%s>" % frm.split("<")[1].rstrip(">"),
        "Received: from mx%d.example.net (mx%d.example.net [192.0.2.%d])\n"
        "\tby mail.example.org (Postfix) with ESMTPS id %X\n"
        "\tfor <bench@example.org>; %s" % (rint(rng, 9), rint(rng, 9),
                                           1 + rint(rng, 250),
                                           rng.getrandbits(40), rfc2822_date(ts)),
        "Date: " + rfc2822_date(ts),
        "From: " + frm,
        "To: " + to,
    ]
    if rng.random() < 0.25:
        h.append("Cc: " + person(rng))
    h.append("Subject: " + subj)
    h.append("Message-ID: " + mid)
    if subj.startswith("Re: "):
        h.append("In-Reply-To: <%x@example.net>" % rng.getrandbits(64))
    if folder.startswith("Lists"):
        h.append("List-Id: Development <dev.lists.example.org>")
        h.append("List-Unsubscribe: <mailto:dev-leave@lists.example.org>")
    h.append("MIME-Version: 1.0")
    head_len = sum(len(x) + 1 for x in h)
    room = max(200, size - head_len - 100)
    if size >= 10000 and rng.random() < 0.6:
        # multipart/mixed: a short text part and a base64 attachment
        b = "=_bench_%x" % rng.getrandbits(48)
        name, ctype = pick(rng, ATTACH)
        text = pool.text(rng, min(2000, room // 4))
        raw = rbytes(rng, max(1, (room - len(text) - 400) * 3 // 4))
        enc = base64.encodebytes(raw).decode("ascii")
        h.append('Content-Type: multipart/mixed; boundary="%s"' % b)
        body = ("This is a multi-part message in MIME format.\n\n"
                "--%s\nContent-Type: text/plain; charset=utf-8\n"
                "Content-Transfer-Encoding: 7bit\n\n%s\n"
                "--%s\nContent-Type: %s; name=\"%s\"\n"
                "Content-Disposition: attachment; filename=\"%s\"\n"
                "Content-Transfer-Encoding: base64\n\n%s\n--%s--\n"
                % (b, text, b, ctype, name, name, enc, b))
    elif rng.random() < 0.15:
        b = "=_alt_%x" % rng.getrandbits(48)
        text = pool.text(rng, room // 2)
        html = "<html><body><p>" + text.replace("\n\n", "</p><p>") + \
            "</p></body></html>\n"
        h.append('Content-Type: multipart/alternative; boundary="%s"' % b)
        body = ("--%s\nContent-Type: text/plain; charset=utf-8\n\n%s\n"
                "--%s\nContent-Type: text/html; charset=utf-8\n\n%s\n--%s--\n"
                % (b, text, b, html, b))
    else:
        h.append("Content-Type: text/plain; charset=utf-8")
        h.append("Content-Transfer-Encoding: 7bit")
        body = pool.text(rng, room)
    return ("\n".join(h) + "\n\n" + body).encode("utf-8")


def server_dir(root, folder):
    return root if folder == "INBOX" else os.path.join(root, "." + folder.replace("/", "."))


def parse_owner(s):
    if not s:
        return None
    u, g = s.split(":")
    return int(u), int(g)


def write_file(path, data, mtime, owner):
    tmp = os.path.join(os.path.dirname(os.path.dirname(path)), "tmp",
                       os.path.basename(path).split(":")[0])
    with open(tmp, "wb") as f:
        f.write(data)
    os.utime(tmp, (mtime, mtime))
    if owner:
        os.chown(tmp, *owner)
    os.rename(tmp, path)


def ensure_maildir(d, owner):
    for sub in ("", "cur", "new", "tmp"):
        p = os.path.join(d, sub)
        if not os.path.isdir(p):
            os.makedirs(p, 0o700)
            if owner:
                os.chown(p, *owner)


def generate(rng, pool, count, prefix, profile, ts0, span):
    """Yield (folder, message-id, flags, ts, bytes) for COUNT messages."""
    for i in range(count):
        folder = "INBOX" if profile == "flat" else weighted(rng, FOLDERS)
        ts = ts0 + (span * i) // max(1, count) + rint(rng, 600)
        mid = "<%s.%d.%08x@bench.example.org>" % (prefix, i, rng.getrandbits(32))
        flags = flags_for(rng, folder)
        data = make_message(rng, pool, mid, folder, ts, target_size(rng, profile))
        yield folder, mid, flags, ts, data


def cmd_gen(a):
    rng = random.Random(a.seed)
    pool = TextPool(random.Random(a.seed ^ 0x5eed))
    owner = parse_owner(a.owner)
    made = set()
    total = 0
    for i, (folder, mid, flags, ts, data) in enumerate(
            generate(rng, pool, a.count, "m%d" % a.seed, a.profile,
                     EPOCH, 365 * 86400)):
        d = server_dir(a.dest, folder)
        if d not in made:
            ensure_maildir(d, owner)
            if folder != "INBOX":
                open(os.path.join(d, "maildirfolder"), "w").close()
            made.add(d)
        name = "%d.M%dP%d.bench:2,%s" % (ts, i, a.seed, flags)
        write_file(os.path.join(d, "cur", name), data, ts, owner)
        total += len(data)
    if a.profile != "flat":     # every folder exists, even if empty
        for folder, _ in FOLDERS:
            ensure_maildir(server_dir(a.dest, folder), owner)
    print("%d messages, %d bytes" % (a.count, total))


# --- server side ---

def doveadm(conf, *args, capture=False):
    r = subprocess.run(["doveadm", "-c", conf] + list(args),
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if r.returncode != 0:
        die("doveadm %s failed: %s" % (" ".join(args[:2]),
                                       r.stderr.decode(errors="replace").strip()))
    return r.stdout.decode("utf-8", errors="replace") if capture else None


def doveadm_batch(conf, user, cmds):
    """Run doveadm commands (lists of arguments, no -u) for USER in one
    doveadm process: "doveadm batch", one mail user, no start-up per command.
    """
    if not cmds:
        return
    sep = ";;"
    args = ["batch", "-u", user]
    for c in cmds:
        assert sep not in c
        args += [sep] + c
    doveadm(conf, *args)


def server_list(conf, user):
    """[(folder, uid, flagletters, message-id)] from doveadm fetch."""
    out = doveadm(conf, "-f", "tab", "fetch", "-u", user,
                  "mailbox uid flags hdr.message-id", "all", capture=True)
    res = []
    for n, line in enumerate(out.split("\n")):
        if n == 0 or not line:
            continue
        p = line.split("\t")
        if len(p) < 4:
            continue
        fl = "".join(sorted(FLAG_LETTERS[f] for f in p[2].split() if f in FLAG_LETTERS))
        res.append((p[0], int(p[1]), fl, p[3].strip()))
    return res


def uidset(uids):
    return ",".join(str(u) for u in sorted(uids))


def change_plan(rng, items, flag_pct, nexp, nmove):
    """Split shuffled ITEMS (sorted first) into flag/expunge/move sets."""
    items = sorted(items, key=lambda x: (x[0], x[-1]))
    shuffle(rng, items)
    nflag = int(round(len(items) * flag_pct / 100.0))
    flag = items[:nflag]
    exp = items[nflag:nflag + nexp]
    mov = items[nflag + nexp:nflag + nexp + nmove]
    return flag, exp, mov


def flag_toggle(rng, letters):
    """Return (letter, add?) for one flag change."""
    if "F" in letters:
        return "F", False
    if rng.random() < 0.5:
        return "F", True
    return "S", "S" not in letters


def folder_names():
    return [f for f, _ in FOLDERS]


def other_folder(rng, src, folders):
    cand = [f for f in folders if f != src]
    return pick(rng, cand)


def new_messages(seed, count, folders):
    rng = random.Random(seed)
    pool = TextPool(random.Random(seed ^ 0x5eed), 500)
    weights = [(f, w) for f, w in FOLDERS if f in folders] or [(folders[0], 1.0)]
    s = sum(w for _, w in weights)
    weights = [(f, w / s) for f, w in weights]
    out = []
    for i in range(count):
        folder = weighted(rng, weights)
        ts = EPOCH + 366 * 86400 + seed % 100000 * 60 + i * 30
        mid = "<new%d.%d.%08x@bench.example.org>" % (seed, i, rng.getrandbits(32))
        flags = flags_for(rng, folder)
        out.append((folder, mid, flags, ts,
                    make_message(rng, pool, mid, folder, ts, target_size(rng, "mixed"))))
    return out


def cmd_server_changes(a):
    rng = random.Random(a.seed)
    owner = parse_owner(a.owner)
    items = server_list(a.doveadm_conf, a.user)
    folders = sorted(set(x[0] for x in items) | set(
        l for l in doveadm(a.doveadm_conf, "mailbox", "list", "-u", a.user,
                           capture=True).split("\n") if l))
    flag, exp, mov = change_plan(rng, items, a.flag_pct, a.expunge, a.move)
    ops = defaultdict(list)     # (folder, op, flag) -> uids
    for folder, uid, letters, _ in flag:
        letter, add = flag_toggle(rng, letters)
        name = {"F": "\\Flagged", "S": "\\Seen"}[letter]
        ops[(folder, "add" if add else "remove", name)].append(uid)
    # The flag changes, then the expunges, then the moves, in this order,
    # all in one "doveadm batch".
    cmds = []
    for (folder, op, name), uids in sorted(ops.items()):
        cmds.append(["flags", op, name, "mailbox", folder, "uid", uidset(uids)])
    byf = defaultdict(list)
    for folder, uid, _, _ in exp:
        byf[folder].append(uid)
    for folder, uids in sorted(byf.items()):
        cmds.append(["expunge", "mailbox", folder, "uid", uidset(uids)])
    moves = defaultdict(list)
    for folder, uid, _, _ in mov:
        moves[(folder, other_folder(rng, folder, folders))].append(uid)
    for (src, dst), uids in sorted(moves.items()):
        cmds.append(["move", dst, "mailbox", src, "uid", uidset(uids)])
    doveadm_batch(a.doveadm_conf, a.user, cmds)
    touched = set()
    for i, (folder, mid, flags, ts, data) in enumerate(
            new_messages(a.seed, a.new, folders)):
        d = server_dir(a.maildir, folder)
        ensure_maildir(d, owner)
        write_file(os.path.join(d, "cur", "%d.M%dP%d.new:2,%s" % (ts, i, a.seed, flags)),
                   data, ts, owner)
        touched.add(folder)
    doveadm_batch(a.doveadm_conf, a.user,
                  [["force-resync", folder] for folder in sorted(touched)])
    print("server %s: %d flag changes, %d new, %d expunged, %d moved"
          % (a.user, len(flag), a.new, len(exp), len(mov)))


# --- local side ---

INFO_RE = re.compile(r":2,([A-Za-z]*)$")


def read_mid(path):
    try:
        with open(path, "rb") as f:
            head = f.read(16384)
    except OSError:
        return None
    end = head.find(b"\n\n")
    if end >= 0:
        head = head[:end]
    for line in head.split(b"\n"):
        if line[:11].lower() == b"message-id:":
            return line[11:].strip().decode("utf-8", errors="replace")
    return ""


def local_folders(root, layout):
    """{folder name: directory} for every Maildir under ROOT."""
    res = {}
    for dirpath, dirnames, _ in os.walk(root):
        if "cur" in dirnames and "new" in dirnames:
            rel = os.path.relpath(dirpath, root)
            if rel != ".":
                name = rel if layout == "verbatim" else rel.replace(".", "/")
                res[name] = dirpath
        dirnames[:] = [d for d in dirnames if d not in ("cur", "new", "tmp")]
    return res


def local_list(root, layout):
    """[(folder, path, sub, name, flagletters, message-id)]"""
    res = []
    for folder, d in sorted(local_folders(root, layout).items()):
        for sub in ("cur", "new"):
            p = os.path.join(d, sub)
            for name in sorted(os.listdir(p)):
                if name.startswith("."):
                    continue
                m = INFO_RE.search(name)
                fl = "".join(sorted(c for c in (m.group(1) if m else "") if c in "DFRST"))
                res.append((folder, os.path.join(p, name), sub, name, fl,
                            read_mid(os.path.join(p, name))))
    return res


def set_info(name, letters):
    base = INFO_RE.sub("", name)
    return base + ":2," + "".join(sorted(letters))


def cmd_local_changes(a):
    rng = random.Random(a.seed)
    items = local_list(a.root, a.layout)
    dirs = local_folders(a.root, a.layout)
    folders = sorted(dirs)
    if not items:
        die("no messages under " + a.root)
    keyed = [(x[0], x[1], x[2], x[3], x[4], x[5]) for x in items]
    keyed.sort(key=lambda x: (x[0], x[5], x[3]))
    shuffle(rng, keyed)
    nflag = int(round(len(keyed) * a.flag_pct / 100.0))
    flag = keyed[:nflag]
    exp = keyed[nflag:nflag + a.expunge]
    mov = keyed[nflag + a.expunge:nflag + a.expunge + a.move]
    for folder, path, sub, name, letters, _ in flag:
        letter, add = flag_toggle(rng, letters)
        new = set(letters)
        (new.add if add else new.discard)(letter)
        os.rename(path, os.path.join(dirs[folder], "cur", set_info(name, new)))
    for x in exp:
        os.unlink(x[1])
    for folder, path, sub, name, letters, _ in mov:
        dst = other_folder(rng, folder, folders)
        # A mail reader writes a new name when it moves a file; drop the
        # per-folder UID some synchronizers keep in the name (",U=123").
        os.rename(path, os.path.join(dirs[dst], sub, re.sub(r",U=\d+", "", name)))
    for i, (folder, mid, flags, ts, data) in enumerate(
            new_messages(a.seed, a.new, folders)):
        write_file(os.path.join(dirs[folder], "cur",
                                "%d.M%dP%d.localnew:2,%s" % (ts, i, a.seed, flags)),
                   data, ts, None)
    print("local %s: %d flag changes, %d new, %d deleted, %d moved"
          % (a.root, len(flag), a.new, len(exp), len(mov)))


def one_per_mid(items, key):
    """ITEMS with each Message-ID (KEY) once: the first in sort order. An
    earlier run's copies are in several folders, and two of them must not
    end up in one target folder."""
    seen = set()
    out = []
    for x in items:
        if x[key] not in seen:
            seen.add(x[key])
            out.append(x)
    return out


def cmd_copies(a):
    rng = random.Random(a.seed)
    # Server: N messages from the other folders, none already in the
    # target, copied by "doveadm copy" (Dovecot's UID COPY), by folder.
    srv = server_list(a.doveadm_conf, a.user)
    have = set(x[3] for x in srv if x[0] == a.server_to)
    cand = one_per_mid(sorted((x for x in srv if x[0] != a.server_to and
                               x[3] not in have), key=lambda x: (x[0], x[3])), 3)
    shuffle(rng, cand)
    byf = defaultdict(list)
    for folder, uid, _, _ in cand[:a.server]:
        byf[folder].append(uid)
    doveadm_batch(a.doveadm_conf, a.user,
                  [["copy", a.server_to, "mailbox", f, "uid", uidset(u)]
                   for f, u in sorted(byf.items())])
    # Local: N files from the other folders into the target's cur/.
    dirs = local_folders(a.root, a.layout)
    if a.local_to not in dirs:
        die("no local folder " + a.local_to)
    loc = local_list(a.root, a.layout)
    have = set(x[5] for x in loc if x[0] == a.local_to)
    cand = one_per_mid(sorted((x for x in loc if x[0] != a.local_to and
                               x[5] not in have),
                              key=lambda x: (x[0], x[5], x[3])), 5)
    shuffle(rng, cand)
    n = 0
    for i, (folder, path, sub, name, letters, _) in enumerate(cand[:a.local]):
        with open(path, "rb") as f:
            data = f.read()
        ts = os.stat(path).st_mtime
        write_file(os.path.join(dirs[a.local_to], "cur",
                                "%d.M%dP%d.localcopy:2,%s" % (ts, i, a.seed, letters)),
                   data, ts, None)
        n += 1
    print("server %s: %d copied into %s; local %s: %d copied into %s"
          % (a.user, sum(len(u) for u in byf.values()), a.server_to, a.root,
             n, a.local_to))


def cmd_verify(a):
    srv = server_list(a.doveadm_conf, a.user)
    loc = local_list(a.root, a.layout)
    problems = []
    s_by = defaultdict(Counter)
    l_by = defaultdict(Counter)
    for folder, _, fl, mid in srv:
        s_by[folder][(mid, fl)] += 1
    for folder, _, _, _, fl, mid in loc:
        l_by[folder][(mid, fl)] += 1
    for side, lst in (("server", [(x[0], x[3]) for x in srv]),
                      ("local", [(x[0], x[5]) for x in loc])):
        dup = [m for m, c in Counter(lst).items() if c > 1]
        if dup:
            problems.append("%s: %d duplicate Message-IDs in a folder, e.g. %s in %s"
                            % (side, len(dup), dup[0][1], dup[0][0]))
    for folder in sorted(set(s_by) | set(l_by)):
        s, l = s_by.get(folder, Counter()), l_by.get(folder, Counter())
        ns, nl = sum(s.values()), sum(l.values())
        if s == l:
            continue
        only_s = s - l
        only_l = l - s
        problems.append("%s: server %d, local %d; %d server-only, %d local-only; "
                        "e.g. %s / %s" % (folder, ns, nl, sum(only_s.values()),
                                          sum(only_l.values()),
                                          next(iter(only_s), "-"), next(iter(only_l), "-")))
    if a.report:
        with open(a.report, "w") as f:
            f.write("server %d messages, local %d messages\n" % (len(srv), len(loc)))
            for p in problems:
                f.write(p + "\n")
    print("no" if problems else "yes")


# --- report ---

STEPS = {
    "a": "(a) initial pull",
    "b": "(b) no-op resync",
    "c": "(c) after server changes",
    "d": "(d) after local changes",
    "e0": "(e0) initial pull, big folder",
    "e": "(e) no-op, big folder",
    "f": "(f) after copies",
}
PEERS = ["twinbox", "mbsync", "offlineimap"]


def fmt(v, digits=2):
    if v is None:
        return "fail"
    if abs(v) >= 100:
        return "%.0f" % v
    return "%.*f" % (digits, v)


def fmt_sig(v, sig=3):
    """V with SIG significant digits (0.0105, 0.112, 2.34, 13.1), whole
    numbers from 100 on: small wall times keep their digits."""
    if v is None:
        return "fail"
    if v == 0:
        return "0"
    digits = sig - 1 - math.floor(math.log10(abs(v)))
    if digits > 0 and abs(round(v, digits)) >= 10 ** (sig - digits):
        digits -= 1             # 9.996 rounds to 10.0, not 10.00
    if digits <= 0:
        return "%.0f" % v
    return "%.*f" % (digits, v)


def cmd_report(a):
    import csv
    import statistics
    rows = list(csv.DictReader(open(a.runs)))
    groups = defaultdict(list)
    for r in rows:
        groups[(r["step"], r["peer"])].append(r)
    summary = []
    for step in STEPS:
        med = {}
        for peer in PEERS:
            rs = groups.get((step, peer))
            if not rs:
                continue
            ok = [r for r in rs if r["status"] == "0"]
            failed = len(rs) - len(ok)

            def m(key, scale=1.0):
                if failed or not ok:
                    return None
                return statistics.median(float(r[key]) for r in ok) / scale
            e = {
                "step": step, "peer": peer, "runs": len(rs), "failed": failed,
                "wall": m("wall"), "cpu": m("cpu"), "rss": m("maxrss_kb", 1024.0),
                "up": m("bytes_up", 1048576.0), "down": m("bytes_down", 1048576.0),
                "agree": "%d/%d" % (sum(1 for r in rs if r["agree"] == "yes"), len(rs)),
                "rt": None,
            }
            if ok and not failed and all(r.get("round_trips") for r in ok):
                e["rt"] = statistics.median(float(r["round_trips"]) for r in ok)
            med[peer] = e
            summary.append(e)
        tb = med.get("twinbox")
        for e in med.values():
            for k in ("wall", "cpu"):
                base = tb[k] if tb else None
                e[k + "_ratio"] = (e[k] / base) if (base and e[k] is not None and base > 0) else None
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "peer", "runs", "failed_runs", "wall_s", "cpu_s",
                    "peak_rss_mib", "sent_mib", "received_mib", "agreed",
                    "wall_ratio_vs_twinbox", "cpu_ratio_vs_twinbox",
                    "round_trips"])
        for e in summary:
            w.writerow([e["step"], e["peer"], e["runs"], e["failed"]] +
                       ["fail" if e[k] is None else "%.4f" % e[k]
                        for k in ("wall", "cpu", "rss", "up", "down")] +
                       [e["agree"]] +
                       ["" if e[k] is None else "%.3f" % e[k]
                        for k in ("wall_ratio", "cpu_ratio")] +
                       ["" if e["rt"] is None else "%g" % e["rt"]])
    lines = []
    if a.title:
        lines += [a.title, ""]
    has_rt = any(r.get("round_trips") for r in rows)
    lines.append("| step | peer | wall s | CPU s | peak RSS MiB | sent MiB | received MiB "
                 + ("| round trips " if has_rt else "")
                 + "| agreed | wall ÷ twinbox | CPU ÷ twinbox |")
    lines.append("|---|---|--:|--:|--:|--:|--:|" + ("--:|" if has_rt else "")
                 + ":-:|--:|--:|")
    for e in summary:
        ratio = lambda k: "—" if e["peer"] == "twinbox" else (
            "n/a" if e[k] is None else "%.2f" % e[k])
        rt = ("| %s " % ("fail" if e["rt"] is None else "%g" % e["rt"])
              if has_rt else "")
        lines.append("| %s | %s | %s | %s | %s | %s | %s %s| %s | %s | %s |" % (
            STEPS[e["step"]], e["peer"], fmt_sig(e["wall"]), fmt(e["cpu"]),
            fmt(e["rss"], 1), fmt(e["up"]), fmt(e["down"]), rt, e["agree"],
            ratio("wall_ratio"), ratio("cpu_ratio")))
    text = "\n".join(lines) + "\n"
    with open(a.md, "w") as f:
        f.write(text)
    sys.stdout.write(text)


def main():
    p = argparse.ArgumentParser(description="contrib/bench helper")
    sp = p.add_subparsers(dest="cmd", required=True)
    g = sp.add_parser("gen")
    g.add_argument("--dest", required=True)
    g.add_argument("--count", type=int, required=True)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--profile", choices=["mixed", "flat"], default="mixed")
    g.add_argument("--owner")
    for name in ("server-changes", "local-changes"):
        c = sp.add_parser(name)
        c.add_argument("--seed", type=int, required=True)
        c.add_argument("--flag-pct", type=float, default=1.0)
        c.add_argument("--new", type=int, default=100)
        c.add_argument("--expunge", type=int, default=50)
        c.add_argument("--move", type=int, default=20)
        if name == "server-changes":
            c.add_argument("--user", required=True)
            c.add_argument("--doveadm-conf", required=True)
            c.add_argument("--maildir", required=True)
            c.add_argument("--owner")
        else:
            c.add_argument("--root", required=True)
            c.add_argument("--layout", choices=["verbatim", "dot"], required=True)
    c = sp.add_parser("copies")
    c.add_argument("--user", required=True)
    c.add_argument("--doveadm-conf", required=True)
    c.add_argument("--root", required=True)
    c.add_argument("--layout", choices=["verbatim", "dot"], required=True)
    c.add_argument("--seed", type=int, required=True)
    c.add_argument("--server", type=int, default=1000)
    c.add_argument("--local", type=int, default=200)
    c.add_argument("--server-to", default="Archive")
    c.add_argument("--local-to", default="Work")
    v = sp.add_parser("verify")
    v.add_argument("--user", required=True)
    v.add_argument("--doveadm-conf", required=True)
    v.add_argument("--root", required=True)
    v.add_argument("--layout", choices=["verbatim", "dot"], required=True)
    v.add_argument("--report")
    r = sp.add_parser("report")
    r.add_argument("--runs", required=True)
    r.add_argument("--csv", required=True)
    r.add_argument("--md", required=True)
    r.add_argument("--title")
    a = p.parse_args()
    {"gen": cmd_gen, "server-changes": cmd_server_changes,
     "local-changes": cmd_local_changes, "copies": cmd_copies,
     "verify": cmd_verify,
     "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
