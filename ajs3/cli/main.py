"""The `ajs3` command line: parse, run the command's handler, exit with its code.

The CLI only parses, calls the library and prints. Its modules:

- :mod:`ajs3.cli.parser`: every subcommand and option;
- :mod:`ajs3.cli.arguments`: what the arguments mean (paths, times, definition sets);
- :mod:`ajs3.cli.transport`: the one function that sends a request to a daemon;
- :mod:`ajs3.cli.output`: text or JSON;
- :mod:`ajs3.cli.exits`: the one place where errors become messages and exit codes;
- the commands, by group: :mod:`~ajs3.cli.service` (the daemon),
  :mod:`~ajs3.cli.operations` (entry, hold, release, kill, rerun),
  :mod:`~ajs3.cli.planning` (suspend, resume, plan changes, chgstat),
  :mod:`~ajs3.cli.views` (show, log, plan), :mod:`~ajs3.cli.definitions` (define,
  import, export), :mod:`~ajs3.cli.web` (the web console) and :mod:`~ajs3.cli.demo`.
"""

from __future__ import annotations

import argparse
import sys

from ajs3.cli import (
    definitions,
    demo,
    exechost,
    notify,
    operations,
    planning,
    retention,
    service,
    views,
    web,
)
from ajs3.cli.exits import Handler, run
from ajs3.cli.parser import build_parser


def main(argv: list[str] | None = None) -> int:
    """The entry point of `ajs3` (console script and ``python -m ajs3.cli.main``)."""
    args = build_parser().parse_args(argv)
    return run(HANDLERS[args.command], args)


def _demo(args: argparse.Namespace) -> int:
    return demo.cmd_demo(args, main)


HANDLERS: dict[str, Handler] = {
    "service": service.cmd_service,
    "define": definitions.cmd_define,
    "import": definitions.cmd_import,
    "export": definitions.cmd_export,
    "entry": operations.cmd_entry,
    "hold": operations.cmd_hold,
    "release": operations.cmd_release,
    "kill": operations.cmd_kill,
    "rerun": operations.cmd_rerun,
    "purge": retention.cmd_purge,
    "show": views.cmd_show,
    "log": views.cmd_log,
    "plan": views.cmd_plan,
    "suspend": planning.cmd_suspend,
    "resume": planning.cmd_resume,
    "chgstat": planning.cmd_chgstat,
    "notify": notify.cmd_notify,
    "web": web.cmd_web,
    "exechost": exechost.cmd_exechost,
    "demo": _demo,
}


if __name__ == "__main__":
    sys.exit(main())
