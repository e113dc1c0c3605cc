"""The purge's disk work, on a thread of its own so that the scheduler never waits on
the disk for the retention purge (docs/retention.md).

What the disk does for a purge, unlink and rmdir of job directories, the fsync that
makes a batch's marks durable and the WAL checkpoints, can stall for a long time on a
busy volume (hundreds of milliseconds were measured beside a CI run). In the
scheduler's loop such a stall is a pause of scheduling; on this thread it is not: the
loop only hands a batch over and is woken (``wake``) when it is done.

The order that keeps the journal true across a kill -9 is unchanged
(:mod:`ajs3.journal.purge`): the marks of a batch are committed, then made durable
here (:meth:`Reaper.remove` syncs the journal's WAL before the first file goes), then
the files go, then the loop deletes the rows.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ajs3 import datadir as dd
from ajs3.engine import jobdirs, runvars


@dataclass(frozen=True)
class Removed:
    """What one batch's removal did."""

    job_dirs: int
    bytes: int


class Reaper:
    """One worker thread for the purge of one logical host."""

    def __init__(self, datadir: Path, journal: Path, wake: Callable[[], None] | None = None):
        self.datadir = datadir
        self.journal = journal
        self.jobs = dd.jobs(datadir)
        #: called (on the worker thread) when a piece of work is done
        self.wake = wake
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ajs3-purge")

    def remove(self, run_ids: Sequence[str]) -> Future[Removed]:
        """Make the committed marks durable, then remove these job directories (and
        their AJS3_VARS_OUT files)."""
        future = self._pool.submit(self._remove, list(run_ids))
        self._tell(future)
        return future

    def checkpoint(self) -> Future[None]:
        """Copy the WAL into the journal a little at a time (PASSIVE: never waits for
        the scheduler's transactions, which go on meanwhile)."""
        future = self._pool.submit(self._checkpoint)
        self._tell(future)
        return future

    def wake_by(self, sock: socket.socket) -> None:
        """Wake a loop that selects on the other end of ``sock`` (the daemon's signal
        socket)."""
        self.wake = waker(sock)

    def close(self) -> None:
        """Wait for the work under way (one batch at most), then end the thread."""
        self._pool.shutdown(wait=True)

    # -- on the worker thread ----------------------------------------------------------

    def _tell(self, future: Future[Removed] | Future[None]) -> None:
        if self.wake is not None:
            wake = self.wake
            future.add_done_callback(lambda _f: wake())

    def _remove(self, run_ids: list[str]) -> Removed:
        self._sync_journal()
        dirs = held = 0
        fd = jobdirs.open_jobs(self.jobs)
        try:
            for run_id in run_ids:
                if fd is not None:
                    held += jobdirs.remove(fd, run_id)
                held += runvars.remove_out(self.datadir, run_id)
                dirs += 1
        finally:
            if fd is not None:
                os.close(fd)
        return Removed(dirs, held)

    def _sync_journal(self) -> None:
        sync_journal(self.journal)

    def _checkpoint(self) -> None:
        conn = sqlite3.connect(str(self.journal), timeout=30.0, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()


def waker(sock: socket.socket) -> Callable[[], None]:
    """What a worker thread calls to wake a loop that selects on the other end of
    ``sock`` (the daemon's signal socket: the byte is read and ignored there; a full
    socket wakes it already). The purge's reaper and the execution hosts' links use it."""

    def poke() -> None:
        with contextlib.suppress(OSError):
            sock.send(b"\0")

    return poke


def sync_journal(journal: Path) -> None:
    """fsync the WAL: every commit written before now is durable after it. A frame
    no longer in the WAL was checkpointed, and a checkpoint syncs the journal before
    the WAL is reused. (No WAL at all: the journal file itself.)"""
    try:
        _fsync(Path(f"{journal}-wal"))
    except FileNotFoundError:
        _fsync(journal)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
