"""The daemon's handlers of the upkeep requests: ``notify_test``, ``notify_status``
(docs/notifications.md), ``purge`` and ``purge_status`` (docs/retention.md).

A mixin of :class:`ajs3.service.daemon.Daemon`, which checks, audits and commits each
request; the work is done by :mod:`ajs3.notify` and :mod:`ajs3.engine.retention`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ajs3.engine.reaper import Reaper
from ajs3.engine.retention import Purger
from ajs3.engine.scheduler import Scheduler
from ajs3.journal.store import Journal
from ajs3.notify.hub import Notifications
from ajs3.service.access import Peer
from ajs3.settings import Settings


class UpkeepRequests:
    notify: Notifications | None
    purger: Purger | None
    journal: Journal | None
    datadir: Path
    log: Any

    def start_purger(self, sched: Scheduler, settings: Settings) -> None:
        """The retention purge, its disk work on the reaper's thread (ADR 0026); what a
        purge cut short (kill -9) marked is finished now, before any request."""
        assert self.journal is not None
        self.purger = Purger(
            self.journal,
            settings,
            lambda: sched.definitions,
            lambda: sched.runs,
            self.log,
            reaper=Reaper(self.datadir, self.journal.path),
        )
        self.purger.finish_pending()

    def op_notify_test(self, peer: Peer, *, route: str) -> dict[str, Any]:
        assert self.notify is not None
        return self.notify.test(route, peer.user)

    def op_notify_status(self, peer: Peer) -> dict[str, Any]:
        assert self.notify is not None
        return self.notify.status()

    def op_purge(self, peer: Peer) -> dict[str, Any]:
        assert self.purger is not None
        return {"round": self.purger.request()}

    def op_purge_status(self, peer: Peer, *, plan: bool | None) -> dict[str, Any]:
        assert self.purger is not None
        return {**self.purger.status(), **({"plan": self.purger.plan()} if plan else {})}
