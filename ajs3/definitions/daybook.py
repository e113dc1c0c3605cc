"""A complete calendar's open and closed days and its months, asked day by day.

It lives with the definitions because the loader checks calendars with it; the
schedule package, which works on definitions, builds its rules on it.

Months follow the calendar's base day (JP1's ``sdd``/``md``, docs/schedules.md): with
base day 21 and base month "this", the month January 2027 runs from January 21 to
February 20; with base month "next" the same days are February. Without a base day a
month is the calendar month.
"""

from __future__ import annotations

import calendar as _stdcal
from datetime import date, timedelta

from ajs3.definitions.units import BaseMonth, Calendar

#: Every day open: the calendar of a jobnet that has none.
ALWAYS_OPEN = Calendar(name="")

Month = tuple[int, int]


def _shift(month: Month, by: int) -> Month:
    index = month[0] * 12 + month[1] - 1 + by
    return index // 12, index % 12 + 1


class DayBook:
    """Answers "is D open?", "which month is D in?" and "which open days has this
    month?" with caches. Undefined weekdays of the calendar count as open."""

    def __init__(self, cal: Calendar | None) -> None:
        self.cal = cal or ALWAYS_OPEN
        self._open = {date.fromisoformat(d) for d in self.cal.open_dates}
        self._closed = {date.fromisoformat(d) for d in self.cal.closed_dates}
        self._weekdays = frozenset(d for d in range(7) if d not in self.cal.closed_weekdays)
        self._months: dict[Month, list[date]] = {}
        self._starts: dict[Month, date] = {}
        self._next = self.cal.base_month is BaseMonth.NEXT
        #: Months are calendar months (base day the 1st, named after themselves).
        self.plain_months = (
            self.cal.base_day in (None, 1) and self.cal.base_weekday is None and not self._next
        )

    @property
    def base_time(self) -> int:
        return self.cal.base_time or 0

    def is_open(self, day: date) -> bool:
        if day in self._open:
            return True
        if day in self._closed:
            return False
        return day.weekday() in self._weekdays

    # -- months ------------------------------------------------------------------------

    def _base_date(self, month: Month) -> date:
        """The base day in calendar month ``month``."""
        year, mon = month
        last = _stdcal.monthrange(year, mon)[1]
        if self.cal.base_weekday is not None:
            weekday, nth = self.cal.base_weekday
            first = date(year, mon, 1)
            day = 1 + (weekday - first.weekday()) % 7 + 7 * (nth - 1)
            while day > last:
                day -= 7
            return date(year, mon, day)
        return date(year, mon, min(self.cal.base_day or 1, last))

    def _start_of(self, month: Month) -> date:
        """The first day of the month named ``month``."""
        found = self._starts.get(month)
        if found is None:
            try:
                found = self._base_date(_shift(month, -1) if self._next else month)
            except ValueError:  # before year 1 or after 9999
                found = date.min if month[0] < 5000 else date.max
            self._starts[month] = found
        return found

    def month_of(self, day: date) -> Month:
        """The month ``day`` belongs to (year, month)."""
        if self.plain_months:
            return day.year, day.month
        month = (day.year, day.month)
        for step in (1, 0, -1, -2):
            candidate = _shift(month, step)
            if self._start_of(candidate) <= day:
                return candidate
        return _shift(month, -2)

    def period(self, month: Month) -> tuple[date, date]:
        """The first and last day of the month named ``month``."""
        if self.plain_months:
            year, mon = month
            return date(year, mon, 1), date(year, mon, _stdcal.monthrange(year, mon)[1])
        first = self._start_of(month)
        following = self._start_of(_shift(month, 1))
        last = following - timedelta(days=1) if following > date.min else following
        return first, last

    def days_of(self, month: Month) -> list[date]:
        first, last = self.period(month)
        return [date.fromordinal(n) for n in range(first.toordinal(), last.toordinal() + 1)]

    def open_days(self, year: int, month: int) -> list[date]:
        """The open days of the month named (year, month), in order."""
        key = (year, month)
        found = self._months.get(key)
        if found is None:
            found = [d for d in self.days_of(key) if self.is_open(d)]
            self._months[key] = found
        return found
