"""Calendar semantics after the JP1/AJS3 manuals (docs/schedules.md, "Calendars of job
groups"): undefined days from the upper-level group, start times past 24:00 judged on
their scheduling day, base time, base day and base month.

Each JP1 file of tests/data/calendars/ is imported and planned for all of 2027 through
the command line; the runs must be exactly those of its .golden file (checked by hand,
and some of them restated below with the reason).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ajs3.cli.main import main
from ajs3.definitions.calendars import layered
from ajs3.definitions.daybook import DayBook
from ajs3.definitions.loader import load_texts
from ajs3.definitions.units import BaseMonth, Calendar, Schedule
from ajs3.errors import DefinitionError
from ajs3.schedule import forecast

DATA = Path(__file__).parent.parent / "data" / "calendars"
CASES = sorted(p.stem for p in DATA.glob("*.jp1"))


def _plan(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> list[str]:
    out = tmp_path / "defs"
    assert (
        main(["import", "--jp1", str(DATA / f"{case}.jp1"), "--out", str(out), "--tz", "UTC"]) == 0
    )
    capsys.readouterr()
    argv = ["plan", "--definitions", str(out), "--from", "2027-01-01", "--to", "2028-01-01"]
    assert main([*argv, "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    return [f"{r['start'][:16].replace('T', ' ')} {r['jobnet']}" for r in runs]


@pytest.mark.parametrize("case", CASES)
def test_a_year_of_plan_is_the_golden_calendar(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    golden = [
        line
        for line in (DATA / f"{case}.golden").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert _plan(tmp_path, capsys, case) == golden


def _runs(lines: list[str], jobnet: str) -> set[str]:
    return {line[:16] for line in lines if line.endswith(" " + jobnet)}


def test_nested_groups_take_the_days_their_calendar_does_not_define(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _plan(tmp_path, capsys, "nested_groups")
    corp, plant = _runs(lines, "/CORP/DAILY"), _runs(lines, "/CORP/PLANT/DAILY")
    line = _runs(lines, "/CORP/PLANT/LINE/DAILY")
    # PLANT only adds 2027-03-15 (a Monday) and reopens 2027-05-03: it keeps CORP's
    # weekends and other holidays (the bug of issue 14: it ran on all of them).
    assert not any(d.startswith(("2027-01-01", "2027-01-02", "2027-01-03")) for d in plant)
    assert "2027-03-15 08:00" in corp and "2027-03-15 08:00" not in plant
    assert "2027-05-03 08:00" not in corp and "2027-05-03 08:00" in plant
    assert "2027-12-31 08:00" not in plant
    # LINE opens Saturdays, closes 2027-07-10 (a Saturday); Sundays and holidays are
    # CORP's, PLANT's closed day and reopened day are PLANT's.
    assert "2027-07-03 08:00" in line and "2027-07-10 08:00" not in line
    assert "2027-07-04 08:00" not in line
    assert "2027-03-15 08:00" not in line and "2027-05-03 08:00" in line
    assert len(corp) == 261 - 3 and len(plant) == 261 - 3 and len(line) == 258 + 52 - 1
    # the first open day of each month, on PLANT's calendar: May 1 is a Saturday,
    # May 3 a holiday of CORP that PLANT reopened
    assert "2027-05-03 06:00" in _runs(lines, "/CORP/PLANT/MONTHLY")


def test_times_past_24_00_belong_to_the_day_they_are_written_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _plan(tmp_path, capsys, "past_24h")
    night = _runs(lines, "/OPS/NIGHT")
    # 25:30 of Wednesday 2027-04-28 (open) runs on the holiday 04-29 at 01:30; 25:30 of
    # the holiday does not run on Friday 04-30, although Friday is open.
    assert "2027-04-29 01:30" in night and "2027-04-30 01:30" not in night
    # Friday's runs on Saturday; none after Saturday or Sunday
    assert "2027-01-02 01:30" in night
    assert not {"2027-01-03 01:30", "2027-01-04 01:30"} & night
    # LATE: Fridays at 47:59 (Saturday 23:59); Friday 2027-08-13 is closed: moved to
    # Monday 08-16, and 47:59 after it
    late = _runs(lines, "/OPS/LATE")
    assert "2027-08-14 23:59" not in late and "2027-08-17 23:59" in late


def test_base_time_base_day_and_base_month(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _plan(tmp_path, capsys, "base_time_day")
    # base time 05:00: Monday's 02:00 runs on Tuesday; Monday 03-22 is closed
    early = _runs(lines, "/FIN/EARLY")
    assert "2027-01-05 02:00" in early and "2027-03-23 02:00" not in early
    close = _runs(lines, "/FIN/CLOSE")
    # months begin on the 21st and are named after the next month (md=ne): February
    # is Jan 21..Feb 20. Its first open day, its last day, its 5th day:
    assert {"2027-01-21 07:00", "2027-02-20 22:00", "2027-01-25 12:00"} <= close
    # April is Mar 21 (Sunday), 22 (closed), so its first open day is Mar 23
    assert "2027-03-23 07:00" in close
    # May's 5th day, Apr 25, is a Sunday: moved after (sh=af)
    assert "2027-04-26 12:00" in close and "2027-04-25 12:00" not in close
    # BOOK closes Saturdays and keeps FIN's Sundays: Saturday's run moves to Monday
    # (sh=af), and its 04:00 is before FIN's base time: Tuesday 04:00
    assert "2027-01-05 04:00" in _runs(lines, "/FIN/BOOK/WEEKLY")


# -- the rules in YAML ---------------------------------------------------------------------

GROUPS = """
group: /top
calendar: top
calendars:
  - {name: top, closed_weekdays: [sat, sun], closed_dates: [2027-01-01], base_time: '04:00'}
  - {name: mid, closed_dates: [2027-01-04], open_dates: [2027-01-01]}
  - {name: low, open_weekdays: [sat], closed_weekdays: []}
  - {name: full, open_weekdays: [mon, tue, wed, thu, fri, sat]}
