"""
aliases: every alias form of aliases(5) through a running instance:
plain and nested lists, self-reference, :include:, |command, /file,
error:, owner-LIST for list errors, a loop, and unknown targets.
"""
import os
import time

from hermodtest import TAP, Instance, wait_until

t = TAP()


def has(h, user, needle, timeout=10):
    return wait_until(lambda: any(needle in m for m in h.messages(user)), timeout)


with Instance(users=["alice", "bob", "carol", "owner"],
              conf={"minimal_backoff_time": "1s", "maximal_backoff_time": "2s", "queue_run_delay": "1s"}) as h:
    d = os.path.join(h.dir, "work")
    os.makedirs(d)
    os.chmod(d, 0o777)
    inc = os.path.join(d, "list.inc")
    with open(inc, "w") as f:
        f.write("# included list\nbob\ncarol@example.test\n")
    os.chmod(inc, 0o644)
    cmdout = os.path.join(d, "cmd.out")
    fileout = os.path.join(d, "file.mbox")
    aliases = """# test aliases
postmaster: alice
team: alice, bob
nested: team, carol
selfish: alice, selfish
included: :include:%s
piped: "|cat > %s"
tofile: %s
gone: error:5.1.1 this address is gone
later: error:4.2.1 try again later
list: carol, nosuchmember
owner-list: owner
loopa: loopb
loopb: loopa
multi:
    alice,
    bob
""" % (inc, cmdout, fileout)
    p = h.write_aliases(aliases)
    t.is_(p.returncode, 0, "newaliases builds the test aliases", p.stderr)

    h.sendmail(["team@example.test"], b"Subject: A1\n\nx\n")
    t.ok(has(h, "alice", b"Subject: A1") and has(h, "bob", b"Subject: A1"), "name: a, b", h.log())

    h.sendmail(["nested@example.test"], b"Subject: A2\n\nx\n")
    t.ok(has(h, "alice", b"Subject: A2") and has(h, "bob", b"Subject: A2") and has(h, "carol", b"Subject: A2"),
         "nested aliases", h.log())

    h.sendmail(["selfish@example.test"], b"Subject: A3\n\nx\n")
    t.ok(has(h, "alice", b"Subject: A3"), "self-referencing alias delivers to the others", h.log())

    h.sendmail(["included@example.test"], b"Subject: A4\n\nx\n")
    t.ok(has(h, "bob", b"Subject: A4") and has(h, "carol", b"Subject: A4"), ":include:/file", h.log())

    h.sendmail(["-f", "alice@example.test", "piped@example.test"], b"Subject: A5\n\npiped body\n")
    t.ok(wait_until(lambda: os.path.exists(cmdout) and b"piped body" in open(cmdout, "rb").read(), 10),
         "|command receives the message on stdin", h.log())
    if os.path.exists(cmdout):
        data = open(cmdout, "rb").read()
        t.ok(data.startswith(b"Return-Path: <alice@example.test>") or b"Return-Path:" in data.split(b"\n\n")[0],
             "|command sees Return-Path", data[:300])

    h.sendmail(["tofile@example.test"], b"Subject: A6\n\nfrom line\nFrom here\n")
    t.ok(wait_until(lambda: os.path.exists(fileout) and b"Subject: A6" in open(fileout, "rb").read(), 10),
         "/file delivery appends", h.log())
    if os.path.exists(fileout):
        data = open(fileout, "rb").read()
        t.ok(data.startswith(b"From "), "/file gets an mbox From_ line", data[:100])
        t.ok(b"\n>From here\n" in data, "/file: From in the body is quoted", data)

    h.sendmail(["-f", "alice@example.test", "gone@example.test"], b"Subject: A7\n\nx\n")
    t.ok(has(h, "alice", b"this address is gone"), "error:5.1.1 bounces with the text", h.log())
    t.ok(has(h, "alice", b"Status: 5.1.1"), "error: bounce carries the status code")

    h.sendmail(["-f", "alice@example.test", "later@example.test"], b"Subject: A8\n\nx\n")
    time.sleep(1.5)
    q = h.mailq()
    t.ok(b"later@example.test" in q.stdout, "error:4.x.x defers (mailq shows it)", q.stdout)

    h.sendmail(["-f", "bob@example.test", "list@example.test"], b"Subject: A9\n\nx\n")
    t.ok(has(h, "carol", b"Subject: A9"), "list member receives", h.log())
    t.ok(has(h, "owner", b"nosuchmember", 15), "list errors go to owner-list", h.log())
    time.sleep(0.5)
    t.ok(not any(b"nosuchmember" in m for m in h.messages("bob")), "not to the sender of list mail")

    h.sendmail(["-f", "alice@example.test", "loopa@example.test"], b"Subject: A10\n\nx\n")
    t.ok(has(h, "alice", b"loopa", 15), "an alias loop bounces instead of looping forever", h.log())

    h.sendmail(["multi@example.test"], b"Subject: A11\n\nx\n")
    t.ok(has(h, "alice", b"Subject: A11") and has(h, "bob", b"Subject: A11"), "continuation lines", h.log())

    h.sendmail(["Team@Example.TEST"], b"Subject: A12\n\nx\n")
    t.ok(has(h, "bob", b"Subject: A12"), "alias lookup is case-insensitive", h.log())

    h.sendmail(["bob+ext@example.test"], b"Subject: A13\n\nx\n")
    t.ok(has(h, "bob", b"Subject: A13"), "user+extension reaches the user", h.log())
t.done()
