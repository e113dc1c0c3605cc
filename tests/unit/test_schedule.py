"""Schedule rules, calendars, time zones (docs/design.md rule 8), catch-up and overlap."""

from __future__ import annotations

import json
import math
import textwrap
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from ajs3.definitions.loader import load_text
from ajs3.definitions.units import DefinitionSet, Unit
from ajs3.errors import DefinitionError
from ajs3.schedule import (
    OverlapAction,
    catch_up,
    forecast,
    next_due,
    occurrences,
    overlap_action,
)
from ajs3.tz import FIRST_STAMP, LAST_STAMP


def load(text: str) -> DefinitionSet:
    return load_text(textwrap.dedent(text), "t.yaml")


def one(defs: DefinitionSet) -> Unit:
    assert len(defs.jobnets) == 1
    return next(iter(defs.jobnets.values()))


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def walls(unit: Unit, defs: DefinitionSet, start: str, end: str) -> list[str]:
    assert unit.schedule is not None
    tz = ZoneInfo(unit.schedule.time_zone)
    return [
        datetime.fromtimestamp(t, tz).isoformat()
        for t in occurrences(unit, defs, ts(start), ts(end))
    ]


def jobnet(schedule: str, extra: str = "") -> str:
    body = textwrap.indent(textwrap.dedent(schedule), " " * 6)
    return (
        extra
        + "jobnets:\n  - name: n\n    schedule:\n"
        + body
        + ('    units:\n      - {name: j, command: ["true"]}\n')
    )


def defs_of(schedule: str, extra: str = "") -> tuple[DefinitionSet, Unit]:
    defs = load_text(jobnet(schedule, extra), "t.yaml")
    return defs, one(defs)


# -- DST (docs/design.md rule 8) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "at", "expected"),
    [
        # Spring forward: 02:30 does not exist; it fires once at the end of the gap.
        ("Europe/Berlin", "2027-03-28", "02:30", "2027-03-28T03:00:00+02:00"),
        ("America/New_York", "2027-03-14", "02:30", "2027-03-14T03:00:00-04:00"),
        # Fall back: 02:30 exists twice; it fires once, at the first.
        ("Europe/Berlin", "2027-10-31", "02:30", "2027-10-31T02:30:00+02:00"),
        ("America/New_York", "2027-11-07", "01:30", "2027-11-07T01:30:00-04:00"),
        ("Asia/Tokyo", "2027-03-28", "02:30", "2027-03-28T02:30:00+09:00"),
    ],
)
def test_dst_edges_fire_once(zone: str, day: str, at: str, expected: str) -> None:
    defs, unit = defs_of(f"time_zone: {zone}\nrules:\n  - at: '{at}'\n")
    # A window wider than the day in any zone; keep the runs of that day.
    mine = [
        g
        for g in walls(unit, defs, f"{day}T00:00:00+14:00", f"{day}T23:59:00-12:00")
        if g.startswith(day)
    ]
    assert mine == [expected]


def test_daily_runs_around_dst_are_one_per_day_and_increasing() -> None:
    for zone in ("Europe/Berlin", "America/New_York", "Asia/Tokyo"):
        defs, unit = defs_of(f"time_zone: {zone}\nrules:\n  - at: '02:30'\n")
        times = occurrences(unit, defs, ts("2027-01-01T00:00+00:00"), ts("2028-01-01T00:00+00:00"))
        assert times == sorted(set(times))
        tz = ZoneInfo(zone)
        days = [datetime.fromtimestamp(t, tz).date() for t in times]
        assert len(days) == len(set(days))
        assert len(times) in (364, 365, 366)


def test_repetition_through_the_spring_gap_fires_gap_times_once() -> None:
    defs, unit = defs_of(
        "time_zone: Europe/Berlin\nrules:\n  - at: '01:00'\n"
        "    repeat: {every: 30m, until: '04:00'}\n"
    )
    got = walls(unit, defs, "2027-03-27T12:00+00:00", "2027-03-28T12:00+00:00")
    assert got == [
        "2027-03-28T01:00:00+01:00",
        "2027-03-28T01:30:00+01:00",
        "2027-03-28T03:00:00+02:00",  # 02:00, 02:30 and 03:00 are one run
        "2027-03-28T03:30:00+02:00",
        "2027-03-28T04:00:00+02:00",
    ]


