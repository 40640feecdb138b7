"""
mbox_lock: local's mbox delivery respects the locks other mail programs
use (dotlock NAME.lock and an fcntl lock on the file): while another
writer holds them nothing is written; a concurrent writer that follows
the same protocol and hermod never interleave their messages.
"""
import fcntl
import mailbox
import os
import threading
import time

from hermodtest import TAP, Instance, SystemUser, wait_until

t = TAP()
with SystemUser() as su, Instance(users=[], start=False) as h:
    spool = os.path.join(h.dir, "mailspool")
    os.makedirs(spool, exist_ok=True)
    os.chmod(spool, 0o1777)
    h.set_conf({"mail_spool_directory": spool, "deliver_lock_attempts": "40"})
    h.start()
    mbox = os.path.join(spool, su.name)
    lock = mbox + ".lock"
    # first message creates the mbox
    h.sendmail([su.name + "@example.test"], b"Subject: L0\n\nfirst\n")
    t.ok(wait_until(lambda: os.path.exists(mbox) and b"Subject: L0" in open(mbox, "rb").read(), 10), "mbox created", h.log())

    # hold both locks: delivery must wait
    # local may still be releasing its own locks after writing L0
    def take_dotlock():
        try:
            return os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return None
    lfd = wait_until(take_dotlock, 10)
    t.ok(lfd is not None, "took the dotlock")
    fd = os.open(mbox, os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    h.sendmail([su.name + "@example.test"], b"Subject: L1\n\nwhile locked\n")
    time.sleep(2)
    t.ok(b"Subject: L1" not in open(mbox, "rb").read(), "nothing written while another writer holds the locks")
    os.close(lfd)
    os.unlink(lock)
    fcntl.lockf(fd, fcntl.LOCK_UN)
    os.close(fd)
    t.ok(wait_until(lambda: b"Subject: L1" in open(mbox, "rb").read(), 15), "delivered once the locks are released", h.log())

    # concurrent writer following the same protocol
    N = 40
    stop = threading.Event()

    def writer():
        for i in range(N):
            while True:
                try:
                    lf = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                    break
                except FileExistsError:
                    time.sleep(0.005)
            with open(mbox, "ab") as f:
                fcntl.lockf(f, fcntl.LOCK_EX)
                f.write(b"From other@example.test Sat Nov 21 06:34:27 2026\nSubject: W%d\n\n" % i)
                for _ in range(50):
                    f.write(b"writer line %d\n" % i)
                    f.flush()
                f.write(b"\n")
                f.flush()
                fcntl.lockf(f, fcntl.LOCK_UN)
            os.close(lf)
            os.unlink(lock)
            time.sleep(0.01)

    th = threading.Thread(target=writer)
    th.start()
    for i in range(N):
        h.sendmail([su.name + "@example.test"], b"Subject: H%d\n\n" % i + b"hermod line\n" * 50)
    th.join()

    def complete():
        subs = [m["subject"] for m in mailbox.mbox(mbox)]
        return subs if sum(1 for s in subs if s and s.startswith("H")) >= N else None
    subs = wait_until(complete, 30, 0.2)
    t.ok(subs is not None, "all hermod messages delivered alongside the other writer", h.log())
    box = mailbox.mbox(mbox)
    bad = 0
    count = 0
    for m in box:
        count += 1
        body = m.get_payload()
        s = m["subject"] or ""
        if s.startswith("W") and "hermod line" in body:
            bad += 1
        if s.startswith("H") and "writer line" in body:
            bad += 1
    t.is_(bad, 0, "no message has the other writer's lines interleaved")
    t.is_(count, 2 + 2 * N, "the mbox holds exactly every message (%d)" % count)
    t.ok(not os.path.exists(lock), "no stale dotlock left behind")
t.done()
