"""Property-based tests of the rule engine (hypothesis)."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from ajs3.definitions.daybook import DayBook
from ajs3.definitions.units import DefinitionSet, Period, Rule, Schedule, Unit
from ajs3.model import UnitKind
from ajs3.schedule import next_due, occurrences
from ajs3.schedule.calendar import picks

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Lord_Howe",
    "UTC",
    "America/Santiago",
]


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    at = draw(st.integers(0, 23 * 60 + 59))
    kind = draw(st.sampled_from(["daily", "weekdays", "days", "every"]))
    repeat_every = repeat_until = None
    if draw(st.booleans()):
        repeat_every = draw(st.sampled_from([15, 30, 60, 90]))
        repeat_until = draw(st.integers(at, 23 * 60 + 59))
    common = {"at": at, "repeat_every": repeat_every, "repeat_until": repeat_until}
    if kind == "weekdays":
        days = draw(st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True))
        return Rule(**common, weekdays=tuple(sorted(days)), period=Period.WEEK)
    if kind == "days":
        days = draw(
            st.lists(st.integers(-31, 31).filter(bool), min_size=1, max_size=4, unique=True)
        )
        return Rule(**common, days=tuple(days))
    if kind == "every":
        return Rule(**common, every=draw(st.integers(1, 9)), start_date="2026-12-30")
    return Rule(**common)


def jobnet(zone: str, rule_list: list[Rule]) -> tuple[Unit, DefinitionSet]:
    unit = Unit(
        name="n",
        path="/n",
        kind=UnitKind.JOBNET,
        schedule=Schedule(time_zone=zone, rules=tuple(rule_list)),
    )
    return unit, DefinitionSet(jobnets={"/n": unit})


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    rule_list=st.lists(rules(), min_size=1, max_size=3),
    offset_days=st.integers(0, 330),
    span_days=st.integers(1, 40),
)
def test_times_increase_satisfy_their_rule_and_never_repeat(
    zone: str, rule_list: list[Rule], offset_days: int, span_days: int
) -> None:
    unit, defs = jobnet(zone, rule_list)
    start = datetime(2027, 1, 1, tzinfo=ZoneInfo("UTC")).timestamp() + offset_days * 86400
    end = start + span_days * 86400
    times = occurrences(unit, defs, start, end)
    assert all(a < b for a, b in pairwise(times))
    assert all(start <= t < end for t in times)
    tz = ZoneInfo(zone)
    book = DayBook(None)
    for t in times:
        wall = datetime.fromtimestamp(t, tz)
        minutes = wall.hour * 60 + wall.minute
        at_gap_end = datetime.fromtimestamp(t - 1, tz).utcoffset() != wall.utcoffset()
        ok = False
        for rule in rule_list:
            slots = [rule.at]
            if rule.repeat_every and rule.repeat_until is not None:
                slots = list(range(rule.at, rule.repeat_until + 1, rule.repeat_every))
            if minutes in slots and picks(rule, wall.date(), book):
                ok = True
            # A time in a spring-forward gap fires at the gap's end, same date.
            if at_gap_end and picks(rule, wall.date(), book):
                ok = True
            # The gap may begin before midnight (Santiago, Lord Howe keep it at 00:00/02:00).
            if at_gap_end and picks(rule, wall.date() - timedelta(days=1), book):
                ok = True
        assert ok, (wall.isoformat(), rule_list)
    # Each wall slot of a day fires once: no two times share a wall time and a date.
    walls = [datetime.fromtimestamp(t, tz).replace(tzinfo=None) for t in times]
    assert len(walls) == len(set(walls))


@settings(max_examples=40, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    rule_list=st.lists(rules(), min_size=1, max_size=2),
    offset=st.floats(0, 300 * 86400),
)
def test_next_due_is_the_first_occurrence_after(
    zone: str, rule_list: list[Rule], offset: float
) -> None:
    unit, defs = jobnet(zone, rule_list)
    after = datetime(2027, 1, 1, tzinfo=ZoneInfo("UTC")).timestamp() + offset
    found = next_due(defs, after)
    window = [t for t in occurrences(unit, defs, after, after + 120 * 86400) if t > after]
    if window:
        assert found == (window[0], "/n")
    else:
        assert found is None or found[0] >= after + 120 * 86400
