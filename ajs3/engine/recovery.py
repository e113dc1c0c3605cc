"""The recovery decision table: what to do with a job the journal says is running but
that no daemon watches (ADR 0001 and 0012, docs/design.md rules 1, 4 and 5).

Data and pure functions only: :data:`TABLE` says, from what is found on disk and in
the process table (:class:`Facts`), what the run is; :func:`decide` picks its row.
:data:`POLICIES` says what a job's ``on_failover`` policy makes of a run in doubt;
:func:`on_failover` picks its row. :mod:`ajs3.engine.reconcile` gathers the facts and
carries the decisions out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ajs3.model import ReasonCode, RecoveryPolicy, StartMode, Status


class Record(StrEnum):
    """What ``jobs/<run-id>/started.json`` says."""

    NONE = "none"
    """There is none: no supervisor created it, and no daemon claimed the run."""
    VOID = "void"
    """A daemon claimed the run (a void record): its job never started and never will."""
    WHOLE = "whole"
    """A supervisor wrote it whole: the job may have started (ADR 0012)."""
    HELD = "held"
    """A supervisor holds it and did not finish writing it in time."""
    LOGGED = "logged"
    """None is whole, but the claim log of another node or boot names the run (ADR
    0033): that node's server made the claim durable, and may have started the job."""


class Verdict(StrEnum):
    """What the run is, and what to do with it."""

    COLLECT = "collect"
    """It ended while no daemon watched it: collect its end status."""
    CLAIM = "claim"
    """Claim it (create a void start record) before anything else, then decide again."""
    RESTART = "restart"
    """It never started: it waits to start again (a new attempt)."""
    ADOPT = "adopt"
    """It still runs under its supervisor on this node: watch it again."""
    IN_DOUBT = "in_doubt"
    """Its end is unknown: its recovery policy decides (:data:`POLICIES`)."""


@dataclass(frozen=True)
class Facts:
    """What a daemon finds for one run in ``running``."""

    status_file: bool
    """``status.json`` exists (the supervisor recorded the job's end)."""
    record: Record
    local: bool = False
    """The start record was written on this node (same host identity)."""
    supervisor_alive: bool = False
    """Its supervisor still runs (same pid and kernel start time)."""
    mode: StartMode = StartMode.HOT


@dataclass(frozen=True)
class Row:
    """One row of the table; ``None`` in a condition column matches anything."""

    status_file: bool | None
    record: Record | None
    local: bool | None
    supervisor_alive: bool | None
    hot: bool | None
    verdict: Verdict
    code: ReasonCode | None
    """Why, as recorded with the status change (none for collect, claim, adopt)."""
    kill: bool
    """Kill the job's process group first (it may still run, unwatched)."""
    meaning: str

    def matches(self, f: Facts) -> bool:
        wanted = (self.status_file, self.record, self.local, self.supervisor_alive, self.hot)
        found = (f.status_file, f.record, f.local, f.supervisor_alive, f.mode is StartMode.HOT)
        return all(w is None or w == v for w, v in zip(wanted, found, strict=True))


TABLE: tuple[Row, ...] = (
    Row(
        True,
        None,
        None,
        None,
        None,
        Verdict.COLLECT,
        None,
        False,
        "it ended while the daemon was down: collect it",
    ),
    Row(
        False,
        Record.NONE,
        None,
        None,
        None,
        Verdict.CLAIM,
        None,
        False,
        "no start record: claim the run first, so that a late supervisor cannot start it",
    ),
    Row(
        False,
        Record.VOID,
        None,
        None,
        None,
        Verdict.RESTART,
        ReasonCode.NEVER_STARTED,
        False,
        "recorded but never started: start it again",
    ),
    Row(
        False,
        Record.LOGGED,
        None,
        None,
        None,
        Verdict.IN_DOUBT,
        ReasonCode.IN_DOUBT_AFTER_FAILOVER,
        False,
        "claimed on another node or boot, its start record lost with it: it may have run",
    ),
    Row(
        False,
        Record.HELD,
        None,
        None,
        None,
        Verdict.IN_DOUBT,
        ReasonCode.START_RECORD_HELD,
        False,
        "a supervisor holds its start record: it may have started",
    ),
    Row(
        False,
        Record.WHOLE,
        True,
        True,
        True,
        Verdict.ADOPT,
        None,
        False,
        "still running on this node: re-adopt it",
    ),
    Row(
        False,
        Record.WHOLE,
        True,
        True,
        False,
        Verdict.IN_DOUBT,
        ReasonCode.KILLED_BY_WARM_START,
        True,
        "still running, but a warm or cold start ends what was running",
    ),
    Row(
        False,
        Record.WHOLE,
        True,
        False,
        None,
        Verdict.IN_DOUBT,
        ReasonCode.SUPERVISOR_DIED,
        True,
        "its supervisor died before recording an end",
    ),
    Row(
        False,
        Record.WHOLE,
        False,
        None,
        None,
        Verdict.IN_DOUBT,
        ReasonCode.IN_DOUBT_AFTER_FAILOVER,
        False,
        "it ran on another node, lost in a failover",
    ),
)


def decide(facts: Facts) -> Row:
    """The first row of :data:`TABLE` that matches (the rows do not overlap)."""
    for row in TABLE:
        if row.matches(facts):
            return row
    raise AssertionError(f"no recovery row for {facts}")  # the table is total (tested)


@dataclass(frozen=True)
class PolicyRow:
    policy: RecoveryPolicy
    check: int | None
    """The ``failover_check`` verdict (0 done, 1 rerun, 2 anything else); None: no check."""
    status: Status
    says: str


POLICIES: tuple[PolicyRow, ...] = (
    PolicyRow(RecoveryPolicy.FAIL, None, Status.KILLED, "recovery policy fail"),
    PolicyRow(
        RecoveryPolicy.UNKNOWN,
        None,
        Status.UNKNOWN,
        "recovery policy unknown: decide with `ajs3 rerun` or `ajs3 release --as normal|abnormal`",
    ),
    PolicyRow(RecoveryPolicy.RERUN, None, Status.WAITING, "recovery policy rerun: starts again"),
    PolicyRow(RecoveryPolicy.JUDGE, 0, Status.ENDED_NORMALLY, "check said done"),
    PolicyRow(RecoveryPolicy.JUDGE, 1, Status.WAITING, "check said rerun"),
    PolicyRow(RecoveryPolicy.JUDGE, 2, Status.ENDED_ABNORMALLY, "check said failed"),
)


def needs_check(policy: RecoveryPolicy) -> bool:
    """Whether the policy runs the job's ``failover_check`` before it decides."""
    return policy is RecoveryPolicy.JUDGE


def on_failover(policy: RecoveryPolicy, check: int | None = None) -> PolicyRow:
    """What a run in doubt becomes under ``policy`` (and its check's verdict)."""
    check = (check if check in (0, 1) else 2) if needs_check(policy) else None
    for row in POLICIES:
        if row.policy is policy and row.check == check:
            return row
    raise AssertionError(f"no policy row for {policy} {check}")  # total (tested)
