"""Long library work tells its progress through a callback (ajs3.progress), never by
drawing: the phases of a JP1 import and of a purge round come in order, each only
grows and ends full; the CLI draws them only on a terminal and never with --json."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import structlog
from test_purge_selection import NOW, add_run

from ajs3.cli import bars
from ajs3.definitions.units import DefinitionSet
from ajs3.engine.retention import Purger
from ajs3.journal.store import Journal
from ajs3.jp1 import importer
from ajs3.keep import Keep
from ajs3.progress import silent
from ajs3.service.purgewait import wait_round
from ajs3.settings import Settings

JP1 = Path(__file__).parent / "jp1" / "sales.jp1"
Call = tuple[str, int, int | None]


class Heard:
    """A progress callback that keeps what it is told."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        self.calls.append((phase, done, total))

    def phases(self) -> list[str]:
        seen: list[str] = []
        for phase, _, _ in self.calls:
            if not seen or seen[-1] != phase:
                seen.append(phase)
        return seen

    def check_each_phase_grows_and_ends_full(self) -> None:
        for phase in self.phases():
            mine = [(d, t) for p, d, t in self.calls if p == phase]
            done = [d for d, _ in mine]
            assert done == sorted(done), (phase, mine)
            assert all(t is None or d <= t for d, t in mine), (phase, mine)
            assert mine[-1][0] == mine[-1][1], (phase, mine)


def big_jp1(nets: int) -> str:
    lines = ["unit=BIG,,admin,;", "{", "    ty=g;"]
    for k in range(nets):
        lines += [f"    unit=NET{k},,admin,;", "    {", "        ty=n;"]
        lines += ["        unit=A,,admin,;", "        {", "            ty=j;"]
        lines += ['            sc="/bin/true";', "        }", "    }"]
    return "\n".join([*lines, "}", ""])


def test_an_import_tells_its_phases_in_order(tmp_path: Path) -> None:
    heard = Heard()
    result = importer.import_file(JP1, time_zone="UTC", progress=heard)
    importer.write_yaml(result, tmp_path / "out", heard)
    assert heard.phases() == ["parse", "map", "yaml", "validate", "write"]
    heard.check_each_phase_grows_and_ends_full()
    assert ("map", result.units, result.units) in heard.calls
    assert ("write", len(result.files), len(result.files)) in heard.calls
    # the same result as without anyone listening
    assert importer.import_file(JP1, time_zone="UTC").files == result.files


def test_a_large_import_tells_the_units_mapped_as_it_goes() -> None:
    heard = Heard()
    result = importer.import_text(big_jp1(600), "big.jp1", "UTC", heard)
    assert result.units == 1 + 600 * 2
    mapped = [d for p, d, _ in heard.calls if p == "map"]
    assert mapped == [0, 500, 1000, 1201]
    heard.check_each_phase_grows_and_ends_full()


#: no jobnet defined: each one keeps what the settings say
NO_DEFINITIONS = DefinitionSet(jobnets={}, groups=())


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with closing(Journal.open(tmp_path)) as j:
        j.conn.execute("INSERT INTO definitions VALUES (1, 0, '{}', '[]')")
        yield j


def _runs(j: Journal, jobnet: str, count: int) -> None:
    for _ in range(count):
        add_run(j, jobnet)


def test_a_purge_round_tells_the_jobnets_it_walked(journal: Journal, tmp_path: Path) -> None:
    names = [f"/g/net{k}" for k in range(5)]
    for name in names:
        _runs(journal, name, 6)
    settings = Settings("lh", tmp_path, keep=Keep(runs=2))
    purger = Purger(
        journal,
        settings,
        lambda: NO_DEFINITIONS,
        lambda: (),
        structlog.get_logger("test"),
        clock=lambda: NOW,
    )
    purger.finish_pending()
    ticks = iter(range(100_000))

    def status() -> dict[str, Any]:
        assert next(ticks) < 99_999, "the round never ends"
        purger.tick()
        return purger.status()

    heard = Heard()
    wanted = purger.request()
    final = wait_round(status, wanted, None, heard, sleep=lambda s: None)
    assert final["rounds"][str(wanted)]["jobnet_runs"] == 5 * 4
    assert {p for p, _, _ in heard.calls} == {"purge"}
    heard.check_each_phase_grows_and_ends_full()
    assert heard.calls[-1] == ("purge", 5, 5)
    assert journal.conn.execute("SELECT count(*) FROM jobnet_runs").fetchone()[0] == 5 * 2


def test_a_round_counts_the_jobnets_left_when_first_asked(journal: Journal, tmp_path: Path) -> None:
    for k in range(4):
        _runs(journal, f"/g/net{k}", 3)
    purger = Purger(
        journal,
        Settings("lh", tmp_path, keep=Keep(runs=1)),
        lambda: NO_DEFINITIONS,
        lambda: (),
        structlog.get_logger("test"),
        clock=lambda: NOW,
    )
    assert purger.progress() == {"round": 0, "jobnets": 0, "done": 0}
    purger._begin_round()
    assert purger.progress() == {"round": 1, "jobnets": 4, "done": 0}
    purger.walked, purger.jobnet = 2, "/g/net2"  # where a round is after two jobnets
    assert purger.progress() == {"round": 1, "jobnets": 4, "done": 2}  # counted once
    _runs(journal, "/g/net9", 3)  # a jobnet that ran meanwhile: walked beyond the count
    purger.walked = 5
    assert purger.progress() == {"round": 1, "jobnets": 5, "done": 5}
    purger._end_round(NOW)
    assert purger.progress() == {"round": 1, "jobnets": 5, "done": 5}


@pytest.mark.parametrize("json", [True, False])
def test_no_bar_is_drawn_off_a_terminal_or_with_json(json: bool) -> None:
    args = argparse.Namespace(json=json)
    assert not bars.drawn(args)  # pytest's stderr is not a terminal
    with bars.bars(args) as progress:
        assert progress is silent
