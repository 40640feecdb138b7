"""
popd_inetd: `popd -i` (one session on stdin/stdout, as inetd, xinetd or
systemd socket activation run it) answers every command received before
the end of its input, in order, as inetd test scripts and "nc -q"
clients expect: they send everything and then close or half-close.
On a pipe and on a socket (half-close), after a good login (the
pre-auth process hands the commands it has already read to the mailbox
process), after a wrong password (the -ERR comes after
auth_failure_delay, then the rest is answered), with the end of input
arriving while authd is still checking the password (authd is stopped
meanwhile), and with a command stream much larger than one read.
Every wait has a time limit; a hang is reported with the popd log.
"""
import glob
import os
import signal
import socket
import subprocess
import threading
import time

from hermodtest import TAP, Instance, BUILDDIR, wait_until

POPD = os.path.join(BUILDDIR, "popd", "popd")
LIMIT = 30      # seconds for one session; a normal one takes well under 2


def popd_pipe(h, data):
    """Run popd -i, write data to its stdin, then end the input; returns
    (reply lines, exit status, seconds, stderr).  A session that does
    not end within LIMIT is killed and reported (exit status None)."""
    t0 = time.time()
    p = subprocess.Popen([POPD, "-i", "-C", h.dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=h.env())
    out = []
    rd = threading.Thread(target=lambda: out.append(p.stdout.read()))
    rd.start()
    p.stdin.write(data)
    p.stdin.close()
    try:
        p.wait(LIMIT)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)
        rc = None
    rd.join(10)
    err = p.stderr.read()
    return (out[0] if out else b"").split(b"\r\n"), rc, time.time() - t0, err


def popd_socket(h, data):
    """popd -i on a socket (what inetd passes): write data, half-close,
    read until popd closes.  Returns (reply lines, exit status, seconds)."""
    a, b = socket.socketpair()
    t0 = time.time()
    p = subprocess.Popen([POPD, "-i", "-C", h.dir], stdin=b, stdout=b, stderr=subprocess.PIPE, env=h.env())
    b.close()
    a.settimeout(LIMIT)
    a.sendall(data)
    a.shutdown(socket.SHUT_WR)
    got = b""
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            got += d
    except socket.timeout:
        pass
    a.close()
    try:
        p.wait(LIMIT)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)
        rc = None
    p.stderr.close()
    return got.split(b"\r\n"), rc, time.time() - t0


def _readlink(p):
    try:
        return os.readlink(p)
    except OSError as e:
        return "(%s)" % e.strerror


def fd_owners(target):
    """PIDs with a descriptor whose link is target ("socket:[INODE]")."""
    out = set()
    for fd in glob.glob("/proc/[0-9]*/fd/*"):
        if _readlink(fd) == target:
            out.add(int(fd.split("/")[2]))
    return sorted(out)


def descendants(pid):
    kids = {}
    for st in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(st) as f:
                fields = f.read().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X"):
            kids.setdefault(int(fields[1]), []).append(int(st.split("/")[2]))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return sorted(out)


def diag(h, lines, rc, extra=b""):
    return "exit status %r\nreplies: %r\n%s\n--- log:\n%s" % (
        rc, lines[:40], extra.decode(errors="replace") if isinstance(extra, bytes) else extra,
        "\n".join(h.log().splitlines()[-30:]))


