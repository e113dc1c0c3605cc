"""Removing and measuring job directories (``<datadir>/jobs/<run-id>/``) for the purge.

Everything is done relative to a descriptor of ``jobs/`` and never follows a link
(docs/security.md): a name that is not a run id is never touched, a link where a job
directory should be is removed as a link, and a directory's files are removed through
its own descriptor (``shutil.rmtree`` with ``dir_fd``, which resists link swaps).
A directory that is already gone counts as removed: a purge cut short is finished by
the next one.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
from pathlib import Path

#: How a run id (and so a job directory's name) looks: "r" and 20 hex digits
#: (ajs3.engine.dispatch.run_id_for); anything else is not ours to remove.
RUN_ID_RE = re.compile(r"^r[0-9a-f]{8,64}\Z")


def open_jobs(jobs: Path) -> int | None:
    """A descriptor of ``jobs/`` (None: there is none yet)."""
    try:
        return os.open(jobs, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def size(jobs_fd: int, run_id: str) -> int:
    """Bytes of the files of one job directory (0: none, or not a run id)."""
    if not RUN_ID_RE.match(run_id):
        return 0
    try:
        fd = os.open(run_id, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=jobs_fd)
    except OSError:
        return 0
    total = 0
    try:
        for name in os.listdir(fd):
            with contextlib.suppress(OSError):
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    total += st.st_size
    finally:
        os.close(fd)
    return total


def remove(jobs_fd: int, run_id: str) -> int:
    """Remove one job directory; the bytes its files held."""
    if not RUN_ID_RE.match(run_id):
        return 0
    try:
        st = os.stat(run_id, dir_fd=jobs_fd, follow_symlinks=False)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(run_id, dir_fd=jobs_fd)
        return 0
    held = size(jobs_fd, run_id)
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(run_id, dir_fd=jobs_fd)
    return held
