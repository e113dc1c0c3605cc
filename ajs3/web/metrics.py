"""``/metrics``: the logical host's figures in Prometheus' text format (prometheus-client).

Every scrape asks the daemon (the ``metrics`` control request) and turns its answer
into metric families labelled with the logical host, so several logical hosts on one
node are told apart. Nothing is counted in this process: a restarted console exports
the same values. When the daemon does not answer, only ``ajs3_up 0`` is exported.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from ajs3.errors import AjsError
from ajs3.web.backend import Backend

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HostCollector(Collector):
    def __init__(self, backend: Backend, lhost: str) -> None:
        self.backend = backend
        self.lhost = lhost

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("ajs3_up", "1 when the daemon answered", labels=["lhost"])
        try:
            figures = self.backend.read("metrics")
        except AjsError:
            up.add_metric([self.lhost], 0)
            yield up
            return
        up.add_metric([self.lhost], 1)
        yield up
        yield from families(self.lhost, figures)


#: The families labelled by more than the logical host, in the order exported: (type,
#: name, help, labels beyond lhost, the figure's key). A figure is {kind: n} for one
#: label, else [[kind, status, n], ...].
LABELLED: tuple[
    tuple[type[CounterMetricFamily | GaugeMetricFamily], str, str, list[str], str], ...
] = (
    (
        CounterMetricFamily,
        "ajs3_unit_runs_started",
        "units that started running since the daemon started, by kind (jobnet: jobnet runs)",
        ["kind"],
        "started",
    ),
    (
        CounterMetricFamily,
        "ajs3_unit_runs_ended",
        "units that ended since the daemon started, by kind and status",
        ["kind", "status"],
        "ended",
    ),
    (
        GaugeMetricFamily,
        "ajs3_units",
        "units of the journal that have not ended, by kind and status",
        ["kind", "status"],
        "live",
    ),
)

#: The gauges of one value per logical host, in the order exported: (name, help, the
#: figure's key).
GAUGES: tuple[tuple[str, str, str], ...] = (
    ("ajs3_jobs_running", "jobs running now", "jobs_running"),
    (
        "ajs3_jobs_waiting",
        "jobs of live runs not started yet (waiting, held, not scheduled)",
        "jobs_waiting",
    ),
    ("ajs3_notify_backlog", "notification deliveries waiting", "notify_backlog"),
    (
        "ajs3_purge_backlog",
        "jobnet runs taken by the purge, files not yet removed",
        "purge_backlog",
    ),
    ("ajs3_epoch", "the daemon's epoch (one per start)", "epoch"),
    ("ajs3_loop_age_seconds", "since the daemon's loop last turned", "loop_age"),
)


def families(lhost: str, f: dict[str, Any]) -> Iterator[Metric]:
    for kind, name, doc, labels, key in LABELLED:
        family = kind(name, doc, labels=["lhost", *labels])
        rows = sorted(f[key].items()) if isinstance(f[key], dict) else f[key]
        for *values, n in rows:
            family.add_metric([lhost, *values], n)
        yield family
    for name, doc, key in GAUGES:
        gauge = GaugeMetricFamily(name, doc, labels=["lhost"])
        gauge.add_metric([lhost], f[key] or 0)
        yield gauge
    lat = f["latency"]
    cumulative = [(repr(float(b)), float(n)) for b, n in lat["buckets"]]
    cumulative.append(("+Inf", float(lat["count"])))
    hist = HistogramMetricFamily(
        "ajs3_scheduling_latency_seconds",
        "from when a jobnet run was due to when it started, since the daemon started",
        labels=["lhost"],
    )
    hist.add_metric([lhost], cumulative, sum_value=float(lat["sum"]))
    yield hist
    commit = SummaryMetricFamily(
        "ajs3_journal_commit_seconds",
        "journal commits by the daemon since it started and the time they took",
        labels=["lhost"],
    )
    commit.add_metric([lhost], count_value=f["commits"], sum_value=f["commit_seconds"])
    yield commit
    mode = InfoMetricFamily("ajs3_start", "how the daemon started", labels=["lhost"])
    mode.add_metric([lhost], {"mode": str(f["start_mode"] or "")})
    yield mode


def exposition(backend: Backend, lhost: str) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HostCollector(backend, lhost))
    return generate_latest(registry)
