"""Commands that read and change nothing: `show`, `log` and `plan`."""

from __future__ import annotations

import argparse
import shutil
import sys

from ajs3.cli.arguments import definitions_for, parse_time, paths_of
from ajs3.cli.output import emit
from ajs3.cli.transport import request
from ajs3.errors import AjsError, Code


def cmd_show(args: argparse.Namespace) -> int:
    from ajs3.service import views

    paths = paths_of(args)
    if args.why:
        try:
            data = request(paths, "why", run=args.run, unit=args.why)
        except AjsError as exc:
            if exc.code is not Code.NOT_RUNNING:
                raise
            data = views.why_offline(paths.need_datadir(), args.run, args.why)
        emit(args, data, views.render_why(data))
        return 0
    data = views.show(paths.need_datadir(), args.target, args.run, args.all)
    emit(args, data, views.render_show(data))
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    from ajs3.service import views

    path = views.log_path(paths_of(args).need_datadir(), args.run_id, args.run, args.stderr)
    with open(path, "rb") as f:
        shutil.copyfileobj(f, sys.stdout.buffer)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from ajs3.schedule import forecast

    start, end = parse_time(args.from_, "--from"), parse_time(args.to, "--to")
    defs = definitions_for(args)
    names = None
    if args.jobnet:
        if args.jobnet not in defs.jobnets:
            known = ", ".join(sorted(defs.jobnets)) or "none defined"
            raise AjsError(
                f"no root jobnet {args.jobnet!r} (known: {known})",
                code=Code.UNKNOWN_JOBNET,
                hint="give a root jobnet path",
            )
        names = [args.jobnet]
    runs = forecast(defs, start, end, names)
    data = {"runs": [{"jobnet": r.jobnet, "start": r.start} for r in runs]}
    text = "\n".join(f"{r.start}  {r.jobnet}" for r in runs) or "no runs in that period"
    emit(args, data, text)
    return 0
