"""
smtp_delivery: outbound delivery through qmgr and the smtp agent to
test receivers on loopback, with a loopback DNS server (t/lib/dnsserver,
t/lib/receiver).  MX hosts resolve to 127.0.0.x, every receiver listens
on the same port (smtp_destination_port) of its own address.

Shown: delivery to the best MX; the next MX on connection refused and on
a 421 greeting; implicit MX (A record only); null MX and NXDOMAIN bounce;
451 defers and a later retry delivers; 550 on one of three recipients
bounces only that one; STARTTLS used with `may`; `encrypt` defers when
the receiver offers no STARTTLS (and relayhost routes everything to one
host); connection reuse; LMTP over a Unix socket with per-recipient
replies; transport_maps routes (smtp:[host]:port, lmtp:, error:).
"""
import email
import os
import tempfile
import time
from email import policy

from dnsserver import DNSServer
from hermodtest import TAP, Instance, prog, wait_until
from receiver import Receiver, enable_smtp_agent, free_port, make_cert, outbound_conf

t = TAP()
try:
    prog("smtp")
except FileNotFoundError:
    t.skip("smtp delivery", "the smtp agent (deliver/smtp) is not built in this tree")
    t.done()

tmp = tempfile.mkdtemp(prefix="hermod-rcv-")
os.chmod(tmp, 0o755)
addrs = ["127.0.0.%d" % i for i in range(2, 16)]
P = free_port(addrs)
cert = make_cert(tmp)


def ip(n):
    return "127.0.0.%d" % n


table = {
    "best.test": {"MX": [(10, "mx1.best.test"), (20, "mx2.best.test")]},
    "mx1.best.test": {"A": [ip(2)]}, "mx2.best.test": {"A": [ip(3)]},
    "refused.test": {"MX": [(10, "mx1.refused.test"), (20, "mx2.refused.test")]},
    "mx1.refused.test": {"A": [ip(4)]}, "mx2.refused.test": {"A": [ip(5)]},
    "busy.test": {"MX": [(10, "mx1.busy.test"), (20, "mx2.busy.test")]},
    "mx1.busy.test": {"A": [ip(6)]}, "mx2.busy.test": {"A": [ip(7)]},
    "implicit.test": {"A": [ip(8)]},
    "null.test": {"MX": [(0, ".")]},
    "tempfail.test": {"MX": [(10, "mx.tempfail.test")]}, "mx.tempfail.test": {"A": [ip(9)]},
    "three.test": {"MX": [(10, "mx.three.test")]}, "mx.three.test": {"A": [ip(10)]},
    "tls.test": {"MX": [(10, "mx.tls.test")]}, "mx.tls.test": {"A": [ip(11)]},
    "reuse.test": {"MX": [(10, "mx.reuse.test")]}, "mx.reuse.test": {"A": [ip(12)]},
}
dns = DNSServer(table)
R = {n: Receiver(host=ip(n), port=P) for n in (2, 3, 5, 7, 8, 10, 11, 12, 13)}
R[6] = Receiver(host=ip(6), port=P, greeting="421 4.3.2 too busy")
R[9] = Receiver(host=ip(9), port=P, rcpt_reply={"u@tempfail.test": ["451 4.3.0 try later", "250 2.1.5 ok"]})
R[10].rcpt_reply = {"b@three.test": "550 5.1.1 no such user"}
R[11].starttls = cert
lmtp_sock = os.path.join(tmp, "lmtp.sock")
L = Receiver(unix=lmtp_sock, lmtp=True, lmtp_data_reply={"b@lmtp.test": "452 4.2.2 mailbox full",
                                                          "c@lmtp.test": "550 5.1.1 unknown user"})
os.chmod(lmtp_sock, 0o777)


def bounces(h):
    out = []
    for raw in h.messages("alice"):
        m = email.message_from_bytes(raw, policy=policy.compat32)
        if m.get_content_type() == "multipart/report":
            out.append(m)
    return out


def dsn_fields(m):
    """The per-recipient field groups of a report's delivery-status part."""
    for part in m.walk():
        if part.get_content_type() == "message/delivery-status":
            groups = part.get_payload()
            return [dict(g.items()) for g in groups[1:]]
    return []


def send(h, rcpts, subject, args=()):
    return h.sendmail(["-f", "alice@example.test"] + list(args) + ["--"] + rcpts,
                      ("From: alice@example.test\nSubject: %s\n\nbody %s\n" % (subject, subject)).encode())


