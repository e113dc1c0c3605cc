"""Suspended jobnets (JP1's ajssuspend): no new scheduled run of the jobnet starts.

``ajs3 suspend JOBNET`` records the suspension in the journal (table ``suspended``)
with who, when and why; the timetable then registers no run of the jobnet that falls
due after that moment. Runs already registered go on, and definitions may be changed
meanwhile (the suspension belongs to the jobnet's path, not to a definition version).
``ajs3 resume JOBNET`` ends it; the runs that fell due while it lasted are handled as
after a logical host was down: by the jobnet's catch-up policy and window
(:func:`ajs3.schedule.catch_up`), from the moment of the suspension to the resume.
A restart or a failover meanwhile keeps the suspension: it is in the journal.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from ajs3.definitions.units import DefinitionSet
from ajs3.errors import Code, OperationError
from ajs3.journal.store import Journal
from ajs3.schedule import Decision, catch_up


@dataclass(frozen=True)
class Suspension:
    """A suspended root jobnet: since when, by whom, why."""

    jobnet: str
    since: float
    user: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find(journal: Journal, jobnet: str) -> Suspension | None:
    row = journal.conn.execute(
        "SELECT jobnet, since, user, reason FROM suspended WHERE jobnet=?", (jobnet,)
    ).fetchone()
    return Suspension(row[0], row[1], row[2], row[3]) if row else None


def every(journal: Journal) -> dict[str, Suspension]:
    """Every suspension, by jobnet (none in a journal of schema 3 not yet migrated,
    read by `ajs3 show` while the logical host is stopped)."""
    try:
        rows = journal.conn.execute("SELECT jobnet, since, user, reason FROM suspended")
        return {r[0]: Suspension(r[0], r[1], r[2], r[3]) for r in rows}
    except sqlite3.OperationalError:
        return {}


def holds_back(journal: Journal, jobnet: str, due: float) -> Suspension | None:
    """The suspension that keeps a run of ``jobnet`` due at ``due`` from being
    registered: a run that fell due before the suspension began is not kept back."""
    found = find(journal, jobnet)
    return found if found is not None and due > found.since else None


def check_root(defs: DefinitionSet, jobnet: str) -> None:
    if jobnet not in defs.jobnets:
        known = ", ".join(sorted(defs.jobnets)) or "none defined"
        raise OperationError(
            f"no root jobnet {jobnet!r} is defined (known: {known})",
            code=Code.UNKNOWN_JOBNET,
            hint="suspend a root jobnet by its path, as `ajs3 show` lists it",
        )


def suspend(
    journal: Journal, defs: DefinitionSet, jobnet: str, user: str, reason: str, now: float
) -> tuple[Suspension, bool]:
    """Suspend ``jobnet``; (the suspension, whether it is new). Suspending a suspended
    jobnet changes nothing (a script may repeat it)."""
    check_root(defs, jobnet)
    found = find(journal, jobnet)
    if found is not None:
        return found, False
    made = Suspension(jobnet, now, user, reason)
    with journal.joined():
        journal.conn.execute(
            "INSERT INTO suspended(jobnet, since, user, reason) VALUES (?, ?, ?, ?)",
            (jobnet, now, user, reason),
        )
    return made, True


def resume(
    journal: Journal, defs: DefinitionSet, jobnet: str, now: float
) -> tuple[Suspension | None, list[Decision]]:
    """End the suspension of ``jobnet``: (the suspension ended or None if there was
    none, the catch-up decisions for the runs that fell due while it lasted). A jobnet
    no longer defined is resumed with nothing to catch up."""
    found = find(journal, jobnet)
    if found is None:
        check_root(defs, jobnet)
        return None, []
    with journal.joined():
        journal.conn.execute("DELETE FROM suspended WHERE jobnet=?", (jobnet,))
    unit = defs.jobnets.get(jobnet)
    if unit is None or unit.schedule is None:
        return found, []
    return found, catch_up(unit, defs, found.since, now)
