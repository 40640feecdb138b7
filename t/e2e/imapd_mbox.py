"""
imapd_mbox: the mbox INBOX of a system user (mail_spool_directory/NAME)
served by imapd beside local and popd.  SELECT of mail that local
delivered; FETCH BODY[] byte for byte (CRLF) without the X-UID, X-IMAPbase,
Status, X-Status, X-Keywords, X-UIDL fields, RFC822.SIZE that of what is
sent; STORE kept in the file (Status/X-Status/X-Keywords) across
sessions; UIDs and UIDVALIDITY stable across sessions, new mail and a
POP3 session that deletes a message; POP3 UIDLs unchanged by IMAP
sessions; mail delivered during IDLE announced (EXISTS); APPEND with
APPENDUID; EXPUNGE; COPY to a Maildir folder and back; RENAME INBOX;
popd holding the
mbox locks -> NO [INUSE] and the IMAP session survives.  Root only (a
system user with a password).  Every wait has a time limit.
"""
import os
import poplib
import re
import subprocess

from hermodtest import TAP, Instance, SystemUser, BUILDDIR, wait_until
from imaptest import enable_imap, Raw, fetches, crlf

POPD = os.path.join(BUILDDIR, "popd", "popd")
PW = "Mbox-imap1"
OURS = (b"x-uid", b"x-imapbase", b"x-imap", b"status", b"x-status", b"x-keywords", b"x-uidl")


def enable_pop3(h):
    mc = os.path.join(h.dir, "master.conf")
    lines = [l for l in open(mc).read().splitlines() if not re.match(r"^#?\s*pop3s?\s", l)]
    lines.append("pop3 127.0.0.1:%d inet n - %s" % (h.port_base + 110, POPD))
    open(mc, "w").write("\n".join(lines) + "\n")


def mbox_messages(path):
    """The messages of an mbox file as (header fields dict lower-case ->
    list of values, bytes without our fields, as IMAP should send them)."""
    data = open(path, "rb").read()
    out = []
    if not data:
        return out
    parts = re.split(rb"\n\n(?=From )", data)
    for k, p in enumerate(parts):
        body = p.split(b"\n", 1)[1] if b"\n" in p else b""
        if k == len(parts) - 1 and body.endswith(b"\n\n"):
            body = body[:-1]
        elif k < len(parts) - 1:
            body += b"\n"
        hdr, sep, rest = body.partition(b"\n\n")
        fields, kept, cur = {}, [], None
        for line in hdr.split(b"\n"):
            if line[:1] in (b" ", b"\t") and cur is not None:
                if cur[1]:
                    kept.append(line)
                continue
            name = line.split(b":", 1)[0].lower()
            fields.setdefault(name, []).append(line.split(b":", 1)[1].strip() if b":" in line else b"")
            cur = (name, name not in OURS)
            if cur[1]:
                kept.append(line)
        out.append((fields, b"\n".join(kept) + sep + rest if sep else b"\n".join(kept)))
    return out


def login(port, user):
    c = Raw(port)
    c.line()
    r = c.ok("LOGIN %s %s" % (user, PW))
    if not r.startswith(b"OK"):
        raise RuntimeError("LOGIN: %r" % r)
    return c


def select(c, box="INBOX"):
    unt, tl = c.cmd("SELECT " + box)
    ex = [int(l.split()[1]) for l in unt if re.match(rb"^\* \d+ EXISTS$", l)]
    uv = [int(re.match(rb"^\* OK \[UIDVALIDITY (\d+)\]", l).group(1)) for l in unt
          if re.match(rb"^\* OK \[UIDVALIDITY \d+\]", l)]
    return (ex[-1] if ex else None), (uv[0] if uv else None), tl, unt


