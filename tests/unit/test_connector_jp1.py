"""JP1 jobnet connectors (ty=nc) and connection settings (ncl, ncn, ncs) through
import and export: mapped in full, and the same after import -> export -> import."""

from __future__ import annotations

from pathlib import Path

from ajs3.definitions.loader import load_dir
from ajs3.definitions.units import Match, Unit
from ajs3.jp1.exporter import export
from ajs3.jp1.importer import import_file, import_text, write_yaml
from ajs3.model import UnitKind

HERE = Path(__file__).parent / "jp1"


def find(root: Unit, path: str) -> Unit:
    return next(u for u in root.walk() if u.path == path)


def test_connectors_are_mapped_with_their_destination_s_match() -> None:
    result = import_file(HERE / "connect.jp1", time_zone="UTC")
    assert result.notes == []
    nightly = result.defs.jobnets["/BATCH/NIGHTLY"]
    load = find(nightly, "/BATCH/NIGHTLY/AFTERLOAD")
    assert load.kind is UnitKind.CONNECTOR
    assert (load.waits_for, load.match) == ("/BATCH/LOAD", Match.SCHEDULING_DAY)
    assert load.description == "wait for today's LOAD"
    archive = find(nightly, "/BATCH/NIGHTLY/INNER/AFTERARCHIVE")
    assert (archive.waits_for, archive.match) == ("/BATCH/ARCHIVE", Match.LATEST)
    assert find(nightly, "/BATCH/NIGHTLY/INNER/REPORT").after == ("AFTERARCHIVE",)


def _plain(jobnets: dict[str, Unit]) -> dict[str, object]:
    def clean(obj: object) -> object:
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items() if k != "source"}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        return obj

    return {p: clean(u.to_dict()) for p, u in jobnets.items()}


def test_round_trip_import_export_import(tmp_path: Path) -> None:
    first = import_file(HERE / "connect.jp1", time_zone="UTC")
    text, _ = export(first.defs)
    assert "ty=nc;" in text and "ncr=/BATCH/LOAD;" in text
    assert "ncn=/BATCH/NIGHTLY/AFTERLOAD;" in text and "ncs=y;" in text and "ncs=n;" in text
    second = import_text(text, "again.jp1", time_zone="UTC")
    assert second.notes == []
    assert _plain(second.defs.jobnets) == _plain(first.defs.jobnets)
    write_yaml(first, tmp_path / "yaml")
    assert _plain(load_dir(tmp_path / "yaml").jobnets) == _plain(first.defs.jobnets)


def test_a_connector_its_destination_does_not_name_waits_for_the_latest_run() -> None:
    result = import_text(
        "unit=T,,,;{ty=n;unit=J,,,;{ty=j;sc=/bin/true;}}\n"
        "unit=W,,,;{ty=n;unit=C,,,;{ty=nc;ncr=/T;}}\n",
        "x.jp1",
        time_zone="UTC",
    )
    link = result.defs.jobnets["/W"].units[0]
    assert (link.waits_for, link.match) == ("/T", Match.LATEST)
    assert [n.split(":")[1] for n in result.notes] == ["2"]
    assert "does not name it" in result.notes[0]


def test_two_connectors_to_one_jobnet_export_one_with_a_note() -> None:
    result = import_text(
        "unit=T,,,;{ty=n;unit=J,,,;{ty=j;sc=/bin/true;}}\n"
        "unit=W,,,;{ty=n;unit=A,,,;{ty=nc;ncr=/T;}\nunit=B,,,;{ty=nc;ncr=/T;}}\n",
        "x.jp1",
        time_zone="UTC",
    )
    text, notes = export(result.defs)
    assert text.count("ncn=") == 1
    assert any("/W/B" in n and "one connector" in n for n in notes)


def test_a_connector_to_a_jobnet_that_is_not_imported_is_skipped_with_a_note() -> None:
    # PCNET holds only a PC job: not imported (noted), so neither is its connector
    result = import_text(
        "unit=PCNET,,,;{ty=n;unit=P,,,;{ty=pj;}}\n"
        "unit=W,,,;{ty=n;ar=(f=C,t=J);\n"
        "unit=C,,,;{ty=nc;ncr=/PCNET;}\n"
        "unit=J,,,;{ty=j;sc=/bin/true;}}\n",
        "x.jp1",
        time_zone="UTC",
    )
    w = result.defs.jobnets["/W"]
    assert [u.name for u in w.units] == ["J"] and w.units[0].after == ()
    assert any("x.jp1:3:" in n and "not imported" in n for n in result.notes)
