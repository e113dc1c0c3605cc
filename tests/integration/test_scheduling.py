"""Scheduled jobnets run by themselves, and missed runs follow the catch-up policy."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from typing import Any

import pytest

EVERY_MINUTE = """
    jobnets:
      - name: {name}
        schedule:
          time_zone: UTC
          catch_up: {policy}
          catch_up_window: 1h
          rules:
            - {{at: '00:00', repeat: {{every: 1m, until: '23:59'}}}}
        units:
          - name: a
            command: [/bin/true]
"""


def set_seen(host: Any, seconds_ago: float) -> None:
    conn = sqlite3.connect(str(host.datadir / "journal.db"))
    with conn:
        conn.execute(
            "UPDATE meta SET value=? WHERE key='schedule_seen'", (repr(time.time() - seconds_ago),)
        )
    conn.close()


@pytest.mark.parametrize("policy,expected", [("skip", {0}), ("latest", {1}), ("all", {5, 6})])
def test_catch_up_after_downtime(make_lhost: Any, policy: str, expected: set[int]) -> None:
    if time.gmtime().tm_hour == 0 and time.gmtime().tm_min < 7:
        pytest.skip("the every-minute rule starts at 00:00 UTC; too close to midnight")
    host = make_lhost("sched")
    host.start()
    host.define(EVERY_MINUTE.format(name="tick", policy=policy))
    host.stop()
    # a minute boundary may have passed while the first daemon ran: its run is not
    # one of the catch-up's
    (before,) = host.journal_query("SELECT coalesce(max(id), 0) FROM jobnet_runs")[0]
    # the logical host was down for a little over 5 minutes
    set_seen(host, 5 * 60 + 30)
    host.start()
    runs = host.journal_query(
        "SELECT id, scheduled_at FROM jobnet_runs WHERE id > ? ORDER BY id", (before,)
    )
    # 5 min 30 s down: 5 or 6 minute boundaries, depending on where they fell
    assert len(runs) in expected
    log = (host.datadir / "log" / "ajs3.log").read_text()
    assert log.count('"event": "catch-up"') >= 5
    assert log.count('"run": true, "decision"') == len(runs)
    if policy == "skip":
        assert "skipped" in log
    for run_id, due in runs:
        assert due < time.time()
        assert int(due) % 60 == 0  # registered for its due time, not for now
        host.wait(run_id)


def test_a_due_run_starts_by_itself(make_lhost: Any) -> None:
    host = make_lhost("sched")
    host.start()
    host.define(EVERY_MINUTE.format(name="tick", policy="skip"))
    listing = host.show()
    assert listing["jobnets"][0]["next_run"] is not None
    due = listing["jobnets"][0]["next_run"]
    assert 0 < due - time.time() <= 61
    # the forecast names the same start the daemon will make
    start = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time()))
    end = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 120))
    plan = host.json("plan", "/tick", "--from", start, "--to", end)
    first = datetime.fromisoformat(plan["runs"][0]["start"]).timestamp()
    assert first == pytest.approx(due)
    end = time.time() + 75
    while time.time() < end and not host.journal_query("SELECT id FROM jobnet_runs"):
        time.sleep(0.2)
    runs = host.journal_query("SELECT id, scheduled_at, registered_at FROM jobnet_runs")
    assert len(runs) == 1
    run_id, scheduled_at, registered_at = runs[0]
    assert scheduled_at == pytest.approx(due)
    assert registered_at - due < 1.0  # woke on time, without polling
    assert host.wait(run_id)["units"][0]["status"] == "ended_normally"
