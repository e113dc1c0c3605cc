"""The retention figures of issue 15: dispatch with a long history stored against a
fresh logical host, and the scheduler's longest pause while a purge runs.

The history is written directly (bench/history.py: plain SQL in the engine's schema),
with a job directory per job run (a small stdout and status.json), not by running jobs.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import TYPE_CHECKING, Any

from bench import history

if TYPE_CHECKING:
    from bench.figures import Bench, Figure
    from bench.lhost import LogicalHost

#: What both logical hosts of the dispatch figure keep: more than the history has per
#: jobnet, so that the purge has (almost) nothing to do while dispatch is measured.
KEEP_MOST = "keep: {runs: 999}\n"


def add_jobdirs(h: LogicalHost) -> int:
    """A job directory (a stdout of 100 bytes) for every job run stored; one file each,
    as creating files is most of the cost of the history on some file systems."""
    jobs = h.datadir / "jobs"
    jobs.mkdir(mode=0o750, exist_ok=True)
    made = 0
    for (rid,) in h.query("SELECT run_id FROM unit_runs WHERE run_id IS NOT NULL"):
        d = jobs / rid
        d.mkdir(mode=0o750)
        (d / "stdout").write_bytes(b"x" * 99 + b"\n")
        made += 1
    return made


def _history_host(
    b: Bench, name: str, job_runs: int, settings: str
) -> tuple[LogicalHost, dict[str, Any]]:
    h = b.host(name)
    h.write_settings(settings)
    h.define(history.definitions_yaml(), "hist.yaml")
    gen: dict[str, Any] = {}
    if job_runs:
        t0 = time.perf_counter()
        gen = history.add_history(h.datadir / "journal.db", job_runs)
        gen["job_dirs"] = add_jobdirs(h)
        gen["seconds_with_dirs"] = time.perf_counter() - t0
        b.log(
            f"  {name}: {job_runs} past job runs and their directories written in "
            f"{gen['seconds_with_dirs']:.1f} s"
        )
    return h, gen


def _chain(n: int, width: int) -> str:
    nets = [
        {
            "name": f"n{k:03d}",
            "type": "jobnet",
            **({"after": [f"n{k - 1:03d}"]} if k else {}),
            "units": [{"name": f"j{j:03d}", "command": ["/bin/true"]} for j in range(width)],
        }
        for k in range(n // width)
    ]
    return json.dumps({"group": "/bench", "jobnets": [{"name": "chain", "units": nets}]})


def figures(b: Bench) -> list[Figure]:
    """Both figures, on one history (the purge runs on the history dispatch ran with)."""
    stored = 5_000 if b.quick else 100_000
    old, gen = _history_host(b, "brh", stored, KEEP_MOST + "purge_interval: 86400\n")
    return [dispatch_history(b, old, gen, stored), purge_pause(b, old, gen, stored)]


def dispatch_history(b: Bench, old: LogicalHost, gen: dict[str, Any], stored: int) -> Figure:
    from bench.figures import Figure, _ratio

    jobs, width = (500, 100) if b.quick else (2000, 100)
    fresh, _ = _history_host(b, "brf", 0, KEEP_MOST + "purge_interval: 86400\n")
    for h in (fresh, old):
        h.define(_chain(jobs, width), "chain.yaml")
        h.start()
    rates: dict[str, list[float]] = {"fresh": [], "history": []}
    details: list[dict[str, Any]] = []
    # Alternated, twice each: the machine is shared, so both sides see the same load.
    for _ in range(2):
        for side, h in (("fresh", fresh), ("history", old)):
            rate, detail = b._dispatch_run(h, "/bench/chain", jobs)
            rates[side].append(rate)
            details.append({"side": side, **detail})
    for h in (fresh, old):
        h.stop()
    base = statistics.mean(rates["fresh"])
    value = statistics.mean(rates["history"])
    ratio = _ratio(value, base)
    return Figure(
        "dispatch_history",
        value,
        "jobs/s",
        baseline=base,
        ratio=ratio,
        target=0.9,
        met=ratio is not None and ratio >= 0.9,
        target_text="ratio >= 0.9",
        baseline_text="the same jobs on a fresh logical host, alternated in the same run",
        size=f"{jobs} jobs ({jobs // width} jobnets {width} wide, a chain) with {stored} past "
        "job runs and their job directories stored",
        detail={"runs": rates, "each": details, "history": gen},
    )


def _pings(h: LogicalHost, until: Any, at_least: float) -> list[float]:
    """Round trips of `ping` to the daemon (seconds), one after the other, until
    ``until()`` is true and ``at_least`` seconds have passed."""
    c = h.client(timeout=60)
    samples: list[float] = []
    end = time.monotonic() + at_least
    while True:
        t0 = time.perf_counter()
        c.ping()
        samples.append(time.perf_counter() - t0)
        if time.monotonic() >= end and until():
            return samples
        time.sleep(0.002)


def _summary(samples: list[float]) -> dict[str, float]:
    from bench.figures import pct

    return {
        "n": len(samples),
        "p50_ms": pct(samples, 50) * 1e3,
        "p99_ms": pct(samples, 99) * 1e3,
        "max_ms": max(samples) * 1e3,
    }


def purge_pause(b: Bench, h: LogicalHost, gen: dict[str, Any], stored: int) -> Figure:
    from bench.figures import Figure

    keep = 5
    h.start()
    c = h.client(timeout=120)
    first = c.purge_status()
    # the round at start (keep 999) is done before the figure is taken
    while c.purge_status()["rounds_completed"] < 1:
        time.sleep(0.1)
    idle = _pings(h, lambda: True, 2.0)
    defs = json.loads(history.definitions_yaml())
    for net in defs["jobnets"]:
        net["keep"] = {"runs": keep}
    h.define(json.dumps(defs), "hist.yaml")
    before = h.query("SELECT count(*) FROM jobnet_runs")[0][0]
    t0 = time.perf_counter()
    wanted = c.purge()["round"]
    busy = _pings(h, lambda: c.purge_status()["rounds_completed"] >= wanted, 0.0)
    took = time.perf_counter() - t0
    status = c.purge_status()
    removed = status["rounds"].get(str(wanted), {})
    after = h.query("SELECT count(*) FROM jobnet_runs")[0][0]
    h.stop()
    value = float(status["longest_tick_ms"])
    b.log(
        f"  purge: {before - after} jobnet runs in {took:.1f} s, longest tick {value:.1f} ms, "
        f"p99 tick {status['tick_p99_ms']:.1f} ms, most CPU in a tick "
        f"{status['longest_tick_cpu_ms']:.1f} ms, ping max {max(busy) * 1e3:.1f} ms "
        f"(idle {max(idle) * 1e3:.1f} ms)"
    )
    return Figure(
        "purge_pause",
        value,
        "ms",
        baseline=max(idle) * 1e3,
        ratio=None,
        target=20.0,
        met=value < 20.0,
        target_text="value < 20",
        baseline_text="longest `ping` round trip of the same daemon, idle (in `detail`, "
        "the round trips while the purge ran)",
        size=f"{stored} past job runs with their directories, purged down to {keep} runs "
        "per jobnet",
        detail={
            "longest_tick_ms_at_start": first.get("longest_tick_ms"),
            "tick_p99_ms": status["tick_p99_ms"],
            "longest_tick_cpu_ms": status["longest_tick_cpu_ms"],
            "ticks": status["ticks"],
            "purged": removed,
            "purge_seconds": took,
            "jobnet_runs_per_s": (before - after) / took if took else None,
            "jobnet_runs_before_after": [before, after],
            "ping_idle": _summary(idle),
            "ping_while_purging": _summary(busy),
            "history": gen,
        },
    )
