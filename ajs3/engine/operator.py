"""The operator's requests on the plan and on statuses, done on a running scheduler:
``suspend``, ``resume``, ``plan_change`` and ``chgstat`` (the daemon's handlers in
ajs3/service/operator.py call these). The rules live in :mod:`~ajs3.engine.suspend`,
:mod:`~ajs3.engine.planchanges` and :mod:`~ajs3.engine.chgstat`; this module applies
them to the scheduler's memory (its timetable, its runs) and logs what was done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ajs3.engine import chgstat, planchanges, suspend

if TYPE_CHECKING:
    from ajs3.engine.scheduler import Scheduler


def suspend_jobnet(sched: Scheduler, jobnet: str, user: str, reason: str) -> dict[str, Any]:
    """``ajs3 suspend``: no new scheduled run of ``jobnet`` from now on."""
    found, new = suspend.suspend(
        sched.journal, sched.definitions, jobnet, user, reason, sched.clock()
    )
    sched.log.info("jobnet suspended", jobnet=jobnet, new=new, since=found.since)
    return {**found.to_dict(), "changed": new}


def resume_jobnet(sched: Scheduler, jobnet: str) -> dict[str, Any]:
    """``ajs3 resume``: the runs due meanwhile follow the catch-up policy (and the plan
    changes) and are registered now."""
    now = sched.clock()
    defs = sched.definitions
    found, decisions = suspend.resume(sched.journal, defs, jobnet, now)
    if found is not None:
        decisions = planchanges.adjust_decisions(
            sched.timetable.plan, defs, decisions, {jobnet}, found.since, now
        )
    runs = []
    for decision in decisions:
        sched.log.info(
            "catch-up at resume",
            jobnet=jobnet,
            due=decision.due,
            run=decision.run,
            decision=decision.reason,
        )
        if decision.run:
            runs.append(sched.register(jobnet, at=decision.due))
    return {
        "jobnet": jobnet,
        "changed": found is not None,
        "since": found.since if found else None,
        "catch_up": [d.to_dict() for d in decisions],
        "runs": runs,
    }


def change_plan(
    sched: Scheduler, jobnet: str, action: str, when: str, to: str | None, user: str, reason: str
) -> dict[str, Any]:
    """``ajs3 plan --skip/--move/--add``: the change stored, the timetable told."""
    defs = sched.definitions
    result = planchanges.change(
        sched.journal,
        defs,
        sched.timetable.plan,
        jobnet=jobnet,
        kind=planchanges.ChangeKind(action),
        when=when,
        to=to,
        user=user,
        reason=reason,
        now=sched.clock(),
    )
    sched.timetable.plan = planchanges.load(sched.journal)
    sched.timetable.refresh(defs)
    sched.log.info("plan changed", jobnet=jobnet, action=action, note=result["note"])
    return result


def set_status(
    sched: Scheduler, run_no: int | None, path: str, status: str, reason: str, user: str
) -> dict[str, Any]:
    """``ajs3 chgstat``."""
    ur = chgstat.change_status(sched.core, sched.commands, run_no, path, status, reason, user)
    return {"run": ur.jobnet_run, "unit": ur.path, "status": ur.status.value}
