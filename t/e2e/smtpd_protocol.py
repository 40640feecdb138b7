"""
smtpd_protocol: the SMTP conversation of smtpd (issue 3), over loopback
with a raw socket client: the banner, HELO/EHLO and each EHLO keyword,
every command (MAIL, RCPT, DATA, BDAT, RSET, NOOP, VRFY, HELP, QUIT),
the error replies 500/501/503 with RFC 3463 codes, a line over 1000
octets answered 500 without losing sync, the size limit (552), the
recipient limit (452), the error limit (421 and close), pipelining of
several transactions in ONE write (with DATA and with BDAT), and BDAT
including LAST, BDAT errors and BDAT mixed with DATA.  Outcomes are
checked in the Maildirs, not only in the replies.
"""
import re
import time

from hermodtest import TAP, wait_until
from smtptest import (Client, enhanced, keywords, same_content, smtp_instance,
                      smtpd_log, strip_added, transaction)

SIZE_LIMIT = 100000
RCPT_LIMIT = 3
HARD_ERRORS = 15

t = TAP()


def msg(subject, body="hello\r\n"):
    return ("From: sender@example.org\r\nTo: alice@example.test\r\nSubject: %s\r\n"
            "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <%s@example.org>\r\n\r\n%s"
            % (subject, subject.replace(" ", "-"), body)).encode()


def subjects(h, user):
    out = []
    for m in h.messages(user):
        mm = re.search(rb"^Subject: (.*)$", m, re.M)
        out.append(mm.group(1).decode().strip() if mm else None)
    return out


def codes(res):
    return [(s, c) for s, c, _ in res]


conf = {"message_size_limit": SIZE_LIMIT, "smtpd_recipient_limit": RCPT_LIMIT,
        "smtpd_hard_error_limit": HARD_ERRORS, "smtpd_soft_error_limit": 100,
        "smtpd_error_sleep_time": "0s"}
