"""The figures of issue 7, each measured next to a baseline from the same run."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ajs3.engine import recordlog
from bench import baseline, history
from bench.lhost import LogicalHost


@dataclass
class Figure:
    figure: str
    value: float | None
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    target: float | None = None
    met: bool | None = None
    why: str | None = None
    #: what the target applies to and how: "value < 20" or "ratio >= 0.5"
    target_text: str = ""
    baseline_text: str = ""
    size: str = ""
    #: the same figure at a tenth of the size, and value / small value
    small_size: str = ""
    small_value: float | None = None
    growth: float | None = None
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def unavailable(name: str, unit: str, why: str, target_text: str = "") -> Figure:
    return Figure(name, None, unit, why=why, target_text=target_text)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


class Bench:
    """Holds the temporary directory and every logical host started in it."""

    def __init__(self, base: Path, quick: bool, log: Callable[[str], None]) -> None:
        self.base = base
        self.quick = quick
        self.log = log
        self.hosts: list[LogicalHost] = []

    def host(self, name: str) -> LogicalHost:
        h = LogicalHost(self.base, name)
        self.hosts.append(h)
        return h

    def cleanup(self) -> None:
        for h in self.hosts:
            try:
                h.cleanup()
            except Exception as exc:  # keep cleaning the others
                self.log(f"cleanup of {h.lhost}: {exc}")

    # -- 1. dispatch ------------------------------------------------------------------

    def dispatch(self) -> Figure:
        width = 100
        big = 1000 if self.quick else 10000
        sizes = [big // 10, big]
        h = self.host("bd")
        jobnets = []
        for n in sizes:
            nets = [
                {
                    "name": f"n{k:03d}",
                    "type": "jobnet",
                    **({"after": [f"n{k - 1:03d}"]} if k else {}),
                    "units": [
                        {"name": f"j{j:03d}", "command": ["/bin/true"]} for j in range(width)
                    ],
                }
                for k in range(n // width)
            ]
            jobnets.append({"name": f"dispatch{n}", "units": nets})
        # The baseline just before and just after, averaged: the machine is shared, and
        # its speed drifts over a run.
        busy0 = baseline.busy_ticks()
        b1 = baseline.dispatch_loop(big, width)
        base_cpu_ms = baseline.busy_ms_since(busy0)
        h.start()
        h.define(json.dumps({"group": "/bench", "jobnets": jobnets}))
        rates: dict[int, float] = {}
        detail: dict[str, Any] = {"width": width}
        for n in sizes:
            rates[n], detail[f"jobs{n}"] = self._dispatch_run(h, f"/bench/dispatch{n}", n)
        h.stop()
        busy0 = baseline.busy_ticks()
        b2 = baseline.dispatch_loop(big, width)
        base_cpu_ms += baseline.busy_ms_since(busy0)
        detail["baseline_machine_cpu_ms_per_job"] = base_cpu_ms / (2 * big)
        base = (b1 + b2) / 2
        small_base = baseline.dispatch_loop(sizes[0], width)
        detail.update(
            baseline_runs=[round(b1), round(b2)],
            small_baseline=round(small_base),
            small_ratio=_ratio(rates[sizes[0]], small_base),
        )
        ratio = _ratio(rates[big], base)
        return Figure(
            "dispatch",
            rates[big],
            "jobs/s",
            baseline=base,
            ratio=ratio,
            target=0.5,
            met=ratio is not None and ratio >= 0.5,
            target_text="ratio >= 0.5",
            baseline_text=f"plain posix_spawn+wait loop of /bin/true, {width} at a time",
            size=f"{big} jobs in {big // width} jobnets {width} wide (a chain)",
            small_size=f"{sizes[0]} jobs",
            small_value=rates[sizes[0]],
            growth=_ratio(rates[big], rates[sizes[0]]),
            detail=detail,
        )

    def _dispatch_run(self, h: LogicalHost, jobnet: str, n: int) -> tuple[float, dict[str, Any]]:
        busy0 = baseline.busy_ticks()
        t0 = time.time()
        run = h.entry(jobnet)
        status = h.wait_run(run, timeout=600, poll=0.2)
        cpu_ms = baseline.busy_ms_since(busy0) / n
        rows = h.query(
            "SELECT count(*), sum(status='ended_normally'), min(started_at), max(ended_at)"
            " FROM unit_runs WHERE jobnet_run=? AND kind='job'",
            (run,),
        )
        (root_end,) = h.query(
            "SELECT ended_at FROM unit_runs WHERE jobnet_run=? AND path=?", (run, jobnet)
        )[0]
        count, ok, first_start, last_end = rows[0]
        ended = recordlog.gather(h.datadir / "claims").ended.keys() | {
            d.name for d in (h.datadir / "jobs").iterdir() if (d / "status.json").exists()
        }
        elapsed = root_end - t0
        rate = n / elapsed
        self.log(f"  dispatch {n}: {rate:.0f} jobs/s ({elapsed:.2f} s, root {status})")
        return rate, {
            "elapsed_s": elapsed,
            "root": status,
            "jobs": count,
            "ended_normally": ok,
            "machine_cpu_ms_per_job": cpu_ms,
            "entry_to_first_start_ms": (first_start - t0) * 1e3,
            "last_job_end_to_root_end_ms": (root_end - last_end) * 1e3,
            "end_records_so_far": len(ended),
        }

    # -- 2. latency ---------------------------------------------------------------------

    def latency(self) -> Figure:
        big = 1000 if self.quick else 10000
        runs, chain = (10, 5) if self.quick else (40, 10)
        res = {}
        for units in (big // 10, big):
            res[units] = self._latency_at(units, runs, chain)
        samples = res[big]["samples"]
        base = baseline.spawn_latency(len(samples))
        p99, bp99 = pct(samples, 99) * 1e3, pct(base, 99) * 1e3
        small_p99 = pct(res[big // 10]["samples"], 99) * 1e3
        detail = {
            "p50_ms": pct(samples, 50) * 1e3,
            "max_ms": max(samples) * 1e3,
            "samples": len(samples),
            "from_start_time": _summary(res[big]["from_start"]),
            "from_predecessor_end": _summary(res[big]["from_pred"]),
            "baseline_p50_ms": pct(base, 50) * 1e3,
            "baseline_max_ms": max(base) * 1e3,
            "small": {
                "p50_ms": pct(res[big // 10]["samples"], 50) * 1e3,
                "max_ms": max(res[big // 10]["samples"]) * 1e3,
            },
        }
        return Figure(
            "latency_p99",
            p99,
            "ms",
            baseline=bp99,
            ratio=_ratio(p99, bp99),
            target=20.0,
            met=p99 < 20.0,
            target_text="value < 20",
            baseline_text="posix_spawn of `date +%s.%N` to its printed time, p99",
            size=f"{big} units registered (not due); {runs} runs of a {chain}-job chain",
            small_size=f"{big // 10} units",
            small_value=small_p99,
            growth=_ratio(p99, small_p99),
            detail=detail,
        )

    def _latency_at(self, units: int, runs: int, chain: int) -> dict[str, list[float]]:
        h = self.host(f"bl{units}")
        filler = [
            {
                "name": f"f{k:03d}",
                "units": [{"name": f"j{j:03d}", "command": ["/bin/true"]} for j in range(100)],
            }
            for k in range(units // 100)
        ]
        lat = {
            "name": "lat",
            "units": [
                {
                    "name": f"j{j:02d}",
                    "command": ["/bin/date", "+%s.%N"],
                    **({"after": [f"j{j - 1:02d}"]} if j else {}),
                }
                for j in range(chain)
            ],
        }
        h.start()
        h.define(json.dumps({"group": "/bench", "jobnets": [*filler, lat]}))
        tomorrow = time.time() + 86400
        for f in filler:
            h.entry(f"/bench/{f['name']}", at=tomorrow)
        # Every run is registered before the first is due: a registration is a CLI
        # process (~0.1 s of CPU) that would compete with the runs it measures.
        first = time.time() + 1.0 + 0.2 * runs
        gap = 0.25
        ids = [h.entry("/bench/lat", at=first + i * gap) for i in range(runs)]
        for run in ids:
            h.wait_run(run, timeout=120, poll=0.1)
        from_start: list[float] = []
        from_pred: list[float] = []
        for run in ids:
            (sched,) = h.query("SELECT scheduled_at FROM jobnet_runs WHERE id=?", (run,))[0]
            rows = h.query(
                "SELECT path, run_id, ended_at FROM unit_runs WHERE jobnet_run=?"
                " AND kind='job' ORDER BY path",
                (run,),
            )
            prev_end = None
            for _path, run_id, ended in rows:
                began = float((h.datadir / "jobs" / run_id / "stdout").read_text().strip())
                if prev_end is None:
                    from_start.append(began - sched)
                else:
                    from_pred.append(began - prev_end)
                prev_end = ended
        h.stop()
        s = from_start + from_pred
        self.log(
            f"  latency with {units} units: p50 {pct(s, 50) * 1e3:.1f} ms, "
            f"p99 {pct(s, 99) * 1e3:.1f} ms, max {max(s) * 1e3:.1f} ms"
        )
        return {"samples": s, "from_start": from_start, "from_pred": from_pred}

    # -- 3. start-up and show with history ------------------------------------------------

    def history_figures(self) -> list[Figure]:
        big = 100_000 if self.quick else 1_000_000
        # Baselines: an empty journal's start, then `show` on a tiny one (100 job runs).
        e = self.host("be")
        e.write_settings(history.KEEP_ALL)
        e.define(history.definitions_yaml())
        empty_start = self._starts(e)
        history.add_history(e.datadir / "journal.db", 100)
        tiny_show = self._shows(e, history.jobnet_path(3))
        res: dict[int, dict[str, Any]] = {}
        for n in (big // 10, big):
            h = self.host(f"bh{n}")
            h.write_settings(history.KEEP_ALL)
            h.define(history.definitions_yaml())
            gen = history.add_history(h.datadir / "journal.db", n)
            self.log(
                f"  journal with {n} job runs written in {gen['seconds']:.1f} s "
                f"({gen['journal_mb']:.0f} MB)"
            )
            res[n] = {
                "gen": gen,
                "start": self._starts(h),
                "show": self._shows(h, history.jobnet_path(3)),
                "show_list": self._shows(h, None),
            }
            self.log(
                f"  history {n}: start {res[n]['start'] * 1e3:.0f} ms, "
                f"show {res[n]['show'] * 1e3:.0f} ms"
            )
            if n != big:
                h.cleanup()
                _rmtree(h.datadir)
        floor = self._cli_floor(e)
        start, show = res[big]["start"] * 1e3, res[big]["show"] * 1e3
        small_start, small_show = res[big // 10]["start"] * 1e3, res[big // 10]["show"] * 1e3
        size = (
            f"{big} past job runs ({big // history.JOBS_PER_RUN} jobnet runs), "
            f"{res[big]['gen']['journal_mb']:.0f} MB journal"
        )
        common = {"cli_floor_ms": floor * 1e3, "journal": res[big]["gen"]}
        return [
            Figure(
                "startup_1m",
                start,
                "ms",
                baseline=empty_start * 1e3,
                ratio=_ratio(start, empty_start * 1e3),
                target=500.0,
                met=start < 500.0,
                target_text="value < 500",
                baseline_text="`ajs3 service start` on an empty journal",
                size=size,
                small_size=f"{big // 10} past job runs",
                small_value=small_start,
                growth=_ratio(start, small_start),
                detail={**common, "what": "`ajs3 service start` until ready, median of 3"},
            ),
            Figure(
                "show_1m",
                show,
                "ms",
                baseline=tiny_show * 1e3,
                ratio=_ratio(show, tiny_show * 1e3),
                target=200.0,
                met=show < 200.0,
                target_text="value < 200",
                baseline_text="the same `ajs3 show JOBNET` on a journal of 100 job runs",
                size=size,
                small_size=f"{big // 10} past job runs",
                small_value=small_show,
                growth=_ratio(show, small_show),
                detail={
                    **common,
                    "show_list_ms": res[big]["show_list"] * 1e3,
                    "what": "`ajs3 show /bench/hist/daily03`, median of 5",
                },
            ),
        ]

    def _starts(self, h: LogicalHost, times: int = 3) -> float:
        took = []
        for _ in range(times):
            took.append(h.start())
            h.stop(jobs="leave")
        return statistics.median(took)

    def _shows(self, h: LogicalHost, target: str | None, times: int = 5) -> float:
        args = ["show", target] if target else ["show"]
        return statistics.median(h.cli(*args)[1] for _ in range(times))

    def _cli_floor(self, h: LogicalHost) -> float:
        return statistics.median(_time_version() for _ in range(5))

    # -- 4. idle cost -----------------------------------------------------------------------

    def idle(self) -> list[Figure]:
        hosts_n, units, seconds = (2, 100, 3.0) if self.quick else (10, 1000, 60.0)
        loaded = [self.host(f"bi{k:02d}") for k in range(hosts_n)]
        small = self.host("bismall")
        empty = self.host("biempty")
        tomorrow = time.time() + 86400

        def fill(h: LogicalHost, n: int) -> None:
            h.start()
            nets = [
                {
                    "name": f"f{k:03d}",
                    "units": [{"name": f"j{j:03d}", "command": ["/bin/true"]} for j in range(100)],
                }
                for k in range(n // 100)
            ]
            h.define(json.dumps({"group": "/bench", "jobnets": nets}))
            for net in nets:
                h.entry(f"/bench/{net['name']}", at=tomorrow)

        for h in loaded:
            fill(h, units)
        fill(small, max(100, units // 10))
        empty.start()
        sleeper = subprocess.Popen(["sleep", str(int(seconds) + 30)])
        try:
            time.sleep(1.0)
            procs = {h.lhost: h.daemon_pid() for h in [*loaded, small, empty]}
            procs["sleep"] = sleeper.pid
            before = {k: _cpu_ticks(p) for k, p in procs.items() if p}
            t0 = time.monotonic()
            time.sleep(seconds)
            wall = time.monotonic() - t0
            after = {k: _cpu_ticks(p) for k, p in procs.items() if p}
            rss = {k: _rss_mb(p) for k, p in procs.items() if p}
        finally:
            sleeper.kill()
            sleeper.wait()
        tck = os.sysconf("SC_CLK_TCK")
        cpu = {k: (after[k] - before[k]) / tck / wall * 100 for k in before}
        names = [h.lhost for h in loaded]
        loaded_cpu = statistics.mean(cpu[k] for k in names)
        loaded_rss = statistics.mean(rss[k][0] for k in names)
        for h in [*loaded, small, empty]:
            h.stop()
        detail = {
            "cpu_percent": {k: round(v, 4) for k, v in cpu.items()},
            "rss_mb": {k: round(v[0], 1) for k, v in rss.items()},
            "pss_mb": {k: round(v[1], 1) for k, v in rss.items()},
            "window_s": wall,
            "clock_tick_s": 1 / tck,
        }
        size = f"{hosts_n} logical hosts x {units} units registered, none due, {seconds:g} s"
        small_size = f"1 logical host x {max(100, units // 10)} units"
        return [
            Figure(
                "idle_cpu",
                loaded_cpu,
                "% of a core per logical host",
                baseline=cpu["biempty"],
                ratio=None,
                target=0.5,
                met=loaded_cpu < 0.5,
                target_text="value < 0.5",
                baseline_text="an empty logical host in the same window",
                size=size,
                small_size=small_size,
                small_value=cpu["bismall"],
                growth=_ratio(loaded_cpu, cpu["bismall"]),
                detail={**detail, "max_percent": max(cpu[k] for k in names)},
            ),
            Figure(
                "idle_rss",
                loaded_rss,
                "MB per logical host",
                baseline=rss["biempty"][0],
                ratio=_ratio(loaded_rss, rss["biempty"][0]),
                target=60.0,
                met=loaded_rss < 60.0,
                target_text="value < 60",
                baseline_text="an empty logical host (a `sleep`: see detail)",
                size=size,
                small_size=small_size,
                small_value=rss["bismall"][0],
                growth=_ratio(loaded_rss, rss["bismall"][0]),
                detail=detail,
            ),
        ]

    # -- 5. failover --------------------------------------------------------------------------

    def failover(self, timings_file: Path | None) -> Figure:
        target_text = "no target in issue 7; start (the part ajs3 owns) < 500 ms: startup_1m"
        if timings_file is None or not timings_file.is_file():
            where = f" ({timings_file} not found)" if timings_file else ""
            return unavailable(
                "failover",
                "s",
                "cluster lab not run in this bench: run tests/cluster with "
                f"AJS3_LAB_TIMINGS=FILE and give --lab-timings FILE{where}",
                target_text,
            )
        try:
            pairs = {str(k): float(v) for k, v in json.loads(timings_file.read_text())}
        except (OSError, ValueError, TypeError) as exc:
            return unavailable("failover", "s", f"cannot read {timings_file}: {exc}", target_text)
        total = pairs.get("node crash: kill -> lh1 started on survivor")
        fenced = pairs.get("node crash: kill -> fenced")
        if total is None:
            return unavailable(
                "failover", "s", f"{timings_file} has no 'node crash' figure", target_text
            )
        detail: dict[str, Any] = {"file": str(timings_file), "all": pairs}
        if fenced is not None:
            detail.update(detection_and_fencing_s=fenced, start_s=total - fenced)
        return Figure(
            "failover",
            total,
            "s",
            target_text=target_text,
            size="cluster lab: kill -9 of a node to the logical host started",
            detail=detail,
        )


def _summary(v: list[float]) -> dict[str, float]:
    if not v:
        return {}
    return {
        "n": len(v),
        "p50_ms": pct(v, 50) * 1e3,
        "p99_ms": pct(v, 99) * 1e3,
        "max_ms": max(v) * 1e3,
    }


def _time_version() -> float:
    from bench.lhost import cli_env

    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-P", "-m", "ajs3.cli.main", "--version"],
        capture_output=True,
        env=cli_env(),
        check=False,
    )
    return time.perf_counter() - t0


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def _rss_mb(pid: int) -> tuple[float, float]:
    rss = pss = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, pss


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
