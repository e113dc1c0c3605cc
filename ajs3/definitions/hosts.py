"""``host:`` of a job or jobnet: the execution host (or host group) it runs on.

The name is read here and inherited down a jobnet; whether the settings define it is
checked when the definitions are applied (:func:`check_hosts`, AJS3-E150), because the
settings belong to the logical host, not to the file (docs/exechosts.md).
"""

from __future__ import annotations

from dataclasses import replace

from yaml.nodes import Node

from ajs3.definitions.nodes import Ctx, Getter
from ajs3.definitions.units import DefinitionSet, Unit
from ajs3.errors import Code, Problem
from ajs3.exechost_config import NAME_RE, ExecHosts
from ajs3.model import UnitKind


def read_host(ctx: Ctx, value: Getter, label: str) -> dict[str, object]:
    node: Node | None = value("host")
    if node is None:
        return {}
    text = ctx.text(node, f"'host' of {label}")
    if text is None:
        return {}
    if not NAME_RE.match(text):
        ctx.report(
            Code.BAD_VALUE,
            node,
            f"'host' of {label} must name an execution host or host group "
            f"(letters, digits, _ . -), not {text!r}",
        )
        return {}
    return {"host": text}


def inherit_host(unit: Unit) -> Unit:
    """``unit`` with its host given to every unit below it that names none."""
    children = []
    for child in unit.units:
        if child.host is None:
            child = replace(child, host=unit.host)
        if child.units:
            child = inherit_host(child)
        children.append(child)
    return replace(unit, units=tuple(children))


def check_hosts(defs: DefinitionSet, exechosts: ExecHosts) -> list[Problem]:
    """Every job whose ``host:`` the settings do not define (AJS3-E150, file:line)."""
    known = set(exechosts.names())
    problems: list[Problem] = []
    for root in defs.jobnets.values():
        for unit in root.walk():
            if unit.kind is not UnitKind.JOB or unit.host is None or unit.host in known:
                continue
            file, _, line = unit.source.rpartition(":")
            names = ", ".join(sorted(known)) or "none are defined"
            problems.append(
                Problem(
                    Code.UNKNOWN_EXEC_HOST,
                    file or unit.source or unit.path,
                    int(line) if line.isdigit() else 0,
                    f"{unit.path} runs on host {unit.host!r}, which is no execution host "
                    f"or host group of the logical host's ajs3.yaml (known: {names}); "
                    "add it under execution_hosts or host_groups, or fix the name",
                )
            )
    return problems
