"""JP1 delay monitoring (sy, ey, fd) and macro variables (?AJS2NAME?), both ways."""

from __future__ import annotations

from pathlib import Path

from test_jp1 import HERE, unit_at

from ajs3.jp1.exporter import export
from ajs3.jp1.importer import import_file, import_text


def test_start_and_end_delay_and_required_time_map_to_delay() -> None:
    defs = import_file(HERE / "delays.jp1", time_zone="UTC").defs
    net = unit_at(defs, "/G/NET").delay
    assert (net.start_by_clock, net.start_by_after, net.longest) == (6 * 60 + 30, None, 5400)
    sub = unit_at(defs, "/G/NET/SUB").delay
    assert (sub.start_by_clock, sub.start_by_after, sub.longest) == (None, 1800, 1200)
    assert unit_at(defs, "/G/NET/SUB/J1").delay.longest == 900
    assert unit_at(defs, "/G/NET/J2").delay.longest == 1440 * 60


def test_what_has_no_counterpart_is_reported_at_its_line() -> None:
    result = import_file(HERE / "delays.jp1", time_zone="UTC")
    lines = {int(n.split(":")[1]): n for n in result.notes}
    assert "?AJS2A.B?" in lines[25] and "period" in lines[25]
    assert "schedule rule 2" in lines[42]  # sy for rule 1 only
    assert "different values" in lines[43] and "different values" in lines[44]
    assert "only from M" in lines[48]  # a nested start delay from the upper jobnet
    assert "only from C" in lines[49]  # a nested end delay from the root's start
    assert set(lines) == {25, 42, 43, 44, 48, 49}
    assert all("AJS3-E112" in n for n in result.notes)
    partial = unit_at(result.defs, "/G/PARTIAL")
    assert partial.delay is None and unit_at(result.defs, "/G/PARTIAL/SUB").delay is None


def test_macro_variables_become_run_values() -> None:
    defs = import_file(HERE / "delays.jp1", time_zone="UTC").defs
    assert unit_at(defs, "/G/NET/SUB/J1").command == (
        "/bin/echo",
        "${AJS2DAY}",
        "?AJS2A.B?",
        "plain",
    )
    assert unit_at(defs, "/G/NET/J2").script == "echo ${AJS2DAY}"


def test_round_trip_keeps_delays_and_macros(tmp_path: Path) -> None:
    first = import_file(HERE / "delays.jp1", time_zone="UTC")
    text, _ = export(first.defs)
    assert "sy=1,06:30;" in text and "sy=2,06:30;" in text and "fd=90;" in text
    assert "sy=M30;" in text and 'te="echo ?AJS2DAY?";' in text and "'?AJS2DAY?'" in text
    second = import_text(text, "again.jp1", "UTC")
    for path in ("/G/NET", "/G/NET/SUB", "/G/NET/SUB/J1", "/G/NET/J2"):
        assert unit_at(second.defs, path).delay == unit_at(first.defs, path).delay
        assert unit_at(second.defs, path).command == unit_at(first.defs, path).command
        assert unit_at(second.defs, path).script == unit_at(first.defs, path).script
    assert export(second.defs)[0] == text


def test_relative_zero_is_reported_not_mapped() -> None:
    text = 'unit=N,,,;{ty=n;sy=M0;ey=C0;unit=J,,,;{ty=j;sc="/bin/true";}}\n'
    result = import_text(text, "z.jp1", "UTC")
    assert result.defs.jobnets["/N"].delay is None
    assert sum("at least 1 minute" in n for n in result.notes) == 2
