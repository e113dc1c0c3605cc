"""Delay monitoring (JP1's start delay and end delay): a unit with ``delay:`` that has
not started by its latest start, or runs longer than its longest run time, raises a
``start_delay`` or ``end_delay`` event once per unit run and is marked (table
``unit_delays``, shown by ``ajs3 show``). The run goes on: ``timeout`` is what kills.

The scheduler calls :meth:`DelayWatch.check` in each step's transaction and wakes at
:meth:`DelayWatch.next_deadline`.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

from ajs3.definitions.units import Delay, Unit
from ajs3.engine.runstate import RunState
from ajs3.journal.store import Journal, UnitRun
from ajs3.model import PENDING, EventKind, Status
from ajs3.tz import local_zone_name, zone


def start_deadline(delay: Delay, root: Unit, scheduled_at: float) -> float | None:
    """The latest start of a unit of a run scheduled at ``scheduled_at``."""
    if delay.start_by_after is not None:
        return scheduled_at + delay.start_by_after
    if delay.start_by_clock is None:
        return None
    tz = zone(root.schedule.time_zone if root.schedule else local_zone_name())
    day = datetime.fromtimestamp(scheduled_at, tz).date()
    midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
    wall = midnight + timedelta(minutes=delay.start_by_clock)
    # a wall time, in the zone (across a DST change the offset of the time itself)
    return datetime.combine(wall.date(), wall.time(), tzinfo=tz).timestamp()


def delays_of(conn: sqlite3.Connection, run: int) -> dict[int, list[str]]:
    """The delays raised in a run, by unit run id (for ``ajs3 show``); an older journal
    without the table has none."""
    try:
        rows = conn.execute(
            "SELECT d.unit_run, d.kind FROM unit_delays d JOIN unit_runs u ON u.id = d.unit_run"
            " WHERE u.jobnet_run=? ORDER BY d.at",
            (run,),
        )
        found: dict[int, list[str]] = {}
        for unit_run, kind in rows:
            found.setdefault(int(unit_run), []).append(str(kind))
        return found
    except sqlite3.OperationalError:
        return {}


class DelayWatch:
    def __init__(self, journal: Journal, runs: dict[int, RunState]) -> None:
        self.journal = journal
        self.runs = runs
        #: the runs looked at once; of those, the paths of the units with ``delay:``
        self._seen: set[int] = set()
        self._watched: dict[int, list[str]] = {}
        #: (unit run id, kind) raised already (the table's key says so across restarts)
        self._raised: set[tuple[int, str]] = set()
        self._next: float | None = None

    def forget(self) -> None:
        """After a rolled-back transaction: know only what the journal knows (its
        ``unit_delays`` keep a delay from being raised twice)."""
        self._raised.clear()
        self._seen.clear()
        self._watched.clear()

    def next_deadline(self) -> float | None:
        return self._next

    def check(self, now: float) -> None:
        """Raise every delay crossed by ``now`` (in the caller's transaction). Only the
        runs with a ``delay:`` somewhere are looked at again: a host without delays pays
        one set difference of run numbers per step."""
        for run_no in self.runs.keys() - self._seen:
            self._seen.add(run_no)
            paths = [p for p, u in self.runs[run_no].units.items() if u.delay is not None]
            if paths:
                self._watched[run_no] = paths
        if len(self._seen) > 2 * len(self.runs) + 64:
            self._seen &= self.runs.keys()
        upcoming: list[float] = []
        for run_no, paths in list(self._watched.items()):
            state = self.runs.get(run_no)
            if state is None:  # ended: looked at afresh if a rerun loads it again
                del self._watched[run_no]
                self._seen.discard(run_no)
                continue
            for path in paths:
                ur = state.urs.get(path)
                delay = state.units[path].delay
                if ur is None or delay is None:
                    continue
                due = self._due(state, ur, delay)
                if due is None:
                    continue
                kind, at, detail = due
                if (ur.id, kind) in self._raised:
                    continue
                if at > now:
                    upcoming.append(at)
                    continue
                self._raise(state, ur, kind, at, detail)
        self._next = min(upcoming) if upcoming else None

    def _due(self, state: RunState, ur: UnitRun, delay: Delay) -> tuple[str, float, str] | None:
        if ur.status in PENDING:
            at = start_deadline(delay, state.root, state.run.scheduled_at)
            if at is None:
                return None
            return EventKind.START_DELAY.value, at, "not started by its latest start"
        if ur.status is Status.RUNNING and delay.longest is not None and ur.started_at:
            return (
                EventKind.END_DELAY.value,
                ur.started_at + delay.longest,
                f"running longer than its longest run time ({delay.longest:g} s)",
            )
        return None

    def _raise(self, state: RunState, ur: UnitRun, kind: str, at: float, detail: str) -> None:
        self._raised.add((ur.id, kind))
        with self.journal.joined():
            cur = self.journal.conn.execute(
                "INSERT OR IGNORE INTO unit_delays(unit_run, kind, at) VALUES (?, ?, ?)",
                (ur.id, kind, at),
            )
            if cur.rowcount != 1:
                return  # raised before a restart
            fields: dict[str, Any] = {
                "unit": ur.path,
                "jobnet": state.root.path,
                "run": state.run.id,
                "run_id": ur.run_id,
                "attempt": ur.attempt,
                "status": ur.status.value,
                "deadline": at,
                "detail": detail,
            }
            self.journal.note(kind, **fields)
