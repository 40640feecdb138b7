"""
forward: system users: .forward (copy to another user, keep a copy with
\\user, pipe to a command run as the user) and mbox delivery with a From_
line.  Rootless, the instance owner is the one system user the instance
serves; as root a throw-away system user is made with useradd.
"""
import os
import time

from hermodtest import TAP, Instance, SystemUser, wait_until

t = TAP()
with SystemUser() as su:
    user, pw = su.name, su.pw
    with Instance(users=["alice"], start=False) as h:
        fwd = os.path.join(h.dir, "fwd")
        spool = os.path.join(h.dir, "mailspool")
        os.makedirs(fwd, exist_ok=True)
        os.makedirs(spool, exist_ok=True)
        os.chmod(spool, 0o1777)
        h.set_conf({"forward_path": fwd + "/$user.forward", "mail_spool_directory": spool})
        h.start()
        mbox = os.path.join(spool, user)

        # plain mbox delivery first (no .forward)
        h.sendmail([user + "@example.test"], b"Subject: F1\n\nFrom the start\nline\n")
        t.ok(wait_until(lambda: os.path.exists(mbox) and b"Subject: F1" in open(mbox, "rb").read(), 10),
             "system user without .forward gets mbox mail in mail_spool_directory", h.log())
        if os.path.exists(mbox):
            data = open(mbox, "rb").read()
            st = os.stat(mbox)
            t.ok(data.startswith(b"From "), "mbox starts with a From_ line", data[:80])
            t.ok(b"\n>From the start\n" in data, "From at the start of a body line is quoted")
            t.ok(data.endswith(b"\n\n"), "message ends with an empty line")
            t.is_(st.st_uid, pw.pw_uid, "mbox owned by the user")
            t.is_(st.st_mode & 0o777, 0o600, "mbox mode 0600")

        # .forward: copy to alice, keep one, pipe to a command
        outdir = os.path.join(h.dir, "out")
        os.makedirs(outdir)
        os.chmod(outdir, 0o777)
        out = os.path.join(outdir, "fwdcmd.out")
        f = os.path.join(fwd, user + ".forward")
        with open(f, "w") as fh:
            fh.write("alice@example.test, \\%s, \"|/usr/bin/id -u > %s\"\n" % (user, out))
        os.chown(f, pw.pw_uid, pw.pw_gid)
        os.chmod(f, 0o644)
        h.sendmail([user + "@example.test"], b"Subject: F2\n\nforwarded\n")
        t.ok(h.wait_messages("alice", 1, 10), ".forward copies to alice", h.log())
        t.ok(wait_until(lambda: b"Subject: F2" in open(mbox, "rb").read(), 10), "\\user keeps a copy in the mbox", h.log())
        t.ok(wait_until(lambda: os.path.exists(out) and open(out).read().strip() != "", 10), ".forward command ran", h.log())
        if os.path.exists(out):
            t.is_(open(out).read().strip(), str(pw.pw_uid), ".forward command runs with the user's uid")

        # a group-writable .forward is ignored (unsafe)
        os.chmod(f, 0o666)
        n = len(h.messages("alice"))
        h.sendmail([user + "@example.test"], b"Subject: F3\n\nunsafe\n")
        t.ok(wait_until(lambda: b"Subject: F3" in open(mbox, "rb").read(), 10), "unsafe .forward ignored: mail goes to the mailbox", h.log())
        time.sleep(0.5)
        t.is_(len(h.messages("alice")), n, "and not forwarded")

        # a symlinked mbox is refused (O_NOFOLLOW)
        os.rename(mbox, mbox + ".real")
        os.symlink(mbox + ".real", mbox)
        h.sendmail([user + "@example.test"], b"Subject: F4\n\nvia link\n")
        time.sleep(1.5)
        t.ok(b"Subject: F4" not in open(mbox + ".real", "rb").read(), "mail is not written through a symlinked mbox")
        q = h.mailq()
        t.ok(user.encode() in q.stdout, "the message waits in the queue instead", q.stdout)
t.done()
