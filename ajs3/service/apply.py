"""Applying definitions: through the daemon if it runs, else directly to the journal.

Through the daemon, the files themselves travel (``define`` carries their names and
texts) and the daemon validates them with the same loader as ``ajs3 define --check``:
nothing the loader would refuse reaches the journal, whoever sends it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ajs3.definitions.hosts import check_hosts
from ajs3.definitions.units import DefinitionSet
from ajs3.engine.jobenv import check_job_users
from ajs3.errors import AjsError, Code, DefinitionError, NotRunningError
from ajs3.journal import audit
from ajs3.journal.store import Journal
from ajs3.service.access import user_name
from ajs3.service.client import Client
from ajs3.service.lock import DataDirLock
from ajs3.service.paths import Paths
from ajs3.settings import load_settings


def apply_definitions(paths: Paths, defs: DefinitionSet, sources: list[str]) -> int:
    """Apply ``defs``, loaded from ``sources`` (files, or one definitions directory),
    as the new version; returns the version."""
    # Asked through the socket, not the pid file: an operator may reach the socket and
    # not read the run directory's files.
    if paths.socket.exists():
        try:
            result = Client(paths.socket).define(source_texts(sources), sources)
            return int(result["version"])
        except NotRunningError:
            pass  # a socket left by a daemon that is gone: apply directly (under the lock)
    datadir = paths.need_datadir()
    lock = DataDirLock(paths.lockfile)
    try:
        lock.acquire(paths.lhost)
    except AjsError as exc:
        raise AjsError(
            f"{exc.message}; it may run under another run directory",
            code=Code.LOCKED,
            hint="give the right -h/--rundir, or stop the other daemon",
        ) from exc
    try:
        # The daemon would run as this user: its rule on root jobs (AJS3-E313) holds
        # for definitions applied without it too.
        settings = load_settings(datadir, paths.lhost)
        problems = check_job_users(defs, settings, os.geteuid())
        problems += check_hosts(defs, settings.exechosts)
        if problems:
            raise DefinitionError(problems)
        journal = Journal.open(datadir)
        try:
            version = journal.apply_definitions(defs, sources)
            uid = os.geteuid()
            audit.record(
                journal,
                uid=uid,
                user=user_name(uid),
                op="define",
                args={"sources": sources, "offline": True},
                code=audit.OK,
                result={"version": version, "jobnets": sorted(defs.jobnets)},
            )
            return version
        finally:
            journal.close()
    finally:
        lock.release()


def source_texts(sources: list[str]) -> list[tuple[str, str]]:
    """(name, text) of every definition file named by ``sources``: files as given, a
    directory as the loader reads it (``*.yaml``/``*.yml`` directly in it, not hidden,
    by name)."""
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files += sorted(
                p
                for p in path.iterdir()
                if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file()
            )
        else:
            files.append(path)
    texts = []
    for path in files:
        try:
            texts.append((str(path), path.read_bytes().decode("utf-8-sig")))
        except (OSError, UnicodeDecodeError) as exc:
            raise AjsError(
                f"{path}: cannot read the definition file: {exc}",
                code=Code.DEFINITION_FILE,
                hint="check the file and run again",
            ) from exc
    return texts
