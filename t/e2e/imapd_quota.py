"""
imapd_quota: mailbox quotas (quota(5)) end to end.  Limits from
mailbox_quota_maps (a hash: map) and mailbox_quota; local defers mail
for a full mailbox with 4.2.2 (and bounces it with 5.2.2 when
mailbox_quota_full_tempfail = no), delivers it once room is made;
imapd reports the quota (GETQUOTAROOT, GETQUOTA, RFC 9208 units),
refuses SETQUOTA, answers APPEND over the limit with NO [OVERQUOTA],
lets a full mailbox MOVE mail to Trash, counts EXPUNGE; popd's
deletions are counted; maildirsize is Maildir++'s format and always
agrees with what the folders hold; mail removed behind our back is seen
once the file is 15 minutes old.  Every wait has a time limit.
"""
import os
import poplib
import re
import time

from hermodtest import TAP, Instance, BUILDDIR, wait_until

from imaptest import enable_imap, login

POPD = os.path.join(BUILDDIR, "popd", "popd")
DOMAIN = "example.test"


def enable_pop3(h):
    mc = os.path.join(h.dir, "master.conf")
    lines = [l for l in open(mc).read().splitlines() if not re.match(r"^#?\s*pop3s?\s", l)]
    lines.append("pop3 127.0.0.1:%d inet n - %s" % (h.port_base + 110, POPD))
    open(mc, "w").write("\n".join(lines) + "\n")


def msg(i, size=1000, to="alice"):
    head = (b"From: sender%d@example.test\nTo: %s@example.test\nSubject: Q%03d\n"
            b"Message-ID: <q%d@example.test>\n\n" % (i, to.encode(), i, i))
    return head + b"x" * (size - len(head) - 1) + b"\n"


def folder_usage(md):
    """(bytes, messages) of INBOX and every Maildir++ folder, as on disk."""
    b = n = 0
    for d in [md] + [os.path.join(md, e) for e in os.listdir(md) if e.startswith(".") and e not in (".", "..")]:
        for sub in ("new", "cur"):
            p = os.path.join(d, sub)
            if not os.path.isdir(p):
                continue
            for f in os.listdir(p):
                b += os.path.getsize(os.path.join(p, f))
                n += 1
    return b, n


def maildirsize(md):
    try:
        lines = open(os.path.join(md, "maildirsize")).read().splitlines()
    except OSError:
        return None, None
    b = sum(int(l.split()[0]) for l in lines[1:])
    n = sum(int(l.split()[1]) for l in lines[1:])
    return lines[0], (b, n)


def quota_of(unt):
    """{resource: (usage, limit)} of the * QUOTA lines."""
    out = {}
    for l in unt:
        m = re.match(rb'^\* QUOTA "" \((.*)\)$', l)
        if m:
            f = m.group(1).split()
            for i in range(0, len(f) - 2, 3):
                out[f[i].decode()] = (int(f[i + 1]), int(f[i + 2]))
    return out


def append(c, box, data):
    tag = c.tag()
    c.send(b"%s APPEND %s {%d+}\r\n" % (tag.encode(), box.encode(), len(data)) + data + b"\r\n")
    return c.response(tag)


def deferred_with(h, text, timeout=15):
    return wait_until(lambda: text in h.mailq().stdout.decode(errors="replace"), timeout)


