"""Whether a child process is the one listening on a port.

Tests that start `refdesk run` as a process of its own give it a port from
`component.prosody.free_port`, which was free a moment ago. Until the child binds it,
anything else on the machine may take it: another test's in-process desk binding port 0
gets its port from the same range. The child then exits ("Address already in use"), but a
probe of the port answers all the same, from the stranger, and the test talks to that one
until the stranger stops; then the port refuses connections (seen as a bystander's
connection refused in a clean-clone run). A probe must also check that the child holds the
listening socket.
"""

from __future__ import annotations

import os
from pathlib import Path

# /proc/net/tcp's state column for LISTEN.
_LISTEN = "0A"


def _listening_inodes(port: int) -> set[str]:
    """The socket inodes listening on TCP `port` (IPv4 or IPv6, any address)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as rows:
            next(rows)  # the header
            for row in rows:
                fields = row.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == _LISTEN and int(local.rpartition(":")[2], 16) == port:
                    inodes.add(inode)
    return inodes


def listens_on(pid: int, port: int) -> bool:
    """True if process `pid` holds a socket listening on TCP `port`. Called by the tests'
    start-up probes of `refdesk run` processes once the port answers."""
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:[") and target[len("socket:[") : -1] in inodes:
            return True
    return False
