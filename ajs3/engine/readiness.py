"""Readiness rules: small pure functions that say whether a unit may start, and why not.

Each rule returns a :class:`Check` (name, passed, reason), so ``ajs3 show --why``
can tell a person what holds a unit back without a debugger.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from ajs3.definitions.units import Overlap, Unit
from ajs3.engine.runstate import RunState
from ajs3.journal.store import UnitRun
from ajs3.model import ABNORMAL, SKIPPED, SUCCESS, Status, UnitKind


class Outcome(StrEnum):
    """What a predecessor's end means for its successors."""

    SUCCESS = "success"
    """Ended normally or with warning (a judgment job: its condition was true)."""
    SKIPPED = "skipped"
    """Did not run and will not: not executed, interrupted, a false judgment."""
    ABNORMAL = "abnormal"
    """Ended abnormally, was killed or failed to start."""
    BLOCKED = "blocked"
    """Has not run and never will, because something before it ended abnormally."""
    PENDING = "pending"
    """Not ended yet (waiting, held, running, or unknown end status)."""


class Action(StrEnum):
    """What the scheduler should do with a pending unit now."""

    START = "start"
    SKIP = "skip"
    WAIT = "wait"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class Decision:
    action: Action
    checks: tuple[Check, ...]

    @property
    def why(self) -> str:
        failed = [c for c in self.checks if not c.passed]
        return "; ".join(c.reason for c in failed) if failed else "ready"


def outcome(unit: Unit, ur: UnitRun, blocked: bool) -> Outcome:
    """Classify a unit run for the purpose of its successors."""
    if ur.status in SUCCESS:
        if unit.kind is UnitKind.JUDGE and ur.verdict == 0:
            return Outcome.SKIPPED
        return Outcome.SUCCESS
    if ur.status in SKIPPED:
        return Outcome.SKIPPED
    if ur.status in ABNORMAL:
        return Outcome.ABNORMAL
    if blocked:
        return Outcome.BLOCKED
    return Outcome.PENDING


def rule_parent_running(parent: UnitRun | None) -> Check:
    ok = parent is None or parent.status is Status.RUNNING
    status = parent.status.label if parent else ""
    return Check("parent_running", ok, "ready" if ok else f"its jobnet is {status}")


def rule_not_held(ur: UnitRun) -> Check:
    ok = ur.status is not Status.HELD
    return Check("not_held", ok, "not held" if ok else "being held: release it with `ajs3 release`")


def rule_not_interrupted(interrupted: bool) -> Check:
    return Check(
        "not_interrupted",
        not interrupted,
        "jobnet runs" if not interrupted else "its jobnet was interrupted or killed",
    )


def rule_start_time(ur: UnitRun, now: float) -> Check:
    if ur.not_before is None or ur.not_before <= now:
        return Check("start_time", True, "start time reached")
    return Check("start_time", False, f"waits {ur.not_before - now:.1f} s more (retry interval)")


def rule_predecessors(unit: Unit, preds: list[tuple[str, Outcome]]) -> tuple[Action, Check]:
    """The relation rule: what the predecessors' ends allow, per unit kind."""
    if not preds:
        return Action.START, Check("predecessors", True, "no predecessors")
    outs = [o for _, o in preds]
    pending = [n for n, o in preds if o is Outcome.PENDING]
    names = ", ".join(pending)
    if unit.recovery:
        if pending:
            return Action.WAIT, Check("predecessors", False, f"waits for {names} to end")
        if Outcome.ABNORMAL in outs:
            return Action.START, Check("predecessors", True, "a predecessor ended abnormally")
        return Action.SKIP, Check(
            "predecessors", False, "recovery unit not needed: no predecessor ended abnormally"
        )
    if unit.kind is UnitKind.OR:
        if Outcome.SUCCESS in outs:
            return Action.START, Check("predecessors", True, "a predecessor ended")
        if pending:
            return Action.WAIT, Check("predecessors", False, f"waits for any of {names}")
        if Outcome.ABNORMAL in outs or Outcome.BLOCKED in outs:
            return Action.BLOCKED, Check("predecessors", False, "no predecessor ended normally")
        return Action.SKIP, Check("predecessors", False, "no predecessor ran")
    if Outcome.ABNORMAL in outs or Outcome.BLOCKED in outs:
        bad = ", ".join(n for n, o in preds if o in (Outcome.ABNORMAL, Outcome.BLOCKED))
        return Action.BLOCKED, Check(
            "predecessors", False, f"will not run: {bad} ended abnormally or cannot run"
        )
    if pending:
        return Action.WAIT, Check("predecessors", False, f"waits for {names} to end")
    if Outcome.SUCCESS not in outs:
        return Action.SKIP, Check("predecessors", False, "every predecessor was skipped")
    return Action.START, Check("predecessors", True, "predecessors ended")


