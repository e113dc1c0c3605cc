"""The execution host figure of issue 16: trivial jobs spread over 3 execution hosts
(sshd in network namespaces this benchmark starts and removes, bench/exechost_lab.py)
against the same jobs run locally, alternated in the same run; the per-job cost of
the ssh path, and the p99 of the start latency on an execution host (from the start's
intent in the journal to the supervisor's claim there)."""

from __future__ import annotations

import contextlib
import json
import statistics
from typing import TYPE_CHECKING, Any

from bench import exechost_lab

if TYPE_CHECKING:
    from bench.figures import Bench, Figure

NAME = "exechost_dispatch"
UNIT = "jobs/s"
LATENCY = "exechost_latency_p99"
LATENCY_UNIT = "ms"
HOSTS = 3


def _definitions(jobs: int, host: str | None) -> str:
    width = 100
    nets = [
        {
            "name": f"n{k:03d}",
            "type": "jobnet",
            **({"after": [f"n{k - 1:03d}"]} if k else {}),
            "units": [{"name": f"j{j:03d}", "command": ["/bin/true"]} for j in range(width)],
        }
        for k in range(jobs // width)
    ]
    root: dict[str, Any] = {"name": "spread", "units": nets}
    if host:
        root["host"] = host
    return json.dumps({"group": "/bench", "jobnets": [root]})


def figures(b: Bench) -> list[Figure]:
    from bench.figures import Figure, _ratio, pct, unavailable

    why = exechost_lab.available()
    if why is not None:
        return [unavailable(NAME, UNIT, why), unavailable(LATENCY, LATENCY_UNIT, why)]
    jobs = 300 if b.quick else 1000
    with contextlib.ExitStack() as stack:
        labs = [
            stack.enter_context(exechost_lab.lab(b.base / f"xhlab{i}", i)) for i in range(HOSTS)
        ]
        remote = b.host("bxr")
        key = labs[0].key("key")
        settings = "execution_hosts:\n"
        for i, lab in enumerate(labs):
            if i:
                (lab.base / "key").write_bytes(key.read_bytes())
                (lab.base / "key.pub").write_bytes((key.parent / "key.pub").read_bytes())
            lab.authorize(key, "bxr")
            settings += (
                f"  x{i}: {{destination: {lab.addr}, user: root, identity_file: {key}, "
                f"known_hosts: {lab.known_hosts}}}\n"
            )
        members = ", ".join(f"x{i}" for i in range(HOSTS))
        settings += f"host_groups:\n  all: {{members: [{members}], distribution: least_busy}}\n"
        remote.write_settings(settings)
        remote.define(_definitions(jobs, "all"))
        local = b.host("bxl")
        local.define(_definitions(jobs, None))
        for h in (remote, local):
            h.start()
        rates: dict[str, list[float]] = {"exechost": [], "local": []}
        details: list[dict[str, Any]] = []
        for _ in range(2):  # alternated: both sides see the same load
            for side, h in (("exechost", remote), ("local", local)):
                rate, detail = b._dispatch_run(h, "/bench/spread", jobs)
                rates[side].append(rate)
                details.append({"side": side, **detail})
        latency = _claim_latency(remote, labs)
        spread = dict(
            remote.query(
                "SELECT exec_host, count(*) FROM unit_runs WHERE exec_host IS NOT NULL "
                "GROUP BY exec_host"
            )
        )
        for h in (remote, local):
            h.stop()
    value = statistics.mean(rates["exechost"])
    base = statistics.mean(rates["local"])
    ratio = _ratio(value, base)
    per_job_ms = (1 / value - 1 / base) * 1e3 if value and base else None
    return [
        Figure(
            NAME,
            value,
            UNIT,
            baseline=base,
            ratio=ratio,
            target_text="",
            baseline_text="the same jobs run locally, alternated in the same run",
            size=f"{jobs} trivial jobs (jobnets 100 wide, a chain) over {HOSTS} execution "
            "hosts (sshd in network namespaces), least busy",
            detail={
                "exechost_jobs_per_s": rates["exechost"],
                "local_jobs_per_s": rates["local"],
                "ssh_path_ms_per_job": per_job_ms,
                "claim_latency_p99_ms": pct(latency, 99) * 1e3 if latency else None,
                "claim_latency_p50_ms": pct(latency, 50) * 1e3 if latency else None,
                "spread": spread,
                "each": details,
            },
        ),
        Figure(
            LATENCY,
            pct(latency, 99) * 1e3 if latency else None,
            LATENCY_UNIT,
            baseline_text="",
            size=f"{len(latency)} starts on execution hosts: from the start's intent in the "
            "journal to the supervisor's claim there (started.json)",
            detail={"p50_ms": pct(latency, 50) * 1e3 if latency else None, "n": len(latency)},
        ),
    ]


def _claim_latency(h: Any, labs: list[exechost_lab.ExecHostLab]) -> list[float]:
    """From each job's recorded intent (journal) to its claim on the execution host."""
    out: list[float] = []
    rows = h.query(
        "SELECT run_id, started_at FROM unit_runs WHERE exec_host IS NOT NULL AND run_id "
        "IS NOT NULL"
    )
    for run_id, intent in rows:
        for lab in labs:
            path = lab.jobdir(h.lhost, run_id) / "started.json"
            if path.exists():
                with contextlib.suppress(OSError, ValueError):
                    out.append(float(json.loads(path.read_text())["started_at"]) - intent)
                break
    return [max(0.0, x) for x in out]
