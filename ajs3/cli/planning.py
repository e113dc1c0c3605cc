"""Operator commands on the plan and on statuses: `suspend`, `resume`, the plan changes
of `plan` (--skip, --move, --add) and `chgstat` (each one request to the daemon)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from ajs3.cli.arguments import paths_of
from ajs3.cli.output import emit
from ajs3.cli.transport import request
from ajs3.definitions.units import DefinitionSet, Unit
from ajs3.errors import AjsError, Code
from ajs3.schedule import PlannedRun
from ajs3.tz import zone


def stamp(ts: float | None) -> str:
    """A journal time as people read it: local time with its offset."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).astimezone().isoformat(timespec="seconds")


def cmd_suspend(args: argparse.Namespace) -> int:
    result = request(paths_of(args), "suspend", jobnet=args.jobnet, reason=args.reason)
    already = "" if result["changed"] else " already"
    emit(
        args,
        result,
        f"{args.jobnet}:{already} suspended since {stamp(result['since'])} by {result['user']}",
    )
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    result = request(paths_of(args), "resume", jobnet=args.jobnet, reason=args.reason)
    if not result["changed"]:
        emit(args, result, f"{args.jobnet}: was not suspended")
        return 0
    lines = [f"{args.jobnet}: resumed (suspended since {stamp(result['since'])})"]
    lines += [f"  catch-up: {d['reason']}" for d in result["catch_up"]]
    lines += [f"  registered run {r}" for r in result["runs"]]
    emit(args, result, "\n".join(lines))
    return 0


def cmd_plan_change(args: argparse.Namespace) -> int:
    """`ajs3 plan JOBNET --skip WHEN | --move WHEN --to WHEN | --add WHEN`."""
    if not args.jobnet or args.from_:
        raise AjsError(
            "a plan change names one root jobnet and takes no --from",
            code=Code.BAD_ARGUMENT,
            hint="`ajs3 plan JOBNET --skip WHEN`, `--move WHEN --to WHEN` or `--add WHEN`",
        )
    action, when = next(
        (a, w) for a, w in (("skip", args.skip), ("move", args.move), ("add", args.add)) if w
    )
    result = request(
        paths_of(args),
        "plan_change",
        jobnet=args.jobnet,
        action=action,
        when=when,
        to=args.to,
        reason=args.reason,
    )
    emit(args, result, f"{args.jobnet}: {result['note']}")
    return 0


def planned(
    args: argparse.Namespace,
    defs: DefinitionSet,
    runs: list[PlannedRun],
    start: datetime,
    end: datetime,
    names: list[str] | None,
) -> list[dict[str, Any]]:
    """A forecast of the logical host's own plan: its scheduled runs marked where a plan
    change or a suspension touches them, with the extra runs added in the period."""
    from ajs3.engine import planchanges, suspend
    from ajs3.journal.store import Journal

    journal = Journal.open(paths_of(args).need_datadir(), readonly=True)
    try:
        plan = planchanges.load(journal)
        held = suspend.every(journal)
    finally:
        journal.close()
    moved = {(c.jobnet, round(c.due, 3)): c for c in plan.changes if c.due is not None}
    rows: list[tuple[float, dict[str, Any]]] = []
    for r in runs:
        row: dict[str, Any] = {"jobnet": r.jobnet, "start": r.start}
        c = moved.get((r.jobnet, round(r.due, 3)))
        unit = defs.jobnets.get(r.jobnet)
        if c is not None:
            row["change"] = (
                f"skipped by {c.user}"
                if c.at is None
                else f"moved to {planchanges.show_time(c.at, unit)} by {c.user}"
            ) + (f": {c.reason}" if c.reason else "")
        elif r.jobnet in held and r.due > held[r.jobnet].since:
            row["change"] = f"suspended by {held[r.jobnet].user}"
        rows.append((r.due, row))
    for c in plan.changes:
        unit = defs.jobnets.get(c.jobnet)
        if c.at is None or unit is None or (names is not None and c.jobnet not in names):
            continue
        if not _bound(start, unit) <= c.at < _bound(end, unit):
            continue
        origin = (
            f"moved from {planchanges.show_time(c.due, unit)}" if c.due is not None else "added"
        )
        row = {
            "jobnet": c.jobnet,
            "start": planchanges.show_time(c.at, unit),
            "change": f"{origin} by {c.user}" + (f": {c.reason}" if c.reason else ""),
        }
        rows.append((c.at, row))
    rows.sort(key=lambda x: (x[0], x[1]["jobnet"]))
    return [row for _, row in rows]


def add_waits(defs: DefinitionSet, runs: list[PlannedRun], rows: list[dict[str, Any]]) -> None:
    """Each planned run of a jobnet with connectors says, under ``waits``, which
    planned run of each target it would wait for (docs/definitions.md, Jobnet
    connectors); a row of a plan change (no due time of its own here) says nothing."""
    from ajs3.schedule.connect import planned_waits

    due = {(r.jobnet, r.start): r for r in runs}
    for row in rows:
        run = due.get((row["jobnet"], row["start"]))
        if run is None:
            continue
        show = partial(_wall, zone(run.time_zone))
        waits = planned_waits(defs, run.jobnet, run.due)
        if waits:
            row["waits"] = [
                {
                    "connector": w.connector,
                    "target": w.target,
                    "match": w.match.value,
                    "target_start": None if w.target_due is None else show(w.target_due),
                    "text": w.describe(show),
                }
                for w in waits
            ]


def _wall(tz: ZoneInfo, stamp: float) -> str:
    return datetime.fromtimestamp(stamp, tz).isoformat()


def _bound(moment: datetime, unit: Unit) -> float:
    if moment.tzinfo is None:
        name = unit.schedule.time_zone if unit.schedule is not None else "UTC"
        moment = moment.replace(tzinfo=zone(name))
    return moment.timestamp()


def cmd_chgstat(args: argparse.Namespace) -> int:
    if not args.reason.strip():
        raise AjsError("chgstat needs a reason", code=Code.BAD_ARGUMENT, hint="give --reason TEXT")
    result = request(
        paths_of(args),
        "chgstat",
        run=args.run,
        unit=args.unit,
        status=args.status,
        reason=args.reason,
    )
    emit(args, result, f"{result['unit']} (run {result['run']}): {result['status']}")
    return 0
