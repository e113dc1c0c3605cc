"""Applying a validated definition set: through the daemon if it runs, else directly."""

from __future__ import annotations

from ajs3.definitions.units import DefinitionSet
from ajs3.errors import AjsError, Code
from ajs3.journal.store import Journal
from ajs3.service import control
from ajs3.service.lifecycle import daemon_info
from ajs3.service.lock import DataDirLock
from ajs3.service.paths import Paths


def apply_definitions(paths: Paths, defs: DefinitionSet, sources: list[str]) -> int:
    content = {"jobnets": {p: u.to_dict() for p, u in defs.jobnets.items()},
               "groups": list(defs.groups)}
    if daemon_info(paths) is not None:
        result = control.request(paths.socket,
                                 {"op": "define", "content": content, "sources": sources})
        return int(result["version"])
    datadir = paths.need_datadir()
    lock = DataDirLock(paths.lockfile)
    try:
        lock.acquire(paths.lhost)
    except AjsError as exc:
        raise AjsError(
            f"{exc.message}; it may run under another run directory",
            code=Code.LOCKED, hint="give the right -h/--rundir, or stop the other daemon",
        ) from exc
    try:
        journal = Journal.open(datadir)
        try:
            return journal.apply_definitions(defs, sources)
        finally:
            journal.close()
    finally:
        lock.release()
