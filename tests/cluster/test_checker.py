"""The failover checker, tested itself (no root, no cluster).

A real logical host (real daemon, SQLite, processes) runs the failover workload and
"crashes" the way a node does (daemon, supervisors and jobs SIGKILLed), restarts hot,
has its unknown unit released and drains. Its ledger and journal must pass the checker;
the same data with one defect each (a double run, a lost run, a run that never ran, a
judge verdict not followed, an unknown that did not hold, a stale epoch's write, ...)
must fail it, each for its own rule.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import checker
import pytest
import workload
from lhost import LogicalHost, wait_for

from ajs3 import model


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One clean run, then one run crashed while its long jobs ran; released; drained."""
    base = tmp_path_factory.mktemp("checker")
    ledger_dir = base / "ledger"
    ledger_dir.mkdir()
    host = LogicalHost(base, "lhc")
    lpath = Path(workload.ledger_path(ledger_dir, "lhc"))
    try:
        host.start()
        host.define(
            workload.definitions_text("lhc", ledger_dir, long_s=2.0, short_s=0.05, burst=2),
            name=workload.DEFS_FILE,
        )
        runs = []
        for _ in range(2):
            run = host.entry(workload.ROOT)
            workload.append(ledger_dir, "lhc", "entry", "lhc", workload.ROOT, run, "vm")
            runs.append(run)
            if len(runs) == 1:
                host.wait(run, 60)
        # every long job of the second run is running: crash
        wait_for(
            lambda: (
                sum(
                    f"/long {runs[1]} " in line
                    for line in (lpath.read_text().splitlines() if lpath.exists() else [])
                    if line.startswith("start")
                )
                >= 4
            ),
            30,
            "the long jobs to start",
        )
        host.crash()
        host.start("hot")
        unknown = f"{workload.ROOT}/unknown/long"
        wait_for(lambda: host.units(runs[1])[unknown]["status"] == "unknown", 30, "unknown")
        time.sleep(0.5)  # give a successor the chance to (wrongly) start
        workload.append(ledger_dir, "lhc", "release", "lhc", runs[1], unknown, "normal")
        host.run("release", unknown, "--run", str(runs[1]), "--as", "normal")
        host.wait(runs[1], 60)
        read_at = time.time()
        led = lpath.read_text()
        journal = checker.read_journal(host.datadir / "journal.db")
        yield {
            "ledger": led,
            "journal": journal,
            "read_at": read_at,
            "runs": runs,
            "host": host,
            "ledger_path": lpath,
        }
    finally:
        host.cleanup()


def run_check(
    data: dict[str, Any],
    ledger: str | None = None,
    journal: checker.Journal | None = None,
    final: bool = True,
) -> checker.Report:
    return checker.check(
        checker.read_ledger(data["ledger"] if ledger is None else ledger),
        journal or data["journal"],
        lhost="lhc",
        final=final,
        ledger_read_at=data["read_at"],
    )


def rules(report: checker.Report) -> set[str]:
    return {p.rule for p in report.problems}


# --------------------------------------------------------------------------- clean


def test_a_crash_handled_per_policy_passes(crashed: dict[str, Any]) -> None:
    rep = run_check(crashed)
    assert rep.ok, rep.text()
    # ... and the crash really exercised every policy
    doubt = rep.summary["in_doubt"]
    assert {"fail->killed", "unknown->unknown", "rerun->waiting", "judge->waiting"} <= set(doubt), (
        rep.text()
    )
    assert rep.summary["checks"] == 1 and rep.summary["epochs"] == 2
    assert rep.summary["integrity"] == "ok"


