"""Wall time in an IANA zone to UTC, by docs/design.md rule 8.

A wall time that does not exist (the clock springs forward over it) is moved to the
end of the gap; a wall time that exists twice (the clock falls back) is taken once,
at its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from ajs3.errors import AjsError, Code

#: The UTC times a schedule is computed for: from 0001-01-02 to 9999-12-30 UTC, a day
#: inside the range of Python's dates, so that a wall time in any zone (offsets are
#: within 26 h of UTC) is representable. Runs beyond it are never due: a forecast or
#: ``next_run`` stops there instead of failing (docs/schedules.md).
FIRST_STAMP = datetime(1, 1, 2, tzinfo=UTC).timestamp()
LAST_STAMP = datetime(9999, 12, 30, tzinfo=UTC).timestamp()


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The zone called ``name``; an :class:`AjsError` (E108) if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise AjsError(
            f"unknown time zone {name!r}",
            code=Code.BAD_VALUE,
            hint="use an IANA name such as Europe/Berlin or Asia/Tokyo",
        ) from None


@lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    """The IANA zone names of this machine (read once: the scan opens every zone file)."""
    return frozenset(available_timezones())


def local_zone_name() -> str:
    """The machine's zone as an IANA name (from $TZ or /etc/localtime), else UTC."""
    import os
    from pathlib import Path

    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and tz in known_zones():
        return tz
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:
        return "UTC"
    marker = "zoneinfo/"
    if marker in target:
        name = target.split(marker, 1)[1]
        if name in known_zones():
            return name
    return "UTC"


def wall_to_utc(tz: ZoneInfo, day: date, minutes: int) -> float:
    """UTC unix time of ``minutes`` after midnight of ``day`` on the wall clock of ``tz``."""
    naive = datetime(day.year, day.month, day.day) + timedelta(minutes=minutes)
    first = naive.replace(tzinfo=tz, fold=0)
    stamp = first.timestamp()
    back = datetime.fromtimestamp(stamp, tz).replace(tzinfo=None)
    if back == naive:
        return stamp  # exists (once, or the first of two when fold=0)
    # In a gap. With fold=0 the offset before the gap was used; with fold=1 the one
    # after. The transition lies between the two readings: find its exact second.
    later = naive.replace(tzinfo=tz, fold=1).timestamp()
    lo, hi = int(min(stamp, later)), int(max(stamp, later))
    after_offset = datetime.fromtimestamp(hi, tz).utcoffset()
    while lo < hi:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == after_offset:
            hi = mid
        else:
            lo = mid + 1
    return float(lo)


def local(tz: ZoneInfo, stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, tz)


def iso(tz: ZoneInfo, stamp: float) -> str:
    return datetime.fromtimestamp(stamp, tz).isoformat()


def utc(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)
