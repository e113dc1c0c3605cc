"""The supervisor server's record logs (``--records``, ADR 0039, proposed; the daemon
does not pass it yet): real processes and files, driven through the Runner."""

from __future__ import annotations

import fcntl
import os
import select
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ajs3.engine import claimlog, recordlog
from ajs3.engine.runner import Runner
from ajs3.engine.supervisor import Told
from ajs3.settings import Settings

ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    r = Runner(tmp_path, Settings("lh1", tmp_path, allow_root_jobs=True), claim_log=True)
    r.supervisor.records = True
    yield r
    r.close()


def ended(runner: Runner, jobdirs: list[Path], timeout: float = 30.0) -> dict[Path, Told | None]:
    """Until the server has told the end of each of these runs; what it told."""
    want = set(jobdirs)
    seen: dict[Path, Told | None] = {}
    end = time.monotonic() + timeout
    while not want <= seen.keys():
        fd = runner.notices()
        assert fd is not None, "the supervisor server is gone"
        left = end - time.monotonic()
        assert left > 0, f"no end told for {sorted(str(j) for j in want - seen.keys())}"
        if select.select([fd], [], [], left)[0]:
            runner.read_notices()
        seen.update(runner.take_ended())
    return seen


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
    told = ended(runner, [quiet, loud])
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
    ended(runner, [first])
    run_id = "v" + "1" * 20
    assert recordlog.void(claims, run_id)
    voided = start(runner, run_id, ["/bin/sh", "-c", f"touch {marker}"])
    told = ended(runner, [voided])
    assert told[voided] is None  # not its to start: told with no record
    assert not marker.exists()
    records = all_records(claims)
    assert run_id not in records.started and run_id not in records.ended
    assert run_id not in recordlog.claimed(claims)
    assert not recordlog.void(claims, first.name)  # claimed first: not void


def test_a_void_written_while_the_server_waits_for_the_lock_wins(
    runner: Runner, tmp_path: Path
) -> None:
    """The sync thread reads the voids under the file's lock: a run voided by a daemon
    that holds the lock when the request comes is never started, however the two
    interleave."""
    claims = tmp_path / "claims"
    marker = tmp_path / "ran"
    first = start(runner, "f" + "2" * 20, ["/bin/true"])
    ended(runner, [first])
    run_id = "w" + "2" * 20
    fd = os.open(claims / recordlog.VOIDS, os.O_RDWR | os.O_APPEND)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        jobdir = start(runner, run_id, ["/bin/sh", "-c", f"touch {marker}"])
        os.write(fd, run_id.encode() + b"\n")
    finally:
        os.close(fd)
    assert ended(runner, [jobdir])[jobdir] is None
    assert not marker.exists()


def test_the_server_and_its_jobs_hold_the_record_log(runner: Runner, tmp_path: Path) -> None:
    claims = tmp_path / "claims"
    jobdir = start(runner, "h" + "1" * 20, ["/bin/true"])
    ended(runner, [jobdir])
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
    ended(runner, [jobdir for jobdir, _ in items])
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
        ended(runner, [jobdir])
        status = runner.status(jobdir)
        assert status is not None and status["exit_code"] == 0
        assert (jobdir / "started.json").exists()
    finally:
        runner.close()
