"""The sender: one thread per route reads the outbox, delivers, records each delivery.

Delivery never blocks scheduling: the threads have their own connections to the
journal and only write a delivery's row after it went through (at-least-once: a
daemon killed between the two sends that event again from its next start). A route
that fails waits :class:`ajs3.notify_routes.Backoff` before its next try, and tries
its events in order, so the failures of one route delay nothing else.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ajs3.notify import outbox
from ajs3.notify.deliver import DeliveryFailed, deliver
from ajs3.notify_routes import Route
from ajs3.settings import Settings

#: A route with nothing to do looks at the outbox again after this many seconds (the
#: daemon also wakes it after each change that wrote an event).
IDLE = 1.0

Deliver = Callable[[Route, dict[str, Any], Settings], None]


@dataclass
class RouteState:
    """What the daemon tells of a route (`ajs3 service status`)."""

    failures: int = 0
    #: time.monotonic() before which the route does not try again
    next_try: float = 0.0
    last_error: str = ""
    last_error_at: float | None = None
    last_error_event: str | None = None
    delivered: int = 0
    last_delivered_at: float | None = None
    last_delivered_event: str | None = None


class Sender:
    """The delivery threads of one logical host's routes."""

    def __init__(
        self, journal_path: Path, settings: Settings, log: Any, send: Deliver = deliver
    ) -> None:
        self.path = journal_path
        self.settings = settings
        self.log = log
        self.send = send
        self.routes = {r.name: r for r in settings.notify}
        self.states = {name: RouteState() for name in self.routes}
        self.lock = threading.Lock()
        self.wake = {name: threading.Event() for name in self.routes}
        self.stopping = False
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for name in self.routes:
            thread = threading.Thread(target=self._run, args=(name,), name=f"notify-{name}")
            thread.daemon = True  # a stuck delivery never keeps the daemon from exiting
            thread.start()
            self.threads.append(thread)

    def kick(self) -> None:
        """Something was written: look at the outbox now."""
        for event in self.wake.values():
            event.set()

    def retry_now(self, name: str) -> None:
        """Forget a route's back-off (`ajs3 notify test`) and wake it."""
        with self.lock:
            self.states[name].next_try = 0.0
        self.wake[name].set()

    def flush(self, conn: sqlite3.Connection, budget: float) -> None:
        """At a clean stop: give the routes up to ``budget`` seconds to deliver what
        waits (a route in back-off is not waited for); the rest waits in the journal."""
        end = time.monotonic() + budget
        while time.monotonic() < end:
            waiting = outbox.counts(conn)
            now = time.monotonic()
            with self.lock:
                busy = [n for n in self.routes if n in waiting and self.states[n].next_try <= now]
            if not busy:
                return
            self.kick()
            time.sleep(0.05)

    def stop(self, timeout: float = 2.0) -> None:
        self.stopping = True
        self.kick()
        end = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, end - time.monotonic()))

    def status(self, conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
        """Per route: its kind, how many events wait, failures in a row, last error."""
        counts = outbox.counts(conn)
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        with self.lock:
            for name, route in self.routes.items():
                st = self.states[name]
                out[name] = {
                    "kind": route.kind.value,
                    "pending": counts.get(name, {}).get("pending", 0),
                    "failures": st.failures,
                    "retry_in": max(0.0, st.next_try - now) if st.failures else None,
                    "last_error": st.last_error or None,
                    "last_error_at": st.last_error_at,
                    "last_error_event": st.last_error_event,
                    "delivered": st.delivered,
                    "last_delivered_at": st.last_delivered_at,
                    "last_delivered_event": st.last_delivered_event,
                }
        return out

    # -- the threads ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _run(self, name: str) -> None:
        route = self.routes[name]
        wake = self.wake[name]
        conn: sqlite3.Connection | None = None
        logged = -60.0
        while not self.stopping:
            pause = IDLE
            try:
                if conn is None:
                    conn = self._connect()
                pause = self._round(conn, route)
            except sqlite3.Error as exc:  # a busy or full journal: the next round retries
                # once a minute at most: the log may be on the same full file system
                now = time.monotonic()
                if now - logged >= 60.0:
                    logged = now
                    self.log.warning("notify: cannot use the outbox", route=name, error=str(exc))
                if conn is not None:
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()
                conn = None
            except Exception:  # a bug must not end the thread and silence the route
                self.log.exception("notify: route failed", route=name)
            wake.wait(pause)
            wake.clear()
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _round(self, conn: sqlite3.Connection, route: Route) -> float:
        """Deliver what waits, in order; the pause before the next round."""
        st = self.states[route.name]
        while not self.stopping:
            now = time.monotonic()
            if st.next_try > now:
                return min(IDLE, st.next_try - now)
            batch = outbox.pending(conn, route.name)
            if not batch:
                return IDLE
            for item in batch:
                if self.stopping:
                    return 0.0
                event_id = str(item.body.get("event_id"))
                try:
                    self.send(route, item.body, self.settings)
                except Exception as exc:  # a bug in a way of sending fails like the receiver
                    error = str(exc) if isinstance(exc, DeliveryFailed) else repr(exc)
                    outbox.mark_failed(conn, item.event, route.name, error)
                    with self.lock:
                        st.failures += 1
                        pause = route.backoff.pause(st.failures)
                        st.next_try = time.monotonic() + pause
                        st.last_error, st.last_error_at = error, time.time()
                        st.last_error_event = event_id
                    self.log.warning(
                        "notify: delivery failed",
                        route=route.name,
                        event_id=event_id,
                        kind=item.body.get("kind"),
                        error=error,
                        failures=st.failures,
                        retry_in=round(pause, 3),
                    )
                    break
                outbox.mark_delivered(conn, item.event, route.name)
                with self.lock:
                    if st.failures:
                        self.log.info(
                            "notify: route recovered", route=route.name, failures=st.failures
                        )
                    st.failures = 0
                    st.next_try = 0.0
                    st.delivered += 1
                    st.last_delivered_at = time.time()
                    st.last_delivered_event = event_id
        return 0.0
