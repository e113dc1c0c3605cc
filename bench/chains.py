"""The chain hop and the stages workload (issue 18): what a job on the critical path
costs, each next to a plain loop doing the least the same promise needs.

- ``chain_hop``: a chain of /bin/true jobs, each ``after`` the one before, in one
  jobnet; the figure is milliseconds per job from the first job's start to the last
  job's end. Baseline, on the same volume in the same run: a loop of "append a record
  and fsync it, spawn /bin/true and wait, append a record and fsync it" (the floor of a
  durable hop: the claim before the job, its end after it).
- ``stages8``: 10 stages of N /bin/true jobs, each stage ``after`` the one before, 8 at
  a time in each; milliseconds per job from the entry to the root's end. Baseline: a
  thread pool of 8 spawning and waiting for the same jobs, with a barrier between
  stages (nothing durable).
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import baseline
from bench.figures import Bench, Figure, _ratio

CHAIN = "chain_hop"
STAGES = "stages8"
UNIT = "ms per job"
WIDTH = 8
STAGE_COUNT = 10


def durable_hop_loop(where: Path, jobs: int) -> float:
    """Milliseconds per job of: fsynced append, spawn /bin/true and wait, fsynced append."""
    env = {"PATH": "/usr/bin:/bin"}
    path = where / "hop-baseline.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        t0 = time.perf_counter()
        for k in range(jobs):
            os.write(fd, f"claim {k}\n".encode())
            os.fsync(fd)
            pid = os.posix_spawn(baseline.TRUE, [baseline.TRUE], env)
            os.waitpid(pid, 0)
            os.write(fd, f"end {k} 0\n".encode())
            os.fsync(fd)
        return (time.perf_counter() - t0) * 1e3 / jobs
    finally:
        os.close(fd)
        path.unlink()


def staged_pool_loop(stages: int, per_stage: int, width: int) -> float:
    """Milliseconds per job of a thread pool of ``width`` running every stage's jobs
    (spawn and wait) and waiting for the whole stage before the next one."""
    env = {"PATH": "/usr/bin:/bin"}

    def one(_k: int) -> None:
        pid = os.posix_spawn(baseline.TRUE, [baseline.TRUE], env)
        os.waitpid(pid, 0)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=width) as pool:
        for _ in range(stages):
            list(pool.map(one, range(per_stage)))  # the barrier: the whole stage
    return (time.perf_counter() - t0) * 1e3 / (stages * per_stage)


def figures(bench: Bench) -> list[Figure]:
    chain = 50 if bench.quick else 200
    per_stage = 20 if bench.quick else 100
    h = bench.host("bc")
    h.start()
    h.define(
        json.dumps(
            {
                "group": "/bench",
                "jobnets": [
                    {
                        "name": "chain",
                        "units": [
                            {
                                "name": f"j{k:03d}",
                                "command": [baseline.TRUE],
                                **({"after": [f"j{k - 1:03d}"]} if k else {}),
                            }
                            for k in range(chain)
                        ],
                    },
                    {
                        "name": "stages",
                        "units": [
                            {
                                "name": f"s{s:02d}",
                                "type": "jobnet",
                                "concurrency": WIDTH,
                                **({"after": [f"s{s - 1:02d}"]} if s else {}),
                                "units": [
                                    {"name": f"j{j:03d}", "command": [baseline.TRUE]}
                                    for j in range(per_stage)
                                ],
                            }
                            for s in range(STAGE_COUNT)
                        ],
                    },
                ],
            }
        )
    )
    # Each baseline just before and just after, averaged: the machine is shared, and its
    # speed drifts over a run (the daemon waits idle meanwhile).
    hop_before = durable_hop_loop(h.datadir, chain)
    stage_before = staged_pool_loop(STAGE_COUNT, per_stage, WIDTH)
    hop, hop_detail = _chain_run(bench, h, chain)
    stage_ms, stage_detail = _stages_run(bench, h, STAGE_COUNT * per_stage)
    h.stop()
    hop_base = (hop_before + durable_hop_loop(h.datadir, chain)) / 2
    stage_base = (stage_before + staged_pool_loop(STAGE_COUNT, per_stage, WIDTH)) / 2
    hop_ratio, stage_ratio = _ratio(hop, hop_base), _ratio(stage_ms, stage_base)
    return [
        Figure(
            CHAIN,
            hop,
            UNIT,
            baseline=hop_base,
            ratio=hop_ratio,
            target=2.0,
            met=hop_ratio is not None and hop_ratio <= 2.0,
            target_text="ratio <= 2",
            baseline_text="fsynced append + spawn-and-wait /bin/true + fsynced append, same volume",
            size=f"a chain of {chain} /bin/true jobs",
            detail=hop_detail,
        ),
        Figure(
            STAGES,
            stage_ms,
            UNIT,
            baseline=stage_base,
            ratio=stage_ratio,
            target=2.0,
            met=stage_ratio is not None and stage_ratio <= 2.0,
            target_text="ratio <= 2",
            baseline_text=f"thread pool of {WIDTH} spawning /bin/true, a barrier per stage",
            size=f"{STAGE_COUNT} stages of {per_stage} /bin/true jobs, {WIDTH} at a time",
            detail=stage_detail,
        ),
    ]


def _chain_run(bench: Bench, h: Any, jobs: int) -> tuple[float, dict[str, Any]]:
    run = h.entry("/bench/chain")
    status = h.wait_run(run, timeout=600, poll=0.2)
    first_start, last_end, ok = h.query(
        "SELECT min(started_at), max(ended_at), sum(status='ended_normally') FROM unit_runs"
        " WHERE jobnet_run=? AND kind='job'",
        (run,),
    )[0]
    hop = (last_end - first_start) * 1e3 / jobs
    bench.log(f"  chain of {jobs}: {hop:.1f} ms per job (root {status})")
    return hop, {"root": status, "jobs": jobs, "ended_normally": ok}


def _stages_run(bench: Bench, h: Any, jobs: int) -> tuple[float, dict[str, Any]]:
    t0 = time.time()
    run = h.entry("/bench/stages")
    status = h.wait_run(run, timeout=600, poll=0.2)
    (root_end, ok) = h.query(
        "SELECT max(ended_at), sum(kind='job' AND status='ended_normally') FROM unit_runs"
        " WHERE jobnet_run=?",
        (run,),
    )[0]
    per_job = (root_end - t0) * 1e3 / jobs
    bench.log(f"  stages, {jobs} jobs: {per_job:.1f} ms per job (root {status})")
    return per_job, {"root": status, "jobs": jobs, "ended_normally": ok}
