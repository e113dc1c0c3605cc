"""ajs3 suspend / resume (JP1's ajssuspend) with a real daemon: no new scheduled run
while suspended, across a restart; missed runs follow the catch-up policy at resume."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from lhost import LogicalHost, wait_for

TICK = """
    group: /s
    jobnets:
      - name: tick
        schedule:
          time_zone: UTC
          catch_up: all
          catch_up_window: 1h
          rules:
            - {{at: '00:00', repeat: {{every: 1m, until: '23:59'}}}}
        units:
          - name: a
            command: [{program}]
      - name: gated
        units:
          - name: wait
            command: [/bin/sh, -c, 'while [ ! -e {gate} ]; do sleep 0.05; done']
"""


def log_text(host: LogicalHost) -> str:
    return (host.datadir / "log" / "ajs3.log").read_text()


def runs_of(host: LogicalHost, jobnet: str) -> list[tuple[int, float]]:
    rows = host.journal_query(
        "SELECT id, scheduled_at FROM jobnet_runs WHERE jobnet=? ORDER BY id", (jobnet,)
    )
    return [(int(r[0]), float(r[1])) for r in rows]


def shown(host: LogicalHost, jobnet: str) -> dict[str, Any]:
    return next(j for j in host.show()["jobnets"] if j["jobnet"] == jobnet)


def backdate(host: LogicalHost, seconds: float) -> None:
    """As if the suspension, and the last scheduling, were ``seconds`` ago."""
    conn = sqlite3.connect(str(host.datadir / "journal.db"))
    with conn:
        then = repr(time.time() - seconds)
        conn.execute("UPDATE suspended SET since=?", (float(then),))
        conn.execute("UPDATE meta SET value=? WHERE key='schedule_seen'", (then,))
    conn.close()


def test_suspended_jobnet_starts_no_scheduled_run_and_catches_up_at_resume(
    make_lhost: Any, tmp_path: Path
) -> None:
    now = time.gmtime()
    if (now.tm_hour == 0 and now.tm_min < 8) or (now.tm_hour == 23 and now.tm_min > 50):
        pytest.skip("the every-minute rule runs from 00:00 to 23:59 UTC; too close")
    host = make_lhost("susp")
    host.start()
    host.define(TICK.format(program="/bin/true", gate=tmp_path / "gate"))
    out = host.run("suspend", "/s/tick", "--reason", "storage maintenance").stdout
    assert "/s/tick: suspended since" in out and "by root" in out
    assert "already suspended" in host.run("suspend", "/s/tick").stdout
    before = runs_of(host, "/s/tick")  # a boundary may have come between define and suspend
    # the logical host stops and stays down 5.5 minutes: nothing is caught up at start,
    # the suspension is in the journal
    host.stop()
    backdate(host, 330)
    host.start()
    assert runs_of(host, "/s/tick") == before
    assert "catch-up left for resume: jobnet suspended" in log_text(host)
    held = shown(host, "/s/tick")["suspended"]
    assert held["user"] == "root" and held["reason"] == "storage maintenance"
    assert "SUSPENDED since" in host.run("show").stdout
    start, end = (
        time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + d)) for d in (0, 180)
    )
    planned = host.json("plan", "/s/tick", "--from", start, "--to", end)["runs"]
    assert len(planned) >= 2 and {r["change"] for r in planned} == {"suspended by root"}
    # a run that falls due now is not registered either
    wait_for(
        lambda: "scheduled run not registered: jobnet suspended" in log_text(host),
        90,
        "a run of /s/tick to fall due while suspended",
    )
    assert runs_of(host, "/s/tick") == before
    # definitions may change meanwhile; the suspension stays
    host.define(TICK.format(program="/bin/echo", gate=tmp_path / "gate"))
    assert shown(host, "/s/tick")["suspended"] is not None

    result = host.json("resume", "/s/tick", "--reason", "storage back")
    assert result["changed"] is True
    registered = [r for r in runs_of(host, "/s/tick") if r not in before]
    assert [r for r, _ in registered] == result["runs"]
    # every minute boundary of the 5.5+ minutes, each for its own due time (catch-up all)
    assert 6 <= len(registered) <= 9
    for run, due in registered:
        assert int(due) % 60 == 0 and due < time.time()
        assert host.wait(run)["units"][0]["status"] == "ended_normally"
    assert shown(host, "/s/tick")["suspended"] is None
    assert "was not suspended" in host.run("resume", "/s/tick").stdout

    rows = host.journal_query(
        "SELECT user, op, args, code FROM audit WHERE op IN ('suspend', 'resume') ORDER BY id"
    )
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("root", "suspend", "ok"),
        ("root", "suspend", "ok"),
        ("root", "resume", "ok"),
        ("root", "resume", "ok"),
    ]
    assert json.loads(rows[0][2]) == {"jobnet": "/s/tick", "reason": "storage maintenance"}
    assert json.loads(rows[2][2])["reason"] == "storage back"


def test_a_run_going_on_ends_while_its_jobnet_is_suspended(
    lhost: LogicalHost, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    lhost.define(TICK.format(program="/bin/true", gate=gate))
    run = lhost.entry("/s/gated")
    wait_for(lambda: lhost.units(run)["/s/gated/wait"]["status"] == "running", 20, "a start")
    lhost.run("suspend", "/s/gated")
    gate.touch()
    assert lhost.wait(run)["units"][0]["status"] == "ended_normally"
    lhost.run("resume", "/s/gated")


def test_suspend_of_an_unknown_jobnet_is_refused(lhost: LogicalHost, tmp_path: Path) -> None:
    lhost.define(TICK.format(program="/bin/true", gate=tmp_path / "gate"))
    for command in ("suspend", "resume"):
        done = lhost.run(command, "/s/nope", check=False)
        assert done.returncode != 0 and "AJS3-E401" in done.stderr, done.stderr
    done = lhost.run("suspend", "/s/tick/a", check=False)  # a job, not a root jobnet
    assert done.returncode != 0 and "AJS3-E401" in done.stderr
    assert lhost.journal_query("SELECT count(*) FROM suspended")[0][0] == 0
