"""The effective plan: the timetable with skipped, moved and added runs (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ajs3.definitions.loader import load_texts
from ajs3.engine.planchanges import (
    ChangeKind,
    Plan,
    PlanChange,
    adjust_decisions,
    change,
    load,
)
from ajs3.engine.timetable import Timetable
from ajs3.errors import AjsError
from ajs3.journal.store import Journal
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


def row(i: int, kind: ChangeKind, due: float | None, at: float | None) -> PlanChange:
    return PlanChange(i, "/t/hourly", kind, due, at, 0.0, "op", "")


PLAN = Plan.of(
    [
        row(1, ChangeKind.SKIP, t(3), None),
        row(2, ChangeKind.MOVE, t(4), t(4, 30)),
        row(3, ChangeKind.ADD, None, t(5, 15)),
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


def test_changes_in_a_journal_refuse_what_is_not_in_the_plan(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    now = t(1)

    def do(kind: ChangeKind, when: float, to: float | None = None) -> dict[str, object]:
        return change(
            journal,
            DEFS,
            load(journal),
            jobnet="/t/hourly",
            kind=kind,
            when=datetime.fromtimestamp(when, UTC).isoformat(),
            to=None if to is None else datetime.fromtimestamp(to, UTC).isoformat(),
            user="op",
            reason="r",
            now=now,
        )

    def refused(kind: ChangeKind, when: float, to: float | None = None) -> str:
        with pytest.raises(AjsError) as caught:
            do(kind, when, to)
        return caught.value.code.value

    try:
        assert refused(ChangeKind.SKIP, t(0)) == "AJS3-E408"  # due already
        assert refused(ChangeKind.SKIP, t(3, 5)) == "AJS3-E408"  # no run then
        assert refused(ChangeKind.ADD, t(3)) == "AJS3-E408"  # a run is there
        assert refused(ChangeKind.MOVE, t(3), t(4)) == "AJS3-E408"  # onto another run
        assert refused(ChangeKind.MOVE, t(3)) == "AJS3-E406"  # where to?
        do(ChangeKind.MOVE, t(3), t(3, 30))
        assert refused(ChangeKind.SKIP, t(3)) == "AJS3-E408"  # moved away already
        assert "moved to" in str(do(ChangeKind.MOVE, t(3, 30), t(3, 45))["note"])
        do(ChangeKind.ADD, t(3))  # the time is free again
        plan = load(journal)
        assert plan.removes("/t/hourly", t(3)) and not plan.removes("/t/hourly", t(4))
        assert [at for at, _ in plan.extras] == [t(3), t(3, 45)]
        assert "no longer runs" in str(do(ChangeKind.SKIP, t(3, 45))["note"])
        plan = load(journal)
        assert [at for at, _ in plan.extras] == [t(3)] and plan.removes("/t/hourly", t(3))
    finally:
        journal.close()
