"""
popd_session: POP3 (RFC 1939/2449/2595/5034) against a running instance
over loopback, with poplib and raw sockets, and through `popd -i` on a
pipe: every command in every state, byte-exact RETR, TOP, UIDL
stability, DELE+RSET, DELE+QUIT, DELE and a dropped connection,
[IN-USE], bad commands, pipelining, STLS, implicit TLS (pop3s), the
plaintext policy, failed logins delayed and limited, autologout.
As root (a privileged instance): the privilege separation of popd(8):
the process that talks to the client before login has mail_owner's
real, effective and saved ids, the mailbox process the mail user's,
and the root parent holds no client descriptor.
"""
import glob
import os
import poplib
import pwd
import re
import socket
import ssl
import subprocess
import time

from hermodtest import TAP, Instance, BUILDDIR, wait_until

POPD = os.path.join(BUILDDIR, "popd", "popd")


def enable_pop3(h):
    """pop3 and pop3s listeners in master.conf (hermod init adds them
    when popd is in daemon_directory; make sure either way)."""
    mc = os.path.join(h.dir, "master.conf")
    text = open(mc).read()
    lines = [l for l in text.splitlines() if not re.match(r"^#?pop3s?\s", l)]
    lines.append("pop3 127.0.0.1:%d inet n - %s" % (h.port_base + 110, POPD))
    lines.append("pop3s 127.0.0.1:%d inet n - %s -o pop3_tls_wrappermode=yes" % (h.port_base + 995, POPD))
    open(mc, "w").write("\n".join(lines) + "\n")


class Raw:
    """A raw POP3 connection: send bytes, read lines and multi-line answers."""

    def __init__(self, port=None, sock=None, proc=None):
        self.proc = proc
        if proc:
            self.r, self.w = proc.stdout, proc.stdin
        else:
            self.s = sock or socket.create_connection(("127.0.0.1", port), timeout=15)
            self.r = self.w = None
        self.buf = b""

    def _recv(self):
        if self.proc:
            d = os.read(self.r.fileno(), 65536)
        else:
            d = self.s.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def send(self, data):
        if self.proc:
            self.w.write(data)
            self.w.flush()
        else:
            self.s.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            self._recv()
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def multi(self):
        """The data of a multi-line answer (still dot-stuffed), ending CRLF.CRLF."""
        while b"\r\n.\r\n" not in self.buf:
            self._recv()
        d, self.buf = self.buf.split(b"\r\n.\r\n", 1)
        return d + b"\r\n" if d else b""

    def cmd(self, c):
        self.send(c.encode() + b"\r\n")
        return self.line()

    def closed(self):
        try:
            self._recv()
            return False
        except (EOFError, ConnectionResetError, OSError):
            return True

    def close(self):
        if self.proc:
            self.w.close()
            self.proc.wait(10)
        else:
            self.s.close()


def half_close(port, data, timeout=30):
    """Send data, shut down the write side (what "nc -q" and scripts do),
    read until the server closes.  Returns the reply lines, or None when
    the server did not close within timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except socket.timeout:
        return None
    except OSError as e:        # a reset: report it after what came
        got += b"\r\n<%s>" % repr(e).encode()
    finally:
        s.close()
    return got.split(b"\r\n")


def tls_half_close(port, ctx, data, close_notify, timeout=30):
    """half_close over implicit TLS: after data, a TLS close_notify (when
    close_notify) and a TCP half-close.  Reply lines, or None on a
    timeout."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, outg, server_hostname="x")
    got = b""
    try:
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(outg.read())
                d = raw.recv(65536)
                if not d:
                    return []
                inc.write(d)
        obj.write(data)
        if close_notify:
            try:
                obj.unwrap()
            except ssl.SSLWantReadError:
                pass
        raw.sendall(outg.read())
        raw.shutdown(socket.SHUT_WR)
        eof = False
        while not eof:
            d = raw.recv(65536)
            if d:
                inc.write(d)
            else:
                eof = True
                inc.write_eof()
            try:
                while True:
                    x = obj.read(65536)
                    if not x:
                        eof = True
                        break
                    got += x
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:    # close_notify, EOF, an alert: the end
                eof = True
    except socket.timeout:
        return None
    except OSError:             # reset: what came before is the answer
        pass
    finally:
        raw.close()
    return got.split(b"\r\n")


