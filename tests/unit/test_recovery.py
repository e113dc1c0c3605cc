"""The recovery decision table (ADR 0001 and 0012) and the recovery policies (docs/design.md
rule 5), row by row, without a daemon."""

from __future__ import annotations

import itertools

import pytest

from ajs3.engine.recovery import (
    POLICIES,
    TABLE,
    Facts,
    Record,
    Verdict,
    decide,
    needs_check,
    on_failover,
)
from ajs3.model import FINAL, IN_DOUBT, ReasonCode, RecoveryPolicy, StartMode, Status

HOT, WARM, COLD = StartMode.HOT, StartMode.WARM, StartMode.COLD


def facts(
    status_file: bool = False,
    record: Record = Record.WHOLE,
    local: bool = False,
    alive: bool = False,
    mode: StartMode = HOT,
) -> Facts:
    return Facts(status_file, record, local=local, supervisor_alive=alive, mode=mode)


# Every row of ADR 0001's table, with ADR 0012's claim, as a person would read it.
ROWS = [
    # status.json written: whatever else is found, the end is known
    ("ended while down", facts(True, Record.WHOLE, True, False), Verdict.COLLECT, None, False),
    (
        "ended while down, another node",
        facts(True, Record.WHOLE, False),
        Verdict.COLLECT,
        None,
        False,
    ),
    ("ended, record gone", facts(True, Record.NONE), Verdict.COLLECT, None, False),
    # no start record: claim it before anything else (ADR 0012)
    ("no record", facts(record=Record.NONE), Verdict.CLAIM, None, False),
    ("no record, warm", facts(record=Record.NONE, mode=WARM), Verdict.CLAIM, None, False),
    # a void record: never started
    ("void", facts(record=Record.VOID), Verdict.RESTART, ReasonCode.NEVER_STARTED, False),
    (
        "void, warm",
        facts(record=Record.VOID, mode=WARM),
        Verdict.RESTART,
        ReasonCode.NEVER_STARTED,
        False,
    ),
    # none whole, but another node's or boot's claim log names the run (ADR 0033)
    (
        "logged elsewhere",
        facts(record=Record.LOGGED),
        Verdict.IN_DOUBT,
        ReasonCode.IN_DOUBT_AFTER_FAILOVER,
        False,
    ),
    # a supervisor holds the record and does not finish it
    ("held", facts(record=Record.HELD), Verdict.IN_DOUBT, ReasonCode.START_RECORD_HELD, False),
    # a whole record on this node
    ("alive, hot", facts(local=True, alive=True), Verdict.ADOPT, None, False),
    (
        "alive, warm",
        facts(local=True, alive=True, mode=WARM),
        Verdict.IN_DOUBT,
        ReasonCode.KILLED_BY_WARM_START,
        True,
    ),
    (
        "alive, cold",
        facts(local=True, alive=True, mode=COLD),
        Verdict.IN_DOUBT,
        ReasonCode.KILLED_BY_WARM_START,
        True,
    ),
    ("supervisor dead, hot", facts(local=True), Verdict.IN_DOUBT, ReasonCode.SUPERVISOR_DIED, True),
    (
        "supervisor dead, warm",
        facts(local=True, mode=WARM),
        Verdict.IN_DOUBT,
        ReasonCode.SUPERVISOR_DIED,
        True,
    ),
    # a whole record of another node: lost in a failover (its node was fenced)
    ("other node", facts(), Verdict.IN_DOUBT, ReasonCode.IN_DOUBT_AFTER_FAILOVER, False),
    (
        "other node, warm",
        facts(mode=WARM),
        Verdict.IN_DOUBT,
        ReasonCode.IN_DOUBT_AFTER_FAILOVER,
        False,
    ),
]


@pytest.mark.parametrize("name,found,verdict,code,kill", ROWS, ids=[r[0] for r in ROWS])
def test_each_case_gets_its_row(
    name: str, found: Facts, verdict: Verdict, code: ReasonCode | None, kill: bool
) -> None:
    row = decide(found)
    assert (row.verdict, row.code, row.kill) == (verdict, code, kill), row.meaning


def every_facts() -> list[Facts]:
    return [
        Facts(s, r, local=loc, supervisor_alive=alive, mode=m)
        for s, r, loc, alive, m in itertools.product(
            (True, False), Record, (True, False), (True, False), StartMode
        )
        if loc or not alive
    ]  # a supervisor is only seen alive on its own node


def test_the_table_is_total_and_its_rows_do_not_overlap() -> None:
    for found in every_facts():
        matching = [row for row in TABLE if row.matches(found)]
        assert len(matching) == 1, (found, [r.meaning for r in matching])


def test_every_row_is_reached_and_tested() -> None:
    reached = {id(decide(f)) for f in every_facts()}
    assert reached == {id(row) for row in TABLE}
    tested = {id(decide(found)) for _, found, *_ in ROWS}
    assert tested == reached


def test_a_job_is_never_started_twice() -> None:
    # Only a void record (the daemon's own claim) lets a run start again: a supervisor's
    # record, whole or being written, never does (docs/design.md rule 1, ADR 0012).
    for found in every_facts():
        if decide(found).verdict is Verdict.RESTART:
            assert found.record is Record.VOID and not found.status_file


def test_in_doubt_rows_say_why_and_kill_only_what_may_still_run_here() -> None:
    for row in TABLE:
        assert (row.verdict is Verdict.IN_DOUBT) == (row.code in IN_DOUBT)
        if row.kill:
            assert row.local is True and row.verdict is Verdict.IN_DOUBT


# -- the policies -----------------------------------------------------------------------

POLICY_ROWS = [
    (RecoveryPolicy.FAIL, None, Status.KILLED),
    (RecoveryPolicy.UNKNOWN, None, Status.UNKNOWN),
    (RecoveryPolicy.RERUN, None, Status.WAITING),
    (RecoveryPolicy.JUDGE, 0, Status.ENDED_NORMALLY),
    (RecoveryPolicy.JUDGE, 1, Status.WAITING),
    (RecoveryPolicy.JUDGE, 2, Status.ENDED_ABNORMALLY),
    (RecoveryPolicy.JUDGE, 7, Status.ENDED_ABNORMALLY),  # any other exit code: failed
    (RecoveryPolicy.JUDGE, -9, Status.ENDED_ABNORMALLY),
]


@pytest.mark.parametrize("policy,check,status", POLICY_ROWS)
def test_each_policy_gets_its_row(
    policy: RecoveryPolicy, check: int | None, status: Status
) -> None:
    row = on_failover(policy, check)
    assert row.status is status
    assert row.says


def test_every_policy_has_rows_and_only_judge_runs_a_check() -> None:
    assert {r.policy for r in POLICIES} == set(RecoveryPolicy)
    for row in POLICIES:
        assert (row.check is not None) == needs_check(row.policy)
    tested = {id(on_failover(p, c)) for p, c, _ in POLICY_ROWS}
    assert tested == {id(row) for row in POLICIES}


def test_a_policy_without_a_check_ignores_a_verdict() -> None:
    assert on_failover(RecoveryPolicy.FAIL, 1).status is Status.KILLED


def test_only_a_rerun_waits_and_unknown_waits_for_an_operator() -> None:
    for row in POLICIES:
        assert row.status in FINAL | {Status.WAITING, Status.UNKNOWN}
        if row.status is Status.UNKNOWN:
            assert row.policy is RecoveryPolicy.UNKNOWN and "ajs3 release" in row.says