def msgid_uids(c):
    unt, tl = c.cmd("FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    out = {}
    for v in fetches(unt).values():
        hv = [x for k, x in v.items() if k.startswith(b"BODY[HEADER.FIELDS")]
        m = re.search(rb"<[^>]+>", hv[0] if hv else b"")
        if m:
            out[m.group(0)] = int(v[b"UID"])
    return out


def pop_uidls(h, user):
    p = poplib.POP3("127.0.0.1", h.port_base + 110, timeout=15)
    p.user(user)
    p.pass_(PW)
    u = [l.split()[1] for l in p.uidl()[1]]
    p.quit()
    return u


def msg(i, extra=b""):
    return (b"From: sender%d@example.test\nSubject: M%d\nMessage-ID: <m%d@example.test>\n\n"
            b"body %d\n" % (i, i, i, i)) + extra


t = TAP()
if os.geteuid() != 0:
    t.skip("mbox INBOX in imapd", "system users with passwords need a privileged (root) instance")
    t.done()

with SystemUser() as su, Instance(users=[], start=False) as h:
    spool = os.path.join(h.dir, "mailspool")
    os.makedirs(spool)
    os.chmod(spool, 0o1777)
    folders = os.path.join(h.dir, "sysfolders")
    os.makedirs(folders)
    os.chown(folders, su.pw.pw_uid, su.pw.pw_gid)
    h.set_conf({"mail_spool_directory": spool, "imap_folder_directory": folders + "/Maildir"})
    subprocess.run(["chpasswd"], input=("%s:%s\n" % (su.name, PW)).encode(), check=True, timeout=30)
    enable_imap(h)
    enable_pop3(h)
    h.start()
    port = h.port_base + 143
    t.ok(wait_until(lambda: h.pids("imap") and h.pids("pop3"), 10), "imap and pop3 running", h.log()[-3000:])
    mbox = os.path.join(spool, su.name)
    rcpt = su.name + "@example.test"
    for i in range(1, 4):
        h.sendmail(["-i", rcpt], msg(i, b"From the start of a line\n" if i == 2 else b""))
        wait_until(lambda: os.path.exists(mbox) and open(mbox, "rb").read().count(b"Message-ID:") >= i, 10)
    t.is_(open(mbox, "rb").read().count(b"Message-ID:") if os.path.exists(mbox) else 0, 3,
          "local delivered 3 messages to the mbox", h.log()[-3000:])
    uidl0 = pop_uidls(h, su.name)
    t.is_(len(uidl0), 3, "POP3 sees 3 messages")

    try:
        c = login(port, su.name)
    except (OSError, EOFError, RuntimeError) as e:
        t.ok(False, "IMAP login of the system user", "%r\n%s" % (e, h.log()[-3000:]))
        t.done()
    ex, uv0, tl, unt = select(c)
    t.ok(tl.split(b" ", 1)[1].startswith(b"OK [READ-WRITE]"), "SELECT INBOX (mbox) read-write", tl)
    t.is_(ex, 3, "3 EXISTS")
    t.ok(any(b"NOMODSEQ" in l for l in unt), "NOMODSEQ", unt)
    t.ok(any(re.match(rb"^\* 3 RECENT$", l) for l in unt), "3 RECENT", unt)
    map0 = msgid_uids(c)
    t.is_(sorted(map0.values()), [1, 2, 3], "UIDs 1 2 3", map0)
    data = open(mbox, "rb").read()
    t.ok(data.count(b"\nX-UID: ") == 3 and b"X-IMAPbase: %d " % (uv0 or 0) in data,
         "SELECT wrote X-UID and X-IMAPbase", data[:600])
    unt, tl = c.cmd("FETCH 1:3 (RFC822.SIZE BODY.PEEK[])")
    f = fetches(unt)
    want = mbox_messages(mbox)
    for n in (1, 2, 3):
        body = f.get(n, {}).get(b"BODY[]", b"")
        t.is_(body, crlf(want[n - 1][1]) if len(want) >= n else None, "FETCH %d BODY[] byte for byte" % n)
        t.ok(not re.search(rb"(?im)^(x-uid|x-imapbase|status|x-status|x-keywords|x-uidl):", body),
             "message %d: no status headers shown" % n)
        t.is_(int(f.get(n, {}).get(b"RFC822.SIZE", b"0")), len(body), "RFC822.SIZE %d = what is sent" % n)
    t.ok(b"\r\n>From the start of a line\r\n" in f.get(2, {}).get(b"BODY[]", b""),
         "a quoted From line is shown as stored")
    t.ok(c.ok("STORE 1 +FLAGS (\\Flagged \\Seen)").startswith(b"OK"), "STORE 1 \\Flagged \\Seen")
    t.ok(c.ok("STORE 2 +FLAGS (\\Answered $Work)").startswith(b"OK"), "STORE 2 \\Answered $Work")
    c.ok("LOGOUT")
    c.close()
    want = mbox_messages(mbox)
    t.ok(len(want) == 3 and want[0][0].get(b"status") == [b"RO"] and
         want[0][0].get(b"x-status", [b""])[0].strip() == b"F", "message 1: Status RO, X-Status F in the file",
         [w[0] for w in want])
    t.ok(len(want) == 3 and want[1][0].get(b"x-status", [b""])[0].strip() == b"A" and
         want[1][0].get(b"x-keywords") == [b"$Work"], "message 2: X-Status A, X-Keywords $Work")

    # new mail between sessions; a second session
    h.sendmail(["-i", rcpt], msg(4))
    wait_until(lambda: open(mbox, "rb").read().count(b"Message-ID:") >= 4, 10)
    c = login(port, su.name)
    ex, uv1, tl, unt = select(c)
    t.is_(uv1, uv0, "UIDVALIDITY unchanged across sessions and new mail")
    map1 = msgid_uids(c)
    t.is_({k: v for k, v in map1.items() if k in map0}, map0, "UIDs unchanged across sessions")
    t.is_(map1.get(b"<m4@example.test>"), 4, "the new message gets UID 4")
    unt, tl = c.cmd("FETCH 1:2 FLAGS")
    fl = {n: sorted(x.lower() for x in v.get(b"FLAGS", [])) for n, v in fetches(unt).items()}
    t.is_(fl.get(1), [b"\\flagged", b"\\seen"], "flags of 1 kept across sessions", unt)
    t.is_(fl.get(2), [b"$work", b"\\answered"], "flags and keyword of 2 kept across sessions", unt)

    # IDLE: local delivers, the session hears EXISTS
    tag = c.tag()
    c.send(tag.encode() + b" IDLE\r\n")
    t.ok(c.line().startswith(b"+"), "IDLE accepted")
    h.sendmail(["-i", rcpt], msg(5))
    got = b""
    try:
        c.s.settimeout(15)
        got = c.line()
    except OSError as e:
        got = repr(e).encode()
    t.is_(got, b"* 5 EXISTS", "mail delivered during IDLE: EXISTS", h.log()[-2000:])
    c.send(b"DONE\r\n")
    unt, tl = c.response(tag)
    t.ok(tl.split(b" ", 1)[1].startswith(b"OK"), "IDLE done", tl)
    map2 = msgid_uids(c)
    t.is_(map2.get(b"<m5@example.test>"), 5, "the IDLE message has UID 5")

    # APPEND
    m6 = crlf(msg(6, b"From inside\n"))
    c.send(b"A1 APPEND INBOX (\\Seen) {%d}\r\n" % len(m6))
    t.ok(c.line().startswith(b"+"), "APPEND literal accepted")
    c.send(m6 + b"\r\n")
    unt0, tl = c.response("A1")
    m = re.search(rb"\[APPENDUID (\d+) (\d+)\]", tl)
    t.ok(m and int(m.group(1)) == uv0 and int(m.group(2)) == 6, "APPEND: APPENDUID uv 6", tl)
    unt, tl = c.cmd("NOOP")
    t.ok(any(l == b"* 6 EXISTS" for l in unt0 + unt), "the appended message is seen (6 EXISTS)", unt0 + unt)
    unt, tl = c.cmd("UID FETCH 6 (FLAGS BODY.PEEK[])")
    v = list(fetches(unt).values())[0] if fetches(unt) else {}
    t.is_(v.get(b"BODY[]"), crlf(msg(6, b">From inside\n")), "the appended message reads back (From quoted)")
    t.ok(b"\\Seen" in v.get(b"FLAGS", []), "with \\Seen", unt)

    # COPY to a Maildir folder and back
    t.ok(c.ok("CREATE Archive").startswith(b"OK"), "CREATE Archive")
    tl = c.ok("UID COPY 1 Archive")
    t.ok(tl.startswith(b"OK [COPYUID"), "COPY INBOX -> Archive", tl)
    unt, tl = c.cmd("UID FETCH 1 BODY.PEEK[]")
    body1 = list(fetches(unt).values())[0].get(b"BODY[]") if fetches(unt) else None
    ex, _, tl, _ = select(c, "Archive")
    t.is_(ex, 1, "Archive has the message")
    unt, tl = c.cmd("FETCH 1 (FLAGS BODY.PEEK[])")
    v = list(fetches(unt).values())[0] if fetches(unt) else {}
    t.is_(v.get(b"BODY[]"), body1, "the copy is byte for byte the same")
    t.ok(b"\\Flagged" in v.get(b"FLAGS", []), "flags copied", unt)
    tl = c.ok("COPY 1 INBOX")
    m = re.search(rb"\[COPYUID (\d+) \d+ (\d+)\]", tl)
    t.ok(m and int(m.group(1)) == uv0 and int(m.group(2)) == 7, "COPY Archive -> INBOX: COPYUID uv 7", tl)
    ex, uv2, tl, _ = select(c)
    t.is_((ex, uv2), (7, uv0), "INBOX: 7 messages, same UIDVALIDITY")
    unt, tl = c.cmd("UID FETCH 7 BODY.PEEK[]")
    v = list(fetches(unt).values())[0] if fetches(unt) else {}
    t.is_(v.get(b"BODY[]"), body1, "copied back byte for byte")

    # EXPUNGE
    c.ok("UID STORE 7 +FLAGS.SILENT (\\Deleted)")
    unt, tl = c.cmd("EXPUNGE")
    t.ok(tl.split(b" ", 1)[1].startswith(b"OK") and b"* 7 EXPUNGE" in unt, "EXPUNGE", unt)
    t.is_(len(mbox_messages(mbox)), 6, "the mbox has 6 messages")
    c.ok("LOGOUT")
    c.close()

    # POP3: UIDLs unchanged by the IMAP sessions; DELE of message 3
    c = login(port, su.name)
    ex, _, tl, _ = select(c)
    t.is_(ex, 6, "an IMAP session has INBOX selected before popd locks it")
    p = poplib.POP3("127.0.0.1", h.port_base + 110, timeout=15)
    p.user(su.name)
    p.pass_(PW)
    uidl1 = [l.split()[1] for l in p.uidl()[1]]
    t.is_(uidl1[:3], uidl0, "POP3 UIDLs unchanged after IMAP sessions that flagged and rewrote")
    t.is_(len(uidl1), 6, "POP3 sees 6 messages")
    top = b"\n".join(p.top(3, 0)[1])
    t.ok(b"<m3@example.test>" in top, "POP3 message 3 is <m3>")
    # while popd holds the mbox: IMAP gets [INUSE], and survives
    tl = c.ok("STORE 1 +FLAGS (\\Draft)")
    t.ok(tl.startswith(b"NO [INUSE]"), "STORE while popd holds the lock: NO [INUSE]", tl)
    unt, tl = c.cmd("FETCH 1 (FLAGS BODY[])")
    t.ok(tl.split(b" ", 1)[1].startswith(b"OK") and fetches(unt).get(1, {}).get(b"BODY[]"),
         "FETCH BODY[] still works (\\Seen not set meanwhile)", unt)
    t.ok(c.ok("NOOP").startswith(b"OK"), "the IMAP session survives")
    c2 = login(port, su.name)
    unt, tl = c2.cmd("SELECT INBOX")
    t.ok(tl.split(b" ", 1)[1].startswith(b"OK") or b"[INUSE]" in tl, "a new SELECT: OK or NO [INUSE]", tl)
    c2.ok("LOGOUT")
    c2.close()
    p.dele(3)
    p.quit()
    t.ok(wait_until(lambda: len(mbox_messages(mbox)) == 5, 5), "POP3 DELE+QUIT: 5 messages left")
    c.ok("LOGOUT")
    c.close()
    c = login(port, su.name)
    ex, uv3, tl, _ = select(c)
    map3 = msgid_uids(c)
    t.is_(uv3, uv0, "UIDVALIDITY unchanged after POP3 DELE")
    want3 = {k: v for k, v in map2.items() if k != b"<m3@example.test>"}
    want3[b"<m6@example.test>"] = 6
    t.is_(map3, want3, "the POP3-deleted message is gone, the others keep their UIDs")
    c.ok("LOGOUT")
    c.close()
    uidl2 = pop_uidls(h, su.name)
    t.is_(uidl2, [u for k, u in enumerate(uidl1) if k != 2], "POP3 UIDLs unchanged after IMAP sessions")
    # RENAME INBOX: the messages move to a Maildir folder, INBOX stays, empty
    c = login(port, su.name)
    tl = c.ok("RENAME INBOX Old")
    t.ok(tl.startswith(b"OK"), "RENAME INBOX Old", tl)
    ex, _, tl, _ = select(c, "Old")
    t.is_(ex, 5, "Old has the 5 messages")
    t.is_(sorted(msgid_uids(c)), sorted(map3), "the same messages")
    ex, uv4, tl, _ = select(c)
    t.is_(ex, 0, "INBOX is empty")
    t.is_(len(mbox_messages(mbox)), 0, "the mbox file has no message")
    h.sendmail(["-i", rcpt], msg(8))
    t.ok(wait_until(lambda: len(mbox_messages(mbox)) == 1, 10), "local delivers into the emptied mbox")
    unt, tl = c.cmd("NOOP")
    t.ok(b"* 1 EXISTS" in unt and not c.closed(0.2), "the selected session sees it", unt)
    c.ok("LOGOUT")
    c.close()
    t.ok(not os.path.exists(mbox + ".lock"), "no dotlock left")
    t.ok(not [n for n in os.listdir(spool) if ".imapd." in n], "no temporary file left", os.listdir(spool))
    st = os.stat(mbox)
    t.is_((st.st_uid, st.st_mode & 0o777), (su.pw.pw_uid, 0o600), "the mbox keeps its owner and mode")
t.done()
