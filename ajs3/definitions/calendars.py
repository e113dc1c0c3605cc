"""Calendars: read from a definition file, and layered over the calendars above them.

A job group's calendar may leave days undefined (a weekday in neither
``open_weekdays`` nor ``closed_weekdays``, no base time, no base day); those come from
the calendar of the group above, as JP1/AJS3 takes undefined days of a job group's
calendar from the upper-level job group (docs/schedules.md). :func:`layered` turns the
calendars from a jobnet up to the top into the one complete calendar its schedule
carries, so the scheduler and the forecast never walk the groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from yaml.nodes import Node, ScalarNode

from ajs3.definitions import schema
from ajs3.definitions.daybook import DayBook
from ajs3.definitions.nodes import Ctx, line_of
from ajs3.definitions.schedules import read_date, read_time, read_weekdays
from ajs3.definitions.units import BaseMonth, Calendar
from ajs3.errors import Code


def read_calendars(ctx: Ctx, node: Node) -> list[tuple[Calendar, int]]:
    """The calendars of a file's 'calendars' list, each with its line."""
    items = ctx.sequence(node, "'calendars'")
    found: list[tuple[Calendar, int]] = []
    for item in items or []:
        cal = _calendar(ctx, item)
        if cal is not None:
            found.append((cal, line_of(item)))
    return found


def _calendar(ctx: Ctx, node: Node) -> Calendar | None:
    fields = ctx.mapping(node, "each entry of 'calendars'")
    if fields is None:
        return None
    line = line_of(node)
    what = f"the calendar at line {line}"
    ctx.check_keys(fields, schema.CALENDAR_KEYS, what)
    problems = ctx.reported
    out: dict[str, object] = {"source": f"{ctx.file}:{line}"}
    if "name" not in fields:
        ctx.report(Code.MISSING_KEY, node, f"{what} has no 'name'; add one")
    else:
        name = ctx.text(fields["name"][1], f"the name of {what}")
        if name is not None and not schema.NAME_RE.match(name):
            ctx.report(
                Code.BAD_NAME,
                fields["name"][1],
                f"calendar name {name!r} is not valid; use 1 to 64 letters, digits, "
                "'_', '.' or '-'",
            )
        out["name"] = name
        what = f"calendar {name!r}"
    _weekly(ctx, fields, what, out)
    for key in ("open_dates", "closed_dates"):
        if key in fields:
            items = ctx.sequence(fields[key][1], f"'{key}' of {what}")
            dates = [read_date(ctx, item, f"an entry of '{key}' of {what}") for item in items or []]
            out[key] = tuple(sorted({d for d in dates if d is not None}))
    if "base_time" in fields:
        out["base_time"] = read_time(
            ctx, fields["base_time"][1], f"'base_time' of {what}", 23 * 60 + 59
        )
    if "base_day" in fields:
        _base_day(ctx, fields["base_day"][1], f"'base_day' of {what}", out)
    if "base_month" in fields:
        month = ctx.choice(
            fields["base_month"][1], f"'base_month' of {what}", [m.value for m in BaseMonth]
        )
        out["base_month"] = None if month is None else BaseMonth(month)
    if ctx.reported != problems:
        return None
    cal = Calendar(**{k: v for k, v in out.items() if v is not None})  # type: ignore[arg-type]
    both = set(cal.open_dates) & set(cal.closed_dates)
    if both:
        ctx.report(
            Code.BAD_VALUE, node, f"{what} lists {min(both)} as both open and closed; keep one"
        )
        return None
    if len(cal.closed_weekdays) == 7 and not cal.open_dates:
        ctx.report(
            Code.BAD_VALUE,
            node,
            f"{what} has no open day at all; give 'open_weekdays' or 'open_dates'",
        )
        return None
    # Undefined weekdays may be open (from the calendar above): judged as open here;
    # the calendars a jobnet uses are judged together when the set is loaded.
    problem = no_open_year(cal)
    if problem is not None:
        ctx.report(Code.BAD_VALUE, node, f"{what} {problem}")
        return None
    return cal


def no_open_year(cal: Calendar) -> str | None:
    """'has no open day at all' or 'has no open day in YYYY' (the first year of its
    closed dates without an open day), or None."""
    if len(cal.closed_weekdays) == 7 and not cal.open_dates:
        return "has no open day at all; a schedule on it would never run"
    book = DayBook(cal)
    for year in sorted({int(d[:4]) for d in cal.closed_dates}):
        if not any(book.is_open(d) for d in _days_of_year(year)):
            return f"has no open day in {year}; a schedule on it would never run"
    return None


