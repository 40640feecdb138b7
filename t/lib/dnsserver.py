"""
dnsserver: a loopback DNS server for hermod's outbound delivery tests.

    from dnsserver import DNSServer
    dns = DNSServer({
        "b.test":     {"MX": [(10, "mx1.b.test"), (20, "mx2.b.test")]},
        "mx1.b.test": {"A": ["127.0.0.2"]},
        "mx2.b.test": {"A": ["127.0.0.3"]},
        "c.test":     {"A": ["127.0.0.4"]},          # implicit MX
        "null.test":  {"MX": [(0, ".")]},            # null MX (RFC 7505)
        "fail.test":  "SERVFAIL",
    })
    ... dns_resolvers = 127.0.0.1:%d % dns.port ...
    dns.close()

Names not in the table answer NXDOMAIN; a name in the table without
the asked type answers NOERROR with no records (NODATA).  UDP and TCP on
127.0.0.1, the same port, served from a thread.  dns.queries records
(name, type) of every question.  The table may be changed while running.
"""
import socket
import socketserver
import struct
import threading

from dnslib import AAAA, A, CNAME, MX, QTYPE, RCODE, RR, DNSRecord, TXT


class DNSServer:
    def __init__(self, table=None, ttl=60):
        self.table = {k.lower().rstrip("."): v for k, v in (table or {}).items()}
        self.ttl = ttl
        self.queries = []
        self.lock = threading.Lock()
        outer = self

        class UDPHandler(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                reply = outer.answer(data)
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class TCPHandler(socketserver.BaseRequestHandler):
            def handle(self):
                sock = self.request
                sock.settimeout(5)
                try:
                    while True:
                        hdr = self._recv(sock, 2)
                        if not hdr:
                            return
                        (n,) = struct.unpack("!H", hdr)
                        data = self._recv(sock, n)
                        if data is None:
                            return
                        reply = outer.answer(data)
                        if reply is None:
                            return
                        sock.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    return

            @staticmethod
            def _recv(sock, n):
                out = b""
                while len(out) < n:
                    chunk = sock.recv(n - len(out))
                    if not chunk:
                        return None
                    out += chunk
                return out

        class UDP(socketserver.ThreadingUDPServer):
            allow_reuse_address = True
            daemon_threads = True

        class TCP(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        # the same free port for UDP and TCP
        for _ in range(50):
            self.udp = UDP(("127.0.0.1", 0), UDPHandler)
            self.port = self.udp.server_address[1]
            try:
                self.tcp = TCP(("127.0.0.1", self.port), TCPHandler)
                break
            except OSError:
                self.udp.server_close()
        else:
            raise RuntimeError("no free port for the DNS server")
        self.threads = []
        for srv in (self.udp, self.tcp):
            t = threading.Thread(target=srv.serve_forever, daemon=True)
            t.start()
            self.threads.append(t)

    def set(self, name, value):
        with self.lock:
            self.table[name.lower().rstrip(".")] = value

    def answer(self, data):
        try:
            req = DNSRecord.parse(data)
        except Exception:
            return None
        reply = req.reply()
        q = req.q
        name = str(q.qname).lower().rstrip(".")
        qtype = QTYPE[q.qtype]
        with self.lock:
            self.queries.append((name, qtype))
            entry = self.table.get(name)
        if entry is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply.pack()
        if entry == "SERVFAIL":
            reply.header.rcode = RCODE.SERVFAIL
            return reply.pack()
        if entry == "DROP":
            return None
        if "CNAME" in entry:
            reply.add_answer(RR(q.qname, QTYPE.CNAME, rdata=CNAME(entry["CNAME"]), ttl=self.ttl))
            return reply.pack()
        for rtype, values in entry.items():
            if rtype != qtype and not (qtype == "ANY"):
                continue
            for v in values:
                if rtype == "MX":
                    pref, host = v
                    rdata = MX(host if host != "." else ".", pref)
                elif rtype == "A":
                    rdata = A(v)
                elif rtype == "AAAA":
                    rdata = AAAA(v)
                elif rtype == "TXT":
                    rdata = TXT(v)
                else:
                    continue
                reply.add_answer(RR(q.qname, getattr(QTYPE, rtype), rdata=rdata, ttl=self.ttl))
        return reply.pack()

    def close(self):
        for srv in (self.udp, self.tcp):
            srv.shutdown()
            srv.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


if __name__ == "__main__":
    # self-check: python3 t/lib/dnsserver.py
    with DNSServer({"b.test": {"MX": [(10, "mx.b.test")]}, "mx.b.test": {"A": ["127.0.0.2"]},
                    "null.test": {"MX": [(0, ".")]}, "bad.test": "SERVFAIL"}) as d:
        for name, t in (("b.test", "MX"), ("mx.b.test", "A"), ("nope.test", "MX"),
                        ("null.test", "MX"), ("bad.test", "MX")):
            q = DNSRecord.question(name, t)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(2)
            s.sendto(q.pack(), ("127.0.0.1", d.port))
            r = DNSRecord.parse(s.recv(4096))
            print(name, t, RCODE[r.header.rcode], [str(x.rdata) for x in r.rr])
