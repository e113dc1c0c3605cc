"""ajs3 definitions -> a JP1/AJS3 unit definition file (ajsdefine input).

What JP1 can not say is reported as a note (and kept out of the file): time zones,
repetition beyond 144 rules, catch-up policies, failover policies, timeouts that are
not whole minutes.
"""

from __future__ import annotations

import math
import shlex
from datetime import date, timedelta

from ajs3.definitions.daybook import DayBook
from ajs3.definitions.units import (
    BaseMonth,
    Calendar,
    ClosedDay,
    DefinitionSet,
    Match,
    Period,
    Rule,
    Unit,
)
from ajs3.jp1 import delaymap
from ajs3.jp1 import events as jp1events
from ajs3.jp1.catalog import FIRST_YEAR, LAST_YEAR
from ajs3.jp1.parser import quote
from ajs3.model import Compare, RecoveryPolicy, UnitKind

WEEKDAYS = ("mo", "tu", "we", "th", "fr", "sa", "su")
SH = {ClosedDay.BEFORE: "be", ClosedDay.AFTER: "af", ClosedDay.CANCEL: "ca", ClosedDay.RUN: "no"}
EJ = {
    Compare.GT: "gt",
    Compare.GE: "ge",
    Compare.LT: "lt",
    Compare.LE: "le",
    Compare.EQ: "eq",
    Compare.NE: "ne",
    Compare.IN_RANGE: "ri",
    Compare.OUT_RANGE: "ro",
    Compare.FILE_EXISTS: "ef",
    Compare.FILE_MISSING: "nf",
}
MAX_RULES = 144
#: JP1 needs a start date; a rule without one counts from this day.
DEFAULT_START = date(2000, 1, 1)


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.notes: list[str] = []
        #: root jobnet -> the connector that waits for it (JP1 names one, ncn=)
        self.links: dict[str, Unit] = {}

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)


def _ty(unit: Unit) -> str:
    if unit.kind is UnitKind.JOBNET:
        return "rn" if unit.recovery else "n"
    if unit.kind is UnitKind.JOB:
        return "rj" if unit.recovery else "j"
    if unit.kind is UnitKind.CONNECTOR:
        return "nc"
    if unit.kind is UnitKind.FILEWATCH:
        return "rflwj" if unit.recovery else "flwj"
    return "jdj" if unit.kind is UnitKind.JUDGE else "orj"


def _d(day: date) -> str:
    return f"{day.year:04d}/{day.month:02d}/{day.day:02d}"


def _iso(day: date) -> str:
    return day.isoformat()


def _hm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _calendar(out: _Out, cal: Calendar, depth: int, path: str) -> None:
    """What the calendar defines; what it leaves undefined stays undefined, for the
    upper-level group's calendar (as in ajs3)."""
    for weekday in cal.open_weekdays:
        out.emit(depth, f"op={WEEKDAYS[weekday]};")
    for weekday in cal.closed_weekdays:
        out.emit(depth, f"cl={WEEKDAYS[weekday]};")
    for key, dates in (("op", cal.open_dates), ("cl", cal.closed_dates)):
        for text in dates:
            day = date.fromisoformat(text)
            if not FIRST_YEAR <= day.year <= LAST_YEAR:
                out.notes.append(f"{path}: {key}={_d(day)} is outside JP1's years; not exported")
                continue
            out.emit(depth, f"{key}={_d(day)};")
    if cal.base_time is not None:
        out.emit(depth, f"stt={_hm(cal.base_time)};")
    if cal.base_day is not None:
        out.emit(depth, f"sdd={cal.base_day};")
    elif cal.base_weekday is not None:
        out.emit(depth, f"sdd={WEEKDAYS[cal.base_weekday[0]]}:{cal.base_weekday[1]};")
    if cal.base_month is not None:
        out.emit(depth, f"md={'th' if cal.base_month is BaseMonth.THIS else 'ne'};")


