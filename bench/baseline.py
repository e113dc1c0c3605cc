"""Plain loops: what the operating system charges for the same work, without ajs3."""

from __future__ import annotations

import os
import tempfile
import time

TRUE = "/bin/true"
DATE = "/bin/date"


def busy_ticks() -> int:
    """Clock ticks the whole machine spent busy since boot (not idle, not iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]


def busy_ms_since(ticks: int) -> float:
    """Milliseconds of CPU the machine spent busy since ``busy_ticks()`` said ``ticks``;
    every process counts: the daemon, supervisors, jobs, kernel threads."""
    return (busy_ticks() - ticks) * 1000 / os.sysconf("SC_CLK_TCK")


def dispatch_loop(jobs: int, width: int) -> float:
    """Jobs per second of a loop that starts ``width`` /bin/true at a time and waits
    for all of them before the next batch (the shape of a chain of jobnets ``width``
    wide). Nothing durable: this is the cost of process creation alone."""
    env = {"PATH": "/usr/bin:/bin"}
    t0 = time.perf_counter()
    done = 0
    while done < jobs:
        batch = min(width, jobs - done)
        for _ in range(batch):
            os.posix_spawn(TRUE, [TRUE], env)
        for _ in range(batch):
            os.wait()
        done += batch
    return jobs / (time.perf_counter() - t0)


def spawn_latency(samples: int) -> list[float]:
    """Seconds from just before posix_spawn to the child's first own action
    (`date +%s.%N` printing the time), one process at a time."""
    out: list[float] = []
    env = {"PATH": "/usr/bin:/bin"}
    with tempfile.TemporaryDirectory(prefix="ajs3b-lat-") as tmp:
        path = os.path.join(tmp, "out")
        for _ in range(samples):
            t0 = time.time()
            pid = os.posix_spawn(
                DATE,
                [DATE, "+%s.%N"],
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 1, path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                ],
            )
            os.waitpid(pid, 0)
            with open(path) as f:
                out.append(float(f.read().strip()) - t0)
    return out
