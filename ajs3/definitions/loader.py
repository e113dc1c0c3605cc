"""Load YAML definition files into the typed unit tree, validating the whole set.

Every problem in every file is collected and raised together as one
:class:`~ajs3.errors.DefinitionError`; nothing partial is ever returned. The YAML
is only *composed* (safe loader, no objects built from tags), so that each problem
can carry the line of the key or value it is about. The format is described in
``docs/definitions.md``; the key tables live in :mod:`ajs3.definitions.schema`.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ajs3.definitions import schema
from ajs3.definitions.units import (
    Calendar,
    CatchUp,
    ClosedDay,
    Condition,
    DefinitionSet,
    Overlap,
    Period,
    Retry,
    Rule,
    Schedule,
    Unit,
)
from ajs3.errors import AjsError, Code, DefinitionError, Problem
from ajs3.model import Compare, RecoveryPolicy, UnitKind
from ajs3.schedule.calendar import DayBook
from ajs3.schedule.tz import known_zones, local_zone_name, zone

__all__ = ["load_dir", "load_files", "load_text", "load_texts"]

_TAG = "tag:yaml.org,2002:"
_STR = _TAG + "str"
_INT = _TAG + "int"
_FLOAT = _TAG + "float"
_BOOL = _TAG + "bool"
_NULL = _TAG + "null"
_MERGE = _TAG + "merge"

#: ``value(key)`` in :func:`_unit`: the value node of a key allowed for the unit's type.
_Getter = Callable[[str], Node | None]
#: What :func:`_construct` returns for a scalar it can not build.
_BAD = object()


def load_text(text: str, filename: str) -> DefinitionSet:
    """Load one definition file given as text; ``filename`` is used in messages."""
    return _finish([_parse_file(text, filename)])


def load_files(paths: Sequence[Path]) -> DefinitionSet:
    """Load and validate several files as one set (root jobnet paths must be unique)."""
    return _finish([_read_and_parse(Path(p)) for p in paths])


def load_texts(files: Sequence[tuple[str, str]]) -> DefinitionSet:
    """Load several files given as (name, text) as one set, as :func:`load_files` does
    (the daemon's `define`: the files travel over the control socket)."""
    return _finish([_parse_file(text, name) for name, text in files])


def load_dir(directory: Path) -> DefinitionSet:
    """Load every ``*.yaml`` / ``*.yml`` file directly in ``directory``, sorted by name.

    Hidden files (editor leftovers such as ``.x.yaml.swp``) are skipped. A directory
    that does not exist holds no definitions and gives an empty set.
    """
    directory = Path(directory)
    if not directory.exists():
        return DefinitionSet(jobnets={}, groups=())
    try:
        names = sorted(
            p
            for p in directory.iterdir()
            if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file()
        )
    except OSError as exc:
        problem = Problem(
            Code.DEFINITION_FILE,
            str(directory),
            1,
            f"cannot list the definitions directory: {exc.strerror or exc}; "
            "check that it is a readable directory",
        )
        raise DefinitionError([problem]) from None
    return load_files(names)


# --------------------------------------------------------------------------- files


@dataclass
class _Root:
    """A root jobnet found in a file, before the set-wide checks."""

    unit: Unit
    file: str
    line: int
    #: The calendar named in the jobnet's schedule, and the line it is named at.
    calendar_ref: tuple[str, int] | None = None


@dataclass
class _FileResult:
    file: str
    problems: list[Problem] = field(default_factory=list)
    roots: list[_Root] = field(default_factory=list)
    group: str = "/"
    group_line: int = 1
    calendars: list[tuple[Calendar, int]] = field(default_factory=list)
    #: The calendar this file assigns to its group: (name, line).
    group_calendar: tuple[str, int] | None = None


def _read_and_parse(path: Path) -> _FileResult:
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _file_problem(name, 1, f"cannot read the file: {exc.strerror or exc}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return _file_problem(
            name, line, f"the file is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        )
    return _parse_file(text, name)


def _file_problem(name: str, line: int, message: str) -> _FileResult:
    return _FileResult(name, [Problem(Code.DEFINITION_FILE, name, line, message)])


def _finish(results: list[_FileResult]) -> DefinitionSet:
    problems = [p for r in results for p in r.problems]
    jobnets: dict[str, _Root] = {}
    groups: dict[str, tuple[str, int]] = {}
    for result in results:
        if result.problems:
            continue
        path = result.group
        while path != "/":
            groups.setdefault(path, (result.file, result.group_line))
            path = path.rsplit("/", 1)[0] or "/"
        for root in result.roots:
            first = jobnets.get(root.unit.path)
            if first is not None:
                problems.append(
                    Problem(
                        Code.DUPLICATE_NAME,
                        root.file,
                        root.line,
                        f"jobnet {root.unit.path} is already defined at {first.file}:{first.line}; "
                        "rename one of them or put them in different groups",
                    )
                )
                continue
            jobnets[root.unit.path] = root
    for path, root in jobnets.items():
        if path in groups:
            gfile, gline = groups[path]
            problems.append(
                Problem(
                    Code.DUPLICATE_NAME,
                    root.file,
                    root.line,
                    f"jobnet {path} has the same path as the job group declared at "
                    f"{gfile}:{gline}; rename the jobnet or the group",
                )
            )
    calendars, group_calendars = _resolve_calendars(results, jobnets, problems)
    if problems:
        raise DefinitionError(problems)
    return DefinitionSet(
        jobnets={path: root.unit for path, root in sorted(jobnets.items())},
        groups=tuple(sorted(groups)),
        calendars=dict(sorted(calendars.items())),
        group_calendars=dict(sorted(group_calendars.items())),
    )


def _resolve_calendars(
    results: list[_FileResult], jobnets: dict[str, _Root], problems: list[Problem]
) -> tuple[dict[str, Calendar], dict[str, str]]:
    """Check calendar names set-wide and give each scheduled jobnet its calendar.

    A jobnet uses the calendar named in its schedule, else the one assigned to its job
    group or the nearest group above it.
    """
    calendars: dict[str, tuple[Calendar, str, int]] = {}
    assigned: dict[str, tuple[str, str, int]] = {}
    for result in results:
        if result.problems:
            continue
        for cal, line in result.calendars:
            first = calendars.get(cal.name)
            if first is not None:
                problems.append(Problem(
                    Code.DUPLICATE_NAME, result.file, line,
                    f"calendar {cal.name!r} is already defined at {first[1]}:{first[2]}; "
                    "rename one of them",
                ))
                continue
            calendars[cal.name] = (cal, result.file, line)
        if result.group_calendar is not None:
            name, line = result.group_calendar
            other = assigned.get(result.group)
            if other is not None and other[0] != name:
                problems.append(Problem(
                    Code.DUPLICATE_NAME, result.file, line,
                    f"job group {result.group} is given calendar {name!r} here and "
                    f"{other[0]!r} at {other[1]}:{other[2]}; give a group one calendar",
                ))
                continue
            assigned.setdefault(result.group, (name, result.file, line))
    names = sorted(calendars)
    for group, (name, file, line) in sorted(assigned.items()):
        if name not in calendars:
            problems.append(Problem(
                Code.UNKNOWN_NAME, file, line,
                f"job group {group} uses calendar {name!r}, but no calendar of that name is "
                f"defined{_suggest(name, names, 'calendars')}; define it under 'calendars:'",
            ))
    for path, root in jobnets.items():
        schedule = root.unit.schedule
        if schedule is None:
            continue
        if root.calendar_ref is not None:
            name, line = root.calendar_ref
            if name not in calendars:
                problems.append(Problem(
                    Code.UNKNOWN_NAME, root.file, line,
                    f"jobnet {path} uses calendar {name!r}, but no calendar of that name is "
                    f"defined{_suggest(name, names, 'calendars')}",
                ))
                continue
        else:
            name = ""
            group = path.rsplit("/", 1)[0] or "/"
            while True:
                if group in assigned:
                    name = assigned[group][0]
                    break
                if group == "/":
                    break
                group = group.rsplit("/", 1)[0] or "/"
            if not name or name not in calendars:
                continue
        root.unit = replace(root.unit, schedule=replace(schedule, calendar=calendars[name][0]))
    return (
        {name: cal for name, (cal, _, _) in calendars.items()},
        {group: name for group, (name, _, _) in assigned.items()},
    )


class _TooLarge(Exception):
    """The document expands (through aliases) beyond :data:`schema.MAX_NODES`."""


def _parse_file(text: str, filename: str) -> _FileResult:
    result = _FileResult(filename)
    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        # At the end of the stream the mark is past the last line; point at that line.
        line = max(1, min(line, len(text.splitlines())))
        what = " ".join(str(s) for s in (exc.context, exc.problem) if s)
        result.problems.append(
            Problem(Code.YAML_SYNTAX, filename, line, f"YAML syntax error: {what}; fix the YAML")
        )
        return result
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        result.problems.append(
            Problem(
                Code.YAML_SYNTAX,
                filename,
                line,
                f"the file holds a character YAML does not allow ({exc.reason}, "
                f"#x{exc.character if isinstance(exc.character, int) else 0:04x}); "
                "is it a text file?",
            )
        )
        return result
    except yaml.YAMLError as exc:
        result.problems.append(
            Problem(Code.YAML_SYNTAX, filename, 1, f"YAML error: {exc}; fix the YAML")
        )
        return result
    except RecursionError:
        result.problems.append(
            Problem(
                Code.YAML_SYNTAX,
                filename,
                1,
                "the YAML is nested too deeply to read; flatten it",
            )
        )
        return result
    ctx = _Ctx(filename)
    try:
        _parse_document(ctx, document, result)
    except _TooLarge:
        # What was found so far is mostly the same problems again through aliases.
        ctx.problems = []
        ctx.problems.append(
            Problem(
                Code.BAD_VALUE,
                filename,
                1,
                f"the file expands to more than {schema.MAX_NODES} YAML nodes "
                "(aliases count each time they are used); split it into several files",
            )
        )
    except RecursionError:
        ctx.problems.append(
            Problem(Code.BAD_VALUE, filename, 1, "the definitions nest too deeply; flatten them")
        )
    result.problems.extend(ctx.problems)
    return result


# --------------------------------------------------------------------------- node reading


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return {
        _STR: "text",
        _INT: "an integer",
        _FLOAT: "a decimal number",
        _BOOL: "true/false",
        _NULL: "empty (null)",
        _TAG + "timestamp": "a date",
    }.get(str(node.tag), f"a value tagged {str(node.tag).replace(_TAG, '!!')}")


def _suggest(word: str, choices: Sequence[str], listing: str = "allowed") -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" ({listing}: {', '.join(choices)})" if choices else ""


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


#: How a unit of each kind is called in messages.
_KIND_LABEL = {
    UnitKind.JOB: "job",
    UnitKind.JUDGE: "judge",
    UnitKind.OR: "OR job",
    UnitKind.JOBNET: "jobnet",
    UnitKind.GROUP: "group",
}


def _construct(node: ScalarNode) -> object:
    # Explicit tags can pair a type with any text ("!!bool maybe", "!!int x"); the
    # safe constructor then raises all sorts of exceptions, none of which may escape.
    try:
        return SafeConstructor().construct_object(node, deep=True)
    except Exception:
        return _BAD


class _Ctx:
    """Problems of one file and the work budget of its walk."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self._seen: set[Problem] = set()
        self.budget = schema.MAX_NODES

    def report(self, code: Code, at: Node | int, message: str) -> None:
        line = at if isinstance(at, int) else _line(at)
        problem = Problem(code, self.file, line, message)
        # A node shared through an alias would report the same problem at each use.
        if problem not in self._seen:
            self._seen.add(problem)
            self.problems.append(problem)

    def spend(self, count: int) -> None:
        self.budget -= count
        if self.budget < 0:
            raise _TooLarge

    # Each reader returns None after reporting when the value can not be used.

    def mapping(self, node: Node, what: str) -> dict[str, tuple[Node, Node]] | None:
        if not isinstance(node, MappingNode):
            self.report(Code.WRONG_TYPE, node, f"{what} must be a mapping, not {_describe(node)}")
            return None
        found: dict[str, tuple[Node, Node]] = {}
        merged: dict[str, tuple[Node, Node]] = {}
        self._collect(node, what, found, merged, set())
        for key, pair in merged.items():
            found.setdefault(key, pair)
        return found

    def _collect(
        self,
        node: MappingNode,
        what: str,
        found: dict[str, tuple[Node, Node]],
        merged: dict[str, tuple[Node, Node]],
        active: set[int],
    ) -> None:
        active.add(id(node))
        self.spend(len(node.value) + 1)
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                # "<<: *defaults": keys written in the mapping itself win over merged ones.
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, MappingNode):
                        self.report(
                            Code.WRONG_TYPE,
                            source,
                            f"'<<' in {what} must merge a mapping, not {_describe(source)}",
                        )
                    elif id(source) in active:
                        self.report(Code.BAD_VALUE, source, f"'<<' in {what} merges itself")
                    else:
                        inner: dict[str, tuple[Node, Node]] = {}
                        self._collect(source, what, inner, merged, active)
                        for key, pair in inner.items():
                            merged.setdefault(key, pair)
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
                self.report(
                    Code.WRONG_TYPE,
                    key_node,
                    f"keys in {what} must be text, not {_describe(key_node)}",
                )
                continue
            key = str(key_node.value)
            if key in found:
                self.report(
                    Code.DUPLICATE_NAME,
                    key_node,
                    f"key {key!r} appears twice in {what} (first at line "
                    f"{_line(found[key][0])}); keep one",
                )
                continue
            found[key] = (key_node, value_node)
        active.discard(id(node))

    def sequence(self, node: Node, what: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.report(Code.WRONG_TYPE, node, f"{what} must be a list, not {_describe(node)}")
            return None
        self.spend(len(node.value) + 1)
        return list(node.value)

    def text(self, node: Node, what: str, *, allow_empty: bool = False) -> str | None:
        if not isinstance(node, ScalarNode) or node.tag != _STR:
            hint = "; put it in quotes" if isinstance(node, ScalarNode) and node.value else ""
            self.report(Code.WRONG_TYPE, node, f"{what} must be text, not {_describe(node)}{hint}")
            return None
        value = str(node.value)
        if "\x00" in value:
            self.report(Code.BAD_VALUE, node, f"{what} contains a NUL character; remove it")
            return None
        if not value and not allow_empty:
            self.report(Code.BAD_VALUE, node, f"{what} is empty; give a value or drop the key")
            return None
        return value

    def boolean(self, node: Node, what: str) -> bool | None:
        if not isinstance(node, ScalarNode) or node.tag != _BOOL:
            self.report(
                Code.WRONG_TYPE, node, f"{what} must be true or false, not {_describe(node)}"
            )
            return None
        value = _construct(node)
        if not isinstance(value, bool):
            self.report(Code.BAD_VALUE, node, f"{what} is {_short(node)}; write true or false")
            return None
        return value

    def integer(self, node: Node, what: str, low: int, high: int) -> int | None:
        if not isinstance(node, ScalarNode) or node.tag != _INT:
            self.report(Code.WRONG_TYPE, node, f"{what} must be an integer, not {_describe(node)}")
            return None
        value = _construct(node)
        if not isinstance(value, int) or not low <= value <= high:
            self.report(
                Code.BAD_VALUE,
                node,
                f"{what} is {_short(node)}; it must be between {low} and {high}",
            )
            return None
        return value

    def number(
        self, node: Node, what: str, low: float, high: float, *, low_open: bool = False
    ) -> float | None:
        if not isinstance(node, ScalarNode) or node.tag not in (_INT, _FLOAT):
            self.report(Code.WRONG_TYPE, node, f"{what} must be a number, not {_describe(node)}")
            return None
        raw = _construct(node)
        try:
            value = float(raw) if isinstance(raw, (int, float)) else math.nan
        except OverflowError:
            value = math.nan
        above_low = value > low if low_open else value >= low
        if not (math.isfinite(value) and above_low and value <= high):
            bound = f"above {_num(low)}" if low_open else f"at least {_num(low)}"
            self.report(
                Code.BAD_VALUE,
                node,
                f"{what} is {_short(node)}; it must be a number {bound} and at most {_num(high)}",
            )
            return None
        return value

    def word(self, node: Node, what: str) -> str | None:
        """Text or an integer, as text (argv elements, env values)."""
        if isinstance(node, ScalarNode) and node.tag == _INT:
            value = self.integer(node, what, -schema.INT_TEXT_MAX, schema.INT_TEXT_MAX)
            return None if value is None else str(value)
        if isinstance(node, ScalarNode) and node.tag != _STR:
            self.report(
                Code.WRONG_TYPE,
                node,
                f"{what} must be text or an integer, not {_describe(node)}; put it in quotes",
            )
            return None
        return self.text(node, what, allow_empty=True)

    def argv(self, node: Node, what: str) -> tuple[str, ...] | None:
        if isinstance(node, ScalarNode) and node.tag == _STR:
            self.report(
                Code.WRONG_TYPE,
                node,
                f"{what} must be a list (program and arguments), not text; "
                "write [program, arg, ...] or use 'script'",
            )
            return None
        items = self.sequence(node, what)
        if items is None:
            return None
        if not items:
            self.report(Code.BAD_VALUE, node, f"{what} is an empty list; name the program to run")
            return None
        words = [self.word(item, f"element {i + 1} of {what}") for i, item in enumerate(items)]
        if any(w is None for w in words):
            return None
        if not words[0]:
            self.report(Code.BAD_VALUE, items[0], f"the program in {what} is empty")
            return None
        return tuple(w for w in words if w is not None)


def _short(node: Node) -> str:
    text = str(node.value) if isinstance(node, ScalarNode) else _describe(node)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------- document


def _parse_document(ctx: _Ctx, document: Node | None, result: _FileResult) -> None:
    if document is None:
        ctx.report(
            Code.MISSING_KEY, 1, "the file is empty; write 'jobnets:' with a list of jobnets"
        )
        return
    top = ctx.mapping(document, "the file")
    if top is None:
        return
    for key, (key_node, _) in top.items():
        if key not in schema.FILE_KEYS:
            ctx.report(
                Code.UNKNOWN_KEY,
                key_node,
                f"unknown key {key!r} at the top of the file{_suggest(key, schema.FILE_KEYS)}",
            )
    if "group" in top:
        key_node, value_node = top["group"]
        result.group_line = _line(key_node)
        group = ctx.text(value_node, "'group'")
        if group is not None:
            if group == "/" or schema.GROUP_RE.match(group):
                result.group = group
            else:
                ctx.report(
                    Code.BAD_NAME,
                    value_node,
                    f"group path {_short(value_node)!r} is not valid; write '/' or '/a/b' "
                    "where each part is a unit name (letters, digits, _ . -; at most 64)",
                )
    if "calendars" in top:
        result.calendars = _calendars(ctx, top["calendars"][1])
    if "calendar" in top:
        name = ctx.text(top["calendar"][1], "'calendar' (of the file's group)")
        if name is not None:
            result.group_calendar = (name, _line(top["calendar"][1]))
    if "jobnets" not in top:
        if "calendars" in top:
            return  # a file of shared calendars only
        ctx.report(Code.MISSING_KEY, document, "the file has no 'jobnets' list; add one")
        return
    items = ctx.sequence(top["jobnets"][1], "'jobnets'")
    if items is None:
        return
    drafts = [_unit(ctx, item, result.group, 1, root=True) for item in items]
    seen: dict[str, int] = {}
    for draft in drafts:
        if draft is None or draft.name is None:
            continue
        if draft.name in seen:
            ctx.report(
                Code.DUPLICATE_NAME,
                draft.name_line,
                f"jobnet {draft.name!r} is defined twice in this file (first at line "
                f"{seen[draft.name]}); rename one",
            )
            continue
        seen[draft.name] = draft.name_line
        result.roots.append(_Root(draft.unit, ctx.file, draft.name_line, draft.calendar_ref))


# --------------------------------------------------------------------------- units


@dataclass
class _Draft:
    """A parsed unit and what its siblings need to check it."""

    name: str | None
    name_line: int
    unit: Unit
    #: (sibling name, line) for each entry of ``after``.
    after: list[tuple[str, int]]
    calendar_ref: tuple[str, int] | None = None


def _join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


def _unit(ctx: _Ctx, node: Node, parent: str, depth: int, *, root: bool) -> _Draft | None:
    where_kind = "jobnet" if root else "unit"
    fields = ctx.mapping(node, f"each entry of '{'jobnets' if root else 'units'}'")
    if fields is None:
        return None
    line = _line(node)
    # Keys a misspelt key probably meant: their "missing key" problems would only
    # repeat the "unknown key ... did you mean" one, so they are not reported.
    typos = {
        match
        for key in fields
        if key not in schema.ALL_UNIT_KEYS
        for match in difflib.get_close_matches(key, sorted(schema.ALL_UNIT_KEYS), n=1)
    }

    name: str | None = None
    name_line = line
    if "name" in fields:
        key_node, value_node = fields["name"]
        name_line = _line(value_node)
        name = ctx.text(value_node, f"the name of the {where_kind} at line {line}")
        if name is not None and not schema.NAME_RE.match(name):
            ctx.report(
                Code.BAD_NAME,
                value_node,
                f"unit name {_short(value_node)!r} is not valid; use 1 to 64 letters, digits, "
                "'_', '.' or '-', not starting with '.' or '-'",
            )
            name = None
    elif "name" not in typos:
        ctx.report(
            Code.MISSING_KEY, node, f"the {where_kind} at line {line} has no 'name'; add one"
        )

    kind = UnitKind.JOBNET if root else UnitKind.JOB
    if "type" in fields:
        value_node = fields["type"][1]
        text = ctx.text(value_node, "'type'")
        allowed = ("jobnet",) if root else schema.UNIT_TYPES
        if text is not None and text not in allowed:
            extra = "; a root jobnet is always a jobnet" if root else ""
            ctx.report(
                Code.BAD_VALUE,
                value_node,
                f"unknown type {text!r}{extra}{_suggest(text, allowed)}",
            )
        if text is None or text not in allowed:
            # Keys can not be checked without a type; keep the name for the siblings.
            placeholder = Unit(name=name or "", path=_join(parent, name or "?"), kind=kind)
            return _Draft(name, name_line, placeholder, [])
        kind = UnitKind(text)

    kind_label = _KIND_LABEL[kind]
    label = f"{kind_label} {name!r}" if name else f"the {kind_label} at line {line}"
    path = _join(parent, name or f"#{line}")
    allowed_keys = schema.ROOT_KEYS if root else schema.KEYS_BY_KIND[kind]
    for key, (key_node, _) in fields.items():
        if key in allowed_keys:
            continue
        if key == "schedule":
            ctx.report(
                Code.UNKNOWN_KEY,
                key_node,
                f"key 'schedule' is not allowed in {label}; only a root jobnet has a schedule, "
                "a nested jobnet runs when its parent does",
            )
            continue
        if key in schema.ALL_UNIT_KEYS:
            owners = [k.value for k, keys in schema.KEYS_BY_KIND.items() if key in keys]
            reason = (
                "a root jobnet has no siblings"
                if root and key in ("after", "recovery")
                else f"only type {' or '.join(owners)} has it"
            )
            ctx.report(
                Code.UNKNOWN_KEY, key_node, f"key {key!r} is not allowed in {label}; {reason}"
            )
        else:
            ctx.report(
                Code.UNKNOWN_KEY,
                key_node,
                f"unknown key {key!r} in {label}{_suggest(key, allowed_keys)}",
            )

    def value(key: str) -> Node | None:
        pair = fields.get(key)
        return None if pair is None or key not in allowed_keys else pair[1]

    common: dict[str, object] = {}
    description = value("description")
    if description is not None:
        common["description"] = ctx.text(description, f"'description' of {label}", allow_empty=True)
    for flag in ("hold", "recovery"):
        flag_node = value(flag)
        if flag_node is not None:
            common[flag] = ctx.boolean(flag_node, f"'{flag}' of {label}")

    after: list[tuple[str, int]] = []
    after_node = value("after")
    if after_node is not None:
        items = ctx.sequence(after_node, f"'after' of {label}")
        for item in items or []:
            sibling = ctx.text(item, f"an entry of 'after' of {label}")
            if sibling is None:
                continue
            if any(sibling == a for a, _ in after):
                ctx.report(
                    Code.BAD_VALUE,
                    item,
                    f"{sibling!r} is listed twice in 'after' of {label}; keep one",
                )
                continue
            after.append((sibling, _line(item)))
    if common.get("recovery") is True and not after and "after" not in typos:
        ctx.report(
            Code.BAD_VALUE,
            fields["recovery"][1],
            f"{label} is a recovery unit but has no predecessor; "
            "list in 'after' the units whose abnormal end it handles",
        )

    values = {k: v for k, v in common.items() if v is not None}
    if kind is UnitKind.JOB:
        values.update(_job(ctx, fields, value, label, line, typos))
    elif kind is UnitKind.JUDGE:
        if "after" in typos:
            after_node = None
        values.update(_judge(ctx, value, label, line, after, after_node, typos))
    elif kind is UnitKind.OR:
        if not after and "after" not in typos:
            ctx.report(
                Code.BAD_VALUE,
                after_node if after_node is not None else line,
                f"{label} has no predecessors; list in 'after' the units it waits for",
            )
    else:
        values.update(_jobnet(ctx, value, label, line, path, depth, typos))
    calendar_ref: tuple[str, int] | None = None
    schedule_node = value("schedule")
    if schedule_node is not None:
        parsed = _schedule(ctx, schedule_node, label)
        if parsed is not None:
            values["schedule"], calendar_ref = parsed

    unit = Unit(
        name=name or "",
        path=path,
        kind=kind,
        source=f"{ctx.file}:{line}",
        after=tuple(a for a, _ in after),
        **values,  # type: ignore[arg-type]
    )
    return _Draft(name, name_line, unit, after, calendar_ref)


def _job(
    ctx: _Ctx,
    fields: dict[str, tuple[Node, Node]],
    value: _Getter,
    label: str,
    line: int,
    typos: set[str],
) -> dict[str, object]:
    out: dict[str, object] = {}
    command, script = value("command"), value("script")
    if command is not None and script is not None:
        ctx.report(
            Code.BAD_VALUE,
            fields["script"][0],
            f"{label} has both 'command' and 'script'; keep one",
        )
    elif command is None and script is None and not typos & {"command", "script"}:
        ctx.report(
            Code.MISSING_KEY,
            line,
            f"{label} has neither 'command' nor 'script'; give one of them",
        )
    if command is not None:
        out["command"] = ctx.argv(command, f"'command' of {label}")
    if script is not None:
        out["script"] = ctx.text(script, f"'script' of {label}")
    shell = value("shell")
    if shell is not None:
        out["shell"] = ctx.text(shell, f"'shell' of {label}")
        if script is None:
            ctx.report(
                Code.BAD_VALUE,
                fields["shell"][0],
                f"'shell' of {label} is only used with 'script'; drop it or use 'script'",
            )
    cwd = value("cwd")
    if cwd is not None:
        text = ctx.text(cwd, f"'cwd' of {label}")
        if text is not None and not text.startswith("/"):
            ctx.report(
                Code.BAD_VALUE, cwd, f"'cwd' of {label} must be an absolute path, not {text!r}"
            )
            text = None
        out["cwd"] = text
    user = value("user")
    if user is not None:
        out["user"] = ctx.text(user, f"'user' of {label}")
    env = value("env")
    if env is not None:
        out["env"] = _env(ctx, env, label)

    warning_node, abnormal_node = value("warning_threshold"), value("abnormal_threshold")
    warning = abnormal = None
    if warning_node is not None:
        warning = ctx.integer(warning_node, f"'warning_threshold' of {label}", 0, 255)
        out["warning_threshold"] = warning
    if abnormal_node is not None:
        abnormal = ctx.integer(abnormal_node, f"'abnormal_threshold' of {label}", 0, 255)
        out["abnormal_threshold"] = abnormal
    # Compare only values that were read; a bad abnormal_threshold is reported already.
    effective = 0 if abnormal_node is None else abnormal
    if warning_node is not None and warning is not None and effective is not None:
        default = "" if abnormal_node is not None else " (the default)"
        if warning > effective:
            ctx.report(
                Code.BAD_VALUE,
                warning_node,
                f"'warning_threshold' {warning} of {label} is above 'abnormal_threshold' "
                f"{effective}{default}; the abnormal threshold must be at least the "
                "warning threshold",
            )

    timeout = value("timeout")
    if timeout is not None:
        out["timeout"] = ctx.number(
            timeout, f"'timeout' of {label}", 0, schema.SECONDS_MAX, low_open=True
        )
    grace = value("kill_grace")
    if grace is not None:
        out["kill_grace"] = ctx.number(grace, f"'kill_grace' of {label}", 0, schema.SECONDS_MAX)
    retry = value("retry")
    if retry is not None:
        out["retry"] = _retry(ctx, retry, label)

    policy_node, check_node = value("on_failover"), value("failover_check")
    policy = None
    if policy_node is not None:
        text = ctx.text(policy_node, f"'on_failover' of {label}")
        choices = [p.value for p in RecoveryPolicy]
        if text is not None and text not in choices:
            ctx.report(
                Code.BAD_VALUE,
                policy_node,
                f"unknown 'on_failover' {text!r} in {label}{_suggest(text, choices)}",
            )
        elif text is not None:
            policy = RecoveryPolicy(text)
            out["on_failover"] = policy
    if check_node is not None:
        out["failover_check"] = ctx.argv(check_node, f"'failover_check' of {label}")
    if policy is RecoveryPolicy.JUDGE and check_node is None:
        ctx.report(
            Code.BAD_VALUE,
            policy_node if policy_node is not None else line,
            f"{label} has 'on_failover: judge' but no 'failover_check'; "
            "give the command that decides whether the job is done",
        )
    if (
        check_node is not None
        and policy_node is not None
        and policy
        not in (
            None,
            RecoveryPolicy.JUDGE,
        )
    ):
        ctx.report(
            Code.BAD_VALUE,
            fields["failover_check"][0],
            f"'failover_check' of {label} is only used with 'on_failover: judge'",
        )
    if check_node is not None and policy_node is None:
        ctx.report(
            Code.BAD_VALUE,
            fields["failover_check"][0],
            f"'failover_check' of {label} is only used with 'on_failover: judge'; add it",
        )
    return {k: v for k, v in out.items() if v is not None}


def _env(ctx: _Ctx, node: Node, label: str) -> tuple[tuple[str, str], ...] | None:
    fields = ctx.mapping(node, f"'env' of {label}")
    if fields is None:
        return None
    pairs: list[tuple[str, str]] = []
    for key, (key_node, value_node) in fields.items():
        if not schema.ENV_NAME_RE.match(key):
            ctx.report(
                Code.BAD_VALUE,
                key_node,
                f"{key!r} in 'env' of {label} is not a valid variable name "
                "(letters, digits and '_', not starting with a digit)",
            )
            continue
        if key.startswith(schema.RESERVED_ENV_PREFIX):
            ctx.report(
                Code.BAD_VALUE,
                key_node,
                f"{key!r} in 'env' of {label} is reserved: ajs3 sets the "
                f"{schema.RESERVED_ENV_PREFIX}* variables of every run; rename it",
            )
            continue
        text = ctx.word(value_node, f"the value of {key!r} in 'env' of {label}")
        if text is not None:
            pairs.append((key, text))
    return tuple(sorted(pairs))


def _retry(ctx: _Ctx, node: Node, label: str) -> Retry | None:
    fields = ctx.mapping(node, f"'retry' of {label}")
    if fields is None:
        return None
    for key, (key_node, _) in fields.items():
        if key not in schema.RETRY_KEYS:
            ctx.report(
                Code.UNKNOWN_KEY,
                key_node,
                f"unknown key {key!r} in 'retry' of {label}{_suggest(key, schema.RETRY_KEYS)}",
            )
    count: int | None = 0
    interval: float | None = 0.0
    codes: list[int] = []
    ok = True
    if "count" in fields:
        count = ctx.integer(
            fields["count"][1], f"'retry.count' of {label}", 0, schema.RETRY_COUNT_MAX
        )
    if "interval" in fields:
        interval = ctx.number(
            fields["interval"][1], f"'retry.interval' of {label}", 0, schema.SECONDS_MAX
        )
    if "on_exit_codes" in fields:
        items = ctx.sequence(fields["on_exit_codes"][1], f"'retry.on_exit_codes' of {label}")
        ok = items is not None
        for item in items or []:
            code = ctx.integer(
                item, f"an exit code in 'retry.on_exit_codes' of {label}", 1, schema.EXIT_CODE_MAX
            )
            if code is None:
                ok = False
            elif code not in codes:
                codes.append(code)
    if count is None or interval is None or not ok:
        return None
    return Retry(count=count, interval=interval, on_exit_codes=tuple(codes))


def _judge(
    ctx: _Ctx,
    value: _Getter,
    label: str,
    line: int,
    after: list[tuple[str, int]],
    after_node: Node | None,
    typos: set[str],
) -> dict[str, object]:
    node = value("condition")
    if node is None:
        if "condition" in typos:
            return {}
        ctx.report(
            Code.MISSING_KEY,
            line,
            f"{label} has no 'condition'; add e.g. condition: {{op: eq, value: 0}}",
        )
        return {}
    what = f"'condition' of {label}"
    fields = ctx.mapping(node, what)
    if fields is None:
        return {}
    if "op" not in fields:
        ctx.report(Code.MISSING_KEY, node, f"{what} has no 'op'; add one of {_ops()}")
        return {}
    op_node = fields["op"][1]
    op_text = ctx.text(op_node, f"'op' of {what}")
    if op_text is None:
        return {}
    choices = [c.value for c in Compare]
    if op_text not in choices:
        ctx.report(
            Code.BAD_VALUE,
            op_node,
            f"unknown 'op' {op_text!r} in {what}{_suggest(op_text, choices)}",
        )
        return {}
    op = Compare(op_text)
    needed = schema.CONDITION_KEYS[op]
    for key, (key_node, _) in fields.items():
        if key != "op" and key not in needed:
            ctx.report(
                Code.UNKNOWN_KEY,
                key_node,
                f"key {key!r} is not used by op {op.value!r} in {what}; "
                f"it takes {', '.join(needed)}",
            )
    got: dict[str, int | str | None] = {}
    for key in needed:
        if key not in fields:
            ctx.report(Code.MISSING_KEY, node, f"{what} with op {op.value!r} needs {key!r}")
            got[key] = None
        elif key == "path":
            got[key] = ctx.text(fields[key][1], f"'path' of {what}")
        else:
            got[key] = ctx.integer(
                fields[key][1], f"{key!r} of {what}", -schema.INT_TEXT_MAX, schema.INT_TEXT_MAX
            )
    low, high = got.get("low"), got.get("high")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        ctx.report(
            Code.BAD_VALUE,
            fields["high"][1],
            f"{what} has 'low' {low} above 'high' {high}; swap them",
        )
    if op in schema.EXIT_CODE_OPS and len(after) != 1 and "after" not in typos:
        ctx.report(
            Code.BAD_VALUE,
            after_node if after_node is not None else op_node,
            f"{label} judges an exit code, so it needs exactly one predecessor in 'after' "
            f"(it has {len(after)})",
        )
    if any(v is None for v in got.values()):
        return {}
    value_ = got.get("value")
    path = got.get("path")
    return {
        "condition": Condition(
            op=op,
            value=value_ if isinstance(value_, int) else None,
            low=low if isinstance(low, int) else None,
            high=high if isinstance(high, int) else None,
            path=path if isinstance(path, str) else None,
        )
    }


def _ops() -> str:
    return ", ".join(c.value for c in Compare)


def _jobnet(
    ctx: _Ctx, value: _Getter, label: str, line: int, path: str, depth: int, typos: set[str]
) -> dict[str, object]:
    out: dict[str, object] = {}
    concurrency = value("concurrency")
    if concurrency is not None:
        out["concurrency"] = ctx.integer(
            concurrency, f"'concurrency' of {label}", 1, schema.CONCURRENCY_MAX
        )
    units_node = value("units")
    if units_node is None:
        if "units" in typos:
            return out
        ctx.report(Code.MISSING_KEY, line, f"{label} has no 'units'; a jobnet needs at least one")
        return out
    items = ctx.sequence(units_node, f"'units' of {label}")
    if items is None:
        return out
    if not items:
        ctx.report(
            Code.MISSING_KEY,
            units_node,
            f"'units' of {label} is empty; a jobnet needs at least one",
        )
        return out
    if depth > schema.MAX_DEPTH:
        ctx.report(
            Code.BAD_VALUE,
            line,
            f"{label} is nested {depth} jobnets deep; at most {schema.MAX_DEPTH} are allowed",
        )
        return out
    drafts = [d for d in (_unit(ctx, item, path, depth + 1, root=False) for item in items) if d]
    _check_siblings(ctx, drafts, label)
    out["units"] = tuple(d.unit for d in drafts)
    return {k: v for k, v in out.items() if v is not None}


def _check_siblings(ctx: _Ctx, drafts: list[_Draft], label: str) -> None:
    by_name: dict[str, _Draft] = {}
    for draft in drafts:
        if draft.name is None:
            continue
        first = by_name.get(draft.name)
        if first is not None:
            ctx.report(
                Code.DUPLICATE_NAME,
                draft.name_line,
                f"unit name {draft.name!r} is used twice in {label} (first at line "
                f"{first.name_line}); rename one",
            )
            continue
        by_name[draft.name] = draft
    names = list(by_name)
    edges: dict[str, list[tuple[str, int]]] = {name: [] for name in names}
    for draft in drafts:
        for sibling, line in draft.after:
            if sibling not in by_name:
                ctx.report(
                    Code.UNKNOWN_NAME,
                    line,
                    f"{_KIND_LABEL[draft.unit.kind]} {draft.name or '?'!r} runs after {sibling!r}, "
                    f"but {label} has no unit of that name{_suggest(sibling, names, 'units')}",
                )
            elif draft.name is not None and by_name.get(draft.name) is draft:
                edges[draft.name].append((sibling, line))
    for cycle in _cycles(names, edges):
        head = min(cycle, key=names.index)
        line = next(ln for sib, ln in edges[head] if sib in cycle)
        if len(cycle) == 1:
            ctx.report(
                Code.CYCLE,
                line,
                f"unit {head!r} of {label} runs after itself; remove {head!r} from its 'after'",
            )
            continue
        members = ", ".join(repr(m) for m in sorted(cycle, key=names.index))
        chain = _chain(head, set(cycle), edges)
        ctx.report(
            Code.CYCLE,
            line,
            f"units {members} of {label} wait for each other in a cycle through 'after' "
            f"({' after '.join(chain)}); remove one of these dependencies",
        )


def _cycles(names: list[str], edges: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Strongly connected components that hold a cycle (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in names:
        if start in index:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, pos = work.pop()
            if pos == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = edges[node]
            if pos < len(succ):
                work.append((node, pos + 1))
                nxt = succ[pos][0]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or any(s == node for s, _ in edges[node]):
                    found.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def _chain(start: str, members: set[str], edges: dict[str, list[tuple[str, int]]]) -> list[str]:
    """One concrete loop inside a strongly connected component, for the message."""
    path = [start]
    current = start
    while True:
        current = next(s for s, _ in edges[current] if s in members)
        if current in path:
            return [*path[path.index(current) :], current]
        path.append(current)


# --------------------------------------------------------------------------- schedules


def _time_of_day(ctx: _Ctx, node: Node, what: str, high: int) -> int | None:
    """'HH:MM' as minutes. Unquoted 12:30 is a YAML 1.1 sexagesimal int: read its text."""
    if not isinstance(node, ScalarNode) or node.tag not in (_STR, _INT):
        ctx.report(Code.WRONG_TYPE, node, f"{what} must be a time 'HH:MM', not {_describe(node)}")
        return None
    match = schema.TIME_RE.match(str(node.value).strip())
    if match is None:
        ctx.report(Code.BAD_VALUE, node, f"{what} is {_short(node)}; write a time as 'HH:MM'")
        return None
    minutes = int(match.group(1)) * 60 + int(match.group(2))
    if minutes > high:
        ctx.report(
            Code.BAD_VALUE,
            node,
            f"{what} is {_short(node)}; it must be at most {high // 60:02d}:{high % 60:02d}",
        )
        return None
    return minutes


def _date(ctx: _Ctx, node: Node, what: str) -> str | None:
    """A date as ISO text. Unquoted 2027-01-04 is a YAML timestamp: read its text."""
    if not isinstance(node, ScalarNode) or node.tag not in (_STR, _TAG + "timestamp"):
        ctx.report(
            Code.WRONG_TYPE, node, f"{what} must be a date YYYY-MM-DD, not {_describe(node)}"
        )
        return None
    text = str(node.value).strip()
    if not schema.DATE_RE.match(text):
        ctx.report(Code.BAD_VALUE, node, f"{what} is {_short(node)}; write a date as YYYY-MM-DD")
        return None
    try:
        date.fromisoformat(text)
    except ValueError:
        ctx.report(Code.BAD_VALUE, node, f"{what}: {text} is not a date of the calendar")
        return None
    return text


_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "min": 60, "s": 1}


def _duration(ctx: _Ctx, node: Node, what: str, low: float = 0.0) -> float | None:
    """Seconds (a number) or text such as '90s', '30m', '1h30m', '2d'."""
    if isinstance(node, ScalarNode) and node.tag == _STR:
        text = str(node.value).replace(" ", "")
        if not schema.DURATION_RE.match(text):
            ctx.report(
                Code.BAD_VALUE,
                node,
                f"{what} is {_short(node)}; write seconds or a duration like 30m, 1h, 2d",
            )
            return None
        seconds = float(
            sum(int(n) * _UNIT_SECONDS[u] for n, u in re.findall(r"([0-9]+)(min|d|h|m|s)", text))
        )
        if not low < seconds <= schema.SECONDS_MAX:
            ctx.report(Code.BAD_VALUE, node, f"{what} is {_short(node)}; it must be above 0")
            return None
        return seconds
    return ctx.number(node, what, low, schema.SECONDS_MAX, low_open=True)


def _weekdays(ctx: _Ctx, node: Node, what: str) -> tuple[int, ...] | None:
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
                f"{text!r} in {what} is not a weekday{_suggest(text, schema.WEEKDAY_NAMES)}",
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
    ctx: _Ctx, node: Node, what: str, low: int, high: int, hint: str
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


def _choice(ctx: _Ctx, node: Node, what: str, choices: Sequence[str]) -> str | None:
    text = ctx.text(node, what)
    if text is not None and text not in choices:
        ctx.report(Code.BAD_VALUE, node, f"unknown {what} {text!r}{_suggest(text, choices)}")
        return None
    return text


def _check_keys(
    ctx: _Ctx, fields: dict[str, tuple[Node, Node]], allowed: Sequence[str], what: str
) -> None:
    for key, (key_node, _) in fields.items():
        if key not in allowed:
            ctx.report(
                Code.UNKNOWN_KEY, key_node, f"unknown key {key!r} in {what}{_suggest(key, allowed)}"
            )


def _schedule(ctx: _Ctx, node: Node, label: str) -> tuple[Schedule, tuple[str, int] | None] | None:
    what = f"'schedule' of {label}"
    fields = ctx.mapping(node, what)
    if fields is None:
        return None
    _check_keys(ctx, fields, schema.SCHEDULE_KEYS, what)
    ok = True
    tz_name = local_zone_name()
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
                    f"{_suggest(text, sorted(known_zones()), 'for example')[:200]}; "
                    "use an IANA name such as Europe/Berlin",
                )
                ok = False
    calendar_ref: tuple[str, int] | None = None
    if "calendar" in fields:
        text = ctx.text(fields["calendar"][1], f"'calendar' of {label}")
        if text is None:
            ok = False
        else:
            calendar_ref = (text, _line(fields["calendar"][1]))
    extra: dict[str, object] = {}
    if "overlap" in fields:
        text = _choice(
            ctx, fields["overlap"][1], f"'overlap' of {label}", [o.value for o in Overlap]
        )
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
        text = _choice(
            ctx, fields["catch_up"][1], f"'catch_up' of {label}", [c.value for c in CatchUp]
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
                Code.BAD_VALUE,
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
    values = {k: v for k, v in extra.items() if v is not None}
    schedule = Schedule(time_zone=tz_name, rules=tuple(rules), **values)  # type: ignore[arg-type]
    return schedule, calendar_ref


def _rule(ctx: _Ctx, node: Node, what: str) -> Rule | None:
    fields = ctx.mapping(node, what)
    if fields is None:
        return None
    _check_keys(ctx, fields, schema.RULE_KEYS, what)
    problems = len(ctx.problems)
    out: dict[str, object] = {"source": f"{ctx.file}:{_line(node)}"}

    def get(key: str) -> Node | None:
        pair = fields.get(key)
        return None if pair is None else pair[1]

    at_node = get("at")
    if at_node is None:
        ctx.report(Code.MISSING_KEY, node, f"{what} has no 'at'; give the start time 'HH:MM'")
    else:
        out["at"] = _time_of_day(ctx, at_node, f"'at' of {what}", schema.AT_MAX_MINUTES)
    every_node = get("every")
    period: Period | None = None
    if every_node is not None:
        if isinstance(every_node, ScalarNode) and every_node.tag == _INT:
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
                    f"'every' of {what} is {_short(every_node)}; write e.g. '2 days', "
                    "'1 week' or '3 months'",
                )
            elif match is not None:
                count = int(match.group(1)) if match.group(1) is not None else 1
                period = Period(match.group(2).rstrip("s"))
                if not 1 <= count <= schema.EVERY_MAX:
                    ctx.report(
                        Code.BAD_VALUE,
                        every_node,
                        f"'every' of {what} is {count} {period.value}s; the cycle must be "
                        f"between 1 and {schema.EVERY_MAX}",
                    )
                    count = None
        if count is not None and period is not None:
            out["every"], out["period"] = count, period
    weekdays = nth = days = open_days = None
    if get("weekdays") is not None:
        weekdays = _weekdays(ctx, get("weekdays"), f"'weekdays' of {what}")  # type: ignore[arg-type]
        out["weekdays"] = weekdays
        if weekdays == ():
            ctx.report(Code.BAD_VALUE, get("weekdays"), f"'weekdays' of {what} is empty")  # type: ignore[arg-type]
    if get("nth") is not None:
        nth = _int_list(ctx, get("nth"), f"'nth' of {what}", -5, 5,  # type: ignore[arg-type]
                        "use 1..5 (first..fifth) or -1 (last)")
        out["nth"] = nth
    if get("days") is not None:
        days = _int_list(ctx, get("days"), f"'days' of {what}", -31, 31,  # type: ignore[arg-type]
                         "use 1..31, or -1 for the last day")
        out["days"] = days
    if get("open_days") is not None:
        open_days = _int_list(ctx, get("open_days"), f"'open_days' of {what}",  # type: ignore[arg-type]
                              -31, 31, "use 1..31, or -1 for the last open day")
        out["open_days"] = open_days
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
        out["start_date"] = _date(ctx, start_node, f"'start' of {what}")
    if end_node is not None:
        out["end_date"] = _date(ctx, end_node, f"'end' of {what}")
    start_s, end_s = out.get("start_date"), out.get("end_date")
    if isinstance(start_s, str) and isinstance(end_s, str) and end_s < start_s:
        ctx.report(Code.BAD_VALUE, end_node, f"'end' of {what} is before its 'start'")  # type: ignore[arg-type]
    needs_anchor = (
        (out.get("every", 1) != 1)
        or (period in (Period.WEEK, Period.MONTH) and not monthly and "weekdays" not in fields)
    )
    if needs_anchor and start_node is None and "every" in out:
        ctx.report(
            Code.MISSING_KEY,
            every_node,  # type: ignore[arg-type]
            f"{what} runs every {out['every']} {out['period']}(s) but has no 'start' "
            "to count from; add start: YYYY-MM-DD",
        )
    if get("closed_days") is not None:
        text = _choice(ctx, get("closed_days"), f"'closed_days' of {what}",  # type: ignore[arg-type]
                       [c.value for c in ClosedDay])
        if text is not None:
            out["closed_days"] = ClosedDay(text)
    if get("shift_limit") is not None:
        out["shift_limit"] = ctx.integer(
            get("shift_limit"), f"'shift_limit' of {what}", 1, schema.SHIFT_LIMIT_MAX  # type: ignore[arg-type]
        )
    if get("repeat") is not None:
        rep = ctx.mapping(get("repeat"), f"'repeat' of {what}")  # type: ignore[arg-type]
        if rep is not None:
            _check_keys(ctx, rep, schema.REPEAT_KEYS, f"'repeat' of {what}")
            for key in schema.REPEAT_KEYS:
                if key not in rep:
                    ctx.report(Code.MISSING_KEY, get("repeat"),  # type: ignore[arg-type]
                               f"'repeat' of {what} needs {key!r}")
            if "every" in rep:
                seconds = _duration(ctx, rep["every"][1], f"'repeat.every' of {what}")
                if seconds is not None and (seconds % 60 or seconds > 86400):
                    ctx.report(Code.BAD_VALUE, rep["every"][1],
                               f"'repeat.every' of {what} must be whole minutes, at most 1 day")
                elif seconds is not None:
                    out["repeat_every"] = int(seconds // 60)
            if "until" in rep:
                out["repeat_until"] = _time_of_day(
                    ctx, rep["until"][1], f"'repeat.until' of {what}", schema.AT_MAX_MINUTES
                )
    if get("deadline") is not None:
        out["deadline"] = _duration(ctx, get("deadline"), f"'deadline' of {what}")  # type: ignore[arg-type]
    if len(ctx.problems) != problems or out.get("at") is None:
        return None
    return Rule(**{k: v for k, v in out.items() if v is not None})  # type: ignore[arg-type]


def _calendars(ctx: _Ctx, node: Node) -> list[tuple[Calendar, int]]:
    items = ctx.sequence(node, "'calendars'")
    found: list[tuple[Calendar, int]] = []
    for item in items or []:
        cal = _calendar(ctx, item)
        if cal is not None:
            found.append((cal, _line(item)))
    return found


def _calendar(ctx: _Ctx, node: Node) -> Calendar | None:
    fields = ctx.mapping(node, "each entry of 'calendars'")
    if fields is None:
        return None
    line = _line(node)
    what = f"the calendar at line {line}"
    _check_keys(ctx, fields, schema.CALENDAR_KEYS, what)
    problems = len(ctx.problems)
    out: dict[str, object] = {"source": f"{ctx.file}:{line}"}
    if "name" not in fields:
        ctx.report(Code.MISSING_KEY, node, f"{what} has no 'name'; add one")
    else:
        name = ctx.text(fields["name"][1], f"the name of {what}")
        if name is not None and not schema.NAME_RE.match(name):
            ctx.report(Code.BAD_NAME, fields["name"][1],
                       f"calendar name {name!r} is not valid; use 1 to 64 letters, digits, "
                       "'_', '.' or '-'")
        out["name"] = name
        what = f"calendar {name!r}"
    if "open_weekdays" in fields:
        out["open_weekdays"] = _weekdays(ctx, fields["open_weekdays"][1],
                                         f"'open_weekdays' of {what}")
    for key in ("open_dates", "closed_dates"):
        if key in fields:
            items = ctx.sequence(fields[key][1], f"'{key}' of {what}")
            dates = [_date(ctx, item, f"an entry of '{key}' of {what}") for item in items or []]
            out[key] = tuple(sorted({d for d in dates if d is not None}))
    if "base_time" in fields:
        out["base_time"] = _time_of_day(ctx, fields["base_time"][1],
                                        f"'base_time' of {what}", 23 * 60 + 59)
    if len(ctx.problems) != problems:
        return None
    cal = Calendar(**{k: v for k, v in out.items() if v is not None})  # type: ignore[arg-type]
    both = set(cal.open_dates) & set(cal.closed_dates)
    if both:
        ctx.report(Code.BAD_VALUE, node,
                   f"{what} lists {min(both)} as both open and closed; keep one")
        return None
    years = {int(d[:4]) for d in cal.closed_dates}
    if not cal.open_weekdays and not cal.open_dates:
        ctx.report(Code.BAD_VALUE, node,
                   f"{what} has no open day at all; give 'open_weekdays' or 'open_dates'")
        return None
    for year in sorted(years):
        book = DayBook(cal)
        if not any(book.open_days(year, month) for month in range(1, 13)):
            ctx.report(Code.BAD_VALUE, node,
                       f"{what} has no open day in {year}; a schedule on it would never run")
            return None
    return cal
