"""When root jobnets are due: occurrences in a range, the next due run, the forecast.

Everything here is a pure function of the definitions and the times given: no clock,
no I/O. Times are UTC unix seconds; wall times are read in each jobnet's zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from ajs3.definitions.daybook import DayBook
from ajs3.definitions.units import DefinitionSet, Schedule, Unit
from ajs3.schedule.calendar import effective_day, picks, times_of_day
from ajs3.tz import FIRST_STAMP, LAST_STAMP, wall_to_utc, zone

#: How far ``next_run`` looks ahead before it says "never" (days).
HORIZON_DAYS = 366 * 12
#: The most a zone's wall clock is away from UTC, with room (seconds).
_OFFSET_MAX = 26 * 3600.0
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class Occurrence:
    """One due run of a root jobnet."""

    jobnet: str
    #: UTC unix time the run is due.
    due: float
    #: Index of the rule that made it (the first, when several rules agree).
    rule: int
    #: UTC unix time after which a run that has not started is skipped, or None.
    deadline: float | None


def _days_margin(schedule: Schedule) -> int:
    # A time may be up to 47:59 after the scheduling day's date, and a closed-day shift
    # moves a run by up to shift_limit days either way.
    shift = max((r.shift_limit for r in schedule.rules), default=0)
    return shift + 3


def occurrence_details(jobnet: Unit, start: float, end: float) -> list[Occurrence]:
    """Every due run of ``jobnet`` in ``[start, end)``, in time order, each time once.

    The range is cut to the representable times (:data:`~ajs3.tz.FIRST_STAMP`
    to :data:`~ajs3.tz.LAST_STAMP`); a run due beyond them is not given.
    """
    schedule = jobnet.schedule
    start, end = max(start, FIRST_STAMP), min(end, LAST_STAMP)
    if schedule is None or not schedule.rules or not start < end:  # `not <`: NaN too
        return []
    tz = zone(schedule.time_zone)
    book = DayBook(schedule.calendar)
    base = book.base_time
    margin = _days_margin(schedule)
    first = max(date.min.toordinal(), datetime.fromtimestamp(start, tz).toordinal() - margin)
    last = min(date.max.toordinal(), datetime.fromtimestamp(end, tz).toordinal() + margin)
    # A wall time is within 26 h of the UTC time it stands for; the wall clock read as
    # UTC ("naive") tells cheaply which times can not fall in [start, end).
    low, high = start - _OFFSET_MAX, end + _OFFSET_MAX
    found: dict[float, Occurrence] = {}
    for ordinal in range(first, last + 1):
        day = date.fromordinal(ordinal)
        for index, rule in enumerate(schedule.rules):
            if not picks(rule, day, book):
                continue
            run_day = effective_day(rule, day, book)
            if run_day is None:
                continue
            naive = (run_day.toordinal() - _EPOCH_ORDINAL) * 86400.0
            if naive + 3 * 86400.0 < low or naive - 86400.0 > high:
                continue  # every time of the day (at most 47:59 + 24 h) is out of range
            for minutes in times_of_day(rule, base):
                if not low <= naive + minutes * 60.0 <= high:
                    continue
                try:
                    due = wall_to_utc(tz, run_day, minutes)
                except (OverflowError, ValueError):
                    continue  # a wall time past 9999-12-31 (or before year 1)
                if start <= due < end and due not in found:
                    deadline = None if rule.deadline is None else due + rule.deadline
                    found[due] = Occurrence(jobnet.path, due, index, deadline)
    return [found[t] for t in sorted(found)]


def occurrences(jobnet: Unit, defs: DefinitionSet, start: float, end: float) -> list[float]:
    """UTC unix times of the due runs of root ``jobnet`` in ``[start, end)``, ascending.

    ``defs`` is the set the jobnet belongs to (its schedule already carries its
    calendar; ``defs`` is taken so that callers need not know that).
    """
    del defs
    return [o.due for o in occurrence_details(jobnet, start, end)]


def next_run(jobnet: Unit, after: float) -> Occurrence | None:
    """The first due run of ``jobnet`` strictly after ``after``, or None if none is due
    within :data:`HORIZON_DAYS`."""
    if jobnet.schedule is None or not jobnet.schedule.rules:
        return None
    span = 2 * 86400.0
    lo = max(after, FIRST_STAMP)
    limit = min(after + HORIZON_DAYS * 86400.0, LAST_STAMP)
    while lo < limit:
        hi = min(lo + span, limit)
        for occ in occurrence_details(jobnet, lo, hi):
            if occ.due > after:
                return occ
        lo = hi
        span = min(span * 2, 400 * 86400.0)
    return None


def next_due(defs: DefinitionSet, after: float) -> tuple[float, str] | None:
    """The earliest due run of any root jobnet strictly after ``after``:
    ``(UTC time, jobnet path)``, or None when nothing is scheduled."""
    best: tuple[float, str] | None = None
    for path in sorted(defs.jobnets):
        occ = next_run(defs.jobnets[path], after)
        if occ is not None and (best is None or occ.due < best[0]):
            best = (occ.due, path)
    return best


def due_between(defs: DefinitionSet, after: float, until: float) -> list[Occurrence]:
    """Every due run of every root jobnet in ``(after, until]``, in time then path order.

    What the daemon starts when it wakes at ``until`` having handled ``after``.
    """
    found: list[Occurrence] = []
    for path in sorted(defs.jobnets):
        for occ in occurrence_details(defs.jobnets[path], after, until + 1e-6):
            if after < occ.due <= until:
                found.append(occ)
    found.sort(key=lambda o: (o.due, o.jobnet))
    return found


@dataclass(frozen=True)
class PlannedRun:
    """One line of a forecast."""

    jobnet: str
    due: float
    #: ISO 8601 wall time in the jobnet's zone, with its offset.
    start: str
    time_zone: str
    rule: int

    def to_dict(self) -> dict[str, object]:
        return {
            "jobnet": self.jobnet,
            "start": self.start,
            "time_zone": self.time_zone,
            "rule": self.rule + 1,
            "utc": self.due,
        }


def _bound(moment: datetime | date, tz_name: str) -> float:
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day)
    try:
        if moment.tzinfo is None:
            tz = zone(tz_name)
            stamp = (
                wall_to_utc(tz, moment.date(), moment.hour * 60 + moment.minute)
                + moment.second
                + moment.microsecond / 1e6
            )
            return stamp
        return moment.timestamp()
    except (OverflowError, ValueError):
        # Within a day of the ends of time, where the zone's offset leaves the dates.
        return FIRST_STAMP if moment.year < 5000 else LAST_STAMP


def forecast(
    defs: DefinitionSet,
    start: datetime | date,
    end: datetime | date,
    jobnets: list[str] | None = None,
) -> list[PlannedRun]:
    """The runs of root jobnets (all scheduled ones, or those named) in ``[start, end)``.

    A naive ``start``/``end`` (or a date) is read in each jobnet's own zone, so
    "from 2027-01-01" means midnight in Tokyo for a Tokyo jobnet and in Berlin for a
    Berlin one. Runs come in time order, then by path.
    """
    paths = sorted(defs.jobnets) if jobnets is None else list(jobnets)
    runs: list[PlannedRun] = []
    for path in paths:
        unit = defs.jobnets[path]
        schedule = unit.schedule
        if schedule is None:
            continue
        tz = zone(schedule.time_zone)
        lo, hi = _bound(start, schedule.time_zone), _bound(end, schedule.time_zone)
        for occ in occurrence_details(unit, lo, hi):
            stamp = datetime.fromtimestamp(occ.due, tz).isoformat()
            runs.append(PlannedRun(path, occ.due, stamp, schedule.time_zone, occ.rule))
    runs.sort(key=lambda r: (r.due, r.jobnet))
    return runs
