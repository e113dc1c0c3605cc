"""The retention keys of a definition: a root jobnet's ``keep`` and a job's
``output_limit`` (docs/retention.md)."""

from __future__ import annotations

from yaml.nodes import Node

from ajs3 import keep as kp
from ajs3.definitions.nodes import Ctx, Getter
from ajs3.errors import Code


def read_keep(ctx: Ctx, node: Node, label: str) -> kp.Keep | None:
    """``keep: {runs: N, days: D}``: runs 1..999, days above 0 (at least one of them)."""
    what = f"'keep' of {label}"
    fields = ctx.mapping(node, what)
    if fields is None:
        return None
    ok = True
    for key, (key_node, _) in fields.items():
        if key not in kp.KEEP_KEYS:
            ctx.report(
                Code.UNKNOWN_KEY, key_node, f"unknown key {key!r} in {what}; it takes runs, days"
            )
            ok = False
    if not any(k in fields for k in kp.KEEP_KEYS):
        ctx.report(
            Code.MISSING_KEY,
            node,
            f"{what} is empty; give runs (generations, 1 to {kp.RUNS_MAX}) and/or days",
        )
        return None
    runs = days = None
    if "runs" in fields:
        runs = ctx.integer(fields["runs"][1], f"'runs' of {what}", 1, kp.RUNS_MAX)
        ok = ok and runs is not None
    if "days" in fields:
        days = ctx.number(fields["days"][1], f"'days' of {what}", 0, kp.DAYS_MAX, low_open=True)
        ok = ok and days is not None
    return kp.Keep(runs=runs, days=days) if ok else None


def read_output_limit(ctx: Ctx, node: Node, label: str) -> int | None:
    """``output_limit: BYTES`` of a job."""
    return ctx.integer(node, f"'output_limit' of {label}", kp.OUTPUT_LIMIT_MIN, kp.OUTPUT_LIMIT_MAX)


def read_retention(ctx: Ctx, value: Getter, label: str) -> dict[str, object]:
    """The retention keys a unit has (its kind's keys were checked before)."""
    out: dict[str, object] = {}
    keep_node = value("keep")
    if keep_node is not None:
        keep = read_keep(ctx, keep_node, label)
        if keep is not None:
            out["keep"] = keep
    limit_node = value("output_limit")
    if limit_node is not None:
        limit = read_output_limit(ctx, limit_node, label)
        if limit is not None:
            out["output_limit"] = limit
    return out
