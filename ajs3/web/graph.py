"""A jobnet drawn as a graph: its units as nodes, coloured by their status in a run,
relations as edges, nested jobnets as boxes around their units; laid out by Graphviz
(`dot -Tsvg`), never by hand.

Shapes say what a unit is: a job is a box, a judgment job a diamond, an OR job a
circle, a recovery unit has a dashed border; a held unit a thick one. Every name is
quoted for DOT (a definition's name is data, never DOT syntax), and Graphviz writes
it into the SVG as escaped text.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from ajs3.errors import AjsError, Code

#: Seconds `dot` may take (a jobnet of thousands of units takes about one).
DOT_TIMEOUT = 20.0
#: Fill colours by status (the console's legend uses the same).
COLOURS = {
    "running": "#7fb8f0",
    "ended_normally": "#8fd19e",
    "ended_warning": "#ffe08a",
    "ended_abnormally": "#f28b82",
    "killed": "#f28b82",
    "failed_to_start": "#f28b82",
    "unknown": "#d7aefb",
    "held": "#fdcfe8",
    "waiting": "#e8eaed",
    "wait_start_time": "#e8eaed",
    "not_scheduled": "#ffffff",
    "not_executed": "#cfd8dc",
    "interrupted": "#cfd8dc",
}
SHAPES = {"job": "box", "judge": "diamond", "or": "circle"}


def quote(text: str) -> str:
    """``text`` as a DOT quoted string: backslashes and quotes escaped, no newlines."""
    clean = "".join(c if c.isprintable() else " " for c in text)
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(
    tree: dict[str, Any], statuses: dict[str, str], collapsed: frozenset[str] = frozenset()
) -> str:
    """DOT for the jobnet ``tree``; a nested jobnet whose path is in ``collapsed`` is
    one node (a folder) instead of a box around its units."""
    lines = [
        "digraph jobnet {",
        "  rankdir=LR; bgcolor=transparent;",
        '  node [style="filled,rounded", fontname="DejaVu Sans", fontsize=11];',
        '  graph [fontname="DejaVu Sans", fontsize=11];',
        '  edge [fontname="DejaVu Sans", fontsize=10];',
    ]
    _jobnet(tree, statuses, lines, "  ", collapsed)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _anchor(unit: dict[str, Any]) -> str:
    """The node an edge to or from ``unit`` attaches to (a nested jobnet: its
    invisible anchor, since DOT has no edges to clusters)."""
    return quote(unit["path"] + ("#" if unit["kind"] == "jobnet" else ""))


def _jobnet(
    net: dict[str, Any],
    statuses: dict[str, str],
    lines: list[str],
    pad: str,
    collapsed: frozenset[str],
) -> None:
    status = statuses.get(net["path"], "")
    lines.append(f"{pad}subgraph {quote('cluster ' + net['path'])} {{")
    lines.append(f"{pad}  id={quote('jobnet:' + net['path'])};")
    lines.append(f"{pad}  label={quote(net['name'] + (' · ' + status if status else ''))};")
    lines.append(f'{pad}  style="rounded,filled"; fillcolor={quote(_colour(status, "#fafafa"))};')
    lines.append(f"{pad}  {_anchor(net)} [shape=point, width=0.01, style=invis];")
    by_name = {u["name"]: u for u in net["units"]}
    for u in net["units"]:
        st = statuses.get(u["path"], "")
        if u["kind"] == "jobnet" and u["path"] not in collapsed:
            _jobnet(u, statuses, lines, pad + "  ", collapsed)
            continue
        if u["kind"] == "jobnet":  # collapsed: one node, opened by a click in the console
            attrs = [
                f"label={quote(u['name'] + ' (' + str(len(u['units'])) + ')')}",
                "shape=folder",
                f"fillcolor={quote(_colour(st, '#fafafa'))}",
                'style="filled"',
                f"tooltip={quote(u['path'] + (': ' + st if st else ''))}",
                f"id={quote('jobnet:' + u['path'])}",
            ]
            lines.append(f"{pad}  {_anchor(u)} [{', '.join(attrs)}];")
            continue
        styles = ["filled", "rounded"] + (["dashed"] if u["recovery"] else [])
        styles += ["bold"] if u["hold"] else []
        attrs = [
            f"label={quote(u['name'])}",
            f"shape={SHAPES.get(u['kind'], 'box')}",
            f"fillcolor={quote(_colour(st, '#ffffff'))}",
            f"style={quote(','.join(styles))}",
            f"tooltip={quote(u['path'] + (': ' + st if st else ''))}",
            f"id={quote('unit:' + u['path'])}",
        ]
        lines.append(f"{pad}  {_anchor(u)} [{', '.join(attrs)}];")
    for u in net["units"]:
        for before in u["after"]:
            if before in by_name:
                style = ' [style=dashed, label="recovery"]' if u["recovery"] else ""
                lines.append(f"{pad}  {_anchor(by_name[before])} -> {_anchor(u)}{style};")
    lines.append(f"{pad}}}")


def _colour(status: str, default: str) -> str:
    return COLOURS.get(status, default)


def render_svg(dot_text: str) -> bytes:
    """The SVG Graphviz lays out for ``dot_text``; AJS3-E318 without Graphviz."""
    dot = shutil.which("dot")
    if dot is None:
        raise AjsError(
            "Graphviz's dot is not installed: the jobnet graph cannot be drawn",
            code=Code.WEB_START,
            hint="install Graphviz (Debian: apt install graphviz)",
        )
    try:
        done = subprocess.run(
            [dot, "-Tsvg"],
            input=dot_text.encode(),
            capture_output=True,
            timeout=DOT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AjsError(
            f"dot took more than {DOT_TIMEOUT:g} s",
            code=Code.INTERNAL,
            hint="draw a smaller jobnet",
        ) from exc
    if done.returncode != 0:
        raise AjsError(
            f"dot failed: {done.stderr.decode(errors='replace')[:300]}",
            code=Code.INTERNAL,
            hint="please report it with the jobnet's definition",
        )
    return done.stdout