t = TAP()
with Instance(users=["alice", "bob", "carol"], start=False) as h:
    enable_imap(h)
    enable_pop3(h)
    qpath = os.path.join(h.dir, "quota")
    with open(qpath, "w") as f:
        f.write("alice 20k 8\nbob none\n")
    h.hermod("map", "build", "hash:" + qpath)
    h.set_conf({"mailbox_quota_maps": "hash:" + qpath, "mailbox_quota": "5k"})
    h.start()
    port = h.port_base + 143
    t.ok(wait_until(lambda: h.pids("imap") and h.pids("pop3"), 10), "imap and pop3 running", h.log()[-2000:])
    md = h.maildir("alice")

    # --- delivery up to the message limit (8), then 4.2.2 ------------
    for i in range(1, 9):
        r = h.sendmail(["-i", "alice@" + DOMAIN], msg(i))
        t.ok(r.returncode == 0, "sendmail %d accepted" % i, r.stderr)
        h.wait_messages("alice", i)
    t.is_(len(h.message_files("alice")), 8, "8 messages delivered (the message limit)")
    h.sendmail(["-i", "alice@" + DOMAIN], msg(9))
    t.ok(deferred_with(h, "mailbox full"), "the 9th is deferred: mailq says mailbox full", h.mailq().stdout)
    t.ok(re.search(r"to=<alice@example.test>.*dsn=4\.2\.2, status=deferred \(mailbox full", h.log()),
         "logged with dsn=4.2.2", h.log()[-2000:])
    t.is_(len(h.message_files("alice")), 8, "and not delivered")
    line1, sums = maildirsize(md)
    t.is_(line1, "20480S,8C", "maildirsize: the limit line of Maildir++")
    t.is_(sums, folder_usage(md), "maildirsize agrees with the folders", (sums, folder_usage(md)))

    # --- IMAP reporting ----------------------------------------------
    c = login(port)
    unt, tl = c.cmd("CAPABILITY")
    t.ok(b" QUOTA" in unt[0], "CAPABILITY has QUOTA", unt)
    unt, tl = c.cmd("GETQUOTAROOT INBOX")
    t.ok(tl.split()[1] == b"OK", "GETQUOTAROOT INBOX ok", tl)
    t.ok(any(re.match(rb'^\* QUOTAROOT "?INBOX"? ""$', l) for l in unt), "INBOX's quota root is \"\"", unt)
    b, n = folder_usage(md)
    t.is_(quota_of(unt), {"STORAGE": ((b + 1023) // 1024, 20), "MESSAGE": (8, 8)},
          "QUOTA: STORAGE in KiB and MESSAGE", unt)
    unt, tl = c.cmd('GETQUOTA ""')
    t.is_(quota_of(unt).get("MESSAGE"), (8, 8), 'GETQUOTA "" answers the same', unt)
    t.ok(b"NO [NONEXISTENT]" in c.cmd('GETQUOTA "other"')[1], "GETQUOTA of another root: NO [NONEXISTENT]")
    t.ok(b"NO [NONEXISTENT]" in c.cmd("GETQUOTAROOT Nowhere")[1], "GETQUOTAROOT of no mailbox: NO [NONEXISTENT]")
    t.ok(b"NO [NOPERM]" in c.cmd('SETQUOTA "" (STORAGE 100000)')[1], "SETQUOTA: NO [NOPERM]")
    t.ok(b" BAD " in c.cmd('SETQUOTA "" (STORAGE)')[1], "malformed SETQUOTA: BAD")
    t.ok(b" BAD " in c.cmd('GETQUOTA')[1], "GETQUOTA without a root: BAD")

    # --- APPEND over the message limit; MOVE to Trash still works -----
    unt, tl = append(c, "INBOX", msg(100).replace(b"\n", b"\r\n"))
    t.ok(b"NO [OVERQUOTA]" in tl, "APPEND to a full mailbox: NO [OVERQUOTA]", tl)
    t.is_(len(h.message_files("alice")), 8, "nothing appended")
    c.cmd("SELECT INBOX")
    unt, tl = c.cmd("MOVE 1 Trash")
    t.ok(tl.split()[1] == b"OK", "MOVE to Trash while full: OK", tl)
    unt, _ = c.cmd('GETQUOTA ""')
    t.is_(quota_of(unt).get("MESSAGE"), (8, 8), "a MOVE changes no usage", unt)
    t.is_(maildirsize(md)[1], folder_usage(md), "maildirsize agrees after the MOVE")
    unt, tl = c.cmd("COPY 1 Trash")
    t.ok(b"NO [OVERQUOTA]" in tl, "COPY into a full mailbox: NO [OVERQUOTA]", tl)

    # --- EXPUNGE makes room; a big APPEND hits the storage limit ------
    c.cmd("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    unt, tl = c.cmd("EXPUNGE")
    t.is_(len([l for l in unt if re.match(rb"^\* \d+ EXPUNGE$", l)]), 2, "2 expunged", unt)
    unt, _ = c.cmd('GETQUOTA ""')
    t.is_(quota_of(unt).get("MESSAGE"), (6, 8), "EXPUNGE counted: 6 of 8", unt)
    t.is_(maildirsize(md)[1], folder_usage(md), "maildirsize agrees after EXPUNGE")
    unt, tl = append(c, "INBOX", msg(101, 1000).replace(b"\n", b"\r\n"))
    t.ok(b"OK [APPENDUID" in tl, "APPEND with room: OK", tl)
    unt, tl = append(c, "INBOX", msg(102, 30000).replace(b"\n", b"\r\n"))
    t.ok(b"NO [OVERQUOTA]" in tl, "APPEND past the storage limit: NO [OVERQUOTA]", tl)
    t.ok("over quota" in h.log(), "the refusal is logged")
    t.is_(maildirsize(md)[1], folder_usage(md), "maildirsize agrees after APPENDs")
    c.ok("LOGOUT")
    c.close()

    # --- the deferred message goes in once there is room --------------
    h.hermod("queue", "flush")
    t.ok(h.wait_queue_empty(20), "after the flush the deferred message is delivered", h.mailq().stdout)
    t.is_(folder_usage(md)[1], 8, "8 messages again (7 + the deferred one)")
    t.is_(maildirsize(md)[1], folder_usage(md), "maildirsize agrees after local's delivery")

    # --- POP3 deletions are counted -----------------------------------
    p = poplib.POP3("127.0.0.1", h.port_base + 110, timeout=15)
    p.user("alice")
    p.pass_("secret")
    p.dele(1)
    p.dele(2)
    p.quit()
    t.is_(folder_usage(md)[1], 6, "POP3 removed 2")
    t.is_(maildirsize(md)[1], folder_usage(md), "maildirsize agrees after POP3 DELE")

    # --- the file is a cache: removed, it is computed again -----------
    os.unlink(os.path.join(md, "maildirsize"))
    c = login(port)
    unt, _ = c.cmd('GETQUOTA ""')
    t.is_(quota_of(unt).get("MESSAGE"), (6, 8), "without maildirsize: the same usage, computed", unt)
    t.ok(os.path.exists(os.path.join(md, "maildirsize")), "and the file written again")
    c.ok("LOGOUT")
    c.close()

    # --- mail removed behind our back: seen when the file is old ------
    for i in range(200, 202):
        h.sendmail(["-i", "alice@" + DOMAIN], msg(i))
    t.ok(wait_until(lambda: folder_usage(md)[1] == 8, 10), "full again")
    for f in h.message_files("alice")[:3]:
        os.unlink(f)     # not counted in maildirsize
    h.sendmail(["-i", "alice@" + DOMAIN], msg(210))
    t.ok(deferred_with(h, "mailbox full"), "young maildirsize believed: deferred")
    old = time.time() - 16 * 60
    os.utime(os.path.join(md, "maildirsize"), (old, old))
    h.hermod("queue", "flush")
    t.ok(h.wait_queue_empty(20), "16-minute-old file recomputed: delivered", h.mailq().stdout)
    t.is_(maildirsize(md)[1], folder_usage(md), "maildirsize agrees after the recomputation")

    # --- bob: "none" in the map overrides mailbox_quota ---------------
    for i in range(300, 310):
        h.sendmail(["-i", "bob@" + DOMAIN], msg(i, 1000, "bob"))
    t.ok(len(h.wait_messages("bob", 10)) == 10, "bob (none) takes 10 KB past the default 5k")
    c = login(port, "bob")
    unt, tl = c.cmd("GETQUOTAROOT INBOX")
    t.ok(any(re.match(rb'^\* QUOTAROOT "?INBOX"?$', l) for l in unt) and not quota_of(unt) and tl.split()[1] == b"OK",
         "bob: a QUOTAROOT without roots, no QUOTA", unt)
    t.ok(b"NO [NONEXISTENT]" in c.cmd('GETQUOTA ""')[1], 'bob: GETQUOTA "" is NO')
    c.ok("LOGOUT")
    c.close()

    # --- carol: the default 5k; bounce with 5.2.2 when so configured --
    # one at a time: deliveries running side by side may each pass the
    # check (quota(5): the limit is soft by the concurrent messages)
    for i in range(400, 402):
        h.sendmail(["-i", "carol@" + DOMAIN], msg(i, 2000, "carol"))
        h.wait_messages("carol", i - 399)
    h.sendmail(["-i", "carol@" + DOMAIN], msg(402, 2000, "carol"))
    t.ok(deferred_with(h, "mailbox full"), "carol (5k default): the third 2 KB message is deferred")
    t.is_(len(h.message_files("carol")), 2, "carol has 2")
    h.stop()
    h.set_conf({"mailbox_quota_full_tempfail": "no"})
    h.start()
    r = h.sendmail(["-i", "-f", "bob@" + DOMAIN, "carol@" + DOMAIN], msg(410, 2000, "carol"))
    t.ok(wait_until(lambda: any(b"5.2.2" in m for m in h.messages("bob")), 20),
         "with mailbox_quota_full_tempfail = no the sender gets a 5.2.2 bounce", h.log()[-3000:])
    t.is_(len(h.message_files("carol")), 2, "carol still has 2")
t.done()