def wire(stored):
    """What RETR must send for a stored message: CRLF lines, dot-stuffed."""
    out = b""
    lines = stored.split(b"\n")
    if lines and lines[-1] == b"":
        lines = lines[:-1]
    for l in lines:
        if l.endswith(b"\r"):
            l = l[:-1]
        if l.startswith(b"."):
            l = b"." + l
        out += l + b"\r\n"
    return out


def proc_ids(pid):
    """((real, effective, saved uid), (real, effective, saved gid)) of pid."""
    u = g = None
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith("Uid:"):
                u = tuple(int(x) for x in l.split()[1:4])
            elif l.startswith("Gid:"):
                g = tuple(int(x) for x in l.split()[1:4])
    return u, g


def proc_children(pid):
    """Live children of pid."""
    out = []
    for st in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(st) as f:
                fields = f.read().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            out.append(int(st.split("/")[2]))
    return sorted(out)


def proc_ppid(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(") ", 1)[1].split()[1])


def fd_owners(target):
    """PIDs with a descriptor whose link is target ("socket:[INODE]", "pipe:[INODE]")."""
    out = set()
    for fd in glob.glob("/proc/[0-9]*/fd/*"):
        try:
            if os.readlink(fd) == target:
                out.add(int(fd.split("/")[2]))
        except OSError:
            pass
    return sorted(out)


def tcp_server_owners(server_port, client_port):
    """PIDs holding the server side of our loopback TCP connection."""
    inodes = []
    for tab in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(tab).read().splitlines()[1:]
        except OSError:
            continue
        for l in lines:
            f = l.split()
            if int(f[1].split(":")[1], 16) == server_port and int(f[2].split(":")[1], 16) == client_port:
                inodes.append(f[9])
    out = []
    for i in inodes:
        out += fd_owners("socket:[%s]" % i)
    return sorted(set(out))



def one_holder(*args):
    """The processes holding the server side of a client connection.  Right
    after accept the service process still has the socket until it has
    forked the login process and pointed its own copy at /dev/null, so wait
    (briefly) for that hand-over before judging."""
    return wait_until(lambda: (lambda h: h if len(h) == 1 else None)(tcp_server_owners(*args)), 5) \
        or tcp_server_owners(*args)

def wait_children(pid, n, timeout=10):
    wait_until(lambda: len(proc_children(pid)) >= n, timeout)
    return proc_children(pid)


def check_privsep(t, what, login_pid, owner, user_ids, login_cmd, handoff=False, inetd=False):
    """login_pid talks to the client; check its ids, log in with
    login_cmd() (returns the reply), then check the mailbox process.
    handoff: plaintext on a socket, where the login process hands the
    client to the mailbox process and exits (lib/access.h).  Under the
    master the session's root parent exits once the mailbox process
    runs, which then is a child of the service process (its subreaper);
    under inetd (inetd=True) the parent stays and waits for it."""
    own = ((owner.pw_uid,) * 3, (owner.pw_gid,) * 3)
    t.is_(proc_ids(login_pid), own, "%s: pre-auth process has mail_owner's real, effective, saved ids" % what)
    parent = proc_ppid(login_pid)
    t.is_(proc_ids(parent)[0], (0, 0, 0), "%s: the session's parent is root" % what)
    t.is_(proc_children(parent), [login_pid], "%s: one child before login" % what)
    service = proc_ppid(parent)
    before = set(proc_children(service))
    r = login_cmd()
    t.ok(r.startswith(b"+OK"), "%s: login" % what, r)
    users = ((user_ids[0],) * 3, (user_ids[1],) * 3)

    def mailprocs():
        cand = set(proc_children(parent)) | (set(proc_children(service)) - before)
        return [k for k in cand if k not in (login_pid, parent) and proc_ids(k) == users]
    mail = wait_until(lambda: (lambda m: m if len(m) == 1 and (not handoff or login_pid not in
                                                                  proc_children(parent) + proc_children(service))
                               else None)(mailprocs()), 10) or mailprocs()
    t.is_(len(mail), 1, "%s: a mailbox process with the mail user's real, effective, saved ids after login" % what,
          mail)
    if inetd:
        t.ok(mail and proc_ppid(mail[0]) == parent, "%s (inetd): the root parent stays, the mailbox process is its child"
             % what, mail)
    else:
        t.ok(wait_until(lambda: not os.path.exists("/proc/%d/stat" % parent) or
                        open("/proc/%d/stat" % parent).read().rsplit(") ", 1)[1].split()[0] in "ZX", 10),
             "%s: the session's parent has exited, leaving the mailbox process to the service process" % what)
        t.ok(mail and proc_ppid(mail[0]) == service, "%s: the mailbox process is the service process's child" % what,
             mail)
    kids = proc_children(parent) + proc_children(service)
    if handoff:
        t.ok(login_pid not in kids, "%s: the login process is gone after handing the client over" % what, kids)
    else:
        t.is_(proc_ids(login_pid), own, "%s: the client side keeps mail_owner's ids after login" % what)
    return mail[0] if mail else None


