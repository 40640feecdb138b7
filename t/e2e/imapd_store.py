"""
imapd_store: what imapd keeps on disk and shares with other programs.
UIDs and UIDVALIDITY stable across sessions and new mail; the UID index
(FOLDER/hermod-uidlist) removed -> every message still there, with
unique ascending UIDs, and the old UIDs kept unless UIDVALIDITY
changed; POP3 (popd, poplib) and IMAP on one Maildir: a message popd
deletes is gone in IMAP (and expunged in a selected session), POP3
UIDLs unchanged by IMAP sessions that read and flag; kill -9 of the
mail process in the middle of APPENDing a big message leaves no partial
message; CONDSTORE (RFC 7162): FETCH MODSEQ, CHANGEDSINCE, STORE
UNCHANGEDSINCE with [MODIFIED], HIGHESTMODSEQ growing; `imapd -i` on a
pipe and on a half-closed socket answering every command sent before
the end of its input.  Every wait has a time limit.
"""
import glob
import os
import poplib
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

from hermodtest import TAP, Instance, BUILDDIR, wait_until

from imaptest import IMAPD, enable_imap, tls_ctx, Raw, login, parse, fetch_items, fetches, crlf, uidset, untagged

POPD = os.path.join(BUILDDIR, "popd", "popd")
DOMAIN = "example.test"


def maildir_flags(path):
    """The flag letters of a Maildir file name ('' without :2,)."""
    n = os.path.basename(path)
    return n.split(":2,", 1)[1] if ":2," in n else ""


def enable_pop3(h):
    mc = os.path.join(h.dir, "master.conf")
    lines = [l for l in open(mc).read().splitlines() if not re.match(r"^#?\s*pop3s?\s", l)]
    lines.append("pop3 127.0.0.1:%d inet n - %s" % (h.port_base + 110, POPD))
    open(mc, "w").write("\n".join(lines) + "\n")


