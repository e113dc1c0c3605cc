"""A run's details in `ajs3 web` with a real daemon: each unit's execution host and its
events (the journal's status changes with their times, attempts and reasons), the
same as `ajs3 show --events` prints. Every answer is checked against
ajs3/web/openapi.json."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from lhost import LogicalHost
from webserve import VIEWER, WebConsole, checked, serving

DEFS = """
group: /g
jobnets:
  - name: net
    units:
      - {name: a, command: [/bin/true]}
      - name: b
        script: 'echo try $AJS3_ATTEMPT >&2; exit 3'
        retry: {count: 1, interval: 0}
        after: [a]
"""


@pytest.fixture
def web(make_lhost: Any) -> Iterator[tuple[LogicalHost, WebConsole]]:
    with serving(make_lhost, "wrun", DEFS) as served:
        yield served


def call(console: WebConsole, path: str) -> tuple[int, Any]:
    return checked(console, "GET", path, VIEWER)


def journal_events(host: LogicalHost, run: int, unit: str) -> list[tuple[Any, ...]]:
    return host.journal_query(
        "SELECT e.at, e.attempt, e.run_id, e.old, e.new, e.code, e.reason FROM events e"
        " JOIN unit_runs u ON u.id = e.unit_run WHERE u.jobnet_run=? AND u.path=?"
        " ORDER BY e.id",
        (run, unit),
    )


def test_a_units_events_are_the_journals(web: tuple[LogicalHost, WebConsole]) -> None:
    host, console = web
    run = host.entry("/g/net")
    host.wait(run)
    status, shown = call(console, f"/api/v1/runs/{run}/events?unit=/g/net/b")
    assert status == 200
    assert shown["run"] == run and shown["unit"] == "/g/net/b"
    assert shown["status"] == "ended_abnormally" and shown["attempt"] == 2
    assert shown["exec_host"] is None and shown["truncated"] is False
    got = [
        (e["at"], e["attempt"], e["run_id"], e["old"], e["new"], e["code"], e["reason"])
        for e in shown["events"]
    ]
    assert got == journal_events(host, run, "/g/net/b")
    # the retry is there: two attempts, each with its own run id, running twice
    assert [e["new"] for e in shown["events"]].count("running") == 2
    assert len({e["run_id"] for e in shown["events"] if e["new"] == "running"}) == 2
    assert shown["events"][-1]["label"] == "Ended abnormally"

    # the same as the command prints
    assert host.json("show", "--events", "/g/net/b", "--run", str(run)) == shown
    text = host.run("show", "--events", "/g/net/b").stdout
    assert text.startswith(f"/g/net/b (run {run}): Ended abnormally")
    assert text.count("-> running") == 2

    status, missing = call(console, f"/api/v1/runs/{run}/events?unit=/g/net/zz")
    assert status == 404 and missing["error"]["code"] == "AJS3-E402"
    status, bad = call(console, f"/api/v1/runs/{run}/events")
    assert status == 400 and bad["error"]["code"] == "AJS3-E317"
    status, _ = call(console, "/api/v1/runs/999/events?unit=/g/net/a")
    assert status == 404


def test_the_execution_host_each_unit_ran_on(web: tuple[LogicalHost, WebConsole]) -> None:
    """A job sent to an execution host has it in the journal (exec_host, since journal
    version 8): written here into a real journal while the daemon is stopped, as a run
    on an execution host leaves it (tests/integration/test_exechost_jobs.py runs one
    over ssh)."""
    host, console = web
    run = host.entry("/g/net")
    host.wait(run)
    host.stop()
    conn = sqlite3.connect(str(host.datadir / "journal.db"), timeout=30)
    with conn:
        conn.execute(
            "UPDATE unit_runs SET exec_host='db1' WHERE jobnet_run=? AND path='/g/net/a'", (run,)
        )
    conn.close()
    host.start()
    status, shown = call(console, f"/api/v1/runs/{run}")
    assert status == 200
    hosts = {u["path"]: u["exec_host"] for u in shown["units"]}
    assert hosts == {"/g/net": None, "/g/net/a": "db1", "/g/net/b": None}
    assert hosts == {u["path"]: u["exec_host"] for u in host.show(run=run)["units"]}
    status, events = call(console, f"/api/v1/runs/{run}/events?unit=/g/net/a")
    assert status == 200 and events["exec_host"] == "db1"
    assert "on db1" in host.run("show", "--events", "/g/net/a").stdout.splitlines()[0]