def _days_of_year(year: int) -> list[date]:
    first = date(year, 1, 1).toordinal()
    return [date.fromordinal(n) for n in range(first, date(year, 12, 31).toordinal() + 1)]


def _weekly(
    ctx: Ctx, fields: dict[str, tuple[Node, Node]], what: str, out: dict[str, object]
) -> None:
    """``open_weekdays`` and ``closed_weekdays``. Given alone, ``open_weekdays`` closes
    the other weekdays (a complete week); otherwise a weekday in neither list is left
    to the calendar above."""
    opened = closed = None
    if "open_weekdays" in fields:
        opened = read_weekdays(ctx, fields["open_weekdays"][1], f"'open_weekdays' of {what}")
    if "closed_weekdays" in fields:
        closed = read_weekdays(ctx, fields["closed_weekdays"][1], f"'closed_weekdays' of {what}")
    if opened is not None and closed is not None and set(opened) & set(closed):
        day = schema.WEEKDAY_NAMES[min(set(opened) & set(closed))]
        ctx.report(
            Code.BAD_VALUE,
            fields["closed_weekdays"][1],
            f"{what} lists {day} in both 'open_weekdays' and 'closed_weekdays'; keep one",
        )
        return
    if opened is not None and "closed_weekdays" not in fields:
        closed = tuple(d for d in range(7) if d not in opened)
    out["open_weekdays"] = opened or ()
    out["closed_weekdays"] = closed or ()


def _base_day(ctx: Ctx, node: Node, what: str, out: dict[str, object]) -> None:
    """``base_day: 21`` or ``base_day: {weekday: mon, nth: 2}``."""
    if isinstance(node, ScalarNode):
        out["base_day"] = ctx.integer(node, what, 1, 31)
        return
    fields = ctx.mapping(node, what)
    if fields is None:
        return
    ctx.check_keys(fields, ("weekday", "nth"), what)
    if "weekday" not in fields or "nth" not in fields:
        ctx.report(Code.MISSING_KEY, node, f"{what} needs 'weekday' and 'nth' (1..5)")
        return
    day = ctx.choice(fields["weekday"][1], f"'weekday' of {what}", list(schema.WEEKDAY_NAMES))
    nth = ctx.integer(fields["nth"][1], f"'nth' of {what}", 1, 5)
    if day is not None and nth is not None:
        out["base_weekday"] = (schema.WEEKDAY_NAMES.index(day), nth)


def layered(chain: Sequence[Calendar]) -> Calendar:
    """One complete calendar from ``chain``, the nearest calendar first and the
    calendars of the groups above it after: each day, weekday, base time and base day
    is the nearest calendar's that defines it (a listed date before a weekday); what
    none defines is open, 00:00, the 1st, this month."""
    if not chain:
        return DayBook(None).cal
    week: list[bool] = []
    for weekday in range(7):
        state = True
        for cal in chain:
            if weekday in cal.open_weekdays or weekday in cal.closed_weekdays:
                state = weekday in cal.open_weekdays
                break
        week.append(state)
    opened: set[str] = set()
    closed: set[str] = set()
    for text in {d for cal in chain for d in cal.open_dates + cal.closed_dates}:
        day = date.fromisoformat(text).weekday()
        state = week[day]
        for cal in chain:
            if text in cal.open_dates or text in cal.closed_dates:
                state = text in cal.open_dates
                break
            if day in cal.open_weekdays or day in cal.closed_weekdays:
                state = day in cal.open_weekdays
                break
        if state != week[day]:
            (opened if state else closed).add(text)
    base_time = next((c.base_time for c in chain if c.base_time is not None), 0)
    base = next((c for c in chain if c.base_day is not None or c.base_weekday is not None), None)
    month = next((c.base_month for c in chain if c.base_month is not None), BaseMonth.THIS)
    return Calendar(
        name=chain[0].name,
        open_weekdays=tuple(d for d in range(7) if week[d]),
        closed_weekdays=tuple(d for d in range(7) if not week[d]),
        open_dates=tuple(sorted(opened)),
        closed_dates=tuple(sorted(closed)),
        base_time=base_time,
        base_day=None if base is None else base.base_day,
        base_weekday=None if base is None else base.base_weekday,
        base_month=month,
        source=chain[0].source,
    )
