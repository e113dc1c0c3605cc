"""A calendar's open and closed days, asked day by day.

It lives with the definitions because the loader checks calendars with it; the
schedule package, which works on definitions, builds its rules on it.
"""

from __future__ import annotations

import calendar as _stdcal
from datetime import date

from ajs3.definitions.units import Calendar

#: Every day open: the calendar of a jobnet that has none.
ALWAYS_OPEN = Calendar(name="")


class DayBook:
    """Answers "is D open?" and "which open days has this month?" with caches."""

    def __init__(self, cal: Calendar | None) -> None:
        self.cal = cal or ALWAYS_OPEN
        self._open = {date.fromisoformat(d) for d in self.cal.open_dates}
        self._closed = {date.fromisoformat(d) for d in self.cal.closed_dates}
        self._weekdays = frozenset(self.cal.open_weekdays)
        self._months: dict[tuple[int, int], list[date]] = {}

    def is_open(self, day: date) -> bool:
        if day in self._open:
            return True
        if day in self._closed:
            return False
        return day.weekday() in self._weekdays

    def open_days(self, year: int, month: int) -> list[date]:
        key = (year, month)
        found = self._months.get(key)
        if found is None:
            last = _stdcal.monthrange(year, month)[1]
            found = [
                d for d in (date(year, month, n) for n in range(1, last + 1)) if self.is_open(d)
            ]
            self._months[key] = found
        return found
