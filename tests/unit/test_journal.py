"""The journal's one status writer, its transactions and schema, and views of what it
holds (real SQLite in a temporary directory); the root jobnet's readiness rules, seen
through a scheduler on a real journal."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ajs3.definitions.loader import load_text
from ajs3.engine.scheduler import Scheduler
from ajs3.errors import JournalError, TransitionError
from ajs3.journal.files import WAL_HIGH_WATER
from ajs3.journal.schema import MIGRATIONS, SCHEMA_VERSION
from ajs3.journal.store import Journal
from ajs3.model import ReasonCode, Status
from ajs3.service import views
from ajs3.settings import Settings

DEFS = """
group: /t
jobnets:
  - name: q
    schedule:
      time_zone: UTC
      overlap: queue
      rules: [{at: '03:00'}]
    units:
      - {name: gate, script: 'true', hold: true}
"""


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path)
    j.begin_epoch("test", 1, "hot")
    yield j
    j.close()


@pytest.fixture
def sched(journal: Journal, tmp_path: Path) -> Scheduler:
    s = Scheduler(journal, Settings(lhost="t", datadir=tmp_path))
    s.apply_definitions(load_text(DEFS, "t.yaml"), ["t.yaml"])
    return s


def test_a_status_change_records_its_code_and_reason(sched: Scheduler) -> None:
    run = sched.register("/t/q")
    state = sched.runs[run]
    ur = state.urs["/t/q/gate"]
    sched.journal.set_status(ur, Status.WAITING, ReasonCode.RELEASED, "let go")
    ev = sched.journal.events(ur.id)[-1]
    assert (ev["old"], ev["new"], ev["code"], ev["reason"]) == (
        "held",
        "waiting",
        "released",
        "let go",
    )
    with pytest.raises(TransitionError):
        sched.journal.set_status(ur, Status.ENDED_WARNING, ReasonCode.EXITED, "no")


def test_a_stale_view_cannot_overwrite(sched: Scheduler) -> None:
    run = sched.register("/t/q")
    ur = sched.runs[run].urs["/t/q/gate"]
    stale = sched.journal.unit_runs(run)[-1]
    sched.journal.set_status(ur, Status.WAITING, ReasonCode.RELEASED, "let go")
    with pytest.raises(JournalError):
        sched.journal.set_status(stale, Status.WAITING, ReasonCode.RELEASED, "again")


def test_set_statuses_changes_all_or_none_with_an_event_each(sched: Scheduler) -> None:
    """ADR 0037: several unit runs in one statement, each with its own values; one that
    is no longer what the engine holds fails the whole change, named."""
    runs = [sched.register("/t/q") for _ in range(3)]
    urs = [sched.runs[r].urs["/t/q/gate"] for r in runs]
    journal = sched.journal
    changes = [(ur, {"retries": k}) for k, ur in enumerate(urs[:2])]
    journal.set_statuses(changes, Status.WAITING, ReasonCode.RELEASED, "let go")
    for k, (run, ur) in enumerate(zip(runs[:2], urs, strict=False)):
        (stored,) = [u for u in journal.unit_runs(run) if u.id == ur.id]
        assert stored == ur and (ur.status, ur.retries, ur.reason) == (Status.WAITING, k, "let go")
        ev = journal.events(ur.id)[-1]
        assert (ev["old"], ev["new"], ev["code"]) == ("held", "waiting", "released")
    stale = journal.unit_runs(runs[2])[-1]
    journal.set_status(urs[2], Status.WAITING, ReasonCode.RELEASED, "let go")
    before = [len(journal.events(ur.id)) for ur in urs]
    with pytest.raises(JournalError, match=f"unit run {stale.id} "):
        journal.set_statuses(
            [(urs[0], {}), (stale, {})], Status.NOT_EXECUTED, ReasonCode.NOT_EXECUTED, "no"
        )
    assert [len(journal.events(ur.id)) for ur in urs] == before  # nothing of it stays
    assert journal.unit_runs(runs[0])[-1].status is Status.WAITING
    with pytest.raises(ValueError, match="same columns"):
        journal.set_statuses(
            [(urs[0], {}), (urs[1], {"retries": 1})], Status.HELD, ReasonCode.HELD_BY_OPERATOR, ""
        )


def test_transactions_do_not_nest_and_writes_join_the_open_one(journal: Journal) -> None:
    with journal.transaction():
        journal.set_meta("a", "1")
        with pytest.raises(RuntimeError), journal.transaction():
            pass
        assert journal.in_transaction
    assert journal.get_meta("a") == "1"
    # one transaction is one commit: a failure inside undoes every write of it
    with pytest.raises(KeyError), journal.transaction():
        journal.set_meta("b", "1")
        raise KeyError("boom")
    assert journal.get_meta("b") is None and not journal.in_transaction


def test_a_commit_without_its_fsync_is_marked_until_something_makes_it_durable(
    journal: Journal,
) -> None:
    """durable=False (ADR 0034): that commit alone runs at synchronous=NORMAL, and the
    journal knows it owes an fsync until sync(), a durable commit that wrote, or a write
    that others act on at once (a notification) settles it."""

    def level() -> int:
        return int(journal.conn.execute("PRAGMA synchronous").fetchone()[0])

    assert level() == 2 and not journal.unsynced  # FULL
    with journal.transaction(durable=False):
        journal.set_meta("a", "1")
        assert level() == 1  # NORMAL
    assert level() == 2 and journal.unsynced and journal.last_unsynced
    wal = journal.wal.current()
    assert wal is not None and Path(f"/proc/self/fd/{wal[0]}").resolve() == Path(
        f"{journal.path}-wal"
    )
    with journal.transaction():  # durable, but wrote nothing: nothing was synced
        journal.get_meta("a")
    assert journal.unsynced and not journal.last_unsynced
    journal.sync()
    assert not journal.unsynced
    with journal.transaction(durable=False):
        journal.get_meta("a")  # nothing written: nothing owed
    assert not journal.unsynced
    with journal.transaction(durable=False):
        journal.set_meta("b", "1")
    with journal.transaction():
        journal.set_meta("c", "1")
    assert not journal.unsynced
    with journal.transaction(durable=False):
        journal.set_meta("d", "1")
        journal.sync_at_commit()
    assert not journal.unsynced and level() == 2
    with pytest.raises(KeyError), journal.transaction(durable=False):
        journal.set_meta("e", "1")
        raise KeyError("boom")
    assert journal.get_meta("e") is None and not journal.unsynced and level() == 2
    # a transaction that cannot begin (another writer holds the lock) leaves FULL too
    other = sqlite3.connect(journal.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        journal.conn.execute("PRAGMA busy_timeout=10")
        with pytest.raises(sqlite3.OperationalError), journal.transaction(durable=False):
            pass
        assert level() == 2 and not journal.in_transaction
    finally:
        other.close()


def test_the_wal_gets_its_usual_size_at_once_and_the_journal_stays_as_it_was(
    journal: Journal,
) -> None:
    """presize_wal (ADR 0036): a rolled-back transaction spills into the write-ahead log
    up to its usual size; nothing of it stays in the journal, and the commits after it
    write over the log from its start (its size stays)."""
    wal = Path(f"{journal.path}-wal")
    journal.set_meta("kept", "1")
    before = wal.stat().st_size
    assert before < WAL_HIGH_WATER
    journal.presize_wal()
    assert wal.stat().st_size >= WAL_HIGH_WATER
    tables = journal.conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'ajs3_%'")
    assert tables.fetchall() == []
    assert journal.get_meta("kept") == "1" and not journal.in_transaction
    cache = journal.conn.execute("PRAGMA cache_size").fetchone()[0]
    assert cache == -2000  # SQLite's default, given back
    size = wal.stat().st_size
    for k in range(50):
        journal.set_meta(f"k{k}", "v")
    assert wal.stat().st_size == size
    journal.presize_wal()  # big enough already: nothing done
    assert wal.stat().st_size == size
    other = sqlite3.connect(journal.path)  # another reader sees the commits, not the spill
    try:
        assert other.execute("SELECT value FROM meta WHERE key='k49'").fetchone() == ("v",)
    finally:
        other.close()


def test_a_wal_that_cannot_be_sized_is_left_to_grow_and_nothing_else_changes(
    journal: Journal,
) -> None:
    """presize_wal is an optimisation: a journal with no room for it (a full disk, here
    SQLite's own limit on its pages) starts as before, nothing of it kept."""
    wal = Path(f"{journal.path}-wal")
    journal.set_meta("kept", "1")
    pages = journal.conn.execute("PRAGMA page_count").fetchone()[0]
    journal.conn.execute(f"PRAGMA max_page_count={pages + 5}")
    before = wal.stat().st_size
    journal.presize_wal()  # no error
    assert not journal.in_transaction and journal.get_meta("kept") == "1"
    assert journal.conn.execute("PRAGMA cache_size").fetchone()[0] == -2000
    tables = journal.conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'ajs3_%'")
    assert tables.fetchall() == []
    journal.set_meta("after", "1")  # the journal goes on
    assert journal.get_meta("after") == "1" and wal.stat().st_size >= before


def test_a_journal_of_schema_1_is_migrated(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "journal.db")
    conn.executescript(MIGRATIONS[0])
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.execute("INSERT INTO epochs VALUES (1, 0, 'n', 1, 'hot')")
    conn.execute("INSERT INTO definitions VALUES (1, 0, '{\"jobnets\": {}, \"groups\": []}', '[]')")
    conn.execute("INSERT INTO jobnet_runs VALUES (1, '/t/q', 1, 0, 0, 0)")
    conn.execute(
        "INSERT INTO unit_runs(id, jobnet_run, path, kind, status) "
        "VALUES (1, 1, '/t/q', 'jobnet', 'ended_normally')"
    )
    conn.execute(
        "INSERT INTO events(at, epoch, unit_run, attempt, old, new, reason) "
        "VALUES (0, 1, 1, 0, 'running', 'ended_normally', 'every unit ended')"
    )
    conn.commit()
    conn.close()
    j = Journal.open(tmp_path)
    try:
        assert j.schema_version() == SCHEMA_VERSION == 8
        assert j.events(1)[0]["code"] == ""
    finally:
        j.close()


def test_show_prints_a_status_it_does_not_know_as_it_is(sched: Scheduler, tmp_path: Path) -> None:
    run = sched.register("/t/q")
    # a newer ajs3 wrote a status this one does not know
    sched.journal.conn.execute(
        "UPDATE unit_runs SET status='paused_by_newer' WHERE jobnet_run=? AND path=?",
        (run, "/t/q/gate"),
    )
    data = views.show(tmp_path, "/t/q", None, False)
    gate = next(u for u in data["units"] if u["path"] == "/t/q/gate")
    assert (gate["status"], gate["label"]) == ("paused_by_newer", "paused_by_newer")
    assert "paused_by_newer" in views.render_show(data)
    why = views.why_offline(tmp_path, run, "/t/q/gate")
    assert why["label"] == "paused_by_newer"
    sched.journal.conn.execute(
        "UPDATE unit_runs SET status='paused_by_newer' WHERE jobnet_run=? AND path=?", (run, "/t/q")
    )
    listing = views.show(tmp_path, None, None, True)
    assert listing["runs"][0]["label"] == "paused_by_newer"


def test_why_says_a_run_waits_for_its_earlier_run(sched: Scheduler) -> None:
    first = sched.register("/t/q")
    second = sched.register("/t/q")
    sched.step()  # the first starts; its job is held, so it stays running
    assert sched.runs[first].root_ur.status is Status.RUNNING
    assert sched.runs[second].root_ur.status is Status.NOT_SCHEDULED
    why = sched.explain(second, "/t/q")
    failed = [c for c in why["checks"] if not c["passed"]]
    assert [c["rule"] for c in failed] == ["earlier_runs_ended"], why
    assert f"earlier run {first}" in failed[0]["reason"]
    # once the first has ended (the step it ends in), the second starts (the next one)
    sched.kill(first, None, "/t/q")
    sched.step()
    sched.step()
    assert sched.runs[second].root_ur.status is Status.RUNNING


def test_a_run_that_waits_for_an_earlier_one_does_not_spin_the_loop(
    journal: Journal, tmp_path: Path
) -> None:
    clock = [1_800_000_000.0]
    s = Scheduler(journal, Settings(lhost="t", datadir=tmp_path), clock=lambda: clock[0])
    s.apply_definitions(load_text(DEFS, "t.yaml"), ["t.yaml"])
    s.register("/t/q")
    later = s.register("/t/q", at=clock[0] + 10)
    s.step()
    assert s.next_wake() == clock[0] + 10  # its start time is a wake...
    clock[0] += 20
    s.step()
    # ... but once passed, while it waits for the earlier run, it is none: a wake in the
    # past made the daemon's loop run without sleeping until the earlier run ended
    assert s.runs[later].root_ur.status is Status.WAIT_START_TIME
    wake = s.next_wake()
    assert wake is None or wake > clock[0]
