#!/usr/bin/python3
"""
newcomer: what a new administrator meets in the first hour (issue 9).

- A privileged instance in a folder the hermod user cannot pass through
  (mktemp -d makes 0700 folders) is refused by `hermod init` and by
  `hermod start`, with the folder and the fix named; before, it started,
  took mail and never delivered it.
- Install order: `make install` on a machine without the hermodrop group
  cannot make postdrop setgid; the `hermod init` that makes the group
  then does it, and an ordinary user's sendmail works.  Run in a mount
  namespace with a private copy of /etc (without hermodrop) and the
  installed tree bound on the real prefix, so the machine is untouched.
- `hermod init` writes DIR/bin/sendmail, mailq and newaliases; mailx
  given DIR/bin/sendmail as its one sendmail path delivers.
- myhostname is the fully qualified name when the resolver knows one
  (an /etc/hosts line, bound over /etc/hosts in a mount namespace).
"""
import os
import re
import shutil
import socket
import subprocess
import tempfile

from hermodtest import TAP, Instance, BUILDDIR, prog, wait_until, free_port_base

t = TAP()
root = os.geteuid() == 0


def run(argv, **kw):
    kw.setdefault("timeout", 120)
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
    return p.returncode, p.stdout.decode(errors="replace")


def make_var(name):
    with open(os.path.join(BUILDDIR, "Makefile")) as f:
        for line in f:
            m = re.match(r"^%s = (.*)$" % name, line)
            if m:
                return m.group(1).strip()
    return None


# -- 7: DIR/bin/sendmail for programs that take one path ------------------------
with Instance(users=["alice"]) as h:
    bindir = os.path.join(h.dir, "bin")
    for n in ("sendmail", "mailq", "newaliases"):
        p = os.path.join(bindir, n)
        t.ok(os.access(p, os.X_OK), "hermod init wrote an executable bin/%s" % n)
    rc, out = run([os.path.join(bindir, "mailq")], env={"PATH": "/usr/bin:/bin"})
    t.ok(rc == 0 and "Mail queue is empty" in out, "bin/mailq lists the instance's queue", out)
    rc, out = run([os.path.join(bindir, "newaliases")], env={"PATH": "/usr/bin:/bin"})
    t.ok(rc == 0 and "aliases" in out, "bin/newaliases rebuilds the instance's aliases", out)
    mailrc = os.path.join(h.dir, "mailrc")
    with open(mailrc, "w") as f:
        f.write("set sendmail=%s\n" % os.path.join(bindir, "sendmail"))
    # no -C, no HERMOD_CONFIG: only the script knows the instance
    env = {"PATH": "/usr/bin:/bin", "MAILRC": mailrc, "HOME": h.dir}
    rc, out = run(["mail", "-s", "through bin/sendmail", "alice@example.test"], input=b"hello from mailx\n",
                  env=env)
    t.is_(rc, 0, "mailx with set sendmail=DIR/bin/sendmail exits 0", out)
    got = h.wait_messages("alice", 1)
    t.ok(got and b"Subject: through bin/sendmail" in got[0] and b"hello from mailx" in got[0],
         "mailx's message reached alice through DIR/bin/sendmail", h.log())

# -- 8: config -n shows what hermod.conf sets, also when it equals the default --
with Instance(users=[], start=False) as h:
    h.set_conf({"mail_name": "hermod", "smtpd_recipient_limit": "500"})
    p = h.hermod("config", "-n")
    out = p.stdout.decode()
    t.ok(re.search(r"(?m)^mail_name = hermod$", out), "config -n shows a value set to its default", out)
    t.ok(re.search(r"(?m)^smtpd_recipient_limit = 500$", out), "config -n shows a changed value", out)
    t.ok(not re.search(r"(?m)^smtpd_timeout = ", out), "config -n leaves out what is not set", out)

# -- 4: without a syslog socket, init sends the log to a file, start says where --
with Instance(users=["alice"], start=False) as h:
    conf = open(os.path.join(h.dir, "hermod.conf")).read()
    master = open(os.path.join(h.dir, "master.conf")).read()
    t.ok(re.search(r"(?m)^postlog\s+public/postlog\s+unix-dgram\s", master), "init's master.conf has postlogd", master)
    logfile = os.path.join(h.dir, "log", "maillog")
    if not os.path.exists("/dev/log"):
        t.ok(re.search(r"(?m)^maillog_file = %s$" % re.escape(logfile), conf),
             "no /dev/log: init sets maillog_file = DIR/log/maillog", conf)
        p = h.hermod("start", check=False)
        msg = (p.stdout + p.stderr).decode(errors="replace")
        t.ok(p.returncode == 0 and ("log: " + logfile) in msg, "hermod start says where the log goes", msg)
        rc, out = run([os.path.join(h.dir, "bin", "sendmail"), "alice@example.test"], input=b"Subject: l\n\nx\n")
        h.master = None
        ok = wait_until(lambda: os.path.exists(logfile) and "delivered" in open(logfile).read(), 15)
        t.ok(ok, "the daemons' lines are in the file", open(logfile).read() if os.path.exists(logfile) else "no file")
        h.hermod("stop", check=False)
    else:
        t.ok(re.search(r"(?m)^# maillog_file = ", conf) and not re.search(r"(?m)^maillog_file", conf),
             "with /dev/log: init leaves the log to syslog", conf)
        p = h.hermod("start", check=False)
        msg = (p.stdout + p.stderr).decode(errors="replace")
        t.ok(p.returncode == 0 and "log: syslog" in msg, "hermod start says where the log goes", msg)
        t.ok(True, "(the file case is checked on machines without /dev/log)")
        h.hermod("stop", check=False)

