"""Files refdesk writes hold secrets (the component secret, passwords) or patrons' data:
they are created readable by their owner only, and refdesk says so at start when a file
it reads is open to others."""

from __future__ import annotations

import grp
import logging
import os
import pwd
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def create_private(path: Path) -> None:
    """Create `path` empty with mode 0600 unless it exists. Called by the store before
    SQLite opens a new database (SQLite gives its -wal and -shm files the database's
    mode, so they follow)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Write a text file readable by its owner only, replacing it whole (a reader never
    sees half a file). Used for the demo's config and state, the demo's Prosody config and
    the benchmarks' config: each holds the component secret."""
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    # A file left over under that name would keep its old mode (O_CREAT's mode applies
    # only to a new file) and a chmod after the write would leave a moment with the text
    # readable: remove it, and create a new one exclusively, 0600 from its first byte.
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def private_dir(path: Path) -> None:
    """Make the directory (and its parents) if needed, and make it 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def open_to_others(path: Path) -> int | None:
    """The file's permission bits if users other than its owner may read or write it,
    else None (also when it does not exist, and for anything but a regular file: a device
    such as /dev/null is not refdesk's to chmod). Read access for the file's group counts
    only when that group is not this process's own: the deployment installs the config as
    root-owned with the service's group (0640), which keeps it from everyone else."""
    try:
        st = path.stat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    mode = stat.S_IMODE(st.st_mode)
    exposed = 0o026 if st.st_gid == os.getegid() else 0o066
    return mode if mode & exposed else None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def foreign_owner(path: Path) -> str | None:
    """Why another user's file cannot be opened ("it belongs to root; refdesk runs as
    refdesk") when the existing `path` is not this process's, else None. Added by
    `Store.open` to the error when the database cannot be opened: the usual cause is a
    `refdesk` command run as root before the service's first start, which created the
    database as root's."""
    try:
        owner = path.stat().st_uid
    except OSError:
        return None
    if owner == os.geteuid():
        return None
    return f"it belongs to {_user_name(owner)}; refdesk runs as {_user_name(os.geteuid())}"


def _remedy(path: Path) -> str:
    """The command that makes `path` private without locking this process out of it:
    chmod 600 for a file it owns, else keep it readable through the process's group (a
    root-owned 0600 config would stop the service from starting)."""
    try:
        owner = path.stat().st_uid
    except OSError:
        owner = os.geteuid()
    if owner == os.geteuid():
        return f"chmod 600 {path}"
    try:
        group = grp.getgrgid(os.getegid()).gr_name
    except KeyError:
        group = str(os.getegid())
    return f"chgrp {group} {path} && chmod 640 {path}"


def warn_if_open(path: Path | None, what: str) -> bool:
    """Log one warning line if `path` is readable or writable by other users; called at
    start for the config file and the database. Returns whether it warned."""
    if path is None:
        return False
    mode = open_to_others(path)
    if mode is None:
        return False
    log.warning("%s %s is open to other users (mode %04o): run %s", what, path, mode, _remedy(path))
    return True
