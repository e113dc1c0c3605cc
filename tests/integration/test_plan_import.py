"""`ajs3 plan` against a logical host's applied definitions, and an imported JP1 file."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def test_plan_reads_the_applied_definitions_of_a_stopped_host(make_lhost: Any) -> None:
    host = make_lhost("lh1")
    host.datadir.joinpath("definitions", "d.yaml").write_text(
        textwrap.dedent("""\
        group: /ops
        jobnets:
          - name: nightly
            schedule:
              time_zone: Europe/Berlin
              rules: [{at: '02:30'}]
            units: [{name: j, command: ["true"]}]
        """)
    )
    host.run("define")
    data = json.loads(
        host.run("plan", "--from", "2027-03-27", "--to", "2027-03-29", "--json").stdout
    )
    assert data == {
        "runs": [
            {"jobnet": "/ops/nightly", "start": "2027-03-27T02:30:00+01:00"},
            {"jobnet": "/ops/nightly", "start": "2027-03-28T03:00:00+02:00"},
        ]
    }


def test_import_then_plan_without_a_daemon(make_lhost: Any, tmp_path: Path) -> None:
    host = make_lhost("lh2")
    out = tmp_path / "defs"
    host.run(
        "import",
        "--jp1",
        str(REPO / "tests/unit/jp1/sales.jp1"),
        "--out",
        str(out),
        "--allow-unmapped",
        "--tz",
        "Asia/Tokyo",
    )
    data = json.loads(
        host.run(
            "plan",
            "/SALES/DAILY",
            "--definitions",
            str(out),
            "--from",
            "2027-01-04T00:00",
            "--to",
            "2027-01-07T00:00",
            "--json",
        ).stdout
    )
    assert [r["start"] for r in data["runs"]] == [
        "2027-01-05T02:00:00+09:00",
        "2027-01-06T02:00:00+09:00",
    ]
