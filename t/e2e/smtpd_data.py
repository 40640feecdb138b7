"""
smtpd_data: message content over SMTP arrives byte-exact.  A 1 MB and a
20 MB message (with lines that begin with dots, long lines, every 8-bit
byte value but CR/LF/NUL) are delivered into the Maildir and compared
with what was sent once the header fields hermod adds on top
(Return-Path, Delivered-To, Received) are removed; the same for 8-bit
mail (BODY=8BITMIME), SMTPUTF8 mail (UTF-8 addresses and headers) and a
BDAT message; a message with more Received headers than hopcount_limit
gets 554 5.4.6; `sendmail -bs` runs an SMTP session on stdin/stdout.
"""
import random
import re
import time

from hermodtest import TAP, wait_until
from smtptest import Client, enhanced, keywords, same_content, smtp_instance, smtpd_log, strip_added

t = TAP()


def dot_stuff(data):
    out = re.sub(rb"(^|\r\n)\.", rb"\1..", data)
    return out


def make(subject, size, seed):
    rnd = random.Random(seed)
    hdr = ("From: Sender <sender@example.org>\r\nTo: alice@example.test\r\nSubject: %s\r\n"
           "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <%s@example.org>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\n" % (subject, subject.replace(" ", "-"))).encode()
    alphabet = bytes(b for b in range(1, 256) if b not in (10, 13))
    parts = [hdr]
    n = len(hdr)
    i = 0
    while n < size:
        kind = i % 7
        if kind == 0:
            line = b"." + bytes(rnd.choice(alphabet) for _ in range(rnd.randint(0, 80)))
        elif kind == 1:
            line = b"." if i % 14 == 1 else b".."
        elif kind == 2:
            line = bytes(rnd.choice(alphabet) for _ in range(998))  # longest legal line
        elif kind == 3:
            line = b""
        else:
            line = bytes(rnd.choice(alphabet) for _ in range(rnd.randint(1, 200)))
        parts.append(line + b"\r\n")
        n += len(line) + 2
        i += 1
    return b"".join(parts)


def make_fast(subject, size, seed):
    """Like make() but builds a big message from a pool of random lines (fast)."""
    rnd = random.Random(seed)
    pool = [make("x", 20000, seed + k).split(b"\r\n\r\n", 1)[1] for k in range(4)]
    hdr = make(subject, 0, seed)
    parts = [hdr]
    n = len(hdr)
    while n < size:
        p = pool[rnd.randrange(len(pool))]
        parts.append(p)
        n += len(p)
    return b"".join(parts)


def send(port, sender, rcpts, data, mail_params="", timeout=120):
    c = Client(port, timeout=timeout)
    out = [c.reply()]
    out.append(c.ehlo())
    out.append(c.cmd("MAIL FROM:<%s>%s" % (sender, mail_params)))
    for r in rcpts:
        out.append(c.cmd("RCPT TO:<%s>" % r))
    out.append(c.cmd("DATA"))
    if out[-1][0] == 354:
        c.sock.sendall(dot_stuff(data) + b".\r\n")
        out.append(c.reply(timeout))
    c.cmd("QUIT")
    c.close()
    return out


def find(h, user, subj):
    s = b"Subject: " + subj.encode()
    for m in h.messages(user):
        if s + b"\n" in m or s + b"\r\n" in m:
            return m
    return None


def check_exact(h, user, subj, original, what, timeout=30, received=rb"^Received: from "):
    m = wait_until(lambda: find(h, user, subj), timeout, 0.1)
    t.ok(m, "%s: delivered" % what, smtpd_log(h))
    if not m:
        return
    added, rest = strip_added(m)
    ok = same_content(rest, original)
    d = None
    if not ok:
        want = original.replace(b"\r\n", b"\n")
        k = next((j for j in range(min(len(rest), len(want))) if rest[j] != want[j]), min(len(rest), len(want)))
        d = "sizes: delivered %d, sent %d (LF form %d); first difference at %d:\n got  %r\n want %r\nadded: %r" % (
            len(rest), len(original), len(want), k, rest[k - 40:k + 40], want[k - 40:k + 40], added[:600])
    t.ok(ok, "%s: byte-exact after the added headers (%d bytes)" % (what, len(original)), d)
    t.ok(re.search(received, added, re.M), "%s: hermod added a Received header (%s)" % (what, received.decode()),
         added[:600])


