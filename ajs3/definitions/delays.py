"""``delay:`` of a job or jobnet: delay monitoring (JP1's start delay and end delay).

    delay:
      start_by: "06:00"   # a clock time on the run's scheduling day (up to 47:59)
      start_by: "+30m"    # or: this long after the run's scheduled start
      longest: 2h         # the longest run time (seconds or a duration)

Crossing one raises a notification and marks the unit in ``ajs3 show``; the run goes
on (``timeout`` is what kills). See docs/definitions.md.
"""

from __future__ import annotations

from yaml.nodes import Node, ScalarNode

from ajs3.definitions import schema
from ajs3.definitions.nodes import STR, Ctx, suggest
from ajs3.definitions.schedules import _duration, read_time
from ajs3.definitions.units import Delay
from ajs3.errors import Code


def read_delay(ctx: Ctx, node: Node, label: str) -> Delay | None:
    fields = ctx.mapping(node, f"'delay' of {label}")
    if fields is None:
        return None
    for key, (key_node, _) in fields.items():
        if key not in schema.DELAY_KEYS:
            ctx.report(
                Code.UNKNOWN_KEY,
                key_node,
                f"unknown key {key!r} in 'delay' of {label}{suggest(key, schema.DELAY_KEYS)}",
            )
    if not fields.keys() & set(schema.DELAY_KEYS):
        ctx.report(
            Code.MISSING_KEY,
            node,
            f"'delay' of {label} has neither 'start_by' nor 'longest'; give one of them",
        )
        return None
    out: dict[str, float | int | None] = {}
    if "start_by" in fields:
        start = fields["start_by"][1]
        what = f"'delay.start_by' of {label}"
        text = str(start.value).strip() if isinstance(start, ScalarNode) else ""
        if isinstance(start, ScalarNode) and start.tag == STR and text.startswith("+"):
            relative = ScalarNode(STR, text[1:], start.start_mark, start.end_mark)
            out["start_by_after"] = after = _duration(ctx, relative, what)
            if after is None:
                return None
        else:
            out["start_by_clock"] = clock = read_time(ctx, start, what, schema.AT_MAX_MINUTES)
            if clock is None:
                return None
    if "longest" in fields:
        out["longest"] = longest = _duration(
            ctx, fields["longest"][1], f"'delay.longest' of {label}"
        )
        if longest is None:
            return None
    return Delay(**out)  # type: ignore[arg-type]
