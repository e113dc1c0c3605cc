"""The daemon's handlers of the upkeep requests: ``notify_test``, ``notify_status``
(docs/notifications.md), ``purge`` and ``purge_status`` (docs/retention.md).

A mixin of :class:`ajs3.service.daemon.Daemon`, which checks, audits and commits each
request; the work is done by :mod:`ajs3.notify` and :mod:`ajs3.engine.retention`.
"""

from __future__ import annotations

from typing import Any

from ajs3.engine.retention import Purger
from ajs3.notify.hub import Notifications
from ajs3.service.access import Peer


class UpkeepRequests:
    notify: Notifications | None
    purger: Purger | None

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