conf = {"message_size_limit": 30000000}
with smtp_instance(users=["alice", "bob"], conf=conf) as h:
    P = h.smtp_port

    # small message with dots and 8-bit bytes
    small = make("small 8bit", 5000, 1)
    r = send(P, "sender@example.org", ["alice@example.test"], small, " BODY=8BITMIME")
    t.is_([x[0] for x in r], [220, 250, 250, 250, 354, 250], "8BITMIME message accepted", (r, smtpd_log(h)))
    check_exact(h, "alice", "small 8bit", small, "8-bit message with dot lines")

    # 1 MB and 20 MB
    for mb, seed in ((1, 2), (20, 3)):
        big = make_fast("big %d MB" % mb, mb * 1024 * 1024, seed)
        t0 = time.time()
        r = send(P, "sender@example.org", ["alice@example.test"], big, " BODY=8BITMIME SIZE=%d" % len(big))
        t.is_(r[-1][0], 250, "%d MB message accepted (%.1fs)" % (mb, time.time() - t0), (r, smtpd_log(h)))
        check_exact(h, "alice", "big %d MB" % mb, big, "%d MB message" % mb, timeout=60)

    # SMTPUTF8
    utf = ("From: J\u00f6rg <j\u00f6rg@b\u00fccher.example>\r\nTo: alice@example.test\r\n"
           "Subject: gr\u00fc\u00dfe \u2603\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
           "Message-ID: <utf8@b\u00fccher.example>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           "\u65e5\u672c\u8a9e\u306e\u672c\u6587 \u2014 \u00e9\u00e8\r\n.\u00e9 at a line start\r\n").encode()
    c = Client(P)
    c.reply()
    code, lines = c.ehlo()
    t.ok("SMTPUTF8" in keywords(lines), "SMTPUTF8 advertised", lines)
    code, lines = c.cmd("MAIL FROM:<j\u00f6rg@b\u00fccher.example> SMTPUTF8 BODY=8BITMIME".encode())
    t.is_(code, 250, "MAIL with a UTF-8 address and SMTPUTF8: 250", (lines, smtpd_log(h)))
    code, lines = c.cmd("RCPT TO:<alice@example.test>")
    t.is_(code, 250, "RCPT 250", lines)
    code, lines = c.cmd("DATA")
    if code == 354:
        c.send(dot_stuff(utf) + b".\r\n")
        code, lines = c.reply()
    t.is_(code, 250, "SMTPUTF8 message accepted", lines)
    c.close()
    check_exact(h, "alice", "gr\u00fc\u00dfe \u2603", utf, "SMTPUTF8 message")
    m = find(h, "alice", "gr\u00fc\u00dfe \u2603")
    if m:
        t.ok("<j\u00f6rg@b\u00fccher.example>".encode() in strip_added(m)[0],
             "Return-Path keeps the UTF-8 sender", strip_added(m)[0])
    c = Client(P)
    c.reply()
    c.ehlo()
    code, lines = c.cmd("MAIL FROM:<j\u00f6rg@b\u00fccher.example>".encode())
    t.ok(code in (553, 501, 550), "a UTF-8 address without SMTPUTF8 is refused (%d)" % code, lines)
    c.close()

    # BDAT: raw bytes, no dot-stuffing
    bd = make("bdat raw", 200000, 4)
    c = Client(P, timeout=60)
    c.reply()
    c.ehlo()
    c.cmd("MAIL FROM:<sender@example.org> BODY=8BITMIME")
    c.cmd("RCPT TO:<bob@example.test>")
    pos, codes = 0, []
    while pos < len(bd):
        chunk = bd[pos:pos + 65536]
        pos += len(chunk)
        codes.append(c.bdat(chunk, last=pos >= len(bd))[0])
    t.ok(codes and all(x == 250 for x in codes), "BDAT chunks accepted", (codes, smtpd_log(h)))
    c.close()
    check_exact(h, "bob", "bdat raw", bd, "BDAT message")

    # hop count
    loop = b"".join(b"Received: from hop%d.example by x.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n" % i
                    for i in range(60)) + make("looping", 300, 5)
    r = send(P, "sender@example.org", ["alice@example.test"], loop)
    t.is_(r[-1][0], 554, "more Received headers than hopcount_limit: 554", (r, smtpd_log(h)))
    t.is_(enhanced(r[-1][1]), "5.4.6", "... 5.4.6", r[-1])

    # sendmail -bs
    m = make("via sendmail -bs", 300, 6)
    session = (b"EHLO localhost\r\nMAIL FROM:<sender@example.org>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
               + dot_stuff(m) + b".\r\nQUIT\r\n")
    p = h.sendmail(["-bs"], session)
    out = p.stdout.decode(errors="replace")
    got = [int(x) for x in re.findall(r"^(\d\d\d) ", out, re.M)]
    t.is_(got, [220, 250, 250, 250, 354, 250, 221], "sendmail -bs: the replies of a whole session", out + p.stderr.decode(errors="replace"))
    t.is_(p.returncode, 0, "sendmail -bs exits 0")
    check_exact(h, "bob", "via sendmail -bs", m, "sendmail -bs message", received=rb"^Received: by .*\(hermod, from ")
    if find(h, "bob", "via sendmail -bs"):
        added = strip_added(find(h, "bob", "via sendmail -bs"))[0]
        t.ok(re.search(rb"^Received: ", added, re.M), "sendmail -bs message has a Received header", added)
t.done()
