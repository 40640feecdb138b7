"""
master_restart: hermod-master's supervision, with small stand-in
services instead of the real daemons: the descriptors and argv a child
gets, restart after kill -9, throttling of a service that dies at
start-up (without harm to the others), more processes when all are
busy (up to the limit), reload (added, removed and restarted services;
a broken master.conf keeps the running configuration), the refusal of
a second master, and stop (SIGKILL for a child that ignores SIGTERM,
pid file and sockets removed).  Also `hermod start` in the background.
"""
import os
import signal
import socket
import subprocess
import time

from hermodtest import TAP, Instance, prog, wait_until

SVC = r'''#!/usr/bin/python3
import os, socket, sys, time, signal
d, name = sys.argv[2], sys.argv[4]
mode = sys.argv[5] if len(sys.argv) > 5 else "sleep"
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(os.path.join(d, "starts." + name), "a") as f:
    f.write("%d\n" % os.getpid())
if mode == "crash":
    sys.exit(3)
if mode == "fds":
    # written under a temporary name and renamed, so that the test never
    # reads a half-written file
    with open(os.path.join(d, "fds." + name + ".tmp"), "w") as f:
        for fd in sorted(int(x) for x in os.listdir("/proc/self/fd")):
            try:
                f.write("%d %s\n" % (fd, os.readlink("/proc/self/fd/%d" % fd)))
            except OSError:
                pass
        f.write("argv %s\n" % " ".join(sys.argv[1:]))
        f.write("env %s\n" % " ".join(sorted(k for k in os.environ)))
    os.rename(os.path.join(d, "fds." + name + ".tmp"), os.path.join(d, "fds." + name))
if mode == "accept":
    l = socket.socket(fileno=3)
    os.write(4, b"I")
    while True:
        c, _ = l.accept()
        os.write(4, b"B")
        while c.recv(100):
            pass
        c.close()
        os.write(4, b"I")
while True:
    time.sleep(100)
'''


def master_conf(h, lines):
    with open(os.path.join(h.dir, "master.conf"), "w") as f:
        for l in lines:
            f.write(l.replace("SVC", os.path.join(h.dir, "svc.py")) + "\n")


def starts(h, name):
    try:
        with open(os.path.join(h.dir, "starts." + name)) as f:
            return len(f.read().split())
    except OSError:
        return 0


BASE = [
    "pickup  public/pickup  unix n 1 SVC",
    "qmgr    private/qmgr   unix y 1 SVC fds",
    "worker  private/worker unix y 3 SVC accept",
    "crashy  private/crashy unix y 1 SVC crash",
    "nosock  -              none n 1 SVC",
]

