#!/usr/bin/python3
"""
runner: t/runtests stops what a test leaves running.  A test that starts
an instance and then hangs is killed on its time limit; afterwards no
process of that instance may be left (they run in sessions of their own,
so killing the test alone would not reach them), and the runner says so
in the test's log.  A test that ends normally but forgets to stop an
instance is cleaned up the same way.
"""
import glob
import os
import shutil
import subprocess
import tempfile
import time

from hermodtest import TAP, BUILDDIR, SRCDIR, wait_until

t = TAP()
RUNTESTS = os.path.join(SRCDIR, "t", "runtests")


def procs_naming(path):
    out = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(d + "/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if path.encode() in argv:
            out.append(int(d[6:]))
    return out


work = tempfile.mkdtemp(prefix="hermod-runner-")
os.chmod(work, 0o755)
src = os.path.join(work, "src")
bld = os.path.join(work, "build")
os.makedirs(os.path.join(src, "t", "e2e"))
os.makedirs(bld)
os.symlink(os.path.join(SRCDIR, "t", "lib"), os.path.join(src, "t", "lib"))
for sub in ("mta", "queue", "deliver", "popd", "imapd", "xmppgw"):
    if os.path.isdir(os.path.join(BUILDDIR, sub)):
        os.symlink(os.path.join(BUILDDIR, sub), os.path.join(bld, sub))
marker = os.path.join(work, "dirs")
# hang: starts an instance, records its folder, sleeps past the limit
# leak: starts an instance, records it, exits without stopping it
for name, tail in (("hang", "time.sleep(600)\n"),
                   ("leak", "import hermodtest\nhermodtest._instances.clear()\nprint('1..0')\nos._exit(0)\n")):
    with open(os.path.join(src, "t", "e2e", name + ".py"), "w") as f:
        f.write("import os, time\nfrom hermodtest import Instance\n"
                "h = Instance(users=['alice'])\n"
                "open(%r, 'a').write(%r + ' ' + h.dir + '\\n')\n" % (marker, name) + tail)

p = subprocess.run(["/usr/bin/python3", RUNTESTS, "--builddir", bld, "--srcdir", src, "--timeout", "20",
                    "hang", "leak"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=180)
out = p.stdout.decode(errors="replace")
t.ok(p.returncode != 0, "the runner fails a run with a hung test", out)
dirs = {}
try:
    with open(marker) as f:
        for line in f:
            n, d = line.split()
            dirs[n] = d
except OSError:
    pass
t.ok("hang" in dirs and "leak" in dirs, "both tests started their instance", out)
for n, d in sorted(dirs.items()):
    left = wait_until(lambda d=d: not procs_naming(d), 10)
    t.ok(left, "%s: no process of its instance is left" % n, "%s\n%r" % (out, procs_naming(d)))
    t.ok(not os.path.exists(d), "%s: its folder was removed" % n, d)
    with open(os.path.join(bld, "t", "logs", "e2e_%s.log" % n)) as f:
        log = f.read()
    t.ok("the runner stopped" in log, "%s: the log says the runner stopped what it left" % n, log)
with open(os.path.join(bld, "t", "logs", "e2e_hang.log")) as f:
    t.ok("TIMEOUT" in f.read(), "hang: killed on its time limit")
# belt and braces: never leave them behind ourselves
for d in dirs.values():
    for pid in procs_naming(d):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
shutil.rmtree(work, ignore_errors=True)
t.done()
