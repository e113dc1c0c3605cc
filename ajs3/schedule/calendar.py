"""Open and closed days of a calendar, and the days a schedule rule picks."""

from __future__ import annotations

import calendar as _stdcal
from datetime import date, timedelta

from ajs3.definitions.daybook import DayBook
from ajs3.definitions.units import ClosedDay, Period, Rule

_EPOCH_DAY = date(1970, 1, 1)
_FIRST_ORDINAL = date.min.toordinal()
_LAST_ORDINAL = date.max.toordinal()
_EPOCH_MONDAY = date(1970, 1, 5)


def _months_between(a: date, b: date) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


def _nth_in(items: list[date], nth: int) -> date | None:
    if nth > 0:
        return items[nth - 1] if nth <= len(items) else None
    return items[nth] if -nth <= len(items) else None


def picks(rule: Rule, day: date, book: DayBook) -> bool:
    """Whether ``rule`` picks scheduling day ``day`` (before closed-day handling)."""
    start = date.fromisoformat(rule.start_date) if rule.start_date else None
    if start is not None and day < start:
        return False
    if rule.end_date is not None and day > date.fromisoformat(rule.end_date):
        return False
    if rule.days or rule.open_days or rule.nth:
        # Days of the month: of the calendar's month, which begins at its base day.
        month = book.month_of(day)
        anchor_month = book.month_of(start) if start is not None else (1970, 1)
        if ((month[0] - anchor_month[0]) * 12 + month[1] - anchor_month[1]) % rule.every:
            return False
        first, last = book.period(month)
        if rule.days:
            size = last.toordinal() - first.toordinal() + 1
            index = day.toordinal() - first.toordinal()  # 0 for the first day
            return any((n - 1 if n > 0 else size + n) == index for n in rule.days)
        if rule.open_days:
            opened = book.open_days(*month)
            return any(_nth_in(opened, n) == day for n in rule.open_days)
        if day.weekday() not in rule.weekdays:
            return False
        offset = (day.toordinal() - first.toordinal()) % 7
        same = [
            date.fromordinal(n) for n in range(first.toordinal() + offset, last.toordinal() + 1, 7)
        ]
        return any(_nth_in(same, n) == day for n in rule.nth)
    if rule.period is Period.MONTH:
        anchor = start or _EPOCH_DAY
        if _months_between(anchor, day) % rule.every:
            return False
        # Every N months on the start's day of the month; short months use their last day.
        return day.day == min(anchor.day, _stdcal.monthrange(day.year, day.month)[1])
    if rule.weekdays or rule.period is Period.WEEK:
        anchor = start or _EPOCH_MONDAY
        monday = day - timedelta(days=day.weekday())
        weeks = monday - (anchor - timedelta(days=anchor.weekday()))
        if (weeks.days // 7) % rule.every:
            return False
        wanted = rule.weekdays or (anchor.weekday(),)
        return day.weekday() in wanted
    anchor = start or _EPOCH_DAY
    return (day - anchor).days % rule.every == 0


def effective_day(rule: Rule, day: date, book: DayBook) -> date | None:
    """The day a picked day really runs on after closed-day handling, or None."""
    if rule.open_days or book.is_open(day) or rule.closed_days is ClosedDay.RUN:
        return day
    if rule.closed_days is ClosedDay.CANCEL:
        return None
    step = -1 if rule.closed_days is ClosedDay.BEFORE else 1
    for n in range(1, rule.shift_limit + 1):
        ordinal = day.toordinal() + step * n
        if not _FIRST_ORDINAL <= ordinal <= _LAST_ORDINAL:
            return None  # beyond the dates there are
        candidate = date.fromordinal(ordinal)
        if book.is_open(candidate):
            return candidate
    return None


def times_of_day(rule: Rule, base_time: int) -> list[int]:
    """Minutes after midnight of the scheduling day's date; may pass 24 h.

    A time before the base time belongs to the next calendar date (the scheduling
    day began at the base time the day before it).
    """

    def shifted(minutes: int) -> int:
        return minutes + 1440 if minutes < base_time else minutes

    first = shifted(rule.at)
    if rule.repeat_every is None or rule.repeat_until is None:
        return [first]
    until = shifted(rule.repeat_until)
    if until < first:
        until += 1440
    return list(range(first, until + 1, rule.repeat_every))
