"""The part of the JP1 import that reports what it finds (invalid values, parameters
not mapped, the JP1 line each generated mapping comes from) and maps calendars and
schedules; ajs3/jp1/importer.py builds on it for units, jobs and relations."""

from __future__ import annotations

import re
from typing import Any

from ajs3.definitions import schema
from ajs3.definitions.daybook import DayBook
from ajs3.definitions.units import BaseMonth, Calendar
from ajs3.errors import Code, Problem
from ajs3.jp1 import catalog, values
from ajs3.jp1.parser import Jp1Unit, Param
from ajs3.jp1.values import WEEKDAYS, Invalid

YAML_WEEKDAYS = schema.WEEKDAY_NAMES
#: Display-only parameters: nothing is lost without them.
LAYOUT = frozenset({"ty", "el", "sz", "cm"})
CLOSED = {"be": "before", "af": "after", "ca": "cancel", "no": "run"}
#: JP1 numbers a jobnet's schedule rules 1..144.
MAX_RULE_NUMBER = 144


class Mapper:
    """Reports and calendar/schedule mapping of one import; the importer sets the
    attributes declared here."""

    file: str
    tz: str
    notes: list[Problem]
    problems: list[Problem]
    origin: dict[int, int]
    #: Base day and base month each job group sets (path -> YAML keys).
    bases: dict[str, dict[str, Any]]
    #: The job group of the root jobnet being mapped.
    group: str

    def note(self, line: int, message: str) -> None:
        self.notes.append(Problem(Code.JP1_UNMAPPED, self.file, line, message))

    def invalid(self, unit: Jp1Unit, param: Param, why: str) -> None:
        """A value JP1 itself would refuse: an error, not a note (AJS3-E111)."""
        self.problems.append(
            Problem(
                Code.JP1_SYNTAX,
                self.file,
                param.line,
                f"{param.key}={param.value[:60]} of {unit.name!r}: {why}",
            )
        )

    def number(
        self, unit: Jp1Unit, param: Param, low: int, high: int, text: str | None = None
    ) -> int | None:
        try:
            return values.integer(param.value if text is None else text, low, high)
        except Invalid as exc:
            self.invalid(unit, param, str(exc))
            return None

    def unmapped(self, unit: Jp1Unit, param: Param, why: str = "") -> None:
        self.note(
            param.line,
            f"parameter {param.key}={param.value} of {unit.name!r} is not "
            f"mapped{': ' + why if why else ''}",
        )

    def mark(self, out: dict[str, Any], line: int) -> dict[str, Any]:
        """Remember the JP1 line a generated mapping comes from (see origin.py)."""
        self.origin[id(out)] = line
        return out

    # -- calendars and schedules -----------------------------------------------------------

    def group_calendar(self, unit: Jp1Unit, path: str, doc: dict[str, Any]) -> None:
        """The job group's calendar: only what the group defines (``op``/``cl`` weekdays
        and dates, ``stt``, ``sdd``, ``md``); the rest is its upper-level group's, as
        in JP1 (docs/schedules.md), so the calendar says nothing of it."""
        cal: dict[str, Any] = {}
        week: dict[int, bool] = {}
        days: dict[str, bool] = {}
        for param in unit.params:
            if param.key in LAYOUT:
                continue
            if param.key in ("op", "cl"):
                value = param.value
                if value in WEEKDAYS:
                    week[WEEKDAYS.index(value)] = param.key == "op"
                    continue
                try:
                    day = values.calendar_date(value)
                except Invalid as exc:
                    self.invalid(unit, param, f"{exc} (or a weekday su, mo, ... sa)")
                    continue
                days[day.isoformat()] = param.key == "op"
            elif param.key == "stt":
                try:
                    cal["base_time"] = values.clock(param.value, 23)
                except Invalid as exc:
                    self.invalid(unit, param, str(exc))
            elif param.key == "sdd":
                self.base_day(unit, param, cal)
            elif param.key == "gty":
                if param.value == "p":
                    self.unmapped(unit, param, "planning groups are not mapped")
                elif param.value != "n":
                    self.invalid(unit, param, "expected gty=n (job group) or gty=p (planning)")
            elif param.key == "md":
                if param.value in catalog.BASE_MONTH_VALUES:
                    cal["base_month"] = "this" if param.value == "th" else "next"
                else:
                    self.invalid(unit, param, "expected md=th (this month) or md=ne (next)")
            else:
                self.unmapped(unit, param)
        self.bases[path] = {k: v for k, v in cal.items() if k in ("base_day", "base_month")}
        if not (week or days or cal):
            return
        name = path.strip("/").replace("/", ".")
        opened = [YAML_WEEKDAYS[d] for d in sorted(week) if week[d]]
        closed = [YAML_WEEKDAYS[d] for d in sorted(week) if not week[d]]
        cal = {
            "name": name,
            # closed_weekdays, even empty, leaves the weekdays not listed undefined
            **({"open_weekdays": opened, "closed_weekdays": closed} if week else {}),
            **({"open_dates": sorted(d for d in days if days[d])} if any(days.values()) else {}),
            **(
                {"closed_dates": sorted(d for d in days if not days[d])}
                if not all(days.values())
                else {}
            ),
            **cal,
        }
        doc["calendars"] = [self.mark(cal, unit.line)]
        doc["calendar"] = name

    def base_day(self, unit: Jp1Unit, param: Param, cal: dict[str, Any]) -> None:
        """``sdd=dd`` (1..31) or ``sdd=su:n`` (n 1..5)."""
        match = catalog.SDD_FORM.fullmatch(param.value)
        if match is None:
            self.invalid(unit, param, "expected sdd=dd (1..31) or sdd=su:n ... sa:n (n 1..5)")
        elif match.group(1) is not None:
            number = self.number(unit, param, 1, 31, match.group(1))
            if number is not None:
                cal["base_day"] = number
        else:
            weekday = YAML_WEEKDAYS[WEEKDAYS.index(match.group(2))]
            cal["base_day"] = {"weekday": weekday, "nth": int(match.group(3))}

    def month_book(self) -> DayBook:
        """Months as the jobnet's groups define them (base day and base month)."""
        found: dict[str, Any] = {}
        group = self.group
        while True:
            for key, value in self.bases.get(group, {}).items():
                found.setdefault(key, value)
            if group == "/":
                break
            group = group.rsplit("/", 1)[0] or "/"
        day = found.get("base_day")
        return DayBook(
            Calendar(
                name="",
                base_day=day if isinstance(day, int) else None,
                base_weekday=(
                    (YAML_WEEKDAYS.index(day["weekday"]), day["nth"])
                    if isinstance(day, dict)
                    else None
                ),
                base_month=BaseMonth(found.get("base_month", "this")),
            )
        )

    def schedule(self, unit: Jp1Unit, used: set[str]) -> dict[str, Any] | None:
        keys = ("sd", "st", "cy", "sh", "shd", "cftd", "ln", "mp")
        used.update(keys)
        by_rule: dict[int, dict[str, Param]] = {}
        for key in ("sd", "st", "cy", "sh", "shd", "cftd"):
            for param in unit.get(key):
                number_text, value = values.rule_number(param.value)
                number = (
                    1
                    if number_text is None
                    else self.number(unit, param, 1, MAX_RULE_NUMBER, number_text)
                )
                if number is None:
                    continue
                by_rule.setdefault(number, {})[key] = Param(key, value, param.line)
        for param in unit.get("ln"):
            self.unmapped(
                unit,
                param,
                "ln links a nested jobnet to a parent rule; only root jobnets have rules in ajs3",
            )
        rules: list[dict[str, Any]] = []
        for number in sorted(by_rule):
            rule = self.rule(unit, by_rule[number])
            if rule is not None:
                rules.append(self.mark(rule, by_rule[number]["sd"].line))
        schedule: dict[str, Any] = {"time_zone": self.tz}
        mp = unit.first("mp")
        if mp == "y":
            schedule["overlap"] = "parallel"
        elif mp == "n":
            schedule["overlap"] = "queue"
        elif mp is not None:
            self.invalid(unit, unit.get("mp")[0], "expected mp=y or mp=n")
        if not rules:
            return None
        schedule["rules"] = rules
        return schedule

    def rule(self, unit: Jp1Unit, params: dict[str, Param]) -> dict[str, Any] | None:
        sd = params.get("sd")
        for key, form, what in (
            ("sd", catalog.SD_FORM, "[[yyyy/]mm/]{dd|+dd|*dd|@dd|b[-dd]|su[:n]}, en or ud"),
            ("st", catalog.ST_FORM, "[+]hh:mm"),
            ("cy", catalog.CY_FORM, "(n,y|m|w|d)"),
        ):
            param = params.get(key)
            if param is not None and form.fullmatch(param.value) is None:
                self.invalid(unit, param, f"expected {key}=[N,]{what}")
                return None
        sh = params.get("sh")
        if sh is not None and sh.value not in catalog.SHIFT_VALUES:
            self.invalid(unit, sh, "expected sh=[N,]be, af, ca or no")
            return None
        if sd is None or sd.value == "ud":
            return None
        out: dict[str, Any] = {}
        st = params.get("st")
        if st is None:
            out["at"] = "00:00"
        elif st.value.startswith("+") and not values.has_foreign_digit(st.value):
            self.unmapped(unit, st, "only absolute start times hh:mm map")
            return None
        else:
            try:
                out["at"] = values.clock(st.value, 47)
            except Invalid as exc:
                self.invalid(unit, st, str(exc))
                return None
        cycle = None
        cy = params.get("cy")
        if cy is not None:
            match = catalog.CY_FORM.fullmatch(cy.value)
            assert match is not None  # checked above
            count = self.number(unit, cy, 1, schema.EVERY_MAX // 12, match.group(1))
            if count is None:
                return None
            per = match.group(2)
            cycle = (count * 12, "m") if per == "y" else (count, per)
        match = re.fullmatch(r"([^/]*)/([^/]*)/(.+)", sd.value)
        if match is None:
            self.unmapped(unit, sd, "only sd=yyyy/mm/... dates map (not en, mm/dd, +dd)")
            return None
        try:
            year, month = values.year_month(match.group(1), match.group(2))
            if values.has_foreign_digit(match.group(3)):
                raise Invalid(f"{match.group(3)!r} holds a digit other than 0-9")
        except Invalid as exc:
            self.invalid(unit, sd, str(exc))
            return None
        day_part = match.group(3)
        first_of_month, last_of_month = self.month_book().period((year, month))
        period = {"d": "days", "w": "weeks", "m": "months"}
        if day_part.isdigit():
            try:
                start = values.day_of(year, month, day_part)
            except Invalid as exc:
                self.invalid(unit, sd, str(exc))
                return None
            out["start"] = start.isoformat()
            if cycle is None:
                out["end"] = start.isoformat()
            elif cycle[1] == "w":
                out["every"] = f"{cycle[0]} weeks"
                out["weekdays"] = [YAML_WEEKDAYS[start.weekday()]]
            else:
                out["every"] = f"{cycle[0]} {period[cycle[1]]}"
        else:
            monthly = values.monthly(day_part)
            number = re.fullmatch(r"[*+]?(?:b-)?([0-9]+)", day_part)
            if number is not None and monthly is None:
                self.invalid(unit, sd, f"day {day_part!r}: expected *1..*31 or b-1..b-30")
                return None
            if monthly is None:
                self.unmapped(unit, sd, "this form of day is not mapped")
                return None
            if cycle is not None and cycle[1] != "m":
                self.unmapped(unit, params["cy"], "days of the month need a cycle in months")
                return None
            out.update(monthly)
            out["start"] = first_of_month.isoformat()
            if cycle is None:
                out["end"] = last_of_month.isoformat()
            elif cycle[0] != 1:
                out["every"] = f"{cycle[0]} months"
        sh = params.get("sh")
        if sh is not None:
            out["closed_days"] = CLOSED[sh.value]
        shd = params.get("shd")
        if shd is not None:
            limit = self.number(unit, shd, 1, schema.SHIFT_LIMIT_MAX)
            if limit is None:
                return None
            out["shift_limit"] = limit
        cftd = params.get("cftd")
        if cftd is not None and cftd.value != "no":
            self.unmapped(unit, cftd, "schedules by days from the start are not mapped")
        return out
