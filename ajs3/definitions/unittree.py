"""One unit entry of a definition file: its name, type and keys, and its children.

The keys every unit has are read here, and those of judges and jobnets; a job's own
keys are :mod:`ajs3.definitions.jobs`'s, a root jobnet's schedule
:mod:`ajs3.definitions.schedules`'s. A jobnet's children are checked together as a
graph (:mod:`ajs3.definitions.graph`).
"""

from __future__ import annotations

import difflib

from yaml.nodes import Node

from ajs3.definitions import schema
from ajs3.definitions.connectors import read_connector
from ajs3.definitions.delays import read_delay
from ajs3.definitions.events import read_filewatch, read_start_condition
from ajs3.definitions.graph import Draft, check_siblings
from ajs3.definitions.hosts import inherit_host, read_host
from ajs3.definitions.jobs import read_job
from ajs3.definitions.nodes import KIND_LABEL, Ctx, Getter, line_of, short, suggest
from ajs3.definitions.retention import read_retention
from ajs3.definitions.schedules import read_schedule
from ajs3.definitions.units import Condition, Unit
from ajs3.errors import Code
from ajs3.model import Compare, UnitKind


def _join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


def read_unit(ctx: Ctx, node: Node, parent: str, depth: int, *, root: bool) -> Draft | None:
    """One entry of 'jobnets' (``root``) or of a jobnet's 'units', with its children."""
    where_kind = "jobnet" if root else "unit"
    fields = ctx.mapping(node, f"each entry of '{'jobnets' if root else 'units'}'")
    if fields is None:
        return None
    line = line_of(node)
    # Keys a misspelt key probably meant: their "missing key" problems would only
    # repeat the "unknown key ... did you mean" one, so they are not reported.
    typos = {
        match
        for key in fields
        if key not in schema.ALL_UNIT_KEYS
        for match in difflib.get_close_matches(key, sorted(schema.ALL_UNIT_KEYS), n=1)
    }

    name: str | None = None
    name_line = line
    if "name" in fields:
        key_node, value_node = fields["name"]
        name_line = line_of(value_node)
        name = ctx.text(value_node, f"the name of the {where_kind} at line {line}")
        if name is not None and not schema.NAME_RE.match(name):
            ctx.report(
                Code.BAD_NAME,
                value_node,
                f"unit name {short(value_node)!r} is not valid; use 1 to 64 letters, digits, "
                "'_', '.' or '-', not starting with '.' or '-'",
            )
            name = None
    elif "name" not in typos:
        ctx.report(
            Code.MISSING_KEY, node, f"the {where_kind} at line {line} has no 'name'; add one"
        )

    kind = UnitKind.JOBNET if root else UnitKind.JOB
    if "type" in fields:
        value_node = fields["type"][1]
        text = ctx.text(value_node, "'type'")
        allowed = ("jobnet",) if root else schema.UNIT_TYPES
        if text is not None and text not in allowed:
            extra = "; a root jobnet is always a jobnet" if root else ""
            ctx.report(
                Code.BAD_VALUE,
                value_node,
                f"unknown type {text!r}{extra}{suggest(text, allowed)}",
            )
        if text is None or text not in allowed:
            # Keys can not be checked without a type; keep the name for the siblings.
            placeholder = Unit(name=name or "", path=_join(parent, name or "?"), kind=kind)
            return Draft(name, name_line, placeholder, [])
        kind = UnitKind(text)

    kind_label = KIND_LABEL[kind]
    label = f"{kind_label} {name!r}" if name else f"the {kind_label} at line {line}"
    path = _join(parent, name or f"#{line}")
    allowed_keys = schema.ROOT_KEYS if root else schema.KEYS_BY_KIND[kind]
    for key, (key_node, _) in fields.items():
        if key in allowed_keys:
            continue
        if key == "schedule":
            ctx.report(
                Code.UNKNOWN_KEY,
                key_node,
                f"key 'schedule' is not allowed in {label}; only a root jobnet has a schedule, "
                "a nested jobnet runs when its parent does",
            )
            continue
        if key == "start_condition":
            ctx.report(
                Code.BAD_START_CONDITION,
                key_node,
                f"{label} has a start condition, but only a root jobnet may have one "
                "(a nested jobnet runs when its parent does); move it to the root jobnet",
            )
            continue
        if key in schema.ALL_UNIT_KEYS:
            owners = [k.value for k, keys in schema.KEYS_BY_KIND.items() if key in keys]
            reason = (
                "a root jobnet has no siblings"
                if root and key in ("after", "recovery")
                else f"only type {' or '.join(owners)} has it"
            )
            ctx.report(
                Code.UNKNOWN_KEY, key_node, f"key {key!r} is not allowed in {label}; {reason}"
            )
        else:
            ctx.report(
                Code.UNKNOWN_KEY,
                key_node,
                f"unknown key {key!r} in {label}{suggest(key, allowed_keys)}",
            )

    def value(key: str) -> Node | None:
        pair = fields.get(key)
        return None if pair is None or key not in allowed_keys else pair[1]

    common: dict[str, object] = {}
    description = value("description")
    if description is not None:
        common["description"] = ctx.text(description, f"'description' of {label}", allow_empty=True)
    for flag in ("hold", "recovery"):
        flag_node = value(flag)
        if flag_node is not None:
            common[flag] = ctx.boolean(flag_node, f"'{flag}' of {label}")

    after: list[tuple[str, int]] = []
    listed: set[str] = set()
    after_node = value("after")
    if after_node is not None:
        items = ctx.sequence(after_node, f"'after' of {label}")
        for item in items or []:
            sibling = ctx.text(item, f"an entry of 'after' of {label}")
            if sibling is None:
                continue
            if sibling in listed:
                ctx.report(
                    Code.BAD_VALUE,
                    item,
                    f"{sibling!r} is listed twice in 'after' of {label}; keep one",
                )
                continue
            listed.add(sibling)
            after.append((sibling, line_of(item)))
    if common.get("recovery") is True and not after and "after" not in typos:
        ctx.report(
            Code.BAD_VALUE,
            fields["recovery"][1],
            f"{label} is a recovery unit but has no predecessor; "
            "list in 'after' the units whose abnormal end it handles",
        )

    values = {k: v for k, v in common.items() if v is not None}
    if kind is UnitKind.JOB:
        values.update(read_job(ctx, fields, value, label, line, typos))
    elif kind is UnitKind.JUDGE:
        if "after" in typos:
            after_node = None
        values.update(_judge(ctx, value, label, line, after, after_node, typos))
    elif kind is UnitKind.FILEWATCH:
        values.update(read_filewatch(ctx, value, label, line, typos))
    elif kind is UnitKind.OR:
        if not after and "after" not in typos:
            ctx.report(
                Code.BAD_VALUE,
                after_node if after_node is not None else line,
                f"{label} has no predecessors; list in 'after' the units it waits for",
            )
    elif kind is UnitKind.CONNECTOR:
        values.update(read_connector(ctx, value, label, line, typos))
    else:
        values.update(_jobnet(ctx, value, label, line, path, depth, typos))
    calendar_ref: tuple[str, int] | None = None
    schedule_node = value("schedule")
    if schedule_node is not None:
        parsed = read_schedule(ctx, schedule_node, label)
        if parsed is not None:
            values["schedule"], calendar_ref = parsed
    values.update(read_retention(ctx, value, label))
    condition_node = value("start_condition")
    if condition_node is not None:
        values["start_condition"] = read_start_condition(ctx, condition_node, label)

    delay_node = value("delay")
    if delay_node is not None:
        values["delay"] = read_delay(ctx, delay_node, label)

    values.update(read_host(ctx, value, label))
    unit = Unit(
        name=name or "",
        path=path,
        kind=kind,
        source=f"{ctx.file}:{line}",
        after=tuple(a for a, _ in after),
        **values,  # type: ignore[arg-type]
    )
    if unit.host is not None and unit.units:
        unit = inherit_host(unit)
    return Draft(name, name_line, unit, after, calendar_ref)


