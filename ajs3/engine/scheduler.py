"""The scheduler of one logical host: decides, launches, collects, recovers.

It owns the in-memory view of the active jobnet runs and changes statuses only
through :meth:`ajs3.journal.store.Journal.set_status`. It never sleeps or polls: the
daemon calls :meth:`Scheduler.step` after every event and sleeps until
:meth:`Scheduler.next_wake`.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from ajs3.definitions.units import DefinitionSet, Unit
from ajs3.engine import runner as rn
from ajs3.engine.readiness import Action, Decision, Outcome, decide, outcome
from ajs3.engine.runstate import RunState
from ajs3.engine.timetable import Timetable, waits_for_earlier_run
from ajs3.errors import AjsError, Code, OperationError
from ajs3.journal.store import Journal, UnitRun
from ajs3.model import (
    ABNORMAL,
    FINAL,
    PENDING,
    Compare,
    RecoveryPolicy,
    StartMode,
    Status,
    UnitKind,
)
from ajs3.settings import Settings

#: How long a failover check command (policy ``judge``) may take.
CHECK_TIMEOUT = 60.0


def make_run_id(lhost: str, path: str, scheduled_at: float, attempt: int) -> str:
    """A stable id of one attempt of one unit of one scheduled run (design.md rule 2)."""
    key = f"{lhost}\0{path}\0{scheduled_at:.6f}\0{attempt}".encode()
    return "r" + hashlib.blake2b(key, digest_size=10).hexdigest()


def iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def judge(unit: Unit, pred: UnitRun | None) -> bool:
    """Evaluate a judgment job's condition."""
    cond = unit.condition
    if cond is None:
        return True
    if cond.op is Compare.FILE_EXISTS:
        return os.path.exists(cond.path or "")
    if cond.op is Compare.FILE_MISSING:
        return not os.path.exists(cond.path or "")
    code = pred.exit_code if pred is not None and pred.exit_code is not None else 0
    value = cond.value if cond.value is not None else 0
    low = cond.low if cond.low is not None else 0
    high = cond.high if cond.high is not None else 0
    match cond.op:
        case Compare.EQ:
            return code == value
        case Compare.NE:
            return code != value
        case Compare.GT:
            return code > value
        case Compare.GE:
            return code >= value
        case Compare.LT:
            return code < value
        case Compare.LE:
            return code <= value
        case Compare.IN_RANGE:
            return low <= code <= high
        case Compare.OUT_RANGE:
            return not low <= code <= high
    return False


def end_status(unit: Unit, exit_code: int) -> Status:
    """End judgment by exit code (JP1's warning and abnormal thresholds)."""
    if exit_code > unit.abnormal_threshold or exit_code < 0:
        return Status.ENDED_ABNORMALLY
    if unit.warning_threshold is not None and exit_code > unit.warning_threshold:
        return Status.ENDED_WARNING
    return Status.ENDED_NORMALLY