with smtp_instance(users=["alice", "bob", "u1", "u2", "u3", "u4"], conf=conf) as h:
    P = h.smtp_port
    diag = lambda: smtpd_log(h)

    # -- banner, EHLO keywords -------------------------------------------
    c = Client(P)
    code, text = c.reply()
    t.is_(code, 220, "banner 220", diag())
    t.ok(text and "ESMTP" in text[0], "banner says ESMTP", text)
    code, lines = c.ehlo()
    t.is_(code, 250, "EHLO 250", diag())
    kw = keywords(lines)
    for k in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN",
              "CHUNKING", "STARTTLS"):
        t.ok(k in kw, "EHLO advertises %s" % k, lines)
    t.is_(kw.get("SIZE"), str(SIZE_LIMIT), "SIZE shows message_size_limit", lines)
    t.ok("AUTH" not in kw, "no AUTH before TLS on port 25", lines)
    code, lines = c.cmd("HELO client.example.test")
    t.is_(code, 250, "HELO 250 (again, after EHLO)", lines)
    code, lines = c.cmd("NOOP")
    t.is_(code, 250, "NOOP 250", lines)
    t.is_(enhanced(lines), "2.0.0", "NOOP carries 2.0.0", lines)
    code, lines = c.cmd("VRFY alice")
    t.is_(code, 252, "VRFY answers 252 (smtpd_vrfy_enable = no)", lines)
    t.ok(enhanced(lines) and enhanced(lines).startswith("2."), "VRFY carries an enhanced code", lines)
    code, lines = c.cmd("HELP")
    t.is_(code, 214, "HELP 214", lines)
    code, lines = c.cmd("QUIT")
    t.is_(code, 221, "QUIT 221", lines)
    t.is_(enhanced(lines), "2.0.0", "QUIT carries 2.0.0", lines)
    t.ok(c.closed(), "connection closed after QUIT")
    c.close()

    # -- out of sequence: 503 ---------------------------------------------
    c = Client(P)
    c.reply()
    code, lines = c.cmd("MAIL FROM:<sender@example.org>")
    t.is_(code, 503, "MAIL before HELO/EHLO: 503", lines)
    t.ok((enhanced(lines) or "").startswith("5.5."), "503 carries 5.5.x", lines)
    c.ehlo()
    code, lines = c.cmd("RCPT TO:<alice@example.test>")
    t.is_(code, 503, "RCPT before MAIL: 503", lines)
    code, lines = c.cmd("DATA")
    t.is_(code, 503, "DATA before MAIL: 503", lines)
    c.cmd("MAIL FROM:<sender@example.org>")
    code, lines = c.cmd("MAIL FROM:<sender@example.org>")
    t.is_(code, 503, "nested MAIL: 503", lines)
    code, lines = c.cmd("DATA")
    t.ok(code in (503, 554), "DATA without a recipient: 503 or 554 (RFC 5321 3.3) -> %d" % code, lines)
    t.ok((enhanced(lines) or "").startswith("5."), "it carries an enhanced code", lines)
    code, lines = c.cmd("RSET")
    t.is_(code, 250, "RSET 250", lines)
    t.is_(enhanced(lines), "2.0.0", "RSET carries 2.0.0", lines)
    code, lines = c.cmd("RCPT TO:<alice@example.test>")
    t.is_(code, 503, "RSET ended the transaction (RCPT now 503)", lines)
    c.close()

    # -- syntax: 501, unknown: 500, unknown user: 550 5.1.1 ---------------
    c = Client(P)
    c.reply()
    code, lines = c.cmd("EHLO")
    t.is_(code, 501, "EHLO without a name: 501", lines)
    code, lines = c.cmd("XYZZY plugh")
    t.is_(code, 500, "unknown command: 500", lines)
    t.ok((enhanced(lines) or "").startswith("5.5."), "500 carries 5.5.x", lines)
    c.ehlo()
    for bad in ("MAIL FROM:sender@example.org junk junk", "MAIL FROM:<sender@example.org",
                "MAIL TO:<sender@example.org>", "MAIL FROM:<a@b> NOSUCHPARAM=1"):
        code, lines = c.cmd(bad)
        t.ok(code in (501, 555), "%r: 501 (or 555 for the parameter) -> %d" % (bad, code), lines)
        t.ok((enhanced(lines) or "").startswith("5."), "... with an enhanced code", lines)
    code, lines = c.cmd("MAIL FROM:<sender@example.org>")
    t.is_(code, 250, "a good MAIL after the syntax errors", lines)
    for bad in ("RCPT TO:alice@example.test junk", "RCPT TO:<>", "RCPT TO:<alice@example.test",
                "RCPT TO:<al\x01ice@example.test>"):
        code, lines = c.cmd(bad)
        t.ok(code in (501, 550, 553), "%r refused 501/550/553 -> %d" % (bad, code), lines)
    code, lines = c.cmd("RCPT TO:<nosuchuser@example.test>")
    t.is_(code, 550, "unknown local user: 550", lines)
    t.is_(enhanced(lines), "5.1.1", "... 5.1.1", lines)
    code, lines = c.cmd("RCPT TO:<alice@example.test>")
    t.is_(code, 250, "known local user: 250", lines)
    t.ok((enhanced(lines) or "").startswith("2.1."), "... 2.1.x", lines)
    c.close()

    # -- a line over 1000 octets: 500, no desync ----------------------------
    c = Client(P)
    c.reply()
    c.ehlo()
    c.send(b"NOOP " + b"x" * 3000 + b"\r\nNOOP\r\nMAIL FROM:<" + b"y" * 1200 + b"@example.org>\r\nNOOP\r\n")
    r1 = c.reply()
    r2 = c.reply()
    r3 = c.reply()
    r4 = c.reply()
    t.is_(r1[0], 500, "command line of 3005 octets: 500", (r1, diag()))
    t.ok((enhanced(r1[1]) or "").startswith("5."), "... with an enhanced code", r1)
    t.is_(r2[0], 250, "the next command is answered on its own (no desync)", r2)
    t.ok(r3[0] in (500, 501), "MAIL line of 1221 octets: 500/501", r3)
    t.is_(r4[0], 250, "and again in sync", r4)
    t.is_(c.reply(1)[0], -1, "no extra reply (the tail of the long line was not taken as a command)")
    res = transaction(c, "sender@example.org", ["alice@example.test"], msg("after long line"), helo=False)
    t.is_(res[-1][1], 250, "a transaction works after the long lines", (codes(res), diag()))
    c.close()
    t.ok(wait_until(lambda: "after long line" in subjects(h, "alice"), 10), "it is delivered", diag())

    # -- size limit: 552 ----------------------------------------------------
    c = Client(P)
    c.reply()
    c.ehlo()
    code, lines = c.cmd("MAIL FROM:<sender@example.org> SIZE=%d" % (SIZE_LIMIT + 1))
    t.is_(code, 552, "MAIL SIZE= over message_size_limit: 552", lines)
    t.is_(enhanced(lines), "5.3.4", "... 5.3.4", lines)
    code, lines = c.cmd("MAIL FROM:<sender@example.org> SIZE=1000")
    t.is_(code, 250, "MAIL SIZE=1000: 250", lines)
    c.cmd("RSET")
    big = msg("too big", ("z" * 76 + "\r\n") * (SIZE_LIMIT // 78 + 100))
    res = transaction(c, "sender@example.org", ["bob@example.test"], big, helo=False)
    t.is_(res[-1][1], 552, "DATA over message_size_limit (undeclared): 552 after the dot", codes(res))
    t.is_(enhanced(res[-1][2]), "5.3.4", "... 5.3.4", res[-1])
    code, lines = c.cmd("NOOP")
    t.is_(code, 250, "session still in sync after 552", lines)
    res = transaction(c, "sender@example.org", ["bob@example.test"], msg("small for bob"), helo=False)
    t.is_(res[-1][1], 250, "the next message in the session is accepted", codes(res))
    c.close()
    t.ok(wait_until(lambda: "small for bob" in subjects(h, "bob"), 10), "the small one arrived", diag())
    time.sleep(0.5)
    t.ok("too big" not in subjects(h, "bob"), "the oversized one did not", subjects(h, "bob"))

    # -- recipient limit: 452 ---------------------------------------------------
    c = Client(P)
    c.reply()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@example.org>")
    rc = [c.cmd("RCPT TO:<u%d@example.test>" % i) for i in range(1, 5)]
    t.is_([x[0] for x in rc[:3]], [250, 250, 250], "RCPT up to smtpd_recipient_limit: 250", rc)
    t.is_(rc[3][0], 452, "one more: 452", rc[3])
    t.is_(enhanced(rc[3][1]), "4.5.3", "... 4.5.3", rc[3])
    code, lines = c.cmd("DATA")
    t.is_(code, 354, "DATA 354", lines)
    c.send(msg("rcpt limit") + b".\r\n")
    code, lines = c.reply()
    t.is_(code, 250, "message accepted for the first three", lines)
    c.close()
    t.ok(all(wait_until(lambda u=u: "rcpt limit" in subjects(h, u), 10) for u in ("u1", "u2", "u3")),
         "u1, u2 and u3 got it", diag())
    time.sleep(0.5)
    t.ok("rcpt limit" not in subjects(h, "u4"), "u4 did not")

    # -- error limit: 421 and close ---------------------------------------------
    c = Client(P)
    c.reply()
    c.ehlo()
    c.send(b"".join(b"BOGUS%d\r\n" % i for i in range(HARD_ERRORS + 4)))
    seen = []
    while True:
        code, lines = c.reply(5)
        if code < 0:
            break
        seen.append(code)
        if code == 421:
            break
    t.ok(421 in seen, "after smtpd_hard_error_limit errors: 421", (seen, diag()))
    t.ok(seen.count(500) <= HARD_ERRORS, "no more than %d errors answered before 421" % HARD_ERRORS, seen)
    t.ok(c.closed(), "connection closed after 421")
    c.close()

    # -- pipelining: three DATA transactions in one write -------------------------
    c = Client(P)
    c.reply()
    c.ehlo()
    burst = b""
    for i in range(3):
        burst += (b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<alice@example.test>\r\n"
                  b"RCPT TO:<bob@example.test>\r\nDATA\r\n" + msg("piped %d" % i) + b".\r\n")
    burst += b"QUIT\r\n"
    c.send(burst)
    got = [c.reply()[0] for _ in range(3 * 5 + 1)]
    t.is_(got, [250, 250, 250, 354, 250] * 3 + [221], "one write, three transactions: every reply in order",
          diag())
    c.close()
    for u in ("alice", "bob"):
        t.ok(wait_until(lambda u=u: all("piped %d" % i in subjects(h, u) for i in range(3)), 10),
             "%s got all three pipelined messages" % u, (subjects(h, u), diag()))

    # -- BDAT ----------------------------------------------------------------------
    body = msg("bdat one", "line one\r\n.line starting with a dot\r\n..two dots\r\nend\r\n")
    half = len(body) // 2
    c = Client(P)
    c.reply()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@example.org>")
    c.cmd("RCPT TO:<alice@example.test>")
    code, lines = c.bdat(body[:half])
    t.is_(code, 250, "BDAT first chunk: 250", (lines, diag()))
    code, lines = c.bdat(body[half:], last=True)
    t.is_(code, 250, "BDAT LAST: 250", lines)
    t.ok((enhanced(lines) or "").startswith("2."), "... with an enhanced code", lines)
    # BDAT 0 LAST ends a message
    c.cmd("MAIL FROM:<sender@example.org>")
    c.cmd("RCPT TO:<alice@example.test>")
    b2 = msg("bdat zero last")
    c.bdat(b2)
    code, lines = c.cmd("BDAT 0 LAST")
    t.is_(code, 250, "BDAT 0 LAST: 250", lines)
    c.close()

    def find(user, subj):
        for m in h.messages(user):
            if b"Subject: " + subj.encode() + b"\n" in m or b"Subject: " + subj.encode() + b"\r\n" in m:
                return m
        return None
    t.ok(wait_until(lambda: find("alice", "bdat one"), 10), "BDAT message delivered", diag())
    m = find("alice", "bdat one")
    if m is not None:
        added, rest = strip_added(m)
        t.ok(same_content(rest, body), "BDAT message byte-exact (dots not unstuffed)", rest[-200:])
    t.ok(wait_until(lambda: find("alice", "bdat zero last"), 10), "BDAT + BDAT 0 LAST delivered")

    # BDAT errors: before MAIL (the chunk must be skipped, not run as commands),
    # bad size, DATA inside a BDAT transaction, BDAT after DATA's 503
    c = Client(P)
    c.reply()
    c.ehlo()
    c.send(b"BDAT 6\r\nNOOP\r\nNOOP\r\n")
    r1 = c.reply()
    r2 = c.reply()
    t.is_(r1[0], 503, "BDAT before MAIL: 503", r1)
    t.is_(r2[0], 250, "its 6 octets ('NOOP\\r\\n') were skipped, the next NOOP answered once", r2)
    t.is_(c.reply(1)[0], -1, "and nothing else")
    code, lines = c.cmd("MAIL FROM:<sender@example.org>")
    c.cmd("RCPT TO:<bob@example.test>")
    code, lines = c.bdat(b"x")
    t.is_(code, 250, "after a BDAT refused before MAIL, MAIL starts a clean BDAT transaction", lines)
    c.cmd("RSET")
    c.cmd("MAIL FROM:<sender@example.org>")
    c.cmd("RCPT TO:<bob@example.test>")
    code, lines = c.cmd("BDAT xyz")
    t.is_(code, 501, "BDAT xyz: 501", lines)
    # RFC 3030: after a failed BDAT the transaction is failed; start again
    c.cmd("RSET")
    c.cmd("MAIL FROM:<sender@example.org>")
    c.cmd("RCPT TO:<bob@example.test>")
    code, lines = c.bdat(b"abcde")
    t.is_(code, 250, "a chunk of 5", lines)
    code, lines = c.cmd("DATA")
    t.is_(code, 503, "DATA after BDAT in one transaction: 503", lines)
    t.ok((enhanced(lines) or "").startswith("5.5."), "... 5.5.x", lines)
    code, lines = c.cmd("RSET")
    t.is_(code, 250, "RSET ends the BDAT transaction", lines)
    c.cmd("MAIL FROM:<sender@example.org>")
    c.cmd("RCPT TO:<bob@example.test>")
    code, lines = c.cmd("DATA")
    t.is_(code, 354, "DATA in a new transaction: 354", lines)
    c.send(msg("data after bdat") + b".\r\n")
    t.is_(c.reply()[0], 250, "accepted")
    c.close()
    t.ok(wait_until(lambda: "data after bdat" in subjects(h, "bob"), 10), "delivered to bob")
    time.sleep(0.5)
    t.ok(not any(b"abcde" in m for m in h.messages("bob")), "the chunk of the RSET transaction was not delivered")

    # -- pipelining: three BDAT transactions in one write --------------------------
    c = Client(P)
    c.reply()
    c.ehlo()
    burst = b""
    for i in range(3):
        b = msg("bdat piped %d" % i)
        burst += (b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<bob@example.test>\r\n"
                  b"BDAT %d LAST\r\n" % len(b) + b)
    c.send(burst + b"QUIT\r\n")
    got = [c.reply()[0] for _ in range(3 * 3 + 1)]
    t.is_(got, [250, 250, 250] * 3 + [221], "one write, three BDAT transactions: every reply in order", diag())
    c.close()
    t.ok(wait_until(lambda: all("bdat piped %d" % i in subjects(h, "bob") for i in range(3)), 10),
         "bob got all three", subjects(h, "bob"))

    # the session log lines the issue asks for
    log = h.log()
    t.ok(re.search(r"smtpd.*connect from", log), "a connect line in the log", log[-1500:])
    t.ok(re.search(r"smtpd.*: [0-9A-Za-z]+: client=.*", log) or re.search(r"from=<sender@example.org>, size=\d+, nrcpt=\d", log),
         "an accepted message line (client=..., from=<...>, size=..., nrcpt=...)", log[-1500:])
    t.ok(re.search(r"smtpd.*disconnect from", log), "a disconnect line", log[-1500:])
t.done()
