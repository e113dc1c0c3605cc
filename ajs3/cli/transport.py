"""The one way the `ajs3` command sends a request to a running daemon.

Every request of the command line to a daemon's control socket goes through
:func:`request`, so the protocol can change in one place.
"""

from __future__ import annotations

from typing import Any

from ajs3.service.paths import Paths


def request(paths: Paths, op: str, **fields: Any) -> dict[str, Any]:
    """Ask the daemon of ``paths`` to do ``op``; its result, or its error raised as AjsError
    (AJS3-E302 when no daemon answers)."""
    from ajs3.service import control

    return control.request(paths.socket, {"op": op, **fields})