class Scheduler:
    """Runs the jobnets of one logical host."""

    def __init__(
        self,
        journal: Journal,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.journal = journal
        self.settings = settings
        self.lhost = settings.lhost
        self.runner = rn.Runner(settings.datadir, settings)
        self.clock = clock
        self.log = structlog.get_logger("ajs3").bind(lhost=self.lhost)
        self.runs: dict[int, RunState] = {}
        #: unit run id -> its run and itself, for the runs in memory
        self.index: dict[int, tuple[RunState, UnitRun]] = {}
        self.tracked: dict[int, rn.Tracked] = {}
        self.by_fd: dict[int, int] = {}
        #: pidfds of supervisors that ended, to collect at the next step
        self.exited: list[int] = []
        self._gone = 0
        self.dirty: set[int] = set()
        #: Process groups of killed jobs whose leader ended within the grace period while
        #: other members ignore TERM: (pgid, when to KILL them).
        self.stragglers: list[tuple[int, float]] = []
        self.stopping = False
        self.stop_reason = "killed at service stop"
        self._defs: dict[int, DefinitionSet] = {}
        self.def_version, defs = journal.definitions()
        self._defs[self.def_version] = defs
        self.timetable = Timetable(self)
        journal.on_status = self._note_status

    # -- definitions -------------------------------------------------------------

    @property
    def definitions(self) -> DefinitionSet:
        return self._defs[self.def_version]

    def definitions_of(self, version: int) -> DefinitionSet:
        if version not in self._defs:
            self._defs[version] = self.journal.definitions(version)[1]
        return self._defs[version]

    def apply_definitions(self, defs: DefinitionSet, sources: list[str]) -> int:
        version = self.journal.apply_definitions(defs, sources)
        self.def_version = version
        self._defs[version] = defs
        self.log.info("definitions applied", version=version, jobnets=len(defs.jobnets))
        self.timetable.refresh()
        return version

    # -- loading and recovery at start ---------------------------------------------

    def _load_run(self, run_no: int) -> RunState | None:
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

    def recover(self, mode: StartMode) -> None:
        """Bring the journal in line with reality at start (design.md rules 4-6)."""
        if mode is StartMode.COLD:
            self._cold_start()
        for run_no in self.journal.active_jobnet_runs():
            state = self._load_run(run_no)
            if state is None:
                self.log.error("jobnet run refers to missing definitions", run=run_no)
                continue
            for ur in list(state.urs.values()):
                if ur.kind is UnitKind.JOB and ur.status is Status.RUNNING:
                    self._recover_job(state, ur, mode)
        self.timetable.start(self.clock())

    def _cold_start(self) -> None:
        for run_no in self.journal.active_jobnet_runs():
            for ur in self.journal.unit_runs(run_no):
                if ur.status is Status.RUNNING and ur.run_id:
                    started = self.runner.started(self.runner.jobdir(ur.run_id))
                    if started and self.runner.is_local(started):
                        rn.kill_group(started.get("pgid"), signal.SIGKILL)
        count = self.journal.forget_runs()
        self.log.info("cold start: registrations and results forgotten", runs=count)

    def _recover_job(self, state: RunState, ur: UnitRun, mode: StartMode) -> None:
        assert ur.run_id is not None
        unit = state.units[ur.path]
        log = self.log.bind(run_id=ur.run_id, unit=ur.path)
        jobdir = self.runner.jobdir(ur.run_id)
        status = self.runner.status(jobdir)
        if status is not None:
            log.info("collected a status written while the daemon was down")
            self._collect(state, ur, status, "")
            return
        started = self.runner.started(jobdir)
        if started is None or started.get("void"):
            # Intent recorded, but no start: claim the run first, so that a supervisor of
            # a dead daemon that is still on its way can never start it (ADR 0012).
            why = f"never started; restarted by epoch {self.journal.epoch}"
            voided = started is not None or self.runner.void(jobdir, why)
            if not voided:  # a supervisor created the record: wait until it is whole
                try:
                    started = self.runner.settle(jobdir, why)
                except TimeoutError:
                    self._in_doubt(state, ur, "its supervisor holds its start record")
                    return
                voided = started is None
            if voided:
                log.info("job was recorded but never started; it will start now")
                self.journal.set_status(
                    ur, Status.WAITING, "recorded but never started; restarted"
                )
                return
        assert started is not None
        local = self.runner.is_local(started)
        sup_pid = int(started.get("supervisor_pid", 0))
        if local and rn.is_same_process(sup_pid, started.get("supervisor_start")):
            if mode is StartMode.HOT:
                self._adopt(ur, unit, jobdir, started)
                log.info("re-adopted a running job", pid=started.get("job_pid"))
                return
            rn.kill_group(started.get("pgid"), signal.SIGKILL)
            self._wait_status(jobdir, 5.0)
            self._in_doubt(state, ur, "killed by a warm start")
            return
        if local:
            rn.kill_group(started.get("pgid"), signal.SIGKILL)
            why = "its supervisor died before recording an end"
        else:
            node = str(started.get("host", "?")).split("/")[0]
            why = f"it was running on {node}, lost in a failover"
        self._in_doubt(state, ur, why)

    def _wait_status(self, jobdir: Path, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and self.runner.status(jobdir) is None:
            time.sleep(0.05)

    def _adopt(self, ur: UnitRun, unit: Unit, jobdir: Path, started: dict[str, Any]) -> None:
        pid = int(started["supervisor_pid"])
        fd = self._watch(pid)
        assert ur.run_id is not None
        t = rn.Tracked(
            run_id=ur.run_id, unit_run=ur.id, jobdir=jobdir, pid=pid,
            pidfd=fd,
            started_at=float(started.get("started_at", ur.started_at or self.clock())),
            grace=unit.kill_grace, info=started,
        )
        if unit.timeout:
            t.deadline = t.started_at + unit.timeout
        self.tracked[ur.id] = t
        self.by_fd[fd] = ur.id

    def _in_doubt(self, state: RunState, ur: UnitRun, why: str) -> None:
        """Apply a job's recovery policy to a run whose end is unknown (rule 5)."""
        unit = state.units[ur.path]
        policy = unit.on_failover
        log = self.log.bind(run_id=ur.run_id, unit=ur.path, policy=policy.value)
        now = self.clock()
        if policy is RecoveryPolicy.FAIL:
            self.journal.set_status(
                ur, Status.KILLED, f"{why}; recovery policy fail", ended_at=now
            )
        elif policy is RecoveryPolicy.UNKNOWN:
            self.journal.set_status(
                ur, Status.UNKNOWN,
                f"{why}; recovery policy unknown: decide with `ajs3 rerun` or "
                "`ajs3 release --as normal|abnormal`",
            )
        elif policy is RecoveryPolicy.RERUN:
            self.journal.set_status(
                ur, Status.WAITING, f"{why}; recovery policy rerun: starts again", not_before=None
            )
        else:
            verdict, detail = self._run_check(state, ur, unit)
            if verdict == 0:
                self.journal.set_status(
                    ur, Status.ENDED_NORMALLY, f"{why}; check said done ({detail})", ended_at=now
                )
            elif verdict == 1:
                self.journal.set_status(
                    ur, Status.WAITING, f"{why}; check said rerun ({detail})", not_before=None
                )
            else:
                self.journal.set_status(
                    ur, Status.ENDED_ABNORMALLY, f"{why}; check said failed ({detail})",
                    ended_at=now,
                )
        log.warning("job in doubt", why=why, status=ur.status.value)
        self.dirty.add(state.run.id)

    def _run_check(self, state: RunState, ur: UnitRun, unit: Unit) -> tuple[int, str]:
        assert ur.run_id is not None
        env = self._job_env(state, ur, unit, ur.run_id, ur.attempt)
        env["AJS3_CHECK"] = "failover"
        return self.runner.run_check(list(unit.failover_check), env, unit.cwd, unit.user,
                                     self.runner.jobdir(ur.run_id), CHECK_TIMEOUT)

    # -- registration ------------------------------------------------------------------

    def register(self, jobnet: str, at: float | None = None, hold: bool = False) -> int:
        defs = self.definitions
        root = defs.jobnets.get(jobnet)
        if root is None:
            known = ", ".join(sorted(defs.jobnets)) or "none defined"
            raise OperationError(
                f"no jobnet {jobnet!r} is defined (known: {known})",
                code=Code.UNKNOWN_JOBNET,
                hint="check the path with `ajs3 show`, or define it with `ajs3 define`",
            )
        now = self.clock()
        scheduled = at if at is not None else now
        if hold and not root.hold:
            root = _with_hold(root)
        run_no = self.journal.create_jobnet_run(
            root, self.def_version, scheduled, start_now=scheduled <= now
        )
        self._load_run(run_no)
        self.log.info("jobnet registered", jobnet=jobnet, run=run_no, at=iso(scheduled))
        return run_no

    # -- the step: decide and launch ------------------------------------------------------

    def step(self) -> None:
        """Collect ends, register due runs, decide, record intents: one commit; then
        start the processes whose intent is now durable."""
        now = self.clock()
        launches: list[tuple[RunState, UnitRun]] = []
        with self.journal.transaction():
            exited, self.exited = self.exited, []
            for fd in exited:
                self._handle_exit(fd)
            if not self.stopping:
                self.timetable.fire(now)
            if self._needs_time_wake(now):
                self.dirty.update(self.runs)
            for run_no in sorted(self.dirty):
                state = self.runs.get(run_no)
                if state is not None:
                    self._evaluate(state, now, launches)
            self.dirty.clear()
            if launches:
                self._record_intents(launches, now)
        if launches:
            self._spawn(launches, now)
        ended = [n for n, s in self.runs.items() if s.root_ur.status.is_final]
        for run_no in ended:
            for ur in self.runs.pop(run_no).urs.values():
                self.index.pop(ur.id, None)
        if ended:
            # a run queued behind one of these may start now
            self.dirty.update(n for n, s in self.runs.items() if s.root.schedule is not None)

    def _needs_time_wake(self, now: float) -> bool:
        wake = self._time_wake()
        return wake is not None and wake <= now

    def _time_wake(self) -> float | None:
        times = [s.wake for s in self.runs.values() if s.wake is not None]
        return min(times) if times else None

    @staticmethod
    def _state_wake(state: RunState) -> float | None:
        """The next time at which something in this run becomes due by itself."""
        times: list[float] = []
        if state.root_ur.status in (Status.WAIT_START_TIME, Status.WAITING):
            times.append(state.run.scheduled_at)
        for path in state.timed:
            not_before = state.urs[path].not_before
            if not_before is not None:
                times.append(not_before)
        return min(times) if times else None

    def next_wake(self) -> float | None:
        times: list[float] = []
        wake = self._time_wake()
        if wake is not None:
            times.append(wake)
        due = self.timetable.next_due()
        if due is not None:
            times.append(due)
        times.extend(at for _, at in self.stragglers)
        for t in self.tracked.values():
            if t.kill_at is not None:
                times.append(t.kill_at)
            elif t.deadline is not None:
                times.append(t.deadline)
        return min(times) if times else None

    def _running_jobs(self, state: RunState) -> int:
        return len(state.running_jobs)

    def _note_status(self, ur: UnitRun, _old: Status) -> None:
        found = self.index.get(ur.id)
        if found is not None:
            found[0].note(ur)

    def _evaluate(
        self, state: RunState, now: float, launches: list[tuple[RunState, UnitRun]]
    ) -> None:
        state.running = self._running_jobs(state)
        try:
            self._evaluate_run(state, now, launches)
        finally:
            state.wake = self._state_wake(state)

    def _evaluate_run(
        self, state: RunState, now: float, launches: list[tuple[RunState, UnitRun]]
    ) -> None:
        changed = True
        while changed:
            changed = False
            root = state.root_ur
            if (
                root.status in (Status.WAIT_START_TIME, Status.NOT_SCHEDULED, Status.WAITING)
                and state.run.scheduled_at <= now
                and not state.run.interrupted
                and not waits_for_earlier_run(state, list(self.runs.values()))
            ):
                self.journal.set_status(root, Status.RUNNING, "start time reached", started_at=now)
                changed = True
            if state.run.interrupted and root.status in (
                Status.WAIT_START_TIME, Status.NOT_SCHEDULED, Status.WAITING, Status.HELD
            ):
                self._finish_interrupted(state, now)
                return
            for net in state.jobnets:
                if state.urs[net].status is Status.RUNNING:
                    changed |= self._evaluate_jobnet(state, net, now, launches)

    def _nested_limit(
        self, state: RunState, path: str, launching: set[int], running: int, limit: int | None
    ) -> tuple[int, int | None]:
        """The first nested jobnet around ``path`` whose concurrency limit is reached."""
        for net in state.ancestors(path)[:-1]:  # the root's limit is ``state.running``
            net_limit = state.units[net].concurrency
            if net_limit is None:
                continue
            prefix = net + "/"
            busy = sum(
                1 for p, u in state.urs.items()
                if p.startswith(prefix) and u.kind is UnitKind.JOB
                and (u.status is Status.RUNNING or u.id in launching)
            )
            if busy >= net_limit:
                return busy, net_limit
        return running, limit

    def _decide(
        self, state: RunState, path: str, blocked: set[str], now: float, pending_launch: int,
        launching: set[int] | None = None,
    ) -> Decision:
        unit = state.units[path]
        ur = state.urs[path]
        preds = [
            (p.rsplit("/", 1)[-1], outcome(state.units[p], state.urs[p], p in blocked))
            for p in state.preds[path]
        ]
        parent_path = state.parent[path]
        parent = state.urs[parent_path] if parent_path else None
        running, limit = state.running, state.root.concurrency
        if unit.kind is UnitKind.JOB and (limit is None or running < limit):
            running, limit = self._nested_limit(state, path, launching or set(), running, limit)
        return decide(
            unit, ur, parent=parent, preds=preds, interrupted=state.run.interrupted, now=now,
            jobnet_running=running,
            jobnet_limit=limit,
            host_running=len(self.tracked) + pending_launch,
            host_limit=self.settings.host_concurrency,
        )

    def _evaluate_jobnet(
        self, state: RunState, net: str, now: float, launches: list[tuple[RunState, UnitRun]]
    ) -> bool:
        changed = False
        blocked: set[str] = set()
        launching = {ur.id for _, ur in launches}
        children = state.children[net]
        to_wait = [state.urs[c] for c in children if state.urs[c].status is Status.NOT_SCHEDULED]
        if to_wait:
            with self.journal.transaction():
                for ur in to_wait:
                    self.journal.set_status(ur, Status.WAITING, "jobnet started")
        for path in children:
            ur = state.urs[path]
            if ur.status not in (Status.WAITING, Status.HELD) or ur.id in launching:
                continue
            unit = state.units[path]
            d = self._decide(state, path, blocked, now, len(launches), launching)
            if d.action is Action.BLOCKED:
                blocked.add(path)
            elif d.action is Action.SKIP:
                with self.journal.transaction():
                    self.journal.set_status(ur, Status.NOT_EXECUTED, d.why, ended_at=now)
                    self._end_pending_inside(state, path, Status.NOT_EXECUTED,
                                             "its jobnet was not executed", now)
                changed = True
            elif d.action is Action.START:
                if unit.kind is UnitKind.JOB:
                    if not self.stopping:
                        launches.append((state, ur))
                        state.running += 1
                        launching.add(ur.id)
                elif unit.kind is UnitKind.JUDGE:
                    preds = state.preds[path]
                    pred = state.urs[preds[0]] if preds else None
                    ok = judge(unit, pred)
                    self.journal.set_status(
                        ur, Status.ENDED_NORMALLY,
                        "condition true" if ok else "condition false: dependent units skipped",
                        verdict=int(ok), started_at=now, ended_at=now,
                    )
                    changed = True
                elif unit.kind is UnitKind.OR:
                    self.journal.set_status(
                        ur, Status.ENDED_NORMALLY, "a predecessor ended", started_at=now,
                        ended_at=now,
                    )
                    changed = True
                elif unit.kind is UnitKind.JOBNET:
                    self.journal.set_status(ur, Status.RUNNING, "started", started_at=now)
                    changed = True
        if self._jobnet_complete(state, net, blocked, launching):
            self._end_jobnet(state, net, blocked, now)
            changed = True
        return changed

    def _jobnet_complete(
        self, state: RunState, net: str, blocked: set[str], launching: set[int]
    ) -> bool:
        for path in state.children[net]:
            ur = state.urs[path]
            if ur.id in launching or ur.status is Status.RUNNING or ur.status is Status.UNKNOWN:
                return False
            if ur.status in PENDING and path not in blocked and not state.run.interrupted:
                return False
        return True

    def _end_jobnet(self, state: RunState, net: str, blocked: set[str], now: float) -> None:
        with self.journal.transaction():
            for path in state.children[net]:
                ur = state.urs[path]
                if ur.status in PENDING:
                    if state.run.interrupted:
                        self.journal.set_status(
                            ur, Status.INTERRUPTED, "jobnet interrupted", ended_at=now
                        )
                    else:
                        self.journal.set_status(
                            ur, Status.NOT_EXECUTED,
                            "not executed: a predecessor ended abnormally", ended_at=now,
                        )
                    self._end_pending_inside(state, path, ur.status, "its jobnet did not run",
                                             now)
            statuses = [state.urs[p].status for p in state.children[net]]
            if state.run.interrupted:
                new, why = Status.KILLED, "killed by an operator"
            elif any(s in ABNORMAL for s in statuses) or blocked:
                new, why = Status.ENDED_ABNORMALLY, "a unit ended abnormally"
            elif Status.ENDED_WARNING in statuses:
                new, why = Status.ENDED_WARNING, "a unit ended with warning"
            else:
                new, why = Status.ENDED_NORMALLY, "every unit ended"
            ur = state.urs[net]
            if ur.status is not Status.RUNNING:
                self.journal.set_status(ur, Status.RUNNING, "started", started_at=now)
            self.journal.set_status(ur, new, why, ended_at=now)
        log = self.log.bind(run=state.run.id, unit=net)
        log.info("jobnet ended", status=new.value)

    def _end_pending_inside(
        self, state: RunState, net: str, status: Status, why: str, now: float
    ) -> None:
        """A jobnet that never started ends its units too: an ended run has no pending unit."""
        for path in state.descendants(net):
            ur = state.urs[path]
            if ur.status in PENDING:
                self.journal.set_status(ur, status, why, ended_at=now)

    def _finish_interrupted(self, state: RunState, now: float) -> None:
        with self.journal.transaction():
            for ur in state.urs.values():
                if ur.status in PENDING and ur.path != state.root.path:
                    self.journal.set_status(ur, Status.INTERRUPTED, "jobnet killed", ended_at=now)
            self.journal.set_status(
                state.root_ur, Status.INTERRUPTED, "killed before it started", ended_at=now
            )

    def _job_env(
        self, state: RunState, ur: UnitRun, unit: Unit, run_id: str, attempt: int
    ) -> dict[str, str]:
        # Only the job's own variables and its identity: the runner completes them
        # for the job's user (ajs3/engine/jobenv.py), with nothing of the daemon's.
        env = dict(unit.env)
        env.update(
            {
                "AJS3_RUN_ID": run_id,
                "AJS3_LHOST": self.lhost,
                "AJS3_UNIT": unit.path,
                "AJS3_SCHEDULED_AT": iso(state.run.scheduled_at),
                "AJS3_ATTEMPT": str(attempt),
                "AJS3_EPOCH": str(self.journal.epoch or 0),
                "AJS3_JOBNET_RUN": str(state.run.id),
                "AJS3_DATADIR": str(self.settings.datadir),
            }
        )
        return env

    def _record_intents(self, launches: list[tuple[RunState, UnitRun]], now: float) -> None:
        for state, ur in launches:
            attempt = ur.attempt + 1
            run_id = make_run_id(self.lhost, ur.path, state.run.scheduled_at, attempt)
            self.journal.set_status(
                ur, Status.RUNNING, "started", attempt=attempt, run_id=run_id,
                started_at=now, ended_at=None, exit_code=None, signal=None,
                epoch=self.journal.epoch, not_before=None,
            )

    def _spawn(self, launches: list[tuple[RunState, UnitRun]], now: float) -> None:
        """Start the supervisors of runs whose intent is committed (rule 1)."""
        ready: list[tuple[RunState, UnitRun, Path, dict[str, Any]]] = []
        for state, ur in launches:
            unit = state.units[ur.path]
            assert ur.run_id is not None
            try:
                env = self._job_env(state, ur, unit, ur.run_id, ur.attempt)
                jobdir, spec = self.runner.make_spec(
                    ur.run_id, unit.argv(), env, unit.cwd, unit.user
                )
            except (KeyError, ValueError) as exc:
                error = (f"no such user {unit.user!r}" if isinstance(exc, KeyError)
                         else str(exc))
                self.journal.set_status(
                    ur, Status.FAILED_TO_START, f"could not start: {error}", ended_at=now,
                )
                self.log.error("job failed to start", run_id=ur.run_id, unit=ur.path,
                               error=error)
                self.dirty.add(state.run.id)
                continue
            ready.append((state, ur, jobdir, spec))
        pids = self.runner.spawn_many([(jobdir, spec) for _, _, jobdir, spec in ready])
        unanswered: list[tuple[RunState, UnitRun]] = []
        for (state, ur, jobdir, _), pid in zip(ready, pids, strict=True):
            assert ur.run_id is not None
            unit = state.units[ur.path]
            if pid is None:
                unanswered.append((state, ur))
                continue
            if pid < 0:
                self.journal.set_status(ur, Status.FAILED_TO_START,
                                        "could not start: fork failed", ended_at=now)
                self.dirty.add(state.run.id)
                continue
            fd = self._watch(pid)
            t = rn.Tracked(
                run_id=ur.run_id, unit_run=ur.id, jobdir=jobdir, pid=pid,
                pidfd=fd, started_at=now, grace=unit.kill_grace,
            )
            if unit.timeout:
                t.deadline = now + unit.timeout
            self.tracked[ur.id] = t
            self.by_fd[fd] = ur.id
            self.log.info("job started", run_id=ur.run_id, unit=ur.path, attempt=ur.attempt,
                          pid=pid)
        if unanswered:
            # The supervisor server died mid-batch. A supervisor it forked records its
            # start within milliseconds; give it time, then treat each run as after a
            # restart.
            self.log.error("supervisor server failed; re-examining runs",
                           runs=len(unanswered))
            time.sleep(2.0)
            for state, ur in unanswered:
                self._recover_job(state, ur, StartMode.HOT)

    # -- ends of jobs --------------------------------------------------------------------

    def _state_of(self, unit_run: int) -> tuple[RunState, UnitRun] | None:
        return self.index.get(unit_run)

    def _watch(self, pid: int) -> int:
        """A pidfd for a supervisor; if it has ended (and was reaped) already, a key
        that is no descriptor, queued so the next step collects it."""
        fd = rn.pidfd_open(pid)
        if fd is not None:
            return fd
        self._gone -= 1
        self.exited.append(self._gone)
        return self._gone

    def on_exit(self, fd: int) -> None:
        """A supervisor we watch has exited; its end is collected by the next step,
        in the same transaction as the starts that it allows."""
        self.exited.append(fd)

    def _handle_exit(self, fd: int) -> None:
        unit_run = self.by_fd.pop(fd, None)
        if unit_run is None:
            return
        t = self.tracked.pop(unit_run)
        if fd >= 0:
            os.close(fd)
        if t.kill_stage == 1 and t.kill_at is not None:
            pgid = (t.info or self.runner.started(t.jobdir) or {}).get("pgid")
            if pgid and rn.group_alive(pgid):
                # The leader died of TERM, but the kill is for the whole group.
                self.stragglers.append((int(pgid), t.kill_at))
        found = self._state_of(unit_run)
        if found is None:
            return
        state, ur = found
        status = self.runner.status(t.jobdir)
        if status is None:
            started = self.runner.started(t.jobdir) or {}
            rn.kill_group(started.get("pgid"), signal.SIGKILL)
            self._in_doubt(state, ur, "its supervisor died before recording an end")
            return
        self._collect(state, ur, status, t.kill_reason)

    def _collect(self, state: RunState, ur: UnitRun, status: dict[str, Any], killed: str) -> None:
        unit = state.units[ur.path]
        now = self.clock()
        ended = float(status.get("ended_at") or now)
        # The supervisor repeats its start record's pids in status.json; an older one
        # (before a rolling upgrade) did not.
        started = status if "pgid" in status else (
            self.runner.started(self.runner.jobdir(ur.run_id or "")) or {}
        )
        common: dict[str, Any] = {
            "ended_at": ended, "pid": started.get("job_pid"), "pgid": started.get("pgid"),
            "pid_start": started.get("supervisor_start"),
        }
        code = status.get("exit_code")
        sig = status.get("signal")
        if status.get("failed_to_start"):
            new, why = Status.FAILED_TO_START, f"could not start: {status['failed_to_start']}"
        elif sig is not None:
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
            if killed:
                new, why = Status.KILLED, f"{killed} ({name})"
            else:
                new, why = Status.ENDED_ABNORMALLY, f"ended by signal {name}"
        else:
            new = end_status(unit, int(code) if code is not None else 255)
            why = f"exit code {code}"
        self.journal.set_status(ur, new, why, exit_code=code, signal=sig, **common)
        log = self.log.bind(run_id=ur.run_id, unit=ur.path, attempt=ur.attempt)
        log.info("job ended", status=new.value, exit_code=code, signal=sig)
        if (
            killed == self.stop_reason
            and unit.on_failover is RecoveryPolicy.RERUN
            and new is Status.KILLED
        ):
            self.journal.set_status(ur, Status.WAITING, "killed at service stop; policy rerun")
        elif new is Status.ENDED_ABNORMALLY and not killed and self._should_retry(unit, ur, code):
            self.journal.set_status(
                ur, Status.WAITING,
                f"retry {ur.retries + 1} of {unit.retry.count} after exit code {code}",
                retries=ur.retries + 1, not_before=now + unit.retry.interval,
            )
        self.dirty.add(state.run.id)
        if self.settings.host_concurrency is not None:
            self.dirty.update(self.runs)

    def _should_retry(self, unit: Unit, ur: UnitRun, code: Any) -> bool:
        if ur.retries >= unit.retry.count:
            return False
        return not unit.retry.on_exit_codes or code in unit.retry.on_exit_codes

    # -- timeouts and kills --------------------------------------------------------------

    def check_timers(self) -> None:
        now = self.clock()
        for pgid, at in [g for g in self.stragglers if g[1] <= now]:
            rn.kill_group(pgid, signal.SIGKILL)
            self.stragglers.remove((pgid, at))
        for t in list(self.tracked.values()):
            if t.kill_at is not None and now >= t.kill_at and t.kill_stage == 1:
                self._signal(t, signal.SIGKILL)
                t.kill_stage = 2
                t.kill_at = None
            elif t.kill_stage == 0 and t.deadline is not None and now >= t.deadline:
                self.kill_tracked(t, f"timed out after {t.deadline - t.started_at:g} s")

    def _signal(self, t: rn.Tracked, sig: int) -> None:
        if not t.info:  # not cached while the supervisor has not written it yet
            t.info = self.runner.started(t.jobdir) or {}
        rn.kill_group(t.info.get("pgid"), sig)

    def kill_tracked(self, t: rn.Tracked, reason: str, grace: float | None = None) -> None:
        if t.kill_stage:
            return
        t.kill_reason = reason
        self._signal(t, signal.SIGTERM)
        t.kill_stage = 1
        t.kill_at = self.clock() + (t.grace if grace is None else grace)
        self.log.info("job being killed", run_id=t.run_id, reason=reason)

    def kill_all(self, reason: str, grace: float) -> None:
        for t in list(self.tracked.values()):
            self.kill_tracked(t, reason, grace)

    # -- operator commands -----------------------------------------------------------------

    def _find(self, run_no: int | None, path: str | None, jobnet: str | None) -> RunState:
        if run_no is None:
            def matches(s: RunState) -> bool:
                if jobnet is not None:
                    return s.root.path == jobnet
                if path is not None:
                    return path == s.root.path or path.startswith(s.root.path.rstrip("/") + "/")
                return True

            candidates = [s for s in self.runs.values() if matches(s)]
            if not candidates:
                found = self._latest_run(jobnet or (path or ""))
                if found is None:
                    raise OperationError(
                        f"no run of {jobnet or path!r} found", code=Code.UNKNOWN_UNIT,
                        hint="list runs with `ajs3 show`",
                    )
                return found
            return max(candidates, key=lambda s: s.run.id)
        state = self.runs.get(run_no) or self._load_run(run_no)
        if state is None:
            raise OperationError(f"no jobnet run {run_no}", code=Code.UNKNOWN_UNIT)
        return state

    def _latest_run(self, path: str) -> RunState | None:
        for run in self.journal.jobnet_runs(containing=path, limit=1):
            return self.runs.get(run.id) or self._load_run(run.id)
        return None

    def _unit(self, state: RunState, path: str | None) -> UnitRun:
        key = path or state.root.path
        if key not in state.urs:
            raise OperationError(
                f"no unit {key!r} in run {state.run.id} of {state.root.path}",
                code=Code.UNKNOWN_UNIT, hint="see the unit paths with `ajs3 show`",
            )
        return state.urs[key]

    def hold(self, run_no: int | None, path: str) -> UnitRun:
        state = self._find(run_no, path, None)
        ur = self._unit(state, path)
        if ur.status not in (Status.NOT_SCHEDULED, Status.WAITING, Status.WAIT_START_TIME):
            raise OperationError(
                f"{path} is {ur.status.label}; only a unit that has not started can be held",
                code=Code.BAD_STATE,
            )
        self.journal.set_status(ur, Status.HELD, "held by an operator")
        self.dirty.add(state.run.id)
        return ur

    def release(self, run_no: int | None, path: str, as_: str | None = None) -> UnitRun:
        state = self._find(run_no, path, None)
        ur = self._unit(state, path)
        now = self.clock()
        if ur.status is Status.HELD:
            self.journal.set_status(ur, Status.WAITING, "released by an operator")
        elif ur.status is Status.UNKNOWN:
            if as_ not in ("normal", "abnormal"):
                raise OperationError(
                    f"{path} has an unknown end status; say how it ended",
                    code=Code.BAD_ARGUMENT,
                    hint="use `--as normal` or `--as abnormal`, or `ajs3 rerun --only`",
                )
            new = Status.ENDED_NORMALLY if as_ == "normal" else Status.ENDED_ABNORMALLY
            self.journal.set_status(ur, new, f"operator decided: ended {as_}ly", ended_at=now)
        else:
            raise OperationError(
                f"{path} is {ur.status.label}; only a held unit or one with an unknown end "
                "status can be released",
                code=Code.BAD_STATE,
            )
        self.dirty.add(state.run.id)
        return ur

    def kill(self, run_no: int | None, path: str | None, jobnet: str | None) -> RunState:
        state = self._find(run_no, path, jobnet)
        target = path or state.root.path
        ur = self._unit(state, target)
        unit = state.units[target]
        if unit.kind is UnitKind.JOB:
            t = self.tracked.get(ur.id)
            if t is None:
                raise OperationError(f"{target} is {ur.status.label}, not running",
                                     code=Code.BAD_STATE)
            self.kill_tracked(t, "killed by an operator")
            return state
        if target != state.root.path:
            raise OperationError("kill a job or a whole root jobnet run", code=Code.BAD_ARGUMENT)
        if state.root_ur.status.is_final:
            raise OperationError(f"run {state.run.id} has ended already", code=Code.BAD_STATE)
        self.journal.set_interrupted(state.run.id)
        state.run.interrupted = True
        for t in list(self.tracked.values()):
            if any(u.id == t.unit_run for u in state.urs.values()):
                self.kill_tracked(t, "killed by an operator")
        self.dirty.add(state.run.id)
        return state

    def rerun(self, run_no: int | None, jobnet: str | None, mode: str,
              path: str | None) -> RunState:
        state = self._find(run_no, path, jobnet)
        if mode in ("from", "only") and not path:
            raise OperationError(f"rerun --{mode} needs a unit path", code=Code.BAD_ARGUMENT)
        if any(ur.status is Status.RUNNING and ur.kind is UnitKind.JOB
               for ur in state.urs.values()):
            raise OperationError(
                f"run {state.run.id} still has running jobs", code=Code.BAD_STATE,
                hint="wait for them or kill them first",
            )
        targets: list[str] = []
        if mode == "failed":
            for p, ur in state.urs.items():
                unit = state.units[p]
                if unit.kind is UnitKind.JOBNET:
                    continue
                if ur.status in ABNORMAL or ur.status in (
                    Status.UNKNOWN, Status.NOT_EXECUTED, Status.INTERRUPTED
                ) or (unit.recovery and ur.status in FINAL):
                    targets.append(p)
            failed = ABNORMAL | {Status.UNKNOWN, Status.INTERRUPTED}
            # Skipped units and unneeded recovery units are rerun along with a failed unit,
            # but are no reason for a rerun on their own.
            if not any(state.urs[p].status in failed for p in targets):
                raise OperationError(
                    f"run {state.run.id} has no unit that ended abnormally", code=Code.BAD_STATE,
                    hint="use --from UNIT or --only UNIT",
                )
        else:
            assert path is not None
            self._unit(state, path)
            targets = [path, *state.descendants(path)]
            if mode == "from":
                chain = [path, *state.ancestors(path)]
                for p in chain:
                    for d in state.downstream(p):
                        targets.extend([d, *state.descendants(d)])
        with self.journal.transaction():
            if state.run.interrupted:
                self.journal.conn.execute(
                    "UPDATE jobnet_runs SET interrupted=0 WHERE id=?", (state.run.id,)
                )
                state.run.interrupted = False
            reset = set(targets)
            for p in targets:
                reset.update(state.ancestors(p))
            for p in state.urs:
                if p not in reset:
                    continue
                ur = state.urs[p]
                if ur.status in FINAL or ur.status is Status.UNKNOWN:
                    self.journal.set_status(
                        ur, Status.WAITING, f"rerun ({mode})", retries=0, not_before=None,
                        verdict=None,
                    )
        self.log.info("rerun", run=state.run.id, mode=mode, unit=path, units=len(reset))
        self.dirty.add(state.run.id)
        return state

    def explain(self, run_no: int | None, path: str) -> dict[str, Any]:
        """Why a unit is where it is: each readiness rule and its result."""
        state = self._find(run_no, path, None)
        ur = self._unit(state, path)
        result: dict[str, Any] = {
            "run": state.run.id, "unit": path, "status": ur.status.value,
            "label": ur.status.label, "reason": ur.reason, "checks": [],
        }
        if ur.status in (Status.WAITING, Status.HELD, Status.NOT_SCHEDULED) and state.parent[path]:
            d = self._decide(state, path, set(), self.clock(), 0)
            result["checks"] = [
                {"rule": c.name, "passed": c.passed, "reason": c.reason} for c in d.checks
            ]
        return result


def _with_hold(root: Unit) -> Unit:
    from dataclasses import replace

    return replace(root, hold=True)


__all__ = ["AjsError", "Outcome", "Scheduler", "Settings", "make_run_id"]
