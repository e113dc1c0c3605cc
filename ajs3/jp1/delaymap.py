"""JP1's delay monitoring and macro variables, both ways.

Delay monitoring (docs/jp1-mapping.md): ``sy`` (start delay) and ``ey`` (end delay) of a
jobnet, ``fd`` (time required for execution) of a jobnet or job, to and from ajs3's
``delay: {start_by, longest}``:

- ``sy=[N,]hh:mm`` -> ``start_by: "hh:mm"`` (a clock time on the scheduling day, up to
  47:59); ``sy=[N,]{M|U|C}mmmm`` -> ``start_by: "+mmmmm"`` (minutes after the scheduled
  start) on a root jobnet, and ``M`` (from the root jobnet's start) on a nested one;
- ``ey=[N,]{C|M|U}mmmm`` -> ``longest`` (minutes after the jobnet's own start; ``M`` and
  ``U`` are that on a root jobnet); ``ey=hh:mm`` has no counterpart (ajs3 has no latest
  end clock) and is reported;
- ``fd=n`` -> ``longest: n`` minutes.

ajs3 keeps one delay per unit, not one per schedule rule: rules that set different
values are reported, not mapped.

Macro variables: ``?AJS2NAME?`` in a job's ``te``, ``sc`` or ``prm`` -> ``${AJS2NAME}``,
which ajs3 replaces from the run's values (``ajs3 entry --var``, AJS3_VARS_OUT); a name
with a period has no ajs3 spelling and is reported.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ajs3.definitions.units import Delay
from ajs3.jp1 import values
from ajs3.jp1.parser import Jp1Unit, Param
from ajs3.jp1.schedmap import Mapper
from ajs3.jp1.values import Invalid

#: ``hh:mm`` or ``{M|U|C}mmmm``, after the rule number.
_DELAY_FORM = re.compile(r"(?:([0-9]{1,2}:[0-9]{2})|([MUC])([0-9]{1,4}))")
#: JP1: relative delays 0..2,879 minutes; time required for execution 1..2,879 for a
#: jobnet, 1..1,440 for a job.
RELATIVE_MAX = 2879
FD_MAX = {True: 2879, False: 1440}
#: A JP1 macro variable as written in a command: ?AJS2 then upper-case letters, digits
#: and periods.
JP1_MACRO = re.compile(r"\?(AJS2[A-Z0-9.]*)\?")
#: An ajs3 ``${NAME}`` that JP1 can spell back as ``?NAME?``.
AJS3_MACRO = re.compile(r"\$\{(AJS2[A-Z0-9_]*)\}")


def import_delay(
    m: Mapper, unit: Jp1Unit, used: set[str], *, jobnet: bool, root: bool
) -> dict[str, Any] | None:
    """The ``delay:`` of ``unit`` from its ``sy``, ``ey`` and ``fd``; None if none maps."""
    keys = ("sy", "ey", "fd") if jobnet else ("fd",)
    used.update(keys)
    out: dict[str, Any] = {}
    rules = _rules(unit, "sd") if root else set()
    start = _one(m, unit, "sy", rules) if jobnet else None
    if start is not None:
        param, value = start
        clock, kind, minutes = value
        if clock is not None:
            out["start_by"] = clock
        elif minutes == 0:
            m.unmapped(unit, param, "ajs3's relative start_by is at least 1 minute")
        elif root or kind == "M":
            out["start_by"] = f"+{minutes}m"
        else:
            m.unmapped(unit, param, "a nested jobnet's start delay maps only from M (root start)")
    longest: int | None = None
    end = _one(m, unit, "ey", rules) if jobnet else None
    if end is not None:
        param, value = end
        clock, kind, minutes = value
        if clock is not None:
            m.unmapped(unit, param, "ajs3 has no latest end clock; give fd (time required)")
        elif minutes == 0:
            m.unmapped(unit, param, "ajs3's longest is at least 1 minute")
        elif root or kind == "C":
            longest = minutes
        else:
            m.unmapped(unit, param, "a nested jobnet's end delay maps only from C (own start)")
    for param in unit.get("fd"):
        required = m.number(unit, param, 1, FD_MAX[jobnet])
        if required is None:
            continue
        if longest is not None and longest != required:
            m.unmapped(unit, param, f"ey gives {longest} min already; the shorter one is kept")
            required = min(required, longest)
        longest = required
    if longest is not None:
        out["longest"] = f"{longest}m"
    return out or None


def _rules(unit: Jp1Unit, key: str) -> set[str]:
    """The schedule rule numbers ``key`` is given for (as written; none given is number 1)."""
    numbers = {(values.rule_number(p.value)[0] or "1").lstrip("0") for p in unit.get(key)}
    return numbers - {""}  # number 0 (sd=0,ud) undefines the rules: not one of them


def _one(
    m: Mapper, unit: Jp1Unit, key: str, rules: set[str]
) -> tuple[Param, tuple[str | None, str, int]] | None:
    """The one value of ``sy`` or ``ey`` over the schedule rules: (clock, M/U/C, minutes).
    On a root jobnet with schedule ``rules``, each must have the same value."""
    found: dict[tuple[str | None, str, int], Param] = {}
    for param in unit.get(key):
        _, text = values.rule_number(param.value)
        match = _DELAY_FORM.fullmatch(text)
        if match is None:
            m.invalid(unit, param, f"expected {key}=[N,]hh:mm or {key}=[N,]{{M|U|C}}mmmm")
            continue
        try:
            if match.group(1) is not None:
                value: tuple[str | None, str, int] = (values.clock(match.group(1), 47), "", 0)
            else:
                minutes = values.integer(match.group(3), 0, RELATIVE_MAX)
                value = (None, match.group(2), minutes)
        except Invalid as exc:
            m.invalid(unit, param, str(exc))
            continue
        found.setdefault(value, param)
    if not found:
        return None
    if len(found) > 1:
        for param in found.values():
            m.unmapped(unit, param, "its schedule rules set different values; ajs3 has one")
        return None
    value, param = next(iter(found.items()))
    missing = sorted(rules - _rules(unit, key), key=lambda n: (len(n), n))
    if missing:
        m.unmapped(
            unit,
            param,
            f"not given for schedule rule {', '.join(missing)}; ajs3 monitors every run "
            "of a jobnet alike",
        )
        return None
    return param, value


def import_macros(m: Mapper, unit: Jp1Unit, key: str, text: str) -> str:
    """``?AJS2NAME?`` in ``text`` (the value of ``key``) as ``${AJS2NAME}``."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if "." in name:
            param = unit.param(key)
            m.note(
                unit.line if param is None else param.line,
                f"macro variable ?{name}? in {key} of {unit.name!r} has a period, which an "
                "ajs3 value name cannot have; left as it is",
            )
            return match.group(0)
        return "${" + name + "}"

    return JP1_MACRO.sub(one, text) if "?AJS2" in text else text


