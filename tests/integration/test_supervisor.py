"""The C supervisor server (ajs3-supervise), driven through the Runner the daemon uses:
real processes, real files, no daemon."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lhost import wait_ended

from ajs3.engine import claimlog, native
from ajs3.engine.jobgroups import kill_group, proc_starttime
from ajs3.engine.runner import Runner
from ajs3.engine.supervisor import encode_request
from ajs3.exechost.serve import run_state
from ajs3.service.joboutput import read_log
from ajs3.settings import Settings

ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    r = Runner(tmp_path, Settings("lh1", tmp_path, allow_root_jobs=True))
    yield r
    r.close()


def run_job(
    runner: Runner,
    run_id: str,
    argv: list[str],
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> tuple[Path, dict[str, Any] | None]:
    jobdir, spec = runner.make_spec(run_id, argv, env or ENV, cwd, None)
    (pid,) = runner.spawn_many([(jobdir, spec)])
    assert pid is not None and pid > 0
    wait_ended(runner, [jobdir])
    return jobdir, runner.status(jobdir)


def test_start_and_end_records_agree(runner: Runner) -> None:
    jobdir, status = run_job(runner, "r1", ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
    started = runner.started(jobdir)
    assert started is not None and status is not None
    assert status["exit_code"] == 3 and status["signal"] is None
    assert started["run_id"] == status["run_id"] == "r1"
    for key in ("supervisor_pid", "supervisor_start", "job_pid", "pgid"):
        assert started[key] == status[key], key
    assert started["pgid"] == started["job_pid"] != started["supervisor_pid"]
    assert runner.is_local(started)  # the C and Python host identities are the same
    assert started["started_at"] <= status["ended_at"]
    assert (jobdir / "stdout").read_text() == "out\n"
    assert (jobdir / "stderr").read_text() == "err\n"
    assert sorted(p.name for p in jobdir.iterdir()) == [
        "started.json",
        "status.json",
        "stderr",
        "stdout",
    ]


def test_a_stream_gets_its_file_at_its_first_byte(runner: Runner) -> None:
    """A job that writes nothing on a stream has no file for it (two file creations per
    job fewer); what `ajs3 log` reads of it is no output, not an error."""
    jobdir, status = run_job(runner, "r0", ["/bin/true"])
    assert status is not None and status["exit_code"] == 0
    assert sorted(p.name for p in jobdir.iterdir()) == ["started.json", "status.json"]
    assert read_log(jobdir / "stdout") == {
        "path": str(jobdir / "stdout"),
        "size": 0,
        "offset": 0,
        "truncated": False,
        "data": "",
    }
    jobdir, status = run_job(runner, "r0e", ["/bin/sh", "-c", "echo late >&2"])
    assert status is not None and status["exit_code"] == 0
    assert sorted(p.name for p in jobdir.iterdir()) == ["started.json", "status.json", "stderr"]
    assert base64.b64decode(read_log(jobdir / "stderr")["data"]) == b"late\n"


def test_the_server_makes_the_jobs_vars_out_file_before_it_starts_it(
    runner: Runner, tmp_path: Path
) -> None:
    """The request's VARS field: the job's AJS3_VARS_OUT file, made new and empty for its
    owner (0600) before the job starts, never through a link nor in a directory others
    may write; a left-over is made anew. If it cannot be made, the job never runs."""
    vars_dir = tmp_path / "vars"
    vars_dir.mkdir(mode=0o711)
    out = vars_dir / "v1.out"
    out.write_text("LEFT=over\n")
    nobody = 65534
    check = f"test -f {out} && test ! -s {out} && stat -c %u:%g:%a {out}"
    jobdir, spec = runner.make_spec("v1", ["/bin/sh", "-c", check], ENV, None, None)
    spec["vars_out"] = (str(out), nobody, nobody)
    runner.spawn_many([(jobdir, spec)])
    wait_ended(runner, [jobdir])
    status = runner.status(jobdir)
    assert status is not None and status["exit_code"] == 0, status
    assert (jobdir / "stdout").read_text() == f"{nobody}:{nobody}:600\n"

    precious = tmp_path / "precious"
    precious.write_text("precious\n")
    (vars_dir / "v2.out").symlink_to(precious)
    jobdir, spec = runner.make_spec("v2", ["/bin/true"], ENV, None, None)
    spec["vars_out"] = (str(vars_dir / "v2.out"), nobody, nobody)
    runner.spawn_many([(jobdir, spec)])
    wait_ended(runner, [jobdir])
    assert (status := runner.status(jobdir)) is not None and status["exit_code"] == 0
    assert precious.read_text() == "precious\n" and precious.stat().st_uid == 0
    assert (vars_dir / "v2.out").is_file() and not (vars_dir / "v2.out").is_symlink()

    vars_dir.chmod(0o777)  # others may write there: nothing is made, the job never runs
    marker = tmp_path / "ran"
    jobdir, spec = runner.make_spec("v3", ["/bin/touch", str(marker)], ENV, None, None)
    spec["vars_out"] = (str(vars_dir / "v3.out"), 0, 0)
    runner.spawn_many([(jobdir, spec)])
    wait_ended(runner, [jobdir])
    status = runner.status(jobdir)
    assert status is not None and status["exit_code"] is None, status
    assert status["failed_to_start"].startswith("could not make its AJS3_VARS_OUT file")
    assert not marker.exists() and not (vars_dir / "v3.out").exists()


def test_each_end_is_told_with_its_record_and_the_size_of_its_vars_out_file(
    runner: Runner, tmp_path: Path
) -> None:
    """ADR 0037: the server tells an end with status.json's text and the size of the
    job's AJS3_VARS_OUT file as the end was recorded (-1: gone; none known when the
    request named no file), so that the daemon reads neither back for a job that left
    no values."""
    vars_dir = tmp_path / "vars"
    vars_dir.mkdir(mode=0o711)
    wrote, gone = vars_dir / "t1.out", vars_dir / "t5.out"
    items = []
    for run_id, argv, out in [
        ("t1", ["/bin/sh", "-c", f"printf 'A=1\\n' > {wrote}; exit 4"], wrote),
        ("t2", ["/bin/true"], vars_dir / "t2.out"),
        ("t3", ["/bin/sh", "-c", "kill -TERM $$"], None),
        ("t4", ["/no/such/program"], None),
        ("t5", ["/bin/rm", str(gone)], gone),
    ]:
        jobdir, spec = runner.make_spec(run_id, argv, ENV, None, None)
        if out is not None:
            spec["vars_out"] = (str(out), 0, 0)
        items.append((jobdir, spec))
    runner.spawn_many(items)
    jobdirs = [jobdir for jobdir, _ in items]
    told = wait_ended(runner, jobdirs)
    for jobdir in jobdirs:
        end = told[jobdir]
        assert end is not None, jobdir
        assert json.loads(end.record) == json.loads((jobdir / "status.json").read_text())
        assert runner.status(jobdir, end) == json.loads(end.record)
    sizes = [told[d].vars_out_size for d in jobdirs]  # type: ignore[union-attr]
    assert sizes == [4, 0, None, None, -1]  # None: no file named, the daemon looks itself
    codes = [(runner.status(d, told[d]) or {}).get("exit_code") for d in jobdirs]
    assert codes == [4, 0, None, None, 0]


def test_signal_and_exec_failures_are_recorded(runner: Runner, tmp_path: Path) -> None:
    _, killed = run_job(runner, "r2", ["/bin/sh", "-c", "kill -TERM $$"])
    assert killed is not None and killed["signal"] == 15 and killed["exit_code"] is None
    _, missing = run_job(runner, "r3", ["/no/such/program"])
    assert missing is not None and missing["exit_code"] is None
    assert missing["failed_to_start"] == "exec /no/such/program: No such file or directory"
    _, badcwd = run_job(runner, "r4", ["/bin/true"], cwd=str(tmp_path / "nope"))
    assert badcwd is not None and "chdir" in badcwd["failed_to_start"]


def test_error_text_that_is_not_utf8_still_reads(runner: Runner) -> None:
    name = "/no/such/\u30b8\u30e7\u30d6"  # a path in Japanese survives as it is
    _, status = run_job(runner, "r5", [name])
    assert status is not None and name in status["failed_to_start"]
    raw = os.fsdecode(b'/no/such/\xff\xfe"quoted"\n')
    _, status = run_job(runner, "r6", [raw])
    assert status is not None
    assert '\ufffd\ufffd"quoted"\n' in status["failed_to_start"]


def test_job_gets_its_environment_default_signals_and_no_inherited_fds(
    runner: Runner, tmp_path: Path
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "only-in-job-path"
    tool.write_text("#!/bin/sh\necho found\n")
    tool.chmod(0o755)
    env = {
        **ENV,
        "PATH": f"{bindir}:/usr/bin:/bin",
        "WITH_EQUALS": "a=b=c",
        "UNICODE": "\u00e9t\u00e9",
        "BIG": "x" * 100_000,
    }
    leak = os.open(tmp_path / "leak", os.O_CREAT | os.O_WRONLY)  # inheritable in this test
    os.set_inheritable(leak, True)
    try:
        script = (
            'only-in-job-path; echo "$WITH_EQUALS $UNICODE ${#BIG}"; '
            "yes | head -1; ls /proc/self/fd | wc -l"
        )
        jobdir, status = run_job(runner, "r7", ["sh", "-c", script], env=env)
    finally:
        os.close(leak)
    assert status is not None and status["exit_code"] == 0, status
    lines = (jobdir / "stdout").read_text().splitlines()
    assert lines[:3] == ["found", "a=b=c \u00e9t\u00e9 100000", "y"]  # SIGPIPE is default
    assert int(lines[3]) == 4  # 0, 1, 2 and the one ls opened to list them


def test_many_requests_in_one_write(runner: Runner) -> None:
    items = [
        runner.make_spec(f"m{k}", ["/bin/sh", "-c", f"exit {k % 7}"], ENV, None, None)
        for k in range(150)
    ]
    pids = runner.spawn_many(items)
    assert len(pids) == 150 and all(p is not None and p > 0 for p in pids)
    assert set(pids) == {runner.server_pid}  # one supervisor for them all
    wait_ended(runner, [jobdir for jobdir, _ in items])
    for k, (jobdir, _) in enumerate(items):
        status = runner.status(jobdir)
        assert status is not None and status["exit_code"] == k % 7


def test_the_server_outlives_its_daemon_until_its_last_job_ended(
    runner: Runner, tmp_path: Path
) -> None:
    """The daemon gone (its end of the pipes closed), the server reads no more requests
    but records the end of the jobs it started, then ends."""
    jobdir, spec = runner.make_spec("o1", ["/bin/sh", "-c", "sleep 0.5; exit 4"], ENV, None, None)
    (pid,) = runner.spawn_many([(jobdir, spec)])
    assert pid is not None and pid > 0
    server = runner.server
    assert server is not None
    runner.close()  # what the daemon's death does to the server's stdin and stdout
    assert server.poll() is None, "the server left its job"
    assert server.wait(timeout=20) == 0
    status = runner.status(jobdir)
    assert status is not None and status["exit_code"] == 4 and status["supervisor_pid"] == pid


def test_a_voided_run_never_starts(runner: Runner, tmp_path: Path) -> None:
    """A restarted daemon that found no start record claims the run first; a supervisor
    of the dead daemon arriving later must run nothing (ADR 0012)."""
    marker = tmp_path / "ran"
    jobdir, spec = runner.make_spec("v1", ["/bin/touch", str(marker)], ENV, None, None)
    assert runner.void(jobdir, "never started; restarted by epoch 2")
    (pid,) = runner.spawn_many([(jobdir, spec)])
    assert pid is not None and pid > 0
    wait_ended(runner, [jobdir])  # told as over at once: not its run to start
    assert not marker.exists()
    assert runner.status(jobdir) is None
    started = runner.started(jobdir)
    assert started is not None and started["void"] is True


def test_void_loses_to_a_supervisor_that_claimed_first(runner: Runner) -> None:
    jobdir, spec = runner.make_spec("v2", ["/bin/sleep", "0.5"], ENV, None, None)
    (pid,) = runner.spawn_many([(jobdir, spec)])
    assert pid is not None and pid > 0
    deadline = time.monotonic() + 10
    while runner.started(jobdir) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not runner.void(jobdir, "too late")
    wait_ended(runner, [jobdir])
    status = runner.status(jobdir)
    assert status is not None and status["exit_code"] == 0


def test_nul_bytes_are_refused_before_anything_starts(runner: Runner) -> None:
    with pytest.raises(ValueError, match="NUL"):
        runner.make_spec("n1", ["/bin/echo", "a\0b"], ENV, None, None)
    with pytest.raises(ValueError, match="NUL"):
        runner.make_spec("n2", ["/bin/true"], {"X": "a\0b"}, None, None)
    with pytest.raises(ValueError, match="NUL"):
        runner.make_spec("n3", ["/bin/true"], ENV, "/tmp\0x", None)


@pytest.mark.parametrize("request_bytes", [b"x\n", b"5\nab\0cd", b"3\na\0\0"])
def test_server_refuses_malformed_requests(request_bytes: bytes) -> None:
    done = subprocess.run(
        [str(native.path()), "--serve"],
        input=request_bytes,
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == b""
    assert b"request from the daemon" in done.stderr


def test_server_ends_quietly_on_a_request_cut_short() -> None:
    """The daemon died in the middle of a write: nothing is started."""
    done = subprocess.run(
        [str(native.path()), "--serve"],
        input=b"50\nab\0",
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 0 and done.stdout == b"" and done.stderr == b""


@pytest.mark.parametrize("ends_only", [True, False])
def test_server_answers_requests_only_as_an_older_daemon_needs(
    tmp_path: Path, ends_only: bool
) -> None:
    """`--serve --ends-only` (the daemon's, ADR 0031) tells the ends alone; `--serve`
    also answers each request with the server's pid, which a daemon from before waits
    for (a server started by it after an upgrade of the binary)."""
    runner = Runner(tmp_path, Settings("lh1", tmp_path, allow_root_jobs=True))
    jobdir, spec = runner.make_spec("a1", ["/bin/true"], ENV, None, None)
    argv = [str(native.path()), "--serve", *(["--ends-only"] if ends_only else [])]
    server = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = server.communicate(encode_request(jobdir, spec), timeout=20)
    assert server.returncode == 0
    assert out == (b"e 0\n" if ends_only else b"%d\ne 0\n" % server.pid)
    status = runner.status(jobdir)
    assert status is not None and status["exit_code"] == 0


def test_server_usage() -> None:
    done = subprocess.run([str(native.path())], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "usage: ajs3-supervise --serve" in done.stderr


def test_source_compiles_without_warnings(tmp_path: Path) -> None:
    native.build(tmp_path / "ajs3-supervise", ["-Werror"])
    assert os.access(tmp_path / "ajs3-supervise", os.X_OK)


def test_status_json_is_plain_json(runner: Runner) -> None:
    jobdir, _ = run_job(runner, "j1", ["/bin/true"])
    for name in ("started.json", "status.json"):
        json.loads((jobdir / name).read_bytes())  # strict JSON, one object


def test_daemon_refuses_to_start_without_the_supervisor(tmp_path: Path) -> None:
    """An engine whose supervisor was never built says so and how to build it."""
    tree = tmp_path / "tree"
    shutil.copytree(
        Path(native.__file__).parents[2] / "ajs3",
        tree / "ajs3",
        ignore=shutil.ignore_patterns(native.BINARY, "__pycache__"),
    )
    datadir = tmp_path / "data"
    datadir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AJS3_")}
    env["PYTHONPATH"] = str(tree)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ajs3.cli.main",
            "service",
            "start",
            "-h",
            "nosup",
            "--datadir",
            str(datadir),
            "--rundir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "AJS3-E308" in done.stderr and "ajs3-supervise" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "ajs3.sock").exists()


CLAIM_ONLY = b'{"supervisor_pid": 12, "job_pid": null, "job_start": null, "pgid": null}'


def local_claim(runner: Runner) -> bytes:
    """A claim without the job's pids, written on this node since its boot."""
    return json.dumps(json.loads(CLAIM_ONLY) | {"host": runner.identity}).encode()


@pytest.mark.parametrize("left", [b"", b'{"supervisor_pid": 12', "claim"])
def test_a_start_record_cut_short_is_voided_once_its_lock_is_free(
    runner: Runner, left: bytes | str
) -> None:
    """A supervisor that died between creating started.json and starting its job left it
    empty, cut short, or a claim that no job wrote its pids into: its job never ran,
    and the run is voided in place."""
    jobdir = runner.jobdir("c1")
    jobdir.mkdir()
    (jobdir / "started.json").write_bytes(local_claim(runner) if isinstance(left, str) else left)
    assert runner.started(jobdir) is None
    assert not runner.void(jobdir, "too late")
    assert runner.settle(jobdir, "never started; restarted by epoch 3") is None
    record = runner.started(jobdir)
    assert record is not None and record["void"] is True and "epoch 3" in record["why"]


@pytest.mark.parametrize("host", [None, "n1/b00t/pid:[1]", "other boot"])
def test_a_claim_without_pids_from_another_node_or_boot_is_left_in_doubt(
    runner: Runner, host: str | None
) -> None:
    """The job's pids are not fsynced (ADR 0032): a claim without them that another node,
    or this one before a reboot, left may belong to a job that ran. settle returns it
    as it is (the run is in doubt), and does not void it."""
    claim = json.loads(CLAIM_ONLY)
    if host is not None:
        node, boot, pidns = runner.identity.split("/", 2)
        claim["host"] = f"{node}/{'0' * len(boot)}/{pidns}" if host == "other boot" else host
    jobdir = runner.jobdir("c3")
    jobdir.mkdir()
    (jobdir / "started.json").write_text(json.dumps(claim))
    assert runner.settle(jobdir, "x") == claim
    assert json.loads((jobdir / "started.json").read_text()) == claim  # left as it was


def test_settle_waits_for_the_supervisor_that_holds_the_record(runner: Runner) -> None:
    jobdir = runner.jobdir("c2")
    jobdir.mkdir()
    path = jobdir / "started.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    fcntl.flock(fd, fcntl.LOCK_EX)  # what a live supervisor holds while it writes
    try:
        with pytest.raises(TimeoutError):
            runner.settle(jobdir, "x", wait=0.3)
        os.write(fd, local_claim(runner))  # the claim: still held, so not the end of it
        with pytest.raises(TimeoutError):
            runner.settle(jobdir, "x", wait=0.3)
        whole = json.dumps({"supervisor_pid": 1, "job_pid": 2, "pgid": 2}).encode()
        os.pwrite(fd, whole, 0)  # what the job writes before its exec
        os.ftruncate(fd, len(whole))
    finally:
        os.close(fd)
    assert runner.settle(jobdir, "x") == {"supervisor_pid": 1, "job_pid": 2, "pgid": 2}


def test_an_execution_host_settles_a_claim_whose_server_died_before_its_job(
    runner: Runner,
) -> None:
    """On an execution host, a claim that no job wrote its pids into, whose supervisor
    is gone, was never started: the host answers void (the logical host starts the run
    again) rather than starting for ever. While its supervisor lives, it is starting."""
    gone = subprocess.Popen(["/bin/true"])
    gone.wait()
    claim = json.loads(local_claim(runner)) | {"supervisor_pid": gone.pid, "supervisor_start": 1}
    jobdir = runner.jobdir("x1")
    jobdir.mkdir()
    (jobdir / "started.json").write_text(json.dumps(claim))
    state = run_state(runner, "x1")
    assert state["state"] == "void", state
    assert "before it started the job" in state["started"]["why"]
    live = claim | {"supervisor_pid": os.getpid(), "supervisor_start": proc_starttime(os.getpid())}
    jobdir = runner.jobdir("x2")
    jobdir.mkdir()
    (jobdir / "started.json").write_text(json.dumps(live))
    assert run_state(runner, "x2") == {"state": "starting"}
    assert json.loads((jobdir / "started.json").read_text()) == live  # left as it was
    # Written before this node's last boot, it may have run: lost (in doubt), not void.
    node, boot, pidns = runner.identity.split("/", 2)
    old = claim | {"host": f"{node}/{'0' * len(boot)}/{pidns}"}
    jobdir = runner.jobdir("x3")
    jobdir.mkdir()
    (jobdir / "started.json").write_text(json.dumps(old))
    assert run_state(runner, "x3") == {"state": "lost", "started": old}


def test_records_are_never_written_through_links(runner: Runner, tmp_path: Path) -> None:
    """Links planted in a job directory (by whoever could write there) are never
    followed: the temporary status file is replaced, not written through, and output
    whose file is a link is not kept (the file is made at the first byte)."""
    target = tmp_path / "precious"
    target.write_text("precious\n")
    jobdir = runner.jobdir("l1")
    jobdir.mkdir(mode=0o750)
    (jobdir / "status.json.tmp").symlink_to(target)
    _, status = run_job(runner, "l1", ["/bin/sh", "-c", "echo out"])
    assert status is not None and status["exit_code"] == 0
    assert target.read_text() == "precious\n"
    assert not (jobdir / "status.json").is_symlink()
    assert not (jobdir / "status.json.tmp").exists()
    assert (jobdir / "stdout").read_text() == "out\n"

    jobdir = runner.jobdir("l2")
    jobdir.mkdir(mode=0o750)
    (jobdir / "stdout").symlink_to(target)
    _, status = run_job(runner, "l2", ["/bin/sh", "-c", "echo out; echo err >&2"])
    assert status is not None and status["exit_code"] == 0, status
    assert target.read_text() == "precious\n"
    assert (jobdir / "stdout").is_symlink()
    assert (jobdir / "stderr").read_text() == "err\n"


@pytest.mark.parametrize("how", ["a link", "writable by others"])
def test_a_job_directory_not_the_daemons_alone_runs_nothing(
    runner: Runner, tmp_path: Path, how: str
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    marker = tmp_path / "ran"
    jobdir = runner.jobdir("d1")
    if how == "a link":
        jobdir.symlink_to(elsewhere)
    else:
        jobdir.mkdir()
        jobdir.chmod(0o777)
    spec_dir, spec = runner.make_spec("d1", ["/bin/touch", str(marker)], ENV, None, None)
    (pid,) = runner.spawn_many([(spec_dir, spec)])
    assert pid is not None and pid > 0
    wait_ended(runner, [spec_dir])
    assert not marker.exists()
    assert not list(elsewhere.iterdir())
    assert runner.started(jobdir) is None and runner.status(jobdir) is None


def test_the_start_record_names_the_jobs_start_time(runner: Runner) -> None:
    jobdir, spec = runner.make_spec("t1", ["/bin/sleep", "60"], ENV, None, None)
    (pid,) = runner.spawn_many([(jobdir, spec)])
    assert pid is not None and pid > 0
    deadline = time.monotonic() + 10
    while (started := runner.started(jobdir)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert started["job_start"] == proc_starttime(started["job_pid"])
    assert started["job_start"] >= started["supervisor_start"]
    assert kill_group(started["pgid"], signal.SIGKILL, started)
    wait_ended(runner, [jobdir])
    status = runner.status(jobdir)
    assert status is not None and status["job_start"] == started["job_start"]


def test_claims_are_logged_and_a_full_log_is_followed_by_a_new_one(tmp_path: Path) -> None:
    """With a claim log (ADR 0033) every claim's run id is in a log before its job runs; a
    full log is followed by a new one, and only the log being written stays locked."""
    runner = Runner(tmp_path, Settings("lh1", tmp_path, allow_root_jobs=True), claim_log=True)
    runner.supervisor.claims_size = 4096  # about 190 run ids of 20 bytes per log
    try:
        items = [runner.make_spec(f"c{k:019d}", ["/bin/true"], ENV, None, None) for k in range(500)]
        for first in range(0, 500, 50):  # in batches, as a daemon sends them
            runner.spawn_many(items[first : first + 50])
        wait_ended(runner, [jobdir for jobdir, _ in items])
        logs = sorted((tmp_path / "claims").glob("*.log"))
        assert len(logs) >= 3, logs
        logged = []
        for log in logs:
            assert log.stat().st_size == 4096  # written over its zeros, never grown
            parsed = claimlog.parse(log.read_bytes())
            assert parsed is not None and parsed[0] == runner.identity
            logged += parsed[1]
        assert sorted(logged) == sorted(spec["run_id"] for _, spec in items)
        for jobdir, _ in items:
            status = runner.status(jobdir)
            assert status is not None and status["exit_code"] == 0
        # The server writes the last log only: the others may go once their runs ended.
        assert claimlog.cut(tmp_path / "claims", set()) == logs[:-1]
    finally:
        runner.close()


def test_the_journal_is_synced_before_any_job_starts_and_a_failed_sync_runs_nothing(
    tmp_path: Path,
) -> None:
    """--sync-fd (ADR 0034, 0035): the server fdatasyncs the file it was given (the
    journal's write-ahead log) before the jobs of a batch start, while it makes their
    claims durable; it holds the descriptor, no job gets it; and when that fdatasync
    fails, no job of the batch runs."""
    runner = Runner(tmp_path, Settings("lh1", tmp_path, allow_root_jobs=True), claim_log=True)
    wal = tmp_path / "journal.db-wal"
    wal.write_bytes(b"frames")
    fd = os.open(wal, os.O_RDONLY | os.O_CLOEXEC)
    st = os.fstat(fd)
    try:
        assert runner.syncs((fd, st.st_dev, st.st_ino))
        jobdir, status = run_job(runner, "s" + "1" * 20, ["sh", "-c", "ls /proc/self/fd | wc -l"])
        assert status is not None and status["exit_code"] == 0, status
        assert (jobdir / "stdout").read_text() == "4\n"  # 0, 1, 2 and ls's own
        held = [os.readlink(p) for p in Path(f"/proc/{runner.server_pid}/fd").iterdir()]
        assert str(wal) in held
        assert runner.syncs((fd, st.st_dev, st.st_ino))
        assert not runner.syncs((fd, st.st_dev, st.st_ino + 1))  # not the file it syncs
        assert not runner.syncs(None)
    finally:
        runner.close()
        os.close(fd)

    other = tmp_path / "other"
    other.mkdir()
    runner = Runner(other, Settings("lh1", other, allow_root_jobs=True), claim_log=True)
    rd, wr = os.pipe()  # fdatasync refuses a pipe: EINVAL
    st = os.fstat(rd)
    try:
        assert runner.syncs((rd, st.st_dev, st.st_ino))
        marker = tmp_path / "ran"
        _, status = run_job(runner, "s" + "2" * 20, ["/bin/sh", "-c", f"touch {marker}"])
        assert status is not None and status["exit_code"] is None
        assert status["failed_to_start"].startswith("could not record the start"), status
        assert "Invalid argument" in status["failed_to_start"]
        assert not marker.exists()
    finally:
        runner.close()
        os.close(rd)
        os.close(wr)
