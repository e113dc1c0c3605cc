"""`ajs3 plan` agrees with what a real daemon starts, on calendar semantics of issue 14.

A JP1 file is imported with two nested job groups: TOP closes today, SUB only closes
another day (so today stays closed through TOP's calendar). LATE has two start times
past 24:00 written for yesterday (open), which fall in the next minutes of today, a
closed day; NOW has the same times written for today, which is closed. `plan` must list
LATE's two runs and none of NOW, and the daemon must start exactly those (the engine
has no clock to compress, so the schedule is a couple of minutes from now).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

JP1 = """
unit=TOP,,,;
{{
    ty=g;
    cl={today};
    unit=SUB,,,;
    {{
        ty=g;
        cl={other};
        unit=LATE,,,;
        {{
            ty=n;
            sd=1,{yesterday};
            st=1,{late1};
            cy=1,(1,d);
            sd=2,{yesterday};
            st=2,{late2};
            cy=2,(1,d);
            unit=J,,,;{{ty=j;sc="/bin/true";}}
        }}
        unit=NOW,,,;
        {{
            ty=n;
            sd=1,{yesterday};
            st=1,{now1};
            cy=1,(1,d);
            unit=J,,,;{{ty=j;sc="/bin/true";}}
        }}
    }}
}}
"""


def _jp1_date(day: datetime) -> str:
    return day.strftime("%Y/%m/%d")


def test_plan_and_daemon_agree_on_inherited_closed_days_and_times_past_24(
    make_lhost: Any,
) -> None:
    first = math.ceil((time.time() + 25) / 60) * 60
    second = first + 60
    t1, t2 = (datetime.fromtimestamp(t, UTC) for t in (first, second))
    if t2.date() != datetime.now(UTC).date():
        pytest.skip("too close to midnight UTC for a schedule of the next minutes")
    today = t1.replace(hour=0, minute=0)
    host = make_lhost("cal")
    host.start()
    source = host.datadir.parent / "cal.jp1"
    source.write_text(
        JP1.format(
            today=_jp1_date(today),
            other=_jp1_date(today + timedelta(days=10)),
            yesterday=_jp1_date(today - timedelta(days=1)),
            late1=f"{24 + t1.hour}:{t1.minute:02d}",
            late2=f"{24 + t2.hour}:{t2.minute:02d}",
            now1=f"{t1.hour}:{t1.minute:02d}",
        )
    )
    host.run(
        "import", "--jp1", str(source), "--out", str(host.datadir / "definitions"), "--tz", "UTC"
    )
    host.run("define")
    start = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time()))
    end = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(second + 30))
    plan = host.json("plan", "--from", start, "--to", end)["runs"]
    planned = [(r["jobnet"], datetime.fromisoformat(r["start"]).timestamp()) for r in plan]
    assert planned == [("/TOP/SUB/LATE", first), ("/TOP/SUB/LATE", second)]
    deadline = time.time() + (second - time.time()) + 60
    while time.time() < deadline:
        if len(host.journal_query("SELECT id FROM jobnet_runs")) >= 2:
            break
        time.sleep(0.5)
    time.sleep(2)  # a run NOW would have had the same due time as the first
    runs = host.journal_query("SELECT jobnet, scheduled_at FROM jobnet_runs ORDER BY id")
    assert [(name, pytest.approx(due)) for name, due in runs] == planned
    for (run_id,) in host.journal_query("SELECT id FROM jobnet_runs"):
        assert host.wait(run_id)["units"][0]["status"] == "ended_normally"
