"""The in-memory view of one jobnet run: its definitions and its unit runs, linked."""

from __future__ import annotations

from dataclasses import dataclass, field

from ajs3.definitions.units import Unit
from ajs3.journal.store import JobnetRun, UnitRun
from ajs3.model import EVALUATED, Status, UnitKind


def topo_order(units: tuple[Unit, ...]) -> list[Unit]:
    """Siblings in an order where every unit comes after those it runs after."""
    by_name = {u.name: u for u in units}
    done: set[str] = set()
    order: list[Unit] = []

    def visit(u: Unit, stack: set[str]) -> None:
        if u.name in done or u.name in stack:
            return
        stack.add(u.name)
        for p in u.after:
            if p in by_name:
                visit(by_name[p], stack)
        stack.discard(u.name)
        done.add(u.name)
        order.append(u)

    for u in units:
        visit(u, set())
    return order


@dataclass
class RunState:
    run: JobnetRun
    root: Unit
    urs: dict[str, UnitRun]
    units: dict[str, Unit] = field(default_factory=dict)
    parent: dict[str, str | None] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    preds: dict[str, list[str]] = field(default_factory=dict)
    succs: dict[str, list[str]] = field(default_factory=dict)
    jobnets: list[str] = field(default_factory=list)
    #: Jobs running (or being launched) in this run, as counted for one evaluation.
    running: int = 0
    #: The job runs whose status is RUNNING, id to path (kept by :meth:`note`).
    running_jobs: dict[int, str] = field(default_factory=dict)
    #: Paths of the units waiting for a time of their own (a retry's not_before).
    timed: set[str] = field(default_factory=set)
    #: When something in this run next becomes due by time alone.
    wake: float | None = None
    #: Nested jobnets whose units were all moved on from not_scheduled (none goes back
    #: to it): an evaluation of them need not look again.
    opened: set[str] = field(default_factory=set)
    #: For each jobnet, how many of its first children are known to be neither
    #: waiting nor held: its evaluation starts after them (kept by :meth:`note`).
    settled: dict[str, int] = field(default_factory=dict)
    #: Each unit's place among its siblings (in ``children``).
    place: dict[str, int] = field(default_factory=dict)
    #: Jobnets whose children are all jobs with no predecessor: once no slot is free,
    #: none of the rest can start (ADR 0037).
    flat: set[str] = field(default_factory=set)
    #: Units found waiting for a predecessor, where neither they nor their predecessors
    #: changed status since (kept by :meth:`note`): an evaluation passes them by, so a
    #: chain of N jobs is not N looks at every step (ADR 0038).
    parked: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, run: JobnetRun, root: Unit, urs: list[UnitRun]) -> RunState:
        state = cls(run=run, root=root, urs={u.path: u for u in urs})
        state.parent[root.path] = None
        state.preds[root.path] = []
        state.succs[root.path] = []

        def link(net: Unit) -> None:
            state.units[net.path] = net
            state.jobnets.append(net.path)
            ordered = topo_order(net.units)
            state.children[net.path] = [u.path for u in ordered]
            if all(u.kind is UnitKind.JOB and not u.after for u in ordered):
                state.flat.add(net.path)
            base = net.path.rstrip("/")
            for place, child in enumerate(ordered):
                state.place[child.path] = place
                state.units[child.path] = child
                state.parent[child.path] = net.path
                state.preds[child.path] = [f"{base}/{p}" for p in child.after]
                state.succs.setdefault(child.path, [])
                for p in state.preds[child.path]:
                    state.succs.setdefault(p, []).append(child.path)
                if child.kind is UnitKind.JOBNET:
                    link(child)

        link(root)
        for ur in urs:
            state.note(ur)
        return state

    def note(self, ur: UnitRun) -> None:
        """Keep the running and timed sets in line with a unit run's status, and the
        settled children of its jobnet; its successors (and itself) are looked at again."""
        parked = self.parked
        if parked:
            parked.discard(ur.path)
            parked.difference_update(self.succs.get(ur.path, ()))
        if ur.status in EVALUATED:
            parent = self.parent.get(ur.path)
            if parent is not None and self.settled.get(parent, 0) > self.place[ur.path]:
                self.settled[parent] = self.place[ur.path]
        if ur.kind is UnitKind.JOB and ur.status is Status.RUNNING:
            self.running_jobs[ur.id] = ur.path
        else:
            self.running_jobs.pop(ur.id, None)
        if ur.status is Status.WAITING and ur.not_before is not None:
            self.timed.add(ur.path)
        else:
            self.timed.discard(ur.path)

    @property
    def root_ur(self) -> UnitRun:
        return self.urs[self.root.path]

    def ancestors(self, path: str) -> list[str]:
        found = []
        up = self.parent.get(path)
        while up is not None:
            found.append(up)
            up = self.parent.get(up)
        return found

    def descendants(self, path: str) -> list[str]:
        found = []
        for child in self.children.get(path, []):
            found.append(child)
            found.extend(self.descendants(child))
        return found

    def downstream(self, path: str) -> list[str]:
        """Transitive successors of a unit among its siblings."""
        seen: list[str] = []
        todo = list(self.succs.get(path, []))
        while todo:
            p = todo.pop()
            if p not in seen:
                seen.append(p)
                todo.extend(self.succs.get(p, []))
        return seen
