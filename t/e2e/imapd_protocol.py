"""
imapd_protocol: IMAP4rev1 (RFC 3501) and the extensions imapd(8)
advertises, against a running instance over loopback (imaplib and raw
sockets): greeting and CAPABILITY, LOGIN and AUTHENTICATE PLAIN (SASL-IR),
a wrong password, the plaintext policy (imap_plaintext_auth=no:
LOGINDISABLED, NO [PRIVACYREQUIRED]), STARTTLS and implicit TLS (imaps),
NAMESPACE, ID, ENABLE, SELECT/EXAMINE responses, byte-exact FETCH
BODY[] against the Maildir file, BODY.PEEK and \\Seen, partial fetches,
BODYSTRUCTURE of a nested multipart, ENVELOPE, SEARCH keys, STORE and
flag persistence (in a new session and in the Maildir file name), COPY
and MOVE with COPYUID, APPEND with APPENDUID, EXPUNGE seen by a
concurrent session, UID EXPUNGE, IDLE woken by a delivery, folder
commands and the special-use folders made at first login,
CLOSE/UNSELECT/LOGOUT, commands in the wrong state, malformed input,
synchronising and non-synchronising literals.
Every read has a time limit; every check compares exact responses.
"""
import datetime
import imaplib
import os
import re
import signal
import socket
import ssl
import time

from hermodtest import TAP, Instance, BUILDDIR, wait_until

from imaptest import IMAPD, enable_imap, tls_ctx, Raw, login, parse, fetch_items, fetches, crlf, uidset, untagged

DOMAIN = "example.test"


def maildir_flags(path):
    """The system flag letters of a Maildir file name ('' without :2,);
    lower-case keyword letters (a Dovecot extension) are left out."""
    n = os.path.basename(path)
    return "".join(ch for ch in (n.split(":2,", 1)[1] if ":2," in n else "") if ch.isupper())


def flags(v):
    """A FETCH FLAGS value as a sorted list of lower-case flags, without
    \\Recent (a session flag, not stored)."""
    return sorted(x.lower() for x in (v or []) if x.lower() != b"\\recent")


# ---- the messages -------------------------------------------------------

M1 = (b"From: Alice Example <alice@example.test>\nTo: alice@example.test\nCc: Carol <carol@example.test>\n"
      b"Subject: first\nDate: Thu, 01 Jan 2026 09:00:00 +0000\nMessage-ID: <first@example.test>\n\n"
      b"Hello.\nfindmebodytoken here\n.leading dot\n\nlast line\n")
M2 = (b"From: Bob <bob@example.test>\nTo: alice@example.test\nSubject: nested\n"
      b"Date: Thu, 01 Jan 2026 10:00:00 +0000\nMessage-ID: <nested@example.test>\nMIME-Version: 1.0\n"
      b"Content-Type: multipart/mixed; boundary=\"outer\"\n\npreamble\n"
      b"--outer\nContent-Type: text/plain; charset=us-ascii\n\nplain part\n\n"
      b"--outer\nContent-Type: multipart/alternative; boundary=\"inner\"\n\n"
      b"--inner\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
      b"alt plain\n\n"
      b"--inner\nContent-Type: text/html; charset=utf-8\n\n<p>alt html</p>\n\n--inner--\n\n"
      b"--outer\nContent-Type: application/octet-stream; name=\"a.bin\"\nContent-Transfer-Encoding: base64\n"
      b"Content-Disposition: attachment; filename=\"a.bin\"\n\nAAECAwQF\n\n--outer--\n")
M3 = (b"From: carol@example.test\nTo: alice@example.test\nSubject: big one\nMessage-ID: <big@example.test>\n\n"
      + (b"y" * 99 + b"\n") * 200)
M4 = (b"From: Alice Example <alice@example.test>\nTo: alice@example.test\nSubject: quarterly Report\n"
      b"Message-ID: <fourth@example.test>\n\nnumbers\n")
M5 = (b"From: dave@example.test\nTo: alice@example.test\nSubject: fifth\nMessage-ID: <fifth@example.test>\n\n"
      b"nothing special\n")
MSGS = [M1, M2, M3, M4, M5]


def by_msgid(h, user="alice"):
    """{Message-ID: path} of the user's INBOX files."""
    out = {}
    for p in h.message_files(user):
        m = re.search(rb"^Message-ID: (<[^>]+>)", open(p, "rb").read(), re.M | re.I)
        if m:
            out[m.group(1)] = p
    return out


t = TAP()
CAPS_AUTH = ("IMAP4rev1", "COMPRESS=DEFLATE", "IDLE", "UIDPLUS", "MOVE", "LITERAL+", "NAMESPACE", "ID", "ENABLE", "UNSELECT",
             "CHILDREN", "SPECIAL-USE", "ESEARCH", "SASL-IR", "CONDSTORE")

