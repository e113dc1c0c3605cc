"""Files that steer the daemon (definitions, settings) must be the daemon's alone.

A definition decides what runs as which user; a file that another user may write is a
way for that user to run anything as anyone. Such a file is refused, naming its path
and mode, instead of being applied.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ajs3.errors import AjsError, Code


def unsafe_reason(st: os.stat_result) -> str | None:
    """Why a file with this status is not safe to act on, or None when it is."""
    if st.st_uid not in (0, os.geteuid()):
        return f"owned by uid {st.st_uid}, not by root or the daemon's user (uid {os.geteuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"mode {stat.S_IMODE(st.st_mode):04o} lets group or others write it"
    return None


def refuse_unsafe(path: Path, st: os.stat_result | None = None) -> None:
    """Raise AJS3-E114 when ``path`` (already stat'ed as ``st``, or now) is unsafe."""
    st = st if st is not None else os.stat(path)
    why = unsafe_reason(st)
    if why is not None:
        raise AjsError(
            f"{path}: refused: {why}",
            code=Code.UNSAFE_FILE,
            hint=f"chown it to the daemon's user and `chmod go-w {path}`",
        )


def read_regular(path: Path, limit: int = 1 << 30) -> bytes | None:
    """The first ``limit`` bytes of a regular file, never through a symbolic link
    (``O_NOFOLLOW``) and never blocking on a FIFO (``O_NONBLOCK``); None if there is no
    such file or it cannot be opened. An error while reading is raised (OSError)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks: list[bytes] = []
        size = 0
        while size < limit:
            chunk = os.read(fd, min(limit - size, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
