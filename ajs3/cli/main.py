"""The `ajs3` command line. It only parses, calls the library and prints; every
library error becomes a message and an exit code here, in one place."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from ajs3.cli.exits import EXIT_ERROR, failed, run
from ajs3.cli.output import emit, note
from ajs3.cli.parser import build_parser
from ajs3.errors import AjsError, Code
from ajs3.model import StartMode, StopJobs
from ajs3.service import lifecycle
from ajs3.service.paths import Paths, check_lhost, default_rundir


def paths_of(args: argparse.Namespace) -> Paths:
    lhost = check_lhost(args.lhost)
    rundir = args.rundir or default_rundir(lhost)
    datadir = Path(args.datadir).absolute() if args.datadir else None
    return lifecycle.with_datadir(Paths(lhost, Path(rundir), datadir))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(HANDLERS[args.command], args)


# -- service -----------------------------------------------------------------------


def cmd_service(args: argparse.Namespace) -> int:
    paths = paths_of(args)
    if args.action == "start":
        mode = StartMode(args.mode)
        if args.check:
            found = lifecycle.check(paths)
            emit(args, found, f"{paths.lhost}: already running (pid {found['pid']})"
                 if found["already_running"] else f"{paths.lhost}: could start")
            return 0
        if args.foreground:
            from ajs3.service.daemon import run_foreground

            return run_foreground(paths, mode, args.log_level, not args.quiet, args.ready_fd)
        result = lifecycle.start(paths, mode, args.timeout, args.log_level)
        text = (f"{paths.lhost}: already running" if result["already_running"]
                else f"{paths.lhost}: started ({mode.value} start, pid {result['pid']})")
        emit(args, result, text)
        return 0
    if args.action == "stop":
        result = lifecycle.stop(paths, StopJobs(args.jobs), args.timeout)
        emit(args, result, f"{paths.lhost}: stopped" if result["was_running"]
             else f"{paths.lhost}: was not running")
        return 0
    if args.action == "status":
        health = lifecycle.status(paths, args.depth)
        emit(args, health.to_dict(), health.summary)
        return health.code
    from ajs3.service import control

    result = control.request(paths.socket, {"op": "reload", "log_level": args.log_level})
    emit(args, result, f"{paths.lhost}: log level {result['log_level']}")
    return 0


# -- definitions and operations ---------------------------------------------------------


def cmd_define(args: argparse.Namespace) -> int:
    from ajs3.definitions.loader import load_dir, load_files

    paths = paths_of(args)
    if args.files:
        defs = load_files(args.files)
        sources = [str(f) for f in args.files]
    else:
        directory = paths.definitions_dir
        defs = load_dir(directory)
        sources = [str(directory)]
    summary = {"jobnets": sorted(defs.jobnets),
               "units": sum(len(u.walk()) for u in defs.jobnets.values())}
    if args.check:
        emit(args, {"valid": True, **summary},
             f"definitions valid: {len(defs.jobnets)} jobnet(s), {summary['units']} unit(s)")
        return 0
    from ajs3.service import apply

    version = apply.apply_definitions(paths, defs, sources)
    emit(args, {"version": version, **summary},
         f"definitions applied as version {version}: {len(defs.jobnets)} jobnet(s), "
         f"{summary['units']} unit(s)")
    return 0


def _request(args: argparse.Namespace, message: dict[str, Any]) -> dict[str, Any]:
    from ajs3.service import control

    return control.request(paths_of(args).socket, message)


def parse_time(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise AjsError(f"cannot read time {text!r}", code=Code.BAD_ARGUMENT,
                       hint="use ISO 8601, e.g. 2026-11-28T02:00+09:00") from exc
    return moment.timestamp()


def cmd_entry(args: argparse.Namespace) -> int:
    at = parse_time(args.at) if args.at else None
    result = _request(args, {"op": "entry", "jobnet": args.jobnet, "at": at, "hold": args.hold})
    run = int(result["run"])
    if not args.wait:
        emit(args, result, f"{args.jobnet}: registered as run {run}")
        return 0
    from ajs3.service import views

    paths = paths_of(args)
    final = views.wait_run(paths.need_datadir(), run, args.timeout)
    emit(args, final, f"{args.jobnet}: run {run} {final['label']}")
    if final["abnormal"]:
        return failed(Code.ENDED_ABNORMALLY,
                      f"run {run} of {args.jobnet} ended: {final['label']}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ajs3.service import views

    paths = paths_of(args)
    if args.why:
        try:
            data = _request(args, {"op": "why", "run": args.run, "unit": args.why})
        except AjsError as exc:
            if exc.code is not Code.NOT_RUNNING:
                raise
            data = views.why_offline(paths.need_datadir(), args.run, args.why)
        emit(args, data, views.render_why(data))
        return 0
    data = views.show(paths.need_datadir(), args.target, args.run, args.all)
    emit(args, data, views.render_show(data))
    return 0


def cmd_hold(args: argparse.Namespace) -> int:
    result = _request(args, {"op": "hold", "run": args.run, "unit": args.unit})
    emit(args, result, f"{result['unit']}: held")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    result = _request(args, {"op": "release", "run": args.run, "unit": args.unit,
                             "as": args.as_})
    emit(args, result, f"{result['unit']}: {result['status']}")
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    target = args.target
    is_root = "/" not in target.strip("/")
    message = {"op": "kill", "run": args.run, "unit": None if is_root else target,
               "jobnet": target if is_root else None}
    try:
        result = _request(args, message)
    except AjsError as exc:
        if exc.code is not Code.UNKNOWN_UNIT or not is_root:
            raise
        result = _request(args, {"op": "kill", "run": args.run, "unit": target, "jobnet": None})
    emit(args, result, f"{target}: kill requested (run {result['run']})")
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    mode, unit = "failed", None
    if args.from_:
        mode, unit = "from", args.from_
    elif args.only:
        mode, unit = "only", args.only
    result = _request(args, {"op": "rerun", "run": args.run, "jobnet": args.jobnet,
                             "mode": mode, "unit": unit})
    emit(args, result, f"{args.jobnet}: run {result['run']} rerun ({mode})")
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    from ajs3.service import views

    path = views.log_path(paths_of(args).need_datadir(), args.run_id, args.run, args.stderr)
    with open(path, "rb") as f:
        shutil.copyfileobj(f, sys.stdout.buffer)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the sample jobnet on a standalone logical host in a local directory."""
    datadir = args.dir.absolute()
    (datadir / "definitions").mkdir(parents=True, exist_ok=True)
    sample = resources.files("ajs3").joinpath("samples/demo.yaml").read_text()
    (datadir / "definitions" / "demo.yaml").write_text(sample)
    rundir = datadir / "run"
    base = ["-h", "demo", "--datadir", str(datadir), "--rundir", str(rundir)]
    print(f"== a standalone logical host 'demo' in {datadir}")
    steps: list[tuple[str, list[str]]] = [
        ("start it", ["service", "start", *base]),
        ("apply the sample definitions", ["define", *base]),
        ("run /demo/nightly and wait for it", ["entry", *base, "/demo/nightly", "--wait"]),
    ]
    rc = 0
    for title, argv in steps:
        print(f"\n$ ajs3 {' '.join(argv)}    # {title}")
        rc = main(argv)
        if rc != 0:
            break
    print(f"\n$ ajs3 show -h demo --datadir {datadir} /demo/nightly")
    main(["show", *base, "/demo/nightly"])
    print(f"\n$ ajs3 service stop -h demo --rundir {rundir}")
    main(["service", "stop", "-h", "demo", "--rundir", str(rundir)])
    return rc


