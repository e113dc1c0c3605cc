"""The web console's figure of issue 17: every page of `ajs3 web` answers in under
300 ms on a logical host with 10,000 units and 100,000 past jobnet runs.

The history is written directly (bench/history.py); the units are 100 jobnets of 100
jobs beside it. Each page (the API routes the console uses, the graph of a 100-unit
jobnet, the metrics, the page itself) is asked for 5 times after one warm-up; the
figure is the slowest page's median, against the median of `whoami` (an answer that
does not reach the daemon) as the baseline.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import TYPE_CHECKING

from bench import history
from bench.lhost import cli_env

if TYPE_CHECKING:
    from bench.figures import Bench, Figure

TOKEN = "bench-token-0123456789abcdef"
TARGET_MS = 300.0


def _units(nets: int) -> str:
    jobnets = [
        {
            "name": f"w{k:03d}",
            "units": [
                {
                    "name": f"j{j:03d}",
                    "command": ["/bin/true"],
                    **({"after": [f"j{j - 1:03d}"]} if j % 10 else {}),
                }
                for j in range(100)
            ],
        }
        for k in range(nets)
    ]
    return json.dumps({"group": "/bench/web", "jobnets": jobnets}) + "\n"


def _get(url: str, path: str, times: int) -> tuple[float, int]:
    """Median seconds of ``times`` GETs after one warm-up, and the answer's size."""
    took, size = [], 0
    for n in range(times + 1):
        req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {TOKEN}"})
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=120) as resp:
            size = len(resp.read())
        if n:
            took.append(time.perf_counter() - t0)
    return statistics.median(took), size


def figures(b: Bench) -> Figure:
    from bench.figures import Figure, _ratio

    nets, job_runs = (10, 100_000) if b.quick else (100, 1_000_000)
    h = b.host("bweb")
    h.write_settings(history.KEEP_ALL + "purge_interval: 86400\n")
    h.define(history.definitions_yaml(), "hist.yaml")
    h.define(_units(nets), "web.yaml")
    gen = history.add_history(h.datadir / "journal.db", job_runs)
    units = h.query("SELECT count(*) FROM unit_runs")[0][0]
    runs = h.query("SELECT count(*) FROM jobnet_runs")[0][0]
    b.log(f"  web: {nets * 100} units defined, {runs} past jobnet runs ({units} unit runs)")
    h.start()
    argv = [sys.executable, "-P", "-m", "ajs3.cli.main", "web", *h.opts, "--listen", "127.0.0.1:0"]
    proc = subprocess.Popen(
        argv,
        env={**cli_env(), "AJS3_WEB_TOKEN": TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        found = re.search(r"http://127\.0\.0\.1:(\d+)", proc.stdout.readline())
        if found is None:
            raise RuntimeError("ajs3 web did not start")
        url = f"http://127.0.0.1:{found.group(1)}"
        net = history.jobnet_path(3)
        (last,) = h.query("SELECT max(id) FROM jobnet_runs WHERE jobnet=?", (net,))[0]
        pages = [
            "/",
            "/api/v1/jobnets",
            "/api/v1/runs?all=true",
            f"/api/v1/runs/latest?jobnet={net}",
            f"/api/v1/runs/{last}",
            f"/api/v1/runs/{last}/why?unit={net}/job05",
            f"/api/v1/runs/{last}/events?unit={net}/job05",
            "/api/v1/timeline",
            "/api/v1/plan",
            "/api/v1/graph?jobnet=/bench/web/w000",
            f"/api/v1/graph?jobnet={net}",
            "/api/v1/status",
            "/metrics",
        ]
        medians: dict[str, float] = {}
        sizes: dict[str, int] = {}
        for page in pages:
            took, size = _get(url, page, 5)
            medians[page], sizes[page] = took * 1e3, size
        base = _get(url, "/api/v1/whoami", 5)[0] * 1e3
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        h.stop()
    slowest = max(medians, key=lambda p: medians[p])
    value = medians[slowest]
    b.log(f"  web: slowest page {slowest} {value:.0f} ms (whoami {base:.1f} ms)")
    return Figure(
        "web_pages",
        value,
        "ms",
        baseline=base,
        ratio=_ratio(value, base),
        target=TARGET_MS,
        met=value < TARGET_MS,
        target_text=f"value < {TARGET_MS:g}",
        baseline_text="`GET /api/v1/whoami` of the same console (no daemon round trip)",
        size=f"{nets * 100} units, {runs} past jobnet runs ({units} unit runs), "
        f"{gen['journal_mb']:.0f} MB journal",
        detail={"pages_ms": medians, "bytes": sizes, "slowest": slowest, "journal": gen},
    )
