"""`ajs3 purge` waits for the purge round it asked for: the daemon's ``purge_status``
read again and again until that round is done, its progress (jobnets walked of those
with runs) told to a callback (ajs3.progress; the CLI draws it as a bar)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ajs3.errors import AjsError, Code
from ajs3.progress import Progress, silent

#: Seconds between two reads of the purge's status.
POLL = 0.2


def wait_round(
    status: Callable[[], dict[str, Any]],
    wanted: int,
    timeout: float | None,
    progress: Progress = silent,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The purge's status once round ``wanted`` is done (``status``: the daemon's
    answer to ``purge_status``); AJS3-E403 after ``timeout`` seconds (None: never)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    done, total = 0, None
    while True:
        now = status()
        walk = now.get("progress") or {}
        if walk.get("round") == wanted:
            done, total = max(done, int(walk["done"])), int(walk["jobnets"])
            progress("purge", done, total)
        if int(now["rounds_completed"]) >= wanted:
            final = max(done, total or 0)
            progress("purge", final, final)
            return now
        if deadline is not None and time.monotonic() > deadline:
            raise AjsError(
                f"purge round {wanted} did not end within {timeout:g} s; it goes on in "
                "the background",
                code=Code.BAD_STATE,
                hint="see `ajs3 purge --dry-run` for what is left",
            )
        sleep(POLL)
