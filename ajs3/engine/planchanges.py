"""Changes of single scheduled runs (JP1's temporary plan changes, ajsplan): skip a
run, move it to another time, or add an extra run.

Each change is a row of the journal's ``plan_changes`` table with who, when and why;
the effective plan of a jobnet is its schedule's runs, less those skipped or moved
away, plus those added or moved to (:class:`Plan`). The timetable
(:mod:`ajs3.engine.timetable`) registers runs from the effective plan, at every start
(catch-up) as in the daemon's loop, so a change holds across restarts and failovers.

A change names a run by its time. A skip or a move of a time that is an added run (or
the target of a move) changes that extra run instead: ``--skip`` of an added run
takes it away again. A run that is already due cannot be changed (AJS3-E408).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ajs3.definitions.units import CatchUp, DefinitionSet, Unit
from ajs3.errors import AjsError, Code
from ajs3.journal.store import Journal
from ajs3.schedule import Decision, Occurrence, occurrence_details
from ajs3.schedule.catchup import human
from ajs3.tz import zone


class ChangeKind(StrEnum):
    """What a plan change does to one run."""

    SKIP = "skip"
    """The scheduled run at ``due`` does not run."""
    MOVE = "move"
    """The scheduled run at ``due`` runs at ``at`` instead."""
    ADD = "add"
    """An extra run at ``at``."""


@dataclass(frozen=True)
class PlanChange:
    id: int
    jobnet: str
    kind: ChangeKind
    #: the scheduled run taken away (skip, move), UTC
    due: float | None
    #: the run added (add, move), UTC
    at: float | None
    made_at: float
    user: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _key(ts: float) -> float:
    return round(ts, 3)


@dataclass(frozen=True)
class Plan:
    """The plan changes in force: which scheduled runs are taken away, which added."""

    changes: tuple[PlanChange, ...] = ()
    removed: frozenset[tuple[str, float]] = field(default_factory=frozenset)
    #: (time, jobnet), in time order
    extras: tuple[tuple[float, str], ...] = ()

    @staticmethod
    def of(changes: list[PlanChange]) -> Plan:
        removed = frozenset((c.jobnet, _key(c.due)) for c in changes if c.due is not None)
        extras = tuple(sorted((c.at, c.jobnet) for c in changes if c.at is not None))
        return Plan(tuple(changes), removed, extras)

    def removes(self, jobnet: str, due: float) -> bool:
        return (jobnet, _key(due)) in self.removed

    def next_extra(self, after: float) -> float | None:
        return next((at for at, _ in self.extras if at > after), None)

    def extras_between(self, after: float, until: float) -> list[Occurrence]:
        """The extra runs due in ``(after, until]``, as occurrences of no rule (-1)."""
        return [Occurrence(j, at, -1, None) for at, j in self.extras if after < at <= until]

    def of_jobnet(self, jobnet: str) -> list[PlanChange]:
        return [c for c in self.changes if c.jobnet == jobnet]


# -- the journal ---------------------------------------------------------------------


def _row(r: sqlite3.Row | tuple[Any, ...]) -> PlanChange:
    return PlanChange(r[0], r[1], ChangeKind(r[2]), r[3], r[4], r[5], r[6], r[7])


_COLUMNS = "id, jobnet, kind, due, at, made_at, user, reason"


def load(journal: Journal) -> Plan:
    """The changes in force (none in a journal of schema 3 not yet migrated)."""
    try:
        rows = journal.conn.execute(
            f"SELECT {_COLUMNS} FROM plan_changes WHERE cancelled=0 ORDER BY id"
        ).fetchall()
    except sqlite3.OperationalError:
        return Plan()
    return Plan.of([_row(r) for r in rows])


def _insert(
    journal: Journal,
    jobnet: str,
    kind: ChangeKind,
    due: float | None,
    at: float | None,
    user: str,
    reason: str,
) -> PlanChange:
    now = time.time()
    cur = journal.conn.execute(
        "INSERT INTO plan_changes(jobnet, kind, due, at, made_at, user, reason)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (jobnet, kind.value, due, at, now, user, reason),
    )
    return PlanChange(int(cur.lastrowid or 0), jobnet, kind, due, at, now, user, reason)


# -- making a change ---------------------------------------------------------------------


def resolve_time(text: str, unit: Unit, what: str) -> float:
    """A time given by an operator (ISO 8601); without an offset, in the jobnet's zone
    (UTC for a jobnet without a schedule)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise AjsError(
            f"cannot read {what} {text!r}",
            code=Code.BAD_ARGUMENT,
            hint="use ISO 8601, e.g. 2027-01-04T02:00 (in the jobnet's time zone) "
            "or 2027-01-04T02:00+09:00",
        ) from None
    if moment.tzinfo is None:
        name = unit.schedule.time_zone if unit.schedule is not None else "UTC"
        moment = moment.replace(tzinfo=zone(name))
    return moment.timestamp()


