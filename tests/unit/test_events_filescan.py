"""File watches: what a scan finds, which events it makes against what was recorded,
the size-stable wait, and the patterns the loader accepts (ADR 0023)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ajs3.definitions.events import FileEvent, Watch, pattern_problem
from ajs3.definitions.loader import load_text
from ajs3.engine.filescan import Candidates, Identity, compare, scan

C, M, D = FileEvent.CREATED, FileEvent.CHANGED, FileEvent.DELETED


def ident(path: str, inode: int = 1, size: int = 10, mtime: int = 100) -> Identity:
    return Identity(path, inode, size, mtime)


def test_scan_finds_regular_files_matching_the_last_part(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("1")
    (tmp_path / "b.txt").write_text("2")
    (tmp_path / "dir.csv").mkdir()
    os.symlink(tmp_path / "a.csv", tmp_path / "link.csv")
    found = scan(Watch(path=f"{tmp_path}/*.csv"))
    assert found is not None
    # a directory is not a file; a symbolic link to a file is looked at as that file
    assert sorted(found) == [f"{tmp_path}/a.csv", f"{tmp_path}/link.csv"]
    assert found[f"{tmp_path}/a.csv"].size == 1


def test_scan_of_a_literal_name_and_of_a_missing_directory(tmp_path: Path) -> None:
    assert scan(Watch(path=f"{tmp_path}/exact")) == {}
    (tmp_path / "exact").write_text("x")
    assert list(scan(Watch(path=f"{tmp_path}/exact")) or {}) == [f"{tmp_path}/exact"]
    # nothing is concluded from a directory that can not be read: not "every file deleted"
    assert scan(Watch(path=f"{tmp_path}/nowhere/*")) is None
    assert scan(Watch(path=f"{tmp_path}/nowhere/exact")) is None


@pytest.mark.parametrize(
    ("events", "recorded", "found", "expected"),
    [
        ((C,), {}, {"/a": ident("/a")}, [(C, "/a")]),
        ((C,), {"/a": ident("/a")}, {"/a": ident("/a", size=99)}, []),
        # another file took the name: created again
        ((C,), {"/a": ident("/a")}, {"/a": ident("/a", inode=2)}, [(C, "/a")]),
        ((M,), {"/a": ident("/a")}, {"/a": ident("/a", mtime=200)}, [(M, "/a")]),
        ((M,), {"/a": ident("/a")}, {"/a": ident("/a", inode=2)}, [(M, "/a")]),
        ((M,), {}, {"/a": ident("/a")}, []),
        ((D,), {"/a": ident("/a")}, {}, [(D, "/a")]),
        ((C,), {"/a": ident("/a")}, {}, []),
        (
            (C, M, D),
            {"/a": ident("/a"), "/b": ident("/b")},
            {"/b": ident("/b", size=1), "/c": ident("/c")},
            [(D, "/a"), (M, "/b"), (C, "/c")],
        ),
    ],
)
def test_compare_makes_the_events_of_the_table(
    events: tuple[FileEvent, ...],
    recorded: dict[str, Identity],
    found: dict[str, Identity],
    expected: list[tuple[FileEvent, str]],
) -> None:
    got = compare(Watch(path="/x/*", events=events), recorded, found)
    assert [(e, i.path) for e, i in got] == expected


def test_a_candidate_counts_once_it_held_still_for_the_wait() -> None:
    cands = Candidates()
    a = ident("/a", size=1)
    assert not cands.stable(a, 0.0, 5.0)
    assert cands.next_due(5.0) == 5.0
    assert not cands.stable(a, 4.9, 5.0)
    grown = ident("/a", size=2)
    assert not cands.stable(grown, 5.0, 5.0)  # it changed: the wait starts again
    assert not cands.stable(grown, 9.9, 5.0)
    assert cands.stable(grown, 10.0, 5.0)
    assert cands.next_due(5.0) is None
    assert cands.stable(a, 0.0, 0.0)  # no wait: at once


def test_keep_only_forgets_what_no_longer_makes_an_event() -> None:
    cands = Candidates()
    cands.stable(ident("/a"), 0.0, 5.0)
    cands.stable(ident("/b"), 0.0, 5.0)
    cands.keep_only({"/b"})
    assert list(cands.seen) == ["/b"]


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("/data/in/*.csv", True),
        ("/data/in/file-[0-9].txt", True),
        ("/data/in/exact", True),
        ("/*.csv", True),
        ("data/*.csv", False),
        ("/data/*/x.csv", False),
        ("/data/in/", False),
        ("/data/in/..", False),
        ("/data/../in/*", False),
        ("/data/in/[a.csv", False),
        ("/" + "a" * 5000, False),
    ],
)
def test_patterns(path: str, ok: bool) -> None:
    assert (pattern_problem(path) is None) is ok


def test_a_start_condition_and_a_file_watch_job_load_and_round_trip() -> None:
    import json

    from ajs3.definitions.units import Unit

    defs = load_text(
        """
group: /ev
jobnets:
  - name: intake
    start_condition:
      watches:
        - {path: /in/*.csv, condition: [created, changed], stable_for: 2m, existing: true}
        - {path: /in/stop, condition: deleted}
      limit: 5
      from: '2027-01-04T08:00:00+09:00'
      until: '2027-01-05T08:00:00+09:00'
    units:
      - name: wait
        type: filewatch
        watch: {path: /in/go}
""",
        "t.yaml",
    )
    root = defs.jobnets["/ev/intake"]
    cond = root.start_condition
    assert cond is not None and cond.limit == 5 and len(cond.watches) == 2
    assert cond.watches[0].events == (C, M) and cond.watches[0].stable_for == 120.0
    assert cond.watches[0].existing and cond.watches[1].events == (D,)
    assert cond.valid_from is not None and cond.valid_until == cond.valid_from + 86400
    assert not cond.in_range(cond.valid_from - 1) and cond.in_range(cond.valid_from)
    wait = root.units[0]
    assert wait.watch == Watch(path="/in/go", source="t.yaml:15")
    assert Unit.from_dict(json.loads(json.dumps(root.to_dict()))) == root


def test_a_unit_stored_before_event_jobs_loads_without_them() -> None:
    from ajs3.definitions.units import Unit

    defs = load_text("jobnets: [{name: n, units: [{name: j, command: [x]}]}]\n", "t.yaml")
    stored = defs.jobnets["/n"].to_dict()
    del stored["watch"], stored["start_condition"]
    assert Unit.from_dict(stored).start_condition is None
