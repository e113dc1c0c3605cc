"""Unit kinds, statuses, policies and the one table of allowed status changes.

Statuses follow JP1/AJS3's set. They are ``str`` enums so that they print, store
and compare as themselves. The transition table below is enforced by the journal's
single status-writing function (``ajs3.journal.store.Journal.set_status``).
"""

from __future__ import annotations

from enum import StrEnum

from ajs3.errors import TransitionError


class UnitKind(StrEnum):
    """What a unit is."""

    GROUP = "group"
    """A job group (folder): holds jobnets, runs nothing itself."""
    JOBNET = "jobnet"
    """A jobnet: a DAG of units; may be nested inside another jobnet."""
    JOB = "job"
    """A Unix job: one program run as a process tree."""
    JUDGE = "judge"
    """A judgment job: compares its predecessor's exit code or tests a file."""
    OR = "or"
    """An OR job: ends as soon as any predecessor ends."""


class Status(StrEnum):
    """The status of a unit in one run of its root jobnet (JP1's set)."""

    NOT_SCHEDULED = "not_scheduled"
    """Not scheduled to execute: registered, its jobnet has not started yet."""
    WAIT_START_TIME = "wait_start_time"
    """Wait for start time: a root jobnet registered for a later time."""
    WAITING = "waiting"
    """Waiting to execute: its jobnet runs, a readiness rule holds it back."""
    HELD = "held"
    """Being held: waits until an operator releases it."""
    RUNNING = "running"
    """Now running."""
    ENDED_NORMALLY = "ended_normally"
    """Ended normally."""
    ENDED_WARNING = "ended_warning"
    """Ended with warning: exit code above the warning threshold."""
    ENDED_ABNORMALLY = "ended_abnormally"
    """Ended abnormally: exit code above the abnormal threshold, or a signal."""
    KILLED = "killed"
    """Killed: by an operator, a timeout, or lost in a failover (policy ``fail``)."""
    FAILED_TO_START = "failed_to_start"
    """Failed to start: the program could not be executed."""
    UNKNOWN = "unknown"
    """Unknown end status: in doubt after a failover; waits for an operator."""
    BYPASSED = "bypassed"
    """Bypassed: skipped on an operator's order."""
    NOT_EXECUTED = "not_executed"
    """Not executed + Ended: a recovery unit not needed, or a false judgment branch."""
    INTERRUPTED = "interrupted"
    """Interrupted: its jobnet was interrupted before it ran."""
    SHUTDOWN = "shutdown"
    """Shutdown: the logical host stopped (or cold-started) before it ran."""

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def is_final(self) -> bool:
        return self in FINAL

    @property
    def is_abnormal(self) -> bool:
        return self in ABNORMAL


_LABELS = {
    Status.NOT_SCHEDULED: "Not scheduled to execute",
    Status.WAIT_START_TIME: "Wait for start time",
    Status.WAITING: "Waiting to execute",
    Status.HELD: "Being held",
    Status.RUNNING: "Now running",
    Status.ENDED_NORMALLY: "Ended normally",
    Status.ENDED_WARNING: "Ended with warning",
    Status.ENDED_ABNORMALLY: "Ended abnormally",
    Status.KILLED: "Killed",
    Status.FAILED_TO_START: "Failed to start",
    Status.UNKNOWN: "Unknown end status",
    Status.BYPASSED: "Bypassed",
    Status.NOT_EXECUTED: "Not executed + Ended",
    Status.INTERRUPTED: "Interrupted",
    Status.SHUTDOWN: "Shutdown",
}

#: A unit in one of these has ended; successors may be judged against it.
FINAL = frozenset(
    {
        Status.ENDED_NORMALLY,
        Status.ENDED_WARNING,
        Status.ENDED_ABNORMALLY,
        Status.KILLED,
        Status.FAILED_TO_START,
        Status.BYPASSED,
        Status.NOT_EXECUTED,
        Status.INTERRUPTED,
        Status.SHUTDOWN,
    }
)
#: Ended in a way that triggers recovery units and stops normal successors.
ABNORMAL = frozenset({Status.ENDED_ABNORMALLY, Status.KILLED, Status.FAILED_TO_START})
#: Ended in a way that lets normal successors run.
SUCCESS = frozenset({Status.ENDED_NORMALLY, Status.ENDED_WARNING})
#: Not started yet.
PENDING = frozenset({Status.NOT_SCHEDULED, Status.WAIT_START_TIME, Status.WAITING, Status.HELD})

