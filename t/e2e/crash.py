"""
crash: while 1,000 messages are injected with sendmail, kill -9 qmgr and
local several times; after the master restarts them every message must
be delivered.  Duplicates are allowed by the design (a crash may deliver
twice) and are counted and reported.
"""
import re
import signal
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from hermodtest import TAP, Instance, wait_until

N = int(os.environ.get("HERMOD_CRASH_MESSAGES", "1000"))
t = TAP()
with Instance(users=["alice"], conf={"minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
                                     "queue_run_delay": "1s", "qmgr_rescan_interval": "2s"}) as h:
    kills = []
    stop = threading.Event()

    def killer():
        services = ["qmgr", "local", "qmgr", "local", "local", "qmgr", "local", "qmgr"]
        for svc in services:
            if stop.wait(0.6):
                break
            pids = h.pids(svc)
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills.append((svc, pid))
                except ProcessLookupError:
                    pass

    def send(i):
        return h.sendmail(["alice@example.test"], b"Subject: crash-%d\nX-Seq: %d\n\nmessage %d\n" % (i, i, i)).returncode

    th = threading.Thread(target=killer)
    th.start()
    with ThreadPoolExecutor(4) as ex:
        rcs = list(ex.map(send, range(N)))
    stop.set()
    th.join()
    t.is_(sum(1 for r in rcs if r != 0), 0, "all %d sendmail calls exit 0" % N)
    killed = {s for s, _ in kills}
    t.ok(len(kills) >= 4 and killed == {"qmgr", "local"}, "qmgr and local were killed several times (%d kills)" % len(kills), kills)

    def count():
        seen = {}
        for m in h.messages("alice"):
            mm = re.search(rb"X-Seq: (\d+)", m)
            if mm:
                seen[int(mm.group(1))] = seen.get(int(mm.group(1)), 0) + 1
        return seen

    wait_until(lambda: len(count()) >= N, 180, 0.5)
    seen = count()
    missing = [i for i in range(N) if i not in seen]
    dups = sum(c - 1 for c in seen.values())
    t.is_(len(missing), 0, "every one of the %d messages delivered (missing: %s)" % (N, missing[:20]))
    t.diag("duplicates after %d kills: %d" % (len(kills), dups))
    t.ok(dups <= N // 10, "duplicates stay rare (%d)" % dups)
    t.ok(h.wait_queue_empty(60), "queue empty at the end", h.queue_files()[:10])
    t.ok(h.pids("qmgr") and h.pids("local"), "the master restarted qmgr and local")
    corrupt = os.listdir(os.path.join(h.spool, "corrupt"))
    t.is_(corrupt, [], "no queue file was judged corrupt")
t.done()