t = TAP()
with Instance(users=["a", "b"], password="p", start=False,
              conf={"auth_failure_delay": "1s", "auth_failure_limit": "3"}) as h:
    h.start()
    t.ok(wait_until(lambda: h.pids("authd"), 10), "authd running", h.log())
    for i in range(3):
        h.sendmail(["a@example.test"], b"Subject: m%d\n\nbody %d\n" % (i, i))
        h.wait_messages("a", i + 1)
    t.is_(len(h.message_files("a")), 3, "3 messages for a")

    # -- the brief's pipe: everything at once, then EOF ---------------------
    l, rc, secs, err = popd_pipe(h, b"USER a\r\nPASS p\r\nSTAT\r\nQUIT\r\n")
    d = diag(h, l, rc, err)
    t.ok(rc is not None, "pipe: the session ends by itself", d)
    t.is_(rc, 0, "pipe: popd -i exits 0", d)
    t.ok(l[0].startswith(b"+OK") and l[1].startswith(b"+OK"), "pipe: greeting and USER answered", d)
    t.ok(len(l) > 2 and l[2].startswith(b"+OK Logged in, 3 messages"), "pipe: PASS answered +OK (3 messages)", d)
    t.ok(len(l) > 3 and l[3].startswith(b"+OK 3 "), "pipe: STAT answered with the right count", d)
    t.ok(len(l) > 4 and l[4].startswith(b"+OK Logging out"), "pipe: QUIT signs off", d)
    t.is_(l[5:], [b""], "pipe: nothing after the sign-off", d)

    # -- the same with a wrong password --------------------------------------
    l, rc, secs, err = popd_pipe(h, b"USER a\r\nPASS wrong\r\nSTAT\r\nQUIT\r\n")
    d = diag(h, l, rc, err)
    t.is_(rc, 0, "wrong password: the session ends, exit 0", d)
    t.ok(len(l) > 2 and l[2].startswith(b"-ERR [AUTH]"), "wrong password: -ERR [AUTH]", d)
    t.ok(secs >= 0.9, "wrong password: answered after auth_failure_delay (%.1fs)" % secs)
    t.ok(len(l) > 3 and l[3].startswith(b"-ERR"), "wrong password: STAT refused", d)
    t.ok(len(l) > 4 and l[4].startswith(b"+OK"), "wrong password: QUIT answered", d)
    t.is_(l[5:], [b""], "wrong password: nothing more", d)
    # no QUIT: the end of input ends the session after the delayed answer
    l, rc, secs, err = popd_pipe(h, b"USER a\r\nPASS wrong\r\nSTAT\r\n")
    d = diag(h, l, rc, err)
    t.ok(rc == 0 and len(l) == 5 and l[2].startswith(b"-ERR [AUTH]") and l[3].startswith(b"-ERR"),
         "wrong password, no QUIT: -ERR, STAT refused, session ends", d)
    # a wrong password, then the right one, all in one go
    l, rc, secs, err = popd_pipe(h, b"USER a\r\nPASS wrong\r\nUSER a\r\nPASS p\r\nLIST\r\nQUIT\r\n")
    d = diag(h, l, rc, err)
    t.ok(rc == 0 and len(l) > 5 and l[2].startswith(b"-ERR [AUTH]") and l[3].startswith(b"+OK")
         and l[4].startswith(b"+OK Logged in") and l[5].startswith(b"+OK"), "wrong then right password: both answered", d)
    t.ok(l[-2].startswith(b"+OK Logging out") and l[-3] == b".", "wrong then right password: LIST and QUIT", d)
    # too many failures: the goodbye is the last word, the rest is not read
    l, rc, secs, err = popd_pipe(h, b"USER a\r\nPASS w1\r\nUSER a\r\nPASS w2\r\nUSER a\r\nPASS w3\r\nSTAT\r\n")
    d = diag(h, l, rc, err)
    t.ok(rc == 0 and len(l) == 8 and b"too many failures" in l[6], "auth_failure_limit: dropped after the third", d)

    # -- the end of input arrives while authd checks the password -------------
    def stop_authd():
        pids = h.pids("authd")
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        stopped.extend(pids)

    def cont_authd():
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)

    stopped = []
    stop_authd()
    try:
        # the EOF is there before authd can answer; authd goes on later
        timer = threading.Timer(1.0, cont_authd)
        timer.start()
        l, rc, secs, err = popd_pipe(h, b"USER a\r\nPASS p\r\nSTAT\r\nDELE 1\r\nQUIT\r\n")
    finally:
        timer.join()
        cont_authd()
    d = diag(h, l, rc, err)
    t.ok(secs >= 0.9, "EOF during the authd check: authd was held back (%.1fs)" % secs)
    t.ok(rc == 0 and len(l) > 5 and l[2].startswith(b"+OK Logged in") and l[3].startswith(b"+OK 3 ")
         and l[4].startswith(b"+OK") and l[5].startswith(b"+OK Logging out"),
         "EOF during the authd check: login, STAT, DELE and QUIT answered", d)
    t.is_(len(h.message_files("a")), 2, "EOF during the authd check: QUIT carried out the DELE")
    stopped = []
    stop_authd()
    try:
        timer = threading.Timer(1.0, cont_authd)
        timer.start()
        l, rc, secs, err = popd_pipe(h, b"USER a\r\nPASS wrong\r\nSTAT\r\nQUIT\r\n")
    finally:
        timer.join()
        cont_authd()
    d = diag(h, l, rc, err)
    t.ok(rc == 0 and len(l) == 6 and l[2].startswith(b"-ERR [AUTH]") and l[3].startswith(b"-ERR")
         and l[4].startswith(b"+OK"), "EOF during the authd check, wrong password: every command answered", d)
    t.ok(secs >= 1.9, "EOF during the authd check, wrong password: authd, then the delay (%.1fs)" % secs)

    # -- no QUIT: every command answered, nothing changed --------------------
    l, rc, secs, err = popd_pipe(h, b"USER a\r\nPASS p\r\nDELE 1\r\nSTAT\r\n")
    d = diag(h, l, rc, err)
    t.ok(rc == 0 and len(l) == 6 and l[3].startswith(b"+OK") and l[4].startswith(b"+OK 1 "),
         "no QUIT: DELE and STAT answered", d)
    t.is_(len(h.message_files("a")), 2, "no QUIT: the DELE is not carried out")
    # an unterminated last line is not a command
    l, rc, secs, err = popd_pipe(h, b"USER a\r\nPASS p\r\nDELE 1\r\nQUIT")
    t.ok(rc == 0 and len(l) == 5 and l[3].startswith(b"+OK"), "a last line without CRLF is not answered",
         diag(h, l, rc, err))
    t.is_(len(h.message_files("a")), 2, "a last QUIT without CRLF is not carried out")

    # -- a large pipelined stream: the proxy forwards more than one read -----
    n = 3000
    l, rc, secs, err = popd_pipe(h, b"USER a\r\nPASS p\r\n" + b"LIST\r\nUIDL 1\r\nRETR 2\r\n" * n + b"QUIT\r\n")
    d = diag(h, l, rc, err)
    t.is_(sum(1 for x in l if x.startswith(b"+OK Scan listing")), n, "large stream: every LIST answered", d)
    t.is_(sum(1 for x in l if x.startswith(b"+OK 1 ")), n, "large stream: every UIDL 1 answered", d)
    t.ok(rc == 0 and l[-2].startswith(b"+OK Logging out"), "large stream: QUIT last", d)

    # -- popd -i on a socket, half-closed -------------------------------------
    l, rc, secs = popd_socket(h, b"USER b\r\nPASS p\r\nSTAT\r\nNOOP\r\nQUIT\r\n")
    d = diag(h, l, rc)
    t.ok(rc == 0 and len(l) == 7 and l[2].startswith(b"+OK Logged in, 0 messages") and l[3] == b"+OK 0 0"
         and l[4] == b"+OK" and l[5].startswith(b"+OK Logging out"), "socket, half-close: every command answered", d)
    l, rc, secs = popd_socket(h, b"USER b\r\nPASS bad\r\nNOOP\r\nQUIT\r\n")
    d = diag(h, l, rc)
    t.ok(rc == 0 and len(l) == 6 and l[2].startswith(b"-ERR [AUTH]") and l[3].startswith(b"-ERR")
         and l[4] == b"+OK Bye", "socket, half-close, wrong password: every command answered", d)

    # -- as inetd starts it: the socket on stdin, stdout and stderr ----------
    # after a plaintext login exactly one process holds the client's
    # socket: the mail process, which the login process handed it to
    # before it exited (access.h); never the parent (root when
    # privileged), not even via stderr
    a, b = socket.socketpair()
    a.settimeout(LIMIT)
    p = subprocess.Popen([POPD, "-i", "-C", h.dir], stdin=b, stdout=b, stderr=b, env=h.env())
    target = "socket:[%d]" % os.fstat(b.fileno()).st_ino
    b.close()
    got = b""
    a.sendall(b"USER b\r\nPASS p\r\n")
    while got.count(b"\r\n") < 3:
        d = a.recv(1000)
        if not d:
            break
        got += d
    holders = wait_until(lambda: (lambda x: x if len(x) == 1 else None)(fd_owners(target)), 5) or fd_owners(target)
    kids = descendants(p.pid)
    t.ok(b"+OK Logged in" in got, "inetd: logged in", got)
    t.is_(_readlink("/proc/%d/fd/2" % p.pid), "/dev/null", "inetd: the parent's stderr is not the client")
    if not holders and os.geteuid() != 0:
        # popd's processes make themselves non-dumpable, which gives
        # their /proc/PID/fd to root: only root can look
        t.skip("inetd: only the mail process holds the client socket", "needs root to read /proc/PID/fd")
    else:
        kids = wait_until(lambda: (lambda k: k if len(k) == 1 else None)(descendants(p.pid)), 5) or kids
        t.ok(len(kids) == 1 and len(holders) == 1 and holders[0] in kids and p.pid not in holders,
             "inetd: only the mail process holds the client socket after login (the login process is gone)",
             "parent %d, children %r, holders %r" % (p.pid, kids, holders))
    a.sendall(b"QUIT\r\n")
    rest = b""
    try:
        while True:
            d = a.recv(1000)
            if not d:
                break
            rest += d
    except socket.timeout:
        rest += b"<timeout>"
    t.ok(rest.startswith(b"+OK Logging out") and rest.endswith(b"\r\n"), "inetd: QUIT, then the end", rest)
    a.close()
    try:
        p.wait(LIMIT)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)
    t.is_(p.returncode, 0, "inetd: popd -i exits 0")

    # -- the mailbox is in use: the -ERR [IN-USE] reaches the client --------
    # (the mail process ends at once, the pipelined rest has nowhere to go)
    hold = subprocess.Popen([POPD, "-i", "-C", h.dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=h.env())
    hold.stdin.write(b"USER a\r\nPASS p\r\n")
    hold.stdin.flush()
    first = b""
    end = time.time() + LIMIT
    while b"Logged in" not in first and time.time() < end:
        first += os.read(hold.stdout.fileno(), 1000)
    ok = 0
    for i in range(10):
        l, rc, secs, err = popd_pipe(h, b"USER a\r\nPASS p\r\n" + b"NOOP\r\n" * 2000 + b"QUIT\r\n")
        ok += rc == 0 and len(l) == 4 and l[2].startswith(b"-ERR [IN-USE]")
    t.is_(ok, 10, "mailbox in use: -ERR [IN-USE] every time, despite pipelined input", diag(h, l, rc, err))
    hold.stdin.write(b"QUIT\r\n")
    hold.stdin.close()
    try:
        hold.wait(LIMIT)
    except subprocess.TimeoutExpired:
        hold.kill()
        hold.wait(5)
    t.is_(hold.returncode, 0, "the session holding the mailbox ends with QUIT")
t.done()