# -- 3: mail that cannot move on says why, in mailq and in the log, at once --
with Instance(users=["alice"], start=False) as h:
    mc = os.path.join(h.dir, "master.conf")
    good = open(mc).read()
    bad = re.sub(r"(?m)^(pickup\s.*pickup)$", r"\1 -o queue_directory=/nonexistent/hermod-trouble", good)
    t.ok(bad != good, "a pickup that cannot start (its spool does not exist)")
    open(mc, "w").write(bad)
    h.start()
    rc, out = run([os.path.join(h.dir, "bin", "sendmail"), "alice@example.test"], input=b"Subject: stuck\n\nx\n")
    t.is_(rc, 0, "sendmail stores the message in maildrop/", out)
    want = "chdir /nonexistent/hermod-trouble"
    got = wait_until(lambda: want in h.mailq().stdout.decode(errors="replace"), 60)
    q = h.mailq().stdout.decode(errors="replace")
    t.ok(got and re.search(r"(?m)^-- Mail is not moving: service pickup cannot start since .*" + re.escape(want), q),
         "within a minute mailq says why mail is not moving, in pickup's words", q)
    t.ok(re.search(r"(?m)^\(waiting: service pickup cannot start", q), "... on the waiting message too", q)
    js = h.mailq("--json").stdout.decode(errors="replace")
    t.ok('"delay_reason": "waiting: service pickup cannot start' in js, "... and in mailq --json", js)
    t.ok(re.search(r"service pickup cannot start: " + re.escape(want), h.log()), "the log says it once, with the reason",
         h.log())
    t.is_(h.log().count("service pickup cannot start:"), 1, "... once")
    open(mc, "w").write(good)
    h.hermod("reload")
    t.ok(h.wait_messages("alice", 1, 30), "after the fix and a reload the message is delivered", h.log())
    # the file is in the Maildir a moment before qmgr hears that local
    # is done and removes the queue file
    wait_until(lambda: "Mail queue is empty" in h.mailq().stdout.decode(errors="replace"), 15)
    q = h.mailq().stdout.decode(errors="replace")
    t.ok("Mail is not moving" not in q and "Mail queue is empty" in q, "and mailq no longer complains", q)

if not root:
    t.skip("privileged checks", "needs root (CI runs as root)")
    t.done()

# -- 3: a 0700 parent is refused, naming the folder and the fix ----------------
hermod = prog("hermod")
parent = tempfile.mkdtemp()         # 0700, like mktemp -d
inst = os.path.join(parent, "inst")
base = str(free_port_base())
rc, out = run([hermod, "init", inst, "--port-base", base])
t.is_(rc, 73, "hermod init in a 0700 folder is refused (EX_CANTCREAT)", out)
t.ok(parent in out and "cannot pass through" in out and ("chmod o+x " + parent) in out,
     "... naming the folder and the fix", out)
t.ok(not os.path.exists(os.path.join(inst, "hermod.conf")), "... and makes no instance")
os.chmod(parent, 0o755)
rc, out = run([hermod, "init", inst, "--port-base", base])
t.is_(rc, 0, "with the folder opened, hermod init works", out)
os.chmod(parent, 0o700)
rc, out = run([hermod, "-C", inst, "start"])
t.is_(rc, 78, "hermod start refuses when the folder was closed later (EX_CONFIG)", out)
t.ok(parent in out and ("chmod o+x " + parent) in out, "... naming the folder and the fix", out)
rc, out = run([hermod, "-C", inst, "status"])
t.ok(rc != 0, "... and nothing runs", out)
os.chmod(os.path.join(inst, "hermod.conf"), 0o600)
os.chmod(parent, 0o755)
rc, out = run([hermod, "-C", inst, "start"])
t.ok(rc == 78 and "cannot read" in out and "hermod.conf" in out,
     "hermod start refuses a hermod.conf the daemons cannot read", out)
shutil.rmtree(parent, ignore_errors=True)