def _rule_lines(rule: Rule, path: str, out: _Out, book: DayBook) -> list[list[str]]:
    """JP1 rules (each a list of 'key=value' without the rule number) for one ajs3 rule;
    ``book`` gives the months of the jobnet's calendar (its base day)."""
    start = date.fromisoformat(rule.start_date) if rule.start_date else DEFAULT_START
    if not FIRST_YEAR <= start.year <= LAST_YEAR:
        out.notes.append(f"{path}: a rule starts in {start.year}, outside JP1's years")
    times = [rule.at]
    if rule.repeat_every and rule.repeat_until is not None:
        until = rule.repeat_until if rule.repeat_until >= rule.at else rule.repeat_until + 1440
        times = list(range(rule.at, until + 1, rule.repeat_every))
    days: list[tuple[str, str | None]] = []  # (sd day, cy)
    named = book.month_of(start)
    month = f"{named[0]:04d}/{named[1]:02d}/"
    first, last = book.period(named)
    one_month = rule.end_date == last.isoformat() and rule.start_date == first.isoformat()
    if rule.open_days or rule.days or rule.nth:
        cy: str | None = None if one_month else f"({rule.every},m)"
        # days count from the base day: JP1's relative day '+dd' unless months are plain
        plus = "" if book.plain_months else "+"
        for n in rule.open_days:
            days.append((month + (f"*{n}" if n > 0 else ("*b" if n == -1 else f"*b-{-n - 1}")), cy))
        for n in rule.days:
            days.append(
                (month + (f"{plus}{n}" if n > 0 else ("b" if n == -1 else f"b-{-n - 1}")), cy)
            )
        for wd in rule.weekdays:
            for n in rule.nth:
                days.append((month + f"{WEEKDAYS[wd]}:{'b' if n < 0 else n}", cy))
                if n < -1:
                    out.notes.append(f"{path}: nth {n} has no JP1 form; exported as the last")
    elif rule.weekdays:
        for wd in rule.weekdays:
            first = start + timedelta(days=(wd - start.weekday()) % 7)
            days.append((_d(first), f"({rule.every},w)"))
    elif rule.period is Period.WEEK:
        days.append((_d(start), f"({rule.every},w)"))
    elif rule.period is Period.MONTH:
        days.append((_d(start), f"({rule.every},m)"))
    elif rule.end_date == rule.start_date and rule.start_date is not None:
        days.append((_d(start), None))
    else:
        days.append((_d(start), f"({rule.every},d)"))
    if (
        rule.end_date is not None
        and rule.end_date != rule.start_date
        and not (one_month and (rule.open_days or rule.days or rule.nth))
    ):
        out.notes.append(f"{path}: the end date {rule.end_date} of a rule has no JP1 form")
    if rule.deadline is not None:
        out.notes.append(f"{path}: the start deadline of a rule is not exported")
    found: list[list[str]] = []
    for sd, cycle in days:
        for minutes in times:
            items = [f"sd={sd}", f"st={_hm(minutes)}"]
            if cycle is not None:
                items.append(f"cy={cycle}")
            items.append(f"sh={SH[rule.closed_days]}")
            items.append(f"shd={rule.shift_limit}")
            found.append(items)
    return found


