"""A job whose end is in doubt gets its own recovery policy (docs/design.md rule 5).

Here the "node" dies with the daemon: the daemon, the job's supervisor and the job
are all killed with SIGKILL, so nothing recorded the job's end. A hot start must
then follow each job's `on_failover` policy, never silently run it again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from lhost import run_started

DEFS = """
    jobnets:
      - name: net
        units:
          - name: work
            script: |
              echo "start $AJS3_RUN_ID $AJS3_ATTEMPT" >> {ledger}
              [ $AJS3_ATTEMPT -gt 1 ] || sleep 30
            on_failover: {policy}
            {check}
          - name: after
            after: [work]
            command: [/bin/true]
"""


def kill_everything(host: Any, run: int) -> str:
    """What a node crash does: the daemon, the supervisor and the job die together and
    nothing records the job's end (tests/lhost.py: frozen first, then killed)."""
    run_id = host.units(run)["/net/work"]["run_id"]
    host.crash()
    return str(run_id)


def wait_started(ledger: Path, count: int) -> None:
    end = time.monotonic() + 20
    while time.monotonic() < end:
        if ledger.exists() and len(ledger.read_text().splitlines()) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("job did not start")


def setup(make_lhost: Any, tmp_path: Path, policy: str, check: str = "") -> tuple[Any, Path, int]:
    """A logical host whose job `work` has started and is still running: the first
    attempt runs 30 s (so a crash on a busy machine still meets it running), a rerun
    ends at once."""
    host = make_lhost("fo")
    ledger = tmp_path / "ledger"
    host.start()
    host.define(DEFS.format(ledger=ledger, policy=policy, check=check))
    run = host.entry("/net")
    wait_started(ledger, 1)
    return host, ledger, run


def test_policy_fail_marks_it_killed_and_runs_nothing_again(
    make_lhost: Any, tmp_path: Path
) -> None:
    host, ledger, run = setup(make_lhost, tmp_path, "fail")
    kill_everything(host, run)
    host.start("hot")
    units = host.wait(run)["units"]
    by = {u["path"]: u for u in units}
    assert by["/net/work"]["status"] == "killed"
    assert "recovery policy fail" in by["/net/work"]["reason"]
    assert by["/net/after"]["status"] == "not_executed"
    assert len(ledger.read_text().splitlines()) == 1


def test_a_start_record_of_another_node_is_in_doubt(make_lhost: Any, tmp_path: Path) -> None:
    """A job that ran on a node that crashed (its claim and start record name that
    node): taken over by another node, the run is in doubt (its policy decides), not
    re-adopted and not started again."""
    host, ledger, run = setup(make_lhost, tmp_path, "fail")
    run_id = kill_everything(host, run)
    started = run_started(host.datadir, run_id, wait=0)
    assert started is not None and isinstance(started["job_pid"], int)  # the job ran
    here = str(started["host"]).encode()
    logs = [*(host.datadir / "claims").glob("*.log"), *(host.datadir / "claims").glob("*.records")]
    for log in logs:  # what another node reads: the logs of the node that crashed
        log.write_bytes(log.read_bytes().replace(here, b"n1/b00t/pid:[1]"))
    host.start("hot")
    by = {u["path"]: u for u in host.wait(run)["units"]}
    assert by["/net/work"]["status"] == "killed", by["/net/work"]
    assert "running on n1, lost in a failover" in by["/net/work"]["reason"]
    assert len(ledger.read_text().splitlines()) == 1


@pytest.mark.parametrize("left", ["no record log", "no start record"])
def test_a_run_in_the_claim_log_of_another_node_is_in_doubt(
    make_lhost: Any, tmp_path: Path, left: str
) -> None:
    """The claim is made durable by its run id in the server's claim log, and its job's
    start record (a line of the server's record log) is not fsynced (ADR 0039): a node
    that crashed may lose it. Taken over by another node, a run its log names is in
    doubt (its policy decides), not started again as one that never ran; once it is
    decided, the log goes."""
    host, ledger, run = setup(make_lhost, tmp_path, "fail")
    run_id = kill_everything(host, run)
    (log,) = (host.datadir / "claims").glob("*.log")
    data = log.read_bytes()
    assert f"\n{run_id}\n".encode() in data  # logged by the server before the job ran
    # What the disk may hold after the crash of its node, read from another node.
    body = data.partition(b"\n")[2]
    log.write_bytes(b"ajs3-claims 1 n1/b00t/pid:[1]\n" + body)
    for records in (host.datadir / "claims").glob("*.records"):
        if left == "no record log":
            records.unlink()
        else:
            lines = records.read_bytes().splitlines(keepends=True)
            records.write_bytes(b"".join(x for x in lines if run_id.encode() not in x))
    assert run_started(host.datadir, run_id, wait=0) is None
    host.start("hot")
    by = {u["path"]: u for u in host.wait(run)["units"]}
    assert by["/net/work"]["status"] == "killed", by["/net/work"]
    assert "running on n1, lost in a failover" in by["/net/work"]["reason"]
    assert by["/net/after"]["status"] == "not_executed"
    assert len(ledger.read_text().splitlines()) == 1
    assert not log.exists()  # decided: no recovery needs it any more


def test_policy_unknown_holds_the_jobnet_until_an_operator_decides(
    make_lhost: Any, tmp_path: Path
) -> None:
    host, ledger, run = setup(make_lhost, tmp_path, "unknown")
    kill_everything(host, run)
    host.start("hot")
    time.sleep(1.0)
    by = host.units(run)
    assert by["/net/work"]["status"] == "unknown"
    assert by["/net"]["status"] == "running"
    assert by["/net/after"]["status"] == "waiting"
    why = host.run("show", "--why", "/net/after").stdout
    assert "work" in why
    host.run("release", "/net/work", "--as", "normal")
    assert host.wait(run)["units"][0]["status"] == "ended_normally"
    assert host.units(run)["/net/after"]["status"] == "ended_normally"
    assert len(ledger.read_text().splitlines()) == 1


def test_policy_rerun_starts_it_again_with_the_next_attempt(
    make_lhost: Any, tmp_path: Path
) -> None:
    host, ledger, run = setup(make_lhost, tmp_path, "rerun")
    first = kill_everything(host, run)
    host.start("hot")
    host.wait(run)
    by = host.units(run)
    assert by["/net/work"]["status"] == "ended_normally"
    assert by["/net/work"]["attempt"] == 2
    lines = [line.split() for line in ledger.read_text().splitlines()]
    assert [(p[1], p[2]) for p in lines] == [(first, "1"), (by["/net/work"]["run_id"], "2")]
    assert first != by["/net/work"]["run_id"]


@pytest.mark.parametrize(
    "verdict,status,starts",
    [
        (0, "ended_normally", 1),
        (1, "ended_normally", 2),
        (2, "ended_abnormally", 1),
    ],
)
def test_policy_judge_runs_the_check_with_the_run_identity(
    make_lhost: Any, tmp_path: Path, verdict: int, status: str, starts: int
) -> None:
    seen = tmp_path / "check-saw"
    check = (
        f'failover_check: [/bin/sh, -c, \'echo "$AJS3_RUN_ID $AJS3_CHECK" > {seen}; '
        f"exit {verdict}']"
    )
    host, ledger, run = setup(make_lhost, tmp_path, "judge", check=check)
    run_id = kill_everything(host, run)
    host.start("hot")
    host.wait(run)
    assert seen.read_text().split() == [run_id, "failover"]
    by = host.units(run)
    assert by["/net/work"]["status"] == status
    assert len(ledger.read_text().splitlines()) == starts
