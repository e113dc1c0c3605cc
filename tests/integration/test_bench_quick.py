"""The quick benchmark suite runs and reports every figure (issue 7).

It asserts nothing about speed: only that `bench/run --quick --json FILE` works, so the
benchmarks do not rot, and that its JSON has the promised shape.
"""

from __future__ import annotations

import json
import numbers
import os
import subprocess
from pathlib import Path

from lhost import REPO, cli_env

FIGURES = [
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
    "exechost_dispatch",
    "exechost_latency_p99",
    "chain_hop",
    "stages8",
]
KEYS = {"figure", "value", "unit", "baseline", "ratio", "target", "met"}


def test_quick_bench_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [str(REPO / "bench" / "run"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"bench/run failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    data = json.loads(out.read_text())
    assert isinstance(data, list)
    assert [f["figure"] for f in data] == FIGURES
    for f in data:
        assert set(f) >= KEYS, f
        if f["value"] is None:
            assert isinstance(f.get("why"), str) and f["why"], f
        else:
            assert isinstance(f["value"], numbers.Real) and f["value"] >= 0, f
            assert isinstance(f["met"], bool) or f["target"] is None, f
        for key in ("baseline", "ratio", "target"):
            assert f[key] is None or isinstance(f[key], numbers.Real), (key, f)
    measured = {f["figure"] for f in data if f["value"] is not None}
    # Everything but the cluster lab's figure is measurable on any Linux machine.
    # The execution host figures need root (network namespaces with sshd).
    rootless = {"exechost_dispatch", "exechost_latency_p99"} if os.geteuid() else set()
    assert measured >= set(FIGURES) - {"failover"} - rootless, data
    for name in FIGURES:
        assert name in done.stdout  # the table
