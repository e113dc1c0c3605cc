"""Recovery: bring the journal in line with reality (docs/design.md rules 4-6).

At start, and whenever a supervisor's answer is lost, each run the journal says is
running is looked at: the facts are gathered here, the decision is the table of
:mod:`ajs3.engine.recovery`, and this module carries it out.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from ajs3.engine import claimlog, jobgroups, recordlog, recovery
from ajs3.engine.collect import Collector
from ajs3.engine.core import Core
from ajs3.engine.dispatch import Dispatcher
from ajs3.engine.indoubt import InDoubt
from ajs3.engine.recovery import Facts, Record, Verdict
from ajs3.engine.runstate import RunState
from ajs3.errors import AjsError
from ajs3.journal.files import DiskFull
from ajs3.journal.store import UnitRun
from ajs3.model import ReasonCode, StartMode, Status, UnitKind


class Reconciler:
    def __init__(
        self, core: Core, dispatch: Dispatcher, collector: Collector, doubt: InDoubt
    ) -> None:
        self.core = core
        self.dispatch = dispatch
        self.collector = collector
        self.doubt = doubt
        #: run id -> host, of the claim logs of other nodes and boots (read once: ADR 0033)
        self._foreign: dict[str, str] | None = None

    def foreign_claim(self, run_id: str) -> str | None:
        """The host identity of the node (or boot) whose claim log names ``run_id``."""
        if self._foreign is None:
            where = self.core.runner.claims_dir
            self._foreign = (
                {} if where is None else claimlog.foreign_claims(where, self.core.runner.identity)
            )
        return self._foreign.get(run_id)

    def recover(self, mode: StartMode) -> None:
        """At start: every job left running is collected, adopted, restarted or in doubt."""
        core = self.core
        if mode is StartMode.COLD:
            self._cold_start()
        for run_no in core.journal.active_jobnet_runs():
            state = core.load_run(run_no)
            if state is None:
                core.log.error("jobnet run refers to missing definitions", run=run_no)
                continue
            for ur in list(state.urs.values()):
                if ur.kind is UnitKind.JOB and ur.status is Status.RUNNING:
                    self.recover_job(state, ur, mode)

    def _cold_start(self) -> None:
        core = self.core
        for run_no in core.journal.active_jobnet_runs():
            for ur in core.journal.unit_runs(run_no):
                if ur.status is Status.RUNNING and ur.run_id:
                    started = core.runner.started(core.runner.jobdir(ur.run_id))
                    if started and core.runner.is_local(started):
                        jobgroups.kill_group(started.get("pgid"), signal.SIGKILL, started)
        count = core.journal.forget_runs()
        core.log.info("cold start: registrations and results forgotten", runs=count)

    def cut_claim_logs(self) -> None:
        """Remove the claim logs that no recovery can need any more (ADR 0033): those no
        server writes that name no run the journal says runs."""
        where = self.core.runner.claims_dir
        if where is None:
            return
        try:
            running = self.core.journal.running_run_ids()
            removed = claimlog.cut(where, running) + recordlog.cut(where, running)
        except OSError as exc:
            self.core.log.warning("claim logs not cut; tried again later", error=str(exc))
            return
        if removed:
            self.core.log.info("claim logs removed", logs=[p.name for p in removed])

    def recover_job(self, state: RunState, ur: UnitRun, mode: StartMode) -> None:
        """Apply :data:`ajs3.engine.recovery.TABLE` to one job run left running."""
        assert ur.run_id is not None
        core = self.core
        if ur.exec_host is not None and core.exechosts is not None:
            core.exechosts.adopt(state, ur, mode)  # asked for there (docs/exechosts.md)
            return
        log = core.log.bind(run_id=ur.run_id, unit=ur.path)
        jobdir = core.runner.jobdir(ur.run_id)
        status = core.runner.status(jobdir)
        started = core.runner.started(jobdir)
        facts = self._facts(status is not None, started, mode)
        row = recovery.decide(facts)
        if row.verdict is Verdict.CLAIM:
            # Claim the run first, so that a supervisor of a dead daemon that is still on
            # its way can never start it (ADR 0012).
            logged = self.foreign_claim(ur.run_id)
            why = (
                f"never started; restarted by epoch {core.journal.epoch}"
                if logged is None
                else f"claimed on {_node(logged)}, which may have started it; in doubt"
            )
            if core.runner.void(jobdir, why):
                facts = Facts(False, Record.VOID, mode=mode)
            else:  # a supervisor created the record: wait until it is whole
                try:
                    started = core.runner.settle(jobdir, why)
                except TimeoutError:
                    facts = Facts(False, Record.HELD, mode=mode)
                else:  # None: the record was cut short, and settle voided it in place
                    facts = (
                        Facts(False, Record.VOID, mode=mode)
                        if started is None
                        else self._facts(False, started, mode)
                    )
            if facts.record is Record.VOID and logged is not None:
                facts = Facts(False, Record.LOGGED, mode=mode)
                started = {"host": logged}  # where it may have run, for the reason
            row = recovery.decide(facts)
        match row.verdict:
            case Verdict.COLLECT:
                assert status is not None
                log.info("collected a status written while the daemon was down")
                self.collector.collect(state, ur, status, "")
            case Verdict.RESTART:
                log.info("job was recorded but never started; it will start now")
                assert row.code is not None
                core.journal.set_status(
                    ur, Status.WAITING, row.code, "recorded but never started; restarted"
                )
                core.dirty.add(state.run.id)  # evaluated again: it may start now
            case Verdict.ADOPT:
                assert started is not None
                self.dispatch.track(
                    ur,
                    state.units[ur.path],
                    jobdir,
                    int(started["supervisor_pid"]),
                    float(started.get("started_at", ur.started_at or core.clock())),
                    started,
                )
                log.info("re-adopted a running job", pid=started.get("job_pid"))
            case Verdict.IN_DOUBT:
                if row.kill:
                    assert started is not None
                    jobgroups.kill_group(started.get("pgid"), signal.SIGKILL, started)
                    if facts.supervisor_alive:
                        self._wait_status(jobdir, 5.0)
                assert row.code is not None
                self.doubt.apply(state, ur, row.code, self._why(row.code, started))
            case Verdict.CLAIM:  # pragma: no cover - a claim always ends in another row
                raise AssertionError("claimed twice")

    def recover_unclaimed(self, state: RunState, ur: UnitRun) -> None:
        """A run whose supervisor server ended, or told its end, with no whole start
        record and no end (ADR 0031): the table decides as after a restart (claimed
        by the daemon, it never started and starts again). A run directory that cannot
        even be claimed (not the daemon's, or the disk refuses it) leaves it in doubt."""
        try:
            self.recover_job(state, ur, StartMode.HOT)
        except DiskFull:
            raise
        except (OSError, AjsError) as exc:
            why = f"its supervisor recorded no start, and its run could not be claimed: {exc}"
            self.doubt.apply(state, ur, ReasonCode.SUPERVISOR_DIED, why)

    def _facts(self, status_file: bool, started: dict[str, Any] | None, mode: StartMode) -> Facts:
        if started is None:
            return Facts(status_file, Record.NONE, mode=mode)
        if started.get("void"):
            return Facts(status_file, Record.VOID, mode=mode)
        local = self.core.runner.is_local(started)
        alive = local and jobgroups.is_same_process(
            int(started.get("supervisor_pid", 0)), started.get("supervisor_start")
        )
        return Facts(status_file, Record.WHOLE, local=local, supervisor_alive=alive, mode=mode)

    @staticmethod
    def _why(code: ReasonCode, started: dict[str, Any] | None) -> str:
        match code:
            case ReasonCode.START_RECORD_HELD:
                return "its supervisor holds its start record"
            case ReasonCode.KILLED_BY_WARM_START:
                return "killed by a warm start"
            case ReasonCode.SUPERVISOR_DIED:
                return "its supervisor died before recording an end"
            case _:
                return f"it was running on {_node((started or {}).get('host'))}, lost in a failover"

    def _wait_status(self, jobdir: Path, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and self.core.runner.status(jobdir) is None:
            time.sleep(0.05)


def _node(host: object) -> str:
    """The node's name in a host identity (node/boot/pid namespace)."""
    return str(host or "?").split("/")[0]
