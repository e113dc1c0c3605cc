"""Faults of the data directory with a real daemon: a journal that is missing, empty or
damaged is never replaced silently; links where files must be are refused; a start
that fails says why (docs/security.md, Files)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from lhost import LogicalHost

from ajs3.engine import recordlog
from ajs3.errors import AjsError, Code
from ajs3.service.paths import DataDirMark, write_private

DEFS = """
    group: /f
    jobnets:
      - name: net
        units:
          - {name: a, command: [/bin/echo, hello]}
"""


def with_history(make_lhost: Any) -> LogicalHost:
    """A logical host that defined and ran something, then stopped."""
    host: LogicalHost = make_lhost("lh1")
    host.start()
    host.define(DEFS)
    host.wait(host.entry("/f/net"))
    host.stop()
    return host


def refused(host: LogicalHost, code: str, *args: str) -> str:
    done = host.run("service", "start", "--timeout", "30", *args, check=False)
    assert done.returncode == 1, done.stdout
    assert code in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "AJS3-E303" not in done.stderr
    assert host.daemon_pid() is None
    assert host.run("service", "status", check=False).returncode == 3
    return done.stderr


def journal_files(host: LogicalHost) -> list[Path]:
    return sorted(host.datadir.glob("journal.db*"))


@pytest.mark.parametrize("fault", ["missing", "empty"])
def test_a_missing_or_empty_journal_is_refused_then_started_afresh_on_request(
    make_lhost: Any, fault: str
) -> None:
    host = with_history(make_lhost)
    for path in journal_files(host):
        path.unlink()
    if fault == "empty":
        (host.datadir / "journal.db").write_bytes(b"")
    before = journal_files(host)
    err = refused(host, "AJS3-E207")
    assert "jobs/" in err and "--initialize" in err and "backup" in err
    assert journal_files(host) == before  # nothing was created or changed
    assert host.run("service", "start", "--check", check=False).returncode == 1
    # the documented recovery: start afresh, the old files kept aside
    out = host.json("service", "start", "--initialize", "--timeout", "60")
    assert any(name.startswith("jobs.before-initialize-") for name in out["initialized"])
    assert all((host.datadir / name).exists() for name in out["initialized"])
    assert host.journal_query("SELECT count(*) FROM jobnet_runs") == [(0,)]
    host.define(DEFS)
    assert host.wait(host.entry("/f/net"))["units"][0]["status"] == "ended_normally"


@pytest.mark.parametrize("where", ["header", "pages"])
def test_a_damaged_journal_is_refused_with_e204(make_lhost: Any, where: str) -> None:
    host = with_history(make_lhost)
    journal = host.datadir / "journal.db"
    size = journal.stat().st_size
    assert size >= 4 * 4096
    with open(journal, "r+b") as f:
        if where == "header":
            f.write(b"this is not a journal" * 5)
        else:  # leave the header whole: damage the pages
            f.seek(4096)
            f.write(os.urandom(size - 4096))
    err = refused(host, "AJS3-E204")
    assert "damaged" in err and "backup" in err
    assert journal.stat().st_size == size
    refused(host, "AJS3-E204")  # the same answer every time, nothing replaced
    out = host.json("service", "start", "--initialize", "--timeout", "60")
    aside = [n for n in out["initialized"] if n.startswith("journal.db.before-initialize-")]
    assert aside and (host.datadir / aside[0]).stat().st_size == size


def test_initialize_is_refused_for_a_sound_journal(make_lhost: Any) -> None:
    host = with_history(make_lhost)
    err = refused(host, "AJS3-E406", "--initialize")
    assert "sound" in err
    host.start()
    assert host.show("/f/net")  # everything is still there


def test_a_new_data_directory_with_settings_and_definitions_starts_by_itself(
    make_lhost: Any,
) -> None:
    host: LogicalHost = make_lhost("lh1")  # ajs3.yaml, definitions/ written before start
    (host.datadir / "definitions" / "d.yaml").write_text(DEFS)
    host.run("define")  # offline: creates the journal
    host.start()
    assert host.wait(host.entry("/f/net"))["units"][0]["status"] == "ended_normally"
    fresh: LogicalHost = make_lhost("lh2")
    fresh.start()
    assert (fresh.datadir / "journal.db").exists()


def test_journal_content_the_daemon_cannot_read_is_e204(make_lhost: Any) -> None:
    """Sound pages, unreadable content: refused in the foreground, not a daemon that
    dies of a traceback (AJS3-E303)."""
    host = with_history(make_lhost)
    conn = sqlite3.connect(str(host.datadir / "journal.db"))
    with conn:
        conn.execute("UPDATE definitions SET content = 'not json'")
    conn.close()
    err = refused(host, "AJS3-E204")
    assert "content" in err


def test_a_daemon_that_dies_before_ready_says_so_at_once(make_lhost: Any) -> None:
    """Not "not ready within 60 s" when it exited after a fraction of that."""
    host = with_history(make_lhost)
    log = host.datadir / "log" / "ajs3.log"
    log.unlink()
    log.mkdir()  # the daemon cannot open its log: it dies at once
    done = host.run("service", "start", "--timeout", "60", check=False)
    assert done.returncode == 1
    assert "exited with" in done.stderr and "before it was ready" in done.stderr
    assert "within 60" not in done.stderr and "Traceback" not in done.stderr
    assert "daemon.out" in done.stderr


@pytest.mark.parametrize("name", ["journal.db", "ajs3.lock"])
def test_a_link_where_a_data_file_must_be_is_refused(
    make_lhost: Any, tmp_path: Path, name: str
) -> None:
    host = with_history(make_lhost)
    target = tmp_path / "precious"
    target.write_bytes((host.datadir / name).read_bytes() if name == "journal.db" else b"x")
    target.chmod(0o644)
    before = target.read_bytes()
    (host.datadir / name).unlink()
    (host.datadir / name).symlink_to(target)
    err = refused(host, "AJS3-E211")
    assert name in err
    assert target.read_bytes() == before
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_temporary_file_is_never_written_through_a_link(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_text("precious\n")
    pidfile = tmp_path / "daemon.json"
    (tmp_path / "daemon.json.tmp").symlink_to(target)
    with pytest.raises(AjsError) as err:
        write_private(pidfile, b"{}")
    assert err.value.code is Code.UNSAFE_PATH and "daemon.json.tmp" in str(err.value)
    assert target.read_text() == "precious\n" and not pidfile.exists()
    # a leftover of our own (a crash between create and rename) is replaced
    (tmp_path / "daemon.json.tmp").unlink()
    (tmp_path / "daemon.json.tmp").write_text("half")
    write_private(pidfile, b'{"pid": 1}', 0o640)
    assert pidfile.read_text() == '{"pid": 1}'
    assert stat.S_IMODE(pidfile.stat().st_mode) == 0o640
    assert not (tmp_path / "daemon.json.tmp").exists()


def test_a_data_directory_that_disappears_is_noticed(tmp_path: Path) -> None:
    datadir = tmp_path / "data"
    datadir.mkdir()
    (datadir / "journal.db").write_bytes(b"")
    mark = DataDirMark.of(datadir)
    assert mark.gone() is None
    datadir.rename(tmp_path / "moved")
    datadir.mkdir()
    (datadir / "journal.db").write_bytes(b"")
    assert "replaced" in (mark.gone() or "")
    (datadir / "journal.db").unlink()
    datadir.rmdir()
    with pytest.raises(AjsError) as err:
        mark.check()
    assert err.value.code is Code.DATADIR_GONE and "gone" in str(err.value)
    (tmp_path / "moved").rename(datadir)
    assert mark.gone() is None
    (datadir / "journal.db").unlink()
    assert "journal" in (mark.gone() or "")


ROOT_DEFS = """
    group: /r
    jobnets:
      - name: net
        units:
          - {name: plain, command: [/bin/true]}
          - {name: as_root, user: root, command: [/usr/bin/id, -u]}
