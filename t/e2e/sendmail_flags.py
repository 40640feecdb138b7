"""
sendmail_flags: every sendmail flag the issue names, and the real command
lines of PHP, mutt, cronie, Debian cron, git send-email and bsd-mailx,
each against a running instance.
"""
import email
import os
import shutil
import stat
import subprocess
import time
from email import policy

from hermodtest import TAP, Instance, prog, wait_until

t = TAP()


def parse(raw):
    return email.message_from_bytes(raw, policy=policy.compat32)


def newest(h, user, n, timeout=10):
    msgs = h.wait_messages(user, n, timeout)
    return parse(msgs[-1]) if len(msgs) >= n else None


def by_subject(h, user, subject, timeout=10):
    def find():
        for raw in h.messages(user):
            m = parse(raw)
            if (m["Subject"] or "") == subject:
                return m
        return None
    return wait_until(find, timeout)


with Instance(users=["alice", "bob", "carol"]) as h:
    scripts = os.path.join(h.dir, "scripts")
    os.makedirs(scripts)
    os.chmod(scripts, 0o777)
    flaky = os.path.join(scripts, "flaky")
    with open(flaky, "w") as f:
        f.write("#!/bin/sh\n# fails the first time, then saves the message\n"
                "d=%s\nif [ ! -e $d/flaky.seen ]; then : > $d/flaky.seen; exit 75; fi\n"
                "cat > $d/flaky.out\n" % scripts)
    os.chmod(flaky, 0o755)
    h.write_aliases("postmaster: alice\nroot: alice\nflaky: \"|%s\"\n" % flaky)

    # -t: recipients from To/Cc/Bcc, Bcc removed
    p = h.sendmail(["-t"], b"To: alice@example.test\nCc: bob\nBcc: carol@example.test\nSubject: dash-t\n\nx\n")
    t.is_(p.returncode, 0, "-t exits 0")
    ma, mb, mc = by_subject(h, "alice", "dash-t"), by_subject(h, "bob", "dash-t"), by_subject(h, "carol", "dash-t")
    t.ok(ma and mb and mc, "-t: To, Cc (unqualified) and Bcc recipients all receive", h.log())
    t.ok(mc is not None and mc["Bcc"] is None, "-t: Bcc header removed")
    p = h.sendmail(["-t"], b"Subject: nobody\n\nx\n")
    t.is_(p.returncode, 64, "-t with no recipients: EX_USAGE")

    # -i / -oi and the lone dot
    h.sendmail(["alice@example.test"], b"Subject: dot-ends\n\nbefore\n.\nafter\n")
    m = by_subject(h, "alice", "dot-ends")
    t.ok(m is not None and "after" not in m.get_payload() and "before" in m.get_payload(), "without -i a lone dot ends the message")
    h.sendmail(["-i", "alice@example.test"], b"Subject: dot-i\n\nbefore\n.\nafter\n")
    m = by_subject(h, "alice", "dot-i")
    t.ok(m is not None and "\n.\nafter" in m.get_payload(), "-i keeps the lone dot and what follows")
    h.sendmail(["-oi", "alice@example.test"], b"Subject: dot-oi\n\nbefore\n.\nafter\n")
    m = by_subject(h, "alice", "dot-oi")
    t.ok(m is not None and "after" in m.get_payload(), "-oi keeps the lone dot")

    # -f / -r / -F
    h.sendmail(["-f", "sender@example.org", "alice@example.test"], b"Subject: dash-f\n\nx\n")
    m = by_subject(h, "alice", "dash-f")
    t.ok(m is not None and m["Return-Path"] == "<sender@example.org>", "-f sets the envelope sender (Return-Path)", m and m["Return-Path"])
    h.sendmail(["-r", "other@example.org", "alice@example.test"], b"Subject: dash-r\n\nx\n")
    m = by_subject(h, "alice", "dash-r")
    t.ok(m is not None and m["Return-Path"] == "<other@example.org>", "-r sets the envelope sender", m and m["Return-Path"])
    h.sendmail(["-F", "Jane Q. Doe", "alice@example.test"], b"Subject: dash-F\n\nx\n")
    m = by_subject(h, "alice", "dash-F")
    t.ok(m is not None and "Jane Q. Doe" in (m["From"] or ""), "-F puts the full name in the added From:", m and m["From"])
    t.ok(m is not None and m["Date"] and m["Message-ID"], "missing Date: and Message-ID: are added")
    h.sendmail(["-f", "<>", "alice@example.test"], b"Subject: null-sender\n\nx\n")
    m = by_subject(h, "alice", "null-sender")
    t.ok(m is not None and m["Return-Path"] == "<>", "-f '<>' is the null sender", m and m["Return-Path"])

    # -bm explicit, -B, -v, -m, -h, -L, -G, -U, -o*, -O*
    p = h.sendmail(["-bm", "-B", "8BITMIME", "-v", "-m", "-h", "20", "-L", "tag", "-G", "-U",
                    "-oem", "-odi", "-odb", "-oQ/tmp", "-ODeliveryMode=b", "alice@example.test"],
                   b"Subject: ignored-flags\n\nx\n")
    t.ok(p.returncode == 0, "-bm -B -v -m -h -L -G -U -oem -odi -odb -oQ -O accepted", p.stderr)
    t.ok(by_subject(h, "alice", "ignored-flags") is not None, "and the message is delivered")

    # -X refused, unknown flag, '-' recipients
    before = len(h.messages("alice"))
    p = h.sendmail(["-X", "/tmp/hermod-x.log", "alice@example.test"], b"Subject: x\n\nx\n")
    t.is_(p.returncode, 64, "-X is refused with EX_USAGE")
    t.ok(not os.path.exists("/tmp/hermod-x.log"), "-X wrote no file")
    p = h.sendmail(["-Z", "alice@example.test"], b"Subject: x\n\nx\n")
    t.is_(p.returncode, 64, "an unknown flag gives EX_USAGE")
    t.ok(b"usage" in p.stderr.lower(), "with a usage message", p.stderr)
    p = h.sendmail(["alice@example.test", "-oi"], b"Subject: dashrcpt\n\nx\n")
    t.ok(p.returncode != 0, "a recipient beginning with '-' (not after --) is refused", p.stderr)
    p = h.sendmail(["--", "-weird@example.test"], b"Subject: dashrcpt2\n\nx\n")
    t.is_(p.returncode, 0, "after -- a recipient may begin with '-'")
    time.sleep(0.5)
    t.is_(len([1 for r in h.messages("alice") if b"Subject: x\n" in r]), 0, "refused invocations stored nothing")

    # -bp and -bi
    p = h.sendmail(["-bp"], b"")
    t.ok(p.returncode == 0 and (b"Mail queue is empty" in p.stdout or b"Total requests" in p.stdout), "-bp lists the queue", p.stdout)
    with open(os.path.join(h.dir, "aliases"), "a") as f:
        f.write("bialias: bob\n")
    p = h.sendmail(["-bi"], b"")
    t.is_(p.returncode, 0, "-bi rebuilds the aliases")
    h.sendmail(["bialias@example.test"], b"Subject: via-bi\n\nx\n")
    t.ok(by_subject(h, "bob", "via-bi") is not None, "alias added with -bi works")
    with open(os.path.join(h.dir, "aliases"), "a") as f:
        f.write("ialias: carol\n")
    p = h.sendmail(["-I"], b"")
    t.is_(p.returncode, 0, "-I rebuilds the aliases too")

    # -bv
    n_alice = len(h.messages("alice"))
    p = h.sendmail(["-bv", "alice@example.test", "bialias"], b"")
    t.ok(p.returncode == 0 and b"deliverable" in p.stdout, "-bv says deliverable", p.stdout + p.stderr)
    p = h.sendmail(["-bv", "nosuch@example.test"], b"")
    t.ok(p.returncode != 0 and b"nknown" in p.stdout + p.stderr, "-bv reports an unknown user", p.stdout + p.stderr)
    time.sleep(0.3)
    t.is_(len(h.messages("alice")), n_alice, "-bv sends nothing")

    # -N never / success, -R hdrs, -V envid
    n_alice = len(h.messages("alice"))
    h.sendmail(["-N", "never", "-f", "alice@example.test", "nosuch1@example.test"], b"Subject: n-never\n\nx\n")
    time.sleep(1.5)
    t.is_(len(h.messages("alice")), n_alice, "-N never: no bounce")
    h.sendmail(["-N", "success", "-V", "env-123", "-f", "alice@example.test", "bob@example.test"], b"Subject: n-success\n\nx\n")
    def success_dsn():
        for raw in h.messages("alice"):
            if b"n-success" in raw and b"multipart/report" in raw:
                return raw
    raw = wait_until(success_dsn, 10)
    t.ok(raw is not None and b"Action: delivered" in raw, "-N success: a delivered notice comes back", h.log())
    t.ok(raw is not None and b"env-123" in raw, "-V: the envelope id is in the notice")
    h.sendmail(["-R", "hdrs", "-f", "alice@example.test", "nosuch2@example.test"], b"Subject: r-hdrs\n\nSECRETBODY\n")
    def hdrs_bounce():
        for raw in h.messages("alice"):
            if b"r-hdrs" in raw and b"multipart/report" in raw:
                return raw
    raw = wait_until(hdrs_bounce, 10)
    t.ok(raw is not None and b"text/rfc822-headers" in raw and b"SECRETBODY" not in raw, "-R hdrs returns only the headers")

    # -q: a deferred message is retried now
    h.sendmail(["flaky@example.test"], b"Subject: flaky\n\nretry me\n")
    out = os.path.join(scripts, "flaky.out")
    t.ok(wait_until(lambda: os.path.exists(os.path.join(scripts, "flaky.seen")), 10), "first attempt deferred", h.log())
    time.sleep(0.5)
    t.ok(not os.path.exists(out), "not delivered yet (back-off)")
    q = h.mailq()
    t.ok(b"flaky@example.test" in q.stdout, "mailq shows the deferred message", q.stdout)
    p = h.sendmail(["-q"], b"")
    t.is_(p.returncode, 0, "sendmail -q exits 0")
    t.ok(wait_until(lambda: os.path.exists(out) and os.path.getsize(out) > 0, 10), "-q: delivered on retry", h.log())

    # -C DIR instead of the environment
    env = dict(h.env())
    del env["HERMOD_CONFIG"]
    p = subprocess.run([prog("sendmail"), "-C", h.dir, "alice@example.test"], input=b"Subject: dash-C\n\nx\n",
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t.is_(p.returncode, 0, "-C DIR selects the instance")
    t.ok(by_subject(h, "alice", "dash-C") is not None, "and the message arrives")

    # real command lines
    frm = "alice@example.test"
    cases = [
        ("PHP mail()", ["-t", "-i"], b"To: bob@example.test\nSubject: php\n\nfrom php\n", "bob", "php"),
        ("mutt", ["-oem", "-oi", "-B8BITMIME", "-f", frm, "--", "bob@example.test", "carol@example.test"],
         b"From: alice@example.test\nTo: bob@example.test\nSubject: mutt\n\n8bit \xc3\xa9t\xc3\xa9\n", "carol", "mutt"),
        ("cronie", ["-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", "-f", "root"],
         b"To: root\nSubject: Cron <root@host> true\n\noutput\n", "alice", "Cron <root@host> true"),
        ("Debian cron", ["-i", "-FCronDaemon", "-B8BITMIME", "-oem", "root"],
         b"From: root (Cron Daemon)\nTo: root\nSubject: debian-cron\n\noutput\n", "alice", "debian-cron"),
        ("git send-email", ["-i", "-f", frm, "bob@example.test"],
         b"From: Alice <alice@example.test>\nTo: bob@example.test\nSubject: [PATCH] git\nMessage-Id: <1@git>\n\npatch\n", "bob", "[PATCH] git"),
    ]
    for name, args, data, user, subj in cases:
        p = h.sendmail(args, data)
        t.is_(p.returncode, 0, "%s: exit 0" % name)
        t.ok(by_subject(h, user, subj) is not None, "%s: delivered to %s" % (name, user), p.stderr + h.log().encode()[-2000:])
    raw = [r for r in h.messages("carol") if b"Subject: mutt" in r]
    t.ok(raw and b"8bit \xc3\xa9t\xc3\xa9\n" in raw[0], "mutt: 8-bit body kept byte for byte")

    # bsd-mailx's mail -s, pointed at our sendmail
    mailx = shutil.which("bsd-mailx") or shutil.which("mail")
    if mailx:
        rc = os.path.join(h.dir, "mailrc")
        with open(rc, "w") as f:
            f.write("set sendmail=%s\n" % prog("sendmail"))
        p = subprocess.run([mailx, "-s", "mailx-subject", "bob@example.test"], input=b"hello from mailx\n",
                           env=h.env({"MAILRC": rc}), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        t.is_(p.returncode, 0, "mail -s exits 0")
        t.ok(by_subject(h, "bob", "mailx-subject") is not None, "mail -s: delivered", p.stderr)
    else:
        t.ok(False, "bsd-mailx installed (apt-get install bsd-mailx)")

    # daemons down: the message waits in maildrop and goes after start
    h.stop()
    p = h.sendmail(["alice@example.test"], b"Subject: while-down\n\nx\n")
    t.is_(p.returncode, 0, "sendmail exits 0 while the daemons are down")
    t.ok(len(os.listdir(os.path.join(h.spool, "maildrop"))) >= 1, "the message waits in maildrop/")
    h.start()
    t.ok(by_subject(h, "alice", "while-down") is not None, "delivered after start", h.log())

# exit 75 when nothing can be stored
with Instance(users=["alice"], start=False) as h:
    shutil.rmtree(os.path.join(h.spool, "maildrop"))
    p = h.sendmail(["alice@example.test"], b"Subject: x\n\nx\n")
    t.is_(p.returncode, 75, "no maildrop: EX_TEMPFAIL (nothing stored)")
t.done()
