"""
smtpd_chroot: what smtpd may see, and how it still learns of changes.

Started as root (a privileged instance), every smtpd process must run
as the hermod user, without capabilities, chrooted into the spool; its
Received header must still carry the local time zone (read before the
chroot).  In both kinds of instance the recipient check must follow
changes made while smtpd runs: a virtual user added (asked of authd), an
alias or access-map entry added and the map rebuilt (a chrooted smtpd
hands over to a fresh process, an unchrooted one reopens the map), and
it must answer 450 4.3.0, not 550, for a user when authd cannot be
reached, while aliases still work.
"""
import os
import pwd
import re
import time

os.environ["TZ"] = "Asia/Kolkata"   # +0530: not the machine's zone

from hermodtest import TAP, SystemUser, wait_until
from smtptest import Client, smtp_instance

t = TAP()
privileged = os.geteuid() == 0


def rcpt(h, addr, tls=False):
    """The reply to RCPT TO:<addr> in a fresh session: (code, text)."""
    try:
        return _rcpt(h, addr, tls)
    except OSError as e:
        return -1, repr(e)


def _rcpt(h, addr, tls):
    c = Client(h.port_base + 25)
    try:
        c.reply()
        c.cmd("EHLO client.test")
        if tls:
            if c.starttls()[0] != 220:
                return -3, "STARTTLS refused"
            c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<sender@example.org>")
        code, lines = c.cmd("RCPT TO:<%s>" % addr)
        c.cmd("QUIT")
        return code, " ".join(lines)
    finally:
        c.close()


def eventually(h, addr, want, timeout=10):
    """RCPT in fresh sessions until the code is want (a map change is
    seen by the next process); the last reply."""
    got = [None, ""]

    def check():
        got[:] = rcpt(h, addr)
        return got[0] == want
    wait_until(check, timeout, 0.1)
    return tuple(got)


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)


