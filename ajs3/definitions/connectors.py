"""Jobnet connectors in definition files: the keys of one, and the checks across files.

A unit ``type: connector`` waits for the matching run of another root jobnet of the
logical host to end (JP1's jobnet connector, ``ty=nc``): ``waits_for`` names that root
jobnet, ``match`` which of its runs (docs/definitions.md, Jobnet connectors). What a
file alone can tell is checked while it is read (:func:`read_connector`); whether the
target exists, is a root jobnet and does not wait back is checked on the whole set
(:func:`check_connectors`), each problem at the connector's ``file:line``.
"""

from __future__ import annotations

from collections.abc import Iterable

from ajs3.definitions import schema
from ajs3.definitions.nodes import Ctx, Getter, suggest
from ajs3.definitions.units import Match, Unit
from ajs3.errors import Code, Problem
from ajs3.model import UnitKind

#: A cycle names at most this many of its jobnets.
_CYCLE_LISTED = 20


def read_connector(
    ctx: Ctx, value: Getter, label: str, line: int, typos: set[str]
) -> dict[str, object]:
    """The values of a connector's own keys: ``waits_for`` (required) and ``match``."""
    out: dict[str, object] = {}
    target = value("waits_for")
    if target is None:
        if "waits_for" not in typos:
            ctx.report(
                Code.MISSING_KEY,
                line,
                f"{label} has no 'waits_for'; name the root jobnet it waits for "
                "(waits_for: /group/jobnet)",
            )
    else:
        text = ctx.text(target, f"'waits_for' of {label}")
        if text is not None:
            if valid_path(text):
                out["waits_for"] = text
            else:
                ctx.report(
                    Code.BAD_NAME,
                    target,
                    f"'waits_for' of {label} is {text[:80]!r}, not the path of a root jobnet; "
                    "write it from the top, as /group/jobnet",
                )
    match = value("match")
    choices = [m.value for m in Match]
    if match is None:
        out["match"] = Match.SCHEDULING_DAY
    else:
        text = ctx.choice(match, f"'match' of {label}", choices)
        if text is not None:
            out["match"] = Match(text)
    return out


def valid_path(text: str) -> bool:
    """Whether ``text`` has the form of a unit path: ``/a/b``, each part a unit name."""
    if not text.startswith("/") or text == "/":
        return False
    parts = text[1:].split("/")
    return len(parts) <= schema.MAX_GROUP_DEPTH + 1 and all(schema.NAME_RE.match(p) for p in parts)


def connectors(root: Unit) -> list[Unit]:
    """The jobnet connectors in a root jobnet, nested jobnets included."""
    return [u for u in root.walk() if u.kind is UnitKind.CONNECTOR]


def _where(unit: Unit, fallback: tuple[str, int]) -> tuple[str, int]:
    file, _, line = unit.source.rpartition(":")
    if file and line.isdigit():
        return file, int(line)
    return fallback


def check_connectors(
    roots: dict[str, tuple[Unit, str, int]], groups: Iterable[str]
) -> list[Problem]:
    """Every connector's target must be a root jobnet of the set, and no root jobnet
    may wait for itself through connectors (directly or around a cycle).

    ``roots`` maps a root jobnet's path to the jobnet, its file and line.
    """
    problems: list[Problem] = []
    group_set = set(groups)
    nested: dict[str, str] = {}
    for path, (root, _, _) in roots.items():
        for unit in root.walk():
            if unit is not root and unit.kind is UnitKind.JOBNET:
                nested[unit.path] = path
    names = sorted(roots)
    edges: dict[str, list[tuple[str, Unit]]] = {}
    for path, (root, file, line) in roots.items():
        for unit in connectors(root):
            target = unit.waits_for
            if target is None:
                continue
            ufile, uline = _where(unit, (file, line))
            if target in roots:
                edges.setdefault(path, []).append((target, unit))
                continue
            if target in nested or target in group_set:
                what = (
                    f"a jobnet inside root jobnet {nested[target]}"
                    if target in nested
                    else "a job group"
                )
                problems.append(
                    Problem(
                        Code.CONNECTOR_TARGET_NOT_ROOT,
                        ufile,
                        uline,
                        f"jobnet connector {unit.path} waits for {target}, which is {what}; "
                        "a connector waits for a root jobnet (an entry of 'jobnets')",
                    )
                )
                continue
            problems.append(
                Problem(
                    Code.CONNECTOR_TARGET_UNKNOWN,
                    ufile,
                    uline,
                    f"jobnet connector {unit.path} waits for {target}, but no root jobnet of "
                    f"that path is defined{suggest(target, names, 'root jobnets')}",
                )
            )
    problems.extend(_cycles(edges, roots))
    return problems


def _cycles(
    edges: dict[str, list[tuple[str, Unit]]], roots: dict[str, tuple[Unit, str, int]]
) -> list[Problem]:
    """One problem per cycle of root jobnets waiting for each other, at the connector
    that closes it (iterative depth-first search: the set may be large)."""
    problems: list[Problem] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    for start in sorted(edges):
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        trail: list[str] = [start]
        state[start] = 1
        while stack:
            node, index = stack[-1]
            out = edges.get(node, [])
            if index >= len(out):
                stack.pop()
                trail.pop()
                state[node] = 2
                continue
            stack[-1] = (node, index + 1)
            target, unit = out[index]
            seen = state.get(target, 0)
            if seen == 1:
                members = [*trail[trail.index(target) :], target]
                listed = members[:_CYCLE_LISTED]
                more = " ..." if len(members) > _CYCLE_LISTED else ""
                file, line = _where(unit, roots[node][1:])
                how = (
                    ", the jobnet it is in, so it would never end"
                    if len(members) == 2
                    else " and closes a cycle of jobnets waiting for each other: "
                    + " -> ".join(listed)
                    + more
                )
                problems.append(
                    Problem(
                        Code.CONNECTOR_CYCLE,
                        file,
                        line,
                        f"jobnet connector {unit.path} waits for {target}{how}; "
                        "remove one of the connectors",
                    )
                )
            elif seen == 0:
                state[target] = 1
                trail.append(target)
                stack.append((target, 0))
    return problems