def msgid_uids(c):
    """{Message-ID: UID} of the selected folder, and the UIDVALIDITY."""
    unt, tl = c.cmd("FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    out = {}
    for v in fetches(unt).values():
        hv = [x for k, x in v.items() if k.startswith(b"BODY[HEADER.FIELDS")]
        m = re.search(rb"<[^>]+>", hv[0] if hv else b"")
        if m:
            out[m.group(0)] = int(v[b"UID"])
    return out


def select(c, box="INBOX"):
    """SELECT: (EXISTS, UIDVALIDITY, tagged line, untagged)."""
    unt, tl = c.cmd("SELECT " + box)
    ex = [int(l.split()[1]) for l in unt if re.match(rb"^\* \d+ EXISTS$", l)]
    uv = [int(re.match(rb"^\* OK \[UIDVALIDITY (\d+)\]", l).group(1)) for l in unt
          if re.match(rb"^\* OK \[UIDVALIDITY \d+\]", l)]
    return (ex[-1] if ex else None), (uv[0] if uv else None), tl, unt


def tcp_server_owners(server_port, client_port):
    """PIDs holding the server side of our loopback TCP connection."""
    inodes = []
    for tab in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(tab).read().splitlines()[1:]
        except OSError:
            continue
        for l in lines:
            f = l.split()
            if int(f[1].split(":")[1], 16) == server_port and int(f[2].split(":")[1], 16) == client_port:
                inodes.append("socket:[%s]" % f[9])
    out = set()
    for fd in glob.glob("/proc/[0-9]*/fd/*"):
        try:
            if os.readlink(fd) in inodes:
                out.add(int(fd.split("/")[2]))
        except OSError:
            pass
    return sorted(out)


def proc_children(pid):
    out = []
    for st in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(st) as f:
                fields = f.read().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            out.append(int(st.split("/")[2]))
    return out


def msg(i, extra=b""):
    return (b"From: sender%d@example.test\nTo: alice@example.test\nSubject: S%03d\n"
            b"Message-ID: <s%d@example.test>\n\nbody %d\n" % (i, i, i, i)) + extra


t = TAP()
with Instance(users=["alice", "bob"], start=False) as h:
    enable_imap(h)
    enable_pop3(h)
    h.start()
    port = h.port_base + 143
    t.ok(wait_until(lambda: h.pids("imap") and h.pids("pop3"), 10), "imap and pop3 services running",
         h.log()[-3000:])
    for i in range(1, 7):
        h.sendmail(["-i", "alice@" + DOMAIN], msg(i))
        h.wait_messages("alice", i)
    t.is_(len(h.message_files("alice")), 6, "6 messages delivered")
    p = poplib.POP3("127.0.0.1", h.port_base + 110, timeout=15)
    p.user("alice")
    p.pass_("secret")
    uidl0 = [l.split()[1] for l in p.uidl()[1]]
    p.quit()

    # UIDs stable across sessions and new mail
    try:
        c = login(port)
    except (OSError, EOFError, RuntimeError) as e:
        t.ok(False, "IMAP login", "%r\n%s" % (e, h.log()[-3000:]))
        t.done()
    ex, uv0, tl, _ = select(c)
    t.is_(ex, 6, "SELECT: 6 EXISTS")
    map0 = msgid_uids(c)
    t.is_(len(map0), 6, "6 Message-IDs with UIDs")
    t.is_(len(set(map0.values())), 6, "UIDs unique")
    # read and flag some: files move to cur/ and are renamed
    c.cmd("FETCH 1:3 BODY[]")
    c.cmd("STORE 2 +FLAGS (\\Flagged $Work)")
    c.ok("LOGOUT")
    c.close()
    h.sendmail(["-i", "alice@" + DOMAIN], msg(7))
    h.wait_messages("alice", 7)
    c = login(port)
    ex, uv1, tl, _ = select(c)
    map1 = msgid_uids(c)
    t.is_(uv1, uv0, "UIDVALIDITY unchanged across sessions and new mail")
    t.is_({k: v for k, v in map1.items() if k in map0}, map0, "old messages keep their UIDs")
    new = map1.get(b"<s7@example.test>", 0)
    t.ok(new > max(map0.values() or [0]), "a new message gets a higher UID", map1)
    unt, _ = c.cmd("UID FETCH %d FLAGS" % map0.get(b"<s2@example.test>", 0))
    t.is_(sorted(x.lower() for x in (list(fetches(unt).values()) or [{}])[0].get(b"FLAGS", [])),
          [b"$work", b"\\flagged", b"\\seen"], "flags and keyword kept across sessions", unt)
    c.ok("LOGOUT")
    c.close()

    # POP3 UIDLs unchanged by the IMAP sessions
    p = poplib.POP3("127.0.0.1", h.port_base + 110, timeout=15)
    p.user("alice")
    p.pass_("secret")
    uidl1 = [l.split()[1] for l in p.uidl()[1]]
    t.is_(uidl1[:6], uidl0, "POP3 UIDLs unchanged after IMAP sessions that read, flag and rename")
    t.is_(len(uidl1), 7, "POP3 sees the 7 messages")
    # which POP3 message is <s4>?  delete it (and <s5>) with POP3 while an
    # IMAP session has INBOX selected
    c = login(port)
    select(c)
    n4 = n5 = None
    for n in range(1, 8):
        top = b"\n".join(p.top(n, 0)[1])
        if b"<s4@example.test>" in top:
            n4 = n
        if b"<s5@example.test>" in top:
            n5 = n
    t.ok(n4 and n5, "POP3 finds <s4> and <s5>")
    p.dele(n4 or 1)
    p.dele(n5 or 2)
    p.quit()
    t.is_(len(h.message_files("alice")), 5, "POP3 DELE+QUIT removed 2 files")
    unt, tl = c.cmd("NOOP")
    exp = [l for l in unt if re.match(rb"^\* \d+ EXPUNGE$", l)]
    t.is_(len(exp), 2, "the selected IMAP session is told 2 EXPUNGEs", unt)
    m2 = msgid_uids(c)
    t.ok(b"<s4@example.test>" not in m2 and b"<s5@example.test>" not in m2 and len(m2) == 5,
         "the POP3-deleted messages are gone in IMAP", m2)
    t.is_({k: v for k, v in m2.items()}, {k: v for k, v in map1.items() if k not in (b"<s4@example.test>",
                                                                                 b"<s5@example.test>")},
          "the others keep their UIDs")
    c.ok("LOGOUT")
    c.close()

    # the metadata cache (hermod-cache): written after a FETCH of
    # ENVELOPE/BODYSTRUCTURE, the next session's answers are the same
    # bytes, and a garbled or removed cache changes nothing
    cache = os.path.join(h.maildir("alice"), "hermod-cache")
    items = "UID FETCH 1:* (UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE BODY)"
    c = login(port)
    select(c)
    first = c.cmd(items)
    c.ok("LOGOUT")
    c.close()
    # written when the session closes the folder, after its LOGOUT reply
    wait_until(lambda: os.path.exists(cache), 10)
    t.ok(os.path.exists(cache) and open(cache, "rb").read(4) == b"HC2\n",
         "a session that fetched ENVELOPE/BODYSTRUCTURE leaves hermod-cache", os.listdir(h.maildir("alice")))
    c = login(port)
    select(c)
    again = c.cmd(items)
    c.ok("LOGOUT")
    c.close()
    t.ok(first[0] and again == first, "from the cache: the same FETCH answers, byte for byte")
    for what, content in (("garbled", b"HC1\nfoo 15 1 2 3 999999 0 0\n" + os.urandom(300)),
                          ("forged lengths", b"HC1\n" + b"x 15 1 1 0 4 4 4\n(aa)(bb)(cc)\n" * 3)):
        with open(cache, "wb") as f:
            f.write(content)
        c = login(port)
        select(c)
        got = c.cmd(items)
        c.ok("LOGOUT")
        c.close()
        t.ok(got == first, "a %s cache: the answers are unchanged" % what)
    os.unlink(cache)
    c = login(port)
    select(c)
    got = c.cmd(items)
    c.ok("LOGOUT")
    c.close()
    t.ok(got == first and wait_until(lambda: os.path.exists(cache), 10),
         "cache removed: the same answers, and the cache is written again")
    # SEARCH by header keys: the first search reads the messages and the
    # cache keeps their header sections (item 16), the next session
    # answers from them with the same results
    searches = ["UID SEARCH FROM \"example.test\"", "UID SEARCH SUBJECT \"s\"",
                "UID SEARCH HEADER Message-ID \"s3@\"", "UID SEARCH NOT FROM \"nobody\"",
                "UID SEARCH SENTSINCE 1-Jan-2000 TO \"alice\"", "UID SEARCH OR BODY \"zz\" FROM \"s2\""]

    def run_searches():
        c = login(port)
        select(c)
        out = [c.cmd(q) for q in searches]
        c.ok("LOGOUT")
        c.close()
        return out
    os.unlink(cache)
    cold = run_searches()
    wait_until(lambda: os.path.exists(cache), 10)
    def header_entries():
        try:
            data = open(cache, "rb").read()
        except OSError:
            return 0
        return len(re.findall(rb"(?m)^\S+ (\d+) \d+ -?\d+ -?\d+ \d+ \d+ \d+ [1-9]\d*$", data))
    t.ok(wait_until(lambda: header_entries() > 0, 10),
         "after SEARCH FROM: hermod-cache keeps header sections (%d entries)" % header_entries())
    warm = run_searches()
    t.ok(all(r[1].split()[1] == b"OK" for r in cold) and warm == cold and
         any(re.search(rb"SEARCH \d", b" ".join(r[0])) for r in cold),
         "SEARCH by header keys from the cache: the same answers", (cold, warm))

    # the UID index removed: rebuilt
    idx = os.path.join(h.maildir("alice"), "hermod-uidlist")
    t.ok(os.path.exists(idx), "INBOX has its index hermod-uidlist", os.listdir(h.maildir("alice")))
    if os.path.exists(idx):
        os.unlink(idx)
    c = login(port)
    ex, uv2, tl, _ = select(c)
    m3 = msgid_uids(c)
    t.is_(sorted(m3), sorted(m2), "index removed: every message still listed")
    u = [m3[k] for k in sorted(m3, key=lambda k: m3[k])]
    t.ok(len(set(u)) == len(u), "index removed: UIDs unique", m3)
    if uv2 == uv1:
        t.is_(m3, m2, "index removed, UIDVALIDITY kept: so are the UIDs")
    else:
        t.ok(uv2 is not None and uv2 != uv1, "index removed: a new UIDVALIDITY (%s -> %s)" % (uv1, uv2))
    unt, tl = c.cmd("UID FETCH %d FLAGS" % m3.get(b"<s2@example.test>", 0))
    fl = sorted(x.lower() for x in (list(fetches(unt).values()) or [{}])[0].get(b"FLAGS", []))
    t.ok(b"\\flagged" in fl and b"\\seen" in fl, "index removed: system flags kept (they are in the file names)", fl)
    t.ok(os.path.exists(idx), "the index is written again")
    c.ok("LOGOUT")
    c.close()
    c = login(port)
    ex, uv3, tl, _ = select(c)
    t.is_((uv3, msgid_uids(c)), (uv2, m3), "after the rebuild: UIDVALIDITY and UIDs stable again")
    c.ok("LOGOUT")
    c.close()

    # kill -9 of the mail process during a big APPEND
    before = sorted(os.path.basename(p).split(":")[0] for p in h.message_files("alice"))
    size = 8 << 20
    c = login(port)
    cport = c.s.getsockname()[1]
    # right after the login the socket is still being handed over
    mail_pids = wait_until(lambda: (lambda o: o if len(o) == 1 else None)(tcp_server_owners(port, cport)), 5) \
        or tcp_server_owners(port, cport)
    t.is_(len(mail_pids), 1, "one process holds the session's socket after a plaintext login", mail_pids)
    tag = c.tag()
    c.send(tag.encode() + b" APPEND INBOX {%d}\r\n" % size)
    l = c.line()
    t.ok(l.startswith(b"+"), "APPEND of %d bytes: continuation" % size, l)
    big = b"Subject: partial\r\nMessage-ID: <partial@example.test>\r\n\r\n" + (b"z" * 78 + b"\r\n") * (size // 80)
    big = big[:size]
    c.s.sendall(big[:size // 2])
    time.sleep(0.5)
    for pid in mail_pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    t.ok(c.closed(10), "the connection ends when the mail process is killed")
    c.close()
    time.sleep(0.5)
    after = sorted(os.path.basename(p).split(":")[0] for p in h.message_files("alice"))
    t.is_(after, before, "no message (partial or whole) appeared in new/ or cur/")
    c = login(port)
    ex, uv4, tl, _ = select(c)
    t.is_((ex, uv4), (5, uv2), "after the kill: 5 messages, same UIDVALIDITY")
    m4 = msgid_uids(c)
    t.is_(m4, m3, "after the kill: the same messages and UIDs, no partial one")
    unt, tl = c.cmd("SEARCH SUBJECT partial")
    t.is_(unt, [b"* SEARCH"], "no message with the partial's subject")
    # a whole big APPEND afterwards works
    tag = c.tag()
    c.send(tag.encode() + b" APPEND INBOX {%d+}\r\n" % size)
    c.s.sendall(big + b"\r\n")
    c.s.settimeout(60)
    unt, tl = c.response(tag)
    t.ok(re.match(rb"^T\d+ OK \[APPENDUID \d+ \d+\]", tl), "a whole %d-byte APPEND: OK [APPENDUID]" % size, tl)
    unt, tl = c.cmd("FETCH * (RFC822.SIZE)")
    t.is_([v.get(b"RFC822.SIZE") for v in fetches(unt).values()], [str(size).encode()], "its RFC822.SIZE")
    c.ok("LOGOUT")
    c.close()

    # CONDSTORE
    c = login(port)
    unt, tl = c.cmd("SELECT INBOX (CONDSTORE)")
    hm = [int(re.match(rb"^\* OK \[HIGHESTMODSEQ (\d+)\]", l).group(1)) for l in unt
          if re.match(rb"^\* OK \[HIGHESTMODSEQ \d+\]", l)]
    t.ok(len(hm) == 1 and hm[0] > 0 and tl.startswith(b"T%d OK" % c.n), "SELECT (CONDSTORE): HIGHESTMODSEQ", unt)
    hm0 = hm[0] if hm else 0
    unt, tl = c.cmd("FETCH 1:* (MODSEQ)")
    ms = {n: int(v[b"MODSEQ"][0]) for n, v in fetches(unt).items() if isinstance(v.get(b"MODSEQ"), list)}
    t.is_(len(ms), 6, "FETCH (MODSEQ) for each message", unt)
    t.ok(ms and max(ms.values()) <= hm0, "no MODSEQ above HIGHESTMODSEQ", (ms, hm0))
    unt, tl = c.cmd("STORE 1 +FLAGS (\\Answered)")
    f = fetches(unt).get(1, {})
    m1 = int(f[b"MODSEQ"][0]) if isinstance(f.get(b"MODSEQ"), list) else 0
    t.ok(m1 > hm0 and b"\\Answered" in f.get(b"FLAGS", []), "STORE with CONDSTORE: FETCH has FLAGS and a new MODSEQ",
         unt)
    unt, tl = c.cmd("STATUS INBOX (HIGHESTMODSEQ)")
    m = re.search(rb"HIGHESTMODSEQ (\d+)", b" ".join(unt))
    t.is_(int(m.group(1)) if m else None, m1, "HIGHESTMODSEQ grew to the new MODSEQ")
    unt, tl = c.cmd("STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)" % hm0)
    t.ok(re.match(rb"^T\d+ OK \[MODIFIED 1\]", tl), "STORE UNCHANGEDSINCE an older MODSEQ: OK [MODIFIED 1]", (unt, tl))
    unt, tl = c.cmd("FETCH 1 (FLAGS MODSEQ)")
    f = fetches(unt).get(1, {})
    t.ok(b"\\Flagged" not in f.get(b"FLAGS", []) and int(f.get(b"MODSEQ", [0])[0]) == m1,
         "the refused STORE changed nothing", unt)
    unt, tl = c.cmd("STORE 1,2 (UNCHANGEDSINCE %d) +FLAGS ($Cond)" % m1)
    f = fetches(unt)
    t.ok(tl.startswith(b"T%d OK" % c.n) and b"MODIFIED" not in tl and 1 in f and 2 in f,
         "STORE UNCHANGEDSINCE the current MODSEQ: done", (unt, tl))
    m2v = max(int(v[b"MODSEQ"][0]) for v in f.values()) if f and all(b"MODSEQ" in v for v in f.values()) else 0
    t.ok(m2v > m1, "MODSEQ grows again", f)
    unt, tl = c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % m1)
    t.is_(sorted(fetches(unt)), [1, 2], "FETCH (CHANGEDSINCE) answers only the changed messages", unt)
    unt, tl = c.cmd("UID SEARCH MODSEQ %d" % (m1 + 1))
    t.ok(tl.startswith(b"T%d OK" % c.n) and unt and re.match(rb"^\* SEARCH( \d+){2} \(MODSEQ \d+\)$", unt[0]),
         "SEARCH MODSEQ finds the 2 changed messages with (MODSEQ n)", unt)
    c.ok("LOGOUT")
    c.close()
    c = login(port)
    unt, tl = c.cmd("STATUS INBOX (HIGHESTMODSEQ)")
    m = re.search(rb"HIGHESTMODSEQ (\d+)", b" ".join(unt))
    t.is_(int(m.group(1)) if m else None, m2v, "HIGHESTMODSEQ kept in a new session")
    c.ok("LOGOUT")
    c.close()

    # imapd -i on a pipe: everything sent before EOF is answered
    pipe_errs = []

    def imapd_pipe(data, limit=30, opts=()):
        try:
            p = subprocess.Popen([IMAPD, "-i", "-C", h.dir] + list(opts), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=h.env())
        except OSError as e:
            return [], None, repr(e).encode()
        out = []
        rd = threading.Thread(target=lambda: out.append(p.stdout.read()))
        rd.start()
        try:
            p.stdin.write(data)
            p.stdin.close()
        except BrokenPipeError:
            pass
        try:
            p.wait(limit)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
            rc = None
        rd.join(10)
        err = p.stderr.read()
        p.stderr.close()
        pipe_errs.extend(l for l in err.splitlines() if b"Sanitizer" in l or b"runtime error:" in l)
        return (out[0] if out else b"").split(b"\r\n"), rc, err

    def tags_in(lines):
        return [l.split(b" ")[0] for l in lines if l and not l.startswith(b"*") and not l.startswith(b"+")]

    cmds = (b"a CAPABILITY\r\nb LOGIN alice secret\r\nc SELECT INBOX\r\nd FETCH 1 (UID FLAGS)\r\n"
            b"e UID SEARCH ALL\r\nf NOOP\r\ng LOGOUT\r\n")
    lines, rc, err = imapd_pipe(cmds)
    t.ok(lines and lines[0].startswith(b"* OK"), "imapd -i: greeting", lines[:3])
    t.is_(tags_in(lines), [b"a", b"b", b"c", b"d", b"e", b"f", b"g"], "imapd -i: every command answered in order",
          b"\n".join(lines[-20:]) + err[-2000:])
    tl = [l for l in lines if l[:2] in (b"a ", b"b ", b"c ", b"d ", b"e ", b"f ", b"g ")]
    t.ok(len(tl) == 7 and all(re.match(rb"^[a-g] OK", l) for l in tl), "imapd -i: all 7 answered OK", lines)
    t.ok(b"* 6 EXISTS" in lines, "imapd -i: SELECT sees 6 messages", lines)
    t.ok(any(l.startswith(b"* BYE") for l in lines) and lines[-1] == b"", "imapd -i: BYE at LOGOUT", lines[-4:])
    t.is_(rc, 0, "imapd -i exits 0", err[-2000:])
    # no LOGOUT: the end of input ends the session after the answers
    lines, rc, err = imapd_pipe(b"a LOGIN alice secret\r\nb SELECT INBOX\r\nc FETCH 1:* (FLAGS)\r\nd NOOP\r\n")
    t.is_(tags_in(lines), [b"a", b"b", b"c", b"d"], "imapd -i without LOGOUT: every command answered",
          b"\n".join(lines[-10:]) + err[-2000:])
    t.ok(rc is not None, "imapd -i without LOGOUT: exits at the end of input", rc)
    # a wrong password, then more commands
    lines, rc, err = imapd_pipe(b"a LOGIN alice wrong\r\nb LOGIN alice secret\r\nc STATUS INBOX (MESSAGES)\r\n")
    t.ok(tags_in(lines) == [b"a", b"b", b"c"] and any(l.startswith(b"a NO [AUTHENTICATIONFAILED]") for l in lines)
         and (b"* STATUS INBOX (MESSAGES 6)" in lines or b'* STATUS "INBOX" (MESSAGES 6)' in lines), "imapd -i: a wrong password, a good one, STATUS", lines)
    # a long command stream (more than one read)
    many = b"a LOGIN alice secret\r\nb SELECT INBOX\r\n" + b"".join(b"n%d NOOP\r\n" % i for i in range(3000)) \
        + b"z LOGOUT\r\n"
    lines, rc, err = imapd_pipe(many, 60, ["-o", "imap_command_rate_limit=0"])
    tg = tags_in(lines)
    t.ok(len(tg) == 3003 and tg[-1] == b"z", "imapd -i: 3003 pipelined commands answered (got %d)" % len(tg),
         b"\n".join(lines[-5:]) + err[-2000:])
    nok = [l for l in lines if re.match(rb"^n\d+ ", l) and not re.match(rb"^n\d+ OK", l)]
    t.ok(not nok, "imapd -i: the 3000 NOOPs all OK (rate limit off)", nok[:3])
    # imap_command_rate_limit: past it NO [LIMIT], and after
    # imap_error_limit such answers BYE (a low limit: syncing the folder
    # after each command makes a few hundred a second the real rate)
    many = b"a LOGIN alice secret\r\nb SELECT INBOX\r\n" + b"".join(b"n%d NOOP\r\n" % i for i in range(100)) \
        + b"z LOGOUT\r\n"
    lines, rc, err = imapd_pipe(many, 30, ["-o", "imap_command_rate_limit=10", "-o", "imap_error_limit=5"])
    ans = [l.split(b" ", 2) for l in lines if re.match(rb"^n\d+ ", l)]
    want = [[b"n%d" % i, b"OK"] for i in range(9)] + [[b"n%d" % i, b"NO", b"[LIMIT]"] for i in range(9, 14)]
    t.is_([a[:2] if a[1] == b"OK" else a[:2] + [a[2].split(b" ")[0]] for a in ans], want,
          "imap_command_rate_limit=10 (SELECT is the first): 9 NOOPs OK, then 5 NO [LIMIT] "
          "(imap_error_limit=5), then no more", b"\n".join(lines[-8:]))
    t.ok(any(l.startswith(b"* BYE") for l in lines) and not any(l.startswith(b"z ") for l in lines),
         "then * BYE and the end: the LOGOUT behind them is not answered", lines[-4:])
    # on a socket with a half-close (what inetd passes)
    a, b = socket.socketpair()
    got = b""
    try:
        p = subprocess.Popen([IMAPD, "-i", "-C", h.dir], stdin=b, stdout=b, stderr=subprocess.PIPE, env=h.env())
    except OSError as e:
        p = None
        got = repr(e).encode()
    b.close()
    a.settimeout(30)
    try:
        a.sendall(cmds)
        a.shutdown(socket.SHUT_WR)
        while True:
            d = a.recv(65536)
            if not d:
                break
            got += d
    except (socket.timeout, OSError) as e:
        got += repr(e).encode()
    a.close()
    if p:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
        p.stderr.close()
    t.is_(tags_in(got.split(b"\r\n")), [b"a", b"b", b"c", b"d", b"e", b"f", b"g"],
          "imapd -i on a half-closed socket: every command answered", got[-1500:])
    # a sanitizer build reports memory errors and leaks in the log
    bad = [l for l in h.log().splitlines() if "Sanitizer" in l or "runtime error:" in l]
    t.ok(not bad, "no sanitizer report in the instance log", "\n".join(bad[:20]))
    t.ok(not pipe_errs, "no sanitizer report from imapd -i", b"\n".join(pipe_errs[:20]))
t.done()
