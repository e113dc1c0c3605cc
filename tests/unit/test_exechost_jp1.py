"""JP1's execution host of a Unix job (ex=, an agent or agent group) is `host:`."""

from __future__ import annotations

import pytest

from ajs3.errors import DefinitionError
from ajs3.jp1.exporter import export
from ajs3.jp1.importer import import_text

NET = "unit=NET,,,;{{ty=n;sd=1,2027/01/04;unit=J,,,;{{ty=j;sc=/bin/true;{job}}}}}"


def job_host(job: str) -> str | None:
    defs = import_text(NET.format(job=job), "x.jp1", "UTC").defs
    return defs.jobnets["/NET"].units[0].host


def test_ex_maps_to_host_and_back() -> None:
    assert job_host('ex="dbagents";') == "dbagents"
    assert job_host("ex=db1.example;") == "db1.example"
    assert job_host("") is None
    text, _ = export(import_text(NET.format(job="ex=db1;"), "x.jp1", "UTC").defs)
    assert "ex=" in text and "db1" in text


def test_an_ex_ajs3_cannot_take_is_reported_not_dropped_silently() -> None:
    try:
        result = import_text(NET.format(job='ex="$AGENT$";'), "x.jp1", "UTC")
    except DefinitionError as err:
        assert "ex" in str(err)
        return
    assert result.defs.jobnets["/NET"].units[0].host is None
    assert any("ex" in str(n) for n in result.notes)


@pytest.mark.parametrize("job", ['ex="a b";', "ex=-x;"])
def test_bad_names_are_not_taken(job: str) -> None:
    try:
        result = import_text(NET.format(job=job), "x.jp1", "UTC")
    except DefinitionError:
        return
    assert result.defs.jobnets["/NET"].units[0].host is None
