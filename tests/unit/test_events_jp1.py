"""JP1 file monitoring jobs (flwj) and start conditions (.CONDITION, wc/wt): import,
its notes and errors at their lines, and the round trip through export."""

from __future__ import annotations

from pathlib import Path

import pytest

from ajs3.definitions.events import FileEvent, StartCondition, Watch
from ajs3.errors import DefinitionError
from ajs3.jp1.exporter import export
from ajs3.jp1.importer import import_text

GOOD = """\
unit=ev,,,;
{
    ty=g;
    unit=intake,,,;
    {
        ty=n;
        wc=1,5;
        unit=.CONDITION,,,;
        {
            ty=rc;
            cond=or;
            unit=w1,,,;
            {
                ty=flwj;
                flwf="/data/in/*.csv";
                flwc=c:d;
                flwi=10;
                flco=y;
            }
        }
        unit=take,,,;{ty=j;sc="/bin/echo";}
    }
    unit=net,,,;
    {
        ty=n;
        ar=(f=w,t=use,seq);
        ar=(f=use,t=r,con);
        unit=w,,,;{ty=flwj;flwf="/data/in/go";jpoif=?AJS2FILE?:FLWC_FILENAME;}
        unit=use,,,;{ty=j;sc="/bin/true";}
        unit=r,,,;{ty=rflwj;flwf="/data/in/gone";flwc=d;}
        unit=win,,,;{ty=flwj;flwf="C:\\in\\a.txt";}
    }
}
"""


def test_file_monitoring_jobs_and_a_start_condition_import() -> None:
    result = import_text(GOOD, "good.jp1", "UTC")
    intake = result.defs.jobnets["/ev/intake"]
    assert intake.start_condition == StartCondition(
        watches=(
            Watch(
                path="/data/in/*.csv",
                events=(FileEvent.CREATED, FileEvent.DELETED),
                existing=True,
                source=intake.start_condition.watches[0].source if intake.start_condition else "",
            ),
        ),
        limit=5,
        source=intake.start_condition.source if intake.start_condition else "",
    )
    net = {u.name: u for u in result.defs.jobnets["/ev/net"].units}
    assert net["w"].watch is not None and net["w"].watch.path == "/data/in/go"
    assert net["use"].after == ("w",)
    assert net["r"].recovery and net["r"].watch is not None
    assert net["r"].watch.events == (FileEvent.DELETED,)
    assert "win" not in net  # a Windows path: noted, not imported
    lines = {int(n.split(":")[1]): n for n in result.notes}
    assert "jpoif" in lines[28] and "AJS3_FILE_PATH" in lines[28]
    assert "C:" in lines[31]
    assert all("AJS3-E112" in n for n in result.notes)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('unit=n,,,;{ty=n;unit=w,,,;{ty=flwj;flwf="/a/b";flwc=c:s:m;}}', 1),
        ('unit=n,,,;\n{ty=n;\nunit=w,,,;{ty=flwj;flwf="/a/b";flwc=x;}}', 3),
        ('unit=n,,,;\n{ty=n;\nunit=w,,,;{ty=flwj;flwf="/a/b";flwc=d;flco=y;}}', 3),
        ('unit=n,,,;\n{ty=n;\nunit=w,,,;{ty=flwj;flwf="/a/b";flwi=601;}}', 3),
        ('unit=n,,,;\n{ty=n;\nwc=zero;\nunit=w,,,;{ty=j;sc="/bin/true";}}', 3),
        # a start condition on a nested jobnet: JP1 has it on root jobnets only
        (
            "unit=n,,,;\n{ty=n;\nunit=sub,,,;\n{ty=n;\nunit=.CONDITION,,,;\n{ty=rc;\n"
            'unit=w,,,;{ty=flwj;flwf="/a/b";}}\nunit=j,,,;{ty=j;sc="/bin/true";}}}',
            5,
        ),
    ],
)
def test_what_jp1_would_refuse_is_an_error_at_its_line(text: str, line: int) -> None:
    with pytest.raises(DefinitionError) as info:
        import_text(text, "bad.jp1", "UTC")
    assert [(p.code.value, p.line) for p in info.value.problems] == [("AJS3-E111", line)]


def test_an_and_of_several_event_jobs_is_noted() -> None:
    text = (
        "unit=n,,,;\n{ty=n;\nunit=.CONDITION,,,;\n{ty=rc;\n"
        'unit=a,,,;{ty=flwj;flwf="/a/x";}\nunit=b,,,;{ty=flwj;flwf="/a/y";}}\n'
        'unit=j,,,;{ty=j;sc="/bin/true";}}'
    )
    result = import_text(text, "and.jp1", "UTC")
    cond = result.defs.jobnets["/n"].start_condition
    assert cond is not None and [w.path for w in cond.watches] == ["/a/x", "/a/y"]
    assert any(":3: AJS3-E112" in n and "cond=and" in n for n in result.notes)


def test_round_trip_import_export_import(tmp_path: Path) -> None:
    first = import_text(GOOD, "good.jp1", "UTC")
    text, _ = export(first.defs)
    assert "unit=.CONDITION,,,;" in text and "wc=5;" in text and "ty=rflwj;" in text
    second = import_text(text, "again.jp1", "UTC")
    for path, root in first.defs.jobnets.items():
        again = second.defs.jobnets[path]
        assert _plain(again.to_dict()) == _plain(root.to_dict())


def _plain(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items() if k != "source"}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
