"""A job's output files, for `ajs3 log` and the `log` request: which file a unit or run
id has, and bounded reads of it, the last MiB or, to follow a job while it runs, the
bytes from an offset on with whether the job has ended.

The CLI of a user who may read the journal opens the file itself (:func:`log_path`);
the daemon answers the `log` request (viewers, `ajs3 web`) with :func:`log_in`.
"""

from __future__ import annotations

import base64
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ajs3 import datadir as dd
from ajs3.errors import AjsError, Code, OperationError
from ajs3.journal.store import Journal
from ajs3.model import Status
from ajs3.service.views import pick_run, unit_row

#: The most output one `log` answer holds: the file's last bytes without an offset,
#: the bytes from the offset on with one (the next read goes on from where it ended).
LOG_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class Output:
    """The output file of one attempt of a job, and whether that attempt still runs."""

    path: Path
    run_id: str
    running: bool


def log_path(datadir: Path, key: str, run: int | None, stderr: bool) -> Path:
    journal = Journal.open(datadir, readonly=True)
    try:
        return output_of(journal, datadir, key, run, stderr).path
    finally:
        journal.close()


def output_of(journal: Journal, datadir: Path, key: str, run: int | None, stderr: bool) -> Output:
    """The output file of a unit (``key`` a unit path, in run ``run`` or its latest:
    its current attempt) or of a run id (any attempt's)."""
    if key.startswith("/"):
        chosen = pick_run(journal, key, run)
        ur = unit_row(journal, chosen.id, key)
        if ur is None or not ur["run_id"]:
            raise OperationError(f"{key} has not run in run {chosen.id}", code=Code.UNKNOWN_UNIT)
        run_id, running = str(ur["run_id"]), ur["status"] == Status.RUNNING.value
    else:
        found = journal.find_run_id(key)
        if found is None:
            raise OperationError(
                f"no run with id {key}",
                code=Code.UNKNOWN_UNIT,
                hint="run ids are shown by `ajs3 show --json`",
            )
        run_id, running = key, found.run_id == key and found.status is Status.RUNNING
    # A stream's file is made at its first byte, and the job's directory with the
    # first (ADR 0039): no file is no output (yet). The journal knows the run, and a
    # purge takes its row with its directory.
    path = dd.jobdir(datadir, run_id) / (dd.STDERR if stderr else dd.STDOUT)
    return Output(path, run_id, running)


def log_in(
    journal: Journal,
    datadir: Path,
    key: str,
    run: int | None,
    stderr: bool,
    start: int | None = None,
) -> dict[str, Any]:
    """The `log` answer: :func:`read_log` of the file, with its run id and ``ended``
    (the attempt no longer runs: what follows ``size`` now will not come)."""
    found = output_of(journal, datadir, key, run, stderr)
    return {
        **read_log(found.path, start=start),
        "run_id": found.run_id,
        "ended": not found.running,
    }


def read_log(path: Path, limit: int = LOG_LIMIT, start: int | None = None) -> dict[str, Any]:
    """At most ``limit`` bytes of an output file, base64 in ``data``, from ``offset``:
    the last ones without ``start``, else those from ``start`` on (none when the file
    is not that long); with the file's ``size`` and ``truncated`` when bytes before
    ``offset`` that were asked for are not sent.

    The daemon (root) reads a file in a job's directory, which the job's user may
    write: the last component is not followed if it is a link, and only a regular
    file is read (no FIFO to block on, no device)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:  # nothing written on that stream (yet): no file
        return {"path": str(path), "size": 0, "offset": 0, "truncated": False, "data": ""}
    except OSError as exc:
        raise AjsError(
            f"cannot open output file {path}: {exc.strerror}",
            code=Code.UNSAFE_PATH if exc.errno == errno.ELOOP else Code.UNKNOWN_UNIT,
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise AjsError(f"output file {path} is not a regular file", code=Code.UNSAFE_PATH)
        size = st.st_size
        offset = max(0, size - limit) if start is None else min(start, size)
        data = os.pread(fd, min(limit, size - offset), offset)
    finally:
        os.close(fd)
    return {
        "path": str(path),
        "size": size,
        "offset": offset,
        "truncated": offset > (start or 0),
        "data": base64.b64encode(data).decode("ascii"),
    }
