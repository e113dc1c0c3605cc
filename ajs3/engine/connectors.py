"""Jobnet connectors at run time: which run of its target a connector waits for, and
how it ends.

A connector (``type: connector``, JP1's jobnet connector) waits while every other
readiness rule passes, until the matching run of its target root jobnet has ended;
then it ends as that run did (normally, with warning, or abnormally for any other end).
Nothing is kept in memory: the matching run is found again from the journal's
``jobnet_runs`` and root unit statuses at every evaluation, so a connector waits and
ends the same after a daemon restart or a failover (docs/definitions.md, Jobnet
connectors). The matching rule itself, :func:`matching`, is a pure function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ajs3.definitions.daybook import DayBook
from ajs3.definitions.units import Match, Unit
from ajs3.engine.readiness import Check
from ajs3.engine.runstate import RunState
from ajs3.journal.store import Journal, UnitRun
from ajs3.model import ReasonCode, Status, UnitKind
from ajs3.tz import local_zone_name, zone


@dataclass(frozen=True)
class TargetRun:
    """One run of a connector's target, as the journal has it."""

    id: int
    scheduled_at: float
    #: The status of its root unit (None: a status this ajs3 does not know).
    status: Status | None


@dataclass(frozen=True)
class Connection:
    """What a connector's readiness rule found: its check, and how it ends when it
    passes (None while it waits)."""

    check: Check
    end: Status | None = None
    target_run: int | None = None


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
    (scheduling day ``day``) waits for, among the target's registered ``runs``.

    - ``scheduling-day``: the target's run of the same scheduling day (``day_of`` gives
      a target run's day); when it has several that day, the last registered of the
      latest scheduled time. None while it has none.
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


def end_status(target: Status | None) -> Status | None:
    """How a connector ends when its target's run ended as ``target`` (None: it has
    not ended). JP1's connector takes the end of its connected jobnet: normal and
    warning as they are; any other end (abnormal, killed, interrupted) is abnormal."""
    if target is None or not target.is_final:
        return None
    if target in (Status.ENDED_NORMALLY, Status.ENDED_WARNING):
        return target
    return Status.ENDED_ABNORMALLY


def target_runs(journal: Journal, jobnet: str) -> list[TargetRun]:
    """Every registered run of root jobnet ``jobnet`` with its root status."""
    rows = journal.conn.execute(
        "SELECT r.id, r.scheduled_at, u.status FROM jobnet_runs r JOIN unit_runs u"
        " ON u.jobnet_run = r.id AND u.path = r.jobnet WHERE r.jobnet = ? ORDER BY r.id",
        (jobnet,),
    )
    found = []
    for run_id, scheduled_at, status in rows:
        known = status in Status._value2member_map_
        found.append(TargetRun(int(run_id), float(scheduled_at), Status(status) if known else None))
    return found


def connection(
    journal: Journal, targets: dict[str, Unit], state: RunState, unit: Unit
) -> Connection:
    """The connection rule of connector ``unit`` in run ``state``: passed when the
    matching run of its target has ended. ``targets`` are the root jobnets now defined
    (for the target's calendar)."""
    target = unit.waits_for or ""
    match = unit.match or Match.SCHEDULING_DAY
    target_root = targets.get(target)
    day = scheduling_day(state.root, state.run.scheduled_at)
    found = matching(
        match,
        target_runs(journal, target),
        scheduled_at=state.run.scheduled_at,
        day=day,
        day_of=lambda stamp: scheduling_day(target_root, stamp),
    )
    which = f"of {day.isoformat()}" if match is Match.SCHEDULING_DAY else "(the latest)"
    if found is None:
        return Connection(
            Check("connection", False, f"waits for {target} run {which} to be registered and end")
        )
    shown = found.status.label if found.status is not None else "an unknown status"
    end = end_status(found.status)
    if end is None:
        return Connection(
            Check(
                "connection",
                False,
                f"waits for {target} run {which} to end (run {found.id}, {shown})",
            ),
            target_run=found.id,
        )
    return Connection(
        Check("connection", True, f"{target} run {which} ended (run {found.id}, {shown})"),
        end=end,
        target_run=found.id,
    )


def waiting_runs(runs: dict[int, RunState]) -> list[int]:
    """The runs in memory with a connector that has not ended: evaluated again when a
    run ends (it may be the run one of them waits for)."""
    return [
        run_no
        for run_no, state in runs.items()
        if any(
            state.units[path].kind is UnitKind.CONNECTOR and not ur.status.is_final
            for path, ur in state.urs.items()
            if path in state.units
        )
    ]


def end_connector(
    journal: Journal, targets: dict[str, Unit], state: RunState, ur: UnitRun, unit: Unit, now: float
) -> None:
    """End a connector whose rules all passed, as the run it waited for ended: started
    and ended in one step, both recorded (the first event names the run)."""
    found = connection(journal, targets, state, unit)
    if found.end is None:  # the caller saw it pass in this very step
        return
    journal.set_status(
        ur,
        Status.RUNNING,
        ReasonCode.STARTED,
        f"connected: {unit.waits_for} run {found.target_run} ended",
        started_at=now,
    )
    journal.set_status(ur, found.end, ReasonCode.TARGET_ENDED, found.check.reason, ended_at=now)
