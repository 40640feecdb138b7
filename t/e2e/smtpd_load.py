"""
smtpd_load: 500 concurrent SMTP connections to one instance are all
served: every one gets the banner while all 500 are open, and every one
then completes a transaction whose message arrives in the Maildir.  The
memory per idle session (the smtpd processes' summed RSS with 500 idle
sessions minus with one, divided by 499) is printed as a TAP diag (the
issue's target: under 64 KB).  Runs well under a minute.
"""
import asyncio
import time

from hermodtest import TAP, wait_until
from smtptest import Client, smtp_instance, smtpd_log

N = 500
t = TAP()


def rss_kb(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                for ln in f:
                    if ln.startswith("VmRSS:"):
                        total += int(ln.split()[1])
        except OSError:
            pass
    return total


async def read_reply(reader, timeout):
    code = None
    while True:
        ln = await asyncio.wait_for(reader.readline(), timeout)
        if not ln:
            raise ConnectionError("EOF")
        if len(ln) < 4:
            raise ConnectionError("short line %r" % ln)
        code = int(ln[:3])
        if ln[3:4] != b"-":
            return code


async def open_one(port):
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 20)
    return reader, writer


async def main(h):
    port = h.smtp_port
    # open all N connections, then read every banner while all are open
    conns = []
    errors = []
    for i in range(0, N, 50):
        res = await asyncio.gather(*[open_one(port) for _ in range(min(50, N - i))], return_exceptions=True)
        for r in res:
            if isinstance(r, Exception):
                errors.append(repr(r))
            else:
                conns.append(r)
    t.is_(len(conns), N, "%d connections opened" % N, "\n".join(errors[:5]))

    async def banner(c):
        try:
            return await read_reply(c[0], 30)
        except Exception as e:
            return repr(e)
    banners = await asyncio.gather(*[banner(c) for c in conns])
    good = sum(1 for b in banners if b == 220)
    t.is_(good, N, "all %d got the 220 banner while all are open" % N,
          "others: %r\n%s" % ([b for b in banners if b != 220][:5], smtpd_log(h)))
    return conns


async def transact(conns):
    async def one(i, c):
        reader, writer = c
        try:
            want = [250, 250, 250, 354, 250, 221]
            got = []
            for line in ["EHLO load%d.example" % i, "MAIL FROM:<load@example.org>", "RCPT TO:<alice@example.test>",
                         "DATA"]:
                writer.write(line.encode() + b"\r\n")
                await writer.drain()
                got.append(await read_reply(reader, 30))
            writer.write(b"Subject: load %d\r\nX-Load-Seq: %d\r\n\r\nbody %d\r\n.\r\nQUIT\r\n" % (i, i, i))
            await writer.drain()
            got.append(await read_reply(reader, 60))
            got.append(await read_reply(reader, 30))
            writer.close()
            return got == want or got
        except Exception as e:
            return repr(e)
    return await asyncio.gather(*[one(i, c) for i, c in enumerate(conns)])


with smtp_instance(users=["alice"]) as h:
    start = time.time()
    # one idle session first: the baseline (the smtpd processes exist)
    c1 = Client(h.smtp_port)
    code, _ = c1.reply()
    t.is_(code, 220, "first connection gets the banner", smtpd_log(h))
    time.sleep(0.5)
    base_pids = h.pids("smtp")
    base = rss_kb(base_pids)

    loop = asyncio.new_event_loop()
    conns = loop.run_until_complete(main(h))
    time.sleep(0.5)
    pids = h.pids("smtp")
    full = rss_kb(pids)
    if len(conns) > 1:
        per = (full - base) * 1024.0 / (len(conns))
        t.diag("smtpd RSS: %d kB in %d process(es) with 1 idle session, %d kB in %d process(es) with %d more; "
               "%.1f KB per idle session (target < 64 KB)" % (base, len(base_pids), full, len(pids), len(conns),
                                                              per / 1024.0))
    t.ok(pids, "smtpd processes found for the RSS figure", h.pids(None))
    results = loop.run_until_complete(transact(conns))
    bad = [r for r in results if r is not True]
    t.is_(len(bad), 0, "all %d sessions completed a transaction" % len(conns), "%r\n%s" % (bad[:5], smtpd_log(h)))
    c1.close()
    n_ok = len(results) - len(bad)
    got = wait_until(lambda: len(h.message_files("alice")) >= n_ok, 40, 0.2)
    t.is_(len(h.message_files("alice")), n_ok, "all %d messages in the Maildir" % n_ok, smtpd_log(h))
    loop.close()
    t.diag("elapsed %.1fs" % (time.time() - start))
t.done()
