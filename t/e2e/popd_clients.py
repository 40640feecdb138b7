"""
popd_clients: real POP3 clients (fetchmail, getmail6) download a mailbox
of 100 messages completely, deleting them, from a Maildir (virtual user)
and from an mbox (system user, privileged instance).
"""
import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile

from hermodtest import TAP, Instance, SystemUser, BUILDDIR, wait_until

POPD = os.path.join(BUILDDIR, "popd", "popd")
N = 100


def enable_pop3(h):
    mc = os.path.join(h.dir, "master.conf")
    lines = [l for l in open(mc).read().splitlines() if not re.match(r"^#?pop3s?\s", l)]
    lines.append("pop3 127.0.0.1:%d inet n - %s" % (h.port_base + 110, POPD))
    open(mc, "w").write("\n".join(lines) + "\n")


def message(i):
    return (b"From: sender%d@example.test\nTo: x@example.test\nSubject: M%03d\n"
            b"Message-ID: <m%d@example.test>\n\nbody of %d\n.dot line\n" % (i, i, i, i)) + b"line\n" * (i % 17)


def fill_maildir(md, uid, gid):
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
        os.chown(os.path.join(md, sub), uid, gid)
    for i in range(N):
        p = os.path.join(md, "new", "1700000%03d.M%06dP1Q%d.testhost" % (i, i, i))
        with open(p, "wb") as f:
            f.write(message(i))
        os.chown(p, uid, gid)


def fill_mbox(path, uid, gid):
    with open(path, "wb") as f:
        for i in range(N):
            f.write(b"From sender%d@example.test Sat Jan  3 00:00:%02d 2026\n" % (i, i % 60))
            f.write(message(i).replace(b"\nFrom ", b"\n>From ") + b"\n")
    os.chown(path, uid, gid)
    os.chmod(path, 0o600)


def subjects(files):
    out = set()
    for p in files:
        m = re.search(rb"^Subject: (M\d\d\d)$", open(p, "rb").read(), re.M)
        if m:
            out.add(m.group(1))
    return out


def fetchmail(t, h, user, password, what):
    d = tempfile.mkdtemp(dir="/tmp", prefix="popd-fm-")
    os.chmod(d, 0o777)
    rc = os.path.join(d, "rc")
    with open(rc, "w") as f:
        f.write('set no syslog\nset no bouncemail\n'
                'poll 127.0.0.1 service %d protocol pop3 auth password uidl\n'
                '  user "%s" there with password "%s" is root here\n'
                '  fetchall nokeep sslproto "" no rewrite\n'
                '  mda "/bin/sh -c \'cat > %s/msg.$$\'"\n' % (h.port_base + 110, user, password, d))
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=d, FETCHMAILHOME=d)
    # its own lock file: as root fetchmail would share /var/run/fetchmail.pid
    # with any other fetchmail on the host
    p = subprocess.run(["fetchmail", "-f", rc, "--nodetach", "-v", "--pidfile", os.path.join(d, "pid")],
                       stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env, timeout=120)
    got = subjects(glob.glob(os.path.join(d, "msg.*")))
    t.is_(len(got), N, "fetchmail downloaded all %d messages (%s)" % (N, what),
          p.stdout.decode(errors="replace")[-2000:])
    shutil.rmtree(d, ignore_errors=True)


def getmail(t, h, user, password, what):
    d = tempfile.mkdtemp(dir="/tmp", prefix="popd-gm-")
    os.chmod(d, 0o755)
    out = os.path.join(d, "out") + "/"
    nobody = pwd.getpwnam("nobody")
    for s in ("", "tmp", "new", "cur"):
        os.makedirs(os.path.join(out, s), exist_ok=True)
        if os.geteuid() == 0:
            os.chown(os.path.join(out, s), nobody.pw_uid, nobody.pw_gid)
    # getmail refuses to write a Maildir as root: it does so as "user"
    asuser = "user = nobody\n" if os.geteuid() == 0 else ""
    with open(os.path.join(d, "getmailrc"), "w") as f:
        f.write("[retriever]\ntype = SimplePOP3Retriever\nserver = 127.0.0.1\nport = %d\n"
                "username = %s\npassword = %s\n\n[destination]\ntype = Maildir\npath = %s\n%s\n"
                "[options]\nread_all = true\ndelete = true\nverbose = 1\n"
                % (h.port_base + 110, user, password, out, asuser))
    p = subprocess.run(["getmail", "--getmaildir", d, "--rcfile", "getmailrc"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    got = subjects(glob.glob(os.path.join(out, "new", "*")))
    t.is_(len(got), N, "getmail6 downloaded all %d messages (%s)" % (N, what),
          p.stdout.decode(errors="replace")[-2000:])
    shutil.rmtree(d, ignore_errors=True)


t = TAP()
have = {c: shutil.which(c) is not None for c in ("fetchmail", "getmail")}
with Instance(users=["alice", "bob"], start=False) as h:
    enable_pop3(h)
    h.start()
    t.ok(wait_until(lambda: h.pids("pop3"), 10), "pop3 running", h.log())
    # the Maildir owner is the virtual users' uid (whatever authd says)
    for user, client in (("alice", fetchmail), ("bob", getmail)):
        md = h.maildir(user)
        os.makedirs(md, exist_ok=True)
        st = os.stat(os.path.dirname(os.path.dirname(md)))
        own = os.stat(os.path.join(h.dir, "mail")) if os.geteuid() else st
        h.sendmail([user + "@example.test"], b"Subject: M999\n\nprobe\n")
        wait_until(lambda: h.message_files(user), 10)
        st = os.stat(h.message_files(user)[0])
        for p in h.message_files(user):
            os.unlink(p)
        fill_maildir(md, st.st_uid, st.st_gid)
        name = "fetchmail" if client is fetchmail else "getmail"
        if not have[name]:
            t.ok(False, "%s installed (apt-get install fetchmail getmail6)" % name)
            continue
        client(t, h, user, "secret", "Maildir")
        t.is_(len(h.message_files(user)), 0, "%s: the Maildir is empty afterwards" % name)

if os.geteuid() != 0:
    t.skip("mbox downloads", "system users with passwords need a privileged (root) instance")
    t.done()

with SystemUser() as su, Instance(users=[], start=False) as h:
    spool = os.path.join(h.dir, "mailspool")
    os.makedirs(spool)
    os.chmod(spool, 0o1777)
    h.set_conf({"mail_spool_directory": spool})
    subprocess.run(["chpasswd"], input=("%s:Mbox-pw1\n" % su.name).encode(), check=True)
    enable_pop3(h)
    h.start()
    wait_until(lambda: h.pids("pop3"), 10)
    mbox = os.path.join(spool, su.name)
    for name, client in (("fetchmail", fetchmail), ("getmail", getmail)):
        fill_mbox(mbox, su.pw.pw_uid, su.pw.pw_gid)
        if not have[name]:
            t.ok(False, "%s installed" % name)
            continue
        client(t, h, su.name, "Mbox-pw1", "mbox")
        t.is_(os.path.getsize(mbox), 0, "%s: the mbox is empty afterwards" % name)
        t.ok(not os.path.exists(mbox + ".lock"), "%s: no dotlock left" % name)
t.done()
