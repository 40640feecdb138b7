"""
master: hermod-master supervision: a killed service is restarted, a
second master on the same spool is refused, reload keeps mail flowing,
stop ends every process of the instance.
"""
import os
import signal
import time

from hermodtest import TAP, Instance, wait_until

t = TAP()
with Instance(users=["alice"]) as h:
    t.ok(h.running(), "hermod status says running")
    for svc in ("pickup", "qmgr", "local"):
        if svc == "local" and not h.pids("local"):
            # local starts on demand: make it start
            h.sendmail(["alice@example.test"], b"Subject: wake\n\nx\n")
            wait_until(lambda: h.pids("local"), 10)
        old = h.pids(svc)
        t.ok(old, "%s is running" % svc)
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        if svc == "local":
            # restarted when needed: send mail to make it needed
            h.sendmail(["alice@example.test"], b"Subject: after-kill-local\n\nx\n")
        new = wait_until(lambda: [p for p in h.pids(svc) if p not in old], 15)
        t.ok(new, "%s restarted after kill -9 (old %s, new %s)" % (svc, old, new), h.log()[-2000:])
    n = len(h.messages("alice"))
    h.sendmail(["alice@example.test"], b"Subject: after-kills\n\nx\n")
    t.ok(h.wait_messages("alice", n + 1, 10), "mail flows after the restarts", h.log()[-3000:])
    t.ok("signal 9" in h.log() or "killed" in h.log(), "the master logged the killed processes")

    p = h.hermod("start", check=False)
    t.ok(p.returncode != 0, "a second start on the same spool is refused", p.stdout + p.stderr)
    t.ok(b"already running" in p.stdout + p.stderr, "with 'already running'", p.stdout + p.stderr)

    mpid = h.master.pid
    p = h.hermod("reload", check=False)
    t.is_(p.returncode, 0, "hermod reload exits 0")
    time.sleep(1)
    t.ok(h.running() and h.master.poll() is None, "master still running after reload")
    h.sendmail(["alice@example.test"], b"Subject: after-reload\n\nx\n")
    t.ok(h.wait_messages("alice", n + 2, 10), "mail flows after reload", h.log()[-3000:])

    p = h.hermod("stop", check=False)
    t.is_(p.returncode, 0, "hermod stop exits 0")
    t.ok(wait_until(lambda: not h.pids(None) or h.pids(None) == [], 15), "every process of the instance is gone", h.pids(None))
    t.ok(not h.running(), "status says not running")
    t.ok(not os.path.exists(h.pidfile()), "pid file removed")
t.done()
