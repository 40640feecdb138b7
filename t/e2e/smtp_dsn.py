"""
smtp_dsn: delivery status notifications (RFC 3461/3464) for outbound
mail, parsed with Python's email package: a "relayed" notice for
NOTIFY=SUCCESS when the next hop has no DSN (with ENVID and the
recipient), NOTIFY/ENVID passed on to a next hop that has DSN (and no
notice from us), FAILURE bounces with RET=FULL and RET=HDRS, NEVER
(no bounce), delay warnings after delay_warning_time only for NOTIFY
DELAY or no NOTIFY, and expiry after maximal_queue_lifetime (4.4.7).
"""
import email
import os
import tempfile
import time
from email import policy

from dnsserver import DNSServer
from hermodtest import TAP, Instance, prog, wait_until
from receiver import Receiver, enable_smtp_agent, free_port, outbound_conf

t = TAP()
try:
    prog("smtp")
except FileNotFoundError:
    t.skip("smtp DSN", "the smtp agent (deliver/smtp) is not built in this tree")
    t.done()


def ip(n):
    return "127.0.0.%d" % n


P = free_port([ip(n) for n in range(2, 6)])
dns = DNSServer({
    "nodsn.test": {"A": [ip(2)]},
    "dsn.test": {"A": [ip(3)]},
    "fail.test": {"A": [ip(4)]},
    "slow.test": {"A": [ip(5)]},
})
R2 = Receiver(host=ip(2), port=P, dsn=False)
R3 = Receiver(host=ip(3), port=P, dsn=True)
R4 = Receiver(host=ip(4), port=P, rcpt_reply={"full@fail.test": "550 5.1.1 no such user",
                                              "hdrs@fail.test": "550 5.1.1 no such user",
                                              "never@fail.test": "550 5.1.1 no such user"})
R5 = Receiver(host=ip(5), port=P, rcpt_reply={"d@slow.test": "451 4.3.0 try later",
                                              "f@slow.test": "451 4.3.0 try later"})


def reports(h):
    out = []
    for raw in h.messages("alice"):
        m = email.message_from_bytes(raw, policy=policy.compat32)
        if m.get_content_type() == "multipart/report":
            out.append(m)
    return out


def status_part(m):
    for part in m.walk():
        if part.get_content_type() == "message/delivery-status":
            g = part.get_payload()
            return dict(g[0].items()), [dict(x.items()) for x in g[1:]]
    return {}, []


def find_report(h, rcpt, action):
    for m in reports(h):
        per, rs = status_part(m)
        for r in rs:
            if r.get("Final-Recipient", "").split(";")[-1].strip() == rcpt and r.get("Action") == action:
                return m, per, r
    return None


def send(h, rcpts, subject, args=()):
    return h.sendmail(["-f", "alice@example.test"] + list(args) + ["--"] + rcpts,
                      ("From: alice@example.test\nSubject: %s\n\nbody %s\n" % (subject, subject)).encode())


