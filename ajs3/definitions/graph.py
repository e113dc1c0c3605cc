"""The relation graph of a jobnet's children: unique names, known predecessors, no cycle."""

from __future__ import annotations

from dataclasses import dataclass

from ajs3.definitions.nodes import KIND_LABEL, Ctx, suggest
from ajs3.definitions.units import Unit
from ajs3.errors import Code


@dataclass
class Draft:
    """A parsed unit and what its siblings need to check it."""

    name: str | None
    name_line: int
    unit: Unit
    #: (sibling name, line) for each entry of ``after``.
    after: list[tuple[str, int]]
    calendar_ref: tuple[str, int] | None = None


#: Members of a cycle named in its message.
_SHOWN = 20


def check_siblings(ctx: Ctx, drafts: list[Draft], label: str) -> None:
    """Report duplicate names, unknown predecessors and cycles among a jobnet's children."""
    by_name: dict[str, Draft] = {}
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
                    f"{KIND_LABEL[draft.unit.kind]} {draft.name or '?'!r} runs after {sibling!r}, "
                    f"but {label} has no unit of that name{suggest(sibling, names, 'units')}",
                )
            elif draft.name is not None and by_name.get(draft.name) is draft:
                edges[draft.name].append((sibling, line))
    order = {name: i for i, name in enumerate(names)}
    for cycle in _cycles(names, edges):
        head = min(cycle, key=order.__getitem__)
        inside = set(cycle)
        line = next(ln for sib, ln in edges[head] if sib in inside)
        if len(cycle) == 1:
            ctx.report(
                Code.CYCLE,
                line,
                f"unit {head!r} of {label} runs after itself; remove {head!r} from its 'after'",
            )
            continue
        ordered = sorted(cycle, key=order.__getitem__)
        members = ", ".join(repr(m) for m in ordered[:_SHOWN])
        if len(ordered) > _SHOWN:
            members += f", ... ({len(ordered)} in all)"
        chain = _chain(head, inside, edges)
        loop = " after ".join(chain[:_SHOWN]) + (" after ..." if len(chain) > _SHOWN else "")
        ctx.report(
            Code.CYCLE,
            line,
            f"units {members} of {label} wait for each other in a cycle through 'after' "
            f"({loop}); remove one of these dependencies",
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
    at = {start: 0}
    current = start
    while True:
        current = next(s for s, _ in edges[current] if s in members)
        if current in at:
            return [*path[at[current] :], current]
        at[current] = len(path)
        path.append(current)
