"""
imapd_clients: real IMAP clients against imapd, each on an account of
N (500) messages in a Maildir INBOX: mbsync (isync) and offlineimap3
synchronise it into a local Maildir (then again after new mail, which
must add only the new messages), mutt in batch mode (on a pseudo
terminal, driven by push) copies every message into an mbox, fetchmail
--protocol IMAP downloads and deletes them.  Each result is checked
against the server's Maildir message by message (by Message-ID, the
content equal up to line ends).
Debian packages: isync, offlineimap3, mutt, fetchmail.  A client that
has not finished in CLIENT_LIMIT seconds is a failure that shows its
last output and the imapd log.
"""
import glob
import os
import pty
import re
import select as selectmod
import shutil
import signal
import subprocess
import tempfile
import time

from hermodtest import TAP, Instance, BUILDDIR, wait_until

from imaptest import enable_imap

N = 500
CLIENT_LIMIT = 180


def message(user, i):
    return (b"From: sender%d@example.test\nTo: %s@example.test\nSubject: M%03d\n"
            b"Date: Sat, 03 Jan 2026 00:%02d:%02d +0000\nMessage-ID: <m%d.%s@example.test>\n\n"
            b"body of %d\n.dot line\nFrom the start\n" % (i, user.encode(), i, (i // 60) % 60, i % 60, i,
                                                       user.encode(), i)) + b"line\n" * (i % 23)


def fill_maildir(md, user, uid, gid):
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
        os.chown(os.path.join(md, sub), uid, gid)
    for i in range(N):
        p = os.path.join(md, "new", "1700000%03d.M%06dP1Q%d.testhost" % (i, i, i))
        with open(p, "wb") as f:
            f.write(message(user, i))
        os.chown(p, uid, gid)
        # distinct arrival times, in order
        os.utime(p, (1700000000 + i, 1700000000 + i))


def norm(b):
    return b.replace(b"\r\n", b"\n")


def by_msgid(blobs, drop=()):
    """{Message-ID: content (LF, without the header lines named in drop)}."""
    out = {}
    for b in blobs:
        b = norm(b)
        if drop:
            hd, sep, body = b.partition(b"\n\n")
            keep, skip = [], False
            for l in hd.split(b"\n"):
                if not l[:1] in (b" ", b"\t"):     # a new field (else a folded line of the last)
                    skip = any(l.lower().startswith(d.lower() + b":") for d in drop)
                if not skip:
                    keep.append(l)
            hd = b"\n".join(keep)
            b = hd + sep + body
        m = re.search(rb"^Message-ID: (<[^>]+>)", b, re.M | re.I)
        if m:
            out[m.group(1)] = b
    return out


def server_msgs(h, user):
    return by_msgid(open(p, "rb").read() for p in h.message_files(user))


def maildir_files(d):
    return sorted(glob.glob(os.path.join(d, "new", "*")) + glob.glob(os.path.join(d, "cur", "*")))


def run(t, h, name, argv, env=None, cwd=None):
    """Run a client for at most CLIENT_LIMIT seconds: (finished, rc, output)."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=env or os.environ, cwd=cwd, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=CLIENT_LIMIT)
        return True, p.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        out = out.decode(errors="replace")
        t.ok(False, "%s finished within %ds" % (name, CLIENT_LIMIT))
        t.diag("%s hung; its last output:\n%s\n--- log:\n%s" % (name, "\n".join(out.splitlines()[-25:]),
                                                                   "\n".join(h.log().splitlines()[-40:])))
        return False, None, out


def compare(t, what, got, want, out):
    t.is_(len(got), len(want), "%s: %d messages" % (what, len(want)), out[-2000:])
    bad = [k for k in want if got.get(k) != want[k]]
    t.ok(not bad, "%s: every message equal to the server's" % what,
         "%d differ, e.g. %r\n--- got:\n%r\n--- server:\n%r" % (len(bad), bad[:1], got.get(bad[0]) if bad else None,
                                                               want[bad[0]] if bad else None))


def deliver_more(h, user, k):
    n = len(h.message_files(user))
    for i in range(k):
        h.sendmail(["-i", "%s@example.test" % user],
                   b"Subject: late %d\nMessage-ID: <late%d.%s@example.test>\n\nlate\n" % (i, i, user.encode()))
    return wait_until(lambda: len(h.message_files(user)) >= n + k, 20)


def mbsync(t, h, user):
    d = tempfile.mkdtemp(dir="/tmp", prefix="imapd-mbsync-")
    rc = os.path.join(d, "mbsyncrc")
    with open(rc, "w") as f:
        f.write("IMAPAccount acc\nHost 127.0.0.1\nPort %d\nUser %s\nPass secret\nSSLType None\n"
                "AuthMechs LOGIN\nTimeout 60\n\nIMAPStore remote\nAccount acc\n\n"
                "MaildirStore local\nPath %s/mail/\nInbox %s/mail/INBOX\nSubFolders Verbatim\n\n"
                "Channel ch\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Near\nSync Pull\n"
                "SyncState *\nExpunge None\n" % (h.port_base + 143, user, d, d))
    local = os.path.join(d, "mail", "INBOX")
    os.makedirs(os.path.join(d, "mail"))
    for rnd in (1, 2):
        ok, code, out = run(t, h, "mbsync (round %d)" % rnd, ["mbsync", "-c", rc, "-V", "ch"])
        if not ok:
            break
        t.is_(code, 0, "mbsync round %d exits 0" % rnd, out[-2000:])
        got = by_msgid((open(p, "rb").read() for p in maildir_files(local)), drop=(b"X-TUID",))
        compare(t, "mbsync round %d" % rnd, got, server_msgs(h, user), out)
        if rnd == 1:
            t.ok(deliver_more(h, user, 5), "5 more messages delivered for the second round")
    shutil.rmtree(d, ignore_errors=True)


def offlineimap(t, h, user):
    d = tempfile.mkdtemp(dir="/tmp", prefix="imapd-oi-")
    rc = os.path.join(d, "offlineimaprc")
    with open(rc, "w") as f:
        f.write("[general]\naccounts = A\nmetadata = %s/meta\n\n[Account A]\nlocalrepository = L\n"
                "remoterepository = R\n\n[Repository L]\ntype = Maildir\nlocalfolders = %s/mail\n\n"
                "[Repository R]\ntype = IMAP\nremotehost = 127.0.0.1\nremoteport = %d\nremoteuser = %s\n"
                "remotepass = secret\nssl = no\nstarttls = no\nreadonly = True\n"
                "folderfilter = lambda f: f == 'INBOX'\n" % (d, d, h.port_base + 143, user))
    local = os.path.join(d, "mail", "INBOX")
    for rnd in (1, 2):
        ok, code, out = run(t, h, "offlineimap (round %d)" % rnd, ["offlineimap", "-c", rc, "-o", "-u", "basic"])
        if not ok:
            break
        t.ok(code == 0 and "ERROR" not in out, "offlineimap round %d exits 0 without ERROR" % rnd, out[-2000:])
        got = by_msgid((open(p, "rb").read() for p in maildir_files(local)), drop=(b"X-OfflineIMAP",))
        compare(t, "offlineimap round %d" % rnd, got, server_msgs(h, user), out)
        if rnd == 1:
            t.ok(deliver_more(h, user, 5), "5 more messages delivered for the second round")
    shutil.rmtree(d, ignore_errors=True)


def mutt(t, h, user):
    """mutt has no batch mode for reading: run it on a pseudo terminal
    and push the keys: tag all, copy the tagged to an mbox, quit."""
    d = tempfile.mkdtemp(dir="/tmp", prefix="imapd-mutt-")
    out_mbox = os.path.join(d, "out.mbox")
    url = "imap://%s:secret@127.0.0.1:%d/" % (user, h.port_base + 143)
    muttrc = os.path.join(d, "muttrc")
    with open(muttrc, "w") as f:
        f.write('set folder="%s"\nset spoolfile="+INBOX"\nset ssl_starttls=no\nset ssl_force_tls=no\n'
                'set confirmcreate=no\nset confirmappend=no\nset quit=yes\nset mbox_type=mbox\n'
                'set move=no\nset delete=no\nset mark_old=no\nset imap_check_subscribed=no\n'
                'set header_cache=""\nset message_cachedir=""\nset timeout=5\nset mail_check=60\n'
                'set sort=date-sent\nset wait_key=no\nset beep=no\n'
                'push "<tag-pattern>~A<enter><tag-prefix><copy-message>%s<enter><quit>"\n' % (url, out_mbox))
    env = dict(os.environ, TERM="vt100", HOME=d, LINES="24", COLUMNS="80")
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe("mutt", ["mutt", "-n", "-F", muttrc, "-f", url + "INBOX"], env)
    out = b""
    end = time.time() + CLIENT_LIMIT
    status = None
    while time.time() < end:
        r, _, _ = selectmod.select([fd], [], [], 0.5)
        if r:
            try:
                x = os.read(fd, 65536)
            except OSError:
                x = b""
            if not x:
                break
            out += x
            out = out[-20000:]
        wp, st = os.waitpid(pid, os.WNOHANG)
        if wp:
            status = st
            break
    if status is None:
        # the terminal closes a moment before mutt has exited
        wp, st = wait_until(lambda: (lambda r: r if r[0] else None)(os.waitpid(pid, os.WNOHANG)),
                            max(end - time.time(), 5)) or (0, 0)
        if wp:
            status = st
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            t.ok(False, "mutt finished within %ds" % CLIENT_LIMIT,
                 re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b" ", out[-3000:]).decode(errors="replace"))
    os.close(fd)
    if status is not None:
        t.is_(os.waitstatus_to_exitcode(status), 0, "mutt exits 0")
    blobs = []
    if os.path.exists(out_mbox):
        data = open(out_mbox, "rb").read()
        # a From_ line after a blank line (or at the start) begins a message
        for part in re.split(rb"(?:^|\n\n)From \S+ +[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\n",
                             data):
            if part.strip():
                blobs.append(part)
    # mutt writes Status/Lines/Content-Length headers into an mbox and
    # quotes From_ lines
    got = by_msgid((b.replace(b"\n>From ", b"\nFrom ") for b in blobs),
                   drop=(b"Status", b"X-Status", b"Content-Length", b"Lines", b"X-Keywords", b"X-UID"))
    got = {k: v.rstrip(b"\n") + b"\n" for k, v in got.items()}
    compare(t, "mutt copied every message to an mbox", got, server_msgs(h, user),
            re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b" ", out[-3000:]).decode(errors="replace"))
    files = h.message_files(user)
    t.is_(len(files), N, "mutt: copying deleted nothing on the server")
    shutil.rmtree(d, ignore_errors=True)


def fetchmail(t, h, user):
    d = tempfile.mkdtemp(dir="/tmp", prefix="imapd-fm-")
    os.chmod(d, 0o777)
    rc = os.path.join(d, "rc")
    with open(rc, "w") as f:
        f.write('set no syslog\nset no bouncemail\n'
                'poll 127.0.0.1 service %d protocol imap auth password\n'
                '  user "%s" there with password "%s" is root here\n'
                '  fetchall nokeep sslproto "" no rewrite\n'
                '  mda "/bin/sh -c \'cat > %s/msg.$$\'"\n' % (h.port_base + 143, user, "secret", d))
    os.chmod(rc, 0o600)
    want = server_msgs(h, user)
    env = dict(os.environ, HOME=d, FETCHMAILHOME=d)
    ok, code, out = run(t, h, "fetchmail", ["fetchmail", "-f", rc, "--nodetach", "-v", "--pidfile",
                                            os.path.join(d, "pid")], env)
    if ok:
        t.is_(code, 0, "fetchmail exits 0", out[-2000:])
    got = by_msgid((open(p, "rb").read() for p in glob.glob(os.path.join(d, "msg.*"))),
                   drop=(b"Received", b"X-Original-To", b"Delivered-To", b"Status", b"X-Status"))
    want = by_msgid(want.values(), drop=(b"Received", b"X-Original-To", b"Delivered-To", b"Status", b"X-Status"))
    compare(t, "fetchmail --protocol IMAP", got, want, out)
    t.ok(wait_until(lambda: not h.message_files(user), 10), "fetchmail nokeep: the INBOX is empty afterwards",
         len(h.message_files(user)))
    shutil.rmtree(d, ignore_errors=True)


t = TAP()
clients = (("bob", "mbsync", mbsync, "isync"), ("carol", "offlineimap", offlineimap, "offlineimap3"),
           ("dave", "mutt", mutt, "mutt"), ("alice", "fetchmail", fetchmail, "fetchmail"))
with Instance(users=[c[0] for c in clients], start=False) as h:
    enable_imap(h)
    h.start()
    t.ok(wait_until(lambda: h.pids("imap"), 10), "imap running", h.log()[-3000:])
    for user, prog, fn, pkg in clients:
        md = h.maildir(user)
        h.sendmail(["-i", user + "@example.test"], b"Subject: probe\n\nprobe\n")
        if not t.ok(wait_until(lambda: h.message_files(user), 10), "%s: probe message delivered" % user,
                    h.log()[-3000:]):
            continue
        st = os.stat(h.message_files(user)[0])
        for p in h.message_files(user):
            os.unlink(p)
        fill_maildir(md, user, st.st_uid, st.st_gid)
        if shutil.which(prog) is None:
            t.ok(False, "%s installed (apt-get install %s)" % (prog, pkg))
            continue
        t0 = time.time()
        fn(t, h, user)
        t.diag("%s took %.1fs" % (prog, time.time() - t0))
    # a sanitizer build reports memory errors and leaks in the log
    bad = [l for l in h.log().splitlines() if "Sanitizer" in l or "runtime error:" in l]
    t.ok(not bad, "no sanitizer report in the instance log", "\n".join(bad[:20]))
t.done()