def _unit(out: _Out, unit: Unit, depth: int, root: bool) -> None:
    name = unit.name
    out.emit(depth, f"unit={name},,,;")
    out.emit(depth, "{")
    d = depth + 1
    out.emit(d, f"ty={_ty(unit)};")
    if unit.description:
        out.emit(d, f"cm={quote(unit.description)};")
    rule_count = 0
    if unit.kind is UnitKind.JOBNET:
        for i, child in enumerate(unit.units):
            out.emit(
                d, f"el={child.name},{_ty(child)},+{80 + 160 * (i % 10)} +{48 + 96 * (i // 10)};"
            )
        for child in unit.units:
            for before in child.after:
                kind = "con" if child.recovery else "seq"
                out.emit(d, f"ar=(f={before},t={child.name},{kind});")
        if root and unit.schedule is not None:
            sched = unit.schedule
            book = DayBook(sched.calendar)
            rules = [r for rule in sched.rules for r in _rule_lines(rule, unit.path, out, book)]
            if len(rules) > MAX_RULES:
                out.notes.append(
                    f"{unit.path}: {len(rules)} JP1 rules needed; the first "
                    f"{MAX_RULES} are exported"
                )
                rules = rules[:MAX_RULES]
            for n, items in enumerate(rules, 1):
                for item in items:
                    key, value = item.split("=", 1)
                    out.emit(d, f"{key}={n},{value};")
            rule_count = len(rules)
            if sched.overlap.value == "parallel":
                out.emit(d, "mp=y;")
            elif sched.overlap.value == "queue":
                out.emit(d, "mp=n;")
            out.notes.append(
                f"{unit.path}: time zone {sched.time_zone}, overlap "
                f"{sched.overlap.value}, catch-up {sched.catch_up.value} are not "
                "JP1 parameters"
            )
    if root and unit.path in out.links:
        link = out.links[unit.path]
        synchronous = "y" if link.match is Match.SCHEDULING_DAY else "n"
        out.emit(d, "ncl=y;")
        out.emit(d, f"ncn={link.path};")
        out.emit(d, f"ncs={synchronous};")
    if unit.kind is UnitKind.CONNECTOR and unit.waits_for is not None:
        out.emit(d, f"ncr={unit.waits_for};")
    if root and unit.start_condition is not None:  # ajs3.jp1.events
        params, _, notes = jp1events.condition_lines(unit.start_condition)
        for line in params:
            out.emit(d, line)
        out.notes.extend(f"{unit.path}: {n}" for n in notes)
    if unit.kind is UnitKind.FILEWATCH and unit.watch is not None:
        for line in jp1events.watch_lines(unit.watch):
            out.emit(d, line)
        if unit.watch.stable_for:
            out.notes.append(f"{unit.path}: stable_for has no JP1 parameter")
    if root and unit.keep is not None and unit.keep.runs is not None:
        out.emit(d, f"rg={unit.keep.runs};")
    if root and unit.keep is not None and unit.keep.days is not None:
        out.notes.append(f"{unit.path}: keep.days has no JP1 parameter")
    if unit.kind is UnitKind.JOBNET:
        for line in delaymap.export_delay(
            unit.delay, jobnet=True, rules=rule_count, path=unit.path, notes=out.notes
        ):
            out.emit(d, line)
    if unit.hold:
        out.emit(d, "ha=y;")
    if unit.kind is UnitKind.JOB:
        macros = delaymap.export_macros
        if unit.script is not None:
            out.emit(d, f"te={quote(macros(unit.script))};")
        elif unit.command:
            out.emit(d, f"sc={quote(macros(unit.command[0]))};")
            if len(unit.command) > 1:
                out.emit(d, f"prm={quote(macros(shlex.join(unit.command[1:])))};")
        if unit.user:
            out.emit(d, f"un={unit.user};")
        if unit.cwd:
            out.emit(d, f"wkp={quote(unit.cwd)};")
        if unit.host:  # inherited from a jobnet or its own: JP1 names it per job
            out.emit(d, f"ex={quote(unit.host)};")
        for key, value in unit.env:
            out.emit(d, f"env={quote(f'{key}={value}')};")
        if unit.warning_threshold is not None:
            out.emit(d, f"wth={unit.warning_threshold};")
        out.emit(d, f"tho={unit.abnormal_threshold};")
        if unit.timeout is not None:
            minutes = math.ceil(unit.timeout / 60)
            if minutes * 60 != unit.timeout:
                out.notes.append(
                    f"{unit.path}: timeout {unit.timeout} s rounded up to {minutes} min"
                )
            out.emit(d, f"etm={minutes};")
        for line in delaymap.export_delay(
            unit.delay, jobnet=False, rules=0, path=unit.path, notes=out.notes
        ):
            out.emit(d, line)
        if unit.retry.count:
            out.emit(d, "abr=y;")
            out.emit(d, f"rec={unit.retry.count};")
            if unit.retry.interval:
                out.emit(d, f"rei={max(1, math.ceil(unit.retry.interval / 60))};")
            codes = unit.retry.on_exit_codes
            if codes:
                out.emit(d, f"rjs={min(codes)};")
                out.emit(d, f"rje={max(codes)};")
                if len(codes) != max(codes) - min(codes) + 1:
                    out.notes.append(f"{unit.path}: retry exit codes exported as a range")
        if unit.on_failover is not RecoveryPolicy.FAIL or unit.shell != "/bin/sh":
            out.notes.append(f"{unit.path}: on_failover/shell have no JP1 parameter")
    if unit.kind is UnitKind.JUDGE and unit.condition is not None:
        cond = unit.condition
        out.emit(d, f"ej={EJ[cond.op]};")
        if cond.value is not None:
            out.emit(d, f"ejc={cond.value};")
        if cond.low is not None:
            out.emit(d, f"ejl={cond.low};")
            out.emit(d, f"ejh={cond.high};")
        if cond.path is not None:
            out.emit(d, f"ejf={quote(cond.path)};")
    for child in unit.units:
        _unit(out, child, d, root=False)
    if root and unit.start_condition is not None:
        _condition_unit(out, jp1events.condition_lines(unit.start_condition)[1], d)
    out.emit(depth, "}")


