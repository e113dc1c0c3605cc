"""JP1 event jobs and start conditions, both ways: the file monitoring job (``flwj``,
``rflwj``) as a file-watch job, and a root jobnet's start condition (its ``.CONDITION``
unit, ``ty=rc``, holding event jobs, with the valid range ``wc``/``wt`` of the
jobnet) as ``start_condition``.

Sources: JP1/AJS3 Command Reference, 5.2.4 "Jobnet definition" (``wc``, ``wt``),
5.2.10 "File monitoring job definition" (``flwf``, ``flwc``, ``flwi``, ``flco``,
``jpoif``, ``etm``, ``ets``) and 5.2.28 "Start condition definition" (``cond``,
``mcs``, ``cgs``, ``ab``). What ajs3 can not say is a note (AJS3-E112), what JP1
would refuse an error (AJS3-E111), as everywhere in the importer.
"""

from __future__ import annotations

import re
from typing import Any

from ajs3.definitions.events import StartCondition, Watch, pattern_problem
from ajs3.errors import Code, Problem
from ajs3.jp1.parser import Jp1Unit, Param, quote, unquote
from ajs3.jp1.schedmap import Mapper

#: The file monitoring job types (the ``r`` one a recovery job).
FILEWATCH_TYPES = {"flwj": False, "rflwj": True}
#: The start condition unit's type.
CONDITION_TYPE = "rc"
#: Parameters of a file monitoring job this module reads.
FLWJ_KEYS = frozenset({"flwf", "flwc", "flwi", "flco"})
#: ``flwc`` letters: created, deleted, size changed, time changed.
FLWC = {"c": "created", "d": "deleted", "s": "changed", "m": "changed"}
#: The valid range of a start condition: ``wc=[N,]{no|un|n}``, ``wt=[N,]{no|un|...}``.
RANGE_FORM = re.compile(r"(?:([0-9]+),)?(.+)")
#: JP1's count limit of a start condition (``wc``).
WC_MAX = 999


def filewatch(imp: Mapper, unit: Jp1Unit) -> dict[str, Any] | None:
    """A ``flwj``/``rflwj`` unit as an ajs3 mapping (``type: filewatch``), or None if it
    can not be one (noted)."""
    watch = _watch(imp, unit)
    if watch is None:
        return None
    out: dict[str, Any] = {"name": unit.name, "type": "filewatch", "watch": watch}
    if FILEWATCH_TYPES[unit.ty]:
        out["recovery"] = True
    return out


def _watch(imp: Mapper, unit: Jp1Unit) -> dict[str, Any] | None:
    """The ``watch:`` of a file monitoring job, with the notes of what does not map."""
    flwf = unit.param("flwf")
    if flwf is None:
        imp.note(unit.line, f"file monitoring job {unit.name!r} has no flwf= (file); skipped")
        return None
    path = unquote(flwf.value)
    if "?" in path and re.search(r"\?[A-Z0-9_]+\?", path):
        imp.unmapped(unit, flwf, "a macro variable in the file name has no ajs3 counterpart")
        return None
    why = pattern_problem(path)
    if why is not None:
        imp.unmapped(unit, flwf, f"ajs3 can not watch it: {why}")
        return None
    watch: dict[str, Any] = {"path": path}
    flwc = unit.param("flwc")
    letters = ["c"] if flwc is None else flwc.value.split(":")
    if flwc is not None and (
        any(x not in FLWC for x in letters)
        or len(set(letters)) != len(letters)
        or {"s", "m"} <= set(letters)
    ):
        imp.invalid(unit, flwc, "expected flwc=c[:d[:s|m]] (s and m not together)")
        return None
    events = list(dict.fromkeys(FLWC[x] for x in letters))
    watch["condition"] = events
    if flwc is not None and ({"s", "m"} & set(letters)):
        imp.note(
            flwc.line,
            f"flwc={flwc.value} of {unit.name!r}: ajs3's 'changed' counts a change of size "
            "or of time, not of one alone",
        )
    flwi = unit.param("flwi")
    if flwi is not None:
        imp.number(unit, flwi, 1, 600)  # checked; ajs3 watches with inotify, no interval
    flco = unit.param("flco")
    if flco is not None:
        if flco.value not in ("y", "n"):
            imp.invalid(unit, flco, "expected flco=y or flco=n")
        elif flco.value == "y" and "c" not in letters:
            imp.invalid(unit, flco, "flco=y needs c in flwc")
        elif flco.value == "y":
            watch["existing"] = True
    for param in unit.params:
        if param.key in ("jpoif", "etm", "ets"):
            imp.unmapped(unit, param, _WHY[param.key])
    return watch


_WHY = {
    "jpoif": "the file's path is handed on as AJS3_FILE_PATH (and the event as AJS3_FILE_EVENT)",
    "etm": "a file-watch job has no timeout in ajs3: it watches until its event or a kill",
    "ets": "a file-watch job has no timeout in ajs3",
}


