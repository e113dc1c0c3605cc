"""What the retention purge selects, on a real journal (SQLite), and its settings."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ajs3.errors import AjsError, Code
from ajs3.journal import purge as pg
from ajs3.journal.store import Journal
from ajs3.keep import Keep, check_keep
from ajs3.settings import load_settings

NOW = 1_800_000_000.0
DAY = 86400.0


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path)
    j.conn.execute("INSERT INTO definitions(applied_at, content, sources) VALUES (0, '{}', '[]')")
    yield j
    j.close()


def add_run(
    j: Journal,
    jobnet: str,
    root: str = "ended_normally",
    *,
    ended_days_ago: float = 1.0,
    registered_days_ago: float | None = None,
    child: str = "ended_normally",
) -> int:
    """A jobnet run with its root and one job row, as a real run leaves them."""
    registered = NOW - DAY * (
        ended_days_ago if registered_days_ago is None else registered_days_ago
    )
    cur = j.conn.execute(
        "INSERT INTO jobnet_runs(jobnet, def_version, scheduled_at, registered_at)"
        " VALUES (?, 1, ?, ?)",
        (jobnet, registered, registered),
    )
    run = int(cur.lastrowid or 0)
    ended = NOW - DAY * ended_days_ago if root not in ("running", "held") else None
    j.conn.execute(
        "INSERT INTO unit_runs(jobnet_run, path, kind, status, ended_at) VALUES (?, ?, ?, ?, ?)",
        (run, jobnet, "jobnet", root, ended),
    )
    cur = j.conn.execute(
        "INSERT INTO unit_runs(jobnet_run, path, kind, status, run_id) VALUES (?, ?, ?, ?, ?)",
        (run, jobnet + "/j", "job", child, f"r{run:020x}"),
    )
    j.conn.execute(
        "INSERT INTO events(at, epoch, unit_run, run_id, attempt, old, new, reason)"
        " VALUES (0, 1, ?, ?, 1, 'running', ?, '')",
        (cur.lastrowid, f"r{run:020x}", child),
    )
    return run


def select_all(j: Journal, jobnet: str, keep: Keep, busy: tuple[int, ...] = ()) -> list[int]:
    found, after = [], 0
    while True:
        chosen, nxt = pg.select(j, jobnet, keep, NOW, after=after, limit=3, busy=busy)
        found.extend(chosen)
        if nxt is None:
            return found
        after = nxt


def test_keeps_the_newest_ended_runs_of_each_jobnet(journal: Journal) -> None:
    a = [add_run(journal, "/g/a") for _ in range(10)]
    b = [add_run(journal, "/g/b") for _ in range(4)]
    assert select_all(journal, "/g/a", Keep(runs=3)) == a[:7]
    assert select_all(journal, "/g/b", Keep(runs=3)) == b[:1]
    assert select_all(journal, "/g/b", Keep(runs=4)) == []
    assert select_all(journal, "/g/a", Keep()) == []  # no limit: everything stays
    assert pg.jobnets(journal) == ["/g/a", "/g/b"]
    assert pg.jobnets(journal, "/g/a") == ["/g/b"]


@pytest.mark.parametrize(
    ("root", "child"),
    [
        ("running", "running"),  # active
        ("held", "not_scheduled"),  # held before it started
        ("running", "unknown"),  # in doubt after a failover
        ("wait_start_time", "not_scheduled"),  # not started yet
        ("ended_abnormally", "unknown"),  # a unit in doubt under an ended root: kept too
        ("waiting", "held"),  # a held unit in a run
    ],
)
def test_never_selects_a_run_that_has_not_ended_in_full(
    journal: Journal, root: str, child: str
) -> None:
    old = add_run(journal, "/g/a", root, child=child, ended_days_ago=30)
    ended = [add_run(journal, "/g/a") for _ in range(3)]
    assert select_all(journal, "/g/a", Keep(runs=1, days=1)) == ended[:2]
    assert old not in select_all(journal, "/g/a", Keep(runs=1))
    assert pg.still_ended(journal, [old, *ended]) == ended


def test_open_runs_do_not_count_as_generations(journal: Journal) -> None:
    ended = [add_run(journal, "/g/a") for _ in range(3)]
    add_run(journal, "/g/a", "running", child="running")
    add_run(journal, "/g/a", "running", child="running")
    assert select_all(journal, "/g/a", Keep(runs=2)) == ended[:1]


def test_days_take_runs_that_ended_before_them(journal: Journal) -> None:
    old = [add_run(journal, "/g/a", ended_days_ago=d) for d in (40, 35, 31)]
    new = [add_run(journal, "/g/a", ended_days_ago=d) for d in (10, 2)]
    assert select_all(journal, "/g/a", Keep(days=30)) == old
    assert select_all(journal, "/g/a", Keep(runs=1, days=30)) == [*old, new[0]]
    assert select_all(journal, "/g/a", Keep(runs=99, days=30)) == old
    # registered long ago but ended lately: kept by days
    late = add_run(journal, "/g/b", ended_days_ago=1, registered_days_ago=60)
    assert late not in select_all(journal, "/g/b", Keep(days=30))


def test_runs_the_scheduler_holds_are_never_selected(journal: Journal) -> None:
    runs = [add_run(journal, "/g/a") for _ in range(5)]
    assert select_all(journal, "/g/a", Keep(runs=1), busy=(runs[1],)) == [
        runs[0],
        runs[2],
        runs[3],
    ]


def test_mark_files_and_delete_in_that_order(journal: Journal) -> None:
    runs = [add_run(journal, "/g/a") for _ in range(4)]
    add_run(journal, "/g/a", "running", child="running")
    with journal.transaction():
        assert pg.mark(journal, [runs[0], runs[1], runs[-1] + 1]) == runs[:2]
    assert pg.pending(journal, 10) == runs[:2]
    assert pg.run_ids(journal, runs[:2]) == [f"r{r:020x}" for r in runs[:2]]
    counts = pg.count_rows(journal, runs[:2])
    assert (counts.jobnet_runs, counts.unit_runs, counts.events) == (2, 4, 2)
    with journal.transaction():
        pg.delete(journal, runs[:2])
    assert pg.pending(journal, 10) == []
    for table, expected in (("jobnet_runs", 3), ("unit_runs", 6), ("events", 3)):
        assert journal.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == expected


def test_a_marked_run_that_was_rerun_is_not_purged(journal: Journal) -> None:
    run = add_run(journal, "/g/a")
    with journal.transaction():
        pg.mark(journal, [run])
    journal.conn.execute("UPDATE unit_runs SET status='waiting' WHERE jobnet_run=?", (run,))
    assert pg.still_ended(journal, [run]) == []


def test_a_long_history_is_scanned_in_small_steps(journal: Journal) -> None:
    journal.conn.execute("BEGIN")
    for _ in range(2000):
        add_run(journal, "/g/a")
    journal.conn.execute("COMMIT")
    t0 = time.perf_counter()
    chosen, after = pg.select(journal, "/g/a", Keep(runs=10), NOW, limit=50)
    assert len(chosen) == 50 and after is not None
    assert time.perf_counter() - t0 < 5  # not a timing test: it only must not hang
    chosen, after = pg.select(journal, "/g/a", Keep(runs=10), NOW, after=1990, limit=50)
    assert chosen == [] and after is None


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ({"runs": 1}, True),
        ({"runs": 999, "days": 0.5}, True),
        ({"days": 36500}, True),
        ({"runs": 0}, False),
        ({"runs": 1000}, False),
        ({"runs": True}, False),
        ({"runs": "5"}, False),
        ({"days": 0}, False),
        ({"days": -1}, False),
        ({"days": "x"}, False),
        ({"weeks": 1}, False),
        ({}, False),
        (5, False),
        (None, False),
    ],
)
def test_keep_values_are_checked(value: object, ok: bool) -> None:
    assert isinstance(check_keep(value), Keep) is ok


def test_settings_read_the_retention_keys(tmp_path: Path) -> None:
    s = load_settings(tmp_path, "lh1")
    assert (s.keep, s.purge_interval, s.output_limit) == (Keep(runs=99), 60.0, 64 << 20)
    (tmp_path / "ajs3.yaml").write_text(
        "keep: {runs: 7, days: 30}\npurge_interval: 5\noutput_limit: 1048576\n"
    )
    s = load_settings(tmp_path, "lh1")
    assert (s.keep, s.purge_interval, s.output_limit) == (Keep(7, 30.0), 5.0, 1 << 20)
    (tmp_path / "ajs3.yaml").write_text("keep: null\n")
    assert load_settings(tmp_path, "lh1").keep.unlimited


@pytest.mark.parametrize(
    "text",
    [
        "keep: {runs: 1000}\n",
        "keep: 3\n",
        "keep: {runs: 3, when: never}\n",
        "purge_interval: 0\n",
        "purge_interval: soon\n",
        "output_limit: 10\n",
        "output_limit: 1.5\n",
        "output_limit: true\n",
    ],
)
def test_bad_retention_settings_are_refused_with_the_file(tmp_path: Path, text: str) -> None:
    (tmp_path / "ajs3.yaml").write_text(text)
    with pytest.raises(AjsError) as caught:
        load_settings(tmp_path, "lh1")
    assert caught.value.code is Code.SETTINGS
    assert str(tmp_path / "ajs3.yaml") in caught.value.message
    assert text.split(":")[0] in caught.value.message


def test_job_directories_are_removed_without_following_links(tmp_path: Path) -> None:
    from ajs3.engine import jobdirs

    jobs, outside = tmp_path / "jobs", tmp_path / "outside"
    jobs.mkdir()
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    run = jobs / "r0123456789abcdef0123"
    run.mkdir()
    (run / "stdout").write_bytes(b"x" * 10)
    (run / "link").symlink_to(outside)
    (jobs / "r00000000000000000000").symlink_to(outside)  # a link where a directory goes
    (jobs / "not-a-run").mkdir()
    fd = jobdirs.open_jobs(jobs)
    assert fd is not None
    try:
        assert jobdirs.size(fd, run.name) == 10
        assert jobdirs.remove(fd, run.name) == 10
        assert jobdirs.remove(fd, run.name) == 0  # gone already: done
        assert jobdirs.remove(fd, "r00000000000000000000") == 0
        assert jobdirs.remove(fd, "not-a-run") == 0
        assert jobdirs.remove(fd, "../outside") == 0
    finally:
        os.close(fd)
    assert not run.exists() and not (jobs / "r00000000000000000000").is_symlink()
    assert (outside / "precious").read_text() == "keep me"
    assert (jobs / "not-a-run").is_dir()
    assert jobdirs.open_jobs(tmp_path / "none") is None


def add_event(j: Journal, n: int, days_ago: float, delivered: tuple[bool, ...]) -> int:
    cur = j.conn.execute(
        "INSERT INTO notify_events(event_id, at, kind, body) VALUES (?, ?, 'unit_killed', '{}')",
        (f"e{n}", NOW - DAY * days_ago),
    )
    event = int(cur.lastrowid or 0)
    for i, done in enumerate(delivered):
        j.conn.execute(
            "INSERT INTO notify_deliveries(event, route, delivered_at) VALUES (?, ?, ?)",
            (event, f"r{i}", NOW if done else None),
        )
    return event


def test_delivered_notifications_go_after_a_week_and_waiting_ones_stay(journal: Journal) -> None:
    old_done = [add_event(journal, n, 10, (True, True)) for n in range(5)]
    waiting = add_event(journal, 5, 10, (True, False))  # one route still owes it
    recent = add_event(journal, 6, 1, (True,))
    before = NOW - 7 * DAY
    deleted, last = pg.delivered_events(journal, before, 0, 3)
    assert (deleted, last) == (3, old_done[2])  # a batch of 3 looked at, more to see
    deleted, last = pg.delivered_events(journal, before, last, 3)
    assert (deleted, last) == (2, waiting)  # two delivered, one still waiting
    assert pg.delivered_events(journal, before, last, 3) == (0, 0)  # too recent: done
    left = [r[0] for r in journal.conn.execute("SELECT id FROM notify_events ORDER BY id")]
    assert left == [waiting, recent]
    # their deliveries went with them (ON DELETE CASCADE); the waiting one's stay
    routes = journal.conn.execute("SELECT DISTINCT event FROM notify_deliveries").fetchall()
    assert sorted(r[0] for r in routes) == [waiting, recent]