def _condition_unit(out: _Out, watches: list[list[str]], d: int) -> None:
    """The start condition unit (``.CONDITION``, ``ty=rc``) with one event job a watch."""
    out.emit(d, "unit=.CONDITION,,,;")
    out.emit(d, "{")
    out.emit(d + 1, "ty=rc;")
    out.emit(d + 1, "cond=or;")
    for i, lines in enumerate(watches, 1):
        out.emit(d + 1, f"unit=watch{i},,,;")
        out.emit(d + 1, "{")
        out.emit(d + 2, "ty=flwj;")
        for line in lines:
            out.emit(d + 2, line)
        out.emit(d + 1, "}")
    out.emit(d, "}")


def export(defs: DefinitionSet) -> tuple[str, list[str]]:
    """The unit definition file text, and notes on what could not be expressed."""
    out = _Out()
    out.emit(0, "/* written by ajs3 export --jp1 */")
    groups = set(defs.groups)
    for path in defs.jobnets:
        parent = path.rsplit("/", 1)[0]
        while parent:
            groups.add(parent)
            parent = parent.rsplit("/", 1)[0]
    for unit in defs.jobnets.values():
        for link in (u for u in unit.walk() if u.kind is UnitKind.CONNECTOR):
            first = out.links.setdefault(link.waits_for or "", link)
            if first is not link:
                out.notes.append(
                    f"{link.path}: JP1 connects a jobnet to one connector (ncn=); "
                    f"{link.waits_for} names {first.path}, not this one"
                )
    calendars: dict[str, Calendar] = {}
    for path, unit in defs.jobnets.items():
        cal = unit.schedule.calendar if unit.schedule else None
        if cal is not None and defs.group_calendars.get(path.rsplit("/", 1)[0] or "/") is None:
            # Calendar named on the jobnet: JP1 keeps calendars on job groups.
            calendars.setdefault(path.rsplit("/", 1)[0] or "/", cal)
    for group, name in defs.group_calendars.items():
        if name in defs.calendars:
            calendars[group] = defs.calendars[name]

    def emit_group(path: str, depth: int) -> None:
        name = path.rsplit("/", 1)[1]
        out.emit(depth, f"unit={name},,,;")
        out.emit(depth, "{")
        out.emit(depth + 1, "ty=g;")
        if path in calendars:
            _calendar(out, calendars[path], depth + 1, path)
        for sub in sorted(g for g in groups if g.rsplit("/", 1)[0] == path):
            emit_group(sub, depth + 1)
        for jpath in sorted(j for j in defs.jobnets if j.rsplit("/", 1)[0] == path):
            _unit(out, defs.jobnets[jpath], depth + 1, root=True)
        out.emit(depth, "}")

    for top in sorted(g for g in groups if g.count("/") == 1):
        emit_group(top, 0)
    for jpath in sorted(j for j in defs.jobnets if j.count("/") == 1):
        _unit(out, defs.jobnets[jpath], 0, root=True)
    return "\n".join(out.lines) + "\n", out.notes
