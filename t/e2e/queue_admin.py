"""
queue_admin: every `hermod queue` command on a running instance, and
that mailq and sendmail -q agree with them.  Remote mail is deferred
(4.4.0), which gives the
deferred messages to work on (default_transport = error:4.4.0 makes
every remote recipient defer, with or without an smtp agent): list, show, hold (qmgr leaves held mail
alone, also when it is held during its delivery), release, requeue
(ID and ALL), flush, delete (ID and ALL); exit statuses per sysexits.
"""
import os
import re
import time

from hermodtest import TAP, Instance, wait_until

EX_USAGE, EX_NOINPUT = 64, 66

t = TAP()


def find(h, qname, qid):
    for root, dirs, files in os.walk(os.path.join(h.spool, qname)):
        if qid in files:
            return os.path.join(root, qid)
    return None


def send(h, rcpts, subject="s"):
    p = h.sendmail(["-f", "sender@example.test", "--"] + rcpts,
                   ("Subject: %s\n\nbody of %s\n" % (subject, subject)).encode())
    if p.returncode != 0:
        return None
    # the queue ID from the log: "ID: from=<sender@...>" ... wait for it
    return p


def ids_in(h, qname):
    out = []
    for root, dirs, files in os.walk(os.path.join(h.spool, qname)):
        out += files
    return sorted(out)


