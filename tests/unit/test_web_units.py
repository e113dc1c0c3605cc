"""The parts of `ajs3 web` that need no daemon: the routes and the OpenAPI document
agree, tokens and trusted headers, the web: settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ajs3.errors import AjsError, Code
from ajs3.service import protocol
from ajs3.settings import Settings, parse
from ajs3.web import api
from ajs3.web.auth import ANONYMOUS, Gate, WebRole
from ajs3.web.backend import ACTIONS
from ajs3.web_settings import parse_web

REPO = Path(__file__).resolve().parents[2]
SPEC = api.OPENAPI
GOOD = "t" * 20


def _routes_in_document() -> set[tuple[str, str]]:
    import json

    doc = json.loads(SPEC.read_text())
    return {(m.upper(), p) for p, item in doc["paths"].items() for m in item}


def test_every_route_is_in_the_openapi_document_and_nothing_else() -> None:
    served: set[tuple[str, str]] = {("GET", "/metrics"), ("GET", "/api/v1/events")}
    for method, pattern, _ in api.ROUTES:
        text = pattern.pattern.strip("^$").replace("\\.", ".")
        if "(?P<name>" in text:
            served |= {(method, api.PREFIX + "/actions/" + a) for a in ACTIONS}
            continue
        served.add((method, api.PREFIX + re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", text)))
    assert served == _routes_in_document()


def test_the_document_in_docs_is_the_one_served() -> None:
    assert (REPO / "docs" / "openapi.json").read_text() == SPEC.read_text()


def test_each_action_is_a_change_of_the_control_protocol() -> None:
    for name in ACTIONS:
        assert protocol.OPS[name].access is protocol.Access.CHANGE


def test_tokens_and_roles() -> None:
    web = parse_web(
        {
            "tokens": [
                {"name": "alice", "token": "a" * 20, "role": "operator"},
                {"name": "wally", "token": "w" * 20, "role": "viewer"},
            ]
        },
        Path("x.yaml"),
    )
    gate = Gate(web, environ={"AJS3_WEB_TOKEN": "e" * 20})
    assert gate.identify({"Authorization": "Bearer " + "a" * 20}).role is WebRole.OPERATOR
    assert gate.identify({"Authorization": "bearer " + "w" * 20}).name == "wally"
    assert gate.identify({"Authorization": "Bearer " + "e" * 20}).name == "env"
    for bad in ("", "Bearer", "Bearer " + "a" * 19, "Basic " + "a" * 20, "Bearer " + "a" * 21):
        assert gate.identify({"Authorization": bad}) == ANONYMOUS
    assert gate.identify({"X-Remote-User": "alice"}) == ANONYMOUS  # no header configured


@pytest.mark.parametrize(
    "web",
    [
        [],
        {"listen": "nowhere"},
        {"listen": "127.0.0.1:70000"},
        {"token": "short"},
        {"tokens": [{"name": "a", "token": GOOD, "role": "admin"}]},
        {"tokens": [{"name": "a", "token": GOOD}, {"name": "b", "token": GOOD}]},
        {"tokens": {"a": GOOD}},
        {"metrics_open": "yes"},
        {"tls_cert": "/a.crt"},
        {"trusted_header": "X-User"},
        {"trusted_header": {"name": "X-User", "operators": "alice"}},
        {"colour": "blue"},
    ],
)
def test_web_settings_that_are_wrong_are_refused(web: Any) -> None:
    with pytest.raises(AjsError) as caught:
        parse({"web": web}, Path("/d/ajs3.yaml"), Settings("h", Path("/d")))
    assert caught.value.code is Code.SETTINGS and "/d/ajs3.yaml" in caught.value.message


def test_web_settings_defaults_and_values() -> None:
    assert Settings("h", Path("/d")).web.listen == "127.0.0.1:8470"
    s = parse(
        {
            "web": {
                "listen": "[::1]:9000",
                "token": GOOD,
                "metrics_open": True,
                "tls_cert": "/c",
                "tls_key": "/k",
            }
        },
        Path("/d/ajs3.yaml"),
        Settings("h", Path("/d")),
    )
    assert s.web.metrics_open and s.web.tokens[0].name == "web" and str(s.web.tls_key) == "/k"


def test_on_behalf_is_an_envelope_field_kept_in_the_audit() -> None:
    req = protocol.build("hold", unit="/a/b", on_behalf="web:alice")
    assert req.on_behalf == "web:alice" and "on_behalf" not in req.fields
    again = protocol.check(protocol.decode(req.to_line().rstrip(b"\n")))
    assert again == req
    assert protocol.audit_args(req)["on_behalf"] == "web:alice"
    for bad in ("", "a b", 3, "x" * 200):
        with pytest.raises(protocol.BadRequest):
            protocol.build("hold", unit="/a/b", on_behalf=bad)


def test_the_grafana_dashboard_uses_only_metrics_the_console_exports() -> None:
    import json

    text = (REPO / "docs" / "grafana-ajs3.json").read_text()
    dashboard = json.loads(text)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b(ajs3_[a-z_]+)", e)}
    source = (REPO / "ajs3" / "web" / "metrics.py").read_text()
    exported = set(re.findall(r'"(ajs3_[a-z_]+)"', source))
    suffixes = ("_bucket", "_sum", "_count", "_info", "_total")
    assert used and all(
        m in exported or any(m.endswith(s) and m[: -len(s)] in exported for s in suffixes)
        for m in used
    ), used - exported


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=1, max_value=5), max_size=60),
    steps=st.lists(st.floats(min_value=0, max_value=10), max_size=60),
    since=st.floats(min_value=-5, max_value=400),
)
def test_first_registered_finds_what_a_scan_finds(
    gaps: list[int], steps: list[float], since: float
) -> None:
    import sqlite3

    from ajs3.journal.store import Journal
    from ajs3.service.webviews import first_registered

    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE jobnet_runs (id INTEGER PRIMARY KEY, registered_at REAL)")
    run, at = 0, 0.0
    rows = []
    for gap, step in zip(gaps, steps + [1.0] * len(gaps), strict=False):
        run, at = run + gap, at + step
        rows.append((run, at))
    conn.executemany("INSERT INTO jobnet_runs VALUES (?, ?)", rows)
    scan = min((r for r, a in rows if a >= since), default=None)
    assert first_registered(Journal(conn, Path("x")), since) == scan


def test_each_figure_of_the_daemon_is_exported_with_its_value() -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.registry import Collector

    from ajs3.web.metrics import families

    figures: dict[str, Any] = {
        "started": {"job": 5, "jobnet": 2},
        "ended": [["job", "ended_normally", 4], ["job", "killed", 1]],
        "live": [["job", "running", 1]],
        "jobs_running": 1,
        "jobs_waiting": 3,
        "latency": {"buckets": [[0.1, 2], [1.0, 3]], "count": 4, "sum": 2.5},
        "commits": 10,
        "commit_seconds": 0.25,
        "notify_backlog": 2,
        "purge_backlog": 0,
        "epoch": 7,
        "start_mode": "warm",
        "loop_age": 0.5,
    }

    class Figures(Collector):
        def collect(self) -> Any:
            yield from families("lh1", figures)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Figures())
    text = generate_latest(registry).decode()
    got = {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "lhost"))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("lhost") == "lh1"
    }
    assert got == {
        ("ajs3_unit_runs_started_total", (("kind", "job"),)): 5,
        ("ajs3_unit_runs_started_total", (("kind", "jobnet"),)): 2,
        ("ajs3_unit_runs_ended_total", (("kind", "job"), ("status", "ended_normally"))): 4,
        ("ajs3_unit_runs_ended_total", (("kind", "job"), ("status", "killed"))): 1,
        ("ajs3_units", (("kind", "job"), ("status", "running"))): 1,
        ("ajs3_jobs_running", ()): 1,
        ("ajs3_jobs_waiting", ()): 3,
        ("ajs3_scheduling_latency_seconds_bucket", (("le", "0.1"),)): 2,
        ("ajs3_scheduling_latency_seconds_bucket", (("le", "1.0"),)): 3,
        ("ajs3_scheduling_latency_seconds_bucket", (("le", "+Inf"),)): 4,
        ("ajs3_scheduling_latency_seconds_count", ()): 4,
        ("ajs3_scheduling_latency_seconds_sum", ()): 2.5,
        ("ajs3_journal_commit_seconds_count", ()): 10,
        ("ajs3_journal_commit_seconds_sum", ()): 0.25,
        ("ajs3_notify_backlog", ()): 2,
        ("ajs3_purge_backlog", ()): 0,
        ("ajs3_epoch", ()): 7,
        ("ajs3_start_info", (("mode", "warm"),)): 1,
        ("ajs3_loop_age_seconds", ()): 0.5,
    }
