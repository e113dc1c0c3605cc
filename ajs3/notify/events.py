"""What a notification event carries (its kinds: ajs3.model.EventKind) (docs/notifications.md).

An event is a flat JSON object; its ``event_id`` is made once, when the event is
written to the outbox, and never changes: a receiver drops a second copy by it (a
copy is sent again only when a daemon died between sending and recording).
"""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Any

from ajs3.model import ENDED_BADLY, EventKind, ReasonCode, Status, UnitKind


class Severity(StrEnum):
    """How urgent an event is; a syslog route uses it as the line's severity."""

    ERR = "err"
    WARNING = "warning"
    INFO = "info"


#: The status a unit (not the root jobnet) changes to -> the event it raises.
UNIT_EVENTS: dict[Status, EventKind] = {
    Status.ENDED_ABNORMALLY: EventKind.UNIT_ENDED_ABNORMALLY,
    Status.ENDED_WARNING: EventKind.UNIT_ENDED_WARNING,
    Status.KILLED: EventKind.UNIT_KILLED,
    Status.FAILED_TO_START: EventKind.UNIT_FAILED_TO_START,
    Status.UNKNOWN: EventKind.UNIT_UNKNOWN,
    Status.HELD: EventKind.UNIT_HELD,
}

_ERR_KINDS = frozenset(
    {
        EventKind.UNIT_ENDED_ABNORMALLY,
        EventKind.UNIT_KILLED,
        EventKind.UNIT_FAILED_TO_START,
        EventKind.UNIT_UNKNOWN,
    }
)
_WARNING_KINDS = frozenset(
    {EventKind.UNIT_ENDED_WARNING, EventKind.START_DELAY, EventKind.END_DELAY}
)
_BAD_STATUSES = frozenset(s.value for s in ENDED_BADLY)


def severity(kind: str, status: str | None) -> Severity:
    """err for an abnormal end, warning for a warning or a delay, info otherwise."""
    if kind in _ERR_KINDS:
        return Severity.ERR
    if kind in _WARNING_KINDS:
        return Severity.WARNING
    if kind == EventKind.JOBNET_ENDED and status is not None:
        if status in _BAD_STATUSES:
            return Severity.ERR
        if status == Status.ENDED_WARNING.value:
            return Severity.WARNING
    return Severity.INFO


def status_event(kind: UnitKind, new: Status, is_root: bool) -> EventKind | None:
    """The event a status change raises, if any: a root jobnet's end raises
    ``jobnet_ended`` (whatever its status), any other change the event of its status
    (a root jobnet held raises ``unit_held`` like any unit)."""
    if is_root and kind is UnitKind.JOBNET and new.is_final:
        return EventKind.JOBNET_ENDED
    return UNIT_EVENTS.get(new)


def unit_fields(
    path: str,
    run: int,
    jobnet: str,
    *,
    status: Status,
    old: Status,
    code: ReasonCode,
    reason: str,
    run_id: str | None,
    attempt: int,
    exit_code: int | None,
    signal: int | None,
) -> dict[str, Any]:
    """What an event about one unit run says of it."""
    return {
        "unit": path,
        "jobnet": jobnet,
        "run": run,
        "run_id": run_id,
        "attempt": attempt,
        "status": status.value,
        "status_label": status.label,
        "old_status": old.value,
        "exit_code": exit_code,
        "signal": signal,
        "code": code.value,
        "reason": reason,
    }


def make(
    kind: str, fields: dict[str, Any], *, lhost: str, node: str, epoch: int | None
) -> dict[str, Any]:
    """A whole event body: a new event id, when, where, how urgent, and a one-line
    message a person can act on."""
    now = time.time()
    body: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "kind": str(kind),
        "at": now,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "lhost": lhost,
        "node": node,
        "epoch": epoch,
        **fields,
    }
    body["severity"] = severity(str(kind), body.get("status")).value
    body["message"] = message(body)
    return body


def message(body: dict[str, Any], *, detail: bool = True) -> str:
    """One line: logical host, what happened, unit, status, exit code, run id."""
    parts = [f"[{body.get('lhost')}] {body.get('kind')}"]
    if body.get("unit"):
        parts.append(str(body["unit"]))
    if body.get("status"):
        parts.append(str(body["status"]))
    if body.get("exit_code") is not None:
        parts.append(f"exit {body['exit_code']}")
    if body.get("signal") is not None:
        parts.append(f"signal {body['signal']}")
    if body.get("run_id"):
        parts.append(f"run id {body['run_id']}")
    elif body.get("run") is not None:
        parts.append(f"run {body['run']}")
    why = body.get("reason") or body.get("detail")
    if why and detail:
        parts.append(f"- {why}")
    return " ".join(parts)
