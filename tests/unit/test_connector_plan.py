"""`ajs3 plan` forecasts jobnet connectors: each planned run of a jobnet with a
connector names the planned run of the target it waits for."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from ajs3.cli.main import main
from ajs3.definitions.loader import load_text
from ajs3.schedule.connect import planned_waits

DEFS = """
group: /g
jobnets:
  - name: load
    schedule: {time_zone: Asia/Tokyo, rules: [{at: '01:00', weekdays: [mon, wed, fri]}]}
    units: [{name: t, command: [/bin/true]}]
  - name: report
    schedule: {time_zone: Asia/Tokyo, rules: [{at: '00:30'}]}
    units:
      - {name: same, type: connector, waits_for: /g/load}
      - {name: last, type: connector, waits_for: /g/load, match: latest}
      - {name: x, command: [/bin/true], after: [same, last]}
"""


def tokyo(text: str) -> float:
    return datetime.fromisoformat(text + "+09:00").timestamp()


def test_planned_waits_name_the_target_run_each_connector_waits_for() -> None:
    defs = load_text(DEFS, "p.yaml")
    # Monday 2027-01-04: load runs at 01:00, after report's 00:30 start
    same, last = planned_waits(defs, "/g/report", tokyo("2027-01-04T00:30"))
    assert same.connector == "/g/report/same" and same.target_due == tokyo("2027-01-04T01:00")
    assert same.target_due > tokyo("2027-01-04T00:30")  # the units after it wait for it
    assert last.target_due == tokyo("2027-01-01T01:00")  # the Friday before
    # Tuesday: load does not run that day
    same, last = planned_waits(defs, "/g/report", tokyo("2027-01-05T00:30"))
    assert same.target_due is None and last.target_due == tokyo("2027-01-04T01:00")
    assert "none is planned" in same.describe(str)
    assert planned_waits(defs, "/g/load", tokyo("2027-01-04T01:00")) == []


def test_plan_shows_the_waits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(DEFS)
    argv = ["plan", "--file", str(path), "--from", "2027-01-04", "--to", "2027-01-05"]
    assert main([*argv, "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    report = next(r for r in runs if r["jobnet"] == "/g/report")
    assert [(w["connector"], w["target_start"]) for w in report["waits"]] == [
        ("/g/report/same", "2027-01-04T01:00:00+09:00"),
        ("/g/report/last", "2027-01-01T01:00:00+09:00"),
    ]
    assert "waits" not in next(r for r in runs if r["jobnet"] == "/g/load")
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "/g/report/same waits for the run of 2027-01-04 of /g/load, due 2027-01-04T01:00" in text
