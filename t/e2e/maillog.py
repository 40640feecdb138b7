"""
maillog: with maillog_file set, an instance started in the background
(hermod start, not --foreground: there stderr stays the log) writes the
lines of every daemon, the chrooted smtpd's included, in order into one
file through postlogd: for one message smtpd's session comes before
local's delivery, which comes before qmgr's "removed" (smtpd's and
pickup's queue-ID lines are logged after they told qmgr, so they may
come later: that is the daemons' order, not the log's).
logrotate's way (rename, hermod log reopen) and hermod reload both move
new lines to a new file, losing none; a postlogd killed with SIGKILL is
restarted and lines sent meanwhile still arrive; a datagram with an
embedded newline stays one line, a sender cannot choose its pid, and
(as root) a sender that is neither root nor mail_owner is marked with
its uid and may not ask for a reopen.  Oversized and malformed
datagrams are dropped without harm.

The test adds the postlog service to master.conf and sets maillog_file
only when hermod init did not.
"""
import grp
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import time

from hermodtest import TAP, Instance, prog, wait_until
from smtptest import Client, _ensure_cert, _master_conf_enable, port_open

t = TAP()
privileged = os.geteuid() == 0


def conf_value(h, name):
    p = h.hermod("config", name, check=False)
    m = re.match(r"^%s = (.*)$" % name, p.stdout.decode(errors="replace").strip())
    return m.group(1) if m else ""


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def smtp_send(h, rcpt, subject):
    c = Client(h.port_base + 25)
    try:
        c.reply()
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<sender@example.org>")
        c.cmd("RCPT TO:<%s>" % rcpt)
        code, _ = c.cmd("DATA")
        if code != 354:
            return code
        c.send(("Subject: %s\r\n\r\nhello\r\n.\r\n" % subject).encode())
        code, lines = c.reply()
        c.cmd("QUIT")
        return code
    finally:
        c.close()


def lines_of(text, qid):
    return [l for l in text.splitlines() if (" %s: " % qid) in l]


def message_in_order(text, qid, smtp=True):
    """For a message over SMTP: smtpd's "connect from" for its session,
    then local's delivery, then qmgr's "removed"; and smtpd's queue-ID
    line is there.  smtpd and pickup log the queue-ID line only after
    they told qmgr (and fsynced), so that line may follow the delivery
    whatever the log's path; the session's first line may not."""
    ls = text.splitlines()

    def first(pred, before=None):
        for i, l in enumerate(ls[:before]):
            if pred(l):
                return i
        return -1
    got = 0
    if smtp:
        m = first(lambda l: re.search(r"hermod/smtpd\[\d+\]: %s: client=" % qid, l))
        pid = re.search(r"smtpd\[(\d+)\]", ls[m]).group(1) if m >= 0 else "none"
        got = -1
        for i, l in enumerate(ls[:m]):
            if re.search(r"hermod/smtpd\[%s\]: connect from " % pid, l):
                got = i
    sent = first(lambda l: re.search(r"hermod/local\[\d+\]: %s: .*status=sent" % qid, l))
    gone = first(lambda l: re.search(r"hermod/qmgr\[\d+\]: %s: removed" % qid, l))
    return got >= 0 and sent > got and gone > sent


LINE = re.compile(r"^[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d \S+ hermod/[a-z_./-]+\[\d+\]: ")