def test_repetition_through_the_fall_back_fires_each_wall_time_once() -> None:
    defs, unit = defs_of(
        "time_zone: America/New_York\nrules:\n  - at: '00:30'\n"
        "    repeat: {every: 30m, until: '02:30'}\n"
    )
    got = walls(unit, defs, "2027-11-07T00:00-04:00", "2027-11-08T00:00-05:00")
    assert got == [
        "2027-11-07T00:30:00-04:00",
        "2027-11-07T01:00:00-04:00",
        "2027-11-07T01:30:00-04:00",
        "2027-11-07T02:00:00-05:00",
        "2027-11-07T02:30:00-05:00",
    ]


# -- calendars and rules ---------------------------------------------------------------

JP_2027 = """\
calendars:
  - name: jp
    open_weekdays: [mon, tue, wed, thu, fri]
    closed_dates: [2027-01-01, 2027-01-11, 2027-02-11, 2027-02-23, 2027-03-22, 2027-04-29,
                   2027-05-03, 2027-05-04, 2027-05-05, 2027-07-19, 2027-08-11, 2027-09-20,
                   2027-09-23, 2027-10-11, 2027-11-03, 2027-11-23]
"""


def year_dates(unit: Unit, defs: DefinitionSet) -> list[str]:
    return [w[:10] for w in walls(unit, defs, "2027-01-01T00:00+09:00", "2028-01-01T00:00+09:00")]


def test_golden_third_business_day_of_each_month_tokyo() -> None:
    defs, unit = defs_of(
        "time_zone: Asia/Tokyo\ncalendar: jp\nrules:\n  - {at: '02:00', open_days: [3]}\n",
        JP_2027,
    )
    assert year_dates(unit, defs) == [
        "2027-01-06",
        "2027-02-03",
        "2027-03-03",
        "2027-04-05",
        "2027-05-10",
        "2027-06-03",
        "2027-07-05",
        "2027-08-04",
        "2027-09-03",
        "2027-10-05",
        "2027-11-04",
        "2027-12-03",
    ]
    assert walls(unit, defs, "2027-01-01T00:00+09:00", "2027-02-01T00:00+09:00") == [
        "2027-01-06T02:00:00+09:00"
    ]


@pytest.mark.parametrize(
    ("closed", "limit", "august"),
    [
        ("before", 2, ["2027-08-13"]),
        ("before", 1, []),
        ("after", 1, ["2027-08-16"]),
        ("cancel", 2, []),
        ("run", 2, ["2027-08-15"]),
    ],
)
def test_golden_day_15_with_closed_day_handling(closed: str, limit: int, august: list[str]) -> None:
    defs, unit = defs_of(
        f"time_zone: Asia/Tokyo\ncalendar: jp\nrules:\n  - {{at: '09:00', days: [15], "
        f"closed_days: {closed}, shift_limit: {limit}}}\n",
        JP_2027,
    )
    got = year_dates(unit, defs)
    may = {"before": ["2027-05-14"], "after": ["2027-05-17"], "cancel": [], "run": ["2027-05-15"]}[
        closed
    ]
    if closed == "after" and limit == 1:
        may = []  # Sat 15 -> Sun 16 is closed too, and the limit is 1 day
    fixed = [
        "2027-01-15",
        "2027-02-15",
        "2027-03-15",
        "2027-04-15",
        "2027-06-15",
        "2027-07-15",
        "2027-09-15",
        "2027-10-15",
        "2027-11-15",
        "2027-12-15",
    ]
    assert got == sorted(fixed + may + august)