"""


def _load(*files: str) -> Any:
    return load_texts([(f"f{i}.yaml", text) for i, text in enumerate(files)])


def _net(group: str, extra: str = "", calendar: str = "") -> str:
    own = f"      calendar: {calendar}\n" if calendar else ""
    return (
        f"group: {group}\n{extra}jobnets:\n  - name: n\n    schedule:\n      time_zone: UTC\n"
        f"{own}      rules: [{{at: '05:00'}}]\n    units: [{{name: a, command: [/bin/true]}}]\n"
    )


def test_layered_calendars_in_yaml() -> None:
    defs = _load(
        GROUPS,
        _net("/top/mid", "calendar: mid\n"),
        _net("/top/mid/low", "calendar: low\n"),
        _net("/top/other", "calendar: full\n"),
    )
    mid = DayBook(defs.jobnets["/top/mid/n"].schedule.calendar)
    assert mid.is_open(date(2027, 1, 1))  # reopened
    assert not mid.is_open(date(2027, 1, 2))  # top's Saturday
    assert not mid.is_open(date(2027, 1, 4))  # its own closed Monday
    assert mid.base_time == 240  # top's base time
    low = DayBook(defs.jobnets["/top/mid/low/n"].schedule.calendar)
    assert low.is_open(date(2027, 1, 2)) and not low.is_open(date(2027, 1, 3))
    assert not low.is_open(date(2027, 1, 4)) and low.is_open(date(2027, 1, 1))
    # a complete week (open_weekdays alone) defines every weekday: top's Sunday is
    # closed by 'full' itself, top's Saturday opened, top's holiday (a Friday) is open
    full = DayBook(defs.jobnets["/top/other/n"].schedule.calendar)
    assert full.is_open(date(2027, 1, 2)) and not full.is_open(date(2027, 1, 3))
    assert full.is_open(date(2027, 1, 1))
    assert defs.calendars["mid"].base_time is None  # as defined: undefined


def test_layering_stops_at_the_nearest_calendar_that_defines_a_day() -> None:
    top = Calendar("top", open_weekdays=(), closed_weekdays=(5, 6), closed_dates=("2027-01-06",))
    mid = Calendar("mid", open_weekdays=(2,), closed_weekdays=(), base_day=21)
    low = Calendar("low", open_weekdays=(), closed_weekdays=(), base_month=BaseMonth.NEXT)
    cal = layered([low, mid, top])
    book = DayBook(cal)
    # 2027-01-06 is a Wednesday: mid defines Wednesdays, so top's dated closure is hidden
    assert book.is_open(date(2027, 1, 6))
    assert cal.closed_weekdays == (5, 6) and cal.base_day == 21
    assert cal.base_month is BaseMonth.NEXT and cal.base_time == 0
    assert book.month_of(date(2027, 1, 20)) == (2027, 1)
    assert book.month_of(date(2027, 1, 21)) == (2027, 2)
    assert book.period((2027, 3)) == (date(2027, 2, 21), date(2027, 3, 20))


def test_base_day_as_a_weekday_and_past_the_end_of_short_months() -> None:
    second_monday = DayBook(Calendar("c", base_weekday=(0, 2)))
    assert second_monday.period((2027, 2)) == (date(2027, 2, 8), date(2027, 3, 7))
    fifth_friday = DayBook(Calendar("c", base_weekday=(4, 5)))
    assert fifth_friday.period((2027, 2))[0] == date(2027, 2, 26)  # no 5th: the last
    day_31 = DayBook(Calendar("c", base_day=31))
    assert day_31.period((2027, 2)) == (date(2027, 2, 28), date(2027, 3, 30))


def test_calendar_errors() -> None:
    for bad, word in (
        ("{name: c, open_weekdays: [mon], closed_weekdays: [mon, sun]}", "both"),
        ("{name: c, closed_weekdays: [mon, tue, wed, thu, fri, sat, sun]}", "no open day"),
        ("{name: c, base_day: 32}", "base_day"),
        ("{name: c, base_day: {weekday: mon, nth: 6}}", "nth"),
        ("{name: c, base_month: later}", "base_month"),
    ):
        with pytest.raises(DefinitionError) as info:
            _load(f"calendars:\n  - {bad}\n")
        assert word in str(info.value), (bad, str(info.value))
    # calendars fine alone (undefined weekdays may be open) whose layering has no open day
    with pytest.raises(DefinitionError) as info:
        _load(
            "group: /g\ncalendar: g\ncalendars:\n"
            "  - {name: g, closed_weekdays: [mon, tue, wed, thu, fri]}\n"
            "  - {name: h, closed_weekdays: [sat, sun], closed_dates: [2027-01-04]}\n",
            _net("/g", calendar="h"),
        )
    assert [(p.code.value, p.line) for p in info.value.problems] == [("AJS3-E108", 5)]
    assert "calendar 'h' with the calendars above it (g) has no open day at all" in str(info.value)


def test_a_calendar_stored_before_closed_weekdays_is_complete() -> None:
    stored = {
        "time_zone": "UTC",
        "rules": [],
        "calendar": {
            "name": "old",
            "open_weekdays": [0, 1, 2, 3, 4],
            "open_dates": [],
            "closed_dates": [],
            "base_time": 300,
            "source": "x",
        },
        "overlap": "skip",
        "max_parallel": 1,
        "catch_up": "latest",
        "catch_up_window": 3600.0,
    }
    cal = Schedule.from_dict(stored).calendar
    assert cal is not None and cal.closed_weekdays == (5, 6)
    assert not DayBook(cal).is_open(date(2027, 1, 2))


def test_forecast_uses_the_layered_calendar() -> None:
    defs = _load(GROUPS, _net("/top/mid", "calendar: mid\n"))
    runs = forecast(defs, date(2027, 1, 1), date(2027, 1, 8))
    # 05:00 is after top's base time 04:00; open: Fri 1st (reopened), Tue 5th..Thu 7th
    assert [r.start[:10] for r in runs] == ["2027-01-01", "2027-01-05", "2027-01-06", "2027-01-07"]


def test_a_layered_calendar_is_stored_and_read_back_whole() -> None:
    # the journal keeps each jobnet's schedule as JSON (Unit.to_dict)
    cal = layered(
        [
            Calendar("low", open_weekdays=(5,), closed_weekdays=(), base_weekday=(0, 2)),
            Calendar("top", closed_weekdays=(6,), base_time=300, base_month=BaseMonth.NEXT),
        ]
    )
    schedule = Schedule(time_zone="UTC", calendar=cal)
    assert Schedule.from_dict(json.loads(json.dumps(asdict(schedule)))) == schedule


def test_base_month_next_with_the_first_as_base_day_renames_every_month() -> None:
    # md=ne alone: January 1..31 is the month named February (read literally)
    book = DayBook(Calendar("c", base_month=BaseMonth.NEXT))
    assert not book.plain_months
    assert book.month_of(date(2027, 1, 31)) == (2027, 2)
    assert book.period((2027, 3)) == (date(2027, 2, 1), date(2027, 2, 28))
