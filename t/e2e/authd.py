"""
authd: what `hermod init` sets up for it (the authd service line, the
self-signed certificate, the network services enabled only when their
program exists) and the daemon itself over private/authd, speaking the
record protocol of lib/proto.h directly: virtual users (ok, wrong
password, unknown user, case-insensitive names), several requests on one
connection, malformed requests that close only that connection, the log
line (and never the password in it); as root, system users from shadow
(ok with the mbox path, locked, expired, uid 0 refused).
"""
import os
import pwd
import re
import socket
import stat
import struct
import subprocess
import time

from hermodtest import BUILDDIR, TAP, Instance, SystemUser, wait_until

AUTH_REQ, AUTH_REPLY, USER_REQ, USER_REPLY = 9, 10, 11, 12


def frame(typ, fields, version=1, magic=b"HM"):
    payload = b"".join(struct.pack(">I", len(f)) + f for f in fields)
    return magic + bytes([version, typ]) + struct.pack(">II", len(fields), len(payload)) + payload


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            return None
        out += d
    return out


def read_msg(s):
    """(type, [fields]) or None on EOF."""
    h = recv_exact(s, 12)
    if h is None:
        return None
    assert h[:2] == b"HM", h
    typ = h[3]
    nf, plen = struct.unpack(">II", h[4:12])
    payload = recv_exact(s, plen) if plen else b""
    fields, i = [], 0
    for _ in range(nf):
        (n,) = struct.unpack(">I", payload[i:i + 4])
        fields.append(payload[i + 4:i + 4 + n].decode(errors="replace"))
        i += 4 + n
    return typ, fields


def b(x):
    return x if isinstance(x, bytes) else x.encode()


class Authd:
    def __init__(self, h):
        self.path = os.path.join(h.spool, "private", "authd")
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(20)
        self.s.connect(self.path)

    def ask(self, user, password, service="smtpd", client="192.0.2.1"):
        self.s.sendall(frame(AUTH_REQ, [b(service), b(user), b(password), b(client)]))
        return read_msg(self.s)

    def user(self, name, service="smtpd"):
        self.s.sendall(frame(USER_REQ, [b(service), b(name)]))
        return read_msg(self.s)

    def raw(self, data):
        self.s.sendall(data)
        try:
            return read_msg(self.s)
        except (ConnectionResetError, socket.timeout):
            return None

    def close(self):
        self.s.close()


def ask(h, *a, **kw):
    c = Authd(h)
    try:
        return c.ask(*a, **kw)
    finally:
        c.close()


def ask_user(h, name):
    c = Authd(h)
    try:
        return c.user(name)
    finally:
        c.close()


def have(name, sub):
    p = os.path.join(BUILDDIR, sub, name)
    return os.path.isfile(p) and os.access(p, os.X_OK)