conf = outbound_conf(dns.port, P, delay_warning_time="2s", maximal_queue_lifetime="6s")
with Instance(users=["alice"], start=False, conf=conf) as h:
    enable_smtp_agent(h)
    h.start()

    # relayed: next hop without DSN, NOTIFY=SUCCESS
    send(h, ["u@nodsn.test"], "relayed", ["-N", "success", "-V", "env-relayed-1"])
    t.ok(R2.wait_messages(1), "delivered to the next hop without DSN", h.log())
    got = wait_until(lambda: find_report(h, "u@nodsn.test", "relayed"), 15)
    t.ok(got, "a 'relayed' notice reaches the sender", h.log())
    if got:
        m, per, r = got
        t.ok(m.get_param("report-type") == "delivery-status", "multipart/report; report-type=delivery-status")
        t.is_(per.get("Original-Envelope-Id"), "env-relayed-1", "ENVID in the notice")
        t.ok(per.get("Reporting-MTA", "").startswith("dns;"), "Reporting-MTA")
        t.ok(r.get("Status", "").startswith("2."), "Status 2.x.x", r)
        t.ok(m["To"] and "alice@example.test" in m["To"], "sent to the envelope sender")

    # next hop with DSN: NOTIFY and ENVID passed on, no notice from us
    n_before = len(reports(h))
    send(h, ["u@dsn.test"], "passed-on", ["-N", "success,failure", "-V", "env-2"])
    got = R3.wait_messages(1)
    t.ok(got, "delivered to the next hop with DSN", h.log())
    if got:
        t.ok("ENVID=env-2" in got[0]["mail"], "ENVID passed on in MAIL FROM", got[0]["mail"])
        params = got[0]["rcpts"][0][1].upper()
        t.ok("NOTIFY=SUCCESS,FAILURE" in params or "NOTIFY=FAILURE,SUCCESS" in params, "NOTIFY passed on in RCPT TO", params)

    # ORCPT given over SMTP is passed on, and appears in a notice
    import smtplib
    with smtplib.SMTP("127.0.0.1", h.port_base + 25, timeout=10) as s:
        s.ehlo("client.test")
        s.sendmail("alice@example.test", ["o@dsn.test"],
                   b"From: alice@example.test\r\nSubject: orcpt\r\n\r\nbody\r\n",
                   rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;original@orcpt.test"])
    got = R3.wait_messages(2)
    params = got[1]["rcpts"][0][1].upper() if len(got) >= 2 else ""
    t.ok("ORCPT=RFC822;ORIGINAL@ORCPT.TEST" in params, "ORCPT passed on to the next hop", (params, h.log()))
    with smtplib.SMTP("127.0.0.1", h.port_base + 25, timeout=10) as s:
        s.ehlo("client.test")
        s.sendmail("alice@example.test", ["o@nodsn.test"],
                   b"From: alice@example.test\r\nSubject: orcpt2\r\n\r\nbody\r\n",
                   rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;original2@orcpt.test"])
    got = wait_until(lambda: find_report(h, "o@nodsn.test", "relayed"), 15)
    t.ok(got and "original2@orcpt.test" in got[2].get("Original-Recipient", ""),
         "ORCPT in the notice (Original-Recipient)", got and got[2])
    time.sleep(1.5)
    t.is_(len([m for m in reports(h) if find_report(h, "u@dsn.test", "delivered") or
               find_report(h, "u@dsn.test", "relayed")]), 0, "no notice from us: the next hop reports")

    # FAILURE bounces, RET=FULL and RET=HDRS; NEVER: none
    send(h, ["full@fail.test"], "full", ["-R", "full"])
    send(h, ["hdrs@fail.test"], "hdrs", ["-R", "hdrs"])
    send(h, ["never@fail.test"], "never", ["-N", "never"])
    full = wait_until(lambda: find_report(h, "full@fail.test", "failed"), 15)
    hdrs = wait_until(lambda: find_report(h, "hdrs@fail.test", "failed"), 15)
    t.ok(full and hdrs, "failure bounces for both", h.log())
    if full:
        m, per, r = full
        t.is_(r.get("Status"), "5.1.1", "bounce Status 5.1.1")
        t.ok("550" in r.get("Diagnostic-Code", ""), "Diagnostic-Code has the server's reply", r)
        t.ok("Arrival-Date" in per, "Arrival-Date")
        types = [p.get_content_type() for p in m.walk()]
        t.ok("message/rfc822" in types, "RET=FULL returns the whole message", types)
    if hdrs:
        types = [p.get_content_type() for p in hdrs[0].walk()]
        t.ok("text/rfc822-headers" in types and "message/rfc822" not in types, "RET=HDRS returns the header only", types)
    t.ok(wait_until(lambda: [l for l in h.log().splitlines() if "to=<never@fail.test>" in l and "status=bounced" in l], 10),
         "NOTIFY=NEVER recipient bounced at the server", h.log())
    time.sleep(1)
    t.ok(not find_report(h, "never@fail.test", "failed"), "NOTIFY=NEVER: no bounce")

    # delay warning (NOTIFY default) vs NOTIFY=FAILURE (no warning); then expiry
    send(h, ["d@slow.test"], "delayed")
    send(h, ["f@slow.test"], "failure-only", ["-N", "failure"])
    got = wait_until(lambda: find_report(h, "d@slow.test", "delayed"), 20)
    t.ok(got, "delay warning after delay_warning_time", h.log())
    if got:
        m, per, r = got
        t.ok(r.get("Status", "").startswith("4."), "delay warning Status 4.x.x", r)
        t.ok("Will-Retry-Until" in r, "Will-Retry-Until", r)
    t.ok(not find_report(h, "f@slow.test", "delayed"), "no delay warning for NOTIFY=FAILURE")
    got = wait_until(lambda: find_report(h, "d@slow.test", "failed"), 25)
    t.ok(got, "bounced after maximal_queue_lifetime", h.log())
    if got:
        t.is_(got[2].get("Status"), "4.4.7", "expiry Status 4.4.7")
    t.ok(wait_until(lambda: find_report(h, "f@slow.test", "failed"), 15), "NOTIFY=FAILURE: expiry bounce", h.log())
    t.ok(wait_until(lambda: not h.queue_files(), 10), "queue empty at the end", h.queue_files())

for r in (R2, R3, R4, R5):
    r.close()
dns.close()
t.done()
