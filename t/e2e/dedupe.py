"""
dedupe: one copy per distinct recipient of a message (doc/queue.md,
"Duplicate recipients"), wherever the recipients came from:

  - SMTP: the same RCPT twice gets two 250s and is stored once; the
    domain is compared without case, a local part of a local domain too
    (hermod decides those mailboxes, case-insensitively), a remote local
    part with its case (RFC 5321 section 2.4);
  - sendmail(8): the same recipient twice on the command line and in the
    -t header fields;
  - aliases: RCPT alice + RCPT team (team: alice, bob), two lists with a
    member in common, a list that names a member twice;
  - .forward of a system user that comes back to another recipient
    (privileged instance as root: a throw-away system user);
  - a list member delivered before a retry is not delivered again on the
    retry (the delivered destinations are kept in the deferred file);
  - DSN: the NOTIFY and ORCPT of the first of two equal RCPTs are kept,
    and two original recipients with one final mailbox both get their
    success notice;
  - the smtp transport: the same remote recipient twice goes once; a
    .forward to a remote address that is also a recipient goes once.
"""
import email
import os
import struct
import time
from email import policy

from dnsserver import DNSServer
from hermodtest import TAP, Instance, SystemUser, prog, wait_until
from receiver import Receiver, enable_smtp_agent, free_port, outbound_conf
from smtptest import Client

t = TAP()
try:
    prog("smtp")
    have_smtp = True
except FileNotFoundError:
    have_smtp = False

REMOTE_IP = "127.0.0.2"
P = free_port([REMOTE_IP])
dns = DNSServer({"remote.test": {"A": [REMOTE_IP]}})
R = Receiver(host=REMOTE_IP, port=P, dsn=False)


def count(h, user, subject):
    return sum(1 for m in h.messages(user) if b"Subject: " + subject.encode() + b"\n" in m)


def settle(h, timeout=15):
    """Wait until the queue is empty, then a little more for stragglers."""
    ok = h.wait_queue_empty(timeout)
    time.sleep(0.7)
    return ok and h.wait_queue_empty(5)


def reports(h, user):
    out = []
    for raw in h.messages(user):
        m = email.message_from_bytes(raw, policy=policy.compat32)
        if m.get_content_type() == "multipart/report":
            out.append(m)
    return out


def per_rcpt(m):
    for part in m.walk():
        if part.get_content_type() == "message/delivery-status":
            return [dict(x.items()) for x in part.get_payload()[1:]]
    return []


def smtp_send(h, sender, rcpts, subject):
    """rcpts: [(address, "PARAMS")]; returns the RCPT reply codes."""
    c = Client(h.port_base + 25, timeout=15)
    codes = []
    c.reply()
    c.ehlo()
    c.cmd("MAIL FROM:<%s>" % sender)
    for a, params in rcpts:
        codes.append(c.cmd("RCPT TO:<%s>%s" % (a, (" " + params) if params else ""))[0])
    code, _ = c.cmd("DATA")
    if code == 354:
        c.send(("From: %s\r\nSubject: %s\r\n\r\nbody %s\r\n.\r\n" % (sender, subject, subject)).encode())
        codes.append(c.reply(60)[0])
    c.cmd("QUIT")
    c.close()
    return codes


conf = outbound_conf(dns.port, P, minimal_backoff_time="1s", maximal_backoff_time="2s",
                     queue_run_delay="1s")
