"""The audit trail: who changed what on a logical host, and with which result.

One row per state-changing request (schema version 2, table ``audit``). A request
that carries an idempotency key (``entry``) is found again by its key, so a client
that retries after a lost answer gets the first answer instead of a second run; the
row is written in the same transaction as the change it records.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from ajs3.journal.store import Journal

#: ``code`` of a request that succeeded; otherwise the error code (``AJS3-E...``).
OK = "ok"


@dataclass(frozen=True)
class AuditRecord:
    at: float
    uid: int
    user: str
    op: str
    args: dict[str, Any]
    code: str
    result: dict[str, Any]
    key: str | None


def record(
    journal: Journal,
    *,
    uid: int,
    user: str,
    op: str,
    args: dict[str, Any],
    code: str,
    result: dict[str, Any],
    key: str | None = None,
) -> None:
    """Write one audit row (in the caller's transaction when there is one)."""
    with journal.joined():
        journal.conn.execute(
            "INSERT INTO audit(at, epoch, uid, user, op, args, code, result, request_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                time.time(),
                journal.epoch,
                uid,
                user,
                op,
                json.dumps(args, sort_keys=True, default=str),
                code,
                json.dumps(result, sort_keys=True, default=str),
                key,
            ),
        )


def find_done(journal: Journal, *, uid: int, op: str, key: str) -> AuditRecord | None:
    """The successful request of ``uid`` with this key, if there was one."""
    row = journal.conn.execute(
        "SELECT at, uid, user, op, args, code, result, request_key FROM audit"
        " WHERE uid=? AND op=? AND request_key=? AND code=? ORDER BY id LIMIT 1",
        (uid, op, key, OK),
    ).fetchone()
    return None if row is None else _record(row)


def recent(journal: Journal, limit: int = 100) -> list[AuditRecord]:
    """The newest audit rows, newest first."""
    rows = journal.conn.execute(
        "SELECT at, uid, user, op, args, code, result, request_key FROM audit"
        " ORDER BY id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [_record(r) for r in rows]


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        at=float(row[0]),
        uid=int(row[1]),
        user=str(row[2]),
        op=str(row[3]),
        args=json.loads(row[4]),
        code=str(row[5]),
        result=json.loads(row[6]),
        key=row[7],
    )
