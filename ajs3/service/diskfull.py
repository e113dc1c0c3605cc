"""The daemon when its data directory's file system is full (AJS3-E208, docs/engine.md):
nothing is recorded and nothing starts; one log line when it begins and one a minute
while it lasts; a probe once a second until there is room and a journal write commits.

A mixin of :class:`ajs3.service.daemon.Daemon`, which calls :meth:`_note_disk_full`
when a write fails for want of space and :meth:`_space_back` before each step while
the disk is full.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ajs3.engine.scheduler import Scheduler
from ajs3.errors import Code
from ajs3.journal.files import DiskFull
from ajs3.journal.store import Journal

#: Free bytes the data directory's file system must have again after a full disk.
ROOM_NEEDED = 1 << 20


class DiskFullHandling:
    sched: Scheduler | None
    journal: Journal | None
    datadir: Path
    log: Any
    disk_full: DiskFull | None
    disk_full_since: float
    _disk_logged: float
    _disk_probed: float

    def _note_disk_full(self, exc: DiskFull) -> None:
        """AJS3-E208: one log line when it begins, then one a minute while it lasts
        (the log may be on the same full file system)."""
        now = time.time()
        assert self.sched is not None
        self.sched.note_disk_full()
        if self.disk_full is None:
            self.disk_full_since = now
        self.disk_full = exc
        if now - self._disk_logged >= 60.0:
            self._disk_logged = now
            self.log.error(
                "disk full: nothing is recorded and nothing starts until there is room again",
                code=Code.DISK_FULL.value,
                error=exc.message,
                since=self.disk_full_since,
            )

    def _space_back(self) -> bool:
        """While the disk is full: True once its file system has room (ROOM_NEEDED)
        and a small write to the journal commits (tried at most once a second): the
        step may run again."""
        assert self.journal is not None
        now = time.time()
        if now - self._disk_probed < 1.0:
            return False
        self._disk_probed = now
        try:
            # SQLite may commit into room its WAL had taken before: ask the file system
            # too, so that jobs do not start where their records cannot be written.
            vfs = os.statvfs(self.datadir)
            if vfs.f_bavail * vfs.f_frsize < ROOM_NEEDED:
                return False
            self.journal.set_meta("space_probe", repr(now))
        except OSError:
            return False
        except DiskFull as exc:
            self._note_disk_full(exc)
            return False
        self.log.info("disk space back: carrying on", full_for=now - self.disk_full_since)
        self.disk_full = None
        self._disk_logged = 0.0
        return True
