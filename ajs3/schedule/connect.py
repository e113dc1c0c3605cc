"""The matching rule of jobnet connectors, and what ``ajs3 plan`` forecasts of it.

A connector (``type: connector``) waits for one run of its target root jobnet
(docs/definitions.md, Jobnet connectors): :func:`matching` says which, among runs
registered (the daemon) or planned (:func:`planned_waits`, for ``plan``). Pure
functions of the definitions and the times given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial

from ajs3.definitions.daybook import DayBook
from ajs3.definitions.units import DefinitionSet, Match, Unit
from ajs3.model import Status, UnitKind
from ajs3.schedule.forecast import occurrence_details
from ajs3.tz import local_zone_name, zone

#: How far back ``plan`` looks for the run a ``latest`` connector waits for (days).
LATEST_LOOKBACK_DAYS = 31


@dataclass(frozen=True)
class TargetRun:
    """One run of a connector's target: registered (``id`` its run number) or planned
    (``id`` its place in the forecast)."""

    id: int
    scheduled_at: float
    #: The status of its root unit (None: unknown, or only planned).
    status: Status | None


def scheduling_day(root: Unit | None, stamp: float) -> date:
    """The scheduling day a run of root jobnet ``root`` scheduled at ``stamp`` belongs
    to: the date in the jobnet's schedule time zone, counted from its calendar's base
    time (without a schedule: the machine's zone, base time 00:00)."""
    schedule = root.schedule if root is not None else None
    if schedule is None:
        tz, base = zone(local_zone_name()), 0
    else:
        tz, base = zone(schedule.time_zone), DayBook(schedule.calendar).base_time
    return (datetime.fromtimestamp(stamp, tz) - timedelta(minutes=base)).date()


def matching(
    match: Match,
    runs: Iterable[TargetRun],
    *,
    scheduled_at: float,
    day: date,
    day_of: Callable[[float], date],
) -> TargetRun | None:
    """The run of the target that a connector of a run scheduled at ``scheduled_at``
    (scheduling day ``day``) waits for, among the target's ``runs``.

    - ``scheduling-day``: the target's run of the same scheduling day (``day_of`` gives
      a target run's day); when it has several that day, the one of the latest
      scheduled time, the last registered of those. None while it has none.
    - ``latest``: the target's newest run scheduled at or before ``scheduled_at``;
      when there is none, its first run scheduled after it. None while it has none.
    """
    ordered = sorted(runs, key=lambda r: (r.scheduled_at, r.id))
    if match is Match.SCHEDULING_DAY:
        same = [r for r in ordered if day_of(r.scheduled_at) == day]
        return same[-1] if same else None
    before = [r for r in ordered if r.scheduled_at <= scheduled_at]
    if before:
        return before[-1]
    return ordered[0] if ordered else None


@dataclass(frozen=True)
class PlannedWait:
    """What one connector of a planned run waits for."""

    connector: str
    target: str
    match: Match
    #: The scheduling day of the waiting run (what ``scheduling-day`` matches).
    day: date
    #: When the planned run of the target it waits for is due (None: none is planned).
    target_due: float | None

    def describe(self, show: Callable[[float], str]) -> str:
        which = (
            f"run of {self.day.isoformat()}" if self.match is Match.SCHEDULING_DAY else "latest run"
        )
        if self.target_due is None:
            return f"{self.connector} waits for a {which} of {self.target}: none is planned"
        return (
            f"{self.connector} waits for the {which} of {self.target}, due "
            f"{show(self.target_due)}: what follows it starts after that run ends"
        )


def planned_waits(defs: DefinitionSet, jobnet: str, due: float) -> list[PlannedWait]:
    """For a planned run of ``jobnet`` due at ``due``: each of its connectors and the
    planned run of the target it would wait for (from the target's schedule alone; a
    run entered by hand is not planned)."""
    root = defs.jobnets.get(jobnet)
    if root is None:
        return []
    waits: list[PlannedWait] = []
    day = scheduling_day(root, due)
    for unit in root.walk():
        if unit.kind is not UnitKind.CONNECTOR or unit.waits_for is None:
            continue
        target = defs.jobnets.get(unit.waits_for)
        match = unit.match or Match.SCHEDULING_DAY
        if match is Match.SCHEDULING_DAY:
            lo, hi = due - 3 * 86400.0, due + 3 * 86400.0
        else:
            lo, hi = due - LATEST_LOOKBACK_DAYS * 86400.0, due + 1.0
        occurrences = [] if target is None else occurrence_details(target, lo, hi)
        runs = [TargetRun(i, o.due, None) for i, o in enumerate(occurrences)]
        if match is Match.LATEST:
            runs = [r for r in runs if r.scheduled_at <= due]
        found = matching(
            match,
            runs,
            scheduled_at=due,
            day=day,
            day_of=partial(scheduling_day, target),
        )
        waits.append(
            PlannedWait(
                unit.path,
                unit.waits_for,
                match,
                day,
                None if found is None else found.scheduled_at,
            )
        )
    return waits
