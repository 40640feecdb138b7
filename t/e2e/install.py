"""
install: `make install` puts every program, link and man page where the
issue says, also without root (DESTDIR staging), and the installed
sendmail answers as mailq and newaliases by its name.
"""
import os
import subprocess
import tempfile
import shutil

from hermodtest import TAP, BUILDDIR

t = TAP()
dest = tempfile.mkdtemp(prefix="hermod-inst-", dir="/tmp")
try:
    p = subprocess.run(["make", "-s", "-C", BUILDDIR, "install", "DESTDIR=" + dest],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    t.is_(p.returncode, 0, "make install DESTDIR=... succeeds")
    if p.returncode:
        t.diag(p.stdout.decode(errors="replace")[-3000:])
    prefix = None
    for root, dirs, files in os.walk(dest):
        if "sbin" in dirs and os.path.exists(os.path.join(root, "sbin", "hermod")):
            prefix = root
            break
    t.ok(prefix is not None, "installed tree has sbin/hermod")
    prefix = prefix or dest
    for rel in ("sbin/sendmail", "sbin/hermod", "sbin/hermod-master", "bin/mailq", "bin/newaliases",
                "libexec/hermod/pickup", "libexec/hermod/qmgr", "libexec/hermod/local",
                "libexec/hermod/postdrop", "libexec/hermod/showq"):
        path = os.path.join(prefix, rel)
        t.ok(os.path.exists(path) and os.access(path, os.X_OK), "installed %s" % rel)
    mans = []
    for root, dirs, files in os.walk(os.path.join(prefix, "share", "man")):
        mans += files
    for m in ("sendmail.8", "mailq.1", "newaliases.8", "hermod.8", "hermod.conf.5", "aliases.5", "hermod-master.8"):
        t.ok(m in mans, "man page %s installed" % m)
    mq = os.path.join(prefix, "bin", "mailq")
    sm = os.path.join(prefix, "sbin", "sendmail")
    t.ok(os.path.exists(mq) and (os.path.samefile(mq, sm) or open(mq, "rb").read() == open(sm, "rb").read()),
         "mailq is the sendmail binary")
    pd = os.path.join(prefix, "libexec", "hermod", "postdrop")
    if os.path.exists(pd):
        st = os.stat(pd)
        if os.geteuid() != 0:
            t.ok(not (st.st_mode & 0o2000), "as a normal user postdrop is installed without setgid")
        else:
            t.ok(True, "as root the setgid bit depends on the hermodrop group (checked in privileged tests)")
finally:
    shutil.rmtree(dest, ignore_errors=True)
t.done()
