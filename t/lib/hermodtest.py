"""
hermodtest: helpers for hermod's end-to-end tests.

    from hermodtest import TAP, Instance
    t = TAP()
    with Instance(users=["alice", "bob"]) as h:
        h.sendmail(["-t"], b"To: alice@example.test\n\nhi\n")
        t.ok(h.wait_messages("alice", 1), "delivered")
    t.done()

An Instance is a rootless instance (or a privileged one when the tests run
as root) made with `hermod init` in a fresh folder under /tmp, started
with `hermod start --foreground` so that its log is kept in DIR/master.log,
and stopped (by PID) and removed when the test ends (HERMOD_KEEP=1 keeps
the folder).  Every wait has a timeout.
"""
import atexit
import glob
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SRCDIR = os.environ.get("HERMOD_SRCDIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDDIR = os.environ.get("HERMOD_BUILDDIR") or SRCDIR


def prog(name):
    """Path of a program in the build tree."""
    for sub in ("mta", "queue", "deliver", "popd", "imapd", "xmppgw"):
        p = os.path.join(BUILDDIR, sub, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(name)


class TAP:
    """Minimal TAP producer; done() prints the plan and exits."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        print("%sok %d - %s" % ("" if cond else "not ", self.n, name), flush=True)
        if not cond:
            self.failed += 1
            if diag is not None:
                for line in str(diag).splitlines()[-30:]:
                    print("#   " + line)
        return bool(cond)

    def is_(self, got, want, name, diag=None):
        d = "got:      %r\nexpected: %r" % (got, want)
        if diag is not None:
            d += "\n" + (diag.decode(errors="replace") if isinstance(diag, bytes) else str(diag))
        return self.ok(got == want, name, d)

    def skip(self, name, why):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, why), flush=True)

    def diag(self, text):
        for line in str(text).splitlines():
            print("# " + line, flush=True)

    def done(self):
        print("1..%d" % self.n, flush=True)
        sys.exit(1 if self.failed else 0)


def wait_until(pred, timeout=10.0, interval=0.02):
    """Poll pred() until it returns a true value or timeout seconds pass."""
    end = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() >= end:
            return v
        time.sleep(interval)


_instances = []

# the ports an instance uses, relative to its port base (see hermod init)
PORT_OFFSETS = (25, 65, 87, 110, 143, 222, 223, 269, 347, 993, 995)


def ephemeral_range():
    """The kernel's range for the local ports of outgoing connections:
    a listener put there may find its port taken by any client's socket
    for a moment (CI failed so once), so test ports stay out of it."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def random_port_base(step=100, span=1000):
    """A random multiple of step whose span ports (an instance's offsets
    go up to 995) lie in 10000-65535 and outside the ephemeral range."""
    lo, hi = ephemeral_range()
    bases = [b for b in range(10000, 65536 - span, step) if b + span <= lo or b > hi]
    return random.choice(bases)


def free_port_base(offsets=PORT_OFFSETS):
    """A port base whose instance ports are all free on 127.0.0.1 now.
    Tests run in parallel (and other programs listen), so pick at random
    and check by binding each port."""
    import socket
    for _ in range(200):
        base = random_port_base()
        ok = True
        for off in offsets:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", base + off))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            return base
    raise RuntimeError("no free port base found")


def _cleanup():
    for h in list(_instances):
        try:
            h.close()
        except Exception:
            pass


atexit.register(_cleanup)


class Instance:
    def __init__(self, users=("alice", "bob"), domain="example.test", conf=None,
                 start=True, password="secret"):
        self.dir = tempfile.mkdtemp(prefix="hermod-t-")
        os.chmod(self.dir, 0o755)
        self.domain = domain
        self.port_base = free_port_base()
        self.master = None
        self.logf = None
        _instances.append(self)
        self.hermod("init", self.dir, "--domain", domain, "--port-base", str(self.port_base), cfg=False)
        # Tests talk only to 127.0.0.1: no DNS question may leave the
        # machine.  Port 9 has no server, so lookups fail at once (a
        # temporary failure: remote mail is deferred) unless a test runs
        # its own DNS server and sets dns_resolvers itself.
        self.set_conf({"dns_resolvers": "127.0.0.1:9"})
        if conf:
            self.set_conf(conf)
        for u in users:
            self.add_user(u, password)
        if start:
            self.start()

    # -- environment ---------------------------------------------------
    def env(self, extra=None):
        e = dict(os.environ)
        e["HERMOD_CONFIG"] = self.dir
        e["PATH"] = os.path.join(BUILDDIR, "mta") + ":" + e.get("PATH", "/usr/bin:/bin")
        if extra:
            e.update(extra)
        return e

    def hermod(self, *args, cfg=True, input=None, check=True, timeout=60):
        argv = [prog("hermod")] + (["-C", self.dir] if cfg else []) + list(args)
        p = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=self.env(), timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError("%s: exit %d\n%s%s" % (" ".join(argv), p.returncode,
                                                      p.stdout.decode(errors="replace"),
                                                      p.stderr.decode(errors="replace")))
        return p

    def set_conf(self, conf):
        """Append name = value settings to hermod.conf (later lines win)."""
        with open(os.path.join(self.dir, "hermod.conf"), "a") as f:
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))

    def add_user(self, name, password="secret"):
        self.hermod("user", "add", name, input=(password + "\n").encode())

    def write_aliases(self, text, rebuild=True):
        with open(os.path.join(self.dir, "aliases"), "w") as f:
            f.write(text)
        if rebuild:
            return self.run("newaliases", [])

    # -- running ---------------------------------------------------------
    @property
    def spool(self):
        return os.path.join(self.dir, "spool")

    def pidfile(self):
        return os.path.join(self.spool, "pid", "master.pid")

    def start(self, timeout=15):
        # Between free_port_base's check and the master's bind another
        # test (or any client) may take a port; move and try again then.
        for attempt in range(4):
            logged = len(self.log())
            self.logf = open(os.path.join(self.dir, "master.log"), "ab")
            self.master = subprocess.Popen([prog("hermod"), "-C", self.dir, "start", "--foreground"],
                                           stdout=self.logf, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env=self.env(),
                                           start_new_session=True)
            ok = wait_until(lambda: self.running() and os.path.exists(os.path.join(self.spool, "private", "qmgr")), timeout)
            if ok:
                break
            taken = "Address already in use" in self.log()[logged:]
            self.stop()
            if not taken or attempt == 3:
                raise RuntimeError("hermod did not start:\n" + self.log())
            self.rebase()
        # wait until the single-instance daemons are up
        wait_until(lambda: self.pids("qmgr") and self.pids("pickup"), timeout)
        return self

    def rebase(self):
        """Move every port of the instance (master.conf, hermod.conf and
        any int attribute tests derived from the base) to a new base."""
        old = self.port_base
        files = [os.path.join(self.dir, n) for n in os.listdir(self.dir) if n.endswith(".conf")]
        texts = {}
        for path in files:
            if os.path.isfile(path):
                with open(path) as f:
                    texts[path] = f.read()
        num = re.compile(r"([:= ])(\d{5})\b")
        used = set(PORT_OFFSETS)
        for text in texts.values():
            used |= {int(m.group(2)) - old for m in num.finditer(text) if 0 <= int(m.group(2)) - old < 1000}
        new = free_port_base(sorted(used))

        def shift(m):
            off = int(m.group(2)) - old
            return m.group(1) + str(new + off) if 0 <= off < 1000 else m.group(0)
        for path, text in texts.items():
            with open(path, "w") as f:
                f.write(num.sub(shift, text))
        for k, v in list(vars(self).items()):
            if isinstance(v, int) and not isinstance(v, bool) and old <= v < old + 1000:
                setattr(self, k, new + v - old)
        self.port_base = new

    def running(self):
        return self.hermod("status", check=False).returncode == 0

    def stop(self, timeout=20):
        if self.master is None:
            return
        if self.master.poll() is None:
            self.master.send_signal(signal.SIGTERM)
            try:
                self.master.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.master.pid, signal.SIGKILL)
                self.master.wait(5)
        # anything left of this instance
        for pid in self.pids(None):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.master = None
        if self.logf:
            self.logf.close()
            self.logf = None

    def close(self):
        self.stop()
        if self in _instances:
            _instances.remove(self)
        if os.environ.get("HERMOD_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def log(self):
        try:
            with open(os.path.join(self.dir, "master.log"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def pids(self, service):
        """PIDs of this instance's processes (of one service, or all)."""
        out = []
        for d in glob.glob("/proc/[0-9]*"):
            try:
                with open(d + "/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if self.dir.encode() not in argv:
                continue
            if service is None or (b"-s" in argv and argv[argv.index(b"-s") + 1:argv.index(b"-s") + 2] == [service.encode()]):
                try:
                    with open(d + "/stat") as f:
                        if f.read().split(") ")[-1].startswith("Z"):
                            continue
                except OSError:
                    continue
                out.append(int(d[6:]))
        return out

    # -- mail --------------------------------------------------------------
    def run(self, name, args, input=b"", env=None, timeout=60):
        """Run a build-tree program (sendmail, mailq, newaliases) for this instance."""
        return subprocess.run([prog(name)] + list(args), input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=self.env(env), timeout=timeout)

    def sendmail(self, args, data, env=None):
        return self.run("sendmail", args, input=data, env=env)

    def mailq(self, *args):
        return self.run("mailq", list(args))

    def maildir(self, user):
        return os.path.join(self.dir, "mail", user, "Maildir")

    def message_files(self, user):
        md = self.maildir(user)
        return sorted(glob.glob(os.path.join(md, "new", "*")) + glob.glob(os.path.join(md, "cur", "*")))

    def messages(self, user):
        out = []
        for p in self.message_files(user):
            with open(p, "rb") as f:
                out.append(f.read())
        return out

    def wait_messages(self, user, n, timeout=10):
        """Wait until user has at least n messages; returns them (or [] on timeout)."""
        got = wait_until(lambda: len(self.message_files(user)) >= n, timeout)
        return self.messages(user) if got else []

    def queue_files(self):
        out = []
        for q in ("maildrop", "incoming", "active", "deferred", "hold"):
            for root, dirs, files in os.walk(os.path.join(self.spool, q)):
                out += [os.path.join(root, f) for f in files]
        return out

    def wait_queue_empty(self, timeout=10):
        return wait_until(lambda: not self.queue_files(), timeout)


class SystemUser:
    """A system (passwd) user for tests of system-user delivery.

    Rootless, that is the instance owner (the only system user a rootless
    instance serves); as root, a throw-away user made with useradd and
    removed at the end."""

    def __init__(self):
        import pwd
        self.made = False
        if os.geteuid() == 0:
            self.name = "hermodt%d" % (os.getpid() % 100000)
            subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", self.name],
                           check=True)
            self.made = True
        else:
            self.name = pwd.getpwuid(os.getuid()).pw_name
        self.pw = pwd.getpwnam(self.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.made:
            subprocess.run(["userdel", self.name], stderr=subprocess.DEVNULL)
