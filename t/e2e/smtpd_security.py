"""
smtpd_security: who may send where, and the attacks on the SMTP stream.

- Relay refusal from a client outside mynetworks for the plain case and
  each address trick (%, !, source routes @a:b@c, quoted local parts
  "a@b"@local, user@remote@local, IP literals); relaying accepted for a
  mynetworks client and after AUTH; local mail still accepted.
- SMTP smuggling: \\n.\\n, \\r\\n.\\n, \\n.\\r\\n and \\r.\\r inside DATA never end
  the message: with smtpd_bare_lf = reject the message gets 550 5.5.2,
  with normalize exactly one message arrives; in neither case does the
  smuggled second message (to bob) arrive -- counted in the Maildirs.
- STARTTLS injection (CVE-2011-0411): commands pipelined after STARTTLS
  in the same packet are discarded.
- Access maps: REJECT, DEFER, HOLD, DISCARD by sender and HELO name, OK
  and REJECT by client address, REJECT by recipient domain.
"""
import os
import ssl
import time

from hermodtest import TAP, wait_until
from smtptest import Client, client_ctx, enhanced, keywords, smtp_instance, smtpd_log, transaction

t = TAP()

TRUSTED, NORMALIZE, CLIENT_OK, CLIENT_REJECT = 26, 27, 28, 29


def setup(h):
    h.set_conf({"smtpd_access_maps": "hash:%s/access" % h.dir})
    maps = {
        "access": "reject@sender.test REJECT\ndefer@sender.test DEFER\nhold@sender.test HOLD\n"
                  "discard@sender.test DISCARD\nevil.helo.test REJECT\n",
        "access_client": "127.0.0.1 OK\n",
        "access_reject": "127.0.0.1 REJECT\n",
        "access_rcpt": "blocked.example REJECT\n",
    }
    for name, text in maps.items():
        with open(os.path.join(h.dir, name), "w") as f:
            f.write(text)
        h.hermod("map", "build", "hash:%s/%s" % (h.dir, name))


def msg(subject, body="hello\r\n"):
    return ("From: sender@example.org\r\nTo: alice@example.test\r\nSubject: %s\r\n"
            "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <%s@example.org>\r\n\r\n%s"
            % (subject, subject.replace(" ", "-"), body)).encode()


def has_subject(h, user, subj):
    s = b"Subject: " + subj.encode()
    return sum(1 for m in h.messages(user) if s + b"\n" in m or s + b"\r\n" in m)


conf = {"mynetworks": "192.0.2.0/24", "smtpd_hard_error_limit": 100, "smtpd_soft_error_limit": 100}
extra = {TRUSTED: "-o mynetworks=127.0.0.0/8 -o smtpd_access_maps=hash:{dir}/access_rcpt",
         NORMALIZE: "-o smtpd_bare_lf=normalize",
         CLIENT_OK: "-o smtpd_access_maps=hash:{dir}/access_client",
         CLIENT_REJECT: "-o smtpd_access_maps=hash:{dir}/access_reject"}
