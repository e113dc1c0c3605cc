"""The figures of a logical host that `ajs3 web` exports at ``/metrics``.

Two kinds, both cheap enough to be read at every scrape without holding the loop up
(the ``metrics`` request is answered in the daemon's loop):

- counters since the daemon started, kept in memory by :class:`LiveFigures` from the
  journal's status changes as they are made: units started and ended by kind and
  status, and the scheduling latency of each jobnet run's start (from when it was due,
  its scheduled time or its registration if later, to its root's start); each matches
  the journal's ``events`` of the daemon's epoch;
- gauges read from the journal through its indexes (:func:`gauges_in`): units live by
  status, the notification and purge backlogs, the epoch and how it started.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ajs3.journal.store import Journal, UnitRun
from ajs3.model import FINAL, Status, UnitKind

#: Upper bounds (seconds) of the scheduling latency histogram's buckets; +Inf is added.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
#: The statuses of a unit that has not ended (read through the status index).
LIVE = tuple(s.value for s in Status if s not in FINAL)
#: Statuses of a job (not a jobnet) counted as waiting.
WAITING = (Status.WAITING.value, Status.HELD.value, Status.NOT_SCHEDULED.value)


class LiveFigures:
    """Counts of the status changes the daemon makes, from its start."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        #: (kind, status) -> units that went into it
        self.started: Counter[str] = Counter()
        self.ended: Counter[tuple[str, str]] = Counter()
        self.buckets = [0] * len(LATENCY_BUCKETS)
        self.latency_count = 0
        self.latency_sum = 0.0

    @classmethod
    def attach(cls, journal: Journal) -> LiveFigures:
        """Figures told of every status change of ``journal`` after whoever is told
        already (the scheduler's own bookkeeping)."""
        figures = cls(journal)
        before: Callable[[UnitRun, Status], None] | None = journal.on_status

        def both(ur: UnitRun, old: Status) -> None:
            if before is not None:
                before(ur, old)
            figures.note(ur, old)

        journal.on_status = both
        return figures

    def note(self, ur: UnitRun, old: Status) -> None:
        if ur.status is Status.RUNNING and old is not Status.RUNNING:
            self.started[ur.kind.value] += 1
            if ur.kind is UnitKind.JOBNET and old not in FINAL:
                self._first_start(ur)
        elif ur.status in FINAL and old not in FINAL:
            self.ended[(ur.kind.value, ur.status.value)] += 1

    def _first_start(self, ur: UnitRun) -> None:
        run = self.journal.jobnet_run(ur.jobnet_run)
        if run is None or run.jobnet != ur.path:
            return  # a nested jobnet: its root's start is the run's
        latency = max(0.0, time.time() - max(run.scheduled_at, run.registered_at))
        for i, bound in enumerate(LATENCY_BUCKETS):
            if latency <= bound:
                self.buckets[i] += 1
        self.latency_count += 1
        self.latency_sum += latency

    def to_dict(self) -> dict[str, Any]:
        return {
            "started": dict(self.started),
            "ended": [[k, s, n] for (k, s), n in sorted(self.ended.items())],
            "latency": {
                "buckets": [[b, n] for b, n in zip(LATENCY_BUCKETS, self.buckets, strict=True)],
                "count": self.latency_count,
                "sum": self.latency_sum,
            },
            "commits": self.journal.commits,
            "commit_seconds": self.journal.commit_seconds,
        }


def gauges_in(journal: Journal) -> dict[str, Any]:
    """What the journal holds now, read through indexes: live units by kind and
    status, the notification and purge backlogs, the current epoch."""
    conn = journal.conn
    marks = ",".join("?" * len(LIVE))
    live: dict[tuple[str, str], int] = {
        (str(k), str(s)): int(n)
        for k, s, n in conn.execute(
            f"SELECT kind, status, count(*) FROM unit_runs WHERE status IN ({marks})"
            " GROUP BY kind, status",
            LIVE,
        )
    }
    jobs = {s: sum(n for (k, st), n in live.items() if st == s and k != "jobnet") for s in LIVE}
    epoch = conn.execute("SELECT epoch, mode FROM epochs ORDER BY epoch DESC LIMIT 1").fetchone()
    notify = conn.execute(
        "SELECT count(*) FROM notify_deliveries WHERE delivered_at IS NULL"
    ).fetchone()[0]
    purging = conn.execute("SELECT count(*) FROM purging").fetchone()[0]
    return {
        "live": [[k, s, n] for (k, s), n in sorted(live.items())],
        "jobs_running": jobs.get(Status.RUNNING.value, 0),
        "jobs_waiting": sum(jobs.get(s, 0) for s in WAITING),
        "epoch": None if epoch is None else int(epoch[0]),
        "start_mode": None if epoch is None else str(epoch[1]),
        "notify_backlog": int(notify),
        "purge_backlog": int(purging),
    }
