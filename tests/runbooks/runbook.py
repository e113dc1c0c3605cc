"""Read the command blocks of docs/runbooks/*.md and run them on the namespace lab.

A runbook marks each shell block with an HTML comment right above it (invisible
when the page is rendered):

    <!-- lab: vars -->                 NAME=value lines for the site; the tests put
                                       the lab's values in, and prepend them to
                                       every later block of the same page
    <!-- lab: ID on=NODE -->           run on NODE: node1.., `all` (every node),
                                       `@lh1` (the node that runs lh1 now);
                                       `rc=N` when the block is meant to fail
    <!-- lab: skip: REASON -->         not run by the tests, and why

Every ```sh block of a runbook must carry one of these (test_runbook_blocks_marked).
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "docs" / "runbooks"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MARK = re.compile(
    r"<!--\s*lab:\s*(?P<spec>.*?)\s*-->\s*\n```(?P<lang>\S*)[^\n]*\n"
    r"(?P<body>.*?)^```",
    re.S | re.M,
)
FENCE = re.compile(r"^```(\S*)", re.M)


@dataclass
class Block:
    page: str
    line: int
    kind: str  # run | vars | skip
    id: str = ""
    on: str = ""
    rc: int = 0
    reason: str = ""
    body: str = ""


def parse(path: Path) -> list[Block]:
    text = path.read_text()
    blocks = []
    for m in MARK.finditer(text):
        spec = m.group("spec")
        line = text.count("\n", 0, m.start("body")) + 1
        b = Block(path.name, line, "run", body=m.group("body"))
        if spec == "vars":
            b.kind = "vars"
        elif spec.startswith("skip:"):
            b.kind, b.reason = "skip", spec[5:].strip()
        else:
            words = spec.split()
            b.id = words[0]
            for w in words[1:]:
                key, _, value = w.partition("=")
                if key == "on":
                    b.on = value
                elif key == "rc":
                    b.rc = int(value)
                else:
                    raise ValueError(f"{path.name}:{line}: unknown lab option {w!r}")
            if not b.on:
                raise ValueError(f"{path.name}:{line}: block {b.id} says not where to run")
        blocks.append(b)
    return blocks


def unmarked_shell_blocks(path: Path) -> list[int]:
    """Lines of ```sh blocks that carry no lab mark."""
    text = path.read_text()
    marked = {m.start("lang") - 3 for m in MARK.finditer(text)}
    out, inside = [], False
    for m in FENCE.finditer(text):
        if inside:
            inside = False
            continue
        inside = True
        if m.group(1) in ("sh", "bash", "console", "shell") and m.start() not in marked:
            out.append(text.count("\n", 0, m.start()) + 1)
    return out


@dataclass
class Runbook:
    """One page, run against a Lab; `values` replace the page's vars."""

    lab: Any
    page: str
    values: dict[str, str] = field(default_factory=dict)
    ran: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.blocks = parse(RUNBOOKS / self.page)
        self.vars = ""
        for b in self.blocks:
            if b.kind != "vars":
                continue
            lines = []
            for raw in b.body.splitlines():
                name = raw.split("=", 1)[0].strip()
                if "=" in raw and name in self.values:
                    lines.append(f"{name}={self.values[name]}")
                else:
                    lines.append(raw)
            self.vars += "\n".join(lines) + "\n"
        missing = set(self.values) - set(re.findall(r"^(\w+)=", self.vars, re.M))
        assert not missing, f"{self.page}: no vars {sorted(missing)} to set"

    def block(self, id: str) -> Block:
        found = [b for b in self.blocks if b.id == id]
        assert found, f"{self.page}: no block {id!r}"
        return found[0]

    def nodes(self, b: Block) -> list[str]:
        if b.on == "all":
            return list(self.lab.running_nodes())
        if b.on.startswith("@"):
            return [self.locate(b.on[1:])]
        return [b.on]

    def locate(self, group: str, timeout: float = 60) -> str:
        """Where group runs, as the nodes see it (a node that is just rebooting after
        being fenced knows nothing yet: ask the others)."""
        deadline = time.monotonic() + timeout
        while True:
            for node in self.lab.running_nodes():
                try:
                    where = self.lab.group_location(group, node)
                except Exception:  # not up yet, crm_mon timed out: ask the next one
                    continue
                if where:
                    return str(where)
            assert time.monotonic() < deadline, f"{group} is not running on one node"
            time.sleep(0.5)

    def run(self, id: str, on: str | None = None) -> str:
        """Run block id (on its node(s), or on `on`); check its exit code; return the
        output (of the last node)."""
        b = self.block(id)
        script = f"set -eo pipefail\nexport PATH={PATH}\n{self.vars}\n{b.body}"
        out = ""
        for node in [on] if on else self.nodes(b):
            proc: subprocess.CompletedProcess[str] = self.lab.exec(
                node, ["/bin/bash", "-c", script], timeout=300
            )
            out = proc.stdout + proc.stderr
            assert proc.returncode == b.rc, (
                f"{self.page}:{b.line} block {id} on {node}: exit {proc.returncode}, "
                f"the runbook says {b.rc}\n--- script\n{b.body}\n--- output\n{out}"
            )
        self.ran.add(id)
        return out

    def assert_all_run(self) -> None:
        todo = [
            f"{b.id} (line {b.line})"
            for b in self.blocks
            if b.kind == "run" and b.id not in self.ran
        ]
        assert not todo, f"{self.page}: blocks no test ran: {', '.join(todo)}"
