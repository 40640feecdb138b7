"""
inotify: a tiny ctypes wrapper around Linux inotify, so that the
benchmarks learn the instant a message lands in a Maildir without
polling (which would steal CPU from the system being measured).
"""
import ctypes
import os
import select
import struct
import time

IN_CREATE = 0x100
IN_MOVED_TO = 0x80

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


class Watcher:
    def __init__(self, path, mask=IN_CREATE | IN_MOVED_TO):
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        wd = _libc.inotify_add_watch(self.fd, path.encode(), mask)
        if wd < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch " + path)
        self.path = path

    def read(self, timeout):
        """Return [(time, name)] for events within timeout seconds."""
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return []
        now = time.time()
        data = os.read(self.fd, 1 << 20)
        out = []
        i = 0
        while i + 16 <= len(data):
            wd, mask, cookie, ln = struct.unpack_from("iIII", data, i)
            name = data[i + 16:i + 16 + ln].rstrip(b"\0").decode()
            out.append((now, name))
            i += 16 + ln
        return out

    def close(self):
        os.close(self.fd)