def show_time(ts: float, unit: Unit | None) -> str:
    name = unit.schedule.time_zone if unit is not None and unit.schedule is not None else "UTC"
    return datetime.fromtimestamp(ts, UTC).astimezone(zone(name)).isoformat(timespec="seconds")


def _not_in_plan(message: str, jobnet: str) -> AjsError:
    return AjsError(
        message,
        code=Code.NOT_IN_PLAN,
        hint=f"see the runs planned with `ajs3 plan {jobnet} --from ... --to ...`",
    )


def scheduled_at(unit: Unit, when: float) -> float | None:
    """The scheduled run of ``unit`` at ``when`` (within a second), or None."""
    for occ in occurrence_details(unit, when - 1.0, when + 1.0):
        if abs(occ.due - when) < 1.0:
            return occ.due
    return None


def change(
    journal: Journal,
    defs: DefinitionSet,
    plan: Plan,
    *,
    jobnet: str,
    kind: ChangeKind,
    when: str,
    to: str | None,
    user: str,
    reason: str,
    now: float,
) -> dict[str, Any]:
    """Make one plan change (checked first; AJS3-E408 for a time not in the plan or
    already due, AJS3-E406 for a wrong combination). What it did, for the answer."""
    unit = defs.jobnets.get(jobnet)
    if unit is None:
        known = ", ".join(sorted(defs.jobnets)) or "none defined"
        raise AjsError(
            f"no root jobnet {jobnet!r} is defined (known: {known})",
            code=Code.UNKNOWN_JOBNET,
            hint="give a root jobnet path, as `ajs3 show` lists it",
        )
    if (kind is ChangeKind.MOVE) != (to is not None):
        raise AjsError(
            "a move needs --to, and only a move takes it",
            code=Code.BAD_ARGUMENT,
            hint="`ajs3 plan JOBNET --move WHEN --to WHEN`",
        )
    at = resolve_time(when, unit, "the run's time")
    target = resolve_time(to, unit, "--to") if to is not None else None
    for moment, what in ((at, "the run"), (target, "the new time")):
        if moment is not None and moment <= now:
            raise _not_in_plan(
                f"{what} {show_time(moment, unit)} of {jobnet} is not in the future: "
                "a run that fell due cannot be changed",
                jobnet,
            )
    extras = [c for c in plan.of_jobnet(jobnet) if c.at is not None]
    extra = next((c for c in extras if c.at is not None and abs(c.at - at) < 1.0), None)

    def occupied(moment: float) -> bool:
        """A run of the changed plan at ``moment`` already (within a second)."""
        if any(c.at is not None and abs(c.at - moment) < 1.0 for c in extras):
            return True
        due = scheduled_at(unit, moment)
        return due is not None and not plan.removes(jobnet, due)

    for moment in (at,) if kind is ChangeKind.ADD else () if target is None else (target,):
        if occupied(moment):
            raise _not_in_plan(f"{jobnet} already runs at {show_time(moment, unit)}", jobnet)
    with journal.joined():
        if kind is ChangeKind.ADD:
            made = _insert(journal, jobnet, kind, None, at, user, reason)
            return {"change": made.to_dict(), "note": f"extra run at {show_time(at, unit)}"}
        if extra is not None:  # a skip or move of an added run, or of a moved one
            journal.conn.execute("UPDATE plan_changes SET cancelled=1 WHERE id=?", (extra.id,))
            gone = f"the extra run at {show_time(at, unit)}"
            if extra.kind is ChangeKind.MOVE and extra.due is not None:
                # the scheduled run it was moved from stays taken away; now elsewhere
                made = _insert(journal, jobnet, kind, extra.due, target, user, reason)
            elif target is not None:
                made = _insert(journal, jobnet, ChangeKind.ADD, None, target, user, reason)
            else:
                return {
                    "change": None,
                    "cancelled": extra.to_dict(),
                    "note": f"{gone} no longer runs",
                }
            note = f"{gone} " + (
                "no longer runs" if target is None else f"moved to {show_time(target, unit)}"
            )
            return {"change": made.to_dict(), "cancelled": extra.to_dict(), "note": note}
        due = scheduled_at(unit, at)
        if due is None:
            raise _not_in_plan(f"{jobnet} has no scheduled run at {show_time(at, unit)}", jobnet)
        if plan.removes(jobnet, due):
            raise _not_in_plan(
                f"the run of {jobnet} at {show_time(due, unit)} is skipped or moved already",
                jobnet,
            )
        made = _insert(journal, jobnet, kind, due, target, user, reason)
    note = f"run of {show_time(due, unit)} " + (
        "skipped" if target is None else f"moved to {show_time(target, unit)}"
    )
    return {"change": made.to_dict(), "note": note}


