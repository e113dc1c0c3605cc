"""The transition table and the readiness rules (pure logic)."""

from __future__ import annotations

import itertools
import re

import pytest

from ajs3.definitions.units import Unit
from ajs3.engine.collect import end_status
from ajs3.engine.dispatch import make_run_id
from ajs3.engine.readiness import (
    Action,
    Outcome,
    decide_root,
    rule_predecessors,
    waits_for_predecessor,
)
from ajs3.errors import TransitionError
from ajs3.journal.store import UnitRun
from ajs3.model import (
    ABNORMAL,
    FINAL,
    IN_DOUBT,
    OPEN,
    OPERATOR_ENDS,
    PENDING,
    RERUNNABLE,
    SKIPPED,
    SUCCESS,
    TRANSITIONS,
    ReasonCode,
    Status,
    UnitKind,
    check_transition,
    label_of,
)


def test_every_status_has_a_row() -> None:
    assert set(TRANSITIONS) == set(Status)


@pytest.mark.parametrize(
    "old,new",
    [
        (Status.ENDED_NORMALLY, Status.RUNNING),
        (Status.NOT_EXECUTED, Status.ENDED_NORMALLY),
        (Status.HELD, Status.RUNNING),
        (Status.RUNNING, Status.HELD),
        (Status.KILLED, Status.ENDED_NORMALLY),
    ],
)
def test_forbidden_changes_are_refused(old: Status, new: Status) -> None:
    with pytest.raises(TransitionError):
        check_transition(old, new)


def test_final_statuses_only_go_back_to_waiting_or_are_judged_again_by_hand() -> None:
    for status in FINAL - OPERATOR_ENDS:
        assert TRANSITIONS[status] == frozenset({Status.WAITING})
    for status in OPERATOR_ENDS:  # ajs3 chgstat: an exit-judged end corrected by hand
        assert TRANSITIONS[status] == {Status.WAITING} | (OPERATOR_ENDS - {status})


def job(name: str = "x", **kw: object) -> Unit:
    return Unit(
        name=name,
        path=f"/n/{name}",
        kind=kw.pop("kind", UnitKind.JOB),  # type: ignore[arg-type]
        **kw,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "unit,preds,action",
    [
        (job(), [], Action.START),
        (job(), [("a", Outcome.SUCCESS)], Action.START),
        (job(), [("a", Outcome.PENDING)], Action.WAIT),
        (job(), [("a", Outcome.ABNORMAL)], Action.BLOCKED),
        (job(), [("a", Outcome.BLOCKED)], Action.BLOCKED),
        (job(), [("a", Outcome.SKIPPED)], Action.SKIP),
        (job(), [("a", Outcome.SKIPPED), ("b", Outcome.SUCCESS)], Action.START),
        (job(recovery=True), [("a", Outcome.ABNORMAL)], Action.START),
        (job(recovery=True), [("a", Outcome.SUCCESS)], Action.SKIP),
        (job(recovery=True), [("a", Outcome.PENDING)], Action.WAIT),
        (job(kind=UnitKind.OR), [("a", Outcome.PENDING), ("b", Outcome.SUCCESS)], Action.START),
        (job(kind=UnitKind.OR), [("a", Outcome.PENDING), ("b", Outcome.ABNORMAL)], Action.WAIT),
        (job(kind=UnitKind.OR), [("a", Outcome.ABNORMAL), ("b", Outcome.ABNORMAL)], Action.BLOCKED),
    ],
)
def test_predecessor_rule(unit: Unit, preds: list[tuple[str, Outcome]], action: Action) -> None:
    got, check = rule_predecessors(unit, preds)
    assert got is action
    assert check.reason


