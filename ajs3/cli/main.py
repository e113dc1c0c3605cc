"""The `ajs3` command line. It only parses, calls the library and prints; every
library error becomes a message and an exit code here, in one place."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from ajs3 import __version__
from ajs3.errors import AjsError, Code, DefinitionError
from ajs3.model import StartMode, StopJobs
from ajs3.service import lifecycle
from ajs3.service.paths import Paths, check_lhost, default_rundir

EXIT_ERROR, EXIT_USAGE = 1, 2
DEFAULT_LHOST = "standalone"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        print(f"ajs3: {Code.BAD_ARGUMENT.value}: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("-h", "--lhost", default=os.environ.get("AJS3_LHOST", DEFAULT_LHOST),
                   help="logical host name (default: $AJS3_LHOST or 'standalone')")
    p.add_argument("--datadir", type=Path, default=os.environ.get("AJS3_DATADIR"),
                   help="data directory of the logical host (default: the running daemon's)")
    p.add_argument("--rundir", type=Path, default=None,
                   help="run directory for socket and pid file (default /run/ajs3/LHOST)")
    p.add_argument("--json", action="store_true", help="print JSON")


def build_parser() -> Parser:
    parser = Parser(prog="ajs3", add_help=False,
                    description="ajs3: jobnets on highly available logical hosts")
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument("--version", action="version", version=f"ajs3 {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    svc = sub.add_parser("service", add_help=False, help="start, stop, check a logical host")
    ssub = svc.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    ssub.required = True
    svc.add_argument("--help", action="help")
    p = ssub.add_parser("start", add_help=False, help="start the daemon")
    _common(p)
    p.add_argument("--mode", choices=[m.value for m in StartMode], default="hot")
    p.add_argument("--foreground", action="store_true", help="run in the foreground")
    p.add_argument("--initialize", action="store_true",
                   help="start afresh when the journal is missing, empty or damaged")
    p.add_argument("--check", action="store_true",
                   help="only check that it could start (data directory, journal, lock)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    p = ssub.add_parser("stop", add_help=False, help="stop the daemon")
    _common(p)
    p.add_argument("--jobs", choices=[j.value for j in StopJobs], default="kill",
                   help="what to do with running jobs (default kill)")
    p.add_argument("--timeout", type=float, default=60.0)
    p = ssub.add_parser("status", add_help=False,
                        help="exit 0 running, 3 not running, 1 unhealthy")
    _common(p)
    p.add_argument("--depth", type=int, choices=[0, 10, 20], default=10)
    p = ssub.add_parser("reload", add_help=False, help="change the daemon's log level")
    _common(p)
    p.add_argument("--log-level", required=True, choices=["debug", "info", "warning", "error"])

    p = sub.add_parser("define", add_help=False, help="validate and apply definitions")
    _common(p)
    p.add_argument("files", nargs="*", type=Path,
                   help="YAML files (default: DATADIR/definitions/*.yaml)")
    p.add_argument("--check", action="store_true", help="validate only, apply nothing")

    p = sub.add_parser("entry", add_help=False, help="register a jobnet to run")
    _common(p)
    p.add_argument("jobnet")
    p.add_argument("--at", help="start time, ISO 8601 (default now)")
    p.add_argument("--hold", action="store_true", help="register it held")
    p.add_argument("--wait", action="store_true", help="wait until it ends")
    p.add_argument("--timeout", type=float, default=None, help="give up waiting after S")

    p = sub.add_parser("show", add_help=False, help="units, statuses, times, exit codes")
    _common(p)
    p.add_argument("target", nargs="?", help="jobnet path (default: every run)")
    p.add_argument("--run", type=int, help="jobnet run number (default the latest)")
    p.add_argument("--why", metavar="UNIT", help="say which readiness rule holds UNIT back")
    p.add_argument("--all", action="store_true", help="list older runs too")

    for name, text in (("hold", "hold a unit that has not started"),
                       ("release", "release a held unit, or decide an unknown one")):
        p = sub.add_parser(name, add_help=False, help=text)
        _common(p)
        p.add_argument("unit")
        p.add_argument("--run", type=int)
        if name == "release":
            p.add_argument("--as", dest="as_", choices=["normal", "abnormal"])

    p = sub.add_parser("kill", add_help=False, help="kill a running job or a jobnet run")
    _common(p)
    p.add_argument("target", help="jobnet or job path")
    p.add_argument("--run", type=int)

    p = sub.add_parser("rerun", add_help=False, help="rerun a jobnet run (like ajsrerun)")
    _common(p)
    p.add_argument("jobnet")
    p.add_argument("--run", type=int)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--failed", action="store_true", help="from the failed units (default)")
    g.add_argument("--from", dest="from_", metavar="UNIT", help="from UNIT on")
    g.add_argument("--only", metavar="UNIT", help="only UNIT")

    p = sub.add_parser("log", add_help=False, help="print a run's output")
    _common(p)
    p.add_argument("run_id", help="run id, or a unit path")
    p.add_argument("--run", type=int)
    p.add_argument("--stderr", action="store_true")

    p = sub.add_parser("plan", add_help=False,
                       help="forecast the run times of jobnets (like ajsschedule)")
    _common(p)
    p.add_argument("jobnet", nargs="?", help="root jobnet path (default: every scheduled one)")
    p.add_argument("--from", dest="from_", required=True, metavar="TIME",
                   help="start, ISO 8601, inclusive; without an offset, in each jobnet's zone")
    p.add_argument("--to", required=True, metavar="TIME", help="end, exclusive (as --from)")
    p.add_argument("--file", dest="files", action="append", type=Path, default=[],
                   help="read definitions from this YAML file (repeatable), not the journal")
    p.add_argument("--definitions", type=Path, metavar="DIR",
                   help="read definitions from the YAML files in DIR, not the journal")

    p = sub.add_parser("import", add_help=False,
                       help="import JP1/AJS3 unit definitions (ajsprint format) as ajs3 YAML")
    _common(p)
    p.add_argument("--jp1", required=True, type=Path, metavar="FILE",
                   help="JP1/AJS3 unit definition file")
    p.add_argument("--check", action="store_true", help="validate only, write nothing")
    p.add_argument("--out", type=Path, metavar="DIR", help="write the YAML files to DIR")
    p.add_argument("--tz", metavar="ZONE", help="time zone of the schedules (default: local)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when any unit or parameter could not be mapped")

    p = sub.add_parser("export", add_help=False,
                       help="export definitions as JP1/AJS3 unit definitions (ajsdefine format)")
    _common(p)
    p.add_argument("--jp1", required=True, type=Path, metavar="FILE",
                   help="write here ('-' for standard output)")
    p.add_argument("--file", dest="files", action="append", type=Path, default=[],
                   help="read definitions from this YAML file (repeatable), not the journal")
    p.add_argument("--definitions", type=Path, metavar="DIR",
                   help="read definitions from the YAML files in DIR, not the journal")

    p = sub.add_parser("demo", add_help=False,
                       help="run the sample jobnet on a standalone logical host")
    p.add_argument("--help", action="help")
    p.add_argument("--dir", type=Path, default=Path("ajs3-demo"))
    return parser


def paths_of(args: argparse.Namespace) -> Paths:
    lhost = check_lhost(args.lhost)
    rundir = args.rundir or default_rundir(lhost)
    datadir = Path(args.datadir).absolute() if args.datadir else None
    return lifecycle.with_datadir(Paths(lhost, Path(rundir), datadir))


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    elif text:
        print(text)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = HANDLERS[args.command]
    try:
        return handler(args)
    except DefinitionError as exc:
        if getattr(args, "json", False):
            print(json.dumps(exc.to_dict(), indent=2))
        else:
            print(f"ajs3: {exc.code.value}: {exc.message}", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
        return EXIT_ERROR
    except AjsError as exc:
        print(f"ajs3: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("ajs3: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `ajs3 show | head`: the reader left; say nothing more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


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
        result = lifecycle.start(paths, mode, args.timeout, args.log_level,
                                 initialize=args.initialize)
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
        print(f"ajs3: {Code.ENDED_ABNORMALLY.value}: run {run} of {args.jobnet} "
              f"ended: {final['label']}", file=sys.stderr)
        return EXIT_ERROR
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
    for note in result.notes if args.json else []:
        print(f"ajs3: {note}", file=sys.stderr)
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
    for note in notes if str(args.jp1) == "-" else []:
        print(f"ajs3: {note}", file=sys.stderr)
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "service": cmd_service, "define": cmd_define, "entry": cmd_entry, "show": cmd_show,
    "hold": cmd_hold, "release": cmd_release, "kill": cmd_kill, "rerun": cmd_rerun,
    "log": cmd_log, "demo": cmd_demo, "plan": cmd_plan, "import": cmd_import,
    "export": cmd_export,
}


if __name__ == "__main__":
    sys.exit(main())
