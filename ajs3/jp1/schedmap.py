"""The part of the JP1 import that reports what it finds (invalid values, parameters
not mapped, the JP1 line each generated mapping comes from) and maps calendars and
schedules; ajs3/jp1/importer.py builds on it for units, jobs and relations."""

from __future__ import annotations

import calendar as _stdcal
import re
from datetime import date
from typing import Any

from ajs3.definitions import schema
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
        cal: dict[str, Any] = {}
        open_w, closed_w = set(range(7)), set[int]()
        open_d: list[str] = []
        closed_d: list[str] = []
        for param in unit.params:
            if param.key in LAYOUT:
                continue
            if param.key in ("op", "cl"):
                value = param.value
                if value in WEEKDAYS:
                    (closed_w.add if param.key == "cl" else open_w.add)(WEEKDAYS.index(value))
                    if param.key == "cl":
                        open_w.discard(WEEKDAYS.index(value))
                    continue
                try:
                    day = values.calendar_date(value)
                except Invalid as exc:
                    self.invalid(unit, param, f"{exc} (or a weekday su, mo, ... sa)")
                    continue
                (closed_d if param.key == "cl" else open_d).append(day.isoformat())
                continue
            if param.key == "stt":
                try:
                    cal["base_time"] = values.clock(param.value, 23)
                except Invalid as exc:
                    self.invalid(unit, param, str(exc))
                continue
            self.unmapped(unit, param)
        if not (open_d or closed_d or closed_w or "base_time" in cal):
            return
        name = path.strip("/").replace("/", ".")
        cal = {
            "name": name,
            "open_weekdays": [YAML_WEEKDAYS[d] for d in sorted(open_w)],
            **({"open_dates": sorted(open_d)} if open_d else {}),
            **({"closed_dates": sorted(closed_d)} if closed_d else {}),
            **cal,
        }
        doc["calendars"] = [self.mark(cal, unit.line)]
        doc["calendar"] = name

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
        last = _stdcal.monthrange(year, month)[1]
        first_of_month = date(year, month, 1)
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
            number = re.fullmatch(r"\*?(?:b-)?([0-9]+)", day_part)
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
                out["end"] = date(year, month, last).isoformat()
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
