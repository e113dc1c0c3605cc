"""The output of a job on an execution host, followed while it runs (ADR 0029).

Each ``poll`` may carry ``offsets``: ``{run_id: {"stdout": n, "stderr": n}}``, how
many bytes of each stream the logical host already holds in the run's local job
directory. The execution host answers, for each of those runs still running, the
bytes after them as ``live`` (base64, as the inline output of ended runs), within
bounds: :data:`STREAM_BUDGET` per stream, :data:`ANSWER_BUDGET` per answer, at most
:data:`MAX_RUNS` runs. It serves the runs in the order the offsets name them, and the
logical host names first those served longest ago (:class:`Follower`), so that a
chatty job cannot starve the others. An older execution host ignores ``offsets``: its
jobs' output comes home with their end only, as before.

The logical host appends what comes back to the run's local ``stdout`` and
``stderr``, the files ``ajs3 log`` reads (:mod:`ajs3.service.joboutput`), never past
the output cap the end fetch keeps. When the run ends, the end fetch
(:mod:`ajs3.exechost.link`) completes them from :meth:`Follower.base` on, so the
final files are byte for byte those of a fetch of the whole output. A copy this
process did not write itself (another node's, before a failover) is not trusted: it is
fetched again from its first byte.

Server side: :func:`parse_offsets` and :func:`serve_live`; logical host side:
:class:`Follower` (one per execution host, on its link's thread) and :func:`append`.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from ajs3.engine import runner as rn
from ajs3.errors import AjsError, Code
from ajs3.exechost import protocol as pr

#: The streams that are followed (a job's AJS3_VARS_OUT comes home with its end only).
STREAMS = ("stdout", "stderr")
#: The most bytes of one stream of one run in one poll answer.
STREAM_BUDGET = 64 * 1024
#: The most bytes of followed output (before base64) in one poll answer.
ANSWER_BUDGET = 256 * 1024
#: The most runs whose output one poll answer carries.
MAX_RUNS = 1000
#: The most runs one ``offsets`` may name (as many as a poll may ask for).
MAX_OFFSETS = 100_000
#: An offset no output file reaches (refused beyond it: not a size).
MAX_OFFSET = 1 << 53
#: Room for the supervisor's marker after a stream cut at its output_limit: the local
#: copy of a stream keeps at most ``output_limit + MARKER_ROOM`` bytes.
MARKER_ROOM = 4097

#: Reads ``limit`` bytes of a run's stream from ``offset``: (the bytes, the file's size).
Reader = Callable[[str, str, int, int], tuple[bytes, int]]

Offsets = dict[str, dict[str, int]]


def _refuse(what: str) -> AjsError:
    return AjsError(f"poll offsets: {what}", code=Code.EXEC_HOST_PROTOCOL)


def parse_offsets(value: Any, polled: Iterable[str]) -> Offsets:
    """The ``offsets`` of a poll (absent: none), checked; AJS3-E334 if malformed: not
    a mapping of run ids the poll asks for to ``{stream: non-negative integer}``."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_OFFSETS:
        raise _refuse(f"a mapping of at most {MAX_OFFSETS} run ids, not {type(value).__name__}")
    asked = set(polled)
    parsed: Offsets = {}
    for run_id, streams in value.items():
        pr.run_id(run_id)
        if run_id not in asked:
            raise _refuse(f"{run_id} is not among the run_ids of the poll")
        if not isinstance(streams, dict):
            raise _refuse(f"{run_id}: a mapping of stream: offset")
        sizes: dict[str, int] = {}
        for stream, offset in streams.items():
            if stream not in STREAMS:
                raise _refuse(f"{run_id}: unknown stream {stream!r}")
            if (
                not isinstance(offset, int)
                or isinstance(offset, bool)
                or not 0 <= offset <= MAX_OFFSET
            ):
                raise _refuse(f"{run_id}: {stream} offset {offset!r} is no byte count")
            sizes[stream] = offset
        parsed[run_id] = sizes
    return parsed


