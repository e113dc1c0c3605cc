"""The scheduler of one logical host: the step, and what the daemon asks of it.

The daemon calls :meth:`Scheduler.step` after every event and sleeps until
:meth:`Scheduler.next_wake`; the scheduler itself never sleeps or polls. One step
collects the jobs that ended, registers the runs that fell due, evaluates the runs
that changed and records the intent of every start, in one transaction; then it starts
the supervisors of those runs.

The work is done by its parts (see :mod:`ajs3.engine.core`); statuses change only
through :meth:`ajs3.journal.store.Journal.set_status`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ajs3.definitions.units import DefinitionSet
from ajs3.engine import connectors, planchanges, runvars, suspend
from ajs3.engine import runner as rn
from ajs3.engine.collect import Collector
from ajs3.engine.commands import Commands
from ajs3.engine.core import Core
from ajs3.engine.delays import DelayWatch
from ajs3.engine.dispatch import SEND_EVERY, Dispatcher, iso
from ajs3.engine.evaluate import Evaluator, Launches
from ajs3.engine.indoubt import InDoubt
from ajs3.engine.reconcile import Reconciler
from ajs3.engine.runstate import RunState
from ajs3.engine.timetable import SEEN_KEY, Timetable
from ajs3.engine.watches import Watches
from ajs3.errors import Code, OperationError
from ajs3.journal.files import DiskFull
from ajs3.journal.store import Journal, UnitRun
from ajs3.model import StartMode, Status, UnitKind
from ajs3.schedule import OverlapAction, overlap_action
from ajs3.settings import Settings

#: How often a daemon looks for the end records of jobs it re-adopted (seconds).
ADOPTED_LOOK = 1.0
#: how often the claim logs no run needs any more are removed (ADR 0033), in seconds
CUT_CLAIM_LOGS = 300.0
#: the starts whose intents go with a step's own commit; the rest get a commit of their
#: own once these are on their way (ADR 0037)
FIRST_STARTS = SEND_EVERY


class Scheduler:
    """Runs the jobnets of one logical host."""

    def __init__(
        self,
        journal: Journal,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.core = core = Core(journal, settings, clock)
        self.journal = journal
        self.settings = settings
        self.clock = clock
        #: when to look again for the end records of re-adopted jobs
        self._adopted_look = 0.0
        self._cut_claim_logs = 0.0  # when to cut the claim logs next
        self.dispatch = Dispatcher(core)
        doubt = InDoubt(core, self.dispatch)
        self.collector = Collector(core, doubt)
        self.doubt = doubt  # the daemon hands it to the execution hosts' jobs
        self.reconciler = Reconciler(core, self.dispatch, self.collector, doubt)
        self.evaluator = Evaluator(core)
        self.commands = Commands(core, self.evaluator, self.collector)
        self.timetable = Timetable()
        self.timetable.plan = planchanges.load(journal)
        self.delays = DelayWatch(journal, core.runs)
        self.watches = Watches(
            core, lambda jobnet, values, at: self.register(jobnet, at=at, values=values)
        )

    def use_settings(self, settings: Settings) -> None:
        """Settings read again (at ``define``): the jobs started from now on follow them."""
        self.settings = self.core.settings = self.core.runner.settings = settings

    # -- what the daemon reads and sets ---------------------------------------------------

    @property
    def log(self) -> Any:
        return self.core.log

    @log.setter
    def log(self, value: Any) -> None:
        self.core.log = value

    @property
    def stopping(self) -> bool:
        return self.core.stopping

    @stopping.setter
    def stopping(self, value: bool) -> None:
        self.core.stopping = value

    @property
    def stop_reason(self) -> str:
        return self.core.stop_reason

    @property
    def runner(self) -> rn.Runner:
        return self.core.runner

    @property
    def runs(self) -> dict[int, RunState]:
        return self.core.runs

    @property
    def tracked(self) -> dict[int, rn.Tracked]:
        return self.core.tracked

    @property
    def by_fd(self) -> dict[int, int]:
        return self.core.by_fd

    @property
    def definitions(self) -> DefinitionSet:
        return self.core.definitions

    # -- definitions and registrations ----------------------------------------------------

    def apply_definitions(self, defs: DefinitionSet, sources: list[str]) -> int:
        version = self.journal.apply_definitions(defs, sources)
        self.core.use_definitions(version, defs)
        self.log.info("definitions applied", version=version, jobnets=len(defs.jobnets))
        self.timetable.refresh(defs)
        self.watches.look_again()
        return version

    def register(
        self,
        jobnet: str,
        at: float | None = None,
        hold: bool = False,
        values: dict[str, str] | None = None,
    ) -> int:
        core = self.core
        defs = core.definitions
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
            root = replace(root, hold=True)
        run_no = self.journal.create_jobnet_run(
            root, core.def_version, scheduled, start_now=scheduled <= now
        )
        runvars.store(self.journal, run_no, values or {}, "")
        core.load_run(run_no)
        self.log.info("jobnet registered", jobnet=jobnet, run=run_no, at=iso(scheduled))
        return run_no

    # -- start --------------------------------------------------------------------------

    def recover(self, mode: StartMode) -> None:
        """Bring the journal in line with reality at start (docs/design.md rules 4-6), then
        catch up with the runs that fell due while the logical host was down."""
        self.reconciler.recover(mode)
        self.cut_claim_logs()
        self.start_timetable(self.clock())

    def cut_claim_logs(self) -> None:
        """At start once recovery needs them no more, then every few minutes."""
        self._cut_claim_logs = time.monotonic() + CUT_CLAIM_LOGS
        self.reconciler.cut_claim_logs()

    def start_timetable(self, now: float) -> None:
        """Apply each jobnet's catch-up policy to the runs due since the last owner
        stopped scheduling, and take up the timetable from ``now``."""
        stored = self.journal.get_meta(SEEN_KEY)
        seen = float(stored) if stored is not None else None
        for decision in self.timetable.catch_up(self.core.definitions, seen, now):
            if suspend.holds_back(self.journal, decision.jobnet, decision.due):
                self.log.info("catch-up left for resume: jobnet suspended", due=decision.due)
                continue
            self.log.info(
                "catch-up",
                jobnet=decision.jobnet,
                due=decision.due,
                run=decision.run,
                decision=decision.reason,
            )
            with self.journal.joined():  # the run and its catch_up event, or neither
                run = self.register(decision.jobnet, at=decision.due) if decision.run else None
                self.journal.note(
                    "catch_up",
                    jobnet=decision.jobnet,
                    due=decision.due,
                    registered=decision.run,
                    run=run,
                    detail=decision.reason,
                )
        self.journal.set_meta(SEEN_KEY, repr(now))

    def register_due(self, now: float) -> None:
        """Register every scheduled run that fell due since the last call."""
        if not self.timetable.is_due(now):
            return
        defs = self.core.definitions
        for occ in self.timetable.take_due(defs, now):
            jobnet = defs.jobnets.get(occ.jobnet)
            if jobnet is None:
                continue
            log = self.log.bind(jobnet=occ.jobnet, due=occ.due)
            if suspend.holds_back(self.journal, occ.jobnet, occ.due):
                log.info("scheduled run not registered: jobnet suspended")
                continue
            if occ.deadline is not None and now > occ.deadline:
                log.warning("scheduled run skipped: its start deadline has passed")
                continue
            running, queued = self._active(occ.jobnet)
            action, why = overlap_action(jobnet, running, queued)
            if action is OverlapAction.SKIP:
                log.warning("scheduled run skipped", reason=why)
                continue
            run = self.register(occ.jobnet, at=occ.due)
            log.info("scheduled run registered", run=run, action=action.value, reason=why)
        self.journal.set_meta(SEEN_KEY, repr(now))

    def _active(self, jobnet: str) -> tuple[int, int]:
        """How many runs of a jobnet are running, and how many wait to."""
        running = queued = 0
        for state in self.core.runs.values():
            if state.root.path != jobnet:
                continue
            status = state.root_ur.status
            if status is Status.RUNNING:
                running += 1
            elif not status.is_final:
                queued += 1
        return running, queued

    # -- the step -----------------------------------------------------------------------

    def step(self) -> None:
        """Collect ends, register due runs, decide, record intents: one commit; then
        start the processes whose intent is now durable.

        The commit has no fsync of its own when the supervisor server fdatasyncs the
        journal before it starts the jobs handed to it (ADR 0034, 0035); a step that hands
        it none makes its commit durable itself, before anything else acts on it.

        If the commit fails for want of space (:class:`DiskFull`, AJS3-E208), nothing
        of the step is taken as done: the ends are collected again by a later step,
        the runs are read back from the journal, and nothing starts (its intent was
        not recorded)."""
        core = self.core
        now = self.clock()
        launches: Launches = []
        exited, core.exited = core.exited, []
        taken = [(fd, core.by_fd.get(fd)) for fd in exited]
        tracked = {uid: core.tracked[uid] for _, uid in taken if uid in core.tracked}
        codes = {uid: core.kill_codes[uid] for uid in tracked if uid in core.kill_codes}
        timetable = vars(self.timetable).copy()
        deferred = core.runner.syncs(self.journal.wal.current())
        owed = False
        later: Launches = []
        try:
            with self.journal.transaction(durable=not deferred):
                self.collector.handle_exits(exited)
                unclaimed, core.unclaimed = core.unclaimed, []
                for unclaimed_run, ur in unclaimed:
                    self.reconciler.recover_unclaimed(unclaimed_run, ur)
                if not core.stopping:
                    self.register_due(now)
                    self.watches.check(now)
                if self._needs_time_wake(now):
                    core.dirty.update(core.runs)
                for run_no in sorted(core.dirty):
                    state = core.runs.get(run_no)
                    if state is not None:
                        self.evaluator.evaluate(state, now, launches)
                core.dirty.clear()
                self.watches.establish(now)
                self.delays.check(now)
                # The first few intents go with the step's commit; the rest are recorded
                # while the server claims and starts those (ADR 0037).
                launches, later = launches[:FIRST_STARTS], launches[FIRST_STARTS:]
                if launches:
                    self.dispatch.record_intents(launches, now)
            owed = self.journal.last_unsynced  # this step's own commit, not yet durable
        except DiskFull:
            vars(self.timetable).update(timetable)
            core.kill_codes.update(codes)
            for fd, uid in taken:
                if uid is None or uid not in tracked:
                    continue
                if fd in core.by_fd:  # not reached
                    core.exited.append(fd)
                else:  # collected, its pidfd closed: collected again under a new key
                    t = tracked[uid]
                    key = core.gone_key()
                    t.pidfd = key
                    core.tracked[uid] = t
                    core.by_fd[key] = uid
            self.resync()
            raise
        self._start(launches, now, owed)
        if later:
            self._record_and_start(later, now)
        ended = [n for n, s in core.runs.items() if s.root_ur.status.is_final]
        for run_no in ended:
            for ur in core.runs.pop(run_no).urs.values():
                core.index.pop(ur.id, None)
        if ended:
            # a run queued behind one of these may start now
            core.dirty.update(n for n, s in core.runs.items() if s.root.schedule is not None)
            # a jobnet connector may wait for one of these (ajs3.engine.connectors)
            core.dirty.update(connectors.waiting_runs(core.runs))

    def _start(self, launches: Launches, now: float, owed: bool) -> None:
        """Hand starts whose intent is committed to their supervisors; ``owed``: that
        commit is not durable yet, which the server sees to before it starts a job
        (ADR 0034), else this does."""
        handed_over = False
        if launches:
            try:
                unanswered, handed_over = self.dispatch.spawn(launches, now)
            except DiskFull:  # a start that failed could not be recorded
                self.resync()  # the others started: watched again from their records
                raise
            if unanswered:
                self.journal.sync()
                self._reexamine(unanswered)
        if owed and not handed_over:
            self.journal.sync()

    def _record_and_start(self, later: Launches, now: float) -> None:
        """The starts of a step beyond its first :data:`FIRST_STARTS`: their intents in a
        commit of their own, then started. What the step decided stands; a commit that
        fails for want of space leaves them waiting, as the journal says (AJS3-E208)."""
        deferred = self.core.runner.syncs(self.journal.wal.current())
        try:
            with self.journal.transaction(durable=not deferred):
                self.dispatch.record_intents(later, now)
        except DiskFull:
            self.resync()
            raise
        self._start(later, now, self.journal.last_unsynced)

    def note_disk_full(self) -> None:
        """A journal write failed for want of space (the daemon says so)."""
        self.core.disk_full_at = self.clock()

    def resync(self) -> None:
        """Read the definitions and the runs in memory back from the journal, after a
        transaction that changed them in memory was rolled back (a full disk); a job
        started meanwhile whose supervisor is not watched is taken up again."""
        core = self.core
        self.delays.forget()  # what it raised in the rolled-back step is raised again
        self.watches.look_again()  # what fired in the rolled-back step fires again
        version, defs = self.journal.definitions()
        core.use_definitions(version, defs)
        self.timetable.plan = planchanges.load(self.journal)
        self.timetable.refresh(defs)
        for run_no in list(core.runs):
            for ur in core.runs.pop(run_no).urs.values():
                core.index.pop(ur.id, None)
        for run_no in self.journal.active_jobnet_runs():
            state = core.load_run(run_no)
            if state is None:
                continue
            for ur in list(state.urs.values()):
                if (
                    ur.status is Status.RUNNING
                    and ur.id not in core.tracked
                    and ur.run_id
                    and state.units[ur.path].kind is UnitKind.JOB
                ):
                    try:
                        self.reconciler.recover_job(state, ur, StartMode.HOT)
                    except DiskFull:
                        pass  # taken up by the next resync

    def _reexamine(self, unanswered: list[tuple[RunState, UnitRun]]) -> None:
        # The supervisor server died mid-batch. A supervisor it forked records its start
        # within milliseconds; give it time, then treat each run as after a restart.
        self.log.error("supervisor server failed; re-examining runs", runs=len(unanswered))
        time.sleep(2.0)
        for state, ur in unanswered:
            self.reconciler.recover_job(state, ur, StartMode.HOT)

    def _needs_time_wake(self, now: float) -> bool:
        wake = self._time_wake()
        return wake is not None and wake <= now

    def _time_wake(self) -> float | None:
        times = [s.wake for s in self.core.runs.values() if s.wake is not None]
        return min(times) if times else None

    def next_wake(self) -> float | None:
        times: list[float] = []
        if self.core.dirty or self.core.exited:  # a run ended, a job ended: now
            times.append(self.clock())
        adopted = self.adopted_wake()
        if adopted is not None:
            times.append(adopted)
        wake = self._time_wake()
        if wake is not None:
            times.append(wake)
        due = self.timetable.next_due()
        if due is not None:
            times.append(due)
        delay = self.delays.next_deadline()
        if delay is not None:
            times.append(delay)
        watch = self.watches.next_wake()
        if watch is not None:
            times.append(watch)
        times.extend(at for _, at in self.core.stragglers)
        remote = self.core.exechosts.next_wake() if self.core.exechosts else None
        if remote is not None:
            times.append(remote)
        for t in self.core.tracked.values():
            if t.kill_at is not None:
                times.append(t.kill_at)
            elif t.deadline is not None:
                times.append(t.deadline)
        return min(times) if times else None

    # -- ends, timers, kills (the daemon's loop) ------------------------------------------

    def on_exit(self, fd: int) -> None:
        """A supervisor we watch has exited; its end is collected by the next step,
        in the same transaction as the starts that it allows (all the jobs of a
        supervisor server at once)."""
        if not self.core.server_ended(fd):
            self.core.exited.append(fd)

    def take_ended(self) -> None:
        """The jobs whose end the supervisor server told: collected by the next step."""
        core = self.core
        for jobdir, told in core.runner.take_ended():
            fd = core.by_jobdir.get(jobdir)
            if fd is None:
                continue
            uid = core.by_fd.get(fd)
            if told is not None and uid in core.tracked:
                core.tracked[uid].told = told
            if fd not in core.exited:
                core.exited.append(fd)

    def _adopted(self) -> list[rn.Tracked]:
        """Jobs re-adopted after a restart: on this node, under the server of an
        earlier daemon, which tells nobody of their ends."""
        ours = self.core.runner.server_pid
        return [t for t in self.core.tracked.values() if t.host is None and t.pid != ours]

    def look_for_adopted_ends(self) -> None:
        """Look for the end records of re-adopted jobs, once a second."""
        core = self.core
        now = self.clock()
        if now < self._adopted_look:
            return
        self._adopted_look = now + ADOPTED_LOOK
        for t in self._adopted():
            if t.pidfd not in core.exited and core.runner.has_ended(t.jobdir):
                core.exited.append(t.pidfd)

    def adopted_wake(self) -> float | None:
        return self._adopted_look if self._adopted() else None

    def check_timers(self) -> None:
        self.collector.check_timers()
        self.take_ended()
        self.look_for_adopted_ends()
        if time.monotonic() >= self._cut_claim_logs:
            self.cut_claim_logs()
        if self.core.exechosts is not None:
            try:
                self.core.exechosts.poll()
            except DiskFull:  # a policy or a failed start not recorded: taken up again
                self.note_disk_full()
                self.resync()

    def kill_all(self, reason: str, grace: float) -> None:
        self.collector.kill_all(reason, grace)

    # -- operator commands (ajs3.engine.commands) -----------------------------------------

    def hold(self, run_no: int | None, path: str) -> UnitRun:
        return self.commands.hold(run_no, path)

    def release(self, run_no: int | None, path: str, as_: str | None = None) -> UnitRun:
        return self.commands.release(run_no, path, as_)

    def kill(self, run_no: int | None, path: str | None, jobnet: str | None) -> RunState:
        return self.commands.kill(run_no, path, jobnet)

    def rerun(
        self, run_no: int | None, jobnet: str | None, mode: str, path: str | None
    ) -> RunState:
        return self.commands.rerun(run_no, jobnet, mode, path)

    def explain(self, run_no: int | None, path: str) -> dict[str, Any]:
        return self.commands.explain(run_no, path)
