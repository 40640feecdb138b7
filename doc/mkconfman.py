#!/usr/bin/python3
"""Generate doc/hermod.conf.5 from the parameter table in lib/conf.c."""
import re, sys

src = open(sys.argv[1]).read()
table = src[src.index("static const struct param params[]"):]
table = table[:table.index("{ NULL, NULL, NULL }")]
macros = {"HERMOD_LOCALSTATEDIR": "/var", "HERMOD_LIBEXECDIR": "/usr/libexec/hermod",
          "HERMOD_SBINDIR": "/usr/sbin", "HERMOD_SYSCONFDIR": "/etc"}

def cstr(expr):
    out = ""
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"|([A-Z_]+)', expr):
        out += m.group(1) if m.group(1) is not None else macros[m.group(2)]
    return out

def roff(s):
    s = s.replace("\\", "\\e")
    return s

groups = []
for line in table.splitlines():
    line = line.strip()
    m = re.match(r"/\* (.*) \*/", line)
    if m:
        groups.append((m.group(1), []))
        continue
    m = re.match(r'\{ "([a-z_0-9]+)", (.*?), ("(?:[^"\\]|\\.)*") \},$', line)
    if m:
        groups[-1][1].append((m.group(1), cstr(m.group(2)), cstr(m.group(3))))

titles = {"where things are": "WHERE THINGS ARE", "names": "NAMES",
          "local delivery": "LOCAL DELIVERY", "queue": "THE QUEUE",
          "daemons": "DAEMONS", "network (later parts)": "NETWORK"}
out = []
w = out.append
w('.\\" hermod.conf.5: generated from the parameter table in lib/conf.c;')
w('.\\" keep the two in step (every parameter, its default and meaning).')
w('.TH HERMOD.CONF 5 "November 2026" "hermod 0.1.0" "File Formats"')
w(".SH NAME")
w("hermod.conf \\- hermod configuration parameters")
w(".SH SYNOPSIS")
w(".I /etc/hermod/hermod.conf")
w(".br")
w(".IB DIR /hermod.conf")
w("of an instance made with")
w('.B hermod init')
w('.IR DIR .')
w(".SH DESCRIPTION")
w(".B hermod.conf")
w("holds the parameters of a hermod instance.")
w("Every program finds it in the configuration directory: the")
w(".B \\-C")
w(".I DIR")
w("option, else the")
w(".B HERMOD_CONFIG")
w("environment variable, else")
w(".IR /etc/hermod .")
w("A missing file means every parameter has its default.")
w(".PP")
w("The format:")
w(".IP \\(bu 3")
w('.RI "" name " = " value')
w("lines; white space around the name and the value is ignored.")
w(".IP \\(bu 3")
w("Lines that begin with")
w(".B #")
w("and empty lines are ignored.")
w("A line that begins with white space continues the previous one.")
w(".IP \\(bu 3")
w(".BI $ name")
w("and")
w(".BI ${ name }")
w("in a value are replaced by the value of that parameter, when it is used;")
w(".B $$")
w("is a literal")
w(".BR $ .")
w("Names that are not parameters, such as")
w(".B $home")
w("in")
w(".BR forward_path ,")
w("are kept for the program that expands them.")
w(".IP \\(bu 3")
w("When a name is given twice, the later line wins.")
w("An unknown name is reported and ignored.")
w(".IP \\(bu 3")
w("Lists are separated by commas and/or white space.")
w("Times are a number with an optional unit:")
w(".B s")
w("(the default),")
w('.BR m ", " h ", " d ", " w .')
w("Sizes are bytes, or a number with")
w('.BR k ", " m ", " g .')
w("Booleans are")
w(".BR yes / no")
w("(also")
w('.BR true / false ", " on / off ", " 1 / 0 ).')
w(".PP")
w(".B hermod config")
w("prints the value of every parameter in effect,")
w(".B hermod config \\-n")
w("only those set in the file, and")
w(".B hermod config")
w(".I name ...")
w("the named ones.")
w("After a change,")
w(".B hermod reload")
w("makes the running daemons use it.")
w(".SH PARAMETERS")
w("Each parameter is shown with its default.")
w("The defaults of the directories follow the")
w(".B configure")
w("options; shown here are those of")
w('.BR "configure \\-\\-prefix=/usr \\-\\-sysconfdir=/etc \\-\\-localstatedir=/var" .')
n = 0
for title, params in groups:
    w(".SS " + titles.get(title, title.upper()))
    for name, d, doc in params:
        n += 1
        w(".TP")
        if d:
            w('.BR %s " = " "%s"' % (name, roff(d).replace('"', '\\(dq')))
        else:
            w("\\fB%s\\fR = \\fI(empty)\\fR" % name)
        w(roff(doc))
w(".SH FILES")
w(".TP")
w(".I /etc/hermod/hermod.conf")
w("the installed system's parameters")
w(".TP")
w(".I /etc/hermod/master.conf")
w("the services; see")
w(".BR master.conf (5)")
w(".SH EXAMPLES")
w("A rootless instance made with")
w(".B hermod init /home/ann/mail \\-\\-domain ann.example")
w("sets, among others:")
w(".PP")
w(".RS")
w(".nf")
w("privileged = no")
w("queue_directory = /home/ann/mail/spool")
w("mydomain = ann.example")
w("alias_maps = hash:/home/ann/mail/aliases")
w("virtual_users_file = /home/ann/mail/users")
w("virtual_mailbox_base = /home/ann/mail/mail")
w("mail_spool_directory = /home/ann/mail/mailspool")
w(".fi")
w(".RE")
w(".SH SEE ALSO")
w(".BR hermod (8),")
w(".BR hermod-master (8),")
w(".BR master.conf (5),")
w(".BR aliases (5),")
w(".BR sendmail (8),")
w(".BR local (8)")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("%d parameters" % n)
