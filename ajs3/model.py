"""Unit kinds, statuses and their groups, reason codes, policies, and the one table of
allowed status changes.

Statuses follow JP1/AJS3's set, without Bypassed and Shutdown (nothing in ajs3 would
write them). They are ``str`` enums so that they print, store and compare as themselves.
The transition table below is enforced by the journal's single status-writing function
(``ajs3.journal.store.Journal.set_status``).
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
    CONNECTOR = "connector"
    """A jobnet connector: ends when the matching run of another root jobnet ends."""
    FILEWATCH = "filewatch"
    """A file-watch job (JP1's flwj): runs until a file event happens, then ends."""


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
    NOT_EXECUTED = "not_executed"
    """Not executed + Ended: a recovery unit not needed, or a false judgment branch."""
    INTERRUPTED = "interrupted"
    """Interrupted: its jobnet was interrupted before it ran."""

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def is_final(self) -> bool:
        return self in FINAL


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
    Status.NOT_EXECUTED: "Not executed + Ended",
    Status.INTERRUPTED: "Interrupted",
}


def label_of(value: str) -> str:
    """How a status stored in the journal is shown; one this ajs3 does not know (written
    by a newer one) is shown as it is stored."""
    known = Status._value2member_map_.get(value)
    return known.label if isinstance(known, Status) else value


# -- status groups: the one place where statuses are grouped by what they mean ------

#: Ended: successors may be judged against it; a final root ends its jobnet run.
FINAL = frozenset(
    {
        Status.ENDED_NORMALLY,
        Status.ENDED_WARNING,
        Status.ENDED_ABNORMALLY,
        Status.KILLED,
        Status.FAILED_TO_START,
        Status.NOT_EXECUTED,
        Status.INTERRUPTED,
    }
)
#: Not ended: a run whose root is in one of these is active.
OPEN = frozenset(Status) - FINAL
#: Ended in a way that triggers recovery units and stops normal successors.
ABNORMAL = frozenset({Status.ENDED_ABNORMALLY, Status.KILLED, Status.FAILED_TO_START})
#: Ended in a way that lets normal successors run.
SUCCESS = frozenset({Status.ENDED_NORMALLY, Status.ENDED_WARNING})
#: Ended without running, and never will in this run: successors treat it as skipped.
SKIPPED = frozenset({Status.NOT_EXECUTED, Status.INTERRUPTED})
#: Not started yet.
PENDING = frozenset({Status.NOT_SCHEDULED, Status.WAIT_START_TIME, Status.WAITING, Status.HELD})
#: Not started and not held: an operator may hold it.
HOLDABLE = PENDING - {Status.HELD}
#: A root jobnet in one of these starts once its scheduled time has come.
ROOT_STARTABLE = frozenset({Status.NOT_SCHEDULED, Status.WAIT_START_TIME, Status.WAITING})
#: A unit in one of these is judged by the readiness rules at each evaluation.
EVALUATED = frozenset({Status.WAITING, Status.HELD})
#: ``show --why`` lists the readiness rules for a unit in one of these.
EXPLAINED = frozenset({Status.NOT_SCHEDULED, Status.WAITING, Status.HELD})
#: A rerun sets a unit in one of these back to waiting.
RERUNNABLE = FINAL | {Status.UNKNOWN}
#: A unit in one of these makes ``rerun --failed`` worth doing.
FAILED = ABNORMAL | {Status.UNKNOWN, Status.INTERRUPTED}
#: ``rerun --failed`` runs these again (with skipped units after a failed one).
RERUN_FAILED = FAILED | {Status.NOT_EXECUTED}
#: A root jobnet that ended in one of these did not do its work (``entry --wait`` fails).
ENDED_BADLY = ABNORMAL | {Status.INTERRUPTED}