@pytest.mark.parametrize("kind", [UnitKind.JOB, UnitKind.OR, UnitKind.JUDGE, UnitKind.JOBNET])
@pytest.mark.parametrize("recovery", [False, True])
def test_the_evaluators_shortcut_says_wait_exactly_when_the_relation_rule_does(
    kind: UnitKind, recovery: bool
) -> None:
    """The evaluator passes over a unit for which waits_for_predecessor says so, without
    the rules: it must say so only where rule_predecessors says WAIT (and then decide()
    says WAIT whatever the rest). Every combination of one to three predecessors' ends;
    an OR unit always goes to the rules."""
    unit = job(kind=kind, recovery=recovery)
    for count in (1, 2, 3):
        for outs in itertools.product(list(Outcome), repeat=count):
            preds = [(f"p{i}", o) for i, o in enumerate(outs)]
            rule_waits = rule_predecessors(unit, preds)[0] is Action.WAIT
            shortcut = waits_for_predecessor(unit, outs)
            if kind is UnitKind.OR:
                assert not shortcut
            else:
                assert shortcut == rule_waits, (kind, recovery, outs)


@pytest.mark.parametrize(
    "code,status",
    [
        (0, Status.ENDED_NORMALLY),
        (2, Status.ENDED_NORMALLY),
        (3, Status.ENDED_WARNING),
        (8, Status.ENDED_WARNING),
        (9, Status.ENDED_ABNORMALLY),
        (255, Status.ENDED_ABNORMALLY),
    ],
)
def test_end_judgment_thresholds(code: int, status: Status) -> None:
    unit = job(warning_threshold=2, abnormal_threshold=8)
    assert end_status(unit, code) is status


def test_run_ids_are_stable_and_distinct() -> None:
    a = make_run_id("lh1", 7, "/n/x", 1000.0, 1)
    assert a == make_run_id("lh1", 7, "/n/x", 1000.0, 1)
    others = {
        make_run_id("lh2", 7, "/n/x", 1000.0, 1),
        make_run_id("lh1", 8, "/n/x", 1000.0, 1),  # another run at the same time
        make_run_id("lh1", 7, "/n/y", 1000.0, 1),
        make_run_id("lh1", 7, "/n/x", 1001.0, 1),
        make_run_id("lh1", 7, "/n/x", 1000.0, 2),
    }
    assert a not in others and len(others) == 5


def test_status_groups_mean_what_they_say() -> None:
    assert set(Status) == FINAL | OPEN and not FINAL & OPEN
    # an ended unit ended well, badly, or without running: exactly one of them
    assert ABNORMAL | SUCCESS | SKIPPED == FINAL
    assert not (ABNORMAL & SUCCESS or ABNORMAL & SKIPPED or SUCCESS & SKIPPED)
    assert PENDING <= OPEN and Status.RUNNING in OPEN and Status.UNKNOWN in OPEN
    assert FINAL | {Status.UNKNOWN} == RERUNNABLE


def test_every_status_has_a_label_and_an_unknown_one_is_shown_as_it_is() -> None:
    assert all(label_of(s.value) == s.label and s.label for s in Status)
    assert label_of("paused_by_newer") == "paused_by_newer"


def test_reason_codes_are_stable_words() -> None:
    for code in ReasonCode:
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", code.value), code
    assert set(ReasonCode) > IN_DOUBT


def root(status: Status) -> UnitRun:
    return UnitRun(id=1, jobnet_run=1, path="/n", kind=UnitKind.JOBNET, status=status)


@pytest.mark.parametrize(
    "status,at,interrupted,earlier,failed",
    [
        (Status.NOT_SCHEDULED, 100.0, False, [], []),
        (Status.WAIT_START_TIME, 150.0, False, [], ["scheduled_time"]),
        (Status.WAITING, 100.0, False, [7], ["earlier_runs_ended"]),
        (Status.HELD, 100.0, False, [], ["not_held"]),
        (Status.NOT_SCHEDULED, 100.0, True, [], ["not_interrupted"]),
    ],
)
def test_root_rules(
    status: Status, at: float, interrupted: bool, earlier: list[int], failed: list[str]
) -> None:
    d = decide_root(
        root(status), scheduled_at=at, now=120.0, interrupted=interrupted, earlier=earlier
    )
    assert [c.name for c in d.checks if not c.passed] == failed
    assert (d.action is Action.START) == (not failed)
