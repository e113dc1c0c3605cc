"""A journal with a long history, written fast.

The journal is created by the engine (`ajs3 define` on a stopped logical host runs
the migrations and stores the definitions), then past runs are added with plain SQL
inserts in the engine's schema (ajs3/journal/schema.py): per job run one `unit_runs`
row and the three events a real run leaves (waiting, running, ended); per jobnet run
its root row and two events. Running the jobs for real would take hours.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

#: Settings of a logical host whose synthetic history must stay as written (the
#: retention purge would otherwise take all but 99 runs of each jobnet).
KEEP_ALL = "keep: null\n"
JOBS_PER_RUN = 10
JOBNETS = 10
GROUP = "/bench/hist"


def definitions_yaml() -> str:
    jobnets = [
        {
            "name": f"daily{n:02d}",
            "units": [
                {
                    "name": f"job{j:02d}",
                    "command": ["/bin/true"],
                    **({"after": [f"job{j - 1:02d}"]} if j else {}),
                }
                for j in range(JOBS_PER_RUN)
            ],
        }
        for n in range(JOBNETS)
    ]
    return json.dumps({"group": GROUP, "jobnets": jobnets}, indent=1) + "\n"


def jobnet_path(n: int) -> str:
    return f"{GROUP}/daily{n:02d}"


def add_history(journal: Path, job_runs: int, *, chunk: int = 5000) -> dict[str, float]:
    """Append ``job_runs`` ended job runs (in jobnet runs of JOBS_PER_RUN jobs)."""
    t0 = time.perf_counter()
    conn = sqlite3.connect(str(journal), isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-200000")
    conn.execute("BEGIN IMMEDIATE")
    (def_version,) = conn.execute("SELECT max(version) FROM definitions").fetchone()
    run_base = conn.execute("SELECT coalesce(max(id), 0) FROM jobnet_runs").fetchone()[0]
    ur_base = conn.execute("SELECT coalesce(max(id), 0) FROM unit_runs").fetchone()[0]
    # Past epochs: one start a day, as on a logical host restarted nightly.
    n_runs = job_runs // JOBS_PER_RUN
    now = time.time()
    step = 86400.0 * 100 / max(1, n_runs)  # spread over the last 100 days
    first = now - 86400.0 * 100 - 3600
    conn.executemany(
        "INSERT INTO epochs(started_at, node, pid, mode) VALUES (?, ?, ?, ?)",
        [(first + d * 86400.0, f"node{d % 2 + 1}", 1000 + d, "hot") for d in range(100)],
    )
    (epoch,) = conn.execute("SELECT max(epoch) FROM epochs").fetchone()
    ur_id = ur_base
    for start in range(0, n_runs, chunk):
        runs, urs, events = [], [], []
        for i in range(start, min(n_runs, start + chunk)):
            rid = run_base + i + 1
            net = jobnet_path(i % JOBNETS)
            at = first + i * step
            runs.append((rid, net, def_version, at, at - 60.0))
            ur_id += 1
            root_id = ur_id
            end = at + 0.01 * (JOBS_PER_RUN + 1)
            urs.append(
                (
                    root_id,
                    rid,
                    net,
                    "jobnet",
                    "ended_normally",
                    0,
                    None,
                    None,
                    at,
                    end,
                    None,
                    None,
                    epoch,
                    "every unit ended",
                )
            )
            events.append(
                (at, epoch, root_id, None, 0, "not_scheduled", "running", "start time reached")
            )
            events.append(
                (end, epoch, root_id, None, 0, "running", "ended_normally", "every unit ended")
            )
            for j in range(JOBS_PER_RUN):
                ur_id += 1
                path = f"{net}/job{j:02d}"
                run_id = "r" + hashlib.blake2b(f"{net}{i}{j}".encode(), digest_size=10).hexdigest()
                s, e = at + 0.01 * j, at + 0.01 * j + 0.008
                pid = 10000 + (ur_id % 50000)
                urs.append(
                    (
                        ur_id,
                        rid,
                        path,
                        "job",
                        "ended_normally",
                        1,
                        run_id,
                        0,
                        s,
                        e,
                        pid,
                        pid,
                        epoch,
                        "exit code 0",
                    )
                )
                events.append(
                    (at, epoch, ur_id, None, 0, "not_scheduled", "waiting", "jobnet started")
                )
                events.append((s, epoch, ur_id, run_id, 1, "waiting", "running", "started"))
                events.append(
                    (e, epoch, ur_id, run_id, 1, "running", "ended_normally", "exit code 0")
                )
        conn.executemany(
            "INSERT INTO jobnet_runs(id, jobnet, def_version, scheduled_at, registered_at)"
            " VALUES (?, ?, ?, ?, ?)",
            runs,
        )
        conn.executemany(
            "INSERT INTO unit_runs(id, jobnet_run, path, kind, status, attempt, run_id,"
            " exit_code, started_at, ended_at, pid, pgid, epoch, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            urs,
        )
        conn.executemany(
            "INSERT INTO events(at, epoch, unit_run, run_id, attempt, old, new, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            events,
        )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = sum(p.stat().st_size for p in journal.parent.glob(journal.name + "*"))
    return {
        "seconds": time.perf_counter() - t0,
        "job_runs": n_runs * JOBS_PER_RUN,
        "jobnet_runs": n_runs,
        "journal_mb": size / 1e6,
    }
