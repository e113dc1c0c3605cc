"""Fuzzing schedules and calendars: parsed by the loader, then forecast, every input ends.

Generated schedule rules and calendars (plausible values and values at and beyond every
bound: times past 47:59, dates of year 1 and 9999, cycles of thousands, DST zones and
zones 14 h from UTC) go into the loader, and what loads into ``forecast``, ``next_run``
and ``catch_up`` over a window near a random moment, near DST changes or near the ends
of representable time, each input under ``guarded("schedule")``. Anything raised but a
DefinitionError is a failure, and so is a forecast out of order or out of its window.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import yaml
from fuzzguard import guarded

from ajs3.definitions import schema
from ajs3.definitions.loader import load_text, load_texts
from ajs3.definitions.units import DefinitionSet
from ajs3.errors import DefinitionError
from ajs3.schedule import catch_up, forecast, next_run, occurrences
from ajs3.tz import FIRST_STAMP, LAST_STAMP

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ZONES = [
    "UTC",
    "Asia/Tokyo",
    "Europe/Berlin",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Pacific/Kiritimati",
    "Etc/GMT+12",
    "America/St_Johns",
    "Mars/Base",
    "",
    "../../etc/passwd",
    "UTC\x00",
    "\ud800",
]
TIMES = [
    "00:00",
    "23:59",
    "47:59",
    "48:00",
    "24:00",
    "02:30",
    "12:30",
    "9:05",
    "1:5",
    "x",
    "-1:00",
    "99999999999:00",
    0,
    750,
    -1,
    2**70,
    None,
    [],
    {},
]
DATES = [
    date(1, 1, 1),
    date(1, 1, 2),
    date(9999, 12, 31),
    date(9999, 12, 30),
    date(2027, 3, 28),
    date(2027, 10, 31),
    date(2028, 2, 29),
    "2027-02-29",
    "0000-01-01",
    "10000-01-01",
    "2027-13-01",
    "27-1-1",
    "x",
    20270101,
]
EVERY = [
    1,
    2,
    7,
    1000,
    1001,
    0,
    -1,
    "2 days",
    "1 week",
    "3 weeks",
    "1 month",
    "12 months",
    "0 months",
    "weeks",
    "days",
    "9" * 5000 + " days",
    "1 fortnight",
    1.5,
    True,
]
DURATIONS = [
    "15m",
    "1m",
    "1h",
    "90s",
    "61s",
    "1d",
    "25h",
    "1h30m",
    "0s",
    "9" * 30 + "s",
    "1min",
    60,
    0,
    -5,
    1e300,
    math.inf,
    math.nan,
    "x",
]
#: No "1m": a minute's repeat until 47:59 is 2880 runs a day, the forecast's own size.
REPEATS = [d for d in DURATIONS if d != "1m"]
WEEKDAYS = [
    "mon",
    "tue",
    "wed",
    "thu",
    "fri",
    "sat",
    "sun",
    "monday",
    "Sunday",
    "sa",
    "x",
    "",
    1,
    None,
]


def pick(rng: random.Random, pool: list[Any]) -> Any:
    return rng.choice(pool)


def some(rng: random.Random, pool: list[Any], most: int = 4) -> list[Any]:
    return [rng.choice(pool) for _ in range(rng.randint(0, most))]


def rule(rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {"at": pick(rng, TIMES)} if rng.random() < 0.95 else {}
    choices: dict[str, Any] = {
        "every": lambda: pick(rng, EVERY),
        "weekdays": lambda: some(rng, WEEKDAYS),
        "nth": lambda: some(rng, list(range(-6, 7))),
        "days": lambda: some(rng, [*range(-32, 33), "x", 1.5]),
        "open_days": lambda: some(rng, list(range(-32, 33))),
        "start": lambda: pick(rng, DATES),
        "end": lambda: pick(rng, DATES),
        "closed_days": lambda: pick(rng, ["before", "after", "cancel", "run", "x", 1]),
        "shift_limit": lambda: rng.randint(-1, 40),
        "repeat": lambda: {
            k: pick(rng, REPEATS if k == "every" else TIMES)
            for k in rng.sample(schema.REPEAT_KEYS, rng.randint(0, 2))
        },
        "deadline": lambda: pick(rng, DURATIONS),
        "junk": lambda: "x",
    }
    for key in rng.sample(sorted(choices), rng.randint(0, 4)):
        out[key] = choices[key]()
    return out


def calendar(rng: random.Random, name: str = "c") -> dict[str, Any]:
    cal: dict[str, Any] = {"name": name}
    if rng.random() < 0.7:
        cal["open_weekdays"] = some(rng, WEEKDAYS, 7)
    if rng.random() < 0.4:
        cal["closed_weekdays"] = some(rng, WEEKDAYS, 7)
    if rng.random() < 0.4:
        cal["open_dates"] = some(rng, DATES)
    if rng.random() < 0.4:
        cal["closed_dates"] = some(rng, DATES)
    if rng.random() < 0.4:
        cal["base_time"] = pick(rng, TIMES)
    if rng.random() < 0.3:
        cal["base_day"] = pick(
            rng,
            [
                rng.randint(-1, 33),
                {"weekday": pick(rng, [*WEEKDAYS, "x"]), "nth": rng.randint(0, 6)},
                {"weekday": "mon"},
                "x",
            ],
        )
    if rng.random() < 0.3:
        cal["base_month"] = pick(rng, ["this", "next", "x"])
    return cal


def definitions(rng: random.Random) -> list[tuple[str, str]]:
    """One file with a jobnet, sometimes in a nested group below a group whose
    calendar the jobnet's calendar is layered over."""
    child = document(rng)
    if rng.random() < 0.5:
        return [("sched.yaml", _dump(child))]
    child = {"group": "/p/q", **child}
    if "calendars" in child and rng.random() < 0.5:
        child["calendar"] = "c"  # the group's calendar instead of the jobnet's
        child["jobnets"][0]["schedule"].pop("calendar", None)
    parent = {"group": "/p", "calendar": "pc", "calendars": [calendar(rng, "pc")]}
    return [("p.yaml", _dump(parent)), ("q.yaml", _dump(child))]


