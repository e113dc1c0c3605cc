"""Epoch fencing on an execution host: the highest epoch of each logical host.

``<state>/<lhost>/epoch`` holds the highest epoch that logical host has said hello
with; a lower one is refused (AJS3-E333), so a cut-off former owner cannot start or
kill anything once the new owner has reached this host. ``hello`` raises it under an
exclusive lock; ``start``, ``kill`` and ``void`` hold a shared lock while they act and
check it again under the lock, so no request of a lower epoch slips in between.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from ajs3.errors import AjsError, Code

EPOCH_FILE = "epoch"
LOCK_FILE = ".lock"


def refused(lhost: str, epoch: int, highest: int) -> AjsError:
    return AjsError(
        f"logical host {lhost} spoke with epoch {epoch}, but epoch {highest} has "
        "reached this execution host: a newer owner of the logical host exists",
        code=Code.EXEC_HOST_EPOCH,
        hint="this daemon has been superseded; stop it (the new owner runs the jobs)",
    )


class Fence:
    """The epoch record of one logical host in its state directory."""

    def __init__(self, lhost_dir: Path, lhost: str) -> None:
        self.dir = lhost_dir
        self.lhost = lhost

    @contextlib.contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)

    def highest(self) -> int:
        try:
            return int((self.dir / EPOCH_FILE).read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def hello(self, epoch: int) -> int:
        """Record ``epoch`` if it is the highest yet; refuse a lower one."""
        with self._locked(fcntl.LOCK_EX):
            highest = self.highest()
            if epoch < highest:
                raise refused(self.lhost, epoch, highest)
            if epoch > highest:
                tmp = self.dir / f".{EPOCH_FILE}.tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                try:
                    os.write(fd, f"{epoch}\n".encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, self.dir / EPOCH_FILE)
                dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
            return epoch

    @contextlib.contextmanager
    def acting(self, epoch: int) -> Iterator[None]:
        """Hold the fence while acting for ``epoch``; refused if a higher one came."""
        with self._locked(fcntl.LOCK_SH):
            highest = self.highest()
            if epoch < highest:
                raise refused(self.lhost, epoch, highest)
            yield
