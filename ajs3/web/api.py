"""The REST API of `ajs3 web`: version 1, JSON, under ``/api/v1/`` (docs/web.md; the
contract is ajs3/web/openapi.json, checked by tests/integration/test_web_api.py).

Each route is a function of the request that returns a status and a JSON body; what
it shows comes from the daemon's answer to the control request the CLI's view sends
(`show`, `show --why`, `log`, `plan`, `service status`). Errors are JSON too:
``{"error": {"code": "AJS3-E...", "message": ..., "hint": ...}}``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ajs3.errors import AjsError, Code
from ajs3.web.auth import Identity, WebRole
from ajs3.web.backend import ACTIONS, Backend
from ajs3.web.graph import render_svg, to_dot

PREFIX = "/api/v1"
#: The largest request body read (an action's fields are a few hundred bytes).
MAX_BODY = 64 * 1024
#: The default forecast of /plan: from now, this many seconds.
PLAN_DEFAULT = 86400.0
OPENAPI = Path(__file__).with_name("openapi.json")

#: HTTP status for the error codes a request may meet; anything else is a 409 (the
#: daemon refused the operation) or, for an internal error, 500.
STATUS_OF = {
    Code.WEB_UNAUTHORIZED: 401,
    Code.WEB_FORBIDDEN: 403,
    Code.PERMISSION_DENIED: 403,
    Code.WEB_BAD_REQUEST: 400,
    Code.BAD_REQUEST: 400,
    Code.BAD_ARGUMENT: 400,
    Code.UNKNOWN_UNIT: 404,
    Code.UNKNOWN_JOBNET: 404,
    Code.NOT_RUNNING: 503,
    Code.CONTROL: 503,
    Code.TOO_MANY_CLIENTS: 503,
    Code.REQUEST_TIMEOUT: 503,
    Code.OUTCOME_UNKNOWN: 504,
    Code.INTERNAL: 500,
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    who: Identity
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    #: an answer that is not JSON (the graph's SVG) and its content type
    raw: bytes | None = None
    ctype: str = "application/json"


class Raw(dict[str, Any]):
    """A route's answer that is not JSON: ``Raw(data=bytes, ctype=text)``."""


Route = Callable[[Backend, Request], dict[str, Any]]


def bad(message: str, hint: str = "see /api/v1/openapi.json") -> AjsError:
    return AjsError(message, code=Code.WEB_BAD_REQUEST, hint=hint)


def unauthorized() -> AjsError:
    return AjsError(
        "no valid token (Authorization: Bearer TOKEN)",
        code=Code.WEB_UNAUTHORIZED,
        hint="send a token of the logical host's web settings or AJS3_WEB_TOKEN",
    )


def error_answer(exc: AjsError) -> Answer:
    return Answer(STATUS_OF.get(exc.code, 409), {"error": exc.to_dict()})


# -- query values ----------------------------------------------------------------------


