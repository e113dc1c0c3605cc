"""The supervisor server is killed with SIGKILL at random moments while the daemon lives.

What the promise says of it (docs/design.md rules 4 and 5, ADR 0030): the server is
the supervisor of every job the daemon started; killed, it leaves the end of each job
it had not recorded yet unknown, so each of those jobs is in doubt and its own
``on_failover`` policy decides, exactly as after a node crash: ``fail`` kills it (its
process group) and runs nothing again, ``rerun`` starts the next attempt under a new
run id. An end recorded before the kill is not lost. The daemon starts a new server
for the jobs after. In no case does one run id start twice, and every end the journal
records is the one the job itself wrote.

Where each kill lands (before a claim, between a claim and its job's start, while they run,
after an end) is left to chance; every outcome the promise allows is accepted, and
the checks below hold for each of them.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
from lhost import FINAL

from ajs3.engine import native

JOBS = 12
ROUNDS = 10
KILLS_PER_ROUND = 3


def definitions(ledger: Path) -> str:
    """Jobs of 0.3 s to 1.4 s; even ones with the default policy (fail), odd ones
    declared idempotent (rerun)."""
    units = []
    for i in range(JOBS):
        policy = "rerun" if i % 2 else "fail"
        units.append(
            f"""
              - name: job{i:02d}
                on_failover: {policy}
                script: 'echo "start $AJS3_UNIT $AJS3_RUN_ID $AJS3_ATTEMPT" >> {ledger};
                  sleep {0.3 + (i % 4) * 0.35:.2f};
                  echo "end $AJS3_UNIT $AJS3_RUN_ID" >> {ledger}'"""
        )
    return "group: /sup\njobnets:\n  - name: wide\n    units:" + "".join(units) + "\n"


def supervisors(daemon_pid: int) -> list[psutil.Process]:
    """The daemon's live supervisor server (its child of that name, with jobs of its
    own): a process this test started, found by pid."""
    name = native.BINARY[:15]
    try:
        return [
            p for p in psutil.Process(daemon_pid).children() if p.name() == name and p.children()
        ]
    except psutil.Error:
        return []


def kill_some(host: Any, run: int, rng: random.Random) -> int:
    """Kill the server up to KILLS_PER_ROUND times at random moments while the run
    lasts (while it has jobs); returns how many times it was killed."""
    pid = host.daemon_pid()
    assert pid is not None
    kills = 0
    end = time.monotonic() + 60
    while kills < KILLS_PER_ROUND and time.monotonic() < end:
        time.sleep(rng.uniform(0.0, 0.3))
        alive = supervisors(pid)
        if not alive:
            if host.units(run)["/sup/wide"]["status"] in FINAL:
                break
            continue
        victim = rng.choice(alive)
        try:
            os.kill(victim.pid, signal.SIGKILL)
            kills += 1
        except ProcessLookupError:
            pass
    return kills


def ledger_lines(ledger: Path) -> list[list[str]]:
    if not ledger.exists():
        return []
    return [line.split() for line in ledger.read_text().splitlines() if line.strip()]