def _judge(
    ctx: Ctx,
    value: Getter,
    label: str,
    line: int,
    after: list[tuple[str, int]],
    after_node: Node | None,
    typos: set[str],
) -> dict[str, object]:
    node = value("condition")
    if node is None:
        if "condition" in typos:
            return {}
        ctx.report(
            Code.MISSING_KEY,
            line,
            f"{label} has no 'condition'; add e.g. condition: {{op: eq, value: 0}}",
        )
        return {}
    what = f"'condition' of {label}"
    fields = ctx.mapping(node, what)
    if fields is None:
        return {}
    if "op" not in fields:
        ctx.report(Code.MISSING_KEY, node, f"{what} has no 'op'; add one of {_ops()}")
        return {}
    op_node = fields["op"][1]
    op_text = ctx.text(op_node, f"'op' of {what}")
    if op_text is None:
        return {}
    choices = [c.value for c in Compare]
    if op_text not in choices:
        ctx.report(
            Code.BAD_VALUE,
            op_node,
            f"unknown 'op' {op_text!r} in {what}{suggest(op_text, choices)}",
        )
        return {}
    op = Compare(op_text)
    needed = schema.CONDITION_KEYS[op]
    for key, (key_node, _) in fields.items():
        if key != "op" and key not in needed:
            ctx.report(
                Code.UNKNOWN_KEY,
                key_node,
                f"key {key!r} is not used by op {op.value!r} in {what}; "
                f"it takes {', '.join(needed)}",
            )
    got: dict[str, int | str | None] = {}
    for key in needed:
        if key not in fields:
            ctx.report(Code.MISSING_KEY, node, f"{what} with op {op.value!r} needs {key!r}")
            got[key] = None
        elif key == "path":
            got[key] = ctx.text(fields[key][1], f"'path' of {what}")
        else:
            got[key] = ctx.integer(
                fields[key][1], f"{key!r} of {what}", -schema.INT_TEXT_MAX, schema.INT_TEXT_MAX
            )
    low, high = got.get("low"), got.get("high")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        ctx.report(
            Code.BAD_VALUE,
            fields["high"][1],
            f"{what} has 'low' {low} above 'high' {high}; swap them",
        )
    if op in schema.EXIT_CODE_OPS and len(after) != 1 and "after" not in typos:
        ctx.report(
            Code.BAD_VALUE,
            after_node if after_node is not None else op_node,
            f"{label} judges an exit code, so it needs exactly one predecessor in 'after' "
            f"(it has {len(after)})",
        )
    if any(v is None for v in got.values()):
        return {}
    value_ = got.get("value")
    path = got.get("path")
    return {
        "condition": Condition(
            op=op,
            value=value_ if isinstance(value_, int) else None,
            low=low if isinstance(low, int) else None,
            high=high if isinstance(high, int) else None,
            path=path if isinstance(path, str) else None,
        )
    }


