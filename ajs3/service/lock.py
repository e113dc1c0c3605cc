"""The exclusive lock a daemon holds on its data directory (docs/design.md rule 7).

It is an ``flock`` on ``<datadir>/ajs3.lock``: the kernel drops it when the holder
dies, so a lock left by a dead daemon is no lock at all and is taken over; the file
keeps the last holder's identity so the take-over can be logged and a refusal can
name the live holder.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from ajs3.errors import AjsError, Code, LockedError

#: The lock file is opened like every file root writes in the data directory: never
#: through a symbolic link (AJS3-E211).
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def read_holder(path: Path) -> dict[str, Any]:
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read(65536) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "an unknown process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0)))
    pid, node, lhost = holder.get("pid"), holder.get("node"), holder.get("lhost")
    return f"pid {pid} on {node} (lhost {lhost}, since {since})"


class DataDirLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.previous: dict[str, Any] = {}

    def acquire(self, lhost: str) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise AjsError(
                f"{self.path} is a symbolic link: the lock is never taken through one",
                code=Code.UNSAFE_PATH,
                hint=f"remove {self.path} and start again",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(
                f"data directory {self.path.parent} is locked by "
                f"{describe(read_holder(self.path))}",
                code=Code.LOCKED,
                hint="another daemon owns this logical host; stop it first",
            ) from None
        self.previous = read_holder(self.path)
        info = {
            "pid": os.getpid(),
            "node": socket.gethostname(),
            "lhost": lhost,
            "since": time.time(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        os.fsync(fd)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def is_locked(path: Path) -> bool:
    """True if a live process holds the lock (checked without taking it for long)."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
