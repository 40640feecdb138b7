"""
smtptest: helpers for the smtpd end-to-end tests (t/e2e/smtpd_*.py).

    from smtptest import smtp_instance, Client
    with smtp_instance(users=["alice"]) as h:
        c = Client(h.smtp_port)
        code, text = c.reply()          # the banner
        code, lines = c.cmd("EHLO client.test")

smtp_instance() makes an Instance (hermodtest) whose master.conf runs
smtpd on the smtp (port_base+25), submission (port_base+87, AUTH
required) and smtps (port_base+65, implicit TLS) listeners, plus any
extra listeners given as {offset: "-o name=value ..."}: until `hermod
init` writes these lines itself, the commented-out lines it leaves are
enabled here.  An authd line is added when the build tree has authd and
init did not write one, and a self-signed certificate is made with the
openssl command when init did not make one.

Client is a raw SMTP client over a socket (optionally TLS) that reads
whole multi-line replies, with a timeout on every read: the tests need
to send bytes that smtplib refuses to send (bare LF, pipelined bursts,
overlong lines).
"""
import os
import re
import socket
import ssl
import subprocess
import time

from hermodtest import Instance, prog, wait_until

# headers hermod adds on the way into a mailbox (the rest must be byte-exact)
ADDED_HEADERS = (b"return-path", b"delivered-to", b"received", b"x-original-to")


def have_prog(name):
    try:
        prog(name)
        return True
    except FileNotFoundError:
        return False


def _master_conf_enable(h, extra):
    """Enable smtpd listeners (and authd) in h's master.conf."""
    path = os.path.join(h.dir, "master.conf")
    with open(path) as f:
        lines = f.read().splitlines()
    out = []
    have = {}
    for ln in lines:
        m = re.match(r"^\s*#?\s*(smtp|submission|smtps)\s+(\S+)\s+inet\s", ln)
        if m and m.group(2).startswith("127.0.0.1:"):
            name = m.group(1)
            ln = ln.lstrip().lstrip("#")
            if name == "submission" and "smtpd_sasl_auth_required" not in ln:
                ln += " -o smtpd_sasl_auth_required=yes"
            if name == "smtps" and "smtpd_tls_wrappermode" not in ln:
                ln += " -o smtpd_tls_wrappermode=yes"
            have[name] = True
        if re.match(r"^\s*authd\s", ln):
            have["authd"] = True
        out.append(ln)
    pb = h.port_base
    defaults = {"smtp": (25, ""), "submission": (87, "-o smtpd_sasl_auth_required=yes"),
                "smtps": (65, "-o smtpd_tls_wrappermode=yes")}
    for name, (off, args) in defaults.items():
        if name not in have:
            out.append("%-11s 127.0.0.1:%d inet n - smtpd %s" % (name, pb + off, args))
    if "authd" not in have and have_prog("authd"):
        out.append("authd       private/authd   unix y       4     authd")
    for off, args in sorted((extra or {}).items()):
        args = args.replace("{dir}", h.dir)
        out.append("smtpx%-6d 127.0.0.1:%d inet n - smtpd %s" % (off, pb + off, args))
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def _ensure_cert(h):
    """A self-signed certificate where tls_cert_file/tls_key_file say, if
    hermod init did not make one."""
    p = h.hermod("config", "tls_cert_file", "tls_key_file", check=False)
    vals = {}
    for ln in p.stdout.decode(errors="replace").splitlines():
        if "=" in ln:
            k, v = ln.split("=", 1)
            vals[k.strip()] = v.strip()
    cert = vals.get("tls_cert_file") or os.path.join(h.dir, "tls", "cert.pem")
    key = vals.get("tls_key_file") or os.path.join(h.dir, "tls", "key.pem")
    if os.path.exists(cert) and os.path.exists(key):
        return
    os.makedirs(os.path.dirname(cert), exist_ok=True)
    os.makedirs(os.path.dirname(key), exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "30", "-subj", "/CN=mail.example.test"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=60)
    os.chmod(key, 0o600)


def port_open(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), 1)
        s.close()
        return True
    except OSError:
        return False


