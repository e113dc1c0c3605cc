"""A run's details in `ajs3 web` with a real daemon: each unit's execution host and its
events (the journal's status changes with their times, attempts and reasons), the
same as `ajs3 show --events` prints; a job's output followed while it runs (the log
route from a byte offset, with whether the job has ended), a MiB at most per read.
Every answer is checked against ajs3/web/openapi.json."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lhost import LogicalHost, wait_for
from webserve import VIEWER, WebConsole, checked, serving

from ajs3.service.joboutput import LOG_LIMIT

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


TALK = """
group: /t
jobnets:
  - name: talk
    units:
      - name: speaker
        script: 'echo one; while [ ! -e {gate1} ]; do sleep 0.05; done; echo two;
          while [ ! -e {gate2} ]; do sleep 0.05; done; echo three'
  - name: big
    units:
      - name: loud
        script: 'head -c {size} /dev/zero | tr "\\\\0" x'
"""


def log_of(console: WebConsole, run: int, unit: str, start: int | None = None) -> dict[str, Any]:
    path = f"/api/v1/runs/{run}/log?unit={unit}" + ("" if start is None else f"&from={start}")
    status, out = call(console, path)
    assert status == 200, out
    return dict(out, bytes=base64.b64decode(out["data"]))


def test_a_running_jobs_output_is_followed_from_an_offset(make_lhost: Any, tmp_path: Path) -> None:
    gate1, gate2 = tmp_path / "gate1", tmp_path / "gate2"
    defs = TALK.format(gate1=gate1, gate2=gate2, size=3 * LOG_LIMIT + 5)
    with serving(make_lhost, "wtail", defs) as (host, console):
        run = host.entry("/t/talk")
        unit = "/t/talk/speaker"
        first = wait_for(
            lambda: (o := log_of(console, run, unit))["bytes"] == b"one\n" and o, 60, "one"
        )
        assert first["ended"] is False and first["offset"] == 0 and first["size"] == 4
        # the job waits at its gate: nothing new, and it has not ended
        assert log_of(console, run, unit, 4)["bytes"] == b""
        gate1.touch()
        second = wait_for(lambda: (o := log_of(console, run, unit, 4))["bytes"] and o, 60, "two")
        assert second["bytes"] == b"two\n" and second["offset"] == 4 and not second["ended"]
        assert second["run_id"] == first["run_id"]
        gate2.touch()
        last = wait_for(lambda: (o := log_of(console, run, unit, 8))["ended"] and o, 60, "end")
        assert last["bytes"] == b"three\n" and last["size"] == 14
        written = host.journal_query(
            "SELECT run_id FROM unit_runs WHERE jobnet_run=? AND path=?", (run, unit)
        )
        assert written == [(last["run_id"],)]
        assert host.run("log", unit).stdout == "one\ntwo\nthree\n"
        # an offset beyond the end gives nothing from the end; a bad one is refused
        beyond = log_of(console, run, unit, 1000)
        assert beyond["bytes"] == b"" and beyond["offset"] == 14 and beyond["ended"]
        for bad in ("-1", "x", "1.5", "9" * 19):
            status, refused = call(console, f"/api/v1/runs/{run}/log?unit={unit}&from={bad}")
            assert status == 400 and refused["error"]["code"] == "AJS3-E317", bad


def test_a_large_output_is_read_a_mib_at_a_time(make_lhost: Any, tmp_path: Path) -> None:
    defs = TALK.format(gate1=tmp_path / "g1", gate2=tmp_path / "g2", size=3 * LOG_LIMIT + 5)
    with serving(make_lhost, "wbig", defs) as (host, console):
        run = host.entry("/t/big")
        host.wait(run)
        tail = log_of(console, run, "/t/big/loud")
        assert tail["truncated"] and len(tail["bytes"]) == LOG_LIMIT
        assert tail["offset"] == 2 * LOG_LIMIT + 5 and tail["size"] == 3 * LOG_LIMIT + 5
        got, start, reads = b"", 0, 0
        while True:
            part = log_of(console, run, "/t/big/loud", start)
            assert part["offset"] == start and len(part["bytes"]) <= LOG_LIMIT
            assert not part["truncated"]
            got, start, reads = got + part["bytes"], start + len(part["bytes"]), reads + 1
            if part["ended"] and start >= part["size"]:
                break
        assert got == b"x" * (3 * LOG_LIMIT + 5) and reads == 4