# -- 8: the fully qualified host name ----------------------------------------------
short = socket.gethostname().split(".")[0]
work = tempfile.mkdtemp()
os.chmod(work, 0o755)
hosts = os.path.join(work, "hosts")
with open(hosts, "w") as f:
    f.write("127.0.0.1 localhost\n127.0.0.1 %s.hermod-fq.test %s\n" % (short, short))
inst = os.path.join(work, "fq")
script = ("set -e; mount --bind %s /etc/hosts; exec %s init %s --port-base %s"
          % (hosts, hermod, inst, base))
if "." not in socket.gethostname():
    rc, out = run(["unshare", "-m", "sh", "-c", script])
    t.is_(rc, 0, "hermod init with a fully qualified name in /etc/hosts", out)
    t.ok("myhostname = %s.hermod-fq.test (this host's fully qualified name)" % short in out,
         "init says it uses the fully qualified name", out)
    try:
        conf = open(os.path.join(inst, "hermod.conf")).read()
    except OSError:
        conf = ""
    t.ok(re.search(r"(?m)^myhostname = %s\.hermod-fq\.test$" % re.escape(short), conf),
         "hermod.conf has myhostname = the fully qualified name", conf)
    rc, out = run(["openssl", "x509", "-noout", "-subject", "-in", os.path.join(inst, "tls", "cert.pem")])
    t.ok("%s.hermod-fq.test" % short in out, "the certificate names it too", out)
else:
    t.skip("fully qualified name", "the host name is already fully qualified")
inst2 = os.path.join(work, "short")
with open(hosts, "w") as f:
    f.write("127.0.0.1 localhost\n127.0.0.1 %s\n" % short)
rc, out = run(["unshare", "-m", "sh", "-c", "set -e; mount --bind %s /etc/hosts; exec %s init %s --port-base %s"
               % (hosts, hermod, inst2, base)])
t.ok(rc == 0 and "no fully qualified name" in out and "set myhostname" in out,
     "without one, init says so and how to set it", out)
shutil.rmtree(work, ignore_errors=True)

# -- 6: install, then init (which makes hermodrop), then an ordinary user --------
prefix = make_var("prefix") or "/usr/local"
work = tempfile.mkdtemp()
os.chmod(work, 0o755)
dest = os.path.join(work, "dest")
etc = os.path.join(work, "etc")
inst = os.path.join(work, "inst")
base = str(free_port_base())
script = r"""
set -e
cp -a /etc {etc}
# the machine before hermod: no hermodrop group
sed -i '/^hermodrop:/d' {etc}/group {etc}/gshadow
mount --bind {etc} /etc
getent group hermodrop >/dev/null && {{ echo "STEP: group still there"; exit 1; }}
make -s -C {build} install DESTDIR={dest} 2>&1 | sed 's/^/install: /'
mkdir -p {prefix}
mount --bind {dest}{prefix} {prefix}
echo "STEP: installed"
ls -l {prefix}/libexec/hermod/postdrop | sed 's/^/before: /'
{prefix}/sbin/hermod init {inst} --port-base {base} | sed 's/^/init: /'
ls -l {prefix}/libexec/hermod/postdrop | sed 's/^/after: /'
printf 'pw\n' | {prefix}/sbin/hermod -C {inst} user add alice >/dev/null
{prefix}/sbin/hermod -C {inst} start
printf 'Subject: from nobody\n\nordinary user\n' | runuser -u nobody -- {prefix}/sbin/sendmail -C {inst} alice@example.test && echo "STEP: sendmail exit 0"
n=0
while [ $n -lt 100 ] && [ -z "$(ls {inst}/mail/alice/Maildir/new 2>/dev/null)" ]; do sleep 0.1; n=$((n+1)); done
ls {inst}/mail/alice/Maildir/new | sed 's/^/delivered: /'
{prefix}/sbin/hermod -C {inst} stop
""".format(etc=etc, build=BUILDDIR, dest=dest, prefix=prefix, inst=inst, base=base)
rc, out = run(["unshare", "-m", "sh", "-c", script], timeout=300)
t.ok("STEP: installed" in out, "make install on a machine without the hermodrop group", out)
before = re.search(r"(?m)^before: (\S+) \S+ (\S+) (\S+)", out)
t.ok(before and "s" not in before.group(1)[4:7], "... leaves postdrop without setgid", out)
after = re.search(r"(?m)^after: (\S+) \S+ (\S+) (\S+)", out)
t.ok(after and after.group(1)[6] == "s" and after.group(3) == "hermodrop",
     "hermod init (which made the group) made postdrop setgid hermodrop", out)
t.ok(re.search(r"(?m)^init: .*made setgid hermodrop", out), "... and said so", out)
t.ok("STEP: sendmail exit 0" in out, "runuser -u nobody sendmail exits 0", out)
t.ok(re.search(r"(?m)^delivered: \S", out), "... and the message is delivered", out)
t.is_(rc, 0, "the whole scenario ran", out)
shutil.rmtree(work, ignore_errors=True)
t.done()
