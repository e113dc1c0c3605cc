"""The one way the `ajs3` command sends a request to a running daemon.

Every request of the command line to a daemon's control socket goes through
:func:`request`, which hands it to the one client of the control protocol
(:class:`ajs3.service.client.Client`): the request is checked against the protocol's
definitions before it is sent, and an `entry` carries an idempotency key.
"""

from __future__ import annotations

from typing import Any

from ajs3.service.paths import Paths


def request(paths: Paths, op: str, **fields: Any) -> dict[str, Any]:
    """Ask the daemon of ``paths`` to do ``op``; its result, or its error raised as AjsError
    (AJS3-E302 when no daemon answers, AJS3-E314 when a change was sent and no answer
    came)."""
    from ajs3.service.client import Client

    return Client(paths.socket).call(op, **fields)