def test_group_calendar_is_inherited_and_base_time_moves_early_times() -> None:
    shared = load_text(
        textwrap.dedent("""\
        calendars:
          - name: ops
            open_weekdays: [mon, tue, wed, thu, fri]
            base_time: '05:00'
        jobnets: []
        """),
        "cal.yaml",
    )
    assert "ops" in shared.calendars
    from ajs3.definitions.loader import load_texts

    defs = load_texts(
        [
            ("g.yaml", "group: /ops\ncalendar: ops\njobnets: []\n"),
            (
                "cal.yaml",
                textwrap.dedent("""\
            calendars:
              - {name: ops, open_weekdays: [mon, tue, wed, thu, fri], base_time: '05:00'}
            jobnets: []
            """),
            ),
            (
                "n.yaml",
                "group: /ops/daily\n"
                + jobnet("time_zone: UTC\nrules:\n  - {at: '02:00', closed_days: cancel}\n"),
            ),
        ]
    )
    unit = defs.jobnets["/ops/daily/n"]
    assert unit.schedule is not None and unit.schedule.calendar is not None
    assert unit.schedule.calendar.name == "ops"
    assert defs.group_calendars == {"/ops": "ops"}
    # A scheduling day begins at 05:00, so the 02:00 of Thursday's and Friday's
    # scheduling days fall on Friday and Saturday; the weekend's are cancelled.
    got = walls(unit, defs, "2027-01-08T00:00+00:00", "2027-01-12T03:00+00:00")
    assert got == [
        "2027-01-08T02:00:00+00:00",
        "2027-01-09T02:00:00+00:00",
        "2027-01-12T02:00:00+00:00",
    ]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("{at: '08:00', weekdays: [fri], nth: [-1]}", ["2027-01-29", "2027-02-26", "2027-03-26"]),
        ("{at: '08:00', weekdays: [mon], nth: [2]}", ["2027-01-11", "2027-02-08", "2027-03-08"]),
        (
            "{at: '08:00', every: 2 weeks, weekdays: [mon, thu], start: 2027-01-04}",
            [
                "2027-01-04",
                "2027-01-07",
                "2027-01-18",
                "2027-01-21",
                "2027-02-01",
                "2027-02-04",
                "2027-02-15",
                "2027-02-18",
                "2027-03-01",
                "2027-03-04",
                "2027-03-15",
                "2027-03-18",
                "2027-03-29",
            ],
        ),
        (
            "{at: '08:00', every: 1 month, start: 2027-01-31, closed_days: run}",
            ["2027-01-31", "2027-02-28", "2027-03-31"],
        ),
        (
            "{at: '08:00', every: 10 days, start: 2027-01-05, end: 2027-02-20, closed_days: run}",
            ["2027-01-05", "2027-01-15", "2027-01-25", "2027-02-04", "2027-02-14"],
        ),
        (
            "{at: '08:00', days: [1, -1], closed_days: run}",
            ["2027-01-01", "2027-01-31", "2027-02-01", "2027-02-28", "2027-03-01", "2027-03-31"],
        ),
        ("{at: '08:00', open_days: [-1]}", ["2027-01-29", "2027-02-26", "2027-03-31"]),
    ],
)
def test_cycles(rule: str, expected: list[str]) -> None:
    defs, unit = defs_of(
        f"time_zone: Europe/Berlin\ncalendar: wk\nrules:\n  - {rule}\n",
        "calendars:\n  - {name: wk, open_weekdays: [mon, tue, wed, thu, fri]}\n",
    )
    got = [w[:10] for w in walls(unit, defs, "2027-01-01T00:00+01:00", "2027-04-01T00:00+02:00")]
    assert got == expected


def test_144_rules_and_more() -> None:
    rules = "".join(f"  - {{at: '{h:02d}:{m:02d}'}}\n" for h in range(24) for m in range(0, 60, 10))
    defs, unit = defs_of("time_zone: UTC\nrules:\n" + rules)
    assert unit.schedule is not None and len(unit.schedule.rules) == 144
    got = occurrences(unit, defs, ts("2027-01-01T00:00+00:00"), ts("2027-01-02T00:00+00:00"))
    assert len(got) == 144 and got[1] - got[0] == 600


