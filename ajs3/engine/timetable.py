"""Registers scheduled jobnet runs when they fall due, and catches up at start.

The schedule library (``ajs3.schedule``) says *when*; this module turns that into
registrations through the scheduler. It keeps, in the journal's meta table, the time
up to which due runs have been handled, so a restart (or a failover) knows exactly
which runs it missed, and each jobnet's catch-up policy decides what happens to them
(design.md rule 6). It never polls: the daemon sleeps until :meth:`next_due`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ajs3.definitions.units import Overlap
from ajs3.model import Status
from ajs3.schedule import OverlapAction, catch_up, due_between, next_due, overlap_action

if TYPE_CHECKING:
    from ajs3.engine.runstate import RunState
    from ajs3.engine.scheduler import Scheduler

SEEN_KEY = "schedule_seen"


class Timetable:
    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched
        self.seen: float | None = None
        self._next: float | None = None

    def _save(self, now: float) -> None:
        self.seen = now
        self.sched.journal.set_meta(SEEN_KEY, repr(now))
        self.refresh()

    def refresh(self) -> None:
        """Recompute the next due time (after definitions change or runs were handled)."""
        if self.seen is None:
            self._next = None
            return
        found = next_due(self.sched.definitions, self.seen)
        self._next = found[0] if found else None

    def next_due(self) -> float | None:
        return self._next

    def start(self, now: float) -> None:
        """At every start, in every mode: apply each jobnet's catch-up policy."""
        stored = self.sched.journal.get_meta(SEEN_KEY)
        if stored is None:
            self._save(now)
            return
        last = float(stored)
        defs = self.sched.definitions
        for path, jobnet in sorted(defs.jobnets.items()):
            if jobnet.schedule is None:
                continue
            for decision in catch_up(jobnet, defs, last, now):
                self.sched.log.info("catch-up", jobnet=path, due=decision.due,
                                    run=decision.run, decision=decision.reason)
                if decision.run:
                    self.sched.register(path, at=decision.due)
        self._save(now)

    def fire(self, now: float) -> None:
        """Register every run that fell due since the last call."""
        if self._next is None or self._next > now or self.seen is None:
            return
        defs = self.sched.definitions
        for occ in due_between(defs, self.seen, now):
            jobnet = defs.jobnets.get(occ.jobnet)
            if jobnet is None:
                continue
            log = self.sched.log.bind(jobnet=occ.jobnet, due=occ.due)
            if occ.deadline is not None and now > occ.deadline:
                log.warning("scheduled run skipped: its start deadline has passed")
                continue
            running, queued = self._active(occ.jobnet)
            action, why = overlap_action(jobnet, running, queued)
            if action is OverlapAction.SKIP:
                log.warning("scheduled run skipped", reason=why)
                continue
            run = self.sched.register(occ.jobnet, at=occ.due)
            log.info("scheduled run registered", run=run, action=action.value, reason=why)
        self._save(now)

    def _active(self, jobnet: str) -> tuple[int, int]:
        running = queued = 0
        for state in self.sched.runs.values():
            if state.root.path != jobnet:
                continue
            status = state.root_ur.status
            if status is Status.RUNNING:
                running += 1
            elif not status.is_final:
                queued += 1
        return running, queued


def waits_for_earlier_run(state: RunState, runs: list[RunState]) -> bool:
    """A scheduled jobnet that may not run in parallel waits for its earlier runs."""
    schedule = state.root.schedule
    if schedule is None or schedule.overlap is Overlap.PARALLEL:
        return False
    return any(
        other.root.path == state.root.path and other.run.id < state.run.id
        and other.root_ur.status is Status.RUNNING
        for other in runs
    )
