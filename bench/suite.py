"""`bench/run [--quick] [--json FILE]`: every figure of issue 7 next to its baseline.

Exit status 0 when every figure was measured or has a reason why not (a missed target
is a result, not an error); 1 when the harness itself failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ajs3.engine import native
from bench import chains, exechost, retention, volume, web
from bench.figures import Bench, Figure, unavailable

NAMES = [
    "dispatch",
    "latency_p99",
    "startup_1m",
    "show_1m",
    "idle_cpu",
    "idle_rss",
    "failover",
    "dispatch_history",
    "purge_pause",
    "web_pages",
    exechost.NAME,
    exechost.LATENCY,
    chains.CHAIN,
    chains.STAGES,
]
UNITS = {
    "dispatch": "jobs/s",
    "latency_p99": "ms",
    "startup_1m": "ms",
    "show_1m": "ms",
    "idle_cpu": "% of a core per logical host",
    "idle_rss": "MB per logical host",
    "failover": "s",
    "dispatch_history": "jobs/s",
    "purge_pause": "ms",
    "web_pages": "ms",
    exechost.NAME: exechost.UNIT,
    exechost.LATENCY: exechost.LATENCY_UNIT,
    chains.CHAIN: chains.UNIT,
    chains.STAGES: chains.UNIT,
}


ALL_GROUPS = "dispatch,latency,history,idle,failover,retention,web,exechost,chains"


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def table(figures: list[Figure]) -> str:
    rows = [
        ("figure", "value", "unit", "baseline", "ratio", "target", "met", "x10 growth", "notes")
    ]
    for f in figures:
        met = "-" if f.met is None else ("yes" if f.met else "NO")
        notes = ""
        if f.figure == "dispatch" and f.value is not None:
            big = max(int(k[4:]) for k in f.detail if k.startswith("jobs") and k[4:].isdigit())
            cpu = f.detail[f"jobs{big}"].get("machine_cpu_ms_per_job")
            base_cpu = f.detail.get("baseline_machine_cpu_ms_per_job")
            if cpu is not None and base_cpu is not None:
                notes = f"machine CPU per job {_fmt(cpu)} ms vs {_fmt(base_cpu)} ms"
        elif f.figure == "latency_p99" and f.value is not None:
            notes = f"p50 {_fmt(f.detail['p50_ms'])} / max {_fmt(f.detail['max_ms'])} ms"
        elif f.figure == "purge_pause" and f.value is not None:
            ping = f.detail["ping_while_purging"]
            notes = f"ping while purging p99 {_fmt(ping['p99_ms'])} / max {_fmt(ping['max_ms'])} ms"
        elif f.value is None:
            notes = f.why or ""
        rows.append(
            (
                f.figure,
                _fmt(f.value),
                f.unit.split(" per ")[0],
                _fmt(f.baseline),
                _fmt(f.ratio),
                f.target_text.split(";")[0] or "-",
                met,
                _fmt(f.growth),
                notes,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = []
    for k, r in enumerate(rows):
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
        if k == 0:
            out.append("-" * (sum(widths) + 2 * len(widths) + 5))
    return "\n".join(out)


def run_groups(
    bench: Bench,
    groups: list[str],
    args: argparse.Namespace,
    got: dict[str, Figure],
    log: Callable[[str], None],
) -> bool:
    """Measure each group asked for into ``got``; True if one of them failed."""
    failed = False
    plan = [
        ("dispatch", bench.dispatch, ["dispatch"]),
        ("latency", bench.latency, ["latency_p99"]),
        ("history", bench.history_figures, ["startup_1m", "show_1m"]),
        ("idle", bench.idle, ["idle_cpu", "idle_rss"]),
        ("failover", lambda: bench.failover(args.lab_timings), ["failover"]),
        (
            "retention",
            lambda: retention.figures(bench),
            ["dispatch_history", "purge_pause"],
        ),
        ("web", lambda: web.figures(bench), ["web_pages"]),
        ("exechost", lambda: exechost.figures(bench), [exechost.NAME, exechost.LATENCY]),
        ("chains", lambda: chains.figures(bench), [chains.CHAIN, chains.STAGES]),
    ]
    for group, fn, names in plan:
        if group not in groups:
            for n in names:
                got[n] = unavailable(n, UNITS[n], f"not run (--only {args.only})")
            continue
        log(f"== {group}")
        os.sync()  # what the previous group left to write is not this group's cost
        t0 = time.monotonic()
        try:
            result = fn()
            for f in result if isinstance(result, list) else [result]:
                f.seconds = time.monotonic() - t0
                got[f.figure] = f
        except Exception as exc:
            failed = True
            traceback.print_exc()
            for n in names:
                got[n] = unavailable(n, UNITS[n], f"the benchmark failed: {exc}")
        log(f"   {group}: {time.monotonic() - t0:.1f} s")
    return failed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes, a few seconds each")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON")
    p.add_argument(
        "--only",
        help=f"comma-separated groups: {ALL_GROUPS}",
    )
    p.add_argument(
        "--lab-timings",
        type=Path,
        default=Path(os.environ["AJS3_LAB_TIMINGS"])
        if os.environ.get("AJS3_LAB_TIMINGS")
        else None,
        help="timings JSON written by the cluster tests (AJS3_LAB_TIMINGS)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument(
        "--on",
        choices=["volume", "tmp"],
        default="volume",
        help="where the logical hosts live: a fresh ext4 volume made for the run "
        "(the default, as root) or the temporary directory itself",
    )
    args = p.parse_args(argv)
    native.ensure_built()  # the working tree's engine, with its C supervisor
    groups = (args.only or ALL_GROUPS).split(",")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    base = Path(tempfile.mkdtemp(prefix="ajs3b-"))
    got: dict[str, Figure] = {}
    failed = False
    began = time.monotonic()
    info = machine()
    why_not = volume.available() if args.on == "volume" else "--on tmp"
    with contextlib.ExitStack() as stack:
        where = base if why_not else stack.enter_context(volume.scratch_volume(base))
        info["datadirs_on"] = volume.describe(where) + (
            " (a fresh ext4 volume)" if not why_not else f" (temporary directory: {why_not})"
        )
        bench = Bench(where, args.quick, log)
        log(f"bench: {'quick' if args.quick else 'full'} run in {where}; {info}")
        try:
            failed = run_groups(bench, groups, args, got, log)
        finally:
            bench.cleanup()
    if args.keep:
        log(f"kept {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    figures = [got[n] for n in NAMES]
    print(table(figures))
    total = time.monotonic() - began
    print(
        f"\n{info['nproc']} x {info['cpu']}, load at start {info['loadavg_at_start']}, "
        f"load now {[round(x, 2) for x in os.getloadavg()]}, {total:.0f} s"
    )
    if args.json:
        data = [
            {**f.to_dict(), "machine": info} if i == 0 else f.to_dict()
            for i, f in enumerate(figures)
        ]
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