with Instance(users=["alice", "bob", "carol"], start=False,
              conf={"auth_failure_delay": "1s", "imap_login_timeout": "3s"}) as h:
    enable_imap(h)
    h.start()
    port = h.port_base + 143
    sport = h.port_base + 993
    t.ok(wait_until(lambda: h.pids("imap") and h.pids("imaps"), 10), "imap and imaps services running",
         h.log()[-3000:])
    for i, m in enumerate(MSGS):
        h.sendmail(["-i", "alice@" + DOMAIN], m)
        h.wait_messages("alice", i + 1)
    t.is_(len(h.message_files("alice")), 5, "5 messages delivered to alice")
    files = by_msgid(h)
    ids = [b"<first@example.test>", b"<nested@example.test>", b"<big@example.test>",
           b"<fourth@example.test>", b"<fifth@example.test>"]
    t.is_(sorted(files), sorted(ids), "each delivered message found by its Message-ID")
    stored = {k: open(p, "rb").read() for k, p in files.items()}

    # --- not authenticated ----------------------------------------------
    try:
        c = Raw(port)
        g = c.line()
    except (OSError, EOFError) as e:
        t.ok(False, "connect to imap", "%r\n%s" % (e, h.log()[-3000:]))
        t.done()
    m = re.match(rb"^\* OK \[CAPABILITY ([^\]]*)\] ", g)
    t.ok(m, "greeting is * OK [CAPABILITY ...]", g)
    gcaps = m.group(1).split() if m else []
    for cap in (b"IMAP4rev1", b"STARTTLS", b"AUTH=PLAIN", b"SASL-IR", b"LITERAL+", b"ID", b"ENABLE", b"IDLE"):
        t.ok(cap in gcaps, "greeting capabilities list %s" % cap.decode(), g)
    t.ok(b"LOGINDISABLED" not in gcaps, "no LOGINDISABLED on loopback by default", g)
    unt, tl = c.cmd("CAPABILITY")
    t.ok(len(unt) == 1 and unt[0].startswith(b"* CAPABILITY ") and tl.startswith(b"T1 OK "),
         "CAPABILITY: one untagged line and OK", (unt, tl))
    t.is_(unt[0].split()[2:] if unt else None, gcaps, "CAPABILITY equals the greeting's list")
    # a few per connection: a client is disconnected after imap_error_limit bad commands
    bads = ("SELECT INBOX", "EXAMINE INBOX", "LIST \"\" *", "FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)",
            "EXPUNGE", "CLOSE", "CREATE x", "STATUS INBOX (MESSAGES)", "APPEND INBOX {1+}\r\nx",
            "ENABLE CONDSTORE", "IDLE", "NAMESPACE", "BLURDYBLOOP")
    for k in range(0, len(bads), 2):
        cb = Raw(port)
        cb.line()
        for bad in bads[k:k + 2]:
            r = cb.ok(bad)
            t.ok(r.startswith(b"BAD"), "not authenticated: %s -> BAD" % bad.split("\r")[0], r)
        cb.close()
    r = c.ok("NOOP")
    t.ok(r.startswith(b"OK"), "NOOP before login", r)
    unt, tl = c.cmd('ID ("name" "hermodtest" "version" "1")')
    t.ok(len(unt) == 1 and re.match(rb"^\* ID (NIL|\(.*\))$", unt[0]) and tl.startswith(b"T%d OK" % c.n),
         "ID before login: * ID and OK", (unt, tl))
    if unt and unt[0] != b"* ID NIL":
        idv, _ = parse(unt[0], 5)
        keys = [x.lower() for x in idv[0::2]] if isinstance(idv, list) else []
        t.ok(b"name" in keys, "ID answer names the server", unt[0])
    t0 = time.time()
    r = c.ok("LOGIN alice wrong")
    t.ok(r.startswith(b"NO [AUTHENTICATIONFAILED]"), "wrong password -> NO [AUTHENTICATIONFAILED]", r)
    t.ok(time.time() - t0 >= 0.9, "a failed login waits auth_failure_delay (1s)", time.time() - t0)
    r = c.ok("LOGIN nosuchuser secret")
    t.ok(r.startswith(b"NO [AUTHENTICATIONFAILED]"), "unknown user -> NO [AUTHENTICATIONFAILED]", r)
    r = c.ok("LOGIN alice secret")
    m = re.match(rb"^OK \[CAPABILITY ([^\]]*)\]", r)
    t.ok(r.startswith(b"OK"), "LOGIN (plaintext allowed on loopback)", r)
    acaps = m.group(1).split() if m else c.cmd("CAPABILITY")[0][0].split()[2:]
    for cap in CAPS_AUTH:
        t.ok(cap.encode() in acaps, "capabilities after login list %s" % cap, acaps)
    unt, _ = c.cmd("CAPABILITY")
    t.is_(unt[0].split()[2:] if unt else None, acaps, "CAPABILITY after login equals the LOGIN OK list")
    r = c.ok("LOGIN alice secret")
    t.ok(r.startswith(b"BAD"), "LOGIN when authenticated -> BAD", r)
    r = c.ok("AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==")
    t.ok(r.startswith(b"BAD"), "AUTHENTICATE when authenticated -> BAD", r)
    for bad in ("FETCH 1 FLAGS", "STORE 1 FLAGS (\\Seen)", "SEARCH ALL", "COPY 1 Trash", "EXPUNGE",
                "UID FETCH 1 FLAGS", "CLOSE", "MOVE 1 Trash"):
        r = c.ok(bad)
        t.ok(r.startswith(b"BAD"), "authenticated, nothing selected: %s -> BAD" % bad, r)

    # NAMESPACE, ENABLE, LIST of the special-use folders
    unt, tl = c.cmd("NAMESPACE")
    t.ok(tl.startswith(b"T%d OK" % c.n) and len(unt) == 1 and unt[0].startswith(b"* NAMESPACE "),
         "NAMESPACE", (unt, tl))
    ns, _ = parse(b"(" + unt[0][12:] + b")") if unt else ([None], 0)
    delim = None
    if t.ok(isinstance(ns, list) and len(ns) == 3 and isinstance(ns[0], list) and len(ns[0]) == 1
            and ns[0][0][0] == b"" and ns[1] is None and ns[2] is None,
            "NAMESPACE: one personal namespace with prefix \"\", no other or shared", unt):
        delim = ns[0][0][1]
    unt, tl = c.cmd('LIST "" ""')
    m = re.match(rb'^\* LIST \(\\Noselect\) "(.)" ""$', unt[0]) if unt else None
    t.ok(m and tl.startswith(b"T%d OK" % c.n), 'LIST "" "" gives the delimiter', (unt, tl))
    t.is_(m.group(1) if m else None, delim, "LIST and NAMESPACE agree on the delimiter")
    D = (delim or b".").decode()
    unt, tl = c.cmd('LIST "" "*"')
    lists = {}
    for l in unt:
        v, _ = parse(b"(" + l[7:] + b")")
        lists[v[2].decode() if isinstance(v[2], bytes) else v[2]] = [a.lower() for a in v[0]]
    for name, use in (("Sent", b"\\sent"), ("Drafts", b"\\drafts"), ("Trash", b"\\trash"), ("Junk", b"\\junk")):
        t.ok(name in lists and use in lists[name], "first login made %s with %s" % (name, use.decode()), lists)
        t.ok(os.path.isdir(os.path.join(h.maildir("alice"), "." + name, "cur")),
             "%s is a Maildir++ folder .%s" % (name, name))
    t.ok("INBOX" in lists, "LIST * includes INBOX", lists)
    unt, tl = c.cmd('LSUB "" "*"')
    subs = set()
    for l in unt:
        v, _ = parse(b"(" + l[7:] + b")")
        subs.add(v[2].decode())
    t.ok({"Sent", "Drafts", "Trash", "Junk"} <= subs, "special-use folders are subscribed", unt)
    unt, tl = c.cmd("ENABLE CONDSTORE")
    t.ok(unt == [b"* ENABLED CONDSTORE"] and tl.startswith(b"T%d OK" % c.n), "ENABLE CONDSTORE", (unt, tl))
    unt, tl = c.cmd("ENABLE X-NO-SUCH-THING")
    t.ok(tl.startswith(b"T%d OK" % c.n) and not any(b"X-NO-SUCH" in l for l in unt),
         "ENABLE of an unknown extension: OK, nothing enabled", (unt, tl))
    c.ok("LOGOUT")
    c.close()

    # --- SELECT / EXAMINE ------------------------------------------------
    c = login(port)
    unt, tl = c.cmd("SELECT INBOX")
    t.ok(re.match(rb"^T\d+ OK \[READ-WRITE\]", tl), "SELECT INBOX: OK [READ-WRITE]", tl)
    t.ok(b"* 5 EXISTS" in unt, "SELECT: * 5 EXISTS", unt)
    t.ok(b"* 5 RECENT" in unt, "first SELECT: * 5 RECENT (all new)", unt)
    fl = [l for l in unt if l.startswith(b"* FLAGS ")]
    want_flags = {b"\\answered", b"\\flagged", b"\\deleted", b"\\seen", b"\\draft"}
    t.ok(len(fl) == 1 and want_flags <= {x.lower() for x in parse(fl[0], 8)[0]}, "SELECT: * FLAGS with the system flags",
         fl)
    pf = [l for l in unt if l.startswith(b"* OK [PERMANENTFLAGS (")]
    t.ok(len(pf) == 1 and want_flags <= {x.lower() for x in parse(pf[0], 21)[0]} and b"\\*" in pf[0],
         "SELECT: PERMANENTFLAGS with the system flags and \\*", pf)
    uv = [int(re.match(rb"^\* OK \[UIDVALIDITY (\d+)\]", l).group(1)) for l in unt
          if re.match(rb"^\* OK \[UIDVALIDITY \d+\]", l)]
    un = [int(re.match(rb"^\* OK \[UIDNEXT (\d+)\]", l).group(1)) for l in unt
          if re.match(rb"^\* OK \[UIDNEXT \d+\]", l)]
    t.ok(len(uv) == 1 and uv[0] > 0, "SELECT: UIDVALIDITY", unt)
    t.ok(len(un) == 1, "SELECT: UIDNEXT", unt)
    t.ok(any(re.match(rb"^\* OK \[UNSEEN 1\]", l) for l in unt), "SELECT: [UNSEEN 1]", unt)
    UIDVALIDITY = uv[0] if uv else None
    unt, tl = c.cmd("FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    f = fetches(unt)
    t.is_(sorted(f), [1, 2, 3, 4, 5], "FETCH 1:* answers each message", (unt, tl))
    uids = [int(f[n][b"UID"]) for n in sorted(f)]
    t.ok(uids == sorted(uids) and len(set(uids)) == 5, "UIDs strictly ascending", uids)
    t.is_(un[0] if un else None, max(uids) + 1 if uids else None, "UIDNEXT is the highest UID + 1 (fresh folder)")
    seq_of = {}
    for n in sorted(f):
        hv = [v for k, v in f[n].items() if k.startswith(b"BODY[HEADER.FIELDS")]
        mm = re.search(rb"<[^>]+>", hv[0] if hv else b"")
        if mm:
            seq_of[mm.group(0)] = n
    t.is_(sorted(seq_of), sorted(ids), "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)] finds each message")
    uid_of = {k: int(f[n][b"UID"]) for k, n in seq_of.items()}
    for k, n in seq_of.items():
        t.is_(int(f[n][b"RFC822.SIZE"]), len(crlf(stored[k])), "RFC822.SIZE of %s is its CRLF size" % k.decode())
        t.is_(flags(f[n][b"FLAGS"]), [], "%s: no flags yet" % k.decode())
    s1, s2, s3, s4, s5 = (seq_of.get(k, 1) for k in ids)

    # FETCH BODY[] byte-exact, BODY.PEEK and \Seen
    unt, tl = c.cmd("FETCH 1:* (BODY.PEEK[])")
    f = fetches(unt)
    for k, n in seq_of.items():
        t.ok(f.get(n, {}).get(b"BODY[]") == crlf(stored[k]),
             "BODY.PEEK[] of %s byte-exact (the Maildir file, LF -> CRLF)" % k.decode())
    unt, tl = c.cmd("FETCH 1:* (FLAGS)")
    t.ok(all(flags(v.get(b"FLAGS")) == [] for v in fetches(unt).values()), "BODY.PEEK[] sets no \\Seen", unt)
    unt, tl = c.cmd("FETCH %d BODY[]" % s1)
    f = fetches(unt).get(s1, {})
    t.ok(f.get(b"BODY[]") == crlf(stored[ids[0]]), "FETCH BODY[] byte-exact", f)
    t.ok(flags(f.get(b"FLAGS")) == [b"\\seen"], "FETCH BODY[] sets \\Seen (told in the FETCH)",
         unt)
    t.ok(wait_until(lambda: maildir_flags(by_msgid(h).get(ids[0], "")) == "S", 5),
         "\\Seen is in the Maildir file name (:2,S)", by_msgid(h).get(ids[0]))
    t.ok(os.path.basename(os.path.dirname(by_msgid(h).get(ids[0], "x/x/x")) or "") == "cur", "the seen file is in cur/")
    body1 = crlf(stored[ids[0]])
    unt, tl = c.cmd("FETCH %d (BODY.PEEK[]<0.10> BODY.PEEK[]<10.20>)" % s1)
    f = fetches(unt).get(s1, {})
    t.is_(f.get(b"BODY[]<0>"), body1[:10], "partial BODY[]<0.10>", unt)
    t.is_(f.get(b"BODY[]<10>"), body1[10:30], "partial BODY[]<10.20>", unt)
    unt, tl = c.cmd("FETCH %d BODY.PEEK[]<%d.100>" % (s1, len(body1) - 5))
    t.is_(fetches(unt).get(s1, {}).get(b"BODY[]<%d>" % (len(body1) - 5)), body1[-5:], "partial past the end is cut")
    unt, tl = c.cmd("FETCH %d BODY.PEEK[TEXT]" % s1)
    t.is_(fetches(unt).get(s1, {}).get(b"BODY[TEXT]"), body1.split(b"\r\n\r\n", 1)[1], "BODY[TEXT]")
    unt, tl = c.cmd("FETCH %d BODY.PEEK[HEADER.FIELDS (SUBJECT)]" % s2)
    t.is_(fetches(unt).get(s2, {}).get(b"BODY[HEADER.FIELDS (SUBJECT)]"), b"Subject: nested\r\n\r\n",
          "BODY[HEADER.FIELDS (SUBJECT)]", unt)
    for part, want in (("1", b"plain part\r\n"), ("2.1", b"alt plain\r\n"), ("2.2", b"<p>alt html</p>\r\n"),
                       ("3", b"AAECAwQF\r\n")):
        unt, tl = c.cmd("FETCH %d BODY.PEEK[%s]" % (s2, part))
        t.is_(fetches(unt).get(s2, {}).get(b"BODY[%s]" % part.encode()), want, "BODY[%s] of the multipart" % part,
              (unt, tl))
    unt, tl = c.cmd("FETCH %d BODY.PEEK[3.MIME]" % s2)
    t.is_(fetches(unt).get(s2, {}).get(b"BODY[3.MIME]"),
          b"Content-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n"
          b"Content-Disposition: attachment; filename=\"a.bin\"\r\n\r\n", "BODY[3.MIME]", unt)

    # BODYSTRUCTURE of the nested multipart
    unt, tl = c.cmd("FETCH %d BODYSTRUCTURE" % s2)
    bs = fetches(unt).get(s2, {}).get(b"BODYSTRUCTURE")

    def low(x):
        if isinstance(x, list):
            return [low(y) for y in x]
        return x.lower() if isinstance(x, bytes) else x

    ok = isinstance(bs, list) and len(bs) >= 5
    lb = low(bs) if ok else None
    t.ok(ok and isinstance(bs[0], list) and isinstance(bs[1], list) and isinstance(bs[2], list)
         and lb[3] == b"mixed" and lb[4][:2] == [b"boundary", b"outer"],
         "BODYSTRUCTURE: multipart/mixed of 3 parts, boundary outer", bs)
    if ok and isinstance(bs[0], list):
        t.is_(lb[0][:8], [b"text", b"plain", [b"charset", b"us-ascii"], None, None, b"7bit", b"12", b"1"],
              "BODYSTRUCTURE part 1: text/plain us-ascii 7bit 12 octets 1 line")
        inner = lb[1]
        t.ok(isinstance(inner, list) and len(inner) >= 4 and inner[2] == b"alternative"
             and inner[3][:2] == [b"boundary", b"inner"], "BODYSTRUCTURE part 2: multipart/alternative", inner)
        if isinstance(inner, list) and len(inner) >= 3:
            t.is_(inner[0][:8], [b"text", b"plain", [b"charset", b"utf-8"], None, None, b"quoted-printable",
                                 b"11", b"1"], "BODYSTRUCTURE part 2.1: text/plain quoted-printable 11 octets")
            t.is_(inner[1][:8], [b"text", b"html", [b"charset", b"utf-8"], None, None, b"7bit", b"17", b"1"],
                  "BODYSTRUCTURE part 2.2: text/html 17 octets")
        p3 = lb[2]
        t.is_(p3[:7], [b"application", b"octet-stream", [b"name", b"a.bin"], None, None, b"base64", b"10"],
              "BODYSTRUCTURE part 3: application/octet-stream base64 10 octets")
        t.is_(p3[8] if len(p3) > 8 else None, [b"attachment", [b"filename", b"a.bin"]],
              "BODYSTRUCTURE part 3: disposition attachment; filename a.bin")
    unt, tl = c.cmd("FETCH %d BODY" % s1)
    t.is_(low(fetches(unt).get(s1, {}).get(b"BODY")),
          [b"text", b"plain", [b"charset", b"us-ascii"], None, None, b"7bit",
           str(len(body1.split(b"\r\n\r\n", 1)[1])).encode(), b"5"],
          "BODY (non-extensible) of a plain message: defaults, size and lines", unt)

    # ENVELOPE
    unt, tl = c.cmd("FETCH %d ENVELOPE" % s1)
    env = fetches(unt).get(s1, {}).get(b"ENVELOPE")
    alice = [[b"Alice Example", None, b"alice", b"example.test"]]
    t.is_(env, [b"Thu, 01 Jan 2026 09:00:00 +0000", b"first", alice, alice, alice,
                [[None, None, b"alice", b"example.test"]], [[b"Carol", None, b"carol", b"example.test"]],
                None, None, b"<first@example.test>"], "ENVELOPE: date, subject, from=sender=reply-to, to, cc, "
          "no bcc or in-reply-to, message-id", unt)
    unt, tl = c.cmd("FETCH %d (INTERNALDATE)" % s1)
    idate = fetches(unt).get(s1, {}).get(b"INTERNALDATE")
    t.ok(isinstance(idate, bytes) and re.match(rb"^[ \d]\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}$", idate),
         "INTERNALDATE in RFC 3501 form", idate)

    # SEARCH
    today = time.strftime("%d-%b-%Y", time.localtime())
    tomorrow = time.strftime("%d-%b-%Y", time.localtime(time.time() + 2 * 86400))

    def search(q):
        unt, tl = c.cmd("SEARCH " + q)
        s = [l for l in unt if l.startswith(b"* SEARCH")]
        if not tl.startswith(b"T%d OK" % c.n) or len(s) != 1:
            return ("error", unt, tl)
        return sorted(int(x) for x in s[0].split()[2:])

    # delivery adds header lines: the sizes are those of the stored files
    small = max(len(crlf(stored[ids[3]])), len(crlf(stored[ids[4]]))) + 1
    smaller = sorted(seq_of[k] for k in ids if len(crlf(stored[k])) < small)
    for q, want in (("ALL", [1, 2, 3, 4, 5]), ("SEEN", [s1]), ("UNSEEN", sorted([s2, s3, s4, s5])),
                    ("FROM alice", sorted([s1, s4])), ("FROM \"Alice Example\"", sorted([s1, s4])),
                    ("SUBJECT report", [s4]), ("SUBJECT \"big one\"", [s3]),
                    ("BODY findmebodytoken", [s1]), ("BODY fourth", []), ("TEXT fourth", [s4]),
                    ("TEXT \"alt html\"", [s2]), ("LARGER 10000", [s3]), ("SMALLER %d" % small, smaller),
                    ("UID %d" % uid_of.get(ids[2], 0), [s3]), ("UID %d:*" % uid_of.get(ids[3], 0),
                                                                sorted(n for n in (1, 2, 3, 4, 5)
                                                                       if uids[n - 1] >= uid_of.get(ids[3], 0))),
                    ("NOT SEEN", sorted([s2, s3, s4, s5])), ("OR FROM dave SUBJECT nested", sorted([s2, s5])),
                    ("NOT OR FROM dave SUBJECT nested", sorted([s1, s3, s4])),
                    ("SINCE " + today, [1, 2, 3, 4, 5]), ("SINCE " + tomorrow, []),
                    ("SEEN FROM alice", [s1]), ("(OR SEEN LARGER 10000) NOT FROM carol", [s1]),
                    ("1:2", [1, 2]), ("*", [5]), ("4:*", [4, 5]), ("HEADER Message-ID fifth", [s5])):
        t.is_(search(q), want, "SEARCH " + q)
    unt, tl = c.cmd("UID SEARCH FROM alice")
    s = [l for l in unt if l.startswith(b"* SEARCH")]
    t.is_(sorted(int(x) for x in s[0].split()[2:]) if s else None, sorted([uid_of[ids[0]], uid_of[ids[3]]]),
          "UID SEARCH answers UIDs")
    unt, tl = c.cmd("SEARCH RETURN (MIN MAX COUNT) ALL")
    t.ok(len(unt) == 1 and re.match(rb"^\* ESEARCH \(TAG \"T%d\"\) MIN 1 MAX 5 COUNT 5$" % c.n, unt[0]),
         "ESEARCH RETURN (MIN MAX COUNT)", unt)

    # STORE
    unt, tl = c.cmd("STORE %d +FLAGS (\\Flagged)" % s2)
    f = fetches(unt)
    t.ok(tl.startswith(b"T%d OK" % c.n) and flags(f.get(s2, {}).get(b"FLAGS", [b"?"])) == [b"\\flagged"],
         "STORE +FLAGS (\\Flagged): FETCH (FLAGS (\\Flagged))", (unt, tl))
    unt, tl = c.cmd("STORE %d +FLAGS (\\Answered $Label1)" % s2)
    t.is_(flags(fetches(unt).get(s2, {}).get(b"FLAGS")),
          [b"$label1", b"\\answered", b"\\flagged"], "STORE +FLAGS adds a system flag and a keyword", unt)
    unt, tl = c.cmd("STORE %d -FLAGS (\\Answered)" % s2)
    t.is_(flags(fetches(unt).get(s2, {}).get(b"FLAGS")), [b"$label1", b"\\flagged"],
          "STORE -FLAGS", unt)
    unt, tl = c.cmd("STORE %d FLAGS.SILENT (\\Draft \\Flagged)" % s3)
    t.ok(tl.startswith(b"T%d OK" % c.n) and not fetches(unt), "STORE FLAGS.SILENT: no FETCH", (unt, tl))
    unt, tl = c.cmd("FETCH %d,%d FLAGS" % (s2, s3))
    f = fetches(unt)
    t.is_(flags(f.get(s3, {}).get(b"FLAGS")), [b"\\draft", b"\\flagged"],
          "FLAGS.SILENT took effect")
    t.ok(wait_until(lambda: maildir_flags(by_msgid(h).get(ids[1], "")) == "F"
                    and maildir_flags(by_msgid(h).get(ids[2], "")) == "DF", 5),
         "flags in the Maildir file names (:2,F and :2,DF)", [os.path.basename(p) for p in h.message_files("alice")])
    r = c.ok("STORE 1 +FLAGS (\\Recent)")
    t.ok(r.startswith(b"BAD") or r.startswith(b"NO"), "STORE of \\Recent refused", r)
    c.ok("LOGOUT")
    c.close()

    # persistence in a new session; RECENT now 0; EXAMINE is read-only
    c = login(port)
    unt, tl = c.cmd("EXAMINE INBOX")
    t.ok(re.match(rb"^T\d+ OK \[READ-ONLY\]", tl), "EXAMINE: OK [READ-ONLY]", tl)
    t.ok(b"* 5 EXISTS" in unt and b"* 0 RECENT" in unt, "second session: 5 EXISTS, 0 RECENT", unt)
    t.is_([int(re.match(rb"^\* OK \[UIDVALIDITY (\d+)\]", l).group(1)) for l in unt
           if re.match(rb"^\* OK \[UIDVALIDITY \d+\]", l)], [UIDVALIDITY], "same UIDVALIDITY in a new session")
    unt, tl = c.cmd("FETCH 1:* (UID FLAGS)")
    f = fetches(unt)
    t.is_({int(v[b"UID"]): flags(v[b"FLAGS"]) for v in f.values()},
          {uid_of[ids[0]]: [b"\\seen"], uid_of[ids[1]]: [b"$label1", b"\\flagged"],
           uid_of[ids[2]]: [b"\\draft", b"\\flagged"], uid_of[ids[3]]: [], uid_of[ids[4]]: []},
          "UIDs and flags (keyword too) kept in a new session")
    unt, tl = c.cmd("FETCH %d BODY[]" % s4)
    f = fetches(unt).get(s4, {})
    t.ok(f.get(b"BODY[]") == crlf(stored[ids[3]]) and b"\\Seen" not in (f.get(b"FLAGS") or []),
         "EXAMINE: BODY[] does not set \\Seen", unt)
    r = c.ok("STORE %d +FLAGS (\\Deleted)" % s5)
    # RFC 3501 leaves NO or an OK that changes nothing to the server
    t.ok(r.startswith(b"NO") or r.startswith(b"OK"), "EXAMINE: STORE answered NO or OK", r)
    r = c.ok("EXPUNGE")
    t.ok(r.startswith(b"NO") or r.startswith(b"OK"), "EXAMINE: EXPUNGE answered NO or OK", r)
    unt, tl = c.cmd("FETCH %d FLAGS" % s5)
    t.is_(flags(fetches(unt).get(s5, {}).get(b"FLAGS")), [], "EXAMINE: no flag stored")
    t.is_(len(h.message_files("alice")), 5, "EXAMINE: nothing expunged")
    c.ok("LOGOUT")
    c.close()

    # COPY, MOVE with COPYUID; APPEND with APPENDUID
    c = login(port)
    c.cmd("SELECT INBOX")
    unt, tl = c.cmd("STATUS Trash (MESSAGES UIDNEXT UIDVALIDITY)")
    st = re.search(rb"UIDNEXT (\d+) UIDVALIDITY (\d+)", b" ".join(unt))
    trash_next, trash_uv = (int(st.group(1)), int(st.group(2))) if st else (0, 0)
    t.ok(st and b"MESSAGES 0" in b" ".join(unt), "STATUS Trash: empty, UIDNEXT, UIDVALIDITY", unt)
    tl = c.ok("COPY %d,%d Trash" % (s1, s5))
    m = re.match(rb"^OK \[COPYUID (\d+) ([\d:,]+) ([\d:,]+)\]", tl)
    t.ok(m, "COPY: OK [COPYUID ...]", tl)
    if m:
        t.is_(int(m.group(1)), trash_uv, "COPYUID names the destination's UIDVALIDITY")
        src = sorted([uid_of[ids[0]], uid_of[ids[4]]])
        t.is_(uidset(m.group(2)), src, "COPYUID source UIDs")
        dst = uidset(m.group(3))
        t.ok(len(dst) == 2 and dst[0] >= trash_next, "COPYUID: two new UIDs from Trash's UIDNEXT", m.group(3))
    unt, tl = c.cmd("STATUS Trash (MESSAGES)")
    t.ok(any(re.match(rb'^\* STATUS "?Trash"? \(MESSAGES 2\)$', l) for l in unt), "Trash has 2 messages", unt)
    t.is_(len(os.listdir(os.path.join(h.maildir("alice"), ".Trash", "cur")))
          + len(os.listdir(os.path.join(h.maildir("alice"), ".Trash", "new"))), 2, "2 files in .Trash")
    unt, tl = c.cmd("MOVE %d Junk" % s4)
    cu = [l for l in unt if l.startswith(b"* OK [COPYUID ")]
    t.ok(len(cu) == 1 and tl.startswith(b"T%d OK" % c.n), "MOVE: untagged OK [COPYUID] and OK", (unt, tl))
    t.ok(b"* %d EXPUNGE" % s4 in unt, "MOVE: * %d EXPUNGE" % s4, unt)
    t.ok(wait_until(lambda: ids[3] not in by_msgid(h), 5), "MOVE: the file left INBOX")
    jk = os.path.join(h.maildir("alice"), ".Junk")
    t.is_(len(os.listdir(os.path.join(jk, "cur"))) + len(os.listdir(os.path.join(jk, "new"))), 1,
          "MOVE: one file in .Junk")
    unt, tl = c.cmd("FETCH 1:* (UID)")
    t.is_(sorted(int(v[b"UID"]) for v in fetches(unt).values()),
          sorted(uid_of[k] for k in ids if k != ids[3]), "after MOVE: 4 messages, the moved UID gone")
    app = (b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: draft\r\n"
           b"Message-ID: <appended@example.test>\r\n\r\ndraft body\r\n\r\n.dot\r\n")
    unt, tl = c.cmd("STATUS Drafts (UIDVALIDITY)")
    m = re.search(rb"UIDVALIDITY (\d+)", b" ".join(unt))
    drafts_uv = int(m.group(1)) if m else None
    tag = c.tag()
    c.send(b"%s APPEND Drafts (\\Draft \\Seen) \"05-Jan-2026 12:34:56 +0100\" {%d}\r\n" % (tag.encode(), len(app)))
    cont = c.line()
    t.ok(cont.startswith(b"+"), "APPEND: continuation for a synchronising literal", cont)
    c.send(app + b"\r\n")
    unt, tl = c.response(tag)
    m = re.match(rb"^T\d+ OK \[APPENDUID (\d+) (\d+)\]", tl)
    t.ok(m, "APPEND: OK [APPENDUID uidvalidity uid]", tl)
    t.is_(int(m.group(1)) if m else None, drafts_uv, "APPENDUID has Drafts' UIDVALIDITY")
    auid = int(m.group(2)) if m else 0
    unt, tl = c.cmd("SELECT Drafts")
    t.ok(b"* 1 EXISTS" in unt and tl.startswith(b"T%d OK [READ-WRITE]" % c.n), "SELECT Drafts: 1 EXISTS", unt)
    unt, tl = c.cmd("UID FETCH %d (UID FLAGS INTERNALDATE BODY.PEEK[])" % auid)
    f = fetches(unt).get(1, {})
    t.is_(f.get(b"BODY[]"), app, "APPENDed message fetched back byte-exact")
    t.is_(flags(f.get(b"FLAGS")), [b"\\draft", b"\\seen"], "APPEND flags kept")
    idt = f.get(b"INTERNALDATE") or b"?"
    try:
        when = datetime.datetime.strptime(idt.decode().strip(), "%d-%b-%Y %H:%M:%S %z").timestamp()
    except ValueError:
        when = None
    t.is_(when, datetime.datetime(2026, 1, 5, 11, 34, 56, tzinfo=datetime.timezone.utc).timestamp(),
          "APPEND date is the INTERNALDATE (the same instant)", idt)
    dr = os.path.join(h.maildir("alice"), ".Drafts", "cur")
    t.ok([maildir_flags(p) for p in os.listdir(dr)] == ["DS"], "appended file in .Drafts/cur with :2,DS",
         os.listdir(dr))
    # non-synchronising literal: no continuation
    tag = c.tag()
    c.send(b"%s APPEND Drafts {%d+}\r\n%s\r\n" % (tag.encode(), len(app), app))
    unt, tl = c.response(tag)
    t.ok(re.match(rb"^T\d+ OK \[APPENDUID \d+ %d\]" % (auid + 1), tl) and not any(l.startswith(b"+") for l in unt),
         "APPEND with a non-synchronising literal {n+}: no +, next UID", (unt, tl))
    t.ok(b"* 2 EXISTS" in unt, "APPEND to the selected folder: * 2 EXISTS", unt)
    r = c.ok("APPEND NoSuchFolder {1+}\r\nx")
    t.ok(r.startswith(b"NO [TRYCREATE]"), "APPEND to a missing folder: NO [TRYCREATE]", r)
    r = c.ok("COPY 1 NoSuchFolder")
    t.ok(r.startswith(b"NO [TRYCREATE]"), "COPY to a missing folder: NO [TRYCREATE]", r)

    # CLOSE expunges silently; UNSELECT does not
    c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    unt, tl = c.cmd("UNSELECT")
    t.ok(tl.startswith(b"T%d OK" % c.n) and not untagged(unt, b"EXPUNGE"), "UNSELECT: OK, no EXPUNGE", (unt, tl))
    r = c.ok("FETCH 1 FLAGS")
    t.ok(r.startswith(b"BAD"), "after UNSELECT nothing is selected", r)
    unt, _ = c.cmd("SELECT Drafts")
    t.ok(b"* 2 EXISTS" in unt, "UNSELECT kept the \\Deleted message", unt)
    unt, tl = c.cmd("CLOSE")
    t.ok(tl.startswith(b"T%d OK" % c.n) and not untagged(unt, b"EXPUNGE"), "CLOSE: OK, no untagged EXPUNGE",
         (unt, tl))
    unt, _ = c.cmd("STATUS Drafts (MESSAGES)")
    t.ok(any(l.endswith(b"(MESSAGES 1)") for l in unt), "CLOSE expunged the \\Deleted message", unt)
    r = c.ok("CLOSE")
    t.ok(r.startswith(b"BAD"), "CLOSE with nothing selected -> BAD", r)

    # EXPUNGE seen by a concurrent session; UID EXPUNGE
    c.cmd("SELECT INBOX")
    c2 = login(port)
    unt2, _ = c2.cmd("SELECT INBOX")
    t.ok(b"* 4 EXISTS" in unt2, "second session: 4 EXISTS", unt2)
    unt, tl = c.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)")
    unt, tl = c.cmd("EXPUNGE")
    t.ok(unt == [b"* 2 EXPUNGE"] and tl.startswith(b"T%d OK" % c.n), "EXPUNGE: * 2 EXPUNGE", (unt, tl))
    unt2, tl2 = c2.cmd("NOOP")
    t.ok(b"* 2 EXPUNGE" in unt2 and tl2.startswith(b"T%d OK" % c2.n), "the other session sees * 2 EXPUNGE at NOOP",
         (unt2, tl2))
    t.is_(len(h.message_files("alice")), 3, "the expunged file is gone from the Maildir")
    unt, tl = c.cmd("FETCH 1:* (UID)")
    left = sorted(int(v[b"UID"]) for v in fetches(unt).values())
    c.cmd("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    unt, tl = c.cmd("UID EXPUNGE %d" % left[1])
    t.ok(unt == [b"* 2 EXPUNGE"] and tl.startswith(b"T%d OK" % c.n), "UID EXPUNGE removes only the named UID",
         (unt, tl))
    unt, tl = c.cmd("FETCH 1:* (UID FLAGS)")
    f = fetches(unt)
    t.is_(sorted(int(v[b"UID"]) for v in f.values()), [left[0], left[2]], "UID EXPUNGE kept the other \\Deleted")
    t.ok(b"\\Deleted" in f.get(1, {}).get(b"FLAGS", []), "the kept message is still \\Deleted", f)
    unt2, _ = c2.cmd("NOOP")
    t.ok(b"* 2 EXPUNGE" in unt2, "the other session sees the UID EXPUNGE", unt2)
    c.cmd("STORE 1 -FLAGS.SILENT (\\Deleted)")
    unt2, _ = c2.cmd("NOOP")
    f2 = fetches(unt2)
    t.ok(1 in f2 and b"\\deleted" not in flags(f2[1].get(b"FLAGS")),
         "the other session is told the flag change as FETCH (FLAGS) at NOOP", unt2)
    unt, tl = c.cmd("UID FETCH %d:* (UID)" % (left[2] + 1000))
    t.is_([int(v[b"UID"]) for v in fetches(unt).values()], [left[2]],
          "UID FETCH n:* with n past the last UID answers the last message (RFC 3501 6.4.8)")
    unt, tl = c.cmd("FETCH 1 FAST")
    t.is_(sorted(fetches(unt).get(1, {})), [b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE"], "FETCH FAST macro", unt)

    # IDLE woken by a delivery
    tag = c2.tag()
    c2.send(tag.encode() + b" IDLE\r\n")
    l = c2.line()
    t.ok(l.startswith(b"+ "), "IDLE: continuation", l)
    before = set(h.message_files("alice"))
    h.sendmail(["-i", "alice@" + DOMAIN], b"Subject: idle\nMessage-ID: <idle@example.test>\n\nwake up\n")
    t.ok(wait_until(lambda: set(h.message_files("alice")) - before, 15), "message delivered during IDLE")
    t_file = time.time()
    c2.s.settimeout(5)
    seen = []
    try:
        # updates of the other session's STORE may come first
        while b"* 3 EXISTS" not in seen:
            seen.append(c2.line())
    except (socket.timeout, EOFError) as e:
        seen.append(repr(e).encode())
    dt = time.time() - t_file
    t.ok(b"* 3 EXISTS" in seen, "IDLE: * 3 EXISTS pushed", seen)
    t.ok(dt <= 1.0, "IDLE: EXISTS within 1 s of the delivery (%.2fs)" % dt)
    c2.s.settimeout(15)
    c2.send(b"DONE\r\n")
    unt2, tl2 = c2.response(tag)
    t.ok(tl2.startswith(tag.encode() + b" OK"), "DONE ends IDLE with OK", (unt2, tl2))
    unt, tl = c.cmd("NOOP")
    t.ok(b"* 3 EXISTS" in unt, "the other session sees 3 EXISTS at NOOP", unt)
    unt, tl = c.cmd("LOGOUT")
    t.ok(unt and unt[0].startswith(b"* BYE") and tl.startswith(b"T%d OK" % c.n), "LOGOUT: * BYE then OK", (unt, tl))
    t.ok(c.closed(), "LOGOUT closes the connection")
    c.close()
    c2.close()

    # folders
    c = login(port)
    for cmd, want in (("CREATE Work", b"OK"), ("CREATE Work%sSub" % D, b"OK"), ("CREATE Work", b"NO"),
                      ("CREATE INBOX", b"NO"), ("SUBSCRIBE Work", b"OK")):
        r = c.ok(cmd)
        t.ok(r.startswith(want), "%s -> %s" % (cmd, want.decode()), r)
    t.ok(os.path.isdir(os.path.join(h.maildir("alice"), ".Work", "cur")), "CREATE Work made the Maildir++ .Work")
    unt, tl = c.cmd('LIST "" "Work*"')
    got = {}
    for l in unt:
        v, _ = parse(b"(" + l[7:] + b")")
        got[v[2].decode()] = sorted(a.lower() for a in v[0])
    t.is_(got, {"Work": [b"\\haschildren"], "Work%sSub" % D: [b"\\hasnochildren"]}, "LIST with CHILDREN attributes")
    unt, tl = c.cmd('LIST "" "%"')
    names = set()
    for l in unt:
        v, _ = parse(b"(" + l[7:] + b")")
        names.add(v[2].decode())
    t.is_(names, {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Work"}, 'LIST "" "%": the top level only')
    r = c.ok("RENAME Work%sSub Work%sRenamed" % (D, D))
    t.ok(r.startswith(b"OK"), "RENAME", r)
    unt, tl = c.cmd('LIST "" "Work%s*"' % D)
    t.is_([parse(b"(" + l[7:] + b")")[0][2] for l in unt], [("Work%sRenamed" % D).encode()], "LIST after RENAME")
    r = c.ok("RENAME Nope Other")
    t.ok(r.startswith(b"NO"), "RENAME of a missing folder -> NO", r)
    unt, tl = c.cmd('LSUB "" "*"')
    t.ok(any(l.endswith(b" Work") or l.endswith(b' "Work"') for l in unt), "LSUB lists the subscribed Work", unt)
    c.ok("UNSUBSCRIBE Work")
    unt, tl = c.cmd('LSUB "" "*"')
    t.ok(not any(l.endswith(b" Work") or l.endswith(b' "Work"') for l in unt), "UNSUBSCRIBE removes it", unt)
    unt, tl = c.cmd("STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
    m = re.match(rb'^\* STATUS "?INBOX"? \((.*)\)$', unt[0]) if len(unt) == 1 else None
    sv = dict(zip(m.group(1).split()[0::2], m.group(1).split()[1::2])) if m else {}
    t.is_(sv.get(b"MESSAGES"), b"3", "STATUS INBOX MESSAGES 3", unt)
    unseen = sum(1 for p in h.message_files("alice") if "S" not in maildir_flags(p))
    t.is_(sv.get(b"UNSEEN"), str(unseen).encode(), "STATUS INBOX UNSEEN as in the file names (%d)" % unseen, unt)
    t.is_(sv.get(b"UIDVALIDITY"), str(UIDVALIDITY).encode(), "STATUS INBOX UIDVALIDITY unchanged", unt)
    t.ok(sv.get(b"UIDNEXT", b"0").isdigit() and int(sv.get(b"UIDNEXT", b"0")) > max(uids), "STATUS UIDNEXT grew", unt)
    r = c.ok("DELETE Work%sRenamed" % D)
    t.ok(r.startswith(b"OK"), "DELETE a folder", r)
    t.ok(not os.path.exists(os.path.join(h.maildir("alice"), ".Work%sRenamed" % D.replace("/", "."))),
         "DELETE removed the Maildir++ folder")
    for cmd in ("DELETE INBOX", "DELETE NoSuchFolder", "SELECT NoSuchFolder", "STATUS NoSuchFolder (MESSAGES)"):
        r = c.ok(cmd)
        t.ok(r.startswith(b"NO"), "%s -> NO" % cmd, r)
    r = c.ok("SELECT ../../etc")
    t.ok(r.startswith(b"NO") or r.startswith(b"BAD"), "SELECT of a path outside the mail root refused", r)
    c.ok("LOGOUT")
    c.close()

    # malformed input: BAD, and the session goes on
    c = login(port)
    c.cmd("SELECT INBOX")
    for what, data in (("unbalanced parentheses", b"FETCH 1 (FLAGS UID"),
                       ("unbalanced SEARCH parentheses", b"SEARCH (SEEN"),
                       ("bad sequence set 1:x", b"FETCH 1:x FLAGS"),
                       ("sequence number 0", b"FETCH 0 FLAGS"),
                       ("a NUL byte", b"SEARCH SUBJECT \"a\x00b\""),
                       ("unknown FETCH item", b"FETCH 1 (FROBNICATE)"),
                       ("a 100 KB line", b"SEARCH SUBJECT " + b"x" * 100000),
                       ("unknown command", b"FROBNICATE"),
                       ("missing argument", b"SELECT")):
        unt, tl = c.cmd(data)
        t.ok(tl.startswith(b"T%d BAD" % c.n), "malformed (%s) -> BAD" % what, (unt[-3:], tl))
        r = c.ok("NOOP")
        t.ok(r.startswith(b"OK"), "session usable after %s" % what, r)
    tag = c.tag()
    c.send(tag.encode() + b" SEARCH TEXT {70000}\r\n")
    l = c.line()
    t.ok(l.startswith(tag.encode() + b" BAD") or l.startswith(tag.encode() + b" NO"),
         "a synchronising literal over imap_literal_size_limit is refused (no +)", l)
    try:
        r = c.ok("NOOP")
    except (EOFError, OSError) as e:
        r = repr(e).encode()
        c.close()
        c = login(port)
        c.cmd("SELECT INBOX")
    t.ok(r.startswith(b"OK"), "session usable after the refused literal", r)
    tag = c.tag()
    c.send(tag.encode() + b" UID SEARCH TEXT {15}\r\n")
    l = c.line()
    t.ok(l.startswith(b"+"), "SEARCH with a synchronising literal: continuation", l)
    c.send(b"findmebodytoken\r\n")
    unt, tl = c.response(tag)
    want = b"* SEARCH %d" % uid_of[ids[0]] if ids[0] in by_msgid(h) else b"* SEARCH"
    t.is_((unt, tl[:len(tag) + 3]), ([want], tag.encode() + b" OK"), "the literal's text is searched for")
    # a non-synchronising literal over the limit: the client sends it
    # anyway, so the server must skip it (or close); here BAD and go on
    tag = c.tag()
    c.send(tag.encode() + b" SEARCH TEXT {70000+}\r\n" + b"q" * 70000 + b"\r\n")
    try:
        unt, tl = c.response(tag)
        r = c.ok("NOOP")
    except (EOFError, OSError) as e:
        tl = r = repr(e).encode()
    t.ok(tl.startswith(tag.encode() + b" BAD"), "a non-synchronising literal over the limit -> BAD", tl)
    t.ok(r.startswith(b"OK"), "session usable after it (its bytes were not taken as commands)", r)
    c.ok("LOGOUT")
    c.close()

    # imap_error_limit (20) bad commands: BYE
    c = login(port)
    got = []
    for i in range(20):
        unt, tl = c.cmd("FROBNICATE")
        got.append(tl.split(b" ")[1])
    t.is_(got, [b"BAD"] * 20, "20 bad commands: 20 BAD")
    rest = []
    try:
        c.send(b"X NOOP\r\n")
        while True:
            rest.append(c.line())
    except (EOFError, OSError):
        pass
    t.ok(rest and rest[0].startswith(b"* BYE") and not any(l.startswith(b"X ") for l in rest),
         "after imap_error_limit (20) bad commands: * BYE, the connection closed, nothing more answered", rest)
    c.close()


    # literals: synchronising and non-synchronising in LOGIN
    c = Raw(port)
    c.line()
    c.send(b"L1 LOGIN {5}\r\n")
    l1 = c.line()
    c.send(b"alice {6}\r\n")
    l2 = c.line()
    c.send(b"secret\r\n")
    unt, tl = c.response("L1")
    t.ok(l1.startswith(b"+") and l2.startswith(b"+") and tl.startswith(b"L1 OK"), "LOGIN with synchronising literals",
         (l1, l2, tl))
    c.close()
    c = Raw(port)
    c.line()
    c.send(b"L2 LOGIN {5+}\r\nalice {6+}\r\nsecret\r\nL3 SELECT INBOX\r\n")
    unt, tl = c.response("L2")
    t.ok(tl.startswith(b"L2 OK") and not any(l.startswith(b"+") for l in unt),
         "LOGIN with non-synchronising literals, no continuation", (unt, tl))
    unt, tl = c.response("L3")
    t.ok(tl.startswith(b"L3 OK [READ-WRITE]"), "a command pipelined behind the login is answered", tl)
    c.close()

    # AUTHENTICATE PLAIN, with SASL-IR and with a continuation
    c = Raw(port)
    c.line()
    r = c.ok("AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==")
    t.ok(r.startswith(b"OK"), "AUTHENTICATE PLAIN with an initial response (SASL-IR)", r)
    unt, tl = c.cmd("SELECT INBOX")
    t.ok(b"* 3 EXISTS" in unt, "authenticated as alice", unt)
    c.close()
    c = Raw(port)
    c.line()
    c.send(b"A1 AUTHENTICATE PLAIN\r\n")
    l = c.line()
    c.send(b"AGJvYgBzZWNyZXQ=\r\n")
    unt, tl = c.response("A1")
    t.ok(l == b"+ " or l == b"+", "AUTHENTICATE PLAIN: empty continuation", l)
    t.ok(tl.startswith(b"A1 OK"), "AUTHENTICATE PLAIN after the continuation (bob)", tl)
    c.close()
    c = Raw(port)
    c.line()
    r = c.ok("AUTHENTICATE PLAIN AGFsaWNlAHdyb25n")
    t.ok(r.startswith(b"NO [AUTHENTICATIONFAILED]"), "AUTHENTICATE PLAIN, wrong password: NO [AUTHENTICATIONFAILED]", r)
    c.send(b"A2 AUTHENTICATE PLAIN\r\n")
    c.line()
    c.send(b"*\r\n")
    unt, tl = c.response("A2")
    t.ok(tl.startswith(b"A2 BAD"), "AUTHENTICATE cancelled with * -> BAD", tl)
    r = c.ok("AUTHENTICATE CRAM-MD5")
    t.ok(r.startswith(b"NO") or r.startswith(b"BAD"), "unknown SASL mechanism refused", r)
    r = c.ok("AUTHENTICATE PLAIN !!!!")
    t.ok(r.startswith(b"BAD") or r.startswith(b"NO"), "bad base64 refused", r)
    c.close()

    # imaplib: STARTTLS then LOGIN; imaps
    ctx = tls_ctx()
    try:
        m = imaplib.IMAP4("127.0.0.1", port, timeout=15)
        typ, _ = m.starttls(ctx)
        t.is_(typ, "OK", "imaplib STARTTLS")
        caps = m.capabilities
        t.ok("STARTTLS" not in caps and "AUTH=PLAIN" in caps, "after STARTTLS: no STARTTLS, AUTH=PLAIN", caps)
        typ, d = m.login("alice", "secret")
        t.is_(typ, "OK", "LOGIN over STARTTLS")
        typ, d = m.select("INBOX")
        t.is_((typ, d), ("OK", [b"3"]), "SELECT over TLS")
        typ, d = m.fetch("1", "(BODY.PEEK[])")
        t.ok(typ == "OK" and d[0][1] in [crlf(v) for v in stored.values()], "FETCH over TLS", d)
        t.is_(m.logout()[0], "BYE", "imaplib LOGOUT")
    except (imaplib.IMAP4.error, OSError) as e:
        t.ok(False, "imaplib over STARTTLS", repr(e))
    # input sent with STARTTLS is not kept for after the handshake
    c = Raw(port)
    c.line()
    c.send(b"S1 STARTTLS\r\nS2 LOGIN alice secret\r\n")
    unt, tl = c.response("S1")
    t.ok(tl.startswith(b"S1 OK"), "STARTTLS OK", tl)
    try:
        c.s = ctx.wrap_socket(c.s, server_hostname="x")
        c.buf = b""
        unt, tl = c.cmd("CAPABILITY")
        t.ok(not any(l.startswith(b"S2 ") for l in unt) and tl.startswith(b"T%d OK" % c.n),
             "a command pipelined before the TLS handshake is discarded", unt)
        r = c.ok("SELECT INBOX")
        t.ok(r.startswith(b"BAD"), "still not logged in after the discarded LOGIN", r)
    except (ssl.SSLError, OSError, EOFError) as e:
        # closing a connection that pipelines past STARTTLS is safe too
        t.ok(isinstance(e, (ssl.SSLZeroReturnError, ssl.SSLEOFError, EOFError, ConnectionResetError)),
             "a command pipelined before the TLS handshake: the server closed the connection", repr(e))
    c.close()
    try:
        m = imaplib.IMAP4_SSL("127.0.0.1", sport, ssl_context=ctx, timeout=15)
        t.ok(m.welcome.startswith(b"* OK"), "imaps greeting over TLS", m.welcome)
        t.ok("STARTTLS" not in m.capabilities, "no STARTTLS on imaps", m.capabilities)
        t.is_(m.login("alice", "secret")[0], "OK", "LOGIN on imaps")
        t.is_(m.select("INBOX", readonly=True), ("OK", [b"3"]), "EXAMINE on imaps")
        typ, d = m.uid("SEARCH", None, "ALL")
        t.is_(typ, "OK", "UID SEARCH on imaps")
        m.logout()
    except (imaplib.IMAP4.error, OSError) as e:
        t.ok(False, "imaplib on imaps", repr(e))
    # the TLS proxy never blocks on the mail process: a client that
    # pipelines far more than the socket buffers hold (300 FETCHes, then a
    # 2 MB APPEND literal) without waiting for answers once deadlocked a
    # proxy that wrote to the mail process while the mail process wrote
    # its replies to the proxy
    # (one thread, non-blocking: an SSL socket must not be read and
    # written by two threads at once)
    import select
    c = Raw(sock=tls_ctx().wrap_socket(socket.create_connection(("127.0.0.1", sport), timeout=30)), timeout=30)
    c.line()
    c.cmd("LOGIN alice secret")
    c.cmd("EXAMINE INBOX")
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 2100
    out = b"".join(b"P%d UID FETCH 1:* (BODY.PEEK[])\r\n" % i for i in range(300))
    out += b"PA APPEND INBOX {%d+}\r\n" % len(big) + big + b"\r\nPZ NOOP\r\n"
    sk = c.s
    sk.setblocking(False)
    got = bytearray(c.buf)
    t0 = time.time()
    err = None
    while time.time() - t0 < 60 and not re.search(rb"\r\nPZ (OK|NO|BAD)[^\r]*\r\n", bytes(got[-200:])):
        r, w, _ = select.select([sk], [sk] if out else [], [], 0 if sk.pending() else 1)
        try:
            if out and w:
                n = sk.send(out[:65536])
                out = out[n:]
            if r or sk.pending():
                d = sk.recv(65536)
                if not d:
                    err = "connection closed"
                    break
                got += d
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except OSError as e:
            err = repr(e)
            break
    got = bytes(got)
    t.ok(err is None and b"\r\nP299 OK" in got and b"\r\nPA OK" in got and b"\r\nPZ OK" in got and not out,
         "imaps: 300 pipelined FETCHes and a 2 MB APPEND sent at once, all answered (no proxy deadlock)",
         (err, len(got), len(out), got[-300:], time.time() - t0))
    sk.setblocking(True)
    c.close()
    # a TLS session outlives imap_login_timeout: after login the proxy
    # waits as long as the mail process does (imap_idle_timeout)
    c = Raw(sock=tls_ctx().wrap_socket(socket.create_connection(("127.0.0.1", sport), timeout=30)), timeout=30)
    c.line()
    c.cmd("LOGIN alice secret")
    time.sleep(2 * 3 + 10 + 2)
    try:
        t.ok(c.ok("NOOP").startswith(b"OK"), "imaps: a session idle past 2 x imap_login_timeout + 10 s is still served")
    except (OSError, EOFError) as e:
        t.ok(False, "imaps: a session idle past 2 x imap_login_timeout + 10 s is still served", repr(e))
    c.close()
    # a sanitizer build reports memory errors and leaks in the log
    bad = [l for l in h.log().splitlines() if "Sanitizer" in l or "runtime error:" in l]
    t.ok(not bad, "no sanitizer report in the instance log", "\n".join(bad[:20]))

# the plaintext policy: imap_plaintext_auth = no
with Instance(users=["alice"], start=False, conf={"imap_plaintext_auth": "no"}) as h:
    enable_imap(h)
    h.start()
    port = h.port_base + 143
    wait_until(lambda: h.pids("imap"), 10)
    c = Raw(port)
    g = c.line()
    t.ok(b"LOGINDISABLED" in g and b"AUTH=PLAIN" not in g and b"STARTTLS" in g,
         "imap_plaintext_auth=no: greeting has LOGINDISABLED STARTTLS, no AUTH=PLAIN", g)
    r = c.ok("LOGIN alice secret")
    t.ok(r.startswith(b"NO [PRIVACYREQUIRED]"), "LOGIN before TLS: NO [PRIVACYREQUIRED]", r)
    r = c.ok("AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==")
    t.ok(r.startswith(b"NO [PRIVACYREQUIRED]") or r.startswith(b"NO"), "AUTHENTICATE PLAIN before TLS: NO", r)
    r = c.ok("STARTTLS")
    t.ok(r.startswith(b"OK"), "STARTTLS", r)
    try:
        c.s = tls_ctx().wrap_socket(c.s, server_hostname="x")
        c.buf = b""
        unt, tl = c.cmd("CAPABILITY")
        caps = unt[0].split() if unt else []
        t.ok(b"LOGINDISABLED" not in caps and b"AUTH=PLAIN" in caps, "after TLS: no LOGINDISABLED, AUTH=PLAIN", caps)
        r = c.ok("LOGIN alice secret")
        t.ok(r.startswith(b"OK"), "LOGIN after STARTTLS", r)
    except (ssl.SSLError, OSError, EOFError) as e:
        t.ok(False, "STARTTLS with imap_plaintext_auth=no", repr(e))
    c.close()
# connection caps: imap_max_connections_per_ip and imap_max_connections,
# counted by the service process across the hand-over of each session
# from its parent to its mail process (sessions logged in, in IDLE, over
# TLS and not yet logged in all count; a LOGOUT frees the place)
with Instance(users=["alice"], start=False,
              conf={"imap_max_connections_per_ip": "3", "imap_max_connections": "4"}) as h:
    enable_imap(h)
    h.start()
    port = h.port_base + 143
    sport = h.port_base + 993
    wait_until(lambda: h.pids("imap"), 10)

    def logged_in():
        c = Raw(port)
        c.line()
        c.cmd("LOGIN alice secret")
        return c

    a = logged_in()
    b = logged_in()
    c3 = Raw(port)
    g = c3.line()
    t.ok(g.startswith(b"* OK"), "3rd connection from one address (not logged in) is served", g)
    c4 = Raw(port)
    g = c4.line()
    t.ok(g.startswith(b"* BYE [UNAVAILABLE]") and c4.closed(), "4th connection from one address: BYE [UNAVAILABLE], closed", g)
    c4.close()
    t.ok("too many connections from this address" in h.log(), "the refusal is logged")
    a.cmd("LOGOUT")
    a.close()
    # the place is free once the mail process is gone
    ok = False
    for _ in range(50):
        c4 = Raw(port)
        g = c4.line()
        if g.startswith(b"* OK"):
            ok = True
            break
        c4.close()
        time.sleep(0.1)
    t.ok(ok, "after one LOGOUT a new connection is served", g)
    # b, c3, c4 hold all three per-address places; the listener's own cap
    # (4) counts imaps separately, so imaps is still served from here
    s1 = tls_ctx().wrap_socket(socket.create_connection(("127.0.0.1", sport), timeout=15))
    d = Raw(sock=s1)
    g = d.line()
    t.ok(g.startswith(b"* OK"), "imaps is a listener of its own with its own count", g)
    d.close()
    for x in (b, c3, c4):
        x.close()
    # every place comes back: three new sessions log in and IDLE
    time.sleep(0.5)
    ok = []
    for _ in range(3):
        try:
            x = logged_in()
            x.send(b"I IDLE\r\n")
            ok.append(x.line().startswith(b"+"))
            x.close()
        except (OSError, EOFError):
            ok.append(False)
    t.ok(all(ok), "after all closed, three sessions again", ok)
# several IDLE sessions on one folder: a delivery wakes each, each tells
# EXISTS, and then they are quiet: what one session's sync writes beside
# the index (its description of the folder, the FETCH cache) wakes no
# other (that once made a thousand IDLE sessions wake each other for ever)
with Instance(users=["alice"], start=False) as h:
    enable_imap(h)
    h.start()
    port = h.port_base + 143
    wait_until(lambda: h.pids("imap"), 10)
    for k in range(30):
        h.sendmail(["-i", "alice@" + DOMAIN], b"Subject: pre %d\n\nx\n" % k)
    wait_until(lambda: len(h.message_files("alice")) >= 30, 15)
    idlers = []
    for k in range(6):
        x = login(port)
        x.cmd("SELECT INBOX")
        x.send(b"I IDLE\r\n")
        x.line()
        idlers.append(x)

    def cpu_ticks():
        tot = 0
        for p in h.pids("imap"):
            try:
                with open("/proc/%d/stat" % p) as f:
                    v = f.read().rsplit(")", 1)[1].split()
                tot += int(v[11]) + int(v[12])
            except (OSError, IndexError, ValueError):
                pass
        return tot
    h.sendmail(["-i", "alice@" + DOMAIN], b"Subject: wake\n\nall of you\n")
    got = 0
    for x in idlers:
        x.s.settimeout(10)
        try:
            while True:
                if re.match(rb"\* \d+ EXISTS", x.line()):
                    got += 1
                    break
        except (socket.timeout, EOFError):
            pass
    t.is_(got, len(idlers), "a delivery: every IDLE session tells EXISTS")
    time.sleep(0.5)
    # a session that syncs between local's rename into new/ and its
    # removal of the description sees it removed afterwards (no harm: the
    # next sync lists); a seventh session's SELECT describes the folder
    # again, and that write must wake none of the six either
    x = login(port)
    x.cmd("SELECT INBOX")
    x.cmd("LOGOUT")
    x.close()
    time.sleep(0.3)
    desc = os.path.join(h.maildir("alice"), "hermod-uidlist.stamp")

    def dstamp():
        try:
            st = os.stat(desc)
            return (st.st_ino, st.st_mtime_ns)
        except OSError:
            return None
    c0, d0 = cpu_ticks(), dstamp()
    time.sleep(2.5)
    used, d1 = cpu_ticks() - c0, dstamp()
    t.ok(used < 20 and d0 is not None and d0 == d1,
         "then the IDLE sessions are quiet: %d CPU ticks in 2.5 s, the description not rewritten (%s, %s)"
         % (used, d0, d1))
    for x in idlers:
        x.send(b"DONE\r\n")
        unt, tl = x.response("I")
        x.close()
# COMPRESS=DEFLATE (RFC 4978): raw DEFLATE both ways from right after
# the OK, over plaintext, over imaps and with the next command sent in
# the same packet as COMPRESS; a second COMPRESS gets [COMPRESSIONACTIVE];
# input that is not DEFLATE ends the session
with Instance(users=["alice"], start=False) as h:
    enable_imap(h)
    h.start()
    port = h.port_base + 143
    sport = h.port_base + 993
    wait_until(lambda: h.pids("imap"), 10)
    import zlib
    c = login(port)
    unt, tl = c.cmd("CAPABILITY")
    t.ok(unt and b" COMPRESS=DEFLATE" in unt[0], "CAPABILITY after login lists COMPRESS=DEFLATE", unt)
    unt, tl = c.cmd("COMPRESS DEFLATE")
    t.ok(tl.split(b" ", 1)[1].startswith(b"OK"), "COMPRESS DEFLATE: OK", tl)
    c.start_compress()
    body = b"".join(b"Subject: z\r\n\r\n" + b"line %d of a message that compresses well\r\n" % i for i in range(400))
    unt, tl = c.cmd(b"APPEND INBOX {%d+}\r\n" % len(body) + body)
    t.ok(tl.split(b" ", 1)[1].startswith(b"OK [APPENDUID"), "compressed: APPEND with a literal", tl)
    c.cmd("SELECT INBOX")
    w0 = c.wire_in
    unt, tl = c.cmd("FETCH 1 BODY[]")
    fx = fetches(unt)
    t.ok(fx.get(1, {}).get(b"BODY[]") == body, "compressed: FETCH BODY[] byte for byte")
    t.ok(c.wire_in - w0 < len(body) // 5, "compressed: the FETCH took %d bytes on the wire for %d" % (c.wire_in - w0, len(body)))
    unt, tl = c.cmd("COMPRESS DEFLATE")
    t.ok(tl.split(b" ", 1)[1].startswith(b"NO [COMPRESSIONACTIVE]"), "a second COMPRESS: NO [COMPRESSIONACTIVE]", tl)
    unt, tl = c.cmd("NOOP")
    t.ok(tl.split(b" ", 1)[1].startswith(b"OK"), "the session goes on after it", tl)
    c.cmd("LOGOUT")
    c.close()
    # the next command in the same write as COMPRESS
    c = login(port)
    zc = zlib.compressobj(6, zlib.DEFLATED, -15)
    c.send(b"Z1 COMPRESS DEFLATE\r\n" + zc.compress(b"Z2 NOOP\r\n") + zc.flush(zlib.Z_SYNC_FLUSH))
    l = c.line()
    t.ok(l.startswith(b"Z1 OK"), "COMPRESS pipelined with the next command: OK", l)
    c.start_compress(zc)
    unt, tl = c.response("Z2")
    t.ok(tl.startswith(b"Z2 OK"), "the command sent compressed in the same packet is answered", tl)
    c.close()
    # over imaps: compression inside TLS
    s1 = tls_ctx().wrap_socket(socket.create_connection(("127.0.0.1", sport), timeout=15))
    c = Raw(sock=s1)
    c.line()
    c.cmd("LOGIN alice secret")
    unt, tl = c.cmd("COMPRESS DEFLATE")
    t.ok(tl.split(b" ", 1)[1].startswith(b"OK"), "imaps: COMPRESS DEFLATE: OK", tl)
    c.start_compress()
    c.cmd("SELECT INBOX")
    unt, tl = c.cmd("FETCH 1 BODY[]")
    t.ok(fetches(unt).get(1, {}).get(b"BODY[]") == body, "imaps + COMPRESS: FETCH BODY[] byte for byte")
    c.close()
    # junk instead of DEFLATE
    c = login(port)
    c.cmd("COMPRESS DEFLATE")
    c.s.sendall(b"\xff" * 64 + b"\r\n")
    closed = False
    try:
        c.s.settimeout(10)
        closed = c.s.recv(100) == b""
    except OSError:
        closed = True
    t.ok(closed, "input that is not DEFLATE: the session ends")
    t.ok(wait_until(lambda: "compressed input is not DEFLATE" in h.log(), 5), "and the log says why")
    c.close()
# imap_max_connections_per_user: a user's sessions over imap and imaps
# together; a correct login past the cap gets NO [LIMIT] (not counted as
# an authentication failure), other users are not affected, and a place
# comes back when a session ends, also one killed with SIGKILL
with Instance(users=["alice", "bob"], start=False, conf={"imap_max_connections_per_user": "2"}) as h:
    enable_imap(h)
    h.start()
    port = h.port_base + 143
    sport = h.port_base + 993
    wait_until(lambda: h.pids("imap"), 10)
    a1 = login(port)
    s1 = tls_ctx().wrap_socket(socket.create_connection(("127.0.0.1", sport), timeout=15))
    a2 = Raw(sock=s1)
    a2.line()
    r = a2.ok("LOGIN alice secret")
    t.ok(r.startswith(b"OK"), "per-user cap 2: the 2nd session (imaps) logs in", r)
    a3 = Raw(port)
    a3.line()
    for k in range(3):
        r = a3.ok("LOGIN alice secret")
        t.ok(r.startswith(b"NO [LIMIT]"), "3rd session of alice (try %d): NO [LIMIT]" % (k + 1), r)
    t.ok(not a3.closed(), "NO [LIMIT] is no authentication failure: the session stays")
    t.ok("imap_max_connections_per_user sessions of this user already" in h.log(), "the refusal is logged")
    b1 = login(port, user="bob")
    r = b1.ok("SELECT INBOX")
    t.ok(r.startswith(b"OK"), "another user is not affected", r)
    a2.close()
    a1.cmd("LOGOUT")
    a1.close()
    ok = False
    for _ in range(50):
        r = a3.ok("LOGIN alice secret")
        if r.startswith(b"OK"):
            ok = True
            break
        time.sleep(0.1)
    t.ok(ok, "after the other sessions end, the 3rd logs in", r)
    p0 = set(h.pids(None))
    a4 = login(port)
    time.sleep(0.3)
    a4pids = set(h.pids(None)) - p0
    a5 = Raw(port)
    a5.line()
    r = a5.ok("LOGIN alice secret")
    t.ok(r.startswith(b"NO [LIMIT]"), "cap reached again: NO [LIMIT]", r)
    t.ok(len(a4pids) == 1, "one process holds the new session", a4pids)
    for p in a4pids:
        os.kill(p, signal.SIGKILL)
    ok = False
    for _ in range(50):
        r = a5.ok("LOGIN alice secret")
        if r.startswith(b"OK"):
            ok = True
            break
        time.sleep(0.1)
    t.ok(ok, "a session killed with SIGKILL frees its place", r)
    for x in (a3, a4, a5, b1):
        x.close()
# QRESYNC (RFC 7162): resync of a client's cache after changes made by
# another session, VANISHED instead of EXPUNGE once enabled
with Instance(users=["alice"], start=False) as h:
    enable_imap(h)
    h.start()
    port = h.port_base + 143
    wait_until(lambda: h.pids("imap"), 10)
    a = login(port)
    t.ok(a.ok("CREATE QR").startswith(b"OK"), "QRESYNC: CREATE QR")
    uids = []
    for i in range(6):
        msg = b"Subject: qr %d\r\n\r\nbody %d\r\n" % (i, i)
        unt, tl = a.cmd(b"APPEND QR {%d+}\r\n" % len(msg) + msg)
        m = re.search(rb"APPENDUID (\d+) (\d+)", tl)
        uids.append(int(m.group(2)) if m else 0)
    unt, tl = a.cmd("SELECT QR (QRESYNC (1 1))")
    t.ok(tl.split(b" ")[1] == b"BAD", "SELECT (QRESYNC ...) before ENABLE QRESYNC: BAD", tl)
    unt, tl = a.cmd("ENABLE QRESYNC")
    t.ok(b"* ENABLED QRESYNC" in unt and tl.split(b" ")[1] == b"OK", "ENABLE QRESYNC", unt)
    unt, tl = a.cmd("SELECT QR")
    uv = int(re.search(rb"UIDVALIDITY (\d+)", b" ".join(unt)).group(1))
    hms = int(re.search(rb"HIGHESTMODSEQ (\d+)", b" ".join(unt)).group(1))
    # changes by another session: a flag, and two messages expunged
    b = login(port)
    b.cmd("SELECT QR")
    b.cmd("UID STORE %d +FLAGS (\\Flagged)" % uids[1])
    b.cmd("UID STORE %d,%d +FLAGS (\\Deleted)" % (uids[3], uids[4]))
    unt, tl = b.cmd("EXPUNGE")
    t.ok(untagged(unt, b"EXPUNGE") and not untagged(unt, b"VANISHED"),
         "without QRESYNC: EXPUNGE responses", unt)
    unt, tl = a.cmd("NOOP")
    van = [l for l in unt if l.startswith(b"* VANISHED ")]
    t.ok(van and sorted(uidset(van[0].split(b" ")[2])) == [uids[3], uids[4]] and not untagged(unt, b"EXPUNGE"),
         "QRESYNC enabled: the other session's expunge comes as VANISHED, not EXPUNGE", unt)
    a.cmd("LOGOUT")
    a.close()
    # a new session resyncs from what it knew (UIDVALIDITY, MODSEQ, UIDs)
    c = login(port)
    c.cmd("ENABLE QRESYNC")
    unt, tl = c.cmd("SELECT QR (QRESYNC (%d %d %d:%d))" % (uv, hms, uids[0], uids[-1]))
    van = [l for l in unt if l.startswith(b"* VANISHED (EARLIER) ")]
    t.ok(van and sorted(uidset(van[0].split(b" ")[3])) == [uids[3], uids[4]],
         "SELECT (QRESYNC): VANISHED (EARLIER) lists the two expunged UIDs", unt)
    fl = untagged(unt, b"FETCH")
    t.ok(len(fl) == 1 and (b"UID %d " % uids[1]) in fl[0] and b"\\Flagged" in fl[0] and b"MODSEQ" in fl[0],
         "SELECT (QRESYNC): one FETCH, for the message whose flag changed, with UID and MODSEQ", fl)
    t.ok(unt and van and unt.index(van[0]) < unt.index(fl[0]) if fl and van else False,
         "VANISHED (EARLIER) comes before the FETCH responses", unt)
    t.ok(tl.split(b" ")[1] == b"OK", "SELECT (QRESYNC) OK", tl)
    # UID FETCH (CHANGEDSINCE VANISHED)
    unt, tl = c.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms)
    van = [l for l in unt if l.startswith(b"* VANISHED (EARLIER) ")]
    t.ok(van and set([uids[3], uids[4]]) <= set(uidset(van[0].split(b" ")[3])) and
         len(untagged(unt, b"FETCH")) == 1, "UID FETCH (CHANGEDSINCE n VANISHED)", unt)
    unt, tl = c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
    t.ok(tl.split(b" ")[1] == b"BAD", "VANISHED without UID: BAD", tl)
    # another UIDVALIDITY: nothing to resync, a plain SELECT
    unt, tl = c.cmd("SELECT QR (QRESYNC (%d %d))" % (uv + 1, hms))
    t.ok(b"* OK [CLOSED]" in b"\n".join(unt) and not [l for l in unt if l.startswith(b"* VANISHED")] and
         not untagged(unt, b"FETCH"), "SELECT (QRESYNC) with another UIDVALIDITY: [CLOSED], no VANISHED, no FETCH",
         unt)
    caps = c.cmd("CAPABILITY")[0]
    t.ok(caps and b" QRESYNC" in caps[0], "CAPABILITY lists QRESYNC", caps)
    c.close()
    b.close()

    # an IDLE session keeps only a short form of its view (ibox_release):
    # changes during IDLE are told, and after DONE keywords, flags and
    # the messages' contents are all there again
    a = login(port)
    a.cmd("SELECT QR")
    a.cmd("FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
    a.cmd("STORE 1 +FLAGS ($Work)")
    a.send(b"I1 IDLE\r\n")
    t.ok(a.line().startswith(b"+"), "IDLE after FETCH and a keyword STORE")
    b = login(port)
    b.cmd("SELECT QR")
    b.cmd("STORE 2 +FLAGS (\\Answered)")
    msg = b"Subject: during idle\r\n\r\nnew\r\n"
    b.cmd(b"APPEND QR {%d+}\r\n" % len(msg) + msg)
    got = []
    t0 = time.time()
    while time.time() - t0 < 10 and not (any(b"EXISTS" in l for l in got) and any(b"FETCH" in l for l in got)):
        got.append(a.line())
    t.ok(any(re.match(rb"\* 2 FETCH \(FLAGS \(.*\\Answered", l) for l in got) and
         any(re.match(rb"\* 5 EXISTS", l) for l in got), "in IDLE: the other session's flag change and new message", got)
    a.send(b"DONE\r\n")
    unt, tl = a.response("I1")
    t.ok(tl.startswith(b"I1 OK"), "DONE", tl)
    unt, tl = a.cmd("FETCH 1:5 (FLAGS BODY.PEEK[TEXT])")
    fx = fetches(unt)
    t.ok(len(fx) == 5 and b"$Work" in fx[1][b"FLAGS"] and b"\\Answered" in fx[2][b"FLAGS"] and
         fx[5][b"BODY[TEXT]"] == b"new\r\n" and fx[1][b"BODY[TEXT]"] == b"body 0\r\n",
         "after DONE: keywords, flags and every message's content", fx)
    a.close()
    b.close()
    # the short form keeps UIDs as runs and no MODSEQs: after an IDLE in
    # a folder with a hole in its UIDs, UIDs and MODSEQs are as before,
    # and only the message changed meanwhile was told
    a = login(port)
    a.cmd("SELECT QR (CONDSTORE)")
    for k in range(2):
        m2 = b"Subject: gap %d\r\n\r\ngap\r\n" % k
        a.cmd(b"APPEND QR {%d+}\r\n" % len(m2) + m2)
    a.cmd("NOOP")
    a.cmd("STORE 6 +FLAGS.SILENT (\\Deleted)")
    a.cmd("EXPUNGE")
    unt, _ = a.cmd("FETCH 1:* (UID MODSEQ FLAGS)")
    before = {n: (d[b"UID"], d[b"MODSEQ"]) for n, d in fetches(unt).items()}
    uids = [int(before[n][0]) for n in sorted(before)]
    t.ok(len(before) == 6 and any(y - x > 1 for x, y in zip(uids, uids[1:])), "a folder with a hole in its UIDs", before)
    a.send(b"I2 IDLE\r\n")
    t.ok(a.line().startswith(b"+"), "IDLE (CONDSTORE, UIDs with a hole)")
    b = login(port)
    b.cmd("SELECT QR")
    b.cmd("STORE 3 +FLAGS (\\Flagged)")
    got = []
    t0 = time.time()
    while time.time() - t0 < 10 and not any(b"FETCH" in l for l in got):
        got.append(a.line())
    a.send(b"DONE\r\n")
    unt, tl = a.response("I2")
    got += unt
    told = sorted(fetches(got))
    t.is_(told, [3], "in IDLE: only the changed message is told", got)
    unt, tl = a.cmd("FETCH 1:* (UID MODSEQ)")
    after = {n: (d[b"UID"], d[b"MODSEQ"]) for n, d in fetches(unt).items()}
    same = all(after.get(n) == before[n] for n in before if n != 3)
    t.ok(same and after[3][0] == before[3][0] and int(after[3][1][0]) > int(before[3][1][0]),
         "after DONE: every UID and MODSEQ as before, the changed one's higher", (before, after))
    a.close()
    b.close()
t.done()
