"""
imaptest: the IMAP client helpers the imapd tests share (t/e2e/imapd_*.py):
a raw-socket client that keeps the untagged responses of each command, a
small parser of IMAP response data (lists, strings, literals), FETCH
response splitting, and the master.conf lines that enable imapd.
"""
import os
import re
import socket
import ssl
import time

from hermodtest import BUILDDIR

IMAPD = os.path.join(BUILDDIR, "imapd", "imapd")


def enable_imap(h):
    """imap and imaps listeners in master.conf (hermod init adds them when
    imapd is in daemon_directory; make sure either way)."""
    mc = os.path.join(h.dir, "master.conf")
    lines = [l for l in open(mc).read().splitlines() if not re.match(r"^#?\s*imaps?\s", l)]
    lines.append("imap 127.0.0.1:%d inet n - %s" % (h.port_base + 143, IMAPD))
    lines.append("imaps 127.0.0.1:%d inet n - %s -o imap_tls_wrappermode=yes" % (h.port_base + 993, IMAPD))
    open(mc, "w").write("\n".join(lines) + "\n")


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Raw:
    """A raw IMAP connection.  Responses are read whole: a line ending in
    a literal {n} is followed by the n bytes and the rest of the line, all
    kept in one bytes object (so parse() sees the literal)."""

    def __init__(self, port=None, sock=None, proc=None, timeout=15):
        self.proc = proc
        self.s = None
        if proc is None:
            self.s = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
            self.s.settimeout(timeout)
        self.buf = b""
        self.n = 0

    def _recv(self):
        d = os.read(self.proc.stdout.fileno(), 65536) if self.proc else self.s.recv(65536)
        if not d:
            raise EOFError("connection closed")
        if self.zd:
            self.wire_in += len(d)
            d = self.zd.decompress(d)
        self.buf += d

    zc = zd = None
    wire_in = wire_out = 0

    def start_compress(self, zc=None):
        """COMPRESS=DEFLATE (RFC 4978) from here on, both ways: raw
        DEFLATE, each send flushed.  What was read already after the OK
        is compressed too."""
        import zlib
        self.zc = zc or zlib.compressobj(6, zlib.DEFLATED, -15)
        self.zd = zlib.decompressobj(-15)
        self.wire_in += len(self.buf)
        self.buf = self.zd.decompress(self.buf)

    def send(self, data):
        if self.zc:
            import zlib
            data = self.zc.compress(data) + self.zc.flush(zlib.Z_SYNC_FLUSH)
            self.wire_out += len(data)
        if self.proc:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        else:
            self.s.sendall(data)

    def line(self):
        """One response line without CRLF, literals included."""
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                self._recv()
            l, self.buf = self.buf.split(b"\r\n", 1)
            m = re.search(rb"\{(\d+)\}$", l)
            if not m:
                return out + l
            n = int(m.group(1))
            while len(self.buf) < n:
                self._recv()
            out += l + b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]

    def tag(self):
        self.n += 1
        return "T%d" % self.n

    def response(self, tag):
        """(untagged lines, tagged line) up to the tagged reply of tag."""
        unt = []
        while True:
            l = self.line()
            if l.startswith(tag.encode() + b" "):
                return unt, l
            unt.append(l)

    def cmd(self, text):
        tag = self.tag()
        self.send(tag.encode() + b" " + (text.encode() if isinstance(text, str) else text) + b"\r\n")
        return self.response(tag)

    def ok(self, text):
        """The tagged line of a command without its tag."""
        unt, tl = self.cmd(text)
        return tl.split(b" ", 1)[1]

    def closed(self, timeout=5):
        if self.s:
            self.s.settimeout(timeout)
        try:
            while True:
                self._recv()
        except (EOFError, ConnectionResetError):
            return True
        except (socket.timeout, OSError):
            return False

    def close(self):
        if self.proc:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            self.proc.wait(10)
        elif self.s:
            self.s.close()


def login(port, user="alice", password="secret"):
    c = Raw(port)
    c.line()
    r = c.ok("LOGIN %s %s" % (user, password))
    if not r.startswith(b"OK"):
        raise RuntimeError("LOGIN %s: %r" % (user, r))
    return c


def parse(b, i=0):
    """IMAP data (a FETCH value, a LIST) to Python: lists, bytes for atoms,
    strings and literals, None for NIL.  Returns (value, next index)."""
    while i < len(b) and b[i:i + 1] == b" ":
        i += 1
    ch = b[i:i + 1]
    if ch == b"(":
        out = []
        i += 1
        while True:
            while b[i:i + 1] == b" ":
                i += 1
            if b[i:i + 1] == b")":
                return out, i + 1
            if i >= len(b):
                raise ValueError("unbalanced parentheses")
            v, i = parse(b, i)
            out.append(v)
    if ch == b'"':
        out = b""
        i += 1
        while b[i:i + 1] != b'"':
            if b[i:i + 1] == b"\\":
                i += 1
            out += b[i:i + 1]
            i += 1
        return out, i + 1
    if ch == b"{":
        j = b.index(b"}", i)
        n = int(b[i + 1:j].rstrip(b"+"))
        s = j + 3       # }\r\n
        return b[s:s + n], s + n
    j = i
    depth = 0
    while j < len(b):
        c = b[j:j + 1]
        if c == b"[":
            depth += 1
        elif c == b"]":
            depth -= 1
        elif depth == 0 and c in (b" ", b"(", b")"):
            break
        j += 1
    a = b[i:j]
    return (None if a.upper() == b"NIL" else a), j


def fetch_items(line):
    """'* 3 FETCH (UID 7 FLAGS (\\Seen))' -> (3, {b'UID': b'7', b'FLAGS': [...]})."""
    m = re.match(rb"\* (\d+) FETCH ", line)
    if not m:
        return None, None
    v, _ = parse(line, m.end())
    d = {}
    for k in range(0, len(v) - 1, 2):
        d[v[k].upper()] = v[k + 1]
    return int(m.group(1)), d


def fetches(unt):
    """{seq: items} of the FETCH lines of a response (items merged)."""
    out = {}
    for l in unt:
        n, d = fetch_items(l)
        if n is not None:
            out.setdefault(n, {}).update(d)
    return out


def crlf(b):
    """A stored (LF) message as IMAP sends it."""
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def uidset(b):
    """b"1:3,7" -> [1, 2, 3, 7]."""
    out = []
    for r in b.split(b","):
        a, _, z = r.partition(b":")
        a, z = int(a), int(z or a)
        out += list(range(min(a, z), max(a, z) + 1))
    return out


def untagged(unt, word):
    """Untagged lines whose first word after '* ' (or after the number) is word."""
    out = []
    for l in unt:
        p = l.split(b" ")
        if len(p) >= 2 and (p[1] == word or (len(p) >= 3 and p[2] == word)):
            out.append(l)
    return out