#: The one table of allowed status changes: old -> allowed new statuses. It lists what
#: the engine really does, and nothing else: a change it refuses is a bug.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    # registered, its jobnet not started: a root starts, a unit waits once its jobnet
    # runs; either may be held, or end unrun with its jobnet
    Status.NOT_SCHEDULED: frozenset(
        {Status.RUNNING, Status.WAITING, Status.HELD, Status.NOT_EXECUTED, Status.INTERRUPTED}
    ),
    # a root registered for later: it starts, is held, or its run is killed first
    Status.WAIT_START_TIME: frozenset({Status.RUNNING, Status.HELD, Status.INTERRUPTED}),
    # ready or not: starts (a judgment or OR job ends at once), is held, or ends unrun
    Status.WAITING: frozenset(
        {
            Status.RUNNING,
            Status.ENDED_NORMALLY,
            Status.HELD,
            Status.NOT_EXECUTED,
            Status.INTERRUPTED,
        }
    ),
    Status.HELD: frozenset({Status.WAITING, Status.NOT_EXECUTED, Status.INTERRUPTED}),
    # a job ends (or is in doubt, or never started and waits again); a jobnet ends
    Status.RUNNING: frozenset(
        {
            Status.ENDED_NORMALLY,
            Status.ENDED_WARNING,
            Status.ENDED_ABNORMALLY,
            Status.KILLED,
            Status.FAILED_TO_START,
            Status.UNKNOWN,
            Status.WAITING,
        }
    ),
    # an operator decides: how it ended (release --as), or to run it again (rerun)
    Status.UNKNOWN: frozenset({Status.WAITING, Status.ENDED_NORMALLY, Status.ENDED_ABNORMALLY}),
}
for _final in FINAL:
    # A final unit can only be started again (rerun, retry): it goes back to waiting.
    TRANSITIONS.setdefault(_final, frozenset({Status.WAITING}))
#: The ends an operator may give a unit by hand (``ajs3 chgstat``, JP1's ajschgstat).
OPERATOR_ENDS = frozenset({Status.ENDED_NORMALLY, Status.ENDED_WARNING, Status.ENDED_ABNORMALLY})
for _ended in OPERATOR_ENDS:
    # ... and a unit its exit code judged may be judged again by hand (a killed one or one
    # that never started cannot be said to have ended normally: rerun it).
    TRANSITIONS[_ended] = TRANSITIONS[_ended] | (OPERATOR_ENDS - {_ended})


def check_transition(old: Status, new: Status) -> None:
    """Raise :class:`TransitionError` unless ``old -> new`` is in the table."""
    if new not in TRANSITIONS.get(old, frozenset()):
        raise TransitionError(f"status change {old.value} -> {new.value} is not allowed")


