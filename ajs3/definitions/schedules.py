"""A root jobnet's schedule and its rules (calendars: :mod:`ajs3.definitions.calendars`).

Times, dates, durations and weekday lists are read from their text, since YAML 1.1
would turn an unquoted ``12:30`` into a sexagesimal integer and ``2027-01-04`` into a
date (see docs/schedules.md).
"""

from __future__ import annotations

import math
import re
from datetime import date

from yaml.nodes import Node, ScalarNode

from ajs3.definitions import schema
from ajs3.definitions.nodes import INT, STR, TIMESTAMP, Ctx, describe, line_of, short, suggest
from ajs3.definitions.units import CatchUp, ClosedDay, Overlap, Period, Rule, Schedule
from ajs3.errors import AjsError, Code
from ajs3.tz import known_zones, local_zone_name, zone


def read_time(ctx: Ctx, node: Node, what: str, high: int) -> int | None:
    """'HH:MM' as minutes. Unquoted 12:30 is a YAML 1.1 sexagesimal int: read its text."""
    if not isinstance(node, ScalarNode) or node.tag not in (STR, INT):
        ctx.report(Code.WRONG_TYPE, node, f"{what} must be a time 'HH:MM', not {describe(node)}")
        return None
    match = schema.TIME_RE.match(str(node.value).strip())
    if match is None:
        ctx.report(Code.BAD_VALUE, node, f"{what} is {short(node)}; write a time as 'HH:MM'")
        return None
    minutes = int(match.group(1)) * 60 + int(match.group(2))
    if minutes > high:
        ctx.report(
            Code.BAD_VALUE,
            node,
            f"{what} is {short(node)}; it must be at most {high // 60:02d}:{high % 60:02d}",
        )
        return None
    return minutes


def read_date(ctx: Ctx, node: Node, what: str) -> str | None:
    """A date as ISO text. Unquoted 2027-01-04 is a YAML timestamp: read its text."""
    if not isinstance(node, ScalarNode) or node.tag not in (STR, TIMESTAMP):
        ctx.report(Code.WRONG_TYPE, node, f"{what} must be a date YYYY-MM-DD, not {describe(node)}")
        return None
    text = str(node.value).strip()
    if not schema.DATE_RE.match(text):
        ctx.report(Code.BAD_VALUE, node, f"{what} is {short(node)}; write a date as YYYY-MM-DD")
        return None
    try:
        date.fromisoformat(text)
    except ValueError:
        ctx.report(Code.BAD_VALUE, node, f"{what}: {text} is not a date of the calendar")
        return None
    return text


_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "min": 60, "s": 1}


def _duration(ctx: Ctx, node: Node, what: str, low: float = 0.0) -> float | None:
    """Seconds (a number) or text such as '90s', '30m', '1h30m', '2d'."""
    if isinstance(node, ScalarNode) and node.tag == STR:
        text = str(node.value).replace(" ", "")
        if not schema.DURATION_RE.match(text):
            ctx.report(
                Code.BAD_VALUE,
                node,
                f"{what} is {short(node)}; write seconds or a duration like 30m, 1h, 2d",
            )
            return None
        parts = re.findall(r"([0-9]+)(min|d|h|m|s)", text)
        # A number of more digits than SECONDS_MAX is out of range whatever its unit,
        # and int() of thousands of digits is slow (and refused past 4300).
        digits = len(str(schema.SECONDS_MAX))
        seconds = float(
            sum(
                int(n) * _UNIT_SECONDS[u] if len(n.lstrip("0")) <= digits else math.inf
                for n, u in parts
            )
        )
        if not low < seconds <= schema.SECONDS_MAX:
            ctx.report(
                Code.BAD_VALUE,
                node,
                f"{what} is {short(node)}; it must be above 0 and at most "
                f"{schema.SECONDS_MAX} seconds",
            )
            return None
        return seconds
    return ctx.number(node, what, low, schema.SECONDS_MAX, low_open=True)