with Instance(users=["alice"], conf={"minimal_backoff_time": "300s", "queue_run_delay": "300s",
                                         "default_transport": "error:4.4.0 no route to remote.test (test)"}) as h:
    q = lambda *a: h.hermod("queue", *a, check=False)

    # two deferred messages
    send(h, ["r1@remote.test"], "one")
    send(h, ["r2@remote.test"], "two")
    t.ok(wait_until(lambda: len(ids_in(h, "deferred")) == 2, 10), "two messages deferred", h.log())
    ids = ids_in(h, "deferred")
    a, b = ids[0], ids[-1]
    if b"r1@remote.test" not in q("show", a).stdout:
        a, b = b, a

    p = q("list")
    out = p.stdout.decode()
    t.is_(p.returncode, 0, "queue list exits 0", p.stderr)
    t.ok(a in out and b in out and "Total requests: 2" in out, "queue list shows both", out)
    t.ok("4.4.0" in out or "no route" in out, "queue list shows the reason", out)
    mq = h.mailq()
    t.is_(mq.stdout.decode(), out, "mailq prints the same listing")
    pj = q("list", "--json")
    t.ok(pj.returncode == 0 and pj.stdout.count(b'"queue_id"') == 2, "queue list --json", pj.stdout)

    p = q("show", a)
    out = p.stdout.decode()
    t.is_(p.returncode, 0, "queue show exits 0", p.stderr)
    t.ok("queue: deferred" in out and "sender: <sender@example.test>" in out, "show: envelope", out)
    t.ok(re.search(r"recipient: <r1@remote.test>.*state=deferred \(4\.4\.0 ", out), "show: recipient state and last error", out)
    t.ok("Subject: one" in out and "body of one" in out, "show: the message", out)
    t.is_(q("show", "00NoSuchMessage0").returncode, EX_NOINPUT, "show of an unknown ID: EX_NOINPUT")
    t.is_(q("show", "../x").returncode, EX_USAGE, "show of a malformed ID: EX_USAGE")
    t.is_(q("bogus").returncode, EX_USAGE, "unknown queue command: EX_USAGE")
    t.is_(q().returncode, EX_USAGE, "no queue command: EX_USAGE")

    # hold: out of deferred/, marked '!' by mailq, not retried by a flush
    p = q("hold", a)
    t.is_(p.returncode, 0, "queue hold exits 0", p.stderr)
    t.ok(find(h, "hold", a) and not find(h, "deferred", a), "held message is in hold/")
    t.ok(re.search(r"^%s!" % a, h.mailq().stdout.decode(), re.M), "mailq marks it held (!)", h.mailq().stdout)
    t.is_(q("hold", a).returncode, 0, "holding it again is fine")
    attempts = lambda qid: len(re.findall(r"%s: to=<[^>]*>, relay=\w+.*status=deferred" % qid, h.log()))
    n_a = attempts(a)
    p = q("flush")
    t.is_(p.returncode, 0, "queue flush exits 0", p.stderr)
    t.ok(wait_until(lambda: attempts(b) >= 2, 10), "flush retried the deferred message", h.log())
    time.sleep(0.5)
    t.is_(attempts(a), n_a, "the held message was not retried")
    t.ok(find(h, "hold", a), "and is still on hold")

    # sendmail -q agrees with queue flush
    n_b = attempts(b)
    p = h.sendmail(["-q"], b"")
    t.is_(p.returncode, 0, "sendmail -q exits 0", p.stderr)
    t.ok(wait_until(lambda: attempts(b) > n_b, 10), "sendmail -q retried it too", h.log())

    # release: back to the queue and retried at once
    p = q("release", a)
    t.is_(p.returncode, 0, "queue release exits 0", p.stderr)
    t.ok(wait_until(lambda: attempts(a) > n_a, 10), "released message retried at once", h.log())
    t.ok(wait_until(lambda: find(h, "deferred", a), 10) and not find(h, "hold", a), "and deferred again")
    t.is_(q("release", a).returncode, EX_NOINPUT, "release of a message not on hold: EX_NOINPUT")

    # requeue ID and ALL
    n_a, n_b = attempts(a), attempts(b)
    p = q("requeue", a)
    t.is_(p.returncode, 0, "queue requeue ID exits 0", p.stderr)
    t.ok(wait_until(lambda: attempts(a) > n_a, 10), "requeue ID retried it now", h.log())
    wait_until(lambda: find(h, "deferred", a), 10)
    n_a = attempts(a)
    p = q("requeue", "ALL")
    t.ok(p.returncode == 0 and b"2 messages requeued" in p.stdout, "queue requeue ALL", p.stdout + p.stderr)
    t.ok(wait_until(lambda: attempts(a) > n_a and attempts(b) > n_b, 30), "requeue ALL retried both", h.log())
    t.is_(q("requeue", "00NoSuchMessage0").returncode, EX_NOINPUT, "requeue of an unknown ID: EX_NOINPUT")

    # hold while it is being delivered: the attempt finishes, the result
    # stays in hold/ and qmgr does not move it back
    h.write_aliases("slow: \"|sleep 2\"\n")
    send(h, ["slow@example.test", "r3@remote.test"], "three")
    c = wait_until(lambda: [x for x in ids_in(h, "active") if x not in (a, b)], 10)
    t.ok(c, "message in active/ during its delivery", h.log())
    if c:
        c = c[0]
        p = q("hold", c)
        t.is_(p.returncode, 0, "hold of an active message", p.stderr)
        t.ok(wait_until(lambda: ("%s: on hold" % c) in h.log(), 30), "qmgr finished the attempt and kept it on hold", h.log())
        time.sleep(0.3)
        t.ok(find(h, "hold", c) and not find(h, "deferred", c) and not find(h, "active", c), "only in hold/")
        out = q("show", c).stdout.decode()
        t.ok("<slow@example.test>" not in out and
             re.search(r"<r3@remote.test>.*state=deferred \(4\.4\.0", out), "held file keeps the results of the attempt", out)
        p = q("release", c)
        t.ok(p.returncode == 0 and wait_until(lambda: find(h, "deferred", c), 10), "released after the attempt")

    # delete ID and ALL
    p = q("delete", a)
    t.ok(p.returncode == 0 and b"removed by admin" in p.stderr, "queue delete ID logs 'removed by admin'", p.stderr)
    t.ok(not find(h, "deferred", a), "deleted message is gone")
    t.is_(q("delete", a).returncode, EX_NOINPUT, "delete of an unknown ID: EX_NOINPUT")
    q("hold", b)
    p = q("delete", "ALL")
    t.ok(p.returncode == 0 and p.stdout.count(b"removed") == 1, "queue delete ALL", p.stdout + p.stderr)
    t.ok(wait_until(lambda: not h.queue_files(), 5), "queue empty", h.queue_files())
    out = q("list").stdout.decode()
    t.ok("Mail queue is empty" in out, "queue list: empty", out)

    # flush when the mail system is down
    h.stop()
    t.is_(q("flush").returncode, 69, "queue flush with qmgr down: EX_UNAVAILABLE")

t.done()
