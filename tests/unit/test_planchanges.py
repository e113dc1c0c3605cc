"""The effective plan: the timetable with skipped, moved and added runs (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime

from ajs3.definitions.loader import load_texts
from ajs3.engine.planchanges import ChangeKind, Plan, PlanChange, adjust_decisions
from ajs3.engine.timetable import Timetable
from ajs3.schedule import catch_up

DEFS = load_texts(
    [
        (
            "d.yaml",
            """
group: /t
jobnets:
  - name: hourly
    schedule:
      time_zone: UTC
      catch_up: all
      catch_up_window: 6h
      rules:
        - {at: '00:00', repeat: {every: 1h, until: '23:00'}}
    units: [{name: a, command: [/bin/true]}]
""",
        )
    ]
)


def t(hour: int, minute: int = 0) -> float:
    return datetime(2027, 1, 4, hour, minute, tzinfo=UTC).timestamp()


def change(i: int, kind: ChangeKind, due: float | None, at: float | None) -> PlanChange:
    return PlanChange(i, "/t/hourly", kind, due, at, 0.0, "op", "")


PLAN = Plan.of(
    [
        change(1, ChangeKind.SKIP, t(3), None),
        change(2, ChangeKind.MOVE, t(4), t(4, 30)),
        change(3, ChangeKind.ADD, None, t(5, 15)),
    ]
)


def test_the_timetable_registers_the_effective_plan() -> None:
    table = Timetable()
    table.plan = PLAN
    table.catch_up(DEFS, None, t(2, 30))
    due: list[float] = []
    for now in (t(3), t(4), t(4, 30), t(5), t(5, 15), t(6)):
        if table.is_due(now):
            due.extend(o.due for o in table.take_due(DEFS, now))
    assert due == [t(4, 30), t(5), t(5, 15), t(6)]


def test_the_next_wake_includes_an_extra_run_before_the_schedules_next() -> None:
    table = Timetable()
    table.plan = PLAN
    table.catch_up(DEFS, None, t(5, 1))
    assert table.next_due() == t(5, 15)


def test_catch_up_leaves_out_what_was_taken_away_and_decides_extra_runs() -> None:
    unit = DEFS.jobnets["/t/hourly"]
    decisions = catch_up(unit, DEFS, t(2, 30), t(6, 1))
    kept = adjust_decisions(PLAN, DEFS, decisions, None, t(2, 30), t(6, 1))
    assert [(d.due, d.run) for d in kept] == [
        (t(4, 30), True),
        (t(5), True),
        (t(5, 15), True),
        (t(6), True),
    ]
    # another jobnet's resume does not pick up this one's extra runs
    assert adjust_decisions(PLAN, DEFS, [], {"/t/other"}, t(2, 30), t(6, 1)) == []
