"""The record logs of the supervisor servers and the file of voids (ADR 0039, proposed:
the server has them behind ``--records``; the daemon does not pass it yet).

A server started with ``--claims DIR --records`` makes no file for a run but its
output. Each run's start record (with its job's pids, written by the job itself before
its exec) and end record are lines of a log of the server's own in DIR,
``PID-START-N.records``: ``ajs3-records 1 HOST`` first, then ``p RECORD`` and
``e RECORD`` lines, RECORD being the JSON text that ``started.json`` and
``status.json`` hold without ``--records``. A line counts when it is whole and its
record a JSON object with a run id. The server holds a lock on each log it may still
write, and so does each of its jobs until its exec.

``DIR/voids`` takes the place of the void ``started.json`` of ADR 0012: the run ids a
daemon declared never started, one per line. :func:`void` writes one under an
exclusive lock of the file, and the server takes the same lock for each batch of
claims, so a run is either claimed or void, never both.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ajs3.engine import claimlog

MAGIC = b"ajs3-records 1 "
SUFFIX = ".records"
VOIDS = "voids"


@dataclass
class Records:
    """What one record log holds."""

    host: str
    #: run id -> its start record (with its job's pids)
    started: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: run id -> its end record
    ended: dict[str, dict[str, Any]] = field(default_factory=dict)


def _record(text: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("run_id"), str):
        return None
    return value


def parse(data: bytes) -> Records | None:
    """The records of a log's bytes; None if it is not a record log. A last line with no
    newline (being written, or cut short by a crash) is not read."""
    head, newline, body = data.partition(b"\n")
    if not head.startswith(MAGIC) or not newline:
        return None
    found = Records(head[len(MAGIC) :].decode("utf-8", "replace"))
    for line in body.split(b"\n")[:-1]:
        kind, _, text = line.partition(b" ")
        record = _record(text)
        if record is None:
            continue
        if kind == b"p":
            found.started[record["run_id"]] = record
        elif kind == b"e":
            found.ended[record["run_id"]] = record
    return found


def logs(where: Path) -> Iterator[Path]:
    """The record logs in ``where``, oldest name first."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in sorted(where.iterdir()):
            if entry.name.endswith(SUFFIX) and entry.is_file() and not entry.is_symlink():
                yield entry


def read(path: Path) -> Records | None:
    """The records of one log, never read through a link; None if it is not one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return parse(b"".join(iter(lambda: os.read(fd, 1 << 20), b"")))
    finally:
        os.close(fd)


def held(path: Path) -> bool:
    """Whether a server, or a job of it not yet exec'd, still holds the log's lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False
    finally:
        os.close(fd)


def claimed(where: Path) -> set[str]:
    """Every run id in the claim logs of ``where``, of any node or boot."""
    found: set[str] = set()
    for path in claimlog.logs(where):
        log = claimlog.read(path)
        if log is not None:
            found.update(log[1])
    return found


def void(where: Path, run_id: str) -> bool:
    """Declare that the run ``run_id`` never started, so that no server of this
    directory ever starts it: False if a server claimed it first. Under an exclusive
    lock of the voids file, the claim logs are read; a run they do not name is
    appended to the file, which is fsynced before the lock goes."""
    if "\n" in run_id or not run_id:
        raise ValueError(f"not a run id: {run_id!r}")
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(where / VOIDS, flags, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if run_id in claimed(where):
            return False
        os.write(fd, run_id.encode() + b"\n")
        os.fsync(fd)
        return True
    finally:
        os.close(fd)  # and the lock with it


def voids(where: Path) -> set[str]:
    """The run ids declared never started in ``where`` (the file never read through a
    link)."""
    try:
        fd = os.open(where / VOIDS, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return set()
    try:
        data = b"".join(iter(lambda: os.read(fd, 1 << 20), b""))
    finally:
        os.close(fd)
    return {line.decode("utf-8", "replace") for line in data.split(b"\n")[:-1] if line}