with Instance(users=["alice"], start=False,
              conf=outbound_conf(dns.port, P, transport_maps="hash:%s" % os.path.join(tmp, "transport"))) as h:
    with open(os.path.join(tmp, "transport"), "w") as f:
        f.write("lmtp.test lmtp:unix:%s\n" % lmtp_sock)
        f.write("routed.test smtp:[%s]:%d\n" % (ip(13), P))
        f.write("refuse.test error:5.7.1 no mail for this domain\n")
        f.write("later.test error:4.7.1 not now\n")
    h.hermod("map", "build", "hash:%s" % os.path.join(tmp, "transport"))
    enable_smtp_agent(h)
    h.start()

    # best MX
    send(h, ["u@best.test"], "best")
    t.ok(R[2].wait_messages(1), "delivered to the best MX", h.log())
    t.is_(len(R[3].messages()), 0, "not to the second MX")

    # next MX on connection refused (nothing listens on 127.0.0.4)
    send(h, ["u@refused.test"], "refused")
    t.ok(R[5].wait_messages(1), "next MX after connection refused", h.log())

    # next MX on 421
    send(h, ["u@busy.test"], "busy")
    t.ok(R[7].wait_messages(1), "next MX after a 421 greeting", h.log())
    t.ok(len(R[6].connections) >= 1, "the 421 MX was tried first")

    # implicit MX
    send(h, ["u@implicit.test"], "implicit")
    t.ok(R[8].wait_messages(1), "implicit MX (A record only)", h.log())

    # 550 on one of three recipients
    send(h, ["a@three.test", "b@three.test", "c@three.test"], "three")
    got = R[10].wait_messages(1)
    t.ok(got and sorted(got[0]["accepted"]) == ["a@three.test", "c@three.test"],
         "two of three recipients delivered in one transaction", got)

    # null MX and NXDOMAIN bounce
    send(h, ["u@null.test"], "nullmx")
    send(h, ["u@nx.test"], "nxdomain")
    # bounces: null MX, NXDOMAIN, 550
    ok = wait_until(lambda: len(bounces(h)) >= 3, 20)
    t.ok(ok, "three bounces to the sender", h.log())
    by_rcpt = {}
    for m in bounces(h):
        for g in dsn_fields(m):
            by_rcpt[g.get("Final-Recipient", "").split(";")[-1].strip()] = g
    t.ok(by_rcpt.get("u@null.test", {}).get("Status") == "5.1.10", "null MX bounces with 5.1.10", by_rcpt)
    t.ok(by_rcpt.get("u@nx.test", {}).get("Status", "").startswith("5."), "NXDOMAIN bounces", by_rcpt)
    t.ok(by_rcpt.get("b@three.test", {}).get("Status") == "5.1.1", "the 550 recipient bounces (5.1.1)", by_rcpt)
    t.ok("a@three.test" not in by_rcpt and "c@three.test" not in by_rcpt, "only that one")

    # 451 defers, a retry delivers
    send(h, ["u@tempfail.test"], "tempfail")
    t.ok(wait_until(lambda: "status=deferred" in h.log() and "u@tempfail.test" in h.log(), 15), "451 defers", h.log())
    t.ok(R[9].wait_messages(1, 20), "a later retry delivers", h.log())

    # STARTTLS with may
    send(h, ["u@tls.test"], "tls")
    got = R[11].wait_messages(1)
    t.ok(got and any(c["tls"] for c in R[11].connections if c["transactions"]), "STARTTLS used (may)", h.log())

    # connection reuse
    for i in range(5):
        send(h, ["u%d@reuse.test" % i], "reuse%d" % i)
        time.sleep(0.2)
    got = R[12].wait_messages(5)
    t.is_(len(got), 5, "five messages to one destination", h.log())
    per = [len([x for x in c["transactions"] if x.get("data") is not None]) for c in R[12].connections]
    t.ok(max(per or [0]) >= 2 and len(R[12].connections) < 5, "several messages over one connection", per)

    # transport_maps: smtp:[host]:port, lmtp:unix:, error:
    send(h, ["u@routed.test"], "routed")
    t.ok(R[13].wait_messages(1), "transport_maps smtp:[127.0.0.13]:port", h.log())
    send(h, ["a@lmtp.test", "b@lmtp.test", "c@lmtp.test"], "lmtp")
    got = L.wait_messages(1)
    t.ok(got and got[0]["accepted"] == ["a@lmtp.test"], "LMTP: delivered to the one that got 250", got)
    t.ok(any(c["helo"] is not None for c in L.connections) and
         any(cmd.startswith("LHLO") for c in L.connections for cmd in c["commands"]), "LMTP: LHLO used")
    t.ok(wait_until(lambda: "b@lmtp.test" in h.log() and
                    [l for l in h.log().splitlines() if "to=<b@lmtp.test>" in l and "status=deferred" in l], 15),
         "LMTP: 452 for one recipient defers it", h.log())
    t.ok(wait_until(lambda: [l for l in h.log().splitlines() if "to=<c@lmtp.test>" in l and "status=bounced" in l], 15),
         "LMTP: 550 for one recipient bounces it", h.log())
    send(h, ["u@refuse.test"], "refuse")
    t.ok(wait_until(lambda: [l for l in h.log().splitlines() if "to=<u@refuse.test>" in l and "dsn=5.7.1" in l
                             and "status=bounced" in l], 10), "transport_maps error:5.7.1 bounces", h.log())
    send(h, ["u@later.test"], "later")
    t.ok(wait_until(lambda: [l for l in h.log().splitlines() if "to=<u@later.test>" in l and "dsn=4.7.1" in l
                             and "status=deferred" in l], 10), "transport_maps error:4.7.1 defers", h.log())

# encrypt without STARTTLS at the receiver defers; relayhost takes everything
R[14] = Receiver(host=ip(14), port=P)
with Instance(users=["alice"], start=False,
              conf=outbound_conf(dns.port, P, smtp_tls_security_level="encrypt",
                                 relayhost="[%s]:%d" % (ip(14), P))) as h:
    enable_smtp_agent(h)
    h.start()
    send(h, ["u@anywhere.test"], "encrypt")
    t.ok(wait_until(lambda: [l for l in h.log().splitlines() if "to=<u@anywhere.test>" in l and "status=deferred" in l], 15),
         "encrypt: deferred when the server offers no STARTTLS", h.log())
    t.ok(len(R[14].connections) >= 1, "relayhost: the connection went to the relay host")
    t.is_(len(R[14].messages()), 0, "nothing sent in the clear")
    R[14].starttls = cert
    h.hermod("queue", "flush")
    got = R[14].wait_messages(1, 15)
    t.ok(got and any(c["tls"] for c in R[14].connections if c["transactions"]), "delivered once STARTTLS is offered", h.log())

for r in list(R.values()) + [L]:
    r.close()
dns.close()
t.done()
