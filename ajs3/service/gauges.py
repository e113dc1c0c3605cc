"""The figures of a logical host that `ajs3 web` exports at ``/metrics``, read from the
journal (and a few from the daemon's loop) when the ``metrics`` request asks for them.

Counts of runs are what the journal holds now: the retention purge removes old runs,
so they may go down (docs/web.md says so). The scheduling latency of a run is the time
from when it was due (its scheduled time, or its registration if later) to when its
root jobnet started.
"""

from __future__ import annotations

from typing import Any

from ajs3.journal.store import Journal
from ajs3.model import FINAL, Status, UnitKind

#: Upper bounds (seconds) of the scheduling latency histogram's buckets; +Inf is added.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
#: Statuses of a job (not a jobnet) counted as waiting.
WAITING = (Status.WAITING.value, Status.HELD.value, Status.NOT_SCHEDULED.value)


def gauges_in(journal: Journal) -> dict[str, Any]:
    """The journal's figures: runs started and ended by status, jobs by live status,
    the latency histogram, the notification and purge backlogs, the epoch."""
    conn = journal.conn
    root = "FROM unit_runs u JOIN jobnet_runs r ON u.jobnet_run = r.id AND u.path = r.jobnet"
    started = conn.execute(f"SELECT count(*) {root} WHERE u.started_at IS NOT NULL").fetchone()[0]
    final = sorted(s.value for s in FINAL)
    marks = ",".join("?" * len(final))
    ended = {
        str(s): int(n)
        for s, n in conn.execute(
            f"SELECT u.status, count(*) {root} WHERE u.status IN ({marks}) GROUP BY u.status",
            final,
        )
    }
    jobs = {
        str(s): int(n)
        for s, n in conn.execute(
            "SELECT status, count(*) FROM unit_runs WHERE kind != ? AND kind != ?"
            f" AND status NOT IN ({marks}) GROUP BY status",
            (UnitKind.JOBNET.value, UnitKind.GROUP.value, *final),
        )
    }
    latencies = [
        max(0.0, float(d))
        for (d,) in conn.execute(
            f"SELECT u.started_at - max(r.scheduled_at, r.registered_at) {root}"
            " WHERE u.started_at IS NOT NULL"
        )
    ]
    buckets = [sum(1 for d in latencies if d <= b) for b in LATENCY_BUCKETS]
    epoch = conn.execute(
        "SELECT epoch, mode, started_at, node FROM epochs ORDER BY epoch DESC LIMIT 1"
    ).fetchone()
    notify = conn.execute(
        "SELECT count(*) FROM notify_deliveries WHERE delivered_at IS NULL"
    ).fetchone()[0]
    purging = conn.execute("SELECT count(*) FROM purging").fetchone()[0]
    return {
        "runs_started": int(started),
        "runs_ended": ended,
        "jobs_running": jobs.get(Status.RUNNING.value, 0),
        "jobs_waiting": sum(jobs.get(s, 0) for s in WAITING),
        "jobs_by_status": jobs,
        "latency": {
            "buckets": [[b, n] for b, n in zip(LATENCY_BUCKETS, buckets, strict=True)],
            "count": len(latencies),
            "sum": sum(latencies),
        },
        "epoch": None if epoch is None else int(epoch[0]),
        "start_mode": None if epoch is None else str(epoch[1]),
        "notify_backlog": int(notify),
        "purge_backlog": int(purging),
    }