def read_weekdays(ctx: Ctx, node: Node, what: str) -> tuple[int, ...] | None:
    items = ctx.sequence(node, what)
    if items is None:
        return None
    found: list[int] = []
    for item in items:
        text = ctx.text(item, f"an entry of {what}")
        if text is None:
            return None
        key = text.lower()[:3]
        if text.lower() not in schema.WEEKDAY_NAMES and not _long_weekday(text):
            ctx.report(
                Code.BAD_VALUE,
                item,
                f"{text!r} in {what} is not a weekday{suggest(text, schema.WEEKDAY_NAMES)}",
            )
            return None
        day = schema.WEEKDAY_NAMES.index(key)
        if day not in found:
            found.append(day)
    return tuple(sorted(found))


def _long_weekday(text: str) -> bool:
    full = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    return text.lower() in full


def _int_list(
    ctx: Ctx, node: Node, what: str, low: int, high: int, hint: str
) -> tuple[int, ...] | None:
    items = ctx.sequence(node, what)
    if items is None:
        return None
    if not items:
        ctx.report(Code.BAD_VALUE, node, f"{what} is empty; {hint}")
        return None
    found: list[int] = []
    for item in items:
        value = ctx.integer(item, f"an entry of {what}", low, high)
        if value is None:
            return None
        if value == 0:
            ctx.report(Code.BAD_VALUE, item, f"0 in {what} means nothing; {hint}")
            return None
        if value not in found:
            found.append(value)
    return tuple(found)


def read_schedule(
    ctx: Ctx, node: Node, label: str
) -> tuple[Schedule, tuple[str, int] | None] | None:
    """The schedule of a root jobnet, and the calendar it names (name, line), if any."""
    what = f"'schedule' of {label}"
    fields = ctx.mapping(node, what)
    if fields is None:
        return None
    ctx.check_keys(fields, schema.SCHEDULE_KEYS, what)
    ok = True
    tz_name = ""
    if "time_zone" in fields:
        tz_node = fields["time_zone"][1]
        text = ctx.text(tz_node, f"'time_zone' of {label}")
        if text is None:
            ok = False
        else:
            try:
                zone(text)
                tz_name = text
            except AjsError:
                ctx.report(
                    Code.BAD_VALUE,
                    tz_node,
                    f"unknown time zone {text!r} in {what}"
                    f"{suggest(text, sorted(known_zones()), 'for example')[:200]}; "
                    "use an IANA name such as Europe/Berlin",
                )
                ok = False
    calendar_ref: tuple[str, int] | None = None
    if "calendar" in fields:
        text = ctx.text(fields["calendar"][1], f"'calendar' of {label}")
        if text is None:
            ok = False
        else:
            calendar_ref = (text, line_of(fields["calendar"][1]))
    extra: dict[str, object] = {}
    if "overlap" in fields:
        text = ctx.choice(fields["overlap"][1], f"'overlap' of {label}", [o.value for o in Overlap])
        ok = ok and text is not None
        if text is not None:
            extra["overlap"] = Overlap(text)
    if "max_parallel" in fields:
        value = ctx.integer(
            fields["max_parallel"][1], f"'max_parallel' of {label}", 1, schema.MAX_PARALLEL
        )
        ok = ok and value is not None
        extra["max_parallel"] = value
        if "overlap" not in fields or extra.get("overlap") not in (None, Overlap.PARALLEL):
            ctx.report(
                Code.BAD_VALUE,
                fields["max_parallel"][0],
                f"'max_parallel' of {label} is only used with 'overlap: parallel'",
            )
            ok = False
    elif extra.get("overlap") is Overlap.PARALLEL:
        extra["max_parallel"] = 2
    if "catch_up" in fields:
        text = ctx.choice(
            fields["catch_up"][1], f"'catch_up' of {label}", [c.value for c in CatchUp]
        )
        ok = ok and text is not None
        if text is not None:
            extra["catch_up"] = CatchUp(text)
    if "catch_up_window" in fields:
        value_f = _duration(ctx, fields["catch_up_window"][1], f"'catch_up_window' of {label}")
        ok = ok and value_f is not None
        extra["catch_up_window"] = value_f
    rules: list[Rule] = []
    if "rules" not in fields:
        ctx.report(Code.MISSING_KEY, node, f"{what} has no 'rules'; give at least one rule")
        ok = False
    else:
        items = ctx.sequence(fields["rules"][1], f"'rules' of {label}")
        if items is None:
            ok = False
        elif not items:
            ctx.report(Code.MISSING_KEY, fields["rules"][1], f"'rules' of {label} is empty")
            ok = False
        elif len(items) > schema.MAX_RULES:
            ctx.report(
                Code.INPUT_LIMIT,
                fields["rules"][1],
                f"{label} has {len(items)} schedule rules; at most {schema.MAX_RULES} are allowed",
            )
            ok = False
        else:
            for i, item in enumerate(items):
                rule = _rule(ctx, item, f"rule {i + 1} of {label}")
                if rule is None:
                    ok = False
                else:
                    rules.append(rule)
    if not ok:
        return None
    tz_name = tz_name or local_zone_name()
    values = {k: v for k, v in extra.items() if v is not None}
    schedule = Schedule(time_zone=tz_name, rules=tuple(rules), **values)  # type: ignore[arg-type]
    return schedule, calendar_ref


