"""What the daemon holds of notifications: the outbox hooked into its journal and the
sender's threads, behind the few calls the daemon makes (start, stop, test, status)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import Any

from ajs3.errors import AjsError, Code
from ajs3.journal.store import Journal
from ajs3.model import EventKind
from ajs3.notify.outbox import Outbox
from ajs3.notify.sender import Sender
from ajs3.settings import Settings

#: At a clean stop, the routes have this long to deliver what waits (host_stopped).
STOP_FLUSH = 3.0


class Notifications:
    def __init__(self, journal: Journal, settings: Settings, log: Any) -> None:
        self.journal = journal
        self.settings = settings
        self.outbox = Outbox(journal, settings.notify, settings.lhost, settings.node)
        self.sender = Sender(journal.path, settings, log)
        self.log = log
        self._written = False
        self.outbox.on_written = self._note_written
        self.outbox.attach()

    def _note_written(self) -> None:
        self._written = True

    def start(self, mode: str) -> None:
        """The logical host has started (its recovery done): say so, start sending."""
        self.journal.note(
            EventKind.HOST_STARTED,
            mode=mode,
            epoch=self.journal.epoch,
            pid=os.getpid(),
            detail=f"started {mode} as epoch {self.journal.epoch} on {self.settings.node}",
        )
        self.sender.start()
        self.committed()

    def committed(self) -> None:
        """After the daemon's transactions: wake the routes if an event was written."""
        if self._written:
            self._written = False
            self.sender.kick()

    def stop(self, clean: bool) -> None:
        """The logical host stops: a clean stop says so and gives the routes a moment."""
        if clean and self.settings.notify:
            try:
                self.journal.note(EventKind.HOST_STOPPED, detail="stopped")
                self.sender.kick()
                self.sender.flush(self.journal.conn, STOP_FLUSH)
            except (AjsError, sqlite3.Error) as exc:
                self.log.warning("notify: host_stopped not recorded", error=str(exc))
        self.sender.stop()

    def test(self, name: str, user: str) -> dict[str, Any]:
        """Write a test event for route ``name`` alone (in the caller's transaction)."""
        route = next((r for r in self.settings.notify if r.name == name), None)
        if route is None:
            known = ", ".join(r.name for r in self.settings.notify) or "none configured"
            raise AjsError(
                f"no notification route {name!r} (known: {known})",
                code=Code.UNKNOWN_ROUTE,
                hint="routes are the notify: list of the logical host's ajs3.yaml",
            )
        body = self.outbox.write(
            EventKind.TEST,
            {"route": name, "detail": f"test event sent by {user} with `ajs3 notify test`"},
            only=route,
        )
        assert body is not None
        with contextlib.suppress(KeyError):
            self.sender.retry_now(name)
        return {"route": name, "event_id": body["event_id"], "timeout": route.timeout}

    def status(self) -> dict[str, Any]:
        return {"routes": self.sender.status(self.journal.conn)}
