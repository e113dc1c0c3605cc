"""When scheduled jobnet runs fall due, and what to catch up at start.

The schedule library (``ajs3.schedule``) says *when* for one jobnet; this module keeps,
for the whole definition set, the time up to which due runs have been handled
(:attr:`Timetable.seen`) and the next time one falls due. It returns what is due; the
scheduler registers the runs and stores ``seen`` in the journal's meta table
(:data:`SEEN_KEY`), so a restart (or a failover) knows exactly which runs it missed, and
each jobnet's catch-up policy decides what happens to them (docs/design.md rule 6). It never
polls: the daemon sleeps until :meth:`Timetable.next_due`.
"""

from __future__ import annotations

from ajs3.definitions.units import DefinitionSet
from ajs3.engine.planchanges import Plan, adjust_decisions
from ajs3.schedule import Decision, Occurrence, catch_up, due_between, next_due

SEEN_KEY = "schedule_seen"


class Timetable:
    def __init__(self) -> None:
        #: runs due up to this time have been handled
        self.seen: float | None = None
        self._next: float | None = None
        #: the plan changes in force (ajs3.engine.planchanges), set by the scheduler
        self.plan = Plan()

    def refresh(self, defs: DefinitionSet) -> None:
        """Recompute the next due time (after definitions change or runs were handled)."""
        if self.seen is None:
            self._next = None
            return
        found = next_due(defs, self.seen)
        candidates = (found[0] if found else None, self.plan.next_extra(self.seen))
        times = [t for t in candidates if t is not None]
        self._next = min(times) if times else None

    def next_due(self) -> float | None:
        return self._next

    def advance(self, defs: DefinitionSet, now: float) -> None:
        """Runs due up to ``now`` are handled."""
        self.seen = now
        self.refresh(defs)

    def catch_up(self, defs: DefinitionSet, seen: float | None, now: float) -> list[Decision]:
        """At every start, in every mode: each jobnet's catch-up decisions for the runs
        due since ``seen`` (the stored time; None on a first start: nothing missed)."""
        decisions: list[Decision] = []
        if seen is not None:
            for _, jobnet in sorted(defs.jobnets.items()):
                if jobnet.schedule is not None:
                    decisions.extend(catch_up(jobnet, defs, seen, now))
            decisions = adjust_decisions(self.plan, defs, decisions, None, seen, now)
        self.advance(defs, now)
        return decisions

    def is_due(self, now: float) -> bool:
        return self.seen is not None and self._next is not None and self._next <= now

    def take_due(self, defs: DefinitionSet, now: float) -> list[Occurrence]:
        """The runs that fell due since the last call (call it when :meth:`is_due`)."""
        assert self.seen is not None
        found = [
            o for o in due_between(defs, self.seen, now) if not self.plan.removes(o.jobnet, o.due)
        ]
        found.extend(self.plan.extras_between(self.seen, now))
        found.sort(key=lambda o: (o.due, o.jobnet))
        self.advance(defs, now)
        return found