def _rule(ctx: Ctx, node: Node, what: str) -> Rule | None:
    fields = ctx.mapping(node, what)
    if fields is None:
        return None
    ctx.check_keys(fields, schema.RULE_KEYS, what)
    problems = ctx.reported
    out: dict[str, object] = {"source": f"{ctx.file}:{line_of(node)}"}

    def get(key: str) -> Node | None:
        pair = fields.get(key)
        return None if pair is None else pair[1]

    at_node = get("at")
    if at_node is None:
        ctx.report(Code.MISSING_KEY, node, f"{what} has no 'at'; give the start time 'HH:MM'")
    else:
        out["at"] = read_time(ctx, at_node, f"'at' of {what}", schema.AT_MAX_MINUTES)
    every_node = get("every")
    period: Period | None = None
    if every_node is not None:
        if isinstance(every_node, ScalarNode) and every_node.tag == INT:
            count = ctx.integer(every_node, f"'every' of {what}", 1, schema.EVERY_MAX)
            period = Period.DAY
        else:
            text = ctx.text(every_node, f"'every' of {what}")
            match = schema.EVERY_RE.match(text.strip().lower()) if text is not None else None
            count = None
            if text is not None and match is None:
                ctx.report(
                    Code.BAD_VALUE,
                    every_node,
                    f"'every' of {what} is {short(every_node)}; write e.g. '2 days', "
                    "'1 week' or '3 months'",
                )
            elif match is not None:
                number = match.group(1) or "1"
                period = Period(match.group(2).rstrip("s"))
                # Compared as text first: int() of thousands of digits is slow or refused.
                count = int(number) if len(number.lstrip("0")) <= 6 else schema.EVERY_MAX + 1
                if not 1 <= count <= schema.EVERY_MAX:
                    ctx.report(
                        Code.BAD_VALUE,
                        every_node,
                        f"'every' of {what} is {short(every_node)}; the cycle must be "
                        f"between 1 and {schema.EVERY_MAX}",
                    )
                    count = None
        if count is not None and period is not None:
            out["every"], out["period"] = count, period
    if get("weekdays") is not None:
        weekdays = read_weekdays(ctx, get("weekdays"), f"'weekdays' of {what}")  # type: ignore[arg-type]
        out["weekdays"] = weekdays
        if weekdays == ():
            ctx.report(Code.BAD_VALUE, get("weekdays"), f"'weekdays' of {what} is empty")  # type: ignore[arg-type]
    lists: dict[str, tuple[int, str]] = {
        "nth": (5, "use 1..5 (first..fifth) or -1 (last)"),
        "days": (31, "use 1..31, or -1 for the last day"),
        "open_days": (31, "use 1..31, or -1 for the last open day"),
    }
    for key, (bound, hint) in lists.items():
        given = get(key)
        if given is not None:
            out[key] = _int_list(ctx, given, f"'{key}' of {what}", -bound, bound, hint)
    selectors = [k for k in ("weekdays", "days", "open_days") if k in fields]
    if len(selectors) > 1:
        ctx.report(
            Code.BAD_VALUE,
            fields[selectors[1]][0],
            f"{what} has both {selectors[0]!r} and {selectors[1]!r}; give one (use two rules)",
        )
    if "nth" in fields and "weekdays" not in fields:
        ctx.report(
            Code.BAD_VALUE,
            fields["nth"][0],
            f"'nth' of {what} needs 'weekdays' (e.g. weekdays: [fri], nth: [-1] is the last "
            "Friday of each month)",
        )
    monthly = bool({"days", "open_days", "nth"} & set(fields))
    if period is not None and monthly and period is not Period.MONTH:
        ctx.report(
            Code.BAD_VALUE,
            every_node,  # type: ignore[arg-type]
            f"'every' of {what} must count months with days of the month; write 'N months'",
        )
    elif period is not None and "weekdays" in fields and not monthly and period is Period.MONTH:
        ctx.report(
            Code.BAD_VALUE,
            every_node,  # type: ignore[arg-type]
            f"'every' of {what} with 'weekdays' counts weeks; write 'N weeks' (or add 'nth')",
        )
    elif period is Period.DAY and "weekdays" in fields and out.get("every", 1) != 1:
        ctx.report(
            Code.BAD_VALUE,
            every_node,  # type: ignore[arg-type]
            f"'every' of {what} with 'weekdays' counts weeks; write 'N weeks'",
        )
    elif period is Period.DAY and "weekdays" in fields:
        out["period"] = Period.WEEK
    start_node, end_node = get("start"), get("end")
    if start_node is not None:
        out["start_date"] = read_date(ctx, start_node, f"'start' of {what}")
    if end_node is not None:
        out["end_date"] = read_date(ctx, end_node, f"'end' of {what}")
    start_s, end_s = out.get("start_date"), out.get("end_date")
    if isinstance(start_s, str) and isinstance(end_s, str) and end_s < start_s:
        ctx.report(Code.BAD_VALUE, end_node, f"'end' of {what} is before its 'start'")  # type: ignore[arg-type]
    needs_anchor = (out.get("every", 1) != 1) or (
        period in (Period.WEEK, Period.MONTH) and not monthly and "weekdays" not in fields
    )
    if needs_anchor and start_node is None and "every" in out:
        ctx.report(
            Code.MISSING_KEY,
            every_node,  # type: ignore[arg-type]
            f"{what} runs every {out['every']} {out['period']}(s) but has no 'start' "
            "to count from; add start: YYYY-MM-DD",
        )
    if get("closed_days") is not None:
        text = ctx.choice(
            get("closed_days"),  # type: ignore[arg-type]
            f"'closed_days' of {what}",
            [c.value for c in ClosedDay],
        )
        if text is not None:
            out["closed_days"] = ClosedDay(text)
    if get("shift_limit") is not None:
        out["shift_limit"] = ctx.integer(
            get("shift_limit"),  # type: ignore[arg-type]
            f"'shift_limit' of {what}",
            1,
            schema.SHIFT_LIMIT_MAX,
        )
    if get("repeat") is not None:
        rep = ctx.mapping(get("repeat"), f"'repeat' of {what}")  # type: ignore[arg-type]
        if rep is not None:
            ctx.check_keys(rep, schema.REPEAT_KEYS, f"'repeat' of {what}")
            for key in schema.REPEAT_KEYS:
                if key not in rep:
                    ctx.report(
                        Code.MISSING_KEY,
                        get("repeat"),  # type: ignore[arg-type]
                        f"'repeat' of {what} needs {key!r}",
                    )
            if "every" in rep:
                seconds = _duration(ctx, rep["every"][1], f"'repeat.every' of {what}")
                if seconds is not None and (seconds % 60 or seconds > 86400):
                    ctx.report(
                        Code.BAD_VALUE,
                        rep["every"][1],
                        f"'repeat.every' of {what} must be whole minutes, at most 1 day",
                    )
                elif seconds is not None:
                    out["repeat_every"] = int(seconds // 60)
            if "until" in rep:
                out["repeat_until"] = read_time(
                    ctx, rep["until"][1], f"'repeat.until' of {what}", schema.AT_MAX_MINUTES
                )
    if get("deadline") is not None:
        out["deadline"] = _duration(ctx, get("deadline"), f"'deadline' of {what}")  # type: ignore[arg-type]
    if ctx.reported != problems or out.get("at") is None:
        return None
    return Rule(**{k: v for k, v in out.items() if v is not None})  # type: ignore[arg-type]
