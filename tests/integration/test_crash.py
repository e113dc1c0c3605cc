"""The daemon is killed with SIGKILL while 50 jobs run; a hot start loses nothing.

Design rules 1 and 4: a run is recorded before its process starts; a job's exit
status is written by its own supervisor, so it survives the daemon; a restarted daemon
re-adopts the jobs still running and collects those that ended meanwhile.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from lhost import wait_for

JOBS = 50


def definitions(ledger: Path, flag: Path) -> str:
    """50 jobs of 0.3 s to 2.7 s, and five that run until the test creates ``flag``
    after the restart (so some are running then, however slow the machine)."""
    units = []
    for i in range(JOBS):
        if i % 10 == 9:
            pause = f"while [ ! -e {flag} ]; do sleep 0.05; done"
        else:
            pause = f"sleep {0.3 + (i % 10) * 0.3:.1f}"
        units.append(
            f"""
              - name: job{i:02d}
                script: 'echo "start $AJS3_UNIT $AJS3_RUN_ID $AJS3_ATTEMPT" >> {ledger};
                  {pause}; echo "end $AJS3_UNIT $AJS3_RUN_ID" >> {ledger}'"""
        )
    return "group: /crash\njobnets:\n  - name: wide\n    units:" + "".join(units) + "\n"


def ledger_lines(ledger: Path) -> list[list[str]]:
    if not ledger.exists():
        return []
    return [line.split() for line in ledger.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("round_no", range(10))
def test_kill_9_daemon_with_50_jobs_running(make_lhost: Any, tmp_path: Path, round_no: int) -> None:
    rng = random.Random(round_no)
    host = make_lhost("crash")
    ledger, flag = tmp_path / "ledger.txt", tmp_path / "restarted"
    (host.datadir / "definitions" / "crash.yaml").write_text(definitions(ledger, flag))
    host.start()
    host.run("define")
    run = host.entry("/crash/wide")
    if round_no % 2 == 0:
        # every job is running, none has ended yet
        wait_for(lambda: len(ledger_lines(ledger)) >= JOBS, 30, "all jobs to start")
    else:
        # somewhere in the middle of launching: some recorded, some not yet started
        time.sleep(rng.uniform(0.0, 0.25))
    pid = host.daemon_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    if round_no % 2 == 0:  # some jobs end while no daemon runs
        wait_for(lambda: any(p[0] == "end" for p in ledger_lines(ledger)), 30, "a job to end")
    else:
        time.sleep(1.2)
    host.start("hot")
    flag.touch()  # the jobs still running at the restart may end now
    data = host.wait(run, timeout=60)

    units = [u for u in data["units"] if u["kind"] == "job"]
    assert len(units) == JOBS
    bad = [(u["path"], u["status"], u["reason"]) for u in units if u["status"] != "ended_normally"]
    assert not bad, bad
    assert all(u["exit_code"] == 0 for u in units)

    lines = ledger_lines(ledger)
    starts = Counter(parts[1] for parts in lines if parts[0] == "start")
    ends = Counter(parts[1] for parts in lines if parts[0] == "end")
    assert len(starts) == JOBS and set(starts.values()) == {1}, "a job started twice"
    assert starts == ends
    # the run id a job saw is the one the journal recorded for its (only) start
    seen = {parts[1]: parts[2] for parts in lines if parts[0] == "start"}
    assert all(seen[u["path"]] == u["run_id"] for u in units)

    log = (host.datadir / "log" / "ajs3.log").read_text()
    if round_no % 2 == 0:
        # the restart really had both kinds of job to deal with
        assert "re-adopted a running job" in log
        assert "collected a status written while the daemon was down" in log

    conn = sqlite3.connect(str(host.datadir / "journal.db"))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        epochs = conn.execute("SELECT count(*) FROM epochs").fetchone()[0]
    finally:
        conn.close()
    assert epochs == 2
