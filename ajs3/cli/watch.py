"""`ajs3 show --watch`: the status tree, redrawn in place every few seconds (rich).

What it shows is what `ajs3 show` shows, read the same way (the journal, or the daemon
for a viewer), so the two never disagree. On a terminal the view is redrawn in place
until Ctrl-C; otherwise (a pipe, a log) each refresh is printed after the previous
one. ``--count N`` stops after N refreshes.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

#: rich styles by status (the web console's colours, as a terminal has them)
STYLES = {
    "running": "bold blue",
    "ended_normally": "green",
    "ended_warning": "yellow",
    "ended_abnormally": "bold red",
    "killed": "bold red",
    "failed_to_start": "bold red",
    "unknown": "magenta",
    "held": "magenta",
    "waiting": "dim",
    "wait_start_time": "dim",
}


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%m-%d %H:%M:%S", time.localtime(ts))


def _status(status: str, label: str) -> Text:
    return Text(label, style=STYLES.get(status, ""))


def render(data: dict[str, Any]) -> RenderableType:
    """The view of one `show` answer: the tree of groups and jobnets, or a run."""
    if "units" in data:
        table = Table(title=f"run {data['run']} of {data['jobnet']}", expand=False)
        for column in ("unit", "status", "try", "exit", "start", "end", "reason"):
            table.add_column(column)
        for u in data["units"]:
            name = "  " * u["depth"] + (u["path"].rsplit("/", 1)[-1] if u["depth"] else u["path"])
            code = "-" if u["exit_code"] is None else str(u["exit_code"])
            table.add_row(
                name,
                _status(u["status"], u["label"]),
                str(u["attempt"] or "-"),
                code if u["signal"] is None else f"s{u['signal']}",
                _when(u["started_at"]),
                _when(u["ended_at"]),
                u["reason"] or "",
            )
        return table
    tree = Tree(f"definitions version {data['definitions_version']}")
    groups: dict[str, Tree] = {}
    for j in data["jobnets"]:
        parent = tree
        parts = j["jobnet"].strip("/").split("/")
        for depth in range(1, len(parts)):
            key = "/" + "/".join(parts[:depth])
            if key not in groups:
                groups[key] = parent.add(Text(parts[depth - 1], style="bold"))
            parent = groups[key]
        line = Text(parts[-1] + "  ")
        latest = j["latest"]
        line.append_text(
            _status(latest["status"], f"run {latest['run']}: {latest['label']}")
            if latest
            else Text("never run", style="dim")
        )
        if j.get("suspended"):
            line.append("  SUSPENDED", style="bold magenta")
        elif j.get("next_run"):
            line.append(f"  next {_when(j['next_run'])}", style="dim")
        parent.add(line)
    if not data["runs"]:
        return tree
    active = Table(title="active runs")
    for column in ("run", "jobnet", "status"):
        active.add_column(column)
    for r in data["runs"]:
        active.add_row(str(r["run"]), r["jobnet"], _status(r["status"], r["label"]))
    return Group(tree, active)


def stamp() -> Text:
    return Text(time.strftime("%H:%M:%S") + "  Ctrl-C ends", style="dim")


def watch(args: argparse.Namespace, fetch: Callable[[], dict[str, Any]]) -> int:
    console = Console()
    left = args.count
    try:
        if not console.is_terminal:
            while left is None or left > 0:
                console.print(Group(stamp(), render(fetch())))
                left = None if left is None else left - 1
                if left != 0:
                    time.sleep(args.interval)
            return 0
        with Live(Group(stamp(), render(fetch())), console=console, auto_refresh=False) as live:
            while left is None or left > 1:
                time.sleep(args.interval)
                live.update(Group(stamp(), render(fetch())), refresh=True)
                left = None if left is None else left - 1
    except KeyboardInterrupt:
        pass
    return 0