def test_schedule_survives_the_journal_json_round_trip() -> None:
    _, unit = defs_of(
        "time_zone: Asia/Tokyo\ncalendar: jp\noverlap: parallel\nmax_parallel: 3\n"
        "catch_up: all\ncatch_up_window: 2h\nrules:\n"
        "  - {at: '02:00', open_days: [3], deadline: 30m}\n"
        "  - {at: '12:30', weekdays: [sat], closed_days: run,"
        " repeat: {every: 1h, until: '15:30'}}\n",
        JP_2027,
    )
    again = Unit.from_dict(json.loads(json.dumps(unit.to_dict())))
    assert again == unit
    legacy = unit.to_dict()
    del legacy["schedule"]
    assert Unit.from_dict(legacy).schedule is None


# -- next due, forecast ------------------------------------------------------------------


def test_next_due_picks_the_earliest_jobnet() -> None:
    defs = load(
        """\
        jobnets:
          - name: tokyo
            schedule: {time_zone: Asia/Tokyo, rules: [{at: '02:00'}]}
            units: [{name: j, command: ["true"]}]
          - name: berlin
            schedule: {time_zone: Europe/Berlin, rules: [{at: '02:00'}]}
            units: [{name: j, command: ["true"]}]
          - name: manual
            units: [{name: j, command: ["true"]}]
        """
    )
    after = ts("2027-01-04T12:00+00:00")
    assert next_due(defs, after) == (ts("2027-01-04T17:00+00:00"), "/tokyo")
    assert next_due(defs, ts("2027-01-04T17:00+00:00")) == (ts("2027-01-05T01:00+00:00"), "/berlin")
    plan = forecast(defs, date(2027, 1, 5), date(2027, 1, 6))
    assert [(p.jobnet, p.start) for p in plan] == [
        ("/tokyo", "2027-01-05T02:00:00+09:00"),
        ("/berlin", "2027-01-05T02:00:00+01:00"),
    ]


def test_next_due_none_without_schedules_or_after_the_end() -> None:
    defs = load('jobnets:\n  - {name: m, units: [{name: j, command: ["true"]}]}\n')
    assert next_due(defs, 0.0) is None
    defs, _ = defs_of(
        "time_zone: UTC\nrules:\n  - {at: '01:00', start: 2027-01-01, end: 2027-01-01}\n"
    )
    assert next_due(defs, ts("2027-01-01T02:00+00:00")) is None
    assert next_due(defs, ts("2026-06-01T00:00+00:00")) == (ts("2027-01-01T01:00+00:00"), "/n")


# -- catch-up and overlap ---------------------------------------------------------------------


def catch(
    policy: str, window: str, down_from: str, now: str, extra: str = ""
) -> list[tuple[str, bool, str]]:
    defs, unit = defs_of(
        f"time_zone: Asia/Tokyo\ncatch_up: {policy}\ncatch_up_window: {window}\nrules:\n"
        f"  - {{at: '00:00', repeat: {{every: 1h, until: '23:00'}}{extra}}}\n"
    )
    got = catch_up(unit, defs, ts(down_from), ts(now))
    tz = ZoneInfo("Asia/Tokyo")
    return [(datetime.fromtimestamp(d.due, tz).strftime("%H:%M"), d.run, d.reason) for d in got]


def test_catch_up_skip_latest_all() -> None:
    down, now = "2027-01-04T01:30+09:00", "2027-01-04T05:10+09:00"
    skip = catch("skip", "1h", down, now)
    assert [(t, r) for t, r, _ in skip] == [
        ("02:00", False),
        ("03:00", False),
        ("04:00", False),
        ("05:00", False),
    ]
    assert skip[0][2] == "run of 02:00 skipped: missed by 3 h 10 min, window 1 h"
    assert skip[3][2] == "run of 05:00 skipped: missed by 10 min, catch-up policy skip"
    latest = catch("latest", "3h", down, now)
    assert [(t, r) for t, r, _ in latest] == [
        ("02:00", False),
        ("03:00", False),
        ("04:00", False),
        ("05:00", True),
    ]
    assert "superseded by the run of 05:00" in latest[2][2]
    every = catch("all", "2h", down, now)
    assert [(t, r) for t, r, _ in every] == [
        ("02:00", False),
        ("03:00", False),
        ("04:00", True),
        ("05:00", True),
    ]
    assert every[0][2] == "run of 02:00 skipped: missed by 3 h 10 min, window 2 h"


