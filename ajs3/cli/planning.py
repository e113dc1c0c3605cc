"""Operator commands on the plan and on statuses: `suspend`, `resume`, the plan changes
of `plan` (--skip, --move, --add) and `chgstat` (each one request to the daemon)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from ajs3.cli.arguments import paths_of
from ajs3.cli.output import emit
from ajs3.cli.transport import request


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
