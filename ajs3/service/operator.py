"""The daemon's handlers of the operator's plan and status requests: ``suspend``,
``resume``, ``plan_change`` and ``chgstat`` (docs/control.md).

A mixin of :class:`ajs3.service.daemon.Daemon`, which checks, audits and commits each
request as it does every state change (the change and its audit row in one
transaction); the work is done by :mod:`ajs3.engine.operator`.
"""

from __future__ import annotations

from typing import Any

from ajs3.engine import operator
from ajs3.engine.scheduler import Scheduler
from ajs3.service.access import Peer


class OperatorRequests:
    sched: Scheduler | None

    def _scheduler(self) -> Scheduler:
        assert self.sched is not None
        return self.sched

    def op_suspend(self, peer: Peer, *, jobnet: str, reason: str | None) -> dict[str, Any]:
        return operator.suspend_jobnet(self._scheduler(), jobnet, peer.user, reason or "")

    def op_resume(self, peer: Peer, *, jobnet: str, reason: str | None) -> dict[str, Any]:
        return operator.resume_jobnet(self._scheduler(), jobnet)

    def op_plan_change(
        self,
        peer: Peer,
        *,
        jobnet: str,
        action: str,
        when: str,
        to: str | None,
        reason: str | None,
    ) -> dict[str, Any]:
        return operator.change_plan(
            self._scheduler(), jobnet, action, when, to, peer.user, reason or ""
        )

    def op_chgstat(
        self, peer: Peer, *, run: int | None, unit: str, status: str, reason: str
    ) -> dict[str, Any]:
        return operator.set_status(self._scheduler(), run, unit, status, reason, peer.user)
