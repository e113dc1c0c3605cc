"""`ajs3 purge [--dry-run]`: the retention purge on demand (docs/retention.md)."""

from __future__ import annotations

import argparse
from typing import Any

from ajs3.cli.arguments import paths_of
from ajs3.cli.bars import bars
from ajs3.cli.output import emit
from ajs3.cli.transport import request
from ajs3.service.purgewait import wait_round


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} bytes"


def _counts(c: dict[str, Any]) -> str:
    text = (
        f"{c['jobnet_runs']} jobnet runs, {c['unit_runs']} unit runs, {c['events']} events, "
        f"{c['job_dirs']} job directories, {_size(int(c['bytes']))}"
    )
    if c.get("notifications"):
        text += f", {c['notifications']} delivered notifications"
    return text


def _keep(keep: dict[str, Any]) -> str:
    parts = [f"{k} {v:g}" for k, v in keep.items() if v is not None]
    return ", ".join(parts) or "everything"


def cmd_purge(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    if args.dry_run:
        status = request(paths, "purge_status", plan=True)
        plan = status["plan"]
        lines = [f"would remove {_counts(plan['total'])}"]
        lines += [
            f"  {name}: {info['runs']} runs (keep {_keep(info['keep'])})"
            for name, info in plan["jobnets"].items()
        ]
        if plan["marked"]:
            lines.append(f"  {plan['marked']} runs a purge cut short are finished first")
        emit(args, plan, "\n".join(lines))
        return 0
    wanted = int(request(paths, "purge")["round"])
    with bars(args) as progress:
        status = wait_round(lambda: request(paths, "purge_status"), wanted, args.timeout, progress)
    done = status["rounds"].get(str(wanted))
    result = {"round": wanted, "removed": done}
    text = f"removed {_counts(done)}" if done else f"purge round {wanted} done"
    emit(args, result, text)
    return 0
