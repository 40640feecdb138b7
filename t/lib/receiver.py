"""
receiver: SMTP and LMTP servers for hermod's outbound delivery tests,
asyncio in a thread, which answer as they are told and record everything.

    from receiver import Receiver
    r = Receiver(host="127.0.0.2", port=p)              # SMTP on TCP
    r = Receiver(unix="/tmp/x/lmtp.sock", lmtp=True)     # LMTP on a socket
    options (constructor keywords, also settable as attributes later):
      greeting  "220 ..." (or "421 busy" to refuse the connection)
      starttls  (certfile, keyfile) to offer STARTTLS, else None
      dsn       offer DSN (default True)
      pipelining offer PIPELINING (default True)
      size      SIZE limit to advertise (0: no SIZE)
      rcpt_reply  {address: reply} -- reply is "550 5.1.1 no" or a list
                  of replies used one per attempt (the last one repeats)
      mail_reply, data_reply  the same for MAIL FROM and the end of DATA
      lmtp_data_reply {address: reply} per-recipient replies after DATA
    r.connections: one dict per connection: peer, tls (bool), helo,
      transactions: [{"mail": "<a@b> SIZE=..", "sender": "a@b",
                      "rcpts": [("x@y", "NOTIFY=SUCCESS ...")],
                      "accepted": ["x@y"], "data": bytes}]
    r.messages(): all transactions that got their data accepted.
    r.close()

Lines end with CRLF; DATA is dot-unstuffed; the server enforces nothing
the tests do not ask for.  make_cert(dir) writes a self-signed
certificate with openssl(1) for STARTTLS.
"""
import asyncio
import os
import ssl
import subprocess
import threading
import time


def make_cert(d, cn="mx.test"):
    cert = os.path.join(d, "cert.pem")
    key = os.path.join(d, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "2", "-subj", "/CN=" + cn],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


