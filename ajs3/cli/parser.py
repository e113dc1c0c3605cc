"""The arguments of the `ajs3` command: every subcommand, its options and their help.

Only the shape of the command line lives here; what the arguments mean is decided by the
command modules, and how a usage error is reported by :mod:`ajs3.cli.exits`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import NoReturn

from ajs3 import __version__
from ajs3.cli.exits import usage_error
from ajs3.model import StartMode, StopJobs

DEFAULT_LHOST = "standalone"


class Parser(argparse.ArgumentParser):
    """argparse with ajs3's usage errors: a coded message and exit 2."""

    def error(self, message: str) -> NoReturn:
        usage_error(self.format_usage(), message)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument(
        "-h",
        "--lhost",
        default=os.environ.get("AJS3_LHOST", DEFAULT_LHOST),
        help="logical host name (default: $AJS3_LHOST or 'standalone')",
    )
    p.add_argument(
        "--datadir",
        type=Path,
        default=os.environ.get("AJS3_DATADIR"),
        help="data directory of the logical host (default: the running daemon's)",
    )
    p.add_argument(
        "--rundir",
        type=Path,
        default=None,
        help="run directory for socket and pid file (default /run/ajs3/LHOST, see docs/control.md)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")


def build_parser() -> Parser:
    parser = Parser(
        prog="ajs3", add_help=False, description="ajs3: jobnets on highly available logical hosts"
    )
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
    p.add_argument(
        "--initialize",
        action="store_true",
        help="start afresh when the journal is missing, empty or damaged",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="only check that it could start (data directory, journal, lock)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    p = ssub.add_parser("stop", add_help=False, help="stop the daemon")
    _common(p)
    p.add_argument(
        "--jobs",
        choices=[j.value for j in StopJobs],
        default="kill",
        help="what to do with running jobs (default kill)",
    )
    p.add_argument("--timeout", type=float, default=60.0)
    p = ssub.add_parser("status", add_help=False, help="exit 0 running, 3 not running, 1 unhealthy")
    _common(p)
    p.add_argument("--depth", type=int, choices=[0, 10, 20], default=10)
    p = ssub.add_parser("reload", add_help=False, help="change the daemon's log level")
    _common(p)
    p.add_argument("--log-level", required=True, choices=["debug", "info", "warning", "error"])

    p = sub.add_parser("define", add_help=False, help="validate and apply definitions")
    _common(p)
    p.add_argument(
        "files", nargs="*", type=Path, help="YAML files (default: DATADIR/definitions/*.yaml)"
    )
    p.add_argument("--check", action="store_true", help="validate only, apply nothing")

    p = sub.add_parser("entry", add_help=False, help="register a jobnet to run")
    _common(p)
    p.add_argument("jobnet")
    p.add_argument("--at", help="start time, ISO 8601 (default now)")
    p.add_argument("--hold", action="store_true", help="register it held")
    p.add_argument(
        "--key",
        help="idempotency key: an entry sent again with the same key (after AJS3-E314, "
        "say) returns the first registration instead of registering again",
    )
    p.add_argument(
        "--var",
        dest="vars",
        action="append",
        metavar="NAME=VALUE",
        help="a value for the run (repeatable): its jobs see NAME in their environment "
        "and ${NAME} in their command arguments replaced",
    )
    p.add_argument("--wait", action="store_true", help="wait until it ends")
    p.add_argument("--timeout", type=float, default=None, help="give up waiting after S")

    p = sub.add_parser("show", add_help=False, help="units, statuses, times, exit codes")
    _common(p)
    p.add_argument("target", nargs="?", help="jobnet path (default: every run)")
    p.add_argument("--run", type=int, help="jobnet run number (default the latest)")
    p.add_argument("--why", metavar="UNIT", help="say which readiness rule holds UNIT back")
    p.add_argument(
        "--events", metavar="UNIT", help="list UNIT's status changes with times and reasons"
    )
    p.add_argument("--all", action="store_true", help="list older runs too")
    p.add_argument("--watch", action="store_true", help="redraw the view in place until Ctrl-C")
    p.add_argument(
        "--interval", type=float, default=2.0, metavar="S", help="seconds between redraws"
    )
    p.add_argument("--count", type=int, default=None, help=argparse.SUPPRESS)

    for name, text in (
        ("hold", "hold a unit that has not started"),
        ("release", "release a held unit, or decide an unknown one"),
    ):
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

    for name, text in (
        ("suspend", "start no new scheduled run of a jobnet (like ajssuspend)"),
        ("resume", "end a suspension; missed runs follow the catch-up policy"),
    ):
        p = sub.add_parser(name, add_help=False, help=text)
        _common(p)
        p.add_argument("jobnet", help="root jobnet path")
        p.add_argument("--reason", help="why (kept in the journal with who and when)")

    p = sub.add_parser(
        "chgstat", add_help=False, help="set a unit's status by hand (like ajschgstat)"
    )
    _common(p)
    p.add_argument("unit", help="unit path")
    p.add_argument("--run", type=int, help="jobnet run number (default the latest)")
    p.add_argument("--status", required=True, help="the new status, e.g. ended_normally")
    p.add_argument("--reason", required=True, help="why (mandatory; kept with who and when)")
    p = sub.add_parser("purge", add_help=False, help="remove history beyond retention now")
    _common(p)
    p.add_argument("--dry-run", action="store_true", help="show what would go, remove nothing")
    p.add_argument("--timeout", type=float, default=None, help="give up waiting after S")

    p = sub.add_parser("log", add_help=False, help="print a run's output")
    _common(p)
    p.add_argument("run_id", help="run id, or a unit path")
    p.add_argument("--run", type=int)
    p.add_argument("--stderr", action="store_true")

    p = sub.add_parser(
        "plan", add_help=False, help="forecast the run times of jobnets (like ajsschedule)"
    )
    _common(p)
    p.add_argument("jobnet", nargs="?", help="root jobnet path (default: every scheduled one)")
    p.add_argument(
        "--from",
        dest="from_",
        metavar="TIME",
        help="start, ISO 8601, inclusive; without an offset, in each jobnet's zone",
    )
    p.add_argument(
        "--to",
        metavar="TIME",
        help="end of the forecast, exclusive (as --from); with --move: the new time",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--skip", metavar="WHEN", help="change the plan: the run at WHEN does not run")
    g.add_argument("--move", metavar="WHEN", help="change the plan: the run at WHEN runs at --to")
    g.add_argument("--add", metavar="WHEN", help="change the plan: an extra run at WHEN")
    p.add_argument("--reason", help="why the plan changes (kept with who and when)")
    p.add_argument(
        "--file",
        dest="files",
        action="append",
        type=Path,
        default=[],
        help="read definitions from this YAML file (repeatable), not the journal",
    )
    p.add_argument(
        "--definitions",
        type=Path,
        metavar="DIR",
        help="read definitions from the YAML files in DIR, not the journal",
    )

    p = sub.add_parser(
        "import",
        add_help=False,
        help="import JP1/AJS3 unit definitions (ajsprint format) as ajs3 YAML",
    )
    _common(p)
    p.add_argument(
        "--jp1", required=True, type=Path, metavar="FILE", help="JP1/AJS3 unit definition file"
    )
    p.add_argument("--check", action="store_true", help="validate only, write nothing")
    p.add_argument("--out", type=Path, metavar="DIR", help="write the YAML files to DIR")
    p.add_argument("--tz", metavar="ZONE", help="time zone of the schedules (default: local)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when any unit or parameter could not be mapped",
    )
    p.add_argument(
        "--allow-unmapped",
        action="store_true",
        help="write and exit 0 although some units or parameters are not mapped",
    )

    p = sub.add_parser(
        "export",
        add_help=False,
        help="export definitions as JP1/AJS3 unit definitions (ajsdefine format)",
    )
    _common(p)
    p.add_argument(
        "--jp1",
        required=True,
        type=Path,
        metavar="FILE",
        help="write here ('-' for standard output)",
    )
    p.add_argument(
        "--file",
        dest="files",
        action="append",
        type=Path,
        default=[],
        help="read definitions from this YAML file (repeatable), not the journal",
    )
    p.add_argument(
        "--definitions",
        type=Path,
        metavar="DIR",
        help="read definitions from the YAML files in DIR, not the journal",
    )

    p = sub.add_parser("notify", add_help=False, help="notification routes")
    nsub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    nsub.required = True
    p.add_argument("--help", action="help")
    p = nsub.add_parser("test", add_help=False, help="send a test event on ROUTE")
    _common(p)
    p.add_argument("route", help="a route name of notify: in ajs3.yaml")
    p.add_argument("--no-wait", action="store_true", help="do not wait for the delivery")

    _exechost(sub)

    p = sub.add_parser(
        "web", add_help=False, help="serve the web console, REST API and metrics (docs/web.md)"
    )
    _common(p)
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="address to serve on (default: web: listen in ajs3.yaml, else 127.0.0.1:8470)",
    )

    p = sub.add_parser(
        "demo", add_help=False, help="run the sample jobnet on a standalone logical host"
    )
    p.add_argument("--help", action="help")
    p.add_argument("--dir", type=Path, default=Path("ajs3-demo"))
    return parser


def _exechost(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`ajs3 exechost serve`: the execution host's side (docs/exechosts.md)."""
    p = sub.add_parser("exechost", add_help=False, help="execution host side (over ssh)")
    xsub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    xsub.required = True
    p.add_argument("--help", action="help")
    p = xsub.add_parser(
        "serve", add_help=False, help="speak the protocol on stdin/stdout (a forced command)"
    )
    p.add_argument("--help", action="help")
    p.add_argument("--lhost-key", required=True, help="the logical host this key speaks for")
    p.add_argument(
        "--state-dir", type=Path, default=Path("/var/lib/ajs3-exec"), help="runs kept here"
    )
    p.add_argument("--default-user", default="nobody", help="a job without user: runs as")
    p.add_argument("--allow-root-jobs", action="store_true", help="jobs may run as root")