def test_catch_up_respects_the_start_deadline() -> None:
    got = catch("all", "1d", "2027-01-04T04:30+09:00", "2027-01-04T05:45+09:00", ", deadline: 30m")
    assert got[0][:2] == ("05:00", False)
    assert "start deadline of 30 min" in got[0][2]


def test_catch_up_nothing_missed() -> None:
    assert catch("all", "1h", "2027-01-04T05:10+09:00", "2027-01-04T05:20+09:00") == []


def test_overlap_policies() -> None:
    _, skip = defs_of("time_zone: UTC\nrules: [{at: '01:00'}]\n")
    assert overlap_action(skip, 0, 0)[0] is OverlapAction.START
    assert overlap_action(skip, 1, 0)[0] is OverlapAction.SKIP
    _, queue = defs_of("time_zone: UTC\noverlap: queue\nrules: [{at: '01:00'}]\n")
    assert overlap_action(queue, 1, 0)[0] is OverlapAction.QUEUE
    assert overlap_action(queue, 1, 1)[0] is OverlapAction.SKIP
    _, par = defs_of("time_zone: UTC\noverlap: parallel\nmax_parallel: 3\nrules: [{at: '01:00'}]\n")
    assert overlap_action(par, 2, 0)[0] is OverlapAction.START
    assert overlap_action(par, 3, 0)[0] is OverlapAction.SKIP


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "extra", "code", "line", "words"),
    [
        (
            "time_zone: UTC\nrules: [{at: '01:00', start: 2027-02-30}]\n",
            "",
            "AJS3-E108",
            5,
            "2027-02-30 is not a date",
        ),
        (
            "time_zone: Europe/Berlinn\nrules: [{at: '01:00'}]\n",
            "",
            "AJS3-E108",
            4,
            "unknown time zone 'Europe/Berlinn'",
        ),
        (
            "time_zone: UTC\nrules: [{at: '01:00', every: 0 days, start: 2027-01-01}]\n",
            "",
            "AJS3-E108",
            5,
            "between 1 and",
        ),
        ("time_zone: UTC\nrules: [{at: '25:00:00'}]\n", "", "AJS3-E108", 5, "HH:MM"),
        (
            "time_zone: UTC\nrules: [{at: '01:00', every: 2 days}]\n",
            "",
            "AJS3-E104",
            5,
            "no 'start'",
        ),
        (
            "time_zone: UTC\ncalendar: nope\nrules: [{at: '01:00'}]\n",
            "",
            "AJS3-E106",
            5,
            "calendar 'nope'",
        ),
        ("time_zone: UTC\nrules: [{at: '01:00', weekdays: [fry]}]\n", "", "AJS3-E108", 5, "'fri'"),
        (
            "time_zone: UTC\nrules: [{at: '01:00', nth: [2]}]\n",
            "",
            "AJS3-E108",
            5,
            "needs 'weekdays'",
        ),
        (
            "time_zone: UTC\nrules: [{at: '01:00', shift_limit: 40}]\n",
            "",
            "AJS3-E108",
            5,
            "between 1 and 31",
        ),
        (
            "time_zone: UTC\nrules: [{at: '01:00', repaet: 1}]\n",
            "",
            "AJS3-E102",
            5,
            "did you mean 'repeat'",
        ),
        ("time_zone: UTC\nrules: []\n", "", "AJS3-E104", 5, "is empty"),
    ],
)
def test_bad_schedules(schedule: str, extra: str, code: str, line: int, words: str) -> None:
    with pytest.raises(DefinitionError) as info:
        load_text(jobnet(schedule, extra), "t.yaml")
    problems = [(p.code.value, p.line, p.message) for p in info.value.problems]
    assert any(c == code and ln == line and words in m for c, ln, m in problems), problems


