"""Plan changes of single runs (JP1's ajsplan): skip, move, add, with a real daemon whose
timetable honours them; shown by `ajs3 plan` and `ajs3 show`; refused with codes."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime

import pytest
from lhost import LogicalHost, wait_for

TICK = """
    group: /p
    jobnets:
      - name: tick
        schedule:
          time_zone: UTC
          catch_up: all
          catch_up_window: 1h
          rules:
            - {at: '00:00', repeat: {every: 1m, until: '23:59'}}
        units:
          - name: a
            command: [/bin/true]
"""


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def next_boundary(margin: float = 12.0) -> float:
    """The next minute boundary at least ``margin`` seconds away."""
    now = time.time()
    due = math.ceil(now / 60) * 60
    return due if due - now >= margin else due + 60


def not_near_midnight() -> None:
    now = time.gmtime()
    if (now.tm_hour == 0 and now.tm_min < 3) or (now.tm_hour == 23 and now.tm_min > 54):
        pytest.skip("the every-minute rule runs from 00:00 to 23:59 UTC; too close")


def scheduled(host: LogicalHost) -> list[float]:
    rows = host.journal_query("SELECT scheduled_at FROM jobnet_runs ORDER BY scheduled_at")
    return [float(r[0]) for r in rows]


def test_the_timetable_skips_moves_and_adds_single_runs(lhost: LogicalHost) -> None:
    not_near_midnight()
    lhost.define(TICK)
    n1 = next_boundary()
    n2 = n1 + 60
    out = lhost.run("plan", "/p/tick", "--skip", iso(n1), "--reason", "not today").stdout
    assert "skipped" in out
    lhost.run("plan", "/p/tick", "--add", iso(n1 + 10), "--reason", "extra load")
    lhost.run("plan", "/p/tick", "--move", iso(n2), "--to", iso(n1 + 20))

    forecast = lhost.json("plan", "/p/tick", "--from", iso(n1 - 1), "--to", iso(n2 + 61))
    rows = [(r["start"][11:19], r.get("change", "")) for r in forecast["runs"]]
    t = [iso(x)[11:19] for x in (n1, n1 + 10, n1 + 20, n2, n2 + 60)]
    assert rows == [
        (t[0], "skipped by root: not today"),
        (t[1], "added by root: extra load"),
        (t[2], f"moved from {iso(n2)}+00:00 by root"),
        (t[3], f"moved to {iso(n1 + 20)}+00:00 by root"),
        (t[4], ""),
    ]
    listed = next(j for j in lhost.show()["jobnets"] if j["jobnet"] == "/p/tick")
    assert len(listed["plan_changes"]) == 3
    assert "plan: run of" in lhost.run("show").stdout

    # the daemon registers the extra and the moved run at their times, and nothing at
    # n1; the run of n2 does not come either
    wait_for(lambda: time.time() > n2 + 3, n2 + 10 - time.time(), "the second boundary")

    def changed() -> list[float]:  # a boundary before n1 may have come after define
        return [x for x in scheduled(lhost) if x > n1 - 1]

    wait_for(lambda: len(changed()) >= 2, 10, "two runs")
    time.sleep(1.0)
    assert changed() == [pytest.approx(n1 + 10), pytest.approx(n1 + 20)]
    rows = lhost.journal_query("SELECT user, args, code FROM audit WHERE op='plan_change'")
    assert [(r[0], r[2]) for r in rows] == [("root", "ok")] * 3
    assert json.loads(rows[0][1]) == {
        "jobnet": "/p/tick",
        "action": "skip",
        "when": iso(n1),
        "to": None,
        "reason": "not today",
    }


def test_bad_plan_changes_are_refused_and_change_nothing(lhost: LogicalHost) -> None:
    not_near_midnight()
    lhost.define(TICK)
    n1 = next_boundary(margin=30.0) + 120

    def refused(*args: str) -> str:
        done = lhost.run("plan", *args, check=False)
        assert done.returncode != 0, args
        return done.stderr

    assert "AJS3-E408" in refused("/p/tick", "--skip", iso(n1 + 7))  # no run then
    assert "AJS3-E408" in refused("/p/tick", "--skip", iso(time.time() - 120))  # past
    assert "AJS3-E408" in refused("/p/tick", "--add", iso(n1))  # a run is there already
    assert "AJS3-E406" in refused("/p/tick", "--move", iso(n1))  # where to?
    assert "AJS3-E406" in refused("/p/tick", "--skip", iso(n1), "--from", iso(n1))
    assert "AJS3-E406" in refused("/p/tick", "--from", iso(n1))  # a forecast needs --to
    assert "AJS3-E406" in refused("/p/tick", "--skip", "tomorrow")
    assert "AJS3-E401" in refused("/p/none", "--skip", iso(n1))
    assert lhost.journal_query("SELECT count(*) FROM plan_changes")[0][0] == 0

    lhost.run("plan", "/p/tick", "--skip", iso(n1))
    assert "AJS3-E408" in refused("/p/tick", "--skip", iso(n1))  # skipped already
    # an added run is taken away again by --skip of its time
    lhost.run("plan", "/p/tick", "--add", iso(n1 + 30))
    out = lhost.run("plan", "/p/tick", "--skip", iso(n1 + 30)).stdout
    assert "no longer runs" in out
    listed = next(j for j in lhost.show()["jobnets"] if j["jobnet"] == "/p/tick")
    assert [(c["kind"], c["at"]) for c in listed["plan_changes"]] == [("skip", None)]
    codes = [r[0] for r in lhost.journal_query("SELECT code FROM audit WHERE op='plan_change'")]
    assert codes.count("ok") == 3 and "AJS3-E408" in codes
