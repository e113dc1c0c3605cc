"""What parsed arguments mean to the library: the logical host's paths, a time, and the
definition set a command reads."""

from __future__ import annotations

import argparse
import pwd
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ajs3.errors import AjsError, Code
from ajs3.service import lifecycle
from ajs3.service.paths import Paths, check_lhost, default_rundir

if TYPE_CHECKING:
    from ajs3.definitions.units import DefinitionSet


def paths_of(args: argparse.Namespace) -> Paths:
    """The paths of the logical host named by -h/--datadir/--rundir; the data directory
    is the running daemon's when none was given."""
    lhost = check_lhost(args.lhost)
    rundir = args.rundir or default_rundir(lhost)
    datadir = Path(args.datadir).absolute() if args.datadir else None
    return lifecycle.with_datadir(Paths(lhost, Path(rundir), datadir))


def check_rundir(paths: Paths) -> None:
    """Refuse (AJS3-E309) a run directory this user may not read: its pid file is how a
    running daemon is told from a stopped one, and without it a running logical host
    would look stopped."""
    try:
        with open(paths.pidfile, "rb"):
            pass
    except PermissionError as exc:
        try:
            owner = pwd.getpwuid(paths.rundir.stat().st_uid).pw_name
        except (OSError, KeyError):
            owner = "the owner of the run directory"
        raise AjsError(
            f"cannot tell whether logical host {paths.lhost} is running: {exc.filename} "
            f"is not readable by this user",
            code=Code.PERMISSION_DENIED,
            hint=f"run the command as {owner} (the owner of {paths.rundir}), or give the "
            f"--rundir of a logical host you may read",
        ) from exc
    except OSError:
        return  # no pid file (or no run directory): no daemon, lifecycle says so


def parse_time(text: str, option: str) -> datetime:
    """A time given on the command line (ISO 8601); without an offset it is naive and the
    command decides its zone. ``option`` names where it came from, for the message."""
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise AjsError(
            f"cannot read {option} {text!r}",
            code=Code.BAD_ARGUMENT,
            hint="use ISO 8601, e.g. 2027-01-01, 2027-01-01T02:00 or 2027-01-01T02:00+09:00",
        ) from exc


def definitions_for(args: argparse.Namespace) -> DefinitionSet:
    """The definitions named by --file/--definitions, else the applied ones in the journal."""
    from ajs3.definitions.loader import load_dir, load_files

    if args.files:
        return load_files(args.files)
    if args.definitions is not None:
        if not Path(args.definitions).is_dir():
            raise AjsError(
                f"no definitions directory {str(args.definitions)!r}",
                code=Code.BAD_ARGUMENT,
                hint="give a directory of YAML files",
            )
        return load_dir(args.definitions)
    from ajs3.journal.store import Journal

    journal = Journal.open(paths_of(args).need_datadir(), readonly=True)
    try:
        return journal.definitions()[1]
    finally:
        journal.close()