class ReasonCode(StrEnum):
    """Why a status changed: stored with every status event (``events.code``).

    The event's message says it to a person and may be reworded; the code is stable,
    for programs that read the journal (the cluster tier's checker, tools).
    """

    STARTED = "started"
    """A job's start was recorded (intent before launch), or a nested jobnet started."""
    START_TIME_REACHED = "start-time-reached"
    """A root jobnet started: its scheduled time came and nothing held it back."""
    JOBNET_STARTED = "jobnet-started"
    """The unit's jobnet started: the unit now waits for its readiness rules."""
    JUDGED = "judged"
    """A judgment job evaluated its condition (the verdict column says how)."""
    PREDECESSOR_ENDED = "predecessor-ended"
    """An OR job ended because one of its predecessors ended."""
    NOT_EXECUTED = "not-executed"
    """Will not run in this run: not needed, skipped, or after an abnormal end."""
    INTERRUPTED = "interrupted"
    """Its jobnet run was killed before the unit ran."""
    JOBNET_ENDED = "jobnet-ended"
    """A jobnet ended because every unit in it ended."""
    EXITED = "exited"
    """A job exited; its exit code decided the status."""
    SIGNALLED = "signalled"
    """A job was ended by a signal that nobody in ajs3 sent."""
    FAILED_TO_START = "failed-to-start"
    """A job's program could not be started."""
    KILLED_BY_OPERATOR = "killed-by-operator"
    """``ajs3 kill``."""
    TIMED_OUT = "timed-out"
    """A job ran longer than its timeout and was killed."""
    KILLED_AT_STOP = "killed-at-stop"
    """``service stop --jobs kill`` killed a running job."""
    RERUN_AFTER_STOP = "rerun-after-stop"
    """A job killed at service stop waits to start again (policy ``rerun``)."""
    RETRY = "retry"
    """A job that ended abnormally waits for its next retry."""
    NEVER_STARTED = "never-started"
    """Recorded as started, but its job never started (rule 1): it starts again."""
    SUPERVISOR_DIED = "supervisor-died"
    """In doubt: its supervisor died before recording an end; the policy decided."""
    IN_DOUBT_AFTER_FAILOVER = "in-doubt-after-failover"
    """In doubt: it ran on another node, lost in a failover; the policy decided."""
    KILLED_BY_WARM_START = "killed-by-warm-start"
    """In doubt: a warm start killed it; the policy decided."""
    START_RECORD_HELD = "start-record-held"
    """In doubt: a supervisor held its start record too long; the policy decided."""
    HELD_BY_OPERATOR = "held-by-operator"
    """``ajs3 hold``."""
    HELD_AT_REGISTRATION = "held-at-registration"
    """Registered held: ``hold: true`` in its definition, or ``ajs3 entry --hold``."""
    RELEASED = "released"
    """``ajs3 release`` of a held unit."""
    DECIDED_BY_OPERATOR = "decided-by-operator"
    """``ajs3 release --as normal|abnormal`` of a unit with an unknown end status."""
    RERUN = "rerun"
    """``ajs3 rerun``."""
    SET_BY_OPERATOR = "set-by-operator"
    """``ajs3 chgstat``: an operator set the status by hand, with a reason."""
    TARGET_ENDED = "target-ended"
    """A jobnet connector ended: the run of the root jobnet it waits for ended."""
    VALUES_REFUSED = "values-refused"
    """A job's AJS3_VARS_OUT file held a bad value: none of it was applied."""
    WATCHING = "watching"
    """A file-watch job began to watch (it is running until its event happens)."""
    FILE_EVENT = "file-event"
    """A file-watch job's event happened: it ended normally (ajs3.engine.watches)."""
    EXEC_HOST_LOST = "exec-host-lost"
    """In doubt: its execution host was out of reach for ``exechost_timeout``, or its
    supervisor there died before recording an end; the policy decided."""


#: The codes of a run in doubt, decided by its recovery policy (docs/design.md rule 5).
IN_DOUBT = frozenset(
    {
        ReasonCode.SUPERVISOR_DIED,
        ReasonCode.IN_DOUBT_AFTER_FAILOVER,
        ReasonCode.KILLED_BY_WARM_START,
        ReasonCode.START_RECORD_HELD,
        ReasonCode.EXEC_HOST_LOST,
    }
)


class RecoveryPolicy(StrEnum):
    """What happens to a run that was in doubt after a failover (docs/design.md rule 5)."""

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


class EventKind(StrEnum):
    """What a notification event says happened (ajs3.notify, docs/notifications.md)."""

    UNIT_ENDED_ABNORMALLY = "unit_ended_abnormally"
    """A job or nested jobnet ended abnormally."""
    UNIT_ENDED_WARNING = "unit_ended_warning"
    """A job or nested jobnet ended with warning."""
    UNIT_KILLED = "unit_killed"
    """A job was killed (operator, timeout, stop, or lost in a failover with ``fail``)."""
    UNIT_FAILED_TO_START = "unit_failed_to_start"
    """A job's program could not be started."""
    UNIT_UNKNOWN = "unit_unknown"
    """A job has an Unknown end status (in doubt after a failover): an operator decides."""
    UNIT_HELD = "unit_held"
    """A unit is held: it waits for an operator to release it."""
    START_DELAY = "start_delay"
    """A unit had not started by its latest start (``delay: start_by``)."""
    END_DELAY = "end_delay"
    """A unit has run longer than its longest run time (``delay: longest``)."""
    JOBNET_ENDED = "jobnet_ended"
    """A run of a root jobnet ended (any status)."""
    HOST_STARTED = "host_started"
    """The logical host started (start mode, epoch, node)."""
    HOST_STOPPED = "host_stopped"
    """The logical host stopped cleanly (a crash sends nothing: the next start does)."""
    CATCH_UP = "catch_up"
    """At start, a jobnet's catch-up policy decided about a run due while it was down."""
    TEST = "test"
    """``ajs3 notify test ROUTE``."""