class Receiver:
    def __init__(self, host="127.0.0.1", port=0, unix=None, lmtp=False, greeting=None,
                 starttls=None, dsn=True, pipelining=True, size=0, rcpt_reply=None,
                 mail_reply=None, data_reply=None, lmtp_data_reply=None, name="mx.test"):
        self.host, self.port, self.unix, self.lmtp = host, port, unix, lmtp
        self.name = name
        self.greeting = greeting
        self.starttls = starttls
        self.dsn, self.pipelining, self.size = dsn, pipelining, size
        self.rcpt_reply = dict(rcpt_reply or {})
        self.mail_reply = mail_reply
        self.data_reply = data_reply
        self.lmtp_data_reply = dict(lmtp_data_reply or {})
        self.connections = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("receiver did not start")
        if self.error:
            raise self.error

    # -- bookkeeping -----------------------------------------------------
    def messages(self):
        with self.lock:
            return [t for c in self.connections for t in c["transactions"] if t.get("data") is not None]

    def rcpts_delivered(self):
        out = []
        for t in self.messages():
            out += t["accepted"]
        return out

    def wait_messages(self, n, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            if len(self.messages()) >= n:
                return self.messages()
            time.sleep(0.05)
        return self.messages()

    @staticmethod
    def _pick(reply):
        if isinstance(reply, list):
            return reply.pop(0) if len(reply) > 1 else reply[0]
        return reply

    # -- server ------------------------------------------------------------
    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.error = None
        try:
            if self.unix:
                self.server = self.loop.run_until_complete(
                    asyncio.start_unix_server(self._session, path=self.unix))
            else:
                self.server = self.loop.run_until_complete(
                    asyncio.start_server(self._session, self.host, self.port, reuse_address=True))
                self.port = self.server.sockets[0].getsockname()[1]
        except Exception as e:
            self.error = e
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()

    async def _session(self, reader, writer):
        conn = {"peer": writer.get_extra_info("peername"), "tls": False, "helo": None,
                "transactions": [], "commands": []}
        with self.lock:
            self.connections.append(conn)

        async def send(line):
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        try:
            g = self.greeting or "220 %s ESMTP test receiver" % self.name
            await send(g)
            if not g.startswith("220"):
                writer.close()
                return
            tr = None
            while True:
                line = await reader.readline()
                if not line:
                    break
                cmd = line.decode(errors="replace").rstrip("\r\n")
                conn["commands"].append(cmd)
                verb = cmd.split(" ", 1)[0].upper()
                arg = cmd[len(verb):].strip()
                if verb in ("EHLO", "LHLO") or (verb == "HELO" and not self.lmtp):
                    if (verb == "LHLO") != self.lmtp:
                        await send("500 5.5.1 wrong greeting command")
                        continue
                    conn["helo"] = arg
                    tr = None
                    if verb == "HELO":
                        await send("250 %s" % self.name)
                        continue
                    ext = ["8BITMIME", "ENHANCEDSTATUSCODES"]
                    if self.pipelining:
                        ext.append("PIPELINING")
                    if self.dsn:
                        ext.append("DSN")
                    if self.size:
                        ext.append("SIZE %d" % self.size)
                    if self.starttls and not conn["tls"]:
                        ext.append("STARTTLS")
                    lines = [self.name] + ext
                    for i, l in enumerate(lines):
                        await send("250%s%s" % ("-" if i < len(lines) - 1 else " ", l))
                elif verb == "STARTTLS" and self.starttls and not conn["tls"]:
                    await send("220 2.0.0 go ahead")
                    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                    ctx.load_cert_chain(*self.starttls)
                    await writer.start_tls(ctx)
                    conn["tls"] = True
                    conn["helo"] = None
                    tr = None
                elif verb == "MAIL":
                    if conn["helo"] is None:
                        await send("503 5.5.1 EHLO first")
                        continue
                    r = self._pick(self.mail_reply) if self.mail_reply else None
                    if r and not r.startswith("2"):
                        await send(r)
                        continue
                    sender = arg.split(":", 1)[1].strip() if ":" in arg else ""
                    addr = sender.split(">", 1)[0].lstrip("<") if sender.startswith("<") else sender
                    tr = {"mail": sender, "sender": addr, "rcpts": [], "accepted": [], "data": None,
                          "replies": {}}
                    conn["transactions"].append(tr)
                    await send(r or "250 2.1.0 ok")
                elif verb == "RCPT":
                    if tr is None:
                        await send("503 5.5.1 MAIL first")
                        continue
                    rest = arg.split(":", 1)[1].strip() if ":" in arg else ""
                    addr = rest.split(">", 1)[0].lstrip("<")
                    params = rest.split(">", 1)[1].strip() if ">" in rest else ""
                    tr["rcpts"].append((addr, params))
                    r = self.rcpt_reply.get(addr) or self.rcpt_reply.get(addr.lower())
                    r = self._pick(r) if r else "250 2.1.5 ok"
                    if r.startswith("2"):
                        tr["accepted"].append(addr)
                    tr["replies"][addr] = r
                    await send(r)
                elif verb in ("DATA", "BDAT"):
                    if verb == "BDAT":
                        await send("502 5.5.1 no BDAT")
                        continue
                    if tr is None or not tr["accepted"]:
                        await send("554 5.5.1 no valid recipients")
                        continue
                    await send("354 go ahead")
                    body = []
                    while True:
                        l = await reader.readline()
                        if not l:
                            return
                        if l == b".\r\n":
                            break
                        if l.startswith(b"."):
                            l = l[1:]
                        body.append(l)
                    data = b"".join(body)
                    if self.lmtp:
                        for a in tr["accepted"]:
                            r = self.lmtp_data_reply.get(a)
                            r = self._pick(r) if r else "250 2.0.0 <%s> delivered" % a
                            if r.startswith("2"):
                                tr.setdefault("delivered", []).append(a)
                            await send(r)
                        if tr.get("delivered"):
                            tr["data"] = data
                        tr["accepted"] = tr.get("delivered", [])
                    else:
                        r = self._pick(self.data_reply) if self.data_reply else "250 2.0.0 queued"
                        if r.startswith("2"):
                            tr["data"] = data
                        await send(r)
                    tr = None
                elif verb == "RSET":
                    tr = None
                    await send("250 2.0.0 ok")
                elif verb == "NOOP":
                    await send("250 2.0.0 ok")
                elif verb == "QUIT":
                    await send("221 2.0.0 bye")
                    break
                else:
                    await send("502 5.5.2 command not recognized")
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    def close(self):
        def stop():
            self.server.close()
            self.loop.stop()
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(stop)
        self.thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def free_port(hosts):
    """A TCP port free on every address in hosts (127.0.0.x)."""
    import socket
    from hermodtest import random_port_base
    for _ in range(200):
        port = random_port_base(step=1, span=1)
        ok = True
        for h in hosts:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((h, port))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            return port
    raise RuntimeError("no free port")


def enable_smtp_agent(h, limit=20):
    """Add the smtp agent to an instance's master.conf (before start)."""
    path = os.path.join(h.dir, "master.conf")
    with open(path) as f:
        text = f.read()
    if not any(l.split()[1:2] == ["private/smtp"] for l in text.splitlines() if not l.startswith("#")):
        with open(path, "a") as f:
            f.write("smtp-out    private/smtp    unix y       %d    smtp\n" % limit)


def outbound_conf(dns_port, smtp_port, **extra):
    """hermod.conf settings of an instance that sends to the test servers."""
    c = {"dns_resolvers": "127.0.0.1:%d" % dns_port, "smtp_destination_port": str(smtp_port),
         "minimal_backoff_time": "1s", "maximal_backoff_time": "2s", "queue_run_delay": "1s",
         "smtp_connect_timeout": "5s", "dns_timeout": "5s"}
    c.update(extra)
    return c
