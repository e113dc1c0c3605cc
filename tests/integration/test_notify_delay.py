"""Delay monitoring through a real daemon: a start delay and an end delay raise their
event once per unit run, mark the unit in `ajs3 show`, and the run goes on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lhost import LogicalHost, wait_for
from notifysink import events, sink_route, wait_event


def test_start_and_end_delays_raise_once_mark_the_unit_and_the_run_goes_on(
    make_lhost: Any, tmp_path: Path
) -> None:
    host: LogicalHost = make_lhost("lh1")
    out, text = sink_route(tmp_path)
    host.write_settings(text)
    host.start()
    host.define("""
        group: /d
        jobnets:
          - name: late
            delay: {longest: 1s}
            units:
              - {name: slow, command: [sleep, '3'], delay: {longest: 1}}
              - {name: next, after: [slow], command: [/bin/true], delay: {start_by: '+1s'}}
              - {name: quick, command: [/bin/true], delay: {longest: 1h, start_by: '+1h'}}
          - name: held
            delay: {start_by: '00:00'}
            units:
              - {name: j, command: [/bin/true]}
    """)
    run = host.entry("/d/late")
    end = wait_event(out, lambda e: e["kind"] == "end_delay" and e["unit"] == "/d/late/slow")
    assert end["status"] == "running" and end["severity"] == "warning" and end["run"] == run
    assert end["run_id"] and "longest run time" in end["message"]
    start = wait_event(out, lambda e: e["kind"] == "start_delay" and e["unit"] == "/d/late/next")
    assert start["status"] in ("not_scheduled", "waiting")
    wait_event(out, lambda e: e["kind"] == "end_delay" and e["unit"] == "/d/late")
    final = host.wait(run, timeout=60)
    units = {u["path"]: u for u in final["units"]}
    assert units["/d/late"]["status"] == "ended_normally"  # the run went on
    assert units["/d/late/slow"]["delays"] == ["end_delay"]
    assert units["/d/late/next"]["delays"] == ["start_delay"]
    assert units["/d/late/quick"]["delays"] == []
    shown = host.run("show", "/d/late", "--run", str(run)).stdout
    assert "[end delay]" in shown and "[start delay]" in shown
    # a clock time already past on the run's day: raised at once for a held root
    held = host.entry("/d/held", "--hold")
    late = wait_event(out, lambda e: e["kind"] == "start_delay" and e["unit"] == "/d/held")
    assert late["run"] == held and late["status"] == "held"
    time.sleep(1.5)  # a few more steps and timer wakes: still one event each
    delays = [(e["kind"], e["unit"]) for e in events(out) if e["kind"].endswith("_delay")]
    assert sorted(delays) == sorted(
        [
            ("end_delay", "/d/late/slow"),
            ("start_delay", "/d/late/next"),
            ("end_delay", "/d/late"),
            ("start_delay", "/d/held"),
        ]
    )
    # a restart does not raise them again
    host.stop()
    host.start()
    wait_for(lambda: [e["kind"] for e in events(out)].count("host_started") == 2, 30)
    time.sleep(1.0)
    again = [(e["kind"], e["unit"]) for e in events(out) if e["kind"].endswith("_delay")]
    assert sorted(again) == sorted(delays)