def test_the_cli_agrees(crashed: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    db = crashed["host"].datadir / "journal.db"
    assert (
        checker.main(
            [
                "--ledger",
                str(crashed["ledger_path"]),
                "--journal",
                str(db),
                "--lhost",
                "lhc",
                "--final",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_a_journal_dump_round_trips(crashed: dict[str, Any], tmp_path: Path) -> None:
    dump = tmp_path / "j.json"
    dump.write_text(json.dumps(crashed["journal"].to_json()))
    again = checker.Journal.from_json(json.loads(dump.read_text()))
    assert run_check(crashed, journal=again).ok


def test_the_checker_reads_codes_not_wording(crashed: dict[str, Any]) -> None:
    # every message reworded: the verdict and what it counted stay the same
    j = copy.deepcopy(crashed["journal"])
    for ev in j.events:
        ev["reason"] = "reworded"
    for u in j.units.values():
        u["reason"] = "reworded"
    rep = run_check(crashed, journal=j)
    assert rep.ok, rep.text()
    assert rep.summary == run_check(crashed).summary
    # and every event of the crashed journal has a code
    assert all(ev["code"] in set(model.ReasonCode) for ev in crashed["journal"].events)


def test_the_checker_spells_the_engine_s_statuses_and_codes() -> None:
    # it runs with the standard library alone, so it has its own copy: they must agree
    assert {s.value for s in model.FINAL} == checker.FINAL
    assert {c.value for c in model.IN_DOUBT} == checker.IN_DOUBT
    codes = {c.value for c in model.ReasonCode}
    assert {checker.NEVER_STARTED, checker.RETRY, checker.DECIDED_BY_OPERATOR} <= codes


# --------------------------------------------------------------------------- defects


def _lines(data: dict[str, Any]) -> list[str]:
    return list(data["ledger"].splitlines())


def test_a_double_run_fails(crashed: dict[str, Any]) -> None:
    lines = _lines(crashed)
    # the fail-policy job that was killed in the crash ran again on another node
    victim = next(
        line
        for line in lines
        if line.startswith("start") and "/fail/long" in line and f" {crashed['runs'][1]} " in line
    )
    f = victim.split()
    again = " ".join([*f[:3], "2", "node9", *f[5:7], f"{float(f[7]) + 5:.6f}"])
    rep = run_check(crashed, "\n".join([*lines, again]) + "\n")
    assert "double-start" in rules(rep), rep.text()


def _fail_long(crashed: dict[str, Any]) -> tuple[Any, int, list[str], list[str]]:
    """A copy of the journal, the crashed run's fail-policy long job (its unit run id),
    the ledger's lines, and that job's start line split into fields."""
    j = copy.deepcopy(crashed["journal"])
    uid = next(
        i
        for i, u in j.units.items()
        if u["path"].endswith("/fail/long") and u["jobnet_run"] == crashed["runs"][1]
    )
    lines = _lines(crashed)
    s = next(
        line.split()
        for line in lines
        if line.startswith("start") and f" {crashed['runs'][1]} " in line and "/fail/long" in line
    )
    return j, uid, lines, s


def test_a_second_attempt_without_the_policy_fails(crashed: dict[str, Any]) -> None:
    # pretend the journal reran the fail-policy job: its killed run starts as attempt 2
    j, uid, lines, s = _fail_long(crashed)
    j.events.append(
        {
            "id": 10**6,
            "at": time.time(),
            "epoch": 2,
            "unit_run": uid,
            "run_id": "rXXX",
            "attempt": 2,
            "old": "waiting",
            "new": "running",
            "reason": "started",
            "code": "started",
        }
    )
    extra = " ".join(["start", "rXXX", "2", "2", s[4], s[5], s[6], f"{float(s[7]) + 9:.6f}"])
    rep = run_check(crashed, "\n".join([*lines, extra]) + "\n", j)
    assert "rerun-not-allowed" in rules(rep), rep.text()


def _never_started_then_attempt_2(crashed: dict[str, Any], attempt_1_ran: bool) -> checker.Report:
    """The fail-policy job's crashed run, recorded as never started and run as attempt 2."""
    j, uid, lines, s = _fail_long(crashed)
    if not attempt_1_ran:
        lines = [
            line
            for line in lines
            if line.split()[:2] != ["start", s[1]] and line.split()[:2] != ["end", s[1]]
        ]
    j.events.append(
        {
            "id": 10**6,
            "at": time.time(),
            "epoch": 2,
            "unit_run": uid,
            "run_id": s[1],
            "attempt": 1,
            "old": "running",
            "new": "waiting",
            "reason": "recorded but never started; restarted",
            "code": "never-started",
        }
    )
    j.events.append(
        {
            "id": 10**6 + 1,
            "at": time.time(),
            "epoch": 2,
            "unit_run": uid,
            "run_id": "rXXX",
            "attempt": 2,
            "old": "waiting",
            "new": "running",
            "reason": "started",
            "code": "started",
        }
    )
    extra = " ".join(["start", "rXXX", "2", "2", s[4], s[5], s[6], f"{float(s[7]) + 9:.6f}"])
    return run_check(crashed, "\n".join([*lines, extra]) + "\n", j)


def test_a_second_attempt_after_a_start_that_never_happened_is_allowed(
    crashed: dict[str, Any],
) -> None:
    rep = _never_started_then_attempt_2(crashed, attempt_1_ran=False)
    assert not {"rerun-not-allowed", "double-start", "unrecorded-start"} & rules(rep), rep.text()


def test_a_never_started_attempt_that_did_run_fails(crashed: dict[str, Any]) -> None:
    rep = _never_started_then_attempt_2(crashed, attempt_1_ran=True)
    assert "double-start" in rules(rep), rep.text()


def test_a_lost_run_fails(crashed: dict[str, Any]) -> None:
    # An entry the CLI confirmed, that the journal does not have.
    lost = f"entry lhc {workload.ROOT} 99 vm {time.time():.6f}"
    rep = run_check(crashed, crashed["ledger"] + lost + "\n")
    assert "lost" in rules(rep), rep.text()


def test_a_run_the_journal_dropped_fails(crashed: dict[str, Any]) -> None:
    j = copy.deepcopy(crashed["journal"])
    gone = crashed["runs"][0]
    j.runs.pop(gone)
    j.units = {i: u for i, u in j.units.items() if u["jobnet_run"] != gone}
    j.events = [e for e in j.events if e["unit_run"] in j.units]
    rep = run_check(crashed, journal=j)
    assert {"lost", "unrecorded-start"} <= rules(rep), rep.text()


def test_a_run_that_never_ran_fails(crashed: dict[str, Any]) -> None:
    # The journal says a burst job ended normally, but the job never wrote anything.
    rid = next(
        u["run_id"]
        for u in crashed["journal"].units.values()
        if u["path"].endswith("/burst/s0") and u["status"] == "ended_normally"
    )
    lines = [line for line in _lines(crashed) if f" {rid} " not in line]
    rep = run_check(crashed, "\n".join(lines) + "\n")
    assert "ran-not-recorded" in rules(rep), rep.text()


def test_an_exit_code_lost_or_changed_fails(crashed: dict[str, Any]) -> None:
    j = copy.deepcopy(crashed["journal"])
    ended = [u for u in j.units.values() if u["kind"] == "job" and u["exit_code"] == 0]
    ended[0]["exit_code"] = None
    ended[1]["exit_code"] = 3
    rep = run_check(crashed, journal=j)
    assert [p.rule for p in rep.problems] == ["exit-code", "exit-code"], rep.text()


def test_a_judge_verdict_not_followed_fails(crashed: dict[str, Any]) -> None:
    lines = _lines(crashed)
    # the check said "done" (0) where the job had not ended: wrong verdict, and the
    # journal (which reran it) did not follow it
    forged = [line.replace(" 1 ", " 0 ", 1) if line.startswith("check") else line for line in lines]
    assert forged != lines
    rep = run_check(crashed, "\n".join(forged) + "\n")
    assert "judge-check" in rules(rep), rep.text()
    # no check line at all: the journal claims a check that never ran
    rep = run_check(crashed, "\n".join(x for x in lines if not x.startswith("check")) + "\n")
    assert "judge-check" in rules(rep), rep.text()


def test_an_unknown_that_did_not_hold_fails(crashed: dict[str, Any]) -> None:
    lines = _lines(crashed)
    rel = next(i for i, line in enumerate(lines) if line.startswith("release"))
    # the release came only after the successor had started
    moved = (
        lines[:rel]
        + lines[rel + 1 :]
        + [" ".join([*lines[rel].split()[:-1], f"{time.time() + 100:.6f}"])]
    )
    rep = run_check(crashed, "\n".join(moved) + "\n")
    assert "unknown-not-held" in rules(rep), rep.text()
    # never released at all, with nothing run after it: unfinished in the final check
    j = copy.deepcopy(crashed["journal"])
    unknown = next(
        u
        for u in j.units.values()
        if u["path"].endswith("/unknown/long") and u["jobnet_run"] == crashed["runs"][1]
    )
    unknown["status"] = "unknown"
    no_release = [x for x in lines if not x.startswith("release") and "/unknown/after" not in x]
    rep = run_check(crashed, "\n".join(no_release) + "\n", j)
    assert "unknown-not-released" in rules(rep), rep.text()


def test_writes_of_an_older_epoch_fail(crashed: dict[str, Any]) -> None:
    j = copy.deepcopy(crashed["journal"])
    new_epoch = j.epochs[-1]["started_at"]
    ev = next(e for e in j.events if e["epoch"] == 1)
    ev["at"] = new_epoch + 1.0
    rep = run_check(crashed, journal=j)
    assert rules(rep) == {"stale-epoch-write"}, rep.text()
    # a job of epoch 1 started on a cut-off node after epoch 2 began elsewhere
    j2 = copy.deepcopy(crashed["journal"])
    j2.epochs[-1]["node"] = "elsewhere"
    s = next(
        line.split() for line in _lines(crashed) if line.startswith("start") and " 1 1 " in line
    )
    zombie_end = " ".join(["end", *s[1:7], f"{new_epoch + 2:.6f}", "0"])
    rep = run_check(crashed, crashed["ledger"] + zombie_end + "\n", j2)
    assert "zombie" in rules(rep), rep.text()


def test_a_damaged_journal_fails(crashed: dict[str, Any]) -> None:
    j = copy.deepcopy(crashed["journal"])
    j.integrity = "*** in database main ***\nPage 7: btreeInitPage() returns error code 11"
    assert rules(run_check(crashed, journal=j)) == {"integrity"}


def test_unfinished_runs_fail_only_the_final_check(crashed: dict[str, Any]) -> None:
    j = copy.deepcopy(crashed["journal"])
    root = next(u for u in j.units.values() if u["path"] == workload.ROOT)
    root["status"] = "running"
    assert run_check(crashed, journal=j, final=False).ok
    assert "unfinished" in rules(run_check(crashed, journal=j, final=True))


def test_a_malformed_ledger_line_fails(crashed: dict[str, Any]) -> None:
    rep = run_check(crashed, crashed["ledger"] + "start rX 1\n")
    assert rules(rep) == {"malformed"}


def test_a_job_on_an_execution_host_may_outlive_its_owner_s_node(crashed: dict[str, Any]) -> None:
    """Issue 16: a job on an execution host is re-adopted by the new owner; its end line
    of the old epoch, written after the new epoch began, is no zombie. The same line
    from a node is."""
    j = copy.deepcopy(crashed["journal"])
    new_epoch = j.epochs[-1]["started_at"]
    j.epochs[-1]["node"] = "elsewhere"
    s = next(
        line.split() for line in _lines(crashed) if line.startswith("start") and " 1 1 " in line
    )
    rid = s[1]
    late_end = " ".join(["end", rid, *s[2:4], "xh1", *s[5:7], f"{new_epoch + 2:.6f}", "0"])
    led = crashed["ledger"].replace(" ".join(s), " ".join([*s[:4], "xh1", *s[5:]])) + late_end
    unit = next(u for u in j.units.values() if u["run_id"] == rid)
    unit["exec_host"] = "xh1"
    rep = run_check(crashed, led + "\n", j)
    assert "zombie" not in rules(rep), rep.text()
    unit["exec_host"] = None  # the journal says it ran on a node: then it is one
    assert "zombie" in rules(run_check(crashed, led + "\n", j))


def test_only_group_keeps_the_runs_of_one_group(crashed: dict[str, Any]) -> None:
    j = crashed["journal"]
    mine = checker.only_group(j, workload.GROUP)
    assert mine.runs == j.runs and len(mine.events) == len(j.events)
    none = checker.only_group(j, "/elsewhere")
    assert not none.runs and not none.units and not none.events
    assert none.epochs == j.epochs