def waits_for_predecessor(unit: Unit, outcomes: Iterable[Outcome]) -> bool:
    """Whether :func:`rule_predecessors` says WAIT for these predecessors' outcomes:
    :func:`decide` then says WAIT whatever the other rules say. Much cheaper to find
    out; the evaluator asks it first of every waiting unit."""
    if unit.kind is UnitKind.OR:
        return False  # one predecessor's end may start it: the rules decide
    pending = False
    for found in outcomes:
        if found is Outcome.PENDING:
            pending = True
        elif (found is Outcome.ABNORMAL or found is Outcome.BLOCKED) and not unit.recovery:
            return False  # blocked for good: the rules say so
    return pending


def rule_concurrency(running: int, limit: int | None, scope: str) -> Check:
    if limit is None or running < limit:
        return Check(f"concurrency_{scope}", True, f"{scope} limit not reached")
    return Check(
        f"concurrency_{scope}", False, f"{running} jobs running in the {scope}, limit {limit}"
    )


def decide(
    unit: Unit,
    ur: UnitRun,
    *,
    parent: UnitRun | None,
    preds: list[tuple[str, Outcome]],
    interrupted: bool,
    now: float,
    jobnet_running: int,
    jobnet_limit: int | None,
    host_running: int,
    host_limit: int | None,
    connection: Check | None = None,
) -> Decision:
    """Apply every rule to a pending unit and say what to do with it (``connection``:
    a jobnet connector's rule, :mod:`ajs3.engine.connectors`)."""
    checks = [
        rule_parent_running(parent),
        rule_not_interrupted(interrupted),
        rule_not_held(ur),
    ]
    action, pred_check = rule_predecessors(unit, preds)
    checks.append(pred_check)
    if action in (Action.SKIP, Action.BLOCKED):
        # Nothing else matters: the unit will never run in this run.
        return Decision(action, tuple(checks))
    checks.append(rule_start_time(ur, now))
    if connection is not None:
        checks.append(connection)
    if unit.kind is UnitKind.JOB:
        checks.append(rule_concurrency(jobnet_running, jobnet_limit, "jobnet"))
        checks.append(rule_concurrency(host_running, host_limit, "logical host"))
    if all(c.passed for c in checks):
        return Decision(Action.START, tuple(checks))
    return Decision(Action.WAIT, tuple(checks))


# -- a root jobnet ---------------------------------------------------------------------


def rule_scheduled_time(scheduled_at: float, now: float) -> Check:
    if scheduled_at <= now:
        return Check("scheduled_time", True, "scheduled time reached")
    return Check("scheduled_time", False, f"starts in {scheduled_at - now:.1f} s")


def earlier_runs_running(state: RunState, runs: Iterable[RunState]) -> list[int]:
    """The earlier runs that a scheduled jobnet which may not run in parallel waits for."""
    schedule = state.root.schedule
    if schedule is None or schedule.overlap is Overlap.PARALLEL:
        return []
    return [
        other.run.id
        for other in runs
        if other.root.path == state.root.path
        and other.run.id < state.run.id
        and other.root_ur.status is Status.RUNNING
    ]


def rule_earlier_runs_ended(earlier: list[int]) -> Check:
    if not earlier:
        return Check("earlier_runs_ended", True, "no earlier run of it is running")
    runs = ", ".join(str(r) for r in earlier)
    return Check(
        "earlier_runs_ended",
        False,
        f"waits for its earlier run {runs} to end (its schedule does not run in parallel)",
    )


def decide_root(
    ur: UnitRun, *, scheduled_at: float, now: float, interrupted: bool, earlier: list[int]
) -> Decision:
    """Whether a root jobnet that has not started may start now."""
    checks = (
        rule_not_held(ur),
        rule_not_interrupted(interrupted),
        rule_scheduled_time(scheduled_at, now),
        rule_earlier_runs_ended(earlier),
    )
    return Decision(Action.START if all(c.passed for c in checks) else Action.WAIT, checks)