def export_macros(text: str) -> str:
    """``${AJS2NAME}`` as JP1's ``?AJS2NAME?`` (other ``${...}`` are left as they are)."""
    return AJS3_MACRO.sub(lambda match: f"?{match.group(1)}?", text)


def export_delay(
    delay: Delay | None, *, jobnet: bool, rules: int, path: str, notes: list[str]
) -> list[str]:
    """``sy``/``fd`` statements for ``delay``; ``rules`` is the number of schedule rules
    written for a root jobnet (each gets the start delay), 0 for any other unit."""
    if delay is None:
        return []
    lines: list[str] = []
    start: str | None = None
    if delay.start_by_clock is not None:
        start = f"{delay.start_by_clock // 60:02d}:{delay.start_by_clock % 60:02d}"
    elif delay.start_by_after is not None:
        minutes = math.ceil(delay.start_by_after / 60)
        if minutes * 60 != delay.start_by_after:
            notes.append(f"{path}: delay.start_by rounded up to {minutes} min")
        start = f"M{min(minutes, RELATIVE_MAX)}"
    if start is not None and jobnet:
        lines += [f"sy={n},{start};" for n in range(1, rules + 1)] if rules else [f"sy={start};"]
    elif start is not None:
        notes.append(f"{path}: delay.start_by of a job has no JP1 parameter")
    if delay.longest is not None:
        minutes = max(1, math.ceil(delay.longest / 60))
        if minutes * 60 != delay.longest:
            notes.append(f"{path}: delay.longest rounded up to {minutes} min")
        lines.append(f"fd={min(minutes, FD_MAX[jobnet])};")
    return lines