with SystemUser() as su, Instance(users=["alice", "bob", "carol", "dave", "sender"], start=False,
                                  conf=conf) as h:
    user, pw = su.name, su.pw
    fwd = os.path.join(h.dir, "fwd")
    spool = os.path.join(h.dir, "mailspool")
    os.makedirs(fwd)
    os.makedirs(spool, exist_ok=True)   # a rootless instance has one already
    os.chmod(spool, 0o1777)
    work = os.path.join(h.dir, "work")
    os.makedirs(work)
    os.chmod(work, 0o755)
    later_inc = os.path.join(work, "later.inc")
    h.set_conf({"forward_path": fwd + "/$user.forward", "mail_spool_directory": spool})
    if have_smtp:
        enable_smtp_agent(h)
    p = h.write_aliases("team: alice, bob\n"
                        "team2: bob, carol\n"
                        "twice: carol, Carol, carol@Example.Test, dave\n"
                        "flaky: dave, :include:%s\n" % later_inc)
    t.is_(p.returncode, 0, "newaliases builds the test aliases", p.stderr)
    h.start()

    # SMTP: the same RCPT twice
    codes = smtp_send(h, "sender@example.test", [("alice@example.test", ""), ("alice@example.test", "")], "D1")
    t.is_(codes, [250, 250, 250], "SMTP: the same RCPT twice gets two 250s", h.log()[-2000:])
    settle(h)
    t.is_(count(h, "alice", "D1"), 1, "SMTP: the same RCPT twice is delivered once", h.log()[-3000:])

    # SMTP: case variants of a local address
    codes = smtp_send(h, "sender@example.test",
                      [("bob@EXAMPLE.test", ""), ("bob@example.test", ""), ("Bob@example.test", ""),
                       ("BOB@Example.Test", "")], "D2")
    t.is_(codes, [250, 250, 250, 250, 250], "SMTP: case variants all get 250")
    settle(h)
    t.is_(count(h, "bob", "D2"), 1, "SMTP: domain and local-mailbox case variants are one recipient",
          h.log()[-3000:])

    # sendmail: command line, and -t header fields
    h.sendmail(["carol@example.test", "carol", "Carol@EXAMPLE.TEST"], b"Subject: D3\n\nx\n")
    settle(h)
    t.is_(count(h, "carol", "D3"), 1, "sendmail: the same recipient thrice on the command line", h.log()[-3000:])
    h.sendmail(["-t"], b"To: dave@example.test, Dave@Example.Test\nCc: dave\nBcc: DAVE@example.test\n"
                       b"Subject: D4\n\nx\n")
    settle(h)
    t.is_(count(h, "dave", "D4"), 1, "sendmail -t: the same recipient in To, Cc and Bcc", h.log()[-3000:])
    h.sendmail(["-t", "dave@example.test"], b"To: Dave@example.test\nSubject: D4b\n\nx\n")
    settle(h)
    t.is_(count(h, "dave", "D4b"), 1, "sendmail -t: the same recipient on the command line and in To:",
          h.log()[-3000:])

    # aliases
    h.sendmail(["alice@example.test", "team@example.test"], b"Subject: D5\n\nx\n")
    settle(h)
    t.is_((count(h, "alice", "D5"), count(h, "bob", "D5")), (1, 1),
          "RCPT alice + RCPT team (team: alice, bob): one copy each", h.log()[-3000:])
    codes = smtp_send(h, "sender@example.test", [("team@example.test", ""), ("alice@example.test", "")], "D5s")
    settle(h)
    t.is_((count(h, "alice", "D5s"), count(h, "bob", "D5s")), (1, 1),
          "over SMTP, list first: one copy each", h.log()[-3000:])
    h.sendmail(["twice@example.test"], b"Subject: D6\n\nx\n")
    settle(h)
    t.is_((count(h, "carol", "D6"), count(h, "dave", "D6")), (1, 1),
          "a list naming a member twice (and in other case): one copy", h.log()[-3000:])
    h.sendmail(["team@example.test", "team2@example.test"], b"Subject: D7\n\nx\n")
    settle(h)
    t.is_((count(h, "alice", "D7"), count(h, "bob", "D7"), count(h, "carol", "D7")), (1, 1, 1),
          "two lists sharing a member: one copy each", h.log()[-3000:])

    # .forward of a system user back to another recipient
    f = os.path.join(fwd, user + ".forward")
    with open(f, "w") as fh:
        fh.write("alice@example.test\n")
    os.chown(f, pw.pw_uid, pw.pw_gid)
    os.chmod(f, 0o644)
    h.sendmail([user + "@example.test", "alice@example.test"], b"Subject: D8\n\nx\n")
    t.ok(settle(h), ".forward case: both original recipients are done (queue empty)", h.mailq().stdout)
    t.is_(count(h, "alice", "D8"), 1, ".forward that comes back to another recipient: one copy", h.log()[-3000:])
    h.sendmail(["alice@example.test", user + "@example.test"], b"Subject: D8b\n\nx\n")
    settle(h)
    t.is_(count(h, "alice", "D8b"), 1, "the same with the recipients the other way round", h.log()[-3000:])

    # a list member delivered before a retry is not delivered again
    h.sendmail(["flaky@example.test"], b"Subject: D9\n\nx\n")
    t.ok(wait_until(lambda: count(h, "dave", "D9") >= 1, 10), "retry case: the first member got it", h.log()[-2000:])
    t.ok(wait_until(lambda: "flaky" in h.mailq().stdout.decode(errors="replace"), 5),
         "retry case: the list waits for the member that is not there yet", h.mailq().stdout)
    with open(later_inc, "w") as fh:
        fh.write("carol\n")
    os.chmod(later_inc, 0o644)
    t.ok(wait_until(lambda: count(h, "carol", "D9") >= 1, 20), "retry case: the retry delivers to the rest",
         h.log()[-3000:])
    settle(h)
    t.is_(count(h, "dave", "D9"), 1, "retry case: the member delivered before the retry gets one copy",
          h.log()[-3000:])

    # DSN: the first NOTIFY and ORCPT are kept
    codes = smtp_send(h, "sender@example.test",
                      [("alice@example.test", "NOTIFY=SUCCESS ORCPT=rfc822;first@x.test"),
                       ("alice@example.test", "NOTIFY=NEVER ORCPT=rfc822;second@x.test")], "D10")
    t.is_(codes, [250, 250, 250], "DSN: both RCPTs get 250")
    settle(h)
    t.is_(count(h, "alice", "D10"), 1, "DSN: delivered once")

    def dsn_for(subject):
        for m in reports(h, "sender"):
            if subject.encode() in m.as_bytes():
                return m
        return None
    m = wait_until(lambda: dsn_for("Subject: D10"), 10)
    t.ok(m, "DSN: the success notice of the first RCPT is sent", h.log()[-3000:])
    rs = per_rcpt(m) if m else []
    t.is_([(r.get("Action"), r.get("Original-Recipient", "").replace(" ", "")) for r in rs],
          [("delivered", "rfc822;first@x.test")], "DSN: one entry, with the ORCPT of the first RCPT", rs)

    codes = smtp_send(h, "sender@example.test",
                      [("bob@example.test", "NOTIFY=SUCCESS ORCPT=rfc822;first@x.test"),
                       ("Bob@example.test", "NOTIFY=SUCCESS ORCPT=rfc822;second@x.test")], "D10b")
    settle(h)
    m = wait_until(lambda: dsn_for("Subject: D10b"), 10)
    rs = per_rcpt(m) if m else []
    t.is_([(r.get("Action"), r.get("Original-Recipient", "").replace(" ", "")) for r in rs],
          [("delivered", "rfc822;first@x.test")], "DSN: two SUCCESS RCPTs of one mailbox: one entry, the first",
          (rs, h.log()[-3000:]))

    # a queue file from elsewhere (written straight into maildrop/, as
    # an older sendmail or a tool might): qmgr still delivers once, and
    # only the first of equal recipients has a say about notices
    def rec(typ, payload):
        return typ + struct.pack(">I", len(payload)) + payload
    data = b"From: sender@example.test\nSubject: D10c\n\nx\n"
    qf = (rec(b"V", b"hermod-queue 1") + rec(b"T", str(int(time.time() * 1e6)).encode()) +
          rec(b"S", b"sender@example.test") +
          rec(b"R", b"carol@example.test\0\0" + b"1") +          # NOTIFY=NEVER
          rec(b"R", b"Carol@EXAMPLE.test\0rfc822;c2@x.test\0" + b"2") +  # SUCCESS: a duplicate
          rec(b"R", b"carol@example.test\0\0" + b"2") +
          (rec(b"R", b"r3@remote.test\0\0" + b"0") + rec(b"R", b"r3@Remote.Test\0\0" + b"0")
           if have_smtp else b"") +
          rec(b"M", b"") + rec(b"D", data) + rec(b"Z", b"end"))
    tmp = os.path.join(h.spool, "maildrop", "t.dedupe")
    with open(tmp, "wb") as fh:
        fh.write(qf)
    os.rename(tmp, os.path.join(h.spool, "maildrop", "dedupe-test"))
    h.run("sendmail", ["-q"])
    t.ok(wait_until(lambda: count(h, "carol", "D10c") >= 1, 15), "a file with duplicates from maildrop/ is delivered",
         h.log()[-3000:])
    settle(h)
    t.is_(count(h, "carol", "D10c"), 1, "a file with duplicate recipients: delivered once", h.log()[-3000:])
    time.sleep(1)
    t.ok(not dsn_for("Subject: D10c"), "and no success notice for the duplicates (the first said NEVER)",
         h.log()[-3000:])
    if have_smtp:
        got = [a for tr in R.messages() if b"Subject: D10c" in tr["data"] for a in tr["accepted"]]
        t.is_(got, ["r3@remote.test"], "a file with a remote recipient twice: it goes once", h.log()[-3000:])

    # two original recipients, one final mailbox: both get their notice
    codes = smtp_send(h, "sender@example.test",
                      [("alice@example.test", "NOTIFY=SUCCESS"), ("team@example.test", "NOTIFY=SUCCESS")], "D11")
    settle(h)
    t.is_((count(h, "alice", "D11"), count(h, "bob", "D11")), (1, 1), "DSN: alice + team, one copy each")
    m = wait_until(lambda: dsn_for("Subject: D11"), 10)
    rs = per_rcpt(m) if m else []
    got = sorted((r.get("Final-Recipient", "").split(";")[-1].strip(), r.get("Action")) for r in rs)
    t.is_(got, [("alice@example.test", "delivered"), ("team@example.test", "delivered")],
          "DSN: both original recipients are reported delivered", (rs, h.log()[-3000:]))

    # the smtp transport
    if not have_smtp:
        t.skip("smtp transport checks", "the smtp agent is not built in this tree")
    else:
        codes = smtp_send(h, "sender@example.test",
                          [("u@remote.test", ""), ("u@REMOTE.test", ""), ("u@remote.test", "")], "D12")
        t.is_(codes, [250, 250, 250, 250], "remote: the same RCPT thrice gets 250s")
        settle(h, 20)
        got = [a for tr in R.messages() if b"Subject: D12" in tr["data"] for a in tr["accepted"]]
        t.is_(got, ["u@remote.test"], "remote: the same remote recipient goes once", h.log()[-3000:])

        codes = smtp_send(h, "sender@example.test", [("Ux@remote.test", ""), ("ux@remote.test", "")], "D13")
        settle(h, 20)
        got = sorted(a for tr in R.messages() if b"Subject: D13" in tr["data"] for a in tr["accepted"])
        t.is_(got, ["Ux@remote.test", "ux@remote.test"],
              "remote: local parts of a remote domain keep their case (two recipients)", h.log()[-3000:])

        with open(f, "w") as fh:
            fh.write("r@remote.test\n")
        h.sendmail([user + "@example.test", "r@remote.test"], b"Subject: D14\n\nx\n")
        settle(h, 20)
        got = [a for tr in R.messages() if b"Subject: D14" in tr["data"] for a in tr["accepted"]]
        t.is_(got, ["r@remote.test"], ".forward to a remote address that is also a recipient: once",
              h.log()[-3000:])

        h.write_aliases("team: alice, bob\nteam2: bob, carol\n"
                        "fw1: r2@remote.test, alice\nfw2: r2@remote.test, bob\n"
                        "both: l1, l2\nl1: r4@remote.test, alice\nl2: r4@remote.test, bob\n"
                        "owner-l1: alice\nowner-l2: bob\n")
        settle(h)
        h.sendmail(["fw1@example.test", "fw2@example.test"], b"Subject: D16\n\nx\n")
        settle(h, 20)
        got = [a for tr in R.messages() if b"Subject: D16" in tr["data"] for a in tr["accepted"]]
        t.is_(got, ["r2@remote.test"], "two lists forwarding to the same remote address: once", h.log()[-3000:])
        h.sendmail(["both@example.test"], b"Subject: D17\n\nx\n")
        settle(h, 20)
        got = [a for tr in R.messages() if b"Subject: D17" in tr["data"] for a in tr["accepted"]]
        t.is_(got, ["r4@remote.test"], "one list of two owner- lists with a remote member in common: once",
              h.log()[-3000:])
R.close()
dns.close()
t.done()
