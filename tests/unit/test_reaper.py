"""The purge's disk work on its own thread (ajs3/engine/reaper.py, ADR 0026): real files,
a real journal (SQLite in WAL mode), a real thread."""

from __future__ import annotations

import threading
from pathlib import Path

from ajs3.engine.reaper import Reaper, sync_journal
from ajs3.journal.store import Journal


def test_removes_job_directories_and_vars_files_then_wakes_the_loop(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    jobs = tmp_path / "jobs"
    ids = [f"r{n:020x}" for n in range(3)]
    for rid in ids:
        (jobs / rid).mkdir(parents=True)
        (jobs / rid / "stdout").write_bytes(b"x" * 100)
    (tmp_path / "vars").mkdir()
    (tmp_path / "vars" / f"{ids[0]}.out").write_bytes(b"A=1\n")
    (jobs / "not-a-run-id").mkdir()  # never ours to remove
    woken = threading.Event()
    reaper = Reaper(tmp_path, journal.path, wake=woken.set)
    try:
        removed = reaper.remove(ids).result(timeout=30)
        assert woken.wait(30)
        reaper.remove(["not-a-run-id"]).result(timeout=30)
    finally:
        reaper.close()
        journal.close()
    assert removed.job_dirs == 3 and removed.bytes == 3 * 100 + 4
    assert sorted(p.name for p in jobs.iterdir()) == ["not-a-run-id"]
    assert not (tmp_path / "vars" / f"{ids[0]}.out").exists()


def test_a_checkpoint_on_its_own_connection_leaves_the_journal_whole(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    journal.set_meta("probe", "1")
    reaper = Reaper(tmp_path, journal.path)
    try:
        reaper.checkpoint().result(timeout=30)
        sync_journal(journal.path)  # the WAL (or, without one, the journal) fsynced
    finally:
        reaper.close()
    row = journal.conn.execute("SELECT value FROM meta WHERE key='probe'").fetchone()
    assert row[0] == "1"
    assert journal.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    journal.close()