def smtp_instance(users=("alice", "bob"), conf=None, extra=None, setup=None):
    """A started Instance with smtpd listeners; extra = {port offset: args}
    ("{dir}" in args is the instance folder); setup(h) runs before start."""
    h = Instance(users=users, conf=conf, start=False)
    _master_conf_enable(h, extra)
    _ensure_cert(h)
    if setup:
        setup(h)
    h.smtp_port = h.port_base + 25
    h.submission_port = h.port_base + 87
    h.smtps_port = h.port_base + 65
    h.start()
    if not wait_until(lambda: port_open(h.smtp_port), 15):
        raise RuntimeError("smtpd port %d not open:\n%s" % (h.smtp_port, h.log()[-3000:]))
    try:
        c = Client(h.smtp_port, timeout=15)
        code, text = c.reply()
        c.close()
    except OSError as e:
        code, text = -1, [repr(e)]
    if code != 220:
        log = h.log()[-3000:]
        h.close()
        raise RuntimeError("no SMTP banner on port %d (%d %r):\n%s" % (h.smtp_port, code, text, log))
    return h


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Client:
    """A raw SMTP client.  reply() returns (code, [text lines]) with
    code -1 on timeout or EOF; every read has a timeout."""

    def __init__(self, port, timeout=10, tls=False, host="127.0.0.1"):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout)
        if tls:
            self.sock = client_ctx().wrap_socket(self.sock)
            self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self, timeout):
        end = time.time() + timeout
        while b"\n" not in self.buf:
            left = end - time.time()
            if left <= 0 or self.eof:
                return None
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLError, OSError):
                return None
            if not d:
                self.eof = True
                return None
            self.buf += d
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln

    def reply(self, timeout=None):
        """One whole reply: (code, [lines without the code]); (-1, [...]) on timeout/EOF."""
        timeout = self.timeout if timeout is None else timeout
        lines = []
        code = -1
        while True:
            ln = self._line(timeout)
            if ln is None:
                return -1, lines
            ln = ln.rstrip(b"\r").decode("utf-8", "replace")
            if not re.match(r"^\d\d\d[ -]", ln + " "):
                lines.append("BAD:" + ln)
                return -2, lines
            code = int(ln[:3])
            lines.append(ln[4:])
            if len(ln) < 4 or ln[3] == " ":
                return code, lines

    def cmd(self, line, timeout=None):
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.reply(timeout)

    def ehlo(self, name="client.example.test"):
        return self.cmd("EHLO " + name)

    def starttls(self):
        code, text = self.cmd("STARTTLS")
        if code != 220:
            return code, text
        self.sock.settimeout(self.timeout)
        self.sock = client_ctx().wrap_socket(self.sock)
        self.buf = b""
        return code, text

    def bdat(self, chunk, last=False, timeout=None):
        """BDAT len(chunk) [LAST] followed by the chunk; its reply."""
        self.send(b"BDAT %d%s\r\n" % (len(chunk), b" LAST" if last else b"") + chunk)
        return self.reply(timeout)

    def auth_plain(self, user, password):
        import base64
        tok = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        return self.cmd("AUTH PLAIN " + tok, timeout=max(self.timeout, 15))

    def closed(self, timeout=3):
        """True when the server closes the connection within timeout."""
        end = time.time() + timeout
        while time.time() < end:
            self.sock.settimeout(max(0.05, end - time.time()))
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ssl.SSLError, OSError):
                return True
            if not d:
                return True
            self.buf += d
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def keywords(lines):
    """EHLO reply lines -> {KEYWORD: "params"} (the first line is the greeting)."""
    out = {}
    for ln in lines[1:]:
        parts = ln.split(None, 1)
        if parts:
            out[parts[0].upper()] = parts[1] if len(parts) > 1 else ""
    return out


def enhanced(lines):
    """The RFC 3463 enhanced status code at the start of a reply text, or None."""
    if not lines:
        return None
    m = re.match(r"^([245]\.\d{1,3}\.\d{1,3})\b", lines[0])
    return m.group(1) if m else None


def transaction(c, sender, rcpts, body, helo=True):
    """MAIL/RCPT/DATA one message on client c.  body: bytes with CRLF line
    ends, already dot-stuffed.  Returns a list of (stage, code, lines)."""
    out = []
    if helo:
        out.append(("EHLO",) + c.ehlo())
    out.append(("MAIL",) + c.cmd("MAIL FROM:<%s>" % sender))
    for r in rcpts:
        out.append(("RCPT",) + c.cmd("RCPT TO:<%s>" % r))
    code, lines = c.cmd("DATA")
    out.append(("DATA",) + (code, lines))
    if code == 354:
        c.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        out.append(("END",) + c.reply(60))
    return out


def strip_added(delivered):
    """Split a delivered message into (the leading header fields hermod
    added, the rest).  The added ones are Return-Path, Delivered-To and
    Received (with their continuation lines) at the very top."""
    pos = 0
    while pos < len(delivered):
        eol = delivered.find(b"\n", pos)
        if eol < 0:
            break
        line = delivered[pos:eol]
        name = line.split(b":", 1)[0].strip().lower() if b":" in line else None
        if name not in ADDED_HEADERS:
            break
        pos = eol + 1
        # continuation lines
        while pos < len(delivered) and delivered[pos:pos + 1] in (b" ", b"\t"):
            eol = delivered.find(b"\n", pos)
            if eol < 0:
                pos = len(delivered)
                break
            pos = eol + 1
    return delivered[:pos], delivered[pos:]


def log_lines(h, pattern, n=40):
    """The last n lines of h's log that match the regular expression."""
    rx = re.compile(pattern)
    return "\n".join([ln for ln in h.log().splitlines() if rx.search(ln)][-n:])


def same_content(rest, original):
    """True when the delivered rest (after strip_added) is the original
    message: byte-exact with its CRLF line ends as LF (the mailbox's
    convention) or as sent."""
    return rest == original.replace(b"\r\n", b"\n") or rest == original


def smtpd_log(h, n=30):
    return log_lines(h, r"smtpd|master", n)
