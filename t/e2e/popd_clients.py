"""
popd_clients: real POP3 clients (fetchmail, getmail6) download a mailbox
of 100 messages completely, deleting them, from a Maildir (virtual user)
and from an mbox (system user, privileged instance).

Every wait has a time limit.  A client that has not finished in
CLIENT_LIMIT seconds is reported as a failure naming the client, the
mailbox and its last output lines (the step it was at); the report
shows what each side was blocked in (state, kernel wait channel and
system call of the client, its children and every popd process of the
session, the bytes queued on the connection), getmail's Python stack
(PYTHONFAULTHANDLER, dumped on SIGABRT) and the popd log.

getmail6 up to 6.19.8 (Debian's 6.18.11 among them) can hang in its own
delivery code: ForkingBase.forkchild() installs its SIGCHLD handler only
after fork(), and waits on a condition that the handler notifies, so a
delivery child that exits before the parent gets there (a loaded
machine) is never reaped and getmail waits socket.getdefaulttimeout()
(180 s) with the POP3 session idle: popd has answered every command and
waits for the next (upstream issues #52 and #226, fixed by pull request
#246 in 6.19.9, which uses multiprocessing).  Seen here once under
load, and reproduced: getmail blocked in a futex in _wait_for_child
with a zombie delivery child, popd in poll() for the next command,
nothing queued on the connection.  So getmail runs with that one
method replaced by a plain fork + waitpid (GETMAIL_FIX) when the
installed version has the racy one; its POP3 code is untouched.
"""
import glob
import os
import platform
import pwd
import re
import shutil
import signal
import subprocess
import tempfile

from hermodtest import TAP, Instance, SystemUser, BUILDDIR, wait_until

POPD = os.path.join(BUILDDIR, "popd", "popd")
N = 100
CLIENT_LIMIT = 90   # alone a download takes about 7 s in the sanitizer build

# getmail with ForkingBase.forkchild (fork, then install the SIGCHLD
# handler, then wait for its notification: racy) replaced by fork +
# waitpid, which cannot miss the child.  argv as for getmail.
GETMAIL_FIX = r"""
import inspect, os, runpy, shutil, sys
from getmailcore import baseclasses
from getmailcore.exceptions import getmailOperationError

def forkchild(self, childfun, with_out=True):
    self.child = child = baseclasses.Namespace()
    child.stdout = baseclasses.TemporaryFile23()
    child.stderr = baseclasses.TemporaryFile23()
    child.childpid = os.fork()
    if child.childpid == 0:
        childfun(child.stdout, child.stderr)    # ends with os._exit
        os._exit(127)
    pid, st = os.waitpid(child.childpid, 0)
    if os.WIFSIGNALED(st):
        raise getmailOperationError("child pid %d killed by signal %d" % (pid, os.WTERMSIG(st)))
    child.exitcode = os.WEXITSTATUS(st)
    child.stderr.seek(0)
    child.err = child.stderr.read().strip().decode()
    child.stdout.seek(0)
    if with_out:
        child.out = child.stdout.read().strip()
    return child

if "os.fork()" in inspect.getsource(baseclasses.ForkingBase.forkchild):
    baseclasses.ForkingBase.forkchild = forkchild
sys.argv = ["getmail"] + sys.argv[1:]
runpy.run_path(shutil.which("getmail"), run_name="__main__")
"""

SYSCALLS = {0: "read", 1: "write", 7: "poll", 23: "select", 35: "nanosleep", 44: "sendto",
            45: "recvfrom", 61: "wait4", 202: "futex", 230: "clock_nanosleep", 232: "epoll_wait",
            270: "pselect6", 271: "ppoll"} if platform.machine() == "x86_64" else {}


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        return "(%s)" % e.strerror


def proc_state(pid):
    """One line: what pid is doing (state, kernel wait, system call)."""
    st = _read("/proc/%d/stat" % pid)
    state = st.rsplit(") ", 1)[1].split()[0] if ") " in st else "?"
    sc = _read("/proc/%d/syscall" % pid).split()
    call = sc[0] if sc else "?"
    if call.lstrip("-").isdigit():
        n = int(call)
        call = "running" if n < 0 else "%s(fd %s)" % (SYSCALLS.get(n, "syscall %d" % n), int(sc[1], 16)) \
            if n in (0, 1, 44, 45) else SYSCALLS.get(n, "syscall %d" % n)
    fds = []
    try:
        for fd in sorted(os.listdir("/proc/%d/fd" % pid), key=int):
            fds.append("%s=%s" % (fd, os.readlink("/proc/%d/fd/%s" % (pid, fd))))
    except OSError:
        pass
    return "pid %d [%s] state %s, wchan %s, in %s; fds %s" % (
        pid, _read("/proc/%d/cmdline" % pid).replace("\0", " ")[:80], state,
        _read("/proc/%d/wchan" % pid), call, " ".join(fds))


