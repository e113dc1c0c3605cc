"""Server-sent events for the console: a ``change`` event whenever what the console
shows (the jobnets, their latest runs, the active runs) has changed.

One poller per server asks the daemon for its ``changes`` marks (the newest event,
audit row and run, the definitions' version: a few index reads) at most every
:data:`POLL` seconds while at least one page listens, and hands each listener their
digest; a page re-reads the API when the digest changes. A comment line is sent every
:data:`KEEPALIVE` seconds so that proxies keep the stream open.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator

from ajs3.errors import AjsError
from ajs3.web.backend import Backend

POLL = 1.0
KEEPALIVE = 15.0


class Feed:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.lock = threading.Lock()
        self.digest = ""
        self.checked = 0.0

    def current(self) -> str:
        """The digest of the daemon's marks now (asked at most every POLL seconds)."""
        with self.lock:
            if time.monotonic() - self.checked >= POLL:
                try:
                    shown = self.backend.read("changes")
                    text = json.dumps(shown, sort_keys=True, default=str)
                except AjsError as exc:
                    text = exc.code.value
                self.digest = hashlib.sha256(text.encode()).hexdigest()[:16]
                self.checked = time.monotonic()
            return self.digest

    def follow(self) -> Iterator[bytes]:
        """The stream of one listener: a change event at once, then one per change."""
        last, quiet = "", time.monotonic()
        while True:
            now = self.current()
            if now != last:
                last, quiet = now, time.monotonic()
                yield f"event: change\ndata: {now}\n\n".encode()
            elif time.monotonic() - quiet >= KEEPALIVE:
                quiet = time.monotonic()
                yield b": keepalive\n\n"
            time.sleep(POLL / 2)