def _dump(doc: dict[str, Any]) -> str:
    # PyYAML's own emitter: it writes lone surrogates (escaped), libyaml's refuses them.
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def document(rng: random.Random) -> dict[str, Any]:
    schedule: dict[str, Any] = {"rules": [rule(rng) for _ in range(rng.randint(0, 3))]}
    if rng.random() < 0.9:
        schedule["time_zone"] = pick(rng, ZONES)
    extra = {
        "overlap": lambda: pick(rng, ["skip", "queue", "parallel", "x"]),
        "max_parallel": lambda: rng.randint(0, 1001),
        "catch_up": lambda: pick(rng, ["skip", "latest", "all", "x"]),
        "catch_up_window": lambda: pick(rng, DURATIONS),
    }
    for key in rng.sample(sorted(extra), rng.randint(0, 2)):
        schedule[key] = extra[key]()
    doc: dict[str, Any] = {}
    if rng.random() < 0.5:
        doc["calendars"] = [calendar(rng)]
        schedule["calendar"] = "c" if rng.random() < 0.9 else "nope"
    doc["jobnets"] = [
        {"name": "n", "schedule": schedule, "units": [{"name": "a", "command": ["x"]}]}
    ]
    return doc


#: Where forecasts look: an ordinary time, DST changes, the ends of representable time.
MOMENTS = [
    datetime(2027, 1, 4, tzinfo=UTC).timestamp(),
    datetime(2027, 3, 27, 12, tzinfo=UTC).timestamp(),
    datetime(2027, 10, 30, 12, tzinfo=UTC).timestamp(),
    datetime(2027, 4, 3, 12, tzinfo=UTC).timestamp(),  # Santiago and Lord Howe fall back
    LAST_STAMP - 2 * 86400.0,
    LAST_STAMP - 3600.0,
    FIRST_STAMP - 86400.0,
    FIRST_STAMP + 3600.0,
]


def run_forecasts(defs: DefinitionSet, rng: random.Random) -> None:
    unit = next(iter(defs.jobnets.values()))
    lo = rng.choice(MOMENTS) + rng.uniform(-86400.0, 86400.0)
    hi = lo + rng.uniform(0.0, 2 * 86400.0)
    got = occurrences(unit, defs, lo, hi)
    assert got == sorted(got) and len(set(got)) == len(got)
    assert all(max(lo, FIRST_STAMP) <= t < min(hi, LAST_STAMP) for t in got)
    start = datetime.fromtimestamp(min(max(lo, FIRST_STAMP), LAST_STAMP), UTC)
    plan = forecast(defs, start, start + timedelta(hours=rng.randint(0, 48)))
    assert [p.due for p in plan] == sorted(p.due for p in plan)
    # next_run looks up to 12 years ahead: often near the end of time, seldom elsewhere.
    if rng.random() < 0.03 or lo > LAST_STAMP - 5 * 86400.0:
        occ = next_run(unit, lo)
        assert occ is None or lo < occ.due <= LAST_STAMP
    if FIRST_STAMP < lo < hi < LAST_STAMP:
        catch_up(unit, defs, lo, hi)


def feed(files: list[tuple[str, str]], rng: random.Random) -> None:
    with guarded("schedule"):
        try:
            defs = load_texts(files)
        except DefinitionError as error:
            lines = {name: len(text.splitlines()) + 1 for name, text in files}
            for problem in error.problems:
                assert problem.code.value.startswith("AJS3-E1"), problem
                assert 1 <= problem.line <= lines[problem.file], problem
            str(error).encode("utf-8")
            return
        run_forecasts(defs, rng)


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.randoms(use_true_random=False))
def test_generated_schedules_and_calendars(rng: random.Random) -> None:
    for _ in range(10):
        feed(definitions(rng), rng)


def test_the_most_rules_with_the_longest_shifts_forecast_within_bounds() -> None:
    rules = [
        {"at": f"{i % 48:02d}:{i % 60:02d}", "closed_days": "after", "shift_limit": 31}
        for i in range(schema.MAX_RULES)
    ]
    doc = {
        "calendars": [{"name": "c", "open_weekdays": ["mon"]}],
        "jobnets": [
            {
                "name": "n",
                "schedule": {"time_zone": "Europe/Berlin", "calendar": "c", "rules": rules},
                "units": [{"name": "a", "command": ["x"]}],
            }
        ],
    }
    dump = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(doc, Dumper=dump)
    with guarded("schedule"):
        defs = load_text(text, "many.yaml")
        lo = datetime(2027, 3, 29, 5, tzinfo=UTC).timestamp()  # a Monday, after DST began
        got = occurrences(defs.jobnets["/n"], defs, lo, lo + 3600.0)
    assert got and got == sorted(got) and all(lo <= due < lo + 3600.0 for due in got)
    doc["jobnets"][0]["schedule"]["rules"] = [*rules, rules[0]]
    with pytest.raises(DefinitionError) as info:
        load_text(yaml.dump(doc, Dumper=dump), "many.yaml")
    assert [p.code.value for p in info.value.problems] == ["AJS3-E113"]