def mail_owner(h):
    for l in h.hermod("config").stdout.decode().splitlines():
        k, _, v = l.partition("=")
        if k.strip() == "mail_owner":
            return pwd.getpwnam(v.strip())
    return pwd.getpwnam("hermod")


t = TAP()
with Instance(users=["alice", "bob", "carol"], start=False,
              conf={"auth_failure_delay": "1s", "auth_failure_limit": "3"}) as h:
    enable_pop3(h)
    h.start()
    port = h.port_base + 110
    sport = h.port_base + 995
    t.ok(wait_until(lambda: h.pids("pop3") and h.pids("pop3s"), 10), "pop3 and pop3s services running", h.log())

    tricky = (b"Subject: tricky\n\n.\n..two dots\n.leading dot\nFrom the start\n"
              b"trailing space  \n\n\nblank lines above\n\xc3\xa9 8-bit\n" + b"x" * 1500 + b"\nlast line\n")
    # one at a time: parallel deliveries could land out of order
    h.sendmail(["-i", "alice@example.test"], tricky)
    h.wait_messages("alice", 1)
    for i in range(2, 6):
        h.sendmail(["alice@example.test"], b"Subject: m%d\n\nbody %d\nline 2\nline 3\n" % (i, i))
        h.wait_messages("alice", i)
    msgs = h.wait_messages("alice", 5)
    t.ok(len(msgs) == 5, "5 messages delivered to alice")
    files = h.message_files("alice")

    # --- AUTHORIZATION state ---------------------------------------------
    c = Raw(port)
    g = c.line()
    t.ok(g.startswith(b"+OK"), "greeting", g)
    t.ok(b"<" not in g, "no APOP timestamp in the greeting")
    c.send(b"CAPA\r\n")
    t.ok(c.line().startswith(b"+OK"), "CAPA +OK")
    caps = c.multi().decode().split("\r\n")
    for cap in ("TOP", "USER", "UIDL", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE",
                "SASL PLAIN", "STLS", "EXPIRE NEVER", "IMPLEMENTATION hermod"):
        t.ok(cap in caps, "CAPA lists " + cap, caps)
    for bad in ("STAT", "LIST", "RETR 1", "DELE 1", "NOOP", "RSET", "TOP 1 1", "UIDL", "LAST",
                "XYZZ", "FOOBAR", ""):
        t.ok(c.cmd(bad).startswith(b"-ERR"), "before login: %r refused" % bad)
    t.ok(c.cmd("PASS secret").startswith(b"-ERR"), "PASS before USER refused")
    t.ok(c.cmd("APOP alice 0123456789abcdef0123456789abcdef").startswith(b"-ERR"), "APOP not supported")
    t.ok(c.cmd("AUTH CRAM-MD5").startswith(b"-ERR"), "unknown SASL mechanism refused")
    c.send(b"AUTH\r\n")
    t.ok(c.line().startswith(b"+OK") and c.multi() == b"PLAIN\r\n", "AUTH lists PLAIN")
    t.ok(c.cmd("USER " + "a" * 600).startswith(b"-ERR"), "over-long line refused")
    t.ok(c.cmd("NOOP").startswith(b"-ERR"), "session goes on after an over-long line")
    t.ok(c.cmd("USER alice").startswith(b"+OK"), "USER")
    t0 = time.time()
    r = c.cmd("PASS wrong")
    t.ok(r.startswith(b"-ERR [AUTH]"), "wrong password: -ERR [AUTH]", r)
    t.ok(time.time() - t0 >= 0.9, "failure answered after auth_failure_delay")
    c.cmd("USER alice")
    r = c.cmd("PASS wrong2")
    c.cmd("USER alice")
    r = c.cmd("PASS wrong3")
    t.ok(r.startswith(b"-ERR [AUTH]") and c.closed(), "dropped after auth_failure_limit failures", r)
    c.close()

    # --- TRANSACTION with poplib ------------------------------------------
    p = poplib.POP3("127.0.0.1", port, timeout=15)
    p.user("alice")
    r = p.pass_("secret")
    t.ok(r.startswith(b"+OK"), "login with USER/PASS")
    n, size = p.stat()
    t.is_(n, 5, "STAT count")
    resp, lst, _ = p.list()
    sizes = [int(l.split()[1]) for l in lst]
    t.is_(sum(sizes), size, "LIST sizes add up to STAT")
    resp, ul, _ = p.uidl()
    uidls = [l.split()[1] for l in ul]
    t.is_(len(set(uidls)), 5, "UIDLs unique")
    t.ok(all(re.match(rb"^[\x21-\x7e]{1,70}$", u) for u in uidls), "UIDLs valid (RFC 1939)")
    t.ok(p.uidl(2).split()[2] == uidls[1], "UIDL n")
    t.ok(p.list(3).split()[2] == str(sizes[2]).encode(), "LIST n")
    resp, lines, octets = p.retr(1)
    stored = [m for m in h.messages("alice") if b"Subject: tricky" in m][0]
    t.is_(b"\n".join(lines) + b"\n", stored.replace(b"\r\n", b"\n"), "poplib RETR = stored message")
    t.ok(p.retr(2)[0].startswith(b"+OK"), "RETR 2")
    t.is_(p._shortcmd("LAST"), b"+OK 2", "LAST after RETR 2")
    resp, top, _ = p.top(2, 1)
    t.ok(top[-2] == b"" and top[-1] == b"body 2", "TOP 2 1: header, empty line, 1 body line", top)
    resp, top0, _ = p.top(2, 0)
    t.ok(top0[-1] == b"" and b"body 2" not in top0, "TOP 2 0: header only", top0)
    t.ok(p.noop().startswith(b"+OK"), "NOOP")
    t.ok(p.dele(3).startswith(b"+OK"), "DELE 3")
    t.is_(p.stat()[0], 4, "STAT after DELE skips it")
    for bad, why in (("RETR 3", "deleted"), ("DELE 3", "deleted twice"), ("RETR 9", "out of range"),
                     ("RETR 0", "zero"), ("RETR x", "not a number"), ("TOP 1", "missing count"),
                     ("TOP 1 x", "bad count"), ("LIST 9", "LIST out of range"), ("UIDL 3", "UIDL deleted"),
                     ("USER bob", "USER in TRANSACTION"), ("PASS x", "PASS in TRANSACTION"),
                     ("STLS", "STLS in TRANSACTION"), ("AUTH PLAIN", "AUTH in TRANSACTION"),
                     ("STAT 1", "STAT with argument"), ("BLAH", "unknown command")):
        try:
            r = p._shortcmd(bad)
            t.ok(False, "TRANSACTION: %s refused (%s)" % (bad, why), r)
        except poplib.error_proto as e:
            t.ok(str(e).startswith("b'-ERR"), "TRANSACTION: %s refused (%s)" % (bad, why))
    t.ok(p.rset().startswith(b"+OK"), "RSET")
    t.is_(p.stat()[0], 5, "RSET undeletes")
    t.is_(p._shortcmd("LAST"), b"+OK 0", "LAST after RSET")
    p.quit()
    t.is_(len(h.message_files("alice")), 5, "DELE+RSET+QUIT removes nothing")

    # byte-exact RETR and TOP over a raw socket
    c = Raw(port)
    c.line()
    c.cmd("USER alice")
    c.cmd("PASS secret")
    c.send(b"UIDL\r\n")
    c.line()
    raw_uidls = [l.split()[1] for l in c.multi().split(b"\r\n") if l]
    t.is_(raw_uidls, uidls, "UIDLs stable across sessions")
    c.send(b"RETR 1\r\n")
    hdr = c.line()
    body = c.multi()
    t.ok(hdr.startswith(b"+OK"), "RETR +OK")
    t.is_(body, wire(stored), "RETR byte-exact: CRLF line ends and dot-stuffing")
    t.is_(int(c.cmd("LIST 1").split()[2]), len(stored.replace(b"\n", b"\r\n")), "LIST size = CRLF size")
    c.send(b"TOP 1 2\r\n")
    c.line()
    hpart, bpart = stored.split(b"\n\n", 1)
    t.is_(c.multi(), wire(hpart + b"\n\n" + b"\n".join(bpart.split(b"\n")[:2]) + b"\n"), "TOP byte-exact")
    # pipelining: several commands in one write
    c.send(b"STAT\r\nLIST 1\r\nUIDL 2\r\nNOOP\r\nRETR 2\r\nNOOP\r\n")
    a = [c.line(), c.line(), c.line(), c.line(), c.line()]
    c.multi()
    a.append(c.line())
    t.ok(all(x.startswith(b"+OK") for x in a), "pipelined commands answered in order", a)
    # DELE then a dropped connection: nothing removed
    t.ok(c.cmd("DELE 1").startswith(b"+OK") and c.cmd("DELE 2").startswith(b"+OK"), "DELE 1 2")
    c.s.close()
    time.sleep(1)
    t.is_(len(h.message_files("alice")), 5, "dropped connection after DELE removes nothing")

    # a pipeline longer than the socketpair between the login and the
    # mail process holds, while the replies fill the other direction
    # (both processes once blocked in write() for good)
    n_big = 40000
    big = socket.create_connection(("127.0.0.1", port), timeout=60)
    got = [b""]

    def reader():
        try:
            while True:
                d = big.recv(1 << 20)
                if not d:
                    break
                got[0] += d[-64:] if len(got[0]) > 1 << 20 else d
                got.append(len(d))
        except OSError as e:
            got.append(e)

    import threading
    th = threading.Thread(target=reader)
    th.start()
    t0 = time.time()
    big.sendall(b"USER alice\r\nPASS secret\r\n" + b"RETR 1\r\n" * n_big + b"QUIT\r\n")
    th.join(90)
    total = sum(x for x in got[1:] if isinstance(x, int))
    t.ok(not th.is_alive() and got[0].endswith(b"\r\n.\r\n+OK Logging out, 5 messages left\r\n"),
         "%d pipelined RETRs all answered, QUIT last (%d bytes in %.1fs)" % (n_big, total, time.time() - t0),
         "stalled after %d bytes; %r" % (total, got[-1]))
    big.close()
    th.join(10)

    # [IN-USE]
    p1 = poplib.POP3("127.0.0.1", port, timeout=15)
    p1.user("alice")
    p1.pass_("secret")
    p2 = poplib.POP3("127.0.0.1", port, timeout=15)
    p2.user("alice")
    try:
        r = p2.pass_("secret")
        t.ok(False, "second session gets -ERR [IN-USE]", r)
    except poplib.error_proto as e:
        t.ok("[IN-USE]" in str(e), "second session gets -ERR [IN-USE]", e)
    # pipelined past the refused login: the -ERR [IN-USE] still arrives
    # (no TCP reset from unread input destroys it)
    ok = 0
    for i in range(5):
        l = half_close(port, b"USER alice\r\nPASS secret\r\n" + b"NOOP\r\n" * 5000) or []
        ok += len(l) == 4 and l[2].startswith(b"-ERR [IN-USE]")
        s3 = socket.create_connection(("127.0.0.1", port), timeout=15)
        s3.sendall(b"USER alice\r\nPASS secret\r\n" + b"NOOP\r\n" * 5000)
        d = b""
        try:
            while b"[IN-USE]" not in d:
                x = s3.recv(65536)
                if not x:
                    break
                d += x
        except OSError as e:
            d += repr(e).encode()
        s3.close()
        ok += b"-ERR [IN-USE]" in d
    t.is_(ok, 10, "[IN-USE] arrives despite pipelined input (half-closed or not)", l)
    # mail delivered during a session waits for the next one
    h.sendmail(["alice@example.test"], b"Subject: during\n\nlate\n")
    wait_until(lambda: len(h.message_files("alice")) == 6, 10)
    t.is_(p1.stat()[0], 5, "mail arriving during a session is not shown")
    # DELE + QUIT removes
    p1.dele(2)
    p1.dele(4)
    p1.quit()
    t.is_(len(h.message_files("alice")), 4, "DELE+QUIT removes the deleted messages")
    p = poplib.POP3("127.0.0.1", port, timeout=15)
    p.user("alice")
    p.pass_("secret")
    resp, ul, _ = p.uidl()
    now = [l.split()[1] for l in ul]
    t.is_(len(now), 4, "new session sees the late message")
    t.is_(now[:3], [uidls[0], uidls[2], uidls[4]], "kept messages keep their UIDLs")
    t.ok(now[3] not in uidls, "the new message has a new UIDL")
    p.quit()

    # AUTH PLAIN, initial response and continuation
    c = Raw(port)
    c.line()
    r = c.cmd("AUTH PLAIN AGJvYgBzZWNyZXQ=")
    t.ok(r.startswith(b"+OK"), "AUTH PLAIN with initial response", r)
    t.ok(c.cmd("STAT").startswith(b"+OK 0 0"), "bob has an empty mailbox")
    t.ok(c.cmd("QUIT").startswith(b"+OK"), "QUIT")
    c.close()
    c = Raw(port)
    c.line()
    t.is_(c.cmd("AUTH PLAIN"), b"+ ", "AUTH PLAIN continuation")
    t.ok(c.cmd("AGNhcm9sAHNlY3JldA==").startswith(b"+OK"), "AUTH PLAIN after continuation")
    c.close()
    c = Raw(port)
    c.line()
    c.cmd("AUTH PLAIN")
    t.ok(c.cmd("*").startswith(b"-ERR"), "AUTH cancelled with *")
    t.ok(c.cmd("AUTH PLAIN !!!!").startswith(b"-ERR"), "bad base64 refused")
    t.ok(c.cmd("QUIT").startswith(b"+OK"), "QUIT in AUTHORIZATION")
    c.close()

    # STLS then login
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    p = poplib.POP3("127.0.0.1", port, timeout=15)
    t.ok(p.stls(ctx).startswith(b"+OK"), "STLS")
    caps = p.capa()
    t.ok("STLS" not in caps, "STLS not offered again after TLS")
    p.user("alice")
    t.ok(p.pass_("secret").startswith(b"+OK"), "login over STLS")
    t.is_(p.stat()[0], 4, "STAT over TLS")
    t.ok(p.retr(1)[0].startswith(b"+OK"), "RETR over TLS")
    p.quit()
    # input sent together with STLS is discarded (no command injection)
    c = Raw(port)
    c.line()
    c.send(b"STLS\r\nUSER alice\r\n")
    t.ok(c.line().startswith(b"+OK"), "STLS +OK")
    tls = ctx.wrap_socket(c.s, server_hostname="x")
    tls.sendall(b"PASS secret\r\n")
    r = tls.recv(1000)
    t.ok(r.startswith(b"-ERR"), "USER pipelined before TLS is not kept", r)
    tls.close()

    # pop3s (implicit TLS)
    p = poplib.POP3_SSL("127.0.0.1", sport, context=ctx, timeout=15)
    t.ok(p.getwelcome().startswith(b"+OK"), "pop3s greeting over TLS")
    t.ok("STLS" not in p.capa(), "no STLS on pop3s")
    p.user("alice")
    t.ok(p.pass_("secret").startswith(b"+OK"), "login on pop3s")
    t.is_(p.stat()[0], 4, "STAT on pop3s")
    p.quit()

    # a client that sends every command, then half-closes: each answered
    n = len(h.message_files("alice"))
    l = half_close(port, b"USER alice\r\nPASS secret\r\nSTAT\r\nUIDL 1\r\nRETR 1\r\nNOOP\r\nQUIT\r\n")
    t.ok(l is not None, "half-close: the server ends the session", h.log()[-3000:])
    l = l or []
    t.ok(len(l) > 6 and l[2].startswith(b"+OK Logged in, %d messages" % n) and l[3].startswith(b"+OK %d " % n)
         and l[4].startswith(b"+OK 1 ") and l[5].startswith(b"+OK"), "half-close: login, STAT, UIDL, RETR answered", l[:8])
    t.ok(len(l) > 3 and l[-3] == b"+OK" and l[-2].startswith(b"+OK Logging out") and l[-1] == b"",
         "half-close: NOOP and QUIT answered, then the end", l[-5:])
    l = half_close(port, b"USER alice\r\nPASS secret\r\nDELE 1\r\nSTAT\r\n") or []
    t.ok(len(l) == 6 and l[3].startswith(b"+OK") and l[4].startswith(b"+OK %d " % (n - 1)),
         "half-close without QUIT: DELE and STAT answered", l)
    t.is_(len(h.message_files("alice")), n, "half-close without QUIT: nothing removed")
    l = half_close(port, b"USER alice\r\nPASS nope\r\nSTAT\r\nQUIT\r\n") or []
    t.ok(len(l) == 6 and l[2].startswith(b"-ERR [AUTH]") and l[3].startswith(b"-ERR") and l[4].startswith(b"+OK"),
         "half-close after a wrong password: -ERR, then the rest answered", l)
    for cn in (True, False):
        how = "close_notify" if cn else "bare TCP half-close"
        l = tls_half_close(sport, ctx, b"USER alice\r\nPASS secret\r\nSTAT\r\nQUIT\r\n", cn)
        t.ok(l is not None and len(l) == 6 and l[2].startswith(b"+OK Logged in") and l[3].startswith(b"+OK %d " % n)
             and l[4].startswith(b"+OK Logging out"), "pop3s, %s: every command answered" % how, l)

    # popd -i on a pipe
    proc = subprocess.Popen([POPD, "-i", "-C", h.dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=h.env())
    c = Raw(proc=proc)
    t.ok(c.line().startswith(b"+OK"), "popd -i greeting")
    t.ok(c.cmd("USER alice").startswith(b"+OK"), "popd -i USER (a pipe counts as local)")
    t.ok(c.cmd("PASS secret").startswith(b"+OK"), "popd -i PASS")
    c.send(b"RETR 1\r\n")
    c.line()
    t.is_(c.multi(), wire(stored), "popd -i RETR byte-exact")
    t.ok(c.cmd("DELE 4").startswith(b"+OK"), "popd -i DELE")
    t.ok(c.cmd("QUIT").startswith(b"+OK"), "popd -i QUIT")
    c.close()
    t.is_(proc.returncode, 0, "popd -i exits 0")
    t.is_(len(h.message_files("alice")), 3, "popd -i UPDATE removed the message")

    # privilege separation (privileged instance: the tests run as root)
    if os.geteuid() != 0:
        t.skip("privilege separation ids", "needs root (privileged instance)")
    else:
        owner = mail_owner(h)
        c = Raw(port)
        c.line()
        cport = c.s.getsockname()[1]
        holders = one_holder(port, cport)
        t.is_(len(holders), 1, "one process holds the client socket", holders)
        c.send(b"USER alice\r\n")
        c.line()
        # virtual users are served as mail_owner
        mailp = check_privsep(t, "pop3", holders[0], owner, (owner.pw_uid, owner.pw_gid),
                              lambda: c.cmd("PASS secret"), handoff=True)
        t.is_(tcp_server_owners(port, cport), [mailp], "after login only the mailbox process holds the socket")
        t.ok(c.cmd("STAT").startswith(b"+OK 3 "), "STAT served by the mailbox process itself")
        t.ok(c.cmd("QUIT").startswith(b"+OK"), "QUIT served by the mailbox process itself")
        t.ok(c.closed(), "session closed after QUIT")
        c.close()
        # the same over implicit TLS
        tc = ctx.wrap_socket(socket.create_connection(("127.0.0.1", sport), timeout=15), server_hostname="x")
        tc.recv(1000)
        holders = one_holder(sport, tc.getsockname()[1])
        t.is_(len(holders), 1, "pop3s: one process holds the client socket", holders)
        def tls_login():
            tc.sendall(b"USER alice\r\nPASS secret\r\n")
            d = b""
            while d.count(b"\r\n") < 2:
                d += tc.recv(1000)
            return d.split(b"\r\n")[1]
        check_privsep(t, "pop3s", holders[0], owner, (owner.pw_uid, owner.pw_gid), tls_login)
        tc.close()
        # popd -i: the process started by inetd is the root parent
        proc = subprocess.Popen([POPD, "-i", "-C", h.dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=h.env())
        c = Raw(proc=proc)
        c.line()
        kids = wait_children(proc.pid, 1)
        t.is_(len(kids), 1, "popd -i: one login process", kids)
        t.is_(os.readlink("/proc/%d/fd/0" % proc.pid), "/dev/null", "popd -i: the root parent let go of stdin")
        t.is_(os.readlink("/proc/%d/fd/1" % proc.pid), "/dev/null", "popd -i: the root parent let go of stdout")
        c.cmd("USER alice")
        check_privsep(t, "popd -i", kids[0], owner, (owner.pw_uid, owner.pw_gid), lambda: c.cmd("PASS secret"),
                      inetd=True)
        t.ok(c.cmd("QUIT").startswith(b"+OK"), "popd -i: QUIT")
        c.close()
        t.is_(proc.returncode, 0, "popd -i: exits 0")
h2 = None

# plaintext policy and autologout
with Instance(users=["alice"], start=False,
              conf={"pop3_plaintext_auth": "no", "pop3_idle_timeout": "2s"}) as h:
    enable_pop3(h)
    h.start()
    wait_until(lambda: h.pids("pop3"), 10)
    c = Raw(h.port_base + 110)
    c.line()
    t.ok(c.cmd("USER alice").startswith(b"-ERR"), "pop3_plaintext_auth=no: USER refused before TLS")
    c.send(b"CAPA\r\n")
    c.line()
    caps = c.multi().decode().split("\r\n")
    t.ok("USER" not in caps and "SASL PLAIN" not in caps and "STLS" in caps,
         "CAPA offers no plaintext login before TLS", caps)
    t0 = time.time()
    r = c.line()
    t.ok(r.startswith(b"-ERR") and c.closed() and time.time() - t0 < 10, "autologout after pop3_idle_timeout", r)
    c.close()

# a system user's mailbox process runs as that user
if os.geteuid() == 0:
    from hermodtest import SystemUser
    with SystemUser() as su, Instance(users=[], start=False) as h:
        spool = os.path.join(h.dir, "mailspool")
        os.makedirs(spool)
        os.chmod(spool, 0o1777)
        h.set_conf({"mail_spool_directory": spool})
        subprocess.run(["chpasswd"], input=("%s:Sys-pw1\n" % su.name).encode(), check=True)
        mbox = os.path.join(spool, su.name)
        with open(mbox, "wb") as f:
            f.write(b"From x@example.test Sat Jan  3 00:00:00 2026\nSubject: s\n\nhello\n\n")
        os.chown(mbox, su.pw.pw_uid, su.pw.pw_gid)
        os.chmod(mbox, 0o600)
        enable_pop3(h)
        h.start()
        wait_until(lambda: h.pids("pop3"), 10)
        port = h.port_base + 110
        c = Raw(port)
        c.line()
        holders = one_holder(port, c.s.getsockname()[1])
        t.is_(len(holders), 1, "system user: one process holds the client socket", holders)
        c.cmd("USER " + su.name)
        check_privsep(t, "system user", holders[0], mail_owner(h), (su.pw.pw_uid, su.pw.pw_gid),
                      lambda: c.cmd("PASS Sys-pw1"), handoff=True)
        t.ok(c.cmd("STAT").startswith(b"+OK 1 "), "system user: STAT sees the mbox")
        t.ok(c.cmd("QUIT").startswith(b"+OK"), "system user: QUIT")
        c.close()
# pop3_max_connections_per_user: past the cap a correct login gets
# -ERR [IN-USE] naming the cap (before the maildrop lock is even tried),
# other users are served, and the place comes back with the session's end
with Instance(users=["alice", "bob"], start=False, conf={"pop3_max_connections_per_user": "1"}) as h:
    enable_pop3(h)
    h.start()
    wait_until(lambda: h.pids("pop3"), 10)
    port = h.port_base + 110
    p1 = poplib.POP3("127.0.0.1", port, timeout=15)
    p1.user("alice")
    p1.pass_("secret")
    p2 = poplib.POP3("127.0.0.1", port, timeout=15)
    p2.user("alice")
    try:
        r = p2.pass_("secret")
        t.ok(False, "per-user cap 1: the 2nd session of alice is refused", r)
    except poplib.error_proto as e:
        t.ok("[IN-USE]" in str(e) and "pop3_max_connections_per_user" in str(e),
             "per-user cap 1: the 2nd session of alice gets -ERR [IN-USE] naming the cap", e)
    pb = poplib.POP3("127.0.0.1", port, timeout=15)
    pb.user("bob")
    t.ok(pb.pass_("secret").startswith(b"+OK"), "per-user cap: bob is served")
    pb.quit()
    p1.quit()
    ok = None
    for _ in range(50):
        try:
            p2.user("alice")
            ok = p2.pass_("secret")
            break
        except poplib.error_proto as e:
            ok = e
            time.sleep(0.1)
    t.ok(isinstance(ok, bytes) and ok.startswith(b"+OK"), "after the 1st session's QUIT the 2nd logs in", ok)
    p2.quit()
t.done()
