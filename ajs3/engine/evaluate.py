"""Evaluation: apply the readiness rules to the units of a run and move it on.

Within the step's transaction: a root jobnet starts when its time has come, units
wait, are skipped or ended (judgment and OR jobs, jobnets), and jobs that may start
are handed back as launches for :mod:`ajs3.engine.dispatch`.
"""

from __future__ import annotations

import itertools
import os

from ajs3.definitions.units import Unit
from ajs3.engine import connectors
from ajs3.engine.core import Core
from ajs3.engine.readiness import (
    Action,
    Check,
    Decision,
    decide,
    decide_root,
    earlier_runs_running,
    outcome,
    rule_concurrency,
    waits_for_predecessor,
)
from ajs3.engine.runstate import RunState
from ajs3.journal.store import UnitRun
from ajs3.model import (
    ABNORMAL,
    EVALUATED,
    PENDING,
    Compare,
    ReasonCode,
    Status,
    UnitKind,
)

Launches = list[tuple[RunState, UnitRun]]


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


def state_wake(state: RunState, now: float) -> float | None:
    """The next time after ``now`` at which something in this run becomes due by itself.

    A time already passed is no wake: what still holds the unit back (an earlier run, a
    limit, a predecessor, an operator) marks the run for evaluation when it changes, and
    a wake in the past would make the daemon's loop spin until then.
    """
    times: list[float] = []
    if state.root_ur.status in (Status.WAIT_START_TIME, Status.WAITING):
        times.append(state.run.scheduled_at)
    for path in state.timed:
        not_before = state.urs[path].not_before
        if not_before is not None:
            times.append(not_before)
    later = [t for t in times if t > now]
    return min(later) if later else None


