"""``ajs3 chgstat`` (JP1's ajschgstat): an operator sets a unit's status by hand, with a
mandatory reason, within the transition table (:data:`ajs3.model.TRANSITIONS`).

Only what an operator can know is settable: how a unit ended (normally, with warning,
abnormally; a unit its exit code judged may be judged again), that it is not to run
(``not_executed``), or that it waits held. A running job is killed first, a jobnet
changes with its units, and running a unit again is ``ajs3 rerun``'s: the status
writer itself could not tell those apart from a mistake. A change the table or this
list forbids is refused with AJS3-E405 naming the statuses allowed from where the unit
is. Done through the one status writer; the event says who and why, and the daemon's
audit row keeps both with the time.
"""

from __future__ import annotations

from ajs3.engine.commands import Commands
from ajs3.engine.core import Core
from ajs3.errors import Code, OperationError, TransitionError
from ajs3.journal.store import UnitRun
from ajs3.model import FINAL, OPERATOR_ENDS, TRANSITIONS, ReasonCode, Status, UnitKind

#: The statuses ``chgstat`` may set, where the transition table allows it.
SETTABLE = OPERATOR_ENDS | {Status.NOT_EXECUTED, Status.HELD}


def allowed_from(status: Status) -> list[Status]:
    """What ``chgstat`` may make a unit that is ``status``, in the table's order."""
    return [s for s in Status if s in SETTABLE and s in TRANSITIONS.get(status, frozenset())]


def change_status(
    core: Core,
    commands: Commands,
    run_no: int | None,
    path: str,
    status: str,
    reason: str,
    user: str,
) -> UnitRun:
    """Set the unit at ``path`` in run ``run_no`` (the latest when None) to ``status``."""
    if not reason.strip():
        raise OperationError(
            "chgstat needs a reason", code=Code.BAD_ARGUMENT, hint="give --reason TEXT"
        )
    state = commands.find(run_no, path, None)
    ur = commands.unit(state, path)
    unit = state.units[path]
    if unit.kind is UnitKind.JOBNET:
        raise OperationError(
            f"{path} is a jobnet: its status follows its units",
            code=Code.BAD_ARGUMENT,
            hint="set the status of its jobs, or use `ajs3 kill` / `ajs3 rerun` on the run",
        )
    if ur.id in core.tracked or (ur.status is Status.RUNNING and unit.kind is UnitKind.JOB):
        raise OperationError(
            f"{path} is running (run {state.run.id}): its end is its process's to record",
            code=Code.BAD_STATE,
            hint=f"kill it first (`ajs3 kill {path} --run {state.run.id}`), then set its status",
        )
    try:
        new = Status(status)
    except ValueError:
        new = None
    allowed = allowed_from(ur.status)
    if new is None or new not in allowed:
        names = ", ".join(s.value for s in allowed) or "nothing (use `ajs3 rerun`)"
        raise TransitionError(
            f"{path} (run {state.run.id}) is {ur.status.value}; chgstat cannot make it "
            f"{status}: from {ur.status.value} it may become {names}",
            code=Code.BAD_TRANSITION,
            hint="see the transition table in docs/runbooks/chgstat.md",
        )
    extra = {}
    if new in FINAL and ur.ended_at is None:
        extra["ended_at"] = core.clock()
    core.journal.set_status(
        ur, new, ReasonCode.SET_BY_OPERATOR, f"set by {user}: {reason.strip()}", **extra
    )
    core.log.info(
        "status set by an operator",
        run=state.run.id,
        unit=path,
        status=new.value,
        user=user,
        reason=reason,
    )
    core.dirty.add(state.run.id)
    return ur
