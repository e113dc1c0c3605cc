"""Timeouts kill a job's whole process group; retries run a job again with a new run id."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pgid: int, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not group_alive(pgid):
            return True
        time.sleep(0.05)
    return not group_alive(pgid)


def test_timeout_kills_the_whole_process_group(lhost: Any, tmp_path: Path) -> None:
    lhost.define("""
        group: /t
        jobnets:
          - name: plain
            units:
              - {name: slow, command: [sh, -c, 'sleep 300 & sleep 300 & wait'],
                 timeout: 1, kill_grace: 1}
              - {name: next, after: [slow], command: [/bin/true]}
          - name: stubborn
            units:
              # TERM is ignored by the shell and by both sleeps (inherited): only KILL works
              - {name: slow, command: [sh, -c, 'trap "" TERM; sleep 300 & sleep 300 & wait'],
                 timeout: 1, kill_grace: 1}
          - name: orphan
            units:
              # the leader dies on TERM, one member of its group ignores TERM
              - {name: slow, command: [sh, -c, '(trap "" TERM; sleep 300) & sleep 300 & wait'],
                 timeout: 1, kill_grace: 1}
    """)
    runs = {name: lhost.entry(f"/t/{name}") for name in ("plain", "stubborn", "orphan")}
    for run in runs.values():
        lhost.wait(run, timeout=30)
    for name, run in runs.items():
        units = lhost.units(run)
        slow = units[f"/t/{name}/slow"]
        assert slow["status"] == "killed", (name, slow)
        assert units[f"/t/{name}"]["status"] == "ended_abnormally"
        pgid = slow["pgid"]
        assert isinstance(pgid, int) and pgid > 1
        # the kill is for the whole group: nothing of it may survive the job's end
        assert wait_gone(pgid, 3.0), f"{name}: process group {pgid} is still alive"
        took = slow["ended_at"] - slow["started_at"]
        if name == "stubborn":
            assert slow["signal"] == 9
            assert 1.8 <= took < 10, took  # timeout, then the grace, then KILL
        else:
            assert slow["signal"] == 15
            assert 0.9 <= took < 1.9, took
        assert "timed out" in lhost.json("show", "--why", f"/t/{name}/slow")["reason"]
    assert lhost.units(runs["plain"])["/t/plain/next"]["status"] == "not_executed"


def test_retry_until_success_with_a_new_run_id_each_attempt(lhost: Any, tmp_path: Path) -> None:
    counter, ids = tmp_path / "counter", tmp_path / "ids"
    lhost.define(f"""
        group: /r
        jobnets:
          - name: net
            units:
              - name: flaky
                script: |
                  n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}
                  echo "$AJS3_RUN_ID $AJS3_ATTEMPT $(date +%s.%N)" >> {ids}
                  [ $n -ge 3 ] || exit 1
                retry: {{count: 3, interval: 0.3, on_exit_codes: [1]}}
              - {{name: next, after: [flaky], command: [/bin/true]}}
    """)
    run = lhost.entry("/r/net")
    lhost.wait(run)
    units = lhost.units(run)
    flaky = units["/r/net/flaky"]
    assert flaky["status"] == "ended_normally"
    assert flaky["attempt"] == 3 and flaky["retries"] == 2
    assert units["/r/net/next"]["status"] == "ended_normally"
    assert units["/r/net"]["status"] == "ended_normally"
    lines = [line.split() for line in ids.read_text().splitlines()]
    assert [a for _, a, _ in lines] == ["1", "2", "3"]
    run_ids = [r for r, _, _ in lines]
    assert len(set(run_ids)) == 3
    assert run_ids[-1] == flaky["run_id"]
    times = [float(t) for _, _, t in lines]
    assert all(b - a >= 0.3 for a, b in itertools.pairwise(times)), times
    # an earlier attempt's output stays readable by its run id
    assert lhost.run("log", run_ids[0]).returncode == 0


def test_retry_only_on_the_listed_exit_codes(lhost: Any, tmp_path: Path) -> None:
    lhost.define("""
        group: /r
        jobnets:
          - name: other
            units:
              - {name: a, script: 'echo once; exit 2',
                 retry: {count: 3, interval: 0, on_exit_codes: [1]}}
          - name: always
            units:
              - {name: a, script: 'echo try; exit 4', retry: {count: 2, interval: 0}}
    """)
    other, always = lhost.entry("/r/other"), lhost.entry("/r/always")
    lhost.wait(other)
    lhost.wait(always)
    a = lhost.units(other)["/r/other/a"]
    assert (a["status"], a["exit_code"], a["attempt"], a["retries"]) == (
        "ended_abnormally",
        2,
        1,
        0,
    )
    b = lhost.units(always)["/r/always/a"]
    assert (b["status"], b["exit_code"], b["attempt"], b["retries"]) == (
        "ended_abnormally",
        4,
        3,
        2,
    )
