"""What the parts of the scheduler share: the journal, the runs in memory, the jobs watched.

The scheduler (:mod:`ajs3.engine.scheduler`) is cut by idea: evaluation
(:mod:`~ajs3.engine.evaluate`), dispatch (:mod:`~ajs3.engine.dispatch`), collection
(:mod:`~ajs3.engine.collect`), recovery (:mod:`~ajs3.engine.reconcile`, with its
decision table in :mod:`~ajs3.engine.recovery`) and operator commands
(:mod:`~ajs3.engine.commands`). Each part holds this one :class:`Core` and nothing of
the others but what it calls.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import structlog

from ajs3.definitions.units import DefinitionSet
from ajs3.engine import jobgroups
from ajs3.engine import runner as rn
from ajs3.engine.runstate import RunState
from ajs3.journal.store import Journal, UnitRun
from ajs3.model import ReasonCode, StartMode, Status
from ajs3.settings import Settings


class RemoteJobs(Protocol):
    """The jobs on execution hosts, as the engine's parts call them; implemented by
    :class:`ajs3.exechost.manager.ExecHostJobs` (docs/exechosts.md), which the daemon
    sets on :attr:`Core.exechosts` (the engine never imports it)."""

    def busy(self) -> dict[str, int]: ...
    def place(self, host: str, busy: dict[str, int]) -> str | None: ...
    def spawn(self, items: list[tuple[RunState, UnitRun]], now: float) -> None: ...
    def adopt(self, state: RunState, ur: UnitRun, mode: StartMode) -> None: ...
    def signal(self, t: rn.Tracked, sig: int) -> None: ...
    def poll(self) -> None: ...
    def next_wake(self) -> float | None: ...
    def explain(self, state: RunState, ur: UnitRun) -> list[dict[str, Any]]: ...


class Core:
    """The state of one logical host's scheduler, shared by its parts."""

    def __init__(
        self, journal: Journal, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self.journal = journal
        self.settings = settings
        self.lhost = settings.lhost
        self.runner = rn.Runner(settings.datadir, settings, claim_log=True, records=True)
        self.clock = clock
        self.log = structlog.get_logger("ajs3").bind(lhost=self.lhost)
        self.runs: dict[int, RunState] = {}
        #: unit run id -> its run and itself, for the runs in memory
        self.index: dict[int, tuple[RunState, UnitRun]] = {}
        self.tracked: dict[int, rn.Tracked] = {}
        self.by_fd: dict[int, int] = {}
        #: pidfds of supervisors that ended, to collect at the next step
        self.exited: list[int] = []
        #: job directory -> the key in ``by_fd`` of its run (the server tells ends by
        #: job directory: ajs3.engine.runner)
        self.by_jobdir: dict[Path, int] = {}
        #: runs whose supervisor server ended without a whole start record of theirs:
        #: for the recovery table at this step (ajs3.engine.collect)
        self.unclaimed: list[tuple[RunState, UnitRun]] = []
        self._gone = 0
        #: this daemon's own supervisor server (its process) and the one pidfd that
        #: watches it for all its jobs
        self._own_server: tuple[object, int] | None = None
        #: a server's pidfd -> the keys in ``by_fd`` of its jobs (no descriptors)
        self.server_jobs: dict[int, set[int]] = {}
        self._server_of: dict[int, int] = {}
        #: why a job being killed is killed, by unit run id (see :mod:`ajs3.engine.collect`)
        self.kill_codes: dict[int, ReasonCode] = {}
        #: runs to evaluate at the next step
        self.dirty: set[int] = set()
        #: Process groups of killed jobs whose leader ended within the grace period while
        #: other members ignore TERM: (pgid, when to KILL them).
        self.stragglers: list[tuple[int, float]] = []
        self.stopping = False
        #: when a journal write last failed for want of space (0: never)
        self.disk_full_at = 0.0
        self.stop_reason = "killed at service stop"
        #: the jobs on execution hosts (set by the daemon; docs/exechosts.md)
        self.exechosts: RemoteJobs | None = None
        self._defs: dict[int, DefinitionSet] = {}
        self.def_version, defs = journal.definitions()
        self._defs[self.def_version] = defs
        journal.on_status = self._note_status

    # -- definitions -------------------------------------------------------------

    @property
    def definitions(self) -> DefinitionSet:
        return self._defs[self.def_version]

    def definitions_of(self, version: int) -> DefinitionSet:
        if version not in self._defs:
            self._defs[version] = self.journal.definitions(version)[1]
        return self._defs[version]

    def use_definitions(self, version: int, defs: DefinitionSet) -> None:
        self.def_version = version
        self._defs[version] = defs

    # -- runs in memory ----------------------------------------------------------

    def load_run(self, run_no: int) -> RunState | None:
        run = self.journal.jobnet_run(run_no)
        if run is None:
            return None
        root = self.definitions_of(run.def_version).jobnets.get(run.jobnet)
        if root is None:
            return None
        state = RunState.build(run, root, self.journal.unit_runs(run_no))
        self.runs[run_no] = state
        for ur in state.urs.values():
            self.index[ur.id] = (state, ur)
        self.dirty.add(run_no)
        return state

    def _note_status(self, ur: UnitRun, _old: Status) -> None:
        found = self.index.get(ur.id)
        if found is not None:
            found[0].note(ur)

    # -- supervisors watched -----------------------------------------------------

    def watch(self, pid: int) -> int:
        """The key in ``by_fd`` of a job of supervisor ``pid``; if it has ended (and was
        reaped) already, a key queued so the next step collects it.

        A job of this daemon's own server gets a key that is no descriptor, and the
        server one pidfd for all its jobs (:meth:`server_ended`): its pid cannot be
        taken by another process while the daemon has not reaped it. A job re-adopted
        under an earlier daemon's server gets a pidfd of its own."""
        server = self.runner.supervisor.process
        if server is not None and server.pid == pid:
            if self._own_server is None or self._own_server[0] is not server:
                fd = jobgroups.pidfd_open(pid)
                if fd is None:
                    return self._gone_now()
                self._own_server = (server, fd)
                self.server_jobs[fd] = set()
            fd = self._own_server[1]
            key = self.gone_key()
            self.server_jobs[fd].add(key)
            self._server_of[key] = fd
            return key
        fd = jobgroups.pidfd_open(pid)
        return fd if fd is not None else self._gone_now()

    def _gone_now(self) -> int:
        key = self.gone_key()
        self.exited.append(key)
        return key

    def server_ended(self, fd: int) -> bool:
        """Whether ``fd`` watched a server for its jobs; if so, they are all queued for
        the next step (each is then collected, or in doubt) and the pidfd is closed."""
        keys = self.server_jobs.pop(fd, None)
        if keys is None:
            return False
        for key in sorted(keys, reverse=True):  # in the order they were started
            self._server_of.pop(key, None)
            if key not in self.exited:
                self.exited.append(key)
        if self._own_server is not None and self._own_server[1] == fd:
            self._own_server = None
        os.close(fd)
        return True

    def release(self, key: int) -> None:
        """A job's key is done with (its end collected): its pidfd closed, or its key
        no longer among its server's."""
        if key >= 0:
            os.close(key)
            return
        fd = self._server_of.pop(key, None)
        if fd is not None:
            self.server_jobs[fd].discard(key)

    def gone_key(self) -> int:
        """A key of ``by_fd`` that is no descriptor, for a supervisor already ended."""
        self._gone -= 1
        return self._gone
