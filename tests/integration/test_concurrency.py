"""Concurrency limits: per jobnet (root and nested) and per logical host (ajs3.yaml)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def stamp_job(name: str, log: Path, tag: str, seconds: float = 0.4) -> str:
    return (
        f'- {{name: {name}, script: \'echo "s {tag} $(date +%s.%N)" >> {log}; '
        f'sleep {seconds}; echo "e {tag} $(date +%s.%N)" >> {log}\'}}'
    )


def max_overlap(log: Path, tag_prefix: str = "") -> tuple[int, int]:
    """(most jobs running at once, number of jobs) from the jobs' own start/end stamps."""
    events = []
    for line in log.read_text().splitlines():
        kind, tag, at = line.split()
        if tag.startswith(tag_prefix):
            # at equal times an end comes before a start: that is no overlap
            events.append((float(at), 0 if kind == "e" else 1))
    running = best = 0
    for _, kind in sorted(events):
        running += 1 if kind else -1
        best = max(best, running)
    return best, sum(1 for _, k in events if k)


def units_block(lines: list[str], indent: int) -> str:
    return "\n".join(" " * indent + line for line in lines)


def test_jobnet_concurrency_limits_running_jobs(lhost: Any, tmp_path: Path) -> None:
    log = tmp_path / "stamps"
    root_jobs = units_block([stamp_job(f"j{i}", log, f"root{i}") for i in range(6)], 14)
    lhost.define(f"""
        group: /c
        jobnets:
          - name: limited
            concurrency: 2
            units:
{root_jobs}
    """)
    run = lhost.entry("/c/limited")
    final = lhost.wait(run)
    assert final["units"][0]["status"] == "ended_normally"
    best, count = max_overlap(log)
    assert count == 6
    assert best == 2, f"{best} jobs ran at once under concurrency: 2"


def test_why_names_the_concurrency_rule(lhost: Any, tmp_path: Path) -> None:
    go = tmp_path / "go"
    gate = f"while [ ! -e {go} ]; do sleep 0.05; done"
    lhost.define(f"""
        group: /c
        jobnets:
          - name: one
            concurrency: 1
            units:
              - {{name: a, script: '{gate}'}}
              - {{name: b, script: '{gate}'}}
    """)
    run = lhost.entry("/c/one")
    deadline = time.monotonic() + 20
    while True:
        units = lhost.units(run)
        statuses = sorted(units[f"/c/one/{n}"]["status"] for n in "ab")
        if statuses == ["running", "waiting"]:
            break
        assert time.monotonic() < deadline, statuses
        time.sleep(0.05)
    waiting = next(n for n in "ab" if units[f"/c/one/{n}"]["status"] == "waiting")
    why = lhost.json("show", "--why", f"/c/one/{waiting}")
    assert [c["rule"] for c in why["checks"] if not c["passed"]] == ["concurrency_jobnet"]
    go.touch()
    assert lhost.wait(run)["units"][0]["status"] == "ended_normally"


def test_nested_jobnet_concurrency_is_honoured(lhost: Any, tmp_path: Path) -> None:
    log = tmp_path / "stamps"
    inner = units_block([stamp_job(f"n{i}", log, f"inner{i}") for i in range(5)], 18)
    outer = units_block([stamp_job(f"o{i}", log, f"outer{i}") for i in range(3)], 14)
    lhost.define(f"""
        group: /c
        jobnets:
          - name: nested
            units:
{outer}
              - name: sub
                type: jobnet
                concurrency: 2
                units:
{inner}
    """)
    run = lhost.entry("/c/nested")
    assert lhost.wait(run)["units"][0]["status"] == "ended_normally"
    inner_best, inner_count = max_overlap(log, "inner")
    assert inner_count == 5
    assert inner_best == 2, f"{inner_best} jobs ran at once in a jobnet with concurrency: 2"
    # the limit is the nested jobnet's own: the root's other jobs ran alongside
    all_best, _ = max_overlap(log)
    assert all_best > 2


def test_host_concurrency_limits_jobs_across_jobnets(make_lhost: Any, tmp_path: Path) -> None:
    host = make_lhost("lh1")
    host.write_settings("host_concurrency: 3\n")
    host.start()
    log = tmp_path / "stamps"
    a = units_block([stamp_job(f"j{i}", log, f"a{i}") for i in range(4)], 14)
    b = units_block([stamp_job(f"j{i}", log, f"b{i}") for i in range(4)], 14)
    host.define(f"""
        group: /c
        jobnets:
          - name: a
            units:
{a}
          - name: b
            units:
{b}
    """)
    runs = [host.entry("/c/a"), host.entry("/c/b")]
    for run in runs:
        assert host.wait(run)["units"][0]["status"] == "ended_normally"
    best, count = max_overlap(log)
    assert count == 8
    assert best == 3, f"{best} jobs ran at once with host_concurrency: 3"


def test_bad_settings_file_refuses_to_start(make_lhost: Any) -> None:
    host = make_lhost("lh1")
    host.write_settings("host_concurrency: 0\n")
    done = host.run("service", "start", "--timeout", "30", check=False)
    assert done.returncode == 1
    assert "AJS3-E206" in done.stderr and "host_concurrency" in done.stderr
    assert "Traceback" not in done.stderr
    assert host.run("service", "status", check=False).returncode == 3