def _ops() -> str:
    return ", ".join(c.value for c in Compare)


def _jobnet(
    ctx: Ctx, value: Getter, label: str, line: int, path: str, depth: int, typos: set[str]
) -> dict[str, object]:
    out: dict[str, object] = {}
    concurrency = value("concurrency")
    if concurrency is not None:
        out["concurrency"] = ctx.integer(
            concurrency, f"'concurrency' of {label}", 1, schema.CONCURRENCY_MAX
        )
    units_node = value("units")
    if units_node is None:
        if "units" in typos:
            return out
        ctx.report(Code.MISSING_KEY, line, f"{label} has no 'units'; a jobnet needs at least one")
        return out
    items = ctx.sequence(units_node, f"'units' of {label}")
    if items is None:
        return out
    if not items:
        ctx.report(
            Code.MISSING_KEY,
            units_node,
            f"'units' of {label} is empty; a jobnet needs at least one",
        )
        return out
    if depth > schema.MAX_DEPTH:
        ctx.report(
            Code.INPUT_LIMIT,
            line,
            f"{label} is nested {depth} jobnets deep; at most {schema.MAX_DEPTH} are allowed",
        )
        return out
    drafts = [d for d in (read_unit(ctx, item, path, depth + 1, root=False) for item in items) if d]
    check_siblings(ctx, drafts, label)
    out["units"] = tuple(d.unit for d in drafts)
    return {k: v for k, v in out.items() if v is not None}
