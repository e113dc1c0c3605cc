"""Operator commands on a running logical host: `entry`, `hold`, `release`, `kill`,
`rerun` (each one request to the daemon)."""

from __future__ import annotations

import argparse

from ajs3.cli.arguments import parse_time, paths_of
from ajs3.cli.exits import failed
from ajs3.cli.output import emit
from ajs3.cli.transport import request
from ajs3.engine import runvars
from ajs3.errors import AjsError, Code


def cmd_entry(args: argparse.Namespace) -> int:
    at = parse_time(args.at, "--at").timestamp() if args.at else None
    paths = paths_of(args)
    runvars.parse_assignments(args.vars or [], "given with --var")  # AJS3-E407 before sending
    result = request(
        paths, "entry", jobnet=args.jobnet, at=at, hold=args.hold, key=args.key, vars=args.vars
    )
    run = int(result["run"])
    if not args.wait:
        again = " (already registered with this key)" if result.get("repeated") else ""
        emit(args, result, f"{args.jobnet}: registered as run {run}{again}")
        return 0
    from ajs3.service import views

    final = views.wait_run(paths.need_datadir(), run, args.timeout)
    emit(args, final, f"{args.jobnet}: run {run} {final['label']}")
    if final["abnormal"]:
        return failed(Code.ENDED_ABNORMALLY, f"run {run} of {args.jobnet} ended: {final['label']}")
    return 0


def cmd_hold(args: argparse.Namespace) -> int:
    result = request(paths_of(args), "hold", run=args.run, unit=args.unit)
    emit(args, result, f"{result['unit']}: held")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    result = request(paths_of(args), "release", run=args.run, unit=args.unit, **{"as": args.as_})
    emit(args, result, f"{result['unit']}: {result['status']}")
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    """Kill a jobnet run or one unit; a one-level path is a root jobnet unless the daemon
    knows no such jobnet, then it is tried as a unit."""
    paths = paths_of(args)
    target = args.target
    is_root = "/" not in target.strip("/")
    try:
        result = request(
            paths,
            "kill",
            run=args.run,
            unit=None if is_root else target,
            jobnet=target if is_root else None,
        )
    except AjsError as exc:
        if exc.code is not Code.UNKNOWN_UNIT or not is_root:
            raise
        result = request(paths, "kill", run=args.run, unit=target, jobnet=None)
    emit(args, result, f"{target}: kill requested (run {result['run']})")
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    mode, unit = "failed", None
    if args.from_:
        mode, unit = "from", args.from_
    elif args.only:
        mode, unit = "only", args.only
    result = request(
        paths_of(args), "rerun", run=args.run, jobnet=args.jobnet, mode=mode, unit=unit
    )
    emit(args, result, f"{args.jobnet}: run {result['run']} rerun ({mode})")
    return 0
