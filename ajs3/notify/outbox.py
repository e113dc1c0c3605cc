"""The outbox: notification events in the journal, and what each route has still to
deliver (schema version 4: ``notify_events``, ``notify_deliveries``).

An event is written in the transaction of the change that causes it, with one
delivery row per route that wants it, so it exists if and only if the change does:
a daemon killed at any moment leaves every undelivered event to the next owner.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from ajs3.journal.store import Journal, UnitRun
from ajs3.model import EventKind, ReasonCode, Status, UnitKind
from ajs3.notify import events as ev
from ajs3.notify_routes import Route

#: At most this many events of one route are read per round of the sender.
BATCH = 50


class Outbox:
    """Writes the events of one logical host into its journal; set as the journal's
    in-transaction hooks by the daemon (:meth:`attach`)."""

    def __init__(self, journal: Journal, routes: tuple[Route, ...], lhost: str, node: str) -> None:
        self.journal = journal
        self.routes = routes
        self.lhost = lhost
        self.node = node
        #: told after an event is written (the sender wakes; the commit may follow)
        self.on_written: Any = None

    def attach(self) -> None:
        """Hook into the journal; without routes there is nothing to write, and the
        status changes pay nothing."""
        if not self.routes:
            return
        self.journal.on_change_tx = self.status_changed
        self.journal.on_note_tx = self.noted

    # -- the journal's hooks (inside its transaction) ---------------------------------------

    def status_changed(self, ur: UnitRun, old: Status, code: ReasonCode) -> None:
        if not self.routes:
            return
        if ur.status not in ev.UNIT_EVENTS and not (
            ur.kind is UnitKind.JOBNET and ur.status.is_final
        ):
            return  # the usual case (waiting, running, a job ended normally): nothing
        row = self.journal.conn.execute(
            "SELECT jobnet FROM jobnet_runs WHERE id=?", (ur.jobnet_run,)
        ).fetchone()
        root = str(row[0]) if row else ""
        kind = ev.status_event(ur.kind, ur.status, is_root=ur.path == root)
        if kind is None:
            return
        fields = ev.unit_fields(
            ur.path,
            ur.jobnet_run,
            root,
            status=ur.status,
            old=old,
            code=code,
            reason=ur.reason,
            run_id=ur.run_id,
            attempt=ur.attempt,
            exit_code=ur.exit_code,
            signal=ur.signal,
        )
        self.write(kind, fields)

    def noted(self, kind: str, data: dict[str, Any]) -> None:
        self.write(EventKind(kind), data)

    # -- writing -----------------------------------------------------------------------------

    def write(
        self, kind: EventKind, fields: dict[str, Any], only: Route | None = None
    ) -> dict[str, Any] | None:
        """Write one event for the routes that want it (``only``: that route, whatever
        its filters) in the caller's transaction; None if no route wants it."""
        if only is None and not self.routes:
            return None
        body = ev.make(kind, fields, lhost=self.lhost, node=self.node, epoch=self.journal.epoch)
        names = (
            [only.name] if only is not None else [r.name for r in self.routes if r.matches(body)]
        )
        if not names:
            return None
        with self.journal.joined():
            cur = self.journal.conn.execute(
                "INSERT INTO notify_events(event_id, at, kind, body) VALUES (?, ?, ?, ?)",
                (body["event_id"], body["at"], body["kind"], json.dumps(body, default=str)),
            )
            self.journal.conn.executemany(
                "INSERT INTO notify_deliveries(event, route) VALUES (?, ?)",
                [(cur.lastrowid, name) for name in names],
            )
            self.journal.sync_at_commit()  # the sender may read it at once (ADR 0034)
        if self.on_written is not None:
            self.on_written()
        return body


# -- reading and marking (the sender's own connection) -------------------------------------


@dataclass(frozen=True)
class Pending:
    event: int
    body: dict[str, Any]
    tries: int


def pending(conn: sqlite3.Connection, route: str, limit: int = BATCH) -> list[Pending]:
    """The oldest events ``route`` has still to deliver, oldest first."""
    rows = conn.execute(
        "SELECT d.event, e.body, d.tries FROM notify_deliveries d"
        " JOIN notify_events e ON e.id = d.event"
        " WHERE d.route=? AND d.delivered_at IS NULL ORDER BY d.event LIMIT ?",
        (route, limit),
    )
    return [Pending(int(r[0]), json.loads(r[1]), int(r[2])) for r in rows]


def mark_delivered(conn: sqlite3.Connection, event: int, route: str) -> None:
    conn.execute(
        "UPDATE notify_deliveries SET delivered_at=?, tries=tries+1, last_error=''"
        " WHERE event=? AND route=?",
        (time.time(), event, route),
    )


def mark_failed(conn: sqlite3.Connection, event: int, route: str, error: str) -> None:
    conn.execute(
        "UPDATE notify_deliveries SET tries=tries+1, last_error=? WHERE event=? AND route=?",
        (error[:1000], event, route),
    )


def counts(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """Per route: how many events wait, and the last error stored of one of them."""
    out: dict[str, dict[str, Any]] = {}
    for route, count in conn.execute(
        "SELECT route, count(*) FROM notify_deliveries WHERE delivered_at IS NULL GROUP BY route"
    ):
        out[str(route)] = {"pending": int(count)}
    return out