# -- schedules and JP1 -----------------------------------------------------------------


def _definitions_for(args: argparse.Namespace) -> Any:
    """The definitions named by --file/--definitions, else the applied ones in the journal."""
    from ajs3.definitions.loader import load_dir, load_files

    if args.files:
        return load_files(args.files)
    if args.definitions is not None:
        if not Path(args.definitions).is_dir():
            raise AjsError(f"no definitions directory {str(args.definitions)!r}",
                           code=Code.BAD_ARGUMENT, hint="give a directory of YAML files")
        return load_dir(args.definitions)
    from ajs3.journal.store import Journal

    journal = Journal.open(paths_of(args).need_datadir(), readonly=True)
    try:
        return journal.definitions()[1]
    finally:
        journal.close()


def _plan_time(text: str, what: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise AjsError(f"cannot read {what} {text!r}", code=Code.BAD_ARGUMENT,
                       hint="use ISO 8601, e.g. 2027-01-01 or 2027-01-01T00:00") from exc


def cmd_plan(args: argparse.Namespace) -> int:
    from ajs3.schedule import forecast

    start, end = _plan_time(args.from_, "--from"), _plan_time(args.to, "--to")
    defs = _definitions_for(args)
    names = None
    if args.jobnet:
        if args.jobnet not in defs.jobnets:
            known = ", ".join(sorted(defs.jobnets)) or "none defined"
            raise AjsError(f"no root jobnet {args.jobnet!r} (known: {known})",
                           code=Code.UNKNOWN_JOBNET, hint="give a root jobnet path")
        names = [args.jobnet]
    runs = forecast(defs, start, end, names)
    data = {"runs": [{"jobnet": r.jobnet, "start": r.start} for r in runs]}
    text = "\n".join(f"{r.start}  {r.jobnet}" for r in runs) or "no runs in that period"
    emit(args, data, text)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ajs3.jp1 import importer

    result = importer.import_file(args.jp1, time_zone=args.tz)
    written: list[str] = []
    if args.out is not None and not args.check:
        written = [str(p) for p in importer.write_yaml(result, args.out)]
    data = result.summary()
    data["written"] = written
    lines = [f"{args.jp1}: {data['units']} unit(s), {len(result.defs.jobnets)} root jobnet(s)"]
    lines += [f"  {n}" for n in result.notes]
    lines += [f"wrote {w}" for w in written]
    if args.check:
        lines.append("check only: nothing written")
    emit(args, data, "\n".join(lines))
    for note_text in result.notes if args.json else []:
        note(note_text)
    return EXIT_ERROR if args.strict and result.notes else 0


def cmd_export(args: argparse.Namespace) -> int:
    from ajs3.jp1 import exporter

    defs = _definitions_for(args)
    text, notes = exporter.export(defs)
    if str(args.jp1) == "-":
        sys.stdout.write(text)
    else:
        Path(args.jp1).write_text(text, encoding="utf-8")
        emit(args, {"file": str(args.jp1), "notes": notes},
             "\n".join([f"wrote {args.jp1}", *(f"  {n}" for n in notes)]))
    for note_text in notes if str(args.jp1) == "-" else []:
        note(note_text)
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "service": cmd_service, "define": cmd_define, "entry": cmd_entry, "show": cmd_show,
    "hold": cmd_hold, "release": cmd_release, "kill": cmd_kill, "rerun": cmd_rerun,
    "log": cmd_log, "demo": cmd_demo, "plan": cmd_plan, "import": cmd_import,
    "export": cmd_export,
}


if __name__ == "__main__":
    sys.exit(main())
