"""Numbers, dates and clock times of JP1 parameters, read strictly.

JP1 writes numbers in ASCII digits. ``str.isdigit`` and the regex ``\\d`` also accept
other digits (``²``, Arabic-Indic ones) that ``int()`` then refuses with a traceback or reads as a
number the user never wrote, and ``int()`` of a long digit string is slow or refused. So
every numeric field of an imported file goes through here: ASCII digits only, a bounded
length, a range; anything else is :class:`Invalid` with a message saying what is expected.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from ajs3.definitions.schema import WEEKDAY_NAMES as YAML_WEEKDAYS
from ajs3.jp1.catalog import FIRST_YEAR, LAST_YEAR

_INT = re.compile(r"-?[0-9]{1,10}")
_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_DATE = re.compile(r"([0-9]{4})/([0-9]{1,2})/([0-9]{1,2})")

#: JP1's integer parameters are 32-bit; wider ranges are given where the field allows.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class Invalid(ValueError):
    """A value JP1 itself would refuse: not a number, not a date, out of range."""


def integer(text: str, low: int, high: int) -> int:
    """``text`` as an integer in ``low..high``, written in ASCII digits."""
    if _INT.fullmatch(text) is None:
        raise Invalid(f"expected a whole number {low}..{high} in ASCII digits, not {text[:40]!r}")
    number = int(text)
    if not low <= number <= high:
        raise Invalid(f"{number} is out of range; expected {low}..{high}")
    return number


def clock(text: str, last_hour: int) -> str:
    """``h:mm`` or ``hh:mm`` with hours 0..last_hour -> ``hh:mm``."""
    match = _CLOCK.fullmatch(text)
    if match is None:
        raise Invalid(f"expected a time hh:mm in ASCII digits, not {text[:40]!r}")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours > last_hour or minutes > 59:
        raise Invalid(f"{text} is not a time from 00:00 to {last_hour:02d}:59")
    return f"{hours:02d}:{minutes:02d}"


def year_month(year: str, month: str) -> tuple[int, int]:
    """A year JP1 accepts (1994..2036) and a month 1..12."""
    return integer(year, FIRST_YEAR, LAST_YEAR), integer(month, 1, 12)


def calendar_date(text: str) -> date:
    """``yyyy/mm/dd``, a day that exists (not February 30) in the years JP1 accepts."""
    match = _DATE.fullmatch(text)
    if match is None:
        raise Invalid(f"expected a date yyyy/mm/dd in ASCII digits, not {text[:40]!r}")
    return day_of(*year_month(match.group(1), match.group(2)), match.group(3))


def day_of(year: int, month: int, day: str) -> date:
    number = integer(day, 1, 31)
    try:
        return date(year, month, number)
    except ValueError:
        raise Invalid(f"{year:04d}/{month:02d}/{number:02d} is not a date") from None


def has_foreign_digit(text: str) -> bool:
    """A digit other than 0-9 (superscript, Arabic-Indic, full-width): never valid in JP1."""
    return any(ch.isdigit() and not "0" <= ch <= "9" for ch in text)


#: JP1's weekday names, Monday first (as ajs3's YAML names, schema.WEEKDAY_NAMES).
WEEKDAYS = ("mo", "tu", "we", "th", "fr", "sa", "su")


def rule_number(value: str) -> tuple[str | None, str]:
    """``N,rest`` -> (N as written, rest); a value without a rule number -> (None, value)."""
    match = re.fullmatch(r"([^,/(]+),(.*)", value, re.S)
    if match is None:
        return None, value
    return match.group(1).strip(), match.group(2)


def monthly(part: str) -> dict[str, Any] | None:
    """``*dd`` (Nth open day), ``+dd`` (Nth day from the base day), ``b``/``b-DD``
    (from the end; also ``+b``), ``*b``, ``su:n``/``su:b``."""
    match = re.fullmatch(r"([*+])0?([1-9]|[12][0-9]|3[01])", part)
    if match is not None:
        return {"open_days" if match.group(1) == "*" else "days": [int(match.group(2))]}
    match = re.fullmatch(r"([*+]?)b(?:-0?([1-9]|[12][0-9]|30))?", part)
    if match is not None:
        n = -1 - int(match.group(2) or 0)
        return {"open_days": [n]} if match.group(1) == "*" else {"days": [n]}
    match = re.fullmatch(r"(su|mo|tu|we|th|fr|sa):([1-5]|b)", part)
    if match is not None:
        nth = -1 if match.group(2) == "b" else int(match.group(2))
        return {"weekdays": [YAML_WEEKDAYS[WEEKDAYS.index(match.group(1))]], "nth": [nth]}
    return None