def descendants(pid):
    kids = {}
    for st in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(st) as f:
                ppid = int(f.read().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(st.split("/")[2]))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for k in kids.get(p, []):
            out.append(k)
            todo.append(k)
    return sorted(out)


def tcp_queues(port):
    """The connections to or from port with their send/receive queues."""
    out = []
    for tab in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(tab).read().splitlines()[1:]
        except OSError:
            continue
        for l in lines:
            f = l.split()
            lp, rp = int(f[1].split(":")[1], 16), int(f[2].split(":")[1], 16)
            if port in (lp, rp) and f[3] != "0A":       # not the listener
                tx, rx = (int(x, 16) for x in f[4].split(":"))
                out.append("%d -> %d: state %s, send queue %d, receive queue %d, inode %s"
                           % (lp, rp, f[3], tx, rx, f[9]))
    return out


def hang_report(h, proc, port):
    """What the client (and its children) and popd are waiting for."""
    lines = ["client:"]
    for pid in [proc.pid] + descendants(proc.pid):
        lines.append("  " + proc_state(pid))
    lines.append("popd (service, login and mail processes):")
    for pid in sorted(h.pids("pop3")):
        lines.append("  " + proc_state(pid))
    lines.append("connections on port %d:" % port)
    lines += ["  " + l for l in tcp_queues(port)] or ["  none"]
    return "\n".join(lines)


def run_client(t, h, name, what, argv, env=None):
    """Run a POP3 client for at most CLIENT_LIMIT seconds.  Returns
    (finished, output); on a hang records a failure that says which
    client and which step hung, what each side was blocked in, and the
    popd log."""
    port = h.port_base + 110
    env = dict(env or os.environ, PYTHONFAULTHANDLER="1")
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=CLIENT_LIMIT)
        return True, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        pass
    report = hang_report(h, p, port)
    # a Python client (getmail) dumps its stack on SIGABRT
    p.send_signal(signal.SIGABRT)
    try:
        out, _ = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        out = b""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait(10)
    out = out.decode(errors="replace")
    t.ok(False, "%s (%s): finished within %ds" % (name, what, CLIENT_LIMIT))
    # in full (a failed point's own diagnostics keep only 30 lines)
    t.diag("%s (%s) hung.  Its last output (the step it was at; a Python stack if any):\n%s\n"
           "--- blocked in:\n%s\n--- log:\n%s"
           % (name, what, "\n".join(out.splitlines()[-25:]), report, "\n".join(h.log().splitlines()[-40:])))
    return False, out


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
    _, out = run_client(t, h, "fetchmail", what, ["fetchmail", "-f", rc, "--nodetach", "-v", "--pidfile",
                                                  os.path.join(d, "pid")], env)
    got = subjects(glob.glob(os.path.join(d, "msg.*")))
    t.is_(len(got), N, "fetchmail downloaded all %d messages (%s)" % (N, what), out[-2000:])
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
    _, text = run_client(t, h, "getmail", what, ["/usr/bin/python3", "-c", GETMAIL_FIX, "--getmaildir", d,
                                                 "--rcfile", "getmailrc"])
    got = subjects(glob.glob(os.path.join(out, "new", "*")))
    t.is_(len(got), N, "getmail6 downloaded all %d messages (%s)" % (N, what), text[-2000:])
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
        if not t.ok(wait_until(lambda: h.message_files(user), 10), "%s: probe message delivered" % user,
                    h.log()[-3000:]):
            continue
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
    subprocess.run(["chpasswd"], input=("%s:Mbox-pw1\n" % su.name).encode(), check=True, timeout=30)
    enable_pop3(h)
    h.start()
    t.ok(wait_until(lambda: h.pids("pop3"), 10), "pop3 running (privileged instance)", h.log())
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