def test_calendar_without_an_open_day_in_a_year_is_rejected() -> None:
    closed = ", ".join(
        date.fromordinal(date(2027, 1, 1).toordinal() + i).isoformat() for i in range(365)
    )
    text = (
        f"calendars:\n  - name: never\n    closed_dates: [{closed}]\n"
        "  - {name: none, open_weekdays: []}\njobnets: []\n"
    )
    with pytest.raises(DefinitionError) as info:
        load_text(text, "cal.yaml")
    messages = [(p.line, p.message) for p in info.value.problems]
    never = "calendar 'never' has no open day in 2027; a schedule on it would never run"
    assert (2, never) in messages
    assert any(ln == 4 and "no open day at all" in m for ln, m in messages)


def test_schedule_only_on_root_jobnets() -> None:
    text = textwrap.dedent("""\
        jobnets:
          - name: root
            units:
              - name: inner
                type: jobnet
                schedule: {time_zone: UTC, rules: [{at: '01:00'}]}
                units: [{name: j, command: ["true"]}]
        """)
    with pytest.raises(DefinitionError) as info:
        load_text(text, "t.yaml")
    assert [(p.code.value, p.line) for p in info.value.problems] == [("AJS3-E102", 6)]


def test_every_problem_at_once() -> None:
    with pytest.raises(DefinitionError) as info:
        load_text(
            jobnet(
                "time_zone: Mars/Base\ncatch_up: sometimes\nrules:\n"
                "  - {at: '01:00', days: [32]}\n  - {at: '99:00'}\n"
            ),
            "t.yaml",
        )
    assert len(info.value.problems) == 4


def test_utc_times_are_returned() -> None:
    defs, unit = defs_of("time_zone: Asia/Tokyo\nrules: [{at: '09:00'}]\n")
    got = occurrences(unit, defs, ts("2027-01-01T00:00+00:00"), ts("2027-01-02T00:00+00:00"))
    assert [datetime.fromtimestamp(t, UTC).isoformat() for t in got] == [
        "2027-01-01T00:00:00+00:00"
    ]


# -- the ends of representable time ----------------------------------------------------------

END_ZONES = ["Pacific/Kiritimati", "Etc/GMT+12", "UTC"]
END_RULES = [
    "{at: '47:59', closed_days: after, shift_limit: 31}",
    "{at: '00:00', closed_days: before, shift_limit: 31}",
    "{at: '23:00', repeat: {every: 6h, until: '47:00'}}",
    "{at: '12:00', days: [-1], every: 1 month, start: 9999-12-31}",
]


@pytest.mark.parametrize("zone", END_ZONES)
@pytest.mark.parametrize("rule", END_RULES)
def test_plan_stops_at_the_ends_of_time_instead_of_overflowing(zone: str, rule: str) -> None:
    defs, unit = defs_of(
        f"time_zone: {zone}\ncalendar: c\nrules: [{rule}]\n",
        "calendars: [{name: c, open_weekdays: [sat], base_time: '23:30'}]\n",
    )
    tz = ZoneInfo(zone)
    late = forecast(defs, date(9999, 11, 1), datetime.max)
    early = forecast(defs, date.min, date(1, 2, 1))
    for run in late + early:
        assert datetime.fromtimestamp(run.due, tz).isoformat() == run.start
    assert all(run.due <= LAST_STAMP for run in late)
    assert all(run.due >= FIRST_STAMP for run in early)
    for after in (LAST_STAMP - 86400.0, LAST_STAMP, 1e300, math.inf, math.nan):
        next_due(defs, after)  # no OverflowError: None or a run before the end
    assert occurrences(unit, defs, LAST_STAMP, math.inf) == []
    assert occurrences(unit, defs, -math.inf, FIRST_STAMP) == []


def test_a_daily_rule_runs_until_the_last_representable_day() -> None:
    defs, _ = defs_of("time_zone: UTC\nrules: [{at: '06:00'}]\n")
    plan = forecast(defs, date(9999, 12, 28), datetime.max)
    assert [run.start for run in plan] == ["9999-12-28T06:00:00+00:00", "9999-12-29T06:00:00+00:00"]
