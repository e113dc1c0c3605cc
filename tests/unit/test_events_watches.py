"""Start conditions through the scheduler's step on a real journal, with a clock of the
test's own: once per file, across a new scheduler on the same journal (a restart), a
step rolled back, the size-stable wait and the count limit (ADR 0023). The jobnet's
only job is held, so nothing is spawned."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ajs3.definitions.loader import load_text
from ajs3.engine import runvars
from ajs3.engine.scheduler import Scheduler
from ajs3.journal.store import Journal
from ajs3.settings import Settings


def defs(inbox: Path, extra: str = "") -> str:
    return f"""
group: /t
jobnets:
  - name: intake
    start_condition:
      watches:
        - {{path: "{inbox}/*.csv", stable_for: 5}}
{extra}
    units:
      - {{name: j, command: [/bin/true], hold: true}}
"""


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    (tmp_path / "data").mkdir()
    j = Journal.open(tmp_path / "data")
    j.begin_epoch("test", 1, "hot")
    yield j
    j.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def scheduler(journal: Journal, tmp_path: Path, clock: Clock) -> Scheduler:
    return Scheduler(journal, Settings(lhost="t", datadir=tmp_path / "data"), clock=clock)


def step(sched: Scheduler, clock: Clock, seconds: float = 0.0) -> None:
    clock.now += seconds
    sched.watches.look_again()  # what the daemon's inotify reading would ask for
    sched.step()


def files_of_runs(journal: Journal) -> list[str]:
    runs = [int(r[0]) for r in journal.conn.execute("SELECT id FROM jobnet_runs ORDER BY id")]
    return [Path(runvars.load(journal, r)["AJS3_FILE_PATH"]).name for r in runs]


def test_once_per_file_across_a_restart(journal: Journal, tmp_path: Path) -> None:
    inbox, clock = tmp_path / "in", Clock()
    inbox.mkdir()
    (inbox / "old.csv").write_text("there before\n")
    sched = scheduler(journal, tmp_path, clock)
    sched.apply_definitions(load_text(defs(inbox), "t.yaml"), ["t.yaml"])
    step(sched, clock)  # the watch begins: old.csv is taken as it is
    (inbox / "a.csv").write_text("a\n")
    step(sched, clock)  # a.csv seen: it waits to hold still
    assert files_of_runs(journal) == []
    step(sched, clock, 5.0)
    assert files_of_runs(journal) == ["a.csv"]
    step(sched, clock, 5.0)
    # a new scheduler on the same journal (a restart): a.csv is recorded, b.csv not
    (inbox / "b.csv").write_text("b\n")
    again = scheduler(journal, tmp_path, clock)
    step(again, clock)
    step(again, clock, 5.0)
    step(again, clock, 5.0)
    assert files_of_runs(journal) == ["a.csv", "b.csv"]


def test_a_step_rolled_back_fires_again_once(journal: Journal, tmp_path: Path) -> None:
    inbox, clock = tmp_path / "in", Clock()
    inbox.mkdir()
    sched = scheduler(journal, tmp_path, clock)
    sched.apply_definitions(load_text(defs(inbox), "t.yaml"), ["t.yaml"])
    step(sched, clock)
    (inbox / "a.csv").write_text("a\n")
    step(sched, clock)
    clock.now += 5.0
    with pytest.raises(RuntimeError), journal.transaction():
        sched.watches.look_again()
        sched.watches.check(clock.now)  # fires: the run is registered in this transaction
        assert len(files_of_runs(journal)) == 1
        raise RuntimeError("the commit failed")
    sched.resync()  # as the step does after a rolled-back commit
    assert files_of_runs(journal) == []
    step(sched, clock)
    step(sched, clock, 5.0)
    step(sched, clock, 5.0)
    assert files_of_runs(journal) == ["a.csv"]


def test_a_growing_file_fires_once_it_held_still(journal: Journal, tmp_path: Path) -> None:
    inbox, clock = tmp_path / "in", Clock()
    inbox.mkdir()
    sched = scheduler(journal, tmp_path, clock)
    sched.apply_definitions(load_text(defs(inbox), "t.yaml"), ["t.yaml"])
    step(sched, clock)
    target = inbox / "big.csv"
    for i in range(4):
        with target.open("a") as f:
            f.write("x" * (i + 1))
        step(sched, clock, 4.0)  # it changed within the wait every time
        assert files_of_runs(journal) == []
    step(sched, clock, 4.0)
    step(sched, clock, 1.0)
    assert files_of_runs(journal) == ["big.csv"]
    (size,) = journal.conn.execute("SELECT size FROM watch_files").fetchone()
    assert size == target.stat().st_size


def test_the_count_limit_and_a_changed_watch(journal: Journal, tmp_path: Path) -> None:
    inbox, clock = tmp_path / "in", Clock()
    inbox.mkdir()
    sched = scheduler(journal, tmp_path, clock)
    sched.apply_definitions(load_text(defs(inbox, "      limit: 1"), "t.yaml"), ["t.yaml"])
    step(sched, clock)
    for name in ("a.csv", "b.csv"):
        (inbox / name).write_text(name)
    step(sched, clock)
    step(sched, clock, 5.0)
    assert files_of_runs(journal) == ["a.csv"]
    fired = dict(journal.conn.execute("SELECT path, fired FROM watch_files").fetchall())
    assert {Path(p).name: f for p, f in fired.items()} == {"a.csv": 1, "b.csv": 0}
    # the watch changed (another pattern): it starts over, with what is there as it is
    changed = defs(inbox, "      limit: 1").replace("*.csv", "*.txt")
    sched.apply_definitions(load_text(changed, "t.yaml"), ["t.yaml"])
    step(sched, clock)
    assert journal.conn.execute("SELECT count(*) FROM watch_files").fetchone()[0] == 0
    (inbox / "c.txt").write_text("c")
    step(sched, clock)
    step(sched, clock, 5.0)
    assert files_of_runs(journal) == ["a.csv", "c.txt"]
