"""A full disk under a running daemon (docs/security.md, Faults of the data directory):
the daemon stays up, says AJS3-E208 in `service status`, records nothing wrongly and
starts nothing while it lasts, and carries on by itself once space is back."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lhost import LogicalHost, run_started

from ajs3.definitions.loader import load_text
from ajs3.engine import recordlog
from ajs3.engine.scheduler import Scheduler
from ajs3.errors import Code
from ajs3.journal.files import DiskFull
from ajs3.journal.store import Journal
from ajs3.model import Status
from ajs3.settings import Settings

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs (root)")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def host_on(small_fs: Path) -> Iterator[LogicalHost]:
    host = LogicalHost(small_fs, "lh1")
    try:
        yield host
    finally:
        host.cleanup()


def fill(path: Path) -> None:
    """Write ``path`` until the file system is full."""
    chunk = b"\0" * 65536
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError:
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)


def status(host: LogicalHost) -> dict[str, Any]:
    done = host.run("service", "status", "--json", check=False)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@as_root
def test_a_full_disk_is_reported_and_nothing_is_recorded_wrongly(
    host_on: LogicalHost, tmp_path: Path
) -> None:
    host = host_on
    flag, flag2 = tmp_path / "go", tmp_path / "go2"
    host.start()
    host.define(f"""
        group: /d
        jobnets:
          - name: waits
            units:
              - name: j
                command: [/bin/sh, -c, "while [ ! -e {flag} ]; do sleep 0.1; done; exit 3"]
          - name: ends_while_full
            units:
              - name: j
                command: [/bin/sh, -c, "while [ ! -e {flag2} ]; do sleep 0.1; done; exit 0"]
          - name: quick
            units:
              - {{name: a, command: [/bin/true]}}
    """)
    waiting = host.entry("/d/waits")
    unknown = host.entry("/d/ends_while_full")
    while len(recordlog.all_started(host.datadir / "claims")) < 2:
        time.sleep(0.1)
    run_id = ""
    while not run_id:
        run_id = host.units(unknown)["/d/ends_while_full/j"]["run_id"] or ""
    record = run_started(host.datadir, run_id) or {}
    assert record.get("supervisor_pid"), record
    filler = host.datadir.parent.parent / "filler"
    fill(filler)
    # Held entries (nothing starts) until the journal refuses one: SQLite may first
    # reuse room it had taken before.
    held: list[int] = []
    refused = None
    for _ in range(2000):
        done = host.run("entry", "/d/quick", "--hold", "--json", check=False)
        if done.returncode != 0:
            refused = done
            break
        held.append(int(json.loads(done.stdout)["run"]))
        if len(held) % 50 == 0:
            fill(filler.with_name(f"filler{len(held)}"))
    assert refused is not None, "the journal never ran out of room"
    assert "AJS3-E208" in refused.stderr and "Traceback" not in refused.stderr
    assert host.daemon_pid() is not None
    st = status(host)
    assert st["exit"] == 0, st  # still up: another node would find the same disk
    disk = [c for c in st["checks"] if c["check"] == "disk"]
    assert disk and "AJS3-E208" in disk[0]["detail"], st
    assert disk[0]["disk_full"]["since"] > 0
    # A job that ends now: its supervisor cannot write its end record yet; it keeps the
    # end and writes it once there is room, so the real end is recorded, not a guess.
    flag2.touch()
    # Space back: the daemon carries on by itself, the job's real end is recorded.
    for leftover in filler.parent.glob("filler*"):
        leftover.unlink()
    flag.touch()
    data = host.wait(waiting, timeout=120)
    unit = {u["path"]: u for u in data["units"]}["/d/waits/j"]
    assert unit["status"] == "ended_abnormally" and unit["exit_code"] == 3, unit
    while True:  # once space is back, a new entry is accepted and runs
        done = host.run("entry", "/d/quick", "--json", check=False)
        if done.returncode == 0:
            break
        assert "AJS3-E208" in done.stderr, done.stderr
        time.sleep(0.5)
    run = int(json.loads(done.stdout)["run"])
    host.wait(run)
    assert host.units(run)["/d/quick/a"]["status"] == "ended_normally"
    assert "disk" not in {c["check"] for c in status(host)["checks"]}
    data = host.wait(unknown, timeout=120)
    kept = {u["path"]: u for u in data["units"]}["/d/ends_while_full/j"]
    assert kept["status"] == "ended_normally" and kept["exit_code"] == 0, kept
    # nothing lost: every entry that was answered exists, held
    for h in held:
        assert host.units(h)["/d/quick"]["status"] == "held", h
    with contextlib.suppress(OSError):
        log = (host.datadir / "log" / "ajs3.log").read_text()
        assert "disk space back" in log


def test_a_commit_without_room_is_rolled_back_whole_and_coded(tmp_path: Path) -> None:
    """SQLite's own SQLITE_FULL (a page limit stands in for the disk): the transaction
    is rolled back cleanly, E208 is raised, and the journal carries on afterwards."""
    journal = Journal.open(tmp_path)
    try:
        journal.set_meta("before", "1")
        pages = journal.conn.execute("PRAGMA page_count").fetchone()[0]
        journal.conn.execute(f"PRAGMA max_page_count={pages}")
        with pytest.raises(DiskFull) as err, journal.transaction():
            journal.set_meta("small", "x")
            journal.set_meta("big", "x" * 1_000_000)
        assert err.value.code is Code.DISK_FULL and "full" in err.value.message
        assert not journal.in_transaction
        assert journal.get_meta("small") is None and journal.get_meta("big") is None
        journal.conn.execute("PRAGMA max_page_count=1073741823")
        journal.set_meta("after", "2")
        assert journal.get_meta("before") == "1" and journal.get_meta("after") == "2"
    finally:
        journal.close()


HELD_DEFS = """
group: /t
jobnets:
  - name: q
    units:
      - {name: gate, command: [/bin/true], hold: true}
"""


def test_a_change_without_room_leaves_the_memory_as_the_journal(tmp_path: Path) -> None:
    """A registration and a hold whose commit fails are undone in memory too
    (Scheduler.resync): the scheduler never acts on what the journal does not hold."""
    journal = Journal.open(tmp_path)
    journal.begin_epoch("test", 1, "hot")
    try:
        sched = Scheduler(journal, Settings(lhost="t", datadir=tmp_path))
        sched.apply_definitions(load_text(HELD_DEFS, "t.yaml"), ["t.yaml"])
        kept = sched.register("/t/q")
        pages = journal.conn.execute("PRAGMA page_count").fetchone()[0]
        journal.conn.execute(f"PRAGMA max_page_count={pages}")
        with pytest.raises(DiskFull), journal.transaction():
            sched.register("/t/q")
            sched.release(kept, "/t/q/gate")
            journal.set_meta("filler", "x" * 1_000_000)
        assert len(sched.runs) == 2  # what the rolled-back change left in memory
        sched.resync()
        assert sorted(sched.runs) == [kept] == journal.active_jobnet_runs()
        assert sched.runs[kept].urs["/t/q/gate"].status is Status.HELD
        journal.conn.execute("PRAGMA max_page_count=1073741823")
        assert sched.register("/t/q") != kept
    finally:
        journal.close()