t = TAP()
with Instance(users=[], start=False) as h:
    with open(os.path.join(h.dir, "svc.py"), "w") as f:
        f.write(SVC)
    os.chmod(os.path.join(h.dir, "svc.py"), 0o755)
    master_conf(h, BASE)
    h.start()
    t.ok(h.running(), "hermod status: running")
    for svc in ("pickup", "qmgr", "worker", "nosock"):
        t.is_(len(h.pids(svc)), 1, "one %s process at start" % svc)

    # what a child gets
    wait_until(lambda: os.path.exists(os.path.join(h.dir, "fds.qmgr")), 5)
    with open(os.path.join(h.dir, "fds.qmgr")) as f:
        fds = f.read()
    t.ok("\n3 socket:" in fds and "\n4 pipe:" in fds, "fd 3 is the listener, fd 4 the status pipe", fds)
    # the stand-in itself has its output file open
    t.ok(not any(int(l.split()[0]) >= 5 and "fds.qmgr" not in l
                 for l in fds.splitlines() if l[0].isdigit()), "no other descriptor leaks into a child", fds)
    t.ok("argv -C %s -s qmgr fds" % h.dir in fds, "argv: -C DIR -s NAME args", fds)
    t.ok(" HERMOD_MASTER" in fds and " HERMOD_LOG_STDERR" in fds and " HERMOD_CONFIG" not in fds,
         "environment: HERMOD_MASTER and HERMOD_LOG_STDERR (foreground)", fds)
    st = os.stat(os.path.join(h.spool, "public", "pickup"))
    t.is_(oct(st.st_mode & 0o777), "0o666", "public socket is 0666 (the folder mode gates it)")
    st = os.stat(os.path.join(h.spool, "private", "qmgr"))
    t.is_(oct(st.st_mode & 0o777), "0o600", "private socket is 0600")

    # a service dying at start-up is throttled, and harms nobody else
    qmgr0 = h.pids("qmgr")
    time.sleep(4)
    n = starts(h, "crashy")
    t.ok(2 <= n <= 6, "crashy was restarted but throttled (%d starts in 4 s)" % n)
    t.ok("failed" in h.log() and "next start in" in h.log(), "the master logged the throttling", h.log()[-1500:])
    t.is_(h.pids("qmgr"), qmgr0, "qmgr untouched by crashy's deaths")

    # kill -9 of a long-running process: restarted at once
    old = h.pids("qmgr")
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    new = wait_until(lambda: [p for p in h.pids("qmgr") if p not in old], 3)
    t.ok(new, "qmgr restarted at once after kill -9", h.log()[-1500:])
    t.ok("pid %d killed by signal 9" % old[0] in h.log(), "the master logged 'killed by signal 9'")

    # all workers busy: more are started, up to the limit of 3
    clients = []
    for i in range(5):
        c = socket.socket(socket.AF_UNIX)
        c.connect(os.path.join(h.spool, "private", "worker"))
        clients.append(c)
        time.sleep(0.3)
    t.is_(len(h.pids("worker")), 3, "three workers (the limit) for five clients")
    busy = h.pids("worker")

    # reload: nosock removed, extra added, idle processes restarted,
    # busy ones left alone until they are idle
    pickup0 = h.pids("pickup")
    master_conf(h, [l for l in BASE if not l.startswith("nosock")] +
                ["extra   private/extra  unix y 1 SVC"])
    p = h.hermod("reload", check=False)
    t.is_(p.returncode, 0, "hermod reload exits 0")
    t.ok(wait_until(lambda: h.pids("extra") and not h.pids("nosock"), 5), "reload added extra and removed nosock",
         h.log()[-1500:])
    t.ok(wait_until(lambda: h.pids("pickup") and h.pids("pickup") != pickup0, 5),
         "idle pickup restarted with the new configuration")
    t.ok(all(pid in h.pids("worker") for pid in busy), "busy workers keep their clients")
    for c in clients:
        c.close()
    t.ok(wait_until(lambda: not any(pid in h.pids("worker") for pid in busy), 5),
         "old workers stop once idle")
    t.ok(wait_until(lambda: h.pids("worker"), 5), "a new worker runs")
    t.ok(not os.path.exists(os.path.join(h.spool, "private", "nosock")), "removed service left no socket")

    # broken master.conf: the running configuration stays
    with open(os.path.join(h.dir, "master.conf"), "a") as f:
        f.write("broken line\n")
    h.hermod("reload", check=False)
    time.sleep(1)
    t.ok(h.running() and h.master.poll() is None, "a broken master.conf does not stop the master")
    t.ok("keeping the running configuration" in h.log(), "and the master says so", h.log()[-1000:])
    t.ok(h.pids("extra") and h.pids("qmgr"), "services still running")

    # a second master on the same spool
    master_conf(h, BASE)
    p = subprocess.run([prog("hermod-master"), "-C", h.dir, "-f"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=h.env(), timeout=10)
    t.is_(p.returncode, 75, "a second hermod-master exits 75")
    t.ok(b"already running" in p.stdout, "saying 'already running'", p.stdout)

    # stop: everything goes, a stubborn child is killed after the grace time
    master_conf(h, BASE[:2] + ["stubborn -  none n 1 SVC stubborn"])
    h.hermod("reload", check=False)
    wait_until(lambda: starts(h, "stubborn"), 5)
    t0 = time.time()
    p = h.hermod("stop", check=False)
    t.ok(p.returncode == 0, "hermod stop exits 0", p.stderr)
    t.ok(not h.pids(None), "no process of the instance is left", h.pids(None))
    t.ok(time.time() - t0 < 15, "stop took %.1f s" % (time.time() - t0))
    t.ok("did not stop: killing it" in h.log(), "the stubborn child was killed", h.log()[-1000:])
    t.ok("terminating on signal 15" in h.log(), "master logged 'terminating on signal 15'")
    t.ok(not os.path.exists(h.pidfile()), "pid file removed")
    t.ok(not os.path.exists(os.path.join(h.spool, "private", "qmgr")), "sockets removed")
    p = h.hermod("status", check=False)
    t.is_(p.returncode, 1, "status exits 1 when stopped")
    t.ok(b"not running" in p.stdout, "status says not running")
    h.master.wait(5)
    h.master = None

    # in the background
    master_conf(h, BASE[:2])
    p = h.hermod("start", check=False)
    t.ok(p.returncode == 0, "hermod start (background) exits 0", p.stderr)
    t.ok(h.running() and h.pids("qmgr") and h.pids("pickup"), "and the instance is running when it returns")
    p = h.hermod("start", check=False)
    t.ok(p.returncode == 75 and b"already running" in p.stderr, "a second start is refused", p.stderr)
    p = h.hermod("stop", check=False)
    t.is_(p.returncode, 0, "hermod stop exits 0")
    t.ok(not h.pids(None), "nothing left")
    p = h.hermod("stop", check=False)
    t.ok(p.returncode != 0, "stop when stopped fails")
t.done()