def used_keys() -> set[str]:
    """The parameters :func:`filewatch` reads, for the importer's check of the rest."""
    return set(FLWJ_KEYS | {"jpoif", "etm", "ets", "ty"})


def start_condition(
    imp: Mapper, jobnet: Jp1Unit, conds: list[Jp1Unit], *, root: bool
) -> dict[str, Any] | None:
    """The ``start_condition:`` of a root jobnet from its ``.CONDITION`` unit(s) and its
    ``wc``/``wt``; None when there is none or nothing of it maps (noted)."""
    if not conds:
        for param in jobnet.get("wc") + jobnet.get("wt"):
            _valid_range(imp, jobnet, param)  # checked; no start condition to limit
        return None
    cond = conds[0]
    if not root:
        imp.problems.append(
            _problem(imp, cond.line, f"{cond.name!r}: only a root jobnet has a start condition")
        )
        return None
    for extra in conds[1:]:
        imp.problems.append(
            _problem(imp, extra.line, f"jobnet {jobnet.name!r} has a second start condition")
        )
    watches: list[dict[str, Any]] = []
    for child in cond.children:
        if child.ty not in FILEWATCH_TYPES:
            imp.note(
                child.line,
                f"event job {child.name!r} of type {child.ty or '?'!r} in the start condition "
                "has no ajs3 counterpart (file monitoring jobs map); left out",
            )
            continue
        watch = _watch(imp, child)
        if watch is not None:
            watches.append(watch)
        for param in child.params:
            if param.key not in used_keys() and param.key not in ("el", "sz"):
                imp.unmapped(child, param, "in a start condition only the file watch maps")
    for param in cond.params:
        if param.key == "cond":
            if param.value not in ("and", "or"):
                imp.invalid(cond, param, "expected cond=and or cond=or")
            elif param.value == "and" and len(cond.children) > 1:
                imp.unmapped(cond, param, "ajs3 starts a run when any one of its watches fires")
        elif param.key in ("mcs", "cgs", "ab"):
            imp.unmapped(cond, param, "ajs3 monitors for as long as the definitions have it")
        elif param.key not in ("ty", "el", "sz"):
            imp.unmapped(cond, param)
    if "cond" not in {p.key for p in cond.params} and len(cond.children) > 1:
        imp.note(
            cond.line,
            f"start condition of {jobnet.name!r} ANDs its event jobs (cond=and, the default); "
            "ajs3 starts a run when any one of its watches fires",
        )
    out: dict[str, Any] = {}
    for param in jobnet.get("wc") + jobnet.get("wt"):
        got = _valid_range(imp, jobnet, param)
        if isinstance(got, int):
            if "limit" in out and out["limit"] != got:
                imp.unmapped(jobnet, param, "ajs3 has one count limit, not one per rule")
            out["limit"] = got
    if not watches:
        imp.note(cond.line, f"start condition of {jobnet.name!r}: no watch could be imported")
        return None
    return {"watches": watches, **out}


def _valid_range(imp: Mapper, unit: Jp1Unit, param: Param) -> int | None:
    """``wc``: a count (1..999), ``un`` (unlimited) or ``no``; ``wt``: ``un``/``no``
    map, a time does not (ajs3's from/until are dates and times, not JP1's)."""
    match = RANGE_FORM.fullmatch(param.value)
    value = match.group(2) if match else ""
    if value in ("un", "no"):
        return None
    if param.key == "wc":
        if not value.isdigit():
            imp.invalid(unit, param, "expected wc=[N,]{no|un|1..999}")
            return None
        return imp.number(unit, param, 1, WC_MAX, value)
    if re.fullmatch(r"an|[0-9]{1,2}:[0-9]{2}|[0-9]+", value):
        imp.unmapped(unit, param, "a valid time of a start condition is written as from/until")
    else:
        imp.invalid(unit, param, "expected wt=[N,]{no|un|an|hh:mm|n}")
    return None


def _problem(imp: Mapper, line: int, why: str) -> Problem:
    return Problem(Code.JP1_SYNTAX, imp.file, line, why)


# -- export -----------------------------------------------------------------------


def watch_lines(watch: Watch) -> list[str]:
    """The parameters of a file monitoring job for ``watch``."""
    letters = {"created": "c", "deleted": "d", "changed": "m"}
    flwc = ":".join(sorted((letters[e.value] for e in watch.events), key="cdm".index))
    lines = [f"flwf={quote(watch.path)};", f"flwc={flwc};"]
    if watch.existing:
        lines.append("flco=y;")
    return lines


def condition_lines(cond: StartCondition) -> tuple[list[str], list[list[str]], list[str]]:
    """The jobnet's parameters (``wc``), the start condition's event jobs (the lines of
    each), and notes of what JP1 can not say."""
    params = [f"wc={cond.limit};"] if cond.limit is not None else []
    notes = []
    if cond.valid_from is not None or cond.valid_until is not None:
        notes.append("start_condition from/until have no JP1 parameter")
    if any(w.stable_for for w in cond.watches):
        notes.append("stable_for of a watch has no JP1 parameter")
    return params, [watch_lines(w) for w in cond.watches], notes