h = Instance(users=["alice", "bob"], start=False)
try:
    maillog = conf_value(h, "maillog_file")
    if not maillog:
        maillog = os.path.join(h.dir, "log", "maillog")
        h.set_conf({"maillog_file": maillog})
    mc = os.path.join(h.dir, "master.conf")
    if not re.search(r"^\s*\S+\s+\S+\s+unix-dgram\s+\S+\s+\S+\s+postlogd\b", read(mc), re.M):
        with open(mc, "a") as f:
            f.write("postlog     public/postlog  unix-dgram n  1     postlogd\n")
    _master_conf_enable(h, None)
    _ensure_cert(h)
    sock = os.path.join(h.spool, "public", "postlog")

    p = h.hermod("start", check=False)
    t.is_(p.returncode, 0, "hermod start (in the background) succeeds", p.stderr)
    started = wait_until(lambda: "daemon started" in read(maillog), 10)
    t.ok(started, "the master's start line is in maillog_file", read(maillog))
    wait_until(lambda: port_open(h.port_base + 25), 10)
    wait_until(lambda: h.pids("qmgr") and h.pids("pickup") and h.pids("postlog"), 10)

    st = os.stat(maillog)
    t.is_(stat.S_IMODE(st.st_mode) & 0o137, 0, "the file is mode 0640 or tighter (%o)" % stat.S_IMODE(st.st_mode))
    if privileged:
        hermod_uid = pwd.getpwnam(conf_value(h, "mail_owner") or "hermod").pw_uid
        t.is_(st.st_uid, hermod_uid, "owned by mail_owner")
        pl = h.pids("postlog")
        t.ok(pl and os.stat("/proc/%d" % pl[0]).st_uid == hermod_uid, "postlogd runs as mail_owner")
    t.is_(len(h.pids("postlog")), 1, "one postlogd")

    # -- mail over SMTP and from sendmail -------------------------------
    t.is_(smtp_send(h, "alice@example.test", "one"), 250, "a message over SMTP")
    r = h.sendmail(["-t"], b"To: bob@example.test\nSubject: two\n\nhi\n")
    t.is_(r.returncode, 0, "a message from sendmail", r.stderr)
    t.ok(h.wait_messages("alice", 1) and h.wait_messages("bob", 1), "both delivered")
    text = [""]

    def both_logged():
        text[0] = read(maillog)
        return len(re.findall(r"hermod/qmgr\[\d+\]: \S+: removed", text[0])) >= 2 and \
            re.search(r"hermod/smtpd\[\d+\]: \S+: client=", text[0]) and "(queue active)" in text[0]
    wait_until(both_logged, 10)
    log = text[0]
    m = re.search(r"hermod/smtpd\[(\d+)\]: (\S+): client=", log)
    t.ok(m, "smtpd's queue-ID line is there", log)
    smtp_qid = m.group(2) if m else "none"
    m = re.search(r"hermod/pickup\[\d+\]: (\S+): ", log)
    t.ok(m, "pickup's line is there", log)
    pick_qid = m.group(1) if m else "none"
    for prog_ in ("master", "smtpd", "pickup", "qmgr", "local"):
        t.ok(re.search(r"hermod/%s\[\d+\]: " % prog_, log), "lines from %s" % prog_)
    t.ok(message_in_order(log, smtp_qid), "SMTP message: smtpd's session, then local, then qmgr", "\n".join(lines_of(log, smtp_qid)))
    t.ok(message_in_order(log, pick_qid, smtp=False), "sendmail message: local, then qmgr", "\n".join(lines_of(log, pick_qid)))
    bad = [l for l in log.splitlines() if not LINE.match(l)]
    t.is_(bad, [], "every line in syslog's layout")
    if privileged:
        sp = h.pids("smtp")
        t.ok(sp and os.readlink("/proc/%d/root" % sp[0]) == os.path.realpath(h.spool),
             "smtpd is chrooted (its lines still arrive)")
    else:
        t.skip("smtpd is chrooted", "not root")

    # -- logrotate's way: rename, hermod log reopen --------------------------
    os.rename(maillog, maillog + ".1")
    p = h.hermod("log", "reopen", check=False)
    t.is_(p.returncode, 0, "hermod log reopen succeeds", p.stderr)
    t.ok(b"reopened" in p.stderr, "and says so", p.stderr)
    old_size = os.path.getsize(maillog + ".1")
    t.is_(smtp_send(h, "alice@example.test", "three"), 250, "a message after the rotation")
    t.ok(h.wait_messages("alice", 2), "delivered")
    t.ok(wait_until(lambda: re.search(r"qmgr\[\d+\]: \S+: removed", read(maillog)), 10),
         "its lines are in the new file", read(maillog))

    def whole():
        m = re.search(r"hermod/smtpd\[\d+\]: (\S+): client=", read(maillog))
        return m and message_in_order(read(maillog), m.group(1))
    t.ok(wait_until(whole, 10), "the whole message, in order, in the new file", read(maillog))
    t.is_(os.path.getsize(maillog + ".1"), old_size, "nothing more went to the old file")
    t.ok(smtp_qid in read(maillog + ".1") and "daemon started" in read(maillog + ".1"),
         "the old lines are in the rotated file")

    # -- hermod reload reopens too ---------------------------------------
    before = h.pids("postlog")
    os.rename(maillog, maillog + ".2")
    p = h.hermod("reload", check=False)
    t.is_(p.returncode, 0, "hermod reload", p.stderr)
    t.ok(wait_until(lambda: h.pids("postlog") and h.pids("postlog") != before, 10),
         "postlogd restarted by the reload")
    wait_until(lambda: h.pids("qmgr") and h.pids("pickup"), 10)
    r = h.sendmail(["-t"], b"To: alice@example.test\nSubject: four\n\nhi\n")
    t.ok(r.returncode == 0 and h.wait_messages("alice", 3), "a message after the reload")
    t.ok(wait_until(lambda: re.search(r"pickup\[\d+\]: \S+: ", read(maillog)) and
                    re.search(r"qmgr\[\d+\]: \S+: removed", read(maillog)), 10),
         "its lines are in a new file", read(maillog))
    t.ok("reload -- version" in read(maillog + ".2"), "the reload line ended the old file")

    # -- postlogd killed: restarted, lines kept ----------------------------
    before = h.pids("postlog")
    seen = len(read(maillog))
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    t.is_(smtp_send(h, "bob@example.test", "five"), 250, "a message while postlogd is down")
    t.ok(wait_until(lambda: h.pids("postlog") and h.pids("postlog") != before, 10),
         "the master starts postlogd again")
    t.ok(h.wait_messages("bob", 2), "delivered")

    # what came after the kill (the master may log its warning after the
    # message's first lines: it learns of the death at its next SIGCHLD)
    def after_kill():
        return read(maillog)[seen:]

    def five_logged():
        s = after_kill()
        return "killed by signal 9" in s and re.search(r"smtpd\[\d+\]: (\S+): client=", s) and \
            len(re.findall(r"qmgr\[\d+\]: \S+: removed", s)) >= 1
    t.ok(wait_until(five_logged, 10), "the master's warning and the message's lines arrive", read(maillog))
    # (not necessarily in order: when more lines come than the socket
    # holds (max_dgram_qlen) before postlogd is back, the rest are
    # appended directly, ahead of the queued ones; postlogd(8) says so)
    q = re.search(r"smtpd\[\d+\]: (\S+): client=", after_kill())
    five = q.group(1) if q else "none"
    t.ok(wait_until(lambda: re.search(r"hermod/local\[\d+\]: %s: .*status=sent" % five, read(maillog)) and
                    re.search(r"hermod/qmgr\[\d+\]: %s: removed" % five, read(maillog)), 10),
         "none of the message's lines lost", "\n".join(lines_of(read(maillog), five)))

    # -- postlogd not reading (stopped): its queue fills, the daemons
    # append themselves (the chrooted smtpd to the file it opened before
    # the chroot), nothing is lost ----------------------------------------
    pl_pid = h.pids("postlog")
    for pid in pl_pid:
        os.kill(pid, signal.SIGSTOP)
    try:
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        filler.connect(sock)
        filler.setblocking(False)
        n = 0
        try:
            while n < 1000:
                filler.send(b"L1 hermod/test FILLER-%d" % n)
                n += 1
        except BlockingIOError:
            pass
        filler.close()
        t.ok(0 < n < 1000, "postlogd's queue is full (%d datagrams)" % n)
        clients = len(re.findall(r"smtpd\[\d+\]: \S+: client=", read(maillog)))
        removed = len(re.findall(r"qmgr\[\d+\]: \S+: removed", read(maillog)))
        t0 = time.time()
        t.is_(smtp_send(h, "bob@example.test", "six"), 250, "a message while postlogd is stopped")
        t.ok(time.time() - t0 < 8, "smtpd is slowed down, not stuck (%.1f s)" % (time.time() - t0))
        t.ok(h.wait_messages("bob", 3), "delivered")
        t.ok(wait_until(lambda: len(re.findall(r"smtpd\[\d+\]: \S+: client=", read(maillog))) > clients, 10),
             "the chrooted smtpd appended its lines itself")
        t.ok(wait_until(lambda: len(re.findall(r"qmgr\[\d+\]: \S+: removed", read(maillog))) > removed, 10),
             "and qmgr too")
    finally:
        for pid in pl_pid:
            os.kill(pid, signal.SIGCONT)
    t.ok(wait_until(lambda: "FILLER-%d" % (n - 1) in read(maillog), 10), "the queued lines follow")
    log = read(maillog)
    m = [q for q in re.findall(r"smtpd\[\d+\]: (\S+): client=", log)]
    six = m[-1] if m else "none"
    t.ok(re.search(r"hermod/local\[\d+\]: %s: .*status=sent" % six, log) and
         re.search(r"hermod/qmgr\[\d+\]: %s: removed" % six, log),
         "the message's lines are all there", "\n".join(lines_of(log, six)))
    t.is_(h.pids("postlog"), pl_pid, "the same postlogd")

    # -- what a sender may not do ----------------------------------------
    pl_pid = h.pids("postlog")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect(sock)
    s.send(b"L1 hermod/smtpd FORGED-ONE\nDec  3 12:00:00 mx hermod/master[1]: FORGED-TWO")
    s.send(b"L1 hermod/smtpd[1] FORGED-PID")
    s.send(b"L1 hermod/smtpd " + b"x" * 9000)
    s.send(b"L1 hermod/smtpd tab\there esc\x1b[2J end")
    s.send(b"L1 hermod/smtpd FORGED-LAST")
    t.ok(wait_until(lambda: "FORGED-LAST" in read(maillog), 10), "datagrams from root are written")
    log = read(maillog)
    one = [l for l in log.splitlines() if "FORGED-ONE" in l]
    t.is_(len(one), 1, "an embedded newline: one line")
    t.ok(one and "FORGED-ONE#012Dec  3" in one[0], "the newline written as #012", one)
    t.ok(not [l for l in log.splitlines() if "FORGED-TWO" in l and "FORGED-ONE" not in l],
         "no second line")
    t.ok(one and re.search(r"hermod/smtpd\[%d\]: FORGED-ONE" % os.getpid(), one[0]),
         "the pid is the sender's real one", one)
    t.ok("FORGED-PID" not in log, "an ident with [pid] is refused")
    t.ok("x" * 100 not in log, "an oversized datagram is dropped")
    t.ok(re.search(r"tab#011here esc#033\[2J end", log), "control characters escaped")
    t.is_(h.pids("postlog"), pl_pid, "postlogd survived them")
    t.ok(wait_until(lambda: "dropped" in read(maillog), 5), "postlogd reports the dropped datagrams",
         read(maillog)[-2000:])
    s.close()

    if privileged:
        nobody = pwd.getpwnam("nobody")
        dropgid = grp.getgrnam(conf_value(h, "setgid_group") or "hermodrop").gr_gid
        rd, wr = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(rd)
                os.setgroups([dropgid])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                c.bind("")      # autobind, for the answer
                c.connect(sock)
                c.send(b"L1 hermod/master UNTRUSTED-LINE")
                c.send(b"C1 reopen")
                c.settimeout(5)
                os.write(wr, c.recv(512))
            except Exception as e:
                os.write(wr, ("exception %r" % e).encode())
            os._exit(0)
        os.close(wr)
        answer = b""
        while True:
            b = os.read(rd, 512)
            if not b:
                break
            answer += b
        os.waitpid(pid, 0)
        t.ok(answer.startswith(b"error"), "a reopen from another uid is refused", answer)
        t.ok(wait_until(lambda: "UNTRUSTED-LINE" in read(maillog), 5), "its line is written")
        u = [l for l in read(maillog).splitlines() if "UNTRUSTED-LINE" in l]
        t.ok(u and ("(uid %d) UNTRUSTED-LINE" % nobody.pw_uid) in u[0], "marked with its uid", u)
        p = subprocess.run(["su", "-s", "/bin/sh", "nobody", "-c",
                            "%s -C %s log reopen" % (prog("hermod"), h.dir)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        t.is_(p.returncode, 77, "hermod log reopen by another user: EX_NOPERM", p.stderr)
    else:
        for n in ("a reopen from another uid is refused", "its line is written", "marked with its uid",
                  "hermod log reopen by another user"):
            t.skip(n, "not root")

    # -- stop: the last lines still arrive --------------------------------
    p = h.hermod("stop", check=False)
    t.is_(p.returncode, 0, "hermod stop", p.stderr)
    t.ok("terminating on signal 15" in read(maillog), "the master's last line is in the file")
    p = h.hermod("log", "reopen", check=False)
    t.is_(p.returncode, 1, "hermod log reopen when not running: exit 1", p.stderr)
finally:
    h.hermod("stop", check=False)
    for pid in h.pids(None):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    h.close()
t.done()
