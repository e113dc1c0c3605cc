"""Commands that read and change nothing: `show`, `log` and `plan`."""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import sys
from typing import Any

from ajs3 import datadir as dd
from ajs3.cli.arguments import definitions_for, parse_time, paths_of
from ajs3.cli.output import emit
from ajs3.cli.transport import request
from ajs3.errors import AjsError, Code
from ajs3.service.paths import Paths


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
    if args.events:
        changes = None
        if not _journal_readable(paths):
            changes = _ask(paths, "events", run=args.run, unit=args.events)
        if changes is None:
            changes = views.events(paths.need_datadir(), args.run, args.events)
        emit(args, changes, views.render_events(changes))
        return 0
    if args.watch:
        from ajs3.cli.watch import watch

        return watch(args, lambda: _shown(args, paths))
    shown = _shown(args, paths)
    emit(args, shown, views.render_show(shown))
    return 0


def _shown(args: argparse.Namespace, paths: Paths) -> dict[str, Any]:
    """What `ajs3 show` shows: read from the journal, or asked of the daemon."""
    from ajs3.service import views

    shown = None
    if not _journal_readable(paths):
        shown = _ask(paths, "show", target=args.target, run=args.run, all=args.all)
    if shown is None:
        shown = views.show(paths.need_datadir(), args.target, args.run, args.all)
    return shown


def cmd_log(args: argparse.Namespace) -> int:
    from ajs3.service import joboutput

    paths = paths_of(args)
    if not _journal_readable(paths):
        data = _ask(paths, "log", target=args.run_id, run=args.run, stderr=args.stderr)
        if data is not None:
            sys.stdout.buffer.write(base64.b64decode(data["data"]))
            sys.stdout.buffer.flush()
            if data["truncated"]:
                print(
                    f"ajs3: {data['path']} has {data['size']} bytes: only its last "
                    f"{data['size'] - data['offset']} are shown",
                    file=sys.stderr,
                )
            return 0
    path = joboutput.log_path(paths.need_datadir(), args.run_id, args.run, args.stderr)
    try:
        with open(path, "rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer)
    except FileNotFoundError:
        pass  # nothing written on that stream (yet): no file, no output
    return 0


def _journal_readable(paths: Paths) -> bool:
    """`show` and `log` read the journal and job files themselves when this user may
    read the journal (root, the daemon's user: their output is the files' as it always
    was); anyone else (a viewer) asks the running daemon."""
    return paths.datadir is not None and os.access(dd.journal(paths.datadir), os.R_OK)


def _ask(paths: Paths, op: str, **fields: Any) -> dict[str, Any] | None:
    """The daemon's answer to read request ``op``, or None when no daemon runs (the
    files are then read directly, and refused as they always were)."""
    try:
        return request(paths, op, **fields)
    except AjsError as exc:
        if exc.code is not Code.NOT_RUNNING:
            raise
        return None


def cmd_plan(args: argparse.Namespace) -> int:
    from ajs3.cli import planning
    from ajs3.schedule import forecast

    if args.skip or args.move or args.add:
        return planning.cmd_plan_change(args)
    if not args.from_ or not args.to or args.reason:
        raise AjsError(
            "a forecast needs --from and --to (and takes no --reason)",
            code=Code.BAD_ARGUMENT,
            hint="`ajs3 plan [JOBNET] --from TIME --to TIME`, or change one run with "
            "--skip WHEN, --move WHEN --to WHEN or --add WHEN",
        )
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
    data: dict[str, list[dict[str, Any]]] = {
        "runs": [{"jobnet": r.jobnet, "start": r.start} for r in runs]
    }
    if not args.files and args.definitions is None:  # the logical host's own plan
        data["runs"] = planning.planned(args, defs, runs, start, end, names)
    planning.add_waits(defs, runs, data["runs"])
    text = "\n".join(
        f"{r['start']}  {r['jobnet']}"
        + (f"  ({r['change']})" if r.get("change") else "")
        + "".join(f"\n    {w['text']}" for w in r.get("waits", []))
        for r in data["runs"]
    )
    text = text or "no runs in that period"
    emit(args, data, text)
    return 0