t = TAP()
with Instance(users=["alice", "bob"], password="secret") as h:
    privileged = os.geteuid() == 0

    # -- what init made ----------------------------------------------------
    cert = os.path.join(h.dir, "tls", "cert.pem")
    key = os.path.join(h.dir, "tls", "key.pem")
    t.ok(os.path.isfile(cert) and os.path.isfile(key), "init made tls/cert.pem and tls/key.pem")
    t.is_(stat.S_IMODE(os.stat(key).st_mode), 0o600, "the key is mode 0600")
    host = h.hermod("config", "myhostname").stdout.decode().split("=", 1)[-1].strip()
    p = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-subject", "-ext", "subjectAltName"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.decode()
    t.ok(p.returncode == 0 and re.search(r"CN\s*=\s*%s\b" % re.escape(host), out),
         "certificate subject CN = myhostname (%s)" % host, out)
    t.ok("DNS:%s" % host in out, "subjectAltName DNS:%s" % host, out)
    p = subprocess.run("openssl x509 -in %s -noout -pubkey | openssl md5; openssl pkey -in %s -pubout | openssl md5"
                       % (cert, key), shell=True, stdout=subprocess.PIPE)
    lines = p.stdout.decode().splitlines()
    t.ok(len(lines) == 2 and lines[0] == lines[1], "key matches the certificate")

    with open(os.path.join(h.dir, "master.conf")) as f:
        mc = f.read()
    t.ok(re.search(r"^authd\s+private/authd\s+unix\s+y\s+4\s+authd\s*$", mc, re.M), "master.conf runs authd", mc)
    pb = h.port_base
    for name, port, prog, sub, args in (
            ("smtp", pb + 25, "smtpd", "mta", ""),
            ("submission", pb + 87, "smtpd", "mta", "-o smtpd_sasl_auth_required=yes"),
            ("smtps", pb + 65, "smtpd", "mta", "-o smtpd_tls_wrappermode=yes"),
            ("pop3", pb + 110, "popd", "popd", ""),
            ("pop3s", pb + 995, "popd", "popd", "-o pop3_tls_wrappermode=yes"),
            ("imap", pb + 143, "imapd", "imapd", ""),
            ("imaps", pb + 993, "imapd", "imapd", "-o imap_tls_wrappermode=yes")):
        want_on = have(prog, sub)
        pat = r"^%s%s\s+127\.0\.0\.1:%d\s+inet\s+n\s+-\s+%s\s*%s\s*$" % (
            "" if want_on else "#", name, port, prog, re.escape(args))
        t.ok(re.search(pat, mc, re.M), "master.conf: %s on %d %s" % (
            name, port, "enabled" if want_on else "commented out (no %s yet)" % prog), mc)
    t.ok(re.search(r"^#xmpp\s", mc, re.M), "xmpp stays commented out (no xmppgw yet)")

    # -- virtual users -----------------------------------------------------
    if privileged:
        owner = pwd.getpwnam("hermod")
        vuid, vgid = owner.pw_uid, owner.pw_gid
    else:
        vuid, vgid = os.getuid(), os.getgid()
    r = ask(h, "alice", "secret")
    t.ok(r is not None and r[0] == AUTH_REPLY, "a reply record", r)
    t.is_(r and r[1][0], "ok", "alice with the right password: ok")
    want = ["ok", "alice", str(vuid), str(vgid), os.path.join(h.dir, "mail", "alice"), "maildir",
            os.path.join(h.dir, "mail", "alice", "Maildir") + "/"]
    t.is_(r and r[1][:7], want, "name, uid, gid, home, maildir, path")
    r = ask(h, "ALICE", "secret")
    t.is_(r and r[1][:2], ["ok", "alice"], "names are case-insensitive; the canonical name comes back")
    r = ask(h, "alice", "wrong")
    t.is_(r and r[1][0], "fail", "wrong password: fail")
    t.is_(r and len(r[1]), 8, "a fail reply has every field")
    t.is_(r and r[1][1:7], [""] * 6, "and says nothing about the user")
    r = ask(h, "nosuchuser", "secret")
    t.is_(r and r[1][0], "fail", "unknown user: fail")
    r = ask(h, "alice", "secret\0more")
    t.is_(r and r[1][0], "fail", "a password with a NUL: fail")
    r = ask(h, "alice", "")
    t.is_(r and r[1][0], "fail", "an empty password: fail")
    r = ask(h, "al:ice", "secret")
    t.is_(r and r[1][0], "fail", "a user name with ':': fail")

    c = Authd(h)
    rs = [c.ask("alice", "secret"), c.ask("bob", "nope"), c.ask("bob", "secret", service="popd")]
    t.is_([x and x[1][:2] for x in rs], [["ok", "alice"], ["fail", ""], ["ok", "bob"]],
          "several requests on one connection")
    c.close()

    # -- the user question (smtpd's recipient check) ----------------------------
    c = Authd(h)
    for name, want in (("alice", "ok"), ("BOB", "ok"), ("nosuchuser", "fail"), ("al:ice", "fail"),
                       ("a b", "fail"), ("", "fail"), ("x" * 300, "fail")):
        r = c.user(name)
        t.is_(r, (USER_REPLY, [want]), "user %r: %s" % (name[:20], want))
    t.is_(c.ask("alice", "secret")[1][0], "ok", "a login on the same connection after user questions")
    c.close()
    h.add_user("carol", "pw")
    t.is_(ask_user(h, "carol"), (USER_REPLY, ["ok"]), "a virtual user added while authd runs: ok at once")
    for what, data in (("one field", frame(USER_REQ, [b"smtpd"])),
                       ("three fields", frame(USER_REQ, [b"smtpd", b"alice", b"x"])),
                       ("bad service name", frame(USER_REQ, [b"smtpd ", b"alice"])),
                       ("huge name", frame(USER_REQ, [b"smtpd", b"a" * 5000]))):
        c = Authd(h)
        r = c.raw(data)
        t.ok(r is None, "user question, %s: the connection is closed without a reply" % what, r)
        c.close()

    # -- malformed requests close that connection only ------------------------
    for what, data in (
            ("garbage", b"HELLO authd\r\n" * 4),
            ("bad magic", frame(AUTH_REQ, [b"smtpd", b"alice", b"secret", b""], magic=b"XX")),
            ("bad version", frame(AUTH_REQ, [b"smtpd", b"alice", b"secret", b""], version=9)),
            ("wrong type", frame(1, [b"smtpd", b"alice", b"secret", b""])),
            ("three fields", frame(AUTH_REQ, [b"smtpd", b"alice", b"secret"])),
            ("five fields", frame(AUTH_REQ, [b"smtpd", b"alice", b"secret", b"", b""])),
            ("bad service name", frame(AUTH_REQ, [b"smtpd\n", b"alice", b"secret", b""])),
            ("huge user", frame(AUTH_REQ, [b"smtpd", b"a" * 5000, b"secret", b""])),
            ("lying length", b"HM\x01\x09" + struct.pack(">II", 4, 1000) + b"\0\0\0\x05smtpd")):
        c = Authd(h)
        if what == "lying length":
            c.s.sendall(data)
            c.s.shutdown(socket.SHUT_WR)
            r = read_msg(c.s)
        else:
            r = c.raw(data)
        t.ok(r is None, "%s: the connection is closed without a reply" % what, r)
        c.close()
    r = ask(h, "alice", "secret")
    t.is_(r and r[1][0], "ok", "authd still answers afterwards")

    # -- the log -------------------------------------------------------------
    wait_until(lambda: "user=nosuchuser" in h.log(), 5)
    log = h.log()
    t.ok(re.search(r"authd\[\d+\]: service=smtpd user=alice client=192\.0\.2\.1: ok", log), "log: ok line", log[-2000:])
    t.ok(re.search(r"authd\[\d+\]: service=smtpd user=alice client=192\.0\.2\.1: fail \(wrong password\)", log),
         "log: fail line (wrong password)")
    # rootless, authd cannot check system users, so it cannot tell which
    why = "unknown user" if os.geteuid() == 0 else "unknown user or wrong password"
    t.ok(re.search(r"service=smtpd user=nosuchuser client=192\.0\.2\.1: fail \(%s\)" % re.escape(why), log),
         "log: fail line (%s)" % why, log[-2000:])
    t.ok(re.search(r"service=popd user=bob client=192\.0\.2\.1: ok", log), "log: the service is named")
    t.ok("secret" not in log and "wrong" not in log.replace("wrong password", ""), "the password is never logged")
    t.ok("dropping a client" in log, "malformed requests are logged")

    # -- system users (privileged instances only) ---------------------------
    if privileged:
        with SystemUser() as su:
            subprocess.run(["chpasswd"], input=("%s:Sys-pass-1\n" % su.name).encode(), check=True)
            t.is_(ask_user(h, su.name), (USER_REPLY, ["ok"]), "user question: a system user: ok")
            t.is_(ask_user(h, "root"), (USER_REPLY, ["ok"]), "user question: root has a mailbox too (uid 0 only may not log in)")
            r = ask(h, su.name, "Sys-pass-1", service="popd")
            t.is_(r and r[1][:7], ["ok", su.name, str(su.pw.pw_uid), str(su.pw.pw_gid), su.pw.pw_dir, "mbox",
                                   "/var/mail/" + su.name], "system user: ok, mbox in /var/mail", r)
            r = ask(h, su.name, "Sys-pass-2")
            t.is_(r and r[1][0], "fail", "system user, wrong password: fail")
            subprocess.run(["usermod", "-L", su.name], check=True)
            r = ask(h, su.name, "Sys-pass-1")
            t.is_(r and r[1][0], "fail", "locked account: fail")
            subprocess.run(["usermod", "-U", su.name], check=True)
            r = ask(h, su.name, "Sys-pass-1")
            t.is_(r and r[1][0], "ok", "unlocked again: ok")
            subprocess.run(["chage", "-E", "1", su.name], check=True)
            r = ask(h, su.name, "Sys-pass-1")
            t.is_(r and r[1][0], "fail", "expired account: fail")
            subprocess.run(["chage", "-E", "-1", su.name], check=True)
            h.set_conf({"home_mailbox": "Maildir/"})
            h.stop()
            h.start()
            r = ask(h, su.name, "Sys-pass-1")
            t.is_(r and r[1][5:7], ["maildir", su.pw.pw_dir.rstrip("/") + "/Maildir/"],
                  "home_mailbox = Maildir/: ~/Maildir/")
        r = ask(h, "root", "anything")
        t.is_(r and r[1][0], "fail", "root: fail")
        wait_until(lambda: "uid 0 may not log in" in h.log(), 5)
        t.ok("uid 0 may not log in" in h.log(), "root refused as uid 0")
        t.ok(re.search(r"user=%s .*: fail \(account locked" % su.name, h.log()), "log: locked")
        t.ok(re.search(r"user=%s .*: fail \(account expired" % su.name, h.log()), "log: expired")
        t.ok("Sys-pass" not in h.log(), "no system password in the log")
    else:
        me = pwd.getpwuid(os.getuid()).pw_name
        r = ask(h, me, "whatever")
        t.is_(r and r[1][0], "fail", "rootless: system users are not served")
        t.is_(ask_user(h, me), (USER_REPLY, ["ok"]), "user question, rootless: the instance user has a mailbox")
        t.is_(ask_user(h, "root"), (USER_REPLY, ["fail"]), "user question, rootless: other system users do not")
t.done()
