"""The control requests `ajs3 web` sends, one method per view or action of the API.

Reads go to the daemon as they are; changes carry the web client's name in the
``on_behalf`` envelope field (ajs3.service.protocol.ON_BEHALF), which the daemon keeps
in the audit row beside the web server's own user. A new :class:`Client` per request
keeps nothing between requests: a daemon restarted under the console is simply
reached again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ajs3.service.client import Client
from ajs3.web.auth import Identity

#: The operator actions the API offers (POST /api/v1/actions/NAME); nothing else that
#: changes state (define, chgstat, stop, ...) is reachable from the web.
ACTIONS = ("entry", "rerun", "kill", "hold", "release", "suspend", "resume")


class Backend:
    def __init__(self, socket_path: Path, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def _client(self) -> Client:
        return Client(self.socket_path, timeout=self.timeout)

    def read(self, op: str, **fields: Any) -> dict[str, Any]:
        return self._client().call(op, **fields)

    def act(self, who: Identity, op: str, fields: dict[str, Any]) -> dict[str, Any]:
        assert op in ACTIONS
        return self._client().call(op, on_behalf=who.on_behalf, **fields)
