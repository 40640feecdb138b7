"""
sendmail_user: a normal user of a privileged instance submits mail, the
way users of an installed system do: `sendmail -t` and `sendmail -bs`
(the SMTP dialogue on stdin/stdout that some mail clients use) run as
that user, who may not write the queue; the message goes into maildrop/
through the setgid-hermodrop postdrop and pickup reports the user as the
client.  For -bs: the whole dialogue, mail to a virtual user (whose file
the user cannot read), a system user and a remote address (local
submission may relay), and an unknown user accepted at RCPT and bounced
back to the sender by local delivery, as with sendmail -t.

Needs root (a privileged instance and a throw-away system user); a
rootless run checks that -bs stores mail straight into the queue.
"""
import grp
import os
import re
import shutil
import subprocess
import tempfile

from hermodtest import TAP, Instance, SystemUser, prog, wait_until

t = TAP()


def session(lines):
    return ("".join(l + "\r\n" for l in lines)).encode()


BS = ["EHLO client.test", "MAIL FROM:<%s>", "RCPT TO:<alice@example.test>", "RCPT TO:<%s@example.test>",
      "RCPT TO:<someone@remote.example>", "RCPT TO:<nosuch@example.test>", "DATA",
      "Subject: bs as a user\r\n\r\nhello from -bs\r\n.", "QUIT"]


def codes(out):
    return [int(l[:3]) for l in out.decode(errors="replace").splitlines() if re.match(r"^\d{3} ", l)]


if os.geteuid() != 0:
    with Instance(users=["alice"]) as h:
        me = __import__("pwd").getpwuid(os.getuid()).pw_name
        lines = [l % me if "%s" in l else l for l in BS]
        p = h.sendmail(["-bs"], session(lines))
        t.is_(codes(p.stdout)[:7], [220, 250, 250, 250, 250, 250, 550],
              "rootless -bs: unknown user refused at RCPT (the caller can read everything)", p.stdout)
    t.done()
    raise SystemExit(0)

with Instance(users=["alice"], start=False) as h, SystemUser() as su:
    # an installed postdrop: setgid hermodrop, in a root-owned folder
    # searched first (the build tree's copy has no setgid bit)
    libexec = tempfile.mkdtemp(prefix="hermod-libexec-", dir="/tmp")
    os.chmod(libexec, 0o755)
    pd = os.path.join(libexec, "postdrop")
    shutil.copy(prog("postdrop"), pd)
    os.chown(pd, 0, grp.getgrnam("hermodrop").gr_gid)
    os.chmod(pd, 0o2755)
    dd = h.hermod("config", "daemon_directory").stdout.decode().split("=", 1)[1].strip()
    h.set_conf({"daemon_directory": libexec + ":" + dd})
    h.start()
    uid, gid = su.pw.pw_uid, su.pw.pw_gid

    def as_user(args, data):
        return subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups",
                               prog("sendmail"), "-C", h.dir] + args,
                              input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=h.env(), timeout=60, cwd="/")

    try:
        sender = "%s@example.test" % su.name
        # sendmail -t as the user, for comparison
        p = as_user(["-t"], b"To: alice@example.test\nSubject: t as a user\n\nhello\n")
        t.is_(p.returncode, 0, "sendmail -t as a normal user: exit 0", p.stderr)
        t.ok(wait_until(lambda: any(b"t as a user" in m for m in h.messages("alice")), 10),
             "sendmail -t as a normal user: delivered")

        lines = [l % sender if "%s" in l and "MAIL" in l else l % su.name if "%s" in l else l for l in BS]
        p = as_user(["-bs"], session(lines))
        out = p.stdout.decode(errors="replace")
        t.is_(codes(p.stdout), [220, 250, 250, 250, 250, 250, 250, 354, 250, 221],
              "sendmail -bs as a normal user: the whole dialogue (unknown users are local's to refuse)",
              out + p.stderr.decode(errors="replace"))
        t.ok(re.search(r"^250 2\.0\.0 Ok: queued in maildrop/\r?$", out, re.M), "250 after DATA: queued in maildrop/", out)
        t.is_(p.returncode, 0, "sendmail -bs exits 0")
        t.ok(wait_until(lambda: any(b"hello from -bs" in m for m in h.messages("alice")), 10),
             "the -bs message reached alice (a virtual user)")
        msgs = [m for m in h.messages("alice") if b"hello from -bs" in m]
        hdr = msgs[0].split(b"\n\n")[0] if msgs else b""
        t.ok(re.search(rb"^Received: by \S+ \(hermod, from userid %d\)" % uid, hdr, re.M),
             "pickup's Received names the caller's uid", hdr)
        t.ok(re.search(rb"^Received: by \S+ \(hermod, from uid=%d user=%s\)\n\twith ESMTP;" % (uid, su.name.encode()),
                       hdr, re.M), "smtpd's Received: the local user, ESMTP, no queue ID yet", hdr)
        log = h.log()
        t.ok(wait_until(lambda: re.search(r"pickup\[\d+\]: \S+: uid=%d from=<%s>" % (uid, re.escape(sender)), h.log())
                        or re.search(r"client=local uid=%d" % uid, h.log()), 10),
             "pickup took the file and reports the caller's uid", log[-1500:])
        # the system user's mbox (default mailbox of a system user)
        mbox = "/var/mail/" + su.name
        t.ok(wait_until(lambda: os.path.exists(mbox) and b"hello from -bs" in open(mbox, "rb").read(), 10),
             "the -bs message reached the system user's mbox %s" % mbox)
        # the remote recipient is deferred (no DNS here), the unknown one bounces to the sender
        t.ok(wait_until(lambda: os.path.exists(mbox) and re.search(
            rb"nosuch@example\.test", open(mbox, "rb").read().split(b"hello from -bs", 1)[-1]), 15),
             "the unknown recipient came back to the user as a bounce")
        t.ok(not re.search(r"smtpd\[\d+\]: .*queue file write error|maildrop: message not stored", h.log()),
             "no store errors logged")
    finally:
        if os.path.exists(mbox if 'mbox' in dir() else "/nonexistent"):
            os.unlink(mbox)
        shutil.rmtree(libexec, ignore_errors=True)
t.done()
