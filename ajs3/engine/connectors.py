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

from dataclasses import dataclass

from ajs3.definitions.units import Match, Unit
from ajs3.engine.readiness import Check
from ajs3.engine.runstate import RunState
from ajs3.journal.store import Journal, UnitRun
from ajs3.model import ReasonCode, Status, UnitKind
from ajs3.schedule.connect import TargetRun, matching, scheduling_day


@dataclass(frozen=True)
class Connection:
    """What a connector's readiness rule found: its check, and how it ends when it
    passes (None while it waits)."""

    check: Check
    end: Status | None = None
    target_run: int | None = None


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