def _int(req: Request, name: str, value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise bad(f"{name} must be a positive integer, not {value[:40]!r}")
    return int(value)


def _offset(req: Request, name: str) -> int | None:
    value = req.query.get(name)
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise bad(f"{name} must be a byte offset (0 or more), not {value[:40]!r}")
    return int(value)


def _bool(req: Request, name: str) -> bool:
    value = req.query.get(name, "false").lower()
    if value not in ("true", "false", "1", "0", ""):
        raise bad(f"{name} must be true or false")
    return value in ("true", "1")


def _time(name: str, value: str | None, default: float) -> float:
    """Epoch seconds, or ISO 8601 with an offset (a time without one is UTC)."""
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad(f"{name} must be ISO 8601 or epoch seconds, not {value[:40]!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.now().astimezone().tzinfo)
    return when.timestamp()


# -- the routes ------------------------------------------------------------------------


def whoami(b: Backend, req: Request) -> dict[str, Any]:
    return {"name": req.who.name, "role": req.who.role.name.lower()}


def status(b: Backend, req: Request) -> dict[str, Any]:
    return b.read("ping")


def jobnets(b: Backend, req: Request) -> dict[str, Any]:
    return b.read("show")


def runs(b: Backend, req: Request) -> dict[str, Any]:
    data = b.read("show", all=_bool(req, "all") or None)
    return {"runs": data["runs"]}


def run(b: Backend, req: Request) -> dict[str, Any]:
    return b.read("show", run=_int(req, "run", req.params["run"]))


def _required(req: Request, name: str, what: str) -> str:
    value = req.query.get(name)
    if not value:
        raise bad(f"{name} is required ({what})")
    return value


def _unit(req: Request) -> str:
    return _required(req, "unit", "a unit path")


def latest(b: Backend, req: Request) -> dict[str, Any]:
    return b.read("show", target=_required(req, "jobnet", "a jobnet path"))


def why(b: Backend, req: Request) -> dict[str, Any]:
    return b.read("why", run=_int(req, "run", req.params["run"]), unit=_unit(req))


def events(b: Backend, req: Request) -> dict[str, Any]:
    return b.read("events", run=_int(req, "run", req.params["run"]), unit=_unit(req))


def log(b: Backend, req: Request) -> dict[str, Any]:
    return b.read(
        "log",
        target=_unit(req),
        run=_int(req, "run", req.params["run"]),
        stderr=_bool(req, "stderr") or None,
        **{"from": _offset(req, "from")},
    )


def plan(b: Backend, req: Request) -> dict[str, Any]:
    start = _time("from", req.query.get("from"), time.time())
    end = _time("to", req.query.get("to"), start + PLAN_DEFAULT)
    return b.read("plan", jobnet=req.query.get("jobnet") or None, **{"from": start, "to": end})


def graph(b: Backend, req: Request) -> dict[str, Any]:
    jobnet = _required(req, "jobnet", "a root jobnet path")
    tree = b.read("structure", jobnet=jobnet)["jobnet"]
    statuses: dict[str, str] = {}
    number = _int(req, "run", req.query.get("run"))
    try:
        shown = b.read("show", target=None if number else jobnet, run=number)
        if shown.get("jobnet") == jobnet:
            statuses = {u["path"]: u["status"] for u in shown["units"]}
    except AjsError as exc:
        if exc.code is not Code.UNKNOWN_UNIT:  # never run: drawn without statuses
            raise
    collapsed = frozenset(p for p in req.query.get("collapsed", "").split(",") if p)
    return Raw(data=render_svg(to_dot(tree, statuses, collapsed)), ctype="image/svg+xml")


def timeline(b: Backend, req: Request) -> dict[str, Any]:
    now = time.time()
    start = _time("from", req.query.get("from"), now - PLAN_DEFAULT)
    end = _time("to", req.query.get("to"), now + PLAN_DEFAULT)
    jobnet = req.query.get("jobnet") or None
    past = b.read("timeline", jobnet=jobnet, **{"from": start, "to": end})
    planned: list[dict[str, Any]] = []
    if end > now:
        ahead = b.read("plan", jobnet=jobnet, **{"from": max(start, now), "to": end})
        planned = ahead["runs"]
    return {"from": start, "to": end, "runs": past["runs"], "planned": planned}


def openapi(b: Backend, req: Request) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(OPENAPI.read_text())
    return document


def action(b: Backend, req: Request) -> dict[str, Any]:
    name = req.params["name"]
    if name not in ACTIONS:
        raise bad(f"no action {name!r} (actions: {', '.join(ACTIONS)})")
    if req.who.role < WebRole.OPERATOR:
        raise AjsError(
            f"{req.who.name} may not {name}: the token is a viewer's (read only)",
            code=Code.WEB_FORBIDDEN,
            hint="use an operator's token (docs/web.md)",
        )
    try:
        fields = json.loads(req.body or b"{}")
    except ValueError:
        raise bad("the body must be a JSON object") from None
    if not isinstance(fields, dict):
        raise bad("the body must be a JSON object")
    if "on_behalf" in fields:
        raise bad("on_behalf is set by the server, not the client")
    return b.act(req.who, name, fields)


#: (method, pattern, route); patterns match the path after PREFIX. Every route needs
#: a viewer at least; an action checks for an operator itself.
ROUTES: list[tuple[str, re.Pattern[str], Route]] = [
    ("GET", re.compile(r"^/whoami$"), whoami),
    ("GET", re.compile(r"^/status$"), status),
    ("GET", re.compile(r"^/jobnets$"), jobnets),
    ("GET", re.compile(r"^/runs$"), runs),
    ("GET", re.compile(r"^/runs/latest$"), latest),
    ("GET", re.compile(r"^/runs/(?P<run>\d+)$"), run),
    ("GET", re.compile(r"^/runs/(?P<run>\d+)/why$"), why),
    ("GET", re.compile(r"^/runs/(?P<run>\d+)/events$"), events),
    ("GET", re.compile(r"^/runs/(?P<run>\d+)/log$"), log),
    ("GET", re.compile(r"^/plan$"), plan),
    ("GET", re.compile(r"^/graph$"), graph),
    ("GET", re.compile(r"^/timeline$"), timeline),
    ("GET", re.compile(r"^/openapi\.json$"), openapi),
    ("POST", re.compile(r"^/actions/(?P<name>[a-z_]+)$"), action),
]


def dispatch(backend: Backend, req: Request) -> Answer:
    """The answer to one API request (``req.path`` below :data:`PREFIX`)."""
    try:
        if req.who.role < WebRole.VIEWER:
            raise unauthorized()
        allowed = []
        for method, pattern, route in ROUTES:
            found = pattern.match(req.path)
            if found is None:
                continue
            allowed.append(method)
            if method == req.method:
                req.params = found.groupdict()
                body = route(backend, req)
                if isinstance(body, Raw):
                    return Answer(200, {}, raw=body["data"], ctype=body["ctype"])
                return Answer(200, body)
        if allowed:
            wrong = AjsError(
                f"{req.method} is not allowed on {PREFIX}{req.path}",
                code=Code.WEB_BAD_REQUEST,
                hint=f"use {', '.join(allowed)}",
            )
            return Answer(405, {"error": wrong.to_dict()})
        raise bad(f"no route {PREFIX}{req.path[:200]}")
    except AjsError as exc:
        return error_answer(exc)
