"""The daemon's side of `ajs3 web` (docs/web.md): the read requests it needs beyond
`show`, `why` and `log` (``plan``, ``structure``, ``timeline``, ``events``,
``changes``, ``metrics``), and the console process the daemon starts when its
settings say so.

A mixin of :class:`ajs3.service.daemon.Daemon`, which checks each request against the
peer's role first. The requests only read the daemon's own journal, definitions in
memory and counts.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ajs3.definitions.units import DefinitionSet, Unit
from ajs3.engine import planchanges, suspend
from ajs3.engine.scheduler import Scheduler
from ajs3.errors import AjsError, Code
from ajs3.journal.store import Journal
from ajs3.model import StartMode
from ajs3.schedule import forecast
from ajs3.service import views
from ajs3.service.access import Peer
from ajs3.service.gauges import LiveFigures, gauges_in
from ajs3.service.paths import Paths
from ajs3.service.webchild import WebChild
from ajs3.settings import Settings

#: The longest period one plan request may cover (a forecast of years is not a page).
MAX_PLAN_SECONDS = 366 * 86400.0
#: The most runs one timeline answer holds (the newest are kept).
MAX_TIMELINE = 2000
#: A timeline looks at the runs registered this long before its start and later (and
#: at every run not ended): a run registered earlier for a time in the period (an
#: `entry --at` a week ahead) and ended is not shown.
REGISTERED_BEFORE = 7 * 86400.0


class WebRequests:
    journal: Journal | None
    sched: Scheduler | None
    mode: StartMode
    started_at: float
    last_loop: float
    paths: Paths
    log: Any
    #: what `ajs3 web` exports at /metrics, counted since the start (gauges.py)
    live: LiveFigures | None = None
    #: `ajs3 web` when the settings say web: serve: true (webchild.py)
    web_child: WebChild | None = None

    def start_web(self, settings: Settings) -> None:
        if settings.web.serve:
            self.web_child = WebChild(self.paths, self.log)
            self.web_child.start()

    def tick_web(self) -> None:
        if self.web_child is not None:
            self.web_child.tick()

    def stop_web(self) -> None:
        if self.web_child is not None:
            self.web_child.stop()

    def op_plan(self, peer: Peer, *, jobnet: str | None, from_: float, to: float) -> dict[str, Any]:
        assert self.journal is not None and self.sched is not None
        return plan_in(self.journal, self.sched.definitions, jobnet, from_, to)

    def op_structure(self, peer: Peer, *, jobnet: str) -> dict[str, Any]:
        assert self.journal is not None and self.sched is not None
        return structure_in(self.sched.core.def_version, self.sched.definitions, jobnet)

    def op_timeline(
        self, peer: Peer, *, jobnet: str | None, from_: float, to: float
    ) -> dict[str, Any]:
        assert self.journal is not None
        return timeline_in(self.journal, jobnet, from_, to)

    def op_events(self, peer: Peer, *, run: int | None, unit: str) -> dict[str, Any]:
        assert self.journal is not None
        return views.events_in(self.journal, run, unit)

    def op_changes(self, peer: Peer) -> dict[str, Any]:
        assert self.journal is not None and self.sched is not None
        conn = self.journal.conn
        marks = {
            table: conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
            for table in ("events", "audit", "jobnet_runs")
        }
        return {**marks, "definitions": self.sched.core.def_version}

    def op_metrics(self, peer: Peer) -> dict[str, Any]:
        assert self.journal is not None and self.live is not None
        figures = {**gauges_in(self.journal), **self.live.to_dict()}
        figures["loop_age"] = time.time() - self.last_loop
        figures["uptime"] = time.time() - self.started_at
        return figures


def plan_in(
    journal: Journal, defs: DefinitionSet, jobnet: str | None, start: float, end: float
) -> dict[str, Any]:
    """The scheduled runs due in ``[start, end)``, each marked where a plan change or a
    suspension touches it, and the extra runs added in the period, in time order."""
    if end <= start or end - start > MAX_PLAN_SECONDS:
        raise AjsError(
            f"a plan covers more than 0 and at most {MAX_PLAN_SECONDS / 86400:g} days",
            code=Code.BAD_ARGUMENT,
            hint="ask for a shorter period",
        )
    names = None
    if jobnet is not None:
        if jobnet not in defs.jobnets:
            raise AjsError(
                f"no root jobnet {jobnet!r}",
                code=Code.UNKNOWN_JOBNET,
                hint="see the defined jobnets with `ajs3 show`",
            )
        names = [jobnet]
    low, high = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    plan = planchanges.load(journal)
    held = suspend.every(journal)
    moved = {(c.jobnet, round(c.due, 3)): c for c in plan.changes if c.due is not None}
    rows: list[tuple[float, dict[str, Any]]] = []
    for r in forecast(defs, low, high, names):
        row: dict[str, Any] = {"jobnet": r.jobnet, "start": r.start, "due": r.due, "change": None}
        c = moved.get((r.jobnet, round(r.due, 3)))
        if c is not None:
            row["change"] = "skipped" if c.at is None else "moved"
            row["by"], row["to"] = c.user, c.at
        elif r.jobnet in held and r.due > held[r.jobnet].since:
            row["change"], row["by"] = "suspended", held[r.jobnet].user
        rows.append((r.due, row))
    for c in plan.changes:
        if c.at is None or c.jobnet not in defs.jobnets or (names and c.jobnet not in names):
            continue
        if start <= c.at < end:
            unit = defs.jobnets[c.jobnet]
            start_text = planchanges.show_time(c.at, unit)
            rows.append(
                (
                    c.at,
                    {
                        "jobnet": c.jobnet,
                        "start": start_text,
                        "due": c.at,
                        "change": "added" if c.due is None else "moved here",
                        "by": c.user,
                    },
                )
            )
    rows.sort(key=lambda x: (x[0], x[1]["jobnet"]))
    return {"from": start, "to": end, "runs": [r for _, r in rows]}


def _tree(unit: Unit) -> dict[str, Any]:
    return {
        "name": unit.name,
        "path": unit.path,
        "kind": unit.kind.value,
        "after": list(unit.after),
        "recovery": unit.recovery,
        "hold": unit.hold,
        "units": [_tree(u) for u in unit.units],
    }


def structure_in(version: int, defs: DefinitionSet, jobnet: str) -> dict[str, Any]:
    """A root jobnet of the current definitions as a tree of units (no commands)."""
    unit = defs.jobnets.get(jobnet)
    if unit is None:
        raise AjsError(
            f"no root jobnet {jobnet!r}",
            code=Code.UNKNOWN_JOBNET,
            hint="see the defined jobnets with `ajs3 show`",
        )
    return {"definitions_version": version, "jobnet": _tree(unit)}


def first_registered(journal: Journal, since: float) -> int | None:
    """The lowest run number registered at ``since`` or later, by a binary search on
    the run numbers (they are given in registration order): a few point reads however
    long the history, where a scan of ``registered_at`` would read all of it."""
    conn = journal.conn

    def at_or_after(n: int) -> tuple[int, float] | None:
        row = conn.execute(
            "SELECT id, registered_at FROM jobnet_runs WHERE id >= ? ORDER BY id LIMIT 1", (n,)
        ).fetchone()
        return None if row is None else (int(row[0]), float(row[1]))

    low, high = conn.execute("SELECT min(id), max(id) FROM jobnet_runs").fetchone()
    if low is None:
        return None
    found = None
    while low <= high:
        mid = (low + high) // 2
        row = at_or_after(mid)
        if row is None:
            break
        if row[1] >= since:
            found, high = row[0], mid - 1
        else:
            low = row[0] + 1
    return found


def timeline_in(journal: Journal, jobnet: str | None, start: float, end: float) -> dict[str, Any]:
    """The runs scheduled or running in ``[start, end)``, newest :data:`MAX_TIMELINE`
    at most, each with its root unit's times, status and delays. Looked for among the
    runs registered from :data:`REGISTERED_BEFORE` before ``start`` on, and the runs
    not ended whenever registered."""
    first = first_registered(journal, start - REGISTERED_BEFORE)
    active = journal.active_jobnet_runs()
    ids = f"r.id >= {int(first)}" if first is not None else "0"
    if active:
        ids = f"({ids} OR r.id IN ({','.join(str(int(a)) for a in active)}))"
    where = f"WHERE {ids} AND r.scheduled_at < ? AND coalesce(u.ended_at, ?) >= ?"
    args: list[Any] = [end, end, start]
    if jobnet is not None:
        where += " AND r.jobnet = ?"
        args.append(jobnet)
    rows = journal.conn.execute(
        "SELECT r.id, r.jobnet, r.scheduled_at, u.started_at, u.ended_at, u.status,"
        " (SELECT group_concat(kind) FROM unit_delays d WHERE d.unit_run = u.id)"
        " FROM jobnet_runs r JOIN unit_runs u ON u.jobnet_run = r.id AND u.path = r.jobnet "
        f"{where} ORDER BY r.id DESC LIMIT ?",
        (*args, MAX_TIMELINE),
    ).fetchall()
    return {
        "from": start,
        "to": end,
        "runs": [
            {
                "run": r[0],
                "jobnet": r[1],
                "scheduled_at": r[2],
                "started_at": r[3],
                "ended_at": r[4],
                "status": r[5],
                "delays": r[6].split(",") if r[6] else [],
            }
            for r in reversed(rows)
        ],
    }