_RERUNNABLE = FINAL | {Status.UNKNOWN}

#: The one table of allowed status changes: old -> allowed new statuses.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.NOT_SCHEDULED: frozenset(
        {Status.WAITING, Status.HELD, Status.WAIT_START_TIME, Status.RUNNING,
         Status.NOT_EXECUTED, Status.BYPASSED, Status.INTERRUPTED, Status.SHUTDOWN}
    ),
    Status.WAIT_START_TIME: frozenset(
        {Status.RUNNING, Status.WAITING, Status.HELD, Status.INTERRUPTED, Status.SHUTDOWN,
         Status.BYPASSED}
    ),
    Status.WAITING: frozenset(
        {Status.RUNNING, Status.HELD, Status.NOT_EXECUTED, Status.BYPASSED,
         Status.INTERRUPTED, Status.SHUTDOWN, Status.ENDED_NORMALLY, Status.FAILED_TO_START}
    ),
    Status.HELD: frozenset(
        {Status.WAITING, Status.NOT_EXECUTED, Status.BYPASSED, Status.INTERRUPTED,
         Status.SHUTDOWN}
    ),
    Status.RUNNING: frozenset(
        {Status.ENDED_NORMALLY, Status.ENDED_WARNING, Status.ENDED_ABNORMALLY, Status.KILLED,
         Status.FAILED_TO_START, Status.UNKNOWN, Status.WAITING}
    ),
    Status.UNKNOWN: frozenset(
        {Status.WAITING, Status.ENDED_NORMALLY, Status.ENDED_ABNORMALLY, Status.KILLED,
         Status.RUNNING}
    ),
}
for _final in FINAL:
    # A final unit can only be started again (rerun, retry): it goes back to waiting.
    TRANSITIONS.setdefault(_final, frozenset({Status.WAITING}))


def check_transition(old: Status, new: Status) -> None:
    """Raise :class:`TransitionError` unless ``old -> new`` is in the table."""
    if new not in TRANSITIONS.get(old, frozenset()):
        raise TransitionError(f"status change {old.value} -> {new.value} is not allowed")


class RecoveryPolicy(StrEnum):
    """What happens to a run that was in doubt after a failover (design.md rule 5)."""

    FAIL = "fail"
    """Default, JP1's "Ended abnormally": mark it killed by the failover."""
    UNKNOWN = "unknown"
    """JP1's "Unknown end status": hold the jobnet until an operator decides."""
    RERUN = "rerun"
    """The job is idempotent: start it again with attempt + 1."""
    JUDGE = "judge"
    """Run the job's check command; exit 0 = done, 1 = rerun, other = fail."""


class StartMode(StrEnum):
    """How a logical host starts (JP1's start modes)."""

    COLD = "cold"
    """Forget registrations and results; keep definitions."""
    WARM = "warm"
    """Keep registrations; end what was running per its recovery policy."""
    HOT = "hot"
    """Keep everything; re-adopt running jobs and collect what ended meanwhile."""


class StopJobs(StrEnum):
    """What ``service stop`` does with running jobs."""

    KILL = "kill"
    """Kill running jobs (their process groups), then stop."""
    WAIT = "wait"
    """Start nothing new; wait for running jobs to end, within the timeout."""
    LEAVE = "leave"
    """Leave jobs running; a hot start on this node re-adopts them."""


class Compare(StrEnum):
    """Comparisons a judgment job can make on its predecessor's exit code."""

    EQ = "eq"
    NE = "ne"
    GT = "gt"
    GE = "ge"
    LT = "lt"
    LE = "le"
    IN_RANGE = "in_range"
    OUT_RANGE = "out_range"
    FILE_EXISTS = "file_exists"
    FILE_MISSING = "file_missing"