with smtp_instance(users=["alice", "bob"], conf=conf, extra=extra, setup=setup) as h:
    P = h.smtp_port
    diag = lambda: smtpd_log(h)

    # -- relay refusal ----------------------------------------------------------
    tricks = [
        "bob@remote.example",
        "bob@remote.example.",
        "bob@REMOTE.EXAMPLE",
        "bob%remote.example@example.test",
        "bob%remote.example",
        "remote.example!bob@example.test",
        "remote.example!bob",
        "@example.test:bob@remote.example",
        "@example.test,@example.test:bob@remote.example",
        '"bob@remote.example"@example.test',
        '"bob%remote.example"@example.test',
        "bob@remote.example@example.test",
        "bob@[192.0.2.1]",
        "bob@[IPv6:2001:db8::1]",
        "bob%remote.example@[192.0.2.1]",
        "bob@example.test.remote.example",
    ]
    c = Client(P)
    c.reply()
    c.ehlo()
    code, lines = c.cmd("MAIL FROM:<sender@example.org>")
    t.is_(code, 250, "MAIL from an outside client: 250", lines)
    for a in tricks:
        code, lines = c.cmd("RCPT TO:<%s>" % a)
        t.ok(500 <= code < 600, "no relay for <%s>: %d %s" % (a, code, (lines or [""])[0]), diag())
    code, lines = c.cmd("RCPT TO:<bob@remote.example>")
    t.is_(enhanced(lines), "5.7.1", "relay refusal is 5.7.1", lines)
    code, lines = c.cmd("RCPT TO:<alice@example.test>")
    t.is_(code, 250, "a local recipient is accepted from an outside client", lines)
    code, lines = c.cmd("DATA")
    t.is_(code, 354, "DATA 354 (only the local recipient)", lines)
    c.send(msg("outside to local") + b".\r\n")
    code, lines = c.reply()
    t.is_(code, 250, "message accepted", lines)
    c.close()
    t.ok(wait_until(lambda: has_subject(h, "alice", "outside to local"), 10), "delivered to alice", diag())
    t.ok(wait_until(lambda: not h.queue_files(), 10), "nothing is left in the queue (nothing for remote.example)",
         h.queue_files())

    # -- relay for mynetworks and after AUTH -------------------------------------------
    c = Client(h.port_base + TRUSTED)
    c.reply()
    res = transaction(c, "sender@example.org", ["bob@remote.example"], msg("relayed by mynetworks"))
    t.is_([x[1] for x in res], [250, 250, 250, 354, 250], "mynetworks client may relay", (res, diag()))
    code, lines = c.cmd("MAIL FROM:<sender@example.org>")
    code, lines = c.cmd("RCPT TO:<x@blocked.example>")
    t.ok(500 <= code < 600, "access map REJECT by recipient domain, even for mynetworks: %d" % code, lines)
    c.close()

    c = Client(h.submission_port)
    c.reply()
    c.ehlo()
    code, lines = c.starttls()
    t.is_(code, 220, "STARTTLS on submission", lines)
    if code == 220:
        code, lines = c.ehlo()
        code, lines = c.auth_plain("alice", "secret")
        t.is_(code, 235, "AUTH PLAIN alice", (lines, diag()))
        res = transaction(c, "alice@example.test", ["bob@remote.example"], msg("relayed after auth"), helo=False)
        t.is_([x[1] for x in res], [250, 250, 354, 250], "authenticated client may relay", (res, diag()))
    c.close()

    # -- smuggling ---------------------------------------------------------------------
    seps = [("\\n.\\n", b"\n.\n"), ("\\r\\n.\\n", b"\r\n.\n"), ("\\n.\\r\\n", b"\n.\r\n"), ("\\r.\\r", b"\r.\r")]
    for port, mode in ((P, "reject"), (h.port_base + NORMALIZE, "normalize")):
        for i, (name, sep) in enumerate(seps):
            subj = "smuggle-%s-%d" % (mode, i)
            c = Client(port)
            c.reply()
            c.ehlo()
            c.cmd("MAIL FROM:<sender@example.org>")
            c.cmd("RCPT TO:<alice@example.test>")
            code, lines = c.cmd("DATA")
            payload = (msg(subj, "hello") + sep +
                       b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
                       b"Subject: smuggled\r\n\r\nevil\r\n.\r\n")
            c.send(payload)
            code, lines = c.reply(15)
            if mode == "reject":
                t.is_((code, enhanced(lines)), (550, "5.5.2"), "%s: %s in DATA gives 550 5.5.2" % (mode, name),
                      (lines, diag()))
            else:
                t.is_(code, 250, "%s: %s in DATA is part of one message (250)" % (mode, name), (lines, diag()))
            extra_reply = c.reply(1)
            t.is_(extra_reply[0], -1, "%s %s: no second reply (nothing after it ran as commands)" % (mode, name),
                  extra_reply)
            code, lines = c.cmd("QUIT")
            t.is_(code, 221, "%s %s: the next reply is QUIT's 221" % (mode, name), lines)
            c.close()
    want = {"reject": 0, "normalize": 1}
    wait_until(lambda: all(has_subject(h, "alice", "smuggle-normalize-%d" % i) for i in range(len(seps))), 10)
    time.sleep(1)
    for mode in ("reject", "normalize"):
        for i, (name, sep) in enumerate(seps):
            t.is_(has_subject(h, "alice", "smuggle-%s-%d" % (mode, i)), want[mode],
                  "%s %s: %d message(s) to alice" % (mode, name, want[mode]), diag())
    t.is_(has_subject(h, "bob", "smuggled"), 0, "no smuggled message reached bob", diag())
    t.is_(len(h.messages("bob")), 0, "bob's Maildir is empty")

    # -- STARTTLS injection (CVE-2011-0411) -------------------------------------------------
    c = Client(P)
    c.reply()
    c.ehlo()
    c.send(b"STARTTLS\r\nHELP\r\nMAIL FROM:<evil@example.org>\r\n")
    code, lines = c.reply()
    t.is_(code, 220, "STARTTLS 220 (with commands pipelined after it)", lines)
    ok = False
    if code == 220:
        try:
            c.sock = client_ctx().wrap_socket(c.sock)
            c.buf = b""
            ok = True
        except (ssl.SSLError, OSError) as e:
            t.ok(False, "TLS handshake after pipelined STARTTLS", str(e))
    if ok:
        code, lines = c.ehlo()
        t.is_(code, 250, "the first reply inside TLS is EHLO's 250 (not HELP's 214)", lines)
        t.ok("STARTTLS" not in keywords(lines), "no STARTTLS offered inside TLS", lines)
        code, lines = c.cmd("MAIL FROM:<good@example.org>")
        t.is_(code, 250, "MAIL 250: the injected MAIL was discarded (else 503 nested)", lines)
        code, lines = c.cmd("NOOP")
        t.is_(code, 250, "in sync", lines)
    c.close()

    # -- access maps -------------------------------------------------------------------------
    def attempt(port, sender, subj, helo="client.example.test"):
        c = Client(port)
        banner = c.reply()
        out = [("BANNER",) + banner]
        if banner[0] == 220:
            out += [("EHLO",) + c.ehlo(helo)]
            out += transaction(c, sender, ["alice@example.test"], msg(subj), helo=False)
        c.close()
        return out

    def refused(res, klass):
        """some reply of class klass, and the message not accepted"""
        final = [x for x in res if x[0] == "END"]
        return any(str(x[1]).startswith(klass) for x in res) and not (final and final[0][1] == 250)

    res = attempt(P, "reject@sender.test", "access reject")
    t.ok(refused(res, "5"), "sender REJECT: refused with 5xx", (res, diag()))
    res = attempt(P, "defer@sender.test", "access defer")
    t.ok(refused(res, "4"), "sender DEFER: refused with 4xx", (res, diag()))
    res = attempt(P, "ok@sender.test", "access helo", helo="evil.helo.test")
    t.ok(refused(res, "5"), "HELO REJECT: refused with 5xx", (res, diag()))
    res = attempt(h.port_base + CLIENT_REJECT, "ok@sender.test", "access client reject")
    t.ok(refused(res, "5"), "client 127.0.0.1 REJECT: refused with 5xx", (res, diag()))
    res = attempt(P, "hold@sender.test", "access hold")
    t.is_(res[-1][1], 250, "sender HOLD: accepted", (res, diag()))
    res = attempt(P, "discard@sender.test", "access discard")
    t.is_(res[-1][1], 250, "sender DISCARD: accepted (and dropped)", (res, diag()))
    c = Client(h.port_base + CLIENT_OK)
    c.reply()
    res = transaction(c, "sender@example.org", ["bob@remote.example"], msg("relay by client OK"))
    t.is_(res[-1][1], 250, "client 127.0.0.1 OK: may relay", (res, diag()))
    c.close()
    res = attempt(P, "plain@sender.test", "access control")
    t.is_(res[-1][1], 250, "an unlisted sender is accepted", res)
    t.ok(wait_until(lambda: has_subject(h, "alice", "access control"), 10), "and delivered", diag())
    time.sleep(1)
    for s in ("access reject", "access defer", "access helo", "access client reject", "access hold",
              "access discard"):
        t.is_(has_subject(h, "alice", s), 0, "%s: not delivered" % s)
    held = [p for p in h.queue_files() if "/hold/" in p]
    t.is_(len(held), 1, "the HOLD message waits in hold/", h.queue_files())
t.done()
