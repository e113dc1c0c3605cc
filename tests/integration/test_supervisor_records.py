"""The supervisor server's record logs (``--records``, ADR 0039) and the Runner that
reads them (the daemon does not ask for them yet): real processes and files."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lhost import wait_ended

from ajs3.engine import claimlog, recordlog
from ajs3.engine.jobgroups import kill_group
from ajs3.engine.runner import Runner
from ajs3.settings import Settings

ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    settings = Settings("lh1", tmp_path, allow_root_jobs=True)
    r = Runner(tmp_path, settings, claim_log=True, records=True)
    assert r.supervisor.records
    yield r
    r.close()


def start(runner: Runner, run_id: str, argv: list[str]) -> Path:
    jobdir, spec = runner.make_spec(run_id, argv, ENV, None, None)
    assert runner.spawn_many([(jobdir, spec)]) == [runner.server_pid]
    return jobdir


def all_records(claims: Path) -> recordlog.Records:
    found = recordlog.Records("")
    for path in recordlog.logs(claims):
        log = recordlog.read(path)
        assert log is not None, path
        found.host = log.host
        found.started.update(log.started)
        found.ended.update(log.ended)
    return found


def test_records_are_lines_of_the_servers_log_and_only_output_makes_a_directory(
    runner: Runner, tmp_path: Path
) -> None:
    quiet = start(runner, "q" + "1" * 20, ["/bin/true"])
    loud = start(runner, "l" + "1" * 20, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    told = wait_ended(runner, [quiet, loud], timeout=30)
    claims = tmp_path / "claims"
    records = all_records(claims)
    assert records.host == runner.identity
    for jobdir, code in ((quiet, 0), (loud, 3)):
        run_id = jobdir.name
        start_record, end_record = records.started[run_id], records.ended[run_id]
        assert start_record["job_pid"] > 0 and start_record["pgid"] == start_record["job_pid"]
        assert start_record["job_start"] == end_record["job_start"] > 0
        assert end_record["exit_code"] == code
        told_end = told[jobdir]
        assert told_end is not None and recordlog._record(told_end.record) == end_record
        assert not (jobdir / "started.json").exists() and not (jobdir / "status.json").exists()
    assert not quiet.exists()  # no output, no directory
    assert (loud / "stdout").read_text() == "out\n" and (loud / "stderr").read_text() == "err\n"
    assert os.stat(loud).st_mode & 0o777 == 0o750
    # Every claim is logged before its job starts, as without --records.
    logged = [run for log in map(claimlog.read, claimlog.logs(claims)) if log for run in log[1]]
    assert sorted(logged) == sorted([quiet.name, loud.name])


def test_a_voided_run_is_never_started(runner: Runner, tmp_path: Path) -> None:
    claims = tmp_path / "claims"
    marker = tmp_path / "ran"
    first = start(runner, "f" + "1" * 20, ["/bin/true"])  # the server is up, its logs made
    wait_ended(runner, [first], timeout=30)
    run_id = "v" + "1" * 20
    assert recordlog.void(claims, run_id, runner.identity)
    voided = start(runner, run_id, ["/bin/sh", "-c", f"touch {marker}"])
    told = wait_ended(runner, [voided], timeout=30)
    assert told[voided] is None  # not its to start: told with no record
    assert not marker.exists()
    records = all_records(claims)
    assert run_id not in records.started and run_id not in records.ended
    assert run_id not in recordlog.local_claims(claims, runner.identity)
    assert not recordlog.void(claims, first.name, runner.identity)  # claimed first: not void


def test_a_void_written_while_the_server_waits_for_the_lock_wins(
    runner: Runner, tmp_path: Path
) -> None:
    """The sync thread reads the voids under the file's lock: a run voided by a daemon
    that holds the lock when the request comes is never started, however the two
    interleave."""
    claims = tmp_path / "claims"
    marker = tmp_path / "ran"
    first = start(runner, "f" + "2" * 20, ["/bin/true"])
    wait_ended(runner, [first], timeout=30)
    run_id = "w" + "2" * 20
    fd = os.open(claims / recordlog.VOIDS, os.O_RDWR | os.O_APPEND)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        jobdir = start(runner, run_id, ["/bin/sh", "-c", f"touch {marker}"])
        os.write(fd, run_id.encode() + b"\n")
    finally:
        os.close(fd)
    assert wait_ended(runner, [jobdir], timeout=30)[jobdir] is None
    assert not marker.exists()


def test_the_server_and_its_jobs_hold_the_record_log(runner: Runner, tmp_path: Path) -> None:
    claims = tmp_path / "claims"
    jobdir = start(runner, "h" + "1" * 20, ["/bin/true"])
    wait_ended(runner, [jobdir], timeout=30)
    (log,) = recordlog.logs(claims)
    assert recordlog.held(log)
    server = runner.server
    assert server is not None
    runner.close()  # the end of its stdin: it ends once its jobs have
    assert server.wait(timeout=30) == 0
    assert not recordlog.held(log)


def test_a_full_record_log_is_followed_by_a_new_one_and_let_go_once_its_runs_ended(
    runner: Runner, tmp_path: Path
) -> None:
    runner.supervisor.records_size = 4096
    items = [runner.make_spec(f"r{k:020d}", ["/bin/true"], ENV, None, None) for k in range(120)]
    for first in range(0, 120, 20):
        runner.spawn_many(items[first : first + 20])
    wait_ended(runner, [jobdir for jobdir, _ in items], timeout=30)
    claims = tmp_path / "claims"
    logs = list(recordlog.logs(claims))
    assert len(logs) >= 3, logs
    records = all_records(claims)
    assert sorted(records.started) == sorted(records.ended) == sorted(j.name for j, _ in items)
    # Only the log written now is held: every run of the others has ended.
    assert [recordlog.held(log) for log in logs] == [False] * (len(logs) - 1) + [True]


def test_records_without_a_claims_directory_are_files_as_before(tmp_path: Path) -> None:
    runner = Runner(tmp_path, Settings("lh1", tmp_path, allow_root_jobs=True))
    runner.supervisor.records = True
    try:
        jobdir = start(runner, "n" + "1" * 20, ["/bin/true"])
        wait_ended(runner, [jobdir], timeout=30)
        status = runner.status(jobdir)
        assert status is not None and status["exit_code"] == 0
        assert (jobdir / "started.json").exists()
    finally:
        runner.close()


def test_a_runner_reads_the_logs_and_a_runs_own_files_first(runner: Runner) -> None:
    jobdir = start(runner, "a" + "1" * 20, ["/bin/true"])
    wait_ended(runner, [jobdir], timeout=30)
    started, status = runner.started(jobdir), runner.status(jobdir)  # nothing told: the logs
    assert started is not None and started["job_pid"] > 0 and started["run_id"] == jobdir.name
    assert status is not None and status["exit_code"] == 0 and runner.has_ended(jobdir)
    # A run of a server before the logs keeps its files, and they are read first.
    old = runner.jobdir("o" + "1" * 20)
    old.mkdir(mode=0o750)
    record = {"run_id": old.name, "job_pid": 4242, "pgid": 4242, "host": runner.identity}
    (old / "started.json").write_text(json.dumps(record))
    assert runner.started(old) == record and not runner.has_ended(old)
    (old / "status.json").write_text(json.dumps({**record, "exit_code": 1}))
    assert runner.has_ended(old) and runner.status(old) == {**record, "exit_code": 1}


def claimed_by_a_dead_server(runner: Runner, claims: Path, run_id: str) -> Path:
    """A claim log and a record log of a server that is gone (pid 1, start 1), the claim
    of ``run_id`` in it and no start record: the server died between the two."""
    head = f"ajs3-claims 1 {runner.identity}\n{run_id}\n".encode()
    (claims / "1-1-0.log").write_bytes(head + bytes(4096 - len(head)))
    records = claims / "1-1-0.records"
    records.write_text(f"ajs3-records 1 {runner.identity}\n")
    return records


def test_a_claim_whose_server_died_before_its_job_never_ran(runner: Runner, tmp_path: Path) -> None:
    claims = tmp_path / "claims"
    claims.mkdir(exist_ok=True)
    run_id = "d" + "1" * 20
    records = claimed_by_a_dead_server(runner, claims, run_id)
    jobdir = runner.jobdir(run_id)
    assert not runner.void(jobdir, "test")  # claimed: not for a daemon to void
    assert runner.settle(jobdir, "test", wait=5.0) is None  # its server gone: never ran
    # While a server (or a job of it before its exec) holds the log, settle waits.
    fd = os.open(records, os.O_RDWR | os.O_APPEND)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(TimeoutError):
            runner.settle(jobdir, "test", wait=0.2)
        line = {"run_id": run_id, "job_pid": 4343, "job_start": 7, "pgid": 4343}
        os.write(fd, b"p " + json.dumps(line).encode() + b"\n")
        assert runner.settle(jobdir, "test", wait=5.0) == line
    finally:
        os.close(fd)


def test_a_run_nobody_claimed_is_voided_in_the_voids_and_its_own_file(
    runner: Runner, tmp_path: Path
) -> None:
    claims = tmp_path / "claims"
    first = start(runner, "f" + "3" * 20, ["/bin/true"])  # the server up: its voids file
    wait_ended(runner, [first], timeout=30)
    jobdir = runner.jobdir("u" + "1" * 20)
    assert runner.void(jobdir, "never started")
    assert jobdir.name in recordlog.voids(claims)
    # A server from before the logs would find the void record, as it always did.
    started = runner.started(jobdir)
    assert started is not None and started["void"] is True
    assert not runner.void(jobdir, "again")


def test_record_logs_are_cut_once_free_and_their_runs_ended(runner: Runner, tmp_path: Path) -> None:
    claims = tmp_path / "claims"
    jobdir = start(runner, "c" + "1" * 20, ["/bin/true"])
    wait_ended(runner, [jobdir], timeout=30)
    (log,) = recordlog.logs(claims)
    assert recordlog.cut(claims, set()) == []  # its server holds it
    server = runner.server
    assert server is not None
    runner.close()
    assert server.wait(timeout=30) == 0
    assert recordlog.cut(claims, {jobdir.name}) == []  # the journal says it runs
    assert recordlog.cut(claims, set()) == [log]
    assert not log.exists()


def test_the_runs_without_an_end_are_found_to_clean_up_after_a_crash(
    runner: Runner, tmp_path: Path
) -> None:
    claims = tmp_path / "claims"
    jobdir = start(runner, "s" + "1" * 20, ["sleep", "60"])
    deadline = time.monotonic() + 30
    while (started := runner.started(jobdir)) is None:
        assert time.monotonic() < deadline, "no start record"
        time.sleep(0.02)
    assert [r["run_id"] for r in recordlog.unended(claims)] == [jobdir.name]
    assert kill_group(started["pgid"], signal.SIGKILL, started)
    told = wait_ended(runner, [jobdir], timeout=30)[jobdir]
    assert told is not None and recordlog.unended(claims) == []
