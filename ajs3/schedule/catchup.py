"""Catch-up after a logical host was down, and the overlap policy when runs collide."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ajs3.definitions.units import CatchUp, DefinitionSet, Overlap, Unit
from ajs3.schedule.forecast import occurrence_details
from ajs3.tz import zone


@dataclass(frozen=True)
class Decision:
    """What to do with one run that fell due while the logical host was down."""

    jobnet: str
    #: UTC unix time the run was due.
    due: float
    run: bool
    #: For the log: "run of 2027-01-04 02:00 skipped: missed by 3 h, window 1 h".
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"jobnet": self.jobnet, "due": self.due, "run": self.run, "reason": self.reason}


def human(seconds: float) -> str:
    """A duration as people say it: 45 s, 20 min, 3 h, 1 h 30 min, 2 d 4 h."""
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [
        f"{days} d" if days else "",
        f"{hours} h" if hours else "",
        f"{minutes} min" if minutes and not days else "",
    ]
    return " ".join(p for p in parts if p) or "0 min"


def catch_up(jobnet: Unit, defs: DefinitionSet, last_seen: float, now: float) -> list[Decision]:
    """A decision for each run of ``jobnet`` due in ``(last_seen, now]``, oldest first.

    ``last_seen`` is the last moment the previous owner of the logical host was
    scheduling (every run due at or before it was handled); ``now`` is this start.
    Applies the jobnet's catch-up policy and window, and each rule's start deadline.
    """
    del defs
    schedule = jobnet.schedule
    if schedule is None or now <= last_seen:
        return []
    tz = zone(schedule.time_zone)
    missed = [
        o for o in occurrence_details(jobnet, last_seen, now + 1e-6) if last_seen < o.due <= now
    ]
    policy, window = schedule.catch_up, schedule.catch_up_window
    today = datetime.fromtimestamp(now, tz).date()

    def label(due: float) -> str:
        moment = datetime.fromtimestamp(due, tz)
        text = (
            moment.strftime("%H:%M")
            if moment.date() == today
            else moment.strftime("%Y-%m-%d %H:%M")
        )
        return f"run of {text}"

    eligible: list[int] = []
    reasons: dict[int, str] = {}
    for i, occ in enumerate(missed):
        late = now - occ.due
        if late > window:
            reasons[i] = (
                f"{label(occ.due)} skipped: missed by {human(late)}, window {human(window)}"
            )
        elif occ.deadline is not None and now > occ.deadline:
            reasons[i] = (
                f"{label(occ.due)} skipped: missed by {human(late)}, past its "
                f"start deadline of {human(occ.deadline - occ.due)}"
            )
        elif policy is CatchUp.SKIP:
            reasons[i] = f"{label(occ.due)} skipped: missed by {human(late)}, catch-up policy skip"
        else:
            eligible.append(i)
    chosen = set(eligible) if policy is CatchUp.ALL else set(eligible[-1:])
    decisions: list[Decision] = []
    for i, occ in enumerate(missed):
        ago = human(now - occ.due)
        if i in chosen:
            reason = (
                f"{label(occ.due)} started late: missed by {ago}, within window "
                f"{human(window)} (catch-up {policy.value})"
            )
            decisions.append(Decision(jobnet.path, occ.due, True, reason))
        elif i in reasons:
            decisions.append(Decision(jobnet.path, occ.due, False, reasons[i]))
        else:
            newest = missed[eligible[-1]].due
            decisions.append(
                Decision(
                    jobnet.path,
                    occ.due,
                    False,
                    f"{label(occ.due)} skipped: missed by {ago}, superseded by the "
                    f"{label(newest)} (catch-up latest)",
                )
            )
    return decisions


class OverlapAction(StrEnum):
    """What to do with a run that is due now."""

    START = "start"
    """Start it now."""
    QUEUE = "queue"
    """Keep it waiting until a running run of the jobnet ends."""
    SKIP = "skip"
    """Do not start it."""


def overlap_action(jobnet: Unit, running: int, queued: int) -> tuple[OverlapAction, str]:
    """Apply the jobnet's overlap policy to a due run, given how many runs of it are
    running and how many already wait in the queue. Returns the action and a reason."""
    schedule = jobnet.schedule
    policy = schedule.overlap if schedule is not None else Overlap.SKIP
    limit = schedule.max_parallel if schedule is not None else 1
    if running == 0 and queued == 0:
        return OverlapAction.START, "no earlier run is active"
    if policy is Overlap.PARALLEL:
        if running < limit:
            return OverlapAction.START, f"{running} run(s) active, parallel up to {limit}"
        return OverlapAction.SKIP, f"{running} run(s) active, parallel limit {limit} reached"
    if policy is Overlap.QUEUE:
        if queued == 0:
            return OverlapAction.QUEUE, "an earlier run is active; queued behind it"
        return OverlapAction.SKIP, "an earlier run is active and one is already queued"
    return OverlapAction.SKIP, "an earlier run is still active (overlap policy skip)"