# -- what the timetable does with the plan ---------------------------------------------


def adjust_decisions(
    plan: Plan,
    defs: DefinitionSet,
    decisions: list[Decision],
    jobnets: set[str] | None,
    after: float,
    now: float,
) -> list[Decision]:
    """Catch-up decisions with the plan changes applied: a run skipped or moved away is
    not caught up; an extra run that fell due in ``(after, now]`` (of ``jobnets``, or of
    every jobnet) follows its jobnet's catch-up policy and window."""
    kept = [d for d in decisions if not plan.removes(d.jobnet, d.due)]
    for occ in plan.extras_between(after, now):
        if jobnets is not None and occ.jobnet not in jobnets:
            continue
        unit = defs.jobnets.get(occ.jobnet)
        if unit is None:
            continue
        late = now - occ.due
        schedule = unit.schedule
        label = f"extra run of {show_time(occ.due, unit)}"
        if schedule is not None and schedule.catch_up is CatchUp.SKIP:
            kept.append(
                Decision(
                    occ.jobnet,
                    occ.due,
                    False,
                    f"{label} skipped: missed by {human(late)}, catch-up skip",
                )
            )
        elif schedule is not None and late > schedule.catch_up_window:
            kept.append(
                Decision(
                    occ.jobnet,
                    occ.due,
                    False,
                    f"{label} skipped: missed by {human(late)}, window "
                    f"{human(schedule.catch_up_window)}",
                )
            )
        else:
            kept.append(
                Decision(
                    occ.jobnet, occ.due, True, f"{label} started late: missed by {human(late)}"
                )
            )
    kept.sort(key=lambda d: (d.due, d.jobnet))
    return kept


def upcoming(plan: Plan, jobnet: str, now: float) -> list[dict[str, Any]]:
    """The changes of ``jobnet`` that still matter at ``now`` (for ``ajs3 show``)."""
    return [c.to_dict() for c in plan.of_jobnet(jobnet) if max(c.due or 0.0, c.at or 0.0) > now]
