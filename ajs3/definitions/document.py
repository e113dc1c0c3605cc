"""One definition file: its text to the root jobnets, calendars and group it declares.

What is found is checked within the file only; the checks across files (unique paths,
calendar names) are :mod:`ajs3.definitions.fileset`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from yaml.nodes import Node

from ajs3.definitions import schema
from ajs3.definitions.calendars import read_calendars
from ajs3.definitions.nodes import Ctx, TooLarge, line_of, short, suggest
from ajs3.definitions.units import Calendar, Unit
from ajs3.definitions.unittree import read_unit
from ajs3.definitions.yamltext import compose
from ajs3.errors import Code, Problem


@dataclass
class Root:
    """A root jobnet found in a file, before the set-wide checks."""

    unit: Unit
    file: str
    line: int
    #: The calendar named in the jobnet's schedule, and the line it is named at.
    calendar_ref: tuple[str, int] | None = None


@dataclass
class FileResult:
    file: str
    problems: list[Problem] = field(default_factory=list)
    roots: list[Root] = field(default_factory=list)
    group: str = "/"
    group_line: int = 1
    calendars: list[tuple[Calendar, int]] = field(default_factory=list)
    #: The calendar this file assigns to its group: (name, line).
    group_calendar: tuple[str, int] | None = None


def parse_file(text: str, filename: str) -> FileResult:
    """Read one file given as text; ``filename`` is used in its problems."""
    result = FileResult(filename)
    document, problems = compose(text, filename)
    if problems:
        result.problems.extend(problems)
        return result
    ctx = Ctx(filename)
    try:
        if document is not None:
            ctx.check_expansion(document)
        _parse_document(ctx, document, result)
    except TooLarge as stop:
        if not stop.keep:
            ctx.problems = []
        ctx.problems.append(stop.problem)
    except RecursionError:  # not met within the bounds of yamltext; kept as a guard
        ctx.problems.append(
            Problem(Code.INPUT_LIMIT, filename, 1, "the definitions nest too deeply; flatten them")
        )
    result.problems.extend(ctx.problems)
    return result


def _parse_document(ctx: Ctx, document: Node | None, result: FileResult) -> None:
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
                f"unknown key {key!r} at the top of the file{suggest(key, schema.FILE_KEYS)}",
            )
    if "group" in top:
        key_node, value_node = top["group"]
        result.group_line = line_of(key_node)
        group = ctx.text(value_node, "'group'")
        if group is not None:
            if group.count("/") > schema.MAX_GROUP_DEPTH:
                ctx.report(
                    Code.INPUT_LIMIT,
                    value_node,
                    f"group path {short(value_node)!r} has {group.count('/')} levels; "
                    f"at most {schema.MAX_GROUP_DEPTH} are allowed",
                )
            elif group == "/" or schema.GROUP_RE.match(group):
                result.group = group
            else:
                ctx.report(
                    Code.BAD_NAME,
                    value_node,
                    f"group path {short(value_node)!r} is not valid; write '/' or '/a/b' "
                    "where each part is a unit name (letters, digits, _ . -; at most 64)",
                )
    if "calendars" in top:
        result.calendars = read_calendars(ctx, top["calendars"][1])
    if "calendar" in top:
        name = ctx.text(top["calendar"][1], "'calendar' (of the file's group)")
        if name is not None:
            result.group_calendar = (name, line_of(top["calendar"][1]))
    if "jobnets" not in top:
        if "calendars" in top:
            return  # a file of shared calendars only
        ctx.report(Code.MISSING_KEY, document, "the file has no 'jobnets' list; add one")
        return
    items = ctx.sequence(top["jobnets"][1], "'jobnets'")
    if items is None:
        return
    drafts = [read_unit(ctx, item, result.group, 1, root=True) for item in items]
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
        result.roots.append(Root(draft.unit, ctx.file, draft.name_line, draft.calendar_ref))
