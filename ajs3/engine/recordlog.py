"""The record logs of the supervisor servers and the file of voids (ADR 0039): a daemon
runs its server with ``--records`` and reads runs' records here, then in their
directories (runs started before, or by a server without the option).

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
import re
import time
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


def _record_start(data: bytes, start: int, end: int) -> int:
    """Where the last record of the line ``data[start:end]`` begins. An append cut short
    (by a full disk: the write is tried again whole) leaves a piece with no newline, and
    the next line is written after it. A record begins ``p {"`` or ``e {"`` and a key's
    first letter; within a record those four bytes can only end a string (its closing
    quote, which a letter never follows), since a quote inside a string is escaped."""
    at = end
    while True:
        at = max(data.rfind(b'p {"', start, at), data.rfind(b'e {"', start, at))
        if at < 0:
            return start
        if at + 4 < end and data[at + 4] in _KEY_FIRST:
            return at


_KEY_FIRST = frozenset(b"abcdefghijklmnopqrstuvwxyz_")


def parse(data: bytes) -> Records | None:
    """The records of a log's bytes; None if it is not a record log. A last line with no
    newline (being written, or cut short by a crash) is not read."""
    head, newline, body = data.partition(b"\n")
    if not head.startswith(MAGIC) or not newline:
        return None
    found = Records(head[len(MAGIC) :].decode("utf-8", "replace"))
    for line in body.split(b"\n")[:-1]:
        line = line[_record_start(line, 0, len(line)) :]
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


def gather(where: Path) -> Records:
    """Every record of every record log in ``where`` (a later log's record wins)."""
    found = Records("")
    for path in logs(where):
        log = read(path)
        if log is not None:
            found.started.update(log.started)
            found.ended.update(log.ended)
    return found


def all_started(where: Path) -> dict[str, dict[str, Any]]:
    """Run id -> start record, from every record log in ``where``."""
    return gather(where).started


def unended(where: Path) -> list[dict[str, Any]]:
    """The start records of runs whose end no record log of ``where`` holds (a job that
    may still run, for a harness that cleans up after a daemon it killed)."""
    found = gather(where)
    return [record for run_id, record in found.started.items() if run_id not in found.ended]


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


def local_claims(where: Path, identity: str) -> dict[str, Path]:
    """Run id -> its claim log, for the claims of servers of this node and boot."""
    found: dict[str, Path] = {}
    for path, host, run_ids in claimlog.each(where):
        if host == identity:
            found.update(dict.fromkeys(run_ids, path))
    return found


def void(where: Path, run_id: str, identity: str) -> bool:
    """Declare that the run ``run_id`` never started, so that no server of this node and
    boot ever starts it: False if one claimed it first. Under an exclusive lock of the
    voids file, the claim logs of this node and boot are read (a server of another node
    or boot is gone, and its claims are the failover's question); a run they do not name
    is appended to the file, which is fsynced before the lock goes."""
    if "\n" in run_id or not run_id:
        raise ValueError(f"not a run id: {run_id!r}")
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(where / VOIDS, flags, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if run_id in local_claims(where, identity):
            return False
        os.write(fd, run_id.encode() + b"\n")
        os.fsync(fd)
        return True
    finally:
        os.close(fd)  # and the lock with it


_RUN_ID = re.compile(rb'"run_id": "([^"\\]*)"')


class Index:
    """Where each run's records are in the record logs of a directory: read as the logs
    grow (only their new whole lines), each record read back when asked for."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self._read: dict[Path, int] = {}  # bytes of whole lines read, per log
        self._started: dict[str, tuple[Path, int, int]] = {}
        self._ended: dict[str, tuple[Path, int, int]] = {}

    def refresh(self) -> None:
        """Read what the logs have gained since the last look; forget removed logs."""
        seen = set()
        for path in logs(self.where):
            seen.add(path)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            at = self._read.get(path, 0)
            chunks: list[bytes] = []
            size = 0
            try:
                while chunk := os.pread(fd, 1 << 20, at + size):
                    chunks.append(chunk)
                    size += len(chunk)
            finally:
                os.close(fd)
            self._take(path, at, b"".join(chunks))
        for gone in set(self._read) - seen:
            del self._read[gone]
            for table in (self._started, self._ended):
                for run_id in [r for r, (p, _, _) in table.items() if p == gone]:
                    del table[run_id]

    def _take(self, path: Path, at: int, data: bytes) -> None:
        end = data.rfind(b"\n") + 1
        if at == 0:
            if not data.startswith(MAGIC):
                return  # not a record log (yet): looked at again next time
            start = data.find(b"\n") + 1
        else:
            start = 0
        pos = start
        while pos < end:
            nl = data.index(b"\n", pos)
            first = _record_start(data, pos, nl)
            kind = data[first : first + 2]
            found = _RUN_ID.search(data, first, nl)
            if found is not None and kind in (b"p ", b"e "):
                table = self._started if kind == b"p " else self._ended
                table[found.group(1).decode("utf-8", "replace")] = (
                    path,
                    at + first + 2,
                    nl - first - 2,
                )
            pos = nl + 1
        self._read[path] = at + end

    def _get(self, table: dict[str, tuple[Path, int, int]], run_id: str) -> dict[str, Any] | None:
        where = table.get(run_id)
        if where is None:
            self.refresh()
            where = table.get(run_id)
        if where is None:
            return None
        path, offset, length = where
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            return _record(os.pread(fd, length, offset))
        finally:
            os.close(fd)

    def started(self, run_id: str) -> dict[str, Any] | None:
        """The run's start record (with its job's pids), if a log has it."""
        return self._get(self._started, run_id)

    def ended(self, run_id: str) -> dict[str, Any] | None:
        """The run's end record, if a log has it."""
        return self._get(self._ended, run_id)


def server_logs(claim_log: Path) -> list[Path]:
    """The record logs of the server that wrote the claim log ``claim_log`` (their names
    begin with the same PID-START-)."""
    pid, start, _ = claim_log.name.split("-", 2)
    return [p for p in logs(claim_log.parent) if p.name.startswith(f"{pid}-{start}-")]


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


def settle(
    index: Index, where: Path, run_id: str, identity: str, wait: float
) -> dict[str, Any] | None:
    """The start record of a run that a server of this node and boot claimed in its
    log (so :func:`void` refused): as soon as its job has written it. None once no log of
    that server is held any more without one: the server is gone and no job of it is
    between its clone and its exec, so the job never ran (ADR 0032's rule) and no server
    can start it any more. TimeoutError if the server lives on for ``wait`` seconds
    without starting it."""
    claim = local_claims(where, identity).get(run_id)
    end = time.monotonic() + wait
    while True:
        record = index.started(run_id)
        if record is not None or claim is None:
            return record
        if not any(held(log) for log in server_logs(claim)):
            index.refresh()  # what was written before the last lock went
            return index.started(run_id)
        if time.monotonic() >= end:
            raise TimeoutError(f"the server that claimed {run_id} has not started its job")
        time.sleep(0.02)


def cut(where: Path, running: set[str]) -> list[Path]:
    """Remove every record log that no server or job holds and that names no run in
    ``running`` (the run ids the journal says run). Returns the logs removed."""
    removed: list[Path] = []
    for path in logs(where):
        if held(path):
            continue
        log = read(path)
        if log is None or running.isdisjoint(log.started.keys() | log.ended.keys()):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed
