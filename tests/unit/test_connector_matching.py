"""The matching rule of jobnet connectors (ajs3.schedule.connect, ajs3.engine.connectors):
which run of its target a connector waits for, and how it ends."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from ajs3.definitions.loader import load_text
from ajs3.definitions.units import Match
from ajs3.engine.connectors import end_status
from ajs3.model import Status
from ajs3.schedule.connect import TargetRun, matching, scheduling_day


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def utc_day(stamp: float) -> date:
    return datetime.fromtimestamp(stamp, UTC).date()


RUNS = [
    TargetRun(1, at("2026-11-30T01:00"), Status.ENDED_NORMALLY),
    TargetRun(2, at("2026-12-01T01:00"), Status.RUNNING),
    TargetRun(3, at("2026-12-01T13:00"), Status.WAIT_START_TIME),
    TargetRun(4, at("2026-12-03T01:00"), Status.WAIT_START_TIME),
]


def pick(match: Match, runs: list[TargetRun], when: str) -> int | None:
    stamp = at(when)
    found = matching(match, runs, scheduled_at=stamp, day=utc_day(stamp), day_of=utc_day)
    return None if found is None else found.id


def test_scheduling_day_takes_the_last_run_of_the_same_day() -> None:
    assert pick(Match.SCHEDULING_DAY, RUNS, "2026-12-01T02:00") == 3
    assert pick(Match.SCHEDULING_DAY, RUNS, "2026-11-30T23:59") == 1
    assert pick(Match.SCHEDULING_DAY, RUNS, "2026-12-03T00:00") == 4


def test_scheduling_day_without_a_run_that_day_waits() -> None:
    assert pick(Match.SCHEDULING_DAY, RUNS, "2026-12-02T02:00") is None
    assert pick(Match.SCHEDULING_DAY, [], "2026-12-02T02:00") is None


def test_latest_takes_the_newest_run_not_after_the_connector_run() -> None:
    assert pick(Match.LATEST, RUNS, "2026-12-01T02:00") == 2
    assert pick(Match.LATEST, RUNS, "2026-12-02T02:00") == 3  # of another day: latest
    assert pick(Match.LATEST, RUNS, "2026-12-01T01:00") == 2  # the same time counts
    assert pick(Match.LATEST, RUNS, "2027-01-01T00:00") == 4


def test_latest_before_any_run_takes_the_first_one_after() -> None:
    assert pick(Match.LATEST, RUNS, "2026-11-29T00:00") == 1
    assert pick(Match.LATEST, [], "2026-11-29T00:00") is None


def test_two_runs_at_one_time_the_last_registered_wins() -> None:
    runs = [TargetRun(7, at("2026-12-01T01:00"), None), TargetRun(5, at("2026-12-01T01:00"), None)]
    assert pick(Match.LATEST, runs, "2026-12-01T05:00") == 7
    assert pick(Match.SCHEDULING_DAY, runs, "2026-12-01T05:00") == 7


@pytest.mark.parametrize(
    ("target", "end"),
    [
        (Status.ENDED_NORMALLY, Status.ENDED_NORMALLY),
        (Status.ENDED_WARNING, Status.ENDED_WARNING),
        (Status.ENDED_ABNORMALLY, Status.ENDED_ABNORMALLY),
        (Status.KILLED, Status.ENDED_ABNORMALLY),
        (Status.INTERRUPTED, Status.ENDED_ABNORMALLY),
        (Status.RUNNING, None),
        (Status.WAIT_START_TIME, None),
        (Status.HELD, None),
        (None, None),
    ],
)
def test_a_connector_ends_as_its_target_run_did(target: Status | None, end: Status | None) -> None:
    assert end_status(target) is end


def test_scheduling_day_follows_the_base_time_and_zone_of_the_schedule() -> None:
    defs = load_text(
        """
calendars:
  - {name: late, base_time: '06:00'}
jobnets:
  - name: n
    schedule: {time_zone: Asia/Tokyo, calendar: late, rules: [{at: '07:00'}]}
    units: [{name: a, command: [x]}]
""",
        "s.yaml",
    )
    root = defs.jobnets["/n"]
    # 2026-12-01 05:59 in Tokyo is before the base time: the day of 2026-11-30
    assert scheduling_day(root, at("2026-11-30T20:59")) == date(2026, 11, 30)
    assert scheduling_day(root, at("2026-11-30T21:00")) == date(2026, 12, 1)
