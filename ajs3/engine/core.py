"""What the parts of the scheduler share: the journal, the runs in memory, the jobs watched.

The scheduler (:mod:`ajs3.engine.scheduler`) is cut by idea: evaluation
(:mod:`~ajs3.engine.evaluate`), dispatch (:mod:`~ajs3.engine.dispatch`), collection
(:mod:`~ajs3.engine.collect`), recovery (:mod:`~ajs3.engine.reconcile`, with its
decision table in :mod:`~ajs3.engine.recovery`) and operator commands
(:mod:`~ajs3.engine.commands`). Each part holds this one :class:`Core` and nothing of
the others but what it calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import structlog

from ajs3.definitions.units import DefinitionSet
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
        self.runner = rn.Runner(settings.datadir, settings, claim_log=True)
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
        """A pidfd for a supervisor; if it has ended (and was reaped) already, a key
        that is no descriptor, queued so the next step collects it."""
        fd = rn.pidfd_open(pid)
        if fd is not None:
            return fd
        key = self.gone_key()
        self.exited.append(key)
        return key

    def gone_key(self) -> int:
        """A key of ``by_fd`` that is no descriptor, for a supervisor already ended."""
        self._gone -= 1
        return self._gone