def serve_live(runs: dict[str, dict[str, Any]], offsets: Offsets, read: Reader) -> None:
    """Add ``live`` to each running run of ``offsets``, in their order, within the
    budgets: ``{stream: {"offset", "data", "size"}}``. A run the budget did not reach
    gets no ``live`` (the logical host names it first next time)."""
    left, served = ANSWER_BUDGET, 0
    for run_id, sizes in offsets.items():
        if left <= 0 or served >= MAX_RUNS:
            return
        state = runs.get(run_id)
        if state is None or state.get("state") != "running":
            continue
        live = {}
        for stream in STREAMS:
            offset = sizes.get(stream, 0)
            data, size = read(run_id, stream, offset, min(STREAM_BUDGET, left))
            left -= len(data)
            live[stream] = {"offset": offset, "data": base64.b64encode(data).decode(), "size": size}
        state["live"] = live
        served += 1


@dataclass
class Follower:
    """The logical host's side, for one execution host (its link's thread)."""

    #: the poll in which each run was last served (never: first in line)
    served: dict[str, int] = field(default_factory=dict)
    #: runs whose local copy this process wrote (the others are fetched from byte 0)
    mine: set[str] = field(default_factory=set)
    #: runs whose copy failed, logged once
    failed: set[str] = field(default_factory=set)
    turn: int = 0

    def offsets(self, jobdirs: dict[str, Path]) -> Offsets:
        """The offsets of the next poll: the local sizes of the runs served longest
        ago first, at most :data:`MAX_RUNS` (the others wait for a later poll)."""
        for gone in set(self.served) - set(jobdirs):
            self.served.pop(gone, None)
        self.mine &= set(jobdirs)
        self.failed &= set(jobdirs)
        order = sorted(jobdirs, key=lambda r: self.served.get(r, 0))[:MAX_RUNS]
        return {r: {s: self.base(r, jobdirs[r] / s) for s in STREAMS} for r in order}

    def base(self, run_id: str, path: Path) -> int:
        """The bytes of ``path`` trusted as the start of the run's stream: its size if
        this process wrote it, else none."""
        if run_id not in self.mine:
            return 0
        try:
            return os.lstat(path).st_size
        except FileNotFoundError:
            return 0

    def take(self, runs: dict[str, Any], jobdirs: dict[str, Path], caps: dict[str, int]) -> None:
        """Append the ``live`` output of a poll answer to the runs' local files."""
        self.turn += 1
        for run_id, jobdir in jobdirs.items():
            state = runs.get(run_id)
            live = state.get("live") if isinstance(state, dict) else None
            if not isinstance(live, dict):
                continue
            self.served[run_id] = self.turn
            try:
                rn.private_dir(jobdir, reclaim=True)
                for stream in STREAMS:
                    got = live.get(stream)
                    if not isinstance(got, dict):
                        continue
                    offset = int(got.get("offset") or 0)
                    data = base64.b64decode(got.get("data") or "")
                    fresh = run_id not in self.mine
                    append(jobdir / stream, offset, data, caps[run_id], fresh=fresh)
                self.mine.add(run_id)
            except (OSError, ValueError, AjsError) as exc:
                if run_id not in self.failed:
                    self.failed.add(run_id)
                    structlog.get_logger("ajs3").warning(
                        "output of a job on an execution host not followed",
                        run_id=run_id,
                        error=str(exc),
                    )


def append(path: Path, offset: int, data: bytes, cap: int, *, fresh: bool = False) -> int:
    """Write ``data``, the bytes of a stream from ``offset`` on, after what ``path``
    holds, never past ``cap`` bytes; ``fresh``: ``path`` holds nothing trusted (it is
    emptied first). Bytes that are not next (the file is shorter than ``offset``) are
    dropped: the next poll asks from the file's size. The size of the file after."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags | (os.O_TRUNC if fresh else 0), 0o640)
    try:
        size = os.fstat(fd).st_size
        if offset > size or offset + len(data) <= size:
            return size
        data = data[size - offset : size - offset + max(0, cap - size)]
        if data:
            os.pwrite(fd, data, size)
        return size + len(data)
    finally:
        os.close(fd)