with smtp_instance(users=["alice", "bob"]) as h, SystemUser() as su:
    h.set_conf({"smtpd_access_maps": "hash:%s/access" % h.dir})
    with open(os.path.join(h.dir, "access"), "w") as f:
        f.write("blocked.example REJECT\n")
    h.hermod("map", "build", "hash:%s/access" % h.dir)
    h.write_aliases("team: alice, bob\n")
    h.stop()
    h.start()

    # -- the process ------------------------------------------------------
    t.is_(rcpt(h, "alice@example.test")[0], 250, "a virtual user: 250")
    pids = h.pids("smtp")
    t.ok(pids, "smtpd processes found", pids)
    for pid in pids[:2]:
        st = proc_status(pid)
        root = os.readlink("/proc/%d/root" % pid)
        if privileged:
            hid = pwd.getpwnam("hermod").pw_uid
            t.is_(root, os.path.realpath(h.spool), "smtpd[%d] is chrooted into the spool" % pid)
            t.is_(st["Uid"].split(), [str(hid)] * 4, "smtpd[%d] runs as hermod (real, effective, saved, fs)" % pid)
            t.is_(st["CapEff"].strip(), "0000000000000000", "smtpd[%d] has no capabilities" % pid)
        else:
            t.is_(root, "/", "rootless: smtpd[%d] is not chrooted (it cannot be)" % pid)

    # -- recipients through authd ------------------------------------------
    t.is_(rcpt(h, "bob+tag@example.test")[0], 250, "user+extension: 250")
    code, text = rcpt(h, "nosuch@example.test")
    t.ok(code == 550 and "5.1.1" in text, "an unknown user: 550 5.1.1", (code, text))
    t.is_(rcpt(h, "%s@example.test" % su.name)[0], 250, "a system user (%s): 250" % su.name)
    if privileged:
        t.is_(rcpt(h, "root@example.test")[0], 250, "root (a system user with a mailbox): 250")
    t.is_(rcpt(h, "carol@example.test")[0], 550, "carol before she exists: 550")
    h.add_user("carol", "pw")
    t.is_(rcpt(h, "carol@example.test")[0], 250, "a virtual user added while smtpd runs: 250 at once")
    t.is_(rcpt(h, "alice@example.test", tls=True)[0], 250, "STARTTLS, then a recipient: 250")

    # -- pipelined lookups: replies in order ---------------------------------
    c = Client(h.port_base + 25)
    c.reply()
    c.cmd("EHLO client.test")
    c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<nosuch@example.test>\r\n"
           b"RCPT TO:<team@example.test>\r\nRCPT TO:<bob@example.test>\r\nRCPT TO:<nosuch2+x@example.test>\r\n"
           b"DATA\r\n")
    codes = [c.reply()[0] for _ in range(7)]
    t.is_(codes, [250, 250, 550, 250, 250, 550, 354], "pipelined MAIL, five RCPTs (lookups) and DATA: replies in order")
    c.send(b"Subject: tz\r\n\r\nzone\r\n.\r\n")
    t.is_(c.reply()[0], 250, "message accepted")
    c.cmd("QUIT")
    c.close()
    t.ok(h.wait_messages("alice", 1), "delivered to alice")
    msgs = h.messages("alice")
    rec = re.search(rb"Received: from client\.test.*?;\s*([^\r\n]+)", msgs[-1] if msgs else b"", re.S)
    t.ok(rec and rec.group(1).rstrip().endswith(b"+0530"),
         "the Received date is in the local zone (TZ=Asia/Kolkata, +0530) despite the chroot",
         rec and rec.group(1))

    # -- maps rebuilt while smtpd runs ---------------------------------------
    t.is_(rcpt(h, "newlist@example.test")[0], 550, "an alias that does not exist yet: 550")
    t.is_(rcpt(h, "x@blocked.example")[0], 554, "access map: blocked.example refused (relay or REJECT)")
    h.write_aliases("team: alice, bob\nnewlist: alice\n")
    t.is_(eventually(h, "newlist@example.test", 250)[0], 250, "after newaliases the new alias is accepted")
    with open(os.path.join(h.dir, "access"), "w") as f:
        f.write("blocked.example REJECT\nexample.test REJECT no mail for you\n")
    h.hermod("map", "build", "hash:%s/access" % h.dir)
    code, text = eventually(h, "alice@example.test", 554)
    t.ok(code == 554 and "no mail for you" in text, "after map build the new access entry applies", (code, text))
    if privileged:
        t.ok(wait_until(lambda: "has changed: finishing the sessions under way, then restarting" in h.log(), 5),
             "the chrooted smtpd logged the change and handed over")
    with open(os.path.join(h.dir, "access"), "w") as f:
        f.write("blocked.example REJECT\n")
    h.hermod("map", "build", "hash:%s/access" % h.dir)
    t.is_(eventually(h, "alice@example.test", 250)[0], 250, "access entry removed again: 250")

    # -- a reload lets sessions under way finish ------------------------------
    c = Client(h.port_base + 25)
    c.reply()
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<s@example.org>")
    t.is_(c.cmd("RCPT TO:<bob@example.test>")[0], 250, "a session under way before the reload")
    nreload = h.log().count("reload --")
    h.set_conf({"authd_socket": "private/nowhere"})
    h.hermod("reload")
    wait_until(lambda: h.log().count("reload --") > nreload, 5)
    time.sleep(0.5)
    t.is_(c.cmd("DATA")[0], 354, "after the reload, the old session goes on: DATA 354")
    t.is_(c.cmd("Subject: across a reload\r\n\r\nhi\r\n.")[0], 250, "and its message is accepted")
    t.is_(c.cmd("QUIT")[0], 221, "QUIT 221")
    c.close()
    t.ok(wait_until(lambda: any(b"across a reload" in m for m in h.messages("bob")), 10),
         "the message crossed the reload into bob's Maildir")

    # -- authd unreachable: a temporary failure, never 550 ------------------
    code, text = eventually(h, "alice@example.test", 450)
    t.ok(code == 450 and "4.3.0" in text, "authd unreachable: a user gets 450 4.3.0", (code, text))
    t.is_(rcpt(h, "team@example.test")[0], 250, "authd unreachable: an alias still 250")
    t.is_(rcpt(h, "postmaster@example.test")[0], 250, "authd unreachable: postmaster still 250")
    t.ok("authd: cannot reach private/nowhere" in h.log(), "the failure is logged")
t.done()