def test_supervisors_killed_at_random_leave_jobs_in_doubt_never_twice(
    make_lhost: Any, tmp_path: Path
) -> None:
    host = make_lhost("sup")
    ledger = tmp_path / "ledger.txt"
    host.start()
    host.define(definitions(ledger))
    in_doubt = Counter[str]()
    killed_total = 0
    for round_no in range(ROUNDS):
        rng = random.Random(round_no)
        ledger.unlink(missing_ok=True)
        run = host.entry("/sup/wide")
        killed_total += kill_some(host, run, rng)
        data = host.wait(run, timeout=120)

        lines = ledger_lines(ledger)
        starts = Counter(parts[2] for parts in lines if parts[0] == "start")
        ends = {parts[2] for parts in lines if parts[0] == "end"}
        twice = [rid for rid, n in starts.items() if n > 1]
        assert not twice, f"round {round_no}: run ids started twice: {twice}"

        doubted = {
            (path, rid): attempt
            for path, rid, attempt in host.journal_query(
                "SELECT u.path, e.run_id, e.attempt FROM events e JOIN unit_runs u"
                " ON u.id = e.unit_run WHERE u.jobnet_run = ? AND e.code = 'supervisor-died'",
                (run,),
            )
        }
        # a start the dead server never answered: it never started (voided), and the
        # run waits for a new attempt
        never = Counter(
            path
            for (path,) in host.journal_query(
                "SELECT u.path FROM events e JOIN unit_runs u ON u.id = e.unit_run"
                " WHERE u.jobnet_run = ? AND e.code = 'never-started'",
                (run,),
            )
        )
        for path, _rid in doubted:
            in_doubt["rerun" if int(path[-2:]) % 2 else "fail"] += 1

        for unit in (u for u in data["units"] if u["kind"] == "job"):
            index = int(unit["path"][-2:])
            mine = [p for p in lines if p[0] == "start" and p[1] == unit["path"]]
            if unit["status"] == "ended_normally":
                # its end is the one the job wrote: it started once under this run id
                # and got to its last line
                assert unit["exit_code"] == 0, unit
                assert starts[unit["run_id"]] == 1 and unit["run_id"] in ends, (round_no, unit)
            elif index % 2 == 0:
                # policy fail: in doubt, killed, never started again (an attempt that
                # never started does not count)
                first = str(1 + never[unit["path"]])
                assert unit["status"] == "killed", (round_no, unit)
                assert (unit["path"], unit["run_id"]) in doubted, (round_no, unit)
                assert len(mine) <= 1 and all(p[3] == first for p in mine), (round_no, mine)
            else:
                raise AssertionError(f"round {round_no}: rerun job did not end normally: {unit}")
            if index % 2 == 1:
                # policy rerun: one attempt more per end lost and per start never
                # made, each run id once
                lost = sum(1 for p, _ in doubted if p == unit["path"])
                assert unit["attempt"] == 1 + lost + never[unit["path"]], (round_no, unit)
    # Over ten rounds the kills did land while jobs ran, for both policies.
    assert killed_total >= ROUNDS
    assert in_doubt["fail"] > 0 and in_doubt["rerun"] > 0, in_doubt


def test_a_request_the_server_never_read_starts_once_under_the_next_attempt(
    make_lhost: Any, tmp_path: Path
) -> None:
    """The daemon does not wait for the server (ADR 0031). A request written to a server
    that dies before it reads it leaves no start record: the job never started, so even
    under policy ``fail`` it is not in doubt; the daemon claims the run (a void record)
    and the job starts under the next attempt, once."""
    host = make_lhost("unread")
    ledger = tmp_path / "ledger.txt"
    host.start()
    host.define(
        f"""group: /u
jobnets:
  - name: warm
    units:
      - {{name: job, command: [/bin/true]}}
  - name: late
    units:
      - name: job
        on_failover: fail
        script: 'echo "start $AJS3_RUN_ID $AJS3_ATTEMPT" >> {ledger}'
"""
    )
    host.wait(host.entry("/u/warm"))  # the server is up
    daemon = host.daemon_pid()
    assert daemon is not None
    name = native.BINARY[:15]
    (server,) = [p for p in psutil.Process(daemon).children() if p.name() == name]
    os.kill(server.pid, signal.SIGSTOP)
    try:
        run = host.entry("/u/late")
        end = time.monotonic() + 30
        while host.units(run)["/u/late/job"]["status"] != "running":
            assert time.monotonic() < end, "the job's start was never recorded"
            time.sleep(0.05)
        # The request follows the commit of its intent at once; whether it was written
        # before the kill or not, the server never reads it, and either way the run
        # was never claimed by a supervisor.
        time.sleep(0.5)
    finally:
        os.kill(server.pid, signal.SIGKILL)
    data = host.wait(run)
    (job,) = [u for u in data["units"] if u["kind"] == "job"]
    assert job["status"] == "ended_normally" and job["attempt"] == 2, job
    lines = ledger.read_text().split("\n")
    assert lines == [f"start {job['run_id']} 2", ""], lines
    codes = [
        code
        for (code,) in host.journal_query(
            "SELECT e.code FROM events e JOIN unit_runs u ON u.id = e.unit_run"
            " WHERE u.jobnet_run = ? AND e.code IN ('never-started', 'supervisor-died')",
            (run,),
        )
    ]
    assert codes == ["never-started"], codes
