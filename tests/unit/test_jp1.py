"""JP1/AJS3 unit definition import and export."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from lhost import cli_env

from ajs3.cli.main import main
from ajs3.definitions.loader import load_dir
from ajs3.errors import DefinitionError
from ajs3.jp1.exporter import export
from ajs3.jp1.importer import import_file, import_text, write_yaml
from ajs3.jp1.parser import parse, quote, unquote
from ajs3.model import Compare, UnitKind

HERE = Path(__file__).parent / "jp1"


def unit_at(defs, path):  # type: ignore[no-untyped-def]
    for root in defs.jobnets.values():
        for unit in root.walk():
            if unit.path == path:
                return unit
    raise KeyError(path)


def test_sample_imports_every_supported_unit_type_and_nesting() -> None:
    result = import_file(HERE / "sales.jp1", time_zone="Asia/Tokyo")
    defs = result.defs
    assert sorted(defs.jobnets) == ["/SALES/DAILY", "/SALES/MONTHLY"]
    daily = defs.jobnets["/SALES/DAILY"]
    assert daily.description == "daily sales batch"
    extract = unit_at(defs, "/SALES/DAILY/EXTRACT")
    assert extract.command == ("/opt/sales/bin/extract", "--day", "today", "--out", "/var/tmp/x")
    assert (extract.user, extract.cwd, extract.env) == ("batch", "/var/tmp", (("REGION", "jp"),))
    assert (extract.warning_threshold, extract.abnormal_threshold) == (3, 8)
    assert extract.timeout == 1800 and extract.retry.count == 2 and extract.retry.interval == 300
    check = unit_at(defs, "/SALES/DAILY/CHECK")
    assert check.kind is UnitKind.JUDGE and check.condition is not None
    assert check.condition.op is Compare.LE and check.condition.value == 3
    assert check.after == ("EXTRACT",)
    load = unit_at(defs, "/SALES/DAILY/LOAD")
    assert load.script == "cd /opt/sales && ./load.sh" and load.hold
    fixup = unit_at(defs, "/SALES/DAILY/FIXUP")
    assert fixup.recovery and fixup.after == ("EXTRACT",)
    assert unit_at(defs, "/SALES/DAILY/REPORT/DONE").kind is UnitKind.OR
    recover = unit_at(defs, "/SALES/MONTHLY/RECOVER")
    assert recover.kind is UnitKind.JOBNET and recover.recovery and recover.after == ("CLOSE",)
    sched = daily.schedule
    assert sched is not None and sched.time_zone == "Asia/Tokyo"
    assert sched.calendar is not None and sched.calendar.base_time == 300
    assert sched.calendar.closed_dates == ("2027-01-01", "2027-05-03")
    assert len(sched.rules) == 2 and sched.overlap.value == "queue"
    assert defs.group_calendars == {"/SALES": "SALES"}


def test_every_unmapped_unit_and_parameter_is_reported_with_its_line() -> None:
    result = import_file(HERE / "sales.jp1", time_zone="Asia/Tokyo")
    lines = {int(n.split(":")[1]): n for n in result.notes}
    assert set(lines) == {36, 51, 100}
    assert "sy=1,03:00" in lines[36]
    assert "so=" in lines[51]
    # the file monitoring job at line 102 maps (ajs3.jp1.events): tests/unit/test_events_jp1.py
    assert all("AJS3-E112" in n for n in result.notes)


def test_syntax_errors_come_all_at_once_with_lines() -> None:
    with pytest.raises(DefinitionError) as info:
        import_file(HERE / "broken.jp1")
    got = [(p.code.value, p.line) for p in info.value.problems]
    assert ("AJS3-E111", 5) in got and ("AJS3-E111", 8) in got


def test_round_trip_import_export_import_is_the_same(tmp_path: Path) -> None:
    first = import_file(HERE / "sales.jp1", time_zone="Asia/Tokyo")
    text, notes = export(first.defs)
    assert "unit=SALES,,,;" in text and "sd=1,2027/01/*3;" in text
    assert any("time zone Asia/Tokyo" in n for n in notes)
    (tmp_path / "again.jp1").write_text(text)
    second = import_file(tmp_path / "again.jp1", time_zone="Asia/Tokyo")
    strip = _without_sources
    assert strip(second.defs.jobnets) == strip(first.defs.jobnets)
    assert second.defs.calendars["SALES"].closed_dates == first.defs.calendars["SALES"].closed_dates
    # The written YAML loads as the same definitions.
    write_yaml(first, tmp_path / "yaml")
    assert strip(load_dir(tmp_path / "yaml").jobnets) == strip(first.defs.jobnets)


def _without_sources(jobnets):  # type: ignore[no-untyped-def]
    def clean(obj):  # type: ignore[no-untyped-def]
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items() if k != "source"}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        return obj

    return {p: clean(u.to_dict()) for p, u in jobnets.items()}


def test_quoting_and_comments() -> None:
    assert unquote(quote('say "hi" #1')) == 'say "hi" #1'
    units = parse('/* c */\nunit=A,,,;{ty=n;\n/* x;y */\ncm="a;b /* no */";}', "f")
    assert units[0].first("cm") == '"a;b /* no */"'


def test_top_unit_with_full_path_and_unsupported_root() -> None:
    result = import_text(
        "unit=/A/B/NET,,,;{ty=n;unit=J,,,;{ty=j;sc=/bin/true;}}\nunit=PCJ,,,;{ty=pj;}\n",
        "x.jp1",
        time_zone="UTC",
    )
    assert list(result.defs.jobnets) == ["/A/B/NET"]
    assert any("x.jp1:2:" in n and "pj" in n for n in result.notes)


def test_cli_import_check_out_and_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "defs"
    sales = ["import", "--jp1", str(HERE / "sales.jp1"), "--tz", "Asia/Tokyo"]
    # Valid JP1 with parts ajs3 can not express: exit 3, and nothing written without
    # --allow-unmapped (issue 14: scripts tell mapped, unmapped and invalid apart).
    assert main([*sales, "--check", "--out", str(out)]) == 3
    assert main([*sales, "--out", str(out)]) == 3
    assert not out.exists()
    assert main([*sales, "--check", "--allow-unmapped"]) == 0
    assert main([*sales, "--out", str(out), "--allow-unmapped"]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "plan",
                "--definitions",
                str(out),
                "--from",
                "2027-01-01T00:00",
                "--to",
                "2027-01-08T00:00",
                "--json",
            ]
        )
        == 0
    )
    runs = json.loads(capsys.readouterr().out)["runs"]
    # The calendar's day begins at 05:00: Monday 4th's 02:00 run is on Tuesday morning.
    assert runs[0] == {"jobnet": "/SALES/DAILY", "start": "2027-01-05T02:00:00+09:00"}
    starts = [r["start"] for r in runs]
    assert starts == sorted(starts)
    # 3rd open day of January 2027: Jan 1 closed, 4 Mon, 5 Tue, 6 Wed; 02:00 is before
    # the base time, so it runs early on the 7th.
    assert {"jobnet": "/SALES/MONTHLY", "start": "2027-01-07T02:00:00+09:00"} in runs
    assert main(["export", "--jp1", str(tmp_path / "out.jp1"), "--definitions", str(out)]) == 0
    assert "ty=jdj;" in (tmp_path / "out.jp1").read_text()
    assert main(["import", "--jp1", str(HERE / "broken.jp1"), "--check"]) == 1
    (tmp_path / "full.jp1").write_text("unit=N,,,;{ty=n;unit=J,,,;{ty=j;sc=/bin/true;}}\n")
    assert main(["import", "--jp1", str(tmp_path / "full.jp1"), "--check"]) == 0


def test_stray_brace_ends_at_once_with_a_coded_error_naming_its_line(tmp_path: Path) -> None:
    # issue 12: this input made the parser loop forever while its memory grew.
    (tmp_path / "b.jp1").write_text("unit=G,,,;\n{\n ty=g;{\n}\n")
    done = subprocess.run(
        [sys.executable, "-m", "ajs3.cli.main", "import", "--jp1", "b.jp1", "--check"],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "b.jp1:3: AJS3-E111" in done.stderr and "Traceback" not in done.stderr


def test_numbers_are_ascii_digits_in_range_and_valid_values_still_map() -> None:
    net = "unit=NET,,,;{{ty=n;sd=1,2027/01/*05;st=1,25:30;\nunit=J,,,;{{ty=j;sc=/bin/true;{job}}}}}"
    result = import_text(
        net.format(job="wth=300;tho=08;abr=y;rec=3;rei=2;"), "n.jp1", time_zone="UTC"
    )
    job = unit_at(result.defs, "/NET/J")
    assert job.abnormal_threshold == 8 and job.retry.count == 3 and job.retry.interval == 120
    assert any("wth=300" in n and "AJS3-E112" in n for n in result.notes)
    rule = result.defs.jobnets["/NET"].schedule.rules[0]  # type: ignore[union-attr]
    assert rule.open_days == (5,)
    for bad in (
        "wth=\u00b2;",
        "tho=1x;",
        "etm=0;",
        "rec=-1;",
        "abr=y;rec=1;rjs=\uff11;",
        "rje=\uff11;",
        "abr=x;",
        "jd=zz;",
        "ha=w;",
        "rjs=\u00b2;",
        "etm=" + "9" * 5000 + ";",
    ):
        with pytest.raises(DefinitionError) as info:
            import_text(net.format(job=bad), "n.jp1", time_zone="UTC")
        assert [(p.code.value, p.line) for p in info.value.problems] == [("AJS3-E111", 2)], bad


def test_a_file_over_the_size_limit_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    from ajs3.jp1.parser import MAX_BYTES

    big = tmp_path / "big.jp1"
    with big.open("wb") as stream:
        stream.truncate(MAX_BYTES + 1)  # sparse: no disk used
    with pytest.raises(DefinitionError) as info:
        import_file(big)
    assert [(p.code.value, p.line) for p in info.value.problems] == [("AJS3-E113", 1)]


def test_relations_that_form_a_cycle_are_each_an_error_at_their_line() -> None:
    text = (
        "unit=N,,,;\n{\nty=n;\nar=(f=A,t=B);\nar=(f=B,t=A);\nar=(f=A,t=C);\n"
        "unit=A,,,;{ty=j;}\nunit=B,,,;{ty=j;}\nunit=C,,,;{ty=j;}\n}\n"
    )
    with pytest.raises(DefinitionError) as info:
        import_text(text, "c.jp1", time_zone="UTC")
    assert [(p.code.value, p.line) for p in info.value.problems] == [
        ("AJS3-E111", 4),
        ("AJS3-E111", 5),
    ]
    assert "cycle" in info.value.problems[0].message


def test_problems_of_the_generated_yaml_point_at_the_jp1_lines() -> None:
    text = (
        "unit=G,,,;\n{\nty=g;\nunit=N,,,;\n{\nty=n;\nsd=1,2027/01/04;\n"
        "unit=A,,,;{ty=j;sc=/bin/true;}\nunit=A,,,;{ty=j;sc=/bin/false;}\n}\n}\n"
    )
    with pytest.raises(DefinitionError) as info:
        import_text(text, "d.jp1", time_zone="UTC")
    twice = [p for p in info.value.problems if p.code.value == "AJS3-E105"]
    assert [(p.file, p.line) for p in twice] == [("d.jp1", 9)]
    assert "generated G.yaml" in twice[0].message


CALENDARS = sorted((Path(__file__).parent.parent / "data" / "calendars").glob("*.jp1"))


@pytest.mark.parametrize("path", [HERE / "sales.jp1", *CALENDARS], ids=lambda p: p.stem)
def test_round_trip_keeps_calendars_as_each_group_defines_them(path: Path, tmp_path: Path) -> None:
    # nested groups with partial calendars, base time, base day and base month: the
    # export writes what each group defines (op/cl weekdays and dates, stt, sdd, md),
    # so the second import has the same calendars, undefined parts included
    first = import_file(path, time_zone="UTC")
    text, _ = export(first.defs)
    (tmp_path / "again.jp1").write_text(text)
    second = import_file(tmp_path / "again.jp1", time_zone="UTC")
    assert _without_sources(second.defs.jobnets) == _without_sources(first.defs.jobnets)
    strip = lambda cals: {n: replace(c, source="") for n, c in cals.items()}  # noqa: E731
    assert strip(second.defs.calendars) == strip(first.defs.calendars)
    assert second.defs.group_calendars == first.defs.group_calendars
    assert text == export(second.defs)[0]


def test_automatic_retry_is_abr_with_rec_rei_and_the_return_codes_rjs_to_rje() -> None:
    net = "unit=NET,,,;{{ty=n;sd=1,2027/01/04;unit=J,,,;{{ty=j;sc=/bin/true;{job}}}}}"

    def retry(job: str):  # type: ignore[no-untyped-def]
        return unit_at(import_text(net.format(job=job), "r.jp1", "UTC").defs, "/NET/J").retry

    got = retry("abr=y;rec=4;rei=3;rjs=2;rje=5;")
    assert (got.count, got.interval, got.on_exit_codes) == (4, 180, (2, 3, 4, 5))
    assert retry("abr=y;").count == 1  # JP1's default count
    assert retry("abr=n;rec=4;").count == 0 and retry("rec=4;").count == 0
    text, _ = export(import_text(net.format(job="abr=y;rec=4;rjs=2;rje=5;"), "r.jp1", "UTC").defs)
    assert "abr=y;" in text and "rjs=2;" in text and "rje=5;" in text and "rcs" not in text


def test_number_of_logs_to_keep_rg_is_the_generations_retention_keeps() -> None:
    net = "unit=NET,,,;{{ty=n;sd=1,2027/01/04;{rg}unit=J,,,;{{ty=j;sc=/bin/true;}}}}"
    defs = import_text(net.format(rg="rg=5;"), "g.jp1", "UTC").defs
    keep = defs.jobnets["/NET"].keep
    assert keep is not None and (keep.runs, keep.days) == (5, None)
    assert "rg=5;" in export(defs)[0]
    assert import_text(net.format(rg=""), "g.jp1", "UTC").defs.jobnets["/NET"].keep is None
    for bad in ("rg=0;", "rg=1000;", "rg=x;"):
        with pytest.raises(DefinitionError) as err:
            import_text(net.format(rg=bad), "g.jp1", "UTC")
        assert "E111" in str(err.value) and ":1" in str(err.value), bad
