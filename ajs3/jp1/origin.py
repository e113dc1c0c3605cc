"""Problems the loader finds in the generated YAML, moved to the JP1 lines they come from.

The user wrote the JP1 file, not the YAML: an error at ``SALES.yaml:14`` helps nobody.
The importer remembers, for each mapping it generates (a jobnet, a unit, a rule, a
calendar), the JP1 line it comes from. Only when the loader refuses the result is the
YAML composed again and walked beside the data it was dumped from, so each problem's
YAML line falls in the innermost generated mapping around it, and takes that line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from ajs3.errors import Problem

#: (first line, last line, JP1 line) of one generated mapping
Span = tuple[int, int, int]


def to_jp1_lines(
    problems: Sequence[Problem],
    files: dict[str, str],
    bodies: dict[str, Any],
    origin: dict[int, int],
    jp1_file: str,
) -> list[Problem]:
    spans: dict[str, list[Span]] = {}
    for name, text in files.items():
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            continue
        found: list[Span] = []
        if node is not None:
            _walk(node, bodies.get(name), origin, found)
        spans[name] = found
    moved = []
    for problem in problems:
        around = [s for s in spans.get(problem.file, []) if s[0] <= problem.line <= s[1]]
        if not around:
            moved.append(problem)
            continue
        inner = min(around, key=lambda s: s[1] - s[0])
        moved.append(
            Problem(
                problem.code,
                jp1_file,
                inner[2],
                f"{problem.message} (in the generated {problem.file}:{problem.line})",
            )
        )
    return moved


def _walk(node: Node, data: Any, origin: dict[int, int], found: list[Span]) -> None:
    # The YAML was dumped from ``data``, so the two have the same shape; the depth is
    # bounded by the parser's MAX_DEPTH.
    if isinstance(node, MappingNode) and isinstance(data, dict):
        if id(data) in origin:
            end = node.end_mark.line + (1 if node.end_mark.column else 0)
            found.append(
                (node.start_mark.line + 1, max(end, node.start_mark.line + 1), origin[id(data)])
            )
        for key, value in node.value:
            if key.value in data:
                _walk(value, data[key.value], origin, found)
    elif isinstance(node, SequenceNode) and isinstance(data, list):
        for item, value in zip(node.value, data, strict=False):
            _walk(item, value, origin, found)