"""


def jobnets_defined(host: LogicalHost) -> int:
    return len(host.journal_query("SELECT version FROM definitions"))


def test_a_root_job_is_refused_when_defined_and_nothing_is_applied(make_lhost: Any) -> None:
    host: LogicalHost = make_lhost("lh1")
    host.write_settings("allow_root_jobs: false\n", allow_root_jobs=False)
    host.start()
    before = jobnets_defined(host)
    (host.datadir / "definitions" / "root.yaml").write_text(textwrap.dedent(ROOT_DEFS))
    for how in ("through the daemon", "offline"):
        done = host.run("define", check=False)
        assert done.returncode == 1, (how, done.stdout)
        assert "AJS3-E313" in done.stderr and "Traceback" not in done.stderr, how
        assert "root.yaml:7" in done.stderr and "allow_root_jobs" in done.stderr, how
        assert jobnets_defined(host) == before, how
        host.stop()
    host.write_settings("allow_root_jobs: true\n")
    host.run("define")  # offline, now allowed
    assert jobnets_defined(host) == before + 1
    host.start()
    run = host.entry("/r/net")
    host.wait(run)
    assert host.units(run)["/r/net/as_root"]["status"] == "ended_normally"


LONG_DEFS = """
    group: /g
    jobnets:
      - name: long
        units:
          - {name: sleeper, command: [/bin/sleep, "600"]}
      - name: short
        units:
          - {name: a, command: [/bin/true]}
"""


@pytest.mark.parametrize("fault", ["renamed", "removed"])
def test_a_daemon_whose_data_directory_disappears_stops_with_a_coded_error(
    make_lhost: Any, fault: str
) -> None:
    host: LogicalHost = make_lhost("lh1")
    host.start()
    host.define(LONG_DEFS)
    pid = host.daemon_pid()
    assert pid is not None
    daemon = psutil.Process(pid)
    job: psutil.Process | None = None
    moved = host.datadir.with_name("moved")
    if fault == "renamed":
        host.entry("/g/long")
        job_pid = None
        while job_pid is None:  # the start record (in the record logs) names the job
            for record in recordlog.all_started(host.datadir / "claims").values():
                job_pid = record.get("job_pid")
            time.sleep(0.1)
        job = psutil.Process(int(job_pid))
        host.datadir.rename(moved)
    else:
        shutil.rmtree(host.datadir)
    try:
        done = host.run("entry", "/g/short", "--json", check=False)
        assert done.returncode != 0, done.stdout
        assert "Traceback" not in done.stderr
        daemon.wait(timeout=120)  # it stops by itself (no timing asserted)
        assert host.daemon_pid() is None
        assert host.run("service", "status", check=False).returncode != 0
        if job is not None:
            assert job.is_running(), "the daemon must leave its jobs running"
    finally:
        if moved.exists():
            moved.rename(host.datadir)
    if fault == "renamed":
        log = (host.datadir / "log" / "ajs3.log").read_text()
        assert "AJS3-E209" in log and "data directory lost" in log
        # the daemon's last words (stderr) are the coded error it exited with
        assert "AJS3-E209" in (host.datadir / "log" / "daemon.out").read_text()
