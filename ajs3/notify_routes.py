"""The routes of a logical host's notifications: ``notify:`` in its settings file.

Each route says how to deliver (``kind``: command, syslog or mail) and which events it
wants (``events``, ``statuses``, ``units``). Every route is checked when the settings
are read: an unknown kind, a missing or mistyped field refuses the whole file with
AJS3-E206, the file and the key named, so nothing half-configured is ever applied.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ajs3.errors import AjsError, Code
from ajs3.model import EventKind, Status


class RouteKind(StrEnum):
    """How a route delivers."""

    COMMAND = "command"
    """Run a program with the event as JSON on stdin and in AJS3_* variables."""
    SYSLOG = "syslog"
    """Send one RFC 5424 (or 3164) line to a unix datagram socket."""
    MAIL = "mail"
    """Send a mail through an SMTP server."""


class SyslogFormat(StrEnum):
    RFC5424 = "rfc5424"
    RFC3164 = "rfc3164"


#: syslog facilities a route may name, with their numbers (RFC 5424 table 1)
FACILITIES = {
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "local0": 16,
    "local1": 17,
    "local2": 18,
    "local3": 19,
    "local4": 20,
    "local5": 21,
    "local6": 22,
    "local7": 23,
}

#: the most routes a logical host may have
MAX_ROUTES = 32


@dataclass(frozen=True)
class Backoff:
    """Pauses after a failed delivery: ``first``, doubled after each failure in a row,
    at most ``max`` seconds."""

    first: float = 2.0
    max: float = 300.0

    def pause(self, failures: int) -> float:
        """The pause after ``failures`` failures in a row (``failures`` >= 1)."""
        if failures < 1:
            return 0.0
        return min(self.max, self.first * 2.0 ** min(failures - 1, 60))


@dataclass(frozen=True)
class Route:
    name: str
    kind: RouteKind
    #: event kinds it wants (None: every kind)
    events: frozenset[str] | None = None
    #: statuses it wants (None: any; an event without a status does not match a list)
    statuses: frozenset[str] | None = None
    #: unit path patterns (fnmatch; None: any; an event without a unit does not match)
    units: tuple[str, ...] | None = None
    #: seconds one delivery may take (a command is killed after it)
    timeout: float = 30.0
    backoff: Backoff = Backoff()
    # command
    command: tuple[str, ...] = ()
    #: the user a command runs as when the daemon is root (None: settings' default_user)
    user: str | None = None
    # syslog
    socket: str = "/dev/log"
    format: SyslogFormat = SyslogFormat.RFC5424
    facility: str = "daemon"
    # mail
    host: str = "localhost"
    port: int = 25
    sender: str = ""
    to: tuple[str, ...] = ()
    starttls: bool = False

    def matches(self, event: dict[str, Any]) -> bool:
        """Whether this route wants ``event`` (a test event goes to its route only,
        whatever its filters: see :mod:`ajs3.notify.outbox`)."""
        if self.events is not None and event.get("kind") not in self.events:
            return False
        if self.statuses is not None and event.get("status") not in self.statuses:
            return False
        if self.units is not None:
            unit = event.get("unit")
            if not isinstance(unit, str):
                return False
            return any(fnmatch.fnmatchcase(unit, p) for p in self.units)
        return True


_COMMON = {"name", "kind", "events", "statuses", "units", "timeout", "backoff"}
_OWN = {
    RouteKind.COMMAND: {"command", "user"},
    RouteKind.SYSLOG: {"socket", "format", "facility"},
    RouteKind.MAIL: {"host", "port", "from", "to", "starttls"},
}
_REQUIRED = {
    RouteKind.COMMAND: ("command",),
    RouteKind.SYSLOG: (),
    RouteKind.MAIL: ("from", "to"),
}


class _Bad(Exception):
    def __init__(self, key: str, want: str) -> None:
        super().__init__(key)
        self.key = key
        self.want = want


def parse_routes(data: Any, path: Path) -> tuple[Route, ...]:
    """The routes of ``notify:`` in the settings file ``path`` (AJS3-E206 if wrong)."""
    if data is None:
        return ()
    if not isinstance(data, list) or len(data) > MAX_ROUTES:
        raise _error(path, "notify", f"a list of at most {MAX_ROUTES} routes")
    routes: list[Route] = []
    seen: set[str] = set()
    for index, item in enumerate(data):
        where = f"notify[{index}]"
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            where += f" (route {item['name']!r})"
        try:
            route = _route(item)
        except _Bad as bad:
            raise _error(path, f"{where}: {bad.key}", bad.want) from None
        if route.name in seen:
            raise _error(path, f"{where}: name", "unique among the routes")
        seen.add(route.name)
        routes.append(route)
    return tuple(routes)


def _error(path: Path, key: str, want: str) -> AjsError:
    return AjsError(
        f"{path}: {key} must be {want}",
        code=Code.SETTINGS,
        hint=f"fix it in {path} (see docs/notifications.md); nothing of the file was applied",
    )


def _route(item: Any) -> Route:
    if not isinstance(item, dict):
        raise _Bad("route", "a mapping with name and kind")
    name = item.get("name")
    if (
        not isinstance(name, str)
        or not name
        or len(name) > 64
        or not all(c.isalnum() or c in "-_." for c in name)
    ):
        raise _Bad("name", "1-64 letters, digits, '-', '_' or '.'")
    try:
        kind = RouteKind(str(item.get("kind")))
    except ValueError:
        raise _Bad("kind", "one of " + ", ".join(k.value for k in RouteKind)) from None
    unknown = sorted(str(k) for k in item if k not in _COMMON | _OWN[kind])
    if unknown:
        known = ", ".join(sorted(_COMMON | _OWN[kind]))
        raise _Bad(unknown[0], f"absent: not a key of a {kind.value} route (known: {known})")
    for key in _REQUIRED[kind]:
        if item.get(key) is None:
            raise _Bad(key, f"given: a {kind.value} route needs it")
    values: dict[str, Any] = {"name": name, "kind": kind}
    if "events" in item:
        values["events"] = frozenset(_choices(item, "events", [k.value for k in EventKind]))
    if "statuses" in item:
        values["statuses"] = frozenset(_choices(item, "statuses", [s.value for s in Status]))
    if "units" in item:
        values["units"] = tuple(_texts(item, "units", "a list of unit path patterns"))
    if "timeout" in item:
        values["timeout"] = _seconds(item, "timeout", 1.0, 3600.0)
    if "backoff" in item:
        values["backoff"] = _backoff(item["backoff"])
    if kind is RouteKind.COMMAND:
        values["command"] = tuple(_texts(item, "command", "a non-empty list: program, arguments"))
        if not values["command"] or not values["command"][0].startswith("/"):
            raise _Bad("command", "a non-empty list whose first item is an absolute path")
        if "user" in item:
            values["user"] = _word(item, "user", "a user name")
    elif kind is RouteKind.SYSLOG:
        if "socket" in item:
            sock = _word(item, "socket", "an absolute path of a unix datagram socket")
            if not sock.startswith("/"):
                raise _Bad("socket", "an absolute path of a unix datagram socket")
            values["socket"] = sock
        if "format" in item:
            try:
                values["format"] = SyslogFormat(item["format"])
            except ValueError:
                raise _Bad("format", "rfc5424 or rfc3164") from None
        if "facility" in item:
            if not isinstance(item["facility"], str) or item["facility"] not in FACILITIES:
                raise _Bad("facility", "one of " + ", ".join(FACILITIES))
            values["facility"] = item["facility"]
    else:
        if "host" in item:
            values["host"] = _word(item, "host", "a host name or address")
        if "port" in item:
            port = item["port"]
            if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
                raise _Bad("port", "a port number (1-65535)")
            values["port"] = port
        values["sender"] = _word(item, "from", "a mail address")
        to = item["to"]
        if isinstance(to, str):
            to = [to]
        if (
            not isinstance(to, list)
            or not to
            or not all(isinstance(a, str) and "@" in a and a.isprintable() for a in to)
        ):
            raise _Bad("to", "a mail address or a non-empty list of them")
        values["to"] = tuple(to)
        if "starttls" in item:
            if not isinstance(item["starttls"], bool):
                raise _Bad("starttls", "true or false")
            values["starttls"] = item["starttls"]
    return Route(**values)


def _texts(item: dict[str, Any], key: str, want: str) -> list[str]:
    value = item[key]
    if not isinstance(value, list) or not all(
        isinstance(v, str) and v and v.isprintable() for v in value
    ):
        raise _Bad(key, want)
    return list(value)


def _choices(item: dict[str, Any], key: str, allowed: list[str]) -> list[str]:
    values = _texts(item, key, "a list of: " + ", ".join(allowed))
    wrong = [v for v in values if v not in allowed]
    if wrong:
        raise _Bad(key, f"a list of: {', '.join(allowed)} (not {wrong[0]!r})")
    return values


def _word(item: dict[str, Any], key: str, want: str) -> str:
    value = item[key]
    if not isinstance(value, str) or not value or not value.isprintable():
        raise _Bad(key, want)
    return value


def _seconds(item: dict[str, Any], key: str, low: float, high: float) -> float:
    value = item[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _Bad(key, f"a number of seconds from {low:g} to {high:g}")
    return float(value)


def _backoff(data: Any) -> Backoff:
    if not isinstance(data, dict) or set(data) - {"first", "max"}:
        raise _Bad("backoff", "a mapping with first and max (seconds)")
    first = _seconds(data, "first", 0.1, 3600.0) if "first" in data else Backoff.first
    most = _seconds(data, "max", 0.1, 86400.0) if "max" in data else Backoff.max
    if most < first:
        raise _Bad("backoff", "a mapping where max is at least first")
    return Backoff(first, most)
