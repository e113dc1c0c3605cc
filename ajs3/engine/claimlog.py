"""The claim logs of the supervisor servers (ADR 0033): read after a failover, cut when
no run in them still runs.

A server started with ``--claims <datadir>/claims`` makes each claim durable by its run
id in a log of its own there (one fdatasync for the claims of a batch), not by an fsync
of the run's ``started.json``. A node that crashed may lose a ``started.json``, but not
a run id its server logged before it started the job. So a run that has no whole start
record, and whose run id is in the log of another node or boot, may have run: it is in
doubt, never started again as a run that never ran.

A log is ``ajs3-claims 1 HOST`` on its first line, then run ids one per line, then
zeros up to its size: a line counts only when whole (its newline written).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

MAGIC = b"ajs3-claims 1 "
SUFFIX = ".log"
MAX_LOG = 1 << 20
"""A log is 256 KiB as the server makes it; anything larger is not one of its."""


def parse(data: bytes) -> tuple[str, list[str]] | None:
    """(the host identity, the run ids) of a log's bytes; None if it is not a log."""
    head, newline, body = data.partition(b"\n")
    if not head.startswith(MAGIC) or not newline:
        return None
    host = head[len(MAGIC) :].decode("utf-8", "replace")
    body = body.split(b"\0", 1)[0]
    lines = body.split(b"\n")[:-1]  # the last piece has no newline: not whole
    return host, [line.decode("utf-8", "replace") for line in lines if line]


def logs(where: Path) -> Iterator[Path]:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in sorted(where.iterdir()):
            if entry.name.endswith(SUFFIX) and entry.is_file() and not entry.is_symlink():
                yield entry


def read(path: Path) -> tuple[str, list[str]] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return parse(os.read(fd, MAX_LOG))
    finally:
        os.close(fd)


def each(where: Path) -> Iterator[tuple[Path, str, list[str]]]:
    """(the log, its host identity, its run ids) for every claim log in ``where``."""
    for path in logs(where):
        log = read(path)
        if log is not None:
            yield path, log[0], log[1]


def foreign_claims(where: Path, identity: str) -> dict[str, str]:
    """Run id -> host identity, for every run claimed in a log of another node or boot
    than ``identity``. The logs of this node and boot are passed over: what their
    servers wrote is in the page cache, and the start records say it all."""
    found: dict[str, str] = {}
    for _, host, run_ids in each(where):
        if host != identity:
            found.update(dict.fromkeys(run_ids, host))
    return found


def cut(where: Path, running: Iterable[str]) -> list[Path]:
    """Remove every log that no server writes (its lock is free) and that names no run
    in ``running`` (the run ids the journal says run): no recovery can need it. One
    that is not a whole log was never used (a server uses a log once it is whole and
    durable) and goes too. Returns the logs removed."""
    still = set(running)
    removed: list[Path] = []
    for path in logs(where):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its server still writes it
            log = parse(os.read(fd, MAX_LOG))
            if log is None or still.isdisjoint(log[1]):
                path.unlink()
                removed.append(path)
        finally:
            os.close(fd)
    return removed