class Evaluator:
    def __init__(self, core: Core) -> None:
        self.core = core

    def evaluate(self, state: RunState, now: float, launches: Launches) -> None:
        state.running = len(state.running_jobs)
        try:
            self._evaluate_run(state, now, launches)
        finally:
            state.wake = state_wake(state, now)

    def decide_root(self, state: RunState, now: float) -> Decision:
        """The readiness rules of a root jobnet that has not started."""
        return decide_root(
            state.root_ur,
            scheduled_at=state.run.scheduled_at,
            now=now,
            interrupted=state.run.interrupted,
            earlier=earlier_runs_running(state, self.core.runs.values()),
        )

    def _evaluate_run(self, state: RunState, now: float, launches: Launches) -> None:
        journal = self.core.journal
        changed = True
        while changed:
            changed = False
            root = state.root_ur
            if (
                root.status in PENDING
                and root.status is not Status.HELD
                and (self.decide_root(state, now).action is Action.START)
            ):
                journal.set_status(
                    root,
                    Status.RUNNING,
                    ReasonCode.START_TIME_REACHED,
                    "start time reached",
                    started_at=now,
                )
                changed = True
            if state.run.interrupted and root.status in PENDING:
                self._finish_interrupted(state, now)
                return
            for net in state.jobnets:
                if state.urs[net].status is Status.RUNNING:
                    changed |= self._evaluate_jobnet(state, net, now, launches)

    def _nested_limit(
        self,
        state: RunState,
        path: str,
        launching: dict[int, str],
        running: int,
        limit: int | None,
    ) -> tuple[int, int | None]:
        """The first nested jobnet around ``path`` whose concurrency limit is reached.
        ``launching``: the jobs of this run chosen in this evaluation, id to path."""
        for net in state.ancestors(path)[:-1]:  # the root's limit is ``state.running``
            net_limit = state.units[net].concurrency
            if net_limit is None:
                continue
            prefix = net + "/"
            # The running jobs and those being launched: a few, where the run may hold
            # thousands of unit runs.
            busy = sum(1 for p in state.running_jobs.values() if p.startswith(prefix)) + sum(
                1
                for i, p in launching.items()
                if p.startswith(prefix) and i not in state.running_jobs
            )
            if busy >= net_limit:
                return busy, net_limit
        return running, limit

    def _jobnet_slots(
        self, state: RunState, path: str, unit: Unit, launching: dict[int, str]
    ) -> tuple[int, int | None]:
        """The jobs running and the limit that the jobnet rule applies to ``unit``: its
        run's, or (a job) the first nested jobnet around it whose limit is reached."""
        running, limit = state.running, state.root.concurrency
        if unit.kind is UnitKind.JOB and (limit is None or running < limit):
            running, limit = self._nested_limit(state, path, launching, running, limit)
        return running, limit

    def decide(
        self,
        state: RunState,
        path: str,
        blocked: set[str],
        now: float,
        pending_launch: int,
        launching: dict[int, str] | None = None,
    ) -> Decision:
        """The readiness rules of a unit below the root."""
        unit = state.units[path]
        ur = state.urs[path]
        preds = [
            (p.rsplit("/", 1)[-1], outcome(state.units[p], state.urs[p], p in blocked))
            for p in state.preds[path]
        ]
        parent_path = state.parent[path]
        parent = state.urs[parent_path] if parent_path else None
        running, limit = self._jobnet_slots(state, path, unit, launching or {})
        return decide(
            unit,
            ur,
            parent=parent,
            preds=preds,
            interrupted=state.run.interrupted,
            now=now,
            jobnet_running=running,
            jobnet_limit=limit,
            host_running=len(self.core.tracked) + pending_launch,
            host_limit=self.core.settings.host_concurrency,
            connection=self._connection(state, unit),
        )

    def _connection(self, state: RunState, unit: Unit) -> Check | None:
        if unit.kind is not UnitKind.CONNECTOR:
            return None
        core = self.core
        return connectors.connection(core.journal, core.definitions.jobnets, state, unit).check

    def _evaluate_jobnet(self, state: RunState, net: str, now: float, launches: Launches) -> bool:
        journal = self.core.journal
        changed = False
        blocked: set[str] = set()
        launching = {ur.id: ur.path for st, ur in launches if st is state}
        children = state.children[net]
        if net not in state.opened:
            journal.set_statuses(
                [
                    (ur, {})
                    for ur in (state.urs[path] for path in children)
                    if ur.status is Status.NOT_SCHEDULED
                ],
                Status.WAITING,
                ReasonCode.JOBNET_STARTED,
                "jobnet started",
            )
            state.opened.add(net)
        # Whether the limits around this jobnet's jobs are reached: the same for every
        # child, and only a launch changes it (to reached, never back).
        no_slot: bool | None = None
        # The first children that are neither waiting nor held stay so until a status
        # change tells the run (RunState.note): the look starts after them.
        first = state.settled.get(net, 0)
        while first < len(children) and state.urs[children[first]].status not in EVALUATED:
            first += 1
        state.settled[net] = first
        flat = net in state.flat
        parked = state.parked
        for path in itertools.islice(children, first, None):
            if path in parked:
                continue  # waits for a predecessor, as nothing it depends on changed
            ur = state.urs[path]
            if ur.status not in EVALUATED or ur.id in launching:
                continue
            unit = state.units[path]
            if state.preds[path]:
                if self._waits_for_predecessor(state, path, unit, blocked):
                    parked.add(path)
                    continue
            elif unit.kind is UnitKind.JOB:
                if no_slot is None:
                    no_slot = self._no_slot(state, path, unit, launching, len(launches))
                if no_slot:
                    if flat:  # so would it for each of the rest
                        break
                    continue  # decide() would say WAIT (a concurrency limit is reached)
            d = self.decide(state, path, blocked, now, len(launches), launching)
            if d.action is Action.BLOCKED:
                blocked.add(path)
                # its successors (later in the order) may be blocked by it in turn
                parked.difference_update(state.succs[path])
            elif d.action is Action.SKIP:
                journal.set_status(
                    ur, Status.NOT_EXECUTED, ReasonCode.NOT_EXECUTED, d.why, ended_at=now
                )
                self._end_pending_inside(
                    state, path, Status.NOT_EXECUTED, "its jobnet was not executed", now
                )
                changed = True
            elif d.action is Action.START:
                if unit.kind is UnitKind.JOB:
                    if not self.core.stopping:
                        launches.append((state, ur))
                        state.running += 1
                        launching[ur.id] = ur.path
                        no_slot = None
                elif unit.kind is UnitKind.JUDGE:
                    preds = state.preds[path]
                    pred = state.urs[preds[0]] if preds else None
                    ok = judge(unit, pred)
                    journal.set_status(
                        ur,
                        Status.ENDED_NORMALLY,
                        ReasonCode.JUDGED,
                        "condition true" if ok else "condition false: dependent units skipped",
                        verdict=int(ok),
                        started_at=now,
                        ended_at=now,
                    )
                    changed = True
                elif unit.kind is UnitKind.OR:
                    journal.set_status(
                        ur,
                        Status.ENDED_NORMALLY,
                        ReasonCode.PREDECESSOR_ENDED,
                        "a predecessor ended",
                        started_at=now,
                        ended_at=now,
                    )
                    changed = True
                elif unit.kind is UnitKind.CONNECTOR:
                    defs = self.core.definitions.jobnets
                    connectors.end_connector(journal, defs, state, ur, unit, now)
                    changed = True
                elif unit.kind is UnitKind.FILEWATCH:  # ends by ajs3.engine.watches
                    journal.set_status(
                        ur, Status.RUNNING, ReasonCode.WATCHING, "watching", started_at=now
                    )
                    changed = True
                elif unit.kind is UnitKind.JOBNET:
                    journal.set_status(
                        ur, Status.RUNNING, ReasonCode.STARTED, "started", started_at=now
                    )
                    changed = True
        if self._jobnet_complete(state, net, first, blocked, launching):
            self._end_jobnet(state, net, blocked, now)
            changed = True
        return changed

    @staticmethod
    def _waits_for_predecessor(state: RunState, path: str, unit: Unit, blocked: set[str]) -> bool:
        """Whether a predecessor that has not ended makes the unit wait, whatever the
        other rules say: asked of every waiting unit at every step (a chain of N jobs
        asks it N times per job), before the rules."""
        preds = state.preds[path]
        if not preds:
            return False
        urs, units = state.urs, state.units
        return waits_for_predecessor(unit, (outcome(units[p], urs[p], p in blocked) for p in preds))

    def _no_slot(
        self,
        state: RunState,
        path: str,
        unit: Unit,
        launching: dict[int, str],
        pending_launch: int,
    ) -> bool:
        """Whether a concurrency rule that :meth:`decide` applies to the job ``unit`` at
        ``path`` fails: its run's, a nested jobnet's around it, or the logical host's."""
        running, limit = self._jobnet_slots(state, path, unit, launching)
        host_running = len(self.core.tracked) + pending_launch
        host_limit = self.core.settings.host_concurrency
        return not (
            rule_concurrency(running, limit, "jobnet").passed
            and rule_concurrency(host_running, host_limit, "logical host").passed
        )

    def _jobnet_complete(
        self,
        state: RunState,
        net: str,
        first: int,
        blocked: set[str],
        launching: dict[int, str],
    ) -> bool:
        """Whether every child of ``net`` has ended or can never run. The look starts at
        its ``first`` child that may wait, where an unfinished one is most likely found
        (a chain's next job), rather than at the done ones before it."""
        children = state.children[net]
        for path in itertools.chain(
            itertools.islice(children, first, None), itertools.islice(children, first)
        ):
            ur = state.urs[path]
            if ur.id in launching or ur.status is Status.RUNNING or ur.status is Status.UNKNOWN:
                return False
            if ur.status in PENDING and path not in blocked and not state.run.interrupted:
                return False
        return True

    def _end_jobnet(self, state: RunState, net: str, blocked: set[str], now: float) -> None:
        """End a running jobnet whose units have all ended or can never run."""
        journal = self.core.journal
        for path in state.children[net]:
            ur = state.urs[path]
            if ur.status in PENDING:
                if state.run.interrupted:
                    journal.set_status(
                        ur,
                        Status.INTERRUPTED,
                        ReasonCode.INTERRUPTED,
                        "jobnet interrupted",
                        ended_at=now,
                    )
                else:
                    journal.set_status(
                        ur,
                        Status.NOT_EXECUTED,
                        ReasonCode.NOT_EXECUTED,
                        "not executed: a predecessor ended abnormally",
                        ended_at=now,
                    )
                self._end_pending_inside(state, path, ur.status, "its jobnet did not run", now)
        statuses = [state.urs[p].status for p in state.children[net]]
        if state.run.interrupted:
            new, code, why = Status.KILLED, ReasonCode.KILLED_BY_OPERATOR, "killed by an operator"
        elif any(s in ABNORMAL for s in statuses) or blocked:
            new, code, why = (
                Status.ENDED_ABNORMALLY,
                ReasonCode.JOBNET_ENDED,
                "a unit ended abnormally",
            )
        elif Status.ENDED_WARNING in statuses:
            new, code, why = (
                Status.ENDED_WARNING,
                ReasonCode.JOBNET_ENDED,
                "a unit ended with warning",
            )
        else:
            new, code, why = Status.ENDED_NORMALLY, ReasonCode.JOBNET_ENDED, "every unit ended"
        journal.set_status(state.urs[net], new, code, why, ended_at=now)
        self.core.log.bind(run=state.run.id, unit=net).info("jobnet ended", status=new.value)

    def _end_pending_inside(
        self, state: RunState, net: str, status: Status, why: str, now: float
    ) -> None:
        """A jobnet that never started ends its units too: an ended run has no pending unit."""
        code = ReasonCode.INTERRUPTED if status is Status.INTERRUPTED else ReasonCode.NOT_EXECUTED
        for path in state.descendants(net):
            ur = state.urs[path]
            if ur.status in PENDING:
                self.core.journal.set_status(ur, status, code, why, ended_at=now)

    def _finish_interrupted(self, state: RunState, now: float) -> None:
        journal = self.core.journal
        for ur in state.urs.values():
            if ur.status in PENDING and ur.path != state.root.path:
                journal.set_status(
                    ur, Status.INTERRUPTED, ReasonCode.INTERRUPTED, "jobnet killed", ended_at=now
                )
        journal.set_status(
            state.root_ur,
            Status.INTERRUPTED,
            ReasonCode.INTERRUPTED,
            "killed before it started",
            ended_at=now,
        )
