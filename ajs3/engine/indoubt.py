"""A run in doubt: its job's recovery policy decides what it becomes (docs/design.md rule 5).

The rows are :data:`ajs3.engine.recovery.POLICIES`; policy ``judge`` first runs the
job's ``failover_check`` with the run's identity in its environment.
"""

from __future__ import annotations

from typing import Any

from ajs3.definitions.units import Unit
from ajs3.engine import recovery
from ajs3.engine.core import Core
from ajs3.engine.dispatch import Dispatcher
from ajs3.engine.runstate import RunState
from ajs3.journal.store import UnitRun
from ajs3.model import ReasonCode, Status

#: How long a failover check command (policy ``judge``) may take.
CHECK_TIMEOUT = 60.0


class InDoubt:
    def __init__(self, core: Core, dispatch: Dispatcher) -> None:
        self.core = core
        self.dispatch = dispatch

    def apply(self, state: RunState, ur: UnitRun, code: ReasonCode, why: str) -> None:
        """Apply a job's recovery policy to a run whose end is unknown (rule 5)."""
        core = self.core
        unit = state.units[ur.path]
        policy = unit.on_failover
        log = core.log.bind(run_id=ur.run_id, unit=ur.path, policy=policy.value)
        now = core.clock()
        if recovery.needs_check(policy):
            verdict, detail = self.run_check(state, ur, unit)
            row = recovery.on_failover(policy, verdict)
            says = f"{why}; {row.says} ({detail})"
        else:
            row = recovery.on_failover(policy)
            says = f"{why}; {row.says}"
        values: dict[str, Any] = {}
        if row.status.is_final:
            values["ended_at"] = now
        if row.status is Status.WAITING:
            values["not_before"] = None
        core.journal.set_status(ur, row.status, code, says, **values)
        log.warning("job in doubt", why=why, status=ur.status.value)
        core.dirty.add(state.run.id)

    def run_check(self, state: RunState, ur: UnitRun, unit: Unit) -> tuple[int, str]:
        assert ur.run_id is not None
        env = self.dispatch.job_env(state, ur, unit, ur.run_id, ur.attempt)
        env["AJS3_CHECK"] = "failover"
        return self.core.runner.run_check(
            list(unit.failover_check),
            env,
            unit.cwd,
            unit.user,
            self.core.runner.jobdir(ur.run_id),
            CHECK_TIMEOUT,
        )
